//! SQL transactions through tokio-postgres against the real server on three shards:
//! atomicity (ROLLBACK, savepoints, read-your-own-writes, no dirty reads), the isolation
//! anomalies PostgreSQL prevents at READ COMMITTED and REPEATABLE READ (and write skew, which
//! it allows at REPEATABLE READ), row locks (FOR UPDATE / FOR SHARE), deadlock detection
//! (40P01), a bank-transfer invariant under concurrent clients across shards, kill -9 at
//! random instants during multi-shard commits followed by the invariant check, and kill -9
//! under point reads (every value a read returned survives).

use std::time::Duration;

use helios_tests::server::{Durability, HeliosServer, ServerOpts};
use tokio_postgres::Client;

mod pg_common;
use pg_common::{connect, ok, runtime, still_waiting};

fn code(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("not a server error: {error:?}"))
}

/// Runs statements that must fail; the error.
async fn fails(client: &Client, sql: &str) -> tokio_postgres::Error {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded"),
        Err(e) => e,
    }
}

/// The DETAIL field of a server error ("" when it has none).
fn detail(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .and_then(|e| e.detail())
        .unwrap_or_default()
        .to_string()
}

fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| error.to_string())
}

async fn one_i64(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn setup_accounts(client: &Client, accounts: i64, balance: i64) {
    ok(
        client,
        "CREATE TABLE acct (id int8 PRIMARY KEY, bal int8 NOT NULL, note text)",
    )
    .await;
    client
        .execute(
            "INSERT INTO acct SELECT g, $1::int8, 'x' FROM generate_series(1, $2::int8) g",
            &[&balance, &accounts],
        )
        .await
        .unwrap();
}

#[test]
fn rollback_savepoints_and_own_writes_across_shards() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        setup_accounts(&a, 30, 100).await;
        ok(&a, "CREATE INDEX acct_note ON acct (note)").await;

        // Writes on every shard, seen by the transaction itself (point reads, scans,
        // aggregates, the index), not by anyone else.
        ok(&a, "BEGIN").await;
        a.batch_execute(
            "UPDATE acct SET bal = bal + 1, note = 'y' WHERE id <= 10; \
             INSERT INTO acct VALUES (100, 5, 'new'); DELETE FROM acct WHERE id = 30",
        )
        .await
        .unwrap();
        assert_eq!(one_i64(&a, "SELECT sum(bal)::int8 FROM acct").await, 3000 + 10 + 5 - 100);
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 100").await, 5);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct WHERE note = 'y'").await, 10);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct WHERE note = 'x'").await, 19);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct WHERE id = 30").await, 0);
        assert_eq!(one_i64(&b, "SELECT sum(bal)::int8 FROM acct").await, 3000);
        assert_eq!(one_i64(&b, "SELECT count(*) FROM acct WHERE note = 'y'").await, 0);
        ok(&a, "ROLLBACK").await;
        assert_eq!(one_i64(&a, "SELECT sum(bal)::int8 FROM acct").await, 3000);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct").await, 30);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct WHERE note = 'y'").await, 0);

        // Savepoints: ROLLBACK TO undoes only what came after; it also clears an error.
        a.batch_execute(
            "BEGIN; UPDATE acct SET bal = 0 WHERE id = 1; SAVEPOINT s1; \
             UPDATE acct SET bal = 0 WHERE id = 2; SAVEPOINT s2; UPDATE acct SET bal = 0 WHERE id = 3",
        )
        .await
        .unwrap();
        ok(&a, "ROLLBACK TO SAVEPOINT s2").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 100);
        let err = fails(&a, "INSERT INTO acct VALUES (1, 1, 'dup')").await;
        assert_eq!(code(&err), "23505");
        let err = fails(&a, "SELECT 1").await;
        assert_eq!(code(&err), "25P02");
        ok(&a, "ROLLBACK TO s1").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 2").await, 100);
        ok(&a, "RELEASE SAVEPOINT s1").await;
        let err = fails(&a, "ROLLBACK TO s1").await;
        assert_eq!(code(&err), "3B001");
        ok(&a, "ROLLBACK").await;
        ok(&a, "BEGIN; UPDATE acct SET bal = 0 WHERE id = 1; SAVEPOINT s; UPDATE acct SET bal = 0 WHERE id = 2; RELEASE s; COMMIT").await;
        assert_eq!(one_i64(&b, "SELECT sum(bal)::int8 FROM acct WHERE id <= 3").await, 100);
        let err = fails(&a, "SAVEPOINT nope").await;
        assert_eq!(code(&err), "25P01");

        // A failing autocommit statement leaves nothing on any shard.
        let err = fails(&a, "UPDATE acct SET bal = 10 / (id - 17)").await;
        assert_eq!(code(&err), "22012");
        assert_eq!(one_i64(&b, "SELECT count(*) FROM acct WHERE bal NOT IN (0, 100)").await, 0);
        assert_eq!(one_i64(&b, "SELECT sum(bal)::int8 FROM acct").await, 2800);

        // An abandoned connection's transaction ends undone and releases its locks.
        {
            let c = connect(port).await;
            ok(&c, "BEGIN; UPDATE acct SET bal = -1 WHERE id = 5").await;
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            b.batch_execute("UPDATE acct SET bal = bal WHERE id = 5"),
        )
        .await
        .expect("the dropped connection's lock is released")
        .unwrap();
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 5").await, 100);

        // idle_in_transaction_session_timeout ends a session that sits in a block holding
        // locks: the writer waiting for its row goes ahead, the session is gone (25P03).
        let c = connect(port).await;
        ok(
            &c,
            "SET idle_in_transaction_session_timeout = '300ms'; BEGIN; \
             UPDATE acct SET bal = -1 WHERE id = 6",
        )
        .await;
        tokio::time::timeout(
            Duration::from_secs(10),
            b.batch_execute("UPDATE acct SET bal = bal + 1 WHERE id = 6"),
        )
        .await
        .expect("the idle transaction's lock is released")
        .unwrap();
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 6").await, 101);
        assert!(c.batch_execute("SELECT 1").await.is_err(), "the idle session is gone");
        // Outside a block the setting does not end a session.
        let d = connect(port).await;
        ok(&d, "SET idle_in_transaction_session_timeout = '100ms'").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok(&d, "SELECT 1").await;
    });
}

#[test]
fn isolation_anomalies_as_postgresql_allows_them() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        setup_accounts(&a, 20, 100).await;

        // Dirty read: never.
        ok(&a, "BEGIN; UPDATE acct SET bal = 999 WHERE id = 1").await;
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 1").await, 100);
        ok(&a, "ROLLBACK").await;

        // Lost update at READ COMMITTED: the second writer waits, then adds to the new value.
        ok(&a, "BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = 2").await;
        ok(&b, "BEGIN").await;
        let mut second = Box::pin(b.batch_execute("UPDATE acct SET bal = bal + 10 WHERE id = 2"));
        assert!(
            still_waiting(&mut second).await,
            "a writer waits for the row lock"
        );
        ok(&a, "COMMIT").await;
        second.await.unwrap();
        ok(&b, "COMMIT").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 2").await, 111);

        // An UPDATE the coordinator computes (its SET reads a subquery) from a version that
        // changed before it got the lock: 40001, never a lost update.
        ok(&a, "BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = 5").await;
        let mut second =
            Box::pin(b.batch_execute("UPDATE acct SET bal = bal + (SELECT 100) WHERE id = 5"));
        assert!(still_waiting(&mut second).await);
        ok(&a, "COMMIT").await;
        assert_eq!(code(&second.await.unwrap_err()), "40001");
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 5").await, 101);
        ok(&b, "UPDATE acct SET bal = bal + (SELECT 100) WHERE id = 5").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 5").await, 201);

        // A DELETE that waited for a row's lock re-checks its WHERE on the new version, as
        // PostgreSQL does: the row no longer matches, so it stays (and is not counted).
        ok(&a, "BEGIN; UPDATE acct SET note = 'taken' WHERE id = 6").await;
        let mut delete =
            Box::pin(b.simple_query("DELETE FROM acct WHERE note = 'x' AND id IN (6, 7)"));
        assert!(still_waiting(&mut delete).await);
        ok(&a, "COMMIT").await;
        let done = delete.await.unwrap();
        let tag = done.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        assert_eq!(tag, Some(1), "only row 7 still matched");
        assert_eq!(
            one_i64(&a, "SELECT count(*) FROM acct WHERE id IN (6, 7)").await,
            1
        );
        ok(&a, "INSERT INTO acct VALUES (7, 100, 'x')").await;

        // Non-repeatable read: READ COMMITTED sees the new value, REPEATABLE READ does not.
        ok(&a, "BEGIN").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 100);
        ok(&b, "UPDATE acct SET bal = 50 WHERE id = 3").await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 50);
        ok(&a, "COMMIT").await;
        ok(&a, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
        let row = a
            .query_one("SHOW transaction_isolation", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "repeatable read");
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 50);
        let total = one_i64(&a, "SELECT sum(bal)::int8 FROM acct").await;
        ok(
            &b,
            "UPDATE acct SET bal = 60 WHERE id = 3; INSERT INTO acct VALUES (500, 7, 'p')",
        )
        .await;
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 50);
        // Phantoms: none at REPEATABLE READ.
        assert_eq!(one_i64(&a, "SELECT sum(bal)::int8 FROM acct").await, total);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct").await, 20);
        // A row inserted after the snapshot is not there for its changes either (by primary
        // key too, where READ COMMITTED skips the read first).
        assert_eq!(
            a.execute("UPDATE acct SET bal = 1 WHERE id = 500", &[])
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            a.execute("DELETE FROM acct WHERE id = 500", &[])
                .await
                .unwrap(),
            0
        );
        // Lost update at REPEATABLE READ: first committer wins, the other gets 40001.
        let err = fails(&a, "UPDATE acct SET bal = bal + 1 WHERE id = 3").await;
        assert_eq!(code(&err), "40001");
        ok(&a, "ROLLBACK").await;
        let row = a
            .query_one("SHOW transaction_isolation", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "read committed");

        // Two REPEATABLE READ writers of one row: the second waits, then fails.
        ok(
            &a,
            "BEGIN ISOLATION LEVEL REPEATABLE READ; UPDATE acct SET bal = bal + 1 WHERE id = 4",
        )
        .await;
        ok(
            &b,
            "BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT 1",
        )
        .await;
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 4").await, 100);
        let mut second = Box::pin(b.batch_execute("UPDATE acct SET bal = bal + 1 WHERE id = 4"));
        assert!(still_waiting(&mut second).await);
        ok(&a, "COMMIT").await;
        assert_eq!(code(&second.await.unwrap_err()), "40001");
        ok(&b, "ROLLBACK").await;

        // Write skew: possible at REPEATABLE READ, as in PostgreSQL (rows on different shards).
        ok(
            &a,
            "CREATE TABLE oncall (doctor int8 PRIMARY KEY, on_call bool)",
        )
        .await;
        ok(&a, "INSERT INTO oncall VALUES (1, true), (2, true)").await;
        ok(&a, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
        ok(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
        let on = "SELECT count(*) FROM oncall WHERE on_call";
        assert_eq!(one_i64(&a, on).await, 2);
        assert_eq!(one_i64(&b, on).await, 2);
        ok(&a, "UPDATE oncall SET on_call = false WHERE doctor = 1").await;
        ok(&b, "UPDATE oncall SET on_call = false WHERE doctor = 2").await;
        ok(&a, "COMMIT").await;
        ok(&b, "COMMIT").await;
        assert_eq!(one_i64(&a, on).await, 0);

        // SERIALIZABLE is refused, never silently weaker.
        let err = fails(&a, "BEGIN ISOLATION LEVEL SERIALIZABLE").await;
        assert_eq!(code(&err), "0A000");
        // Session defaults and READ ONLY.
        ok(
            &a,
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )
        .await;
        ok(&a, "BEGIN").await;
        let row = a
            .query_one("SHOW transaction_isolation", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "repeatable read");
        ok(
            &a,
            "COMMIT; SET default_transaction_isolation = 'read committed'",
        )
        .await;
        ok(&a, "BEGIN READ ONLY").await;
        let err = fails(&a, "UPDATE acct SET bal = 0 WHERE id = 9").await;
        assert_eq!(code(&err), "25006");
        ok(&a, "ROLLBACK").await;
    });
}

