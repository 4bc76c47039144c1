// SPDX-License-Identifier: GPL-2.0

//! VFS: the misc device, the filesystem type, mount contexts and their parameters.

use super::fuse::{new_conn, ClassicQueue, FiqOps, FuseDev, Transport};
use super::raw;
use super::uring::UringCmd;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_long, c_uint, c_ulong},
    fs::LocalFile,
    prelude::*,
    str::CStr,
    sync::{aref::ARef, Arc, ArcBorrow},
    types::Opaque,
};

/// Checks that `file` is a file of the device with operations `fops`, opened in the
/// mount's user namespace, then returns a reference on its `fuse_dev`.
pub(crate) fn fuse_dev_of_file(
    file: &LocalFile,
    fops: &'static DevFops,
    fsc: &FsContext<'_>,
) -> core::result::Result<FuseDevRef, &'static CStr> {
    let f = file.as_ptr();
    // SAFETY: `file` is a valid, referenced file, so its `f_op` and `f_cred` are valid.
    let (f_op, cred_ns) = unsafe { ((*f).f_op, (*(*f).f_cred).user_ns) };
    if !core::ptr::eq(f_op, &fops.0) {
        return Err(c"fd is not a furing device");
    }
    // Like fuse: the mount must come from the user namespace that opened the device.
    if cred_ns != fsc.user_ns().0.as_ptr() {
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
///
/// # Invariants
///
/// `self.0` holds a reference on a `fuse_dev`.
pub(crate) struct FuseDevRef(*mut raw::fuse_dev);

impl Drop for FuseDevRef {
    fn drop(&mut self) {
        // SAFETY: `self.0` holds a reference taken in `fuse_dev_of_file`.
        unsafe { raw::fuse_dev_put(self.0) };
    }
}

// SAFETY: The reference may be dropped from any thread; `fuse_dev_put` has no affinity.
unsafe impl Send for FuseDevRef {}

/// Handles the io_uring commands of a FUSE device (`file_operations::uring_cmd`).
pub(crate) trait UringCmdHandler {
    /// `cmd` is issued (or cancelled) on a file whose `fuse_dev` is `dev`: returns
    /// `-EIOCBQUEUED` when the command is kept, else its result.
    fn uring_cmd(cmd: UringCmd, dev: &FuseDev, issue_flags: u32) -> c_int;
    /// The file of `dev` is being released, before the core's own release: no command of
    /// it is left (each held the file).
    fn release(dev: &FuseDev);
}

/// The file operations of a FUSE device: the core's own `fuse_dev_operations` for all
/// but `uring_cmd`, so `file->private_data` is the core's `struct fuse_dev`. A raw table,
/// as Rust Binder's is, because `MiscDevice` owns `private_data` and has no `splice_*`,
/// `poll` or `uring_cmd`.
#[repr(transparent)]
pub(crate) struct DevFops(bindings::file_operations);

// SAFETY: An immutable table of function pointers and the module pointer.
unsafe impl Sync for DevFops {}

/// The classic device operations of the FUSE core.
fn classic() -> &'static bindings::file_operations {
    // SAFETY: `fuse_dev_operations` is an exported, immutable table of the FUSE core, which
    // cannot be unloaded while furing (which links against it) is loaded.
    unsafe { &raw::fuse_dev_operations }
}

/// Defines `extern "C"` trampolines into the classic operations of the FUSE core.
macro_rules! classic_trampolines {
    ($($name:ident => $op:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[doc = concat!("Calls `fuse_dev_operations.", stringify!($op), "`.")]
        ///
        /// # Safety
        ///
        #[doc = concat!("Called by the VFS with the arguments of `file_operations::",
                        stringify!($op), "` on a furing device file.")]
        unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            let op = classic().$op.expect(concat!("fuse_dev_operations.", stringify!($op)));
            // SAFETY: The arguments are the VFS's, passed through unchanged, for a file whose
            // `private_data` is the core's `fuse_dev`: the core operation's own contract.
            unsafe { op($($arg),*) }
        }
    )*};
}

