//! Statements that read or change tables: queries, INSERT/UPDATE/DELETE, TRUNCATE, DDL and
//! transaction control. Each one plans on the coordinator, fetches or writes through the
//! [`Cluster`], and finishes on the coordinator.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use sqlparser::ast::{self, Spanned};

use crate::catalog::DEFAULT_SCHEMA;
use crate::catalog::{CheckDef, ColumnDef, DdlChange, Table, COLUMNS_MAX};
use crate::cluster::{Cluster, ModifySpec, RowOp, SetValue, WriteRequest};
use crate::dist::{fetch, fetch_all};
use crate::error::*;
use crate::exec::{self, Inputs, Row};
use crate::expr::{self, eval, Binder, Bound, Env, Eval, Kind, Positions};
use crate::plan::{self, Fetch, Planner, Scope, ScopeColumn};
use crate::rowcodec;
use crate::session::{Session, TransactionState};
use crate::types::{self, Datum, SqlType, TYPMOD_NONE};
use crate::{Column, StatementResult};

/// Parameter types and values for one execution. With `describe`, a statement stops after
/// binding (the extended protocol's Describe): `types` then holds what binding inferred.
pub(crate) struct Params {
    pub(crate) types: RefCell<Vec<Option<SqlType>>>,
    pub(crate) values: Vec<Datum>,
    pub(crate) describe: bool,
    /// A prepared statement's plan, reused by later executions (see [`PlanCache`]).
    pub(crate) plan_cache: Option<PlanCache>,
}

/// A prepared statement's plan, kept between executions: planning costs as much as a point
/// read. Valid while the catalog version, database and search_path it was planned under hold
/// (see [`PlannedUnder`]); plans that read the pg_catalog snapshot (which reflects session
/// settings) are not kept.
pub(crate) type PlanCache = std::rc::Rc<RefCell<Option<std::rc::Rc<Cached>>>>;

#[derive(Debug)]
pub(crate) enum Cached {
    Query(CachedPlan),
    Update(CachedUpdate),
}

/// What a cached plan was made under: it is used only while all of it still holds.
#[derive(Debug, PartialEq)]
struct PlannedUnder {
    catalog_version: u64,
    database: String,
    search_path: String,
}

impl PlannedUnder {
    fn now(session: &Session, catalog: &crate::catalog::Catalog) -> PlannedUnder {
        PlannedUnder {
            catalog_version: catalog.version,
            database: session.database().to_string(),
            search_path: session
                .parameter("search_path")
                .unwrap_or_default()
                .to_string(),
        }
    }

    fn holds(&self, session: &Session, catalog: &crate::catalog::Catalog) -> bool {
        self.catalog_version == catalog.version
            && self.database == session.database()
            && self.search_path == session.parameter("search_path").unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct CachedPlan {
    under: PlannedUnder,
    plan: plan::Plan,
    columns: Vec<Column>,
    fetches: Vec<Fetch>,
}

/// A prepared UPDATE of one row by its primary key whose SET values read only the row (the
/// shape of pgbench's and most OLTP updates), bound once: executing it again evaluates the key
/// and sends the shard its read-modify-write, without binding the statement again (binding
/// was about a fifth of such an UPDATE's time in a profile of pgbench's account update).
#[derive(Debug)]
pub(crate) struct CachedUpdate {
    under: PlannedUnder,
    table: Arc<Table>,
    sets: Vec<(usize, Bound)>,
    filter: Option<Bound>,
    checks: Vec<(String, Bound)>,
    returning: Returning,
}

/// The cached plan in `params` if it is still valid.
fn cached_plan(
    params: &Params,
    session: &Session,
    catalog: &crate::catalog::Catalog,
) -> Option<std::rc::Rc<Cached>> {
    let cache = params.plan_cache.as_ref()?.borrow();
    let cached = cache.as_ref()?;
    let under = match &**cached {
        Cached::Query(p) => &p.under,
        Cached::Update(u) => &u.under,
    };
    under.holds(session, catalog).then(|| cached.clone())
}

impl Params {
    pub(crate) fn none() -> Params {
        Params {
            types: RefCell::new(Vec::new()),
            values: Vec::new(),
            describe: false,
            plan_cache: None,
        }
    }
}

/// What Describe reports for a statement: its RETURNING columns, or none.
fn described(returning: &Returning) -> StatementResult {
    match returning {
        Some((columns, _)) => StatementResult::Rows {
            columns: columns.clone(),
            rows: Vec::new(),
            tag: String::new(),
        },
        None => command(""),
    }
}

/// The evaluation environment of a bound statement; fails when the statement names a `$n`
/// the execution has no value for (a simple query has none: PostgreSQL's 42P02).
fn env_with(session: &Session, params: &Params) -> Result<Env, SqlError> {
    let wanted = params.types.borrow().len();
    if !params.describe && wanted > params.values.len() {
        return Err(SqlError::new(
            UNDEFINED_PARAMETER,
            format!("there is no parameter ${}", params.values.len() + 1),
        ));
    }
    let mut env = Env::of(session);
    env.params = params.values.clone();
    Ok(env)
}

fn command(tag: impl Into<String>) -> StatementResult {
    StatementResult::Command {
        tag: tag.into(),
        changed_parameters: Vec::new(),
        notices: Vec::new(),
    }
}

/// Describes a query's output columns without running it (extended protocol Describe).
pub(crate) fn describe_query(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    sql: &str,
    q: &ast::Query,
    param_types: &RefCell<Vec<Option<SqlType>>>,
) -> Result<Vec<Column>, SqlError> {
    let positions = Positions::new(sql);
    let planner = Planner::new(session, sql, &positions, catalog, param_types);
    Ok(planner.plan_query(q, None)?.1)
}

pub(crate) async fn run_query<C: Cluster>(
    session: &Session,
    cluster: &C,
    sql: &str,
    q: &ast::Query,
    params: &Params,
) -> Result<StatementResult, SqlError> {
    let catalog = cluster.catalog();
    let cached = cached_plan(params, session, &catalog)
        .filter(|cached| matches!(**cached, Cached::Query(_)));
    // A plan that reads the catalog snapshot is never cached: its snapshot is this one's.
    let mut pg_snapshot = None;
    let cached = match cached {
        Some(cached) => cached,
        None => {
            let positions = Positions::new(sql);
            let param_types = &params.types;
            let planner = Planner::new(session, sql, &positions, &catalog, param_types);
            let (plan, columns) = planner.plan_query(q, None)?;
            let mut fetches = planner.fetches.take();
            let plan = crate::pushdown::push_down(plan, &mut fetches);
            if params.describe {
                return Ok(StatementResult::Rows {
                    columns,
                    rows: Vec::new(),
                    tag: String::new(),
                });
            }
            pg_snapshot = planner.pg.get().cloned();
            let uses_catalog_snapshot = pg_snapshot.is_some();
            let planned = std::rc::Rc::new(Cached::Query(CachedPlan {
                under: PlannedUnder::now(session, &catalog),
                plan,
                columns,
                fetches,
            }));
            if let (Some(cache), false) = (&params.plan_cache, uses_catalog_snapshot) {
                *cache.borrow_mut() = Some(planned.clone());
            }
            planned
        }
    };
    let Cached::Query(cached) = &*cached else {
        unreachable!("only a query plan is taken for a query");
    };
    let (plan, fetches) = (&cached.plan, &cached.fetches);
    let columns = cached.columns.clone();
    let env = env_with(session, params)?;
    if single_row(plan) {
        let mut exprs = Vec::new();
        plan.for_each_expr(&mut |b| exprs.push(b.clone()));
        let exprs: Vec<&Bound> = exprs.iter().collect();
        reserve_sequences(cluster, &env, &exprs, 1).await?;
    }
    crate::pgcatalog::gather_sizes(cluster, pg_snapshot.as_ref()).await?;
    let inputs = fetch_all(cluster, fetches, &env).await?;
    let rows = exec::run(plan, &env, &inputs, None)?;
    let digits = &env.style;
    let rows: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|d| types::output(d, digits)).collect())
        .collect();
    let tag = format!("SELECT {}", rows.len());
    Ok(StatementResult::Rows { columns, rows, tag })
}

/// A serial column's stored default: `nextval('<sequence>')`, the name quoted where it needs
/// it (`nextval('"Users_id_seq"')`), or reading it back as a regclass would fold its case.
pub(crate) fn serial_default(sequence: &str) -> String {
    format!(
        "nextval('{}')",
        crate::quote_ident(sequence).replace('\'', "''")
    )
}

/// Whether a plan yields at most one row without reading a table (SELECT without FROM): its
/// expressions run once, so their sequence values can be reserved ahead.
fn single_row(plan: &plan::Plan) -> bool {
    use plan::Plan as P;
    match plan {
        P::Unit => true,
        P::Project(input, _)
        | P::Filter(input, _)
        | P::Truncate(input, _)
        | P::Distinct(input)
        | P::Sort(input, _)
        | P::Limit { input, .. } => single_row(input),
        _ => false,
    }
}

/// The row key a filter pins: every primary-key column compared for equality with a value
/// that needs no row. None when the filter does not pin one (or pins contradictory values,
/// which the scan then finds no rows for).
pub(crate) fn point_key(
    table: &Table,
    filter: Option<&Bound>,
    env: &Env,
) -> Result<Option<Bytes>, SqlError> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if table.primary_key.is_empty() {
        return Ok(None);
    }
    let mut conjuncts = Vec::new();
    conjuncts_of(filter, &mut conjuncts);
    let mut values: Vec<Option<Datum>> = vec![None; table.primary_key.len()];
    for c in conjuncts {
        if let Some((col, value)) = c.as_column_equality() {
            if let Some(k) = table.primary_key.iter().position(|&p| p == col) {
                let column = &table.columns[col];
                if value.ty != column.ty {
                    continue;
                }
                let v = eval(value, &Eval::new(env))?;
                if v.is_null() {
                    return Ok(None);
                }
                values[k] = Some(v);
            }
        }
    }
    if values.iter().any(Option::is_none) {
        return Ok(None);
    }
    let mut key_bytes = Vec::new();
    for v in values.into_iter().flatten() {
        rowcodec::encode_key_datum(&mut key_bytes, &v)?;
    }
    Ok(Some(rowcodec::row_key(table.id, &key_bytes)))
}

/// The conjuncts of a filter, borrowed: `Bound::into_conjuncts` without cloning the filter
/// (a point read looks at them on every execution of a cached plan).
fn conjuncts_of<'a>(filter: &'a Bound, out: &mut Vec<&'a Bound>) {
    match &filter.kind {
        Kind::And(l, r) => {
            conjuncts_of(l, out);
            conjuncts_of(r, out);
        }
        _ => out.push(filter),
    }
}

fn table_scope(table: &Table, qualifier: Option<String>) -> Vec<ScopeColumn> {
    let q = qualifier.unwrap_or_else(|| table.name.clone());
    table
        .columns
        .iter()
        .map(|c| ScopeColumn {
            qualifier: Some(q.clone()),
            name: c.name.clone(),
            ty: c.ty,
            typmod: c.typmod,
            hidden: false,
        })
        .collect()
}

/// The key bytes of a row: its primary key, or a fresh hidden row id.
pub(crate) fn key_bytes_of(table: &Table, row: &[Datum]) -> Result<Vec<u8>, SqlError> {
    let mut out = Vec::new();
    key_bytes_into(table, row, &mut out)?;
    Ok(out)
}

/// [`key_bytes_of`] into `out` (cleared first), reusing its allocation.
pub(crate) fn key_bytes_into(
    table: &Table,
    row: &[Datum],
    out: &mut Vec<u8>,
) -> Result<(), SqlError> {
    out.clear();
    if table.primary_key.is_empty() {
        out.extend_from_slice(&hidden_row_id());
        return Ok(());
    }
    for &c in &table.primary_key {
        rowcodec::encode_key_datum(out, &row[c])?;
    }
    Ok(())
}

/// A 128-bit row id for tables without a primary key: wall-clock nanoseconds and a hash of
/// (nanoseconds, thread, per-thread counter). Unique without coordination or stored state:
/// the counter tells apart the ids of one thread, and a process started later reads a later
/// clock.
fn hidden_row_id() -> [u8; 16] {
    use std::cell::Cell;
    /// Ids made per clock reading (a COPY asks for a million in a row; the counter alone
    /// keeps them apart).
    const IDS_PER_CLOCK_READ: u64 = 64;
    thread_local! {
        static COUNTER: Cell<u64> = const { Cell::new(0) };
        static NANOS: Cell<u64> = const { Cell::new(0) };
        // Formatted once: a COPY asks for a million ids in a row.
        static THREAD: u64 = xxhash_rust::xxh3::xxh3_64(
            format!("{:?}", std::thread::current().id()).as_bytes(),
        );
    }
    let n = COUNTER.with(|c| {
        let v = c.get().wrapping_add(1);
        c.set(v);
        v
    });
    let nanos = NANOS.with(|cached| {
        if n % IDS_PER_CLOCK_READ == 1 || cached.get() == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            cached.set(now);
        }
        cached.get()
    });
    let thread = THREAD.with(|t| *t);
    let mut seed = [0u8; 24];
    seed[..8].copy_from_slice(&nanos.to_le_bytes());
    seed[8..16].copy_from_slice(&n.to_le_bytes());
    seed[16..].copy_from_slice(&thread.to_le_bytes());
    let random = xxhash_rust::xxh3::xxh3_64(&seed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&nanos.to_be_bytes());
    id[8..].copy_from_slice(&random.to_be_bytes());
    id
}

/// Assignment conversion of a value into a column (INSERT and UPDATE): PostgreSQL's
/// assignment casts, with varchar(n) overflow an error rather than a truncation.
/// Places an assignment's error as PostgreSQL does: at the value when it is of the wrong type,
/// or is a quoted literal the column's input function could not read; nowhere when a value
/// does not fit the column's type or size (integer out of range, numeric field overflow, too
/// long), which PostgreSQL finds only as the statement runs.
pub(crate) fn assignment_error_at(e: SqlError, value: &expr::Bound) -> SqlError {
    let read_as_input = value.ty == SqlType::Unknown
        && e.sqlstate != STRING_DATA_RIGHT_TRUNCATION
        && e.message != crate::numeric::FIELD_OVERFLOW;
    if e.sqlstate == DATATYPE_MISMATCH || read_as_input {
        e.at(value.pos)
    } else {
        e
    }
}

pub(crate) fn assign(
    value: Datum,
    from: SqlType,
    column: &ColumnDef,
    digits: &types::Style,
) -> Result<Datum, SqlError> {
    let ok = from == column.ty
        || from == SqlType::Unknown
        || (from.numeric_rank().is_some() && column.ty.numeric_rank().is_some())
        || column.ty.is_string()
        || expr::datetime_cast_exists(from, column.ty)
        || matches!((from.element(), column.ty.element()), (Some(f), Some(t)) if f == t || f.is_string() && t.is_string());
    if !ok {
        return Err(SqlError::new(
            DATATYPE_MISMATCH,
            format!(
                "column \"{}\" is of type {} but expression is of type {}",
                column.name,
                column.ty.sql_name(),
                from.sql_name()
            ),
        )
        .with_hint(&HINT_REWRITE_OR_CAST));
    }
    if value.is_null() {
        return Ok(Datum::Null);
    }
    if matches!(column.ty, SqlType::Varchar | SqlType::Bpchar) && column.typmod >= 4 {
        let text = match &value {
            Datum::Text(t) => t.clone(),
            other => types::output(other, digits).unwrap_or_default(),
        };
        // Assignment refuses what an explicit cast would cut.
        types::fit_length(column.ty, &text, column.typmod)?;
    }
    if from == column.ty && column.typmod == TYPMOD_NONE {
        return Ok(value);
    }
    let from = if from == SqlType::Unknown {
        SqlType::Text
    } else {
        from
    };
    types::cast(value, from, column.ty, column.typmod, digits)
}

