//! Every workload on a tiny data set against fjall and the model: the counts are right and the
//! two engines agree. Seconds, not minutes.

use super::*;
use crate::engine::report::PhaseResult;

const KEYS: u64 = 2_000;

fn plan(dir: &std::path::Path, engines: Vec<EngineKind>, value_bytes: usize) -> Plan {
    Plan {
        engines,
        workloads: Workload::ALL.to_vec(),
        keys: KEYS,
        reads: 1_500,
        value_bytes,
        scan_len: 10,
        seed: 5,
        options: EngineOptions {
            cache_bytes: 1 << 20,
            compression: Compression::None,
        },
        dir: dir.to_path_buf(),
        keep: false,
        verbose: false,
    }
}

fn find<'a>(results: &'a [PhaseResult], engine: &str, workload: Workload) -> &'a PhaseResult {
    results
        .iter()
        .find(|r| r.engine == engine && r.workload == workload.name())
        .unwrap_or_else(|| panic!("no {engine} {}", workload.name()))
}

fn check(results: &[PhaseResult], plan: &Plan) {
    assert_eq!(results.len(), plan.engines.len() * Workload::ALL.len());
    for r in results {
        assert_eq!(r.check_failure, None, "{} {}", r.engine, r.workload);
        assert_eq!(r.entries, r.expected_entries, "{} {}", r.engine, r.workload);
    }
    for engine in &plan.engines {
        let name = engine.name();
        for fill in [Workload::Fillseq, Workload::Fillrandom, Workload::Overwrite] {
            assert_eq!(find(results, name, fill).ops, KEYS);
        }
        let reads = find(results, name, Workload::Readrandom);
        assert_eq!((reads.ops, reads.entries), (plan.reads, plan.reads));
        assert_eq!(find(results, name, Workload::Readseq).entries, KEYS);
        let seeks = find(results, name, Workload::Seekrandom);
        assert_eq!(seeks.ops, plan.reads);
        assert!(seeks.entries > plan.reads * 9, "{}", seeks.entries);
    }
    // Engines agree with each other on every count.
    for workload in Workload::ALL {
        let counts: Vec<(u64, u64)> = plan
            .engines
            .iter()
            .map(|e| {
                let r = find(results, e.name(), workload);
                (r.ops, r.entries)
            })
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "{workload:?} {counts:?}"
        );
    }
}

#[test]
fn every_workload_on_fjall_and_the_model_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path(), vec![EngineKind::Fjall, EngineKind::Model], 100);
    let results = futures_lite::future::block_on(run::run_all(&plan)).unwrap();
    check(&results, &plan);
    let fill = find(&results, "fjall", Workload::Fillrandom);
    assert!(fill.dir_bytes > 0);
    if let Some(disk) = fill.disk {
        // The journal and the flushed table at least.
        let amp = fill.write_amp.unwrap();
        assert!(disk.write_bytes > 0 && amp > 0.5, "{fill:?}");
    }
    assert_eq!(find(&results, "model", Workload::Fillrandom).dir_bytes, 0);
    // Directories are removed after each engine.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn one_kilobyte_values_with_lz4_inside_glommio() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), vec![EngineKind::Model, EngineKind::Fjall], 1024);
    plan.options.compression = Compression::Lz4;
    let results = execute(&plan, Executor::Glommio).unwrap();
    check(&results, &plan);
}

#[test]
fn reads_without_a_fill_load_the_data_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path(), vec![EngineKind::Fjall], 100);
    plan.workloads = vec![Workload::Readrandom, Workload::Readseq];
    let results = futures_lite::future::block_on(run::run_all(&plan)).unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.check_failure.is_none()));
    assert_eq!(results[1].entries, KEYS);
}

#[test]
fn byte_counts_parse_with_units() {
    assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
    assert_eq!(parse_bytes("64M"), Ok(64 << 20));
    assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
    assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert!(parse_bytes("12 parsecs").is_err());
    assert!(parse_bytes("MiB").is_err());
}
