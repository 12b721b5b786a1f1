//! The memtable: the newest writes of a shard, ordered by internal key, in memory.
//!
//! An ordered map from `(user key, sequence descending)` to the entry. It is single-threaded
//! and shared by `Rc`; iterators do not borrow it across an `.await` (they copy a small batch of
//! entries at a time and re-seek after it), so writes may land while a scan is in progress —
//! they carry newer sequence numbers than the scan's snapshot and are skipped by it.
//!
//! Entries that arrive in ascending order (a serial key, an RPUSH) go to an [`AscendingRun`]
//! beside the map instead; every reader merges the two.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::key::{SeqNo, ValueKind};
use crate::chunked::ChunkedDeque;

/// Bytes per entry besides its key and value, for [`Memtable::used_bytes`]: the entry itself
/// (88 bytes in a run's chunk; about 120 in a B-tree node, which random inserts leave about
/// two-thirds full) and the allocator's rounding of its key and value. Measured with a
/// counting allocator: a Redis list element (35-byte key, 3-byte value) costs 118 bytes
/// requested, 128 allocated. A memtable of `memtable_bytes` then holds about that much memory
/// (with 48 here it held twice as much: the first memtables of a fresh server were most of
/// its footprint, and every fresh page is zeroed by the kernel on first touch).
const ENTRY_OVERHEAD_BYTES: usize = 104;
/// Bytes of a key's slot in the newest-version index (80, and the slack of the table's load
/// factor) and of the shared headers its key and value clones need (the bytes themselves
/// are shared with the ordered map, not copied).
const NEWEST_OVERHEAD_BYTES: usize = 140;
/// Key and value bytes assumed per entry when sizing the newest-version index.
const EXPECTED_KEY_VALUE_BYTES: usize = 32;
/// The most keys the newest-version index is sized for up front.
const EXPECTED_KEYS_MAX: usize = 1 << 20;
/// Entries an iterator copies out of the map per refill.
pub const ITER_BATCH_ENTRIES: usize = 64;
/// Entries per chunk of an [`AscendingRun`]: it grows a chunk at a time, so growing never
/// copies what is already there (a memtable's run reaches tens of megabytes).
const RUN_CHUNK_ENTRIES: usize = 4096;
/// Ascending runs a memtable keeps (see [`Runs`]); every reader merges them all.
const RUNS_MAX: usize = 4;

/// A map key: user key ascending, then sequence number descending.
///
/// The sequence number is a `Cell` so that [`Memtable::insert_superseding`] can renumber a
/// key's newest version in place: raising the first version of a user key keeps it first, so
/// the map's order never changes under it.
///
/// `head` holds the key's first eight bytes (zero-padded), so that a comparison whose heads
/// differ is decided without reading the key's bytes, which live in another allocation: keys
/// of SQL rows and Redis values start with a prefix and a hash token, so nearly every
/// comparison of a B-tree descent among random keys is decided there. Reading the bytes
/// instead cost a cache miss per key compared, and std's B-tree compares a node's keys one
/// by one: `Memtable::insert_superseding` was 9 % of a single-row UPDATE's shard time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemKey {
    head: u64,
    pub user_key: Bytes,
    pub seq: Cell<SeqNo>,
}

impl MemKey {
    pub fn new(user_key: Bytes, seq: SeqNo) -> MemKey {
        MemKey {
            head: key_head(&user_key),
            user_key,
            seq: Cell::new(seq),
        }
    }
}

/// A key's first eight bytes as a big-endian number, zero-padded. Where two heads differ they
/// order as the keys do: at the first differing byte either both keys have a byte (which then
/// decides), or the key with the padding zero has ended there and is a proper prefix of the
/// other, so it sorts first. Equal heads decide nothing.
#[inline]
fn key_head(user_key: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let len = user_key.len().min(8);
    head[..len].copy_from_slice(&user_key[..len]);
    u64::from_be_bytes(head)
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.user_key.cmp(&other.user_key))
            .then_with(|| Reverse(self.seq.get()).cmp(&Reverse(other.seq.get())))
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemValue {
    pub kind: ValueKind,
    pub value: Bytes,
}

/// One entry as iterators hand it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemEntry {
    pub user_key: Bytes,
    pub seq: SeqNo,
    pub kind: ValueKind,
    pub value: Bytes,
}

/// What the memtable knows about a key at a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible version is a value.
    Found(Bytes),
    /// The newest visible version is a tombstone: the key is absent, look no further.
    Deleted,
    /// No visible version here: look in older data.
    Absent,
}

/// A key's newest version in the memtable.
#[derive(Debug)]
struct Newest {
    seq: SeqNo,
    kind: ValueKind,
    value: Bytes,
}

/// Entries that each arrived after every entry before them in internal-key order, or before
/// every one of them: appended or prepended, never searched on the way in.
///
/// A Redis RPUSH writes its element key at the right edge of the list's keys, an LPUSH at the
/// left edge; a table with a serial key, a COPY into a table without one (hidden row ids), and
/// the rewrite of ADD PRIMARY KEY (rows in key order) write theirs at the right edge of the
/// table's keys. In the ordered map an edge is the costliest place to insert: std's B-tree
/// searches each node linearly, so the new key is compared with every key of every node on
/// the path (`memcmp` was 8 % of a pipelined RPUSH's shard time, 15 % of an ADD PRIMARY KEY's),
/// and nodes split at an edge stay half full (an LPUSH's entries took twice their size). Here
/// it is one comparison with the run's first or last entry. Entries that extend neither end
/// go to the map; readers merge the two. A version superseded in place (see `MemKey`) keeps
/// its place in either.
#[derive(Debug, Default)]
struct AscendingRun {
    entries: ChunkedDeque<(MemKey, MemValue), RUN_CHUNK_ENTRIES>,
}

