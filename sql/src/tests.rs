//! Data-driven tests: each case is a query, the columns it describes (name:oid) and the rows
//! it returns (cells joined by '|', NULL as "NULL"), or the SQLSTATE it fails with. Expected
//! values were checked against a real PostgreSQL.

use proptest::prelude::*;

use helios_engine::localrt::LocalRuntime;
use helios_engine::memfs::MemFs;

use crate::testcluster::LocalCluster;
use crate::types::SqlType;
use crate::*;

/// Runs a query string on a fresh two-shard cluster.
fn exec(session: &mut Session, sql: &str) -> Vec<Result<StatementResult, SqlError>> {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    let mut s = session.clone();
    let sql = sql.to_string();
    let (results, s) = rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let r = execute_simple(&mut s, &cluster, &sql).await;
        (r, s)
    });
    *session = s;
    results
}

/// Runs statements in order on one cluster and session, checking each rendered result.
fn script(shards: usize, steps: &[(&str, &str)]) {
    let steps: Vec<(String, String)> = steps
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
        let mut session = Session::new("u", "postgres");
        for (sql, expected) in &steps {
            let results = execute_simple(&mut session, &cluster, sql).await;
            let got = render(results.last().expect("a result"));
            // "~text": the result only has to contain the text.
            match expected.strip_prefix('~') {
                Some(part) => assert!(got.contains(part), "statement: {sql}: {got}"),
                None => assert_eq!(got.trim_end(), expected.trim_end(), "statement: {sql}"),
            }
        }
    });
}

fn render(r: &Result<StatementResult, SqlError>) -> String {
    match r {
        Ok(StatementResult::Rows { columns, rows, tag }) => {
            let cols: Vec<String> = columns
                .iter()
                .map(|c| format!("{}:{}", c.name, c.type_oid))
                .collect();
            let rows: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            format!("{} => {} [{tag}]", cols.join(","), rows.join(" / "))
        }
        Ok(StatementResult::Command {
            tag,
            changed_parameters,
            ..
        }) => {
            let changed: Vec<String> = changed_parameters
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            format!("{tag} {}", changed.join(","))
        }
        Ok(StatementResult::Empty) => "EMPTY".into(),
        Ok(StatementResult::CopyIn(start)) => format!("COPY IN {}", start.column_count),
        Ok(StatementResult::CopyOut { rows, tag, .. }) => {
            let rows: Vec<String> = rows
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect();
            format!("{} [{tag}]", rows.concat().replace('\n', " / "))
        }
        Err(e) => match &e.detail {
            Some(detail) => format!("ERR {} {} [DETAIL: {detail}]", e.sqlstate, e.message),
            None => format!("ERR {} {}", e.sqlstate, e.message),
        },
    }
}

/// Runs statements in order on one fresh cluster of `shards` shards and one session; each
/// result is rendered as its rows (cells joined by '|', rows by '\n'), its command tag, or
/// "ERR <sqlstate> <message>".
pub(crate) fn exec_on_cluster(shards: usize, statements: &[&str]) -> Vec<String> {
    let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
        let mut session = Session::new("u", "postgres");
        let mut out = Vec::new();
        for sql in &statements {
            let results = execute_simple(&mut session, &cluster, sql).await;
            out.push(match results.last().expect("a result") {
                Ok(StatementResult::Rows { rows, .. }) => rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Ok(StatementResult::Command { tag, .. }) => tag.clone(),
                other => render(other),
            });
        }
        out
    })
}

fn run_one(session: &mut Session, sql: &str) -> String {
    let results = exec(session, sql);
    results.iter().map(render).collect::<Vec<_>>().join(" ;; ")
}

/// (sql, expected prefix of the rendering). Errors are matched on "ERR <sqlstate> <message>".
const CASES: &[(&str, &str)] = &[
    // Literals and their types.
    ("SELECT 1", "?column?:23 => 1 [SELECT 1]"),
    ("SELECT 'a' || 'b' AS x, 2 * 3.5, NULL IS NULL", "x:25,?column?:1700,?column?:16 => ab|7.0|t [SELECT 1]"),
    ("SELECT 2147483647, 2147483648, 9223372036854775808", "?column?:23,?column?:20,?column?:1700 => 2147483647|2147483648|9223372036854775808"),
    ("SELECT -2147483648, pg_typeof(-2147483648), pg_typeof(-2147483649)", "?column?:23,pg_typeof:2206,pg_typeof:2206 => -2147483648|integer|bigint"),
    ("SELECT -9223372036854775808", "?column?:20 => -9223372036854775808"),
    ("SELECT 1e3, 1.5e3, 1e-3, 1.50, .5, 5.", "?column?:1700,?column?:1700,?column?:1700,?column?:1700,?column?:1700,?column?:1700 => 1000|1500|0.001|1.50|0.5|5"),
    ("SELECT true, false, NULL", "?column?:16,?column?:16,?column?:25 => t|f|NULL"),
    ("SELECT 'hello', E'a\\tb'", "?column?:25,?column?:25 => hello|a\tb"),
    ("SELECT $$dollar$$", "?column?:25 => dollar"),
    ("SELECT", " =>  [SELECT 1]"),
    ("SELECT 1 AS \"Mixed\", 2 AS Lower", "Mixed:23,lower:23"),
    // Integer arithmetic.
    ("SELECT 7 / 2, -7 / 2, 7 % 3, -7 % 3, 5 % -3", "?column?:23,?column?:23,?column?:23,?column?:23,?column?:23 => 3|-3|1|-1|2"),
    ("SELECT 2147483647 + 1", "ERR 22003 integer out of range"),
    ("SELECT -2147483648 / -1", "ERR 22003 integer out of range"),
    ("SELECT -2147483648 % -1", "?column?:23 => 0"),
    ("SELECT 9223372036854775807 + 1", "ERR 22003 bigint out of range"),
    ("SELECT 2147483647 + 1::int8", "?column?:20 => 2147483648"),
    ("SELECT 32767::int2 + 1::int2", "ERR 22003 smallint out of range"),
    ("SELECT pg_typeof(1::int2 + 1::int2), pg_typeof(1::int2 + 1), pg_typeof(1 + 1.5), pg_typeof(1 + 1.5::float8)", "pg_typeof:2206,pg_typeof:2206,pg_typeof:2206,pg_typeof:2206 => smallint|integer|numeric|double precision"),
    ("SELECT 1/0", "ERR 22012 division by zero"),
    ("SELECT 1%0", "ERR 22012 division by zero"),
    ("SELECT -(1), - 1::int2, +5", "?column?:23,?column?:21,?column?:23 => -1|-1|5"),
    ("SELECT (1 + 2) * 3", "?column?:23 => 9"),
    // Numeric: scales as PostgreSQL computes them.
    ("SELECT 1/3.0, 10/4.0, 1.0/1000000, 123456789.0/7", "?column?:1700,?column?:1700,?column?:1700,?column?:1700 => 0.33333333333333333333|2.5000000000000000|0.000001000000000000000000|17636684.142857142857"),
    ("SELECT 7.0/2, 1::numeric/3, 100000::numeric/3, 0.001/3", "?column?:1700,?column?:1700,?column?:1700,?column?:1700 => 3.5000000000000000|0.33333333333333333333|33333.333333333333|0.00033333333333333333"),
    ("SELECT 1.10 + 2.2, 1.5 * 1.25, 5.5 % 2, 1.0 - 1.000", "?column?:1700,?column?:1700,?column?:1700,?column?:1700 => 3.30|1.875|1.5|0.000"),
    ("SELECT 1.0 / 0", "ERR 22012 division by zero"),
    ("SELECT 2.5::int, (-2.5)::int, 1.234::numeric(10,2), 1::decimal(5,2)", "int4:23,int4:23,numeric:1700,numeric:1700 => 3|-3|1.23|1.00"),
    ("SELECT 123.45::numeric(4,2)", "ERR 22003 numeric field overflow"),
    // float8.
    ("SELECT 0.1::float8 + 0.2::float8", "?column?:701 => 0.30000000000000004"),
    ("SELECT 1e15::float8, 1e14::float8, 0.0001::float8, 0.00001::float8, 1e20::float8, 123456789012345678::float8", "float8:701,float8:701,float8:701,float8:701,float8:701,float8:701 => 1e+15|100000000000000|0.0001|1e-05|1e+20|1.2345678901234568e+17"),
    ("SELECT -0.0::float8, 'nan'::float8, 'inf'::float8, '-Infinity'::float8", "?column?:701,float8:701,float8:701,float8:701 => -0|NaN|Infinity|-Infinity"),
    ("SELECT 2.5::float8::int, 3.5::float8::int, 0.1::float8::numeric, 1/3::float8", "int4:23,int4:23,numeric:1700,?column?:701 => 2|4|0.1|0.3333333333333333"),
    ("SELECT 2^3, pg_typeof(2^3)", "?column?:701,pg_typeof:2206 => 8|double precision"),
    ("SELECT 1e300::float8 * 1e300::float8", "ERR 22003 value out of range: overflow"),
    ("SELECT 1::float8 / 0", "ERR 22012 division by zero"),
    ("SELECT 1.5::float8 % 1", "ERR 42883 operator does not exist: double precision % double precision"),
    ("SELECT 'abc'::float8", "ERR 22P02 invalid input syntax for type double precision: \"abc\""),
    ("SELECT '1e400'::float8", "ERR 22003 \"1e400\" is out of range for type double precision"),
    // Casts.
    ("SELECT 1::int, CAST(1 AS integer), 1::bigint, 1::smallint, '5'::int4, int '7'", "int4:23,int4:23,int8:20,int2:21,int4:23,int4:23 => 1|1|1|1|5|7"),
    ("SELECT 'abc'::int", "ERR 22P02 invalid input syntax for type integer: \"abc\""),
    ("SELECT '  42 '::int, '-7'::int8", "int4:23,int8:20 => 42|-7"),
    ("SELECT '99999999999'::int", "ERR 22003 value \"99999999999\" is out of range for type integer"),
    ("SELECT 'abcd'::varchar(3), varchar 'x', 'x'::character varying", "varchar:1043,varchar:1043,varchar:1043 => abc|x|x"),
    ("SELECT true::text, 1::int::text, upper('a')::text, 12.50::text", "text:25,text:25,upper:25,text:25 => true|1|A|12.50"),
    ("SELECT 'yes'::bool, 'off'::boolean, 1::bool, true::int", "bool:16,bool:16,bool:16,int4:23 => t|f|t|1"),
    ("SELECT 'maybe'::bool", "ERR 22P02 invalid input syntax for type boolean: \"maybe\""),
    ("SELECT 1.5::bool", "ERR 42846 cannot cast type numeric to boolean"),
    ("SELECT 1::foo", "ERR 42704 type \"foo\" does not exist"),
    ("SELECT 3000000000::int8::int", "ERR 22003 integer out of range"),
    // Comparison and logic.
    ("SELECT 1 = 1.0, 'a' < 'b', 2 <> 2, 1 != 2, 3 >= 3, 'B' < 'a'", "?column?:16,?column?:16,?column?:16,?column?:16,?column?:16,?column?:16 => t|t|f|t|t|t"),
    ("SELECT 1 = NULL, NULL = NULL, 1 IS DISTINCT FROM NULL, NULL IS NOT DISTINCT FROM NULL", "?column?:16,?column?:16,?column?:16,?column?:16 => NULL|NULL|t|t"),
    ("SELECT true AND NULL, false AND NULL, true OR NULL, false OR NULL, NOT NULL::bool", "?column?:16,?column?:16,?column?:16,?column?:16,?column?:16 => NULL|f|t|NULL|NULL"),
    ("SELECT NOT true, 't' AND true, NULL IS NOT NULL, 1 IS NULL, NULL IS TRUE, false IS NOT TRUE", "?column?:16,?column?:16,?column?:16,?column?:16,?column?:16,?column?:16 => f|t|f|f|f|t"),
    ("SELECT 1 AND true", "ERR 42804 argument of AND must be type boolean, not type integer"),
    ("SELECT NOT 1", "ERR 42804 argument of NOT must be type boolean, not type integer"),
    ("SELECT 1 = 'a'::text", "ERR 42883 operator does not exist: integer = text"),
    ("SELECT 1 = 'x'", "ERR 22P02 invalid input syntax for type integer: \"x\""),
    ("SELECT '1' + 1, '1' + '2'", "ERR 42725 operator is not unique: unknown + unknown"),
    ("SELECT 'a' + 1", "ERR 22P02 invalid input syntax for type integer: \"a\""),
    // Text.
    ("SELECT 'a' || 1, 1 || 'a', 'x' || NULL", "?column?:25,?column?:25,?column?:25 => a1|1a|NULL"),
    ("SELECT 1 || 2", "ERR 42883 operator does not exist: integer || integer"),
    // Functions.
    ("SELECT version()", "version:25 => PostgreSQL 16.4 (HeliosDB 0.1.0)"),
    ("SELECT current_database(), current_user, session_user, current_schema, current_schema(), user", "current_database:19,current_user:19,session_user:19,current_schema:19,current_schema:19,user:19 => db|alice|alice|public|public|alice"),
    ("SELECT pg_catalog.version() IS NOT NULL", "?column?:16 => t"),
    ("SELECT length('héllo'), upper('abc'), lower('ÄB'), length(NULL)", "length:23,upper:25,lower:25,length:23 => 5|ABC|äb|NULL"),
    ("SELECT abs(-1.50), abs(-3), abs(-2::int8), abs('-1'), abs(-0.5::float8)", "abs:1700,abs:23,abs:20,abs:701,abs:701 => 1.50|3|2|1|0.5"),
    ("SELECT abs(-2147483648)", "ERR 22003 integer out of range"),
    ("SELECT coalesce(NULL, 1, 2.5), coalesce(NULL, 'x'), coalesce(1, 1/0), coalesce(NULL, NULL)", "coalesce:1700,coalesce:25,coalesce:23,coalesce:25 => 1|x|1|NULL"),
    ("SELECT coalesce(1, 'a'::text)", "ERR 42804 COALESCE types integer and text cannot be matched"),
    ("SELECT nullif(1, 1), nullif(1, 2), nullif('a', 'b')", "nullif:23,nullif:23,nullif:25 => NULL|1|a"),
    ("SELECT foo(1)", "ERR 42883 function foo(integer) does not exist"),
    ("SELECT length(1)", "ERR 42883 function length(integer) does not exist"),
    ("SELECT foo(1, 'a', NULL)", "ERR 42883 function foo(integer, unknown, unknown) does not exist"),
    ("SELECT foo", "ERR 42703 column \"foo\" does not exist"),
    ("SELECT t.x", "ERR 42P01 missing FROM-clause entry for table \"t\""),
    // WHERE and VALUES.
    ("SELECT 1 WHERE false", "?column?:23 =>  [SELECT 0]"),
    ("SELECT 1 WHERE 1 < 2", "?column?:23 => 1 [SELECT 1]"),
    ("SELECT 1 WHERE 1", "ERR 42804 argument of WHERE must be type boolean, not type integer"),
    ("VALUES (1, 'a'), (2.5, NULL)", "column1:1700,column2:25 => 1|a / 2.5|NULL [SELECT 2]"),
    ("VALUES (1), (1, 2)", "ERR 42601 VALUES lists must all be the same length"),
    ("VALUES (1), ('a'::text)", "ERR 42804 VALUES types integer and text cannot be matched"),
    ("SELECT *", "ERR 42601 SELECT * with no tables specified is not valid"),
    // SHOW / SET / RESET.
    ("SHOW server_version", "server_version:25 => 16.4 [SHOW]"),
    ("SHOW datestyle", "DateStyle:25 => ISO, MDY"),
    ("SHOW TIME ZONE", "TimeZone:25 => UTC"),
    ("SHOW foo", "ERR 42704 unrecognized configuration parameter \"foo\""),
    ("SET application_name = 'x'", "SET application_name=x"),
    ("SET application_name TO Foo; SHOW application_name", "SET application_name=foo ;; application_name:25 => foo"),
    ("SET SESSION DateStyle = german; SHOW DateStyle", "SET DateStyle=German, DMY ;; DateStyle:25 => German, DMY"),
    ("SET search_path = a, \"B\"; SHOW search_path", "SET  ;; search_path:25 => a, \"B\""),
    ("SET extra_float_digits = 3", "SET "),
    ("SET extra_float_digits = 5", "ERR 22023 5 is outside the valid range for parameter \"extra_float_digits\" (-15 .. 3)"),
    ("SET extra_float_digits = 0; SELECT 0.1::float8 + 0.2::float8, 1e15::float8, 1e14::float8, 1.0/3::float8", "SET  ;; ?column?:701,float8:701,float8:701,?column?:701 => 0.3|1e+15|100000000000000|0.333333333333333"),
    ("SET foo = 1", "ERR 42704 unrecognized configuration parameter \"foo\""),
    ("SET myapp.flag = 'on'; SHOW myapp.flag", "SET  ;; myapp.flag:25 => on"),
    ("SET server_version = '1'", "ERR 55P02 parameter \"server_version\" cannot be changed"),
    ("SET application_name = 'a', 'b'", "ERR 22023 SET application_name takes only one argument"),
    ("SET client_encoding = 'latin9'", "ERR 22023 invalid value for parameter \"client_encoding\": \"latin9\""),
    ("SET client_encoding = 'utf-8'", "SET "),
    ("SET TIME ZONE 'UTC'", "SET "),
    ("SET application_name = 'x'; RESET application_name", "SET application_name=x ;; RESET application_name="),
    ("SET application_name = 'x'; SET application_name TO DEFAULT", "SET application_name=x ;; SET application_name="),
    ("SET IntervalStyle = iso_8601; RESET ALL", "SET IntervalStyle=iso_8601 ;; RESET IntervalStyle=postgres"),
    ("SET LOCAL application_name = 'x'", "SET "),
    // Statement handling.
    ("", "EMPTY"),
    (";", "EMPTY"),
    ("SELECT 1; SELECT 2;;", "?column?:23 => 1 [SELECT 1] ;; ?column?:23 => 2 [SELECT 1]"),
    ("SELECT 1; SELECT foo(); SELECT 3", "?column?:23 => 1 [SELECT 1] ;; ERR 42883 function foo() does not exist"),
    ("SELECT 1; SELEC 2", "ERR 42601 syntax error at or near \"SELEC\""),
    ("SELECT 1 +", "ERR 42601 syntax error at end of input"),
    ("select 'abc", "ERR 42601 unterminated quoted string at or near \"'abc\""),
    ("INSERT INTO t VALUES (1)", "ERR 42P01 relation \"t\" does not exist"),
    ("SELECT * FROM t", "ERR 42P01 relation \"t\" does not exist"),
    ("SELECT 1 ORDER BY 1", "?column?:23 => 1 [SELECT 1]"),
    ("SELECT 1 ORDER BY 2", "ERR 42P10 ORDER BY position 2 is not in select list"),
    ("SELECT x FROM (VALUES (3), (1), (2)) AS v(x) ORDER BY x DESC LIMIT 2", "x:23 => 3 / 2 [SELECT 2]"),
    ("SELECT * FROM generate_series(1, 3) g", "g:23 => 1 / 2 / 3 [SELECT 3]"),
    ("SELECT count(*), sum(g), avg(g), min(g), max(g) FROM generate_series(1, 4) g", "count:20,sum:20,avg:1700,min:23,max:23 => 4|10|2.5000000000000000|1|4 [SELECT 1]"),
    ("SELECT count(*) FROM generate_series(1, 0) g", "count:20 => 0 [SELECT 1]"),
    ("SELECT sum(g) FROM generate_series(1, 0) g", "sum:20 => NULL [SELECT 1]"),
    ("SELECT 1 UNION SELECT 1 UNION ALL SELECT 2", "?column?:23 => 1 / 2 [SELECT 2]"),
    ("SELECT 1 INTERSECT SELECT 2", "?column?:23 =>  [SELECT 0]"),
    ("SELECT 1 EXCEPT SELECT 2", "?column?:23 => 1 [SELECT 1]"),
    ("SELECT 2 IN (1, 2), 3 NOT IN (1, NULL), NULL IN (1)", "?column?:16,?column?:16,?column?:16 => t|NULL|NULL [SELECT 1]"),
    ("SELECT CASE WHEN 1 > 2 THEN 'a' WHEN 2 > 1 THEN 'b' END", "case:25 => b [SELECT 1]"),
    ("SELECT CASE 3 WHEN 1 THEN 10 WHEN 3 THEN 30 ELSE 0 END", "case:23 => 30 [SELECT 1]"),
    ("SELECT 5 BETWEEN 1 AND 10, 'abc' LIKE 'a%', 'abc' ILIKE 'A_C', 'abc' NOT LIKE '%d'", "?column?:16,?column?:16,?column?:16,?column?:16 => t|t|t|t [SELECT 1]"),
    ("SELECT (SELECT 1), EXISTS (SELECT 1 WHERE false), 1 IN (SELECT 1)", "?column?:23,exists:16,?column?:16 => 1|f|t [SELECT 1]"),
    ("SELECT (SELECT g FROM generate_series(1, 2) g)", "ERR 21000 more than one row returned by a subquery used as an expression"),
    ("WITH w AS (SELECT 7 AS x) SELECT x + 1 FROM w", "?column?:23 => 8 [SELECT 1]"),
    ("SELECT g % 2 AS k, count(*) FROM generate_series(1, 5) g GROUP BY k ORDER BY k", "k:23,count:20 => 0|2 / 1|3 [SELECT 2]"),
    ("SELECT g FROM generate_series(1, 3) g GROUP BY 1 HAVING g > 1 ORDER BY 1", "g:23 => 2 / 3 [SELECT 2]"),
    ("SELECT g, count(*) FROM generate_series(1, 3) g", "ERR 42803 column \"g.g\" must appear in the GROUP BY clause or be used in an aggregate function"),
    ("SELECT count(DISTINCT g % 2), string_agg(g::text, ',') FROM generate_series(1, 4) g", "count:20,string_agg:25 => 2|1,2,3,4 [SELECT 1]"),
    ("SELECT a.x, b.y FROM (VALUES (1), (2)) a(x) JOIN (VALUES (2), (3)) b(y) ON a.x = b.y", "x:23,y:23 => 2|2 [SELECT 1]"),
    ("SELECT a.x, b.y FROM (VALUES (1), (2)) a(x) LEFT JOIN (VALUES (2), (3)) b(y) ON a.x = b.y ORDER BY 1", "x:23,y:23 => 1|NULL / 2|2 [SELECT 2]"),
    ("SELECT a.x, b.y FROM (VALUES (1), (2)) a(x) FULL JOIN (VALUES (2), (3)) b(y) ON a.x = b.y ORDER BY 1, 2", "x:23,y:23 => 1|NULL / 2|2 / NULL|3 [SELECT 3]"),
    ("SELECT count(*) FROM (VALUES (1), (2)) a(x), (VALUES (1), (2), (3)) b(y)", "count:20 => 6 [SELECT 1]"),
    ("SELECT DISTINCT x FROM (VALUES (1), (1), (2)) v(x) ORDER BY x", "x:23 => 1 / 2 [SELECT 2]"),
];

