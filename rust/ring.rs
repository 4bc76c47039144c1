// SPDX-License-Identifier: GPL-2.0

//! The ring of a connection: one queue per possible CPU, each holding the entries the
//! server registered with `FURING_URING_CMD_REGISTER` and the requests waiting for one.
//!
//! An entry owns the server's io_uring command while the command waits for a request
//! ([`ParkedCmd`]); a command leaves the entry only by being completed: with a request
//! (from task work in the server's task), with an error at teardown (umount, server exit,
//! fusectl abort), or through io_uring's cancel callback when the server's ring goes away.

use crate::bufring::BufRing;
use crate::copy;
use crate::entry::{Entry, EntryState};
use crate::ffi::{self, FuseReq, ParkedCmd, UringCmd};
use crate::stats;
use crate::uapi;
use crate::zerocopy::ZcRegistration;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
    time::{Instant, Monotonic},
};

/// A point in time, taken only while request timing is on (debugfs `furing/timing`):
/// reading the clock several times per request is not free.
type Stamp = Option<Instant<Monotonic>>;

/// Now, if request timing is on.
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

/// Requests waiting for an entry, each with the time it was queued.
type Waiting = KVec<(FuseReq, Stamp)>;

/// Which queue of a connection a command is for, and the queue's limits.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    /// Smallest payload buffer an entry may register: room for the largest request.
    pub(crate) max_payload: usize,
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
}

struct QueueInner {
    /// Entries, in registration order.
    entries: KVec<Entry>,
    /// Requests waiting for an entry (or a payload buffer), oldest first.
    waiting: Waiting,
    /// Id of the next entry registered.
    next_id: u64,
    /// Set at teardown: no new entries, no new requests.
    stopped: bool,
    /// The queue flags of the first REGISTER; every later one must match.
    flags: Option<u64>,
    /// Buffer-ring queues: the ring, set up by the first REGISTER.
    br: Option<Arc<BufRing>>,
    /// Payload buffers no request holds (room for all of them is reserved up front).
    free_bufs: KVec<u32>,
    /// Most requests seen waiting for a payload buffer at once.
    buf_wait_max: usize,
    /// Time (ns) requests spent waiting for an entry or a payload buffer (while timing is
    /// on).
    wait_ns: u64,
}

impl QueueInner {
    /// Hands waiting requests, oldest first, to available entries -- with a payload
    /// buffer when the queue has a buffer ring and the request has payload -- and
    /// schedules their task work. Stops at the first request that cannot go yet.
    fn pump(&mut self) {
        while let Some(&(req, _)) = self.waiting.first() {
            let Some(i) = self.entries.iter().position(Entry::is_available) else {
                return;
            };
            let zero_copy = self
                .br
                .as_ref()
                .is_some_and(|br| br.zero_copies(req).is_some());
            let buf = if self.br.is_some() && req.has_payload(zero_copy) {
                let Some(buf) = self.free_bufs.pop() else {
                    self.buf_wait_max = self.buf_wait_max.max(self.waiting.len());
                    return;
                };
                Some(buf)
            } else {
                None
            };
            let Ok((req, queued)) = self.waiting.remove(0) else {
                return;
            };
            let now = stamp();
            self.wait_ns += nanos_between(queued, now);
            let e = &mut self.entries[i];
            if let Some(buf) = buf {
                e.set_buf(buf);
            }
            e.set_state(EntryState::Sending(req));
            e.set_queued_at(now);
            if let Some(cmd) = e.cmd() {
                cmd.send_in_task();
            }
        }
    }

    /// Takes entry `i` out (freeing its payload buffer). When it was the last entry of a
    /// buffer-ring queue, the ring goes too -- its pinned memory with the server's
    /// io_uring, not only with the connection -- and the next REGISTER sets the queue up
    /// afresh. Both are for the caller to drop after the lock.
    fn take_entry(&mut self, i: usize) -> (Option<Entry>, Option<Arc<BufRing>>) {
        self.free_buf(i);
        let entry = self.entries.remove(i).ok();
        let br = if self.entries.is_empty() && self.br.is_some() {
            self.flags = None;
            self.free_bufs = KVec::new();
            self.br.take()
        } else {
            None
        };
        self.pump();
        (entry, br)
    }

