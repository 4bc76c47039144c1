// SPDX-License-Identifier: GPL-2.0

//! Thin FFI layer: the module's own bindings (bindgen over `include/furing_ffi.h`, generated
//! against the kernel the module is built for) and the few raw calls the rest of the crate
//! makes, each wrapped in a safe function or type, one file per subsystem: the FUSE core
//! (`fuse`), io_uring (`uring`), memory (`mm`) and the VFS (`vfs`). It depends on no
//! domain module of the crate, only on the leaf [`crate::user`].

use kernel::{bindings, prelude::*};

mod fuse;
mod mm;
mod uring;
mod vfs;
mod work;

pub(crate) use fuse::{
    ClassicQueue, DevId, FiqOps, FuseDev, InitReq, Req, ReqFifo, Transport, Wire,
};
pub(crate) use mm::{
    copy_from_user_page, copy_to_user_page, user_read, user_write, DstBytes, FolioRef,
    MemlockCharge, PinnedPages, SrcBytes, Vmap,
};
pub(crate) use uring::{
    cmd_reserved, Kicks, ParkedCmd, Pdu, RingId, Sqe, UringCmd, IO_URING_F_CANCEL,
    IO_URING_F_SQE128, IO_URING_F_UNLOCKED,
};
pub(crate) use vfs::{
    fuse_dev_of_file, DevFops, FsContext, FsParam, FsParams, FsRegistration, FsType, FuseDevRef,
    FuseFs, MiscRegistration, MountParams, ParamKind, ParamValue, UringCmdHandler, UserNs,
};
pub(crate) use work::{impl_has_ticker, HasTicker, Tick, Ticker};

/// Items generated from the FUSE core, io_uring and the furing headers.
///
/// Only items declared in those headers are generated; every other type they mention is
/// the `kernel::bindings` one, so values pass between the two without casts.
#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::cast_lossless,
    clippy::as_underscore
)]
pub(crate) mod raw {
    use kernel::bindings::*;
    use kernel::ffi;
    use pin_init::MaybeZeroable;
    include!(env!("FURING_FFI_RS"));
}

/// Sets up the layer's global state (module init): the INIT hook table and furing's work
/// queue.
pub(crate) fn init() -> Result {
    fuse::init_hooks();
    // SAFETY: Called once, from the module initializer, before any use.
    unsafe { WQ.init() };
    *WQ.lock() = Some(OwnedQueue::new()?);
    Ok(())
}

/// Tears the global state down (module exit, or a failed init). No connection is left
/// (each holds the module), so no INIT is in flight and no work can be queued; a work
/// item still running (its last reference dropped) finishes before `destroy_workqueue()`
/// returns.
pub(crate) fn exit() {
    fuse::exit_hooks();
    // Taken out first: destroying the queue sleeps, never under the lock.
    let wq = WQ.lock().take();
    drop(wq);
}

kernel::sync::global_lock! {
    // SAFETY: `init()` initialises it from the module initializer, before any mount.
    unsafe(uninit) static WQ: SpinLock<Option<OwnedQueue>> = None;
}

/// Runs `f` with furing's work queue (`None` after module exit began).
pub(crate) fn with_wq<R>(f: impl FnOnce(&kernel::workqueue::Queue) -> R) -> Option<R> {
    WQ.lock().as_ref().map(|wq| f(wq.queue()))
}

/// A reference on this module, dropped with `module_put`.
///
/// Held by every connection: the FUSE core keeps pointers to furing's operations (and may
/// call `release` from a transient reference, e.g. fusectl) until the connection is gone.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference on this module, which is live (we are running its code).
    pub(crate) fn this() -> Self {
        let module = kernel::module::this_module::<crate::LocalModule>().as_ptr();
        // SAFETY: The module is live while its code runs; `__module_get` only counts.
        unsafe { bindings::__module_get(module) };
        Self(())
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        let module = kernel::module::this_module::<crate::LocalModule>().as_ptr();
        // SAFETY: Drops the reference taken in `this`.
        unsafe { bindings::module_put(module) };
    }
}

/// The module held for the run of a callback the kernel makes without holding it (the
/// iqueue's `release`, io_uring's buffer release), which may drop the last reference on
/// what it tears down, and with it the module's. Dropped as the callback's last step, it
/// puts its reference inside an RCU read-side section, which module unload waits for
/// (`free_module()` calls `synchronize_rcu()` before the text goes). That narrows the
/// window to the instructions after the unlock -- a preemption right there is a quiescent
/// state -- and does not close it: only a caller holding a reference could, and the FUSE
/// core and io_uring take none for these callbacks.
pub(crate) struct CallbackGuard(core::mem::ManuallyDrop<ModuleRef>);

impl CallbackGuard {
    /// Takes a reference on this module, which is live (we are running its code).
    pub(crate) fn new() -> Self {
        Self(core::mem::ManuallyDrop::new(ModuleRef::this()))
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        // SAFETY: A read-side section entered and left right here around the put.
        unsafe { bindings::rcu_read_lock() };
        // SAFETY: Dropped once, here; nothing uses it after.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.0) };
        // SAFETY: Leaves the section entered above.
        unsafe { bindings::rcu_read_unlock() };
    }
}

/// Whether the current task has CAP_SYS_ADMIN (audited, as for any privileged operation).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable()` only looks at the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// A work queue of furing's own, so that module exit can wait for every work item that
/// runs module code (`destroy_workqueue()` drains it) before the module text goes.
///
/// # Invariants
///
/// `self.0` is a work queue made by `alloc_workqueue()`, destroyed once, on drop.
pub(crate) struct OwnedQueue(core::ptr::NonNull<bindings::workqueue_struct>);

// SAFETY: Work queues may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queuing work is thread-safe.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// An unbound work queue named `furing`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: FFI call; returns a new work queue or NULL.
        let wq = unsafe { raw::furing_alloc_wq() };
        core::ptr::NonNull::new(wq).map(Self).ok_or(ENOMEM)
    }

    /// The queue, to enqueue work on.
    pub(crate) fn queue(&self) -> &kernel::workqueue::Queue {
        // SAFETY: The work queue is alive while `self` is (invariant).
        unsafe { kernel::workqueue::Queue::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: Made by `alloc_workqueue()`, destroyed once (invariant); this waits for
        // the work still queued or running.
        unsafe { bindings::destroy_workqueue(self.0.as_ptr()) };
    }
}
