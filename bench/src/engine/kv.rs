//! The storage-engine interface the benchmark drives, and the closed set of engines behind it.
//!
//! Adding an engine: a variant in `EngineKind` (+ its name), a variant in `AnyEngine`, one line
//! in `dispatch!`, one arm in `open`. Nothing else in the harness names an engine.

use std::path::Path;

use clap::ValueEnum;

use super::fjall::FjallEngine;
use super::helios::HeliosEngine;
use super::model::ModelEngine;

/// A single-threaded key-value engine as the benchmark sees it. Futures need not be `Send`: the
/// harness drives one engine at a time from one task (inside a glommio `LocalExecutor`, or a
/// plain `block_on`).
pub trait KvEngine {
    fn name(&self) -> &'static str;
    /// Durability: the write reaches the engine's log (buffered, no fsync); see `sync`.
    async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()>;
    /// The value's length, `None` when the key is absent. Must actually read the value bytes
    /// (materialize them), not only find the key.
    async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>>;
    /// Reads up to `limit` entries (keys and values) from the first key >= `start`; returns how
    /// many.
    async fn scan(&mut self, start: &[u8], limit: usize) -> anyhow::Result<usize>;
    /// Reads every entry in key order; returns how many.
    async fn scan_all(&mut self) -> anyhow::Result<usize>;
    /// Makes all writes so far durable (fsync/fdatasync of the log).
    async fn sync(&mut self) -> anyhow::Result<()>;
    /// Flushes the active memtable to a table file, then waits until background flushes and
    /// compactions have finished, so that the disk bytes a write phase costs are all charged
    /// to that phase.
    async fn wait_idle(&mut self) -> anyhow::Result<()>;
    /// Shuts the engine down (called once, after the last workload on its directory).
    async fn close(self) -> anyhow::Result<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// helios's own LSM (`helios_engine::lsm`) over glommio DMA files; needs the glommio executor.
    Helios,
    /// fjall (crates.io), the reference.
    Fjall,
    /// An in-memory `BTreeMap`: the harness's own cost, and the answer key for checks.
    Model,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Helios => "helios",
            EngineKind::Fjall => "fjall",
            EngineKind::Model => "model",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Lz4,
}

/// What every engine is opened with; identical for all engines of a run.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Block cache capacity.
    pub cache_bytes: u64,
    /// Table-block compression (and log compression where the engine has it).
    pub compression: Compression,
}

pub enum AnyEngine {
    Helios(HeliosEngine),
    Fjall(FjallEngine),
    Model(ModelEngine),
}

/// `match` over every engine: `dispatch!(self, e => e.method(args).await)`.
macro_rules! dispatch {
    ($engine:expr, $e:ident => $call:expr) => {
        match $engine {
            AnyEngine::Helios($e) => $call,
            AnyEngine::Fjall($e) => $call,
            AnyEngine::Model($e) => $call,
        }
    };
}

/// Opens (creating) the engine of `kind` in the empty directory `dir`.
pub async fn open(
    kind: EngineKind,
    dir: &Path,
    options: &EngineOptions,
) -> anyhow::Result<AnyEngine> {
    Ok(match kind {
        EngineKind::Helios => AnyEngine::Helios(HeliosEngine::open(dir, options).await?),
        EngineKind::Fjall => AnyEngine::Fjall(FjallEngine::open(dir, options)?),
        EngineKind::Model => AnyEngine::Model(ModelEngine::default()),
    })
}

impl KvEngine for AnyEngine {
    fn name(&self) -> &'static str {
        dispatch!(self, e => e.name())
    }
    async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        dispatch!(self, e => e.put(key, value).await)
    }
    async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        dispatch!(self, e => e.get(key).await)
    }
    async fn scan(&mut self, start: &[u8], limit: usize) -> anyhow::Result<usize> {
        dispatch!(self, e => e.scan(start, limit).await)
    }
    async fn scan_all(&mut self) -> anyhow::Result<usize> {
        dispatch!(self, e => e.scan_all().await)
    }
    async fn sync(&mut self) -> anyhow::Result<()> {
        dispatch!(self, e => e.sync().await)
    }
    async fn wait_idle(&mut self) -> anyhow::Result<()> {
        dispatch!(self, e => e.wait_idle().await)
    }
    async fn close(self) -> anyhow::Result<()> {
        dispatch!(self, e => e.close().await)
    }
}
