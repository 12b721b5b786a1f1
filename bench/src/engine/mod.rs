//! `helios-bench engine`: key-value workloads (db_bench's fillseq, fillrandom, overwrite,
//! readrandom, readseq, seekrandom) run in this process against several storage engines, one
//! after another on identical operations, reporting throughput ratios to fjall and write
//! amplification. The engines sit behind `kv::KvEngine`; `run` drives and measures them,
//! `report` prints. Everything runs on one thread, in a glommio `LocalExecutor` by default.
#![allow(async_fn_in_trait)]

mod disk;
mod fjall;
mod helios;
pub mod kv;
mod model;
mod report;
mod run;
mod workload;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use glommio::{LocalExecutorBuilder, Placement};

use self::kv::{Compression, EngineKind, EngineOptions};
use self::report::EngineReport;
use self::run::Plan;
use self::workload::Workload;

/// Bytes of DMA memory the glommio executor registers (counted against RLIMIT_MEMLOCK); as
/// the server's shards (`shard/src/runtime.rs`).
const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;
/// Pinned in `bench/Cargo.toml` (reported in the JSON config).
const FJALL_VERSION: &str = "3.1.13";
/// The fillrandom permutation is held in memory (8 bytes a key).
const KEYS_MAX: u64 = 1 << 30;
const VALUE_BYTES_MAX: usize = 1 << 20;
const SCAN_LEN_MAX: usize = 100_000;
/// The engine the others are compared with, when it is in `--engines`.
const REFERENCE_ENGINE: EngineKind = EngineKind::Fjall;

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Engines, comma-separated, run in this order; the first is the subject of the target
    /// check, fjall the reference of the ratios.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [EngineKind::Helios, EngineKind::Fjall])]
    engines: Vec<EngineKind>,
    /// Workloads, comma-separated (they run in a fixed order; see the README).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Workload::ALL)]
    workloads: Vec<Workload>,
    /// Keys in the data set (ids 0..N).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Bytes per value (keys are 16 bytes).
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Block cache capacity: bytes, or with a KiB/MiB/GiB (or K/M/G) suffix.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    cache_bytes: u64,
    /// Parent of the engines' fresh directories (default: a new one under /tmp, removed after).
    /// Must be on a real disk (not tmpfs) for the write-amplification figures.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the engines' directories.
    #[arg(long)]
    keep: bool,
    /// Entries read by each seekrandom seek.
    #[arg(long, default_value_t = 10)]
    scan_len: usize,
    /// Operations of readrandom and seekrandom (default: --keys).
    #[arg(long)]
    reads: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Block compression for every engine.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// glommio: a glommio LocalExecutor on this thread (as helios runs); plain: a bare
    /// `block_on`.
    #[arg(long, value_enum, default_value_t = Executor::Glommio)]
    executor: Executor,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    Glommio,
    Plain,
}

/// Parses `64MiB`, `64M`, `512KiB`, `1GiB`, `67108864`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &text[digits.len()..] {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB or GiB)")),
    };
    let number: u64 = digits
        .trim()
        .parse()
        .map_err(|e| format!("bad byte count {text:?}: {e}"))?;
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text} is too large"))
}

fn plan_for(args: &EngineArgs) -> anyhow::Result<(Plan, bool)> {
    if args.keys == 0 || args.keys > KEYS_MAX {
        bail!("--keys must be in 1..={KEYS_MAX}");
    }
    if args.value_bytes == 0 || args.value_bytes > VALUE_BYTES_MAX {
        bail!("--value-bytes must be in 1..={VALUE_BYTES_MAX}");
    }
    if args.scan_len == 0 || args.scan_len > SCAN_LEN_MAX {
        bail!("--scan-len must be in 1..={SCAN_LEN_MAX}");
    }
    if args.engines.is_empty() || args.workloads.is_empty() {
        bail!("--engines and --workloads need at least one name each");
    }
    let mut engines: Vec<EngineKind> = Vec::new();
    for &engine in &args.engines {
        if !engines.contains(&engine) {
            engines.push(engine);
        }
    }
    let mut workloads = args.workloads.clone();
    workloads.sort_unstable();
    workloads.dedup();
    let (dir, made_dir) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("helios-bench-engine-{}-{nanos}", std::process::id());
            (std::env::temp_dir().join(name), true)
        }
    };
    let plan = Plan {
        engines,
        workloads,
        keys: args.keys,
        reads: args.reads.unwrap_or(args.keys),
        value_bytes: args.value_bytes,
        scan_len: args.scan_len,
        seed: args.seed,
        options: EngineOptions {
            cache_bytes: args.cache_bytes,
            compression: args.compression,
        },
        dir,
        keep: args.keep,
        verbose: !args.quiet,
    };
    Ok((plan, made_dir))
}

