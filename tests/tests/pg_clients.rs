//! The extended query protocol with unmodified clients: tokio-postgres (binary parameters and
//! results, prepared statements, portals with row limits, SQLSTATEs, transaction blocks),
//! psycopg 3 (tests/py/pg_psycopg.py), SQLAlchemy 2 and Alembic
//! (tests/py/pg_sqlalchemy_alembic.py), pgbench's select-only script over all three query
//! modes, and malformed extended-query messages over a raw socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use helios_tests::server::{which, HeliosServer, ServerOpts};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Error;

mod pg_common;
use pg_common::{connect, runtime};

fn code(error: &Error) -> &str {
    error
        .code()
        .unwrap_or_else(|| panic!("not a server error: {error:?}"))
        .code()
}

/// id, bool, int2, int4, int8, numeric, float8, text, varchar, name.
type AllTypesRow = (
    i32,
    bool,
    i16,
    i32,
    i64,
    Decimal,
    f64,
    &'static str,
    &'static str,
    &'static str,
);

const CREATE_ALL_TYPES: &str = "CREATE TABLE all_types (id int4 PRIMARY KEY, b bool, s int2, \
     i int4, l int8, n numeric, f float8, t text, v varchar(20), nm name)";

#[test]
fn tokio_postgres_binary_parameters_and_results_for_every_type() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let client = connect(port).await;
        client.batch_execute(CREATE_ALL_TYPES).await.unwrap();
        let insert = client
            .prepare("INSERT INTO all_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .await
            .unwrap();
        // The server infers each parameter's type from its target column.
        assert_eq!(
            insert.params(),
            &[
                Type::INT4,
                Type::BOOL,
                Type::INT2,
                Type::INT4,
                Type::INT8,
                Type::NUMERIC,
                Type::FLOAT8,
                Type::TEXT,
                Type::VARCHAR,
                Type::NAME
            ]
        );
        let big: Decimal = "-12345678901234567890.000123".parse().unwrap();
        let small: Decimal = "0.0001".parse().unwrap();
        // The prepared statement is reused for every row (one Parse, a Bind/Execute each).
        let rows: Vec<AllTypesRow> = vec![
            (1, true, 2, 3, 4, "1.50".parse().unwrap(), 2.5, "x", "y", "z"),
            (
                2,
                false,
                i16::MIN,
                i32::MIN,
                i64::MIN,
                big,
                -1e300,
                "héllo",
                "",
                "n",
            ),
            (
                3,
                true,
                i16::MAX,
                i32::MAX,
                i64::MAX,
                small,
                f64::INFINITY,
                "it's \"quoted\"\n",
                "v",
                "pg_catalog",
            ),
        ];
        for r in &rows {
            let n = client
                .execute(
                    &insert,
                    &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8, &r.9],
                )
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        // A row of NULLs, typed as the columns' types.
        let n = client
            .execute(
                &insert,
                &[
                    &4i32,
                    &None::<bool>,
                    &None::<i16>,
                    &None::<i32>,
                    &None::<i64>,
                    &None::<Decimal>,
                    &None::<f64>,
                    &None::<&str>,
                    &None::<&str>,
                    &None::<&str>,
                ],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);

        let select = client
            .prepare("SELECT id, b, s, i, l, n, f, t, v, nm FROM all_types WHERE id = $1")
            .await
            .unwrap();
        let types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
        assert_eq!(
            types,
            [
                Type::INT4,
                Type::BOOL,
                Type::INT2,
                Type::INT4,
                Type::INT8,
                Type::NUMERIC,
                Type::FLOAT8,
                Type::TEXT,
                Type::VARCHAR,
                Type::NAME
            ]
        );
        for r in &rows {
            let row = client.query_one(&select, &[&r.0]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), r.0);
            assert_eq!(row.get::<_, bool>(1), r.1);
            assert_eq!(row.get::<_, i16>(2), r.2);
            assert_eq!(row.get::<_, i32>(3), r.3);
            assert_eq!(row.get::<_, i64>(4), r.4);
            let n: Decimal = row.get(5);
            assert_eq!(n, r.5);
            // Same scale as stored: 1.50 stays 1.50.
            assert_eq!(n.to_string(), r.5.to_string());
            assert_eq!(row.get::<_, f64>(6), r.6);
            assert_eq!(row.get::<_, &str>(7), r.7);
            assert_eq!(row.get::<_, &str>(8), r.8);
            assert_eq!(row.get::<_, &str>(9), r.9);
        }
        let row = client.query_one(&select, &[&4i32]).await.unwrap();
        assert_eq!(row.get::<_, Option<bool>>(1), None);
        assert_eq!(row.get::<_, Option<i16>>(2), None);
        assert_eq!(row.get::<_, Option<i32>>(3), None);
        assert_eq!(row.get::<_, Option<i64>>(4), None);
        assert_eq!(row.get::<_, Option<Decimal>>(5), None);
        assert_eq!(row.get::<_, Option<f64>>(6), None);
        assert_eq!(row.get::<_, Option<&str>>(7), None);
        assert_eq!(row.get::<_, Option<&str>>(8), None);
        assert_eq!(row.get::<_, Option<&str>>(9), None);

        // Parameters in expressions and WHERE clauses, typed by context.
        let rows = client
            .query(
                "SELECT id, l * $1, n + $2, f / $3 FROM all_types WHERE id <= $4 AND b = $5 ORDER BY id",
                &[&2i64, &Decimal::new(1, 2), &2.0f64, &2i32, &true],
            )
            .await
            .unwrap();
        let got: Vec<(i32, i64, Decimal, f64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(got, vec![(1, 8, "1.51".parse().unwrap(), 1.25)]);
        // int8 overflow from a parameter is an error, not a wrapped value.
        let error = client
            .query("SELECT l * $1 FROM all_types WHERE id = 3", &[&2i64])
            .await
            .unwrap_err();
        assert_eq!(code(&error), SqlState::NUMERIC_VALUE_OUT_OF_RANGE.code());
        // The connection is still usable after the error.
        let row = client.query_one(&select, &[&1i32]).await.unwrap();
        assert_eq!(row.get::<_, &str>(7), "x");
    });
}