    /// Returns the payload buffer of entry `i`, if it holds one, to the free buffers;
    /// the caller then pumps, so that waiting requests may have it.
    fn free_buf(&mut self, i: usize) {
        if let Some(buf) = self.entries.get_mut(i).and_then(Entry::take_buf) {
            // Never allocates: `free_bufs` has room for every buffer of the ring.
            let _ = self.free_bufs.push_within_capacity(buf);
        }
    }
}

impl Queue {
    fn new(qid: u16) -> impl PinInit<Self> {
        pin_init!(Self {
            qid,
            sent: AtomicU64::new(0),
            zc_requests: AtomicU64::new(0),
            zc_bytes: AtomicU64::new(0),
            copy_in_ns: AtomicU64::new(0),
            copy_out_ns: AtomicU64::new(0),
            task_work_ns: AtomicU64::new(0),
            inner <- new_spinlock!(QueueInner {
                entries: KVec::new(),
                waiting: KVec::new(),
                next_id: 0,
                stopped: false,
                flags: None,
                br: None,
                free_bufs: KVec::new(),
                buf_wait_max: 0,
                wait_ns: 0,
            }),
        })
    }

    /// Parks `parked` in entry `id` (state `Busy`), frees the payload buffer the entry
    /// held for its last request, and makes the entry available, or gives it a waiting
    /// request. A teardown in between completes the command here.
    fn park_in(&self, id: u64, parked: ParkedCmd, issue_flags: u32) {
        let mut inner = self.inner.lock();
        let stopped = inner.stopped;
        let Some(i) = inner.entries.iter().position(|e| e.id() == id) else {
            drop(inner);
            parked.complete(ENOTCONN.to_errno(), issue_flags);
            return;
        };
        if stopped {
            let gone = inner.take_entry(i);
            drop(inner);
            drop(gone);
            parked.complete(ENOTCONN.to_errno(), issue_flags);
            return;
        }
        let e = &mut inner.entries[i];
        e.set_cmd(parked);
        e.set_state(EntryState::Available);
        inner.free_buf(i);
        inner.pump();
    }