#[test]
fn cases() {
    let mut failures = Vec::new();
    for (sql, expected) in CASES {
        let mut session = Session::new("alice", "db");
        let got = run_one(&mut session, sql);
        if !got.starts_with(expected) {
            failures.push(format!(
                "{sql}\n   expected: {expected}\n   got:      {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_positions() {
    let cases: &[(&str, usize)] = &[
        ("select 'abc'::int", 8),
        ("select foo(1)", 8),
        ("select 1 || 2", 10),
        ("select 1 +;", 11),
        ("select 1 +", 11),
        ("SELEC 1", 1),
        ("select 1,\n  foo", 13),
        ("select 1 and true", 8),
    ];
    for (sql, position) in cases {
        let e = last_error("d", sql);
        assert_eq!(e.position, Some(*position), "{sql}: {e:?}");
    }
}

/// The error the last statement of `sql` ends with, run in a fresh session on database `db`.
fn last_error(db: &str, sql: &str) -> SqlError {
    let mut session = Session::new("u", db);
    let r = exec(&mut session, sql);
    match r.last() {
        Some(Err(e)) => e.clone(),
        _ => panic!("{sql} did not fail"),
    }
}

/// HINT fields where PostgreSQL 15 gives them (texts checked against it).
#[test]
fn error_hints() {
    let cases: &[(&str, Option<&'static &'static str>)] = &[
        ("select foo(1)", Some(&crate::error::HINT_NO_FUNCTION)),
        ("select length(1, 2)", Some(&crate::error::HINT_NO_FUNCTION)),
        ("select 1 || 2", Some(&crate::error::HINT_NO_OPERATOR)),
        (
            "select 1 = 'a'::text",
            Some(&crate::error::HINT_NO_OPERATOR),
        ),
        (
            "create table h (i int); insert into h values (true)",
            Some(&crate::error::HINT_REWRITE_OR_CAST),
        ),
        ("select 1/0", None),
        ("select * from nowhere", None),
    ];
    for (sql, hint) in cases {
        let e = last_error("postgres", sql);
        assert_eq!(e.hint, *hint, "{sql}: {e:?}");
    }
}

#[test]
fn column_descriptions() {
    let mut session = Session::new("u", "d");
    let r = exec(
        &mut session,
        "SELECT 1.5::numeric(10,2), 'a'::varchar(5), current_user, NULL",
    );
    let Some(Ok(StatementResult::Rows { columns, .. })) = r.first() else {
        panic!("{r:?}")
    };
    let got: Vec<(u32, i16, i32)> = columns
        .iter()
        .map(|c| (c.type_oid, c.type_size, c.type_modifier))
        .collect();
    assert_eq!(
        got,
        vec![
            (1700, -1, (10 << 16 | 2) + 4),
            (1043, -1, 9),
            (19, 64, -1),
            (25, -1, -1)
        ]
    );
}

#[test]
fn startup_parameters_in_order() {
    let mut session = Session::new("alice", "db");
    session
        .set_parameter("application_name", "psql")
        .expect("valid");
    let params = startup_parameters(&session);
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..4],
        &[
            "server_version",
            "server_encoding",
            "client_encoding",
            "DateStyle"
        ]
    );
    assert!(params.contains(&("session_authorization".into(), "alice".into())));
    assert!(params.contains(&("application_name".into(), "psql".into())));
    assert_eq!(session.parameter("SERVER_VERSION"), Some("16.4"));
}

#[test]
fn set_reports_only_real_changes() {
    let mut session = Session::new("u", "d");
    let r = exec(
        &mut session,
        "SET application_name = ''; SET TimeZone = 'Europe/Berlin'",
    );
    assert_eq!(render(&r[0]), "SET ");
    assert_eq!(render(&r[1]), "SET TimeZone=Europe/Berlin");
}

proptest! {
    /// Integer arithmetic is an error iff the checked operation overflows (or divides by 0).
    #[test]
    fn int_arithmetic_matches_checked_ops(x: i64, y: i64, op in prop::sample::select(vec!['+', '-', '*', '/', '%'])) {
        let (x4, y4) = (x as i32, y as i32);
        let expected4 = match op {
            '+' => x4.checked_add(y4),
            '-' => x4.checked_sub(y4),
            '*' => x4.checked_mul(y4),
            '/' => x4.checked_div(y4),
            _ => if y4 == -1 { Some(0) } else { x4.checked_rem(y4) },
        };
        let got4 = crate::expr::int_op(op, SqlType::Int4, x4.into(), y4.into());
        match expected4 {
            Some(v) => prop_assert_eq!(got4.map_err(|e| e.sqlstate), Ok(i64::from(v))),
            None => {
                let want = if y4 == 0 && (op == '/' || op == '%') { "22012" } else { "22003" };
                prop_assert_eq!(got4.map_err(|e| e.sqlstate), Err(want));
            }
        }
        let expected8 = match op {
            '+' => x.checked_add(y),
            '-' => x.checked_sub(y),
            '*' => x.checked_mul(y),
            '/' => x.checked_div(y),
            _ => if y == -1 { Some(0) } else { x.checked_rem(y) },
        };
        let got8 = crate::expr::int_op(op, SqlType::Int8, x, y);
        prop_assert_eq!(got8.ok(), expected8);
        // And through SQL text, end to end.
        let sql = format!("SELECT ({x4})::int4 {op} ({y4})::int4");
        let mut session = Session::new("u", "d");
        let r = exec(&mut session, &sql);
        match (expected4, &r[0]) {
            (Some(v), Ok(StatementResult::Rows { rows, .. })) => prop_assert_eq!(rows[0][0].clone(), Some(v.to_string())),
            (None, Err(_)) => {}
            (e, got) => prop_assert!(false, "{}: expected {:?}, got {:?}", sql, e, got),
        }
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    let deep = format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500));
    for sql in [
        deep.as_str(),
        "SELECT pg_typeof(1) = pg_typeof(2), pg_typeof(1)::text, pg_typeof(1) || 'x'",
        "SELECT NULL + NULL",
        "SELECT -NULL",
        "SELECT abs(NULL), upper(NULL), NULL::int + 1, NULL || NULL",
        "SELECT 'NaN'::float8 = 'NaN'::float8, -0.0::float8 = 0::float8",
        "SELECT 1 IS TRUE",
        "SELECT current_user::text || '@' || current_database()",
        "SELECT 1e99999",
        "SELECT ''::numeric",
        "SELECT 99999999999999999999::int8",
        "SELECT (-9223372036854775808)::float8::int8, 9.3e18::float8::int8",
    ] {
        let mut session = Session::new("u", "d");
        let _ = exec(&mut session, sql);
    }
    let mut session = Session::new("u", "d");
    let r = exec(&mut session, &deep);
    assert_eq!(r[0].as_ref().map_err(|e| e.sqlstate), Err("54001"));
}

#[test]
fn tables_round_trip_through_the_shards() {
    script(
        3,
        &[
            ("CREATE TABLE t1(a INTEGER, b INTEGER, c TEXT)", "CREATE TABLE "),
            ("CREATE TABLE t1(a INTEGER)", "ERR 42P07 relation \"t1\" already exists"),
            ("CREATE TABLE IF NOT EXISTS t1(a INTEGER)", "CREATE TABLE "),
            (
                "INSERT INTO t1(c, a, b) VALUES ('x', 1, 10), ('y', 2, 20), ('z', 3, NULL)",
                "INSERT 0 3",
            ),
            ("INSERT INTO t1 VALUES (4, 40)", "INSERT 0 1"),
            (
                "SELECT a, b, c FROM t1 ORDER BY a",
                "a:23,b:23,c:25 => 1|10|x / 2|20|y / 3|NULL|z / 4|40|NULL [SELECT 4]",
            ),
            ("SELECT count(*), sum(b), avg(a) FROM t1", "count:20,sum:20,avg:1700 => 4|70|2.5000000000000000 [SELECT 1]"),
            ("SELECT a FROM t1 WHERE b > 15 ORDER BY 1 DESC", "a:23 => 4 / 2 [SELECT 2]"),
            (
                "SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.a < t1.a) FROM t1 ORDER BY 1",
                "a:23,count:20 => 1|0 / 2|1 / 3|2 / 4|3 [SELECT 4]",
            ),
            (
                "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t1 AS x WHERE x.a = t1.a + 1) ORDER BY a",
                "a:23 => 1 / 2 / 3 [SELECT 3]",
            ),
            ("UPDATE t1 SET b = b + 1 WHERE a <= 2", "UPDATE 2"),
            ("SELECT b FROM t1 WHERE a <= 2 ORDER BY b", "b:23 => 11 / 21 [SELECT 2]"),
            ("DELETE FROM t1 WHERE b IS NULL", "DELETE 1"),
            ("SELECT count(*) FROM t1", "count:20 => 3 [SELECT 1]"),
            ("SELECT * FROM t1 WHERE a = 'x'", "ERR 22P02 invalid input syntax for type integer: \"x\""),
            ("SELECT nope FROM t1", "ERR 42703 column \"nope\" does not exist"),
            ("TRUNCATE t1", "TRUNCATE TABLE "),
            ("SELECT count(*) FROM t1", "count:20 => 0 [SELECT 1]"),
            ("DROP TABLE t1", "DROP TABLE "),
            ("SELECT * FROM t1", "ERR 42P01 relation \"t1\" does not exist"),
            ("DROP TABLE t1", "ERR 42P01 table \"t1\" does not exist"),
            ("DROP TABLE IF EXISTS t1", "DROP TABLE "),
        ],
    );
}

#[test]
fn primary_keys_constraints_and_point_reads() {
    script(
        4,
        &[
            (
                "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL DEFAULT 'none', n numeric(5,2) CHECK (n > 0))",
                "CREATE TABLE ",
            ),
            ("INSERT INTO kv (k) VALUES (1)", "INSERT 0 1"),
            ("INSERT INTO kv VALUES (2, 'two', 1.5)", "INSERT 0 1"),
            ("INSERT INTO kv VALUES (1, 'again')", "ERR 23505 duplicate key value violates unique constraint \"kv_pkey\" [DETAIL: Key (k)=(1) already exists.]"),
            ("INSERT INTO kv VALUES (1, 'again') ON CONFLICT DO NOTHING", "INSERT 0 0"),
            ("INSERT INTO kv VALUES (3, NULL)", "ERR 23502 null value in column \"v\" of relation \"kv\" violates not-null constraint [DETAIL: Failing row contains (3, null, null).]"),
            ("INSERT INTO kv VALUES (NULL, 'x')", "ERR 23502 null value in column \"k\" of relation \"kv\" violates not-null constraint [DETAIL: Failing row contains (null, x, null).]"),
            ("INSERT INTO kv VALUES (3, 'x', -1)", "ERR 23514 new row for relation \"kv\" violates check constraint \"kv_n_check\" [DETAIL: Failing row contains (3, x, -1.00).]"),
            ("INSERT INTO kv VALUES (3, 'x', 1.234) RETURNING k, n", "k:23,n:1700 => 3|1.23 [INSERT 0 1]"),
            ("SELECT v FROM kv WHERE k = 1", "v:25 => none [SELECT 1]"),
            ("SELECT v FROM kv WHERE k = 99", "v:25 =>  [SELECT 0]"),
            ("UPDATE kv SET k = 10 WHERE k = 2 RETURNING k, v", "k:23,v:25 => 10|two [UPDATE 1]"),
            ("SELECT k FROM kv ORDER BY k", "k:23 => 1 / 3 / 10 [SELECT 3]"),
            ("UPDATE kv SET k = 1 WHERE k = 3", "ERR 23505 duplicate key value violates unique constraint \"kv_pkey\" [DETAIL: Key (k)=(1) already exists.]"),
            ("DELETE FROM kv WHERE k = 10 RETURNING v", "v:25 => two [DELETE 1]"),
            ("CREATE TABLE two (a int, b text, PRIMARY KEY (a, b))", "CREATE TABLE "),
            ("INSERT INTO two VALUES (1, 'a'), (1, 'b')", "INSERT 0 2"),
            ("INSERT INTO two VALUES (1, 'a')", "ERR 23505 duplicate key value violates unique constraint \"two_pkey\" [DETAIL: Key (a, b)=(1, a) already exists.]"),
            ("SELECT count(*) FROM two WHERE a = 1 AND b = 'b'", "count:20 => 1 [SELECT 1]"),
            (
                "SELECT kv.k, two.b FROM kv JOIN two ON kv.k = two.a ORDER BY 2",
                "k:23,b:25 => 1|a / 1|b [SELECT 2]",
            ),
            ("CREATE TABLE bad (a int PRIMARY KEY, b int PRIMARY KEY)", "ERR 42P16 multiple primary keys for table \"bad\" are not allowed"),
            ("CREATE TABLE bad (a int, a int)", "ERR 42701 column \"a\" specified more than once"),
        ],
    );
}

#[test]
fn databases_schemas_and_transaction_status() {
    script(
        2,
        &[
            ("CREATE DATABASE other", "CREATE DATABASE "),
            ("CREATE DATABASE other", "ERR 42P04 database \"other\" already exists"),
            ("DROP DATABASE postgres", "ERR 55006 cannot drop the currently open database"),
            ("DROP DATABASE other", "DROP DATABASE "),
            ("DROP DATABASE other", "ERR 3D000 database \"other\" does not exist"),
            ("CREATE SCHEMA s", "CREATE SCHEMA "),
            ("CREATE TABLE s.t (a int)", "CREATE TABLE "),
            ("INSERT INTO s.t VALUES (5)", "INSERT 0 1"),
            ("SELECT t.a FROM s.t", "a:23 => 5 [SELECT 1]"),
            ("DROP SCHEMA s", "ERR 2BP01 cannot drop schema s because other objects depend on it"),
            ("DROP SCHEMA s CASCADE", "DROP SCHEMA "),
            ("BEGIN", "BEGIN "),
            ("SELECT 1/0", "ERR 22012 division by zero"),
            ("SELECT 1", "ERR 25P02 current transaction is aborted, commands ignored until end of transaction block"),
            ("COMMIT", "ROLLBACK "),
            ("SELECT 1", "?column?:23 => 1 [SELECT 1]"),
        ],
    );
}

#[test]
fn catalog_and_rows_survive_a_crash_after_acknowledgement() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            for sql in [
                "CREATE TABLE t (a int PRIMARY KEY, b text)",
                "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
                "DELETE FROM t WHERE a = 2",
            ] {
                let r = execute_simple(&mut session, &cluster, sql).await;
                assert!(r.iter().all(Result::is_ok), "{sql}: {r:?}");
            }
        }
        // Everything acknowledged was synced; a crash keeps it.
        let crashed = fs.crash_fork(helios_engine::memfs::CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        let mut session = Session::new("u", "postgres");
        let r = execute_simple(&mut session, &cluster, "SELECT a, b FROM t ORDER BY a").await;
        assert_eq!(render(&r[0]), "a:23,b:25 => 1|one / 3|three [SELECT 2]");
        cluster.close().await;
    });
}

/// A scan fragment's reply waits until what it read is durable: a primary-key lookup waits
/// for the newest write to its row (an insert, an update, a delete), not for other rows'
/// newer writes; anything reading a range (a table scan, an index, a locking read) waits for
/// the whole log.
#[test]
fn reads_wait_for_the_durability_of_what_they_read() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 1).await;
        let mut session = Session::new("u", "postgres");
        let run = |session: &mut Session, sql: &'static str| {
            let cluster = &cluster;
            let mut s = session.clone();
            async move {
                cluster.scan_waits.borrow_mut().clear();
                let results = execute_simple(&mut s, cluster, sql).await;
                assert!(results.iter().all(Result::is_ok), "{sql}: {results:?}");
                let waits = cluster.scan_waits.borrow().clone();
                assert_eq!(waits.len(), 1, "{sql}: one fragment on one shard");
                (s, waits[0])
            }
        };
        for sql in [
            "CREATE TABLE t (id int PRIMARY KEY, v int)",
            "CREATE INDEX t_v ON t (v)",
            "INSERT INTO t VALUES (1, 10), (2, 20), (3, 30)",
            "BEGIN; UPDATE t SET v = 11 WHERE id = 1; COMMIT",
        ] {
            let r = execute_simple(&mut session, &cluster, sql).await;
            assert!(r.iter().all(Result::is_ok), "{sql}: {r:?}");
        }
        let (s, (_, untouched, end)) = run(&mut session, "SELECT v FROM t WHERE id = 2").await;
        session = s;
        assert!(
            untouched < end,
            "row 2 was written before the update of row 1"
        );
        let (s, (_, updated, end)) = run(&mut session, "SELECT v FROM t WHERE id = 1").await;
        session = s;
        assert_eq!(updated, end, "row 1's update is the newest record");
        for sql in [
            "SELECT v FROM t WHERE v > 0",
            "SELECT v FROM t WHERE v = 20",
            "SELECT v FROM t WHERE id = 2 FOR UPDATE",
        ] {
            let (s, (_, wait, end)) = run(&mut session, sql).await;
            session = s;
            assert_eq!(wait, end, "{sql} reads a range: it waits for the whole log");
        }
        let r = execute_simple(&mut session, &cluster, "DELETE FROM t WHERE id = 3").await;
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        let (_, (_, deleted, end)) = run(&mut session, "SELECT v FROM t WHERE id = 3").await;
        assert_eq!(deleted, end, "not finding row 3 observes its deletion");
        cluster.close().await;
    });
}

/// A partial index is read for a query whose WHERE repeats the index's own (as ORMs write
/// soft-delete lookups), whether its values come as literals (a simple query, run through
/// its shape's parameters) or as parameters of a prepared statement; a query that does not
/// imply it reads the table, and both find the same rows.
#[test]
fn partial_indexes_serve_queries_that_imply_their_where() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        for sql in [
            "CREATE TABLE acct (id int PRIMARY KEY, email text, state text, deleted_at timestamptz)",
            "INSERT INTO acct SELECT g, 'e' || (g % 5), CASE WHEN g % 3 = 0 THEN 'closed' ELSE 'open' END, \
             CASE WHEN g % 4 = 0 THEN now() END FROM generate_series(1, 60) g",
            "CREATE INDEX acct_live ON acct (email) WHERE deleted_at IS NULL",
            "CREATE INDEX acct_open ON acct (id) WHERE state = 'open' AND deleted_at IS NULL",
        ] {
            let r = execute_simple(&mut session, &cluster, sql).await;
            assert!(r.iter().all(Result::is_ok), "{sql}: {r:?}");
        }
        let cases = [
            ("SELECT id FROM acct WHERE deleted_at IS NULL AND email = 'e2' ORDER BY id", true),
            ("SELECT id FROM acct WHERE email = 'e2' AND deleted_at IS NULL ORDER BY id", true),
            ("SELECT id FROM acct WHERE email = 'e2' ORDER BY id", false),
            ("SELECT id FROM acct WHERE id > 40 AND state = 'open' AND deleted_at IS NULL ORDER BY id", true),
            ("SELECT id FROM acct WHERE id > 40 AND state = 'closed' AND deleted_at IS NULL ORDER BY id", false),
            ("SELECT id FROM acct WHERE id > 40 AND state = 'open' ORDER BY id", false),
        ];
        for (sql, indexed) in cases {
            cluster.scan_indexes.borrow_mut().clear();
            let via_index = execute_simple(&mut session, &cluster, sql).await;
            let used = cluster.scan_indexes.borrow().iter().all(Option::is_some);
            assert_eq!(used, indexed, "{sql}");
            let mut plain = session.clone();
            plain.set_parameter("helios.query_shapes", "off").unwrap();
            let without_shapes = execute_simple(&mut plain, &cluster, sql).await;
            assert_eq!(render(&via_index[0]), render(&without_shapes[0]), "{sql}");
        }
        // A prepared statement whose parameter stands where the index's constant is.
        let q = prepare(
            &session,
            &cluster,
            "SELECT count(*) FROM acct WHERE id > 10 AND state = $1 AND deleted_at IS NULL",
            &[],
        )
        .unwrap();
        for (argument, indexed, count) in [("open", true, "25"), ("closed", false, "12")] {
            cluster.scan_indexes.borrow_mut().clear();
            let r = execute_prepared(&mut session, &cluster, &q, &[Some(argument.into())]).await;
            assert!(render(&r).contains(&format!("=> {count} ")), "{argument}: {}", render(&r));
            let used = cluster.scan_indexes.borrow().iter().all(Option::is_some);
            assert_eq!(used, indexed, "state = {argument}");
        }
        cluster.close().await;
    });
}

/// `DROP ... PURGE` (Oracle's, which the SQL parser takes) is PostgreSQL's syntax error at
/// the word, and drops nothing.
#[test]
fn drop_purge_is_a_syntax_error() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 1).await;
        let mut session = Session::new("u", "postgres");
        let r = execute_simple(&mut session, &cluster, "CREATE TABLE pt (a int)").await;
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        let r = execute_simple(&mut session, &cluster, "DROP TABLE pt purge").await;
        let error = r[0].as_ref().expect_err("PURGE is refused");
        assert_eq!(
            (error.sqlstate, error.message.as_str(), error.position),
            ("42601", "syntax error at or near \"purge\"", Some(15))
        );
        let r = execute_simple(&mut session, &cluster, "SELECT count(*) FROM pt").await;
        assert_eq!(render(&r[0]), "count:20 => 0 [SELECT 1]");
        cluster.close().await;
    });
}

#[test]
fn prepared_statements_infer_parameter_types() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        execute_simple(
            &mut session,
            &cluster,
            "CREATE TABLE p (k bigint PRIMARY KEY, v text)",
        )
        .await;
        let ins = prepare(&session, &cluster, "INSERT INTO p VALUES ($1, $2)", &[]).unwrap();
        assert_eq!(ins.param_types, vec![20, 25]);
        assert_eq!(ins.columns, None);
        let r = execute_prepared(
            &mut session,
            &cluster,
            &ins,
            &[Some("7".into()), Some("seven".into())],
        )
        .await;
        assert_eq!(render(&r), "INSERT 0 1 ");
        let sel = prepare(
            &session,
            &cluster,
            "SELECT v, k + $2 FROM p WHERE k = $1",
            &[],
        )
        .unwrap();
        assert_eq!(sel.param_types, vec![20, 20]);
        let cols: Vec<u32> = sel
            .columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_oid)
            .collect();
        assert_eq!(cols, vec![25, 20]);
        let r = execute_prepared(
            &mut session,
            &cluster,
            &sel,
            &[Some("7".into()), Some("1".into())],
        )
        .await;
        assert_eq!(render(&r), "v:25,?column?:20 => seven|8 [SELECT 1]");
        let bad = execute_prepared(&mut session, &cluster, &sel, &[Some("x".into()), None]).await;
        assert_eq!(
            render(&bad),
            "ERR 22P02 invalid input syntax for type bigint: \"x\""
        );
        let declared = prepare(&session, &cluster, "SELECT $1", &[23]).unwrap();
        assert_eq!(declared.param_types, vec![23]);
        let untyped = prepare(&session, &cluster, "SELECT $1", &[]).unwrap();
        assert_eq!(untyped.param_types, vec![25]);
    });
}

#[test]
fn indexes_and_views_live_in_the_catalog() {
    script(
        2,
        &[
            ("CREATE TABLE t (x int, y text)", "CREATE TABLE "),
            (
                "INSERT INTO t VALUES (1, 'a'), (0, 'b'), (NULL, 'c')",
                "INSERT 0 3",
            ),
            ("CREATE INDEX ti ON t (x)", "CREATE INDEX "),
            (
                "CREATE INDEX ti ON t (y)",
                "ERR 42P07 relation \"ti\" already exists",
            ),
            ("CREATE INDEX IF NOT EXISTS ti ON t (y)", "CREATE INDEX "),
            ("CREATE INDEX ON t (y)", "CREATE INDEX "),
            (
                "SELECT c.relname, c.relkind, pg_get_indexdef(i.indexrelid) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid ORDER BY 1",
                "relname:19,relkind:25,pg_get_indexdef:25 => t_y_idx|i|CREATE INDEX t_y_idx ON public.t USING btree (y) / ti|i|CREATE INDEX ti ON public.t USING btree (x) [SELECT 2]",
            ),
            (
                "CREATE INDEX nope ON t (z)",
                "ERR 42703 column \"z\" does not exist",
            ),
            (
                "CREATE INDEX nope ON missing (z)",
                "ERR 42P01 relation \"missing\" does not exist",
            ),
            ("CREATE UNIQUE INDEX u ON t (x)", "CREATE INDEX "),
            (
                "SELECT pg_get_indexdef('u'::regclass)",
                "pg_get_indexdef:25 => CREATE UNIQUE INDEX u ON public.t USING btree (x) [SELECT 1]",
            ),
            (
                "INSERT INTO t VALUES (1, 'dup')",
                "ERR 23505 duplicate key value violates unique constraint \"u\" [DETAIL: Key (x)=(1) already exists.]",
            ),
            ("INSERT INTO t VALUES (NULL, 'n'), (2, 'two')", "INSERT 0 2"),
            (
                "CREATE UNIQUE INDEX u2 ON t (y)",
                "CREATE INDEX ",
            ),
            ("DROP INDEX u", "DROP INDEX "),
            ("DROP INDEX u2", "DROP INDEX "),
            ("DELETE FROM t WHERE x IS NULL AND y = 'n' OR x = 2", "DELETE 2"),
            (
                "CREATE TABLE ti (a int)",
                "ERR 42P07 relation \"ti\" already exists",
            ),
            (
                "CREATE VIEW pos AS SELECT x FROM t WHERE x > 0",
                "CREATE VIEW ",
            ),
            ("SELECT * FROM pos", "x:23 => 1 [SELECT 1]"),
            ("SELECT p.x + 1 AS n FROM pos p", "n:23 => 2 [SELECT 1]"),
            (
                "CREATE VIEW named (a) AS SELECT x, y FROM t",
                "CREATE VIEW ",
            ),
            (
                "SELECT a, y FROM named WHERE a = 0",
                "a:23,y:25 => 0|b [SELECT 1]",
            ),
            (
                "CREATE VIEW pos AS SELECT 1",
                "ERR 42P07 relation \"pos\" already exists",
            ),
            (
                "CREATE OR REPLACE VIEW pos AS SELECT x FROM t WHERE x = 0",
                "CREATE VIEW ",
            ),
            ("SELECT * FROM pos", "x:23 => 0 [SELECT 1]"),
            (
                "CREATE VIEW bad AS SELECT nosuch FROM t",
                "ERR 42703 column \"nosuch\" does not exist",
            ),
            (
                "CREATE VIEW toomany (a, b, c) AS SELECT x FROM t",
                "ERR 42601 CREATE VIEW specifies more column names than columns",
            ),
            ("DROP VIEW t", "ERR 42809 \"t\" is not a view"),
            ("DROP INDEX pos", "ERR 42809 \"pos\" is not an index"),
            ("DROP VIEW pos, named", "DROP VIEW "),
            ("DROP VIEW pos", "ERR 42704 view \"pos\" does not exist"),
            ("DROP INDEX ti", "DROP INDEX "),
            ("DROP INDEX IF EXISTS ti", "DROP INDEX "),
            ("DROP TABLE t", "DROP TABLE "),
            // The table's remaining index (t_y_idx) went with it.
            (
                "DROP INDEX t_y_idx",
                "ERR 42704 index \"t_y_idx\" does not exist",
            ),
            (
                "INSERT OR REPLACE INTO t VALUES (1)",
                "ERR 42601 syntax error at or near \"OR\"",
            ),
        ],
    );
}

#[test]
fn explain_shows_fragments_and_coordinator() {
    script(
        4,
        &[
            ("CREATE TABLE e (id int PRIMARY KEY, x int, s text)", "CREATE TABLE "),
            (
                "EXPLAIN SELECT x, count(*) FROM e WHERE x > 3 GROUP BY x",
                "QUERY PLAN:25 => Coordinator (on the client's shard; 4 shards) /   ->  Project (2 columns) /     ->  Finalize Aggregate (1 group keys): count(*) over partial states of #0 / Shard fragments /   #0 Scan on public.e (every shard: 0..4 in parallel) /         Filter (pushed down): (x > 3) /         Partial Aggregate: count(*) by x [EXPLAIN]",
            ),
            (
                "EXPLAIN SELECT s FROM e WHERE id = 5",
                "QUERY PLAN:25 => Coordinator (on the client's shard; 4 shards) /   ->  Project (1 columns) /     ->  Fragment results #0 / Shard fragments /   #0 Point Get on public.e (primary key; shard 0 only) /         Filter (pushed down): (id = 5) /         Projection: s [EXPLAIN]",
            ),
            ("EXPLAIN ANALYZE SELECT 1", "ERR 0A000 EXPLAIN ANALYZE is not supported yet"),
            ("EXPLAIN DELETE FROM e", "ERR 0A000 EXPLAIN of statements other than queries is not supported yet"),
        ],
    );
}