/// Checks NOT NULL and CHECK constraints of a complete row.
pub(crate) fn check_row(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    row: &[Datum],
    env: &Env,
) -> Result<(), SqlError> {
    verify_row(table, &bind_checks(session, catalog, table)?, row, env)
}

/// A table's CHECK constraints, bound over its columns: (constraint name, expression).
pub(crate) fn bind_checks(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
) -> Result<Vec<(String, Bound)>, SqlError> {
    table
        .checks
        .iter()
        .map(|c| {
            Ok((
                c.name.clone(),
                bind_table_expr(session, catalog, table, &c.expr)?,
            ))
        })
        .collect()
}

/// Checks NOT NULL and the bound CHECK constraints of a complete row.
pub(crate) fn verify_row(
    table: &Table,
    checks: &[(String, Bound)],
    row: &[Datum],
    env: &Env,
) -> Result<(), SqlError> {
    for (i, c) in table.columns.iter().enumerate() {
        if row[i].is_null() && (c.not_null || table.primary_key.contains(&i)) {
            return Err(SqlError::new(
                NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name, table.name
                ),
            )
            .with_detail(failing_row(row, env))
            .on_column(table, &c.name));
        }
    }
    if let Some(name) = failing_check(checks, row, env)? {
        return Err(SqlError::new(
            CHECK_VIOLATION,
            format!(
                "new row for relation \"{}\" violates check constraint \"{name}\"",
                table.name
            ),
        )
        .with_detail(failing_row(row, env))
        .on_constraint(table, Some(name)));
    }
    Ok(())
}

/// PostgreSQL's DETAIL for a row that fails NOT NULL or a CHECK: `Failing row contains (1,
/// null, x).`
fn failing_row(row: &[Datum], env: &Env) -> String {
    let shown: Vec<String> = row
        .iter()
        .map(|d| match d {
            Datum::Null => "null".to_string(),
            d => crate::types::output(d, &env.style).unwrap_or_default(),
        })
        .collect();
    format!("Failing row contains ({}).", shown.join(", "))
}

/// The name of the first CHECK constraint `row` fails (NULL passes, as in SQL).
pub(crate) fn failing_check<'a>(
    checks: &'a [(String, Bound)],
    row: &[Datum],
    env: &Env,
) -> Result<Option<&'a str>, SqlError> {
    for (name, b) in checks {
        let cx = Eval {
            env,
            row,
            outer: None,
            inputs: None,
        };
        if eval(b, &cx)? == Datum::Bool(false) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Binds stored SQL text (a DEFAULT or CHECK expression) over a table's columns.
pub(crate) fn bind_table_expr(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    text: &str,
) -> Result<Bound, SqlError> {
    let e = parse_expr(text)?;
    with_table_binder(session, catalog, table, text, |binder| binder.bind(&e))
}

/// Runs `f` with a binder over `table`'s columns for the expression text `text` (positions
/// are within it).
fn with_table_binder<T>(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    text: &str,
    f: impl FnOnce(&Binder) -> Result<T, SqlError>,
) -> Result<T, SqlError> {
    let positions = Positions::new(text);
    let params = RefCell::new(Vec::new());
    let planner = Planner::new(session, text, &positions, catalog, &params);
    let scope = Scope {
        columns: table_scope(table, None),
        parent: None,
    };
    let mut binder = planner.binder(Some(&scope));
    // A stored expression or COPY's WHERE has no parameters to take: `$1` is 42P02.
    binder.params = None;
    f(&binder)
}

/// Binds the condition of `COPY ... FROM STDIN WHERE condition` over the table's columns,
/// with PostgreSQL's checks: boolean, no aggregate, no subquery. Positions are within `text`.
pub(crate) fn bind_copy_filter(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    text: &str,
) -> Result<Bound, SqlError> {
    let e = crate::parse_copy_filter(text)?;
    if crate::expr::contains_aggregate(&e) {
        return Err(SqlError::new(
            GROUPING_ERROR,
            "aggregate functions are not allowed in COPY FROM WHERE conditions",
        )
        .at(Positions::new(text).offset(sqlparser::ast::Spanned::span(&e).start)));
    }
    with_table_binder(session, catalog, table, text, |binder| {
        let b = binder.bind(&e)?;
        if !b.is_row_local() {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "cannot use subquery in COPY FROM WHERE condition",
            ));
        }
        if b.ty != SqlType::Bool && b.ty != SqlType::Unknown {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "argument of WHERE must be type boolean, not type {}",
                    b.ty.sql_name()
                ),
            )
            .at(b.pos));
        }
        binder.coerce(b, SqlType::Bool, TYPMOD_NONE)
    })
}

fn parse_expr(text: &str) -> Result<ast::Expr, SqlError> {
    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| {
            SqlError::new(
                INTERNAL_ERROR,
                format!("stored expression does not parse: {e}"),
            )
        })
}

/// Evaluates a column's DEFAULT (NULL without one).
pub(crate) fn default_value(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    column: &ColumnDef,
    env: &Env,
) -> Result<Datum, SqlError> {
    match &column.default {
        None => Ok(Datum::Null),
        Some(text) => {
            let b = bind_table_expr(session, catalog, table, text)?;
            let v = eval(&b, &Eval::new(env))?;
            assign(v, b.ty, column, &env.style)
        }
    }
}

fn is_default_keyword(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// Sends per-shard write batches in parallel; returns the rows applied.
pub(crate) async fn write_rows<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
) -> Result<u64, SqlError> {
    Ok(write_rows_returning(cluster, table, ops, None).await?.0)
}

/// [`write_rows`], also returning the rows `Modify` ops wrote. With `do_nothing` (INSERT ...
/// ON CONFLICT DO NOTHING) a row whose unique-index value is taken is skipped, not an error.
pub(crate) async fn write_rows_returning<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
    do_nothing: Option<&DoNothing>,
) -> Result<(u64, Vec<Row>), SqlError> {
    let (applied, modified, _) = write_rows_skipping(cluster, table, ops, do_nothing).await?;
    Ok((applied, modified))
}

/// [`write_rows_returning`], also returning the rows `do_nothing` skipped for a taken
/// unique-index value: each row's key, and the key of the row holding the value (None: a row
/// of the same statement).
async fn write_rows_skipping<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
    do_nothing: Option<&DoNothing>,
) -> Result<(u64, Vec<Row>, Vec<(Bytes, Option<Bytes>)>), SqlError> {
    let indexes = crate::index::specs_for(&cluster.catalog(), table);
    write_rows_with_indexes(cluster, table, ops, do_nothing, indexes).await
}

/// Writes rows of a table that is not in the catalog yet (a table rewrite's new id), keeping
/// the given indexes' entries and claims.
pub(crate) async fn write_rows_indexed<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
    indexes: Vec<crate::index::IndexSpec>,
) -> Result<u64, SqlError> {
    Ok(write_rows_with_indexes(cluster, table, ops, None, indexes)
        .await?
        .0)
}

async fn write_rows_with_indexes<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
    do_nothing: Option<&DoNothing>,
    indexes: Vec<crate::index::IndexSpec>,
) -> Result<(u64, Vec<Row>, Vec<(Bytes, Option<Bytes>)>), SqlError> {
    // ON CONFLICT DO NOTHING: rows take contested values in statement order, as in PostgreSQL.
    let statement_order: std::collections::HashMap<Bytes, usize> = match do_nothing {
        Some(_) => ops
            .iter()
            .enumerate()
            .map(|(i, (_, op))| (op.key().clone(), i))
            .collect(),
        None => Default::default(),
    };
    let mut per_shard: BTreeMap<usize, Vec<RowOp>> = BTreeMap::new();
    for (shard, op) in ops {
        per_shard.entry(shard).or_default().push(op);
    }
    let constraint = table.pkey_name();
    let futures = per_shard.into_iter().map(|(shard, ops)| {
        cluster.write(
            shard,
            WriteRequest {
                ops,
                constraint: constraint.clone(),
                indexes: indexes.clone(),
                txn: crate::txn::write_ctx(cluster, shard, table.id),
            },
        )
    });
    let results = futures_util::future::join_all(futures).await;
    let mut applied = 0;
    let mut modified = Vec::new();
    let mut claims = Vec::new();
    // Rows ON CONFLICT DO NOTHING skipped for their primary key.
    let mut key_taken = Vec::new();
    for r in results {
        let r = r?;
        applied += r.applied;
        modified.extend(r.modified);
        claims.extend(r.claims);
        key_taken.extend(r.skipped.into_iter().map(|(key, _)| (key, None)));
    }
    let Some(do_nothing) = do_nothing.filter(|d| !d.indexes.is_empty()) else {
        settle_claims(cluster, &indexes, claims).await?;
        return Ok((applied, modified, key_taken));
    };
    // ON CONFLICT DO NOTHING: a row whose value in an arbiter unique index another row
    // already holds is skipped, as one whose key exists was: it is deleted again (with its
    // index entries and the claims it did take) in the same transaction.
    let mut conflicting =
        settle_claims_if_free(cluster, &indexes, claims, do_nothing, &statement_order).await?;
    if !conflicting.is_empty() {
        let undo = conflicting
            .iter()
            .map(|(key, _)| {
                (
                    shard_of_key(cluster, key),
                    RowOp::Delete { key: key.clone() },
                )
            })
            .collect();
        Box::pin(write_rows_returning(cluster, table, undo, None)).await?;
        applied -= conflicting.len() as u64;
    }
    conflicting.extend(key_taken);
    Ok((applied, modified, conflicting))
}

/// The conflicts INSERT ... ON CONFLICT DO NOTHING skips (its arbiters): those on the
/// primary key, and those on these unique indexes (by id). Other conflicts are 23505.
#[derive(Debug)]
pub(crate) struct DoNothing {
    primary_key: bool,
    indexes: Vec<u32>,
}

