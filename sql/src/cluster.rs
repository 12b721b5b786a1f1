//! The boundary between SQL and the shards: what a coordinator asks of the cluster
//! ([`Cluster`]), the fragments it sends ([`ScanRequest`], [`WriteRequest`]), and how a shard
//! runs them over its own LSM tree ([`scan_local`], [`write_local`], [`delete_table_local`]).
//!
//! Fragments are plain `Send` values: within one process they travel between shard threads
//! over the mesh without serialization.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use helios_engine::fs::FileSystem;
use helios_engine::lsm::{Lsm, PackedEntries, WriteBatch};
use helios_engine::rt::Runtime;

use crate::catalog::{Catalog, DdlChange, DdlOutcome, DdlRequest, SequenceDef, Table};
use crate::error::*;
use crate::exec::{self, AggState, Row};
use crate::expr::{eval, passes, AggCall, Bound, Env, Eval, Kind};
use crate::plan::{JoinKind, SortKey};
use crate::rowcodec::{self, decode_row, table_prefix};
use crate::txn::{LockMode, LockWait, ReadView, ShardTxns, WaitGraph};
use crate::types::Datum;
use crate::vector::{self, BatchCx, BATCH_ROWS};

/// What the SQL layer needs from the cluster of shards. Implemented by the server over its
/// shard mesh, and by an in-memory model in tests.
#[allow(async_fn_in_trait)]
pub trait Cluster {
    /// The current catalog.
    fn catalog(&self) -> Arc<Catalog>;
    fn shard_count(&self) -> usize;
    /// The shard that owns a row token.
    fn shard_of_token(&self, token: u64) -> usize;
    /// Runs CPU-bound `work` (parsing a bulk load's records, sorting its rows) where it does
    /// not hold up this shard's other tasks: the server hands it to the shard's helper
    /// thread. By default, as in the tests and the simulator, it runs in place, at once.
    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> {
        let done = work();
        Box::pin(std::future::ready(done))
    }
    /// The fraction of `shard`'s token space at or below `token` (ANALYZE's row estimate).
    /// By default the shard's tokens are spread evenly over the whole space, as when it is
    /// the only shard or tokens are dealt by remainder.
    fn token_share_below(&self, _shard: usize, token: u64) -> f64 {
        (token as f64 + 1.0) / 18_446_744_073_709_551_616.0
    }
    /// Applies a catalog change on the catalog's owner (durably), then deletes the rows of
    /// dropped tables everywhere.
    /// Applies a catalog change on shard 0 (with its DDL markers), persists it and installs
    /// it everywhere.
    async fn apply_ddl(&self, req: DdlRequest) -> Result<DdlOutcome, SqlError>;
    /// Applies a catalog change made by this connection: inside a transaction block, as the
    /// block's (its ROLLBACK undoes it: [`crate::ddl_undo`]).
    async fn ddl(&self, change: DdlChange) -> Result<DdlOutcome, SqlError> {
        let owner = crate::txn::ddl_owner(self);
        if owner.is_some() && change.is_transactional() {
            // Before the change: shard 0 may have made it durable even if the reply is an
            // error, and the block's end must then settle it (an end with nothing pending
            // costs a catalog write, no more).
            crate::txn::note_pending_ddl(self);
        }
        self.apply_ddl(DdlRequest { change, owner }).await
    }
    async fn scan(&self, shard: usize, req: ScanRequest) -> Result<ScanRows, SqlError>;
    /// Applies row writes on one shard as one atomic batch; answered once durable.
    async fn write(&self, shard: usize, req: WriteRequest) -> Result<WriteOutcome, SqlError>;
    /// Deletes every row of a table on one shard.
    async fn truncate(&self, shard: usize, table_id: u32) -> Result<(), SqlError>;
    /// Writes `rows` (storage keys ascending, of a key range nothing else writes: a table
    /// rewrite's new id) straight into one shard's tables, past its WAL and memtable
    /// ([`helios_engine::lsm::Lsm::ingest`]); answered once durable.
    async fn ingest(&self, shard: usize, rows: PackedEntries) -> Result<(), SqlError>;
    /// Advances or sets a sequence on its owner (shard 0); answered once durable.
    async fn sequence(&self, sequence: SequenceDef, op: SequenceOp) -> Result<Vec<i64>, SqlError>;
    /// Runs a transaction message on a shard; answered once what it wrote is durable.
    async fn txn_call(
        &self,
        shard: usize,
        msg: crate::txn::TxnMsg,
    ) -> Result<crate::txn::TxnReply, SqlError>;
    /// This connection's transaction.
    fn conn_txn(&self) -> &std::cell::RefCell<crate::txn::ConnTxn>;
    /// A transaction or snapshot id no other coordinator hands out.
    fn new_txn_id(&self) -> crate::txn::TxnId;
    /// A multi-shard commit's timestamp (the cluster's [`crate::txn::HybridClock`]).
    fn commit_timestamp(&self) -> u64;
    /// The shard the connection lives on (where its commit records go).
    fn home_shard(&self) -> usize;
    /// The cluster-wide gate between snapshot pinning and multi-shard commits.
    fn commit_gate(&self) -> &std::sync::Arc<crate::txn::CommitGate>;
    /// Waits a moment (polling a condition another shard changes).
    async fn pause(&self);
    /// Runs [`crate::txn::clean_up`] for a multi-shard commit, in the background where the
    /// cluster can.
    async fn after_commit(&self, cleanup: crate::txn::Cleanup);
    /// Releases a statement snapshot on every shard, in the background where the cluster can.
    async fn release_snapshot(&self, id: u64);
}

/// What a statement asks of a sequence.
#[derive(Clone, Copy, Debug)]
pub enum SequenceOp {
    /// The next `count` values (nextval, `count` times).
    Next(usize),
    /// setval(value, is_called): answers `[value]`.
    Set { value: i64, is_called: bool },
}

/// Values a sequence hands out past its last durable record before it writes another: a
/// crash skips at most this many, and never repeats one (PostgreSQL logs 32 ahead too).
pub const SEQUENCE_LOG_AHEAD: i64 = 32;
/// Values one request may take (the rows of one statement).
pub const SEQUENCE_VALUES_MAX: usize = crate::exec::STATEMENT_ROWS_MAX;

/// The sequences' current values on shard 0: `last` handed out (or to hand out next when not
/// `called`), and `logged`, the value the durable record lets a restart resume after.
#[derive(Default)]
pub struct SequenceStates(std::cell::RefCell<std::collections::HashMap<u32, SequenceState>>);

#[derive(Clone, Copy, Debug)]
struct SequenceState {
    last: i64,
    called: bool,
    /// The furthest value the durable record covers as handed out (None: none yet).
    logged: Option<i64>,
}

/// The key of a sequence's record in shard 0's tree.
fn sequence_key(id: u32) -> Bytes {
    let mut key = rowcodec::CATALOG_KEY_PREFIX_SEQUENCE.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    Bytes::from(key)
}

/// Runs a sequence operation on shard 0's tree; returns the values and the lsn to make
/// durable before answering (0: nothing written).
pub async fn sequence_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    states: &SequenceStates,
    seq: &SequenceDef,
    op: SequenceOp,
) -> Result<(Vec<i64>, u64), SqlError> {
    if !states.0.borrow().contains_key(&seq.id) {
        let stored = lsm
            .get(&sequence_key(seq.id), None)
            .await
            .map_err(storage_error)?;
        let state = match stored.as_deref() {
            Some([v @ .., called]) if v.len() == 8 => {
                let value = i64::from_le_bytes(v.try_into().expect("8 bytes"));
                SequenceState {
                    last: value,
                    called: *called != 0,
                    logged: (*called != 0).then_some(value),
                }
            }
            Some(_) => return Err(storage_error("malformed sequence record")),
            None => SequenceState {
                last: seq.start,
                called: false,
                logged: None,
            },
        };
        states.0.borrow_mut().entry(seq.id).or_insert(state);
    }
    let mut state = states.0.borrow()[&seq.id];
    let (values, record) = match op {
        SequenceOp::Set { value, is_called } => {
            if value < seq.min || value > seq.max {
                return Err(SqlError::new(
                    "22003",
                    format!(
                        "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                        seq.name, seq.min, seq.max
                    ),
                ));
            }
            state = SequenceState {
                last: value,
                called: is_called,
                logged: is_called.then_some(value),
            };
            (vec![value], Some((value, is_called)))
        }
        SequenceOp::Next(count) => {
            if count > SEQUENCE_VALUES_MAX {
                return Err(SqlError::new(
                    PROGRAM_LIMIT_EXCEEDED,
                    format!("a statement takes at most {SEQUENCE_VALUES_MAX} values of a sequence"),
                ));
            }
            let mut values = Vec::with_capacity(count);
            for _ in 0..count {
                let next = if !state.called {
                    state.last
                } else {
                    next_value(seq, state.last)?
                };
                state.last = next;
                state.called = true;
                values.push(next);
            }
            // Past the logged value (or a cycling sequence): log ahead again.
            let beyond = state.logged.is_none_or(|logged| {
                if seq.increment > 0 {
                    state.last > logged
                } else {
                    state.last < logged
                }
            });
            let record = if count > 0 && (seq.cycle || beyond) {
                let ahead = if seq.cycle {
                    state.last
                } else {
                    state
                        .last
                        .saturating_add(seq.increment.saturating_mul(SEQUENCE_LOG_AHEAD))
                        .clamp(seq.min, seq.max)
                };
                state.logged = Some(ahead);
                Some((ahead, true))
            } else {
                None
            };
            (values, record)
        }
    };
    // The state is updated before the next await, so concurrent requests never hand out a
    // value twice.
    states.0.borrow_mut().insert(seq.id, state);
    let mut lsn = 0;
    if let Some((value, called)) = record {
        let mut record = value.to_le_bytes().to_vec();
        record.push(u8::from(called));
        let mut batch = WriteBatch::new();
        batch.put(sequence_key(seq.id), Bytes::from(record));
        lsm.wait_for_write_room().await.map_err(storage_error)?;
        lsn = lsm.write_owned(batch).map_err(storage_error)?;
    }
    Ok((values, lsn))
}

fn next_value(seq: &SequenceDef, last: i64) -> Result<i64, SqlError> {
    match last.checked_add(seq.increment) {
        Some(v) if v >= seq.min && v <= seq.max => Ok(v),
        _ if seq.cycle => Ok(if seq.increment > 0 { seq.min } else { seq.max }),
        _ => {
            let (which, bound) = if seq.increment > 0 {
                ("maximum", seq.max)
            } else {
                ("minimum", seq.min)
            };
            Err(SqlError::new(
                "2200H",
                format!(
                    "nextval: reached {which} value of sequence \"{}\" ({bound})",
                    seq.name
                ),
            ))
        }
    }
}

