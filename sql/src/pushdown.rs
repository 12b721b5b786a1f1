//! Pushdown: after planning, moves work from the coordinator into the fetches' shard
//! fragments, wherever the result stays exactly what the coordinator would compute:
//!
//! - projection: a fragment returns only the columns the plan reads (`narrow`);
//!
//! The coordinator plan keeps its shape except where a node's work moved into a fragment
//! entirely; such rewrites apply only to fetches the plan reads once (a CTE planned into two
//! places shares its fetches, and each place may want something else of them).

use std::collections::BTreeSet;

use crate::expr::{Bound, Kind};
use crate::plan::{Fetch, FetchOutput, Plan};

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
    narrow(&plan, fetches);
    plan
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
        Plan::Unit | Plan::Values(_) | Plan::Fetch(_) | Plan::Series { .. } => vec![],
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
        Plan::Series { start, stop, step } => {
            reads_all([start, stop].into_iter().chain(step), needs);
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
            let args = calls
                .iter()
                .flat_map(|c| c.arg.iter().chain(c.delimiter.iter()));
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
