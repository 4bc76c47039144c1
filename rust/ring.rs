// SPDX-License-Identifier: GPL-2.0

//! The ring of a connection: one queue per possible CPU, each holding the entries the
//! server registered with `FURING_URING_CMD_REGISTER` (a [`Slab`]) and the requests
//! waiting for one (a [`ReqFifo`]).
//!
//! Every operation on a queue is one or a few short critical sections under its spinlock
//! that move entries between [`State`]s. Whatever such a section takes out that must not
//! be released under a spinlock -- a parked command to complete, a request to end, the
//! last reference on a buffer ring, a table to free -- it hands back in a [`Deferred`],
//! which the caller runs after the unlock. The lock never allocates and never drops
//! anything that sleeps.

use crate::bufring::{BufRing, FreeBufs};
use crate::copy::{self, Buf};
use crate::entry::{BufId, Entry, EntryIo, Full, Held, Slab, SlotId, Stamp, State};
use crate::ffi::{
    self, ClassicQueue, DevId, Kicks, ParkedCmd, Pdu, Req, ReqFifo, RingId, Sqe, UringCmd,
};
use crate::stats;
use crate::uapi;
use crate::user::read_iovecs;
use crate::zerocopy::{ZcRegistration, ZcWait};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
    time::{Instant, Jiffies, Monotonic},
};

/// Now, if request timing is on (debugfs `furing/timing`).
fn stamp() -> Stamp {
    stats::timing().then(Instant::<Monotonic>::now)
}

/// Nanoseconds from `a` to `b`, when both were taken.
fn nanos_between(a: Stamp, b: Stamp) -> u64 {
    match (a, b) {
        // Never negative on a monotonic clock.
        (Some(a), Some(b)) => u64::try_from((b - a).as_nanos()).unwrap_or(0),
        _ => 0,
    }
}

/// Adds the time since `start` to `counter`.
fn add_since(counter: &AtomicU64, start: Stamp) {
    if start.is_some() {
        counter.fetch_add(nanos_between(start, stamp()), Ordering::Relaxed);
    }
}

/// Lines of waiting requests: line 0 for requests without a payload buffer, line `1 + k`
/// for those of buffer class `k`, so that a request waiting for a busy class holds up no
/// request of another.
const LINES: usize = 1 + uapi::FURING_URING_MAX_BUF_CLASSES;

/// The line of `req` on a queue with buffer ring `br`.
fn line_of(br: Option<&BufRing>, req: &Req) -> usize {
    br.and_then(|br| br.class_of(req)).map_or(0, |k| k + 1)
}

/// The requests waiting on a queue, by line, with the time they spent waiting.
///
/// The sum of every request's wait is the integral of the number waiting over time, so
/// it is kept without a stamp per request: each change of the number first adds
/// `len x (now - last change)` (while timing is on).
///
/// # Invariants
///
/// `lines` has [`LINES`] lists.
struct Waiting {
    lines: KVec<ReqFifo>,
    /// The last change of the number waiting, while timing is on.
    since: Stamp,
    /// Time (ns) requests spent waiting, summed over requests.
    ns: u64,
}

impl Waiting {
    fn new() -> Result<Self> {
        let mut lines = KVec::with_capacity(LINES, GFP_KERNEL)?;
        for _ in 0..LINES {
            lines.push(ReqFifo::new()?, GFP_KERNEL)?;
        }
        Ok(Self {
            lines,
            since: None,
            ns: 0,
        })
    }

    /// Accounts the time since the last change, before the number changes.
    fn tick(&mut self) {
        let now = stamp();
        if now.is_none() && self.since.is_none() {
            // Timing is off.
            return;
        }
        let len = self.len() as u64;
        if len > 0 {
            self.ns = self
                .ns
                .saturating_add(len.saturating_mul(nanos_between(self.since, now)));
        }
        self.since = now;
    }

    fn len(&self) -> usize {
        self.lines.iter().map(ReqFifo::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.lines.iter().all(ReqFifo::is_empty)
    }

    /// Line `line` (the last one for a number out of range, which `line_of` never gives).
    fn line(&mut self, line: usize) -> &mut ReqFifo {
        let last = self.lines.len() - 1;
        &mut self.lines[line.min(last)]
    }

    fn push_back(&mut self, line: usize, req: Req) {
        self.tick();
        self.line(line).push_back(req);
    }

    fn push_front(&mut self, line: usize, req: Req) {
        self.tick();
        self.line(line).push_front(req);
    }

    fn pop_front(&mut self, line: usize) -> Option<Req> {
        self.tick();
        self.line(line).pop_front()
    }

    /// The oldest request at the head of any line (for a queue that lost its entries).
    fn pop_any(&mut self) -> Option<Req> {
        let (line, _) = self
            .lines
            .iter()
            .enumerate()
            .filter_map(|(l, f)| Some((l, f.with_front(Req::unique)?)))
            .min_by_key(|&(_, unique)| unique)?;
        self.pop_front(line)
    }
}

/// What a command needs to know of the connection's limits.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    /// Smallest payload buffer an entry may register: room for the largest request.
    pub(crate) max_payload: usize,
}

/// Most entries of a queue: basic mode's limit, and a buffer ring's largest depth.
pub(crate) const MAX_ENTRIES: usize = uapi::FURING_URING_MAX_QUEUE_DEPTH as usize;

/// Slots a basic-mode queue starts with; doubled (outside the lock) as entries come.
const BASIC_SLOTS: usize = 8;

/// The size of one request header slot.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<uapi::furing_uring_req_header>();

/// What a critical section leaves to do after the unlock: none of it may run under a
/// spinlock (completing a command takes io_uring's locks, ending a request runs the core's
/// end callbacks, a buffer ring's last reference unpins and unmaps).
#[must_use]
#[derive(Default)]
struct Deferred {
    kicks: Kicks,
    complete: Option<(ParkedCmd, i32)>,
    end: Option<(Req, i32)>,
    held: Option<Held>,
    ring: Option<Arc<BufRing>>,
    tables: Option<Slab>,
    free: Option<FreeBufs>,
}

impl Deferred {
    /// Runs what was deferred; `issue_flags` as io_uring passed them to the current
    /// callback (or `IO_URING_F_UNLOCKED`).
    fn run(self, issue_flags: u32) {
        // The entries handed requests: the server's task may start on them now.
        drop(self.kicks);
        if let Some(Held { req, .. }) = self.held {
            // Never a zero-copy one (`Queue::forget_held` ends those after their release).
            req.end(ECONNABORTED.to_errno());
        }
        if let Some((req, err)) = self.end {
            req.end(err);
        }
        if let Some((cmd, res)) = self.complete {
            cmd.complete(res, issue_flags);
        }
    }
}