/// A scan fragment: one table's rows on one shard, filtered there, and what else of the
/// statement runs there (`push`).
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub(crate) table: Arc<Table>,
    /// Shared, not copied: a cached plan's filter goes out on every execution, and a scan
    /// goes out to every shard.
    pub(crate) filter: Option<Arc<Bound>>,
    pub(crate) env: Arc<Env>,
    /// Read only this row key (a point lookup on the whole primary key).
    pub(crate) point: Option<Bytes>,
    /// Read only the rows this secondary-index range points at (then filter them as usual).
    pub(crate) index: Option<crate::index::IndexRange>,
    /// Read only these rows, by storage key in ascending order (then filter them as usual):
    /// the rows SKIP LOCKED locked.
    pub(crate) rows: Option<Arc<Vec<Bytes>>>,
    /// Return each row's storage key too (UPDATE and DELETE).
    pub(crate) with_keys: bool,
    /// Work beyond the filter (None: return the whole filtered rows).
    pub(crate) push: Option<Arc<FragmentPush>>,
    /// The transaction (or statement snapshot) it reads in; set by the cluster handle.
    pub txn: Option<crate::txn::TxnCtx>,
    /// SELECT ... FOR UPDATE / FOR SHARE: lock the rows that pass the filter first.
    pub(crate) lock: Option<crate::txn::RowLock>,
    /// Pin the statement's snapshot on arrival (see [`crate::txn::PinTicket`]); taken by
    /// the cluster handle before the fragment runs.
    pub pin: Option<Arc<crate::txn::PinTicket>>,
    /// Return every row's stored value as it is under its key in another table, in
    /// `ScanRows::rekeyed` (ADD PRIMARY KEY, which moves rows unchanged); outside a
    /// transaction, with no filter or push.
    pub(crate) rekey: Option<Arc<Rekey>>,
}

/// How far the shard's log must be durable before a scan fragment's rows may leave: its rows
/// may include writes not yet durable, and a reader must never see (and act on) data a crash
/// could still take back. A fragment that reads only named keys (a primary-key lookup) waits
/// for the newest writes to those keys ([`Lsm::newest_write_lsn`]); one that reads ranges, for
/// the whole log. So a point read inside a transaction does not wait for other transactions'
/// commits to reach the disk (pgbench's TPC-B: about +10 % tps on the test VM).
pub fn scan_durable_lsn<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    req: &ScanRequest,
) -> u64 {
    match req.exact_keys() {
        Some(keys) => keys
            .iter()
            .map(|key| lsm.newest_write_lsn(key))
            .max()
            .unwrap_or(0),
        None => lsm.wal().last_lsn(),
    }
}

impl ScanRequest {
    /// The storage keys this fragment reads, when it reads nothing but them: a primary-key
    /// point lookup, the rows a lock named, and a colocated join's point lookup. None when it
    /// reads a range (a table, an index) or locks rows first (it reads again after).
    pub fn exact_keys(&self) -> Option<Vec<&Bytes>> {
        if self.index.is_some() || self.lock.is_some() || self.rekey.is_some() {
            return None;
        }
        // `TableScan::run` reads the point alone when there is one, else the rows.
        let mut keys: Vec<&Bytes> = match (&self.point, &self.rows) {
            (Some(point), _) => vec![point],
            (None, Some(rows)) => rows.iter().collect(),
            (None, None) => return None,
        };
        match self.push.as_deref().and_then(|push| push.join.as_ref()) {
            None | Some(JoinFragment::Broadcast(_)) => {}
            Some(JoinFragment::Colocated(join)) => keys.push(join.point.as_ref()?),
        }
        Some(keys)
    }
}

/// The most a rekeying scan reserves up front for its entries; past it they grow as needed.
const REKEY_PRESIZE_BYTES_MAX: usize = 1 << 30;

/// Where a rewrite that keeps stored values moves them: `table` (a new id and primary key);
/// a row NULL in a `not_null` column fails the statement (23502), as the rewrite would.
#[derive(Debug)]
pub(crate) struct Rekey {
    pub(crate) table: Arc<Table>,
    pub(crate) not_null: Vec<usize>,
}

impl ScanRequest {
    /// Pins the statement snapshot this fragment carries a ticket for (if not pinned here
    /// yet), then lets the ticket go. Call before the fragment runs.
    pub fn pin_on_arrival<F: FileSystem + Clone + 'static, R: Runtime>(
        &mut self,
        lsm: &Lsm<F, R>,
        txns: &ShardTxns,
    ) {
        if let Some(ticket) = self.pin.take() {
            txns.pin_if_absent(ticket.snapshot, || lsm.snapshot());
        }
    }
}

/// The pushed-down part of a scan fragment, in the order it runs: the co-located join, the
/// output stage, then the projection.
#[derive(Debug)]
pub(crate) struct FragmentPush {
    pub(crate) join: Option<JoinFragment>,
    /// Positions of the (joined) row to return, ascending (None: all). Not applied to a
    /// partial aggregate, whose rows are groups and states.
    pub(crate) columns: Option<Vec<usize>>,
    pub(crate) output: FragmentOutput,
}

/// The other side of a join that runs in the fragment.
#[derive(Debug)]
pub(crate) enum JoinFragment {
    Colocated(ColocatedSide),
    Broadcast(BroadcastSide),
}

/// The right side of a co-located join: rows of `table` on the same shard whose primary key
/// equals the scanned (left) row's.
#[derive(Debug)]
pub(crate) struct ColocatedSide {
    pub(crate) table: Arc<Table>,
    pub(crate) filter: Option<Bound>,
    /// Read only this row key of `table`.
    pub(crate) point: Option<Bytes>,
    pub(crate) kind: JoinKind,
    pub(crate) left_keys: Vec<usize>,
    pub(crate) right_keys: Vec<usize>,
    /// Over the joined row.
    pub(crate) residual: Option<Bound>,
}

/// The rows of a broadcast join's other side, read and hashed once by the coordinator and
/// shared by every shard's fragment (the fragment travels by reference within a process).
#[derive(Debug)]
pub(crate) struct BroadcastSide {
    pub(crate) rows: Vec<Row>,
    /// Join key bytes → positions in `rows`, ascending; rows with a NULL key are absent.
    pub(crate) index: HashMap<Vec<u8>, Vec<usize>>,
    /// The join keys over the scanned row.
    pub(crate) probe_keys: Vec<Bound>,
    /// The broadcast rows are the join's left side; the scanned rows its right side.
    pub(crate) is_left: bool,
    pub(crate) kind: JoinKind,
    /// Over the joined row.
    pub(crate) residual: Option<Bound>,
    /// Columns of a broadcast row.
    pub(crate) width: usize,
}

/// A joined row's tag when it is a right row without a match (RIGHT JOIN): such rows come
/// after every left row's matches, as in the coordinator's hash join.
pub(crate) const UNMATCHED_RIGHT_TAG: usize = usize::MAX;

#[derive(Debug)]
pub(crate) enum FragmentOutput {
    /// The rows, stopping after `limit`.
    Rows { limit: Option<usize> },
    /// The first `count` rows in `keys` order, with their key values (`ScanRows::sort_keys`).
    TopN { keys: Vec<SortKey>, count: usize },
    /// Partial aggregate states per group (`ScanRows::groups`).
    PartialAggregate {
        groups: Vec<Bound>,
        calls: Vec<AggCall>,
    },
}

#[derive(Debug, Default)]
pub struct ScanRows {
    pub(crate) rows: Vec<Row>,
    /// A rekeying scan's rows under their new keys, ordered by token: not sorted, and not
    /// yet dealt to the shards that own the new keys.
    pub(crate) rekeyed: PackedEntries,
    pub(crate) keys: Vec<Bytes>,
    /// A top-N fragment's sort key values, one per row.
    pub(crate) sort_keys: Vec<Row>,
    /// A partial aggregate's groups (values, states), in the order they were first seen.
    pub(crate) groups: Vec<(Row, Vec<AggState>)>,
    /// A broadcast left side's joined rows: per row, the position of its left row in the
    /// broadcast rows (or [`UNMATCHED_RIGHT_TAG`]); the coordinator sorts by it, stably.
    pub(crate) left_tags: Vec<usize>,
}

