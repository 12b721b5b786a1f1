//! The manifest: which SSTable files are live, per level, and the counters recovery needs (next
//! file id, last sequence number, flushed WAL lsn), such that a crash at any instant leaves one
//! consistent set of live files.
//!
//! It is a log of [`VersionEdit`]s kept in a [`Wal`] of its own (`<shard dir>/manifest/`, small
//! segments, no preallocation): each edit is one record, appended and synced before
//! [`Manifest::apply`] returns, so the WAL's checksums, torn-tail cutting and refusal of damage
//! in the middle of the log apply unchanged. Replaying the edits in order rebuilds the
//! [`ManifestState`]. To bound the log, [`Manifest::maybe_rewrite`] rolls to a new segment,
//! writes the whole state there as one *snapshot* edit, and removes the older segments. The
//! record layout is in `engine/FORMAT.md`, section "Manifest".

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use crate::fs::FileSystem;
use crate::lsm::key;
use crate::wal::lock::LocalLock;
use crate::wal::{Wal, WalError, WalOptions, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX};

/// Number of levels: L0 (overlapping files, newest last) and L1..L6 (sorted, disjoint).
pub const LEVEL_COUNT: usize = 7;
/// WAL record kind of a manifest record (ASCII 'M'); any other kind is corruption.
pub const MANIFEST_RECORD_KIND: u8 = 0x4D;
/// Name of the manifest's directory inside a shard's directory.
pub const MANIFEST_DIR_NAME: &str = "manifest";
/// Segment size of the manifest's log: edits are small, snapshots a few MiB at most.
pub const MANIFEST_SEGMENT_BYTES: u64 = 4 << 20;
/// [`Manifest::maybe_rewrite`] writes a snapshot once the records after the last snapshot
/// exceed this many bytes (or the snapshot's own size, when larger), bounding the log to about
/// twice the state's size plus one segment.
pub const MANIFEST_REWRITE_BYTES: u64 = 1 << 20;
/// Largest encoded edit (a snapshot lists every live file: ~100 bytes plus two keys each).
pub const MANIFEST_EDIT_BYTES_MAX: usize = 256 << 20;
/// Most files one edit may add or delete.
pub const EDIT_FILES_MAX: usize = 1 << 20;
/// Longest smallest/largest internal key a file may record.
pub const INTERNAL_KEY_BYTES_MAX: usize = key::USER_KEY_BYTES_MAX + key::TRAILER_BYTES;
/// Longest LEB128 encoding of a u64.
const VARINT_BYTES_MAX: usize = 10;

const _: () = assert!(MANIFEST_EDIT_BYTES_MAX <= RECORD_PAYLOAD_BYTES_MAX);
const _: () = assert!(LEVEL_COUNT <= u8::MAX as usize);

// Edit field tags (see FORMAT.md). Never reuse a number: unknown tags are refused.
const TAG_SNAPSHOT: u8 = 1;
const TAG_NEXT_FILE_ID: u8 = 2;
const TAG_LAST_SEQ: u8 = 3;
const TAG_FLUSHED_LSN: u8 = 4;
const TAG_DELETED_FILE: u8 = 5;
const TAG_ADDED_FILE: u8 = 6;

/// Manifest errors.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The log itself: I/O, a failed log, or a record whose checksum fails mid-log
    /// ([`WalError::Corrupt`] names the segment file and offset).
    #[error("manifest log: {0}")]
    Wal(#[from] WalError),
    /// A record that verifies but does not decode, or an edit that does not apply to the state
    /// before it (deleting a missing file, a duplicate id, overlapping files in L1+...).
    #[error("manifest corrupt: {reason}")]
    Corrupt { reason: String },
    /// [`Manifest::apply`] refused an edit that would break the state's invariants; nothing
    /// was written.
    #[error("version edit refused: {reason}")]
    InvalidEdit { reason: String },
    #[error("version edit of {len} bytes exceeds the limit of {limit} bytes")]
    EditTooLarge { len: usize, limit: usize },
}

