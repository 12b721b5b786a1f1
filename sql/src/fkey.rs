//! FOREIGN KEY constraints: their definition (CREATE TABLE, ALTER TABLE ADD), the check
//! that a referencing row's key exists in the referenced table, and what a referenced
//! row's DELETE or key UPDATE does to the rows referencing it (NO ACTION, RESTRICT,
//! CASCADE, SET NULL, SET DEFAULT).
//!
//! The checks run at the end of each statement, as PostgreSQL's RI triggers do by default,
//! inside the statement's transaction: they read its own writes (a statement may insert a
//! row and the row it references), and they take the locks PostgreSQL's would. A
//! referencing row's check locks the referenced row FOR KEY SHARE, so the row cannot be
//! deleted or have its key changed before the transaction ends (an UPDATE of its other
//! columns goes ahead: `LockMode::NoKeyExclusive`); a referenced row's DELETE holds its row's
//! write lock, so a new reference to it waits and then finds it gone.
//! Constraints declared INITIALLY DEFERRED check the referencing rows' keys at COMMIT
//! instead (the keys as written; a row deleted later in the transaction is still checked).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use sqlparser::ast;

use crate::catalog::{Catalog, FkAction, ForeignKeyDef, Table};
use crate::cluster::{Cluster, ModifySpec, RowOp};
use crate::error::*;
use crate::exec::Row;
use crate::expr::{self, Bound, Env};
use crate::plan::{self, Fetch};
use crate::rowcodec;
use crate::session::Session;
use crate::stmt;
use crate::txn::{LockMode, RowLock};
use crate::types::{self, Datum, SqlType};

pub(crate) const FOREIGN_KEY_VIOLATION: &str = "23503";
const INVALID_FOREIGN_KEY: &str = "42830";

/// Referenced-table lookups a statement has in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 64;

/// How deep ON DELETE / ON UPDATE actions may cascade (a chain of tables, or a table
/// referencing itself, one level per generation of rows).
const CASCADE_DEPTH_MAX: usize = 64;

/// A FOREIGN KEY clause made into a constraint of `table` (whose columns `columns` are the
/// referencing ones). `own_unique` lists the column sets of `table`'s primary key and UNIQUE
/// constraints when it is being created (a table may reference itself); `taken` says
/// whether a constraint name is in use on the table.
pub(crate) fn define(
    session: &Session,
    catalog: &Catalog,
    table: &Table,
    own_unique: &[Vec<usize>],
    fk: &ast::ForeignKeyConstraint,
    columns: Vec<usize>,
    taken: &dyn Fn(&str) -> bool,
) -> Result<ForeignKeyDef, SqlError> {
    if fk.match_kind == Some(ast::ConstraintReferenceMatchKind::Partial) {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "MATCH PARTIAL not yet implemented",
        ));
    }
    let (deferrable, initially_deferred) = deferral(fk.characteristics.as_ref())?;
    let (schema, name) = plan::split_name(&fk.foreign_table)?;
    let path = session.search_path();
    let db = session.database();
    let resolved = catalog.resolve_schema(db, schema.as_deref(), &path, &name);
    let own = name == table.name && resolved.is_none_or(|s| s == table.schema);
    let parent: Table = if own {
        table.clone()
    } else {
        catalog
            .table(
                db,
                Some(resolved.unwrap_or(crate::catalog::DEFAULT_SCHEMA)),
                &name,
            )
            .map(|t| (**t).clone())
            .ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                )
            })?
    };
    let ref_positions: Vec<usize> = if fk.referred_columns.is_empty() {
        if parent.primary_key.is_empty() {
            return Err(SqlError::new(
                INVALID_FOREIGN_KEY,
                format!(
                    "there is no primary key for referenced table \"{}\"",
                    parent.name
                ),
            ));
        }
        parent.primary_key.clone()
    } else {
        let mut positions = Vec::with_capacity(fk.referred_columns.len());
        for c in &fk.referred_columns {
            let c = plan::ident(c);
            positions.push(parent.column_index(&c).ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_COLUMN,
                    format!("column \"{c}\" referenced in foreign key constraint does not exist"),
                )
            })?);
        }
        positions
    };
    let as_set = |c: &[usize]| -> Vec<usize> {
        let mut c = c.to_vec();
        c.sort_unstable();
        c.dedup();
        c
    };
    let wanted = as_set(&ref_positions);
    let unique_sets: Vec<Vec<usize>> = if own {
        own_unique.iter().map(|c| as_set(c)).collect()
    } else {
        let mut sets = vec![as_set(&parent.primary_key)];
        sets.extend(
            crate::index::specs_for(catalog, &parent)
                .into_iter()
                .filter(|i| i.unique)
                .map(|i| as_set(&i.columns)),
        );
        sets
    };
    if wanted.len() != ref_positions.len() || !unique_sets.contains(&wanted) {
        return Err(SqlError::new(
            INVALID_FOREIGN_KEY,
            format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                parent.name
            ),
        ));
    }
    if ref_positions.len() != columns.len() {
        return Err(SqlError::new(
            INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    let constraint = match &fk.name {
        Some(n) => plan::ident(n),
        None => default_name(table, &columns, taken),
    };
    for (&c, &p) in columns.iter().zip(&ref_positions) {
        let (ct, pt) = (table.columns[c].ty, parent.columns[p].ty);
        if !comparable(ct, pt) {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!("foreign key constraint \"{constraint}\" cannot be implemented"),
            )
            .with_detail(format!(
                "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                table.columns[c].name,
                parent.columns[p].name,
                ct.sql_name(),
                pt.sql_name()
            )));
        }
    }
    Ok(ForeignKeyDef {
        name: constraint,
        columns,
        ref_schema: parent.schema.clone(),
        ref_table: parent.name.clone(),
        ref_columns: ref_positions
            .iter()
            .map(|&p| parent.columns[p].name.clone())
            .collect(),
        on_delete: action(fk.on_delete),
        on_update: action(fk.on_update),
        match_full: fk.match_kind == Some(ast::ConstraintReferenceMatchKind::Full),
        deferrable,
        initially_deferred,
        not_valid: false,
    })
}

