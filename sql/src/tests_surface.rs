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

/// An array column for unnest to read, correlated.
const TAGS_SETUP: &[&str] = &[
    "CREATE TABLE tg (id int PRIMARY KEY, tags text[])",
    "INSERT INTO tg VALUES (1, '{a,b}'), (2, NULL), (3, '{}'), (4, '{c,NULL,d}')",
];

const UNNEST: &[(&str, &str)] = &[
    (
        r#"SELECT * FROM unnest(ARRAY[1,2])"#,
        r#"1
2"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2]) AS u"#,
        r#"1
2"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2]) AS u(x)"#,
        r#"1
2"#,
    ),
    (
        r#"SELECT x FROM unnest('{a,b}'::text[]) x"#,
        r#"a
b"#,
    ),
    (
        r#"SELECT u.x, pg_typeof(u.x) FROM unnest('{a,b}'::text[]) u(x)"#,
        r#"a|text
b|text"#,
    ),
    (
        r#"SELECT unnest FROM unnest(ARRAY[1.5, NULL])"#,
        r#"1.5
NULL"#,
    ),
    (
        r#"SELECT * FROM unnest('{a,b}')"#,
        r#"ERR 42725 function unnest(unknown) is not unique"#,
    ),
    (
        r#"SELECT * FROM unnest(NULL)"#,
        r#"ERR 42725 function unnest(unknown) is not unique"#,
    ),
    (r#"SELECT * FROM unnest(NULL::int[])"#, r#""#),
    (r#"SELECT count(*) FROM unnest(NULL::int[])"#, r#"0"#),
    (r#"SELECT * FROM unnest('{}'::int[])"#, r#""#),
    (
        r#"SELECT * FROM unnest(1)"#,
        r#"ERR 42883 function unnest(integer) does not exist"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2], ARRAY['a','b','c'])"#,
        r#"1|a
2|b
NULL|c"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2], ARRAY['a','b','c']) AS t"#,
        r#"1|a
2|b
NULL|c"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2], ARRAY['a','b','c']) AS t(a)"#,
        r#"1|a
2|b
NULL|c"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2], NULL::text[]) AS t(a, b)"#,
        r#"1|NULL
2|NULL"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,NULL,3]) WITH ORDINALITY"#,
        r#"1|1
NULL|2
3|3"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,NULL,3]) WITH ORDINALITY AS t"#,
        r#"1|1
NULL|2
3|3"#,
    ),
    (
        r#"SELECT v, n, pg_typeof(n) FROM unnest(ARRAY['x','y']) WITH ORDINALITY AS t(v, n)"#,
        r#"x|1|bigint
y|2|bigint"#,
    ),
    (
        r#"SELECT t.ordinality FROM unnest(ARRAY[5,6]) WITH ORDINALITY t WHERE t = 6"#,
        r#"2"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2]) AS u(x, y)"#,
        r#"ERR 42P10 table "u" has 1 columns available but 2 columns specified"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[1,2]) WITH ORDINALITY AS u(x, y, z)"#,
        r#"ERR 42P10 table "u" has 2 columns available but 3 columns specified"#,
    ),
    (
        r#"SELECT * FROM pg_catalog.unnest(ARRAY[date '2024-01-01', NULL])"#,
        r#"2024-01-01
NULL"#,
    ),
    (
        r#"SELECT * FROM generate_series(10,12) WITH ORDINALITY"#,
        r#"10|1
11|2
12|3"#,
    ),
    (
        r#"SELECT g.* FROM generate_series(timestamp '2024-01-01', '2024-01-02', '12 hours') WITH ORDINALITY g(t, i)"#,
        r#"2024-01-01 00:00:00|1
2024-01-01 12:00:00|2
2024-01-02 00:00:00|3"#,
    ),
    (
        r#"SELECT a, b FROM unnest(ARRAY[1,2]) a, unnest(ARRAY[10,20]) b ORDER BY b, a"#,
        r#"1|10
2|10
1|20
2|20"#,
    ),
    (
        r#"SELECT string_agg(x, ',' ORDER BY x DESC) FROM unnest(ARRAY['b','a','c']) x"#,
        r#"c,b,a"#,
    ),
    (
        r#"SELECT (SELECT sum(v) FROM unnest(ARRAY[1,2,3]) v)"#,
        r#"6"#,
    ),
    (
        r#"SELECT * FROM unnest(ARRAY[interval '1 day', '2 hours']) WITH ORDINALITY o"#,
        r#"1 day|1
02:00:00|2"#,
    ),
    (
        r#"SELECT id, (SELECT count(*) FROM unnest(tg.tags)) FROM tg ORDER BY id"#,
        r#"1|2
2|0
3|0
4|3"#,
    ),
    (
        r#"SELECT id, (SELECT string_agg(u, '+') FROM unnest(tags) WITH ORDINALITY AS x(u, n) WHERE n > 1) FROM tg ORDER BY id"#,
        r#"1|b
2|NULL
3|NULL
4|d"#,
    ),
    (
        r#"SELECT tg.id, u.v FROM tg JOIN unnest(ARRAY['b','c','z']) AS u(v) ON v = ANY(tg.tags) ORDER BY 1, 2"#,
        r#"1|b
4|c"#,
    ),
];

#[test]
fn unnest_and_ordinality() {
    check(TAGS_SETUP, UNNEST);
}
