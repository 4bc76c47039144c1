// SPDX-License-Identifier: GPL-2.0

//! The ring of a connection: one queue per possible CPU, each holding the entries the
//! server registered with `FURING_URING_CMD_REGISTER` and the requests waiting for one.
//!
//! An entry owns the server's io_uring command while the command waits for a request
//! ([`ParkedCmd`]); a command leaves the entry only by being completed: with a request
//! (from task work in the server's task), with an error at teardown (umount, server exit,
//! fusectl abort), or through io_uring's cancel callback when the server's ring goes away.

use crate::copy;
use crate::entry::{Entry, EntryState};
use crate::ffi::{self, FuseReq, ParkedCmd, UringCmd};
use crate::uapi;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{new_spinlock, prelude::*, sync::SpinLock};

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
    #[pin]
    inner: SpinLock<QueueInner>,
}

struct QueueInner {
    /// Entries, in registration order.
    entries: KVec<Entry>,
    /// Requests waiting for an entry, oldest first.
    waiting: KVec<FuseReq>,
    /// Id of the next entry registered.
    next_id: u64,
    /// Set at teardown: no new entries, no new requests.
    stopped: bool,
}

impl QueueInner {
    /// Gives a waiting request to entry `i` if there is one, else leaves it available.
    /// Returns whether task work must be scheduled on the entry's command.
    fn feed(&mut self, i: usize) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        let Ok(req) = self.waiting.remove(0) else {
            return false;
        };
        match self.entries.get_mut(i) {
            Some(e) => {
                e.set_state(EntryState::Sending(req));
                true
            }
            None => false,
        }
    }
}

impl Queue {
    fn new(qid: u16) -> impl PinInit<Self> {
        pin_init!(Self {
            qid,
            sent: AtomicU64::new(0),
            inner <- new_spinlock!(QueueInner {
                entries: KVec::new(),
                waiting: KVec::new(),
                next_id: 0,
                stopped: false,
            }),
        })
    }

    /// Parks `parked` in entry `id` (state `Busy`) and makes it available, or gives it a
    /// waiting request. A teardown in between completes the command here.
    fn park_in(&self, id: u64, parked: ParkedCmd, issue_flags: u32) {
        let mut inner = self.inner.lock();
        let stopped = inner.stopped;
        let Some(i) = inner.entries.iter().position(|e| e.id() == id) else {
            drop(inner);
            parked.complete(ENOTCONN.to_errno(), issue_flags);
            return;
        };
        if stopped {
            let entry = inner.entries.remove(i).ok();
            drop(inner);
            drop(entry);
            parked.complete(ENOTCONN.to_errno(), issue_flags);
            return;
        }
        let send = {
            let e = &mut inner.entries[i];
            e.set_cmd(parked);
            e.set_state(EntryState::Available);
            inner.feed(i)
        };
        if send {
            if let Some(cmd) = inner.entries[i].cmd() {
                cmd.send_in_task();
            }
        }
    }

