//! Redis keyspace of one shard: an ordered in-memory map of the shard's Redis keys in 16
//! databases, with lazy and active expiry, resumable scans, and a log of absolute mutations.
//!
//! Entries live in a hash map (point reads and writes are one hash look-up); a B-tree set of
//! the keys gives the order scans need. Order is `(db, token, key)`, where `token` is the key's routing token
//! ([`crate::token::redis_token`]). Ordering by token lets a SCAN cursor be a token: a scan
//! resumes at the first token not yet returned, and never splits the keys of one token across
//! two calls, so keys inserted or deleted between calls never make it skip a key.
//!
//! Expiry follows Redis: a key with `expire_at_ms = t` is alive while `now_ms <= t`. Reads
//! remove expired keys they meet (lazy expiry); [`Keyspace::active_expire`] removes them in
//! expiry order. Neither is logged: expiry times are absolute, so a replay expires them too.
//!
//! Every state change a command makes goes through [`Keyspace::apply`] as a [`Mutation`]. The
//! keyspace turns each into the puts and deletes of its storage in the shard's LSM tree
//! ([`storage`]), collected in a pending [`WriteBatch`] that the server writes as one WAL record
//! per command batch ([`Keyspace::take_pending`]).
//!
//! **Tiered values.** The map holds every key with its metadata; a value is *resident* (in
//! memory, sharing its allocation with the memtable entry written for it) or *offloaded* (only
//! in the tree). Resident values are kept within a byte budget, oldest first out
//! ([`Keyspace::evict_to_budget`]). Commands run synchronously and need their keys' values
//! resident: the server loads them first ([`Keyspace::needs_load`], then
//! [`Keyspace::install_loaded`] with what the tree returned). At start the map is rebuilt from
//! one scan of the tree ([`Keyspace::insert_stored`]), every value offloaded.
//!
//! [`Keyspace::apply_logged`] replays payloads of the pre-LSM WAL format (mutations), for
//! moving an old data directory into the tree.

mod mutation;
pub mod storage;
#[cfg(test)]
mod tests;
mod zset;

pub use mutation::{decode_all, KeyspaceError, Mutation, MUTATION_BYTES_MAX};
pub use zset::{Score, ZSetValue};

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::ops::Bound;

use hashbrown::{Equivalent, HashMap};

use bytes::Bytes;

pub use crate::packed_list::PackedList;

use crate::lsm::WriteBatch;
use crate::token::redis_token;

/// Number of Redis databases (SELECT 0..15).
pub const DB_COUNT: usize = 16;

/// Rough per-key overhead (map node share, entry, expiry fields) for [`Keyspace::used_bytes`].
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A Redis value: a string, a hash, a set or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
    /// A string whose bytes are only in the LSM tree (see "Tiered values" above).
    OffloadedStr {
        len: usize,
    },
    /// Always resident: its fields are in memory and, one key each, in the tree.
    Hash(HashValue),
    /// A set: stored as a hash whose members have empty values.
    Set(HashValue),
    /// A list: its elements in memory, and one key each in the tree, keyed by index.
    List(ListValue),
    /// A sorted set: its members and scores in memory, and one key each in the tree.
    ZSet(ZSetValue),
}

/// A list's elements; element `i` has index `head + i` in its tree keys.
#[derive(Debug, Clone, Eq)]
pub struct ListValue {
    pub version: u64,
    pub head: i64,
    /// Packed: an element's bytes are copied in, and a memtable entry has its own copy.
    pub items: PackedList,
    /// The length its metadata value records (checked at start-up, as a hash's).
    pub stored_len: u64,
}

impl PartialEq for ListValue {
    /// Same elements in the same order; version and indexes are bookkeeping.
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl ListValue {
    /// A list whose elements are still to be read from the tree (start-up).
    pub fn empty(version: u64, stored_len: u64, head: i64) -> ListValue {
        ListValue {
            version,
            head,
            items: Default::default(),
            stored_len,
        }
    }

    /// What the list holds allocated, chunks' headroom included (see
    /// [`PackedList::allocated_bytes`]); list mutations add the change in it.
    fn used_bytes(&self) -> usize {
        self.items.allocated_bytes()
    }

    /// Whether element index `index` lies in the list's live range `[head, head + len)`.
    fn holds_index(&self, index: i64, len: u64) -> bool {
        index
            .checked_sub(self.head)
            .is_some_and(|offset| offset >= 0 && (offset as u64) < len)
    }

    /// The tree key of the element at position `i`.
    fn element_key(&self, db: u8, key: &[u8], i: usize) -> Bytes {
        let index = self.head + i as i64;
        storage::field_key(db, key, self.version, &storage::list_index_field(index))
    }
}

/// A value as it moves between shards (RENAME): a string, or a hash's fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Portable {
    Str(Bytes),
    Hash(Vec<(Bytes, Bytes)>),
    Set(Vec<Bytes>),
    List(Vec<Bytes>),
    ZSet(Vec<(Bytes, Score)>),
}

/// A hash's or set's metadata value, as it stands.
fn collection_meta(type_byte: u8, hash: &HashValue, expire_at_ms: Option<u64>) -> Bytes {
    storage::encode_collection_meta(type_byte, hash.version, hash.stored_len, expire_at_ms)
}

/// Rough per-field overhead (map slot, two `Bytes`) for [`Keyspace::used_bytes`].
const FIELD_OVERHEAD_BYTES: usize = 48;

/// Fields of a deleted or overwritten hash deleted at once, at most; a bigger hash's field
/// keys are orphans until compaction (`storage::compaction_filter`) or the next start-up's
/// scan deletes them (DEL stays O(1)).
pub const EAGER_RECLAIM_FIELDS_MAX: usize = 128;

/// Hashes of at most this many fields keep their fields in insertion order, as Redis's
/// listpack encoding does (HDEL then shifts the later fields, O(n)); bigger ones have no
/// defined order (HDEL swaps the last field in, O(1)), as Redis's hashtable encoding.
pub const HASH_ORDERED_FIELDS_MAX: usize = 128;

/// A hash's fields and the version its field keys carry in the tree.
#[derive(Debug, Clone, Eq)]
pub struct HashValue {
    pub version: u64,
    pub fields: indexmap::IndexMap<Bytes, Bytes>,
    /// The field count its metadata value records (checked once the fields are read back
    /// at start-up; kept equal to `fields.len()` afterwards).
    pub stored_len: u64,
}

