//! One shard's state and life: opening its store (the LSM tree and the key index rebuilt from
//! it), the mesh request handler, loading offloaded values before a batch runs, the accept loop
//! (shard 0), background expiry and WAL flushing, and the shutdown drain.

use super::store::{self, ShardLsm, StoreBudget};
use super::{conn, Durability, Shared};
use crate::commands::{self, ExecCtx};
use crate::{Command, Reply};
use bytes::Bytes;
use helios_engine::keyspace::{Keyspace, Portable};
use helios_engine::wal::Wal;
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::unix_ms;
use helios_shard::mesh::{Handler, Mesh};
use helios_shard::ring::SocketRing;
use helios_shard::runtime::ShardStart;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A batch's mutations are cut into WAL records of about this size (a record holds at most
/// one more command's mutations), far below the record limit.
const WAL_BATCH_RECORD_BYTES: usize = 32 << 20;
/// Above this many unwritten WAL bytes, a batch first waits for the WAL to write them, so a
/// burst of large writes (async durability) slows clients down instead of overflowing the
/// WAL's bounded buffer.
const WAL_BACKPRESSURE_BYTES: usize = 64 << 20;
const MISCONF_WAL: &str =
    "MISCONF Errors writing to the WAL; writes are refused until restart (see the server log)";
/// After a batch of keyspace changes could not be written to the store (`append_failed`), the
/// keyspace in memory holds changes the log lacks, which a restart drops: reads are refused
/// too, as Redis exits on an AOF write error under `appendfsync always` and PostgreSQL stops
/// on a failed WAL write, so that nobody reads what no restart will bring back.
const STORE_FAILED: &str =
    "Errors writing to the store; commands are refused until restart (see the server log)";
/// Active expiry: how often, and how many keys at most per round.
const ACTIVE_EXPIRE_INTERVAL: Duration = Duration::from_millis(100);
const ACTIVE_EXPIRE_KEYS_MAX: usize = 1000;
/// Async durability: the WAL is written and fsynced at least this often.
const ASYNC_SYNC_INTERVAL: Duration = Duration::from_millis(50);
const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Messages between shards.
pub enum ShardReq {
    /// Run these commands (all keys owned by the target) in order; reply after durability.
    /// `txid` is the multi-shard operation whose intent locks these commands may pass (0: none).
    Exec {
        txid: u64,
        cmds: Vec<(u8, Command)>,
    },
    /// Take intent locks on keys for a multi-shard operation; answered once all are held.
    Lock {
        txid: u64,
        db: u8,
        keys: Vec<Bytes>,
    },
    /// Release every intent lock of `txid`.
    Unlock {
        txid: u64,
    },
    /// Take over an accepted client socket.
    Adopt(RawFd),
    /// Take over an accepted PostgreSQL client socket.
    AdoptPg(RawFd),
    /// One SCAN step on this shard.
    Scan {
        db: u8,
        cursor_token: u64,
        count: usize,
        pattern: Option<Bytes>,
        type_filter: Option<Bytes>,
    },
    /// Remove and return a key's value and expiry (cross-shard RENAME).
    Take {
        db: u8,
        key: Bytes,
    },
    /// Store a value with an expiry (cross-shard RENAME).
    Put(PutEntry),
    /// The current version of each key (WATCH, and EXEC's check of watched keys).
    Versions {
        db: u8,
        keys: Vec<Bytes>,
    },
    Stats,
    ClientList,
    SetDurability(Durability),
    /// SQL: run a scan fragment over this shard's rows.
    SqlScan(Box<helios_sql::ScanRequest>),
    /// SQL: apply a write fragment as one batch; answered once durable.
    SqlWrite(Box<helios_sql::WriteRequest>),
    /// SQL: delete every row of a table on this shard.
    SqlTruncate(u32),
    /// SQL: write rows of a fresh key range straight into this shard's tables.
    SqlIngest(helios_engine::lsm::PackedEntries),
    /// SQL, to shard 0: apply a catalog change (see `sqlcluster`).
    SqlDdl(Box<helios_sql::DdlRequest>),
    /// SQL, from shard 0: install this catalog.
    SqlCatalog(Arc<helios_sql::Catalog>),
    /// PostgreSQL CancelRequest for a connection served by this shard.
    PgCancel {
        pid: i32,
        secret: i32,
    },
    /// SQL, to shard 0: advance or set a sequence.
    SqlSequence(Box<helios_sql::SequenceDef>, helios_sql::SequenceOp),
    /// A transaction message (see `helios_sql::txn`).
    SqlTxn(Box<helios_sql::txn::TxnMsg>),
    /// A client blocked on these keys (BLPOP...): wake it through `wake` whenever one of
    /// them holds elements (now, or after a later write).
    Block {
        id: u64,
        db: u8,
        keys: Vec<Bytes>,
        wake: flume::Sender<()>,
    },
    /// Deliver a PUBLISHed message to this shard's subscribers (answered with their count).
    Publish {
        channel: Bytes,
        message: Bytes,
    },
    /// This shard's part of a PUBSUB query.
    Pubsub(super::pubsub::PubsubQuery),
    /// The blocked client `id` is done (served, timed out or gone).
    Unblock {
        id: u64,
        db: u8,
        keys: Vec<Bytes>,
    },
}

pub enum ShardResp {
    Replies(Vec<Reply>),
    Published(i64),
    Pubsub(super::pubsub::PubsubAnswer),
    Done,
    Scan(Vec<Bytes>, Option<u64>),
    Taken(Option<(Portable, Option<u64>)>),
    Versions(Vec<Option<u64>>),
    Put(bool),
    Stats(Box<ShardStats>),
    ClientList(String),
    Error(String),
    SqlRows(Box<helios_sql::ScanRows>),
    SqlWritten(helios_sql::WriteOutcome),
    SqlDdl(helios_sql::DdlOutcome),
    SqlSequence(Vec<i64>),
    SqlTxn(Box<helios_sql::txn::TxnReply>),
    SqlError(Box<helios_sql::SqlError>),
}

