// SPDX-License-Identifier: GPL-2.0

//! Thin FFI layer: the module's own bindings (bindgen over `include/furing_ffi.h`, generated
//! against the kernel the module is built for) and the few raw calls the rest of the crate
//! makes, each wrapped in a safe function or type.

use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::types::ForeignOwnable;
use kernel::{bindings, error::to_result, fs::LocalFile, prelude::*, str::CStr, sync::aref::ARef};

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

/// Makes a C table usable as a `static`.
///
/// The tables wrapped here (file operations, fs type, parameter specs) are written once at
/// compile time and only read afterwards, by the kernel.
#[repr(transparent)]
pub(crate) struct StaticTable<T>(pub(crate) T);

// SAFETY: Only used for C tables that are immutable after initialisation, or whose mutable
// parts (the fs type's list links) are protected by the kernel's own locks.
unsafe impl<T> Sync for StaticTable<T> {}

/// Checks that `file` is a `/dev/furing` file, then returns a reference on its `fuse_dev`.
///
/// `fops` is the furing device's file operations table.
pub(crate) fn fuse_dev_of_file(
    file: &LocalFile,
    fops: *const bindings::file_operations,
    user_ns: *mut bindings::user_namespace,
) -> core::result::Result<FuseDevRef, &'static CStr> {
    let f = file.as_ptr();
    // SAFETY: `file` is a valid, referenced file, so its `f_op` and `f_cred` are valid.
    let (f_op, cred_ns) = unsafe { ((*f).f_op, (*(*f).f_cred).user_ns) };
    if !core::ptr::eq(f_op, fops) {
        return Err(c"fd is not a furing device");
    }
    // Like fuse: the mount must come from the user namespace that opened the device.
    if cred_ns != user_ns {
        return Err(c"wrong user namespace for furing device");
    }
    // SAFETY: A /dev/furing file's `private_data` is the `fuse_dev` set by `fuse_dev_open`,
    // alive while the file is.
    let fud = unsafe { (*f).private_data }.cast::<raw::fuse_dev>();
    // SAFETY: `fud` is valid (above); taking a reference is what `fuse_dev_grab` does.
    unsafe { bindings::refcount_inc(&raw mut (*fud).ref_) };
    Ok(FuseDevRef(fud))
}

/// A counted reference on a `struct fuse_dev`, dropped with `fuse_dev_put`.
pub(crate) struct FuseDevRef(*mut raw::fuse_dev);

impl FuseDevRef {
    /// The raw pointer, for handing to the FUSE core.
    pub(crate) fn as_ptr(&self) -> *mut raw::fuse_dev {
        self.0
    }
}

impl Drop for FuseDevRef {
    fn drop(&mut self) {
        // SAFETY: `self.0` holds a reference taken in `fuse_dev_of_file`.
        unsafe { raw::fuse_dev_put(self.0) };
    }
}

// SAFETY: The reference may be dropped from any thread; `fuse_dev_put` has no affinity.
unsafe impl Send for FuseDevRef {}

/// A misc device registration, deregistered on drop.
pub(crate) struct MiscRegistration {
    dev: Pin<KBox<kernel::types::Opaque<bindings::miscdevice>>>,
}