impl PartialEq for HashValue {
    /// Same fields and values; version and order are bookkeeping.
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl HashValue {
    /// A hash whose fields are still to be read from the tree (start-up).
    pub fn empty(version: u64, stored_len: u64) -> HashValue {
        HashValue {
            version,
            fields: indexmap::IndexMap::new(),
            stored_len,
        }
    }

    fn used_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(f, v)| f.len() + v.len() + FIELD_OVERHEAD_BYTES)
            .sum()
    }
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::OffloadedStr { .. } => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
        }
    }

    /// The string, or None when the value is of another type (the caller replies WRONGTYPE)
    /// or not resident (check [`Value::is_resident`] first).
    pub fn as_str(&self) -> Option<&Bytes> {
        match self {
            Value::Str(s) => Some(s),
            Value::OffloadedStr { .. }
            | Value::Hash(_)
            | Value::Set(_)
            | Value::List(_)
            | Value::ZSet(_) => None,
        }
    }

    /// The sorted set, or None for another type.
    pub fn as_zset(&self) -> Option<&ZSetValue> {
        match self {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    /// The list, or None for another type.
    pub fn as_list(&self) -> Option<&ListValue> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The elements of a hash or set, or None for a string or list.
    pub fn collection(&self) -> Option<&HashValue> {
        match self {
            Value::Hash(h) | Value::Set(h) => Some(h),
            _ => None,
        }
    }

    fn collection_mut(&mut self) -> Option<&mut HashValue> {
        match self {
            Value::Hash(h) | Value::Set(h) => Some(h),
            _ => None,
        }
    }

    /// The set, or None for another type.
    pub fn as_set(&self) -> Option<&HashValue> {
        match self {
            Value::Set(h) => Some(h),
            _ => None,
        }
    }

    /// The metadata `type` byte of a collection.
    fn storage_type(&self) -> u8 {
        match self {
            Value::Hash(_) => storage::TYPE_HASH,
            Value::Set(_) => storage::TYPE_SET,
            Value::List(_) => storage::TYPE_LIST,
            Value::ZSet(_) => storage::TYPE_ZSET,
            _ => storage::TYPE_STRING,
        }
    }

    /// The hash, or None for another type.
    pub fn as_hash(&self) -> Option<&HashValue> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    /// A copy of the value when it is a hash (the fields to reclaim when it is replaced).
    fn clone_if_hash(&self) -> Option<Value> {
        (self.collection().is_some() || matches!(self, Value::List(_) | Value::ZSet(_)))
            .then(|| self.clone())
    }

    pub fn is_resident(&self) -> bool {
        !matches!(self, Value::OffloadedStr { .. })
    }

    /// Bytes of the value held in memory that tiering may offload (strings only).
    fn resident_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::OffloadedStr { .. }
            | Value::Hash(_)
            | Value::Set(_)
            | Value::List(_)
            | Value::ZSet(_) => 0,
        }
    }

    fn used_bytes(&self) -> usize {
        match self {
            Value::Hash(h) | Value::Set(h) => h.used_bytes(),
            Value::List(l) => l.used_bytes(),
            Value::ZSet(z) => z.used_bytes(),
            _ => self.resident_bytes(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute Unix time in milliseconds after which the key is gone; None: never.
    pub expire_at_ms: Option<u64>,
    /// Changes whenever the entry is written; a value loaded from the tree is installed only if
    /// the entry did not change while it was being read.
    stamp: u64,
    /// When a command last read or wrote the key (OBJECT IDLETIME); start-up's time for keys
    /// read from the tree.
    accessed_ms: u64,
}

/// Equality of what the entry says (its value and expiry), not of its bookkeeping.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.expire_at_ms == other.expire_at_ms
    }
}

impl Eq for Entry {}

impl Entry {
    /// The metadata value of a collection entry as it stands (None: a string).
    fn collection_meta(&self) -> Option<Bytes> {
        let at = self.expire_at_ms;
        match &self.value {
            Value::Hash(h) | Value::Set(h) => {
                Some(collection_meta(self.value.storage_type(), h, at))
            }
            Value::List(l) => Some(storage::encode_list_meta(
                l.version,
                l.items.len() as u64,
                l.head,
                at,
            )),
            Value::ZSet(z) => Some(storage::encode_collection_meta(
                storage::TYPE_ZSET,
                z.version,
                z.stored_len,
                at,
            )),
            Value::Str(_) | Value::OffloadedStr { .. } => None,
        }
    }

    /// Redis's rule: expired once the clock is strictly past the expiry time.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expire_at_ms, Some(at) if now_ms > at)
    }
}

/// Map key: ordered by db, then token, then key bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MapKey {
    db: u8,
    token: u64,
    key: Bytes,
}

/// Hashes (db, key) only: the token is a function of the key.
impl Hash for MapKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.db);
        self.key.as_ref().hash(state);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.db);
        self.key.hash(state);
    }
}

impl Equivalent<MapKey> for KeyRef<'_> {
    fn equivalent(&self, stored: &MapKey) -> bool {
        self.db == stored.db && self.key == stored.key.as_ref()
    }
}

/// Expiry index entry: ordered by expiry time first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ExpireKey {
    at_ms: u64,
    key: MapKey,
}

/// Borrowed form of [`MapKey`], so look-ups need no allocation.
trait KeyLike {
    fn parts(&self) -> (u8, u64, &[u8]);
}

impl KeyLike for MapKey {
    fn parts(&self) -> (u8, u64, &[u8]) {
        (self.db, self.token, &self.key)
    }
}

struct KeyRef<'a> {
    db: u8,
    token: u64,
    key: &'a [u8],
}

impl KeyLike for KeyRef<'_> {
    fn parts(&self) -> (u8, u64, &[u8]) {
        (self.db, self.token, self.key)
    }
}

impl<'a> Borrow<dyn KeyLike + 'a> for MapKey {
    fn borrow(&self) -> &(dyn KeyLike + 'a) {
        self
    }
}

impl PartialEq for dyn KeyLike + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyLike + '_ {}

impl PartialOrd for dyn KeyLike + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyLike + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts().cmp(&other.parts())
    }
}

fn key_ref(db: u8, key: &[u8]) -> KeyRef<'_> {
    assert!((db as usize) < DB_COUNT, "db {db} out of range");
    KeyRef {
        db,
        token: redis_token(key),
        key,
    }
}

/// Resident-value budget of a keyspace made with [`Keyspace::new`]: unbounded (tests).
pub const RESIDENT_BUDGET_UNBOUNDED: usize = usize::MAX;