#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub shard: usize,
    pub connections: usize,
    pub keys_per_db: Vec<(u8, usize, usize)>,
    pub used_bytes: usize,
    pub commands_processed: u64,
    pub expired_keys: u64,
    pub wal_last_lsn: u64,
    pub wal_durable_lsn: u64,
    pub wal_failed: bool,
    pub connections_received: u64,
    pub storage: StorageStats,
}

/// The shard's LSM tree, for INFO's `# Storage` section.
#[derive(Clone, Debug, Default)]
pub struct StorageStats {
    pub level_files: Vec<usize>,
    pub level_bytes: Vec<u64>,
    pub lsm: helios_engine::lsm::LsmStats,
    pub memtable_bytes: usize,
    pub resident_value_bytes: usize,
    pub block_cache_used_bytes: u64,
    pub block_cache_capacity_bytes: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
    pub wal_segments: usize,
}

pub struct ShardState {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub ks: RefCell<Keyspace>,
    /// The shard's LSM tree: values, and the WAL (`lsm.wal()`).
    pub lsm: Rc<ShardLsm>,
    pub mesh: Rc<Mesh<ShardReq, ShardResp>>,
    pub ring: Rc<SocketRing>,
    pub durability: Cell<Durability>,
    pub log: RefCell<Vec<u8>>,
    pub commands_processed: Cell<u64>,
    pub expired_keys: Cell<u64>,
    pub connections_received: Cell<u64>,
    pub clients: RefCell<std::collections::BTreeMap<u64, Rc<RefCell<conn::ClientInfo>>>>,
    /// Intent locks of multi-shard operations in flight: (db, key) → txid. Commands touching a
    /// locked key wait until it is released, so a multi-shard MSET/MSETNX/MGET/RENAME is atomic
    /// and isolated. Locks are taken in ascending shard order, so they cannot deadlock.
    pub locks: RefCell<std::collections::HashMap<(u8, Bytes), u64>>,
    pub lock_waiters: RefCell<Vec<std::task::Waker>>,
    /// Set when an append failed: memory holds mutations the WAL lacks.
    pub append_failed: Cell<bool>,
    /// Shard 0's ring accepting PostgreSQL connections.
    pub pg_ring: RefCell<Option<Rc<SocketRing>>>,
    /// The SQL catalog this shard plans with (shard 0 publishes every version).
    pub catalog: RefCell<Arc<helios_sql::Catalog>>,
    /// The table and index ids of `catalog` whose keys compaction keeps.
    pub sql_live: RefCell<helios_sql::LiveIds>,
    /// One table deletion (TRUNCATE, a failed rewrite's rows) at a time on this shard (see
    /// `sqlcluster::truncate`).
    pub sql_writes: glommio::sync::Semaphore,
    /// SQL transactions' intents, row locks and snapshots on this shard.
    pub sql_txns: helios_sql::txn::ShardTxns,
    /// Shard 0: one catalog change at a time.
    pub ddl_lock: glommio::sync::Semaphore,
    /// PostgreSQL connections on this shard: backend pid → (cancel secret, cancel flag).
    pub pg_backends: RefCell<std::collections::HashMap<i32, (i32, helios_sql::CancelFlag)>>,
    /// Shard 0: the sequences' current values.
    pub sequences: helios_sql::SequenceStates,
    /// Pub/sub subscriptions of this shard's connections.
    pub pubsub: RefCell<super::pubsub::Registry>,
    /// Clients blocked on keys of this shard, per key in arrival order (see `blocking`).
    pub blocked:
        RefCell<std::collections::HashMap<(u8, Bytes), std::collections::VecDeque<Waiter>>>,
}

/// A client blocked on a key: its id and how to wake it.
pub struct Waiter {
    pub id: u64,
    pub wake: flume::Sender<()>,
}

impl ShardState {
    pub fn wal(&self) -> &Wal<GlommioFs> {
        self.lsm.wal()
    }

    /// Runs commands whose keys this shard owns, writing their storage changes to the tree as
    /// one WAL record. Returns the WAL position the replies must wait for (everything they may
    /// have observed). The batch's values must be resident: see [`ShardState::ready_to_exec`].
    pub fn exec_batch<'a>(
        &self,
        cmds: impl Iterator<Item = (u8, &'a Command)>,
        replies: &mut Vec<Reply>,
    ) -> u64 {
        let mut ks = self.ks.borrow_mut();
        let now_ms = unix_ms();
        ks.tick(now_ms);
        let mut count = 0;
        let mut woken_keys: Vec<(u8, Bytes)> = Vec::new();
        let watching = !self.blocked.borrow().is_empty();
        // Replies whose writes are pending in the keyspace, not yet written to the tree.
        let mut unlogged_from = replies.len();
        let over_maxmemory = self.over_maxmemory(ks.used_bytes());
        for (db, cmd) in cmds {
            count += 1;
            if self.append_failed.get() {
                replies.push(Reply::error(format!("MISCONF {STORE_FAILED}")));
                continue;
            }
            // A failed append refused the command above; a failed WAL refuses writes here.
            if self.wal().is_failed() && commands::is_write(cmd) {
                replies.push(Reply::error(MISCONF_WAL));
                continue;
            }
            if over_maxmemory && commands::may_grow(cmd) {
                replies.push(Reply::error(OOM_ERROR));
                continue;
            }
            let mut ctx = ExecCtx {
                ks: &mut ks,
                db,
                now_ms,
                log: None,
            };
            replies.push(commands::exec_local(&mut ctx, cmd));
            if watching && commands::is_write(cmd) {
                self.note_blocked_keys(db, cmd, &mut woken_keys);
            }
            if ks.pending_bytes() >= WAL_BATCH_RECORD_BYTES {
                self.write_pending(&mut ks, &mut replies[unlogged_from..]);
                unlogged_from = replies.len();
            }
        }
        self.commands_processed
            .set(self.commands_processed.get() + count);
        self.write_pending(&mut ks, &mut replies[unlogged_from..]);
        ks.evict_to_budget();
        self.shared.used_bytes[self.id].store(ks.used_bytes(), Ordering::Relaxed);
        drop(ks);
        for (db, key) in woken_keys {
            self.wake_blocked(db, &key);
        }
        self.wal().last_lsn()
    }

