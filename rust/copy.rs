// SPDX-License-Identifier: GPL-2.0

//! The copy state: moves a request's arguments into an entry's buffers and its reply back,
//! following the ring layout (`fuse_in_header` in the in/out slot, the opcode's in-struct in
//! the op slot, every other argument packed into the payload buffer).
//!
//! The walk over a request's arguments is written once; where the bytes go is a
//! [`RingBuf`]: the server's memory through `copy_to_user` ([`UserBuf`]), or a pinned
//! region through its kernel address ([`Buf::Kernel`]), chosen per region from the
//! queue's flags.

use crate::entry::UserBuf;
use crate::ffi::{raw, with_folio_chunks, ArgPiece, FuseReq};
use crate::pinned::PinnedRegion;
use crate::uapi::{
    furing_uring_ent_in_out, FURING_URING_ENT_ZERO_COPY, IN_OUT_HEADER_SZ, OP_IN_OUT_SZ,
};
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// Offset of `furing_uring_ent_in_out` in a request header.
const ENT_IN_OUT: usize = IN_OUT_HEADER_SZ + OP_IN_OUT_SZ;

/// A buffer of an entry, addressed from 0 to `len()`.
pub(crate) trait RingBuf {
    /// Bytes in the buffer.
    fn len(&self) -> usize;
    /// Copies `src` to `off`.
    fn write_at(&self, off: usize, src: &[u8]) -> Result;
    /// Copies from `off` into `dst`.
    fn read_at(&self, off: usize, dst: &mut [u8]) -> Result;
}

/// Copies of at least this many bytes to or from the server's memory go page by page
/// through kernel mappings of its pinned pages ([`crate::ffi::copy_user_page`]); smaller
/// ones (headers) with `copy_to_user()` / `copy_from_user()`.
const PAGE_COPY_MIN: usize = 512;

impl UserBuf {
    /// Copies `len` bytes between `kbuf` and `off` of the buffer, page by page.
    ///
    /// # Safety
    ///
    /// `kbuf` must be a kernel buffer valid for `len` bytes (of reads for `to_user`).
    unsafe fn copy_pages(&self, off: usize, kbuf: *mut u8, len: usize, to_user: bool) -> Result {
        let mut done = 0;
        while done < len {
            let uaddr = self.addr.as_const_ptr() as usize + off + done;
            let n = (len - done).min(kernel::page::PAGE_SIZE - uaddr % kernel::page::PAGE_SIZE);
            // SAFETY: `kbuf + done` has `n` bytes left (caller's guarantee).
            unsafe { crate::ffi::copy_user_page(uaddr, kbuf.add(done), n, to_user)? };
            done += n;
        }
        Ok(())
    }
}

impl RingBuf for UserBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn write_at(&self, off: usize, src: &[u8]) -> Result {
        crate::ffi::check_range(off, src.len(), self.len)?;
        if src.len() >= PAGE_COPY_MIN {
            // SAFETY: `src` is a kernel buffer of `src.len()` readable bytes.
            return unsafe { self.copy_pages(off, src.as_ptr().cast_mut(), src.len(), true) };
        }
        UserSlice::new(self.addr.wrapping_byte_add(off), src.len())
            .writer()
            .write_slice(src)
    }

    fn read_at(&self, off: usize, dst: &mut [u8]) -> Result {
        crate::ffi::check_range(off, dst.len(), self.len)?;
        if dst.len() >= PAGE_COPY_MIN {
            // SAFETY: `dst` is a kernel buffer of `dst.len()` writable bytes.
            return unsafe { self.copy_pages(off, dst.as_mut_ptr(), dst.len(), false) };
        }
        UserSlice::new(self.addr.wrapping_byte_add(off), dst.len())
            .reader()
            .read_slice(dst)
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
        Self::User(UserBuf {
            addr: UserPtr::from_addr(0),
            len: 0,
        })
    }
}

impl RingBuf for Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Self::User(u) => u.len,
            Self::Kernel(_, _, len) => *len,
        }
    }

    fn write_at(&self, off: usize, src: &[u8]) -> Result {
        match self {
            Self::User(u) => u.write_at(off, src),
            Self::Kernel(p, base, len) => {
                crate::ffi::check_range(off, src.len(), *len)?;
                p.write_at(base + off, src)
            }
        }
    }

    fn read_at(&self, off: usize, dst: &mut [u8]) -> Result {
        match self {
            Self::User(u) => u.read_at(off, dst),
            Self::Kernel(p, base, len) => {
                crate::ffi::check_range(off, dst.len(), *len)?;
                p.read_at(base + off, dst)
            }
        }
    }
}

