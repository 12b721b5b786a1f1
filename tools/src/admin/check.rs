//! `helios check --data-dir DIR`: every checksum and invariant of a data dir, offline.
//!
//! Layout walked: `DIR/partitions.map`, then each `DIR/shard-N/` and the directories below it
//! (a few levels): any `wal/` is a WAL (the server's keyspace log at `shard-N/wal`, the LSM's at
//! `shard-N/lsm/wal`), and a directory holding `manifest/` or `sst/` is an LSM tree: the manifest
//! is replayed, every SSTable verified, and the two compared. What recovery or the next start
//! would refuse is an error; what it would repair or clean up is a warning. Exit 1 on any error.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use futures_lite::future::block_on;
use helios_engine::fs::FileSystem;
use helios_engine::lsm::batch::{self, WAL_KIND_BATCH};
use helios_engine::lsm::manifest::{self, FileMeta, ManifestState};
use helios_engine::sst::{self, SstInfo};
use helios_engine::wal::inspect::{list_segments, scan_log, LogProblem, Severity};
use helios_shard::routing::PartitionMap;

use super::print::{self, WAL_KIND_REDIS};
use super::{has_errors, replay_manifest, AdminError, Outcome};
use crate::stdfs::StdFs;

/// How deep below a shard directory the walk looks for `wal/`, `manifest/`, `sst/`.
const WALK_DEPTH_MAX: usize = 3;
/// Problems printed per log before the rest are only counted (a systematic fault repeats).
const PROBLEMS_SHOWN_PER_LOG_MAX: usize = 50;

pub fn run(data_dir: &Path, out: &mut impl Write) -> Result<Outcome, AdminError> {
    if !data_dir.is_dir() {
        return Err(AdminError::Usage(format!(
            "{}: not a directory",
            data_dir.display()
        )));
    }
    let mut checker = Checker {
        fs: StdFs::read_only(),
        out,
        errors: 0,
        warnings: 0,
    };
    writeln!(checker.out, "checking {}", data_dir.display())?;
    checker.data_dir(data_dir)?;
    let (errors, warnings) = (checker.errors, checker.warnings);
    writeln!(checker.out, "check: {errors} errors, {warnings} warnings")?;
    Ok(if errors > 0 {
        Outcome::Problems
    } else {
        Outcome::Fine
    })
}

struct Checker<'a, W: Write> {
    fs: StdFs,
    out: &'a mut W,
    errors: u64,
    warnings: u64,
}

/// What a WAL directory held, for the LSM's cross-checks.
struct WalSummary {
    /// The first segment's lsn (from its name), if there is a segment.
    first_segment_lsn: Option<u64>,
    /// The lsn the next record would get.
    next_lsn: Option<u64>,
}

