//! Pushdown: after planning, moves work from the coordinator into the fetches' shard
//! fragments, wherever the result stays exactly what the coordinator would compute:
//!
//! - co-located join: an inner or left join that equates two tables' whole primary keys
//!   (same types, so equal keys hash to the same shard) runs in one fragment per shard;
//! - broadcast join: any other equi-join but a full one reads one side first and sends it,
//!   hashed, to every shard's fragment of the other side (the coordinator joins instead
//!   when that side is over `dist::BROADCAST_ROWS_MAX` rows or `BROADCAST_BYTES_MAX`);
//! - partial aggregation: count, sum, avg, min, max, bool_and/or over one fragment's rows
//!   run per shard, the coordinator combines the partial states;
//! - LIMIT: each fragment stops after LIMIT + OFFSET rows; with ORDER BY, each returns its
//!   first LIMIT + OFFSET rows in order and the coordinator merges them;
//! - projection: a fragment returns only the columns the plan reads (`narrow`).
//!
//! Results are byte for byte the coordinator-only plan's, row order included: fragments
//! keep each shard's key order, replies are put together in shard order, sorts and merges
//! are stable, and only aggregates whose partial states combine exactly are split.
//!
//! The coordinator plan keeps its shape except where a node's work moved into a fragment
//! entirely; such rewrites apply only to fetches the plan reads once (a CTE planned into two
//! places shares its fetches, and each place may want something else of them).

use std::collections::BTreeSet;

use crate::catalog::Table;
use crate::expr::{AggCall, AggFunc, Bound, Kind};
use crate::plan::{Fetch, FetchOutput, JoinKind, JoinMethod, Plan, ShardJoin, SortKey};
use crate::types::SqlType;

#[cfg(test)]
thread_local! {
    /// Tests turn pushdown off to compare with the coordinator-only plan.
    static DISABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns pushdown off (or on again) on this thread, for tests.
#[cfg(test)]
pub(crate) fn set_disabled(disabled: bool) {
    DISABLED.with(|d| d.set(disabled));
}

fn disabled() -> bool {
    #[cfg(test)]
    return DISABLED.with(|d| d.get());
    #[cfg(not(test))]
    false
}

/// Pushes what it can of `plan` into `fetches`; returns the coordinator's remaining plan.
pub(crate) fn push_down(plan: Plan, fetches: &mut [Fetch]) -> Plan {
    if disabled() {
        return plan;
    }
    let mut uses = vec![0usize; fetches.len()];
    walk(&plan, &mut |p| {
        if let Plan::Fetch(n) = p {
            uses[*n] += 1;
        }
    });
    let plan = rewrite(plan, &mut Rewriter { fetches, uses });
    narrow(&plan, fetches);
    plan
}

struct Rewriter<'a> {
    fetches: &'a mut [Fetch],
    /// How often each fetch's rows are read in the whole plan.
    uses: Vec<usize>,
}

impl Rewriter<'_> {
    /// `plan` is fetch `n`, read only there, returning whole rows so far: its fragment may
    /// take on more work.
    fn open_fetch(&self, plan: &Plan) -> Option<usize> {
        let Plan::Fetch(n) = plan else { return None };
        let f = &self.fetches[*n];
        let ordered = f.push.join.as_ref().is_none_or(ShardJoin::keeps_order);
        let open = self.uses[*n] == 1
            && !f.push.absorbed
            && ordered
            && matches!(f.push.output, FetchOutput::Rows);
        open.then_some(*n)
    }
}

/// Rewrites the coordinator's plan bottom-up (subquery plans keep their shape).
fn rewrite(plan: Plan, rw: &mut Rewriter) -> Plan {
    let plan = map_children(plan, &mut |child| rewrite(child, rw));
    match plan {
        Plan::Join { .. } => push_join(plan, rw),
        Plan::Aggregate { .. } => partial_aggregate(plan, rw),
        Plan::Limit { .. } => push_limit(plan, rw),
        other => other,
    }
}