/// The arbiters of ON CONFLICT [target] DO NOTHING: without a target every unique
/// constraint; with `(columns)` or `ON CONSTRAINT name` the one it names, as PostgreSQL
/// infers it (42P10 when no unique constraint has exactly those columns).
fn do_nothing_arbiter(
    planner: &Planner,
    table: &Table,
    alias: Option<String>,
    on_conflict: &ast::OnConflict,
) -> Result<DoNothing, SqlError> {
    let unique: Vec<crate::index::IndexSpec> = crate::index::specs_for(planner.catalog, table)
        .into_iter()
        .filter(|i| i.unique)
        .collect();
    let sorted = |columns: &[usize]| {
        let mut c = columns.to_vec();
        c.sort_unstable();
        c.dedup();
        c
    };
    let pk = sorted(&table.primary_key);
    let no_arbiter = || {
        SqlError::new(
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    match &on_conflict.conflict_target {
        None => Ok(DoNothing {
            primary_key: true,
            indexes: unique.iter().map(|i| i.id).collect(),
        }),
        Some(ast::ConflictTarget::Columns { columns, predicate }) => {
            let mut named = Vec::with_capacity(columns.len());
            for c in columns {
                named.push(table.column_index(&plan::ident(c)).ok_or_else(no_arbiter)?);
            }
            let named = sorted(&named);
            check_inference_predicate(planner, table, alias, predicate.as_ref())?;
            let indexes: Vec<u32> = unique
                .iter()
                .filter(|i| sorted(&i.columns) == named && infers(i, predicate.as_ref()))
                .map(|i| i.id)
                .collect();
            let primary_key = !pk.is_empty() && pk == named;
            if !primary_key && indexes.is_empty() {
                return Err(no_arbiter());
            }
            Ok(DoNothing {
                primary_key,
                indexes,
            })
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            let name = plan::split_name(name)?.1;
            if !pk.is_empty() && name == table.pkey_name() {
                return Ok(DoNothing {
                    primary_key: true,
                    indexes: Vec::new(),
                });
            }
            match unique.iter().find(|i| i.name == name) {
                Some(i) => Ok(DoNothing {
                    primary_key: false,
                    indexes: vec![i.id],
                }),
                None => Err(SqlError::new(
                    UNDEFINED_OBJECT,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    ),
                )),
            }
        }
    }
}

/// [`settle_claims`] for INSERT ... ON CONFLICT DO NOTHING: a value another row holds is not
/// taken (no 23505). Returns the keys of the rows that could not take one of their values,
/// each once, with the key of the row holding it (None: a row of the same statement).
async fn settle_claims_if_free<C: Cluster>(
    cluster: &C,
    indexes: &[crate::index::IndexSpec],
    mut claims: Vec<crate::index::Claim>,
    do_nothing: &DoNothing,
    statement_order: &std::collections::HashMap<Bytes, usize>,
) -> Result<Vec<(Bytes, Option<Bytes>)>, SqlError> {
    claims.sort_by_key(|c| statement_order.get(&c.row_key).copied());
    let mut holder_of: std::collections::HashMap<Bytes, Bytes> = Default::default();
    let mut groups: BTreeMap<(usize, u32), Vec<RowOp>> = BTreeMap::new();
    for c in claims {
        // A new row gives up no value.
        assert!(c.old.is_none(), "an inserted row releases no claim");
        let Some(new) = c.new else { continue };
        let shard = cluster.shard_of_token(crate::index::claim_token(&new));
        holder_of.insert(new.clone(), c.row_key.clone());
        groups
            .entry((shard, c.index_id))
            .or_default()
            .push(RowOp::Insert {
                key: new,
                value: c.row_key,
                // A value of an index that is not an arbiter is a 23505, as in PostgreSQL.
                if_absent: do_nothing.indexes.contains(&c.index_id),
            });
    }
    let mut conflicting = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in write_claims(cluster, indexes, groups).await {
        for (claim, holder) in r?.skipped {
            let row = holder_of
                .get(&claim)
                .expect("a skipped claim was sent")
                .clone();
            if seen.insert(row.clone()) {
                conflicting.push((row, holder));
            }
        }
    }
    Ok(conflicting)
}

/// Writes the unique-index claims rows gave up and took, on the claims' own shards, in the
/// writer's transaction: a value another row holds fails with 23505 naming the index.
/// Per shard and index, released claims go before taken ones (rows trading values in one
/// statement).
pub(crate) async fn settle_claims<C: Cluster>(
    cluster: &C,
    indexes: &[crate::index::IndexSpec],
    claims: Vec<crate::index::Claim>,
) -> Result<(), SqlError> {
    if claims.is_empty() {
        return Ok(());
    }
    let shard_of_claim = |claim: &Bytes| cluster.shard_of_token(crate::index::claim_token(claim));
    let mut groups: BTreeMap<(usize, u32), (Vec<RowOp>, Vec<RowOp>)> = BTreeMap::new();
    for c in claims {
        if let Some(old) = c.old {
            let group = groups
                .entry((shard_of_claim(&old), c.index_id))
                .or_default();
            group.0.push(RowOp::Release {
                key: old,
                holder: c.row_key.clone(),
            });
        }
        if let Some(new) = c.new {
            let group = groups
                .entry((shard_of_claim(&new), c.index_id))
                .or_default();
            group.1.push(RowOp::Insert {
                key: new,
                value: c.row_key,
                if_absent: false,
            });
        }
    }
    let groups = groups
        .into_iter()
        .map(|(group, (mut ops, taken))| {
            ops.extend(taken);
            (group, ops)
        })
        .collect();
    for r in write_claims(cluster, indexes, groups).await {
        r?;
    }
    Ok(())
}

/// Sends each (shard, unique index) group of claim writes to its shard, in parallel, in the
/// writer's transaction; a taken value's 23505 names the index.
async fn write_claims<C: Cluster>(
    cluster: &C,
    indexes: &[crate::index::IndexSpec],
    groups: BTreeMap<(usize, u32), Vec<RowOp>>,
) -> Vec<Result<crate::cluster::WriteOutcome, SqlError>> {
    let futures = groups.into_iter().map(|((shard, index_id), ops)| {
        let index = indexes.iter().find(|i| i.id == index_id);
        let constraint = index.map(|i| i.name.clone()).unwrap_or_default();
        // Claims are grouped by the indexes being written, so the index is there; were it
        // not, no table is recorded (which only lets DDL in the block through).
        let table_id = index.map_or(0, |i| i.table_id);
        cluster.write(
            shard,
            WriteRequest {
                ops,
                constraint,
                indexes: Vec::new(),
                txn: crate::txn::write_ctx(cluster, shard, table_id),
            },
        )
    });
    futures_util::future::join_all(futures).await
}

fn shard_of_key<C: Cluster>(cluster: &C, key: &Bytes) -> usize {
    let token = rowcodec::storage_key_token(key).expect("a row key has a token");
    cluster.shard_of_token(token)
}

pub(crate) async fn run_insert<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    insert: &ast::Insert,
    params: &Params,
) -> Result<StatementResult, SqlError> {
    let catalog = cluster.catalog();
    let positions = Positions::new(sql);
    let param_types = &params.types;
    let planner = Planner::new(session, sql, &positions, &catalog, param_types);
    if insert.or.is_some() {
        // SQLite's INSERT OR REPLACE/IGNORE: sqlparser accepts it in every dialect.
        return Err(SqlError::new(
            SYNTAX_ERROR,
            "syntax error at or near \"OR\"",
        ));
    }
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(not_supported("INSERT INTO a table function"));
    };
    let table = planner.lookup_table(name)?;
    if insert.partitioned.is_some() || !insert.after_columns.is_empty() {
        return Err(not_supported("this INSERT form"));
    }
    let mut upsert = None;
    let do_nothing = match &insert.on {
        None => None,
        Some(ast::OnInsert::OnConflict(c)) => match &c.action {
            ast::OnConflictAction::DoNothing => {
                let alias = insert.table_alias.as_ref().map(|a| plan::ident(&a.alias));
                Some(do_nothing_arbiter(&planner, &table, alias, c)?)
            }
            ast::OnConflictAction::DoUpdate(du) => {
                let alias = insert.table_alias.as_ref().map(|a| plan::ident(&a.alias));
                upsert = Some(bind_do_update(&planner, &table, alias, c, du)?);
                None
            }
        },
        Some(_) => return Err(not_supported("this ON clause")),
    };
    // Target columns.
    let implicit_targets = insert.columns.is_empty();
    let mut targets: Vec<usize> = if implicit_targets {
        (0..table.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(insert.columns.len());
        for c in &insert.columns {
            let n = plan::split_name(c)?.1;
            let i =
                target_column(&table, &n).map_err(|e| e.at(positions.offset(c.span().start)))?;
            if t.contains(&i) {
                return Err(SqlError::new(
                    DUPLICATE_COLUMN,
                    format!("column \"{n}\" specified more than once"),
                ));
            }
            t.push(i);
        }
        t
    };
    let returning = bind_returning(&planner, &table, insert.returning.as_deref())?;
    let env = env_with(session, params)?;
    let digits = &env.style;
    // Source rows, each value already assigned to its target column (None: DEFAULT).
    let mut source_rows: Vec<Vec<Option<Datum>>> = Vec::new();
    let source = insert.source.as_ref();
    match source.map(|q| q.body.as_ref()) {
        None if params.describe => return Ok(described(&returning)),
        None => source_rows.push(vec![None; targets.len()]),
        Some(ast::SetExpr::Values(values))
            if source.is_some_and(|q| {
                q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none()
            }) =>
        {
            let binder = planner.binder(None);
            let mut bound_rows = Vec::with_capacity(values.rows.len());
            if implicit_targets {
                // Without a column list, VALUES fills the leading columns.
                let width = values.rows.first().map_or(0, |r| r.len());
                if width <= targets.len() {
                    targets.truncate(width);
                }
            }
            for row in &values.rows {
                if row.len() > targets.len() {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        "INSERT has more expressions than target columns",
                    )
                    .at(row
                        .get(targets.len())
                        .and_then(|e| positions.offset(e.span().start))));
                }
                if row.len() < targets.len() {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        "INSERT has more target columns than expressions",
                    ));
                }
                let mut bound = Vec::with_capacity(row.len());
                for (e, &t) in row.iter().zip(&targets) {
                    if is_default_keyword(e) {
                        bound.push(None);
                        continue;
                    }
                    let b = binder.bind(e)?;
                    let column = &table.columns[t];
                    // An unknown literal or parameter takes the column's type directly; the
                    // column's length or precision applies when the row is assigned, where
                    // PostgreSQL's errors for it have no position.
                    let b = if b.ty == SqlType::Unknown {
                        binder.coerce(b, column.ty, TYPMOD_NONE)?
                    } else {
                        b
                    };
                    bound.push(Some(b));
                }
                bound_rows.push(bound);
            }
            if params.describe {
                return Ok(described(&returning));
            }
            let fetches = planner.fetches.borrow().clone();
            let inputs = fetch_all(cluster, &fetches, &env).await?;
            let exprs: Vec<&Bound> = bound_rows.iter().flatten().flatten().collect();
            reserve_sequences(cluster, &env, &exprs, 1).await?;
            for bound in bound_rows {
                let mut out = Vec::with_capacity(bound.len());
                for (b, &t) in bound.iter().zip(&targets) {
                    match b {
                        None => out.push(None),
                        Some(b) => {
                            let cx = Eval {
                                env: &env,
                                row: &[],
                                outer: None,
                                inputs: Some(&inputs),
                            };
                            let v = eval(b, &cx)?;
                            out.push(Some(
                                assign(v, b.ty, &table.columns[t], digits)
                                    .map_err(|e| assignment_error_at(e, b))?,
                            ));
                        }
                    }
                }
                source_rows.push(out);
            }
        }
        Some(_) => {
            let q = source.expect("a source");
            // Its bare NULLs and literals take the target columns' types, as in PostgreSQL.
            planner.keep_unknown.set(true);
            let planned = planner.plan_query(q, None);
            planner.keep_unknown.set(false);
            let (plan, columns) = planned?;
            if implicit_targets && columns.len() <= targets.len() {
                targets.truncate(columns.len());
            }
            if columns.len() > targets.len() {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    "INSERT has more expressions than target columns",
                ));
            }
            if params.describe {
                return Ok(described(&returning));
            }
            let fetches = planner.fetches.borrow().clone();
            let inputs = fetch_all(cluster, &fetches, &env).await?;
            let rows = exec::run(&plan, &env, &inputs, None)?;
            for row in rows {
                let mut out = Vec::with_capacity(targets.len());
                for (i, &t) in targets.iter().enumerate() {
                    match row.get(i) {
                        Some(v) => out.push(Some(assign(
                            v.clone(),
                            plan::sql_type_of(&columns[i]),
                            &table.columns[t],
                            digits,
                        )?)),
                        None => out.push(None),
                    }
                }
                source_rows.push(out);
            }
        }
    }
    identity_values(&table, &targets, insert.overriding, &mut source_rows)?;
    // Sequence values for the DEFAULTs the rows take (serial columns).
    for (i, column) in table.columns.iter().enumerate() {
        let Some(text) = column.default.as_deref().filter(|t| t.contains("nextval(")) else {
            continue;
        };
        let defaulted = source_rows
            .iter()
            .filter(|src| {
                targets
                    .iter()
                    .position(|&t| t == i)
                    .is_none_or(|p| src.get(p).is_none_or(Option::is_none))
            })
            .count();
        if defaulted > 0 {
            let b = bind_table_expr(session, &catalog, &table, text)?;
            reserve_sequences(cluster, &env, &[&b], defaulted).await?;
        }
    }
    // Complete rows, constraints, keys.
    let mut full_rows = Vec::with_capacity(source_rows.len());
    let mut ops = Vec::with_capacity(source_rows.len());
    let mut upsert_arbiter = None;
    let upsert = match upsert {
        Some((sets, filter, arbiter)) => {
            upsert_arbiter = arbiter;
            let referenced = crate::fkey::referenced_columns(&catalog, session.database(), &table);
            let fixed = sets
                .iter()
                .filter_map(|(c, _)| {
                    if table.primary_key.contains(c) {
                        Some((*c, "a primary key value"))
                    } else {
                        referenced
                            .contains(c)
                            .then_some((*c, "a value a foreign key references"))
                    }
                })
                .collect();
            Some(Arc::new(ModifySpec {
                table: table.clone(),
                sets,
                filter,
                checks: bind_checks(session, &catalog, &table)?,
                fixed,
                env: env.clone(),
            }))
        }
        None => None,
    };
    for src in source_rows {
        let mut row = vec![None; table.columns.len()];
        for (v, &t) in src.into_iter().zip(&targets) {
            row[t] = v;
        }
        let mut full = Vec::with_capacity(row.len());
        for (i, v) in row.into_iter().enumerate() {
            full.push(match v {
                Some(v) => v,
                None => default_value(session, &catalog, &table, &table.columns[i], &env)?,
            });
        }
        check_row(session, &catalog, &table, &full, &env)?;
        let key = rowcodec::row_key(table.id, &key_bytes_of(&table, &full)?);
        let shard = shard_of_key(cluster, &key);
        let value = rowcodec::encode_row(&full);
        let op = match &upsert {
            Some(spec) if upsert_arbiter.is_none() => RowOp::Modify {
                key,
                insert: Some(value),
                spec: spec.clone(),
            },
            // A hidden row id is unique by construction: no existence check for it.
            _ if table.primary_key.is_empty() => RowOp::Append { key, value },
            _ => RowOp::Insert {
                key,
                value,
                if_absent: do_nothing.as_ref().is_some_and(|d| d.primary_key),
            },
        };
        ops.push((shard, op));
        full_rows.push(full);
    }
    if let (Some(spec), Some(index)) = (&upsert, upsert_arbiter) {
        let written = upsert_on_unique_index(cluster, &table, ops, full_rows, spec, index).await?;
        crate::fkey::check_references(cluster, session.database(), &env, &table, &written, None)
            .await?;
        note_write(session);
        let tag = format!("INSERT 0 {}", written.len());
        return finish_returning(returning, written, &env, tag, false);
    }
    if upsert.is_some() {
        // The rows as written: inserted, or updated by DO UPDATE (not those its WHERE skipped).
        let (_, written) = write_rows_returning(cluster, &table, ops, None).await?;
        crate::fkey::check_references(cluster, session.database(), &env, &table, &written, None)
            .await?;
        note_write(session);
        let tag = format!("INSERT 0 {}", written.len());
        return finish_returning(returning, written, &env, tag, false);
    }
    let keys: Vec<Bytes> = match &do_nothing {
        Some(_) if !table.foreign_keys.is_empty() => {
            ops.iter().map(|(_, op)| op.key().clone()).collect()
        }
        _ => Vec::new(),
    };
    let (applied, _, skipped) =
        write_rows_skipping(cluster, &table, ops, do_nothing.as_ref()).await?;
    if do_nothing.is_none() {
        note_rows_written(cluster, &table, &full_rows);
    }
    if skipped.is_empty() {
        crate::fkey::check_references(cluster, session.database(), &env, &table, &full_rows, None)
            .await?;
    } else {
        // Rows DO NOTHING skipped were not written: their references are not checked.
        let skipped: std::collections::HashSet<Bytes> =
            skipped.into_iter().map(|(key, _)| key).collect();
        let written: Vec<Row> = full_rows
            .iter()
            .zip(&keys)
            .filter(|(_, key)| !skipped.contains(*key))
            .map(|(row, _)| row.clone())
            .collect();
        crate::fkey::check_references(cluster, session.database(), &env, &table, &written, None)
            .await?;
    }
    note_write(session);
    let tag = format!("INSERT 0 {applied}");
    finish_returning(
        returning,
        full_rows,
        &env,
        tag,
        do_nothing.is_some() && applied as usize != 0,
    )
}

/// DO UPDATE's SET list and WHERE.
/// INSERT ... ON CONFLICT (unique index columns) DO UPDATE: the rows are inserted; those whose
/// value of the arbiter index another row holds are taken back, and that row is updated
/// instead, with the proposed row as `excluded` (`RowOp::ModifyHolder`). Returns the rows
/// written: inserted, then updated (not those the DO UPDATE WHERE left alone).
async fn upsert_on_unique_index<C: Cluster>(
    cluster: &C,
    table: &Table,
    ops: Vec<(usize, RowOp)>,
    full_rows: Vec<Row>,
    spec: &Arc<ModifySpec>,
    index: u32,
) -> Result<Vec<Row>, SqlError> {
    let proposed: std::collections::HashMap<Bytes, (Bytes, Row)> = ops
        .iter()
        .zip(full_rows)
        .map(|((_, op), row)| {
            let value = match op {
                RowOp::Insert { value, .. } | RowOp::Append { value, .. } => value.clone(),
                _ => unreachable!("an upsert inserts"),
            };
            (op.key().clone(), (value, row))
        })
        .collect();
    let order: Vec<Bytes> = ops.iter().map(|(_, op)| op.key().clone()).collect();
    let arbiter = DoNothing {
        primary_key: false,
        indexes: vec![index],
    };
    let (_, _, lost) = write_rows_skipping(cluster, table, ops, Some(&arbiter)).await?;
    let mut updates = Vec::with_capacity(lost.len());
    let mut lost_rows = std::collections::HashSet::with_capacity(lost.len());
    for (row_key, holder) in lost {
        let Some(holder) = holder else {
            return Err(SqlError::new(
                crate::error::CARDINALITY_VIOLATION,
                "ON CONFLICT DO UPDATE command cannot affect row a second time",
            ));
        };
        let (excluded, _) = &proposed[&row_key];
        updates.push((
            shard_of_key(cluster, &holder),
            RowOp::ModifyHolder {
                key: holder,
                excluded: excluded.clone(),
                spec: spec.clone(),
            },
        ));
        lost_rows.insert(row_key);
    }
    let mut written: Vec<Row> = order
        .iter()
        .filter(|key| !lost_rows.contains(*key))
        .map(|key| proposed[key].1.clone())
        .collect();
    if !updates.is_empty() {
        let (_, updated) = write_rows_returning(cluster, table, updates, None).await?;
        written.extend(updated);
    }
    Ok(written)
}

/// Checks the `WHERE` of `ON CONFLICT (columns) WHERE predicate` and sets it aside.
/// PostgreSQL uses the predicate only to infer partial unique indexes, and any index that
/// satisfies it, a non-partial one included, can be the arbiter. helios has no partial
/// indexes, so every unique index on the columns qualifies; the predicate must still name
/// the table's columns and hold no subquery, as PostgreSQL's parse analysis requires.
/// Whether an ON CONFLICT target's index predicate (its WHERE) infers unique index `index`:
/// any does a full index; a partial one needs its own WHERE among the predicate's AND-ed
/// terms (PostgreSQL proves implication; this recognizes the form ORMs write, the index's
/// WHERE repeated).
fn infers(index: &crate::index::IndexSpec, predicate: Option<&ast::Expr>) -> bool {
    let Some(wanted) = &index.predicate else {
        return true;
    };
    let Some(predicate) = predicate else {
        return false;
    };
    let mut terms = vec![predicate];
    let mut i = 0;
    while i < terms.len() {
        match terms[i] {
            ast::Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::And,
                right,
            } => {
                let (l, r) = (&**left, &**right);
                terms.swap_remove(i);
                terms.push(l);
                terms.push(r);
            }
            ast::Expr::Nested(inner) => terms[i] = inner,
            _ => i += 1,
        }
    }
    // Compared as sqlparser prints them, unquoted names folded to lower case as PostgreSQL
    // folds them: the same expression, literals' case and grouping included.
    let printed = |e: &ast::Expr| {
        use sqlparser::ast::VisitMut;
        let mut e = e.clone();
        let _ = e.visit(&mut FoldNames);
        e.to_string()
    };
    let wanted = match parse_expr(&wanted.text) {
        Ok(e) => printed(&e),
        Err(_) => return false,
    };
    terms.iter().any(|t| printed(t) == wanted) || printed(predicate) == wanted
}

/// Folds unquoted identifiers to lower case, as PostgreSQL reads them.
struct FoldNames;

