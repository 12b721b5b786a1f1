//! pgbench unmodified (Debian's postgresql-15): `pgbench -i` (COPY FROM STDIN, ALTER TABLE ADD
//! PRIMARY KEY on the loaded tables), then the built-in TPC-B script and `-S` in all three
//! query modes across two shards, with the TPC-B consistency check after each run: the sum of
//! `pgbench_history.delta` equals the change in the sums of account, teller and branch
//! balances. Also COPY through psql: text and CSV, a malformed line (its line number in the
//! error, nothing loaded), and COPY TO STDOUT reading back what was loaded.

use std::process::Command;

use helios_tests::server::{which, HeliosServer, ServerOpts};

fn pg_tool(name: &str) -> Option<std::path::PathBuf> {
    which(name).or_else(|| {
        let path = std::path::PathBuf::from(format!("/usr/lib/postgresql/15/bin/{name}"));
        path.is_file().then_some(path)
    })
}

/// Runs psql with `-c` for each statement; (success, stdout, stderr).
fn psql(port: u16, statements: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let psql = pg_tool("psql").expect("psql");
    let mut cmd = Command::new(psql);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
        .env("PGCONNECT_TIMEOUT", "10");
    for s in statements {
        cmd.args(["-c", s]);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run psql");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(data) = stdin {
            input.write_all(data.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("psql output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A helios on two shards for the psql tests; None (the test skips) where psql is missing.
fn server_for_psql() -> Option<HeliosServer> {
    if pg_tool("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs postgresql-15)");
        return None;
    }
    Some(HeliosServer::start(ServerOpts::default().shards(2)))
}

fn query(port: u16, sql: &str) -> String {
    let (ok, out, err) = psql(port, &[sql], None);
    assert!(ok, "{sql}: {err}");
    out.trim().to_string()
}

/// (sum of history deltas, of account, teller and branch balances, history rows).
fn sums(port: u16) -> Vec<i64> {
    query(
        port,
        "SELECT (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
                (SELECT sum(abalance) FROM pgbench_accounts),
                (SELECT sum(tbalance) FROM pgbench_tellers),
                (SELECT sum(bbalance) FROM pgbench_branches),
                (SELECT count(*) FROM pgbench_history)",
    )
    .split('|')
    .map(|v| v.parse().unwrap_or_else(|_| panic!("a number: {v}")))
    .collect()
}

#[test]
fn pgbench_initializes_and_runs_tpcb_in_every_query_mode_with_consistent_balances_that_survive_kill_9(
) {
    pgbench_round(2);
}

/// The same on one shard, the default on a 2-core machine: a CPU is then left to no shard,
/// and PostgreSQL replies go out through io_uring's worker there (`ring::Sends::Offloaded`)
/// rather than from the shard, as they do with a shard on every CPU above.
#[test]
fn pgbench_on_one_shard_with_replies_sent_off_the_shard() {
    pgbench_round(1);
}

fn pgbench_round(shards: usize) {
    let Some(pgbench) = pg_tool("pgbench") else {
        eprintln!("pgbench not installed; skipping (tools/test.sh installs postgresql-15)");
        return;
    };
    let mut server = HeliosServer::start(ServerOpts::default().shards(shards));
    let port = server.pg_port();
    let run = |args: &[&str]| {
        let out = Command::new(&pgbench)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run pgbench");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "pgbench {args:?}: {stdout}\n{stderr}");
        stdout
    };
    run(&["-i", "-s", "1"]);
    assert_eq!(
        query(
            port,
            "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_tellers),
                    (SELECT count(*) FROM pgbench_branches), (SELECT count(*) FROM pgbench_history)"
        ),
        "100000|10|1|0"
    );
    // The primary keys pgbench added are enforced.
    let (ok, _, err) = psql(
        port,
        &["INSERT INTO pgbench_accounts VALUES (7, 1, 0, '')"],
        None,
    );
    assert!(!ok && err.contains("duplicate key"), "{err}");
    for mode in ["simple", "extended", "prepared"] {
        let before = sums(port);
        let stdout = run(&["-c", "8", "-j", "2", "-t", "40", "-M", mode]);
        assert!(
            stdout.contains("number of transactions actually processed: 320/320"),
            "{mode}: {stdout}"
        );
        let after = sums(port);
        // pgbench empties the history table as each run starts.
        let delta = after[0];
        assert_eq!(after[4], 320, "{mode}: one history row per transaction");
        assert_eq!(
            after[1] - before[1],
            delta,
            "{mode}: accounts {before:?} {after:?}"
        );
        assert_eq!(
            after[2] - before[2],
            delta,
            "{mode}: tellers {before:?} {after:?}"
        );
        assert_eq!(
            after[3] - before[3],
            delta,
            "{mode}: branches {before:?} {after:?}"
        );
        let stdout = run(&["-S", "-c", "8", "-j", "2", "-t", "100", "-M", mode]);
        assert!(
            stdout.contains("number of transactions actually processed: 800/800"),
            "{mode} -S: {stdout}"
        );
    }
    assert!(server.is_alive());
    // Everything acknowledged survives kill -9: the tables the load wrote straight into
    // table files (its COPY, then ADD PRIMARY KEY's rewrite of them), and the transactions.
    let before = sums(port);
    server.restart();
    let port = server.pg_port();
    assert_eq!(sums(port), before, "balances and history after kill -9");
    assert_eq!(
        query(
            port,
            "SELECT count(*), count(DISTINCT aid) FROM pgbench_accounts"
        ),
        "100000|100000"
    );
    let (ok, _, err) = psql(
        port,
        &["INSERT INTO pgbench_accounts VALUES (7, 1, 0, '')"],
        None,
    );
    assert!(!ok && err.contains("duplicate key"), "{err}");
}

/// `COPY ... FROM STDIN WHERE condition` (PostgreSQL 12+): a row the condition is not true
/// for is skipped before the table's constraints are checked; the condition sees the
/// columns' defaults. Messages and positions as PostgreSQL 15 gives them.
#[test]
fn copy_from_where_skips_rows_the_condition_rejects() {
    let Some(mut server) = server_for_psql() else {
        return;
    };
    let port = server.pg_port();
    query(
        port,
        "CREATE TABLE cw (a int PRIMARY KEY, b text NOT NULL, c int DEFAULT 7)",
    );
    // Row 3's NULL b would violate NOT NULL, but the condition skips it first.
    let (ok, out, err) = psql(
        port,
        &["COPY cw (a, b) FROM STDIN WHERE a > 1 AND c = 7 AND a <> 3"],
        Some("1\tx\n2\ty\n3\t\\N\n4\tz\n\\.\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 2");
    assert_eq!(
        query(port, "SELECT a, b, c FROM cw ORDER BY a"),
        "2|y|7\n4|z|7"
    );
    // CSV, a NULL test, and a skipped row that would be a duplicate key.
    let (ok, out, err) = psql(
        port,
        &["COPY cw FROM STDIN (FORMAT csv) WHERE b <> 'skip'"],
        Some("2,skip,1\n5,five,1\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 1");
    // COPY FREEZE into a table the block truncated takes the bulk path; the WHERE holds.
    let (ok, out, err) = psql(
        port,
        &[
            "BEGIN",
            "TRUNCATE cw",
            "COPY cw FROM STDIN (FREEZE) WHERE c IS NULL OR c < 5",
            "COMMIT",
        ],
        Some("10\tten\t1\n11\televen\t9\n12\ttwelve\t\\N\n\\.\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("COPY 2"), "{out}");
    assert_eq!(query(port, "SELECT a FROM cw ORDER BY a"), "10\n12");
    // A condition that fails on a row fails the COPY, naming the line; nothing stays.
    let (ok, _, err) = psql(
        port,
        &["COPY cw FROM STDIN WHERE a / (a - 21) = 1"],
        Some("20\tq\t1\n21\tq\t1\n"),
    );
    assert!(!ok);
    assert!(err.contains("division by zero"), "{err}");
    assert!(err.contains("COPY cw, line 2"), "{err}");
    assert_eq!(query(port, "SELECT count(*) FROM cw"), "2");
    for (sql, message, pointer) in [
        (
            "COPY cw TO STDOUT WHERE a > 1",
            "ERROR:  WHERE clause not allowed with COPY TO",
            "LINE 1: COPY cw TO STDOUT WHERE a > 1\n                          ^",
        ),
        (
            "COPY cw FROM STDIN WHERE a",
            "ERROR:  argument of WHERE must be type boolean, not type integer",
            "LINE 1: COPY cw FROM STDIN WHERE a\n                                 ^",
        ),
        (
            "COPY cw FROM STDIN WHERE count(*) > 1",
            "ERROR:  aggregate functions are not allowed in COPY FROM WHERE conditions",
            "LINE 1: COPY cw FROM STDIN WHERE count(*) > 1\n                                 ^",
        ),
        (
            "COPY cw FROM STDIN WHERE nosuch > 1",
            "ERROR:  column \"nosuch\" does not exist",
            "LINE 1: COPY cw FROM STDIN WHERE nosuch > 1\n                                 ^",
        ),
        (
            "COPY cw FROM STDIN WHERE a >;",
            "ERROR:  syntax error at or near \";\"",
            "LINE 1: COPY cw FROM STDIN WHERE a >;\n                                    ^",
        ),
        (
            "COPY cw FROM STDIN WHERE a = $1",
            "ERROR:  there is no parameter $1",
            "LINE 1: COPY cw FROM STDIN WHERE a = $1\n                                     ^",
        ),
        (
            "COPY cw FROM STDIN WHERE a IN (SELECT 1)",
            "ERROR:  cannot use subquery in COPY FROM WHERE condition",
            "",
        ),
    ] {
        let (ok, _, err) = psql(port, &[sql], Some("\\.\n"));
        assert!(!ok, "{sql}");
        assert!(err.contains(message), "{sql}: {err}");
        assert!(err.contains(pointer), "{sql}: {err}");
    }
    assert!(server.is_alive(), "{}", server.log());
}

#[test]
fn copy_loads_text_and_csv_refuses_malformed_lines_whole_and_reads_back() {
    let Some(mut server) = server_for_psql() else {
        return;
    };
    let port = server.pg_port();
    query(
        port,
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(6,2), tag text DEFAULT 'none')",
    );
    // Text format: tabs, \N, escapes; the column list leaves `tag` to its default.
    let text = "1\tone\t1.50\n2\t\\N\t2.00\n3\ttab\\there\t\\N\n\\.\n";
    let (ok, out, err) = psql(
        port,
        &["COPY items (id, name, price) FROM STDIN"],
        Some(text),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 3");
    // CSV with a header, quotes, an embedded newline and an empty unquoted field as NULL.
    let csv = "id;name;price\n4;\"semi;colon\";4.00\n5;\"two\nlines\";\n";
    let (ok, out, err) = psql(
        port,
        &["COPY items (id, name, price) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';')"],
        Some(csv),
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 2");
    // FREEZE wants a table its transaction created or truncated, as in PostgreSQL, which
    // says so once copy-in has begun: psql, reading a script, sends the data (line 2) and
    // reports the error at its end (line 3), instead of running the data as SQL.
    let script =
        std::env::temp_dir().join(format!("helios-freeze-{}-{port}.sql", std::process::id()));
    std::fs::write(&script, "COPY items FROM STDIN (FREEZE);\n9\tx\t1\n\\.\n").expect("script");
    let include = format!("\\i {}", script.display());
    let (ok, _, err) = psql(port, &[&include], None);
    let _ = std::fs::remove_file(&script);
    assert!(!ok);
    assert!(
        err.contains(".sql:3: ERROR:  cannot perform COPY FREEZE because the table was not created or truncated in the current subtransaction"),
        "{err}"
    );
    assert_eq!(
        query(
            port,
            "SELECT count(*), count(name), count(price), min(tag) FROM items"
        ),
        "5|4|3|none"
    );
    // A malformed third line: the error names it, and none of the COPY's rows stay.
    let bad = "10\tok\t1\n11\tok\t2\n12\tbad\tnot-a-number\n13\tok\t3\n";
    let (ok, _, err) = psql(
        port,
        &["COPY items (id, name, price) FROM STDIN"],
        Some(bad),
    );
    assert!(!ok);
    assert!(
        err.contains("invalid input syntax for type numeric"),
        "{err}"
    );
    assert!(err.contains("COPY items, line 3, column price"), "{err}");
    let (ok, _, err) = psql(
        port,
        &["COPY items FROM STDIN"],
        Some("20\tx\t1\textra\tfield\n"),
    );
    assert!(
        !ok && err.contains("extra data after last expected column"),
        "{err}"
    );
    // A duplicate key on the second line: psql shows the key and that line, as with
    // PostgreSQL.
    let (ok, _, err) = psql(
        port,
        &["COPY items FROM STDIN"],
        Some("90\tnew\t1\tt\n1\tdup\t1\tt\n91\tnew\t1\tt\n"),
    );
    assert!(!ok && err.contains("duplicate key"), "{err}");
    assert!(
        err.contains("DETAIL:  Key (id)=(1) already exists."),
        "{err}"
    );
    assert!(err.contains("COPY items, line 2"), "{err}");
    assert_eq!(query(port, "SELECT count(*) FROM items"), "5");
    // COPY TO STDOUT writes what COPY FROM reads.
    let (ok, out, err) = psql(
        port,
        &["COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT WITH CSV HEADER"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "id,name\n1,one\n2,\n3,tab\there\n4,semi;colon\n5,\"two\nlines\"\n"
    );
    let (ok, out, _) = psql(port, &["COPY items (id, name) TO STDOUT"], None);
    assert!(ok);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "1\tone",
            "2\t\\N",
            "3\ttab\\there",
            "4\tsemi;colon",
            "5\ttwo\\nlines"
        ]
    );
    assert!(server.is_alive());
}