#[test]
fn join_filters_run_in_the_fragments_that_may_drop_rows() {
    script(
        2,
        &[
            ("CREATE TABLE a (id int PRIMARY KEY, x int)", "CREATE TABLE "),
            ("CREATE TABLE b (id int PRIMARY KEY, a_id int, y int)", "CREATE TABLE "),
            ("INSERT INTO a VALUES (1, 10), (2, 20), (3, 30)", "INSERT 0 3"),
            ("INSERT INTO b VALUES (1, 1, 5), (2, 2, NULL)", "INSERT 0 2"),
            // WHERE on the null-extended side must see the NULL-extended rows.
            (
                "SELECT a.id FROM a LEFT JOIN b ON a.id = b.a_id WHERE b.y IS NULL ORDER BY 1",
                "id:23 => 2 / 3 [SELECT 2]",
            ),
            (
                "SELECT a.id, b.id FROM a LEFT JOIN b ON a.id = b.a_id AND b.y > 0 WHERE a.x >= 20 ORDER BY 1",
                "id:23,id:23 => 2|NULL / 3|NULL [SELECT 2]",
            ),
            (
                "SELECT a.id FROM a RIGHT JOIN b ON a.id = b.a_id AND a.x > 10 ORDER BY b.id",
                "id:23 => NULL / 2 [SELECT 2]",
            ),
            (
                "SELECT a.id FROM a FULL JOIN b ON a.id = b.a_id WHERE a.x > 10 ORDER BY 1",
                "id:23 => 2 / 3 [SELECT 2]",
            ),
            (
                "EXPLAIN SELECT a.id FROM a JOIN b ON a.id = b.a_id WHERE a.x > 1 AND b.y < 9",
                "QUERY PLAN:25 => Coordinator (on the client's shard; 2 shards) /   ->  Project (1 columns) /     ->  Broadcast Join (Inner): fragment results #0 / Shard fragments /   #0 Broadcast Join (Inner) of public.a and public.b (every shard: 0..2 in parallel): #1 broadcast to every shard /         Hash Cond: (a.id = b.a_id) /         Filter on public.a (pushed down): (x > 1) /         Broadcast limit: 100000 rows, 16 MiB (above it: hash join on the coordinator) /         Projection: id /   #1 Scan on public.b (every shard: 0..2 in parallel), broadcast to #0's fragments /         Filter (pushed down): (y < 9) [EXPLAIN]",
            ),
            (
                "EXPLAIN SELECT a.id FROM a LEFT JOIN b ON a.id = b.a_id WHERE b.y IS NULL AND a.x > 1",
                "QUERY PLAN:25 => Coordinator (on the client's shard; 2 shards) /   ->  Project (1 columns) /     ->  Filter /       ->  Broadcast Join (Left): fragment results #0 / Shard fragments /   #0 Broadcast Join (Left) of public.a and public.b (every shard: 0..2 in parallel): #1 broadcast to every shard /         Hash Cond: (a.id = b.a_id) /         Filter on public.a (pushed down): (x > 1) /         Broadcast limit: 100000 rows, 16 MiB (above it: hash join on the coordinator) /         Projection: id, y /   #1 Scan on public.b (every shard: 0..2 in parallel), broadcast to #0's fragments [EXPLAIN]",
            ),
        ],
    );
}

#[test]
fn updates_and_upserts_modify_rows_on_their_shard() {
    script(
        2,
        &[
            ("CREATE TABLE acc (id int PRIMARY KEY, bal int NOT NULL CHECK (bal >= 0), note text)", "CREATE TABLE "),
            ("INSERT INTO acc VALUES (1, 10, 'a'), (2, 20, 'b')", "INSERT 0 2"),
            ("UPDATE acc SET bal = bal + 5 WHERE id = 1 RETURNING bal", "bal:23 => 15 [UPDATE 1]"),
            ("UPDATE acc SET bal = bal - 100 WHERE id = 2", "ERR 23514 new row for relation \"acc\" violates check constraint \"acc_bal_check\" [DETAIL: Failing row contains (2, -80, b).]"),
            ("UPDATE acc SET note = DEFAULT WHERE bal > 12", "UPDATE 2 "),
            ("SELECT count(*) FROM acc WHERE note IS NULL", "count:20 => 2 [SELECT 1]"),
            (
                "INSERT INTO acc VALUES (1, 1, 'new') ON CONFLICT (id) DO UPDATE SET bal = acc.bal + excluded.bal, note = excluded.note RETURNING id, bal, note",
                "id:23,bal:23,note:25 => 1|16|new [INSERT 0 1]",
            ),
            (
                "INSERT INTO acc VALUES (3, 3, 'c') ON CONFLICT (id) DO UPDATE SET bal = 0 RETURNING *",
                "id:23,bal:23,note:25 => 3|3|c [INSERT 0 1]",
            ),
            (
                "INSERT INTO acc AS a VALUES (2, 7, 'x') ON CONFLICT ON CONSTRAINT acc_pkey DO UPDATE SET bal = excluded.bal WHERE a.bal > 100",
                "INSERT 0 0",
            ),
            ("SELECT id, bal, note FROM acc ORDER BY id", "id:23,bal:23,note:25 => 1|16|new / 2|20|NULL / 3|3|c [SELECT 3]"),
            // By primary key, the shard's read-modify-write is all there is (no read first):
            // an absent row and a row the rest of the WHERE rejects are both left alone.
            ("UPDATE acc SET bal = 1 WHERE id = 99", "UPDATE 0"),
            ("UPDATE acc SET bal = 1 WHERE id = 1 AND note = 'zzz'", "UPDATE 0"),
            ("DELETE FROM acc WHERE id = 3 AND bal = 4", "DELETE 0"),
            ("DELETE FROM acc WHERE id = 3 AND bal = 3 RETURNING note", "note:25 => c [DELETE 1]"),
            ("DELETE FROM acc WHERE id = 3", "DELETE 0"),
            ("CREATE INDEX acc_bal ON acc (bal)", "~CREATE INDEX"),
            ("UPDATE acc SET bal = 17 WHERE id = 1 RETURNING bal", "bal:23 => 17 [UPDATE 1]"),
            ("SELECT id FROM acc WHERE bal = 17", "id:23 => 1 [SELECT 1]"),
            ("SELECT count(*) FROM acc WHERE bal = 16", "count:20 => 0 [SELECT 1]"),
            ("INSERT INTO acc VALUES (3, 3, 'c')", "INSERT 0 1"),
            ("UPDATE acc SET bal = 16 WHERE id = 1", "UPDATE 1"),
            ("INSERT INTO acc VALUES (1, 1), (1, 2) ON CONFLICT (id) DO UPDATE SET bal = 0", "ERR 21000 ON CONFLICT DO UPDATE command cannot affect row a second time"),
            ("INSERT INTO acc VALUES (1, 1) ON CONFLICT DO UPDATE SET bal = 0", "ERR 42601 ON CONFLICT DO UPDATE requires inference specification or constraint name"),
            ("INSERT INTO acc VALUES (1, 1) ON CONFLICT (note) DO UPDATE SET bal = 0", "ERR 42P10 there is no unique or exclusion constraint matching the ON CONFLICT specification"),
            ("INSERT INTO acc VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET bal = -1", "ERR 23514 new row for relation \"acc\" violates check constraint \"acc_bal_check\" [DETAIL: Failing row contains (1, -1, new).]"),
            ("INSERT INTO acc VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET nosuch = 1", "ERR 42703 column \"nosuch\" of relation \"acc\" does not exist"),
            // An index predicate infers partial unique indexes; a full one satisfies any
            // (outputs as PostgreSQL 15 gives them).
            ("INSERT INTO acc VALUES (1, 5) ON CONFLICT (id) WHERE bal > 0 DO UPDATE SET bal = excluded.bal + acc.bal RETURNING bal", "bal:23 => 21 [INSERT 0 1]"),
            ("INSERT INTO acc AS a VALUES (1, 5) ON CONFLICT (id) WHERE a.bal > 0 DO NOTHING", "INSERT 0 0"),
            ("INSERT INTO acc VALUES (1, 5) ON CONFLICT (id) WHERE bal DO NOTHING", "INSERT 0 0"),
            ("INSERT INTO acc VALUES (1, 5) ON CONFLICT (id) WHERE nosuch > 0 DO NOTHING", "ERR 42703 column \"nosuch\" does not exist"),
            ("INSERT INTO acc VALUES (1, 5) ON CONFLICT (note) WHERE bal > 0 DO NOTHING", "ERR 42P10 there is no unique or exclusion constraint matching the ON CONFLICT specification"),
            ("INSERT INTO acc VALUES (1, 5) ON CONFLICT (id) WHERE bal IN (SELECT 1) DO NOTHING", "ERR 0A000 cannot use subquery in index predicate"),
            // Upserts that set every column, the key to its own value (Sequelize's, knex's
            // merge()); a change of the key's value is refused, not half-done.
            ("INSERT INTO acc VALUES (1, 6, 'all') ON CONFLICT (id) DO UPDATE SET id = excluded.id, bal = excluded.bal, note = excluded.note RETURNING *", "id:23,bal:23,note:25 => 1|6|all [INSERT 0 1]"),
            ("INSERT INTO acc VALUES (1, 6) ON CONFLICT (id) DO UPDATE SET id = 2", "ERR 0A000 ON CONFLICT DO UPDATE that changes a primary key value is not supported"),
            ("SELECT id, bal FROM acc ORDER BY id", "id:23,bal:23 => 1|6 / 2|20 / 3|3 [SELECT 3]"),
        ],
    );
}

/// The queries psql 15 sends for `\l`, `\dn`, `\dt`, `\d`, `\d t`, `\di` (captured with
/// `psql -E` against PostgreSQL 15; `16390` is helios's OID for table `t`, see `pgcatalog`).
const PSQL_DESCRIBE: &[&str] = &[
    r#"SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"#,
    r#"SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;"#,
    r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','v','m','S','f','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#,
    r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#,
    r#"SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = '16390';"#,
    r#"SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '16390' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#,
    r#"SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),
  pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace
FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
  LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
WHERE c.oid = '16390' AND c.oid = i.indrelid AND i.indexrelid = c2.oid
ORDER BY i.indisprimary DESC, c2.relname;"#,
    r#"SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = '16390' ORDER BY 1;"#,
    r#"SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,
  'd' = any(stxkind) AS ndist_enabled,
  'f' = any(stxkind) AS deps_enabled,
  'm' = any(stxkind) AS mcv_enabled,
stxstattarget
FROM pg_catalog.pg_statistic_ext
WHERE stxrelid = '16390'
ORDER BY nsp, stxname;"#,
    r#"SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
     JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid ='16390' and pg_catalog.pg_relation_is_publishable('16390')
UNION
SELECT pubname
     , pg_get_expr(pr.prqual, c.oid)
     , (CASE WHEN pr.prattrs IS NOT NULL THEN
         (SELECT string_agg(attname, ', ')
           FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                pg_catalog.pg_attribute
          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])
        ELSE NULL END) FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
     JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = '16390'
UNION
SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable('16390')
ORDER BY 1;"#,
    r#"SELECT c.oid::pg_catalog.regclass
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = '16390'
  AND c.relkind != 'p' AND c.relkind != 'I'
ORDER BY inhseqno;"#,
    r#"SELECT c.oid::pg_catalog.regclass, c.relkind, inhdetachpending, pg_catalog.pg_get_expr(c.relpartbound, c.oid)
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhrelid AND i.inhparent = '16390'
ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.oid::pg_catalog.regclass::pg_catalog.text;"#,
    r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner",
  c2.relname as "Table"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
     LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid
WHERE c.relkind IN ('i','I','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#,
];

/// What helios answers to each of [`PSQL_DESCRIBE`] (checked against PostgreSQL 15's answers:
/// the same rows but for OID-typed columns being int8 (20) and `"char"` ones text (25)).
const PSQL_DESCRIBE_EXPECTED: &[&str] = &[
    r#"Name:19,Owner:19,Encoding:19,Collate:25,Ctype:25,ICU Locale:25,Locale Provider:25,Access privileges:25 => postgres|u|UTF8|C|C|NULL|libc|NULL [SELECT 1]"#,
    r#"Name:19,Owner:19 => public|u [SELECT 1]"#,
    r#"Schema:19,Name:19,Type:25,Owner:19 => public|t|table|u [SELECT 1]"#,
    r#"oid:20,nspname:19,relname:19 => 16390|public|t [SELECT 1]"#,
    r#"relchecks:21,relkind:25,relhasindex:16,relhasrules:16,relhastriggers:16,relrowsecurity:16,relforcerowsecurity:16,relhasoids:16,relispartition:16,?column?:25,reltablespace:20,case:25,relpersistence:25,relreplident:25,amname:19 => 0|r|t|f|f|f|f|f|f||0||p|d|heap [SELECT 1]"#,
    r#"attname:19,format_type:25,pg_get_expr:25,attnotnull:16,attcollation:19,attidentity:25,attgenerated:25 => a|integer|NULL|t|NULL|| / b|integer|NULL|t|NULL|| / c|text|'x'::text|f|NULL|| / d|bigint|7|t|NULL|| [SELECT 4]"#,
    r#"relname:19,indisprimary:16,indisunique:16,indisclustered:16,indisvalid:16,pg_get_indexdef:25,pg_get_constraintdef:25,contype:25,condeferrable:16,condeferred:16,indisreplident:16,reltablespace:20 => t_pkey|t|t|f|t|CREATE UNIQUE INDEX t_pkey ON public.t USING btree (a, b)|PRIMARY KEY (a, b)|p|f|f|f|0 [SELECT 1]"#,
    r#"polname:19,polpermissive:16,case:25,pg_get_expr:25,pg_get_expr:25,cmd:25 =>  [SELECT 0]"#,
    r#"oid:20,stxrelid:19,nsp:25,stxname:19,columns:25,ndist_enabled:16,deps_enabled:16,mcv_enabled:16,stxstattarget:23 =>  [SELECT 0]"#,
    r#"pubname:19,?column?:25,?column?:25 =>  [SELECT 0]"#,
    r#"oid:19 =>  [SELECT 0]"#,
    r#"oid:19,relkind:25,inhdetachpending:16,pg_get_expr:25 =>  [SELECT 0]"#,
    r#"Schema:19,Name:19,Type:25,Owner:19,Table:19 => public|t_pkey|index|u|t [SELECT 1]"#,
];

#[test]
fn psql_describe_queries() {
    let mut steps: Vec<(&str, &str)> = vec![(
        "CREATE TABLE t (a int NOT NULL, b int, c text DEFAULT 'x', d int8 DEFAULT 7 NOT NULL, PRIMARY KEY (a, b))",
        "CREATE TABLE ",
    )];
    for (q, e) in PSQL_DESCRIBE.iter().zip(PSQL_DESCRIBE_EXPECTED) {
        steps.push((q, e));
    }
    script(2, &steps);
}