/// One row change.
#[derive(Debug, Clone)]
pub enum RowOp {
    /// Insert a new row: fails with 23505 if the key exists, or is skipped (`if_absent`).
    Insert {
        key: Bytes,
        value: Bytes,
        if_absent: bool,
    },
    /// Overwrite a row known to exist.
    Put {
        key: Bytes,
        value: Bytes,
    },
    /// Write a row under a key no one else can have (a new hidden row id): no existence
    /// check and no row lock.
    Append {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
    /// Overwrite (or delete, `value` None) a row the coordinator read, if it is still the
    /// version read (`expected`: that row re-encoded, `width` columns); else 40001.
    Replace {
        key: Bytes,
        value: Option<Bytes>,
        expected: Bytes,
        width: usize,
    },
    /// DELETE of a row the coordinator's scan matched: deleted if its newest version still
    /// passes `spec.filter` (skipped if gone); the deleted row is returned in `modified`.
    DeleteIf {
        key: Bytes,
        spec: Arc<ModifySpec>,
    },
    /// Delete a unique-index claim if `holder` (a row key) still holds it.
    Release {
        key: Bytes,
        holder: Bytes,
    },
    /// Read-modify-write of one row on its shard, under the shard's write serialization, so
    /// that concurrent statements never lose each other's changes. With `insert`, the row is
    /// inserted when absent (ON CONFLICT DO UPDATE); without, an absent row is skipped (it was
    /// deleted since the coordinator read it).
    Modify {
        key: Bytes,
        insert: Option<Bytes>,
        spec: Arc<ModifySpec>,
    },
    /// ON CONFLICT DO UPDATE of the row holding a contested unique-index value: `excluded` is
    /// the proposed row (another key). An absent row (deleted meanwhile) fails with 40001.
    ModifyHolder {
        key: Bytes,
        excluded: Bytes,
        spec: Arc<ModifySpec>,
    },
}

/// What a [`RowOp::Modify`] does to the current row.
#[derive(Debug)]
pub struct ModifySpec {
    pub(crate) table: Arc<Table>,
    /// Column ← value. Expressions read the current row, followed by the proposed row when
    /// the op has one (`excluded` in ON CONFLICT DO UPDATE).
    pub(crate) sets: Vec<(usize, SetValue)>,
    /// Over the same row as `sets`: UPDATE's row-local WHERE, checked again on the latest
    /// version; ON CONFLICT's DO UPDATE WHERE. Not true: the row is left alone.
    pub(crate) filter: Option<Bound>,
    /// CHECK constraints, bound over the table's columns.
    pub(crate) checks: Vec<(String, Bound)>,
    /// Columns among `sets` whose value must stay as it is, with what changing one would
    /// need: ON CONFLICT DO UPDATE of a primary key column (the row would move to another
    /// key) or of a column a foreign key references (the referencing rows would follow).
    /// Setting one to its current value, as ORMs' upserts do, is fine.
    pub(crate) fixed: Vec<(usize, &'static str)>,
    pub(crate) env: Env,
}

#[derive(Debug)]
pub enum SetValue {
    Expr(Bound),
    /// Computed by the coordinator (a DEFAULT).
    Value(Datum),
}

#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub(crate) ops: Vec<RowOp>,
    /// For the unique-violation message.
    pub(crate) constraint: String,
    /// The secondary indexes of the rows' table: each op updates their entries in the same
    /// batch.
    pub(crate) indexes: Vec<crate::index::IndexSpec>,
    /// The transaction it writes in (None: applied at once); set by the cluster handle.
    pub txn: Option<crate::txn::TxnCtx>,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    /// Rows inserted (not skipped), overwritten or deleted.
    pub applied: u64,
    /// `Insert { if_absent: true }` ops that were skipped: each key, with the value it
    /// holds (None: inserted earlier in the same batch).
    pub skipped: Vec<(Bytes, Option<Bytes>)>,
    /// The WAL position the write must be durable to before it is acknowledged.
    pub lsn: u64,
    /// The rows `Modify` ops wrote (updated or inserted), in op order.
    pub(crate) modified: Vec<Row>,
    /// Unique-index claims the written rows give up and take: the coordinator settles them
    /// on their own shards (`stmt::settle_claims`), in the same transaction.
    pub(crate) claims: Vec<crate::index::Claim>,
}

/// Rows a scan fragment returns in one reply, at most (bounded by the statement budget).
pub const SCAN_ROWS_MAX: usize = crate::exec::STATEMENT_ROWS_MAX;

/// Runs a scan fragment over this shard's tree.
pub async fn scan_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    req: &ScanRequest,
    view: &ReadView,
) -> Result<ScanRows, SqlError> {
    if let Some(rekey) = &req.rekey {
        return rekeyed_rows(lsm, rt, req, rekey, view).await;
    }
    let push = req.push.as_deref();
    assert!(
        !req.with_keys
            || push.is_none_or(|p| p.join.is_none()
                && p.columns.is_none()
                && matches!(p.output, FragmentOutput::Rows { .. })),
        "fragments that return storage keys push down nothing but a limit"
    );
    let mut sink = Sink::new(req, push);
    let filter = req.filter.as_deref();
    let vectorized =
        vector::enabled(&req.env) && filter.is_none_or(vector::batchable) && sink.batchable();
    let wanted = columns_read(req, push);
    let left = TableScan {
        table: &req.table,
        point: req.point.as_ref(),
        index: req.index.as_ref(),
        rows: req.rows.as_deref().map(Vec::as_slice),
        env: &req.env,
        first_batch: sink.first_batch(),
        wanted: wanted.as_deref(),
        keep_keys: req.with_keys,
        view,
    };
    match push.and_then(|p| p.join.as_ref()) {
        None => {
            left.run(lsm, rt, |batch| sink.take_batch(filter, batch, vectorized))
                .await?
        }
        Some(JoinFragment::Broadcast(side)) => {
            left.run(lsm, rt, |batch| {
                each_passing(filter, &req.env, batch, vectorized, &mut |key, row| {
                    side.probe(&req.env, row, &mut sink, key)
                })
            })
            .await?
        }
        Some(JoinFragment::Colocated(join)) => {
            let right = TableScan {
                table: &join.table,
                point: join.point.as_ref(),
                index: None,
                rows: None,
                env: &req.env,
                first_batch: BATCH_ROWS,
                wanted: None,
                keep_keys: false,
                view,
            };
            let right_vectorized = vectorized && join.filter.as_ref().is_none_or(vector::batchable);
            let mut right_rows = Vec::new();
            right
                .run(lsm, rt, |batch| {
                    each_passing(
                        join.filter.as_ref(),
                        &req.env,
                        batch,
                        right_vectorized,
                        &mut |_, row| {
                            right_rows.push(row);
                            rows_budget(right_rows.len())?;
                            Ok(true)
                        },
                    )
                })
                .await?;
            let probe = JoinProbe::new(join, right_rows);
            left.run(lsm, rt, |batch| {
                each_passing(filter, &req.env, batch, vectorized, &mut |key, row| {
                    probe.probe(&req.env, row, &mut |joined| sink.push(key, joined))
                })
            })
            .await?;
        }
    }
    sink.finish()
}

/// Every row of the table (newest committed versions) under its key in `rekey.table`, its
/// stored value unchanged: only the new key's columns (and the NOT NULL ones) are decoded.
/// Built here, on the shard, the entries are the only copy of the rows the rewrite makes.
/// Where the engine can read the table's files straight ([`Lsm::bulk_scan`]: a table loaded
/// by COPY), it does, and the shard's helper thread decodes half of them.
async fn rekeyed_rows<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    req: &ScanRequest,
    rekey: &Arc<Rekey>,
    view: &ReadView,
) -> Result<ScanRows, SqlError> {
    if req.txn.is_some() || req.filter.is_some() || req.push.is_some() || view.overlay.is_some() {
        return Err(SqlError::new(
            INTERNAL_ERROR,
            "a rekeying scan runs outside transactions, unfiltered",
        ));
    }
    let prefix = table_prefix(req.table.id);
    let end = helios_engine::lsm::prefix_upper_bound(&prefix);
    // Sized up front from the stored bytes (plus the new keys): growing a buffer of a
    // million rows copies it and faults in fresh pages again at every doubling.
    let stored = lsm
        .approximate_bytes(&prefix, end.as_deref())
        .await
        .map_err(storage_error)?;
    // Capped: the stored bytes count every version not yet compacted away, and a table
    // larger than memory must fail on its row limit, not abort on one huge allocation.
    let presize = (stored as usize / 8 * 9).min(REKEY_PRESIZE_BYTES_MAX);
    let mut rekeyer = Rekeyer::new(rekey.clone());
    let mut rekeyed = PackedEntries::with_capacity(presize, 0);
    let plan = match end.as_deref() {
        Some(end) => lsm.bulk_scan(&prefix, end, view.snapshot.as_ref()).await,
        None => None,
    };
    if let Some(plan) = plan {
        rekey_in_bulk(rt, &plan, &mut rekeyer, &mut rekeyed).await?;
        return Ok(ScanRows {
            rekeyed,
            ..ScanRows::default()
        });
    }
    let mut iter = lsm
        .prefix_iter(&prefix, view.snapshot.clone())
        .await
        .map_err(storage_error)?;
    while iter.valid() {
        rekeyer.push(iter.value(), &mut rekeyed)?;
        rows_budget(rekeyed.len())?;
        iter.next().await.map_err(storage_error)?;
        rt.yield_if_needed().await;
    }
    Ok(ScanRows {
        rekeyed,
        ..ScanRows::default()
    })
}

/// Chunks of a bulk scan handed to the helper thread and not yet taken back, at most: with
/// more waiting there, the shard decodes the next chunk itself.
const REKEY_CHUNKS_ON_HELPER: usize = 2;
/// Chunk reads of a bulk scan in flight at once.
const REKEY_READS_AHEAD: usize = 4;

/// The rows of `plan`'s chunks, rekeyed into `rekeyed` (in no particular order: the rewrite
/// sorts them). The shard reads the chunks (a few ahead), and hands each to the helper
/// thread, or decodes it here while the helper has its fill: both cores decode. A bad row
/// fails it as the iterator's scan would, with the first one's error.
async fn rekey_in_bulk<F: FileSystem + Clone + 'static, R: Runtime>(
    rt: &R,
    plan: &helios_engine::lsm::BulkScan<F>,
    rekeyer: &mut Rekeyer,
    rekeyed: &mut PackedEntries,
) -> Result<(), SqlError> {
    type Rekeyed =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<PackedEntries, SqlError>>>>;
    let mut on_helper: std::collections::VecDeque<Rekeyed> = std::collections::VecDeque::new();
    // Reads ahead: awaited one by one, each read kept both cores waiting for the disk.
    use futures_util::StreamExt;
    let mut reads = futures_util::stream::iter(0..plan.len())
        .map(|i| plan.read(i))
        .buffered(REKEY_READS_AHEAD);
    while let Some(chunk) = reads.next().await {
        let chunk = chunk.map_err(storage_error)?;
        while let Some(oldest) = on_helper.front_mut() {
            let Some(done) = futures_util::FutureExt::now_or_never(oldest.as_mut()) else {
                break;
            };
            on_helper.pop_front();
            rekeyed.extend_from(&done?);
        }
        if on_helper.len() < REKEY_CHUNKS_ON_HELPER {
            let mut theirs = Rekeyer::new(rekeyer.rekey.clone());
            on_helper.push_back(rt.offload(move || {
                let mut out = PackedEntries::new();
                chunk.for_each(storage_error, |_, value| theirs.push(value, &mut out))?;
                Ok(out)
            }));
        } else {
            let decoded = chunk.for_each(storage_error, |_, value| rekeyer.push(value, rekeyed));
            if let Err(error) = decoded {
                // The chunks on the helper came earlier: an error of theirs is the first.
                for job in on_helper {
                    job.await?;
                }
                return Err(error);
            }
            rt.yield_if_needed().await;
        }
        rows_budget(rekeyed.len())?;
    }
    for job in on_helper {
        rekeyed.extend_from(&job.await?);
        rows_budget(rekeyed.len())?;
    }
    Ok(())
}

/// What a rekeying scan does to one stored row: its value, unchanged, under the key of
/// `rekey.table` (decoding only that key's columns and the NOT NULL ones). `Send`, so the
/// helper thread has one too.
struct Rekeyer {
    rekey: Arc<Rekey>,
    wanted: Vec<bool>,
    row: Vec<Datum>,
    key_bytes: Vec<u8>,
}

impl Rekeyer {
    fn new(rekey: Arc<Rekey>) -> Rekeyer {
        let mut wanted = vec![false; rekey.table.columns.len()];
        for &c in rekey.table.primary_key.iter().chain(&rekey.not_null) {
            wanted[c] = true;
        }
        Rekeyer {
            rekey,
            wanted,
            row: Vec::new(),
            key_bytes: Vec::new(),
        }
    }

    fn push(&mut self, value: &[u8], out: &mut PackedEntries) -> Result<(), SqlError> {
        let table = &self.rekey.table;
        rowcodec::decode_row_columns_into(
            value,
            self.wanted.len(),
            &self.wanted,
            false,
            &mut self.row,
        )
        .map_err(storage_error)?;
        crate::alter::check_not_null(table, &self.row, &self.rekey.not_null)?;
        crate::stmt::key_bytes_into(table, &self.row, &mut self.key_bytes)?;
        let token = rowcodec::row_token(&self.key_bytes);
        let key_bytes = &self.key_bytes;
        out.push_with(
            token,
            |out| rowcodec::row_key_into(out, table.id, token, key_bytes),
            |out| out.extend_from_slice(value),
        )
        .map_err(storage_error)
    }
}