impl MiscRegistration {
    /// Registers the misc device `name` with `fops` and `mode`, dynamic minor.
    pub(crate) fn new(
        name: &'static CStr,
        fops: &'static bindings::file_operations,
        mode: u16,
    ) -> Result<Self> {
        let dev = KBox::pin(
            kernel::types::Opaque::new(bindings::miscdevice {
                minor: bindings::MISC_DYNAMIC_MINOR as i32,
                name: name.as_char_ptr(),
                fops,
                mode,
                ..pin_init::zeroed()
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `dev` is pinned, initialised and lives until `drop` deregisters it.
        to_result(unsafe { bindings::misc_register(dev.get()) })?;
        Ok(Self { dev })
    }

    /// The minor number the device got.
    pub(crate) fn minor(&self) -> i32 {
        // SAFETY: The device is registered; `minor` is not written after registration.
        unsafe { (*self.dev.get()).minor }
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        // SAFETY: The device was registered in `new`.
        unsafe { bindings::misc_deregister(self.dev.get()) };
    }
}

// SAFETY: Registration and deregistration may happen on any thread.
unsafe impl Send for MiscRegistration {}
// SAFETY: `&MiscRegistration` only reads the minor number.
unsafe impl Sync for MiscRegistration {}

/// A filesystem type registration, unregistered on drop.
pub(crate) struct FsRegistration(
    &'static StaticTable<kernel::types::Opaque<bindings::file_system_type>>,
);

impl FsRegistration {
    /// Registers `fs_type`.
    pub(crate) fn new(
        fs_type: &'static StaticTable<kernel::types::Opaque<bindings::file_system_type>>,
    ) -> Result<Self> {
        // SAFETY: `fs_type` is a static, fully initialised fs type.
        to_result(unsafe { bindings::register_filesystem(fs_type.0.get()) })?;
        Ok(Self(fs_type))
    }
}

impl Drop for FsRegistration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`. The module cannot be unloaded while a superblock of
        // this type exists (the fs type's owner holds a module reference per superblock).
        unsafe { bindings::unregister_filesystem(self.0 .0.get()) };
    }
}

// SAFETY: The registration is only created and dropped by module init and exit.
unsafe impl Send for FsRegistration {}
// SAFETY: `&FsRegistration` gives no access to anything.
unsafe impl Sync for FsRegistration {}

/// A borrowed `struct fs_context` inside one of its callbacks.
pub(crate) struct FsContext(*mut raw::fs_context);

impl FsContext {
    /// # Safety
    ///
    /// `fsc` must be a valid fs context for the duration of the returned borrow, inside one
    /// of the fs context operations (which the VFS serialises).
    pub(crate) unsafe fn from_raw(fsc: *mut raw::fs_context) -> Self {
        Self(fsc)
    }

    /// Logs `msg` on the context (visible through fsconfig's log and dmesg) and
    /// returns `EINVAL`, like `invalfc()`.
    pub(crate) fn invalid(&self, msg: &CStr) -> Error {
        // SAFETY: `self.0` is valid (type invariant), `msg` is NUL-terminated.
        Error::from_errno(unsafe { raw::furing_invalfc(self.0, msg.as_char_ptr()) })
    }

    /// Whether this context is for a remount.
    pub(crate) fn is_reconfigure(&self) -> bool {
        // SAFETY: `self.0` is valid (type invariant).
        let purpose = unsafe { (*self.0).purpose() };
        purpose == raw::fs_context_purpose_FS_CONTEXT_FOR_RECONFIGURE
    }

    /// Whether the mount came through the old `mount(2)` API.
    pub(crate) fn is_oldapi(&self) -> bool {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { (*self.0).oldapi() }
    }

    /// The user namespace the mount is made in.
    pub(crate) fn user_ns(&self) -> *mut bindings::user_namespace {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { (*self.0).user_ns }
    }

    /// The superblock info the context owns until a superblock takes it (`s_fs_info`).
    pub(crate) fn s_fs_info(&self) -> *mut core::ffi::c_void {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { (*self.0).s_fs_info }
    }

    /// Sets `s_fs_info`.
    pub(crate) fn set_s_fs_info(&self, info: *mut core::ffi::c_void) {
        // SAFETY: `self.0` is valid (type invariant); `get_tree` owns this field.
        unsafe { (*self.0).s_fs_info = info };
    }

    /// The raw context.
    pub(crate) fn as_ptr(&self) -> *mut raw::fs_context {
        self.0
    }
}

impl FsContext {
    /// The filesystem's private pointer (`fs_private`).
    pub(crate) fn private(&self) -> *mut core::ffi::c_void {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { (*self.0).fs_private }
    }

    /// Sets the filesystem's private pointer and the context operations.
    pub(crate) fn set_private(
        &self,
        private: *mut core::ffi::c_void,
        ops: &'static raw::fs_context_operations,
    ) {
        // SAFETY: `self.0` is valid (type invariant); `init_fs_context` owns these fields.
        unsafe {
            (*self.0).fs_private = private;
            (*self.0).ops = ops;
        }
    }
}

/// A mount parameter being parsed.
pub(crate) struct FsParameter;

impl FsParameter {
    /// Parses `param` against `spec` (`fs_parse()`): returns the option number and value.
    ///
    /// # Safety
    ///
    /// `param` must be valid for the lifetime `'a`.
    pub(crate) unsafe fn parse<'a>(
        fsc: &FsContext,
        param: *mut raw::fs_parameter,
        spec: &'static [raw::fs_parameter_spec],
    ) -> Result<(u8, ParamValue<'a>)> {
        // SAFETY: All-zero is a valid `fs_parse_result` (plain integers).
        let mut result: raw::fs_parse_result = unsafe { core::mem::zeroed() };
        // SAFETY: `fsc` and `param` are valid; `spec` is a terminated table; `result` is
        // a local the call fills in.
        let opt = unsafe {
            raw::__fs_parse(
                &raw mut (*fsc.as_ptr()).log,
                spec.as_ptr(),
                param,
                &mut result,
            )
        };
        let opt = u8::try_from(kernel::error::to_result(opt).map(|()| opt)?).map_err(|_| EINVAL)?;
        Ok((
            opt,
            ParamValue {
                // SAFETY: Valid for `'a` (caller's guarantee).
                param: unsafe { &mut *param },
                result,
            },
        ))
    }
}

/// The value of a parsed mount parameter.
pub(crate) struct ParamValue<'a> {
    param: &'a mut raw::fs_parameter,
    result: raw::fs_parse_result,
}

impl ParamValue<'_> {
    /// The value as a `u32` (`fsparam_u32*`).
    pub(crate) fn u32(&self) -> u32 {
        // SAFETY: The parser filled the `uint_32` member for u32 parameters.
        unsafe { *self.result.__bindgen_anon_1.uint_32.as_ref() }
    }

    /// The value as a `kuid_t` (`fsparam_uid`).
    pub(crate) fn uid(&self) -> bindings::kuid_t {
        // SAFETY: The parser filled the `uid` member for uid parameters.
        unsafe { *self.result.__bindgen_anon_1.uid.as_ref() }
    }

    /// The value as a `kgid_t` (`fsparam_gid`).
    pub(crate) fn gid(&self) -> bindings::kgid_t {
        // SAFETY: The parser filled the `gid` member for gid parameters.
        unsafe { *self.result.__bindgen_anon_1.gid.as_ref() }
    }

    /// The file an `fsparam_fd` parameter names: passed directly (`FSCONFIG_SET_FD`) or as
    /// a descriptor number (`fd=N`).
    pub(crate) fn file(&self) -> Result<ARef<LocalFile>> {
        if self.param.type_() == raw::fs_value_type_fs_value_is_file {
            // SAFETY: For `fs_value_is_file` the parameter holds a file reference, valid
            // while the parameter is; `from_raw_file` borrows it and we take our own ref.
            let file = unsafe { LocalFile::from_raw_file(self.param.__bindgen_anon_1.file) };
            Ok(file.into())
        } else {
            LocalFile::fget(self.u32()).map_err(|_| EBADF)
        }
    }

    /// Moves a string parameter into `fsc->source` (at most once per mount).
    pub(crate) fn take_source(self, fsc: &FsContext) -> Result {
        // SAFETY: `fsc` is valid (type invariant).
        let source = unsafe { &mut (*fsc.as_ptr()).source };
        if !source.is_null() {
            return Err(fsc.invalid(c"Multiple sources specified"));
        }
        // SAFETY: For string parameters `string` is a kmalloc'd string owned by the parameter;
        // ownership moves to the context, which frees `source` at its end.
        *source = unsafe {
            core::mem::replace(
                &mut self.param.__bindgen_anon_1.string,
                core::ptr::null_mut(),
            )
        }
        .cast_const();
        Ok(())
    }
}

