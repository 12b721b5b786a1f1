//! ALTER TABLE: ADD/DROP/RENAME COLUMN, ALTER COLUMN SET/DROP DEFAULT, NOT NULL and TYPE,
//! ADD/DROP/RENAME CONSTRAINT (PRIMARY KEY and CHECK), RENAME TO.
//!
//! Changes that only touch the catalog (renames, defaults, DROP NOT NULL, a column added
//! without a default: rows shorter than the table read the missing columns as NULL) are one
//! catalog change. Changes the stored rows must follow (a new or dropped primary key moves
//! every row to the shard that owns its new key; a dropped column, or an added one with a
//! default, changes every row) rewrite the table as PostgreSQL does: every row is written
//! again under a fresh table id, then one catalog change switches the table to that id and
//! the old id's rows are deleted. Until the switch the new rows are invisible, so a failure
//! (a duplicate key, a NULL in a new key column) leaves the table as it was. Index entries
//! and unique-index claims name row keys, which change with the table id, so a rewrite builds
//! every surviving index again under a new index id, from the rewritten rows, and the switch
//! drops the old ids' entries. New constraints (CHECK, SET NOT NULL) are checked against
//! every row first.
//!
//! While rows are read, the table's writes are frozen (see `ARCHITECTURE.md`, "ALTER
//! TABLE"); inside a transaction block the whole change is undone by the block's ROLLBACK
//! ([`crate::ddl_undo`]).

use bytes::Bytes;
use sqlparser::ast;

use std::sync::Arc;

use crate::catalog::{CheckDef, ColumnDef, DdlChange, Table};
use crate::cluster::{Cluster, RowOp};
use crate::error::*;
use crate::expr::{self, eval, Bound, Env, Eval};
use crate::plan::{self, Fetch};
use crate::rowcodec;
use crate::session::Session;
use crate::stmt;
use crate::types::{Datum, SqlType};
use crate::PackedEntries;
use crate::StatementResult;

/// Rows written per request while a table is rewritten.
const REWRITE_BATCH_ROWS: usize = 4096;

/// What each row of the new table is made of, by old column position (None: a new column,
/// filled with the bound default or NULL).
struct RowShape {
    sources: Vec<Option<usize>>,
    defaults: Vec<Option<Bound>>,
    /// ALTER COLUMN TYPE: the new value of a column that keeps its source, bound over the
    /// old row (its USING expression, or the column itself), assigned to the new type.
    converts: Vec<Option<Bound>>,
}

impl RowShape {
    /// Whether stored rows read correctly as the new table's unchanged: the old columns keep
    /// their places and the new ones, at the end, are NULL (a short row reads as NULLs).
    fn keeps_stored_rows(&self, old_width: usize) -> bool {
        self.converts.iter().all(Option::is_none)
            && self.sources.len() >= old_width
            && self.sources.iter().enumerate().all(|(i, s)| match s {
                Some(s) => *s == i,
                None => i >= old_width && self.defaults[i].is_none(),
            })
    }
}

impl RowShape {
    /// Whether a row of `width` columns is the new table's row as it is: the same columns in
    /// the same places (ADD PRIMARY KEY changes only the key).
    fn moves_rows_unchanged(&self, width: usize) -> bool {
        self.converts.iter().all(Option::is_none)
            && self.sources.len() == width
            && self.sources.iter().enumerate().all(|(i, s)| *s == Some(i))
    }
}

/// Whether a bound expression calls nextval (a default that needs a sequence value).
fn calls_nextval(b: &Bound) -> bool {
    let mut found = false;
    b.visit(&mut |x| {
        if let expr::Kind::Func(expr::Func::NextVal, _) = &x.kind {
            found = true;
        }
    });
    found
}