/// Runs a scan fragment in its transaction's view. SELECT ... FOR UPDATE / FOR SHARE first
/// locks the rows the filter passes (waiting for their holders), then reads them: READ
/// COMMITTED the newest versions, REPEATABLE READ its snapshot's, which must still be the
/// newest (40001 otherwise).
pub async fn scan_fragment<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    txns: &ShardTxns,
    graph: &WaitGraph,
    shard: usize,
    req: &ScanRequest,
) -> Result<ScanRows, SqlError> {
    let ctx = req.txn.as_ref();
    let view = txns.view(ctx)?;
    let (Some(row_lock), Some(ctx)) = (req.lock, ctx) else {
        return scan_local(lsm, rt, req, &view).await;
    };
    let keys_only = ScanRequest {
        with_keys: true,
        push: None,
        lock: None,
        ..req.clone()
    };
    let candidates = scan_local(lsm, rt, &keys_only, &view).await?;
    let mut pool = in_fragment_order(req, candidates)?;
    let keys = if row_lock.skip_locked {
        pool.retain(|key| txns.lockable(ctx.id, key, row_lock.mode));
        pool.truncate(fragment_row_limit(req).unwrap_or(usize::MAX));
        txns.lock_free_rows(ctx.id, &pool, row_lock.mode);
        pool
    } else {
        let wait = LockWait {
            nowait: row_lock.nowait,
            ..ctx.wait.clone()
        };
        lock_rows_returned(lsm, rt, txns, graph, shard, req, &keys_only, &wait, pool).await?
    };
    // Read exactly the locked rows again, under their locks.
    let mut keys = keys;
    keys.sort_unstable();
    let req = ScanRequest {
        rows: Some(Arc::new(keys.clone())),
        point: None,
        index: None,
        ..req.clone()
    };
    let view = match ctx.isolation {
        crate::txn::Isolation::RepeatableRead => {
            unchanged_since_snapshot(lsm, txns, ctx, &view, &keys).await?;
            view
        }
        crate::txn::Isolation::ReadCommitted => ReadView {
            overlay: view.overlay,
            snapshot: None,
        },
    };
    scan_local(lsm, rt, &req, &view).await
}

/// The most rows a fragment returns (its pushed-down LIMIT or top N); None: all that pass.
fn fragment_row_limit(req: &ScanRequest) -> Option<usize> {
    match req.push.as_deref().map(|p| &p.output) {
        Some(FragmentOutput::Rows { limit }) => *limit,
        Some(FragmentOutput::TopN { count, .. }) => Some(*count),
        _ => None,
    }
}

/// The keys of the rows that passed the filter (`candidates`, whole rows with their keys), in
/// the order the fragment returns rows: its ORDER BY for a top N, else scan order.
fn in_fragment_order(req: &ScanRequest, candidates: ScanRows) -> Result<Vec<Bytes>, SqlError> {
    let Some(FragmentOutput::TopN { keys, .. }) = req.push.as_deref().map(|p| &p.output) else {
        return Ok(candidates.keys);
    };
    let mut keyed = Vec::with_capacity(candidates.keys.len());
    for (key, row) in candidates.keys.into_iter().zip(candidates.rows) {
        let values = keys
            .iter()
            .map(|k| eval(&k.expr, &Eval::over_row(&req.env, &row)))
            .collect::<Result<Vec<_>, _>>()?;
        keyed.push((values, key));
    }
    // Stable: ties stay in scan order, as the fragment's own top N keeps them.
    keyed.sort_by(|(a, _), (b, _)| exec::compare_sort_keys(keys, a, b));
    Ok(keyed.into_iter().map(|(_, key)| key).collect())
}

/// FOR UPDATE / FOR SHARE (waiting, or NOWAIT): locks the rows the fragment returns, as
/// PostgreSQL locks only the rows it returns. Without a LIMIT that is every row in `pool`
/// (the keys of the rows that passed the filter, in the fragment's order). With one, the
/// first N; a row that no longer passes the filter once its lock is granted (READ COMMITTED
/// reads the newest version) is made up for by the next ones, as PostgreSQL's LIMIT asks its
/// lock step for more rows. Rows that stopped passing stay locked, as in PostgreSQL.
#[allow(clippy::too_many_arguments)]
async fn lock_rows_returned<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    txns: &ShardTxns,
    graph: &WaitGraph,
    shard: usize,
    req: &ScanRequest,
    keys_only: &ScanRequest,
    wait: &LockWait,
    pool: Vec<Bytes>,
) -> Result<Vec<Bytes>, SqlError> {
    let ctx = req
        .txn
        .as_ref()
        .expect("a locking scan runs in a transaction");
    let mode = req.lock.expect("a locking scan").mode;
    let Some(limit) = fragment_row_limit(req) else {
        txns.lock(graph, rt, shard, ctx.id, &pool, mode, wait)
            .await?;
        return Ok(pool);
    };
    let mut locked: Vec<Bytes> = Vec::new();
    let mut passing = 0;
    let mut next = pool.into_iter();
    while passing < limit {
        let batch: Vec<Bytes> = next.by_ref().take(limit - passing).collect();
        if batch.is_empty() {
            break;
        }
        txns.lock(graph, rt, shard, ctx.id, &batch, mode, wait)
            .await?;
        // Which of them still pass, now that they are locked.
        let mut sorted = batch.clone();
        sorted.sort_unstable();
        let recheck = ScanRequest {
            rows: Some(Arc::new(sorted)),
            point: None,
            index: None,
            ..keys_only.clone()
        };
        let newest = ReadView {
            overlay: txns.view(Some(ctx))?.overlay,
            snapshot: match ctx.isolation {
                crate::txn::Isolation::RepeatableRead => txns.view(Some(ctx))?.snapshot,
                crate::txn::Isolation::ReadCommitted => None,
            },
        };
        passing += scan_local(lsm, rt, &recheck, &newest).await?.keys.len();
        locked.extend(batch);
    }
    Ok(locked)
}

/// The columns a scan fragment reads when that is fewer than all (None: every column, for
/// whole rows, storage keys and joins). The others are not decoded.
fn columns_read(req: &ScanRequest, push: Option<&FragmentPush>) -> Option<Vec<bool>> {
    let push = push?;
    if req.with_keys || push.join.is_some() {
        return None;
    }
    let width = req.table.columns.len();
    let mut wanted = vec![false; width];
    let mut exprs: Vec<&Bound> = req.filter.iter().map(|f| &**f).collect();
    let returns_rows = match &push.output {
        FragmentOutput::PartialAggregate { groups, calls } => {
            exprs.extend(groups);
            for c in calls {
                exprs.extend(c.filter.iter().chain(&c.arg).chain(&c.delimiter));
                exprs.extend(c.order_by.iter().map(|k| &k.expr));
            }
            false
        }
        FragmentOutput::TopN { keys, .. } => {
            exprs.extend(keys.iter().map(|k| &k.expr));
            true
        }
        FragmentOutput::Rows { .. } => true,
    };
    if returns_rows {
        for &c in push.columns.as_deref()? {
            *wanted.get_mut(c)? = true;
        }
    }
    let mut in_range = true;
    for e in exprs {
        e.visit(&mut |n| {
            if let Kind::Column(c) = n.kind {
                match wanted.get_mut(c) {
                    Some(w) => *w = true,
                    None => in_range = false,
                }
            }
        });
    }
    in_range.then_some(wanted)
}