/// One SSTable file as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub id: u64,
    pub level: u8,
    pub file_bytes: u64,
    pub entries: u64,
    pub tombstones: u64,
    /// Smallest and largest internal keys in the file (see `lsm::key`).
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub seq_min: u64,
    pub seq_max: u64,
}

/// A change to the set of live files, and to the counters. One manifest record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    pub added: Vec<FileMeta>,
    pub deleted: Vec<(u8, u64)>,
    pub next_file_id: Option<u64>,
    pub last_seq: Option<u64>,
    /// Every data-WAL record with an lsn up to this one is in SSTables.
    pub flushed_lsn: Option<u64>,
    /// A full-state record: replaces everything before it. Written only by the manifest.
    pub is_snapshot: bool,
}

/// The live files and counters: the result of replaying every edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestState {
    /// `LEVEL_COUNT` levels. L0 sorted by `(seq_max, id)`, newest last; L1+ sorted by smallest
    /// key, and no two files of a level share a user key.
    pub levels: Vec<Vec<FileMeta>>,
    /// Greater than every live file id.
    pub next_file_id: u64,
    /// At least every live file's `seq_max`.
    pub last_seq: u64,
    pub flushed_lsn: u64,
}

impl Default for ManifestState {
    fn default() -> ManifestState {
        ManifestState {
            levels: vec![Vec::new(); LEVEL_COUNT],
            next_file_id: 1,
            last_seq: 0,
            flushed_lsn: 0,
        }
    }
}

impl FileMeta {
    /// Checks the file's own fields (keys parse and are ordered, counts, level).
    pub fn check(&self) -> Result<(), String> {
        let id = self.id;
        if usize::from(self.level) >= LEVEL_COUNT {
            return Err(format!("file {id}: level {} out of range", self.level));
        }
        for bound in [&self.smallest, &self.largest] {
            if bound.len() > INTERNAL_KEY_BYTES_MAX || key::parse(bound).is_none() {
                return Err(format!("file {id}: key bound is not an internal key"));
            }
        }
        if key::compare(&self.smallest, &self.largest).is_gt() {
            return Err(format!("file {id}: smallest key after largest"));
        }
        if self.seq_min > self.seq_max || self.tombstones > self.entries {
            return Err(format!(
                "file {id}: seq {}..={} or tombstones {} of {} entries out of order",
                self.seq_min, self.seq_max, self.tombstones, self.entries
            ));
        }
        Ok(())
    }
}

impl ManifestState {
    pub fn new() -> ManifestState {
        ManifestState::default()
    }

    /// Applies one edit. Deleting a file that is not live, adding an id that is, a counter going
    /// backwards, or a result that breaks [`ManifestState::check_invariants`] is
    /// [`ManifestError::Corrupt`], and leaves the state unchanged. Deletions apply before
    /// additions, so one edit can move a file between levels.
    pub fn apply(&mut self, edit: &VersionEdit) -> Result<(), ManifestError> {
        *self = self
            .applied(edit)
            .map_err(|reason| ManifestError::Corrupt { reason })?;
        Ok(())
    }

    /// The state after `edit` (copying: edits are rare next to the reads of a state).
    fn applied(&self, edit: &VersionEdit) -> Result<ManifestState, String> {
        let mut next = if edit.is_snapshot {
            check_snapshot_shape(edit)?;
            ManifestState::default()
        } else {
            self.clone()
        };
        for &(level, id) in &edit.deleted {
            next.remove_file(level, id)?;
        }
        let mut live: HashSet<u64> = next.live_file_ids().collect();
        for file in &edit.added {
            file.check()?;
            if !live.insert(file.id) {
                return Err(format!("file {} added twice", file.id));
            }
            next.insert_file(file.clone());
        }
        next.next_file_id = advance("next_file_id", self.next_file_id, edit.next_file_id)?;
        next.last_seq = advance("last_seq", self.last_seq, edit.last_seq)?;
        next.flushed_lsn = advance("flushed_lsn", self.flushed_lsn, edit.flushed_lsn)?;
        next.check_invariants()?;
        Ok(next)
    }

