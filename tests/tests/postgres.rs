//! The PostgreSQL front end with unmodified clients: psql (Debian's postgresql-15 client) and
//! tokio-postgres's simple query protocol. These cover start-up, parameters, statements
//! without tables, errors with their SQLSTATE, and that a bad client never takes the server
//! down; tables, the extended query protocol, psycopg and pgbench are in pg_clients.rs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use helios_tests::server::{psql_command, run_psql, which, HeliosServer, ServerOpts};

fn psql(server: &HeliosServer, args: &[&str]) -> (bool, String, String) {
    psql_on(server, "postgres", args)
}

fn psql_on(server: &HeliosServer, database: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = psql_command(server, "tester", database);
    command
        .args(["-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args);
    run_psql(command)
}

#[test]
fn psql_runs_queries_and_reports_errors() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping (tools/test.sh installs it)");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, out, err) = psql(
        &server,
        &[
            "-c",
            "SELECT 1 + 1 AS two, 'a' || 'b', 2 * 3.5, NULL IS NULL",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2|ab|7.0|t");
    let (ok, out, err) = psql(&server, &["-c", "SHOW server_version"]);
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("16"), "{out}");
    let (ok, _, err) = psql(&server, &["-c", "SELECT 1 / 0"]);
    assert!(!ok);
    assert!(err.contains("division by zero"), "{err}");
    let (ok, _, err) = psql(&server, &["-c", "SELEC 1"]);
    assert!(!ok);
    assert!(err.contains("syntax error"), "{err}");
    // Several statements in one simple query, as psql sends a script line.
    let (ok, out, err) = psql(
        &server,
        &[
            "-c",
            "SET application_name = 'x'; SHOW application_name; SELECT upper('ok')",
        ],
    );
    assert!(ok, "{err}");
    // psql 15 prints every result of a multi-statement string, the SET tag included.
    assert_eq!(out.trim(), "SET\nx\nOK");
}

#[test]
fn unknown_database_is_refused_with_3d000() {
    if which("psql").is_none() {
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let (ok, _, err) = psql_on(&server, "nosuchdb", &["-c", "SELECT 1"]);
    assert!(!ok);
    assert!(
        err.contains("database \"nosuchdb\" does not exist"),
        "{err}"
    );
}

#[test]
fn tokio_postgres_simple_queries_with_sqlstates() {
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = format!("host=127.0.0.1 port={port} user=tester dbname=postgres");
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let messages = client
            .simple_query("SELECT 40 + 2 AS answer, 'x'")
            .await
            .unwrap();
        let row = messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .expect("a row");
        assert_eq!(row.get(0), Some("42"));
        assert_eq!(row.columns()[0].name(), "answer");
        let error = client
            .simple_query("SELECT 2147483647 + 1")
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::NUMERIC_VALUE_OUT_OF_RANGE)
        );
        // Tables work now; a type helios lacks is refused with 0A000.
        client
            .simple_query("CREATE TABLE t (a int PRIMARY KEY)")
            .await
            .unwrap();
        let error = client
            .simple_query("CREATE TABLE t2 (a int PRIMARY KEY, doc json)")
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
        );
        // The extended protocol works (it was refused with 0A000 before tables).
        let row = client
            .query_one("SELECT $1::int4 + 1", &[&41i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        // The connection is still usable after errors.
        assert!(client.simple_query("SELECT 1").await.is_ok());
    });
}

#[test]
fn malformed_startup_and_abrupt_disconnects_leave_the_server_serving() {
    let mut server = HeliosServer::start(ServerOpts::default());
    let port = server.pg_port();
    // A length that claims 1 GiB, then nothing.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x40, 0, 0, 0, 0, 3, 0, 0]).unwrap();
    drop(s);
    // SSLRequest is answered 'N'.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");
    drop(s);
    // Garbage after start-up.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"\xff\xff\xff\xff garbage").unwrap();
    drop(s);
    assert!(server.is_alive());
    if which("psql").is_some() {
        let (ok, out, err) = psql(&server, &["-c", "SELECT 7"]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "7");
    }
}

#[test]
fn reset_returns_to_the_start_up_packet_values() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    // psql sends application_name=psql in its start-up packet.
    let (ok, stdout, stderr) = psql(
        &server,
        &[
            "-c",
            "SET application_name = 'changed'",
            "-c",
            "RESET application_name",
            "-c",
            "SHOW application_name",
            "-c",
            "SET application_name = 'again'",
            "-c",
            "RESET ALL",
            "-c",
            "SHOW application_name",
        ],
    );
    assert!(ok, "{stderr}");
    let shown: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(shown, vec!["SET", "RESET", "psql", "SET", "RESET", "psql"]);
}
