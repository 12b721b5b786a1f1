//! An in-process cluster for tests: N real LSM trees on the fault-injecting in-memory file
//! system, driven by the deterministic runtime. The shard side runs exactly the functions the
//! server runs ([`scan_local`], [`write_local`], ...); only the mesh is replaced by calls.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use helios_engine::cache::BlockCache;
use helios_engine::localrt::LocalRuntime;
use helios_engine::lsm::{Lsm, LsmOptions};
use helios_engine::memfs::MemFs;

use crate::catalog::{Catalog, DdlOutcome, DdlRequest, LiveIds};
use crate::cluster::*;
use crate::error::SqlError;
use crate::txn::{txn_local, CommitGate, ConnTxn, ShardTxns, TxnId, TxnMsg, TxnReply, WaitGraph};

type Tree = Lsm<MemFs, LocalRuntime>;

pub(crate) struct LocalCluster {
    rt: LocalRuntime,
    shards: Vec<Rc<Tree>>,
    catalog: RefCell<Arc<Catalog>>,
    sequences: SequenceStates,
    txns: Vec<ShardTxns>,
    graph: WaitGraph,
    gate: Arc<CommitGate>,
    conn: RefCell<ConnTxn>,
    next_id: std::cell::Cell<u64>,
    clock: crate::txn::HybridClock,
    /// What the trees' compaction filter judges by, as a server shard's `sql_live`.
    live: Rc<RefCell<LiveIds>>,
    /// Every scan fragment's durability wait, with the log's end then: (shard, wait, end).
    pub(crate) scan_waits: RefCell<Vec<(usize, u64, u64)>>,
    /// Every scan fragment's index (None: it read no index).
    pub(crate) scan_indexes: RefCell<Vec<Option<u32>>>,
}

/// The server's tree options, but with small WAL segments, preallocation and memtables:
/// tests open hundreds of clusters (each proptest case one), and a new segment is
/// zero-filled ahead when the WAL opens (64 MiB by default, in memory here). Small
/// memtables also make bigger tests read flushed tables.
fn test_options(live: &Rc<RefCell<LiveIds>>) -> LsmOptions {
    let defaults = LsmOptions::default();
    let live_keys = live.clone();
    let live_ranges = live.clone();
    LsmOptions {
        expiry_filter: Some(Rc::new(move |key: &[u8], _: &[u8]| {
            live_keys.borrow().is_dead_key(key)
        })),
        dead_range: Some(Rc::new(move |lo: &[u8], hi: &[u8]| {
            live_ranges.borrow().is_dead_range(lo, hi)
        })),
        memtable_bytes: 4 << 20,
        // Small, so that a bulk scan of a test's table has chunks for the helper and the
        // shard both.
        bulk_chunk_bytes: 16 << 10,
        wal: helios_engine::wal::WalOptions {
            segment_bytes_max: 4 << 20,
            preallocate_bytes: defaults.wal.preallocate_bytes.min(256 << 10),
            ..defaults.wal
        },
        ..defaults
    }
}

impl LocalCluster {
    /// Keys starting with `prefix` that compaction keeps (not of a dropped table or index),
    /// over every shard (for tests of what DDL leaves).
    pub(crate) async fn count_keys(&self, prefix: &[u8]) -> usize {
        let mut count = 0;
        for tree in &self.shards {
            let mut iter = tree.iter(helios_engine::lsm::ReadOptions {
                snapshot: None,
                upper_bound: helios_engine::lsm::prefix_upper_bound(prefix),
            });
            iter.seek(prefix).await.expect("seek");
            while iter.valid() {
                if !self.live.borrow().is_dead_key(iter.key()) {
                    count += 1;
                }
                iter.next().await.expect("next");
            }
        }
        count
    }

    /// A counter summed over the shard trees, once their flushes and compactions are done
    /// (and a deletion of dead tables has had its chance: a flushed write wakes the
    /// compaction loop).
    pub(crate) async fn settled_sum(
        &self,
        counter: impl Fn(&helios_engine::lsm::LsmStats) -> u64,
    ) -> u64 {
        let mut sum = 0;
        for tree in &self.shards {
            tree.put(b"\x00settle", b"").await.expect("put");
            tree.flush().await.expect("flush");
            tree.wait_idle().await.expect("idle");
            sum += counter(&tree.stats());
        }
        sum
    }

    pub(crate) async fn open(rt: LocalRuntime, fs: MemFs, shard_count: usize) -> LocalCluster {
        let live = Rc::new(RefCell::new(LiveIds::default()));
        let mut shards = Vec::with_capacity(shard_count);
        for s in 0..shard_count {
            let cache = Rc::new(BlockCache::new(1 << 20));
            let tree = Lsm::open(
                fs.clone(),
                rt.clone(),
                PathBuf::from(format!("/shard-{s}")),
                test_options(&live),
                cache,
            )
            .await
            .expect("open shard tree");
            shards.push(tree);
        }
        let catalog = load_catalog(&shards[0])
            .await
            .expect("catalog decodes")
            .unwrap_or_default();
        *live.borrow_mut() = catalog.live_ids().clone();
        let txns = (0..shard_count).map(|_| ShardTxns::default()).collect();
        let cluster = LocalCluster {
            rt,
            shards,
            catalog: RefCell::new(Arc::new(catalog)),
            sequences: SequenceStates::default(),
            txns,
            graph: WaitGraph::default(),
            gate: Arc::default(),
            conn: RefCell::default(),
            next_id: std::cell::Cell::new(0),
            clock: Default::default(),
            live,
            scan_waits: RefCell::default(),
            scan_indexes: RefCell::default(),
        };
        crate::txn::recover(&cluster)
            .await
            .expect("recovering commit records");
        cluster
    }