#[test]
fn row_locks_and_deadlock_detection() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        let c = connect(port).await;
        setup_accounts(&a, 10, 100).await;

        // FOR UPDATE: a writer waits until the locker commits, then sees its change.
        ok(&a, "BEGIN").await;
        let row = a
            .query_one("SELECT bal FROM acct WHERE id = 1 FOR UPDATE", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 100);
        let mut writer = Box::pin(b.batch_execute("UPDATE acct SET bal = bal * 2 WHERE id = 1"));
        assert!(
            still_waiting(&mut writer).await,
            "FOR UPDATE blocks writers"
        );
        ok(&a, "UPDATE acct SET bal = bal + 1 WHERE id = 1; COMMIT").await;
        writer.await.unwrap();
        assert_eq!(one_i64(&c, "SELECT bal FROM acct WHERE id = 1").await, 202);

        // FOR SHARE: other sharers go ahead, writers wait.
        ok(&a, "BEGIN; SELECT * FROM acct WHERE id = 2 FOR SHARE").await;
        ok(&b, "BEGIN; SELECT * FROM acct WHERE id = 2 FOR SHARE").await;
        let mut writer = Box::pin(c.batch_execute("UPDATE acct SET bal = 0 WHERE id = 2"));
        assert!(still_waiting(&mut writer).await, "FOR SHARE blocks writers");
        ok(&a, "COMMIT").await;
        assert!(
            still_waiting(&mut writer).await,
            "one sharer still holds it"
        );
        ok(&b, "COMMIT").await;
        writer.await.unwrap();

        // FOR KEY SHARE and FOR NO KEY UPDATE (through the extended protocol too) take
        // PostgreSQL's weaker locks: FOR KEY SHARE lets an UPDATE of other columns through
        // and holds off a DELETE; FOR NO KEY UPDATE holds off FOR SHARE, not FOR KEY SHARE.
        ok(&a, "BEGIN; SELECT * FROM acct WHERE id = 5 FOR KEY SHARE").await;
        b.query("SELECT * FROM acct WHERE id = $1 FOR KEY SHARE", &[&5i64])
            .await
            .unwrap();
        ok(&c, "UPDATE acct SET bal = 1 WHERE id = 5").await;
        let mut deleter = Box::pin(c.batch_execute("BEGIN; DELETE FROM acct WHERE id = 5"));
        assert!(
            still_waiting(&mut deleter).await,
            "FOR KEY SHARE blocks a DELETE"
        );
        ok(
            &a,
            "COMMIT; BEGIN; SELECT * FROM acct WHERE id = 7 FOR NO KEY UPDATE",
        )
        .await;
        deleter.await.unwrap();
        ok(&c, "ROLLBACK").await;
        b.query("SELECT * FROM acct WHERE id = $1 FOR KEY SHARE", &[&7i64])
            .await
            .unwrap();
        let mut locker = Box::pin(b.batch_execute("SELECT * FROM acct WHERE id = 7 FOR SHARE"));
        assert!(
            still_waiting(&mut locker).await,
            "FOR NO KEY UPDATE blocks sharers"
        );
        ok(&a, "COMMIT").await;
        locker.await.unwrap();
        let mut locker = Box::pin(
            b.batch_execute("BEGIN; SELECT * FROM acct AS x WHERE id = 7 FOR NO KEY UPDATE OF x"),
        );
        locker.as_mut().await.unwrap();
        let mut updater = Box::pin(c.batch_execute("UPDATE acct SET bal = 2 WHERE id = 7"));
        assert!(
            still_waiting(&mut updater).await,
            "FOR NO KEY UPDATE OF blocks writers"
        );
        ok(&b, "COMMIT").await;
        updater.await.unwrap();

        // Waits that end early: NOWAIT, lock_timeout, statement_timeout.
        ok(&a, "BEGIN; UPDATE acct SET note = 'held' WHERE id = 6").await;
        let err = fails(
            &b,
            "BEGIN; SELECT * FROM acct WHERE id = 6 FOR UPDATE NOWAIT",
        )
        .await;
        assert_eq!(code(&err), "55P03");
        ok(&b, "ROLLBACK; SET lock_timeout = '200ms'").await;
        let err = fails(&b, "UPDATE acct SET note = 'b' WHERE id = 6").await;
        assert_eq!(code(&err), "55P03");
        assert_eq!(message(&err), "canceling statement due to lock timeout");
        ok(&b, "SET lock_timeout = 0; SET statement_timeout = '200ms'").await;
        let err = fails(&b, "UPDATE acct SET note = 'b' WHERE id = 6").await;
        assert_eq!(code(&err), "57014");
        ok(&b, "SET statement_timeout = 0").await;
        ok(&a, "COMMIT").await;
        ok(&b, "UPDATE acct SET note = 'b' WHERE id = 6").await;

        // A deadlock across shards: one of the two gets 40P01, the other goes on.
        ok(&a, "BEGIN; UPDATE acct SET note = 'a' WHERE id = 3").await;
        ok(&b, "BEGIN; UPDATE acct SET note = 'b' WHERE id = 4").await;
        let mut first = Box::pin(a.batch_execute("UPDATE acct SET note = 'a' WHERE id = 4"));
        assert!(still_waiting(&mut first).await);
        let second = b
            .batch_execute("UPDATE acct SET note = 'b' WHERE id = 3")
            .await;
        assert_eq!(code(&second.unwrap_err()), "40P01");
        ok(&b, "ROLLBACK").await;
        first.await.unwrap();
        ok(&a, "COMMIT").await;
        let rows = c
            .query("SELECT note FROM acct WHERE id IN (3, 4) ORDER BY id", &[])
            .await
            .unwrap();
        let notes: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(notes, ["a", "a"]);
    });
}