/// Like [`script`], but runs every step and reports all mismatches together.
fn script_all(shards: usize, steps: &[(&str, &str)]) {
    let steps: Vec<(String, String)> = steps
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    let failures = rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
        let mut session = Session::new("u", "postgres");
        let mut failures = Vec::new();
        for (sql, expected) in &steps {
            let results = execute_simple(&mut session, &cluster, sql).await;
            let got = render(results.last().expect("a result"));
            if !got.trim_end().starts_with(expected.trim_end()) {
                failures.push(format!("{sql}\n  expected: {expected}\n       got: {got}"));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn catalog_relations_and_functions() {
    script_all(
        2,
        &[
            ("CREATE SCHEMA s", "CREATE SCHEMA "),
            ("CREATE TABLE t (id int PRIMARY KEY, v varchar(10) DEFAULT 'a', n numeric(10,2), k int CHECK (k > 0))", "CREATE TABLE "),
            ("CREATE TABLE s.u (x int8 DEFAULT -1)", "CREATE TABLE "),
            // Unqualified names find pg_catalog first; information_schema needs qualifying.
            ("SELECT relname, relkind, relnatts, relchecks FROM pg_class ORDER BY oid", "relname:19,relkind:25,relnatts:21,relchecks:21 => t|r|4|1 / t_pkey|i|1|0 / u|r|1|0 [SELECT 3]"),
            ("SELECT oid, nspname FROM pg_catalog.pg_namespace ORDER BY oid", "oid:20,nspname:19 => 11|pg_catalog / 2200|public / 13000|information_schema / 16390|s [SELECT 4]"),
            // A table with a secondary index and no primary key has no _pkey index.
            ("CREATE TABLE w (x int); CREATE INDEX w_x ON w (x)", "CREATE INDEX "),
            ("SELECT relname, relkind, relhasindex FROM pg_class WHERE relname LIKE 'w%' ORDER BY 1", "relname:19,relkind:25,relhasindex:16 => w|r|t / w_x|i|f [SELECT 2]"),
            // conkey is an int2[], as in PostgreSQL (subscripts and ANY work on it).
            ("SELECT conkey, conkey[1], 2 = ANY(conkey) FROM pg_constraint WHERE contype = 'p'", "conkey:1005,conkey:21,?column?:16 => {1}|1|f [SELECT 1]"),
            // Sizes: rows and index entries, gathered from every shard; a primary key has
            // no storage of its own, and an empty table none.
            ("INSERT INTO w SELECT g FROM generate_series(1, 200) g", "INSERT 0 200"),
            ("SELECT pg_table_size('w') > 200 * 8, pg_relation_size('w_x') > 200 * 8, pg_table_size('t'), pg_relation_size('t_pkey'), pg_indexes_size('t')", "?column?:16,?column?:16,pg_table_size:20,pg_relation_size:20,pg_indexes_size:20 => t|t|0|0|0 [SELECT 1]"),
            ("SELECT pg_total_relation_size('w') = pg_table_size('w') + pg_indexes_size('w'), pg_indexes_size('w') = pg_relation_size('w_x'), pg_relation_size('w', 'fsm'), pg_relation_size('w', 'main') = pg_table_size('w')", "?column?:16,?column?:16,pg_relation_size:20,?column?:16 => t|t|0|t [SELECT 1]"),
            ("SELECT c.relname, pg_table_size(c.oid) > 0 FROM pg_class c WHERE c.relname LIKE 'w%' ORDER BY 1", "relname:19,?column?:16 => w|t / w_x|t [SELECT 2]"),
            ("SELECT pg_table_size(0), pg_table_size(NULL)", "pg_table_size:20,pg_table_size:20 => NULL|NULL [SELECT 1]"),
            ("SELECT pg_relation_size('w', 'x')", "ERR 22023 invalid fork name"),
            ("SELECT pg_database_size('postgres') >= pg_total_relation_size('w'), pg_database_size('nodb')", "ERR 3D000 database \"nodb\" does not exist"),
            ("CREATE DATABASE other", "CREATE DATABASE "),
            ("SELECT pg_database_size('postgres') >= pg_total_relation_size('w'), pg_database_size('other')", "?column?:16,pg_database_size:20 => t|0 [SELECT 1]"),
            ("SELECT has_database_privilege('postgres', 'CONNECT'), has_database_privilege('other', 'create, Temp WITH GRANT OPTION')", "has_database_privilege:16,has_database_privilege:16 => t|t [SELECT 1]"),
            ("SELECT has_database_privilege('postgres', 'foo')", "ERR 22023 unrecognized privilege type: \"foo\""),
            ("SELECT has_database_privilege('nodb', 'connect')", "ERR 3D000 database \"nodb\" does not exist"),
            ("DROP DATABASE other", "DROP DATABASE "),
            ("CREATE VIEW wv AS SELECT x FROM w WHERE x > 1", "CREATE VIEW "),
            ("SELECT pg_get_viewdef('wv'), pg_get_viewdef('wv'::regclass, true) IS NOT NULL, pg_get_viewdef('w'), pg_get_ruledef(0)", "pg_get_viewdef:25,?column?:16,pg_get_viewdef:25,pg_get_ruledef:25 =>  SELECT x FROM w WHERE x > 1;|t|NULL|NULL [SELECT 1]"),
            ("DROP VIEW wv", "DROP VIEW "),
            ("SELECT pg_table_size('nope')", "ERR 42P01 relation \"nope\" does not exist"),
            // As PostgreSQL 15 prints them.
            ("SELECT pg_size_pretty(v) FROM (VALUES (0), (10239), (10240), (-10240), (20971520), (1073741824), (-21474836480), (9223372036854775807), (10752)) t(v)", "pg_size_pretty:25 => 0 bytes / 10239 bytes / 10 kB / -10 kB / 20 MB / 1024 MB / -20 GB / 8192 PB / 11 kB [SELECT 9]"),
            // A sum of sizes is numeric: bytes print as they are, larger units truncate.
            ("SELECT pg_size_pretty(sum(v)), pg_size_pretty(1.5::numeric), pg_size_pretty(20971520.9::numeric) FROM (VALUES (10240::int8), (1::int8)) t(v)", "pg_size_pretty:25,pg_size_pretty:25,pg_size_pretty:25 => 10 kB|1.5 bytes|20 MB [SELECT 1]"),
            ("DROP TABLE w", "DROP TABLE "),
            ("SELECT * FROM pg_catalog.pg_nope", "ERR 42P01 relation \"pg_catalog.pg_nope\" does not exist"),
            ("SELECT * FROM tables", "ERR 42P01 relation \"tables\" does not exist"),
            ("SELECT table_schema, table_name, table_type FROM information_schema.tables ORDER BY 1, 2", "table_schema:19,table_name:19,table_type:25 => public|t|BASE TABLE / s|u|BASE TABLE [SELECT 2]"),
            ("SELECT column_name, ordinal_position, column_default, is_nullable, data_type, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_name = 't' ORDER BY 2", "column_name:19,ordinal_position:23,column_default:25,is_nullable:25,data_type:25,character_maximum_length:23,numeric_precision:23,numeric_scale:23 => id|1|NULL|NO|integer|NULL|32|0 / v|2|'a'::character varying|YES|character varying|10|NULL|NULL / n|3|NULL|YES|numeric|NULL|10|2 / k|4|NULL|YES|integer|NULL|32|0 [SELECT 4]"),
            ("SELECT schema_name FROM information_schema.schemata ORDER BY 1", "schema_name:19 => information_schema / pg_catalog / public / s [SELECT 4]"),
            // Functions psql uses.
            ("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = 't'::regclass ORDER BY a.attnum", "attname:19,format_type:25 => id|integer / v|character varying(10) / n|numeric(10,2) / k|integer [SELECT 4]"),
            ("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d ORDER BY d.adrelid", "pg_get_expr:25 => 'a'::character varying / '-1'::integer [SELECT 2]"),
            ("SELECT conname, contype, pg_get_constraintdef(oid, true), pg_get_constraintdef(oid) FROM pg_constraint ORDER BY 1", "conname:19,contype:25,pg_get_constraintdef:25,pg_get_constraintdef:25 => t_k_check|c|CHECK (k > 0)|CHECK ((k > 0)) / t_pkey|p|PRIMARY KEY (id)|PRIMARY KEY (id) [SELECT 2]"),
            ("SELECT pg_get_indexdef('t_pkey'::regclass)", "pg_get_indexdef:25 => CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"),
            ("SELECT pg_get_indexdef('t_pkey'::regclass, 1, true), pg_get_indexdef('t_pkey'::regclass, 2, true), pg_get_indexdef(1, 0, true)", "pg_get_indexdef:25,pg_get_indexdef:25,pg_get_indexdef:25 => id||NULL"),
            ("SELECT pg_type_is_visible(23), pg_type_is_visible(1), pg_function_is_visible(1)", "pg_type_is_visible:16,pg_type_is_visible:16,pg_function_is_visible:16 => t|NULL|f"),
            ("SELECT spcname FROM pg_tablespace ORDER BY oid", "spcname:19 => pg_default / pg_global"),
            ("SELECT 'pg_catalog.pg_class'::regclass, 'pg_class'::regclass::oid, 1259::regclass, pg_table_is_visible(1259)", "regclass:20,oid:20,regclass:19,pg_table_is_visible:16 => 1259|1259|pg_class|t"),
            ("SELECT 'information_schema.tables'::regclass::regclass", "regclass:19 => information_schema.tables"),
            ("SELECT c.oid::regclass, pg_table_is_visible(c.oid) FROM pg_class c ORDER BY c.oid", "oid:19,pg_table_is_visible:16 => t|t / t_pkey|t / s.u|f [SELECT 3]"),
            ("SET search_path = s, public", "SET "),
            ("SELECT c.oid::regclass, pg_table_is_visible(c.oid) FROM pg_class c ORDER BY c.oid", "oid:19,pg_table_is_visible:16 => t|t / t_pkey|t / u|t [SELECT 3]"),
            ("SELECT 'nope'::regclass", "ERR 42P01 relation \"nope\" does not exist"),
            // A text value (SQLAlchemy's reflection binds `%(name)s::regclass`), to_regclass.
            ("SELECT ('pg_' || 'class')::regclass, to_regclass('t') = 't'::regclass, to_regclass('nope'), to_regclass(NULL)", "regclass:20,?column?:16,to_regclass:20,to_regclass:20 => 1259|t|NULL|NULL"),
            ("SELECT ('no' || 'pe')::regclass", "ERR 42P01 relation \"nope\" does not exist"),
            // psycopg's TypeInfo.fetch (SQLAlchemy calls it on connect): to_regtype is NULL for no such type.
            ("SELECT typname, oid::regtype::text FROM pg_type t WHERE t.oid = to_regtype($$character varying$$) OR t.oid = to_regtype('hstore')", "typname:19,oid:25 => varchar|character varying"),
            ("SELECT 'integer[]'::regtype, 'pg_catalog.int8'::regtype::oid, to_regtype('_text'), to_regtype(NULL)", "regtype:20,oid:20,to_regtype:20,to_regtype:20 => 1007|20|1009|NULL"),
            ("SELECT 'hstore'::regtype", "ERR 42704 type \"hstore\" does not exist"),
            ("SELECT 23::regtype::text, 11::regnamespace, 0::regtype, pg_get_userbyid(10), pg_get_userbyid(7)", "text:25,regnamespace:19,regtype:19,pg_get_userbyid:19,pg_get_userbyid:19 => integer|pg_catalog|-|u|unknown (OID=7)"),
            ("SELECT pg_encoding_to_char(6), obj_description(1, 'pg_class'), col_description(1, 1), current_setting('search_path')", "pg_encoding_to_char:19,obj_description:25,col_description:25,current_setting:25 => UTF8|NULL|NULL|s, public"),
            ("SELECT current_setting('nope')", "ERR 42704 unrecognized configuration parameter \"nope\""),
            ("SELECT current_setting('nope', true)", "current_setting:25 => NULL"),
            ("SELECT format_type(NULL, -1), format_type(1043, NULL), pg_get_expr(NULL, 1)", "format_type:25,format_type:25,pg_get_expr:25 => NULL|character varying|NULL"),
            ("SELECT nope_function(1)", "ERR 42883 function nope_function(integer) does not exist"),
            ("SELECT format_type('x', 1)", "ERR 22P02 invalid input syntax for type bigint: \"x\""),
            // Regular expressions, also as OPERATOR(pg_catalog.~) with COLLATE.
            ("SELECT 'abc' ~ '^a', 'abc' !~ '^a', 'ABC' ~* 'b', 'ABC' !~* 'b', 'abc' OPERATOR(pg_catalog.~) '^(abc)$' COLLATE pg_catalog.default", "?column?:16,?column?:16,?column?:16,?column?:16,?column?:16 => t|f|t|f|t"),
            ("SELECT 1 OPERATOR(pg_catalog.=) 1, NULL ~ 'a'", "?column?:16,?column?:16 => t|NULL"),
            ("SELECT 'a' ~ '('", "ERR 2201B invalid regular expression"),
            ("SELECT 1 ~ 'a'", "ERR 42883 operator does not exist: integer ~ unknown"),
            ("SELECT 'a' COLLATE \"de_DE\"", "ERR 0A000 collation \"de_DE\" is not supported yet"),
            ("SELECT 1 OPERATOR(myschema.+) 1", "ERR 0A000"),
            // Arrays in their text form: ANY/ALL, subscripts, ARRAY(subquery), array_to_string.
            ("SELECT 2 = ANY('{1,2}'), 3 = ANY('{1,2}'), 3 = ANY('{1,NULL}'), 1 < ALL('{2,3}'), 'd' = any('{d,f}')", "?column?:16,?column?:16,?column?:16,?column?:16,?column?:16 => t|f|NULL|t|t"),
            ("SELECT 1 = ANY('x')", "ERR 22P02 malformed array literal: \"x\""),
            ("SELECT 1 = ANY(1)", "ERR 42804"),
            ("SELECT ('{10,20,30}'::int2[])[2] + 1, ('{a}'::text[])[5]", "?column?:23,text:25 => 21|NULL"),
            ("SELECT array_to_string(array(SELECT relname FROM pg_class ORDER BY 1), ','), array_upper('{4,5}'::int2[], 1)", "array_to_string:25,array_upper:23 => t,t_pkey,u|2"),
            ("SELECT array(SELECT 'a b' UNION ALL SELECT NULL)", "array:1009 => {\"a b\",NULL}"),
            // Relations of features helios lacks are empty but valid.
            ("SELECT count(*) FROM pg_inherits, pg_policy, pg_trigger, pg_statistic_ext, pg_publication, pg_publication_rel, pg_rewrite, pg_foreign_table, pg_partitioned_table", "count:20 => 0"),
            ("SELECT rolname, oid FROM pg_roles", "rolname:19,oid:20 => u|10"),
            ("SELECT usename FROM pg_user", "usename:19 => u"),
            ("SELECT setting FROM pg_settings WHERE name = 'server_version'", "setting:25 => 16.4"),
            ("SELECT typname FROM pg_type WHERE oid = 1043", "typname:19 => varchar"),
            ("SELECT amname FROM pg_am ORDER BY oid", "amname:19 => heap / btree"),
            ("SELECT datname, pg_encoding_to_char(encoding) FROM pg_database", "datname:19,pg_encoding_to_char:19 => postgres|UTF8"),
            // Catalog relations are read-only and never reach the shards.
            ("SELECT count(*) FROM pg_class c JOIN t ON t.id = c.oid", "count:20 => 0"),
            ("INSERT INTO pg_catalog.pg_class (relname) VALUES ('x')", "ERR 42501 permission denied: \"pg_class\" is a system catalog"),
            ("DELETE FROM pg_namespace", "ERR 42501 permission denied: \"pg_namespace\" is a system catalog"),
            ("UPDATE information_schema.tables SET table_name = 'x'", "ERR 42501 permission denied: \"tables\" is a system catalog"),
        ],
    );
}

#[test]
fn vacuum_and_analyze_check_their_tables() {
    script(
        2,
        &[
            ("CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE "),
            ("vacuum analyze t", "VACUUM "),
            ("VACUUM", "VACUUM "),
            ("VACUUM (VERBOSE, ANALYZE) t, public.t;", "VACUUM "),
            (
                "VACUUM nosuch",
                "ERR 42P01 relation \"nosuch\" does not exist",
            ),
            ("ANALYZE t", "ANALYZE "),
            ("ANALYZE VERBOSE t", "ANALYZE "),
            ("ANALYZE (VERBOSE, SKIP_LOCKED) t", "ANALYZE "),
            ("ANALYSE t", "ANALYZE "),
            (
                "ANALYZE nosuch",
                "ERR 42P01 relation \"nosuch\" does not exist",
            ),
            (
                "ANALYZE VERBOSE nosuch",
                "ERR 42P01 relation \"nosuch\" does not exist",
            ),
            (
                "SELECT pg_backend_pid()",
                "pg_backend_pid:23 => 0 [SELECT 1]",
            ),
            ("BEGIN", "BEGIN "),
            (
                "VACUUM t",
                "ERR 25001 VACUUM cannot run inside a transaction block",
            ),
            ("ROLLBACK", "ROLLBACK "),
        ],
    );
}

#[test]
fn statement_timeout_is_a_duration() {
    script(
        1,
        &[
            ("SET statement_timeout = '1500ms'", "SET "),
            (
                "SHOW statement_timeout",
                "statement_timeout:25 => 1500ms [SHOW]",
            ),
            ("SET statement_timeout = 60000", "SET "),
            (
                "SHOW statement_timeout",
                "statement_timeout:25 => 1min [SHOW]",
            ),
            ("SET statement_timeout = '2 s'", "SET "),
            (
                "SHOW statement_timeout",
                "statement_timeout:25 => 2s [SHOW]",
            ),
            (
                "SET statement_timeout = 'soon'",
                "ERR 22023 invalid value for parameter \"statement_timeout\": \"soon\"",
            ),
            (
                "SET statement_timeout = -1",
                "ERR 22023 invalid value for parameter \"statement_timeout\": \"-1\"",
            ),
            ("SET statement_timeout = 0", "SET "),
            ("SHOW statement_timeout", "statement_timeout:25 => 0 [SHOW]"),
        ],
    );
}

#[test]
fn sequences_and_serial_columns() {
    script(
        2,
        &[
            ("CREATE SEQUENCE s", "CREATE SEQUENCE "),
            ("SELECT currval('s')", "ERR 55000 currval of sequence \"s\" is not yet defined in this session"),
            ("SELECT nextval('s'), nextval('s')", "nextval:20,nextval:20 => 1|2 [SELECT 1]"),
            ("SELECT currval('s')", "currval:20 => 2 [SELECT 1]"),
            ("SELECT setval('s', 100)", "setval:20 => 100 [SELECT 1]"),
            ("SELECT nextval('public.s')", "nextval:20 => 101 [SELECT 1]"),
            ("SELECT setval('s', 5, false)", "setval:20 => 5 [SELECT 1]"),
            ("SELECT nextval('s')", "nextval:20 => 5 [SELECT 1]"),
            ("CREATE SEQUENCE s", "ERR 42P07 relation \"s\" already exists"),
            ("CREATE SEQUENCE IF NOT EXISTS s", "CREATE SEQUENCE "),
            ("CREATE SEQUENCE down INCREMENT BY -2 MAXVALUE 10 START WITH 10", "CREATE SEQUENCE "),
            ("SELECT nextval('down'), nextval('down')", "nextval:20,nextval:20 => 10|8 [SELECT 1]"),
            ("CREATE SEQUENCE tiny MAXVALUE 2", "CREATE SEQUENCE "),
            ("SELECT nextval('tiny'), nextval('tiny')", "nextval:20,nextval:20 => 1|2 [SELECT 1]"),
            ("SELECT nextval('tiny')", "ERR 2200H nextval: reached maximum value of sequence \"tiny\" (2)"),
            ("CREATE SEQUENCE ring MINVALUE 1 MAXVALUE 2 CYCLE", "CREATE SEQUENCE "),
            ("SELECT nextval('ring'), nextval('ring'), nextval('ring')", "nextval:20,nextval:20,nextval:20 => 1|2|1 [SELECT 1]"),
            ("CREATE SEQUENCE bad INCREMENT 0", "ERR 22023 INCREMENT must not be zero"),
            ("SELECT nextval('nosuch')", "ERR 42P01 relation \"nosuch\" does not exist"),
            ("CREATE TABLE items (id serial PRIMARY KEY, name text)", "CREATE TABLE "),
            ("INSERT INTO items (name) VALUES ('a'), ('b') RETURNING id", "id:23 => 1 / 2 [INSERT 0 2]"),
            ("INSERT INTO items VALUES (DEFAULT, 'c'), (10, 'd') RETURNING id", "id:23 => 3 / 10 [INSERT 0 2]"),
            ("INSERT INTO items (id, name) VALUES (nextval('items_id_seq'), 'e') RETURNING id", "id:23 => 4 [INSERT 0 1]"),
            ("SELECT currval('items_id_seq')", "currval:20 => 4 [SELECT 1]"),
            ("SELECT count(*) FROM items", "count:20 => 5 [SELECT 1]"),
            ("UPDATE items SET id = DEFAULT WHERE name = 'e' RETURNING id", "id:23 => 5 [UPDATE 1]"),
            ("UPDATE items SET id = nextval('items_id_seq') WHERE name = 'd' RETURNING id", "id:23 => 6 [UPDATE 1]"),
            // How Django and Rails find and reset a serial column's sequence.
            ("SELECT pg_get_serial_sequence('items', 'id'), pg_get_serial_sequence('public.items', 'name')", "pg_get_serial_sequence:25,pg_get_serial_sequence:25 => public.items_id_seq|NULL [SELECT 1]"),
            ("SELECT pg_get_serial_sequence('items', 'nope')", "ERR 42703 column \"nope\" of relation \"items\" does not exist"),
            ("SELECT pg_get_serial_sequence('nosuch', 'id')", "ERR 42P01 relation \"nosuch\" does not exist"),
            ("SELECT setval(pg_get_serial_sequence('items', 'id'), 20)", "setval:20 => 20 [SELECT 1]"),
            ("SELECT setval(pg_get_serial_sequence('items', 'name'), 20)", "setval:20 => NULL [SELECT 1]"),
            ("INSERT INTO items (name) VALUES ('f') RETURNING id", "id:23 => 21 [INSERT 0 1]"),
            ("DELETE FROM items WHERE name = 'f'", "DELETE 1"),
            // Its quoted output names the sequence again.
            ("CREATE TABLE \"my-table\" (id serial)", "CREATE TABLE "),
            ("SELECT pg_get_serial_sequence('\"my-table\"', 'id')", "pg_get_serial_sequence:25 => public.\"my-table_id_seq\" [SELECT 1]"),
            ("SELECT setval(pg_get_serial_sequence('\"my-table\"', 'id'), 5)", "setval:20 => 5 [SELECT 1]"),
            ("INSERT INTO \"my-table\" DEFAULT VALUES RETURNING id", "id:23 => 6 [INSERT 0 1]"),
            ("DROP TABLE \"my-table\"", "DROP TABLE "),
            // A table name with capitals: the default names its sequence quoted, as PostgreSQL's
            // does, so it does not read as users_id_seq.
            ("CREATE TABLE \"Users\" (id serial, n int)", "CREATE TABLE "),
            ("INSERT INTO \"Users\" (n) VALUES (1), (2) RETURNING id", "id:23 => 1 / 2 [INSERT 0 2]"),
            ("SELECT column_default FROM information_schema.columns WHERE table_name = 'Users' AND column_name = 'id'", "column_default:25 => nextval('\"Users_id_seq\"'::regclass) [SELECT 1]"),
            ("SELECT pg_get_serial_sequence('\"Users\"', 'id')", "pg_get_serial_sequence:25 => public.\"Users_id_seq\" [SELECT 1]"),
            ("DROP TABLE \"Users\"", "DROP TABLE "),
            ("SELECT nextval('s') FROM items", "ERR 0A000 nextval('s') here (it runs in INSERT ... VALUES, column defaults and SELECT without FROM) is not supported yet"),
            ("CREATE SEQUENCE items_id_seq", "ERR 42P07 relation \"items_id_seq\" already exists"),
            ("DROP TABLE items", "DROP TABLE "),
            ("SELECT nextval('items_id_seq')", "ERR 42P01 relation \"items_id_seq\" does not exist"),
            // AS and CACHE are kept for pg_sequence; bounds are checked against the type
            // (PostgreSQL 15.18's messages).
            ("CREATE SEQUENCE si AS integer CACHE 20", "CREATE SEQUENCE "),
            ("SELECT format_type(seqtypid, NULL), seqcache, seqmax, seqmin FROM pg_sequence WHERE seqrelid = 'si'::regclass", "format_type:25,seqcache:20,seqmax:20,seqmin:20 => integer|20|2147483647|1 [SELECT 1]"),
            ("CREATE SEQUENCE sx AS integer MAXVALUE 3000000000", "ERR 22023 MAXVALUE (3000000000) is out of range for sequence data type integer"),
            ("CREATE SEQUENCE sm AS smallint MINVALUE -40000 INCREMENT -1", "ERR 22023 MINVALUE (-40000) is out of range for sequence data type smallint"),
            ("CREATE SEQUENCE sc CACHE 0", "ERR 22023 CACHE (0) must be greater than zero"),
            ("CREATE TABLE st (id smallserial)", "CREATE TABLE "),
            ("SELECT format_type(seqtypid, NULL), seqcache, seqmax FROM pg_sequence WHERE seqrelid = 'st_id_seq'::regclass", "format_type:25,seqcache:20,seqmax:20 => smallint|1|32767 [SELECT 1]"),
            ("DROP TABLE st", "DROP TABLE "),
            ("DROP SEQUENCE si", "DROP SEQUENCE "),
            ("DROP SEQUENCE s, down", "DROP SEQUENCE "),
            ("DROP SEQUENCE s", "ERR 42704 sequence \"s\" does not exist"),
            ("DROP SEQUENCE IF EXISTS s", "DROP SEQUENCE "),
        ],
    );
}

#[test]
fn prepared_plans_are_reused_until_the_catalog_changes() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        let setup = "CREATE TABLE p (k int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'one');
                     CREATE SCHEMA other; CREATE TABLE other.p (k int PRIMARY KEY, v text);
                     INSERT INTO other.p VALUES (1, 'other one')";
        for r in execute_simple(&mut session, &cluster, setup).await {
            r.expect("setup");
        }
        let sel = prepare(&session, &cluster, "SELECT v FROM p WHERE k = $1", &[]).unwrap();
        let one = [Some("1".to_string())];
        let first = render(&execute_prepared(&mut session, &cluster, &sel, &one).await);
        assert_eq!(first, "v:25 => one [SELECT 1]");
        // Reused: same answer.
        let again = render(&execute_prepared(&mut session, &cluster, &sel, &one).await);
        assert_eq!(again, first);
        // The table is replaced: the plan is made again against the new one.
        for r in execute_simple(
            &mut session,
            &cluster,
            "DROP TABLE p; CREATE TABLE p (k int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'new one')",
        )
        .await
        {
            r.expect("replace");
        }
        let replaced = render(&execute_prepared(&mut session, &cluster, &sel, &one).await);
        assert_eq!(replaced, "v:25 => new one [SELECT 1]");
        // A plan that reads the catalog snapshot is planned afresh each time.
        let catalog_query = prepare(
            &session,
            &cluster,
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = $1",
            &[],
        )
        .unwrap();
        let p = [Some("p".to_string())];
        let before = render(&execute_prepared(&mut session, &cluster, &catalog_query, &p).await);
        for r in execute_simple(&mut session, &cluster, "DROP TABLE p, other.p").await {
            r.expect("drop");
        }
        let after = render(&execute_prepared(&mut session, &cluster, &catalog_query, &p).await);
        assert_ne!(before, after);
    });
}

/// Runs `sql` as a simple query; every statement must succeed.
async fn run_ok<C: crate::Cluster>(session: &mut Session, cluster: &C, sql: &str) {
    for r in execute_simple(session, cluster, sql).await {
        if let Err(e) = r {
            panic!("{sql}: {e:?}");
        }
    }
}

#[test]
fn prepared_single_row_updates_are_reused_until_what_they_were_bound_under_changes() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        let setup =
            "CREATE TABLE u (k int PRIMARY KEY, v int); INSERT INTO u VALUES (1, 10), (2, 20);
                     CREATE SCHEMA other; CREATE TABLE other.u (k int PRIMARY KEY, v int);
                     INSERT INTO other.u VALUES (1, 100)";
        run_ok(&mut session, &cluster, setup).await;
        let upd = prepare(
            &session,
            &cluster,
            "UPDATE u SET v = v + $1 WHERE k = $2 RETURNING v",
            &[],
        )
        .unwrap();
        let args =
            |delta: &str, key: Option<&str>| [Some(delta.to_string()), key.map(str::to_string)];
        let run = async |session: &mut Session, delta: &str, key: Option<&str>| {
            render(&execute_prepared(session, &cluster, &upd, &args(delta, key)).await)
        };
        assert_eq!(
            run(&mut session, "5", Some("1")).await,
            "v:23 => 15 [UPDATE 1]"
        );
        let cached = upd.plan_cache.borrow().clone();
        assert!(
            matches!(cached.as_deref(), Some(crate::stmt::Cached::Update(_))),
            "the first execution caches its binding"
        );
        // Each step: SQL run first (if any), then an execution (delta, key) and its result.
        let steps: &[(&str, &str, Option<&str>, &str)] = &[
            // Reused, with each execution's own values.
            ("", "5", Some("1"), "v:23 => 20 [UPDATE 1]"),
            ("", "1", Some("2"), "v:23 => 21 [UPDATE 1]"),
            ("", "1", Some("3"), "v:23 =>  [UPDATE 0]"),
            ("", "1", None, "v:23 =>  [UPDATE 0]"),
            // A constraint added since: bound again, and enforced.
            (
                "ALTER TABLE u ADD CONSTRAINT small CHECK (v < 25)",
                "5",
                Some("1"),
                "ERR 23514",
            ),
            // Another search_path names another table.
            (
                "SET search_path = other, public",
                "1",
                Some("1"),
                "v:23 => 101 [UPDATE 1]",
            ),
            // A snapshot transaction takes the planned path, with the same result.
            (
                "BEGIN ISOLATION LEVEL REPEATABLE READ",
                "1",
                Some("1"),
                "v:23 => 102 [UPDATE 1]",
            ),
            (
                "COMMIT; SET search_path = public",
                "1",
                Some("1"),
                "v:23 => 21 [UPDATE 1]",
            ),
            // TRUNCATE gives the table fresh storage: the update finds the row inserted since,
            // in the update's own block too.
            (
                "TRUNCATE u; INSERT INTO u VALUES (1, 0)",
                "1",
                Some("1"),
                "v:23 => 1 [UPDATE 1]",
            ),
            (
                "BEGIN; TRUNCATE u; INSERT INTO u VALUES (1, 10)",
                "1",
                Some("1"),
                "v:23 => 11 [UPDATE 1]",
            ),
            ("COMMIT", "1", Some("1"), "v:23 => 12 [UPDATE 1]"),
            // A block's TRUNCATE rolled back, then a committed change: the binding made inside
            // the block must not pass for one made under the committed catalog.
            (
                "BEGIN; TRUNCATE u; INSERT INTO u VALUES (1, 0)",
                "1",
                Some("1"),
                "v:23 => 1 [UPDATE 1]",
            ),
            (
                "ROLLBACK; ALTER TABLE u ADD COLUMN w int",
                "1",
                Some("1"),
                "v:23 => 13 [UPDATE 1]",
            ),
        ];
        for (sql, delta, key, expected) in steps {
            if !sql.is_empty() {
                run_ok(&mut session, &cluster, sql).await;
            }
            let got = run(&mut session, delta, *key).await;
            // An error is checked by its SQLSTATE; rows exactly.
            let matches = match expected.strip_prefix("ERR ") {
                Some(state) => got.starts_with(&format!("ERR {state}")),
                None => got == *expected,
            };
            assert!(matches, "after {sql:?}: {got}, expected {expected}");
        }
        let rows = execute_simple(&mut session, &cluster, "SELECT k, v FROM u").await;
        assert_eq!(
            render(rows.last().expect("a result")),
            "k:23,v:23 => 1|13 [SELECT 1]"
        );
    });
}

/// Runs `setup`, then each query twice on the same cluster and session: with pushdown and
/// with the coordinator doing everything. The rendered results (rows, their order, errors)
/// must be identical; returns them for further checks.
pub(crate) fn differential(shards: usize, setup: &[&str], queries: &[&str]) -> Vec<String> {
    let setup: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
    let queries: Vec<String> = queries.iter().map(|s| s.to_string()).collect();
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
        let mut session = Session::new("u", "postgres");
        for sql in &setup {
            let results = execute_simple(&mut session, &cluster, sql).await;
            let last = results.last().expect("a result");
            assert!(last.is_ok(), "setup {sql}: {}", render(last));
        }
        let mut out = Vec::new();
        for sql in &queries {
            crate::pushdown::set_disabled(true);
            let plain = execute_simple(&mut session, &cluster, sql).await;
            crate::pushdown::set_disabled(false);
            crate::vector::set_row_at_a_time(true);
            let row_at_a_time = execute_simple(&mut session, &cluster, sql).await;
            crate::vector::set_row_at_a_time(false);
            let pushed = execute_simple(&mut session, &cluster, sql).await;
            let (plain, row_at_a_time, pushed) = (
                render(plain.last().expect("a result")),
                render(row_at_a_time.last().expect("a result")),
                render(pushed.last().expect("a result")),
            );
            // A LIMIT may stop a pushed-down scan before a row whose expression fails, where
            // the coordinator evaluated it first: PostgreSQL leaves unspecified whether rows
            // past a LIMIT are evaluated, so either answer is right.
            let limit_hides_error = sql.contains(" LIMIT ")
                && (plain.starts_with("ERR ") != pushed.starts_with("ERR "));
            if !limit_hides_error {
                assert_eq!(pushed, plain, "pushed down vs coordinator only: {sql}");
            }
            assert_eq!(pushed, row_at_a_time, "vectorized vs row at a time: {sql}");
            out.push(pushed);
        }
        out
    })
}

/// The EXPLAIN lines of a query, joined with " / " as `render` does.
fn explain_of(shards: usize, setup: &[&str], query: &str) -> String {
    let setup: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
    let query = format!("EXPLAIN {query}");
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
        let mut session = Session::new("u", "postgres");
        for sql in &setup {
            execute_simple(&mut session, &cluster, sql).await;
        }
        render(
            execute_simple(&mut session, &cluster, &query)
                .await
                .last()
                .expect("a result"),
        )
    })
}

/// A table spread over 3 shards with NULLs, duplicates and values of several types.
const PUSHDOWN_SETUP: &[&str] = &[
    "CREATE TABLE t (id int PRIMARY KEY, g int, x int, b bigint, n numeric, f float8, s text, ok bool)",
    "INSERT INTO t VALUES \
     (1, 1, 10, 9223372036854775807, 1.5, 0.1, 'a', true), \
     (2, 1, NULL, 9223372036854775807, 2.25, 0.2, 'b', false), \
     (3, 2, 30, -5, NULL, 0.3, NULL, true), \
     (4, 2, 30, 7, 1.50, NULL, 'd', NULL), \
     (5, NULL, 50, NULL, 3, 1e300, 'e', true), \
     (6, 3, 60, 1, -1, -0.0, 'f', false), \
     (7, 3, NULL, 2, 0.001, 0.0, 'g', true), \
     (8, NULL, 80, 3, 4, 2.5, 'h', NULL), \
     (9, 1, 90, 4, 5, 3.5, 'a', true), \
     (10, 4, 100, 5, 6, 4.5, 'B', false)",
    "CREATE TABLE empty (id int PRIMARY KEY, g int, x int)",
];

#[test]
fn projection_pushdown_returns_only_read_columns() {
    let got = differential(
        3,
        PUSHDOWN_SETUP,
        &[
            "SELECT s FROM t ORDER BY id",
            "SELECT count(*) FROM t",
            "SELECT id FROM t WHERE x > 20 ORDER BY s DESC",
            "SELECT * FROM t ORDER BY id",
            "SELECT t.s, u.s FROM t JOIN t u ON t.g = u.id ORDER BY t.id",
            "SELECT id, (SELECT max(u.x) FROM t u WHERE u.g = t.g) FROM t ORDER BY id",
            "SELECT id FROM t WHERE EXISTS (SELECT 1 FROM t u WHERE u.id = t.g + 1) ORDER BY 1",
            "SELECT a FROM (SELECT s AS a, x / 0 AS bad FROM t) q",
            "SELECT DISTINCT g FROM t ORDER BY 1",
            "SELECT g FROM t UNION SELECT x FROM t ORDER BY 1",
            "WITH c AS (SELECT id, s FROM t) SELECT a.s, b.id FROM c a JOIN c b ON a.id = b.id ORDER BY 2",
            "SELECT id FROM empty",
            // No column read at all: the fragments decode nothing.
            "SELECT 1 FROM t ORDER BY 1 LIMIT 3",
            "SELECT count(*), count(1), 7 AS k FROM t GROUP BY k",
            "SELECT count(*) FROM t WHERE random() >= 0",
        ],
    );
    assert_eq!(got[12], "?column?:23 => 1 / 1 / 1 [SELECT 3]");
    assert_eq!(got[13], "count:20,count:20,k:23 => 10|10|7 [SELECT 1]");
    assert_eq!(got[14], "count:20 => 10 [SELECT 1]");
    assert_eq!(
        got[0],
        "s:25 => a / b / NULL / d / e / f / g / h / a / B [SELECT 10]"
    );
    assert_eq!(got[1], "count:20 => 10 [SELECT 1]");
    // The division by zero runs (on the coordinator) even though its column is dropped.
    assert_eq!(got[7], "ERR 22012 division by zero");
    assert_eq!(got[11], "id:23 =>  [SELECT 0]");
    let plan = explain_of(3, PUSHDOWN_SETUP, "SELECT s FROM t WHERE x > 1");
    assert!(
        plan.contains("Filter (pushed down): (x > 1) /         Projection: s"),
        "{plan}"
    );
    let plan = explain_of(3, PUSHDOWN_SETUP, "SELECT * FROM t");
    assert!(!plan.contains("Projection"), "{plan}");
}