    /// The keys of a write command that blocked clients wait on.
    fn note_blocked_keys(&self, db: u8, cmd: &Command, out: &mut Vec<(u8, Bytes)>) {
        let Some(spec) = cmd.spec() else {
            return;
        };
        let blocked = self.blocked.borrow();
        for key in super::admin::keys_of(spec, cmd) {
            let entry = (db, key.clone());
            if blocked.contains_key(&entry) && !out.contains(&entry) {
                out.push(entry);
            }
        }
    }

    /// Registers a blocked client on keys of this shard, then wakes it (and those before it)
    /// at once for any key that already holds elements: a write between the client's empty
    /// attempt and this registration is not missed.
    pub fn block(&self, id: u64, db: u8, keys: Vec<Bytes>, wake: flume::Sender<()>) {
        {
            let mut blocked = self.blocked.borrow_mut();
            for key in &keys {
                let queue = blocked.entry((db, key.clone())).or_default();
                if !queue.iter().any(|w| w.id == id) {
                    queue.push_back(Waiter {
                        id,
                        wake: wake.clone(),
                    });
                }
            }
        }
        for key in &keys {
            self.wake_blocked(db, key);
        }
    }

    /// Forgets a blocked client; a key it may have been woken for without taking from it
    /// wakes the next clients in line.
    pub fn unblock(&self, id: u64, db: u8, keys: &[Bytes]) {
        {
            let mut blocked = self.blocked.borrow_mut();
            for key in keys {
                let entry = (db, key.clone());
                if let Some(queue) = blocked.get_mut(&entry) {
                    queue.retain(|w| w.id != id);
                    if queue.is_empty() {
                        blocked.remove(&entry);
                    }
                }
            }
        }
        for key in keys {
            self.wake_blocked(db, key);
        }
    }

    /// Wakes, in arrival order, as many clients blocked on `key` as it holds elements (a
    /// woken client retries its pop; one that finds nothing waits on, in its place).
    fn wake_blocked(&self, db: u8, key: &Bytes) {
        let blocked = self.blocked.borrow();
        let Some(queue) = blocked.get(&(db, key.clone())) else {
            return;
        };
        let available = {
            let mut ks = self.ks.borrow_mut();
            match ks.get(db, key, unix_ms()).map(|e| &e.value) {
                Some(helios_engine::keyspace::Value::List(l)) => l.items.len(),
                Some(helios_engine::keyspace::Value::ZSet(z)) => z.len(),
                _ => 0,
            }
        };
        for waiter in queue.iter().take(available) {
            // A closed channel: the client is gone and its Unblock is on the way.
            let _ = waiter.wake.send(());
        }
    }

