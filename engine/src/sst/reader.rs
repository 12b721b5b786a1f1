//! Reads SSTables: point lookups, cursors, and whole-file verification.
//!
//! `open` reads and checks the footer, index, bloom and properties blocks and keeps them in
//! memory; data blocks are read on demand through the block cache. Every block read verifies its
//! checksum; any damage becomes [`SstError::Corrupt`] naming the block's offset.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::block::{Block, BlockIter};
use super::bloom::Bloom;
use super::format::{self, BlockHandle, FooterHandles, SstProperties, FOOTER_BYTES};
use super::{corrupt, io_error, SstError, SstInfo};
use crate::cache::BlockCache;
use crate::fs::{DmaFile, FileSystem};
use crate::lsm::key::{self, SeqNo, ValueKind};

/// Largest single read; a larger block is read in pieces (bounds one I/O buffer).
const SST_READ_BYTES_MAX: usize = 8 << 20;

/// The first 8 bytes of a user key, big-endian, zero-padded. For user keys a < b,
/// key_prefix(a) <= key_prefix(b): at the first byte where the padded forms differ, either
/// both keys have that byte, or the shorter key ended there (and is the smaller one).
fn key_prefix(user_key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = user_key.len().min(8);
    bytes[..n].copy_from_slice(&user_key[..n]);
    u64::from_be_bytes(bytes)
}

/// Values up to this size are copied out of a cached block rather than shared with it: the
/// share is an atomic count on a line of its own, a memory stall where the block is cold,
/// while the copy reads lines the seek has just touched.
const POINT_READ_COPY_BYTES_MAX: usize = 256;

/// The value at `range` of block `data`, copied or shared (see [`POINT_READ_COPY_BYTES_MAX`]).
fn value_of(data: &Bytes, range: std::ops::Range<usize>) -> Bytes {
    if range.len() <= POINT_READ_COPY_BYTES_MAX {
        Bytes::copy_from_slice(&data[range])
    } else {
        data.slice(range)
    }
}

/// What a point read's search of the index reads of each entry, side by side in one array:
/// the binary search touches this array (whose upper levels stay in the CPU's cache), not one
/// allocation per probe, and the cache key of the block it lands on is on the same line.
#[derive(Clone, Copy, Debug)]
struct IndexProbe {
    /// [`key_prefix`] of the entry's user key.
    prefix: u64,
    /// The block's offset in the file (its block-cache key).
    offset: u64,
}

/// One index entry: a data block and the last internal key in it.
#[derive(Debug)]
struct IndexEntry {
    last_key: Box<[u8]>,
    handle: BlockHandle,
}

/// An open SSTable.
pub struct SstReader<F: FileSystem> {
    path: PathBuf,
    file: F::File,
    file_id: u64,
    cache: Rc<BlockCache>,
    index: Vec<IndexEntry>,
    /// One per index entry (see [`IndexProbe`]).
    index_probes: Vec<IndexProbe>,
    bloom: Bloom,
    props: SstProperties,
    info: SstInfo,
    handles: FooterHandles,
}

impl<F: FileSystem> std::fmt::Debug for SstReader<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SstReader")
            .field("path", &self.path)
            .field("file_id", &self.file_id)
            .field("info", &self.info)
            .finish()
    }
}

