//! The SQL conformance corpus (SQLite's sqllogictest files, prepared for `sqllogictest-bin`; see
//! `../shared/conformance/README.md` next to the repo) run against helios by the real
//! `sqllogictest` binary, over both the simple (`-e postgres`) and the extended
//! (`-e postgres-extended`) query protocol.
//!
//! - `sqllogictest_expected_pass`: every file in `EXPECTED_PASS` must pass in both modes. A file
//!   goes on the list once it passes; it never comes off.
//! - `sqllogictest_report` (ignored): runs every corpus file in both modes and prints a table,
//!   asserting nothing:
//!   `cargo test -p helios-tests --test sqllogictest -- --ignored --nocapture`
//!
//! Each run of a file gets its own server (fresh data dir): the files create the same table
//! names, and they run without `-j`, so no CREATE DATABASE is needed.
//!
//! One adjustment to the files: sqllogictest-bin (0.29) ends a file at any `halt`, ignoring the
//! `onlyif`/`skipif` lines before it, so `onlyif mssql` + `halt` (meant to stop the file on MS SQL
//! Server only) stops it for us too; in1 and slt_lang_replace would then run nothing and pass.
//! Each file is run from a temp copy in which halts that are not for this engine are commented
//! out (line numbers unchanged); see `drop_foreign_halts`. `HELIOS_SLT_RAW_HALTS=1` runs the
//! files as they are instead (sqllogictest-bin's own behaviour, as in the corpus README's
//! PostgreSQL numbers).
//!
//! Environment:
//! - `HELIOS_SLT_DIR`: the corpus (default `<repo>/../shared/conformance/sqllogictest`).
//! - `HELIOS_SLT_BIN`: the `sqllogictest` binary (default: PATH, then `$CARGO_HOME/bin`, then
//!   `~/.cargo/bin`). `tools/test.sh` installs it when missing.
//! - `HELIOS_SLT_FILES`: comma-separated paths relative to the corpus (e.g.
//!   `select1.test,evidence/in1.test`) to restrict the report to.
//! - `HELIOS_SLT_TIMEOUT_SECS`: the limit for one run of one file (default 300).
//! - `HELIOS_SLT_RAW_HALTS=1`: run the files unchanged (see above).
//!
//! Without the corpus or the binary both tests print why and pass.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use helios_tests::server::{which, HeliosServer, ServerOpts};

/// Corpus files (relative to the corpus dir, `/`-separated) that must pass in both modes.
const EXPECTED_PASS: &[&str] = &[
    "select1.test",
    "select2.test",
    "select3.test",
    "evidence/slt_lang_aggfunc.test",
    "evidence/slt_lang_createview.test",
    "evidence/slt_lang_dropindex.test",
    "evidence/slt_lang_droptable.test",
    "evidence/slt_lang_dropview.test",
];

/// The engines `sqllogictest` is run with: simple query protocol, then extended (prepared
/// statements, binary results).
const MODES: [&str; 2] = ["postgres", "postgres-extended"];

const SHARDS: usize = 2;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of the first failing record's message kept in the report table.
const REPORT_MESSAGE_LINES: usize = 4;
/// Characters kept of one such line.
const REPORT_LINE_CHARS: usize = 160;
/// Lines of sqllogictest output and of the server log kept in a failure message.
const FAILURE_OUTPUT_LINES: usize = 60;

/// The corpus dir, or None (after saying why) when it is not there.
fn corpus_dir() -> Option<PathBuf> {
    let (dir, source) = match std::env::var_os("HELIOS_SLT_DIR") {
        Some(dir) => (PathBuf::from(dir), "HELIOS_SLT_DIR"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/sqllogictest"),
            "the default <repo>/../shared/conformance/sqllogictest",
        ),
    };
    if !dir.is_dir() {
        eprintln!(
            "\n*** SKIPPED: no sqllogictest corpus at {} ({source}); set HELIOS_SLT_DIR to the \
             conformance/sqllogictest dir to run it ***\n",
            dir.display()
        );
        return None;
    }
    Some(dir.canonicalize().unwrap_or(dir))
}