    /// Syncs a shard's WAL to `lsn` (the tests' durability: every write is synced).
    async fn sync(&self, shard: usize, lsn: u64) -> Result<(), SqlError> {
        self.shards[shard]
            .wal()
            .sync_to(lsn)
            .await
            .map_err(crate::cluster::storage_error)
    }

    /// A key's value in one shard's tree (tests that look under the SQL layer).
    pub(crate) async fn raw_get(&self, shard: usize, key: &[u8]) -> Option<bytes::Bytes> {
        self.shards[shard].get(key, None).await.expect("read")
    }

    /// Writes a key straight into one shard's tree, synced (tests that stage a crash).
    pub(crate) async fn raw_put(&self, shard: usize, key: bytes::Bytes, value: &'static [u8]) {
        let mut batch = helios_engine::lsm::WriteBatch::new();
        batch.put(key, bytes::Bytes::from_static(value));
        let lsn = self.shards[shard].write_owned(batch).expect("write");
        self.sync(shard, lsn).await.expect("sync");
    }

    pub(crate) async fn close(&self) {
        for s in &self.shards {
            s.close().await.expect("close");
        }
    }
}

impl Cluster for LocalCluster {
    fn catalog(&self) -> Arc<Catalog> {
        crate::txn::catalog_view(&self.catalog.borrow(), self.conn_txn())
    }

    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard_of_token(&self, token: u64) -> usize {
        (token % self.shards.len() as u64) as usize
    }

    /// As the engine's test runtime offloads ([`helios_engine::localrt::busy_helper`]).
    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> {
        helios_engine::localrt::busy_helper(work)
    }

    async fn apply_ddl(&self, mut req: DdlRequest) -> Result<DdlOutcome, SqlError> {
        // The whole catalog, not this connection's view of it.
        let mut next = (**self.catalog.borrow()).clone();
        crate::cluster::settle_markers(&self.shards[0], &next, &mut req).await?;
        let outcome = next.apply_owned(req.change, req.owner)?;
        let lsn = store_catalog(&self.shards[0], &next, &outcome.markers).await?;
        self.sync(0, lsn).await?;
        *self.live.borrow_mut() = next.live_ids().clone();
        *self.catalog.borrow_mut() = Arc::new(next);
        for tree in &self.shards {
            tree.garbage_changed();
        }
        Ok(outcome)
    }

    async fn scan(&self, shard: usize, mut req: ScanRequest) -> Result<ScanRows, SqlError> {
        req.pin_on_arrival(&self.shards[shard], &self.txns[shard]);
        self.scan_indexes
            .borrow_mut()
            .push(req.index.as_ref().map(|range| range.index_id));
        let rows = scan_fragment(
            &self.shards[shard],
            &self.rt,
            &self.txns[shard],
            &self.graph,
            shard,
            &req,
        )
        .await?;
        let wait = scan_durable_lsn(&self.shards[shard], &req);
        let end = self.shards[shard].wal().last_lsn();
        self.scan_waits.borrow_mut().push((shard, wait, end));
        self.sync(shard, wait).await?;
        Ok(rows)
    }

    async fn write(&self, shard: usize, req: WriteRequest) -> Result<WriteOutcome, SqlError> {
        let outcome = write_fragment(
            &self.shards[shard],
            &self.rt,
            &self.txns[shard],
            &self.graph,
            shard,
            &self.catalog,
            &req,
        )
        .await?;
        self.sync(shard, outcome.lsn).await?;
        Ok(outcome)
    }

    async fn sequence(
        &self,
        sequence: crate::catalog::SequenceDef,
        op: SequenceOp,
    ) -> Result<Vec<i64>, SqlError> {
        let (values, lsn) = sequence_local(&self.shards[0], &self.sequences, &sequence, op).await?;
        if lsn > 0 {
            self.sync(0, lsn).await?;
        }
        Ok(values)
    }

    async fn ingest(
        &self,
        shard: usize,
        rows: helios_engine::lsm::PackedEntries,
    ) -> Result<(), SqlError> {
        ingest_local(&self.shards[shard], rows).await
    }

    async fn truncate(&self, shard: usize, table_id: u32) -> Result<(), SqlError> {
        let lsn = delete_table_local(&self.shards[shard], &self.rt, table_id).await?;
        self.sync(shard, lsn).await?;
        Ok(())
    }

    async fn txn_call(&self, shard: usize, msg: TxnMsg) -> Result<TxnReply, SqlError> {
        let (reply, durability) =
            txn_local(&self.shards[shard], &self.rt, &self.txns[shard], msg).await?;
        if durability.lsn > 0 {
            self.sync(shard, durability.lsn).await?;
        }
        Ok(reply)
    }

    fn conn_txn(&self) -> &RefCell<ConnTxn> {
        &self.conn
    }

    fn new_txn_id(&self) -> TxnId {
        self.next_id.set(self.next_id.get() + 1);
        self.next_id.get()
    }

    fn commit_timestamp(&self) -> u64 {
        use helios_engine::rt::Runtime;
        self.clock.now(self.rt.now_ms())
    }

    fn home_shard(&self) -> usize {
        0
    }

    fn commit_gate(&self) -> &Arc<CommitGate> {
        &self.gate
    }

    async fn pause(&self) {
        use helios_engine::rt::Runtime;
        self.rt.sleep(std::time::Duration::from_micros(50)).await;
    }

    async fn release_snapshot(&self, id: u64) {
        crate::txn::release_all(self, id)
            .await
            .expect("releasing a snapshot");
    }

    async fn after_commit(&self, cleanup: crate::txn::Cleanup) {
        crate::txn::clean_up(self, cleanup)
            .await
            .expect("cleaning up a commit");
    }
}
