//! The boundary between SQL and the shards: what a coordinator asks of the cluster
//! ([`Cluster`]), the fragments it sends ([`ScanRequest`], [`WriteRequest`]), and how a shard
//! runs them over its own LSM tree ([`scan_local`], [`write_local`], [`delete_table_local`]).
//!
//! Fragments are plain `Send` values: within one process they travel between shard threads
//! over the mesh without serialization.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use helios_engine::fs::FileSystem;
use helios_engine::lsm::{Lsm, WriteBatch};
use helios_engine::rt::Runtime;

use crate::catalog::{Catalog, DdlChange, DdlOutcome, Table};
use crate::error::*;
use crate::exec::Row;
use crate::expr::{eval, Bound, Env, Eval};
use crate::rowcodec::{self, decode_row, table_prefix};
use crate::types::Datum;

/// What the SQL layer needs from the cluster of shards. Implemented by the server over its
/// shard mesh, and by an in-memory model in tests.
#[allow(async_fn_in_trait)]
pub trait Cluster {
    /// The current catalog.
    fn catalog(&self) -> Arc<Catalog>;
    fn shard_count(&self) -> usize;
    /// The shard that owns a row token.
    fn shard_of_token(&self, token: u64) -> usize;
    /// Applies a catalog change on the catalog's owner (durably), then deletes the rows of
    /// dropped tables everywhere.
    async fn ddl(&self, change: DdlChange) -> Result<DdlOutcome, SqlError>;
    async fn scan(&self, shard: usize, req: ScanRequest) -> Result<ScanRows, SqlError>;
    /// Applies row writes on one shard as one atomic batch; answered once durable.
    async fn write(&self, shard: usize, req: WriteRequest) -> Result<WriteOutcome, SqlError>;
    /// Deletes every row of a table on one shard.
    async fn truncate(&self, shard: usize, table_id: u32) -> Result<(), SqlError>;
}

/// A scan fragment: one table's rows on one shard, filtered there.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub(crate) table: Arc<Table>,
    pub(crate) filter: Option<Bound>,
    pub(crate) env: Env,
    /// Read only this row key (a point lookup on the whole primary key).
    pub(crate) point: Option<Bytes>,
    /// Return each row's storage key too (UPDATE and DELETE).
    pub(crate) with_keys: bool,
}

#[derive(Debug, Default)]
pub struct ScanRows {
    pub(crate) rows: Vec<Row>,
    pub(crate) keys: Vec<Bytes>,
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
    Delete {
        key: Bytes,
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
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    /// Rows inserted (not skipped), overwritten or deleted.
    pub applied: u64,
    /// Indexes of `Insert { if_absent: true }` ops that were skipped, counted.
    pub skipped: u64,
    /// The WAL position the write must be durable to before it is acknowledged.
    pub lsn: u64,
    /// The rows `Modify` ops wrote (updated or inserted), in op order.
    pub(crate) modified: Vec<Row>,
}

/// Rows a scan fragment returns in one reply, at most (bounded by the statement budget).
pub const SCAN_ROWS_MAX: usize = crate::exec::STATEMENT_ROWS_MAX;

/// Runs a scan fragment over this shard's tree.
pub async fn scan_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    req: &ScanRequest,
) -> Result<ScanRows, SqlError> {
    let width = req.table.columns.len();
    let mut out = ScanRows::default();
    let keep = |key: &Bytes, value: &Bytes, out: &mut ScanRows| -> Result<(), SqlError> {
        let row = decode_row(value, width).map_err(storage_error)?;
        if let Some(f) = &req.filter {
            let cx = Eval {
                env: &req.env,
                row: &row,
                outer: None,
                inputs: None,
            };
            if eval(f, &cx)? != Datum::Bool(true) {
                return Ok(());
            }
        }
        if out.rows.len() >= SCAN_ROWS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("a scan returns at most {SCAN_ROWS_MAX} rows"),
            ));
        }
        out.rows.push(row);
        if req.with_keys {
            out.keys.push(key.clone());
        }
        Ok(())
    };
    if let Some(key) = &req.point {
        if let Some(value) = lsm.get(key, None).await.map_err(storage_error)? {
            keep(key, &value, &mut out)?;
        }
        return Ok(out);
    }
    let prefix = table_prefix(req.table.id);
    let mut iter = lsm
        .prefix_iter(&prefix, None)
        .await
        .map_err(storage_error)?;
    let mut seen = 0u64;
    while iter.valid() {
        keep(iter.key(), iter.value(), &mut out)?;
        iter.next().await.map_err(storage_error)?;
        seen += 1;
        if seen.is_multiple_of(1024) {
            req.env.check_cancelled()?;
            rt.yield_if_needed().await;
        }
    }
    Ok(out)
}

