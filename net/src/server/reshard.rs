//! Moving the data to another shard count, offline, at start-up.
//!
//! When `--shards M` differs from the N recorded in the data dir, every old shard's store is
//! opened in turn (which also moves a pre-LSM `shard-i/wal` into its tree, exactly as a normal
//! start would) and its tree is scanned from the first key; each live entry is written, as is
//! (storage key and stored value), into the tree of the shard that owns its token under a
//! balanced M-shard partition map — all in a staging dir, `resharding/shard-j/lsm`. The staged
//! trees are flushed and closed, then everything under the staging dir is fsynced. Then:
//!
//! 1. staging complete and fsynced → write the marker `RESHARD-COMMIT` (the commit point);
//! 2. replace each whole `shard-j` dir with the staged one (so nothing of the old shard, a
//!    legacy `wal/` included, survives in it), remove old shards past M, install the new
//!    `partitions.map`, remove the marker and the staging dir.
//!
//! A crash before (1) leaves the old layout in force (the staging dir is discarded at the next
//! start; the old shards were only read, apart from the legacy-WAL move and the trees' own
//! flushes and compactions, which are crash-safe and change no content); a crash after (1) is
//! finished at the next start, since every step of (2) can be redone. No key is lost or
//! misrouted either way.

use super::store::{self, StoreBudget};
use helios_engine::cache::BlockCache;
use helios_engine::keyspace::storage;
use helios_engine::lsm::{Lsm, LsmError, ReadOptions, WriteBatch};
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::{unix_ms, GlommioRuntime};
use helios_shard::routing::PartitionMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const STAGING_DIR: &str = "resharding";
const COMMIT_MARKER: &str = "RESHARD-COMMIT";
/// Entries bound for one new shard are written to its tree in batches of about this size.
const BATCH_BYTES: usize = 8 << 20;
/// What an old shard's store may cache while it is scanned: a small block cache, and no
/// resident values in its (throw-away) key index.
const SOURCE_BUDGET: StoreBudget = StoreBudget {
    block_cache_bytes: 16 << 20,
    resident_value_bytes: 0,
    memtable_bytes: 16 << 20,
};
/// Block cache of each staged tree (it is written, and read back only by its own compactions).
const STAGED_CACHE_BYTES: u64 = 4 << 20;
/// Entries moved between yields.
const YIELD_EVERY: usize = 4096;

