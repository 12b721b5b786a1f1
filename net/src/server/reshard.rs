//! Moving the data to another shard count, offline, at start-up.
//!
//! When `--shards M` differs from the N recorded in the data dir, every old shard's WAL is
//! replayed into one keyspace, and each live key is written as a `Set` into the WAL of the shard
//! that owns it under a balanced M-shard partition map — all in a staging dir. Then:
//!
//! 1. staging complete and fsynced → write the marker `RESHARD-COMMIT` (the commit point);
//! 2. replace each `shard-j` with the staged one, remove old shards past M, install the new
//!    `partitions.map`, remove the marker and the staging dir.
//!
//! A crash before (1) leaves the old layout untouched (the staging dir is discarded at the next
//! start); a crash after (1) is finished at the next start, since every step of (2) can be
//! redone. No key is lost or misrouted either way.

use super::shard::WAL_KIND_REDIS;
use helios_engine::keyspace::{Keyspace, Mutation};
use helios_engine::token::redis_token;
use helios_engine::wal::{Wal, WalError, WalOptions};
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::unix_ms;
use helios_shard::routing::PartitionMap;
use std::path::{Path, PathBuf};

const STAGING_DIR: &str = "resharding";
const COMMIT_MARKER: &str = "RESHARD-COMMIT";
/// Mutations are cut into WAL records of about this size.
const RECORD_BYTES: usize = 8 << 20;

fn shard_dir(root: &Path, shard: usize) -> PathBuf {
    root.join(format!("shard-{shard}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn context<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> String + 'a {
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
    sync_dir(&staging).map_err(context("cannot sync", &staging))?;
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

/// Replays the old shards into one keyspace and writes each key to its new shard's WAL.
async fn stage(data_dir: &Path, staging: &Path, from: usize, to: usize) -> Result<usize, String> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(context("cannot remove", staging))?;
    }
    let now_ms = unix_ms();
    let mut ks = Keyspace::new();
    for shard in 0..from {
        let dir = shard_dir(data_dir, shard).join("wal");
        let replay = |lsn: u64, _kind: u8, payload: &[u8]| {
            ks.apply_logged(payload, now_ms)
                .map_err(|error| WalError::Replay {
                    lsn,
                    reason: error.to_string(),
                })
        };
        Wal::open(GlommioFs, dir.clone(), WalOptions::default(), replay)
            .await
            .map_err(|error| format!("cannot read the WAL in {}: {error}", dir.display()))?;
    }
    let map = PartitionMap::balanced(to);
    let options = WalOptions {
        preallocate_bytes: 0,
        ..WalOptions::default()
    };
    let mut wals = Vec::with_capacity(to);
    for shard in 0..to {
        let dir = shard_dir(staging, shard).join("wal");
        let wal = Wal::open(GlommioFs, dir.clone(), options.clone(), |_, _, _| Ok(()))
            .await
            .map_err(|error| format!("cannot create the WAL in {}: {error}", dir.display()))?;
        wals.push(wal);
    }
    let mut buffers = vec![Vec::new(); to];
    let mut moved = 0;
    for (db, key, entry) in ks.dump(now_ms) {
        let shard = map.shard_of_token(redis_token(&key));
        let set = Mutation::Set {
            db,
            key,
            value: entry.value,
            expire_at_ms: entry.expire_at_ms,
        };
        set.encode(&mut buffers[shard]);
        moved += 1;
        if buffers[shard].len() >= RECORD_BYTES {
            wals[shard]
                .append(WAL_KIND_REDIS, &buffers[shard])
                .map_err(|e| e.to_string())?;
            buffers[shard].clear();
        }
    }
    for (wal, buffer) in wals.iter().zip(&buffers) {
        if !buffer.is_empty() {
            wal.append(WAL_KIND_REDIS, buffer)
                .map_err(|e| e.to_string())?;
        }
        wal.sync_all().await.map_err(|e| e.to_string())?;
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
