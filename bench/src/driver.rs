//! The protocol-independent load generator. A few OS threads (`--threads`), each running a tokio
//! current-thread runtime with its share of the connections as local tasks. A connection runs
//! batches (a batch is `--pipeline` requests written together, then their replies read) either
//! back to back (closed loop) or on a fixed schedule (`--rate`, open loop): then latency is
//! measured from when the batch *should* have been sent, which corrects for coordinated
//! omission as wrk2 does.
//!
//! A protocol plugs in by implementing `Workload` (shared by all threads) and `Session` (one per
//! connection, thread-local). RESP is `crate::redis`; PostgreSQL will be another implementation.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::stats::{new_histogram, Stats};

/// How often a thread publishes its recent latencies for the live progress line.
const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
const PROGRESS_TICK: Duration = Duration::from_millis(250);
/// How often the main thread checks whether the workers are done.
const JOIN_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Timer wake-ups can be this late; open-loop waits yield instead of sleeping for the last part.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// One operation's result, pushed by a session for each request of a batch.
#[derive(Debug)]
pub struct Outcome {
    pub op: usize,
    pub done: Instant,
    /// The error kind (first word of the error reply), if the server answered with an error.
    pub error: Option<String>,
    pub miss: bool,
}

pub trait Workload: Send + Sync + 'static {
    type Session: Session;
    /// Names of the operation types; `Outcome::op` indexes this.
    fn op_names(&self) -> Vec<String>;
    /// Opens connection number `connection` (of `connections`) to `target`.
    fn connect(
        &self,
        target: &str,
        connection: u64,
        connections: u64,
    ) -> impl Future<Output = std::io::Result<Self::Session>>;
}

pub trait Session {
    /// Runs `count` operations (pipelined where the protocol allows) and pushes one outcome per
    /// operation. An `Err` means the connection is unusable.
    fn run_batch(
        &mut self,
        count: usize,
        out: &mut Vec<Outcome>,
    ) -> impl Future<Output = std::io::Result<()>>;
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub target: String,
    pub connections: u64,
    pub threads: u64,
    pub pipeline: usize,
    /// Exactly one of `duration` and `requests` is set.
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub warmup: Duration,
    /// Total operations per second across all connections (open loop), or None (closed loop).
    pub rate: Option<f64>,
    pub progress: bool,
}

#[derive(Debug)]
pub struct RunResult {
    pub stats: Stats,
    pub measured: Duration,
}

impl RunResult {
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.stats.op_count() as f64 / secs
    }
}

/// State shared by all threads of one run.
struct Shared {
    measure_start: Instant,
    measure_end: Option<Instant>,
    /// Requests left to issue in a `--requests` run.
    remaining: Option<AtomicU64>,
    /// Measured operations completed so far, for the progress line.
    done_ops: AtomicU64,
    recent: Mutex<Histogram<u64>>,
    progress: bool,
}

pub fn run<W: Workload>(workload: Arc<W>, plan: &Plan) -> anyhow::Result<RunResult> {
    assert!(plan.connections > 0 && plan.threads > 0 && plan.pipeline > 0);
    assert!(plan.duration.is_some() != plan.requests.is_some());
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let shared = Arc::new(Shared {
        measure_start,
        measure_end: plan.duration.map(|d| measure_start + d),
        remaining: plan.requests.map(AtomicU64::new),
        done_ops: AtomicU64::new(0),
        recent: Mutex::new(new_histogram()),
        progress: plan.progress,
    });
    let threads = plan.threads.min(plan.connections);
    let mut handles = Vec::new();
    for thread in 0..threads {
        let conns: Vec<u64> = (0..plan.connections)
            .filter(|c| c % threads == thread)
            .collect();
        let (workload, shared, plan) = (workload.clone(), shared.clone(), plan.clone());
        let handle = std::thread::Builder::new()
            .name(format!("bench-{thread}"))
            .spawn(move || run_thread(workload, shared, plan, conns))?;
        handles.push(handle);
    }
    let bar = plan.progress.then(|| progress_bar(&plan.target));
    let mut last_tick = (start, 0);
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(JOIN_POLL_INTERVAL);
        if let Some(bar) = &bar {
            tick_progress(bar, &shared, &mut last_tick);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut stats = Stats::new(workload.op_names().len());
    for handle in handles {
        let thread_stats = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        stats.merge(&thread_stats);
    }
    let end = match shared.measure_end {
        Some(end) => end,
        None => stats.last_done.unwrap_or(measure_start).max(measure_start),
    };
    Ok(RunResult {
        measured: end.saturating_duration_since(measure_start),
        stats,
    })
}

fn progress_bar(target: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_prefix(target.to_string());
    bar
}

/// Redraws the progress line every `PROGRESS_TICK`; `last` is the previous (time, ops done).
fn tick_progress(bar: &indicatif::ProgressBar, shared: &Shared, last: &mut (Instant, u64)) {
    let now = Instant::now();
    let done = shared.done_ops.load(Ordering::Relaxed);
    let (at, before) = *last;
    if now.duration_since(at) < PROGRESS_TICK {
        return;
    }
    *last = (now, done);
    let rate = done.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64();
    let mut recent = shared.recent.lock().unwrap_or_else(|e| e.into_inner());
    let p99_us = recent.value_at_quantile(0.99) as f64 / 1000.0;
    recent.reset();
    let phase = if now < shared.measure_start {
        "warmup"
    } else {
        "run"
    };
    bar.set_message(format!(
        "{} {phase}: {rate:>10.0} ops/s  p99 {p99_us:>8.1} us  ({done} ops)",
        bar.prefix()
    ));
    bar.tick();
}

fn run_thread<W: Workload>(
    workload: Arc<W>,
    shared: Arc<Shared>,
    plan: Plan,
    conns: Vec<u64>,
) -> anyhow::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stats = Rc::new(RefCell::new(Stats::new(workload.op_names().len())));
    let local = tokio::task::LocalSet::new();
    for conn in conns {
        let (workload, shared, plan, stats) = (
            workload.clone(),
            shared.clone(),
            plan.clone(),
            stats.clone(),
        );
        local.spawn_local(async move {
            run_connection(&*workload, &shared, &plan, conn, &stats).await;
        });
    }
    runtime.block_on(local);
    let stats = stats.borrow().clone();
    Ok(stats)
}

