//! SSTables: immutable sorted files of internal keys and values, the LSM tree's on-disk runs.
//!
//! A file is data blocks, an index block, a bloom filter block, a properties block and a 64-byte
//! footer (byte by byte in `engine/FORMAT.md`, section "SSTable"). [`SstWriter`] builds one from
//! entries in internal-key order and makes it durable; [`SstReader`] opens one, keeps the index,
//! bloom and properties in memory and reads data blocks through the shard's
//! [`BlockCache`](crate::cache::BlockCache). Every block read is checksummed; damage is reported
//! as [`SstError::Corrupt`] with the file and the block's offset, never returned as data.
//! [`verify`] and [`dump`] decode a whole file for `helios inspect` / `helios check`.

use std::io;
use std::path::{Path, PathBuf};

mod block;
mod bloom;
pub mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use format::{BlockHandle, Compression, SstProperties, SST_FORMAT_VERSION};
pub use reader::{dump, verify, RawBlocks, SstIter, SstReader};
pub use writer::{EncodedTable, SstEncoder, SstWriter};

use crate::lsm::key::SeqNo;

/// Default target size of a data block.
pub const SST_BLOCK_BYTES_DEFAULT: usize = 4096;
/// Default entries between restart points. A point read's block is usually not in the CPU's
/// cache, so every line a seek touches is a memory stall: 4 rather than LevelDB's 16 trades
/// ~1 % more key bytes for a shorter scan (readrandom over 1 M keys: +6–12 % reads/s).
pub const SST_RESTART_INTERVAL_DEFAULT: usize = 4;
/// Default bloom filter size per distinct user key (≈ 1% false positives).
pub const SST_BLOOM_BITS_PER_KEY_DEFAULT: u32 = 10;
/// Bound on `restart_interval`: beyond it a seek scans too far within a block.
pub const SST_RESTART_INTERVAL_MAX: usize = 1024;
/// Bound on `bloom_bits_per_key`.
pub const SST_BLOOM_BITS_PER_KEY_MAX: u32 = 64;

/// How a writer lays out a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SstOptions {
    /// A data block is cut once it reaches this size (a single larger entry makes a larger
    /// block).
    pub block_bytes: usize,
    /// Every this many entries a block stores a whole key (a restart point).
    pub restart_interval: usize,
    pub compression: Compression,
    pub bloom_bits_per_key: u32,
    /// Data blocks carry a hash index for point reads (see `block.rs`).
    pub hash_index: bool,
}

impl Default for SstOptions {
    fn default() -> SstOptions {
        SstOptions {
            block_bytes: SST_BLOCK_BYTES_DEFAULT,
            restart_interval: SST_RESTART_INTERVAL_DEFAULT,
            compression: Compression::None,
            bloom_bits_per_key: SST_BLOOM_BITS_PER_KEY_DEFAULT,
            hash_index: true,
        }
    }
}

/// Summary of a file: what the writer produced, or what a reader found in the properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstInfo {
    pub file_bytes: u64,
    pub entries: u64,
    pub tombstones: u64,
    /// Smallest and largest internal keys.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub seq_min: SeqNo,
    pub seq_max: SeqNo,
}

#[derive(Debug, thiserror::Error)]
pub enum SstError {
    #[error("sst {path}: i/o error: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file's bytes are damaged or not an SSTable; `offset` is the start of the damaged
    /// block (or of the footer).
    #[error("sst {path}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// `finish` on a writer that was given no entries (an SSTable is never empty).
    #[error("sst {path}: no entries written")]
    Empty { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SstError + '_ {
    move |source| SstError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> SstError {
    SstError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}