/// The `sqllogictest` binary, or None (after saying why) when it cannot be found.
fn slt_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HELIOS_SLT_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Some(path);
        }
        eprintln!(
            "\n*** SKIPPED: HELIOS_SLT_BIN={} does not exist ***\n",
            path.display()
        );
        return None;
    }
    if let Some(path) = which("sqllogictest") {
        return Some(path);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(path) = cargo_home.map(|home| home.join("bin/sqllogictest")) {
        if path.is_file() {
            return Some(path);
        }
    }
    eprintln!(
        "\n*** SKIPPED: the `sqllogictest` binary is not installed (not on PATH, nor in \
         $CARGO_HOME/bin); `cargo install sqllogictest-bin --locked` (tools/test.sh does it) or \
         set HELIOS_SLT_BIN ***\n"
    );
    None
}

fn timeout() -> Duration {
    match std::env::var("HELIOS_SLT_TIMEOUT_SECS") {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .unwrap_or_else(|_| panic!("HELIOS_SLT_TIMEOUT_SECS={secs:?} is not a number")),
        ),
        Err(_) => DEFAULT_TIMEOUT,
    }
}

/// Every `*.test` file under `dir`, relative and `/`-separated, sorted.
fn corpus_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|ext| ext == "test") {
                let rel = path.strip_prefix(root).expect("path under the corpus");
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// How one run of `sqllogictest` on one file ended.
enum Verdict {
    Pass,
    /// It exited non-zero (or was killed by a signal).
    Fail,
    /// It ran past the limit and was killed.
    Timeout,
}

struct Outcome {
    verdict: Verdict,
    /// stdout then stderr of the run.
    output: String,
    elapsed: Duration,
    /// Whether helios was still running after the file.
    server_alive: bool,
    /// The tail of helios's log, kept for failures.
    server_log: String,
}

impl Outcome {
    fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass)
    }

    fn status(&self) -> &'static str {
        match self.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Timeout => "TIMEOUT",
        }
    }

    /// A few lines saying why the run failed: the first failing record's error (sqllogictest
    /// stops a file at its first failure), a timeout, a crashed server.
    fn summary(&self, limit: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.server_alive {
            lines.push("helios is not running any more (crashed?)".to_string());
        }
        match self.verdict {
            Verdict::Pass => {}
            Verdict::Timeout => lines.push(format!("no result within {limit:?}; killed")),
            Verdict::Fail => lines.extend(failure_message(&self.output)),
        }
        lines.truncate(REPORT_MESSAGE_LINES);
        lines
            .into_iter()
            .map(|line| truncate_chars(&line, REPORT_LINE_CHARS))
            .collect()
    }
}