impl sqlparser::ast::VisitorMut for FoldNames {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut ast::Expr) -> std::ops::ControlFlow<()> {
        let fold = |id: &mut ast::Ident| {
            if id.quote_style.is_none() {
                id.value = id.value.to_lowercase();
            }
        };
        match e {
            ast::Expr::Identifier(id) => fold(id),
            ast::Expr::CompoundIdentifier(ids) => ids.iter_mut().for_each(fold),
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn check_inference_predicate(
    planner: &Planner,
    table: &Table,
    alias: Option<String>,
    predicate: Option<&ast::Expr>,
) -> Result<(), SqlError> {
    let Some(predicate) = predicate else {
        return Ok(());
    };
    let scope = Scope {
        columns: table_scope(table, alias),
        parent: None,
    };
    let binder = planner.binder(Some(&scope));
    // Bound but not coerced to boolean: PostgreSQL 15 accepts `WHERE int_column` here.
    let bound = binder.bind(predicate)?;
    if !bound.is_row_local() {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "cannot use subquery in index predicate",
        ));
    }
    Ok(())
}

/// DO UPDATE's SET list, its WHERE, and its arbiter: the primary key (None) or a unique
/// index (its id).
type DoUpdate = (Vec<(usize, SetValue)>, Option<Bound>, Option<u32>);

/// ON CONFLICT ... DO UPDATE: its SET list and WHERE, bound over the existing row (named by
/// the table or its alias) followed by the proposed one (`excluded`). The conflict target
/// must be the primary key, the one unique constraint helios has.
fn bind_do_update(
    planner: &Planner,
    table: &Arc<Table>,
    alias: Option<String>,
    on_conflict: &ast::OnConflict,
    du: &ast::DoUpdate,
) -> Result<DoUpdate, SqlError> {
    let no_arbiter = || {
        SqlError::new(
            "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        )
    };
    let inference_predicate = match &on_conflict.conflict_target {
        Some(ast::ConflictTarget::Columns { predicate, .. }) => predicate.as_ref(),
        _ => None,
    };
    let unique_index = |named: &[usize]| {
        crate::index::specs_for(planner.catalog, table)
            .iter()
            .find(|i| {
                let mut c = i.columns.clone();
                c.sort_unstable();
                i.unique && c == named && infers(i, inference_predicate)
            })
            .map(|i| i.id)
    };
    let mut arbiter = None;
    match &on_conflict.conflict_target {
        None => {
            return Err(SqlError::new(
                SYNTAX_ERROR,
                "ON CONFLICT DO UPDATE requires inference specification or constraint name",
            ))
        }
        Some(ast::ConflictTarget::Columns { columns, predicate }) => {
            let mut named: Vec<usize> = Vec::with_capacity(columns.len());
            for c in columns {
                named.push(table.column_index(&plan::ident(c)).ok_or_else(no_arbiter)?);
            }
            named.sort_unstable();
            named.dedup();
            let mut pk = table.primary_key.clone();
            pk.sort_unstable();
            check_inference_predicate(planner, table, alias.clone(), predicate.as_ref())?;
            if pk.is_empty() || named != pk {
                arbiter = Some(unique_index(&named).ok_or_else(no_arbiter)?);
            }
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            let name = plan::split_name(name)?.1;
            if table.primary_key.is_empty() || name != table.pkey_name() {
                let index = crate::index::specs_for(planner.catalog, table)
                    .into_iter()
                    .find(|i| i.unique && i.name == name);
                let Some(index) = index else {
                    return Err(SqlError::new(
                        UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            table.name
                        ),
                    ));
                };
                arbiter = Some(index.id);
            }
        }
    }
    let mut columns = table_scope(table, alias);
    columns.extend(table_scope(table, Some("excluded".to_string())));
    let scope = Scope {
        columns,
        parent: None,
    };
    let binder = planner.binder(Some(&scope));
    let mut sets = Vec::with_capacity(du.assignments.len());
    for (i, b) in bind_assignments(&binder, table, &du.assignments)? {
        let Some(b) = b else {
            return Err(not_supported("DEFAULT in ON CONFLICT DO UPDATE"));
        };
        if !b.is_row_local() {
            return Err(not_supported("subqueries in ON CONFLICT DO UPDATE"));
        }
        sets.push((i, SetValue::Expr(b)));
    }
    let filter = match &du.selection {
        None => None,
        Some(w) => {
            let b = binder.bind(w)?;
            let b = binder.coerce(b, SqlType::Bool, TYPMOD_NONE)?;
            if !b.is_row_local() {
                return Err(not_supported("subqueries in ON CONFLICT DO UPDATE"));
            }
            Some(b)
        }
    };
    Ok((sets, filter, arbiter))
}

/// A SET list (UPDATE, ON CONFLICT DO UPDATE): each target column's position and its value,
/// None for DEFAULT; an unknown-typed value takes the column's type.
fn bind_assignments(
    binder: &Binder,
    table: &Table,
    assignments: &[ast::Assignment],
) -> Result<Vec<(usize, Option<Bound>)>, SqlError> {
    let mut sets: Vec<(usize, Option<Bound>)> = Vec::with_capacity(assignments.len());
    for a in assignments {
        let ast::AssignmentTarget::ColumnName(n) = &a.target else {
            return Err(not_supported("SET (a, b) = ..."));
        };
        let n = plan::split_name(n)?.1;
        let i = target_column(table, &n)?;
        if sets.iter().any(|(c, _)| *c == i) {
            return Err(SqlError::new(
                SYNTAX_ERROR,
                format!("multiple assignments to same column \"{n}\""),
            ));
        }
        if is_default_keyword(&a.value) {
            sets.push((i, None));
            continue;
        }
        let column = &table.columns[i];
        if column.identity_always {
            return Err(SqlError::new(
                "428C9",
                format!("column \"{n}\" can only be updated to DEFAULT"),
            )
            .with_detail(format!(
                "Column \"{n}\" is an identity column defined as GENERATED ALWAYS."
            )));
        }
        let b = binder.bind(&a.value)?;
        let b = if b.ty == SqlType::Unknown {
            binder.coerce(b, column.ty, column.typmod)?
        } else {
            b
        };
        sets.push((i, Some(b)));
    }
    Ok(sets)
}

type Returning = Option<(Vec<Column>, Vec<Bound>)>;

fn bind_returning(
    planner: &Planner,
    table: &Table,
    items: Option<&[ast::SelectItem]>,
) -> Result<Returning, SqlError> {
    let Some(items) = items else { return Ok(None) };
    let scope = Scope {
        columns: table_scope(table, None),
        parent: None,
    };
    let binder = planner.binder(Some(&scope));
    let mut columns = Vec::new();
    let mut exprs = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (i, c) in table.columns.iter().enumerate() {
                    columns.push(crate::column(c.name.clone(), c.ty, c.typmod));
                    exprs.push(Bound::column(i, c.ty, c.typmod));
                }
            }
            ast::SelectItem::UnnamedExpr(e) => {
                let b = binder.bind(e)?;
                let (name, strength) = expr::column_name(e);
                let name = if strength == 0 {
                    "?column?".to_string()
                } else {
                    name
                };
                columns.push(crate::column(name, b.ty, b.typmod));
                exprs.push(b);
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                let b = binder.bind(expr)?;
                columns.push(crate::column(crate::alias_name(alias), b.ty, b.typmod));
                exprs.push(b);
            }
            other => return Err(not_supported(format!("RETURNING {other}"))),
        }
    }
    Ok(Some((columns, exprs)))
}

fn finish_returning(
    returning: Returning,
    rows: Vec<Row>,
    env: &Env,
    tag: String,
    partial: bool,
) -> Result<StatementResult, SqlError> {
    let Some((columns, exprs)) = returning else {
        return Ok(command(tag));
    };
    if partial {
        // Which rows ON CONFLICT DO NOTHING skipped is known only per shard.
        return Err(not_supported("RETURNING with ON CONFLICT DO NOTHING"));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let cx = Eval {
            env,
            row,
            outer: None,
            inputs: None,
        };
        let mut r = Vec::with_capacity(exprs.len());
        for e in &exprs {
            r.push(types::output(&eval(e, &cx)?, &env.style));
        }
        out.push(r);
    }
    Ok(StatementResult::Rows {
        columns,
        rows: out,
        tag,
    })
}

pub(crate) fn note_write(_session: &mut Session) {}

/// A changing statement's WHERE, bound over its table: the row-local conjuncts, which the
/// shards evaluate (and check again on the newest version of each row), and the rest
/// (subqueries), which the coordinator evaluates.
struct ChangeFilter {
    local: Option<Bound>,
    residual: Option<Bound>,
}

fn bind_change_filter(
    planner: &Planner<'_>,
    table: &Arc<Table>,
    qualifier: Option<String>,
    selection: Option<&ast::Expr>,
) -> Result<ChangeFilter, SqlError> {
    let scope = Scope {
        columns: table_scope(table, qualifier),
        parent: None,
    };
    let mut pushed = Vec::new();
    let mut residual = Vec::new();
    if let Some(w) = selection {
        let binder = planner.binder(Some(&scope));
        let b = binder.bind(w)?;
        if b.ty != SqlType::Bool && b.ty != SqlType::Unknown {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "argument of WHERE must be type boolean, not type {}",
                    b.ty.sql_name()
                ),
            ));
        }
        let b = binder.coerce(b, SqlType::Bool, TYPMOD_NONE)?;
        let mut conjuncts = Vec::new();
        b.into_conjuncts(&mut conjuncts);
        for c in conjuncts {
            if c.is_row_local() {
                pushed.push(c);
            } else {
                residual.push(c);
            }
        }
    }
    Ok(ChangeFilter {
        local: Bound::conjunction(pushed),
        residual: Bound::conjunction(residual),
    })
}

/// The one row key a changing statement can reach without reading first (None: it must
/// read): its WHERE is row-local and pins the whole primary key, and the statement reads
/// the newest version of its row anyway (READ COMMITTED), so the shard's read-modify-write
/// of that key — which skips an absent row and checks the WHERE on the row it finds — does
/// all the statement would. REPEATABLE READ reads first: a row its snapshot cannot see is
/// left alone there, where the shard would call it a concurrent update.
fn single_row_target<C: Cluster>(
    cluster: &C,
    planner: &Planner<'_>,
    table: &Table,
    filter: &ChangeFilter,
    env: &Env,
) -> Result<Option<Bytes>, SqlError> {
    if filter.residual.is_some()
        || !planner.fetches.borrow().is_empty()
        || !crate::txn::reads_newest(cluster)
    {
        return Ok(None);
    }
    point_key(table, filter.local.as_ref(), env)
}

/// The rows a statement changes: (rows, their keys, the other fetches' rows).
type Changed = (Vec<Row>, Vec<Bytes>, Inputs);

/// Rows of `table` that `filter` picks, with their keys: the row-local part of the filter
/// runs in the shards (or a point read), the rest (subqueries) on the coordinator.
async fn select_for_change<C: Cluster>(
    cluster: &C,
    planner: &Planner<'_>,
    table: &Arc<Table>,
    filter: &ChangeFilter,
    env: &Env,
) -> Result<Changed, SqlError> {
    let target = Fetch::new(table.clone(), filter.local.clone());
    let scanned = fetch(cluster, &target, &[], env, true).await?;
    let fetches = planner.fetches.borrow().clone();
    let inputs = fetch_all(cluster, &fetches, env).await?;
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for (row, key) in scanned.rows.into_iter().zip(scanned.keys) {
        if let Some(r) = &filter.residual {
            let cx = Eval {
                env,
                row: &row,
                outer: None,
                inputs: Some(&inputs),
            };
            if eval(r, &cx)? != Datum::Bool(true) {
                continue;
            }
        }
        rows.push(row);
        keys.push(key);
    }
    Ok((rows, keys, inputs))
}

pub(crate) async fn run_update<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    update: &ast::Update,
    params: &Params,
) -> Result<StatementResult, SqlError> {
    if update.from.is_some()
        || !update.table.joins.is_empty()
        || update.limit.is_some()
        || update.or.is_some()
    {
        return Err(not_supported("UPDATE with FROM, joins, LIMIT or OR"));
    }
    let ast::TableFactor::Table { name, alias, .. } = &update.table.relation else {
        return Err(not_supported("UPDATE of this relation"));
    };
    let catalog = cluster.catalog();
    if let Some(cached) = cached_plan(params, session, &catalog) {
        if let (Cached::Update(cached), false) = (&*cached, params.describe) {
            if let Some(result) = run_cached_update(cluster, session, cached, params).await? {
                return Ok(result);
            }
        }
    }
    let positions = Positions::new(sql);
    let param_types = &params.types;
    let planner = Planner::new(session, sql, &positions, &catalog, param_types);
    let table = planner.lookup_table(name)?;
    let qualifier = alias.as_ref().map(|a| plan::ident(&a.name));
    let env = env_with(session, params)?;
    let scope = Scope {
        columns: table_scope(&table, qualifier.clone()),
        parent: None,
    };
    // SET targets and values, bound before any row is read.
    let sets = bind_assignments(&planner.binder(Some(&scope)), &table, &update.assignments)?;
    let returning = bind_returning(&planner, &table, update.returning.as_deref())?;
    let filter = bind_change_filter(&planner, &table, qualifier, update.selection.as_ref())?;
    if params.describe {
        return Ok(described(&returning));
    }
    // The common case runs on the shards as read-modify-write of each row (no lost updates
    // between concurrent statements): SET values that read only the row, no key change.
    // SET col = DEFAULT with a sequence default takes a new value per row, on the coordinator.
    let sequence_default = |column: usize| {
        table.columns[column]
            .default
            .as_deref()
            .is_some_and(|d| d.contains("nextval("))
    };
    // A referenced key that changes needs the old rows: the rows referencing it follow.
    let referenced = crate::fkey::referenced_columns(&catalog, session.database(), &table);
    let on_shards = sets.iter().all(|(column, b)| {
        !table.primary_key.contains(column)
            && !referenced.contains(column)
            && match b {
                Some(b) => b.is_row_local(),
                None => !sequence_default(*column),
            }
    });
    // Without a read first, the key is the only one the shard may change; with one, the
    // keys the read found.
    let target = match on_shards {
        true => single_row_target(cluster, &planner, &table, &filter, &env)?,
        false => None,
    };
    let single_row = target.is_some();
    let (rows, keys, inputs) = match target {
        Some(key) => (Vec::new(), vec![key], Inputs::default()),
        None => select_for_change(cluster, &planner, &table, &filter, &env).await?,
    };
    if on_shards {
        let cacheable =
            single_row && table.foreign_keys.is_empty() && sets.iter().all(|(_, b)| b.is_some());
        let checks = bind_checks(session, &catalog, &table)?;
        if let (Some(cache), true) = (&params.plan_cache, cacheable) {
            *cache.borrow_mut() = Some(std::rc::Rc::new(Cached::Update(CachedUpdate {
                under: PlannedUnder::now(session, &catalog),
                table: table.clone(),
                sets: sets
                    .iter()
                    .filter_map(|(c, b)| Some((*c, b.clone()?)))
                    .collect(),
                filter: filter.local.clone(),
                checks: checks.clone(),
                returning: returning.clone(),
            })));
        }
        let mut spec_sets = Vec::with_capacity(sets.len());
        for (column, b) in sets {
            spec_sets.push(match b {
                Some(b) => (column, SetValue::Expr(b)),
                None => (
                    column,
                    SetValue::Value(default_value(
                        session,
                        &catalog,
                        &table,
                        &table.columns[column],
                        &env,
                    )?),
                ),
            });
        }
        let spec = Arc::new(ModifySpec {
            table: table.clone(),
            sets: spec_sets,
            filter: filter.local,
            checks,
            fixed: Vec::new(),
            env: env.clone(),
        });
        let new_rows = modify_on_shards(cluster, &table, &spec, keys).await?;
        if !table.foreign_keys.is_empty() {
            let set: Vec<usize> = spec.sets.iter().map(|(c, _)| *c).collect();
            check_updated_references(cluster, session, &env, &table, &new_rows, &set).await?;
        }
        note_write(session);
        let count = new_rows.len();
        return finish_returning(returning, new_rows, &env, format!("UPDATE {count}"), false);
    }
    let mut drawn = Vec::new();
    for (column, b) in &sets {
        match b {
            Some(b) => drawn.push(b.clone()),
            None if sequence_default(*column) => {
                let text = table.columns[*column]
                    .default
                    .as_deref()
                    .unwrap_or_default();
                drawn.push(bind_table_expr(session, &catalog, &table, text)?);
            }
            None => {}
        }
    }
    let drawn: Vec<&Bound> = drawn.iter().collect();
    reserve_sequences(cluster, &env, &drawn, rows.len()).await?;
    let digits = &env.style;
    let mut new_rows = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut new_row = row.clone();
        for (i, b) in &sets {
            let column = &table.columns[*i];
            new_row[*i] = match b {
                None => default_value(session, &catalog, &table, column, &env)?,
                Some(b) => {
                    let cx = Eval {
                        env: &env,
                        row,
                        outer: None,
                        inputs: Some(&inputs),
                    };
                    assign(eval(b, &cx)?, b.ty, column, digits)
                        .map_err(|e| assignment_error_at(e, b))?
                }
            };
        }
        new_rows.push(new_row);
    }
    let count = new_rows.len();
    replace_rows(cluster, session, &catalog, &table, &rows, &new_rows, keys).await?;
    let set: Vec<usize> = sets.iter().map(|(c, _)| *c).collect();
    check_updated_references(cluster, session, &env, &table, &new_rows, &set).await?;
    crate::fkey::referenced_rows_changed(cluster, session, &env, &table, &rows, Some(&new_rows))
        .await?;
    note_write(session);
    finish_returning(returning, new_rows, &env, format!("UPDATE {count}"), false)
}

