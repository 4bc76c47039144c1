// SPDX-License-Identifier: GPL-2.0

//! `/dev/furing`: the server's end of a furing connection.
//!
//! The classic FUSE device protocol (INIT, FORGET, INTERRUPT, notifications, replies to
//! requests that went the classic way) is the FUSE core's own: every classic operation is a
//! trampoline into the exported `fuse_dev_operations`, so `file->private_data` is the core's
//! `struct fuse_dev`. The table is a raw `file_operations`, as Rust Binder's is, because the
//! `MiscDevice` abstraction owns `private_data` and has no `splice_*`, `poll` or `uring_cmd`.

use crate::ffi::{raw, MiscRegistration, StaticTable, UringCmd};
use kernel::{
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong},
    prelude::*,
};

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
                        stringify!($op), "` on a `/dev/furing` file.")]
        unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            let op = classic().$op.expect(concat!("fuse_dev_operations.", stringify!($op)));
            // SAFETY: The arguments are the VFS's, passed through unchanged, for a file whose
            // `private_data` is the core's `fuse_dev`: the core operation's own contract.
            unsafe { op($($arg),*) }
        }
    )*};
}

classic_trampolines! {
    furing_open => open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int;
    furing_release => release(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int;
    furing_read_iter => read_iter(iocb: *mut bindings::kiocb, to: *mut bindings::iov_iter) -> isize;
    furing_write_iter =>
        write_iter(iocb: *mut bindings::kiocb, from: *mut bindings::iov_iter) -> isize;
    furing_splice_read => splice_read(file: *mut bindings::file, ppos: *mut bindings::loff_t,
        pipe: *mut bindings::pipe_inode_info, len: usize, flags: c_uint) -> isize;
    furing_splice_write => splice_write(pipe: *mut bindings::pipe_inode_info,
        file: *mut bindings::file, ppos: *mut bindings::loff_t, len: usize, flags: c_uint) -> isize;
    furing_poll =>
        poll(file: *mut bindings::file, wait: *mut bindings::poll_table_struct) -> bindings::__poll_t;
    furing_fasync => fasync(fd: c_int, file: *mut bindings::file, on: c_int) -> c_int;
    furing_ioctl => unlocked_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long;
    furing_compat_ioctl =>
        compat_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long;
    furing_show_fdinfo => show_fdinfo(m: *mut bindings::seq_file, file: *mut bindings::file);
}

/// `file_operations::uring_cmd`: the io_uring protocol of furing.
///
/// # Safety
///
/// Called by io_uring with a command issued (or cancelled) on a `/dev/furing` file.
unsafe extern "C" fn furing_uring_cmd(
    cmd: *mut bindings::io_uring_cmd,
    issue_flags: c_uint,
) -> c_int {
    // SAFETY: The kernel crate only knows the type by name; the module's bindings have its
    // fields. The command is valid for this call (caller's guarantee).
    match unsafe { UringCmd::from_raw(cmd.cast()) } {
        Some(cmd) => crate::conn::uring_cmd(cmd, issue_flags),
        None => EINVAL.to_errno(),
    }
}

/// The file operations of `/dev/furing`.
pub(crate) static FURING_FOPS: StaticTable<bindings::file_operations> =
    StaticTable(bindings::file_operations {
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        open: Some(furing_open),
        release: Some(furing_release),
        read_iter: Some(furing_read_iter),
        write_iter: Some(furing_write_iter),
        splice_read: Some(furing_splice_read),
        splice_write: Some(furing_splice_write),
        poll: Some(furing_poll),
        fasync: Some(furing_fasync),
        unlocked_ioctl: Some(furing_ioctl),
        compat_ioctl: Some(furing_compat_ioctl),
        show_fdinfo: Some(furing_show_fdinfo),
        uring_cmd: Some(furing_uring_cmd),
        ..pin_init::zeroed()
    });

/// The registered `/dev/furing` misc device.
pub(crate) struct Device {
    misc: MiscRegistration,
}

impl Device {
    /// Registers `/dev/furing`, mode 0666 like `/dev/fuse`.
    pub(crate) fn register() -> Result<Self> {
        let misc = MiscRegistration::new(c"furing", &FURING_FOPS.0, 0o666)?;
        Ok(Self { misc })
    }

    /// The dynamic minor number of the device (major is the misc major, 10).
    pub(crate) fn minor(&self) -> i32 {
        self.misc.minor()
    }
}