impl AscendingRun {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn first(&self) -> Option<&MemKey> {
        self.entries.get(0).map(|(key, _)| key)
    }

    fn last(&self) -> Option<&MemKey> {
        let len = self.entries.len();
        self.entries.get(len.checked_sub(1)?).map(|(key, _)| key)
    }

    /// Appends the entry if it sorts after every entry here; hands it back otherwise.
    fn try_push(&mut self, key: MemKey, value: MemValue) -> Result<(), (MemKey, MemValue)> {
        if self.last().is_some_and(|last| key <= *last) {
            return Err((key, value));
        }
        self.entries.push_back((key, value));
        Ok(())
    }

    /// Prepends the entry if it sorts before every entry here; hands it back otherwise.
    fn try_push_front(&mut self, key: MemKey, value: MemValue) -> Result<(), (MemKey, MemValue)> {
        if self.first().is_some_and(|first| key >= *first) {
            return Err((key, value));
        }
        self.entries.push_front((key, value));
        Ok(())
    }

    /// The number of leading entries for which `before` holds (it must hold for a prefix).
    fn partition_point(&self, before: impl Fn(&MemKey) -> bool) -> usize {
        let (mut low, mut high) = (0, self.entries.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if before(&self.entries[mid].0) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The entry with exactly this key.
    fn find_mut(&mut self, key: &MemKey) -> Option<(&MemKey, &mut MemValue)> {
        let at = self.partition_point(|probe| probe < key);
        let (found, value) = self.entries.get_mut(at)?;
        (*found == *key).then_some((&*found, value))
    }

    /// The entries after `lower`, in order.
    fn range_from<'a>(
        &'a self,
        lower: Bound<&MemKey>,
    ) -> impl Iterator<Item = (&'a MemKey, &'a MemValue)> + 'a {
        let start = self.partition_point(|key| match lower {
            Bound::Unbounded => false,
            Bound::Included(bound) => key < bound,
            Bound::Excluded(bound) => key <= bound,
        });
        self.entries
            .range(start..self.entries.len())
            .map(|(key, value)| (key, value))
    }
}

/// A few ascending runs, so that several ascending streams of writes each keep one: rows of a
/// table being rewritten and the catalog key written between them (which sorts after every
/// row), tombstones of the old rows after the new ones, pushes to a handful of lists.
#[derive(Debug, Default)]
struct Runs {
    runs: Vec<AscendingRun>,
}

impl Runs {
    fn len(&self) -> usize {
        self.runs.iter().map(AscendingRun::len).sum()
    }

    /// Appends the entry to the run whose last key is the greatest below it (keeping the runs
    /// that end higher free for lower streams), else prepends it to the run whose first key is
    /// the least above it, else starts a run; hands it back when no run takes it and none is
    /// free.
    fn try_push(&mut self, key: MemKey, value: MemValue) -> Result<(), (MemKey, MemValue)> {
        let below = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, run)| run.last().is_some_and(|last| *last < key))
            .max_by(|(_, a), (_, b)| a.last().cmp(&b.last()))
            .map(|(at, _)| at);
        if let Some(at) = below {
            return self.runs[at].try_push(key, value);
        }
        let above = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, run)| run.first().is_some_and(|first| key < *first))
            .min_by(|(_, a), (_, b)| a.first().cmp(&b.first()))
            .map(|(at, _)| at);
        match above {
            Some(at) => self.runs[at].try_push_front(key, value),
            None if self.runs.len() < RUNS_MAX => {
                let mut run = AscendingRun::default();
                run.try_push(key, value)?;
                self.runs.push(run);
                Ok(())
            }
            None => Err((key, value)),
        }
    }

    fn find_mut(&mut self, key: &MemKey) -> Option<(&MemKey, &mut MemValue)> {
        self.runs.iter_mut().find_map(|run| run.find_mut(key))
    }

    /// The entries of every run after `lower`, merged in order.
    fn range_from<'a>(
        &'a self,
        lower: Bound<&MemKey>,
    ) -> Box<dyn Iterator<Item = (&'a MemKey, &'a MemValue)> + 'a> {
        let mut merged: Box<dyn Iterator<Item = (&'a MemKey, &'a MemValue)> + 'a> =
            Box::new(std::iter::empty());
        for run in &self.runs {
            merged = Box::new(merge_ordered(merged, run.range_from(lower)));
        }
        merged
    }
}

/// Merges two iterators each in internal-key order (their keys are distinct: a sequence number
/// is never reused).
fn merge_ordered<'a>(
    left: impl Iterator<Item = (&'a MemKey, &'a MemValue)>,
    right: impl Iterator<Item = (&'a MemKey, &'a MemValue)>,
) -> impl Iterator<Item = (&'a MemKey, &'a MemValue)> {
    let mut left = left.peekable();
    let mut right = right.peekable();
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some((l, _)), Some((r, _))) if r < l => right.next(),
        (Some(_), _) => left.next(),
        (None, _) => right.next(),
    })
}

/// A retired memtable's entries, borrowed in place (see [`Memtable::frozen_entries`]).
pub struct FrozenEntries<'a> {
    map: std::cell::Ref<'a, BTreeMap<MemKey, MemValue>>,
    runs: std::cell::Ref<'a, Runs>,
}

impl FrozenEntries<'_> {
    /// Every entry in internal-key order.
    pub fn iter(&self) -> impl Iterator<Item = (&MemKey, &MemValue)> {
        merge_ordered(self.map.iter(), self.runs.range_from(Bound::Unbounded))
    }
}

