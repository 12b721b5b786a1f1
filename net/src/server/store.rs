//! A shard's store on disk: its LSM tree (`shard-N/lsm/`) and the in-memory key index rebuilt
//! from it at start. Also moves a data directory written before the tree existed (a WAL of
//! keyspace mutations in `shard-N/wal/`) into the tree.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use helios_engine::cache::BlockCache;
use helios_engine::keyspace::{storage, Keyspace};
use helios_engine::lsm::{Lsm, LsmOptions, ReadOptions, WriteBatch};
use helios_engine::wal::{Wal, WalError, WalOptions};
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::{unix_ms, GlommioRuntime};

/// WAL record kind of the pre-LSM format: a payload of encoded keyspace mutations.
pub const WAL_KIND_REDIS: u8 = 1;
/// The pre-LSM WAL's directory inside a shard directory.
const LEGACY_WAL_DIR: &str = "wal";
const LSM_DIR: &str = "lsm";
/// While moving a legacy WAL, storage writes are cut into records of about this size.
const MIGRATION_BATCH_BYTES: usize = 8 << 20;
/// Entries rebuilt between yields at start.
const REBUILD_YIELD_EVERY: usize = 4096;

pub type ShardLsm = Lsm<GlommioFs, GlommioRuntime>;

/// Memory a shard's store may use for cached data.
#[derive(Clone, Copy, Debug)]
pub struct StoreBudget {
    /// The tree's block cache.
    pub block_cache_bytes: u64,
    /// Values kept resident in the key index.
    pub resident_value_bytes: usize,
    /// Size of one memtable (the tree keeps up to three: one active, two being flushed).
    pub memtable_bytes: usize,
}

/// Memtable size bounds: a quarter of the shard's cache share, within these.
const MEMTABLE_BYTES_MIN: usize = 4 << 20;
const MEMTABLE_BYTES_MAX: usize = 64 << 20;

impl StoreBudget {
    /// Splits a shard's share of `--cache-size`: half for blocks, half for resident values.
    pub fn from_cache_bytes(cache_bytes: u64) -> StoreBudget {
        let quarter = usize::try_from(cache_bytes / 4).unwrap_or(usize::MAX);
        StoreBudget {
            block_cache_bytes: cache_bytes / 2,
            resident_value_bytes: usize::try_from(cache_bytes / 2).unwrap_or(usize::MAX),
            memtable_bytes: quarter.clamp(MEMTABLE_BYTES_MIN, MEMTABLE_BYTES_MAX),
        }
    }
}

pub fn lsm_dir(shard_dir: &Path) -> PathBuf {
    shard_dir.join(LSM_DIR)
}

/// Answers whether a SQL key belongs to a dropped table or index
/// ([`helios_sql::LiveIds::is_dead_key`]); None until the shard has its catalog.
pub type DeadKeyOracle = Rc<std::cell::RefCell<Option<Box<dyn Fn(&[u8]) -> bool>>>>;
/// Answers whether a whole key range is of one dropped table or index
/// ([`helios_sql::LiveIds::is_dead_range`]); None until the shard has its catalog.
pub type DeadRangeOracle = Rc<std::cell::RefCell<Option<Box<dyn Fn(&[u8], &[u8]) -> bool>>>>;

/// What the compaction filter asks once the shard is up.
#[derive(Default, Clone)]
pub struct Oracles {
    pub orphans: storage::OrphanOracle,
    pub orphan_ranges: storage::OrphanRangeOracle,
    pub dead_sql_keys: DeadKeyOracle,
    pub dead_sql_ranges: DeadRangeOracle,
}

