//! INFO's text: Redis's sections with the figures we have, summed over shards, plus a
//! `# Shards` section with each shard's own figures.

use super::shard::ShardStats;
use super::Shared;
use std::fmt::Write;
use std::sync::atomic::Ordering;

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "keyspace",
    "shards",
    "storage",
];

pub fn render(shared: &Shared, stats: &[ShardStats], requested: &[String], now_ms: u64) -> String {
    let wanted = |section: &str| {
        requested.is_empty() && DEFAULT_SECTIONS.contains(&section)
            || requested.iter().any(|r| {
                r == section
                    || r == "all"
                    || r == "everything"
                    || (r == "default" && DEFAULT_SECTIONS.contains(&section))
            })
    };
    let mut out = String::new();
    let mut section = |name: &str, body: String| {
        if wanted(&name.to_ascii_lowercase()) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let _ = write!(out, "# {name}\r\n{body}");
        }
    };
    let uptime_s = now_ms.saturating_sub(shared.started_ms) / 1000;
    let config = &shared.config;
    section(
        "Server",
        format!(
            "redis_version:7.2.4\r\nhelios_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:helios\r\nshards:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            config.redis_addr.port(),
            uptime_s,
            uptime_s / 86400,
            stats.len(),
        ),
    );
    let connections: usize = stats.iter().map(|s| s.connections).sum();
    section(
        "Clients",
        format!(
            "connected_clients:{connections}\r\nblocked_clients:{}\r\nmaxclients:10000\r\n",
            shared
                .blocked_clients
                .load(std::sync::atomic::Ordering::Relaxed)
        ),
    );
    let used: usize = stats.iter().map(|s| s.used_bytes).sum();
    section(
        "Memory",
        format!(
            "used_memory:{used}\r\nused_memory_human:{:.2}M\r\nmaxmemory:{}\r\nmaxmemory_policy:noeviction\r\n",
            used as f64 / (1 << 20) as f64,
            shared.maxmemory.load(std::sync::atomic::Ordering::Relaxed)
        ),
    );
    let wal_failed = stats.iter().any(|s| s.wal_failed);
    let lag: u64 = stats
        .iter()
        .map(|s| s.wal_last_lsn - s.wal_durable_lsn.min(s.wal_last_lsn))
        .sum();
    section(
        "Persistence",
        format!(
            "loading:0\r\naof_enabled:1\r\naof_last_write_status:{}\r\nrdb_changes_since_last_save:0\r\nhelios_durability:{}\r\nhelios_wal_records_not_durable:{lag}\r\n",
            if wal_failed { "err" } else { "ok" },
            config.durability.as_str(),
        ),
    );
    let commands: u64 = stats.iter().map(|s| s.commands_processed).sum();
    let expired: u64 = stats.iter().map(|s| s.expired_keys).sum();
    section(
        "Stats",
        format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{commands}\r\nexpired_keys:{expired}\r\nevicted_keys:0\r\n",
            shared.total_connections.load(Ordering::Relaxed)
        ),
    );
    section(
        "Replication",
        "role:master\r\nconnected_slaves:0\r\n".to_string(),
    );
    let mut keyspace = String::new();
    for db in 0..helios_engine::keyspace::DB_COUNT as u8 {
        let (keys, expires) = stats
            .iter()
            .flat_map(|s| s.keys_per_db.iter())
            .filter(|(d, _, _)| *d == db)
            .fold((0, 0), |(k, e), (_, keys, expires)| (k + keys, e + expires));
        if keys > 0 {
            let _ = write!(
                keyspace,
                "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n"
            );
        }
    }
    section("Keyspace", keyspace);
    let mut shards = String::new();
    for s in stats {
        let keys: usize = s.keys_per_db.iter().map(|(_, k, _)| k).sum();
        let _ = write!(
            shards,
            "shard{}:connections={},connections_received={},keys={},used_memory={},commands={},wal_lsn={},wal_durable_lsn={}\r\n",
            s.shard, s.connections, s.connections_received, keys, s.used_bytes, s.commands_processed, s.wal_last_lsn, s.wal_durable_lsn
        );
    }
    section("Shards", shards);
    let mut storage = String::new();
    for s in stats {
        let st = &s.storage;
        let join = |v: &[String]| v.join("/");
        let files: Vec<String> = st.level_files.iter().map(|n| n.to_string()).collect();
        let bytes: Vec<String> = st.level_bytes.iter().map(|n| n.to_string()).collect();
        let _ = write!(
            storage,
            "shard{}:level_files={},level_bytes={},max_l0_files={},memtable_bytes={},resident_value_bytes={},block_cache_used={},block_cache_capacity={},block_cache_hits={},block_cache_misses={},flushes={},compactions={},trivial_moves={},write_stalls={},wal_segments={},user_bytes_written={},flush_bytes_written={},compaction_bytes_written={},dead_tables_deleted={}\r\n",
            s.shard,
            join(&files),
            join(&bytes),
            st.lsm.max_l0_files,
            st.memtable_bytes,
            st.resident_value_bytes,
            st.block_cache_used_bytes,
            st.block_cache_capacity_bytes,
            st.block_cache_hits,
            st.block_cache_misses,
            st.lsm.flushes,
            st.lsm.compactions,
            st.lsm.trivial_moves,
            st.lsm.stalls,
            st.wal_segments,
            st.lsm.user_bytes_written,
            st.lsm.flush_bytes_written,
            st.lsm.compaction_bytes_written,
            st.lsm.dead_tables_deleted,
        );
    }
    section("Storage", storage);
    out
}