/// (DEFERRABLE, INITIALLY DEFERRED) of a constraint's characteristics.
fn deferral(c: Option<&ast::ConstraintCharacteristics>) -> Result<(bool, bool), SqlError> {
    let Some(c) = c else {
        return Ok((false, false));
    };
    if c.enforced == Some(false) {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "NOT ENFORCED foreign key constraints are not supported",
        ));
    }
    let deferred = c.initially == Some(ast::DeferrableInitial::Deferred);
    match c.deferrable {
        Some(false) if deferred => Err(SqlError::new(
            SYNTAX_ERROR,
            "constraint declared INITIALLY DEFERRED must be DEFERRABLE",
        )),
        Some(d) => Ok((d, deferred)),
        None => Ok((deferred, deferred)),
    }
}

fn action(a: Option<ast::ReferentialAction>) -> FkAction {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => FkAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => FkAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => FkAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => FkAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => FkAction::SetDefault,
    }
}

/// Whether values of the two types can be compared for equality without a cast the user
/// must write (PostgreSQL requires an equality operator between them).
fn comparable(a: SqlType, b: SqlType) -> bool {
    a == b
        || (a.numeric_rank().is_some() && b.numeric_rank().is_some())
        || (a.is_string() && b.is_string())
        || expr::datetime_cast_exists(a, b) && expr::datetime_cast_exists(b, a)
}

/// PostgreSQL's name for an unnamed foreign key: `table_col1_col2_fkey`, numbered when taken.
fn default_name(table: &Table, columns: &[usize], taken: &dyn Fn(&str) -> bool) -> String {
    let stem = stmt::generated_name(table, columns, "fkey");
    std::iter::once(stem.clone())
        .chain((1..).map(|n| format!("{stem}{n}")))
        .find(|n| !taken(n))
        .expect("an unbounded sequence of names has a free one")
}

/// The referenced table of `fk` as the catalog has it now.
fn referenced_table(
    catalog: &Catalog,
    database: &str,
    fk: &ForeignKeyDef,
) -> Result<Arc<Table>, SqlError> {
    catalog
        .table(database, Some(&fk.ref_schema), &fk.ref_table)
        .cloned()
        .ok_or_else(|| {
            SqlError::new(
                UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", fk.ref_table),
            )
        })
}

