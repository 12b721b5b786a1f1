//! Transactional DDL ([`crate::ddl_undo`]): what a block's ROLLBACK, ROLLBACK TO and COMMIT
//! leave of its DDL, and what a crash leaves. Results are PostgreSQL's for the same script.

use helios_engine::localrt::LocalRuntime;
use helios_engine::memfs::{CrashMode, MemFs};

use super::tests::step;
use crate::testcluster::LocalCluster;
use crate::*;

/// Runs `(sql, expected)` steps in one session; an expected value ending in '*' is a prefix,
/// one also starting with '*' a part.
async fn expect(cluster: &LocalCluster, session: &mut Session, steps: &[(&str, &str)]) {
    for (sql, expected) in steps {
        let got = step(cluster, session, sql).await;
        if let Some(part) = expected.strip_prefix('*').and_then(|e| e.strip_suffix('*')) {
            assert!(got.contains(part), "{sql}\n  got: {got}");
            continue;
        }
        match expected.strip_suffix('*') {
            Some(prefix) => assert!(got.starts_with(prefix), "{sql}\n  got: {got}"),
            None => assert_eq!(&got, expected, "{sql}"),
        }
    }
}

const SETUP: &[(&str, &str)] = &[
    (
        "CREATE TABLE kept (id int PRIMARY KEY, v text)",
        "CREATE TABLE",
    ),
    (
        "INSERT INTO kept SELECT g, 'v' || g FROM generate_series(1, 50) g",
        "INSERT 0 50",
    ),
    ("CREATE TABLE doomed (id int PRIMARY KEY)", "CREATE TABLE"),
    ("INSERT INTO doomed VALUES (1), (2), (3)", "INSERT 0 3"),
];

/// Every kind of DDL in one block, then ROLLBACK: the catalog and every row are as before.
const ROLLED_BACK: &[(&str, &str)] = &[
    ("BEGIN", "BEGIN"),
    (
        "CREATE TABLE fresh (a int PRIMARY KEY, b text UNIQUE)",
        "CREATE TABLE",
    ),
    ("INSERT INTO fresh VALUES (1, 'x'), (2, 'y')", "INSERT 0 2"),
    ("CREATE INDEX kept_v ON kept (v)", "CREATE INDEX"),
    ("ALTER TABLE kept ADD COLUMN w int DEFAULT 7", "ALTER TABLE"),
    ("ALTER TABLE kept RENAME TO renamed", "ALTER TABLE"),
    ("DROP TABLE doomed", "DROP TABLE"),
    ("CREATE SCHEMA side", "CREATE SCHEMA"),
    ("CREATE TABLE side.t (x int)", "CREATE TABLE"),
    ("CREATE VIEW vv AS SELECT id FROM renamed", "CREATE VIEW"),
    ("CREATE SEQUENCE sq", "CREATE SEQUENCE"),
    (
        "SELECT count(*), sum(w) FROM renamed",
        "count:20,sum:20 => 50|350 [SELECT 1]",
    ),
    ("SELECT count(*) FROM doomed", "ERR 42P01*"),
    ("ROLLBACK", "ROLLBACK"),
    ("SELECT count(*) FROM fresh", "ERR 42P01*"),
    ("SELECT count(*) FROM renamed", "ERR 42P01*"),
    ("SELECT count(*) FROM side.t", "ERR 42P01*"),
    ("CREATE TABLE side.t (x int)", "ERR 3F000*"),
    ("SELECT * FROM vv", "ERR 42P01*"),
    ("SELECT nextval('sq')", "ERR 42P01*"),
    (
        "SELECT * FROM kept WHERE id = 7",
        "id:23,v:25 => 7|v7 [SELECT 1]",
    ),
    (
        "SELECT count(*) FROM pg_class WHERE relname = 'kept_v'",
        "count:20 => 0 [SELECT 1]",
    ),
    (
        "SELECT count(*), sum(id) FROM doomed",
        "count:20,sum:20 => 3|6 [SELECT 1]",
    ),
    // The names are free again, and the rolled-back rows are gone for good.
    ("CREATE TABLE fresh (a int)", "CREATE TABLE"),
    ("SELECT count(*) FROM fresh", "count:20 => 0 [SELECT 1]"),
    ("INSERT INTO doomed VALUES (4)", "INSERT 0 1"),
];

