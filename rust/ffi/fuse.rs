// SPDX-License-Identifier: GPL-2.0

//! The FUSE core: channels, devices, the requests the transport owns and the classic path.
//!
//! Ownership of a request follows the core's protocol, and the types here encode it:
//! `send_req` hands the transport a request ([`Req`], owned, not `Copy`); it leaves the
//! transport by being ended ([`Req::end`]) or by going the classic way
//! ([`ClassicQueue::send`]). A request handed to the server stays the transport's (marked
//! sent, [`Req::mark_sent`]) until its reply, its io_uring's end or teardown ends it: it
//! is on no list of the core, which therefore never ends it behind the transport's back.

use super::mm::{DstBytes, FolioRef, SrcBytes};
use super::raw;
use super::uring::UringCmd;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{
    bindings,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::{ForeignOwnable, Opaque},
};

/// What a `uring_cmd` needs to know of the channel behind a `/dev/furing` file.
pub(crate) struct ChanState {
    /// The server answered FUSE_INIT (`fch->initialized`).
    pub(crate) initialized: bool,
    /// The channel is not aborted (`fch->connected`).
    pub(crate) connected: bool,
    /// Largest request payload: `max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages)`.
    pub(crate) max_payload: usize,
}

/// A FUSE channel (`struct fuse_chan`), borrowed from a holder that keeps it alive.
#[repr(transparent)]
pub(crate) struct Chan(Opaque<raw::fuse_chan>);

impl Chan {
    /// # Safety
    ///
    /// `fch` must be a live channel for the lifetime `'a`.
    pub(super) unsafe fn from_raw<'a>(fch: *mut raw::fuse_chan) -> &'a Self {
        // SAFETY: `Chan` is a transparent wrapper; `fch` is live for `'a`.
        unsafe { &*fch.cast() }
    }

    /// Reads the state of the channel.
    pub(crate) fn state(&self) -> ChanState {
        let fch = self.0.get();
        // SAFETY: `fch` is live (borrowed); the core publishes `initialized` with a release
        // store after setting `max_write`/`max_pages`, so an acquire fence after reading it
        // orders the reads after it.
        unsafe {
            let initialized = core::ptr::read_volatile(&raw const (*fch).initialized) != 0;
            core::sync::atomic::fence(Ordering::Acquire);
            let connected = core::ptr::read_volatile(&raw const (*fch).connected) != 0;
            let pages = (*fch).max_pages as usize * bindings::PAGE_SIZE;
            let max_payload = (raw::FUSE_MIN_READ_BUFFER as usize)
                .max((*fch).max_write as usize)
                .max(pages);
            ChanState {
                initialized,
                connected,
                max_payload,
            }
        }
    }

    /// The header of the private data of a channel furing installed (every channel behind
    /// a `/dev/furing` file or a furing superblock: the mount is the only place one gets a
    /// channel, and it installs before anything can see it); `None` once released.
    fn header(&self) -> Option<NonNull<IqHeader>> {
        // SAFETY: The channel is live (borrowed); `priv` is the `IqPriv` of `install`,
        // whose first field is the header, or NULL after `release`.
        NonNull::new(unsafe { (*self.0.get()).iq.priv_ }.cast::<IqHeader>())
    }

    /// The transport of the channel, if it is a `T`.
    pub(crate) fn transport<T: Transport>(&self) -> Option<ArcBorrow<'_, T>> {
        let h = self.header()?;
        // SAFETY: The header is live while the channel is borrowed (see `header`).
        if unsafe { h.as_ref() }.type_id != core::any::TypeId::of::<T>() {
            return None;
        }
        // SAFETY: The header is the first field of a `repr(C)` `IqPriv<T>` (its type id),
        // alive while the channel is borrowed.
        let p = unsafe { h.cast::<IqPriv<T>>().as_ref() };
        Some(p.transport.as_arc_borrow())
    }

    /// Runs the transport's task work for `cmd`, a command of this channel's device.
    pub(crate) fn task_work(&self, cmd: UringCmd, cancel: bool, issue_flags: u32) {
        let Some(h) = self.header() else { return };
        // SAFETY: The header is live while the channel is borrowed (see `header`), and
        // its function is the one `install` set for the header's own `IqPriv` type.
        unsafe { (h.as_ref().task_work)(h, cmd, cancel, issue_flags) }
    }
}

/// The `struct fuse_dev` of a `/dev/furing` file, borrowed from a holder of the file.
#[repr(transparent)]
pub(crate) struct FuseDev(Opaque<raw::fuse_dev>);

/// The identity of a `fuse_dev` (one per open device file, and per clone), only ever
/// compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DevId(usize);

impl FuseDev {
    /// The device's identity.
    pub(crate) fn id(&self) -> DevId {
        DevId(self.0.get() as usize)
    }

    /// # Safety
    ///
    /// `fud` must be a live `fuse_dev` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(fud: *mut raw::fuse_dev) -> &'a Self {
        // SAFETY: `FuseDev` is a transparent wrapper; `fud` is live for `'a`.
        unsafe { &*fud.cast() }
    }

    /// The channel of the device, once it is mounted and not disconnected.
    pub(crate) fn chan(&self) -> Option<&Chan> {
        // SAFETY: The device is live (borrowed); `furing_fud_chan` reads its channel.
        let fch = unsafe { raw::furing_fud_chan(self.0.get()) };
        // SAFETY: The device holds a reference on its channel while it is set.
        (!fch.is_null()).then(|| unsafe { &*fch.cast::<Chan>() })
    }
}

/// A FUSE request owned by the transport, between `send_req` and its end.
///
/// # Invariants
///
/// `self.0` is a live request that no other `Req` points to; it is on no list of the core
/// (FR_PENDING is clear, or the core has not queued it), so nothing but its owner touches
/// its fields other than `flags` (atomic bit operations).
pub(crate) struct Req(NonNull<raw::fuse_req>);

// SAFETY: A request may be handled and ended from any task; the core's flags are atomic
// and the other fields are only touched by the owner (type invariant).
unsafe impl Send for Req {}

