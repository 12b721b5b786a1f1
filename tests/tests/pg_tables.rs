//! SQL tables through the real server with tokio-postgres (extended protocol): concurrent
//! read-modify-write statements lose no update, acknowledged rows and DDL survive `kill -9`,
//! and a long scan can be cancelled with a CancelRequest on another connection.

use std::time::{Duration, Instant};

use helios_tests::server::{Durability, HeliosServer, ServerOpts};
use tokio_postgres::{Client, NoTls};

const CLIENTS: usize = 8;
const INCREMENTS_PER_CLIENT: i64 = 40;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(server: &HeliosServer) -> Client {
    let config = format!(
        "host=127.0.0.1 port={} user=tester dbname=postgres connect_timeout=10",
        server.pg_port()
    );
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[test]
fn concurrent_updates_and_upserts_lose_nothing() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    runtime().block_on(async {
        let setup = connect(&server).await;
        setup
            .batch_execute(
                "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
                 INSERT INTO counters VALUES (1, 0), (2, 0), (3, 0);
                 CREATE TABLE hits (k text PRIMARY KEY, n bigint NOT NULL);",
            )
            .await
            .expect("setup");
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let client = connect(&server).await;
            tasks.push(tokio::spawn(async move {
                let update = client
                    .prepare("UPDATE counters SET n = n + 1 WHERE id = $1")
                    .await
                    .expect("prepare update");
                let upsert = client
                    .prepare(
                        "INSERT INTO hits VALUES ($1, 1) \
                         ON CONFLICT (k) DO UPDATE SET n = hits.n + excluded.n",
                    )
                    .await
                    .expect("prepare upsert");
                for i in 0..INCREMENTS_PER_CLIENT {
                    let id = 1 + ((c as i64 + i) % 3) as i32;
                    let changed = client.execute(&update, &[&id]).await.expect("update");
                    assert_eq!(changed, 1);
                    let key = format!("k{}", i % 5);
                    let changed = client.execute(&upsert, &[&key]).await.expect("upsert");
                    assert_eq!(changed, 1);
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let expected = CLIENTS as i64 * INCREMENTS_PER_CLIENT;
        let row = setup
            .query_one("SELECT sum(n)::bigint FROM counters", &[])
            .await
            .expect("sum");
        assert_eq!(row.get::<_, i64>(0), expected, "lost updates");
        let row = setup
            .query_one("SELECT sum(n)::bigint, count(*) FROM hits", &[])
            .await
            .expect("sum");
        assert_eq!(row.get::<_, i64>(0), expected, "lost upserts");
        assert_eq!(row.get::<_, i64>(1), 5);
    });
}

#[test]
fn acknowledged_rows_and_ddl_survive_kill_9() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(3).durability(Durability::Sync));
    let rt = runtime();
    rt.block_on(async {
        let client = connect(&server).await;
        // CREATE DATABASE cannot run in the implicit block of a query string.
        client
            .batch_execute("CREATE DATABASE other")
            .await
            .expect("create database");
        client
            .batch_execute(
                "CREATE TABLE kept (id int PRIMARY KEY, v text);
                 CREATE TABLE dropped (id int PRIMARY KEY);
                 CREATE VIEW kept_view AS SELECT id FROM kept WHERE id % 2 = 0;
                 DROP TABLE dropped;
                 CREATE TABLE serials (id bigserial PRIMARY KEY, note text);",
            )
            .await
            .expect("ddl");
        let insert = client
            .prepare("INSERT INTO kept VALUES ($1, $2)")
            .await
            .expect("prepare");
        for id in 0..200i32 {
            client
                .execute(&insert, &[&id, &format!("v{id}")])
                .await
                .expect("insert");
        }
        client
            .execute("UPDATE kept SET v = 'changed' WHERE id < 10", &[])
            .await
            .expect("update");
        client
            .execute("DELETE FROM kept WHERE id >= 190", &[])
            .await
            .expect("delete");
        let count: i64 = client
            .query_one("SELECT count(*) FROM kept", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, 190, "before the crash");
        for _ in 0..40 {
            client
                .execute("INSERT INTO serials (note) VALUES ('before')", &[])
                .await
                .expect("serial insert");
        }
    });
    server.kill9();
    server.restart();
    rt.block_on(async {
        let client = connect(&server).await;
        let count: i64 = client
            .query_one("SELECT count(*) FROM kept", &[])
            .await
            .expect("count")
            .get(0);
        let changed: i64 = client
            .query_one("SELECT count(*) FROM kept WHERE v = 'changed'", &[])
            .await
            .expect("count changed")
            .get(0);
        assert_eq!(count, 190);
        assert_eq!(changed, 10);
        let view = client
            .query_one("SELECT count(*) FROM kept_view", &[])
            .await
            .expect("view survives");
        assert_eq!(view.get::<_, i64>(0), 95);
        // The sequence never hands out a value twice across the crash (it may skip some).
        let before: i64 = client
            .query_one("SELECT max(id) FROM serials", &[])
            .await
            .expect("max id")
            .get(0);
        assert_eq!(before, 40);
        let after: i64 = client
            .query_one(
                "INSERT INTO serials (note) VALUES ('after') RETURNING id",
                &[],
            )
            .await
            .expect("insert after the crash")
            .get(0);
        assert!(after > before, "{after} after {before}");
        let err = client
            .query("SELECT * FROM dropped", &[])
            .await
            .expect_err("dropped table stays dropped");
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("42P01"),
            "undefined_table"
        );
    });
    // The database created before the crash accepts connections.
    rt.block_on(async {
        let config = format!(
            "host=127.0.0.1 port={} user=tester dbname=other connect_timeout=10",
            server.pg_port()
        );
        let (client, connection) = tokio_postgres::connect(&config, NoTls)
            .await
            .expect("connect to the database created before the crash");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client.simple_query("SELECT 1").await.expect("query");
    });
}

#[test]
fn a_long_scan_is_cancelled_by_a_cancel_request() {
    const ROWS: i64 = 100_000;
    const ATTEMPTS: usize = 5;
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    runtime().block_on(async {
        let client = connect(&server).await;
        client
            .batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            .await
            .expect("create");
        for chunk in 0..(ROWS / 25_000) {
            let from = chunk * 25_000 + 1;
            let to = from + 25_000 - 1;
            client
                .batch_execute(&format!(
                    "INSERT INTO big SELECT g, 'value ' || g FROM generate_series({from}, {to}) g"
                ))
                .await
                .expect("load");
        }
        // A scan whose filter matches nothing reads every row on every shard, slowly: a busy
        // shard looks at new sockets and mesh messages between time slices (glommio's
        // preemption), so the cancel takes a few slices to arrive through the accepting
        // shard, the shard serving the cancel connection and the target.
        let patterns: Vec<String> = ["zz", "yy", "xx", "ww", "vv", "uu", "tt", "ss", "rr", "qq"]
            .iter()
            .flat_map(|p| [format!("v LIKE '%{p}%'"), format!("v ILIKE '%{p}_%'")])
            .collect();
        let slow = format!("SELECT count(*) FROM big WHERE {}", patterns.join(" OR "));
        let slow = slow.as_str();
        let mut cancelled = false;
        for _ in 0..ATTEMPTS {
            let token = client.cancel_token();
            let canceller = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                token.cancel_query(NoTls).await
            });
            let started = Instant::now();
            let result = client.query_one(slow, &[]).await;
            canceller
                .await
                .expect("cancel task")
                .expect("cancel request sent");
            match result {
                Err(e) => {
                    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
                    cancelled = true;
                    break;
                }
                // The scan finished before the cancel arrived: try again.
                Ok(row) => {
                    assert_eq!(row.get::<_, i64>(0), 0);
                    eprintln!("scan finished in {:?} before the cancel", started.elapsed());
                }
            }
        }
        assert!(cancelled, "no attempt was cancelled");
        // statement_timeout cancels the same way, with its own message.
        client
            .batch_execute("SET statement_timeout = '20ms'")
            .await
            .expect("set statement_timeout");
        let mut timed_out = false;
        for _ in 0..ATTEMPTS {
            match client.query_one(slow, &[]).await {
                Err(e) => {
                    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
                    let message = e.as_db_error().map(|d| d.message().to_string());
                    assert_eq!(
                        message.as_deref(),
                        Some("canceling statement due to statement timeout")
                    );
                    timed_out = true;
                    break;
                }
                Ok(_) => eprintln!("scan finished within the statement timeout"),
            }
        }
        assert!(timed_out, "statement_timeout never fired");
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .expect("reset statement_timeout");
        // The connection (and the shard) keep working after a cancel.
        let row = client
            .query_one("SELECT count(*) FROM big", &[])
            .await
            .expect("count");
        assert_eq!(row.get::<_, i64>(0), ROWS);
    });
}

