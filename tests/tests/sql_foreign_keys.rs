//! FOREIGN KEY constraints through tokio-postgres against the real server on three shards
//! (so referencing and referenced rows live on different shards): the 23503 errors and
//! their details as PostgreSQL words them, every ON DELETE / ON UPDATE action, MATCH FULL,
//! self-references, deferred constraints checked at COMMIT, ALTER TABLE ADD / VALIDATE /
//! DROP CONSTRAINT, DROP TABLE and TRUNCATE of a referenced table, the locks that keep a
//! concurrent DELETE from orphaning a new reference, and the constraints after kill -9.

use helios_tests::server::{Durability, HeliosServer, ServerOpts};
use tokio_postgres::Client;

mod pg_common;
use pg_common::{connect, ok, runtime, still_waiting};

/// Runs `sql`, which must fail with `sqlstate`; returns (message, detail).
async fn fails(client: &Client, sql: &str, sqlstate: &str) -> (String, String) {
    let e = match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: succeeded"),
        Err(e) => e,
    };
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
    assert_eq!(db.code().code(), sqlstate, "{sql}: {db:?}");
    (
        db.message().to_string(),
        db.detail().unwrap_or_default().to_string(),
    )
}

async fn rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn references_are_checked_and_actions_follow_deletes_and_updates() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let c = connect(port).await;
        ok(
            &c,
            "CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE);
             CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p (id));
             INSERT INTO p SELECT g, 'c' || g FROM generate_series(1, 20) g;
             INSERT INTO c SELECT g, g FROM generate_series(1, 10) g;
             INSERT INTO c VALUES (11, NULL)",
        )
        .await;
        let (m, d) = fails(&c, "INSERT INTO c VALUES (12, 21)", "23503").await;
        assert_eq!(
            m,
            "insert or update on table \"c\" violates foreign key constraint \"c_pid_fkey\""
        );
        assert_eq!(d, "Key (pid)=(21) is not present in table \"p\".");
        // The error names its table and constraint as PostgreSQL's does (drivers and ORMs
        // read these fields), and so do the other integrity errors.
        let names = |e: tokio_postgres::Error| {
            let db = e.as_db_error().expect("a server error").clone();
            [db.schema(), db.table(), db.column(), db.constraint()]
                .map(|f| f.unwrap_or("-").to_string())
                .join(" ")
        };
        let e = c.batch_execute("INSERT INTO c VALUES (12, 21)").await.unwrap_err();
        assert_eq!(names(e), "public c - c_pid_fkey");
        let e = c.batch_execute("DELETE FROM p WHERE id = 1").await.unwrap_err();
        assert_eq!(names(e), "public c - c_pid_fkey");
        let e = c.batch_execute("INSERT INTO p VALUES (1, 'z')").await.unwrap_err();
        assert_eq!(names(e), "public p - p_pkey");
        let e = c.batch_execute("INSERT INTO p VALUES (99, 'c1')").await.unwrap_err();
        assert_eq!(names(e), "public p - p_code_key");
        let e = c.batch_execute("INSERT INTO p VALUES (NULL, 'q')").await.unwrap_err();
        assert_eq!(names(e), "public p id -");
        // A statement's rows are all checked: one bad row fails it whole.
        fails(&c, "INSERT INTO c VALUES (12, 1), (13, 99)", "23503").await;
        assert_eq!(rows(&c, "SELECT count(*) FROM c").await, ["11"]);
        fails(&c, "UPDATE c SET pid = pid + 100 WHERE id = 3", "23503").await;
        let (m, d) = fails(&c, "DELETE FROM p WHERE id = 4", "23503").await;
        assert_eq!(
            m,
            "update or delete on table \"p\" violates foreign key constraint \"c_pid_fkey\" on table \"c\""
        );
        assert_eq!(d, "Key (id)=(4) is still referenced from table \"c\".");
        fails(&c, "UPDATE p SET id = 100 WHERE id = 5", "23503").await;
        // Unreferenced rows go; NO ACTION passes when the key is still there at the end.
        ok(&c, "DELETE FROM p WHERE id > 15").await;
        ok(&c, "UPDATE p SET code = code || 'x'").await;
        // ON DELETE CASCADE, through two levels, and SET NULL / SET DEFAULT.
        ok(
            &c,
            "CREATE TABLE g (id int PRIMARY KEY, cid int REFERENCES c ON DELETE CASCADE);
             INSERT INTO g SELECT g, g FROM generate_series(1, 10) g;
             ALTER TABLE c DROP CONSTRAINT c_pid_fkey;
             ALTER TABLE c ADD FOREIGN KEY (pid) REFERENCES p ON DELETE CASCADE ON UPDATE CASCADE;
             CREATE TABLE n (id int, pid int REFERENCES p ON DELETE SET NULL ON UPDATE CASCADE,
                             pcode text DEFAULT 'nope' REFERENCES p (code)
                                 ON DELETE SET DEFAULT ON UPDATE CASCADE);
             INSERT INTO n VALUES (1, 6, 'c6x'), (2, 7, 'c7x')",
        )
        .await;
        ok(&c, "DELETE FROM p WHERE id IN (2, 3)").await;
        assert_eq!(rows(&c, "SELECT count(*) FROM c WHERE pid IN (2, 3)").await, ["0"]);
        assert_eq!(rows(&c, "SELECT id FROM g WHERE id IN (2, 3)").await, Vec::<String>::new());
        ok(&c, "UPDATE p SET id = 106 WHERE id = 6").await;
        assert_eq!(rows(&c, "SELECT id, pid FROM c WHERE id = 6").await, ["6,106"]);
        assert_eq!(rows(&c, "SELECT pid FROM n WHERE id = 1").await, ["106"]);
        ok(&c, "UPDATE p SET id = 6 WHERE id = 106").await;
        assert_eq!(rows(&c, "SELECT pid FROM n WHERE id = 1").await, ["6"]);
        ok(&c, "UPDATE p SET code = 'seven' WHERE id = 7").await;
        assert_eq!(rows(&c, "SELECT pcode FROM n WHERE id = 2").await, ["seven"]);
        // SET DEFAULT needs its default to be referenced too: no row has code 'nope'.
        fails(&c, "DELETE FROM p WHERE id = 7", "23503").await;
        ok(&c, "UPDATE n SET pcode = NULL WHERE id = 2; DELETE FROM p WHERE id = 7").await;
        assert_eq!(rows(&c, "SELECT id, pid FROM n ORDER BY id").await, ["1,6", "2,NULL"]);
        // A table referencing itself.
        ok(
            &c,
            "CREATE TABLE emp (id int PRIMARY KEY, boss int REFERENCES emp ON DELETE CASCADE);
             INSERT INTO emp VALUES (1, NULL), (2, 1), (3, 2), (4, 4)",
        )
        .await;
        fails(&c, "INSERT INTO emp VALUES (5, 6)", "23503").await;
        ok(&c, "INSERT INTO emp VALUES (5, 6), (6, 5)").await;
        ok(&c, "DELETE FROM emp WHERE id = 1").await;
        assert_eq!(rows(&c, "SELECT id FROM emp ORDER BY id").await, ["4", "5", "6"]);
        // MATCH FULL: all NULL or none.
        ok(
            &c,
            "CREATE TABLE m (a int, b int, PRIMARY KEY (a, b));
             INSERT INTO m VALUES (1, 2);
             CREATE TABLE mf (x int, y int, FOREIGN KEY (x, y) REFERENCES m MATCH FULL);
             CREATE TABLE ms (x int, y int, FOREIGN KEY (x, y) REFERENCES m)",
        )
        .await;
        let (_, d) = fails(&c, "INSERT INTO mf VALUES (1, NULL)", "23503").await;
        assert_eq!(d, "MATCH FULL does not allow mixing of null and nonnull key values.");
        ok(&c, "INSERT INTO mf VALUES (NULL, NULL), (1, 2); INSERT INTO ms VALUES (1, NULL)").await;
        let (_, d) = fails(&c, "INSERT INTO ms VALUES (1, 3)", "23503").await;
        assert_eq!(d, "Key (x, y)=(1, 3) is not present in table \"m\".");
        // ON CONFLICT DO NOTHING does not check the rows it skips.
        ok(&c, "INSERT INTO c VALUES (1, 999) ON CONFLICT DO NOTHING").await;
        // Definitions PostgreSQL refuses.
        fails(&c, "CREATE TABLE x (a int REFERENCES nosuch)", "42P01").await;
        fails(&c, "CREATE TABLE x (a text REFERENCES c (pid))", "42830").await;
        let (m, _) = fails(&c, "CREATE TABLE x (a text REFERENCES p)", "42804").await;
        assert_eq!(m, "foreign key constraint \"x_a_fkey\" cannot be implemented");
        fails(&c, "CREATE TABLE x (a int REFERENCES m)", "42830").await;
        // The catalog as drivers and ORMs read it.
        assert_eq!(
            rows(
                &c,
                "SELECT conname, confrelid::regclass, confupdtype, confdeltype, conkey, confkey, \
                 pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'n'::regclass \
                 AND contype = 'f' ORDER BY conname"
            )
            .await,
            [
                "n_pcode_fkey,p,c,d,{3},{2},FOREIGN KEY (pcode) REFERENCES p(code) ON UPDATE CASCADE ON DELETE SET DEFAULT",
                "n_pid_fkey,p,c,n,{2},{1},FOREIGN KEY (pid) REFERENCES p(id) ON UPDATE CASCADE ON DELETE SET NULL",
            ]
        );
    });
}