#[test]
fn limit_pushdown_stops_fragments_and_merges_sorted_tops() {
    let got = differential(
        3,
        PUSHDOWN_SETUP,
        &[
            "SELECT id FROM t LIMIT 3",
            "SELECT id, s FROM t LIMIT 2 OFFSET 3",
            "SELECT id FROM t LIMIT 0",
            "SELECT id FROM t LIMIT NULL",
            "SELECT id FROM t OFFSET 20 LIMIT 5",
            "SELECT id FROM t LIMIT -1",
            "SELECT id FROM t OFFSET -1 LIMIT 1",
            // Ties: rows with equal keys keep their order across shards.
            "SELECT id, g FROM t ORDER BY g LIMIT 4",
            "SELECT id, g FROM t ORDER BY g DESC NULLS LAST LIMIT 5 OFFSET 2",
            "SELECT id, g, s FROM t ORDER BY g NULLS FIRST, s DESC LIMIT 6",
            "SELECT id, x FROM t ORDER BY x DESC LIMIT 3",
            "SELECT s FROM t ORDER BY s LIMIT 4",
            "SELECT id FROM t ORDER BY id * -1 LIMIT 3 OFFSET 1",
            "SELECT id FROM t ORDER BY 100 / (x - 30) LIMIT 2",
            "SELECT n FROM t ORDER BY n LIMIT 3",
            "SELECT f FROM t ORDER BY f DESC LIMIT 4",
            "SELECT * FROM empty ORDER BY x LIMIT 2",
            "SELECT * FROM empty LIMIT 2",
            "SELECT DISTINCT g FROM t ORDER BY 1 LIMIT 2",
            "SELECT id FROM t WHERE x > 10 ORDER BY x, id DESC LIMIT 3",
            "SELECT id FROM t ORDER BY g LIMIT 100",
        ],
    );
    assert_eq!(
        got[0], "id:23 => 2 / 3 / 5 [SELECT 3]",
        "shard order, then key order"
    );
    assert_eq!(got[5], "ERR 2201W LIMIT must not be negative");
    assert_eq!(got[7], "id:23,g:23 => 2|1 / 9|1 / 1|1 / 3|2 [SELECT 4]");
    assert_eq!(got[10], "id:23,x:23 => 2|NULL / 7|NULL / 10|100 [SELECT 3]");
    assert_eq!(got[11], "s:25 => B / a / a / b [SELECT 4]");
    assert_eq!(got[13], "ERR 22012 division by zero");
    let plan = explain_of(3, PUSHDOWN_SETUP, "SELECT s FROM t LIMIT 3");
    assert!(plan.contains("Limit: 3 /         Projection: s"), "{plan}");
    let plan = explain_of(
        3,
        PUSHDOWN_SETUP,
        "SELECT s FROM t ORDER BY g DESC, s LIMIT 3 OFFSET 2",
    );
    assert!(
        plan.contains("->  Limit /     ->  Project (2 columns) /       ->  Merge (2 sort keys) of sorted fragment results #0"),
        "{plan}"
    );
    assert!(
        plan.contains("Top-N: 3 (+ OFFSET 2) by g DESC, s"),
        "{plan}"
    );
    // Not computable on a shard: the coordinator sorts.
    let plan = explain_of(
        3,
        PUSHDOWN_SETUP,
        "SELECT id FROM t ORDER BY (SELECT 1) LIMIT 3",
    );
    assert!(
        plan.contains("Sort (1 keys)") && !plan.contains("Top-N"),
        "{plan}"
    );
}

#[test]
fn partial_aggregates_combine_exactly() {
    let got = differential(
        3,
        PUSHDOWN_SETUP,
        &[
            "SELECT g, count(*), count(x), sum(x), avg(x), min(s), max(s), bool_and(ok), bool_or(ok) FROM t GROUP BY g",
            "SELECT sum(b), avg(b), count(b) FROM t WHERE b > 0",
            "SELECT g, sum(b), avg(b) FROM t GROUP BY g ORDER BY 1",
            "SELECT sum(n), avg(n), min(n), max(n) FROM t",
            "SELECT avg(x), sum(x::int2) FROM t",
            "SELECT count(*), sum(x), avg(x), min(x), bool_and(x > 0) FROM empty",
            "SELECT g, count(*) FROM empty GROUP BY g",
            "SELECT min(f), max(f), sum(f), avg(f) FROM t",
            "SELECT count(DISTINCT g), string_agg(s, ',') FROM t",
            "SELECT g, sum(x) FROM t GROUP BY g HAVING count(*) > 1 ORDER BY g",
            "SELECT g % 2, max(x) FROM t GROUP BY g % 2 ORDER BY 1",
            "SELECT g, count(*) FROM t GROUP BY g ORDER BY 2 DESC, 1 LIMIT 2",
            "SELECT count(*) FROM t WHERE id = 4",
            "SELECT sum(x) FROM t WHERE x > (SELECT min(x) FROM t)",
            "SELECT s, count(*) FROM t GROUP BY s ORDER BY s",
            "SELECT max(n), min(-n) FROM t GROUP BY g ORDER BY 1",
            "SELECT sum(x / (g - 2)) FROM t",
        ],
    );
    // Integer sums past bigint become numeric, as without pushdown.
    assert_eq!(
        got[1],
        "sum:1700,avg:1700,count:20 => 18446744073709551636|2305843009213693955|8 [SELECT 1]"
    );
    assert_eq!(
        got[4],
        "avg:1700,sum:20 => 56.2500000000000000|450 [SELECT 1]"
    );
    assert_eq!(
        got[5],
        "count:20,sum:20,avg:1700,min:23,bool_and:16 => 0|NULL|NULL|NULL|NULL [SELECT 1]"
    );
    assert_eq!(got[6], "g:23,count:20 =>  [SELECT 0]");
    assert_eq!(got[16], "ERR 22012 division by zero");
    let plan = explain_of(
        3,
        PUSHDOWN_SETUP,
        "SELECT g, sum(x), avg(x) FROM t GROUP BY g",
    );
    assert!(
        plan.contains("Partial Aggregate: sum(x), avg(x) by g"),
        "{plan}"
    );
    assert!(
        plan.contains("Finalize Aggregate (1 group keys): sum, avg over partial states of #0"),
        "{plan}"
    );
    for unsplit in [
        "SELECT sum(f) FROM t",
        "SELECT count(DISTINCT g) FROM t",
        "SELECT string_agg(s, ',') FROM t",
    ] {
        let plan = explain_of(3, PUSHDOWN_SETUP, unsplit);
        assert!(!plan.contains("Partial Aggregate"), "{unsplit}: {plan}");
    }
}

const JOIN_SETUP: &[&str] = &[
    "CREATE TABLE p (id int PRIMARY KEY, v text)",
    "CREATE TABLE q (id int PRIMARY KEY, w int)",
    "CREATE TABLE r (id bigint PRIMARY KEY, z int)",
    "CREATE TABLE c1 (a int, b text, v int, PRIMARY KEY (a, b))",
    "CREATE TABLE c2 (a int, b text, w int, PRIMARY KEY (a, b))",
    "INSERT INTO p VALUES (1, 'one'), (2, 'two'), (3, NULL), (4, 'four'), (5, 'five'), (6, 'six'), (7, 'seven')",
    "INSERT INTO q VALUES (2, 20), (3, 30), (4, NULL), (6, 60), (8, 80), (9, 2)",
    "INSERT INTO r VALUES (1, 1), (2, 2), (3, 3)",
    "INSERT INTO c1 VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3), (3, 'z', 4)",
    "INSERT INTO c2 VALUES (1, 'x', 10), (2, 'x', 30), (2, 'y', 40), (3, 'z', NULL)",
];

#[test]
fn colocated_joins_run_per_shard() {
    let got = differential(
        3,
        JOIN_SETUP,
        &[
            "SELECT p.id, p.v, q.w FROM p JOIN q ON p.id = q.id",
            "SELECT p.id, p.v, q.w FROM p LEFT JOIN q ON p.id = q.id",
            "SELECT p.id, q.w FROM p LEFT JOIN q ON p.id = q.id AND q.w > 25",
            "SELECT p.id, q.w FROM p JOIN q ON q.id = p.id AND p.v <> q.w::text WHERE p.id > 1",
            "SELECT * FROM p LEFT JOIN q ON p.id = q.id WHERE q.w IS NULL",
            "SELECT * FROM c1 JOIN c2 ON c1.a = c2.a AND c1.b = c2.b",
            "SELECT * FROM c1 LEFT JOIN c2 ON c2.b = c1.b AND c2.a = c1.a",
            "SELECT * FROM c1 JOIN c2 ON c1.a = c2.a",
            "SELECT * FROM p JOIN q ON p.id = q.w",
            "SELECT * FROM p JOIN r ON p.id = r.id",
            "SELECT * FROM p JOIN q ON p.id = q.id WHERE p.id = 3",
            "SELECT * FROM p JOIN q ON p.id = q.id WHERE q.id = 4",
            "SELECT * FROM p LEFT JOIN q ON p.id = q.id AND q.id = 4",
            "SELECT count(*), sum(q.w), max(p.v) FROM p JOIN q ON p.id = q.id",
            "SELECT p.id FROM p JOIN q ON p.id = q.id ORDER BY q.w DESC, p.id LIMIT 2",
            "SELECT p.id FROM p JOIN q ON p.id = q.id LIMIT 2",
            "SELECT a.id, b.v FROM p a JOIN p b ON a.id = b.id",
            "SELECT p.id, q.w, p2.v FROM p JOIN q ON p.id = q.id JOIN p p2 ON p2.id = q.id",
            "SELECT p.id FROM p RIGHT JOIN q ON p.id = q.id",
            "SELECT p.id FROM p FULL JOIN q ON p.id = q.id",
            "SELECT p.id FROM p JOIN q ON p.id = q.id AND q.w = (SELECT max(w) FROM q)",
            "SELECT p.id, q.id FROM p, q WHERE p.id = q.id",
        ],
    );
    assert_eq!(
        got[0],
        "id:23,v:25,w:23 => 2|two|20 / 3|NULL|30 / 4|four|NULL / 6|six|60 [SELECT 4]"
    );
    assert!(got[1].ends_with("[SELECT 7]"), "{}", got[1]);
    assert!(got[5].ends_with("[SELECT 3]"), "{}", got[5]);
    assert_eq!(got[13], "count:20,sum:20,max:25 => 4|110|two [SELECT 1]");
    assert_eq!(
        got[14], "id:23 => 4 / 6 [SELECT 2]",
        "NULL sorts first in DESC"
    );
    let setup = JOIN_SETUP;
    let plan = explain_of(
        3,
        setup,
        "SELECT p.v, q.w FROM p JOIN q ON p.id = q.id AND q.w > 1 WHERE p.v <> 'x'",
    );
    assert!(
        plan.contains("->  Co-located Join (Inner): fragment results #0"),
        "{plan}"
    );
    assert!(plan.contains("#0 Co-located Join (Inner) of public.p and public.q on their primary keys (every shard: 0..3 in parallel)"), "{plan}");
    assert!(
        plan.contains("Filter on public.q (pushed down): (w > 1)"),
        "{plan}"
    );
    assert!(
        plan.contains("#1 public.q: read by a co-located join"),
        "{plan}"
    );
    assert!(plan.contains("Projection: v, w"), "{plan}");
    let plan = explain_of(
        3,
        setup,
        "SELECT count(*) FROM p LEFT JOIN q ON p.id = q.id",
    );
    assert!(
        plan.contains("Co-located Join (Left)") && plan.contains("Partial Aggregate: count(*)"),
        "{plan}"
    );
    let plan = explain_of(
        3,
        setup,
        "SELECT * FROM p JOIN q ON p.id = q.id WHERE p.id = 3",
    );
    assert!(plan.contains("(primary key; shard"), "{plan}");
    for not_colocated in [
        "SELECT * FROM p JOIN r ON p.id = r.id",
        "SELECT * FROM c1 JOIN c2 ON c1.a = c2.a",
        "SELECT * FROM p JOIN q ON p.id = q.w",
        "SELECT * FROM p FULL JOIN q ON p.id = q.id",
    ] {
        let plan = explain_of(3, setup, not_colocated);
        assert!(!plan.contains("Co-located"), "{not_colocated}: {plan}");
    }
}

const BROADCAST_SETUP: &[&str] = &[
    "CREATE TABLE d (id int PRIMARY KEY, k int, s text)",
    "CREATE TABLE e (id int PRIMARY KEY, k int)",
    "INSERT INTO d VALUES (1, 2, 'a'), (2, 2, 'b'), (3, NULL, 'c'), (4, 6, NULL), (5, 3, 'e'), (6, 20, 'f'), (7, NULL, 'g'), (8, 2, 'h')",
];

/// Queries over joins that are not co-located (tables of JOIN_SETUP and BROADCAST_SETUP).
const BROADCAST_QUERIES: &[&str] = &[
    "SELECT p.id, q.id, q.w FROM p JOIN q ON p.id = q.w",
    "SELECT p.id, p.v, q.id FROM p LEFT JOIN q ON p.id = q.w",
    "SELECT p.id, q.id, q.w FROM p RIGHT JOIN q ON p.id = q.w",
    "SELECT a.id, b.id FROM d a JOIN d b ON a.k = b.k",
    "SELECT a.id, b.id FROM d a LEFT JOIN d b ON a.k = b.k AND b.s > a.s",
    "SELECT a.id, b.id FROM d a RIGHT JOIN d b ON a.k = b.k AND a.id < b.id",
    "SELECT * FROM d JOIN e ON d.k = e.k",
    "SELECT * FROM d LEFT JOIN e ON d.k = e.k",
    "SELECT * FROM e LEFT JOIN d ON d.k = e.k",
    "SELECT * FROM e RIGHT JOIN d ON d.k = e.k",
    // The left side pins its key or has more equalities: it is the one broadcast.
    "SELECT q.id, d.id FROM q JOIN d ON q.id = d.k WHERE q.id = 2",
    "SELECT d.id, q.w FROM d JOIN q ON q.id = d.k WHERE d.k = 2 AND d.s = 'h'",
    "SELECT d.id, p.v FROM d JOIN p ON p.id + 1 = d.k * 1 WHERE d.k = 2",
    "SELECT * FROM p JOIN r ON p.id = r.id",
    "SELECT * FROM c1 JOIN c2 ON c1.a = c2.a",
    "SELECT p.id, q.w FROM p JOIN q ON p.id = q.w / 10 AND p.v <> 'two'",
    "SELECT d.k, count(*), sum(q.w), max(d.s) FROM d JOIN q ON q.id = d.k GROUP BY d.k",
    "SELECT count(*) FROM d LEFT JOIN q ON q.id = d.k",
    "SELECT d.id, q.w FROM d JOIN q ON q.id = d.k ORDER BY q.w DESC, d.id LIMIT 3",
    "SELECT d.id FROM d JOIN q ON q.id = d.k LIMIT 2",
    "SELECT q.id, d.id FROM q JOIN d ON q.id = d.k WHERE q.id = 2 LIMIT 1",
    "SELECT p.id, q.id, d.id FROM p JOIN q ON p.id = q.w JOIN d ON d.k = q.id",
    "SELECT p.id, d.id FROM p JOIN d ON p.id = d.k AND d.id = (SELECT max(id) FROM q)",
    "SELECT d.id FROM d JOIN q ON q.w / (d.k - 2) = q.w",
    "SELECT * FROM d FULL JOIN e ON d.k = e.k",
];

#[test]
fn broadcast_joins_hash_the_smaller_side_on_every_shard() {
    let setup: Vec<&str> = JOIN_SETUP.iter().chain(BROADCAST_SETUP).copied().collect();
    let got = differential(3, &setup, BROADCAST_QUERIES);
    crate::dist::force_fallback(true);
    let fallback = differential(3, &setup, BROADCAST_QUERIES);
    crate::dist::force_fallback(false);
    assert_eq!(
        got, fallback,
        "the coordinator fallback gives the same rows"
    );
    assert_eq!(got[0], "id:23,id:23,w:23 => 2|9|2 [SELECT 1]");
    assert_eq!(
        got[1],
        "id:23,v:25,id:23 => 2|two|9 / 3|NULL|NULL / 5|five|NULL / 4|four|NULL / 6|six|NULL / 7|seven|NULL / 1|one|NULL [SELECT 7]",
        "the left side's order: shard, then key"
    );
    assert_eq!(got[6], "id:23,k:23,s:25,id:23,k:23 =>  [SELECT 0]");
    assert!(got[7].ends_with("[SELECT 8]"), "{}", got[7]);
    assert!(got[9].ends_with("[SELECT 8]"), "{}", got[9]);
    assert_eq!(got[10], "id:23,id:23 => 2|2 / 2|8 / 2|1 [SELECT 3]");
    assert_eq!(got[23], "ERR 22012 division by zero");
    let plan = explain_of(
        3,
        &setup,
        "SELECT p.v, q.w FROM p JOIN q ON p.id = q.w AND p.v <> q.id::text WHERE q.w > 1",
    );
    for line in [
        "->  Broadcast Join (Inner): fragment results #0",
        "#0 Broadcast Join (Inner) of public.p and public.q (every shard: 0..3 in parallel): #1 broadcast to every shard",
        "Hash Cond: (p.id = q.w)",
        "Join Filter (pushed down): (v <> (id)::text)",
        "Projection: v, w",
        "#1 Scan on public.q (every shard: 0..3 in parallel), broadcast to #0's fragments /         Filter (pushed down): (w > 1)",
    ] {
        assert!(plan.contains(line), "{line}: {plan}");
    }
    let plan = explain_of(
        3,
        &setup,
        "SELECT q.id, d.id FROM q JOIN d ON q.id = d.k WHERE q.id = 2",
    );
    assert!(plan.contains("#1 Broadcast Join (Inner) of public.q and public.d (every shard: 0..3 in parallel): #0 broadcast to every shard"), "{plan}");
    assert!(
        plan.contains("#0 Point Get on public.q (primary key; shard"),
        "{plan}"
    );
    for not_broadcast in [
        "SELECT * FROM d FULL JOIN e ON d.k = e.k",
        "SELECT * FROM d JOIN e ON d.k < e.k",
        "SELECT p.id, d.id FROM p JOIN d ON p.id = d.k AND d.id = (SELECT max(id) FROM q)",
    ] {
        let plan = explain_of(3, &setup, not_broadcast);
        assert!(!plan.contains("Broadcast"), "{not_broadcast}: {plan}");
    }
}

/// Ordered aggregates, checked against PostgreSQL 15 (C collation): each query with the
/// output psql printed for it (`-XAt -F'|'`, rows joined with " / ").
#[test]
fn ordered_aggregates_sort_their_inputs_as_postgres_does() {
    let setup = [
        "CREATE TABLE ag (id int PRIMARY KEY, g int, s text, n int, d text)",
        "INSERT INTO ag VALUES (1, 1, 'b', 3, '-'), (2, 1, NULL, 1, ','), (3, 2, 'a', NULL, '+'), \
         (4, 1, 'c', 2, NULL), (5, 2, 'a', 5, ';'), (6, NULL, 'B', 4, ','), (7, 1, 'b', NULL, '/')",
        "CREATE TABLE ae (id int PRIMARY KEY, s text)",
    ];
    let cases: &[(&str, &str)] = &[
        ("SELECT string_agg(s, ',' ORDER BY s) FROM ag", "B,a,a,b,b,c"),
        ("SELECT string_agg(s, ',' ORDER BY s DESC) FROM ag", "c,b,b,a,a,B"),
        ("SELECT string_agg(s, ',' ORDER BY n, id) FROM ag", "c,b,B,a,a,b"),
        ("SELECT string_agg(s, ',' ORDER BY n DESC NULLS LAST, id DESC) FROM ag", "a,B,b,c,b,a"),
        ("SELECT string_agg(s, d ORDER BY id) FROM ag", "b+ac;a,B/b"),
        ("SELECT g, string_agg(s, '|' ORDER BY id DESC) FROM ag GROUP BY g ORDER BY g", "1|b|c|b / 2|a|a / NULL|B"),
        ("SELECT array_agg(s) FROM (SELECT * FROM ag ORDER BY id) q", "{b,NULL,a,c,a,B,b}"),
        ("SELECT array_agg(s ORDER BY s) FROM ag", "{B,a,a,b,b,c,NULL}"),
        ("SELECT array_agg(s ORDER BY s NULLS FIRST) FROM ag", "{NULL,B,a,a,b,b,c}"),
        ("SELECT array_agg(n ORDER BY s, id) FROM ag", "{4,NULL,5,3,NULL,2,1}"),
        ("SELECT array_agg(DISTINCT s) FROM ag", "{B,a,b,c,NULL}"),
        ("SELECT array_agg(DISTINCT n) FROM ag", "{1,2,3,4,5,NULL}"),
        ("SELECT string_agg(DISTINCT s, ',') FROM ag", "B,a,b,c"),
        ("SELECT string_agg(DISTINCT s, ',' ORDER BY s DESC) FROM ag", "c,b,a,B"),
        ("SELECT array_agg(DISTINCT s ORDER BY s DESC) FROM ag", "{NULL,c,b,a,B}"),
        ("SELECT g, array_agg(n ORDER BY n DESC) FROM ag GROUP BY g ORDER BY g NULLS FIRST", "NULL|{4} / 1|{NULL,3,2,1} / 2|{NULL,5}"),
        ("SELECT array_agg(s), string_agg(s, ','), array_agg(DISTINCT s) FROM ae", "NULL|NULL|NULL"),
        ("SELECT array_agg(s ORDER BY s) FROM ag WHERE id > 100", "NULL"),
        ("SELECT array_agg(s ORDER BY s) FROM ag WHERE s IS NULL", "{NULL}"),
        ("SELECT string_agg(s, ',' ORDER BY s) FROM ag WHERE s IS NULL", "NULL"),
        ("SELECT array_agg(id ORDER BY s, n DESC) FROM ag", "{6,3,5,7,1,4,2}"),
        ("SELECT count(DISTINCT s ORDER BY s), count(s ORDER BY n) FROM ag", "4|6"),
        ("SELECT array_agg(id ORDER BY (SELECT 1), id DESC) FROM ag", "{7,6,5,4,3,2,1}"),
        ("SELECT g, array_agg(id ORDER BY id) FROM ag GROUP BY g HAVING array_agg(id ORDER BY id) <> '{3,5}' ORDER BY 1", "1|{1,2,4,7} / NULL|{6}"),
        ("SELECT array_agg(DISTINCT s ORDER BY n) FROM ag", "ERR 42P10 in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list"),
        ("SELECT string_agg(s ORDER BY s) FROM ag", "ERR 42883 function string_agg(text) does not exist"),
    ];
    let got = assert_rows_as_psql_printed(&setup, cases);
    assert!(
        got[7].starts_with("array_agg:1009 => "),
        "text[]: {}",
        got[7]
    );
    assert!(
        got[9].starts_with("array_agg:1007 => "),
        "int4[]: {}",
        got[9]
    );
    // Ordered aggregates run on the coordinator, over the rows the fragments return.
    let plan = explain_of(
        3,
        &setup,
        "SELECT g, array_agg(s ORDER BY n) FROM ag GROUP BY g",
    );
    assert!(
        plan.contains("Hash Aggregate (1 group keys): array_agg"),
        "{plan}"
    );
    assert!(plan.contains("Projection: g, s, n"), "{plan}");
}

