// SPDX-License-Identifier: GPL-2.0

//! Ring entries and the slab that holds a queue's entries by slot.
//!
//! An entry is one request slot of the server: in basic mode its own header and payload
//! buffers in the server's memory; in a buffer-ring queue header slot `slot` of the
//! queue's headers region plus, per request, a payload buffer of the ring. Its [`State`]
//! owns exactly what belongs to it in that state -- the parked command while it waits,
//! the request while it is being sent -- so an entry can neither lose nor duplicate
//! either. The slab finds an entry by slot (a command's PDU names it) and by commit id,
//! and keeps the available ones on a stack: no operation searches the entries.

use crate::ffi::{DevId, ParkedCmd, Req, RingId};
use crate::user::UserBuf;
use crate::zerocopy::ZcRegistration;
use kernel::{
    prelude::*,
    time::{Instant, Monotonic},
};

/// A point in time, taken only while request timing is on.
pub(crate) type Stamp = Option<Instant<Monotonic>>;

/// A slot of a queue: the entry's index, its header slot in a buffer ring.
pub(crate) type SlotId = u16;

/// A payload buffer of a queue's buffer ring.
pub(crate) type BufId = u16;

/// Where an entry's request goes.
#[derive(Clone, Copy)]
pub(crate) enum EntryIo {
    /// Basic mode: the entry's own header slot and payload buffer.
    Basic { header: UserBuf, payload: UserBuf },
    /// A buffer-ring queue: the header slot of the entry's slot, payload buffers of the
    /// queue's ring.
    Ring,
}

/// A request the server holds, kept by its entry: found for its commit by the queue's
/// commit-id hash (the core's processing queue of a device, which every queue of a server
/// with one fd would share, is not used), ended by the commit, by its io_uring going away
/// or by teardown. A zero-copied one keeps its registration, which goes before it ends.
pub(crate) struct Held {
    pub(crate) req: Req,
    pub(crate) zc: Option<ZcRegistration>,
}

/// Where an entry is in its life; each state owns what belongs to it.
pub(crate) enum State {
    /// REGISTER is parking its command (marking it cancelable may sleep, so it happens
    /// outside the queue's lock). Teardown leaves the entry to REGISTER, which sees it.
    Registering,
    /// Waiting for a request, with the server's parked command.
    Available(ParkedCmd),
    /// Handed a request: task work in the server's task copies it in and completes `cmd`;
    /// nothing else may complete `cmd` meanwhile.
    Sending {
        cmd: ParkedCmd,
        req: Req,
        buf: Option<BufId>,
        queued: Stamp,
    },
    /// Task work copies the request in (it holds the command and the request).
    Copying { buf: Option<BufId> },
    /// The server holds the request `unique`, kept here (with its registration, when
    /// zero-copied).
    Userspace {
        unique: u64,
        buf: Option<BufId>,
        held: Held,
    },
    /// A COMMIT_AND_FETCH copies the reply back (it holds the request).
    Committing { buf: Option<BufId> },
    /// Teardown ended the request of a `Sending` entry (its task work may wait for the
    /// very task that tears down, e.g. a server unmounting its own mount); the pending
    /// task work completes `cmd` and drops the entry.
    Aborted(ParkedCmd),
}

impl State {
    /// The request the entry holds (`Copying` and `Committing` lent theirs to the task work
    /// or the command that copies).
    pub(crate) fn req(&self) -> Option<&Req> {
        match self {
            Self::Sending { req, .. }
            | Self::Userspace {
                held: Held { req, .. },
                ..
            } => Some(req),
            _ => None,
        }
    }

    /// The payload buffer the entry's request holds.
    pub(crate) fn buf(&self) -> Option<BufId> {
        match self {
            Self::Sending { buf, .. }
            | Self::Copying { buf }
            | Self::Userspace { buf, .. }
            | Self::Committing { buf } => *buf,
            Self::Registering | Self::Available(_) | Self::Aborted(_) => None,
        }
    }

