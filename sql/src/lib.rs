//! helios-sql: the SQL front end and distributed executor. Statements are parsed with
//! `sqlparser` (PostgreSQL dialect), planned on the coordinator (the shard that owns the
//! client's connection) into shard fragments plus a coordinator plan, and run through a
//! [`Cluster`]: fragments scan and write each shard's LSM tree, the coordinator joins,
//! aggregates, sorts and limits. Results carry PostgreSQL 16's types, output text and
//! SQLSTATEs; anything not implemented fails with 0A000 rather than pretending to succeed.
//!
//! The protocol layer (`net/src/server/pg.rs`) owns a [`Session`] per connection and calls
//! [`execute_simple`] for each Query message, or [`prepare`] / [`execute_prepared`] for the
//! extended protocol; it knows nothing of SQL.

mod alter;
mod analyze;
mod catalog;
mod cluster;
mod copy;
mod cursor;
mod datetime;
pub mod ddl_undo;
mod dist;
mod error;
mod exec;
mod explain;
mod expr;
mod fkey;
mod funcs;
mod index;
mod json;
mod numeric;
pub mod pgbinary;
mod pgcatalog;
mod plan;
mod pushdown;
mod rowcodec;
mod session;
mod shape;
mod stmt;
pub mod txn;
mod types;
mod vector;
pub mod wire;

#[cfg(test)]
mod testcluster;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ddl;
#[cfg(test)]
mod tests_surface;
#[cfg(test)]
mod tests_types;
#[cfg(test)]
mod tests_vector;

use std::cell::RefCell;

use sqlparser::ast::{self, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

pub use catalog::{
    Catalog, DdlChange, DdlOutcome, DdlOwner, DdlRequest, LiveIds, SequenceDef, Table,
    DEFAULT_DATABASE,
};
pub use cluster::{
    delete_table_local, ingest_local, load_catalog, scan_durable_lsn, scan_fragment, scan_local,
    sequence_local, settle_markers, store_catalog, write_fragment, write_local, Cluster, RowOp,
    ScanRequest, ScanRows, SequenceOp, SequenceStates, WriteOutcome, WriteRequest,
};
pub use copy::{copy_in_loader, fuzzing as copy_fuzzing, CopyInStart, CopyLoader};
pub use error::SqlError;
pub use helios_engine::lsm::PackedEntries;
pub use index::delete_index_data;
pub use rowcodec::{storage_key_token, CATALOG_PREFIX, ROW_PREFIX};
pub use session::{
    startup_parameters, CancelFlag, ChangedParameter, Session, TransactionState, SERVER_VERSION,
};
pub use types::SqlType;

use error::*;
use types::{SqlType as Ty, TYPMOD_NONE};

/// One result column's description (the RowDescription fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
}

/// What one statement produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementResult {
    /// A row set: RowDescription, DataRows (text format; `None` is NULL), CommandComplete(tag).
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Option<String>>>,
        tag: String,
    },
    /// CommandComplete(tag); first send a ParameterStatus for each changed reported parameter,
    /// and a NoticeResponse for each notice ("WARNING: ..." ones with severity WARNING).
    Command {
        tag: String,
        changed_parameters: Vec<ChangedParameter>,
        notices: Vec<String>,
    },
    /// The query string held no statement: EmptyQueryResponse.
    Empty,
    /// COPY FROM STDIN: send CopyInResponse, then feed the client's CopyData to the
    /// [`CopyLoader`] from [`copy_in_loader`].
    CopyIn(CopyInStart),
    /// COPY TO STDOUT: CopyOutResponse, one CopyData per encoded row (the header first, if
    /// asked for), CopyDone, CommandComplete.
    CopyOut {
        column_count: usize,
        /// The rows are in the binary COPY format (the header with the first, the trailer
        /// last).
        binary: bool,
        rows: Vec<Vec<u8>>,
        tag: String,
    },
}

/// A query string longer than this is refused (the wire layer bounds messages too).
pub const QUERY_BYTES_MAX: usize = 16 << 20;
/// Statements in one query string, at most.
pub const STATEMENTS_MAX: usize = 10_000;
/// Rows one `VALUES` may list.
pub(crate) const VALUES_ROWS_MAX: usize = 100_000;
/// Expression nesting sqlparser accepts before failing with 54001.
const PARSE_DEPTH_MAX: usize = 200;

/// Runs a simple-query string: every statement in order, one result each, stopping after the
/// first error (earlier results stand). The whole string is parsed first, so a syntax error
/// anywhere means no statement runs — as in PostgreSQL.
pub async fn execute_simple<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
) -> Vec<Result<StatementResult, SqlError>> {
    if sql.len() > QUERY_BYTES_MAX {
        return vec![Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("query string is longer than {QUERY_BYTES_MAX} bytes"),
        ))];
    }
    if copy::is_copy(sql) {
        let r = execute_copy(session, cluster, sql).await;
        if r.is_err() {
            session.statement_failed();
        }
        return vec![r];
    }
    if let Some(tables) = vacuum_tables(sql) {
        let analyze = vacuum_analyzes(sql);
        if session.transaction != TransactionState::Idle {
            session.statement_failed();
            return vec![Err(SqlError::new(
                "25001",
                "VACUUM cannot run inside a transaction block",
            ))];
        }
        txn::set_suspended(cluster, true);
        let r = run_maintenance(session, cluster, "VACUUM", &tables, analyze).await;
        txn::set_suspended(cluster, false);
        if r.is_err() {
            session.statement_failed();
        }
        return vec![r];
    }
    if let Some(result) = execute_shape(session, cluster, sql).await {
        return vec![result];
    }
    let statements = match parse(sql) {
        Ok(s) => s,
        Err(e) => {
            session.statement_failed();
            return vec![Err(e)];
        }
    };
    if statements.is_empty() {
        return vec![Ok(StatementResult::Empty)];
    }
    if statements.len() > STATEMENTS_MAX {
        return vec![Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("more than {STATEMENTS_MAX} statements in one query"),
        ))];
    }
    let mut results = Vec::with_capacity(statements.len());
    let mut implicit = ImplicitBlock::default();
    for statement in &statements {
        if statements.len() > 1 {
            if let Some(r) = implicit.before(session, cluster, statement, false).await {
                let failed = r.is_err();
                results.push(r);
                if failed {
                    implicit.abort(session, cluster).await;
                    return results;
                }
                continue;
            }
        }
        let r =
            execute_in_transaction(session, cluster, sql, statement, &stmt::Params::none()).await;
        let failed = r.is_err();
        results.push(r);
        if failed {
            if implicit.open {
                implicit.abort(session, cluster).await;
            } else {
                session.statement_failed();
            }
            return results;
        }
    }
    if let Err(e) = implicit.commit(session, cluster).await {
        results.push(Err(e));
    }
    results
}

/// PostgreSQL's implicit transaction block: the statements of one query string run as one
/// transaction when no block is open, so an error undoes those before it (and the SETs among
/// them) and skips the rest. COMMIT and ROLLBACK end it with PostgreSQL's warning that no
/// transaction is in progress, and the statements after them start another; BEGIN makes it
/// an ordinary block that stays open after the query; SAVEPOINT and its kin are refused in
/// it, as statements that cannot run in a block are.
#[derive(Debug, Default)]
pub struct ImplicitBlock {
    open: bool,
}

impl ImplicitBlock {
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Opens the block before a statement when none is open, and runs the transaction
    /// control statements the block changes the meaning of (their result; None: run the
    /// statement as usual).
    ///
    /// `pipelined`: the extended protocol's block, opened for the Executes before a Sync,
    /// where a statement that cannot run in a block runs on its own when it comes first
    /// (PostgreSQL refuses it only in a pipeline of several).
    async fn before<C: Cluster>(
        &mut self,
        session: &mut Session,
        cluster: &C,
        statement: &Statement,
        pipelined: bool,
    ) -> Option<Result<StatementResult, SqlError>> {
        use Statement as S;
        let control = matches!(
            statement,
            S::StartTransaction { .. }
                | S::Commit { .. }
                | S::Rollback { .. }
                | S::Savepoint { .. }
                | S::ReleaseSavepoint { .. }
        );
        if !self.open {
            if control
                || session.transaction != TransactionState::Idle
                || (pipelined && cannot_run_in_a_block(statement))
            {
                return None;
            }
            if let Err(e) = self.begin(session, cluster).await {
                return Some(Err(e));
            }
        }
        let refused = |what: &str| {
            Some(Err(SqlError::new(
                "25P01",
                format!("{what} can only be used in transaction blocks"),
            )))
        };
        match statement {
            S::StartTransaction { modes, begin, .. } => {
                // The implicit block becomes the block BEGIN would open, with its modes.
                self.open = false;
                if !modes.is_empty() {
                    if let Err(e) = stmt::run_set_transaction(session, cluster, modes, false) {
                        self.open = true;
                        return Some(Err(e));
                    }
                }
                Some(Ok(StatementResult::Command {
                    tag: if *begin { "BEGIN" } else { "START TRANSACTION" }.to_string(),
                    changed_parameters: Vec::new(),
                    notices: Vec::new(),
                }))
            }
            S::Commit { .. }
            | S::Rollback {
                savepoint: None, ..
            } => {
                self.open = false;
                let r = stmt::run_transaction_control(session, cluster, statement).await;
                Some(r.map(|mut result| {
                    if let StatementResult::Command { notices, .. } = &mut result {
                        notices.push("WARNING: there is no transaction in progress".to_string());
                    }
                    result
                }))
            }
            S::Rollback { .. } => refused("ROLLBACK TO SAVEPOINT"),
            S::Savepoint { .. } => refused("SAVEPOINT"),
            S::ReleaseSavepoint { .. } => refused("RELEASE SAVEPOINT"),
            // A query string that is one VACUUM runs before parsing (`vacuum_tables`).
            _ if statement_kind(statement) == "VACUUM" => Some(Err(SqlError::new(
                "25001",
                "VACUUM cannot run inside a transaction block",
            ))),
            _ => None,
        }
    }

    async fn begin<C: Cluster>(
        &mut self,
        session: &mut Session,
        cluster: &C,
    ) -> Result<(), SqlError> {
        let begin = parse_plain("BEGIN")?;
        stmt::run_transaction_control(session, cluster, &begin[0]).await?;
        self.open = true;
        Ok(())
    }

    /// Ends the block rolled back, after a statement in it failed.
    pub async fn abort<C: Cluster>(&mut self, session: &mut Session, cluster: &C) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let rollback = parse_plain("ROLLBACK").expect("ROLLBACK parses");
        // Its error (the transaction already gone) adds nothing to the statement's; the
        // settings it puts back are reported before ReadyForQuery.
        if let Ok(StatementResult::Command {
            changed_parameters, ..
        }) = stmt::run_transaction_control(session, cluster, &rollback[0]).await
        {
            session.report_later(changed_parameters);
        }
    }

    /// Commits the block once the query's statements have all run (or at Sync).
    pub async fn commit<C: Cluster>(
        &mut self,
        session: &mut Session,
        cluster: &C,
    ) -> Result<(), SqlError> {
        if !std::mem::take(&mut self.open) {
            return Ok(());
        }
        let commit = parse_plain("COMMIT")?;
        stmt::run_transaction_control(session, cluster, &commit[0])
            .await
            .map(|_| ())
    }
}

