// SPDX-License-Identifier: GPL-2.0

//! A ring entry: one request slot of the server and, while it waits for a request, the
//! server's parked command. In basic mode the slot is the entry's own header and payload
//! buffers in the server's memory; in a buffer-ring queue it is header slot `buf_index`
//! of the queue's headers region plus, per request, a payload buffer of the ring.

use crate::bufring::BufRing;
use crate::copy::Buf;
use crate::ffi::{FuseReq, ParkedCmd, Sqe, UringCmd};
use crate::ring::{Limits, HEADER_SIZE};
use crate::uapi::FURING_URING_NO_BUF;
use crate::zerocopy::ZcRegistration;
use kernel::{
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
    uaccess::UserPtr,
};

/// Where an entry is in its life.
pub(crate) enum EntryState {
    /// Registered, with its command parked, waiting for a request.
    Available,
    /// A request is on its way to the server: task work copies it and completes the
    /// parked command (which must not be completed any other way meanwhile).
    Sending(FuseReq),
    /// Task work copies the request into the entry's buffers.
    Copying,
    /// The server holds the request `commit_id` (hashed on the device's processing
    /// queue, where an abort finds it).
    Userspace(u64),
    /// Being registered, or a reply is being committed (the request ends meanwhile), or
    /// the command is being parked again.
    Busy,
}

/// A user buffer: address and length in the server's memory.
#[derive(Clone, Copy)]
pub(crate) struct UserBuf {
    pub(crate) addr: UserPtr,
    pub(crate) len: usize,
}

// SAFETY: A `UserBuf` is an address and a length, only dereferenced through uaccess in the
// server's own task (which checks it); passing the numbers between threads is harmless.
unsafe impl Send for UserBuf {}
// SAFETY: As above; shared access only reads the numbers.
unsafe impl Sync for UserBuf {}

/// Where an entry's request goes.
#[derive(Clone)]
pub(crate) enum EntryIo {
    /// Basic mode: the entry's own buffers.
    Basic { header: UserBuf, payload: UserBuf },
    /// Buffer ring: header slot `slot`, and payload buffer `buf` while a request holds one.
    Ring {
        br: Arc<BufRing>,
        slot: u32,
        buf: Option<u32>,
    },
}

impl EntryIo {
    /// Whether `req` goes zero-copy through this entry (see [`BufRing::zero_copies`]):
    /// the io_uring buffer index (the entry's header slot), direction and data size.
    pub(crate) fn zero_copy(&self, req: FuseReq) -> Option<(u32, u8, usize)> {
        match self {
            Self::Ring { br, slot, .. } => br.zero_copies(req).map(|(dir, len)| (*slot, dir, len)),
            Self::Basic { .. } => None,
        }
    }

    /// The header slot, the payload buffer and the `buf_id` the server is told.
    pub(crate) fn bufs(&self) -> (Buf<'_>, Buf<'_>, u32) {
        match self {
            Self::Basic { header, payload } => (Buf::User(*header), Buf::User(*payload), 0),
            Self::Ring { br, slot, buf } => (
                br.header(*slot),
                br.buffer(*buf),
                buf.unwrap_or(FURING_URING_NO_BUF),
            ),
        }
    }
}

/// One entry.
pub(crate) struct Entry {
    id: u64,
    state: EntryState,
    cmd: Option<ParkedCmd>,
    io: EntryIo,
    /// Zero-copy: the registration of the request the server holds.
    zc: Option<ZcRegistration>,
    /// When the entry's current request was handed to it (for the task-work latency).
    queued_at: Option<Instant<Monotonic>>,
}

impl Entry {
    /// Validates a basic-mode REGISTER's buffers (two iovecs, a header slot and a payload
    /// buffer large enough for any request) and makes an entry for them.
    pub(crate) fn new(sqe: &Sqe, limits: Limits) -> Result<Self> {
        if sqe.len != 2 {
            return Err(EINVAL);
        }
        let [header, payload] = crate::ffi::read_iovecs::<2>(sqe.addr)?;
        if header.len < HEADER_SIZE || payload.len < limits.max_payload {
            return Err(EINVAL);
        }
        // The buffers must be there and writable now, not only when a request comes:
        // clear the entry's in/out slot and probe both ends of the payload.
        crate::ffi::probe_user_writable(header.addr, HEADER_SIZE)?;
        crate::ffi::probe_user_writable(payload.addr, payload.len)?;
        Ok(Self::with_io(EntryIo::Basic { header, payload }))
    }

