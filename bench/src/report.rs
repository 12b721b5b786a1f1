//! Results: the JSON document (`--json`), and the final table with each target's ratio to the
//! first target.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub misses: u64,
    pub latency_us: Latency,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    pub target: String,
    /// The `NAME` of `--target NAME=HOST:PORT`, else the same as `target`.
    pub label: String,
    pub workload: String,
    pub ops_per_sec: f64,
    pub errors: u64,
    pub latency_us: Latency,
    /// Operations measured (all rounds).
    pub ops: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub connection_failures: BTreeMap<String, u64>,
    pub misses: u64,
    pub per_op: BTreeMap<String, OpResult>,
    /// Throughput of each round, in run order.
    pub rounds_ops_per_sec: Vec<f64>,
    /// `ops_per_sec` and `p99` over the first target's (1.0 for the first target).
    pub ratio_ops_per_sec: f64,
    pub ratio_p99: f64,
    /// `[percentile, latency_us]` points for plotting (50 .. 99.999 and 100).
    pub latency_curve_us: Vec<[f64; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub results: Vec<TargetResult>,
    pub config: serde_json::Value,
}

pub const CURVE_PERCENTILES: &[f64] = &[
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

pub fn latency_curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    CURVE_PERCENTILES
        .iter()
        .map(|&p| [p, h.value_at_percentile(p) as f64 / 1000.0])
        .collect()
}

/// Fills `ratio_*` from the first result of the same workload.
pub fn set_ratios(results: &mut [TargetResult]) {
    let Some(first) = results.first().cloned() else {
        return;
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    for r in results.iter_mut() {
        r.ratio_ops_per_sec = ratio(r.ops_per_sec, first.ops_per_sec);
        r.ratio_p99 = ratio(r.latency_us.p99, first.latency_us.p99);
    }
}

pub fn table(results: &[TargetResult]) -> String {
    let mut s = format!(
        "{:<22} {:<9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>8} {:>8}\n",
        "target",
        "workload",
        "ops/s",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "errors",
        "x ops/s",
        "x p99"
    );
    for r in results {
        let l = &r.latency_us;
        s += &format!(
            "{:<22} {:<9} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>7} {:>8.2} {:>8.2}\n",
            r.label, r.workload, r.ops_per_sec, l.p50, l.p90, l.p99, l.p999, l.max, r.errors,
            r.ratio_ops_per_sec, r.ratio_p99
        );
        if r.per_op.len() > 1 {
            for (name, op) in &r.per_op {
                let l = &op.latency_us;
                s += &format!(
                    "{:<22} {:<9} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>7}\n",
                    "",
                    format!("  {name}"),
                    op.ops_per_sec,
                    l.p50,
                    l.p90,
                    l.p99,
                    l.p999,
                    l.max,
                    op.errors
                );
            }
        }
        for (kind, n) in &r.errors_by_kind {
            s += &format!("{:<22}   error {kind}: {n}\n", "");
        }
        for (reason, n) in &r.connection_failures {
            s += &format!("{:<22}   connection failure {reason}: {n}\n", "");
        }
        if r.misses > 0 {
            s += &format!(
                "{:<22}   nil replies: {} (was the data set loaded? --load)\n",
                "", r.misses
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TargetResult {
        let mut h = crate::stats::new_histogram();
        for i in 1..=100 {
            h.record(i * 1000).unwrap();
        }
        TargetResult {
            target: "127.0.0.1:6379".into(),
            label: "redis".into(),
            workload: "get".into(),
            ops_per_sec: 1000.0,
            errors: 0,
            latency_us: Latency::from_histogram(&h),
            ops: 100,
            errors_by_kind: BTreeMap::new(),
            connection_failures: BTreeMap::new(),
            misses: 0,
            per_op: BTreeMap::new(),
            rounds_ops_per_sec: vec![1000.0],
            ratio_ops_per_sec: 1.0,
            ratio_p99: 1.0,
            latency_curve_us: latency_curve(&h),
        }
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let report = Report {
            results: vec![sample()],
            config: serde_json::json!({"connections": 50}),
        };
        let text = serde_json::to_string(&report).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let r = &value["results"][0];
        assert_eq!(r["target"], "127.0.0.1:6379");
        assert_eq!(r["workload"], "get");
        assert_eq!(r["ops_per_sec"], 1000.0);
        assert_eq!(r["errors"], 0);
        for field in ["p50", "p90", "p99", "p999", "max"] {
            assert!(r["latency_us"][field].is_number(), "{field}");
        }
        assert!((r["latency_us"]["p50"].as_f64().unwrap() - 50.0).abs() < 0.1);
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn ratios_are_relative_to_the_first_target() {
        let mut b = sample();
        b.ops_per_sec = 500.0;
        b.latency_us.p99 *= 2.0;
        let mut results = vec![sample(), b];
        set_ratios(&mut results);
        assert_eq!(results[0].ratio_ops_per_sec, 1.0);
        assert_eq!(results[1].ratio_ops_per_sec, 0.5);
        assert_eq!(results[1].ratio_p99, 2.0);
        assert!(table(&results).contains("0.50"));
    }
}