/// Sends each row key's read-modify-write (`spec`) to its shard; returns the rows as changed.
async fn modify_on_shards<C: Cluster>(
    cluster: &C,
    table: &Arc<Table>,
    spec: &Arc<ModifySpec>,
    keys: Vec<Bytes>,
) -> Result<Vec<Row>, SqlError> {
    let ops = keys
        .into_iter()
        .map(|key| {
            let shard = shard_of_key(cluster, &key);
            let op = RowOp::Modify {
                key,
                insert: None,
                spec: spec.clone(),
            };
            (shard, op)
        })
        .collect();
    let (_, new_rows) = write_rows_returning(cluster, table, ops, None).await?;
    note_rows_written(cluster, table, &new_rows);
    Ok(new_rows)
}

/// Runs a cached single-row UPDATE (see [`CachedUpdate`]): None where this execution does not
/// take that path (its key value is NULL, or the transaction reads a snapshot), and the
/// statement is then planned in full.
async fn run_cached_update<C: Cluster>(
    cluster: &C,
    session: &mut Session,
    cached: &CachedUpdate,
    params: &Params,
) -> Result<Option<StatementResult>, SqlError> {
    if !crate::txn::reads_newest(cluster) {
        return Ok(None);
    }
    let env = env_with(session, params)?;
    let Some(key) = point_key(&cached.table, cached.filter.as_ref(), &env)? else {
        return Ok(None);
    };
    let spec = Arc::new(ModifySpec {
        table: cached.table.clone(),
        sets: cached
            .sets
            .iter()
            .map(|(column, b)| (*column, SetValue::Expr(b.clone())))
            .collect(),
        filter: cached.filter.clone(),
        checks: cached.checks.clone(),
        fixed: Vec::new(),
        env: env.clone(),
    });
    let new_rows = modify_on_shards(cluster, &cached.table, &spec, vec![key]).await?;
    note_write(session);
    let count = new_rows.len();
    let returning = cached.returning.clone();
    finish_returning(returning, new_rows, &env, format!("UPDATE {count}"), false).map(Some)
}

/// Notes rows of `table` the transaction wrote (and has: inserted, or updated in place), so
/// that foreign keys referencing them need no lookup; only where some foreign key
/// references the table by its primary key.
fn note_rows_written<C: Cluster>(cluster: &C, table: &Table, rows: &[Row]) {
    if table.primary_key.is_empty() || !crate::txn::in_transaction(cluster) {
        return;
    }
    let catalog = cluster.catalog();
    let Some(db) = catalog.databases.values().find(|d| {
        d.schemas
            .get(&table.schema)
            .is_some_and(|s| s.tables.get(&table.name).is_some_and(|t| t.id == table.id))
    }) else {
        return;
    };
    if db
        .foreign_keys_to(&table.schema, &table.name)
        .next()
        .is_none()
    {
        return;
    }
    let keys = rows.iter().filter_map(|row| {
        let bytes = key_bytes_of(table, row).ok()?;
        Some(rowcodec::row_key(table.id, &bytes))
    });
    crate::txn::note_written_rows(cluster, keys);
}

/// An UPDATE's foreign key checks: the references its SET columns (`set`) changed.
async fn check_updated_references<C: Cluster>(
    cluster: &C,
    session: &Session,
    env: &Env,
    table: &Table,
    new_rows: &[Row],
    set: &[usize],
) -> Result<(), SqlError> {
    crate::fkey::check_references(cluster, session.database(), env, table, new_rows, Some(set))
        .await
}

/// Writes `new` over `old` (rows of `table` under `keys`, read by this statement): each
/// checked against the table's constraints, moved to its new key when that changed, and
/// failing with 40001 where the stored row is no longer the one read.
pub(crate) async fn replace_rows<C: Cluster>(
    cluster: &C,
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    old: &[Row],
    new: &[Row],
    keys: Vec<Bytes>,
) -> Result<(), SqlError> {
    // A row may move to a new key: the transaction no longer knows which rows it has.
    crate::txn::forget_written_rows(cluster);
    let env = Env::of(session);
    let checks = bind_checks(session, catalog, table)?;
    let mut ops = Vec::with_capacity(old.len());
    for ((row, new_row), key) in old.iter().zip(new).zip(keys) {
        verify_row(table, &checks, new_row, &env)?;
        let value = rowcodec::encode_row(new_row);
        let pk_changed = table
            .primary_key
            .iter()
            .any(|&p| expr::compare_nullable(&row[p], &new_row[p]) != std::cmp::Ordering::Equal);
        // The row must still be the version read: one changed since (by a transaction that
        // held its lock in between) fails with 40001 rather than losing that change.
        let expected = rowcodec::encode_row(row);
        let width = table.columns.len();
        if pk_changed {
            let new_key = rowcodec::row_key(table.id, &key_bytes_of(table, new_row)?);
            ops.push((
                shard_of_key(cluster, &key),
                RowOp::Replace {
                    key,
                    value: None,
                    expected,
                    width,
                },
            ));
            ops.push((
                shard_of_key(cluster, &new_key),
                RowOp::Insert {
                    key: new_key,
                    value,
                    if_absent: false,
                },
            ));
        } else {
            ops.push((
                shard_of_key(cluster, &key),
                RowOp::Replace {
                    key,
                    value: Some(value),
                    expected,
                    width,
                },
            ));
        }
    }
    write_rows(cluster, table, ops).await?;
    Ok(())
}

pub(crate) async fn run_delete<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    delete: &ast::Delete,
    params: &Params,
) -> Result<StatementResult, SqlError> {
    if delete.using.is_some()
        || delete.limit.is_some()
        || !delete.order_by.is_empty()
        || !delete.tables.is_empty()
    {
        return Err(not_supported("DELETE with USING, LIMIT or ORDER BY"));
    }
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    let [twj] = from.as_slice() else {
        return Err(not_supported("DELETE from several tables"));
    };
    let ast::TableFactor::Table { name, alias, .. } = &twj.relation else {
        return Err(not_supported("DELETE from this relation"));
    };
    if !twj.joins.is_empty() {
        return Err(not_supported("DELETE with joins"));
    }
    let catalog = cluster.catalog();
    let positions = Positions::new(sql);
    let param_types = &params.types;
    let planner = Planner::new(session, sql, &positions, &catalog, param_types);
    let table = planner.lookup_table(name)?;
    let qualifier = alias.as_ref().map(|a| plan::ident(&a.name));
    let env = env_with(session, params)?;
    let returning = bind_returning(&planner, &table, delete.returning.as_deref())?;
    let filter = bind_change_filter(&planner, &table, qualifier, delete.selection.as_ref())?;
    if params.describe {
        return Ok(described(&returning));
    }
    let keys = match single_row_target(cluster, &planner, &table, &filter, &env)? {
        Some(key) => vec![key],
        None => {
            select_for_change(cluster, &planner, &table, &filter, &env)
                .await?
                .1
        }
    };
    // Each shard deletes a row only if its newest version (after any concurrent writer that
    // held its lock) still passes the row-local part of the WHERE, as PostgreSQL re-checks it;
    // the count and RETURNING are the rows actually deleted.
    let spec = Arc::new(ModifySpec {
        table: table.clone(),
        sets: Vec::new(),
        filter: filter.local,
        checks: Vec::new(),
        fixed: Vec::new(),
        env: env.clone(),
    });
    let ops = keys
        .into_iter()
        .map(|key| {
            let op = RowOp::DeleteIf {
                key,
                spec: spec.clone(),
            };
            (shard_of_key(cluster, op.key()), op)
        })
        .collect();
    let (count, deleted) = write_rows_returning(cluster, &table, ops, None).await?;
    crate::fkey::referenced_rows_changed(cluster, session, &env, &table, &deleted, None).await?;
    note_write(session);
    finish_returning(returning, deleted, &env, format!("DELETE {count}"), false)
}

pub(crate) async fn run_truncate<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    names: &[ast::TruncateTableTarget],
    restart_identity: bool,
    cascade: bool,
) -> Result<StatementResult, SqlError> {
    let catalog = cluster.catalog();
    let mut ids = Vec::with_capacity(names.len());
    for t in names {
        let (schema, name) = plan::split_name(&t.name)?;
        let path = session.search_path();
        let schema = catalog.resolve_schema(session.database(), schema.as_deref(), &path, &name);
        let table = catalog
            .table(
                session.database(),
                Some(schema.unwrap_or(DEFAULT_SCHEMA)),
                &name,
            )
            .ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                )
            })?;
        catalog.refuse_held(table, session.block_txn)?;
        if ids.iter().all(|(t, _): &(Arc<Table>, _)| t.id != table.id) {
            ids.push((table.clone(), crate::index::specs_for(&catalog, table)));
        }
    }
    // A table referenced by a foreign key goes only with the tables referencing it.
    let mut notices = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let parent = ids[i].0.clone();
        for (child, _) in crate::fkey::referencing(&catalog, session.database(), &parent) {
            if ids.iter().any(|(t, _)| t.id == child.id) {
                continue;
            }
            if !cascade {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_detail(format!(
                    "Table \"{}\" references \"{}\".",
                    child.name, parent.name
                ))
                .with_hint_text(format!(
                    "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                    child.name
                )));
            }
            catalog.refuse_held(&child, session.block_txn)?;
            notices.push(format!("truncate cascades to table \"{}\"", child.name));
            let indexes = crate::index::specs_for(&catalog, &child);
            ids.push((child, indexes));
        }
        i += 1;
    }
    if session.transaction != TransactionState::Idle {
        for (table, _) in &ids {
            crate::alter::truncate_in_block(session, cluster, table).await?;
            if restart_identity {
                renew_owned_sequences(session, cluster, table).await?;
            }
        }
        note_write(session);
        return Ok(truncated(notices));
    }
    for (table, indexes) in ids {
        let id = table.id;
        let futures = (0..cluster.shard_count()).map(|s| cluster.truncate(s, id));
        for r in futures_util::future::join_all(futures).await {
            r?;
        }
        // Index entries are keyed by index, not table: without this they would stay behind,
        // pointing at rows that are gone.
        for spec in indexes {
            crate::index::delete_index_data(cluster, id, spec.id).await?;
        }
        if restart_identity {
            restart_owned_sequences(session, cluster, &table).await?;
        }
    }
    note_write(session);
    Ok(truncated(notices))
}

fn truncated(notices: Vec<String>) -> StatementResult {
    StatementResult::Command {
        tag: "TRUNCATE TABLE".into(),
        changed_parameters: Vec::new(),
        notices,
    }
}

