//! Write-ahead log: one per shard, segmented, checksummed, group-committed.
//!
//! Records are buffered in memory by [`Wal::append`] (synchronous, cheap) and written by whoever
//! first needs them durable ([`Wal::sync_to`]): one flush runs at a time and takes every record
//! buffered so far, so callers that arrive during a flush share the next one instead of each
//! issuing an fsync (group commit). Writes are O_DIRECT-style: aligned 4096-byte blocks; the
//! partially filled last block is kept in memory and rewritten, zero-padded, by the next flush.
//!
//! A flush that must be durable writes through a second, O_DSYNC handle on the segment
//! ([`FileSystem::open_write_through`]) instead of writing and then calling fdatasync: one
//! io_uring write that the device completes durably (FUA), where fdatasync was a second
//! request that io_uring hands to a worker thread, which must then wake and be scheduled
//! (measured on pgbench TPC-B: +6–10 % tps, 138 → 128 µs of CPU per transaction). Such a write
//! makes only itself durable, so after any plain write (an async-durability flush, the zero
//! fill ahead) the next sync flush falls back to fdatasync. So does a flush longer than a few
//! writes (`WRITE_THROUGH_WRITES_MAX`): its chunks are written plainly and synced once.
//!
//! After any write or sync error the log is *failed* for good (like PostgreSQL after fsyncgate):
//! the kernel may have dropped the dirty data, so retrying an fsync could report durability that
//! does not exist. Every later call returns [`WalError::Failed`]; the shard must restart and
//! recover from what is on disk.
//!
//! The byte layout and the recovery rules are written down in `engine/FORMAT.md`.

mod format;
mod group;
pub mod inspect;
pub(crate) mod lock;
mod recovery;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use zerocopy::FromBytes;

pub use format::{
    RecordHeader, SegmentHeader, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
    SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use group::{GroupCommitClock, GROUP_WAIT_US_MAX};

use crate::fs::{DmaFile, FileSystem};

/// Write alignment (O_DIRECT block).
const BLOCK_BYTES: usize = 4096;
/// Largest single write (and DMA buffer) a write-through flush issues; bigger flushes are split.
pub const WAL_WRITE_BYTES_MAX: usize = 128 << 10;
/// Largest single write of a plain flush (async mode, or a long sync flush followed by one
/// fdatasync). Larger, because each write waits for the shard's reactor to look at the ring,
/// which a busy shard does once per preempt period: an async flush of 18 MB in 128 KiB writes
/// took 140 periods (1.5 s with glommio's default of 100 ms), while writers piled up behind it.
/// Writes stay one at a time, so a crash never leaves a later part of the log without an
/// earlier one.
pub const WAL_PLAIN_WRITE_BYTES_MAX: usize = 4 << 20;
/// Zeroed file space kept ahead of the last record (see `preallocate`): the whole segment.
pub const WAL_PREALLOCATE_AHEAD_BYTES: u64 = 64 << 20;
/// Largest amount of appended-but-unwritten record bytes; [`Wal::append`] refuses beyond it.
pub const WAL_PENDING_BYTES_MAX: usize = 2 * (RECORD_PAYLOAD_BYTES_MAX + RECORD_HEADER_BYTES);
/// Bounds on [`WalOptions::segment_bytes_max`].
pub const SEGMENT_BYTES_MAX_MIN: u64 = 2 * BLOCK_BYTES as u64;
pub const SEGMENT_BYTES_MAX_MAX: u64 = 1 << 30;
/// A pending buffer with at most this capacity is kept for reuse after a flush.
const PENDING_REUSE_BYTES_MAX: usize = 1 << 20;

const _: () = assert!(BLOCK_BYTES.is_power_of_two());
const _: () = assert!(WAL_WRITE_BYTES_MAX & (BLOCK_BYTES - 1) == 0);
const _: () = assert!(WAL_PLAIN_WRITE_BYTES_MAX.is_multiple_of(WAL_WRITE_BYTES_MAX));
const _: () = assert!(WAL_PENDING_BYTES_MAX >= RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX);

/// WAL errors.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal i/o error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wal corrupt: {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("wal has failed and accepts no more writes (restart to recover): {reason}")]
    Failed { reason: String },
    #[error("wal record payload of {len} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { len: usize, limit: usize },
    #[error("wal buffer full ({pending_bytes} bytes not yet written); sync before appending more")]
    BufferFull { pending_bytes: usize },
    #[error("wal replay failed at lsn {lsn}: {reason}")]
    Replay { lsn: u64, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// WAL tuning.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is closed, and a new one started, once it holds at least this many bytes.
    pub segment_bytes_max: u64,
    /// Zeroed file space kept ahead of the last record, so appends overwrite instead of
    /// extending the file (0 turns it off). See `preallocate`.
    pub preallocate_bytes: u64,
    /// [`Wal::open`] passes to its replay callback only the records with at least this lsn;
    /// earlier ones are still read and checked (0: replay everything). For a log whose prefix
    /// is already applied elsewhere (the LSM's SSTables cover every lsn up to its flushed lsn).
    pub replay_from_lsn: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes_max: 64 << 20,
            preallocate_bytes: WAL_PREALLOCATE_AHEAD_BYTES,
            replay_from_lsn: 0,
        }
    }
}