fn map_children(plan: Plan, f: &mut dyn FnMut(Plan) -> Plan) -> Plan {
    let mut m = |b: Box<Plan>| Box::new(f(*b));
    match plan {
        Plan::Unit | Plan::Values(_) | Plan::Fetch(_) | Plan::Function { .. } => plan,
        Plan::LateralFunction {
            input,
            funcs,
            ordinality,
        } => Plan::LateralFunction {
            input: m(input),
            funcs,
            ordinality,
        },
        // The subquery keeps its shape, as subquery plans in expressions do: it runs per
        // input row on the coordinator.
        Plan::LateralSubquery {
            input,
            sub,
            sub_width,
            on,
            keep_unmatched,
        } => Plan::LateralSubquery {
            input: m(input),
            sub,
            sub_width,
            on,
            keep_unmatched,
        },
        Plan::Filter(input, p) => Plan::Filter(m(input), p),
        Plan::Project(input, e) => Plan::Project(m(input), e),
        Plan::Aggregate {
            input,
            groups,
            calls,
        } => Plan::Aggregate {
            input: m(input),
            groups,
            calls,
        },
        Plan::Sort(input, keys) => Plan::Sort(m(input), keys),
        Plan::Limit {
            input,
            limit,
            offset,
        } => Plan::Limit {
            input: m(input),
            limit,
            offset,
        },
        Plan::Distinct(input) => Plan::Distinct(m(input)),
        Plan::Truncate(input, w) => Plan::Truncate(m(input), w),
        Plan::Join {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            residual,
            left_width,
            right_width,
        } => {
            let left = m(left);
            Plan::Join {
                left,
                right: m(right),
                kind,
                left_keys,
                right_keys,
                residual,
                left_width,
                right_width,
            }
        }
        Plan::SetOp {
            op,
            all,
            left,
            right,
        } => {
            let left = m(left);
            Plan::SetOp {
                op,
                all,
                left,
                right: m(right),
            }
        }
    }
}

/// A LIMIT/OFFSET count the coordinator can compute before fetching (a constant or a
/// parameter): it reads no row and runs nothing with side effects.
fn countable(b: &Bound) -> bool {
    let mut cols = Vec::new();
    b.columns_read(&mut cols);
    b.is_row_local() && cols.is_empty()
}

/// `Limit(Truncate?(Project(Fetch)))`: the fragment stops after LIMIT + OFFSET rows.
/// `Limit(Truncate?(Sort(Project(Fetch))))` with sort keys the shard can compute: the
/// fragment returns its first LIMIT + OFFSET rows sorted, the coordinator merges them in
/// order, and its Sort goes.
fn push_limit(plan: Plan, rw: &mut Rewriter) -> Plan {
    let Plan::Limit {
        input,
        limit: Some(limit),
        offset,
    } = plan
    else {
        return plan;
    };
    if !countable(&limit) || offset.as_ref().is_some_and(|o| !countable(o)) {
        return Plan::Limit {
            input,
            limit: Some(limit),
            offset,
        };
    }
    let (width, inner) = match *input {
        Plan::Truncate(i, w) => (Some(w), *i),
        other => (None, other),
    };
    let inner = match inner {
        Plan::Project(p_in, exprs) => {
            if let Some(n) = rw.open_fetch(&p_in) {
                rw.fetches[n].push.output = FetchOutput::Limit {
                    limit: limit.clone(),
                    offset: offset.clone(),
                };
            }
            Plan::Project(p_in, exprs)
        }
        Plan::Sort(s_in, keys) => match *s_in {
            Plan::Project(p_in, exprs) => {
                let n = rw.open_fetch(&p_in);
                match (n, shard_sort_keys(&keys, &exprs)) {
                    (Some(n), Some(shard_keys)) => {
                        rw.fetches[n].push.output = FetchOutput::TopN {
                            keys: shard_keys,
                            limit: limit.clone(),
                            offset: offset.clone(),
                        };
                        Plan::Project(p_in, exprs)
                    }
                    _ => Plan::Sort(Box::new(Plan::Project(p_in, exprs)), keys),
                }
            }
            other => Plan::Sort(Box::new(other), keys),
        },
        other => other,
    };
    let input = match width {
        Some(w) => Plan::Truncate(Box::new(inner), w),
        None => inner,
    };
    Plan::Limit {
        input: Box::new(input),
        limit: Some(limit),
        offset,
    }
}

