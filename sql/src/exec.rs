//! The coordinator's executor: runs a [`Plan`] over the rows its fetches brought back.
//!
//! Rows are `Vec<Datum>`; each node materializes its output (the fetched inputs already are,
//! and the statement's row budget bounds them). Joins with equality keys are hash joins.

use std::collections::{HashMap, HashSet};

use bigdecimal::BigDecimal;

use crate::datetime;
use crate::error::*;
use crate::expr::{eval, AggCall, AggFunc, Env, Eval};
use crate::plan::{JoinKind, Plan, SetOpKind, SortKey, SubqueryExpr, SubqueryMode, TableFunc};
use crate::types::{Datum, SqlType};
use crate::vector::{self, BatchCx, Vector, BATCH_ROWS};

pub(crate) type Row = Vec<Datum>;

/// Rows one statement may hold in memory at once, across its fetches and intermediate results.
pub const STATEMENT_ROWS_MAX: usize = 10_000_000;
/// Rows generate_series may produce.
const SERIES_ROWS_MAX: usize = 10_000_000;

/// The fetched rows of each of the statement's fetches.
#[derive(Default)]
pub(crate) struct Inputs {
    pub(crate) tables: Vec<Vec<Row>>,
    /// Per fetch: for rows narrowed by a pushed-down projection, the positions their values
    /// take in the full row and its width (None: the rows are whole).
    pub(crate) layouts: Vec<Option<(Vec<usize>, usize)>>,
}

impl Inputs {
    /// Fetch `n`'s rows, whole: narrowed rows get NULL where the plan reads nothing.
    fn rows_of(&self, n: usize) -> Vec<Row> {
        let rows = &self.tables[n];
        let Some(Some((columns, width))) = self.layouts.get(n) else {
            return rows.clone();
        };
        rows.iter()
            .map(|narrow| {
                assert_eq!(narrow.len(), columns.len(), "a narrowed row's width");
                let mut row = vec![Datum::Null; *width];
                for (value, &c) in narrow.iter().zip(columns) {
                    row[c] = value.clone();
                }
                row
            })
            .collect()
    }
}

/// Runs `plan` with `outer` as the enclosing query's current row (correlated subqueries).
pub(crate) fn run(
    plan: &Plan,
    env: &Env,
    inputs: &Inputs,
    outer: Option<&Eval>,
) -> Result<Vec<Row>, SqlError> {
    Executor { env, inputs, outer }.run(plan)
}

struct Executor<'a> {
    env: &'a Env,
    inputs: &'a Inputs,
    outer: Option<&'a Eval<'a>>,
}

impl<'a> Executor<'a> {
    fn eval_in(&self, b: &crate::expr::Bound, row: &[Datum]) -> Result<Datum, SqlError> {
        let cx = Eval {
            env: self.env,
            row,
            outer: self.outer,
            inputs: Some(self.inputs),
        };
        eval(b, &cx)
    }

