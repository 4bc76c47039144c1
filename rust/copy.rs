// SPDX-License-Identifier: GPL-2.0

//! The copy state: moves a request's arguments into an entry's buffers and its reply back,
//! following the ring layout (`fuse_in_header` in the in/out slot, the opcode's in-struct in
//! the op slot, every other argument packed into the payload buffer).
//!
//! The walk over a request's arguments is written once; where the bytes go is a
//! [`RingBuf`]: the server's memory through `copy_to_user` ([`UserBuf`]), or a pinned
//! region through its kernel address ([`Buf::Kernel`]), chosen per region from the
//! queue's flags.

use crate::ffi::{
    copy_from_user_page, copy_to_user_page, raw, user_read, user_write, DstBytes, Req, SrcBytes,
    Wire,
};
use crate::pinned::PinnedRegion;
use crate::uapi::{
    furing_uring_ent_in_out, FURING_URING_ENT_ZERO_COPY, IN_OUT_HEADER_SZ, OP_IN_OUT_SZ,
};
use crate::user::{check_range, UserBuf};
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    transmute::{AsBytes, FromBytes},
};

/// Offset of `furing_uring_ent_in_out` in a request header.
const ENT_IN_OUT: usize = IN_OUT_HEADER_SZ + OP_IN_OUT_SZ;

/// A buffer of an entry, addressed from 0 to `len()`.
pub(crate) trait RingBuf {
    /// Bytes in the buffer.
    fn len(&self) -> usize;
    /// Copies `src` to `off`.
    fn write_at(&self, off: usize, src: SrcBytes<'_>) -> Result;
    /// Copies from `off` into `dst`.
    fn read_at(&self, off: usize, dst: DstBytes<'_>) -> Result;
}

/// Copies of at least this many bytes to or from the server's memory go page by page
/// through kernel mappings of its pinned pages ([`copy_to_user_page`]); smaller
/// ones (headers) with `copy_to_user()` / `copy_from_user()`.
const PAGE_COPY_MIN: usize = 512;

impl UserBuf {
    /// Copies `src` to `off` of the buffer, page by page.
    fn write_pages(&self, off: usize, src: SrcBytes<'_>) -> Result {
        let mut done = 0;
        while done < src.len() {
            let uaddr = self.addr + off + done;
            let n = (src.len() - done).min(PAGE_SIZE - uaddr % PAGE_SIZE);
            copy_to_user_page(uaddr, src.sub(done, n)?)?;
            done += n;
        }
        Ok(())
    }

    /// Copies from `off` of the buffer into `dst`, page by page.
    fn read_pages(&self, off: usize, mut dst: DstBytes<'_>) -> Result {
        let mut done = 0;
        while done < dst.len() {
            let uaddr = self.addr + off + done;
            let n = (dst.len() - done).min(PAGE_SIZE - uaddr % PAGE_SIZE);
            copy_from_user_page(uaddr, dst.sub(done, n)?)?;
            done += n;
        }
        Ok(())
    }
}

impl RingBuf for UserBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn write_at(&self, off: usize, src: SrcBytes<'_>) -> Result {
        check_range(off, src.len(), self.len)?;
        if src.len() >= PAGE_COPY_MIN {
            return self.write_pages(off, src);
        }
        user_write(self.addr.wrapping_add(off), src)
    }

    fn read_at(&self, off: usize, dst: DstBytes<'_>) -> Result {
        check_range(off, dst.len(), self.len)?;
        if dst.len() >= PAGE_COPY_MIN {
            return self.read_pages(off, dst);
        }
        user_read(self.addr.wrapping_add(off), dst)
    }
}

/// A header slot or payload buffer: in the server's memory, or `len` bytes at `off` of a
/// pinned region.
pub(crate) enum Buf<'a> {
    User(UserBuf),
    Kernel(&'a PinnedRegion, usize, usize),
}

impl Buf<'_> {
    /// No buffer: every access fails.
    pub(crate) fn empty() -> Self {
        Self::User(UserBuf { addr: 0, len: 0 })
    }
}

