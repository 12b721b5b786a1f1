//! Runs the real `helios-bench` binary against a real `redis-server` (skipped with a message
//! when it is not installed) and against the `helios` binary when one was built next to this
//! test (`<target>/debug/helios`): a short `--requests` run of `set` then `get`, checking the
//! JSON report and that nothing failed. Readiness is polled against a deadline, never slept.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const START_ATTEMPTS_MAX: usize = 3;
const REQUESTS: u64 = 5000;

/// Kills the server process when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < READY_DEADLINE {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ping(port) {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    false
}

/// Starts `make(port, dir)` on a free port, retrying on new ports if the start fails.
fn start(name: &str, make: impl Fn(u16, &Path) -> Command) -> Server {
    let dir = tempfile::Builder::new()
        .prefix("helios-bench-test-")
        .tempdir()
        .expect("tempdir");
    for _ in 0..START_ATTEMPTS_MAX {
        let port = free_port();
        let log = File::create(dir.path().join("server.log")).expect("create log");
        let mut child = make(port, dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        if wait_ready(&mut child, port) {
            return Server {
                child,
                port,
                _dir: dir,
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    panic!("{name} did not start:\n{log}");
}

fn bench(port: u16, workload: &str, json: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_helios-bench"))
        .args(["redis", "--target", &format!("127.0.0.1:{port}")])
        .args(["--workload", workload, "--requests", &REQUESTS.to_string()])
        .args(["--connections", "8", "--threads", "2", "--pipeline", "4"])
        .args(["--warmup", "0", "--keyspace", "1000", "--load", "--quiet"])
        .arg("--json")
        .arg(json)
        .output()
        .expect("run helios-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helios-bench failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(workload),
        "table lacks the workload:\n{stdout}"
    );
    let text = std::fs::read_to_string(json).expect("json written");
    serde_json::from_str(&text).expect("valid json")
}

fn check_set_then_get(port: u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    for workload in ["set", "get"] {
        let report = bench(port, workload, &dir.path().join(format!("{workload}.json")));
        let results = report["results"].as_array().expect("results array");
        assert_eq!(results.len(), 1);
        let r = &results[0];
        assert_eq!(r["target"], format!("127.0.0.1:{port}"));
        assert_eq!(r["workload"], workload);
        assert_eq!(r["errors"], 0, "{r:#}");
        assert_eq!(r["ops"], REQUESTS, "{r:#}");
        assert_eq!(r["misses"], 0, "loaded keys are all found: {r:#}");
        assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0);
        let latency = &r["latency_us"];
        let p = |f: &str| latency[f].as_f64().unwrap_or_else(|| panic!("{f} missing"));
        assert!(p("p50") > 0.0);
        assert!(p("p50") <= p("p90") && p("p90") <= p("p99"));
        assert!(p("p99") <= p("p999") && p("p999") <= p("max"));
    }
}

#[test]
fn against_redis_server() {
    let Some(bin) = which("redis-server") else {
        eprintln!("SKIPPED: redis-server is not installed (tools/test.sh installs it)");
        return;
    };
    let server = start("redis-server", |port, dir| {
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir);
        cmd
    });
    check_set_then_get(server.port);
}

#[test]
fn against_helios() {
    // `$HELIOS_BIN`, else `<target>/debug/helios` (this test runs from `<target>/debug/deps/`).
    let exe = std::env::current_exe().expect("current_exe");
    let helios = std::env::var_os("HELIOS_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            exe.parent()
                .and_then(Path::parent)
                .map(|target| target.join("helios"))
        });
    let Some(helios) = helios.filter(|p| p.is_file()) else {
        eprintln!("SKIPPED: no helios binary next to the test (cargo build --bin helios)");
        return;
    };
    let server = start("helios", |port, dir| {
        let mut cmd = Command::new(&helios);
        cmd.arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--redis-addr", &format!("127.0.0.1:{port}")])
            .args(["--pg-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--shards", "2", "--durability", "async"]);
        cmd
    });
    check_set_then_get(server.port);
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const PG_REQUESTS: u64 = 2000;
const PG_TPCB_REQUESTS: u64 = 200;

/// A throwaway PostgreSQL cluster, stopped (and its directory removed) when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    started: bool,
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `runuser -u postgres -- PG_BIN/tool args...` when running as root, else the tool itself.
    fn tool(tool: &str) -> Command {
        let path = Path::new(PG_BIN).join(tool);
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("helios-bench-pg-")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let mut pg = Postgres {
            dir,
            port: 0,
            started: false,
        };
        let out = Postgres::tool("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "--auth=trust"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..START_ATTEMPTS_MAX {
            pg.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                pg.port,
                pg.dir.path().display()
            );
            let out = Postgres::tool("pg_ctl")
                .arg("-D")
                .arg(pg.data())
                .arg("-l")
                .arg(pg.dir.path().join("postgres.log"))
                .args(["-o", &options, "-w", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                pg.started = true;
                return pg;
            }
        }
        let log = std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default();
        panic!("postgres did not start:\n{log}");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.started {
            let _ = Postgres::tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn bench_pg(port: u16, args: &[&str], json: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_helios-bench"))
        .args(["pg", "--target", &format!("127.0.0.1:{port}")])
        .args(["--connections", "4", "--threads", "2", "--warmup", "0"])
        .args(["--keyspace", "1000", "--load", "--quiet"])
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("run helios-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "helios-bench pg {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(json).expect("json written");
    serde_json::from_str(&text).expect("valid json")
}

fn check_pg_result(report: &serde_json::Value, port: u16, workload: &str, requests: u64) {
    let results = report["results"].as_array().expect("results array");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["target"], format!("127.0.0.1:{port}"));
    assert_eq!(r["workload"], workload);
    assert_eq!(r["errors"], 0, "{r:#}");
    assert_eq!(r["ops"], requests, "{r:#}");
    assert_eq!(r["misses"], 0, "loaded rows are all found: {r:#}");
    assert!(
        r["connection_failures"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{r:#}"
    );
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &r["latency_us"];
    let p = |f: &str| latency[f].as_f64().unwrap_or_else(|| panic!("{f} missing"));
    assert!(p("p50") > 0.0);
    assert!(p("p50") <= p("p99") && p("p99") <= p("max"));
}

#[test]
fn against_postgres() {
    if !Path::new(PG_BIN).join("initdb").is_file() {
        eprintln!("SKIPPED: PostgreSQL 15 is not installed (tools/test.sh installs postgresql-15)");
        return;
    }
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("point-select.json");
    let requests = PG_REQUESTS.to_string();
    let report = bench_pg(
        pg.port,
        &["--workload", "point-select", "--requests", &requests],
        &json,
    );
    check_pg_result(&report, pg.port, "point-select", PG_REQUESTS);
    assert_eq!(report["config"]["protocol"], "pg");
    let requests = PG_TPCB_REQUESTS.to_string();
    for protocol in ["simple", "extended", "prepared"] {
        let json = dir.path().join(format!("tpcb-{protocol}.json"));
        let args = ["--workload", "tpcb", "--protocol", protocol];
        let report = bench_pg(
            pg.port,
            &[&args[..], &["--requests", &requests]].concat(),
            &json,
        );
        check_pg_result(&report, pg.port, "tpcb", PG_TPCB_REQUESTS);
        assert_eq!(report["config"]["pg_protocol"], protocol);
    }
}
