//! The block format shared by data and index blocks: prefix-compressed entries with restart
//! points, then the restart offsets and their count.
//!
//! ```text
//! entry    = shared_len:varint unshared_len:varint value_len:varint key[shared_len..] value
//! block    = entry* restart_offset:u32* [bucket:u16* bucket_count:u16] restart_count_and_flag:u32
//! ```
//!
//! Every `restart_interval`-th entry (the first included) stores its whole key (`shared_len` 0)
//! and its offset is a restart point, so a seek binary-searches the restarts and then scans at
//! most one interval. Keys are internal keys ([`crate::lsm::key`]); the decoder checks each
//! one parses, because `key::compare` panics on keys shorter than the trailer.
//!
//! A data block may carry a **hash index** (bit 31 of the last word set): buckets that map a
//! user key's hash to the restart interval holding its newest version. A point read then
//! reads one bucket and scans one interval instead of binary-searching the restart points:
//! each probe of that search is a cache line of a block that is rarely in the CPU's cache
//! (`pgbench -S` over 1 M rows spent ~18 % of the shard's time seeking in blocks). Each
//! bucket is `0xFFFF` (empty) or `fingerprint:u8 << 8 | restart_index:u8`, where the
//! fingerprint is the hash's top byte; a user key starts at bucket
//! `(hash mod 2^32) × bucket_count >> 32` and probes linearly until an empty bucket. There are
//! twice as many buckets as user keys, so at least one is empty.

use std::cmp::Ordering;

use bytes::Bytes;

use super::bloom;
use super::format::{put_varint, Decoder, BLOCK_BYTES_MAX};
use crate::lsm::key;

/// Bytes of one restart offset and of the restart count.
const U32_BYTES: usize = 4;
/// Bytes of a hash-index bucket and of the bucket count.
const U16_BYTES: usize = 2;
/// Bit of the block's last word that says a hash index precedes it.
const HASH_INDEX_FLAG: u32 = 1 << 31;
/// An empty hash-index bucket.
const BUCKET_EMPTY: u16 = 0xFFFF;
/// Restart points a block may have and still get a hash index: a bucket holds the restart's
/// index in a byte, and 255 with fingerprint 255 would read as an empty bucket.
const HASH_INDEX_RESTARTS_MAX: usize = 255;
/// Buckets per user key in a hash index: half empty, so probes are short and end.
const HASH_INDEX_BUCKETS_PER_KEY: usize = 2;

/// The bucket where `hash`'s probe starts.
fn first_bucket(hash: u64, bucket_count: usize) -> usize {
    (((hash & 0xffff_ffff) * bucket_count as u64) >> 32) as usize
}

fn fingerprint(hash: u64) -> u8 {
    (hash >> 56) as u8
}

/// Builds one block in memory.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    run_len: usize,
    last_key: Vec<u8>,
    entries: usize,
    /// Whether finished blocks get a hash index (data blocks do; the index block does not).
    hash_index: bool,
    /// Each distinct user key's hash and the restart interval of its first (newest) entry.
    key_restarts: Vec<(u64, usize)>,
}

