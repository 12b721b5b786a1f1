//! The block format shared by data and index blocks: prefix-compressed entries with restart
//! points, then the restart offsets and their count.
//!
//! ```text
//! entry    = shared_len:varint unshared_len:varint value_len:varint key[shared_len..] value
//! block    = entry* restart_offset:u32* restart_count:u32
//! ```
//!
//! Every `restart_interval`-th entry (the first included) stores its whole key (`shared_len` 0)
//! and its offset is a restart point, so a seek binary-searches the restarts and then scans at
//! most one interval. Keys are internal keys ([`crate::lsm::key`]); the decoder checks each
//! one parses, because `key::compare` panics on keys shorter than the trailer.

use std::cmp::Ordering;

use bytes::Bytes;

use super::format::{put_varint, Decoder, BLOCK_BYTES_MAX};
use crate::lsm::key;

/// Bytes of one restart offset and of the restart count.
const U32_BYTES: usize = 4;

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
        self.buf.len() + (self.restarts.len() + 1) * U32_BYTES
    }

    /// Appends an entry; the caller guarantees keys strictly increase.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
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
        let count = self.offset_u32(self.restarts.len());
        self.buf.extend_from_slice(&count.to_le_bytes());
        let block = std::mem::take(&mut self.buf);
        self.restarts.clear();
        self.run_len = 0;
        self.last_key.clear();
        self.entries = 0;
        block
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
}

impl<D: AsRef<[u8]>> Block<D> {
    pub fn data(&self) -> &D {
        &self.data
    }

    fn restart(&self, i: usize) -> usize {
        read_u32(self.data.as_ref(), self.restarts_at + i * U32_BYTES) as usize
    }
}

impl<D: AsRef<[u8]> + Clone> Block<D> {
    /// Checks the restart array (entries are checked as they are decoded).
    pub fn parse(data: D) -> Result<Block<D>, &'static str> {
        let len = data.as_ref().len();
        if len < 2 * U32_BYTES {
            return Err("block too short for a restart array");
        }
        let restart_count = read_u32(data.as_ref(), len - U32_BYTES) as usize;
        let restarts_bytes = restart_count
            .checked_mul(U32_BYTES)
            .filter(|&bytes| restart_count >= 1 && bytes < len)
            .ok_or("restart count out of range")?;
        let restarts_at = len - U32_BYTES - restarts_bytes;
        let block = Block {
            data,
            restarts_at,
            restart_count,
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
        Ok(block)
    }

    /// A block whose bytes [`Block::parse`] accepted before (the block cache holds only
    /// those): the restart array is located, not checked again. A point read of a cached
    /// block spent ~2.5 % of a `pgbench -S` server's time re-checking it.
    pub fn parse_checked_before(data: D) -> Block<D> {
        let len = data.as_ref().len();
        let restart_count = read_u32(data.as_ref(), len - U32_BYTES) as usize;
        let restarts_at = len - U32_BYTES - restart_count * U32_BYTES;
        let block = Block {
            data,
            restarts_at,
            restart_count,
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
        let mut builder = BlockBuilder::new(interval);
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

    #[test]
    fn garbage_blocks_are_rejected_without_panics() {
        let keys: Vec<_> = (0..40).map(|i| ikey(&format!("k{i}"), 1)).collect();
        let mut builder = BlockBuilder::new(4);
        for k in &keys {
            builder.add(k, b"value");
        }
        let good = builder.finish();
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let Ok(block) = Block::parse(Bytes::from(bad)) else {
                    continue;
                };
                let mut it = block.iter();
                let mut steps = 0;
                let _ = it.seek(&keys[17]);
                if it.seek_to_first().is_ok() {
                    while it.valid() && it.next().is_ok() {
                        steps += 1;
                        assert!(steps <= good.len());
                    }
                }
            }
        }
    }
}
