//! Running a statement's fetches as shard fragments and putting their replies together: the
//! coordinator's half of distributed execution. What each fragment does is decided when the
//! statement is planned (`Fetch::push`, see `pushdown.rs`); here it is turned into a
//! [`ScanRequest`] with this execution's values (LIMIT counts, point keys), sent to the
//! shards that can hold its rows, and the replies are concatenated, merged (top-N) or
//! combined (partial aggregates) in shard order.

use std::sync::Arc;

use std::collections::HashMap;

use bytes::Bytes;

use crate::cluster::{
    BroadcastSide, Cluster, ColocatedSide, FragmentOutput, FragmentPush, JoinFragment, ScanRequest,
    ScanRows,
};
use crate::error::*;
use crate::exec::{self, Inputs, Row, STATEMENT_ROWS_MAX};
use crate::expr::{eval, Bound, Env, Eval};
use crate::plan::{Fetch, FetchOutput, JoinKind, JoinMethod, ShardJoin};
use crate::rowcodec;
use crate::stmt::point_key;
use crate::types::Datum;

/// Runs every fetch on the shards that hold its rows, in parallel.
pub(crate) async fn fetch_all<C: Cluster>(
    cluster: &C,
    fetches: &[Fetch],
    env: &Env,
) -> Result<Inputs, SqlError> {
    let mut inputs = Inputs::default();
    let mut total = 0usize;
    for f in fetches {
        env.check_cancelled()?;
        // A table read by another fetch's co-located join is not fetched on its own.
        let rows = if f.push.absorbed {
            Vec::new()
        } else {
            fetch(cluster, f, fetches, env, false).await?.rows
        };
        total += rows.len();
        if total > STATEMENT_ROWS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("statement would read more than {STATEMENT_ROWS_MAX} rows"),
            ));
        }
        inputs.tables.push(rows);
        inputs.layouts.push(layout(f));
    }
    Ok(inputs)
}

/// Where a fetch's narrowed values go in its full row (None: its rows are whole).
fn layout(f: &Fetch) -> Option<(Vec<usize>, usize)> {
    if matches!(f.push.output, FetchOutput::PartialAggregate { .. }) {
        return None;
    }
    let columns = f.push.columns.clone()?;
    Some((columns, f.row_width()))
}

/// Rows a broadcast join sends to the shards at most, and their estimated bytes
/// ([`row_bytes`]). Every shard's fragment shares the one copy the coordinator hashed, so
/// the bound is on what one statement holds and what a fragment message refers to; it also
/// caps the cost of a wrong smaller-side guess. Above either, the coordinator joins (the
/// coordinator-only plan's cost, never more).
pub(crate) const BROADCAST_ROWS_MAX: usize = 100_000;
pub(crate) const BROADCAST_BYTES_MAX: usize = 16 << 20;