#[test]
fn rollback_undoes_every_kind_of_ddl() {
    LocalRuntime::new(0).block_on(async {
        let cluster = LocalCluster::open(LocalRuntime::new(0), MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        expect(&cluster, &mut session, SETUP).await;
        expect(&cluster, &mut session, ROLLED_BACK).await;
        assert!(cluster.catalog().pending.is_empty());
        cluster.close().await;
    });
}

/// TRUNCATE and a rewriting ALTER in a block are undone too: the table gets its old rows
/// (and indexes) back.
#[test]
fn rollback_brings_back_truncated_and_rewritten_rows() {
    LocalRuntime::new(0).block_on(async {
        let cluster = LocalCluster::open(LocalRuntime::new(0), MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        expect(&cluster, &mut session, SETUP).await;
        expect(
            &cluster,
            &mut session,
            &[
                ("CREATE UNIQUE INDEX kept_v ON kept (v)", "CREATE INDEX"),
                ("BEGIN", "BEGIN"),
                ("TRUNCATE kept", "TRUNCATE TABLE"),
                ("SELECT count(*) FROM kept", "count:20 => 0 [SELECT 1]"),
                ("INSERT INTO kept VALUES (1, 'new')", "INSERT 0 1"),
                (
                    "ALTER TABLE doomed DROP CONSTRAINT doomed_pkey",
                    "ALTER TABLE",
                ),
                ("INSERT INTO doomed VALUES (1)", "INSERT 0 1"),
                ("ROLLBACK", "ROLLBACK"),
                (
                    "SELECT count(*), max(v) FROM kept",
                    "count:20,max:25 => 50|v9 [SELECT 1]",
                ),
                (
                    "SELECT id FROM kept WHERE v = 'v42'",
                    "id:23 => 42 [SELECT 1]",
                ),
                ("INSERT INTO kept VALUES (99, 'v42')", "ERR 23505*"),
                ("INSERT INTO doomed VALUES (1)", "ERR 23505*"),
                // Committed, the same TRUNCATE empties the table for good.
                ("BEGIN", "BEGIN"),
                ("TRUNCATE kept", "TRUNCATE TABLE"),
                ("INSERT INTO kept VALUES (1, 'v42')", "INSERT 0 1"),
                ("COMMIT", "COMMIT"),
                (
                    "SELECT count(*), max(v) FROM kept",
                    "count:20,max:25 => 1|v42 [SELECT 1]",
                ),
                ("INSERT INTO kept VALUES (2, 'v42')", "ERR 23505*"),
            ],
        )
        .await;
        assert!(cluster.catalog().pending.is_empty());
        cluster.close().await;
    });
}

/// ROLLBACK TO a savepoint undoes only the DDL after it; COMMIT keeps the rest.
#[test]
fn savepoints_and_commit_keep_what_they_should() {
    LocalRuntime::new(0).block_on(async {
        let cluster = LocalCluster::open(LocalRuntime::new(0), MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        expect(&cluster, &mut session, SETUP).await;
        expect(
            &cluster,
            &mut session,
            &[
                ("BEGIN", "BEGIN"),
                ("CREATE TABLE a (x int)", "CREATE TABLE"),
                ("SAVEPOINT s1", "SAVEPOINT"),
                ("CREATE TABLE b (x int)", "CREATE TABLE"),
                ("DROP TABLE doomed", "DROP TABLE"),
                ("ROLLBACK TO SAVEPOINT s1", "ROLLBACK"),
                (
                    "SELECT count(*) FROM pg_class WHERE relname = 'b'",
                    "count:20 => 0 [SELECT 1]",
                ),
                ("SELECT count(*) FROM doomed", "count:20 => 3 [SELECT 1]"),
                ("INSERT INTO a VALUES (1)", "INSERT 0 1"),
                ("ALTER TABLE kept DROP COLUMN v", "ALTER TABLE"),
                ("COMMIT", "COMMIT"),
                ("SELECT * FROM a", "x:23 => 1 [SELECT 1]"),
                ("SELECT count(*) FROM b", "ERR 42P01*"),
                ("SELECT * FROM kept WHERE id = 3", "id:23 => 3 [SELECT 1]"),
                // A failed statement's block: COMMIT is a ROLLBACK.
                ("BEGIN", "BEGIN"),
                ("CREATE TABLE c (x int)", "CREATE TABLE"),
                ("SELECT 1/0", "ERR 22012*"),
                ("COMMIT", "ROLLBACK"),
                ("SELECT count(*) FROM c", "ERR 42P01*"),
                ("BEGIN", "BEGIN"),
                ("CREATE DATABASE nope", "ERR 25001*"),
                ("ROLLBACK", "ROLLBACK"),
            ],
        )
        .await;
        assert!(cluster.catalog().pending.is_empty());
        // No DDL marker is left behind.
        assert_eq!(
            cluster
                .count_keys(crate::rowcodec::CATALOG_KEY_PREFIX_DDL)
                .await,
            0
        );
        cluster.close().await;
    });
}

/// A crash with a block's DDL pending undoes it at restart; a block whose commit was
/// durable keeps it, even when the crash came before the catalog forgot its undo.
#[test]
fn a_restart_settles_pending_ddl_by_its_marker() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            expect(&cluster, &mut session, SETUP).await;
            expect(
                &cluster,
                &mut session,
                &[
                    ("BEGIN", "BEGIN"),
                    ("CREATE TABLE fresh (a int)", "CREATE TABLE"),
                    ("DROP TABLE doomed", "DROP TABLE"),
                ],
            )
            .await;
            assert_eq!(cluster.catalog().pending.len(), 1);
        }
        let crashed = fs.crash_fork(CrashMode::LoseAll);
        {
            let cluster = LocalCluster::open(rt2.clone(), crashed.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            assert!(cluster.catalog().pending.is_empty());
            expect(
                &cluster,
                &mut session,
                &[
                    ("SELECT count(*) FROM fresh", "ERR 42P01*"),
                    ("SELECT count(*) FROM doomed", "count:20 => 3 [SELECT 1]"),
                    ("BEGIN", "BEGIN"),
                    ("CREATE TABLE fresh (a int)", "CREATE TABLE"),
                    ("DROP TABLE doomed", "DROP TABLE"),
                ],
            )
            .await;
            // The commit's marker made durable, then a crash before the catalog forgot the
            // undo: what the commit leaves when the process dies right after its commit
            // point.
            let txn = *cluster.catalog().pending.keys().next().expect("pending");
            cluster
                .raw_put(
                    0,
                    crate::ddl_undo::marker_key(txn),
                    crate::ddl_undo::MARKER_COMMITTED,
                )
                .await;
        }
        let crashed = crashed.crash_fork(CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        let mut session = Session::new("u", "postgres");
        assert!(cluster.catalog().pending.is_empty());
        expect(
            &cluster,
            &mut session,
            &[
                ("SELECT count(*) FROM fresh", "count:20 => 0 [SELECT 1]"),
                ("SELECT count(*) FROM doomed", "ERR 42P01*"),
            ],
        )
        .await;
        assert_eq!(
            cluster
                .count_keys(crate::rowcodec::CATALOG_KEY_PREFIX_DDL)
                .await,
            0
        );
        cluster.close().await;
    });
}

/// A dropped connection ends its block undone, DDL included.
#[test]
fn a_closed_connection_undoes_its_ddl() {
    LocalRuntime::new(0).block_on(async {
        let cluster = LocalCluster::open(LocalRuntime::new(0), MemFs::new(), 2).await;
        let mut session = Session::new("u", "postgres");
        expect(
            &cluster,
            &mut session,
            &[
                ("BEGIN", "BEGIN"),
                ("CREATE TABLE gone (a int)", "CREATE TABLE"),
            ],
        )
        .await;
        crate::txn::connection_closed(&cluster)
            .await
            .expect("closed");
        let mut session = Session::new("u", "postgres");
        expect(
            &cluster,
            &mut session,
            &[("SELECT * FROM gone", "ERR 42P01*")],
        )
        .await;
        assert!(cluster.catalog().pending.is_empty());
        cluster.close().await;
    });
}

/// Runs `COPY ... FROM STDIN` with `data` through the loader the protocol layer would use.
async fn copy_in(cluster: &LocalCluster, session: &mut Session, sql: &str, data: &[u8]) -> String {
    let results = execute_simple(session, cluster, sql).await;
    let start = match results.last() {
        Some(Ok(StatementResult::CopyIn(start))) => start.clone(),
        other => panic!("{sql}: {other:?}"),
    };
    let mut loader = match copy_in_loader(session, cluster, &start) {
        Ok(loader) => loader,
        Err(e) => {
            session.statement_failed();
            return format!("ERR {}", e.sqlstate);
        }
    };
    if let Err(e) = loader.feed(cluster, data).await {
        loader.abort(cluster).await;
        session.statement_failed();
        return format!("ERR {}", e.sqlstate);
    }
    match loader.finish(session, cluster).await {
        Ok(StatementResult::Command { tag, .. }) => tag,
        Ok(other) => panic!("{other:?}"),
        Err(e) => {
            session.statement_failed();
            format!("ERR {}", e.sqlstate)
        }
    }
}

fn rows(n: u32) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("{i}\tv{i}\n").into_bytes())
        .collect()
}

/// Runs `test` on a fresh cluster of one shard, then of two, with a session on each.
fn on_one_and_two_shards<F: std::future::Future<Output = ()> + 'static>(
    test: impl Fn(LocalCluster, Session, usize) -> F + Clone + 'static,
) {
    for shards in [1, 2] {
        let rt = LocalRuntime::new(0);
        let rt2 = rt.clone();
        let test = test.clone();
        rt.block_on(async move {
            let cluster = LocalCluster::open(rt2.clone(), MemFs::new(), shards).await;
            test(cluster, Session::new("u", "postgres"), shards).await;
        });
    }
}

/// `SELECT count(*), sum(id), count(DISTINCT v)` over the rows of [`rows`]`(n)`, rendered.
fn counted_rows(n: u32) -> String {
    let sum = u64::from(n) * (u64::from(n) + 1) / 2;
    format!("count:20,sum:1700,count:20 => {n}|{sum}|{n} [SELECT 1]")
}