/// The storage writes of the mutations applied since the last `take_pending`: one batch, in
/// which a storage key (not an element key) written again replaces its earlier entry, so a
/// hot key (a counter, redis-benchmark's one key, MSET of repeated keys) costs one WAL entry
/// and one memtable write per batch, not one per command.
#[derive(Debug, Default)]
struct PendingWrites {
    batch: WriteBatch,
    /// Index in `batch` of each storage key's last write.
    storage_keys: hashbrown::HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl PendingWrites {
    /// A put (Some) or delete (None) of storage key `skey`, in place of the key's earlier
    /// write in the batch if any. Every write of a storage key goes through here, so the entry
    /// it replaces is the key's last one (see [`WriteBatch::replace`]).
    fn write_storage(&mut self, skey: Bytes, value: Option<Bytes>) {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(&skey[..]);
        let entries = self.batch.entries();
        if let Some(&i) = self.storage_keys.find(hash, |&i| entries[i].1 == skey) {
            self.batch.replace(i, value);
            return;
        }
        let i = self.batch.len();
        match value {
            Some(v) => self.batch.put(skey, v),
            None => self.batch.delete(skey),
        }
        let (entries, hasher) = (self.batch.entries(), &self.hasher);
        self.storage_keys
            .insert_unique(hash, i, |&j| hasher.hash_one(&entries[j].1[..]));
    }

    /// A put of an element key.
    fn put(&mut self, key: Bytes, value: Bytes) {
        debug_assert!(storage::is_field_key(&key));
        self.batch.put(key, value);
    }

    /// A delete of an element key.
    fn delete(&mut self, key: Bytes) {
        debug_assert!(storage::is_field_key(&key));
        self.batch.delete(key);
    }

    /// A put of a list element's key: scan-only (lists are resident; nothing point-reads an
    /// element), so the memtable skips its newest-version index (`WriteBatch::put_scan_only`).
    fn put_list_element(&mut self, key: Bytes, value: Bytes) {
        debug_assert!(storage::is_field_key(&key));
        self.batch.put_scan_only(key, value);
    }

    /// A delete of a list element's key (scan-only, as every write of one).
    fn delete_list_element(&mut self, key: Bytes) {
        debug_assert!(storage::is_field_key(&key));
        self.batch.delete_scan_only(key);
    }

    fn take(&mut self) -> WriteBatch {
        self.storage_keys.clear();
        std::mem::take(&mut self.batch)
    }
}

/// One shard's Redis keys.
#[derive(Debug)]
pub struct Keyspace {
    /// Every stored entry, for point access.
    map: HashMap<MapKey, Entry>,
    /// Storage writes of the mutations applied since the last `take_pending`.
    pending: PendingWrites,
    /// Collections whose metadata value changed since the last `take_pending`: written once
    /// there, with the state they end in (a pipeline of 16 pushes writes it once, not 16
    /// times).
    dirty_meta: hashbrown::HashSet<MapKey>,
    /// Keys whose value became resident, oldest first (may name keys since removed or
    /// offloaded; those are skipped).
    resident_order: std::collections::VecDeque<MapKey>,
    resident_bytes: usize,
    resident_budget: usize,
    next_stamp: u64,
    /// The latest clock a command passed in: the access time of entries it creates.
    clock_ms: u64,
    /// The same keys, in scan order.
    order: BTreeSet<MapKey>,
    expires: BTreeSet<ExpireKey>,
    key_counts: [usize; DB_COUNT],
    expire_counts: [usize; DB_COUNT],
    used_bytes: usize,
    /// The version the next new collection takes: above every version in the tree (start-up
    /// raises it past each one it reads, orphans included), so no incarnation ever reads
    /// another's element keys.
    next_version: u64,
    /// Set once any value has been offloaded (evicted, or left in the tree at start-up);
    /// until then no key needs a load, and [`Keyspace::may_need_loads`] lets callers skip
    /// the per-key check.
    offloaded_any: bool,
}

impl Default for Keyspace {
    fn default() -> Keyspace {
        Keyspace {
            map: HashMap::default(),
            pending: PendingWrites::default(),
            dirty_meta: Default::default(),
            resident_order: Default::default(),
            resident_bytes: 0,
            resident_budget: RESIDENT_BUDGET_UNBOUNDED,
            next_stamp: 0,
            clock_ms: 0,
            order: BTreeSet::default(),
            expires: BTreeSet::default(),
            key_counts: [0; DB_COUNT],
            expire_counts: [0; DB_COUNT],
            used_bytes: 0,
            next_version: 1,
            offloaded_any: false,
        }
    }
}

impl Keyspace {
    pub fn new() -> Keyspace {
        Keyspace::default()
    }

    /// A keyspace that keeps at most `budget` bytes of values resident.
    pub fn with_resident_budget(budget: usize) -> Keyspace {
        Keyspace {
            resident_budget: budget,
            ..Keyspace::default()
        }
    }

    /// The storage writes of everything applied since the last call (one WAL record's worth).
    pub fn take_pending(&mut self) -> WriteBatch {
        for key in std::mem::take(&mut self.dirty_meta) {
            // Gone or no longer a collection: its delete or new value is in the batch already.
            if let Some(meta) = self.map.get(&key).and_then(Entry::collection_meta) {
                self.pending
                    .write_storage(storage::storage_key(key.db, &key.key), Some(meta));
            }
        }
        self.pending.take()
    }

    /// Notes that the collection at `key` needs its metadata value written (by the next
    /// `take_pending`, from the state it is in then).
    fn meta_changed(&mut self, db: u8, key: &[u8]) {
        let k = key_ref(db, key);
        if self.dirty_meta.contains(&k) {
            return;
        }
        if let Some((stored, _)) = self.map.get_key_value(&k) {
            let stored = stored.clone();
            self.dirty_meta.insert(stored);
        }
    }

    /// Approximate bytes of the pending storage writes.
    pub fn pending_bytes(&self) -> usize {
        self.pending.batch.approx_bytes()
    }

    /// If `key` is live but its value is offloaded: its storage key and the entry's stamp, to
    /// read the value from the tree and hand it to [`Keyspace::install_loaded`].
    pub fn needs_load(&self, db: u8, key: &[u8], now_ms: u64) -> Option<(Vec<u8>, u64)> {
        if !self.offloaded_any {
            return None;
        }
        let entry = self.map.get(&key_ref(db, key))?;
        if entry.value.is_resident() || entry.is_expired(now_ms) {
            return None;
        }
        Some((storage::storage_key(db, key).to_vec(), entry.stamp))
    }

    /// False while no value has ever been offloaded: then [`Keyspace::needs_load`] is None for
    /// every key.
    pub fn may_need_loads(&self) -> bool {
        self.offloaded_any
    }

    /// Makes a value read from the tree resident, if the entry is still the one it was read
    /// for (same stamp, still offloaded). `stored` is the tree's value (None: the tree has no
    /// value, which can only mean the entry changed meanwhile).
    pub fn install_loaded(
        &mut self,
        db: u8,
        key: &[u8],
        stamp: u64,
        stored: Option<&Bytes>,
    ) -> Result<(), String> {
        let k = key_ref(db, key);
        let Some((stored_key, entry)) = self.map.get_key_value(&k) else {
            return Ok(());
        };
        if entry.stamp != stamp || entry.value.is_resident() {
            return Ok(());
        }
        let stored_key = stored_key.clone();
        let Some(stored) = stored else {
            return Err(format!(
                "key {:?} is in the index but not in the tree",
                String::from_utf8_lossy(key)
            ));
        };
        let decoded = storage::decode(stored)?;
        let entry = self.map.get_mut(&k).expect("entry found above");
        let len = decoded.value.resident_bytes();
        entry.value = decoded.value;
        self.resident_bytes += len;
        self.used_bytes += len;
        self.resident_order.push_back(stored_key);
        Ok(())
    }

    /// Offloads the oldest resident values until at most the budget is resident. Their bytes
    /// are in the tree already: every applied mutation is in a pending batch, written before
    /// the next batch runs.
    pub fn evict_to_budget(&mut self) -> usize {
        let mut evicted = 0;
        while self.resident_bytes > self.resident_budget {
            let Some(key) = self.resident_order.pop_front() else {
                break;
            };
            if let Some(entry) = self.map.get_mut(&key) {
                if let Value::Str(s) = &entry.value {
                    let len = s.len();
                    entry.value = Value::OffloadedStr { len };
                    self.offloaded_any = true;
                    self.resident_bytes -= len;
                    self.used_bytes -= len;
                    evicted += 1;
                }
            }
        }
        // Stale names (removed or offloaded keys) pile up under churn: compact now and then.
        if self.resident_order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.resident_order
                .retain(|k| map.get(k).is_some_and(|e| e.value.is_resident()));
        }
        evicted
    }

    pub fn resident_bytes(&self) -> usize {
        self.resident_bytes
    }