/// Whether `uid` is representable in `ns` (`kuid_has_mapping()`).
pub(crate) fn kuid_has_mapping(ns: *mut bindings::user_namespace, uid: bindings::kuid_t) -> bool {
    // SAFETY: `ns` is the live user namespace of a mount context.
    unsafe { raw::furing_kuid_has_mapping(ns, uid) }
}

/// Whether `gid` is representable in `ns` (`kgid_has_mapping()`).
pub(crate) fn kgid_has_mapping(ns: *mut bindings::user_namespace, gid: bindings::kgid_t) -> bool {
    // SAFETY: `ns` is the live user namespace of a mount context.
    unsafe { raw::furing_kgid_has_mapping(ns, gid) }
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

/// What a furing command's SQE says (copied while the command is issued).
pub(crate) type Sqe = raw::furing_sqe;

/// The `init` part of a REGISTER command: `(queue_depth, buf_size)`.
pub(crate) fn sqe_init(sqe: &Sqe) -> (u32, u32) {
    // SAFETY: Both members of the union are plain integers over the same 16 bytes, all of
    // them copied from the SQE: any bytes are a valid `init`.
    let init = unsafe { sqe.req.__bindgen_anon_1.init.as_ref() };
    (init.queue_depth, init.buf_size)
}

/// An io_uring command while its `uring_cmd` call runs.
pub(crate) struct UringCmd(core::ptr::NonNull<raw::io_uring_cmd>);

impl UringCmd {
    /// # Safety
    ///
    /// `cmd` must be a command being issued (or cancelled) on a `/dev/furing` file, and
    /// stay valid until this value is parked, or the call returns.
    pub(crate) unsafe fn from_raw(cmd: *mut raw::io_uring_cmd) -> Option<Self> {
        core::ptr::NonNull::new(cmd).map(Self)
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

    /// The file the command was issued on.
    pub(crate) fn file(&self) -> *mut bindings::file {
        // SAFETY: The command is valid and holds a reference on its file.
        unsafe { self.0.as_ref().file }
    }

    /// The io_uring the command belongs to (an identity, to compare).
    pub(crate) fn ring(&self) -> *const c_void {
        // SAFETY: The command is valid (type invariant).
        unsafe { raw::furing_cmd_ring(self.0.as_ptr()) }
    }

    /// Zero-copy: registers the page argument's folios of `req` as buffer `index` of the
    /// command's io_uring (`dir`: `IO_BUF_DEST` for reads, `IO_BUF_SOURCE` for writes).
    /// `pages` owns what must live as long as the registration: io_uring hands it back
    /// to `furing_zc_released()` when the buffer goes; on failure it is dropped here.
    pub(crate) fn zc_register<T: ForeignOwnable>(
        &self,
        req: FuseReq,
        pages: T,
        dir: u8,
        index: u32,
        issue_flags: u32,
    ) -> Result {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*req.r().args };
        if !(args.in_pages() || args.out_pages()) {
            return Err(EINVAL);
        }
        // SAFETY: With page arguments, `args` is the `args` member of a `fuse_args_pages`
        // (the core's contract for in_pages/out_pages).
        let ap = unsafe { &*core::ptr::from_ref(args).cast::<raw::fuse_args_pages>() };
        let priv_ = pages.into_foreign();
        // SAFETY: The command is being issued or run from its task work with
        // `issue_flags`; `ap` is valid; `priv_` is ours until io_uring calls the release.
        let ret = unsafe {
            raw::furing_zc_register(self.0.as_ptr(), ap, priv_.cast(), dir, index, issue_flags)
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

    /// Hands the command over to furing: it becomes cancelable, and `uring_cmd` returns
    /// `-EIOCBQUEUED`. The returned value must complete it.
    pub(crate) fn park(self, issue_flags: u32) -> ParkedCmd {
        // SAFETY: The command is being issued with these flags (type invariant).
        unsafe { raw::io_uring_cmd_mark_cancelable(self.0.as_ptr(), issue_flags) };
        ParkedCmd(self.0)
    }
}

/// An io_uring command parked by furing (marked cancelable, owned until completed).
///
/// Dropping it completes it with `-ENOTCONN`; that may sleep, so drop it only in process
/// context and never under a spinlock.
pub(crate) struct ParkedCmd(core::ptr::NonNull<raw::io_uring_cmd>);

impl ParkedCmd {
    /// Whether this is `cmd`.
    pub(crate) fn is(&self, cmd: &UringCmd) -> bool {
        self.0 == cmd.0
    }

    /// The io_uring the command belongs to (an identity, to compare).
    pub(crate) fn ring(&self) -> *const c_void {
        // SAFETY: The command is parked (owned by us, valid).
        unsafe { raw::furing_cmd_ring(self.0.as_ptr()) }
    }

    /// Unregisters buffer `index` of the command's io_uring (from process context).
    pub(crate) fn zc_unregister(&self, index: u32) -> Result {
        // SAFETY: The command is parked (valid); not inside its ring's submission, so
        // io_uring takes its own lock.
        to_result(unsafe { raw::io_buffer_unregister(self.0.as_ptr(), index, IO_URING_F_UNLOCKED) })
    }

    /// Queues task work in the server's task that calls `furing_send_in_task()` for this
    /// command. Until that runs, the command must not be completed any other way.
    pub(crate) fn send_in_task(&self) {
        // SAFETY: The command is parked (owned by us, marked cancelable).
        unsafe { raw::furing_cmd_send_in_task(self.0.as_ptr()) };
    }

    /// Completes the command with `res`; `issue_flags` as io_uring passed them to the
    /// current call (or `IO_URING_F_UNLOCKED` from any other process context).
    pub(crate) fn complete(self, res: i32, issue_flags: u32) {
        let cmd = self.0;
        core::mem::forget(self);
        // SAFETY: The command is parked (owned by us); completing it ends our ownership.
        unsafe { raw::__io_uring_cmd_done(cmd.as_ptr(), res, 0, issue_flags, false) };
    }
}

impl Drop for ParkedCmd {
    fn drop(&mut self) {
        // SAFETY: The command is parked and owned by us; process context (type invariant).
        unsafe {
            raw::__io_uring_cmd_done(
                self.0.as_ptr(),
                ENOTCONN.to_errno(),
                0,
                IO_URING_F_UNLOCKED,
                false,
            )
        };
    }
}

// SAFETY: A parked command may be completed from any task (io_uring defers the CQE to
// the ring's task as needed).
unsafe impl Send for ParkedCmd {}

/// Reads an array of `N` `struct iovec` from user address `addr`.
pub(crate) fn read_iovecs<const N: usize>(addr: u64) -> Result<[crate::entry::UserBuf; N]> {
    use kernel::uaccess::{UserPtr, UserSlice};
    const IOV: usize = core::mem::size_of::<bindings::iovec>();
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    let mut raw_iov = [0u8; 64];
    let bytes = raw_iov.get_mut(..N * IOV).ok_or(EINVAL)?;
    UserSlice::new(UserPtr::from_addr(addr), N * IOV)
        .reader()
        .read_slice(bytes)?;
    let mut out = [crate::entry::UserBuf {
        addr: UserPtr::from_addr(0),
        len: 0,
    }; N];
    for (i, o) in out.iter_mut().enumerate() {
        let word = |k: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * IOV + k * 8..i * IOV + k * 8 + 8]);
            u64::from_ne_bytes(w) as usize
        };
        *o = crate::entry::UserBuf {
            addr: UserPtr::from_addr(word(0)),
            len: word(1),
        };
    }
    Ok(out)
}