/// Shapes a session keeps prepared statements for; past this the cache starts over (one-off
/// shapes pile up otherwise; refilling costs one parse per shape still in use).
const SHAPES_PER_SESSION_MAX: usize = 256;

/// What a cached shape's preparation read (as the protocol layer's parse cache): the catalog,
/// the session's parameters (search_path, ...) and its transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShapeValidity {
    catalog_version: u64,
    parameters_epoch: u64,
    transaction: TransactionState,
}

/// A session's prepared statements by query shape (text and literal types); None where the
/// shape did not prepare (`x::numeric(10, $1)`), so it is not tried again.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShapeCache {
    entries: std::collections::HashMap<ShapeKey, ShapeEntry>,
}

/// A shape's text and its literals' types.
type ShapeKey = (String, Vec<u32>);
/// What its preparation was made under, and the statement (None: it did not prepare).
type ShapeEntry = (ShapeValidity, Option<std::rc::Rc<Prepared>>);

impl ShapeCache {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(
        &self,
        shape: &shape::Shape,
        validity: &ShapeValidity,
    ) -> Option<Option<std::rc::Rc<Prepared>>> {
        let key = (shape.text.clone(), shape.type_oids.clone());
        let (cached, prepared) = self.entries.get(&key)?;
        (cached == validity).then(|| prepared.clone())
    }

    fn insert(
        &mut self,
        shape: &shape::Shape,
        validity: ShapeValidity,
        prepared: Option<std::rc::Rc<Prepared>>,
    ) {
        if self.entries.len() >= SHAPES_PER_SESSION_MAX {
            self.entries.clear();
        }
        let key = (shape.text.clone(), shape.type_oids.clone());
        self.entries.insert(key, (validity, prepared));
    }
}

/// Runs a simple-protocol statement through the prepared statement of its shape (see
/// [`shape`]): one parse and plan per shape, not per statement — the simple protocol's
/// `WHERE aid = 63781` then costs what the extended protocol's `WHERE aid = $1` does. None:
/// the statement has no shape, its shape does not prepare, or a quoted literal does not read
/// as its parameter's type; it then takes the ordinary path, which also gives any error at
/// its position in the text the client sent.
async fn execute_shape<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
) -> Option<Result<StatementResult, SqlError>> {
    let turned_off = session
        .parameter("helios.query_shapes")
        .is_some_and(|v| session::parse_bool(v) == Some(false));
    if turned_off || session.transaction == TransactionState::Failed {
        return None;
    }
    let shape = shape::of(sql)?;
    let validity = ShapeValidity {
        catalog_version: cluster.catalog().version,
        parameters_epoch: session.parameters_epoch(),
        transaction: session.transaction,
    };
    let prepared = match session.shapes.get(&shape, &validity) {
        Some(prepared) => prepared,
        None => {
            let prepared = prepare(session, cluster, &shape.text, &shape.type_oids)
                .ok()
                .filter(|p| p.statement.is_some())
                .map(std::rc::Rc::new);
            session.shapes.insert(&shape, validity, prepared.clone());
            prepared
        }
    }?;
    let style = session.style();
    for ((value, &declared), &inferred) in shape
        .values
        .iter()
        .zip(&shape.type_oids)
        .zip(&prepared.param_types)
    {
        if declared == 0 {
            let ty = Ty::from_oid(inferred).unwrap_or(Ty::Text);
            types::input(ty, TYPMOD_NONE, value, &style).ok()?;
        }
    }
    let params: Vec<Option<String>> = shape.values.into_iter().map(Some).collect();
    let result = execute_prepared(session, cluster, &prepared, &params).await;
    // A position would point into the shape's text, not the client's.
    Some(result.map_err(|e| e.at(None)))
}

/// A COPY statement (the whole query string): in a failed transaction block it is refused
/// like any other statement.
async fn execute_copy<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
) -> Result<StatementResult, SqlError> {
    if session.transaction == TransactionState::Failed {
        return Err(SqlError::new(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    // A table an open block's DDL holds: wait for the block, as for any other statement
    // (`execute_statement`); the COPY has written nothing yet, and each attempt ends its
    // statement (so a COPY TO's retry takes a fresh snapshot, not the refused one's).
    let mut planned_on = cluster.catalog().version;
    let mut r = copy::run_copy(session, cluster, sql).await;
    let mut end = txn::statement_end(cluster, r.is_ok()).await;
    let held = |r: &Result<StatementResult, SqlError>| r.as_ref().is_err_and(refused_for_held);
    if held(&r) {
        let mut polls_left = thaw_polls(session, cluster);
        while held(&r) && waited_for_thaw(cluster, planned_on, &mut polls_left).await {
            planned_on = cluster.catalog().version;
            r = copy::run_copy(session, cluster, sql).await;
            end = txn::statement_end(cluster, r.is_ok()).await;
        }
    }
    r.and_then(|result| end.map(|()| result))
}

/// Runs one statement in the connection's transaction: an autocommit statement that writes
/// (or locks rows) runs as a one-statement transaction, committed when it succeeds; DDL inside
/// a block is applied at once, and undone if the block does not commit
/// ([`ddl_undo`]).
async fn execute_in_transaction<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    statement: &Statement,
    params: &stmt::Params,
) -> Result<StatementResult, SqlError> {
    execute_statement(session, cluster, sql, statement, params)
        .await
        .map_err(|e| with_conflict_detail(session, cluster, e))
}

/// Names the duplicated key of a 23505 a shard raised, in the DETAIL field, as PostgreSQL
/// does (`Key (id)=(1) already exists.`): drivers show it, and tools parse it.
pub(crate) fn with_conflict_detail<C: Cluster>(
    session: &Session,
    cluster: &C,
    mut e: SqlError,
) -> SqlError {
    if e.detail.is_none() {
        if let Some(key) = e.take_conflict_key() {
            let catalog = cluster.catalog();
            e.detail = index::already_exists_detail(&catalog, &key, &session.style());
            if let Some((table, constraint)) = index::conflict_names(&catalog, &key) {
                e = e.on_constraint(&table, Some(&constraint));
            }
        }
    }
    e
}

async fn execute_statement<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    statement: &Statement,
    params: &stmt::Params,
) -> Result<StatementResult, SqlError> {
    let Statement::Query(q) = statement else {
        return execute_statement_body(session, cluster, sql, statement, params).await;
    };
    let mentions = |w: &[u8]| w.eq_ignore_ascii_case(b"set_config");
    if !sql.as_bytes().windows(10).any(mentions) {
        return execute_statement_body(session, cluster, sql, statement, params).await;
    }
    // Outside a block the statement is its own transaction for set_config's settings: a
    // local one lasts for it alone, and a failure undoes them all, as in PostgreSQL.
    let own_transaction = session.transaction == TransactionState::Idle;
    if own_transaction {
        session.settings_begin();
    }
    let catalog = cluster.catalog();
    let r = match apply_set_config_calls(session, sql, &catalog, q, params) {
        Ok(()) => execute_statement_body(session, cluster, sql, statement, params).await,
        Err(e) => Err(e),
    };
    if own_transaction {
        let changed = session.settings_end(r.is_ok());
        session.report_later(changed);
    }
    r
}

async fn execute_statement_body<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    statement: &Statement,
    params: &stmt::Params,
) -> Result<StatementResult, SqlError> {
    let in_block = session.transaction != TransactionState::Idle;
    txn::statement_start(cluster, session);
    if !keeps_written_rows(statement) {
        txn::forget_written_rows(cluster);
    }
    // DDL runs outside any transaction: its scans read the newest data (no snapshot held
    // over a table rewrite) and its writes apply at once.
    let ddl = is_ddl(statement);
    if in_block && takes_snapshot(statement) {
        // SET TRANSACTION ISOLATION LEVEL is refused after it, as in PostgreSQL (a query
        // that reads no table, `SELECT 1`, counts too).
        txn::note_queried(cluster);
    }
    if in_block && session.read_only {
        // ANALYZE only gathers statistics: PostgreSQL runs it in read-only transactions.
        let what = match statement {
            s if writes_rows(s) => Some(command_tag_word(s).to_string()),
            Statement::Analyze(_) => None,
            s if ddl => Some(statement_kind(s)),
            _ => None,
        };
        if let Some(what) = what {
            return Err(SqlError::new(
                "25006",
                format!("cannot execute {what} in a read-only transaction"),
            ));
        }
    }
    if ddl {
        if in_block && creates_or_drops_database(statement) {
            return Err(SqlError::new(
                "25001",
                format!(
                    "{} cannot run inside a transaction block",
                    database_command(statement)
                ),
            ));
        }
        if in_block && txn::has_touched(cluster) {
            refuse_ddl_on_touched_tables(session, cluster, statement)?;
        }
        // The index's entries would be written after the block's snapshot, invisible to the
        // index scans it would plan (ALTER TABLE checks the same when it reads rows).
        if in_block
            && matches!(statement, Statement::CreateIndex(_))
            && txn::snapshot_taken(cluster)
        {
            return Err(not_supported(
                "CREATE INDEX in a REPEATABLE READ transaction after its first query",
            ));
        }
        txn::set_suspended(cluster, true);
    }
    let implicit = !ddl && !in_block && writes_rows(statement) && !txn::in_transaction(cluster);
    if implicit {
        txn::begin(cluster, session.default_isolation()?, true);
    }
    let mut planned_on = cluster.catalog().version;
    let mut r = execute(session, cluster, sql, statement, params).await;
    let mut end = txn::statement_end(cluster, r.is_ok()).await;
    // A write an ALTER TABLE's freeze refused, outside a transaction block, or a statement
    // refused while planning because an open block's DDL changed a relation it names (in a
    // block too: nothing has run yet): wait for the ALTER or the block to finish and run
    // the statement again (on the new catalog), as PostgreSQL's statement would wait for
    // their lock.
    let retried = |r: &Result<StatementResult, SqlError>| {
        r.as_ref()
            .is_err_and(|e| (implicit && refused_for_ddl(e)) || refused_for_held(e))
    };
    if retried(&r) {
        let mut polls_left = thaw_polls(session, cluster);
        while retried(&r) && waited_for_thaw(cluster, planned_on, &mut polls_left).await {
            if implicit {
                txn::begin(cluster, session.default_isolation()?, true);
            }
            planned_on = cluster.catalog().version;
            r = execute(session, cluster, sql, statement, params).await;
            end = txn::statement_end(cluster, r.is_ok()).await;
        }
    }
    if ddl {
        txn::set_suspended(cluster, false);
    }
    r.and_then(|result| end.map(|()| result))
}