impl<W: Write> Checker<'_, W> {
    fn ok(&mut self, what: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "ok: {what}")
    }

    fn warning(&mut self, what: impl std::fmt::Display) -> io::Result<()> {
        self.warnings += 1;
        writeln!(self.out, "warning: {what}")
    }

    fn error(&mut self, what: impl std::fmt::Display) -> io::Result<()> {
        self.errors += 1;
        writeln!(self.out, "error: {what}")
    }

    /// Prints a log's problems (they carry their own severity), the first few in full.
    fn problems(&mut self, problems: &[LogProblem]) -> io::Result<()> {
        for (i, problem) in problems.iter().enumerate() {
            match problem.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
            if i < PROBLEMS_SHOWN_PER_LOG_MAX {
                writeln!(self.out, "{problem}")?;
            }
        }
        if problems.len() > PROBLEMS_SHOWN_PER_LOG_MAX {
            let more = problems.len() - PROBLEMS_SHOWN_PER_LOG_MAX;
            writeln!(self.out, "({more} more problems in this log not shown)")?;
        }
        Ok(())
    }

    /// A log's summary line: `ok:` when it has no error, else `damaged:` (the errors are
    /// already printed and counted).
    fn summary(&mut self, problems: &[LogProblem], summary: String) -> io::Result<()> {
        if has_errors(problems) {
            return writeln!(self.out, "damaged: {summary}");
        }
        self.ok(summary)
    }

    fn data_dir(&mut self, dir: &Path) -> io::Result<()> {
        let shard_count = self.partition_map(dir)?;
        for (marker, what) in [
            (
                "RESHARD-COMMIT",
                "a resharding interrupted after its commit point (the next start finishes it)",
            ),
            (
                "resharding",
                "a resharding staging dir (the next start finishes or discards it)",
            ),
        ] {
            if dir.join(marker).exists() {
                self.warning(format!("{}: {what}", dir.join(marker).display()))?;
            }
        }
        let shards = match shard_dirs(dir) {
            Ok(shards) => shards,
            Err(error) => return self.error(format!("cannot list {}: {error}", dir.display())),
        };
        if shards.is_empty() {
            self.warning(format!("{}: no shard-N directories", dir.display()))?;
        }
        if let Some(count) = shard_count {
            for index in (0..count).filter(|i| !shards.contains_key(i)) {
                let path = dir.join(format!("shard-{index}"));
                self.warning(format!(
                    "{}: missing (the server starts that shard empty)",
                    path.display()
                ))?;
            }
        }
        for (index, path) in &shards {
            if shard_count.is_some_and(|count| *index >= count) {
                self.warning(format!(
                    "{}: not in the partition map (the server ignores it)",
                    path.display()
                ))?;
            }
            self.walk(path, 0)?;
        }
        Ok(())
    }

    /// Checks `partitions.map`; returns its shard count.
    fn partition_map(&mut self, dir: &Path) -> io::Result<Option<usize>> {
        let path = dir.join("partitions.map");
        if !path.exists() {
            self.warning(format!(
                "{}: absent (the server writes one at its first start)",
                path.display()
            ))?;
            return Ok(None);
        }
        // The file exists, so this only reads it.
        match PartitionMap::load_or_create(dir, None, 1) {
            Ok(map) => {
                let count = map.shard_count();
                self.ok(format!("{}: {count} shards", path.display()))?;
                Ok(Some(count))
            }
            Err(error) => {
                self.error(error)?;
                Ok(None)
            }
        }
    }

    /// Looks for `wal/`, `manifest/` and `sst/` in `dir` and below.
    fn walk(&mut self, dir: &Path, depth: usize) -> io::Result<()> {
        let wal_dir = dir.join("wal");
        let wal = if wal_dir.is_dir() {
            self.wal(&wal_dir)?
        } else {
            None
        };
        if dir.join(manifest::MANIFEST_DIR_NAME).is_dir() || dir.join("sst").is_dir() {
            self.lsm(dir, wal.as_ref())?;
        }
        if depth >= WALK_DEPTH_MAX {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return self.error(format!("cannot list {}", dir.display()));
        };
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().unwrap_or_default();
                !["wal", "manifest", "sst"].iter().any(|n| name == *n)
            })
            .collect();
        subdirs.sort();
        for subdir in subdirs {
            self.walk(&subdir, depth + 1)?;
        }
        Ok(())
    }

    /// A WAL directory: the log rules, and every payload decoded by its kind.
    fn wal(&mut self, dir: &Path) -> io::Result<Option<WalSummary>> {
        let mut payloads = PayloadCheck::default();
        let scanned = block_on(scan_log(&self.fs, dir, |segment| {
            for record in &segment.records {
                let payload = segment.payload(record);
                payloads.record(
                    &segment.path,
                    record.offset,
                    record.lsn,
                    record.kind,
                    payload,
                );
            }
            payloads.segments += 1;
            payloads.next_lsn = segment
                .header
                .as_ref()
                .ok()
                .map(|first| first + segment.records.len() as u64);
        }));
        let mut problems = match scanned {
            Ok(problems) => problems,
            Err(error) => {
                self.error(error)?;
                return Ok(None);
            }
        };
        problems.append(&mut payloads.problems);
        problems.sort_by(|a, b| (&a.file, a.offset).cmp(&(&b.file, b.offset)));
        for (kind, count) in &payloads.unknown_kinds {
            problems.push(LogProblem {
                severity: Severity::Warning,
                file: dir.to_path_buf(),
                offset: 0,
                reason: format!("{count} records of kind {kind:#04x}, unknown here (not decoded)"),
            });
        }
        self.problems(&problems)?;
        let lsns = match payloads.lsn_range {
            Some((first, last)) => format!(", lsn {first}..={last}"),
            None => String::new(),
        };
        let summary = format!(
            "{}: {} segments, {} valid records{lsns}",
            dir.display(),
            payloads.segments,
            payloads.records
        );
        self.summary(&problems, summary)?;
        let first_segment_lsn = block_on(list_segments(&self.fs, dir))
            .ok()
            .and_then(|segments| segments.first().map(|(lsn, _)| *lsn));
        Ok(Some(WalSummary {
            first_segment_lsn,
            next_lsn: payloads.next_lsn,
        }))
    }

    /// An LSM tree: `manifest/` replayed, every `sst/*.sst` verified, and the two compared.
    fn lsm(&mut self, dir: &Path, wal: Option<&WalSummary>) -> io::Result<()> {
        let state = self.manifest(&dir.join(manifest::MANIFEST_DIR_NAME))?;
        let sst_dir = dir.join("sst");
        let names = if sst_dir.is_dir() {
            match block_on(self.fs.list(&sst_dir)) {
                Ok(names) => names,
                Err(error) => {
                    return self.error(format!("cannot list {}: {error}", sst_dir.display()))
                }
            }
        } else {
            Vec::new()
        };
        let Some(state) = state else {
            // The manifest is unreadable: verify the files without knowing which are live.
            for name in names
                .iter()
                .filter(|n| manifest::parse_sst_file_name(n).is_some())
            {
                self.sst_file(&sst_dir.join(name), None)?;
            }
            return Ok(());
        };
        let unreferenced = manifest::obsolete_files(&state, &names);
        for name in &names {
            let path = sst_dir.join(name);
            if unreferenced.contains(name) {
                let damage = match block_on(sst::verify(&self.fs, &path)) {
                    Ok(_) => String::new(),
                    Err(error) => format!("; it is also damaged: {error}"),
                };
                self.warning(format!(
                    "{}: unreferenced (would be removed at start){damage}",
                    path.display()
                ))?;
            } else if manifest::parse_sst_file_name(name).is_none() && name.ends_with(".sst") {
                self.warning(format!(
                    "{}: not an SSTable file name (ignored)",
                    path.display()
                ))?;
            }
        }
        for file in state.levels.iter().flatten() {
            let path = sst_dir.join(manifest::sst_file_name(file.id));
            if !names.contains(&manifest::sst_file_name(file.id)) {
                self.error(format!(
                    "{}: listed in the manifest as L{}#{} but missing",
                    path.display(),
                    file.level,
                    file.id
                ))?;
                continue;
            }
            self.sst_file(&path, Some(file))?;
        }
        if let Some(wal) = wal {
            self.lsm_wal(dir, &state, wal)?;
        }
        Ok(())
    }

    /// Replays a manifest directory; None when there is none to trust.
    fn manifest(&mut self, dir: &Path) -> io::Result<Option<ManifestState>> {
        if !dir.is_dir() {
            self.warning(format!(
                "{}: absent (an empty manifest: every SSTable would be removed at start)",
                dir.display()
            ))?;
            return Ok(Some(ManifestState::default()));
        }
        let replay = match replay_manifest(&self.fs, dir, |_, _, _| {}) {
            Ok(replay) => replay,
            Err(error) => {
                self.error(error)?;
                return Ok(None);
            }
        };
        self.problems(&replay.problems)?;
        let state = &replay.state;
        self.summary(
            &replay.problems,
            format!(
                "{}: {} edits in {} segments; {} live files, next_file_id={} last_seq={} \
             flushed_lsn={}",
                dir.display(),
                replay.edits,
                replay.segments,
                state.file_count(),
                state.next_file_id,
                state.last_seq,
                state.flushed_lsn
            ),
        )?;
        Ok(Some(replay.state))
    }

    /// Verifies one SSTable and compares it with what the manifest records of it.
    fn sst_file(&mut self, path: &Path, meta: Option<&FileMeta>) -> io::Result<()> {
        let info = match block_on(sst::verify(&self.fs, path)) {
            Ok(info) => info,
            Err(error) => return self.error(error),
        };
        if let Some(meta) = meta {
            if let Some(field) = meta_mismatch(meta, &info) {
                return self.error(format!(
                    "{}: the file's {field} differs from the manifest's L{}#{}",
                    path.display(),
                    meta.level,
                    meta.id
                ));
            }
        }
        self.ok(format!(
            "{}: {} entries, {} tombstones, seq {}..={}, {} bytes",
            path.display(),
            info.entries,
            info.tombstones,
            info.seq_min,
            info.seq_max,
            info.file_bytes
        ))
    }

    /// The LSM's WAL must hold every record after the manifest's flushed lsn.
    fn lsm_wal(&mut self, dir: &Path, state: &ManifestState, wal: &WalSummary) -> io::Result<()> {
        let flushed = state.flushed_lsn;
        if let Some(first) = wal.first_segment_lsn.filter(|first| *first > flushed + 1) {
            self.error(format!(
                "{}: the wal starts at lsn {first} but the manifest's flushed_lsn is {flushed}: \
                 records {}..{first} are missing",
                dir.display(),
                flushed + 1
            ))?;
        }
        if let Some(next) = wal.next_lsn.filter(|next| *next <= flushed) {
            self.error(format!(
                "{}: the manifest's flushed_lsn {flushed} is beyond the wal's last lsn {}",
                dir.display(),
                next - 1
            ))?;
        }
        Ok(())
    }
}

