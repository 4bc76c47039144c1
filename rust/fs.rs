// SPDX-License-Identifier: GPL-2.0

//! The `furing` filesystem type: mount options and the superblock life cycle.
//!
//! `mount -t furing -o fd=N,rootmode=M,user_id=U,group_id=G[,allow_other,
//! default_permissions,max_read=R,blksize=B] none /mnt`, where `N` is an open `/dev/furing`
//! file. The options are the FUSE core's; only `fd` differs (it must be a furing device).

use crate::ffi::{self, raw, FsContext, FsRegistration, FuseDevRef, StaticTable};
use kernel::{
    bindings,
    ffi::{c_int, c_void},
    prelude::*,
    str::CStr,
    types::Opaque,
};

/// Mount option numbers, as returned by `fs_parse`.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Opt {
    Source,
    Fd,
    RootMode,
    UserId,
    GroupId,
    DefaultPermissions,
    AllowOther,
    MaxRead,
    Blksize,
}

const OPTS: [Opt; 9] = [
    Opt::Source,
    Opt::Fd,
    Opt::RootMode,
    Opt::UserId,
    Opt::GroupId,
    Opt::DefaultPermissions,
    Opt::AllowOther,
    Opt::MaxRead,
    Opt::Blksize,
];

/// One `fsparam_*()` entry.
const fn param(
    name: &'static CStr,
    opt: Opt,
    type_: raw::fs_param_type,
    data: usize,
) -> raw::fs_parameter_spec {
    raw::fs_parameter_spec {
        name: name.to_bytes_with_nul().as_ptr(),
        type_,
        opt: opt as u8,
        flags: 0,
        data: data as *const c_void,
    }
}

/// `fsparam_flag()`: an option without a value.
const fn flag(name: &'static CStr, opt: Opt) -> raw::fs_parameter_spec {
    raw::fs_parameter_spec {
        name: name.to_bytes_with_nul().as_ptr(),
        type_: None,
        opt: opt as u8,
        flags: 0,
        data: core::ptr::null(),
    }
}

static PARAMS: StaticTable<[raw::fs_parameter_spec; 10]> = StaticTable([
    param(c"source", Opt::Source, Some(raw::fs_param_is_string), 0),
    param(c"fd", Opt::Fd, Some(raw::fs_param_is_fd), 0),
    // fsparam_u32oct: the data word is the number base.
    param(c"rootmode", Opt::RootMode, Some(raw::fs_param_is_u32), 8),
    param(c"user_id", Opt::UserId, Some(raw::fs_param_is_uid), 0),
    param(c"group_id", Opt::GroupId, Some(raw::fs_param_is_gid), 0),
    flag(c"default_permissions", Opt::DefaultPermissions),
    flag(c"allow_other", Opt::AllowOther),
    param(c"max_read", Opt::MaxRead, Some(raw::fs_param_is_u32), 0),
    param(c"blksize", Opt::Blksize, Some(raw::fs_param_is_u32), 0),
    // SAFETY: All-zero is the table's terminator.
    unsafe { core::mem::zeroed() },
]);

/// What the mount options asked for, kept in `fs_context::fs_private`.
pub(crate) struct MountOptions {
    fud: Option<FuseDevRef>,
    rootmode: Option<u32>,
    user_id: Option<bindings::kuid_t>,
    group_id: Option<bindings::kgid_t>,
    default_permissions: bool,
    allow_other: bool,
    max_read: u32,
    blksize: u32,
}

impl MountOptions {
    fn new() -> Self {
        Self {
            fud: None,
            rootmode: None,
            user_id: None,
            group_id: None,
            default_permissions: false,
            allow_other: false,
            max_read: u32::MAX,
            blksize: 0,
        }
    }