#[derive(Debug, Default)]
pub struct Memtable {
    map: RefCell<BTreeMap<MemKey, MemValue>>,
    /// Entries appended in order (see [`Runs`]); every other entry is in `map`.
    runs: RefCell<Runs>,
    /// Each key's newest version, by key: a point read at the latest snapshot (nearly all of
    /// them) is one hash probe instead of a descent through the ordered map, whose key
    /// comparisons each chase a pointer (a memtable of 100k rows: ~3.5 µs of a ~27 µs
    /// PostgreSQL point select). A key absent here has no version at all in this memtable.
    newest: RefCell<hashbrown::HashMap<Bytes, Newest>>,
    used_bytes: Cell<usize>,
    /// The first bytes of the keys written scan-only (a 256-bit set): such keys have no entry
    /// in `newest`, so point reads of keys starting with one of these bytes search the map,
    /// and writes to them never supersede in place.
    scan_only_first_bytes: Cell<[u64; 4]>,
    /// Highest WAL lsn whose entries are in this memtable (0: none).
    max_lsn: Cell<u64>,
    seq_min: Cell<SeqNo>,
    seq_max: Cell<SeqNo>,
}

impl Memtable {
    pub fn new() -> Memtable {
        Memtable {
            seq_min: Cell::new(SeqNo::MAX),
            ..Memtable::default()
        }
    }

    /// A memtable that will hold about `bytes` of [`Memtable::used_bytes`] before it is
    /// retired: its newest-version index is sized for that up front, because growing it by
    /// doubling re-hashes every key again (~5% of a pipelined LPUSH's profile). Only the
    /// index's control bytes are touched now; its slots are paged in as keys arrive.
    pub fn with_expected_bytes(bytes: usize) -> Memtable {
        let keys = (bytes
            / (ENTRY_OVERHEAD_BYTES + NEWEST_OVERHEAD_BYTES + EXPECTED_KEY_VALUE_BYTES))
            .min(EXPECTED_KEYS_MAX);
        Memtable {
            newest: RefCell::new(hashbrown::HashMap::with_capacity(keys)),
            ..Memtable::new()
        }
    }

    /// Makes room in the newest-version index for `keys` more keys at once: a batch bigger
    /// than the memtable was sized for (a committed bulk load) would otherwise grow it by
    /// doubling, re-hashing every key each time.
    pub fn reserve_keys(&self, keys: usize) {
        self.newest.borrow_mut().reserve(keys);
    }

    /// Inserts one entry of a key that only scans read (a Redis list element: lists are
    /// resident, so nothing ever point-reads one). It skips the newest-version index: a hash
    /// probe, and its slot's memory, for every pushed element. Keys that share its first byte
    /// then take the map's slower paths (`get` searches the map; writes do not supersede), so
    /// the writer must write every version of the key this way.
    pub fn insert_scan_only(&self, user_key: Bytes, seq: SeqNo, kind: ValueKind, value: Bytes) {
        let first = *user_key.first().expect("scan-only keys are not empty");
        let mut set = self.scan_only_first_bytes.get();
        set[usize::from(first / 64)] |= 1 << (first % 64);
        self.scan_only_first_bytes.set(set);
        self.add_version(user_key, seq, kind, value, false);
    }

    /// Whether (`user_key`, `seq`) is the newest version of its key in the map.
    fn is_first_version(&self, user_key: &Bytes, seq: SeqNo) -> bool {
        let map = self.map.borrow();
        let at = MemKey::new(user_key.clone(), seq);
        let first_in_map = map
            .range(..&at)
            .next_back()
            .is_none_or(|(before, _)| before.user_key != *user_key);
        let newest = MemKey::new(user_key.clone(), SeqNo::MAX);
        let runs = self.runs.borrow();
        let first_in_run = runs
            .range_from(Bound::Included(&newest))
            .next()
            .is_none_or(|(key, _)| key.user_key != *user_key || key.seq.get() <= seq);
        first_in_map && first_in_run
    }

    /// Whether keys starting like `user_key` may have been written scan-only.
    fn maybe_scan_only(&self, user_key: &[u8]) -> bool {
        user_key.first().is_some_and(|&first| {
            self.scan_only_first_bytes.get()[usize::from(first / 64)] & (1 << (first % 64)) != 0
        })
    }

    /// Inserts one entry. A sequence number is never reused, so the key is new to the map.
    pub fn insert(&self, user_key: Bytes, seq: SeqNo, kind: ValueKind, value: Bytes) {
        let (_, new_key) = self.note_newest(&user_key, seq, kind, &value, |_| false);
        self.add_version(user_key, seq, kind, value, new_key);
    }

