// SPDX-License-Identifier: GPL-2.0

//! debugfs statistics: `furing/<connection>/queues`, one line per queue that has entries,
//! so tests can prove which path carried their traffic, and `classes`, one line per payload
//! buffer class.
//!
//! ```text
//! classic 3
//! qid entries sent in_flight flags bufs bufs_used pinned_bytes buf_wait_max zc_reqs zc_bytes \
//!     copy_in_us copy_out_us task_work_us wait_us
//! 0 4 120 1 0x7 2 1 9437184 3 0 0 310 2250 1800 5200
//! ```
//!
//! `flags` are the queue's REGISTER flags; `bufs` and `bufs_used` the payload buffers of
//! a buffer ring and those held by requests; `pinned_bytes` what its pinned regions hold;
//! `buf_wait_max` the most requests seen waiting for a payload buffer at once; `zc_reqs`
//! and `zc_bytes` the requests whose data pages were zero-copied; `copy_in_us`,
//! `copy_out_us` and `task_work_us` the time spent copying requests to the ring,
//! copying replies back, and between handing a request to an entry and its task work
//! starting; `wait_us` the time requests waited for an entry or a payload buffer (all
//! requests, cumulative, while `furing/timing` is 1: off by default, as the clock reads
//! cost every request). `furing/zero_copy` counts the registrations io_uring holds, over
//! all connections; `furing/<connection>/entries` lists the state of every entry.

use crate::ring::Ring;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    str::CString,
    sync::Arc,
    uaccess::UserSliceReader,
};

/// `/sys/kernel/debug/furing` and its module-wide file.
struct Root {
    dir: Dir,
    _zero_copy: Option<Pin<KBox<File<()>>>>,
    _timing: Option<Pin<KBox<File<()>>>>,
}

/// Whether requests are timed (`furing/timing`).
static TIMING: AtomicBool = AtomicBool::new(false);

/// Whether requests are timed: the `*_us` columns of the queue statistics.
pub(crate) fn timing() -> bool {
    TIMING.load(Ordering::Relaxed)
}

fn show_timing(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", u8::from(timing()))
}

/// `furing/timing`: `1` (or `Y`) times requests from now on, `0` (or `N`) stops.
fn write_timing(_: &(), r: &mut UserSliceReader) -> Result {
    let mut c = [0u8; 1];
    r.read_slice(&mut c)?;
    let on = match c[0] {
        b'1' | b'Y' | b'y' => true,
        b'0' | b'N' | b'n' => false,
        _ => return Err(EINVAL),
    };
    TIMING.store(on, Ordering::Relaxed);
    Ok(())
}

kernel::sync::global_lock! {
    // SAFETY: `init()` is called by the module initializer before any mount.
    unsafe(uninit) static ROOT: Mutex<Option<Root>> = None;
}

/// `furing/zero_copy`: zero-copy registrations io_uring holds, over all connections (it
/// must come back to 0 once the servers' rings have let go of them).
fn show_zero_copy(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "live_registrations {}", crate::zerocopy::live())
}

/// Creates `/sys/kernel/debug/furing`; called once from module init.
pub(crate) fn init() {
    // SAFETY: Called once, from the module initializer, before any use.
    unsafe { ROOT.init() };
    let dir = Dir::new(c"furing");
    let zero_copy = KBox::pin_init(
        dir.read_callback_file(c"zero_copy", (), &show_zero_copy),
        GFP_KERNEL,
    )
    .ok();
    let timing = KBox::pin_init(
        dir.read_write_callback_file(c"timing", (), &show_timing, &write_timing),
        GFP_KERNEL,
    )
    .ok();
    *ROOT.lock() = Some(Root {
        dir,
        _zero_copy: zero_copy,
        _timing: timing,
    });
}

/// Removes `/sys/kernel/debug/furing` (no connection is left: each holds the module).
pub(crate) fn exit() {
    drop(ROOT.lock().take());
}