    /// Registers `entry` and parks `cmd` in it until a request comes.
    ///
    /// Parking marks the command cancelable, which may sleep, so it happens between two
    /// critical sections.
    ///
    /// `entry` is dropped after the lock on failure (it may hold the last reference on a
    /// buffer ring).
    fn register(&self, mut entry: Entry, flags: u64, cmd: UringCmd, issue_flags: u32) -> Result {
        let id = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(ENOTCONN);
            }
            match inner.flags {
                Some(f) if f != flags => return Err(EINVAL),
                _ => inner.flags = Some(flags),
            }
            if let Some(slot) = entry.slot() {
                if inner.entries.iter().any(|e| e.slot() == Some(slot)) {
                    return Err(EEXIST);
                }
            }
            let id = inner.next_id;
            inner.next_id += 1;
            entry.set_id(id);
            entry.set_state(EntryState::Busy);
            inner.entries.push(entry, GFP_ATOMIC)?;
            id
        };
        self.park_in(id, cmd.park(issue_flags), issue_flags);
        Ok(())
    }

    /// Queues `req` behind the requests already waiting and hands out what can go; gives
    /// it back when the queue cannot take it (stopped, no entries, no memory).
    fn send(&self, req: FuseReq) -> core::result::Result<(), FuseReq> {
        let mut inner = self.inner.lock();
        if inner.stopped || inner.entries.is_empty() {
            return Err(req);
        }
        if inner.waiting.push((req, stamp()), GFP_ATOMIC).is_err() {
            return Err(req);
        }
        req.clear_flag(ffi::raw::fuse_req_flag_FR_PENDING);
        inner.pump();
        Ok(())
    }

    /// The buffer ring of the queue, if it has one and `flags` are the queue's flags;
    /// `EINVAL` when the queue was registered with other flags.
    fn bufring(&self, flags: u64) -> Result<Option<Arc<BufRing>>> {
        let inner = self.inner.lock();
        match inner.flags {
            Some(f) if f != flags => Err(EINVAL),
            _ => Ok(inner.br.clone()),
        }
    }

    /// Installs `br` (with `free`, every buffer id) as the queue's buffer ring, unless a
    /// concurrent REGISTER was first: returns the ring the queue has. An unused `br` is
    /// dropped after the lock (dropping unpins, which sleeps).
    fn install_bufring(&self, br: Arc<BufRing>, free: KVec<u32>) -> Result<Arc<BufRing>> {
        let mut unused = Some(br);
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(ENOTCONN);
        }
        if let Some(cur) = &inner.br {
            return match &unused {
                Some(new) if new.flags() == cur.flags() => Ok(cur.clone()),
                _ => Err(EINVAL),
            };
        }
        if inner.flags.is_some() {
            // Basic entries came first.
            return Err(EINVAL);
        }
        let br = unused.take().ok_or(EINVAL)?;
        inner.flags = Some(br.flags());
        inner.free_bufs = free;
        inner.br = Some(br.clone());
        Ok(br)
    }

    /// Whether the queue has entries.
    fn has_entries(&self) -> bool {
        !self.inner.lock().entries.is_empty()
    }

    /// Task work for `cmd`: copies its entry's request to the server and completes the
    /// command. Returns false when `cmd` is not an entry of this queue.
    fn send_in_task(&self, cmd: &UringCmd, cancel: bool, issue_flags: u32) -> bool {
        let mut inner = self.inner.lock();
        let Some(i) = inner
            .entries
            .iter()
            .position(|e| e.holds(cmd) && matches!(e.state(), EntryState::Sending(_)))
        else {
            return false;
        };
        let stopped = inner.stopped;
        let e = &mut inner.entries[i];
        let EntryState::Sending(req) = e.set_state(EntryState::Copying) else {
            return true;
        };
        let io = e.io();
        let queued = e.take_queued_at();
        let Some(parked) = e.take_cmd() else {
            return true;
        };
        let id = e.id();
        drop(inner);

        let mut zc = None;
        let res = if cancel || stopped {
            Err(ENOTCONN)
        } else {
            let start = stamp();
            self.task_work_ns
                .fetch_add(nanos_between(queued, start), Ordering::Relaxed);
            let res = self.copy_in(cmd, req, &io, &mut zc, issue_flags);
            add_since(&self.copy_in_ns, start);
            res
        };
        match res {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                let mut inner = self.inner.lock();
                if let Some(e) = inner.entries.iter_mut().find(|e| e.id() == id) {
                    e.set_state(EntryState::Userspace(req.unique()));
                    if let Some(reg) = zc.take() {
                        e.set_zc(reg);
                    }
                }
                drop(inner);
                // The entry went meanwhile (teardown): nobody else can unregister.
                if let Some(reg) = zc {
                    reg.unregister(cmd, issue_flags);
                }
                parked.complete(0, issue_flags);
            }
            Err(err) => {
                if let Some(reg) = zc {
                    reg.unregister(cmd, issue_flags);
                }
                // The entry is gone with its command; the request ends here.
                drop(self.remove_entry(id));
                let code = if err == ENOTCONN {
                    ECONNABORTED.to_errno()
                } else {
                    EIO.to_errno()
                };
                req.end(code);
                let res = if cancel { ECANCELED } else { err };
                parked.complete(res.to_errno(), issue_flags);
            }
        }
        true
    }

    /// Copies `req` into the entry (`io`), registering its data pages first on a
    /// zero-copy queue (`zc` then holds the registration, also on failure), and hashes
    /// it on the processing queue, where an abort finds it before the server can see it.
    fn copy_in(
        &self,
        cmd: &UringCmd,
        req: FuseReq,
        io: &crate::entry::EntryIo,
        zc: &mut Option<ZcRegistration>,
        issue_flags: u32,
    ) -> Result {
        if let Some((slot, dir, len)) = io.zero_copy(req) {
            *zc = Some(ZcRegistration::register(cmd, req, dir, slot, issue_flags)?);
            self.zc_requests.fetch_add(1, Ordering::Relaxed);
            self.zc_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        let (header, payload, buf_id) = io.bufs();
        copy::request_to_ring(req, &header, &payload, buf_id, zc.is_some())?;
        if ffi::pq_add(ffi::fud_of_file(cmd.file()), req) {
            Ok(())
        } else {
            Err(ENOTCONN)
        }
    }

    /// `COMMIT_AND_FETCH`: ends the request `commit_id` with the server's reply and parks
    /// `cmd` in the entry again.
    fn commit_and_fetch(&self, cmd: UringCmd, commit_id: u64, issue_flags: u32) -> Result {
        let (id, io, zc) = {
            let mut inner = self.inner.lock();
            let e = inner
                .entries
                .iter_mut()
                .find(|e| matches!(e.state(), EntryState::Userspace(c) if *c == commit_id))
                .ok_or(ENOENT)?;
            e.set_state(EntryState::Busy);
            (e.id(), e.io(), e.take_zc())
        };
        let fud = ffi::fud_of_file(cmd.file());
        let req = ffi::pq_take(fud, commit_id);
        if let Some(req) = req {
            let (header, payload, _) = io.bufs();
            let start = stamp();
            let res = copy::reply_from_ring(req, &header, &payload, zc.is_some());
            add_since(&self.copy_out_ns, start);
            ffi::pq_release(fud, req, res.err().map_or(0, |e| e.to_errno()));
        }
        // The registration goes before the request ends, on every path.
        if let Some(reg) = zc {
            reg.unregister(&cmd, issue_flags);
        }
        let Some(req) = req else {
            // Aborted meanwhile: the core ended the request; the entry goes.
            drop(self.remove_entry(id));
            return Err(ENOTCONN);
        };
        req.end(0);
        // One critical section frees the payload buffer and parks the entry again.
        self.park_in(id, cmd.park(issue_flags), issue_flags);
        Ok(())
    }

    /// Takes entry `id` out of the queue (see [`QueueInner::take_entry`]), to drop what
    /// comes back outside the lock.
    fn remove_entry(&self, id: u64) -> (Option<Entry>, Option<Arc<BufRing>>) {
        let mut inner = self.inner.lock();
        match inner.entries.iter().position(|e| e.id() == id) {
            Some(pos) => inner.take_entry(pos),
            None => (None, None),
        }
    }

    /// Takes the parked command `cmd` out of its entry, if it waits here.
    fn take_parked(&self, cmd: &UringCmd) -> Option<ParkedCmd> {
        // The entry goes with its command (a cancelled entry cannot be used again), and is
        // dropped after the lock.
        let (entry, _br) = {
            let mut inner = self.inner.lock();
            let pos = inner
                .entries
                .iter()
                .position(|e| e.is_available() && e.holds(cmd))?;
            inner.take_entry(pos)
        };
        entry?.take_cmd()
    }

    /// Stops the queue: returns the entries that can go now (their parked commands
    /// complete with `-ENOTCONN` when dropped) and the waiting requests. Entries with
    /// task work pending stay; the task work finishes them.
    ///
    /// The queue's reference on its buffer ring is returned too, to drop in process
    /// context; entries still busy keep the ring alive until they go.
    fn stop(&self) -> (KVec<Entry>, Waiting, Option<Arc<BufRing>>) {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        let waiting = core::mem::take(&mut inner.waiting);
        let br = inner.br.take();
        let mut gone = KVec::new();
        let mut i = 0;
        while i < inner.entries.len() {
            if matches!(inner.entries[i].state(), EntryState::Sending(_)) {
                i += 1;
                continue;
            }
            if let Ok(e) = inner.entries.remove(i) {
                if gone.push(e, GFP_ATOMIC).is_err() {
                    // Dropping here would complete under the lock; keep it for later.
                    break;
                }
            }
        }
        (gone, waiting, br)
    }

    /// Registered entries, and those whose request is with the server (or on its way).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let busy = inner.entries.iter().filter(|e| e.has_request()).count();
        (inner.entries.len(), busy)
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
                br.nr_bufs() - inner.free_bufs.len() as u32,
                br.pinned_bytes(),
                inner.buf_wait_max,
            ),
            None => (flags, 0, 0, 0, inner.buf_wait_max),
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
            self.inner.lock().wait_ns / 1000,
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
    /// Requests that went the classic read()/write() way.
    classic: AtomicU64,
}

