// SPDX-License-Identifier: GPL-2.0

//! A queue's buffer ring (`FURING_URING_BUFRING`): one headers region with a
//! `furing_uring_req_header` slot per entry, and a payload region per buffer class (one,
//! or up to four with `FURING_URING_BUF_CLASSES`) carved into that class's buffers, which
//! requests take on demand and give back when they end.
//!
//! Each region is either the server's memory, reached with `copy_to_user`, or pinned and
//! mapped into the kernel ([`PinnedRegion`]) when the queue has the matching PINNED flag.
//! Which buffers are free is a [`FreeBufs`] the queue keeps under its lock; this type knows
//! the layout, which class a request takes and how to reach the bytes.

use crate::copy::Buf;
use crate::entry::{BufId, SlotId};
use crate::ffi::{cmd_reserved, Req, Sqe};
use crate::pinned::PinnedRegion;
use crate::ring::{Limits, HEADER_SIZE};
use crate::uapi;
use crate::user::{read_iovecs, UserBuf};
use kernel::prelude::*;

/// Most buffers a queue's payload region may be carved into (buffer ids are 16 bits, and
/// `FURING_URING_NO_BUF` is the last one).
pub(crate) const MAX_BUFS: usize = uapi::FURING_URING_NO_BUF as usize;

/// Reads and writes of at least this many bytes go zero-copy on a zero-copy queue.
pub(crate) const ZERO_COPY_MIN: usize = 64 << 10;

/// Where a region's bytes are.
enum Region {
    /// In the server's memory.
    User(UserBuf),
    /// Pinned and mapped.
    Pinned(PinnedRegion),
}

impl Region {
    /// Sets a region up: pins it when `pinned`, else checks it is mapped writable.
    fn new(iov: UserBuf, used: usize, pinned: bool) -> Result<Self> {
        if pinned {
            Ok(Self::Pinned(PinnedRegion::new(iov.addr(), iov.len)?))
        } else {
            iov.probe_writable(used)?;
            Ok(Self::User(iov))
        }
    }

    /// `len` bytes at `off` (the caller keeps within the region).
    fn slice(&self, off: usize, len: usize) -> Buf<'_> {
        match self {
            Self::User(u) => Buf::User(u.slice(off, len)),
            Self::Pinned(p) => Buf::Kernel(p, off, len),
        }
    }

    /// Bytes pinned for this region.
    fn pinned_bytes(&self) -> usize {
        match self {
            Self::User(_) => 0,
            Self::Pinned(p) => p.len(),
        }
    }
}

/// A class of payload buffers: `count` buffers of `size` bytes, ids `first..first + count`.
struct Class {
    size: usize,
    first: u32,
    count: u32,
    region: Region,
}

/// The layout of one queue's buffer ring, as its first REGISTER set it up.
///
/// # Invariants
///
/// `classes` holds 1 to `FURING_URING_MAX_BUF_CLASSES` classes, their sizes strictly
/// increasing, their ids numbered in order from 0 to `nr_bufs - 1` (at most [`MAX_BUFS`]).
pub(crate) struct BufRing {
    flags: u64,
    depth: u32,
    nr_bufs: u32,
    headers: Region,
    classes: KVec<Class>,
}

/// The buffer sizes of the classes a REGISTER asks for: `init.buf_size` alone, or with
/// `FURING_URING_BUF_CLASSES` also `class_buf_size` up to its first 0. `EINVAL` unless
/// they strictly increase and nothing follows a 0.
fn class_sizes(sqe: &Sqe) -> Result<KVec<usize>> {
    let mut sizes = KVec::with_capacity(uapi::FURING_URING_MAX_BUF_CLASSES, GFP_KERNEL)?;
    sizes.push(sqe.req.init.buf_size as usize, GFP_KERNEL)?;
    if sqe.req.flags & uapi::FURING_URING_BUF_CLASSES != 0 {
        let tail = cmd_reserved(&sqe.req);
        let mut ended = false;
        for c in tail.chunks_exact(4) {
            let size = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as usize;
            match (size, ended) {
                (0, _) => ended = true,
                (_, true) => return Err(EINVAL),
                (_, false) => sizes.push(size, GFP_KERNEL)?,
            }
        }
    }
    if sizes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(EINVAL);
    }
    Ok(sizes)
}

