// SPDX-License-Identifier: GPL-2.0

//! The `furing` filesystem type: mount options and the superblock life cycle.
//!
//! `mount -t furing -o fd=N,rootmode=M,user_id=U,group_id=G[,allow_other,
//! default_permissions,max_read=R,blksize=B] none /mnt`, where `N` is an open `/dev/furing`
//! file. The options are the FUSE core's; only `fd` differs (it must be a furing device).

use crate::conn::Conn;
use crate::ffi::{
    self, ClassicQueue, FiqOps, FsContext, FsParam, FsParams, FsRegistration, FsType, FuseDevRef,
    FuseFs, MountParams, ParamKind, ParamValue,
};
use kernel::{
    bindings,
    prelude::*,
    sync::{Arc, ArcBorrow},
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

static PARAMS: FsParams<10> = FsParams::new([
    FsParam::new(c"source", Opt::Source as u8, ParamKind::String),
    FsParam::new(c"fd", Opt::Fd as u8, ParamKind::Fd),
    FsParam::new(c"rootmode", Opt::RootMode as u8, ParamKind::U32Oct),
    FsParam::new(c"user_id", Opt::UserId as u8, ParamKind::Uid),
    FsParam::new(c"group_id", Opt::GroupId as u8, ParamKind::Gid),
    FsParam::new(
        c"default_permissions",
        Opt::DefaultPermissions as u8,
        ParamKind::Flag,
    ),
    FsParam::new(c"allow_other", Opt::AllowOther as u8, ParamKind::Flag),
    FsParam::new(c"max_read", Opt::MaxRead as u8, ParamKind::U32),
    FsParam::new(c"blksize", Opt::Blksize as u8, ParamKind::U32),
    FsParam::END,
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
    fn apply(&mut self, fsc: &FsContext<'_>, opt: Opt, value: ParamValue<'_>) -> Result {
        match opt {
            // The source string is only shown in /proc/mounts; the VFS keeps it.
            Opt::Source => value.take_source(fsc)?,
            Opt::Fd => {
                if self.fud.is_some() {
                    return Err(fsc.invalid(c"Multiple fd specified"));
                }
                let file = value.file()?;
                let fud = ffi::fuse_dev_of_file(&file, &crate::device::FURING_FOPS, fsc)
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
                if !fsc.user_ns().has_uid(uid) {
                    return Err(fsc.invalid(c"Invalid user_id"));
                }
                self.user_id = Some(uid);
            }
            Opt::GroupId => {
                let gid = value.gid();
                if !fsc.user_ns().has_gid(gid) {
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

    /// The options as the FUSE core takes them; fails if one a mount needs is missing.
    fn params(&self, fsc: &FsContext<'_>) -> Result<MountParams<'_>> {
        let Some(fud) = self.fud.as_ref() else {
            return Err(fsc.invalid(c"fd option missing"));
        };
        let Some(rootmode) = self.rootmode else {
            return Err(fsc.invalid(c"rootmode option missing"));
        };
        let (Some(user_id), Some(group_id)) = (self.user_id, self.group_id) else {
            return Err(fsc.invalid(c"user_id and group_id options required"));
        };
        Ok(MountParams {
            fud,
            rootmode,
            user_id,
            group_id,
            default_permissions: self.default_permissions,
            allow_other: self.allow_other,
            max_read: self.max_read,
            blksize: self.blksize,
        })
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

/// The `furing` filesystem: the FUSE core's superblock over a [`Conn`].
struct FuringFs;

impl FuseFs for FuringFs {
    type Options = MountOptions;
    type Transport = Conn;
    const FIQ_OPS: &'static FiqOps<Conn> = &crate::conn::FIQ_OPS;

    fn new_options() -> MountOptions {
        MountOptions::new()
    }

    fn parse(
        opts: &mut MountOptions,
        fsc: &FsContext<'_>,
        opt: u8,
        value: ParamValue<'_>,
    ) -> Result {
        let opt = OPTS.get(usize::from(opt)).copied().ok_or(EINVAL)?;
        opts.apply(fsc, opt, value)
    }

    fn mount_params<'a>(opts: &'a MountOptions, fsc: &FsContext<'_>) -> Result<MountParams<'a>> {
        opts.params(fsc)
    }

    fn new_transport(classic: ClassicQueue) -> Result<Arc<Conn>> {
        Conn::new(classic)
    }

    fn mounted(conn: ArcBorrow<'_, Conn>, conn_id: u32) {
        conn.publish_stats(conn_id);
    }

    fn unmounting(conn: ArcBorrow<'_, Conn>) {
        conn.unpublish_stats();
    }
}

static FS_TYPE: FsType = FsType::new::<FuringFs, 10>(c"furing", &PARAMS);

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
