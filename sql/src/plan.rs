//! The planner: a query's AST → a [`Plan`] tree plus the table [`Fetch`]es it reads.
//!
//! Distribution is decided here. Every base table becomes a `Fetch`: a fragment that runs on
//! each shard holding the table's rows (or on exactly one shard when the WHERE clause names the
//! whole primary key), with the filters that read only that table pushed into it. The rest of
//! the plan (joins, aggregation, sorting, limits, subqueries) runs on the coordinator — the
//! shard that owns the client's connection — over the fetched rows, except what
//! `pushdown.rs` then moves into the fragments (projections, limits, partial aggregates,
//! co-located joins).

use std::cell::RefCell;
use std::sync::Arc;

use sqlparser::ast::{self, Spanned};

use crate::catalog::{Catalog, Table, DEFAULT_SCHEMA};
use crate::error::*;
use crate::expr::{self, AggCall, Binder, Bound, Kind, Positions};
use crate::session::Session;
use crate::types::{Datum, SqlType, TYPMOD_NONE};
use crate::Column;

/// A column visible to name resolution.
#[derive(Debug, Clone)]
pub(crate) struct ScopeColumn {
    /// The table name or alias that qualifies it (None: a derived column without one).
    pub(crate) qualifier: Option<String>,
    pub(crate) name: String,
    pub(crate) ty: SqlType,
    pub(crate) typmod: i32,
    /// Only reachable qualified (a join's duplicate USING column).
    pub(crate) hidden: bool,
}

/// The columns of the row being built, and the enclosing query's scope.
pub(crate) struct Scope<'a> {
    pub(crate) columns: Vec<ScopeColumn>,
    pub(crate) parent: Option<&'a Scope<'a>>,
}

/// What binding after aggregation needs: the input scope, the GROUP BY expressions, and the
/// aggregate calls found so far (the aggregated row is groups then aggregates).
pub(crate) struct AggBinding<'a> {
    pub(crate) input: &'a Scope<'a>,
    pub(crate) group_ast: Vec<ast::Expr>,
    pub(crate) group_bound: Vec<Bound>,
    pub(crate) calls: RefCell<Vec<AggCall>>,
    /// The aggregated row as a scope (grouped plain columns keep their names), for subqueries.
    pub(crate) post_scope: Scope<'a>,
}

impl AggBinding<'_> {
    pub(crate) fn push(&self, call: AggCall, pos: Option<usize>) -> Bound {
        let mut calls = self.calls.borrow_mut();
        let ty = call.ty;
        calls.push(call);
        let mut b = Bound::column(self.group_bound.len() + calls.len() - 1, ty, TYPMOD_NONE);
        b.pos = pos;
        b
    }
}

#[derive(Debug, Clone)]
pub(crate) enum SubqueryMode {
    Scalar,
    Exists,
    /// `x IN (subquery)`: x, coerced to the comparison type.
    In(Box<Bound>),
    /// `ARRAY(subquery)`: the column's values as an array (in text form).
    Array,
}

#[derive(Debug, Clone)]
pub(crate) struct SubqueryExpr {
    pub(crate) plan: Plan,
    pub(crate) mode: SubqueryMode,
    /// The type of the subquery's (first) column.
    pub(crate) column_ty: SqlType,
}

/// A base-table read: runs on the shards as a fragment.
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    pub(crate) table: Arc<Table>,
    /// Conjuncts over the table's own columns, evaluated on the shards.
    pub(crate) filter: Option<Bound>,
    /// Work beyond the filter that runs in the fragment too (decided by `pushdown.rs` once
    /// the whole plan is known; the default returns whole filtered rows).
    pub(crate) push: FetchPush,
    /// SELECT ... FOR UPDATE / FOR SHARE: the shards lock the rows it returns.
    pub(crate) lock: Option<crate::txn::RowLock>,
    /// Read the newest committed rows (and the transaction's own), not the statement's or
    /// the transaction's snapshot: a foreign key's check must see what a concurrent
    /// transaction committed while this one waited for its lock.
    pub(crate) newest: bool,
}

impl Fetch {
    pub(crate) fn new(table: Arc<Table>, filter: Option<Bound>) -> Fetch {
        Fetch {
            table,
            filter,
            push: FetchPush::default(),
            lock: None,
            newest: false,
        }
    }

    /// Columns of the rows the fragment produces before projection: the table's, and the
    /// joined fetch's for a join (in the join's left-right order).
    pub(crate) fn row_width(&self) -> usize {
        self.table.columns.len() + self.push.join.as_ref().map_or(0, |j| j.other_width)
    }
}

/// What a fetch's fragment does besides filtering.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchPush {
    /// The row positions the coordinator reads, ascending (None: all). The fragment returns
    /// only these; the coordinator puts them back in place with NULL in the others.
    pub(crate) columns: Option<Vec<usize>>,
    /// Rows joined on the shard with another fetch's rows (co-located or broadcast).
    pub(crate) join: Option<ShardJoin>,
    pub(crate) output: FetchOutput,
    /// Another fetch's join reads this fetch's rows: it is not fetched on its own (a
    /// broadcast side is fetched by the fetch it is sent with).
    pub(crate) absorbed: bool,
}

/// What a fragment returns.
#[derive(Debug, Clone, Default)]
pub(crate) enum FetchOutput {
    /// Its rows, in the shard's key order.
    #[default]
    Rows,
    /// Its first `limit + offset` rows (LIMIT without ORDER BY).
    Limit { limit: Bound, offset: Option<Bound> },
    /// Its first `limit + offset` rows in `keys` order (over the fragment's row); the
    /// coordinator merges the shards' lists.
    TopN {
        keys: Vec<SortKey>,
        limit: Bound,
        offset: Option<Bound>,
    },
    /// One row per group with each call's partial state; the coordinator combines them and
    /// the fetch's rows are the aggregate's output (groups, then the calls' results).
    PartialAggregate {
        groups: Vec<Bound>,
        calls: Vec<AggCall>,
    },
}

/// A join of a fetch's rows with fetch `other`'s rows inside this fetch's fragments. The
/// fragment's row is always the join's: the left side's columns, then the right side's.
#[derive(Debug, Clone)]
pub(crate) struct ShardJoin {
    /// The fetch joined in: not fetched on its own (co-located), or fetched first and sent
    /// along (broadcast).
    pub(crate) other: usize,
    pub(crate) kind: JoinKind,
    pub(crate) method: JoinMethod,
    /// Over the joined row; row-local.
    pub(crate) residual: Option<Bound>,
    pub(crate) other_width: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum JoinMethod {
    /// This fetch is the left side, `other` the right; their primary keys are equated
    /// (`left_keys`, `right_keys` are the tables' key columns, pairwise equal), so matching
    /// rows always share a shard.
    Colocated {
        left_keys: Vec<usize>,
        right_keys: Vec<usize>,
    },
    /// `other`'s rows are read first, hashed on the coordinator and sent to every shard's
    /// fragment of this fetch, which probes them with its own rows. The keys are the plan's
    /// equi-join keys, over the left and the right row.
    Broadcast {
        left_keys: Vec<Bound>,
        right_keys: Vec<Bound>,
        /// `other` is the join's left side (this fetch its right side).
        other_is_left: bool,
    },
}

impl ShardJoin {
    /// Whether the fragments' rows, concatenated in shard order, are in the order the
    /// coordinator's hash join would produce them. Not when a broadcast left side is probed
    /// by the right side's rows: the coordinator reorders those (`dist::gather`).
    pub(crate) fn keeps_order(&self) -> bool {
        !matches!(
            self.method,
            JoinMethod::Broadcast {
                other_is_left: true,
                ..
            }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOpKind {
    Union,
    Intersect,
    Except,
}

#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    pub(crate) expr: Bound,
    pub(crate) descending: bool,
    pub(crate) nulls_first: bool,
}

/// A set-returning function of FROM, with its arguments (which may read the enclosing
/// query's row, never a sibling FROM item's: no LATERAL yet).
#[derive(Debug, Clone)]
pub(crate) enum TableFunc {
    /// generate_series(start, stop [, step]) of integers or numerics (step 1 by default),
    /// or of timestamps or timestamptzs with an interval step.
    Series {
        start: Box<Bound>,
        stop: Box<Bound>,
        step: Option<Box<Bound>>,
    },
    /// unnest(array, ...): the arrays' elements side by side, shorter ones padded with NULL.
    Unnest(Vec<Bound>),
    /// pg_partition_ancestors(regclass): the relation itself (there are no partitions), as
    /// psql's `\d` asks for it.
    PartitionAncestors(Box<Bound>),
}

impl TableFunc {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TableFunc::Series { .. } => "generate_series",
            TableFunc::Unnest(_) => "unnest",
            TableFunc::PartitionAncestors(_) => "pg_partition_ancestors",
        }
    }

    /// How many columns each of its rows has (before any ordinality).
    pub(crate) fn width(&self) -> usize {
        match self {
            TableFunc::Unnest(arrays) => arrays.len(),
            TableFunc::Series { .. } | TableFunc::PartitionAncestors(_) => 1,
        }
    }