/// Hands `req` (with payload buffer `buf`) to an available entry of `slab`: the entry goes
/// to `Sending` with its command, whose task work is left in `kicks` to queue after the
/// unlock. Gives the request back when no entry is available.
fn hand(
    slab: &mut Slab,
    req: Req,
    buf: Option<BufId>,
    kicks: &mut Kicks,
) -> core::result::Result<(), Req> {
    // `pop_avail` returns an `Available` entry only.
    let Some(e) = slab.pop_avail().and_then(|slot| slab.get_mut(slot)) else {
        return Err(req);
    };
    let State::Available(cmd) = core::mem::replace(&mut e.state, State::Registering) else {
        unreachable!("pop_avail returned an entry that is not Available");
    };
    kicks.push(cmd.task_work());
    e.state = State::Sending {
        cmd,
        req,
        buf,
        queued: stamp(),
    };
    Ok(())
}

/// One per-CPU queue.
#[pin_data]
pub(crate) struct Queue {
    qid: u16,
    /// Requests sent to the server through this queue.
    sent: AtomicU64,
    /// Requests whose data pages were zero-copied, and their bytes.
    zc_requests: AtomicU64,
    zc_bytes: AtomicU64,
    /// Time spent (ns) copying requests to the ring, copying replies back, and between
    /// handing a request to an entry and its task work running (while timing is on).
    copy_in_ns: AtomicU64,
    copy_out_ns: AtomicU64,
    task_work_ns: AtomicU64,
    #[pin]
    inner: SpinLock<QueueInner>,
    /// Zero-copy requests of a ring that went, waiting for io_uring to release their
    /// pages; the teardown ends those still waiting (ended ones are pruned on the way).
    #[pin]
    zc_waiting: Mutex<KVec<Arc<ZcWait>>>,
}

struct QueueInner {
    /// The entries, once the first REGISTER made room for them.
    slab: Option<Slab>,
    /// Requests waiting for an entry (or a payload buffer), oldest first.
    waiting: Waiting,
    /// Set at teardown: no new entries, no new requests.
    stopped: bool,
    /// The queue flags of the first REGISTER; every later one must match.
    flags: Option<u64>,
    /// Buffer-ring queues: the ring, for as long as the queue has entries.
    br: Option<Arc<BufRing>>,
    /// Payload buffers no request holds, by class.
    free: FreeBufs,
    /// Most requests seen waiting for a payload buffer at once.
    buf_wait_max: usize,
}

impl QueueInner {
    fn entries(&self) -> usize {
        self.slab.as_ref().map_or(0, Slab::count)
    }

    /// Hands waiting requests to available entries -- with a payload buffer of their class
    /// when the queue has a buffer ring and the request has payload -- and leaves their
    /// task work in `kicks`, to queue after the unlock. Each round, the oldest request at
    /// the head of a line that can go now goes; it stops when no entry is available or no
    /// head can go.
    fn pump(&mut self, kicks: &mut Kicks) {
        let Some(slab) = self.slab.as_mut() else {
            return;
        };
        let br = self.br.as_deref();
        while slab.has_avail() && !self.waiting.is_empty() {
            // (line, commit id, class of the buffer it takes) of the oldest head that can go.
            let mut best: Option<(usize, u64, Option<usize>)> = None;
            let mut blocked = 0;
            for (line, fifo) in self.waiting.lines.iter().enumerate() {
                let Some((unique, class)) =
                    fifo.with_front(|r| (r.unique(), br.and_then(|b| b.class_of(r))))
                else {
                    continue;
                };
                let from = match (br, class) {
                    (Some(br), Some(k)) => match br.pick(k, &self.free) {
                        Some(from) => Some(from),
                        None => {
                            blocked += fifo.len();
                            self.free.count_wait(k, unique);
                            continue;
                        }
                    },
                    _ => None,
                };
                if best.is_none_or(|(_, u, _)| unique < u) {
                    best = Some((line, unique, from));
                }
            }
            self.buf_wait_max = self.buf_wait_max.max(blocked);
            let Some((line, _, from)) = best else {
                return;
            };
            let Some(req) = self.waiting.pop_front(line) else {
                return;
            };
            let buf = match from {
                // `pick` found a free buffer of class `k`, under this lock.
                Some(k) => match self.free.pop(k) {
                    Some(b) => Some(b),
                    None => {
                        self.waiting.push_front(line, req);
                        return;
                    }
                },
                None => None,
            };
            if let Err(req) = hand(slab, req, buf, kicks) {
                self.waiting.push_front(line, req);
                if let (Some(br), Some(b)) = (br, buf) {
                    br.give_back(b, &mut self.free);
                }
                return;
            }
        }
    }

    /// With no request waiting: hands `req` straight to an available entry, with a free
    /// payload buffer of its class (or, unless strict, a larger one) when it has payload,
    /// as the pump would; gives it back when it has to wait.
    fn send_now(&mut self, req: Req, kicks: &mut Kicks) -> core::result::Result<(), Req> {
        let Some(slab) = self.slab.as_mut() else {
            return Err(req);
        };
        if !self.waiting.is_empty() || !slab.has_avail() {
            return Err(req);
        }
        let br = self.br.as_deref();
        let buf = match br.and_then(|b| Some((b, b.class_of(&req)?))) {
            Some((b, k)) => match b.pick(k, &self.free).and_then(|from| self.free.pop(from)) {
                Some(id) => Some(id),
                None => return Err(req),
            },
            None => None,
        };
        hand(slab, req, buf, kicks).inspect_err(|_| {
            if let (Some(br), Some(b)) = (br, buf) {
                br.give_back(b, &mut self.free);
            }
        })
    }

    /// Returns payload buffer `buf` to the free ones of its class (never allocates: room
    /// for every buffer of the ring is reserved).
    fn free_buf(&mut self, buf: Option<BufId>) {
        if let (Some(br), Some(b)) = (self.br.as_deref(), buf) {
            br.give_back(b, &mut self.free);
        }
    }