/// The name of the segment whose first record has `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// Parses a segment file name back into its first lsn.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment being appended to. Owned by the flush in progress (taken out of the `Wal`), so
/// no `RefCell` borrow is held across an I/O `.await`.
struct Writer<File> {
    file: File,
    /// The same segment opened write-through (O_DSYNC): a write through it is durable when it
    /// completes.
    write_through: File,
    /// Whether a write through `file` has not been synced since. A write-through write does
    /// not make it durable, so a sync flush must then fdatasync.
    unsynced: bool,
    path: PathBuf,
    /// Offset just past the last record.
    end: u64,
    /// Bytes `[align_down(end), end)`: the partial last block, rewritten by the next flush.
    tail: Vec<u8>,
    /// Bytes of the file known to exist (written, zeros past `end`); block-aligned growth.
    allocated: u64,
}

struct State {
    /// Set on the first write/sync error; never cleared.
    failed: Option<String>,
    last_lsn: u64,
    durable_lsn: u64,
    /// Encoded records appended but not yet handed to a flush.
    pending: Vec<u8>,
    /// An emptied buffer for `pending` when a flush takes it: appends during the flush's
    /// write and fsync then fill a buffer already grown, instead of growing a new one by
    /// doubling into fresh memory every flush (whose pages the kernel must zero first).
    spare: Vec<u8>,
    flushing: bool,
    /// Incremented when a flush ends (either way); waiters watch it.
    flush_epoch: u64,
    /// How many records the next sync flush waits for (see `group`).
    group: group::Group,
}

/// A shard's write-ahead log. Methods take `&self` (keep it in an `Rc`); single-threaded.
pub struct Wal<F: FileSystem> {
    fs: F,
    dir: PathBuf,
    opts: WalOptions,
    state: RefCell<State>,
    /// `None` while a flush owns it, or after a failure.
    writer: RefCell<Option<Writer<F::File>>>,
    waiters: RefCell<Vec<Waker>>,
    /// A zero-filled file ready to become the next segment (see `prepare_next_segment`), with
    /// its size.
    prepared: RefCell<Option<(F::File, u64)>>,
    preparing: std::cell::Cell<bool>,
    /// First lsn of every segment on disk, ascending; the last is the one appended to.
    /// Only this `Wal` creates and removes segments, so this mirrors the directory.
    segment_lsns: RefCell<VecDeque<u64>>,
    /// Serializes [`Wal::remove_segments_before`] calls (each removes oldest-first).
    removing: lock::LocalLock,
    /// The runtime's clock and timer; None: sync flushes never wait for their group.
    clock: RefCell<Option<std::rc::Rc<dyn GroupCommitClock>>>,
}

impl<F: FileSystem> Wal<F> {
    /// Opens the WAL in `dir` (creating it if needed) and replays it: calls
    /// `replay(lsn, kind, payload)` for every valid record, in lsn order. A torn tail of the last
    /// segment is cut off; corruption anywhere else is refused with [`WalError::Corrupt`].
    /// Records below [`WalOptions::replay_from_lsn`] are checked but not passed to `replay`.
    /// The first segment may start at any lsn (older segments removed by
    /// [`Wal::remove_segments_before`]).
    pub async fn open(
        fs: F,
        dir: PathBuf,
        opts: WalOptions,
        mut replay: impl FnMut(u64, u8, &[u8]) -> Result<(), WalError>,
    ) -> Result<Wal<F>, WalError> {
        assert!(
            (SEGMENT_BYTES_MAX_MIN..=SEGMENT_BYTES_MAX_MAX).contains(&opts.segment_bytes_max),
            "segment_bytes_max {} outside [{SEGMENT_BYTES_MAX_MIN}, {SEGMENT_BYTES_MAX_MAX}]",
            opts.segment_bytes_max
        );
        // A prepared segment left by a crash holds no records: drop it.
        let _ = fs.remove(&dir.join(PREPARED_SEGMENT_NAME)).await;
        let replay_from_lsn = opts.replay_from_lsn;
        let recovered = recovery::recover(&fs, &dir, |lsn, kind, payload| {
            if lsn < replay_from_lsn {
                return Ok(());
            }
            replay(lsn, kind, payload)
        })
        .await?;
        if recovered.next_lsn < replay_from_lsn {
            // Records up to `replay_from_lsn - 1` are kept elsewhere (flushed to tables), but the
            // log lost its copy of the newest of them (never synced before a crash). Numbering
            // must not restart below them, or new records would be skipped by the next replay:
            // drop what is left (all of it is older) and start a fresh segment there.
            let recovered = recovered;
            drop(recovered.tail);
            for first_lsn in &recovered.segment_lsns {
                let path = dir.join(segment_file_name(*first_lsn));
                fs.remove(&path).await.map_err(io_error(&path))?;
            }
            fs.sync_dir(&dir).await.map_err(io_error(&dir))?;
            let writer = create_preallocated_segment(&fs, &dir, replay_from_lsn, &opts).await?;
            return Ok(Wal::with_writer(
                fs,
                dir,
                opts,
                writer,
                replay_from_lsn - 1,
                VecDeque::from([replay_from_lsn]),
            ));
        }
        let last_lsn = recovered.next_lsn - 1;
        let mut segment_lsns = VecDeque::from(recovered.segment_lsns);
        if recovered.tail.is_none() {
            assert!(segment_lsns.is_empty());
            segment_lsns.push_back(recovered.next_lsn);
        }
        let writer = match recovered.tail {
            // Recovery synced the tail segment.
            Some(tail) => Writer {
                write_through: open_write_through(&fs, &tail.path).await?,
                unsynced: false,
                file: tail.file,
                path: tail.path,
                end: tail.end,
                tail: tail.tail,
                allocated: tail.end,
            },
            None => create_preallocated_segment(&fs, &dir, recovered.next_lsn, &opts).await?,
        };
        Ok(Wal::with_writer(
            fs,
            dir,
            opts,
            writer,
            last_lsn,
            segment_lsns,
        ))
    }