pub(crate) async fn run_alter_table<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    at: &ast::AlterTable,
) -> Result<StatementResult, SqlError> {
    if at.table_type.is_some() || at.on_cluster.is_some() || at.location.is_some() {
        return Err(not_supported("this ALTER TABLE form"));
    }
    let catalog = cluster.catalog();
    let positions = expr::Positions::new(sql);
    let params = std::cell::RefCell::new(Vec::new());
    let planner = plan::Planner::new(session, sql, &positions, &catalog, &params);
    let old = match planner.lookup_table(&at.name) {
        Ok(t) => t,
        Err(e) if at.if_exists && e.sqlstate == UNDEFINED_TABLE => {
            let (_, name) = plan::split_name(&at.name)?;
            return Ok(StatementResult::Command {
                tag: "ALTER TABLE".into(),
                changed_parameters: Vec::new(),
                notices: vec![format!("relation \"{name}\" does not exist, skipping")],
            });
        }
        Err(e) => return Err(e),
    };
    let env = Env::of(session);
    let mut new = (*old).clone();
    let mut shape = RowShape {
        sources: (0..old.columns.len()).map(Some).collect(),
        defaults: vec![None; old.columns.len()],
        converts: vec![None; old.columns.len()],
    };
    let mut notices = Vec::new();
    // Constraints every row must satisfy before the change is made: NOT NULL columns (by
    // new position), CHECKs (by name).
    let mut verify_not_null: Vec<usize> = Vec::new();
    let mut verify_checks: Vec<String> = Vec::new();
    // Foreign keys (by name) whose referenced rows every row must have.
    let mut verify_foreign_keys: Vec<String> = Vec::new();
    let mut uniques = UniqueChanges::default();
    for op in &at.operations {
        apply_operation(
            session,
            &catalog,
            sql,
            &old,
            &mut new,
            &mut shape,
            op,
            &mut notices,
            &mut verify_not_null,
            &mut verify_checks,
            &mut verify_foreign_keys,
            &mut uniques,
            &env,
        )?;
    }
    if !uniques.add.is_empty() && at.operations.len() > uniques.add.len() {
        // Its index is built after the table's change: a duplicate found then could not undo
        // the rest of the statement.
        return Err(not_supported(
            "ALTER TABLE ADD UNIQUE together with other changes in one statement",
        ));
    }
    if !uniques.add.is_empty() {
        let mut created = Vec::new();
        for index in uniques.add {
            let name = index.name.clone();
            match stmt::create_index_over_rows(session, cluster, &old, index, false).await {
                Ok(more) => notices.extend(more),
                Err(e) => {
                    // The statement's earlier constraints go too: it changes all or nothing.
                    if !created.is_empty() {
                        drop_indexes(session, cluster, &old.schema, created).await?;
                    }
                    return Err(e);
                }
            }
            created.push(name);
        }
        return Ok(StatementResult::Command {
            tag: "ALTER TABLE".into(),
            changed_parameters: Vec::new(),
            notices,
        });
    }
    // Statistics stay true while every column keeps its place and type (ADD PRIMARY KEY,
    // constraints, renames, as PostgreSQL keeps them); else they wait for the next ANALYZE.
    let columns_kept = shape.moves_rows_unchanged(old.columns.len())
        && (new.columns.iter().zip(&old.columns))
            .all(|(n, o)| (n.ty, n.typmod) == (o.ty, o.typmod));
    if !columns_kept {
        new.stats = None;
    }
    let key_changed = new
        .primary_key
        .iter()
        .map(|&i| shape.sources[i])
        .collect::<Vec<_>>()
        != old.primary_key.iter().map(|&i| Some(i)).collect::<Vec<_>>();
    let rewrite = key_changed || !shape.keeps_stored_rows(old.columns.len());
    let database = session.database().to_string();
    let renames = column_renames(&old, &new, &shape);
    let index_columns = index_columns_after(&catalog, &database, &old, &new, &shape, &renames)?;
    let mut index_ids = Vec::new();
    let mut rebuilt = Vec::new();
    // Reading every row: writes to the table wait until the switch (a write the scan did not
    // see would be lost, or break the constraint being checked).
    let reads_rows = rewrite
        || !verify_not_null.is_empty()
        || !verify_checks.is_empty()
        || !verify_foreign_keys.is_empty();
    if reads_rows {
        if crate::txn::snapshot_taken(cluster) {
            return Err(not_supported(
                "ALTER TABLE that reads or rewrites rows in a REPEATABLE READ transaction after its first query",
            ));
        }
        // A block that holds row locks may be what a writer of this table waits for, while
        // the ALTER waits for that writer: a deadlock no lock graph sees. Waiting only as
        // long as PostgreSQL's deadlock_timeout before giving up breaks it.
        let mut wait_ms = ddl_wait_ms(session.lock_timeout_ms());
        if crate::txn::has_touched(cluster) {
            wait_ms = wait_ms.min(DEADLOCK_TIMEOUT_MS);
        }
        freeze_writes(cluster, old.id, wait_ms).await?;
    }
    let checked: Result<(), SqlError> = async {
        if !reads_rows {
            return Ok(());
        }
        // A stored expression's error points at no place in this statement.
        let checks: Vec<(String, Bound)> = stmt::bind_checks(session, &catalog, &new)
            .map_err(|e| e.at(None))?
            .into_iter()
            .filter(|(name, _)| verify_checks.contains(name))
            .collect();
        // ADD PRIMARY KEY on a table without secondary indexes keeps every stored value as
        // it is: only the key columns are decoded (for the new keys and their NOT NULL).
        let moves_raw = rewrite
            && shape.moves_rows_unchanged(old.columns.len())
            && checks.is_empty()
            && verify_foreign_keys.is_empty()
            && verify_not_null.iter().all(|c| new.primary_key.contains(c))
            && crate::index::specs_for(&catalog, &old).is_empty()
            // The shards read committed rows straight: the block's own would be missed.
            && crate::txn::first_touched_of(cluster, &[old.id]).is_none();
        if moves_raw {
            new.id = reserve_id(cluster).await?;
            let rekey = crate::cluster::Rekey {
                table: Arc::new(new.clone()),
                not_null: verify_not_null.clone(),
            };
            if let Err(e) = move_rows_rekeyed(cluster, &old, rekey, &env).await {
                discard_rewrite(cluster, new.id, &[]).await;
                return Err(e);
            }
            return Ok(());
        }
        let target = Fetch::new(old.clone(), None);
        let scanned = crate::dist::fetch(cluster, &target, &[], &env, false).await?;
        let mut rows = Vec::with_capacity(scanned.rows.len());
        for old_row in scanned.rows {
            let row = reshape(&shape, old_row, &new, &env)?;
            check_row(&new, &row, &verify_not_null, &checks, &env)?;
            rows.push(row);
        }
        for fk in new
            .foreign_keys
            .iter()
            .filter(|f| verify_foreign_keys.contains(&f.name))
        {
            crate::fkey::validate_existing(cluster, session, &env, &new, &rows, fk).await?;
        }
        if rewrite {
            let new_id = reserve_id(cluster).await?;
            new.id = new_id;
            // The table's indexes are built again, under new ids, from the rewritten rows:
            // their entries and claims name row keys, which change with the table id. The old
            // ids' entries are deleted once the catalog has switched.
            let old_specs = crate::index::specs_for(&catalog, &old);
            for (name, columns) in &index_columns {
                let (Some(columns), Some(old_spec)) =
                    (columns, old_specs.iter().find(|spec| spec.name == *name))
                else {
                    continue;
                };
                let id = reserve_id(cluster).await?;
                index_ids.push((name.clone(), id));
                let predicate = match &old_spec.predicate {
                    None => None,
                    Some(p) => Some(Arc::new(crate::index::bind_predicate(
                        &catalog,
                        &database,
                        &new,
                        &predicate_after(&p.text, &renames),
                    )?)),
                };
                rebuilt.push(crate::index::IndexSpec {
                    id,
                    columns: columns.clone(),
                    unique: old_spec.unique,
                    name: name.clone(),
                    table_id: new_id,
                    predicate,
                });
            }
            if let Err(e) = write_rewritten(cluster, &new, rows, rebuilt.clone()).await {
                discard_rewrite(cluster, new_id, &rebuilt).await;
                return Err(e);
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = checked {
        thaw_writes(cluster, old.id).await;
        return Err(e);
    }
    let new_id = (new.id != old.id).then_some(new.id);
    let outcome = cluster
        .ddl(DdlChange::AlterTable {
            database,
            schema: old.schema.clone(),
            old_name: old.name.clone(),
            old_id: old.id,
            table: new,
            index_columns,
            index_ids,
            column_renames: renames,
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if let Some(new_id) = new_id {
                discard_rewrite(cluster, new_id, &rebuilt).await;
            }
            if reads_rows {
                thaw_writes(cluster, old.id).await;
            }
            return Err(e);
        }
    };
    if let Some(new_id) = new_id {
        crate::txn::table_rewritten(cluster, old.id, new_id);
    }
    notices.extend(outcome.notices);
    if !uniques.drop.is_empty() {
        notices.extend(drop_indexes(session, cluster, &old.schema, uniques.drop).await?);
    }
    for (old_name, new_name) in uniques.rename {
        cluster
            .ddl(DdlChange::RenameIndex {
                database: session.database().to_string(),
                schema: old.schema.clone(),
                old_name,
                new_name,
            })
            .await?;
    }
    Ok(StatementResult::Command {
        tag: "ALTER TABLE".into(),
        changed_parameters: Vec::new(),
        notices,
    })
}

/// UNIQUE constraints an ALTER TABLE adds or drops: each is an index of its own
/// ([`crate::catalog::IndexDef::constraint`]), changed after the table's own change.
#[derive(Default)]
struct UniqueChanges {
    add: Vec<crate::catalog::IndexDef>,
    drop: Vec<String>,
    /// RENAME CONSTRAINT of a UNIQUE constraint: (old name, new name).
    rename: Vec<(String, String)>,
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(FEATURE_NOT_SUPPORTED, format!("{what} is not supported"))
}

/// Drops the indexes `names` of `schema` (UNIQUE constraints'); returns the notices.
async fn drop_indexes<C: Cluster>(
    session: &Session,
    cluster: &C,
    schema: &str,
    names: Vec<String>,
) -> Result<Vec<String>, SqlError> {
    let drop = DdlChange::DropRelations {
        database: session.database().to_string(),
        kind: crate::catalog::RelationKind::Index,
        names: names.into_iter().map(|n| (schema.to_string(), n)).collect(),
        if_exists: true,
    };
    Ok(cluster.ddl(drop).await?.notices)
}

fn no_constraint(name: &str, table: &Table) -> SqlError {
    SqlError::new(
        UNDEFINED_OBJECT,
        format!(
            "constraint \"{name}\" of relation \"{}\" does not exist",
            table.name
        ),
    )
}

fn no_column(name: &str, table: &Table) -> SqlError {
    SqlError::new(
        UNDEFINED_COLUMN,
        format!(
            "column \"{name}\" of relation \"{}\" does not exist",
            table.name
        ),
    )
}

#[allow(clippy::too_many_arguments)]
fn apply_operation(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    sql: &str,
    old: &Table,
    new: &mut Table,
    shape: &mut RowShape,
    op: &ast::AlterTableOperation,
    notices: &mut Vec<String>,
    verify_not_null: &mut Vec<usize>,
    verify_checks: &mut Vec<String>,
    verify_foreign_keys: &mut Vec<String>,
    uniques: &mut UniqueChanges,
    env: &Env,
) -> Result<(), SqlError> {
    use ast::AlterTableOperation as Op;
    let constraint_index = |name: &str| {
        catalog
            .database(session.database())
            .and_then(|d| d.schemas.get(&old.schema))
            .and_then(|s| s.indexes.get(name))
            .filter(|i| i.constraint && i.table == old.name)
            .is_some()
    };
    match op {
        Op::AddColumn {
            if_not_exists,
            column_def,
            column_position: None,
            ..
        } => {
            let name = plan::ident(&column_def.name);
            if new.column_index(&name).is_some() {
                if *if_not_exists {
                    notices.push(format!(
                        "column \"{name}\" of relation \"{}\" already exists, skipping",
                        new.name
                    ));
                    return Ok(());
                }
                return Err(SqlError::new(
                    DUPLICATE_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" already exists",
                        new.name
                    ),
                ));
            }
            if new.columns.len() >= crate::catalog::COLUMNS_MAX {
                return Err(SqlError::new(
                    "54011",
                    format!(
                        "tables can have at most {} columns",
                        crate::catalog::COLUMNS_MAX
                    ),
                ));
            }
            let (ty, typmod) = stmt::column_type(&column_def.data_type)?;
            let mut def = ColumnDef {
                name: name.clone(),
                ty,
                typmod,
                not_null: false,
                default: None,
                identity: false,
                identity_always: false,
            };
            let position = new.columns.len();
            let mut primary = false;
            let mut pkey_name = None;
            for option in &column_def.options {
                match &option.option {
                    ast::ColumnOption::Null => def.not_null = false,
                    ast::ColumnOption::NotNull => def.not_null = true,
                    ast::ColumnOption::Default(e) => def.default = Some(e.to_string()),
                    ast::ColumnOption::PrimaryKey(pk) => {
                        primary = true;
                        pkey_name = option.name.as_ref().or(pk.name.as_ref()).map(plan::ident);
                    }
                    ast::ColumnOption::Check(chk) => {
                        // Unnamed (empty): named once the column is in the table.
                        let name = option.name.as_ref().map(plan::ident).unwrap_or_default();
                        if !name.is_empty() {
                            verify_checks.push(name.clone());
                        }
                        new.checks.push(CheckDef {
                            name,
                            expr: chk.expr.to_string(),
                            not_valid: false,
                        });
                    }
                    other => return Err(not_supported(format!("column option {other}"))),
                }
            }
            new.columns.push(def.clone());
            name_new_checks(session, catalog, new, verify_checks)?;
            let default = match &def.default {
                Some(text) => {
                    let b = stmt::bind_table_expr(session, catalog, new, text)?;
                    if calls_nextval(&b) {
                        return Err(not_supported("ADD COLUMN with a sequence default"));
                    }
                    Some(b)
                }
                None => None,
            };
            let _ = sql;
            shape.sources.push(None);
            shape.defaults.push(default);
            shape.converts.push(None);
            if def.not_null {
                verify_not_null.push(position);
            }
            if primary {
                set_primary_key(new, vec![position], pkey_name, verify_not_null)?;
            }
        }
        Op::DropColumn {
            column_names,
            if_exists,
            drop_behavior,
            ..
        } => {
            for ident in column_names {
                let name = plan::ident(ident);
                let Some(i) = new.column_index(&name) else {
                    if *if_exists {
                        notices.push(format!(
                            "column \"{name}\" of relation \"{}\" does not exist, skipping",
                            new.name
                        ));
                        continue;
                    }
                    return Err(no_column(&name, new));
                };
                if new.primary_key.contains(&i) {
                    if !matches!(drop_behavior, Some(ast::DropBehavior::Cascade)) {
                        return Err(SqlError::new(
                            DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop column {name} of table {} because other objects depend on it",
                                new.name
                            ),
                        ));
                    }
                    new.primary_key.clear();
                    new.pkey_constraint = None;
                }
                let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                for (child, fk) in crate::fkey::referencing(catalog, session.database(), old) {
                    if !fk.ref_columns.contains(&name) {
                        continue;
                    }
                    if !cascade {
                        return Err(SqlError::new(
                            DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop column {name} of table {} because other objects depend on it",
                                new.name
                            ),
                        )
                        .with_detail(format!(
                            "constraint {} on table {} depends on column {name} of table {}",
                            fk.name, child.name, new.name
                        ))
                        .with_hint(&HINT_DROP_CASCADE));
                    }
                    // The catalog drops it when it sees the column gone.
                    notices.push(format!(
                        "drop cascades to constraint {} on table {}",
                        fk.name, child.name
                    ));
                }
                // CHECKs that name the column go with it, as in PostgreSQL, and so do its
                // foreign keys.
                new.checks.retain(|c| !expression_names(&c.expr, &name));
                new.foreign_keys.retain(|fk| !fk.columns.contains(&i));
                for fk in new.foreign_keys.iter_mut() {
                    for p in fk.columns.iter_mut() {
                        if *p > i {
                            *p -= 1;
                        }
                    }
                }
                new.columns.remove(i);
                shape.sources.remove(i);
                shape.defaults.remove(i);
                shape.converts.remove(i);
                for p in new.primary_key.iter_mut() {
                    if *p > i {
                        *p -= 1;
                    }
                }
                verify_not_null.retain(|&p| p != i);
                for p in verify_not_null.iter_mut() {
                    if *p > i {
                        *p -= 1;
                    }
                }
                if new.columns.is_empty() {
                    // PostgreSQL allows a table of no columns; helios's row format does too,
                    // but keep at least the invariant that keys exist.
                }
            }
        }
        Op::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let from = plan::ident(old_column_name);
            let to = plan::ident(new_column_name);
            let Some(i) = new.column_index(&from) else {
                return Err(no_column(&from, new));
            };
            if new.column_index(&to).is_some() {
                return Err(SqlError::new(
                    DUPLICATE_COLUMN,
                    format!(
                        "column \"{to}\" of relation \"{}\" already exists",
                        new.name
                    ),
                ));
            }
            new.columns[i].name = to.clone();
            for c in new.checks.iter_mut() {
                c.expr = rename_in_expression(&c.expr, &from, &to);
            }
            for c in new.columns.iter_mut() {
                if let Some(d) = &c.default {
                    c.default = Some(rename_in_expression(d, &from, &to));
                }
            }
        }
        Op::RenameTable { table_name } => {
            let name = match table_name {
                ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n) => n,
            };
            let (schema, name) = plan::split_name(name)?;
            if schema.is_some_and(|s| s != new.schema) {
                return Err(not_supported("moving a table to another schema"));
            }
            if !new.primary_key.is_empty() {
                // The constraint keeps its name, as PostgreSQL's does.
                new.pkey_constraint = Some(new.pkey_name());
            }
            new.name = name;
        }
        Op::AddConstraint {
            constraint,
            not_valid,
        } => match constraint {
            ast::TableConstraint::PrimaryKey(pk) => {
                let columns = stmt::primary_key_positions(pk, &new.columns)?;
                let name = pk.name.as_ref().map(plan::ident);
                set_primary_key(new, columns, name, verify_not_null)?;
            }
            ast::TableConstraint::Check(chk) => {
                let b = stmt::bind_table_expr(session, catalog, new, &chk.expr.to_string())?;
                let name = match &chk.name {
                    Some(n) => plan::ident(n),
                    None => stmt::check_name(new, &b, &|n| new.checks.iter().any(|c| c.name == n)),
                };
                if new.checks.iter().any(|c| c.name == name) {
                    return Err(SqlError::new(
                        "42710",
                        format!(
                            "constraint \"{name}\" for relation \"{}\" already exists",
                            new.name
                        ),
                    ));
                }
                let b = stmt::bind_table_expr(session, catalog, new, &chk.expr.to_string())?;
                if b.ty != SqlType::Bool {
                    return Err(SqlError::new(
                        DATATYPE_MISMATCH,
                        format!(
                            "argument of CHECK must be type boolean, not type {}",
                            b.ty.sql_name()
                        ),
                    ));
                }
                new.checks.push(CheckDef {
                    name: name.clone(),
                    expr: chk.expr.to_string(),
                    not_valid: *not_valid,
                });
                if !not_valid {
                    verify_checks.push(name);
                }
            }
            ast::TableConstraint::Unique(u) => {
                if u.characteristics.is_some()
                    || !u.include.is_empty()
                    || u.nulls_distinct == ast::NullsDistinctOption::NotDistinct
                {
                    return Err(not_supported(format!("ALTER TABLE ADD {u}")));
                }
                let list: Vec<&ast::IndexColumn> = u.columns.iter().collect();
                let columns =
                    stmt::index_column_positions(&list, &new.columns, "unique constraint")?;
                let taken = |name: &str| {
                    catalog
                        .database(session.database())
                        .and_then(|d| d.schemas.get(&old.schema))
                        .is_some_and(|s| s.has_relation(name))
                        || uniques.add.iter().any(|i| i.name == name)
                };
                let name = match &u.name {
                    Some(name) => plan::ident(name),
                    None => {
                        // PostgreSQL's choice: table_columns_key, numbered when taken.
                        let stem = stmt::unique_key_name(new, &columns);
                        std::iter::once(stem.clone())
                            .chain((1..).map(|n| format!("{stem}{n}")))
                            .find(|name| !taken(name))
                            .expect("an unbounded sequence of names has a free one")
                    }
                };
                if taken(&name) {
                    return Err(SqlError::new(
                        "42P07",
                        format!("relation \"{name}\" already exists"),
                    ));
                }
                uniques.add.push(crate::catalog::IndexDef {
                    id: 0,
                    name,
                    table: old.name.clone(),
                    columns,
                    unique: true,
                    constraint: true,
                    predicate: None,
                    include: Vec::new(),
                });
            }
            ast::TableConstraint::ForeignKey(fk) => {
                let columns = stmt::foreign_key_columns(&fk.columns, &new.columns)?;
                let mut own_unique = vec![new.primary_key.clone()];
                own_unique.extend(
                    crate::index::specs_for(catalog, old)
                        .into_iter()
                        .filter(|i| i.unique)
                        .map(|i| i.columns),
                );
                let taken = |n: &str| constraint_name_taken(catalog, session, old, new, n);
                let mut def =
                    crate::fkey::define(session, catalog, new, &own_unique, fk, columns, &taken)?;
                if fk.name.is_some() && taken(&def.name) {
                    return Err(SqlError::new(
                        "42710",
                        format!(
                            "constraint \"{}\" for relation \"{}\" already exists",
                            def.name, new.name
                        ),
                    ));
                }
                def.not_valid = *not_valid;
                if !not_valid {
                    verify_foreign_keys.push(def.name.clone());
                }
                new.foreign_keys.push(def);
            }
            other => {
                return Err(not_supported(format!(
                    "ALTER TABLE ADD {}",
                    constraint_kind(other)
                )))
            }
        },
        Op::DropConstraint {
            if_exists,
            name,
            drop_behavior,
        } => {
            let name = plan::ident(name);
            let is_pkey = !new.primary_key.is_empty() && name == new.pkey_name();
            if is_pkey || constraint_index(&name) {
                let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                notices.extend(dependent_foreign_keys(
                    session, catalog, old, &name, cascade,
                )?);
            }
            if is_pkey {
                new.primary_key.clear();
                new.pkey_constraint = None;
            } else if let Some(i) = new.checks.iter().position(|c| c.name == name) {
                new.checks.remove(i);
            } else if let Some(i) = new.foreign_keys.iter().position(|f| f.name == name) {
                new.foreign_keys.remove(i);
            } else if constraint_index(&name) && !uniques.drop.contains(&name) {
                uniques.drop.push(name);
            } else if *if_exists {
                notices.push(format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist, skipping",
                    new.name
                ));
            } else {
                return Err(no_constraint(&name, new));
            }
        }
        Op::ValidateConstraint { name } => {
            let name = plan::ident(name);
            if let Some(check) = new.checks.iter_mut().find(|c| c.name == name) {
                if check.not_valid {
                    check.not_valid = false;
                    verify_checks.push(name);
                }
            } else if let Some(fk) = new.foreign_keys.iter_mut().find(|f| f.name == name) {
                if fk.not_valid {
                    fk.not_valid = false;
                    verify_foreign_keys.push(name);
                }
            } else if constraint_index(&name)
                || (!new.primary_key.is_empty() && name == new.pkey_name())
            {
                return Err(SqlError::new(
                    "42809",
                    format!(
                        "constraint \"{name}\" of relation \"{}\" is not a foreign key or check constraint",
                        new.name
                    ),
                ));
            } else {
                return Err(no_constraint(&name, new));
            }
        }
        Op::RenameConstraint { old_name, new_name } => {
            let from = plan::ident(old_name);
            let to = plan::ident(new_name);
            if constraint_index(&from) {
                // Its index is renamed with it, after the table's own change.
                uniques.rename.push((from, to));
                return Ok(());
            }
            if !new.primary_key.is_empty() && from == new.pkey_name() {
                new.pkey_constraint = Some(to);
                return Ok(());
            }
            if let Some(fk) = new.foreign_keys.iter_mut().find(|f| f.name == from) {
                fk.name = to;
                return Ok(());
            }
            match new.checks.iter_mut().find(|c| c.name == from) {
                Some(c) => c.name = to,
                None => {
                    return Err(SqlError::new(
                        UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{from}\" for table \"{}\" does not exist",
                            new.name
                        ),
                    ))
                }
            }
        }
        Op::AlterColumn { column_name, op } => {
            let name = plan::ident(column_name);
            let Some(i) = new.column_index(&name) else {
                return Err(no_column(&name, new));
            };
            match op {
                ast::AlterColumnOperation::SetNotNull => {
                    if !new.columns[i].not_null {
                        new.columns[i].not_null = true;
                        verify_not_null.push(i);
                    }
                }
                ast::AlterColumnOperation::DropNotNull => {
                    if new.primary_key.contains(&i) {
                        return Err(SqlError::new(
                            INVALID_TABLE_DEFINITION,
                            format!("column \"{name}\" is in a primary key"),
                        ));
                    }
                    new.columns[i].not_null = false;
                }
                ast::AlterColumnOperation::SetDefault { value } => {
                    let mut probe = new.clone();
                    probe.columns[i].default = Some(value.to_string());
                    let b = stmt::bind_table_expr(session, catalog, &probe, &value.to_string())?;
                    // The default must convert to the column's type.
                    let cx = Eval::new(env);
                    if !calls_nextval(&b) {
                        if let Ok(v) = eval(&b, &cx) {
                            stmt::assign(v, b.ty, &new.columns[i], &env.style)?;
                        }
                    }
                    new.columns[i].default = Some(value.to_string());
                }
                ast::AlterColumnOperation::DropDefault => new.columns[i].default = None,
                ast::AlterColumnOperation::SetDataType {
                    data_type, using, ..
                } => {
                    set_column_type(
                        session,
                        catalog,
                        old,
                        new,
                        shape,
                        i,
                        data_type,
                        using.as_ref(),
                        verify_checks,
                        env,
                    )?;
                }
                other => return Err(not_supported(format!("ALTER COLUMN {other}"))),
            }
        }
        other => return Err(not_supported(format!("ALTER TABLE {other}"))),
    }
    let _ = old;
    Ok(())
}

