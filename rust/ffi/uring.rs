// SPDX-License-Identifier: GPL-2.0

//! io_uring: the commands of `/dev/furing` while they are issued, parked (owned by
//! furing until completed) and run from task work, their PDU, and zero-copy buffers.

use super::fuse::{FuseDev, Req};
use super::raw;
use core::ptr::NonNull;
use kernel::{error::to_result, prelude::*, types::ForeignOwnable};

/// io_uring issue flags furing looks at (the enum is `int` in C).
pub(crate) const IO_URING_F_UNLOCKED: u32 = raw::io_uring_cmd_flags_IO_URING_F_UNLOCKED as u32;
pub(crate) const IO_URING_F_SQE128: u32 = raw::io_uring_cmd_flags_IO_URING_F_SQE128 as u32;
pub(crate) const IO_URING_F_CANCEL: u32 = raw::io_uring_cmd_flags_IO_URING_F_CANCEL as u32;

/// What a furing command's SQE says (copied while the command is issued).
pub(crate) type Sqe = raw::furing_sqe;

/// The 12 bytes after a command's `init`: `reserved`, which a `FURING_URING_BUF_CLASSES`
/// REGISTER reads as `class_buf_size`.
pub(crate) fn cmd_reserved(req: &raw::furing_uring_cmd_req) -> [u8; 12] {
    // SAFETY: Both members of the union are arrays of plain integers over the same 12
    // bytes: any bits are a valid `reserved`.
    unsafe { *req.__bindgen_anon_1.reserved.as_ref() }
}

/// The identity of an io_uring instance (its context), only ever compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingId(core::num::NonZeroUsize);

impl RingId {
    /// The identity of the io_uring context at `ctx` (never NULL for a command's ring;
    /// the niche keeps an `Option` of an entry's zero-copy registration the same size).
    fn of(ctx: usize) -> Self {
        Self(core::num::NonZeroUsize::new(ctx).unwrap_or(core::num::NonZeroUsize::MIN))
    }
}

/// Where a parked command's entry is: its queue and slot, kept in the command's PDU so that
/// task work and cancel find the entry without a search (as `dev_uring.c` keeps its entry).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Pdu {
    pub(crate) qid: u16,
    pub(crate) slot: u16,
}

/// An io_uring command on a `/dev/furing` file, while io_uring runs one of furing's
/// callbacks for it (issue, cancel, or task work).
///
/// # Invariants
///
/// `self.0` is valid, and holds a reference on its `/dev/furing` file, until the value is
/// parked or dropped (the callback returns).
pub(crate) struct UringCmd(NonNull<raw::io_uring_cmd>);

impl UringCmd {
    /// # Safety
    ///
    /// `cmd` must be a command of a `/dev/furing` file being issued, cancelled or run from
    /// furing's task work, valid until this value is parked or dropped.
    pub(super) unsafe fn from_raw(cmd: *mut raw::io_uring_cmd) -> Option<Self> {
        NonNull::new(cmd).map(Self)
    }

    /// The `fuse_dev` of `cmd`'s file, for as long as the callback that got `cmd` runs.
    ///
    /// # Safety
    ///
    /// `cmd` must be as for [`Self::from_raw`]; the borrow must not outlive the callback.
    pub(super) unsafe fn dev_of<'a>(cmd: NonNull<raw::io_uring_cmd>) -> &'a FuseDev {
        // SAFETY: The command holds its file during the callback (caller's guarantee),
        // whose `private_data` is the `fuse_dev` the core set at open, alive while the
        // file is.
        unsafe { FuseDev::from_raw((*cmd.as_ref().file).private_data.cast()) }
    }

    /// The command opcode (`sqe->cmd_op`).
    pub(crate) fn op(&self) -> u32 {
        // SAFETY: The command is valid (type invariant).
        unsafe { self.0.as_ref().cmd_op }
    }

    /// The fields furing uses from the SQE; only while the command is issued.
    pub(crate) fn sqe(&self) -> Sqe {
        let mut sqe = Sqe::default();
        // SAFETY: The command is being issued, so its SQE is readable (type invariant).
        unsafe { raw::furing_sqe_read(self.0.as_ptr(), &mut sqe) };
        sqe
    }

    /// The `fuse_dev` of the command's `/dev/furing` file.
    pub(crate) fn fuse_dev(&self) -> &FuseDev {
        // SAFETY: The command is valid and holds its file while `self` lives (invariant).
        unsafe { Self::dev_of(self.0) }
    }

    /// The io_uring the command belongs to.
    pub(crate) fn ring(&self) -> RingId {
        // SAFETY: The command is valid (type invariant).
        RingId::of(unsafe { raw::furing_cmd_ring(self.0.as_ptr()) } as usize)
    }

