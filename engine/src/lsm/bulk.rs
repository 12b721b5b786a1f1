//! Reading a key range straight from its table files, a chunk of whole blocks at a time, for
//! a bulk rewrite (ADD PRIMARY KEY reads every row of its table). A [`BulkChunk`] is `Send`:
//! the caller decodes some chunks on the shard's helper thread while the shard reads the next
//! ones and decodes others, so the scan runs on two cores. [`super::Lsm::bulk_scan`] plans
//! one only where it reads what an iterator would.

use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use super::key::{self, ValueKind};
use super::version::Table;
use super::LsmError;
use crate::fs::FileSystem;
use crate::sst::RawBlocks;

/// Bytes of blocks read per chunk by default ([`super::LsmOptions::bulk_chunk_bytes`]): a few milliseconds of decoding, so that a chunk decoded
/// on the shard holds up its other clients no longer than a batch of a bulk COPY does.
pub const BULK_CHUNK_BYTES: u64 = 2 << 20;

/// The chunks of a range's tables, in key order, with the tables pinned (a compaction that
/// replaces them cannot delete their files while the scan holds this).
pub struct BulkScan<F: FileSystem> {
    tables: Vec<Rc<Table<F>>>,
    chunks: Vec<ChunkPlan>,
    lower: Arc<[u8]>,
    upper: Arc<[u8]>,
}

struct ChunkPlan {
    table: usize,
    blocks: Range<usize>,
    /// The user key of the entry just before the chunk's first block (in this table or the
    /// one before): versions of it in the chunk are older than one already read.
    after: Option<Vec<u8>>,
}

/// One chunk's blocks as read, with what [`BulkChunk::for_each`] needs to pick its entries.
pub struct BulkChunk {
    raw: RawBlocks,
    lower: Arc<[u8]>,
    upper: Arc<[u8]>,
    after: Option<Vec<u8>>,
}

impl<F: FileSystem> BulkScan<F> {
    /// Cuts the blocks of `tables` (one sorted level's files overlapping the range, in key
    /// order) that may hold keys of `[lower, upper)` into chunks.
    pub(super) fn plan(
        tables: Vec<Rc<Table<F>>>,
        lower: &[u8],
        upper: &[u8],
        chunk_bytes: u64,
    ) -> BulkScan<F> {
        let mut seek = Vec::new();
        key::encode_into(&mut seek, lower, key::SEQ_MAX, ValueKind::Put);
        let mut chunks = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        for (t, table) in tables.iter().enumerate() {
            let reader = &table.reader;
            let first = reader.block_at_or_after(&seek);
            if let Some(before) = first.checked_sub(1) {
                after = Some(key::user_key(reader.block_last_key(before)).to_vec());
            }
            let (mut start, mut bytes) = (first, 0);
            for i in first..reader.data_blocks() {
                let last_of_range = key::user_key(reader.block_last_key(i)) >= upper;
                let end = i + 1;
                bytes += reader.blocks_bytes(i..end);
                if last_of_range
                    || end == reader.data_blocks()
                    || bytes + reader.blocks_bytes(end..end + 1) > chunk_bytes
                {
                    chunks.push(ChunkPlan {
                        table: t,
                        blocks: start..end,
                        after: after.take(),
                    });
                    after = Some(key::user_key(reader.block_last_key(i)).to_vec());
                    (start, bytes) = (end, 0);
                }
                if last_of_range {
                    break;
                }
            }
        }
        BulkScan {
            tables,
            chunks,
            lower: lower.into(),
            upper: upper.into(),
        }
    }

    /// Chunks to read, in key order.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Reads chunk `i` (one read of its blocks).
    pub async fn read(&self, i: usize) -> Result<BulkChunk, LsmError> {
        let plan = &self.chunks[i];
        let raw = self.tables[plan.table]
            .reader
            .read_blocks(plan.blocks.clone())
            .await?;
        Ok(BulkChunk {
            raw,
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            after: plan.after.clone(),
        })
    }
}