/// One transfer in its own transaction; retried on 40001 / 40P01. Returns once committed.
async fn transfer(client: &Client, from: i64, to: i64, amount: i64, repeatable: bool) {
    loop {
        let begin = if repeatable {
            "BEGIN ISOLATION LEVEL REPEATABLE READ"
        } else {
            "BEGIN"
        };
        client.batch_execute(begin).await.unwrap();
        let run = async {
            client
                .execute(
                    "UPDATE acct SET bal = bal - $1 WHERE id = $2",
                    &[&amount, &from],
                )
                .await?;
            client
                .execute(
                    "UPDATE acct SET bal = bal + $1 WHERE id = $2",
                    &[&amount, &to],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO moves (src, dst, amount) VALUES ($1, $2, $3)",
                    &[&from, &to, &amount],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        match run.await {
            Ok(()) => return,
            Err(e) if matches!(code(&e).as_str(), "40001" | "40P01") => {
                ok(client, "ROLLBACK").await;
            }
            Err(e) => panic!("transfer failed: {e:?}"),
        }
    }
}

async fn setup_bank(client: &Client, accounts: i64) {
    setup_accounts(client, accounts, 1000).await;
    ok(
        client,
        "CREATE TABLE moves (id serial PRIMARY KEY, src int8, dst int8, amount int8)",
    )
    .await;
}

/// Every account's balance is its start plus what `moves` says came in and went out: each
/// transfer's three writes (on up to three shards) are all there or none are.
async fn check_bank(client: &Client, accounts: i64) {
    let total = one_i64(client, "SELECT sum(bal)::int8 FROM acct").await;
    assert_eq!(total, accounts * 1000, "money created or destroyed");
    let rows = client
        .query(
            "SELECT a.id, a.bal, \
               (SELECT coalesce(sum(amount), 0)::int8 FROM moves WHERE dst = a.id) - \
               (SELECT coalesce(sum(amount), 0)::int8 FROM moves WHERE src = a.id) \
             FROM acct a ORDER BY a.id",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (id, bal, net): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            bal,
            1000 + net,
            "account {id}: balance and history disagree"
        );
    }
}

#[test]
fn bank_transfers_keep_the_total_under_concurrent_clients() {
    const ACCOUNTS: i64 = 12;
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime(), async move {
        let admin = connect(port).await;
        setup_bank(&admin, ACCOUNTS).await;
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let mut workers = Vec::new();
        for w in 0..6i64 {
            let client = connect(port).await;
            workers.push(tokio::task::spawn_local(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ w as u64;
                for _ in 0..40 {
                    let seed = next_random(&mut seed);
                    let from = (seed % ACCOUNTS as u64) as i64 + 1;
                    let to = ((seed >> 8) % ACCOUNTS as u64) as i64 + 1;
                    if from != to {
                        transfer(&client, from, to, (seed >> 16) as i64 % 50 + 1, w % 2 == 0).await;
                    }
                }
            }));
        }
        // Auditors: a statement's snapshot and a REPEATABLE READ transaction's both see every
        // transfer whole or not at all.
        let mut auditors = Vec::new();
        for repeatable in [false, true] {
            let client = connect(port).await;
            let stop = stop.clone();
            auditors.push(tokio::task::spawn_local(async move {
                let mut audits = 0;
                while !stop.get() {
                    if repeatable {
                        ok(&client, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
                    }
                    let total = one_i64(&client, "SELECT sum(bal)::int8 FROM acct").await;
                    assert_eq!(
                        total,
                        ACCOUNTS * 1000,
                        "an auditor saw a half-done transfer"
                    );
                    if repeatable {
                        let again = one_i64(&client, "SELECT sum(bal)::int8 FROM acct").await;
                        assert_eq!(again, total);
                        ok(&client, "COMMIT").await;
                    }
                    audits += 1;
                }
                audits
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        stop.set(true);
        for a in auditors {
            assert!(a.await.unwrap() > 0);
        }
        check_bank(&admin, ACCOUNTS).await;
        assert!(one_i64(&admin, "SELECT count(*) FROM moves").await > 200);
    });
}

/// The next number of a xorshift sequence (tests pick rows with it, reproducibly).
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Kills the server with SIGKILL once `progress` has reached `at_least` (60 s deadline) and
/// `delay_ms` more have passed, setting `killed` first so clients know their errors are
/// expected.
async fn kill9_after(
    server: &mut HeliosServer,
    progress: &std::cell::Cell<usize>,
    at_least: usize,
    delay_ms: u64,
    killed: &std::cell::Cell<bool>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while progress.get() < at_least {
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    killed.set(true);
    server.kill9();
}

#[test]
fn kill9_during_multi_shard_commits_leaves_every_transfer_whole() {
    const ACCOUNTS: i64 = 9;
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(3).durability(Durability::Sync));
    let port = server.pg_port();
    let rt = runtime();
    rt.block_on(async {
        let admin = connect(port).await;
        setup_bank(&admin, ACCOUNTS).await;
    });
    // The moves.id of every acknowledged transfer.
    let mut acknowledged: Vec<i32> = Vec::new();
    for cycle in 0..3u64 {
        let port = server.pg_port();
        // Clients transfer until the server dies under them; each counts its acknowledged
        // commits.
        let done = rt.block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let mut tasks = Vec::new();
                    // Commits acknowledged so far in this cycle, and the first unexpected
                    // error a client stopped on before the kill.
                    let committed = std::rc::Rc::new(std::cell::Cell::new(0usize));
                    let killed = std::rc::Rc::new(std::cell::Cell::new(false));
                    for w in 0..4u64 {
                        let client = connect(port).await;
                        let committed = committed.clone();
                        let killed = killed.clone();
                        tasks.push(tokio::task::spawn_local(async move {
                            let mut n: Vec<i32> = Vec::new();
                            let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ (w + 7 * cycle);
                            loop {
                                let seed = next_random(&mut seed);
                                let from = (seed % ACCOUNTS as u64) as i64 + 1;
                                let to = ((seed >> 8) % ACCOUNTS as u64) as i64 + 1;
                                if from == to {
                                    continue;
                                }
                                let r = async {
                                    client.batch_execute("BEGIN").await?;
                                    client
                                        .execute("UPDATE acct SET bal = bal - 1 WHERE id = $1", &[&from])
                                        .await?;
                                    client
                                        .execute("UPDATE acct SET bal = bal + 1 WHERE id = $1", &[&to])
                                        .await?;
                                    let row = client
                                        .query_one(
                                            "INSERT INTO moves (src, dst, amount) VALUES ($1, $2, 1) RETURNING id",
                                            &[&from, &to],
                                        )
                                        .await?;
                                    client.batch_execute("COMMIT").await?;
                                    Ok::<i32, tokio_postgres::Error>(row.get(0))
                                }
                                .await;
                                match r {
                                    Ok(id) => {
                                        n.push(id);
                                        committed.set(committed.get() + 1);
                                    }
                                    Err(e) if e.code().is_some_and(|c| {
                                        matches!(c.code(), "40001" | "40P01")
                                    }) =>
                                    {
                                        let _ = client.batch_execute("ROLLBACK").await;
                                    }
                                    Err(e) => {
                                        assert!(killed.get(), "a transfer failed before the kill: {e:?}");
                                        return n;
                                    }
                                }
                            }
                        }));
                    }
                    // Kill at a pseudo-random instant while commits are in flight: once
                    // some have been acknowledged (a loaded machine may take a while).
                    kill9_after(&mut server, &committed, 20 + 10 * cycle as usize, 7 * cycle + 3, &killed)
                        .await;
                    let mut n = Vec::new();
                    for t in tasks {
                        n.extend(t.await.unwrap());
                    }
                    n
                })
                .await
        });
        assert!(
            !done.is_empty(),
            "cycle {cycle}: no transfer committed before the kill"
        );
        acknowledged.extend(done);
        server.restart();
        let port = server.pg_port();
        rt.block_on(async {
            let admin = connect(port).await;
            check_bank(&admin, ACCOUNTS).await;
            let rows = admin.query("SELECT id FROM moves", &[]).await.unwrap();
            let present: std::collections::HashSet<i32> = rows.iter().map(|r| r.get(0)).collect();
            let lost: Vec<i32> = acknowledged
                .iter()
                .copied()
                .filter(|id| !present.contains(id))
                .collect();
            if !lost.is_empty() {
                eprintln!("{}", server.log());
            }
            assert!(
                lost.is_empty(),
                "acknowledged transfers lost after kill -9 {cycle}: {lost:?} of {}",
                acknowledged.len()
            );
        });
    }
}

/// A value a primary-key read returned survives kill -9: the read waited until the write it
/// saw was durable (helios waits for the newest write to the row read, not for the whole log;
/// see `cluster::scan_durable_lsn`). Writers bump counters while readers read them by key;
/// after each kill every counter holds at least the largest value any reader or writer was
/// given for it.
#[test]
fn kill9_keeps_every_value_a_point_read_returned() {
    const ROWS: i64 = 8;
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let rt = runtime();
    rt.block_on(async {
        let admin = connect(server.pg_port()).await;
        admin
            .batch_execute("CREATE TABLE counters (id int PRIMARY KEY, v bigint NOT NULL)")
            .await
            .unwrap();
        for id in 1..=ROWS {
            admin
                .execute("INSERT INTO counters VALUES ($1::int, 0)", &[&(id as i32)])
                .await
                .unwrap();
        }
    });
    // The largest value each counter was seen with by a client (read or written).
    let mut seen = vec![0i64; ROWS as usize + 1];
    for cycle in 0..3u64 {
        let port = server.pg_port();
        let observed = rt.block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let reads = std::rc::Rc::new(std::cell::Cell::new(0usize));
                    let killed = std::rc::Rc::new(std::cell::Cell::new(false));
                    let mut tasks = Vec::new();
                    for worker in 0..4u64 {
                        let client = connect(port).await;
                        let (reads, killed) = (reads.clone(), killed.clone());
                        tasks.push(tokio::task::spawn_local(async move {
                            let mut max = vec![0i64; ROWS as usize + 1];
                            let writer = worker < 2;
                            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (worker + 11 * cycle);
                            loop {
                                let id = (next_random(&mut seed) % ROWS as u64) as i32 + 1;
                                let sql = if writer {
                                    "UPDATE counters SET v = v + 1 WHERE id = $1 RETURNING v"
                                } else {
                                    "SELECT v FROM counters WHERE id = $1"
                                };
                                match client.query_one(sql, &[&id]).await {
                                    Ok(row) => {
                                        let v: i64 = row.get(0);
                                        let slot = &mut max[id as usize];
                                        *slot = (*slot).max(v);
                                        if !writer {
                                            reads.set(reads.get() + 1);
                                        }
                                    }
                                    Err(e) => {
                                        assert!(
                                            killed.get(),
                                            "a statement failed before the kill: {e:?}"
                                        );
                                        return max;
                                    }
                                }
                            }
                        }));
                    }
                    kill9_after(
                        &mut server,
                        &reads,
                        200 + 100 * cycle as usize,
                        5 * cycle + 2,
                        &killed,
                    )
                    .await;
                    let mut max = vec![0i64; ROWS as usize + 1];
                    for task in tasks {
                        for (slot, v) in max.iter_mut().zip(task.await.unwrap()) {
                            *slot = (*slot).max(v);
                        }
                    }
                    max
                })
                .await
        });
        for (slot, v) in seen.iter_mut().zip(observed) {
            *slot = (*slot).max(v);
        }
        server.restart();
        rt.block_on(async {
            let admin = connect(server.pg_port()).await;
            let rows = admin
                .query("SELECT id, v FROM counters ORDER BY id", &[])
                .await
                .unwrap();
            assert_eq!(rows.len(), ROWS as usize);
            for row in rows {
                let (id, v): (i32, i64) = (row.get(0), row.get(1));
                assert!(
                    v >= seen[id as usize],
                    "cycle {cycle}: counter {id} is {v} after kill -9, but a client was given {}",
                    seen[id as usize]
                );
            }
        });
    }
}

