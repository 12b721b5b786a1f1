//! Read-only inspection of WAL segments, for `helios inspect wal` and `helios check`.
//!
//! Walks segments with the decoding of [`format`] and the rules recovery applies (`recovery.rs`,
//! FORMAT.md "Recovery"), but never writes: a torn tail is reported, not cut, and nothing is
//! created, synced or removed, so it is safe to point at the files of a stopped (or even a
//! running) server. What recovery would refuse is a [`Severity::Error`]; what it would repair
//! (cut a torn tail, drop a segment whose creation was interrupted) is a [`Severity::Warning`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::{self, Decoded, SEGMENT_HEADER_BYTES};
use super::{io_error, parse_segment_file_name, WalError};
use crate::fs::FileSystem;

/// One record that decoded and whose checksum verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Byte offset of the record header in the segment file.
    pub offset: u64,
    pub lsn: u64,
    pub term: u64,
    pub kind: u8,
    /// Payload bytes (header excluded).
    pub len: u32,
}

/// How the records of a segment end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// An all-zero header, or the end of the file, and no valid record after it.
    Clean,
    /// A record that does not decode (cut short, bad checksum...) with no valid record after it:
    /// a torn write. Recovery cuts it from the last segment and refuses it in any other.
    Torn { reason: String },
    /// Damage followed by a valid record, or a record out of lsn sequence: recovery refuses it
    /// wherever it is.
    Corrupt { reason: String },
}

/// What one segment file holds.
#[derive(Debug)]
pub struct SegmentScan {
    pub path: PathBuf,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// The header's first lsn, or why the header does not decode (then `records` is empty).
    pub header: Result<u64, String>,
    pub records: Vec<ScannedRecord>,
    /// Where the records end: just past the last valid one (the offset of the bad record for
    /// [`SegmentEnd::Torn`] and [`SegmentEnd::Corrupt`]).
    pub end_offset: u64,
    pub end: SegmentEnd,
}

impl SegmentScan {
    /// The payload of one of this segment's records.
    pub fn payload(&self, record: &ScannedRecord) -> &[u8] {
        let start = record.offset as usize + format::RECORD_HEADER_BYTES;
        &self.bytes[start..start + record.len as usize]
    }

    pub fn file_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Decodes a whole segment file: its header, then records from offset 4096 while they verify
/// and carry consecutive lsns, then classifies the end as recovery would.
pub fn scan_segment(path: PathBuf, bytes: Vec<u8>) -> SegmentScan {
    let mut scan = SegmentScan {
        path,
        header: format::decode_segment_header(&bytes),
        bytes,
        records: Vec::new(),
        end_offset: 0,
        end: SegmentEnd::Clean,
    };
    let Ok(first_lsn) = scan.header else {
        return scan;
    };
    let bytes = &scan.bytes;
    let mut lsn_next = first_lsn;
    let mut offset = SEGMENT_HEADER_BYTES;
    let end = loop {
        let rest = bytes.get(offset..).unwrap_or(&[]);
        match format::decode_record(rest) {
            Decoded::Record(record) if record.lsn != lsn_next => {
                let reason = format!("record lsn {} where {lsn_next} expected", record.lsn);
                break SegmentEnd::Corrupt { reason };
            }
            Decoded::Record(record) => {
                scan.records.push(ScannedRecord {
                    offset: offset as u64,
                    lsn: record.lsn,
                    term: record.term,
                    kind: record.kind,
                    len: record.payload.len() as u32,
                });
                lsn_next += 1;
                offset += record.encoded_bytes();
            }
            Decoded::End => match format::find_valid_record(bytes, offset + 1, lsn_next - 1) {
                Some(valid) => {
                    let reason = format!("log ends here but a valid record follows at {valid}");
                    break SegmentEnd::Corrupt { reason };
                }
                None => break SegmentEnd::Clean,
            },
            Decoded::Bad(reason) => {
                match format::find_valid_record(bytes, offset + 1, lsn_next - 1) {
                    Some(valid) => {
                        let reason =
                            format!("{reason}, and a valid record follows at offset {valid}");
                        break SegmentEnd::Corrupt { reason };
                    }
                    None => break SegmentEnd::Torn { reason },
                }
            }
        }
    };
    scan.end_offset = offset as u64;
    scan.end = end;
    scan
}

/// Reads the segment file at `path` (read-only) and scans it.
pub async fn read_segment<F: FileSystem>(fs: &F, path: &Path) -> Result<SegmentScan, WalError> {
    let file = fs.open(path, false).await.map_err(io_error(path))?;
    // Recovery's reader: the same size bound and chunking.
    let bytes = super::recovery::read_all(&file, path).await?;
    Ok(scan_segment(path.to_path_buf(), bytes))
}

/// The segment files in `dir` (by name, as recovery picks them), oldest first: (first lsn, path).
pub async fn list_segments<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let names = fs.list(dir).await.map_err(io_error(dir))?;
    let mut segments: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| Some((parse_segment_file_name(name)?, dir.join(name))))
        .collect();
    segments.sort();
    Ok(segments)
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Recovery repairs it (dropping the torn record: see FORMAT.md on why a bit flip in the
    /// last record looks the same).
    Warning,
    /// Recovery refuses the log.
    Error,
}

/// A problem found in a log, naming the file and byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProblem {
    pub severity: Severity,
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for LogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(
            f,
            "{severity}: {} at offset {}: {}",
            self.file.display(),
            self.offset,
            self.reason
        )
    }
}

