//! Vectorized execution against row-at-a-time execution: `differential` runs every query
//! both ways (and with pushdown off) and requires identical rows, order and errors. These
//! tests use tables of several batches, so batch boundaries, LIMITs that stop inside a
//! batch and errors in later batches are all crossed.

use proptest::prelude::*;

use crate::tests::{differential, exec_on_cluster};

/// A table of 3000 rows (about three batches per shard on one shard): `a` counts up, `b`
/// cycles through -2..=7 with NULLs, `s` and `x` vary, `f` alternates.
fn setup() -> Vec<&'static str> {
    vec![
        "CREATE TABLE t (id int PRIMARY KEY, a bigint, b int, s text, x float8, f boolean)",
        "INSERT INTO t SELECT g, g * 7 - 9000, CASE WHEN g % 11 = 0 THEN NULL ELSE g % 10 - 2 END, \
         'v' || (g % 13), g / 8.0, g % 2 = 0 FROM generate_series(1, 3000) g",
    ]
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(a), min(b), max(s), avg(x) FROM t WHERE b > 2 AND a < 5000",
    "SELECT b, count(*), sum(a), bool_and(f), string_agg(s, ',' ORDER BY id) FILTER (WHERE id < 40) \
     FROM t WHERE s LIKE 'v1%' OR b IS NULL GROUP BY b ORDER BY b",
    "SELECT id, a + b * 3, -x, s || '!' FROM t WHERE NOT f AND b IN (1, 3, NULL) ORDER BY id",
    "SELECT id FROM t WHERE b IS NOT DISTINCT FROM NULL ORDER BY id DESC LIMIT 7",
    "SELECT id, a FROM t WHERE (a % 5 = 0) IS TRUE ORDER BY a DESC LIMIT 10",
    "SELECT id FROM t WHERE b NOT IN (0, 1, 2) AND s ILIKE 'V2' LIMIT 5",
    "SELECT CASE WHEN b > 3 THEN 'big' ELSE s END, count(*) FROM t GROUP BY 1 ORDER BY 1",
    "SELECT sum(a::numeric / 3), count(DISTINCT b) FROM t WHERE x BETWEEN 10 AND 200",
    "SELECT id, coalesce(b, -1) FROM t WHERE a > 0 ORDER BY id LIMIT 20 OFFSET 1000",
    // Division by zero on some rows: the AND keeps it from being evaluated there.
    "SELECT count(*) FROM t WHERE b <> 0 AND 10 / b > 1",
    "SELECT count(*) FROM t WHERE b = 0 OR 10 / b > 1",
    // Errors: the first failing row's error, as row-at-a-time execution reports it.
    "SELECT count(*) FROM t WHERE 10 / b > 1",
    "SELECT id FROM t WHERE a * 2000000000000000 > 0 AND 10 / b > 0",
    "SELECT sum(100 / (id - 2900)) FROM t",
];

#[test]
fn vectorized_equals_row_at_a_time_on_several_batches() {
    for shards in [1, 3] {
        let out = differential(shards, &setup(), QUERIES);
        // Spot checks that the queries did what they say (the differential is the test).
        assert!(out[11].starts_with("ERR 22012"), "{}", out[11]);
        assert!(out[12].starts_with("ERR"), "{}", out[12]);
        assert!(out[13].starts_with("ERR 22012"), "{}", out[13]);
    }
}

#[test]
fn a_limit_met_before_a_failing_row_is_no_error() {
    // The coordinator-only plan filters every row before its LIMIT, so `differential`
    // does not apply: this compares vectors with row at a time, both pushed down. The
    // shard's first batch is small for a small LIMIT; a failing row later in a batch makes
    // the batch run again row at a time, which stops at the LIMIT first.
    let queries = [
        // Row 1379 is among the first rows a shard scans (rows are in hash order), inside
        // the first batch, after the two rows the LIMIT wants.
        "SELECT count(*) FROM (SELECT id FROM t WHERE 10 / (id - 1379) > -100 LIMIT 2) s",
        "SELECT count(*) FROM (SELECT id FROM t WHERE 10 / (id % 1500) > -100 LIMIT 40) s",
        "SELECT count(*) FROM (SELECT id, 1 / (id - 2999) FROM t LIMIT 20) s",
    ];
    let mut statements = setup();
    statements.extend(queries);
    statements.push("SET helios.vectorized = off");
    statements.extend(queries);
    for shards in [1, 2] {
        let out = exec_on_cluster(shards, &statements);
        let (vectors, rows) = (&out[2..5], &out[6..9]);
        assert_eq!(vectors, rows);
        assert!(vectors.iter().all(|r| !r.starts_with("ERR")), "{vectors:?}");
        assert_eq!(vectors[0], "2");
    }
}

