//! Engine-benchmark results: one `PhaseResult` per (engine, workload), the per-workload tables
//! with each engine's throughput over the reference's (fjall), the target check for the
//! subject (the first engine), and the JSON document.

use serde::{Deserialize, Serialize};

use super::disk::IoCounters;
use super::workload::Workload;
use crate::report::Latency;

/// Storage I/O of the process during a phase (`/proc/self/io` deltas), through `wait_idle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskCounts {
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
    pub read_bytes: u64,
}

impl From<IoCounters> for DiskCounts {
    fn from(c: IoCounters) -> DiskCounts {
        DiskCounts {
            write_bytes: c.write_bytes,
            cancelled_write_bytes: c.cancelled_write_bytes,
            read_bytes: c.read_bytes,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub engine: String,
    pub workload: String,
    /// Operations (puts, gets, seeks; readseq: entries).
    pub ops: u64,
    /// Entries written, or read back.
    pub entries: u64,
    /// What a correct engine reads back (= entries for writes).
    pub expected_entries: u64,
    /// Key + value bytes of `entries`.
    pub user_bytes: u64,
    /// Foreground time: the operations, plus the closing `sync` of a write phase.
    pub seconds: f64,
    /// Time in `wait_idle` after a write phase (not in `seconds`).
    pub idle_wait_seconds: f64,
    pub ops_per_sec: f64,
    pub user_mb_per_sec: f64,
    /// Per operation; zero for readseq (one call).
    pub latency_us: Latency,
    /// `None` when the kernel has no per-task I/O accounting.
    pub disk: Option<DiskCounts>,
    /// Write phases: disk `write_bytes` / `user_bytes`.
    pub write_amp: Option<f64>,
    /// The engine's directory after the phase (allocated bytes).
    pub dir_bytes: u64,
    /// `dir_bytes` / (keys × entry bytes): the live data set.
    pub space_amp: Option<f64>,
    /// Why the answers were wrong, if they were.
    pub check_failure: Option<String>,
    /// `ops_per_sec` over the reference engine's for the same workload.
    pub ratio_ops_per_sec: f64,
}

impl PhaseResult {
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} {}: {} ops in {:.2} s ({:.0} ops/s)",
            self.engine, self.workload, self.ops, self.seconds, self.ops_per_sec
        );
        if let Some(amp) = self.write_amp {
            line += &format!(
                ", idle wait {:.2} s, write amp {amp:.2}",
                self.idle_wait_seconds
            );
        }
        if let Some(failure) = &self.check_failure {
            line += &format!(", WRONG: {failure}");
        }
        line
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    pub config: serde_json::Value,
    /// Engines in `--engines` order; per engine, workloads in run order.
    pub results: Vec<PhaseResult>,
}