    pub(crate) fn args(&self) -> Box<dyn Iterator<Item = &Bound> + '_> {
        match self {
            TableFunc::Series { start, stop, step } => {
                Box::new([&**start, &**stop].into_iter().chain(step.as_deref()))
            }
            TableFunc::Unnest(arrays) => Box::new(arrays.iter()),
            TableFunc::PartitionAncestors(relation) => Box::new(std::iter::once(&**relation)),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// One row without columns (SELECT without FROM).
    Unit,
    /// A function in FROM whose arguments read the FROM items before it (implicitly
    /// LATERAL, as PostgreSQL takes functions in FROM): each input row, followed by each of
    /// the rows the function gives for it.
    /// With several functions (set-returning functions in a select list, as PostgreSQL's
    /// ProjectSet runs them), their rows side by side, shorter ones padded with NULL.
    LateralFunction {
        input: Box<Plan>,
        funcs: Vec<TableFunc>,
        ordinality: bool,
    },
    /// A subquery in FROM that reads the FROM items before it (LATERAL): run for each input
    /// row, with that row as its enclosing query's row; each input row followed by each of
    /// its rows that passes `on`. With `keep_unmatched` (LEFT JOIN LATERAL), an input row no
    /// row of it passes is kept, null-extended.
    LateralSubquery {
        input: Box<Plan>,
        sub: Box<Plan>,
        sub_width: usize,
        on: Option<Bound>,
        keep_unmatched: bool,
    },
    Values(Vec<Vec<Bound>>),
    /// The rows of fetch `n`: the table's columns in order.
    Fetch(usize),
    /// A set-returning function in FROM, run on the coordinator; WITH ORDINALITY adds
    /// each row's number (bigint, from 1) as a last column.
    Function {
        func: TableFunc,
        ordinality: bool,
    },
    Filter(Box<Plan>, Bound),
    Project(Box<Plan>, Vec<Bound>),
    /// Rows of `left` joined with rows of `right`; with keys, by hash join on them.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        left_keys: Vec<Bound>,
        right_keys: Vec<Bound>,
        /// Evaluated over the joined row.
        residual: Option<Bound>,
        left_width: usize,
        right_width: usize,
    },
    Aggregate {
        input: Box<Plan>,
        groups: Vec<Bound>,
        calls: Vec<AggCall>,
    },
    Sort(Box<Plan>, Vec<SortKey>),
    Limit {
        input: Box<Plan>,
        limit: Option<Bound>,
        offset: Option<Bound>,
    },
    Distinct(Box<Plan>),
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Plan>,
        right: Box<Plan>,
    },
    /// Keeps the first n columns (drops sort-only columns).
    Truncate(Box<Plan>, usize),
}

impl Plan {
    /// Calls `f` on every expression of this plan node and its inputs (not inside subqueries).
    pub(crate) fn for_each_expr(&self, f: &mut dyn FnMut(&Bound)) {
        match self {
            Plan::Unit | Plan::Fetch(_) => {}
            Plan::Values(rows) => rows.iter().flatten().for_each(&mut *f),
            Plan::Function { func, .. } => func.args().for_each(&mut *f),
            Plan::LateralFunction { input, funcs, .. } => {
                input.for_each_expr(f);
                funcs.iter().for_each(|func| func.args().for_each(&mut *f));
            }
            Plan::LateralSubquery { input, sub, on, .. } => {
                input.for_each_expr(f);
                sub.for_each_expr(f);
                on.iter().for_each(&mut *f);
            }
            Plan::Filter(input, b) => {
                input.for_each_expr(f);
                f(b);
            }
            Plan::Project(input, exprs) => {
                input.for_each_expr(f);
                exprs.iter().for_each(&mut *f);
            }
            Plan::Join {
                left,
                right,
                left_keys,
                right_keys,
                residual,
                ..
            } => {
                left.for_each_expr(f);
                right.for_each_expr(f);
                left_keys.iter().chain(right_keys).for_each(&mut *f);
                if let Some(r) = residual {
                    f(r);
                }
            }
            Plan::Aggregate {
                input,
                groups,
                calls,
            } => {
                input.for_each_expr(f);
                groups.iter().for_each(&mut *f);
                for c in calls {
                    if let Some(a) = &c.arg {
                        f(a);
                    }
                    if let Some(d) = &c.delimiter {
                        f(d);
                    }
                    c.order_by.iter().for_each(|k| f(&k.expr));
                    if let Some(w) = &c.filter {
                        f(w);
                    }
                }
            }
            Plan::Sort(input, keys) => {
                input.for_each_expr(f);
                keys.iter().for_each(|k| f(&k.expr));
            }
            Plan::Limit {
                input,
                limit,
                offset,
            } => {
                input.for_each_expr(f);
                limit.iter().chain(offset.iter()).for_each(&mut *f);
            }
            Plan::Distinct(input) | Plan::Truncate(input, _) => input.for_each_expr(f),
            Plan::SetOp { left, right, .. } => {
                left.for_each_expr(f);
                right.for_each_expr(f);
            }
        }
    }

    /// Columns of the row `depth` levels out that this plan reads.
    pub(crate) fn outer_columns_read(&self, depth: usize, out: &mut Vec<usize>) {
        self.for_each_expr(&mut |b| b.outer_columns_read(depth, out));
    }
}

/// Plans one statement; collects its fetches.
pub(crate) struct Planner<'a> {
    pub(crate) session: &'a Session,
    pub(crate) sql: &'a str,
    pub(crate) positions: &'a Positions,
    pub(crate) catalog: &'a Catalog,
    pub(crate) params: &'a RefCell<Vec<Option<SqlType>>>,
    pub(crate) fetches: RefCell<Vec<Fetch>>,
    /// Common table expressions in scope, innermost last.
    ctes: RefCell<Vec<(String, Plan, Vec<ScopeColumn>)>>,
    /// The system catalogs' view of `catalog`, built on first use.
    pub(crate) pg: std::cell::OnceCell<Arc<crate::pgcatalog::Snapshot>>,
    /// The next SELECT planned is a set operation's operand or an INSERT's source: its
    /// unknown-typed outputs (a bare NULL, a string literal) stay unknown for the set
    /// operation or the target column to resolve, as PostgreSQL leaves them; elsewhere
    /// they are text. Taken (reset) by the SELECT it applies to.
    pub(crate) keep_unknown: std::cell::Cell<bool>,
}

/// Rows a FROM item contributes: its plan, its columns, and (for a base table) its fetch.
struct FromItem {
    plan: Plan,
    columns: Vec<ScopeColumn>,
    /// Base-table fetches a filter over this item's rows may be pushed into, as (fetch,
    /// offset of its columns in the item's row, width): the table itself, or the sides of a
    /// join whose rows a filter above the join may remove early (not the null-extended side
    /// of an outer join).
    pushable: Vec<(usize, usize, usize)>,
}

/// Relations one FROM clause may join.
const FROM_ITEMS_MAX: usize = 64;