/// Whether a constraint (or relation, for a UNIQUE constraint's index) of this name exists
/// on the table, as ALTER TABLE ADD CONSTRAINT would find it.
fn constraint_name_taken(
    catalog: &crate::catalog::Catalog,
    session: &Session,
    old: &Table,
    new: &Table,
    name: &str,
) -> bool {
    (!new.primary_key.is_empty() && new.pkey_name() == name)
        || new.checks.iter().any(|c| c.name == name)
        || new.foreign_keys.iter().any(|f| f.name == name)
        || catalog
            .database(session.database())
            .and_then(|d| d.schemas.get(&old.schema))
            .and_then(|s| s.indexes.get(name))
            .is_some_and(|i| i.table == old.name)
}

/// DROP CONSTRAINT of a primary key or UNIQUE constraint that foreign keys rely on: 2BP01
/// without CASCADE, as in PostgreSQL; with it, the notices of the foreign keys that go too
/// (the catalog drops a foreign key whose referenced key is gone).
fn dependent_foreign_keys(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    table: &Table,
    name: &str,
    cascade: bool,
) -> Result<Vec<String>, SqlError> {
    let columns: Vec<usize> = if !table.primary_key.is_empty() && name == table.pkey_name() {
        table.primary_key.clone()
    } else {
        match crate::index::specs_for(catalog, table)
            .into_iter()
            .find(|i| i.name == name)
        {
            Some(i) => i.columns,
            None => return Ok(Vec::new()),
        }
    };
    let mut notices = Vec::new();
    let mut columns: Vec<&str> = columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    columns.sort_unstable();
    for (child, fk) in crate::fkey::referencing(catalog, session.database(), table) {
        let mut referenced: Vec<&str> = fk.ref_columns.iter().map(String::as_str).collect();
        referenced.sort_unstable();
        if referenced != columns {
            continue;
        }
        if cascade {
            notices.push(format!(
                "drop cascades to constraint {} on table {}",
                fk.name, child.name
            ));
            continue;
        }
        return Err(SqlError::new(
            DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "cannot drop constraint {name} on table {} because other objects depend on it",
                table.name
            ),
        )
        .with_detail(format!(
            "constraint {} on table {} depends on index {name}",
            fk.name, child.name
        ))
        .with_hint(&HINT_DROP_CASCADE));
    }
    Ok(notices)
}