async fn run_connection<W: Workload>(
    workload: &W,
    shared: &Shared,
    plan: &Plan,
    conn: u64,
    stats: &RefCell<Stats>,
) {
    let mut session = match workload.connect(&plan.target, conn, plan.connections).await {
        Ok(s) => s,
        Err(e) => {
            stats
                .borrow_mut()
                .connection_failure(format!("connect: {}", e.kind()));
            return;
        }
    };
    // Open loop: each connection sends one batch every `interval`.
    let interval = plan.rate.map(|rate| {
        let per_conn = rate / plan.connections as f64;
        Duration::from_secs_f64(plan.pipeline as f64 / per_conn.max(1e-9))
    });
    let mut intended = Instant::now();
    let mut out = Vec::with_capacity(plan.pipeline);
    let mut recent = new_histogram();
    let mut last_flush = Instant::now();
    loop {
        let now = Instant::now();
        if shared.measure_end.is_some_and(|end| now >= end) {
            break;
        }
        let count = match claim(shared, plan.pipeline, now) {
            Some(0) => break,
            Some(n) => n,
            None => plan.pipeline,
        };
        let begin = match interval {
            Some(interval) => {
                wait_until(intended).await;
                let begin = intended;
                intended += interval * count as u32 / plan.pipeline as u32;
                begin
            }
            None => now,
        };
        out.clear();
        if let Err(e) = session.run_batch(count, &mut out).await {
            stats
                .borrow_mut()
                .connection_failure(format!("lost: {}", e.kind()));
            return;
        }
        let recorded = record(shared, stats, &out, begin, &mut recent);
        if shared.progress && recorded > 0 {
            shared.done_ops.fetch_add(recorded, Ordering::Relaxed);
            if last_flush.elapsed() >= PROGRESS_FLUSH_INTERVAL {
                let mut shared_recent = shared.recent.lock().unwrap_or_else(|e| e.into_inner());
                let _ = shared_recent.add(&recent);
                recent.reset();
                last_flush = Instant::now();
            }
        }
    }
}

/// Waits for a send time. tokio's timer has 1 ms granularity, and in an open loop every bit of
/// lateness is counted as latency, so the timer only covers the wait down to the last
/// `TIMER_SLACK`; the rest is spent yielding (the thread stays busy, the latency stays honest).
async fn wait_until(when: Instant) {
    let now = Instant::now();
    if when > now + TIMER_SLACK {
        tokio::time::sleep_until((when - TIMER_SLACK).into()).await;
    }
    while Instant::now() < when {
        tokio::task::yield_now().await;
    }
}

/// In a `--requests` run, takes up to `want` requests from the shared budget (none is taken
/// during warmup). Returns None in a `--duration` run.
fn claim(shared: &Shared, want: usize, now: Instant) -> Option<usize> {
    let remaining = shared.remaining.as_ref()?;
    if now < shared.measure_start {
        return Some(want);
    }
    let mut left = remaining.load(Ordering::Relaxed);
    loop {
        let take = left.min(want as u64);
        if take == 0 {
            return Some(0);
        }
        match remaining.compare_exchange_weak(
            left,
            left - take,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(take as usize),
            Err(actual) => left = actual,
        }
    }
}

fn record(
    shared: &Shared,
    stats: &RefCell<Stats>,
    out: &[Outcome],
    begin: Instant,
    recent: &mut Histogram<u64>,
) -> u64 {
    // A `--requests` run counts only batches that drew on the budget, i.e. began after warmup.
    if shared.remaining.is_some() && begin < shared.measure_start {
        return 0;
    }
    let mut stats = stats.borrow_mut();
    let mut recorded = 0;
    for o in out {
        if o.done < shared.measure_start || shared.measure_end.is_some_and(|end| o.done > end) {
            continue;
        }
        let latency_ns = o.done.saturating_duration_since(begin).as_nanos() as u64;
        stats.record(o.op, latency_ns);
        if let Some(kind) = &o.error {
            stats.record_error(o.op, kind);
        }
        stats.ops[o.op].misses += u64::from(o.miss);
        if shared.progress {
            recent.saturating_record(latency_ns.max(1));
        }
        stats.last_done = stats.last_done.max(Some(o.done));
        recorded += 1;
    }
    recorded
}