    /// Inserts one entry of a new write, and drops the key's previous newest version here when
    /// no reader can see it any more: it is older than the new one, and no pinned snapshot
    /// (`newest_pinned` is the newest; None: none is pinned) lies at or after it. Reads without
    /// a pinned snapshot finish with the memtables before they first yield, so they cannot
    /// miss it. A key overwritten over and over (a counter, a hot hash field, redis-benchmark's
    /// single key) then keeps one entry instead of filling the memtable with dead versions that
    /// flush and compaction would only throw away — RocksDB's in-place update, done by
    /// replacing the entry.
    pub fn insert_superseding(
        &self,
        user_key: Bytes,
        seq: SeqNo,
        kind: ValueKind,
        value: Bytes,
        newest_pinned: Option<SeqNo>,
    ) {
        let unread = |old: SeqNo| old < seq && newest_pinned.is_none_or(|pin| pin < old);
        let (superseded, new_key) = self.note_newest(&user_key, seq, kind, &value, unread);
        let Some(old) = superseded else {
            self.add_version(user_key, seq, kind, value, new_key);
            return;
        };
        if self.maybe_scan_only(&user_key) && !self.is_first_version(&user_key, old.seq) {
            // A scan-only write made a newer version the index never saw: renumbering the
            // recorded one would break the map's order.
            self.add_version(user_key, seq, kind, value, false);
            return;
        }
        let value_len = value.len();
        // One search instead of a remove and an insert: the old newest version becomes the new
        // one where it stands (see `MemKey`), in the map or in the run.
        let old_key = MemKey::new(user_key, old.seq);
        let mut map = self.map.borrow_mut();
        match map.entry(old_key) {
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                slot.key().seq.set(seq);
                *slot.get_mut() = MemValue { kind, value };
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                let mut runs = self.runs.borrow_mut();
                let (key, slot) = runs
                    .find_mut(slot.key())
                    .expect("the newest version of a key is in the map or a run");
                key.seq.set(seq);
                *slot = MemValue { kind, value };
            }
        }
        let used = self.used_bytes.get() + value_len - old.value.len();
        self.used_bytes.set(used);
        self.seq_max.set(self.seq_max.get().max(seq));
    }

    /// Makes (`seq`, `kind`, `value`) the key's newest version if it is newer than the one
    /// recorded, in one probe of the index. Returns the version it replaced when `supersede`
    /// says no reader can see that one any more (the caller then renumbers its map entry
    /// instead of adding one), and whether the key was new to this memtable.
    fn note_newest(
        &self,
        user_key: &Bytes,
        seq: SeqNo,
        kind: ValueKind,
        value: &Bytes,
        supersede: impl Fn(SeqNo) -> bool,
    ) -> (Option<Newest>, bool) {
        let version = || Newest {
            seq,
            kind,
            value: value.clone(),
        };
        match self.newest.borrow_mut().entry(user_key.clone()) {
            hashbrown::hash_map::Entry::Occupied(mut slot) => {
                let newest = slot.get_mut();
                assert_ne!(newest.seq, seq, "sequence number {seq} reused");
                if supersede(newest.seq) {
                    return (Some(std::mem::replace(newest, version())), false);
                }
                if seq > newest.seq {
                    *newest = version();
                }
                (None, false)
            }
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(version());
                (None, true)
            }
        }
    }

    /// Adds a version to the run if it extends it, else to the ordered map (its index entry is
    /// already recorded).
    fn add_version(
        &self,
        user_key: Bytes,
        seq: SeqNo,
        kind: ValueKind,
        value: Bytes,
        new_key: bool,
    ) {
        let mut bytes = user_key.len() + value.len() + ENTRY_OVERHEAD_BYTES;
        if new_key {
            bytes += NEWEST_OVERHEAD_BYTES;
        }
        let appended = self
            .runs
            .borrow_mut()
            .try_push(MemKey::new(user_key, seq), MemValue { kind, value });
        if let Err((key, value)) = appended {
            let previous = self.map.borrow_mut().insert(key, value);
            assert!(previous.is_none(), "sequence number {seq} reused");
        }
        self.count_version(bytes, seq);
    }

    /// Accounts for a version just added, of `bytes` with sequence number `seq`.
    fn count_version(&self, bytes: usize, seq: SeqNo) {
        self.used_bytes.set(self.used_bytes.get() + bytes);
        self.seq_min.set(self.seq_min.get().min(seq));
        self.seq_max.set(self.seq_max.get().max(seq));
    }

    /// Every entry in internal-key order, borrowed in place. Only for a memtable that takes no
    /// more writes (retired, being flushed): a write while the borrow is held would panic.
    pub fn frozen_entries(&self) -> FrozenEntries<'_> {
        FrozenEntries {
            map: self.map.borrow(),
            runs: self.runs.borrow(),
        }
    }

    /// Records that the entries of WAL record `lsn` are in this memtable.
    pub fn note_lsn(&self, lsn: u64) {
        self.max_lsn.set(self.max_lsn.get().max(lsn));
    }

    pub fn max_lsn(&self) -> u64 {
        self.max_lsn.get()
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes.get()
    }

    pub fn len(&self) -> usize {
        self.map.borrow().len() + self.runs.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (lowest, highest) sequence number held; None when empty.
    pub fn seq_range(&self) -> Option<(SeqNo, SeqNo)> {
        (!self.is_empty()).then(|| (self.seq_min.get(), self.seq_max.get()))
    }

    /// The newest version of `user_key` with `seq <= snapshot`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Lookup {
        if self.maybe_scan_only(user_key) {
            return self.get_from_map(user_key, snapshot);
        }
        match self.newest.borrow().get(user_key) {
            None => return Lookup::Absent,
            Some(newest) if newest.seq <= snapshot => {
                return match newest.kind {
                    ValueKind::Put => Lookup::Found(newest.value.clone()),
                    ValueKind::Delete => Lookup::Deleted,
                };
            }
            // Written after the snapshot: an older version may be visible.
            Some(_) => {}
        }
        self.get_from_map(user_key, snapshot)
    }

    /// The newest version of `user_key` with `seq <= snapshot`, searched in the ordered map.
    fn get_from_map(&self, user_key: &[u8], snapshot: SeqNo) -> Lookup {
        let map = self.map.borrow();
        let runs = self.runs.borrow();
        let start = MemKey::new(Bytes::copy_from_slice(user_key), snapshot);
        let newest_visible = merge_ordered(
            map.range(&start..),
            runs.range_from(Bound::Included(&start)),
        )
        .next();
        match newest_visible {
            Some((key, value)) if key.user_key == user_key => match value.kind {
                ValueKind::Put => Lookup::Found(value.value.clone()),
                ValueKind::Delete => Lookup::Deleted,
            },
            _ => Lookup::Absent,
        }
    }

    /// Frees a retired memtable a batch of entries at a time, yielding between batches: freeing
    /// a full one at once (hundreds of thousands of allocations) stalled its shard for
    /// 100-600 ms under load, every connection with it.
    pub async fn drop_gradually<R: crate::rt::Runtime>(self, rt: R) {
        const DROP_BATCH_ENTRIES: usize = 1024;
        let Memtable {
            map, newest, runs, ..
        } = self;
        let mut newest = newest.into_inner();
        let mut dropped = 0usize;
        for entry in newest.drain() {
            drop(entry);
            dropped += 1;
            if dropped.is_multiple_of(DROP_BATCH_ENTRIES) {
                rt.yield_if_needed().await;
            }
        }
        for chunk in runs
            .into_inner()
            .runs
            .into_iter()
            .flat_map(|run| run.entries.into_chunks())
        {
            dropped += chunk.len();
            drop(chunk);
            rt.yield_if_needed().await;
        }
        // Consuming iteration frees each node once it is passed; pop_first would re-balance the
        // tree after every entry.
        for entry in map.into_inner() {
            drop(entry);
            dropped += 1;
            if dropped.is_multiple_of(DROP_BATCH_ENTRIES) {
                rt.yield_if_needed().await;
            }
        }
    }

    /// Key and value bytes of the entries (every version) whose user keys lie in
    /// `[start, end)` (`end` None: no bound).
    pub fn bytes_in_range(&self, start: &[u8], end: Option<&[u8]>) -> u64 {
        let map = self.map.borrow();
        let runs = self.runs.borrow();
        let from = MemKey::new(Bytes::copy_from_slice(start), super::key::SEQ_MAX);
        let lower = Bound::Included(&from);
        merge_ordered(map.range((lower, Bound::Unbounded)), runs.range_from(lower))
            .take_while(|(k, _)| end.is_none_or(|end| &k.user_key[..] < end))
            .map(|(k, v)| (k.user_key.len() + v.value.len()) as u64)
            .sum()
    }

    /// Up to `limit` entries at or after `from` (None: from the start), in internal-key order.
    /// `inclusive` says whether an entry equal to `from` is included.
    pub fn entries_from(
        &self,
        from: Option<&MemKey>,
        inclusive: bool,
        limit: usize,
    ) -> Vec<MemEntry> {
        let map = self.map.borrow();
        let runs = self.runs.borrow();
        let lower = match from {
            None => Bound::Unbounded,
            Some(key) if inclusive => Bound::Included(key),
            Some(key) => Bound::Excluded(key),
        };
        merge_ordered(map.range((lower, Bound::Unbounded)), runs.range_from(lower))
            .take(limit)
            .map(|(key, value)| MemEntry {
                user_key: key.user_key.clone(),
                seq: key.seq.get(),
                kind: value.kind,
                value: value.value.clone(),
            })
            .collect()
    }
}

