//! Vectorized execution: expressions evaluated over a batch of rows at a time.
//!
//! A batch is up to [`BATCH_ROWS`] rows (row-major, as the row codec decodes them) and a
//! *selection vector*: the positions of the rows still live. A filter narrows the selection
//! instead of copying rows, and later expressions are evaluated for the selected rows only.
//! An expression evaluates to a [`Vector`], one value per selected row: a column read in
//! place (no copy), a constant (one copy for the whole batch) or computed values.
//!
//! The node kinds filters and aggregates are made of — columns, constants, parameters,
//! comparisons, AND/OR/NOT, IS [NOT] NULL / TRUE / FALSE, arithmetic, casts, IN lists of
//! constants, [I]LIKE — run as one loop per node over the batch, so the interpreter's
//! dispatch and the recursion happen once per batch rather than once per row. Every other
//! kind (function calls, CASE, COALESCE, ...) is evaluated row by row inside the batch by
//! the scalar evaluator. The loops call the scalar evaluator's operator functions
//! (`compare_op`, `arith`, `and_or`, `types::cast`, `like`), so both paths share one
//! definition of every operator.
//!
//! **Errors.** A batch evaluates a node for rows that row-at-a-time execution might never
//! reach (rows past a LIMIT), and in another order (one node for every row, then the next
//! node). So a batch's error is never reported as is: the caller runs that batch again
//! row at a time, which fails — or does not — exactly where PostgreSQL would.
//! That is sound because batch evaluation has no effect to undo: expressions with effects
//! (nextval, setval) and subqueries are never batched ([`batchable`]).

use std::cell::Cell;

use crate::error::SqlError;
use crate::exec::{Inputs, Row};
use crate::expr::{self, and_or, compare_op, eval, Bound, Env, Eval, Func, Kind};
use crate::types::{self, Datum, SqlType};

/// Rows in a batch at most: enough to amortize dispatch, few enough that a batch's values
/// stay in the CPU's caches.
pub(crate) const BATCH_ROWS: usize = 1024;

thread_local! {
    /// Set when this thread must run row at a time (`helios.vectorized = off`, tests).
    static ROW_AT_A_TIME: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread's execution row at a time (or vectorized again). Tests compare both.
#[cfg(test)]
pub(crate) fn set_row_at_a_time(on: bool) {
    ROW_AT_A_TIME.with(|f| f.set(on));
}

/// True when batches are evaluated as vectors: the session did not turn it off
/// (`SET helios.vectorized = off`) and no test forced row-at-a-time on this thread.
pub(crate) fn enabled(env: &Env) -> bool {
    env.vectorized && !ROW_AT_A_TIME.with(|f| f.get())
}

/// True when `b` may be evaluated as a vector: it has no effect that evaluating it twice
/// would repeat (nextval, setval) and no subquery (evaluated per row, at any cost).
pub(crate) fn batchable(b: &Bound) -> bool {
    let mut ok = true;
    b.visit(&mut |n| match &n.kind {
        Kind::Func(Func::NextVal | Func::SetVal, _) | Kind::Subquery(_) => ok = false,
        _ => {}
    });
    ok
}

/// What an expression is evaluated over: a batch of rows and the scalar evaluator's
/// surroundings (environment, enclosing query's row, fetched inputs), which row-by-row
/// nodes need.
pub(crate) struct BatchCx<'a> {
    pub(crate) env: &'a Env,
    pub(crate) rows: &'a [Row],
    pub(crate) outer: Option<&'a Eval<'a>>,
    pub(crate) inputs: Option<&'a Inputs>,
}

impl<'a> BatchCx<'a> {
    /// A batch on a shard: fragments carry only row-local expressions.
    pub(crate) fn on_shard(env: &'a Env, rows: &'a [Row]) -> BatchCx<'a> {
        BatchCx {
            env,
            rows,
            outer: None,
            inputs: None,
        }
    }

    fn row_cx(&self, row: usize) -> Eval<'_> {
        Eval {
            env: self.env,
            row: &self.rows[row],
            outer: self.outer,
            inputs: self.inputs,
        }
    }
}

/// One value per selected row of a batch.
pub(crate) enum Vector {
    /// The same value for every row.
    Const(Datum),
    /// A column of the batch's rows, read in place.
    Column(usize),
    /// Computed values, indexed like the selection.
    Values(Vec<Datum>),
}