    fn remove_file(&mut self, level: u8, id: u64) -> Result<(), String> {
        let files = self
            .levels
            .get_mut(usize::from(level))
            .ok_or_else(|| format!("delete of file {id} from level {level} out of range"))?;
        let at = files
            .iter()
            .position(|file| file.id == id)
            .ok_or_else(|| format!("delete of file {id} that is not in L{level}"))?;
        files.remove(at);
        Ok(())
    }

    /// Inserts at the file's place in its level's order (the caller checked the file).
    fn insert_file(&mut self, file: FileMeta) {
        let files = &mut self.levels[usize::from(file.level)];
        let at = if file.level == 0 {
            files.partition_point(|f| (f.seq_max, f.id) < (file.seq_max, file.id))
        } else {
            files.partition_point(|f| key::compare(&f.smallest, &file.smallest).is_lt())
        };
        files.insert(at, file);
    }

    /// Ids of every live file, level by level.
    pub fn live_file_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels.iter().flatten().map(|file| file.id)
    }

    /// Number of live files.
    pub fn file_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Checks every invariant: `LEVEL_COUNT` levels, each file valid and in the level it names,
    /// ids unique and below `next_file_id`, `seq_max` at most `last_seq`, L0 sorted by
    /// `(seq_max, id)`, L1+ sorted by smallest key with no user key in two files.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.levels.len() != LEVEL_COUNT {
            return Err(format!("{} levels, not {LEVEL_COUNT}", self.levels.len()));
        }
        let mut ids = HashSet::with_capacity(self.file_count());
        for (level, files) in self.levels.iter().enumerate() {
            for file in files {
                file.check()?;
                self.check_file_counters(level, file)?;
                if !ids.insert(file.id) {
                    return Err(format!("file {} is live twice", file.id));
                }
            }
            check_level_order(level, files)?;
        }
        Ok(())
    }

    fn check_file_counters(&self, level: usize, file: &FileMeta) -> Result<(), String> {
        if usize::from(file.level) != level {
            return Err(format!(
                "file {} of L{} is in L{level}",
                file.id, file.level
            ));
        }
        if file.id >= self.next_file_id {
            return Err(format!(
                "file {} not below next_file_id {}",
                file.id, self.next_file_id
            ));
        }
        if file.seq_max > self.last_seq {
            return Err(format!(
                "file {} has seq_max {} above last_seq {}",
                file.id, file.seq_max, self.last_seq
            ));
        }
        Ok(())
    }

    /// The whole state as one edit (what a rewrite writes).
    pub fn snapshot_edit(&self) -> VersionEdit {
        VersionEdit {
            added: self.levels.iter().flatten().cloned().collect(),
            deleted: Vec::new(),
            next_file_id: Some(self.next_file_id),
            last_seq: Some(self.last_seq),
            flushed_lsn: Some(self.flushed_lsn),
            is_snapshot: true,
        }
    }
}

fn check_snapshot_shape(edit: &VersionEdit) -> Result<(), String> {
    if !edit.deleted.is_empty() {
        return Err("snapshot deletes files".to_string());
    }
    if edit.next_file_id.is_none() || edit.last_seq.is_none() || edit.flushed_lsn.is_none() {
        return Err("snapshot lacks a counter".to_string());
    }
    Ok(())
}

/// A counter's new value: unchanged when the edit leaves it out; never backwards.
fn advance(name: &str, current: u64, new: Option<u64>) -> Result<u64, String> {
    match new {
        None => Ok(current),
        Some(new) if new >= current => Ok(new),
        Some(new) => Err(format!("{name} goes back from {current} to {new}")),
    }
}

fn check_level_order(level: usize, files: &[FileMeta]) -> Result<(), String> {
    for pair in files.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let ordered = if level == 0 {
            (a.seq_max, a.id) < (b.seq_max, b.id)
        } else {
            key::user_key(&a.largest) < key::user_key(&b.smallest)
                && key::compare(&a.smallest, &b.smallest).is_lt()
        };
        if !ordered {
            return Err(format!(
                "L{level}: files {} and {} overlap or are out of order",
                a.id, b.id
            ));
        }
    }
    Ok(())
}

// ---- Encoding -------------------------------------------------------------------------------

