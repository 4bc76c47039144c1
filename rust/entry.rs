// SPDX-License-Identifier: GPL-2.0

//! A ring entry: one request slot of the server (a header buffer and a payload buffer in
//! the server's memory) and, while it waits for a request, the server's parked command.

use crate::ffi::{FuseReq, ParkedCmd, Sqe, UringCmd};

use crate::ring::{Limits, HEADER_SIZE};
use kernel::{prelude::*, uaccess::UserPtr};

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

/// One entry.
pub(crate) struct Entry {
    id: u64,
    state: EntryState,
    cmd: Option<ParkedCmd>,
    #[allow(dead_code)]
    pub(crate) header: UserBuf,
    pub(crate) payload: UserBuf,
}

impl Entry {
    /// Validates a REGISTER's buffers (basic mode: two iovecs, a header slot and a payload
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
        Ok(Self {
            id: 0,
            state: EntryState::Available,
            cmd: None,
            header,
            payload,
        })
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