    /// Adds an entry read from the tree at start-up, offloaded; expired values are skipped.
    /// Returns whether the key was added.
    pub fn insert_stored(
        &mut self,
        skey: &[u8],
        stored: &Bytes,
        now_ms: u64,
    ) -> Result<bool, String> {
        let (db, token, key) =
            storage::parse_storage_key(skey).ok_or_else(|| "malformed storage key".to_string())?;
        if token != redis_token(key) {
            return Err(format!(
                "storage key of {:?} carries the wrong token",
                String::from_utf8_lossy(key)
            ));
        }
        let decoded = storage::decode(stored)?;
        self.clock_ms = self.clock_ms.max(now_ms);
        if let Some(h) = decoded.value.collection() {
            self.next_version = self.next_version.max(h.version + 1);
        }
        if let Value::List(l) = &decoded.value {
            self.next_version = self.next_version.max(l.version + 1);
        }
        if let Value::ZSet(z) = &decoded.value {
            self.next_version = self.next_version.max(z.version + 1);
        }
        if matches!(decoded.expire_at_ms, Some(at) if now_ms > at) {
            return Ok(false);
        }
        let value = match decoded.value {
            Value::Str(s) => {
                self.offloaded_any = true;
                Value::OffloadedStr { len: s.len() }
            }
            hash => hash,
        };
        self.insert_entry(db, key, value, decoded.expire_at_ms);
        Ok(true)
    }

    /// Adds a field read from the tree at start-up (after every key: element keys sort
    /// after them) to its hash. False when no live hash of that version owns it: an orphan
    /// of a deleted, expired or overwritten incarnation, which the caller deletes.
    pub fn insert_stored_field(&mut self, fkey: &[u8], value: &Bytes) -> Result<bool, String> {
        let f = storage::parse_field_key(fkey).ok_or_else(|| "malformed field key".to_string())?;
        if f.token != redis_token(f.key) {
            return Err(format!(
                "field key of {:?} carries the wrong token",
                String::from_utf8_lossy(f.key)
            ));
        }
        self.next_version = self.next_version.max(f.version + 1);
        let Some(entry) = self.map.get_mut(&key_ref(f.db, f.key)) else {
            return Ok(false);
        };
        if let Value::List(list) = &mut entry.value {
            if list.version != f.version {
                return Ok(false);
            }
            // Elements come in index order and must follow each other from the head. Keys
            // outside `[head, head + len)` are popped elements (pops write no tombstones).
            let index = storage::parse_list_index(f.field).ok_or_else(|| {
                format!(
                    "list {:?} has a malformed element index",
                    String::from_utf8_lossy(f.key)
                )
            })?;
            if !list.holds_index(index, list.stored_len) {
                return Ok(false);
            }
            let expected = list.head + list.items.len() as i64;
            if index != expected {
                return Err(format!(
                    "list {:?} misses its element at index {expected}",
                    String::from_utf8_lossy(f.key)
                ));
            }
            let before = list.items.allocated_bytes();
            list.items.push_back(value);
            self.used_bytes = self.used_bytes + list.items.allocated_bytes() - before;
            return Ok(true);
        }
        if let Value::ZSet(zset) = &mut entry.value {
            if zset.version != f.version {
                return Ok(false);
            }
            self.used_bytes += zset.insert_stored(f.field, value)?;
            return Ok(true);
        }
        let Some(hash) = entry.value.collection_mut() else {
            return Ok(false);
        };
        if hash.version != f.version {
            return Ok(false);
        }
        // A copy, not a slice: the tree's block would stay pinned by one small field.
        let field = Bytes::copy_from_slice(f.field);
        self.used_bytes += field.len() + value.len() + FIELD_OVERHEAD_BYTES;
        hash.fields.insert(field, Bytes::copy_from_slice(value));
        Ok(true)
    }

    /// Checks, once every key and field is read at start-up, that each hash got the fields
    /// its metadata counts (its metadata and fields are written in one batch: a difference
    /// is damage, not a crash).
    pub fn check_rebuilt(&self) -> Result<(), String> {
        for (k, e) in &self.map {
            if let Value::List(l) = &e.value {
                if l.items.len() as u64 != l.stored_len || l.items.is_empty() {
                    return Err(format!(
                        "list {:?} has {} elements in the tree, its metadata says {}",
                        String::from_utf8_lossy(&k.key),
                        l.items.len(),
                        l.stored_len
                    ));
                }
            }
            if let Value::ZSet(z) = &e.value {
                if z.len() as u64 != z.stored_len || z.is_empty() {
                    return Err(format!(
                        "sorted set {:?} has {} members in the tree, its metadata says {}",
                        String::from_utf8_lossy(&k.key),
                        z.len(),
                        z.stored_len
                    ));
                }
            }
            if let Some(h) = e.value.collection() {
                if h.fields.len() as u64 != h.stored_len || h.fields.is_empty() {
                    return Err(format!(
                        "hash {:?} has {} fields in the tree, its metadata says {}",
                        String::from_utf8_lossy(&k.key),
                        h.fields.len(),
                        h.stored_len
                    ));
                }
            }
        }
        Ok(())
    }

    /// The live entry of `key`, removing it first when it has expired (lazy expiry). Marks it
    /// accessed now.
    pub fn get(&mut self, db: u8, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let k = key_ref(db, key);
        let expired = self.map.get(&k)?.is_expired(now_ms);
        if expired {
            self.remove_ref(&k);
            return None;
        }
        let entry = self.map.get_mut(&k)?;
        entry.accessed_ms = now_ms;
        Some(entry)
    }

    /// Whether an element key of (`db`, `key`, `version`, `field`) belongs to no live
    /// collection: the key is absent, or holds a string or another incarnation, or the list's
    /// element was popped (its index is outside the live range). (An expired collection not
    /// yet removed still owns its elements; its removal orphans them.)
    pub fn is_orphan(&self, db: u8, key: &[u8], version: u64, field: &[u8]) -> bool {
        let Some(entry) = self.map.get(&key_ref(db, key)) else {
            return true;
        };
        let live = match &entry.value {
            Value::Hash(h) | Value::Set(h) => h.version,
            Value::List(l) => {
                let popped = storage::parse_list_index(field)
                    .is_some_and(|index| !l.holds_index(index, l.items.len() as u64));
                return l.version != version || popped;
            }
            Value::ZSet(z) => z.version,
            Value::Str(_) | Value::OffloadedStr { .. } => return true,
        };
        live != version
    }

    /// Whether every element key of (`db`, `key`, `version`) with a field in `[lo, hi]` is an
    /// orphan ([`Keyspace::is_orphan`]): the incarnation is gone, or, for a list, the whole
    /// index range lies on one side of the live range. Lets compaction delete a table of popped
    /// elements whole, without reading it.
    pub fn is_orphan_range(&self, db: u8, key: &[u8], version: u64, lo: &[u8], hi: &[u8]) -> bool {
        let Some(entry) = self.map.get(&key_ref(db, key)) else {
            return true;
        };
        match &entry.value {
            Value::List(l) if l.version == version => {
                let (Some(lo), Some(hi)) =
                    (storage::parse_list_index(lo), storage::parse_list_index(hi))
                else {
                    return false;
                };
                let end = l.head.saturating_add(l.items.len() as i64);
                hi < l.head || lo >= end
            }
            // Apart from a live list's, an element's fate does not depend on its field.
            _ => self.is_orphan(db, key, version, lo),
        }
    }

    /// Advances the clock that stamps the access time of entries commands create.
    pub fn tick(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
    }