#[test]
fn deferred_checks_ddl_and_dropping_referenced_tables() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(3).durability(Durability::Sync));
    let port = server.pg_port();
    runtime().block_on(async {
        let c = connect(port).await;
        ok(
            &c,
            "CREATE TABLE p (id int PRIMARY KEY);
             CREATE TABLE d (id int REFERENCES p DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO p VALUES (1)",
        )
        .await;
        // Deferred: the referenced row may come later in the transaction...
        ok(
            &c,
            "BEGIN; INSERT INTO d VALUES (2); INSERT INTO p VALUES (2); COMMIT",
        )
        .await;
        // ...but must be there at COMMIT, which then rolls everything back.
        ok(
            &c,
            "BEGIN; INSERT INTO p VALUES (3); INSERT INTO d VALUES (4)",
        )
        .await;
        let (_, detail) = fails(&c, "COMMIT", "23503").await;
        assert_eq!(detail, "Key (id)=(4) is not present in table \"p\".");
        assert_eq!(rows(&c, "SELECT count(*) FROM p WHERE id = 3").await, ["0"]);
        ok(&c, "INSERT INTO p VALUES (3)").await; // the connection is usable again
                                                  // A row rolled back to a savepoint is not checked.
        ok(
            &c,
            "BEGIN; SAVEPOINT s; INSERT INTO d VALUES (5); ROLLBACK TO s; COMMIT",
        )
        .await;
        // A reference deleted or changed later in the block is not checked for its old key
        // (PostgreSQL skips row versions that are gone); the new key is.
        ok(
            &c,
            "BEGIN; INSERT INTO d VALUES (7), (8); DELETE FROM d WHERE id = 7; \
             UPDATE d SET id = NULL WHERE id = 8; COMMIT",
        )
        .await;
        ok(
            &c,
            "BEGIN; INSERT INTO d VALUES (9), (10); DELETE FROM d WHERE id = 9",
        )
        .await;
        let (_, detail) = fails(&c, "COMMIT", "23503").await;
        assert_eq!(detail, "Key (id)=(10) is not present in table \"p\".");
        // A rewrite of the table in the block (its rows under a new id) keeps the queued
        // check; so does a ROLLBACK TO that takes the rewrite back.
        ok(
            &c,
            "BEGIN; INSERT INTO d VALUES (11); ALTER TABLE d ADD COLUMN n int DEFAULT 0",
        )
        .await;
        let (_, detail) = fails(&c, "COMMIT", "23503").await;
        assert_eq!(detail, "Key (id)=(11) is not present in table \"p\".");
        ok(
            &c,
            "BEGIN; INSERT INTO d VALUES (12); SAVEPOINT s; \
             ALTER TABLE d ADD COLUMN n int DEFAULT 0; ROLLBACK TO s",
        )
        .await;
        let (_, detail) = fails(&c, "COMMIT", "23503").await;
        assert_eq!(detail, "Key (id)=(12) is not present in table \"p\".");
        // Outside a block the statement is the transaction: checked at once.
        fails(&c, "INSERT INTO d VALUES (6)", "23503").await;
        // SET CONSTRAINTS: IMMEDIATE runs the queued checks at once (in the same query
        // string as the statement that queued them, as Django sends it); DEFERRED defers a
        // DEFERRABLE INITIALLY IMMEDIATE constraint; a constraint that is not deferrable,
        // or none, cannot be named.
        ok(&c, "BEGIN; INSERT INTO d VALUES (7)").await;
        let (_, detail) = fails(
            &c,
            "INSERT INTO p VALUES (8); SET CONSTRAINTS ALL IMMEDIATE",
            "23503",
        )
        .await;
        assert_eq!(detail, "Key (id)=(7) is not present in table \"p\".");
        ok(&c, "ROLLBACK").await;
        ok(
            &c,
            "CREATE TABLE di (id int CONSTRAINT di_fk REFERENCES p DEFERRABLE);
             CREATE TABLE nd (id int CONSTRAINT nd_fk REFERENCES p)",
        )
        .await;
        fails(&c, "BEGIN; INSERT INTO di VALUES (9)", "23503").await;
        ok(&c, "ROLLBACK").await;
        ok(
            &c,
            "BEGIN; SET CONSTRAINTS di_fk DEFERRED; INSERT INTO di VALUES (9); \
             INSERT INTO p VALUES (9); SET CONSTRAINTS ALL IMMEDIATE; COMMIT",
        )
        .await;
        ok(&c, "BEGIN").await;
        fails(&c, "SET CONSTRAINTS nd_fk DEFERRED", "55000").await;
        ok(&c, "ROLLBACK; BEGIN").await;
        fails(&c, "SET CONSTRAINTS no_such_fk DEFERRED", "42704").await;
        ok(&c, "ROLLBACK; DROP TABLE di, nd").await;
        fails(
            &c,
            "CREATE TABLE x (id int REFERENCES p NOT DEFERRABLE INITIALLY DEFERRED)",
            "42601",
        )
        .await;

        // ALTER TABLE ADD FOREIGN KEY checks the rows there are, unless NOT VALID.
        ok(
            &c,
            "CREATE TABLE a (id int, pid int); INSERT INTO a VALUES (1, 1), (2, 99)",
        )
        .await;
        let (_, detail) = fails(
            &c,
            "ALTER TABLE a ADD CONSTRAINT a_fk FOREIGN KEY (pid) REFERENCES p",
            "23503",
        )
        .await;
        assert_eq!(detail, "Key (pid)=(99) is not present in table \"p\".");
        ok(
            &c,
            "ALTER TABLE a ADD CONSTRAINT a_fk FOREIGN KEY (pid) REFERENCES p NOT VALID",
        )
        .await;
        fails(&c, "INSERT INTO a VALUES (3, 98)", "23503").await;
        fails(&c, "ALTER TABLE a VALIDATE CONSTRAINT a_fk", "23503").await;
        ok(
            &c,
            "DELETE FROM a WHERE pid = 99; ALTER TABLE a VALIDATE CONSTRAINT a_fk",
        )
        .await;
        assert_eq!(
            rows(
                &c,
                "SELECT convalidated FROM pg_constraint WHERE conname = 'a_fk'"
            )
            .await,
            ["t"]
        );
        // Renames are followed; the referenced key cannot be dropped from under it.
        ok(
            &c,
            "ALTER TABLE p RENAME COLUMN id TO pk; ALTER TABLE p RENAME TO parent",
        )
        .await;
        assert_eq!(
            rows(
                &c,
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'a_fk'"
            )
            .await,
            ["FOREIGN KEY (pid) REFERENCES parent(pk)"]
        );
        fails(&c, "INSERT INTO a VALUES (4, 97)", "23503").await;
        fails(&c, "ALTER TABLE parent DROP CONSTRAINT p_pkey", "2BP01").await;
        fails(&c, "ALTER TABLE parent DROP COLUMN pk", "2BP01").await;

        // TRUNCATE and DROP of a referenced table.
        let (m, _) = fails(&c, "TRUNCATE parent", "0A000").await;
        assert_eq!(
            m,
            "cannot truncate a table referenced in a foreign key constraint"
        );
        ok(&c, "TRUNCATE parent, a, d").await;
        let (_, detail) = fails(&c, "DROP TABLE parent", "2BP01").await;
        assert!(
            detail.contains("constraint a_fk on table a depends on table parent"),
            "{detail}"
        );
        ok(
            &c,
            "INSERT INTO parent VALUES (1); INSERT INTO a VALUES (1, 1)",
        )
        .await;

        // ROLLBACK undoes DDL on foreign keys too.
        ok(&c, "BEGIN; ALTER TABLE a DROP CONSTRAINT a_fk; ROLLBACK").await;
        fails(&c, "INSERT INTO a VALUES (5, 96)", "23503").await;
    });

    // The constraints survive kill -9 (and so do the acknowledged rows they check).
    server.restart();
    let port = server.pg_port();
    runtime().block_on(async {
        let c = connect(port).await;
        fails(&c, "INSERT INTO a VALUES (5, 96)", "23503").await;
        fails(&c, "DELETE FROM parent", "23503").await;
        ok(
            &c,
            "DROP TABLE parent CASCADE; INSERT INTO a VALUES (5, 96)",
        )
        .await;
        assert_eq!(
            rows(&c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'").await,
            ["0"]
        );
    });
}

#[test]
fn a_new_reference_and_a_delete_of_its_row_wait_for_each_other() {
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(
            &a,
            "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int, pid int REFERENCES p);
             INSERT INTO p VALUES (1), (2), (3)",
        )
        .await;
        // An uncommitted reference holds its row: the DELETE waits, then finds it referenced.
        ok(&a, "BEGIN; INSERT INTO c VALUES (1, 1)").await;
        let mut delete = Box::pin(b.batch_execute("DELETE FROM p WHERE id = 1"));
        assert!(still_waiting(&mut delete).await, "the DELETE did not wait");
        ok(&a, "COMMIT").await;
        let e = delete
            .await
            .expect_err("the DELETE orphaned a committed reference");
        assert_eq!(e.code().map(|c| c.code()), Some("23503"));
        // An uncommitted DELETE holds its row: the reference waits, then finds it gone.
        ok(&a, "BEGIN; DELETE FROM p WHERE id = 2").await;
        let mut insert = Box::pin(b.batch_execute("INSERT INTO c VALUES (2, 2)"));
        assert!(still_waiting(&mut insert).await, "the INSERT did not wait");
        ok(&a, "COMMIT").await;
        let e = insert
            .await
            .expect_err("a reference to a deleted row was accepted");
        assert_eq!(e.code().map(|c| c.code()), Some("23503"));
        // A reference locks its row FOR KEY SHARE, as PostgreSQL's check does: an UPDATE
        // of the row's other columns goes ahead (two sessions adding items to one order and
        // updating its total do not deadlock), one of its key waits.
        ok(&a, "ALTER TABLE p ADD COLUMN total int DEFAULT 0").await;
        ok(&a, "BEGIN; INSERT INTO c VALUES (10, 1)").await;
        ok(&b, "BEGIN; INSERT INTO c VALUES (11, 1)").await;
        ok(&a, "UPDATE p SET total = total + 1 WHERE id = 1").await;
        let mut second = Box::pin(b.batch_execute("UPDATE p SET total = total + 1 WHERE id = 1"));
        assert!(
            still_waiting(&mut second).await,
            "the second writer waits for the first"
        );
        ok(&a, "COMMIT").await;
        second
            .await
            .expect("no deadlock between referencing writers");
        ok(&b, "COMMIT").await;
        assert_eq!(rows(&a, "SELECT total FROM p WHERE id = 1").await, ["2"]);
        ok(&a, "BEGIN; INSERT INTO c VALUES (12, 1)").await;
        let mut key_change = Box::pin(b.batch_execute("UPDATE p SET id = 100 WHERE id = 1"));
        assert!(
            still_waiting(&mut key_change).await,
            "a key change waits for the reference"
        );
        ok(&a, "COMMIT").await;
        let e = key_change
            .await
            .expect_err("the key of a referenced row changed");
        assert_eq!(e.code().map(|c| c.code()), Some("23503"));
        // One that rolls back lets the other through.
        ok(&a, "BEGIN; DELETE FROM p WHERE id = 3").await;
        let mut insert = Box::pin(b.batch_execute("INSERT INTO c VALUES (3, 3)"));
        assert!(still_waiting(&mut insert).await, "the INSERT did not wait");
        ok(&a, "ROLLBACK").await;
        insert.await.expect("the referenced row is back");
        assert_eq!(
            rows(&a, "SELECT id, pid FROM c ORDER BY id").await,
            ["1,1", "3,3", "10,1", "11,1", "12,1"]
        );
    });
}