#[cfg(test)]
thread_local! {
    /// Tests make every broadcast side count as too big, to compare the fallback.
    static FALLBACK_FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes every broadcast join fall back to the coordinator (or not) on this thread.
#[cfg(test)]
pub(crate) fn force_fallback(forced: bool) {
    FALLBACK_FORCED.with(|f| f.set(forced));
}

fn fallback_forced() -> bool {
    #[cfg(test)]
    return FALLBACK_FORCED.with(|f| f.get());
    #[cfg(not(test))]
    false
}

/// One fetch: a point read on one shard when the filter pins the whole primary key, else a
/// scan on every shard, with whatever the plan pushed into it. `fetches` are the statement's
/// (a join reads its other side's table and filter there).
pub(crate) async fn fetch<C: Cluster>(
    cluster: &C,
    f: &Fetch,
    fetches: &[Fetch],
    env: &Env,
    with_keys: bool,
) -> Result<ScanRows, SqlError> {
    assert!(!f.push.absorbed, "an absorbed fetch is read by its join");
    let point = point_key(&f.table, f.filter.as_ref(), env)?;
    let mut fits = true;
    let broadcast = match &f.push.join {
        Some(j) if matches!(j.method, JoinMethod::Broadcast { .. }) => {
            let side = broadcast_side(cluster, j, &fetches[j.other], env).await?;
            fits = side.rows.len() <= BROADCAST_ROWS_MAX
                && side.rows.iter().map(|r| row_bytes(r)).sum::<usize>() <= BROADCAST_BYTES_MAX
                && !fallback_forced();
            Some(side)
        }
        _ => None,
    };
    let push = fragment_push(f, fetches, env, broadcast)?;
    let right_point = match push.as_ref().and_then(|p| p.join.as_ref()) {
        Some(JoinFragment::Colocated(j)) => j.point.clone(),
        _ => None,
    };
    let req = ScanRequest {
        table: f.table.clone(),
        filter: f.filter.clone().map(Arc::new),
        env: Arc::new(env.clone()),
        point: point.clone(),
        index: index_range(cluster, f, point.is_some(), env)?,
        rows: None,
        with_keys,
        push: push.clone(),
        txn: None,
        lock: f.lock,
        pin: None,
        rekey: None,
    };
    if !fits {
        return coordinator_join(cluster, req, f).await;
    }
    let inner = f
        .push
        .join
        .as_ref()
        .is_none_or(|j| j.kind == JoinKind::Inner);
    // A pinned left row lives on one shard, and so do its matches; an inner co-located
    // join's rows all match a pinned right row, so they live on its shard.
    let only = match (&point, &right_point) {
        (Some(key), _) => Some(key),
        (None, Some(key)) if inner => Some(key),
        _ => None,
    };
    let replies = scan_shards_at(cluster, &req, only, f.newest).await?;
    gather(push.as_deref(), replies)
}

/// Every row of `table` from every shard, its stored value under its key in `rekey.table`
/// (a table rewrite that moves rows unchanged, outside any transaction); one unsorted
/// [`PackedEntries`] per shard read, in shard order.
pub(crate) async fn fetch_rekeyed<C: Cluster>(
    cluster: &C,
    table: &Arc<crate::catalog::Table>,
    rekey: crate::cluster::Rekey,
    env: &Env,
) -> Result<Vec<crate::PackedEntries>, SqlError> {
    let req = ScanRequest {
        rekey: Some(Arc::new(rekey)),
        ..whole_table_scan(table, env)
    };
    let replies = scan_shards(cluster, &req, None).await?;
    Ok(replies.into_iter().map(|reply| reply.rekeyed).collect())
}

/// The first `per_shard` rows of `table` on each shard, in storage-key (token) order, with
/// their keys; one reply per shard, in shard order. Tokens are hashes, so each shard's first
/// rows are a uniform sample of its rows (ANALYZE).
pub(crate) async fn fetch_sample<C: Cluster>(
    cluster: &C,
    table: &Arc<crate::catalog::Table>,
    env: &Env,
    per_shard: usize,
) -> Result<Vec<ScanRows>, SqlError> {
    let push = FragmentPush {
        join: None,
        columns: None,
        output: FragmentOutput::Rows {
            limit: Some(per_shard),
        },
    };
    let req = ScanRequest {
        with_keys: true,
        push: Some(Arc::new(push)),
        ..whole_table_scan(table, env)
    };
    scan_shards(cluster, &req, None).await
}

/// A request for every row of `table`, whole, as stored: no filter, no push, no keys.
fn whole_table_scan(table: &Arc<crate::catalog::Table>, env: &Env) -> ScanRequest {
    ScanRequest {
        table: table.clone(),
        filter: None,
        env: Arc::new(env.clone()),
        point: None,
        index: None,
        rows: None,
        with_keys: false,
        push: None,
        txn: None,
        lock: None,
        pin: None,
        rekey: None,
    }
}

/// Sends `req` to the shard holding row key `only`, or to every shard; the replies in
/// shard order.
async fn scan_shards<C: Cluster>(
    cluster: &C,
    req: &ScanRequest,
    only: Option<&Bytes>,
) -> Result<Vec<ScanRows>, SqlError> {
    scan_shards_at(cluster, req, only, false).await
}

/// [`scan_shards`]; with `newest`, at no snapshot: the newest committed rows and the
/// transaction's own, locks re-checked against the newest versions too ([`Fetch::newest`]).
async fn scan_shards_at<C: Cluster>(
    cluster: &C,
    req: &ScanRequest,
    only: Option<&Bytes>,
    newest: bool,
) -> Result<Vec<ScanRows>, SqlError> {
    let shards: Vec<usize> = match only {
        Some(key) => {
            let token = rowcodec::storage_key_token(key).expect("a row key has a token");
            vec![cluster.shard_of_token(token)]
        }
        None => (0..cluster.shard_count()).collect(),
    };
    let mut req = req.clone();
    (req.txn, req.pin) = match (crate::txn::ddl_scan_ctx(cluster, req.table.id), newest) {
        (Some(ddl), _) => (ddl, None),
        (None, false) => crate::txn::scan_ctx(cluster, only.is_some()).await?,
        (None, true) => (crate::txn::newest_ctx(cluster), None),
    };
    if req.lock.is_some() {
        // The shards keep the row locks until the transaction ends.
        for &s in &shards {
            crate::txn::write_ctx(cluster, s, req.table.id);
        }
    }
    // Only the fragments hold the snapshot's pin ticket now: the commit gate opens once
    // every one of them has pinned.
    if let [shard] = shards[..] {
        // A point read (or one shard): no join, no request copy.
        return Ok(vec![cluster.scan(shard, req).await?]);
    }
    let futures: Vec<_> = shards
        .iter()
        .map(|&s| cluster.scan(s, req.clone()))
        .collect();
    drop(req);
    futures_util::future::join_all(futures)
        .await
        .into_iter()
        .collect()
}

/// The index range a fetch's scan fragments read instead of the whole table (None: no
/// index helps, or a point read needs none).
fn index_range<C: Cluster>(
    cluster: &C,
    f: &Fetch,
    point: bool,
    env: &Env,
) -> Result<Option<crate::index::IndexRange>, SqlError> {
    if point || f.filter.is_none() {
        return Ok(None);
    }
    let specs = crate::index::specs_for(&cluster.catalog(), &f.table);
    crate::index::choose(&f.table, &specs, f.filter.as_ref(), env)
}

/// The filtered whole rows of a fetch that has nothing pushed into it.
async fn plain_rows<C: Cluster>(cluster: &C, f: &Fetch, env: &Env) -> Result<Vec<Row>, SqlError> {
    let point = point_key(&f.table, f.filter.as_ref(), env)?;
    let req = ScanRequest {
        table: f.table.clone(),
        filter: f.filter.clone().map(Arc::new),
        env: Arc::new(env.clone()),
        point: point.clone(),
        index: index_range(cluster, f, point.is_some(), env)?,
        rows: None,
        with_keys: false,
        push: None,
        txn: None,
        lock: f.lock,
        pin: None,
        rekey: None,
    };
    let replies = scan_shards(cluster, &req, point.as_ref()).await?;
    Ok(replies.into_iter().flat_map(|r| r.rows).collect())
}

/// Reads a broadcast join's other side and hashes it on its join keys.
async fn broadcast_side<C: Cluster>(
    cluster: &C,
    j: &ShardJoin,
    other: &Fetch,
    env: &Env,
) -> Result<BroadcastSide, SqlError> {
    let JoinMethod::Broadcast {
        left_keys,
        right_keys,
        other_is_left,
    } = &j.method
    else {
        unreachable!("a broadcast join");
    };
    assert!(
        other.push.absorbed && other.push.join.is_none(),
        "a plain broadcast side"
    );
    let rows = plain_rows(cluster, other, env).await?;
    let (keys, probe_keys) = if *other_is_left {
        (left_keys, right_keys)
    } else {
        (right_keys, left_keys)
    };
    let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let cx = Eval {
            env,
            row,
            outer: None,
            inputs: None,
        };
        let values = keys
            .iter()
            .map(|k| eval(k, &cx))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(key) = exec::join_key(values.iter()) {
            index.entry(key).or_default().push(i);
        }
    }
    Ok(BroadcastSide {
        rows,
        index,
        probe_keys: probe_keys.clone(),
        is_left: *other_is_left,
        kind: j.kind,
        residual: j.residual.clone(),
        width: j.other_width,
    })
}

