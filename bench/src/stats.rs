//! Measurements: one latency histogram (nanoseconds) per operation type, errors counted by kind,
//! nil replies, connection failures. Each worker thread owns one `Stats`; threads' stats are
//! merged after the run, so nothing on the hot path is shared.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Latencies above this are recorded as this (a minute is far past any sane request).
const LATENCY_NS_MAX: u64 = 60_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
        .expect("static histogram bounds are valid")
}

#[derive(Clone, Debug)]
pub struct OpStats {
    pub latency_ns: Histogram<u64>,
    /// Error replies by their first word (`ERR`, `WRONGTYPE`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Nil replies (a GET of a missing key): not errors, but a sign the data set was not loaded.
    pub misses: u64,
}

impl Default for OpStats {
    fn default() -> OpStats {
        OpStats {
            latency_ns: new_histogram(),
            errors: BTreeMap::new(),
            misses: 0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Indexed by the workload's operation index.
    pub ops: Vec<OpStats>,
    /// Connections that could not be opened, or were lost mid-run, by reason.
    pub connection_failures: BTreeMap<String, u64>,
    /// When the last measured operation completed (ends the window of a `--requests` run).
    pub last_done: Option<Instant>,
}

impl Stats {
    pub fn new(op_count: usize) -> Stats {
        Stats {
            ops: (0..op_count).map(|_| OpStats::default()).collect(),
            ..Stats::default()
        }
    }

    pub fn record(&mut self, op: usize, latency_ns: u64) {
        self.ops[op]
            .latency_ns
            .saturating_record(latency_ns.clamp(1, LATENCY_NS_MAX));
    }

    pub fn record_error(&mut self, op: usize, kind: &str) {
        *self.ops[op].errors.entry(kind.to_string()).or_insert(0) += 1;
    }

    pub fn connection_failure(&mut self, reason: String) {
        *self.connection_failures.entry(reason).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        if self.ops.len() < other.ops.len() {
            self.ops.resize_with(other.ops.len(), OpStats::default);
        }
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.latency_ns
                .add(&theirs.latency_ns)
                .expect("histograms share bounds");
            for (kind, n) in &theirs.errors {
                *mine.errors.entry(kind.clone()).or_insert(0) += n;
            }
            mine.misses += theirs.misses;
        }
        for (reason, n) in &other.connection_failures {
            *self.connection_failures.entry(reason.clone()).or_insert(0) += n;
        }
        self.last_done = self.last_done.max(other.last_done);
    }

    /// All operation types together.
    pub fn total_latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for op in &self.ops {
            all.add(&op.latency_ns).expect("histograms share bounds");
        }
        all
    }

    pub fn op_count(&self) -> u64 {
        self.ops.iter().map(|o| o.latency_ns.len()).sum()
    }

    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for op in &self.ops {
            for (kind, n) in &op.errors {
                *all.entry(kind.clone()).or_insert(0) += n;
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_threads_sums_counts_and_keeps_extremes() {
        let mut a = Stats::new(2);
        let mut b = Stats::new(2);
        for i in 1..=1000u64 {
            a.record(0, i * 1000);
        }
        b.record(0, 5_000_000);
        b.record(1, 2000);
        b.record_error(1, "ERR");
        a.record_error(1, "ERR");
        a.connection_failure("refused".into());
        a.merge(&b);
        assert_eq!(a.ops[0].latency_ns.len(), 1001);
        assert_eq!(a.ops[1].latency_ns.len(), 1);
        assert_eq!(a.op_count(), 1002);
        assert!(a.ops[0].latency_ns.max() >= 4_990_000);
        assert_eq!(a.errors_by_kind()["ERR"], 2);
        assert_eq!(a.connection_failures["refused"], 1);
        let p50 = a.total_latency().value_at_quantile(0.5);
        assert!((495_000..=505_000).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn merging_threads_in_parallel() {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut s = Stats::new(1);
                    for i in 0..10_000 {
                        s.record(0, 1000 + t * 10_000 + i);
                    }
                    s
                })
            })
            .collect();
        let mut total = Stats::new(1);
        for h in handles {
            total.merge(&h.join().unwrap());
        }
        assert_eq!(total.op_count(), 40_000);
        assert!(total.ops[0].latency_ns.min() <= 1001);
    }
}