impl<F: FileSystem> SstReader<F> {
    /// Opens `path` and checks its footer, index, bloom and properties. `file_id` keys its blocks
    /// in `cache` and must be unique among the shard's files, never reused.
    pub async fn open(
        fs: &F,
        path: &Path,
        file_id: u64,
        cache: Rc<BlockCache>,
    ) -> Result<Rc<Self>, SstError> {
        let file = fs.open(path, false).await.map_err(io_error(path))?;
        let file_bytes = file.size().await.map_err(io_error(path))?;
        let footer_offset = file_bytes
            .checked_sub(FOOTER_BYTES as u64)
            .ok_or_else(|| corrupt(path, 0, "file shorter than the footer"))?;
        let footer = read_exact(&file, path, footer_offset, FOOTER_BYTES, footer_offset).await?;
        let handles = format::decode_footer(&footer, footer_offset)
            .map_err(|reason| corrupt(path, footer_offset, reason))?;
        let index = read_index(&file, path, handles.index).await?;
        let bloom_raw = read_block(&file, path, handles.bloom).await?;
        let bloom = Bloom::decode(bloom_raw).map_err(|r| corrupt(path, handles.bloom.offset, r))?;
        let props_raw = read_block(&file, path, handles.properties).await?;
        let props = format::decode_properties(&props_raw)
            .map_err(|r| corrupt(path, handles.properties.offset, r))?;
        if props.format_version != handles.format_version {
            let reason = "properties format version differs from the footer's";
            return Err(corrupt(path, handles.properties.offset, reason));
        }
        check_properties_against_index(&props, &index)
            .map_err(|r| corrupt(path, handles.properties.offset, r))?;
        let info = SstInfo {
            file_bytes,
            entries: props.entries,
            tombstones: props.tombstones,
            smallest: props.smallest.clone(),
            largest: props.largest.clone(),
            seq_min: props.seq_min,
            seq_max: props.seq_max,
        };
        let index_probes = index
            .iter()
            .map(|e| IndexProbe {
                prefix: key_prefix(key::user_key(&e.last_key)),
                offset: e.handle.offset,
            })
            .collect();
        Ok(Rc::new(SstReader {
            path: path.to_path_buf(),
            file,
            file_id,
            cache,
            index,
            index_probes,
            bloom,
            props,
            info,
            handles,
        }))
    }

