// SPDX-License-Identifier: GPL-2.0

//! A furing connection: the transport side of one FUSE connection.
//!
//! The FUSE core calls the connection's `fuse_iqueue_ops` for every request, forget and
//! interrupt. furing installs its own operations right after the channel is created
//! (`fuse_dev_chan_new()` sets the classic `/dev/fuse` ones, which furing keeps and calls
//! for everything the classic read/write path carries). `fiq->priv` owns one reference on
//! the [`Conn`]; the core drops it through `release` when the last connection reference
//! goes (process context).

use crate::ffi::{self, raw, ClassicQueue, ModuleRef, OwnedQueue, Req, StaticTable, UringCmd};
use crate::ring::{Limits, Ring};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    bindings,
    ffi::{c_int, c_uint, c_void},
    impl_has_work, new_mutex, new_work,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    types::{ForeignOwnable, Opaque},
    workqueue::{Work, WorkItem},
};

kernel::sync::global_lock! {
    // SAFETY: `init_hooks()` initialises it from the module initializer, before any mount.
    unsafe(uninit) static WQ: SpinLock<Option<OwnedQueue>> = None;
}

/// The end callback of a request's `fuse_args`.
type EndFn = unsafe extern "C" fn(*mut raw::fuse_args, c_int);

/// Transport state of one FUSE connection.
#[pin_data]
pub(crate) struct Conn {
    /// The server answered FUSE_INIT with `FUSE_OVER_IO_URING`.
    server_uring: AtomicBool,
    /// The per-CPU queues of the server's entries.
    ring: Arc<Ring>,
    /// `furing/<conn>/queues` in debugfs, from `fill_super` (the connection has its device
    /// number then) to `kill_sb` (the number may be reused by the next mount at once).
    #[pin]
    stats: Mutex<Option<crate::stats::StatsFile>>,
    /// The iqueue; valid while `abort_wait` is on its wait queue (until `fiq_release`).
    fiq: *mut raw::fuse_iqueue,
    /// On `fiq->waitq`: the core has no abort callback, but `fuse_chan_abort()` clears
    /// `fiq->connected` and wakes this queue.
    #[pin]
    abort_wait: Opaque<bindings::wait_queue_entry>,
    /// Set once the abort was seen.
    aborted: AtomicBool,
    /// Tears the ring down after an abort, in process context.
    #[pin]
    abort_work: Work<Conn>,
    /// Keeps the module (and so `FIQ_OPS`) alive while the FUSE core can call into it.
    _module: ModuleRef,
}

// SAFETY: `fiq` is only dereferenced while the iqueue is alive (see the field), and the
// FUSE core serialises with its own locks; the rest is thread-safe.
unsafe impl Send for Conn {}
// SAFETY: As above.
unsafe impl Sync for Conn {}

impl_has_work! {
    impl HasWork<Self> for Conn { self.abort_work }
}

impl WorkItem for Conn {
    type Pointer = Arc<Conn>;

    fn run(this: Arc<Conn>) {
        // Completes every parked command with -ENOTCONN: the server stops waiting.
        this.ring.stop();
        // `this` may be the last reference, and with it the module's: dropped last, on
        // furing's own work queue, which module exit drains before the text goes.
        drop(this);
    }
}

impl Conn {
    /// Whether the server asked for io-uring in its FUSE_INIT reply.
    pub(crate) fn server_uring(&self) -> bool {
        self.server_uring.load(Ordering::Acquire)
    }

    /// Whether requests may go over the ring: io-uring negotiated and not aborted.
    /// (The abort itself sends the background queue with `fiq->connected` still set; those
    /// requests go the classic way, where the abort ends them.)
    fn ring_usable(&self) -> bool {
        // SAFETY: `fiq` is valid while the connection's iqueue is (it calls us).
        let connected = unsafe { core::ptr::read_volatile(&raw const (*self.fiq).connected) };
        self.server_uring()
            && !self.aborted.load(Ordering::Acquire)
            && connected != 0
            && !self.chan_aborted()
    }

    /// Whether `fuse_chan_abort()` started (it clears `fch->connected` first).
    fn chan_aborted(&self) -> bool {
        // SAFETY: The iqueue is embedded in its channel, valid as above.
        let fch = unsafe { kernel::container_of!(self.fiq, raw::fuse_chan, iq) };
        // SAFETY: As above.
        unsafe { core::ptr::read_volatile(&raw const (*fch).connected) == 0 }
    }
}

