//! [`Lsm`]: one shard's log-structured merge tree — write path, reads, snapshots, and the
//! background flush and compaction loops.
//!
//! Directory layout: `wal/` (the write-ahead log), `manifest/` (the log of version edits),
//! `sst/` (the tables, `{id:016}.sst`).
//!
//! Crash safety, by construction: a table is written and synced before the manifest edit that
//! adds it is appended and synced; WAL segments are deleted only after the edit that says
//! their records are in tables; retired tables are deleted only after the edit that retires
//! them, and once no reader holds them. At start, tables the manifest does not list are
//! leftovers of an interrupted flush or compaction and are deleted.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::batch::{self, WriteBatch, WAL_KIND_BATCH};
use super::bulk::BulkScan;
use super::compaction::{self, Decision, Gc, Pick};
use super::iter::{DbIter, MergingIter, ReadOptions, Source};
use super::key::{self, SeqNo, ValueKind};
use super::manifest::{self, FileMeta, Manifest, ManifestState, VersionEdit};
use super::memtable::{Lookup, Memtable};
use super::notify::Notify;
use super::packed::PackedEntries;
use super::snapshot::{Snapshot, SnapshotList};
use super::version::{Table, Version, LEVEL_COUNT};
use super::{LsmError, LsmOptions};
use crate::cache::BlockCache;
use crate::fs::FileSystem;
use crate::rt::Runtime;
use crate::sst::{EncodedTable, SstEncoder, SstInfo, SstOptions, SstReader, SstWriter};
use crate::wal::{Wal, WalOptions};

/// Entries a flush or compaction processes between calls to `yield_if_needed`.
const ENTRIES_PER_YIELD_CHECK: usize = 256;
/// How long one write is delayed when level 0 passes the slowdown trigger.
const SLOWDOWN_DELAY: Duration = Duration::from_millis(1);

/// Counters for `INFO`, benchmarks and tests.
#[derive(Default, Debug, Clone)]
pub struct LsmStats {
    pub user_bytes_written: u64,
    pub wal_bytes_written: u64,
    pub flushes: u64,
    pub flush_bytes_written: u64,
    pub compactions: u64,
    pub trivial_moves: u64,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    pub stalls: u64,
    pub slowdowns: u64,
    pub max_l0_files: usize,
    /// Tables added by [`Lsm::ingest`].
    pub ingested_files: u64,
    /// Tables deleted whole because [`LsmOptions::dead_range`] called their keys garbage.
    pub dead_tables_deleted: u64,
    /// Ranges read straight from their files ([`Lsm::bulk_scan`] planned them).
    pub bulk_scans: u64,
}

struct State<F: FileSystem> {
    active: Rc<Memtable>,
    /// Full memtables waiting to be flushed, oldest first.
    immutables: VecDeque<Rc<Memtable>>,
    version: Rc<Version<F>>,
    manifest_state: ManifestState,
}

pub struct Lsm<F: FileSystem + Clone + 'static, R: Runtime> {
    fs: F,
    rt: R,
    dir: PathBuf,
    opts: LsmOptions,
    wal: Wal<F>,
    manifest: Manifest<F>,
    cache: Rc<BlockCache>,
    state: RefCell<State<F>>,
    last_seq: Cell<SeqNo>,
    /// The WAL position of the newest write to any key hashing to each bucket
    /// ([`Lsm::newest_write_lsn`]): what a point read must wait to be durable for, in place of
    /// the whole log's end.
    write_lsns: RefCell<Box<[u64]>>,
    next_file_id: Cell<u64>,
    snapshots: Rc<SnapshotList>,
    /// Set when a background flush or compaction failed; writes are refused from then on.
    failed: RefCell<Option<String>>,
    closing: Cell<bool>,
    /// Background work may be due (a memtable filled, a level grew).
    work: Notify,
    /// A flush or compaction finished, or a loop exited (stalled writers re-check).
    changed: Notify,
    loops_running: Cell<usize>,
    /// A version edit is being applied (they go one at a time).
    editing: Cell<bool>,
    edit_done: Notify,
    /// Flushes and compactions in progress.
    busy: Cell<usize>,
    /// A compaction is running (at most one: the compaction loop's).
    compacting: Cell<bool>,
    /// 1 while an ingestion places its tables ([`PlacingGuard`]): no compaction starts.
    ingesting: Cell<usize>,
    pointers: RefCell<Vec<Bytes>>,
    /// Tables retired by a compaction, deleted once no reader holds them.
    obsolete: RefCell<Vec<Rc<Table<F>>>>,
    stats: RefCell<LsmStats>,
}

/// Buckets of [`Lsm::newest_write_lsn`]: 32 KiB per tree. Two keys share a bucket by chance
/// only, which makes a read of one wait for a write of the other: with writes at ~10k per
/// second and fsyncs under a millisecond, the few keys not yet durable at any instant rarely
/// collide with the key read.
const WRITE_LSN_BUCKETS: usize = 4096;

pub(crate) fn write_lsn_bucket(user_key: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(user_key) as usize) & (WRITE_LSN_BUCKETS - 1)
}

/// Whether `table` holds any version (tombstones too) of a user key in `[first, last]`.
async fn table_holds_keys_in<F: FileSystem>(
    table: &Table<F>,
    first: &[u8],
    last: &[u8],
) -> Result<bool, LsmError> {
    let mut iter = table.reader.iter();
    let mut seek_key = Vec::new();
    key::encode_into(&mut seek_key, first, key::SEQ_MAX, ValueKind::Put);
    iter.seek(&seek_key).await?;
    Ok(iter.valid() && key::user_key(iter.key()) <= last)
}

/// Held while an ingestion places its tables: compactions wait (they could write to the
/// level it chooses), and so does another ingestion's placing; released on drop.
struct PlacingGuard<'a, F: FileSystem + Clone + 'static, R: Runtime> {
    lsm: &'a Lsm<F, R>,
}

impl<'a, F: FileSystem + Clone + 'static, R: Runtime> PlacingGuard<'a, F, R> {
    async fn enter(lsm: &'a Lsm<F, R>) -> PlacingGuard<'a, F, R> {
        loop {
            let changed = lsm.changed.wait();
            if lsm.ingesting.get() == 0 {
                break;
            }
            changed.await;
        }
        lsm.ingesting.set(1);
        lsm.busy.set(lsm.busy.get() + 1);
        PlacingGuard { lsm }
    }
}

impl<F: FileSystem + Clone + 'static, R: Runtime> Drop for PlacingGuard<'_, F, R> {
    fn drop(&mut self) {
        self.lsm.ingesting.set(0);
        self.lsm.busy.set(self.lsm.busy.get() - 1);
        self.lsm.changed.notify_all();
        self.lsm.work.notify_all();
    }
}

/// An ingested entry's key ascends strictly from the one before it, and both fit the limits.
fn check_ingested_entry(previous: Option<&[u8]>, key: &[u8], value: &[u8]) -> Result<(), LsmError> {
    if previous.is_some_and(|p| p >= key) {
        return Err(ingest_refused("keys do not ascend strictly".into()));
    }
    if key.len() > key::USER_KEY_BYTES_MAX {
        return Err(LsmError::KeyTooLarge { len: key.len() });
    }
    if value.len() > batch::VALUE_BYTES_MAX {
        return Err(LsmError::ValueTooLarge { len: value.len() });
    }
    Ok(())
}

/// Entries `range` of an ingestion as one table, encoded in memory (on any thread), with
/// the checks [`Lsm::write_ingested_table`] makes. The range is not empty.
fn encode_ingested(
    entries: &PackedEntries,
    range: std::ops::Range<usize>,
    seq: SeqNo,
    sst: SstOptions,
) -> Result<EncodedTable, LsmError> {
    let bytes: usize = range.clone().map(|i| entries.entry_bytes(i)).sum();
    // Each entry's key gains its sequence and kind; blocks, index and bloom add a little.
    let mut encoder = SstEncoder::with_capacity(sst, bytes + bytes / 8 + range.len() * 12);
    let mut internal_key = Vec::new();
    let mut previous = range.start.checked_sub(1).map(|i| entries.get(i).0);
    for (user_key, value) in entries.iter_range(range) {
        check_ingested_entry(previous, user_key, value)?;
        previous = Some(user_key);
        internal_key.clear();
        key::encode_into(&mut internal_key, user_key, seq, ValueKind::Put);
        encoder.add(&internal_key, value);
    }
    encoder
        .into_encoded()
        .ok_or_else(|| ingest_refused("an empty part".into()))
}