impl<'a> Planner<'a> {
    pub(crate) fn new(
        session: &'a Session,
        sql: &'a str,
        positions: &'a Positions,
        catalog: &'a Catalog,
        params: &'a RefCell<Vec<Option<SqlType>>>,
    ) -> Planner<'a> {
        Planner {
            session,
            sql,
            positions,
            catalog,
            params,
            fetches: RefCell::new(Vec::new()),
            ctes: RefCell::new(Vec::new()),
            pg: std::cell::OnceCell::new(),
            keep_unknown: std::cell::Cell::new(false),
        }
    }

    pub(crate) fn binder<'b>(&'b self, scope: Option<&'b Scope<'b>>) -> Binder<'b> {
        let mut b = Binder::new(self.session, self.sql, self.positions);
        b.scope = scope;
        b.planner = Some(self);
        b.params = Some(self.params);
        b
    }

    fn offset(&self, e: &ast::Expr) -> Option<usize> {
        self.positions.offset(e.span().start)
    }

    pub(crate) fn lookup_table(&self, name: &ast::ObjectName) -> Result<Arc<Table>, SqlError> {
        let (schema, table) = split_name(name)?;
        crate::pgcatalog::refuse_catalog_write(schema.as_deref(), &table)?;
        let path = self.session.search_path();
        let db = self.session.database();
        let schema = self
            .catalog
            .resolve_schema(db, schema.as_deref(), &path, &table);
        let found = self
            .catalog
            .table(db, Some(schema.unwrap_or(DEFAULT_SCHEMA)), &table)
            .cloned()
            .ok_or_else(|| {
                let shown = match &schema {
                    Some(s) => format!("{s}.{table}"),
                    None => table.clone(),
                };
                SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{shown}\" does not exist"),
                )
                .at(self.positions.offset(name.span().start))
            })?;
        // Planned before anything runs: the statement waits for the block and is planned
        // again (`lib::execute_statement`).
        self.catalog.refuse_held(&found, self.session.block_txn)?;
        Ok(found)
    }

    pub(crate) fn add_fetch(&self, table: Arc<Table>) -> usize {
        let mut f = self.fetches.borrow_mut();
        f.push(Fetch::new(table, None));
        f.len() - 1
    }

    /// Plans a query (SELECT, VALUES, set operations, WITH, ORDER BY, LIMIT); returns the
    /// plan and its output columns.
    pub(crate) fn plan_query(
        &self,
        q: &ast::Query,
        parent: Option<&Scope>,
    ) -> Result<(Plan, Vec<Column>), SqlError> {
        if q.fetch.is_some() || q.for_clause.is_some() {
            return Err(not_supported("FETCH and FOR clauses"));
        }
        let lock = row_lock_mode(&q.locks)?;
        let first_fetch = self.fetches.borrow().len();
        let cte_count = self.ctes.borrow().len();
        // Meant for the query's own SELECT, not its common table expressions'.
        let keep_unknown = self.keep_unknown.replace(false);
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(not_supported("WITH RECURSIVE"));
            }
            for cte in &with.cte_tables {
                let (plan, columns) = self.plan_query(&cte.query, parent)?;
                let name = ident(&cte.alias.name);
                let mut scope_columns = to_scope_columns(&columns, Some(&name));
                for (i, c) in cte.alias.columns.iter().enumerate() {
                    if let Some(sc) = scope_columns.get_mut(i) {
                        sc.name = ident(&c.name);
                    }
                }
                self.ctes.borrow_mut().push((name, plan, scope_columns));
            }
        }
        self.keep_unknown.set(keep_unknown);
        let result = self.plan_query_body(q, parent);
        self.ctes.borrow_mut().truncate(cte_count);
        if lock.is_some() {
            for f in self.fetches.borrow_mut().iter_mut().skip(first_fetch) {
                f.lock = lock;
            }
        }
        result
    }

    fn plan_query_body(
        &self,
        q: &ast::Query,
        parent: Option<&Scope>,
    ) -> Result<(Plan, Vec<Column>), SqlError> {
        let order_by: &[ast::OrderByExpr] = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(e) => e,
                ast::OrderByKind::All(_) => return Err(not_supported("ORDER BY ALL")),
            },
            None => &[],
        };
        let (limit, offset) = self.limit_offset(q)?;
        let (mut plan, columns) = match q.body.as_ref() {
            ast::SetExpr::Select(select) => {
                let (plan, columns) = self.plan_select(select, order_by, parent)?;
                (plan, columns)
            }
            other => {
                let (plan, columns) = self.plan_set_expr(other, parent)?;
                let plan = self.order_outputs(plan, &columns, order_by, parent)?;
                (plan, columns)
            }
        };
        if limit.is_some() || offset.is_some() {
            plan = Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            };
        }
        Ok((plan, columns))
    }

    fn limit_offset(&self, q: &ast::Query) -> Result<(Option<Bound>, Option<Bound>), SqlError> {
        let bind_count = |e: &ast::Expr| -> Result<Option<Bound>, SqlError> {
            if matches!(e, ast::Expr::Value(v) if v.value == ast::Value::Null) {
                return Ok(None);
            }
            let binder = self.binder(None);
            let b = binder.bind(e)?;
            if b.ty.numeric_rank().is_none() && b.ty != SqlType::Unknown {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!(
                        "argument of LIMIT must be type bigint, not type {}",
                        b.ty.sql_name()
                    ),
                )
                .at(self.offset(e)));
            }
            Ok(Some(binder.coerce(b, SqlType::Int8, TYPMOD_NONE)?))
        };
        match &q.limit_clause {
            None => Ok((None, None)),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(not_supported("LIMIT BY"));
                }
                let limit = match limit {
                    Some(l) => bind_count(l)?,
                    None => None,
                };
                let offset = match offset {
                    Some(o) => bind_count(&o.value)?,
                    None => None,
                };
                Ok((limit, offset))
            }
            Some(ast::LimitClause::OffsetCommaLimit { .. }) => Err(SqlError::new(
                SYNTAX_ERROR,
                "LIMIT #,# syntax is not supported",
            )),
        }
    }

    /// VALUES, set operations and parenthesized queries (no ORDER BY of their own here).
    fn plan_set_expr(
        &self,
        body: &ast::SetExpr,
        parent: Option<&Scope>,
    ) -> Result<(Plan, Vec<Column>), SqlError> {
        match body {
            ast::SetExpr::Select(select) => self.plan_select(select, &[], parent),
            ast::SetExpr::Query(q) => self.plan_query(q, parent),
            ast::SetExpr::Values(values) => self.plan_values(values, parent),
            ast::SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                self.keep_unknown.set(true);
                let left = self.plan_set_expr(left, parent);
                self.keep_unknown.set(true);
                let right = self.plan_set_expr(right, parent);
                self.keep_unknown.set(false);
                let ((lp, lc), (rp, rc)) = (left?, right?);
                let kind = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
                };
                let word = match kind {
                    SetOpKind::Union => "UNION",
                    SetOpKind::Intersect => "INTERSECT",
                    SetOpKind::Except => "EXCEPT",
                };
                if lc.len() != rc.len() {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        format!("each {word} query must have the same number of columns"),
                    ));
                }
                let all = match set_quantifier {
                    ast::SetQuantifier::All => true,
                    ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
                    other => return Err(not_supported(format!("{word} {other}"))),
                };
                let mut types = Vec::with_capacity(lc.len());
                for (l, r) in lc.iter().zip(&rc) {
                    types.push(expr::common_type(
                        [(sql_type_of(l), None), (sql_type_of(r), None)].into_iter(),
                        word,
                    )?);
                }
                let binder = self.binder(None);
                let cast_to = |plan: Plan, cols: &[Column]| -> Result<Plan, SqlError> {
                    if cols.iter().zip(&types).all(|(c, t)| sql_type_of(c) == *t) {
                        return Ok(plan);
                    }
                    let exprs = cols
                        .iter()
                        .zip(&types)
                        .enumerate()
                        .map(|(i, (c, t))| {
                            binder.coerce(
                                Bound::column(i, sql_type_of(c), TYPMOD_NONE),
                                *t,
                                TYPMOD_NONE,
                            )
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Plan::Project(Box::new(plan), exprs))
                };
                let lp = cast_to(lp, &lc)?;
                let rp = cast_to(rp, &rc)?;
                let columns = lc
                    .iter()
                    .zip(&types)
                    .map(|(c, t)| crate::column(c.name.clone(), *t, TYPMOD_NONE))
                    .collect();
                Ok((
                    Plan::SetOp {
                        op: kind,
                        all,
                        left: Box::new(lp),
                        right: Box::new(rp),
                    },
                    columns,
                ))
            }
            _ => Err(not_supported("this kind of query")),
        }
    }

    fn plan_values(
        &self,
        v: &ast::Values,
        parent: Option<&Scope>,
    ) -> Result<(Plan, Vec<Column>), SqlError> {
        if v.rows.len() > crate::VALUES_ROWS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("VALUES lists at most {} rows", crate::VALUES_ROWS_MAX),
            ));
        }
        let binder = self.binder(parent);
        let width = v.rows.first().map_or(0, |r| r.len());
        let mut bound_rows = Vec::with_capacity(v.rows.len());
        for row in &v.rows {
            if row.len() != width {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    "VALUES lists must all be the same length",
                )
                .at(row.first().and_then(|e| self.offset(e))));
            }
            bound_rows.push(
                row.iter()
                    .map(|e| binder.bind(e))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let mut types = Vec::with_capacity(width);
        for c in 0..width {
            types.push(expr::common_type(
                bound_rows.iter().map(|r| (r[c].ty, r[c].pos)),
                "VALUES",
            )?);
        }
        let rows = bound_rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&types)
                    .map(|(b, ty)| binder.coerce(b, *ty, TYPMOD_NONE))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns = types
            .iter()
            .enumerate()
            .map(|(i, t)| crate::column(format!("column{}", i + 1), *t, TYPMOD_NONE))
            .collect();
        Ok((Plan::Values(rows), columns))
    }

    /// ORDER BY over a finished row set (set operations, VALUES): output names and ordinals.
    fn order_outputs(
        &self,
        plan: Plan,
        columns: &[Column],
        order_by: &[ast::OrderByExpr],
        parent: Option<&Scope>,
    ) -> Result<Plan, SqlError> {
        if order_by.is_empty() {
            return Ok(plan);
        }
        let scope = Scope {
            columns: to_scope_columns(columns, None),
            parent,
        };
        let binder = self.binder(Some(&scope));
        let mut keys = Vec::with_capacity(order_by.len());
        for o in order_by {
            let expr = match self.output_ordinal(&o.expr, columns.len())? {
                Some(i) => Bound::column(i, sql_type_of(&columns[i]), TYPMOD_NONE),
                None => binder.bind(&o.expr)?,
            };
            keys.push(sort_key(expr, &o.options));
        }
        Ok(Plan::Sort(Box::new(plan), keys))
    }

    /// `ORDER BY 2`: the 0-based output column; errors for an out-of-range ordinal.
    fn output_ordinal(&self, e: &ast::Expr, width: usize) -> Result<Option<usize>, SqlError> {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                let ordinal: Option<usize> = n.parse().ok();
                return match ordinal {
                    Some(k) if k >= 1 && k <= width => Ok(Some(k - 1)),
                    _ => Err(SqlError::new(
                        INVALID_COLUMN_REFERENCE,
                        format!("ORDER BY position {n} is not in select list"),
                    )
                    .at(self.offset(e))),
                };
            }
        }
        Ok(None)
    }

    fn plan_select(
        &self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
        parent: Option<&Scope>,
    ) -> Result<(Plan, Vec<Column>), SqlError> {
        let keep_unknown = self.keep_unknown.replace(false);
        let unsupported = if s.into.is_some() {
            Some("SELECT INTO")
        } else if !s.named_window.is_empty()
            || s.qualify.is_some()
            || s.top.is_some()
            || s.prewhere.is_some()
            || !s.lateral_views.is_empty()
            || !s.connect_by.is_empty()
            || !s.sort_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
        {
            Some("this SELECT clause")
        } else {
            None
        };
        if let Some(what) = unsupported {
            return Err(not_supported(what));
        }
        // FROM
        let mut items: Vec<FromItem> = Vec::with_capacity(s.from.len());
        for twj in &s.from {
            if !items.is_empty() && is_lateral_subquery(&twj.relation) {
                // `FROM a, LATERAL (SELECT ... a.x ...) s [JOIN ...]`
                let left = self.joined_before(std::mem::take(&mut items))?;
                let mut acc =
                    self.plan_lateral_subquery(left, &twj.relation, JoinKind::Inner, None, parent)?;
                for join in &twj.joins {
                    acc = self.plan_joined(acc, join, parent)?;
                }
                items.push(acc);
                continue;
            }
            match self.plan_table_with_joins(twj, parent) {
                Ok(item) => items.push(item),
                // A function reading an earlier FROM item's columns: LATERAL.
                Err(e)
                    if !items.is_empty()
                        && (e.sqlstate == UNDEFINED_TABLE || e.sqlstate == UNDEFINED_COLUMN)
                        && table_function_of(twj).is_some() =>
                {
                    let before = std::mem::take(&mut items);
                    items.push(self.plan_lateral_function(before, twj, parent)?);
                }
                Err(e) => return Err(e),
            }
        }
        if items.len() > FROM_ITEMS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("a FROM clause joins at most {FROM_ITEMS_MAX} relations"),
            ));
        }
        let all_columns: Vec<ScopeColumn> = items
            .iter()
            .flat_map(|i| i.columns.iter().cloned())
            .collect();
        let scope = Scope {
            columns: all_columns,
            parent,
        };
        // WHERE: conjuncts over one base table go into its fetch; equalities between items
        // become hash-join keys; the rest filters the joined rows.
        let mut conjuncts = Vec::new();
        if let Some(w) = &s.selection {
            if expr::contains_aggregate(w) {
                return Err(SqlError::new(
                    GROUPING_ERROR,
                    "aggregate functions are not allowed in WHERE",
                )
                .at(self.offset(w)));
            }
            if contains_set_function(w) {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "set-returning functions are not allowed in WHERE",
                )
                .at(self.offset(w)));
            }
            let binder = self.binder(Some(&scope));
            let b = binder.bind(w)?;
            let b = require_bool(&binder, b, "WHERE", self.offset(w))?;
            b.into_conjuncts(&mut conjuncts);
        }
        let mut plan = self.join_items(items, &mut conjuncts)?;
        if let Some(rest) = Bound::conjunction(conjuncts) {
            plan = Plan::Filter(Box::new(plan), rest);
        }
        // Aggregation
        let group_exprs: &[ast::Expr] = match &s.group_by {
            ast::GroupByExpr::Expressions(e, modifiers) if modifiers.is_empty() => e,
            ast::GroupByExpr::Expressions(..) => {
                return Err(not_supported("GROUP BY ROLLUP/CUBE/GROUPING SETS"))
            }
            ast::GroupByExpr::All(_) => return Err(not_supported("GROUP BY ALL")),
        };
        let projection_has_agg = s.projection.iter().any(|item| match item {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                expr::contains_aggregate(e)
            }
            _ => false,
        });
        let aggregated = !group_exprs.is_empty()
            || projection_has_agg
            || s.having.is_some()
            || order_by.iter().any(|o| expr::contains_aggregate(&o.expr));
        let set_functions = self.select_list_functions(&s.projection, &scope, parent)?;
        let (names, exprs, sort_keys, plan, ()) = if aggregated {
            if set_functions.is_some() {
                return Err(not_supported(
                    "set-returning functions in the select list of an aggregate query",
                ));
            }
            self.plan_aggregated(s, group_exprs, order_by, plan, &scope)?
        } else {
            let (plan, scope, projection) = match set_functions {
                None => (plan, scope, std::borrow::Cow::Borrowed(&s.projection)),
                Some(set) => {
                    let plan = Plan::LateralFunction {
                        input: Box::new(plan),
                        funcs: set.funcs,
                        ordinality: false,
                    };
                    let mut columns = scope.columns;
                    columns.extend(set.columns);
                    let scope = Scope { columns, parent };
                    (plan, scope, std::borrow::Cow::Owned(set.projection))
                }
            };
            let binder = self.binder(Some(&scope));
            let (names, mut exprs) = self.bind_projection(&binder, &projection, &scope)?;
            let sort_keys = self.bind_order_keys(
                &binder,
                order_by,
                &names,
                &mut exprs,
                &projection,
                s.distinct.is_some(),
            )?;
            (names, exprs, sort_keys, plan, ())
        };
        let width = names.len();
        let columns: Vec<Column> = names
            .into_iter()
            .zip(&exprs)
            .map(|(n, b)| match b.ty {
                SqlType::Unknown if keep_unknown => crate::unresolved_column(n),
                ty => crate::column(n, ty, b.typmod),
            })
            .collect();
        let mut plan = Plan::Project(Box::new(plan), exprs);
        match &s.distinct {
            None => {}
            Some(ast::Distinct::Distinct) => plan = Plan::Distinct(Box::new(plan)),
            Some(ast::Distinct::All) => {}
            Some(ast::Distinct::On(_)) => return Err(not_supported("DISTINCT ON")),
        }
        if !sort_keys.is_empty() {
            plan = Plan::Sort(Box::new(plan), sort_keys);
        }
        let full_width = plan_width_hint(&plan);
        if full_width.is_none_or(|w| w > width) {
            plan = Plan::Truncate(Box::new(plan), width);
        }
        Ok((plan, columns))
    }

    /// Set-returning functions (generate_series, unnest) in a select list, run as PostgreSQL
    /// runs them (ProjectSet): each input row once per row of the longest, the others
    /// padded with NULL. Each call becomes a column after the FROM items' columns, and the
    /// select list reads that column instead (its items keep the names the calls give).
    /// None: the select list calls none (outside subqueries).
    fn select_list_functions(
        &self,
        projection: &[ast::SelectItem],
        scope: &Scope,
        parent: Option<&Scope>,
    ) -> Result<Option<SelectListFunctions>, SqlError> {
        use sqlparser::ast::VisitMut;
        let mut rewritten = projection.to_vec();
        let mut finder = SetFunctionFinder::default();
        for item in &mut rewritten {
            let before = finder.calls.len();
            match item {
                ast::SelectItem::UnnamedExpr(e) => {
                    let (name, strength) = expr::column_name(e);
                    let _ = e.visit(&mut finder);
                    if finder.calls.len() > before {
                        let name = if strength == 0 {
                            "?column?".to_string()
                        } else {
                            name
                        };
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: ast::Ident::with_quote('"', name),
                        };
                    }
                }
                ast::SelectItem::ExprWithAlias { expr, .. } => {
                    let _ = expr.visit(&mut finder);
                }
                _ => {}
            }
        }
        if finder.calls.is_empty() {
            return Ok(None);
        }
        let mut funcs = Vec::with_capacity(finder.calls.len());
        let mut columns = Vec::with_capacity(finder.calls.len());
        for (i, (name, args)) in finder.calls.into_iter().enumerate() {
            let item = self.plan_table_function_over(
                &name,
                &args,
                None,
                false,
                parent,
                scope.columns.clone(),
            )?;
            let (Plan::Function { func, .. }, [column]) = (item.plan, &item.columns[..]) else {
                return Err(not_supported(
                    "a set-returning function of several columns in a select list",
                ));
            };
            funcs.push(func);
            columns.push(ScopeColumn {
                qualifier: None,
                name: set_function_column(i),
                ty: column.ty,
                typmod: column.typmod,
                hidden: false,
            });
        }
        Ok(Some(SelectListFunctions {
            funcs,
            columns,
            projection: rewritten,
        }))
    }

    /// Select list → (names, expressions).
    fn bind_projection(
        &self,
        binder: &Binder,
        projection: &[ast::SelectItem],
        scope: &Scope,
    ) -> Result<(Vec<String>, Vec<Bound>), SqlError> {
        let mut names = Vec::with_capacity(projection.len());
        let mut exprs = Vec::with_capacity(projection.len());
        for item in projection {
            match item {
                ast::SelectItem::UnnamedExpr(e) => {
                    let (name, strength) = expr::column_name(e);
                    names.push(if strength == 0 {
                        "?column?".to_string()
                    } else {
                        name
                    });
                    exprs.push(binder.bind(e)?);
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    names.push(crate::alias_name(alias));
                    exprs.push(binder.bind(expr)?);
                }
                ast::SelectItem::Wildcard(_) => {
                    if scope.columns.is_empty() {
                        return Err(SqlError::new(
                            SYNTAX_ERROR,
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for (i, c) in scope.columns.iter().enumerate() {
                        if !c.hidden && !is_set_function_column(&c.name) {
                            names.push(c.name.clone());
                            exprs.push(Bound::column(i, c.ty, c.typmod));
                        }
                    }
                }
                ast::SelectItem::ExprWithAliases { .. } => {
                    return Err(not_supported("AS (alias, ...) in a select list"))
                }
                ast::SelectItem::QualifiedWildcard(kind, _) => {
                    let q = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => split_name(n)?.1,
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            return Err(not_supported(format!("{e}.*")))
                        }
                    };
                    let mut any = false;
                    for (i, c) in scope.columns.iter().enumerate() {
                        if c.qualifier.as_deref() == Some(q.as_str()) {
                            any = true;
                            names.push(c.name.clone());
                            exprs.push(Bound::column(i, c.ty, c.typmod));
                        }
                    }
                    if !any {
                        return Err(SqlError::new(
                            UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{q}\""),
                        ));
                    }
                }
            }
        }
        Ok((names, exprs))
    }

    /// ORDER BY keys over the projected row; expressions not in the select list are appended
    /// to `exprs` as hidden columns (refused under DISTINCT, as PostgreSQL does).
    fn bind_order_keys(
        &self,
        binder: &Binder,
        order_by: &[ast::OrderByExpr],
        names: &[String],
        exprs: &mut Vec<Bound>,
        projection: &[ast::SelectItem],
        distinct: bool,
    ) -> Result<Vec<SortKey>, SqlError> {
        let width = names.len();
        let mut keys = Vec::with_capacity(order_by.len());
        for o in order_by {
            let e = &o.expr;
            let mut found = self.output_ordinal(e, width)?;
            if found.is_none() {
                if let ast::Expr::Identifier(id) = e {
                    let n = ident(id);
                    let matches: Vec<usize> = names
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| **m == n)
                        .map(|(i, _)| i)
                        .collect();
                    // An output name wins over an input column of the same name.
                    if let [i] = matches.as_slice() {
                        found = Some(*i);
                    } else if matches.len() > 1 {
                        return Err(SqlError::new(
                            AMBIGUOUS_COLUMN,
                            format!("ORDER BY \"{n}\" is ambiguous"),
                        )
                        .at(self.offset(e)));
                    }
                }
            }
            if found.is_none() {
                // An expression written exactly as a select-list item sorts by that item.
                found = projection.iter().position(|item| match item {
                    ast::SelectItem::UnnamedExpr(x)
                    | ast::SelectItem::ExprWithAlias { expr: x, .. } => x == e,
                    _ => false,
                });
                if found.is_some_and(|i| i >= width) {
                    found = None;
                }
            }
            let expr = match found {
                Some(i) => Bound::column(i, exprs[i].ty, exprs[i].typmod),
                None => {
                    if distinct {
                        return Err(SqlError::new(
                            INVALID_COLUMN_REFERENCE,
                            "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                        )
                        .at(self.offset(e)));
                    }
                    let b = binder.bind(e)?;
                    let (ty, typmod) = (b.ty, b.typmod);
                    exprs.push(b);
                    Bound::column(exprs.len() - 1, ty, typmod)
                }
            };
            keys.push(sort_key(expr, &o.options));
        }
        Ok(keys)
    }

    #[allow(clippy::type_complexity)]
    fn plan_aggregated(
        &self,
        s: &ast::Select,
        group_exprs: &[ast::Expr],
        order_by: &[ast::OrderByExpr],
        input: Plan,
        scope: &Scope,
    ) -> Result<(Vec<String>, Vec<Bound>, Vec<SortKey>, Plan, ()), SqlError> {
        let input_binder = self.binder(Some(scope));
        let mut group_ast = Vec::with_capacity(group_exprs.len());
        let mut group_bound = Vec::with_capacity(group_exprs.len());
        for g in group_exprs {
            if expr::contains_aggregate(g) {
                return Err(SqlError::new(
                    GROUPING_ERROR,
                    "aggregate functions are not allowed in GROUP BY",
                )
                .at(self.offset(g)));
            }
            // GROUP BY 1 / GROUP BY alias name the select list's items.
            let resolved = self.group_item(g, &s.projection)?;
            group_bound.push(input_binder.bind(resolved)?);
            group_ast.push(resolved.clone());
        }
        let post_columns = group_bound
            .iter()
            .map(|g| match g.kind {
                Kind::Column(k) => scope.columns[k].clone(),
                _ => ScopeColumn {
                    qualifier: None,
                    name: String::new(),
                    ty: g.ty,
                    typmod: g.typmod,
                    hidden: true,
                },
            })
            .collect();
        let agg = AggBinding {
            input: scope,
            group_ast,
            group_bound,
            calls: RefCell::new(Vec::new()),
            post_scope: Scope {
                columns: post_columns,
                parent: scope.parent,
            },
        };
        let binder = input_binder.with_agg(&agg);
        let (names, mut exprs) = self
            .bind_projection(
                &binder,
                &s.projection,
                &Scope {
                    columns: Vec::new(),
                    parent: None,
                },
            )
            .map_err(|e| {
                if e.message.starts_with("SELECT * with no tables") {
                    SqlError::new(
                    GROUPING_ERROR,
                    "column must appear in the GROUP BY clause or be used in an aggregate function",
                )
                } else {
                    e
                }
            })?;
        let having = match &s.having {
            Some(h) => {
                let b = binder.bind(h)?;
                Some(require_bool(&binder, b, "HAVING", self.offset(h))?)
            }
            None => None,
        };
        let sort_keys = self.bind_order_keys(
            &binder,
            order_by,
            &names,
            &mut exprs,
            &s.projection,
            s.distinct.is_some(),
        )?;
        let mut plan = Plan::Aggregate {
            input: Box::new(input),
            groups: agg.group_bound.clone(),
            calls: agg.calls.borrow().clone(),
        };
        if let Some(h) = having {
            plan = Plan::Filter(Box::new(plan), h);
        }
        Ok((names, exprs, sort_keys, plan, ()))
    }

    /// A GROUP BY item: an ordinal or an output alias stands for that select-list expression.
    fn group_item<'q>(
        &self,
        g: &'q ast::Expr,
        projection: &'q [ast::SelectItem],
    ) -> Result<&'q ast::Expr, SqlError> {
        if let Some(i) = self.output_ordinal(g, projection.len()).map_err(|e| {
            SqlError::new(e.sqlstate, e.message.replace("ORDER BY", "GROUP BY")).at(e.position)
        })? {
            return match &projection[i] {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => Ok(e),
                _ => Err(not_supported("GROUP BY a * item")),
            };
        }
        if let ast::Expr::Identifier(id) = g {
            let n = ident(id);
            for item in projection {
                if let ast::SelectItem::ExprWithAlias { expr, alias } = item {
                    if crate::alias_name(alias) == n {
                        return Ok(expr);
                    }
                }
            }
        }
        Ok(g)
    }

    fn plan_table_with_joins(
        &self,
        twj: &ast::TableWithJoins,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        let mut acc = self.plan_table_factor(&twj.relation, parent)?;
        for join in &twj.joins {
            acc = self.plan_joined(acc, join, parent)?;
        }
        Ok(acc)
    }

    /// `acc` joined with `join`'s relation: a LATERAL subquery runs per row of `acc`.
    fn plan_joined(
        &self,
        acc: FromItem,
        join: &ast::Join,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        use ast::JoinOperator as J;
        if !is_lateral_subquery(&join.relation) {
            let right = self.plan_table_factor(&join.relation, parent)?;
            return self.plan_join(acc, right, &join.join_operator, parent);
        }
        let (kind, constraint) = match &join.join_operator {
            J::Join(c) | J::Inner(c) | J::CrossJoin(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
            _ => {
                return Err(SqlError::new(
                    "42P10",
                    "invalid reference to FROM-clause entry in a LATERAL subquery",
                )
                .with_detail(
                    "The combining JOIN type must be INNER or LEFT for a LATERAL reference.",
                ))
            }
        };
        let on = match constraint {
            ast::JoinConstraint::On(e) => Some(e),
            ast::JoinConstraint::None => None,
            _ => return Err(not_supported("JOIN LATERAL with USING or NATURAL")),
        };
        self.plan_lateral_subquery(acc, &join.relation, kind, on, parent)
    }

    /// [`Plan::LateralSubquery`]: `relation` (a LATERAL subquery) planned with `left`'s
    /// columns as its enclosing row, joined to `left` as `kind` on `on`.
    fn plan_lateral_subquery(
        &self,
        left: FromItem,
        relation: &ast::TableFactor,
        kind: JoinKind,
        on: Option<&ast::Expr>,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        let ast::TableFactor::Derived {
            subquery, alias, ..
        } = relation
        else {
            unreachable!("checked by is_lateral_subquery");
        };
        let outer = Scope {
            columns: left.columns.clone(),
            parent,
        };
        let (sub, cols) = self.plan_query(subquery, Some(&outer))?;
        let qualifier = alias.as_ref().map(|a| ident(&a.name));
        let mut right = to_scope_columns(&cols, qualifier.as_deref());
        apply_column_aliases(&mut right, alias.as_ref())?;
        let columns: Vec<ScopeColumn> = left.columns.iter().chain(&right).cloned().collect();
        let on = match on {
            None => None,
            Some(e) => {
                let scope = Scope {
                    columns: columns.clone(),
                    parent,
                };
                let binder = self.binder(Some(&scope));
                let b = binder.bind(e)?;
                Some(require_bool(&binder, b, "JOIN/ON", self.offset(e))?)
            }
        };
        Ok(FromItem {
            plan: Plan::LateralSubquery {
                input: Box::new(left.plan),
                sub: Box::new(sub),
                sub_width: right.len(),
                on,
                keep_unmatched: kind == JoinKind::Left,
            },
            columns,
            // A WHERE above may filter the input's rows first: they are never null-extended.
            pushable: left.pushable,
        })
    }

    fn plan_join(
        &self,
        left: FromItem,
        right: FromItem,
        op: &ast::JoinOperator,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match op {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
            J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
            J::FullOuter(c) => (JoinKind::Full, Some(c)),
            J::CrossJoin(_) => (JoinKind::Inner, None),
            other => return Err(not_supported(format!("join {other:?}"))),
        };
        let left_width = left.columns.len();
        let right_width = right.columns.len();
        let mut columns: Vec<ScopeColumn> =
            left.columns.iter().chain(&right.columns).cloned().collect();
        let mut conjuncts = Vec::new();
        let mut using_pairs: Vec<(usize, usize)> = Vec::new();
        match constraint {
            None | Some(ast::JoinConstraint::None) => {}
            Some(ast::JoinConstraint::UsingAlias(..)) => return Err(not_supported("USING ... AS")),
            Some(ast::JoinConstraint::On(e)) => {
                let scope = Scope {
                    columns: columns.clone(),
                    parent,
                };
                let binder = self.binder(Some(&scope));
                let b = binder.bind(e)?;
                let b = require_bool(&binder, b, "JOIN/ON", self.offset(e))?;
                b.into_conjuncts(&mut conjuncts);
            }
            Some(ast::JoinConstraint::Using(names)) => {
                for n in names {
                    let name = split_name(n)?.1;
                    let find = |cols: &[ScopeColumn]| {
                        cols.iter().position(|c| c.name == name && !c.hidden)
                    };
                    let (Some(l), Some(r)) = (find(&left.columns), find(&right.columns)) else {
                        return Err(SqlError::new(
                            UNDEFINED_COLUMN,
                            format!("column \"{name}\" specified in USING clause does not exist in left table"),
                        ));
                    };
                    using_pairs.push((l, left_width + r));
                }
            }
            Some(ast::JoinConstraint::Natural) => {
                for (l, c) in left.columns.iter().enumerate() {
                    if c.hidden {
                        continue;
                    }
                    if let Some(r) = right
                        .columns
                        .iter()
                        .position(|rc| rc.name == c.name && !rc.hidden)
                    {
                        using_pairs.push((l, left_width + r));
                    }
                }
            }
        }
        for &(l, r) in &using_pairs {
            let scope = Scope {
                columns: columns.clone(),
                parent,
            };
            let binder = self.binder(Some(&scope));
            let lb = Bound::column(l, columns[l].ty, columns[l].typmod);
            let rb = Bound::column(r, columns[r].ty, columns[r].typmod);
            conjuncts.push(binder.equality(lb, rb)?);
            // The merged column is reachable unqualified once: hide the right one.
            columns[r].hidden = true;
        }
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut residual = Vec::new();
        for c in conjuncts {
            match c.as_equi_join(left_width) {
                Some((l, r)) => {
                    left_keys.push(l);
                    right_keys.push(r);
                }
                None => residual.push(c),
            }
        }
        // ON conjuncts over one side can filter that side early where the join kind allows:
        // either side of an inner join, the null-extended side of an outer one.
        let (on_left, on_right) = match kind {
            JoinKind::Inner => (true, true),
            JoinKind::Left => (false, true),
            JoinKind::Right => (true, false),
            JoinKind::Full => (false, false),
        };
        if on_left {
            residual = self.push_into_item(residual, &left.pushable, 0);
        }
        if on_right {
            residual = self.push_into_item(residual, &right.pushable, left_width);
        }
        // A WHERE above the join may filter the sides whose rows are never null-extended.
        let mut pushable = Vec::new();
        if matches!(kind, JoinKind::Inner | JoinKind::Left) {
            pushable.extend(left.pushable.iter().copied());
        }
        if matches!(kind, JoinKind::Inner | JoinKind::Right) {
            pushable.extend(
                right
                    .pushable
                    .iter()
                    .map(|&(f, offset, width)| (f, offset + left_width, width)),
            );
        }
        let plan = Plan::Join {
            left: Box::new(left.plan),
            right: Box::new(right.plan),
            kind,
            left_keys,
            right_keys,
            residual: Bound::conjunction(residual),
            left_width,
            right_width,
        };
        Ok(FromItem {
            plan,
            columns,
            pushable,
        })
    }

    /// Pushes conjuncts into an item's pushable fetches, the item's columns starting at
    /// `base` in the conjuncts' row; returns the rest.
    fn push_into_item(
        &self,
        mut conjuncts: Vec<Bound>,
        pushable: &[(usize, usize, usize)],
        base: usize,
    ) -> Vec<Bound> {
        for &(fetch, offset, width) in pushable {
            conjuncts = self.push_into_fetch(conjuncts, Some(fetch), base + offset, width);
        }
        conjuncts
    }

    /// Moves conjuncts that read only columns [offset, offset+width) into fetch `fetch`;
    /// returns the rest.
    fn push_into_fetch(
        &self,
        conjuncts: Vec<Bound>,
        fetch: Option<usize>,
        offset: usize,
        width: usize,
    ) -> Vec<Bound> {
        let Some(f) = fetch else { return conjuncts };
        let mut rest = Vec::new();
        let mut pushed = Vec::new();
        for c in conjuncts {
            let mut cols = Vec::new();
            c.columns_read(&mut cols);
            if c.is_row_local() && cols.iter().all(|&i| i >= offset && i < offset + width) {
                let mut c = c;
                c.remap_columns(&|i| i - offset);
                pushed.push(c);
            } else {
                rest.push(c);
            }
        }
        if !pushed.is_empty() {
            let mut fetches = self.fetches.borrow_mut();
            let fetch = &mut fetches[f];
            let mut all = Vec::new();
            if let Some(existing) = fetch.filter.take() {
                existing.into_conjuncts(&mut all);
            }
            all.extend(pushed);
            fetch.filter = Bound::conjunction(all);
        }
        rest
    }

    /// Cross-joins the FROM items left to right, turning equalities between them into hash
    /// join keys and pushing single-table conjuncts into fetches. Consumed conjuncts are
    /// removed from `conjuncts`.
    fn join_items(
        &self,
        items: Vec<FromItem>,
        conjuncts: &mut Vec<Bound>,
    ) -> Result<Plan, SqlError> {
        if items.is_empty() {
            return Ok(Plan::Unit);
        }
        // Push single-item conjuncts first.
        let mut offset = 0;
        let mut spans = Vec::with_capacity(items.len());
        for item in &items {
            spans.push((offset, item.columns.len()));
            let rest = self.push_into_item(std::mem::take(conjuncts), &item.pushable, offset);
            *conjuncts = rest;
            offset += item.columns.len();
        }
        let mut it = items.into_iter();
        let first = it.next().expect("at least one item");
        let mut plan = first.plan;
        let mut width = first.columns.len();
        for item in it {
            let right_width = item.columns.len();
            let mut left_keys = Vec::new();
            let mut right_keys = Vec::new();
            let mut rest = Vec::new();
            for c in std::mem::take(conjuncts) {
                let mut cols = Vec::new();
                c.columns_read(&mut cols);
                let within = cols.iter().all(|&i| i < width + right_width);
                match (within, c.as_equi_join(width)) {
                    (true, Some((l, r))) => {
                        left_keys.push(l);
                        right_keys.push(r);
                    }
                    _ => rest.push(c),
                }
            }
            *conjuncts = rest;
            plan = Plan::Join {
                left: Box::new(plan),
                right: Box::new(item.plan),
                kind: JoinKind::Inner,
                left_keys,
                right_keys,
                residual: None,
                left_width: width,
                right_width,
            };
            width += right_width;
        }
        Ok(plan)
    }

    fn plan_table_factor(
        &self,
        tf: &ast::TableFactor,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        match tf {
            ast::TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                partitions,
                with_ordinality,
                ..
            } => {
                if !with_hints.is_empty() || version.is_some() || !partitions.is_empty() {
                    return Err(not_supported("table hints, versions and partitions"));
                }
                if let Some(args) = args {
                    return self.plan_table_function(
                        name,
                        &args.args,
                        alias.as_ref(),
                        *with_ordinality,
                        parent,
                    );
                }
                if *with_ordinality {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        "syntax error at or near \"WITH\"",
                    ));
                }
                let (schema, table_name) = split_name(name)?;
                if schema.is_none() {
                    let cte = self
                        .ctes
                        .borrow()
                        .iter()
                        .rev()
                        .find(|(n, _, _)| *n == table_name)
                        .cloned();
                    if let Some((_, plan, mut columns)) = cte {
                        let qualifier =
                            alias.as_ref().map(|a| ident(&a.name)).unwrap_or(table_name);
                        for c in &mut columns {
                            c.qualifier = Some(qualifier.clone());
                        }
                        apply_column_aliases(&mut columns, alias.as_ref())?;
                        return Ok(FromItem {
                            plan,
                            columns,
                            pushable: Vec::new(),
                        });
                    }
                }
                if let Some((plan, mut columns)) = crate::pgcatalog::plan_relation(self, name)? {
                    if let Some(a) = alias {
                        let q = ident(&a.name);
                        columns
                            .iter_mut()
                            .for_each(|c| c.qualifier = Some(q.clone()));
                    }
                    apply_column_aliases(&mut columns, alias.as_ref())?;
                    return Ok(FromItem {
                        plan,
                        columns,
                        pushable: Vec::new(),
                    });
                }
                let path = self.session.search_path();
                let db = self.session.database();
                let view_schema =
                    self.catalog
                        .resolve_schema(db, schema.as_deref(), &path, &table_name);
                if let Some(view) =
                    view_schema.and_then(|s| self.catalog.view(db, Some(s), &table_name))
                {
                    return self.plan_view(view, alias.as_ref());
                }
                let table = self.lookup_table(name)?;
                let qualifier = alias
                    .as_ref()
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| table.name.clone());
                let mut columns: Vec<ScopeColumn> = table
                    .columns
                    .iter()
                    .map(|c| ScopeColumn {
                        qualifier: Some(qualifier.clone()),
                        name: c.name.clone(),
                        ty: c.ty,
                        typmod: c.typmod,
                        hidden: false,
                    })
                    .collect();
                apply_column_aliases(&mut columns, alias.as_ref())?;
                let fetch = self.add_fetch(table);
                let width = columns.len();
                Ok(FromItem {
                    plan: Plan::Fetch(fetch),
                    columns,
                    pushable: vec![(fetch, 0, width)],
                })
            }
            // LATERAL as the first FROM item has nothing before it to read: a plain subquery.
            ast::TableFactor::Derived {
                subquery, alias, ..
            } => {
                let (plan, cols) = self.plan_query(subquery, parent)?;
                let qualifier = alias.as_ref().map(|a| ident(&a.name));
                let mut columns = to_scope_columns(&cols, qualifier.as_deref());
                apply_column_aliases(&mut columns, alias.as_ref())?;
                Ok(FromItem {
                    plan,
                    columns,
                    pushable: Vec::new(),
                })
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let mut item = self.plan_table_with_joins(table_with_joins, parent)?;
                if let Some(a) = alias {
                    let q = ident(&a.name);
                    for c in &mut item.columns {
                        c.qualifier = Some(q.clone());
                    }
                    apply_column_aliases(&mut item.columns, Some(a))?;
                }
                item.pushable.clear();
                Ok(item)
            }
            ast::TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset,
                with_ordinality,
                ..
            } => {
                if *with_offset {
                    return Err(not_supported("UNNEST WITH OFFSET"));
                }
                let args: Vec<ast::FunctionArg> = array_exprs
                    .iter()
                    .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e.clone())))
                    .collect();
                let name = ast::ObjectName::from(vec![ast::Ident::new("unnest")]);
                self.plan_table_function(&name, &args, alias.as_ref(), *with_ordinality, parent)
            }
            ast::TableFactor::Function { .. } | ast::TableFactor::TableFunction { .. } => {
                Err(not_supported("this table function"))
            }
            other => Err(not_supported(format!("FROM item {other}"))),
        }
    }

    /// A view in FROM: its stored query, planned as a subquery named after the view.
    fn plan_view(
        &self,
        view: &crate::catalog::ViewDef,
        alias: Option<&ast::TableAlias>,
    ) -> Result<FromItem, SqlError> {
        let parser = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {});
        let query = parser
            .try_with_sql(&view.query)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| {
                SqlError::new(
                    INTERNAL_ERROR,
                    format!(
                        "the stored query of view \"{}\" does not parse: {e}",
                        view.name
                    ),
                )
            })?;
        // A view replaced by one that names itself would expand forever.
        let depth = VIEW_DEPTH.with(|d| d.get());
        if depth >= VIEW_NESTING_MAX {
            return Err(SqlError::new(
                "42P17",
                format!(
                    "infinite recursion detected in rules for relation \"{}\"",
                    view.name
                ),
            ));
        }
        VIEW_DEPTH.with(|d| d.set(depth + 1));
        // Views are planned without the outer scope: they cannot be correlated.
        let planned = self.plan_query(&query, None);
        VIEW_DEPTH.with(|d| d.set(depth));
        // Positions inside the view's text mean nothing in the statement's.
        let (plan, cols) = planned.map_err(|e| e.at(None))?;
        let qualifier = alias.map(|a| ident(&a.name)).unwrap_or(view.name.clone());
        let mut columns = to_scope_columns(&cols, Some(&qualifier));
        for (c, name) in columns.iter_mut().zip(&view.columns) {
            c.name = name.clone();
        }
        apply_column_aliases(&mut columns, alias)?;
        Ok(FromItem {
            plan,
            columns,
            pushable: Vec::new(),
        })
    }

    /// A set-returning function in FROM (`name(args)`, `unnest(...)` too when written
    /// `pg_catalog.unnest`).
    fn plan_table_function(
        &self,
        name: &ast::ObjectName,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
        ordinality: bool,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        self.plan_table_function_over(name, args, alias, ordinality, parent, Vec::new())
    }

    /// The FROM items before a function that reads their columns, joined, then the function
    /// run for each of their rows ([`Plan::LateralFunction`]).
    fn plan_lateral_function(
        &self,
        before: Vec<FromItem>,
        twj: &ast::TableWithJoins,
        parent: Option<&Scope>,
    ) -> Result<FromItem, SqlError> {
        let (name, args, alias, ordinality) =
            table_function_of(twj).expect("checked by the caller");
        let input = self.joined_before(before)?;
        let item = self.plan_table_function_over(
            &name,
            &args,
            alias,
            ordinality,
            parent,
            input.columns.clone(),
        )?;
        let Plan::Function { func, ordinality } = item.plan else {
            unreachable!("a table function plans as one");
        };
        Ok(FromItem {
            plan: Plan::LateralFunction {
                input: Box::new(input.plan),
                funcs: vec![func],
                ordinality,
            },
            columns: input.columns.into_iter().chain(item.columns).collect(),
            pushable: input.pushable,
        })
    }

    /// The FROM items before a LATERAL item, joined as one. The WHERE's conjuncts over one of
    /// them still filter it first (`pushable`): the lateral item must not run for rows the
    /// WHERE drops.
    fn joined_before(&self, before: Vec<FromItem>) -> Result<FromItem, SqlError> {
        let columns: Vec<ScopeColumn> = before.iter().flat_map(|i| i.columns.clone()).collect();
        let mut pushable = Vec::new();
        let mut offset = 0;
        for item in &before {
            let shifted = item.pushable.iter().map(|&(f, o, w)| (f, o + offset, w));
            pushable.extend(shifted);
            offset += item.columns.len();
        }
        Ok(FromItem {
            plan: self.join_items(before, &mut Vec::new())?,
            columns,
            pushable,
        })
    }

    /// [`Self::plan_table_function`] with its arguments reading `lateral` (the columns of
    /// the FROM items before it) besides the enclosing query's.
    fn plan_table_function_over(
        &self,
        name: &ast::ObjectName,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
        ordinality: bool,
        parent: Option<&Scope>,
        lateral: Vec<ScopeColumn>,
    ) -> Result<FromItem, SqlError> {
        let (_, fname) = split_name(name)?;
        if !["generate_series", "unnest", "pg_partition_ancestors"].contains(&fname.as_str()) {
            return Err(SqlError::new(
                UNDEFINED_FUNCTION,
                format!("function {fname} does not exist"),
            ));
        }
        // Arguments see no column of their own query (no LATERAL), but may read the
        // enclosing query's row (a correlated subquery's FROM): an empty scope under it, so
        // such references are outer ones, evaluated with the executor's outer row.
        let scope = Scope {
            columns: lateral,
            parent,
        };
        let binder = self.binder(Some(&scope));
        let mut bound = Vec::new();
        for a in args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    bound.push(binder.bind(e)?)
                }
                other => return Err(not_supported(format!("argument {other}"))),
            }
        }
        let (func, types) = match fname.as_str() {
            "unnest" => bind_unnest(bound)?,
            "pg_partition_ancestors" => match <[Bound; 1]>::try_from(bound) {
                Ok([relation]) if relation.ty.is_integer() => (
                    TableFunc::PartitionAncestors(Box::new(relation)),
                    vec![SqlType::Int8],
                ),
                _ => {
                    return Err(SqlError::new(
                        UNDEFINED_FUNCTION,
                        "function pg_partition_ancestors does not exist",
                    ))
                }
            },
            _ => bind_series(&binder, bound)?,
        };
        let columns = function_columns(func.name(), &types, alias, ordinality)?;
        Ok(FromItem {
            plan: Plan::Function { func, ordinality },
            columns,
            pushable: Vec::new(),
        })
    }
}