/// Checks that `len` bytes at `addr` are mapped and writable, by writing zeros to the
/// first and last byte (buffers the server handed to furing).
pub(crate) fn probe_user_writable(addr: kernel::uaccess::UserPtr, len: usize) -> Result {
    use kernel::uaccess::{UserPtr, UserSlice};
    if len == 0 {
        return Err(EINVAL);
    }
    let last = (addr.as_const_ptr() as usize)
        .checked_add(len - 1)
        .ok_or(EFAULT)?;
    UserSlice::new(addr, 1).writer().write_slice(&[0])?;
    UserSlice::new(UserPtr::from_addr(last), 1)
        .writer()
        .write_slice(&[0])?;
    Ok(())
}

/// What a `uring_cmd` needs to know of the channel behind a `/dev/furing` file.
pub(crate) struct ChanState {
    /// The server answered FUSE_INIT (`fch->initialized`).
    pub(crate) initialized: bool,
    /// The channel is not aborted (`fch->connected`).
    pub(crate) connected: bool,
    /// Largest request payload: `max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages)`.
    pub(crate) max_payload: usize,
}

/// The channel of a `/dev/furing` file, if it is mounted.
///
/// # Safety
///
/// `file` must be a `/dev/furing` file kept alive for the duration of the borrow of the
/// returned channel (an issued io_uring command holds such a reference).
pub(crate) unsafe fn chan_of_file(file: *mut bindings::file) -> Option<*mut raw::fuse_chan> {
    // SAFETY: A /dev/furing file's `private_data` is its `fuse_dev` (caller's guarantee).
    let fud = unsafe { (*file).private_data }.cast::<raw::fuse_dev>();
    // SAFETY: `fud` is valid while the file is.
    let fch = unsafe { raw::furing_fud_chan(fud) };
    (!fch.is_null()).then_some(fch)
}

/// Reads the state of `fch`.
///
/// # Safety
///
/// `fch` must be a live channel.
pub(crate) unsafe fn chan_state(fch: *mut raw::fuse_chan) -> ChanState {
    // SAFETY: `fch` is live; the core publishes `initialized` with a release store after
    // setting `max_write`/`max_pages`, so an acquire load orders the reads after it.
    unsafe {
        let initialized = core::ptr::read_volatile(&raw const (*fch).initialized) != 0;
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let connected = core::ptr::read_volatile(&raw const (*fch).connected) != 0;
        let pages = (*fch).max_pages as usize * bindings::PAGE_SIZE;
        let max_payload = (raw::FUSE_MIN_READ_BUFFER as usize)
            .max((*fch).max_write as usize)
            .max(pages);
        ChanState {
            initialized,
            connected,
            max_payload,
        }
    }
}