/// Sort keys over a projection's output, restated over its input row, if each is an output
/// column whose expression a shard can compute.
fn shard_sort_keys(keys: &[SortKey], exprs: &[Bound]) -> Option<Vec<SortKey>> {
    keys.iter()
        .map(|k| {
            let Kind::Column(i) = k.expr.kind else {
                return None;
            };
            let e = exprs.get(i).filter(|e| e.is_row_local())?;
            Some(SortKey {
                expr: e.clone(),
                descending: k.descending,
                nulls_first: k.nulls_first,
            })
        })
        .collect()
}

/// `Aggregate(Fetch)` whose calls all split: the fragment aggregates its rows into partial
/// states, the coordinator combines them (the fetch's rows are then the aggregate's).
fn partial_aggregate(plan: Plan, rw: &mut Rewriter) -> Plan {
    let Plan::Aggregate {
        input,
        groups,
        calls,
    } = plan
    else {
        return plan;
    };
    match rw.open_fetch(&input) {
        Some(n) if splittable(&groups, &calls) => {
            rw.fetches[n].push.output = FetchOutput::PartialAggregate { groups, calls };
            Plan::Fetch(n)
        }
        _ => Plan::Aggregate {
            input,
            groups,
            calls,
        },
    }
}

/// Whether every call's partial states combine into exactly the result of aggregating all
/// rows in one place, with groups and arguments a shard can compute. Float sums are not
/// split: their rounding depends on the order of the additions.
fn splittable(groups: &[Bound], calls: &[AggCall]) -> bool {
    groups.iter().all(Bound::is_row_local)
        && calls.iter().all(|c| {
            // A shard's grouper applies FILTER as the coordinator's does, row by row.
            let arg_ok = c.arg.iter().chain(&c.filter).all(Bound::is_row_local);
            let func_ok = match c.func {
                AggFunc::CountStar
                | AggFunc::Count
                | AggFunc::Min
                | AggFunc::Max
                | AggFunc::BoolAnd
                | AggFunc::BoolOr => true,
                AggFunc::Sum | AggFunc::Avg => c
                    .arg
                    .as_ref()
                    .is_some_and(|a| a.ty.is_integer() || a.ty == SqlType::Numeric),
                AggFunc::StringAgg | AggFunc::ArrayAgg => false,
            };
            let plain = !c.distinct && c.delimiter.is_none() && c.order_by.is_empty();
            plain && arg_ok && func_ok
        })
}

/// `Join(Fetch a, Fetch b)` over two plain fetches read only here, with a row-local
/// residual: co-located when the keys are the two primary keys, else broadcast when there
/// are equi-join keys a shard can compute. The joined rows are then fetch a's or b's.
fn push_join(plan: Plan, rw: &mut Rewriter) -> Plan {
    let Plan::Join {
        left,
        right,
        kind,
        left_keys,
        right_keys,
        residual,
        left_width,
        right_width,
    } = plan
    else {
        return plan;
    };
    let sides = rw.open_fetch(&left).zip(rw.open_fetch(&right));
    let plain = |(a, b): (usize, usize)| {
        let (fa, fb) = (&rw.fetches[a], &rw.fetches[b]);
        a != b && fa.push.join.is_none() && fb.push.join.is_none()
    };
    let residual_ok = residual.as_ref().is_none_or(Bound::is_row_local);
    let join = match sides.filter(|&s| plain(s) && residual_ok) {
        Some((a, b)) => {
            assert_eq!(left_width, rw.fetches[a].row_width(), "a fetch's row");
            assert_eq!(right_width, rw.fetches[b].row_width(), "a fetch's row");
            colocated(rw, (a, b), kind, &left_keys, &right_keys)
                .or_else(|| broadcast(rw, (a, b), kind, &left_keys, &right_keys))
        }
        None => None,
    };
    match join {
        Some((into, other, method)) => {
            let other_width = rw.fetches[other].row_width();
            rw.fetches[other].push.absorbed = true;
            rw.fetches[into].push.join = Some(ShardJoin {
                other,
                kind,
                method,
                residual,
                other_width,
            });
            Plan::Fetch(into)
        }
        None => Plan::Join {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            residual,
            left_width,
            right_width,
        },
    }
}