#[test]
fn unique_indexes_are_enforced_across_shards() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        a.batch_execute(
            "CREATE TABLE users (id int8 PRIMARY KEY, email text UNIQUE, team int8, n int8); \
             INSERT INTO users SELECT g, 'u' || g, g % 4, g FROM generate_series(1, 40) g",
        )
        .await
        .unwrap();
        // The rows are spread over the shards; a value's claim lives on one shard, so a
        // duplicate is found whatever shard its row goes to.
        for id in 100..110i64 {
            let err = a
                .execute("INSERT INTO users VALUES ($1, 'u7', 0, 0)", &[&id])
                .await
                .unwrap_err();
            assert_eq!(code(&err), "23505");
            assert!(message(&err).contains("users_email_key"), "{err:?}");
        }
        let err = fails(&a, "UPDATE users SET email = 'u8' WHERE id = 9").await;
        assert_eq!(code(&err), "23505");
        // A failed multi-row statement leaves nothing behind (its claims included).
        let err = fails(
            &a,
            "UPDATE users SET email = 'x' || (n % 39) WHERE id <= 40",
        )
        .await;
        assert_eq!(code(&err), "23505");
        assert_eq!(
            one_i64(&a, "SELECT count(*) FROM users WHERE email LIKE 'x%'").await,
            0
        );
        ok(&a, "INSERT INTO users VALUES (300, 'x1', 0, 0)").await;
        // Freed values can be taken again; NULLs never conflict.
        a.batch_execute(
            "UPDATE users SET email = 'moved' WHERE id = 10; \
             INSERT INTO users VALUES (200, 'u10', 0, 0); \
             INSERT INTO users VALUES (201, NULL, 0, 0), (202, NULL, 0, 0); \
             DELETE FROM users WHERE id = 11; INSERT INTO users VALUES (203, 'u11', 0, 0)",
        )
        .await
        .unwrap();

        // Two transactions taking one value: the second waits for the first; it fails if the
        // first commits and goes ahead if it rolls back.
        ok(&a, "BEGIN; INSERT INTO users VALUES (400, 'race', 0, 0)").await;
        ok(&b, "BEGIN").await;
        let mut second = Box::pin(b.batch_execute("INSERT INTO users VALUES (401, 'race', 0, 0)"));
        assert!(
            still_waiting(&mut second).await,
            "the second claimant waits"
        );
        ok(&a, "COMMIT").await;
        assert_eq!(code(&second.await.unwrap_err()), "23505");
        ok(&b, "ROLLBACK").await;
        ok(&a, "BEGIN; INSERT INTO users VALUES (402, 'race2', 0, 0)").await;
        ok(&b, "BEGIN").await;
        let mut second = Box::pin(b.batch_execute("INSERT INTO users VALUES (403, 'race2', 0, 0)"));
        assert!(still_waiting(&mut second).await);
        ok(&a, "ROLLBACK").await;
        second.await.unwrap();
        ok(&b, "COMMIT").await;
        assert_eq!(
            one_i64(&a, "SELECT id FROM users WHERE email = 'race2'").await,
            403
        );

        // CREATE UNIQUE INDEX over existing rows: refused on duplicates (and not created),
        // built otherwise and enforced from then on.
        let err = fails(&a, "CREATE UNIQUE INDEX users_team ON users (team)").await;
        assert_eq!(code(&err), "23505");
        assert!(
            message(&err).contains("could not create unique index"),
            "{err:?}"
        );
        let shown = detail(&err);
        assert!(
            shown.starts_with("Key (team)=(") && shown.ends_with(") is duplicated."),
            "{shown}"
        );
        ok(&a, "INSERT INTO users VALUES (500, 'z', 1, 0)").await;
        ok(
            &a,
            "DELETE FROM users WHERE n = 0; CREATE UNIQUE INDEX users_n ON users (n)",
        )
        .await;
        let err = fails(&a, "INSERT INTO users VALUES (501, 'zz', 1, 5)").await;
        assert_eq!(code(&err), "23505");
        assert_eq!(detail(&err), "Key (n)=(5) already exists.");
        // TRUNCATE releases every claim.
        ok(
            &a,
            "TRUNCATE users; INSERT INTO users VALUES (1, 'u7', 0, 5)",
        )
        .await;
    });
}