#[test]
fn discard_all_resets_the_session() {
    let server = HeliosServer::start(ServerOpts::default());
    runtime().block_on(async {
        let client = connect(&server).await;
        let statement = client.prepare("SELECT 1").await.expect("prepare");
        client
            .batch_execute("SET application_name = 'before'")
            .await
            .expect("set");
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        assert!(pid > 0, "pg_backend_pid is the BackendKeyData pid");
        client.batch_execute("DISCARD ALL").await.expect("discard");
        let name = client
            .simple_query("SHOW application_name")
            .await
            .expect("show");
        let value = name.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        });
        // Back to the start-up packet's value: tokio-postgres sends none, so the default.
        assert_eq!(value.as_deref(), Some(""));
        let err = client
            .query(&statement, &[])
            .await
            .expect_err("DISCARD ALL dropped the prepared statement");
        assert_eq!(err.code().map(|c| c.code()), Some("26000"));
        client.batch_execute("BEGIN").await.expect("begin");
        let err = client
            .batch_execute("DISCARD ALL")
            .await
            .expect_err("not inside a block");
        assert_eq!(err.code().map(|c| c.code()), Some("25001"));
        client.batch_execute("ROLLBACK").await.expect("rollback");
    });
}

/// The table files of a dropped table go without any later write: pgbench's `-i` leaves the
/// rows it loaded before `ADD PRIMARY KEY` rewrote them (half of the data dir) to a
/// dropped table id, and a read-only workload afterwards would otherwise keep them for good.
#[test]
fn a_dropped_tables_files_are_deleted_without_later_writes() {
    use futures_util::SinkExt;
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let table_files = || count_table_files(&server.data_dir());
    let before = table_files();
    runtime().block_on(async {
        let client = connect(&server).await;
        // Created and loaded (FREEZE, as pgbench loads) in one block, with no key: the COPY
        // writes table files directly.
        client
            .batch_execute("BEGIN; CREATE TABLE loaded (a int, b text)")
            .await
            .expect("create");
        let rows: String = (0..20_000).map(|i| format!("{i}\trow {i}\n")).collect();
        let sink = client
            .copy_in("COPY loaded FROM STDIN (FREEZE)")
            .await
            .expect("copy");
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(rows)).await.expect("send");
        assert_eq!(sink.finish().await.expect("finish"), 20_000);
        client.batch_execute("COMMIT").await.expect("commit");
        let loaded = table_files();
        assert!(
            loaded > before,
            "the load wrote table files: {before} → {loaded}"
        );
        client
            .batch_execute("DROP TABLE loaded")
            .await
            .expect("drop");
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while table_files() > before {
        assert!(
            Instant::now() < deadline,
            "a dropped table's {} files are still there",
            table_files() - before
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number of table files (`*.sst`) under `dir`, at any depth.
fn count_table_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                count_table_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|ext| ext == "sst"))
            }
        })
        .sum()
}