    /// Takes the entry in `slot` out, freeing its payload buffer. When it was the last
    /// entry, the queue's tables go too (and a buffer ring with its pinned memory: the next
    /// REGISTER sets the queue up afresh). What must be dropped goes to `d`.
    fn remove(&mut self, slot: SlotId, d: &mut Deferred) -> Option<Entry> {
        let slab = self.slab.as_mut()?;
        let e = slab.remove(slot)?;
        let buf = e.state.buf();
        self.free_buf(buf);
        if self.slab.as_ref().is_some_and(|s| s.count() == 0) {
            self.unset(d);
        }
        Some(e)
    }

    /// The queue has no entries: its set-up (flags, buffer ring, tables) goes, to `d`, and
    /// the next REGISTER sets it up afresh.
    fn unset(&mut self, d: &mut Deferred) {
        self.flags = None;
        d.ring = self.br.take();
        d.tables = self.slab.take();
        d.free = Some(core::mem::take(&mut self.free));
    }

    /// Puts `cmd` into the entry in `slot` (state `Registering` or `Committing`): it waits
    /// for a request, or gets one. Once the queue stopped, the entry goes and the command
    /// completes with `ENOTCONN` (in `d`).
    fn park(&mut self, slot: SlotId, cmd: ParkedCmd, d: &mut Deferred) {
        if self.stopped {
            let _ = self.remove(slot, d);
            d.complete = Some((cmd, ENOTCONN.to_errno()));
            return;
        }
        let Some(slab) = self.slab.as_mut() else {
            d.complete = Some((cmd, ENOTCONN.to_errno()));
            return;
        };
        let Some(e) = slab.get_mut(slot) else {
            d.complete = Some((cmd, ENOTCONN.to_errno()));
            return;
        };
        // A commit may come from another io_uring (not on zero-copy queues): the entry is
        // that ring's now.
        e.ring = cmd.ring();
        let buf = core::mem::replace(&mut e.state, State::Available(cmd)).buf();
        slab.push_avail(slot);
        self.free_buf(buf);
        self.pump(&mut d.kicks);
    }
}

impl Queue {
    fn new(qid: u16) -> Result<impl PinInit<Self>> {
        let waiting = Waiting::new()?;
        Ok(pin_init!(Self {
            qid,
            sent: AtomicU64::new(0),
            zc_requests: AtomicU64::new(0),
            zc_bytes: AtomicU64::new(0),
            copy_in_ns: AtomicU64::new(0),
            copy_out_ns: AtomicU64::new(0),
            task_work_ns: AtomicU64::new(0),
            inner <- new_spinlock!(QueueInner {
                slab: None,
                waiting,
                stopped: false,
                flags: None,
                br: None,
                free: FreeBufs::default(),
                buf_wait_max: 0,
            }),
            zc_waiting <- new_mutex!(KVec::new()),
        }))
    }

    /// Puts `entry` into a slot (`slot`, or the first free one), growing a basic queue's
    /// slab outside the lock as needed; the queue's buffer ring must be `br` (the one the
    /// caller prepared, or the one the queue has). Returns the slot.
    fn reserve(
        &self,
        mut entry: Entry,
        slot: Option<SlotId>,
        flags: u64,
        mut ring: Option<(Arc<BufRing>, Slab, FreeBufs)>,
    ) -> Result<SlotId> {
        loop {
            let mut d = Deferred::default();
            let grow = {
                let mut inner = self.inner.lock();
                if inner.stopped {
                    return Err(ENOTCONN);
                }
                match inner.flags {
                    Some(f) if f != flags => return Err(EINVAL),
                    Some(_) => {
                        // The queue is set up: a prepared ring is not needed.
                        if let Some((br, tables, free)) = ring.take() {
                            d.ring = Some(br);
                            d.tables = Some(tables);
                            d.free = Some(free);
                        }
                    }
                    None => {
                        // The first entry sets the queue up: a buffer ring (prepared by
                        // the caller: EAGAIN asks for one), or basic slots.
                        match ring.take() {
                            Some((br, tables, free)) => {
                                inner.br = Some(br);
                                inner.slab = Some(tables);
                                inner.free = free;
                            }
                            None if flags & uapi::FURING_URING_BUFRING != 0 => {
                                return Err(EAGAIN);
                            }
                            None => {}
                        }
                    }
                }
                let cap = inner.slab.as_ref().map_or(0, Slab::capacity);
                let res = match inner.slab.as_mut() {
                    Some(slab) => slab.insert(slot, entry, MAX_ENTRIES),
                    None => Err((Full::Grow(BASIC_SLOTS), entry)),
                };
                match res {
                    Ok(slot) => {
                        inner.flags = Some(flags);
                        drop(inner);
                        d.run(ffi::IO_URING_F_UNLOCKED);
                        return Ok(slot);
                    }
                    Err((Full::Err(e), _)) => {
                        if inner.entries() == 0 {
                            // Nothing registered: the queue is not set up after all.
                            inner.unset(&mut d);
                        }
                        drop(inner);
                        d.run(ffi::IO_URING_F_UNLOCKED);
                        return Err(e);
                    }
                    Err((Full::Grow(n), back)) => {
                        entry = back;
                        (cap, n)
                    }
                }
            };
            d.run(ffi::IO_URING_F_UNLOCKED);
            // A basic queue out of slots: a bigger slab, made without the lock.
            let (cap, n) = grow;
            let bigger = Slab::new(n)?;
            let old = {
                let mut inner = self.inner.lock();
                // Only the basic table it found full: meanwhile the queue may have lost its
                // entries and been set up afresh, as a buffer ring whose table is its depth.
                let basic = inner.br.is_none()
                    && inner
                        .flags
                        .is_none_or(|f| f & uapi::FURING_URING_BUFRING == 0);
                match inner.slab.as_mut() {
                    Some(slab) if basic && slab.capacity() == cap => Some(slab.grow(bigger)),
                    Some(_) => None,
                    None if cap == 0 => {
                        inner.slab = Some(bigger);
                        None
                    }
                    None => None,
                }
            };
            drop(old);
        }
    }

    /// Parks `cmd` in entry `slot` (a new one, `Registering`, or one whose reply was just
    /// committed, `Committing`): it waits for a request, or gets one.
    fn park(&self, cmd: UringCmd, slot: SlotId, issue_flags: u32) {
        let parked = cmd.park(
            Pdu {
                qid: self.qid,
                slot,
            },
            issue_flags,
        );
        let mut d = Deferred::default();
        self.inner.lock().park(slot, parked, &mut d);
        d.run(issue_flags);
    }

