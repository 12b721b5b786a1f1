//! What the tokio-postgres test files share: a runtime and a connection to a test server.

use tokio_postgres::Client;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Connects as `tester` to database `postgres`; the connection task runs on the runtime.
pub async fn connect(port: u16) -> Client {
    let config =
        format!("host=127.0.0.1 port={port} user=tester dbname=postgres connect_timeout=10");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Runs statements that must succeed.
#[allow(dead_code)] // not every test file uses each helper
pub async fn ok(client: &Client, sql: &str) {
    if let Err(e) = client.batch_execute(sql).await {
        panic!("{sql}: {e:?}");
    }
}

/// Whether `future` is still pending after a moment (it waits for a lock).
#[allow(dead_code)]
pub async fn still_waiting<F: std::future::Future + Unpin>(future: &mut F) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(300), future)
        .await
        .is_err()
}