    /// An entry of a buffer-ring queue, in header slot `slot` (< the ring's depth).
    pub(crate) fn new_in_ring(br: Arc<BufRing>, slot: u32) -> Self {
        Self::with_io(EntryIo::Ring {
            br,
            slot,
            buf: None,
        })
    }

    fn with_io(io: EntryIo) -> Self {
        Self {
            id: 0,
            state: EntryState::Available,
            cmd: None,
            io,
            zc: None,
            queued_at: None,
        }
    }

    /// Where the entry's request goes (cloned, to copy outside the queue's lock).
    pub(crate) fn io(&self) -> EntryIo {
        self.io.clone()
    }

    /// The header slot of a buffer-ring entry.
    pub(crate) fn slot(&self) -> Option<u32> {
        match &self.io {
            EntryIo::Ring { slot, .. } => Some(*slot),
            EntryIo::Basic { .. } => None,
        }
    }

    /// Notes when a request was handed to the entry (if timing is on).
    pub(crate) fn set_queued_at(&mut self, t: Option<Instant<Monotonic>>) {
        self.queued_at = t;
    }

    /// When the entry's request was handed to it.
    pub(crate) fn take_queued_at(&mut self) -> Option<Instant<Monotonic>> {
        self.queued_at.take()
    }

    /// Keeps the zero-copy registration of the entry's request.
    pub(crate) fn set_zc(&mut self, zc: ZcRegistration) {
        self.zc = Some(zc);
    }

    /// Takes the zero-copy registration of the entry's request out (to unregister it).
    pub(crate) fn take_zc(&mut self) -> Option<ZcRegistration> {
        self.zc.take()
    }

    /// Gives the entry payload buffer `buf` of its ring.
    pub(crate) fn set_buf(&mut self, id: u32) {
        if let EntryIo::Ring { buf, .. } = &mut self.io {
            *buf = Some(id);
        }
    }

    /// Takes the entry's payload buffer back (to free it).
    pub(crate) fn take_buf(&mut self) -> Option<u32> {
        match &mut self.io {
            EntryIo::Ring { buf, .. } => buf.take(),
            EntryIo::Basic { .. } => None,
        }
    }

    /// The entry's id within its queue.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Sets the entry's id within its queue.
    pub(crate) fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Parks a command in the entry.
    pub(crate) fn set_cmd(&mut self, cmd: ParkedCmd) {
        self.cmd = Some(cmd);
    }

    /// The entry's state.
    pub(crate) fn state(&self) -> &EntryState {
        &self.state
    }

    /// Moves the entry to `state`, returning the previous one.
    pub(crate) fn set_state(&mut self, state: EntryState) -> EntryState {
        core::mem::replace(&mut self.state, state)
    }

    /// Whether a request is on its way to the server or in its hands.
    pub(crate) fn has_request(&self) -> bool {
        matches!(
            self.state,
            EntryState::Sending(_) | EntryState::Copying | EntryState::Userspace(_)
        )
    }

    /// Whether the entry waits for a request with a parked command.
    pub(crate) fn is_available(&self) -> bool {
        matches!(self.state, EntryState::Available) && self.cmd.is_some()
    }

    /// Whether `cmd` is the entry's parked command.
    pub(crate) fn holds(&self, cmd: &UringCmd) -> bool {
        self.cmd.as_ref().is_some_and(|p| p.is(cmd))
    }

    /// Takes the parked command out (to complete it).
    pub(crate) fn take_cmd(&mut self) -> Option<ParkedCmd> {
        self.cmd.take()
    }

    /// The parked command, to schedule task work on.
    pub(crate) fn cmd(&self) -> Option<&ParkedCmd> {
        self.cmd.as_ref()
    }
}

// SAFETY: The user buffers are addresses in the server's memory, only dereferenced
// through uaccess from the server's own task; the request and command handles are owned
// by the entry and may be handed between tasks.
unsafe impl Send for Entry {}