    /// Queues `req` behind the requests already waiting and hands out what can go; gives
    /// it back when the queue cannot take it (stopped, or no entries).
    fn send(&self, req: Req) -> core::result::Result<(), Req> {
        let mut inner = self.inner.lock();
        if inner.stopped || inner.entries() == 0 {
            return Err(req);
        }
        req.clear_pending();
        let mut kicks = Kicks::default();
        // Nothing waiting ahead of it: straight to an entry when one is free.
        if let Err(req) = inner.send_now(req, &mut kicks) {
            let line = line_of(inner.br.as_deref(), &req);
            inner.waiting.push_back(line, req);
            inner.pump(&mut kicks);
        }
        drop(inner);
        drop(kicks);
        Ok(())
    }

    /// Whether a request the queue holds, waiting at the head of a line, with an entry or
    /// for its zero-copy pages' release, was made more than `timeout` jiffies ago (as the
    /// core checks the heads of its lists).
    fn expired(&self, timeout: Jiffies) -> bool {
        let queued = {
            let inner = self.inner.lock();
            inner
                .waiting
                .lines
                .iter()
                .any(|l| l.with_front(|r| r.expired(timeout)).unwrap_or(false))
                || inner.slab.as_ref().is_some_and(|s| {
                    s.iter()
                        .any(|(_, e)| e.state.req().is_some_and(|r| r.expired(timeout)))
                })
        };
        queued || self.zc_waiting.lock().iter().any(|w| w.expired(timeout))
    }

    /// Whether the queue has entries.
    fn has_entries(&self) -> bool {
        self.inner.lock().entries() > 0
    }

    /// A request waiting on a queue that lost its entries (or stopped), to send elsewhere.
    fn take_stranded(&self) -> Option<(Req, bool)> {
        let mut inner = self.inner.lock();
        if inner.entries() > 0 && !inner.stopped {
            return None;
        }
        let stopped = inner.stopped;
        inner.waiting.pop_any().map(|r| (r, stopped))
    }

