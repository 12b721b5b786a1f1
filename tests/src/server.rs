//! Starting and stopping server processes under test: the real `helios` binary, and a real
//! `redis-server` as the reference for differential tests.
//!
//! Every server gets a fresh temp dir and free ports, so tests can run in parallel. Readiness is
//! polled (connect + PING) against a deadline; nothing sleeps a fixed time.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const READY_DEADLINE: Duration = Duration::from_secs(10);
pub const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// A free port found by bind-then-drop can be taken by someone else before the server binds it;
/// a start that fails early is retried on new ports this many times.
const START_ATTEMPTS_MAX: usize = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Sync,
    Async,
}

impl Durability {
    fn as_arg(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerOpts {
    pub shards: usize,
    pub durability: Durability,
    /// `--cache-size`, when set.
    pub cache_size: Option<String>,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// How long a start may take before the server must answer PING (start-up rebuilds the
    /// key index from the store: large data sets need longer).
    pub ready_deadline: Duration,
    /// A TOML config file's text, written next to the data dir and passed with `--config`.
    pub config: Option<String>,
    /// Listen for Redis clients on every interface (0.0.0.0), not only loopback.
    pub bind_any: bool,
}

impl Default for ServerOpts {
    fn default() -> ServerOpts {
        ServerOpts {
            shards: 2,
            durability: Durability::Async,
            cache_size: None,
            env: Vec::new(),
            ready_deadline: READY_DEADLINE,
            config: None,
            bind_any: false,
        }
    }
}

impl ServerOpts {
    pub fn shards(mut self, shards: usize) -> ServerOpts {
        self.shards = shards;
        self
    }
    pub fn durability(mut self, durability: Durability) -> ServerOpts {
        self.durability = durability;
        self
    }
    pub fn ready_deadline(mut self, deadline: Duration) -> ServerOpts {
        self.ready_deadline = deadline;
        self
    }
    pub fn env(mut self, name: &str, value: &str) -> ServerOpts {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
    pub fn config(mut self, toml: &str) -> ServerOpts {
        self.config = Some(toml.to_string());
        self
    }

    pub fn cache_size(mut self, size: &str) -> ServerOpts {
        self.cache_size = Some(size.to_string());
        self
    }
}

/// Picks a port nobody listens on right now (bind to port 0, read it, drop the listener).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// The helios binary: `$HELIOS_BIN`, else `<target>/debug/helios` next to the test executable
/// (which lives in `<target>/debug/deps/`).
pub fn helios_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HELIOS_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "HELIOS_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a parent dir");
    let candidate = deps.parent().expect("deps dir has a parent").join("helios");
    if !candidate.exists() {
        panic!(
            "helios binary not found at {}; run `cargo build --bin helios` first (with the same \
             CARGO_TARGET_DIR), or point HELIOS_BIN at it",
            candidate.display()
        );
    }
    candidate
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Polls `port` until a connection answers `PING` with `+PONG`, or `deadline` passes, or the
/// child exits. Returns Err with a reason otherwise.
fn wait_ready(child: &mut Child, port: u16, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("process exited before becoming ready: {status}"));
        }
        if ping(port) {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(format!(
                "not answering PING on port {port} after {deadline:?}"
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    // PONG, or NOAUTH from a server with a password: either way it is serving.
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || &buf == b"-NOAUTH")
}

fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// How much of a log to print on failure.
const LOG_TAIL_BYTES: usize = 16 * 1024;

fn tail(s: &str) -> &str {
    if s.len() <= LOG_TAIL_BYTES {
        return s;
    }
    let mut start = s.len() - LOG_TAIL_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A running helios process. Owns its temp dir; dropping it kills the process.
pub struct HeliosServer {
    child: Option<Child>,
    opts: ServerOpts,
    root: TempDir,
    port: u16,
    pg_port: u16,
    starts: usize,
}

impl HeliosServer {
    /// Starts helios on a fresh temp data dir and waits until it answers PING.
    pub fn start(opts: ServerOpts) -> HeliosServer {
        Self::start_in(opts, &std::env::temp_dir())
    }

    /// As [`HeliosServer::start`], with the temp dir (data dir and logs) inside `parent`.
    pub fn start_in(opts: ServerOpts, parent: &Path) -> HeliosServer {
        let root = tempfile::Builder::new()
            .prefix("helios-test-")
            .tempdir_in(parent)
            .expect("tempdir");
        std::fs::create_dir_all(root.path().join("data")).expect("create data dir");
        let mut server = HeliosServer {
            child: None,
            opts,
            root,
            port: 0,
            pg_port: 0,
            starts: 0,
        };
        server.spawn_ready();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PostgreSQL port.
    pub fn pg_port(&self) -> u16 {
        self.pg_port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Log file of the current (latest) process.
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join(format!("stderr-{}.log", self.starts))
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    pub fn is_alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn spawn_ready(&mut self) {
        let bin = helios_bin();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            self.starts += 1;
            self.port = free_port();
            self.pg_port = free_port();
            let log = File::create(self.log_path()).expect("create log file");
            let mut command = Command::new(&bin);
            if let Some(size) = &self.opts.cache_size {
                command.arg("--cache-size").arg(size);
            }
            command.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
            if let Some(toml) = &self.opts.config {
                let path = self.root.path().join("helios.toml");
                std::fs::write(&path, toml).expect("write config file");
                command.arg("--config").arg(path);
            }
            let mut child = command
                .arg("--data-dir")
                .arg(self.data_dir())
                .arg("--redis-addr")
                .arg(if self.opts.bind_any {
                    format!("0.0.0.0:{}", self.port)
                } else {
                    format!("127.0.0.1:{}", self.port)
                })
                .arg("--pg-addr")
                .arg(format!("127.0.0.1:{}", self.pg_port))
                .arg("--shards")
                .arg(self.opts.shards.to_string())
                .arg("--durability")
                .arg(self.opts.durability.as_arg())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log fd"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            match wait_ready(&mut child, self.port, self.opts.ready_deadline) {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{reason}\n--- helios stderr ---\n{}", tail(&self.log()));
                    // Only a lost race for the port is worth another try.
                    if !self.log().to_ascii_lowercase().contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("helios failed to start: {last_error}");
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; waits for the exit and asserts it was clean (status 0).
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        match wait_exit(&mut child, EXIT_DEADLINE) {
            Some(status) => assert!(
                status.success(),
                "helios exited with {status} after SIGTERM\n--- helios stderr ---\n{}",
                tail(&self.log())
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "helios did not exit within {EXIT_DEADLINE:?} of SIGTERM\n--- helios stderr ---\n{}",
                    tail(&self.log())
                );
            }
        }
    }

    /// Starts a new process on the same data dir (stopping the old one with SIGKILL if it still
    /// runs). The port may change: read `port()` again.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_ready();
    }

    /// Like `restart`, with another `--shards` on the same data dir.
    pub fn restart_with_shards(&mut self, shards: usize) {
        self.opts.shards = shards;
        self.restart();
    }
}

impl Drop for HeliosServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- helios stderr ({}, port {}) ---\n{}",
                self.log_path().display(),
                self.port,
                tail(&self.log())
            );
        }
    }
}

