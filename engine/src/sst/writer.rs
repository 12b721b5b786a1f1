//! Writes one SSTable: entries in internal-key order in, a durable file out.
//!
//! Output is buffered and written O_DIRECT-style in aligned chunks of [`SST_WRITE_CHUNK_BYTES`];
//! the last chunk is zero-padded to 4096, then the file is truncated to its exact length, synced,
//! and its directory synced. Nothing may refer to the file (manifest) before `finish` returns.

use std::path::{Path, PathBuf};

use super::format::{
    self, encode_block, encode_footer, BlockHandle, Compression, FooterHandles, SstProperties,
    SST_FORMAT_VERSION,
};
use super::{block::BlockBuilder, bloom, io_error, SstError, SstInfo, SstOptions};
use super::{SST_BLOOM_BITS_PER_KEY_MAX, SST_RESTART_INTERVAL_MAX};
use crate::fs::{DmaFile, FileSystem};
use crate::lsm::key::{self, SeqNo, ValueKind};

/// Size of one write. Bounds the writer's buffer, except while one oversized block passes.
/// Each write is awaited before the writer builds more, so every write pays the disk's
/// latency: at 128 KiB, writing a COPY's million pgbench rows (69 MB) took about 390 ms on
/// the 2-core VM; at 1 MiB, 260–330 ms.
pub const SST_WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Alignment of writes (O_DIRECT).
const ALIGN: usize = 4096;
/// Largest value the writer accepts; with the key it must fit a block.
pub const SST_VALUE_BYTES_MAX: usize = format::BLOCK_BYTES_MAX - (1 << 20);

const _: () = assert!(SST_WRITE_CHUNK_BYTES.is_multiple_of(ALIGN));

/// Running totals for the properties block.
#[derive(Debug, Default)]
struct Stats {
    entries: u64,
    tombstones: u64,
    seq_min: SeqNo,
    seq_max: SeqNo,
    data_blocks: u64,
    raw_key_bytes: u64,
    raw_value_bytes: u64,
    smallest: Vec<u8>,
}

/// The CPU half of writing a table: entries in, the file's bytes out. It touches no file, so
/// it runs on any thread ([`crate::rt::Runtime::offload`]): an ingestion builds some of its
/// tables on the shard's helper thread and the rest on the shard.
pub struct SstEncoder {
    opts: SstOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    /// Encoded bytes not yet taken; starts at file offset `taken`.
    buf: Vec<u8>,
    taken: u64,
    /// Hashes of the distinct user keys, for the bloom filter.
    key_hashes: Vec<u64>,
    last_key: Vec<u8>,
    stats: Stats,
}

/// A whole table encoded in memory ([`SstEncoder::into_encoded`]), for [`SstWriter::write_encoded`].
pub struct EncodedTable {
    /// The file's bytes, zero-padded to the write alignment.
    bytes: Vec<u8>,
    file_bytes: u64,
    info: SstInfo,
}