/// A broadcast join whose other side is over the limits: the coordinator reads this side's
/// rows too and runs the fragment's pipeline (join, output stage, projection) over them.
async fn coordinator_join<C: Cluster>(
    cluster: &C,
    req: ScanRequest,
    f: &Fetch,
) -> Result<ScanRows, SqlError> {
    let rows = plain_rows(cluster, f, &req.env).await?;
    if rows.len() + other_rows_held(&req) > STATEMENT_ROWS_MAX {
        return Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("statement would read more than {STATEMENT_ROWS_MAX} rows"),
        ));
    }
    let reply = crate::cluster::broadcast_local(&req, rows)?;
    gather(req.push.as_deref(), vec![reply])
}

/// Rows of the other side a fragment request holds.
fn other_rows_held(req: &ScanRequest) -> usize {
    match req.push.as_deref().and_then(|p| p.join.as_ref()) {
        Some(JoinFragment::Broadcast(side)) => side.rows.len(),
        _ => 0,
    }
}

/// A row's size in memory, roughly: the values plus what they own on the heap.
fn row_bytes(row: &[Datum]) -> usize {
    row.iter().map(datum_bytes).sum::<usize>() + std::mem::size_of::<Row>()
}

fn datum_bytes(d: &Datum) -> usize {
    let heap = match d {
        Datum::Text(s) | Datum::Json(s) => s.len(),
        Datum::Bytes(b) => b.len(),
        Datum::Numeric(n) => n.digits() as usize / 2,
        Datum::Array(items) => items.iter().map(datum_bytes).sum(),
        _ => 0,
    };
    std::mem::size_of::<Datum>() + heap
}

