// SPDX-License-Identifier: GPL-2.0

//! furing: FUSE over io_uring as an out-of-tree transport of the Linux FUSE core.
//!
//! The module owns the character device `/dev/furing` and the filesystem type `furing`;
//! the kernel's C FUSE core serves the VFS side of every mount, and furing is its transport.

use kernel::prelude::*;

mod bufring;
mod conn;
mod copy;
mod device;
mod entry;
mod ffi;
mod fs;
mod pinned;
mod ring;
mod stats;
mod uapi;
mod user;
mod zerocopy;

module! {
    type: Furing,
    name: "furing",
    authors: ["The furing developers"],
    description: "FUSE over io_uring with buffer rings, pinned memory and zero-copy",
    license: "GPL",
}

struct Furing {
    // Dropped in this order: no new mounts, then no new device opens.
    _fs: fs::Registration,
    _device: device::Device,
}

impl kernel::Module for Furing {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        ffi::init()?;
        stats::init();
        let registered = device::Device::register()
            .and_then(|device| Ok((device, fs::Registration::register()?)));
        let (device, fs) = match registered {
            Ok(r) => r,
            Err(e) => {
                stats::exit();
                ffi::exit();
                return Err(e);
            }
        };
        pr_info!(
            "loaded: /dev/furing (misc minor {}), filesystem type furing\n",
            device.minor()
        );
        Ok(Self {
            _fs: fs,
            _device: device,
        })
    }
}

impl Drop for Furing {
    fn drop(&mut self) {
        stats::exit();
        ffi::exit();
        pr_info!("unloaded\n");
    }
}
