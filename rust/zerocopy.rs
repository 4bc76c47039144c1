// SPDX-License-Identifier: GPL-2.0

//! Zero-copy (`FURING_URING_ZERO_COPY`): the data pages of a READ or WRITE are not copied
//! through the payload buffer; the client's folios are registered as buffer `buf_index`
//! (the entry's id) of the server's io_uring with `io_buffer_register_bvec()`, and the
//! server moves the data with `IORING_OP_READ_FIXED` / `WRITE_FIXED` against its backing
//! store. The entry's `ent_in_out.flags` carries `FURING_URING_ENT_ZERO_COPY`.
//!
//! Ownership: the registration owns a [`ZcPages`] -- a reference on every folio and one
//! on the module -- which io_uring gives back to its release callback, which drops it,
//! when the buffer goes: after furing unregisters it at the request's end (commit, copy
//! error, teardown with a command of the same ring at hand), or when the server's io_uring
//! goes away (server exit or crash). Until then the module stays loaded: the release
//! callback is module code.

use crate::ffi::{FolioRef, ModuleRef, ParkedCmd, Req, RingId, UringCmd};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// Registrations io_uring holds now, over all connections.
static LIVE: AtomicU64 = AtomicU64::new(0);

/// Registrations io_uring holds now, over all connections.
pub(crate) fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// What a registration keeps alive until io_uring releases it. Field order is drop
/// order: the module reference goes last.
///
/// # Invariants
///
/// Each value is counted once in [`LIVE`]: [`ZcPages::new`] counts it, `Drop` uncounts
/// it, so a value dropped on any path (even before it was boxed) leaves the count right.
pub(crate) struct ZcPages {
    _folios: KVec<FolioRef>,
    _module: ModuleRef,
}

impl ZcPages {
    fn new(folios: KVec<FolioRef>) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Self {
            _folios: folios,
            _module: ModuleRef::this(),
        }
    }
}

impl Drop for ZcPages {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The zero-copy registration of an entry's request, at `index` of the io_uring `ring`.
/// It is given back with [`ZcRegistration::unregister`] (or
/// [`ZcRegistration::unregister_parked`]) with a command of the same ring; dropped
/// without, it leaves the buffer to that io_uring's own teardown.
#[must_use]
pub(crate) struct ZcRegistration {
    index: u32,
    ring: RingId,
}

impl ZcRegistration {
    /// Registers the data pages of `req` (a [`Req::zero_copy_io`] request, with its
    /// direction `dir`) at `index` of `cmd`'s io_uring.
    pub(crate) fn register(
        cmd: &UringCmd,
        req: &Req,
        dir: u8,
        index: u32,
        issue_flags: u32,
    ) -> Result<Self> {
        let pages = KBox::new(ZcPages::new(req.folio_refs()?), GFP_KERNEL)?;
        cmd.zc_register(req, pages, dir, index, issue_flags)?;
        Ok(Self {
            index,
            ring: cmd.ring(),
        })
    }

    /// Whether `cmd` is a command of the io_uring the pages are registered with.
    pub(crate) fn is_of(&self, cmd: &UringCmd) -> bool {
        cmd.ring() == self.ring
    }

    /// Unregisters with `cmd` (a command of the same ring, being issued or in task work).
    pub(crate) fn unregister(self, cmd: &UringCmd, issue_flags: u32) {
        if self.is_of(cmd) {
            // Fails only if the server's ring dropped the buffer itself: nothing to do.
            let _ = cmd.zc_unregister(self.index, issue_flags);
        }
    }

    /// Unregisters with the parked command `cmd`, if it belongs to the same ring.
    pub(crate) fn unregister_parked(self, cmd: &ParkedCmd) -> Result {
        if cmd.ring() != self.ring {
            return Err(EINVAL);
        }
        cmd.zc_unregister(self.index)
    }
}