/// A running reference `redis-server` (no persistence) in its own temp dir.
pub struct RedisServer {
    child: Child,
    root: TempDir,
    port: u16,
}

impl RedisServer {
    /// Starts redis-server, or returns None (after printing why) when it is not installed.
    pub fn try_start() -> Option<RedisServer> {
        let Some(bin) = which("redis-server") else {
            eprintln!("SKIPPED: redis-server is not installed (tools/test.sh installs it)");
            return None;
        };
        let root = tempfile::Builder::new()
            .prefix("redis-ref-")
            .tempdir()
            .expect("tempdir");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            let port = free_port();
            let log_path = root.path().join("redis.log");
            let log = File::create(&log_path).expect("create log");
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(root.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log fd"))
                .stderr(log)
                .spawn()
                .expect("spawn redis-server");
            match wait_ready(&mut child, port, READY_DEADLINE) {
                Ok(()) => return Some(RedisServer { child, root, port }),
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{reason}\n{}", tail(&read_log(&log_path)));
                }
            }
        }
        panic!("redis-server failed to start: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `redis-cli -p PORT args...` with optional stdin; returns (success, stdout, stderr).
pub fn redis_cli(port: u16, args: &[&str], stdin: Option<&[u8]>) -> (bool, String, String) {
    let bin = which("redis-cli").expect("redis-cli not installed (tools/test.sh installs it)");
    let mut child = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        // Write from a thread so a full stdout pipe cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = child.wait_with_output().expect("wait redis-cli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `psql` against a server's PostgreSQL port as `user` on `database`, without reading
/// `~/.psqlrc` (`-X`) and with a connect timeout; callers add their output flags and commands.
pub fn psql_command(server: &HeliosServer, user: &str, database: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-h", "127.0.0.1", "-p", &server.pg_port().to_string()])
        .args(["-U", user, "-d", database, "-X"])
        .env("PGCONNECT_TIMEOUT", "10");
    command
}

/// Runs a psql command: (exit status success, stdout, stderr).
pub fn run_psql(mut command: Command) -> (bool, String, String) {
    let out = command.output().expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the client program `tests/py/<script> 127.0.0.1 <port>` with python3 and checks it
/// passed: exit status 0 and "all checks passed" on stdout. Exit status 3 means the
/// program's client library (`package`, from PyPI) is missing, which fails with how to
/// install it. Skipped, with a message, only when python3 itself is missing.
pub fn python_program_passes(script: &str, port: u16, package: &str, server: &HeliosServer) {
    let Some(python) = which("python3") else {
        eprintln!("python3 not installed; skipping {script} (tools/test.sh installs it)");
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script);
    let out = Command::new(&python)
        .arg(&path)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "{package} is not installed for {}: run tools/test.sh, or python3 -m pip install \
         '{package}'\n{stderr}",
        python.display()
    );
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}\n--- helios log ---\n{}",
        out.status,
        server.log()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
}
