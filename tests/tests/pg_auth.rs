//! PostgreSQL authentication with real clients: users in the config file log in with
//! SCRAM-SHA-256, md5 or a cleartext password (tokio-postgres and psql), a wrong password
//! gets 28P01, and users not in the file are trusted on loopback.

use helios_tests::server::{psql_command, run_psql, which, HeliosServer, ServerOpts};
use tokio_postgres::NoTls;

const CONFIG: &str = r#"
[[pg_users]]
name = "alice"
password = "wonder land"
auth = "scram-sha-256"

[[pg_users]]
name = "bob"
password = "builder"
auth = "md5"

[[pg_users]]
name = "carol"
password = "singer"
auth = "password"
"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Connects and runs `SELECT current_user`; the error's SQLSTATE on failure.
async fn login(
    server: &HeliosServer,
    user: &str,
    password: Option<&str>,
) -> Result<String, String> {
    let mut config = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres connect_timeout=10",
        server.pg_port()
    );
    if let Some(p) = password {
        config.push_str(&format!(" password='{p}'"));
    }
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await.map_err(|e| {
        e.code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string())
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[test]
fn configured_users_authenticate_with_their_method() {
    let server = HeliosServer::start(ServerOpts::default().config(CONFIG));
    runtime().block_on(async {
        assert_eq!(
            login(&server, "alice", Some("wonder land")).await,
            Ok("alice".into())
        );
        assert_eq!(
            login(&server, "bob", Some("builder")).await,
            Ok("bob".into())
        );
        assert_eq!(
            login(&server, "carol", Some("singer")).await,
            Ok("carol".into())
        );
        for (user, wrong) in [("alice", "wonderland"), ("bob", "Builder"), ("carol", "")] {
            assert_eq!(
                login(&server, user, Some(wrong)).await,
                Err("28P01".to_string()),
                "{user} with a wrong password"
            );
        }
        // No password at all for a configured user: the client gives up before sending one.
        assert!(login(&server, "alice", None).await.is_err());
        // Users not in the file: trust on loopback.
        assert_eq!(login(&server, "dave", None).await, Ok("dave".into()));
    });
    // The server still serves after failed logins.
    runtime().block_on(async {
        assert_eq!(
            login(&server, "alice", Some("wonder land")).await,
            Ok("alice".into())
        );
    });
}

#[test]
fn psql_logs_in_with_scram_and_md5() {
    if which("psql").is_none() {
        eprintln!("psql not installed; skipping");
        return;
    }
    let server = HeliosServer::start(ServerOpts::default().config(CONFIG));
    let run = |user: &str, password: &str| {
        let mut psql = psql_command(&server, user, "postgres");
        psql.args(["-A", "-t", "-w", "-c", "SELECT current_user"])
            .env("PGPASSWORD", password);
        run_psql(psql)
    };
    let (ok, stdout, stderr) = run("alice", "wonder land");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "alice");
    let (ok, _, stderr) = run("bob", "builder");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run("bob", "nope");
    assert!(!ok);
    assert!(
        stderr.contains("password authentication failed for user \"bob\""),
        "{stderr}"
    );
}