    /// Applies one parsed option.
    fn apply(&mut self, fsc: &FsContext, opt: Opt, value: ffi::ParamValue<'_>) -> Result {
        match opt {
            // The source string is only shown in /proc/mounts; the VFS keeps it.
            Opt::Source => value.take_source(fsc)?,
            Opt::Fd => {
                if self.fud.is_some() {
                    return Err(fsc.invalid(c"Multiple fd specified"));
                }
                let file = value.file()?;
                let fud =
                    ffi::fuse_dev_of_file(&file, &crate::device::FURING_FOPS.0, fsc.user_ns())
                        .map_err(|msg| fsc.invalid(msg))?;
                self.fud = Some(fud);
            }
            Opt::RootMode => {
                let mode = value.u32();
                if !valid_file_type(mode) {
                    return Err(fsc.invalid(c"Invalid rootmode"));
                }
                self.rootmode = Some(mode);
            }
            Opt::UserId => {
                let uid = value.uid();
                if !ffi::kuid_has_mapping(fsc.user_ns(), uid) {
                    return Err(fsc.invalid(c"Invalid user_id"));
                }
                self.user_id = Some(uid);
            }
            Opt::GroupId => {
                let gid = value.gid();
                if !ffi::kgid_has_mapping(fsc.user_ns(), gid) {
                    return Err(fsc.invalid(c"Invalid group_id"));
                }
                self.group_id = Some(gid);
            }
            Opt::DefaultPermissions => self.default_permissions = true,
            Opt::AllowOther => self.allow_other = true,
            Opt::MaxRead => self.max_read = value.u32(),
            Opt::Blksize => {
                let b = value.u32();
                if !b.is_power_of_two() || !(512..=bindings::PAGE_SIZE as u32).contains(&b) {
                    return Err(fsc.invalid(c"Invalid blksize"));
                }
                self.blksize = b;
            }
        }
        Ok(())
    }

    /// The FUSE core's view of these options (`fuse_fill_super_common()` input).
    fn fuse_fs_context(&self) -> raw::fuse_fs_context {
        let mut ctx = raw::fuse_fs_context {
            fud: self
                .fud
                .as_ref()
                .map_or(core::ptr::null_mut(), FuseDevRef::as_ptr),
            rootmode: self.rootmode.unwrap_or(0),
            user_id: self.user_id.unwrap_or_default(),
            group_id: self.group_id.unwrap_or_default(),
            max_read: self.max_read,
            ..Default::default()
        };
        ctx.set_rootmode_present(self.rootmode.is_some());
        ctx.set_user_id_present(self.user_id.is_some());
        ctx.set_group_id_present(self.group_id.is_some());
        ctx.set_default_permissions(self.default_permissions);
        ctx.set_allow_other(self.allow_other);
        ctx.set_legacy_opts_show(true);
        ctx
    }

    /// Checks that the options a mount needs are all there.
    fn check_complete(&self, fsc: &FsContext) -> Result {
        if self.fud.is_none() {
            return Err(fsc.invalid(c"fd option missing"));
        }
        if self.rootmode.is_none() {
            return Err(fsc.invalid(c"rootmode option missing"));
        }
        if self.user_id.is_none() || self.group_id.is_none() {
            return Err(fsc.invalid(c"user_id and group_id options required"));
        }
        Ok(())
    }
}

/// `fuse_valid_type()`: a root inode mode the FUSE core accepts.
fn valid_file_type(mode: u32) -> bool {
    let fmt = mode & bindings::S_IFMT;
    [
        bindings::S_IFREG,
        bindings::S_IFDIR,
        bindings::S_IFLNK,
        bindings::S_IFCHR,
        bindings::S_IFBLK,
        bindings::S_IFIFO,
        bindings::S_IFSOCK,
    ]
    .contains(&fmt)
}