/// Calls `each` with every row of the batch that passes `filter`, until it returns false
/// (then returns false). The filter is evaluated as a vector when `vectorized`; a batch
/// whose evaluation fails runs row at a time instead, filtering each row just before
/// `each` takes it, which fails (or stops first) as row-at-a-time execution would.
fn each_passing(
    filter: Option<&Bound>,
    env: &Env,
    mut batch: ScanBatch,
    vectorized: bool,
    each: &mut dyn FnMut(&Bytes, Row) -> Result<bool, SqlError>,
) -> Result<bool, SqlError> {
    if let Some(sel) = selected(filter, env, &batch, vectorized) {
        for i in sel {
            let i = i as usize;
            let row = std::mem::take(&mut batch.rows[i]);
            if !each(batch.key(i), row)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let rows = std::mem::take(&mut batch.rows);
    for (i, row) in rows.into_iter().enumerate() {
        if passes(filter, env, &row)? && !each(batch.key(i), row)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The rows of the batch that pass `filter`, evaluated as a vector; None when the batch
/// runs row at a time (not `vectorized`, a single row, or its evaluation failed).
fn selected(
    filter: Option<&Bound>,
    env: &Env,
    batch: &ScanBatch,
    vectorized: bool,
) -> Option<Vec<u32>> {
    if !vectorized || batch.rows.len() < 2 {
        return None;
    }
    let all = vector::all(batch.rows.len());
    match filter {
        None => Some(all),
        Some(f) => vector::filter(f, &BatchCx::on_shard(env, &batch.rows), &all).ok(),
    }
}

/// Fails once a fragment would hold more than [`SCAN_ROWS_MAX`] rows.
fn rows_budget(rows: usize) -> Result<(), SqlError> {
    if rows > SCAN_ROWS_MAX {
        return Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("a scan returns at most {SCAN_ROWS_MAX} rows"),
        ));
    }
    Ok(())
}

/// Rows a scan reads between checks for cancellation and yields to the executor, so a long
/// scan never holds its shard's thread: one full batch.
const SCAN_YIELD_ROWS: u64 = BATCH_ROWS as u64;

/// A batch of one table's rows on a shard, in key order, with their storage keys when the
/// scan keeps them (see `TableScan::keep_keys`).
#[derive(Default)]
struct ScanBatch {
    keys: Vec<Bytes>,
    rows: Vec<Row>,
}

impl ScanBatch {
    /// Row `i`'s storage key (empty when the scan does not keep keys).
    fn key(&self, i: usize) -> &Bytes {
        static NO_KEY: Bytes = Bytes::new();
        self.keys.get(i).unwrap_or(&NO_KEY)
    }
}

/// One table's rows on this shard, in key order, read in batches.
struct TableScan<'a> {
    table: &'a Table,
    point: Option<&'a Bytes>,
    index: Option<&'a crate::index::IndexRange>,
    /// Only these rows, by storage key in ascending order.
    rows: Option<&'a [Bytes]>,
    env: &'a Env,
    /// Rows in the first batch; each later batch doubles it, up to [`BATCH_ROWS`]. A
    /// fragment that wants few rows (LIMIT) starts small, not to read far past them.
    first_batch: usize,
    /// The columns decoded (None: all); the others read as NULL.
    wanted: Option<&'a [bool]>,
    /// Whether batches carry the rows' storage keys (only fragments that return them do).
    keep_keys: bool,
    /// The snapshot and the transaction's own intents.
    view: &'a ReadView,
}

impl TableScan<'_> {
    /// Calls `each` with batches of the table's rows (unfiltered), until it returns false.
    async fn run<F: FileSystem + Clone + 'static, R: Runtime>(
        &self,
        lsm: &Lsm<F, R>,
        rt: &R,
        mut each: impl FnMut(ScanBatch) -> Result<bool, SqlError>,
    ) -> Result<(), SqlError> {
        if let Some(key) = self.point {
            if let Some(value) = self.view.get(lsm, key).await? {
                let row = self.decode(&value)?;
                each(ScanBatch {
                    keys: vec![key.clone()],
                    rows: vec![row],
                })?;
            }
            return Ok(());
        }
        if let Some(range) = self.index {
            return self.run_indexed(lsm, rt, range, each).await;
        }
        if let Some(keys) = self.rows {
            return self.run_keys(lsm, rt, keys.iter().cloned(), each).await;
        }
        let prefix = table_prefix(self.table.id);
        let upper = helios_engine::lsm::prefix_upper_bound(&prefix);
        let mut iter = lsm
            .prefix_iter(&prefix, self.view.snapshot.clone())
            .await
            .map_err(storage_error)?;
        let mut size = self.first_batch.clamp(1, BATCH_ROWS);
        let mut batch = ScanBatch::default();
        // The transaction's own intents, merged in key order (they win over the tree's).
        let mut intent = self.view.next_intent(&prefix, false, upper.as_deref());
        loop {
            let from_tree = match (&intent, iter.valid()) {
                (None, false) => break,
                (None, true) => true,
                (Some(_), false) => false,
                (Some((k, _)), true) => iter.user_key() < &k[..],
            };
            if from_tree {
                if self.keep_keys {
                    batch.keys.push(iter.key().clone());
                }
                batch.rows.push(self.decode(iter.value())?);
                iter.next().await.map_err(storage_error)?;
            } else {
                let (key, value) = intent.take().expect("an intent is next");
                if iter.valid() && iter.user_key() == &key[..] {
                    iter.next().await.map_err(storage_error)?;
                }
                intent = self.view.next_intent(&key, true, upper.as_deref());
                let Some(value) = value else {
                    continue;
                };
                if self.keep_keys {
                    batch.keys.push(key);
                }
                batch.rows.push(self.decode(&value)?);
            }
            if !self
                .hand_over_if_full(rt, &mut batch, &mut size, &mut each)
                .await?
            {
                return Ok(());
            }
        }
        if !batch.rows.is_empty() {
            each(batch)?;
        }
        Ok(())
    }

    /// The rows an index range points at, in storage-key order (the order a full scan
    /// gives), in batches.
    async fn run_indexed<F: FileSystem + Clone + 'static, R: Runtime>(
        &self,
        lsm: &Lsm<F, R>,
        rt: &R,
        range: &crate::index::IndexRange,
        each: impl FnMut(ScanBatch) -> Result<bool, SqlError>,
    ) -> Result<(), SqlError> {
        let mut row_keys: Vec<Bytes> = Vec::new();
        // Entries left from before an ALTER TABLE rewrite point at the old table id's rows,
        // which have the old row layout: only this table's rows are read.
        let table_keys = table_prefix(self.table.id);
        {
            let mut iter = lsm.iter(helios_engine::lsm::ReadOptions {
                snapshot: self.view.snapshot.clone(),
                upper_bound: Some(Bytes::copy_from_slice(&range.upper)),
            });
            iter.seek(&range.lower).await.map_err(storage_error)?;
            while iter.valid() {
                if let Some(row_key) =
                    crate::index::row_key_of(iter.user_key()).filter(|k| k.starts_with(&table_keys))
                {
                    row_keys.push(Bytes::copy_from_slice(row_key));
                    rows_budget(row_keys.len())?;
                }
                iter.next().await.map_err(storage_error)?;
            }
            // Entries the transaction itself added (a stale one only costs a read: the
            // filter runs on the row as the view sees it).
            let mut next = self
                .view
                .next_intent(&range.lower, false, Some(&range.upper));
            while let Some((entry, value)) = next {
                if value.is_some() {
                    if let Some(row_key) =
                        crate::index::row_key_of(&entry).filter(|k| k.starts_with(&table_keys))
                    {
                        row_keys.push(Bytes::copy_from_slice(row_key));
                        rows_budget(row_keys.len())?;
                    }
                }
                next = self.view.next_intent(&entry, true, Some(&range.upper));
            }
        }
        row_keys.sort_unstable();
        row_keys.dedup();
        self.run_keys(lsm, rt, row_keys.into_iter(), each).await
    }

    /// The rows at `keys` (ascending), in batches; a key with no row is skipped.
    async fn run_keys<F: FileSystem + Clone + 'static, R: Runtime>(
        &self,
        lsm: &Lsm<F, R>,
        rt: &R,
        keys: impl Iterator<Item = Bytes>,
        mut each: impl FnMut(ScanBatch) -> Result<bool, SqlError>,
    ) -> Result<(), SqlError> {
        let mut size = self.first_batch.clamp(1, BATCH_ROWS);
        let mut batch = ScanBatch::default();
        for key in keys {
            // A row gone since its key was found (a stale index entry, a deleted row) is
            // skipped; a changed one meets the filter again.
            let Some(value) = self.view.get(lsm, &key).await? else {
                continue;
            };
            batch.rows.push(self.decode(&value)?);
            if self.keep_keys {
                batch.keys.push(key);
            }
            if !self
                .hand_over_if_full(rt, &mut batch, &mut size, &mut each)
                .await?
            {
                return Ok(());
            }
        }
        if !batch.rows.is_empty() {
            each(batch)?;
        }
        Ok(())
    }

    /// Hands `batch` to `each` once it holds `size` rows, then doubles `size` (up to
    /// [`BATCH_ROWS`]), checks for cancellation and yields; false when `each` wants no more.
    async fn hand_over_if_full<R: Runtime>(
        &self,
        rt: &R,
        batch: &mut ScanBatch,
        size: &mut usize,
        each: &mut impl FnMut(ScanBatch) -> Result<bool, SqlError>,
    ) -> Result<bool, SqlError> {
        if batch.rows.len() < *size {
            return Ok(true);
        }
        if !each(std::mem::take(batch))? {
            return Ok(false);
        }
        *size = (*size * 2).min(BATCH_ROWS);
        self.env.check_cancelled()?;
        rt.yield_if_needed().await;
        Ok(true)
    }

    fn decode(&self, value: &[u8]) -> Result<Row, SqlError> {
        let width = self.table.columns.len();
        match self.wanted {
            None => decode_row(value, width),
            // Nothing downstream names a column (`columns_read` saw every expression):
            // count(*) and `SELECT 1` get an empty row, not `width` NULLs per row.
            Some(wanted) if !wanted.contains(&true) => {
                rowcodec::check_row_header(value).map(|()| Vec::new())
            }
            Some(wanted) => rowcodec::decode_row_columns(value, width, wanted),
        }
        .map_err(storage_error)
    }
}

/// The right side of a co-located join, hashed on its key columns.
struct JoinProbe<'a> {
    join: &'a ColocatedSide,
    rows: Vec<Row>,
    index: HashMap<Vec<u8>, Vec<usize>>,
}

impl<'a> JoinProbe<'a> {
    fn new(join: &'a ColocatedSide, rows: Vec<Row>) -> JoinProbe<'a> {
        let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            if let Some(key) = exec::join_key(join.right_keys.iter().map(|&c| &row[c])) {
                index.entry(key).or_default().push(i);
            }
        }
        JoinProbe { join, rows, index }
    }

    /// Emits the joined rows of one left row, as the coordinator's hash join would: its
    /// matches in right-row order, or the row NULL-extended when a left join finds none.
    fn probe(
        &self,
        env: &Env,
        left: Row,
        emit: &mut dyn FnMut(Row) -> Result<bool, SqlError>,
    ) -> Result<bool, SqlError> {
        let candidates: &[usize] = exec::join_key(self.join.left_keys.iter().map(|&c| &left[c]))
            .and_then(|k| self.index.get(&k))
            .map_or(&[], |v| v.as_slice());
        let mut matched = false;
        for &i in candidates {
            let mut joined = Vec::with_capacity(left.len() + self.join.table.columns.len());
            joined.extend_from_slice(&left);
            joined.extend_from_slice(&self.rows[i]);
            if let Some(r) = &self.join.residual {
                if eval(r, &Eval::over_row(env, &joined))? != Datum::Bool(true) {
                    continue;
                }
            }
            matched = true;
            if !emit(joined)? {
                return Ok(false);
            }
        }
        if !matched && self.join.kind == JoinKind::Left {
            let mut joined = left;
            joined.resize(joined.len() + self.join.table.columns.len(), Datum::Null);
            return emit(joined);
        }
        Ok(true)
    }
}

impl BroadcastSide {
    /// Joins one scanned row with the broadcast rows and hands the joined rows to `sink`,
    /// as the coordinator's hash join would: a left row's matches in right-row order, a
    /// left join's unmatched left row NULL-extended, a right join's unmatched right row
    /// NULL-extended and tagged to come last. False once the sink wants no more rows.
    fn probe(&self, env: &Env, row: Row, sink: &mut Sink, key: &Bytes) -> Result<bool, SqlError> {
        let mut values = Vec::with_capacity(self.probe_keys.len());
        for k in &self.probe_keys {
            values.push(eval(k, &Eval::over_row(env, &row))?);
        }
        let candidates: &[usize] = exec::join_key(values.iter())
            .and_then(|k| self.index.get(&k))
            .map_or(&[], |v| v.as_slice());
        let mut matched = false;
        for &i in candidates {
            let (left, right) = if self.is_left {
                (&self.rows[i], &row)
            } else {
                (&row, &self.rows[i])
            };
            let mut joined = Vec::with_capacity(left.len() + right.len());
            joined.extend_from_slice(left);
            joined.extend_from_slice(right);
            if let Some(r) = &self.residual {
                if eval(r, &Eval::over_row(env, &joined))? != Datum::Bool(true) {
                    continue;
                }
            }
            matched = true;
            if !self.emit(sink, key, joined, i)? {
                return Ok(false);
            }
        }
        if matched {
            return Ok(true);
        }
        match (self.kind, self.is_left) {
            (JoinKind::Left, false) => {
                let mut joined = row;
                joined.resize(joined.len() + self.width, Datum::Null);
                self.emit(sink, key, joined, 0)
            }
            (JoinKind::Right, true) => {
                let mut joined = vec![Datum::Null; self.width];
                joined.extend(row);
                self.emit(sink, key, joined, UNMATCHED_RIGHT_TAG)
            }
            _ => Ok(true),
        }
    }