/// psycopg 3 runs tests/py/pg_psycopg.py against its own server; skipped (with a message)
/// only when python3 is missing. tools/test.sh installs psycopg; without it this fails.
/// One shard, which leaves a CPU to no shard on any machine with two: replies then go out
/// through io_uring's worker there (`ring::Sends::Offloaded`), as on a default 2-core server.
#[test]
fn psycopg_program_passes() {
    let server = HeliosServer::start(ServerOpts::default().shards(1));
    helios_tests::server::python_program_passes(
        "pg_psycopg.py",
        server.pg_port(),
        "psycopg[binary]",
        &server,
    );
}

/// SQLAlchemy 2's ORM and Alembic (all migrations in one transaction, DDL after the
/// `alembic_version` writes) run tests/py/pg_sqlalchemy_alembic.py. tools/test.sh installs
/// them; without them this fails.
#[test]
fn sqlalchemy_and_alembic_program_passes() {
    let server = HeliosServer::start(ServerOpts::default());
    helios_tests::server::python_program_passes(
        "pg_sqlalchemy_alembic.py",
        server.pg_port(),
        "sqlalchemy>=2 alembic",
        &server,
    );
}

#[test]
fn tokio_postgres_portals_with_row_limits_and_query_raw() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let mut client = connect(port).await;
        client
            .batch_execute("CREATE TABLE nums (k int8 PRIMARY KEY, label text)")
            .await
            .unwrap();
        let insert = client
            .prepare("INSERT INTO nums (k, label) VALUES ($1, $2)")
            .await
            .unwrap();
        for k in 1..=7i64 {
            client
                .execute(&insert, &[&k, &format!("n{k}")])
                .await
                .unwrap();
        }
        // query_raw: parameters from an iterator, rows as a stream.
        let params: Vec<i64> = vec![3];
        let stream = client
            .query_raw(
                "SELECT k, label FROM nums WHERE k > $1 ORDER BY k",
                params.iter(),
            )
            .await
            .unwrap();
        use futures_util::TryStreamExt;
        let rows: Vec<tokio_postgres::Row> = stream.try_collect().await.unwrap();
        let ks: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ks, [4, 5, 6, 7]);

        // A portal read two rows per Execute: PortalSuspended until the last batch.
        let select = client
            .prepare("SELECT k, label FROM nums WHERE k >= $1 ORDER BY k")
            .await
            .unwrap();
        let transaction = client.transaction().await.unwrap();
        let portal = transaction.bind(&select, &[&2i64]).await.unwrap();
        let mut batches = Vec::new();
        loop {
            let rows = transaction.query_portal(&portal, 2).await.unwrap();
            let ks: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let done = ks.len() < 2;
            batches.push(ks);
            if done {
                break;
            }
        }
        assert_eq!(batches, vec![vec![2, 3], vec![4, 5], vec![6, 7], vec![]]);
        // Two portals of the same statement, interleaved.
        let a = transaction.bind(&select, &[&1i64]).await.unwrap();
        let b = transaction.bind(&select, &[&5i64]).await.unwrap();
        let a1 = transaction.query_portal(&a, 3).await.unwrap();
        let b1 = transaction.query_portal(&b, 1).await.unwrap();
        let a2 = transaction.query_portal(&a, 0).await.unwrap();
        let b2 = transaction.query_portal(&b, 0).await.unwrap();
        let labels = |rows: &[tokio_postgres::Row]| -> Vec<String> {
            rows.iter().map(|r| r.get::<_, String>(1)).collect()
        };
        assert_eq!(labels(&a1), ["n1", "n2", "n3"]);
        assert_eq!(labels(&b1), ["n5"]);
        assert_eq!(labels(&a2), ["n4", "n5", "n6", "n7"]);
        assert_eq!(labels(&b2), ["n6", "n7"]);
        // query_portal_raw streams the same way.
        let c = transaction.bind(&select, &[&6i64]).await.unwrap();
        let rows: Vec<tokio_postgres::Row> = transaction
            .query_portal_raw(&c, 1)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(labels(&rows), ["n6"]);
        transaction.commit().await.unwrap();
        // Statement reuse after the portals are gone.
        let rows = client.query(&select, &[&7i64]).await.unwrap();
        assert_eq!(labels(&rows), ["n7"]);
    });
}