/// Encodes an edit as a manifest record payload (FORMAT.md, "Version edit").
pub fn encode_edit(edit: &VersionEdit) -> Vec<u8> {
    assert!(edit.added.len() <= EDIT_FILES_MAX && edit.deleted.len() <= EDIT_FILES_MAX);
    let mut out = Vec::with_capacity(64 + edit.added.len() * 64);
    if edit.is_snapshot {
        out.push(TAG_SNAPSHOT);
    }
    for (tag, value) in [
        (TAG_NEXT_FILE_ID, edit.next_file_id),
        (TAG_LAST_SEQ, edit.last_seq),
        (TAG_FLUSHED_LSN, edit.flushed_lsn),
    ] {
        if let Some(value) = value {
            out.push(tag);
            put_varint(&mut out, value);
        }
    }
    for &(level, id) in &edit.deleted {
        assert!(usize::from(level) < LEVEL_COUNT);
        out.push(TAG_DELETED_FILE);
        out.push(level);
        put_varint(&mut out, id);
    }
    for file in &edit.added {
        encode_file(&mut out, file);
    }
    out
}

fn encode_file(out: &mut Vec<u8>, file: &FileMeta) {
    assert!(usize::from(file.level) < LEVEL_COUNT);
    out.push(TAG_ADDED_FILE);
    put_varint(out, file.id);
    out.push(file.level);
    for value in [file.file_bytes, file.entries, file.tombstones] {
        put_varint(out, value);
    }
    for bound in [&file.smallest, &file.largest] {
        assert!(bound.len() <= INTERNAL_KEY_BYTES_MAX);
        put_varint(out, bound.len() as u64);
        out.extend_from_slice(bound);
    }
    put_varint(out, file.seq_min);
    put_varint(out, file.seq_max);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes a record payload. Checks the syntax only (tags, lengths, limits, levels); whether
/// the edit makes sense is [`ManifestState::apply`]'s business. Never panics.
pub fn decode_edit(bytes: &[u8]) -> Result<VersionEdit, String> {
    if bytes.len() > MANIFEST_EDIT_BYTES_MAX {
        return Err(format!("edit of {} bytes over the limit", bytes.len()));
    }
    let mut reader = Reader { bytes, pos: 0 };
    let mut edit = VersionEdit::default();
    while reader.pos < bytes.len() {
        let at = reader.pos;
        let tag = reader.u8()?;
        decode_field(&mut reader, tag, &mut edit)
            .map_err(|reason| format!("{reason} (tag {tag} at byte {at})"))?;
    }
    Ok(edit)
}

fn decode_field(reader: &mut Reader<'_>, tag: u8, edit: &mut VersionEdit) -> Result<(), String> {
    match tag {
        TAG_SNAPSHOT if !edit.is_snapshot => edit.is_snapshot = true,
        TAG_NEXT_FILE_ID => set_once(&mut edit.next_file_id, reader.varint()?)?,
        TAG_LAST_SEQ => set_once(&mut edit.last_seq, reader.varint()?)?,
        TAG_FLUSHED_LSN => set_once(&mut edit.flushed_lsn, reader.varint()?)?,
        TAG_DELETED_FILE if edit.deleted.len() < EDIT_FILES_MAX => {
            let level = reader.level()?;
            edit.deleted.push((level, reader.varint()?));
        }
        TAG_ADDED_FILE if edit.added.len() < EDIT_FILES_MAX => {
            edit.added.push(decode_file(reader)?)
        }
        TAG_SNAPSHOT | TAG_DELETED_FILE | TAG_ADDED_FILE => {
            return Err("field repeated beyond its limit".to_string())
        }
        _ => return Err("unknown tag".to_string()),
    }
    Ok(())
}

fn set_once(field: &mut Option<u64>, value: u64) -> Result<(), String> {
    if field.replace(value).is_some() {
        return Err("field given twice".to_string());
    }
    Ok(())
}

fn decode_file(reader: &mut Reader<'_>) -> Result<FileMeta, String> {
    Ok(FileMeta {
        id: reader.varint()?,
        level: reader.level()?,
        file_bytes: reader.varint()?,
        entries: reader.varint()?,
        tombstones: reader.varint()?,
        smallest: reader.key()?,
        largest: reader.key()?,
        seq_min: reader.varint()?,
        seq_max: reader.varint()?,
    })
}

/// A bounds-checked cursor over a record payload.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.pos).ok_or("edit truncated")?;
        self.pos += 1;
        Ok(byte)
    }

    fn level(&mut self) -> Result<u8, String> {
        let level = self.u8()?;
        if usize::from(level) >= LEVEL_COUNT {
            return Err(format!("level {level} out of range"));
        }
        Ok(level)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for index in 0..VARINT_BYTES_MAX {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7F);
            // The 10th byte may carry only the top bit of a u64.
            if index == VARINT_BYTES_MAX - 1 && bits > 1 {
                return Err("varint overflows u64".to_string());
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn key(&mut self) -> Result<Vec<u8>, String> {
        let len = self.varint()?;
        if len > INTERNAL_KEY_BYTES_MAX as u64 {
            return Err(format!("key of {len} bytes over the limit"));
        }
        let end = self.pos + len as usize;
        let bytes = self.bytes.get(self.pos..end).ok_or("key truncated")?;
        self.pos = end;
        Ok(bytes.to_vec())
    }
}

// ---- The manifest log ---------------------------------------------------------------------------

fn wal_options() -> WalOptions {
    WalOptions {
        segment_bytes_max: MANIFEST_SEGMENT_BYTES,
        preallocate_bytes: 0,
        replay_from_lsn: 0,
    }
}

/// A shard's manifest. Methods take `&self` (keep it in an `Rc`); edits and rewrites run one at
/// a time (an internal async lock). It keeps its own copy of the state, to refuse an edit that
/// would not replay. Do not cancel (drop) `apply` or a rewrite mid-way: like a cancelled WAL
/// flush, that fails the manifest, and the shard must restart.
pub struct Manifest<F: FileSystem> {
    wal: Wal<F>,
    state: RefCell<ManifestState>,
    lock: LocalLock,
    /// Record bytes (headers included) after the last snapshot, and that snapshot's.
    bytes_since_snapshot: Cell<u64>,
    snapshot_bytes: Cell<u64>,
}

/// What replay learned besides the state.
#[derive(Default)]
struct ReplayTally {
    bytes_since_snapshot: u64,
    snapshot_bytes: u64,
    snapshot_lsn: Option<u64>,
}

impl<F: FileSystem> Manifest<F> {
    /// Opens the manifest in `dir` (creating an empty one when absent), replays it, and returns
    /// it with the state it holds.
    pub async fn open(fs: F, dir: PathBuf) -> Result<(Manifest<F>, ManifestState), ManifestError> {
        let mut state = ManifestState::default();
        let mut tally = ReplayTally::default();
        let mut failure = None;
        let context = dir.display().to_string();
        let opened = Wal::open(
            fs,
            dir,
            wal_options(),
            |lsn, kind, payload| match replay_record(&mut state, &mut tally, lsn, kind, payload) {
                Ok(()) => Ok(()),
                Err(reason) => {
                    let reason = format!("{context}: record lsn {lsn}: {reason}");
                    failure = Some(ManifestError::Corrupt {
                        reason: reason.clone(),
                    });
                    Err(WalError::Replay { lsn, reason })
                }
            },
        )
        .await;
        if let Some(failure) = failure {
            return Err(failure);
        }
        let wal = opened?;
        if let Some(lsn) = tally.snapshot_lsn {
            // A crash between writing a snapshot and removing what it replaces left them.
            wal.remove_segments_before(lsn).await?;
        }
        let manifest = Manifest {
            wal,
            state: RefCell::new(state.clone()),
            lock: LocalLock::new(),
            bytes_since_snapshot: Cell::new(tally.bytes_since_snapshot),
            snapshot_bytes: Cell::new(tally.snapshot_bytes),
        };
        Ok((manifest, state))
    }

    /// Appends `edit` and syncs it: durable when this returns. Refused, with nothing written,
    /// when it does not apply to the current state ([`ManifestError::InvalidEdit`]). The
    /// caller applies it to its own copy of the state afterwards.
    pub async fn apply(&self, edit: &VersionEdit) -> Result<(), ManifestError> {
        assert!(
            !edit.is_snapshot,
            "snapshots are written by the manifest itself"
        );
        let _locked = self.lock.lock().await;
        let next = self
            .state
            .borrow()
            .applied(edit)
            .map_err(|reason| ManifestError::InvalidEdit { reason })?;
        let (_, record_bytes) = self.append_synced(edit).await?;
        *self.state.borrow_mut() = next;
        self.bytes_since_snapshot
            .set(self.bytes_since_snapshot.get() + record_bytes);
        Ok(())
    }

    /// Rewrites the log as one snapshot of the state when the records since the last snapshot
    /// exceed [`MANIFEST_REWRITE_BYTES`] (or the snapshot's size). `state` must equal the
    /// manifest's own (asserted: a caller whose copy diverged has a bug). Returns whether it
    /// rewrote.
    pub async fn maybe_rewrite(&self, state: &ManifestState) -> Result<bool, ManifestError> {
        let _locked = self.lock.lock().await;
        assert!(
            *self.state.borrow() == *state,
            "maybe_rewrite given a state other than the manifest's"
        );
        let threshold = MANIFEST_REWRITE_BYTES.max(self.snapshot_bytes.get());
        if self.bytes_since_snapshot.get() <= threshold {
            return Ok(false);
        }
        self.rewrite_locked().await?;
        Ok(true)
    }

    /// Rewrites the log as one snapshot now.
    pub async fn rewrite(&self) -> Result<(), ManifestError> {
        let _locked = self.lock.lock().await;
        self.rewrite_locked().await
    }

    /// Roll, write the snapshot first in its own segment, sync, then drop the older segments.
    /// A crash before the snapshot is durable leaves the old log whole; after, the snapshot
    /// replaces whatever older segments survive (they go at the next open).
    async fn rewrite_locked(&self) -> Result<(), ManifestError> {
        assert!(self.lock.is_locked());
        self.wal.roll().await?;
        let snapshot = self.state.borrow().snapshot_edit();
        let (lsn, record_bytes) = self.append_synced(&snapshot).await?;
        assert_eq!(self.wal.segment_first_lsns().last(), Some(&lsn));
        self.wal.remove_segments_before(lsn).await?;
        self.snapshot_bytes.set(record_bytes);
        self.bytes_since_snapshot.set(0);
        Ok(())
    }

    /// Appends one edit and waits until it is durable; returns its lsn and record bytes.
    async fn append_synced(&self, edit: &VersionEdit) -> Result<(u64, u64), ManifestError> {
        let payload = encode_edit(edit);
        if payload.len() > MANIFEST_EDIT_BYTES_MAX {
            return Err(ManifestError::EditTooLarge {
                len: payload.len(),
                limit: MANIFEST_EDIT_BYTES_MAX,
            });
        }
        let lsn = self.wal.append(MANIFEST_RECORD_KIND, &payload)?;
        self.wal.sync_to(lsn).await?;
        Ok((lsn, (RECORD_HEADER_BYTES + payload.len()) as u64))
    }

    /// Runs `f` on the manifest's state (do not hold on to it across an `.await`).
    pub fn with_state<R>(&self, f: impl FnOnce(&ManifestState) -> R) -> R {
        f(&self.state.borrow())
    }

    /// Record bytes written after the last snapshot.
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.bytes_since_snapshot.get()
    }

    /// Number of segment files of the manifest's log.
    pub fn segment_count(&self) -> usize {
        self.wal.segment_count()
    }

    /// Whether the log has failed (every later edit errors; restart to recover).
    pub fn is_failed(&self) -> bool {
        self.wal.is_failed()
    }
}

