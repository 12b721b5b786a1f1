//! helios's own LSM (`helios_engine::lsm`), over glommio DMA files, as the subject engine.
//!
//! Settings match fjall's where both have them: 64 MiB memtable, 4 KiB data blocks, block cache
//! = `--cache-bytes`, leveled compaction with a size ratio of 10, compression off unless
//! `--compression lz4`. Durability: a put is appended to the WAL's buffer (the async mode, no
//! write or fsync per put); `sync` writes and fdatasyncs it. Flush and compaction run as
//! background tasks on the same executor (and core) as the puts: unlike fjall, helios gets no
//! second thread.

use std::path::Path;
use std::rc::Rc;

use anyhow::Context;
use bytes::Bytes;
use helios_engine::cache::BlockCache;
use helios_engine::lsm::{Lsm, LsmOptions, ReadOptions, WriteBatch};
use helios_engine::sst::{Compression as SstCompression, SstOptions};
use helios_engine::wal::WalOptions;
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::GlommioRuntime;

use super::kv::{Compression, EngineOptions, KvEngine};

pub struct HeliosEngine {
    lsm: Rc<Lsm<GlommioFs, GlommioRuntime>>,
}

impl HeliosEngine {
    pub async fn open(dir: &Path, options: &EngineOptions) -> anyhow::Result<HeliosEngine> {
        let compression = match options.compression {
            Compression::None => SstCompression::None,
            Compression::Lz4 => SstCompression::Lz4,
        };
        let opts = LsmOptions {
            sst: SstOptions {
                compression,
                ..SstOptions::default()
            },
            // No zero-filled preallocation: it pays off only for per-write fsync (sync mode),
            // and fjall's journal does none either.
            wal: WalOptions {
                preallocate_bytes: 0,
                ..WalOptions::default()
            },
            ..LsmOptions::default()
        };
        let cache = Rc::new(BlockCache::new(options.cache_bytes));
        let lsm = Lsm::open(GlommioFs, GlommioRuntime, dir.to_path_buf(), opts, cache)
            .await
            .with_context(|| format!("opening helios lsm in {}", dir.display()))?;
        Ok(HeliosEngine { lsm })
    }
}

impl KvEngine for HeliosEngine {
    fn name(&self) -> &'static str {
        "helios"
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.lsm.wait_for_write_room().await?;
        self.lsm.write(&batch)?;
        // The WAL is written by whoever syncs; keep its buffer bounded as the server does.
        if self.lsm.wal().pending_bytes() >= WAL_WRITE_BEHIND_BYTES {
            self.lsm.wal().write_buffered().await?;
        }
        Ok(())
    }

    async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        Ok(self
            .lsm
            .get(key, None)
            .await?
            .map(|v| std::hint::black_box(v).len()))
    }

    async fn scan(&mut self, start: &[u8], limit: usize) -> anyhow::Result<usize> {
        let mut iter = self.lsm.iter(ReadOptions::default());
        iter.seek(start).await?;
        let mut read = 0;
        while iter.valid() && read < limit {
            std::hint::black_box((iter.key(), iter.value()));
            read += 1;
            iter.next().await?;
        }
        Ok(read)
    }

    async fn scan_all(&mut self) -> anyhow::Result<usize> {
        let mut iter = self.lsm.iter(ReadOptions::default());
        iter.seek_to_first().await?;
        let mut read = 0;
        while iter.valid() {
            std::hint::black_box((iter.key(), iter.value()));
            read += 1;
            iter.next().await?;
        }
        Ok(read)
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        self.lsm.wal().sync_all().await?;
        Ok(())
    }

    async fn wait_idle(&mut self) -> anyhow::Result<()> {
        self.lsm.flush().await?;
        self.lsm.wait_idle().await?;
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        let stats = self.lsm.stats();
        eprintln!(
            "helios lsm: {stats:?}, levels {:?}",
            self.lsm.level_file_counts()
        );
        self.lsm.close().await?;
        Ok(())
    }
}

/// Unwritten WAL bytes past which a put writes them out (no fsync), like fjall's journal
/// buffer reaching the OS.
const WAL_WRITE_BEHIND_BYTES: usize = 1 << 20;