/// Whether a statement cannot delete or move a row the transaction wrote (see
/// `txn::TxnState::written_rows`): queries, plain INSERTs and UPDATEs (an UPDATE that
/// moves rows forgets them itself), settings and transaction control.
fn keeps_written_rows(statement: &Statement) -> bool {
    use Statement as S;
    match statement {
        S::Insert(insert) => insert.on.is_none(),
        S::Query(_)
        | S::Update(_)
        | S::Set(_)
        | S::ShowVariable { .. }
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Savepoint { .. }
        | S::ReleaseSavepoint { .. } => true,
        _ => false,
    }
}

/// `SELECT set_config(name, value, is_local)` (PostgREST sends its request's settings so):
/// the settings its select list asks for are made before the query runs, as SET [LOCAL]
/// makes them. Their arguments must not read a column or a subquery: constants, parameters,
/// and expressions over them (`current_setting('a') || '.x'`). (PostgreSQL makes them as it
/// evaluates each row; a call in a subquery or a WHERE is refused here.)
fn apply_set_config_calls(
    session: &mut Session,
    sql: &str,
    catalog: &catalog::Catalog,
    query: &ast::Query,
    params: &stmt::Params,
) -> Result<(), SqlError> {
    use sqlparser::ast::Visit;
    let mut finder = SetConfigFinder::default();
    let _ = query.visit(&mut finder);
    for (args, top) in finder.calls {
        if !top {
            return Err(not_supported("set_config outside a query's select list"));
        }
        let [name, value, local] = &args[..] else {
            continue; // not the three-argument form: binding reports it
        };
        let constant = |e: &ast::Expr| match constant_text(e, params) {
            Err(error) if error.sqlstate == FEATURE_NOT_SUPPORTED => {
                computed_text(session, sql, catalog, e, params)
            }
            other => other,
        };
        let (Some(name), value, Some(local)) =
            (constant(name)?, constant(value)?, constant(local)?)
        else {
            return Err(SqlError::new(
                NULL_VALUE_NOT_ALLOWED,
                "set_config: the name and is_local must not be null",
            ));
        };
        let local = session::parse_bool(&local) == Some(true);
        let changed = match value {
            Some(value) => session.set_parameter(&name, &value)?,
            None => session.reset_parameter(&name)?,
        };
        session.report_later(changed);
        session.settings_changed(&name, local);
    }
    Ok(())
}

/// The text of a constant or parameter argument (None: NULL); 0A000 for anything else.
fn constant_text(e: &ast::Expr, params: &stmt::Params) -> Result<Option<String>, SqlError> {
    let style = types::Style::default();
    match e {
        ast::Expr::Nested(inner) | ast::Expr::Cast { expr: inner, .. } => {
            constant_text(inner, params)
        }
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Null => Ok(None),
            ast::Value::Boolean(b) => Ok(Some(b.to_string())),
            ast::Value::Number(n, _) => Ok(Some(n.clone())),
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::UnicodeStringLiteral(s) => Ok(Some(s.clone())),
            ast::Value::DollarQuotedString(d) => Ok(Some(d.value.clone())),
            ast::Value::Placeholder(p) => {
                let n: usize = p.trim_start_matches('$').parse().unwrap_or(0);
                match params.values.get(n.wrapping_sub(1)) {
                    Some(d) => Ok(types::output(d, &style)),
                    // Describing (no values yet): nothing is set.
                    None => Ok(Some(String::new())),
                }
            }
            _ => Err(not_supported("set_config with this argument")),
        },
        _ => Err(not_supported("set_config with a computed argument")),
    }
}

/// The text of a set_config argument computed without a row: bound and evaluated on its own
/// (None: NULL). One that reads a column or a subquery stays refused (0A000): it would need
/// the query's rows.
fn computed_text(
    session: &Session,
    sql: &str,
    catalog: &catalog::Catalog,
    e: &ast::Expr,
    params: &stmt::Params,
) -> Result<Option<String>, SqlError> {
    let reads_rows = sqlparser::ast::visit_expressions(e, |inner| match inner {
        ast::Expr::Identifier(_)
        | ast::Expr::CompoundIdentifier(_)
        | ast::Expr::Subquery(_)
        | ast::Expr::Exists { .. }
        | ast::Expr::In {
            target: ast::InTarget::Subquery(_),
            ..
        } => std::ops::ControlFlow::Break(()),
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break();
    if reads_rows {
        return Err(not_supported(
            "set_config with an argument that reads a column or a subquery",
        ));
    }
    if params.describe {
        return Ok(Some(String::new())); // describing: no values yet, nothing is set
    }
    let positions = expr::Positions::new(sql);
    // A planner for the functions that read the catalog or the settings (current_setting).
    let planner = plan::Planner::new(session, sql, &positions, catalog, &params.types);
    let mut binder = expr::Binder::new(session, sql, &positions);
    binder.params = Some(&params.types);
    binder.planner = Some(&planner);
    let bound = binder.bind(e)?;
    let mut env = expr::Env::of(session);
    env.params = params.values.clone();
    let value = expr::eval(&bound, &expr::Eval::new(&env))?;
    Ok(types::output(&value, &session.style()))
}

/// set_config calls of a query: their arguments, and whether each is in the top query's
/// select list (not in a subquery).
#[derive(Default)]
struct SetConfigFinder {
    calls: Vec<(Vec<ast::Expr>, bool)>,
    depth: usize,
}

impl sqlparser::ast::Visitor for SetConfigFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _: &ast::Query) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &ast::Query) -> std::ops::ControlFlow<()> {
        self.depth -= 1;
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &ast::Expr) -> std::ops::ControlFlow<()> {
        if let ast::Expr::Function(f) = e {
            let named = f
                .name
                .0
                .last()
                .is_some_and(|p| p.to_string().eq_ignore_ascii_case("set_config"));
            if let (true, ast::FunctionArguments::List(list)) = (named, &f.args) {
                let args = list
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                self.calls.push((args, self.depth == 1));
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Statements after which PostgreSQL's transaction has its snapshot: all but settings and
/// transaction control.
fn takes_snapshot(statement: &Statement) -> bool {
    use Statement as S;
    !matches!(
        statement,
        S::Set(_)
            | S::ShowVariable { .. }
            | S::Reset(_)
            | S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
    )
}

fn creates_or_drops_database(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateDatabase { .. }
            | Statement::Drop {
                object_type: ast::ObjectType::Database,
                ..
            }
    )
}

fn database_command(statement: &Statement) -> &'static str {
    match statement {
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        _ => "DROP DATABASE",
    }
}

/// DDL inside a transaction block runs outside the transaction, reading the block's own
/// rows too ([`txn::newest_ctx`]); an ALTER TABLE that rewrites a table the block has
/// written or locked rows of is refused where it runs (`alter::refuse_rewrite_of_touched`).
/// Statements that may reach any table (DROP SCHEMA ... CASCADE) are refused here after
/// the block has written or locked rows.
fn refuse_ddl_on_touched_tables<C: Cluster>(
    session: &Session,
    cluster: &C,
    statement: &Statement,
) -> Result<(), SqlError> {
    match ddl_tables(session, &cluster.catalog(), statement) {
        Some(_) => Ok(()),
        None => Err(not_supported(
            "this DDL in a transaction block after it has written or locked rows",
        )),
    }
}

/// The existing tables whose rows a DDL statement reads, rewrites or deletes; None when it
/// may reach any table (DROP SCHEMA ... CASCADE). Names that resolve to nothing are left
/// out: the statement itself reports them.
fn ddl_tables(
    session: &Session,
    catalog: &catalog::Catalog,
    statement: &Statement,
) -> Option<Vec<std::sync::Arc<catalog::Table>>> {
    use Statement as S;
    let table = |name: &ast::ObjectName| -> Option<std::sync::Arc<catalog::Table>> {
        let (schema, name) = plan::split_name(name).ok()?;
        let path = session.search_path();
        let db = session.database();
        let schema = catalog.resolve_schema(db, schema.as_deref(), &path, &name);
        catalog
            .table(db, Some(schema.unwrap_or(catalog::DEFAULT_SCHEMA)), &name)
            .cloned()
    };
    let indexed_table = |name: &ast::ObjectName| -> Option<std::sync::Arc<catalog::Table>> {
        let (schema, name) = plan::split_name(name).ok()?;
        let path = session.search_path();
        let db = session.database();
        let schema = catalog.resolve_schema(db, schema.as_deref(), &path, &name)?;
        let index = catalog
            .database(db)?
            .schemas
            .get(schema)?
            .indexes
            .get(&name)?;
        catalog.table(db, Some(schema), &index.table).cloned()
    };
    Some(match statement {
        S::AlterTable(at) => table(&at.name).into_iter().collect(),
        S::CreateIndex(ci) => table(&ci.table_name).into_iter().collect(),
        S::AlterIndex { .. } => Vec::new(),
        S::Truncate(t) => t
            .table_names
            .iter()
            .filter_map(|t| table(&t.name))
            .collect(),
        S::Drop {
            object_type, names, ..
        } => match object_type {
            ast::ObjectType::Table => names.iter().filter_map(table).collect(),
            ast::ObjectType::Index => names.iter().filter_map(indexed_table).collect(),
            ast::ObjectType::View | ast::ObjectType::Sequence => Vec::new(),
            _ => return None,
        },
        S::CreateTable(_)
        | S::CreateSequence { .. }
        | S::CreateView(_)
        | S::CreateDatabase { .. }
        | S::CreateSchema { .. }
        | S::Analyze(_) => Vec::new(),
        _ => return None,
    })
}

fn refused_for_ddl(e: &SqlError) -> bool {
    e.sqlstate == "40001" && e.message == catalog::WRITES_REFUSED_FOR_DDL
}

fn refused_for_held(e: &SqlError) -> bool {
    e.sqlstate == "55P03" && e.message.ends_with(catalog::HELD_BY_BLOCK)
}

/// How many [`Cluster::pause`]s a write waits for a frozen table at most: `lock_timeout`,
/// else ALTER TABLE's own limit. A block with DDL of its own pending may be what the other
/// block waits for (each creating a name the other made first): it waits only as long as
/// PostgreSQL's `deadlock_timeout`, a deadlock no lock graph sees.
fn thaw_polls<C: Cluster>(session: &Session, cluster: &C) -> u64 {
    const PAUSE_MICROS: u64 = 50;
    let mut wait_ms = alter::ddl_wait_ms(session.lock_timeout_ms());
    if txn::has_pending_ddl(cluster) {
        wait_ms = wait_ms.min(alter::DEADLOCK_TIMEOUT_MS);
    }
    wait_ms * 1000 / PAUSE_MICROS
}

/// Waits until the catalog differs from `version`, the one the refused statement was
/// planned on (an ALTER thawed, a block holding the table ended), or no table's writes are
/// frozen or held (a pause at least, so a refusal that persists cannot
/// spin); false once `polls_left` runs out.
async fn waited_for_thaw<C: Cluster>(cluster: &C, version: u64, polls_left: &mut u64) -> bool {
    loop {
        if *polls_left == 0 {
            return false;
        }
        *polls_left -= 1;
        cluster.pause().await;
        let catalog = cluster.catalog();
        if catalog.version != version
            || (catalog.frozen.is_empty() && catalog.held_tables().is_empty())
        {
            return true;
        }
    }
}

/// Statements that change rows (or lock them): outside a block each runs as its own
/// transaction.
fn writes_rows(statement: &Statement) -> bool {
    use Statement as S;
    match statement {
        S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_) => true,
        S::Query(q) => !q.locks.is_empty(),
        _ => false,
    }
}

