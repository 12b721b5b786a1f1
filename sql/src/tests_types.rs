//! The data types beyond integers, numeric and text, and the function library: each query's
//! one row (cells joined by '|', NULL as "NULL") or SQLSTATE is what PostgreSQL 15 returned
//! for it with `TimeZone = UTC` (psql -At, run by hand when these were written).

use super::tests::exec_on_cluster;

const VALUES: &[(&str, &str)] = &[
    (
        r#"SELECT 1.5::real, 0.1::real, 1e10::real, 123456::real, 1234567::real, (0.1::real + 0.2::real), pg_typeof(1::real + 1), pg_typeof(1::real * 2::real)"#,
        r#"1.5|0.1|1e+10|123456|1.234567e+06|0.3|double precision|real"#,
    ),
    (
        r#"SELECT 'ab'::char(4) || '|', 'ab'::char(4) = 'ab', 'ab  '::char(3)::text || '|', length('ab'::char(4)), pg_typeof('x'::char(2))"#,
        r#"ab||t|ab||2|character"#,
    ),
    (
        r#"SELECT '\x0aff'::bytea, 'a\000b'::bytea, octet_length('\xdeadbeef'::bytea), md5('abc'), md5('abc'::bytea)"#,
        r#"\x0aff|\x610062|4|900150983cd24fb0d6963f7d28e17f72|900150983cd24fb0d6963f7d28e17f72"#,
    ),
    (
        r#"SELECT '2024-02-29'::date, date '2024-01-31' + 1, date '2024-03-01' - date '2024-02-01', date '2024-01-31' + interval '1 month', '1/2/2024'::date, 'epoch'::date, '0044-03-15 BC'::date"#,
        r#"2024-02-29|2024-02-01|29|2024-02-29 00:00:00|2024-01-02|1970-01-01|0044-03-15 BC"#,
    ),
    (
        r#"SELECT '12:34:56.789'::time, time '10:00' + interval '3 hours', time '23:00' + interval '2 hours', time '12:00' - time '10:30'"#,
        r#"12:34:56.789|13:00:00|01:00:00|01:30:00"#,
    ),
    (
        r#"SELECT '2024-03-10 12:34:56.789'::timestamp, timestamp '2024-01-31 10:00' + interval '1 month', timestamp '2024-01-01' - timestamp '2023-12-25 12:00', '2024-01-15T08:00:00'::timestamp, timestamp '2024-01-01 00:00' - interval '1 day 2 hours'"#,
        r#"2024-03-10 12:34:56.789|2024-02-29 10:00:00|6 days 12:00:00|2024-01-15 08:00:00|2023-12-30 22:00:00"#,
    ),
    (
        r#"SELECT '2024-03-10 12:34:56.789+02'::timestamptz, timestamptz '2024-01-15 08:00:00' + interval '1 day', '2024-01-15 08:00'::timestamptz::date, '2024-06-01 12:00+00'::timestamptz::timestamp"#,
        r#"2024-03-10 10:34:56.789+00|2024-01-16 08:00:00+00|2024-01-15|2024-06-01 12:00:00"#,
    ),
    (
        r#"SELECT interval '1 year 2 months 3 days 04:05:06.5', interval '1.5 days', interval '90 minutes', -interval '1 day', interval '1 day' * 2.5, interval '1 hour' / 4, interval '1 day' = interval '24 hours', interval '1 mon' > interval '29 days', '@ 2 hours ago'::interval"#,
        r#"1 year 2 mons 3 days 04:05:06.5|1 day 12:00:00|01:30:00|-1 days|2 days 12:00:00|00:15:00|t|t|-02:00:00"#,
    ),
    (
        r#"SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, '{a0eebc999c0b4ef8bb6d6bb9bd380a11}'::uuid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, pg_typeof(gen_random_uuid())"#,
        r#"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|t|uuid"#,
    ),
    (
        r#"SELECT '{"b":1,"a":[1,2.50,1e2],"aa":null,"a":true}'::jsonb, '[1, "x", {"k": false}]'::jsonb, '"tab\there"'::jsonb, '{}'::jsonb = '{ }'::jsonb"#,
        r#"{"a": true, "b": 1, "aa": null}|[1, "x", {"k": false}]|"tab\there"|t"#,
    ),
    (
        r#"SELECT ARRAY[1,2,3], ARRAY['a','b c',NULL], '{1,2,NULL}'::int[], (ARRAY[10,20,30])[2], 2 = ANY(ARRAY[1,2,3]), 5 = ANY('{1,2}'::int[]), 1 < ALL(ARRAY[2,3]), array_length(ARRAY[1,2,3], 1), cardinality(ARRAY['x']), array_append(ARRAY[1,2], 3), array_cat(ARRAY[1], ARRAY[2,3]), pg_typeof(ARRAY[1.5])"#,
        r#"{1,2,3}|{a,"b c",NULL}|{1,2,NULL}|20|t|f|t|3|1|{1,2,3}|{1,2,3}|numeric[]"#,
    ),
    (
        r#"SELECT substr('hello world', 7), substring('hello world' from 1 for 5), substr('abc', 0, 2), position('lo' in 'hello'), strpos('hello', 'z'), trim('  x  ') || '|', ltrim('xxabc', 'x'), rtrim('abc  ') || '|', btrim('--a--', '-'), trim(leading 'x' from 'xxaxx')"#,
        r#"world|hello|a|4|0|x||abc|abc||a|axx"#,
    ),
    (
        r#"SELECT replace('abcabc', 'b', 'XY'), left('abcdef', 2), right('abcdef', -2), lpad('7', 3, '0'), rpad('ab', 5, '-.'), lpad('toolong', 3), repeat('ab', 3), reverse('abc'), split_part('a,b,c', ',', 2), split_part('a,b,c', ',', -1), starts_with('hello', 'he'), initcap('hello wORLD-foo')"#,
        r#"aXYcaXYc|ab|cdef|007|ab-.-|too|ababab|cba|b|c|t|Hello World-Foo"#,
    ),
    (
        r#"SELECT ascii('A'), chr(65), to_hex(255), to_hex(-1), translate('12345', '143', 'ax'), concat('a', 1, NULL, true), concat_ws(', ', 'a', NULL, 'b'), upper('abc') || lower('DEF')"#,
        r#"65|A|ff|ffffffff|a2x5|a1t|a, b|ABCdef"#,
    ),
    (
        r#"SELECT round(2.5), round(-2.5), round(2.567, 2), round(1234.5, -2), round(2.5::float8), trunc(2.99), trunc(-2.567, 1), ceil(1.2), floor(-1.2), ceiling(1.0001::float8), floor(3.7::float8)"#,
        r#"3|-3|2.57|1200|2|2|-2.5|2|-2|2|3"#,
    ),
    (
        r#"SELECT sqrt(2), exp(1), ln(10), log(100), power(2, 10), mod(7, 3), mod(-7, 3), mod(7.5, 2), sign(-3.2), sign(0::float8), pi(), degrees(pi()), div(7, 2), abs(-1.5::real)"#,
        r#"1.4142135623730951|2.718281828459045|2.302585092994046|2|1024|1|-1|1.5|-1|0|3.141592653589793|180|3|1.5"#,
    ),
    (
        r#"SELECT greatest(1, 5, 3), least(1.5, 0.5, 2), greatest('a', 'c', 'b'), greatest(NULL, 2), least(NULL::int, NULL)"#,
        r#"5|0.5|c|2|NULL"#,
    ),
    (
        r#"SELECT date_trunc('month', timestamp '2024-03-10 12:34:56'), date_trunc('hour', timestamp '2024-03-10 12:34:56'), date_trunc('week', timestamp '2024-03-10 12:34:56'), date_trunc('year', timestamptz '2024-03-10 12:34:56+00'), date_trunc('hour', interval '1 day 02:30:00')"#,
        r#"2024-03-01 00:00:00|2024-03-10 12:00:00|2024-03-04 00:00:00|2024-01-01 00:00:00+00|1 day 02:00:00"#,
    ),
    (
        r#"SELECT extract(year from timestamp '2024-03-10 12:34:56.5'), extract(second from timestamp '2024-03-10 12:34:56.5'), extract(epoch from timestamp '2024-01-01'), extract(dow from date '2024-03-10'), extract(doy from date '2024-03-10'), extract(epoch from interval '1 day'), date_part('month', timestamp '2024-03-10'), date_part('hour', interval '5 hours'), extract(milliseconds from time '00:00:01.5')"#,
        r#"2024|56.500000|1704067200.000000|0|70|86400.000000|3|5|1500.000"#,
    ),
    (
        r#"SELECT age(timestamp '2024-03-10', timestamp '2023-12-25 12:00'), make_date(2024, 2, 29), make_time(12, 30, 15.5), make_timestamp(2024, 1, 2, 3, 4, 5.5), to_timestamp(0), to_timestamp(1700000000.5)"#,
        r#"2 mons 15 days 12:00:00|2024-02-29|12:30:15.5|2024-01-02 03:04:05.5|1970-01-01 00:00:00+00|2023-11-14 22:13:20.5+00"#,
    ),
    (
        r#"SELECT '2024-01-01'::date < '2024-01-01 00:00:01'::timestamp, timestamp '2024-01-01' = timestamptz '2024-01-01 00:00:00+00', date '2024-01-02' > date '2024-01-01', '1 day'::interval + '1 hour'"#,
        r#"t|t|t|1 day 01:00:00"#,
    ),
    (
        r#"SELECT 'infinity'::date, '-infinity'::timestamp, 'infinity'::timestamptz > now(), '2024-01-01 24:00:00'::timestamp"#,
        r#"infinity|-infinity|t|2024-01-02 00:00:00"#,
    ),
    (
        r#"SELECT to_char(timestamp '2024-03-05 14:07:09.123456', 'YYYY-MM-DD HH24:MI:SS.MS US'), to_char(timestamp '2024-03-05 14:07:09', 'Day, DD Month YYYY HH12:MI AM'), to_char(timestamp '2024-03-05 04:07:09', 'FMDay FMMonth FMDD fmHH12 am Dy Mon YY Q WW DDD D "quoted" IW'), to_char(date '2024-12-31', 'YYYY/MM/DD'), to_char(timestamptz '2024-03-05 14:07:09+00', 'YYYY-MM-DD"T"HH24:MI:SSOF TZ'), to_char(timestamp '2024-03-05 00:07:09', 'HH12 PM hh24 mon MON')"#,
        r#"2024-03-05 14:07:09.123 123456|Tuesday  , 05 March     2024 02:07 PM|Tuesday March 5 4 am Tue Mar 24 1 10 065 3 quoted 10|2024/12/31|2024-03-05T14:07:09+00 UTC|12 AM 00 mar MAR"#,
    ),
    (
        r#"SELECT regexp_replace('Hello World', 'o', '0'), regexp_replace('Hello World', 'o', '0', 'g'), regexp_replace('abc', '(b)', '[\1]'), string_to_array('a,b,,c', ','), string_to_array('a b', NULL), format('%s-%I-%L-%%', 'x', 'My Tab', 'it''s'), format('%s', NULL), format('%L', NULL), regexp_match('foo123bar', '(\d+)'), array_to_string(ARRAY[1,NULL,3], '-', '*'), array_position(ARRAY['a','b'], 'b')"#,
        r#"Hell0 World|Hell0 W0rld|a[b]c|{a,b,"",c}|{a," ",b}|x-"My Tab"-'it''s'-%||NULL|{123}|1-*-3|2"#,
    ),
];