/// `fs_context_operations::parse_param`: parses one mount option.
///
/// # Safety
///
/// Called by the VFS with a live context of this type and a parameter valid for the call.
unsafe extern "C" fn parse_param(
    fsc: *mut raw::fs_context,
    param: *mut raw::fs_parameter,
) -> c_int {
    // SAFETY: Called by the VFS with a valid context.
    let fsc = unsafe { FsContext::from_raw(fsc) };
    if fsc.is_reconfigure() {
        // Like fuse: ignore mount(MS_REMOUNT) options for backward compatibility.
        return if fsc.is_oldapi() {
            0
        } else {
            fsc.invalid(c"No changes allowed in reconfigure").to_errno()
        };
    }
    // SAFETY: Called by the VFS with a valid parameter that lives during this call.
    let parsed = unsafe { ffi::FsParameter::parse(&fsc, param, &PARAMS.0) };
    let res = parsed.and_then(|(opt, value)| {
        let opt = OPTS.get(usize::from(opt)).copied().ok_or(EINVAL)?;
        // SAFETY: `fs_private` is the `KBox<MountOptions>` of `init_fs_context`, alive until
        // `free`; the VFS serialises the context's operations, so this is the only reference.
        let opts = unsafe { &mut *fsc.private().cast::<MountOptions>() };
        opts.apply(&fsc, opt, value)
    });
    match res {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `fs_context_operations::get_tree`: creates the connection and the superblock.
///
/// Mirrors the FUSE core's own `fuse_get_tree()`, with a channel whose iqueue operations
/// are furing's (see [`crate::conn`]).
///
/// # Safety
///
/// Called by the VFS with a live context of this type.
unsafe extern "C" fn get_tree(fsc: *mut raw::fs_context) -> c_int {
    // SAFETY: Called by the VFS with a valid context.
    let fsc = unsafe { FsContext::from_raw(fsc) };
    // SAFETY: As in `parse_param`.
    let opts = unsafe { &*fsc.private().cast::<MountOptions>() };
    if let Err(e) = opts.check_complete(&fsc) {
        return e.to_errno();
    }
    // SAFETY: `fsc` is in `get_tree`.
    match unsafe { new_connection(&fsc) } {
        Ok(()) => {}
        Err(e) => return e.to_errno(),
    }
    let fm = fsc.s_fs_info().cast::<raw::fuse_mount>();
    // SAFETY: The context is valid; `fill_super` has the signature the VFS expects.
    let err = unsafe { raw::get_tree_nodev(fsc.as_ptr(), Some(fill_super)) };
    if !fsc.s_fs_info().is_null() {
        // No superblock took the mount over: drop it (and with it the connection).
        // SAFETY: `fm` is the mount made by `new_connection`, owned by the context.
        unsafe { raw::fuse_mount_destroy(fm) };
    }
    err
}

/// Makes the channel, connection and mount of a new superblock; the context owns the mount
/// (`s_fs_info`) afterwards.
///
/// # Safety
///
/// `fsc` must be in `get_tree`.
unsafe fn new_connection(fsc: &FsContext) -> Result {
    let fc = KBox::<raw::fuse_conn>::new_uninit(GFP_KERNEL)?;
    let fm = KBox::new(raw::fuse_mount::default(), GFP_KERNEL)?;
    // SAFETY: FFI call; returns a new channel or NULL.
    let fch = unsafe { raw::fuse_dev_chan_new() };
    if fch.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `fch` is new and unused.
    if let Err(e) = unsafe { crate::conn::install(fch) } {
        // SAFETY: Still unused; `fuse_chan_free` frees what `fuse_dev_chan_new` made.
        unsafe { raw::fuse_chan_free(fch) };
        return Err(e);
    }
    let fc = KBox::into_raw(fc).cast::<raw::fuse_conn>();
    let fm = KBox::into_raw(fm);
    // SAFETY: `fc` is allocated (the core initialises it), `fm` zeroed, `fch` ready; the
    // connection takes the channel and both are freed by the core (`fuse_free_conn` and
    // `fuse_mount_destroy` use kfree, matching `KBox`'s kmalloc).
    unsafe {
        raw::fuse_conn_init(fc, fm, fsc.user_ns(), fch);
        (*fc).release = Some(raw::fuse_free_conn);
    }
    fsc.set_s_fs_info(fm.cast());
    Ok(())
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
    // SAFETY: Called by the VFS with a valid context.
    let fsc = unsafe { FsContext::from_raw(fsc) };
    // SAFETY: As in `parse_param`.
    let opts = unsafe { &*fsc.private().cast::<MountOptions>() };
    let mut ctx = opts.fuse_fs_context();
    // SAFETY: `sb` is the new superblock whose `s_fs_info` is our mount; `ctx` is complete.
    let err = unsafe { raw::fuse_fill_super_common(sb, &mut ctx) };
    if err != 0 {
        return err;
    }
    if opts.blksize != 0 {
        // SAFETY: The superblock is ours until `get_tree` returns; blksize was validated.
        unsafe {
            (*sb).s_blocksize = opts.blksize as usize;
            (*sb).s_blocksize_bits = opts.blksize.trailing_zeros() as u8;
        }
    }
    // SAFETY: `s_fs_info` is the `fuse_mount` set up in `get_tree`, with its connection and
    // furing channel; `fc->dev` was set by `fuse_fill_super_common`.
    unsafe {
        let fm = (*sb).s_fs_info.cast::<raw::fuse_mount>();
        let fc = (*fm).fc;
        crate::conn::publish_stats((*fc).chan, (*fc).dev);
        raw::fuse_send_init(fm)
    }
}

/// `fs_context_operations::free`: drops the mount options.
///
/// # Safety
///
/// Called by the VFS once, at the end of a context of this type.
unsafe extern "C" fn free(fsc: *mut raw::fs_context) {
    // SAFETY: Called by the VFS with a valid context, once, at its end.
    let fsc = unsafe { FsContext::from_raw(fsc) };
    let opts = fsc.private().cast::<MountOptions>();
    if !opts.is_null() {
        // SAFETY: Set from `KBox::into_raw` in `init_fs_context`; nothing uses it after this.
        drop(unsafe { KBox::from_raw(opts) });
    }
}

static CONTEXT_OPS: StaticTable<raw::fs_context_operations> =
    StaticTable(raw::fs_context_operations {
        free: Some(free),
        parse_param: Some(parse_param),
        get_tree: Some(get_tree),
        ..pin_init::zeroed()
    });

/// `file_system_type::init_fs_context`: attaches empty mount options to a new context.
///
/// # Safety
///
/// Called by the VFS with a new, valid context.
unsafe extern "C" fn init_fs_context(fsc: *mut bindings::fs_context) -> c_int {
    // SAFETY: Called by the VFS with a valid, new context (the kernel crate only knows the
    // type by name; the module's bindings have its fields).
    let fsc = unsafe { FsContext::from_raw(fsc.cast()) };
    match KBox::new(MountOptions::new(), GFP_KERNEL) {
        Ok(opts) => {
            fsc.set_private(KBox::into_raw(opts).cast(), &CONTEXT_OPS.0);
            0
        }
        Err(e) => Error::from(e).to_errno(),
    }
}

/// `file_system_type::kill_sb`: tears a superblock down.
///
/// # Safety
///
/// Called by the VFS with a superblock of this type that is being killed.
unsafe extern "C" fn kill_sb(sb: *mut bindings::super_block) {
    // SAFETY: Called by the VFS with a superblock of this type: `s_fs_info` is its
    // `fuse_mount`, set when the superblock was made (even if fill_super failed).
    unsafe {
        let fm = (*sb).s_fs_info.cast::<raw::fuse_mount>();
        if !(*sb).s_root.is_null() {
            // `fill_super` succeeded: the connection and its furing channel are alive.
            crate::conn::unpublish_stats((*(*fm).fc).chan);
        }
        if !(*sb).s_root.is_null() && raw::fuse_mount_remove(fm) {
            raw::fuse_conn_destroy(fm);
        }
        bindings::kill_anon_super(sb);
        raw::fuse_mount_destroy(fm);
    }
}

static FS_TYPE: StaticTable<Opaque<bindings::file_system_type>> =
    StaticTable(Opaque::new(bindings::file_system_type {
        name: c"furing".to_bytes_with_nul().as_ptr(),
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        init_fs_context: Some(init_fs_context),
        parameters: PARAMS.0.as_ptr().cast(),
        kill_sb: Some(kill_sb),
        ..pin_init::zeroed()
    }));

/// The registered `furing` filesystem type.
pub(crate) struct Registration {
    _reg: FsRegistration,
}

impl Registration {
    /// Registers the filesystem type `furing`.
    pub(crate) fn register() -> Result<Self> {
        Ok(Self {
            _reg: FsRegistration::new(&FS_TYPE)?,
        })
    }
}