impl BufRing {
    /// Sets up the buffer ring of a queue from its first REGISTER (see the UAPI header for
    /// the rules and their errors). Pins and maps the regions the flags ask for: process
    /// context, no locks held.
    pub(crate) fn new(sqe: &Sqe, limits: Limits) -> Result<Self> {
        let flags = sqe.req.flags;
        let depth = u32::from(sqe.req.init.queue_depth);
        let sizes = class_sizes(sqe)?;
        if sqe.len as usize != 1 + sizes.len()
            || depth == 0
            || depth > uapi::FURING_URING_MAX_QUEUE_DEPTH
        {
            return Err(EINVAL);
        }
        let iovs = read_iovecs(sqe.addr, 1 + sizes.len())?;
        let headers_len = HEADER_SIZE * depth as usize;
        let largest = sizes.last().copied().unwrap_or(0);
        // Zero-copy moves the data pages without the buffers: they may be smaller.
        let zero_copy = flags & uapi::FURING_URING_ZERO_COPY != 0;
        if iovs[0].len < headers_len
            || sizes[0] == 0
            || (!zero_copy && largest < limits.max_payload)
        {
            return Err(EINVAL);
        }
        let mut counts = KVec::with_capacity(sizes.len(), GFP_KERNEL)?;
        let mut nr_bufs = 0usize;
        for (k, &size) in sizes.iter().enumerate() {
            let n = iovs[1 + k].len / size;
            nr_bufs += n;
            if n == 0 || nr_bufs > MAX_BUFS {
                return Err(EINVAL);
            }
            counts.push(n, GFP_KERNEL)?;
        }
        let headers = Region::new(
            iovs[0],
            headers_len,
            flags & uapi::FURING_URING_PINNED_HEADERS != 0,
        )?;
        let pinned = flags & uapi::FURING_URING_PINNED_BUFFERS != 0;
        let mut classes = KVec::with_capacity(sizes.len(), GFP_KERNEL)?;
        let mut first = 0u32;
        for (k, (&size, &count)) in sizes.iter().zip(counts.iter()).enumerate() {
            let region = Region::new(iovs[1 + k], count * size, pinned)?;
            classes.push(
                Class {
                    size,
                    first,
                    count: count as u32,
                    region,
                },
                GFP_KERNEL,
            )?;
            first += count as u32;
        }
        Ok(Self {
            flags,
            depth,
            nr_bufs: nr_bufs as u32,
            headers,
            classes,
        })
    }

    /// Whether the queue zero-copies the data pages of reads and writes.
    pub(crate) fn zero_copy(&self) -> bool {
        self.flags & uapi::FURING_URING_ZERO_COPY != 0
    }

    /// Whether a request only ever takes a buffer of its own class.
    fn strict(&self) -> bool {
        self.flags & uapi::FURING_URING_BUF_CLASSES_STRICT != 0
    }

    /// The largest buffer size.
    fn largest(&self) -> usize {
        self.classes.last().map_or(0, |c| c.size)
    }

    /// Whether `req` goes zero-copy on this queue: a READ or WRITE on a zero-copy queue
    /// whose data is at least [`ZERO_COPY_MIN`] bytes, or does not fit a payload buffer.
    /// Smaller ones are copied: for a few pages, the registration and the server's extra
    /// READ_FIXED/WRITE_FIXED cost more than the copy (`make bench` compares the two on
    /// its 4 KiB workload). Returns the io_uring buffer direction and the data size.
    pub(crate) fn zero_copies(&self, req: &Req) -> Option<(u8, usize)> {
        if !self.zero_copy() {
            return None;
        }
        let (dir, len) = req.zero_copy_io()?;
        (len >= ZERO_COPY_MIN || len > self.largest()).then_some((dir, len))
    }

    /// The class whose buffers `req` takes: the smallest that holds its payload (the
    /// largest when none does: the copy then fails as it would with one class), or `None`
    /// when it needs no buffer.
    pub(crate) fn class_of(&self, req: &Req) -> Option<usize> {
        let zc = self.zero_copies(req).is_some();
        if !req.has_payload(zc) {
            return None;
        }
        let need = req.payload_need(zc);
        let last = self.classes.len().saturating_sub(1);
        Some(
            self.classes
                .iter()
                .position(|c| c.size >= need)
                .unwrap_or(last),
        )
    }

    /// The class a request of class `class` takes a free buffer of in `free`: its own, or,
    /// unless the queue is strict, the next larger class that has one; `None` when it must
    /// wait.
    pub(crate) fn pick(&self, class: usize, free: &FreeBufs) -> Option<usize> {
        let last = if self.strict() {
            class
        } else {
            self.classes.len().saturating_sub(1)
        };
        (class..=last).find(|&k| free.bufs.get(k).is_some_and(|b| !b.is_empty()))
    }