#[test]
fn the_first_failing_row_decides_the_error() {
    // Row 300's b is 0 and row 700's `a * 2` overflows. Whichever of them a shard scans
    // first, one of the two queries fails on a later row's error if a vector's error were
    // reported as is (a vector evaluates one node for all rows before the next node).
    let out = differential(
        1,
        &[
            "CREATE TABLE e (id int PRIMARY KEY, a bigint, b int)",
            "INSERT INTO e SELECT g, CASE WHEN g = 700 THEN 9000000000000000000 ELSE g END, \
             CASE WHEN g = 300 THEN 0 ELSE 1 END FROM generate_series(1, 2000) g",
        ],
        &[
            "SELECT count(*) FROM e WHERE 10 / b > 0 AND a * 2 > 0",
            "SELECT count(*) FROM e WHERE a * 2 > 0 AND 10 / b > 0",
        ],
    );
    assert!(out.iter().all(|r| r.starts_with("ERR")), "{out:?}");
}

#[test]
fn session_setting_turns_vectors_off() {
    let out = exec_on_cluster(
        2,
        &[
            "CREATE TABLE v (id int PRIMARY KEY, a int)",
            "INSERT INTO v SELECT g, g % 7 FROM generate_series(1, 2500) g",
            "SELECT count(*), sum(a) FROM v WHERE a > 3",
            "SET helios.vectorized = off",
            "SELECT count(*), sum(a) FROM v WHERE a > 3",
            "SHOW helios.vectorized",
        ],
    );
    assert_eq!(out[2], out[4]);
    assert!(out[2].contains("1071|5355"), "{}", out[2]);
    assert!(out[5].contains("off"), "{}", out[5]);
}

/// Random predicates and projections over columns of every kind the kernels handle.
fn expr_strategy() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "a",
        "b",
        "id",
        "x",
        "0",
        "1",
        "-3",
        "NULL",
        "2.5",
        "b % 3",
        "(id / 1000)",
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(3, 12, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!["+", "-", "*", "/"]),
            inner,
        )
            .prop_map(|(l, op, r)| format!("({l} {op} {r})"))
    })
}

fn pred_strategy() -> impl Strategy<Value = String> {
    let cmp = (
        expr_strategy(),
        prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM"]),
        expr_strategy(),
    )
        .prop_map(|(l, op, r)| format!("{l} {op} {r}"));
    let atom = prop_oneof![
        cmp,
        Just("f".to_string()),
        Just("b IS NULL".to_string()),
        Just("s LIKE 'v1%'".to_string()),
        Just("b IN (1, 2, NULL)".to_string()),
        Just("(f IS NOT FALSE)".to_string()),
    ];
    atom.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} AND {r})")),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("({l} OR {r})")),
            inner.prop_map(|p| format!("NOT ({p})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Random filters, projections and aggregates: vectors give row-at-a-time's rows and
    /// errors, with and without LIMITs that stop inside a batch.
    #[test]
    fn random_expressions_match_row_at_a_time(
        shards in 1usize..4,
        pred in pred_strategy(),
        e in expr_strategy(),
        limit in 1usize..3000,
    ) {
        let queries = [
            format!("SELECT id, {e} FROM t WHERE {pred} ORDER BY id"),
            format!("SELECT count(*), sum({e}), min({e}) FROM t WHERE {pred}"),
            format!("SELECT b, count(*) FILTER (WHERE {pred}) FROM t GROUP BY b ORDER BY b"),
            format!("SELECT id FROM t WHERE {pred} LIMIT {limit}"),
        ];
        let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
        differential(shards, &setup(), &queries);
    }
}