    fn emit(
        &self,
        sink: &mut Sink,
        key: &Bytes,
        joined: Row,
        left: usize,
    ) -> Result<bool, SqlError> {
        if !self.is_left {
            return sink.push(key, joined);
        }
        // Rows are put back in left-row order on the coordinator: the sink keeps all.
        assert!(
            matches!(sink.stage, Stage::Rows { limit: usize::MAX }),
            "a reordered join's fragment returns all its rows"
        );
        let more = sink.push(key, joined)?;
        sink.out.left_tags.push(left);
        assert_eq!(
            sink.out.left_tags.len(),
            sink.out.rows.len(),
            "a tag per row"
        );
        Ok(more)
    }
}

/// Runs a broadcast join's fragment over rows the coordinator read itself (the other side
/// was too big to broadcast): the same pipeline as on a shard, over all rows at once.
pub(crate) fn broadcast_local(req: &ScanRequest, rows: Vec<Row>) -> Result<ScanRows, SqlError> {
    let push = req.push.as_deref().expect("a broadcast join's fragment");
    let Some(JoinFragment::Broadcast(side)) = &push.join else {
        panic!("a broadcast join's fragment");
    };
    let mut sink = Sink::new(req, Some(push));
    let no_key = Bytes::new();
    for (i, row) in rows.into_iter().enumerate() {
        if (i as u64 + 1).is_multiple_of(SCAN_YIELD_ROWS) {
            req.env.check_cancelled()?;
        }
        if !side.probe(&req.env, row, &mut sink, &no_key)? {
            break;
        }
    }
    sink.finish()
}

/// Where a fragment's rows go: its output stage, then its projection.
struct Sink<'a> {
    env: &'a Env,
    with_keys: bool,
    columns: Option<&'a [usize]>,
    stage: Stage<'a>,
    out: ScanRows,
}

enum Stage<'a> {
    Rows {
        limit: usize,
    },
    TopN {
        keys: &'a [SortKey],
        count: usize,
        /// (key values, row), sorted and cut to `count` whenever it doubles.
        best: Vec<(Row, Row)>,
    },
    Partial {
        groups: &'a [Bound],
        calls: &'a [AggCall],
        grouper: exec::Grouper,
    },
}

/// A batch's stage vectors, evaluated before any row is kept.
enum Prepared {
    Rows,
    TopN(Vec<vector::Vector>),
    Partial(exec::AggBatch),
}

/// Rows a top-N fragment buffers at least before sorting and cutting them.
const TOP_N_BUFFER_MIN: usize = 1024;

impl<'a> Sink<'a> {
    fn new(req: &'a ScanRequest, push: Option<&'a FragmentPush>) -> Sink<'a> {
        let stage = match push.map(|p| &p.output) {
            None => Stage::Rows { limit: usize::MAX },
            Some(FragmentOutput::Rows { limit }) => Stage::Rows {
                limit: limit.unwrap_or(usize::MAX),
            },
            Some(FragmentOutput::TopN { keys, count }) => Stage::TopN {
                keys,
                count: *count,
                best: Vec::new(),
            },
            Some(FragmentOutput::PartialAggregate { groups, calls }) => Stage::Partial {
                groups,
                calls,
                grouper: exec::Grouper::default(),
            },
        };
        Sink {
            env: &req.env,
            with_keys: req.with_keys,
            columns: push.and_then(|p| p.columns.as_deref()),
            stage,
            out: ScanRows::default(),
        }
    }

    /// True when the stage's expressions may be evaluated as vectors.
    fn batchable(&self) -> bool {
        match &self.stage {
            Stage::Rows { .. } => true,
            Stage::TopN { keys, .. } => keys.iter().all(|k| vector::batchable(&k.expr)),
            Stage::Partial { groups, calls, .. } => exec::Grouper::batchable(groups, calls),
        }
    }

    /// Rows the scan's first batch should hold: no more than a LIMIT wants (but a few, so
    /// a filter that rejects some rows does not cost a batch per row).
    fn first_batch(&self) -> usize {
        const FIRST_BATCH_MIN: usize = 16;
        match self.stage {
            Stage::Rows { limit } => limit.clamp(FIRST_BATCH_MIN, BATCH_ROWS),
            _ => BATCH_ROWS,
        }
    }

    /// Takes a batch of scanned rows, keeping those that pass `filter`; false once no more
    /// are wanted. With `vectorized`, the filter and the stage's expressions are evaluated
    /// as vectors before anything is kept; if that fails, the batch runs row at a time.
    fn take_batch(
        &mut self,
        filter: Option<&Bound>,
        mut batch: ScanBatch,
        vectorized: bool,
    ) -> Result<bool, SqlError> {
        if let Some(sel) = selected(filter, self.env, &batch, vectorized) {
            if let Some(prepared) = self.prepare(&batch.rows, &sel) {
                return self.take_prepared(prepared, &mut batch, &sel);
            }
        }
        let env = self.env;
        each_passing(filter, env, batch, false, &mut |key, row| {
            self.push(key, row)
        })
    }

    /// The stage's vectors over the selected rows (None: the evaluation failed).
    fn prepare(&self, rows: &[Row], sel: &[u32]) -> Option<Prepared> {
        let cx = BatchCx::on_shard(self.env, rows);
        match &self.stage {
            Stage::Rows { .. } => Some(Prepared::Rows),
            Stage::TopN { keys, .. } => keys
                .iter()
                .map(|k| vector::eval_batch(&k.expr, &cx, sel))
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .map(Prepared::TopN),
            Stage::Partial { groups, calls, .. } => {
                exec::Grouper::prepare_batch(groups, calls, &cx, sel)
                    .ok()
                    .map(Prepared::Partial)
            }
        }
    }

    /// Keeps the selected rows of a prepared batch, as `push` would one by one.
    fn take_prepared(
        &mut self,
        prepared: Prepared,
        batch: &mut ScanBatch,
        sel: &[u32],
    ) -> Result<bool, SqlError> {
        match (&mut self.stage, prepared) {
            (Stage::Rows { limit }, Prepared::Rows) => {
                for &i in sel {
                    let i = i as usize;
                    if self.out.rows.len() >= *limit {
                        return Ok(false);
                    }
                    rows_budget(self.out.rows.len() + 1)?;
                    let row = std::mem::take(&mut batch.rows[i]);
                    self.out.rows.push(project(self.columns, row));
                    if self.with_keys {
                        self.out.keys.push(batch.key(i).clone());
                    }
                }
                Ok(self.out.rows.len() < *limit)
            }
            (Stage::TopN { keys, count, best }, Prepared::TopN(mut vectors)) => {
                for (k, &i) in sel.iter().enumerate() {
                    let values = vectors
                        .iter_mut()
                        .map(|v| v.take(&batch.rows, sel, k))
                        .collect();
                    best.push((values, std::mem::take(&mut batch.rows[i as usize])));
                    rows_budget(best.len())?;
                    if best.len() >= count.saturating_mul(2).max(TOP_N_BUFFER_MIN) {
                        cut_top_n(keys, *count, best);
                    }
                }
                Ok(true)
            }
            (Stage::Partial { calls, grouper, .. }, Prepared::Partial(agg)) => {
                grouper.add_batch(calls, agg, &batch.rows, sel)?;
                rows_budget(grouper.len())?;
                Ok(true)
            }
            _ => unreachable!("a batch is prepared for its sink's stage"),
        }
    }

    /// Takes one row; false once no more are wanted.
    fn push(&mut self, key: &Bytes, row: Row) -> Result<bool, SqlError> {
        let env = self.env;
        match &mut self.stage {
            Stage::Rows { limit } => {
                if self.out.rows.len() >= *limit {
                    return Ok(false);
                }
                rows_budget(self.out.rows.len() + 1)?;
                self.out.rows.push(project(self.columns, row));
                if self.with_keys {
                    self.out.keys.push(key.clone());
                }
                Ok(self.out.rows.len() < *limit)
            }
            Stage::TopN { keys, count, best } => {
                let mut values = Vec::with_capacity(keys.len());
                for k in keys.iter() {
                    values.push(eval(&k.expr, &Eval::over_row(env, &row))?);
                }
                best.push((values, row));
                rows_budget(best.len())?;
                if best.len() >= count.saturating_mul(2).max(TOP_N_BUFFER_MIN) {
                    cut_top_n(keys, *count, best);
                }
                Ok(true)
            }
            Stage::Partial {
                groups,
                calls,
                grouper,
            } => {
                grouper.add(groups, calls, &row, &|b, r| {
                    eval(b, &Eval::over_row(env, r))
                })?;
                rows_budget(grouper.len())?;
                Ok(true)
            }
        }
    }

    fn finish(mut self) -> Result<ScanRows, SqlError> {
        match self.stage {
            Stage::Rows { .. } => {}
            Stage::TopN {
                keys,
                count,
                mut best,
            } => {
                cut_top_n(keys, count, &mut best);
                for (values, row) in best {
                    self.out.sort_keys.push(values);
                    self.out.rows.push(project(self.columns, row));
                }
            }
            Stage::Partial { grouper, .. } => self.out.groups = grouper.into_partials(),
        }
        Ok(self.out)
    }
}

/// Sorts the buffered rows (stably: ties stay in scan order) and keeps the first `count`.
fn cut_top_n(keys: &[SortKey], count: usize, best: &mut Vec<(Row, Row)>) {
    best.sort_by(|(a, _), (b, _)| exec::compare_sort_keys(keys, a, b));
    best.truncate(count);
}

/// The row's values at `columns` (all of them when None).
fn project(columns: Option<&[usize]>, mut row: Row) -> Row {
    match columns {
        None => row,
        Some(columns) => columns
            .iter()
            .map(|&c| std::mem::replace(&mut row[c], Datum::Null))
            .collect(),
    }
}