/// A plain C struct of integers: every byte is initialised and any bytes are a value.
///
/// # Safety
///
/// Only for such structs.
unsafe trait Plain {}
// SAFETY: UAPI structs of integers only.
unsafe impl Plain for raw::fuse_in_header {}
// SAFETY: As above.
unsafe impl Plain for raw::fuse_out_header {}
// SAFETY: As above.
unsafe impl Plain for furing_uring_ent_in_out {}

/// The bytes of a plain-data UAPI struct.
fn bytes_of<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `T` is a plain C struct (integers only): every byte is initialised.
    unsafe { core::slice::from_raw_parts(core::ptr::from_ref(v).cast(), size_of::<T>()) }
}

/// The bytes of a plain-data UAPI struct, to fill in.
fn bytes_of_mut<T: Plain>(v: &mut T) -> &mut [u8] {
    // SAFETY: `T` is a plain C struct of integers: any bytes are a valid value.
    unsafe { core::slice::from_raw_parts_mut(core::ptr::from_mut(v).cast(), size_of::<T>()) }
}

/// Copies `req` into an entry: header slots and payload (buffer `buf_id` of a buffer
/// ring, or `FURING_URING_NO_BUF`). Returns the payload size.
///
/// With `zero_copy` the page argument's folios are registered with the server's io_uring
/// instead: they are skipped here but counted in `payload_sz`, and `ent_in_out.flags`
/// says so.
pub(crate) fn request_to_ring(
    req: FuseReq,
    header: &impl RingBuf,
    payload: &impl RingBuf,
    buf_id: u32,
    zero_copy: bool,
) -> Result<u32> {
    header.write_at(0, bytes_of(&req.in_header()))?;
    if let Some((ptr, len)) = req.op_header() {
        if len > OP_IN_OUT_SZ {
            return Err(EINVAL);
        }
        if len > 0 {
            // SAFETY: Input argument 0 is `len` readable bytes of the request we own.
            header.write_at(IN_OUT_HEADER_SZ, unsafe {
                core::slice::from_raw_parts(ptr, len)
            })?;
        }
    }
    let (mut off, mut zero_copied) = (0usize, 0usize);
    req.for_each_arg(false, 1, |piece| match piece {
        ArgPiece::Bytes(ptr, len) => {
            // SAFETY: An input argument of the request we own: `len` readable bytes.
            payload.write_at(off, unsafe { core::slice::from_raw_parts(ptr, len) })?;
            off += len;
            Ok(())
        }
        ArgPiece::Folio(_, _, len) if zero_copy => {
            zero_copied += len;
            Ok(())
        }
        ArgPiece::Folio(folio, offset, len) => with_folio_chunks(folio, offset, len, |chunk| {
            payload.write_at(off, chunk)?;
            off += chunk.len();
            Ok(())
        }),
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
    header.write_at(ENT_IN_OUT, bytes_of(&ent))?;
    Ok(payload_sz)
}

/// Copies the server's reply from an entry into `req` (out header, then the output
/// arguments from the payload buffer, `payload_sz` bytes of it). With `zero_copy` the
/// server wrote the page argument into the registered folios itself: `payload_sz` counts
/// those bytes but they are not in the buffer.
pub(crate) fn reply_from_ring(
    req: FuseReq,
    header: &impl RingBuf,
    payload: &impl RingBuf,
    zero_copy: bool,
) -> Result {
    let mut oh = raw::fuse_out_header::default();
    header.read_at(0, bytes_of_mut(&mut oh))?;
    let mut ent = furing_uring_ent_in_out::default();
    header.read_at(ENT_IN_OUT, bytes_of_mut(&mut ent))?;
    if oh.error <= -512 || oh.error > 0 {
        return Err(EINVAL);
    }
    oh.unique = req.unique();
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
    req.for_each_arg(true, 0, |piece| match piece {
        ArgPiece::Bytes(ptr, len) => {
            // SAFETY: An output argument of the request we own: `len` writable bytes.
            payload.read_at(off, unsafe { core::slice::from_raw_parts_mut(ptr, len) })?;
            off += len;
            Ok(())
        }
        ArgPiece::Folio(..) if zero_copy => Ok(()),
        ArgPiece::Folio(folio, offset, len) => with_folio_chunks(folio, offset, len, |chunk| {
            payload.read_at(off, chunk)?;
            off += chunk.len();
            Ok(())
        }),
    })
}