/// The sequences `table`'s columns own (serial and identity columns').
fn owned_sequences<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Table,
) -> Vec<crate::catalog::SequenceDef> {
    cluster
        .catalog()
        .database(session.database())
        .and_then(|d| d.schemas.get(&table.schema))
        .map(|s| {
            s.sequences
                .values()
                .filter(|q| q.owned_by.as_deref() == Some(table.name.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// RESTART IDENTITY in a transaction block: each owned sequence gets a fresh id (which starts
/// at its START), so the block's ROLLBACK, putting the old ids back, restores their values,
/// as PostgreSQL's does.
async fn renew_owned_sequences<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Table,
) -> Result<(), SqlError> {
    for sequence in owned_sequences(session, cluster, table) {
        let change = crate::catalog::DdlChange::RenewSequence {
            database: session.database().to_string(),
            schema: table.schema.clone(),
            name: sequence.name.clone(),
        };
        cluster.ddl(change).await?;
        // currval still answers the session's last value, as PostgreSQL's does.
        let renewed = cluster
            .catalog()
            .database(session.database())
            .and_then(|d| d.schemas.get(&table.schema))
            .and_then(|s| s.sequences.get(&sequence.name))
            .map(|q| q.id);
        if let (Some(id), Ok(mut values)) = (renewed, session.sequence_values().lock()) {
            if let Some(&last) = values.get(&sequence.id) {
                values.insert(id, last);
            }
        }
    }
    Ok(())
}

/// RESTART IDENTITY: the sequences `table`'s columns own (serial columns') start over, as
/// ALTER SEQUENCE ... RESTART makes them.
async fn restart_owned_sequences<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Table,
) -> Result<(), SqlError> {
    for sequence in owned_sequences(session, cluster, table) {
        let value = sequence.start;
        cluster
            .sequence(
                sequence,
                crate::cluster::SequenceOp::Set {
                    value,
                    is_called: false,
                },
            )
            .await?;
    }
    Ok(())
}

/// PostgreSQL's default name of a UNIQUE constraint on `columns`: `table_col1_col2_key`.
pub(crate) fn unique_key_name(table: &Table, columns: &[usize]) -> String {
    generated_name(table, columns, "key")
}

/// PostgreSQL's generated names for what covers `columns` of `table`:
/// `table_col1_col2_suffix` (`key`, `idx`, `fkey`).
pub(crate) fn generated_name(table: &Table, columns: &[usize], suffix: &str) -> String {
    let mut name = table.name.clone();
    for &c in columns {
        name.push('_');
        name.push_str(&table.columns[c].name);
    }
    name.push('_');
    name.push_str(suffix);
    name
}

/// What an INSERT's values for identity columns become: OVERRIDING USER VALUE replaces
/// them with the identity's next values; without OVERRIDING SYSTEM VALUE, a GENERATED ALWAYS
/// column takes none (428C9), as in PostgreSQL.
fn identity_values(
    table: &Table,
    targets: &[usize],
    overriding: Option<ast::InsertOverriding>,
    rows: &mut [Vec<Option<Datum>>],
) -> Result<(), SqlError> {
    for (at, &t) in targets.iter().enumerate() {
        let column = &table.columns[t];
        if !column.identity {
            continue;
        }
        match overriding {
            Some(ast::InsertOverriding::User) => rows.iter_mut().for_each(|row| row[at] = None),
            Some(ast::InsertOverriding::System) => {}
            None if column.identity_always && rows.iter().any(|row| row[at].is_some()) => {
                return Err(SqlError::new(
                    "428C9",
                    format!(
                        "cannot insert a non-DEFAULT value into column \"{}\"",
                        column.name
                    ),
                )
                .with_detail(format!(
                    "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
                    column.name
                ))
                .with_hint(&HINT_OVERRIDING_SYSTEM_VALUE));
            }
            None => {}
        }
    }
    Ok(())
}

const HINT_OVERRIDING_SYSTEM_VALUE: &str = "Use OVERRIDING SYSTEM VALUE to override.";

/// The sequence a serial or identity column of type `ty` in table `table` owns.
fn serial_sequence(name: String, ty: SqlType, table: &str) -> crate::catalog::SequenceDef {
    let max = match ty {
        SqlType::Int2 => i64::from(i16::MAX),
        SqlType::Int4 => i64::from(i32::MAX),
        _ => i64::MAX,
    };
    crate::catalog::SequenceDef {
        id: 0,
        name,
        increment: 1,
        min: 1,
        max,
        start: 1,
        cycle: false,
        owned_by: Some(table.to_string()),
        data_type: Some(ty),
        cache: 1,
    }
}

pub(crate) async fn run_create_table<C: Cluster>(
    session: &Session,
    cluster: &C,
    sql: &str,
    ct: &ast::CreateTable,
) -> Result<StatementResult, SqlError> {
    if ct.query.is_some() {
        return Err(not_supported("CREATE TABLE AS"));
    }
    if ct.temporary || ct.external || ct.like.is_some() || ct.clone.is_some() {
        return Err(not_supported("TEMPORARY, EXTERNAL, LIKE and CLONE tables"));
    }
    let (schema, name) = plan::split_name(&ct.name)?;
    let schema =
        cluster
            .catalog()
            .creation_schema(session.database(), schema, &session.search_path())?;
    if name.len() > crate::catalog::IDENTIFIER_BYTES_MAX {
        return Err(SqlError::new(
            INVALID_NAME,
            format!("identifier \"{name}\" is too long"),
        ));
    }
    if ct.columns.len() > COLUMNS_MAX {
        return Err(SqlError::new(
            "54011",
            format!("tables can have at most {COLUMNS_MAX} columns"),
        ));
    }
    let catalog = cluster.catalog();
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(ct.columns.len());
    let mut primary_key: Vec<usize> = Vec::new();
    let mut pkey_constraint: Option<String> = None;
    // UNIQUE constraints: (name, column positions).
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    let mut checks: Vec<CheckDef> = Vec::new();
    // FOREIGN KEY clauses: (the clause, its referencing column positions).
    let mut foreign_keys: Vec<(ast::ForeignKeyConstraint, Vec<usize>)> = Vec::new();
    let multiple_pk = || {
        SqlError::new(
            INVALID_TABLE_DEFINITION,
            format!("multiple primary keys for table \"{name}\" are not allowed"),
        )
    };
    let mut sequences = Vec::new();
    for (i, c) in ct.columns.iter().enumerate() {
        let cname = plan::ident(&c.name);
        if columns.iter().any(|x| x.name == cname) {
            return Err(SqlError::new(
                DUPLICATE_COLUMN,
                format!("column \"{cname}\" specified more than once"),
            ));
        }
        let serial = serial_type(&c.data_type);
        let (ty, typmod) = match serial {
            Some(ty) => (ty, TYPMOD_NONE),
            None => column_type(&c.data_type)?,
        };
        let mut def = ColumnDef {
            name: cname.clone(),
            ty,
            typmod,
            not_null: false,
            default: None,
            identity: false,
            identity_always: false,
        };
        if serial.is_some() {
            // serial = integer NOT NULL DEFAULT nextval('<table>_<column>_seq'), the sequence
            // created with the table and dropped with it.
            let seq_name = format!("{name}_{cname}_seq");
            def.not_null = true;
            def.default = Some(serial_default(&seq_name));
            sequences.push(serial_sequence(seq_name, ty, &name));
        }
        let default_and_identity = || {
            SqlError::new(
                SYNTAX_ERROR,
                format!("both default and identity specified for column \"{cname}\" of table \"{name}\""),
            )
        };
        for opt in &c.options {
            match &opt.option {
                ast::ColumnOption::Generated {
                    generated_as:
                        generated_as @ (ast::GeneratedAs::ByDefault | ast::GeneratedAs::Always),
                    sequence_options,
                    generation_expr: None,
                    ..
                } => {
                    if serial.is_some() || def.default.is_some() || def.identity {
                        return Err(default_and_identity());
                    }
                    if !matches!(ty, SqlType::Int2 | SqlType::Int4 | SqlType::Int8) {
                        return Err(SqlError::new(
                            "22023",
                            "identity column type must be smallint, integer, or bigint",
                        ));
                    }
                    // A serial column's sequence, default and NOT NULL, shown as an identity;
                    // its options (START WITH, INCREMENT BY, ...) as CREATE SEQUENCE's.
                    let seq_name = format!("{name}_{cname}_seq");
                    let options = sequence_options.as_deref().unwrap_or_default();
                    if options
                        .iter()
                        .any(|o| matches!(o, ast::SequenceOptions::DataType(_)))
                    {
                        return Err(not_supported("AS type in an identity's sequence options"));
                    }
                    let mut sequence = sequence_with_options(seq_name.clone(), ty, options)?;
                    sequence.owned_by = Some(name.clone());
                    def.not_null = true;
                    def.default = Some(serial_default(&seq_name));
                    def.identity = true;
                    def.identity_always = *generated_as == ast::GeneratedAs::Always;
                    sequences.push(sequence);
                }
                ast::ColumnOption::Generated { .. } => {
                    return Err(not_supported(format!("column option {}", opt.option)));
                }
                ast::ColumnOption::Null => def.not_null = false,
                ast::ColumnOption::NotNull => def.not_null = true,
                ast::ColumnOption::Default(_) if def.identity => {
                    return Err(default_and_identity());
                }
                ast::ColumnOption::Default(_) if serial.is_some() => {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        format!("multiple default values specified for column \"{cname}\" of table \"{name}\""),
                    ));
                }
                ast::ColumnOption::Default(e) => {
                    validate_default(session, sql, &catalog, e, &def)?;
                    def.default = Some(e.to_string());
                }
                ast::ColumnOption::PrimaryKey(pk) => {
                    if !primary_key.is_empty() {
                        return Err(multiple_pk());
                    }
                    pkey_constraint = opt.name.as_ref().or(pk.name.as_ref()).map(plan::ident);
                    primary_key.push(i);
                    def.not_null = true;
                }
                ast::ColumnOption::Unique(u) => {
                    uniques.push((u.name.as_ref().map(plan::ident), vec![i]));
                }
                ast::ColumnOption::ForeignKey(fk) => {
                    let mut fk = fk.clone();
                    fk.name = fk.name.or_else(|| opt.name.clone());
                    foreign_keys.push((fk, vec![i]));
                }
                ast::ColumnOption::Check(chk) => {
                    // Unnamed ones (empty) are named once the table's columns are known.
                    checks.push(CheckDef {
                        name: opt.name.as_ref().map(plan::ident).unwrap_or_default(),
                        expr: chk.expr.to_string(),
                        not_valid: false,
                    });
                }
                other => {
                    return Err(not_supported(format!("column option {other}")));
                }
            }
        }
        columns.push(def);
    }
    for c in &ct.constraints {
        match c {
            ast::TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(multiple_pk());
                }
                pkey_constraint = pk.name.as_ref().map(plan::ident);
                primary_key = primary_key_positions(pk, &columns)?;
                for &i in &primary_key {
                    columns[i].not_null = true;
                }
            }
            ast::TableConstraint::Check(chk) => {
                checks.push(CheckDef {
                    name: chk.name.as_ref().map(plan::ident).unwrap_or_default(),
                    expr: chk.expr.to_string(),
                    not_valid: false,
                });
            }
            ast::TableConstraint::Unique(u) => {
                let names: Vec<&ast::IndexColumn> = u.columns.iter().collect();
                uniques.push((
                    u.name.as_ref().map(plan::ident),
                    index_column_positions(&names, &columns, "unique constraint")?,
                ));
            }
            ast::TableConstraint::ForeignKey(fk) => {
                let positions = foreign_key_columns(&fk.columns, &columns)?;
                foreign_keys.push((fk.clone(), positions));
            }
            other => return Err(not_supported(format!("table constraint {other}"))),
        }
    }
    let mut table = Table {
        id: 0,
        name: name.clone(),
        schema,
        columns,
        primary_key,
        pkey_constraint,
        checks,
        foreign_keys: Vec::new(),
        stats: None,
    };
    let mut own_unique = vec![table.primary_key.clone()];
    own_unique.extend(uniques.iter().map(|(_, c)| c.clone()));
    for (fk, positions) in foreign_keys {
        let def = {
            let taken = |n: &str| table.foreign_keys.iter().any(|f| f.name == n);
            crate::fkey::define(
                session,
                &catalog,
                &table,
                &own_unique,
                &fk,
                positions,
                &taken,
            )?
        };
        table.foreign_keys.push(def);
    }
    // CHECK expressions must bind over the table's columns and be boolean.
    for i in 0..table.checks.len() {
        let b = bind_table_expr(session, &catalog, &table, &table.checks[i].expr)?;
        if b.ty != SqlType::Bool {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "argument of CHECK must be type boolean, not type {}",
                    b.ty.sql_name()
                ),
            ));
        }
        if table.checks[i].name.is_empty() {
            let name = check_name(&table, &b, &|n| table.checks.iter().any(|c| c.name == n));
            table.checks[i].name = name;
        }
    }
    let unique_indexes: Vec<crate::catalog::IndexDef> = uniques
        .into_iter()
        .map(|(constraint, positions)| crate::catalog::IndexDef {
            id: 0,
            name: constraint.unwrap_or_else(|| unique_key_name(&table, &positions)),
            table: name.clone(),
            columns: positions,
            unique: true,
            constraint: true,
            predicate: None,
            include: Vec::new(),
        })
        .collect();
    let table_schema = table.schema.clone();
    let outcome = cluster
        .ddl(DdlChange::CreateTable {
            database: session.database().to_string(),
            table,
            if_not_exists: ct.if_not_exists,
            sequences,
        })
        .await?;
    if outcome.notices.is_empty() {
        // UNIQUE constraints are unique indexes (the table is empty: nothing to claim yet).
        for index in unique_indexes {
            cluster
                .ddl(DdlChange::CreateIndex {
                    database: session.database().to_string(),
                    schema: table_schema.clone(),
                    index,
                    if_not_exists: false,
                })
                .await?;
        }
    }
    Ok(StatementResult::Command {
        tag: "CREATE TABLE".to_string(),
        changed_parameters: Vec::new(),
        notices: outcome.notices,
    })
}

/// PostgreSQL's name for an unnamed CHECK of `table` whose bound expression is `check`:
/// `table_column_check` when it reads exactly one column, else `table_check`; numbered
/// (`table_check1`, ...) when `taken`.
pub(crate) fn check_name(table: &Table, check: &Bound, taken: &dyn Fn(&str) -> bool) -> String {
    let mut read = Vec::new();
    check.columns_read(&mut read);
    read.sort_unstable();
    read.dedup();
    let stem = match read.as_slice() {
        [c] => format!("{}_{}_check", table.name, table.columns[*c].name),
        _ => format!("{}_check", table.name),
    };
    std::iter::once(stem.clone())
        .chain((1..).map(|n| format!("{stem}{n}")))
        .find(|n| !taken(n))
        .expect("an unbounded sequence of names has a free one")
}

/// The positions of a FOREIGN KEY clause's referencing columns.
pub(crate) fn foreign_key_columns(
    names: &[ast::Ident],
    columns: &[ColumnDef],
) -> Result<Vec<usize>, SqlError> {
    let mut positions = Vec::with_capacity(names.len());
    for n in names {
        let n = plan::ident(n);
        let i = columns.iter().position(|c| c.name == n).ok_or_else(|| {
            SqlError::new(
                UNDEFINED_COLUMN,
                format!("column \"{n}\" referenced in foreign key constraint does not exist"),
            )
        })?;
        positions.push(i);
    }
    Ok(positions)
}

/// A column's declared type (and typmod), refusing the types a table cannot store.
pub(crate) fn column_type(data_type: &ast::DataType) -> Result<(SqlType, i32), SqlError> {
    let (ty, typmod) = expr::resolve_type(data_type)?;
    if ty == SqlType::Unknown || ty == SqlType::RegType {
        return Err(not_supported(format!("columns of type {}", ty.sql_name())));
    }
    Ok((ty, typmod))
}

/// The column positions an index's or UNIQUE constraint's column list names, in its order.
pub(crate) fn index_column_positions(
    list: &[&ast::IndexColumn],
    columns: &[ColumnDef],
    what: &str,
) -> Result<Vec<usize>, SqlError> {
    let mut positions = Vec::with_capacity(list.len());
    for col in list {
        let n = match &col.column.expr {
            ast::Expr::Identifier(id) => plan::ident(id),
            other => return Err(not_supported(format!("{what} expression {other}"))),
        };
        let i = columns.iter().position(|c| c.name == n).ok_or_else(|| {
            SqlError::new(
                UNDEFINED_COLUMN,
                format!("column \"{n}\" named in key does not exist"),
            )
        })?;
        if positions.contains(&i) {
            return Err(SqlError::new(
                DUPLICATE_COLUMN,
                format!("column \"{n}\" appears twice in {what}"),
            ));
        }
        positions.push(i);
    }
    Ok(positions)
}

/// The column positions a PRIMARY KEY (...) constraint names, in its order.
pub(crate) fn primary_key_positions(
    pk: &ast::PrimaryKeyConstraint,
    columns: &[ColumnDef],
) -> Result<Vec<usize>, SqlError> {
    let list: Vec<&ast::IndexColumn> = pk.columns.iter().collect();
    index_column_positions(&list, columns, "primary key constraint")
}