/// Applies a write fragment. Outside a transaction its rows are locked for the length of one
/// batch, which is written at once; inside one, the rows stay locked and the changes become
/// the transaction's intents (see [`crate::txn`]). The caller waits for durability up to the
/// returned lsn (0: nothing to wait for).
///
/// `catalog` is the shard's installed one: a fragment for a table an ALTER TABLE froze is
/// refused (40001), checked again once its rows are locked, since the freeze may arrive
/// while it waits (the ALTER then waits for the locks it holds: [`ShardTxns::writers_of`]).
#[allow(clippy::too_many_arguments)]
pub async fn write_fragment<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    txns: &ShardTxns,
    graph: &WaitGraph,
    shard: usize,
    catalog: &std::cell::RefCell<Arc<Catalog>>,
    req: &WriteRequest,
) -> Result<WriteOutcome, SqlError> {
    // Frozen tables this transaction already holds rows of here, judged before this
    // fragment takes any lock: the ALTER is still waiting for those, so it will see these
    // rows too. (A lock taken while the ALTER was past waiting must not count.)
    let exempt: Vec<u32> = match &req.txn {
        Some(ctx) => catalog
            .borrow()
            .frozen_in(&req.ops)
            .into_iter()
            .filter(|&id| txns.holds_rows_of(ctx.id, &crate::rowcodec::table_prefix(id)))
            .collect(),
        None => Vec::new(),
    };
    catalog
        .borrow()
        .refuse_frozen_writes(&req.ops, &exempt, req.txn.as_ref().map(|c| c.id))?;
    let Some(ctx) = &req.txn else {
        // Outside a transaction (COPY, table rewrites, index builds), only keys another
        // transaction may be inserting or changing need locks: overwrites here are of rows
        // only the statement itself can reach.
        let keys: Vec<Bytes> = req
            .ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    RowOp::Insert { .. } | RowOp::Modify { .. } | RowOp::ModifyHolder { .. }
                )
            })
            .map(|op| op.key().clone())
            .collect();
        let transient = txns.transient_id(shard);
        txns.lock(
            graph,
            rt,
            shard,
            transient,
            &keys,
            LockMode::Exclusive,
            &LockWait::default(),
        )
        .await?;
        let refused = catalog.borrow().refuse_frozen_writes(&req.ops, &[], None);
        let written = match refused {
            Ok(()) => write_local(lsm, req).await,
            Err(e) => Err(e),
        };
        txns.unlock_transient(transient, &keys);
        return written;
    };
    let only_new_rows =
        req.indexes.is_empty() && req.ops.iter().all(|op| matches!(op, RowOp::Append { .. }));
    if only_new_rows {
        // Fresh row ids (COPY into a table without a primary key or indexes): nothing to
        // lock, read or check, and the rows stay apart from the ordered intents until
        // something reads or rolls back those (each batch merged into them would cost a
        // tree insert per row).
        let (batch, mut outcome) = build_batch(lsm, &ReadView::default(), req).await?;
        txns.add_appended(ctx.id, ctx.mark, batch)?;
        outcome.lsn = 0;
        return Ok(outcome);
    }
    // An UPDATE that changes no key column takes the weaker lock FOR KEY SHARE holders (a
    // foreign key's check) let through; every other write the exclusive one.
    let mut no_key = Vec::new();
    let mut exclusive = Vec::with_capacity(req.ops.len());
    for op in req
        .ops
        .iter()
        .filter(|op| !matches!(op, RowOp::Append { .. }))
    {
        match keeps_keys(op, &req.indexes) {
            true => no_key.push(op.key().clone()),
            false => exclusive.push(op.key().clone()),
        }
    }
    for (keys, mode) in [
        (exclusive, LockMode::Exclusive),
        (no_key, LockMode::NoKeyExclusive),
    ] {
        if !keys.is_empty() {
            txns.lock(graph, rt, shard, ctx.id, &keys, mode, &ctx.wait)
                .await?;
        }
    }
    // The transaction's locks go when it ends, with the rest of its state.
    catalog
        .borrow()
        .refuse_frozen_writes(&req.ops, &exempt, req.txn.as_ref().map(|c| c.id))?;
    let view = ReadView {
        overlay: txns.view(Some(ctx))?.overlay,
        snapshot: None,
    };
    if ctx.isolation == crate::txn::Isolation::RepeatableRead {
        let changes_existing =
            |op: &RowOp| !matches!(op, RowOp::Insert { .. } | RowOp::Append { .. });
        let keys: Vec<Bytes> = req
            .ops
            .iter()
            .filter(|op| changes_existing(op))
            .map(|op| op.key().clone())
            .collect();
        unchanged_since_snapshot(lsm, txns, ctx, &view, &keys).await?;
    }
    let (batch, mut outcome) = build_batch(lsm, &view, req).await?;
    txns.add_intents(ctx.id, ctx.mark, batch)?;
    outcome.lsn = 0;
    Ok(outcome)
}

/// Whether a write changes an existing row without touching its key columns (the primary
/// key's and every unique index's): PostgreSQL's FOR NO KEY UPDATE case.
fn keeps_keys(op: &RowOp, indexes: &[crate::index::IndexSpec]) -> bool {
    let spec = match op {
        RowOp::Modify {
            insert: None, spec, ..
        }
        | RowOp::ModifyHolder { spec, .. } => spec,
        _ => return false,
    };
    let is_key = |c: usize| {
        spec.table.primary_key.contains(&c)
            || indexes.iter().any(|i| i.unique && i.columns.contains(&c))
    };
    spec.sets.iter().all(|(c, _)| !is_key(*c))
}

/// REPEATABLE READ's first-committer-wins rule: a row the transaction has not written yet may
/// only be changed if its newest committed version is the one the snapshot sees.
pub(crate) async fn unchanged_since_snapshot<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    txns: &ShardTxns,
    ctx: &crate::txn::TxnCtx,
    view: &ReadView,
    keys: &[Bytes],
) -> Result<(), SqlError> {
    let at_snapshot = txns.view(Some(ctx))?;
    for key in keys {
        if view.intent(key).is_some() {
            continue;
        }
        let newest = lsm.get(key, None).await.map_err(storage_error)?;
        let seen = lsm
            .get(key, at_snapshot.snapshot.as_ref())
            .await
            .map_err(storage_error)?;
        if newest != seen {
            return Err(SqlError::new(
                crate::txn::SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            ));
        }
    }
    Ok(())
}

/// Applies a write fragment as one batch, at once. The caller keeps other writers off its
/// rows (see [`write_fragment`]) and waits for durability up to the returned lsn.
pub async fn write_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    req: &WriteRequest,
) -> Result<WriteOutcome, SqlError> {
    let (batch, mut outcome) = build_batch(lsm, &ReadView::default(), req).await?;
    if batch.is_empty() {
        outcome.lsn = lsm.wal().last_lsn();
        return Ok(outcome);
    }
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    outcome.lsn = lsm.write_owned(batch).map_err(storage_error)?;
    Ok(outcome)
}

/// The batch a write fragment makes, reading the rows it checks and changes through `view`.
async fn build_batch<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    view: &ReadView,
    req: &WriteRequest,
) -> Result<(WriteBatch, WriteOutcome), SqlError> {
    let mut batch = WriteBatch::new();
    let mut outcome = WriteOutcome::default();
    // Keys inserted earlier in this batch count as existing.
    let mut inserted: HashSet<&Bytes> = HashSet::new();
    // Keys `Modify` ops handled in this batch: each row at most once (a second change would
    // read the tree's version, not the batch's).
    let mut modified_keys: HashSet<&Bytes> = HashSet::new();
    // Keys deleted earlier in this batch count as absent (a unique claim released and taken
    // again by the row's new key, when an UPDATE changes a primary key).
    let mut deleted: HashSet<&Bytes> = HashSet::new();
    for op in &req.ops {
        match op {
            RowOp::Insert {
                key,
                value,
                if_absent,
            } => {
                let existing = if inserted.contains(key) {
                    Some(None)
                } else if deleted.remove(key) {
                    None
                } else {
                    view.get(lsm, key).await?.map(Some)
                };
                if let Some(existing) = existing {
                    if *if_absent {
                        outcome.skipped.push((key.clone(), existing));
                        continue;
                    }
                    return Err(SqlError::new(
                        UNIQUE_VIOLATION,
                        format!(
                            "duplicate key value violates unique constraint \"{}\"",
                            req.constraint
                        ),
                    )
                    .with_conflict_key(key));
                }
                inserted.insert(key);
                batch.put(key.clone(), value.clone());
            }
            RowOp::Put { key, value } | RowOp::Append { key, value } => {
                batch.put(key.clone(), value.clone())
            }
            RowOp::Delete { key } => {
                inserted.remove(key);
                deleted.insert(key);
                batch.delete(key.clone())
            }
            RowOp::Replace {
                key,
                value,
                expected,
                width,
            } => {
                let current = match view.get(lsm, key).await? {
                    Some(v) => Some(rowcodec::encode_row(
                        &decode_row(&v, *width).map_err(storage_error)?,
                    )),
                    None => None,
                };
                if current.as_ref() != Some(expected) {
                    return Err(SqlError::new(
                        crate::txn::SERIALIZATION_FAILURE,
                        "could not serialize access due to concurrent update",
                    ));
                }
                match value {
                    Some(v) => batch.put(key.clone(), v.clone()),
                    None => {
                        deleted.insert(key);
                        batch.delete(key.clone())
                    }
                }
            }
            RowOp::DeleteIf { key, spec } => {
                let Some(current) = view.get(lsm, key).await? else {
                    continue;
                };
                let row = decode_row(&current, spec.table.columns.len()).map_err(storage_error)?;
                if !passes(spec.filter.as_ref(), &spec.env, &row)? {
                    continue;
                }
                batch.delete(key.clone());
                outcome.modified.push(row);
            }
            RowOp::Release { key, holder } => {
                if view.get(lsm, key).await?.as_ref() != Some(holder) {
                    continue;
                }
                deleted.insert(key);
                batch.delete(key.clone())
            }
            RowOp::ModifyHolder {
                key,
                excluded,
                spec,
            } => {
                if !modified_keys.insert(key) || inserted.contains(key) {
                    return Err(SqlError::new(
                        CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    ));
                }
                let Some(current) = view.get(lsm, key).await? else {
                    return Err(SqlError::new(
                        crate::txn::SERIALIZATION_FAILURE,
                        "could not serialize access due to concurrent delete",
                    ));
                };
                let width = spec.table.columns.len();
                let mut input = decode_row(&current, width).map_err(storage_error)?;
                input.extend(decode_row(excluded, width).map_err(storage_error)?);
                let Some(new_row) = modify_row(spec, &input[..width], &input)? else {
                    continue;
                };
                batch.put(key.clone(), rowcodec::encode_row(&new_row));
                outcome.modified.push(new_row);
            }
            RowOp::Modify { key, insert, spec } => {
                if !modified_keys.insert(key) || inserted.contains(key) {
                    return Err(SqlError::new(
                        CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    ));
                }
                let current = view.get(lsm, key).await?;
                let width = spec.table.columns.len();
                let new_row = match (current, insert) {
                    (None, None) => continue,
                    (None, Some(value)) => {
                        inserted.insert(key);
                        decode_row(value, width).map_err(storage_error)?
                    }
                    (Some(old), proposed) => {
                        let mut input = decode_row(&old, width).map_err(storage_error)?;
                        let old_width = input.len();
                        if let Some(p) = proposed {
                            input.extend(decode_row(p, width).map_err(storage_error)?);
                        }
                        match modify_row(spec, &input[..old_width], &input)? {
                            Some(row) => row,
                            None => continue,
                        }
                    }
                };
                batch.put(key.clone(), rowcodec::encode_row(&new_row));
                outcome.modified.push(new_row);
            }
        }
        outcome.applied += 1;
    }
    if !req.indexes.is_empty() {
        add_index_entries(lsm, view, &req.indexes, &mut batch, &mut outcome.claims).await?;
    }
    Ok((batch, outcome))
}