    fn with_writer(
        fs: F,
        dir: PathBuf,
        opts: WalOptions,
        writer: Writer<F::File>,
        last_lsn: u64,
        segment_lsns: VecDeque<u64>,
    ) -> Wal<F> {
        Wal {
            fs,
            dir,
            opts,
            state: RefCell::new(State {
                failed: None,
                last_lsn,
                // Recovery synced what it read: everything recovered is durable.
                durable_lsn: last_lsn,
                pending: Vec::new(),
                spare: Vec::new(),
                flushing: false,
                flush_epoch: 0,
                group: group::Group::new(),
            }),
            writer: RefCell::new(Some(writer)),
            waiters: RefCell::new(Vec::new()),
            prepared: RefCell::new(None),
            preparing: std::cell::Cell::new(false),
            segment_lsns: RefCell::new(segment_lsns),
            removing: lock::LocalLock::new(),
            clock: RefCell::new(None),
        }
    }

    /// Lets sync flushes wait, briefly, for the writers they expect (see `group`): the
    /// production runtime sets its clock here; without one a flush starts at once.
    pub fn set_group_commit_clock(&self, clock: std::rc::Rc<dyn GroupCommitClock>) {
        *self.clock.borrow_mut() = Some(clock);
    }

    /// Buffers one record in memory (not yet written) and returns its lsn.
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<u64, WalError> {
        self.append_with(kind, |out| out.extend_from_slice(payload))
    }