fn command_tag_word(statement: &Statement) -> &'static str {
    use Statement as S;
    match statement {
        S::Insert(_) => "INSERT",
        S::Update(_) => "UPDATE",
        S::Delete(_) => "DELETE",
        S::Merge(_) => "MERGE",
        _ => "SELECT FOR UPDATE",
    }
}

/// Catalog changes and maintenance: they are not part of a transaction.
fn is_ddl(statement: &Statement) -> bool {
    use Statement as S;
    matches!(
        statement,
        S::Truncate(_)
            | S::CreateTable(_)
            | S::AlterTable(_)
            | S::AlterIndex { .. }
            | S::CreateIndex(_)
            | S::CreateSequence { .. }
            | S::CreateView(_)
            | S::Drop { .. }
            | S::CreateDatabase { .. }
            | S::CreateSchema { .. }
            | S::Analyze(_)
    )
}

/// A statement parsed and described for the extended protocol.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    statement: Option<Statement>,
    /// A COPY statement (parsed by `copy.rs`, not sqlparser): `sql` is run at Execute.
    copy: bool,
    /// Parameter type OIDs (declared, else inferred; text where nothing says otherwise).
    pub param_types: Vec<u32>,
    /// The row description, or None for a statement that returns no rows (NoData).
    pub columns: Option<Vec<Column>>,
    plan_cache: stmt::PlanCache,
}

/// Parses and describes one statement (Parse). `declared` are the parameter type OIDs the
/// client gave (0: infer).
pub fn prepare<C: Cluster>(
    session: &Session,
    cluster: &C,
    sql: &str,
    declared: &[u32],
) -> Result<Prepared, SqlError> {
    if sql.len() > QUERY_BYTES_MAX {
        return Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("query string is longer than {QUERY_BYTES_MAX} bytes"),
        ));
    }
    if copy::is_copy(sql) {
        // Checked now, run at Execute; it has no parameters and describes no rows.
        copy::parse_copy(sql)?;
        return Ok(Prepared {
            sql: sql.to_string(),
            statement: None,
            copy: true,
            param_types: Vec::new(),
            columns: None,
            plan_cache: Default::default(),
        });
    }
    let mut statements = parse(sql)?;
    if statements.len() > 1 {
        return Err(SqlError::new(
            SYNTAX_ERROR,
            "cannot insert multiple commands into a prepared statement",
        ));
    }
    let statement = statements.pop();
    let mut types = Vec::with_capacity(declared.len());
    for &oid in declared {
        types.push(match oid {
            0 => None,
            oid => Some(Ty::from_oid(oid).ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_OBJECT,
                    format!("type with OID {oid} does not exist"),
                )
            })?),
        });
    }
    let params = stmt::Params {
        types: RefCell::new(types),
        values: Vec::new(),
        describe: true,
        plan_cache: None,
    };
    // A Parse only describes, with the definitions as they are now; its Execute waits for
    // a block holding a relation it names.
    let mut catalog = cluster.catalog();
    if !catalog.pending.is_empty() {
        catalog = std::sync::Arc::new(catalog.without_holds());
    }
    let describer = DescribeOnly(catalog, Default::default(), Default::default());
    let columns = match &statement {
        // Transaction control and SET change the session: describe them without running.
        Some(
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Set(_)
            | Statement::Reset(_),
        ) => None,
        Some(Statement::ShowVariable { variable }) => Some(show_columns(session, variable)?),
        Some(s) => describe_statement(session, &describer, sql, s, &params)?,
        None => None,
    };
    // A parameter the statement never names has no type to infer (PostgreSQL: 42P18); one
    // named only where any type fits is text.
    let param_types = params
        .types
        .into_inner()
        .into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) if t != Ty::Unknown => Ok(t.oid()),
            Some(_) => Ok(Ty::Text.oid()),
            None => Err(SqlError::new(
                "42P18",
                format!("could not determine data type of parameter ${}", i + 1),
            )),
        })
        .collect::<Result<Vec<u32>, SqlError>>()?;
    Ok(Prepared {
        sql: sql.to_string(),
        statement,
        copy: false,
        param_types,
        columns,
        plan_cache: Default::default(),
    })
}

/// Binds any statement without running it, to learn its parameter types and result columns.
fn describe_statement(
    session: &Session,
    cluster: &DescribeOnly,
    sql: &str,
    statement: &Statement,
    params: &stmt::Params,
) -> Result<Option<Vec<Column>>, SqlError> {
    let mut session = session.clone();
    let run = execute(&mut session, cluster, sql, statement, params);
    match futures_util::FutureExt::now_or_never(run) {
        Some(Ok(StatementResult::Rows { columns, .. })) => Ok(Some(columns)),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) if e.sqlstate == DESCRIBE_DONE => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

/// The error a describe-only cluster answers every operation with.
const DESCRIBE_DONE: &str = "HDESC";

/// A cluster for describing statements: it knows the catalog and refuses all I/O (binding
/// happens before any, and describing statements stop after binding).
struct DescribeOnly(
    std::sync::Arc<Catalog>,
    std::cell::RefCell<txn::ConnTxn>,
    std::sync::Arc<txn::CommitGate>,
);

impl Cluster for DescribeOnly {
    fn catalog(&self) -> std::sync::Arc<Catalog> {
        self.0.clone()
    }
    fn shard_count(&self) -> usize {
        1
    }
    fn shard_of_token(&self, _: u64) -> usize {
        0
    }
    async fn apply_ddl(&self, _: DdlRequest) -> Result<DdlOutcome, SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn scan(&self, _: usize, _: ScanRequest) -> Result<ScanRows, SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn write(&self, _: usize, _: WriteRequest) -> Result<WriteOutcome, SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn truncate(&self, _: usize, _: u32) -> Result<(), SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn ingest(&self, _: usize, _: PackedEntries) -> Result<(), SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn sequence(&self, _: SequenceDef, _: SequenceOp) -> Result<Vec<i64>, SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    async fn txn_call(&self, _: usize, _: txn::TxnMsg) -> Result<txn::TxnReply, SqlError> {
        Err(SqlError::new(DESCRIBE_DONE, "describe only"))
    }
    fn conn_txn(&self) -> &std::cell::RefCell<txn::ConnTxn> {
        &self.1
    }
    fn new_txn_id(&self) -> txn::TxnId {
        1
    }
    fn commit_timestamp(&self) -> u64 {
        1
    }
    fn home_shard(&self) -> usize {
        0
    }
    fn commit_gate(&self) -> &std::sync::Arc<txn::CommitGate> {
        &self.2
    }
    async fn pause(&self) {}
    async fn after_commit(&self, _: txn::Cleanup) {}
    async fn release_snapshot(&self, _: u64) {}
}

/// Runs a prepared statement with parameter values in text form (None: NULL) (Bind+Execute).
pub async fn execute_prepared<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    prepared: &Prepared,
    params: &[Option<String>],
) -> Result<StatementResult, SqlError> {
    if prepared.copy {
        return execute_copy(session, cluster, &prepared.sql).await;
    }
    let Some(statement) = &prepared.statement else {
        return Ok(StatementResult::Empty);
    };
    if params.len() != prepared.param_types.len() {
        return Err(SqlError::new(
            PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                params.len(),
                prepared.param_types.len()
            ),
        ));
    }
    let mut types = Vec::with_capacity(params.len());
    let mut values = Vec::with_capacity(params.len());
    let style = session.style();
    for (oid, v) in prepared.param_types.iter().zip(params) {
        let ty = Ty::from_oid(*oid).unwrap_or(Ty::Text);
        types.push(Some(ty));
        values.push(match v {
            None => types::Datum::Null,
            Some(text) => types::input(ty, TYPMOD_NONE, text, &style)?,
        });
    }
    let p = stmt::Params {
        types: RefCell::new(types),
        values,
        describe: false,
        plan_cache: Some(prepared.plan_cache.clone()),
    };
    let r = execute_in_transaction(session, cluster, &prepared.sql, statement, &p).await;
    if r.is_err() {
        session.statement_failed();
    }
    r
}

/// Runs a bound prepared statement (an Execute) inside the extended protocol's implicit
/// block: the Executes before one Sync are one transaction, as in PostgreSQL. `open`: the
/// block may open here (the protocol layer says so when the message after the Execute is
/// not already a Sync; a lone Execute and its Sync run as one statement, as before).
pub async fn execute_prepared_in_block<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    prepared: &Prepared,
    params: &[Option<String>],
    block: &mut ImplicitBlock,
    open: bool,
) -> Result<StatementResult, SqlError> {
    // A COPY opens no block: its rows go to the shards in batches as they arrive, where a
    // block would hold them all in memory until the Sync.
    let open = open && !prepared.copy;
    if let (Some(statement), true) = (&prepared.statement, block.is_open() || open) {
        if let (true, Some(command)) = (block.is_open(), no_block_command(statement)) {
            return Err(SqlError::new(
                "25001",
                format!("{command} cannot be executed within a pipeline"),
            ));
        }
        if let Some(r) = block.before(session, cluster, statement, true).await {
            return r;
        }
    }
    execute_prepared(session, cluster, prepared, params).await
}

/// Statements PostgreSQL runs only outside a transaction block.
fn cannot_run_in_a_block(statement: &Statement) -> bool {
    no_block_command(statement).is_some()
}

/// The name PostgreSQL's errors give a statement that runs only outside a transaction
/// block; None for the others.
fn no_block_command(statement: &Statement) -> Option<&'static str> {
    match statement {
        s if creates_or_drops_database(s) => Some(database_command(s)),
        Statement::CreateIndex(ci) if ci.concurrently => Some("CREATE INDEX CONCURRENTLY"),
        Statement::Drop {
            object_type: ast::ObjectType::Index,
            temporary: true,
            ..
        } => Some("DROP INDEX CONCURRENTLY"),
        s if statement_kind(s) == "VACUUM" => Some("VACUUM"),
        _ => None,
    }
}

fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    match parse_plain(sql) {
        Err(e) => {
            let lower = sql.to_ascii_lowercase();
            if lower.contains("constraints") {
                if let Some(parsed) = parse_with_set_constraints(sql) {
                    return parsed;
                }
            }
            if lower.contains("verbose") || lower.contains('(') || lower.contains("analyse") {
                if let Some(text) = analyze_without_options(sql) {
                    return parse_plain(&text);
                }
            }
            if lower.contains("concurrently") {
                if let Some((text, marked)) = drop_index_without_concurrently(sql) {
                    return parse_plain(&text).map(|s| mark_drop_concurrently(s, &marked));
                }
            }
            if lower.contains("deferrable") {
                if let Some(text) = without_deferrable(sql) {
                    return parse_plain(&text);
                }
            }
            if lower.contains("prepare") {
                if let Some(parsed) = parse_two_phase(sql) {
                    return Ok(vec![parsed]);
                }
            }
            if lower.contains("key") {
                if let Some(text) = with_key_locks_marked(sql) {
                    return parse_plain(&text);
                }
            }
            let first = lower.trim_start();
            if (first.starts_with("fetch") || first.starts_with("move")) && lower.contains('-') {
                if let Some(text) = without_count_sign(sql) {
                    let mut parsed = parse(&text)?;
                    parsed.iter_mut().for_each(negate_fetch_count);
                    return Ok(parsed);
                }
            }
            if lower.contains("fetch") {
                if let Some(text) = with_fetch_from(sql) {
                    return parse_plain(&text);
                }
            }
            if lower.trim_start().starts_with("move") {
                if let Some(parsed) = parse_move(sql) {
                    return parsed;
                }
            }
            Err(e)
        }
        Ok(statements) => refuse_purge(sql, statements),
    }
}

/// `DROP ... PURGE` is Oracle's, which sqlparser takes; PostgreSQL has no such word there and
/// gives a syntax error at it, as helios now does (it used to drop the table).
fn refuse_purge(sql: &str, statements: Vec<Statement>) -> Result<Vec<Statement>, SqlError> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !statements
        .iter()
        .any(|s| matches!(s, Statement::Drop { purge: true, .. }))
    {
        return Ok(statements);
    }
    let purge = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .ok()
        .and_then(|tokens| {
            // The last such word: the keyword ends the DROP, a table may be named purge.
            tokens.into_iter().rev().find(|t| {
                matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("purge"))
            })
        });
    let (word, position) = match purge {
        Some(t) => (
            t.token.to_string(),
            expr::Positions::new(sql).offset(t.span.start),
        ),
        None => ("PURGE".to_string(), None),
    };
    Err(SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{word}\"")).at(position))
}

/// `FETCH [direction] cursor`, which PostgreSQL takes without FROM or IN and sqlparser does
/// not: with FROM (and NEXT where no direction is given) before the cursor's name. None: no
/// FETCH lacks it.
fn with_fetch_from(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let is = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut out: Vec<String> = Vec::with_capacity(tokens.len() + 2);
    let mut changed = false;
    // Each statement's words: where it starts, and its last word (the cursor's name).
    let mut start = 0;
    while start < tokens.len() {
        let end = tokens[start..]
            .iter()
            .position(|t| *t == Token::SemiColon)
            .map_or(tokens.len(), |p| start + p);
        let words: Vec<usize> = (start..end)
            .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
            .collect();
        let insert_at = match words.as_slice() {
            [first, .., last] if words.len() >= 2 => {
                let before = words[words.len() - 2];
                (is(&tokens[*first], "fetch")
                    && matches!(tokens[*last], Token::Word(_))
                    && !is(&tokens[before], "from")
                    && !is(&tokens[before], "in"))
                .then_some(*last)
            }
            _ => None,
        };
        for (i, t) in tokens.iter().enumerate().take(end).skip(start) {
            if Some(i) == insert_at {
                // `FETCH name` moves NEXT, which sqlparser wants written.
                out.push(
                    if words.len() == 2 {
                        "NEXT FROM "
                    } else {
                        "FROM "
                    }
                    .to_string(),
                );
                changed = true;
            }
            out.push(t.to_string());
        }
        if end < tokens.len() {
            out.push(";".to_string());
        }
        start = end + 1;
    }
    changed.then(|| out.concat())
}

/// The name a MOVE statement is carried under as a FETCH ... INTO (which helios does not
/// run otherwise): `cursor::fetch` moves without returning rows. No client can write it.
pub(crate) const MOVE_MARKER: &str = "\0move";

/// `MOVE [direction] [FROM | IN] cursor` (which sqlparser does not parse): read as the FETCH
/// it moves like, marked with [`MOVE_MARKER`]. None: the text is not one MOVE statement.
fn parse_move(sql: &str) -> Option<Result<Vec<Statement>, SqlError>> {
    let trimmed = sql.trim_start();
    let rest = trimmed.get(4..)?;
    // One statement: a semicolon only at its end.
    let body = rest.trim_end().trim_end_matches(';');
    if !rest.starts_with(|c: char| c.is_whitespace()) || body.contains(';') {
        return None;
    }
    let text = format!("FETCH{rest}");
    let parsed = parse_plain(&text).or_else(|e| match with_fetch_from(&text) {
        Some(fixed) => parse_plain(&fixed),
        None => Err(e),
    });
    Some(parsed.map(|statements| {
        statements
            .into_iter()
            .map(|s| match s {
                Statement::Fetch {
                    name,
                    direction,
                    position,
                    into: None,
                } => Statement::Fetch {
                    name,
                    direction,
                    position,
                    into: Some(ast::ObjectName::from(vec![ast::Ident::new(MOVE_MARKER)])),
                },
                other => other,
            })
            .collect()
    }))
}

/// A query string's tokens, and the positions of those that are not whitespace (the
/// token-level readers of forms sqlparser cannot parse share them).
fn tokens_and_words(sql: &str) -> Option<(Vec<sqlparser::tokenizer::Token>, Vec<usize>)> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    // Not unescaped: the tokens are printed back as the query's text, and a string's
    // doubled quotes must stay doubled (`'O''Brien'`).
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let words = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    Some((tokens, words))
}

/// Whether `t` is the unquoted word `w` (any case).
fn is_word(t: &sqlparser::tokenizer::Token, w: &str) -> bool {
    matches!(t, sqlparser::tokenizer::Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
}

/// The text of `tokens` without those `dropped` marks.
fn text_without(tokens: &[sqlparser::tokenizer::Token], dropped: &[bool]) -> String {
    tokens
        .iter()
        .zip(dropped)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t.to_string())
        .collect()
}

/// The name a `FOR NO KEY UPDATE` / `FOR KEY SHARE` clause is carried under (sqlparser
/// cannot parse them): as `FOR UPDATE` / `FOR SHARE` whose `OF` name starts with it (the
/// planner reads it back: [`plan::row_lock_mode`]). No client can write it.
pub(crate) const KEY_LOCK_MARKER: &str = "\0key";

/// `FOR NO KEY UPDATE [OF t]` and `FOR KEY SHARE [OF t]` rewritten as `FOR UPDATE OF
/// "<marker>"[.t]` and `FOR SHARE OF ...`, which sqlparser parses. None: the text has
/// neither.
fn with_key_locks_marked(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let is = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    // Positions of the words (whitespace skipped), to look at word sequences.
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let mut dropped = vec![false; tokens.len()];
    // After these tokens: the marker (and a following OF is taken into it).
    let mut marked = vec![false; tokens.len()];
    for (n, w) in words.windows(3).enumerate() {
        let [a, b, c] = [w[0], w[1], w[2]];
        if !is(&tokens[a], "for") {
            continue;
        }
        let last = if is(&tokens[b], "key") && is(&tokens[c], "share") {
            dropped[b] = true;
            c
        } else if is(&tokens[b], "no")
            && words
                .get(n + 3)
                .is_some_and(|&d| is(&tokens[c], "key") && is(&tokens[d], "update"))
        {
            dropped[b] = true;
            dropped[c] = true;
            words[n + 3]
        } else {
            continue;
        };
        marked[last] = true;
        // `OF t`: the marker becomes the first part of t's name.
        if let Some(&of) = words.iter().find(|&&i| i > last) {
            if is(&tokens[of], "of") {
                dropped[of] = true;
            }
        }
    }
    if !marked.iter().any(|m| *m) {
        return None;
    }
    let mut text = String::with_capacity(sql.len() + 16);
    for (i, t) in tokens.iter().enumerate() {
        if !dropped[i] {
            text.push_str(&t.to_string());
        }
        if marked[i] {
            text.push_str(" OF \"");
            text.push_str(KEY_LOCK_MARKER);
            text.push('"');
            // A dropped OF's name follows as the marker's qualified part.
            if let Some(of) =
                (i + 1..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
            {
                if dropped[of] {
                    text.push('.');
                }
            }
        }
    }
    Some(text)
}

fn parse_plain(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let parser = Parser::new(&PostgreSqlDialect {}).with_recursion_limit(PARSE_DEPTH_MAX);
    parser
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parse_error(sql, e))
}

/// The variable a `SET CONSTRAINTS { ALL | name, ... } { DEFERRED | IMMEDIATE }` statement
/// is carried under as a `SET` (sqlparser does not parse it): its values are the mode, then
/// the constraint names (none: ALL). No client can name it (a query string holds no NUL).
pub(crate) const SET_CONSTRAINTS: &str = "\0set constraints";

/// The variable `PREPARE TRANSACTION 'gid'`, `COMMIT PREPARED 'gid'` and `ROLLBACK PREPARED
/// 'gid'` (which sqlparser cannot parse) are carried under as a SET: its values are the
/// command word and the gid. No client can name it.
const TWO_PHASE: &str = "\0two-phase commit";

/// A FETCH or MOVE whose count is negative (`FETCH ABSOLUTE -1 FROM c`, `MOVE -2 IN c`),
/// which sqlparser cannot parse: its text without the minus ([`negate_fetch_count`] puts
/// it back). None: no count with a minus.
fn without_count_sign(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let minus = words.windows(2).find_map(|w| {
        matches!(
            (&tokens[w[0]], &tokens[w[1]]),
            (Token::Minus, Token::Number(..))
        )
        .then_some(w[0])
    })?;
    let minuses = tokens.iter().filter(|t| matches!(t, Token::Minus)).count();
    if minuses != 1 {
        return None;
    }
    let mut dropped = vec![false; tokens.len()];
    dropped[minus] = true;
    Some(text_without(&tokens, &dropped))
}

/// The count of a FETCH (or a MOVE carried as one) made negative.
fn negate_fetch_count(statement: &mut Statement) {
    use ast::FetchDirection as D;
    let Statement::Fetch { direction, .. } = statement else {
        return;
    };
    let limit = match direction {
        D::Count { limit } | D::Absolute { limit } | D::Relative { limit } => limit,
        D::Forward { limit: Some(limit) } | D::Backward { limit: Some(limit) } => limit,
        _ => return,
    };
    if let ast::Value::Number(n, long) = &limit.value {
        limit.value = ast::Value::Number(format!("-{n}"), *long);
    }
}