/// ADD PRIMARY KEY on a table a COPY loaded reads its rows straight from the table files
/// (`Lsm::bulk_scan`), some decoded on the helper thread and some on the shard: every row
/// moves once, a duplicated key and a NULL are still found, and a table that also took a
/// write since (in a memtable) is read through the iterator, to the same end.
#[test]
fn add_primary_key_reads_a_loaded_table_straight_from_its_files() {
    on_one_and_two_shards(|cluster, mut session, shards| async move {
        let n = 20_000;
        // The same rows, then a duplicated id, and a NULL id.
        let tables: [(&str, &[u8]); 3] = [
            ("dup", b"7\tseven again\n"),
            ("nul", b"\\N\tnull\n"),
            ("ok", b""),
        ];
        for (table, extra) in tables {
            let create = format!("CREATE TABLE {table} (id int8, v text)");
            expect(
                &cluster,
                &mut session,
                &[("BEGIN", "BEGIN"), (create.as_str(), "CREATE TABLE")],
            )
            .await;
            let sql = format!("COPY {table} FROM STDIN FREEZE");
            let data = [rows(n).as_slice(), extra].concat();
            copy_in_chunks(&cluster, &mut session, &sql, &data)
                .await
                .expect("the COPY loads");
            expect(&cluster, &mut session, &[("COMMIT", "COMMIT")]).await;
        }
        let bulk_before: u64 = cluster.settled_sum(|s| s.bulk_scans).await;
        expect(
            &cluster,
            &mut session,
            &[
                (
                    "ALTER TABLE dup ADD PRIMARY KEY (id)",
                    concat!(
                        "ERR 23505 could not create unique index \"dup_pkey\" ",
                        "[DETAIL: Key (id)=(7) is duplicated.]"
                    ),
                ),
                (
                    "ALTER TABLE nul ADD PRIMARY KEY (id)",
                    "ERR 23502 column \"id\" of relation \"nul\" contains null values",
                ),
                ("ALTER TABLE ok ADD PRIMARY KEY (id)", "ALTER TABLE"),
            ],
        )
        .await;
        let bulk_after: u64 = cluster.settled_sum(|s| s.bulk_scans).await;
        assert!(
            bulk_after >= bulk_before + 3 * shards as u64,
            "each shard read each table straight: {bulk_before} → {bulk_after}"
        );
        let counted = counted_rows(n);
        // Every row moved, once. Then a row lands in one shard's memtable.
        expect(
            &cluster,
            &mut session,
            &[
                (
                    "SELECT count(*), sum(id), count(DISTINCT v) FROM ok",
                    counted.as_str(),
                ),
                (
                    "SELECT v FROM ok WHERE id = 12345",
                    "v:25 => v12345 [SELECT 1]",
                ),
                ("INSERT INTO ok VALUES (7, 'seven again')", "ERR 23505*"),
                ("ALTER TABLE ok DROP CONSTRAINT ok_pkey", "ALTER TABLE"),
                ("INSERT INTO ok VALUES (20001, 'v20001')", "INSERT 0 1"),
            ],
        )
        .await;
        // The shard whose memtable holds the new row reads its rows through the iterator.
        let bulk_before: u64 = cluster.settled_sum(|s| s.bulk_scans).await;
        expect(
            &cluster,
            &mut session,
            &[("ALTER TABLE ok ADD PRIMARY KEY (v)", "ALTER TABLE")],
        )
        .await;
        let bulk_after: u64 = cluster.settled_sum(|s| s.bulk_scans).await;
        assert_eq!(bulk_after - bulk_before, shards as u64 - 1);
        expect(
            &cluster,
            &mut session,
            &[
                (
                    "SELECT id FROM ok WHERE v = 'v20001'",
                    "id:20 => 20001 [SELECT 1]",
                ),
                ("SELECT count(*) FROM ok", "count:20 => 20001 [SELECT 1]"),
            ],
        )
        .await;
    });
}

/// An ingesting COPY of many batches, fed in chunks that split records: every row arrives
/// once, on one shard or two; a bad record in a later batch fails the COPY with its own line
/// number and leaves nothing behind.
#[test]
fn an_ingesting_copy_of_many_batches_keeps_every_row_and_line_number() {
    on_one_and_two_shards(|cluster, mut session, _shards| async move {
        let n = 3 * 16_384 + 5;
        let data = rows(n);
        expect(
            &cluster,
            &mut session,
            &[
                ("BEGIN", "BEGIN"),
                ("CREATE TABLE m (id int8, v text)", "CREATE TABLE"),
            ],
        )
        .await;
        let tag = copy_in_chunks(&cluster, &mut session, "COPY m FROM STDIN FREEZE", &data)
            .await
            .expect("the COPY loads");
        assert_eq!(tag, format!("COPY {n}"));
        let counted = counted_rows(n);
        expect(
            &cluster,
            &mut session,
            &[
                (
                    "SELECT count(*), sum(id), count(DISTINCT v) FROM m",
                    counted.as_str(),
                ),
                ("COMMIT", "COMMIT"),
            ],
        )
        .await;
        // Bad lines (the first one is reported). The test cluster's helper is still
        // busy at the second ask: the first two batches go to it, and the shard parses
        // the third itself. A bad line in that one, in the helper's second, in both
        // (the helper's, earlier, is reported), and in both of the helper's.
        for (bad_lines, reported) in [
            (&[39_993][..], 39_993),
            (&[20_000], 20_000),
            (&[20_000, 39_993], 20_000),
            (&[100, 20_000], 100),
        ] {
            expect(
                &cluster,
                &mut session,
                &[
                    ("BEGIN", "BEGIN"),
                    ("CREATE TABLE bad (id int8, v text)", "CREATE TABLE"),
                ],
            )
            .await;
            let mut bad: Vec<Vec<u8>> = rows(40_000)
                .split(|&b| b == b'\n')
                .filter(|record| !record.is_empty())
                .map(|record| [record, b"\n"].concat())
                .collect();
            for &line in bad_lines.iter().rev() {
                bad.insert(line - 1, b"x\ty\n".to_vec());
            }
            let e = copy_in_chunks(
                &cluster,
                &mut session,
                "COPY bad FROM STDIN FREEZE",
                &bad.concat(),
            )
            .await
            .expect_err("a bad record fails the COPY");
            assert_eq!(e.sqlstate, "22P02");
            assert_eq!(
                e.context.as_deref(),
                Some(format!("COPY bad, line {reported}, column id: \"x\"").as_str())
            );
            expect(
                &cluster,
                &mut session,
                &[
                    ("ROLLBACK", "ROLLBACK"),
                    ("SELECT * FROM bad", "ERR 42P01*"),
                ],
            )
            .await;
        }
        // An error found in the stream after a bad record (here an unterminated CSV quote
        // at the end) is not the one reported: the bad record is, by its line.
        expect(
            &cluster,
            &mut session,
            &[
                ("BEGIN", "BEGIN"),
                ("CREATE TABLE csv (id int8, v text)", "CREATE TABLE"),
            ],
        )
        .await;
        let mut data = b"1,a\nx,b\n".to_vec();
        data.extend((3..20_000).flat_map(|i| format!("{i},v{i}\n").into_bytes()));
        data.extend_from_slice(b"20000,\"abc");
        let sql = "COPY csv FROM STDIN (FORMAT csv, FREEZE)";
        let e = copy_in_chunks(&cluster, &mut session, sql, &data)
            .await
            .expect_err("a bad record fails the COPY");
        assert_eq!(e.sqlstate, "22P02");
        assert_eq!(
            e.context.as_deref(),
            Some("COPY csv, line 2, column id: \"x\"")
        );
        expect(&cluster, &mut session, &[("ROLLBACK", "ROLLBACK")]).await;
    });
}

/// Runs a COPY FROM STDIN, feeding `data` in chunks of 1000 bytes (records split across
/// chunks); the command tag, or the error.
async fn copy_in_chunks(
    cluster: &LocalCluster,
    session: &mut Session,
    sql: &str,
    data: &[u8],
) -> Result<String, SqlError> {
    let results = execute_simple(session, cluster, sql).await;
    let start = match results.last() {
        Some(Ok(StatementResult::CopyIn(start))) => start.clone(),
        other => panic!("{sql}: {other:?}"),
    };
    let mut loader = copy_in_loader(session, cluster, &start)?;
    for chunk in data.chunks(1000) {
        if let Err(e) = loader.feed(cluster, chunk).await {
            loader.abort(cluster).await;
            session.statement_failed();
            return Err(e);
        }
    }
    match loader.finish(session, cluster).await {
        Ok(StatementResult::Command { tag, .. }) => Ok(tag),
        Ok(other) => panic!("{other:?}"),
        Err(e) => {
            session.statement_failed();
            Err(e)
        }
    }
}

