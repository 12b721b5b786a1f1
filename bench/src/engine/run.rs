//! Runs the workloads against each engine in turn and measures each phase: time, per-op
//! latency, disk bytes written (through `wait_idle`), directory size, and the answers' counts.
//!
//! Each engine gets two fresh directories: one for `fillseq`, one for the rest in the fixed
//! order fillrandom, overwrite, readrandom, readseq, seekrandom (the reads see what the fill
//! and overwrite left). When a later workload is asked for without `fillrandom`, an unmeasured
//! fillrandom loads the data first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use super::disk::{dir_bytes, IoCounters};
use super::kv::{self, EngineKind, EngineOptions, KvEngine};
use super::report::{DiskCounts, PhaseResult};
use super::workload::{key, permutation, Values, Workload, KEY_BYTES};
use crate::keys::Rng;
use crate::report::Latency;
use crate::stats;

/// Everything that defines a run's operations and engines.
#[derive(Clone, Debug)]
pub struct Plan {
    pub engines: Vec<EngineKind>,
    /// In run order (see the module comment).
    pub workloads: Vec<Workload>,
    pub keys: u64,
    pub reads: u64,
    pub value_bytes: usize,
    pub scan_len: usize,
    pub seed: u64,
    pub options: EngineOptions,
    /// Parent of the engines' directories (each made fresh, removed after unless `keep`).
    pub dir: PathBuf,
    pub keep: bool,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Plan {
    fn entry_bytes(&self) -> u64 {
        (KEY_BYTES + self.value_bytes) as u64
    }
}

/// Every engine, one after another; results in engine order, then workload order.
pub async fn run_all(plan: &Plan) -> anyhow::Result<Vec<PhaseResult>> {
    let mut results = Vec::new();
    for &kind in &plan.engines {
        let sequential: Vec<Workload> = plan
            .workloads
            .iter()
            .copied()
            .filter(|&w| w == Workload::Fillseq)
            .collect();
        let random: Vec<Workload> = plan
            .workloads
            .iter()
            .copied()
            .filter(|&w| w != Workload::Fillseq)
            .collect();
        for (group, workloads) in [("seq", sequential), ("random", random)] {
            if workloads.is_empty() {
                continue;
            }
            let dir = plan.dir.join(format!("{}-{group}", kind.name()));
            results.extend(run_group(plan, kind, &dir, &workloads).await?);
        }
    }
    Ok(results)
}

/// Opens `kind` in the fresh `dir`, runs `workloads` on it, closes it.
async fn run_group(
    plan: &Plan,
    kind: EngineKind,
    dir: &Path,
    workloads: &[Workload],
) -> anyhow::Result<Vec<PhaseResult>> {
    if dir.exists() {
        bail!(
            "{} already exists: each engine needs a fresh directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut engine = kv::open(kind, dir, &plan.options).await?;
    let needs_load = workloads[0] != Workload::Fillseq && workloads[0] != Workload::Fillrandom;
    if needs_load {
        let load = run_phase(&mut engine, Workload::Fillrandom, plan, dir).await?;
        progress(plan, &format!("loaded (unmeasured): {}", load.summary()));
    }
    let mut results = Vec::new();
    for &workload in workloads {
        let result = run_phase(&mut engine, workload, plan, dir).await?;
        progress(plan, &result.summary());
        results.push(result);
    }
    engine.close().await?;
    if !plan.keep {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(results)
}

fn progress(plan: &Plan, line: &str) {
    if plan.verbose {
        eprintln!("{line}");
    }
}

/// What the operations of a phase did, before the disk and timing bookkeeping.
struct Ops {
    ops: u64,
    /// Entries written or read.
    entries: u64,
    /// What a correct engine returns: entries read (or written).
    expected: u64,
    /// Reads whose value did not have `--value-bytes` bytes.
    bad_values: u64,
    latency_ns: Histogram<u64>,
}

/// Runs one workload on `engine` and measures it.
pub async fn run_phase<E: KvEngine>(
    engine: &mut E,
    workload: Workload,
    plan: &Plan,
    dir: &Path,
) -> anyhow::Result<PhaseResult> {
    let mut rng = Rng::new(workload.seed(plan.seed));
    let values = Values::new(rng.next_u64(), plan.value_bytes);
    // Prepared before the clock starts.
    let order = match workload {
        Workload::Fillrandom => permutation(plan.keys, &mut rng),
        _ => Vec::new(),
    };
    let io_before = IoCounters::now();
    let start = Instant::now();
    let ops = match workload {
        Workload::Fillseq => fill(engine, plan, values, 0..plan.keys).await?,
        Workload::Fillrandom => fill(engine, plan, values, order.iter().copied()).await?,
        Workload::Overwrite => {
            let keys = plan.keys;
            let indexes = (0..keys).map(|_| rng.below(keys));
            fill(engine, plan, values, indexes).await?
        }
        Workload::Readrandom => read_random(engine, plan, &mut rng).await?,
        Workload::Readseq => read_seq(engine, plan).await?,
        Workload::Seekrandom => seek_random(engine, plan, &mut rng).await?,
    };
    if workload.writes() {
        engine.sync().await?;
    }
    let foreground = start.elapsed();
    let idle_start = Instant::now();
    if workload.writes() {
        engine.wait_idle().await?;
    }
    let idle_wait = idle_start.elapsed();
    let disk = match (io_before, IoCounters::now()) {
        (Some(before), Some(after)) => Some(DiskCounts::from(after.since(&before))),
        _ => None,
    };
    let dir_bytes = dir_bytes(dir)?;
    Ok(measure(
        engine.name(),
        workload,
        plan,
        ops,
        foreground,
        idle_wait,
        disk,
        dir_bytes,
    ))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    engine: &str,
    workload: Workload,
    plan: &Plan,
    ops: Ops,
    foreground: Duration,
    idle_wait: Duration,
    disk: Option<DiskCounts>,
    dir_bytes: u64,
) -> PhaseResult {
    let seconds = foreground.as_secs_f64().max(1e-9);
    let user_bytes = ops.entries * plan.entry_bytes();
    let live_bytes = plan.keys * plan.entry_bytes();
    let write_amp = match (&disk, workload.writes()) {
        (Some(disk), true) if user_bytes > 0 => Some(disk.write_bytes as f64 / user_bytes as f64),
        _ => None,
    };
    let mut check_failure = None;
    if ops.entries != ops.expected {
        check_failure = Some(format!(
            "expected {} entries, got {}",
            ops.expected, ops.entries
        ));
    } else if ops.bad_values > 0 {
        check_failure = Some(format!("{} values of the wrong length", ops.bad_values));
    }
    PhaseResult {
        engine: engine.to_string(),
        workload: workload.name().to_string(),
        ops: ops.ops,
        entries: ops.entries,
        expected_entries: ops.expected,
        user_bytes,
        seconds,
        idle_wait_seconds: idle_wait.as_secs_f64(),
        ops_per_sec: ops.ops as f64 / seconds,
        user_mb_per_sec: user_bytes as f64 / seconds / 1e6,
        latency_us: Latency::from_histogram(&ops.latency_ns),
        disk,
        write_amp,
        dir_bytes,
        space_amp: (live_bytes > 0).then(|| dir_bytes as f64 / live_bytes as f64),
        check_failure,
        ratio_ops_per_sec: 1.0,
    }
}

/// Times consecutive operations with one clock read each: an op's latency is from the end of
/// the previous one (so it includes making its key, a few ns, the same for every engine).
struct Clock {
    last: Instant,
    latency_ns: Histogram<u64>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            last: Instant::now(),
            latency_ns: stats::new_histogram(),
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let ns = (now - self.last).as_nanos() as u64;
        self.latency_ns.saturating_record(ns.max(1));
        self.last = now;
    }
}

async fn fill<E: KvEngine>(
    engine: &mut E,
    plan: &Plan,
    mut values: Values,
    indexes: impl Iterator<Item = u64>,
) -> anyhow::Result<Ops> {
    assert!(plan.value_bytes > 0);
    let mut clock = Clock::start();
    let mut ops = 0;
    for index in indexes {
        engine.put(&key(index), values.next_value()).await?;
        clock.tick();
        ops += 1;
    }
    Ok(Ops {
        ops,
        entries: ops,
        expected: ops,
        bad_values: 0,
        latency_ns: clock.latency_ns,
    })
}

async fn read_random<E: KvEngine>(
    engine: &mut E,
    plan: &Plan,
    rng: &mut Rng,
) -> anyhow::Result<Ops> {
    let mut clock = Clock::start();
    let (mut found, mut bad_values) = (0, 0);
    for _ in 0..plan.reads {
        let value = engine.get(&key(rng.below(plan.keys))).await?;
        clock.tick();
        if let Some(len) = value {
            found += 1;
            bad_values += u64::from(len != plan.value_bytes);
        }
    }
    Ok(Ops {
        ops: plan.reads,
        entries: found,
        expected: plan.reads,
        bad_values,
        latency_ns: clock.latency_ns,
    })
}

async fn read_seq<E: KvEngine>(engine: &mut E, plan: &Plan) -> anyhow::Result<Ops> {
    let entries = engine.scan_all().await? as u64;
    // One call: no per-entry latency; ops/s counts entries.
    Ok(Ops {
        ops: entries,
        entries,
        expected: plan.keys,
        bad_values: 0,
        latency_ns: stats::new_histogram(),
    })
}

async fn seek_random<E: KvEngine>(
    engine: &mut E,
    plan: &Plan,
    rng: &mut Rng,
) -> anyhow::Result<Ops> {
    let mut clock = Clock::start();
    let (mut entries, mut expected) = (0, 0);
    for _ in 0..plan.reads {
        let index = rng.below(plan.keys);
        entries += engine.scan(&key(index), plan.scan_len).await? as u64;
        clock.tick();
        expected += (plan.keys - index).min(plan.scan_len as u64);
    }
    Ok(Ops {
        ops: plan.reads,
        entries,
        expected,
        bad_values: 0,
        latency_ns: clock.latency_ns,
    })
}
