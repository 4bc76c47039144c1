// SPDX-License-Identifier: GPL-2.0

//! Memory: pinned user pages, kernel mappings, the locked-memory charge, folio references.

use super::raw;
use crate::user::check_range;
use core::ptr::NonNull;
use kernel::ffi::{c_int, c_ulong};
use kernel::{bindings, error::to_result, prelude::*, sync::aref::ARef};

/// Pages of the current task's memory, pinned for writing with `FOLL_LONGTERM`; unpinned
/// (and marked dirty: the kernel wrote to them) when dropped.
pub(crate) struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
}

// SAFETY: The page pointers are pinned pages, usable from any thread; unpinning may happen
// on another thread than pinning.
unsafe impl Send for PinnedPages {}
// SAFETY: Shared access only reads the pointers.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Pins `nr` pages of the current task's memory from `addr` (page aligned). `EFAULT`
    /// when a page is not mapped or not writable.
    pub(crate) fn pin(addr: usize, nr: usize) -> Result<Self> {
        let n = c_int::try_from(nr).map_err(|_| EINVAL)?;
        let mut pages = KVVec::with_capacity(nr, GFP_KERNEL)?;
        // SAFETY: `pages` has room for `nr` pointers, and pin_user_pages_fast() writes at
        // most `nr`; it only touches the current task's memory.
        let got = unsafe {
            bindings::pin_user_pages_fast(
                addr as c_ulong,
                n,
                bindings::FOLL_WRITE | bindings::FOLL_LONGTERM,
                pages.as_mut_ptr(),
            )
        };
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        // SAFETY: pin_user_pages_fast() initialised the first `got` (<= `nr`) pointers.
        unsafe { pages.inc_len(got as usize) };
        // From here on, dropping `this` unpins what was pinned.
        let this = Self { pages };
        if this.pages.len() != nr {
            return Err(EFAULT);
        }
        Ok(this)
    }

    /// How many pages are pinned.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: Every pointer in `pages` is a page this object pinned and still holds.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr(),
                self.pages.len() as c_ulong,
                true,
            )
        };
    }
}

/// A kernel mapping (`vmap`) of pinned pages, for `memcpy` to and from them.
///
/// # Invariants
///
/// `addr` maps `len` bytes: the pages of a [`PinnedPages`] that outlives this mapping.
pub(crate) struct Vmap {
    addr: core::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: The mapping is kernel memory usable from any thread.
unsafe impl Send for Vmap {}
// SAFETY: Copies through `&Vmap` go to memory the server shares anyway (see `write_at`).
unsafe impl Sync for Vmap {}

impl Vmap {
    /// Maps `pages` into the kernel. The caller keeps `pages` alive (and pinned) for as long
    /// as the mapping lives: drop the mapping first.
    pub(crate) fn new(pages: &mut PinnedPages) -> Result<Self> {
        let n = u32::try_from(pages.len()).map_err(|_| EINVAL)?;
        // SAFETY: `pages` holds `n` pinned pages.
        let addr = unsafe { raw::furing_vmap(pages.pages.as_mut_ptr(), n) };
        let addr = core::ptr::NonNull::new(addr.cast::<u8>()).ok_or(ENOMEM)?;
        Ok(Self {
            addr,
            len: pages.len() * kernel::page::PAGE_SIZE,
        })
    }

    /// Copies `src` to `off`.
    ///
    /// The server may touch the same bytes at the same time (its own buffers); as with
    /// `copy_to_user`, it then sees torn data, which is its own doing.
    pub(crate) fn write_at(&self, off: usize, src: &[u8]) -> Result {
        check_range(off, src.len(), self.len)?;
        // SAFETY: `off + src.len()` is within the mapping (checked above, invariant), which
        // cannot overlap `src` (a kernel buffer or a client page, never the server's).
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.addr.as_ptr().add(off), src.len())
        };
        Ok(())
    }

    /// Copies from `off` into `dst`.
    pub(crate) fn read_at(&self, off: usize, dst: &mut [u8]) -> Result {
        check_range(off, dst.len(), self.len)?;
        // SAFETY: As in `write_at`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.addr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }
}

impl Drop for Vmap {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: `addr` came from furing_vmap() and is unmapped once, here.
        unsafe { raw::furing_vunmap(self.addr.as_ptr().cast()) };
    }
}

/// Pages charged to the locked memory of the current task's mm (RLIMIT_MEMLOCK, which
/// CAP_IPC_LOCK bypasses); uncharged when dropped.
pub(crate) struct MemlockCharge {
    mm: ARef<kernel::mm::Mm>,
    pages: usize,
}

impl MemlockCharge {
    /// Charges `pages`; `ENOMEM` over the limit, `EFAULT` for a task without memory.
    pub(crate) fn new(pages: usize) -> Result<Self> {
        let mm: ARef<kernel::mm::Mm> = {
            let cur = kernel::current!();
            let mm: &kernel::mm::Mm = cur.mm().ok_or(EFAULT)?;
            mm.into()
        };
        // SAFETY: `mm` is a live mm (we hold an mmgrab reference).
        to_result(unsafe { bindings::account_locked_vm(mm.as_raw(), pages as c_ulong, true) })?;
        Ok(Self { mm, pages })
    }
}