fn validate_default(
    session: &Session,
    sql: &str,
    catalog: &crate::catalog::Catalog,
    e: &ast::Expr,
    column: &ColumnDef,
) -> Result<(), SqlError> {
    let positions = Positions::new(sql);
    let params = RefCell::new(Vec::new());
    let planner = Planner::new(session, sql, &positions, catalog, &params);
    let b = Binder::with_scope(&planner.binder(None), None)
        .bind(e)
        .map_err(|err| {
            if err.sqlstate == UNDEFINED_COLUMN {
                SqlError::new("0A000", "cannot use column reference in DEFAULT expression")
            } else {
                err
            }
        })?;
    if matches!(b.kind, Kind::Subquery(_)) {
        return Err(not_supported("subqueries in DEFAULT expressions"));
    }
    let ok = b.ty == column.ty
        || b.ty == SqlType::Unknown
        || (b.ty.numeric_rank().is_some() && column.ty.numeric_rank().is_some())
        || column.ty.is_string();
    if !ok {
        return Err(SqlError::new(
            DATATYPE_MISMATCH,
            format!(
                "column \"{}\" is of type {} but default expression is of type {}",
                column.name,
                column.ty.sql_name(),
                b.ty.sql_name()
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn run_drop<C: Cluster>(
    session: &Session,
    cluster: &C,
    object_type: ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
    cascade: bool,
) -> Result<StatementResult, SqlError> {
    let database = session.database().to_string();
    let mut notices = Vec::new();
    let (change, tag) = match object_type {
        ast::ObjectType::Table => {
            let mut tables = Vec::with_capacity(names.len());
            for n in names {
                let (schema, name) = plan::split_name(n)?;
                tables.push((resolve_for_drop(session, cluster, schema, &name), name));
            }
            notices.extend(foreign_keys_dropped_with(
                session, cluster, &tables, cascade,
            )?);
            (
                DdlChange::DropTables {
                    database,
                    tables,
                    if_exists,
                },
                "DROP TABLE",
            )
        }
        ast::ObjectType::Schema => {
            let mut schemas = Vec::with_capacity(names.len());
            for n in names {
                schemas.push(plan::split_name(n)?.1);
            }
            (
                DdlChange::DropSchema {
                    database,
                    names: schemas,
                    if_exists,
                    cascade,
                },
                "DROP SCHEMA",
            )
        }
        ast::ObjectType::Database => {
            let [n] = names else {
                return Err(SqlError::new(SYNTAX_ERROR, "DROP DATABASE takes one name"));
            };
            let name = plan::split_name(n)?.1;
            if name == session.database() {
                return Err(SqlError::new(
                    OBJECT_IN_USE,
                    "cannot drop the currently open database",
                ));
            }
            (DdlChange::DropDatabase { name, if_exists }, "DROP DATABASE")
        }
        ast::ObjectType::Index | ast::ObjectType::View | ast::ObjectType::Sequence => {
            let (kind, tag) = match object_type {
                ast::ObjectType::Index => (crate::catalog::RelationKind::Index, "DROP INDEX"),
                ast::ObjectType::View => (crate::catalog::RelationKind::View, "DROP VIEW"),
                _ => (crate::catalog::RelationKind::Sequence, "DROP SEQUENCE"),
            };
            let mut relations = Vec::with_capacity(names.len());
            for n in names {
                let (schema, name) = plan::split_name(n)?;
                let schema = resolve_for_drop(session, cluster, schema, &name);
                if kind == crate::catalog::RelationKind::Index {
                    notices.extend(refuse_dropping_a_constraint_index(
                        session, cluster, &schema, &name, cascade,
                    )?);
                }
                relations.push((schema, name));
            }
            (
                DdlChange::DropRelations {
                    database,
                    kind,
                    names: relations,
                    if_exists,
                },
                tag,
            )
        }
        other => return Err(not_supported(format!("DROP {other}"))),
    };
    let outcome = cluster.ddl(change).await?;
    notices.extend(outcome.notices);
    Ok(StatementResult::Command {
        tag: tag.to_string(),
        changed_parameters: Vec::new(),
        notices,
    })
}

/// DROP TABLE of tables (schema, name) that other tables' foreign keys reference: refused
/// (2BP01) without CASCADE; with it, those constraints go too (the catalog drops them with
/// the table), and the notices say so.
fn foreign_keys_dropped_with<C: Cluster>(
    session: &Session,
    cluster: &C,
    tables: &[(String, String)],
    cascade: bool,
) -> Result<Vec<String>, SqlError> {
    let catalog = cluster.catalog();
    let Some(db) = catalog.database(session.database()) else {
        return Ok(Vec::new());
    };
    let mut notices = Vec::new();
    for (schema, name) in tables {
        let mut dependents = Vec::new();
        for (child, fk) in db.foreign_keys_to(schema, name) {
            let dropped_too = tables
                .iter()
                .any(|(s, n)| *s == child.schema && *n == child.name);
            if !dropped_too {
                dependents.push(format!("constraint {} on table {}", fk.name, child.name));
            }
        }
        if dependents.is_empty() {
            continue;
        }
        if !cascade {
            let detail: Vec<String> = dependents
                .iter()
                .map(|d| format!("{d} depends on table {name}"))
                .collect();
            return Err(SqlError::new(
                DEPENDENT_OBJECTS_STILL_EXIST,
                format!("cannot drop table {name} because other objects depend on it"),
            )
            .with_detail(detail.join("\n"))
            .with_hint(&HINT_DROP_CASCADE));
        }
        notices.extend(dependents.iter().map(|d| format!("drop cascades to {d}")));
    }
    Ok(notices)
}

/// ALTER INDEX name RENAME TO new_name (a UNIQUE constraint's or primary key's index: the
/// constraint is renamed with it, as in PostgreSQL).
pub(crate) async fn run_alter_index<C: Cluster>(
    session: &Session,
    cluster: &C,
    name: &ast::ObjectName,
    operation: &ast::AlterIndexOperation,
) -> Result<StatementResult, SqlError> {
    let ast::AlterIndexOperation::RenameIndex { index_name } = operation;
    let (schema, old_name) = plan::split_name(name)?;
    let (_, new_name) = plan::split_name(index_name)?;
    let schema = resolve_index_schema(session, cluster, schema, &old_name);
    cluster
        .ddl(DdlChange::RenameIndex {
            database: session.database().to_string(),
            schema,
            old_name,
            new_name,
        })
        .await?;
    Ok(command("ALTER INDEX"))
}

/// The schema an index name means: its own when qualified, else the first on the search
/// path holding an index (or primary key) of that name, else the first on the path.
fn resolve_index_schema<C: Cluster>(
    session: &Session,
    cluster: &C,
    schema: Option<String>,
    name: &str,
) -> String {
    if let Some(s) = schema {
        return s;
    }
    let catalog = cluster.catalog();
    let path = session.search_path();
    let db = catalog.database(session.database());
    path.iter()
        .find(|s| {
            db.and_then(|d| d.schemas.get(*s)).is_some_and(|sc| {
                sc.indexes.contains_key(name)
                    || sc
                        .tables
                        .values()
                        .any(|t| !t.primary_key.is_empty() && t.pkey_name() == name)
            })
        })
        .or_else(|| {
            path.iter()
                .find(|s| db.is_some_and(|d| d.schemas.contains_key(*s)))
        })
        .cloned()
        .unwrap_or_else(|| DEFAULT_SCHEMA.to_string())
}

pub(crate) async fn run_ddl<C: Cluster>(
    cluster: &C,
    change: DdlChange,
    tag: &str,
) -> Result<StatementResult, SqlError> {
    let outcome = cluster.ddl(change).await?;
    Ok(StatementResult::Command {
        tag: tag.to_string(),
        changed_parameters: Vec::new(),
        notices: outcome.notices,
    })
}

/// BEGIN / COMMIT / ROLLBACK / SAVEPOINT / ROLLBACK TO / RELEASE (see [`crate::txn`]).
pub(crate) async fn run_transaction_control<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    statement: &ast::Statement,
) -> Result<StatementResult, SqlError> {
    use ast::Statement as S;
    let mut notices = Vec::new();
    // Settings the block's end or ROLLBACK TO put back (reported to the client).
    let mut changed_parameters = Vec::new();
    let tag = match statement {
        S::StartTransaction { modes, begin, .. } => {
            if session.transaction != TransactionState::Idle {
                notices.push("WARNING: there is already a transaction in progress".to_string());
            } else {
                let (isolation, read_only) = transaction_modes(session, modes)?;
                session.block_txn = Some(crate::txn::begin(cluster, isolation, false));
                session.transaction = TransactionState::InBlock;
                session.isolation = Some(isolation);
                session.read_only = read_only;
                session.block_start = Some(crate::datetime::now_micros());
                session.settings_begin();
            }
            if *begin {
                "BEGIN"
            } else {
                "START TRANSACTION"
            }
        }
        S::Commit { chain: false, .. } => {
            let state = session.transaction;
            crate::cursor::end_of_block(session, state != TransactionState::InBlock);
            if state == TransactionState::InBlock {
                // Deferred foreign keys are checked now; a violation rolls the block back.
                if let Err(e) = crate::fkey::check_deferred(cluster, session).await {
                    crate::cursor::end_of_block(session, true);
                    end_block(session);
                    let restored = session.settings_end(false);
                    session.report_later(restored);
                    crate::txn::abort(cluster).await?;
                    return Err(e);
                }
            }
            end_block(session);
            match state {
                TransactionState::Idle => {
                    notices.push("WARNING: there is no transaction in progress".to_string());
                    "COMMIT"
                }
                TransactionState::InBlock => {
                    let committed = crate::txn::commit(cluster).await;
                    changed_parameters = session.settings_end(committed.is_ok());
                    if committed.is_err() {
                        session.report_later(std::mem::take(&mut changed_parameters));
                    }
                    committed?;
                    "COMMIT"
                }
                TransactionState::Failed => {
                    changed_parameters = session.settings_end(false);
                    crate::txn::abort(cluster).await?;
                    "ROLLBACK"
                }
            }
        }
        S::Rollback {
            chain: false,
            savepoint: None,
        } => {
            if session.transaction == TransactionState::Idle {
                notices.push("WARNING: there is no transaction in progress".to_string())
            }
            crate::cursor::end_of_block(session, true);
            end_block(session);
            changed_parameters = session.settings_end(false);
            crate::txn::abort(cluster).await?;
            "ROLLBACK"
        }
        S::Rollback {
            chain: false,
            savepoint: Some(name),
        } => {
            require_block(session, "ROLLBACK TO SAVEPOINT")?;
            crate::txn::rollback_to(cluster, &name.value).await?;
            session.transaction = TransactionState::InBlock;
            changed_parameters = session.settings_rollback_to(&name.value);
            "ROLLBACK"
        }
        S::Savepoint { name } => {
            require_block(session, "SAVEPOINT")?;
            crate::txn::savepoint(cluster, &name.value);
            session.settings_savepoint(&name.value);
            "SAVEPOINT"
        }
        S::ReleaseSavepoint { name } => {
            require_block(session, "RELEASE SAVEPOINT")?;
            crate::txn::release(cluster, &name.value)?;
            session.settings_release(&name.value);
            "RELEASE"
        }
        _ => return Err(not_supported("chained transactions (AND CHAIN)")),
    };
    Ok(StatementResult::Command {
        tag: tag.to_string(),
        changed_parameters,
        notices,
    })
}

fn end_block(session: &mut Session) {
    session.transaction = TransactionState::Idle;
    session.isolation = None;
    session.read_only = false;
    session.block_start = None;
    session.block_txn = None;
}

/// SAVEPOINT and friends outside a block (PostgreSQL: 25P01); in a failed block only
/// ROLLBACK TO is allowed, which `execute` lets through.
fn require_block(session: &Session, what: &str) -> Result<(), SqlError> {
    if session.transaction == TransactionState::Idle {
        return Err(SqlError::new(
            "25P01",
            format!("{what} can only be used in transaction blocks"),
        ));
    }
    Ok(())
}

/// A BEGIN's or SET TRANSACTION's isolation level and access mode (defaults for those
/// absent).
fn transaction_modes(
    session: &Session,
    modes: &[ast::TransactionMode],
) -> Result<(crate::txn::Isolation, bool), SqlError> {
    let mut isolation = session.default_isolation()?;
    let mut read_only = session
        .parameter("default_transaction_read_only")
        .is_some_and(|v| crate::session::parse_bool(v) == Some(true));
    for mode in modes {
        match mode {
            ast::TransactionMode::IsolationLevel(level) => {
                isolation = match level {
                    ast::TransactionIsolationLevel::ReadUncommitted
                    | ast::TransactionIsolationLevel::ReadCommitted => {
                        crate::txn::Isolation::ReadCommitted
                    }
                    ast::TransactionIsolationLevel::RepeatableRead => {
                        crate::txn::Isolation::RepeatableRead
                    }
                    ast::TransactionIsolationLevel::Serializable => {
                        return Err(crate::txn::serializable_refused())
                    }
                    ast::TransactionIsolationLevel::Snapshot => {
                        return Err(not_supported("ISOLATION LEVEL SNAPSHOT"))
                    }
                }
            }
            ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly) => {
                read_only = true
            }
            ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadWrite) => {
                read_only = false
            }
        }
    }
    Ok((isolation, read_only))
}

/// SET TRANSACTION ... (this block) and SET SESSION CHARACTERISTICS AS TRANSACTION ... (the
/// defaults of later ones).
pub(crate) fn run_set_transaction<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    modes: &[ast::TransactionMode],
    characteristics: bool,
) -> Result<StatementResult, SqlError> {
    let (isolation, read_only) = transaction_modes(session, modes)?;
    let mut notices = Vec::new();
    let mut changed_parameters = Vec::new();
    if characteristics {
        changed_parameters
            .extend(session.set_parameter("default_transaction_isolation", isolation.name())?);
        changed_parameters.extend(session.set_parameter(
            "default_transaction_read_only",
            if read_only { "on" } else { "off" },
        )?);
    } else if session.transaction == TransactionState::Idle {
        notices.push("WARNING: SET TRANSACTION can only be used in transaction blocks".to_string());
    } else {
        if modes
            .iter()
            .any(|m| matches!(m, ast::TransactionMode::IsolationLevel(_)))
        {
            crate::txn::set_isolation(cluster, isolation)?;
            session.isolation = Some(isolation);
        }
        if modes
            .iter()
            .any(|m| matches!(m, ast::TransactionMode::AccessMode(_)))
        {
            session.read_only = read_only;
        }
    }
    Ok(StatementResult::Command {
        tag: "SET".to_string(),
        changed_parameters,
        notices,
    })
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported yet"),
    )
}

/// CREATE INDEX: recorded in the catalog (see [`crate::catalog::IndexDef`]). UNIQUE indexes
/// would have to be enforced across shards and are refused until they are.
pub(crate) async fn run_create_index<C: Cluster>(
    session: &Session,
    cluster: &C,
    ci: &ast::CreateIndex,
) -> Result<StatementResult, SqlError> {
    // CONCURRENTLY: every build lets writes go on (rows written once the index is in the
    // catalog maintain their own entries), so it is the plain build; like PostgreSQL's, it
    // cannot run in a transaction block.
    if ci.concurrently && session.transaction != TransactionState::Idle {
        return Err(SqlError::new(
            "25001",
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
        ));
    }
    let (schema, table_name) = plan::split_name(&ci.table_name)?;
    let catalog = cluster.catalog();
    let path = session.search_path();
    let schema = catalog.resolve_schema(session.database(), schema.as_deref(), &path, &table_name);
    let table = catalog
        .table(
            session.database(),
            Some(schema.unwrap_or(DEFAULT_SCHEMA)),
            &table_name,
        )
        .cloned()
        .ok_or_else(|| {
            SqlError::new(
                UNDEFINED_TABLE,
                format!("relation \"{table_name}\" does not exist"),
            )
        })?;
    let mut columns = Vec::with_capacity(ci.columns.len());
    for c in &ci.columns {
        let ast::Expr::Identifier(id) = &c.column.expr else {
            return Err(not_supported("indexes on expressions"));
        };
        let name = plan::ident(id);
        let position = table.column_index(&name).ok_or_else(|| {
            SqlError::new(
                UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            )
        })?;
        columns.push(position);
    }
    let name = match &ci.name {
        Some(n) => plan::split_name(n)?.1,
        None => default_index_name(&table, &columns),
    };
    // A partial index's WHERE is kept as text (as sqlparser prints it) and bound wherever
    // the index is maintained; it must bind now.
    let predicate = ci.predicate.as_ref().map(ToString::to_string);
    if let Some(text) = &predicate {
        // Positions would be within the WHERE's text, not the statement's.
        crate::index::bind_predicate(&catalog, session.database(), &table, text)
            .map_err(|e| e.at(None))?;
    }
    // INCLUDE columns are recorded (the catalogs show them) but carried by no entry: they
    // serve index-only scans, which helios does not make.
    let mut include = Vec::with_capacity(ci.include.len());
    for column in &ci.include {
        let name = plan::ident(column);
        if table.column_index(&name).is_none() {
            return Err(SqlError::new(
                UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            ));
        }
        include.push(name);
    }
    let index = crate::catalog::IndexDef {
        id: 0,
        name,
        table: table.name.clone(),
        columns,
        unique: ci.unique,
        constraint: false,
        predicate,
        include,
    };
    let notices = create_index_over_rows(session, cluster, &table, index, ci.if_not_exists).await?;
    Ok(StatementResult::Command {
        tag: "CREATE INDEX".to_string(),
        changed_parameters: Vec::new(),
        notices,
    })
}

/// Adds `index` to the catalog and writes its entries (and a unique index's claims) for the
/// rows `table` already has; a duplicate among them fails it (23505), and the index goes
/// again. Returns the catalog change's notices (an existing name with `if_not_exists`).
pub(crate) async fn create_index_over_rows<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Arc<Table>,
    index: crate::catalog::IndexDef,
    if_not_exists: bool,
) -> Result<Vec<String>, SqlError> {
    let index_name = index.name.clone();
    let change = DdlChange::CreateIndex {
        database: session.database().to_string(),
        schema: table.schema.clone(),
        index,
        if_not_exists,
    };
    let outcome = cluster.ddl(change).await?;
    if outcome.notices.is_empty() {
        if let Err(e) = backfill_index(session, cluster, table, &index_name).await {
            // Not created after all: the index goes, and the claims its build took.
            let drop = DdlChange::DropRelations {
                database: session.database().to_string(),
                kind: crate::catalog::RelationKind::Index,
                names: vec![(table.schema.clone(), index_name.clone())],
                if_exists: true,
            };
            cluster.ddl(drop).await?;
            return Err(e);
        }
    }
    Ok(outcome.notices)
}