/// `||` resolved as PostgreSQL resolves it: array concatenation, append and prepend, jsonb
/// concatenation, and text concatenation with the other operand cast to text. Checked
/// against PostgreSQL 15 (`psql -XAt -F'|'`, rows joined with " / ").
#[test]
fn concatenation_operator_resolves_as_postgres_does() {
    let setup = [
        "CREATE TABLE ct (id int PRIMARY KEY, tags text[], d jsonb)",
        r#"INSERT INTO ct VALUES (1, '{a}', '{"k":1}'), (2, NULL, NULL)"#,
    ];
    let cases: &[(&str, &str)] = &[
        ("SELECT ARRAY[1,2] || 3, 0 || ARRAY[1,2], ARRAY[1] || ARRAY[2,3], ARRAY[1] || '{2}', '{2}' || ARRAY[1]", "{1,2,3}|{0,1,2}|{1,2,3}|{1,2}|{2,1}"),
        ("SELECT ARRAY['a'] || 'b'::text, NULL::int[] || 1, ARRAY[1] || NULL::int, NULL::int[] || NULL::int[]", "{a,b}|{1}|{1,NULL}|NULL"),
        ("SELECT ARRAY[1] || 2::bigint, ARRAY[1::bigint] || 2, ARRAY['a'] || 'b'::varchar", "{1,2}|{1,2}|{a,b}"),
        ("SELECT ARRAY[1] || 'x'::text", "ERR 42883 operator does not exist: integer[] || text"),
        ("SELECT ARRAY[1] || ARRAY['x']", "ERR 42883 operator does not exist: integer[] || text[]"),
        ("SELECT 'x' || 1 || true, false || 'y', 'n' || NULL::bool", "x1true|falsey|NULL"),
        (r#"SELECT '{"a":1}'::jsonb || '{"b":2}', '{"a":1}'::jsonb || '{"a":2}'::jsonb, '[1]'::jsonb || '2', '1'::jsonb || '[2]'"#, r#"{"a": 1, "b": 2}|{"a": 2}|[1, 2]|[1, 2]"#),
        (r#"SELECT '{"a":1}'::jsonb || '[2]', '[2]'::jsonb || '{"a":1}', '"x"'::jsonb || '"y"', '{}'::jsonb || '{}', '[]'::jsonb || '[]', '[]'::jsonb || '{}'"#, r#"[{"a": 1}, 2]|[2, {"a": 1}]|["x", "y"]|{}|[]|[{}]"#),
        (r#"SELECT '{"a":1}'::jsonb || 'x'::text, NULL::jsonb || '{}', pg_typeof('{}'::jsonb || '[]')"#, r#"{"a": 1}x|NULL|jsonb"#),
        (r#"SELECT '{"bb":1,"a":{"x":[1]}}'::jsonb || '{"c":null,"a":2}'"#, r#"{"a": 2, "c": null, "bb": 1}"#),
        (r#"SELECT '{"a":1}'::jsonb || 'nope'"#, "ERR 22P02 invalid input syntax for type json: \"nope\""),
        (r#"SELECT id, tags || 'z'::text, d || '{"k":true}' FROM ct ORDER BY id"#, r#"1|{a,z}|{"k": true} / 2|{z}|NULL"#),
        // psql's `\d+` joins reloptions this way: ARRAY(subquery) is a real array.
        ("SELECT pg_typeof(array(SELECT 1)), ARRAY(SELECT 1) || 2, NULL::text[] || array(SELECT 'x'::text WHERE false), array_to_string(NULL::text[] || array(SELECT 'x'::text WHERE false), ', ') = ''", "integer[]|{1,2}|{}|t"),
    ];
    assert_rows_as_psql_printed(&setup, cases);
}

/// Runs each case's query on 3 shards after `setup` and checks its rows against the line
/// psql printed for it (`-XAt -F'|'`, rows joined with " / "); the rendered results.
fn assert_rows_as_psql_printed(setup: &[&str], cases: &[(&str, &str)]) -> Vec<String> {
    let queries: Vec<&str> = cases.iter().map(|(q, _)| *q).collect();
    let got = differential(3, setup, &queries);
    for ((query, want), got) in cases.iter().zip(&got) {
        // "cols => rows [tag]" as `render` prints it; compare the rows only.
        let rows = match got.split_once(" => ") {
            Some((_, rest)) => rest.rsplit_once(" [").map_or(rest, |(r, _)| r),
            None => got.as_str(),
        };
        assert_eq!(rows, *want, "{query}");
    }
    got
}

/// Queries that exercise every pushdown, run against random tables.
const PUSHDOWN_QUERIES: &[&str] = &[
    "SELECT * FROM t",
    "SELECT s, id FROM t WHERE x > 0",
    "SELECT id FROM t LIMIT 3 OFFSET 1",
    "SELECT id, g, s FROM t ORDER BY g DESC, s NULLS FIRST LIMIT 4 OFFSET 2",
    "SELECT id, x FROM t ORDER BY x LIMIT 5",
    "SELECT g, count(*), count(x), sum(x), avg(x), min(s), max(s), bool_or(x > 0) FROM t GROUP BY g",
    "SELECT sum(x), avg(x), min(x), max(x), count(*) FROM t",
    "SELECT g, sum(x) FROM t GROUP BY g HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 3",
    "SELECT t.id, t.s, u.v FROM t JOIN u ON t.id = u.id",
    "SELECT t.id, u.v FROM t LEFT JOIN u ON t.id = u.id AND u.v > t.g",
    "SELECT count(*), sum(u.v), max(t.s) FROM t JOIN u ON t.id = u.id WHERE t.x IS NOT NULL",
    "SELECT t.id FROM t JOIN u ON t.id = u.id ORDER BY u.v, t.id DESC LIMIT 3",
    "SELECT t.id FROM t JOIN u ON t.g = u.id",
    "SELECT t.id, u.id FROM t LEFT JOIN u ON t.g = u.v",
    "SELECT t.id, u.id FROM t RIGHT JOIN u ON t.x = u.v AND t.id > u.id",
    "SELECT u.id, t.s FROM u JOIN t ON t.g = u.v WHERE u.id = 3",
    "SELECT t.g, count(*), sum(u.v) FROM t JOIN u ON t.g = u.v GROUP BY t.g",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Random tables on 1 to 4 shards: every query gives the coordinator-only plan's result.
    #[test]
    fn pushdown_never_changes_results(
        shards in 1usize..5,
        t_rows in prop::collection::vec(
            (0i32..40, prop::option::of(0i32..4), prop::option::of(prop::sample::select(vec![i64::MIN, -3, 0, 5, 9, i64::MAX])), prop::option::of(prop::sample::select(vec!["a", "B", "b", ""]))),
            0..25,
        ),
        u_rows in prop::collection::vec((0i32..40, prop::option::of(-2i32..3)), 0..20),
    ) {
        let mut setup = vec![
            "CREATE TABLE t (id int PRIMARY KEY, g int, x bigint, s text)".to_string(),
            "CREATE TABLE u (id int PRIMARY KEY, v int)".to_string(),
        ];
        let sql = |v: Option<String>| v.unwrap_or_else(|| "NULL".to_string());
        for (id, g, x, s) in &t_rows {
            setup.push(format!(
                "INSERT INTO t VALUES ({id}, {}, {}, {}) ON CONFLICT DO NOTHING",
                sql(g.map(|g| g.to_string())),
                sql(x.map(|x| x.to_string())),
                sql(s.map(|s| format!("'{s}'"))),
            ));
        }
        for (id, v) in &u_rows {
            setup.push(format!(
                "INSERT INTO u VALUES ({id}, {}) ON CONFLICT DO NOTHING",
                sql(v.map(|v| v.to_string()))
            ));
        }
        let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
        differential(shards, &setup, PUSHDOWN_QUERIES);
    }
}

/// Statements run through their query shape's prepared statement answer exactly as they do
/// parsed and planned one by one (`SET helios.query_shapes = off`): rows, types, tags, and
/// errors with their positions.
#[test]
fn query_shapes_answer_as_the_statements_they_come_from() {
    let setup = [
        "CREATE TABLE s (id int PRIMARY KEY, big bigint, n numeric(8,2), t text, d date, \
         ts timestamptz, j jsonb, f float8)",
        "INSERT INTO s SELECT g, g * 10000000000, g / 7.0, 'name' || g, DATE '2024-01-01' + g, \
         TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 hour', \
         ('{\"k\": ' || g || '}')::jsonb, g / 3.0 FROM generate_series(1, 50) g",
    ];
    let queries = [
        "SELECT * FROM s WHERE id = 7",
        "SELECT id, big FROM s WHERE big > 300000000000 AND id < 40",
        "SELECT id FROM s WHERE n >= 3.5 AND n < 4",
        "SELECT id FROM s WHERE t = 'name12'",
        "SELECT id FROM s WHERE t <> 'name1' AND id <= 3",
        "SELECT id FROM s WHERE d = '2024-01-05'",
        "SELECT id FROM s WHERE ts > '2024-01-02 12:00:00+00' AND id < 40",
        "SELECT id, j FROM s WHERE j = '{\"k\": 3}'",
        "SELECT id FROM s WHERE f > 16.5e0",
        "SELECT 1, 2147483647, 2147483648, 9223372036854775808, 1.50, -7, 1e3",
        "SELECT pg_typeof(1), pg_typeof(3000000000), pg_typeof(1.5), pg_typeof(-2147483647)",
        "SELECT 7 / 2, 7.0 / 2, -7 % 3, 2 ^ 10",
        "SELECT id FROM s WHERE id IN (1, 5, 9) AND t LIKE 'name%'",
        "SELECT count(*) FROM s WHERE id BETWEEN 10 AND 20",
        "SELECT substr(t, 2, 3), round(n, 1) FROM s WHERE id = 12",
        "SELECT CASE WHEN id > 25 THEN 'big' ELSE 'small' END FROM s WHERE id = 30",
        "SELECT id FROM s WHERE id = '12'",
        "SELECT id FROM s WHERE t = 'it''s'",
        // Errors, with the position the client's text gives them.
        "SELECT id FROM s WHERE id = 'abc'",
        "SELECT id FROM s WHERE d = 'not a date'",
        "SELECT id FROM s WHERE id = 99999999999",
        "SELECT 10 / 0",
        "SELECT id / 0 FROM s WHERE id = 1",
        "SELECT nosuch FROM s WHERE id = 1",
        "SELECT 2147483647 + 1",
        "INSERT INTO s (id, t) VALUES (1, 'dup')",
        // Writes, each undone by the next so both runs see the same table.
        "INSERT INTO s (id, t, big) VALUES (200, 'w', 5) RETURNING id, t, big",
        "UPDATE s SET big = big + -5, t = 'v' WHERE id = 200 RETURNING big, t",
        "DELETE FROM s WHERE id = 200 AND big = 0 RETURNING id",
        "SELECT count(*) FROM s WHERE id >= 200",
    ];
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        for sql in setup {
            assert!(
                !step(&cluster, &mut session, sql).await.starts_with("ERR"),
                "{sql}"
            );
        }
        let mut answers = Vec::new();
        for setting in ["on", "off"] {
            step(
                &cluster,
                &mut session,
                &format!("SET helios.query_shapes = {setting}"),
            )
            .await;
            let mut run = Vec::new();
            for sql in queries {
                let results = execute_simple(&mut session, &cluster, sql).await;
                let last = results.last().expect("a result");
                let position = last.as_ref().err().and_then(|e| e.position);
                run.push(format!("{} @{position:?}", render(last)));
            }
            answers.push(run);
        }
        for (i, sql) in queries.iter().enumerate() {
            assert_eq!(answers[0][i], answers[1][i], "{sql}");
        }
        // The shapes were used: the writes were prepared once per shape.
        assert!(session.shapes.len() > 20);
    });
}

/// Assignment errors carry PostgreSQL's position and DETAIL (checked against PostgreSQL 15):
/// a position at a quoted literal the column's input function could not read, none where a
/// value does not fit the column.
#[test]
fn assignment_errors_are_placed_as_postgresql_places_them() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        step(&cluster, &mut session, "CREATE TABLE a (i int, n numeric(4,2), v varchar(3), d date)").await;
        step(&cluster, &mut session, "INSERT INTO a VALUES (1, 1, 'x', '2024-01-01')").await;
        // (statement, SQLSTATE, the text the position points at, DETAIL)
        let cases = [
            ("INSERT INTO a (i) VALUES (99999999999)", "22003", None, None),
            ("INSERT INTO a (i) VALUES ('abc')", "22P02", Some("'abc'"), None),
            ("INSERT INTO a (i) VALUES ('99999999999')", "22003", Some("'99999999999'"), None),
            (
                "INSERT INTO a (n) VALUES (123.4)",
                "22003",
                None,
                Some("A field with precision 4, scale 2 must round to an absolute value less than 10^2."),
            ),
            ("INSERT INTO a (v) VALUES ('abcdef')", "22001", None, None),
            (
                "INSERT INTO a (n) VALUES ('123.4')",
                "22003",
                None,
                Some("A field with precision 4, scale 2 must round to an absolute value less than 10^2."),
            ),
            ("INSERT INTO a (d) VALUES ('x')", "22007", Some("'x'"), None),
            ("INSERT INTO a (i) VALUES (2.5e10)", "22003", None, None),
            ("UPDATE a SET i = 'zz'", "22P02", Some("'zz'"), None),
            ("UPDATE a SET i = 99999999999", "22003", None, None),
        ];
        for setting in ["on", "off"] {
            step(&cluster, &mut session, &format!("SET helios.query_shapes = {setting}")).await;
            for (sql, code, at, detail) in cases {
                let results = execute_simple(&mut session, &cluster, sql).await;
                let Some(Err(e)) = results.last() else {
                    panic!("{sql}: no error");
                };
                assert_eq!(e.sqlstate, code, "{sql}: {e:?}");
                let expected = at.map(|text| sql.find(text).expect("in the statement") + 1);
                assert_eq!(e.position, expected, "{sql}: {e:?}");
                assert_eq!(e.detail.as_deref(), detail, "{sql}");
            }
        }
    });
}

/// ADD PRIMARY KEY on a table without secondary indexes writes its rows straight into each
/// shard's tables (`Cluster::ingest`): they read back, take writes, survive a crash without
/// any WAL record of them, and once the table is dropped the tables holding them are deleted
/// whole (they sit on the last level, where no compaction would reach them).
#[test]
fn a_rewrite_ingests_its_rows_and_a_drop_deletes_their_tables() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            step(&cluster, &mut session, "CREATE TABLE t (a int, b char(20))").await;
            step(
                &cluster,
                &mut session,
                "INSERT INTO t SELECT g, 'b' || g FROM generate_series(1, 3000) g",
            )
            .await;
            assert_eq!(
                step(&cluster, &mut session, "ALTER TABLE t ADD PRIMARY KEY (a)").await,
                "ALTER TABLE"
            );
            let ingested: u64 = cluster.settled_sum(|s| s.ingested_files).await;
            assert!(ingested >= 2, "each shard ingested its rows: {ingested}");
            assert_eq!(
                step(&cluster, &mut session, "UPDATE t SET b = 'new' WHERE a = 7").await,
                "UPDATE 1"
            );
        }
        let crashed = fs.crash_fork(helios_engine::memfs::CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        let mut session = Session::new("u", "postgres");
        assert_eq!(
            step(
                &cluster,
                &mut session,
                "SELECT count(*), sum(a), max(b) FROM t"
            )
            .await,
            "count:20,sum:20,max:1042 => 3000|4501500|new                  [SELECT 1]"
        );
        assert_eq!(
            step(&cluster, &mut session, "SELECT b FROM t WHERE a = 2999").await,
            "b:1042 => b2999                [SELECT 1]"
        );
        assert!(
            step(&cluster, &mut session, "INSERT INTO t VALUES (5, 'dup')")
                .await
                .starts_with("ERR 23505")
        );
        let before: u64 = cluster.settled_sum(|s| s.dead_tables_deleted).await;
        assert_eq!(
            step(&cluster, &mut session, "DROP TABLE t").await,
            "DROP TABLE"
        );
        let after: u64 = cluster.settled_sum(|s| s.dead_tables_deleted).await;
        assert!(
            after >= before + 2,
            "the ingested tables went whole: {before} → {after}"
        );
        cluster.close().await;
    });
}

/// Runs one query string on `cluster`; the last result, rendered.
pub(crate) async fn step(cluster: &LocalCluster, session: &mut Session, sql: &str) -> String {
    let results = execute_simple(session, cluster, sql).await;
    render(results.last().expect("a result"))
        .trim_end()
        .to_string()
}

/// A table rewrite (ADD PRIMARY KEY, ADD COLUMN with a default, DROP COLUMN) builds the
/// table's indexes again from the rewritten rows: index scans still find every row, unique
/// indexes are still enforced, and no entry of the old index ids is left behind. DROP INDEX,
/// DROP TABLE and TRUNCATE leave no entries either.
#[test]
fn rewrites_keep_indexes_whole_and_dropped_indexes_leave_nothing() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let cluster = LocalCluster::open(rt2, MemFs::new(), 3).await;
        let mut session = Session::new("u", "postgres");
        let entries = [crate::index::INDEX_PREFIX];
        assert_eq!(step(&cluster, &mut session, "CREATE TABLE t (a int, b int, e text UNIQUE)").await, "CREATE TABLE");
        step(&cluster, &mut session, "INSERT INTO t SELECT g, g % 10, 'e' || g FROM generate_series(1, 100) g").await;
        step(&cluster, &mut session, "CREATE INDEX t_b ON t (b)").await;
        // t_e_key's entries and t_b's.
        assert_eq!(cluster.count_keys(&entries).await, 200);
        let count_b3 = "SELECT count(*) FROM t WHERE b = 3";
        assert!(step(&cluster, &mut session, "EXPLAIN SELECT count(*) FROM t WHERE b = 3").await.contains("index t_b"));
        assert!(step(&cluster, &mut session, count_b3).await.ends_with("=> 10 [SELECT 1]"));
        for rewrite in [
            "ALTER TABLE t ADD PRIMARY KEY (a)",
            "ALTER TABLE t ADD COLUMN c int DEFAULT 5",
        ] {
            assert_eq!(step(&cluster, &mut session, rewrite).await, "ALTER TABLE", "{rewrite}");
            assert!(step(&cluster, &mut session, count_b3).await.ends_with("=> 10 [SELECT 1]"), "{rewrite}");
            assert_eq!(cluster.count_keys(&entries).await, 200, "{rewrite}: old entries gone");
            assert_eq!(
                step(&cluster, &mut session, "INSERT INTO t VALUES (1000, 3, 'e7')").await,
                "ERR 23505 duplicate key value violates unique constraint \"t_e_key\" [DETAIL: Key (e)=(e7) already exists.]",
                "{rewrite}"
            );
        }
        assert_eq!(step(&cluster, &mut session, "INSERT INTO t VALUES (1000, 3, 'new')").await, "INSERT 0 1");
        assert!(step(&cluster, &mut session, count_b3).await.ends_with("=> 11 [SELECT 1]"));
        // Dropping the indexed column drops the index, and its entries.
        assert_eq!(step(&cluster, &mut session, "ALTER TABLE t DROP COLUMN b").await, "ALTER TABLE");
        assert_eq!(cluster.count_keys(&entries).await, 101);
        step(&cluster, &mut session, "CREATE INDEX t_c ON t (c)").await;
        assert_eq!(cluster.count_keys(&entries).await, 202);
        assert_eq!(step(&cluster, &mut session, "TRUNCATE t").await, "TRUNCATE TABLE");
        assert_eq!(cluster.count_keys(&entries).await, 0);
        assert_eq!(cluster.count_keys(&[crate::index::CLAIM_PREFIX]).await, 0);
        assert_eq!(
            step(&cluster, &mut session, "INSERT INTO t (a, e, c) SELECT g, 'x' || g, 1 FROM generate_series(1, 10) g").await,
            "INSERT 0 10"
        );
        assert_eq!(cluster.count_keys(&entries).await, 20);
        assert_eq!(step(&cluster, &mut session, "DROP INDEX t_c").await, "DROP INDEX");
        assert_eq!(cluster.count_keys(&entries).await, 10);
        let claims = [crate::index::CLAIM_PREFIX];
        assert_eq!(cluster.count_keys(&claims).await, 10);
        step(&cluster, &mut session, "CREATE INDEX t_c2 ON t (c)").await;
        assert_eq!(step(&cluster, &mut session, "DROP TABLE t").await, "DROP TABLE");
        assert_eq!(cluster.count_keys(&entries).await, 0);
        assert_eq!(cluster.count_keys(&claims).await, 0);
    });
}

#[test]
fn alter_table_changes_columns_keys_and_constraints() {
    script(
        3,
        &[
            ("CREATE TABLE acc (id int, bal int, note text)", "CREATE TABLE "),
            ("INSERT INTO acc VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, NULL)", "INSERT 0 3"),
            // Catalog-only: a column with no default reads as NULL in the old rows.
            ("ALTER TABLE acc ADD COLUMN flag boolean", "ALTER TABLE "),
            ("SELECT id, flag FROM acc ORDER BY id", "id:23,flag:16 => 1|NULL / 2|NULL / 3|NULL [SELECT 3]"),
            // A default fills the old rows (a rewrite).
            ("ALTER TABLE acc ADD COLUMN region text NOT NULL DEFAULT 'eu'", "ALTER TABLE "),
            ("SELECT id, region FROM acc ORDER BY id", "id:23,region:25 => 1|eu / 2|eu / 3|eu [SELECT 3]"),
            ("ALTER TABLE acc ADD COLUMN bad int NOT NULL", "ERR 23502 column \"bad\" of relation \"acc\" contains null values"),
            ("ALTER TABLE acc ADD COLUMN id int", "ERR 42701 column \"id\" of relation \"acc\" already exists"),
            ("ALTER TABLE acc ADD COLUMN IF NOT EXISTS id int", "ALTER TABLE "),
            // A primary key on the loaded table moves every row to its key's shard.
            ("ALTER TABLE acc ADD PRIMARY KEY (id)", "ALTER TABLE "),
            ("SELECT bal FROM acc WHERE id = 2", "bal:23 => 20 [SELECT 1]"),
            ("INSERT INTO acc (id, bal) VALUES (2, 0)", "ERR 23505 duplicate key value violates unique constraint \"acc_pkey\" [DETAIL: Key (id)=(2) already exists.]"),
            ("ALTER TABLE acc ADD PRIMARY KEY (bal)", "ERR 42P16 multiple primary keys for table \"acc\" are not allowed"),
            ("SELECT count(*) FROM acc", "count:20 => 3 [SELECT 1]"),
            // CHECK is verified against the rows first.
            ("ALTER TABLE acc ADD CONSTRAINT pos CHECK (bal > 15)", "ERR 23514 check constraint \"pos\" of relation \"acc\" is violated by some row"),
            ("ALTER TABLE acc ADD CONSTRAINT pos CHECK (bal > 0)", "ALTER TABLE "),
            ("INSERT INTO acc (id, bal) VALUES (9, -1)", "ERR 23514 new row for relation \"acc\" violates check constraint \"pos\" [DETAIL: Failing row contains (9, -1, null, null, eu).]"),
            // Renames follow into CHECK expressions.
            ("ALTER TABLE acc RENAME COLUMN bal TO balance", "ALTER TABLE "),
            ("INSERT INTO acc (id, balance) VALUES (9, -1)", "ERR 23514 new row for relation \"acc\" violates check constraint \"pos\" [DETAIL: Failing row contains (9, -1, null, null, eu).]"),
            ("ALTER TABLE acc DROP CONSTRAINT pos", "ALTER TABLE "),
            ("INSERT INTO acc (id, balance) VALUES (9, -1)", "INSERT 0 1"),
            // A dropped column is gone from every row; the others keep their values.
            ("ALTER TABLE acc DROP COLUMN note", "ALTER TABLE "),
            ("SELECT * FROM acc ORDER BY id", "id:23,balance:23,flag:16,region:25 => 1|10|NULL|eu / 2|20|NULL|eu / 3|30|NULL|eu / 9|-1|NULL|eu [SELECT 4]"),
            ("ALTER TABLE acc DROP COLUMN nope", "ERR 42703 column \"nope\" of relation \"acc\" does not exist"),
            ("ALTER TABLE acc DROP COLUMN IF EXISTS nope", "ALTER TABLE "),
            ("ALTER TABLE acc DROP COLUMN id", "ERR 2BP01 cannot drop column id of table acc because other objects depend on it"),
            ("ALTER TABLE acc ALTER COLUMN flag SET DEFAULT true", "ALTER TABLE "),
            ("INSERT INTO acc (id, balance) VALUES (10, 1)", "INSERT 0 1"),
            ("SELECT flag FROM acc WHERE id = 10", "flag:16 => t [SELECT 1]"),
            ("ALTER TABLE acc ALTER COLUMN flag SET NOT NULL", "ERR 23502 column \"flag\" of relation \"acc\" contains null values"),
            ("ALTER TABLE acc RENAME TO accounts", "ALTER TABLE "),
            ("SELECT count(*) FROM accounts", "count:20 => 5 [SELECT 1]"),
            ("SELECT count(*) FROM acc", "ERR 42P01 relation \"acc\" does not exist"),
            ("ALTER TABLE IF EXISTS acc ADD COLUMN z int", "ALTER TABLE "),
            // Dropping the primary key (named acc_pkey still: a rename keeps it, as in
            // PostgreSQL) puts the rows back under hidden row ids.
            ("ALTER TABLE accounts DROP CONSTRAINT acc_pkey", "ALTER TABLE "),
            ("INSERT INTO accounts (id, balance) VALUES (1, 1)", "INSERT 0 1"),
            ("SELECT count(*) FROM accounts WHERE id = 1", "count:20 => 2 [SELECT 1]"),
            ("ALTER TABLE accounts ADD PRIMARY KEY (id)", "ERR 23505 could not create unique index \"accounts_pkey\" [DETAIL: Key (id)=(1) is duplicated.]"),
            ("SELECT count(*) FROM accounts", "count:20 => 6 [SELECT 1]"),
            ("COPY (SELECT id, region FROM accounts WHERE id < 3 ORDER BY id DESC) TO STDOUT (FORMAT csv)", "2,eu / 1,eu / 1,eu /  [COPY 3]"),
            // The same rows moved under a new key as they are stored (no secondary index):
            // a NULL key, then a clean one.
            ("DELETE FROM accounts WHERE id = 1 AND balance = 1", "DELETE 1"),
            ("ALTER TABLE accounts ALTER COLUMN id DROP NOT NULL", "ALTER TABLE "),
            ("INSERT INTO accounts (id, balance) VALUES (NULL, 5)", "INSERT 0 1"),
            ("ALTER TABLE accounts ADD PRIMARY KEY (id)", "ERR 23502 column \"id\" of relation \"accounts\" contains null values"),
            ("DELETE FROM accounts WHERE id IS NULL", "DELETE 1"),
            ("ALTER TABLE accounts ADD PRIMARY KEY (id)", "ALTER TABLE "),
            ("SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts", "string_agg:25 => 1,2,3,9,10 [SELECT 1]"),
            ("SELECT id, region FROM accounts WHERE id = 9", "id:23,region:25 => 9|eu [SELECT 1]"),
            ("COPY accounts FROM STDIN", "COPY IN 4"),
        ],
    );
}

#[test]
fn secondary_indexes_answer_equality_and_ranges_and_follow_writes() {
    let mut steps: Vec<(String, String)> = vec![
        (
            "CREATE TABLE ix (id int PRIMARY KEY, grp int, name text, score float8)".into(),
            "CREATE TABLE ".into(),
        ),
        (
            "INSERT INTO ix SELECT g, g % 10, 'n' || g, g / 4.0 FROM generate_series(1, 200) g"
                .into(),
            "INSERT 0 200".into(),
        ),
        // Built over the rows already there, then kept by every write.
        (
            "CREATE INDEX ix_grp ON ix (grp)".into(),
            "CREATE INDEX ".into(),
        ),
        ("CREATE INDEX ON ix (name)".into(), "CREATE INDEX ".into()),
        (
            "CREATE INDEX ix_score ON ix (score)".into(),
            "CREATE INDEX ".into(),
        ),
        (
            "SELECT count(*), sum(id) FROM ix WHERE grp = 3".into(),
            "count:20,sum:20 => 20|1960 [SELECT 1]".into(),
        ),
        (
            "SELECT id FROM ix WHERE name = 'n42'".into(),
            "id:23 => 42 [SELECT 1]".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE score >= 10 AND score < 20".into(),
            "count:20 => 40 [SELECT 1]".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE 5 < grp AND grp <= 7".into(),
            "count:20 => 40 [SELECT 1]".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE grp = NULL".into(),
            "count:20 => 0 [SELECT 1]".into(),
        ),
        (
            "UPDATE ix SET grp = 100 WHERE id <= 5".into(),
            "UPDATE 5".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE grp = 3".into(),
            "count:20 => 19 [SELECT 1]".into(),
        ),
        (
            "SELECT id FROM ix WHERE grp = 100 ORDER BY id".into(),
            "id:23 => 1 / 2 / 3 / 4 / 5 [SELECT 5]".into(),
        ),
        ("DELETE FROM ix WHERE id = 42".into(), "DELETE 1".into()),
        (
            "SELECT count(*) FROM ix WHERE name = 'n42'".into(),
            "count:20 => 0 [SELECT 1]".into(),
        ),
        (
            "INSERT INTO ix VALUES (500, NULL, 'n42', NULL)".into(),
            "INSERT 0 1".into(),
        ),
        (
            "SELECT id FROM ix WHERE name = 'n42'".into(),
            "id:23 => 500 [SELECT 1]".into(),
        ),
        (
            "UPDATE ix SET name = 'moved' WHERE id = 500".into(),
            "UPDATE 1".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE name = 'n42' OR name = 'moved'".into(),
            "count:20 => 1 [SELECT 1]".into(),
        ),
        (
            "SELECT count(*) FROM ix WHERE grp IS NULL".into(),
            "count:20 => 1 [SELECT 1]".into(),
        ),
    ];
    steps.push((
        "SELECT count(*) FROM ix WHERE score >= 10 AND score < 20".into(),
        "count:20 => 39 [SELECT 1]".into(),
    ));
    // The scans go through the indexes.
    for (query, index) in [
        ("SELECT id FROM ix WHERE grp = 3", "ix_grp"),
        ("SELECT id FROM ix WHERE score > 1.5", "ix_score"),
        (
            "SELECT id FROM ix WHERE name = 'x' AND grp > 1",
            "ix_name_idx",
        ),
    ] {
        steps.push((
            format!("EXPLAIN {query}"),
            format!("~(index {index}; every shard"),
        ));
    }
    // The same answers once the indexes are gone (a full scan).
    steps.push((
        "DROP INDEX ix_grp, ix_name_idx, ix_score".into(),
        "DROP INDEX ".into(),
    ));
    steps.push((
        "SELECT count(*), sum(id) FROM ix WHERE grp = 3".into(),
        "count:20,sum:20 => 19|1957 [SELECT 1]".into(),
    ));
    steps.push((
        "SELECT count(*) FROM ix WHERE score >= 10 AND score < 20".into(),
        "count:20 => 39 [SELECT 1]".into(),
    ));
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    script(3, &steps);
}

