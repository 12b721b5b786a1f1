//! Recovery: replays every segment in lsn order, cuts a torn tail off the last segment, and
//! refuses anything else that does not check out (see "Recovery" in `engine/FORMAT.md`).

use std::path::{Path, PathBuf};

use super::format::{self, Decoded, SEGMENT_HEADER_BYTES};
use super::{io_error, parse_segment_file_name, WalError, BLOCK_BYTES};
use crate::fs::{DmaFile, FileSystem};

/// Largest segment file recovery will read (a sanity bound, well above any configured size).
const SEGMENT_FILE_BYTES_MAX: u64 = 2 << 30;
/// Recovery reads a segment in chunks of this size.
const READ_BYTES_MAX: usize = 1 << 20;

/// The state of the log after replay.
pub(super) struct Recovered<File> {
    /// The lsn the next appended record gets.
    pub next_lsn: u64,
    /// The segment to keep appending to; `None` when there is none (empty log).
    pub tail: Option<RecoveredTail<File>>,
    /// The first lsn of every segment kept, ascending (the last one is `tail`'s).
    pub segment_lsns: Vec<u64>,
}

pub(super) struct RecoveredTail<File> {
    pub file: File,
    pub path: PathBuf,
    /// Offset just past the last valid record.
    pub end: u64,
    /// Bytes `[align_down(end), end)`.
    pub tail: Vec<u8>,
}

/// What one segment held.
enum SegmentOutcome {
    /// The last segment's header block never became durable (a crash while rolling).
    IncompleteHeader,
    /// Valid records end at `end`; `torn` when bytes after them had to be cut.
    Records { end: u64, next_lsn: u64, torn: bool },
}

pub(super) async fn recover<F: FileSystem>(
    fs: &F,
    dir: &Path,
    mut replay: impl FnMut(u64, u8, &[u8]) -> Result<(), WalError>,
) -> Result<Recovered<F::File>, WalError> {
    fs.create_dir_all(dir).await.map_err(io_error(dir))?;
    // The directory's own entry must be durable before files in it can be.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs.sync_dir(parent).await.map_err(io_error(parent))?;
    }
    let names = fs.list(dir).await.map_err(io_error(dir))?;
    let mut segments: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|name| Some((parse_segment_file_name(name)?, name)))
        .collect();
    segments.sort();
    let mut next_lsn: Option<u64> = None;
    let mut tail: Option<RecoveredTail<F::File>> = None;
    let mut segment_lsns = Vec::with_capacity(segments.len());
    for (index, (name_lsn, name)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        let path = dir.join(name);
        let file = fs.open(&path, false).await.map_err(io_error(&path))?;
        let bytes = read_all(&file, &path).await?;
        let outcome = replay_segment(&path, &bytes, *name_lsn, next_lsn, is_last, &mut replay)?;
        match outcome {
            SegmentOutcome::IncompleteHeader => {
                assert!(is_last);
                drop(file);
                fs.remove(&path).await.map_err(io_error(&path))?;
                fs.sync_dir(dir).await.map_err(io_error(dir))?;
            }
            SegmentOutcome::Records {
                end,
                next_lsn: next,
                torn,
            } => {
                if torn {
                    tracing::warn!(file = %path.display(), offset = end, "wal: cutting torn tail");
                }
                // Cut whatever follows the last record (a torn record, or padding) so that no
                // stale bytes outlive the next appends.
                if is_last && (bytes.len() as u64) > end {
                    file.truncate(end).await.map_err(io_error(&path))?;
                }
                next_lsn = Some(next);
                segment_lsns.push(*name_lsn);
                tail = Some(RecoveredTail {
                    tail: tail_bytes(&bytes, end),
                    file,
                    path,
                    end,
                });
            }
        }
    }
    if let Some(tail) = &tail {
        // What recovery read may not all be durable yet (a process crash leaves unsynced writes
        // readable); the cut of a torn tail must be durable too. One sync covers both.
        tail.file.sync().await.map_err(io_error(&tail.path))?;
    }
    Ok(Recovered {
        next_lsn: next_lsn.unwrap_or(1),
        tail,
        segment_lsns,
    })
}