    /// A short name, for debugfs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Available(_) => "available",
            Self::Sending { .. } => "sending",
            Self::Copying { .. } => "copying",
            Self::Userspace { .. } => "userspace",
            Self::Committing { .. } => "committing",
            Self::Aborted(_) => "aborted",
        }
    }
}

/// One entry.
pub(crate) struct Entry {
    pub(crate) io: EntryIo,
    /// The io_uring the entry was registered from (or last committed from).
    pub(crate) ring: RingId,
    /// The device (fd) the entry was registered on: only its commands commit the entry's
    /// requests (a device's replies go to its own requests, as on `/dev/fuse`), and its
    /// io_uring's end drops the entries of that device.
    pub(crate) dev: DevId,
    pub(crate) state: State,
    /// The next entry in the same commit-id bucket (while in `Userspace`).
    next: Option<SlotId>,
}

impl Entry {
    /// A new entry, being registered from `ring`.
    pub(crate) fn new(io: EntryIo, ring: RingId, dev: DevId) -> Self {
        Self {
            io,
            ring,
            dev,
            state: State::Registering,
            next: None,
        }
    }
}

/// Why a slot could not be had.
pub(crate) enum Full {
    /// The slab has no free slot; it may grow to this many.
    Grow(usize),
    /// An error for the REGISTER.
    Err(Error),
}

/// The entries of a queue, by slot.
///
/// # Invariants
///
/// - `avail` holds each slot at most once (`listed[slot]`, kept per slot across the
///   entries that come and go there), so it never outgrows its capacity, `slots.len()`.
/// - A slot is in the bucket chain of `unique` exactly while its entry is in `Userspace`
///   with that `unique`.
pub(crate) struct Slab {
    slots: KVec<Option<Entry>>,
    avail: KVec<SlotId>,
    listed: KVec<bool>,
    buckets: KVec<Option<SlotId>>,
    count: usize,
}