pub fn run_engine(args: EngineArgs) -> anyhow::Result<()> {
    let (plan, made_dir) = plan_for(&args)?;
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("creating {}", plan.dir.display()))?;
    let outcome = execute(&plan, args.executor);
    if made_dir && !plan.keep {
        std::fs::remove_dir_all(&plan.dir).ok();
    }
    let mut results = outcome?;
    let reference = if plan.engines.contains(&REFERENCE_ENGINE) {
        REFERENCE_ENGINE
    } else {
        plan.engines[0]
    };
    report::set_ratios(&mut results, reference.name());
    print!("{}", header(&plan));
    print!("{}", report::tables(&results, reference.name()));
    let subject = plan.engines[0];
    if subject != reference {
        print!(
            "{}",
            report::target_lines(&results, subject.name(), reference.name())
        );
    }
    let report = EngineReport {
        config: config_json(&plan, &args),
        results,
    };
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let wrong: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{} {}: {}",
                r.engine,
                r.workload,
                r.check_failure.as_ref()?
            ))
        })
        .collect();
    if !wrong.is_empty() {
        bail!("wrong answers: {}", wrong.join("; "));
    }
    Ok(())
}

/// Runs the plan on one thread: in a glommio `LocalExecutor` (unpinned, so engines' own
/// background threads, which inherit its CPU mask, may use any core), or a plain `block_on`.
fn execute(plan: &Plan, executor: Executor) -> anyhow::Result<Vec<report::PhaseResult>> {
    match executor {
        Executor::Plain => futures_lite::future::block_on(run::run_all(plan)),
        Executor::Glommio => {
            let local = LocalExecutorBuilder::new(Placement::Unbound)
                .name("engine-bench")
                .io_memory(EXECUTOR_IO_MEMORY_BYTES)
                .make()
                .map_err(|e| anyhow::anyhow!("starting glommio (try --executor plain): {e}"))?;
            local.run(run::run_all(plan))
        }
    }
}

fn header(plan: &Plan) -> String {
    let entry_bytes = (workload::KEY_BYTES + plan.value_bytes) as u64;
    let data_bytes = plan.keys * entry_bytes;
    format!(
        "engine benchmark: {} keys x ({} + {}) B = {:.1} MB of data, {:.1}x the {:.0} MiB cache; \
         compression {}; reads {}, scan-len {}, seed {}\n",
        plan.keys,
        workload::KEY_BYTES,
        plan.value_bytes,
        data_bytes as f64 / 1e6,
        data_bytes as f64 / plan.options.cache_bytes.max(1) as f64,
        plan.options.cache_bytes as f64 / f64::from(1 << 20),
        format!("{:?}", plan.options.compression).to_lowercase(),
        plan.reads,
        plan.scan_len,
        plan.seed
    )
}

fn config_json(plan: &Plan, args: &EngineArgs) -> serde_json::Value {
    serde_json::json!({
        "engines": plan.engines.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "workloads": plan.workloads.iter().map(|w| w.name()).collect::<Vec<_>>(),
        "keys": plan.keys,
        "reads": plan.reads,
        "key_bytes": workload::KEY_BYTES,
        "value_bytes": plan.value_bytes,
        "cache_bytes": plan.options.cache_bytes,
        "compression": format!("{:?}", plan.options.compression).to_lowercase(),
        "scan_len": plan.scan_len,
        "seed": plan.seed,
        "executor": format!("{:?}", args.executor).to_lowercase(),
        "dir": plan.dir,
        "fjall_version": FJALL_VERSION,
        "durability": "log written without fsync per put; sync (fdatasync) at the end of each write phase",
    })
}

#[cfg(test)]
mod tests;