/// The columns of a function in FROM: one per result type, named after the function, or
/// after the alias when there is just one (as PostgreSQL names a scalar function's
/// column); then `ordinality`; then the alias's column list renames them in order.
fn function_columns(
    fname: &str,
    types: &[SqlType],
    alias: Option<&ast::TableAlias>,
    ordinality: bool,
) -> Result<Vec<ScopeColumn>, SqlError> {
    let qualifier = alias.map_or_else(|| fname.to_string(), |a| ident(&a.name));
    let column_name = if types.len() == 1 { &qualifier } else { fname };
    let column = |name: &str, ty: SqlType| ScopeColumn {
        qualifier: Some(qualifier.clone()),
        name: name.to_string(),
        ty,
        typmod: TYPMOD_NONE,
        hidden: false,
    };
    let mut columns: Vec<ScopeColumn> = types.iter().map(|&t| column(column_name, t)).collect();
    if ordinality {
        columns.push(column("ordinality", SqlType::Int8));
    }
    apply_column_aliases(&mut columns, alias)?;
    Ok(columns)
}

/// A FROM item that is a lone function call: (name, arguments, alias, WITH ORDINALITY).
#[allow(clippy::type_complexity)]
fn is_lateral_subquery(relation: &ast::TableFactor) -> bool {
    matches!(relation, ast::TableFactor::Derived { lateral: true, .. })
}