/// Replays one record into `state`.
fn replay_record(
    state: &mut ManifestState,
    tally: &mut ReplayTally,
    lsn: u64,
    kind: u8,
    payload: &[u8],
) -> Result<(), String> {
    if kind != MANIFEST_RECORD_KIND {
        return Err(format!("record kind {kind:#04x} is not a manifest record"));
    }
    let edit = decode_edit(payload)?;
    *state = state.applied(&edit)?;
    let record_bytes = (RECORD_HEADER_BYTES + payload.len()) as u64;
    if edit.is_snapshot {
        tally.snapshot_lsn = Some(lsn);
        tally.snapshot_bytes = record_bytes;
        tally.bytes_since_snapshot = 0;
    } else {
        tally.bytes_since_snapshot += record_bytes;
    }
    Ok(())
}

/// Every edit of the manifest in `dir`, with its lsn, decoded but not applied (for `helios
/// inspect`). Opens the log as recovery does, so a torn tail is cut. `dir` must exist.
pub async fn read_all<F: FileSystem>(
    fs: F,
    dir: PathBuf,
) -> Result<Vec<(u64, VersionEdit)>, ManifestError> {
    if let Err(source) = fs.list(&dir).await {
        return Err(WalError::Io { path: dir, source }.into());
    }
    let mut edits = Vec::new();
    Wal::open(fs, dir, wal_options(), |lsn, kind, payload| {
        if kind != MANIFEST_RECORD_KIND {
            let reason = format!("record kind {kind:#04x} is not a manifest record");
            return Err(WalError::Replay { lsn, reason });
        }
        let edit = decode_edit(payload).map_err(|reason| WalError::Replay { lsn, reason })?;
        edits.push((lsn, edit));
        Ok(())
    })
    .await?;
    Ok(edits)
}

