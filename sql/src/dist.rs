//! Running a statement's fetches as shard fragments and putting their replies together: the
//! coordinator's half of distributed execution. What each fragment does is decided when the
//! statement is planned (`Fetch::push`, see `pushdown.rs`); here it is turned into a
//! [`ScanRequest`] with this execution's values (LIMIT counts, point keys), sent to the
//! shards that can hold its rows, and the replies are concatenated, merged (top-N) or
//! combined (partial aggregates) in shard order.

use std::sync::Arc;

use crate::cluster::{Cluster, FragmentOutput, FragmentPush, JoinFragment, ScanRequest, ScanRows};
use crate::error::*;
use crate::exec::{self, Inputs, STATEMENT_ROWS_MAX};
use crate::expr::{eval, Bound, Env, Eval};
use crate::plan::{Fetch, FetchOutput};
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

/// One fetch: a point read on one shard when the filter pins the whole primary key, else a
/// scan on every shard, with whatever the plan pushed into it. `fetches` are the statement's
/// (a co-located join reads its right side's table and filter there).
pub(crate) async fn fetch<C: Cluster>(
    cluster: &C,
    f: &Fetch,
    fetches: &[Fetch],
    env: &Env,
    with_keys: bool,
) -> Result<ScanRows, SqlError> {
    assert!(!f.push.absorbed, "an absorbed fetch is read by its join");
    let point = point_key(&f.table, f.filter.as_ref(), env)?;
    let push = fragment_push(f, fetches, env)?;
    let right_point = push
        .as_ref()
        .and_then(|p| p.join.as_ref())
        .and_then(|j| j.point.clone());
    let req = ScanRequest {
        table: f.table.clone(),
        filter: f.filter.clone(),
        env: env.clone(),
        point: point.clone(),
        with_keys,
        push: push.clone(),
    };
    let inner = f
        .push
        .join
        .as_ref()
        .is_none_or(|j| j.kind == crate::plan::JoinKind::Inner);
    // A pinned left row lives on one shard, and so do its matches; an inner join's rows
    // all match a pinned right row, so they live on its shard.
    let only = match (&point, &right_point) {
        (Some(key), _) => Some(key),
        (None, Some(key)) if inner => Some(key),
        _ => None,
    };
    let shards: Vec<usize> = match only {
        Some(key) => {
            let token = rowcodec::storage_key_token(key).expect("a row key has a token");
            vec![cluster.shard_of_token(token)]
        }
        None => (0..cluster.shard_count()).collect(),
    };
    let futures = shards.iter().map(|&s| cluster.scan(s, req.clone()));
    let replies = futures_util::future::join_all(futures)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    gather(push.as_deref(), replies)
}

/// The fragment's pushed-down work with this execution's values (None: whole rows).
fn fragment_push(
    f: &Fetch,
    fetches: &[Fetch],
    env: &Env,
) -> Result<Option<Arc<FragmentPush>>, SqlError> {
    let p = &f.push;
    if p.columns.is_none() && p.join.is_none() && matches!(p.output, FetchOutput::Rows) {
        return Ok(None);
    }
    let join = match &p.join {
        None => None,
        Some(j) => {
            let right = &fetches[j.right];
            assert!(right.push.absorbed, "a joined fetch is absorbed");
            Some(JoinFragment {
                table: right.table.clone(),
                filter: right.filter.clone(),
                point: point_key(&right.table, right.filter.as_ref(), env)?,
                kind: j.kind,
                left_keys: j.left_keys.clone(),
                right_keys: j.right_keys.clone(),
                residual: j.residual.clone(),
            })
        }
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