/// io_uring issue flags furing looks at (the enum is `int` in C).
pub(crate) const IO_URING_F_UNLOCKED: u32 = raw::io_uring_cmd_flags_IO_URING_F_UNLOCKED as u32;
pub(crate) const IO_URING_F_SQE128: u32 = raw::io_uring_cmd_flags_IO_URING_F_SQE128 as u32;
pub(crate) const IO_URING_F_CANCEL: u32 = raw::io_uring_cmd_flags_IO_URING_F_CANCEL as u32;

/// A FUSE request owned by the transport between `send_req` and `fuse_request_end`.
#[derive(Clone, Copy)]
pub(crate) struct FuseReq(core::ptr::NonNull<raw::fuse_req>);

// SAFETY: A request may be handled and ended from any task; the core's flags are atomic
// and the request's fields are only touched by its current owner.
unsafe impl Send for FuseReq {}

/// One piece of a request's arguments, in order.
pub(crate) enum ArgPiece {
    /// A plain argument: `len` bytes at kernel address `ptr`.
    Bytes(*mut u8, usize),
    /// A page argument: `len` bytes at `offset` in a folio.
    Folio(*mut bindings::folio, usize, usize),
}

impl FuseReq {
    /// # Safety
    ///
    /// `req` must be a request the caller owns until it hands it back to the core.
    pub(crate) unsafe fn from_raw(req: *mut raw::fuse_req) -> Option<Self> {
        core::ptr::NonNull::new(req).map(Self)
    }

    // A `FuseReq` is a handle on a C object the transport owns (like a raw pointer), so
    // its methods take `&self` and reach the object mutably.
    #[allow(clippy::mut_from_ref)]
    fn r(&self) -> &mut raw::fuse_req {
        // SAFETY: The request is owned by us (type invariant); no other reference to it is
        // live while the transport works on it.
        unsafe { &mut *self.0.as_ptr() }
    }

    /// The raw request.
    pub(crate) fn as_ptr(&self) -> *mut raw::fuse_req {
        self.0.as_ptr()
    }

    /// The request's unique id (the commit id on the ring).
    pub(crate) fn unique(&self) -> u64 {
        self.r().in_.h.unique
    }

    /// The FUSE in header.
    pub(crate) fn in_header(&self) -> raw::fuse_in_header {
        self.r().in_.h
    }

    fn flags(&self) -> &core::sync::atomic::AtomicUsize {
        // SAFETY: `flags` is an `unsigned long` the core only changes with atomic bitops.
        unsafe { core::sync::atomic::AtomicUsize::from_ptr((&raw mut self.r().flags).cast()) }
    }

    /// `test_bit(bit, &req->flags)`.
    pub(crate) fn test_flag(&self, bit: raw::fuse_req_flag) -> bool {
        self.flags().load(core::sync::atomic::Ordering::Acquire) & (1 << bit) != 0
    }

    /// `clear_bit(bit, &req->flags)`.
    pub(crate) fn clear_flag(&self, bit: raw::fuse_req_flag) {
        self.flags()
            .fetch_and(!(1 << bit), core::sync::atomic::Ordering::AcqRel);
    }

    /// Sets the reply header (its error is what the client sees).
    pub(crate) fn set_out_header(&self, oh: raw::fuse_out_header) {
        self.r().out.h = oh;
    }

    /// Ends the request with `error` (0 keeps the reply's own error).
    pub(crate) fn end(self, error: i32) {
        if error != 0 {
            self.r().out.h.error = error;
        }
        self.clear_flag(raw::fuse_req_flag_FR_SENT);
        // SAFETY: We own the request and hand it back to the core, which frees it.
        unsafe { raw::fuse_request_end(self.0.as_ptr()) };
    }