#[test]
fn tokio_postgres_errors_have_sqlstates_and_leave_the_connection_usable() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let client = connect(port).await;
        client
            .batch_execute("CREATE TABLE u (id int4 PRIMARY KEY, v int4)")
            .await
            .unwrap();
        let insert = client
            .prepare("INSERT INTO u VALUES ($1, $2)")
            .await
            .unwrap();
        client.execute(&insert, &[&1i32, &10i32]).await.unwrap();
        // 23505 at Execute.
        let error = client.execute(&insert, &[&1i32, &11i32]).await.unwrap_err();
        assert_eq!(code(&error), SqlState::UNIQUE_VIOLATION.code(), "{error:?}");
        // 22012 at Execute, with the divisor a parameter.
        let error = client
            .query("SELECT v / $1 FROM u", &[&0i32])
            .await
            .unwrap_err();
        assert_eq!(code(&error), SqlState::DIVISION_BY_ZERO.code(), "{error:?}");
        // 42703 and 42601 at Parse.
        let error = client.prepare("SELECT nope FROM u").await.unwrap_err();
        assert_eq!(code(&error), SqlState::UNDEFINED_COLUMN.code(), "{error:?}");
        let error = client.prepare("SELEC 1").await.unwrap_err();
        assert_eq!(code(&error), SqlState::SYNTAX_ERROR.code(), "{error:?}");
        let error = client.prepare("SELECT * FROM missing").await.unwrap_err();
        assert_eq!(code(&error), SqlState::UNDEFINED_TABLE.code(), "{error:?}");
        // Wrong parameter type for the column (text into int4) is caught client-side by
        // tokio-postgres; a value that does not fit the column is the server's 22003.
        let error = client
            .execute(
                "INSERT INTO u VALUES ($1, $2::int8)",
                &[&2i32, &(1i64 << 40)],
            )
            .await
            .unwrap_err();
        assert_eq!(
            code(&error),
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE.code(),
            "{error:?}"
        );
        // Everything still works, the prepared statement included.
        client.execute(&insert, &[&2i32, &20i32]).await.unwrap();
        let row = client
            .query_one("SELECT count(*), sum(v) FROM u", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 2);
        assert_eq!(row.get::<_, i64>(1), 30);
        // Pipelined: an error in the middle fails only its own statement.
        let (a, b, c) = tokio::join!(
            client.query_one("SELECT v FROM u WHERE id = $1", &[&1i32]),
            client.query_one("SELECT v / 0 FROM u WHERE id = $1", &[&1i32]),
            client.query_one("SELECT v FROM u WHERE id = $1", &[&2i32]),
        );
        assert_eq!(a.unwrap().get::<_, i32>(0), 10);
        assert_eq!(code(&b.unwrap_err()), SqlState::DIVISION_BY_ZERO.code());
        assert_eq!(c.unwrap().get::<_, i32>(0), 20);
    });
}

#[test]
fn tokio_postgres_transaction_blocks_fail_with_25p02_until_rollback() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let mut client = connect(port).await;
        client
            .batch_execute("CREATE TABLE tx (id int4 PRIMARY KEY, v text)")
            .await
            .unwrap();
        // BEGIN/COMMIT with the extended protocol inside.
        let transaction = client.transaction().await.unwrap();
        transaction
            .execute("INSERT INTO tx VALUES ($1, $2)", &[&1i32, &"one"])
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        // An error inside a block: every later statement fails with 25P02 until ROLLBACK.
        let transaction = client.transaction().await.unwrap();
        let error = transaction
            .execute("INSERT INTO tx VALUES ($1, $2)", &[&1i32, &"dup"])
            .await
            .unwrap_err();
        assert_eq!(code(&error), SqlState::UNIQUE_VIOLATION.code());
        let error = transaction
            .query("SELECT v FROM tx WHERE id = $1", &[&1i32])
            .await
            .unwrap_err();
        assert_eq!(code(&error), SqlState::IN_FAILED_SQL_TRANSACTION.code());
        let error = transaction.prepare("SELECT 1").await.unwrap_err();
        assert_eq!(code(&error), SqlState::IN_FAILED_SQL_TRANSACTION.code());
        transaction.rollback().await.unwrap();
        let row = client
            .query_one("SELECT v FROM tx WHERE id = $1", &[&1i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>(0), "one");
        // The same over the simple protocol; COMMIT of a failed block reports ROLLBACK.
        client.batch_execute("BEGIN").await.unwrap();
        let error = client.batch_execute("SELECT 1 / 0").await.unwrap_err();
        assert_eq!(code(&error), SqlState::DIVISION_BY_ZERO.code());
        let error = client.batch_execute("SELECT 1").await.unwrap_err();
        assert_eq!(code(&error), SqlState::IN_FAILED_SQL_TRANSACTION.code());
        let messages = client.simple_query("COMMIT").await.unwrap();
        assert!(
            messages
                .iter()
                .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(_))),
            "{messages:?}"
        );
        client.batch_execute("SELECT 1").await.unwrap();
        // Dropping a transaction without commit rolls it back (tokio-postgres sends ROLLBACK).
        {
            let transaction = client.transaction().await.unwrap();
            let _ = transaction
                .query("SELECT nope FROM tx", &[])
                .await
                .unwrap_err();
        }
        let row = client
            .query_one("SELECT count(*) FROM tx", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
    });
}