    /// Gives buffer `id` back to its class in `free` (never allocates).
    pub(crate) fn give_back(&self, id: BufId, free: &mut FreeBufs) {
        if let Some(k) = self.class_of_buf(id) {
            let _ = free.bufs[k].push_within_capacity(id);
        }
    }

    /// The class of buffer `id`.
    fn class_of_buf(&self, id: BufId) -> Option<usize> {
        let id = u32::from(id);
        self.classes
            .iter()
            .position(|c| id >= c.first && id < c.first + c.count)
    }

    /// Every buffer free, room reserved for all of them (process context).
    pub(crate) fn all_free(&self) -> Result<FreeBufs> {
        let mut free = FreeBufs::default();
        for (k, c) in self.classes.iter().enumerate() {
            let mut v = KVec::with_capacity(c.count as usize, GFP_KERNEL)?;
            for id in (c.first..c.first + c.count).rev() {
                v.push(id as BufId, GFP_KERNEL)?;
            }
            free.bufs[k] = v;
        }
        Ok(free)
    }

    /// Per class: `(buffer size, buffers, buffers held by requests)`.
    pub(crate) fn class_counts<'a>(
        &'a self,
        free: &'a FreeBufs,
    ) -> impl Iterator<Item = (usize, u32, u32)> + 'a {
        self.classes
            .iter()
            .zip(free.bufs.iter())
            .map(|(c, f)| (c.size, c.count, c.count - f.len() as u32))
    }

    /// Entries the queue may have (ids `0..depth`).
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    /// How many payload buffers there are.
    pub(crate) fn nr_bufs(&self) -> u32 {
        self.nr_bufs
    }

    /// Bytes pinned for this ring.
    pub(crate) fn pinned_bytes(&self) -> usize {
        self.headers.pinned_bytes()
            + self
                .classes
                .iter()
                .map(|c| c.region.pinned_bytes())
                .sum::<usize>()
    }

    /// The header slot of entry `slot` (< depth).
    pub(crate) fn header(&self, slot: SlotId) -> Buf<'_> {
        let slot = u32::from(slot).min(self.depth - 1) as usize;
        self.headers.slice(slot * HEADER_SIZE, HEADER_SIZE)
    }

    /// Payload buffer `id` (< nr_bufs), or an empty buffer for a request without payload.
    pub(crate) fn buffer(&self, id: Option<BufId>) -> Buf<'_> {
        match id.and_then(|id| Some((id, self.classes.get(self.class_of_buf(id)?)?))) {
            Some((id, c)) => c
                .region
                .slice((u32::from(id) - c.first) as usize * c.size, c.size),
            None => Buf::empty(),
        }
    }
}

/// The free payload buffers of a queue, by class, and how often each class ran out.
/// Room for every buffer is reserved up front, so giving one back never allocates.
#[derive(Default)]
pub(crate) struct FreeBufs {
    bufs: [KVec<BufId>; uapi::FURING_URING_MAX_BUF_CLASSES],
    /// Requests that waited because their class (and, unless strict, every larger one)
    /// had no free buffer, counted once per request ...
    waits: [u64; uapi::FURING_URING_MAX_BUF_CLASSES],
    /// ... by the commit id of the last one counted.
    last_blocked: [u64; uapi::FURING_URING_MAX_BUF_CLASSES],
}

impl FreeBufs {
    /// Counts a wait of the request `unique` for a buffer of class `class`, once per
    /// request (it stays at the head of its line until it gets one).
    pub(crate) fn count_wait(&mut self, class: usize, unique: u64) {
        if let (Some(last), Some(waits)) =
            (self.last_blocked.get_mut(class), self.waits.get_mut(class))
        {
            if *last != unique {
                *last = unique;
                *waits += 1;
            }
        }
    }

    /// Requests that waited for a buffer of class `class`.
    pub(crate) fn waits(&self, class: usize) -> u64 {
        self.waits.get(class).copied().unwrap_or(0)
    }

    /// Takes a free buffer of class `class` (one [`BufRing::pick`] found).
    pub(crate) fn pop(&mut self, class: usize) -> Option<BufId> {
        self.bufs.get_mut(class)?.pop()
    }

    /// Free buffers in all.
    pub(crate) fn len(&self) -> usize {
        self.bufs.iter().map(|b| b.len()).sum()
    }
}
