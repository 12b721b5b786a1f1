//! Set-returning functions in FROM (generate_series over numerics and timestamps, unnest,
//! WITH ORDINALITY) and aggregates (sum/avg of real and interval, FILTER). Each query's
//! rendering (cells joined by '|', rows by newlines, NULL as "NULL") or error is what
//! PostgreSQL 15 returned for it with `TimeZone = UTC` (psql -At, run when these were
//! written); the few results that are HeliosDB's own say so.

use super::tests::exec_on_cluster;

/// Runs each case's query on a fresh 2-shard cluster after `setup` and compares.
fn check(setup: &[&str], cases: &[(&str, &str)]) {
    let statements: Vec<&str> = setup
        .iter()
        .copied()
        .chain(cases.iter().map(|(q, _)| *q))
        .collect();
    let results = exec_on_cluster(2, &statements);
    for (s, got) in setup.iter().zip(&results) {
        assert!(!got.starts_with("ERR"), "setup {s}: {got}");
    }
    let wrong: Vec<String> = cases
        .iter()
        .zip(&results[setup.len()..])
        .filter(|((_, expected), got)| got != expected)
        .map(|((query, expected), got)| format!("{query}\n  got: {got}\n  PostgreSQL: {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const SERIES: &[(&str, &str)] = &[
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-30', '2024-05-01', interval '1 month')"#,
        r#"2024-01-30 00:00:00
2024-02-29 00:00:00
2024-03-29 00:00:00
2024-04-29 00:00:00"#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series('2024-01-01'::date, '2024-01-03'::date, '1 day') g"#,
        r#"2024-01-01 00:00:00+00|timestamp with time zone
2024-01-02 00:00:00+00|timestamp with time zone
2024-01-03 00:00:00+00|timestamp with time zone"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamptz '2024-03-30 12:00', '2024-04-01', '12 hours')"#,
        r#"2024-03-30 12:00:00+00
2024-03-31 00:00:00+00
2024-03-31 12:00:00+00
2024-04-01 00:00:00+00"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-03', '2024-01-01', '-1 day')"#,
        r#"2024-01-03 00:00:00
2024-01-02 00:00:00
2024-01-01 00:00:00"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-01', '2024-01-02', '0 days')"#,
        r#"ERR 22023 step size cannot equal zero"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-01', '2024-01-02', '1 day -24 hours')"#,
        r#"ERR 22023 step size cannot equal zero"#,
    ),
    (
        r#"SELECT count(*) FROM generate_series(timestamp '2024-01-01', '2024-01-02', '-1 day')"#,
        r#"0"#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series(timestamp '2024-01-01', timestamptz '2024-01-02', '1 day') g"#,
        r#"2024-01-01 00:00:00+00|timestamp with time zone
2024-01-02 00:00:00+00|timestamp with time zone"#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series(date '2024-01-01', timestamp '2024-01-02', '1 day') g"#,
        r#"2024-01-01 00:00:00|timestamp without time zone
2024-01-02 00:00:00|timestamp without time zone"#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series(timestamp '2024-01-01', '2024-01-02', '1 day') g"#,
        r#"2024-01-01 00:00:00|timestamp without time zone
2024-01-02 00:00:00|timestamp without time zone"#,
    ),
    (
        r#"SELECT * FROM generate_series('2024-01-01', '2024-01-02', interval '1 day')"#,
        r#"2024-01-01 00:00:00+00
2024-01-02 00:00:00+00"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-01', '2024-01-02', 1)"#,
        r#"ERR 42883 function generate_series(timestamp without time zone, unknown, integer) does not exist"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '2024-01-01', NULL, '1 day')"#,
        r#""#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamp '294276-12-30', '294276-12-31', '1 day')"#,
        r#"ERR 22008 timestamp out of range"#,
    ),
    (
        r#"SELECT count(*), min(g), max(g) FROM generate_series(timestamp '2024-01-01', '2024-12-31', '1 hour 30 minutes') g"#,
        r#"5841|2024-01-01 00:00:00|2024-12-31 00:00:00"#,
    ),
    (
        r#"SELECT * FROM generate_series(timestamptz '2024-02-29 00:00+00', '2025-03-01', '1 year')"#,
        r#"2024-02-29 00:00:00+00
2025-02-28 00:00:00+00"#,
    ),
    (
        r#"SELECT g::date, extract(dow FROM g) FROM generate_series(date '2024-03-01', date '2024-03-05', interval '2 days') g"#,
        r#"2024-03-01|5
2024-03-03|0
2024-03-05|2"#,
    ),
    (
        r#"SELECT * FROM generate_series(1, 3, '1 day')"#,
        r#"ERR 22P02 invalid input syntax for type integer: "1 day""#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series(1.5, 3, 0.5) g"#,
        r#"1.5|numeric
2.0|numeric
2.5|numeric
3.0|numeric"#,
    ),
    (
        r#"SELECT g, pg_typeof(g) FROM generate_series(1, 3.5) g"#,
        r#"1|numeric
2|numeric
3|numeric"#,
    ),
    (
        r#"SELECT * FROM generate_series(1, 3, 0.7)"#,
        r#"1
1.7
2.4"#,
    ),
    (
        r#"SELECT * FROM generate_series(1.00, 1.3, 0.1)"#,
        r#"1.00
1.10
1.20
1.30"#,
    ),
    (
        r#"SELECT * FROM generate_series(3, 1.5, -0.5)"#,
        r#"3
2.5
2.0
1.5"#,
    ),
    (
        r#"SELECT * FROM generate_series(1.0, 2.0, 0.0)"#,
        r#"ERR 22023 step size cannot equal zero"#,
    ),
    (r#"SELECT * FROM generate_series(1.0, NULL)"#, r#""#),
    (
        r#"SELECT * FROM generate_series(1.5::float8, 3)"#,
        r#"ERR 42883 function generate_series(double precision, integer) does not exist"#,
    ),
    (
        r#"SELECT * FROM generate_series('1', '3')"#,
        r#"ERR 42725 function generate_series(unknown, unknown) is not unique"#,
    ),
    (r#"SELECT * FROM generate_series(NULL, 2)"#, r#""#),
    (
        r#"SELECT * FROM generate_series(1, 3) WITH ORDINALITY AS g"#,
        r#"1|1
2|2
3|3"#,
    ),
];

#[test]
fn generate_series_over_numerics_and_timestamps() {
    check(&[], SERIES);
}

/// The row bound is HeliosDB's (PostgreSQL spills to disk).
#[test]
fn generate_series_is_bounded() {
    let r = exec_on_cluster(
        1,
        &[
            "SELECT count(*) FROM generate_series(1, 10000000000)",
            "SELECT count(*) FROM generate_series(0.5, 100000000)",
            "SELECT count(*) FROM generate_series(timestamp '2000-01-01', '2100-01-01', '1 second')",
            "SELECT count(*) FROM generate_series(timestamp '2000-01-01', 'infinity', '1 day')",
        ],
    );
    for got in r {
        assert_eq!(
            got,
            "ERR 54000 generate_series produces at most 10000000 rows"
        );
    }
}
