//! Offline admin commands: `helios inspect wal|sst|manifest PATH` prints a data file readably,
//! `helios check --data-dir DIR` verifies every checksum and invariant of a data dir. Both run
//! without glommio or io_uring: the engine's async readers are driven over [`StdFs`] (blocking
//! `std::fs`, read-only) with `futures_lite::future::block_on`, and neither ever writes, so they
//! are safe on the files of a stopped server (and harmless, if racy, on a running one's).
//!
//! Exit codes: 0 fine; 1 a problem found (`check`) or a file that cannot be read or is damaged
//! (`inspect`); 2 a usage error (clap's).

mod check;
mod inspect;
pub mod print;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use helios_engine::lsm::manifest::{self, ManifestState, VersionEdit, MANIFEST_RECORD_KIND};
use helios_engine::wal::inspect::{scan_log, LogProblem, ScannedRecord, Severity};
use helios_engine::wal::WalError;

use crate::stdfs::StdFs;

/// The subcommands; `helios` with none runs the server.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Print a data file's contents readably (offline, read-only).
    Inspect {
        #[command(subcommand)]
        what: InspectTarget,
    },
    /// Verify every checksum and invariant of a data dir offline (read-only); exits 1 when it
    /// finds a problem. Run it on a stopped server's data dir.
    Check {
        /// The data dir to check (the server's --data-dir).
        #[arg(long, value_name = "PATH", default_value = "./helios-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum InspectTarget {
    /// A WAL segment file (wal-*.log), or a WAL directory (every segment, oldest first).
    Wal {
        path: PathBuf,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// An SSTable file (*.sst): properties, blocks, entries.
    Sst {
        path: PathBuf,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// A manifest directory (<shard>/lsm/manifest): every edit, then the live files per level.
    Manifest {
        path: PathBuf,
        #[command(flatten)]
        limit: LimitArg,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct LimitArg {
    /// Print at most N entries (records' mutations, SSTable entries, edits); the summary still
    /// counts them all.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// Runs a subcommand, printing to stdout; problems and failures go to stdout too (they are the
/// report), a file that cannot be read to stderr.
pub fn run(command: AdminCommand) -> ExitCode {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match command {
        AdminCommand::Inspect { what } => inspect::run(&what, &mut out),
        AdminCommand::Check { data_dir } => check::run(&data_dir, &mut out),
    };
    let flushed = out.flush();
    let result = result.and_then(|outcome| flushed.map(|()| outcome).map_err(AdminError::from));
    match result {
        Ok(Outcome::Fine) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        // `helios inspect ... | head`: the reader went away; nothing more to say.
        Err(AdminError::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("helios: {error}");
            ExitCode::from(1)
        }
    }
}

/// How a command went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Fine,
    /// Damage or an invariant broken (reported in the output).
    Problems,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Output(#[from] io::Error),
    #[error("{0}")]
    Wal(#[from] WalError),
    #[error("{0}")]
    Sst(#[from] helios_engine::sst::SstError),
    #[error("{0}")]
    Usage(String),
}

/// Counts printed entries against `--limit`.
pub struct Limiter {
    limit: Option<usize>,
    shown: usize,
    hidden: u64,
}

impl Limiter {
    pub fn new(limit: LimitArg) -> Limiter {
        Limiter {
            limit: limit.limit,
            shown: 0,
            hidden: 0,
        }
    }

    /// Whether one more entry may be printed (counts it either way).
    pub fn allow(&mut self) -> bool {
        if self.limit.is_some_and(|limit| self.shown >= limit) {
            self.hidden += 1;
            return false;
        }
        self.shown += 1;
        true
    }

    /// Prints how many entries the limit hid, if any.
    pub fn report(&self, out: &mut impl Write) -> io::Result<()> {
        if self.hidden > 0 {
            writeln!(out, "({} more entries not shown: --limit)", self.hidden)?;
        }
        Ok(())
    }
}

/// What replaying a manifest directory found.
pub struct ManifestReplay {
    pub state: ManifestState,
    pub edits: u64,
    pub segments: usize,
    pub problems: Vec<LogProblem>,
}

/// Replays the manifest in `dir` read-only, as `Manifest::open` would (the WAL rules, then each
/// record decoded and applied to a `ManifestState`), calling `on_edit` for every edit. An edit
/// that does not decode or apply is an error naming its segment and offset; the replay goes on
/// with the state before it, so one run reports every problem. Does not use
/// `manifest::read_all`, which opens the log for writing (it cuts a torn tail).
pub fn replay_manifest(
    fs: &StdFs,
    dir: &Path,
    mut on_edit: impl FnMut(&Path, &ScannedRecord, &VersionEdit),
) -> Result<ManifestReplay, WalError> {
    let mut state = ManifestState::default();
    let mut edits = 0;
    let mut segments = 0;
    let mut problems = Vec::new();
    let log_problems = futures_lite::future::block_on(scan_log(fs, dir, |segment| {
        segments += 1;
        for record in &segment.records {
            let error = |reason: String| LogProblem {
                severity: Severity::Error,
                file: segment.path.clone(),
                offset: record.offset,
                reason: format!("manifest record lsn {}: {reason}", record.lsn),
            };
            if record.kind != MANIFEST_RECORD_KIND {
                let reason = format!("record kind {:#04x} is not a manifest record", record.kind);
                problems.push(error(reason));
                continue;
            }
            let edit = match manifest::decode_edit(segment.payload(record)) {
                Ok(edit) => edit,
                Err(reason) => {
                    problems.push(error(format!("edit does not decode: {reason}")));
                    continue;
                }
            };
            edits += 1;
            on_edit(&segment.path, record, &edit);
            if let Err(reason) = state.apply(&edit) {
                problems.push(error(format!("edit does not apply: {reason}")));
            }
        }
    }))?;
    problems.extend(log_problems);
    problems.sort_by(|a, b| (&a.file, a.offset).cmp(&(&b.file, b.offset)));
    if let Err(reason) = state.check_invariants() {
        problems.push(LogProblem {
            severity: Severity::Error,
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!("manifest state breaks an invariant: {reason}"),
        });
    }
    Ok(ManifestReplay {
        state,
        edits,
        segments,
        problems,
    })
}

/// Whether any problem is an error (not only warnings).
pub fn has_errors(problems: &[LogProblem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}
