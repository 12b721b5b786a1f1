//! Runs Debian's unmodified `pgbench` (skipped with a message when postgresql-15 is not
//! installed) against the real `helios-bench pg-ceiling` no-work server, in every query mode,
//! TPC-B and `-S`: every transaction must complete, or the ceiling it measures means nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};

const CLIENTS: u64 = 4;
const TRANSACTIONS_PER_CLIENT: u64 = 200;
const PGBENCH_TIMEOUT_SECONDS: u64 = 60;

/// The server, killed when dropped; its stderr is kept open (unread) while it runs.
struct Ceiling {
    child: Child,
    _stderr: BufReader<ChildStderr>,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pgbench() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin/pgbench");
    if debian.is_file() {
        return Some(debian);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("pgbench"))
        .find(|p| p.is_file())
}

/// Starts the server and waits for the line it writes once every listener is bound (or for
/// its exit): no polling, no sleeps.
fn start_ceiling() -> (Ceiling, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_helios-bench"))
        .args(["pg-ceiling", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn helios-bench pg-ceiling");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("read pg-ceiling's stderr");
    let ceiling = Ceiling {
        child,
        _stderr: stderr,
    };
    assert!(
        line.contains("no-work PostgreSQL server on"),
        "pg-ceiling did not start: {line:?}"
    );
    (ceiling, port)
}

#[test]
fn pgbench_completes_every_transaction_in_every_mode() {
    let Some(pgbench) = pgbench() else {
        eprintln!("skipped: pgbench not installed (apt-get install postgresql-15)");
        return;
    };
    let (_ceiling, port) = start_ceiling();
    let expected = CLIENTS * TRANSACTIONS_PER_CLIENT;
    for mode in ["simple", "extended", "prepared"] {
        for select_only in [false, true] {
            // `timeout`: a server that stops answering must fail the test, not hang it.
            let mut command = Command::new("timeout");
            command
                .arg(PGBENCH_TIMEOUT_SECONDS.to_string())
                .arg(&pgbench)
                .args(["-n", "-M", mode, "-c", &CLIENTS.to_string(), "-j", "2"])
                .args(["-t", &TRANSACTIONS_PER_CLIENT.to_string()])
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]);
            if select_only {
                command.arg("-S");
            }
            let out = command.arg("postgres").output().expect("run pgbench");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "pgbench -M {mode} (-S: {select_only}) failed:\n{stdout}\n{stderr}"
            );
            let processed =
                format!("number of transactions actually processed: {expected}/{expected}");
            assert!(
                stdout.contains(&processed),
                "pgbench -M {mode} (-S: {select_only}) lost transactions:\n{stdout}\n{stderr}"
            );
        }
    }
}
