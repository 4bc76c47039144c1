// SPDX-License-Identifier: GPL-2.0

//! Memory: pinned user pages, kernel mappings, the locked-memory charge, folio references,
//! and the bytes furing copies between them.

use super::raw;
use crate::user::check_range;
use core::{marker::PhantomData, ptr::NonNull};
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::{bindings, error::to_result, prelude::*, sync::aref::ARef};

/// Bytes furing copies from: a kernel buffer, a client's page (its direct-I/O buffer, a
/// folio it has mapped) or the server's memory. Another task may write them meanwhile, so
/// they are never borrowed as a Rust slice (a reference promises that nobody writes while
/// it lives, which user space does not); only the C copy routines (`memmove`,
/// `copy_to_user`) touch them, which tolerate the race as every kernel copy of memory
/// shared with user space does: the reader may see torn bytes, of the writer's making.
///
/// # Invariants
///
/// `ptr` is valid for reads of `len` bytes for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct SrcBytes<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _p: PhantomData<&'a [u8]>,
}

impl<'a> SrcBytes<'a> {
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes for `'a`.
    pub(super) unsafe fn from_raw(ptr: *const u8, len: usize) -> Self {
        Self {
            ptr: NonNull::new(ptr.cast_mut()).unwrap_or(NonNull::dangling()),
            len,
            _p: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `len` bytes from `off`.
    pub(crate) fn sub(&self, off: usize, len: usize) -> Result<SrcBytes<'a>> {
        check_range(off, len, self.len)?;
        // SAFETY: Within our bytes (checked), valid for reads for `'a` (invariant).
        Ok(unsafe { Self::from_raw(self.ptr.as_ptr().add(off), len) })
    }
}

impl<'a> From<&'a [u8]> for SrcBytes<'a> {
    fn from(s: &'a [u8]) -> Self {
        // SAFETY: A slice is valid for reads of its length while borrowed.
        unsafe { Self::from_raw(s.as_ptr(), s.len()) }
    }
}

/// Bytes furing copies into, which another task may read or write meanwhile (as for
/// [`SrcBytes`]).
///
/// # Invariants
///
/// `ptr` is valid for reads and writes of `len` bytes for `'a`, and no Rust reference to
/// them lives meanwhile. Not exclusive: others (user space, another `DstBytes` over the
/// same pinned memory) may copy into them too, which C copies tolerate.
pub(crate) struct DstBytes<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _p: PhantomData<&'a mut [u8]>,
}

impl<'a> DstBytes<'a> {
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for `'a`, which no Rust
    /// reference borrows meanwhile.
    pub(super) unsafe fn from_raw(ptr: *mut u8, len: usize) -> Self {
        Self {
            ptr: NonNull::new(ptr).unwrap_or(NonNull::dangling()),
            len,
            _p: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `len` bytes from `off`, for as long as they are borrowed from `self`.
    pub(crate) fn sub(&mut self, off: usize, len: usize) -> Result<DstBytes<'_>> {
        check_range(off, len, self.len)?;
        // SAFETY: Within our bytes (checked), valid for reads and writes while `self` is
        // borrowed (invariant), and never borrowed by a Rust reference.
        Ok(unsafe { DstBytes::from_raw(self.ptr.as_ptr().add(off), len) })
    }

    /// The same bytes, to copy from.
    pub(crate) fn as_src(&self) -> SrcBytes<'_> {
        // SAFETY: Valid for reads as long as `self` (invariant).
        unsafe { SrcBytes::from_raw(self.ptr.as_ptr(), self.len) }
    }
}

impl<'a> From<&'a mut [u8]> for DstBytes<'a> {
    fn from(s: &'a mut [u8]) -> Self {
        // SAFETY: A mutable slice is valid for reads and writes of its length, and
        // exclusively ours, while borrowed.
        unsafe { Self::from_raw(s.as_mut_ptr(), s.len()) }
    }
}

/// Copies `src` into `dst` (as long as the shorter) with the kernel's `memcpy()`, or its
/// `memmove()` when the two overlap in the kernel's address space (one page through one
/// mapping: a client's direct I/O from the server's own buffer). `memmove` only then:
/// under emulation (QEMU TCG) it runs several times slower than `memcpy`.
fn copy_bytes(dst: &mut DstBytes<'_>, src: SrcBytes<'_>) {
    let n = dst.len.min(src.len);
    if n == 0 {
        return;
    }
    let (d, s) = (dst.ptr.as_ptr(), src.ptr.as_ptr());
    let overlap = (s as usize) < (d as usize) + n && (d as usize) < (s as usize) + n;
    // SAFETY: `dst` is valid for writes and `src` for reads of `n` bytes (their
    // invariants); `memcpy` gets them only when they do not overlap. Both are C, outside
    // Rust's aliasing rules.
    unsafe {
        if overlap {
            bindings::memmove(d.cast(), s.cast(), n);
        } else {
            bindings::memcpy(d.cast(), s.cast(), n);
        }
    };
}