impl Drop for MemlockCharge {
    fn drop(&mut self) {
        kernel::task::might_sleep();
        // SAFETY: `mm` is alive (mmgrab); this undoes the charge made in `new`. Uncharging
        // never fails.
        unsafe { bindings::account_locked_vm(self.mm.as_raw(), self.pages as c_ulong, false) };
    }
}

/// A reference on a folio (`folio_get`), put when dropped.
pub(crate) struct FolioRef(NonNull<bindings::folio>);

// SAFETY: Folio references may be taken and put on any thread.
unsafe impl Send for FolioRef {}
// SAFETY: Shared access does nothing with the folio.
unsafe impl Sync for FolioRef {}

impl FolioRef {
    /// # Safety
    ///
    /// `folio` must be a live folio.
    pub(crate) unsafe fn get(folio: NonNull<bindings::folio>) -> Self {
        // SAFETY: Caller's guarantee.
        unsafe { raw::furing_folio_get(folio.as_ptr()) };
        Self(folio)
    }
}

impl Drop for FolioRef {
    fn drop(&mut self) {
        // SAFETY: We hold a reference, taken in `get`.
        unsafe { raw::furing_folio_put(self.0.as_ptr()) };
    }
}

/// Copies `len` bytes between the kernel buffer `kbuf` and the current task's memory at
/// `uaddr`, within one page of user memory: the user page is pinned and copied through
/// its kernel mapping with `memcpy()`, as the FUSE core's copy state does for a server's
/// buffers (`fuse_copy_fill()`); `EFAULT` when the page is not mapped (writable, for
/// `to_user`). Large copies take this path because `copy_to_user()` is far slower under
/// emulation (QEMU TCG, where the tests and `make bench` run); on hardware the two are
/// close.
///
/// # Safety
///
/// `kbuf` must be valid for `len` bytes of reads (`to_user`) or writes.
unsafe fn copy_user_page(uaddr: usize, kbuf: *mut u8, len: usize, to_user: bool) -> Result {
    let off = uaddr % kernel::page::PAGE_SIZE;
    if len == 0 || off + len > kernel::page::PAGE_SIZE {
        return Err(EINVAL);
    }
    let mut page: *mut bindings::page = core::ptr::null_mut();
    let flags = if to_user { bindings::FOLL_WRITE } else { 0 };
    // SAFETY: One page of the current task's memory, one slot for its pointer.
    if unsafe { bindings::pin_user_pages_fast((uaddr - off) as c_ulong, 1, flags, &mut page) } != 1
    {
        return Err(EFAULT);
    }
    // SAFETY: `page` is pinned by us until the unpin below.
    let user = unsafe { bindings::kmap_local_page(page).cast::<u8>().add(off) };
    let (src, dst) = if to_user {
        (kbuf.cast_const(), user)
    } else {
        (user.cast_const(), kbuf)
    };
    // SAFETY: `user` maps `len` bytes of the pinned page, `kbuf` is valid for `len` bytes
    // (caller's guarantee). The two overlap only when a client does direct I/O to the
    // mount from the server's own ring buffer; `copy` (memmove) keeps that defined.
    unsafe {
        if (src as usize) < (dst as usize) + len && (dst as usize) < (src as usize) + len {
            core::ptr::copy(src, dst, len);
        } else {
            core::ptr::copy_nonoverlapping(src, dst, len);
        }
        bindings::kunmap_local(user.sub(off).cast());
        // A page written through the kernel mapping is dirty.
        bindings::unpin_user_pages_dirty_lock(&mut page, 1, to_user);
    }
    Ok(())
}

/// Copies `src` to the server's memory at `uaddr`, within one page, through a kernel
/// mapping of the pinned page (see `copy_user_page`).
///
/// `src` may be a client's page that is also the server's memory (direct I/O from the
/// server's own buffer): the copy is then a `memmove` within one page, whose bytes user
/// space may change at any time anyway; Rust's aliasing rules do not describe memory
/// shared with user space, and no Rust code reads `src` during the copy.
pub(crate) fn copy_to_user_page(uaddr: usize, src: &[u8]) -> Result {
    // SAFETY: `src` is valid for `src.len()` bytes of reads; the copy does not write it
    // unless it is the same user page (above).
    unsafe { copy_user_page(uaddr, src.as_ptr().cast_mut(), src.len(), true) }
}

/// Copies from the server's memory at `uaddr` into `dst`, within one page (the same
/// overlap as for [`copy_to_user_page`] may occur).
pub(crate) fn copy_from_user_page(uaddr: usize, dst: &mut [u8]) -> Result {
    // SAFETY: `dst` is valid for `dst.len()` bytes of writes.
    unsafe { copy_user_page(uaddr, dst.as_mut_ptr(), dst.len(), false) }
}