/// ALTER COLUMN ... [SET DATA] TYPE t [USING expr]: the column's values become `expr`
/// (over the old row; the column itself by default) assigned to the new type, which
/// rewrites the table; its CHECKs are checked again, its default must convert.
#[allow(clippy::too_many_arguments)]
fn set_column_type(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    old: &Table,
    new: &mut Table,
    shape: &mut RowShape,
    i: usize,
    data_type: &ast::DataType,
    using: Option<&ast::Expr>,
    verify_checks: &mut Vec<String>,
    env: &Env,
) -> Result<(), SqlError> {
    let name = new.columns[i].name.clone();
    let Some(source) = shape.sources[i] else {
        return Err(not_supported(format!(
            "ALTER COLUMN TYPE of column \"{name}\" added in the same statement"
        )));
    };
    if new.columns[i].identity || shape.converts[i].is_some() {
        return Err(not_supported(format!(
            "ALTER COLUMN TYPE of identity column \"{name}\", or twice in one statement"
        )));
    }
    let in_foreign_key = new.foreign_keys.iter().any(|fk| fk.columns.contains(&i))
        || crate::fkey::referenced_columns(catalog, session.database(), old).contains(&source);
    if in_foreign_key {
        return Err(not_supported(format!(
            "ALTER COLUMN TYPE of column \"{name}\", which is in a foreign key"
        )));
    }
    let (ty, typmod) = stmt::column_type(data_type)?;
    let value = match using {
        Some(e) => stmt::bind_table_expr(session, catalog, old, &e.to_string())?,
        None => Bound::column(source, old.columns[source].ty, old.columns[source].typmod),
    };
    let mut column = new.columns[i].clone();
    column.ty = ty;
    column.typmod = typmod;
    // What an assignment may convert (else PostgreSQL asks for USING).
    if let Err(e) = stmt::assign(Datum::Null, value.ty, &column, &env.style) {
        if using.is_some() {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "result of USING clause for column \"{name}\" cannot be cast automatically to type {}",
                    ty.sql_name()
                ),
            )
            .with_hint_text("You might need to add an explicit cast."));
        }
        let _ = e;
        return Err(SqlError::new(
            DATATYPE_MISMATCH,
            format!(
                "column \"{name}\" cannot be cast automatically to type {}",
                ty.sql_name()
            ),
        )
        .with_hint_text(format!(
            "You might need to specify \"USING {}::{}\".",
            crate::quote_ident(&name),
            ty.sql_name()
        )));
    }
    if let Some(text) = column.default.clone() {
        let b = stmt::bind_table_expr(session, catalog, new, &text)?;
        if stmt::assign(Datum::Null, b.ty, &column, &env.style).is_err() {
            return Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "default for column \"{name}\" cannot be cast automatically to type {}",
                    ty.sql_name()
                ),
            ));
        }
    }
    new.columns[i] = column;
    shape.converts[i] = Some(value);
    // Its CHECKs must hold of the converted values (and bind over the new type).
    for c in &new.checks {
        if expression_names(&c.expr, &name) && !verify_checks.contains(&c.name) {
            verify_checks.push(c.name.clone());
        }
    }
    Ok(())
}