impl Vector {
    /// The value for the `k`-th selected row (row `sel[k]`).
    #[inline]
    pub(crate) fn at<'v>(&'v self, rows: &'v [Row], sel: &[u32], k: usize) -> &'v Datum {
        match self {
            Vector::Const(d) => d,
            Vector::Column(c) => &rows[sel[k] as usize][*c],
            Vector::Values(v) => &v[k],
        }
    }

    /// The value for the `k`-th selected row, moved out where the vector owns it.
    pub(crate) fn take(&mut self, rows: &[Row], sel: &[u32], k: usize) -> Datum {
        match self {
            Vector::Const(d) => d.clone(),
            Vector::Column(c) => rows[sel[k] as usize][*c].clone(),
            Vector::Values(v) => std::mem::replace(&mut v[k], Datum::Null),
        }
    }
}

/// The selection of a whole batch of `n` rows.
pub(crate) fn all(n: usize) -> Vec<u32> {
    assert!(n <= u32::MAX as usize, "a batch is indexed by u32");
    (0..n as u32).collect()
}

/// The selected rows for which `pred` is true (not false, not NULL), in order.
pub(crate) fn filter(pred: &Bound, cx: &BatchCx, sel: &[u32]) -> Result<Vec<u32>, SqlError> {
    let v = eval_batch(pred, cx, sel)?;
    Ok(sel
        .iter()
        .enumerate()
        .filter(|&(k, _)| *v.at(cx.rows, sel, k) == Datum::Bool(true))
        .map(|(_, &i)| i)
        .collect())
}

