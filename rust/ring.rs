// SPDX-License-Identifier: GPL-2.0

//! The ring of a connection: one queue per possible CPU, each holding the entries the
//! server registered with `FURING_URING_CMD_REGISTER`.
//!
//! An entry owns the server's io_uring command while the command waits for a request
//! ([`ParkedCmd`]); a command leaves the entry only by being completed: with a request,
//! with an error at teardown (umount, server exit, fusectl abort), or through io_uring's
//! cancel callback when the server's ring goes away.

use crate::entry::{Entry, EntryState};
use crate::ffi::{ParkedCmd, UringCmd};
use crate::uapi;
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
};

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
    #[pin]
    inner: SpinLock<QueueInner>,
}

struct QueueInner {
    /// Entries, in registration order.
    entries: KVec<Entry>,
    /// Id of the next entry registered (identifies an entry while its command is parked).
    next_id: u64,
    /// Set at teardown: no new entries.
    stopped: bool,
}

impl Queue {
    fn new(qid: u16) -> impl PinInit<Self> {
        pin_init!(Self {
            qid,
            inner <- new_spinlock!(QueueInner { entries: KVec::new(), next_id: 0, stopped: false }),
        })
    }

    /// Registers `entry` and parks `cmd` in it until a request comes.
    ///
    /// Parking marks the command cancelable, which may sleep, so it happens between two
    /// critical sections; a teardown in between completes the command here.
    fn register(&self, mut entry: Entry, cmd: UringCmd, issue_flags: u32) -> Result {
        let id = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(ENOTCONN);
            }
            let id = inner.next_id;
            inner.next_id += 1;
            entry.set_id(id);
            inner.entries.push(entry, GFP_ATOMIC)?;
            id
        };
        let parked = cmd.park(issue_flags);
        let mut inner = self.inner.lock();
        match inner.entries.iter_mut().find(|e| e.id() == id) {
            Some(entry) => entry.set_cmd(parked),
            None => {
                drop(inner);
                parked.complete(ENOTCONN.to_errno(), issue_flags);
            }
        }
        Ok(())
    }

    /// Takes the parked command `cmd` out of its entry, if it is parked here.
    fn take_parked(&self, cmd: &UringCmd) -> Option<ParkedCmd> {
        let mut inner = self.inner.lock();
        let pos = inner
            .entries
            .iter()
            .position(|e| e.state() == EntryState::Available && e.holds(cmd))?;
        // The entry goes with its command: a cancelled entry cannot be used again.
        let entry = inner.entries.remove(pos).ok()?;
        entry.into_cmd()
    }

    /// Stops the queue and hands out every entry (their parked commands complete with
    /// `-ENOTCONN` when dropped, outside the lock).
    fn stop(&self) -> KVec<Entry> {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        core::mem::take(&mut inner.entries)
    }

    /// Number of registered entries.
    #[allow(dead_code)]
    pub(crate) fn nr_entries(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// The queue index.
    #[allow(dead_code)]
    pub(crate) fn qid(&self) -> u16 {
        self.qid
    }
}

/// All queues of a connection.
pub(crate) struct Ring {
    queues: KVec<Pin<KBox<Queue>>>,
}

impl Ring {
    /// Makes `nr_queues` empty queues.
    pub(crate) fn new(nr_queues: usize) -> Result<Self> {
        let mut queues = KVec::with_capacity(nr_queues, GFP_KERNEL)?;
        for qid in 0..nr_queues {
            let qid = u16::try_from(qid).map_err(|_| EINVAL)?;
            queues.push(KBox::pin_init(Queue::new(qid), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        Ok(Self { queues })
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
    pub(crate) fn commit_and_fetch(&self, _cmd: &UringCmd, sqe: &crate::ffi::Sqe) -> Result {
        let _queue = self.queue(sqe.req.qid)?;
        // No request travels the ring yet, so no commit id is known.
        Err(ENOENT)
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

    /// Teardown: stops every queue and completes every parked command with `-ENOTCONN`.
    /// Process context only (completing a command may sleep).
    pub(crate) fn stop(&self) {
        for queue in self.queues.iter() {
            drop(queue.stop());
        }
    }

    /// Registered entries per queue, for statistics.
    #[allow(dead_code)]
    pub(crate) fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.iter().map(|q| q.as_ref().get_ref())
    }
}

/// The size of one request header slot.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<uapi::furing_uring_req_header>();

/// Shares a ring between the connection and its users.
#[allow(dead_code)]
pub(crate) type RingRef = Arc<Ring>;