/// A cursor over a memtable in internal-key order (all versions; the merging iterator above
/// applies the snapshot).
pub struct MemIter {
    table: std::rc::Rc<Memtable>,
    batch: Vec<MemEntry>,
    at: usize,
    /// The batch came back short: nothing follows it.
    exhausted: bool,
}

impl MemIter {
    pub fn new(table: std::rc::Rc<Memtable>) -> MemIter {
        MemIter {
            table,
            batch: Vec::new(),
            at: 0,
            exhausted: true,
        }
    }

    pub fn seek_to_first(&mut self) {
        self.fill(None, true);
    }

    /// Positions at the first entry >= (user_key, seq) in internal-key order.
    pub fn seek(&mut self, user_key: &[u8], seq: SeqNo) {
        let target = MemKey::new(Bytes::copy_from_slice(user_key), seq);
        self.fill(Some(&target), true);
    }

    pub fn next(&mut self) {
        assert!(self.valid());
        self.at += 1;
        if self.at == self.batch.len() && !self.exhausted {
            let last = self.batch.last().expect("non-empty batch");
            let from = MemKey::new(last.user_key.clone(), last.seq);
            self.fill(Some(&from), false);
        }
    }

    pub fn valid(&self) -> bool {
        self.at < self.batch.len()
    }

    pub fn entry(&self) -> &MemEntry {
        &self.batch[self.at]
    }

    fn fill(&mut self, from: Option<&MemKey>, inclusive: bool) {
        self.batch = self.table.entries_from(from, inclusive, ITER_BATCH_ENTRIES);
        self.exhausted = self.batch.len() < ITER_BATCH_ENTRIES;
        self.at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, Strategy};
    use std::rc::Rc;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn get_sees_the_newest_version_at_the_snapshot() {
        let table = Memtable::new();
        table.insert(b("k"), 1, ValueKind::Put, b("one"));
        table.insert(b("k"), 5, ValueKind::Delete, Bytes::new());
        table.insert(b("k"), 9, ValueKind::Put, b("nine"));
        assert_eq!(table.get(b"k", 0), Lookup::Absent);
        assert_eq!(table.get(b"k", 4), Lookup::Found(b("one")));
        assert_eq!(table.get(b"k", 5), Lookup::Deleted);
        assert_eq!(table.get(b"k", 100), Lookup::Found(b("nine")));
        assert_eq!(table.get(b"j", 100), Lookup::Absent);
        assert_eq!(table.seq_range(), Some((1, 9)));
    }