/// A COPY FREEZE into a table the block created or truncated writes its rows straight into
/// the shards' tables (no intents, no WAL): the block sees them, COMMIT keeps them through a
/// crash, ROLLBACK and a crash before COMMIT leave the table as it was. FREEZE into a table
/// the block did not make is refused, as PostgreSQL refuses it.
#[test]
fn copy_into_a_table_the_block_made_ingests_and_stays_atomic() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            expect(
                &cluster,
                &mut session,
                &[
                    ("CREATE TABLE h (id int8, v text)", "CREATE TABLE"),
                    ("INSERT INTO h VALUES (0, 'old')", "INSERT 0 1"),
                    ("CREATE INDEX h_v ON h (v)", "CREATE INDEX"),
                ],
            )
            .await;
            // FREEZE needs a table the block made: not one outside a block, nor one the
            // block only dropped an index of.
            let three = rows(3);
            let refused = copy_in(&cluster, &mut session, "COPY h FROM STDIN (FREEZE)", &three);
            assert_eq!(refused.await, "ERR 55000");
            expect(
                &cluster,
                &mut session,
                &[("BEGIN", "BEGIN"), ("DROP INDEX h_v", "DROP INDEX")],
            )
            .await;
            let three = rows(3);
            let refused = copy_in(&cluster, &mut session, "COPY h FROM STDIN (FREEZE)", &three);
            assert_eq!(refused.await, "ERR 55000");
            expect(
                &cluster,
                &mut session,
                &[
                    ("ROLLBACK", "ROLLBACK"),
                    ("DROP INDEX h_v", "DROP INDEX"),
                    ("BEGIN", "BEGIN"),
                    ("TRUNCATE h", "TRUNCATE TABLE"),
                ],
            )
            .await;
            let before = cluster.settled_sum(|s| s.ingested_files).await;
            assert_eq!(
                copy_in(
                    &cluster,
                    &mut session,
                    "COPY h FROM STDIN (FREEZE)",
                    &rows(5000)
                )
                .await,
                "COPY 5000"
            );
            let after = cluster.settled_sum(|s| s.ingested_files).await;
            assert!(
                after >= before + 2,
                "each shard ingested: {before} -> {after}"
            );
            expect(
                &cluster,
                &mut session,
                &[
                    (
                        "SELECT count(*), sum(id) FROM h",
                        "count:20,sum:1700 => 5000|12502500 [SELECT 1]",
                    ),
                    ("ROLLBACK", "ROLLBACK"),
                    (
                        "SELECT count(*), max(v) FROM h",
                        "count:20,max:25 => 1|old [SELECT 1]",
                    ),
                    // A bad line fails the COPY; the block can only roll back.
                    ("BEGIN", "BEGIN"),
                    ("CREATE TABLE g (id int8, v text)", "CREATE TABLE"),
                ],
            )
            .await;
            let mut bad = rows(3000);
            bad.extend_from_slice(b"x\ty\n");
            assert_eq!(
                copy_in(&cluster, &mut session, "COPY g FROM STDIN FREEZE", &bad).await,
                "ERR 22P02"
            );
            expect(
                &cluster,
                &mut session,
                &[
                    ("COMMIT", "ROLLBACK"),
                    ("SELECT * FROM g", "ERR 42P01*"),
                    // Committed, then a crash: the rows stay.
                    ("BEGIN", "BEGIN"),
                    ("TRUNCATE h", "TRUNCATE TABLE"),
                ],
            )
            .await;
            assert_eq!(
                copy_in(
                    &cluster,
                    &mut session,
                    "COPY h FROM STDIN WITH (FREEZE true)",
                    &rows(4000)
                )
                .await,
                "COPY 4000"
            );
            expect(
                &cluster,
                &mut session,
                &[
                    ("COMMIT", "COMMIT"),
                    // Left open at the crash: undone.
                    ("BEGIN", "BEGIN"),
                    ("CREATE TABLE lost (id int8, v text)", "CREATE TABLE"),
                ],
            )
            .await;
            assert_eq!(
                copy_in(
                    &cluster,
                    &mut session,
                    "COPY lost FROM STDIN (FREEZE)",
                    &rows(100)
                )
                .await,
                "COPY 100"
            );
        }
        let crashed = fs.crash_fork(CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        let mut session = Session::new("u", "postgres");
        expect(
            &cluster,
            &mut session,
            &[
                (
                    "SELECT count(*), sum(id), min(v) FROM h",
                    "count:20,sum:1700,min:25 => 4000|8002000|v1 [SELECT 1]",
                ),
                ("SELECT * FROM lost", "ERR 42P01*"),
            ],
        )
        .await;
        cluster.close().await;
    });
}

/// UNIQUE constraints, as PostgreSQL has them: ALTER TABLE ADD [CONSTRAINT name] UNIQUE
/// builds a unique index over the rows there are (a duplicate fails it, and nothing is
/// left), enforced across shards from then on; CREATE TABLE's and ALTER TABLE's are listed
/// in `pg_constraint` and dropped with DROP CONSTRAINT, not DROP INDEX.
#[test]
fn unique_constraints_are_added_listed_and_dropped_as_constraints() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let constraints = "SELECT conname, contype, conkey, pg_get_constraintdef(oid) \
                           FROM pg_constraint WHERE conrelid = 'u'::regclass ORDER BY conname";
        let steps: &[(&str, &str)] = &[
            (
                "CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE, a int, b int)",
                "CREATE TABLE",
            ),
            (
                "INSERT INTO u SELECT g, 'e' || g, g % 3, g FROM generate_series(1, 40) g",
                "INSERT 0 40",
            ),
            ("INSERT INTO u VALUES (41, 'x', 1, 100)", "INSERT 0 1"),
            (
                "ALTER TABLE u ADD CONSTRAINT u_a UNIQUE (a)",
                "ERR 23505 could not create unique index \"u_a\"*",
            ),
            ("INSERT INTO u VALUES (42, 'y', 1, 40)", "INSERT 0 1"),
            ("ALTER TABLE u ADD UNIQUE (a, b)", "ERR 23505*"),
            ("DELETE FROM u WHERE id = 42", "DELETE 1"),
            ("ALTER TABLE u ADD UNIQUE (a, b)", "ALTER TABLE"),
            ("ALTER TABLE u ADD UNIQUE (b, a)", "ALTER TABLE"),
            ("ALTER TABLE u ADD UNIQUE (a, b)", "ALTER TABLE"),
            (
                "ALTER TABLE u ADD CONSTRAINT u_a_b_key UNIQUE (id)",
                "ERR 42P07 relation \"u_a_b_key\" already exists",
            ),
            (
                "INSERT INTO u VALUES (43, 'z', 1, 1)",
                "ERR 23505 duplicate key value violates unique constraint \"u_a_b_key\"*",
            ),
            ("INSERT INTO u VALUES (43, 'z', 2, 1)", "INSERT 0 1"),
            (
                constraints,
                "conname:19,contype:25,conkey:1005,pg_get_constraintdef:25 => \
                 u_a_b_key|u|{3,4}|UNIQUE (a, b) / u_a_b_key1|u|{3,4}|UNIQUE (a, b) / \
                 u_b_a_key|u|{4,3}|UNIQUE (b, a) / u_email_key|u|{2}|UNIQUE (email) / \
                 u_pkey|p|{1}|PRIMARY KEY (id) [SELECT 5]",
            ),
            (
                "DROP INDEX u_a_b_key",
                "ERR 2BP01 cannot drop index u_a_b_key because constraint u_a_b_key on table u requires it",
            ),
            (
                "DROP INDEX u_pkey",
                "ERR 2BP01 cannot drop index u_pkey because constraint u_pkey on table u requires it",
            ),
            ("ALTER TABLE u DROP CONSTRAINT u_a_b_key", "ALTER TABLE"),
            ("ALTER TABLE u DROP CONSTRAINT u_a_b_key1", "ALTER TABLE"),
            ("ALTER TABLE u DROP CONSTRAINT u_email_key", "ALTER TABLE"),
            (
                "ALTER TABLE u DROP CONSTRAINT u_email_key",
                "ERR 42704 constraint \"u_email_key\" of relation \"u\" does not exist",
            ),
            ("INSERT INTO u VALUES (44, 'x', 2, 200)", "INSERT 0 1"),
            (
                "INSERT INTO u VALUES (45, 'x', 2, 200)",
                "ERR 23505 duplicate key value violates unique constraint \"u_b_a_key\"*",
            ),
            (
                "ALTER TABLE u ADD UNIQUE (email), ADD COLUMN c int",
                "ERR 0A000*",
            ),
            // All or nothing: the first constraint goes when the second finds a duplicate.
            (
                "ALTER TABLE u ADD UNIQUE (id), ADD CONSTRAINT u_e UNIQUE (email)",
                "ERR 23505 could not create unique index \"u_e\"*",
            ),
            ("ALTER TABLE u DROP CONSTRAINT u_id_key", "ERR 42704*"),
            ("CREATE INDEX u_plain ON u (email)", "CREATE INDEX"),
            ("DROP INDEX u_plain", "DROP INDEX"),
            // In a block, both are undone by ROLLBACK.
            ("BEGIN", "BEGIN"),
            ("ALTER TABLE u DROP CONSTRAINT u_b_a_key", "ALTER TABLE"),
            ("ALTER TABLE u ADD CONSTRAINT u_id UNIQUE (id)", "ALTER TABLE"),
            ("INSERT INTO u VALUES (45, 'x', 2, 200)", "INSERT 0 1"),
            ("ROLLBACK", "ROLLBACK"),
            (
                "INSERT INTO u VALUES (45, 'x', 2, 200)",
                "ERR 23505 duplicate key value violates unique constraint \"u_b_a_key\"*",
            ),
            ("ALTER TABLE u DROP CONSTRAINT u_id", "ERR 42704*"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// A primary key's constraint is named as PostgreSQL names it: as given with CONSTRAINT
/// (CREATE TABLE's, or ALTER TABLE ADD's), else `table_pkey` as of its creation, kept
/// through RENAME TO; errors, `pg_constraint` and DROP CONSTRAINT use that name.
#[test]
fn primary_key_constraints_keep_their_given_and_original_names() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let pk_of = |table: &str| {
            format!(
                "SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype = 'p'"
            )
        };
        let steps: Vec<(String, &str)> = vec![
            (
                "CREATE TABLE n1 (id int CONSTRAINT n1_id PRIMARY KEY)".into(),
                "CREATE TABLE",
            ),
            (
                "CREATE TABLE n2 (id int, CONSTRAINT n2_key PRIMARY KEY (id))".into(),
                "CREATE TABLE",
            ),
            (
                "CREATE TABLE n3 (id int PRIMARY KEY)".into(),
                "CREATE TABLE",
            ),
            ("CREATE TABLE n4 (id int)".into(), "CREATE TABLE"),
            (
                "ALTER TABLE n4 ADD CONSTRAINT n4_main PRIMARY KEY (id)".into(),
                "ALTER TABLE",
            ),
            (
                "INSERT INTO n1 VALUES (1), (1)".into(),
                "ERR 23505 duplicate key value violates unique constraint \"n1_id\"*",
            ),
            (
                "INSERT INTO n2 VALUES (1), (1)".into(),
                "ERR 23505 duplicate key value violates unique constraint \"n2_key\"*",
            ),
            ("ALTER TABLE n3 RENAME TO n3b".into(), "ALTER TABLE"),
            (
                "INSERT INTO n3b VALUES (1), (1)".into(),
                "ERR 23505 duplicate key value violates unique constraint \"n3_pkey\"*",
            ),
            (pk_of("n3b"), "conname:19 => n3_pkey [SELECT 1]"),
            (pk_of("n4"), "conname:19 => n4_main [SELECT 1]"),
            ("DROP INDEX n4_main".into(), "ERR 2BP01*"),
            (
                "ALTER TABLE n4 DROP CONSTRAINT n4_pkey".into(),
                "ERR 42704*",
            ),
            (
                "ALTER TABLE n4 DROP CONSTRAINT n4_main".into(),
                "ALTER TABLE",
            ),
            (
                "ALTER TABLE n3b DROP CONSTRAINT n3_pkey".into(),
                "ALTER TABLE",
            ),
            ("ALTER TABLE n3b ADD PRIMARY KEY (id)".into(), "ALTER TABLE"),
            (pk_of("n3b"), "conname:19 => n3b_pkey [SELECT 1]"),
        ];
        for (sql, expected) in &steps {
            expect(&cluster, &mut session, &[(sql.as_str(), *expected)]).await;
        }
        cluster.close().await;
    });
}