/// (the fetch the join runs in, the fetch it absorbs, how)
type PushedJoin = (usize, usize, JoinMethod);

/// An inner or left join equating the two tables' whole primary keys, position by
/// position, of co-locatable types: matching rows share a shard, each shard joins its own
/// rows and the coordinator concatenates.
fn colocated(
    rw: &Rewriter,
    (a, b): (usize, usize),
    kind: JoinKind,
    left_keys: &[Bound],
    right_keys: &[Bound],
) -> Option<PushedJoin> {
    if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
        return None;
    }
    let (fa, fb) = (&rw.fetches[a], &rw.fetches[b]);
    let (lk, rk) = primary_key_pairs(&fa.table, &fb.table, left_keys, right_keys)?;
    let method = JoinMethod::Colocated {
        left_keys: lk,
        right_keys: rk,
    };
    Some((a, b, method))
}

/// A join with equi-join keys that is not co-located: one side is read first and sent to
/// every shard's fragment of the other, which hash-joins it with its own rows. The side
/// sent is the one [`smallness`] rates smaller (the right one on a tie) for an inner join;
/// the null-extended side of an outer join (the preserved side's unmatched rows are known
/// only where all of the other side is). A full join never is: both sides are preserved.
fn broadcast(
    rw: &Rewriter,
    (a, b): (usize, usize),
    kind: JoinKind,
    left_keys: &[Bound],
    right_keys: &[Bound],
) -> Option<PushedJoin> {
    let keys_ok =
        !left_keys.is_empty() && left_keys.iter().chain(right_keys).all(Bound::is_row_local);
    if !keys_ok {
        return None;
    }
    let other_is_left = match kind {
        JoinKind::Inner => match (
            estimated_rows(&rw.fetches[a]),
            estimated_rows(&rw.fetches[b]),
        ) {
            // Both tables analyzed: the side expected to return fewer rows is broadcast.
            (Some(ea), Some(eb)) => ea < eb,
            _ => smallness(&rw.fetches[a]) > smallness(&rw.fetches[b]),
        },
        JoinKind::Left => false,
        JoinKind::Right => true,
        JoinKind::Full => return None,
    };
    let method = JoinMethod::Broadcast {
        left_keys: left_keys.to_vec(),
        right_keys: right_keys.to_vec(),
        other_is_left,
    };
    Some(if other_is_left {
        (b, a, method)
    } else {
        (a, b, method)
    })
}

/// The rows a fetch is expected to return, from its table's ANALYZE statistics (None: never
/// analyzed): the row count, times `1 / distinct` (of the non-NULL part) for each
/// `column = value` conjunct, and one row when the whole primary key is pinned.
fn estimated_rows(f: &Fetch) -> Option<f64> {
    let stats = f.table.stats.as_ref()?;
    if smallness(f) == usize::MAX {
        return Some(1.0);
    }
    let mut conjuncts = Vec::new();
    if let Some(filter) = &f.filter {
        filter.clone().into_conjuncts(&mut conjuncts);
    }
    let mut rows = stats.rows as f64;
    for c in &conjuncts {
        if let Some(column) = c
            .as_column_equality()
            .and_then(|(col, _)| stats.columns.get(col))
        {
            rows *= (1.0 - column.null_frac) / column.distinct.max(1) as f64;
        }
    }
    Some(rows)
}

/// A cheap, data-free guess at how few rows a fetch returns, higher for fewer: a filter
/// pinning the whole primary key (one row at most) beats any other, then the more
/// `column = value` conjuncts the filter has, the fewer rows. Plans are cached across
/// executions, so the guess reads no data; the broadcast size limit guards a wrong guess.
fn smallness(f: &Fetch) -> usize {
    let mut conjuncts = Vec::new();
    if let Some(filter) = &f.filter {
        filter.clone().into_conjuncts(&mut conjuncts);
    }
    let mut pinned = vec![false; f.table.primary_key.len()];
    let mut equalities = 0;
    for c in &conjuncts {
        let Some((col, value)) = c.as_column_equality() else {
            continue;
        };
        equalities += 1;
        let key_position = f.table.primary_key.iter().position(|&k| k == col);
        if let Some(k) = key_position.filter(|_| value.ty == f.table.columns[col].ty) {
            pinned[k] = true;
        }
    }
    if !pinned.is_empty() && pinned.iter().all(|&p| p) {
        return usize::MAX;
    }
    equalities
}

