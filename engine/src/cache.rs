//! The per-shard block cache: decoded (decompressed, checksum-verified) SSTable data blocks,
//! keyed by `(file_id, block_offset)` and bounded in bytes.
//!
//! Single-threaded by design (thread-per-core: each shard owns one, shared through `Rc`), so no
//! locks. Eviction is quick_cache's `unsync::Cache`, a CLOCK-Pro-like policy that resists scans
//! (one compaction or full iteration does not flush the hot set out).
//!
//! Invalidation is lazy: file ids are never reused, so blocks of a deleted file are never asked
//! for again and simply age out. [`BlockCache::remove_file`] exists for callers that want the
//! memory back at once; it walks the whole cache.

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use quick_cache::unsync::Cache;
use quick_cache::Weighter;

/// Bytes charged per cached block on top of its contents: the map slot, the key and the `Bytes`
/// header. A rough figure; it keeps many tiny blocks from overrunning the byte budget.
pub const BLOCK_CACHE_ENTRY_OVERHEAD_BYTES: u64 = 64;

/// Typical block size, used only to pre-size the cache's item table.
const BLOCK_CACHE_TYPICAL_BLOCK_BYTES: u64 = 4096;

/// Bound on the pre-sized item table, so a huge byte capacity does not allocate a huge table up
/// front (the table still grows on demand).
const BLOCK_CACHE_ITEMS_ESTIMATE_MAX: u64 = 1 << 20;

type Key = (u64, u64);

#[derive(Clone, Copy, Debug, Default)]
struct BlockWeighter;

impl Weighter<Key, Bytes> for BlockWeighter {
    fn weight(&self, _key: &Key, block: &Bytes) -> u64 {
        block_weight(block.len())
    }
}

fn block_weight(len: usize) -> u64 {
    len as u64 + BLOCK_CACHE_ENTRY_OVERHEAD_BYTES
}

/// A byte-bounded cache of decoded SSTable blocks. Capacity 0 turns caching off.
pub struct BlockCache {
    /// `None` when caching is off.
    cache: Option<RefCell<Cache<Key, Bytes, BlockWeighter>>>,
    capacity_bytes: u64,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("used_bytes", &self.used_bytes())
            .field("hits", &self.hits.get())
            .field("misses", &self.misses.get())
            .finish()
    }
}

impl BlockCache {
    pub fn new(capacity_bytes: u64) -> BlockCache {
        let cache = (capacity_bytes > 0).then(|| {
            let items = (capacity_bytes / BLOCK_CACHE_TYPICAL_BLOCK_BYTES)
                .clamp(1, BLOCK_CACHE_ITEMS_ESTIMATE_MAX);
            RefCell::new(Cache::with_weighter(
                items as usize,
                capacity_bytes,
                BlockWeighter,
            ))
        });
        BlockCache {
            cache,
            capacity_bytes,
            hits: Cell::new(0),
            misses: Cell::new(0),
        }
    }

    /// A cache that caches nothing (for one-off scans such as `verify`).
    pub fn disabled() -> BlockCache {
        BlockCache::new(0)
    }

    /// The cached block, counting a hit or a miss.
    pub fn get(&self, file_id: u64, offset: u64) -> Option<Bytes> {
        self.with_block(file_id, offset, Bytes::clone)
    }

    /// `read` applied to the cached block at `offset` of file `file_id`, in place (no
    /// reference count taken). `read` must not use the cache.
    pub fn with_block<R>(
        &self,
        file_id: u64,
        offset: u64,
        read: impl FnOnce(&Bytes) -> R,
    ) -> Option<R> {
        let found = self
            .cache
            .as_ref()
            .and_then(|cache| cache.borrow().get(&(file_id, offset)).map(read));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.set(counter.get() + 1);
        found
    }

    /// Caches a block. A block that alone exceeds the capacity is not cached.
    pub fn insert(&self, file_id: u64, offset: u64, block: Bytes) {
        let Some(cache) = self.cache.as_ref() else {
            return;
        };
        if block_weight(block.len()) > self.capacity_bytes {
            return;
        }
        let mut cache = cache.borrow_mut();
        cache.insert((file_id, offset), block);
        debug_assert!(cache.weight() <= self.capacity_bytes);
    }

    /// Drops every block of `file_id` now. Optional (see the module docs); O(cached blocks).
    pub fn remove_file(&self, file_id: u64) {
        if let Some(cache) = self.cache.as_ref() {
            cache.borrow_mut().retain(|key, _| key.0 != file_id);
        }
    }

    /// Bytes charged for the cached blocks (contents plus per-entry overhead); ≤ capacity.
    pub fn used_bytes(&self) -> u64 {
        self.cache
            .as_ref()
            .map_or(0, |cache| cache.borrow().weight())
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| cache.borrow().len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    pub fn misses(&self) -> u64 {
        self.misses.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[test]
    fn eviction_keeps_used_bytes_within_capacity() {
        let capacity = 64 << 10;
        let cache = BlockCache::new(capacity);
        for i in 0..1000u64 {
            let len = 100 + (i as usize * 997) % 8000;
            cache.insert(i % 7, i * 4096, block(len, i as u8));
            assert!(cache.used_bytes() <= capacity, "after insert {i}");
        }
        assert!(cache.len() > 1);
        // What is cached is what was inserted.
        for i in 0..1000u64 {
            if let Some(b) = cache.get(i % 7, i * 4096) {
                assert_eq!(b.len(), 100 + (i as usize * 997) % 8000);
                assert!(b.iter().all(|&x| x == i as u8));
            }
        }
    }

    #[test]
    fn counts_hits_and_misses() {
        let cache = BlockCache::new(1 << 20);
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, block(10, 1));
        assert_eq!(cache.get(1, 0).unwrap(), block(10, 1));
        assert_eq!(cache.get(1, 0).unwrap(), block(10, 1));
        assert!(cache.get(1, 4096).is_none());
        assert_eq!((cache.hits(), cache.misses()), (2, 2));
        assert_eq!(cache.used_bytes(), 10 + BLOCK_CACHE_ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn oversized_blocks_and_zero_capacity_are_not_cached() {
        let cache = BlockCache::new(1000);
        cache.insert(1, 0, block(1000, 1));
        assert!(cache.is_empty());
        assert!(cache.get(1, 0).is_none());
        let off = BlockCache::disabled();
        off.insert(1, 0, block(10, 1));
        assert!(off.get(1, 0).is_none());
        assert_eq!((off.used_bytes(), off.misses()), (0, 1));
    }

    #[test]
    fn remove_file_drops_only_that_file() {
        let cache = BlockCache::new(1 << 20);
        for offset in 0..10 {
            cache.insert(1, offset, block(10, 1));
            cache.insert(2, offset, block(10, 2));
        }
        cache.remove_file(1);
        assert_eq!(cache.len(), 10);
        assert!(cache.get(1, 3).is_none());
        assert!(cache.get(2, 3).is_some());
    }
}