/// The fragment's pushed-down work with this execution's values (None: whole rows). A
/// broadcast join carries `broadcast`, its other side's rows (None: over the limits, the
/// fragment runs on the coordinator over this side's rows).
fn fragment_push(
    f: &Fetch,
    fetches: &[Fetch],
    env: &Env,
    broadcast: Option<BroadcastSide>,
) -> Result<Option<Arc<FragmentPush>>, SqlError> {
    let p = &f.push;
    if p.columns.is_none() && p.join.is_none() && matches!(p.output, FetchOutput::Rows) {
        return Ok(None);
    }
    let join = match &p.join {
        None => None,
        Some(j) => Some(join_fragment(j, &fetches[j.other], env, broadcast)?),
    };
    let output = match &p.output {
        FetchOutput::Rows => FragmentOutput::Rows { limit: None },
        FetchOutput::Limit { limit, offset } => FragmentOutput::Rows {
            limit: Some(row_count(limit, offset.as_ref(), env)?),
        },
        FetchOutput::TopN {
            keys,
            limit,
            offset,
        } => FragmentOutput::TopN {
            keys: keys.clone(),
            count: row_count(limit, offset.as_ref(), env)?,
        },
        FetchOutput::PartialAggregate { groups, calls } => FragmentOutput::PartialAggregate {
            groups: groups.clone(),
            calls: calls.clone(),
        },
    };
    Ok(Some(Arc::new(FragmentPush {
        join,
        columns: p.columns.clone(),
        output,
    })))
}

fn join_fragment(
    j: &ShardJoin,
    other: &Fetch,
    env: &Env,
    broadcast: Option<BroadcastSide>,
) -> Result<JoinFragment, SqlError> {
    assert!(other.push.absorbed, "a joined fetch is absorbed");
    Ok(match &j.method {
        JoinMethod::Colocated {
            left_keys,
            right_keys,
        } => JoinFragment::Colocated(ColocatedSide {
            table: other.table.clone(),
            filter: other.filter.clone(),
            point: point_key(&other.table, other.filter.as_ref(), env)?,
            kind: j.kind,
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            residual: j.residual.clone(),
        }),
        JoinMethod::Broadcast { .. } => JoinFragment::Broadcast(broadcast.expect("broadcast rows")),
    })
}

