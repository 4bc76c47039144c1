// SPDX-License-Identifier: GPL-2.0

//! Zero-copy (`FURING_URING_ZERO_COPY`): the data pages of a READ or WRITE are not copied
//! through the payload buffer; the client's folios are registered as buffer `buf_index`
//! (the entry's id) of the server's io_uring with `io_buffer_register_bvec()`, and the
//! server moves the data with `IORING_OP_READ_FIXED` / `WRITE_FIXED` against its backing
//! store. The entry's `ent_in_out.flags` carries `FURING_URING_ENT_ZERO_COPY`.
//!
//! Ownership: io_uring and the entry's registration share a [`ZcPages`] -- a reference on
//! every folio and one on the module. io_uring's release callback drops its share when
//! the buffer goes: after furing unregisters it at the request's end (commit, copy error,
//! teardown or the io_uring going away, with a command of the same ring at hand), or when
//! the server's io_uring goes (server exit or crash). When the server's io_uring goes
//! while it holds the request, the request ends only once the pages are released (a
//! fixed-buffer operation in flight, or a clone of the buffer table, holds them), or at
//! teardown, which waits for no server ([`ZcWait`]). Until the release the module stays
//! loaded: the release callback is module code.

use crate::ffi::{FolioRef, ModuleRef, ParkedCmd, Req, RingId, UringCmd};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
    time::Jiffies,
};

/// Registered page sets alive now (io_uring's or an entry's share), over all connections.
static LIVE: AtomicU64 = AtomicU64::new(0);

/// Registered page sets alive now (io_uring's or an entry's share), over all connections.
pub(crate) fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// What a registration keeps alive until io_uring releases it, shared by io_uring (its
/// release callback drops its reference) and the entry's [`ZcRegistration`]. Field order
/// is drop order: the module reference goes last.
///
/// # Invariants
///
/// Each value is counted once in [`LIVE`]: [`ZcPages::new`] counts it once it exists,
/// `drop` uncounts it.
#[pin_data(PinnedDrop)]
pub(crate) struct ZcPages {
    /// Where the pages are registered: buffer `index` of the io_uring `ring`.
    index: u32,
    ring: RingId,
    /// The request waiting for the last share to go ([`ZcRegistration::end_after_release`]).
    #[pin]
    wait: SpinLock<Option<Arc<ZcWait>>>,
    _folios: KVec<FolioRef>,
    _module: ModuleRef,
}

impl ZcPages {
    fn new(folios: KVec<FolioRef>, index: u32, ring: RingId) -> Result<Arc<Self>> {
        let pages = Arc::pin_init(
            pin_init!(Self {
                index,
                ring,
                wait <- new_spinlock!(None),
                _folios: folios,
                _module: ModuleRef::this(),
            }),
            GFP_KERNEL,
        )?;
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(pages)
    }
}

#[pinned_drop]
impl PinnedDrop for ZcPages {
    fn drop(self: Pin<&mut Self>) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        let wait = self.wait.lock().take();
        if let Some(wait) = wait {
            wait.end();
        }
    }
}

/// A request the server's io_uring held when it went: it ends with `ECONNABORTED` when
/// io_uring releases its pages (no operation of the server can reach them then), or at
/// teardown, whichever comes first (the teardown waits for no server). Shared by the
/// pages and the queue.
#[pin_data]
pub(crate) struct ZcWait {
    #[pin]
    req: SpinLock<Option<Req>>,
}

impl ZcWait {
    /// Ends the request, unless it has ended already.
    pub(crate) fn end(&self) {
        let req = self.req.lock().take();
        if let Some(req) = req {
            req.end(ECONNABORTED.to_errno());
        }
    }

    /// Whether the request has ended.
    pub(crate) fn ended(&self) -> bool {
        self.req.lock().is_none()
    }

    /// Whether the request, not ended yet, is older than `timeout` jiffies.
    pub(crate) fn expired(&self, timeout: Jiffies) -> bool {
        self.req.lock().as_ref().is_some_and(|r| r.expired(timeout))
    }
}

/// The zero-copy registration of an entry's request (where: in its [`ZcPages`]).
/// It is given back with [`ZcRegistration::unregister`] (or
/// [`ZcRegistration::unregister_parked`]) with a command of the same ring; dropped
/// without, it leaves the buffer to that io_uring's own teardown.
#[must_use]
pub(crate) struct ZcRegistration {
    pages: Arc<ZcPages>,
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
        let pages = ZcPages::new(req.folio_refs()?, index, cmd.ring())?;
        cmd.zc_register(req, pages.clone(), dir, index, issue_flags)?;
        Ok(Self { pages })
    }

    /// Whether `cmd` is a command of the io_uring the pages are registered with.
    pub(crate) fn is_of(&self, cmd: &UringCmd) -> bool {
        cmd.ring() == self.pages.ring
    }

    /// Unregisters with `cmd` (a command of the same ring, being issued or in task work).
    pub(crate) fn unregister(self, cmd: &UringCmd, issue_flags: u32) {
        if self.is_of(cmd) {
            // Fails only if the server's ring dropped the buffer itself: nothing to do.
            let _ = cmd.zc_unregister(self.pages.index, issue_flags);
        }
    }

    /// Unregisters with `cmd` (as [`Self::unregister`]) and leaves `req` to end with
    /// `ECONNABORTED` once io_uring lets go of the pages: a fixed-buffer operation the
    /// server started holds them until it completes, and must not reach them after the
    /// request ended. Returns the wait, for the teardown to end it first; `None` when the
    /// request has ended here (io_uring had let go, or no memory for the wait).
    pub(crate) fn end_after_release(
        self,
        cmd: &UringCmd,
        issue_flags: u32,
        req: Req,
    ) -> Option<Arc<ZcWait>> {
        let Ok(wait) = Arc::pin_init(pin_init!(ZcWait { req <- new_spinlock!(None) }), GFP_KERNEL)
        else {
            self.unregister(cmd, issue_flags);
            req.end(ECONNABORTED.to_errno());
            return None;
        };
        // Set once: the registration is consumed here. Nothing is dropped under the locks.
        let none = wait.req.lock().replace(req);
        drop(none);
        let none = self.pages.wait.lock().replace(wait.clone());
        drop(none);
        // The last share may go right here, ending the request.
        self.unregister(cmd, issue_flags);
        (!wait.ended()).then_some(wait)
    }

    /// Unregisters with the parked command `cmd`, if it belongs to the same ring.
    pub(crate) fn unregister_parked(self, cmd: &ParkedCmd) -> Result {
        if cmd.ring() != self.pages.ring {
            return Err(EINVAL);
        }
        cmd.zc_unregister(self.pages.index)
    }
}