/// `b` over the selected rows of the batch.
pub(crate) fn eval_batch(b: &Bound, cx: &BatchCx, sel: &[u32]) -> Result<Vector, SqlError> {
    let rows = cx.rows;
    let n = sel.len();
    Ok(match &b.kind {
        Kind::Const(d) => Vector::Const(d.clone()),
        Kind::Column(c) => Vector::Column(*c),
        Kind::Param(p) => Vector::Const(cx.env.params.get(*p).cloned().unwrap_or(Datum::Null)),
        Kind::Cmp {
            op,
            l,
            r,
            null_safe,
        } => {
            let (x, y) = (eval_batch(l, cx, sel)?, eval_batch(r, cx, sel)?);
            Vector::Values(compare_kernel(*op, *null_safe, l.ty, &x, &y, rows, sel))
        }
        Kind::And(l, r) | Kind::Or(l, r) => {
            let is_and = matches!(b.kind, Kind::And(..));
            let x = eval_batch(l, cx, sel)?;
            let left: Vec<Option<bool>> = (0..n).map(|k| truth(x.at(rows, sel, k))).collect();
            // The right side is evaluated where the left one does not decide, as the scalar
            // evaluator does (and for every row when it is constant: PostgreSQL folds it).
            let undecided: Vec<usize> = (0..n)
                .filter(|&k| left[k] != Some(!is_and) || r.is_constant())
                .collect();
            let sub: Vec<u32> = undecided.iter().map(|&k| sel[k]).collect();
            let y = eval_batch(r, cx, &sub)?;
            let mut out: Vec<Datum> = vec![Datum::Bool(!is_and); n];
            for (j, &k) in undecided.iter().enumerate() {
                out[k] = if left[k] == Some(!is_and) {
                    Datum::Bool(!is_and)
                } else {
                    and_or(is_and, left[k], truth(y.at(rows, &sub, j)))
                };
            }
            Vector::Values(out)
        }
        Kind::Not(x) => {
            let x = eval_batch(x, cx, sel)?;
            map(n, |k| {
                truth(x.at(rows, sel, k)).map_or(Datum::Null, |v| Datum::Bool(!v))
            })
        }
        Kind::IsNull(x, negated) => {
            let x = eval_batch(x, cx, sel)?;
            map(n, |k| {
                Datum::Bool((x.at(rows, sel, k).is_null()) != *negated)
            })
        }
        Kind::IsBool(x, value, negated) => {
            let x = eval_batch(x, cx, sel)?;
            map(n, |k| {
                Datum::Bool((truth(x.at(rows, sel, k)) == *value) != *negated)
            })
        }
        Kind::Arith(a, l, r) => {
            let (x, y) = (eval_batch(l, cx, sel)?, eval_batch(r, cx, sel)?);
            let mut out = Vec::with_capacity(n);
            for k in 0..n {
                let (p, q) = (x.at(rows, sel, k), y.at(rows, sel, k));
                out.push(match (p, q) {
                    (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
                    // The common case without the clones the general operator takes.
                    (Datum::Int(p), Datum::Int(q)) if b.ty.is_integer() => {
                        int_arith(*a, b.ty, *p, *q, &cx.env.style)?
                    }
                    _ => expr::arith(*a, b.ty, p.clone(), q.clone(), &cx.env.style)?,
                });
            }
            Vector::Values(out)
        }
        Kind::Cast(x) => {
            let v = eval_batch(x, cx, sel)?;
            let mut out = Vec::with_capacity(n);
            for k in 0..n {
                out.push(types::cast(
                    v.at(rows, sel, k).clone(),
                    x.ty,
                    b.ty,
                    b.typmod,
                    &cx.env.style,
                )?);
            }
            Vector::Values(out)
        }
        Kind::InList { x, list, negated }
            if list.iter().all(|i| matches!(i.kind, Kind::Const(_))) =>
        {
            let v = eval_batch(x, cx, sel)?;
            let items: Vec<&Datum> = list
                .iter()
                .map(|i| match &i.kind {
                    Kind::Const(d) => d,
                    _ => unreachable!("checked above"),
                })
                .collect();
            let saw_null_item = items.iter().any(|d| d.is_null());
            map(n, |k| {
                let d = v.at(rows, sel, k);
                if d.is_null() {
                    return Datum::Null;
                }
                if items
                    .iter()
                    .any(|w| !w.is_null() && expr::compare(d, w).is_eq())
                {
                    Datum::Bool(!negated)
                } else if saw_null_item {
                    Datum::Null
                } else {
                    Datum::Bool(*negated)
                }
            })
        }
        Kind::Like {
            x,
            pattern,
            negated,
            case_insensitive,
        } => {
            let (v, p) = (eval_batch(x, cx, sel)?, eval_batch(pattern, cx, sel)?);
            let mut out = Vec::with_capacity(n);
            for k in 0..n {
                out.push(match (v.at(rows, sel, k), p.at(rows, sel, k)) {
                    (Datum::Text(v), Datum::Text(p)) => {
                        let hit = if *case_insensitive {
                            expr::like(&v.to_lowercase(), &p.to_lowercase())?
                        } else {
                            expr::like(v, p)?
                        };
                        Datum::Bool(hit != *negated)
                    }
                    _ => Datum::Null,
                });
            }
            Vector::Values(out)
        }
        _ => {
            let mut out = Vec::with_capacity(n);
            for &i in sel {
                out.push(eval(b, &cx.row_cx(i as usize))?);
            }
            Vector::Values(out)
        }
    })
}

/// Integer arithmetic of two non-NULL values, as `expr::arith` does it for integers.
#[inline]
fn int_arith(
    a: expr::Arith,
    ty: SqlType,
    p: i64,
    q: i64,
    style: &types::Style,
) -> Result<Datum, SqlError> {
    use expr::Arith;
    match a {
        Arith::Add => ty.check_int(p.checked_add(q)),
        Arith::Sub => ty.check_int(p.checked_sub(q)),
        Arith::Mul => ty.check_int(p.checked_mul(q)),
        // Division, modulo and powers have their own error rules: one definition of them.
        _ => expr::arith(a, ty, Datum::Int(p), Datum::Int(q), style),
    }
}

/// A comparison over two vectors, with loops of their own for the commonest shapes: a
/// column against a constant of the same type.
fn compare_kernel(
    op: expr::Cmp,
    null_safe: bool,
    ty: SqlType,
    x: &Vector,
    y: &Vector,
    rows: &[Row],
    sel: &[u32],
) -> Vec<Datum> {
    let n = sel.len();
    if let (Vector::Column(c), Vector::Const(Datum::Int(v))) = (x, y) {
        let (c, v) = (*c, *v);
        return sel
            .iter()
            .map(|&i| match &rows[i as usize][c] {
                Datum::Int(a) => Datum::Bool(expr::cmp_result(op, a.cmp(&v))),
                other => compare_op(op, null_safe, ty, other, &Datum::Int(v)),
            })
            .collect();
    }
    (0..n)
        .map(|k| compare_op(op, null_safe, ty, x.at(rows, sel, k), y.at(rows, sel, k)))
        .collect()
}

/// A boolean value's truth (None: NULL).
#[inline]
fn truth(d: &Datum) -> Option<bool> {
    match d {
        Datum::Bool(v) => Some(*v),
        Datum::Null => None,
        other => unreachable!("boolean operand {other:?}"),
    }
}

fn map(n: usize, f: impl FnMut(usize) -> Datum) -> Vector {
    Vector::Values((0..n).map(f).collect())
}