/// Tables of an ingestion written at once, and the fewest it is cut into ([`ingest_parts`]):
/// one table at a time, each write waited for in turn, kept the CPU idle for much of a
/// million-row ingestion.
pub(super) const INGEST_TABLES_AT_ONCE: u64 = 4;
/// Smallest table an ingestion is cut into for writing tables at once.
const INGEST_TABLE_BYTES_MIN: u64 = 4 << 20;
/// Largest table an ingestion is cut into, below the target file size: a table encoded on
/// the helper thread is built whole in memory before it is written, two of them per four
/// tables at once (about 75 MiB at this size).
const INGEST_TABLE_BYTES_MAX: u64 = 32 << 20;

/// Contiguous ranges of `entries`, one per table of an ingestion: about `target_file_bytes`
/// (at most [`INGEST_TABLE_BYTES_MAX`]) of keys and values each, smaller when that makes
/// fewer than [`INGEST_TABLES_AT_ONCE`] tables (but not under [`INGEST_TABLE_BYTES_MIN`]).
/// Never empty; `entries` is not.
pub(super) fn ingest_parts(
    entries: &PackedEntries,
    target_file_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let total: u64 = (0..entries.len())
        .map(|i| entries.entry_bytes(i) as u64)
        .sum();
    // Not a clamp: a target file size under the minimum wins.
    let wanted = (total / INGEST_TABLES_AT_ONCE).max(INGEST_TABLE_BYTES_MIN);
    let cap = target_file_bytes.min(INGEST_TABLE_BYTES_MAX);
    let part_bytes = wanted.min(cap).max(1);
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for i in 0..entries.len() {
        bytes += entries.entry_bytes(i) as u64;
        if bytes >= part_bytes {
            parts.push(start..i + 1);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < entries.len() {
        parts.push(start..entries.len());
    }
    parts
}

fn ingest_refused(reason: String) -> LsmError {
    LsmError::Failed {
        reason: format!("ingest refused: {reason}"),
    }
}

fn sst_dir(dir: &Path) -> PathBuf {
    dir.join("sst")
}

impl<F: FileSystem + Clone + 'static, R: Runtime> Lsm<F, R> {
    /// Opens (or creates) the tree in `dir`: loads the manifest, opens the tables, deletes
    /// leftovers, replays the WAL above what the tables hold, and starts the background loops.
    pub async fn open(
        fs: F,
        rt: R,
        dir: PathBuf,
        opts: LsmOptions,
        cache: Rc<BlockCache>,
    ) -> Result<Rc<Lsm<F, R>>, LsmError> {
        opts.validate();
        let sst_dir = sst_dir(&dir);
        fs.create_dir_all(&sst_dir)
            .await
            .map_err(LsmError::io(&sst_dir))?;
        let (manifest, manifest_state) = Manifest::open(fs.clone(), dir.join("manifest")).await?;
        let version = open_tables(&fs, &sst_dir, &manifest_state, &cache).await?;
        remove_leftover_tables(&fs, &sst_dir, &manifest_state).await?;

        let replay = RefCell::new(Replay {
            memtables: vec![Rc::new(Memtable::with_expected_bytes(opts.memtable_bytes))],
            last_seq: manifest_state.last_seq,
            memtable_bytes: opts.memtable_bytes,
        });
        let wal_opts = WalOptions {
            replay_from_lsn: manifest_state.flushed_lsn + 1,
            ..opts.wal.clone()
        };
        let wal = Wal::open(
            fs.clone(),
            dir.join("wal"),
            wal_opts,
            |lsn, kind, payload| replay.borrow_mut().apply(lsn, kind, payload),
        )
        .await?;
        let Replay {
            mut memtables,
            last_seq,
            ..
        } = replay.into_inner();
        let active = memtables.pop().expect("replay keeps an active memtable");
        let lsm = Rc::new(Lsm {
            fs,
            rt,
            dir,
            wal,
            manifest,
            cache,
            state: RefCell::new(State {
                active,
                immutables: memtables.into(),
                version: Rc::new(version),
                manifest_state: manifest_state.clone(),
            }),
            last_seq: Cell::new(last_seq),
            write_lsns: RefCell::new(vec![0; WRITE_LSN_BUCKETS].into_boxed_slice()),
            next_file_id: Cell::new(manifest_state.next_file_id),
            snapshots: Rc::new(SnapshotList::default()),
            failed: RefCell::new(None),
            closing: Cell::new(false),
            work: Notify::default(),
            changed: Notify::default(),
            loops_running: Cell::new(2),
            editing: Cell::new(false),
            edit_done: Notify::default(),
            busy: Cell::new(0),
            compacting: Cell::new(false),
            ingesting: Cell::new(0),
            pointers: RefCell::new(vec![Bytes::new(); LEVEL_COUNT]),
            obsolete: RefCell::new(Vec::new()),
            stats: RefCell::new(LsmStats::default()),
            opts,
        });
        lsm.rt.spawn_background(lsm.clone().flush_loop());
        lsm.rt.spawn_background(lsm.clone().compaction_loop());
        Ok(lsm)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn wal(&self) -> &Wal<F> {
        &self.wal
    }

    pub fn options(&self) -> &LsmOptions {
        &self.opts
    }

    pub fn last_seq(&self) -> SeqNo {
        self.last_seq.get()
    }

    pub fn stats(&self) -> LsmStats {
        self.stats.borrow().clone()
    }

    pub fn block_cache(&self) -> &Rc<BlockCache> {
        &self.cache
    }

    /// Files per level, for tests and `INFO`.
    pub fn level_file_counts(&self) -> Vec<usize> {
        let state = self.state.borrow();
        state.version.levels.iter().map(Vec::len).collect()
    }

    pub fn level_bytes(&self) -> Vec<u64> {
        let state = self.state.borrow();
        (0..LEVEL_COUNT)
            .map(|l| state.version.level_bytes(l))
            .collect()
    }

    pub fn memtable_bytes(&self) -> usize {
        let state = self.state.borrow();
        state.active.used_bytes()
            + state
                .immutables
                .iter()
                .map(|m| m.used_bytes())
                .sum::<usize>()
    }

    fn check_writable(&self) -> Result<(), LsmError> {
        if let Some(reason) = self.failed.borrow().as_ref() {
            return Err(LsmError::Failed {
                reason: reason.clone(),
            });
        }
        if self.closing.get() {
            return Err(LsmError::Closed);
        }
        Ok(())
    }

    /// Applies `batch` atomically: logs it (buffered; make it durable with
    /// `wal().sync_to(lsn)`) and inserts it into the memtable. Returns the WAL lsn. Callers
    /// should await [`Lsm::wait_for_write_room`] before writing, so that memory stays bounded
    /// when writes outrun flushing.
    pub fn write(&self, batch: &WriteBatch) -> Result<u64, LsmError> {
        if batch.is_empty() {
            self.check_writable()?;
            return Ok(self.wal.last_lsn());
        }
        let (lsn, base_seq) = self.log_batch(batch)?;
        let state = self.state.borrow();
        let newest_pinned = self.snapshots.newest();
        for (i, (kind, key, value)) in batch.entries().iter().enumerate() {
            let seq = base_seq + i as u64;
            if batch.is_scan_only(i) {
                state
                    .active
                    .insert_scan_only(key.clone(), seq, *kind, value.clone());
            } else {
                state.active.insert_superseding(
                    key.clone(),
                    seq,
                    *kind,
                    value.clone(),
                    newest_pinned,
                );
            }
        }
        drop(state);
        self.finish_write(lsn);
        Ok(lsn)
    }

    /// [`Lsm::write`] of a batch the caller no longer needs: its keys and values move into the
    /// memtable instead of being shared (no reference-count traffic per entry).
    pub fn write_owned(&self, batch: WriteBatch) -> Result<u64, LsmError> {
        if batch.is_empty() {
            self.check_writable()?;
            return Ok(self.wal.last_lsn());
        }
        let (lsn, base_seq) = self.log_batch(&batch)?;
        let state = self.state.borrow();
        let newest_pinned = self.snapshots.newest();
        if batch.len() >= KEY_ORDER_INSERT_ENTRIES_MIN {
            state.active.reserve_keys(batch.len());
        }
        insert_in_key_order(batch, |i, ((kind, key, value), scan_only)| {
            let seq = base_seq + i as u64;
            if scan_only {
                state.active.insert_scan_only(key, seq, kind, value);
            } else {
                state
                    .active
                    .insert_superseding(key, seq, kind, value, newest_pinned);
            }
        });
        drop(state);
        self.finish_write(lsn);
        Ok(lsn)
    }

    /// The WAL position up to which a read of `user_key` alone must wait for durability: the
    /// record of the newest write to a key in its bucket (a write of the key itself or of a
    /// key sharing the bucket), or 0 when none was logged since this tree opened (what it
    /// recovered is durable). Every version or tombstone of the key a reader can find is at
    /// or below it: a write's bucket is set when it is logged, before its entries reach the
    /// memtable.
    pub fn newest_write_lsn(&self, user_key: &[u8]) -> u64 {
        self.write_lsns.borrow()[write_lsn_bucket(user_key)]
    }

    /// Checks and logs a batch, assigning its sequence numbers: (WAL lsn, first sequence
    /// number). The caller inserts the entries, then calls `finish_write`.
    fn log_batch(&self, batch: &WriteBatch) -> Result<(u64, SeqNo), LsmError> {
        self.check_writable()?;
        batch.validate()?;
        assert!(!batch.is_empty());
        let base_seq = self.last_seq.get() + 1;
        let last_seq = base_seq + batch.len() as u64 - 1;
        if last_seq > key::SEQ_MAX {
            return Err(LsmError::Failed {
                reason: "sequence numbers exhausted".into(),
            });
        }
        let payload_start = self.wal.pending_bytes() + crate::wal::RECORD_HEADER_BYTES;
        let mut payload_bytes = 0;
        let lsn = self.wal.append_with(WAL_KIND_BATCH, |out| {
            batch.encode_into(base_seq, out);
            payload_bytes = out.len() - payload_start;
        })?;
        self.last_seq.set(last_seq);
        let mut write_lsns = self.write_lsns.borrow_mut();
        for (_, key, _) in batch.entries() {
            write_lsns[write_lsn_bucket(key)] = lsn;
        }
        drop(write_lsns);
        let mut stats = self.stats.borrow_mut();
        stats.user_bytes_written += batch
            .entries()
            .iter()
            .map(|(_, k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>();
        stats.wal_bytes_written += (payload_bytes + crate::wal::RECORD_HEADER_BYTES) as u64;
        Ok((lsn, base_seq))
    }

    fn finish_write(&self, lsn: u64) {
        self.state.borrow().active.note_lsn(lsn);
        self.maybe_rotate();
    }

    /// Writes `batch` and waits until it is durable.
    pub async fn write_durable(&self, batch: &WriteBatch) -> Result<(), LsmError> {
        self.wait_for_write_room().await?;
        let lsn = self.write(batch)?;
        self.wal.sync_to(lsn).await?;
        Ok(())
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, LsmError> {
        let mut batch = WriteBatch::new();
        batch.put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.wait_for_write_room().await?;
        self.write(&batch)
    }

    pub async fn delete(&self, key: &[u8]) -> Result<u64, LsmError> {
        let mut batch = WriteBatch::new();
        batch.delete(Bytes::copy_from_slice(key));
        self.wait_for_write_room().await?;
        self.write(&batch)
    }

    /// Turns a full active memtable into an immutable one, unless the flush queue is full (then
    /// writers stall in `wait_for_write_room` until a flush frees a slot).
    fn maybe_rotate(&self) {
        let mut state = self.state.borrow_mut();
        let full = state.active.used_bytes() >= self.opts.memtable_bytes;
        if full && state.immutables.len() < self.opts.max_immutable_memtables {
            let old = std::mem::replace(
                &mut state.active,
                Rc::new(Memtable::with_expected_bytes(self.opts.memtable_bytes)),
            );
            state.immutables.push_back(old);
            drop(state);
            self.work.notify_all();
        }
    }

    /// Waits while writes must stall: the memtable is full and every flush slot is taken, or
    /// level 0 has reached the stop trigger. Past the slowdown trigger, delays the write a
    /// little so compaction can catch up before a hard stall. Never blocks the executor.
    pub async fn wait_for_write_room(&self) -> Result<(), LsmError> {
        let mut slowed = false;
        loop {
            self.check_writable()?;
            let (memtable_stall, l0_files) = {
                let state = self.state.borrow();
                let full = state.active.used_bytes() >= self.opts.memtable_bytes;
                let mut l0_files = state.version.levels[0].len();
                if l0_files >= self.opts.l0_slowdown_trigger {
                    if let Some(family_of) = self.opts.key_family {
                        // A flush writes a table per family, and a read looks only at its key's
                        // family's: count the fullest family, not every table.
                        l0_files = compaction::files_per_family_max(
                            state.version.levels[0]
                                .iter()
                                .map(|t| t.smallest_user_key()),
                            family_of,
                        );
                    }
                }
                (
                    full && state.immutables.len() >= self.opts.max_immutable_memtables,
                    l0_files,
                )
            };
            if memtable_stall || l0_files >= self.opts.l0_stop_trigger {
                self.stats.borrow_mut().stalls += 1;
                self.work.notify_all();
                self.changed.wait().await;
                self.maybe_rotate();
                continue;
            }
            if l0_files >= self.opts.l0_slowdown_trigger && !slowed {
                self.stats.borrow_mut().slowdowns += 1;
                slowed = true;
                self.rt.sleep(SLOWDOWN_DELAY).await;
                continue;
            }
            return Ok(());
        }
    }

    /// Pins the current sequence number.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshots.pin(self.last_seq.get())
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// What the memtables say about `user_key` as of now, without I/O.
    pub fn get_from_memory(&self, user_key: &[u8]) -> Lookup {
        let seq = self.last_seq.get();
        let state = self.state.borrow();
        std::iter::once(&state.active)
            .chain(state.immutables.iter().rev())
            .map(|m| m.get(user_key, seq))
            .find(|l| *l != Lookup::Absent)
            .unwrap_or(Lookup::Absent)
    }

    /// The value of `user_key` as of `snapshot` (None: now).
    pub async fn get(
        &self,
        user_key: &[u8],
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<Bytes>, LsmError> {
        let seq = snapshot.map_or(self.last_seq.get(), Snapshot::seq);
        let (memtables, version) = self.read_view();
        for memtable in &memtables {
            match memtable.get(user_key, seq) {
                Lookup::Found(value) => return Ok(Some(value)),
                Lookup::Deleted => return Ok(None),
                Lookup::Absent => {}
            }
        }
        for table in &version.levels[0] {
            if table.overlaps(user_key, user_key) {
                if let Some(found) = table.reader.get(user_key, seq).await? {
                    return Ok(visible_value(found));
                }
            }
        }
        for level in 1..LEVEL_COUNT {
            if let Some(table) = version.find_in_level(level, user_key) {
                if let Some(found) = table.reader.get(user_key, seq).await? {
                    return Ok(visible_value(found));
                }
            }
        }
        Ok(None)
    }

    /// An iterator over live keys as of `opts.snapshot` (None: now), below `opts.upper_bound`.
    /// Position it with `seek` or `seek_to_first`.
    pub fn iter(&self, opts: ReadOptions) -> DbIter<F> {
        let snapshot = opts.snapshot.unwrap_or_else(|| self.snapshot());
        let (memtables, version) = self.read_view();
        DbIter::new(&memtables, version, snapshot, opts.upper_bound)
    }

    /// Keys starting with `prefix`, as of `snapshot`; positioned at the first.
    pub async fn prefix_iter(
        &self,
        prefix: &[u8],
        snapshot: Option<Snapshot>,
    ) -> Result<DbIter<F>, LsmError> {
        let mut iter = self.iter(ReadOptions {
            snapshot,
            upper_bound: super::iter::prefix_upper_bound(prefix),
        });
        iter.seek(prefix).await?;
        Ok(iter)
    }

    /// About how many bytes the user keys in `[start, end)` take (`end` None: no bound), every
    /// version counted: the table files' data blocks that hold them, and the memtables'
    /// entries. What PostgreSQL's `pg_table_size` answers for a table's rows.
    pub async fn approximate_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<u64, LsmError> {
        let (memtables, version) = self.read_view();
        let in_memory: u64 = memtables.iter().map(|m| m.bytes_in_range(start, end)).sum();
        let overlaps = |t: &Table<F>| {
            t.largest_user_key() >= start && end.is_none_or(|end| t.smallest_user_key() < end)
        };
        let mut on_disk = 0;
        for table in version.levels.iter().flatten().filter(|t| overlaps(t)) {
            on_disk += table.reader.approximate_bytes(start, end).await?;
        }
        Ok(in_memory + on_disk)
    }

    /// Memtables newest first, and the current version.
    fn read_view(&self) -> (Vec<Rc<Memtable>>, Rc<Version<F>>) {
        let state = self.state.borrow();
        let memtables = std::iter::once(state.active.clone())
            .chain(state.immutables.iter().rev().cloned())
            .collect();
        (memtables, state.version.clone())
    }

    /// A plan to read `[lower, upper)` straight from its table files ([`BulkScan`]), where
    /// that reads what an iterator at `snapshot` (None: now) would: no memtable holds a key of
    /// the range, the files that may hold one are all on one sorted level, and they hold no
    /// tombstone and nothing newer than the snapshot (a table loaded by COPY, or compacted to
    /// the bottom). None otherwise: iterate instead.
    pub async fn bulk_scan(
        &self,
        lower: &[u8],
        upper: &[u8],
        snapshot: Option<&Snapshot>,
    ) -> Option<BulkScan<F>> {
        let seq = snapshot.map_or(self.last_seq.get(), Snapshot::seq);
        // Inclusive bounds, as these checks take them: a key equal to `upper` only makes
        // the plan give way to an iterator.
        if self.memory_holds_keys_in(lower, upper) {
            return None;
        }
        let version = self.state.borrow().version.clone();
        let mut holding: Option<Vec<Rc<Table<F>>>> = None;
        for level in 0..LEVEL_COUNT {
            // Files whose keys merely span the range do not count (a flushed memtable's
            // catalog rows and sequences span every table's range).
            let mut tables = Vec::new();
            for table in version.overlapping(level, lower, upper) {
                if table_holds_keys_in(&table, lower, upper).await.ok()? {
                    tables.push(table);
                }
            }
            if tables.is_empty() {
                continue;
            }
            if level == 0 || holding.is_some() {
                return None;
            }
            holding = Some(tables);
        }
        let tables = holding?;
        if tables
            .iter()
            .any(|t| t.meta.tombstones > 0 || t.meta.seq_max > seq)
        {
            return None;
        }
        self.stats.borrow_mut().bulk_scans += 1;
        Some(BulkScan::plan(
            tables,
            lower,
            upper,
            self.opts.bulk_chunk_bytes,
        ))
    }

    /// Writes `entries` straight into SSTables under one new sequence number, bypassing the
    /// WAL and the memtable: a bulk load (a table rewrite's rows under its new id). User keys
    /// must ascend strictly, and no key of `[first, last]` may be in a memtable, nor written
    /// until this returns. Durable when it returns: the files are synced, then a manifest
    /// edit adds them, as deep as the tree allows (`ingest_level`; for a key range nothing
    /// else holds, the last level, where they need no compaction). A crash before the edit
    /// leaves only unreferenced files, removed at open.
    pub async fn ingest(&self, entries: Arc<PackedEntries>) -> Result<(), LsmError> {
        self.check_writable()?;
        if entries.is_empty() {
            return Ok(());
        }
        // The order and the sizes are checked as the entries are written (one pass over
        // them, which are in no cache order): the first and last bound the range only if
        // they ascend, and the write refuses them otherwise.
        let (first, last) = (entries.get(0).0, entries.get(entries.len() - 1).0);
        if self.memory_holds_keys_in(first, last) {
            return Err(ingest_refused("a memtable holds keys of its range".into()));
        }
        let seq = self.last_seq.get() + 1;
        if seq > key::SEQ_MAX {
            return Err(LsmError::Failed {
                reason: "sequence numbers exhausted".into(),
            });
        }
        self.last_seq.set(seq);
        let mut file_ids = Vec::new();
        let written = self.write_ingested(&entries, seq, &mut file_ids).await;
        let tables = match written {
            Ok(tables) => tables,
            Err(error) => return Err(self.discard_ingested(&file_ids, error).await),
        };
        // Placing: no compaction starts, and no other ingestion places, until the version
        // holds the files (the guard ends that even if this future is dropped).
        let _placing = PlacingGuard::enter(self).await;
        if self.closing.get() {
            return Err(LsmError::Closed);
        }
        let opened = match self.open_ingested(&tables, first, last).await {
            Ok(opened) => opened,
            Err(error) => return Err(self.discard_ingested(&file_ids, error).await),
        };
        match self.place_ingested(opened).await {
            Ok(()) => Ok(()),
            Err(error) => {
                // The manifest may hold the files while the version does not: as after a
                // failed flush, the tree refuses writes until a restart reconciles them.
                self.fail(&error);
                Err(error)
            }
        }
    }

    /// Deletes the files of an ingestion that failed before any manifest edit named them
    /// (best effort: the next open deletes what is left); returns its error.
    async fn discard_ingested(&self, file_ids: &[u64], error: LsmError) -> LsmError {
        for &id in file_ids {
            let _ = self.fs.remove(&self.table_path(id)).await;
        }
        error
    }

    fn memory_holds_keys_in(&self, first: &[u8], last: &[u8]) -> bool {
        let state = self.state.borrow();
        let from = super::memtable::MemKey::new(Bytes::copy_from_slice(first), key::SEQ_MAX);
        std::iter::once(&state.active)
            .chain(state.immutables.iter())
            .any(|m| {
                m.entries_from(Some(&from), true, 1)
                    .first()
                    .is_some_and(|e| e.user_key <= *last)
            })
    }

    /// Writes and syncs the tables of an ingestion (not yet in the tree; a crash or an error
    /// leaves files the next open deletes). The tables are written at once: while one waits
    /// for its write, the next one's blocks are built. Every other table is encoded on the
    /// shard's helper thread ([`Runtime::offload`]) while the shard encodes the rest, so a
    /// large ingestion keeps two cores busy.
    async fn write_ingested(
        &self,
        entries: &Arc<PackedEntries>,
        seq: SeqNo,
        file_ids: &mut Vec<u64>,
    ) -> Result<Vec<(u64, SstInfo)>, LsmError> {
        use futures_util::FutureExt;
        let parts = ingest_parts(entries, self.opts.target_file_bytes);
        let mut tables = Vec::with_capacity(parts.len());
        // A few at a time: each table being written holds its writer's buffers.
        for group in parts.chunks(INGEST_TABLES_AT_ONCE as usize) {
            let ids: Vec<u64> = group.iter().map(|_| self.alloc_file_id()).collect();
            file_ids.extend_from_slice(&ids);
            // Every file is made first: a table the helper encodes then only waits to be
            // written.
            let mut writers = Vec::with_capacity(ids.len());
            for &id in &ids {
                writers
                    .push(SstWriter::create(&self.fs, &self.table_path(id), self.opts.sst).await?);
            }
            let writes = (group.iter().zip(ids).zip(writers).enumerate()).map(
                |(n, ((range, id), writer))| {
                    if n % 2 == 1 {
                        self.write_ingested_encoded(entries, range.clone(), seq, writer)
                            .map(move |written| written.map(|info| (id, info)))
                            .left_future()
                    } else {
                        self.write_ingested_table(entries, range.clone(), seq, writer)
                            .map(move |written| written.map(|info| (id, info)))
                            .right_future()
                    }
                },
            );
            for written in futures_util::future::join_all(writes).await {
                tables.push(written?);
            }
        }
        Ok(tables)
    }

    /// Writes entries `range` into `writer`'s table, checking that their keys ascend (from
    /// the entry before the range on) and fit.
    async fn write_ingested_table(
        &self,
        entries: &PackedEntries,
        range: std::ops::Range<usize>,
        seq: SeqNo,
        mut writer: SstWriter<F>,
    ) -> Result<SstInfo, LsmError> {
        let mut internal_key = Vec::new();
        let mut previous = range.start.checked_sub(1).map(|i| entries.get(i).0);
        for (i, (user_key, value)) in (range.start..).zip(entries.iter_range(range)) {
            if i.is_multiple_of(ENTRIES_PER_YIELD_CHECK) {
                self.rt.yield_if_needed().await;
            }
            if self.closing.get() {
                return Err(LsmError::Closed);
            }
            check_ingested_entry(previous, user_key, value)?;
            previous = Some(user_key);
            internal_key.clear();
            key::encode_into(&mut internal_key, user_key, seq, ValueKind::Put);
            writer.add(&internal_key, value).await?;
        }
        Ok(writer.finish().await?)
    }

    /// As [`Self::write_ingested_table`], with the table encoded on the helper thread
    /// ([`encode_ingested`]) and only written here.
    async fn write_ingested_encoded(
        &self,
        entries: &Arc<PackedEntries>,
        range: std::ops::Range<usize>,
        seq: SeqNo,
        writer: SstWriter<F>,
    ) -> Result<SstInfo, LsmError> {
        let (entries, sst) = (Arc::clone(entries), self.opts.sst);
        let encoded = self
            .rt
            .offload(move || encode_ingested(&entries, range, seq, sst))
            .await?;
        if self.closing.get() {
            return Err(LsmError::Closed);
        }
        Ok(writer.write_encoded(encoded).await?)
    }

    /// Opens an ingestion's tables at the level `ingest_level` picks for them.
    async fn open_ingested(
        &self,
        tables: &[(u64, SstInfo)],
        first: &[u8],
        last: &[u8],
    ) -> Result<Vec<Rc<Table<F>>>, LsmError> {
        let level = self.ingest_level(first, last).await?;
        let mut opened = Vec::with_capacity(tables.len());
        for (id, info) in tables {
            opened.push(self.open_table(*id, level as u8, info).await?);
        }
        Ok(opened)
    }

    /// Adds an ingestion's opened tables to the tree (their level is in their metadata).
    /// Runs under a [`PlacingGuard`].
    async fn place_ingested(&self, opened: Vec<Rc<Table<F>>>) -> Result<(), LsmError> {
        let edit = VersionEdit {
            added: opened.iter().map(|t| t.meta.clone()).collect(),
            last_seq: Some(self.last_seq.get()),
            ..VersionEdit::default()
        };
        self.apply_edit(edit).await?;
        let added = opened.len() as u64;
        let mut state = self.state.borrow_mut();
        let mut version = (*state.version).clone();
        for table in opened {
            version.add(usize::from(table.meta.level), table);
        }
        version.assert_invariants();
        state.version = Rc::new(version);
        drop(state);
        self.stats.borrow_mut().ingested_files += added;
        self.changed.notify_all();
        Ok(())
    }

    /// Where ingested tables of user keys `[first, last]` go. Reads take a key's first
    /// version from level 0 down, so they must sit above every table holding any of those
    /// keys (a table whose range merely spans them does not count): the deepest sorted level
    /// above all such tables whose files' ranges leave theirs free (a sorted level's files
    /// never overlap); else level 0, above every sorted level, where their sequence number,
    /// newer than every table's, puts them first.
    async fn ingest_level(&self, first: &[u8], last: &[u8]) -> Result<usize, LsmError> {
        // A running compaction's outputs could land on the level chosen here: let it end
        // (no new one starts while placing).
        loop {
            let changed = self.changed.wait();
            if !self.compacting.get() {
                break;
            }
            changed.await;
        }
        let version = self.state.borrow().version.clone();
        let mut holding = LEVEL_COUNT;
        for level in 0..LEVEL_COUNT {
            for table in version.overlapping(level, first, last) {
                if table_holds_keys_in(&table, first, last).await? {
                    holding = holding.min(level);
                }
            }
        }
        Ok((1..holding)
            .rev()
            .find(|&level| version.overlapping(level, first, last).is_empty())
            .unwrap_or(0))
    }

    /// Flushes everything written so far to tables and waits for it (tests, shutdown).
    pub async fn flush(&self) -> Result<(), LsmError> {
        {
            let mut state = self.state.borrow_mut();
            if !state.active.is_empty() {
                let old = std::mem::replace(
                    &mut state.active,
                    Rc::new(Memtable::with_expected_bytes(self.opts.memtable_bytes)),
                );
                state.immutables.push_back(old);
            }
        }
        self.work.notify_all();
        loop {
            self.check_failed()?;
            if self.state.borrow().immutables.is_empty() {
                return Ok(());
            }
            self.changed.wait().await;
        }
    }

    /// Tells the tree that [`LsmOptions::dead_range`] may now call more keys garbage (a table
    /// was dropped): the compaction loop looks again for tables to delete whole. Without it,
    /// a dropped table's files would wait for the next flush to be reclaimed, forever on a
    /// tree that takes no more writes.
    pub fn garbage_changed(&self) {
        self.work.notify_all();
    }

    /// Waits until no flush, compaction or deletion of dead tables is due (tests, benchmarks).
    pub async fn wait_idle(&self) -> Result<(), LsmError> {
        loop {
            self.check_failed()?;
            let idle = {
                let state = self.state.borrow();
                state.immutables.is_empty()
                    && compaction::pick(&state.version, &self.opts, &self.pointers.borrow())
                        .is_none()
            } && self.dead_tables().is_empty();
            if idle && self.busy.get() == 0 {
                return Ok(());
            }
            self.work.notify_all();
            self.changed.wait().await;
        }
    }

    fn check_failed(&self) -> Result<(), LsmError> {
        match self.failed.borrow().as_ref() {
            Some(reason) => Err(LsmError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Stops the background loops (an in-progress compaction is abandoned; its partial output
    /// is deleted at the next open) and syncs the WAL.
    pub async fn close(&self) -> Result<(), LsmError> {
        self.stop().await;
        self.wal.sync_all().await?;
        // Tables retired by the last compactions, unless a reader still holds them (then the
        // next open removes them).
        self.purge_obsolete().await?;
        Ok(())
    }

    /// Stops the background loops without syncing anything (what a crash leaves behind).
    pub async fn stop(&self) {
        self.closing.set(true);
        self.work.notify_all();
        while self.loops_running.get() > 0 {
            self.changed.wait().await;
        }
    }

    fn fail(&self, error: &LsmError) {
        tracing::error!(dir = %self.dir.display(), "lsm background work failed: {error}");
        self.failed
            .borrow_mut()
            .get_or_insert_with(|| error.to_string());
        self.changed.notify_all();
    }

    fn alloc_file_id(&self) -> u64 {
        let id = self.next_file_id.get();
        self.next_file_id.set(id + 1);
        id
    }

    fn table_path(&self, id: u64) -> PathBuf {
        sst_dir(&self.dir).join(manifest::sst_file_name(id))
    }

    async fn flush_loop(self: Rc<Self>) {
        loop {
            // Taken before the checks: a notification that lands while we check or work is not
            // lost.
            let wakeup = self.work.wait();
            if self.closing.get() || self.failed.borrow().is_some() {
                break;
            }
            let oldest = self.state.borrow().immutables.front().cloned();
            match oldest {
                Some(memtable) => {
                    self.busy.set(self.busy.get() + 1);
                    let result = self.flush_memtable(memtable).await;
                    self.busy.set(self.busy.get() - 1);
                    if let Err(error) = result {
                        self.fail(&error);
                    }
                }
                None => wakeup.await,
            }
        }
        self.loop_exited();
    }

    async fn compaction_loop(self: Rc<Self>) {
        loop {
            let wakeup = self.work.wait();
            if self.closing.get() || self.failed.borrow().is_some() {
                break;
            }
            if let Err(error) = self.purge_obsolete().await {
                self.fail(&error);
                break;
            }
            if self.ingesting.get() > 0 {
                wakeup.await;
                continue;
            }
            // Before choosing a merge: a dead table (a drained queue's elements) would otherwise
            // be merged with the level-0 files that overlap it (the queue's next pushes, taking
            // the popped indexes again) instead of letting them move down unmerged.
            if let Err(error) = self.delete_dead_tables().await {
                self.fail(&error);
                break;
            }
            let pick = {
                let state = self.state.borrow();
                compaction::pick(&state.version, &self.opts, &self.pointers.borrow())
            };
            match pick {
                Some(pick) => {
                    self.busy.set(self.busy.get() + 1);
                    self.compacting.set(true);
                    let result = self.compact(pick).await;
                    self.compacting.set(false);
                    self.changed.notify_all();
                    self.busy.set(self.busy.get() - 1);
                    match result {
                        Ok(()) | Err(LsmError::Closed) => {}
                        Err(error) => self.fail(&error),
                    }
                }
                None => wakeup.await,
            }
        }
        self.loop_exited();
    }

    /// Deletes, without reading them, the tables whose whole key range
    /// [`LsmOptions::dead_range`] calls garbage.
    async fn delete_dead_tables(&self) -> Result<(), LsmError> {
        let dead = self.dead_tables();
        if dead.is_empty() {
            return Ok(());
        }
        self.busy.set(self.busy.get() + 1);
        let deleted = self.delete_tables(dead).await;
        self.busy.set(self.busy.get() - 1);
        deleted
    }

    /// The tables whose whole key range [`LsmOptions::dead_range`] calls garbage.
    fn dead_tables(&self) -> Vec<(usize, Rc<Table<F>>)> {
        let Some(dead_range) = self.opts.dead_range.as_ref() else {
            return Vec::new();
        };
        let state = self.state.borrow();
        state
            .version
            .levels
            .iter()
            .enumerate()
            .flat_map(|(level, files)| files.iter().map(move |t| (level, t)))
            .filter(|(_, t)| dead_range(t.smallest_user_key(), t.largest_user_key()))
            .map(|(level, t)| (level, Rc::clone(t)))
            .collect()
    }

    async fn delete_tables(&self, dead: Vec<(usize, Rc<Table<F>>)>) -> Result<(), LsmError> {
        // As for a compaction's output (see `compact`): the state in memory that called these
        // keys garbage (a pop, say) must be on disk before the keys are gone.
        self.wal.sync_all().await?;
        let edit = VersionEdit {
            deleted: dead.iter().map(|(l, t)| (*l as u8, t.meta.id)).collect(),
            ..VersionEdit::default()
        };
        self.apply_edit(edit).await?;
        {
            let mut state = self.state.borrow_mut();
            let mut version = (*state.version).clone();
            for (level, table) in &dead {
                version
                    .remove(*level, table.meta.id)
                    .expect("a dead table is in the current version");
            }
            state.version = Rc::new(version);
        }
        self.stats.borrow_mut().dead_tables_deleted += dead.len() as u64;
        self.obsolete
            .borrow_mut()
            .extend(dead.into_iter().map(|(_, t)| t));
        self.changed.notify_all();
        self.work.notify_all();
        Ok(())
    }

    fn loop_exited(&self) {
        self.loops_running.set(self.loops_running.get() - 1);
        self.changed.notify_all();
    }

    /// Writes the oldest immutable memtable to a level-0 table and retires it and the WAL
    /// segments it covered.
    // The borrow held across the writer's awaits is of a retired memtable's map, which no
    // one borrows mutably any more (see `Memtable::frozen_entries`).
    #[allow(clippy::await_holding_refcell_ref)]
    async fn flush_memtable(&self, memtable: Rc<Memtable>) -> Result<(), LsmError> {
        let mut gc = Gc::new(self.snapshots.pinned(), false, None);
        let mut finished: Vec<(u64, SstInfo)> = Vec::new();
        let mut writer: Option<(u64, SstWriter<F>)> = None;
        let mut family = None;
        let mut internal_key = Vec::new();
        let mut entries = 0usize;
        {
            // Read in place, not copied out a batch at a time as scans do: an immutable
            // memtable takes no more writes, so holding its map across the writer's awaits
            // conflicts with nothing (copying every entry out was ~9 % of a pipelined RPUSH's
            // shard time while a flush ran).
            let map = memtable.frozen_entries();
            for (processed, (mem_key, mem_value)) in map.iter().enumerate() {
                if processed.is_multiple_of(ENTRIES_PER_YIELD_CHECK) {
                    self.rt.yield_if_needed().await;
                }
                let seq = mem_key.seq.get();
                let Decision::Keep(kind) =
                    gc.decide(&mem_key.user_key, seq, mem_value.kind, &mem_value.value)
                else {
                    continue;
                };
                if self.starts_family(&mut family, &mem_key.user_key) {
                    if let Some((id, w)) = writer.take() {
                        finished.push((id, w.finish().await?));
                    }
                }
                internal_key.clear();
                key::encode_into(&mut internal_key, &mem_key.user_key, seq, kind);
                let w = self.open_output(&mut writer).await?;
                w.add(&internal_key, &mem_value.value).await?;
                entries += 1;
            }
        }
        assert!(
            entries > 0,
            "a flushed memtable keeps at least the newest version of a key"
        );
        let (id, w) = writer.expect("a table was started for the first entry");
        finished.push((id, w.finish().await?));
        let mut tables = Vec::with_capacity(finished.len());
        for (id, info) in &finished {
            tables.push(self.open_table(*id, 0, info).await?);
        }
        let edit = VersionEdit {
            added: tables.iter().map(|t| t.meta.clone()).collect(),
            next_file_id: Some(self.next_file_id.get()),
            last_seq: Some(self.last_seq.get()),
            flushed_lsn: Some(memtable.max_lsn()),
            ..VersionEdit::default()
        };
        self.apply_edit(edit).await?;
        {
            let mut state = self.state.borrow_mut();
            let flushed = state
                .immutables
                .pop_front()
                .expect("the flushed memtable is queued");
            assert!(
                Rc::ptr_eq(&flushed, &memtable),
                "memtables flush oldest first"
            );
            let mut version = (*state.version).clone();
            for table in tables {
                version.add(0, table);
            }
            state.version = Rc::new(version);
            let mut stats = self.stats.borrow_mut();
            stats.flushes += 1;
            stats.flush_bytes_written += finished.iter().map(|(_, i)| i.file_bytes).sum::<u64>();
            stats.max_l0_files = stats.max_l0_files.max(state.version.levels[0].len());
        }
        self.maybe_rotate();
        let flushed_lsn = memtable.max_lsn();
        self.retire_memtable(memtable);
        self.wal.remove_segments_before(flushed_lsn + 1).await?;
        self.changed.notify_all();
        self.work.notify_all();
        Ok(())
    }

    /// Frees a flushed memtable in the background, in batches (see `drop_gradually`); one a
    /// reader still holds is freed by that reader, at once, when it lets go.
    fn retire_memtable(&self, memtable: Rc<Memtable>) {
        if let Ok(memtable) = Rc::try_unwrap(memtable) {
            self.rt
                .spawn_background(memtable.drop_gradually(self.rt.clone()));
        }
    }

    async fn open_table(
        &self,
        id: u64,
        level: u8,
        info: &SstInfo,
    ) -> Result<Rc<Table<F>>, LsmError> {
        let path = self.table_path(id);
        let reader = SstReader::open(&self.fs, &path, id, self.cache.clone()).await?;
        let meta = FileMeta {
            id,
            level,
            file_bytes: info.file_bytes,
            entries: info.entries,
            tombstones: info.tombstones,
            smallest: info.smallest.clone(),
            largest: info.largest.clone(),
            seq_min: info.seq_min,
            seq_max: info.seq_max,
        };
        Ok(Rc::new(Table { meta, reader }))
    }

    /// Makes `edit` durable, then folds it into the in-memory manifest state (and rewrites the
    /// manifest log when it has grown). Edits are applied one at a time, and the counters they
    /// carry (next file id, last sequence number) are filled in under that exclusion, so that
    /// a flush and a compaction finishing together never log them out of order.
    async fn apply_edit(&self, mut edit: VersionEdit) -> Result<(), LsmError> {
        while self.editing.get() {
            self.edit_done.wait().await;
        }
        self.editing.set(true);
        let result = self.apply_edit_exclusive(&mut edit).await;
        self.editing.set(false);
        self.edit_done.notify_all();
        result
    }

    async fn apply_edit_exclusive(&self, edit: &mut VersionEdit) -> Result<(), LsmError> {
        edit.next_file_id = Some(self.next_file_id.get());
        if edit.last_seq.is_some() {
            edit.last_seq = Some(self.last_seq.get());
        }
        self.manifest.apply(edit).await?;
        let state_copy = {
            let mut state = self.state.borrow_mut();
            state.manifest_state.apply(edit)?;
            state.manifest_state.clone()
        };
        self.manifest.maybe_rewrite(&state_copy).await?;
        Ok(())
    }

    async fn compact(&self, pick: Pick<F>) -> Result<(), LsmError> {
        let (lo, hi) = pick.key_range();
        self.pointers.borrow_mut()[pick.level] = Bytes::copy_from_slice(
            pick.inputs
                .iter()
                .map(|t| t.largest_user_key())
                .max()
                .unwrap_or_default(),
        );
        if pick.is_trivial_move() && !self.filter_applies_to_any(&pick).await? {
            return self.trivial_move(pick).await;
        }
        let bottommost = !self
            .state
            .borrow()
            .version
            .has_data_below(pick.output_level, &lo, &hi);
        let mut sources: Vec<Source<F>> = Vec::new();
        if pick.level == 0 {
            sources.extend(pick.inputs.iter().map(|t| Source::Table(t.reader.iter())));
        } else {
            sources.push(Source::Level(super::iter::LevelIter::new(
                pick.inputs.clone(),
            )));
        }
        sources.push(Source::Level(super::iter::LevelIter::new(
            pick.next_inputs.clone(),
        )));
        let mut merge = MergingIter::new(sources);
        merge.seek_to_first().await?;
        let mut gc = Gc::new(
            self.snapshots.pinned(),
            bottommost,
            self.opts.expiry_filter.clone(),
        );
        let mut outputs: Vec<Rc<Table<F>>> = Vec::new();
        let mut writer: Option<(u64, SstWriter<F>)> = None;
        let mut family = None;
        let mut last_user_key: Vec<u8> = Vec::new();
        let mut internal_key = Vec::new();
        // The kept entry's value, copied out: the merge moves on before the write finishes.
        let mut value: Vec<u8> = Vec::new();
        let mut processed = 0usize;
        while merge.valid() {
            if self.closing.get() {
                return Err(LsmError::Closed);
            }
            let keep = {
                let cur = merge.current()?;
                let decision = gc.decide(cur.user_key, cur.seq, cur.kind, cur.value);
                let new_user_key = cur.user_key != &last_user_key[..];
                if new_user_key {
                    last_user_key.clear();
                    last_user_key.extend_from_slice(cur.user_key);
                }
                match decision {
                    Decision::Keep(kind) => {
                        internal_key.clear();
                        key::encode_into(&mut internal_key, cur.user_key, cur.seq, kind);
                        value.clear();
                        if kind == ValueKind::Put {
                            value.extend_from_slice(cur.value);
                        }
                        Some(new_user_key)
                    }
                    Decision::Drop => None,
                }
            };
            if let Some(new_user_key) = keep {
                // Cut output files only between user keys, so that sorted levels never split a
                // key's versions across two files.
                let full = writer
                    .as_ref()
                    .is_some_and(|(_, w)| w.estimated_file_bytes() >= self.opts.target_file_bytes);
                let new_family = new_user_key && self.starts_family(&mut family, &last_user_key);
                if (full && new_user_key) || (new_family && writer.is_some()) {
                    let (id, w) = writer.take().expect("full writer");
                    outputs.push(self.finish_output(id, pick.output_level, w).await?);
                }
                let w = self.open_output(&mut writer).await?;
                w.add(&internal_key, &value).await?;
            }
            merge.next().await?;
            processed += 1;
            if processed.is_multiple_of(ENTRIES_PER_YIELD_CHECK) {
                self.rt.yield_if_needed().await;
            }
        }
        if let Some((id, w)) = writer.take() {
            outputs.push(self.finish_output(id, pick.output_level, w).await?);
        }
        if self.opts.expiry_filter.is_some() {
            // The filter judged entries by the shard's state in memory (a popped list element,
            // a deleted collection's orphans), which may be ahead of the log on disk: make that
            // state durable before the entries it dropped are gone, or a crash could bring back
            // a collection whose elements compaction already discarded.
            self.wal.sync_all().await?;
        }
        self.install_compaction(&pick, outputs).await
    }

    /// The table being written (its file id and writer), started if there is none.
    async fn open_output<'w>(
        &self,
        writer: &'w mut Option<(u64, SstWriter<F>)>,
    ) -> Result<&'w mut SstWriter<F>, LsmError> {
        if writer.is_none() {
            let id = self.alloc_file_id();
            let w = SstWriter::create(&self.fs, &self.table_path(id), self.opts.sst).await?;
            *writer = Some((id, w));
        }
        let (_, w) = writer.as_mut().expect("started above");
        Ok(w)
    }

    /// Whether the compaction filter would turn any entry of a level-0 trivial move's files
    /// into a tombstone (an expired value, an element of a deleted collection or popped off a
    /// list). Such files are merged instead, so that garbage which was garbage when the file was
    /// flushed is dropped on its way down, as it was when every level-0 file was merged. Reads
    /// the files, but writes nothing: cheaper than the merge it saves, which would also write.
    async fn filter_applies_to_any(&self, pick: &Pick<F>) -> Result<bool, LsmError> {
        let Some(filter) = self.opts.expiry_filter.as_ref() else {
            return Ok(false);
        };
        if pick.level != 0 {
            return Ok(false);
        }
        for table in &pick.inputs {
            let mut iter = table.reader.iter();
            iter.seek_to_first().await?;
            let mut processed = 0usize;
            while iter.valid() {
                if self.closing.get() {
                    return Err(LsmError::Closed);
                }
                let parsed = key::parse(iter.key()).ok_or_else(|| LsmError::Corrupt {
                    reason: format!("table {} holds a malformed internal key", table.meta.id),
                })?;
                if parsed.kind == ValueKind::Put && filter(parsed.user_key, iter.value()) {
                    return Ok(true);
                }
                iter.next().await?;
                processed += 1;
                if processed.is_multiple_of(ENTRIES_PER_YIELD_CHECK) {
                    self.rt.yield_if_needed().await;
                }
            }
        }
        Ok(false)
    }

    /// Whether `user_key` (in key order after the keys seen so far) starts a new key family
    /// ([`LsmOptions::key_family`]) and so a new output table; `family` tracks the current one.
    fn starts_family(&self, family: &mut Option<u8>, user_key: &[u8]) -> bool {
        let Some(family_of) = self.opts.key_family else {
            return false;
        };
        let next = family_of(user_key);
        let starts = family.is_some_and(|current| current != next);
        assert!(
            family.is_none_or(|current| current <= next),
            "key families must not decrease in key order"
        );
        *family = Some(next);
        starts
    }

    async fn finish_output(
        &self,
        id: u64,
        level: usize,
        writer: SstWriter<F>,
    ) -> Result<Rc<Table<F>>, LsmError> {
        let info = writer.finish().await?;
        self.open_table(id, level as u8, &info).await
    }

    async fn install_compaction(
        &self,
        pick: &Pick<F>,
        outputs: Vec<Rc<Table<F>>>,
    ) -> Result<(), LsmError> {
        let inputs: Vec<(usize, &Rc<Table<F>>)> = pick
            .inputs
            .iter()
            .map(|t| (pick.level, t))
            .chain(pick.next_inputs.iter().map(|t| (pick.output_level, t)))
            .collect();
        let edit = VersionEdit {
            added: outputs.iter().map(|t| t.meta.clone()).collect(),
            deleted: inputs.iter().map(|(l, t)| (*l as u8, t.meta.id)).collect(),
            next_file_id: Some(self.next_file_id.get()),
            ..VersionEdit::default()
        };
        self.apply_edit(edit).await?;
        {
            let mut state = self.state.borrow_mut();
            let mut version = (*state.version).clone();
            for (level, table) in &inputs {
                version
                    .remove(*level, table.meta.id)
                    .expect("compaction inputs are in the current version");
            }
            for table in &outputs {
                version.add(pick.output_level, table.clone());
            }
            version.assert_invariants();
            state.version = Rc::new(version);
        }
        self.obsolete
            .borrow_mut()
            .extend(inputs.iter().map(|(_, t)| Rc::clone(t)));
        let mut stats = self.stats.borrow_mut();
        stats.compactions += 1;
        stats.compaction_bytes_read += pick.input_bytes();
        stats.compaction_bytes_written += outputs.iter().map(|t| t.meta.file_bytes).sum::<u64>();
        drop(stats);
        self.changed.notify_all();
        Ok(())
    }

    async fn trivial_move(&self, pick: Pick<F>) -> Result<(), LsmError> {
        let moved: Vec<FileMeta> = pick
            .inputs
            .iter()
            .map(|table| FileMeta {
                level: pick.output_level as u8,
                ..table.meta.clone()
            })
            .collect();
        let edit = VersionEdit {
            added: moved.clone(),
            deleted: moved.iter().map(|m| (pick.level as u8, m.id)).collect(),
            ..VersionEdit::default()
        };
        self.apply_edit(edit).await?;
        {
            let mut state = self.state.borrow_mut();
            let mut version = (*state.version).clone();
            for (meta, table) in moved.into_iter().zip(&pick.inputs) {
                version
                    .remove(pick.level, meta.id)
                    .expect("moved table is in the current version");
                let reader = table.reader.clone();
                version.add(pick.output_level, Rc::new(Table { meta, reader }));
            }
            version.assert_invariants();
            state.version = Rc::new(version);
        }
        self.stats.borrow_mut().trivial_moves += pick.inputs.len() as u64;
        self.changed.notify_all();
        Ok(())
    }

    /// Deletes retired tables no reader holds any more.
    async fn purge_obsolete(&self) -> Result<(), LsmError> {
        let unused: Vec<Rc<Table<F>>> = {
            let mut obsolete = self.obsolete.borrow_mut();
            let (unused, used) = obsolete.drain(..).partition(|t| Rc::strong_count(t) == 1);
            *obsolete = used;
            unused
        };
        if unused.is_empty() {
            return Ok(());
        }
        for table in unused {
            let path = self.table_path(table.meta.id);
            drop(table);
            self.fs.remove(&path).await.map_err(LsmError::io(&path))?;
        }
        let dir = sst_dir(&self.dir);
        self.fs.sync_dir(&dir).await.map_err(LsmError::io(&dir))?;
        Ok(())
    }
}

fn visible_value((_, kind, value): (SeqNo, ValueKind, Bytes)) -> Option<Bytes> {
    (kind == ValueKind::Put).then_some(value)
}

/// WAL replay into memtables.
struct Replay {
    /// Oldest first; the last is the active one.
    memtables: Vec<Rc<Memtable>>,
    last_seq: SeqNo,
    memtable_bytes: usize,
}

impl Replay {
    fn apply(&mut self, lsn: u64, kind: u8, payload: &[u8]) -> Result<(), crate::wal::WalError> {
        let replay_error = |reason: String| crate::wal::WalError::Replay { lsn, reason };
        if kind != WAL_KIND_BATCH {
            return Err(replay_error(format!("unknown record kind {kind:#x}")));
        }
        let decoded = batch::decode(Bytes::copy_from_slice(payload)).map_err(replay_error)?;
        let active = self.memtables.last().expect("an active memtable").clone();
        for (i, (kind, key, value)) in decoded.entries.into_iter().enumerate() {
            // Nothing reads during replay, so no older version needs keeping.
            active.insert_superseding(key, decoded.base_seq + i as u64, kind, value, None);
        }
        active.note_lsn(lsn);
        if let Some((_, seq_max)) = active.seq_range() {
            self.last_seq = self.last_seq.max(seq_max);
        }
        if active.used_bytes() >= self.memtable_bytes {
            self.memtables
                .push(Rc::new(Memtable::with_expected_bytes(self.memtable_bytes)));
        }
        Ok(())
    }
}

async fn open_tables<F: FileSystem>(
    fs: &F,
    sst_dir: &Path,
    state: &ManifestState,
    cache: &Rc<BlockCache>,
) -> Result<Version<F>, LsmError> {
    let mut version = Version::default();
    for (level, files) in state.levels.iter().enumerate() {
        for meta in files {
            let path = sst_dir.join(manifest::sst_file_name(meta.id));
            let reader = SstReader::open(fs, &path, meta.id, cache.clone()).await?;
            version.add(
                level,
                Rc::new(Table {
                    meta: meta.clone(),
                    reader,
                }),
            );
        }
    }
    version.assert_invariants();
    Ok(version)
}

async fn remove_leftover_tables<F: FileSystem>(
    fs: &F,
    sst_dir: &Path,
    state: &ManifestState,
) -> Result<(), LsmError> {
    let names = fs.list(sst_dir).await.map_err(LsmError::io(sst_dir))?;
    let leftovers = manifest::obsolete_files(state, &names);
    for name in &leftovers {
        tracing::info!(file = %name, "removing a table no version references");
        let path = sst_dir.join(name);
        fs.remove(&path).await.map_err(LsmError::io(&path))?;
    }
    if !leftovers.is_empty() {
        fs.sync_dir(sst_dir).await.map_err(LsmError::io(sst_dir))?;
    }
    Ok(())
}

/// Batches with at least this many entries go into the memtable in key order.
const KEY_ORDER_INSERT_ENTRIES_MIN: usize = 64;

/// One batch entry as the memtable takes it: (kind, key, value) and whether it is scan-only.
type MarkedEntry = ((ValueKind, Bytes, Bytes), bool);

/// Calls `insert` with each of a batch's entries and its position (its sequence number's
/// offset), in key order when the batch is large and not ordered already. Sequence numbers
/// stay those of the logged order, so the order of insertion changes nothing a reader sees
/// (the memtable orders a key's versions by sequence number); but keys in order extend the
/// memtable's ascending runs instead of landing at random places in its tree (a bulk load
/// of hashed keys: one tree insert each, most of them cache misses).
fn insert_in_key_order(batch: WriteBatch, mut insert: impl FnMut(usize, MarkedEntry)) {
    if batch.len() < KEY_ORDER_INSERT_ENTRIES_MIN
        || batch.entries().windows(2).all(|w| w[0].1 <= w[1].1)
    {
        for (i, entry) in batch.into_entries_marked().enumerate() {
            insert(i, entry);
        }
        return;
    }
    // A permutation is sorted, not the entries: they are large, and a stable sort of them
    // needed a scratch copy of the whole batch (fresh pages: about a fifth of a million-row
    // commit). Ties keep the logged order: a key's versions go in in order, the common case
    // of the supersede check.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    {
        let entries = batch.entries();
        order.sort_unstable_by(|&a, &b| entries[a].1.cmp(&entries[b].1).then(a.cmp(&b)));
    }
    let (mut entries, scan_only) = batch.into_parts();
    for i in order {
        let entry = std::mem::replace(
            &mut entries[i],
            (ValueKind::Put, Bytes::new(), Bytes::new()),
        );
        insert(i, (entry, scan_only[i]));
    }
}