/// A PostgreSQL protocol 3.0 client over a plain socket, for messages real clients never send.
struct Wire {
    stream: TcpStream,
}

/// One backend message: type byte and body.
type Msg = (u8, Vec<u8>);

impl Wire {
    fn connect(port: u16) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut wire = Wire { stream };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for s in ["user", "tester", "database", "postgres", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        wire.stream.write_all(&startup).unwrap();
        let messages = wire.until_ready();
        assert_eq!(messages.first().map(|m| m.0), Some(b'R'), "{messages:?}");
        wire
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn send(&mut self, tag: u8, body: &[u8]) {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        self.raw(&m);
    }

    fn parse(&mut self, name: &str, sql: &str, types: &[u32]) {
        let mut b = cstr(name);
        b.extend(cstr(sql));
        b.extend_from_slice(&(types.len() as i16).to_be_bytes());
        for t in types {
            b.extend_from_slice(&t.to_be_bytes());
        }
        self.send(b'P', &b);
    }

    fn bind(
        &mut self,
        portal: &str,
        statement: &str,
        formats: &[i16],
        params: &[Option<&[u8]>],
        results: &[i16],
    ) {
        let mut b = cstr(portal);
        b.extend(cstr(statement));
        b.extend_from_slice(&(formats.len() as i16).to_be_bytes());
        for f in formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        b.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b.extend_from_slice(&(results.len() as i16).to_be_bytes());
        for f in results {
            b.extend_from_slice(&f.to_be_bytes());
        }
        self.send(b'B', &b);
    }

    fn describe(&mut self, kind: u8, name: &str) {
        let mut b = vec![kind];
        b.extend(cstr(name));
        self.send(b'D', &b);
    }

    fn execute(&mut self, portal: &str, max_rows: i32) {
        let mut b = cstr(portal);
        b.extend_from_slice(&max_rows.to_be_bytes());
        self.send(b'E', &b);
    }

    fn sync(&mut self) {
        self.send(b'S', &[]);
    }

    fn query(&mut self, sql: &str) {
        self.send(b'Q', &cstr(sql));
    }

    /// The next message, or None at end of stream.
    fn read(&mut self) -> Option<Msg> {
        let mut header = [0u8; 5];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
        let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).expect("message body");
        Some((header[0], body))
    }

    /// Messages up to and including ReadyForQuery.
    fn until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self
                .read()
                .unwrap_or_else(|| panic!("EOF before ReadyForQuery: {out:?}"));
            let done = m.0 == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// An ErrorResponse field (`C` SQLSTATE, `M` message, `S` severity).
fn error_field(body: &[u8], field: u8) -> String {
    let mut rest = body;
    while let Some((&f, tail)) = rest.split_first() {
        if f == 0 {
            break;
        }
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .unwrap_or_else(|| panic!("bad ErrorResponse {:?}", String::from_utf8_lossy(body)));
        if f == field {
            return String::from_utf8_lossy(&tail[..end]).into_owned();
        }
        rest = &tail[end + 1..];
    }
    panic!("no field {} in {body:?}", field as char)
}

/// The message types in order, ErrorResponses as `E:<sqlstate>`, ReadyForQuery as `Z:<status>`.
fn summary(messages: &[Msg]) -> Vec<String> {
    messages
        .iter()
        .map(|(t, body)| match t {
            b'E' => format!("E:{}", error_field(body, b'C')),
            b'Z' => format!("Z:{}", body[0] as char),
            t => (*t as char).to_string(),
        })
        .collect()
}

/// The DataRows' first column, as text.
fn first_column(messages: &[Msg]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.0 == b'D')
        .map(|(_, body)| {
            let len = i32::from_be_bytes(body[2..6].try_into().unwrap());
            String::from_utf8_lossy(&body[6..6 + len as usize]).into_owned()
        })
        .collect()
}