async fn ids(client: &Client, sql: &str) -> Vec<i64> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// SELECT ... FOR UPDATE SKIP LOCKED, as job queues use it: a second worker skips the rows the
/// first holds (never waits, never gets the same job), and concurrent workers run every job
/// exactly once.
#[test]
fn skip_locked_hands_each_job_to_one_worker() {
    const JOBS: i64 = 40;
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime(), async move {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(
            &a,
            "CREATE TABLE jobs (id int8 PRIMARY KEY, state text NOT NULL, runs int8 NOT NULL)",
        )
        .await;
        a.execute(
            "INSERT INTO jobs SELECT g, 'ready', 0 FROM generate_series(1, $1::int8) g",
            &[&JOBS],
        )
        .await
        .unwrap();
        let next = |n: i64| {
            format!(
                "SELECT id FROM jobs WHERE state = 'ready' ORDER BY id LIMIT {n} FOR UPDATE SKIP LOCKED"
            )
        };

        ok(&a, "BEGIN").await;
        let first = ids(&a, &next(2)).await;
        assert_eq!(first, vec![1, 2], "the oldest jobs");
        ok(&b, "BEGIN").await;
        let second = ids(&b, &next(2)).await;
        assert_eq!(second.len(), 2);
        assert!(
            second.iter().all(|id| !first.contains(id)) && second.windows(2).all(|w| w[0] < w[1]),
            "b skips a's jobs: {first:?} then {second:?}"
        );
        // Without a LIMIT, every job nobody else holds.
        let rest = ids(&b, "SELECT id FROM jobs WHERE state = 'ready' FOR UPDATE SKIP LOCKED").await;
        assert!(rest.iter().all(|id| !first.contains(id)), "{rest:?}");
        assert!(rest.len() >= (JOBS - 6) as usize, "a holds at most 2 per shard: {rest:?}");
        ok(&b, "ROLLBACK").await;
        // a's rows are really locked: NOWAIT fails on them, SKIP LOCKED does not see them.
        ok(&b, "BEGIN").await;
        let error = fails(&b, "SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT").await;
        assert_eq!(code(&error), "55P03");
        ok(&b, "ROLLBACK").await;
        assert!(ids(&b, "SELECT id FROM jobs WHERE id = 1 FOR UPDATE SKIP LOCKED").await.is_empty());
        ok(&a, "ROLLBACK").await;
        assert_eq!(ids(&b, "SELECT id FROM jobs WHERE id = 1 FOR UPDATE SKIP LOCKED").await, vec![1]);
        // FOR SHARE SKIP LOCKED shares with another sharer and skips a writer's rows.
        ok(&a, "BEGIN").await;
        ids(&a, "SELECT id FROM jobs WHERE id <= 3 FOR SHARE").await;
        ok(&b, "BEGIN").await;
        assert_eq!(
            ids(&b, "SELECT id FROM jobs WHERE id <= 3 ORDER BY id FOR SHARE SKIP LOCKED").await,
            vec![1, 2, 3]
        );
        assert!(ids(&b, "SELECT id FROM jobs WHERE id <= 3 FOR UPDATE SKIP LOCKED").await.is_empty());
        ok(&b, "ROLLBACK").await;
        ok(&a, "ROLLBACK").await;

        // Four workers drain the queue: each job runs exactly once.
        let mut workers = Vec::new();
        for _ in 0..4 {
            let client = connect(port).await;
            let next = next(1);
            workers.push(tokio::task::spawn_local(async move {
                let mut done = 0;
                loop {
                    ok(&client, "BEGIN").await;
                    let job = ids(&client, &next).await;
                    let Some(&id) = job.first() else {
                        ok(&client, "COMMIT").await;
                        break;
                    };
                    client
                        .execute(
                            "UPDATE jobs SET state = 'done', runs = runs + 1 WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .unwrap();
                    ok(&client, "COMMIT").await;
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for w in workers {
            total += w.await.unwrap();
        }
        assert_eq!(total, JOBS);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM jobs WHERE state = 'done' AND runs = 1").await, JOBS);
    });
}

async fn count(client: &Client, sql: &str) -> u64 {
    client
        .execute(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// INSERT ... ON CONFLICT DO NOTHING skips rows that conflict on a unique index as well as
/// on the primary key, across shards, and frees whatever else the skipped row had claimed;
/// a conflict target limits the skipping to the constraint it names, as in PostgreSQL.
#[test]
fn on_conflict_do_nothing_skips_unique_index_conflicts() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(
            &a,
            "CREATE TABLE users (id int8 PRIMARY KEY, email text UNIQUE, name text);
             CREATE UNIQUE INDEX users_name ON users (name);
             INSERT INTO users VALUES (1, 'a@x', 'A')",
        )
        .await;
        // The email is taken: skipped, and the name it would have claimed stays free.
        assert_eq!(
            count(&a, "INSERT INTO users VALUES (2, 'a@x', 'B') ON CONFLICT DO NOTHING").await,
            0
        );
        assert_eq!(count(&a, "INSERT INTO users VALUES (3, 'b@x', 'B')").await, 1);
        // Several rows: a duplicate within the statement, a taken key, a taken name.
        assert_eq!(
            count(
                &a,
                "INSERT INTO users VALUES (4, 'c@x', 'C'), (5, 'c@x', 'D'), (1, 'z@x', 'Z'), (6, 'd@x', 'A')
                 ON CONFLICT DO NOTHING"
            )
            .await,
            1
        );
        assert_eq!(ids(&a, "SELECT id FROM users ORDER BY id").await, vec![1, 3, 4]);
        assert_eq!(count(&a, "INSERT INTO users VALUES (7, 'd@x', 'D'), (8, 'z@x', 'Z')").await, 2);
        // A target names the one constraint whose conflicts are skipped.
        assert_eq!(
            count(&a, "INSERT INTO users VALUES (9, 'a@x', 'N') ON CONFLICT (email) DO NOTHING").await,
            0
        );
        assert_eq!(
            count(
                &a,
                "INSERT INTO users VALUES (9, 'q@x', 'A') ON CONFLICT ON CONSTRAINT users_name DO NOTHING"
            )
            .await,
            0
        );
        let e = fails(&a, "INSERT INTO users VALUES (9, 'q@x', 'A') ON CONFLICT (email) DO NOTHING").await;
        assert_eq!(code(&e), "23505");
        assert!(message(&e).contains("users_name"), "{}", message(&e));
        let e = fails(&a, "INSERT INTO users VALUES (9, 'a@x', 'Q') ON CONFLICT (id) DO NOTHING").await;
        assert_eq!(code(&e), "23505");
        let e = fails(&a, "INSERT INTO users VALUES (1, 'q@x', 'Q') ON CONFLICT (email) DO NOTHING").await;
        assert_eq!(code(&e), "23505");
        let e = fails(&a, "INSERT INTO users VALUES (9, 'q@x', 'Q') ON CONFLICT (name, email) DO NOTHING").await;
        assert_eq!(code(&e), "42P10");
        let e = fails(
            &a,
            "INSERT INTO users VALUES (9, 'q@x', 'Q') ON CONFLICT (name, email) DO UPDATE SET name = 'R'",
        )
        .await;
        assert_eq!(code(&e), "42P10");
        assert_eq!(ids(&a, "SELECT id FROM users ORDER BY id").await, vec![1, 3, 4, 7, 8]);

        // A table without a primary key.
        ok(&a, "CREATE TABLE tags (t text UNIQUE); INSERT INTO tags VALUES ('x')").await;
        assert_eq!(count(&a, "INSERT INTO tags VALUES ('x'), ('y') ON CONFLICT DO NOTHING").await, 1);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM tags").await, 2);

        // A value another transaction is inserting: wait, then skip if it commits.
        ok(&a, "BEGIN; INSERT INTO users VALUES (20, 'race@x', 'R')").await;
        let mut racer = Box::pin(b.execute(
            "INSERT INTO users VALUES (21, 'race@x', 'S') ON CONFLICT DO NOTHING",
            &[],
        ));
        assert!(still_waiting(&mut racer).await, "the second insert waits for the first");
        ok(&a, "COMMIT").await;
        assert_eq!(racer.await.unwrap(), 0);
        // ... and take it if it rolls back.
        ok(&a, "BEGIN; INSERT INTO users VALUES (22, 'undo@x', 'U')").await;
        let mut racer = Box::pin(b.execute(
            "INSERT INTO users VALUES (23, 'undo@x', 'V') ON CONFLICT DO NOTHING",
            &[],
        ));
        assert!(still_waiting(&mut racer).await);
        ok(&a, "ROLLBACK").await;
        assert_eq!(racer.await.unwrap(), 1);
        assert_eq!(
            ids(&a, "SELECT id FROM users WHERE id >= 20 ORDER BY id").await,
            vec![20, 23]
        );
    });
}

/// FOR UPDATE with a LIMIT locks the rows it returns (at most the LIMIT per shard), not every
/// row its filter passes; a row that stops matching while its lock is awaited is made up for
/// by the next one, as PostgreSQL's LIMIT does.
#[test]
fn for_update_with_limit_locks_only_the_rows_it_returns() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        setup_accounts(&a, 30, 100).await;
        ok(&a, "BEGIN").await;
        assert_eq!(
            ids(&a, "SELECT id FROM acct ORDER BY id LIMIT 1 FOR UPDATE").await,
            vec![1]
        );
        let mut held = Vec::new();
        for id in 1..=30i64 {
            ok(&b, "BEGIN").await;
            if let Err(e) = b
                .batch_execute(&format!(
                    "SELECT id FROM acct WHERE id = {id} FOR UPDATE NOWAIT"
                ))
                .await
            {
                assert_eq!(code(&e), "55P03");
                held.push(id);
            }
            ok(&b, "ROLLBACK").await;
        }
        assert!(
            held.contains(&1) && held.len() <= 3,
            "locks held: {held:?} (at most one per shard)"
        );
        ok(&a, "ROLLBACK").await;

        // Rows 1-5 stop matching while b waits for them: b gets the next row instead (on
        // every shard, so whichever shard holds row 6 must look past its first choice).
        ok(&a, "BEGIN; UPDATE acct SET note = 'gone' WHERE id <= 5").await;
        let mut waiter = Box::pin(b.query(
            "SELECT id FROM acct WHERE note = 'x' ORDER BY id LIMIT 1 FOR UPDATE",
            &[],
        ));
        assert!(still_waiting(&mut waiter).await, "b waits for rows 1-5");
        ok(&a, "COMMIT").await;
        let rows = waiter.await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, vec![6]);
    });
}

async fn counter_rows(c: &Client) -> Vec<(i64, String, i64)> {
    c.query("SELECT id, email, n FROM counters ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// INSERT ... ON CONFLICT (unique index columns) DO UPDATE updates the row that holds the
/// value, wherever it lives, with the proposed row as `excluded`; concurrent upserts of one
/// value never lose an update.
#[test]
fn on_conflict_do_update_on_a_unique_index() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(
            &a,
            "CREATE TABLE counters (id int8 PRIMARY KEY, email text UNIQUE, n int8 NOT NULL);
             INSERT INTO counters VALUES (1, 'a@x', 1)",
        )
        .await;
        let upsert = "ON CONFLICT (email) DO UPDATE SET n = counters.n + excluded.n";
        assert_eq!(
            count(&a, &format!("INSERT INTO counters VALUES (2, 'a@x', 1) {upsert}")).await,
            1
        );
        assert_eq!(counter_rows(&a).await, vec![(1, "a@x".to_string(), 2)]);
        assert_eq!(
            count(
                &a,
                &format!("INSERT INTO counters VALUES (3, 'b@x', 5), (4, 'a@x', 10) {upsert}")
            )
            .await,
            2
        );
        assert_eq!(
            counter_rows(&a).await,
            vec![(1, "a@x".to_string(), 12), (3, "b@x".to_string(), 5)]
        );
        // The DO UPDATE WHERE leaves the row alone: nothing written.
        assert_eq!(
            count(
                &a,
                "INSERT INTO counters VALUES (5, 'a@x', 1) ON CONFLICT ON CONSTRAINT counters_email_key
                 DO UPDATE SET n = 0 WHERE counters.n > 100"
            )
            .await,
            0
        );
        // Two rows of one statement on one value; a conflict on the primary key instead.
        let e = fails(&a, &format!("INSERT INTO counters VALUES (5, 'c@x', 1), (6, 'c@x', 1) {upsert}")).await;
        assert_eq!(code(&e), "21000");
        let e = fails(&a, &format!("INSERT INTO counters VALUES (1, 'new@x', 1) {upsert}")).await;
        assert_eq!(code(&e), "23505");
        // RETURNING gives the updated row; moving the value frees it.
        let returned = a
            .query(
                "INSERT INTO counters VALUES (7, 'a@x', 0) ON CONFLICT (email)
                 DO UPDATE SET email = 'moved@x' RETURNING id, email",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(returned.len(), 1);
        assert_eq!(returned[0].get::<_, i64>(0), 1);
        assert_eq!(returned[0].get::<_, String>(1), "moved@x");
        assert_eq!(count(&a, "INSERT INTO counters VALUES (8, 'a@x', 1)").await, 1);

        // Concurrent upserts of a new value: the second waits, then updates the first's row.
        ok(&a, &format!("BEGIN; INSERT INTO counters VALUES (10, 'c@x', 1) {upsert}")).await;
        let sql = format!("INSERT INTO counters VALUES (11, 'c@x', 1) {upsert}");
        let mut second = Box::pin(b.execute(sql.as_str(), &[]));
        assert!(still_waiting(&mut second).await, "the second upsert waits");
        ok(&a, "COMMIT").await;
        assert_eq!(second.await.unwrap(), 1);
        assert_eq!(
            one_i64(&a, "SELECT n FROM counters WHERE email = 'c@x'").await,
            2
        );
        assert_eq!(one_i64(&a, "SELECT count(*) FROM counters WHERE email = 'c@x'").await, 1);
    });
}

