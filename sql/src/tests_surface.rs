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

/// A table over 2 shards with real, float8, interval, date and text values, NULLs among
/// them, for aggregates.
const AG_SETUP: &[&str] = &[
    "CREATE TABLE ag (id int PRIMARY KEY, g int, r real, d float8, iv interval, dt date, u uuid, v varchar(5))",
    "INSERT INTO ag VALUES \
     (1, 1, 0.1, 0.1, '1 day', '2024-01-02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'b'), \
     (2, 1, 0.2, 1e308, '2 hours', '2023-12-31', '00000000-0000-0000-0000-000000000001', 'a'), \
     (3, 2, NULL, NULL, NULL, NULL, NULL, NULL), \
     (4, 2, 1e7, 2.5, '1 mon 30 minutes', '2024-02-29', NULL, 'zz'), \
     (5, 2, 1, -1, '-3 days', '2020-01-01', NULL, 'c'), \
     (6, 3, 3e38, 1e308, '1 us', '2024-01-01', NULL, 'x'), \
     (7, 3, 3e38, 0, '1 mon', '2024-01-01', NULL, 'y'), \
     (8, NULL, 2.5, 1, '7 days', NULL, NULL, NULL)",
];

const AGGREGATES: &[(&str, &str)] = &[
    (
        r#"SELECT sum(x), pg_typeof(sum(x)), avg(x), pg_typeof(avg(x)) FROM (VALUES (0.1::real), (0.2::real), (NULL)) v(x)"#,
        r#"0.3|real|0.15000000223517418|double precision"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES (1e7::real), (1::real), (1::real)) v(x)"#,
        r#"1.0000002e+07"#,
    ),
    (
        r#"SELECT sum(x), avg(x) FROM (VALUES (16777216::real), (1::real), (1::real)) v(x)"#,
        r#"1.6777216e+07|5592406"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES (3e38::real), (3e38::real)) v(x)"#,
        r#"ERR 22003 value out of range: overflow"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (3e38::real), (3e38::real)) v(x)"#,
        r#"3.0000000054977558e+38"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES ('inf'::real), (1::real)) v(x)"#,
        r#"Infinity"#,
    ),
    (
        r#"SELECT sum(x), avg(x) FROM (VALUES (1e308::float8), (1e308::float8)) v(x)"#,
        r#"ERR 22003 value out of range: overflow"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES ('inf'::float8), ('-inf'::float8)) v(x)"#,
        r#"NaN"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES (NULL::real)) v(x)"#,
        r#"NULL"#,
    ),
    (
        r#"SELECT sum(x), pg_typeof(sum(x)), avg(x), pg_typeof(avg(x)) FROM (VALUES (interval '1 day'), (interval '2 hours'), (NULL), (interval '1 month 30 minutes')) v(x)"#,
        r#"1 mon 1 day 02:30:00|interval|10 days 08:50:00|interval"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '1 month'), (interval '0'), (interval '0')) v(x)"#,
        r#"10 days"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '1 month 1 day'), (interval '1 day 1 second'), (interval '1 hour')) v(x)"#,
        r#"10 days 16:20:00.333333"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '1 year'), (interval '-1 day'), (interval '7 seconds'), (interval '1 mon 1 us'), (interval '2 days')) v(x)"#,
        r#"2 mons 18 days 04:48:01.4"#,
    ),
    (
        r#"SELECT avg(x), sum(x) FROM (VALUES (interval '-1 month -3 days'), (interval '1 minute')) v(x)"#,
        r#"-16 days -11:59:30|-1 mons -3 days +00:01:00"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '5 months'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0')) v(x)"#,
        r#"21 days 10:17:08.5344"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '1 day'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0')) v(x)"#,
        r#"03:25:42.857143"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '10 months 10 days 10 hours'), (interval '0'), (interval '0')) v(x)"#,
        r#"3 mons 13 days 11:20:00"#,
    ),
    (
        r#"SELECT avg(x) FROM (VALUES (interval '1 mon'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0'), (interval '0')) v(x)"#,
        r#"2 days 17:27:16.3872"#,
    ),
    (
        r#"SELECT sum(x), avg(x) FROM (VALUES (NULL::interval)) v(x)"#,
        r#"NULL|NULL"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES (interval '2147483647 days'), (interval '1 day'), (interval '-5 days')) v(x)"#,
        r#"ERR 22008 interval out of range"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES (interval '2000000000 months'), (interval '2000000000 months')) v(x)"#,
        r#"ERR 22008 interval out of range"#,
    ),
    (
        r#"SELECT sum(DISTINCT x), avg(DISTINCT x), count(DISTINCT x) FROM (VALUES (interval '1 day'), (interval '24 hours'), (interval '1 hour')) v(x)"#,
        r#"1 day 01:00:00|12:30:00|2"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (interval '1 day'), (interval '24 hours'), (interval '1 hour'), (interval '1 mon'), (interval '30 days')) v(x)"#,
        r#"01:00:00|30 days"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (date '2024-01-02'), (date '2023-12-31'), (NULL)) v(x)"#,
        r#"2023-12-31|2024-01-02"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid), ('00000000-0000-0000-0000-000000000001'::uuid)) v(x)"#,
        r#"ERR 42883 function min(uuid) does not exist"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (timestamptz '2024-01-01 00:00+05'), (timestamptz '2023-12-31 20:00+00')) v(x)"#,
        r#"2023-12-31 19:00:00+00|2023-12-31 20:00:00+00"#,
    ),
    (
        r#"SELECT sum(x::real) FROM generate_series(1, 1000) x"#,
        r#"500500"#,
    ),
    (
        r#"SELECT sum(x * 0.1::real) FROM generate_series(1, 100) x"#,
        r#"505.0000075250864"#,
    ),
    (
        r#"SELECT sum(x) FROM (VALUES ('1 day'), ('2 days')) v(x)"#,
        r#"ERR 42883 function sum(text) does not exist"#,
    ),
    (
        r#"SELECT avg(x::interval) FROM (VALUES ('1 day'), ('2 days')) v(x)"#,
        r#"1 day 12:00:00"#,
    ),
    (
        r#"SELECT min(v), pg_typeof(max(v)), min('b'::name), pg_typeof(min('b'::name)), max('ab'::char(3)) || '|' FROM ag"#,
        r#"a|text|b|text|ab|"#,
    ),
    (
        r#"SELECT min(x) FROM (VALUES (true)) v(x)"#,
        r#"ERR 42883 function min(boolean) does not exist"#,
    ),
    (
        r#"SELECT max('\x01'::bytea)"#,
        r#"ERR 42883 function max(bytea) does not exist"#,
    ),
    (
        r#"SELECT min('{}'::jsonb)"#,
        r#"ERR 42883 function min(jsonb) does not exist"#,
    ),
    (
        r#"SELECT g, sum(r), avg(r), sum(iv), avg(iv), min(iv), max(dt) FROM ag WHERE g < 3 GROUP BY g ORDER BY g"#,
        r#"1|0.3|0.15000000223517418|1 day 02:00:00|13:00:00|02:00:00|2024-01-02
2|1.0000001e+07|5000000.5|1 mon -3 days +00:30:00|14 days -11:45:00|-3 days|2024-02-29"#,
    ),
    (
        r#"SELECT g, sum(r) FROM ag GROUP BY g ORDER BY g"#,
        r#"ERR 22003 value out of range: overflow"#,
    ),
    (
        r#"SELECT g, sum(d) FROM ag GROUP BY g ORDER BY g"#,
        r#"1|1e+308
2|1.5
3|1e+308
NULL|1"#,
    ),
    (
        r#"SELECT sum(iv), avg(iv), count(iv), min(iv), max(iv) FROM ag"#,
        r#"2 mons 5 days 02:30:00.000001|9 days 07:12:51.4656|7|-3 days|1 mon 00:30:00"#,
    ),
    (
        r#"SELECT g, avg(iv) FROM ag GROUP BY g ORDER BY g"#,
        r#"1|13:00:00
2|14 days -11:45:00
3|15 days
NULL|7 days"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (1.0), (1.00), (1.000)) v(x)"#,
        r#"1.000|1.000"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (interval '1 day'), (interval '24 hours')) v(x)"#,
        r#"24:00:00|24:00:00"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES (0::float8), ('-0'::float8)) v(x)"#,
        r#"-0|-0"#,
    ),
    (
        r#"SELECT min(x), max(x) FROM (VALUES ('-0'::float8), (0::float8)) v(x)"#,
        r#"0|0"#,
    ),
];