    /// Appends one record whose payload `write_payload` appends to the buffer it is given:
    /// the payload is encoded in place, with no buffer of its own to allocate and copy (a
    /// shard's write batches were encoded into a fresh `Vec` each, then copied here).
    pub fn append_with(
        &self,
        kind: u8,
        write_payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u64, WalError> {
        let mut state = self.state.borrow_mut();
        if let Some(reason) = &state.failed {
            return Err(WalError::Failed {
                reason: reason.clone(),
            });
        }
        let pending_bytes = state.pending.len();
        state.pending.resize(pending_bytes + RECORD_HEADER_BYTES, 0);
        write_payload(&mut state.pending);
        let len = state.pending.len() - pending_bytes - RECORD_HEADER_BYTES;
        if len > RECORD_PAYLOAD_BYTES_MAX {
            state.pending.truncate(pending_bytes);
            return Err(WalError::RecordTooLarge {
                len,
                limit: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        if pending_bytes + RECORD_HEADER_BYTES + len > WAL_PENDING_BYTES_MAX {
            state.pending.truncate(pending_bytes);
            return Err(WalError::BufferFull { pending_bytes });
        }
        let lsn = state.last_lsn + 1;
        assert!(lsn > state.last_lsn && lsn > state.durable_lsn);
        format::seal_record(&mut state.pending[pending_bytes..], lsn, 0, kind);
        state.last_lsn = lsn;
        state.group.appended();
        Ok(lsn)
    }

    /// Bytes appended but not yet handed to a flush.
    pub fn pending_bytes(&self) -> usize {
        self.state.borrow().pending.len()
    }

    /// The lsn of the last appended record (0 when the log is empty).
    pub fn last_lsn(&self) -> u64 {
        self.state.borrow().last_lsn
    }

    /// Every record up to this lsn is durable.
    pub fn durable_lsn(&self) -> u64 {
        self.state.borrow().durable_lsn
    }

    /// Whether the log has failed (every later call errors).
    pub fn is_failed(&self) -> bool {
        self.state.borrow().failed.is_some()
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Group commit: returns once every record up to `lsn` is durable (written and fdatasync'd).
    /// At most one flush runs at a time; callers arriving during one wait for it, then share the
    /// next. Do not cancel (drop) this future mid-flush: a cancelled flush fails the log, because
    /// what reached the disk is then unknown.
    pub async fn sync_to(&self, lsn: u64) -> Result<(), WalError> {
        loop {
            let (flushing, epoch) = {
                let state = self.state.borrow();
                if let Some(reason) = &state.failed {
                    return Err(WalError::Failed {
                        reason: reason.clone(),
                    });
                }
                assert!(
                    lsn <= state.last_lsn,
                    "sync_to({lsn}) beyond last lsn {}",
                    state.last_lsn
                );
                if state.durable_lsn >= lsn {
                    return Ok(());
                }
                (state.flushing, state.flush_epoch)
            };
            if flushing {
                EpochChange { wal: self, epoch }.await;
            } else {
                self.flush(Flush::SyncGroup).await?;
            }
        }
    }

    /// Writes the buffered records without waiting for an fsync (async durability). Returns once
    /// they are written or being written by the flush in progress.
    pub async fn write_buffered(&self) -> Result<(), WalError> {
        loop {
            let (flushing, epoch) = {
                let state = self.state.borrow();
                if let Some(reason) = &state.failed {
                    return Err(WalError::Failed {
                        reason: reason.clone(),
                    });
                }
                if state.pending.is_empty() {
                    return Ok(());
                }
                (state.flushing, state.flush_epoch)
            };
            if flushing {
                EpochChange { wal: self, epoch }.await;
            } else {
                self.flush(Flush::Write).await?;
            }
        }
    }

    /// Makes every record appended so far durable: `sync_to(last_lsn())`.
    pub async fn sync_all(&self) -> Result<(), WalError> {
        let lsn = self.last_lsn();
        self.sync_to(lsn).await
    }

    /// Closes the segment being appended to: once this returns, the next appended record starts
    /// a new segment. Flushes and syncs what is buffered first (into the old segment), so every
    /// record appended before the call is durable on return. Does nothing more when the current
    /// segment holds no record yet. Like [`Wal::sync_to`], do not cancel it mid-way.
    pub async fn roll(&self) -> Result<(), WalError> {
        loop {
            let (flushing, epoch) = {
                let state = self.state.borrow();
                if let Some(reason) = &state.failed {
                    return Err(WalError::Failed {
                        reason: reason.clone(),
                    });
                }
                (state.flushing, state.flush_epoch)
            };
            if !flushing {
                return self.flush(Flush::SyncRoll).await;
            }
            // Another flush owns the writer; ours runs after it, so that it rolls after
            // everything appended so far.
            EpochChange { wal: self, epoch }.await;
        }
    }

    /// Deletes every segment all of whose records have an lsn below `lsn` (segment `i` goes
    /// when segment `i + 1` starts at or below `lsn`), oldest first, and returns the bytes
    /// freed. Never the segment being appended to. Each removal is made durable (directory
    /// fsync) before the next one starts, so a crash leaves the segments a contiguous run in
    /// every file system (without it, a later unlink could persist and an earlier one not,
    /// leaving an lsn gap recovery refuses). Calls are serialized; safe to run during appends
    /// and flushes, which only touch the last segment. A failed directory fsync fails the log.
    pub async fn remove_segments_before(&self, lsn: u64) -> Result<u64, WalError> {
        let _removing = self.removing.lock().await;
        let mut freed_bytes = 0;
        loop {
            if let Some(reason) = &self.state.borrow().failed {
                return Err(WalError::Failed {
                    reason: reason.clone(),
                });
            }
            let first = {
                let lsns = self.segment_lsns.borrow();
                match (lsns.front(), lsns.get(1)) {
                    (Some(&first), Some(&next)) if next <= lsn => first,
                    _ => break,
                }
            };
            freed_bytes += self.remove_segment(first).await?;
        }
        Ok(freed_bytes)
    }

    /// Removes the oldest segment (which starts at `first_lsn`), durably; returns its size.
    async fn remove_segment(&self, first_lsn: u64) -> Result<u64, WalError> {
        let path = self.dir.join(segment_file_name(first_lsn));
        let file = self.fs.open(&path, false).await.map_err(io_error(&path))?;
        let file_bytes = file.size().await.map_err(io_error(&path))?;
        drop(file);
        self.fs.remove(&path).await.map_err(io_error(&path))?;
        {
            let mut lsns = self.segment_lsns.borrow_mut();
            assert_eq!(
                lsns.front(),
                Some(&first_lsn),
                "segments removed out of order"
            );
            assert!(lsns.len() >= 2, "removed the segment being appended to");
            lsns.pop_front();
        }
        if let Err(source) = self.fs.sync_dir(&self.dir).await {
            // Whether the unlink is durable is now unknown; a later removal becoming durable
            // without it would leave a gap. Stop here, as after any failed sync.
            let error = WalError::Io {
                path: self.dir.clone(),
                source,
            };
            self.state
                .borrow_mut()
                .failed
                .get_or_insert(error.to_string());
            return Err(error);
        }
        Ok(file_bytes)
    }

    /// Number of segment files the log has on disk (at least 1).
    pub fn segment_count(&self) -> usize {
        self.segment_lsns.borrow().len()
    }

    /// The lsn of the first record the log still holds (its first segment's first lsn; equal
    /// to `last_lsn() + 1` when it holds none).
    pub fn first_lsn(&self) -> u64 {
        *self
            .segment_lsns
            .borrow()
            .front()
            .expect("a wal always has a segment")
    }

    /// The first lsn of every segment, oldest first.
    pub fn segment_first_lsns(&self) -> Vec<u64> {
        self.segment_lsns.borrow().iter().copied().collect()
    }

    /// Writes every pending record, then (unless `Flush::Write`) fdatasyncs, then (if
    /// `Flush::SyncRoll` and the segment holds records) starts a new segment. Caller checked
    /// no flush runs.
    async fn flush(&self, kind: Flush) -> Result<(), WalError> {
        let (sync, roll) = (kind != Flush::Write, kind == Flush::SyncRoll);
        {
            let mut state = self.state.borrow_mut();
            assert!(!state.flushing && state.failed.is_none());
            state.flushing = true;
        }
        // Group commit: let every task that is ready to run (other connections whose requests
        // arrived in the same reactor tick) append its records before this flush takes them, so
        // one fdatasync covers them all. One yield, no timer: an idle shard pays nothing.
        // Dropping this future from here on fails the log (FlushGuard): callers never cancel it.
        let mut guard = FlushGuard {
            wal: self,
            armed: true,
        };
        YieldOnce(false).await;
        let clock = self.clock.borrow().clone();
        if let (Flush::SyncGroup, Some(clock)) = (kind, &clock) {
            self.wait_for_group(clock.as_ref()).await;
        }
        let started_us = clock.as_ref().map(|c| c.now_us());
        let (pending, target_lsn, records) = {
            let mut state = self.state.borrow_mut();
            let records = std::mem::take(&mut state.group.pending_records);
            let spare = std::mem::take(&mut state.spare);
            (
                std::mem::replace(&mut state.pending, spare),
                state.last_lsn,
                records,
            )
        };
        let mut writer = self
            .writer
            .borrow_mut()
            .take()
            .expect("writer present between flushes");
        let mut result = self.write_records(&mut writer, &pending, sync).await;
        if result.is_ok() && roll && writer.end > SEGMENT_HEADER_BYTES as u64 {
            result = self.roll_segment(&mut writer, target_lsn + 1).await;
        }
        guard.armed = false;
        {
            let mut state = self.state.borrow_mut();
            state.flushing = false;
            state.flush_epoch += 1;
            match &result {
                Ok(()) => {
                    if sync {
                        assert!(target_lsn >= state.durable_lsn);
                        state.durable_lsn = target_lsn;
                    }
                    if let (true, Some(clock), Some(started_us)) = (sync, &clock, started_us) {
                        let flush_us = clock.now_us().saturating_sub(started_us);
                        state.group.flushed(records, flush_us);
                    }
                    *self.writer.borrow_mut() = Some(writer);
                    if pending.capacity() <= PENDING_REUSE_BYTES_MAX {
                        let mut reuse = pending;
                        reuse.clear();
                        if state.pending.is_empty() && state.pending.capacity() < reuse.capacity() {
                            std::mem::swap(&mut state.pending, &mut reuse);
                        }
                        if state.spare.capacity() < reuse.capacity() {
                            state.spare = reuse;
                        }
                    }
                }
                Err(error) => state.failed = Some(error.to_string()),
            }
        }
        self.wake_all();
        result
    }

    /// Before a sync flush takes the buffer: waits (bounded) until the records the group is
    /// expected to hold are appended.
    async fn wait_for_group(&self, clock: &dyn GroupCommitClock) {
        let Some(budget) = self.state.borrow().group.wait_budget() else {
            return;
        };
        group::GroupFilled {
            group: &self.state,
            timer: clock.sleep(budget),
        }
        .await;
        self.state.borrow_mut().group.wait_ended();
    }

    /// Writes `pending` (whole encoded records) into segments, rolling as they fill.
    async fn write_records(
        &self,
        writer: &mut Writer<F::File>,
        pending: &[u8],
        sync: bool,
    ) -> Result<(), WalError> {
        let segment_bytes_max = self.opts.segment_bytes_max;
        let mut offset = 0;
        while offset < pending.len() {
            let (first_lsn, _) = pending_record_at(pending, offset);
            if writer.end >= segment_bytes_max && writer.end > SEGMENT_HEADER_BYTES as u64 {
                self.roll_segment(writer, first_lsn).await?;
            }
            let start = offset;
            loop {
                offset += pending_record_at(pending, offset).1;
                let segment_end = writer.end + (offset - start) as u64;
                if offset == pending.len() || segment_end >= segment_bytes_max {
                    break;
                }
            }
            let through = sync && !writer.unsynced && fits_write_through(writer, offset - start);
            write_bytes(
                writer,
                &pending[start..offset],
                through,
                self.opts.preallocate_bytes,
                segment_bytes_max,
            )
            .await?;
        }
        assert_eq!(offset, pending.len());
        if sync && writer.unsynced {
            sync_writer(writer).await?;
        }
        Ok(())
    }

    /// Closes the current segment (durably) and starts a new one whose first record is `first_lsn`.
    async fn roll_segment(
        &self,
        writer: &mut Writer<F::File>,
        first_lsn: u64,
    ) -> Result<(), WalError> {
        // The old segment must be complete on disk before the next one exists: otherwise a crash
        // could keep the new segment's records and lose the old one's tail, a gap recovery refuses.
        if writer.unsynced {
            sync_writer(writer).await?;
        }
        let prepared = self.prepared.borrow_mut().take();
        *writer = match prepared {
            Some((file, allocated)) => {
                // While the prepared file is being installed (header, sync, rename), a new
                // preparation must not start: it would delete and recreate the very file this
                // rename is about to move (seen under load: the rename then failed, ENOENT).
                assert!(
                    !self.preparing.get(),
                    "a prepared file exists only when none is being prepared"
                );
                self.preparing.set(true);
                let installed =
                    install_prepared(&self.fs, &self.dir, file, allocated, first_lsn).await;
                self.preparing.set(false);
                installed?
            }
            None => create_segment(&self.fs, &self.dir, first_lsn).await?,
        };
        let mut lsns = self.segment_lsns.borrow_mut();
        assert!(lsns.back().is_some_and(|&last| last < first_lsn));
        lsns.push_back(first_lsn);
        Ok(())
    }

    /// Zero-fills, in the background, the file the next segment will be (up to the segment size
    /// or `preallocate_bytes`), so that rolling to it costs a header write and a rename instead
    /// of zero-filling 64 MiB inside a flush (an ~80 ms stall at every segment otherwise).
    /// It writes a separate file, never the live segment, so it cannot race with appends.
    /// Does nothing when a file is ready or being prepared, or preallocation is off.
    pub async fn prepare_next_segment(&self) -> Result<(), WalError> {
        let ahead = self.opts.preallocate_bytes.min(self.opts.segment_bytes_max);
        if ahead == 0
            || self.preparing.get()
            || self.prepared.borrow().is_some()
            || self.is_failed()
        {
            return Ok(());
        }
        self.preparing.set(true);
        let result = self
            .zero_fill_prepared(ahead.next_multiple_of(WAL_WRITE_BYTES_MAX as u64))
            .await;
        self.preparing.set(false);
        match result {
            Ok(prepared) => {
                *self.prepared.borrow_mut() = Some(prepared);
                Ok(())
            }
            Err(error) => {
                let _ = self.fs.remove(&self.dir.join(PREPARED_SEGMENT_NAME)).await;
                Err(error)
            }
        }
    }

    async fn zero_fill_prepared(&self, len: u64) -> Result<(F::File, u64), WalError> {
        let path = self.dir.join(PREPARED_SEGMENT_NAME);
        let _ = self.fs.remove(&path).await;
        let file = self.fs.open(&path, true).await.map_err(io_error(&path))?;
        assert!(len.is_multiple_of(BLOCK_BYTES as u64));
        let mut pos = 0;
        while pos < len {
            let chunk = (len - pos).min(WAL_PLAIN_WRITE_BYTES_MAX as u64) as usize;
            let buf = file.alloc(chunk);
            let written = file.write_at(buf, pos).await.map_err(io_error(&path))?;
            check_written(&path, written, chunk)?;
            pos += chunk as u64;
        }
        file.sync().await.map_err(io_error(&path))?;
        Ok((file, pos))
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

/// What a flush does after writing the pending records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    /// Nothing (async durability).
    Write,
    /// fdatasync, after waiting for the writers the group expects (`Wal::sync_to`).
    SyncGroup,
    /// fdatasync at once, then start a new segment (`Wal::roll`).
    SyncRoll,
}

/// Reads the (lsn, encoded length) of the record at `offset` of our own pending buffer.
fn pending_record_at(pending: &[u8], offset: usize) -> (u64, usize) {
    let (header, _) =
        RecordHeader::read_from_prefix(&pending[offset..]).expect("pending holds whole records");
    let len = RECORD_HEADER_BYTES + header.len.get() as usize;
    assert!(offset + len <= pending.len());
    (header.lsn.get(), len)
}

/// Creates a segment file with its header block, durably (file, then directory entry).
async fn create_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    first_lsn: u64,
) -> Result<Writer<F::File>, WalError> {
    let path = dir.join(segment_file_name(first_lsn));
    let file = fs.open(&path, true).await.map_err(io_error(&path))?;
    let mut block = file.alloc(SEGMENT_HEADER_BYTES);
    format::encode_segment_header(block.as_mut(), first_lsn);
    let written = file.write_at(block, 0).await.map_err(io_error(&path))?;
    check_written(&path, written, SEGMENT_HEADER_BYTES)?;
    file.sync().await.map_err(io_error(&path))?;
    fs.sync_dir(dir).await.map_err(io_error(dir))?;
    Ok(Writer {
        write_through: open_write_through(fs, &path).await?,
        unsynced: false,
        file,
        path,
        end: SEGMENT_HEADER_BYTES as u64,
        tail: Vec::new(),
        allocated: SEGMENT_HEADER_BYTES as u64,
    })
}

/// A new segment (at open), zero-filled ahead and synced now: otherwise the first
/// acknowledged write after start-up pays for writing and syncing the whole preallocation
/// (about 150 ms for 64 MiB here), where PostgreSQL's first commit finds its WAL ready.
async fn create_preallocated_segment<F: FileSystem>(
    fs: &F,
    dir: &Path,
    first_lsn: u64,
    opts: &WalOptions,
) -> Result<Writer<F::File>, WalError> {
    let mut writer = create_segment(fs, dir, first_lsn).await?;
    if opts.preallocate_bytes > 0 {
        preallocate(&mut writer, opts.preallocate_bytes, opts.segment_bytes_max).await?;
        sync_writer(&mut writer).await?;
    }
    Ok(writer)
}

/// Name of the zero-filled file waiting to become the next segment. Recovery ignores it (it is
/// not a segment name) and `open` removes it.
pub const PREPARED_SEGMENT_NAME: &str = "wal-next.prepared";

/// Turns a prepared zero-filled file into the segment starting at `first_lsn`: header block
/// written and synced first, then the rename made durable, so a crash leaves either no new
/// segment or a valid empty one.
async fn install_prepared<F: FileSystem>(
    fs: &F,
    dir: &Path,
    file: F::File,
    allocated: u64,
    first_lsn: u64,
) -> Result<Writer<F::File>, WalError> {
    let from = dir.join(PREPARED_SEGMENT_NAME);
    let path = dir.join(segment_file_name(first_lsn));
    let mut block = file.alloc(SEGMENT_HEADER_BYTES);
    format::encode_segment_header(block.as_mut(), first_lsn);
    let written = file.write_at(block, 0).await.map_err(io_error(&from))?;
    check_written(&from, written, SEGMENT_HEADER_BYTES)?;
    file.sync().await.map_err(io_error(&from))?;
    fs.rename(&from, &path).await.map_err(io_error(&path))?;
    fs.sync_dir(dir).await.map_err(io_error(dir))?;
    Ok(Writer {
        write_through: open_write_through(fs, &path).await?,
        unsynced: false,
        file,
        path,
        end: SEGMENT_HEADER_BYTES as u64,
        tail: Vec::new(),
        allocated,
    })
}

/// Opens the segment at `path` a second time, write-through (see the module's comment).
async fn open_write_through<F: FileSystem>(fs: &F, path: &Path) -> Result<F::File, WalError> {
    fs.open_write_through(path).await.map_err(io_error(path))
}

/// fdatasyncs the segment: every write so far is durable.
async fn sync_writer<File: DmaFile>(writer: &mut Writer<File>) -> Result<(), WalError> {
    writer.file.sync().await.map_err(io_error(&writer.path))?;
    writer.unsynced = false;
    Ok(())
}

fn check_written(path: &Path, written: usize, expected: usize) -> Result<(), WalError> {
    if written == expected {
        return Ok(());
    }
    Err(WalError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {expected} bytes"),
        ),
    })
}

/// Writes `data` after the writer's end: the stream `tail ++ data` goes out from the tail's
/// block in aligned chunks, the last one zero-padded; the new partial block becomes the tail.
/// `through`: through the write-through handle, so the data is durable on return.
async fn write_bytes<File: DmaFile>(
    writer: &mut Writer<File>,
    data: &[u8],
    through: bool,
    ahead_bytes: u64,
    segment_bytes_max: u64,
) -> Result<(), WalError> {
    let block_bytes = BLOCK_BYTES as u64;
    let tail_pos = writer.end - writer.end % block_bytes;
    assert_eq!(writer.tail.len() as u64, writer.end - tail_pos);
    let total = writer.tail.len() + data.len();
    let mut done = 0;
    let write_bytes_max = if through {
        WAL_WRITE_BYTES_MAX
    } else {
        WAL_PLAIN_WRITE_BYTES_MAX
    };
    while done < total {
        let chunk = (total - done).min(write_bytes_max);
        let buf_len = chunk.next_multiple_of(BLOCK_BYTES);
        let file = if through {
            &writer.write_through
        } else {
            writer.unsynced = true;
            &writer.file
        };
        let mut buf = file.alloc(buf_len);
        let dst = buf.as_mut();
        assert_eq!(dst.len(), buf_len);
        copy_joined(&writer.tail, data, done, &mut dst[..chunk]);
        dst[chunk..].fill(0);
        let pos = tail_pos + done as u64;
        assert!(pos & (block_bytes - 1) == 0);
        let written = file
            .write_at(buf, pos)
            .await
            .map_err(io_error(&writer.path))?;
        check_written(&writer.path, written, buf_len)?;
        done += chunk;
    }
    writer.allocated = writer
        .allocated
        .max(tail_pos + total.next_multiple_of(BLOCK_BYTES) as u64);
    preallocate(writer, ahead_bytes, segment_bytes_max).await?;
    let end = writer.end + data.len() as u64;
    let tail_len = (end % block_bytes) as usize;
    let mut new_tail = vec![0; tail_len];
    copy_joined(&writer.tail, data, total - tail_len, &mut new_tail);
    writer.tail = new_tail;
    writer.end = end;
    Ok(())
}

/// Writes a sync flush may take through the O_DSYNC handle, each then a durable write (a
/// device cache flush) of its own; a longer flush writes its chunks plainly and syncs once.
/// redis-benchmark SET of 64 KiB values (`-P 4 -c 16`, `--durability sync`, flushes of about
/// 32 writes; two alternating runs): 12.4–12.8k → 14.2–14.7k requests/s. A limit of one write
/// cost MSET's flushes of three writes 2 % (the fdatasync is a hand-off to an io_uring worker).
const WRITE_THROUGH_WRITES_MAX: usize = 4;

/// Whether `len` more bytes (with the partial block kept in memory) are short enough to write
/// through the O_DSYNC handle ([`WRITE_THROUGH_WRITES_MAX`]).
fn fits_write_through<File>(writer: &Writer<File>, len: usize) -> bool {
    writer.tail.len() + len <= WRITE_THROUGH_WRITES_MAX * WAL_WRITE_BYTES_MAX
}

/// Zero-fills the segment ahead of the data: up to `ahead_bytes` past it, capped at the
/// segment's size, refilled once less than half of that is left. With the default (`ahead` =
/// the segment size) a segment is zero-filled once, by its first flush.
///
/// Why: an O_DIRECT write that extends a file (new blocks, a new size) cannot complete inline
/// in io_uring; the kernel hands it to an io-wq worker thread, which on a busy 2-core machine
/// waits milliseconds for a CPU (measured: 2.5–3.5 ms per extending 4 KiB write under
/// redis-benchmark, ~50 µs for an overwrite). Zero-filling ahead, as PostgreSQL does for its WAL
/// segments, makes the common write an overwrite; filling a whole segment at once keeps the
/// one slow flush per segment out of the p99 (1 MiB refills put it at 4–5 ms). Zeros read as
/// end of log at recovery.
async fn preallocate<File: DmaFile>(
    writer: &mut Writer<File>,
    ahead_bytes: u64,
    segment_bytes_max: u64,
) -> Result<(), WalError> {
    if ahead_bytes == 0 {
        return Ok(());
    }
    let block = BLOCK_BYTES as u64;
    let data_end = writer.end.next_multiple_of(block) + block;
    let target = (data_end + ahead_bytes)
        .min(segment_bytes_max.next_multiple_of(block))
        .max(data_end);
    let low_water = target.min(data_end + ahead_bytes / 2);
    if writer.allocated >= low_water {
        return Ok(());
    }
    while writer.allocated < target {
        let pos = writer.allocated;
        assert_eq!(pos % block, 0);
        writer.unsynced = true;
        // Whole 128 KiB units (the fill may pass the target by less than one), in writes as
        // large as a plain flush's (see WAL_PLAIN_WRITE_BYTES_MAX).
        let chunk = (target - pos)
            .next_multiple_of(WAL_WRITE_BYTES_MAX as u64)
            .min(WAL_PLAIN_WRITE_BYTES_MAX as u64) as usize;
        let buf = writer.file.alloc(chunk);
        let written = writer
            .file
            .write_at(buf, pos)
            .await
            .map_err(io_error(&writer.path))?;
        check_written(&writer.path, written, chunk)?;
        writer.allocated = pos + chunk as u64;
    }
    Ok(())
}

/// Copies `dst.len()` bytes of the concatenation `a ++ b`, starting at `from`, into `dst`.
fn copy_joined(a: &[u8], b: &[u8], from: usize, dst: &mut [u8]) {
    assert!(from + dst.len() <= a.len() + b.len());
    let mut written = 0;
    if from < a.len() {
        let n = (a.len() - from).min(dst.len());
        dst[..n].copy_from_slice(&a[from..from + n]);
        written = n;
    }
    let b_from = (from + written) - a.len().min(from + written);
    let rest = dst.len() - written;
    dst[written..].copy_from_slice(&b[b_from..b_from + rest]);
}

/// Fails the log if a flush is dropped before it finishes: what reached the disk is unknown.
struct FlushGuard<'a, F: FileSystem> {
    wal: &'a Wal<F>,
    armed: bool,
}

impl<F: FileSystem> Drop for FlushGuard<'_, F> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        {
            let mut state = self.wal.state.borrow_mut();
            state.flushing = false;
            state.flush_epoch += 1;
            state.failed = Some("a flush was cancelled mid-write".to_string());
        }
        self.wal.wake_all();
    }
}

/// Resolves once the flush epoch differs from `epoch`.
struct EpochChange<'a, F: FileSystem> {
    wal: &'a Wal<F>,
    epoch: u64,
}

impl<F: FileSystem> Future for EpochChange<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wal.state.borrow().flush_epoch != self.epoch {
            return Poll::Ready(());
        }
        let mut waiters = self.wal.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Returns Pending once (after waking itself), so the executor runs every other ready task
/// first. Runtime-agnostic: any executor re-queues a task that wakes itself.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
