//! The Redis server: shards, their state, connections, and routing of commands to shards.
//!
//! Path of one request: the shard's socket ring receives bytes into the connection's inbox
//! (`helios_shard::ring`) → the connection task parses every complete request in its buffer
//! (`resp::parse`) → [`conn`] groups the batch by owning shard: commands for its own shard run
//! inline on the local `Keyspace`, the others go as one message per shard over the mesh → each
//! shard logs the batch's mutations as one WAL record → replies wait for the WAL's group commit
//! (in `sync` durability) → they are encoded in order and sent with one `send(2)`.

mod admin;
mod blocking;
mod conn;
mod info;
mod pg;
pub mod pgauth;
/// PostgreSQL's binary value formats (in `helios_sql`; named here for the fuzz target).
pub use helios_sql::pgbinary;
mod pubsub;
mod reshard;
mod shard;
mod sort;
mod sqlcluster;
pub(crate) mod store;
mod zgather;

use helios_shard::routing::{PartitionMap, RoutingError};
pub use pgauth::{PgAuthMethod, PgUser};
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

pub use shard::{ShardReq, ShardResp};

/// When an acknowledged write is on stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged only after its WAL record is fsynced (group commit per shard).
    Sync,
    /// Acknowledged once in the memtable and WAL buffer; fsync at least every 100 ms.
    Async,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub redis_addr: SocketAddr,
    pub pg_addr: SocketAddr,
    /// `None`: the count recorded in the data dir, else the cores available.
    pub shards: Option<usize>,
    pub durability: Durability,
    pub config_file: Option<PathBuf>,
    /// Memory for cached data (block cache and resident values), divided among shards.
    pub cache_bytes: u64,
    /// PostgreSQL users who must authenticate (config file `[[pg_users]]`); others are
    /// trusted on loopback connections only.
    pub pg_users: Vec<PgUser>,
    /// `--maxmemory`: writes that may grow the data are refused above this many bytes of
    /// keyspace (0: no limit). CONFIG SET maxmemory changes it at run time.
    pub maxmemory_bytes: u64,
    /// Redis's `requirepass`: the default user's password (None: no password).
    pub requirepass: Option<String>,
    /// Redis's `protected-mode`: without a password, only loopback clients are served.
    pub protected_mode: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] helios_shard::runtime::RuntimeError),
    #[error("cannot move the data to the new shard count: {0}")]
    Reshard(String),
    #[error("shard {shard} failed to start: {message}")]
    ShardStart { shard: usize, message: String },
}

impl Shared {
    /// Whether clients must AUTH as the default user: a password is set.
    pub fn password_required(&self) -> bool {
        self.requirepass.read().map(|p| p.is_some()).unwrap_or(true)
    }

    /// Whether `password` is the default user's (false when none is set).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        self.requirepass
            .read()
            .map(|p| p.as_deref().is_some_and(|p| p.as_bytes() == password))
            .unwrap_or(false)
    }
}

/// State every shard reads: set once at start, or atomics (counters and flags only).
pub struct Shared {
    pub config: ServerConfig,
    pub map: PartitionMap,
    pub started_ms: u64,
    pub shutdown: Arc<AtomicBool>,
    /// Connections live on each shard; the accepting shard hands new ones to the least loaded.
    pub connections_per_shard: Vec<AtomicUsize>,
    /// The memory limit in force (see [`ServerConfig::maxmemory_bytes`]).
    pub maxmemory: AtomicU64,
    /// Each shard's keyspace bytes (`Keyspace::used_bytes`), as of its last batch: the sum is
    /// what `maxmemory` bounds.
    pub used_bytes: Vec<AtomicUsize>,
    /// Each shard's pub/sub subscriptions (channels and patterns of its connections):
    /// PUBLISH skips shards with none.
    pub subscriptions: Vec<AtomicUsize>,
    /// The password in force (`requirepass`, CONFIG SET requirepass; None: none).
    pub requirepass: std::sync::RwLock<Option<String>>,
    /// Protected mode in force (CONFIG SET protected-mode).
    pub protected_mode: AtomicBool,
    /// Shards that have drained their connections during shutdown.
    pub drained: AtomicUsize,
    /// Shards whose start-up (WAL replay) failed; the others stop too.
    pub failed: AtomicBool,
    pub next_client_id: AtomicU64,
    /// Ids of multi-shard operations (intent-lock owners).
    pub next_txid: AtomicU64,
    pub total_connections: AtomicU64,
    /// SQL transaction and snapshot ids.
    pub next_sql_txn: AtomicU64,
    /// Multi-shard commit timestamps.
    pub sql_clock: helios_sql::txn::HybridClock,
    /// SQL transactions waiting for row locks, across shards (deadlock detection).
    pub sql_wait_graph: helios_sql::txn::WaitGraph,
    /// Keeps snapshot pinning and multi-shard commits apart (see `helios_sql::txn`).
    pub sql_commit_gate: Arc<helios_sql::txn::CommitGate>,
    /// Clients waiting in a blocking command (INFO's `blocked_clients`).
    pub blocked_clients: AtomicU64,
    pub start_error: std::sync::Mutex<Option<String>>,
}

