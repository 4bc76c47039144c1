// SPDX-License-Identifier: GPL-2.0

//! Ranges of the server's memory, as a REGISTER names them: read and checked with uaccess
//! only. A leaf module: the FFI layer and the queue logic both build on it.

use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// A range of the server's memory: address and length, as numbers (only ever
/// dereferenced through uaccess, in the server's own task).
#[derive(Clone, Copy)]
pub(crate) struct UserBuf {
    pub(crate) addr: usize,
    pub(crate) len: usize,
}

impl UserBuf {
    /// The address as a number.
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// The user pointer `off` bytes into the range.
    pub(crate) fn ptr(&self, off: usize) -> UserPtr {
        UserPtr::from_addr(self.addr.wrapping_add(off))
    }

    /// `len` bytes at `off` of this range (the caller keeps within it).
    pub(crate) fn slice(&self, off: usize, len: usize) -> Self {
        Self {
            addr: self.addr.wrapping_add(off),
            len,
        }
    }

    /// Checks that the first `len` bytes are mapped and writable, by writing a zero to
    /// their first and last byte.
    pub(crate) fn probe_writable(&self, len: usize) -> Result {
        if len == 0 || len > self.len {
            return Err(EINVAL);
        }
        let last = self.addr().checked_add(len - 1).ok_or(EFAULT)?;
        UserSlice::new(self.ptr(0), 1).writer().write_slice(&[0])?;
        UserSlice::new(UserPtr::from_addr(last), 1)
            .writer()
            .write_slice(&[0])
    }
}

/// Most iovecs a command passes: a headers region and a payload region per buffer class.
pub(crate) const MAX_IOVECS: usize = 5;

/// Reads an array of `n` (at most [`MAX_IOVECS`]) `struct iovec` from user address `addr`;
/// the entries after the first `n` are empty.
pub(crate) fn read_iovecs(addr: u64, n: usize) -> Result<[UserBuf; MAX_IOVECS]> {
    const IOV: usize = 16;
    const _: () = assert!(IOV == core::mem::size_of::<kernel::bindings::iovec>());
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    let mut raw_iov = [0u8; MAX_IOVECS * IOV];
    let bytes = raw_iov.get_mut(..n * IOV).ok_or(EINVAL)?;
    UserSlice::new(UserPtr::from_addr(addr), n * IOV)
        .reader()
        .read_slice(bytes)?;
    let word = |i: usize, k: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw_iov[i * IOV + k * 8..i * IOV + k * 8 + 8]);
        u64::from_ne_bytes(w) as usize
    };
    Ok(core::array::from_fn(|i| UserBuf {
        addr: word(i, 0),
        len: word(i, 1),
    }))
}

/// `EINVAL` unless `n` bytes at `off` lie within a buffer of `len` bytes.
pub(crate) fn check_range(off: usize, n: usize, len: usize) -> Result {
    if off.checked_add(n).is_none_or(|end| end > len) {
        return Err(EINVAL);
    }
    Ok(())
}