    /// Whether the command's io_uring is going away, as opposed to task work run cancelled
    /// because its task exited while the ring lives on with other tasks.
    pub(crate) fn ring_dying(&self) -> bool {
        // SAFETY: The command is valid (type invariant), and so is its io_uring context.
        unsafe { raw::furing_cmd_ring_dying(self.0.as_ptr()) }
    }

    /// Where the command's entry is (set by [`Self::park`]).
    pub(crate) fn pdu(&self) -> Pdu {
        // SAFETY: The PDU is 32 bytes of the command, as big as the command's lifetime;
        // `Pdu` is plain data that fits and any bytes are a value.
        unsafe { self.0.as_ref().pdu.as_ptr().cast::<Pdu>().read_unaligned() }
    }

    /// Zero-copy: registers the page argument's folios of `req` as buffer `index` of the
    /// command's io_uring (`dir`: `IO_BUF_DEST` for reads, `IO_BUF_SOURCE` for writes).
    /// `pages` owns what must live as long as the registration: io_uring hands it back
    /// to [`zc_release`], which drops it, when the buffer goes; on failure it is dropped
    /// here.
    pub(crate) fn zc_register<T: ForeignOwnable + Send + 'static>(
        &self,
        req: &Req,
        pages: T,
        dir: u8,
        index: u32,
        issue_flags: u32,
    ) -> Result {
        let ap = req.args_pages().ok_or(EINVAL)?;
        let priv_ = pages.into_foreign();
        // SAFETY: The command is being issued or run from its task work with
        // `issue_flags`; `ap` is the request's, valid while we own it; `priv_` is ours
        // until io_uring calls the release.
        let ret = unsafe {
            raw::furing_zc_register(
                self.0.as_ptr(),
                ap,
                Some(zc_release::<T>),
                priv_.cast(),
                dir,
                index,
                issue_flags,
            )
        };
        if ret != 0 {
            // SAFETY: Not registered: io_uring never saw `priv_`, which is still ours.
            drop(unsafe { T::from_foreign(priv_) });
        }
        to_result(ret)
    }

    /// Unregisters buffer `index` of the command's io_uring.
    pub(crate) fn zc_unregister(&self, index: u32, issue_flags: u32) -> Result {
        // SAFETY: The command is valid and being issued (or in its task work) with
        // `issue_flags`.
        to_result(unsafe { raw::io_buffer_unregister(self.0.as_ptr(), index, issue_flags) })
    }

    /// Hands the command over to furing: its PDU says where its entry is, it becomes
    /// cancelable, and `uring_cmd` returns `-EIOCBQUEUED`. The returned value owns it and
    /// must complete it. Marking cancelable may sleep (io_uring's lock): no spinlock held.
    pub(crate) fn park(self, pdu: Pdu, issue_flags: u32) -> ParkedCmd {
        // SAFETY: As in `pdu`; written before the command can be cancelled.
        unsafe {
            (*self.0.as_ptr())
                .pdu
                .as_mut_ptr()
                .cast::<Pdu>()
                .write_unaligned(pdu)
        };
        // SAFETY: The command is being issued with these flags (type invariant).
        unsafe { raw::io_uring_cmd_mark_cancelable(self.0.as_ptr(), issue_flags) };
        ParkedCmd { cmd: self.0 }
    }

    /// Takes over a command parked earlier, in its own task work (the callback's handle
    /// and the parked one are the same command).
    pub(crate) fn is(&self, parked: &ParkedCmd) -> bool {
        self.0 == parked.cmd
    }
}

/// An io_uring command parked by furing (marked cancelable, owned until completed).
///
/// # Invariants
///
/// `cmd` is a command of a `/dev/furing` file that furing parked and has not completed;
/// io_uring keeps it (and its file) alive until it is completed.
///
/// Dropping it completes it with `-ENOTCONN` from process context; that may sleep, so
/// it is never dropped under a spinlock (the queue hands what it takes out back to its
/// caller, who drops it after unlocking).
pub(crate) struct ParkedCmd {
    cmd: NonNull<raw::io_uring_cmd>,
}

// SAFETY: A parked command may be completed from any task (io_uring defers the CQE to
// the ring's task as needed).
unsafe impl Send for ParkedCmd {}

impl ParkedCmd {
    /// The io_uring the command belongs to.
    pub(crate) fn ring(&self) -> RingId {
        // SAFETY: The command is parked (invariant).
        RingId::of(unsafe { raw::furing_cmd_ring(self.cmd.as_ptr()) } as usize)
    }