classic_trampolines! {
    dev_open => open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int;
    dev_read_iter => read_iter(iocb: *mut bindings::kiocb, to: *mut bindings::iov_iter) -> isize;
    dev_write_iter =>
        write_iter(iocb: *mut bindings::kiocb, from: *mut bindings::iov_iter) -> isize;
    dev_splice_read => splice_read(file: *mut bindings::file, ppos: *mut bindings::loff_t,
        pipe: *mut bindings::pipe_inode_info, len: usize, flags: c_uint) -> isize;
    dev_splice_write => splice_write(pipe: *mut bindings::pipe_inode_info,
        file: *mut bindings::file, ppos: *mut bindings::loff_t, len: usize, flags: c_uint) -> isize;
    dev_poll =>
        poll(file: *mut bindings::file, wait: *mut bindings::poll_table_struct) -> bindings::__poll_t;
    dev_fasync => fasync(fd: c_int, file: *mut bindings::file, on: c_int) -> c_int;
    dev_ioctl => unlocked_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long;
    dev_compat_ioctl =>
        compat_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long;
    dev_show_fdinfo => show_fdinfo(m: *mut bindings::seq_file, file: *mut bindings::file);
}

/// `file_operations::release` of handler `H`: [`UringCmdHandler::release`], then the
/// core's.
///
/// # Safety
///
/// Called by the VFS once, as the last reference to a device file of this table goes.
unsafe extern "C" fn dev_release<H: UringCmdHandler>(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: The file is valid for this call (caller's guarantee); its `private_data` is the
    // `fuse_dev` the core set at open (or NULL), which only the core's release below frees.
    let fud = unsafe { (*file).private_data.cast::<raw::fuse_dev>() };
    if !fud.is_null() {
        // SAFETY: Live until the core's release, after this borrow ends.
        H::release(unsafe { FuseDev::from_raw(fud) });
    }
    let op = classic().release.expect("fuse_dev_operations.release");
    // SAFETY: The VFS's arguments, passed through unchanged: the core operation's contract.
    unsafe { op(inode, file) }
}

/// `file_operations::uring_cmd` of handler `H`.
///
/// # Safety
///
/// Called by io_uring with a command issued (or cancelled) on a device file of this table.
unsafe extern "C" fn dev_uring_cmd<H: UringCmdHandler>(
    cmd: *mut bindings::io_uring_cmd,
    issue_flags: c_uint,
) -> c_int {
    let Some(ptr) = core::ptr::NonNull::new(cmd.cast::<raw::io_uring_cmd>()) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The command is valid and holds its file for this call (caller's
    // guarantee); the device borrow ends with it. (The kernel crate only knows the type by
    // name; the module's bindings have its fields.)
    let (cmd, dev) = unsafe { (UringCmd::from_raw(ptr.as_ptr()), UringCmd::dev_of(ptr)) };
    match cmd {
        Some(cmd) => H::uring_cmd(cmd, dev, issue_flags),
        None => EINVAL.to_errno(),
    }
}

impl DevFops {
    /// The table of a device whose io_uring commands `H` handles.
    pub(crate) const fn new<H: UringCmdHandler>() -> Self {
        Self(bindings::file_operations {
            owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
            open: Some(dev_open),
            release: Some(dev_release::<H>),
            read_iter: Some(dev_read_iter),
            write_iter: Some(dev_write_iter),
            splice_read: Some(dev_splice_read),
            splice_write: Some(dev_splice_write),
            poll: Some(dev_poll),
            fasync: Some(dev_fasync),
            unlocked_ioctl: Some(dev_ioctl),
            compat_ioctl: Some(dev_compat_ioctl),
            show_fdinfo: Some(dev_show_fdinfo),
            uring_cmd: Some(dev_uring_cmd::<H>),
            ..pin_init::zeroed()
        })
    }
}

/// A misc device registration, deregistered on drop.
pub(crate) struct MiscRegistration {
    dev: Pin<KBox<kernel::types::Opaque<bindings::miscdevice>>>,
}

impl MiscRegistration {
    /// Registers the misc device `name` with `fops` and `mode`, dynamic minor.
    pub(crate) fn new(name: &'static CStr, fops: &'static DevFops, mode: u16) -> Result<Self> {
        let dev = KBox::pin(
            kernel::types::Opaque::new(bindings::miscdevice {
                minor: bindings::MISC_DYNAMIC_MINOR as i32,
                name: name.as_char_ptr(),
                fops: &fops.0,
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

/// One entry of a filesystem's parameter table (`fsparam_*()`).
#[repr(transparent)]
pub(crate) struct FsParam(raw::fs_parameter_spec);

/// The kinds of mount parameter furing takes.
#[derive(Clone, Copy)]
pub(crate) enum ParamKind {
    /// `fsparam_string`.
    String,
    /// `fsparam_fd`.
    Fd,
    /// `fsparam_u32`.
    U32,
    /// `fsparam_u32oct`.
    U32Oct,
    /// `fsparam_uid`.
    Uid,
    /// `fsparam_gid`.
    Gid,
    /// `fsparam_flag`: no value.
    Flag,
}

impl FsParam {
    /// Parameter `name` of `kind`, reported as option number `opt`.
    pub(crate) const fn new(name: &'static CStr, opt: u8, kind: ParamKind) -> Self {
        let (type_, base): (raw::fs_param_type, usize) = match kind {
            ParamKind::String => (Some(raw::fs_param_is_string), 0),
            ParamKind::Fd => (Some(raw::fs_param_is_fd), 0),
            ParamKind::U32 => (Some(raw::fs_param_is_u32), 0),
            // The data word of `fsparam_u32oct` is the number base.
            ParamKind::U32Oct => (Some(raw::fs_param_is_u32), 8),
            ParamKind::Uid => (Some(raw::fs_param_is_uid), 0),
            ParamKind::Gid => (Some(raw::fs_param_is_gid), 0),
            ParamKind::Flag => (None, 0),
        };
        Self(raw::fs_parameter_spec {
            name: name.to_bytes_with_nul().as_ptr(),
            type_,
            opt,
            flags: 0,
            data: base as *const core::ffi::c_void,
        })
    }

    /// The all-zero terminator of a table.
    pub(crate) const END: Self = Self(pin_init::zeroed());
}

/// A filesystem's parameter table, ending with [`FsParam::END`].
///
/// # Invariants
///
/// The last entry has a NULL name (the terminator the parser stops at).
#[repr(transparent)]
pub(crate) struct FsParams<const N: usize>([FsParam; N]);

impl<const N: usize> FsParams<N> {
    /// The table `params`, whose last entry must be [`FsParam::END`] (checked at compile
    /// time for a `static`).
    pub(crate) const fn new(params: [FsParam; N]) -> Self {
        assert!(N > 0 && params[N - 1].0.name.is_null());
        // INVARIANT: Checked above.
        Self(params)
    }
}

// SAFETY: An immutable table of names and numbers.
unsafe impl<const N: usize> Sync for FsParams<N> {}

/// A filesystem type served by the FUSE core over a transport of furing's: the core does
/// the superblock, furing the mount options and the connection's transport.
pub(crate) trait FuseFs: 'static {
    /// What the mount options asked for (`fs_context::fs_private`).
    type Options: Send;
    /// The transport of every connection.
    type Transport: Transport;
    /// The transport's iqueue operations.
    const FIQ_OPS: &'static FiqOps<Self::Transport>;
    /// Options before any is parsed.
    fn new_options() -> Self::Options;
    /// Applies parameter number `opt` with `value`.
    fn parse(
        opts: &mut Self::Options,
        fsc: &FsContext<'_>,
        opt: u8,
        value: ParamValue<'_>,
    ) -> Result;
    /// What the FUSE core's superblock setup needs; fails if an option is missing.
    fn mount_params<'a>(opts: &'a Self::Options, fsc: &FsContext<'_>) -> Result<MountParams<'a>>;
    /// A transport for a new connection, around the core's classic path of its channel.
    fn new_transport(classic: ClassicQueue) -> Result<Arc<Self::Transport>>;
    /// The superblock is set up and its connection has id `conn_id` (`fc->dev`).
    fn mounted(transport: ArcBorrow<'_, Self::Transport>, conn_id: u32);
    /// A superblock set up by `mounted` goes.
    fn unmounting(transport: ArcBorrow<'_, Self::Transport>);
}

/// The mount options as the FUSE core's superblock setup takes them.
pub(crate) struct MountParams<'a> {
    pub(crate) fud: &'a FuseDevRef,
    pub(crate) rootmode: u32,
    pub(crate) user_id: bindings::kuid_t,
    pub(crate) group_id: bindings::kgid_t,
    pub(crate) default_permissions: bool,
    pub(crate) allow_other: bool,
    pub(crate) max_read: u32,
    /// 0: the core's default.
    pub(crate) blksize: u32,
}

impl MountParams<'_> {
    /// `fuse_fill_super_common()` input.
    fn fuse_fs_context(&self) -> raw::fuse_fs_context {
        let mut ctx = raw::fuse_fs_context {
            fud: self.fud.0,
            rootmode: self.rootmode,
            user_id: self.user_id,
            group_id: self.group_id,
            max_read: self.max_read,
            ..Default::default()
        };
        ctx.set_rootmode_present(true);
        ctx.set_user_id_present(true);
        ctx.set_group_id_present(true);
        ctx.set_default_permissions(self.default_permissions);
        ctx.set_allow_other(self.allow_other);
        ctx.set_legacy_opts_show(true);
        ctx
    }
}

/// A filesystem type of a [`FuseFs`], to register.
#[repr(transparent)]
pub(crate) struct FsType(Opaque<bindings::file_system_type>);

// SAFETY: Immutable after initialisation but for the list links, which the VFS protects
// with its own lock.
unsafe impl Sync for FsType {}

/// The callbacks of filesystem type `F`.
struct FsOps<F>(PhantomData<F>);

impl<F: FuseFs> FsOps<F> {
    const CONTEXT_OPS: raw::fs_context_operations = raw::fs_context_operations {
        free: Some(Self::free),
        parse_param: Some(Self::parse_param),
        get_tree: Some(Self::get_tree),
        ..pin_init::zeroed()
    };

    /// The options of a context of this type.
    ///
    /// # Safety
    ///
    /// `fsc` must be a context of this type between `init_fs_context` and `free`; the VFS
    /// serialises its operations, so the reference is unique while the callback runs.
    unsafe fn options<'a>(fsc: *mut raw::fs_context) -> &'a mut F::Options {
        // SAFETY: `fs_private` is the `KBox<F::Options>` of `init_fs_context`, alive until
        // `free` (caller's guarantee).
        unsafe { &mut *(*fsc).fs_private.cast::<F::Options>() }
    }

    /// `file_system_type::init_fs_context`: attaches new options to the context.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a new, valid context.
    unsafe extern "C" fn init_fs_context(fsc: *mut bindings::fs_context) -> c_int {
        let fsc = fsc.cast::<raw::fs_context>();
        match KBox::new(F::new_options(), GFP_KERNEL) {
            Ok(opts) => {
                // SAFETY: A new context (caller's guarantee): these fields are ours to set;
                // the box is freed in `free`.
                unsafe {
                    (*fsc).fs_private = KBox::into_raw(opts).cast();
                    (*fsc).ops = &Self::CONTEXT_OPS;
                }
                0
            }
            Err(e) => Error::from(e).to_errno(),
        }
    }

    /// `fs_context_operations::free`: drops the options.
    ///
    /// # Safety
    ///
    /// Called by the VFS once, at the end of a context of this type.
    unsafe extern "C" fn free(fsc: *mut raw::fs_context) {
        // SAFETY: Called with a valid context of this type, once, at its end.
        let opts = unsafe { (*fsc).fs_private }.cast::<F::Options>();
        if !opts.is_null() {
            // SAFETY: Set from `KBox::into_raw` in `init_fs_context`; nothing uses it after.
            drop(unsafe { KBox::from_raw(opts) });
        }
    }

    /// `fs_context_operations::parse_param`: parses one mount option.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a live context of this type and a parameter valid for the
    /// call.
    unsafe extern "C" fn parse_param(
        fsc: *mut raw::fs_context,
        param: *mut raw::fs_parameter,
    ) -> c_int {
        // SAFETY: Called with a valid context, for the duration of the call.
        let ctx = unsafe { FsContext::from_raw(fsc) };
        if ctx.is_reconfigure() {
            // Like fuse: ignore mount(MS_REMOUNT) options for backward compatibility.
            return if ctx.is_oldapi() {
                0
            } else {
                ctx.invalid(c"No changes allowed in reconfigure").to_errno()
            };
        }
        // SAFETY: The parameter is valid during this call; the table is the fs type's.
        let parsed =
            unsafe { FsParameter::parse(&ctx, param, (*(*fsc).fs_type).parameters.cast()) };
        // SAFETY: A context of this type in one of its callbacks.
        let opts = unsafe { Self::options(fsc) };
        match parsed.and_then(|(opt, value)| F::parse(opts, &ctx, opt, value)) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `fs_context_operations::get_tree`: the connection, then the superblock. Mirrors the
    /// FUSE core's own `fuse_get_tree()`, with a channel whose iqueue is `F`'s transport.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a live context of this type.
    unsafe extern "C" fn get_tree(fsc: *mut raw::fs_context) -> c_int {
        // SAFETY: Called with a valid context, for the duration of the call.
        let ctx = unsafe { FsContext::from_raw(fsc) };
        // SAFETY: A context of this type in one of its callbacks.
        let opts = unsafe { Self::options(fsc) };
        if let Err(e) = F::mount_params(opts, &ctx) {
            return e.to_errno();
        }
        let fm = match new_conn(F::FIQ_OPS, F::new_transport, &ctx.user_ns()) {
            Ok(fm) => fm,
            Err(e) => return e.to_errno(),
        };
        // SAFETY: The context is valid and in `get_tree`, which owns `s_fs_info` until a
        // superblock takes it (`sget_fc` moves it and clears the field); `fill_super` has
        // the signature the VFS expects.
        unsafe {
            (*fsc).s_fs_info = fm.as_ptr().cast();
            let err = raw::get_tree_nodev(fsc, Some(Self::fill_super));
            if !(*fsc).s_fs_info.is_null() {
                // No superblock took the mount over: drop it (and with it the connection).
                raw::fuse_mount_destroy(fm.as_ptr());
            }
            err
        }
    }

    /// `get_tree_nodev()`'s fill_super: the FUSE core's superblock setup, then FUSE_INIT.
    ///
    /// # Safety
    ///
    /// Called by the VFS from `get_tree` with a new superblock and our context.
    unsafe extern "C" fn fill_super(
        sb: *mut bindings::super_block,
        fsc: *mut raw::fs_context,
    ) -> c_int {
        // SAFETY: Called with a valid context, for the duration of the call.
        let ctx = unsafe { FsContext::from_raw(fsc) };
        // SAFETY: A context of this type in one of its callbacks.
        let opts = unsafe { Self::options(fsc) };
        let params = match F::mount_params(opts, &ctx) {
            Ok(p) => p,
            Err(e) => return e.to_errno(),
        };
        let mut fctx = params.fuse_fs_context();
        // SAFETY: `sb` is the new superblock whose `s_fs_info` is our mount; `fctx` is
        // complete.
        let err = unsafe { raw::fuse_fill_super_common(sb, &mut fctx) };
        if err != 0 {
            return err;
        }
        let b = params.blksize;
        if b != 0 && (!b.is_power_of_two() || !(512..=bindings::PAGE_SIZE as u32).contains(&b)) {
            return EINVAL.to_errno();
        }
        if params.blksize != 0 {
            // SAFETY: The superblock is ours until `get_tree` returns; the size is a power
            // of two from 512 to a page (checked above).
            unsafe {
                (*sb).s_blocksize = params.blksize as usize;
                (*sb).s_blocksize_bits = params.blksize.trailing_zeros() as u8;
            }
        }
        // SAFETY: `s_fs_info` is the `fuse_mount` of `get_tree`, with its connection and
        // channel; `fc->dev` was set by `fuse_fill_super_common`.
        unsafe {
            let fm = (*sb).s_fs_info.cast::<raw::fuse_mount>();
            let fc = (*fm).fc;
            if let Some(t) = super::fuse::Chan::from_raw((*fc).chan).transport::<F::Transport>() {
                F::mounted(t, (*fc).dev);
            }
            raw::fuse_send_init(fm)
        }
    }

    /// `file_system_type::kill_sb`: tears a superblock down.
    ///
    /// # Safety
    ///
    /// Called by the VFS with a superblock of this type that is being killed.
    unsafe extern "C" fn kill_sb(sb: *mut bindings::super_block) {
        // SAFETY: A superblock of this type: `s_fs_info` is its `fuse_mount`, set when the
        // superblock was made (even if fill_super failed); with a root, `fill_super`
        // succeeded and the connection and its channel are alive.
        unsafe {
            let fm = (*sb).s_fs_info.cast::<raw::fuse_mount>();
            if !(*sb).s_root.is_null() {
                let chan = super::fuse::Chan::from_raw((*(*fm).fc).chan);
                if let Some(t) = chan.transport::<F::Transport>() {
                    F::unmounting(t);
                }
                if raw::fuse_mount_remove(fm) {
                    raw::fuse_conn_destroy(fm);
                }
            }
            bindings::kill_anon_super(sb);
            raw::fuse_mount_destroy(fm);
        }
    }
}

impl FsType {
    /// The type `name` of filesystem `F`, with parameters `params`.
    pub(crate) const fn new<F: FuseFs, const N: usize>(
        name: &'static CStr,
        params: &'static FsParams<N>,
    ) -> Self {
        Self(Opaque::new(bindings::file_system_type {
            name: name.to_bytes_with_nul().as_ptr(),
            owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
            init_fs_context: Some(FsOps::<F>::init_fs_context),
            parameters: params.0.as_ptr().cast(),
            kill_sb: Some(FsOps::<F>::kill_sb),
            ..pin_init::zeroed()
        }))
    }
}

/// A filesystem type registration, unregistered on drop.
pub(crate) struct FsRegistration(&'static FsType);

impl FsRegistration {
    /// Registers `fs_type`.
    pub(crate) fn new(fs_type: &'static FsType) -> Result<Self> {
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

/// A user namespace, borrowed from a mount context.
pub(crate) struct UserNs<'a>(NonNull<bindings::user_namespace>, PhantomData<&'a ()>);

impl UserNs<'_> {
    pub(super) fn as_ptr(&self) -> *mut bindings::user_namespace {
        self.0.as_ptr()
    }

    /// Whether `uid` is representable in the namespace (`kuid_has_mapping()`).
    pub(crate) fn has_uid(&self, uid: bindings::kuid_t) -> bool {
        // SAFETY: The namespace is live while borrowed.
        unsafe { raw::furing_kuid_has_mapping(self.0.as_ptr(), uid) }
    }

    /// Whether `gid` is representable in the namespace (`kgid_has_mapping()`).
    pub(crate) fn has_gid(&self, gid: bindings::kgid_t) -> bool {
        // SAFETY: The namespace is live while borrowed.
        unsafe { raw::furing_kgid_has_mapping(self.0.as_ptr(), gid) }
    }
}

/// A `struct fs_context` borrowed inside one of its callbacks.
///
/// # Invariants
///
/// `self.0` is a valid fs context for `'a`, inside one of the fs context operations
/// (which the VFS serialises).
pub(crate) struct FsContext<'a>(NonNull<raw::fs_context>, PhantomData<&'a ()>);

impl FsContext<'_> {
    /// # Safety
    ///
    /// `fsc` must be a valid fs context for the duration of the returned borrow, inside one
    /// of the fs context operations.
    unsafe fn from_raw<'a>(fsc: *mut raw::fs_context) -> FsContext<'a> {
        // SAFETY: Caller's guarantee: valid, so not NULL.
        FsContext(unsafe { NonNull::new_unchecked(fsc) }, PhantomData)
    }

    fn as_ptr(&self) -> *mut raw::fs_context {
        self.0.as_ptr()
    }

    /// Logs `msg` on the context (visible through fsconfig's log and dmesg) and
    /// returns `EINVAL`, like `invalfc()`.
    pub(crate) fn invalid(&self, msg: &CStr) -> Error {
        // SAFETY: The context is valid (type invariant), `msg` is NUL-terminated.
        Error::from_errno(unsafe { raw::furing_invalfc(self.as_ptr(), msg.as_char_ptr()) })
    }

    /// Whether this context is for a remount.
    fn is_reconfigure(&self) -> bool {
        // SAFETY: The context is valid (type invariant).
        let purpose = unsafe { (*self.as_ptr()).purpose() };
        purpose == raw::fs_context_purpose_FS_CONTEXT_FOR_RECONFIGURE
    }

    /// Whether the mount came through the old `mount(2)` API.
    fn is_oldapi(&self) -> bool {
        // SAFETY: The context is valid (type invariant).
        unsafe { (*self.as_ptr()).oldapi() }
    }

    /// The user namespace the mount is made in.
    pub(crate) fn user_ns(&self) -> UserNs<'_> {
        // SAFETY: The context is valid (type invariant) and holds its namespace, which is
        // never NULL.
        UserNs(
            unsafe { NonNull::new_unchecked((*self.as_ptr()).user_ns) },
            PhantomData,
        )
    }
}

/// A mount parameter being parsed.
struct FsParameter;

impl FsParameter {
    /// Parses `param` against `spec` (`fs_parse()`): returns the option number and value.
    ///
    /// # Safety
    ///
    /// `param` must be valid for the lifetime `'a`.
    unsafe fn parse<'a>(
        fsc: &FsContext<'_>,
        param: *mut raw::fs_parameter,
        spec: *const raw::fs_parameter_spec,
    ) -> Result<(u8, ParamValue<'a>)> {
        // SAFETY: All-zero is a valid `fs_parse_result` (plain integers).
        let mut result: raw::fs_parse_result = unsafe { core::mem::zeroed() };
        // SAFETY: `fsc` and `param` are valid; `spec` is a terminated table; `result` is
        // a local the call fills in.
        let opt =
            unsafe { raw::__fs_parse(&raw mut (*fsc.as_ptr()).log, spec, param, &mut result) };
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
    pub(crate) fn take_source(self, fsc: &FsContext<'_>) -> Result {
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