/// LIMIT + OFFSET: the rows each fragment must return for the coordinator's LIMIT to see the
/// same rows as over all of them. A NULL or negative count takes every row here; the
/// coordinator's Limit then applies (or rejects) it as before.
fn row_count(limit: &Bound, offset: Option<&Bound>, env: &Env) -> Result<usize, SqlError> {
    let count = |b: &Bound| -> Result<Option<usize>, SqlError> {
        match eval(b, &Eval::new(env))? {
            Datum::Int(v) => Ok(usize::try_from(v).ok()),
            _ => Ok(None),
        }
    };
    let Some(limit) = count(limit)? else {
        return Ok(usize::MAX);
    };
    let offset = match offset {
        None => 0,
        Some(o) => match count(o)? {
            Some(o) => o,
            None => return Ok(usize::MAX),
        },
    };
    Ok(limit.saturating_add(offset))
}

/// Puts the shards' replies together, in shard order.
fn gather(push: Option<&FragmentPush>, replies: Vec<ScanRows>) -> Result<ScanRows, SqlError> {
    let mut out = ScanRows::default();
    match push.map(|p| &p.output) {
        None | Some(FragmentOutput::Rows { .. }) => {
            for r in replies {
                out.rows.extend(r.rows);
                out.keys.extend(r.keys);
                out.left_tags.extend(r.left_tags);
            }
            if reorders(push) {
                in_left_order(&mut out);
            }
        }
        Some(FragmentOutput::TopN { keys, count }) => {
            let lists = replies
                .into_iter()
                .map(|r| {
                    assert_eq!(r.rows.len(), r.sort_keys.len(), "a key per top-N row");
                    assert!(r.rows.len() <= *count, "a top-N reply within its count");
                    r.sort_keys.into_iter().zip(r.rows).collect()
                })
                .collect();
            out.rows = exec::merge_sorted(keys, lists, *count);
        }
        Some(FragmentOutput::PartialAggregate { groups, calls }) => {
            let mut grouper = exec::Grouper::default();
            for r in replies {
                for (values, states) in r.groups {
                    grouper.merge(values, states, calls);
                }
                if grouper.len() > STATEMENT_ROWS_MAX {
                    return Err(SqlError::new(
                        PROGRAM_LIMIT_EXCEEDED,
                        format!("statement would hold more than {STATEMENT_ROWS_MAX} groups"),
                    ));
                }
            }
            out.rows = grouper.finish(groups.is_empty(), calls)?;
        }
    }
    Ok(out)
}

/// Whether the fragment's rows come from a broadcast left side probed by the scanned
/// right side's rows, tagged with their left row's position.
fn reorders(push: Option<&FragmentPush>) -> bool {
    matches!(
        push.and_then(|p| p.join.as_ref()),
        Some(JoinFragment::Broadcast(BroadcastSide { is_left: true, .. }))
    )
}

/// Puts a reordering join's rows, concatenated in shard order, in the coordinator's hash
/// join order: by left row, each one's matches in right-row (shard, then key) order, which
/// a stable sort on the tag keeps; unmatched right rows last.
fn in_left_order(out: &mut ScanRows) {
    assert_eq!(out.rows.len(), out.left_tags.len(), "a tag per joined row");
    assert!(out.keys.is_empty(), "a join returns no storage keys");
    let mut tagged: Vec<(usize, Row)> = std::mem::take(&mut out.left_tags)
        .into_iter()
        .zip(std::mem::take(&mut out.rows))
        .collect();
    tagged.sort_by_key(|(tag, _)| *tag);
    out.rows = tagged.into_iter().map(|(_, row)| row).collect();
}