/// On one shard, so that replies are sent off the shard (see `psycopg_program_passes`): the
/// error before a connection is closed must still arrive.
#[test]
fn malformed_extended_query_messages_get_sqlstates_and_sync_recovers() {
    let mut server = HeliosServer::start(ServerOpts::default().shards(1));
    let port = server.pg_port();
    let mut w = Wire::connect(port);

    // Bind to a statement that does not exist; the Execute after it is skipped until Sync.
    w.bind("", "nope", &[], &[], &[]);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:26000", "Z:I"]);

    // Execute and Describe of portals that do not exist; Describe of a missing statement.
    w.execute("ghost", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:34000", "Z:I"]);
    w.describe(b'P', "ghost");
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:34000", "Z:I"]);
    w.describe(b'S', "ghost");
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:26000", "Z:I"]);
    w.describe(b'X', "");
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);

    // A statement with one int4 parameter.
    w.parse("s1", "SELECT $1::int4 + 1", &[23]);
    w.describe(b'S', "s1");
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["1", "t", "T", "Z:I"]);
    // Parse of a name in use.
    w.parse("s1", "SELECT 2", &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:42P05", "Z:I"]);
    // Wrong parameter count.
    w.bind("", "s1", &[], &[], &[]);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    w.bind("", "s1", &[], &[Some(b"1"), Some(b"2")], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    // A binary int4 of 2 bytes (too short: 08P01, as PostgreSQL's "insufficient data left
    // in message"), of 5 bytes (22P03); then one of 4 that works.
    w.bind("", "s1", &[1], &[Some(&[0, 7])], &[]);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    w.bind("", "s1", &[1], &[Some(&[0, 0, 0, 7, 0])], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:22P03", "Z:I"]);
    w.bind("", "s1", &[1], &[Some(&41i32.to_be_bytes())], &[]);
    w.execute("", 0);
    w.sync();
    let m = w.until_ready();
    assert_eq!(summary(&m), ["2", "D", "C", "Z:I"]);
    assert_eq!(first_column(&m), ["42"]);
    // A text parameter that is not an int4.
    // (PostgreSQL converts parameters at Bind; helios at Execute, after BindComplete.)
    w.bind("", "s1", &[0], &[Some(b"forty")], &[]);
    w.execute("", 0);
    w.sync();
    let m = summary(&w.until_ready());
    assert!(
        m == ["E:22P02", "Z:I"] || m == ["2", "E:22P02", "Z:I"],
        "{m:?}"
    );
    // Invalid UTF-8 in a text parameter.
    w.bind("", "s1", &[0], &[Some(&[0xff, 0xfe])], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:22021", "Z:I"]);
    // Bad format codes: an unknown code, and a count that is neither 0, 1 nor one each.
    w.bind("", "s1", &[7], &[Some(b"1")], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    w.bind("", "s1", &[0, 0], &[Some(b"1")], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    w.bind("", "s1", &[0], &[Some(b"1")], &[0, 1, 0]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:08P01", "Z:I"]);
    // A binary result of the int4 column.
    w.bind("", "s1", &[0], &[Some(b"1")], &[1]);
    w.execute("", 0);
    w.sync();
    let m = w.until_ready();
    assert_eq!(summary(&m), ["2", "D", "C", "Z:I"]);
    let row = &m.iter().find(|x| x.0 == b'D').unwrap().1;
    assert_eq!(&row[2..], &[0, 0, 0, 4, 0, 0, 0, 2]);

    // Execute with a row limit: PortalSuspended between batches, then "SELECT 5" in all.
    w.parse("", "SELECT * FROM generate_series(1, 5)", &[]);
    w.bind("p", "", &[], &[], &[]);
    w.execute("p", 2);
    w.execute("p", 2);
    w.execute("p", 2);
    w.execute("p", 2);
    w.sync();
    let m = w.until_ready();
    assert_eq!(
        summary(&m),
        ["1", "2", "D", "D", "s", "D", "D", "s", "D", "C", "C", "Z:I"]
    );
    assert_eq!(first_column(&m), ["1", "2", "3", "4", "5"]);
    let tag = |body: &[u8]| String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
    let tags: Vec<String> = m
        .iter()
        .filter(|x| x.0 == b'C')
        .map(|x| tag(&x.1))
        .collect();
    // As PostgreSQL's: the rows of the last Execute, then 0 for an exhausted portal.
    assert_eq!(tags, ["SELECT 1", "SELECT 0"]);
    // A portal that ran to completion without rows is not run again (55000).
    w.query("CREATE TABLE once (k int4 PRIMARY KEY)");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);
    w.parse("", "INSERT INTO once VALUES (1)", &[]);
    w.bind("", "", &[], &[], &[]);
    w.execute("", 0);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["1", "2", "C", "E:55000", "Z:I"]);

    // Portals end with their transaction: the implicit one at Sync, or COMMIT.
    w.parse("", "SELECT 1", &[]);
    w.bind("p1", "", &[], &[], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["1", "2", "Z:I"]);
    w.execute("p1", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:34000", "Z:I"]);
    w.query("BEGIN");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:T"]);
    w.parse("", "SELECT 1", &[]);
    w.bind("p2", "", &[], &[], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["1", "2", "Z:T"]);
    w.execute("p2", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["D", "C", "Z:T"]);
    w.query("COMMIT");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);
    w.execute("p2", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:34000", "Z:I"]);

    // Inside a transaction block, a protocol-level error fails the block like any other.
    w.query("BEGIN");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:T"]);
    w.bind("", "nope", &[], &[], &[]);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:26000", "Z:E"]);
    w.query("SELECT 1");
    assert_eq!(summary(&w.until_ready()), ["E:25P02", "Z:E"]);
    w.query("ROLLBACK");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);

    // After all that the connection and the named statement still work.
    w.bind("", "s1", &[], &[Some(b"9")], &[]);
    w.execute("", 0);
    w.sync();
    let m = w.until_ready();
    assert_eq!(first_column(&m), ["10"]);
    w.query("SELECT 'still here'");
    assert_eq!(first_column(&w.until_ready()), ["still here"]);

    // DEALLOCATE drops the connection's statements, over either protocol.
    w.parse("s2", "SELECT 2", &[]);
    w.parse("dealloc", "DEALLOCATE s1", &[]);
    w.describe(b'S', "dealloc");
    w.bind("", "dealloc", &[], &[], &[]);
    w.execute("", 0);
    w.bind("", "s1", &[], &[Some(b"1")], &[]);
    w.sync();
    assert_eq!(
        summary(&w.until_ready()),
        ["1", "1", "t", "n", "2", "C", "E:26000", "Z:I"]
    );
    w.query("DEALLOCATE PREPARE s1");
    assert_eq!(summary(&w.until_ready()), ["E:26000", "Z:I"]);
    w.query("deallocate all;");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);
    w.describe(b'S', "s2");
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["E:26000", "Z:I"]);

    // A declared length beyond any message: 08P01, and the server closes the connection.
    let mut huge = Wire::connect(port);
    huge.raw(&[b'B', 0x7f, 0xff, 0xff, 0xff, 0, 0]);
    let (t, body) = huge.read().expect("an ErrorResponse");
    assert_eq!(t, b'E');
    assert_eq!(error_field(&body, b'C'), "08P01");
    assert!(huge.read().is_none(), "connection closed after the error");
    // A length shorter than the header itself.
    let mut short = Wire::connect(port);
    short.raw(&[b'S', 0, 0, 0, 2]);
    let (t, body) = short.read().expect("an ErrorResponse");
    assert_eq!(
        t,
        b'E',
        "short length: {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(error_field(&body, b'C'), "08P01");
    assert!(short.read().is_none());
    // A Bind whose counts claim more than its body holds.
    let mut truncated = Wire::connect(port);
    let mut b = cstr("");
    b.extend(cstr("s"));
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&5i16.to_be_bytes()); // five parameters, none present
    truncated.send(b'B', &b);
    truncated.sync();
    let (t, body) = truncated.read().expect("an ErrorResponse");
    assert_eq!(
        t,
        b'E',
        "truncated Bind: {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(error_field(&body, b'C'), "08P01");

    // The same truncated Bind pipelined with a Sync: its counts must not reach into the Sync.
    let mut pipelined = Wire::connect(port);
    let mut b = cstr("");
    b.extend(cstr("s"));
    b.extend_from_slice(&1i16.to_be_bytes()); // one format code, absent
    let mut m = vec![b'B'];
    m.extend_from_slice(&((b.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(&b);
    m.extend_from_slice(&[b'S', 0, 0, 0, 4]);
    pipelined.raw(&m);
    let (t, body) = pipelined.read().expect("an ErrorResponse");
    assert_eq!(
        t,
        b'E',
        "pipelined truncated Bind: {:?}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(error_field(&body, b'C'), "08P01");
    // CopyData and Execute with lengths below the header (CopyData of length 0 used to panic
    // the shard's executor in pgwire's decoder).
    for message in [[b'd', 0, 0, 0, 0], [b'E', 0, 0, 0, 3]] {
        let mut c = Wire::connect(port);
        c.raw(&message);
        let (t, body) = c.read().expect("an ErrorResponse");
        assert_eq!(t, b'E', "{message:?}: {:?}", String::from_utf8_lossy(&body));
        assert_eq!(error_field(&body, b'C'), "08P01");
        assert!(c.read().is_none());
    }

    // The first connection and new ones are unaffected; the server is alive.
    w.query("SELECT 2");
    assert_eq!(first_column(&w.until_ready()), ["2"]);
    let mut fresh = Wire::connect(port);
    fresh.query("SELECT 3");
    assert_eq!(first_column(&fresh.until_ready()), ["3"]);
    assert!(server.is_alive());
}

fn pgbench() -> Option<std::path::PathBuf> {
    which("pgbench").or_else(|| {
        let path = std::path::PathBuf::from("/usr/lib/postgresql/15/bin/pgbench");
        path.is_file().then_some(path)
    })
}

/// pgbench's built-in select-only script in all three query modes, and a read-write script
/// of its own, against tables made by hand: `pgbench -i` cannot run yet (its history table
/// has a timestamp column, and it loads with COPY).
#[test]
fn pgbench_select_only_and_updates_in_every_query_mode() {
    let Some(pgbench) = pgbench() else {
        eprintln!("pgbench not installed; skipping (tools/test.sh installs postgresql-15)");
        return;
    };
    let mut server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    runtime().block_on(async move {
        let client = connect(port).await;
        client
            .batch_execute(
                "CREATE TABLE pgbench_branches (bid int4 PRIMARY KEY, bbalance int4, filler text);
                 INSERT INTO pgbench_branches VALUES (1, 0, NULL);
                 CREATE TABLE pgbench_accounts (aid int4 PRIMARY KEY, bid int4, abalance int4,
                     filler text);
                 INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(1, 1000) g;",
            )
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("rw.sql");
    std::fs::write(
        &script,
        "\\set aid random(1, 1000)\n\
         \\set delta random(-5000, 5000)\n\
         BEGIN;\n\
         UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n\
         END;\n",
    )
    .unwrap();
    let port = port.to_string();
    let run = |extra: &[&str]| {
        let out = Command::new(&pgbench)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "tester"])
            .args(["-n", "-c", "4", "-j", "2", "-t", "50"])
            .args(extra)
            .arg("postgres")
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run pgbench");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "pgbench {extra:?}: {stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("number of transactions actually processed: 200/200"),
            "pgbench {extra:?}: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("number of failed transactions")
                || stdout.contains("number of failed transactions: 0 "),
            "pgbench {extra:?}: {stdout}\n{stderr}"
        );
    };
    for mode in ["simple", "extended", "prepared"] {
        run(&["-S", "-M", mode]);
        run(&["-f", script.to_str().unwrap(), "-M", mode]);
    }
    assert!(server.is_alive());
}

/// COPY through tokio-postgres, which runs it in the extended query protocol: copy_in with
/// a bad row fails whole (nothing loaded), a good one loads, copy_out reads it back, and the
/// connection stays usable after each.
#[test]
fn copy_in_and_out_through_the_extended_protocol() {
    use futures_util::SinkExt;
    use futures_util::TryStreamExt;
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let port = server.pg_port();
    runtime().block_on(async move {
        let client = connect(port).await;
        client
            .batch_execute("CREATE TABLE cp (id int PRIMARY KEY, name text)")
            .await
            .unwrap();
        let load = |data: &'static str| {
            let client = &client;
            async move {
                let sink = client.copy_in("COPY cp FROM STDIN (FORMAT csv)").await?;
                futures_util::pin_mut!(sink);
                sink.send(bytes::Bytes::from_static(data.as_bytes()))
                    .await?;
                sink.finish().await
            }
        };
        let error = load("1,one\n2,two\nx,bad\n").await.unwrap_err();
        assert_eq!(code(&error), "22P02", "{error:?}");
        let count: i64 = client
            .query_one("SELECT count(*) FROM cp", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 0, "a failed COPY leaves nothing");
        assert_eq!(load("1,one\n2,\"t,wo\"\n3,\n").await.unwrap(), 3);
        let stream = client
            .copy_out("COPY (SELECT id, name FROM cp ORDER BY id) TO STDOUT")
            .await
            .unwrap();
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        let text: Vec<u8> = chunks.concat();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "1\tone\n2\tt,wo\n3\t\\N\n"
        );
        let n: i64 = client
            .query_one("SELECT count(*) FROM cp WHERE name IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    });
}

/// Binary COPY both ways through tokio-postgres's `BinaryCopyInWriter` and
/// `BinaryCopyOutStream` (the format drivers such as pgx and psycopg's binary copy use),
/// and CSV's FORCE_QUOTE, FORCE_NOT_NULL, FORCE_NULL and HEADER MATCH.
#[test]
fn binary_copy_and_csv_force_options() {
    use futures_util::SinkExt;
    use futures_util::TryStreamExt;
    use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let port = server.pg_port();
    runtime().block_on(async move {
        let client = connect(port).await;
        client
            .batch_execute(
                "CREATE TABLE bc (id int8 PRIMARY KEY, name text, amount numeric(10,2), ok bool)",
            )
            .await
            .unwrap();
        let types = [Type::INT8, Type::TEXT, Type::NUMERIC, Type::BOOL];
        let sink = client
            .copy_in("COPY bc (id, name, amount, ok) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let writer = BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for i in 1..=2000i64 {
            let name = (i % 7 != 0).then(|| format!("name {i}"));
            let amount = Decimal::new(i * 101, 2);
            writer
                .as_mut()
                .write(&[&i, &name, &amount, &(i % 2 == 0)])
                .await
                .unwrap();
        }
        assert_eq!(writer.finish().await.unwrap(), 2000);
        let row = client
            .query_one(
                "SELECT count(*), count(name), sum(amount)::text, count(*) FILTER (WHERE ok) FROM bc",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 2000);
        assert_eq!(row.get::<_, i64>(1), 2000 - 285);
        assert_eq!(row.get::<_, String>(2), "2021010.00");
        assert_eq!(row.get::<_, i64>(3), 1000);
        // Out again, in binary.
        let stream = client
            .copy_out("COPY (SELECT id, name, amount, ok FROM bc WHERE id <= 14 ORDER BY id) TO STDOUT (FORMAT binary)")
            .await
            .unwrap();
        let rows: Vec<_> = BinaryCopyOutStream::new(stream, &types)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(rows.len(), 14);
        assert_eq!(rows[6].get::<i64>(0), 7);
        assert_eq!(rows[6].get::<Option<String>>(1), None);
        assert_eq!(rows[13].get::<Decimal>(2), Decimal::new(1414, 2));
        assert!(rows[13].get::<bool>(3));
        // A broken stream fails with nothing loaded.
        let sink = client
            .copy_in("COPY bc (id, name, amount, ok) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x04\0\0\0\x08\0\0\0\0\0\0\x27\x10\0\0"))
            .await
            .unwrap();
        let error = sink.finish().await.unwrap_err();
        assert_eq!(code(&error), "22P04", "{error:?}");
        // Text that is not UTF-8: 22021, as PostgreSQL's encoding check.
        let sink = client
            .copy_in("COPY bc (id, name) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(
            b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\x08\0\0\0\0\0\0\0\x63\0\0\0\x01\xff\xff\xff",
        ))
        .await
        .unwrap();
        let error = sink.finish().await.unwrap_err();
        assert_eq!(code(&error), "22021", "{error:?}");
        // CSV: FORCE_NOT_NULL / FORCE_NULL on the way in, FORCE_QUOTE on the way out.
        client
            .batch_execute("CREATE TABLE fc (a int, b text, c text)")
            .await
            .unwrap();
        let sink = client
            .copy_in("COPY fc FROM STDIN (FORMAT csv, HEADER MATCH, FORCE_NOT_NULL (b), FORCE_NULL (c))")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"a,b,c\n1,,\"\"\n2,\"\",x\n"))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 2);
        let stream = client
            .copy_out("COPY fc TO STDOUT (FORMAT csv, FORCE_QUOTE (b, c))")
            .await
            .unwrap();
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        let mut lines: Vec<String> = String::from_utf8(chunks.concat())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        assert_eq!(lines, ["1,\"\",", "2,\"\",\"x\""]);
        let sink = client
            .copy_in("COPY fc FROM STDIN (FORMAT csv, HEADER MATCH)")
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"a,x,c\n"))
            .await
            .unwrap();
        let error = sink.finish().await.unwrap_err();
        assert_eq!(code(&error), "22P04", "{error:?}");
        let message = error.as_db_error().unwrap().message().to_string();
        assert_eq!(
            message,
            "column name mismatch in header line field 2: got \"x\", expected \"b\""
        );
    });
}

/// The Executes before one Sync run as one transaction, PostgreSQL's implicit block of the
/// extended protocol (what JDBC's `executeBatch` and pipelining drivers rely on): an error
/// undoes the Executes before it, and the connection is idle again at Sync; BEGIN among them
/// leaves a block open; a statement that cannot run in a block runs when it is the first.
#[test]
fn executes_before_one_sync_are_one_transaction() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let mut w = Wire::connect(server.pg_port());
    let count = |w: &mut Wire| {
        w.query("SELECT count(*) FROM eb");
        first_column(&w.until_ready())
    };
    w.query("CREATE TABLE eb (id int PRIMARY KEY)");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);

    // A duplicate key in the third Execute undoes the first two.
    w.parse("ins", "INSERT INTO eb VALUES ($1)", &[23]);
    for id in ["1", "2", "1"] {
        w.bind("", "ins", &[], &[Some(id.as_bytes())], &[]);
        w.execute("", 0);
    }
    w.sync();
    assert_eq!(
        summary(&w.until_ready()),
        ["1", "2", "C", "2", "C", "2", "E:23505", "Z:I"]
    );
    assert_eq!(count(&mut w), ["0"]);

    // Without it, all commit at the Sync.
    for id in ["1", "2", "3"] {
        w.bind("", "ins", &[], &[Some(id.as_bytes())], &[]);
        w.execute("", 0);
    }
    w.sync();
    assert_eq!(
        summary(&w.until_ready()),
        ["2", "C", "2", "C", "2", "C", "Z:I"]
    );
    assert_eq!(count(&mut w), ["3"]);

    // BEGIN among them opens the block for what came before it too.
    w.bind("", "ins", &[], &[Some(b"4")], &[]);
    w.execute("", 0);
    w.parse("", "BEGIN", &[]);
    w.bind("", "", &[], &[], &[]);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["2", "C", "1", "2", "C", "Z:T"]);
    w.query("ROLLBACK");
    assert_eq!(summary(&w.until_ready()), ["C", "Z:I"]);
    assert_eq!(count(&mut w), ["3"]);

    // CREATE DATABASE runs as the first Execute; after another one it is refused (25001),
    // and that other one is undone.
    w.parse("", "CREATE DATABASE eb_other", &[]);
    w.bind("", "", &[], &[], &[]);
    w.execute("", 0);
    w.sync();
    assert_eq!(summary(&w.until_ready()), ["1", "2", "C", "Z:I"]);
    w.bind("", "ins", &[], &[Some(b"5")], &[]);
    w.execute("", 0);
    w.parse("", "CREATE DATABASE eb_third", &[]);
    w.bind("", "", &[], &[], &[]);
    w.execute("", 0);
    w.sync();
    let m = w.until_ready();
    assert_eq!(summary(&m), ["2", "C", "1", "2", "E:25001", "Z:I"]);
    assert_eq!(
        error_field(&m[4].1, b'M'),
        "CREATE DATABASE cannot be executed within a pipeline"
    );
    assert_eq!(count(&mut w), ["3"]);
}

