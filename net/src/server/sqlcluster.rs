//! The SQL layer's view of the shards: [`ShardCluster`] implements `helios_sql::Cluster` over
//! the shard mesh. A fragment for the coordinator's own shard runs inline; one for another
//! shard travels as a [`ShardReq`] and runs there over that shard's LSM tree.
//!
//! The catalog: shard 0 owns it. A DDL statement is sent to shard 0, which applies it to the
//! current catalog under its DDL lock, writes the new version to its tree and syncs it, then
//! installs it on every shard before answering; so once a client sees DDL complete, every
//! shard plans with the new catalog. Each shard keeps its own `Arc<Catalog>` and a statement
//! takes it once, so a concurrent DDL never changes the catalog under a running statement.

use std::rc::Rc;
use std::sync::Arc;

use helios_shard::glommio_rt::GlommioRuntime;
use helios_sql::txn::{CommitGate, ConnTxn, TxnId, TxnMsg, TxnReply};
use helios_sql::PackedEntries;
use helios_sql::{
    Catalog, Cluster, DdlOutcome, DdlRequest, ScanRequest, ScanRows, SequenceDef, SequenceOp,
    SqlError, WriteOutcome, WriteRequest,
};

use super::shard::{ShardReq, ShardResp, ShardState};

/// The shard that owns the catalog.
pub const CATALOG_SHARD: usize = 0;
/// SQLSTATE of a storage failure (`io_error`).
const IO_ERROR: &str = "58030";

/// The cluster as seen from one coordinator shard (one per connection: it holds the
/// connection's transaction).
pub struct ShardCluster {
    pub state: Rc<ShardState>,
    conn: std::cell::RefCell<ConnTxn>,
}

impl ShardCluster {
    pub fn new(state: Rc<ShardState>) -> ShardCluster {
        ShardCluster {
            state,
            conn: Default::default(),
        }
    }
}

impl Cluster for ShardCluster {
    fn catalog(&self) -> Arc<Catalog> {
        helios_sql::txn::catalog_view(&self.state.catalog.borrow(), &self.conn)
    }

    fn shard_count(&self) -> usize {
        self.state.shared.map.shard_count()
    }

    fn shard_of_token(&self, token: u64) -> usize {
        self.state.shared.map.shard_of_token(token)
    }

    /// On the shard's helper thread ([`GlommioRuntime::offload`]).
    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> {
        helios_engine::rt::Runtime::offload(&GlommioRuntime, work)
    }

    fn token_share_below(&self, shard: usize, token: u64) -> f64 {
        self.state.shared.map.token_share_below(shard, token)
    }