/// The task-work callback of a command holding a request (C trampoline: `furing_tw_cb`).
///
/// # Safety
///
/// Called by io_uring in the server's task for a command furing parked and scheduled.
#[no_mangle]
unsafe extern "C" fn furing_send_in_task(
    cmd: *mut raw::io_uring_cmd,
    cancel: bool,
    issue_flags: c_uint,
) {
    // SAFETY: The command is parked by us and valid until completed.
    let Some(cmd) = (unsafe { UringCmd::from_raw(cmd) }) else {
        return;
    };
    // The parked command holds its /dev/furing file, whose device holds the channel.
    let Some(fch) = cmd.fuse_dev().chan() else {
        return;
    };
    // SAFETY: The file keeps the channel and its connection alive.
    let conn = unsafe { conn_of(fch.iqueue()) };
    conn.ring.send_in_task(cmd, cancel, issue_flags);
}

/// Takes over the iqueue of a channel just made by `fuse_dev_chan_new()`.
///
/// # Safety
///
/// `fch` must be a new channel from `fuse_dev_chan_new()` that nothing else uses yet.
pub(crate) unsafe fn install(fch: *mut raw::fuse_chan) -> Result {
    // SAFETY: `fch` is a new, valid channel (caller's guarantee); its `iq.ops` is the
    // core's static `fuse_dev_fiq_ops`.
    let classic = unsafe { &*(*fch).iq.ops };
    // SAFETY: As above; the iqueue lives as long as the channel.
    let fiq = unsafe { &raw mut (*fch).iq };
    // SAFETY: The ring is dropped with the connection, in `fiq_release` at the latest,
    // while the channel (and its iqueue) is alive; `classic` are the core's operations.
    let classic =
        unsafe { ClassicQueue::new(core::ptr::NonNull::new(fiq).ok_or(EINVAL)?, classic) };
    let ring = Arc::new(
        Ring::new(kernel::cpu::nr_cpu_ids() as usize, classic)?,
        GFP_KERNEL,
    )?;
    let conn = Arc::pin_init(
        pin_init!(Conn {
            server_uring: AtomicBool::new(false),
            ring,
            stats <- new_mutex!(None),
            fiq,
            abort_wait <- Opaque::ffi_init(|wq| {
                // SAFETY: `wq` is the entry being initialised, pinned inside the Arc.
                unsafe { raw::furing_init_wait_entry(wq, Some(abort_wake)) }
            }),
            aborted: AtomicBool::new(false),
            abort_work <- new_work!("furing::Conn::abort_work"),
            _module: ModuleRef::this(),
        }),
        GFP_KERNEL,
    )?;
    let wait = conn.abort_wait.get();
    // SAFETY: Nothing uses the iqueue yet (caller's guarantee), so re-initialising it with
    // our operations is safe; `priv` owns the reference until `fiq_release`, which also
    // takes `wait` off the queue before the connection can go.
    unsafe {
        raw::fuse_iqueue_init(fiq, &FIQ_OPS.0, conn.into_foreign().cast());
        bindings::add_wait_queue(&raw mut (*fiq).waitq, wait);
    }
    Ok(())
}

/// Publishes the statistics of the connection of `fch` under its id (`fc->dev`).
///
/// # Safety
///
/// `fch` must be a channel set up by [`install`], not yet released.
pub(crate) unsafe fn publish_stats(fch: *mut raw::fuse_chan, conn_id: u32) {
    // SAFETY: Caller's guarantee.
    let conn = unsafe { conn_of(&raw mut (*fch).iq) };
    *conn.stats.lock() = crate::stats::create(conn_id, conn.ring.clone());
}

/// Removes the statistics of the connection of `fch` (its superblock goes).
///
/// # Safety
///
/// `fch` must be a channel set up by [`install`], not yet released.
pub(crate) unsafe fn unpublish_stats(fch: *mut raw::fuse_chan) {
    // SAFETY: Caller's guarantee.
    let conn = unsafe { conn_of(&raw mut (*fch).iq) };
    drop(conn.stats.lock().take());
}