fn shard_dir(root: &Path, shard: usize) -> PathBuf {
    root.join(format!("shard-{shard}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Fsyncs every file and directory under `dir`, then `dir` itself (children before parents,
/// so every entry is durable in its directory).
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    sync_dir(dir)
}

fn context<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> String + 'a {
    move |error| format!("{what} {}: {error}", path.display())
}

fn lsm_context<'a>(what: &'static str, path: &'a Path) -> impl Fn(LsmError) -> String + 'a {
    move |error| format!("{what} {}: {error}", path.display())
}

/// Finishes a committed resharding, or discards an uncommitted one, left by a crash.
pub fn finish_or_discard(data_dir: &Path) -> Result<(), String> {
    let staging = data_dir.join(STAGING_DIR);
    if data_dir.join(COMMIT_MARKER).exists() {
        tracing::warn!("finishing a resharding interrupted after its commit point");
        return install(data_dir);
    }
    if staging.exists() {
        tracing::warn!("discarding an uncommitted resharding");
        std::fs::remove_dir_all(&staging).map_err(context("cannot remove", &staging))?;
        sync_dir(data_dir).map_err(context("cannot sync", data_dir))?;
    }
    Ok(())
}

/// Moves every key from `from` shards to `to` shards (see the module comment).
pub fn reshard(data_dir: &Path, from: usize, to: usize) -> Result<(), String> {
    tracing::info!(from, to, "moving data to a new shard count");
    let staging = data_dir.join(STAGING_DIR);
    let (dir, staged) = (data_dir.to_path_buf(), staging.clone());
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("reshard")
        .spawn(move || async move { stage(&dir, &staged, from, to).await })
        .map_err(|error| format!("cannot start the resharding executor: {error}"))?;
    let moved = handle
        .join()
        .map_err(|_| "the resharding executor panicked".to_string())??;
    PartitionMap::balanced(to)
        .store(&staging)
        .map_err(context("cannot write the map in", &staging))?;
    sync_tree(&staging).map_err(context("cannot sync", &staging))?;
    sync_dir(data_dir).map_err(context("cannot sync", data_dir))?;
    let marker = data_dir.join(COMMIT_MARKER);
    std::fs::write(&marker, b"resharding committed\n").map_err(context("cannot write", &marker))?;
    std::fs::File::open(&marker)
        .and_then(|f| f.sync_all())
        .map_err(context("cannot sync", &marker))?;
    sync_dir(data_dir).map_err(context("cannot sync", data_dir))?;
    install(data_dir)?;
    tracing::info!(keys = moved, from, to, "resharding done");
    Ok(())
}

/// A new shard's tree in the staging dir, and the batch of entries bound for it.
struct Target {
    lsm: Rc<store::ShardLsm>,
    batch: WriteBatch,
}

impl Target {
    async fn write_batch(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let fail = lsm_context("cannot write the staged store in", self.lsm.dir());
        self.lsm.wait_for_write_room().await.map_err(&fail)?;
        self.lsm.write(&self.batch).map_err(&fail)?;
        self.batch = WriteBatch::new();
        Ok(())
    }
}

/// Scans the old shards' trees and writes each live entry to its new shard's staged tree.
async fn stage(data_dir: &Path, staging: &Path, from: usize, to: usize) -> Result<usize, String> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(context("cannot remove", staging))?;
    }
    let map = PartitionMap::balanced(to);
    let mut targets = Vec::with_capacity(to);
    for shard in 0..to {
        let dir = store::lsm_dir(&shard_dir(staging, shard));
        let cache = Rc::new(BlockCache::new(STAGED_CACHE_BYTES));
        let lsm = Lsm::open(
            GlommioFs,
            GlommioRuntime,
            dir.clone(),
            // Staged trees judge no element an orphan: start-up's scan does that.
            store::lsm_options(&SOURCE_BUDGET, store::Oracles::default()),
            cache,
        )
        .await
        .map_err(lsm_context("cannot create the staged store in", &dir))?;
        targets.push(Target {
            lsm,
            batch: WriteBatch::new(),
        });
    }
    let mut moved = 0;
    for shard in 0..from {
        let old = shard_dir(data_dir, shard);
        let (lsm, index, _orphans) = store::open_store(&old, SOURCE_BUDGET).await?;
        drop(index);
        let fail = lsm_context("cannot read the store in", lsm.dir());
        let now_ms = unix_ms();
        let mut iter = lsm.iter(ReadOptions::default());
        iter.seek_to_first().await.map_err(&fail)?;
        let mut seen = 0usize;
        while iter.valid() {
            let (skey, stored) = (iter.key(), iter.value_bytes());
            let (target, expired) = if storage::is_redis_storage_key(skey) {
                let (_, token, _) = storage::parse_storage_key(skey).ok_or_else(|| {
                    format!("{}: malformed storage key {skey:?}", lsm.dir().display())
                })?;
                let (expire_at_ms, _) = storage::decode_header(&stored).map_err(|reason| {
                    format!("{}: entry {skey:?}: {reason}", lsm.dir().display())
                })?;
                let expired = matches!(expire_at_ms, Some(at) if now_ms > at);
                (map.shard_of_token(token), expired)
            } else if let Some(field) = storage::parse_field_key(skey) {
                // A collection's element goes with its key (an orphan is deleted by the
                // target's next start-up).
                (map.shard_of_token(field.token), false)
            } else {
                // SQL rows route by their token; the catalog stays on shard 0.
                let target = helios_sql::storage_key_token(skey)
                    .map_or(0, |token| map.shard_of_token(token));
                (target, false)
            };
            if !expired {
                let target = &mut targets[target];
                target.batch.put(skey.clone(), stored.clone());
                moved += 1;
                if target.batch.approx_bytes() >= BATCH_BYTES {
                    target.write_batch().await?;
                }
            }
            seen += 1;
            if seen.is_multiple_of(YIELD_EVERY) {
                glommio::yield_if_needed().await;
            }
            iter.next().await.map_err(&fail)?;
        }
        drop(iter);
        lsm.close()
            .await
            .map_err(lsm_context("cannot close the store in", lsm.dir()))?;
        tracing::info!(shard, entries = seen, "old shard read");
    }
    for target in &mut targets {
        target.write_batch().await?;
        let fail = lsm_context("cannot finish the staged store in", target.lsm.dir());
        target.lsm.flush().await.map_err(&fail)?;
        target.lsm.close().await.map_err(&fail)?;
    }
    Ok(moved)
}

/// Installs a committed staging dir. Every step can be redone after a crash.
fn install(data_dir: &Path) -> Result<(), String> {
    let staging = data_dir.join(STAGING_DIR);
    let staged_map = staging.join("partitions.map");
    let map_text = std::fs::read_to_string(&staged_map)
        .or_else(|_| std::fs::read_to_string(data_dir.join("partitions.map")))
        .map_err(context("cannot read", &staged_map))?;
    let to = map_text
        .lines()
        .find_map(|line| line.strip_prefix("shards "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .ok_or_else(|| format!("{}: no shard count", staged_map.display()))?;
    for shard in 0..to {
        let (new, old) = (shard_dir(&staging, shard), shard_dir(data_dir, shard));
        if new.exists() {
            // The whole old dir goes: nothing of the old shard (a legacy `wal/` included) may
            // survive next to the staged `lsm/`.
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(context("cannot remove", &old))?;
            }
            std::fs::rename(&new, &old).map_err(context("cannot install", &new))?;
        }
    }
    for shard in to.. {
        let old = shard_dir(data_dir, shard);
        if !old.exists() {
            break;
        }
        std::fs::remove_dir_all(&old).map_err(context("cannot remove", &old))?;
    }
    if staged_map.exists() {
        std::fs::rename(&staged_map, data_dir.join("partitions.map"))
            .map_err(context("cannot install", &staged_map))?;
    }
    sync_dir(data_dir).map_err(context("cannot sync", data_dir))?;
    let marker = data_dir.join(COMMIT_MARKER);
    std::fs::remove_file(&marker).map_err(context("cannot remove", &marker))?;
    std::fs::remove_dir_all(&staging).map_err(context("cannot remove", &staging))?;
    sync_dir(data_dir).map_err(context("cannot sync", data_dir))
}