    /// Milliseconds since a command last touched the live `key` (OBJECT IDLETIME, which does
    /// not itself touch it); None when absent or expired.
    pub fn idle_ms(&self, db: u8, key: &[u8], now_ms: u64) -> Option<u64> {
        let entry = self.map.get(&key_ref(db, key))?;
        (!entry.is_expired(now_ms)).then(|| now_ms.saturating_sub(entry.accessed_ms))
    }

    /// A token that changes whenever `key` is written, deleted, expires or is created
    /// again (None: no live key): what WATCH compares at EXEC.
    pub fn version(&mut self, db: u8, key: &[u8], now_ms: u64) -> Option<u64> {
        self.get(db, key, now_ms).map(|e| e.stamp)
    }

    /// Whether `key` is live (removes it when expired).
    pub fn contains(&mut self, db: u8, key: &[u8], now_ms: u64) -> bool {
        self.get(db, key, now_ms).is_some()
    }

    /// The entry as stored, expired or not; never mutates (for dumps and tests).
    pub fn peek(&self, db: u8, key: &[u8]) -> Option<&Entry> {
        self.map.get(&key_ref(db, key))
    }

    /// Applies one mutation. The caller logs it (see [`Keyspace::apply_and_log`]).
    pub fn apply(&mut self, m: Mutation) {
        match m {
            Mutation::Set {
                db,
                key,
                value,
                expire_at_ms,
            } => self.set(db, &key, value, expire_at_ms),
            Mutation::Del { db, key } => {
                let k = key_ref(db, &key);
                self.pending
                    .write_storage(storage::storage_key(db, &key), None);
                self.remove_ref(&k);
            }
            Mutation::SetExpire {
                db,
                key,
                expire_at_ms,
            } => self.set_expire(db, &key, expire_at_ms),
            Mutation::FlushDb { db } => self.flush_db(db),
            Mutation::FlushAll => self.flush_all(),
            Mutation::HashSet { db, key, fields } => self.put_fields(db, &key, Value::Hash, fields),
            Mutation::HashDel { db, key, fields } => self.remove_fields(db, &key, fields),
            Mutation::SetAdd { db, key, members } => {
                let fields = members.into_iter().map(|m| (m, Bytes::new())).collect();
                self.put_fields(db, &key, Value::Set, fields)
            }
            Mutation::SetRem { db, key, members } => self.remove_fields(db, &key, members),
            Mutation::ListPush {
                db,
                key,
                left,
                values,
            } => self.list_push(db, &key, left, values),
            Mutation::ListPop {
                db,
                key,
                left,
                count,
            } => self.list_pop(db, &key, left, count),
            Mutation::ListSet {
                db,
                key,
                index,
                value,
            } => self.list_set(db, &key, index, value),
            Mutation::ListReplace { db, key, values } => self.list_replace(db, &key, values),
            Mutation::ZSetAdd { db, key, members } => self.zset_add(db, &key, members),
            Mutation::ZSetRem { db, key, members } => self.zset_remove(db, &key, members),
        }
    }

    /// Removes fields (members) of the hash (set) at `key`; the key goes with its last one.
    fn remove_fields(&mut self, db: u8, key: &[u8], fields: Vec<Bytes>) {
        let k = key_ref(db, key);
        let Some(entry) = self.map.get_mut(&k) else {
            return;
        };
        let Some(hash) = entry.value.collection_mut() else {
            panic!("HDEL/SREM mutation on a {} key", entry.value.type_name());
        };
        let ordered = hash.fields.len() <= HASH_ORDERED_FIELDS_MAX;
        for field in fields {
            let removed = if ordered {
                hash.fields.shift_remove(&field)
            } else {
                hash.fields.swap_remove(&field)
            };
            if let Some(value) = removed {
                self.used_bytes -= field.len() + value.len() + FIELD_OVERHEAD_BYTES;
                self.pending
                    .delete(storage::field_key(db, key, hash.version, &field));
            }
        }
        hash.stored_len = hash.fields.len() as u64;
        if hash.fields.is_empty() {
            self.pending
                .write_storage(storage::storage_key(db, key), None);
            self.remove_ref(&k);
            return;
        }
        self.next_stamp += 1;
        entry.stamp = self.next_stamp;
        self.meta_changed(db, key);
    }

    /// Deletes a removed or overwritten hash's field keys when they are few; a bigger hash's
    /// stay as orphans (its metadata is gone or replaced, so nothing reads them) until the
    /// next start-up's scan deletes them.
    fn reclaim_fields(&mut self, db: u8, key: &[u8], value: &Value) {
        if let Value::List(list) = value {
            if list.items.len() <= EAGER_RECLAIM_FIELDS_MAX {
                for i in 0..list.items.len() {
                    self.pending
                        .delete_list_element(list.element_key(db, key, i));
                }
            }
        }
        if let Value::ZSet(zset) = value {
            if zset.len() <= EAGER_RECLAIM_FIELDS_MAX {
                for member in zset.scores.keys() {
                    self.pending.delete(zset.element_key(db, key, member));
                }
            }
        }
        if let Some(hash) = value.collection() {
            if hash.fields.len() <= EAGER_RECLAIM_FIELDS_MAX {
                for field in hash.fields.keys() {
                    self.pending
                        .delete(storage::field_key(db, key, hash.version, field));
                }
            }
        }
    }

    /// The list at `key`, which a list mutation found there.
    fn list_entry(&mut self, db: u8, key: &[u8]) -> &mut Entry {
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let entry = self
            .map
            .get_mut(&key_ref(db, key))
            .expect("a list mutation names a live key");
        assert!(
            matches!(entry.value, Value::List(_)),
            "a list mutation on a {} key",
            entry.value.type_name()
        );
        entry.stamp = stamp;
        entry
    }

    /// Writes a list's metadata, or deletes the key when the list is empty.
    fn list_written(&mut self, db: u8, key: &[u8]) {
        let k = key_ref(db, key);
        let entry = self.map.get(&k).expect("a live list");
        let Value::List(list) = &entry.value else {
            unreachable!("checked by list_entry")
        };
        if list.items.is_empty() {
            self.pending
                .write_storage(storage::storage_key(db, key), None);
            self.remove_ref(&k);
            return;
        }
        self.meta_changed(db, key);
    }

    fn list_push(&mut self, db: u8, key: &[u8], left: bool, values: Vec<Bytes>) {
        let k = key_ref(db, key);
        if !self.map.contains_key(&k) {
            let version = self.next_version;
            self.next_version += 1;
            self.insert_entry(db, key, Value::List(ListValue::empty(version, 0, 0)), None);
        }
        self.next_stamp += 1;
        let entry = self.map.get_mut(&k).expect("present or created above");
        entry.stamp = self.next_stamp;
        let Value::List(list) = &mut entry.value else {
            panic!("a list mutation on a {} key", entry.value.type_name());
        };
        let before = list.items.allocated_bytes();
        for value in values {
            let at = if left {
                list.head -= 1;
                list.items.push_front(&value);
                0
            } else {
                list.items.push_back(&value);
                list.items.len() - 1
            };
            // A copy: the command's bytes may be slices of a large network buffer.
            self.pending.put_list_element(
                list.element_key(db, key, at),
                Bytes::copy_from_slice(&value),
            );
        }
        list.stored_len = list.items.len() as u64;
        self.used_bytes = self.used_bytes + list.items.allocated_bytes() - before;
        // Not empty after a push: only its metadata changed.
        self.meta_changed(db, key);
    }