/// ALTER TABLE that reads every row (a rewrite, a new constraint to check) while other
/// clients keep writing the table: writes that land before it freezes the table are in the
/// rewritten rows, later ones (outside a transaction block) wait for the switch and run on
/// the new table, and none that was acknowledged is lost; a writer's open transaction is
/// waited for, and a write inside a transaction block is refused with 40001.
#[test]
fn alter_table_loses_no_concurrent_write() {
    const ROWS: i64 = 20_000;
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let port = server.pg_port();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime(), async move {
        let admin = connect(port).await;
        ok(&admin, "CREATE TABLE w (id int8, v int8)").await;
        ok(
            &admin,
            &format!("INSERT INTO w SELECT g, 0 FROM generate_series(1, {ROWS}) g"),
        )
        .await;
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let mut writers = Vec::new();
        for w in 0..2i64 {
            let client = connect(port).await;
            let stop = stop.clone();
            writers.push(tokio::task::spawn_local(async move {
                let mut acked = 0i64;
                // Each writer keeps going a little after the ALTERs are done.
                let mut after_stop = 0;
                while after_stop < 20 {
                    if stop.get() {
                        after_stop += 1;
                    }
                    let id = 1_000_000 * (w + 1) + acked;
                    match client
                        .execute("INSERT INTO w (id, v) VALUES ($1, 1)", &[&id])
                        .await
                    {
                        Ok(1) => acked += 1,
                        Ok(n) => panic!("INSERT reported {n} rows"),
                        Err(e) => panic!("writer {w}: {e:?}"),
                    }
                    tokio::task::yield_now().await;
                }
                acked
            }));
        }
        // A transaction holding a row of the table: the ALTER waits for it to end.
        let holder = connect(port).await;
        ok(&holder, "BEGIN; UPDATE w SET v = 5 WHERE id = 1").await;
        let mut alter = Box::pin(admin.batch_execute("ALTER TABLE w ADD PRIMARY KEY (id)"));
        assert!(
            still_waiting(&mut alter).await,
            "ALTER waits for the open transaction"
        );
        ok(&holder, "COMMIT").await;
        alter.await.unwrap();
        ok(&admin, "ALTER TABLE w ADD COLUMN z int8 NOT NULL DEFAULT 7").await;
        ok(
            &admin,
            "ALTER TABLE w ADD CONSTRAINT v_small CHECK (v < 10)",
        )
        .await;
        stop.set(true);
        let mut acked_total = 0;
        for (w, writer) in writers.into_iter().enumerate() {
            let acked = writer.await.unwrap();
            assert!(acked > 0, "writer {w} got nothing in");
            let w = w as i64;
            let range = format!(
                "SELECT count(*) FROM w WHERE id >= {} AND id < {}",
                1_000_000 * (w + 1),
                1_000_000 * (w + 2)
            );
            assert_eq!(one_i64(&admin, &range).await, acked, "writer {w}'s rows");
            acked_total += acked;
        }
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM w").await,
            ROWS + acked_total
        );
        assert_eq!(one_i64(&admin, "SELECT v FROM w WHERE id = 1").await, 5);
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM w WHERE z = 7").await,
            ROWS + acked_total
        );
        // The table takes writes again, under its new key.
        let err = fails(&admin, "INSERT INTO w VALUES (1, 0)").await;
        assert_eq!(code(&err), "23505");
        ok(&admin, "INSERT INTO w VALUES (-1, 0)").await;
        // The rewrite sees its own transaction's writes, as PostgreSQL's does.
        ok(&admin, "BEGIN; INSERT INTO w VALUES (-2, 0)").await;
        ok(&admin, "ALTER TABLE w ADD COLUMN q int8 DEFAULT 1").await;
        assert_eq!(one_i64(&admin, "SELECT q FROM w WHERE id = -2").await, 1);
        ok(&admin, "ROLLBACK").await;
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM w WHERE id = -2").await,
            0
        );
        // DDL on tables the block has not written goes ahead, as a migration tool issues it
        // (Alembic: each migration's DDL, then an UPDATE of alembic_version, one block).
        ok(&admin, "CREATE TABLE side (k int8 PRIMARY KEY)").await;
        ok(&admin, "CREATE INDEX w_z ON w (z)").await;
        ok(&admin, "BEGIN; INSERT INTO w VALUES (-3, 0)").await;
        ok(&admin, "CREATE TABLE fresh (k int8 PRIMARY KEY)").await;
        ok(
            &admin,
            "ALTER TABLE side ADD COLUMN v int8 NOT NULL DEFAULT 7",
        )
        .await;
        ok(&admin, "CREATE INDEX side_v ON side (v)").await;
        ok(&admin, "INSERT INTO side VALUES (1)").await;
        for ddl in [
            "ALTER TABLE side DROP COLUMN v",
            "TRUNCATE side",
            "DROP INDEX w_z",
            "CREATE INDEX w_v ON w (v)",
            "DROP TABLE w",
        ] {
            // On tables the block has written too; each undone by the ROLLBACK TO.
            ok(&admin, "SAVEPOINT s").await;
            ok(&admin, ddl).await;
            ok(&admin, "ROLLBACK TO SAVEPOINT s").await;
        }
        ok(&admin, "COMMIT").await;
        assert_eq!(
            one_i64(&admin, "SELECT v FROM side WHERE k = 1").await,
            7,
            "written through the ALTER made in the block"
        );
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM w WHERE id = -3").await,
            1
        );
        ok(&admin, "DROP TABLE side, fresh; DROP INDEX w_z").await;

        // A REPEATABLE READ block that has taken its snapshot would not see what a rewrite or
        // an index build writes after it: refused (before the first query, allowed).
        ok(&admin, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM w WHERE id = -3").await,
            1
        );
        for ddl in [
            "ALTER TABLE w ADD COLUMN r int8 DEFAULT 1",
            "CREATE INDEX w_v ON w (v)",
        ] {
            ok(&admin, "SAVEPOINT s").await;
            assert_eq!(code(&fails(&admin, ddl).await), "0A000", "{ddl}");
            ok(&admin, "ROLLBACK TO SAVEPOINT s").await;
        }
        ok(&admin, "ALTER TABLE w RENAME COLUMN z TO z2").await;
        ok(&admin, "ALTER TABLE w RENAME COLUMN z2 TO z").await;
        ok(&admin, "COMMIT").await;

        // A block holding a row lock another writer waits for, which ALTERs that writer's
        // table: the ALTER would wait for the writer and the writer for the block. The ALTER
        // gives up after deadlock_timeout (1 s) instead of lock_timeout.
        ok(&admin, "CREATE TABLE dl_x (k int8 PRIMARY KEY, v int8)").await;
        ok(&admin, "CREATE TABLE dl_y (k int8 PRIMARY KEY, v int8)").await;
        ok(&admin, "INSERT INTO dl_x VALUES (1, 0)").await;
        let other = connect(port).await;
        ok(&admin, "BEGIN; UPDATE dl_x SET v = 1 WHERE k = 1").await;
        ok(&other, "BEGIN; INSERT INTO dl_y VALUES (1, 1)").await;
        let waiting = tokio::task::spawn_local(async move {
            let r = other
                .batch_execute("UPDATE dl_x SET v = 2 WHERE k = 1")
                .await;
            (other, r)
        });
        let started = std::time::Instant::now();
        let err = fails(
            &admin,
            "ALTER TABLE dl_y ADD COLUMN w int8 NOT NULL DEFAULT 0",
        )
        .await;
        assert_eq!(code(&err), "55P03", "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "gave up early");
        ok(&admin, "ROLLBACK").await;
        let (other, r) = waiting.await.unwrap();
        r.expect("the writer goes on once the block is gone");
        ok(&other, "COMMIT").await;
        assert_eq!(one_i64(&admin, "SELECT v FROM dl_x WHERE k = 1").await, 2);
        ok(
            &admin,
            "ALTER TABLE dl_y ADD COLUMN w int8 NOT NULL DEFAULT 0",
        )
        .await;
        ok(&admin, "DROP TABLE dl_x, dl_y").await;

        // A block that already holds rows of a table goes on writing it while an ALTER waits
        // for it, as it would holding PostgreSQL's lock; the ALTER then sees those rows.
        ok(&admin, "CREATE TABLE fz (id int8 PRIMARY KEY, v int8)").await;
        ok(
            &admin,
            "INSERT INTO fz SELECT g, 0 FROM generate_series(1, 1000) g",
        )
        .await;
        let holder = connect(port).await;
        ok(
            &holder,
            "BEGIN; INSERT INTO fz SELECT g, 1 FROM generate_series(2001, 2020) g",
        )
        .await;
        let alterer = connect(port).await;
        let alter = tokio::task::spawn_local(async move {
            alterer
                .batch_execute("ALTER TABLE fz ADD COLUMN c int8 NOT NULL DEFAULT 5")
                .await
        });
        // Frozen once a new writer inside a block is refused.
        let probe = connect(port).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the ALTER never froze fz"
            );
            ok(&probe, "BEGIN").await;
            let r = probe.batch_execute("INSERT INTO fz VALUES (-1, 0)").await;
            ok(&probe, "ROLLBACK").await;
            if let Err(e) = r {
                assert_eq!(code(&e), "40001", "{e:?}");
                break;
            }
            tokio::task::yield_now().await;
        }
        ok(
            &holder,
            "INSERT INTO fz SELECT g, 1 FROM generate_series(2021, 2040) g",
        )
        .await;
        ok(&holder, "UPDATE fz SET v = 7 WHERE id = 2001").await;
        ok(&holder, "COMMIT").await;
        alter
            .await
            .unwrap()
            .expect("the ALTER finishes once the block commits");
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM fz WHERE c = 5").await,
            1040
        );
        assert_eq!(one_i64(&admin, "SELECT v FROM fz WHERE id = 2001").await, 7);
        ok(&admin, "DROP TABLE fz").await;
        ok(
            &admin,
            "BEGIN; ALTER TABLE w ADD COLUMN q int8 DEFAULT 1; COMMIT",
        )
        .await;
        assert_eq!(one_i64(&admin, "SELECT q FROM w WHERE id = -1").await, 1);
    });
}