impl BulkChunk {
    /// Calls `each(user key, value)` for every live key of the range in the chunk, in order,
    /// with its newest value: the planned tables hold only puts, all visible, so that is the
    /// first version of each key (versions order newest first), unless the one before the
    /// chunk was of the same key. A corrupt block stops it (`corrupted`).
    pub fn for_each<E>(
        &self,
        corrupted: impl Fn(LsmError) -> E,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut previous = self.after.clone().unwrap_or_default();
        let mut have_previous = self.after.is_some();
        self.raw.for_each_entry(
            |e| corrupted(e.into()),
            |internal_key, value| {
                let parsed = key::parse(internal_key).ok_or_else(|| {
                    corrupted(LsmError::Corrupt {
                        reason: format!(
                            "a malformed internal key in {}",
                            self.raw.path().display()
                        ),
                    })
                })?;
                let user_key = parsed.user_key;
                if have_previous && previous == user_key {
                    return Ok(());
                }
                previous.clear();
                previous.extend_from_slice(user_key);
                have_previous = true;
                if user_key < &self.lower[..] || user_key >= &self.upper[..] {
                    return Ok(());
                }
                debug_assert_eq!(parsed.kind, ValueKind::Put, "planned tables hold only puts");
                each(user_key, value)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use futures_lite::future::block_on;

    use super::*;
    use crate::cache::BlockCache;
    use crate::lsm::manifest::FileMeta;
    use crate::memfs::MemFs;
    use crate::sst::{SstOptions, SstReader, SstWriter};

    /// (user key, sequence number, value).
    type Version = (Vec<u8>, u64, Vec<u8>);

    /// One sorted level of `tables` (each a run of versions in internal-key order) over tiny
    /// blocks.
    fn level(fs: &MemFs, tables: &[Vec<Version>]) -> Vec<Rc<Table<MemFs>>> {
        let opts = SstOptions {
            block_bytes: 64,
            ..SstOptions::default()
        };
        let cache = Rc::new(BlockCache::disabled());
        (tables.iter().enumerate())
            .map(|(id, entries)| {
                let path = PathBuf::from(format!("/t/{id}.sst"));
                block_on(async {
                    let mut writer = SstWriter::create(fs, &path, opts).await.unwrap();
                    for (user_key, seq, value) in entries {
                        let internal = key::encode(user_key, *seq, ValueKind::Put);
                        writer.add(&internal, value).await.unwrap();
                    }
                    let info = writer.finish().await.unwrap();
                    let reader = SstReader::open(fs, &path, id as u64, cache.clone())
                        .await
                        .unwrap();
                    let meta = FileMeta {
                        id: id as u64,
                        level: 1,
                        file_bytes: info.file_bytes,
                        entries: info.entries,
                        tombstones: 0,
                        smallest: info.smallest,
                        largest: info.largest,
                        seq_min: info.seq_min,
                        seq_max: info.seq_max,
                    };
                    Rc::new(Table { meta, reader })
                })
            })
            .collect()
    }

    fn scan_all(scan: &BulkScan<MemFs>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..scan.len() {
            let chunk = block_on(scan.read(i)).unwrap();
            chunk
                .for_each(
                    |e| e,
                    |k, v| {
                        out.push((k.to_vec(), v.to_vec()));
                        Ok(())
                    },
                )
                .unwrap();
        }
        out
    }

    /// Against a model: each key of the range once, with its newest value, where a key's
    /// versions straddle blocks, chunks and tables, and bounds fall inside blocks.
    #[test]
    fn chunks_give_each_key_of_the_range_once_with_its_newest_value() {
        let fs = MemFs::new();
        block_on(crate::fs::FileSystem::create_dir_all(
            &fs,
            std::path::Path::new("/t"),
        ))
        .unwrap();
        let mut entries = Vec::new();
        for i in 0..300u32 {
            let versions = 1 + u64::from(i * 7 % 4);
            for v in 0..versions {
                // Newest (highest sequence) first, as internal keys order.
                let seq = 100 - v;
                let value = format!("{i}@{seq}{}", "x".repeat((i % 13) as usize));
                entries.push((format!("k{i:04}").into_bytes(), seq, value.into_bytes()));
            }
        }
        // Tables cut between two versions of one key.
        let cuts: Vec<usize> = [entries.len() / 4, entries.len() / 2, entries.len() * 3 / 4]
            .iter()
            .map(|&c| {
                (c..entries.len())
                    .find(|&c| entries[c - 1].0 == entries[c].0)
                    .unwrap()
            })
            .collect();
        let tables = vec![
            entries[..cuts[0]].to_vec(),
            entries[cuts[0]..cuts[1]].to_vec(),
            entries[cuts[1]..cuts[2]].to_vec(),
            entries[cuts[2]..].to_vec(),
        ];
        let tables = level(&fs, &tables);
        for (lower, upper) in [("k", "l"), ("k0017", "k0288"), ("k0100x", "k0101")] {
            let expected: Vec<(Vec<u8>, Vec<u8>)> = entries
                .iter()
                .enumerate()
                .filter(|(n, e)| *n == 0 || entries[n - 1].0 != e.0)
                .map(|(_, e)| (e.0.clone(), e.2.clone()))
                .filter(|(k, _)| &k[..] >= lower.as_bytes() && &k[..] < upper.as_bytes())
                .collect();
            for chunk_bytes in [1, 150, 400, BULK_CHUNK_BYTES] {
                let scan = BulkScan::plan(
                    tables.clone(),
                    lower.as_bytes(),
                    upper.as_bytes(),
                    chunk_bytes,
                );
                assert_eq!(
                    scan_all(&scan),
                    expected,
                    "range [{lower}, {upper}), chunks of {chunk_bytes} bytes"
                );
            }
        }
    }
}