fn positions_in(table: &Table, names: &[String]) -> Result<Vec<usize>, SqlError> {
    names
        .iter()
        .map(|n| {
            table.column_index(n).ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_COLUMN,
                    format!(
                        "column \"{n}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })
        })
        .collect()
}

/// `Key (a, b)=(1, 2)`, as PostgreSQL's details write a key.
fn key_text(table: &Table, columns: &[usize], values: &[Datum], env: &Env) -> String {
    crate::index::key_text(table, columns, values, &env.style)
}

/// The filter `columns = values` over `table`, each value converted to its column's type
/// (None: a value no row of that type can equal, such as 3000000000 for an integer).
fn equality_filter(
    table: &Table,
    columns: &[usize],
    values: &[Datum],
    from: &[SqlType],
    env: &Env,
) -> Option<Bound> {
    let mut parts = Vec::with_capacity(columns.len());
    for ((&c, v), &ty) in columns.iter().zip(values).zip(from) {
        let column = &table.columns[c];
        let v = if ty == column.ty {
            v.clone()
        } else {
            types::cast(
                v.clone(),
                ty,
                column.ty,
                crate::types::TYPMOD_NONE,
                &env.style,
            )
            .ok()?
        };
        parts.push(expr::cmp_eq(
            Bound::column(c, column.ty, column.typmod),
            Bound::constant(v, column.ty),
        ));
    }
    Bound::conjunction(parts)
}

/// The rows of `table` whose `columns` equal `values`, with their keys: the newest
/// committed ones (and the transaction's own) locked in `lock` mode (None: not locked).
async fn rows_with_key<C: Cluster>(
    cluster: &C,
    env: &Env,
    table: &Arc<Table>,
    columns: &[usize],
    values: &[Datum],
    from: &[SqlType],
    lock: Option<LockMode>,
) -> Result<(Vec<Row>, Vec<Bytes>), SqlError> {
    read_key(cluster, env, table, columns, values, from, lock, true).await
}

/// Whether rows of `table` whose `columns` equal `values` are in the transaction's own
/// view (its REPEATABLE READ snapshot and its writes).
async fn seen_at_snapshot<C: Cluster>(
    cluster: &C,
    env: &Env,
    table: &Arc<Table>,
    columns: &[usize],
    values: &[Datum],
    from: &[SqlType],
) -> Result<bool, SqlError> {
    let (rows, _) = read_key(cluster, env, table, columns, values, from, None, false).await?;
    Ok(!rows.is_empty())
}

/// The rows of `table` whose `columns` equal `values` ([`Fetch::newest`] or at the
/// transaction's view), locked in `lock` mode.
#[allow(clippy::too_many_arguments)]
async fn read_key<C: Cluster>(
    cluster: &C,
    env: &Env,
    table: &Arc<Table>,
    columns: &[usize],
    values: &[Datum],
    from: &[SqlType],
    lock: Option<LockMode>,
    newest: bool,
) -> Result<(Vec<Row>, Vec<Bytes>), SqlError> {
    let Some(filter) = equality_filter(table, columns, values, from, env) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut f = Fetch::new(table.clone(), Some(filter));
    f.newest = newest;
    f.lock = lock.map(|mode| RowLock {
        mode,
        nowait: false,
        skip_locked: false,
    });
    let scanned = crate::dist::fetch(cluster, &f, &[], env, true).await?;
    Ok((scanned.rows, scanned.keys))
}

/// A REPEATABLE READ transaction's reference to a row deleted since its snapshot: 40001,
/// as PostgreSQL's check raises it (its FOR KEY SHARE finds the row gone), so that the
/// client retries.
fn serialization_failure() -> SqlError {
    SqlError::new(
        crate::txn::SERIALIZATION_FAILURE,
        "could not serialize access due to concurrent update",
    )
}

/// The distinct keys of `fk` in `rows` that must be found in the referenced table: those
/// with no NULL (MATCH SIMPLE), or — MATCH FULL — with no NULL at all, a key mixing NULL and
/// non-NULL values being a violation itself.
fn keys_to_check(
    table: &Table,
    fk: &ForeignKeyDef,
    rows: &[Row],
) -> Result<Vec<Vec<Datum>>, SqlError> {
    let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
    let mut keys = Vec::new();
    let plain = types::Style::default();
    for row in rows {
        let key: Vec<Datum> = fk
            .columns
            .iter()
            .map(|&c| row.get(c).cloned().unwrap_or(Datum::Null))
            .collect();
        let nulls = key.iter().filter(|v| v.is_null()).count();
        if nulls > 0 {
            if fk.match_full && nulls < key.len() {
                return Err(SqlError::new(
                    FOREIGN_KEY_VIOLATION,
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                        table.name, fk.name
                    ),
                )
                .with_detail("MATCH FULL does not allow mixing of null and nonnull key values.")
                .on_constraint(table, Some(&fk.name)));
            }
            continue;
        }
        let text: Vec<Option<String>> = key.iter().map(|v| types::output(v, &plain)).collect();
        if seen.insert(text) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Checks that every referencing key `rows` of `table` hold has its referenced row, for
/// the foreign keys over any of `changed` columns (None: all of them); locks the referenced
/// rows FOR KEY SHARE. Deferred constraints in a transaction block are queued for
/// COMMIT instead ([`check_deferred`]).
pub(crate) async fn check_references<C: Cluster>(
    cluster: &C,
    database: &str,
    env: &Env,
    table: &Table,
    rows: &[Row],
    changed: Option<&[usize]>,
) -> Result<(), SqlError> {
    if table.foreign_keys.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let mut checks = Vec::new();
    for fk in &table.foreign_keys {
        if changed.is_some_and(|cols| !fk.columns.iter().any(|c| cols.contains(c))) {
            continue;
        }
        let keys = keys_to_check(table, fk, rows)?;
        if keys.is_empty() {
            continue;
        }
        let deferred = fk.deferrable
            && crate::txn::constraint_deferred(cluster, table.id, &fk.name, fk.initially_deferred);
        if deferred && crate::txn::defer_check(cluster, table.id, &fk.name, &keys) {
            continue;
        }
        checks.push((fk, keys));
    }
    check_keys_exist(cluster, database, env, table, checks, true).await
}

/// Checks that each key (values of the foreign key's columns of `table`) has a referenced
/// row: the lookups of every foreign key at once, so that a row with several references
/// waits for one round of them.
async fn check_keys_exist<C: Cluster>(
    cluster: &C,
    database: &str,
    env: &Env,
    table: &Table,
    checks: Vec<(&ForeignKeyDef, Vec<Vec<Datum>>)>,
    lock: bool,
) -> Result<(), SqlError> {
    if checks.is_empty() {
        return Ok(());
    }
    let catalog = cluster.catalog();
    let lock = lock.then_some(LockMode::KeyShare);
    // Per foreign key: its referenced table, columns there, and the referencing types.
    let mut targets = Vec::with_capacity(checks.len());
    for (fk, _) in &checks {
        let parent = referenced_table(&catalog, database, fk)?;
        let ref_positions = positions_in(&parent, &fk.ref_columns)?;
        let from: Vec<SqlType> = fk.columns.iter().map(|&c| table.columns[c].ty).collect();
        targets.push((parent, ref_positions, from));
    }
    let lookups: Vec<(usize, &Vec<Datum>)> = checks
        .iter()
        .enumerate()
        .flat_map(|(i, (_, keys))| keys.iter().map(move |k| (i, k)))
        .collect();
    // A referenced row this transaction wrote (and still has) exists under its write lock.
    let lookups: Vec<(usize, &Vec<Datum>)> = lookups
        .into_iter()
        .filter(|&(i, key)| {
            let (parent, ref_positions, from) = &targets[i];
            lock.is_none()
                || !written_by_transaction(cluster, env, parent, ref_positions, key, from)
        })
        .collect();
    for chunk in lookups.chunks(LOOKUPS_IN_FLIGHT) {
        let found = futures_util::future::join_all(chunk.iter().map(|&(i, key)| {
            let (parent, ref_positions, from) = &targets[i];
            rows_with_key(cluster, env, parent, ref_positions, key, from, lock)
        }))
        .await;
        for (&(i, key), found) in chunk.iter().zip(found) {
            if found?.0.is_empty() {
                let fk = checks[i].0;
                let (parent, ref_positions, from) = &targets[i];
                let repeatable = lock.is_some() && !crate::txn::reads_newest(cluster);
                if repeatable
                    && seen_at_snapshot(cluster, env, parent, ref_positions, key, from).await?
                {
                    // Deleted since the snapshot, which still sees it.
                    return Err(serialization_failure());
                }
                return Err(SqlError::new(
                    FOREIGN_KEY_VIOLATION,
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                        table.name, fk.name
                    ),
                )
                .with_detail(format!(
                    "{} is not present in table \"{}\".",
                    key_text(table, &fk.columns, key, env),
                    targets[i].0.name
                ))
                .on_constraint(table, Some(&fk.name)));
            }
        }
    }
    Ok(())
}

/// Whether `key` (of types `from`) in `columns` of `parent` is the primary key of a row the
/// transaction wrote and still has (`txn::TxnState::written_rows`).
fn written_by_transaction<C: Cluster>(
    cluster: &C,
    env: &Env,
    parent: &Table,
    columns: &[usize],
    key: &[Datum],
    from: &[SqlType],
) -> bool {
    let mut sorted = columns.to_vec();
    sorted.sort_unstable();
    let mut pk = parent.primary_key.clone();
    pk.sort_unstable();
    if pk.is_empty() || sorted != pk {
        return false;
    }
    let mut row = vec![Datum::Null; parent.columns.len()];
    for ((&c, v), &ty) in columns.iter().zip(key).zip(from) {
        let column = &parent.columns[c];
        row[c] = if ty == column.ty {
            v.clone()
        } else {
            match types::cast(
                v.clone(),
                ty,
                column.ty,
                crate::types::TYPMOD_NONE,
                &env.style,
            ) {
                Ok(v) => v,
                Err(_) => return false,
            }
        };
    }
    match stmt::key_bytes_of(parent, &row) {
        Ok(bytes) => crate::txn::wrote_row(cluster, &rowcodec::row_key(parent.id, &bytes)),
        Err(_) => false,
    }
}

/// COMMIT of a block with deferred foreign key checks: runs them (the referenced rows must
/// exist now).
pub(crate) async fn check_deferred<C: Cluster>(
    cluster: &C,
    session: &Session,
) -> Result<(), SqlError> {
    run_deferred(cluster, session, &|_, _| true).await
}

/// Runs the queued deferred checks of the constraints `which` picks (by table id, name).
async fn run_deferred<C: Cluster>(
    cluster: &C,
    session: &Session,
    which: &dyn Fn(u32, &str) -> bool,
) -> Result<(), SqlError> {
    let queued = crate::txn::take_deferred_checks(cluster, which);
    if queued.is_empty() {
        return Ok(());
    }
    let catalog = cluster.catalog();
    let env = Env::of(session);
    for (table_id, fk_name, keys) in queued {
        let Some(table) = table_by_id(&catalog, session.database(), table_id) else {
            continue; // dropped since: its rows are gone
        };
        let Some(fk) = table.foreign_keys.iter().find(|f| f.name == fk_name) else {
            continue; // the constraint was dropped since
        };
        let checked = check_keys_exist(
            cluster,
            session.database(),
            &env,
            &table,
            vec![(fk, keys.clone())],
            true,
        )
        .await;
        match checked {
            Err(e) if e.sqlstate == FOREIGN_KEY_VIOLATION => {
                // Keys no row holds any more (deleted or changed later in the block) need no
                // referenced row, as PostgreSQL's check skips row versions that are gone.
                let held = keys_still_held(cluster, &env, &table, fk, keys).await?;
                let checks = vec![(fk, held)];
                check_keys_exist(cluster, session.database(), &env, &table, checks, true).await?;
            }
            other => other?,
        }
    }
    Ok(())
}

/// The keys of `fk` some row of `table` (the newest committed ones, or the transaction's
/// own) still holds.
async fn keys_still_held<C: Cluster>(
    cluster: &C,
    env: &Env,
    table: &Arc<Table>,
    fk: &ForeignKeyDef,
    keys: Vec<Vec<Datum>>,
) -> Result<Vec<Vec<Datum>>, SqlError> {
    let types: Vec<SqlType> = fk.columns.iter().map(|&c| table.columns[c].ty).collect();
    let mut held = Vec::new();
    for key in keys {
        let (rows, _) = rows_with_key(cluster, env, table, &fk.columns, &key, &types, None).await?;
        if !rows.is_empty() {
            held.push(key);
        }
    }
    Ok(held)
}

fn table_by_id(catalog: &Catalog, database: &str, id: u32) -> Option<Arc<Table>> {
    catalog
        .database(database)?
        .schemas
        .values()
        .flat_map(|s| s.tables.values())
        .find(|t| t.id == id)
        .cloned()
}

/// ALTER TABLE ADD FOREIGN KEY: every row of `table` already there must have its
/// referenced row (the table's writes are frozen meanwhile; the statement runs outside a
/// transaction, so nothing is locked).
pub(crate) async fn validate_existing<C: Cluster>(
    cluster: &C,
    session: &Session,
    env: &Env,
    table: &Table,
    rows: &[Row],
    fk: &ForeignKeyDef,
) -> Result<(), SqlError> {
    let keys = keys_to_check(table, fk, rows)?;
    check_keys_exist(
        cluster,
        session.database(),
        env,
        table,
        vec![(fk, keys)],
        false,
    )
    .await
}

/// Rows of `table` were deleted (`new` None) or updated (`new`: each old row's new
/// version): the rows referencing a key that is gone get their constraint's action.
pub(crate) async fn referenced_rows_changed<C: Cluster>(
    cluster: &C,
    session: &Session,
    env: &Env,
    table: &Table,
    old: &[Row],
    new: Option<&[Row]>,
) -> Result<(), SqlError> {
    Box::pin(rows_changed_at(cluster, session, env, table, old, new, 0)).await
}

/// The foreign keys referencing `table`, with the tables holding them.
pub(crate) fn referencing(
    catalog: &Catalog,
    database: &str,
    table: &Table,
) -> Vec<(Arc<Table>, ForeignKeyDef)> {
    match catalog.database(database) {
        Some(db) => db
            .foreign_keys_to(&table.schema, &table.name)
            .map(|(t, fk)| (t.clone(), fk.clone()))
            .collect(),
        None => Vec::new(),
    }
}

/// The column positions of `table` some foreign key references.
pub(crate) fn referenced_columns(catalog: &Catalog, database: &str, table: &Table) -> Vec<usize> {
    let mut cols = Vec::new();
    for (_, fk) in referencing(catalog, database, table) {
        cols.extend(fk.ref_columns.iter().filter_map(|n| table.column_index(n)));
    }
    cols
}

async fn rows_changed_at<C: Cluster>(
    cluster: &C,
    session: &Session,
    env: &Env,
    table: &Table,
    old: &[Row],
    new: Option<&[Row]>,
    depth: usize,
) -> Result<(), SqlError> {
    if old.is_empty() {
        return Ok(());
    }
    let catalog = cluster.catalog();
    let refs = referencing(&catalog, session.database(), table);
    if refs.is_empty() {
        return Ok(());
    }
    if depth >= CASCADE_DEPTH_MAX {
        return Err(SqlError::new(
            STATEMENT_TOO_COMPLEX,
            format!("foreign key actions cascade more than {CASCADE_DEPTH_MAX} levels deep"),
        ));
    }
    let Some(this) = table_by_id(&catalog, session.database(), table.id) else {
        return Ok(());
    };
    for (child, fk) in refs {
        let ref_positions = positions_in(&this, &fk.ref_columns)?;
        let from: Vec<SqlType> = ref_positions.iter().map(|&p| this.columns[p].ty).collect();
        // Each old key that is gone, with the new key it became (UPDATE).
        let mut gone: Vec<(Vec<Datum>, Option<Vec<Datum>>)> = Vec::new();
        let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
        let plain = types::Style::default();
        for (i, row) in old.iter().enumerate() {
            let key: Vec<Datum> = ref_positions.iter().map(|&p| row[p].clone()).collect();
            if key.iter().any(Datum::is_null) {
                continue;
            }
            let new_key = new.map(|n| {
                ref_positions
                    .iter()
                    .map(|&p| n[i][p].clone())
                    .collect::<Vec<Datum>>()
            });
            if let Some(nk) = &new_key {
                let same = nk
                    .iter()
                    .zip(&key)
                    .all(|(a, b)| expr::compare_nullable(a, b) == std::cmp::Ordering::Equal);
                if same {
                    continue;
                }
            }
            let text: Vec<Option<String>> = key.iter().map(|v| types::output(v, &plain)).collect();
            if seen.insert(text) {
                gone.push((key, new_key));
            }
        }
        let action = if new.is_some() {
            fk.on_update
        } else {
            fk.on_delete
        };
        for (key, new_key) in gone {
            if action == FkAction::NoAction {
                // Another row of the referenced table may hold the key now (keys swapped
                // in one UPDATE): then nothing references a missing row.
                let (still, _) = rows_with_key(
                    cluster,
                    env,
                    &Arc::new((*this).clone()),
                    &ref_positions,
                    &key,
                    &from,
                    None,
                )
                .await?;
                if !still.is_empty() {
                    continue;
                }
            }
            let lock = match action {
                FkAction::NoAction | FkAction::Restrict => LockMode::KeyShare,
                _ => LockMode::Exclusive,
            };
            let (rows, keys) =
                rows_with_key(cluster, env, &child, &fk.columns, &key, &from, Some(lock)).await?;
            if rows.is_empty() {
                continue;
            }
            match action {
                // (A reference newer than a REPEATABLE READ snapshot counts too: PostgreSQL
                // reports it as this violation as well.)
                FkAction::NoAction | FkAction::Restrict => {
                    return Err(SqlError::new(
                        FOREIGN_KEY_VIOLATION,
                        format!(
                            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                            this.name, fk.name, child.name
                        ),
                    )
                    .with_detail(format!(
                        "{} is still referenced from table \"{}\".",
                        key_text(&this, &ref_positions, &key, env),
                        child.name
                    ))
                    .on_constraint(&child, Some(&fk.name)));
                }
                FkAction::Cascade if new_key.is_none() => {
                    let deleted = delete_rows(cluster, env, &child, keys).await?;
                    Box::pin(rows_changed_at(
                        cluster,
                        session,
                        env,
                        &child,
                        &deleted,
                        None,
                        depth + 1,
                    ))
                    .await?;
                }
                _ => {
                    let mut changed = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let mut n = row.clone();
                        for (j, &c) in fk.columns.iter().enumerate() {
                            let column = &child.columns[c];
                            n[c] = match action {
                                FkAction::SetNull => Datum::Null,
                                FkAction::SetDefault => {
                                    stmt::default_value(session, &catalog, &child, column, env)?
                                }
                                _ => {
                                    let v = new_key.as_ref().expect("a cascaded update")[j].clone();
                                    stmt::assign(v, from[j], column, &env.style)?
                                }
                            };
                        }
                        changed.push(n);
                    }
                    stmt::replace_rows(cluster, session, &catalog, &child, &rows, &changed, keys)
                        .await?;
                    if action == FkAction::SetDefault {
                        check_references(
                            cluster,
                            session.database(),
                            env,
                            &child,
                            &changed,
                            Some(&fk.columns),
                        )
                        .await?;
                    }
                    Box::pin(rows_changed_at(
                        cluster,
                        session,
                        env,
                        &child,
                        &rows,
                        Some(&changed),
                        depth + 1,
                    ))
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Deletes rows of `table` by key (already locked by this transaction); returns them.
async fn delete_rows<C: Cluster>(
    cluster: &C,
    env: &Env,
    table: &Arc<Table>,
    keys: Vec<Bytes>,
) -> Result<Vec<Row>, SqlError> {
    crate::txn::forget_written_rows(cluster);
    let spec = Arc::new(ModifySpec {
        table: table.clone(),
        sets: Vec::new(),
        filter: None,
        checks: Vec::new(),
        fixed: Vec::new(),
        env: env.clone(),
    });
    let ops = keys
        .into_iter()
        .map(|key| {
            let token = rowcodec::storage_key_token(&key).expect("a row key has a token");
            let shard = cluster.shard_of_token(token);
            (
                shard,
                RowOp::DeleteIf {
                    key,
                    spec: spec.clone(),
                },
            )
        })
        .collect();
    Ok(stmt::write_rows_returning(cluster, table, ops, None)
        .await?
        .1)
}

/// SET CONSTRAINTS { ALL | name [, ...] } { DEFERRED | IMMEDIATE }: `values` are the mode,
/// then the names (none: ALL; see [`crate::SET_CONSTRAINTS`]). Made IMMEDIATE, a
/// constraint's queued checks run now.
pub(crate) async fn run_set_constraints<C: Cluster>(
    session: &Session,
    cluster: &C,
    values: &[ast::Expr],
) -> Result<crate::StatementResult, SqlError> {
    let done = |notices: Vec<String>| crate::StatementResult::Command {
        tag: "SET CONSTRAINTS".into(),
        changed_parameters: Vec::new(),
        notices,
    };
    let deferred =
        matches!(values.first(), Some(ast::Expr::Identifier(m)) if m.value == "DEFERRED");
    let catalog = cluster.catalog();
    let mut named = Vec::new();
    for v in values.iter().skip(1) {
        let ast::Expr::CompoundIdentifier(parts) = v else {
            continue;
        };
        let (schema, name) = match parts.as_slice() {
            [n] => (None, n.value.clone()),
            [s, n] => (Some(s.value.clone()), n.value.clone()),
            _ => {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    format!("improper qualified name (too many dotted names): {v}"),
                ))
            }
        };
        named.extend(constraints_named(
            session,
            &catalog,
            schema.as_deref(),
            &name,
        )?);
    }
    if session.transaction == crate::TransactionState::Idle {
        // PostgreSQL warns and does nothing: the statement is its own transaction.
        return Ok(done(vec![
            "WARNING: SET CONSTRAINTS can only be used in transaction blocks".to_string(),
        ]));
    }
    let all = values.len() <= 1;
    let picked = named.clone();
    crate::txn::set_constraint_modes(cluster, (!all).then_some(named), deferred);
    if !deferred {
        let which = |table_id: u32, name: &str| {
            all || picked.iter().any(|(t, n)| *t == table_id && n == name)
        };
        run_deferred(cluster, session, &which).await?;
    }
    Ok(done(Vec::new()))
}

/// The deferrable constraints SET CONSTRAINTS `name` means: the foreign keys of that name in
/// the schema (or those on the search path), as (table id, name). 42704 when no constraint
/// has the name, 55000 when one that has it is not deferrable.
fn constraints_named(
    session: &Session,
    catalog: &Catalog,
    schema: Option<&str>,
    name: &str,
) -> Result<Vec<(u32, String)>, SqlError> {
    let Some(db) = catalog.database(session.database()) else {
        return Ok(Vec::new());
    };
    let path = session.search_path();
    let schemas: Vec<&str> = match schema {
        Some(s) => vec![s],
        None => path.iter().map(String::as_str).collect(),
    };
    for s in schemas {
        let Some(sc) = db.schemas.get(s) else {
            continue;
        };
        let mut found = Vec::new();
        for t in sc.tables.values() {
            for fk in t.foreign_keys.iter().filter(|f| f.name == name) {
                if !fk.deferrable {
                    return Err(not_deferrable(name));
                }
                found.push((t.id, fk.name.clone()));
            }
            let other = (!t.primary_key.is_empty() && t.pkey_name() == name)
                || t.checks.iter().any(|c| c.name == name);
            if other {
                return Err(not_deferrable(name));
            }
        }
        if sc.indexes.get(name).is_some_and(|i| i.constraint) {
            return Err(not_deferrable(name));
        }
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Err(SqlError::new(
        UNDEFINED_OBJECT,
        format!("constraint \"{name}\" does not exist"),
    ))
}

fn not_deferrable(name: &str) -> SqlError {
    SqlError::new("55000", format!("constraint \"{name}\" is not deferrable"))
}