/// What [`Planner::select_list_functions`] found: the functions, their columns, and the
/// select list reading those columns.
struct SelectListFunctions {
    funcs: Vec<TableFunc>,
    columns: Vec<ScopeColumn>,
    projection: Vec<ast::SelectItem>,
}

/// The name the `i`th set-returning function of a select list gives its column; no client
/// can write it (a query string holds no NUL).
fn set_function_column(i: usize) -> String {
    format!("\0set{i}")
}

fn is_set_function_column(name: &str) -> bool {
    name.starts_with("\0set")
}

/// Whether `e` calls a set-returning function (not inside a subquery).
fn contains_set_function(e: &ast::Expr) -> bool {
    use sqlparser::ast::VisitMut;
    let mut finder = SetFunctionFinder::default();
    let _ = e.clone().visit(&mut finder);
    !finder.calls.is_empty()
}

/// Replaces each call of a set-returning function in an expression (not inside a subquery)
/// with a reference to its column, keeping the call's name and arguments.
#[derive(Default)]
struct SetFunctionFinder {
    calls: Vec<(ast::ObjectName, Vec<ast::FunctionArg>)>,
    /// Subqueries the visit is inside: their calls are theirs.
    depth: usize,
}

impl sqlparser::ast::VisitorMut for SetFunctionFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _: &mut ast::Query) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut ast::Query) -> std::ops::ControlFlow<()> {
        self.depth -= 1;
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> std::ops::ControlFlow<()> {
        if self.depth > 0 {
            return std::ops::ControlFlow::Continue(());
        }
        let ast::Expr::Function(f) = e else {
            return std::ops::ControlFlow::Continue(());
        };
        let ast::FunctionArguments::List(list) = &f.args else {
            return std::ops::ControlFlow::Continue(());
        };
        let name = f.name.0.last().map(|part| part.to_string().to_lowercase());
        let plain = f.over.is_none()
            && f.filter.is_none()
            && f.within_group.is_empty()
            && list.duplicate_treatment.is_none()
            && list.clauses.is_empty();
        if plain && matches!(name.as_deref(), Some("generate_series" | "unnest")) {
            let column = set_function_column(self.calls.len());
            self.calls.push((f.name.clone(), list.args.clone()));
            *e = ast::Expr::Identifier(ast::Ident::with_quote('"', column));
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn table_function_of(
    twj: &ast::TableWithJoins,
) -> Option<(
    ast::ObjectName,
    Vec<ast::FunctionArg>,
    Option<&ast::TableAlias>,
    bool,
)> {
    if !twj.joins.is_empty() {
        return None;
    }
    match &twj.relation {
        ast::TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality,
            ..
        } => Some((
            name.clone(),
            args.args.clone(),
            alias.as_ref(),
            *with_ordinality,
        )),
        ast::TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality,
            ..
        } => Some((
            ast::ObjectName::from(vec![ast::Ident::new("unnest")]),
            array_exprs
                .iter()
                .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e.clone())))
                .collect(),
            alias.as_ref(),
            *with_ordinality,
        )),
        _ => None,
    }
}