/// The error sqllogictest printed for the failing record: what follows `Caused by:` (the
/// message, the SQL, the expected and actual results), else what follows `[FAILED]`, else the
/// last lines of the output. Blank lines dropped.
fn failure_message(output: &str) -> Vec<String> {
    let from = output
        .find("Caused by:")
        .map(|at| at + "Caused by:".len())
        .or_else(|| output.find("[FAILED]"))
        .unwrap_or(0);
    let rest = &output[from..];
    // Cut before a backtrace and before the closing `Error: some test case failed: [...]`.
    let end = ["Stack backtrace:", "\nError: "]
        .iter()
        .filter_map(|marker| rest.find(marker))
        .min()
        .unwrap_or(rest.len());
    let rest = &rest[..end];
    let lines: Vec<String> = rest
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if from == 0 {
        let skip = lines.len().saturating_sub(REPORT_MESSAGE_LINES);
        return lines[skip..].to_vec();
    }
    lines
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` to exit, or kills it once `limit` has passed (returns None then).
fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for sqllogictest: {e}"),
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The label given with `--label`; the engine name (`MODES`) is a label too.
const LABEL: &str = "postgresql";

/// Comments out every `halt` whose `onlyif`/`skipif` lines (directly above it) say it is not for
/// an engine with `labels`, with those lines: sqllogictest-bin halts on every `halt` whatever its
/// conditions. A halt meant for us is kept. Line numbers do not change.
fn drop_foreign_halts(script: &str, labels: &[&str]) -> String {
    let mut out = Vec::new();
    let mut conditions: Vec<&str> = Vec::new();
    for line in script.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            ["onlyif" | "skipif", _] => {
                conditions.push(line);
                continue;
            }
            ["halt"] => {
                let applies = conditions.iter().all(|cond| {
                    let tokens: Vec<&str> = cond.split_whitespace().collect();
                    let listed = labels.contains(&tokens[1]);
                    if tokens[0] == "onlyif" {
                        listed
                    } else {
                        !listed
                    }
                });
                if !applies {
                    out.extend(
                        conditions
                            .drain(..)
                            .chain([line])
                            .map(|l| format!("# (halt not for this engine) {l}")),
                    );
                    continue;
                }
            }
            _ => {}
        }
        out.extend(conditions.drain(..).map(str::to_string));
        out.push(line.to_string());
    }
    out.extend(conditions.drain(..).map(str::to_string));
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Starts a fresh helios and runs `sqllogictest -e MODE` on one corpus file against it.
fn run_file(bin: &Path, corpus: &Path, file: &str, mode: &str, limit: Duration) -> Outcome {
    // The file, halts adjusted, at the same relative path in a temp dir (so messages name it as
    // in the corpus).
    let copy = tempfile::Builder::new()
        .prefix("helios-slt-")
        .tempdir()
        .expect("tempdir");
    let source = corpus.join(file);
    let script = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let target = copy.path().join(file);
    std::fs::create_dir_all(target.parent().expect("file has a parent")).expect("create dirs");
    let raw = std::env::var("HELIOS_SLT_RAW_HALTS").is_ok_and(|v| v == "1");
    let script = if raw {
        script
    } else {
        drop_foreign_halts(&script, &[LABEL, mode])
    };
    std::fs::write(&target, script).expect("write copy");

    let mut server = HeliosServer::start(ServerOpts::default().shards(SHARDS));
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(["-e", mode, "--label", LABEL, "--color", "never"])
        .args(["-h", "127.0.0.1", "-p", &server.pg_port().to_string()])
        .args(["-u", "postgres", "-d", "postgres"])
        .arg(file)
        // sqllogictest reads these when a flag is absent; keep a developer's shell out of it.
        .env_remove("SLT_PASSWORD")
        .env_remove("SLT_FAIL_FAST")
        // No "Stack backtrace:" after every error.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .current_dir(copy.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let stdout = drain(child.stdout.take().expect("stdout pipe"));
    let stderr = drain(child.stderr.take().expect("stderr pipe"));
    let status = wait_with_limit(&mut child, limit);
    let elapsed = start.elapsed();
    let mut output = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
    output.push_str(&String::from_utf8_lossy(&stderr.join().unwrap_or_default()));
    let verdict = match status {
        None => Verdict::Timeout,
        Some(status) if status.success() => Verdict::Pass,
        Some(_) => Verdict::Fail,
    };
    let server_alive = server.is_alive();
    let server_log = last_lines(&server.log(), FAILURE_OUTPUT_LINES);
    Outcome {
        verdict,
        output,
        elapsed,
        server_alive,
        server_log,
    }
}

#[test]
fn sqllogictest_expected_pass() {
    if EXPECTED_PASS.is_empty() {
        eprintln!("EXPECTED_PASS is empty: no sqllogictest file is expected to pass yet");
        return;
    }
    let Some(corpus) = corpus_dir() else { return };
    let Some(bin) = slt_bin() else { return };
    let limit = timeout();
    let missing: Vec<&str> = EXPECTED_PASS
        .iter()
        .copied()
        .filter(|file| !corpus.join(file).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "EXPECTED_PASS names files that are not in {}: {missing:?}",
        corpus.display()
    );
    let mut failures = Vec::new();
    for file in EXPECTED_PASS {
        for mode in MODES {
            let outcome = run_file(&bin, &corpus, file, mode, limit);
            eprintln!(
                "{file} -e {mode}: {} in {:.1}s",
                outcome.status(),
                outcome.elapsed.as_secs_f64()
            );
            if outcome.passed() && outcome.server_alive {
                continue;
            }
            let why = match outcome.verdict {
                Verdict::Timeout => {
                    format!("did not finish within {limit:?} (HELIOS_SLT_TIMEOUT_SECS)")
                }
                Verdict::Fail => "failed".to_string(),
                Verdict::Pass => "passed, but helios was not running afterwards".to_string(),
            };
            failures.push(format!(
                "=== {file} -e {mode}: {why}\n--- sqllogictest output (last {n} lines) ---\n{}\n\
                 --- helios log (last {n} lines; alive: {}) ---\n{}",
                last_lines(&outcome.output, FAILURE_OUTPUT_LINES),
                outcome.server_alive,
                outcome.server_log,
                n = FAILURE_OUTPUT_LINES,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} sqllogictest runs of EXPECTED_PASS files failed:\n\n{}",
        failures.len(),
        EXPECTED_PASS.len() * MODES.len(),
        failures.join("\n\n")
    );
}

#[test]
#[ignore = "runs the whole corpus and prints a table; asserts nothing"]
fn sqllogictest_report() {
    let Some(corpus) = corpus_dir() else { return };
    let Some(bin) = slt_bin() else { return };
    let limit = timeout();
    let all = corpus_files(&corpus);
    let files: Vec<String> = match std::env::var("HELIOS_SLT_FILES") {
        Ok(list) if !list.trim().is_empty() => {
            let chosen: Vec<String> = list
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
            for file in &chosen {
                assert!(
                    corpus.join(file).is_file(),
                    "HELIOS_SLT_FILES names {file}, which is not in {}",
                    corpus.display()
                );
            }
            chosen
        }
        _ => all,
    };
    let width = files.iter().map(|f| f.len()).max().unwrap_or(4).max(4);
    let mode_width = MODES.iter().map(|m| m.len()).max().unwrap_or(4);
    let mut rows = Vec::new();
    let mut passed = [0usize; MODES.len()];
    for file in &files {
        for (m, mode) in MODES.iter().enumerate() {
            let outcome = run_file(&bin, &corpus, file, mode, limit);
            eprintln!(
                "{file} -e {mode}: {} in {:.1}s",
                outcome.status(),
                outcome.elapsed.as_secs_f64()
            );
            if outcome.passed() {
                passed[m] += 1;
            }
            rows.push((file.clone(), *mode, outcome));
        }
    }
    let mut table = format!(
        "\nsqllogictest report ({}, {} files, {SHARDS} shards)\n{:<width$}  {:<mode_width$}  {:<7}  {:>7}  first failure\n",
        corpus.display(),
        files.len(),
        "file",
        "mode",
        "result",
        "secs",
    );
    for (file, mode, outcome) in &rows {
        let summary = outcome.summary(limit);
        let first = summary.first().map(String::as_str).unwrap_or("");
        table.push_str(&format!(
            "{file:<width$}  {mode:<mode_width$}  {:<7}  {:>7.1}  {first}\n",
            outcome.status(),
            outcome.elapsed.as_secs_f64(),
        ));
        for line in summary.iter().skip(1) {
            table.push_str(&format!(
                "{:<pad$}{line}\n",
                "",
                pad = width + mode_width + 7 + 7 + 8
            ));
        }
    }
    for (m, mode) in MODES.iter().enumerate() {
        table.push_str(&format!(
            "{mode}: {} of {} files pass\n",
            passed[m],
            files.len()
        ));
    }
    println!("{table}");
}

#[test]
fn foreign_halts_are_commented_out() {
    let script = "control resultmode valuewise\nonlyif mssql\nhalt\n\nskipif postgresql\nhalt\n\n\
                  statement ok\nSELECT 1\n\nskipif mysql\nhalt\n\nonlyif sqlite\nquery I\nSELECT 1\n";
    let out = drop_foreign_halts(script, &[LABEL, "postgres"]);
    assert_eq!(
        out,
        "control resultmode valuewise\n# (halt not for this engine) onlyif mssql\n\
         # (halt not for this engine) halt\n\n# (halt not for this engine) skipif postgresql\n\
         # (halt not for this engine) halt\n\nstatement ok\nSELECT 1\n\nskipif mysql\nhalt\n\n\
         onlyif sqlite\nquery I\nSELECT 1\n"
    );
    assert_eq!(out.lines().count(), script.lines().count());
}