    fn run(&self, plan: &Plan) -> Result<Vec<Row>, SqlError> {
        match plan {
            Plan::Unit => Ok(vec![Vec::new()]),
            Plan::Values(rows) => rows
                .iter()
                .map(|r| r.iter().map(|b| self.eval_in(b, &[])).collect())
                .collect(),
            Plan::Fetch(n) => Ok(self.inputs.rows_of(*n)),
            Plan::Function { func, ordinality } => self.table_function(func, *ordinality, &[]),
            Plan::LateralFunction {
                input,
                funcs,
                ordinality,
            } => {
                let mut out = Vec::new();
                for row in self.run(input)? {
                    let produced = funcs
                        .iter()
                        .map(|f| self.table_function(f, false, &row))
                        .collect::<Result<Vec<_>, _>>()?;
                    let longest = produced.iter().map(Vec::len).max().unwrap_or(0);
                    for i in 0..longest {
                        let mut joined = row.clone();
                        for (func, rows) in funcs.iter().zip(&produced) {
                            match rows.get(i) {
                                Some(r) => joined.extend(r.iter().cloned()),
                                None => joined.extend((0..func.width()).map(|_| Datum::Null)),
                            }
                        }
                        if *ordinality {
                            joined.push(Datum::Int(i as i64 + 1));
                        }
                        out.push(joined);
                    }
                }
                Ok(out)
            }
            Plan::LateralSubquery {
                input,
                sub,
                sub_width,
                on,
                keep_unmatched,
            } => self.lateral_subquery(input, sub, *sub_width, on.as_ref(), *keep_unmatched),
            Plan::Filter(input, pred) => {
                let rows = self.run(input)?;
                self.filter(rows, pred)
            }
            Plan::Project(input, exprs) => {
                let rows = self.run(input)?;
                self.project(rows, exprs)
            }
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
                let l = self.run(left)?;
                let r = self.run(right)?;
                self.join(
                    l,
                    r,
                    *kind,
                    left_keys,
                    right_keys,
                    residual.as_ref(),
                    *left_width,
                    *right_width,
                )
            }
            Plan::Aggregate {
                input,
                groups,
                calls,
            } => {
                let rows = self.run(input)?;
                self.aggregate(rows, groups, calls)
            }
            Plan::Sort(input, keys) => {
                let rows = self.run(input)?;
                self.sort(rows, keys)
            }
            Plan::Limit {
                input,
                limit,
                offset,
            } => {
                let count = |b: &Option<crate::expr::Bound>,
                             what: &str|
                 -> Result<Option<usize>, SqlError> {
                    match b {
                        None => Ok(None),
                        Some(b) => match self.eval_in(b, &[])? {
                            Datum::Null => Ok(None),
                            Datum::Int(v) if v < 0 => Err(SqlError::new(
                                if what == "LIMIT" {
                                    INVALID_ROW_COUNT
                                } else {
                                    "2201X"
                                },
                                format!("{what} must not be negative"),
                            )),
                            Datum::Int(v) => Ok(Some(usize::try_from(v).unwrap_or(usize::MAX))),
                            other => unreachable!("LIMIT value {other:?}"),
                        },
                    }
                };
                let limit = count(limit, "LIMIT")?;
                let offset = count(offset, "OFFSET")?.unwrap_or(0);
                let cut = |rows: Vec<Row>| -> Vec<Row> {
                    rows.into_iter()
                        .skip(offset)
                        .take(limit.unwrap_or(usize::MAX))
                        .collect()
                };
                // A projection makes one row of each input row: it runs after the cut, on
                // the rows returned only, as PostgreSQL's pipeline evaluates it (so an
                // error in a row past the LIMIT is never raised).
                match &**input {
                    Plan::Project(inner, exprs) => {
                        let rows = self.run(inner)?;
                        self.project(cut(rows), exprs)
                    }
                    _ => Ok(cut(self.run(input)?)),
                }
            }
            Plan::Distinct(input) => {
                let rows = self.run(input)?;
                let mut seen = HashSet::new();
                Ok(rows
                    .into_iter()
                    .filter(|r| seen.insert(group_key(r)))
                    .collect())
            }
            Plan::SetOp {
                op,
                all,
                left,
                right,
            } => {
                let l = self.run(left)?;
                let r = self.run(right)?;
                Ok(set_op(*op, *all, l, r))
            }
            Plan::Truncate(input, width) => {
                let mut rows = self.run(input)?;
                for r in &mut rows {
                    r.truncate(*width);
                }
                Ok(rows)
            }
        }
    }

    /// generate_series: no rows when an argument is NULL (the functions are strict).
    /// A function in FROM's rows, its arguments evaluated over `row` (the row of the FROM
    /// items before it, when it reads them; else empty).
    /// [`Plan::LateralSubquery`]: `sub` run once per input row, that row its enclosing one.
    fn lateral_subquery(
        &self,
        input: &Plan,
        sub: &Plan,
        sub_width: usize,
        on: Option<&crate::expr::Bound>,
        keep_unmatched: bool,
    ) -> Result<Vec<Row>, SqlError> {
        let mut out = Vec::new();
        for row in self.run(input)? {
            let cx = Eval {
                env: self.env,
                row: &row,
                outer: self.outer,
                inputs: Some(self.inputs),
            };
            let produced = Executor {
                env: self.env,
                inputs: self.inputs,
                outer: Some(&cx),
            }
            .run(sub)?;
            let mut matched = false;
            for mut produced in produced {
                produced.resize(sub_width, Datum::Null);
                let mut joined = row.clone();
                joined.extend(produced);
                let passes = match on {
                    None => true,
                    Some(on) => self.eval_in(on, &joined)? == Datum::Bool(true),
                };
                if passes {
                    matched = true;
                    out.push(joined);
                }
            }
            if keep_unmatched && !matched {
                let mut joined = row.clone();
                joined.resize(row.len() + sub_width, Datum::Null);
                out.push(joined);
            }
        }
        Ok(out)
    }

    fn table_function(
        &self,
        func: &TableFunc,
        ordinality: bool,
        row: &[Datum],
    ) -> Result<Vec<Row>, SqlError> {
        let mut rows = match func {
            TableFunc::Series { start, stop, step } => {
                self.series(start, stop, step.as_deref(), row)?
            }
            TableFunc::Unnest(arrays) => self.unnest(arrays, row)?,
            TableFunc::PartitionAncestors(relation) => vec![vec![self.eval_in(relation, row)?]],
        };
        if ordinality {
            for (i, r) in rows.iter_mut().enumerate() {
                r.push(Datum::Int(i as i64 + 1));
            }
        }
        Ok(rows)
    }

    fn series(
        &self,
        start: &crate::expr::Bound,
        stop: &crate::expr::Bound,
        step: Option<&crate::expr::Bound>,
        row: &[Datum],
    ) -> Result<Vec<Row>, SqlError> {
        let (a, b) = (self.eval_in(start, row)?, self.eval_in(stop, row)?);
        let s = match step {
            Some(s) => self.eval_in(s, row)?,
            None => Datum::Int(1),
        };
        let zone = &self.env.style.zone;
        match (a, b, s) {
            (Datum::Int(a), Datum::Int(b), Datum::Int(s)) => int_series(a, b, s),
            (Datum::Numeric(a), Datum::Numeric(b), Datum::Int(1)) => {
                numeric_series(a, b, BigDecimal::from(1))
            }
            (Datum::Numeric(a), Datum::Numeric(b), Datum::Numeric(s)) => numeric_series(a, b, s),
            (Datum::Timestamp(a), Datum::Timestamp(b), Datum::Interval(s)) => {
                timestamp_series(a, b, &s, Datum::Timestamp, |t, iv| {
                    datetime::timestamp_plus_interval(t, iv)
                })
            }
            (Datum::TimestampTz(a), Datum::TimestampTz(b), Datum::Interval(s)) => {
                timestamp_series(a, b, &s, Datum::TimestampTz, |t, iv| {
                    datetime::timestamptz_plus_interval(t, iv, zone)
                })
            }
            (Datum::Null, _, _) | (_, Datum::Null, _) | (_, _, Datum::Null) => Ok(Vec::new()),
            other => unreachable!("generate_series over {other:?}"),
        }
    }

    /// unnest(a, b, ...): row i holds each array's element i, NULL past an array's end (a
    /// NULL array counts as empty).
    fn unnest(&self, arrays: &[crate::expr::Bound], row: &[Datum]) -> Result<Vec<Row>, SqlError> {
        let mut values = Vec::with_capacity(arrays.len());
        for a in arrays {
            values.push(match self.eval_in(a, row)? {
                Datum::Array(items) => items,
                Datum::Null => Vec::new(),
                // A catalog column's text form of an integer vector (`1 2` or `{1,2}`).
                Datum::Text(text) => integer_vector(&text)?,
                other => unreachable!("unnest of {other:?}"),
            });
        }
        let count = values.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            out.push(
                values
                    .iter()
                    .map(|v| v.get(i).cloned().unwrap_or(Datum::Null))
                    .collect(),
            );
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        left: Vec<Row>,
        right: Vec<Row>,
        kind: JoinKind,
        left_keys: &[crate::expr::Bound],
        right_keys: &[crate::expr::Bound],
        residual: Option<&crate::expr::Bound>,
        left_width: usize,
        right_width: usize,
    ) -> Result<Vec<Row>, SqlError> {
        if left.len().saturating_mul(right.len().max(1)) > STATEMENT_ROWS_MAX
            && left_keys.is_empty()
        {
            return Err(too_many_rows());
        }
        // Key of each right row (None: a NULL key, which matches nothing).
        let mut table: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        let hashed = !left_keys.is_empty();
        if hashed {
            for (i, r) in right.iter().enumerate() {
                if let Some(k) = self.join_key(right_keys, r)? {
                    table.entry(k).or_default().push(i);
                }
            }
        }
        let mut right_matched = vec![false; right.len()];
        let mut out = Vec::new();
        let all_right: Vec<usize> = if hashed {
            Vec::new()
        } else {
            (0..right.len()).collect()
        };
        for l in &left {
            let candidates: &[usize] = if hashed {
                match self.join_key(left_keys, l)? {
                    Some(k) => table.get(&k).map_or(&[], |v| v.as_slice()),
                    None => &[],
                }
            } else {
                &all_right
            };
            let mut matched = false;
            for &ri in candidates {
                let mut joined = Vec::with_capacity(left_width + right_width);
                joined.extend_from_slice(l);
                joined.extend_from_slice(&right[ri]);
                let ok = match residual {
                    Some(p) => self.eval_in(p, &joined)? == Datum::Bool(true),
                    None => true,
                };
                if ok {
                    matched = true;
                    right_matched[ri] = true;
                    out.push(joined);
                    if out.len() > STATEMENT_ROWS_MAX {
                        return Err(too_many_rows());
                    }
                }
            }
            if !matched && matches!(kind, JoinKind::Left | JoinKind::Full) {
                let mut joined = l.clone();
                joined.resize(left_width + right_width, Datum::Null);
                out.push(joined);
            }
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            for (ri, r) in right.iter().enumerate() {
                if !right_matched[ri] {
                    let mut joined = vec![Datum::Null; left_width];
                    joined.extend_from_slice(r);
                    out.push(joined);
                }
            }
        }
        Ok(out)
    }

    fn join_key(
        &self,
        keys: &[crate::expr::Bound],
        row: &[Datum],
    ) -> Result<Option<Vec<u8>>, SqlError> {
        let mut out = Vec::new();
        for k in keys {
            let d = self.eval_in(k, row)?;
            if d.is_null() {
                return Ok(None);
            }
            hash_key_datum(&mut out, &d);
        }
        Ok(Some(out))
    }

    /// A batch of rows to evaluate expressions over as vectors.
    fn batch<'r>(&'r self, rows: &'r [Row]) -> BatchCx<'r> {
        BatchCx {
            env: self.env,
            rows,
            outer: self.outer,
            inputs: Some(self.inputs),
        }
    }

    /// True when these expressions are evaluated as vectors (see `vector`).
    fn vectorized<'e>(&self, mut exprs: impl Iterator<Item = &'e crate::expr::Bound>) -> bool {
        vector::enabled(self.env) && exprs.all(vector::batchable)
    }

    /// The rows for which `pred` is true, a batch at a time; a batch whose evaluation fails
    /// runs again row at a time, which reports the error of the first failing row.
    fn filter(&self, mut rows: Vec<Row>, pred: &crate::expr::Bound) -> Result<Vec<Row>, SqlError> {
        let vectorized = self.vectorized(std::iter::once(pred));
        let mut out = Vec::with_capacity(rows.len());
        for start in (0..rows.len()).step_by(BATCH_ROWS) {
            let end = rows.len().min(start + BATCH_ROWS);
            let chunk = &mut rows[start..end];
            let selected = match vectorized {
                true => vector::filter(pred, &self.batch(chunk), &vector::all(chunk.len())).ok(),
                false => None,
            };
            match selected {
                Some(sel) => {
                    out.extend(sel.iter().map(|&i| std::mem::take(&mut chunk[i as usize])))
                }
                None => {
                    for row in chunk {
                        if self.eval_in(pred, row)? == Datum::Bool(true) {
                            out.push(std::mem::take(row));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Each row's values of `exprs`, a batch at a time (falling back as `filter` does).
    fn project(&self, rows: Vec<Row>, exprs: &[crate::expr::Bound]) -> Result<Vec<Row>, SqlError> {
        let vectorized = self.vectorized(exprs.iter());
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(BATCH_ROWS) {
            let sel = vector::all(chunk.len());
            let vectors = match vectorized {
                true => exprs
                    .iter()
                    .map(|e| vector::eval_batch(e, &self.batch(chunk), &sel))
                    .collect::<Result<Vec<_>, _>>()
                    .ok(),
                false => None,
            };
            match vectors {
                Some(mut vectors) => out.extend((0..chunk.len()).map(|k| {
                    vectors
                        .iter_mut()
                        .map(|v| v.take(chunk, &sel, k))
                        .collect::<Row>()
                })),
                None => {
                    for row in chunk {
                        out.push(
                            exprs
                                .iter()
                                .map(|e| self.eval_in(e, row))
                                .collect::<Result<Row, _>>()?,
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    fn aggregate(
        &self,
        rows: Vec<Row>,
        groups: &[crate::expr::Bound],
        calls: &[AggCall],
    ) -> Result<Vec<Row>, SqlError> {
        let vectorized = vector::enabled(self.env) && Grouper::batchable(groups, calls);
        let mut grouper = Grouper::default();
        for chunk in rows.chunks(BATCH_ROWS) {
            let sel = vector::all(chunk.len());
            let prepared = match vectorized {
                true => Grouper::prepare_batch(groups, calls, &self.batch(chunk), &sel).ok(),
                false => None,
            };
            match prepared {
                Some(batch) => grouper.add_batch(calls, batch, chunk, &sel)?,
                None => {
                    for row in chunk {
                        grouper.add(groups, calls, row, &|b, r| self.eval_in(b, r))?;
                    }
                }
            }
        }
        grouper.finish(groups.is_empty(), calls)
    }

    fn sort(&self, rows: Vec<Row>, keys: &[SortKey]) -> Result<Vec<Row>, SqlError> {
        let mut keyed = Vec::with_capacity(rows.len());
        for row in rows {
            let k = keys
                .iter()
                .map(|k| self.eval_in(&k.expr, &row))
                .collect::<Result<Vec<_>, _>>()?;
            keyed.push((k, row));
        }
        keyed.sort_by(|(a, _), (b, _)| compare_sort_keys(keys, a, b));
        Ok(keyed.into_iter().map(|(_, r)| r).collect())
    }
}

/// ORDER BY's order of two rows' key values (`keys` give direction and NULL placement).
pub(crate) fn compare_sort_keys(keys: &[SortKey], a: &[Datum], b: &[Datum]) -> std::cmp::Ordering {
    for (i, k) in keys.iter().enumerate() {
        let ord = match (&a[i], &b[i]) {
            (Datum::Null, Datum::Null) => std::cmp::Ordering::Equal,
            (Datum::Null, _) => {
                if k.nulls_first {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            }
            (_, Datum::Null) => {
                if k.nulls_first {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            }
            (x, y) => {
                let o = crate::expr::compare(x, y);
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

fn zero_step() -> SqlError {
    SqlError::new(INVALID_PARAMETER_VALUE, "step size cannot equal zero")
}

fn too_long_series() -> SqlError {
    SqlError::new(
        PROGRAM_LIMIT_EXCEEDED,
        format!("generate_series produces at most {SERIES_ROWS_MAX} rows"),
    )
}

/// The elements of an integer array's or vector's text form (`{1,2}`, `1 2`, `{}`, NULL
/// elements included), as a catalog column holds it.
fn integer_vector(text: &str) -> Result<Vec<Datum>, SqlError> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| match part {
            "NULL" => Ok(Datum::Null),
            n => n.parse::<i64>().map(Datum::Int).map_err(|_| {
                SqlError::new(
                    INVALID_TEXT_REPRESENTATION,
                    format!("invalid input syntax for type bigint: \"{n}\""),
                )
            }),
        })
        .collect()
}

fn int_series(a: i64, b: i64, s: i64) -> Result<Vec<Row>, SqlError> {
    if s == 0 {
        return Err(zero_step());
    }
    let count = if (s > 0 && a > b) || (s < 0 && a < b) {
        0
    } else {
        (i128::from(b) - i128::from(a)) / i128::from(s) + 1
    };
    if count > SERIES_ROWS_MAX as i128 {
        return Err(too_long_series());
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut v = i128::from(a);
    for _ in 0..count {
        out.push(vec![Datum::Int(v as i64)]);
        v += i128::from(s);
    }
    Ok(out)
}

/// Numerics from `a` by repeated exact addition of `s` (each value keeps the larger scale
/// of the two, as PostgreSQL's numeric addition does).
fn numeric_series(a: BigDecimal, b: BigDecimal, s: BigDecimal) -> Result<Vec<Row>, SqlError> {
    use bigdecimal::Zero;
    if s.is_zero() {
        return Err(zero_step());
    }
    let ascending = s > BigDecimal::zero();
    let mut out = Vec::new();
    let mut v = a;
    while (ascending && v <= b) || (!ascending && v >= b) {
        if out.len() == SERIES_ROWS_MAX {
            return Err(too_long_series());
        }
        let next = &v + &s;
        out.push(vec![Datum::Numeric(v)]);
        v = next;
    }
    Ok(out)
}

/// Timestamps from `a` by repeated addition of `step` (so `+ 1 month` from Jan 31 gives
/// Feb 29, then Mar 29), while not past `b` in the step's direction (its sign as an
/// interval compares). As in PostgreSQL, the value after the last one is computed too, so
/// a series ending next to the end of the range fails with its overflow.
fn timestamp_series(
    a: i64,
    b: i64,
    step: &datetime::Interval,
    wrap: fn(i64) -> Datum,
    add: impl Fn(i64, &datetime::Interval) -> Result<i64, SqlError>,
) -> Result<Vec<Row>, SqlError> {
    let direction = step.span().signum();
    if direction == 0 {
        return Err(zero_step());
    }
    let mut out = Vec::new();
    let mut v = a;
    while (direction > 0 && v <= b) || (direction < 0 && v >= b) {
        if out.len() == SERIES_ROWS_MAX {
            return Err(too_long_series());
        }
        out.push(vec![wrap(v)]);
        v = add(v, step)?;
    }
    Ok(out)
}

/// Merges lists each sorted by `keys` (`(key values, row)` pairs) into the first `count`
/// rows of their stable sort: on ties the earlier list wins, so the result equals sorting
/// the lists' concatenation.
pub(crate) fn merge_sorted(
    keys: &[SortKey],
    lists: Vec<Vec<(Row, Row)>>,
    count: usize,
) -> Vec<Row> {
    let total: usize = lists.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total.min(count));
    let mut lists = lists;
    // The next unmerged entry of each list.
    let mut next = vec![0usize; lists.len()];
    while out.len() < count {
        let mut best: Option<usize> = None;
        for i in 0..lists.len() {
            let Some((key, _)) = lists[i].get(next[i]) else {
                continue;
            };
            let better = best.is_none_or(|b| {
                let (best_key, _) = &lists[b][next[b]];
                compare_sort_keys(keys, key, best_key) == std::cmp::Ordering::Less
            });
            if better {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        out.push(std::mem::take(&mut lists[b][next[b]].1));
        next[b] += 1;
    }
    out
}

/// Evaluates an expression over a row (the coordinator's or a shard's way).
pub(crate) type RowEval<'a> = dyn Fn(&crate::expr::Bound, &[Datum]) -> Result<Datum, SqlError> + 'a;

/// Rows grouped by their GROUP BY values, each group with its aggregates' running states,
/// in the order groups are first seen. Both the coordinator's aggregation and a shard's
/// partial aggregation run through it, so their groups and states agree exactly.
#[derive(Default)]
pub(crate) struct Grouper {
    index: HashMap<Vec<u8>, usize>,
    states: Vec<(Row, Vec<AggState>)>,
}

impl Grouper {
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// The slot of the group with these values, created (with fresh states) when new.
    fn slot(&mut self, key_values: Row, calls: &[AggCall]) -> usize {
        let key = group_key(&key_values);
        match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.states
                    .push((key_values, calls.iter().map(AggState::new).collect()));
                self.index.insert(key, self.states.len() - 1);
                self.states.len() - 1
            }
        }
    }

    /// Adds one input row; `eval` evaluates an expression over a row.
    pub(crate) fn add(
        &mut self,
        groups: &[crate::expr::Bound],
        calls: &[AggCall],
        row: &[Datum],
        eval: &RowEval,
    ) -> Result<(), SqlError> {
        let mut key_values = Vec::with_capacity(groups.len());
        for g in groups {
            key_values.push(eval(g, row)?);
        }
        let slot = self.slot(key_values, calls);
        for (call, state) in calls.iter().zip(self.states[slot].1.iter_mut()) {
            if let Some(filter) = &call.filter {
                if eval(filter, row)? != Datum::Bool(true) {
                    continue;
                }
            }
            let value = match &call.arg {
                Some(a) => Some(eval(a, row)?),
                None => None,
            };
            let delimiter = match &call.delimiter {
                Some(d) => Some(eval(d, row)?),
                None => None,
            };
            if let AggState::Sorted(inputs) = state {
                let mut keys = Vec::with_capacity(call.order_by.len());
                for k in &call.order_by {
                    keys.push(eval(&k.expr, row)?);
                }
                inputs.push(SortedInput {
                    keys,
                    value: value.unwrap_or(Datum::Null),
                    delimiter,
                });
                continue;
            }
            state.add(call, value, delimiter)?;
        }
        Ok(())
    }

    /// True when these groups and calls may be evaluated as vectors (see `vector`).
    pub(crate) fn batchable(groups: &[crate::expr::Bound], calls: &[AggCall]) -> bool {
        groups.iter().all(vector::batchable)
            && calls.iter().all(|c| {
                c.filter
                    .iter()
                    .chain(&c.arg)
                    .chain(&c.delimiter)
                    .all(vector::batchable)
                    && c.order_by.iter().all(|k| vector::batchable(&k.expr))
            })
    }

    /// Evaluates a batch's group keys and aggregate inputs as vectors, changing nothing: a
    /// batch that fails here is run again row at a time with [`Grouper::add`].
    pub(crate) fn prepare_batch(
        groups: &[crate::expr::Bound],
        calls: &[AggCall],
        cx: &BatchCx,
        sel: &[u32],
    ) -> Result<AggBatch, SqlError> {
        let opt = |b: &Option<crate::expr::Bound>| -> Result<Option<Vector>, SqlError> {
            b.as_ref()
                .map(|b| vector::eval_batch(b, cx, sel))
                .transpose()
        };
        let mut inputs = Vec::with_capacity(calls.len());
        for c in calls {
            inputs.push(CallInputs {
                filter: opt(&c.filter)?,
                arg: opt(&c.arg)?,
                delimiter: opt(&c.delimiter)?,
                order: c
                    .order_by
                    .iter()
                    .map(|k| vector::eval_batch(&k.expr, cx, sel))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(AggBatch {
            keys: groups
                .iter()
                .map(|g| vector::eval_batch(g, cx, sel))
                .collect::<Result<_, _>>()?,
            calls: inputs,
        })
    }

    /// Adds a prepared batch's rows, in row order, as [`Grouper::add`] adds them one by one
    /// (so an aggregate's own error, an overflow, shows at the same row).
    pub(crate) fn add_batch(
        &mut self,
        calls: &[AggCall],
        mut batch: AggBatch,
        rows: &[Row],
        sel: &[u32],
    ) -> Result<(), SqlError> {
        // Without GROUP BY every row goes to one group; it exists once a row has come.
        let single = match (batch.keys.is_empty(), sel.is_empty()) {
            (true, false) => Some(self.slot(Vec::new(), calls)),
            _ => None,
        };
        // Calls that cannot fail fold the whole batch first (their order with the others
        // does not matter); the rest go row by row, so their errors keep row order.
        let mut by_row = vec![true; calls.len()];
        if let Some(slot) = single {
            let states = &mut self.states[slot].1;
            for (c, call) in calls.iter().enumerate() {
                by_row[c] = !fold_vector(call, &mut states[c], &batch.calls[c], rows, sel);
            }
            if !by_row.contains(&true) {
                return Ok(());
            }
        }
        for k in 0..sel.len() {
            let slot = match single {
                Some(slot) => slot,
                None => {
                    let values = batch
                        .keys
                        .iter_mut()
                        .map(|v| v.take(rows, sel, k))
                        .collect();
                    self.slot(values, calls)
                }
            };
            for (((call, state), inputs), _) in calls
                .iter()
                .zip(self.states[slot].1.iter_mut())
                .zip(batch.calls.iter_mut())
                .zip(&by_row)
                .filter(|(_, &by_row)| by_row)
            {
                if let Some(f) = &inputs.filter {
                    if *f.at(rows, sel, k) != Datum::Bool(true) {
                        continue;
                    }
                }
                let value = inputs.arg.as_mut().map(|v| v.take(rows, sel, k));
                let delimiter = inputs.delimiter.as_mut().map(|v| v.take(rows, sel, k));
                if let AggState::Sorted(sorted) = state {
                    sorted.push(SortedInput {
                        keys: inputs
                            .order
                            .iter_mut()
                            .map(|v| v.take(rows, sel, k))
                            .collect(),
                        value: value.unwrap_or(Datum::Null),
                        delimiter,
                    });
                    continue;
                }
                state.add(call, value, delimiter)?;
            }
        }
        Ok(())
    }

    /// Combines another grouper's partial states for one group (a shard's reply).
    pub(crate) fn merge(&mut self, key_values: Row, states: Vec<AggState>, calls: &[AggCall]) {
        assert_eq!(states.len(), calls.len(), "one partial state per call");
        let slot = self.slot(key_values, calls);
        for ((call, mine), theirs) in calls.iter().zip(self.states[slot].1.iter_mut()).zip(states) {
            mine.merge(call, theirs);
        }
    }

    /// The groups and their partial states (what a shard sends back).
    pub(crate) fn into_partials(self) -> Vec<(Row, Vec<AggState>)> {
        self.states
    }

    /// One row per group: its values, then each call's result. Without GROUP BY
    /// (`ungrouped`), an empty input still yields one row.
    pub(crate) fn finish(
        mut self,
        ungrouped: bool,
        calls: &[AggCall],
    ) -> Result<Vec<Row>, SqlError> {
        if ungrouped && self.states.is_empty() {
            self.states
                .push((Vec::new(), calls.iter().map(AggState::new).collect()));
        }
        self.states
            .into_iter()
            .map(|(mut key, states)| {
                for (call, s) in calls.iter().zip(states) {
                    key.push(s.finish(call)?);
                }
                Ok(key)
            })
            .collect()
    }
}

/// A batch's group key values and aggregate inputs, one vector each (see
/// [`Grouper::prepare_batch`]).
pub(crate) struct AggBatch {
    keys: Vec<Vector>,
    calls: Vec<CallInputs>,
}

/// One aggregate call's inputs over a batch.
struct CallInputs {
    filter: Option<Vector>,
    arg: Option<Vector>,
    delimiter: Option<Vector>,
    order: Vec<Vector>,
}

/// The hash-join key of a row's key values (None: a NULL, which matches nothing).
pub(crate) fn join_key<'d>(values: impl Iterator<Item = &'d Datum>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for d in values {
        if d.is_null() {
            return None;
        }
        hash_key_datum(&mut out, d);
    }
    Some(out)
}

fn too_many_rows() -> SqlError {
    SqlError::new(
        PROGRAM_LIMIT_EXCEEDED,
        format!("statement would hold more than {STATEMENT_ROWS_MAX} rows in memory"),
    )
}

/// A byte key equal for equal values (grouping, DISTINCT, hashing): NULLs are equal here.
pub(crate) fn group_key(values: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for d in values {
        if d.is_null() {
            out.push(0);
        } else {
            out.push(1);
            hash_key_datum(&mut out, d);
        }
    }
    out
}

fn hash_key_datum(out: &mut Vec<u8>, d: &Datum) {
    match d {
        // -0 and 0 are equal; all NaNs are equal.
        Datum::Float(f) => {
            let f = if *f == 0.0 {
                0.0
            } else if f.is_nan() {
                f64::NAN
            } else {
                *f
            };
            out.push(3);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Datum::Numeric(n) => {
            out.push(5);
            let t = crate::numeric::to_text(&n.normalized());
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        Datum::Text(s) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Datum::Int(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Datum::Bool(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        Datum::Type(t) => {
            out.push(6);
            out.extend_from_slice(&t.oid().to_le_bytes());
        }
        Datum::Float4(f) => hash_key_datum(out, &Datum::Float(f64::from(*f))),
        // Equal intervals ('1 day' = '24 hours') group together.
        Datum::Interval(iv) => {
            out.push(7);
            out.extend_from_slice(&iv.span().to_le_bytes());
        }
        Datum::Array(items) => {
            out.push(8);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            out.extend_from_slice(&group_key(items));
        }
        // The rest are equal exactly when their stored bytes are.
        Datum::Bytes(_)
        | Datum::Date(_)
        | Datum::Time(_)
        | Datum::Timestamp(_)
        | Datum::TimestampTz(_)
        | Datum::Uuid(_)
        | Datum::Json(_) => {
            out.push(9);
            let bytes = crate::rowcodec::encode_row(std::slice::from_ref(d));
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Datum::Null => out.push(0),
    }
}

fn set_op(op: SetOpKind, all: bool, left: Vec<Row>, right: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOpKind::Union, true) => left.into_iter().chain(right).collect(),
        (SetOpKind::Union, false) => {
            let mut seen = HashSet::new();
            left.into_iter()
                .chain(right)
                .filter(|r| seen.insert(group_key(r)))
                .collect()
        }
        (SetOpKind::Intersect | SetOpKind::Except, _) => {
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in &right {
                *counts.entry(group_key(r)).or_default() += 1;
            }
            let mut emitted = HashSet::new();
            let mut out = Vec::new();
            for r in left {
                let k = group_key(&r);
                let in_right = counts.get(&k).copied().unwrap_or(0);
                let keep = match (op, all) {
                    (SetOpKind::Intersect, true) => {
                        if in_right > 0 {
                            counts.insert(k.clone(), in_right - 1);
                            true
                        } else {
                            false
                        }
                    }
                    (SetOpKind::Intersect, false) => in_right > 0 && emitted.insert(k.clone()),
                    (SetOpKind::Except, true) => {
                        if in_right > 0 {
                            counts.insert(k.clone(), in_right - 1);
                            false
                        } else {
                            true
                        }
                    }
                    _ => in_right == 0 && emitted.insert(k.clone()),
                };
                if keep {
                    out.push(r);
                }
            }
            out
        }
    }
}

/// One aggregate's running state.
#[derive(Debug)]
pub(crate) enum AggState {
    Count(i64),
    /// Integer sums are exact in i128 (sum(int8) overflows only past numeric's reach).
    SumInt(Option<i128>, i64),
    SumNumeric(Option<BigDecimal>, i64),
    SumFloat(Option<f64>, i64),
    /// sum(real): added in single precision, as PostgreSQL does.
    SumReal(Option<f32>),
    /// sum/avg(interval): field by field, failing on overflow as PostgreSQL's interval_pl.
    SumInterval(Option<datetime::Interval>, i64),
    MinMax(Option<Datum>),
    Bool(Option<bool>),
    Text(Option<String>),
    /// count/sum/avg(DISTINCT x): the distinct values seen, then folded at the end.
    Distinct(Vec<Datum>, HashSet<Vec<u8>>),
    /// array_agg's elements, NULLs included (None: no input row).
    Array(Option<Vec<Datum>>),
    /// A call with ORDER BY (`AggCall::order_by`): every input, sorted and folded at the end.
    Sorted(Vec<SortedInput>),
}

/// True when min/max (`func`) of the values so far (`cur`) becomes `value`. Of equal values
/// (1.0 and 1.00, '1 day' and '24 hours', 0 and -0) the later one wins, as in PostgreSQL's
/// numeric_smaller, interval_larger, ...
fn replaces(func: AggFunc, value: &Datum, cur: Option<&Datum>) -> bool {
    match cur {
        None => true,
        Some(cur) => {
            let o = crate::expr::compare(value, cur);
            if func == AggFunc::Min {
                o != std::cmp::Ordering::Greater
            } else {
                o != std::cmp::Ordering::Less
            }
        }
    }
}

/// Folds a whole batch's inputs of one call into its state at once, for the calls whose
/// folding cannot fail (counts, integer sums, min/max) and that take every row (no FILTER,
/// DISTINCT or ORDER BY). False when the call is not one of them: it goes row by row.
fn fold_vector(
    call: &AggCall,
    state: &mut AggState,
    inputs: &CallInputs,
    rows: &[Row],
    sel: &[u32],
) -> bool {
    if inputs.filter.is_some() || call.distinct || !call.order_by.is_empty() {
        return false;
    }
    let n = sel.len();
    let arg = |k: usize| inputs.arg.as_ref().map(|v| v.at(rows, sel, k));
    match (call.func, state) {
        (AggFunc::CountStar, AggState::Count(c)) => *c += n as i64,
        (AggFunc::Count, AggState::Count(c)) => {
            *c += (0..n).filter(|&k| arg(k) != Some(&Datum::Null)).count() as i64
        }
        (AggFunc::Sum | AggFunc::Avg, AggState::SumInt(sum, c)) => {
            let (mut acc, mut m) = (0i128, 0i64);
            for k in 0..n {
                if let Some(Datum::Int(v)) = arg(k) {
                    acc += i128::from(*v);
                    m += 1;
                }
            }
            if m > 0 {
                *sum = Some(sum.unwrap_or(0) + acc);
                *c += m;
            }
        }
        (AggFunc::Min | AggFunc::Max, AggState::MinMax(m)) => {
            let mut best: Option<&Datum> = m.as_ref();
            let mut changed = false;
            for k in 0..n {
                match arg(k) {
                    Some(Datum::Null) | None => {}
                    Some(v) => {
                        if replaces(call.func, v, best) {
                            best = Some(v);
                            changed = true;
                        }
                    }
                }
            }
            if changed {
                *m = best.cloned();
            }
        }
        _ => return false,
    }
    true
}

/// One input of an ordered aggregate: its ORDER BY key values, argument and delimiter.
#[derive(Debug)]
pub(crate) struct SortedInput {
    keys: Row,
    value: Datum,
    delimiter: Option<Datum>,
}

impl AggState {
    fn new(call: &AggCall) -> AggState {
        if !call.order_by.is_empty() {
            return AggState::Sorted(Vec::new());
        }
        if call.distinct {
            return AggState::Distinct(Vec::new(), HashSet::new());
        }
        let arg_ty = call.arg.as_ref().map(|a| a.ty);
        match call.func {
            AggFunc::CountStar | AggFunc::Count => AggState::Count(0),
            AggFunc::Sum | AggFunc::Avg => match arg_ty {
                Some(t) if t.is_integer() => AggState::SumInt(None, 0),
                Some(SqlType::Numeric) => AggState::SumNumeric(None, 0),
                Some(SqlType::Float4) => AggState::SumReal(None),
                Some(SqlType::Interval) => AggState::SumInterval(None, 0),
                _ => AggState::SumFloat(None, 0),
            },
            AggFunc::Min | AggFunc::Max => AggState::MinMax(None),
            AggFunc::BoolAnd | AggFunc::BoolOr => AggState::Bool(None),
            AggFunc::StringAgg => AggState::Text(None),
            AggFunc::ArrayAgg => AggState::Array(None),
        }
    }

    fn add(
        &mut self,
        call: &AggCall,
        value: Option<Datum>,
        delimiter: Option<Datum>,
    ) -> Result<(), SqlError> {
        if call.func == AggFunc::CountStar {
            if let AggState::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        }
        let value = value.unwrap_or(Datum::Null);
        // Aggregates skip NULL inputs, but for array_agg, which keeps them as elements.
        if value.is_null() && call.func != AggFunc::ArrayAgg {
            return Ok(());
        }
        match self {
            AggState::Array(elements) => elements.get_or_insert_with(Vec::new).push(value),
            AggState::Sorted(_) => unreachable!("ordered inputs are collected by the grouper"),
            AggState::Distinct(values, seen) => {
                if seen.insert(group_key(std::slice::from_ref(&value))) {
                    values.push(value);
                }
            }
            AggState::Count(n) => *n += 1,
            AggState::SumInt(s, n) => {
                let Datum::Int(v) = value else {
                    unreachable!("integer sum of {value:?}")
                };
                *s = Some(s.unwrap_or(0) + i128::from(v));
                *n += 1;
            }
            AggState::SumNumeric(s, n) => {
                let Datum::Numeric(v) = value else {
                    unreachable!("numeric sum of {value:?}")
                };
                *s = Some(match s.take() {
                    Some(acc) => acc + v,
                    None => v,
                });
                *n += 1;
            }
            AggState::SumFloat(s, n) => {
                let Datum::Float(v) = value else {
                    unreachable!("float sum of {value:?}")
                };
                *s = Some(match *s {
                    Some(acc) => float_add(acc, v)?,
                    None => v,
                });
                *n += 1;
            }
            AggState::SumReal(s) => {
                let Datum::Float4(v) = value else {
                    unreachable!("real sum of {value:?}")
                };
                *s = Some(match *s {
                    Some(acc) => {
                        let sum = acc + v;
                        check_float_sum(sum.is_infinite(), acc.is_infinite() || v.is_infinite())?;
                        sum
                    }
                    None => v,
                });
            }
            AggState::SumInterval(s, n) => {
                let Datum::Interval(v) = value else {
                    unreachable!("interval sum of {value:?}")
                };
                *s = Some(match s {
                    Some(acc) => datetime::add_intervals(acc, &v, 1)?,
                    None => v,
                });
                *n += 1;
            }
            AggState::MinMax(m) => {
                if replaces(call.func, &value, m.as_ref()) {
                    *m = Some(value);
                }
            }
            AggState::Bool(b) => {
                let Datum::Bool(v) = value else {
                    unreachable!("bool aggregate of {value:?}")
                };
                *b = Some(match (*b, call.func) {
                    (None, _) => v,
                    (Some(acc), AggFunc::BoolAnd) => acc && v,
                    (Some(acc), _) => acc || v,
                });
            }
            AggState::Text(t) => {
                let Datum::Text(v) = value else {
                    unreachable!("string_agg of {value:?}")
                };
                match t {
                    None => *t = Some(v),
                    Some(acc) => {
                        if let Some(Datum::Text(d)) = &delimiter {
                            acc.push_str(d);
                        }
                        acc.push_str(&v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Folds in the state of the same call over other rows that come after this state's
    /// (a later shard's partial state). Exact for everything the planner splits: counts,
    /// integer and numeric sums (exact arithmetic), min/max (the later of equal values
    /// wins, as when adding row by row) and bool_and/or. Float sums are not split (their
    /// rounding depends on the order of additions), nor interval sums (where an overflow
    /// error shows depends on it too); string_agg and DISTINCT never are.
    fn merge(&mut self, call: &AggCall, other: AggState) {
        match (self, other) {
            (AggState::Count(a), AggState::Count(b)) => *a += b,
            (AggState::SumInt(s, n), AggState::SumInt(t, m)) => {
                *s = match (*s, t) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                *n += m;
            }
            (AggState::SumNumeric(s, n), AggState::SumNumeric(t, m)) => {
                *s = match (s.take(), t) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                *n += m;
            }
            (AggState::SumFloat(s, n), AggState::SumFloat(t, m)) => {
                *s = match (*s, t) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                *n += m;
            }
            (me @ AggState::MinMax(_), AggState::MinMax(Some(v))) => {
                me.add(call, Some(v), None)
                    .expect("min/max of a value never fails");
            }
            (AggState::MinMax(_), AggState::MinMax(None)) => {}
            (AggState::Bool(b), AggState::Bool(c)) => {
                *b = match (*b, c) {
                    (Some(x), Some(y)) if call.func == AggFunc::BoolAnd => Some(x && y),
                    (Some(x), Some(y)) => Some(x || y),
                    (x, y) => x.or(y),
                };
            }
            (me, other) => unreachable!("partial states {me:?} and {other:?} do not combine"),
        }
    }

    fn finish(self, call: &AggCall) -> Result<Datum, SqlError> {
        match self {
            AggState::Distinct(values, _) => {
                let mut plain = AggCall {
                    distinct: false,
                    ..call.clone()
                };
                plain.distinct = false;
                let mut s = AggState::new(&plain);
                for v in values {
                    s.add(&plain, Some(v), None)?;
                }
                s.finish(&plain)
            }
            AggState::Sorted(inputs) => fold_sorted(call, inputs),
            AggState::Array(elements) => Ok(elements.map_or(Datum::Null, Datum::Array)),
            AggState::Count(n) => Ok(Datum::Int(n)),
            AggState::SumInt(s, n) => match (s, call.func) {
                (None, _) => Ok(Datum::Null),
                (Some(s), AggFunc::Sum) if call.ty == SqlType::Int8 => {
                    SqlType::Int8.check_int(i64::try_from(s).ok())
                }
                (Some(s), AggFunc::Sum) => Ok(Datum::Numeric(BigDecimal::from(s))),
                (Some(s), _) => Ok(Datum::Numeric(crate::numeric::div(
                    &BigDecimal::from(s),
                    &BigDecimal::from(n),
                )?)),
            },
            AggState::SumNumeric(s, n) => match (s, call.func) {
                (None, _) => Ok(Datum::Null),
                (Some(s), AggFunc::Sum) => Ok(Datum::Numeric(s)),
                (Some(s), _) => Ok(Datum::Numeric(crate::numeric::div(
                    &s,
                    &BigDecimal::from(n),
                )?)),
            },
            AggState::SumFloat(s, n) => match (s, call.func) {
                (None, _) => Ok(Datum::Null),
                (Some(s), AggFunc::Sum) => Ok(Datum::Float(s)),
                (Some(s), _) => Ok(Datum::Float(s / n as f64)),
            },
            AggState::SumReal(s) => {
                assert_eq!(
                    call.func,
                    AggFunc::Sum,
                    "avg(real) adds in double precision"
                );
                Ok(s.map_or(Datum::Null, Datum::Float4))
            }
            AggState::SumInterval(s, n) => match (s, call.func) {
                (None, _) => Ok(Datum::Null),
                (Some(s), AggFunc::Sum) => Ok(Datum::Interval(s)),
                (Some(s), _) => {
                    assert!(n > 0, "an interval average of no values");
                    Ok(Datum::Interval(datetime::divide_interval(&s, n as f64)?))
                }
            },
            AggState::MinMax(m) => Ok(m.unwrap_or(Datum::Null)),
            AggState::Bool(b) => Ok(b.map_or(Datum::Null, Datum::Bool)),
            AggState::Text(t) => Ok(t.map_or(Datum::Null, Datum::Text)),
        }
    }
}

/// A float sum's next value: PostgreSQL's float8pl/float4pl fail when finite values add up
/// to an infinity.
fn float_add(acc: f64, v: f64) -> Result<f64, SqlError> {
    let sum = acc + v;
    check_float_sum(sum.is_infinite(), acc.is_infinite() || v.is_infinite())?;
    Ok(sum)
}

fn check_float_sum(sum_infinite: bool, input_infinite: bool) -> Result<(), SqlError> {
    if sum_infinite && !input_infinite {
        return Err(SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: overflow",
        ));
    }
    Ok(())
}

/// An ordered aggregate's result: its inputs sorted stably by the call's ORDER BY (ties
/// keep input order), with DISTINCT the repeats of a value dropped (they are adjacent: the
/// keys are arguments), then folded as the call without ORDER BY or DISTINCT would.
fn fold_sorted(call: &AggCall, mut inputs: Vec<SortedInput>) -> Result<Datum, SqlError> {
    inputs.sort_by(|a, b| compare_sort_keys(&call.order_by, &a.keys, &b.keys));
    if call.distinct {
        inputs.dedup_by(|b, a| {
            group_key(std::slice::from_ref(&a.value)) == group_key(std::slice::from_ref(&b.value))
        });
    }
    let plain = AggCall {
        distinct: false,
        order_by: Vec::new(),
        ..call.clone()
    };
    let mut state = AggState::new(&plain);
    for input in inputs {
        state.add(&plain, Some(input.value), input.delimiter)?;
    }
    state.finish(&plain)
}

/// Evaluates a subquery expression for the current row of `cx`.
pub(crate) fn eval_subquery(sq: &SubqueryExpr, cx: &Eval) -> Result<Datum, SqlError> {
    let inputs = cx
        .inputs
        .ok_or_else(|| SqlError::new(INTERNAL_ERROR, "subquery evaluated without its inputs"))?;
    let rows = Executor {
        env: cx.env,
        inputs,
        outer: Some(cx),
    }
    .run(&sq.plan)?;
    match &sq.mode {
        SubqueryMode::Exists => Ok(Datum::Bool(!rows.is_empty())),
        SubqueryMode::Scalar => match rows.len() {
            0 => Ok(Datum::Null),
            1 => Ok(rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .unwrap_or(Datum::Null)),
            _ => Err(SqlError::new(
                CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )),
        },
        SubqueryMode::Array => match crate::expr::array_subquery_type(sq.column_ty) {
            Some(_) => Ok(Datum::Array(
                rows.into_iter()
                    .map(|r| r.into_iter().next().unwrap_or(Datum::Null))
                    .collect(),
            )),
            None => Ok(crate::pgcatalog::array_from_rows(rows, sq.column_ty, cx)),
        },
        SubqueryMode::In(x) => {
            let v = eval(x, cx)?;
            if v.is_null() {
                return Ok(if rows.is_empty() {
                    Datum::Bool(false)
                } else {
                    Datum::Null
                });
            }
            let mut saw_null = false;
            for r in rows {
                let w = r.into_iter().next().unwrap_or(Datum::Null);
                if w.is_null() {
                    saw_null = true;
                    continue;
                }
                let w = if sq.column_ty != x.ty {
                    crate::types::cast(w, sq.column_ty, x.ty, -1, &cx.env.style)?
                } else {
                    w
                };
                if crate::expr::compare(&v, &w) == std::cmp::Ordering::Equal {
                    return Ok(Datum::Bool(true));
                }
            }
            Ok(if saw_null {
                Datum::Null
            } else {
                Datum::Bool(false)
            })
        }
    }
}