    /// Whether the keyspaces of all shards together hold more than `maxmemory` (with this
    /// shard's own count fresh): then commands that may grow the data are refused, as
    /// Redis's `noeviction` policy does. The other shards' counts are as of their last batch.
    fn over_maxmemory(&self, mine: usize) -> bool {
        let limit = self.shared.maxmemory.load(Ordering::Relaxed);
        if limit == 0 {
            return false;
        }
        let others: usize = self
            .shared
            .used_bytes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.id)
            .map(|(_, u)| u.load(Ordering::Relaxed))
            .sum();
        (mine + others) as u64 > limit
    }

    /// The current version of each key on this shard (see `Keyspace::version`).
    pub fn versions(&self, db: u8, keys: &[Bytes]) -> Vec<Option<u64>> {
        let mut ks = self.ks.borrow_mut();
        let now_ms = unix_ms();
        keys.iter().map(|k| ks.version(db, k, now_ms)).collect()
    }

    /// Whether writes must be refused: the WAL failed, or a write could not be logged.
    fn writes_refused(&self) -> bool {
        self.wal().is_failed() || self.append_failed.get()
    }

    /// Writes the keyspace's pending storage changes to the tree as one batch (one WAL record).
    /// If that fails, the changes are in the key index but not in the log: the replies that
    /// depend on them become errors (never an acknowledgement), and every later command on
    /// keys, reads included, is refused until restart (see [`STORE_FAILED`]).
    fn write_pending(&self, ks: &mut Keyspace, replies: &mut [Reply]) {
        let batch = ks.take_pending();
        if batch.is_empty() {
            return;
        }
        if let Err(error) = self.lsm.write_owned(batch) {
            tracing::error!(shard = self.id, %error, "store write failed; refusing commands until restart");
            self.append_failed.set(true);
            for reply in replies.iter_mut() {
                *reply = Reply::error(format!("MISCONF {STORE_FAILED}"));
            }
        }
    }

    /// Backpressure: waits while the WAL holds more than WAL_BACKPRESSURE_BYTES unwritten.
    pub async fn wal_backpressure(&self) {
        while self.wal().pending_bytes() > WAL_BACKPRESSURE_BYTES && !self.wal().is_failed() {
            if let Err(error) = self.wal().write_buffered().await {
                tracing::error!(shard = self.id, %error, "WAL write failed");
            }
        }
    }

    /// Waits until a batch may run: the WAL is not over its backpressure mark, the tree is not
    /// stalling writes, no command of the batch touches a key locked by another operation than
    /// `txid`, and the values of every key the batch names are resident. All four hold together
    /// when this returns, and the caller runs the batch before its next `.await`.
    pub async fn ready_to_exec<'a>(
        &self,
        cmds: impl Iterator<Item = (u8, &'a Command)> + Clone,
        txid: u64,
    ) {
        loop {
            self.wal_backpressure().await;
            if let Err(error) = self.lsm.wait_for_write_room().await {
                // Writes will be refused; reads may still run.
                tracing::debug!(shard = self.id, %error, "store refuses writes");
            }
            if !self.locks.borrow().is_empty() {
                std::future::poll_fn(|cx| {
                    if self.touches_locked(cmds.clone(), txid) {
                        self.lock_waiters.borrow_mut().push(cx.waker().clone());
                        std::task::Poll::Pending
                    } else {
                        std::task::Poll::Ready(())
                    }
                })
                .await;
            }
            let missing = self.offloaded_values(cmds.clone());
            if missing.is_empty() {
                return;
            }
            if let Err(error) = self.load_values(missing).await {
                // The commands that needed them answer with an error (see `ExecCtx::get_str`).
                tracing::error!(shard = self.id, %error, "reading values from the store failed");
                return;
            }
        }
    }

    /// Keys named by `cmds` whose values are offloaded: (db, key, storage key, entry stamp).
    fn offloaded_values<'a>(
        &self,
        cmds: impl Iterator<Item = (u8, &'a Command)>,
    ) -> Vec<(u8, Bytes, Vec<u8>, u64)> {
        let ks = self.ks.borrow();
        let mut missing = Vec::new();
        if !ks.may_need_loads() {
            return missing;
        }
        let now_ms = unix_ms();
        for (db, cmd) in cmds {
            let Some(spec) = cmd.spec() else {
                continue;
            };
            if !reads_values(cmd) {
                continue;
            }
            for key in admin::keys_of(spec, cmd) {
                if let Some((skey, stamp)) = ks.needs_load(db, key, now_ms) {
                    missing.push((db, key.clone(), skey, stamp));
                }
            }
        }
        missing
    }

    /// Reads offloaded values from the tree and makes them resident (unless their entries
    /// changed meanwhile; the caller checks again).
    async fn load_values(&self, missing: Vec<(u8, Bytes, Vec<u8>, u64)>) -> Result<(), String> {
        for (db, key, skey, stamp) in missing {
            let stored = self
                .lsm
                .get(&skey, None)
                .await
                .map_err(|error| error.to_string())?;
            self.ks
                .borrow_mut()
                .install_loaded(db, &key, stamp, stored.as_ref())?;
        }
        Ok(())
    }

    /// Makes the value of one key resident (the source half of a cross-shard RENAME).
    async fn load_key(&self, db: u8, key: &Bytes) -> Result<(), String> {
        loop {
            let missing = self.ks.borrow().needs_load(db, key, unix_ms());
            let Some((skey, stamp)) = missing else {
                return Ok(());
            };
            self.load_values(vec![(db, key.clone(), skey, stamp)])
                .await?;
        }
    }

    fn touches_locked<'a>(
        &self,
        mut cmds: impl Iterator<Item = (u8, &'a Command)>,
        txid: u64,
    ) -> bool {
        let locks = self.locks.borrow();
        if locks.is_empty() {
            return false;
        }
        cmds.any(|(db, cmd)| {
            // A flush erases keys another shard's half of a multi-key operation may still write.
            let flush = cmd.name().eq_ignore_ascii_case(b"FLUSHDB")
                || cmd.name().eq_ignore_ascii_case(b"FLUSHALL");
            flush && locks.values().any(|&owner| owner != txid)
                || cmd.spec().is_some_and(|spec| {
                    admin::keys_of(spec, cmd).any(|key| {
                        locks
                            .get(&(db, key.clone()))
                            .is_some_and(|&owner| owner != txid)
                    })
                })
        })
    }

    pub async fn lock_keys(&self, txid: u64, db: u8, keys: Vec<Bytes>) {
        std::future::poll_fn(|cx| {
            let mut locks = self.locks.borrow_mut();
            if keys.iter().any(|key| {
                locks
                    .get(&(db, key.clone()))
                    .is_some_and(|&owner| owner != txid)
            }) {
                self.lock_waiters.borrow_mut().push(cx.waker().clone());
                return std::task::Poll::Pending;
            }
            for key in &keys {
                locks.insert((db, key.clone()), txid);
            }
            std::task::Poll::Ready(())
        })
        .await
    }

    pub fn unlock(&self, txid: u64) {
        self.locks.borrow_mut().retain(|_, owner| *owner != txid);
        for waker in self.lock_waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until `lsn` is durable when the durability mode asks for it.
    pub async fn wait_durable(&self, lsn: u64) -> Result<(), String> {
        if self.durability.get() == Durability::Async || self.wal().durable_lsn() >= lsn {
            return Ok(());
        }
        self.wal()
            .sync_to(lsn)
            .await
            .map_err(|error| error.to_string())
    }

    pub fn owner_of(&self, key: &[u8]) -> usize {
        let map = &self.shared.map;
        if map.shard_count() == 1 {
            // The one shard owns every partition: no key needs hashing to route (the
            // default on a 2-core host; a few % of a pipelined GET's CPU).
            return 0;
        }
        map.shard_of_token(helios_engine::token::redis_token(key))
    }

    pub fn local_stats(&self) -> ShardStats {
        let ks = self.ks.borrow();
        let keys_per_db = (0..helios_engine::keyspace::DB_COUNT as u8)
            .map(|db| (db, ks.dbsize(db), ks.expires_count(db)))
            .filter(|&(_, keys, _)| keys > 0)
            .collect();
        ShardStats {
            shard: self.id,
            connections: self.ring.connection_count(),
            keys_per_db,
            used_bytes: ks.used_bytes(),
            commands_processed: self.commands_processed.get(),
            expired_keys: self.expired_keys.get(),
            wal_last_lsn: self.wal().last_lsn(),
            wal_durable_lsn: self.wal().durable_lsn(),
            wal_failed: self.wal().is_failed(),
            connections_received: self.connections_received.get(),
            storage: StorageStats {
                level_files: self.lsm.level_file_counts(),
                level_bytes: self.lsm.level_bytes(),
                lsm: self.lsm.stats(),
                memtable_bytes: self.lsm.memtable_bytes(),
                resident_value_bytes: ks.resident_bytes(),
                block_cache_used_bytes: self.lsm.block_cache().used_bytes(),
                block_cache_capacity_bytes: self.lsm.block_cache().capacity_bytes(),
                block_cache_hits: self.lsm.block_cache().hits(),
                block_cache_misses: self.lsm.block_cache().misses(),
                wal_segments: self.wal().segment_count(),
            },
        }
    }

    async fn handle(self: Rc<Self>, req: ShardReq) -> ShardResp {
        match req {
            ShardReq::Exec { txid, cmds } => {
                self.ready_to_exec(cmds.iter().map(|(db, cmd)| (*db, cmd)), txid)
                    .await;
                let mut replies = Vec::with_capacity(cmds.len());
                let lsn = self.exec_batch(cmds.iter().map(|(db, cmd)| (*db, cmd)), &mut replies);
                match self.wait_durable(lsn).await {
                    Ok(()) => ShardResp::Replies(replies),
                    Err(error) => ShardResp::Error(error),
                }
            }
            ShardReq::Adopt(fd) => {
                conn::spawn_connection(&self, fd);
                ShardResp::Done
            }
            ShardReq::Block { id, db, keys, wake } => {
                self.block(id, db, keys, wake);
                ShardResp::Done
            }
            ShardReq::Publish { channel, message } => {
                ShardResp::Published(self.pubsub.borrow().publish(&channel, &message))
            }
            ShardReq::Pubsub(query) => ShardResp::Pubsub(self.pubsub.borrow().query(&query)),
            ShardReq::Unblock { id, db, keys } => {
                self.unblock(id, db, &keys);
                ShardResp::Done
            }
            ShardReq::AdoptPg(fd) => {
                super::pg::spawn_connection(&self, fd);
                ShardResp::Done
            }
            ShardReq::Scan {
                db,
                cursor_token,
                count,
                pattern,
                type_filter,
            } => {
                if self.append_failed.get() {
                    return ShardResp::Error(STORE_FAILED.into());
                }
                let (keys, next) =
                    admin::scan_local(&self, db, cursor_token, count, pattern, type_filter);
                // The keys shown may come from writes not yet durable: wait, as Exec does.
                match self.wait_durable(self.wal().last_lsn()).await {
                    Ok(()) => ShardResp::Scan(keys, next),
                    Err(error) => ShardResp::Error(error),
                }
            }
            ShardReq::Take { db, key } => match self.take_loaded(db, &key).await {
                Ok(taken) => match self.wait_durable(self.wal().last_lsn()).await {
                    Ok(()) => ShardResp::Taken(taken),
                    Err(error) => ShardResp::Error(error),
                },
                Err(error) => ShardResp::Error(error),
            },
            ShardReq::Put(entry) => match self.put(entry) {
                Ok(stored) => match self.wait_durable(self.wal().last_lsn()).await {
                    Ok(()) => ShardResp::Put(stored),
                    Err(error) => ShardResp::Error(error),
                },
                Err(error) => ShardResp::Error(error),
            },
            ShardReq::Lock { txid, db, keys } => {
                self.lock_keys(txid, db, keys).await;
                ShardResp::Done
            }
            ShardReq::Unlock { txid } => {
                self.unlock(txid);
                ShardResp::Done
            }
            ShardReq::Versions { db, keys } => ShardResp::Versions(self.versions(db, &keys)),
            ShardReq::Stats => ShardResp::Stats(Box::new(self.local_stats())),
            ShardReq::ClientList => ShardResp::ClientList(conn::client_list(&self)),
            ShardReq::SetDurability(durability) => {
                self.durability.set(durability);
                ShardResp::Done
            }
            ShardReq::SqlScan(req) => sql_reply(
                sqlcluster::scan(&self, *req)
                    .await
                    .map(|rows| ShardResp::SqlRows(Box::new(rows))),
            ),
            ShardReq::SqlWrite(req) => sql_reply(
                sqlcluster::write(&self, *req)
                    .await
                    .map(ShardResp::SqlWritten),
            ),
            ShardReq::SqlTruncate(table_id) => sql_reply(
                sqlcluster::truncate(&self, table_id)
                    .await
                    .map(|()| ShardResp::Done),
            ),
            ShardReq::SqlIngest(rows) => sql_reply(
                sqlcluster::ingest(&self, rows)
                    .await
                    .map(|()| ShardResp::Done),
            ),
            ShardReq::SqlDdl(req) => sql_reply(
                sqlcluster::apply_ddl(&self, *req)
                    .await
                    .map(ShardResp::SqlDdl),
            ),
            ShardReq::SqlCatalog(catalog) => {
                sqlcluster::install_catalog(&self, catalog);
                ShardResp::Done
            }
            ShardReq::SqlTxn(msg) => sql_reply(
                sqlcluster::txn(&self, *msg)
                    .await
                    .map(|reply| ShardResp::SqlTxn(Box::new(reply))),
            ),
            ShardReq::SqlSequence(sequence, op) => sql_reply(
                sqlcluster::sequence(&self, *sequence, op)
                    .await
                    .map(ShardResp::SqlSequence),
            ),
            ShardReq::PgCancel { pid, secret } => {
                super::pg::cancel_local(&self, pid, secret);
                ShardResp::Done
            }
        }
    }

    /// Runs one keyspace write and writes its storage changes as their own WAL record.
    fn logged_write<T>(
        &self,
        write: impl FnOnce(&mut Keyspace, &mut Vec<u8>) -> T,
    ) -> Result<T, String> {
        if self.writes_refused() {
            return Err(MISCONF_WAL.into());
        }
        let mut ks = self.ks.borrow_mut();
        let mut log = self.log.borrow_mut();
        log.clear();
        let result = write(&mut ks, &mut log);
        log.clear();
        let mut status = [Reply::Ok];
        self.write_pending(&mut ks, &mut status);
        ks.evict_to_budget();
        match status {
            [Reply::Ok] => Ok(result),
            _ => Err(MISCONF_WAL.into()),
        }
    }

    /// `take`, once the key's value is resident.
    pub async fn take_loaded(
        &self,
        db: u8,
        key: &Bytes,
    ) -> Result<Option<(Portable, Option<u64>)>, String> {
        self.load_key(db, key).await?;
        self.take(db, key)
    }

    /// Removes a key for a cross-shard rename, logging the removal.
    pub fn take(&self, db: u8, key: &Bytes) -> Result<Option<(Portable, Option<u64>)>, String> {
        self.logged_write(|ks, log| ks.take_value(db, key, unix_ms(), log))
    }

    /// Stores a value for a cross-shard rename, logging it; false when `only_if_absent` and
    /// the key exists.
    pub fn put(&self, entry: PutEntry) -> Result<bool, String> {
        let PutEntry {
            db,
            key,
            value,
            expire_at_ms,
            only_if_absent,
        } = entry;
        self.logged_write(|ks, log| {
            ks.put_value(db, key, value, expire_at_ms, only_if_absent, unix_ms(), log)
        })
    }
}