fn argument_types(args: &[Bound]) -> String {
    let types: Vec<&str> = args.iter().map(|a| a.ty.sql_name()).collect();
    types.join(", ")
}

/// `unnest(anyarray, ...)`: each argument must be an array of a known type. Several
/// arguments are PostgreSQL's shorthand for `ROWS FROM (unnest(a), unnest(b), ...)`, so each
/// is resolved on its own.
fn bind_unnest(args: Vec<Bound>) -> Result<(TableFunc, Vec<SqlType>), SqlError> {
    if args.is_empty() {
        return Err(SqlError::new(
            UNDEFINED_FUNCTION,
            "function unnest() does not exist",
        ));
    }
    let mut types = Vec::with_capacity(args.len());
    for a in &args {
        // A catalog column holding an integer array's or vector's text form (`pg_index.
        // indkey`, `{1,2}`): its elements are read as bigint (PostgreSQL's int2vector).
        let catalog_vector = a.ty == SqlType::Text
            && matches!(a.kind, expr::Kind::Column(_) | expr::Kind::Outer(..));
        match a.ty.element() {
            Some(t) => types.push(t),
            None if catalog_vector => types.push(SqlType::Int8),
            // PostgreSQL cannot choose among unnest(anyarray), unnest(tsvector), ...
            None if a.ty == SqlType::Unknown => {
                return Err(SqlError::new(
                    AMBIGUOUS_FUNCTION,
                    "function unnest(unknown) is not unique",
                )
                .at(a.pos))
            }
            None => {
                return Err(SqlError::new(
                    UNDEFINED_FUNCTION,
                    format!("function unnest({}) does not exist", a.ty.sql_name()),
                )
                .at(a.pos))
            }
        }
    }
    Ok((TableFunc::Unnest(args), types))
}