/// Wake function of `abort_wait`: runs on every wake-up of `fiq->waitq` (with its lock
/// held), so it only checks for an abort and queues the teardown.
///
/// # Safety
///
/// Called by the wait queue code for `Conn::abort_wait` while it is queued.
unsafe extern "C" fn abort_wake(
    wq: *mut bindings::wait_queue_entry,
    _mode: c_uint,
    _flags: c_int,
    _key: *mut c_void,
) -> c_int {
    // SAFETY: `wq` is the `abort_wait` field of a live `Conn` inside an `Arc` (it is queued
    // only between `install` and `fiq_release`).
    let conn = unsafe { &*kernel::container_of!(Opaque::cast_from(wq), Conn, abort_wait) };
    // SAFETY: `fiq` is valid while the entry is queued.
    let connected = unsafe { core::ptr::read_volatile(&raw const (*conn.fiq).connected) };
    if connected == 0 && !conn.aborted.swap(true, Ordering::AcqRel) {
        // SAFETY: `conn` lives in an `Arc` (made by `install`), which it is borrowed from.
        let conn: Arc<Conn> = unsafe { ArcBorrow::from_raw(conn) }.into();
        // Already queued means the teardown is coming anyway. The queue exists while any
        // connection does (each holds the module).
        if let Some(wq) = WQ.lock().as_ref() {
            let _ = wq.queue().enqueue(conn);
        }
    }
    // Never an exclusive wake-up: readers of the device still get theirs.
    0
}

/// `file_operations::uring_cmd` of `/dev/furing`: `cmd` is a furing command; returns
/// `-EIOCBQUEUED` when furing keeps it, else its result.
pub(crate) fn uring_cmd(cmd: UringCmd, issue_flags: u32) -> c_int {
    let cancel = issue_flags & ffi::IO_URING_F_CANCEL != 0;
    // The command holds its `/dev/furing` file, whose device holds the channel.
    let Some(fch) = cmd.fuse_dev().chan() else {
        // Not mounted (or the mount went): nothing can be parked here.
        return if cancel { 0 } else { EPERM.to_errno() };
    };
    // SAFETY: `fch` is the live channel of a mounted /dev/furing file: a furing connection
    // whose `priv` is a `Conn` until the channel is released, which the file prevents.
    let conn = unsafe { conn_of(fch.iqueue()) };
    if cancel {
        conn.ring.cancel(cmd, issue_flags);
        return 0;
    }
    if issue_flags & ffi::IO_URING_F_SQE128 == 0 {
        // The command does not fit a 64-byte SQE.
        return EINVAL.to_errno();
    }
    let state = fch.state();
    let res = if !state.initialized {
        // FUSE_INIT not answered yet: the server retries.
        Err(EAGAIN)
    } else if !state.connected || conn.aborted.load(Ordering::Acquire) {
        Err(ENOTCONN)
    } else if !conn.server_uring() {
        Err(EOPNOTSUPP)
    } else {
        let sqe = cmd.sqe();
        let limits = Limits {
            max_payload: state.max_payload,
        };
        match cmd.op() {
            raw::furing_uring_cmd_FURING_URING_CMD_REGISTER => {
                conn.ring.register(cmd, &sqe, limits, issue_flags)
            }
            raw::furing_uring_cmd_FURING_URING_CMD_COMMIT_AND_FETCH => {
                conn.ring.commit_and_fetch(cmd, &sqe, issue_flags)
            }
            _ => Err(EINVAL),
        }
    };
    match res {
        Ok(()) => -(bindings::EIOCBQUEUED as c_int),
        Err(e) => e.to_errno(),
    }
}

/// The connection of `fiq`.
///
/// # Safety
///
/// `fiq` must be the iqueue of a channel set up by [`install`], not yet released.
unsafe fn conn_of<'a>(fiq: *mut raw::fuse_iqueue) -> ArcBorrow<'a, Conn> {
    // SAFETY: `priv` holds the reference made in `install`, alive until `fiq_release`.
    unsafe { <Arc<Conn> as ForeignOwnable>::borrow((*fiq).priv_.cast()) }
}

/// `fuse_iqueue_ops::send_forget`: forgets go the classic way (as in the in-tree ring).
///
/// # Safety
///
/// Called by the FUSE core on a furing connection.
unsafe extern "C" fn send_forget(fiq: *mut raw::fuse_iqueue, link: *mut raw::fuse_forget_link) {
    // SAFETY: Called by the core on a live furing connection.
    let conn = unsafe { conn_of(fiq) };
    // SAFETY: The core's forget, passed through to its own operation.
    unsafe { conn.ring.classic_path().send_forget(link) }
}

