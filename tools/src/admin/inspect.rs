//! `helios inspect wal|sst|manifest PATH`: one line per record, entry or edit, then a summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;

use futures_lite::future::block_on;
use helios_engine::cache::BlockCache;
use helios_engine::lsm::manifest::ManifestState;
use helios_engine::sst::{self, SstReader};
use helios_engine::wal::inspect::{read_segment, scan_log, SegmentEnd, SegmentScan};

use super::print::{self, bytes_human};
use super::{has_errors, replay_manifest, AdminError, InspectTarget, Limiter, Outcome};
use crate::stdfs::StdFs;

pub fn run(target: &InspectTarget, out: &mut impl Write) -> Result<Outcome, AdminError> {
    let fs = StdFs::read_only();
    match target {
        InspectTarget::Wal { path, limit } => wal(&fs, path, &mut Limiter::new(*limit), out),
        InspectTarget::Sst { path, limit } => sst(&fs, path, &mut Limiter::new(*limit), out),
        InspectTarget::Manifest { path, limit } => {
            manifest(&fs, path, &mut Limiter::new(*limit), out)
        }
    }
}

/// Totals over the records shown.
#[derive(Default)]
struct WalTally {
    records: u64,
    payload_bytes: u64,
    lsn_range: Option<(u64, u64)>,
    kinds: BTreeMap<String, u64>,
    undecodable: u64,
}

impl WalTally {
    fn add(&mut self, lsn: u64, kind: u8, len: u32) {
        self.records += 1;
        self.payload_bytes += u64::from(len);
        let (first, _) = self.lsn_range.unwrap_or((lsn, lsn));
        self.lsn_range = Some((first, lsn));
        *self.kinds.entry(print::record_kind_name(kind)).or_default() += 1;
    }

    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let lsns = match self.lsn_range {
            Some((first, last)) => format!("lsn {first}..={last}"),
            None => "no lsn".to_string(),
        };
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
        writeln!(
            out,
            "summary: {} records, {lsns}, {} payload bytes, kinds: {}{}",
            self.records,
            self.payload_bytes,
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" ")
            },
            if self.undecodable > 0 {
                format!(", {} undecodable payloads", self.undecodable)
            } else {
                String::new()
            }
        )
    }
}

/// A segment file, or every segment of a WAL directory.
fn wal(
    fs: &StdFs,
    path: &Path,
    limiter: &mut Limiter,
    out: &mut impl Write,
) -> Result<Outcome, AdminError> {
    let mut tally = WalTally::default();
    let mut damaged = false;
    if path.is_dir() {
        let mut written = Ok(());
        let problems = block_on(scan_log(fs, path, |segment| {
            if written.is_ok() {
                written = print_segment(segment, &mut tally, limiter, out);
            }
        }))?;
        written?;
        for problem in &problems {
            writeln!(out, "{problem}")?;
        }
        damaged = has_errors(&problems);
    } else {
        let segment = block_on(read_segment(fs, path))?;
        print_segment(&segment, &mut tally, limiter, out)?;
        damaged |= segment.header.is_err() || matches!(segment.end, SegmentEnd::Corrupt { .. });
    }
    limiter.report(out)?;
    tally.print(out)?;
    Ok(if damaged || tally.undecodable > 0 {
        Outcome::Problems
    } else {
        Outcome::Fine
    })
}

fn print_segment(
    segment: &SegmentScan,
    tally: &mut WalTally,
    limiter: &mut Limiter,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let name = segment.path.display();
    let bytes = segment.file_bytes();
    match &segment.header {
        Ok(first_lsn) => writeln!(
            out,
            "segment {name}: first_lsn={first_lsn} file_bytes={bytes}"
        )?,
        Err(reason) => writeln!(
            out,
            "segment {name}: file_bytes={bytes}, bad header: {reason}"
        )?,
    }
    for record in &segment.records {
        tally.add(record.lsn, record.kind, record.len);
        let decoded = print::record_payload(record.kind, segment.payload(record));
        tally.undecodable += u64::from(decoded.is_err());
        let mut lines =
            decoded.unwrap_or_else(|reason| vec![format!("UNDECODABLE payload: {reason}")]);
        if lines.is_empty() {
            lines.push("(empty payload)".to_string());
        }
        let mut header_shown = false;
        for line in lines {
            if !limiter.allow() {
                continue;
            }
            if !header_shown {
                writeln!(
                    out,
                    "lsn={} offset={} kind={} len={} term={}",
                    record.lsn,
                    record.offset,
                    print::record_kind_name(record.kind),
                    record.len,
                    record.term
                )?;
                header_shown = true;
            }
            writeln!(out, "  {line}")?;
        }
    }
    let at = segment.end_offset;
    match &segment.end {
        _ if segment.header.is_err() => Ok(()),
        SegmentEnd::Clean => writeln!(out, "end: clean at offset {at}"),
        SegmentEnd::Torn { reason } => writeln!(
            out,
            "end: torn tail at offset {at}: {reason} (recovery cuts it in the last segment; \
             anywhere else it is corruption)"
        ),
        SegmentEnd::Corrupt { reason } => writeln!(out, "end: CORRUPT at offset {at}: {reason}"),
    }
}