    /// Pops write no tombstones: only the metadata's new head and length. A popped element's
    /// key lies outside `[head, head + len)`, where nothing reads it: a restart skips and
    /// deletes it (`insert_stored_field`), compaction drops it (`is_orphan`), and a push that
    /// takes its index again writes a newer version over it. (A tombstone per pop doubled the
    /// tree's work for a queue: a memtable insert now, a flush and compactions later.)
    fn list_pop(&mut self, db: u8, key: &[u8], left: bool, count: u64) {
        let entry = self.list_entry(db, key);
        let Value::List(list) = &mut entry.value else {
            unreachable!("checked by list_entry")
        };
        let before = list.items.allocated_bytes();
        for _ in 0..count.min(list.items.len() as u64) {
            if left {
                list.head += 1;
                list.items.pop_front();
            } else {
                list.items.pop_back();
            }
        }
        list.stored_len = list.items.len() as u64;
        let after = list.items.allocated_bytes();
        self.used_bytes = self.used_bytes + after - before;
        self.list_written(db, key);
    }

    fn list_set(&mut self, db: u8, key: &[u8], index: u64, value: Bytes) {
        let value = Bytes::copy_from_slice(&value);
        let entry = self.list_entry(db, key);
        let Value::List(list) = &mut entry.value else {
            unreachable!("checked by list_entry")
        };
        let i = usize::try_from(index).expect("an index within the list");
        let before = list.items.allocated_bytes();
        list.items.set(i, &value);
        let element = list.element_key(db, key, i);
        let after = list.items.allocated_bytes();
        self.used_bytes = self.used_bytes + after - before;
        self.pending.put_list_element(element, value);
    }

    fn list_replace(&mut self, db: u8, key: &[u8], values: Vec<Bytes>) {
        let mut writes = Vec::new();
        let entry = self.list_entry(db, key);
        let Value::List(list) = &mut entry.value else {
            unreachable!("checked by list_entry")
        };
        let old_used = list.used_bytes();
        for i in 0..list.items.len() {
            writes.push((list.element_key(db, key, i), None));
        }
        list.items = values.iter().map(|v| v.as_ref()).collect();
        list.head = 0;
        list.stored_len = list.items.len() as u64;
        for (i, v) in values.iter().enumerate() {
            // A copy: the command's bytes may be slices of a large network buffer.
            writes.push((
                list.element_key(db, key, i),
                Some(Bytes::copy_from_slice(v)),
            ));
        }
        let new_used = list.used_bytes();
        self.used_bytes = self.used_bytes + new_used - old_used;
        // Deletes first: a new element may take an old one's index.
        for (k, v) in writes {
            match v {
                None => self.pending.delete_list_element(k),
                Some(v) => self.pending.put_list_element(k, v),
            }
        }
        self.list_written(db, key);
    }

    /// Sets fields of the collection at `key` (made by `make` when absent: a hash, or a set
    /// whose members have empty values).
    fn put_fields(
        &mut self,
        db: u8,
        key: &[u8],
        make: fn(HashValue) -> Value,
        fields: Vec<(Bytes, Bytes)>,
    ) {
        let k = key_ref(db, key);
        if !self.map.contains_key(&k) {
            let version = self.next_version;
            self.next_version += 1;
            self.insert_entry(db, key, make(HashValue::empty(version, 0)), None);
        }
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let entry = self.map.get_mut(&k).expect("present or created above");
        let type_byte = entry.value.storage_type();
        assert_eq!(
            type_byte,
            make(HashValue::empty(0, 0)).storage_type(),
            "a collection mutation on a {} key",
            entry.value.type_name()
        );
        let hash = entry.value.collection_mut().expect("a collection");
        for (field, value) in fields {
            // Copies: the command's bytes may be slices of a large network buffer.
            let field = Bytes::copy_from_slice(&field);
            let value = Bytes::copy_from_slice(&value);
            self.pending.put(
                storage::field_key(db, key, hash.version, &field),
                value.clone(),
            );
            let (field_len, value_len) = (field.len(), value.len());
            match hash.fields.insert(field, value) {
                Some(old) => self.used_bytes = self.used_bytes + value_len - old.len(),
                None => self.used_bytes += field_len + value_len + FIELD_OVERHEAD_BYTES,
            }
        }
        hash.stored_len = hash.fields.len() as u64;
        entry.stamp = stamp;
        self.meta_changed(db, key);
    }

    /// Encodes `m` into `log`, then applies it: the log and the state cannot disagree.
    pub fn apply_and_log(&mut self, m: Mutation, log: &mut Vec<u8>) {
        m.encode(log);
        self.apply(m);
    }

    /// Replays a logged payload (concatenated mutations). The payload is decoded completely
    /// before anything is applied, so a malformed payload changes nothing. Sets whose expiry has
    /// passed at `now_ms` are applied as deletes (the key would be gone anyway).
    pub fn apply_logged(&mut self, payload: &[u8], now_ms: u64) -> Result<(), KeyspaceError> {
        for m in decode_all(payload)? {
            match m {
                Mutation::Set {
                    db,
                    key,
                    expire_at_ms: Some(at),
                    ..
                } if now_ms > at => self.apply(Mutation::Del { db, key }),
                m => {
                    if let (Some((db, key)), Some(kind)) = (m.key(), m.collection_type()) {
                        self.remove_expired_of_another_type(db, key, kind, now_ms);
                    }
                    self.apply(m)
                }
            }
        }
        Ok(())
    }

    /// A collection write over a key of another type means the command that logged it found
    /// that key expired and removed it when it read it (lazy expiry, which the log does not
    /// record): remove it here too, or the write would find the old value. A key of the same
    /// type is left as it is: replayed later than it was written (at start-up), an expired
    /// collection takes the write and stays expired, where removing it would bring the key
    /// back without its expiry.
    fn remove_expired_of_another_type(&mut self, db: u8, key: &[u8], kind: &str, now_ms: u64) {
        let k = key_ref(db, key);
        let stale = self
            .map
            .get(&k)
            .is_some_and(|e| e.value.type_name() != kind && e.is_expired(now_ms));
        if stale {
            self.remove_ref(&k);
        }
    }

    /// Removes a live key and returns its value and expiry, logging the removal into `log`
    /// (the source half of a cross-shard RENAME). None when absent.
    pub fn take_value(
        &mut self,
        db: u8,
        key: &[u8],
        now_ms: u64,
        log: &mut Vec<u8>,
    ) -> Option<(Portable, Option<u64>)> {
        let entry = self.get(db, key, now_ms)?;
        let value = match &entry.value {
            Value::Str(s) => Portable::Str(s.clone()),
            Value::Hash(h) => Portable::Hash(
                h.fields
                    .iter()
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect(),
            ),
            Value::Set(h) => Portable::Set(h.fields.keys().cloned().collect()),
            Value::List(l) => Portable::List(l.items.iter().map(Bytes::copy_from_slice).collect()),
            Value::ZSet(z) => Portable::ZSet(
                z.order
                    .iter()
                    .map(|(score, m)| (m.clone(), *score))
                    .collect(),
            ),
            Value::OffloadedStr { .. } => panic!("RENAME ran without the key's value loaded"),
        };
        let taken = (value, entry.expire_at_ms);
        self.apply_and_log(
            Mutation::Del {
                db,
                key: Bytes::copy_from_slice(key),
            },
            log,
        );
        Some(taken)
    }