/// The key columns of both sides when the join keys equate the tables' whole primary keys
/// position by position (the row token hashes the key columns in that order).
fn primary_key_pairs(
    left: &Table,
    right: &Table,
    left_keys: &[Bound],
    right_keys: &[Bound],
) -> Option<(Vec<usize>, Vec<usize>)> {
    let k = left.primary_key.len();
    if k == 0 || right.primary_key.len() != k || left_keys.len() != k || right_keys.len() != k {
        return None;
    }
    let mut covered = vec![false; k];
    for (l, r) in left_keys.iter().zip(right_keys) {
        let (Kind::Column(i), Kind::Column(j)) = (&l.kind, &r.kind) else {
            return None;
        };
        let p = left.primary_key.iter().position(|c| c == i)?;
        let same_position = right.primary_key.get(p) == Some(j);
        let (ti, tj) = (left.columns[*i].ty, right.columns[*j].ty);
        if !same_position || covered[p] || ti != tj || !colocatable(ti) {
            return None;
        }
        covered[p] = true;
    }
    Some((left.primary_key.clone(), right.primary_key.clone()))
}

/// Types whose equal values (as a join compares them) have equal key bytes, hence equal row
/// tokens. Floats are not (0 = -0, NaN = NaN); new types join the list once checked.
fn colocatable(ty: SqlType) -> bool {
    ty.is_integer()
        || matches!(
            ty,
            SqlType::Text | SqlType::Varchar | SqlType::Bool | SqlType::Numeric
        )
}

/// Calls `f` on every node of `plan`, including those of subquery plans in its expressions.
pub(crate) fn walk(plan: &Plan, f: &mut dyn FnMut(&Plan)) {
    f(plan);
    for child in children(plan) {
        walk_nodes_only(child, f);
    }
    plan.for_each_expr(&mut |b| {
        b.visit(&mut |e| {
            if let Kind::Subquery(sq) = &e.kind {
                walk(&sq.plan, f);
            }
        })
    });
}

fn walk_nodes_only(plan: &Plan, f: &mut dyn FnMut(&Plan)) {
    f(plan);
    for child in children(plan) {
        walk_nodes_only(child, f);
    }
}

pub(crate) fn children(plan: &Plan) -> Vec<&Plan> {
    match plan {
        Plan::Unit | Plan::Values(_) | Plan::Fetch(_) | Plan::Function { .. } => vec![],
        Plan::LateralFunction { input, .. } => vec![input],
        Plan::LateralSubquery { input, sub, .. } => vec![input, sub],
        Plan::Filter(input, _)
        | Plan::Project(input, _)
        | Plan::Aggregate { input, .. }
        | Plan::Sort(input, _)
        | Plan::Limit { input, .. }
        | Plan::Distinct(input)
        | Plan::Truncate(input, _) => vec![input],
        Plan::Join { left, right, .. } | Plan::SetOp { left, right, .. } => vec![left, right],
    }
}

/// Positions of a node's output row that are read above it (None: all of them).
type Need = Option<BTreeSet<usize>>;

/// Projection pushdown: each fetch returns only the row positions the plan reads. Every
/// expression the coordinator evaluates counts as a read (it runs, and may fail, even when
/// its value is dropped later), and so do correlated subqueries' references to a row.
fn narrow(plan: &Plan, fetches: &mut [Fetch]) {
    let mut needs: Vec<Need> = vec![Some(BTreeSet::new()); fetches.len()];
    need(plan, &None, &mut needs);
    for (f, need) in fetches.iter_mut().zip(needs) {
        if f.push.absorbed || matches!(f.push.output, FetchOutput::PartialAggregate { .. }) {
            continue;
        }
        if let Some(set) = need {
            if set.len() < f.row_width() {
                assert!(
                    set.iter().all(|&c| c < f.row_width()),
                    "reads within the row"
                );
                f.push.columns = Some(set.into_iter().collect());
            }
        }
    }
}