impl Slab {
    /// An empty slab of `n` slots (n <= 65536).
    pub(crate) fn new(n: usize) -> Result<Self> {
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut listed = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(None, GFP_KERNEL)?;
            listed.push(false, GFP_KERNEL)?;
        }
        let nb = n.next_power_of_two().max(8);
        let mut buckets = KVec::with_capacity(nb, GFP_KERNEL)?;
        for _ in 0..nb {
            buckets.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            slots,
            avail: KVec::with_capacity(n, GFP_KERNEL)?,
            listed,
            buckets,
            count: 0,
        })
    }

    /// Slots in all.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries registered.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The entries, with their slots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlotId, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as SlotId, e)))
    }

    /// Puts `entry` in slot `slot`, or in the first free one; gives it back otherwise.
    pub(crate) fn insert(
        &mut self,
        slot: Option<SlotId>,
        entry: Entry,
        max: usize,
    ) -> core::result::Result<SlotId, (Full, Entry)> {
        let i = match slot {
            Some(s) if usize::from(s) >= self.slots.len() => {
                return Err((Full::Err(EINVAL), entry))
            }
            Some(s) if self.slots[usize::from(s)].is_some() => {
                return Err((Full::Err(EEXIST), entry))
            }
            Some(s) => usize::from(s),
            None => match self.slots.iter().position(Option::is_none) {
                Some(i) => i,
                None if self.slots.len() >= max => return Err((Full::Err(ENOSPC), entry)),
                None => return Err((Full::Grow((self.slots.len() * 2).min(max)), entry)),
            },
        };
        self.slots[i] = Some(entry);
        self.count += 1;
        Ok(i as SlotId)
    }

    /// Moves every entry into `bigger` (same slots) and makes it this slab; returns the
    /// old, empty tables, to free after the lock.
    pub(crate) fn grow(&mut self, mut bigger: Slab) -> Slab {
        for (i, e) in self.slots.iter_mut().enumerate() {
            if let Some(mut e) = e.take() {
                e.next = None;
                bigger.slots[i] = Some(e);
            }
        }
        bigger.count = self.count;
        for i in 0..bigger.slots.len() {
            let slot = i as SlotId;
            match bigger.slots[i].as_ref().map(|e| &e.state) {
                Some(State::Available(_)) => bigger.push_avail(slot),
                Some(State::Userspace { unique, .. }) => {
                    let unique = *unique;
                    bigger.hash_insert(slot, unique);
                }
                _ => {}
            }
        }
        core::mem::replace(self, bigger)
    }

    /// The entry in `slot`.
    pub(crate) fn get_mut(&mut self, slot: SlotId) -> Option<&mut Entry> {
        self.slots.get_mut(usize::from(slot))?.as_mut()
    }

    /// Takes the entry in `slot` out (off the commit hash if it is there).
    pub(crate) fn remove(&mut self, slot: SlotId) -> Option<Entry> {
        if let Some(State::Userspace { unique, .. }) = self.get_mut(slot).map(|e| &e.state) {
            let unique = *unique;
            self.hash_remove(slot, unique);
        }
        let e = self.slots.get_mut(usize::from(slot))?.take()?;
        self.count -= 1;
        Some(e)
    }

    /// Puts `slot` (an `Available` entry) on the available stack.
    pub(crate) fn push_avail(&mut self, slot: SlotId) {
        let Some(listed) = self.listed.get_mut(usize::from(slot)) else {
            return;
        };
        if *listed {
            return;
        }
        *listed = true;
        // Never fails: each slot is on the stack at most once (invariant).
        let _ = self.avail.push_within_capacity(slot);
    }

    /// Takes an `Available` entry off the stack (slots whose entry left that state, or
    /// went, are dropped on the way).
    pub(crate) fn pop_avail(&mut self) -> Option<SlotId> {
        while let Some(slot) = self.avail.pop() {
            if let Some(listed) = self.listed.get_mut(usize::from(slot)) {
                *listed = false;
            }
            if matches!(
                self.get_mut(slot).map(|e| &e.state),
                Some(State::Available(_))
            ) {
                return Some(slot);
            }
        }
        None
    }

    /// Whether an `Available` entry is on the stack.
    pub(crate) fn has_avail(&mut self) -> bool {
        match self.pop_avail() {
            Some(slot) => {
                self.push_avail(slot);
                true
            }
            None => false,
        }
    }

    fn bucket(&self, unique: u64) -> usize {
        // Unique ids step by 2 (FUSE_REQ_ID_STEP): consecutive requests, distinct buckets.
        ((unique >> 1) as usize) & (self.buckets.len() - 1)
    }

    /// Hashes `slot` (now `Userspace` with `unique`) for its commit.
    pub(crate) fn hash_insert(&mut self, slot: SlotId, unique: u64) {
        let b = self.bucket(unique);
        let head = self.buckets[b];
        if let Some(e) = self.get_mut(slot) {
            e.next = head;
            self.buckets[b] = Some(slot);
        }
    }

    /// The `Userspace` entry holding request `unique`.
    pub(crate) fn hash_find(&mut self, unique: u64) -> Option<SlotId> {
        let mut cur = self.buckets[self.bucket(unique)];
        while let Some(slot) = cur {
            let e = self.get_mut(slot)?;
            if matches!(e.state, State::Userspace { unique: u, .. } if u == unique) {
                return Some(slot);
            }
            cur = e.next;
        }
        None
    }

    /// Unhashes `slot` (leaving `Userspace` with `unique`).
    pub(crate) fn hash_remove(&mut self, slot: SlotId, unique: u64) {
        let b = self.bucket(unique);
        let next = self.get_mut(slot).and_then(|e| e.next.take());
        if self.buckets[b] == Some(slot) {
            self.buckets[b] = next;
            return;
        }
        let mut cur = self.buckets[b];
        while let Some(s) = cur {
            let Some(e) = self.get_mut(s) else { return };
            if e.next == Some(slot) {
                e.next = next;
                return;
            }
            cur = e.next;
        }
    }
}