    #[test]
    fn scan_only_keys_are_found_by_point_reads_and_never_renumbered() {
        let table = Memtable::new();
        // An indexed key sharing the first byte, written before and after scan-only writes.
        table.insert_superseding(b("l1"), 1, ValueKind::Put, b("a"), None);
        table.insert_scan_only(b("l1"), 2, ValueKind::Put, b("b"));
        table.insert_scan_only(b("l2"), 3, ValueKind::Put, b("c"));
        assert_eq!(
            table.get(b"l1", 100),
            Lookup::Found(b("b")),
            "not the index's stale one"
        );
        assert_eq!(table.get(b"l1", 1), Lookup::Found(b("a")));
        assert_eq!(table.get(b"l2", 100), Lookup::Found(b("c")));
        assert_eq!(table.get(b"l3", 100), Lookup::Absent);
        // The index still records seq 1 for l1: superseding it in place would put seq 4
        // behind seq 2 in the map. It is added instead, and the order holds.
        table.insert_superseding(b("l1"), 4, ValueKind::Put, b("d"), None);
        let entries = table.entries_from(None, true, 10);
        let order: Vec<(&[u8], SeqNo)> = entries.iter().map(|e| (&e.user_key[..], e.seq)).collect();
        assert_eq!(
            order,
            vec![
                (&b"l1"[..], 4),
                (&b"l1"[..], 2),
                (&b"l1"[..], 1),
                (&b"l2"[..], 3)
            ]
        );
        assert_eq!(table.get(b"l1", 100), Lookup::Found(b("d")));
        // A key with another first byte keeps the fast path and supersedes in place.
        table.insert_superseding(b("k"), 5, ValueKind::Put, b("x"), None);
        table.insert_superseding(b("k"), 6, ValueKind::Put, b("y"), None);
        assert_eq!(table.len(), 5);
        assert_eq!(table.get(b"k", 100), Lookup::Found(b("y")));
    }

    #[test]
    fn scan_only_keys_in_ascending_order_skip_the_map() {
        let table = Memtable::new();
        for i in 0..RUN_CHUNK_ENTRIES as u64 * 2 + 3 {
            let key = Bytes::from(format!("r{i:06}"));
            table.insert_scan_only(key, i + 1, ValueKind::Put, b("v"));
        }
        assert_eq!(table.map.borrow().len(), 0, "every push extended the run");
        assert_eq!(table.runs.borrow().runs[0].entries.chunk_count(), 3);
        // A key inside a run's range starts a run of its own; keys below every run's first
        // key go to the front of the nearest one.
        table.insert_scan_only(b("r000005"), 100_000, ValueKind::Delete, Bytes::new());
        assert_eq!(table.runs.borrow().runs.len(), 2);
        table.insert(b("a"), 100_001, ValueKind::Put, b("x"));
        table.insert(b("00"), 100_002, ValueKind::Put, b("z"));
        table.insert(b("0"), 100_003, ValueKind::Put, b("y"));
        assert_eq!(table.map.borrow().len(), 0);
        assert_eq!(table.runs.borrow().runs.len(), 2, "prepended, not new runs");
        assert_eq!(table.get(b"00", SeqNo::MAX), Lookup::Found(b("z")));
        assert_eq!(table.get(b"r000005", SeqNo::MAX), Lookup::Deleted);
        assert_eq!(table.get(b"r000005", 99_999), Lookup::Found(b("v")));
        let frozen = table.frozen_entries();
        let keys: Vec<(&[u8], SeqNo)> = frozen
            .iter()
            .map(|(key, _)| (&key.user_key[..], key.seq.get()))
            .take(10)
            .collect();
        assert_eq!(
            keys,
            [
                (&b"0"[..], 100_003),
                (b"00", 100_002),
                (b"a", 100_001),
                (b"r000000", 1),
                (b"r000001", 2),
                (b"r000002", 3),
                (b"r000003", 4),
                (b"r000004", 5),
                (b"r000005", 100_000),
                (b"r000005", 6),
            ]
        );
    }

    #[test]
    fn a_key_inside_every_run_goes_to_the_map_once_no_run_is_free() {
        let table = Memtable::new();
        // Nested ranges: each pair lies inside the runs before it, so each starts a run.
        for (seq, key) in ["b1", "b9", "b2", "b8", "b3", "b7", "b4", "b6"]
            .iter()
            .enumerate()
        {
            table.insert(b(key), seq as u64 + 1, ValueKind::Put, b("v"));
        }
        assert_eq!(table.runs.borrow().runs.len(), RUNS_MAX);
        assert_eq!(table.map.borrow().len(), 0);
        table.insert(b("b5"), 9, ValueKind::Put, b("v"));
        assert_eq!(
            table.map.borrow().len(),
            1,
            "inside every run, with none free"
        );
        let frozen = table.frozen_entries();
        let keys: Vec<&[u8]> = frozen.iter().map(|(key, _)| &key.user_key[..]).collect();
        assert_eq!(
            keys,
            [
                &b"b1"[..],
                b"b2",
                b"b3",
                b"b4",
                b"b5",
                b"b6",
                b"b7",
                b"b8",
                b"b9"
            ]
        );
    }

    #[test]
    fn keys_in_descending_order_are_prepended_to_a_run() {
        let table = Memtable::new();
        let count = RUN_CHUNK_ENTRIES as u64 * 2 + 5;
        for i in 0..count {
            let key = Bytes::from(format!("l{:06}", count - i));
            table.insert_scan_only(key, i + 1, ValueKind::Put, b("v"));
        }
        assert_eq!(
            table.map.borrow().len(),
            0,
            "every push went to the run's front"
        );
        assert_eq!(table.runs.borrow().runs.len(), 1);
        let frozen = table.frozen_entries();
        let keys: Vec<Bytes> = frozen.iter().map(|(key, _)| key.user_key.clone()).collect();
        assert_eq!(keys.len() as u64, count);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        drop(frozen);
        let from = MemKey::new(b("l000010"), SeqNo::MAX);
        let found = table.entries_from(Some(&from), true, 2);
        let found: Vec<&[u8]> = found.iter().map(|e| &e.user_key[..]).collect();
        assert_eq!(
            found,
            [&b"l000010"[..], b"l000011"],
            "a seek lands inside the run"
        );
    }