/// Applies a write fragment as one batch. The caller serializes SQL writes on the shard (the
/// existence checks and the batch must not interleave with another statement's) and waits
/// for durability up to the returned lsn.
pub async fn write_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    req: &WriteRequest,
) -> Result<WriteOutcome, SqlError> {
    let mut batch = WriteBatch::new();
    let mut outcome = WriteOutcome::default();
    // Keys inserted earlier in this batch count as existing.
    let mut inserted: HashSet<&Bytes> = HashSet::new();
    // Keys `Modify` ops handled in this batch: each row at most once (a second change would
    // read the tree's version, not the batch's).
    let mut modified_keys: HashSet<&Bytes> = HashSet::new();
    for op in &req.ops {
        match op {
            RowOp::Insert {
                key,
                value,
                if_absent,
            } => {
                let exists = inserted.contains(key)
                    || lsm.get(key, None).await.map_err(storage_error)?.is_some();
                if exists {
                    if *if_absent {
                        outcome.skipped += 1;
                        continue;
                    }
                    return Err(SqlError::new(
                        UNIQUE_VIOLATION,
                        format!(
                            "duplicate key value violates unique constraint \"{}\"",
                            req.constraint
                        ),
                    ));
                }
                inserted.insert(key);
                batch.put(key.clone(), value.clone());
            }
            RowOp::Put { key, value } => batch.put(key.clone(), value.clone()),
            RowOp::Delete { key } => batch.delete(key.clone()),
            RowOp::Modify { key, insert, spec } => {
                if !modified_keys.insert(key) || inserted.contains(key) {
                    return Err(SqlError::new(
                        CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    ));
                }
                let current = lsm.get(key, None).await.map_err(storage_error)?;
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
    if batch.is_empty() {
        outcome.lsn = lsm.wal().last_lsn();
        return Ok(outcome);
    }
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    outcome.lsn = lsm.write_owned(batch).map_err(storage_error)?;
    Ok(outcome)
}

/// The new version of `current` under `spec` (None: its filter is not true). `input` is what
/// the expressions read: the current row, or the current row followed by the proposed one.
fn modify_row(
    spec: &ModifySpec,
    current: &[Datum],
    input: &[Datum],
) -> Result<Option<Row>, SqlError> {
    let cx = Eval {
        env: &spec.env,
        row: input,
        outer: None,
        inputs: None,
    };
    if let Some(f) = &spec.filter {
        if eval(f, &cx)? != Datum::Bool(true) {
            return Ok(None);
        }
    }
    let mut row = current.to_vec();
    for (column, value) in &spec.sets {
        let def = &spec.table.columns[*column];
        row[*column] = match value {
            SetValue::Value(d) => d.clone(),
            SetValue::Expr(b) => {
                crate::stmt::assign(eval(b, &cx)?, b.ty, def, spec.env.float_digits)?
            }
        };
    }
    crate::stmt::verify_row(&spec.table, &spec.checks, &row, &spec.env)?;
    Ok(Some(row))
}

/// Deletes every row of a table on this shard, in batches; returns the lsn to wait for.
pub async fn delete_table_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    table_id: u32,
) -> Result<u64, SqlError> {
    const DELETE_BATCH_KEYS: usize = 4096;
    let prefix = table_prefix(table_id);
    loop {
        let mut keys = Vec::with_capacity(DELETE_BATCH_KEYS);
        {
            let mut iter = lsm
                .prefix_iter(&prefix, None)
                .await
                .map_err(storage_error)?;
            while iter.valid() && keys.len() < DELETE_BATCH_KEYS {
                keys.push(iter.key().clone());
                iter.next().await.map_err(storage_error)?;
            }
        }
        if keys.is_empty() {
            return Ok(lsm.wal().last_lsn());
        }
        let mut batch = WriteBatch::new();
        for k in keys {
            batch.delete(k);
        }
        lsm.wait_for_write_room().await.map_err(storage_error)?;
        lsm.write_owned(batch).map_err(storage_error)?;
        rt.yield_if_needed().await;
    }
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
        Some(bytes) => Catalog::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Writes the catalog into shard 0's tree; returns the lsn to make durable.
pub async fn store_catalog<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    catalog: &Catalog,
) -> Result<u64, SqlError> {
    let mut batch = WriteBatch::new();
    batch.put(
        Bytes::from_static(rowcodec::CATALOG_KEY),
        Bytes::from(catalog.encode()),
    );
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    lsm.write_owned(batch).map_err(storage_error)
}

pub(crate) fn storage_error(e: impl std::fmt::Display) -> SqlError {
    SqlError::new("58030", format!("storage error: {e}"))
}