impl RingBuf for Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Self::User(u) => u.len,
            Self::Kernel(_, _, len) => *len,
        }
    }

    fn write_at(&self, off: usize, src: SrcBytes<'_>) -> Result {
        match self {
            Self::User(u) => u.write_at(off, src),
            Self::Kernel(p, base, len) => {
                check_range(off, src.len(), *len)?;
                p.write_at(base + off, src)
            }
        }
    }

    fn read_at(&self, off: usize, dst: DstBytes<'_>) -> Result {
        match self {
            Self::User(u) => u.read_at(off, dst),
            Self::Kernel(p, base, len) => {
                check_range(off, dst.len(), *len)?;
                p.read_at(base + off, dst)
            }
        }
    }
}

/// Copies `req` into an entry: header slots and payload (buffer `buf_id` of a buffer
/// ring, or `FURING_URING_NO_BUF`). Returns the payload size.
///
/// With `zero_copy` the page argument's folios are registered with the server's io_uring
/// instead: they are skipped here but counted in `payload_sz`, and `ent_in_out.flags`
/// says so.
pub(crate) fn request_to_ring(
    req: &Req,
    header: &impl RingBuf,
    payload: &impl RingBuf,
    buf_id: u16,
    zero_copy: bool,
) -> Result<u32> {
    header.write_at(0, Wire(req.in_header()).as_bytes().into())?;
    if let Some(op) = req.op_header() {
        if op.len() > OP_IN_OUT_SZ {
            return Err(EINVAL);
        }
        if !op.is_empty() {
            header.write_at(IN_OUT_HEADER_SZ, op.into())?;
        }
    }
    let mut off = 0usize;
    let zero_copied = req.for_each_in_chunk(zero_copy, |chunk| {
        payload.write_at(off, chunk)?;
        off += chunk.len();
        Ok(())
    })?;
    let payload_sz = u32::try_from(off + zero_copied).map_err(|_| EINVAL)?;
    let ent = furing_uring_ent_in_out {
        flags: if zero_copy {
            FURING_URING_ENT_ZERO_COPY
        } else {
            0
        },
        commit_id: req.unique(),
        payload_sz,
        buf_id,
        ..Default::default()
    };
    header.write_at(ENT_IN_OUT, Wire(ent).as_bytes().into())?;
    Ok(payload_sz)
}

/// Copies the server's reply from an entry into `req` (out header, then the output
/// arguments from the payload buffer, `payload_sz` bytes of it), as `fuse_dev_do_write()`
/// and Linux 7.3's ring check it: the out header's `unique` must be the request's, its
/// error within -511..0. With `zero_copy` the server wrote the page argument into the
/// registered folios itself: `payload_sz` counts those bytes but they are not in the
/// buffer. An `Err` is a bad reply (the request then fails with EIO).
pub(crate) fn reply_from_ring(
    req: &mut Req,
    header: &impl RingBuf,
    payload: &impl RingBuf,
    zero_copy: bool,
) -> Result {
    let oh = read_wire::<raw::fuse_out_header>(header, 0)?;
    let ent = read_wire::<furing_uring_ent_in_out>(header, ENT_IN_OUT)?;
    if oh.unique != req.unique() || oh.error <= -512 || oh.error > 0 {
        return Err(EINVAL);
    }
    req.set_out_header(oh);
    if oh.error != 0 {
        return Ok(());
    }
    let nbytes = ent.payload_sz as usize;
    if !zero_copy && nbytes > payload.len() {
        return Err(EINVAL);
    }
    req.fit_out_args(nbytes)?;
    req.zero_out_folios(zero_copy);
    let mut off = 0usize;
    req.for_each_out_chunk(zero_copy, |chunk| {
        let len = chunk.len();
        payload.read_at(off, chunk)?;
        off += len;
        Ok(())
    })
}

/// Reads a wire struct at `off` of `buf`.
fn read_wire<T: Default>(buf: &impl RingBuf, off: usize) -> Result<T>
where
    Wire<T>: FromBytes + AsBytes,
{
    let mut v = Wire(T::default());
    buf.read_at(off, v.as_bytes_mut().into())?;
    Ok(v.0)
}