/// Writes the entries of a new index for the rows the table has. Rows written from now on
/// maintain their own entries (every shard has the new catalog once CREATE INDEX's catalog
/// change is acknowledged), so the scan that follows the change sees every older row.
async fn backfill_index<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Arc<Table>,
    index_name: &str,
) -> Result<(), SqlError> {
    let catalog = cluster.catalog();
    let Some(def) = catalog
        .database(session.database())
        .and_then(|d| d.schemas.get(&table.schema))
        .and_then(|s| s.indexes.get(index_name))
    else {
        return Ok(());
    };
    let Some(spec) = crate::index::specs_for(&catalog, table)
        .into_iter()
        .find(|s| s.id == def.id)
    else {
        return Ok(());
    };
    let env = Env::of(session);
    let scanned =
        crate::dist::fetch(cluster, &Fetch::new(table.clone(), None), &[], &env, true).await?;
    let mut ops = Vec::with_capacity(BACKFILL_BATCH_ROWS);
    let mut claims = Vec::new();
    for (row, key) in scanned.rows.iter().zip(&scanned.keys) {
        let Some(entry) = crate::index::entry_key(&spec, row, key)? else {
            continue; // a partial index's WHERE is not true of the row
        };
        ops.push((
            shard_of_key(cluster, key),
            RowOp::Put {
                key: entry,
                value: Bytes::new(),
            },
        ));
        if spec.unique {
            if let Some(claim) = crate::index::claim_key(&spec, row)? {
                claims.push(crate::index::Claim {
                    index_id: spec.id,
                    old: None,
                    new: Some(claim),
                    row_key: key.clone(),
                });
            }
        }
        if ops.len() >= BACKFILL_BATCH_ROWS {
            write_rows(cluster, table, std::mem::take(&mut ops)).await?;
            claim_for_new_index(cluster, table, &spec, std::mem::take(&mut claims)).await?;
        }
    }
    write_rows(cluster, table, ops).await?;
    claim_for_new_index(cluster, table, &spec, claims).await?;
    Ok(())
}

/// A new unique index's claims for existing rows; a duplicate fails as PostgreSQL's CREATE
/// UNIQUE INDEX does, and every claim of the index is deleted again.
async fn claim_for_new_index<C: Cluster>(
    cluster: &C,
    table: &Table,
    spec: &crate::index::IndexSpec,
    claims: Vec<crate::index::Claim>,
) -> Result<(), SqlError> {
    let Err(e) = settle_claims(cluster, std::slice::from_ref(spec), claims).await else {
        return Ok(());
    };
    let prefix = crate::index::claim_index_prefix(table.id, spec.id);
    for shard in 0..cluster.shard_count() {
        cluster
            .txn_call(
                shard,
                crate::txn::TxnMsg::DeletePrefix {
                    prefix: prefix.clone(),
                },
            )
            .await?;
    }
    if e.sqlstate == UNIQUE_VIOLATION {
        let detail = e.conflict_key().and_then(|key| {
            crate::index::describe_conflict(&cluster.catalog(), key, &Default::default())
        });
        let mut e = SqlError::new(
            UNIQUE_VIOLATION,
            format!("could not create unique index \"{}\"", spec.name),
        );
        e.detail = detail.map(|key| format!("{key} is duplicated."));
        return Err(e);
    }
    Err(e)
}

/// Index entries written per round of a backfill.
const BACKFILL_BATCH_ROWS: usize = 4096;

/// PostgreSQL's generated name: `table_col1_col2_idx`.
fn default_index_name(table: &Table, columns: &[usize]) -> String {
    generated_name(table, columns, "idx")
}

/// CREATE [OR REPLACE] VIEW: the query is planned now (so a bad one fails here, and the
/// column count is checked), stored as text, and planned again wherever the view is used.
pub(crate) async fn run_create_view<C: Cluster>(
    session: &Session,
    cluster: &C,
    sql: &str,
    cv: &ast::CreateView,
) -> Result<StatementResult, SqlError> {
    if cv.materialized || cv.temporary || cv.or_alter {
        return Err(not_supported("materialized and temporary views"));
    }
    let (schema, name) = plan::split_name(&cv.name)?;
    let catalog = cluster.catalog();
    let no_params = RefCell::new(Vec::new());
    let described = describe_query(session, &catalog, sql, &cv.query, &no_params)?;
    if !no_params.borrow().is_empty() {
        return Err(SqlError::new(
            UNDEFINED_PARAMETER,
            "there is no parameter $1",
        ));
    }
    let columns: Vec<String> = cv.columns.iter().map(|c| plan::ident(&c.name)).collect();
    if columns.len() > described.len() {
        return Err(SqlError::new(
            SYNTAX_ERROR,
            "CREATE VIEW specifies more column names than columns",
        ));
    }
    let change = DdlChange::CreateView {
        database: session.database().to_string(),
        schema: cluster.catalog().creation_schema(
            session.database(),
            schema,
            &session.search_path(),
        )?,
        view: crate::catalog::ViewDef {
            id: 0,
            name,
            query: cv.query.to_string(),
            columns,
        },
        or_replace: cv.or_replace,
    };
    cluster.ddl(change).await?;
    Ok(command("CREATE VIEW"))
}

/// The integer type a serial pseudo-type stands for, if `t` is one.
fn serial_type(t: &ast::DataType) -> Option<SqlType> {
    match t.to_string().to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => Some(SqlType::Int2),
        "serial" | "serial4" => Some(SqlType::Int4),
        "bigserial" | "serial8" => Some(SqlType::Int8),
        _ => None,
    }
}

/// CREATE SEQUENCE with PostgreSQL's options and defaults (ascending: 1 .. 2^63-1 from 1;
/// descending: -2^63 .. -1 from -1). CACHE is accepted and has no effect: values come from
/// shard 0, logged ahead.
pub(crate) async fn run_create_sequence<C: Cluster>(
    session: &Session,
    cluster: &C,
    name: &ast::ObjectName,
    if_not_exists: bool,
    temporary: bool,
    options: &[ast::SequenceOptions],
) -> Result<StatementResult, SqlError> {
    if temporary {
        return Err(not_supported("temporary sequences"));
    }
    let (schema, name) = plan::split_name(name)?;
    let sequence = sequence_with_options(name, SqlType::Int8, options)?;
    let outcome = cluster
        .ddl(DdlChange::CreateSequence {
            database: session.database().to_string(),
            schema: cluster.catalog().creation_schema(
                session.database(),
                schema,
                &session.search_path(),
            )?,
            sequence,
            if_not_exists,
        })
        .await?;
    Ok(StatementResult::Command {
        tag: "CREATE SEQUENCE".to_string(),
        changed_parameters: Vec::new(),
        notices: outcome.notices,
    })
}

/// A sequence named `name` of `data_type` (unless an `AS type` option says otherwise) with
/// CREATE SEQUENCE's options and PostgreSQL's defaults and checks (ascending: 1 .. the
/// type's maximum from 1; descending: the type's minimum .. -1 from -1).
fn sequence_with_options(
    name: String,
    data_type: SqlType,
    options: &[ast::SequenceOptions],
) -> Result<crate::catalog::SequenceDef, SqlError> {
    let int = |e: &ast::Expr| -> Result<i64, SqlError> {
        let text = e.to_string();
        text.replace(' ', "")
            .parse::<i64>()
            .map_err(|_| SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{text}\"")))
    };
    let (mut increment, mut min, mut max, mut start, mut cycle) = (1i64, None, None, None, false);
    let mut data_type = data_type;
    let mut type_max = match data_type {
        SqlType::Int2 => i64::from(i16::MAX),
        SqlType::Int4 => i64::from(i32::MAX),
        _ => i64::MAX,
    };
    let mut cache = 1;
    for o in options {
        match o {
            ast::SequenceOptions::DataType(t) => {
                data_type = expr::resolve_type(t)?.0;
                type_max = match data_type {
                    SqlType::Int2 => i64::from(i16::MAX),
                    SqlType::Int4 => i64::from(i32::MAX),
                    SqlType::Int8 => i64::MAX,
                    _ => {
                        return Err(SqlError::new(
                            INVALID_PARAMETER_VALUE,
                            "sequence type must be smallint, integer, or bigint",
                        ))
                    }
                }
            }
            ast::SequenceOptions::IncrementBy(e, _) => increment = int(e)?,
            ast::SequenceOptions::MinValue(e) => min = e.as_ref().map(int).transpose()?,
            ast::SequenceOptions::MaxValue(e) => max = e.as_ref().map(int).transpose()?,
            ast::SequenceOptions::StartWith(e, _) => start = Some(int(e)?),
            ast::SequenceOptions::Cache(e) => {
                cache = int(e)?;
                if cache < 1 {
                    return Err(SqlError::new(
                        INVALID_PARAMETER_VALUE,
                        format!("CACHE ({cache}) must be greater than zero"),
                    ));
                }
            }
            ast::SequenceOptions::Cycle(no) => cycle = !no,
            ast::SequenceOptions::OwnedBy(_) => return Err(not_supported("OWNED BY")),
        }
    }
    if increment == 0 {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    let type_min = if type_max == i64::MAX {
        i64::MIN
    } else {
        -type_max - 1
    };
    let type_name = crate::pgcatalog::format_type(data_type.oid(), TYPMOD_NONE);
    for (label, bound) in [("MAXVALUE", max), ("MINVALUE", min)] {
        if let Some(v) = bound.filter(|v| *v < type_min || *v > type_max) {
            return Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("{label} ({v}) is out of range for sequence data type {type_name}"),
            ));
        }
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    if min >= max {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("MINVALUE ({min}) must be less than MAXVALUE ({max})"),
        ));
    }
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be less than MINVALUE ({min})"),
        ));
    }
    if start > max {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be greater than MAXVALUE ({max})"),
        ));
    }
    Ok(crate::catalog::SequenceDef {
        id: 0,
        name,
        increment,
        min,
        max,
        start,
        cycle,
        owned_by: None,
        data_type: Some(data_type),
        cache,
    })
}

/// Reserves on shard 0 the sequence values `exprs` draw when each is evaluated `times` times
/// (the evaluator is synchronous and takes them from `env`), and carries out their setval
/// calls, whose arguments must then be constants.
pub(crate) async fn reserve_sequences<C: Cluster>(
    cluster: &C,
    env: &Env,
    exprs: &[&Bound],
    times: usize,
) -> Result<(), SqlError> {
    let mut next: BTreeMap<u32, usize> = BTreeMap::new();
    let mut sets = Vec::new();
    for e in exprs {
        e.visit(&mut |b| {
            if let Kind::Func(f, args) = &b.kind {
                let Some(Kind::Const(Datum::Int(id))) = args.first().map(|a| &a.kind) else {
                    return;
                };
                match f {
                    expr::Func::NextVal => *next.entry(*id as u32).or_default() += times,
                    expr::Func::SetVal => sets.push((*id as u32, args.clone())),
                    _ => {}
                }
            }
        });
    }
    if next.is_empty() && sets.is_empty() {
        return Ok(());
    }
    let catalog = cluster.catalog();
    let lookup = |id: u32| {
        catalog.sequence_by_id(id).cloned().ok_or_else(|| {
            SqlError::new(
                UNDEFINED_TABLE,
                "the sequence was dropped during the statement",
            )
        })
    };
    for (id, args) in sets {
        let cx = Eval::new(env);
        let value = match eval(&args[2], &cx)? {
            Datum::Int(v) => v,
            _ => {
                return Err(SqlError::new(
                    NULL_VALUE_NOT_ALLOWED,
                    "setval: the value must not be null",
                ))
            }
        };
        let is_called = eval(&args[3], &cx)? != Datum::Bool(false);
        cluster
            .sequence(
                lookup(id)?,
                crate::cluster::SequenceOp::Set { value, is_called },
            )
            .await?;
        if let Ok(mut set) = env.sequences.set.lock() {
            set.insert(id);
        }
    }
    for (id, count) in next {
        let values = cluster
            .sequence(lookup(id)?, crate::cluster::SequenceOp::Next(count))
            .await?;
        if let Ok(mut reserved) = env.sequences.reserved.lock() {
            reserved.entry(id).or_default().extend(values);
        }
    }
    Ok(())
}

/// The schema DROP acts in for a possibly unqualified name: where the name is found on the
/// search path, else the first schema it could have been created in (so IF EXISTS notices
/// and "does not exist" errors name a schema).
/// DROP INDEX of a PRIMARY KEY's or UNIQUE constraint's index fails, as in PostgreSQL: the
/// constraint is what is dropped (ALTER TABLE DROP CONSTRAINT).
fn refuse_dropping_a_constraint_index<C: Cluster>(
    session: &Session,
    cluster: &C,
    schema: &str,
    name: &str,
    cascade: bool,
) -> Result<Vec<String>, SqlError> {
    let catalog = cluster.catalog();
    let Some(schema) = catalog
        .database(session.database())
        .and_then(|d| d.schemas.get(schema))
    else {
        return Ok(Vec::new());
    };
    let table = match schema.indexes.get(name) {
        Some(index) if index.constraint => index.table.clone(),
        // A plain unique index a foreign key relies on (its referenced columns exactly).
        Some(index) if index.unique => {
            let Some(parent) = schema.tables.get(&index.table) else {
                return Ok(Vec::new());
            };
            let sorted = |c: &[usize]| {
                let mut c = c.to_vec();
                c.sort_unstable();
                c
            };
            let indexed = sorted(&index.columns);
            let db = catalog
                .database(session.database())
                .expect("looked up above");
            let mut notices = Vec::new();
            for (child, fk) in db.foreign_keys_to(&parent.schema, &parent.name) {
                let referenced: Vec<usize> = fk
                    .ref_columns
                    .iter()
                    .filter_map(|c| parent.column_index(c))
                    .collect();
                if sorted(&referenced) != indexed || sorted(&parent.primary_key) == indexed {
                    continue;
                }
                // With CASCADE the catalog drops the foreign key with its index.
                if cascade {
                    notices.push(format!(
                        "drop cascades to constraint {} on table {}",
                        fk.name, child.name
                    ));
                } else {
                    return Err(SqlError::new(
                        DEPENDENT_OBJECTS_STILL_EXIST,
                        format!("cannot drop index {name} because other objects depend on it"),
                    )
                    .with_detail(format!(
                        "constraint {} on table {} depends on index {name}",
                        fk.name, child.name
                    ))
                    .with_hint(&HINT_DROP_CASCADE));
                }
            }
            return Ok(notices);
        }
        Some(_) => return Ok(Vec::new()),
        None => match schema
            .tables
            .values()
            .find(|t| !t.primary_key.is_empty() && t.pkey_name() == name)
        {
            Some(t) => t.name.clone(),
            None => return Ok(Vec::new()),
        },
    };
    Err(SqlError::new(
        DEPENDENT_OBJECTS_STILL_EXIST,
        format!("cannot drop index {name} because constraint {name} on table {table} requires it"),
    ))
}

fn resolve_for_drop<C: Cluster>(
    session: &Session,
    cluster: &C,
    schema: Option<String>,
    name: &str,
) -> String {
    let catalog = cluster.catalog();
    let path = session.search_path();
    match catalog.resolve_schema(session.database(), schema.as_deref(), &path, name) {
        Some(s) => s.to_string(),
        None => catalog
            .creation_schema(session.database(), schema, &path)
            .unwrap_or_else(|_| DEFAULT_SCHEMA.to_string()),
    }
}

/// The position of an INSERT or UPDATE target column, or PostgreSQL's 42703 naming the table.
fn target_column(table: &Table, name: &str) -> Result<usize, SqlError> {
    table.column_index(name).ok_or_else(|| {
        SqlError::new(
            UNDEFINED_COLUMN,
            format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                table.name
            ),
        )
    })
}