    /// False when the file certainly holds no version of `user_key` (bloom filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.bloom.may_contain(user_key)
    }

    /// The newest version of `user_key` with seq ≤ `snapshot`: `(seq, kind, value)`; a tombstone
    /// is returned as such (kind `Delete`, empty value) so the caller stops looking further down.
    pub async fn get(
        &self,
        user_key: &[u8],
        snapshot: SeqNo,
    ) -> Result<Option<(SeqNo, ValueKind, Bytes)>, SstError> {
        let hash = super::bloom::hash(user_key);
        if !self.bloom.may_contain_hash(hash) {
            return Ok(None);
        }
        let target = key::encode(user_key, snapshot.min(key::SEQ_MAX), key::SEEK_KIND);
        for i in self.index_lower_bound(&target)..self.index.len() {
            // A cached block is searched where the cache holds it: no reference taken on it
            // but the value's.
            let offset = self.index_probes[i].offset;
            let seek = |data: &Bytes| self.seek_in_block(i, data, user_key, hash, &target);
            let found = match self.cache.with_block(self.file_id, offset, seek) {
                Some(found) => found?,
                None => seek(self.data_block(i).await?.data())?,
            };
            if let Some(found) = found {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// [`SstReader::get`] in data block `i` (bytes `data`): None when every entry of the block
    /// is before `target` (only if the index key overstated the block's last key; the next
    /// block's first entry then decides), else the answer. `hash` is `user_key`'s.
    ///
    /// A block that holds no entry of `user_key` answers "none": the index chose it as the
    /// first block whose last key is ≥ `target`, so a later block's entries of `user_key`
    /// would sort before that last key, that is, in this block.
    #[allow(clippy::type_complexity)]
    fn seek_in_block(
        &self,
        i: usize,
        data: &Bytes,
        user_key: &[u8],
        hash: u64,
        target: &[u8],
    ) -> Result<Option<Option<(SeqNo, ValueKind, Bytes)>>, SstError> {
        let mut it = Block::parse_checked_before(data.as_ref()).iter();
        let in_block = it
            .seek_point(user_key, hash, target)
            .map_err(|r| self.block_corrupt(i, r))?;
        if !in_block {
            return Ok(Some(None));
        }
        if !it.valid() {
            return Ok(None);
        }
        let parsed = key::parse(it.key()).expect("block iterator checks keys");
        if parsed.user_key != user_key {
            return Ok(Some(None));
        }
        Ok(Some(Some((
            parsed.seq,
            parsed.kind,
            value_of(data, it.value_range()),
        ))))
    }

    /// A cursor over all entries; unpositioned until a seek.
    pub fn iter(self: &Rc<Self>) -> SstIter<F> {
        SstIter {
            reader: self.clone(),
            window: None,
            sequential_blocks: 0,
            block_index: 0,
            block: None,
        }
    }

    pub fn info(&self) -> &SstInfo {
        &self.info
    }

    pub fn properties(&self) -> &SstProperties {
        &self.props
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_id(&self) -> u64 {
        self.file_id
    }

    /// Where each data block is stored, in key order (for inspection).
    pub fn data_block_handles(&self) -> impl Iterator<Item = BlockHandle> + '_ {
        self.index.iter().map(|entry| entry.handle)
    }

    /// Where the index, bloom and properties blocks are stored (for inspection).
    pub fn meta_block_handles(&self) -> [(&'static str, BlockHandle); 3] {
        let h = self.handles;
        [
            ("index", h.index),
            ("bloom", h.bloom),
            ("properties", h.properties),
        ]
    }

    /// Bytes of the in-memory bloom filter.
    pub fn bloom_bytes(&self) -> usize {
        self.bloom.bytes()
    }

    /// About how many bytes the entries with user keys in `[start, end)` take (`end` None:
    /// no bound): the stored size of the data blocks wholly inside the range, and the key
    /// and value bytes of the in-range entries of the (at most two) blocks at its ends,
    /// which are read for it (a range between two tables' keys in one block counts 0).
    pub async fn approximate_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<u64, SstError> {
        let first = self.index_lower_bound(&key::encode(start, key::SEQ_MAX, key::SEEK_KIND));
        if first >= self.index.len() {
            return Ok(0);
        }
        // The block holding the first key ≥ `end` (or the last block) may hold keys of the
        // range too.
        let last = match end {
            Some(end) => self
                .index_lower_bound(&key::encode(end, key::SEQ_MAX, key::SEEK_KIND))
                .min(self.index.len() - 1),
            None => self.index.len() - 1,
        };
        let inner: u64 = self.index[(first + 1).min(last)..last]
            .iter()
            .map(|entry| entry.handle.size)
            .sum();
        let mut ends = self.block_bytes_in_range(first, start, end).await?;
        if last != first {
            ends += self.block_bytes_in_range(last, start, end).await?;
        }
        Ok(inner + ends)
    }

    /// Key and value bytes of block `i`'s entries whose user keys lie in `[start, end)`.
    async fn block_bytes_in_range(
        &self,
        i: usize,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<u64, SstError> {
        let block = self.data_block(i).await?;
        let mut it = block.iter();
        it.seek_to_first().map_err(|r| self.block_corrupt(i, r))?;
        let mut bytes = 0;
        while it.valid() {
            let user_key = key::user_key(it.key());
            if end.is_some_and(|end| user_key >= end) {
                break;
            }
            if user_key >= start {
                bytes += (it.key().len() + it.value().len()) as u64;
            }
            it.next().map_err(|r| self.block_corrupt(i, r))?;
        }
        Ok(bytes)
    }

    /// First data block whose last key is ≥ `target`: the only one that can hold the first
    /// entry ≥ `target`.
    fn index_lower_bound(&self, target: &[u8]) -> usize {
        // Prefixes order as user keys do (an entry with a smaller prefix is before the
        // target, one with a larger prefix is not): only the entries sharing the target's
        // prefix need whole keys compared.
        let prefix = key_prefix(key::user_key(target));
        let low = self.index_probes.partition_point(|p| p.prefix < prefix);
        let high = low + self.index_probes[low..].partition_point(|p| p.prefix == prefix);
        low + self.index[low..high]
            .partition_point(|entry| key::compare(&entry.last_key, target).is_lt())
    }

    /// Data block `i`, from the cache or from the file (then cached).
    async fn data_block(&self, i: usize) -> Result<Block, SstError> {
        let handle = self.index[i].handle;
        if let Some(bytes) = self.cache.get(self.file_id, handle.offset) {
            // Cached only once `Block::parse` accepted it (below).
            return Ok(Block::parse_checked_before(bytes));
        }
        let raw = Bytes::from(read_block(&self.file, &self.path, handle).await?);
        let block = Block::parse(raw.clone()).map_err(|r| self.block_corrupt(i, r))?;
        self.cache.insert(self.file_id, handle.offset, raw);
        Ok(block)
    }

    /// Data block `i` for a sequential scan: from the cache if there, else from `window` (raw
    /// file bytes read ahead), reading a new window of up to [`READAHEAD_BYTES`] of the blocks
    /// from `i` on when `window` does not hold it. Blocks read this way are not cached: a scan
    /// (or a compaction) would only push out the blocks point reads use.
    async fn data_block_sequential(
        &self,
        i: usize,
        window: &mut Option<(u64, Bytes)>,
    ) -> Result<Block, SstError> {
        let handle = self.index[i].handle;
        if let Some(bytes) = self.cache.get(self.file_id, handle.offset) {
            // Cached only once `Block::parse` accepted it (below).
            return Ok(Block::parse_checked_before(bytes));
        }
        let len = usize::try_from(handle.size).expect("handle sizes are bounded")
            + format::BLOCK_TRAILER_BYTES;
        let covered = window.as_ref().is_some_and(|(start, bytes)| {
            handle.offset >= *start && handle.offset + len as u64 <= *start + bytes.len() as u64
        });
        if !covered {
            // Whole blocks from `i` on, at least block `i` itself.
            let mut end = handle.offset + len as u64;
            for entry in &self.index[i + 1..] {
                let next_end =
                    entry.handle.offset + entry.handle.size + format::BLOCK_TRAILER_BYTES as u64;
                if next_end - handle.offset > READAHEAD_BYTES as u64 {
                    break;
                }
                end = next_end;
            }
            let raw = read_exact(
                &self.file,
                &self.path,
                handle.offset,
                (end - handle.offset) as usize,
                handle.offset,
            )
            .await?;
            *window = Some((handle.offset, Bytes::from(raw)));
        }
        let (start, bytes) = window.as_ref().expect("window covers the block");
        let at = (handle.offset - start) as usize;
        let decoded = format::decode_block(&bytes[at..at + len])
            .map_err(|reason| corrupt(&self.path, handle.offset, reason))?;
        Block::parse(Bytes::from(decoded)).map_err(|r| self.block_corrupt(i, r))
    }

    /// Data blocks in the file.
    pub fn data_blocks(&self) -> usize {
        self.index.len()
    }

    /// The first data block that may hold `internal_key` or a later key (the count of data
    /// blocks if none does).
    pub fn block_at_or_after(&self, internal_key: &[u8]) -> usize {
        self.index_lower_bound(internal_key)
    }

    /// The last internal key of data block `i`.
    pub fn block_last_key(&self, i: usize) -> &[u8] {
        &self.index[i].last_key
    }

    /// Bytes of data blocks `blocks` in the file, trailers included.
    pub fn blocks_bytes(&self, blocks: std::ops::Range<usize>) -> u64 {
        self.index[blocks]
            .iter()
            .map(|e| e.handle.size + format::BLOCK_TRAILER_BYTES as u64)
            .sum()
    }

    /// Data blocks `blocks` (not empty), read in one go and not decoded: bytes that any
    /// thread can decode ([`RawBlocks::for_each_entry`]). Not cached, as a scan's blocks are
    /// not.
    pub async fn read_blocks(&self, blocks: std::ops::Range<usize>) -> Result<RawBlocks, SstError> {
        assert!(!blocks.is_empty() && blocks.end <= self.index.len());
        let start = self.index[blocks.start].handle.offset;
        let mut spans = Vec::with_capacity(blocks.len());
        for entry in &self.index[blocks] {
            let at = usize::try_from(entry.handle.offset - start).expect("blocks fit memory");
            let len = usize::try_from(entry.handle.size).expect("handle sizes are bounded")
                + format::BLOCK_TRAILER_BYTES;
            spans.push((at, len));
        }
        let (at, len) = spans.last().copied().expect("not empty");
        let bytes = read_exact(&self.file, &self.path, start, at + len, start).await?;
        Ok(RawBlocks {
            path: self.path.clone(),
            start,
            bytes,
            spans,
        })
    }

    fn block_corrupt(&self, i: usize, reason: &str) -> SstError {
        corrupt(&self.path, self.index[i].handle.offset, reason)
    }
}

/// Whole data blocks of one file as read from it ([`SstReader::read_blocks`]): `Send`, so a
/// bulk scan decodes some of them on the shard's helper thread.
pub struct RawBlocks {
    path: PathBuf,
    /// File offset of `bytes[0]`.
    start: u64,
    bytes: Vec<u8>,
    /// Each block's offset in `bytes` and length, trailer included.
    spans: Vec<(usize, usize)>,
}

impl RawBlocks {
    /// Every entry of the blocks in order, as (internal key, value); each block's checksum is
    /// verified first, and a corrupt block stops it.
    pub fn for_each_entry<E>(
        &self,
        corrupted: impl Fn(SstError) -> E,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for &(at, len) in &self.spans {
            let offset = self.start + at as u64;
            let error = |reason: &str| corrupted(corrupt(&self.path, offset, reason));
            let decoded = format::decode_block(&self.bytes[at..at + len]).map_err(|r| error(&r))?;
            let block = Block::parse(Bytes::from(decoded)).map_err(error)?;
            let mut entries = block.iter();
            entries.seek_to_first().map_err(error)?;
            while entries.valid() {
                each(entries.key(), entries.value())?;
                entries.next().map_err(error)?;
            }
        }
        Ok(())
    }

    /// The path of the file the blocks came from (for errors).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How far a sequential scan reads ahead: one read of this many bytes of whole blocks instead of
/// one read per 4 KiB block (the allocation stays within the shard's 128 KiB rule).
pub const READAHEAD_BYTES: usize = 128 << 10;

/// Reads `len` bytes at `pos`, in reads of at most [`SST_READ_BYTES_MAX`]; a short file is
/// corruption of the structure starting at `offset_for_error`.
async fn read_exact<D: DmaFile>(
    file: &D,
    path: &Path,
    pos: u64,
    len: usize,
    offset_for_error: u64,
) -> Result<Vec<u8>, SstError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let want = (len - out.len()).min(SST_READ_BYTES_MAX);
        let at = pos + out.len() as u64;
        let piece = file.read_at(at, want).await.map_err(io_error(path))?;
        if piece.len() < want {
            return Err(corrupt(
                path,
                offset_for_error,
                "block extends past end of file",
            ));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Reads a block and its trailer, verifies the checksum and decompresses it.
async fn read_block<D: DmaFile>(
    file: &D,
    path: &Path,
    handle: BlockHandle,
) -> Result<Vec<u8>, SstError> {
    let len = usize::try_from(handle.size).expect("handle sizes are bounded")
        + format::BLOCK_TRAILER_BYTES;
    let stored = read_exact(file, path, handle.offset, len, handle.offset).await?;
    format::decode_block(&stored).map_err(|reason| corrupt(path, handle.offset, reason))
}

/// Reads the index block and checks it: strictly increasing keys, and data blocks that tile
/// the file from offset 0 up to the index block.
async fn read_index<D: DmaFile>(
    file: &D,
    path: &Path,
    handle: BlockHandle,
) -> Result<Vec<IndexEntry>, SstError> {
    let raw = read_block(file, path, handle).await?;
    let err = |reason: &str| corrupt(path, handle.offset, reason);
    let block = Block::parse(Bytes::from(raw)).map_err(err)?;
    let mut it = block.iter();
    it.seek_to_first().map_err(err)?;
    let mut index: Vec<IndexEntry> = Vec::new();
    while it.valid() {
        let data = BlockHandle::decode(it.value()).map_err(err)?;
        if key::parse(it.key()).is_none() {
            return Err(err("index key is not an internal key"));
        }
        let expected_offset = index.last().map_or(0, |e| e.handle.end());
        if data.offset != expected_offset || data.end() > handle.offset {
            return Err(err("data block handle out of place"));
        }
        if let Some(prev) = index.last() {
            if !key::compare(&prev.last_key, it.key()).is_lt() {
                return Err(err("index keys not increasing"));
            }
        }
        index.push(IndexEntry {
            last_key: it.key().into(),
            handle: data,
        });
        it.next().map_err(err)?;
    }
    if index.last().map(|e| e.handle.end()) != Some(handle.offset) {
        return Err(err("data blocks do not end at the index block"));
    }
    Ok(index)
}

fn check_properties_against_index(
    props: &SstProperties,
    index: &[IndexEntry],
) -> Result<(), &'static str> {
    if props.data_blocks != index.len() as u64 {
        return Err("data block count differs from the index");
    }
    let (first, last) = (index.first(), index.last());
    if last.map(|e| &*e.last_key) != Some(&props.largest[..]) {
        return Err("largest key differs from the index's last key");
    }
    if first.is_some_and(|e| key::compare(&props.smallest, &e.last_key).is_gt()) {
        return Err("smallest key after the first block's last key");
    }
    Ok(())
}

/// A positioned cursor over a file's entries in internal-key order. After an error it is
/// invalid until the next seek.
pub struct SstIter<F: FileSystem> {
    reader: Rc<SstReader<F>>,
    block_index: usize,
    block: Option<BlockIter>,
    /// Raw bytes read ahead for sequential movement: (file offset, bytes).
    window: Option<(u64, Bytes)>,
    /// Blocks entered by moving forward since the last `seek`: read-ahead starts once a scan
    /// proves long ([`READAHEAD_AFTER_BLOCKS`]), so a short scan after a seek reads only the
    /// blocks it needs.
    sequential_blocks: u32,
}

/// Forward block moves after a `seek` before reads go through the read-ahead window.
const READAHEAD_AFTER_BLOCKS: u32 = 2;

impl<F: FileSystem> SstIter<F> {
    pub async fn seek_to_first(&mut self) -> Result<(), SstError> {
        self.block = None;
        if self.reader.index.is_empty() {
            return Ok(());
        }
        // A scan from the start is long: read ahead at once.
        self.sequential_blocks = READAHEAD_AFTER_BLOCKS;
        self.load_next_block(0).await?;
        let result = self.block_mut().seek_to_first();
        self.check(result)?;
        self.skip_exhausted_blocks().await
    }

    /// Positions at the first entry ≥ `internal_key` by `key::compare` (invalid if none).
    pub async fn seek(&mut self, internal_key: &[u8]) -> Result<(), SstError> {
        assert!(
            key::parse(internal_key).is_some(),
            "seek: not an internal key"
        );
        self.block = None;
        self.sequential_blocks = 0;
        let i = self.reader.index_lower_bound(internal_key);
        if i == self.reader.index.len() {
            return Ok(());
        }
        self.load_block(i).await?;
        let result = self.block_mut().seek(internal_key);
        self.check(result)?;
        self.skip_exhausted_blocks().await
    }

    pub async fn next(&mut self) -> Result<(), SstError> {
        if !self.advance_in_block()? {
            self.finish_advance().await?;
        }
        Ok(())
    }

    /// The part of [`Self::next`] that needs no I/O: moves to the next entry of the loaded
    /// block. False when the block ran out, and [`Self::finish_advance`] must load the next.
    /// A scan takes this path for all but one entry per block, without building a future.
    pub fn advance_in_block(&mut self) -> Result<bool, SstError> {
        assert!(self.valid(), "next on an invalid SstIter");
        let result = self.block_mut().next();
        self.check(result)?;
        Ok(self.valid())
    }

    /// Ends a move that [`Self::advance_in_block`] could not finish.
    pub async fn finish_advance(&mut self) -> Result<(), SstError> {
        self.skip_exhausted_blocks().await
    }

    pub fn valid(&self) -> bool {
        self.block.as_ref().is_some_and(BlockIter::valid)
    }

    /// The current internal key.
    pub fn key(&self) -> &[u8] {
        self.block
            .as_ref()
            .expect("key on an invalid SstIter")
            .key()
    }

    /// The current value, in the cached block.
    pub fn value(&self) -> &[u8] {
        self.block
            .as_ref()
            .expect("value on an invalid SstIter")
            .value()
    }

    /// The current value as a slice of the cached block (no copy) that outlives the cursor.
    pub fn value_bytes(&self) -> Bytes {
        self.block
            .as_ref()
            .expect("value on an invalid SstIter")
            .value_bytes()
    }

    async fn load_block(&mut self, i: usize) -> Result<(), SstError> {
        self.block = None;
        let block = self.reader.data_block(i).await?;
        self.block_index = i;
        self.block = Some(block.iter());
        Ok(())
    }

    /// Loads block `i` as the next one of a sequential scan (reading ahead).
    async fn load_next_block(&mut self, i: usize) -> Result<(), SstError> {
        self.block = None;
        let block = self
            .reader
            .data_block_sequential(i, &mut self.window)
            .await?;
        self.block_index = i;
        self.block = Some(block.iter());
        Ok(())
    }

    /// Moves past the end of the current block into the next non-empty one, if any.
    async fn skip_exhausted_blocks(&mut self) -> Result<(), SstError> {
        while !self.valid() && self.block_index + 1 < self.reader.index.len() {
            self.load_next_block(self.block_index + 1).await?;
            let result = self.block_mut().seek_to_first();
            self.check(result)?;
        }
        if !self.valid() {
            self.block = None;
        }
        Ok(())
    }

    fn block_mut(&mut self) -> &mut BlockIter {
        self.block.as_mut().expect("a loaded block")
    }

    fn check(&mut self, result: Result<(), &'static str>) -> Result<(), SstError> {
        result.map_err(|reason| {
            self.block = None;
            self.reader.block_corrupt(self.block_index, reason)
        })
    }
}

/// Decodes a whole file: every block's checksum, strictly increasing keys, index keys equal to
/// their blocks' last keys, every user key in the bloom filter, and properties that match the
/// entries. Returns the file's summary.
pub async fn verify<F: FileSystem>(fs: &F, path: &Path) -> Result<SstInfo, SstError> {
    let reader = SstReader::open(fs, path, 0, Rc::new(BlockCache::disabled())).await?;
    let mut tally = Tally::default();
    for i in 0..reader.index.len() {
        let mut it = reader.data_block(i).await?.iter();
        let err = |reason: &str| reader.block_corrupt(i, reason);
        it.seek_to_first().map_err(err)?;
        while it.valid() {
            tally.add(it.key(), it.value().len()).map_err(err)?;
            let user_key = key::user_key(it.key());
            if !reader.may_contain(user_key) {
                return Err(err("user key missing from the bloom filter"));
            }
            it.next().map_err(err)?;
        }
        if tally.last_key != *reader.index[i].last_key {
            return Err(err("index key differs from the block's last key"));
        }
    }
    tally
        .check(&reader.props)
        .map_err(|r| corrupt(path, reader.handles.properties.offset, r))?;
    Ok(reader.info.clone())
}

/// What `verify` recounts from the entries.
#[derive(Default)]
struct Tally {
    entries: u64,
    tombstones: u64,
    seq_min: SeqNo,
    seq_max: SeqNo,
    raw_key_bytes: u64,
    raw_value_bytes: u64,
    smallest: Vec<u8>,
    last_key: Vec<u8>,
}

impl Tally {
    fn add(&mut self, internal_key: &[u8], value_len: usize) -> Result<(), &'static str> {
        let parsed = key::parse(internal_key).ok_or("bad internal key")?;
        if self.entries == 0 {
            self.smallest = internal_key.to_vec();
            self.seq_min = parsed.seq;
        } else if !key::compare(&self.last_key, internal_key).is_lt() {
            return Err("keys not strictly increasing");
        }
        self.entries += 1;
        self.tombstones += u64::from(parsed.kind == ValueKind::Delete);
        self.seq_min = self.seq_min.min(parsed.seq);
        self.seq_max = self.seq_max.max(parsed.seq);
        self.raw_key_bytes += internal_key.len() as u64;
        self.raw_value_bytes += value_len as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(internal_key);
        Ok(())
    }

    fn check(&self, p: &SstProperties) -> Result<(), &'static str> {
        let counted = (self.entries, self.tombstones, self.seq_min, self.seq_max);
        if counted != (p.entries, p.tombstones, p.seq_min, p.seq_max) {
            return Err("entry, tombstone or sequence counts differ from the properties");
        }
        if (self.raw_key_bytes, self.raw_value_bytes) != (p.raw_key_bytes, p.raw_value_bytes) {
            return Err("raw key/value byte counts differ from the properties");
        }
        if self.smallest != p.smallest || self.last_key != p.largest {
            return Err("smallest/largest keys differ from the properties");
        }
        Ok(())
    }
}

/// Visits every entry of a file in order (`helios inspect sst`), without caching its blocks.
pub async fn dump<F: FileSystem>(
    fs: &F,
    path: &Path,
    mut visit: impl FnMut(&[u8], &[u8]),
) -> Result<SstInfo, SstError> {
    let reader = SstReader::open(fs, path, 0, Rc::new(BlockCache::disabled())).await?;
    let mut it = reader.iter();
    it.seek_to_first().await?;
    while it.valid() {
        visit(it.key(), it.value());
        it.next().await?;
    }
    Ok(reader.info.clone())
}