    /// Registers `entry` and parks `cmd` in it until a request comes.
    ///
    /// Parking marks the command cancelable, which may sleep, so it happens between two
    /// critical sections.
    fn register(&self, mut entry: Entry, cmd: UringCmd, issue_flags: u32) -> Result {
        let id = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(ENOTCONN);
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

    /// Hands `req` to an available entry, or queues it; gives it back when the queue
    /// cannot take it (stopped, no entries, no memory).
    fn send(&self, req: FuseReq) -> core::result::Result<(), FuseReq> {
        let mut inner = self.inner.lock();
        if inner.stopped || inner.entries.is_empty() {
            return Err(req);
        }
        if let Some(i) = inner.entries.iter().position(Entry::is_available) {
            req.clear_flag(ffi::raw::fuse_req_flag_FR_PENDING);
            let e = &mut inner.entries[i];
            e.set_state(EntryState::Sending(req));
            if let Some(cmd) = e.cmd() {
                cmd.send_in_task();
            }
            return Ok(());
        }
        if inner.waiting.push(req, GFP_ATOMIC).is_err() {
            return Err(req);
        }
        req.clear_flag(ffi::raw::fuse_req_flag_FR_PENDING);
        Ok(())
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
        let (header, payload) = (e.header, e.payload);
        let Some(parked) = e.take_cmd() else {
            return true;
        };
        let id = e.id();
        drop(inner);

        let res = if cancel || stopped {
            Err(ENOTCONN)
        } else {
            copy::request_to_ring(req, &header, &payload)
        };
        let res = res.and_then(|_| {
            // Hash the request where an abort finds it before the server can see it.
            if ffi::pq_add(ffi::fud_of_file(cmd.file()), req) {
                Ok(())
            } else {
                Err(ENOTCONN)
            }
        });
        match res {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                let mut inner = self.inner.lock();
                if let Some(e) = inner.entries.iter_mut().find(|e| e.id() == id) {
                    e.set_state(EntryState::Userspace(req.unique()));
                }
                drop(inner);
                parked.complete(0, issue_flags);
            }
            Err(err) => {
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

    /// `COMMIT_AND_FETCH`: ends the request `commit_id` with the server's reply and parks
    /// `cmd` in the entry again.
    fn commit_and_fetch(&self, cmd: UringCmd, commit_id: u64, issue_flags: u32) -> Result {
        let (id, header, payload) = {
            let mut inner = self.inner.lock();
            let e = inner
                .entries
                .iter_mut()
                .find(|e| matches!(e.state(), EntryState::Userspace(c) if *c == commit_id))
                .ok_or(ENOENT)?;
            e.set_state(EntryState::Busy);
            (e.id(), e.header, e.payload)
        };
        let fud = ffi::fud_of_file(cmd.file());
        match ffi::pq_take(fud, commit_id) {
            Some(req) => {
                let res = copy::reply_from_ring(req, &header, &payload);
                ffi::pq_release(fud, req, res.err().map_or(0, |e| e.to_errno()));
                req.end(0);
            }
            None => {
                // Aborted meanwhile: the core ended the request; the entry goes.
                drop(self.remove_entry(id));
                return Err(ENOTCONN);
            }
        }
        self.park_in(id, cmd.park(issue_flags), issue_flags);
        Ok(())
    }

    /// Takes entry `id` out of the queue (to drop it outside the lock).
    fn remove_entry(&self, id: u64) -> Option<Entry> {
        let mut inner = self.inner.lock();
        let pos = inner.entries.iter().position(|e| e.id() == id)?;
        inner.entries.remove(pos).ok()
    }

    /// Takes the parked command `cmd` out of its entry, if it waits here.
    fn take_parked(&self, cmd: &UringCmd) -> Option<ParkedCmd> {
        let mut inner = self.inner.lock();
        let pos = inner
            .entries
            .iter()
            .position(|e| e.is_available() && e.holds(cmd))?;
        // The entry goes with its command: a cancelled entry cannot be used again.
        let mut entry = inner.entries.remove(pos).ok()?;
        entry.take_cmd()
    }

    /// Stops the queue: returns the entries that can go now (their parked commands
    /// complete with `-ENOTCONN` when dropped) and the waiting requests. Entries with
    /// task work pending stay; the task work finishes them.
    fn stop(&self) -> (KVec<Entry>, KVec<FuseReq>) {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        let waiting = core::mem::take(&mut inner.waiting);
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
        (gone, waiting)
    }

    /// Registered entries, and those whose request is with the server (or on its way).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let busy = inner.entries.iter().filter(|e| e.has_request()).count();
        (inner.entries.len(), busy)
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
        if sqe.req.flags != 0 {
            // Buffer rings, pinned memory and zero-copy are not implemented yet.
            return Err(EINVAL);
        }
        let queue = self.queue(sqe.req.qid)?;
        let entry = Entry::new(sqe, limits)?;
        queue.register(entry, cmd, issue_flags)
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
            let (entries, waiting) = queue.stop();
            drop(entries);
            for req in waiting {
                req.end(ECONNABORTED.to_errno());
            }
        }
    }
}

/// The size of one request header slot.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<uapi::furing_uring_req_header>();