/// `fuse_iqueue_ops::send_interrupt`: interrupts go the classic way.
///
/// # Safety
///
/// Called by the FUSE core on a furing connection.
unsafe extern "C" fn send_interrupt(fiq: *mut raw::fuse_iqueue, req: *mut raw::fuse_req) {
    // SAFETY: Called by the core on a live furing connection.
    let conn = unsafe { conn_of(fiq) };
    // SAFETY: The core's request, passed through to its own operation.
    unsafe { conn.ring.classic_path().send_interrupt(req) }
}

/// `fuse_iqueue_ops::send_req`: delivers one request. May run under `fch->bg_lock`, so it
/// neither sleeps nor ends background requests itself.
///
/// # Safety
///
/// Called by the FUSE core on a furing connection with a request it owns.
unsafe extern "C" fn send_req(fiq: *mut raw::fuse_iqueue, req: *mut raw::fuse_req) {
    // SAFETY: Called by the core on a live furing connection.
    let conn = unsafe { conn_of(fiq) };
    // SAFETY: INIT's args are the core's to adjust until it is sent: read the opcode.
    let opcode = unsafe { (*req).in_.h.opcode };
    if opcode == raw::fuse_opcode_FUSE_INIT {
        // SAFETY: An INIT request not yet delivered: its args are ours to adjust.
        unsafe { init::hook(conn, req) };
    } else if conn.ring_usable() {
        // SAFETY: The core hands us the request until we end it or pass it on, on no list.
        if let Some(r) = unsafe { Req::from_raw(req) } {
            if r.is_reply() {
                // SAFETY: `fiq` and `req` are the core's; assigning the unique id is step
                // one of sending, whichever path the request then takes.
                unsafe { raw::fuse_request_assign_unique(fiq, req) };
                let cpu = kernel::cpu::CpuId::current().as_u32() as usize;
                match conn.ring.send(r, cpu) {
                    Ok(()) => return,
                    Err(r) => {
                        conn.ring.count_classic();
                        return conn.ring.classic_path().send(r);
                    }
                }
            }
            // Not ours after all: the classic path takes the raw request below.
            let _ = r.into_raw();
        }
    }
    conn.ring.count_classic();
    // SAFETY: The core's request, passed through to its own operation.
    unsafe { conn.ring.classic_path().send_raw(req) }
}

/// `fuse_iqueue_ops::release`: drops the connection's transport state.
///
/// # Safety
///
/// Called by the FUSE core once, when the channel goes (process context).
unsafe extern "C" fn fiq_release(fiq: *mut raw::fuse_iqueue) {
    // SAFETY: `priv` holds the reference made in `install`; this is its last use.
    let conn = unsafe { <Arc<Conn> as ForeignOwnable>::from_foreign((*fiq).priv_.cast()) };
    // SAFETY: `fiq` is valid for this call.
    unsafe { (*fiq).priv_ = core::ptr::null_mut::<c_void>() };
    // SAFETY: `abort_wait` was queued on `fiq->waitq` in `install`.
    unsafe { bindings::remove_wait_queue(&raw mut (*fiq).waitq, conn.abort_wait.get()) };
    // Whatever is still parked completes now (the channel is going: process context).
    conn.ring.stop();
    // Last: this may be the final reference on the connection, and on the module.
    drop(conn);
}

static FIQ_OPS: StaticTable<raw::fuse_iqueue_ops> = StaticTable(raw::fuse_iqueue_ops {
    send_forget: Some(send_forget),
    send_interrupt: Some(send_interrupt),
    send_req: Some(send_req),
    release: Some(fiq_release),
});

/// FUSE_INIT: offer io-uring to the server and see its answer.
///
/// INIT always travels the classic path. Its request is built by the core
/// (`fuse_new_init`, static) and its reply handled by `process_init_reply` (static), so
/// furing adjusts the request in `send_req` and wraps the `end` callback: the wrapper
/// records whether the server wants io-uring and clears the bit before the core sees it,
/// so the core never builds its own ring for this connection even with
/// `fuse.enable_uring=1`.
mod init {
    use super::*;

    /// An INIT request in flight: its args, the core's end callback and its connection.
    struct Hook {
        args: usize,
        end: EndFn,
        conn: Arc<Conn>,
    }