impl Req {
    /// # Safety
    ///
    /// `req` must be a request the core hands to the transport (`send_req`), now owned by
    /// the caller, on no list of the core.
    unsafe fn from_raw(req: *mut raw::fuse_req) -> Option<Self> {
        NonNull::new(req).map(Self)
    }

    // The request is never borrowed whole: while we own it, the waiter and the core still
    // change some of its fields (flag bits, `intr_entry`, `waitq`). Its fields are read and
    // written one by one through the raw pointer; only the ones the owner alone touches.

    fn args(&self) -> &raw::fuse_args {
        // SAFETY: The request is live (invariant); its `args` are valid until it ends, and
        // only the owner touches them meanwhile.
        unsafe { &*(*self.0.as_ptr()).args }
    }

    fn args_mut(&mut self) -> &mut raw::fuse_args {
        // SAFETY: As in `args`; `&mut self` makes the access unique.
        unsafe { &mut *(*self.0.as_ptr()).args }
    }

    /// The page arguments' descriptor, when the request has page arguments.
    fn pages(&self) -> Option<&raw::fuse_args_pages> {
        let args = self.args();
        // SAFETY: With page arguments, `args` is the first member (`args`) of a
        // `fuse_args_pages` (the core's contract for in_pages/out_pages): the pointer, from
        // the request rather than from the `&fuse_args`, covers the whole of it.
        (args.in_pages() || args.out_pages())
            .then(|| unsafe { &*(*self.0.as_ptr()).args.cast::<raw::fuse_args_pages>() })
    }

    /// The folio `k` of the page arguments and its descriptor.
    fn folio(ap: &raw::fuse_args_pages, k: usize) -> (NonNull<bindings::folio>, usize, usize) {
        // SAFETY: `folios` and `descs` have `num_folios` (> k, the callers' loop) entries,
        // and a page argument's folios are not NULL.
        unsafe {
            let desc = *ap.descs.add(k);
            (
                NonNull::new_unchecked(*ap.folios.add(k)),
                desc.offset as usize,
                desc.length as usize,
            )
        }
    }

    /// The request's unique id.
    pub(crate) fn unique(&self) -> u64 {
        self.in_header().unique
    }

    /// Whether the request was made more than `timeout` jiffies ago (the test of the core's
    /// request-timeout scan, `fuse_request_expired()`).
    pub(crate) fn expired(&self, timeout: kernel::time::Jiffies) -> bool {
        // SAFETY: The request is live (invariant); `create_time` is set when it is made.
        unsafe { raw::furing_req_expired(self.0.as_ptr(), timeout) }
    }

    /// The FUSE in header.
    pub(crate) fn in_header(&self) -> raw::fuse_in_header {
        // SAFETY: The request is live (invariant); its in header is set before it reaches
        // a transport, and then only the owner writes it (`assign_unique`).
        unsafe { (*self.0.as_ptr()).in_.h }
    }

    fn flags(&self) -> &AtomicUsize {
        // SAFETY: `flags` is an `unsigned long` the core only changes with atomic bitops.
        // The pointer comes from the raw request, not from a reference to it.
        unsafe { AtomicUsize::from_ptr((&raw mut (*self.0.as_ptr()).flags).cast()) }
    }

    /// `test_bit(bit, &req->flags)`.
    pub(crate) fn test_flag(&self, bit: raw::fuse_req_flag) -> bool {
        self.flags().load(Ordering::Acquire) & (1 << bit) != 0
    }

    /// The transport took the request (`clear_bit(FR_PENDING)`): a killed waiter now waits
    /// for its end instead of taking it off a list.
    pub(crate) fn clear_pending(&self) {
        self.flags()
            .fetch_and(!(1 << raw::fuse_req_flag_FR_PENDING), Ordering::AcqRel);
    }

    /// Marks a request handed to the server sent (FR_SENT), and queues its interrupt when a
    /// signal came before (as `fuse_dev_do_read()` does); the transport keeps the request.
    pub(crate) fn mark_sent(&self) {
        // SAFETY: The request is ours (invariant), so alive for the interrupt's queueing.
        unsafe { raw::furing_req_mark_sent(self.0.as_ptr()) };
    }

    /// Whether the request expects a reply (FR_ISREPLY).
    pub(crate) fn is_reply(&self) -> bool {
        self.test_flag(raw::fuse_req_flag_FR_ISREPLY)
    }

    /// Sets the reply header (its error is what the client sees).
    pub(crate) fn set_out_header(&mut self, oh: raw::fuse_out_header) {
        // SAFETY: The request is live (invariant); only its owner writes the out header.
        unsafe { (*self.0.as_ptr()).out.h = oh };
    }

    /// The raw request, leaving the transport (to the core's classic path).
    fn into_raw(self) -> *mut raw::fuse_req {
        let req = self.0.as_ptr();
        core::mem::forget(self);
        req
    }

    /// Ends the request with `error` (0 keeps the reply's own error).
    pub(crate) fn end(self, error: i32) {
        if error != 0 {
            // SAFETY: As in `set_out_header`.
            unsafe { (*self.0.as_ptr()).out.h.error = error };
        }
        self.flags()
            .fetch_and(!(1 << raw::fuse_req_flag_FR_SENT), Ordering::AcqRel);
        let req = self.into_raw();
        // SAFETY: We own the request and hand it back to the core, which may free it.
        unsafe { raw::fuse_request_end(req) };
    }