/// `generate_series(start, stop [, step])`: integers or numerics in their common type,
/// or timestamps with an interval step.
fn bind_series(binder: &Binder, args: Vec<Bound>) -> Result<(TableFunc, Vec<SqlType>), SqlError> {
    if args.len() < 2 || args.len() > 3 {
        return Err(SqlError::new(
            UNDEFINED_FUNCTION,
            "function generate_series takes 2 or 3 arguments",
        ));
    }
    let ty = series_type(&args)?;
    let step_ty = if matches!(ty, SqlType::Timestamp | SqlType::TimestampTz) {
        SqlType::Interval
    } else {
        ty
    };
    let mut args = args.into_iter();
    let mut next = |ty| {
        args.next()
            .map(|b| binder.coerce(b, ty, TYPMOD_NONE))
            .transpose()
    };
    let start = Box::new(next(ty)?.expect("two arguments"));
    let stop = Box::new(next(ty)?.expect("two arguments"));
    let step = next(step_ty)?.map(Box::new);
    Ok((TableFunc::Series { start, stop, step }, vec![ty]))
}

/// Which generate_series a call means, as PostgreSQL resolves it: with an interval step
/// (or an unknown one after a date/time bound), the timestamp form when a bound is a
/// timestamp and none a timestamptz, else the timestamptz form (dates and unknown literals
/// become timestamptz, the preferred type of their category); otherwise the arguments'
/// common integer or numeric type (only unknown literals: ambiguous).
fn series_type(args: &[Bound]) -> Result<SqlType, SqlError> {
    let undefined = || {
        SqlError::new(
            UNDEFINED_FUNCTION,
            format!(
                "function generate_series({}) does not exist",
                argument_types(args)
            ),
        )
    };
    let bounds = &args[..2];
    let has = |t: SqlType| bounds.iter().any(|a| a.ty == t);
    let datetime =
        |t: SqlType| matches!(t, SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz);
    let by_interval = args.get(2).is_some_and(|s| {
        s.ty == SqlType::Interval
            || (s.ty == SqlType::Unknown && bounds.iter().any(|a| datetime(a.ty)))
    });
    if by_interval {
        if !bounds
            .iter()
            .all(|a| datetime(a.ty) || a.ty == SqlType::Unknown)
        {
            return Err(undefined());
        }
        return Ok(if has(SqlType::Timestamp) && !has(SqlType::TimestampTz) {
            SqlType::Timestamp
        } else {
            SqlType::TimestampTz
        });
    }
    if args.iter().all(|a| a.ty == SqlType::Unknown) {
        return Err(SqlError::new(
            AMBIGUOUS_FUNCTION,
            format!(
                "function generate_series({}) is not unique",
                argument_types(args)
            ),
        ));
    }
    let ty = expr::common_type(args.iter().map(|b| (b.ty, b.pos)), "generate_series")
        .map_err(|_| undefined())?;
    match ty {
        t if t.is_integer() || t == SqlType::Numeric => Ok(t),
        _ => Err(undefined()),
    }
}

