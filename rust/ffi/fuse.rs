// SPDX-License-Identifier: GPL-2.0

//! The FUSE core: channels, the requests the transport owns, the processing queue and the
//! classic path.
//!
//! Ownership of a request follows the core's protocol, and the types here encode it:
//! `send_req` hands the transport a request ([`Req`], owned, not `Copy`); it leaves the
//! transport by being ended ([`Req::end`]), by going the classic way
//! ([`ClassicQueue::send`]), or by being hashed on the processing queue
//! ([`FuseDev::pq_add`]), where the core's abort can end it: from then on the transport
//! holds only its `unique`, and a reply takes it back with [`FuseDev::pq_take`].

use super::mm::FolioRef;
use super::raw;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{bindings, prelude::*, types::Opaque};

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

    /// The iqueue of the channel.
    pub(crate) fn iqueue(&self) -> *mut raw::fuse_iqueue {
        // SAFETY: `iq` is embedded in the live channel.
        unsafe { &raw mut (*self.0.get()).iq }
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

    /// Hashes `req` on the device's processing queue and marks it sent (FR_SENT); queues
    /// its interrupt first when a signal came before FR_SENT (as `fuse_dev_do_read()`).
    /// Returns the request's `unique`: from here on the processing queue owns it, and an
    /// abort may end it at any time. Gives the request back once the queue is aborted.
    pub(crate) fn pq_add(&self, req: Req) -> core::result::Result<u64, Req> {
        let unique = req.unique();
        // SAFETY: The device is live; `req` is ours. The interrupt check runs under the
        // processing queue's lock, while the request cannot be ended.
        if unsafe { raw::furing_pq_add(self.0.get(), req.0.as_ptr()) } {
            core::mem::forget(req);
            Ok(unique)
        } else {
            Err(req)
        }
    }

    /// Takes the request `unique` off the processing queue for its reply (FR_LOCKED: an
    /// abort now leaves it to us); `None` when it is not there (aborted, or resent).
    pub(crate) fn pq_take(&self, unique: u64) -> Option<Reply<'_>> {
        // SAFETY: The device is live. A request found is moved to `fpq->io` with FR_LOCKED
        // and FR_SENT cleared: the core leaves it to us until `furing_pq_release`.
        let req = unsafe { raw::furing_pq_take(self.0.get(), unique) };
        NonNull::new(req).map(|req| Reply {
            fud: self,
            req: Some(Req(req)),
        })
    }
}

/// A request taken off the processing queue for its reply (see [`FuseDev::pq_take`]).
///
/// # Invariants
///
/// `req` is `Some` until [`Reply::finish`]; it is FR_LOCKED on `fud`'s `fpq->io`.
pub(crate) struct Reply<'a> {
    fud: &'a FuseDev,
    req: Option<Req>,
}

impl Reply<'_> {
    /// The request, to copy the reply into.
    pub(crate) fn req(&mut self) -> &mut Req {
        // INVARIANT: `req` is `Some` until `finish` consumes `self`.
        self.req.as_mut().expect("Reply holds its request")
    }

    /// Unlocks the request (`err`: the reply was bad, the request fails with EIO), and
    /// gives it back to end.
    pub(crate) fn finish(mut self, err: bool) -> Req {
        let req = self.req.take().expect("Reply holds its request");
        Self::release(self.fud, &req, err);
        req
    }

    /// `fuse_dev_do_write()`'s end of a reply: FR_LOCKED off, off `fpq->io` (unless the
    /// abort made it private), its error EIO if the reply was bad.
    fn release(fud: &FuseDev, req: &Req, err: bool) {
        // SAFETY: The device is live; `req` is FR_LOCKED on its `fpq->io` (invariant).
        unsafe { raw::furing_pq_release(fud.0.get(), req.0.as_ptr(), err) };
    }
}