/// Adds the row positions `b` reads to `set`, and what subqueries in it need of their fetches.
fn reads(b: &Bound, set: &mut BTreeSet<usize>, needs: &mut [Need]) {
    let mut cols = Vec::new();
    b.columns_read(&mut cols);
    set.extend(cols);
    b.visit(&mut |e| {
        if let Kind::Subquery(sq) = &e.kind {
            need(&sq.plan, &None, needs);
        }
    });
}

fn reads_all<'b>(
    exprs: impl IntoIterator<Item = &'b Bound>,
    needs: &mut [Need],
) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    for b in exprs {
        reads(b, &mut set, needs);
    }
    set
}

fn union(out: &Need, more: BTreeSet<usize>) -> Need {
    out.as_ref().map(|o| o.union(&more).copied().collect())
}

/// Records what `plan`'s fetches must return for `out` of its row to be right.
fn need(plan: &Plan, out: &Need, needs: &mut [Need]) {
    match plan {
        Plan::Unit => {}
        Plan::Values(rows) => {
            reads_all(rows.iter().flatten(), needs);
        }
        Plan::Function { func, .. } => {
            reads_all(func.args(), needs);
        }
        // The function's arguments read the input's row: it is kept whole.
        Plan::LateralFunction { input, .. } => need(input, &None, needs),
        // The subquery reads the input's row (kept whole), and all of its own.
        Plan::LateralSubquery { input, sub, on, .. } => {
            need(input, &None, needs);
            need(sub, &None, needs);
            reads_all(on.iter(), needs);
        }
        Plan::Fetch(n) => {
            needs[*n] = match (&needs[*n], out) {
                (Some(have), Some(more)) => Some(have.union(more).copied().collect()),
                _ => None,
            };
        }
        Plan::Filter(input, p) => {
            let more = reads_all([p], needs);
            need(input, &union(out, more), needs);
        }
        Plan::Project(input, exprs) => {
            let set = reads_all(exprs, needs);
            need(input, &Some(set), needs);
        }
        Plan::Join {
            left,
            right,
            left_keys,
            right_keys,
            residual,
            left_width,
            ..
        } => {
            let lw = *left_width;
            let on = reads_all(residual, needs);
            let mut l = reads_all(left_keys, needs);
            let mut r = reads_all(right_keys, needs);
            l.extend(on.iter().filter(|&&c| c < lw));
            r.extend(on.iter().filter(|&&c| c >= lw).map(|c| c - lw));
            let (l, r) = match out {
                None => (None, None),
                Some(o) => {
                    l.extend(o.iter().filter(|&&c| c < lw));
                    r.extend(o.iter().filter(|&&c| c >= lw).map(|c| c - lw));
                    (Some(l), Some(r))
                }
            };
            need(left, &l, needs);
            need(right, &r, needs);
        }
        Plan::Aggregate {
            input,
            groups,
            calls,
        } => {
            let args = calls.iter().flat_map(|c| {
                let keys = c.order_by.iter().map(|k| &k.expr);
                c.arg
                    .iter()
                    .chain(&c.delimiter)
                    .chain(&c.filter)
                    .chain(keys)
            });
            let set = reads_all(groups.iter().chain(args), needs);
            need(input, &Some(set), needs);
        }
        Plan::Sort(input, keys) => {
            let more = reads_all(keys.iter().map(|k| &k.expr), needs);
            need(input, &union(out, more), needs);
        }
        Plan::Limit {
            input,
            limit,
            offset,
        } => {
            reads_all(limit.iter().chain(offset), needs);
            need(input, out, needs);
        }
        // Rows are compared whole.
        Plan::Distinct(input) => need(input, &None, needs),
        Plan::SetOp { left, right, .. } => {
            need(left, &None, needs);
            need(right, &None, needs);
        }
        Plan::Truncate(input, width) => {
            let kept = match out {
                None => (0..*width).collect(),
                Some(o) => o.iter().copied().filter(|&c| c < *width).collect(),
            };
            need(input, &Some(kept), needs);
        }
    }
}