fn sql_reply(result: Result<ShardResp, helios_sql::SqlError>) -> ShardResp {
    result.unwrap_or_else(|error| ShardResp::SqlError(Box::new(error)))
}

/// Redis's reply to a command refused under `maxmemory` with the `noeviction` policy.
pub const OOM_ERROR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Whether a command may read the values of its keys (else only the key index: existence,
/// type, expiry). Commands not listed are assumed to read them.
fn reads_values(cmd: &Command) -> bool {
    const INDEX_ONLY: &[&[u8]] = &[
        b"DEL",
        b"UNLINK",
        b"EXISTS",
        b"TYPE",
        b"TTL",
        b"PTTL",
        b"EXPIRETIME",
        b"PEXPIRETIME",
        b"TOUCH",
        b"MSET",
        b"MSETNX",
        b"SETNX",
        b"SETEX",
        b"PSETEX",
    ];
    let name = cmd.name();
    if INDEX_ONLY.iter().any(|n| name.eq_ignore_ascii_case(n)) {
        return false;
    }
    // SET overwrites unless it must return the old value (GET).
    if name.eq_ignore_ascii_case(b"SET") {
        return cmd
            .args
            .iter()
            .skip(3)
            .any(|a| a.eq_ignore_ascii_case(b"GET"));
    }
    true
}

/// A value stored by a cross-shard RENAME/RENAMENX.
pub struct PutEntry {
    pub db: u8,
    pub key: Bytes,
    pub value: Portable,
    pub expire_at_ms: Option<u64>,
    /// RENAMENX: store only if the key does not exist.
    pub only_if_absent: bool,
}

use super::{admin, sqlcluster};

/// A shard's whole life.
pub async fn shard_main(
    start: ShardStart<ShardReq, ShardResp>,
    shared: Arc<Shared>,
    listener_fd: RawFd,
    pg_listener_fd: RawFd,
) {
    let id = start.senders.peer_id();
    let state = match open_shard(id, &shared, start.senders).await {
        Ok(state) => state,
        Err(message) => {
            tracing::error!(shard = id, "{message}");
            if let Ok(mut slot) = shared.start_error.lock() {
                slot.get_or_insert(message);
            }
            shared.failed.store(true, Ordering::SeqCst);
            shared.shutdown.store(true, Ordering::SeqCst);
            shared.drained.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    let handler_state = state.clone();
    let handler: Handler<ShardReq, ShardResp> =
        Rc::new(move |_from, req| Box::pin(handler_state.clone().handle(req)));
    state.mesh.serve(start.receivers, handler);
    glommio::spawn_local(state.ring.clone().drive()).detach();
    glommio::spawn_local(active_expiry(state.clone())).detach();
    glommio::spawn_local(background_sync(state.clone())).detach();
    glommio::spawn_local(prepare_wal_segments(state.clone())).detach();
    if id == sqlcluster::CATALOG_SHARD {
        // Every shard has the persisted catalog before the first client is accepted.
        let catalog = state.catalog.borrow().clone();
        if let Err(error) = sqlcluster::publish_catalog(&state, catalog).await {
            tracing::error!(%error, "publishing the SQL catalog failed");
        }
        // Multi-shard commits interrupted by a crash are finished before any client is served.
        let cluster = sqlcluster::ShardCluster::new(state.clone());
        match helios_sql::txn::recover(&cluster).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                transactions = n,
                "finished multi-shard commits interrupted by a crash"
            ),
            Err(error) => {
                tracing::error!(%error, "recovering SQL transactions failed; not serving");
                shared.failed.store(true, Ordering::SeqCst);
                shared.shutdown.store(true, Ordering::SeqCst);
            }
        }

        state.ring.listen(listener_fd);
        glommio::spawn_local(accept_loop(state.clone())).detach();
        match SocketRing::new() {
            Ok(pg_ring) => {
                pg_ring.listen(pg_listener_fd);
                glommio::spawn_local(pg_ring.clone().drive()).detach();
                *state.pg_ring.borrow_mut() = Some(pg_ring.clone());
                glommio::spawn_local(pg_accept_loop(state.clone(), pg_ring)).detach();
            }
            Err(error) => {
                tracing::error!(%error, "cannot create the PostgreSQL accept ring; PostgreSQL clients are not served");
            }
        }
    }
    tracing::info!(
        shard = id,
        keys = state.ks.borrow().key_count_total(),
        lsn = state.wal().last_lsn(),
        "shard ready"
    );
    wait_for_shutdown(&state).await;
}

async fn open_shard(
    id: usize,
    shared: &Arc<Shared>,
    senders: helios_shard::mesh::MeshSenders<ShardReq, ShardResp>,
) -> Result<Rc<ShardState>, String> {
    let ring = SocketRing::new().map_err(|error| {
        format!("cannot create the shard's io_uring socket ring ({error}); helios needs Linux 6.1+ with io_uring enabled (sysctl kernel.io_uring_disabled=0)")
    })?;
    let shard_dir = shared.config.data_dir.join(format!("shard-{id}"));
    let per_shard = shared.config.cache_bytes / shared.map.shard_count().max(1) as u64;
    let (lsm, ks, oracles) =
        store::open_store(&shard_dir, StoreBudget::from_cache_bytes(per_shard))
            .await
            .map_err(|error| format!("shard {id}: {error}"))?;
    shared.used_bytes[id].store(ks.used_bytes(), Ordering::Relaxed);
    let (catalog, sql_live) = if id == sqlcluster::CATALOG_SHARD {
        let catalog = helios_sql::load_catalog(&lsm)
            .await
            .map_err(|error| format!("shard {id}: reading the SQL catalog: {error}"))?
            .unwrap_or_default();
        let live = catalog.live_ids().clone();
        (catalog, live)
    } else {
        // Replaced by shard 0's before any client is served; until then no key is dead.
        (
            helios_sql::Catalog::default(),
            helios_sql::LiveIds::default(),
        )
    };
    let state = Rc::new(ShardState {
        id,
        shared: shared.clone(),
        ks: RefCell::new(ks),
        lsm,
        mesh: Mesh::new(senders),
        ring,
        durability: Cell::new(shared.config.durability),
        log: RefCell::new(Vec::new()),
        commands_processed: Cell::new(0),
        expired_keys: Cell::new(0),
        connections_received: Cell::new(0),
        clients: RefCell::new(Default::default()),
        locks: RefCell::new(Default::default()),
        lock_waiters: RefCell::new(Vec::new()),
        append_failed: Cell::new(false),
        pg_ring: RefCell::new(None),
        catalog: RefCell::new(Arc::new(catalog)),
        sql_live: RefCell::new(sql_live),
        sql_writes: glommio::sync::Semaphore::new(1),
        sql_txns: Default::default(),
        ddl_lock: glommio::sync::Semaphore::new(1),
        pg_backends: RefCell::new(Default::default()),
        sequences: Default::default(),
        blocked: RefCell::new(Default::default()),
        pubsub: RefCell::new(Default::default()),
    });
    // The keyspace is rebuilt: from now on compaction turns elements no live collection owns
    // into tombstones. (Borrowed by a command at that instant: keep the element this time.)
    let weak = Rc::downgrade(&state);
    *oracles.dead_sql_keys.borrow_mut() = Some(Box::new(move |key| {
        weak.upgrade().is_some_and(|state| {
            state
                .sql_live
                .try_borrow()
                .is_ok_and(|live| live.is_dead_key(key))
        })
    }));
    let weak = Rc::downgrade(&state);
    *oracles.dead_sql_ranges.borrow_mut() = Some(Box::new(move |lo, hi| {
        weak.upgrade().is_some_and(|state| {
            state
                .sql_live
                .try_borrow()
                .is_ok_and(|live| live.is_dead_range(lo, hi))
        })
    }));
    let weak = Rc::downgrade(&state);
    *oracles.orphans.borrow_mut() = Some(Box::new(move |field| {
        weak.upgrade().is_some_and(|state| {
            state
                .ks
                .try_borrow()
                .is_ok_and(|ks| ks.is_orphan(field.db, field.key, field.version, field.field))
        })
    }));
    let weak = Rc::downgrade(&state);
    *oracles.orphan_ranges.borrow_mut() = Some(Box::new(move |lo, hi_field| {
        weak.upgrade().is_some_and(|state| {
            state
                .ks
                .try_borrow()
                .is_ok_and(|ks| ks.is_orphan_range(lo.db, lo.key, lo.version, lo.field, hi_field))
        })
    }));
    Ok(state)
}

/// Shard 0 accepts every connection and hands it to the shard with the fewest connections:
/// SO_REUSEPORT spreads connections by a hash of the 4-tuple, which Seastar found skewed.
async fn accept_loop(state: Rc<ShardState>) {
    let ring = state.ring.clone();
    hand_out_connections(state, ring, Protocol::Redis).await;
}

/// Shard 0 accepts PostgreSQL connections on a ring of their own (the shard's socket ring
/// serves one listener) and hands each to the least-loaded shard, as for Redis.
async fn pg_accept_loop(state: Rc<ShardState>, pg_ring: Rc<SocketRing>) {
    hand_out_connections(state, pg_ring, Protocol::Postgres).await;
}

/// Which front end serves an accepted socket.
#[derive(Clone, Copy)]
enum Protocol {
    Redis,
    Postgres,
}

impl Protocol {
    fn serve_here(self, state: &Rc<ShardState>, fd: RawFd) {
        match self {
            Protocol::Redis => conn::spawn_connection(state, fd),
            Protocol::Postgres => super::pg::spawn_connection(state, fd),
        }
    }

    fn adopt(self, fd: RawFd) -> ShardReq {
        match self {
            Protocol::Redis => ShardReq::Adopt(fd),
            Protocol::Postgres => ShardReq::AdoptPg(fd),
        }
    }
}

/// Accepts sockets from `ring` and gives each to the shard with the fewest connections.
async fn hand_out_connections(state: Rc<ShardState>, ring: Rc<SocketRing>, protocol: Protocol) {
    while let Some(fd) = ring.accept().await {
        if state.shared.shutdown.load(Ordering::Relaxed) {
            // SAFETY: a socket accepted while shutting down; ours to close.
            unsafe { libc::close(fd) };
            continue;
        }
        let target = least_loaded_shard(&state.shared);
        state.shared.connections_per_shard[target].fetch_add(1, Ordering::Relaxed);
        if target == state.id {
            protocol.serve_here(&state, fd);
            continue;
        }
        let mesh = state.mesh.clone();
        let shared = state.shared.clone();
        glommio::spawn_local(async move {
            if mesh.call(target, protocol.adopt(fd)).await.is_err() {
                // SAFETY: the target is gone (shutdown); the socket is still ours to close.
                unsafe { libc::close(fd) };
                shared.connections_per_shard[target].fetch_sub(1, Ordering::Relaxed);
            }
        })
        .detach();
    }
}

fn least_loaded_shard(shared: &Shared) -> usize {
    let loads = shared
        .connections_per_shard
        .iter()
        .map(|c| c.load(Ordering::Relaxed));
    loads
        .enumerate()
        .min_by_key(|&(shard, load)| (load, shard))
        .map(|(shard, _)| shard)
        .unwrap_or(0)
}

async fn active_expiry(state: Rc<ShardState>) {
    while !state.shared.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(ACTIVE_EXPIRE_INTERVAL).await;
        let expired = state
            .ks
            .borrow_mut()
            .active_expire(unix_ms(), ACTIVE_EXPIRE_KEYS_MAX);
        state
            .expired_keys
            .set(state.expired_keys.get() + expired as u64);
    }
}