#[test]
fn sum_and_avg_of_real_and_interval_min_max() {
    check(AG_SETUP, AGGREGATES);
}

/// The new aggregates are not split into partial aggregates (float and interval sums
/// depend on the order of additions), so pushdown changes no result.
#[test]
fn new_aggregates_agree_with_pushdown_off() {
    let r = super::tests::differential(
        3,
        AG_SETUP,
        &[
            "SELECT sum(r), avg(r), sum(iv), avg(iv), min(iv), max(dt), min(v) FROM ag WHERE g < 3",
            "SELECT g, sum(iv), avg(iv), count(*), max(iv) FROM ag GROUP BY g ORDER BY g",
            "SELECT g, sum(r) FROM ag GROUP BY g",
        ],
    );
    assert_eq!(r[2], "ERR 22003 value out of range: overflow");
}

/// min/max keep the later of equal values (PostgreSQL's numeric_smaller and the like), in
/// shard partials and when merging them alike.
#[test]
fn min_max_ties_agree_with_pushdown_off() {
    let r = super::tests::differential(
        3,
        &[
            "CREATE TABLE nt (id int PRIMARY KEY, g int, n numeric, iv interval)",
            "INSERT INTO nt SELECT i, i % 2, round(1, i % 5), (i % 3) * interval '1 day' + (i % 2) * interval '24 hours' FROM generate_series(1, 40) i",
        ],
        &[
            "SELECT min(n), max(n) FROM nt WHERE n = 1",
            "SELECT g, min(n), max(n), count(*) FROM nt WHERE n = 1 GROUP BY g ORDER BY g",
        ],
    );
    // Which of the equal values is last depends on where the rows live (the table's rows
    // in shard order, then key order), not on the plan.
    assert_eq!(r[0], "min:1700,max:1700 => 1.0|1.0 [SELECT 1]");
    assert_eq!(
        r[1],
        "g:23,min:1700,max:1700,count:20 => 0|1|1|20 / 1|1.0|1.0|20 [SELECT 2]"
    );
}