impl Drop for Reply<'_> {
    /// A reply not finished (an early return) fails its request with EIO.
    fn drop(&mut self) {
        if let Some(req) = self.req.take() {
            Self::release(self.fud, &req, true);
            req.end(0);
        }
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
    pub(crate) unsafe fn from_raw(req: *mut raw::fuse_req) -> Option<Self> {
        NonNull::new(req).map(Self)
    }

    fn r(&self) -> &raw::fuse_req {
        // SAFETY: Live and ours (type invariant); shared access to the fields the owner
        // alone writes.
        unsafe { self.0.as_ref() }
    }

    fn r_mut(&mut self) -> &mut raw::fuse_req {
        // SAFETY: Live and ours (type invariant), and `&mut self` makes the access unique.
        unsafe { self.0.as_mut() }
    }

    fn args(&self) -> &raw::fuse_args {
        // SAFETY: A request's `args` are valid until it ends.
        unsafe { &*self.r().args }
    }

    fn args_mut(&mut self) -> &mut raw::fuse_args {
        // SAFETY: As in `args`; the owner alone touches them (type invariant).
        unsafe { &mut *self.r_mut().args }
    }

    /// The page arguments' descriptor, when the request has page arguments.
    fn pages(&self) -> Option<&raw::fuse_args_pages> {
        let args = self.args();
        // SAFETY: With page arguments, `args` is the `args` member of a `fuse_args_pages`
        // (the core's contract for in_pages/out_pages).
        (args.in_pages() || args.out_pages())
            .then(|| unsafe { &*core::ptr::from_ref(args).cast::<raw::fuse_args_pages>() })
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
        self.r().in_.h.unique
    }

    /// The FUSE in header.
    pub(crate) fn in_header(&self) -> raw::fuse_in_header {
        self.r().in_.h
    }

    fn flags(&self) -> &AtomicUsize {
        // SAFETY: `flags` is an `unsigned long` the core only changes with atomic bitops.
        unsafe { AtomicUsize::from_ptr((&raw const self.r().flags).cast_mut().cast()) }
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

    /// Marks a request the transport keeps (off the processing queue) sent (FR_SENT), and
    /// queues its interrupt when a signal came before, as [`FuseDev::pq_add`] does.
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
        self.r_mut().out.h = oh;
    }

    /// The raw request, leaving the transport (to the core's classic path).
    pub(crate) fn into_raw(self) -> *mut raw::fuse_req {
        let req = self.0.as_ptr();
        core::mem::forget(self);
        req
    }

    /// Ends the request with `error` (0 keeps the reply's own error).
    pub(crate) fn end(mut self, error: i32) {
        if error != 0 {
            self.r_mut().out.h.error = error;
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
        mut f: impl FnMut(&[u8]) -> Result,
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
                    self.for_each_folio_chunk(len, |c| f(c))?;
                }
            } else if len > 0 {
                // SAFETY: An input argument of a request we own: `len` readable bytes that
                // nothing writes while the request is in flight.
                f(unsafe { core::slice::from_raw_parts(a.value.cast::<u8>(), len) })?;
            }
        }
        Ok(skipped)
    }

    /// Calls `f` on each chunk of the output arguments, in order, to fill them in; a page
    /// argument yields its folios page by page, or nothing with `skip_pages`.
    pub(crate) fn for_each_out_chunk(
        &mut self,
        skip_pages: bool,
        mut f: impl FnMut(&mut [u8]) -> Result,
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
                    self.for_each_folio_chunk(len, |c| f(c))?;
                }
            } else if len > 0 {
                // SAFETY: An output argument of a request we own (`&mut self`): `len`
                // writable bytes, only written by the owner of the request.
                f(unsafe { core::slice::from_raw_parts_mut(ptr, len) })?;
            }
        }
        Ok(())
    }

    /// Maps the first `len` bytes of the page argument folio by folio, page by page, and
    /// calls `f` on each chunk.
    fn for_each_folio_chunk(&self, len: usize, mut f: impl FnMut(&mut [u8]) -> Result) -> Result {
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
                // SAFETY: The local mapping covers `chunk` bytes up to the page end; the
                // folio's bytes are the request's data, which only its owner touches.
                let res = f(unsafe { core::slice::from_raw_parts_mut(addr, chunk) });
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
    pub(crate) fn args_pages(&self) -> Option<*const raw::fuse_args_pages> {
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

    /// Input argument 0 (the opcode's in-struct), if any.
    pub(crate) fn op_header(&self) -> Option<&[u8]> {
        let args = self.args();
        (args.in_numargs > 0).then(|| {
            let a = &args.in_args[0];
            // SAFETY: Input argument 0 of a request we own: `size` readable bytes.
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
    pub(crate) unsafe fn new(
        fiq: NonNull<raw::fuse_iqueue>,
        ops: &'static raw::fuse_iqueue_ops,
    ) -> Self {
        Self { fiq, ops }
    }

    /// Sends `req` the classic way (FR_PENDING stays as it is: a request the ring took
    /// has it clear, and its waiter waits for the end).
    pub(crate) fn send(&self, req: Req) {
        // SAFETY: The request is ours (`Req`'s invariant) and leaves us.
        unsafe { self.send_raw(req.into_raw()) }
    }

    /// `send_forget`, passed through.
    ///
    /// # Safety
    ///
    /// `link` must be a forget the core hands to the transport.
    pub(crate) unsafe fn send_forget(&self, link: *mut raw::fuse_forget_link) {
        let op = self.ops.send_forget.expect("classic send_forget");
        // SAFETY: The iqueue is alive (invariant); `link` is the core's (caller's
        // guarantee).
        unsafe { op(self.fiq.as_ptr(), link) }
    }

    /// `send_interrupt`, passed through.
    ///
    /// # Safety
    ///
    /// `req` must be a request the core asks to interrupt.
    pub(crate) unsafe fn send_interrupt(&self, req: *mut raw::fuse_req) {
        let op = self.ops.send_interrupt.expect("classic send_interrupt");
        // SAFETY: The iqueue is alive (invariant); `req` is the core's (caller's guarantee).
        unsafe { op(self.fiq.as_ptr(), req) }
    }

    /// `send_req` of a request the core hands over that furing does not take (its
    /// FR_PENDING set: the classic path is its first stop).
    ///
    /// # Safety
    ///
    /// `req` must be a request the core hands to the transport.
    pub(crate) unsafe fn send_raw(&self, req: *mut raw::fuse_req) {
        let op = self.ops.send_req.expect("classic send_req");
        // SAFETY: The iqueue is alive (invariant); `req` is the core's (caller's guarantee).
        unsafe { op(self.fiq.as_ptr(), req) }
    }
}