/// In async durability the WAL is written and fsynced on a timer; in sync mode writers drive
/// the group commit themselves and this only catches records nobody waits for.
async fn background_sync(state: Rc<ShardState>) {
    while !state.shared.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(ASYNC_SYNC_INTERVAL).await;
        if state.wal().durable_lsn() < state.wal().last_lsn() {
            if let Err(error) = state.wal().sync_all().await {
                tracing::error!(shard = state.id, %error, "WAL sync failed");
            }
        }
    }
}

/// Keeps a zero-filled next WAL segment ready, off the commit path (see
/// `Wal::prepare_next_segment`). Its own task: zero-filling takes a while and must not delay the
/// async-durability fsync timer.
///
/// After a failure it waits longer before each retry ([`prepare_retry_delay`]) and logs only
/// the first failure and every power of two after it. A failed attempt (a full disk, most
/// often) writes zeros until the disk refuses them: retried every 50 ms, it took the last free
/// bytes from the log and table writes again and again, and wrote a warning each time.
async fn prepare_wal_segments(state: Rc<ShardState>) {
    let mut failures: u32 = 0;
    while !state.shared.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(prepare_retry_delay(failures)).await;
        match state.wal().prepare_next_segment().await {
            Ok(()) if failures > 0 => {
                tracing::info!(
                    shard = state.id,
                    failures,
                    "the next WAL segment is prepared again"
                );
                failures = 0;
            }
            Ok(()) => {}
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    tracing::warn!(shard = state.id, %error, failures, "could not prepare the next WAL segment");
                }
            }
        }
    }
}