/// `ANALYZE VERBOSE t` / `ANALYZE (VERBOSE, SKIP_LOCKED) t` (which sqlparser cannot parse)
/// without the options: they change what is reported, not what is gathered. None: not an
/// ANALYZE with options.
fn analyze_without_options(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::Token;
    let (tokens, words) = tokens_and_words(sql)?;
    let is = is_word;
    let (&first, rest) = words.split_first()?;
    if !(is(&tokens[first], "analyze") || is(&tokens[first], "analyse")) {
        return None;
    }
    let mut dropped = vec![false; tokens.len()];
    match rest.first() {
        Some(&v) if is(&tokens[v], "verbose") => dropped[v] = true,
        Some(&open) if matches!(tokens[open], Token::LParen) => {
            let close = rest.iter().find(|&&i| matches!(tokens[i], Token::RParen))?;
            dropped[open..=*close].iter_mut().for_each(|d| *d = true);
        }
        // ANALYSE, PostgreSQL's other spelling.
        _ if is(&tokens[first], "analyse") => {}
        _ => return None,
    }
    Some(
        tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped[*i])
            .map(|(i, t)| match i == first {
                true => "ANALYZE".to_string(),
                false => t.to_string(),
            })
            .collect(),
    )
}

/// `DROP INDEX CONCURRENTLY ...` (which sqlparser cannot parse) as a plain DROP INDEX: a
/// drop takes no lock that would hold writers back anyway. [`mark_drop_concurrently`] keeps
/// what PostgreSQL refuses of it (in a transaction block, several indexes, CASCADE).
fn drop_index_without_concurrently(sql: &str) -> Option<(String, Vec<usize>)> {
    use sqlparser::tokenizer::Token;
    let (tokens, words) = tokens_and_words(sql)?;
    let is = is_word;
    let mut dropped = vec![false; tokens.len()];
    // The ordinals of the statements that had it (empty statements do not count, as the
    // parser returns none for them).
    let mut marked = Vec::new();
    let (mut statement, mut at_start) = (0, true);
    for (n, &w) in words.iter().enumerate() {
        if matches!(tokens[w], Token::SemiColon) {
            if !at_start {
                statement += 1;
            }
            at_start = true;
            continue;
        }
        if at_start {
            if let [drop, index, concurrently] = words[n..words.len().min(n + 3)] {
                if is(&tokens[drop], "drop")
                    && is(&tokens[index], "index")
                    && is(&tokens[concurrently], "concurrently")
                {
                    dropped[concurrently] = true;
                    marked.push(statement);
                }
            }
        }
        at_start = false;
    }
    if marked.is_empty() {
        return None;
    }
    Some((text_without(&tokens, &dropped), marked))
}

/// Marks a DROP INDEX read without its CONCURRENTLY: `temporary`, which PostgreSQL's
/// grammar (and so sqlparser's dialect) never sets on a DROP, carries it to
/// [`refuse_drop_concurrently`].
fn mark_drop_concurrently(mut statements: Vec<Statement>, marked: &[usize]) -> Vec<Statement> {
    for &n in marked {
        if let Some(Statement::Drop {
            object_type: ast::ObjectType::Index,
            temporary,
            ..
        }) = statements.get_mut(n)
        {
            *temporary = true;
        }
    }
    statements
}

/// What PostgreSQL refuses of DROP INDEX CONCURRENTLY.
fn refuse_drop_concurrently(
    session: &Session,
    names: &[ast::ObjectName],
    cascade: bool,
) -> Result<(), SqlError> {
    if session.transaction != TransactionState::Idle {
        return Err(SqlError::new(
            "25001",
            "DROP INDEX CONCURRENTLY cannot run inside a transaction block",
        ));
    }
    if names.len() > 1 {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "DROP INDEX CONCURRENTLY does not support dropping multiple objects",
        ));
    }
    if cascade {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "DROP INDEX CONCURRENTLY does not support CASCADE",
        ));
    }
    Ok(())
}

/// `BEGIN` / `START TRANSACTION` / `SET TRANSACTION` with `[NOT] DEFERRABLE` (which
/// sqlparser cannot parse) without it: PostgreSQL's DEFERRABLE only matters to SERIALIZABLE
/// READ ONLY transactions, which helios refuses anyway. None: not such a statement.
fn without_deferrable(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::Token;
    let (tokens, words) = tokens_and_words(sql)?;
    let is = is_word;
    let first = *words.first()?;
    let transaction_start = is(&tokens[first], "begin")
        || is(&tokens[first], "start")
        || (is(&tokens[first], "set")
            && words.get(1).is_some_and(|&i| is(&tokens[i], "transaction")));
    if !transaction_start {
        return None;
    }
    let mut dropped = vec![false; tokens.len()];
    for (n, &i) in words.iter().enumerate() {
        if !is(&tokens[i], "deferrable") {
            continue;
        }
        dropped[i] = true;
        let mut before = n;
        if before > 0 && is(&tokens[words[before - 1]], "not") {
            before -= 1;
            dropped[words[before]] = true;
        }
        // A comma separating it from the mode before (or else after) it goes with it.
        if before > 0 && matches!(tokens[words[before - 1]], Token::Comma) {
            dropped[words[before - 1]] = true;
        } else if let Some(&next) = words.get(n + 1) {
            if matches!(tokens[next], Token::Comma) {
                dropped[next] = true;
            }
        }
    }
    if !dropped.iter().any(|d| *d) {
        return None;
    }
    Some(text_without(&tokens, &dropped))
}

/// A query string that is one two-phase commit statement, as [`TWO_PHASE`] carries it.
fn parse_two_phase(sql: &str) -> Option<Statement> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
        .collect();
    let word = |t: &Token| match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    let [first, second, Token::SingleQuotedString(gid)] = words[..] else {
        return None;
    };
    let command = match (word(first)?.as_str(), word(second)?.as_str()) {
        ("prepare", "transaction") => "prepare",
        ("commit", "prepared") => "commit",
        ("rollback", "prepared") => "rollback",
        _ => return None,
    };
    let text = |v: &str| ast::Expr::Value(ast::Value::SingleQuotedString(v.to_string()).into());
    Some(Statement::Set(ast::Set::SingleAssignment {
        scope: None,
        hivevar: false,
        variable: ast::ObjectName::from(vec![ast::Ident::new(TWO_PHASE)]),
        values: vec![text(command), text(gid)],
    }))
}

/// Two-phase commit is off, as in PostgreSQL by default (`max_prepared_transactions` 0):
/// PREPARE TRANSACTION fails and ends the block rolled back; no prepared transaction
/// exists to COMMIT or ROLLBACK PREPARED.
async fn run_two_phase<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    values: &[ast::Expr],
) -> Result<StatementResult, SqlError> {
    let texts: Vec<String> = values
        .iter()
        .map(|v| set_value_text(v, false))
        .collect::<Result<_, _>>()?;
    let [command, gid] = &texts[..] else {
        return Err(SqlError::new(
            INTERNAL_ERROR,
            "a malformed two-phase statement",
        ));
    };
    let in_block = session.transaction != TransactionState::Idle;
    match command.as_str() {
        "prepare" => {
            if in_block {
                let rollback = Statement::Rollback {
                    chain: false,
                    savepoint: None,
                };
                stmt::run_transaction_control(session, cluster, &rollback).await?;
            }
            Err(SqlError::new("55000", "prepared transactions are disabled")
                .with_hint_text("Set max_prepared_transactions to a nonzero value."))
        }
        _ if in_block => Err(SqlError::new(
            "25001",
            format!(
                "{} PREPARED cannot run inside a transaction block",
                command.to_ascii_uppercase()
            ),
        )),
        _ => Err(SqlError::new(
            UNDEFINED_OBJECT,
            format!("prepared transaction with identifier \"{gid}\" does not exist"),
        )),
    }
}

/// A query string holding SET CONSTRAINTS statements, which sqlparser cannot parse: split at
/// its top-level semicolons, those statements read here and the others parsed one by one
/// (their error positions are then within their own text). None: it holds none.
fn parse_with_set_constraints(sql: &str) -> Option<Result<Vec<Statement>, SqlError>> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    let mut statements: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        match token {
            Token::SemiColon => statements.push(Vec::new()),
            t => statements.last_mut().expect("one at least").push(t),
        }
    }
    let words = |tokens: &[Token]| -> Vec<Token> {
        tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .cloned()
            .collect()
    };
    let is_set_constraints = |tokens: &[Token]| {
        matches!(&words(tokens)[..], [Token::Word(a), Token::Word(b), ..]
            if a.value.eq_ignore_ascii_case("set") && b.value.eq_ignore_ascii_case("constraints"))
    };
    if !statements.iter().any(|s| is_set_constraints(s)) {
        return None;
    }
    let mut parsed = Vec::new();
    let last = statements.len() - 1;
    for (i, tokens) in statements.into_iter().enumerate() {
        if words(&tokens).is_empty() {
            continue;
        }
        if is_set_constraints(&tokens) {
            match set_constraints_statement(&words(&tokens)[2..], i < last) {
                Ok(s) => parsed.push(s),
                Err(e) => return Some(Err(e)),
            }
            continue;
        }
        let text: String = tokens.iter().map(ToString::to_string).collect();
        match parse_plain(&text) {
            Ok(s) => parsed.extend(s),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(parsed))
}

/// `{ ALL | name [, ...] } { DEFERRED | IMMEDIATE }` (the words after SET CONSTRAINTS) as
/// the SET statement [`SET_CONSTRAINTS`] names.
fn set_constraints_statement(
    words: &[sqlparser::tokenizer::Token],
    semicolon: bool,
) -> Result<Statement, SqlError> {
    use sqlparser::tokenizer::Token;
    let syntax = |t: Option<&Token>| match t {
        Some(t) => SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{t}\"")),
        None if semicolon => SqlError::new(SYNTAX_ERROR, "syntax error at or near \";\""),
        None => SqlError::new(SYNTAX_ERROR, "syntax error at end of input"),
    };
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.clone()),
        _ => None,
    };
    let Some((mode, targets)) = words.split_last() else {
        return Err(syntax(None));
    };
    // The mode ends the statement: a last word that is none is followed by what is missing.
    let mode = word(mode)
        .map(|w| w.value.to_ascii_uppercase())
        .filter(|m| m == "DEFERRED" || m == "IMMEDIATE")
        .ok_or_else(|| syntax(None))?;
    let mut values = vec![ast::Expr::Identifier(ast::Ident::new(mode))];
    match targets {
        [] => return Err(syntax(None)),
        [Token::Word(w)] if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("all") => {}
        _ => {
            // name [, name ...], each possibly schema-qualified.
            let mut parts: Vec<ast::Ident> = Vec::new();
            let mut expect_name = true;
            for t in targets {
                match (t, expect_name) {
                    (Token::Word(w), true) => {
                        let value = match w.quote_style {
                            Some(_) => w.value.clone(),
                            None => w.value.to_lowercase(),
                        };
                        parts.push(ast::Ident::new(value));
                        expect_name = false;
                    }
                    (Token::Period, false) => expect_name = true,
                    (Token::Comma, false) => {
                        values.push(ast::Expr::CompoundIdentifier(std::mem::take(&mut parts)));
                        expect_name = true;
                    }
                    (t, _) => return Err(syntax(Some(t))),
                }
            }
            if expect_name {
                return Err(syntax(words.last()));
            }
            values.push(ast::Expr::CompoundIdentifier(parts));
        }
    }
    Ok(Statement::Set(ast::Set::SingleAssignment {
        scope: None,
        hivevar: false,
        variable: ast::ObjectName::from(vec![ast::Ident::new(SET_CONSTRAINTS)]),
        values,
    }))
}

