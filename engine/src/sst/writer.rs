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

/// Builds one SSTable. After any error the writer is unusable (calling it again panics); the
/// caller removes the partial file.
pub struct SstWriter<F: FileSystem> {
    fs: F,
    path: PathBuf,
    file: F::File,
    opts: SstOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    /// Encoded bytes not yet written; starts at file offset `written_bytes`.
    buf: Vec<u8>,
    written_bytes: u64,
    /// Hashes of the distinct user keys, for the bloom filter.
    key_hashes: Vec<u64>,
    last_key: Vec<u8>,
    stats: Stats,
    failed: bool,
}

impl<F: FileSystem + Clone> SstWriter<F> {
    /// Creates (or truncates) the file at `path`. Option values out of range are bugs (panics).
    pub async fn create(fs: &F, path: &Path, opts: SstOptions) -> Result<Self, SstError> {
        check_options(&opts);
        let file = fs.open(path, true).await.map_err(io_error(path))?;
        file.truncate(0).await.map_err(io_error(path))?;
        Ok(SstWriter {
            fs: fs.clone(),
            path: path.to_path_buf(),
            file,
            opts,
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            buf: Vec::with_capacity(SST_WRITE_CHUNK_BYTES + opts.block_bytes * 2),
            written_bytes: 0,
            key_hashes: Vec::new(),
            last_key: Vec::new(),
            stats: Stats::default(),
            failed: false,
        })
    }

    /// Appends an entry. Internal keys must strictly increase by `key::compare` (asserted).
    pub async fn add(&mut self, internal_key: &[u8], value: &[u8]) -> Result<(), SstError> {
        assert!(!self.failed, "SstWriter used after an error");
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
        if first || key::user_key(&self.last_key) != parsed.user_key {
            self.key_hashes.push(bloom::hash(parsed.user_key));
        }
        self.count(internal_key, parsed, value.len());
        self.data.add(internal_key, value);
        if self.data.size_estimate() >= self.opts.block_bytes {
            self.cut_data_block();
            self.write_full_chunks().await?;
        }
        Ok(())
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

    /// Bytes the file would have if finished now (the compactor cuts output files by it).
    pub fn estimated_file_bytes(&self) -> u64 {
        let bloom_bytes =
            self.key_hashes.len() as u64 * u64::from(self.opts.bloom_bits_per_key) / 8;
        let index_bytes = self.index.size_estimate() as u64 + self.last_key.len() as u64 + 32;
        let tail = (format::FOOTER_BYTES + 3 * format::BLOCK_TRAILER_BYTES) as u64
            + 2 * self.last_key.len() as u64
            + 64;
        self.offset() + self.data.size_estimate() as u64 + index_bytes + bloom_bytes + tail
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.stats.entries
    }

    /// Writes the index, bloom, properties and footer, then makes the file and its directory
    /// entry durable. Errors with [`SstError::Empty`] if no entry was added.
    pub async fn finish(mut self) -> Result<SstInfo, SstError> {
        assert!(!self.failed, "SstWriter used after an error");
        if self.stats.entries == 0 {
            return Err(SstError::Empty { path: self.path });
        }
        if !self.data.is_empty() {
            self.cut_data_block();
        }
        let handles = self.encode_meta_blocks();
        self.buf.extend_from_slice(&encode_footer(handles));
        let file_bytes = self.offset();
        self.write_all_padded().await?;
        self.make_durable(file_bytes).await?;
        let stats = self.stats;
        Ok(SstInfo {
            file_bytes,
            entries: stats.entries,
            tombstones: stats.tombstones,
            smallest: stats.smallest,
            largest: self.last_key,
            seq_min: stats.seq_min,
            seq_max: stats.seq_max,
        })
    }

    /// File offset of the next byte appended to `buf`.
    fn offset(&self) -> u64 {
        self.written_bytes + self.buf.len() as u64
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

    /// Writes every whole chunk in `buf`, keeping the remainder buffered.
    async fn write_full_chunks(&mut self) -> Result<(), SstError> {
        let whole = self.buf.len() / SST_WRITE_CHUNK_BYTES * SST_WRITE_CHUNK_BYTES;
        if whole == 0 {
            return Ok(());
        }
        self.write_prefix(whole).await?;
        self.buf.drain(..whole);
        self.written_bytes += whole as u64;
        Ok(())
    }

    /// Writes all of `buf`, zero-padded to the alignment.
    async fn write_all_padded(&mut self) -> Result<(), SstError> {
        let padded = self.buf.len().next_multiple_of(ALIGN);
        self.buf.resize(padded, 0);
        self.write_prefix(padded).await?;
        self.written_bytes += padded as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes `buf[..len]` (aligned) at `written_bytes`, in chunks.
    async fn write_prefix(&mut self, len: usize) -> Result<(), SstError> {
        assert!(len.is_multiple_of(ALIGN) && len <= self.buf.len());
        assert!(self.written_bytes.is_multiple_of(ALIGN as u64));
        for start in (0..len).step_by(SST_WRITE_CHUNK_BYTES) {
            let end = (start + SST_WRITE_CHUNK_BYTES).min(len);
            let mut out = self.file.alloc(end - start);
            out.as_mut().copy_from_slice(&self.buf[start..end]);
            let pos = self.written_bytes + start as u64;
            let result = self.file.write_at(out, pos).await;
            let written = self.check(result)?;
            if written != end - start {
                self.failed = true;
                return Err(io_error(&self.path)(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {written} of {} bytes", end - start),
                )));
            }
        }
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