impl Binder<'_> {
    /// `l = r` in their common type (USING joins, primary key matching).
    pub(crate) fn equality(&self, l: Bound, r: Bound) -> Result<Bound, SqlError> {
        let ty = expr::common_type([(l.ty, l.pos), (r.ty, r.pos)].into_iter(), "JOIN/USING")?;
        let l = self.coerce(l, ty, TYPMOD_NONE)?;
        let r = self.coerce(r, ty, TYPMOD_NONE)?;
        Ok(expr::cmp_eq(l, r))
    }
}

fn require_bool(
    binder: &Binder,
    b: Bound,
    what: &str,
    pos: Option<usize>,
) -> Result<Bound, SqlError> {
    match b.ty {
        SqlType::Bool => Ok(b),
        SqlType::Unknown => binder.coerce(b, SqlType::Bool, TYPMOD_NONE),
        other => Err(SqlError::new(
            DATATYPE_MISMATCH,
            format!(
                "argument of {what} must be type boolean, not type {}",
                other.sql_name()
            ),
        )
        .at(pos)),
    }
}

pub(crate) fn sort_key(expr: Bound, options: &ast::OrderByOptions) -> SortKey {
    let descending = matches!(options.sort, Some(ast::OrderBySort::Desc));
    SortKey {
        expr,
        descending,
        // PostgreSQL: NULLs sort as larger than every value.
        nulls_first: options.nulls_first.unwrap_or(descending),
    }
}

/// How many columns a plan's rows have, where it is evident from the top node.
fn plan_width_hint(plan: &Plan) -> Option<usize> {
    match plan {
        Plan::Project(_, e) => Some(e.len()),
        Plan::Sort(input, _) | Plan::Distinct(input) => plan_width_hint(input),
        _ => None,
    }
}

pub(crate) fn sql_type_of(c: &Column) -> SqlType {
    SqlType::from_oid(c.type_oid).unwrap_or(SqlType::Text)
}

fn to_scope_columns(columns: &[Column], qualifier: Option<&str>) -> Vec<ScopeColumn> {
    columns
        .iter()
        .map(|c| ScopeColumn {
            qualifier: qualifier.map(str::to_string),
            name: c.name.clone(),
            ty: sql_type_of(c),
            typmod: c.type_modifier,
            hidden: false,
        })
        .collect()
}

fn apply_column_aliases(
    columns: &mut [ScopeColumn],
    alias: Option<&ast::TableAlias>,
) -> Result<(), SqlError> {
    let Some(alias) = alias else { return Ok(()) };
    if alias.columns.len() > columns.len() {
        return Err(SqlError::new(
            INVALID_COLUMN_REFERENCE,
            format!(
                "table \"{}\" has {} columns available but {} columns specified",
                ident(&alias.name),
                columns.len(),
                alias.columns.len()
            ),
        ));
    }
    for (c, a) in columns.iter_mut().zip(&alias.columns) {
        c.name = ident(&a.name);
    }
    Ok(())
}

/// Views nested in views, at most (deeper means a view that refers to itself).
const VIEW_NESTING_MAX: usize = 32;

thread_local! {
    /// Views being expanded by the planner on this thread right now.
    static VIEW_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) fn ident(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// `[schema.]name` → (schema, name); a database prefix must be the current database.
pub(crate) fn split_name(name: &ast::ObjectName) -> Result<(Option<String>, String), SqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident).unwrap_or_else(|| p.to_string()))
        .collect();
    match parts.as_slice() {
        [n] => Ok((None, n.clone())),
        [s, n] => Ok((Some(s.clone()), n.clone())),
        [_, s, n] => Ok((Some(s.clone()), n.clone())),
        _ => Err(SqlError::new(
            SYNTAX_ERROR,
            format!(
                "improper qualified name (too many dotted names): {}",
                parts.join(".")
            ),
        )),
    }
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported yet"),
    )
}

/// Unused-import guard for Datum in this module's signatures.
#[allow(dead_code)]
fn _datum(_: Datum) {}

/// The row lock a query's FOR [NO KEY] UPDATE / FOR [KEY] SHARE clauses ask for (the
/// strongest; `OF` lists are not told apart: every table the query reads is locked). The
/// key forms arrive as FOR UPDATE / FOR SHARE marked in their `OF` name
/// ([`crate::KEY_LOCK_MARKER`]).
pub(crate) fn row_lock_mode(
    locks: &[ast::LockClause],
) -> Result<Option<crate::txn::RowLock>, SqlError> {
    use crate::txn::{LockMode, RowLock};
    let mut lock: Option<RowLock> = None;
    for l in locks {
        let (nowait, skip_locked) = match l.nonblock {
            None => (false, false),
            Some(ast::NonBlock::Nowait) => (true, false),
            Some(ast::NonBlock::SkipLocked) => (false, true),
        };
        let key_form =
            l.of.as_ref()
                .and_then(|name| name.0.first())
                .is_some_and(|part| part.to_string().contains(crate::KEY_LOCK_MARKER));
        let mode = match (l.lock_type, key_form) {
            (ast::LockType::Share, false) => LockMode::Shared,
            (ast::LockType::Share, true) => LockMode::KeyShare,
            (ast::LockType::Update, false) => LockMode::Exclusive,
            (ast::LockType::Update, true) => LockMode::NoKeyExclusive,
        };
        lock = Some(match lock {
            None => RowLock {
                mode,
                nowait,
                skip_locked,
            },
            Some(prev) => RowLock {
                mode: prev.mode.max(mode),
                nowait: prev.nowait || nowait,
                skip_locked: prev.skip_locked || skip_locked,
            },
        });
    }
    Ok(lock)
}