/// COPY FROM checks the keys it loads (all or nothing); a REPEATABLE READ transaction's
/// checks see references and deletes committed after its snapshot; ON CONFLICT DO UPDATE
/// may not change a referenced key.
#[test]
fn copy_repeatable_read_and_upserts_check_references_too() {
    use futures_util::SinkExt;
    let server = HeliosServer::start(ServerOpts::default().shards(3));
    let port = server.pg_port();
    runtime().block_on(async move {
        let a = connect(port).await;
        let b = connect(port).await;
        ok(
            &a,
            "CREATE TABLE p (id int PRIMARY KEY, v int);
             CREATE TABLE c (id int, pid int REFERENCES p);
             INSERT INTO p SELECT g, 0 FROM generate_series(1, 100) g",
        )
        .await;
        let load = |data: String| {
            let client = &a;
            async move {
                let sink = client.copy_in("COPY c FROM STDIN (FORMAT csv)").await?;
                futures_util::pin_mut!(sink);
                sink.send(bytes::Bytes::from(data)).await?;
                sink.finish().await
            }
        };
        let good: String = (1..=500)
            .map(|i| format!("{i},{}\n", i % 100 + 1))
            .collect();
        let bad = format!("{good}501,101\n");
        let e = load(bad)
            .await
            .expect_err("a COPY with a missing key loaded");
        let db = e.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "23503");
        assert_eq!(
            db.detail(),
            Some("Key (pid)=(101) is not present in table \"p\".")
        );
        assert_eq!(rows(&a, "SELECT count(*) FROM c").await, ["0"]);
        assert_eq!(load(good).await.expect("COPY"), 500);
        ok(&a, "DELETE FROM c WHERE pid = 50").await;

        // A REPEATABLE READ transaction's snapshot predates a reference committed since: its
        // DELETE must still see that reference and fail with 23503, as PostgreSQL's check
        // does (checked against PostgreSQL 15).
        ok(
            &b,
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM c",
        )
        .await;
        ok(&a, "INSERT INTO c VALUES (1000, 50)").await;
        let (_, detail) = fails(&b, "DELETE FROM p WHERE id = 50", "23503").await;
        assert_eq!(
            detail,
            "Key (id)=(50) is still referenced from table \"c\"."
        );
        ok(&b, "ROLLBACK").await;
        // And one that references a row deleted since its snapshot fails with 40001, as in
        // PostgreSQL 15; once retried, with 23503.
        ok(
            &b,
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM p",
        )
        .await;
        ok(
            &a,
            "DELETE FROM c WHERE pid = 99; DELETE FROM p WHERE id = 99",
        )
        .await;
        fails(&b, "INSERT INTO c VALUES (1001, 99)", "40001").await;
        ok(&b, "ROLLBACK").await;
        fails(&b, "INSERT INTO c VALUES (1001, 99)", "23503").await;
        assert_eq!(
            rows(&a, "SELECT count(*) FROM p WHERE id = 50").await,
            ["1"]
        );

        fails(
            &a,
            "INSERT INTO p VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET id = 1000",
            "0A000",
        )
        .await;
        ok(
            &a,
            "INSERT INTO p VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 1",
        )
        .await;
        // The referenced key set to its own value (an ORM's upsert of every column).
        ok(
            &a,
            "INSERT INTO p VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET id = excluded.id, v = 2",
        )
        .await;
        ok(&a, "INSERT INTO c VALUES (1, 1) ON CONFLICT DO NOTHING").await;
    });
}
