// SPDX-License-Identifier: GPL-2.0

//! A periodic work item embedded in its owner, which stops it before it goes: the kernel
//! crate's delayed work is queued with an owning pointer and has no cancel, so a pending
//! one would keep its owner (and with a connection, the module) alive until it runs.

use super::raw;
use core::marker::PhantomData;
use kernel::{bindings, new_spinlock, prelude::*, sync::SpinLock, time::Jiffies, types::Opaque};

/// What a [`Ticker`] runs, in process context (the system work queue).
pub(crate) trait Tick: Sync + Sized {
    /// One run; returns whether to run again a period later.
    fn tick(&self) -> bool;
}

/// A type with a [`Ticker`] of its own; implemented by [`impl_has_ticker!`] only. A ticker
/// is started and stopped only through its owner, so the one that runs is always the field
/// `run` finds the owner from.
///
/// # Safety
///
/// `OFFSET` is the offset of the `Ticker<Self>` field that `ticker` returns.
pub(crate) unsafe trait HasTicker: Tick {
    const OFFSET: usize;

    /// The owner's ticker.
    fn ticker(&self) -> &Ticker<Self>;

    /// Queues the first tick a period from now, unless already queued or stopped.
    fn start_ticker(&self) {
        self.ticker().start();
    }

    /// Stops the ticker for good: no tick is left queued, none is running when this
    /// returns, and none is queued later. Process context; never from the tick itself.
    fn stop_ticker(&self) {
        self.ticker().stop();
    }
}

/// Implements [`HasTicker`] for `$t` with its `Ticker<$t>` field `$field`.
macro_rules! impl_has_ticker {
    ($t:ty, $field:ident) => {
        // SAFETY: `offset_of!` of the very field `ticker` returns (a `Ticker<$t>`, as its
        // signature proves).
        unsafe impl $crate::ffi::HasTicker for $t {
            const OFFSET: usize = core::mem::offset_of!($t, $field);

            fn ticker(&self) -> &$crate::ffi::Ticker<$t> {
                &self.$field
            }
        }
    };
}
pub(crate) use impl_has_ticker;

/// A delayed work that runs its owner's [`Tick::tick`] every `period` from
/// [`HasTicker::start_ticker`] until [`HasTicker::stop_ticker`].
///
/// # Invariants
///
/// - `dw` is initialised with `run::<T>` and is the first field (`repr(C)`). Only
///   `start`, reached through the owner's [`HasTicker::ticker`] (or from `run`, for the
///   same ticker), queues it: a queued ticker is the `T::OFFSET` field of a pinned `T`.
/// - Once `stop` set `stopped`, the work is never queued again; once `stop` returned it is
///   neither queued nor running.
/// - The owner stops it before it goes (declared as the owner's first field, `Drop` stops
///   it too before the owner's other fields go), so while the work is queued or runs,
///   its `T` is alive.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Ticker<T: HasTicker> {
    #[pin]
    dw: Opaque<bindings::delayed_work>,
    /// Set by `stop`; `start` queues nothing once it is.
    #[pin]
    stopped: SpinLock<bool>,
    period: Jiffies,
    _owner: PhantomData<T>,
}

// SAFETY: Kernel work items are usable from any thread.
unsafe impl<T: HasTicker> Send for Ticker<T> {}
// SAFETY: As above; the work queue's own calls serialise on the work item.
unsafe impl<T: HasTicker> Sync for Ticker<T> {}

impl<T: HasTicker> Ticker<T> {
    /// A stopped-until-started ticker with `period` between runs.
    pub(crate) fn new(period: Jiffies) -> impl PinInit<Self> {
        pin_init!(Self {
            dw <- Opaque::ffi_init(|dw: *mut bindings::delayed_work| {
                // SAFETY: `dw` is the pinned delayed work being initialised.
                unsafe { raw::furing_dwork_init(dw, Some(run::<T>)) }
            }),
            stopped <- new_spinlock!(false),
            period,
            _owner: PhantomData,
        })
    }

    fn start(&self) {
        let stopped = self.stopped.lock();
        if *stopped {
            return;
        }
        // SAFETY: `dw` is initialised (invariant); queueing a queued work does nothing. Under
        // `stopped`'s lock, so `stop` cannot slip in between the check and the queueing.
        unsafe { raw::furing_dwork_queue(self.dw.get(), self.period) };
        drop(stopped);
    }

    fn stop(&self) {
        *self.stopped.lock() = true;
        // SAFETY: `dw` is initialised (invariant). The cancel waits for a running tick and
        // keeps it from queueing itself again.
        unsafe { bindings::cancel_delayed_work_sync(self.dw.get()) };
    }
}

#[pinned_drop]
impl<T: HasTicker> PinnedDrop for Ticker<T> {
    /// The owner stopped it already; should it not have, this stops it before the owner's
    /// other fields go (and sleeps: the owner then goes in process context).
    fn drop(self: Pin<&mut Self>) {
        let stopped = *self.stopped.lock();
        if !stopped {
            self.stop();
        }
    }
}

/// The work function of a `Ticker<T>`'s delayed work.
///
/// # Safety
///
/// Called by the work queue for the `dw.work` of a `Ticker<T>` that is queued.
unsafe extern "C" fn run<T: HasTicker>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` member of the `dw` of a queued `Ticker<T>` (`dw` is its
    // first field, and a `delayed_work` starts with its `work`), which is the `T::OFFSET`
    // field of a `T` (only the owner's ticker is ever queued), alive while this runs (the
    // owner stops the ticker, which waits for this run, before it goes).
    let (ticker, owner) = unsafe {
        let ticker = &*work.cast::<Ticker<T>>();
        let owner = &*work.cast::<u8>().sub(T::OFFSET).cast::<T>();
        (ticker, owner)
    };
    if owner.tick() {
        ticker.start();
    }
}