pub(super) async fn read_all<File: DmaFile>(file: &File, path: &Path) -> Result<Vec<u8>, WalError> {
    let size = file.size().await.map_err(io_error(path))?;
    if size > SEGMENT_FILE_BYTES_MAX {
        return Err(WalError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason: format!("segment file of {size} bytes exceeds {SEGMENT_FILE_BYTES_MAX}"),
        });
    }
    let size = size as usize;
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        let want = (size - bytes.len()).min(READ_BYTES_MAX);
        let chunk = file
            .read_at(bytes.len() as u64, want)
            .await
            .map_err(io_error(path))?;
        if chunk.is_empty() {
            break; // The file shrank under us; treat what we have as the file.
        }
        bytes.extend_from_slice(&chunk[..chunk.len().min(want)]);
    }
    Ok(bytes)
}

fn tail_bytes(bytes: &[u8], end: u64) -> Vec<u8> {
    let end = end as usize;
    let start = end - end % BLOCK_BYTES;
    let mut tail = vec![0; end - start];
    let available = bytes.get(start..end.min(bytes.len())).unwrap_or(&[]);
    tail[..available.len()].copy_from_slice(available);
    tail
}

fn corrupt(path: &Path, offset: usize, reason: String) -> WalError {
    WalError::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

/// Checks one segment's header and replays its records.
fn replay_segment(
    path: &Path,
    bytes: &[u8],
    name_lsn: u64,
    expected_lsn: Option<u64>,
    is_last: bool,
    replay: &mut impl FnMut(u64, u8, &[u8]) -> Result<(), WalError>,
) -> Result<SegmentOutcome, WalError> {
    let first_lsn = match format::decode_segment_header(bytes) {
        Ok(first_lsn) => first_lsn,
        // Only a segment being created can lack its header, and records are written only after
        // the header is durable: a short last segment with a bad header holds nothing.
        Err(_) if is_last && bytes.len() <= SEGMENT_HEADER_BYTES => {
            return Ok(SegmentOutcome::IncompleteHeader)
        }
        Err(reason) => return Err(corrupt(path, 0, reason)),
    };
    if first_lsn != name_lsn {
        return Err(corrupt(
            path,
            0,
            format!("header first lsn {first_lsn} != file name lsn"),
        ));
    }
    if let Some(expected) = expected_lsn.filter(|expected| *expected != first_lsn) {
        let reason = format!("segment starts at lsn {first_lsn}, expected {expected}");
        return Err(corrupt(path, 0, reason));
    }
    let mut lsn_next = first_lsn;
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        let rest = bytes.get(offset..).unwrap_or(&[]);
        match format::decode_record(rest) {
            Decoded::Record(record) => {
                if record.lsn != lsn_next {
                    let reason = format!("record lsn {} where {lsn_next} expected", record.lsn);
                    return Err(corrupt(path, offset, reason));
                }
                replay(record.lsn, record.kind, record.payload)?;
                lsn_next += 1;
                offset += record.encoded_bytes();
            }
            Decoded::End => {
                if let Some(valid) = format::find_valid_record(bytes, offset + 1, lsn_next - 1) {
                    let reason = format!("log ends here but a valid record follows at {valid}");
                    return Err(corrupt(path, offset, reason));
                }
                return Ok(SegmentOutcome::Records {
                    end: offset as u64,
                    next_lsn: lsn_next,
                    torn: false,
                });
            }
            Decoded::Bad(reason) => {
                if !is_last {
                    return Err(corrupt(
                        path,
                        offset,
                        format!("{reason} (not the last segment)"),
                    ));
                }
                if let Some(valid) = format::find_valid_record(bytes, offset + 1, lsn_next - 1) {
                    let reason = format!("{reason}, and a valid record follows at offset {valid}");
                    return Err(corrupt(path, offset, reason));
                }
                return Ok(SegmentOutcome::Records {
                    end: offset as u64,
                    next_lsn: lsn_next,
                    torn: true,
                });
            }
        }
    }
}