impl RowOp {
    /// The row key the op changes.
    pub(crate) fn key(&self) -> &Bytes {
        match self {
            RowOp::Insert { key, .. }
            | RowOp::Put { key, .. }
            | RowOp::Append { key, .. }
            | RowOp::Delete { key }
            | RowOp::Release { key, .. }
            | RowOp::DeleteIf { key, .. }
            | RowOp::Replace { key, .. }
            | RowOp::Modify { key, .. }
            | RowOp::ModifyHolder { key, .. } => key,
        }
    }
}

/// Adds to a batch of row writes the index entries they change: for each row written, the
/// entries of its previous version (the batch's own earlier write of it, else the tree's)
/// are deleted and those of the new version put, skipping entries that stay the same.
async fn add_index_entries<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    view: &ReadView,
    specs: &[crate::index::IndexSpec],
    batch: &mut WriteBatch,
    claims: &mut Vec<crate::index::Claim>,
) -> Result<(), SqlError> {
    use helios_engine::lsm::key::ValueKind;
    let width = specs.iter().map(|s| s.width()).max().unwrap_or(0);
    let entries_of = |row_key: &[u8], value: &Bytes| -> Result<Vec<Bytes>, SqlError> {
        let row = decode_row(value, width).map_err(storage_error)?;
        let mut entries = Vec::with_capacity(specs.len());
        for spec in specs {
            entries.extend(crate::index::entry_key(spec, &row, row_key)?);
        }
        Ok(entries)
    };
    let unique: Vec<&crate::index::IndexSpec> = specs.iter().filter(|s| s.unique).collect();
    let claims_of = |value: Option<&Bytes>| -> Result<Vec<Option<Bytes>>, SqlError> {
        let Some(value) = value else {
            return Ok(vec![None; unique.len()]);
        };
        let row = decode_row(value, width).map_err(storage_error)?;
        unique
            .iter()
            .map(|spec| crate::index::claim_key(spec, &row))
            .collect()
    };
    let writes: Vec<(ValueKind, Bytes, Bytes)> = batch.entries().to_vec();
    let mut latest: HashMap<Bytes, Option<Bytes>> = HashMap::new();
    let mut changes: Vec<(bool, Bytes)> = Vec::new();
    for (kind, key, value) in writes {
        if key.first() != Some(&rowcodec::ROW_PREFIX) {
            continue;
        }
        let old = match latest.get(&key) {
            Some(v) => v.clone(),
            None => view.get(lsm, &key).await?,
        };
        let new = (kind == ValueKind::Put).then_some(value);
        let old_entries = match &old {
            Some(v) => entries_of(&key, v)?,
            None => Vec::new(),
        };
        let new_entries = match &new {
            Some(v) => entries_of(&key, v)?,
            None => Vec::new(),
        };
        for e in &old_entries {
            if !new_entries.contains(e) {
                changes.push((false, e.clone()));
            }
        }
        for e in new_entries {
            if !old_entries.contains(&e) {
                changes.push((true, e));
            }
        }
        if !unique.is_empty() {
            let before = claims_of(old.as_ref())?;
            let after = claims_of(new.as_ref())?;
            for ((spec, old), new) in unique.iter().zip(before).zip(after) {
                if old != new {
                    claims.push(crate::index::Claim {
                        index_id: spec.id,
                        old,
                        new,
                        row_key: key.clone(),
                    });
                }
            }
        }
        latest.insert(key, new);
    }
    for (put, entry) in changes {
        if put {
            batch.put(entry, Bytes::new());
        } else {
            batch.delete(entry);
        }
    }
    Ok(())
}

/// The new version of `current` under `spec` (None: its filter is not true). `input` is what
/// the expressions read: the current row, or the current row followed by the proposed one.
fn modify_row(
    spec: &ModifySpec,
    current: &[Datum],
    input: &[Datum],
) -> Result<Option<Row>, SqlError> {
    if !passes(spec.filter.as_ref(), &spec.env, input)? {
        return Ok(None);
    }
    let cx = Eval::over_row(&spec.env, input);
    let mut row = current.to_vec();
    for (column, value) in &spec.sets {
        let def = &spec.table.columns[*column];
        row[*column] = match value {
            SetValue::Value(d) => d.clone(),
            SetValue::Expr(b) => crate::stmt::assign(eval(b, &cx)?, b.ty, def, &spec.env.style)
                .map_err(|e| crate::stmt::assignment_error_at(e, b))?,
        };
    }
    if let Some((_, what)) = spec.fixed.iter().find(|(c, _)| row[*c] != current[*c]) {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!("ON CONFLICT DO UPDATE that changes {what} is not supported"),
        ));
    }
    crate::stmt::verify_row(&spec.table, &spec.checks, &row, &spec.env)?;
    Ok(Some(row))
}

/// The shard side of [`Cluster::ingest`]: `rows` sorted ([`PackedEntries::sort`]).
pub async fn ingest_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rows: PackedEntries,
) -> Result<(), SqlError> {
    // A large load ingests many overlapping batches, each landing one level higher, down to
    // level 0: wait, as a writer does, until compaction has room for more.
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    lsm.ingest(Arc::new(rows)).await.map_err(storage_error)
}

pub async fn delete_table_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    table_id: u32,
) -> Result<u64, SqlError> {
    delete_prefix_local(lsm, rt, &table_prefix(table_id)).await?;
    // Its unique indexes' claims (they live on whichever shards their values hash to).
    delete_prefix_local(lsm, rt, &crate::index::claim_table_prefix(table_id)).await
}

/// Deletes every key starting with `prefix` on this shard, in batches; returns the lsn to
/// wait for.
pub(crate) async fn delete_prefix_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    prefix: &[u8],
) -> Result<u64, SqlError> {
    const DELETE_BATCH_KEYS: usize = 4096;
    // Each round resumes after the last key it deleted: seeking from the prefix again would
    // step over every tombstone written so far (quadratic in the table's size).
    let mut resume: Vec<u8> = prefix.to_vec();
    loop {
        let mut keys: Vec<Bytes> = Vec::with_capacity(DELETE_BATCH_KEYS);
        {
            let mut iter = lsm.iter(helios_engine::lsm::ReadOptions {
                snapshot: None,
                upper_bound: helios_engine::lsm::prefix_upper_bound(prefix),
            });
            iter.seek(&resume).await.map_err(storage_error)?;
            while iter.valid() && keys.len() < DELETE_BATCH_KEYS {
                keys.push(iter.key().clone());
                iter.next().await.map_err(storage_error)?;
            }
        }
        let Some(last) = keys.last() else {
            return Ok(lsm.wal().last_lsn());
        };
        // The smallest key after `last`.
        resume = last.to_vec();
        resume.push(0);
        let mut batch = WriteBatch::new();
        for k in keys {
            batch.delete(k);
        }
        lsm.wait_for_write_room().await.map_err(storage_error)?;
        lsm.write_owned(batch).map_err(storage_error)?;
        rt.yield_if_needed().await;
    }
}

/// Shard 0, before applying `req`: a [`DdlChange::SettlePending`] learns from the DDL
/// markers which pending blocks committed.
pub async fn settle_markers<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    catalog: &Catalog,
    req: &mut DdlRequest,
) -> Result<(), SqlError> {
    let DdlChange::SettlePending { committed } = &mut req.change else {
        return Ok(());
    };
    for &txn in catalog.pending.keys() {
        let marker = lsm
            .get(&crate::ddl_undo::marker_key(txn), None)
            .await
            .map_err(storage_error)?;
        if marker.as_deref() == Some(crate::ddl_undo::MARKER_COMMITTED) {
            committed.push(txn);
        }
    }
    Ok(())
}

/// Reads the persisted catalog from shard 0's tree (None: a fresh server).
pub async fn load_catalog<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
) -> Result<Option<Catalog>, String> {
    match lsm
        .get(rowcodec::CATALOG_KEY, None)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(bytes) => Catalog::decode(&bytes).map(|mut catalog| {
            catalog.forget_builds();
            Some(catalog)
        }),
        None => Ok(None),
    }
}

/// Writes the catalog into shard 0's tree, with the DDL markers a change put or deleted
/// ([`DdlOutcome::markers`]) in the same batch; returns the lsn to make durable.
pub async fn store_catalog<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    catalog: &Catalog,
    markers: &[(u64, bool)],
) -> Result<u64, SqlError> {
    let mut batch = WriteBatch::new();
    batch.put(
        Bytes::from_static(rowcodec::CATALOG_KEY),
        Bytes::from(catalog.encode()),
    );
    for &(txn, pending) in markers {
        let key = crate::ddl_undo::marker_key(txn);
        if pending {
            batch.put(key, Bytes::from_static(crate::ddl_undo::MARKER_PENDING));
        } else {
            batch.delete(key);
        }
    }
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    lsm.write_owned(batch).map_err(storage_error)
}

/// Lets the executor run its other ready tasks once before this one goes on.
pub(crate) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Sorts `rows` ([`PackedEntries::sort`]) on both cores: the helper thread sorts the larger
/// half of the buckets while this shard sorts the smaller, a few at a time (its other
/// clients get turns in between). The helper deals them into buckets first, and sorts them
/// all where a few buckets hold most of them.
pub(crate) async fn sort_on_both_cores<C: Cluster>(
    cluster: &C,
    rows: PackedEntries,
) -> PackedEntries {
    let (first, second) = match cluster.offload(move || rows.split_sort()).await {
        Ok(halves) => halves,
        Err(sorted) => return sorted,
    };
    let shard_takes_first = first.len() <= second.len();
    let (mut mine, theirs) = if shard_takes_first {
        (first, second)
    } else {
        (second, first)
    };
    let theirs = cluster.offload(move || theirs.sort_all());
    while !mine.sort_some(SORT_ENTRIES_PER_TURN) {
        yield_once().await;
    }
    let theirs = theirs.await;
    if shard_takes_first {
        PackedEntries::join_sorted(mine, theirs)
    } else {
        PackedEntries::join_sorted(theirs, mine)
    }
}

/// Entries a shard sorts between turns for its other tasks: a millisecond or so.
const SORT_ENTRIES_PER_TURN: usize = 16_384;

pub(crate) fn storage_error(e: impl std::fmt::Display) -> SqlError {
    SqlError::new("58030", format!("storage error: {e}"))
}