/// Parses the condition of `COPY ... FROM STDIN WHERE condition`: one expression, then
/// only semicolons. Error positions are within `text`.
pub(crate) fn parse_copy_filter(text: &str) -> Result<sqlparser::ast::Expr, SqlError> {
    let mut parser = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(PARSE_DEPTH_MAX)
        .try_with_sql(text)
        .map_err(|e| parse_error(text, e))?;
    let expr = parser.parse_expr().map_err(|e| parse_error(text, e))?;
    while parser.consume_token(&sqlparser::tokenizer::Token::SemiColon) {}
    let next = parser.peek_token();
    if next.token != sqlparser::tokenizer::Token::EOF {
        let e = parser
            .expected::<()>("end of input", next)
            .expect_err("expected() always fails");
        return Err(parse_error(text, e));
    }
    Ok(expr)
}

/// sqlparser's error → PostgreSQL's wording: `syntax error at or near "x"` / `at end of input`.
fn parse_error(sql: &str, e: ParserError) -> SqlError {
    let message = match e {
        ParserError::RecursionLimitExceeded => {
            return SqlError::new(STATEMENT_TOO_COMPLEX, "stack depth limit exceeded");
        }
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
    };
    let (text, position) = match message.rsplit_once(" at Line: ") {
        Some((text, loc)) => {
            let mut parts = loc.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
            let column = parts.next().and_then(|c| c.trim().parse::<u64>().ok());
            let position = match (line, column) {
                (Some(line), Some(column)) => expr::Positions::new(sql)
                    .offset(sqlparser::tokenizer::Location { line, column }),
                _ => None,
            };
            (text.to_string(), position)
        }
        None => (message.clone(), None),
    };
    let end = sql.chars().count() + 1;
    if let Some((_, found)) = text.split_once(", found: ") {
        if found == "EOF" {
            return SqlError::new(SYNTAX_ERROR, "syntax error at end of input").at(Some(end));
        }
        return SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{found}\""))
            .at(position);
    }
    if text.starts_with("Unterminated string literal") {
        let rest: String = position
            .map(|p| sql.chars().skip(p - 1).collect())
            .unwrap_or_default();
        return SqlError::new(
            SYNTAX_ERROR,
            format!("unterminated quoted string at or near \"{rest}\""),
        )
        .at(position);
    }
    SqlError::new(SYNTAX_ERROR, format!("syntax error: {text}")).at(position)
}

async fn execute<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    statement: &Statement,
    params: &stmt::Params,
) -> Result<StatementResult, SqlError> {
    use Statement as S;
    if session.transaction == TransactionState::Failed
        && !matches!(statement, S::Commit { .. } | S::Rollback { .. })
    {
        return Err(SqlError::new(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    match statement {
        S::Query(q) => stmt::run_query(session, cluster, sql, q, params).await,
        S::Explain {
            statement: inner,
            analyze,
            options,
            ..
        } => {
            let analyze = *analyze
                || options.iter().flatten().any(|o| {
                    o.name.value.eq_ignore_ascii_case("analyze")
                        && !matches!(&o.arg, Some(ast::Expr::Value(v)) if matches!(v.value, ast::Value::Boolean(false)))
                });
            explain::run_explain(session, cluster, sql, inner, analyze).await
        }
        S::Insert(insert) => stmt::run_insert(session, cluster, sql, insert, params).await,
        S::Update(update) => stmt::run_update(session, cluster, sql, update, params).await,
        S::Delete(delete) => stmt::run_delete(session, cluster, sql, delete, params).await,
        S::Truncate(t) => {
            let restart = t.identity == Some(ast::TruncateIdentityOption::Restart);
            let cascade = t.cascade == Some(ast::CascadeOption::Cascade);
            stmt::run_truncate(session, cluster, &t.table_names, restart, cascade).await
        }
        S::CreateTable(ct) => stmt::run_create_table(session, cluster, sql, ct).await,
        S::AlterTable(at) => alter::run_alter_table(session, cluster, sql, at).await,
        S::Declare { stmts, .. } => match stmts.as_slice() {
            [declare] if declare.declare_type == Some(ast::DeclareType::Cursor) => {
                cursor::declare(session, cluster, sql, declare, params).await
            }
            _ => Err(not_supported("this DECLARE")),
        },
        S::Fetch {
            name,
            direction,
            into,
            ..
        } => cursor::fetch(session, name, direction, into.as_ref(), params.describe),
        S::Close { cursor } => cursor::close(session, cursor),
        S::AlterIndex { name, operation } => {
            stmt::run_alter_index(session, cluster, name, operation).await
        }
        S::CreateIndex(ci) => stmt::run_create_index(session, cluster, ci).await,
        S::CreateSequence {
            temporary,
            if_not_exists,
            name,
            sequence_options,
        } => {
            stmt::run_create_sequence(
                session,
                cluster,
                name,
                *if_not_exists,
                *temporary,
                sequence_options,
            )
            .await
        }
        S::CreateView(cv) => stmt::run_create_view(session, cluster, sql, cv).await,
        S::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            temporary,
            ..
        } => {
            if *temporary {
                refuse_drop_concurrently(session, names, *cascade)?;
            }
            stmt::run_drop(session, cluster, *object_type, *if_exists, names, *cascade).await
        }
        S::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => {
            let name = plan::split_name(db_name)?.1;
            if *if_not_exists && cluster.catalog().database(&name).is_some() {
                return Ok(StatementResult::Command {
                    tag: "CREATE DATABASE".to_string(),
                    changed_parameters: Vec::new(),
                    notices: vec![format!("database \"{name}\" already exists, skipping")],
                });
            }
            stmt::run_ddl(
                cluster,
                DdlChange::CreateDatabase { name },
                "CREATE DATABASE",
            )
            .await
        }
        S::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            let name = match schema_name {
                ast::SchemaName::Simple(n) => plan::split_name(n)?.1,
                _ => return Err(not_supported("CREATE SCHEMA AUTHORIZATION")),
            };
            stmt::run_ddl(
                cluster,
                DdlChange::CreateSchema {
                    database: session.database().to_string(),
                    name,
                    if_not_exists: *if_not_exists,
                },
                "CREATE SCHEMA",
            )
            .await
        }
        S::Analyze(a) => {
            let tables = match &a.table_name {
                Some(name) => vec![object_name(name).to_lowercase()],
                None => Vec::new(),
            };
            run_maintenance(session, cluster, "ANALYZE", &tables, true).await
        }
        S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Savepoint { .. }
        | S::ReleaseSavepoint { .. } => {
            stmt::run_transaction_control(session, cluster, statement).await
        }
        S::Set(ast::Set::SetTransaction {
            modes,
            snapshot: None,
            session: characteristics,
        }) => stmt::run_set_transaction(session, cluster, modes, *characteristics),
        S::Set(ast::Set::SingleAssignment {
            variable, values, ..
        }) if ["transaction_isolation", "transaction_read_only"]
            .contains(&object_name(variable).as_str()) =>
        {
            let mode = transaction_mode_setting(&object_name(variable), values)?;
            if session.transaction == TransactionState::Idle {
                // The implicit transaction it would apply to ends with it, as in PostgreSQL.
                return Ok(set_done(Vec::new()));
            }
            stmt::run_set_transaction(session, cluster, &[mode], false)
        }
        S::Set(ast::Set::SingleAssignment {
            variable, values, ..
        }) if object_name(variable) == TWO_PHASE => run_two_phase(session, cluster, values).await,
        S::Set(ast::Set::SingleAssignment {
            variable, values, ..
        }) if object_name(variable) == SET_CONSTRAINTS => {
            fkey::run_set_constraints(session, cluster, values).await
        }
        S::Set(set) => run_set(session, set),
        S::ShowVariable { variable } => run_show(session, variable),
        S::Reset(r) => {
            let changed_parameters = match &r.reset {
                ast::Reset::ALL => {
                    let changed = session.reset_all();
                    session.settings_changed_all();
                    changed
                }
                ast::Reset::ConfigurationParameter(name) => {
                    let name = object_name(name);
                    let changed = session.reset_parameter(&name)?.into_iter().collect();
                    session.settings_changed(&name, false);
                    changed
                }
                ast::Reset::SessionAuthorization => {
                    return Err(not_supported("RESET SESSION AUTHORIZATION"))
                }
            };
            Ok(StatementResult::Command {
                tag: "RESET".to_string(),
                changed_parameters,
                notices: Vec::new(),
            })
        }
        other => Err(not_supported(statement_kind(other))),
    }
}

/// sqlparser cannot parse PostgreSQL's VACUUM (pgbench sends `vacuum analyze t`), so a query
/// string that is one VACUUM is recognized here: `VACUUM [options] [table [, ...]]`, options
/// being FULL, FREEZE, VERBOSE, ANALYZE or a parenthesized list. Returns the table names
/// (lower-cased unless quoted), or None when the string is not a VACUUM.
/// Whether a VACUUM statement asks for ANALYZE too (`VACUUM ANALYZE`, `VACUUM (ANALYZE)`).
fn vacuum_analyzes(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let options = match lower.find('(') {
        Some(open) => &lower[..lower[open..].find(')').map_or(lower.len(), |c| open + c)],
        None => &lower[..],
    };
    options
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .take_while(|w| {
            w.is_empty()
                || [
                    "vacuum", "full", "freeze", "verbose", "analyze", "analyse", "true", "on",
                ]
                .contains(w)
        })
        .any(|w| w == "analyze" || w == "analyse")
}

fn vacuum_tables(sql: &str) -> Option<Vec<String>> {
    let body = sql.trim().trim_end_matches(';').trim();
    let first = body.split_ascii_whitespace().next()?;
    if !first.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let mut rest = body[first.len()..].trim_start();
    if rest.starts_with('(') {
        let close = rest.find(')')?;
        rest = rest[close + 1..].trim_start();
    }
    loop {
        let word = rest.split_ascii_whitespace().next().unwrap_or("");
        let is_option = ["full", "freeze", "verbose", "analyze", "analyse"]
            .iter()
            .any(|o| word.eq_ignore_ascii_case(o));
        if !is_option {
            break;
        }
        rest = rest[word.len()..].trim_start();
    }
    let mut tables = Vec::new();
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => part.to_lowercase(),
        };
        tables.push(name);
    }
    Some(tables)
}