/// A CHECK added NOT VALID is shown as such (`convalidated`, `pg_get_constraintdef`) until
/// VALIDATE CONSTRAINT checks every row; a primary key's constraint is renamed like a
/// CHECK, as in PostgreSQL.
#[test]
fn not_valid_checks_are_validated_and_primary_keys_renamed() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let checks = "SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint \
                      WHERE conrelid = 'cv'::regclass ORDER BY conname";
        let steps: &[(&str, &str)] = &[
            ("CREATE TABLE cv (id int PRIMARY KEY, g int)", "CREATE TABLE"),
            ("INSERT INTO cv VALUES (1, -1), (2, 5)", "INSERT 0 2"),
            ("ALTER TABLE cv ADD CONSTRAINT pos CHECK (g >= 0) NOT VALID", "ALTER TABLE"),
            ("INSERT INTO cv VALUES (3, -3)", "ERR 23514*"),
            (
                checks,
                "conname:19,convalidated:16,pg_get_constraintdef:25 => \
                 cv_pkey|t|PRIMARY KEY (id) / pos|f|CHECK ((g >= 0)) NOT VALID [SELECT 2]",
            ),
            (
                "ALTER TABLE cv VALIDATE CONSTRAINT pos",
                "ERR 23514 check constraint \"pos\" of relation \"cv\" is violated by some row",
            ),
            ("UPDATE cv SET g = 1 WHERE id = 1", "UPDATE 1"),
            ("ALTER TABLE cv VALIDATE CONSTRAINT pos", "ALTER TABLE"),
            ("ALTER TABLE cv VALIDATE CONSTRAINT pos", "ALTER TABLE"),
            (
                "ALTER TABLE cv VALIDATE CONSTRAINT cv_pkey",
                "ERR 42809 constraint \"cv_pkey\" of relation \"cv\" is not a foreign key or check constraint",
            ),
            ("ALTER TABLE cv VALIDATE CONSTRAINT nope", "ERR 42704*"),
            ("ALTER TABLE cv RENAME CONSTRAINT cv_pkey TO cv_main", "ALTER TABLE"),
            (
                checks,
                "conname:19,convalidated:16,pg_get_constraintdef:25 => \
                 cv_main|t|PRIMARY KEY (id) / pos|t|CHECK ((g >= 0)) [SELECT 2]",
            ),
            (
                "INSERT INTO cv VALUES (2, 2)",
                "ERR 23505 duplicate key value violates unique constraint \"cv_main\"*",
            ),
            ("ALTER TABLE cv DROP CONSTRAINT cv_main", "ALTER TABLE"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// `pg_stats` shows what ANALYZE gathered, per column, in PostgreSQL's terms: NULL
/// fraction, `n_distinct` (a count, or minus a fraction of the rows where the distinct
/// values grow with the table), histogram bounds as an array's text; nothing before ANALYZE.
#[test]
fn pg_stats_shows_what_analyze_gathered() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let stats = "SELECT attname, null_frac, n_distinct, histogram_bounds IS NOT NULL \
                     FROM pg_stats WHERE tablename = 'sa' ORDER BY attname";
        let steps: &[(&str, &str)] = &[
            (
                "CREATE TABLE sa (id int PRIMARY KEY, g int, t text, n numeric, z int)",
                "CREATE TABLE",
            ),
            (
                "INSERT INTO sa SELECT i, i % 10, 'x' || (i % 3), i, NULL::int \
                 FROM generate_series(1, 1000) i",
                "INSERT 0 1000",
            ),
            ("SELECT count(*) FROM pg_stats WHERE tablename = 'sa'", "count:20 => 0 [SELECT 1]"),
            ("ANALYZE sa", "ANALYZE"),
            (
                stats,
                "attname:19,null_frac:700,n_distinct:700,?column?:16 => \
                 g|0|10|t / id|0|-1|t / n|0|-1|f / t|0|3|t / z|1|0|f [SELECT 5]",
            ),
            (
                "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'sa' AND attname = 't'",
                "histogram_bounds:25 => {x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x0,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x1,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2,x2} [SELECT 1]",
            ),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// ALTER COLUMN TYPE rewrites every row through the conversion (or USING), keeps the
/// column's indexes (rebuilt over the new values, unique ones still enforced) and its
/// constraints (checked again), moves rows whose key type changes, and is refused as
/// PostgreSQL refuses it; a block's ROLLBACK brings the old type and values back.
#[test]
fn alter_column_type_converts_every_row() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let steps: &[(&str, &str)] = &[
            (
                "CREATE TABLE ct (id int PRIMARY KEY, a text, b int CHECK (b > 0), c varchar(10))",
                "CREATE TABLE",
            ),
            ("CREATE UNIQUE INDEX ct_c ON ct (c)", "CREATE INDEX"),
            ("CREATE INDEX ct_a ON ct (a)", "CREATE INDEX"),
            (
                "INSERT INTO ct SELECT g, (g * 10)::text, g, 'c' || g FROM generate_series(1, 40) g",
                "INSERT 0 40",
            ),
            (
                "ALTER TABLE ct ALTER COLUMN a TYPE int",
                "ERR 42804 column \"a\" cannot be cast automatically to type integer",
            ),
            ("ALTER TABLE ct ALTER COLUMN a TYPE int USING a::int + 1", "ALTER TABLE"),
            ("SELECT sum(a), pg_typeof(min(a)) FROM ct", "sum:20,pg_typeof:2206 => 8240|integer [SELECT 1]"),
            // The index over the converted column finds the new values.
            ("SELECT id FROM ct WHERE a = 101", "id:23 => 10 [SELECT 1]"),
            ("ALTER TABLE ct ALTER COLUMN b TYPE int USING b - 40", "ERR 23514*"),
            ("ALTER TABLE ct ALTER COLUMN c TYPE varchar(2)", "ERR 22001*"),
            ("ALTER TABLE ct ALTER COLUMN c TYPE text", "ALTER TABLE"),
            ("INSERT INTO ct VALUES (41, 1, 1, 'c7')", "ERR 23505*"),
            ("ALTER TABLE ct ALTER COLUMN id TYPE bigint", "ALTER TABLE"),
            ("SELECT a, c FROM ct WHERE id = 40", "a:23,c:25 => 401|c40 [SELECT 1]"),
            ("BEGIN", "BEGIN"),
            ("ALTER TABLE ct ALTER COLUMN a TYPE text USING 'x' || a", "ALTER TABLE"),
            ("SELECT a FROM ct WHERE id = 1", "a:25 => x11 [SELECT 1]"),
            ("ROLLBACK", "ROLLBACK"),
            ("SELECT a FROM ct WHERE id = 1", "a:23 => 11 [SELECT 1]"),
            ("SELECT count(*) FROM ct", "count:20 => 40 [SELECT 1]"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// ALTER INDEX ... RENAME TO renames secondary, UNIQUE constraint and primary key indexes
/// (a constraint's name with its index's), and ALTER TABLE RENAME CONSTRAINT of a UNIQUE
/// constraint renames its index; a ROLLBACK takes the name back.
#[test]
fn indexes_and_unique_constraints_are_renamed() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let names = "SELECT conname, contype FROM pg_constraint WHERE conrelid = 'ri'::regclass \
                     ORDER BY conname";
        let steps: &[(&str, &str)] = &[
            (
                "CREATE TABLE ri (id int PRIMARY KEY, a int UNIQUE, b int)",
                "CREATE TABLE",
            ),
            ("CREATE INDEX ri_b ON ri (b)", "CREATE INDEX"),
            (
                "ALTER INDEX ri_b RENAME TO ri_a_key",
                "ERR 42P07 relation \"ri_a_key\" already exists",
            ),
            (
                "ALTER INDEX nosuch RENAME TO x",
                "ERR 42P01 relation \"nosuch\" does not exist",
            ),
            (
                "ALTER INDEX ri RENAME TO x",
                "ERR 42809 \"ri\" is not an index",
            ),
            ("ALTER INDEX ri_b RENAME TO ri_b2", "ALTER INDEX"),
            ("ALTER INDEX ri_pkey RENAME TO ri_main", "ALTER INDEX"),
            (
                "ALTER TABLE ri RENAME CONSTRAINT ri_a_key TO ri_a_u",
                "ALTER TABLE",
            ),
            (
                names,
                "conname:19,contype:25 => ri_a_u|u / ri_main|p [SELECT 2]",
            ),
            (
                "INSERT INTO ri VALUES (1, 1, 1), (2, 1, 2)",
                "ERR 23505 duplicate key value violates unique constraint \"ri_a_u\"*",
            ),
            ("SELECT id FROM ri WHERE b = 2", "id:23 =>  [SELECT 0]"),
            ("BEGIN", "BEGIN"),
            ("ALTER INDEX ri_a_u RENAME TO ri_other", "ALTER INDEX"),
            ("ROLLBACK", "ROLLBACK"),
            (
                names,
                "conname:19,contype:25 => ri_a_u|u / ri_main|p [SELECT 2]",
            ),
            ("ALTER TABLE ri DROP CONSTRAINT ri_a_u", "ALTER TABLE"),
            ("DROP INDEX ri_b2", "DROP INDEX"),
            // CONCURRENTLY (migration tools' form): builds as any index does, which lets
            // writes go on; not in a transaction block, as in PostgreSQL.
            ("INSERT INTO ri VALUES (1, 1, 7), (2, 2, 7)", "INSERT 0 2"),
            ("CREATE INDEX CONCURRENTLY ri_b ON ri (b)", "CREATE INDEX"),
            (
                "SELECT count(*) FROM ri WHERE b = 7",
                "count:20 => 2 [SELECT 1]",
            ),
            ("EXPLAIN SELECT id FROM ri WHERE b = 7", "*index ri_b*"),
            ("BEGIN", "BEGIN"),
            (
                "CREATE INDEX CONCURRENTLY ri_b3 ON ri (b)",
                "ERR 25001 CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
            ),
            ("ROLLBACK", "ROLLBACK"),
            ("DROP INDEX CONCURRENTLY ri_b", "DROP INDEX"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// DDL in a block after the block wrote rows of the table sees those rows, as PostgreSQL's
/// does: a migration's backfill followed by SET NOT NULL, a CHECK or foreign key validated
/// over them, an index built over them. TRUNCATE after writes empties the table until a
/// ROLLBACK TO brings it back; a rewrite (ALTER COLUMN TYPE, ADD PRIMARY KEY) keeps them.
#[test]
fn ddl_after_the_blocks_own_writes_sees_them() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let steps: &[(&str, &str)] = &[
            (
                "CREATE TABLE u (id int PRIMARY KEY, name text)",
                "CREATE TABLE",
            ),
            ("INSERT INTO u VALUES (1, 'x'), (2, 'y')", "INSERT 0 2"),
            ("BEGIN", "BEGIN"),
            ("ALTER TABLE u ADD COLUMN email text", "ALTER TABLE"),
            ("UPDATE u SET email = name || '@h' WHERE id = 1", "UPDATE 1"),
            (
                "ALTER TABLE u ALTER COLUMN email SET NOT NULL",
                "ERR 23502 column \"email\" of relation \"u\" contains null values",
            ),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("ALTER TABLE u ADD COLUMN email text", "ALTER TABLE"),
            ("UPDATE u SET email = name || '@h'", "UPDATE 2"),
            (
                "ALTER TABLE u ALTER COLUMN email SET NOT NULL",
                "ALTER TABLE",
            ),
            ("INSERT INTO u VALUES (3, 'z', NULL)", "ERR 23502*"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (3, 'z')", "INSERT 0 1"),
            (
                "ALTER TABLE u ADD CONSTRAINT nz CHECK (name <> 'z')",
                "ERR 23514 check constraint \"nz\" of relation \"u\" is violated by some row",
            ),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (3, 'w')", "INSERT 0 1"),
            ("UPDATE u SET name = 'q' WHERE id = 1", "UPDATE 1"),
            ("CREATE INDEX u_name ON u (name)", "CREATE INDEX"),
            (
                "EXPLAIN SELECT id FROM u WHERE name = 'q'",
                "*index u_name*",
            ),
            ("SELECT id FROM u WHERE name = 'q'", "id:23 => 1 [SELECT 1]"),
            ("SELECT id FROM u WHERE name = 'w'", "id:23 => 3 [SELECT 1]"),
            ("SELECT id FROM u WHERE name = 'x'", "id:23 =>  [SELECT 0]"),
            ("COMMIT", "COMMIT"),
            ("SELECT id FROM u WHERE name = 'q'", "id:23 => 1 [SELECT 1]"),
            ("SELECT id FROM u WHERE name = 'x'", "id:23 =>  [SELECT 0]"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (4, 'q')", "INSERT 0 1"),
            ("CREATE UNIQUE INDEX u_name_u ON u (name)", "ERR 23505*"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("DELETE FROM u WHERE id = 1", "DELETE 1"),
            ("CREATE UNIQUE INDEX u_name_u ON u (name)", "CREATE INDEX"),
            ("INSERT INTO u VALUES (5, 'w')", "ERR 23505*"),
            ("ROLLBACK", "ROLLBACK"),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (6, 'six')", "INSERT 0 1"),
            ("UPDATE u SET name = 'one' WHERE id = 1", "UPDATE 1"),
            ("ALTER TABLE u ALTER COLUMN id TYPE bigint", "ALTER TABLE"),
            (
                "SELECT id, name FROM u ORDER BY id",
                "id:20,name:25 => 1|one / 2|y / 3|w / 6|six [SELECT 4]",
            ),
            (
                "SELECT id FROM u WHERE name = 'six'",
                "id:20 => 6 [SELECT 1]",
            ),
            ("SAVEPOINT s", "SAVEPOINT"),
            (
                "ALTER TABLE u ADD COLUMN n int NOT NULL DEFAULT 5",
                "ALTER TABLE",
            ),
            ("ROLLBACK TO s", "ROLLBACK"),
            ("ALTER TABLE u DROP CONSTRAINT u_pkey", "ALTER TABLE"),
            ("ALTER TABLE u ADD PRIMARY KEY (name)", "ALTER TABLE"),
            ("INSERT INTO u VALUES (10, 'six')", "ERR 23505*"),
            ("ROLLBACK", "ROLLBACK"),
            (
                "SELECT id FROM u WHERE name = 'six'",
                "id:23 =>  [SELECT 0]",
            ),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (7, 'seven')", "INSERT 0 1"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("TRUNCATE u", "TRUNCATE TABLE"),
            ("INSERT INTO u VALUES (8, 'eight')", "INSERT 0 1"),
            ("SELECT id FROM u", "id:23 => 8 [SELECT 1]"),
            ("ROLLBACK TO s", "ROLLBACK"),
            (
                "SELECT id FROM u ORDER BY id",
                "id:23 => 1 / 2 / 3 / 7 [SELECT 4]",
            ),
            ("COMMIT", "COMMIT"),
            (
                "SELECT id, name FROM u ORDER BY id",
                "id:23,name:25 => 1|q / 2|y / 3|w / 7|seven [SELECT 4]",
            ),
            ("BEGIN", "BEGIN"),
            ("INSERT INTO u VALUES (9, 'nine')", "INSERT 0 1"),
            ("TRUNCATE u", "TRUNCATE TABLE"),
            ("COMMIT", "COMMIT"),
            ("SELECT count(*) FROM u", "count:20 => 0 [SELECT 1]"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// A crash before COMMIT of a block that wrote rows and then rewrote and truncated their
/// tables leaves the tables as they were committed, writable.
#[test]
fn a_crash_undoes_ddl_made_after_the_blocks_own_writes() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        {
            let cluster = LocalCluster::open(rt2.clone(), fs.clone(), 2).await;
            let mut session = Session::new("u", "postgres");
            expect(&cluster, &mut session, SETUP).await;
            let steps: &[(&str, &str)] = &[
                ("BEGIN", "BEGIN"),
                ("INSERT INTO kept VALUES (51, 'v51')", "INSERT 0 1"),
                (
                    "ALTER TABLE kept ALTER COLUMN id TYPE bigint",
                    "ALTER TABLE",
                ),
                ("INSERT INTO doomed VALUES (4)", "INSERT 0 1"),
                ("TRUNCATE doomed", "TRUNCATE TABLE"),
                ("SELECT count(*) FROM kept", "count:20 => 51 [SELECT 1]"),
            ];
            expect(&cluster, &mut session, steps).await;
        }
        let crashed = fs.crash_fork(CrashMode::LoseAll);
        let cluster = LocalCluster::open(rt2.clone(), crashed, 2).await;
        let mut session = Session::new("u", "postgres");
        let steps: &[(&str, &str)] = &[
            (
                "SELECT count(*), max(id) FROM kept",
                "count:20,max:23 => 50|50 [SELECT 1]",
            ),
            ("SELECT count(*) FROM doomed", "count:20 => 3 [SELECT 1]"),
            ("INSERT INTO kept VALUES (51, 'v51')", "INSERT 0 1"),
            ("INSERT INTO doomed VALUES (4)", "INSERT 0 1"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}

/// Partial indexes (`CREATE [UNIQUE] INDEX ... WHERE`, Django's conditional
/// UniqueConstraint, soft-delete uniqueness): only rows the WHERE is true of have entries
/// and claims, through inserts, updates moving rows in and out, ON CONFLICT, a build over
/// rows already there, renames, rewrites and a restart. Outputs as PostgreSQL 15 gives them.
#[test]
fn partial_unique_indexes_cover_only_the_rows_their_where_is_true_of() {
    for shards in [1, 2] {
        let rt = LocalRuntime::new(0);
        let rt2 = rt.clone();
        rt.block_on(async move {
            let fs = MemFs::new();
            {
                let cluster = LocalCluster::open(rt2.clone(), fs.clone(), shards).await;
                let mut session = Session::new("u", "postgres");
                let steps: &[(&str, &str)] = &[
                    ("CREATE TABLE u (id int PRIMARY KEY, email text, gone timestamptz, n int)", "CREATE TABLE"),
                    ("INSERT INTO u VALUES (1, 'a', NULL, 1), (2, 'a', '2024-01-01', 2), (3, 'b', NULL, 3)", "INSERT 0 3"),
                    ("UPDATE u SET gone = NULL WHERE id = 2", "UPDATE 1"),
                    ("CREATE UNIQUE INDEX u_live ON u (email) WHERE gone IS NULL", "ERR 23505*"),
                    ("UPDATE u SET gone = '2024-01-01' WHERE id = 2", "UPDATE 1"),
                    ("CREATE UNIQUE INDEX u_live ON u (email) WHERE gone IS NULL", "CREATE INDEX"),
                    ("INSERT INTO u VALUES (4, 'a', NULL, 4)", "ERR 23505 duplicate key value violates unique constraint \"u_live\" [DETAIL: Key (email)=(a) already exists.]"),
                    ("INSERT INTO u VALUES (4, 'a', '2024-02-01', 4)", "INSERT 0 1"),
                    ("UPDATE u SET gone = NULL WHERE id = 2", "ERR 23505*"),
                    ("UPDATE u SET gone = now() WHERE id = 1", "UPDATE 1"),
                    ("UPDATE u SET gone = NULL WHERE id = 2", "UPDATE 1"),
                    // ON CONFLICT infers the partial index only with its WHERE.
                    ("INSERT INTO u VALUES (5, 'a', NULL, 5) ON CONFLICT (email) DO NOTHING", "ERR 42P10*"),
                    ("INSERT INTO u VALUES (5, 'a', NULL, 5) ON CONFLICT (email) WHERE gone IS NULL DO NOTHING", "INSERT 0 0"),
                    ("INSERT INTO u VALUES (5, 'a', NULL, 5) ON CONFLICT DO NOTHING", "INSERT 0 0"),
                    ("INSERT INTO u VALUES (5, 'a', NULL, 5) ON CONFLICT (email) WHERE Gone IS NULL DO NOTHING", "INSERT 0 0"),
                    ("INSERT INTO u VALUES (5, 'a', NULL, 5) ON CONFLICT (email) WHERE gone IS NOT NULL DO NOTHING", "ERR 42P10*"),
                    ("INSERT INTO u VALUES (6, 'a', NULL, 6) ON CONFLICT (email) WHERE gone IS NULL DO UPDATE SET n = excluded.n", "INSERT 0 1"),
                    (
                        "SELECT id, email, gone IS NULL AS live, n FROM u ORDER BY id",
                        "id:23,email:25,live:16,n:23 => 1|a|f|1 / 2|a|t|6 / 3|b|t|3 / 4|a|f|4 [SELECT 4]",
                    ),
                    ("SELECT pg_get_indexdef('u_live'::regclass)", "pg_get_indexdef:25 => CREATE UNIQUE INDEX u_live ON public.u USING btree (email) WHERE (gone IS NULL) [SELECT 1]"),
                    ("SELECT count(*) FROM pg_index WHERE indpred IS NOT NULL", "count:20 => 1 [SELECT 1]"),
                    // A partial index is read only for a query whose WHERE implies its own:
                    // every row is found either way.
                    ("CREATE INDEX u_big ON u (n) WHERE n > 2", "CREATE INDEX"),
                    ("SELECT id FROM u WHERE n = 1", "id:23 => 1 [SELECT 1]"),
                    ("EXPLAIN SELECT id FROM u WHERE n = 1", "*Scan on public.u (every shard*"),
                    ("SELECT id FROM u WHERE n = 3 AND n > 2", "id:23 => 3 [SELECT 1]"),
                    ("EXPLAIN SELECT id FROM u WHERE n = 3 AND n > 2", "*Scan on public.u (index u_big;*"),
                    ("SELECT email FROM u WHERE gone IS NULL AND email = 'a'", "email:25 => a [SELECT 1]"),
                    ("EXPLAIN SELECT email FROM u WHERE gone IS NULL AND email = 'a'", "*Scan on public.u (index u_live;*"),
                    ("EXPLAIN SELECT email FROM u WHERE email = 'a'", "*Scan on public.u (every shard*"),
                    ("CREATE INDEX u_some ON u (id) WHERE email IS NOT NULL", "CREATE INDEX"),
                    ("EXPLAIN SELECT email FROM u WHERE id > 2 AND email > 'a'", "*Scan on public.u (index u_some;*"),
                    ("SELECT id FROM u WHERE id > 2 AND email > 'a' ORDER BY id", "id:23 => 3 [SELECT 1]"),
                    ("DROP INDEX u_some", "DROP INDEX"),
                    ("CREATE INDEX u_bad ON u (n) WHERE n", "ERR 42804 argument of WHERE must be type boolean, not type integer"),
                    ("CREATE UNIQUE INDEX u_bad ON u (email) WHERE gone > now()", "ERR 42P17 functions in index predicate must be marked IMMUTABLE"),
                    ("CREATE INDEX u_bad ON u (n) WHERE random() > 0.5", "ERR 42P17*"),
                    ("CREATE INDEX u_bad ON u (n) WHERE lower(email) = 'a'", "CREATE INDEX"),
                    ("DROP INDEX u_bad", "DROP INDEX"),
                    // Renamed with its column; rebuilt by a rewrite.
                    ("ALTER TABLE u RENAME COLUMN gone TO gone_at", "ALTER TABLE"),
                    ("ALTER TABLE u ALTER COLUMN n TYPE bigint", "ALTER TABLE"),
                    ("INSERT INTO u VALUES (7, 'b', NULL, 7)", "ERR 23505*"),
                    ("INSERT INTO u VALUES (7, 'b', now(), 7)", "INSERT 0 1"),
                ];
                expect(&cluster, &mut session, steps).await;
                cluster.close().await;
            }
            let cluster = LocalCluster::open(rt2.clone(), fs, shards).await;
            let mut session = Session::new("u", "postgres");
            let steps: &[(&str, &str)] = &[
                ("INSERT INTO u VALUES (8, 'b', NULL, 8)", "ERR 23505*"),
                ("INSERT INTO u VALUES (8, 'c', NULL, 8)", "INSERT 0 1"),
                // A column its WHERE reads dropped: the index goes, as in PostgreSQL.
                ("ALTER TABLE u DROP COLUMN gone_at", "ALTER TABLE"),
                ("SELECT count(*) FROM pg_indexes WHERE tablename = 'u'", "count:20 => 2 [SELECT 1]"),
                ("INSERT INTO u VALUES (9, 'c', 9)", "INSERT 0 1"),
                // Columns are matched by where they came from, not by place: a DROP and an
                // ADD in one ALTER rename nothing in a WHERE.
                ("CREATE TABLE w (a int, b int, c int)", "CREATE TABLE"),
                ("CREATE UNIQUE INDEX w_c ON w (c) WHERE b > 0", "CREATE INDEX"),
                ("ALTER TABLE w DROP COLUMN a, ADD COLUMN z int", "ALTER TABLE"),
                ("SELECT pg_get_indexdef('w_c'::regclass)", "pg_get_indexdef:25 => CREATE UNIQUE INDEX w_c ON public.w USING btree (c) WHERE (b > 0) [SELECT 1]"),
                ("INSERT INTO w (b, c) VALUES (1, 5), (1, 5)", "ERR 23505*"),
                // A WHERE that no longer binds fails the ALTER instead of losing the index.
                ("CREATE TABLE v (k int, s text)", "CREATE TABLE"),
                ("CREATE UNIQUE INDEX v_k ON v (k) WHERE s <> 'x'", "CREATE INDEX"),
                ("ALTER TABLE v ALTER COLUMN s TYPE int USING length(s)", "ERR 22P02*"),
                ("SELECT count(*) FROM pg_indexes WHERE indexname = 'v_k'", "count:20 => 1 [SELECT 1]"),
            ];
            expect(&cluster, &mut session, steps).await;
            cluster.close().await;
        });
    }
}

/// INCLUDE columns are recorded and shown as PostgreSQL shows them; uniqueness stays the
/// key columns'; renamed with their column, and the index goes with a dropped one.
#[test]
fn covering_indexes_record_their_include_columns() {
    on_one_and_two_shards(|cluster, mut session, _| async move {
        let def = "SELECT pg_get_indexdef('u_e'::regclass)";
        let steps: &[(&str, &str)] = &[
            ("CREATE TABLE u (id int PRIMARY KEY, email text, n int, m int)", "CREATE TABLE"),
            ("INSERT INTO u VALUES (1, 'a', 1, 1), (2, 'b', 1, 2)", "INSERT 0 2"),
            ("CREATE UNIQUE INDEX u_e ON u (email) INCLUDE (n, m)", "CREATE INDEX"),
            ("CREATE INDEX u_n ON u (n) INCLUDE (nosuch)", "ERR 42703 column \"nosuch\" does not exist"),
            ("INSERT INTO u VALUES (3, 'a', 3, 3)", "ERR 23505*"),
            (
                "SELECT indnatts, indnkeyatts, indkey FROM pg_index WHERE indexrelid = 'u_e'::regclass",
                "indnatts:21,indnkeyatts:21,indkey:25 => 3|1|2 3 4 [SELECT 1]",
            ),
            (def, "pg_get_indexdef:25 => CREATE UNIQUE INDEX u_e ON public.u USING btree (email) INCLUDE (n, m) [SELECT 1]"),
            ("ALTER TABLE u RENAME COLUMN m TO mm", "ALTER TABLE"),
            (def, "pg_get_indexdef:25 => CREATE UNIQUE INDEX u_e ON public.u USING btree (email) INCLUDE (n, mm) [SELECT 1]"),
            ("ALTER TABLE u DROP COLUMN n", "ALTER TABLE"),
            ("SELECT count(*) FROM pg_indexes WHERE indexname = 'u_e'", "count:20 => 0 [SELECT 1]"),
        ];
        expect(&cluster, &mut session, steps).await;
        cluster.close().await;
    });
}