    /// Calls `f` for each piece of the input (`out == false`) or output arguments, starting
    /// at argument `first`; a trailing page argument yields its folio ranges.
    pub(crate) fn for_each_arg(
        &self,
        out: bool,
        first: usize,
        mut f: impl FnMut(ArgPiece) -> Result,
    ) -> Result {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &mut *self.r().args };
        let (n, pages) = if out {
            (usize::from(args.out_numargs), args.out_pages())
        } else {
            (usize::from(args.in_numargs), args.in_pages())
        };
        for i in first..n {
            let (ptr, len) = if out {
                let a = args.out_args.get(i).ok_or(EINVAL)?;
                (a.value.cast::<u8>(), a.size as usize)
            } else {
                let a = args.in_args.get(i).ok_or(EINVAL)?;
                (a.value.cast::<u8>().cast_mut(), a.size as usize)
            };
            if pages && i == n - 1 {
                // SAFETY: With page arguments, `args` is the `args` member of a
                // `fuse_args_pages` (the core's contract for in_pages/out_pages).
                let ap = unsafe { &*core::ptr::from_mut(args).cast::<raw::fuse_args_pages>() };
                let mut left = len;
                for k in 0..ap.num_folios as usize {
                    if left == 0 {
                        break;
                    }
                    // SAFETY: `folios` and `descs` have `num_folios` entries.
                    let (folio, desc) = unsafe { (*ap.folios.add(k), *ap.descs.add(k)) };
                    let take = (desc.length as usize).min(left);
                    f(ArgPiece::Folio(folio, desc.offset as usize, take))?;
                    left -= take;
                }
            } else if len > 0 {
                f(ArgPiece::Bytes(ptr, len))?;
            }
        }
        Ok(())
    }

    /// Zero-copy candidates: a READ whose data goes to pages, or a WRITE whose data comes
    /// from pages. Returns the io_uring buffer direction and the bytes of the page
    /// argument.
    pub(crate) fn zero_copy_io(&self) -> Option<(u8, usize)> {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*self.r().args };
        let opcode = self.in_header().opcode;
        if opcode == raw::fuse_opcode_FUSE_READ && args.out_pages() && args.out_numargs > 0 {
            let last = args.out_args.get(usize::from(args.out_numargs) - 1)?;
            Some((raw::IO_BUF_DEST as u8, last.size as usize))
        } else if opcode == raw::fuse_opcode_FUSE_WRITE && args.in_pages() && args.in_numargs > 0 {
            let last = args.in_args.get(usize::from(args.in_numargs) - 1)?;
            Some((raw::IO_BUF_SOURCE as u8, last.size as usize))
        } else {
            None
        }
    }

    /// References on the folios of the request's page argument.
    pub(crate) fn folio_refs(&self) -> Result<KVec<FolioRef>> {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*self.r().args };
        if !(args.in_pages() || args.out_pages()) {
            return Err(EINVAL);
        }
        // SAFETY: As in `for_each_arg`: a `fuse_args_pages` when it has page arguments.
        let ap = unsafe { &*core::ptr::from_ref(args).cast::<raw::fuse_args_pages>() };
        let n = ap.num_folios as usize;
        let mut refs = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            // SAFETY: `folios` has `num_folios` valid entries while we own the request.
            let folio = unsafe { *ap.folios.add(i) };
            // SAFETY: A folio of the request, referenced by it, so alive.
            refs.push(unsafe { FolioRef::get(folio) }, GFP_KERNEL)?;
        }
        Ok(refs)
    }

    /// Whether the request has payload in a ring entry: input arguments after the op
    /// header, or output arguments (every reply argument goes to the payload buffer).
    /// With `zero_copy` its page argument does not count (it is registered instead).
    pub(crate) fn has_payload(&self, zero_copy: bool) -> bool {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*self.r().args };
        if !zero_copy {
            return args.in_numargs > 1 || args.out_numargs > 0;
        }
        // Input argument 0 (the op header) never goes to the payload; output ones do.
        (args.in_numargs > 1 && (!args.in_pages() || args.in_numargs > 2))
            || (args.out_numargs > 0 && (!args.out_pages() || args.out_numargs > 1))
    }

    /// Input argument 0 (the opcode's in-struct), if any.
    pub(crate) fn op_header(&self) -> Option<(*const u8, usize)> {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*self.r().args };
        (args.in_numargs > 0).then(|| {
            (
                args.in_args[0].value.cast::<u8>(),
                args.in_args[0].size as usize,
            )
        })
    }

    /// The FUSE core's page zeroing for a reply whose arguments were fitted to its size
    /// ([`Self::fit_out_args`]), done before any reply byte reaches a folio
    /// (`fuse_copy_folios()` with `args->page_zeroing`): a folio of the output page
    /// argument that the reply does not fill is cleared, so a short read never leaves
    /// stale memory in a page the core then marks uptodate. Copied folios are cleared
    /// whole (a failed copy leaves zeros); with `zero_copy` the server already wrote
    /// `[offset, offset + count)` into the folio, and only the bytes around it are cleared.
    pub(crate) fn zero_out_folios(&self, zero_copy: bool) {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &*self.r().args };
        if !args.out_pages() || !args.page_zeroing() || args.out_numargs == 0 {
            return;
        }
        let mut left = args.out_args[usize::from(args.out_numargs) - 1].size as usize;
        // SAFETY: With page arguments, `args` is the `args` member of a `fuse_args_pages`
        // (the core's contract for in_pages/out_pages).
        let ap = unsafe { &*core::ptr::from_ref(args).cast::<raw::fuse_args_pages>() };
        for k in 0..ap.num_folios as usize {
            // SAFETY: `folios` and `descs` have `num_folios` entries.
            let (folio, desc) = unsafe { (*ap.folios.add(k), *ap.descs.add(k)) };
            let count = (desc.length as usize).min(left);
            left -= count;
            // SAFETY: A folio of the request we own, referenced by it.
            if count >= unsafe { raw::furing_folio_size(folio) } {
                continue;
            }
            let (start, end) = if zero_copy {
                (desc.offset as usize, desc.offset as usize + count)
            } else {
                (0, 0)
            };
            // SAFETY: As above. The core sets `page_zeroing` only on requests that fill
            // folios no one else writes until the request ends (locked page-cache folios
            // being read, or a private one); `start..end` lies within the folio.
            unsafe { raw::furing_folio_zero_outside(folio, start, end) };
        }
    }

    /// Checks a reply of `nbytes` payload bytes against the output arguments, shortening a
    /// variable-size last argument (`fuse_copy_out_args()`'s rule).
    pub(crate) fn fit_out_args(&self, nbytes: usize) -> Result {
        // SAFETY: The request's args are valid while we own it.
        let args = unsafe { &mut *self.r().args };
        let n = usize::from(args.out_numargs);
        let want: usize = args.out_args.iter().take(n).map(|a| a.size as usize).sum();
        if nbytes > want || (nbytes < want && !args.out_argvar()) {
            return Err(EINVAL);
        }
        if nbytes < want {
            let last = args
                .out_args
                .get_mut(n.checked_sub(1).ok_or(EINVAL)?)
                .ok_or(EINVAL)?;
            let diff = want - nbytes;
            if diff > last.size as usize {
                return Err(EINVAL);
            }
            last.size -= diff as u32;
        }
        Ok(())
    }
}