/// The tree options of a shard: defaults, memtables sized by the budget, and as the
/// compaction filter: Redis expiry, orphaned collection elements (once `orphans` answers)
/// and the keys of dropped SQL tables and indexes (once `dead_sql_keys` does).
pub fn lsm_options(budget: &StoreBudget, oracles: Oracles) -> LsmOptions {
    let defaults = LsmOptions::default();
    LsmOptions {
        memtable_bytes: budget.memtable_bytes,
        // Level 1 as big as a level-0 compaction's input (RocksDB's rule of thumb), so that
        // small memtables do not make every L0 compaction rewrite a much larger L1.
        level1_bytes: (budget.memtable_bytes * defaults.l0_compaction_trigger) as u64,
        target_file_bytes: budget.memtable_bytes as u64,
        dead_range: Some(dead_range_filter(
            oracles.dead_sql_ranges.clone(),
            oracles.orphan_ranges.clone(),
        )),
        key_family: Some(storage::key_family),
        expiry_filter: Some(compaction_filter(oracles)),
        ..defaults
    }
}

/// Dead ranges: a dropped SQL table's or index's keys, or a Redis collection's orphaned
/// elements (a deleted hash's fields, a list's popped elements).
fn dead_range_filter(
    sql: DeadRangeOracle,
    orphans: storage::OrphanRangeOracle,
) -> helios_engine::lsm::compaction::DeadRangeFilter {
    Rc::new(move |lo: &[u8], hi: &[u8]| {
        storage::is_orphan_range(lo, hi, &orphans)
            || sql.borrow().as_ref().is_some_and(|is_dead| is_dead(lo, hi))
    })
}

fn compaction_filter(oracles: Oracles) -> helios_engine::lsm::compaction::ExpiryFilter {
    let redis = storage::compaction_filter(unix_ms, oracles.orphans);
    let dead = oracles.dead_sql_keys;
    Rc::new(move |key: &[u8], stored: &[u8]| {
        redis(key, stored) || dead.borrow().as_ref().is_some_and(|is_dead| is_dead(key))
    })
}

/// Opens the shard's tree, moves a legacy WAL into it if one is there, and rebuilds the key
/// index from it.
pub async fn open_store(
    shard_dir: &Path,
    budget: StoreBudget,
) -> Result<(Rc<ShardLsm>, Keyspace, Oracles), String> {
    let oracles = Oracles::default();
    let dir = lsm_dir(shard_dir);
    let cache = Rc::new(BlockCache::new(budget.block_cache_bytes));
    let lsm = Lsm::open(
        GlommioFs,
        GlommioRuntime,
        dir.clone(),
        lsm_options(&budget, oracles.clone()),
        cache,
    )
    .await
    .map_err(|error| format!("cannot open the store in {}: {error}", dir.display()))?;
    lsm.wal()
        .set_group_commit_clock(Rc::new(helios_shard::glommio_rt::GlommioClock::new()));
    let legacy = shard_dir.join(LEGACY_WAL_DIR);
    if legacy.exists() {
        migrate_legacy_wal(&lsm, &legacy).await?;
    }
    let mut ks = Keyspace::with_resident_budget(resident_budget(budget));
    rebuild_index(&lsm, &mut ks).await?;
    Ok((lsm, ks, oracles))
}

/// Test hook: `HELIOS_TEST_RESIDENT_VALUE_BYTES=0` keeps no value in memory after a batch, so
/// the differential tests drive every command through the load-from-disk path.
const RESIDENT_BUDGET_ENV: &str = "HELIOS_TEST_RESIDENT_VALUE_BYTES";

fn resident_budget(budget: StoreBudget) -> usize {
    match std::env::var(RESIDENT_BUDGET_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(bytes) => {
            tracing::warn!(
                bytes,
                "{RESIDENT_BUDGET_ENV} overrides the resident value budget"
            );
            bytes
        }
        None => budget.resident_value_bytes,
    }
}

