//! A furing connection: the transport side of one FUSE connection.
//!
//! The FUSE core calls the connection's `fuse_iqueue_ops` for every request, forget and
//! interrupt ([`ffi::FiqOps`] of [`Conn`], installed right after the channel is created:
//! `fuse_dev_chan_new()` sets the classic `/dev/fuse` ones, which furing keeps and calls
//! for everything the classic read/write path carries). `fiq->priv` owns one reference on
//! the [`Conn`]; the core drops it through `release` when the last connection reference
//! goes (process context).

use crate::ffi::{
    self, impl_has_ticker, raw, ClassicQueue, FiqOps, FuseDev, HasTicker, InitReq, ModuleRef, Req,
    Tick, Ticker, Transport, UringCmd,
};
use crate::ring::{Limits, Ring};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    bindings,
    ffi::c_int,
    impl_has_work, new_mutex, new_work,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    workqueue::{Work, WorkItem},
};

/// The iqueue operations of every furing connection.
pub(crate) static FIQ_OPS: FiqOps<Conn> = FiqOps::new();

/// Transport state of one FUSE connection.
#[pin_data]
pub(crate) struct Conn {
    /// The request-timeout scan of the requests furing holds, from INIT to release. First:
    /// dropped (stopped) before the fields its tick reads.
    #[pin]
    timeout_scan: Ticker<Conn>,
    /// The server answered FUSE_INIT with `FUSE_OVER_IO_URING`.
    server_uring: AtomicBool,
    /// The per-CPU queues of the server's entries, and the core's classic path.
    ring: Arc<Ring>,
    /// `furing/<conn>/queues` in debugfs, from `fill_super` (the connection has its device
    /// number then) to `kill_sb` (the number may be reused by the next mount at once).
    #[pin]
    stats: Mutex<Option<crate::stats::StatsFile>>,
    /// Set once the abort was seen.
    aborted: AtomicBool,
    /// Tears the ring down after an abort, in process context.
    #[pin]
    abort_work: Work<Conn>,
    /// Keeps the module (and so `FIQ_OPS`) alive while the FUSE core can call into it.
    _module: ModuleRef,
}

impl_has_work! {
    impl HasWork<Self> for Conn { self.abort_work }
}

impl_has_ticker!(Conn, timeout_scan);

/// How often the request-timeout scan runs: the core's own scan period
/// (`FUSE_TIMEOUT_TIMER_FREQ`, 15 s; a timeout is at least that long).
const TIMEOUT_SCAN_MS: u32 = 15_000;

impl Tick for Conn {
    /// What `fuse_check_timeout()` does for the core's lists, for the requests waiting on
    /// furing's queues and those its entries hold (which none of the core's lists has):
    /// a request older than the channel's timeout aborts the connection. Runs again while
    /// the channel has a timeout and lives.
    fn tick(&self) -> bool {
        let classic = self.ring.classic_path();
        let timeout = classic.req_timeout();
        if timeout == 0 || !self.ring_usable() {
            return false;
        }
        if self.ring.expired(timeout) {
            classic.abort();
            return false;
        }
        true
    }
}

impl WorkItem for Conn {
    type Pointer = Arc<Conn>;

    fn run(this: Arc<Conn>) {
        // Completes every parked command with -ENOTCONN: the server stops waiting.
        this.ring.stop();
        // `this` may be the last reference, and with it the module's: dropped last, on
        // furing's own work queue, which module exit drains before the text goes.
        drop(this);
    }
}

impl Conn {
    /// A connection around the core's classic path of its new channel.
    pub(crate) fn new(classic: ClassicQueue) -> Result<Arc<Self>> {
        let ring = Arc::new(
            Ring::new(kernel::cpu::nr_cpu_ids() as usize, classic)?,
            GFP_KERNEL,
        )?;
        Arc::pin_init(
            pin_init!(Conn {
                timeout_scan <- Ticker::new(kernel::time::msecs_to_jiffies(TIMEOUT_SCAN_MS)),
                server_uring: AtomicBool::new(false),
                ring,
                stats <- new_mutex!(None),
                aborted: AtomicBool::new(false),
                abort_work <- new_work!("furing::Conn::abort_work"),
                _module: ModuleRef::this(),
            }),
            GFP_KERNEL,
        )
    }

    /// Whether the server asked for io-uring in its FUSE_INIT reply.
    pub(crate) fn server_uring(&self) -> bool {
        self.server_uring.load(Ordering::Acquire)
    }

    /// Whether requests may go over the ring: io-uring negotiated and not aborted.
    /// (The abort itself sends the background queue with `fiq->connected` still set; those
    /// requests go the classic way, where the abort ends them.)
    fn ring_usable(&self) -> bool {
        self.server_uring()
            && !self.aborted.load(Ordering::Acquire)
            && self.ring.classic_path().connected()
    }

    /// Publishes the statistics of the connection under its id (`fc->dev`).
    pub(crate) fn publish_stats(&self, conn_id: u32) {
        *self.stats.lock() = crate::stats::create(conn_id, self.ring.clone());
    }

    /// Removes the statistics (the superblock goes).
    pub(crate) fn unpublish_stats(&self) {
        drop(self.stats.lock().take());
    }
}

const OVER_IO_URING_HI: u32 = (raw::FUSE_OVER_IO_URING >> 32) as u32;
const BUFPOOL_HI: u32 = (raw::FUSE_HAS_IO_URING_BUFPOOL >> 32) as u32;