#[test]
fn analyze_gathers_statistics_that_decide_when_an_index_pays() {
    script(
        2,
        &[
            (
                "CREATE TABLE st (id int PRIMARY KEY, flag int, v int)",
                "CREATE TABLE ",
            ),
            (
                "INSERT INTO st SELECT g, g % 2, g FROM generate_series(1, 1000) g",
                "INSERT 0 1000",
            ),
            ("CREATE INDEX st_flag ON st (flag)", "CREATE INDEX "),
            ("CREATE INDEX st_v ON st (v)", "CREATE INDEX "),
            // Without statistics every usable index is used.
            (
                "EXPLAIN SELECT id FROM st WHERE flag = 1",
                "~index st_flag;",
            ),
            ("EXPLAIN SELECT id FROM st WHERE v > 10", "~index st_v;"),
            (
                "SELECT reltuples FROM pg_class WHERE relname = 'st'",
                "reltuples:700 => -1 [SELECT 1]",
            ),
            ("ANALYZE st", "ANALYZE "),
            (
                "SELECT reltuples FROM pg_class WHERE relname = 'st'",
                "reltuples:700 => 1000 [SELECT 1]",
            ),
            // A real, as in PostgreSQL: it sums and compares with other reals.
            (
                "SELECT sum(reltuples), max(reltuples) = 1000::real, reltuples + 1::real FROM pg_class WHERE relname = 'st' GROUP BY reltuples",
                "sum:700,?column?:16,?column?:700 => 1000|t|1001 [SELECT 1]",
            ),
            // Half the rows match flag = 1, 99% match v > 10: a scan is cheaper.
            (
                "EXPLAIN SELECT id FROM st WHERE flag = 1",
                "~(every shard: 0..2 in parallel)",
            ),
            (
                "EXPLAIN SELECT id FROM st WHERE v > 10",
                "~(every shard: 0..2 in parallel)",
            ),
            // A selective predicate still goes through its index.
            ("EXPLAIN SELECT id FROM st WHERE v = 10", "~index st_v;"),
            ("EXPLAIN SELECT id FROM st WHERE v < 50", "~index st_v;"),
            (
                "SELECT count(*) FROM st WHERE v < 50",
                "count:20 => 49 [SELECT 1]",
            ),
            (
                "SELECT count(*) FROM st WHERE flag = 1",
                "count:20 => 500 [SELECT 1]",
            ),
            ("VACUUM ANALYZE", "VACUUM "),
            ("VACUUM (ANALYZE) st", "VACUUM "),
            // ADD PRIMARY KEY keeps the statistics (columns keep their places and types);
            // dropping a column forgets them until the next ANALYZE.
            ("CREATE TABLE nk (a int, b int)", "CREATE TABLE "),
            (
                "INSERT INTO nk SELECT g, g FROM generate_series(1, 30) g",
                "INSERT 0 30",
            ),
            ("ANALYZE nk", "ANALYZE "),
            ("ALTER TABLE nk ADD PRIMARY KEY (a)", "ALTER TABLE "),
            (
                "SELECT reltuples FROM pg_class WHERE relname = 'nk'",
                "reltuples:700 => 30 [SELECT 1]",
            ),
            ("ALTER TABLE nk DROP COLUMN b", "ALTER TABLE "),
            (
                "SELECT reltuples FROM pg_class WHERE relname = 'nk'",
                "reltuples:700 => -1 [SELECT 1]",
            ),
            ("ANALYZE nope", "ERR 42P01 relation \"nope\" does not exist"),
        ],
    );
}

#[test]
fn analyzed_tables_broadcast_the_side_with_fewer_rows() {
    script(
        2,
        &[
            ("CREATE TABLE big (id int PRIMARY KEY, k int)", "CREATE TABLE "),
            ("CREATE TABLE small (id int PRIMARY KEY, k int)", "CREATE TABLE "),
            ("INSERT INTO big SELECT g, g % 7 FROM generate_series(1, 500) g", "INSERT 0 500"),
            ("INSERT INTO small SELECT g, g FROM generate_series(1, 5) g", "INSERT 0 5"),
            // Unanalyzed, with no filters either way: the right side is the guess.
            ("EXPLAIN SELECT count(*) FROM small JOIN big ON small.k = big.k", "~#1 broadcast to every shard"),
            ("EXPLAIN SELECT count(*) FROM small JOIN big ON small.k = big.k", "~#1 Scan on public.big"),
            ("ANALYZE", "ANALYZE "),
            // Analyzed: `small` has fewer rows, so it is the side sent to every shard.
            ("EXPLAIN SELECT count(*) FROM small JOIN big ON small.k = big.k", "~#0 Scan on public.small (every shard: 0..2 in parallel), broadcast to #1's fragments"),
            ("EXPLAIN SELECT count(*) FROM big JOIN small ON small.k = big.k", "~#1 Scan on public.small (every shard: 0..2 in parallel), broadcast to #0's fragments"),
            ("SELECT count(*) FROM small JOIN big ON small.k = big.k", "count:20 => 358 [SELECT 1]"),
        ],
    );
}

async fn count_rows(cluster: &LocalCluster) -> String {
    let mut session = Session::new("u", "postgres");
    let r = execute_simple(&mut session, cluster, "SELECT count(*) FROM t").await;
    render(&r[0])
}

/// A multi-shard commit cut short by a crash: after its commit record is durable, the restart
/// finishes it on every shard (including those that had not applied their part); before the
/// record, nothing of it survives.
#[test]
fn multi_shard_commits_interrupted_by_a_crash_are_all_or_nothing() {
    use crate::txn::{TxnMsg, TxnReply};
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        for record_written in [false, true] {
            let fs = MemFs::new();
            {
                let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 3).await;
                let mut session = Session::new("u", "postgres");
                for sql in [
                    "CREATE TABLE t (a int PRIMARY KEY)",
                    "BEGIN",
                    "INSERT INTO t SELECT g FROM generate_series(1, 30) g",
                ] {
                    let r = execute_simple(&mut session, &cluster, sql).await;
                    assert!(r.iter().all(Result::is_ok), "{sql}: {r:?}");
                }
                let (txn, touched) = {
                    let conn = cluster.conn_txn().borrow();
                    let t = conn.current.as_ref().expect("in a transaction");
                    (t.id, t.touched.iter().copied().collect::<Vec<_>>())
                };
                assert_eq!(touched.len(), 3, "the rows are on every shard");
                let mut parts = Vec::new();
                for &s in &touched {
                    let TxnReply::Entries(entries) =
                        cluster.txn_call(s, TxnMsg::Gather { txn }).await.unwrap()
                    else {
                        panic!("entries")
                    };
                    parts.push((s, entries));
                }
                if record_written {
                    let record = crate::txn::encode_record(99, &parts);
                    assert_eq!(crate::txn::decode_record(&record).unwrap(), (99, parts));
                    cluster
                        .txn_call(0, TxnMsg::WriteRecord { txn, record })
                        .await
                        .unwrap();
                    // One participant applied its part before the crash; the others did not.
                    cluster
                        .txn_call(touched[1], TxnMsg::Apply { txn })
                        .await
                        .unwrap();
                }
            }
            let crashed = fs.crash_fork(helios_engine::memfs::CrashMode::LoseAll);
            let cluster = LocalCluster::open(rt2.clone(), crashed, 3).await;
            let expected = if record_written { 30 } else { 0 };
            assert_eq!(
                count_rows(&cluster).await,
                format!("count:20 => {expected} [SELECT 1]"),
                "record written: {record_written}"
            );
            for s in 0..3 {
                let TxnReply::Records(records) =
                    cluster.txn_call(s, TxnMsg::Records).await.unwrap()
                else {
                    panic!("records")
                };
                assert!(records.is_empty(), "recovery deletes the records");
            }
            cluster.close().await;
        }
    });
}

/// Two surviving commit records that wrote the same row are redone in commit order, whatever
/// shards hold them (the later commit's value stays).
#[test]
fn recovery_redoes_commit_records_in_commit_order() {
    use crate::txn::TxnMsg;
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        let key = bytes::Bytes::from_static(b"\x80test-row");
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let part = |v: &'static [u8]| {
                vec![(
                    1usize,
                    vec![(key.clone(), Some(bytes::Bytes::from_static(v)))],
                )]
            };
            // The later commit (sequence 9) has its record on shard 0, which recovery reads
            // first; the earlier one (5) on shard 1.
            for (shard, txn, seq, value) in [
                (0usize, 1u64, 9u64, b"later" as &[u8]),
                (1, 2, 5, b"earlier"),
            ] {
                let record = crate::txn::encode_record(seq, &part(value));
                cluster
                    .txn_call(shard, TxnMsg::WriteRecord { txn, record })
                    .await
                    .unwrap();
            }
        }
        let crashed = fs.crash_fork(helios_engine::memfs::CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        assert_eq!(
            cluster.raw_get(1, &key).await.as_deref(),
            Some(&b"later"[..])
        );
        cluster.close().await;
    });
}

/// Transaction characteristics as PostgreSQL reports and guards them: START TRANSACTION's
/// own tag, `transaction_read_only` (the block's, else the default), and SET TRANSACTION
/// ISOLATION LEVEL refused once the block has read, at READ COMMITTED too.
#[test]
fn transaction_characteristics_are_shown_and_fixed_by_the_first_query() {
    for shards in [1, 2] {
        script(
            shards,
            &[
                (
                    "CREATE TABLE tc (id int PRIMARY KEY, v int)",
                    "CREATE TABLE ",
                ),
                ("INSERT INTO tc VALUES (1, 1)", "INSERT 0 1"),
                (
                    "SHOW transaction_read_only",
                    "transaction_read_only:25 => off [SHOW]",
                ),
                ("START TRANSACTION READ ONLY", "START TRANSACTION "),
                (
                    "SHOW transaction_read_only",
                    "transaction_read_only:25 => on [SHOW]",
                ),
                ("COMMIT", "COMMIT "),
                ("BEGIN", "BEGIN "),
                ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET "),
                (
                    "SHOW transaction_isolation",
                    "transaction_isolation:25 => repeatable read [SHOW]",
                ),
                ("COMMIT", "COMMIT "),
                ("BEGIN", "BEGIN "),
                ("SELECT v FROM tc WHERE id = 1", "v:23 => 1 [SELECT 1]"),
                (
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                    "ERR 25001 SET TRANSACTION ISOLATION LEVEL must be called before any query",
                ),
                ("ROLLBACK", "ROLLBACK "),
                (
                    "SET default_transaction_read_only = on",
                    "SET default_transaction_read_only=on",
                ),
                (
                    "SHOW transaction_read_only",
                    "transaction_read_only:25 => on [SHOW]",
                ),
                ("BEGIN READ WRITE", "BEGIN "),
                (
                    "SHOW transaction_read_only",
                    "transaction_read_only:25 => off [SHOW]",
                ),
                ("COMMIT", "COMMIT "),
                (
                    "SET default_transaction_read_only = off",
                    "SET default_transaction_read_only=off",
                ),
                // A query reading no table takes the snapshot too; the level it has may be
                // set again.
                ("BEGIN", "BEGIN "),
                ("SELECT 1", "?column?:23 => 1 [SELECT 1]"),
                ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET "),
                (
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                    "~ERR 25001",
                ),
                ("ROLLBACK", "ROLLBACK "),
                // The settings' own names set the block's modes.
                ("BEGIN", "BEGIN "),
                ("SET transaction_isolation = 'repeatable read'", "SET "),
                ("SET transaction_read_only = on", "SET "),
                (
                    "SHOW transaction_isolation",
                    "transaction_isolation:25 => repeatable read [SHOW]",
                ),
                (
                    "INSERT INTO tc VALUES (2, 2)",
                    "ERR 25006 cannot execute INSERT in a read-only transaction",
                ),
                ("ROLLBACK", "ROLLBACK "),
                ("SET transaction_isolation = 'bogus'", "~ERR 22023"),
                // DDL is refused in a read-only block too.
                ("BEGIN READ ONLY", "BEGIN "),
                (
                    "CREATE TABLE ro (x int)",
                    "ERR 25006 cannot execute CREATE TABLE in a read-only transaction",
                ),
                ("ROLLBACK", "ROLLBACK "),
                // [NOT] DEFERRABLE is accepted (it matters to SERIALIZABLE only).
                (
                    "BEGIN DEFERRABLE, ISOLATION LEVEL REPEATABLE READ",
                    "BEGIN ",
                ),
                (
                    "SHOW transaction_isolation",
                    "transaction_isolation:25 => repeatable read [SHOW]",
                ),
                ("COMMIT", "COMMIT "),
                // Two-phase commit is off, as PostgreSQL's default is.
                ("BEGIN", "BEGIN "),
                ("INSERT INTO tc VALUES (3, 3)", "INSERT 0 1"),
                (
                    "PREPARE TRANSACTION 'g1'",
                    "ERR 55000 prepared transactions are disabled",
                ),
                ("SELECT count(*) FROM tc", "count:20 => 1 [SELECT 1]"),
                (
                    "COMMIT PREPARED 'g1'",
                    "ERR 42704 prepared transaction with identifier \"g1\" does not exist",
                ),
                (
                    "ROLLBACK PREPARED 'g1'",
                    "ERR 42704 prepared transaction with identifier \"g1\" does not exist",
                ),
            ],
        );
    }
}

/// A bare NULL or string literal in a set operation's SELECT or an INSERT's source query
/// takes its type from the other operand or the target column, as in PostgreSQL; elsewhere
/// (the query's own output, a FROM subquery) it is text.
#[test]
fn unknown_literals_take_their_type_from_a_set_operation_or_an_insert_target() {
    script(
        1,
        &[
            ("CREATE TABLE nn (a int, b int, c date)", "CREATE TABLE "),
            ("INSERT INTO nn SELECT 1, NULL, NULL", "INSERT 0 1"),
            ("INSERT INTO nn SELECT 2, '7', '2024-01-02'", "INSERT 0 1"),
            // Unknown in both operands is text to the union, then no date (PostgreSQL too).
            (
                "INSERT INTO nn SELECT 3, NULL, NULL UNION ALL SELECT 4, 5, '2024-03-04'",
                "~ERR 42804 column \"c\" is of type date but expression is of type text",
            ),
            (
                "INSERT INTO nn SELECT 3, NULL, NULL::date UNION ALL SELECT 4, 5, '2024-03-04'",
                "INSERT 0 2",
            ),
            (
                "INSERT INTO nn WITH w AS (SELECT 5 AS a) SELECT a, NULL, NULL FROM w",
                "INSERT 0 1",
            ),
            (
                "SELECT a, b, c FROM nn ORDER BY a",
                "a:23,b:23,c:1082 => 1|NULL|NULL / 2|7|2024-01-02 / 3|NULL|NULL / 4|5|2024-03-04 / 5|NULL|NULL [SELECT 5]",
            ),
            (
                "SELECT NULL AS x UNION ALL SELECT 2 ORDER BY 1",
                "x:23 => 2 / NULL [SELECT 2]",
            ),
            ("SELECT 'a' AS x UNION SELECT 'b' ORDER BY 1", "x:25 => a / b [SELECT 2]"),
            ("SELECT '1' AS x UNION ALL SELECT 2", "x:23 => 1 / 2 [SELECT 2]"),
            ("SELECT 'z' AS x UNION ALL SELECT 2", "~ERR 22P02"),
            ("SELECT NULL AS x", "x:25 => NULL [SELECT 1]"),
            ("SELECT x FROM (SELECT NULL AS x) s", "x:25 => NULL [SELECT 1]"),
        ],
    );
}

/// TRUNCATE ... RESTART IDENTITY starts the table's serial sequences over; CONTINUE
/// IDENTITY (the default) leaves them. In a transaction block the restart is transactional,
/// as PostgreSQL's: ROLLBACK (or ROLLBACK TO) brings the old values back, also after the
/// block wrote rows of the table first.
#[test]
fn truncate_restart_identity_starts_serial_columns_over() {
    for shards in [1, 2] {
        script(
            shards,
            &[
                (
                    "CREATE TABLE ri (id serial PRIMARY KEY, v int)",
                    "CREATE TABLE ",
                ),
                ("INSERT INTO ri (v) VALUES (1), (2)", "INSERT 0 2"),
                ("TRUNCATE ri", "TRUNCATE TABLE "),
                (
                    "INSERT INTO ri (v) VALUES (3) RETURNING id",
                    "id:23 => 3 [INSERT 0 1]",
                ),
                ("TRUNCATE ri CONTINUE IDENTITY", "TRUNCATE TABLE "),
                (
                    "INSERT INTO ri (v) VALUES (4) RETURNING id",
                    "id:23 => 4 [INSERT 0 1]",
                ),
                ("TRUNCATE ri RESTART IDENTITY", "TRUNCATE TABLE "),
                (
                    "INSERT INTO ri (v) VALUES (5) RETURNING id",
                    "id:23 => 1 [INSERT 0 1]",
                ),
                ("BEGIN", "BEGIN "),
                ("INSERT INTO ri (v) VALUES (6)", "INSERT 0 1"),
                ("TRUNCATE ri RESTART IDENTITY", "TRUNCATE TABLE "),
                (
                    "INSERT INTO ri (v) VALUES (7) RETURNING id",
                    "id:23 => 1 [INSERT 0 1]",
                ),
                ("ROLLBACK", "ROLLBACK "),
                (
                    "SELECT id, v FROM ri ORDER BY id",
                    "id:23,v:23 => 1|5 [SELECT 1]",
                ),
                (
                    "INSERT INTO ri (v) VALUES (8) RETURNING id",
                    "id:23 => 3 [INSERT 0 1]",
                ),
                ("BEGIN", "BEGIN "),
                ("SAVEPOINT s", "SAVEPOINT "),
                ("TRUNCATE ri RESTART IDENTITY", "TRUNCATE TABLE "),
                ("ROLLBACK TO s", "ROLLBACK "),
                (
                    "INSERT INTO ri (v) VALUES (9) RETURNING id",
                    "id:23 => 4 [INSERT 0 1]",
                ),
                ("TRUNCATE ri RESTART IDENTITY", "TRUNCATE TABLE "),
                ("SELECT currval('ri_id_seq')", "currval:20 => 4 [SELECT 1]"),
                (
                    "INSERT INTO ri (v) VALUES (10) RETURNING id",
                    "id:23 => 1 [INSERT 0 1]",
                ),
                ("COMMIT", "COMMIT "),
                (
                    "INSERT INTO ri (v) VALUES (11) RETURNING id",
                    "id:23 => 2 [INSERT 0 1]",
                ),
                (
                    "SELECT id, v FROM ri ORDER BY id",
                    "id:23,v:23 => 1|10 / 2|11 [SELECT 2]",
                ),
            ],
        );
    }
}

/// GENERATED BY DEFAULT AS IDENTITY (Django's and SQLAlchemy's auto-increment keys): values
/// from an owned sequence unless one is given, shown by the catalogs as an identity, not a
/// DEFAULT; restarted by TRUNCATE ... RESTART IDENTITY. GENERATED ALWAYS takes no value
/// from an INSERT without OVERRIDING SYSTEM VALUE, and no UPDATE but to DEFAULT.
#[test]
fn identity_columns_number_rows_and_show_as_identities() {
    for shards in [1, 2] {
        script(
            shards,
            &[
                (
                    "CREATE TABLE idt (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)",
                    "CREATE TABLE ",
                ),
                ("INSERT INTO idt (v) VALUES ('a') RETURNING id", "id:20 => 1 [INSERT 0 1]"),
                ("INSERT INTO idt VALUES (10, 'b') RETURNING id", "id:20 => 10 [INSERT 0 1]"),
                ("INSERT INTO idt (v) VALUES ('c') RETURNING id", "id:20 => 2 [INSERT 0 1]"),
                (
                    "SELECT attname, attidentity, atthasdef FROM pg_attribute \
                     WHERE attrelid = 'idt'::regclass AND attnum > 0 ORDER BY attnum",
                    "attname:19,attidentity:25,atthasdef:16 => id|d|f / v||f [SELECT 2]",
                ),
                (
                    "SELECT column_default, is_identity FROM information_schema.columns \
                     WHERE table_name = 'idt' AND column_name = 'id'",
                    "column_default:25,is_identity:25 => NULL|YES [SELECT 1]",
                ),
                (
                    "SELECT pg_get_serial_sequence('idt', 'id')",
                    "pg_get_serial_sequence:25 => public.idt_id_seq [SELECT 1]",
                ),
                ("TRUNCATE idt RESTART IDENTITY", "TRUNCATE TABLE "),
                ("INSERT INTO idt (v) VALUES ('d') RETURNING id", "id:20 => 1 [INSERT 0 1]"),
                (
                    "CREATE TABLE idt2 (id text GENERATED BY DEFAULT AS IDENTITY)",
                    "ERR 22023 identity column type must be smallint, integer, or bigint",
                ),
                // The identity's sequence takes CREATE SEQUENCE's options, in its column's type.
                (
                    "CREATE TABLE idt3 (id int GENERATED BY DEFAULT AS IDENTITY \
                     (START WITH 100 INCREMENT BY 10), v text)",
                    "CREATE TABLE ",
                ),
                (
                    "INSERT INTO idt3 (v) VALUES ('a'), ('b') RETURNING id",
                    "id:23 => 100 / 110 [INSERT 0 2]",
                ),
                (
                    "SELECT seqstart, seqincrement, seqmax FROM pg_sequence \
                     WHERE seqrelid = 'idt3_id_seq'::regclass",
                    "seqstart:20,seqincrement:20,seqmax:20 => 100|10|2147483647 [SELECT 1]",
                ),
                (
                    "CREATE TABLE idt4 (id smallint GENERATED ALWAYS AS IDENTITY (START 40000))",
                    "ERR 22023 START value (40000) cannot be greater than MAXVALUE (32767)",
                ),
                // GENERATED ALWAYS: values only from the identity, unless overridden.
                (
                    "CREATE TABLE ida (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)",
                    "CREATE TABLE ",
                ),
                ("INSERT INTO ida (v) VALUES ('a') RETURNING id", "id:23 => 1 [INSERT 0 1]"),
                (
                    "INSERT INTO ida VALUES (5, 'b')",
                    "~ERR 428C9 cannot insert a non-DEFAULT value into column \"id\" [DETAIL: Column \"id\" is an identity column defined as GENERATED ALWAYS.]",
                ),
                (
                    "INSERT INTO ida SELECT 6, 'b'",
                    "~ERR 428C9 cannot insert a non-DEFAULT value into column \"id\"",
                ),
                (
                    "INSERT INTO ida OVERRIDING SYSTEM VALUE VALUES (5, 'b') RETURNING id",
                    "id:23 => 5 [INSERT 0 1]",
                ),
                ("INSERT INTO ida VALUES (DEFAULT, 'c') RETURNING id", "id:23 => 2 [INSERT 0 1]"),
                (
                    "INSERT INTO ida OVERRIDING USER VALUE VALUES (100, 'd') RETURNING id",
                    "id:23 => 3 [INSERT 0 1]",
                ),
                (
                    "UPDATE ida SET id = 9 WHERE v = 'a'",
                    "ERR 428C9 column \"id\" can only be updated to DEFAULT [DETAIL: Column \"id\" is an identity column defined as GENERATED ALWAYS.]",
                ),
                ("UPDATE ida SET v = 'z' WHERE id = 1", "UPDATE 1"),
                (
                    "SELECT attidentity FROM pg_attribute WHERE attrelid = 'ida'::regclass AND attnum = 1",
                    "attidentity:25 => a [SELECT 1]",
                ),
                (
                    "SELECT id, v FROM ida ORDER BY id",
                    "id:23,v:25 => 1|z / 2|c / 3|d / 5|b [SELECT 4]",
                ),
                (
                    "CREATE TABLE idt4 (id int DEFAULT 1 GENERATED BY DEFAULT AS IDENTITY)",
                    "~ERR 42601 both default and identity specified",
                ),
                (
                    "CREATE TABLE idt5 (id int GENERATED BY DEFAULT AS IDENTITY DEFAULT 1)",
                    "~ERR 42601 both default and identity specified",
                ),
            ],
        );
    }
}