/// Runs the server until `shutdown` is set (SIGINT/SIGTERM), then drains and syncs.
pub fn run(config: ServerConfig, shutdown: Arc<AtomicBool>) -> Result<(), ServerError> {
    let default_shards = helios_shard::runtime::default_shard_count();
    reshard::finish_or_discard(&config.data_dir).map_err(ServerError::Reshard)?;
    let map = match PartitionMap::load_or_create(&config.data_dir, config.shards, default_shards) {
        Err(RoutingError::ShardCountMismatch {
            recorded,
            requested,
            ..
        }) => {
            reshard::reshard(&config.data_dir, recorded, requested)
                .map_err(ServerError::Reshard)?;
            PartitionMap::load_or_create(&config.data_dir, config.shards, default_shards)?
        }
        other => other?,
    };
    let shard_count = map.shard_count();
    let listener =
        std::net::TcpListener::bind(config.redis_addr).map_err(|source| ServerError::Bind {
            addr: config.redis_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.redis_addr,
        source,
    })?;
    tracing::info!(addr = %local, shards = shard_count, durability = config.durability.as_str(), data_dir = %config.data_dir.display(), "helios listening for Redis clients");
    let listener_fd = listener.into_raw_fd();
    let pg_listener =
        std::net::TcpListener::bind(config.pg_addr).map_err(|source| ServerError::Bind {
            addr: config.pg_addr,
            source,
        })?;
    if let Ok(pg_local) = pg_listener.local_addr() {
        tracing::info!(addr = %pg_local, "helios listening for PostgreSQL clients");
    }
    let pg_listener_fd = pg_listener.into_raw_fd();
    let maxmemory_bytes = config.maxmemory_bytes;
    let requirepass = config.requirepass.clone();
    let protected_mode = config.protected_mode;
    let shared = Arc::new(Shared {
        config,
        map,
        started_ms: helios_shard::glommio_rt::unix_ms(),
        shutdown,
        connections_per_shard: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
        maxmemory: AtomicU64::new(maxmemory_bytes),
        used_bytes: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
        subscriptions: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
        requirepass: std::sync::RwLock::new(requirepass),
        protected_mode: AtomicBool::new(protected_mode),
        drained: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        next_client_id: AtomicU64::new(1),
        next_txid: AtomicU64::new(1),
        total_connections: AtomicU64::new(0),
        next_sql_txn: AtomicU64::new(1),
        sql_clock: Default::default(),
        sql_wait_graph: Default::default(),
        sql_commit_gate: Default::default(),
        blocked_clients: AtomicU64::new(0),
        start_error: std::sync::Mutex::new(None),
    });
    let for_shards = shared.clone();
    helios_shard::runtime::run_shards(shard_count, move |start| {
        shard::shard_main(start, for_shards.clone(), listener_fd, pg_listener_fd)
    })?;
    let start_error = shared.start_error.lock().map(|e| e.clone()).unwrap_or(None);
    match start_error {
        Some(message) => Err(ServerError::ShardStart { shard: 0, message }),
        None => Ok(()),
    }
}