impl Transport for Conn {
    /// Delivers one request. May run under `fch->bg_lock`, so it neither sleeps nor ends
    /// background requests itself.
    fn send_req(this: ArcBorrow<'_, Self>, mut req: Req) {
        if this.ring_usable() && req.is_reply() {
            this.ring.classic_path().assign_unique(&mut req);
            let cpu = kernel::cpu::CpuId::current().as_u32() as usize;
            match this.ring.send(req, cpu) {
                Ok(()) => return,
                Err(r) => req = r,
            }
        }
        this.ring.count_classic();
        this.ring.classic_path().send(req);
    }

    /// FUSE_INIT: offers io-uring to the server (and not 7.3's bufpools) and hooks the
    /// reply.
    ///
    /// INIT always travels the classic path. Its request is built by the core
    /// (`fuse_new_init`, static) and its reply handled by `process_init_reply` (static),
    /// so furing adjusts the request here and sees the reply first: it records whether the
    /// server wants io-uring and clears the bit before the core sees it, so the core never
    /// builds its own ring for this connection even with `fuse.enable_uring=1`.
    fn send_init(this: ArcBorrow<'_, Self>, init: &mut InitReq<'_>) {
        this.ring.count_classic();
        let Some(inarg) = init.in_arg() else { return };
        if inarg.flags & raw::FUSE_INIT_EXT == 0 {
            return;
        }
        inarg.flags2 = (inarg.flags2 | OVER_IO_URING_HI) & !BUFPOOL_HI;
        // A synchronous INIT (FUSE_DEV_IOC_SYNC_INIT) has no reply hook: no io-uring.
        if init.hook_reply::<Conn>(this.into()).is_err() {
            if let Some(inarg) = init.in_arg() {
                inarg.flags2 &= !OVER_IO_URING_HI;
            }
        }
    }

    fn init_reply(this: Arc<Self>, out: Option<&mut raw::fuse_init_out>) {
        if let Some(out) = out {
            let wants = out.flags & raw::FUSE_INIT_EXT != 0 && out.flags2 & OVER_IO_URING_HI != 0;
            this.server_uring.store(wants, Ordering::Release);
            if wants {
                // The core sets the channel's request timeout after this hook: the first
                // scan reads it.
                this.start_ticker();
            }
            out.flags2 &= !(OVER_IO_URING_HI | BUFPOOL_HI);
        }
    }

    /// On every wake-up of `fiq->waitq` (its lock held): queues the teardown once the
    /// abort is seen.
    fn woken(this: ArcBorrow<'_, Self>, aborted: bool) {
        if aborted && !this.aborted.swap(true, Ordering::AcqRel) {
            let conn: Arc<Conn> = this.into();
            // Already queued means the teardown is coming anyway (and `fiq->priv` holds
            // another reference, so this is not the last). The queue exists while any
            // connection does (each holds the module).
            ffi::with_wq(|wq| {
                let _ = wq.enqueue(conn);
            });
        }
    }

    fn task_work(this: ArcBorrow<'_, Self>, cmd: UringCmd, cancel: bool, issue_flags: u32) {
        this.ring.send_in_task(cmd, cancel, issue_flags);
    }

    /// The channel goes: whatever is still parked completes now (process context).
    fn release(this: Arc<Self>) {
        this.stop_ticker();
        this.ring.stop();
    }
}

/// `file_operations::release` of `/dev/furing`, before the core's: the requests that the
/// file's ring entries hold end (the core's release ends those on the file's processing
/// queue; furing's are on none).
pub(crate) fn dev_release(dev: &FuseDev) {
    if let Some(conn) = dev.chan().and_then(|fch| fch.transport::<Conn>()) {
        conn.ring.forget_dev(dev.id());
    }
}

/// `file_operations::uring_cmd` of `/dev/furing`: `cmd` is a furing command on a file
/// whose device is `dev`; returns `-EIOCBQUEUED` when furing keeps it, else its result.
pub(crate) fn uring_cmd(cmd: UringCmd, dev: &FuseDev, issue_flags: u32) -> c_int {
    let cancel = issue_flags & ffi::IO_URING_F_CANCEL != 0;
    // The command holds its `/dev/furing` file, whose device holds the channel.
    let Some(fch) = dev.chan() else {
        // Not mounted (or the mount went): nothing can be parked here.
        return if cancel { 0 } else { EPERM.to_errno() };
    };
    let Some(conn) = fch.transport::<Conn>() else {
        return EINVAL.to_errno();
    };
    if cancel {
        conn.ring.cancel(cmd, issue_flags);
        return 0;
    }
    if issue_flags & ffi::IO_URING_F_SQE128 == 0 {
        // The command does not fit a 64-byte SQE.
        return EINVAL.to_errno();
    }
    let state = fch.state();
    let res = if !state.initialized {
        // FUSE_INIT not answered yet: the server retries.
        Err(EAGAIN)
    } else if !state.connected || conn.aborted.load(Ordering::Acquire) {
        Err(ENOTCONN)
    } else if !conn.server_uring() {
        Err(EOPNOTSUPP)
    } else {
        let sqe = cmd.sqe();
        let limits = Limits {
            max_payload: state.max_payload,
        };
        match cmd.op() {
            raw::furing_uring_cmd_FURING_URING_CMD_REGISTER => {
                conn.ring.register(cmd, &sqe, limits, issue_flags)
            }
            raw::furing_uring_cmd_FURING_URING_CMD_COMMIT_AND_FETCH => {
                conn.ring.commit_and_fetch(cmd, &sqe, issue_flags)
            }
            _ => Err(EINVAL),
        }
    };
    match res {
        Ok(()) => -(bindings::EIOCBQUEUED as c_int),
        Err(e) => e.to_errno(),
    }
}