/// Names the table's unnamed CHECKs (an added column's) as PostgreSQL does; each is to be
/// checked against the rows.
fn name_new_checks(
    session: &Session,
    catalog: &crate::catalog::Catalog,
    new: &mut Table,
    verify_checks: &mut Vec<String>,
) -> Result<(), SqlError> {
    for i in 0..new.checks.len() {
        if !new.checks[i].name.is_empty() {
            continue;
        }
        let b = stmt::bind_table_expr(session, catalog, new, &new.checks[i].expr)?;
        let name = stmt::check_name(new, &b, &|n| new.checks.iter().any(|c| c.name == n));
        new.checks[i].name = name.clone();
        verify_checks.push(name);
    }
    Ok(())
}

fn constraint_kind(c: &ast::TableConstraint) -> &'static str {
    match c {
        ast::TableConstraint::Unique(_) => "UNIQUE",
        ast::TableConstraint::ForeignKey(_) => "FOREIGN KEY",
        _ => "this constraint",
    }
}

fn set_primary_key(
    new: &mut Table,
    columns: Vec<usize>,
    name: Option<String>,
    verify_not_null: &mut Vec<usize>,
) -> Result<(), SqlError> {
    if !new.primary_key.is_empty() {
        return Err(SqlError::new(
            INVALID_TABLE_DEFINITION,
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                new.name
            ),
        ));
    }
    for &i in &columns {
        if !new.columns[i].not_null {
            new.columns[i].not_null = true;
            verify_not_null.push(i);
        }
    }
    new.primary_key = columns;
    new.pkey_constraint = name;
    Ok(())
}