// ---- Display ------------------------------------------------------------------------------------

impl fmt::Display for VersionEdit {
    /// One line: `snapshot next_file_id=9 last_seq=120 flushed_lsn=40 -L0#3 +L1#8[..] ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.is_snapshot {
            parts.push("snapshot".to_string());
        }
        for (name, value) in [
            ("next_file_id", self.next_file_id),
            ("last_seq", self.last_seq),
            ("flushed_lsn", self.flushed_lsn),
        ] {
            if let Some(value) = value {
                parts.push(format!("{name}={value}"));
            }
        }
        parts.extend(
            self.deleted
                .iter()
                .map(|(level, id)| format!("-L{level}#{id}")),
        );
        parts.extend(self.added.iter().map(|file| format!("+{file}")));
        if parts.is_empty() {
            return f.write_str("(empty edit)");
        }
        f.write_str(&parts.join(" "))
    }
}

impl fmt::Display for FileMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "L{}#{}[{}..{} seq={}..{} entries={} tombstones={} bytes={}]",
            self.level,
            self.id,
            DisplayKey(&self.smallest),
            DisplayKey(&self.largest),
            self.seq_min,
            self.seq_max,
            self.entries,
            self.tombstones,
            self.file_bytes
        )
    }
}

/// An internal key as `"user key"@seq` (escaped), or hex when it does not parse.
struct DisplayKey<'a>(&'a [u8]);