    async fn apply_ddl(&self, req: DdlRequest) -> Result<DdlOutcome, SqlError> {
        if self.state.id == CATALOG_SHARD {
            return apply_ddl(&self.state, req).await;
        }
        match self
            .call(CATALOG_SHARD, ShardReq::SqlDdl(Box::new(req)))
            .await?
        {
            ShardResp::SqlDdl(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn scan(&self, shard: usize, req: ScanRequest) -> Result<ScanRows, SqlError> {
        if shard == self.state.id {
            return scan(&self.state, req).await;
        }
        match self.call(shard, ShardReq::SqlScan(Box::new(req))).await? {
            ShardResp::SqlRows(rows) => Ok(*rows),
            other => Err(unexpected(other)),
        }
    }

    async fn write(&self, shard: usize, req: WriteRequest) -> Result<WriteOutcome, SqlError> {
        if shard == self.state.id {
            return write(&self.state, req).await;
        }
        match self.call(shard, ShardReq::SqlWrite(Box::new(req))).await? {
            ShardResp::SqlWritten(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    async fn sequence(&self, seq: SequenceDef, op: SequenceOp) -> Result<Vec<i64>, SqlError> {
        if self.state.id == CATALOG_SHARD {
            return sequence(&self.state, seq, op).await;
        }
        match self
            .call(CATALOG_SHARD, ShardReq::SqlSequence(Box::new(seq), op))
            .await?
        {
            ShardResp::SqlSequence(values) => Ok(values),
            other => Err(unexpected(other)),
        }
    }

    async fn truncate(&self, shard: usize, table_id: u32) -> Result<(), SqlError> {
        if shard == self.state.id {
            return truncate(&self.state, table_id).await;
        }
        match self.call(shard, ShardReq::SqlTruncate(table_id)).await? {
            ShardResp::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn ingest(&self, shard: usize, rows: PackedEntries) -> Result<(), SqlError> {
        if shard == self.state.id {
            return ingest(&self.state, rows).await;
        }
        match self.call(shard, ShardReq::SqlIngest(rows)).await? {
            ShardResp::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn txn_call(&self, shard: usize, msg: TxnMsg) -> Result<TxnReply, SqlError> {
        if shard == self.state.id {
            return txn(&self.state, msg).await;
        }
        match self.call(shard, ShardReq::SqlTxn(Box::new(msg))).await? {
            ShardResp::SqlTxn(reply) => Ok(*reply),
            other => Err(unexpected(other)),
        }
    }

    fn conn_txn(&self) -> &std::cell::RefCell<ConnTxn> {
        &self.conn
    }

    fn new_txn_id(&self) -> TxnId {
        self.state
            .shared
            .next_sql_txn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn commit_timestamp(&self) -> u64 {
        self.state
            .shared
            .sql_clock
            .now(helios_shard::glommio_rt::unix_ms())
    }

    fn home_shard(&self) -> usize {
        self.state.id
    }

    fn commit_gate(&self) -> &Arc<CommitGate> {
        &self.state.shared.sql_commit_gate
    }

    async fn pause(&self) {
        glommio::timer::sleep(std::time::Duration::from_micros(50)).await;
    }

    async fn release_snapshot(&self, id: u64) {
        self.in_background(
            "releasing a statement snapshot",
            move |cluster| async move { helios_sql::txn::release_all(&cluster, id).await },
        );
    }

    async fn after_commit(&self, cleanup: helios_sql::txn::Cleanup) {
        // On failure the record stays; the next start-up finishes the cleanup.
        self.in_background(
            "cleaning up after a multi-shard commit",
            move |cluster| async move { helios_sql::txn::clean_up(&cluster, cleanup).await },
        );
    }
}

impl ShardCluster {
    /// Runs transaction housekeeping off the client's path, on a cluster handle of its own.
    fn in_background<F, Fut>(&self, what: &'static str, work: F)
    where
        F: FnOnce(ShardCluster) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), SqlError>> + 'static,
    {
        let cluster = ShardCluster::new(self.state.clone());
        glommio::spawn_local(async move {
            if let Err(error) = work(cluster).await {
                tracing::warn!(%error, "{what} failed");
            }
        })
        .detach();
    }
}

impl ShardCluster {
    async fn call(&self, shard: usize, req: ShardReq) -> Result<ShardResp, SqlError> {
        match self.state.mesh.call(shard, req).await {
            Ok(ShardResp::SqlError(error)) => Err(*error),
            Ok(ShardResp::Error(message)) => Err(SqlError::new(IO_ERROR, message)),
            Ok(resp) => Ok(resp),
            Err(gone) => Err(SqlError::new("57P01", gone.to_string())),
        }
    }
}

fn unexpected(resp: ShardResp) -> SqlError {
    let what = match resp {
        ShardResp::Error(message) => message,
        _ => "unexpected reply from a shard".to_string(),
    };
    SqlError::new("XX000", what)
}

/// Runs a scan fragment on this shard. Its rows may include writes not yet durable, so, as a
/// Redis read does, the reply waits until everything it could have observed is
/// ([`helios_sql::scan_durable_lsn`]).
pub async fn scan(state: &Rc<ShardState>, mut req: ScanRequest) -> Result<ScanRows, SqlError> {
    req.pin_on_arrival(&state.lsm, &state.sql_txns);
    let rows = helios_sql::scan_fragment(
        &state.lsm,
        &GlommioRuntime,
        &state.sql_txns,
        &state.shared.sql_wait_graph,
        state.id,
        &req,
    )
    .await?;
    durable(state, helios_sql::scan_durable_lsn(&state.lsm, &req)).await?;
    Ok(rows)
}

/// Runs a write fragment on this shard (its rows locked first, so existence checks and the
/// batch never interleave with another writer's: see `helios_sql::write_fragment`),
/// acknowledged once durable.
pub async fn write(state: &Rc<ShardState>, req: WriteRequest) -> Result<WriteOutcome, SqlError> {
    if state.wal().is_failed() || state.append_failed.get() {
        return Err(SqlError::new(
            IO_ERROR,
            "writes are refused: the shard's WAL failed (see the server log)",
        ));
    }
    state.wal_backpressure().await;
    let outcome = helios_sql::write_fragment(
        &state.lsm,
        &GlommioRuntime,
        &state.sql_txns,
        &state.shared.sql_wait_graph,
        state.id,
        &state.catalog,
        &req,
    )
    .await?;
    if outcome.lsn > 0 {
        durable(state, outcome.lsn).await?;
    }
    Ok(outcome)
}

/// Runs a transaction message on this shard; answered once what it wrote is durable (synced,
/// whatever the durability mode, where the message asks).
pub async fn txn(state: &Rc<ShardState>, msg: TxnMsg) -> Result<TxnReply, SqlError> {
    let (reply, durability) =
        helios_sql::txn::txn_local(&state.lsm, &GlommioRuntime, &state.sql_txns, msg).await?;
    if durability.force_sync {
        state
            .wal()
            .sync_to(durability.lsn)
            .await
            .map_err(|e| SqlError::new(IO_ERROR, format!("storage error: {e}")))?;
    } else if durability.lsn > 0 {
        durable(state, durability.lsn).await?;
    }
    Ok(reply)
}

/// Shard 0: a sequence operation, answered once its record (if it wrote one) is durable.
pub async fn sequence(
    state: &Rc<ShardState>,
    seq: SequenceDef,
    op: SequenceOp,
) -> Result<Vec<i64>, SqlError> {
    assert_eq!(state.id, CATALOG_SHARD, "sequences live on shard 0");
    let (values, lsn) = helios_sql::sequence_local(&state.lsm, &state.sequences, &seq, op).await?;
    // Always synced, whatever the durability mode: a record lost in a crash would hand out
    // values again that rows on other shards may already hold.
    if lsn > 0 {
        state
            .wal()
            .sync_to(lsn)
            .await
            .map_err(|e| SqlError::new(IO_ERROR, format!("storage error: {e}")))?;
    }
    Ok(values)
}

/// Writes rows straight into this shard's tables ([`Cluster::ingest`]); durable on return.
pub async fn ingest(state: &Rc<ShardState>, rows: PackedEntries) -> Result<(), SqlError> {
    if state.wal().is_failed() || state.append_failed.get() {
        return Err(SqlError::new(
            IO_ERROR,
            "writes are refused: the shard's WAL failed (see the server log)",
        ));
    }
    helios_sql::ingest_local(&state.lsm, rows).await
}

pub async fn truncate(state: &Rc<ShardState>, table_id: u32) -> Result<(), SqlError> {
    let lsn = {
        let _permit = state
            .sql_writes
            .acquire_permit(1)
            .await
            .map_err(|e| SqlError::new(IO_ERROR, e.to_string()))?;
        helios_sql::delete_table_local(&state.lsm, &GlommioRuntime, table_id).await?
    };
    durable(state, lsn).await
}

async fn durable(state: &Rc<ShardState>, lsn: u64) -> Result<(), SqlError> {
    state
        .wait_durable(lsn)
        .await
        .map_err(|e| SqlError::new(IO_ERROR, format!("storage error: {e}")))
}

/// Shard 0: applies a catalog change, persists it (always synced, whatever the durability
/// mode: DDL is rare and a lost table definition would orphan its rows), and installs it on
/// every shard.
pub async fn apply_ddl(
    state: &Rc<ShardState>,
    mut req: DdlRequest,
) -> Result<DdlOutcome, SqlError> {
    assert_eq!(state.id, CATALOG_SHARD, "only shard 0 changes the catalog");
    let _permit = state
        .ddl_lock
        .acquire_permit(1)
        .await
        .map_err(|e| SqlError::new(IO_ERROR, e.to_string()))?;
    let mut next = (**state.catalog.borrow()).clone();
    helios_sql::settle_markers(&state.lsm, &next, &mut req).await?;
    let outcome = next.apply_owned(req.change, req.owner)?;
    let lsn = helios_sql::store_catalog(&state.lsm, &next, &outcome.markers).await?;
    state
        .wal()
        .sync_to(lsn)
        .await
        .map_err(|e| SqlError::new(IO_ERROR, format!("storage error: {e}")))?;
    // The keys of dropped tables and indexes stay until compaction drops them (their ids
    // are not reused: see `helios_sql::LiveIds`).
    publish_catalog(state, Arc::new(next)).await?;
    Ok(outcome)
}

/// Installs `catalog` here and on every other shard; returns once all have it.
pub async fn publish_catalog(
    state: &Rc<ShardState>,
    catalog: Arc<Catalog>,
) -> Result<(), SqlError> {
    install_catalog(state, catalog.clone());
    let calls = (0..state.shared.map.shard_count())
        .filter(|&shard| shard != state.id)
        .map(|shard| {
            let mesh = state.mesh.clone();
            let catalog = catalog.clone();
            async move { mesh.call(shard, ShardReq::SqlCatalog(catalog)).await }
        });
    for reply in futures_util::future::join_all(calls).await {
        if let Err(gone) = reply {
            return Err(SqlError::new("57P01", gone.to_string()));
        }
    }
    Ok(())
}

/// Replaces this shard's catalog unless it already has a newer one (installs from concurrent
/// DDL statements can arrive out of order).
pub fn install_catalog(state: &ShardState, catalog: Arc<Catalog>) {
    let mut current = state.catalog.borrow_mut();
    if catalog.version >= current.version {
        // Judged by a catalog shard 0 has made durable (`apply_ddl` syncs before it
        // publishes): a crash cannot bring back a table whose keys compaction dropped.
        *state.sql_live.borrow_mut() = catalog.live_ids().clone();
        *current = catalog;
        // The catalog may have dropped a table: its files can go now.
        state.lsm.garbage_changed();
    }
}