/// Explicit casts cut strings to length; assignment refuses them (below).
const CUT: (&str, &str) = (
    "SELECT 'toolong'::varchar(3), 'ab'::char(1), varchar(2) 'xyz', 'a  '::varchar(1) || '|'",
    "too|a|xy|a|",
);

/// Interval division as PostgreSQL 15's interval_div rounds it.
const INTERVAL_DIVISION: (&str, &str) = (
    "SELECT interval '5 months' / 7, interval '1 day' / 3, interval '1 hour' / 4",
    "21 days 10:17:08.5344|08:00:00|00:15:00",
);

const ERRORS: &[(&str, &str)] = &[
    (r#"SELECT '2023-02-29'::date"#, "22008"),
    (r#"SET TimeZone = 'Not/AZone'"#, "22023"),
    (r#"SELECT 'garbage'::timestamp"#, "22007"),
    (r#"SELECT '1 fortnight'::interval"#, "22007"),
    (r#"SELECT 'not-a-uuid'::uuid"#, "22P02"),
    (r#"SELECT '{"a":}'::jsonb"#, "22P02"),
    (r#"SELECT '\xzz'::bytea"#, "22023"),
    (r#"SELECT '1e40'::real"#, "22003"),
    (r#"SELECT date '2024-01-01' + date '2024-01-01'"#, "42883"),
    (
        r#"SELECT date_trunc('fortnight', timestamp '2024-01-01')"#,
        "22023",
    ),
    (r#"SELECT split_part('a', ',', 0)"#, "22023"),
    (r#"SELECT make_date(2023, 2, 29)"#, "22008"),
    (r#"SELECT sqrt(-1)"#, "2201F"),
    (r#"SELECT ln(0)"#, "2201E"),
    (r#"SELECT '{1,2'::int[]"#, "22P02"),
    (r#"SELECT substr('abc', 1, -1)"#, "22011"),
];

#[test]
fn values_functions_and_operators_match_postgres() {
    let queries: Vec<&str> = VALUES.iter().map(|(q, _)| *q).collect();
    let results = exec_on_cluster(2, &queries);
    for ((q, expected), got) in VALUES.iter().zip(results) {
        assert_eq!(got, *expected, "query: {q}");
    }
}

#[test]
fn intervals_divide_as_postgres_does() {
    assert_eq!(
        exec_on_cluster(1, &[INTERVAL_DIVISION.0]),
        vec![INTERVAL_DIVISION.1.to_string()]
    );
}

#[test]
fn explicit_casts_cut_strings_to_length() {
    assert_eq!(exec_on_cluster(1, &[CUT.0]), vec![CUT.1.to_string()]);
}

#[test]
fn bad_values_fail_with_postgres_sqlstates() {
    let queries: Vec<&str> = ERRORS.iter().map(|(q, _)| *q).collect();
    let results = exec_on_cluster(2, &queries);
    for ((q, code), got) in ERRORS.iter().zip(results) {
        assert!(
            got.starts_with(&format!("ERR {code}")),
            "query: {q} gave {got}"
        );
    }
}

#[test]
fn typed_columns_store_and_return_values_on_every_shard() {
    let results = exec_on_cluster(
        3,
        &[
            "CREATE TABLE ev (id uuid PRIMARY KEY, at timestamptz NOT NULL, day date, t time, \
             took interval, r real, code char(3), raw bytea, doc jsonb, tags text[], n int[])",
            "INSERT INTO ev VALUES \
             ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-03-10 12:00:00+02', '2024-03-10', '08:30', '1 day 2 hours', 1.25, 'ab', '\\x00ff', '{\"k\": [1, 2]}', '{x,\"y z\"}', '{1,NULL,3}'), \
             ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-01-01 00:00:00+00', '2023-12-31', '23:59:59.5', '-3 mons', -0.5, 'xyz', '\\x', 'null', '{}', NULL)",
            "SELECT id, at, day, t, took, r, code || '|', raw, doc, tags, n FROM ev ORDER BY at",
            "SELECT count(*) FROM ev WHERE at > '2024-02-01' AND day = date '2024-03-10' AND code = 'ab' AND 3 = ANY(n)",
            "SELECT id FROM ev WHERE id = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "SELECT max(at), min(day), max(took), sum(r), avg(r) FROM ev",
            "UPDATE ev SET at = at + interval '1 day', tags = array_append(tags, 'new') WHERE code = 'xyz'",
            "SELECT at, tags FROM ev WHERE code = 'xyz'",
            "INSERT INTO ev (id, at, code) VALUES (gen_random_uuid(), now(), 'toolong')",
        ],
    );
    let expected = [
        "CREATE TABLE",
        "INSERT 0 2",
        "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|2024-01-01 00:00:00+00|2023-12-31|23:59:59.5|-3 mons|-0.5|xyz||\\x|null|{}|NULL\n\
         a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|2024-03-10 10:00:00+00|2024-03-10|08:30:00|1 day 02:00:00|1.25|ab||\\x00ff|{\"k\": [1, 2]}|{x,\"y z\"}|{1,NULL,3}",
        "1",
        "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "2024-03-10 10:00:00+00|2023-12-31|1 day 02:00:00|0.75|0.375",
        "UPDATE 1",
        "2024-01-02 00:00:00+00|{new}",
        "ERR 22001",
    ];
    for (got, want) in results.iter().zip(expected) {
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
}

#[test]
fn defaults_may_call_now_and_date_functions() {
    let results = exec_on_cluster(
        2,
        &[
            "CREATE TABLE log (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), \
             day date DEFAULT CURRENT_DATE, note text DEFAULT 'x' || 'y')",
            "INSERT INTO log (note) VALUES ('a'), (DEFAULT)",
            "SELECT id, at > timestamptz '2024-01-01', day = at::date, note FROM log ORDER BY id",
            "BEGIN",
            "SELECT now() = now(), now() = statement_timestamp(), clock_timestamp() >= now()",
            "COMMIT",
        ],
    );
    assert_eq!(results[2], "1|t|t|a\n2|t|t|xy");
    assert_eq!(results[4], "t|t|t");
}

#[test]
fn unqualified_names_follow_search_path() {
    let results = exec_on_cluster(
        2,
        &[
            "CREATE SCHEMA app",
            "CREATE TABLE shared (id int PRIMARY KEY)",
            "SET search_path = app, public",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "CREATE SEQUENCE s",
            "INSERT INTO t VALUES (nextval('s')), (nextval('s'))",
            "SELECT current_schema(), (SELECT count(*) FROM app.t), (SELECT count(*) FROM shared)",
            "SET search_path = public",
            "SELECT * FROM t",
            "SELECT id FROM app.t ORDER BY id",
            "SET search_path = nosuch",
            "CREATE TABLE x (id int)",
            "SET search_path = app",
            "DROP TABLE t",
            "SELECT count(*) FROM app.t",
        ],
    );
    assert_eq!(results[6], "app|2|0");
    assert!(results[8].starts_with("ERR 42P01"), "{}", results[8]);
    assert_eq!(results[9], "1\n2");
    assert!(results[11].starts_with("ERR 3F000"), "{}", results[11]);
    assert_eq!(results[13], "DROP TABLE");
    assert!(results[14].starts_with("ERR 42P01"), "{}", results[14]);
}

#[test]
fn serial_defaults_fill_insert_select_and_simple_queries_have_no_parameters() {
    let r = exec_on_cluster(
        2,
        &[
            "CREATE TABLE s (id serial PRIMARY KEY, v int)",
            "INSERT INTO s (v) SELECT g FROM generate_series(1, 3) g",
            "INSERT INTO s (v) VALUES (10) RETURNING id",
            "SELECT $1::int",
        ],
    );
    assert_eq!(r[1], "INSERT 0 3");
    assert_eq!(r[2], "4");
    assert!(
        r[3].starts_with("ERR 42P02 there is no parameter $1"),
        "{}",
        r[3]
    );
}

mod never_panic {
    use proptest::prelude::*;

    use crate::types::{input, SqlType, Style, ARRAY_ELEMENTS};

    fn any_type() -> impl Strategy<Value = SqlType> {
        let scalars: Vec<SqlType> = ARRAY_ELEMENTS.to_vec();
        let arrays: Vec<SqlType> = ARRAY_ELEMENTS.iter().map(SqlType::Array).collect();
        prop::sample::select([scalars, arrays].concat())
    }

    proptest! {
        /// Every input function answers any text with a value or an error, never a panic.
        #[test]
        fn input_functions_take_any_text(
            ty in any_type(),
            typmod in prop_oneof![Just(-1), 0..12i32],
            text in prop_oneof![
                ".{0,24}",
                "[0-9:./ +-]{0,24}",
                "[{}\",\\\\a-z0-9 ]{0,24}",
                "[PYMDTHS0-9.-]{0,12}",
            ],
        ) {
            let _ = input(ty, typmod, &text, &Style::default());
        }

        /// The binary decoders answer any bytes with text or an error, never a panic.
        #[test]
        fn binary_decoders_take_any_bytes(
            oid in prop::sample::select(vec![1082u32, 1083, 1114, 1184, 1186, 2950, 3802, 1007, 1009, 1182]),
            bytes in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let elem = |_: u32, b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| crate::wire::WireError::Malformed);
            let _ = crate::wire::binary_to_text(oid, &bytes, &elem);
        }
    }
}

mod extremes {
    use crate::tests::exec_on_cluster;

    /// Arithmetic at the edges of the ranges fails with an error, never an overflow.
    #[test]
    fn date_time_arithmetic_at_the_edges_errs() {
        let r = exec_on_cluster(
            1,
            &[
                "SELECT timestamp '294276-12-31 23:59:59' + interval '2000000000 months'",
                "SELECT timestamp '4714-11-24 00:00:00 BC' - interval '1 day'",
                "SELECT date '5874897-12-31' + 1",
                "SELECT interval '2147483647 days' + interval '1 day'",
                "SELECT interval '1 day' * 1e300",
                "SELECT '2000000000 years'::interval",
            ],
        );
        for (i, got) in r.iter().enumerate() {
            assert!(got.starts_with("ERR 22"), "statement {i}: {got}");
        }
    }
}

#[test]
fn parameters_take_the_types_of_what_they_meet() {
    use helios_engine::localrt::LocalRuntime;
    use helios_engine::memfs::MemFs;

    use crate::testcluster::LocalCluster;
    use crate::{execute_prepared, prepare, Session};

    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        let p = prepare(
            &session,
            &cluster,
            "SELECT $1::date + $2::int, $3::timestamptz - interval '1 hour', \
             $4 = ANY(ARRAY[1.5::real]), $5::jsonb, $6 - interval '1 hour', $1::date - $7",
            &[],
        )
        .unwrap();
        assert_eq!(p.param_types, vec![1082, 23, 1184, 700, 3802, 1186, 1082]);
        let r = execute_prepared(
            &mut session,
            &cluster,
            &p,
            &[
                Some("2024-02-28".into()),
                Some("2".into()),
                Some("2024-01-01 00:30:00+00".into()),
                Some("1.5".into()),
                Some("[1, {\"b\":2,\"a\":1}]".into()),
                Some("1 day".into()),
                Some("2024-02-01".into()),
            ],
        )
        .await;
        let Ok(crate::StatementResult::Rows { rows, .. }) = r else {
            panic!("{r:?}")
        };
        let cells: Vec<String> = rows[0]
            .iter()
            .map(|c| c.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            cells,
            [
                "2024-03-01",
                "2023-12-31 23:30:00+00",
                "t",
                r#"[1, {"a": 1, "b": 2}]"#,
                "1 day -01:00:00",
                "27"
            ]
        );
        let gap = prepare(&session, &cluster, "SELECT $2::int", &[]).unwrap_err();
        assert_eq!(gap.sqlstate, "42P18");
        let ambiguous = prepare(&session, &cluster, "SELECT $1::date + $2", &[]).unwrap_err();
        assert_eq!(ambiguous.sqlstate, "42725");
    });
}