/// Adds every live key of the tree to `ks`, values offloaded.
async fn rebuild_index(lsm: &ShardLsm, ks: &mut Keyspace) -> Result<(), String> {
    let now_ms = unix_ms();
    let mut iter = lsm.iter(ReadOptions::default());
    let fail = |error: helios_engine::lsm::LsmError| format!("reading the store: {error}");
    iter.seek_to_first().await.map_err(fail)?;
    let mut seen = 0usize;
    // Redis storage keys sort first (a database number); SQL rows and the catalog (0x80 on)
    // follow and are not part of the key index.
    while iter.valid() && storage::is_redis_storage_key(iter.key()) {
        ks.insert_stored(iter.key(), &iter.value_bytes(), now_ms)
            .map_err(|reason| format!("store entry {:?}: {reason}", iter.key()))?;
        seen += 1;
        if seen.is_multiple_of(REBUILD_YIELD_EVERY) {
            glommio::yield_if_needed().await;
        }
        iter.next().await.map_err(fail)?;
    }
    // Collection element keys follow every database key: each joins its hash, or is an
    // orphan of a deleted, expired or overwritten incarnation and is deleted now.
    let mut orphans = WriteBatch::new();
    let mut orphan_count = 0usize;
    while iter.valid() && storage::is_field_key(iter.key()) {
        let owned = ks
            .insert_stored_field(iter.key(), &iter.value_bytes())
            .map_err(|reason| format!("store entry {:?}: {reason}", iter.key()))?;
        if !owned {
            orphans.delete(iter.key().clone());
            orphan_count += 1;
            if orphans.approx_bytes() >= ORPHAN_BATCH_BYTES {
                lsm.write_owned(std::mem::take(&mut orphans))
                    .map_err(|e| format!("deleting orphaned fields: {e}"))?;
            }
        }
        seen += 1;
        if seen.is_multiple_of(REBUILD_YIELD_EVERY) {
            glommio::yield_if_needed().await;
        }
        iter.next().await.map_err(fail)?;
    }
    drop(iter);
    if !orphans.is_empty() {
        lsm.write_owned(orphans)
            .map_err(|e| format!("deleting orphaned fields: {e}"))?;
    }
    ks.check_rebuilt()
        .map_err(|reason| format!("{}: {reason}", lsm.dir().display()))?;
    tracing::info!(dir = %lsm.dir().display(), keys = ks.key_count_total(), orphan_fields = orphan_count, "key index rebuilt");
    Ok(())
}

/// Bytes of orphaned-field deletes written at once during the start-up scan.
const ORPHAN_BATCH_BYTES: usize = 4 << 20;

/// Replays a pre-LSM WAL into the tree (through a keyspace of its own, which turns the
/// mutations into storage writes; that WAL held the whole keyspace in memory before, so it fits
/// now), syncs, then removes it. A crash before the removal replays it again at the next start,
/// over what was already written: its records are absolute, so the result is the same.
async fn migrate_legacy_wal(lsm: &ShardLsm, legacy: &Path) -> Result<(), String> {
    tracing::warn!(dir = %legacy.display(), "moving a WAL of the pre-LSM format into the store");
    let now_ms = unix_ms();
    let mut ks = Keyspace::new();
    let mut batches = Vec::new();
    let wal = Wal::open(
        GlommioFs,
        legacy.to_path_buf(),
        WalOptions::default(),
        |lsn, kind, payload| {
            if kind != WAL_KIND_REDIS {
                return Err(WalError::Replay {
                    lsn,
                    reason: format!("unknown record kind {kind}"),
                });
            }
            ks.apply_logged(payload, now_ms)
                .map_err(|error| WalError::Replay {
                    lsn,
                    reason: error.to_string(),
                })?;
            if ks.pending_bytes() >= MIGRATION_BATCH_BYTES {
                batches.push(ks.take_pending());
            }
            Ok(())
        },
    )
    .await
    .map_err(|error| {
        format!(
            "cannot read the legacy WAL in {}: {error}",
            legacy.display()
        )
    })?;
    drop(wal);
    batches.push(ks.take_pending());
    let fail = |error: helios_engine::lsm::LsmError| format!("moving the legacy WAL: {error}");
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        lsm.wait_for_write_room().await.map_err(fail)?;
        lsm.write(batch).map_err(fail)?;
    }
    lsm.wal()
        .sync_all()
        .await
        .map_err(|error| format!("moving the legacy WAL: {error}"))?;
    std::fs::remove_dir_all(legacy)
        .map_err(|error| format!("cannot remove {}: {error}", legacy.display()))?;
    if let Some(parent) = legacy.parent() {
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| format!("cannot sync {}: {error}", parent.display()))?;
    }
    Ok(())
}
