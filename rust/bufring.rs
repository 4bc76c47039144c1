// SPDX-License-Identifier: GPL-2.0

//! A queue's buffer ring (`FURING_URING_BUFRING`): one headers region with a
//! `furing_uring_req_header` slot per entry, and one payload region carved into `buf_size`
//! buffers that requests take on demand and give back when they end.
//!
//! Each region is either the server's memory, reached with `copy_to_user`, or pinned and
//! mapped into the kernel ([`PinnedRegion`]) when the queue has the matching PINNED flag.
//! Which buffers are free is the queue's business (under its lock); this type only knows
//! the layout and how to reach the bytes.

use crate::copy::Buf;
use crate::entry::{BufId, SlotId};
use crate::ffi::{Req, Sqe};
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

/// The layout of one queue's buffer ring, as its first REGISTER set it up.
pub(crate) struct BufRing {
    flags: u64,
    depth: u32,
    buf_size: usize,
    nr_bufs: u32,
    headers: Region,
    payload: Region,
}

impl BufRing {
    /// Sets up the buffer ring of a queue from its first REGISTER (see the UAPI header for
    /// the rules and their errors). Pins and maps the regions the flags ask for: process
    /// context, no locks held.
    pub(crate) fn new(sqe: &Sqe, limits: Limits) -> Result<Self> {
        let flags = sqe.req.flags;
        let depth = u32::from(sqe.req.init.queue_depth);
        let buf_size = sqe.req.init.buf_size as usize;
        if sqe.len != 2 || depth == 0 || depth > uapi::FURING_URING_MAX_QUEUE_DEPTH {
            return Err(EINVAL);
        }
        let [headers, payload] = read_iovecs::<2>(sqe.addr)?;
        let headers_len = HEADER_SIZE * depth as usize;
        // Zero-copy moves the data pages without the buffers: they may be smaller.
        let zero_copy = flags & uapi::FURING_URING_ZERO_COPY != 0;
        if headers.len < headers_len
            || buf_size == 0
            || (!zero_copy && buf_size < limits.max_payload)
        {
            return Err(EINVAL);
        }
        let nr_bufs = payload.len / buf_size;
        if nr_bufs == 0 || nr_bufs > MAX_BUFS {
            return Err(EINVAL);
        }
        let headers = Region::new(
            headers,
            headers_len,
            flags & uapi::FURING_URING_PINNED_HEADERS != 0,
        )?;
        let payload = Region::new(
            payload,
            nr_bufs * buf_size,
            flags & uapi::FURING_URING_PINNED_BUFFERS != 0,
        )?;
        Ok(Self {
            flags,
            depth,
            buf_size,
            nr_bufs: nr_bufs as u32,
            headers,
            payload,
        })
    }

    /// Whether the queue zero-copies the data pages of reads and writes.
    pub(crate) fn zero_copy(&self) -> bool {
        self.flags & uapi::FURING_URING_ZERO_COPY != 0
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
        (len >= ZERO_COPY_MIN || len > self.buf_size).then_some((dir, len))
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
        self.headers.pinned_bytes() + self.payload.pinned_bytes()
    }

    /// The header slot of entry `slot` (< depth).
    pub(crate) fn header(&self, slot: SlotId) -> Buf<'_> {
        let slot = u32::from(slot).min(self.depth - 1) as usize;
        self.headers.slice(slot * HEADER_SIZE, HEADER_SIZE)
    }

    /// Payload buffer `id` (< nr_bufs), or an empty buffer for a request without payload.
    pub(crate) fn buffer(&self, id: Option<BufId>) -> Buf<'_> {
        match id {
            Some(id) if u32::from(id) < self.nr_bufs => self
                .payload
                .slice(usize::from(id) * self.buf_size, self.buf_size),
            _ => Buf::empty(),
        }
    }
}