    /// A key sharing its first byte with scan-only keys (a hash field beside a list, say)
    /// whose newest version is a run's first entry is still superseded in place, not stacked
    /// in front of itself (found in review: 1000 writes left 1001 entries).
    #[test]
    fn a_run_first_version_is_superseded_beside_scan_only_keys() {
        let table = Memtable::new();
        table.insert_scan_only(b("kz"), 1, ValueKind::Put, b("element"));
        for seq in 2..1002 {
            table.insert_superseding(b("ka"), seq, ValueKind::Put, b("v"), None);
        }
        assert!(table.len() <= 3, "{} entries", table.len());
        assert_eq!(table.get(b"ka", SeqNo::MAX), Lookup::Found(b("v")));
        assert_eq!(table.get(b"kz", SeqNo::MAX), Lookup::Found(b("element")));
    }

    #[test]
    fn versions_in_the_run_are_superseded_in_place() {
        let table = Memtable::new();
        for (i, key) in ["k1", "k2", "k3"].into_iter().enumerate() {
            table.insert_superseding(b(key), i as u64 + 1, ValueKind::Put, b("v"), None);
        }
        assert_eq!(
            table.map.borrow().len(),
            0,
            "ascending keys went to the run"
        );
        table.insert_superseding(b("k2"), 10, ValueKind::Put, b("new"), None);
        // k1 again: a newer version sorts before the run's first entry, so a pinned snapshot's
        // extra version goes to the run's front, and is then superseded in place there.
        table.insert_superseding(b("k1"), 11, ValueKind::Put, b("pinned"), Some(5));
        table.insert_superseding(b("k1"), 12, ValueKind::Delete, Bytes::new(), Some(5));
        assert_eq!(table.len(), 4);
        assert_eq!(table.runs.borrow().runs.len(), 1);
        assert_eq!(table.map.borrow().len(), 0);
        assert_eq!(table.get(b"k2", 100), Lookup::Found(b("new")));
        assert_eq!(
            table.get(b"k2", 9),
            Lookup::Absent,
            "superseded: no reader sees it"
        );
        assert_eq!(table.get(b"k1", 100), Lookup::Deleted);
        assert_eq!(table.get(b"k1", 5), Lookup::Found(b("v")));
        let order: Vec<(Bytes, SeqNo)> = table
            .entries_from(None, true, 10)
            .into_iter()
            .map(|e| (e.user_key, e.seq))
            .collect();
        assert_eq!(
            order,
            vec![(b("k1"), 12), (b("k1"), 1), (b("k2"), 10), (b("k3"), 3)]
        );
    }

    proptest::proptest! {
        /// Map keys order exactly as (byte-wise user key, sequence descending) does, across
        /// lengths around the eight-byte head, shared prefixes and zero bytes (which the
        /// head's padding must not confuse with a key's end).
        #[test]
        fn map_keys_compare_as_byte_strings(
            a in proptest::collection::vec(0u8..4, 0..12),
            b in proptest::collection::vec(0u8..4, 0..12),
            seq_a in 0u64..3,
            seq_b in 0u64..3,
        ) {
            let key = |k: &[u8], seq| MemKey::new(Bytes::copy_from_slice(k), seq);
            let expected = a.cmp(&b).then(seq_b.cmp(&seq_a));
            proptest::prop_assert_eq!(key(&a, seq_a).cmp(&key(&b, seq_b)), expected);
            proptest::prop_assert_eq!(key(&b, seq_b).cmp(&key(&a, seq_a)), expected.reverse());
            proptest::prop_assert_eq!(key(&a, seq_a).cmp(&key(&a, seq_a)), Ordering::Equal);
        }
    }