impl BlockBuilder {
    pub fn new(restart_interval: usize) -> BlockBuilder {
        assert!(restart_interval >= 1);
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval,
            run_len: 0,
            last_key: Vec::new(),
            entries: 0,
            hash_index: false,
            key_restarts: Vec::new(),
        }
    }

    /// A builder whose blocks carry a hash index for point reads (see the module doc).
    pub fn with_hash_index(restart_interval: usize) -> BlockBuilder {
        BlockBuilder {
            hash_index: true,
            ..BlockBuilder::new(restart_interval)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Size of the finished block if it were finished now.
    pub fn size_estimate(&self) -> usize {
        let index = if self.hash_index {
            self.key_restarts.len() * HASH_INDEX_BUCKETS_PER_KEY * U16_BYTES + U16_BYTES
        } else {
            0
        };
        self.buf.len() + (self.restarts.len() + 1) * U32_BYTES + index
    }

    /// Appends an entry; the caller guarantees keys strictly increase.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.add_hashed(key, value, None);
    }

    /// [`BlockBuilder::add`], given the user key's [`bloom::hash`] when the caller already
    /// computed it (the SSTable writer does, for its bloom filter), so it is not computed twice.
    pub fn add_hashed(&mut self, key: &[u8], value: &[u8], user_key_hash: Option<u64>) {
        if self.hash_index
            && (self.entries == 0 || key::user_key(key) != key::user_key(&self.last_key))
        {
            debug_assert!(user_key_hash.is_none_or(|h| h == bloom::hash(key::user_key(key))));
            let hash = user_key_hash.unwrap_or_else(|| bloom::hash(key::user_key(key)));
            // The entry goes to the current interval unless it opens a new one (below).
            let starts_interval = self.run_len == self.restart_interval || self.entries == 0;
            let interval = self.restarts.len() - usize::from(!starts_interval);
            self.key_restarts.push((hash, interval));
        }
        let shared = if self.run_len == self.restart_interval || self.entries == 0 {
            self.restarts.push(self.offset_u32(self.buf.len()));
            self.run_len = 0;
            0
        } else {
            common_prefix_len(&self.last_key, key)
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        assert!(
            self.buf.len() <= BLOCK_BYTES_MAX,
            "block over BLOCK_BYTES_MAX"
        );
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.run_len += 1;
        self.entries += 1;
    }

    /// Appends the restart array to the entries and returns the block, leaving the builder empty.
    pub fn finish(&mut self) -> Vec<u8> {
        assert!(!self.is_empty(), "finishing an empty block");
        for &restart in &self.restarts {
            self.buf.extend_from_slice(&restart.to_le_bytes());
        }
        let mut count = self.offset_u32(self.restarts.len());
        if self.append_hash_index() {
            count |= HASH_INDEX_FLAG;
        }
        self.buf.extend_from_slice(&count.to_le_bytes());
        let block = std::mem::take(&mut self.buf);
        self.key_restarts.clear();
        self.restarts.clear();
        self.run_len = 0;
        self.last_key.clear();
        self.entries = 0;
        block
    }

    /// Appends the hash index's buckets and count, if the block gets one.
    fn append_hash_index(&mut self) -> bool {
        let bucket_count = self.key_restarts.len() * HASH_INDEX_BUCKETS_PER_KEY;
        if !self.hash_index
            || self.restarts.len() > HASH_INDEX_RESTARTS_MAX
            || bucket_count > usize::from(u16::MAX)
        {
            return false;
        }
        assert!(
            bucket_count > self.key_restarts.len(),
            "an empty bucket ends every probe"
        );
        let mut buckets = vec![BUCKET_EMPTY; bucket_count];
        for &(hash, interval) in &self.key_restarts {
            let mut at = first_bucket(hash, bucket_count);
            while buckets[at] != BUCKET_EMPTY {
                at = (at + 1) % bucket_count;
            }
            assert!(interval < self.restarts.len());
            buckets[at] = u16::from(fingerprint(hash)) << 8 | interval as u16;
            assert_ne!(buckets[at], BUCKET_EMPTY);
        }
        for bucket in buckets {
            self.buf.extend_from_slice(&bucket.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(bucket_count as u16).to_le_bytes());
        true
    }

    fn offset_u32(&self, value: usize) -> u32 {
        u32::try_from(value).expect("block offsets fit u32 (BLOCK_BYTES_MAX)")
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A decoded block: its bytes and where its restart array starts. `D` holds the bytes: owned
/// ([`Bytes`]) for cursors that outlive a cache lookup, borrowed (`&[u8]`) for a point read,
/// which seeks inside the block cache's copy and so pays no reference count.
#[derive(Clone, Debug)]
pub struct Block<D = Bytes> {
    data: D,
    /// Offset of the restart array; entries occupy `[0, restarts_at)`.
    restarts_at: usize,
    restart_count: usize,
    /// Offset and length of the hash index's buckets (0 buckets: no index).
    buckets_at: usize,
    bucket_count: usize,
}

impl<D: AsRef<[u8]>> Block<D> {
    pub fn data(&self) -> &D {
        &self.data
    }

    fn restart(&self, i: usize) -> usize {
        read_u32(self.data.as_ref(), self.restarts_at + i * U32_BYTES) as usize
    }

    fn bucket(&self, i: usize) -> u16 {
        let at = self.buckets_at + i * U16_BYTES;
        let data = self.data.as_ref();
        u16::from_le_bytes([data[at], data[at + 1]])
    }
}

/// Where a block's parts lie, from its trailing words: (restarts_at, restart_count,
/// buckets_at, bucket_count). Checks only that they fit the block.
fn locate(data: &[u8]) -> Result<(usize, usize, usize, usize), &'static str> {
    let len = data.len();
    if len < 2 * U32_BYTES {
        return Err("block too short for a restart array");
    }
    let last = read_u32(data, len - U32_BYTES);
    let restart_count = (last & !HASH_INDEX_FLAG) as usize;
    let mut end = len - U32_BYTES;
    let (mut buckets_at, mut bucket_count) = (end, 0);
    if last & HASH_INDEX_FLAG != 0 {
        if end < U16_BYTES {
            return Err("block too short for a hash index");
        }
        bucket_count = usize::from(u16::from_le_bytes([data[end - 2], data[end - 1]]));
        end -= U16_BYTES;
        let bytes = bucket_count * U16_BYTES;
        if bucket_count == 0 || bytes > end {
            return Err("hash index bucket count out of range");
        }
        end -= bytes;
        buckets_at = end;
    }
    let restarts_bytes = restart_count
        .checked_mul(U32_BYTES)
        .filter(|&bytes| restart_count >= 1 && bytes < end)
        .ok_or("restart count out of range")?;
    Ok((
        end - restarts_bytes,
        restart_count,
        buckets_at,
        bucket_count,
    ))
}

impl<D: AsRef<[u8]> + Clone> Block<D> {
    /// Checks the restart array (entries are checked as they are decoded).
    pub fn parse(data: D) -> Result<Block<D>, &'static str> {
        let (restarts_at, restart_count, buckets_at, bucket_count) = locate(data.as_ref())?;
        let block = Block {
            data,
            restarts_at,
            restart_count,
            buckets_at,
            bucket_count,
        };
        if block.restart(0) != 0 {
            return Err("first restart point is not 0");
        }
        for i in 1..restart_count {
            let (prev, this) = (block.restart(i - 1), block.restart(i));
            if this <= prev || this >= restarts_at {
                return Err("restart points not increasing within the entries");
            }
        }
        if restarts_at == 0 {
            return Err("block has no entries");
        }
        if bucket_count > 0 {
            if restart_count > HASH_INDEX_RESTARTS_MAX {
                return Err("hash index in a block with too many restarts");
            }
            let buckets = (0..bucket_count).map(|i| block.bucket(i));
            if buckets.clone().all(|b| b != BUCKET_EMPTY) {
                return Err("hash index without an empty bucket");
            }
            if buckets
                .filter(|&b| b != BUCKET_EMPTY)
                .any(|b| usize::from(b & 0xff) >= restart_count)
            {
                return Err("hash index bucket names a missing restart");
            }
        }
        Ok(block)
    }

    /// A block whose bytes [`Block::parse`] accepted before (the block cache holds only
    /// those): the restart array is located, not checked again. A point read of a cached
    /// block spent ~2.5 % of a `pgbench -S` server's time re-checking it.
    pub fn parse_checked_before(data: D) -> Block<D> {
        let (restarts_at, restart_count, buckets_at, bucket_count) =
            locate(data.as_ref()).expect("checked before");
        let block = Block {
            data,
            restarts_at,
            restart_count,
            buckets_at,
            bucket_count,
        };
        debug_assert!(Block::parse(block.data.clone()).is_ok());
        block
    }

    pub fn iter(&self) -> BlockIter<D> {
        BlockIter {
            block: self.clone(),
            key: Vec::new(),
            value: 0..0,
            next_at: 0,
            next_restart: 0,
            valid: false,
        }
    }
}

impl BlockIter<Bytes> {
    pub fn value_bytes(&self) -> Bytes {
        self.block.data.slice(self.value_range())
    }
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// A cursor over a block's entries. Decoding errors are reasons; the caller adds the location.
#[derive(Debug)]
pub struct BlockIter<D = Bytes> {
    block: Block<D>,
    key: Vec<u8>,
    /// Where the current value lies in the block: read in place, and made a [`Bytes`] only
    /// when asked ([`BlockIter::value_bytes`]).
    value: std::ops::Range<usize>,
    /// Offset of the entry after the current one.
    next_at: usize,
    /// The first restart point at or after `next_at` (an index into the restart array), so
    /// stepping knows whether an entry starts a run without searching the array.
    next_restart: usize,
    valid: bool,
}

impl<D: AsRef<[u8]>> BlockIter<D> {
    pub fn valid(&self) -> bool {
        self.valid
    }

    pub fn key(&self) -> &[u8] {
        assert!(self.valid);
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        assert!(self.valid);
        &self.block.data.as_ref()[self.value.clone()]
    }

    /// The current value as a slice of the block that outlives the cursor.
    /// Where the current value lies in the block's bytes.
    pub fn value_range(&self) -> std::ops::Range<usize> {
        assert!(self.valid);
        self.value.clone()
    }

    pub fn seek_to_first(&mut self) -> Result<(), &'static str> {
        self.seek_to_restart(0);
        self.next()
    }

    /// Advances to the next entry (or the first, right after a restart seek); invalid at the end.
    pub fn next(&mut self) -> Result<(), &'static str> {
        if let Some(value) = self.step()? {
            self.value = value;
        }
        Ok(())
    }

    /// Decodes the entry at `next_at` into `key` and returns where its value lies; leaves
    /// `value` alone (a seek slices only the value it stops at). None at the end.
    fn step(&mut self) -> Result<Option<std::ops::Range<usize>>, &'static str> {
        let at = self.next_at;
        self.valid = false;
        if at >= self.block.restarts_at {
            return Ok(None);
        }
        let is_restart = self.passes_restart(at);
        let mut d = Decoder::new(&self.block.data.as_ref()[at..self.block.restarts_at]);
        let shared = d.len(BLOCK_BYTES_MAX)?;
        let unshared = d.len(BLOCK_BYTES_MAX)?;
        let value_len = d.len(BLOCK_BYTES_MAX)?;
        if shared > self.key.len() || (is_restart && shared != 0) {
            return Err("bad shared key length");
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(d.bytes(unshared)?);
        let value_at = at + d.pos();
        d.bytes(value_len)?;
        if key::parse(&self.key).is_none() {
            return Err("entry key is not a valid internal key");
        }
        self.next_at = at + d.pos();
        self.valid = true;
        Ok(Some(value_at..value_at + value_len))
    }

    /// Whether the entry at `at` starts a run (a restart point; the first entry always does),
    /// moving `next_restart` past it. Restart points increase (checked by `Block::parse`), so
    /// this is amortized O(1) as the cursor moves forward.
    fn passes_restart(&mut self, at: usize) -> bool {
        while self.next_restart < self.block.restart_count
            && self.block.restart(self.next_restart) < at
        {
            self.next_restart += 1;
        }
        let is_restart = self.next_restart < self.block.restart_count
            && self.block.restart(self.next_restart) == at;
        if is_restart {
            self.next_restart += 1;
        }
        at == 0 || is_restart
    }

    /// Positions at the first entry with key >= `target` by `key::compare`; invalid if none.
    pub fn seek(&mut self, target: &[u8]) -> Result<(), &'static str> {
        // Last restart whose key is < target: the answer lies in its run or just after it.
        let (mut lo, mut hi) = (0, self.block.restart_count);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            self.seek_to_restart(mid);
            if self.step()?.is_none() {
                return Err("restart point past the entries");
            }
            if key::compare(&self.key, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.seek_to_restart(lo);
        loop {
            let Some(value) = self.step()? else {
                return Ok(());
            };
            if key::compare(&self.key, target) != Ordering::Less {
                self.value = value;
                return Ok(());
            }
        }
    }

    /// Positions the cursor as [`BlockIter::seek`] to `target` would, for a point read of
    /// `user_key` (whose [`bloom::hash`] is `hash`; `target` is one of its internal keys).
    /// Returns false, leaving the cursor invalid, when the block's hash index shows that the
    /// block holds no entry of `user_key`. Without an index it is `seek`.
    pub fn seek_point(
        &mut self,
        user_key: &[u8],
        hash: u64,
        target: &[u8],
    ) -> Result<bool, &'static str> {
        let bucket_count = self.block.bucket_count;
        if bucket_count == 0 {
            self.seek(target)?;
            return Ok(true);
        }
        let mut at = first_bucket(hash, bucket_count);
        for _ in 0..bucket_count {
            let bucket = self.block.bucket(at);
            if bucket == BUCKET_EMPTY {
                self.valid = false;
                return Ok(false);
            }
            if (bucket >> 8) as u8 == fingerprint(hash)
                && self.seek_in_interval(usize::from(bucket & 0xff), user_key, target)?
            {
                return Ok(true);
            }
            at = (at + 1) % bucket_count;
        }
        Err("hash index without an empty bucket")
    }

    /// Scans from restart `interval` for `target`: true (positioned as `seek` would be) if
    /// the scan meets `user_key`, false if it passes where `user_key` would be without
    /// meeting it (a bucket of another key with the same fingerprint).
    fn seek_in_interval(
        &mut self,
        interval: usize,
        user_key: &[u8],
        target: &[u8],
    ) -> Result<bool, &'static str> {
        self.seek_to_restart(interval);
        let mut met = false;
        loop {
            let Some(value) = self.step()? else {
                return Ok(met);
            };
            let found = key::user_key(&self.key);
            met |= found == user_key;
            if !met && found > user_key {
                return Ok(false);
            }
            if key::compare(&self.key, target) != Ordering::Less {
                self.value = value;
                return Ok(met);
            }
        }
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.next_at = self.block.restart(i);
        self.next_restart = i;
        self.valid = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::key::ValueKind;

    fn ikey(user: &str, seq: u64) -> Vec<u8> {
        key::encode(user.as_bytes(), seq, ValueKind::Put)
    }

    fn build(keys: &[Vec<u8>], interval: usize) -> Block {
        build_with(BlockBuilder::new(interval), keys)
    }

    /// A block of `keys`, the i-th with value "v{i}".
    fn build_with(mut builder: BlockBuilder, keys: &[Vec<u8>]) -> Block {
        for (i, k) in keys.iter().enumerate() {
            builder.add(k, format!("v{i}").as_bytes());
        }
        Block::parse(Bytes::from(builder.finish())).unwrap()
    }

    #[test]
    fn iterates_and_seeks() {
        let keys: Vec<_> = (0..100).map(|i| ikey(&format!("key{i:03}"), 5)).collect();
        for interval in [1, 2, 16, 1000] {
            let block = build(&keys, interval);
            let mut it = block.iter();
            it.seek_to_first().unwrap();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), format!("v{i}").as_bytes());
                it.next().unwrap();
            }
            assert!(!it.valid());
            for (i, k) in keys.iter().enumerate() {
                it.seek(k).unwrap();
                assert_eq!(it.key(), &k[..], "interval {interval}");
                assert_eq!(it.value(), format!("v{i}").as_bytes());
                // Stepping on from a seek crosses restart points as a scan from the start does.
                it.next().unwrap();
                assert_eq!(
                    it.valid().then(|| it.key()),
                    keys.get(i + 1).map(|k| &k[..])
                );
                // A newer seq of the same user key sorts before it, so seeks land on it too.
                it.seek(&ikey(&format!("key{i:03}"), 9)).unwrap();
                assert_eq!(it.key(), &k[..]);
            }
            it.seek(&ikey("key999", 0)).unwrap();
            assert!(!it.valid());
            it.seek(&ikey("a", 0)).unwrap();
            assert_eq!(it.key(), &keys[0][..]);
        }
    }

    /// The bytes of a block of `keys`, each with value `value`.
    fn raw_block(mut builder: BlockBuilder, keys: &[Vec<u8>], value: &[u8]) -> Vec<u8> {
        for k in keys {
            builder.add(k, value);
        }
        builder.finish()
    }

    #[test]
    fn garbage_blocks_are_rejected_without_panics() {
        let keys: Vec<_> = (0..40).map(|i| ikey(&format!("k{i}"), 1)).collect();
        for builder in [BlockBuilder::new(4), BlockBuilder::with_hash_index(4)] {
            let good = raw_block(builder, &keys, b"value");
            flip_every_bit(&good, &keys);
        }
    }

    /// Every single-bit flip of `good` either fails to parse or reads without a panic.
    fn flip_every_bit(good: &[u8], keys: &[Vec<u8>]) {
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.to_vec();
                bad[at] ^= 1 << bit;
                let Ok(block) = Block::parse(Bytes::from(bad)) else {
                    continue;
                };
                let mut it = block.iter();
                let mut steps = 0;
                let _ = it.seek(&keys[17]);
                let user_key = key::user_key(&keys[17]);
                let _ = it.seek_point(user_key, bloom::hash(user_key), &keys[17]);
                if it.seek_to_first().is_ok() {
                    while it.valid() && it.next().is_ok() {
                        steps += 1;
                        assert!(steps <= good.len());
                    }
                }
            }
        }
    }

    fn build_indexed(keys: &[Vec<u8>], interval: usize) -> Block {
        let block = build_with(BlockBuilder::with_hash_index(interval), keys);
        assert!(block.bucket_count > 0);
        block
    }

    /// Sorted, distinct internal keys: user keys from a small alphabet, several versions each.
    fn sorted_keys(raw: Vec<(u8, u64, bool)>) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = raw
            .into_iter()
            .map(|(user, seq, put)| {
                let kind = if put {
                    ValueKind::Put
                } else {
                    ValueKind::Delete
                };
                key::encode(format!("user{user:03}").as_bytes(), seq, kind)
            })
            .collect();
        keys.sort_by(|a, b| key::compare(a, b));
        keys.dedup_by(|a, b| {
            key::user_key(a) == key::user_key(b)
                && key::parse(a).unwrap().seq == key::parse(b).unwrap().seq
        });
        keys
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// A point seek through the hash index lands where a binary-searching seek does, and
        /// says "not here" only for user keys the block does not hold.
        #[test]
        fn point_seeks_through_the_hash_index_agree_with_seeks(
            raw in proptest::collection::vec((0u8..40, 1u64..20, proptest::bool::ANY), 1..150),
            interval in 1usize..8,
            probes in proptest::collection::vec((0u8..45, 0u64..22), 1..80),
        ) {
            let keys = sorted_keys(raw);
            let indexed = build_indexed(&keys, interval);
            let plain = build(&keys, interval);
            for (user, seq) in probes {
                let user_key = format!("user{user:03}").into_bytes();
                let target = key::encode(&user_key, seq, key::SEEK_KIND);
                let mut expected = plain.iter();
                expected.seek(&target).unwrap();
                let mut it = indexed.iter();
                let in_block = it.seek_point(&user_key, bloom::hash(&user_key), &target).unwrap();
                let holds = keys.iter().any(|k| key::user_key(k) == user_key.as_slice());
                proptest::prop_assert_eq!(in_block, holds, "user key {:?}", user_key);
                if in_block {
                    proptest::prop_assert_eq!(it.valid(), expected.valid());
                    if it.valid() {
                        proptest::prop_assert_eq!(it.key(), expected.key());
                        proptest::prop_assert_eq!(it.value(), expected.value());
                    }
                }
            }
        }
    }

    #[test]
    fn damaged_hash_indexes_are_rejected() {
        let keys: Vec<_> = (0..20).map(|i| ikey(&format!("key{i:03}"), 5)).collect();
        let good = raw_block(BlockBuilder::with_hash_index(4), &keys, b"v");
        assert!(Block::parse(Bytes::from(good.clone())).is_ok());
        let len = good.len();
        let bucket_count = usize::from(u16::from_le_bytes([good[len - 6], good[len - 5]]));
        assert_eq!(bucket_count, 40);
        let buckets_at = len - 6 - 2 * bucket_count;
        // A bucket naming a restart the block does not have.
        let mut bad = good.clone();
        let full = (0..bucket_count)
            .find(|i| bad[buckets_at + 2 * i..][..2] != [0xff, 0xff])
            .unwrap();
        bad[buckets_at + 2 * full] = 200;
        assert!(Block::parse(Bytes::from(bad)).is_err());
        // No empty bucket: a probe would never end.
        let mut bad = good.clone();
        for i in 0..bucket_count {
            bad[buckets_at + 2 * i] = 0;
            bad[buckets_at + 2 * i + 1] = 0;
        }
        assert!(Block::parse(Bytes::from(bad)).is_err());
        // A bucket count larger than the block.
        let mut bad = good.clone();
        bad[len - 6..len - 4].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(Block::parse(Bytes::from(bad)).is_err());
        // Zero buckets with the flag set.
        let mut bad = good;
        bad[len - 6..len - 4].copy_from_slice(&0u16.to_le_bytes());
        assert!(Block::parse(Bytes::from(bad)).is_err());
    }
}