/// kill -9 while an ALTER TABLE rewrite has the table's writes frozen: after the restart the
/// table is as it was before the ALTER (every row, the old shape), takes writes again (a
/// restart forgets the freeze and the half-written rewrite), and the ALTER can be run again.
#[test]
fn kill9_during_an_alter_table_rewrite_leaves_the_table_whole_and_writable() {
    const ROWS: i64 = 60_000;
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let rt = runtime();
    let port = server.pg_port();
    rt.block_on(async {
        let admin = connect(port).await;
        ok(&admin, "CREATE TABLE r (id int8, v int8)").await;
        ok(
            &admin,
            &format!("INSERT INTO r SELECT g, g FROM generate_series(1, {ROWS}) g"),
        )
        .await;
    });
    // Rows a writer got in before the freeze: (acknowledged, whether a write saw the freeze).
    let (acked, saw_freeze) = rt.block_on(async {
        let admin = connect(port).await;
        let writer = connect(port).await;
        let mut alter = Box::pin(admin.batch_execute("ALTER TABLE r ADD PRIMARY KEY (id)"));
        // A write refused with 40001 shows the freeze is on: kill then.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut acked = 0i64;
        loop {
            if std::time::Instant::now() > deadline {
                return (acked, false);
            }
            let id = -1 - acked;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
            tokio::select! {
                done = &mut alter => {
                    done.unwrap();
                    return (acked, false);
                }
                // Inside a transaction block a refused write is not retried: 40001.
                written = async {
                    writer.batch_execute("BEGIN").await?;
                    writer.execute("INSERT INTO r VALUES ($1, 0)", &params).await?;
                    writer.batch_execute("COMMIT").await
                } => match written {
                    Err(e) if code(&e) == "40001" => return (acked, true),
                    Err(e) => panic!("{e:?}"),
                    Ok(()) => acked += 1,
                },
            }
        }
    });
    assert!(
        saw_freeze,
        "the ALTER finished (or never froze the table) before a write saw the freeze"
    );
    server.kill9();
    server.restart();
    let port = server.pg_port();
    rt.block_on(async {
        let admin = connect(port).await;
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM r").await,
            ROWS + acked
        );
        assert_eq!(
            one_i64(&admin, "SELECT sum(v)::int8 FROM r").await,
            ROWS * (ROWS + 1) / 2
        );
        // Not frozen, and still without a primary key.
        ok(&admin, "INSERT INTO r VALUES (1, 1)").await;
        ok(&admin, "DELETE FROM r WHERE id = 1 AND v = 1").await;
        ok(&admin, "INSERT INTO r VALUES (1, 1)").await;
        ok(&admin, "ALTER TABLE r ADD PRIMARY KEY (id)").await;
        assert_eq!(
            one_i64(&admin, "SELECT count(*) FROM r").await,
            ROWS + acked
        );
        let err = fails(&admin, "INSERT INTO r VALUES (2, 2)").await;
        assert_eq!(code(&err), "23505");
    });
}

/// Two blocks that each create a name the other created first wait for each other, a
/// deadlock no lock graph sees: each gives up after PostgreSQL's deadlock_timeout (1 s)
/// with 55P03, not after lock_timeout (here unset: 60 s), and each can still roll back.
#[test]
fn blocks_creating_each_others_names_give_up_after_a_second() {
    let server = HeliosServer::start(ServerOpts::default());
    let rt = runtime();
    let port = server.pg_port();
    rt.block_on(async {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(&a, "BEGIN; CREATE TABLE made_by_a (x int)").await;
        ok(&b, "BEGIN; CREATE TABLE made_by_b (x int)").await;
        let started = std::time::Instant::now();
        let (from_a, from_b) = tokio::join!(
            a.batch_execute("CREATE TABLE made_by_b (x int)"),
            b.batch_execute("CREATE TABLE made_by_a (x int)"),
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited {:?}",
            started.elapsed()
        );
        for e in [from_a.unwrap_err(), from_b.unwrap_err()] {
            assert_eq!(code(&e), "55P03", "{e:?}");
        }
        ok(&a, "ROLLBACK").await;
        ok(&b, "COMMIT").await;
        // B's block failed, so its COMMIT rolled back: both names are free.
        ok(
            &a,
            "CREATE TABLE made_by_a (x int); CREATE TABLE made_by_b (x int)",
        )
        .await;
    });
}

/// DDL in a transaction block is transactional: ROLLBACK undoes it; other sessions'
/// statements that read or write a relation it changed wait for the block (failing with
/// 55P03 at `lock_timeout`), their DDL on the same names or tables fails with 55P03 at
/// once; and kill -9 undoes a block that did not commit while keeping one that did.
#[test]
fn ddl_in_a_block_rolls_back_holds_its_tables_and_survives_kill9() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let rt = runtime();
    let port = server.pg_port();
    rt.block_on(async {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(&a, "CREATE TABLE base (id int8 PRIMARY KEY, v int8)").await;
        ok(
            &a,
            "INSERT INTO base SELECT g, g FROM generate_series(1, 100) g",
        )
        .await;
        ok(
            &a,
            "CREATE TABLE other (id int8); CREATE INDEX other_id ON other (id)",
        )
        .await;
        ok(&a, "CREATE TABLE gone (id int8)").await;
        ok(
            &a,
            "BEGIN; CREATE TABLE fresh (id int8 PRIMARY KEY); INSERT INTO fresh VALUES (1);
             ALTER TABLE base ADD COLUMN extra int8 DEFAULT 5; DROP INDEX other_id;
             DROP TABLE gone; CREATE SEQUENCE fresh_seq; CREATE VIEW fresh_view AS SELECT 1",
        )
        .await;
        assert_eq!(one_i64(&a, "SELECT sum(extra)::int8 FROM base").await, 500);
        // The block's new names are its own until it commits, and what it dropped is still
        // listed for others, as PostgreSQL's catalog rows are visible once committed.
        let listed = "SELECT count(*) FROM pg_class WHERE relname IN ('fresh', 'other_id')
                      AND relkind IN ('r', 'i')";
        assert_eq!(one_i64(&a, listed).await, 1);
        assert_eq!(one_i64(&a, "SELECT nextval('fresh_seq')").await, 1);
        assert_eq!(one_i64(&b, listed).await, 1);
        for unseen in [
            "SELECT * FROM fresh",
            "SELECT nextval('fresh_seq')",
            "SELECT * FROM fresh_view",
        ] {
            assert_eq!(code(&fails(&b, unseen).await), "42P01", "{unseen}");
        }
        assert_eq!(
            one_i64(
                &b,
                "SELECT count(*) FROM pg_class WHERE relname = 'fresh' OR relname = 'fresh_pkey'"
            )
            .await,
            0
        );
        // Another session's DDL on what the block changed (the same table, an index of it,
        // the same name as another kind of relation) waits for it, up to lock_timeout.
        ok(&b, "SET lock_timeout = '200ms'").await;
        for ddl in [
            "ALTER TABLE base ADD COLUMN z int",
            "CREATE INDEX base_v ON base (v)",
            "CREATE VIEW gone AS SELECT 1",
            "CREATE INDEX other_id ON other (id)",
            // Whether the name is free depends on the block: wait for it.
            "CREATE TABLE fresh (x int)",
            "CREATE TABLE IF NOT EXISTS fresh (x int)",
            "CREATE SEQUENCE fresh_seq",
        ] {
            assert_eq!(code(&fails(&b, ddl).await), "55P03", "{ddl}");
        }
        // So do reads and writes, in a block too.
        assert_eq!(code(&fails(&b, "SELECT count(*) FROM base").await), "55P03");
        assert_eq!(
            code(&fails(&b, "INSERT INTO other VALUES (1)").await),
            "55P03"
        );
        let e = fails(&b, "BEGIN; INSERT INTO base (id, v) VALUES (1000, 1)").await;
        assert_eq!(code(&e), "55P03");
        ok(&b, "ROLLBACK; SET lock_timeout = 0").await;
        let mut write = Box::pin(b.batch_execute(
            "INSERT INTO base (id, v) VALUES (1000, 1); INSERT INTO other VALUES (2)",
        ));
        assert!(
            still_waiting(&mut write).await,
            "the write waits for the block"
        );
        ok(&a, "ROLLBACK").await;
        write.await.unwrap();
        assert_eq!(code(&fails(&a, "SELECT extra FROM base").await), "42703");
        assert_eq!(code(&fails(&a, "SELECT * FROM fresh").await), "42P01");
        // The rolled-back block's names are free again.
        ok(
            &b,
            "CREATE TABLE fresh (x int); DROP TABLE fresh; CREATE SEQUENCE fresh_seq;
             DROP SEQUENCE fresh_seq",
        )
        .await;
        assert_eq!(one_i64(&a, "SELECT count(*) FROM gone").await, 0);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM base").await, 101);
        // The index came back and covers the row written while it was dropped.
        assert_eq!(
            one_i64(&a, "SELECT count(*) FROM other WHERE id = 2").await,
            1
        );
        // A TRUNCATE in a block holds its table from readers and from TRUNCATE.
        ok(&a, "BEGIN; TRUNCATE base").await;
        let mut read = Box::pin(b.query_one("SELECT count(*) FROM base", &[]));
        assert!(
            still_waiting(&mut read).await,
            "the read waits for the TRUNCATE"
        );
        ok(&a, "ROLLBACK").await;
        assert_eq!(read.await.unwrap().get::<_, i64>(0), 101);
        // A COPY into a held table waits for the block too, then loads.
        ok(&a, "BEGIN; ALTER TABLE base ADD COLUMN copied int").await;
        let mut copy = Box::pin(async {
            use futures_util::SinkExt;
            let sink = b.copy_in("COPY base (id, v) FROM STDIN").await?;
            futures_util::pin_mut!(sink);
            sink.send(bytes::Bytes::from_static(b"3000\t1\n")).await?;
            sink.finish().await
        });
        assert!(
            still_waiting(&mut copy).await,
            "the COPY waits for the block"
        );
        ok(&a, "ROLLBACK").await;
        assert_eq!(copy.await.unwrap(), 1);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM base").await, 102);
        // A committed block, and one left open when the process dies.
        ok(
            &a,
            "BEGIN; CREATE TABLE kept (id int8); INSERT INTO kept VALUES (7);
             ALTER TABLE base RENAME COLUMN v TO w; COMMIT",
        )
        .await;
        ok(
            &b,
            "BEGIN; DROP TABLE base; CREATE TABLE lost (id int8); INSERT INTO lost VALUES (1);
             TRUNCATE kept",
        )
        .await;
    });
    server.kill9();
    server.restart();
    let port = server.pg_port();
    rt.block_on(async {
        let a = connect(port).await;
        assert_eq!(one_i64(&a, "SELECT count(*) FROM base").await, 102);
        assert_eq!(one_i64(&a, "SELECT sum(w)::int8 FROM base").await, 5052);
        assert_eq!(one_i64(&a, "SELECT id FROM kept").await, 7);
        assert_eq!(code(&fails(&a, "SELECT * FROM lost").await), "42P01");
        // Nothing is held after the restart.
        ok(
            &a,
            "INSERT INTO base VALUES (2000, 1); ALTER TABLE base ADD COLUMN z int",
        )
        .await;
    });
}