/// Maps `len` bytes at `offset` of `folio`, page by page, and calls `f` on each chunk.
pub(crate) fn with_folio_chunks(
    folio: *mut bindings::folio,
    offset: usize,
    len: usize,
    mut f: impl FnMut(&mut [u8]) -> Result,
) -> Result {
    let mut done = 0;
    while done < len {
        let off = offset + done;
        let chunk = (bindings::PAGE_SIZE - off % bindings::PAGE_SIZE).min(len - done);
        // SAFETY: The folio belongs to a request we own; `off` is inside it.
        let addr = unsafe { raw::furing_kmap_folio(folio.cast(), off) }.cast::<u8>();
        // SAFETY: The mapping covers `chunk` bytes up to the page end.
        let res = f(unsafe { core::slice::from_raw_parts_mut(addr, chunk) });
        // SAFETY: Unmaps what `furing_kmap_folio` mapped.
        unsafe { raw::furing_kunmap(addr.cast()) };
        res?;
        done += chunk;
    }
    Ok(())
}

/// The `fuse_dev` of a `/dev/furing` file.
pub(crate) fn fud_of_file(file: *mut bindings::file) -> *mut raw::fuse_dev {
    // SAFETY: A /dev/furing file's `private_data` is its `fuse_dev`; callers hold the file.
    unsafe { (*file).private_data.cast() }
}

/// Hashes `req` on the processing queue of `fud` (FR_SENT); false once aborted.
pub(crate) fn pq_add(fud: *mut raw::fuse_dev, req: FuseReq) -> bool {
    // SAFETY: `fud` is alive (its file is held by the caller's command); `req` is owned.
    unsafe { raw::furing_pq_add(fud, req.as_ptr()) }
}

/// Takes the request `unique` out of the processing queue of `fud` for its reply.
pub(crate) fn pq_take(fud: *mut raw::fuse_dev, unique: u64) -> Option<FuseReq> {
    // SAFETY: `fud` is alive (its file is held by the caller's command). A request found
    // there is locked (FR_LOCKED) for us: abort leaves it to us to end.
    unsafe { FuseReq::from_raw(raw::furing_pq_take(fud, unique)) }
}

/// Unlocks a request taken with [`pq_take`] (`err` < 0: its reply was bad).
pub(crate) fn pq_release(fud: *mut raw::fuse_dev, req: FuseReq, err: i32) {
    // SAFETY: As for `pq_take`.
    unsafe { raw::furing_pq_release(fud, req.as_ptr(), err) };
}

/// The system's default unbound work queue (`system_dfl_wq`); the kernel crate of 7.3 only
/// offers the deprecated `system_wq`.
pub(crate) fn system_dfl_wq() -> &'static kernel::workqueue::Queue {
    // SAFETY: `system_dfl_wq` is a C global set up at boot, never freed.
    unsafe { kernel::workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// Pages of the current task's memory, pinned for writing with `FOLL_LONGTERM`; unpinned
/// (and marked dirty: the kernel wrote to them) when dropped.
pub(crate) struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
}

// SAFETY: The page pointers are pinned pages, usable from any thread; unpinning may happen
// on another thread than pinning.
unsafe impl Send for PinnedPages {}
// SAFETY: Shared access only reads the pointers.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Pins `nr` pages of the current task's memory from `addr` (page aligned). `EFAULT`
    /// when a page is not mapped or not writable.
    pub(crate) fn pin(addr: usize, nr: usize) -> Result<Self> {
        let n = c_int::try_from(nr).map_err(|_| EINVAL)?;
        let mut pages = KVVec::with_capacity(nr, GFP_KERNEL)?;
        // SAFETY: `pages` has room for `nr` pointers, and pin_user_pages_fast() writes at
        // most `nr`; it only touches the current task's memory.
        let got = unsafe {
            bindings::pin_user_pages_fast(
                addr as c_ulong,
                n,
                bindings::FOLL_WRITE | bindings::FOLL_LONGTERM,
                pages.as_mut_ptr(),
            )
        };
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        // SAFETY: pin_user_pages_fast() initialised the first `got` (<= `nr`) pointers.
        unsafe { pages.inc_len(got as usize) };
        // From here on, dropping `this` unpins what was pinned.
        let this = Self { pages };
        if this.pages.len() != nr {
            return Err(EFAULT);
        }
        Ok(this)
    }

    /// How many pages are pinned.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: Every pointer in `pages` is a page this object pinned and still holds.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr(),
                self.pages.len() as c_ulong,
                true,
            )
        };
    }
}

/// `EINVAL` unless `n` bytes at `off` lie within a buffer of `len` bytes.
pub(crate) fn check_range(off: usize, n: usize, len: usize) -> Result {
    if off.checked_add(n).is_none_or(|end| end > len) {
        return Err(EINVAL);
    }
    Ok(())
}

/// A kernel mapping (`vmap`) of pinned pages, for `memcpy` to and from them.
///
/// # Invariants
///
/// `addr` maps `len` bytes: the pages of a [`PinnedPages`] that outlives this mapping.
pub(crate) struct Vmap {
    addr: core::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is kernel memory usable from any thread.
unsafe impl Send for Vmap {}
// SAFETY: Copies through `&Vmap` go to memory the server shares anyway (see `write_at`).
unsafe impl Sync for Vmap {}

impl Vmap {
    /// Maps `pages` into the kernel. The caller keeps `pages` alive (and pinned) for as long
    /// as the mapping lives: drop the mapping first.
    pub(crate) fn new(pages: &mut PinnedPages) -> Result<Self> {
        let n = u32::try_from(pages.len()).map_err(|_| EINVAL)?;
        // SAFETY: `pages` holds `n` pinned pages.
        let addr = unsafe { raw::furing_vmap(pages.pages.as_mut_ptr(), n) };
        let addr = core::ptr::NonNull::new(addr.cast::<u8>()).ok_or(ENOMEM)?;
        Ok(Self {
            addr,
            len: pages.len() * kernel::page::PAGE_SIZE,
        })
    }