/// The longest wait between attempts to prepare a WAL segment after failures.
const PREPARE_RETRY_DELAY_MAX: Duration = Duration::from_secs(10);

/// How long the segment preparer waits before its next attempt, after `failures` failed ones
/// in a row: the usual interval, doubled per failure up to [`PREPARE_RETRY_DELAY_MAX`].
fn prepare_retry_delay(failures: u32) -> Duration {
    ASYNC_SYNC_INTERVAL
        .saturating_mul(1 << failures.min(16))
        .min(PREPARE_RETRY_DELAY_MAX)
}

/// Waits for SIGINT/SIGTERM, stops accepting, lets connections finish their in-flight batch,
/// waits until every shard has drained (peers may still be calling us), then syncs the WAL.
async fn wait_for_shutdown(state: &Rc<ShardState>) {
    while !state.shared.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
    state.ring.shutdown();
    if let Some(pg_ring) = state.pg_ring.borrow_mut().take() {
        pg_ring.shutdown();
    }
    while !state.clients.borrow().is_empty() {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
    state.shared.drained.fetch_add(1, Ordering::SeqCst);
    while state.shared.drained.load(Ordering::SeqCst) < state.shared.map.shard_count() {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
    }
    if let Err(error) = state.lsm.close().await {
        tracing::error!(shard = state.id, %error, "closing the store failed");
    }
    tracing::info!(
        shard = state.id,
        lsn = state.wal().durable_lsn(),
        "shard stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_preparation_backs_off_after_failures_up_to_a_bound() {
        assert_eq!(prepare_retry_delay(0), ASYNC_SYNC_INTERVAL);
        assert_eq!(prepare_retry_delay(1), ASYNC_SYNC_INTERVAL * 2);
        assert_eq!(prepare_retry_delay(3), ASYNC_SYNC_INTERVAL * 8);
        let delays: Vec<Duration> = (0..100).map(prepare_retry_delay).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays[99], PREPARE_RETRY_DELAY_MAX);
        assert_eq!(prepare_retry_delay(u32::MAX), PREPARE_RETRY_DELAY_MAX);
    }
}