    /// Stores a value with exactly this expiry, replacing what is there, logging it into
    /// `log` (the destination half of a cross-shard RENAME/RENAMENX, and RENAME on one
    /// shard). With `only_if_absent`, a live key is left alone and false is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn put_value(
        &mut self,
        db: u8,
        key: Bytes,
        value: Portable,
        expire_at_ms: Option<u64>,
        only_if_absent: bool,
        now_ms: u64,
        log: &mut Vec<u8>,
    ) -> bool {
        let exists = self.contains(db, &key, now_ms);
        if only_if_absent && exists {
            return false;
        }
        match value {
            Portable::Str(value) => self.apply_and_log(
                Mutation::Set {
                    db,
                    key,
                    value: Value::Str(value),
                    expire_at_ms,
                },
                log,
            ),
            collection => {
                if exists {
                    self.apply_and_log(
                        Mutation::Del {
                            db,
                            key: key.clone(),
                        },
                        log,
                    );
                }
                let put = match collection {
                    Portable::Hash(fields) => Mutation::HashSet {
                        db,
                        key: key.clone(),
                        fields,
                    },
                    Portable::Set(members) => Mutation::SetAdd {
                        db,
                        key: key.clone(),
                        members,
                    },
                    Portable::List(values) => Mutation::ListPush {
                        db,
                        key: key.clone(),
                        left: false,
                        values,
                    },
                    Portable::ZSet(members) => Mutation::ZSetAdd {
                        db,
                        key: key.clone(),
                        members,
                    },
                    Portable::Str(_) => unreachable!("matched above"),
                };
                self.apply_and_log(put, log);
                if expire_at_ms.is_some() {
                    self.apply_and_log(
                        Mutation::SetExpire {
                            db,
                            key,
                            expire_at_ms,
                        },
                        log,
                    );
                }
            }
        }
        true
    }

    fn set(&mut self, db: u8, key: &[u8], value: Value, expire_at_ms: Option<u64>) {
        let Value::Str(payload) = value else {
            panic!(
                "a mutation carried an offloaded value: the command ran without its value loaded"
            );
        };
        // One copy, into the stored form: the caller's bytes may be slices of a large network
        // buffer that must not stay pinned, and the keyspace's value is a slice of the bytes the
        // memtable holds, so the two share one allocation.
        let (stored, payload) = storage::encode_string(&payload, expire_at_ms);
        self.pending
            .write_storage(storage::storage_key(db, key), Some(stored));
        self.insert_entry(db, key, Value::Str(payload), expire_at_ms);
    }

    /// Inserts or replaces an entry in the index (no storage write).
    fn insert_entry(&mut self, db: u8, key: &[u8], value: Value, expire_at_ms: Option<u64>) {
        let k = key_ref(db, key);
        self.next_stamp += 1;
        let entry = Entry {
            value,
            expire_at_ms,
            stamp: self.next_stamp,
            accessed_ms: self.clock_ms,
        };
        let new_resident = entry.value.resident_bytes();
        if let Some(old) = self.map.get(&k) {
            let old = old.value.clone_if_hash();
            if let Some(old) = old {
                self.reclaim_fields(db, key, &old);
            }
        }
        if let Some((stored, old)) = self.map.get_key_value(&k) {
            let old_at = old.expire_at_ms;
            let old_resident = old.value.is_resident();
            self.used_bytes -= old.value.used_bytes();
            self.used_bytes += entry.value.used_bytes();
            self.resident_bytes -= old.value.resident_bytes();
            self.resident_bytes += new_resident;
            let stored = stored.clone();
            if old_at != expire_at_ms {
                self.replace_expire(&stored, old_at, expire_at_ms);
            }
            if !old_resident && entry.value.is_resident() {
                self.resident_order.push_back(stored);
            }
            *self.map.get_mut(&k).expect("entry found above") = entry;
            return;
        }
        let stored = MapKey {
            db,
            token: k.token,
            key: Bytes::copy_from_slice(key),
        };
        self.used_bytes += key.len() + entry.value.used_bytes() + ENTRY_OVERHEAD_BYTES;
        self.resident_bytes += new_resident;
        self.key_counts[db as usize] += 1;
        self.replace_expire(&stored, None, expire_at_ms);
        self.order.insert(stored.clone());
        if entry.value.is_resident() {
            self.resident_order.push_back(stored.clone());
        }
        self.map.insert(stored, entry);
    }

    fn set_expire(&mut self, db: u8, key: &[u8], expire_at_ms: Option<u64>) {
        let k = key_ref(db, key);
        let Some((stored, old)) = self.map.get_key_value(&k) else {
            return;
        };
        // The expiry is part of the stored value: write the value again with the new one.
        let payload = match &old.value {
            Value::Str(payload) => {
                let (stored_value, payload) = storage::encode_string(payload, expire_at_ms);
                self.pending
                    .write_storage(storage::storage_key(db, key), Some(stored_value));
                Some(payload)
            }
            Value::Hash(hash) | Value::Set(hash) => {
                let meta = storage::encode_collection_meta(
                    old.value.storage_type(),
                    hash.version,
                    hash.stored_len,
                    expire_at_ms,
                );
                self.pending
                    .write_storage(storage::storage_key(db, key), Some(meta));
                None
            }
            Value::ZSet(zset) => {
                let meta = storage::encode_collection_meta(
                    storage::TYPE_ZSET,
                    zset.version,
                    zset.stored_len,
                    expire_at_ms,
                );
                self.pending
                    .write_storage(storage::storage_key(db, key), Some(meta));
                None
            }
            Value::List(list) => {
                let meta = storage::encode_list_meta(
                    list.version,
                    list.items.len() as u64,
                    list.head,
                    expire_at_ms,
                );
                self.pending
                    .write_storage(storage::storage_key(db, key), Some(meta));
                None
            }
            Value::OffloadedStr { .. } => {
                panic!("EXPIRE/PERSIST ran without the key's value loaded")
            }
        };
        let stored = stored.clone();
        let old_at = old.expire_at_ms;
        self.replace_expire(&stored, old_at, expire_at_ms);
        self.next_stamp += 1;
        let entry = self.map.get_mut(&k).expect("entry found above");
        entry.expire_at_ms = expire_at_ms;
        if let Some(payload) = payload {
            entry.value = Value::Str(payload);
        }
        entry.stamp = self.next_stamp;
    }

    /// Keeps the expiry index and per-db expiry counts in step with an entry's expiry.
    fn replace_expire(&mut self, key: &MapKey, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let db = key.db as usize;
        if let Some(at_ms) = old {
            let removed = self.expires.remove(&ExpireKey {
                at_ms,
                key: key.clone(),
            });
            assert!(removed, "expiry index out of step");
            self.expire_counts[db] -= 1;
        }
        if let Some(at_ms) = new {
            let inserted = self.expires.insert(ExpireKey {
                at_ms,
                key: key.clone(),
            });
            assert!(inserted, "expiry index out of step");
            self.expire_counts[db] += 1;
        }
    }

    fn remove_ref(&mut self, k: &KeyRef) -> Option<Entry> {
        let (stored, entry) = self.map.remove_entry(k)?;
        self.forget(&stored, &entry);
        Some(entry)
    }

    /// Removes a stored key (named by the order or expiry index).
    fn remove_stored(&mut self, key: &MapKey) {
        let (stored, entry) = self
            .map
            .remove_entry(key)
            .expect("indexes name stored keys");
        self.forget(&stored, &entry);
    }

    /// Bookkeeping for an entry just taken out of the map.
    fn forget(&mut self, stored: &MapKey, entry: &Entry) {
        self.reclaim_fields(stored.db, &stored.key, &entry.value);
        let ordered = self.order.remove(stored);
        assert!(ordered, "order index out of step");
        self.replace_expire(stored, entry.expire_at_ms, None);
        self.key_counts[stored.db as usize] -= 1;
        self.used_bytes -= stored.key.len() + entry.value.used_bytes() + ENTRY_OVERHEAD_BYTES;
        self.resident_bytes -= entry.value.resident_bytes();
    }

    /// Removes expired keys in expiry order, at most `budget_max` of them; returns how many.
    pub fn active_expire(&mut self, now_ms: u64, budget_max: usize) -> usize {
        let mut removed = 0;
        while removed < budget_max {
            let Some(first) = self.expires.first() else {
                break;
            };
            if first.at_ms >= now_ms {
                break;
            }
            let key = first.key.clone();
            self.remove_stored(&key);
            removed += 1;
        }
        removed
    }

    /// One step of a SCAN over `db`: visits keys with token >= `cursor_token` in order, at least
    /// `count` of them (rounded up to finish the last token's group; no fewer than one group), and
    /// returns the live ones that pass `filter` plus the token to resume at (None when done).
    /// Expired keys met on the way are removed.
    pub fn scan(
        &mut self,
        db: u8,
        cursor_token: u64,
        count: usize,
        now_ms: u64,
        filter: impl Fn(&[u8], &Value) -> bool,
    ) -> (Vec<Bytes>, Option<u64>) {
        assert!((db as usize) < DB_COUNT);
        let lo = KeyRef {
            db,
            token: cursor_token,
            key: &[],
        };
        let mut out = Vec::new();
        let mut expired = Vec::new();
        let mut next = None;
        let mut current_token = None;
        let range = self
            .order
            .range::<dyn KeyLike, _>((Bound::Included(&lo as &dyn KeyLike), Bound::Unbounded))
            .map(|k| (k, &self.map[k]));
        for (visited, (k, e)) in range.enumerate() {
            if k.db != db {
                break;
            }
            if current_token != Some(k.token) && visited >= count.max(1) {
                next = Some(k.token);
                break;
            }
            current_token = Some(k.token);
            if e.is_expired(now_ms) {
                expired.push(k.clone());
            } else if filter(&k.key, &e.value) {
                out.push(k.key.clone());
            }
        }
        for k in expired {
            self.remove_stored(&k);
        }
        (out, next)
    }

    /// All live keys of `db` that pass `filter`, in keyspace order (KEYS).
    pub fn keys(&self, db: u8, now_ms: u64, filter: impl Fn(&[u8], &Value) -> bool) -> Vec<Bytes> {
        self.db_range(db)
            .filter(|(_, e)| !e.is_expired(now_ms))
            .filter(|(k, e)| filter(&k.key, &e.value))
            .map(|(k, _)| k.key.clone())
            .collect()
    }

    fn db_range(&self, db: u8) -> impl Iterator<Item = (&MapKey, &Entry)> {
        assert!((db as usize) < DB_COUNT);
        let lo = KeyRef {
            db,
            token: 0,
            key: &[],
        };
        self.order
            .range::<dyn KeyLike, _>((Bound::Included(&lo as &dyn KeyLike), Bound::Unbounded))
            .take_while(move |k| k.db == db)
            .map(|k| (k, &self.map[k]))
    }

    /// A live key of `db` picked by `seed` (RANDOMKEY); expired keys met are removed.
    pub fn random_key(&mut self, db: u8, seed: u64, now_ms: u64) -> Option<Bytes> {
        let token = mix64(seed);
        loop {
            let lo = KeyRef {
                db,
                token,
                key: &[],
            };
            let first_at_or_after = self
                .order
                .range::<dyn KeyLike, _>((Bound::Included(&lo as &dyn KeyLike), Bound::Unbounded))
                .next()
                .filter(|k| k.db == db)
                .map(|k| (k, &self.map[k]));
            let picked = match first_at_or_after {
                Some(kv) => Some(kv),
                None => self.db_range(db).next(),
            };
            let (k, e) = picked?;
            if !e.is_expired(now_ms) {
                return Some(k.key.clone());
            }
            let k = k.clone();
            self.remove_stored(&k);
        }
    }

    /// Keys stored in `db`, counting expired ones not yet removed (as Redis's DBSIZE does).
    pub fn dbsize(&self, db: u8) -> usize {
        self.key_counts[db as usize]
    }

    /// Keys with an expiry in `db` (INFO keyspace `expires=`).
    pub fn expires_count(&self, db: u8) -> usize {
        self.expire_counts[db as usize]
    }

    pub fn key_count_total(&self) -> usize {
        self.map.len()
    }

    /// Approximate bytes held by keys and values.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn flush_db(&mut self, db: u8) {
        assert!((db as usize) < DB_COUNT);
        let keys: Vec<MapKey> = self.db_range(db).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.pending
                .write_storage(storage::storage_key(k.db, &k.key), None);
            self.remove_stored(&k);
        }
        assert_eq!(self.key_counts[db as usize], 0);
        assert_eq!(self.expire_counts[db as usize], 0);
    }

    pub fn flush_all(&mut self) {
        for db in 0..DB_COUNT as u8 {
            self.flush_db(db);
        }
        self.resident_order.clear();
    }

    /// Every stored entry in keyspace order, expired or not.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Bytes, &Entry)> {
        self.order.iter().map(|k| (k.db, &k.key, &self.map[k]))
    }

    /// The live state at `now_ms`, for comparing two keyspaces.
    pub fn dump(&self, now_ms: u64) -> Vec<(u8, Bytes, Entry)> {
        self.iter()
            .filter(|(_, _, e)| !e.is_expired(now_ms))
            .map(|(db, k, e)| (db, k.clone(), e.clone()))
            .collect()
    }

    /// Checks internal bookkeeping against the map (tests and debug checks).
    pub fn check_invariants(&self) {
        let mut counts = [0usize; DB_COUNT];
        let mut expires = [0usize; DB_COUNT];
        let mut used = 0;
        assert_eq!(self.order.len(), self.map.len());
        for (k, e) in &self.map {
            assert!(self.order.contains(k));
            assert_eq!(k.token, redis_token(&k.key));
            counts[k.db as usize] += 1;
            used += k.key.len() + e.value.used_bytes() + ENTRY_OVERHEAD_BYTES;
            if let Some(at_ms) = e.expire_at_ms {
                expires[k.db as usize] += 1;
                assert!(self.expires.contains(&ExpireKey {
                    at_ms,
                    key: k.clone()
                }));
            }
        }
        assert_eq!(counts, self.key_counts);
        assert_eq!(expires, self.expire_counts);
        assert_eq!(self.expires.len(), expires.iter().sum::<usize>());
        assert_eq!(used, self.used_bytes);
        let resident: usize = self.map.values().map(|e| e.value.resident_bytes()).sum();
        assert_eq!(resident, self.resident_bytes);
    }
}

/// splitmix64 finalizer: spreads a seed over the token space.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