/// Whether a stored expression names `column` (an identifier, quoted or not).
pub(crate) fn expression_names(text: &str, column: &str) -> bool {
    tokens(text).iter().any(|t| token_is_ident(t, column))
}

fn tokens(text: &str) -> Vec<sqlparser::tokenizer::Token> {
    // Not unescaped: renamed expressions are printed back from these tokens, and a
    // string's doubled quotes must stay doubled.
    sqlparser::tokenizer::Tokenizer::new(&sqlparser::dialect::PostgreSqlDialect {}, text)
        .with_unescape(false)
        .tokenize()
        .unwrap_or_default()
}

fn token_is_ident(t: &sqlparser::tokenizer::Token, column: &str) -> bool {
    match t {
        sqlparser::tokenizer::Token::Word(w) => match w.quote_style {
            None => w.value.to_lowercase() == column,
            Some(_) => w.value == column,
        },
        _ => false,
    }
}

/// The columns an ALTER renames, (old name, new name), from where each new column came.
fn column_renames(old: &Table, new: &Table, shape: &RowShape) -> Vec<(String, String)> {
    shape
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, source)| {
            let from = &old.columns[(*source)?].name;
            let to = &new.columns.get(i)?.name;
            (from != to).then(|| (from.clone(), to.clone()))
        })
        .collect()
}

/// A partial index's WHERE with the columns `renames` renames renamed in it.
pub(crate) fn predicate_after(text: &str, renames: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (from, to) in renames {
        text = rename_in_expression(&text, from, to);
    }
    text
}

/// Column `name` as `renames` leaves it.
pub(crate) fn column_name_after(name: &str, renames: &[(String, String)]) -> String {
    match renames.iter().find(|(from, _)| from == name) {
        Some((_, to)) => to.clone(),
        None => name.to_string(),
    }
}

/// A stored expression with identifier `from` renamed `to` (quoted where it must be).
fn rename_in_expression(text: &str, from: &str, to: &str) -> String {
    let all = tokens(text);
    if all.is_empty() {
        return text.to_string();
    }
    let renamed = if to
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !to.starts_with(|c: char| c.is_ascii_digit())
    {
        to.to_string()
    } else {
        format!("\"{}\"", to.replace('"', "\"\""))
    };
    all.iter()
        .map(|t| {
            if token_is_ident(t, from) {
                renamed.clone()
            } else {
                t.to_string()
            }
        })
        .collect()
}

/// An index's name and its column positions in the altered table (None: it is dropped).
type IndexColumnsAfter = (String, Option<Vec<usize>>);

/// Each index of `old`: its column positions in `new` (None: it goes with a dropped column,
/// one of its own, its INCLUDE's or one its WHERE reads, as PostgreSQL drops such an
/// index). A WHERE that reads no dropped column but no longer binds (a column's new type)
/// fails the ALTER, as PostgreSQL's does, rather than losing the index.
fn index_columns_after(
    catalog: &crate::catalog::Catalog,
    database: &str,
    old: &Table,
    new: &Table,
    shape: &RowShape,
    renames: &[(String, String)],
) -> Result<Vec<IndexColumnsAfter>, SqlError> {
    let Some(schema) = catalog
        .database(database)
        .and_then(|d| d.schemas.get(&old.schema))
    else {
        return Ok(Vec::new());
    };
    let kept = |c: usize| shape.sources.iter().position(|s| *s == Some(c));
    let mut after = Vec::new();
    for index in schema.indexes.values().filter(|i| i.table == old.name) {
        let mut moved: Option<Vec<usize>> = index.columns.iter().map(|&c| kept(c)).collect();
        if let Some(text) = &index.predicate {
            let read = crate::index::bind_predicate(catalog, database, old, text)?.columns_read();
            if read.iter().any(|&c| kept(c).is_none()) {
                moved = None;
            } else {
                crate::index::bind_predicate(
                    catalog,
                    database,
                    new,
                    &predicate_after(text, renames),
                )?;
            }
        }
        let includes_kept = index.include.iter().all(|name| {
            new.column_index(&column_name_after(name, renames))
                .is_some()
        });
        after.push((index.name.clone(), moved.filter(|_| includes_kept)));
    }
    Ok(after)
}