/// The statistics files of one connection (`queues`, `entries`, `classes`); removed when
/// dropped.
pub(crate) struct StatsFile {
    _queues: Pin<KBox<File<Arc<Ring>>>>,
    _entries: Pin<KBox<File<Arc<Ring>>>>,
    _classes: Pin<KBox<File<Arc<Ring>>>>,
}

/// `furing/<conn>/classes`: `qid class buf_size bufs in_use waits` per payload buffer class
/// of every buffer-ring queue (one class without `FURING_URING_BUF_CLASSES`): its buffers,
/// those requests hold now, and the requests that waited for one of its buffers.
fn show_classes(ring: &Arc<Ring>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "qid class buf_size bufs in_use waits")?;
    let Ok(mut classes) =
        KVec::with_capacity(crate::uapi::FURING_URING_MAX_BUF_CLASSES, GFP_KERNEL)
    else {
        return Err(fmt::Error);
    };
    for q in ring.queues() {
        classes.clear();
        q.class_counts(&mut classes);
        for (k, (size, bufs, used, waits)) in classes.iter().enumerate() {
            writeln!(f, "{} {} {} {} {} {}", q.qid(), k, size, bufs, used, waits)?;
        }
    }
    Ok(())
}

/// `furing/<conn>/entries`: `qid slot state` per registered entry (state: registering,
/// available, sending, copying, userspace, committing, aborted), so tests can see that a
/// command is parked rather than infer it from a CQE that did not come.
fn show_entries(ring: &Arc<Ring>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "qid slot state")?;
    let Ok(mut states) = KVec::with_capacity(crate::ring::MAX_ENTRIES, GFP_KERNEL) else {
        return Err(fmt::Error);
    };
    for q in ring.queues() {
        states.clear();
        q.entry_states(&mut states);
        for (slot, state) in states.iter() {
            writeln!(f, "{} {} {}", q.qid(), slot, state)?;
        }
    }
    Ok(())
}

fn show(ring: &Arc<Ring>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "classic {}", ring.classic_count())?;
    writeln!(
        f,
        "qid entries sent in_flight flags bufs bufs_used pinned_bytes buf_wait_max zc_reqs zc_bytes \
         copy_in_us copy_out_us task_work_us wait_us"
    )?;
    for q in ring.queues() {
        let (entries, in_flight) = q.counts();
        if entries > 0 || q.sent() > 0 {
            let (flags, bufs, used, pinned, wait_max) = q.bufring_counts();
            let (zc_reqs, zc_bytes) = q.zero_copied();
            let [wait, task_work, copy_in, copy_out] = q.times_us();
            writeln!(
                f,
                "{} {} {} {} {:#x} {} {} {} {} {} {} {} {} {} {}",
                q.qid(),
                entries,
                q.sent(),
                in_flight,
                flags,
                bufs,
                used,
                pinned,
                wait_max,
                zc_reqs,
                zc_bytes,
                copy_in,
                copy_out,
                task_work,
                wait
            )?;
        }
    }
    Ok(())
}

/// Creates `furing/<conn_id>/queues` and `entries` for `ring`; `None` without debugfs.
pub(crate) fn create(conn_id: u32, ring: Arc<Ring>) -> Option<StatsFile> {
    let root = ROOT.lock().as_ref()?.dir.clone();
    let name = CString::try_from_fmt(fmt!("{conn_id}")).ok()?;
    let dir = root.subdir(&name);
    let queues = KBox::pin_init(
        dir.read_callback_file(c"queues", ring.clone(), &show),
        GFP_KERNEL,
    )
    .ok()?;
    let entries = KBox::pin_init(
        dir.read_callback_file(c"entries", ring.clone(), &show_entries),
        GFP_KERNEL,
    )
    .ok()?;
    let classes = KBox::pin_init(
        dir.read_callback_file(c"classes", ring, &show_classes),
        GFP_KERNEL,
    )
    .ok()?;
    Some(StatsFile {
        _queues: queues,
        _entries: entries,
        _classes: classes,
    })
}