    /// One memtable operation of the model test: a key from a small space (two first bytes, so
    /// that scan-only and indexed keys share and do not share a first byte), written indexed or
    /// scan-only, as a put or a delete.
    fn op_strategy() -> impl Strategy<Value = (u8, u8, bool, bool)> {
        (
            0u8..3,
            0u8..12,
            any::<bool>(),
            proptest::bool::weighted(0.2),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// The map and the run together read exactly as one ordered map of every version.
        #[test]
        fn memtable_reads_match_an_ordered_model(
            ops in proptest::collection::vec(op_strategy(), 1..300),
            probes in proptest::collection::vec((0u8..3, 0u8..12, 0u64..320, any::<bool>()), 1..40),
        ) {
            let table = Rc::new(Memtable::new());
            let mut model: BTreeMap<(Bytes, Reverse<SeqNo>), (ValueKind, Bytes)> = BTreeMap::new();
            let key_of = |first: u8, second: u8| Bytes::from(vec![b'a' + first, second]);
            for (i, (first, second, scan_only, delete)) in ops.into_iter().enumerate() {
                // Scan-only keys only ever start with 'b' or 'c', as the writer promises for a
                // key it writes scan-only; 'a' keys are indexed.
                let scan_only = scan_only && first > 0;
                let seq = i as SeqNo + 1;
                let key = key_of(first, second);
                let (kind, value) = if delete {
                    (ValueKind::Delete, Bytes::new())
                } else {
                    (ValueKind::Put, Bytes::from(format!("v{seq}")))
                };
                model.insert((key.clone(), Reverse(seq)), (kind, value.clone()));
                if scan_only {
                    table.insert_scan_only(key, seq, kind, value);
                } else {
                    table.insert(key, seq, kind, value);
                }
            }
            let expected: Vec<(Bytes, SeqNo)> =
                model.keys().map(|(key, Reverse(seq))| (key.clone(), *seq)).collect();
            let mut iter = MemIter::new(table.clone());
            iter.seek_to_first();
            let mut walked = Vec::new();
            while iter.valid() {
                walked.push((iter.entry().user_key.clone(), iter.entry().seq));
                iter.next();
            }
            proptest::prop_assert_eq!(&walked, &expected);
            let frozen: Vec<(Bytes, SeqNo)> = table
                .frozen_entries()
                .iter()
                .map(|(key, _)| (key.user_key.clone(), key.seq.get()))
                .collect();
            proptest::prop_assert_eq!(&frozen, &expected);
            proptest::prop_assert_eq!(table.len(), expected.len());
            for (first, second, snapshot, inclusive) in probes {
                let key = key_of(first, second);
                let visible = model
                    .range((key.clone(), Reverse(snapshot))..)
                    .next()
                    .filter(|((k, _), _)| *k == key)
                    .map(|(_, (kind, value))| match kind {
                        ValueKind::Put => Lookup::Found(value.clone()),
                        ValueKind::Delete => Lookup::Deleted,
                    })
                    .unwrap_or(Lookup::Absent);
                proptest::prop_assert_eq!(table.get(&key, snapshot), visible);
                let from = MemKey::new(key.clone(), snapshot);
                let got: Vec<(Bytes, SeqNo)> = table
                    .entries_from(Some(&from), inclusive, 5)
                    .into_iter()
                    .map(|entry| (entry.user_key, entry.seq))
                    .collect();
                let lower = (key.clone(), Reverse(snapshot));
                let bound = if inclusive { Bound::Included(lower) } else { Bound::Excluded(lower) };
                let want: Vec<(Bytes, SeqNo)> = model
                    .range((bound, Bound::Unbounded))
                    .take(5)
                    .map(|((k, Reverse(seq)), _)| (k.clone(), *seq))
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn superseding_keeps_one_version_when_no_snapshot_sees_the_older() {
        let table = Memtable::new();
        table.insert_superseding(b("k"), 1, ValueKind::Put, b("one"), None);
        let used = table.used_bytes();
        table.insert_superseding(b("k"), 2, ValueKind::Put, b("two"), None);
        table.insert_superseding(b("k"), 3, ValueKind::Delete, Bytes::new(), None);
        table.insert_superseding(b("k"), 4, ValueKind::Put, b("four"), None);
        assert_eq!(table.len(), 1, "older versions were dropped");
        assert_eq!(table.get(b"k", 100), Lookup::Found(b("four")));
        assert_eq!(
            table.get(b"k", 3),
            Lookup::Absent,
            "dropped, as nobody reads there"
        );
        assert_eq!(
            table.used_bytes(),
            used + 1,
            "a dropped version's bytes are given back"
        );
        let entries = table.entries_from(None, true, 10);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].seq, &entries[0].value[..]), (4, &b"four"[..]));
    }

    #[test]
    fn superseding_keeps_every_version_a_pinned_snapshot_may_see() {
        let table = Memtable::new();
        table.insert_superseding(b("k"), 1, ValueKind::Put, b("one"), None);
        table.insert_superseding(b("k"), 2, ValueKind::Put, b("two"), Some(1));
        assert_eq!(table.len(), 2, "the snapshot at 1 sees version 1");
        table.insert_superseding(b("k"), 5, ValueKind::Put, b("five"), Some(2));
        assert_eq!(table.len(), 3, "the snapshot at 2 sees version 2");
        // The newest pin is now 4: version 5 is newer than it, and is the one replaced.
        table.insert_superseding(b("k"), 7, ValueKind::Put, b("seven"), Some(4));
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(b"k", 1), Lookup::Found(b("one")));
        assert_eq!(table.get(b"k", 2), Lookup::Found(b("two")));
        assert_eq!(table.get(b"k", 4), Lookup::Found(b("two")));
        assert_eq!(table.get(b"k", 7), Lookup::Found(b("seven")));
        // Other keys are untouched.
        table.insert_superseding(b("j"), 8, ValueKind::Put, b("j"), None);
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn an_older_version_inserted_later_does_not_hide_the_newest() {
        let table = Memtable::new();
        table.insert(b("k"), 9, ValueKind::Put, b("nine"));
        table.insert(b("k"), 5, ValueKind::Put, b("five"));
        assert_eq!(table.get(b"k", 100), Lookup::Found(b("nine")));
        assert_eq!(table.get(b"k", 6), Lookup::Found(b("five")));
    }

    #[test]
    fn iterator_walks_every_version_across_batches_while_writes_land() {
        let table = Rc::new(Memtable::new());
        let count = ITER_BATCH_ENTRIES * 3 + 5;
        for i in 0..count {
            table.insert(b(&format!("k{i:04}")), i as u64 + 1, ValueKind::Put, b("v"));
        }
        let mut iter = MemIter::new(table.clone());
        iter.seek_to_first();
        let mut seen = 0;
        while iter.valid() {
            seen += 1;
            // A concurrent writer adds newer versions; they sort before the iterator's position
            // for keys already passed, and are skipped by snapshot readers above.
            table.insert(
                iter.entry().user_key.clone(),
                10_000 + seen,
                ValueKind::Put,
                b("w"),
            );
            iter.next();
        }
        assert!(seen as usize >= count);
        let mut iter = MemIter::new(table);
        iter.seek(b"k0100", SeqNo::MAX);
        assert_eq!(&iter.entry().user_key[..], b"k0100");
    }
}