impl fmt::Display for DisplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match key::parse(self.0) {
            Some(parsed) => {
                let kind = if parsed.kind == key::ValueKind::Delete {
                    "del"
                } else {
                    ""
                };
                write!(
                    f,
                    "\"{}\"@{}{kind}",
                    parsed.user_key.escape_ascii(),
                    parsed.seq
                )
            }
            None => {
                f.write_str("0x")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

// ---- SSTable file names -----------------------------------------------------------------------

/// The file name of SSTable `id`.
pub fn sst_file_name(id: u64) -> String {
    format!("{id:016}.sst")
}

/// The id of an SSTable file name (only the exact form [`sst_file_name`] makes).
pub fn parse_sst_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".sst")?;
    if !(16..=20).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = digits.parse().ok()?;
    (sst_file_name(id) == name).then_some(id)
}

/// The `.sst` files among `names` that no live file of `state` is (left by a crash between
/// writing a file and the edit adding it, or between an edit deleting it and its removal).
pub fn obsolete_files(state: &ManifestState, names: &[String]) -> Vec<String> {
    let live: HashSet<u64> = state.live_file_ids().collect();
    names
        .iter()
        .filter(|name| parse_sst_file_name(name).is_some_and(|id| !live.contains(&id)))
        .cloned()
        .collect()
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