/// The ParameterStatus messages of one exchange, as `name=value`.
fn parameter_statuses(messages: &[Msg]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.0 == b'S')
        .map(|(_, body)| {
            let mut parts = body.split(|b| *b == 0).map(String::from_utf8_lossy);
            let name = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            format!("{name}={value}")
        })
        .collect()
}

/// A reported setting that a failed query string puts back (its implicit block rolled back)
/// is reported again before ReadyForQuery, so the client's view of it stays true; so is one
/// that set_config changes.
#[test]
fn settings_put_back_by_a_rollback_are_reported() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut w = Wire::connect(server.pg_port());
    w.query("SET application_name = 'a1'; SELECT 1/0");
    let m = w.until_ready();
    assert_eq!(summary(&m), ["S", "C", "E:22012", "S", "Z:I"]);
    assert_eq!(
        parameter_statuses(&m),
        ["application_name=a1", "application_name="]
    );
    w.query("SELECT set_config('application_name', 'c1', false)");
    let m = w.until_ready();
    assert_eq!(parameter_statuses(&m), ["application_name=c1"]);
    assert_eq!(summary(&m).last().map(String::as_str), Some("Z:I"));
    w.query("SHOW application_name");
    assert_eq!(first_column(&w.until_ready()), ["c1"]);
}