impl SstEncoder {
    /// Option values out of range are bugs (panics).
    pub fn new(opts: SstOptions) -> SstEncoder {
        check_options(&opts);
        SstEncoder {
            opts,
            data: if opts.hash_index {
                BlockBuilder::with_hash_index(opts.restart_interval)
            } else {
                BlockBuilder::new(opts.restart_interval)
            },
            index: BlockBuilder::new(1),
            buf: Vec::with_capacity(SST_WRITE_CHUNK_BYTES + opts.block_bytes * 2),
            taken: 0,
            key_hashes: Vec::new(),
            last_key: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// An encoder that expects a table of about `bytes` (its buffer reserved up front, for
    /// [`Self::into_encoded`]).
    pub fn with_capacity(opts: SstOptions, bytes: usize) -> SstEncoder {
        let mut encoder = SstEncoder::new(opts);
        encoder.buf.reserve(bytes);
        encoder
    }

    /// The whole table, in memory (nothing was taken from it), for
    /// [`SstWriter::write_encoded`]. `None` if no entry was added.
    pub fn into_encoded(mut self) -> Option<EncodedTable> {
        assert_eq!(self.taken, 0, "into_encoded: bytes were taken");
        if self.stats.entries == 0 {
            return None;
        }
        let (file_bytes, info) = self.finish_blocks();
        let mut bytes = self.buf;
        bytes.resize(bytes.len().next_multiple_of(ALIGN), 0);
        Some(EncodedTable {
            bytes,
            file_bytes,
            info,
        })
    }

    /// Appends an entry. Internal keys must strictly increase by `key::compare` (asserted).
    pub fn add(&mut self, internal_key: &[u8], value: &[u8]) {
        let parsed = key::parse(internal_key).expect("add: not an internal key");
        assert!(parsed.user_key.len() <= key::USER_KEY_BYTES_MAX);
        assert!(
            value.len() <= SST_VALUE_BYTES_MAX,
            "value over SST_VALUE_BYTES_MAX"
        );
        let first = self.stats.entries == 0;
        if !first {
            assert!(
                key::compare(&self.last_key, internal_key).is_lt(),
                "SstWriter::add: keys not strictly increasing"
            );
        }
        let mut user_key_hash = None;
        if first || key::user_key(&self.last_key) != parsed.user_key {
            let hash = bloom::hash(parsed.user_key);
            self.key_hashes.push(hash);
            user_key_hash = Some(hash);
        }
        self.count(internal_key, parsed, value.len());
        self.data.add_hashed(internal_key, value, user_key_hash);
        if self.data.size_estimate() >= self.opts.block_bytes {
            self.cut_data_block();
        }
    }

    fn count(&mut self, internal_key: &[u8], parsed: key::ParsedKey<'_>, value_len: usize) {
        let stats = &mut self.stats;
        if stats.entries == 0 {
            stats.smallest = internal_key.to_vec();
            stats.seq_min = parsed.seq;
            stats.seq_max = parsed.seq;
        }
        stats.entries += 1;
        stats.tombstones += u64::from(parsed.kind == ValueKind::Delete);
        stats.seq_min = stats.seq_min.min(parsed.seq);
        stats.seq_max = stats.seq_max.max(parsed.seq);
        stats.raw_key_bytes += internal_key.len() as u64;
        stats.raw_value_bytes += value_len as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(internal_key);
    }

    /// Bytes the file would have if finished now.
    pub fn estimated_file_bytes(&self) -> u64 {
        let bloom_bytes =
            self.key_hashes.len() as u64 * u64::from(self.opts.bloom_bits_per_key) / 8;
        let index_bytes = self.index.size_estimate() as u64 + self.last_key.len() as u64 + 32;
        let tail = (format::FOOTER_BYTES + 3 * format::BLOCK_TRAILER_BYTES) as u64
            + 2 * self.last_key.len() as u64
            + 64;
        self.offset() + self.data.size_estimate() as u64 + index_bytes + bloom_bytes + tail
    }

    /// File offset of the next byte appended to `buf`.
    fn offset(&self) -> u64 {
        self.taken + self.buf.len() as u64
    }

    /// Bytes buffered in whole write chunks.
    fn whole_chunks_bytes(&self) -> usize {
        self.buf.len() / SST_WRITE_CHUNK_BYTES * SST_WRITE_CHUNK_BYTES
    }

    /// Drops the first `len` buffered bytes (written).
    fn take(&mut self, len: usize) {
        self.buf.drain(..len);
        self.taken += len as u64;
    }

    /// Cuts the last data block, appends the index, bloom, properties and footer; returns the
    /// file's length and what it holds. At least one entry was added.
    fn finish_blocks(&mut self) -> (u64, SstInfo) {
        assert!(self.stats.entries > 0);
        if !self.data.is_empty() {
            self.cut_data_block();
        }
        let handles = self.encode_meta_blocks();
        self.buf.extend_from_slice(&encode_footer(handles));
        let stats = std::mem::take(&mut self.stats);
        let info = SstInfo {
            file_bytes: self.offset(),
            entries: stats.entries,
            tombstones: stats.tombstones,
            smallest: stats.smallest,
            largest: std::mem::take(&mut self.last_key),
            seq_min: stats.seq_min,
            seq_max: stats.seq_max,
        };
        (self.offset(), info)
    }

    fn cut_data_block(&mut self) {
        let last_key = self.data.last_key().to_vec();
        let raw = self.data.finish();
        let offset = self.offset();
        let size = encode_block(&mut self.buf, &raw, self.opts.compression);
        let mut handle = Vec::with_capacity(2 * format::VARINT_BYTES_MAX);
        BlockHandle { offset, size }.encode(&mut handle);
        self.index.add(&last_key, &handle);
        self.stats.data_blocks += 1;
    }

    /// Appends the index, bloom and properties blocks (always uncompressed: they are read once
    /// per open, and the bloom does not compress).
    fn encode_meta_blocks(&mut self) -> FooterHandles {
        assert_eq!(self.index.entries() as u64, self.stats.data_blocks);
        let index_raw = self.index.finish();
        let index = self.append_block(&index_raw);
        let bloom_raw = bloom::build(&self.key_hashes, self.opts.bloom_bits_per_key);
        let bloom = self.append_block(&bloom_raw);
        let props_raw = format::encode_properties(&self.properties());
        let properties = self.append_block(&props_raw);
        FooterHandles {
            index,
            bloom,
            properties,
            format_version: SST_FORMAT_VERSION,
        }
    }

    fn append_block(&mut self, raw: &[u8]) -> BlockHandle {
        let offset = self.offset();
        let size = encode_block(&mut self.buf, raw, Compression::None);
        BlockHandle { offset, size }
    }

    fn properties(&self) -> SstProperties {
        let s = &self.stats;
        SstProperties {
            smallest: s.smallest.clone(),
            largest: self.last_key.clone(),
            entries: s.entries,
            tombstones: s.tombstones,
            seq_min: s.seq_min,
            seq_max: s.seq_max,
            data_blocks: s.data_blocks,
            raw_key_bytes: s.raw_key_bytes,
            raw_value_bytes: s.raw_value_bytes,
            compression: self.opts.compression,
            format_version: SST_FORMAT_VERSION,
        }
    }
}

/// Builds one SSTable. After any error the writer is unusable (calling it again panics); the
/// caller removes the partial file.
pub struct SstWriter<F: FileSystem> {
    fs: F,
    path: PathBuf,
    file: F::File,
    encoder: SstEncoder,
    failed: bool,
}

impl<F: FileSystem + Clone> SstWriter<F> {
    /// Creates (or truncates) the file at `path`. Option values out of range are bugs (panics).
    pub async fn create(fs: &F, path: &Path, opts: SstOptions) -> Result<Self, SstError> {
        let encoder = SstEncoder::new(opts);
        let file = fs.open(path, true).await.map_err(io_error(path))?;
        file.truncate(0).await.map_err(io_error(path))?;
        Ok(SstWriter {
            fs: fs.clone(),
            path: path.to_path_buf(),
            file,
            encoder,
            failed: false,
        })
    }

    /// Appends an entry. Internal keys must strictly increase by `key::compare` (asserted).
    pub async fn add(&mut self, internal_key: &[u8], value: &[u8]) -> Result<(), SstError> {
        assert!(!self.failed, "SstWriter used after an error");
        self.encoder.add(internal_key, value);
        if self.encoder.buf.len() >= SST_WRITE_CHUNK_BYTES {
            self.write_full_chunks().await?;
        }
        Ok(())
    }

    /// Bytes the file would have if finished now (the compactor cuts output files by it).
    pub fn estimated_file_bytes(&self) -> u64 {
        self.encoder.estimated_file_bytes()
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.encoder.stats.entries
    }

    /// Writes the index, bloom, properties and footer, then makes the file and its directory
    /// entry durable. Errors with [`SstError::Empty`] if no entry was added.
    pub async fn finish(mut self) -> Result<SstInfo, SstError> {
        assert!(!self.failed, "SstWriter used after an error");
        if self.encoder.stats.entries == 0 {
            return Err(SstError::Empty { path: self.path });
        }
        let (file_bytes, info) = self.encoder.finish_blocks();
        self.write_all_padded().await?;
        self.make_durable(file_bytes).await?;
        Ok(info)
    }

    /// Writes a table [`SstEncoder::into_encoded`] built (into this writer's file, which must have had
    /// nothing added), then makes it durable as [`Self::finish`] does.
    pub async fn write_encoded(mut self, table: EncodedTable) -> Result<SstInfo, SstError> {
        assert!(!self.failed, "SstWriter used after an error");
        assert!(self.encoder.stats.entries == 0 && self.encoder.offset() == 0);
        let result = write_chunks(&self.file, &table.bytes, 0).await;
        self.check(result)?;
        self.make_durable(table.file_bytes).await?;
        Ok(table.info)
    }

    /// Writes every whole chunk buffered, keeping the remainder buffered.
    async fn write_full_chunks(&mut self) -> Result<(), SstError> {
        let whole = self.encoder.whole_chunks_bytes();
        if whole == 0 {
            return Ok(());
        }
        let result = write_chunks(&self.file, &self.encoder.buf[..whole], self.encoder.taken).await;
        self.check(result)?;
        self.encoder.take(whole);
        Ok(())
    }

    /// Writes everything buffered, zero-padded to the alignment.
    async fn write_all_padded(&mut self) -> Result<(), SstError> {
        let buf = &mut self.encoder.buf;
        buf.resize(buf.len().next_multiple_of(ALIGN), 0);
        let result = write_chunks(&self.file, &self.encoder.buf, self.encoder.taken).await;
        self.check(result)?;
        let all = self.encoder.buf.len();
        self.encoder.take(all);
        Ok(())
    }

    /// Cuts the zero padding off, then syncs the file and its directory entry.
    async fn make_durable(&mut self, file_bytes: u64) -> Result<(), SstError> {
        let result = self.file.truncate(file_bytes).await;
        self.check(result)?;
        let result = self.file.sync().await;
        self.check(result)?;
        let dir = self.path.parent().unwrap_or(Path::new("")).to_path_buf();
        let result = self.fs.sync_dir(&dir).await;
        self.check(result)?;
        Ok(())
    }

    fn check<T>(&mut self, result: std::io::Result<T>) -> Result<T, SstError> {
        if result.is_err() {
            self.failed = true;
        }
        result.map_err(io_error(&self.path))
    }
}

/// Writes `bytes` (a multiple of the alignment) at file offset `pos` (aligned), in chunks of
/// [`SST_WRITE_CHUNK_BYTES`].
async fn write_chunks<D: DmaFile>(file: &D, bytes: &[u8], pos: u64) -> std::io::Result<()> {
    assert!(bytes.len().is_multiple_of(ALIGN) && pos.is_multiple_of(ALIGN as u64));
    for (at, chunk) in (0..)
        .step_by(SST_WRITE_CHUNK_BYTES)
        .zip(bytes.chunks(SST_WRITE_CHUNK_BYTES))
    {
        let mut out = file.alloc(chunk.len());
        out.as_mut().copy_from_slice(chunk);
        let written = file.write_at(out, pos + at as u64).await?;
        if written != chunk.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {} bytes", chunk.len()),
            ));
        }
    }
    Ok(())
}

fn check_options(opts: &SstOptions) {
    assert!(opts.block_bytes >= 1 && opts.block_bytes <= format::BLOCK_BYTES_MAX / 2);
    assert!((1..=SST_RESTART_INTERVAL_MAX).contains(&opts.restart_interval));
    assert!((1..=SST_BLOOM_BITS_PER_KEY_MAX).contains(&opts.bloom_bits_per_key));
    if let Compression::Zstd(level) = opts.compression {
        assert!(
            zstd::compression_level_range().contains(&level),
            "zstd level {level} out of range"
        );
    }
}