/// Properties, blocks and entries of one SSTable, then a full verification.
fn sst(
    fs: &StdFs,
    path: &Path,
    limiter: &mut Limiter,
    out: &mut impl Write,
) -> Result<Outcome, AdminError> {
    let reader = block_on(SstReader::open(
        fs,
        path,
        0,
        Rc::new(BlockCache::disabled()),
    ))?;
    let props = reader.properties();
    let info = reader.info();
    writeln!(
        out,
        "sst {}: file_bytes={} format_version={} compression={:?}",
        path.display(),
        info.file_bytes,
        props.format_version,
        props.compression
    )?;
    writeln!(
        out,
        "properties: entries={} tombstones={} seq={}..={} data_blocks={} raw_key_bytes={} \
         raw_value_bytes={}",
        props.entries,
        props.tombstones,
        props.seq_min,
        props.seq_max,
        props.data_blocks,
        props.raw_key_bytes,
        props.raw_value_bytes
    )?;
    writeln!(out, "smallest: {}", print::internal_key(&props.smallest))?;
    writeln!(out, "largest: {}", print::internal_key(&props.largest))?;
    let data_bytes: u64 = reader.data_block_handles().map(|h| h.size).sum();
    let mut blocks = format!(
        "blocks: {} data ({} stored bytes)",
        reader.data_block_handles().count(),
        data_bytes
    );
    for (name, handle) in reader.meta_block_handles() {
        blocks += &format!(", {name} at {} ({} bytes)", handle.offset, handle.size);
    }
    writeln!(out, "{blocks}")?;
    drop(reader);
    let mut written = Ok(());
    let dumped = block_on(sst::dump(fs, path, |key, value| {
        if written.is_ok() && limiter.allow() {
            written = writeln!(
                out,
                "{} = {}",
                print::internal_key(key),
                print::value(value)
            );
        }
    }));
    written?;
    limiter.report(out)?;
    if let Err(error) = dumped {
        writeln!(out, "CORRUPT: {error}")?;
        return Ok(Outcome::Problems);
    }
    match block_on(sst::verify(fs, path)) {
        Ok(_) => writeln!(out, "verify: ok")?,
        Err(error) => {
            writeln!(out, "verify: CORRUPT: {error}")?;
            return Ok(Outcome::Problems);
        }
    }
    Ok(Outcome::Fine)
}

/// Every edit of a manifest directory, then the state they build, level by level.
fn manifest(
    fs: &StdFs,
    dir: &Path,
    limiter: &mut Limiter,
    out: &mut impl Write,
) -> Result<Outcome, AdminError> {
    if !dir.is_dir() {
        return Err(AdminError::Usage(format!(
            "{}: not a directory (inspect manifest takes the manifest directory; \
             `inspect wal` shows a single segment)",
            dir.display()
        )));
    }
    writeln!(out, "manifest {}", dir.display())?;
    let mut written = Ok(());
    let replay = replay_manifest(fs, dir, |path, record, edit| {
        if written.is_ok() && limiter.allow() {
            let segment = path.file_name().unwrap_or_default().to_string_lossy();
            written = writeln!(
                out,
                "lsn={} {segment}@{}: {edit}",
                record.lsn, record.offset
            );
        }
    })?;
    written?;
    limiter.report(out)?;
    for problem in &replay.problems {
        writeln!(out, "{problem}")?;
    }
    writeln!(
        out,
        "summary: {} edits in {} segments",
        replay.edits, replay.segments
    )?;
    print_state(&replay.state, out)?;
    Ok(if has_errors(&replay.problems) {
        Outcome::Problems
    } else {
        Outcome::Fine
    })
}

fn print_state(state: &ManifestState, out: &mut impl Write) -> std::io::Result<()> {
    let total: u64 = state.levels.iter().flatten().map(|f| f.file_bytes).sum();
    writeln!(
        out,
        "state: next_file_id={} last_seq={} flushed_lsn={} files={} bytes={} ({})",
        state.next_file_id,
        state.last_seq,
        state.flushed_lsn,
        state.file_count(),
        total,
        bytes_human(total)
    )?;
    for (level, files) in state.levels.iter().enumerate() {
        let bytes: u64 = files.iter().map(|f| f.file_bytes).sum();
        writeln!(out, "L{level}: {} files, {} bytes", files.len(), bytes)?;
        for file in files {
            writeln!(out, "  {file}")?;
        }
    }
    Ok(())
}
