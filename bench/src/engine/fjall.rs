//! fjall (crates.io, a pure-Rust LSM), the reference engine: one database, one keyspace.
//!
//! Settings (README, "Engine benchmarks"): block cache = `--cache-bytes`; fjall's default
//! 4 KiB data blocks, 64 MiB memtable and leveled compaction; compression off unless
//! `--compression lz4` (then lz4 on data blocks of every level and on the journal). The journal
//! is persisted manually: a put lands in the journal's in-process buffer (written to the OS
//! when it fills), and `sync` fdatasyncs it. fjall flushes and compacts on its own worker
//! threads (min(cores, 4)); the calls here are blocking, which is fine: one task drives them.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fjall::config::CompressionPolicy;
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::kv::{Compression, EngineOptions, KvEngine};

const KEYSPACE_NAME: &str = "bench";
/// How often `wait_idle` looks at fjall's flush and compaction counters.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Consecutive idle polls with nothing changed before the engine counts as idle.
const IDLE_POLLS_STABLE: u32 = 5;
/// A background backlog still busy after this is a hang, not a slow disk.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(1800);

pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
}

/// What `wait_idle` watches: queued flushes, sealed memtables, running compactions, finished
/// compactions, tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Activity {
    flushes_queued: usize,
    memtables_sealed: usize,
    compactions_active: usize,
    compactions_done: usize,
    tables: usize,
}

impl Activity {
    fn busy(&self) -> bool {
        self.flushes_queued > 0 || self.memtables_sealed > 0 || self.compactions_active > 0
    }
}

impl FjallEngine {
    pub fn open(dir: &Path, options: &EngineOptions) -> anyhow::Result<FjallEngine> {
        let compression = match options.compression {
            Compression::None => CompressionType::None,
            Compression::Lz4 => CompressionType::Lz4,
        };
        let db = Database::builder(dir)
            .cache_size(options.cache_bytes)
            .manual_journal_persist(true)
            .journal_compression(compression)
            .open()
            .with_context(|| format!("opening fjall in {}", dir.display()))?;
        let keyspace = db.keyspace(KEYSPACE_NAME, || {
            KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .data_block_compression_policy(CompressionPolicy::all(compression))
        })?;
        Ok(FjallEngine { db, keyspace })
    }

    fn activity(&self) -> Activity {
        Activity {
            flushes_queued: self.db.outstanding_flushes(),
            memtables_sealed: self.keyspace.sealed_memtable_count(),
            compactions_active: self.db.active_compactions(),
            compactions_done: self.db.compactions_completed(),
            tables: self.keyspace.table_count(),
        }
    }
}

impl KvEngine for FjallEngine {
    fn name(&self) -> &'static str {
        "fjall"
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.keyspace.insert(key, value)?)
    }

    async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        // `get` returns the value itself (copied out of its block, or sharing it).
        Ok(self.keyspace.get(key)?.map(|value| value.len()))
    }

    async fn scan(&mut self, start: &[u8], limit: usize) -> anyhow::Result<usize> {
        let mut count = 0;
        for entry in self.keyspace.range(start..).take(limit) {
            let (_key, _value) = entry.into_inner()?;
            count += 1;
        }
        Ok(count)
    }

    async fn scan_all(&mut self) -> anyhow::Result<usize> {
        let mut count = 0;
        for entry in self.keyspace.iter() {
            let (_key, _value) = entry.into_inner()?;
            count += 1;
        }
        Ok(count)
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        Ok(self.db.persist(PersistMode::SyncData)?)
    }

    /// fjall has no "wait for compactions" call: rotate the memtable and wait for its flush
    /// (`rotate_memtable_and_wait`), then poll the flush/compaction counters until nothing is
    /// running and nothing has changed for `IDLE_POLLS_STABLE` polls (fjall schedules
    /// compactions after each flush; a queued one shows up as a change within a poll or two).
    async fn wait_idle(&mut self) -> anyhow::Result<()> {
        self.keyspace.rotate_memtable_and_wait()?;
        let start = Instant::now();
        let mut last = self.activity();
        let mut stable = 0;
        while stable < IDLE_POLLS_STABLE {
            if start.elapsed() > IDLE_WAIT_MAX {
                bail!("fjall still busy after {IDLE_WAIT_MAX:?}: {last:?}");
            }
            thread::sleep(IDLE_POLL_INTERVAL);
            let now = self.activity();
            stable = if now.busy() || now != last {
                0
            } else {
                stable + 1
            };
            last = now;
        }
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        drop(self.keyspace);
        drop(self.db);
        Ok(())
    }
}
