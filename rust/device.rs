// SPDX-License-Identifier: GPL-2.0

//! `/dev/furing`: the server's end of a furing connection.
//!
//! The classic FUSE device protocol (INIT, FORGET, INTERRUPT, notifications, replies to
//! requests that went the classic way) is the FUSE core's own: every classic operation is a
//! trampoline into the exported `fuse_dev_operations`, so `file->private_data` is the core's
//! `struct fuse_dev`. The table is a raw `file_operations`, as Rust Binder's is, because the
//! `MiscDevice` abstraction owns `private_data` and has no `splice_*`, `poll` or `uring_cmd`.

use crate::ffi::{DevFops, FuseDev, MiscRegistration, UringCmd, UringCmdHandler};
use kernel::{ffi::c_int, prelude::*};

/// The io_uring protocol of furing.
struct Commands;

impl UringCmdHandler for Commands {
    fn uring_cmd(cmd: UringCmd, dev: &FuseDev, issue_flags: u32) -> c_int {
        crate::conn::uring_cmd(cmd, dev, issue_flags)
    }

    fn release(dev: &FuseDev) {
        crate::conn::dev_release(dev);
    }
}

/// The file operations of `/dev/furing`.
pub(crate) static FURING_FOPS: DevFops = DevFops::new::<Commands>();

/// The registered `/dev/furing` misc device.
pub(crate) struct Device {
    misc: MiscRegistration,
}

impl Device {
    /// Registers `/dev/furing`, mode 0666 like `/dev/fuse`.
    pub(crate) fn register() -> Result<Self> {
        let misc = MiscRegistration::new(c"furing", &FURING_FOPS, 0o666)?;
        Ok(Self { misc })
    }

    /// The dynamic minor number of the device (major is the misc major, 10).
    pub(crate) fn minor(&self) -> i32 {
        self.misc.minor()
    }
}
