//! `helios-bench`: the benchmark harness. Parses the command line, runs the workload against
//! each target in turn (A B A B for `--rounds`), and prints/writes the results.
//! Protocol-independent pieces: `driver` (threads, loops, timing), `stats`, `keys`, `report`,
//! `plot`. Protocol pieces: `redis` + `resp`, and `pg`.

mod ceiling;
mod driver;
mod engine;
mod keys;
mod pg;
mod plot;
mod redis;
mod report;
mod resp;
mod stats;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::driver::{Plan, RunResult};
use crate::keys::Distribution;
use crate::report::{Latency, OpResult, Report, TargetResult};

#[derive(Parser, Debug)]
#[command(
    name = "helios-bench",
    about = "Benchmark harness for HeliosDB and reference servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Drive Redis-protocol servers (helios, redis-server).
    Redis(Box<RedisArgs>),
    /// Drive PostgreSQL-protocol servers (PostgreSQL, helios).
    Pg(Box<PgArgs>),
    /// Run key-value workloads in this process against storage engines (fjall, ...).
    Engine(Box<engine::EngineArgs>),
    /// Serve the PostgreSQL protocol doing no work (canned rows, no SQL, no disk): the tps
    /// `pgbench` reaches against it is the machine's ceiling for a server (short of kernel
    /// bypass).
    PgCeiling(ceiling::CeilingArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// [NAME=]HOST:PORT; repeat to compare targets (run in turn, alternating each round).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Workload name.
    #[arg(long)]
    workload: String,
    #[arg(long, default_value_t = 50)]
    connections: u64,
    /// Worker threads, each a current-thread runtime driving its share of the connections.
    #[arg(long, default_value_t = 2)]
    threads: u64,
    /// Seconds to measure per round (the default when --requests is not given: 10).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// Requests to measure per round, instead of --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds run before measuring (results discarded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Total ops/s (open loop, coordinated-omission corrected); closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Rounds; each round runs every target once.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// uniform | zipfian[:theta] | sequential | latest[:theta] (default: the workload's own).
    #[arg(long)]
    distribution: Option<Distribution>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Load the workload's data set into each target first.
    #[arg(long)]
    load: bool,
    /// Write results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency curves and throughput bars as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No live progress line even on a terminal.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug, Clone)]
struct RedisArgs {
    #[command(flatten)]
    common: Common,
    /// Requests written per batch before reading the replies.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// For --workload mix: OP=WEIGHT,... with ops get set incr mset scan insert rmw.
    #[arg(long)]
    mix: Option<String>,
    /// Maximum keys per MGET in ycsb-e (uniform 1..=N).
    #[arg(long, default_value_t = 100)]
    scan_len: u64,
    /// Keys per MSET in the mset workload.
    #[arg(long, default_value_t = 10)]
    mset_keys: u64,
}

#[derive(Args, Debug, Clone)]
struct PgArgs {
    #[command(flatten)]
    common: Common,
    /// simple: simple query, values inlined; extended: parameters, an unnamed statement each
    /// time; prepared: statements prepared once per connection, then executed.
    #[arg(long, value_enum, default_value_t = pg::Protocol::Extended)]
    protocol: pg::Protocol,
    #[arg(long, default_value = "postgres")]
    user: String,
    #[arg(long)]
    password: Option<String>,
    #[arg(long, default_value = "postgres")]
    dbname: String,
    /// Rows per range-scan/aggregate range; maximum rows of a ycsb-e scan (uniform 1..=N).
    #[arg(long, default_value_t = 100)]
    scan_len: u64,
}

/// Connections' batch size when loading the data set.
const LOAD_PIPELINE: usize = 64;
const PIPELINE_MAX: usize = 100_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Redis(args) => run_redis(*args),
        Command::Pg(args) => run_pg(*args),
        Command::Engine(args) => engine::run_engine(*args),
        Command::PgCeiling(args) => ceiling::run_ceiling(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("helios-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plan_for(common: &Common, target: &str, pipeline: usize) -> anyhow::Result<Plan> {
    let (_, target) = split_target(target);
    if common.connections == 0 || common.threads == 0 || common.rounds == 0 {
        bail!("--connections, --threads and --rounds must be at least 1");
    }
    if common.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    if pipeline == 0 || pipeline > PIPELINE_MAX {
        bail!("--pipeline must be in 1..={PIPELINE_MAX}");
    }
    if common.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be above 0");
    }
    let secs = |s: f64, flag: &str| {
        Duration::try_from_secs_f64(s).with_context(|| format!("bad {flag} {s}"))
    };
    let duration = match common.requests {
        Some(_) => None,
        None => Some(secs(common.duration.unwrap_or(10.0), "--duration")?),
    };
    Ok(Plan {
        target: target.to_string(),
        connections: common.connections,
        threads: common.threads,
        pipeline,
        duration,
        requests: common.requests,
        warmup: secs(common.warmup, "--warmup")?,
        rate: common.rate,
        progress: !common.quiet && std::io::stderr().is_terminal(),
    })
}

fn run_redis(args: RedisArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let spec =
        redis::Spec::parse(&common.workload, args.mix.as_deref()).map_err(anyhow::Error::msg)?;
    let params = redis::Params {
        keyspace: common.keyspace.max(1),
        value_size: common.value_size,
        seed: common.seed,
        scan_len: args.scan_len,
        mset_keys: args.mset_keys,
    };
    if common.load {
        for target in &common.targets {
            let load = Arc::new(redis::LoadWorkload::new(&spec, &params));
            let mut plan = plan_for(common, target, LOAD_PIPELINE)?;
            plan.requests = Some(load.requests());
            plan.duration = None;
            plan.warmup = Duration::ZERO;
            plan.rate = None;
            let result = driver::run(load, &plan)?;
            check_load(target, &result)?;
            eprintln!(
                "loaded {} keys into {target} in {:.2} s",
                result.stats.op_count(),
                result.measured.as_secs_f64()
            );
        }
    }
    // One workload per target: keys inserted during a run (ycsb-d, ycsb-e) exist only on the
    // target they were written to, so each target keeps its own count of existing keys.
    let workloads: Vec<Arc<redis::RespWorkload>> = common
        .targets
        .iter()
        .map(|_| {
            let workload =
                redis::RespWorkload::new(spec.clone(), common.distribution, params.clone());
            Arc::new(workload)
        })
        .collect();
    let workload = workloads[0].clone();
    let mut results = run_rounds(common, &workloads, &spec.name, "", args.pipeline)?;
    report::set_ratios(&mut results);
    print!("{}", report::table(&results));
    let config = serde_json::json!({
        "protocol": "redis",
        "workload": spec.name,
        "connections": common.connections,
        "threads": common.threads,
        "pipeline": args.pipeline,
        "duration_s": common.duration,
        "requests": common.requests,
        "warmup_s": common.warmup,
        "rate": common.rate,
        "rounds": common.rounds,
        "keyspace": common.keyspace,
        "value_size": common.value_size,
        "distribution": workload.distribution().to_string(),
        "seed": common.seed,
        "mix": args.mix,
    });
    write_outputs(common, results, config)
}

fn run_pg(args: PgArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let spec = pg::Spec::parse(&common.workload).map_err(anyhow::Error::msg)?;
    let params = pg::Params {
        keyspace: common.keyspace.max(1),
        value_size: common.value_size,
        seed: common.seed,
        scan_len: args.scan_len,
        protocol: args.protocol,
        conn: pg::ConnParams {
            user: args.user.clone(),
            password: args.password.clone(),
            dbname: args.dbname.clone(),
        },
    };
    if common.load {
        for target in &common.targets {
            let mut plan = plan_for(common, target, 1)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(pg::create_tables(&plan.target, &spec, &params))
                .with_context(|| format!("creating the tables on {target}"))?;
            let load = Arc::new(pg::LoadWorkload::new(&spec, &params));
            plan.requests = Some(load.requests());
            plan.duration = None;
            plan.warmup = Duration::ZERO;
            plan.rate = None;
            let result = driver::run(load, &plan)?;
            check_load(target, &result)?;
            runtime
                .block_on(pg::finish_load(&plan.target, &spec, &params))
                .with_context(|| format!("vacuuming {target}"))?;
            eprintln!(
                "loaded {} rows into {target} in {:.2} s",
                params.keyspace,
                result.measured.as_secs_f64()
            );
        }
    }
    let workloads: Vec<Arc<pg::PgWorkload>> = common
        .targets
        .iter()
        .map(|_| {
            let workload = pg::PgWorkload::new(spec.clone(), common.distribution, params.clone());
            Arc::new(workload)
        })
        .collect();
    let workload = workloads[0].clone();
    let label = format!(" ({})", args.protocol.name());
    let mut results = run_rounds(common, &workloads, &spec.name, &label, 1)?;
    report::set_ratios(&mut results);
    print!("{}", report::table(&results));
    let config = serde_json::json!({
        "protocol": "pg",
        "pg_protocol": args.protocol.name(),
        "workload": spec.name,
        "connections": common.connections,
        "threads": common.threads,
        "duration_s": common.duration,
        "requests": common.requests,
        "warmup_s": common.warmup,
        "rate": common.rate,
        "rounds": common.rounds,
        "keyspace": common.keyspace,
        "value_size": common.value_size,
        "distribution": workload.distribution().to_string(),
        "seed": common.seed,
        "scan_len": args.scan_len,
        "user": args.user,
        "dbname": args.dbname,
    });
    write_outputs(common, results, config)
}

/// Runs `workloads[i]` against target i, the targets taking turns (A B A B) for `rounds`
/// rounds so that machine drift hits all alike, and summarizes each target's rounds.
fn run_rounds<W: driver::Workload>(
    common: &Common,
    workloads: &[Arc<W>],
    name: &str,
    label: &str,
    pipeline: usize,
) -> anyhow::Result<Vec<TargetResult>> {
    let mut runs: BTreeMap<usize, Vec<RunResult>> = BTreeMap::new();
    for round in 0..common.rounds {
        for (index, target) in common.targets.iter().enumerate() {
            let plan = plan_for(common, target, pipeline)?;
            let result = driver::run(workloads[index].clone(), &plan)?;
            eprintln!(
                "round {}/{} {target} {name}{label}: {:.0} ops/s",
                round + 1,
                common.rounds,
                result.ops_per_sec()
            );
            runs.entry(index).or_default().push(result);
        }
    }
    let op_names = workloads[0].op_names();
    Ok(runs
        .into_iter()
        .map(|(index, rounds)| summarize(&common.targets[index], name, &op_names, &rounds))
        .collect())
}

fn check_load(target: &str, result: &RunResult) -> anyhow::Result<()> {
    let errors = result.stats.errors_by_kind();
    if !errors.is_empty() || !result.stats.connection_failures.is_empty() {
        bail!(
            "loading {target} failed: errors {errors:?}, connection failures {:?}",
            result.stats.connection_failures
        );
    }
    Ok(())
}

fn write_outputs(
    common: &Common,
    results: Vec<TargetResult>,
    config: serde_json::Value,
) -> anyhow::Result<()> {
    if let Some(path) = &common.plot {
        plot::draw(path, &results).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = Report { results, config };
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = report
        .results
        .iter()
        .any(|r| r.ops == 0 && !r.connection_failures.is_empty());
    if failed {
        bail!("a target could not be reached (see connection failures above)");
    }
    Ok(())
}

fn per_sec(ops: u64, measured: Duration) -> f64 {
    if measured.is_zero() {
        return 0.0;
    }
    ops as f64 / measured.as_secs_f64()
}

/// Splits `NAME=HOST:PORT` into (label, address); a plain address is its own label.
fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('=') {
        Some((label, addr)) => (label, addr),
        None => (target, target),
    }
}

fn summarize(
    target: &str,
    workload: &str,
    op_names: &[String],
    rounds: &[RunResult],
) -> TargetResult {
    let mut stats = stats::Stats::new(op_names.len());
    let mut measured = Duration::ZERO;
    for run in rounds {
        stats.merge(&run.stats);
        measured += run.measured;
    }
    let total = stats.total_latency();
    let ops = stats.op_count();
    let errors_by_kind = stats.errors_by_kind();
    let per_op = op_names
        .iter()
        .zip(&stats.ops)
        .map(|(name, op)| {
            let result = OpResult {
                ops: op.latency_ns.len(),
                ops_per_sec: per_sec(op.latency_ns.len(), measured),
                errors: op.errors.values().sum(),
                misses: op.misses,
                latency_us: Latency::from_histogram(&op.latency_ns),
            };
            (name.clone(), result)
        })
        .collect();
    let (label, addr) = split_target(target);
    TargetResult {
        target: addr.to_string(),
        label: label.to_string(),
        workload: workload.to_string(),
        ops_per_sec: per_sec(ops, measured),
        errors: errors_by_kind.values().sum(),
        latency_us: Latency::from_histogram(&total),
        ops,
        errors_by_kind,
        connection_failures: stats.connection_failures.clone(),
        misses: stats.ops.iter().map(|o| o.misses).sum(),
        per_op,
        rounds_ops_per_sec: rounds.iter().map(RunResult::ops_per_sec).collect(),
        ratio_ops_per_sec: 1.0,
        ratio_p99: 1.0,
        latency_curve_us: report::latency_curve(&total),
    }
}