/// VACUUM and ANALYZE. helios reclaims space by LSM compaction, continuously, so VACUUM has
/// nothing to do beyond checking that the tables named exist (as PostgreSQL does, with
/// 42P01); ANALYZE (and VACUUM ANALYZE) gathers each table's statistics (`analyze.rs`), all
/// of the database's tables when none is named.
async fn run_maintenance<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    tag: &str,
    tables: &[String],
    analyze: bool,
) -> Result<StatementResult, SqlError> {
    if tag == "VACUUM" && session.transaction != TransactionState::Idle {
        return Err(SqlError::new(
            "25001",
            "VACUUM cannot run inside a transaction block",
        ));
    }
    let catalog = cluster.catalog();
    let mut found = Vec::new();
    for name in tables {
        let (schema, table) = match name.split_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, name.as_str()),
        };
        let path = session.search_path();
        let schema = catalog.resolve_schema(session.database(), schema, &path, table);
        match schema.and_then(|s| catalog.table(session.database(), Some(s), table)) {
            Some(t) => found.push(t.clone()),
            None => {
                return Err(SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                ))
            }
        }
    }
    if analyze {
        if tables.is_empty() {
            if let Some(db) = catalog.database(session.database()) {
                found.extend(db.schemas.values().flat_map(|s| s.tables.values().cloned()));
            }
        }
        for table in &found {
            analyze::analyze_table(session, cluster, table).await?;
        }
    }
    Ok(StatementResult::Command {
        tag: tag.to_string(),
        changed_parameters: Vec::new(),
        notices: Vec::new(),
    })
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported yet"),
    )
}

/// The leading keywords of a statement, for messages: "CREATE TABLE", "INSERT", "BEGIN".
fn statement_kind(s: &Statement) -> String {
    const OBJECT_WORDS: &[&str] = &[
        "OR",
        "REPLACE",
        "TEMPORARY",
        "TEMP",
        "UNLOGGED",
        "UNIQUE",
        "MATERIALIZED",
        "TABLE",
        "INDEX",
        "VIEW",
        "SCHEMA",
        "DATABASE",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "ROLE",
        "USER",
        "TYPE",
        "EXTENSION",
        "TRIGGER",
    ];
    if let Statement::StartTransaction { begin: true, .. } = s {
        return "BEGIN".to_string();
    }
    let text = s.to_string();
    let mut words = text.split_whitespace().map(|w| w.to_ascii_uppercase());
    let first = words.next().unwrap_or_default();
    let mut kind = first.clone();
    if ["CREATE", "DROP", "ALTER"].contains(&first.as_str()) {
        for w in words.take_while(|w| OBJECT_WORDS.contains(&w.as_str())) {
            kind.push(' ');
            kind.push_str(&w);
        }
    }
    kind
}

fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn column(name: String, ty: Ty, typmod: i32) -> Column {
    // Unknown-typed outputs (string literals, bare NULL) are resolved to text.
    let ty = if ty == Ty::Unknown { Ty::Text } else { ty };
    Column {
        name,
        type_oid: ty.oid(),
        type_size: ty.size(),
        type_modifier: typmod,
    }
}

/// An output column left of type unknown ([`plan::Planner::keep_unknown`]); never sent to a
/// client as such.
pub(crate) fn unresolved_column(name: String) -> Column {
    Column {
        name,
        type_oid: Ty::Unknown.oid(),
        type_size: Ty::Unknown.size(),
        type_modifier: -1,
    }
}

pub(crate) fn alias_name(alias: &ast::Ident) -> String {
    if alias.quote_style.is_some() {
        alias.value.clone()
    } else {
        alias.value.to_lowercase()
    }
}

/// The text a SET value stands for, as PostgreSQL flattens it.
fn set_value_text(e: &ast::Expr, list: bool) -> Result<String, SqlError> {
    Ok(match e {
        ast::Expr::Identifier(id) if list => quote_ident(&alias_name(id)),
        ast::Expr::Identifier(id) => alias_name(id),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) if list => {
                quote_ident(s)
            }
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => s.clone(),
            ast::Value::DollarQuotedString(d) => d.value.clone(),
            ast::Value::Number(n, _) => n.clone(),
            ast::Value::Boolean(b) => b.to_string(),
            other => return Err(not_supported(format!("SET value {other}"))),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                format!("-{}", v.value)
            }
            _ => {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    format!("syntax error at or near \"{e}\""),
                ))
            }
        },
        other => {
            return Err(SqlError::new(
                SYNTAX_ERROR,
                format!("syntax error at or near \"{other}\""),
            ))
        }
    })
}

/// PostgreSQL 15's keywords that are not unreserved (`pg_get_keywords()` with catcode other
/// than `U`), sorted: `quote_ident` quotes them, as PostgreSQL's `quote_identifier` does.
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// `quote_identifier`: bare if lower-case letters, digits and underscores (not leading digit)
/// and not a keyword PostgreSQL quotes.
pub(crate) fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && QUOTED_KEYWORDS.binary_search(&s).is_err();
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// `SET transaction_isolation = ...` / `SET transaction_read_only = ...`: the transaction
/// mode they stand for (SET TRANSACTION's).
fn transaction_mode_setting(
    name: &str,
    values: &[ast::Expr],
) -> Result<ast::TransactionMode, SqlError> {
    let [value] = values else {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("SET {name} takes only one argument"),
        ));
    };
    let text = set_value_text(value, false)?.to_ascii_lowercase();
    let invalid = || {
        SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{name}\": \"{text}\""),
        )
    };
    use ast::TransactionIsolationLevel as L;
    Ok(match name {
        "transaction_isolation" => ast::TransactionMode::IsolationLevel(match text.as_str() {
            "read uncommitted" => L::ReadUncommitted,
            "read committed" => L::ReadCommitted,
            "repeatable read" => L::RepeatableRead,
            "serializable" => L::Serializable,
            _ => {
                return Err(invalid().with_hint_text(
                    "Available values: serializable, repeatable read, read committed, read uncommitted.",
                ))
            }
        }),
        _ => ast::TransactionMode::AccessMode(match session::parse_bool(&text) {
            Some(true) => ast::TransactionAccessMode::ReadOnly,
            Some(false) => ast::TransactionAccessMode::ReadWrite,
            None => {
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!("parameter \"{name}\" requires a Boolean value"),
                ))
            }
        }),
    })
}

/// SET [SESSION | LOCAL]: in a transaction block ROLLBACK undoes it, and the block's end
/// undoes SET LOCAL ([`Session::settings_end`]), as in PostgreSQL.
fn run_set(session: &mut Session, set: &ast::Set) -> Result<StatementResult, SqlError> {
    let local = matches!(
        set,
        ast::Set::SingleAssignment {
            scope: Some(ast::ContextModifier::Local),
            ..
        } | ast::Set::SetTimeZone { local: true, .. }
    );
    if local && !session.in_settings_block() {
        let name = match set {
            ast::Set::SingleAssignment { variable, .. } => object_name(variable),
            _ => "TimeZone".to_string(),
        };
        if session.canonical_name(&name).is_none() && !name.contains('.') {
            return Err(session::unrecognized(&name));
        }
        session.define_placeholder(&name);
        // Outside a block it would end with its statement: no effect, as PostgreSQL warns.
        return Ok(StatementResult::Command {
            tag: "SET".to_string(),
            changed_parameters: Vec::new(),
            notices: vec!["WARNING: SET LOCAL can only be used in transaction blocks".to_string()],
        });
    }
    let (name, result) = set_parameter_statement(session, set)?;
    session.settings_changed(&name, local);
    Ok(result)
}

/// Applies a SET statement's change; returns the parameter's name and the result.
fn set_parameter_statement(
    session: &mut Session,
    set: &ast::Set,
) -> Result<(String, StatementResult), SqlError> {
    let (name, value) = match set {
        ast::Set::SingleAssignment {
            hivevar: false,
            variable,
            values,
            ..
        } => {
            let name = object_name(variable);
            let is_default = matches!(values.as_slice(), [ast::Expr::Identifier(id)] if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
            if is_default {
                let changed = session.reset_parameter(&name)?.into_iter().collect();
                return Ok((name, set_done(changed)));
            }
            let list = session.is_list(&name);
            if values.len() > 1 && !list {
                if session.canonical_name(&name).is_none() && !name.contains('.') {
                    return Err(session::unrecognized(&name));
                }
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!("SET {name} takes only one argument"),
                ));
            }
            let parts = values
                .iter()
                .map(|v| set_value_text(v, list && !name.eq_ignore_ascii_case("datestyle")))
                .collect::<Result<Vec<_>, _>>()?;
            (name, parts.join(", "))
        }
        ast::Set::SetTimeZone { value, .. } => {
            ("TimeZone".to_string(), set_value_text(value, false)?)
        }
        ast::Set::SetNames {
            charset_name,
            collation_name: None,
        } => ("client_encoding".to_string(), charset_name.value.clone()),
        other => {
            let words: Vec<String> = other
                .to_string()
                .split_whitespace()
                .take(3)
                .map(str::to_string)
                .collect();
            return Err(not_supported(words.join(" ")));
        }
    };
    let changed = session.set_parameter(&name, &value)?.into_iter().collect();
    Ok((name, set_done(changed)))
}

fn set_done(changed_parameters: Vec<ChangedParameter>) -> StatementResult {
    StatementResult::Command {
        tag: "SET".to_string(),
        changed_parameters,
        notices: Vec::new(),
    }
}

fn text_column(name: &str) -> Column {
    column(name.to_string(), Ty::Text, TYPMOD_NONE)
}

fn show_columns(session: &Session, variable: &[ast::Ident]) -> Result<Vec<Column>, SqlError> {
    match run_show(session, variable)? {
        StatementResult::Rows { columns, .. } => Ok(columns),
        _ => Ok(Vec::new()),
    }
}

fn run_show(session: &Session, variable: &[ast::Ident]) -> Result<StatementResult, SqlError> {
    let name = variable
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(".");
    // sqlparser splits "SHOW TIME ZONE" / "SHOW TRANSACTION ISOLATION LEVEL" into words.
    let name = match name.to_ascii_lowercase().as_str() {
        "time.zone" => "TimeZone".to_string(),
        "transaction.isolation.level" => "transaction_isolation".to_string(),
        _ => name,
    };
    let tag = "SHOW".to_string();
    if name.eq_ignore_ascii_case("all") {
        let columns = vec![
            text_column("name"),
            text_column("setting"),
            text_column("description"),
        ];
        let rows = session
            .all_parameters()
            .into_iter()
            .map(|(n, v)| vec![Some(n), Some(v), Some(String::new())])
            .collect();
        return Ok(StatementResult::Rows { columns, rows, tag });
    }
    let canonical = session
        .canonical_name(&name)
        .ok_or_else(|| session::unrecognized(&name))?;
    let value = if canonical == "transaction_isolation" {
        match session.isolation {
            Some(level) => level.name().to_string(),
            None => session
                .parameter("default_transaction_isolation")
                .unwrap_or("read committed")
                .to_string(),
        }
    } else if canonical == "transaction_read_only" {
        let read_only = match session.transaction {
            TransactionState::Idle => {
                session.parameter("default_transaction_read_only") == Some("on")
            }
            _ => session.read_only,
        };
        if read_only { "on" } else { "off" }.to_string()
    } else {
        session
            .parameter(&canonical)
            .unwrap_or_default()
            .to_string()
    };
    Ok(StatementResult::Rows {
        columns: vec![text_column(&canonical)],
        rows: vec![vec![Some(value)]],
        tag,
    })
}