    /// Copies `src` to `off`.
    ///
    /// The server may touch the same bytes at the same time (its own buffers); as with
    /// `copy_to_user`, it then sees torn data, which is its own doing.
    pub(crate) fn write_at(&self, off: usize, src: &[u8]) -> Result {
        check_range(off, src.len(), self.len)?;
        // SAFETY: `off + src.len()` is within the mapping (checked above, invariant), which
        // cannot overlap `src` (a kernel buffer or a client page, never the server's).
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.addr.as_ptr().add(off), src.len())
        };
        Ok(())
    }

    /// Copies from `off` into `dst`.
    pub(crate) fn read_at(&self, off: usize, dst: &mut [u8]) -> Result {
        check_range(off, dst.len(), self.len)?;
        // SAFETY: As in `write_at`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.addr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }
}

impl Drop for Vmap {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: `addr` came from furing_vmap() and is unmapped once, here.
        unsafe { raw::furing_vunmap(self.addr.as_ptr().cast()) };
    }
}

/// Pages charged to the locked memory of the current task's mm (RLIMIT_MEMLOCK, which
/// CAP_IPC_LOCK bypasses); uncharged when dropped.
pub(crate) struct MemlockCharge {
    mm: ARef<kernel::mm::Mm>,
    pages: usize,
}

impl MemlockCharge {
    /// Charges `pages`; `ENOMEM` over the limit, `EFAULT` for a task without memory.
    pub(crate) fn new(pages: usize) -> Result<Self> {
        let mm: ARef<kernel::mm::Mm> = {
            let cur = kernel::current!();
            let mm: &kernel::mm::Mm = cur.mm().ok_or(EFAULT)?;
            mm.into()
        };
        // SAFETY: `mm` is a live mm (we hold an mmgrab reference).
        to_result(unsafe { bindings::account_locked_vm(mm.as_raw(), pages as c_ulong, true) })?;
        Ok(Self { mm, pages })
    }
}

impl Drop for MemlockCharge {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: `mm` is alive (mmgrab); this undoes the charge made in `new`. Uncharging
        // never fails.
        unsafe { bindings::account_locked_vm(self.mm.as_raw(), self.pages as c_ulong, false) };
    }
}

/// A reference on a folio (`folio_get`), put when dropped.
pub(crate) struct FolioRef(core::ptr::NonNull<bindings::folio>);

// SAFETY: Folio references may be taken and put on any thread.
unsafe impl Send for FolioRef {}
// SAFETY: Shared access does nothing with the folio.
unsafe impl Sync for FolioRef {}

impl FolioRef {
    /// # Safety
    ///
    /// `folio` must be a live folio.
    unsafe fn get(folio: *mut bindings::folio) -> Self {
        // SAFETY: Caller's guarantee.
        unsafe { raw::furing_folio_get(folio) };
        // SAFETY: A live folio is not null.
        Self(unsafe { core::ptr::NonNull::new_unchecked(folio) })
    }
}

impl Drop for FolioRef {
    fn drop(&mut self) {
        // SAFETY: We hold a reference, taken in `get`.
        unsafe { raw::furing_folio_put(self.0.as_ptr()) };
    }
}

/// Whether the current task has CAP_SYS_ADMIN (audited, as for any privileged operation).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable()` only looks at the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Copies `len` bytes between the kernel buffer `kbuf` and the current task's memory at
/// `uaddr`, within one page of user memory: the user page is pinned and copied through
/// its kernel mapping with `memcpy()`, as the FUSE core's copy state does for a server's
/// buffers (`fuse_copy_fill()`); `EFAULT` when the page is not mapped (writable, for
/// `to_user`). Measured under QEMU TCG, this copies 1 MiB in a fifth of the time
/// `copy_to_user()` takes; on hardware the two are close.
///
/// # Safety
///
/// `kbuf` must be valid for `len` bytes of reads (`to_user`) or writes.
pub(crate) unsafe fn copy_user_page(
    uaddr: usize,
    kbuf: *mut u8,
    len: usize,
    to_user: bool,
) -> Result {
    let off = uaddr % kernel::page::PAGE_SIZE;
    if len == 0 || off + len > kernel::page::PAGE_SIZE {
        return Err(EINVAL);
    }
    let mut page: *mut bindings::page = core::ptr::null_mut();
    let flags = if to_user { bindings::FOLL_WRITE } else { 0 };
    // SAFETY: One page of the current task's memory, one slot for its pointer.
    if unsafe { bindings::pin_user_pages_fast((uaddr - off) as c_ulong, 1, flags, &mut page) } != 1
    {
        return Err(EFAULT);
    }
    // SAFETY: `page` is pinned by us until the unpin below.
    let user = unsafe { bindings::kmap_local_page(page).cast::<u8>().add(off) };
    let (src, dst) = if to_user {
        (kbuf.cast_const(), user)
    } else {
        (user.cast_const(), kbuf)
    };
    // SAFETY: `user` maps `len` bytes of the pinned page, `kbuf` is valid for `len` bytes
    // (caller's guarantee). The two overlap only when a client does direct I/O to the
    // mount from the server's own ring buffer; `copy` (memmove) keeps that defined.
    unsafe {
        if (src as usize) < (dst as usize) + len && (dst as usize) < (src as usize) + len {
            core::ptr::copy(src, dst, len);
        } else {
            core::ptr::copy_nonoverlapping(src, dst, len);
        }
        bindings::kunmap_local(user.sub(off).cast());
        // A page written through the kernel mapping is dirty.
        bindings::unpin_user_pages_dirty_lock(&mut page, 1, to_user);
    }
    Ok(())
}
