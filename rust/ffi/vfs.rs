// SPDX-License-Identifier: GPL-2.0

//! VFS: the misc device, the filesystem type, mount contexts and their parameters.

use super::{raw, StaticTable};
use kernel::{bindings, error::to_result, fs::LocalFile, prelude::*, str::CStr, sync::aref::ARef};

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