/// `shard-N` directories of the data dir, by N.
fn shard_dirs(dir: &Path) -> io::Result<BTreeMap<usize, PathBuf>> {
    let mut shards = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            shards.insert(index, entry.path());
        }
    }
    Ok(shards)
}

/// The first field in which a file differs from its manifest entry.
fn meta_mismatch(meta: &FileMeta, info: &SstInfo) -> Option<&'static str> {
    [
        ("size", meta.file_bytes == info.file_bytes),
        ("entry count", meta.entries == info.entries),
        ("tombstone count", meta.tombstones == info.tombstones),
        ("smallest key", meta.smallest == info.smallest),
        ("largest key", meta.largest == info.largest),
        (
            "sequence range",
            (meta.seq_min, meta.seq_max) == (info.seq_min, info.seq_max),
        ),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}

/// Decodes every record of a data WAL by its kind, and tallies.
#[derive(Default)]
struct PayloadCheck {
    segments: usize,
    records: u64,
    lsn_range: Option<(u64, u64)>,
    next_lsn: Option<u64>,
    /// Every LSM batch's seqs must come after the previous batch's.
    batch_seq_next: Option<u64>,
    unknown_kinds: HashMap<u8, u64>,
    problems: Vec<LogProblem>,
}

impl PayloadCheck {
    fn record(&mut self, file: &Path, offset: u64, lsn: u64, kind: u8, payload: &[u8]) {
        self.records += 1;
        let (first, _) = self.lsn_range.unwrap_or((lsn, lsn));
        self.lsn_range = Some((first, lsn));
        let reason = match kind {
            WAL_KIND_BATCH => self.batch(payload),
            WAL_KIND_REDIS => print::record_payload(kind, payload).err(),
            _ => {
                *self.unknown_kinds.entry(kind).or_default() += 1;
                None
            }
        };
        if let Some(reason) = reason {
            self.problems.push(LogProblem {
                severity: Severity::Error,
                file: file.to_path_buf(),
                offset,
                reason: format!(
                    "record lsn {lsn} ({}): {reason}",
                    print::record_kind_name(kind)
                ),
            });
        }
    }

    fn batch(&mut self, payload: &[u8]) -> Option<String> {
        let decoded = match batch::decode(bytes::Bytes::copy_from_slice(payload)) {
            Ok(decoded) => decoded,
            Err(reason) => return Some(format!("batch does not decode: {reason}")),
        };
        let count = decoded.entries.len() as u64;
        let overlap = self
            .batch_seq_next
            .filter(|next| decoded.base_seq < *next)
            .map(|next| {
                format!(
                    "batch seqs from {} overlap the previous batch's (which end at {})",
                    decoded.base_seq,
                    next - 1
                )
            });
        self.batch_seq_next = Some(decoded.base_seq + count);
        overlap
    }
}