/// PostgREST's request settings: `set_config(name, $1, true)` in a transaction block over
/// the extended protocol lasts until the block ends, as SET LOCAL does; a plain SET is
/// undone by ROLLBACK; an argument computed from a parameter and a setting works too.
#[test]
fn set_config_and_set_local_last_until_the_block_ends() {
    let server = HeliosServer::start(ServerOpts::default().shards(1));
    let port = server.pg_port();
    runtime().block_on(async move {
        let c = connect(port).await;
        ok(&c, "BEGIN").await;
        let row = c
            .query_one(
                "SELECT set_config('request.jwt.claims', $1, true), set_config('app.role', $2, true)",
                &[&r#"{"sub":"7"}"#, &"reader"],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), r#"{"sub":"7"}"#);
        let claims = c
            .query_one("SELECT current_setting('request.jwt.claims')", &[])
            .await
            .unwrap();
        assert_eq!(claims.get::<_, String>(0), r#"{"sub":"7"}"#);
        ok(&c, "COMMIT").await;
        let gone = c
            .query_one("SELECT current_setting('request.jwt.claims', true)", &[])
            .await
            .unwrap();
        // PostgreSQL keeps the parameter defined, empty (PostgREST tests for '').
        assert_eq!(gone.get::<_, Option<String>>(0).as_deref(), Some(""));
        ok(&c, "BEGIN; SET application_name = 'inside'; ROLLBACK").await;
        let name = c.query_one("SHOW application_name", &[]).await.unwrap();
        assert_ne!(name.get::<_, String>(0), "inside");
        // A computed argument over a parameter and another setting.
        ok(&c, "SET app.tenant = 't9'").await;
        let row = c
            .query_one(
                "SELECT set_config('app.scope', current_setting('app.tenant') || ':' || $1, false)",
                &[&"read"],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "t9:read");
        let scope = c
            .query_one("SELECT current_setting('app.scope')", &[])
            .await
            .unwrap();
        assert_eq!(scope.get::<_, String>(0), "t9:read");
    });
}

/// Several statements in one query string (tokio-postgres `batch_execute`: one simple Query
/// message) run as one transaction, as PostgreSQL's implicit transaction block: a failure
/// undoes the statements before it across shards, and SETs among them; COMMIT inside ends it
/// (with PostgreSQL's warning); BEGIN inside turns it into an open block; statements that
/// cannot run in a block are refused. Each case was checked against PostgreSQL 15 with `psql -c`.
#[test]
fn a_query_string_of_several_statements_is_one_transaction() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        setup_accounts(&a, 30, 100).await;
        let total = "SELECT sum(bal)::int8 FROM acct";

        // A failure undoes what came before it, on every shard, and skips what follows.
        let err = fails(
            &a,
            "UPDATE acct SET bal = bal + 1; INSERT INTO acct VALUES (100, 1, 'n'); \
             INSERT INTO acct VALUES (1, 1, 'dup'); UPDATE acct SET bal = 0",
        )
        .await;
        assert_eq!(code(&err), "23505");
        assert_eq!(one_i64(&a, total).await, 3000);
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct").await, 30);
        // The connection is not left in a failed block.
        assert_eq!(one_i64(&a, "SELECT 1::int8").await, 1);

        // A SET among them is undone too.
        let err = fails(&a, "SET statement_timeout = 5000; SELECT 1/0").await;
        assert_eq!(code(&err), "22012");
        let rows = a.simple_query("SHOW statement_timeout").await.unwrap();
        let tokio_postgres::SimpleQueryMessage::Row(row) = &rows[1] else {
            panic!("{rows:?}")
        };
        assert_eq!(row.get(0), Some("0"));

        // All or nothing: once the string has run, the others see all of it at once.
        ok(&a, "UPDATE acct SET bal = bal - 10 WHERE id = 1; UPDATE acct SET bal = bal + 10 WHERE id = 2")
            .await;
        assert_eq!(one_i64(&b, total).await, 3000);
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 2").await, 110);

        // COMMIT ends the implicit block; what follows it is another one.
        let err = fails(
            &a,
            "UPDATE acct SET bal = bal + 1 WHERE id = 3; COMMIT; \
             UPDATE acct SET bal = bal + 1 WHERE id = 4; SELECT 1/0",
        )
        .await;
        assert_eq!(code(&err), "22012");
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 3").await, 101);
        assert_eq!(one_i64(&a, "SELECT bal FROM acct WHERE id = 4").await, 100);

        // BEGIN makes it an ordinary block, open after the string, that ROLLBACK undoes.
        ok(&a, "UPDATE acct SET bal = 0 WHERE id = 5; BEGIN; UPDATE acct SET bal = 0 WHERE id = 6")
            .await;
        assert_eq!(one_i64(&b, "SELECT bal FROM acct WHERE id = 5").await, 100);
        ok(&a, "ROLLBACK").await;
        assert_eq!(one_i64(&a, "SELECT count(*) FROM acct WHERE bal = 0").await, 0);

        // Inside an open block, a string's failure fails the block, as any statement's.
        ok(&a, "BEGIN").await;
        let err = fails(&a, "UPDATE acct SET bal = 0 WHERE id = 7; SELECT 1/0").await;
        assert_eq!(code(&err), "22012");
        assert_eq!(code(&fails(&a, "SELECT 1").await), "25P02");
        ok(&a, "ROLLBACK").await;

        // What cannot run in a block cannot run in the string either.
        let refused = [
            ("SELECT 1; SAVEPOINT s", "25P01"),
            ("SELECT 1; CREATE DATABASE other", "25001"),
            ("SELECT 1; VACUUM acct", "25001"),
            ("SELECT 1; CREATE INDEX CONCURRENTLY ON acct (note)", "25001"),
        ];
        for (sql, want) in refused {
            assert_eq!(code(&fails(&a, sql).await), want, "{sql}");
        }
        // DDL and its rows commit together.
        ok(&a, "CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 SELECT generate_series(1, 50); CREATE INDEX t2_id ON t2 (id)")
            .await;
        assert_eq!(one_i64(&b, "SELECT count(*) FROM t2").await, 50);
        let err = fails(&a, "CREATE TABLE t3 (id int); INSERT INTO t3 VALUES (1); SELECT 1/0").await;
        assert_eq!(code(&err), "22012");
        assert_eq!(code(&fails(&b, "SELECT * FROM t3").await), "42P01");
        // DROP INDEX CONCURRENTLY: alone it runs; in a string, as in a block, it is refused.
        assert_eq!(code(&fails(&a, "SELECT 1; DROP INDEX CONCURRENTLY t2_id").await), "25001");
        ok(&a, "DROP INDEX CONCURRENTLY t2_id").await;
    });
}