/// Scans every segment of the log in `dir`, oldest first, passing each to `visit` (one segment
/// in memory at a time), and returns the problems found by recovery's rules: bad headers, lsn
/// gaps between segments, damaged records. Unlike recovery it goes on after an error, so one
/// run reports every damaged segment. Errs only when `dir` cannot be listed or a file cannot
/// be read.
pub async fn scan_log<F: FileSystem>(
    fs: &F,
    dir: &Path,
    mut visit: impl FnMut(&SegmentScan),
) -> Result<Vec<LogProblem>, WalError> {
    let segments = list_segments(fs, dir).await?;
    let mut problems = Vec::new();
    let mut expected_lsn: Option<u64> = None;
    for (index, (name_lsn, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        let scan = match read_segment(fs, path).await {
            Ok(scan) => scan,
            Err(WalError::Corrupt {
                file,
                offset,
                reason,
            }) => {
                problems.push(problem(Severity::Error, &file, offset, reason));
                expected_lsn = None;
                continue;
            }
            Err(error) => return Err(error),
        };
        expected_lsn = check_segment(&scan, *name_lsn, expected_lsn, is_last, &mut problems);
        visit(&scan);
    }
    Ok(problems)
}

/// Applies recovery's rules to one scanned segment; returns the lsn the next segment must start
/// at (None when this segment's records cannot be trusted to tell).
fn check_segment(
    scan: &SegmentScan,
    name_lsn: u64,
    expected_lsn: Option<u64>,
    is_last: bool,
    problems: &mut Vec<LogProblem>,
) -> Option<u64> {
    let path = &scan.path;
    let first_lsn = match &scan.header {
        Ok(first_lsn) => *first_lsn,
        Err(reason) if is_last && scan.bytes.len() <= SEGMENT_HEADER_BYTES => {
            let reason =
                format!("{reason}: a segment whose creation was interrupted (recovery removes it)");
            problems.push(problem(Severity::Warning, path, 0, reason));
            return None;
        }
        Err(reason) => {
            problems.push(problem(Severity::Error, path, 0, reason.clone()));
            return None;
        }
    };
    if first_lsn != name_lsn {
        let reason = format!("header first lsn {first_lsn} != file name lsn {name_lsn}");
        problems.push(problem(Severity::Error, path, 0, reason));
    }
    if let Some(expected) = expected_lsn.filter(|expected| *expected != first_lsn) {
        let reason = format!("segment starts at lsn {first_lsn}, expected {expected}");
        problems.push(problem(Severity::Error, path, 0, reason));
    }
    let offset = scan.end_offset;
    match &scan.end {
        SegmentEnd::Clean => {}
        SegmentEnd::Torn { reason } if is_last => {
            let reason = format!("{reason}: a torn tail (recovery cuts the log here)");
            problems.push(problem(Severity::Warning, path, offset, reason));
        }
        SegmentEnd::Torn { reason } => {
            let reason = format!("{reason} (not the last segment)");
            problems.push(problem(Severity::Error, path, offset, reason));
            return None;
        }
        SegmentEnd::Corrupt { reason } => {
            problems.push(problem(Severity::Error, path, offset, reason.clone()));
            return None;
        }
    }
    Some(first_lsn + scan.records.len() as u64)
}

fn problem(severity: Severity, file: &Path, offset: u64, reason: String) -> LogProblem {
    LogProblem {
        severity,
        file: file.to_path_buf(),
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_lsn: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = vec![0; SEGMENT_HEADER_BYTES];
        format::encode_segment_header(&mut bytes, first_lsn);
        for (i, payload) in payloads.iter().enumerate() {
            format::encode_record(&mut bytes, first_lsn + i as u64, 0, 7, payload);
        }
        bytes.resize(bytes.len().next_multiple_of(4096), 0);
        bytes
    }

    #[test]
    fn scans_records_and_classifies_the_end() {
        let bytes = segment(5, &[b"one", b"two", b"three"]);
        let scan = scan_segment("s".into(), bytes.clone());
        assert_eq!(scan.header, Ok(5));
        assert_eq!(scan.end, SegmentEnd::Clean);
        let lsns: Vec<u64> = scan.records.iter().map(|r| r.lsn).collect();
        assert_eq!(lsns, [5, 6, 7]);
        assert_eq!(scan.payload(&scan.records[1]), b"two");

        // Damage in the first record, valid ones after: corruption at its offset.
        let mut damaged = bytes.clone();
        damaged[SEGMENT_HEADER_BYTES + 33] ^= 1;
        let scan = scan_segment("s".into(), damaged);
        assert!(
            matches!(scan.end, SegmentEnd::Corrupt { .. }),
            "{:?}",
            scan.end
        );
        assert_eq!(scan.end_offset, SEGMENT_HEADER_BYTES as u64);

        // Damage in the last record: a torn tail.
        let last = scan_segment("s".into(), bytes.clone()).records[2].offset as usize;
        let mut torn = bytes;
        torn[last + 34] ^= 1;
        let scan = scan_segment("s".into(), torn);
        assert!(matches!(scan.end, SegmentEnd::Torn { .. }));
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.end_offset, last as u64);
    }

    #[test]
    fn torn_tail_is_a_warning_only_in_the_last_segment() {
        let mut bytes = segment(1, &[b"a", b"b"]);
        let last = SEGMENT_HEADER_BYTES + format::RECORD_HEADER_BYTES + 1;
        bytes[last + 32] ^= 1;
        let scan = scan_segment("s".into(), bytes);
        let mut problems = Vec::new();
        assert_eq!(check_segment(&scan, 1, None, true, &mut problems), Some(2));
        assert_eq!(problems[0].severity, Severity::Warning);
        problems.clear();
        assert_eq!(check_segment(&scan, 1, None, false, &mut problems), None);
        assert_eq!(problems[0].severity, Severity::Error);
        problems.clear();
        check_segment(&scan, 1, Some(3), true, &mut problems);
        assert!(problems.iter().any(|p| p.reason.contains("expected 3")));
    }
}