/// A row of the old table as a row of the new one.
fn reshape(
    shape: &RowShape,
    old_row: Vec<Datum>,
    new: &Table,
    env: &Env,
) -> Result<Vec<Datum>, SqlError> {
    if shape.moves_rows_unchanged(old_row.len()) {
        return Ok(old_row);
    }
    let mut row = Vec::with_capacity(shape.sources.len());
    for (i, source) in shape.sources.iter().enumerate() {
        row.push(match (source, &shape.defaults[i]) {
            (Some(_), _) if shape.converts[i].is_some() => {
                let b = shape.converts[i].as_ref().expect("checked");
                let v = eval(b, &Eval::over_row(env, &old_row))?;
                stmt::assign(v, b.ty, &new.columns[i], &env.style)?
            }
            (Some(s), _) => old_row.get(*s).cloned().unwrap_or(Datum::Null),
            (None, None) => Datum::Null,
            (None, Some(b)) => {
                let v = eval(b, &Eval::new(env))?;
                stmt::assign(v, b.ty, &new.columns[i], &env.style)?
            }
        });
    }
    Ok(row)
}

fn check_row(
    table: &Table,
    row: &[Datum],
    not_null: &[usize],
    checks: &[(String, Bound)],
    env: &Env,
) -> Result<(), SqlError> {
    check_not_null(table, row, not_null)?;
    if let Some(name) = stmt::failing_check(checks, row, env)? {
        return Err(SqlError::new(
            CHECK_VIOLATION,
            format!(
                "check constraint \"{name}\" of relation \"{}\" is violated by some row",
                table.name
            ),
        ));
    }
    Ok(())
}

/// 23502 when the row is NULL in one of the `not_null` columns (a constraint being added).
pub(crate) fn check_not_null(
    table: &Table,
    row: &[Datum],
    not_null: &[usize],
) -> Result<(), SqlError> {
    for &i in not_null {
        if row[i].is_null() {
            return Err(SqlError::new(
                NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    table.columns[i].name, table.name
                ),
            ));
        }
    }
    Ok(())
}

/// Deletes what a rewrite that did not take effect wrote: the new table id's rows and claims,
/// and the entries of the indexes built for it. Best effort: the statement's own error is
/// what the client hears, and the new ids are never used again.
async fn discard_rewrite<C: Cluster>(
    cluster: &C,
    new_id: u32,
    rebuilt: &[crate::index::IndexSpec],
) {
    for shard in 0..cluster.shard_count() {
        let _ = cluster.truncate(shard, new_id).await;
    }
    for spec in rebuilt {
        let _ = crate::index::delete_index_data(cluster, new_id, spec.id).await;
    }
}

/// How long ALTER TABLE waits for the transactions holding rows of its table, and a write
/// outside a transaction block for an ALTER to thaw its table, when the session sets no
/// `lock_timeout` (PostgreSQL would wait for ever).
const ALTER_WAIT_FOR_WRITERS_MS: u64 = 60_000;

/// TRUNCATE inside a transaction block: the table switches to a fresh, empty id (and its
/// indexes to fresh ids), as PostgreSQL gives it a new relfilenode, so that the block's
/// ROLLBACK switches it back to its rows ([`crate::ddl_undo`]). Writers already holding rows
/// are waited for first, as for an ALTER that reads rows.
pub(crate) async fn truncate_in_block<C: Cluster>(
    session: &Session,
    cluster: &C,
    table: &Table,
) -> Result<(), SqlError> {
    let mut wait_ms = ddl_wait_ms(session.lock_timeout_ms());
    if crate::txn::has_touched(cluster) {
        wait_ms = wait_ms.min(DEADLOCK_TIMEOUT_MS);
    }
    freeze_writes(cluster, table.id, wait_ms).await?;
    let switched = async {
        let catalog = cluster.catalog();
        let mut emptied = table.clone();
        emptied.id = reserve_id(cluster).await?;
        emptied.stats = None;
        let mut index_columns = Vec::new();
        let mut index_ids = Vec::new();
        for spec in crate::index::specs_for(&catalog, table) {
            index_ids.push((spec.name.clone(), reserve_id(cluster).await?));
            index_columns.push((spec.name, Some(spec.columns)));
        }
        cluster
            .ddl(DdlChange::AlterTable {
                database: session.database().to_string(),
                schema: table.schema.clone(),
                old_name: table.name.clone(),
                old_id: table.id,
                table: emptied,
                index_columns,
                index_ids,
                column_renames: Vec::new(),
            })
            .await
    }
    .await;
    if let Err(e) = switched {
        thaw_writes(cluster, table.id).await;
        return Err(e);
    }
    Ok(())
}

/// How long to wait for the other side of an ALTER TABLE's freeze: `lock_timeout` (ms; 0:
/// unset), else [`ALTER_WAIT_FOR_WRITERS_MS`].
pub(crate) fn ddl_wait_ms(lock_timeout_ms: u64) -> u64 {
    match lock_timeout_ms {
        0 => ALTER_WAIT_FOR_WRITERS_MS,
        ms => ms,
    }
}

/// Freezes writes to table `table_id` on every shard, then waits until the writers already
/// holding its rows are done; on failure (another ALTER has it, or the wait timed out) the
/// table is thawed again.
/// PostgreSQL's default `deadlock_timeout`: how long an ALTER inside a block that holds row
/// locks waits for the table's writers.
pub(crate) const DEADLOCK_TIMEOUT_MS: u64 = 1000;