/// Fills `ratio_ops_per_sec` from `reference`'s result for the same workload (0 when missing).
pub fn set_ratios(results: &mut [PhaseResult], reference: &str) {
    let snapshot = results.to_vec();
    for r in results.iter_mut() {
        let base = snapshot
            .iter()
            .find(|b| b.engine == reference && b.workload == r.workload);
        r.ratio_ops_per_sec = match base {
            Some(b) if b.ops_per_sec > 0.0 => r.ops_per_sec / b.ops_per_sec,
            _ => 0.0,
        };
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn optional(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// Latency in microseconds, "-" where none was measured (readseq).
fn us(latency: &Latency, value: f64) -> String {
    if *latency == Latency::default() {
        return "-".to_string();
    }
    format!("{value:.1}")
}

/// One table per workload (in `Workload::ALL` order), engines as listed.
pub fn tables(results: &[PhaseResult], reference: &str) -> String {
    let mut s = String::new();
    for workload in Workload::ALL {
        let rows: Vec<&PhaseResult> = results
            .iter()
            .filter(|r| r.workload == workload.name())
            .collect();
        let Some(first) = rows.first() else {
            continue;
        };
        s += &format!("\n{} ({} ops)\n", workload.name(), first.ops);
        s += &format!(
            "{:<10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  check\n",
            "engine",
            "ops/s",
            format!("x {reference}"),
            "MB/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "write amp",
            "disk wr MB",
            "dir MB",
            "space amp"
        );
        for r in rows {
            s += &format!(
                "{:<10} {:>11.0} {:>8.2} {:>8.1} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9.1} {:>9}  {}\n",
                r.engine,
                r.ops_per_sec,
                r.ratio_ops_per_sec,
                r.user_mb_per_sec,
                us(&r.latency_us, r.latency_us.p50),
                us(&r.latency_us, r.latency_us.p99),
                us(&r.latency_us, r.latency_us.p999),
                optional(r.write_amp),
                r.disk
                    .map_or("-".to_string(), |d| format!("{:.1}", mb(d.write_bytes))),
                mb(r.dir_bytes),
                optional(r.space_amp),
                r.check_failure.as_deref().unwrap_or("ok"),
            );
        }
    }
    s
}

/// The targets for `subject` against `reference`: ≥ 1.0× on fillrandom and
/// readrandom, write amplification no worse on every write phase.
pub fn target_lines(results: &[PhaseResult], subject: &str, reference: &str) -> String {
    let find = |engine: &str, workload: Workload| {
        results
            .iter()
            .find(|r| r.engine == engine && r.workload == workload.name())
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut s = format!("\ntargets, {subject} vs {reference}:\n");
    for workload in [Workload::Fillrandom, Workload::Readrandom] {
        if let Some(r) = find(subject, workload) {
            let ratio = r.ratio_ops_per_sec;
            s += &format!(
                "  {:<11} throughput {ratio:.2}x (>= 1.00: {})\n",
                workload.name(),
                verdict(ratio >= 1.0)
            );
        }
    }
    for workload in Workload::ALL.into_iter().filter(|w| w.writes()) {
        let (Some(a), Some(b)) = (find(subject, workload), find(reference, workload)) else {
            continue;
        };
        if let (Some(x), Some(y)) = (a.write_amp, b.write_amp) {
            s += &format!(
                "  {:<11} write amp {x:.2} vs {y:.2} (no worse: {})\n",
                workload.name(),
                verdict(x <= y)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(engine: &str, workload: &str, ops_per_sec: f64, amp: f64) -> PhaseResult {
        PhaseResult {
            engine: engine.into(),
            workload: workload.into(),
            ops: 1000,
            entries: 1000,
            expected_entries: 1000,
            user_bytes: 116_000,
            seconds: 1.0,
            idle_wait_seconds: 0.0,
            ops_per_sec,
            user_mb_per_sec: 0.116,
            latency_us: Latency::default(),
            disk: None,
            write_amp: Some(amp),
            dir_bytes: 0,
            space_amp: None,
            check_failure: None,
            ratio_ops_per_sec: 1.0,
        }
    }

    #[test]
    fn ratios_are_over_the_reference_of_the_same_workload() {
        let mut results = vec![
            result("model", "fillrandom", 300.0, 0.0),
            result("model", "readrandom", 50.0, 0.0),
            result("fjall", "fillrandom", 100.0, 3.0),
        ];
        set_ratios(&mut results, "fjall");
        assert_eq!(results[0].ratio_ops_per_sec, 3.0);
        assert_eq!(results[1].ratio_ops_per_sec, 0.0);
        assert_eq!(results[2].ratio_ops_per_sec, 1.0);
        let text = tables(&results, "fjall");
        assert!(text.contains("fillrandom (1000 ops)"), "{text}");
        assert!(text.contains("x fjall"), "{text}");
        let targets = target_lines(&results, "model", "fjall");
        assert!(
            targets.contains("throughput 3.00x (>= 1.00: met)"),
            "{targets}"
        );
        assert!(
            targets.contains("write amp 0.00 vs 3.00 (no worse: met)"),
            "{targets}"
        );
    }
}