    /// Task work for the parked command `cmd` of entry `slot`: copies the entry's request
    /// into it and completes the command, or, with `cancel` (the server's io_uring is going
    /// away), gives the request back to the queue and drops the entry; once the connection
    /// is `aborted` (or the queue stopped) the request ends instead. Returns whether
    /// waiting requests may be stranded here.
    fn send_in_task(
        &self,
        cmd: &UringCmd,
        slot: SlotId,
        cancel: bool,
        aborted: bool,
        issue_flags: u32,
    ) -> bool {
        let (parked, req, buf, queued, io, br, stopped) = {
            let mut inner = self.inner.lock();
            let stopped = inner.stopped;
            let br = inner.br.clone();
            let Some(e) = inner.slab.as_mut().and_then(|s| s.get_mut(slot)) else {
                return false;
            };
            if matches!(&e.state, State::Aborted(p) if cmd.is(p)) {
                // Teardown ended the request: the entry goes with its command.
                let mut d = Deferred::default();
                if let Some(Entry {
                    state: State::Aborted(p),
                    ..
                }) = inner.remove(slot, &mut d)
                {
                    let res = if cancel { ECANCELED } else { ENOTCONN };
                    d.complete = Some((p, res.to_errno()));
                }
                let stranded = inner.entries() == 0;
                drop(inner);
                drop(br);
                d.run(issue_flags);
                return stranded;
            }
            if !matches!(&e.state, State::Sending { cmd: p, .. } if cmd.is(p)) {
                return false;
            }
            let State::Sending {
                cmd: parked,
                req,
                buf,
                queued,
            } = core::mem::replace(&mut e.state, State::Copying { buf: None })
            else {
                return false;
            };
            e.state = State::Copying { buf };
            (parked, req, buf, queued, e.io, br, stopped)
        };

        if cancel || stopped || aborted {
            let mut d = Deferred::default();
            let stranded = {
                let mut inner = self.inner.lock();
                let _ = inner.remove(slot, &mut d);
                if inner.stopped || aborted {
                    d.end = Some((req, ECONNABORTED.to_errno()));
                } else {
                    // The request loses nothing: first in line again, for another entry.
                    let line = line_of(inner.br.as_deref(), &req);
                    inner.waiting.push_front(line, req);
                    inner.pump(&mut d.kicks);
                }
                inner.entries() == 0
            };
            let res = if cancel { ECANCELED } else { ENOTCONN };
            d.complete = Some((parked, res.to_errno()));
            d.run(issue_flags);
            return stranded;
        }

        let start = stamp();
        if start.is_some() {
            self.task_work_ns
                .fetch_add(nanos_between(queued, start), Ordering::Relaxed);
        }
        let res = self.copy_in(cmd, req, slot, buf, &io, br.as_deref(), issue_flags);
        add_since(&self.copy_in_ns, start);

        let mut d = Deferred::default();
        let mut inner = self.inner.lock();
        match res {
            Ok(held) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                let stopped = inner.stopped;
                // The entry keeps the request, unless teardown came meanwhile.
                let kept = match inner.slab.as_mut().and_then(|slab| slab.get_mut(slot)) {
                    Some(e) if !stopped => {
                        let unique = held.req.unique();
                        e.state = State::Userspace { unique, buf, held };
                        Ok(unique)
                    }
                    _ => Err(held),
                };
                match kept {
                    Ok(unique) => {
                        if let Some(slab) = inner.slab.as_mut() {
                            slab.hash_insert(slot, unique);
                        }
                        d.complete = Some((parked, 0));
                    }
                    Err(held) => {
                        // The entry goes, the request ends.
                        let _ = inner.remove(slot, &mut d);
                        drop(inner);
                        if let Some(reg) = held.zc {
                            // This command's ring holds the pages: unregister right here.
                            reg.unregister(cmd, issue_flags);
                        }
                        held.req.end(ECONNABORTED.to_errno());
                        d.complete = Some((parked, ENOTCONN.to_errno()));
                        d.run(issue_flags);
                        return false;
                    }
                }
            }
            Err((req, err)) => {
                // As Linux 7.3: the request ends, the entry stays and takes the next one.
                d.end = Some((req, err));
                inner.park(slot, parked, &mut d);
            }
        }
        drop(inner);
        d.run(issue_flags);
        false
    }

    /// Copies `req` into entry `slot` (`io`, with payload buffer `buf` of `br`),
    /// registering its data pages first on a zero-copy queue, and hands it to the server
    /// (FR_SENT, and an interrupt that came before queued now): the entry is to keep it. On
    /// failure the request comes back with the error to end it with; a registration made
    /// is undone.
    #[allow(clippy::too_many_arguments)]
    fn copy_in(
        &self,
        cmd: &UringCmd,
        req: Req,
        slot: SlotId,
        buf: Option<BufId>,
        io: &EntryIo,
        br: Option<&BufRing>,
        issue_flags: u32,
    ) -> core::result::Result<Held, (Req, i32)> {
        let zc = match br.and_then(|br| br.zero_copies(&req)) {
            Some((dir, len)) => {
                match ZcRegistration::register(cmd, &req, dir, u32::from(slot), issue_flags) {
                    Ok(reg) => {
                        self.zc_requests.fetch_add(1, Ordering::Relaxed);
                        self.zc_bytes.fetch_add(len as u64, Ordering::Relaxed);
                        Some(reg)
                    }
                    Err(_) => return Err((req, EIO.to_errno())),
                }
            }
            None => None,
        };
        let (header, payload) = entry_bufs(io, br, slot, buf);
        let buf_id = match io {
            EntryIo::Basic { .. } => 0,
            EntryIo::Ring => buf.unwrap_or(uapi::FURING_URING_NO_BUF),
        };
        if copy::request_to_ring(&req, &header, &payload, buf_id, zc.is_some()).is_err() {
            // The registration goes before the request ends.
            if let Some(reg) = zc {
                reg.unregister(cmd, issue_flags);
            }
            return Err((req, EIO.to_errno()));
        }
        req.mark_sent();
        Ok(Held { req, zc })
    }

    /// `COMMIT_AND_FETCH`: ends the request `commit_id` with the server's reply and parks
    /// `cmd` in its entry again.
    fn commit_and_fetch(&self, cmd: UringCmd, commit_id: u64, issue_flags: u32) -> Result {
        let (slot, io, br, buf, held) = {
            let mut d = Deferred::default();
            let mut inner = self.inner.lock();
            let br = inner.br.clone();
            let zero_copy = br.as_ref().is_some_and(|b| b.zero_copy());
            let stopped = inner.stopped;
            let slab = inner.slab.as_mut().ok_or(ENOENT)?;
            let slot = slab.hash_find(commit_id).ok_or(ENOENT)?;
            let e = slab.get_mut(slot).ok_or(ENOENT)?;
            // The pages of a zero-copy request are registered with the entry's io_uring:
            // only a command of that ring can unregister them.
            if zero_copy && e.ring != cmd.ring() {
                return Err(EINVAL);
            }
            // A device's replies go to its own requests (as on `/dev/fuse`): the entry's
            // are those of the device it was registered on.
            if e.dev != cmd.fuse_dev().id() {
                return Err(EINVAL);
            }
            let io = e.io;
            slab.hash_remove(slot, commit_id);
            let Some(e) = slab.get_mut(slot) else {
                return Err(ENOENT);
            };
            let State::Userspace { buf, held, .. } =
                core::mem::replace(&mut e.state, State::Committing { buf: None })
            else {
                return Err(ENOENT);
            };
            e.state = State::Committing { buf };
            if stopped {
                // Teardown left this entry to its commit: its pages go, the request ends.
                let _ = inner.remove(slot, &mut d);
                drop(inner);
                if let Some(reg) = held.zc {
                    reg.unregister(&cmd, issue_flags);
                }
                held.req.end(ECONNABORTED.to_errno());
                d.run(issue_flags);
                return Err(ENOTCONN);
            }
            (slot, io, br, buf, held)
        };

        let (header, payload) = entry_bufs(&io, br.as_deref(), slot, buf);
        let start = stamp();
        let Held { mut req, zc } = held;
        // Nothing else touches the request meanwhile: the entry held it off every list of
        // the core, so an abort leaves it to this commit (or to teardown, once committed).
        let res = copy::reply_from_ring(&mut req, &header, &payload, zc.is_some());
        if let Some(reg) = zc {
            // The registration goes before the request ends.
            reg.unregister(&cmd, issue_flags);
        }
        req.end(if res.is_err() { EIO.to_errno() } else { 0 });
        add_since(&self.copy_out_ns, start);
        drop(br);
        self.park(cmd, slot, issue_flags);
        Ok(())
    }

    /// Whether `cmd` is parked, waiting for a request, in `slot`.
    fn is_parked(&self, cmd: &UringCmd, slot: SlotId) -> bool {
        let mut inner = self.inner.lock();
        inner
            .slab
            .as_mut()
            .and_then(|s| s.get_mut(slot))
            .is_some_and(|e| matches!(&e.state, State::Available(p) if cmd.is(p)))
    }

    /// io_uring's cancel callback for `cmd`, parked in `slot`: completes it and drops the
    /// entry (a cancelled entry cannot be used again). Returns whether it was here.
    fn cancel(&self, cmd: &UringCmd, slot: SlotId, issue_flags: u32) -> bool {
        let mut d = Deferred::default();
        {
            let mut inner = self.inner.lock();
            let here = inner
                .slab
                .as_mut()
                .and_then(|s| s.get_mut(slot))
                .is_some_and(|e| matches!(&e.state, State::Available(p) if cmd.is(p)));
            if !here {
                return false;
            }
            if let Some(Entry {
                state: State::Available(p),
                ..
            }) = inner.remove(slot, &mut d)
            {
                d.complete = Some((p, ENOTCONN.to_errno()));
            }
        }
        d.run(issue_flags);
        true
    }

    /// The requests the server holds in the entries `gone` picks by their io_uring and
    /// device end with `ECONNABORTED`, and the entries go: nothing can commit them any more;
    /// their slots and buffers come back. A zero-copy request goes only when `by`, a command
    /// of the io_uring its pages are registered with (and the flags of the callback it came
    /// in), is at hand to unregister them; it ends when io_uring lets go of them. Without
    /// one it stays, since that ring may live on and only its commands can take the pages
    /// out. Process context.
    fn forget_held(&self, gone: impl Fn(RingId, DevId) -> bool, by: Option<(&UringCmd, u32)>) {
        let cap = self.inner.lock().slab.as_ref().map_or(0, Slab::capacity);
        for slot in 0..cap {
            let mut d = Deferred::default();
            {
                let mut inner = self.inner.lock();
                let Some(e) = inner.slab.as_mut().and_then(|s| s.get_mut(slot as SlotId)) else {
                    continue;
                };
                let takeable = match &e.state {
                    State::Userspace { held, .. } => held
                        .zc
                        .as_ref()
                        .is_none_or(|zc| by.is_some_and(|(cmd, _)| zc.is_of(cmd))),
                    _ => false,
                };
                if !takeable || !gone(e.ring, e.dev) {
                    continue;
                }
                if let Some(Entry {
                    state: State::Userspace { held, .. },
                    ..
                }) = inner.remove(slot as SlotId, &mut d)
                {
                    // Ended after the unlock.
                    d.held = Some(held);
                }
                // Its payload buffer is free again: a request may have waited for it.
                if !inner.stopped {
                    inner.pump(&mut d.kicks);
                }
            }
            if let Some((cmd, issue_flags)) = by {
                if let Some(Held { req, zc: Some(zc) }) = d.held.take_if(|h| h.zc.is_some()) {
                    // It ends once no operation of the server can reach its pages, or at
                    // teardown.
                    if let Some(wait) = zc.end_after_release(cmd, issue_flags, req) {
                        self.keep_zc_waiting(wait);
                    }
                }
            }
            d.run(ffi::IO_URING_F_UNLOCKED);
        }
    }

    /// Keeps `wait` for the teardown to end, or ends it now if the teardown has come.
    fn keep_zc_waiting(&self, wait: Arc<ZcWait>) {
        let mut list = self.zc_waiting.lock();
        list.retain(|w| !w.ended());
        // `stop` sets `stopped` before it takes the list: checked under the list's lock,
        // a wait is either on the list it takes or ended here. Out of memory for the list
        // it ends at once too, as at teardown: never left where the teardown cannot see it.
        if self.inner.lock().stopped || list.push(wait.clone(), GFP_KERNEL).is_err() {
            drop(list);
            wait.end();
        }
    }

    /// Teardown, one entry at a time: stops the queue; parked commands go to `cmds` (to
    /// complete once the zero-copy pages are unregistered with them), requests the server
    /// holds zero-copied to `held`. Entries being sent, copied, committed or registered stay:
    /// their task work or command sees the stop and finishes them. Waiting requests end.
    fn stop(&self, cmds: &mut KVec<ParkedCmd>, held: &mut KVec<(RingId, Held)>) {
        let cap = {
            let mut inner = self.inner.lock();
            inner.stopped = true;
            inner.slab.as_ref().map_or(0, Slab::capacity)
        };
        // The teardown waits for no server: zero-copy requests of a ring that went end now,
        // their pages left to io_uring (see Documentation, "Zero-copy").
        let waiting = core::mem::take(&mut *self.zc_waiting.lock());
        for wait in &waiting {
            wait.end();
        }
        for slot in 0..cap {
            let mut d = Deferred::default();
            let taken = {
                let mut inner = self.inner.lock();
                let mut freed = None;
                let mut take = false;
                if let Some(e) = inner.slab.as_mut().and_then(|s| s.get_mut(slot as SlotId)) {
                    take = matches!(e.state, State::Available(_) | State::Userspace { .. });
                    if matches!(e.state, State::Sending { .. }) {
                        // Its task work is pending in the server's task, which may be the
                        // very task waiting for this teardown (a server unmounting its own
                        // mount waits for every request to end): the request ends now,
                        // and the task work completes the command.
                        if let State::Sending { cmd, req, buf, .. } =
                            core::mem::replace(&mut e.state, State::Registering)
                        {
                            e.state = State::Aborted(cmd);
                            freed = Some(buf);
                            d.end = Some((req, ECONNABORTED.to_errno()));
                        }
                    }
                }
                if let Some(buf) = freed {
                    inner.free_buf(buf);
                }
                if take {
                    inner.remove(slot as SlotId, &mut d)
                } else {
                    None
                }
            };
            match taken {
                Some(Entry {
                    state: State::Available(p),
                    ..
                }) => {
                    if let Err(kernel::alloc::AllocError) = cmds.push(p, GFP_KERNEL) {
                        // Completed by the failed push's drop (process context).
                    }
                }
                Some(Entry {
                    ring,
                    state: State::Userspace { held: h, .. },
                    ..
                }) => {
                    if h.zc.is_none() {
                        h.req.end(ECONNABORTED.to_errno());
                    } else if let Err(kernel::alloc::AllocError) = held.push((ring, h), GFP_KERNEL)
                    {
                        // Ended by the failed push's drop, its pages left to io_uring.
                    }
                }
                _ => {}
            }
            d.run(ffi::IO_URING_F_UNLOCKED);
        }
        while let Some((req, _)) = self.take_stranded() {
            req.end(ECONNABORTED.to_errno());
        }
    }

    /// Registered entries, and those whose request is with the server (or on its way).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let Some(slab) = inner.slab.as_ref() else {
            return (0, 0);
        };
        let busy = slab
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.state,
                    State::Sending { .. } | State::Copying { .. } | State::Userspace { .. }
                )
            })
            .count();
        (slab.count(), busy)
    }

    /// The state of every entry: `(slot, state name)`, into `out` (up to its capacity).
    pub(crate) fn entry_states(&self, out: &mut KVec<(SlotId, &'static str)>) {
        let inner = self.inner.lock();
        if let Some(slab) = inner.slab.as_ref() {
            for (slot, e) in slab.iter() {
                if out.push_within_capacity((slot, e.state.name())).is_err() {
                    break;
                }
            }
        }
    }

    /// Buffer-ring state: queue flags, buffers, buffers held by requests, bytes pinned,
    /// and the most requests seen waiting for a buffer at once.
    pub(crate) fn bufring_counts(&self) -> (u64, u32, u32, usize, usize) {
        let inner = self.inner.lock();
        let flags = inner.flags.unwrap_or(0);
        match &inner.br {
            Some(br) => (
                flags,
                br.nr_bufs(),
                br.nr_bufs() - inner.free.len() as u32,
                br.pinned_bytes(),
                inner.buf_wait_max,
            ),
            None => (flags, 0, 0, 0, inner.buf_wait_max),
        }
    }

    /// Per buffer class of the queue's ring: `(buffer size, buffers, buffers held by
    /// requests, requests that waited for one)`, into `out` (up to its capacity).
    pub(crate) fn class_counts(&self, out: &mut KVec<(usize, u32, u32, u64)>) {
        let inner = self.inner.lock();
        if let Some(br) = inner.br.as_deref() {
            for (k, (size, bufs, used)) in br.class_counts(&inner.free).enumerate() {
                let waits = inner.free.waits(k);
                if out.push_within_capacity((size, bufs, used, waits)).is_err() {
                    break;
                }
            }
        }
    }

    /// Requests whose data pages were zero-copied, and their bytes.
    pub(crate) fn zero_copied(&self) -> (u64, u64) {
        (
            self.zc_requests.load(Ordering::Relaxed),
            self.zc_bytes.load(Ordering::Relaxed),
        )
    }

    /// Microseconds spent waiting for an entry or a buffer, waiting for task work,
    /// copying requests in and copying replies out.
    pub(crate) fn times_us(&self) -> [u64; 4] {
        let us = |a: &AtomicU64| a.load(Ordering::Relaxed) / 1000;
        [
            self.inner.lock().waiting.ns / 1000,
            us(&self.task_work_ns),
            us(&self.copy_in_ns),
            us(&self.copy_out_ns),
        ]
    }

    /// Requests sent to the server through this queue.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The queue index.
    pub(crate) fn qid(&self) -> u16 {
        self.qid
    }
}