async fn freeze_writes<C: Cluster>(
    cluster: &C,
    table_id: u32,
    timeout_ms: u64,
) -> Result<(), SqlError> {
    cluster.ddl(DdlChange::FreezeWrites { table_id }).await?;
    let waits = (0..cluster.shard_count()).map(|shard| {
        cluster.txn_call(
            shard,
            crate::txn::TxnMsg::AwaitNoWriters {
                table_id,
                timeout_ms,
                except: crate::txn::current_id(cluster),
            },
        )
    });
    for waited in futures_util::future::join_all(waits).await {
        if let Err(e) = waited {
            thaw_writes(cluster, table_id).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Lets writes to the table in again (best effort: a failed catalog write leaves it frozen
/// until the next restart, which forgets freezes).
async fn thaw_writes<C: Cluster>(cluster: &C, table_id: u32) {
    let _ = cluster.ddl(DdlChange::ThawWrites { table_id }).await;
}

async fn reserve_id<C: Cluster>(cluster: &C) -> Result<u32, SqlError> {
    cluster
        .ddl(DdlChange::ReserveId)
        .await?
        .reserved_id
        .ok_or_else(|| SqlError::new(INTERNAL_ERROR, "the catalog reserved no id"))
}

/// Writes the rewritten rows under the new table's id, with the entries and claims of its
/// `indexes`; a duplicate primary key fails with 23505 as CREATE UNIQUE INDEX would.
async fn write_rewritten<C: Cluster>(
    cluster: &C,
    table: &Table,
    rows: Vec<Vec<Datum>>,
    indexes: Vec<crate::index::IndexSpec>,
) -> Result<(), SqlError> {
    // In storage-key order: each shard then takes its rows in ascending key order, which its
    // memtable appends to its ascending run instead of inserting each at a random place in
    // its B-tree (those inserts were a quarter of an ADD PRIMARY KEY's time), and a
    // duplicated primary key lies beside its twin.
    // Keys of one table differ first in their token: sorting by it compares integers, and
    // the key bytes only break its (rare) ties.
    let mut keyed: Vec<(u64, Bytes, Vec<Datum>)> = Vec::with_capacity(rows.len());
    for row in rows {
        let key_bytes = stmt::key_bytes_of(table, &row)?;
        let key = rowcodec::row_key(table.id, &key_bytes);
        let token = rowcodec::storage_key_token(&key).expect("a row key has a token");
        keyed.push((token, key, row));
    }
    keyed.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    if let Some(twins) = keyed.windows(2).find(|pair| pair[0].1 == pair[1].1) {
        return Err(duplicated_key(table, &twins[0].2));
    }
    if indexes.is_empty() {
        return ingest_rewritten(cluster, keyed).await;
    }
    let mut pending: Vec<(usize, RowOp)> = Vec::with_capacity(REWRITE_BATCH_ROWS);
    for (token, key, row) in keyed {
        let shard = cluster.shard_of_token(token);
        let op = RowOp::Put {
            key,
            value: rowcodec::encode_row(&row),
        };
        pending.push((shard, op));
        if pending.len() >= REWRITE_BATCH_ROWS {
            stmt::write_rows_indexed(
                cluster,
                table,
                std::mem::take(&mut pending),
                indexes.clone(),
            )
            .await?;
        }
    }
    stmt::write_rows_indexed(cluster, table, pending, indexes).await?;
    Ok(())
}

/// A rewrite whose rows keep their stored values (ADD PRIMARY KEY, no secondary index):
/// each shard puts its rows under their new keys ([`crate::cluster::Rekey`]), the entries
/// are dealt to the shards that own the new keys, sorted, checked for a duplicated key and
/// ingested, as [`ingest_rewritten`] does.
async fn move_rows_rekeyed<C: Cluster>(
    cluster: &C,
    old: &Arc<Table>,
    rekey: crate::cluster::Rekey,
    env: &Env,
) -> Result<(), SqlError> {
    let table = rekey.table.clone();
    let read = crate::dist::fetch_rekeyed(cluster, old, rekey, env).await?;
    let per_shard = if cluster.shard_count() == 1 {
        read
    } else {
        deal_to_owners(cluster, read)?
    };
    let mut sorted = Vec::with_capacity(per_shard.len());
    for rows in per_shard {
        sorted.push(crate::cluster::sort_on_both_cores(cluster, rows).await);
    }
    // Equal keys have equal tokens, so twins are on one shard, side by side once sorted.
    let (per_shard, twins) = cluster
        .offload(move || {
            let twins = sorted
                .iter()
                .enumerate()
                .find_map(|(shard, rows)| Some((shard, rows.first_repeated_key()?)));
            (sorted, twins)
        })
        .await;
    if let Some((shard, at)) = twins {
        let row = rowcodec::decode_row(per_shard[shard].get(at).1, table.columns.len())
            .map_err(crate::cluster::storage_error)?;
        return Err(duplicated_key(&table, &row));
    }
    ingest_per_shard(cluster, per_shard).await
}

/// Entries read on each shard, dealt to the shards that own their tokens.
fn deal_to_owners<C: Cluster>(
    cluster: &C,
    read: Vec<PackedEntries>,
) -> Result<Vec<PackedEntries>, SqlError> {
    let mut per_shard = packed_per_shard(cluster);
    for entries in read {
        for i in 0..entries.len() {
            let (key, value) = entries.get(i);
            let token = entries.order(i);
            per_shard[cluster.shard_of_token(token)]
                .push(token, key, value)
                .map_err(crate::cluster::storage_error)?;
        }
    }
    Ok(per_shard)
}

/// One empty [`PackedEntries`] per shard.
fn packed_per_shard<C: Cluster>(cluster: &C) -> Vec<PackedEntries> {
    (0..cluster.shard_count())
        .map(|_| PackedEntries::new())
        .collect()
}

/// Each shard's sorted rows into its tables ([`Cluster::ingest`]), all shards at once.
async fn ingest_per_shard<C: Cluster>(
    cluster: &C,
    per_shard: Vec<PackedEntries>,
) -> Result<(), SqlError> {
    let ingests = per_shard
        .into_iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(shard, rows)| cluster.ingest(shard, rows));
    for result in futures_util::future::join_all(ingests).await {
        result?;
    }
    Ok(())
}

/// Hands each shard its rewritten rows, in key order, to write straight into its tables
/// ([`Cluster::ingest`]): the new id's key range is written by nothing else until the
/// catalog names it, so the rows need neither the WAL nor the memtable, and land where no
/// compaction has to move them again.
async fn ingest_rewritten<C: Cluster>(
    cluster: &C,
    keyed: Vec<(u64, Bytes, Vec<Datum>)>,
) -> Result<(), SqlError> {
    let mut per_shard = packed_per_shard(cluster);
    for (token, key, row) in keyed {
        per_shard[cluster.shard_of_token(token)]
            .push_with(
                token,
                |out| out.extend_from_slice(&key),
                |out| rowcodec::encode_row_into(out, &row),
            )
            .map_err(crate::cluster::storage_error)?;
    }
    // Already in key order (`keyed` is sorted), which the sort finds in one pass.
    per_shard.iter_mut().for_each(PackedEntries::sort);
    ingest_per_shard(cluster, per_shard).await
}

/// The 23505 of a new primary key that two rows share, as PostgreSQL's index build words it.
fn duplicated_key(table: &Table, row: &[Datum]) -> SqlError {
    let shown: Vec<String> = table
        .primary_key
        .iter()
        .map(|&c| {
            crate::types::output(&row[c], &crate::types::Style::default()).unwrap_or_default()
        })
        .collect();
    let names: Vec<&str> = table
        .primary_key
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    SqlError::new(
        UNIQUE_VIOLATION,
        format!("could not create unique index \"{}\"", table.pkey_name()),
    )
    .with_detail(format!(
        "Key ({})=({}) is duplicated.",
        names.join(", "),
        shown.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_touches_only_the_identifier() {
        assert_eq!(
            rename_in_expression("a > 0 AND b < a", "a", "x"),
            "x > 0 AND b < x"
        );
        assert_eq!(rename_in_expression("'a' = a", "a", "New"), "'a' = \"New\"");
        assert!(expression_names("(\"A\" + b) > 0", "A"));
        assert!(!expression_names("(\"A\" + b) > 0", "a"));
        assert!(expression_names("B > 0", "b"));
    }
}