    /// Unregisters buffer `index` of the command's io_uring, from process context outside
    /// the ring's own submission (io_uring takes its lock).
    pub(crate) fn zc_unregister(&self, index: u32) -> Result {
        // SAFETY: The command is parked (invariant).
        to_result(unsafe {
            raw::io_buffer_unregister(self.cmd.as_ptr(), index, IO_URING_F_UNLOCKED)
        })
    }

    /// The kick that queues task work in the server's task, which calls the transport's
    /// [`super::Transport::task_work`] for this command. Taken once per request the
    /// command is handed: when its entry goes from `Available` to `Sending` (the queue's
    /// pump, the one caller); until that task work runs, nothing else completes the
    /// command or takes another kick (the entry is `Sending` or `Aborted`).
    pub(crate) fn task_work(&self) -> Kick {
        Kick(self.cmd)
    }

    /// Completes the command with `res`; `issue_flags` as io_uring passed them to the
    /// current callback, or `IO_URING_F_UNLOCKED` from any other process context.
    pub(crate) fn complete(self, res: i32, issue_flags: u32) {
        let cmd = self.cmd;
        core::mem::forget(self);
        // SAFETY: The command is parked (invariant); completing it ends our ownership.
        unsafe { raw::__io_uring_cmd_done(cmd.as_ptr(), res, 0, issue_flags, false) };
    }
}

impl Drop for ParkedCmd {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: The command is parked (invariant); process context, no lock held.
        unsafe {
            raw::__io_uring_cmd_done(
                self.cmd.as_ptr(),
                ENOTCONN.to_errno(),
                0,
                IO_URING_F_UNLOCKED,
                false,
            )
        };
    }
}

/// The task work of a parked command, handed out by [`ParkedCmd::task_work`] and queued
/// (`io_uring_cmd_complete_in_task()`) when dropped: the queue moves the entry to
/// `Sending` under its lock and drops the kick after the unlock, so that the server's
/// task, woken by it, does not spin on that lock.
///
/// # Invariants
///
/// `self.0` is a parked command whose task work nothing else queues; until that task work
/// runs, nothing completes the command (its entry is `Sending` or `Aborted`, which only
/// the task work leaves), so it stays valid while the kick lives.
#[must_use]
pub(crate) struct Kick(NonNull<raw::io_uring_cmd>);

// SAFETY: Task work may be queued for a command from any task.
unsafe impl Send for Kick {}

impl Drop for Kick {
    fn drop(&mut self) {
        // SAFETY: The command is parked and its task work not queued yet (invariant);
        // queueing is atomic-safe.
        unsafe { raw::furing_cmd_send_in_task(self.0.as_ptr()) };
    }
}

/// Kicks to drop after an unlock: a few slots (no allocation under a lock); a kick that
/// finds them full is dropped at once, under the lock, as before the kicks were deferred.
#[derive(Default)]
pub(crate) struct Kicks([Option<Kick>; 4]);

impl Kicks {
    /// Keeps `kick` for later, or queues it now when every slot is taken.
    pub(crate) fn push(&mut self, kick: Kick) {
        match self.0.iter_mut().find(|k| k.is_none()) {
            Some(slot) => *slot = Some(kick),
            None => drop(kick),
        }
    }
}

/// io_uring's release callback of a zero-copy registration: drops what
/// [`UringCmd::zc_register`] handed over, which may hold the last module reference.
///
/// # Safety
///
/// Called by io_uring once per registration, with the `priv` of `zc_register::<T>`.
unsafe extern "C" fn zc_release<T: ForeignOwnable + Send + 'static>(priv_: *mut core::ffi::c_void) {
    let guard = super::CallbackGuard::new();
    // SAFETY: Caller's guarantee: `priv_` came from `T::into_foreign`, given back once.
    drop(unsafe { T::from_foreign(priv_.cast()) });
    drop(guard);
}

/// The task-work callback of a command holding a request (C trampoline: `furing_tw_cb`):
/// the transport of the command's channel takes it.
///
/// # Safety
///
/// Called by io_uring in the server's task for a command furing parked and scheduled
/// with [`ParkedCmd::send_in_task`].
#[no_mangle]
unsafe extern "C" fn furing_send_in_task(
    cmd: *mut raw::io_uring_cmd,
    cancel: bool,
    issue_flags: core::ffi::c_uint,
) {
    let Some(ptr) = NonNull::new(cmd) else {
        return;
    };
    // SAFETY: The command is parked by us and valid until completed, holding its file
    // during this call.
    let dev = unsafe { UringCmd::dev_of(ptr) };
    // The parked command holds its /dev/furing file, whose device holds the channel.
    let Some(chan) = dev.chan() else {
        return;
    };
    chan.task_work(UringCmd(ptr), cancel, issue_flags);
}