impl Ring {
    /// Makes `nr_queues` empty queues.
    pub(crate) fn new(nr_queues: usize) -> Result<Self> {
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            let qid = u16::try_from(qid).map_err(|_| EINVAL)?;
            queues.push(KBox::pin_init(Queue::new(qid), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(Self {
            queues,
            classic: AtomicU64::new(0),
        })
    }

    fn queue(&self, qid: u16) -> Result<&Queue> {
        self.queues
            .get(usize::from(qid))
            .map(|q| q.as_ref().get_ref())
            .ok_or(EINVAL)
    }

    /// `FURING_URING_CMD_REGISTER`: validates the entry's buffers and parks `cmd` in a
    /// new entry of queue `req.qid`. On success the command is owned by the ring.
    pub(crate) fn register(
        &self,
        cmd: UringCmd,
        sqe: &crate::ffi::Sqe,
        limits: Limits,
        issue_flags: u32,
    ) -> Result {
        let flags = sqe.req.flags;
        let bufring = flags & uapi::FURING_URING_BUFRING != 0;
        let pinned = uapi::FURING_URING_PINNED_HEADERS | uapi::FURING_URING_PINNED_BUFFERS;
        let zero_copy = flags & uapi::FURING_URING_ZERO_COPY != 0;
        if flags & !uapi::FURING_URING_FLAGS_ALL != 0
            || (!bufring && flags != 0)
            || (zero_copy && flags & pinned != pinned)
        {
            return Err(EINVAL);
        }
        // Zero-copy hands the client's pages to the server's io_uring.
        if zero_copy && !ffi::capable_sys_admin() {
            return Err(EPERM);
        }
        let queue = self.queue(sqe.req.qid)?;
        if !bufring {
            return queue.register(Entry::new(sqe, limits)?, flags, cmd, issue_flags);
        }
        let br = match queue.bufring(flags)? {
            Some(br) => br,
            None => {
                let br = BufRing::new(sqe, limits)?;
                let mut free = KVec::with_capacity(br.nr_bufs() as usize, GFP_KERNEL)?;
                for id in (0..br.nr_bufs()).rev() {
                    free.push(id, GFP_KERNEL)?;
                }
                queue.install_bufring(Arc::new(br, GFP_KERNEL)?, free)?
            }
        };
        let slot = u32::from(sqe.buf_index);
        if slot >= br.depth() {
            return Err(EINVAL);
        }
        queue.register(Entry::new_in_ring(br, slot), flags, cmd, issue_flags)
    }

    /// `FURING_URING_CMD_COMMIT_AND_FETCH`: commits the reply of `commit_id`.
    pub(crate) fn commit_and_fetch(
        &self,
        cmd: UringCmd,
        sqe: &crate::ffi::Sqe,
        issue_flags: u32,
    ) -> Result {
        if sqe.req.commit_id == 0 {
            return Err(EINVAL);
        }
        self.queue(sqe.req.qid)?
            .commit_and_fetch(cmd, sqe.req.commit_id, issue_flags)
    }

    /// Sends `req` over the ring, on the queue of `cpu` or else another one with entries;
    /// gives it back when no queue takes it (it then goes the classic way).
    pub(crate) fn send(&self, req: FuseReq, cpu: usize) -> core::result::Result<(), FuseReq> {
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

    /// Task work for `cmd` (see [`Queue::send_in_task`]).
    pub(crate) fn send_in_task(&self, cmd: UringCmd, cancel: bool, issue_flags: u32) {
        for q in self.queues.iter() {
            if q.send_in_task(&cmd, cancel, issue_flags) {
                return;
            }
        }
    }

    /// io_uring's cancel callback for `cmd`: completes it if it is parked here.
    pub(crate) fn cancel(&self, cmd: UringCmd, issue_flags: u32) {
        for queue in self.queues.iter() {
            if let Some(parked) = queue.take_parked(&cmd) {
                parked.complete(ENOTCONN.to_errno(), issue_flags);
                return;
            }
        }
    }

    /// Teardown: stops every queue, completes the parked commands with `-ENOTCONN` and
    /// ends the waiting requests. Process context only (completing may sleep).
    pub(crate) fn stop(&self) {
        for queue in self.queues.iter() {
            let (mut entries, waiting, br) = queue.stop();
            // Requests the server holds with pages registered: unregister with a parked
            // command of the same ring if there is one (else the ring's exit does it).
            let regs: KVec<ZcRegistration> = {
                let mut v = KVec::new();
                for e in entries.iter_mut() {
                    if let Some(reg) = e.take_zc() {
                        if let Err(kernel::alloc::AllocError) = v.push(reg, GFP_KERNEL) {
                            break;
                        }
                    }
                }
                v
            };
            for reg in regs {
                reg.unregister_parked(entries.iter().filter_map(Entry::cmd));
            }
            drop(entries);
            drop(br);
            for (req, _) in waiting {
                req.end(ECONNABORTED.to_errno());
            }
        }
    }
}

/// The size of one request header slot.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<uapi::furing_uring_req_header>();
