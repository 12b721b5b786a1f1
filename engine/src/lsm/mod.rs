//! The log-structured merge tree of one shard: a memtable in front of leveled SSTables, with
//! a WAL for durability, a manifest of live files, MVCC snapshots and a block cache.
//!
//! Where things live: [`key`] (internal keys and their order), [`batch`] (atomic write
//! batches and their WAL payload), [`memtable`], [`snapshot`], [`version`] (the live tables per
//! level), [`iter`] (merging iterators), [`bulk`] (a range read straight from its files, for bulk
//! rewrites), [`compaction`] (what to merge, what a merge drops),
//! [`manifest`] (the durable log of version edits), [`db`] (the tree itself and its background
//! loops). Table files are in [`crate::sst`], the cache in [`crate::cache`].

pub mod batch;
pub mod bulk;
pub mod compaction;
pub mod db;
pub mod iter;
pub mod key;
pub mod manifest;
pub mod memtable;
pub mod notify;
pub mod packed;
pub mod snapshot;
#[cfg(test)]
mod tests;
pub mod version;

use std::io;
use std::path::{Path, PathBuf};

pub use batch::{get_varint, put_varint, WriteBatch};
pub use bulk::{BulkChunk, BulkScan};
pub use compaction::ExpiryFilter;
pub use db::{Lsm, LsmStats};
pub use iter::{prefix_upper_bound, DbIter, ReadOptions};
pub use packed::PackedEntries;
pub use snapshot::Snapshot;

use crate::sst::SstOptions;
use crate::wal::WalOptions;

/// The family of a user key ([`LsmOptions::key_family`]).
pub type KeyFamily = fn(&[u8]) -> u8;

/// Tuning of one tree. The defaults suit a shard of a server; tests shrink them.
#[derive(Clone)]
pub struct LsmOptions {
    /// A memtable this large becomes immutable and is flushed.
    pub memtable_bytes: usize,
    /// Immutable memtables waiting for flush before writers stall.
    pub max_immutable_memtables: usize,
    /// Level-0 files that start an L0 → L1 compaction.
    pub l0_compaction_trigger: usize,
    /// Level-0 files past which each write is delayed a little.
    pub l0_slowdown_trigger: usize,
    /// Level-0 files at which writes stall until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Target size of level 1; level n is `level_size_ratio` times level n-1.
    pub level1_bytes: u64,
    pub level_size_ratio: u64,
    /// Compaction output files are cut at about this size.
    pub target_file_bytes: u64,
    pub sst: SstOptions,
    pub wal: WalOptions,
    /// Turns expired values into tombstones during compaction (Redis expiry).
    pub expiry_filter: Option<ExpiryFilter>,
    /// Says whether every key of a user-key range `[lo, hi]` is garbage (a dropped SQL
    /// table's, a drained Redis queue's): a table whose range it covers is deleted whole, before
    /// the compaction loop picks its next merge. Without it, garbage no write ever overlaps
    /// again (a dropped table's rows on the last level) would stay for good.
    pub dead_range: Option<compaction::DeadRangeFilter>,
    /// Names the family of a user key. Keys of different families never share a table: flushes
    /// and compactions start a new file where the family changes, as if each family had a tree
    /// of its own (RocksDB's column families, with one log). Families must be contiguous key
    /// ranges: the family never decreases in key order. Without it, all keys are one family.
    pub key_family: Option<KeyFamily>,
    /// Bytes of blocks a bulk scan ([`Lsm::bulk_scan`]) reads at a time, and hands on to be
    /// decoded as one piece.
    pub bulk_chunk_bytes: u64,
}

impl Default for LsmOptions {
    fn default() -> LsmOptions {
        LsmOptions {
            memtable_bytes: 64 << 20,
            max_immutable_memtables: 2,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            level1_bytes: 256 << 20,
            level_size_ratio: 10,
            target_file_bytes: 64 << 20,
            sst: SstOptions::default(),
            wal: WalOptions::default(),
            expiry_filter: None,
            dead_range: None,
            key_family: None,
            bulk_chunk_bytes: bulk::BULK_CHUNK_BYTES,
        }
    }
}

impl LsmOptions {
    /// Panics on settings that cannot work (a configuration bug, not a runtime condition).
    pub fn validate(&self) {
        assert!(self.memtable_bytes > 0);
        assert!(self.max_immutable_memtables >= 1);
        assert!(self.l0_compaction_trigger >= 1);
        assert!(self.l0_compaction_trigger <= self.l0_slowdown_trigger);
        assert!(self.l0_slowdown_trigger <= self.l0_stop_trigger);
        assert!(self.level_size_ratio >= 2);
        assert!(self.level1_bytes > 0 && self.target_file_bytes > 0);
        assert!(self.bulk_chunk_bytes > 0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    #[error(transparent)]
    Sst(#[from] crate::sst::SstError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("lsm i/o error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lsm data corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("lsm has failed and accepts no more writes (restart to recover): {reason}")]
    Failed { reason: String },
    #[error("lsm is closing")]
    Closed,
    #[error(
        "key of {len} bytes exceeds the limit of {} bytes",
        key::USER_KEY_BYTES_MAX
    )]
    KeyTooLarge { len: usize },
    #[error(
        "value of {len} bytes exceeds the limit of {} bytes",
        batch::VALUE_BYTES_MAX
    )]
    ValueTooLarge { len: usize },
}

impl LsmError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> LsmError + '_ {
        move |source| LsmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