/// Copies `src` to the current task's memory at `uaddr` (`copy_to_user()`).
pub(crate) fn user_write(uaddr: usize, src: SrcBytes<'_>) -> Result {
    // SAFETY: `src` is valid for reads of its length (invariant); `copy_to_user` checks
    // the user range and faults nothing in the kernel.
    let left =
        unsafe { bindings::copy_to_user(uaddr as *mut c_void, src.ptr.as_ptr().cast(), src.len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Copies the current task's memory at `uaddr` into `dst` (`copy_from_user()`).
pub(crate) fn user_read(uaddr: usize, dst: DstBytes<'_>) -> Result {
    // SAFETY: `dst` is valid for writes of its length (invariant); `copy_from_user`
    // checks the user range (and zeroes what it could not copy).
    let left = unsafe {
        bindings::copy_from_user(dst.ptr.as_ptr().cast(), uaddr as *const c_void, dst.len)
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

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
// SAFETY: Copies through `&Vmap` go to memory the server shares anyway, only ever through
// `DstBytes` (see `bytes`).
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

    /// The `len` bytes at `off` of the mapping. The server may touch them at any time (its
    /// own buffers); as with `copy_to_user`, it then sees torn data, which is its doing.
    fn bytes(&self, off: usize, len: usize) -> Result<DstBytes<'_>> {
        check_range(off, len, self.len)?;
        // SAFETY: `off + len` is within the mapping (checked above, invariant), which lives
        // as long as `self`; no Rust reference to the mapping is ever made.
        Ok(unsafe { DstBytes::from_raw(self.addr.as_ptr().add(off), len) })
    }

    /// Copies `src` to `off`.
    pub(crate) fn write_at(&self, off: usize, src: SrcBytes<'_>) -> Result {
        copy_bytes(&mut self.bytes(off, src.len())?, src);
        Ok(())
    }

    /// Copies from `off` into `dst`.
    pub(crate) fn read_at(&self, off: usize, mut dst: DstBytes<'_>) -> Result {
        let src = self.bytes(off, dst.len())?;
        copy_bytes(&mut dst, src.as_src());
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

/// A copy between a kernel buffer and one page of the current task's memory.
enum PageCopy<'a, 'b> {
    ToUser(SrcBytes<'a>),
    FromUser(&'b mut DstBytes<'a>),
}

/// Copies between a kernel buffer and the current task's memory at `uaddr`, within one
/// page: the user page is pinned (for writing, to copy to it) and copied through its kernel
/// mapping with [`copy_bytes`], as the FUSE core's copy state does for a server's buffers
/// (`fuse_copy_fill()`); `EFAULT` when the page is not mapped (writable, for `ToUser`).
/// Large copies take this path because `copy_to_user()` is far slower under emulation
/// (QEMU TCG, where the tests and `make bench` run); on hardware the two are close.
fn copy_user_page(uaddr: usize, copy: PageCopy<'_, '_>) -> Result {
    let (len, to_user) = match &copy {
        PageCopy::ToUser(src) => (src.len(), true),
        PageCopy::FromUser(dst) => (dst.len(), false),
    };
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
    let base = unsafe { bindings::kmap_local_page(page).cast::<u8>() };
    // The local mapping covers the page and `off + len` is within it (checked above); it
    // lives until the unmap below, after the copy.
    match copy {
        PageCopy::ToUser(src) => {
            // SAFETY: The mapped bytes (above), of a page pinned for writing.
            let mut user = unsafe { DstBytes::from_raw(base.add(off), len) };
            copy_bytes(&mut user, src);
        }
        PageCopy::FromUser(dst) => {
            // SAFETY: The mapped bytes (above), only read.
            let user = unsafe { SrcBytes::from_raw(base.add(off), len) };
            copy_bytes(dst, user);
        }
    }
    // SAFETY: Unmaps what `kmap_local_page` mapped above, and drops our pin; a page written
    // through the kernel mapping is dirty.
    unsafe {
        bindings::kunmap_local(base.cast());
        bindings::unpin_user_pages_dirty_lock(&mut page, 1, to_user);
    }
    Ok(())
}

/// Copies `src` to the server's memory at `uaddr`, within one page, through a kernel
/// mapping of the pinned page (see `copy_user_page`). `src` may be a client's page that is
/// also the server's (direct I/O from the server's own buffer): [`copy_bytes`] then
/// overlaps and takes `memmove`.
pub(crate) fn copy_to_user_page(uaddr: usize, src: SrcBytes<'_>) -> Result {
    copy_user_page(uaddr, PageCopy::ToUser(src))
}

/// Copies from the server's memory at `uaddr` into `dst`, within one page (the same
/// overlap as for [`copy_to_user_page`] may occur).
pub(crate) fn copy_from_user_page(uaddr: usize, mut dst: DstBytes<'_>) -> Result {
    copy_user_page(uaddr, PageCopy::FromUser(&mut dst))
}