/// All queues of a connection.
pub(crate) struct Ring {
    queues: KVec<Pin<KBox<Queue>>>,
    /// Where requests go that no queue takes.
    classic_path: ClassicQueue,
    /// Requests that went the classic read()/write() way.
    classic: AtomicU64,
}

impl Ring {
    /// Makes `nr_queues` empty queues; what they cannot take goes to `classic_path`.
    pub(crate) fn new(nr_queues: usize, classic_path: ClassicQueue) -> Result<Self> {
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            let qid = u16::try_from(qid).map_err(|_| EINVAL)?;
            queues.push(KBox::pin_init(Queue::new(qid)?, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(Self {
            queues,
            classic_path,
            classic: AtomicU64::new(0),
        })
    }

    fn queue(&self, qid: u16) -> Result<&Queue> {
        self.queues
            .get(usize::from(qid))
            .map(|q| q.as_ref().get_ref())
            .ok_or(EINVAL)
    }

    /// The classic path, for what the ring does not carry.
    pub(crate) fn classic_path(&self) -> &ClassicQueue {
        &self.classic_path
    }

    /// `FURING_URING_CMD_REGISTER`: validates the command and the entry's buffers and parks
    /// `cmd` in a new entry of queue `qid`. On success the command is the ring's.
    pub(crate) fn register(
        &self,
        cmd: UringCmd,
        sqe: &Sqe,
        limits: Limits,
        issue_flags: u32,
    ) -> Result {
        let flags = sqe.req.flags;
        let bufring = flags & uapi::FURING_URING_BUFRING != 0;
        let pinned = uapi::FURING_URING_PINNED_HEADERS | uapi::FURING_URING_PINNED_BUFFERS;
        let zero_copy = flags & uapi::FURING_URING_ZERO_COPY != 0;
        let classes = flags & uapi::FURING_URING_BUF_CLASSES != 0;
        let strict = flags & uapi::FURING_URING_BUF_CLASSES_STRICT != 0;
        // With buffer classes the reserved bytes carry their sizes (`BufRing::new`).
        let tail_ok = if classes {
            padding_clear(&sqe.req)
        } else {
            reserved_clear(&sqe.req)
        };
        if flags & !uapi::FURING_URING_FLAGS_ALL != 0
            || (!bufring && flags != 0)
            || (zero_copy && flags & pinned != pinned)
            || (strict && !classes)
            || sqe.req.commit_id != 0
            || !tail_ok
            || (!bufring && (sqe.req.init.buf_size != 0 || sqe.req.init.queue_depth != 0))
        {
            return Err(EINVAL);
        }
        // Zero-copy hands the client's pages to the server's io_uring.
        if zero_copy && !ffi::capable_sys_admin() {
            return Err(EPERM);
        }
        let queue = self.queue(sqe.req.qid)?;
        let entry_ring = cmd.ring();
        let entry_dev = cmd.fuse_dev().id();
        let slot = if bufring {
            let slot = sqe.buf_index;
            let mut prepared = None;
            loop {
                let entry = Entry::new(EntryIo::Ring, entry_ring, entry_dev);
                match queue.reserve(entry, Some(slot), flags, prepared.take()) {
                    // The queue has no ring yet (or lost it): set one up, then try again.
                    Err(e) if e == EAGAIN => {}
                    res => break res?,
                }
                let br = BufRing::new(sqe, limits)?;
                let free = br.all_free()?;
                let tables = Slab::new(br.depth() as usize)?;
                prepared = Some((Arc::new(br, GFP_KERNEL)?, tables, free));
            }
        } else {
            let io = basic_io(sqe, limits)?;
            queue.reserve(Entry::new(io, entry_ring, entry_dev), None, flags, None)?
        };
        queue.park(cmd, slot, issue_flags);
        Ok(())
    }

    /// `FURING_URING_CMD_COMMIT_AND_FETCH`: commits the reply of `commit_id`.
    pub(crate) fn commit_and_fetch(&self, cmd: UringCmd, sqe: &Sqe, issue_flags: u32) -> Result {
        let r = &sqe.req;
        if r.commit_id == 0
            || r.flags != 0
            || r.init.buf_size != 0
            || r.init.queue_depth != 0
            || !reserved_clear(r)
        {
            return Err(EINVAL);
        }
        self.queue(r.qid)?
            .commit_and_fetch(cmd, r.commit_id, issue_flags)
    }

    /// Sends `req` over the ring, on the queue of `cpu` or else another one with entries;
    /// gives it back when no queue takes it (it then goes the classic way).
    pub(crate) fn send(&self, req: Req, cpu: usize) -> core::result::Result<(), Req> {
        let n = self.queues.len();
        if n == 0 {
            return Err(req);
        }
        let first = cpu % n;
        let mut req = req;
        for k in 0..n {
            let q = self.queues[(first + k) % n].as_ref().get_ref();
            if k > 0 && !q.has_entries() {
                continue;
            }
            match q.send(req) {
                Ok(()) => return Ok(()),
                Err(r) => req = r,
            }
        }
        Err(req)
    }

    /// Moves the requests waiting on queue `q`, which lost its entries, to another queue or
    /// the classic path; after a teardown they end.
    fn reroute(&self, q: &Queue) {
        while let Some((req, stopped)) = q.take_stranded() {
            if stopped {
                req.end(ECONNABORTED.to_errno());
                continue;
            }
            if let Err(req) = self.send(req, usize::from(q.qid()) + 1) {
                self.count_classic();
                self.classic_path.send(req);
            }
        }
    }

    /// Whether a request waiting on a queue, held by an entry or waiting for its zero-copy
    /// pages' release is older than `timeout` jiffies: the core's request-timeout scan sees
    /// only its own lists.
    pub(crate) fn expired(&self, timeout: Jiffies) -> bool {
        self.queues().any(|q| q.expired(timeout))
    }

    /// Counts a request that went the classic way.
    pub(crate) fn count_classic(&self) {
        self.classic.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests that went the classic way.
    pub(crate) fn classic_count(&self) -> u64 {
        self.classic.load(Ordering::Relaxed)
    }

    /// The queues.
    pub(crate) fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.iter().map(|q| q.as_ref().get_ref())
    }

    /// Task work for `cmd` (see [`Queue::send_in_task`]); its PDU names its entry.
    pub(crate) fn send_in_task(&self, cmd: UringCmd, cancel: bool, issue_flags: u32) {
        let pdu = cmd.pdu();
        let Ok(q) = self.queue(pdu.qid) else { return };
        // Task work runs cancelled when its task has exited (from io_uring's fallback) or its
        // ring is going away. Only the latter takes the requests the server holds on that
        // ring; a shared ring's other tasks go on answering them.
        if cancel && cmd.ring_dying() {
            // Before the command completes: it holds the device borrowed here.
            self.forget(&cmd, issue_flags);
        }
        // Aborted (the teardown is coming): nothing more goes to the server, as the core's
        // disconnected processing queues refuse requests.
        let aborted = !self.classic_path.connected();
        if q.send_in_task(&cmd, pdu.slot, cancel, aborted, issue_flags) {
            self.reroute(q);
        }
    }

    /// io_uring's cancel callback for `cmd`: completes it if it is parked here, and drops
    /// the entries whose requests its io_uring held. io_uring calls it only when it cancels
    /// every command of the ring: the ring is going away, or its task execs or its SQPOLL
    /// thread exits (a plain thread exit cancels no command).
    pub(crate) fn cancel(&self, cmd: UringCmd, issue_flags: u32) {
        let pdu = cmd.pdu();
        let Ok(q) = self.queue(pdu.qid) else { return };
        if q.is_parked(&cmd, pdu.slot) {
            // Before the command completes: it holds the device borrowed here.
            self.forget(&cmd, issue_flags);
            q.cancel(&cmd, pdu.slot, issue_flags);
            self.reroute(q);
        }
    }

    /// The io_uring of `cmd` is going away: the entries it and `cmd`'s device file hold
    /// requests in go (zero-copy ones unregistered with `cmd`, which arrived with
    /// `issue_flags`), and queues left without entries pass their waiting requests on.
    fn forget(&self, cmd: &UringCmd, issue_flags: u32) {
        let (ring, dev) = (cmd.ring(), cmd.fuse_dev().id());
        for q in self.queues() {
            q.forget_held(|r, d| r == ring && d == dev, Some((cmd, issue_flags)));
            self.reroute(q);
        }
    }

    /// The device file `dev` is being released: the requests its entries hold end, since
    /// only its commands could commit them (the core's release ends those of its own
    /// processing queue; these are on none). No command of the file is left: each held it.
    pub(crate) fn forget_dev(&self, dev: DevId) {
        for q in self.queues() {
            q.forget_held(|_, d| d == dev, None);
            self.reroute(q);
        }
    }

    /// Teardown: stops every queue, completes the parked commands with `-ENOTCONN` and
    /// ends the waiting requests. Zero-copy requests the server holds are unregistered
    /// with a parked command of their io_uring first, when there is one; without one the
    /// request ends and its pages stay registered until that io_uring lets go of them (the
    /// server's fixed-buffer operations can still reach them meanwhile, as with Linux 7.3;
    /// see Documentation, "Zero-copy"). Process context.
    pub(crate) fn stop(&self) {
        let mut cmds = KVec::new();
        let mut held = KVec::new();
        for q in self.queues() {
            q.stop(&mut cmds, &mut held);
        }
        for (ring, h) in held {
            if let (Some(reg), Some(cmd)) = (h.zc, cmds.iter().find(|c| c.ring() == ring)) {
                let _ = reg.unregister_parked(cmd);
            }
            h.req.end(ECONNABORTED.to_errno());
        }
        drop(cmds);
    }
}

/// The header slot and payload buffer of entry `slot` (`io`, holding buffer `buf` of the
/// queue's ring `br`).
fn entry_bufs<'a>(
    io: &EntryIo,
    br: Option<&'a BufRing>,
    slot: SlotId,
    buf: Option<BufId>,
) -> (Buf<'a>, Buf<'a>) {
    match (io, br) {
        (EntryIo::Basic { header, payload }, _) => (Buf::User(*header), Buf::User(*payload)),
        (EntryIo::Ring, Some(br)) => (br.header(slot), br.buffer(buf)),
        (EntryIo::Ring, None) => (Buf::empty(), Buf::empty()),
    }
}

/// Whether the padding after `qid` and the padding of `init` are 0.
fn padding_clear(r: &uapi::furing_uring_cmd_req) -> bool {
    r.padding == 0 && r.init.padding == 0
}

/// Whether the bytes every command must leave 0 are 0: the paddings and the reserved tail
/// (so that they can carry an extension; a buffer-classes REGISTER's carries its sizes).
fn reserved_clear(r: &uapi::furing_uring_cmd_req) -> bool {
    padding_clear(r) && ffi::cmd_reserved(r).iter().all(|&b| b == 0)
}

/// Validates a basic-mode REGISTER's buffers (two iovecs: a header slot and a payload
/// buffer large enough for any request) and probes that both are writable now.
fn basic_io(sqe: &Sqe, limits: Limits) -> Result<EntryIo> {
    if sqe.len != 2 {
        return Err(EINVAL);
    }
    let [header, payload, ..] = read_iovecs(sqe.addr, 2)?;
    if header.len < HEADER_SIZE || payload.len < limits.max_payload {
        return Err(EINVAL);
    }
    header.probe_writable(HEADER_SIZE)?;
    payload.probe_writable(payload.len)?;
    Ok(EntryIo::Basic { header, payload })
}