    /// Calls `f` on each chunk of the input arguments after the op header (argument 0),
    /// in order; a page argument yields its folios page by page, or nothing with
    /// `skip_pages` (zero-copy). Returns the bytes skipped.
    pub(crate) fn for_each_in_chunk(
        &self,
        skip_pages: bool,
        mut f: impl FnMut(SrcBytes<'_>) -> Result,
    ) -> Result<usize> {
        let args = self.args();
        let n = usize::from(args.in_numargs);
        let mut skipped = 0;
        for i in 1..n {
            let a = args.in_args.get(i).ok_or(EINVAL)?;
            let len = a.size as usize;
            if args.in_pages() && i == n - 1 {
                if skip_pages {
                    skipped += len;
                } else {
                    self.for_each_folio_chunk(len, |p, n| {
                        // SAFETY: Mapped bytes of the page argument, valid until `f`
                        // returns (`for_each_folio_chunk`); a WRITE's pages are only read.
                        f(unsafe { SrcBytes::from_raw(p, n) })
                    })?;
                }
            } else if len > 0 {
                // SAFETY: An input argument of a request we own: `len` readable bytes while
                // we hold the request.
                f(unsafe { SrcBytes::from_raw(a.value.cast::<u8>(), len) })?;
            }
        }
        Ok(skipped)
    }

    /// Calls `f` on each chunk of the output arguments, in order, to fill them in; a page
    /// argument yields its folios page by page, or nothing with `skip_pages`.
    pub(crate) fn for_each_out_chunk(
        &mut self,
        skip_pages: bool,
        mut f: impl FnMut(DstBytes<'_>) -> Result,
    ) -> Result {
        let (n, pages) = {
            let args = self.args();
            (usize::from(args.out_numargs), args.out_pages())
        };
        for i in 0..n {
            let (ptr, len) = {
                let a = self.args().out_args.get(i).ok_or(EINVAL)?;
                (a.value.cast::<u8>(), a.size as usize)
            };
            if pages && i == n - 1 {
                if !skip_pages {
                    self.for_each_folio_chunk(len, |p, n| {
                        // SAFETY: Mapped bytes of the page argument, valid until `f`
                        // returns (`for_each_folio_chunk`); a reply's pages are the
                        // request's to fill (page-cache folios it locked, or buffers
                        // pinned for writing).
                        f(unsafe { DstBytes::from_raw(p, n) })
                    })?;
                }
            } else if len > 0 {
                // SAFETY: An output argument of a request we own (`&mut self`): `len`
                // writable bytes while we hold it, which no Rust reference borrows.
                f(unsafe { DstBytes::from_raw(ptr, len) })?;
            }
        }
        Ok(())
    }

    /// Maps the first `len` bytes of the page argument folio by folio, page by page, and
    /// calls `f` on each chunk: its kernel address and length, valid until `f` returns.
    /// The client may touch those bytes meanwhile (its direct-I/O buffer), so callers only
    /// copy them ([`SrcBytes`], [`DstBytes`]), never borrow them.
    fn for_each_folio_chunk(
        &self,
        len: usize,
        mut f: impl FnMut(*mut u8, usize) -> Result,
    ) -> Result {
        let Some(ap) = self.pages() else {
            return Err(EINVAL);
        };
        let mut left = len;
        for k in 0..ap.num_folios as usize {
            if left == 0 {
                break;
            }
            let (folio, offset, length) = Self::folio(ap, k);
            let take = length.min(left);
            let mut done = 0;
            while done < take {
                let off = offset + done;
                let chunk = (bindings::PAGE_SIZE - off % bindings::PAGE_SIZE).min(take - done);
                // SAFETY: The folio belongs to a request we own; `off` is inside it.
                let addr = unsafe { raw::furing_kmap_folio(folio.as_ptr(), off) }.cast::<u8>();
                // The local mapping covers `chunk` bytes up to the page end and lives
                // until the unmap below.
                let res = f(addr, chunk);
                // SAFETY: Unmaps what `furing_kmap_folio` mapped.
                unsafe { raw::furing_kunmap(addr.cast()) };
                res?;
                done += chunk;
            }
            left -= take;
        }
        Ok(())
    }

    /// Zero-copy candidates: a READ whose data goes to pages, or a WRITE whose data comes
    /// from pages. Returns the io_uring buffer direction and the bytes of the page
    /// argument.
    pub(crate) fn zero_copy_io(&self) -> Option<(u8, usize)> {
        let args = self.args();
        let opcode = self.in_header().opcode;
        if opcode == raw::fuse_opcode_FUSE_READ && args.out_pages() && args.out_numargs > 0 {
            let last = args.out_args.get(usize::from(args.out_numargs) - 1)?;
            Some((raw::IO_BUF_DEST as u8, last.size as usize))
        } else if opcode == raw::fuse_opcode_FUSE_WRITE && args.in_pages() && args.in_numargs > 0 {
            let last = args.in_args.get(usize::from(args.in_numargs) - 1)?;
            Some((raw::IO_BUF_SOURCE as u8, last.size as usize))
        } else {
            None
        }
    }

    /// References on the folios of the request's page argument.
    pub(crate) fn folio_refs(&self) -> Result<KVec<FolioRef>> {
        let ap = self.pages().ok_or(EINVAL)?;
        let n = ap.num_folios as usize;
        let mut refs = KVec::with_capacity(n, GFP_KERNEL)?;
        for k in 0..n {
            let (folio, _, _) = Self::folio(ap, k);
            // SAFETY: A folio of the request, referenced by it, so alive.
            refs.push(unsafe { FolioRef::get(folio) }, GFP_KERNEL)?;
        }
        Ok(refs)
    }

    /// The page argument as io_uring's buffer registration wants it (`fuse_args_pages`).
    pub(super) fn args_pages(&self) -> Option<*const raw::fuse_args_pages> {
        self.pages().map(core::ptr::from_ref)
    }

    /// Whether the request has payload in a ring entry: input arguments after the op
    /// header, or output arguments (every reply argument goes to the payload buffer).
    /// With `zero_copy` its page argument does not count (it is registered instead).
    pub(crate) fn has_payload(&self, zero_copy: bool) -> bool {
        let args = self.args();
        if !zero_copy {
            return args.in_numargs > 1 || args.out_numargs > 0;
        }
        // Input argument 0 (the op header) never goes to the payload; output ones do.
        (args.in_numargs > 1 && (!args.in_pages() || args.in_numargs > 2))
            || (args.out_numargs > 0 && (!args.out_pages() || args.out_numargs > 1))
    }

    /// Bytes of payload buffer the request needs: the larger of its input arguments after
    /// the op header and the output arguments its reply may fill (both go through the same
    /// buffer). With `zero_copy` its page argument does not count (it is registered instead).
    pub(crate) fn payload_need(&self, zero_copy: bool) -> usize {
        let args = self.args();
        let (nin, nout) = (usize::from(args.in_numargs), usize::from(args.out_numargs));
        let skip_in = zero_copy && args.in_pages();
        let skip_out = zero_copy && args.out_pages();
        let in_bytes: usize = (1..nin)
            .filter(|&i| !(skip_in && i == nin - 1))
            .filter_map(|i| args.in_args.get(i))
            .map(|a| a.size as usize)
            .sum();
        let out_bytes: usize = (0..nout)
            .filter(|&i| !(skip_out && i == nout - 1))
            .filter_map(|i| args.out_args.get(i))
            .map(|a| a.size as usize)
            .sum();
        in_bytes.max(out_bytes)
    }

    /// Input argument 0 (the opcode's in-struct), if any.
    pub(crate) fn op_header(&self) -> Option<&[u8]> {
        let args = self.args();
        (args.in_numargs > 0).then(|| {
            let a = &args.in_args[0];
            if a.size == 0 || a.value.is_null() {
                // `fuse_set_zero_arg0()` (LOOKUP, UNLINK, ...) leaves a NULL value of size
                // 0, which no slice may point at.
                return &[][..];
            }
            // SAFETY: Input argument 0 of a request we own, non-NULL: `size` readable
            // bytes that nothing writes while the request is in flight.
            unsafe { core::slice::from_raw_parts(a.value.cast::<u8>(), a.size as usize) }
        })
    }

    /// The FUSE core's page zeroing for a reply whose arguments were fitted to its size
    /// ([`Self::fit_out_args`]), done before any reply byte reaches a folio
    /// (`fuse_copy_folios()` with `args->page_zeroing`): a folio of the output page
    /// argument that the reply does not fill is cleared, so a short read never leaves
    /// stale memory in a page the core then marks uptodate. Copied folios are cleared
    /// whole (a failed copy leaves zeros); with `zero_copy` the server already wrote
    /// `[offset, offset + count)` into the folio, and only the bytes around it are cleared.
    pub(crate) fn zero_out_folios(&mut self, zero_copy: bool) {
        let args = self.args();
        if !args.out_pages() || !args.page_zeroing() || args.out_numargs == 0 {
            return;
        }
        let mut left = args.out_args[usize::from(args.out_numargs) - 1].size as usize;
        let Some(ap) = self.pages() else { return };
        for k in 0..ap.num_folios as usize {
            let (folio, offset, length) = Self::folio(ap, k);
            let count = length.min(left);
            left -= count;
            // SAFETY: A folio of the request we own, referenced by it.
            if count >= unsafe { raw::furing_folio_size(folio.as_ptr()) } {
                continue;
            }
            let (start, end) = if zero_copy {
                (offset, offset + count)
            } else {
                (0, 0)
            };
            // SAFETY: As above. The core sets `page_zeroing` only on requests that fill
            // folios no one else writes until the request ends (locked page-cache folios
            // being read, or a private one); `start..end` lies within the folio.
            unsafe { raw::furing_folio_zero_outside(folio.as_ptr(), start, end) };
        }
    }

    /// Checks a reply of `nbytes` payload bytes against the output arguments, shortening a
    /// variable-size last argument (`fuse_copy_out_args()`'s rule).
    pub(crate) fn fit_out_args(&mut self, nbytes: usize) -> Result {
        let args = self.args_mut();
        let n = usize::from(args.out_numargs);
        let want: usize = args.out_args.iter().take(n).map(|a| a.size as usize).sum();
        if nbytes > want || (nbytes < want && !args.out_argvar()) {
            return Err(EINVAL);
        }
        if nbytes < want {
            let last = args
                .out_args
                .get_mut(n.checked_sub(1).ok_or(EINVAL)?)
                .ok_or(EINVAL)?;
            let diff = want - nbytes;
            if diff > last.size as usize {
                return Err(EINVAL);
            }
            last.size -= diff as u32;
        }
        Ok(())
    }
}

impl Drop for Req {
    /// A request is never dropped by design (it is ended, handed on or hashed); should one
    /// be, it ends with `ECONNABORTED` rather than hang its waiter. Ending may sleep.
    fn drop(&mut self) {
        kernel::task::might_sleep();
        let req = Req(self.0);
        req.end(ECONNABORTED.to_errno());
    }
}

/// Requests waiting for a ring entry, oldest first: a list threaded through `req->list`,
/// as `fs/fuse/dev_uring.c` keeps its `fuse_req_queue` (no allocation per request).
///
/// # Invariants
///
/// `head` is an initialised list head; every request on it is owned by this list (as a
/// [`Req`] would be), linked through its `list` member.
pub(crate) struct ReqFifo {
    head: Pin<KBox<Opaque<bindings::list_head>>>,
    len: usize,
}

// SAFETY: The list owns its requests (type invariant), which may move between tasks.
unsafe impl Send for ReqFifo {}

impl ReqFifo {
    /// An empty list.
    pub(crate) fn new() -> Result<Self> {
        let head = KBox::pin_init(
            Opaque::ffi_init(|h: *mut bindings::list_head| {
                // SAFETY: `h` is the pinned head being initialised.
                unsafe { raw::furing_list_init(h) }
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { head, len: 0 })
    }

    /// Requests on the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `req`.
    pub(crate) fn push_back(&mut self, req: Req) {
        // SAFETY: `req` is ours and on no list (its invariant); the list takes it over.
        unsafe { raw::furing_req_list_add(self.head.get(), req.into_raw(), false) };
        self.len += 1;
    }

    /// Puts `req` first (a request that was already handed out comes back).
    pub(crate) fn push_front(&mut self, req: Req) {
        // SAFETY: As in `push_back`.
        unsafe { raw::furing_req_list_add(self.head.get(), req.into_raw(), true) };
        self.len += 1;
    }

    /// Calls `f` on the oldest request, which stays on the list.
    pub(crate) fn with_front<R>(&self, f: impl FnOnce(&Req) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: `head` is a list of requests we own (invariant).
        let req = NonNull::new(unsafe { raw::furing_req_list_first(self.head.get()) })?;
        // The list keeps owning the request: the `Req` lent to `f` is never dropped.
        let req = core::mem::ManuallyDrop::new(Req(req));
        Some(f(&req))
    }

    /// Takes the oldest request off the list.
    pub(crate) fn pop_front(&mut self) -> Option<Req> {
        // SAFETY: `head` is a list of requests we own (invariant); the first one is
        // unlinked (its `list` re-initialised) and becomes an owned `Req`.
        let req = NonNull::new(unsafe { raw::furing_req_list_pop(self.head.get()) })?;
        self.len -= 1;
        Some(Req(req))
    }
}

impl Drop for ReqFifo {
    /// Requests still waiting end with `ECONNABORTED` (process context: the list goes with
    /// its queue, after teardown).
    fn drop(&mut self) {
        while let Some(req) = self.pop_front() {
            req.end(ECONNABORTED.to_errno());
        }
    }
}

/// The core's classic path of a channel (`/dev/fuse`'s iqueue operations, which
/// `fuse_dev_chan_new()` installed before furing took the iqueue over): what the ring
/// does not carry goes there, to be read from the device.
///
/// # Invariants
///
/// `fiq` is the iqueue of a channel that outlives this value (it is dropped with the
/// channel's transport state, in `fiq_release` at the latest); `ops` are the core's static
/// `fuse_dev_fiq_ops`.
pub(crate) struct ClassicQueue {
    fiq: NonNull<raw::fuse_iqueue>,
    ops: &'static raw::fuse_iqueue_ops,
}

// SAFETY: The iqueue is the core's, which serialises with its own locks.
unsafe impl Send for ClassicQueue {}
// SAFETY: As above.
unsafe impl Sync for ClassicQueue {}

impl ClassicQueue {
    /// # Safety
    ///
    /// `fiq` must be the iqueue of a channel that outlives the returned value, with the
    /// core's classic operations `ops`.
    unsafe fn new(fiq: NonNull<raw::fuse_iqueue>, ops: &'static raw::fuse_iqueue_ops) -> Self {
        Self { fiq, ops }
    }

    /// Sends `req` the classic way (FR_PENDING stays as it is: a request the ring took
    /// has it clear, and its waiter waits for the end).
    pub(crate) fn send(&self, req: Req) {
        let op = self.ops.send_req.expect("classic send_req");
        // SAFETY: The iqueue is alive (invariant); the request is ours (`Req`'s
        // invariant) and leaves us.
        unsafe { op(self.fiq.as_ptr(), req.into_raw()) }
    }

    /// Gives `req` its unique id (`fuse_request_assign_unique()`): step one of sending,
    /// whichever path the request then takes.
    pub(crate) fn assign_unique(&self, req: &mut Req) {
        // SAFETY: The iqueue is alive (invariant); the request is ours, not yet sent.
        unsafe { raw::fuse_request_assign_unique(self.fiq.as_ptr(), req.0.as_ptr()) };
    }

    /// Whether neither the iqueue (`fiq->connected`) nor the channel (`fch->connected`,
    /// which `fuse_chan_abort()` clears first) is aborted.
    pub(crate) fn connected(&self) -> bool {
        let (fiq, fch) = (self.fiq.as_ptr(), self.chan());
        // SAFETY: The iqueue and its channel are alive (invariant); both flags are plain
        // ints the core writes under its locks, read here as a snapshot.
        unsafe {
            core::ptr::read_volatile(&raw const (*fiq).connected) != 0
                && core::ptr::read_volatile(&raw const (*fch).connected) != 0
        }
    }

    /// The channel's request timeout (`fch->timeout.req_timeout`, jiffies; 0 for none),
    /// which the core sets when it processes the FUSE_INIT reply.
    pub(crate) fn req_timeout(&self) -> kernel::time::Jiffies {
        let fch = self.chan();
        // SAFETY: The channel is alive (invariant); the timeout is a plain int the core
        // writes once, read here as a snapshot.
        unsafe {
            core::ptr::read_volatile(&raw const (*fch).timeout.req_timeout) as kernel::time::Jiffies
        }
    }

    /// Aborts the connection (`fuse_chan_abort()`), as the core's request-timeout scan does
    /// for an expired request. Process context, no lock held.
    pub(crate) fn abort(&self) {
        // SAFETY: The channel is alive (invariant); the core may abort it at any time.
        unsafe { raw::fuse_chan_abort(self.chan(), false) };
    }

    /// The channel the iqueue is embedded in (alive as long as the iqueue, invariant).
    fn chan(&self) -> *mut raw::fuse_chan {
        // SAFETY: The iqueue is the `iq` member of a live channel (invariant).
        unsafe { kernel::container_of!(self.fiq.as_ptr(), raw::fuse_chan, iq) }
    }

    /// Whether `fiq->connected` is clear: `fuse_chan_abort()` ran (it clears it before
    /// it wakes `fiq->waitq`).
    fn iqueue_aborted(&self) -> bool {
        // SAFETY: As in `connected`.
        unsafe { core::ptr::read_volatile(&raw const (*self.fiq.as_ptr()).connected) == 0 }
    }
}

/// The end callback of a request's `fuse_args`.
type EndFn = unsafe extern "C" fn(*mut raw::fuse_args, core::ffi::c_int);

/// A transport of the FUSE core: the object a channel's iqueue hands its requests to
/// (`fiq->priv`), once [`install`]ed. Every method is called by the core, through
/// [`FiqOps`].
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// `send_req` of a request other than INIT; may run under `fch->bg_lock` (atomic).
    fn send_req(this: ArcBorrow<'_, Self>, req: Req);
    /// INIT, before it goes the classic way, not yet visible to the server.
    fn send_init(this: ArcBorrow<'_, Self>, init: &mut InitReq<'_>);
    /// The reply to an INIT hooked with [`InitReq::hook_reply`], before the core sees it
    /// (`None`: INIT failed).
    fn init_reply(this: Arc<Self>, out: Option<&mut raw::fuse_init_out>);
    /// `fiq->waitq` was woken (under its lock: atomic); `aborted` says whether
    /// `fuse_chan_abort()` has run.
    fn woken(this: ArcBorrow<'_, Self>, aborted: bool);
    /// Task work of a command of the channel's device, queued with
    /// [`super::ParkedCmd::send_in_task`].
    fn task_work(this: ArcBorrow<'_, Self>, cmd: UringCmd, cancel: bool, issue_flags: u32);
    /// The channel goes (`release`, process context): the last call.
    fn release(this: Arc<Self>);
}

/// The part of [`IqPriv`] that does not depend on the transport type: what io_uring's task
/// work and a `/dev/furing` file find through the channel.
#[repr(C)]
struct IqHeader {
    /// The transport type, checked before the private data is taken for one.
    type_id: core::any::TypeId,
    /// [`Transport::task_work`] of the transport type; called with this header.
    task_work: unsafe fn(NonNull<IqHeader>, UringCmd, bool, u32),
}

/// What `fiq->priv` owns for a channel furing installed: the transport and the wait entry
/// on `fiq->waitq` that tells it of an abort (the core has no abort callback, but
/// `fuse_chan_abort()` clears `fiq->connected` and wakes this queue).
///
/// # Invariants
///
/// `wait` is on `fiq->waitq` from [`install`] until `release`, which takes it off
/// before this is dropped.
#[repr(C)]
#[pin_data]
struct IqPriv<T: Transport> {
    header: IqHeader,
    transport: Arc<T>,
    /// The iqueue's own classic path: forgets, interrupts and INIT go there unchanged.
    classic: ClassicQueue,
    #[pin]
    wait: Opaque<bindings::wait_queue_entry>,
}

impl<T: Transport> IqPriv<T> {
    /// # Safety
    ///
    /// `h` must be the header of a live `IqPriv<T>` (`install::<T>` puts this function in
    /// the header of exactly that type), alive for the call.
    unsafe fn task_work(h: NonNull<IqHeader>, cmd: UringCmd, cancel: bool, issue_flags: u32) {
        // SAFETY: The header is the first field of a `repr(C)` `IqPriv<T>` (caller's
        // guarantee).
        let this = unsafe { h.cast::<Self>().as_ref() };
        T::task_work(this.transport.as_arc_borrow(), cmd, cancel, issue_flags);
    }
}

/// The `fuse_iqueue_ops` of transport `T`.
#[repr(transparent)]
pub(crate) struct FiqOps<T: Transport>(raw::fuse_iqueue_ops, core::marker::PhantomData<T>);

// SAFETY: An immutable table of function pointers.
unsafe impl<T: Transport> Sync for FiqOps<T> {}

impl<T: Transport> FiqOps<T> {
    /// The table (a `static` of the transport's module).
    pub(crate) const fn new() -> Self {
        Self(
            raw::fuse_iqueue_ops {
                send_forget: Some(Self::send_forget),
                send_interrupt: Some(Self::send_interrupt),
                send_req: Some(Self::send_req),
                release: Some(Self::release),
            },
            core::marker::PhantomData,
        )
    }

    /// The private data of `fiq`.
    ///
    /// # Safety
    ///
    /// `fiq` must be an iqueue [`install`]ed with transport `T`, not yet released.
    unsafe fn priv_of<'a>(fiq: *mut raw::fuse_iqueue) -> &'a IqPriv<T> {
        // SAFETY: `priv` is the `Pin<KBox<IqPriv<T>>>` of `install`, alive until `release`
        // (caller's guarantee).
        unsafe { &*(*fiq).priv_.cast::<IqPriv<T>>() }
    }

    /// `send_forget`: the classic way.
    ///
    /// # Safety
    ///
    /// Called by the FUSE core on an installed iqueue with a forget it hands over.
    unsafe extern "C" fn send_forget(fiq: *mut raw::fuse_iqueue, link: *mut raw::fuse_forget_link) {
        // SAFETY: Called by the core on a live iqueue of ours.
        let p = unsafe { Self::priv_of(fiq) };
        let op = p.classic.ops.send_forget.expect("classic send_forget");
        // SAFETY: The core's forget, passed to its own operation on the same iqueue.
        unsafe { op(fiq, link) }
    }

    /// `send_interrupt`: the classic way.
    ///
    /// # Safety
    ///
    /// Called by the FUSE core on an installed iqueue with a request to interrupt.
    unsafe extern "C" fn send_interrupt(fiq: *mut raw::fuse_iqueue, req: *mut raw::fuse_req) {
        // SAFETY: Called by the core on a live iqueue of ours.
        let p = unsafe { Self::priv_of(fiq) };
        let op = p
            .classic
            .ops
            .send_interrupt
            .expect("classic send_interrupt");
        // SAFETY: The core's request, passed to its own operation on the same iqueue.
        unsafe { op(fiq, req) }
    }

    /// `send_req`: INIT is shown to the transport, then goes the classic way; every other
    /// request is the transport's.
    ///
    /// # Safety
    ///
    /// Called by the FUSE core on an installed iqueue with a request it hands over.
    unsafe extern "C" fn send_req(fiq: *mut raw::fuse_iqueue, req: *mut raw::fuse_req) {
        // SAFETY: Called by the core on a live iqueue of ours.
        let p = unsafe { Self::priv_of(fiq) };
        // SAFETY: The core hands us the request until we end it or pass it on; it is on no
        // list of the core.
        let Some(mut req) = (unsafe { Req::from_raw(req) }) else {
            return;
        };
        let this = p.transport.as_arc_borrow();
        if req.in_header().opcode == raw::fuse_opcode_FUSE_INIT {
            T::send_init(this, &mut InitReq { req: &mut req });
            p.classic.send(req);
        } else {
            T::send_req(this, req);
        }
    }

    /// `release`: the channel goes; the transport's last call.
    ///
    /// # Safety
    ///
    /// Called by the FUSE core once, on an installed iqueue, when its channel goes.
    unsafe extern "C" fn release(fiq: *mut raw::fuse_iqueue) {
        // The core holds no module reference for this call, and the transport may hold
        // the last one: the guard keeps the module until the end.
        let guard = super::CallbackGuard::new();
        // SAFETY: `priv` is the `Pin<KBox<IqPriv<T>>>` of `install`; this is its last use.
        let p =
            unsafe { <Pin<KBox<IqPriv<T>>> as ForeignOwnable>::from_foreign((*fiq).priv_.cast()) };
        // SAFETY: `fiq` is valid for this call; `wait` was queued on its `waitq` by
        // `install` (invariant of `IqPriv`), and comes off before `p` goes.
        unsafe {
            (*fiq).priv_ = core::ptr::null_mut();
            bindings::remove_wait_queue(&raw mut (*fiq).waitq, p.wait.get());
        }
        T::release(p.transport.clone());
        drop(p);
        drop(guard);
    }

    /// Wake function of `IqPriv::wait`: runs on every wake-up of `fiq->waitq`, with its
    /// lock held.
    ///
    /// # Safety
    ///
    /// Called by the wait-queue code for the `wait` of an `IqPriv<T>` while it is queued.
    unsafe extern "C" fn wake(
        wq: *mut bindings::wait_queue_entry,
        _mode: core::ffi::c_uint,
        _flags: core::ffi::c_int,
        _key: *mut core::ffi::c_void,
    ) -> core::ffi::c_int {
        // SAFETY: `wq` is the `wait` field of a live `IqPriv<T>` (it is queued only between
        // `install` and `release`).
        let p = unsafe { &*kernel::container_of!(Opaque::cast_from(wq), IqPriv<T>, wait) };
        let aborted = p.classic.iqueue_aborted();
        T::woken(p.transport.as_arc_borrow(), aborted);
        // Never an exclusive wake-up: readers of the device still get theirs.
        0
    }
}

/// A channel just made by `fuse_dev_chan_new()`, not yet given to a connection; freed on
/// drop.
///
/// # Invariants
///
/// `self.0` is a channel from `fuse_dev_chan_new()` that nothing else uses.
struct NewChan(NonNull<raw::fuse_chan>);

impl NewChan {
    /// A new channel with the core's classic `/dev/fuse` iqueue operations.
    fn new() -> Result<Self> {
        // SAFETY: FFI call; returns a new channel or NULL.
        NonNull::new(unsafe { raw::fuse_dev_chan_new() })
            .map(Self)
            .ok_or(ENOMEM)
    }

    /// Takes the channel's iqueue over for transport `T`: `make` builds the transport
    /// around the core's classic path; `ops` is `T`'s table.
    fn install<T: Transport>(
        &mut self,
        ops: &'static FiqOps<T>,
        make: impl FnOnce(ClassicQueue) -> Result<Arc<T>>,
    ) -> Result {
        let fch = self.0.as_ptr();
        // SAFETY: The channel is new and ours (invariant): its `iq.ops` is the core's
        // static `fuse_dev_fiq_ops`, and its iqueue lives as long as it does.
        let (fiq, classic) = unsafe { (&raw mut (*fch).iq, &*(*fch).iq.ops) };
        let fiq = NonNull::new(fiq).ok_or(EINVAL)?;
        // SAFETY: The transport, which owns one classic path, and the private data, which
        // owns the other, go in `release` at the latest, while the channel (and its
        // iqueue) is alive; `classic` are the core's.
        let (own, theirs) = unsafe {
            (
                ClassicQueue::new(fiq, classic),
                ClassicQueue::new(fiq, classic),
            )
        };
        let transport = make(theirs)?;
        let p = KBox::pin_init(
            pin_init!(IqPriv::<T> {
                header: IqHeader {
                    type_id: core::any::TypeId::of::<T>(),
                    task_work: IqPriv::<T>::task_work,
                },
                transport,
                classic: own,
                wait <- Opaque::ffi_init(|wq| {
                    // SAFETY: `wq` is the entry being initialised, pinned in the box.
                    unsafe { raw::furing_init_wait_entry(wq, Some(FiqOps::<T>::wake)) }
                }),
            }),
            GFP_KERNEL,
        )?;
        let wait = p.wait.get();
        // SAFETY: Nothing uses the iqueue yet (invariant), so re-initialising it with our
        // operations is safe; `priv` owns the box until `release`, which also takes `wait`
        // off the queue first.
        unsafe {
            raw::fuse_iqueue_init(fiq.as_ptr(), &ops.0, p.into_foreign().cast());
            bindings::add_wait_queue(&raw mut (*fiq.as_ptr()).waitq, wait);
        }
        Ok(())
    }

    /// Gives the channel up (to `fuse_conn_init()`).
    fn into_raw(self) -> *mut raw::fuse_chan {
        let fch = self.0.as_ptr();
        core::mem::forget(self);
        fch
    }
}

impl Drop for NewChan {
    fn drop(&mut self) {
        // SAFETY: Unused (invariant). `fuse_chan_free` frees what `fuse_dev_chan_new`
        // made; a transport installed on it is not released (its `release` runs only when
        // a connection puts the channel), so `install` is the last step before use.
        unsafe { raw::fuse_chan_free(self.0.as_ptr()) };
    }
}

/// A new channel, its transport (`make`, around the channel's classic path; `ops` is the
/// transport's table), connection and mount, for a superblock in the making: returns the
/// mount (`fuse_mount`), which the fs context owns until a superblock takes it over.
pub(super) fn new_conn<T: Transport>(
    ops: &'static FiqOps<T>,
    make: impl FnOnce(ClassicQueue) -> Result<Arc<T>>,
    user_ns: &super::UserNs<'_>,
) -> Result<NonNull<raw::fuse_mount>> {
    let fc = KBox::<raw::fuse_conn>::new_uninit(GFP_KERNEL)?;
    let fm = KBox::new(raw::fuse_mount::default(), GFP_KERNEL)?;
    let mut chan = NewChan::new()?;
    // Last fallible step: a channel with a transport is only ever put by a connection.
    chan.install(ops, make)?;
    let fc = KBox::into_raw(fc).cast::<raw::fuse_conn>();
    let fm = KBox::into_raw(fm);
    // SAFETY: `fc` is allocated (the core initialises it), `fm` zeroed, the channel new;
    // the connection takes the channel; both are freed by the core (`fuse_free_conn` and
    // `fuse_mount_destroy` use kfree, matching `KBox`'s kmalloc).
    unsafe {
        raw::fuse_conn_init(fc, fm, user_ns.as_ptr(), chan.into_raw());
        (*fc).release = Some(raw::fuse_free_conn);
    }
    NonNull::new(fm).ok_or(EINVAL)
}

/// An INIT request being sent, not yet visible to the server (see [`Transport::send_init`]).
pub(crate) struct InitReq<'a> {
    req: &'a mut Req,
}

/// An INIT whose reply goes to a transport first: its args, the core's end callback, the
/// transport (a foreign `Arc`) and the function that takes it back.
struct InitHook {
    args: usize,
    end: EndFn,
    transport: *const core::ffi::c_void,
    /// Takes `transport` back (once) and hands it the reply.
    reply: unsafe fn(*const core::ffi::c_void, Option<&mut raw::fuse_init_out>),
}

// SAFETY: `transport` is an `Arc` of a `Send + Sync` transport in foreign form.
unsafe impl Send for InitHook {}

kernel::sync::global_lock! {
    // SAFETY: `super::init()` initialises it from the module initializer, before any mount.
    unsafe(uninit) static INIT_HOOKS: SpinLock<KVec<InitHook>> = KVec::new();
}

/// Initialises the INIT hook table (module init).
pub(super) fn init_hooks() {
    // SAFETY: Called once, from the module initializer, before any use.
    unsafe { INIT_HOOKS.init() };
}

/// Frees the hook table (module exit: no INIT is in flight, as each holds a connection).
pub(super) fn exit_hooks() {
    // Taken out under the lock, freed after it.
    let hooks = core::mem::take(&mut *INIT_HOOKS.lock());
    drop(hooks);
}

impl InitReq<'_> {
    /// The request's `fuse_init_in`.
    pub(crate) fn in_arg(&mut self) -> Option<&mut raw::fuse_init_in> {
        let args = self.req.args_mut();
        if args.in_numargs < 1 || args.out_numargs < 1 {
            return None;
        }
        // SAFETY: `in_args[0]` of INIT points at the kzalloc'd `fuse_init_in` of the
        // core's `fuse_init_args`, alive until its end (declared const only because most
        // requests' inputs are); the request is ours until sent.
        Some(unsafe { &mut *args.in_args[0].value.cast::<raw::fuse_init_in>().cast_mut() })
    }

    /// Wraps the reply callback so that `T::init_reply` sees the reply before the core.
    /// Fails for a synchronous INIT (no callback) or without memory (atomic context).
    pub(crate) fn hook_reply<T: Transport>(&mut self, transport: Arc<T>) -> Result {
        let args = self.req.args_mut();
        let end = args.end.ok_or(EINVAL)?;
        let key = core::ptr::from_mut(args) as usize;
        if args.out_numargs < 1 {
            return Err(EINVAL);
        }
        let mut hooks = INIT_HOOKS.lock();
        // Hooked once: a second hook would chain to `init_end` itself and never be taken.
        if hooks.iter().any(|h| h.args == key) {
            return Err(EINVAL);
        }
        // Atomic: `send_req` may run under the core's background spinlock.
        hooks.reserve(1, GFP_ATOMIC)?;
        let hook = InitHook {
            args: key,
            end,
            transport: transport.into_foreign().cast_const().cast(),
            reply: Self::reply::<T>,
        };
        // Room is reserved: this cannot fail (and so leak the transport).
        let _ = hooks.push_within_capacity(hook);
        args.end = Some(init_end);
        Ok(())
    }

    /// # Safety
    ///
    /// `t` must be the foreign `Arc<T>` stored by `hook_reply::<T>` with this function,
    /// given back once.
    unsafe fn reply<T: Transport>(
        t: *const core::ffi::c_void,
        out: Option<&mut raw::fuse_init_out>,
    ) {
        // SAFETY: Caller's guarantee.
        let t = unsafe { Arc::<T>::from_foreign(t.cast_mut().cast()) };
        T::init_reply(t, out);
    }
}

/// The wrapped end callback of INIT.
///
/// # Safety
///
/// Called by the FUSE core (`fuse_request_end`) with the args hooked by
/// [`InitReq::hook_reply`].
unsafe extern "C" fn init_end(args: *mut raw::fuse_args, error: core::ffi::c_int) {
    let hook = {
        let mut hooks = INIT_HOOKS.lock();
        let pos = hooks.iter().position(|h| h.args == args as usize);
        pos.and_then(|i| hooks.remove(i).ok())
    };
    // The hook was stored before `end` was replaced, so it is always there.
    let Some(hook) = hook else { return };
    let out = if error == 0 {
        // SAFETY: On success `out_args[0]` is the server's `fuse_init_out`, in the core's
        // `fuse_init_args`, alive until the core's end callback returns.
        Some(unsafe { &mut *(*args).out_args[0].value.cast::<raw::fuse_init_out>() })
    } else {
        None
    };
    // SAFETY: The hook was taken out of the table: its transport is given back once, to
    // the function stored with it.
    unsafe { (hook.reply)(hook.transport, out) };
    // SAFETY: Chaining to the core's own end callback with its own arguments.
    unsafe { (hook.end)(args, error) }
}

/// A FUSE or furing wire header: integers only, without padding, so every byte is
/// initialised and any bytes are a value.
#[repr(transparent)]
pub(crate) struct Wire<T>(pub(crate) T);

// SAFETY: `fuse_in_header`, `fuse_out_header` and `furing_uring_ent_in_out` are integer
// fields laid out without padding (asserted in `uapi.rs` for the ring header).
unsafe impl kernel::transmute::AsBytes for Wire<raw::fuse_in_header> {}
// SAFETY: As above.
unsafe impl kernel::transmute::FromBytes for Wire<raw::fuse_out_header> {}
// SAFETY: As above.
unsafe impl kernel::transmute::AsBytes for Wire<raw::fuse_out_header> {}
// SAFETY: As above.
unsafe impl kernel::transmute::AsBytes for Wire<raw::furing_uring_ent_in_out> {}
// SAFETY: As above.
unsafe impl kernel::transmute::FromBytes for Wire<raw::furing_uring_ent_in_out> {}