const FILTERS: &[(&str, &str)] = &[
    (
        r#"SELECT count(*) FILTER (WHERE x > 1), count(x) FILTER (WHERE x < 3), sum(x) FILTER (WHERE x % 2 = 0), count(*) FROM generate_series(1, 5) x"#,
        r#"4|2|6|5"#,
    ),
    (
        r#"SELECT count(*) FILTER (WHERE x > 10), sum(x) FILTER (WHERE x > 10), array_agg(x) FILTER (WHERE false), bool_and(true) FILTER (WHERE x IS NULL) FROM generate_series(1, 5) x"#,
        r#"0|NULL|NULL|NULL"#,
    ),
    (
        r#"SELECT g, count(*) FILTER (WHERE r > 1), sum(iv) FILTER (WHERE iv > '1 hour'), string_agg(v, ',' ORDER BY v DESC) FILTER (WHERE v <> 'zz') FROM ag GROUP BY g ORDER BY g"#,
        r#"1|0|1 day 02:00:00|b,a
2|1|1 mon 00:30:00|c
3|2|1 mon|y,x
NULL|1|7 days|NULL"#,
    ),
    (
        r#"SELECT count(DISTINCT g) FILTER (WHERE id > 2), array_agg(DISTINCT g) FILTER (WHERE id > 2) FROM ag"#,
        r#"2|{2,3,NULL}"#,
    ),
    (
        r#"SELECT avg(d) FILTER (WHERE d < 1e300), min(dt) FILTER (WHERE g = 2), max(v) FILTER (WHERE v < 'y') FROM ag"#,
        r#"0.52|2020-01-01|x"#,
    ),
    (
        r#"SELECT g, count(*) FILTER (WHERE id = ANY(ARRAY[1,4,8])) FROM ag GROUP BY g HAVING count(*) FILTER (WHERE id > 3) > 0 ORDER BY g"#,
        r#"2|1
3|0
NULL|1"#,
    ),
    (r#"SELECT count(*) FILTER (WHERE NULL) FROM ag"#, r#"0"#),
    (
        r#"SELECT count(*) FILTER (WHERE 1) FROM ag"#,
        r#"ERR 42804 argument of FILTER must be type boolean, not type integer"#,
    ),
    (
        r#"SELECT count(*) FILTER (WHERE count(*) > 1) FROM ag"#,
        r#"ERR 42803 aggregate functions are not allowed in FILTER"#,
    ),
    (
        r#"SELECT lower('a') FILTER (WHERE true)"#,
        r#"ERR 42809 FILTER specified, but lower is not an aggregate function"#,
    ),
    (
        r#"SELECT g, sum(id) FILTER (WHERE id > (SELECT 2)) FROM ag GROUP BY g ORDER BY g"#,
        r#"1|NULL
2|12
3|13
NULL|8"#,
    ),
    (r#"SELECT count(*) FILTER (WHERE 'true') FROM ag"#, r#"8"#),
    (
        r#"SELECT count(*) FILTER (WHERE g IS NULL) FROM ag"#,
        r#"1"#,
    ),
];

#[test]
fn aggregate_filter() {
    check(AG_SETUP, FILTERS);
}

/// FILTER is applied by whichever grouper folds the row, so a filtered call splits into
/// shard partials like an unfiltered one.
#[test]
fn aggregate_filter_agrees_with_pushdown_off() {
    // Expected rows: PostgreSQL's.
    let r = super::tests::differential(
        3,
        AG_SETUP,
        &[
            "SELECT count(*) FILTER (WHERE g > 1), count(v) FILTER (WHERE id % 2 = 0), min(dt) FILTER (WHERE g = 2), max(id) FILTER (WHERE v < 'y'), bool_or(id > 6) FILTER (WHERE g IS NULL) FROM ag",
            "SELECT g, count(*) FILTER (WHERE id > 3), sum(id) FILTER (WHERE v IS NOT NULL), count(*) FROM ag GROUP BY g ORDER BY g",
            "SELECT g, sum(id) FILTER (WHERE id > (SELECT 2)) FROM ag GROUP BY g ORDER BY g",
            "SELECT count(*) FILTER (WHERE u IS NOT NULL) FROM ag WHERE id < 5",
        ],
    );
    assert_eq!(
        r[0],
        "count:20,count:20,min:1082,max:23,bool_or:16 => 5|3|2020-01-01|6|t [SELECT 1]"
    );
    assert_eq!(
        r[1],
        "g:23,count:20,sum:20,count:20 => 1|0|3|2 / 2|2|9|3 / 3|2|13|2 / NULL|1|NULL|1 [SELECT 4]"
    );
    assert_eq!(r[3], "count:20 => 2 [SELECT 1]");
}

#[test]
fn explain_shows_a_pushed_filter() {
    let mut statements = AG_SETUP.to_vec();
    statements.push("EXPLAIN SELECT g, count(*) FILTER (WHERE id > 3) FROM ag GROUP BY g");
    let r = exec_on_cluster(2, &statements);
    let plan = r.last().expect("a result");
    assert!(
        plan.contains("Partial Aggregate: count(*) FILTER (WHERE (id > 3))"),
        "{plan}"
    );
}