/// Unnamed CHECKs are named as PostgreSQL names them (`t_col_check` for one column read,
/// else `t_check`, numbered when taken), `pg_constraint.conkey` lists the columns a CHECK
/// reads, and `c.conkey[1]` subscripts a qualified column (Django's constraint
/// introspection reads both): checked against PostgreSQL 15.
#[test]
fn check_constraints_are_named_and_listed_as_postgresql_does() {
    script(
        2,
        &[
            (
                "CREATE TABLE ck (a int CHECK (a > 0), b int, c int CHECK (b > c), CHECK (a < 100), \
                 CHECK (b > 0), CHECK (a + b > 0), CONSTRAINT named CHECK (c > 0), CHECK (a > 1))",
                "CREATE TABLE ",
            ),
            ("ALTER TABLE ck ADD CHECK (c < 50)", "ALTER TABLE "),
            ("ALTER TABLE ck ADD COLUMN d int CHECK (d > 0)", "ALTER TABLE "),
            ("ALTER TABLE ck ADD CHECK (a + c > 0)", "ALTER TABLE "),
            (
                "SELECT conname, conkey FROM pg_constraint WHERE conrelid = 'ck'::regclass \
                 ORDER BY conname",
                "conname:19,conkey:1005 => ck_a_check|{1} / ck_a_check1|{1} / ck_a_check2|{1} / \
                 ck_b_check|{2} / ck_c_check|{3} / ck_check|{2,3} / ck_check1|{1,2} / \
                 ck_check2|{1,3} / ck_d_check|{4} / named|{3} [SELECT 10]",
            ),
            (
                "SELECT c.conname, c.conkey[1] FROM pg_constraint c \
                 WHERE c.conrelid = 'ck'::regclass ORDER BY 1 LIMIT 2",
                "conname:19,conkey:21 => ck_a_check|1 / ck_a_check1|1 [SELECT 2]",
            ),
        ],
    );
}

/// The integer bit operators `&`, `|`, `#`, `<<`, `>>`, `~`, in their operand's width
/// (checked against PostgreSQL 15, wrap-around of shifts included).
#[test]
fn bitwise_operators_on_integers() {
    script(
        1,
        &[
            (
                "SELECT 12 & 10, 12 | 3, 12 # 10, 1 << 4, 256 >> 2, ~5",
                "?column?:23,?column?:23,?column?:23,?column?:23,?column?:23,?column?:23 => \
                 8|15|6|16|64|-6 [SELECT 1]",
            ),
            (
                "SELECT 1::int2 << 15, 1 << 31, 1 << 33, 1::int8 << 40, -8 >> 1, 7::int2 & 3::int8",
                "?column?:21,?column?:23,?column?:23,?column?:20,?column?:23,?column?:20 => \
                 -32768|-2147483648|2|1099511627776|-4|3 [SELECT 1]",
            ),
            (
                "SELECT 1.5 & 1",
                "ERR 42883 operator does not exist: numeric & integer",
            ),
            (
                "SELECT ~ 'x'::text",
                "ERR 42883 operator does not exist: ~ text",
            ),
            ("SELECT NULL::int & 1", "?column?:23 => NULL [SELECT 1]"),
        ],
    );
}

/// Functions in FROM read the FROM items before them (implicitly LATERAL, as in PostgreSQL),
/// and unnest reads a catalog column's integer vector: Django's constraint and index
/// introspection queries (`get_constraints`, verbatim) give PostgreSQL 15's answer.
#[test]
fn django_constraint_introspection_queries() {
    script(
        2,
        &[
            (
                "SELECT t.n, g FROM (VALUES (1), (3)) t(n), generate_series(1, t.n) g ORDER BY 1, 2",
                "n:23,g:23 => 1|1 / 3|1 / 3|2 / 3|3 [SELECT 4]",
            ),
            (
                "SELECT t.n, u.* FROM (VALUES ('{5,6}'::int[])) t(n), unnest(t.n) WITH ORDINALITY u",
                "n:1007,u:23,ordinality:20 => {5,6}|5|1 / {5,6}|6|2 [SELECT 2]",
            ),
            ("create table dp (id int primary key, name text unique)", "~"),
            ("create table dc (id int primary key, pid int references dp, code int, check (code > 0), unique (pid, code))", "~"),
            ("create index dc_code on dc (code)", "~"),
            ("SELECT \
         c.conname, \
         array( \
             SELECT attname \
             FROM unnest(c.conkey) WITH ORDINALITY cols(colid, arridx) \
             JOIN pg_attribute AS ca ON cols.colid = ca.attnum \
             WHERE ca.attrelid = c.conrelid \
             ORDER BY cols.arridx \
         ), \
         c.contype, \
         (SELECT fkc.relname || '.' || fka.attname \
         FROM pg_attribute AS fka \
         JOIN pg_class AS fkc ON fka.attrelid = fkc.oid \
         WHERE fka.attrelid = c.confrelid AND fka.attnum = c.confkey[1]), \
         cl.reloptions \
     FROM pg_constraint AS c \
     JOIN pg_class AS cl ON c.conrelid = cl.oid \
     WHERE cl.relname = 'dc' AND pg_catalog.pg_table_is_visible(cl.oid) \
     ORDER BY 1", "conname:19,array:1003,contype:25,?column?:25,reloptions:1009 => \
                 dc_code_check|{code}|c|NULL|NULL / dc_pid_code_key|{pid,code}|u|NULL|NULL / \
                 dc_pid_fkey|{pid}|f|dp.id|NULL / dc_pkey|{id}|p|NULL|NULL [SELECT 4]"),
            ("SELECT \
         indexname, \
         array_agg(attname ORDER BY arridx), \
         indisunique, \
         indisprimary, \
         array_agg(ordering ORDER BY arridx), \
         amname, \
         exprdef, \
         s2.attoptions \
     FROM ( \
         SELECT \
             c2.relname as indexname, idx.*, attr.attname, am.amname, \
             CASE \
                 WHEN idx.indexprs IS NOT NULL THEN \
                     pg_get_indexdef(idx.indexrelid) \
             END AS exprdef, \
             CASE am.amname \
                 WHEN 'btree' THEN \
                     CASE (option & 1) \
                         WHEN 1 THEN 'DESC' ELSE 'ASC' \
                     END \
             END as ordering, \
             c2.reloptions as attoptions \
         FROM ( \
             SELECT * \
             FROM \
                 pg_index i, \
                 unnest(i.indkey, i.indoption) \
                     WITH ORDINALITY koi(key, option, arridx) \
         ) idx \
         LEFT JOIN pg_class c ON idx.indrelid = c.oid \
         LEFT JOIN pg_class c2 ON idx.indexrelid = c2.oid \
         LEFT JOIN pg_am am ON c2.relam = am.oid \
         LEFT JOIN \
             pg_attribute attr ON attr.attrelid = c.oid AND attr.attnum = idx.key \
         WHERE c.relname = 'dc' AND pg_catalog.pg_table_is_visible(c.oid) \
     ) s2 \
     GROUP BY indexname, indisunique, indisprimary, amname, exprdef, attoptions \
     ORDER BY 1", "indexname:19,array_agg:1003,indisunique:16,indisprimary:16,array_agg:1009,amname:19,\
                 exprdef:25,attoptions:1009 => dc_code|{code}|f|f|{ASC}|btree|NULL|NULL / \
                 dc_pid_code_key|{pid,code}|t|f|{ASC,ASC}|btree|NULL|NULL / \
                 dc_pkey|{id}|t|t|{ASC}|btree|NULL|NULL [SELECT 3]"),
        ],
    );
}

/// `information_schema`'s constraint views list primary keys, UNIQUE, FOREIGN KEY and CHECK
/// constraints (NOT NULL ones as CHECKs) as PostgreSQL 15's do (checked against it).
#[test]
fn information_schema_constraint_views() {
    script(
        2,
        &[
            (
                "CREATE TABLE ip (id int PRIMARY KEY, code text UNIQUE, k int NOT NULL)",
                "CREATE TABLE ",
            ),
            (
                "CREATE TABLE ic (id int, pid int REFERENCES ip ON DELETE CASCADE DEFERRABLE, \
                 pcode text, CONSTRAINT ic_code FOREIGN KEY (pcode) REFERENCES ip (code) \
                 MATCH FULL ON UPDATE SET NULL, CHECK (id > 0), UNIQUE (pid, pcode))",
                "CREATE TABLE ",
            ),
            (
                "SELECT constraint_name, constraint_type, is_deferrable, nulls_distinct \
                 FROM information_schema.table_constraints WHERE table_name = 'ic' \
                 AND constraint_type <> 'CHECK' ORDER BY 1",
                "~ic_code|FOREIGN KEY|NO|NULL / ic_pid_fkey|FOREIGN KEY|YES|NULL / \
                 ic_pid_pcode_key|UNIQUE|NO|YES [SELECT 3]",
            ),
            (
                "SELECT constraint_name, column_name, ordinal_position, \
                 position_in_unique_constraint FROM information_schema.key_column_usage \
                 WHERE table_name = 'ic' ORDER BY 1, 3",
                "~ic_code|pcode|1|1 / ic_pid_fkey|pid|1|1 / ic_pid_pcode_key|pid|1|NULL / \
                 ic_pid_pcode_key|pcode|2|NULL [SELECT 4]",
            ),
            (
                "SELECT constraint_name, unique_constraint_name, match_option, update_rule, \
                 delete_rule FROM information_schema.referential_constraints ORDER BY 1",
                "~ic_code|ip_code_key|FULL|SET NULL|NO ACTION / \
                 ic_pid_fkey|ip_pkey|NONE|NO ACTION|CASCADE [SELECT 2]",
            ),
            (
                "SELECT table_name, column_name, constraint_name \
                 FROM information_schema.constraint_column_usage ORDER BY 3, 2",
                "~ip|code|ic_code / ic|id|ic_id_check / ip|id|ic_pid_fkey / \
                 ic|pcode|ic_pid_pcode_key / ic|pid|ic_pid_pcode_key / ip|code|ip_code_key / \
                 ip|id|ip_pkey [SELECT 7]",
            ),
            (
                "SELECT check_clause FROM information_schema.check_constraints ORDER BY 1",
                "~((id > 0)) / id IS NOT NULL / k IS NOT NULL [SELECT 3]",
            ),
        ],
    );
}

/// Dropping the key a foreign key references (its primary key, UNIQUE constraint or unique
/// index) fails with 2BP01, or with CASCADE drops the foreign key too (checked against
/// PostgreSQL 15).
#[test]
fn dropping_a_referenced_key_cascades_to_its_foreign_keys() {
    script(
        2,
        &[
            ("CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE, x int)", "CREATE TABLE "),
            ("CREATE UNIQUE INDEX p_x ON p (x)", "CREATE INDEX "),
            (
                "CREATE TABLE c (pid int REFERENCES p, pcode text REFERENCES p (code), \
                 px int REFERENCES p (x))",
                "CREATE TABLE ",
            ),
            ("ALTER TABLE p DROP CONSTRAINT p_pkey", "ERR 2BP01 cannot drop constraint p_pkey on table p because other objects depend on it [DETAIL: constraint c_pid_fkey on table c depends on index p_pkey]"),
            ("ALTER TABLE p DROP CONSTRAINT p_code_key", "~ERR 2BP01"),
            ("DROP INDEX p_x", "~ERR 2BP01 cannot drop index p_x because other objects depend on it"),
            ("ALTER TABLE p DROP CONSTRAINT p_pkey CASCADE", "ALTER TABLE "),
            ("ALTER TABLE p DROP CONSTRAINT p_code_key CASCADE", "ALTER TABLE "),
            (
                "SELECT conname FROM pg_constraint WHERE conrelid = 'c'::regclass",
                "conname:19 => c_px_fkey [SELECT 1]",
            ),
            ("INSERT INTO c VALUES (99, 'zz', NULL)", "INSERT 0 1"),
            ("INSERT INTO c VALUES (NULL, NULL, 5)", "~ERR 23503"),
            ("DROP INDEX p_x CASCADE", "DROP INDEX "),
            ("INSERT INTO c VALUES (NULL, NULL, 5)", "INSERT 0 1"),
        ],
    );
}

/// DECLARE, FETCH (with and without FROM), MOVE and CLOSE as PostgreSQL 15 runs them.
#[test]
fn cursors_fetch_and_move() {
    script(
        2,
        &[
            ("CREATE TABLE cm (id int PRIMARY KEY)", "CREATE TABLE "),
            (
                "INSERT INTO cm SELECT g FROM generate_series(1, 10) g",
                "INSERT 0 10",
            ),
            (
                "DECLARE c0 CURSOR FOR SELECT 1",
                "ERR 25P01 DECLARE CURSOR can only be used in transaction blocks",
            ),
            ("BEGIN", "BEGIN"),
            (
                "DECLARE c SCROLL CURSOR FOR SELECT id FROM cm ORDER BY id",
                "DECLARE CURSOR",
            ),
            ("MOVE 3 IN c", "MOVE 3"),
            ("FETCH c", "id:23 => 4 [FETCH 1]"),
            ("MOVE FORWARD ALL FROM c", "MOVE 6"),
            ("FETCH PRIOR FROM c", "id:23 => 10 [FETCH 1]"),
            ("MOVE BACKWARD 2 c", "MOVE 2"),
            ("FETCH 2 c", "id:23 => 9 / 10 [FETCH 2]"),
            ("FETCH ABSOLUTE 8 FROM c", "id:23 => 8 [FETCH 1]"),
            // Negative counts (outputs as PostgreSQL 15 gives them).
            ("FETCH ABSOLUTE -2 FROM c", "id:23 => 9 [FETCH 1]"),
            ("FETCH RELATIVE -1 FROM c", "id:23 => 8 [FETCH 1]"),
            ("FETCH -2 FROM c", "id:23 => 7 / 6 [FETCH 2]"),
            ("FETCH BACKWARD -2 FROM c", "id:23 => 7 / 8 [FETCH 2]"),
            ("MOVE ABSOLUTE -1 IN c", "MOVE 1"),
            ("MOVE -2 FROM c", "MOVE 2"),
            ("FETCH c", "id:23 => 9 [FETCH 1]"),
            ("CLOSE c", "CLOSE CURSOR"),
            ("FETCH c", "ERR 34000 cursor \"c\" does not exist"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("DECLARE d CURSOR FOR SELECT 1", "DECLARE CURSOR"),
            (
                "DECLARE d CURSOR FOR SELECT 1",
                "ERR 42P03 cursor \"d\" already exists",
            ),
            ("ROLLBACK", "ROLLBACK"),
        ],
    );
}

/// A foreign key referencing a row the transaction wrote skips its lookup; a DELETE, a
/// moved key or a ROLLBACK TO makes the transaction forget those rows, so a reference to a
/// row it deleted or rolled back still fails.
#[test]
fn references_to_rows_the_transaction_wrote() {
    script(
        2,
        &[
            (
                "CREATE TABLE wp (id int PRIMARY KEY, v int)",
                "CREATE TABLE ",
            ),
            ("CREATE TABLE wc (pid int REFERENCES wp)", "CREATE TABLE "),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO wp VALUES (1, 0), (2, 0), (3, 0)", "INSERT 0 3"),
            ("INSERT INTO wc VALUES (1)", "INSERT 0 1"),
            ("UPDATE wp SET v = 1 WHERE id = 2", "UPDATE 1"),
            ("INSERT INTO wc VALUES (2)", "INSERT 0 1"),
            ("DELETE FROM wp WHERE id = 3", "DELETE 1"),
            ("INSERT INTO wc VALUES (3)", "~ERR 23503"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO wp VALUES (4, 0)", "INSERT 0 1"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("INSERT INTO wp VALUES (5, 0)", "INSERT 0 1"),
            ("ROLLBACK TO s", "ROLLBACK"),
            ("INSERT INTO wc VALUES (5)", "~ERR 23503"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO wp VALUES (6, 0)", "INSERT 0 1"),
            ("UPDATE wp SET id = 7 WHERE id = 6", "UPDATE 1"),
            ("INSERT INTO wc VALUES (6)", "~ERR 23503"),
            ("ROLLBACK", "ROLLBACK"),
            ("SELECT count(*) FROM wc", "count:20 => 0 [SELECT 1]"),
        ],
    );
}

/// Set-returning functions in a select list run as PostgreSQL's ProjectSet does: once per
/// row of the longest, the others padded with NULL, each input row repeated (outputs as
/// PostgreSQL 15 gives them).
#[test]
fn set_returning_functions_in_a_select_list() {
    for shards in [1, 2] {
        script(
            shards,
            &[
                (
                    "SELECT generate_series(1, 3)",
                    "generate_series:23 => 1 / 2 / 3 [SELECT 3]",
                ),
                (
                    "SELECT unnest(ARRAY[1, 2]) AS u, generate_series(1, 3), 'x' AS k",
                    "u:23,generate_series:23,k:25 => 1|1|x / 2|2|x / NULL|3|x [SELECT 3]",
                ),
                (
                    "SELECT generate_series(1, 2) * 10 + 1",
                    "?column?:23 => 11 / 21 [SELECT 2]",
                ),
                (
                    "CREATE TABLE srf (id int PRIMARY KEY, n int)",
                    "CREATE TABLE ",
                ),
                (
                    "INSERT INTO srf SELECT generate_series(1, 4), 7",
                    "INSERT 0 4",
                ),
                (
                    "SELECT id, generate_series(1, id % 3) AS g FROM srf ORDER BY 1, 2",
                    "id:23,g:23 => 1|1 / 2|1 / 2|2 / 4|1 [SELECT 4]",
                ),
                (
                    "SELECT *, unnest(ARRAY['a', 'b']) AS u FROM srf WHERE id = 1 ORDER BY u",
                    "id:23,n:23,u:25 => 1|7|a / 1|7|b [SELECT 2]",
                ),
                (
                    "SELECT generate_series(1, 3) ORDER BY 1 DESC LIMIT 2",
                    "generate_series:23 => 3 / 2 [SELECT 2]",
                ),
                ("SELECT unnest(ARRAY[]::int[])", "unnest:23 =>  [SELECT 0]"),
                (
                    "SELECT (SELECT generate_series(1, 1)) FROM srf WHERE id = 2",
                    "generate_series:23 => 1 [SELECT 1]",
                ),
                (
                    "SELECT 1 FROM srf WHERE generate_series(1, 2) > 1",
                    "ERR 0A000 set-returning functions are not allowed in WHERE",
                ),
            ],
        );
    }
}

/// LATERAL subqueries (top rows per group, PostgREST's embedded resources): run per row of
/// the FROM items before them, INNER or LEFT joined (outputs as PostgreSQL 15 gives them).
#[test]
fn lateral_subqueries_run_per_row_of_the_items_before_them() {
    for shards in [1, 2] {
        script(
            shards,
            &[
                ("CREATE TABLE cu (id int PRIMARY KEY, name text)", "CREATE TABLE "),
                ("CREATE TABLE ord (id int PRIMARY KEY, cid int, amt int)", "CREATE TABLE "),
                ("INSERT INTO cu VALUES (1, 'a'), (2, 'b'), (3, 'c')", "INSERT 0 3"),
                (
                    "INSERT INTO ord VALUES (10, 1, 5), (11, 1, 7), (12, 1, 3), (13, 2, 9)",
                    "INSERT 0 4",
                ),
                (
                    "SELECT cu.name, o.id FROM cu, LATERAL (SELECT * FROM ord WHERE ord.cid = cu.id \
                     ORDER BY amt DESC LIMIT 2) o ORDER BY 1, o.amt DESC",
                    "name:25,id:23 => a|11 / a|10 / b|13 [SELECT 3]",
                ),
                (
                    "SELECT cu.name, o.id FROM cu LEFT JOIN LATERAL (SELECT id FROM ord \
                     WHERE ord.cid = cu.id ORDER BY id LIMIT 1) o ON true ORDER BY 1",
                    "name:25,id:23 => a|10 / b|13 / c|NULL [SELECT 3]",
                ),
                (
                    "SELECT c.name, x.n FROM cu c JOIN LATERAL (SELECT count(*) AS n FROM ord o \
                     WHERE o.cid = c.id) x ON x.n > 1 ORDER BY 1",
                    "name:25,n:20 => a|3 [SELECT 1]",
                ),
                (
                    "SELECT id, d FROM cu CROSS JOIN LATERAL (SELECT cu.id * 2 AS d) s ORDER BY 1",
                    "id:23,d:23 => 1|2 / 2|4 / 3|6 [SELECT 3]",
                ),
                (
                    "SELECT * FROM cu RIGHT JOIN LATERAL (SELECT * FROM ord WHERE cid = cu.id) o ON true",
                    "~ERR 42P10",
                ),
                // The WHERE filters the items before first: the subquery never sees id 3.
                (
                    "SELECT id, q FROM cu, LATERAL (SELECT 10 / (cu.id - 3) AS q) s WHERE cu.id <> 3 ORDER BY 1",
                    "id:23,q:23 => 1|-5 / 2|-10 [SELECT 2]",
                ),
                // So for a function reading an earlier item (implicitly LATERAL).
                (
                    "SELECT id, g FROM cu, generate_series(1, 2 / (cu.id - 3)) g WHERE cu.id = 1",
                    "id:23,g:23 =>  [SELECT 0]",
                ),
                (
                    "SELECT count(*) FROM cu, generate_series(1, 4 / (3 - cu.id)) g WHERE cu.id < 3",
                    "count:20 => 6 [SELECT 1]",
                ),
            ],
        );
    }
}

/// Settings are transactional, as in PostgreSQL: ROLLBACK (and ROLLBACK TO) undo a block's
/// SETs, COMMIT keeps them, SET LOCAL lasts until the block ends (outside one it warns and
/// does nothing). Outputs as PostgreSQL 15 gives them.
#[test]
fn settings_are_transactional_and_set_local_ends_with_its_block() {
    let show = |v: &'static str| -> String { format!("statement_timeout:25 => {v} [SHOW]") };
    let steps: Vec<(String, String)> = vec![
        ("BEGIN".into(), "BEGIN ".into()),
        ("SET LOCAL statement_timeout = '1s'".into(), "SET ".into()),
        ("SHOW statement_timeout".into(), show("1s")),
        ("COMMIT".into(), "COMMIT ".into()),
        ("SHOW statement_timeout".into(), show("0")),
        ("SET statement_timeout = '2s'".into(), "SET ".into()),
        ("BEGIN".into(), "BEGIN ".into()),
        ("SET statement_timeout = '4s'".into(), "SET ".into()),
        ("ROLLBACK".into(), "ROLLBACK ".into()),
        ("SHOW statement_timeout".into(), show("2s")),
        ("BEGIN".into(), "BEGIN ".into()),
        ("SAVEPOINT a".into(), "SAVEPOINT ".into()),
        ("SET statement_timeout = '5s'".into(), "SET ".into()),
        ("ROLLBACK TO a".into(), "ROLLBACK ".into()),
        ("SHOW statement_timeout".into(), show("2s")),
        ("SET statement_timeout = '6s'".into(), "SET ".into()),
        ("SET LOCAL statement_timeout = '7s'".into(), "SET ".into()),
        ("COMMIT".into(), "COMMIT ".into()),
        ("SHOW statement_timeout".into(), show("6s")),
        ("BEGIN".into(), "BEGIN ".into()),
        ("SET LOCAL app.user_id = '5'".into(), "SET ".into()),
        (
            "SELECT current_setting('app.user_id')".into(),
            "current_setting:25 => 5 [SELECT 1]".into(),
        ),
        ("ROLLBACK".into(), "ROLLBACK ".into()),
        (
            "SELECT current_setting('app.user_id', true) = ''".into(),
            "?column?:16 => t [SELECT 1]".into(),
        ),
        ("SET LOCAL statement_timeout = '8s'".into(), "SET ".into()),
        ("SHOW statement_timeout".into(), show("6s")),
        // set_config outside a block: the statement is its transaction.
        (
            "SELECT set_config('statement_timeout', '9s', false) FROM nosuch".into(),
            "~ERR 42P01".into(),
        ),
        ("SHOW statement_timeout".into(), show("6s")),
        (
            "SELECT set_config('statement_timeout', '9s', true)".into(),
            "set_config:25 => 9s [SELECT 1]".into(),
        ),
        ("SHOW statement_timeout".into(), show("6s")),
        (
            "SELECT set_config('statement_timeout', '10s', false)".into(),
            "set_config:25 => 10s [SELECT 1]".into(),
        ),
        ("SHOW statement_timeout".into(), show("10s")),
        // Computed arguments: evaluated once, before the query runs.
        (
            "SELECT set_config('app.who', 'user' || '-' || (2 * 3)::text, false)".into(),
            "set_config:25 => user-6 [SELECT 1]".into(),
        ),
        (
            "SELECT set_config('app.echo', current_setting('app.who') || '!', false)".into(),
            "set_config:25 => user-6! [SELECT 1]".into(),
        ),
        (
            "SELECT current_setting('app.echo')".into(),
            "current_setting:25 => user-6! [SELECT 1]".into(),
        ),
        (
            "SELECT set_config('app.' || 'joined', upper('x'), false)".into(),
            "set_config:25 => X [SELECT 1]".into(),
        ),
        (
            "SELECT current_setting('app.joined')".into(),
            "current_setting:25 => X [SELECT 1]".into(),
        ),
        // One that needs the query's rows stays refused.
        (
            "SELECT set_config('app.who', relname, false) FROM pg_class".into(),
            "~ERR 0A000".into(),
        ),
        (
            "SELECT set_config('app.who', (SELECT 'q'), false)".into(),
            "~ERR 0A000".into(),
        ),
        (
            "SELECT current_setting('app.who')".into(),
            "current_setting:25 => user-6 [SELECT 1]".into(),
        ),
    ];
    let steps: Vec<(&str, &str)> = steps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    script(1, &steps);
}

/// Statements read at the token level (forms sqlparser cannot parse) keep their string
/// literals as written: a doubled quote stays one quote inside the string, never ends it.
#[test]
fn token_level_rewrites_keep_quoted_strings_whole() {
    script(
        2,
        &[
            (
                "CREATE TABLE q1 (id int PRIMARY KEY, name text CHECK (name <> 'O''Brien'))",
                "CREATE TABLE ",
            ),
            ("INSERT INTO q1 VALUES (1, 'x''y'), (2, 'z')", "INSERT 0 2"),
            ("BEGIN", "BEGIN "),
            (
                "SELECT id FROM q1 WHERE name = 'z'' OR ''1''=''1' FOR KEY SHARE",
                "id:23 =>  [SELECT 0]",
            ),
            (
                "SELECT id FROM q1 WHERE name = 'x''y' FOR NO KEY UPDATE",
                "id:23 => 1 [SELECT 1]",
            ),
            ("COMMIT", "COMMIT "),
            ("BEGIN DEFERRABLE", "BEGIN "),
            ("SELECT 'a''b' AS s", "s:25 => a'b [SELECT 1]"),
            ("COMMIT", "COMMIT "),
            // A CHECK's text renamed with its column keeps its literal.
            ("ALTER TABLE q1 RENAME COLUMN name TO nm", "ALTER TABLE "),
            ("INSERT INTO q1 VALUES (3, 'O''Brien')", "~ERR 23514"),
            ("INSERT INTO q1 VALUES (3, 'O''Neil')", "INSERT 0 1"),
        ],
    );
}
