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

/// A type with a [`Ticker`] of its own; implemented by [`impl_has_ticker!`] only.
///
/// # Safety
///
/// `OFFSET` is the offset of a `Ticker<Self>` field of `Self`.
pub(crate) unsafe trait HasTicker: Tick {
    const OFFSET: usize;
}

/// Implements [`HasTicker`] for `$t` with its `Ticker<$t>` field `$field`.
macro_rules! impl_has_ticker {
    ($t:ty, $field:ident) => {
        const _: () = {
            // The field is a `Ticker` of the type itself.
            fn _check(x: &$t) -> &$crate::ffi::Ticker<$t> {
                &x.$field
            }
        };
        // SAFETY: `offset_of!` of the field, whose type `_check` proves.
        unsafe impl $crate::ffi::HasTicker for $t {
            const OFFSET: usize = core::mem::offset_of!($t, $field);
        }
    };
}
pub(crate) use impl_has_ticker;

/// A delayed work that runs its owner's [`Tick::tick`] every `period` from
/// [`Ticker::start`] until [`Ticker::stop`].
///
/// # Invariants
///
/// - `dw` is initialised with `run::<T>` and is the first field (`repr(C)`); `self` is the
///   `T::OFFSET` field of a pinned `T` ([`HasTicker`]).
/// - Once `stop` set `stopped`, the work is never queued again; once `stop` returned it is
///   neither queued nor running.
/// - The owner calls `stop` before it goes (and `Drop` stops it too, as a fallback), so
///   while the work is queued or runs, its `T` is alive.
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

    /// Queues the first run a period from now, unless already queued or stopped.
    pub(crate) fn start(&self) {
        let stopped = self.stopped.lock();
        if *stopped {
            return;
        }
        // SAFETY: `dw` is initialised (invariant); queueing a queued work does nothing. Under
        // `stopped`'s lock, so `stop` cannot slip in between the check and the queueing.
        unsafe { raw::furing_dwork_queue(self.dw.get(), self.period) };
        drop(stopped);
    }

    /// Stops the ticker for good: no run is left queued, none is running when this returns,
    /// and none is queued later. Process context; never from the tick itself.
    pub(crate) fn stop(&self) {
        *self.stopped.lock() = true;
        // SAFETY: `dw` is initialised (invariant). The cancel waits for a running tick and
        // keeps it from queueing itself again.
        unsafe { bindings::cancel_delayed_work_sync(self.dw.get()) };
    }
}

#[pinned_drop]
impl<T: HasTicker> PinnedDrop for Ticker<T> {
    /// The owner stopped it already (invariant); should it not have, this stops it (and
    /// sleeps: the owner then goes in process context).
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
    // SAFETY: `work` is the `work` member of the `dw` of a `Ticker<T>` (`dw` is its first
    // field, and a `delayed_work` starts with its `work`), the `T::OFFSET` field of a live
    // `T` (invariants: the owner stops the ticker, which waits for this run, before it
    // goes).
    let (ticker, owner) = unsafe {
        let ticker = &*work.cast::<Ticker<T>>();
        let owner = &*work.cast::<u8>().sub(T::OFFSET).cast::<T>();
        (ticker, owner)
    };
    if owner.tick() {
        ticker.start();
    }
}
