// SPDX-License-Identifier: GPL-2.0

//! A pinned region: a page-aligned range of the server's memory, charged to its locked
//! memory, pinned and mapped into the kernel once at queue setup, so that copies are a
//! `memcpy` through the kernel address instead of `copy_to_user` and page walks.
//!
//! Teardown is `Drop`: unmap, unpin (marking the pages dirty), uncharge, in that order.
//! It sleeps, so the last owner drops it in process context (the abort work, a command's
//! issue or task work, or the connection's release), never under a spinlock.

use crate::ffi::{DstBytes, MemlockCharge, PinnedPages, SrcBytes, Vmap};
use kernel::{page::PAGE_SIZE, prelude::*};

/// One pinned region. Field order is drop order.
///
/// # Invariants
///
/// `map` maps the pages of `_pages`, which cover `len` bytes (and the rest of the last
/// page), charged by `_charge`.
pub(crate) struct PinnedRegion {
    map: Vmap,
    _pages: PinnedPages,
    _charge: MemlockCharge,
    len: usize,
}

impl PinnedRegion {
    /// Pins the pages `len` bytes at `addr` of the current task cover (`addr` page
    /// aligned; `len` need not be, the v2 series' server passes `depth * 288`). `EINVAL`
    /// for a misaligned address or no bytes, `ENOMEM` over RLIMIT_MEMLOCK, `EFAULT` when
    /// the range is not mapped writable.
    pub(crate) fn new(addr: usize, len: usize) -> Result<Self> {
        if len == 0 || addr % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let nr = len.div_ceil(PAGE_SIZE);
        let charge = MemlockCharge::new(nr)?;
        let mut pages = PinnedPages::pin(addr, nr)?;
        let map = Vmap::new(&mut pages)?;
        Ok(Self {
            map,
            _pages: pages,
            _charge: charge,
            len,
        })
    }

    /// Bytes pinned.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `src` to `off` (within the region's `len` bytes).
    pub(crate) fn write_at(&self, off: usize, src: SrcBytes<'_>) -> Result {
        crate::user::check_range(off, src.len(), self.len)?;
        self.map.write_at(off, src)
    }

    /// Copies from `off` into `dst` (within the region's `len` bytes).
    pub(crate) fn read_at(&self, off: usize, dst: DstBytes<'_>) -> Result {
        crate::user::check_range(off, dst.len(), self.len)?;
        self.map.read_at(off, dst)
    }
}