    kernel::sync::global_lock! {
        // SAFETY: `init_hooks()` is called by the module initializer before any mount.
        unsafe(uninit) static HOOKS: SpinLock<KVec<Hook>> = KVec::new();
    }

    /// Initialises the hook table and furing's work queue; called once from module init.
    pub(crate) fn init_hooks() -> Result {
        // SAFETY: Called once, from the module initializer, before any use.
        unsafe {
            HOOKS.init();
            super::WQ.init();
        }
        *super::WQ.lock() = Some(OwnedQueue::new()?);
        Ok(())
    }

    /// Frees the hook table and drains and destroys the work queue; called from module exit
    /// (a static is never dropped). No INIT is in flight then, and no abort work can be
    /// queued: every connection holds a module reference. A work item still running (its
    /// last reference dropped) finishes before `destroy_workqueue()` returns.
    pub(crate) fn exit_hooks() {
        let hooks = core::mem::take(&mut *HOOKS.lock());
        drop(hooks);
        let wq = super::WQ.lock().take();
        drop(wq);
    }

    const OVER_IO_URING_HI: u32 = (raw::FUSE_OVER_IO_URING >> 32) as u32;
    const BUFPOOL_HI: u32 = (raw::FUSE_HAS_IO_URING_BUFPOOL >> 32) as u32;

    /// Offers `FUSE_OVER_IO_URING` (and not 7.3's bufpools) and wraps the reply callback.
    ///
    /// # Safety
    ///
    /// `req` must be an INIT request being sent, not yet visible to the server.
    pub(super) unsafe fn hook(conn: ArcBorrow<'_, Conn>, req: *mut raw::fuse_req) {
        // SAFETY: INIT's args are the core's `fuse_init_args`, alive until its end.
        let args = unsafe { &mut *(*req).args };
        if args.in_numargs < 1 || args.out_numargs < 1 {
            return;
        }
        // SAFETY: `in_args[0]` of INIT points at the kzalloc'd `fuse_init_in` of the
        // request (declared const only because most requests' inputs are).
        let inarg = unsafe { &mut *args.in_args[0].value.cast::<raw::fuse_init_in>().cast_mut() };
        if inarg.flags & raw::FUSE_INIT_EXT == 0 {
            return;
        }
        inarg.flags2 = (inarg.flags2 | OVER_IO_URING_HI) & !BUFPOOL_HI;
        let Some(end) = args.end else {
            // Synchronous INIT (FUSE_DEV_IOC_SYNC_INIT): no reply hook, no io-uring.
            inarg.flags2 &= !OVER_IO_URING_HI;
            return;
        };
        let hook = Hook {
            args: core::ptr::from_mut(args) as usize,
            end,
            conn: conn.into(),
        };
        // Atomic: `send_req` may run under the core's background spinlock.
        if HOOKS.lock().push(hook, GFP_ATOMIC).is_err() {
            inarg.flags2 &= !OVER_IO_URING_HI;
            return;
        }
        args.end = Some(init_end);
    }

    /// The wrapped end callback of INIT.
    ///
    /// # Safety
    ///
    /// Called by the FUSE core (`fuse_request_end`) with the args hooked in [`hook`].
    unsafe extern "C" fn init_end(args: *mut raw::fuse_args, error: c_int) {
        let hook = {
            let mut hooks = HOOKS.lock();
            let pos = hooks.iter().position(|h| h.args == args as usize);
            pos.and_then(|i| hooks.remove(i).ok())
        };
        // The hook was stored before `end` was replaced, so it is always there.
        let Some(hook) = hook else { return };
        if error == 0 {
            // SAFETY: On success `out_args[0]` is the server's `fuse_init_out`, in the
            // core's `fuse_init_args`, alive until the core's end callback returns.
            let out = unsafe { &mut *(*args).out_args[0].value.cast::<raw::fuse_init_out>() };
            let wants = out.flags & raw::FUSE_INIT_EXT != 0 && out.flags2 & OVER_IO_URING_HI != 0;
            hook.conn.server_uring.store(wants, Ordering::Release);
            out.flags2 &= !(OVER_IO_URING_HI | BUFPOOL_HI);
        }
        // SAFETY: Chaining to the core's own end callback with its own arguments.
        unsafe { (hook.end)(args, error) }
    }
}

pub(crate) use init::{exit_hooks, init_hooks};
