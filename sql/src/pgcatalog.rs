//! PostgreSQL's system catalogs, as clients such as psql query them: `pg_catalog.pg_class`,
//! `pg_namespace`, `pg_attribute`, … and `information_schema.tables` / `columns` /
//! `schemata`, plus the functions, operators and casts psql's meta-commands use
//! (`format_type`, `pg_get_indexdef`, `~`, `::regclass`, `= ANY(array)`, `ARRAY(subquery)`).
//!
//! The relations are virtual: they never reach a shard. The planner asks
//! [`plan_relation`] first for every table name; a catalog relation becomes a `VALUES` plan
//! computed on the coordinator from the statement's [`Catalog`] snapshot and the session.
//! `pg_catalog` is implicitly first on the search path (as in PostgreSQL), so `pg_class`
//! resolves unqualified too; `information_schema` only resolves qualified.
//!
//! # OIDs
//!
//! Stable across restarts, derived from catalog ids (which are never reused):
//! - `pg_catalog` = 11, `public` = 2200 (PostgreSQL's fixed OIDs), `information_schema` =
//!   13000; the one role (named after the session user) = 10; access methods heap = 2,
//!   btree = 403; built-in types keep PostgreSQL's type OIDs.
//! - catalog relations: PostgreSQL 15's fixed OIDs (`pg_class` = 1259, ...); the views
//!   (`pg_roles`, `pg_settings`, `information_schema.*`, ...) `12000 +` their position in
//!   the relation list.
//! - every other database, schema and table: `16384 + 2 * id` (16384 is PostgreSQL's
//!   `FirstNormalObjectId`); a table's primary key index and its constraint: `16384 + 2 * id
//!   + 1`.
//! - check constraints: `2^31 | (table id mod 2^19) << 11 | n`; column defaults
//!   (`pg_attrdef`): `3 * 2^30 | (table id mod 2^19) << 11 | attnum`. These two ranges can
//!   collide only past 524288 catalog ids.
//!
//! # Deliberate differences from PostgreSQL
//!
//! - Columns of type `oid`, `regproc` and `xid` are `int8`; `"char"` is `text`; `float4` is
//!   `float8`; arrays, `int2vector`, `oidvector`, `aclitem[]` and `pg_node_tree` are `text`
//!   holding PostgreSQL's text form (`{1,2}`). `= ANY(x)`, subscripts, `array_to_string`
//!   and `array_upper` read that text form; array elements are of unknown type until
//!   compared, as literals are.
//! - Only user tables and their primary key indexes appear in `pg_class` (not the catalogs
//!   themselves); `pg_proc` and `pg_description` are empty; there are no template databases;
//!   everything is owned by role 10, named after the session user.
//! - `pg_get_expr` returns the stored default/check text, deparsed only for literals
//!   (`'x'::text`, `'-1'::integer`).

use std::collections::HashMap;
use std::sync::Arc;

use sqlparser::ast;

use crate::catalog::{Catalog, Table, DEFAULT_SCHEMA};
use crate::error::*;
use crate::expr::{self, Binder, Bound, Cmp, Eval, Kind};
use crate::plan::{split_name, Plan, Planner, ScopeColumn};
use crate::quote_ident;
use crate::session::Session;
use crate::types::{self, Datum, SqlType as Ty, TYPMOD_NONE};

const INVALID_REGULAR_EXPRESSION: &str = "2201B";

pub(crate) const PG_CATALOG_OID: i64 = 11;
pub(crate) const PUBLIC_OID: i64 = 2200;
pub(crate) const INFORMATION_SCHEMA_OID: i64 = 13000;
pub(crate) const SUPERUSER_OID: i64 = 10;
/// `pg_class` itself: the class of every relation OID (`pg_depend.classid`).
const PG_CLASS_OID: i64 = 1259;
const HEAP_AM: i64 = 2;
const BTREE_AM: i64 = 403;
const FIRST_NORMAL_OID: i64 = 16384;
const DEFAULT_COLLATION: i64 = 100;
const C_COLLATION: i64 = 950;
const UTF8_ENCODING: i64 = 6;

/// A database, schema or table's OID.
pub(crate) fn object_oid(id: u32) -> i64 {
    FIRST_NORMAL_OID + 2 * i64::from(id)
}

/// The OID of a table's primary key index (and of its PRIMARY KEY constraint).
pub(crate) fn pkey_oid(table_id: u32) -> i64 {
    object_oid(table_id) + 1
}

fn derived_oid(range: i64, table_id: u32, n: usize) -> i64 {
    (range << 30) | ((i64::from(table_id) & 0x7_FFFF) << 11) | (n as i64 & 0x7FF)
}

fn check_oid(table_id: u32, n: usize) -> i64 {
    derived_oid(2, table_id, n)
}

fn attrdef_oid(table_id: u32, attnum: usize) -> i64 {
    derived_oid(3, table_id, attnum)
}

/// The OID of the UNIQUE constraint whose index has id `index_id` (the index's own OID is
/// `object_oid(index_id)`, as a table's).
fn unique_constraint_oid(index_id: u32) -> i64 {
    derived_oid(4, index_id, 0)
}

/// The OID of FOREIGN KEY constraint `n` of a table.
fn foreign_key_oid(table_id: u32, n: usize) -> i64 {
    derived_oid(1, table_id, n)
}

/// `pg_get_constraintdef`'s text of a foreign key.
fn foreign_key_def(table: &Table, fk: &crate::catalog::ForeignKeyDef) -> String {
    let cols: Vec<String> = fk
        .columns
        .iter()
        .map(|&i| quote_ident(&table.columns[i].name))
        .collect();
    let ref_cols: Vec<String> = fk.ref_columns.iter().map(|c| quote_ident(c)).collect();
    let target = if fk.ref_schema == DEFAULT_SCHEMA {
        quote_ident(&fk.ref_table)
    } else {
        format!(
            "{}.{}",
            quote_ident(&fk.ref_schema),
            quote_ident(&fk.ref_table)
        )
    };
    let mut def = format!(
        "FOREIGN KEY ({}) REFERENCES {target}({})",
        cols.join(", "),
        ref_cols.join(", ")
    );
    if fk.match_full {
        def.push_str(" MATCH FULL");
    }
    if fk.on_update != crate::catalog::FkAction::NoAction {
        def.push_str(&format!(" ON UPDATE {}", fk.on_update.sql()));
    }
    if fk.on_delete != crate::catalog::FkAction::NoAction {
        def.push_str(&format!(" ON DELETE {}", fk.on_delete.sql()));
    }
    if fk.deferrable {
        def.push_str(" DEFERRABLE");
    }
    if fk.initially_deferred {
        def.push_str(" INITIALLY DEFERRED");
    }
    if fk.not_valid {
        def.push_str(" NOT VALID");
    }
    def
}

/// One constraint as `information_schema` lists it.
struct ConstraintRow<'a> {
    /// Its table's position in `Snapshot::tables`.
    table: usize,
    name: String,
    /// `PRIMARY KEY`, `UNIQUE`, `FOREIGN KEY` or `CHECK`.
    kind: &'static str,
    /// Its own table's columns (a CHECK's: those it reads).
    columns: Vec<usize>,
    deferrable: bool,
    deferred: bool,
    foreign_key: Option<&'a crate::catalog::ForeignKeyDef>,
    /// A foreign key's referenced table (position), its columns there in the foreign key's
    /// order, and the column names of the unique constraint they are.
    referenced: Option<(usize, Vec<usize>, Vec<String>)>,
    /// A foreign key's unique constraint's name.
    unique_name: Option<String>,
    check_clause: Option<String>,
    /// A NOT NULL column's (shown as a CHECK).
    not_null: bool,
}

impl Snapshot {
    /// Every constraint of every table, as PostgreSQL 15's `information_schema` lists them:
    /// a NOT NULL column is a CHECK named `<schema oid>_<table oid>_<attnum>_not_null`.
    fn constraints(&self) -> Vec<ConstraintRow<'_>> {
        let mut out = Vec::new();
        for (at, ti) in self.tables.iter().enumerate() {
            let tb = &ti.table;
            let plain = |name: String, kind: &'static str, columns: Vec<usize>| ConstraintRow {
                table: at,
                name,
                kind,
                columns,
                deferrable: false,
                deferred: false,
                foreign_key: None,
                referenced: None,
                unique_name: None,
                check_clause: None,
                not_null: false,
            };
            if !tb.primary_key.is_empty() {
                out.push(plain(tb.pkey_name(), "PRIMARY KEY", tb.primary_key.clone()));
            }
            for index in self
                .indexes
                .iter()
                .filter(|i| i.table == at && i.def.constraint)
            {
                out.push(plain(
                    index.def.name.clone(),
                    "UNIQUE",
                    index.def.columns.clone(),
                ));
            }
            for fk in &tb.foreign_keys {
                let target = self
                    .tables
                    .iter()
                    .position(|p| fk.references(&p.table.schema, &p.table.name));
                let referenced = target.map(|rt| {
                    let parent = &self.tables[rt].table;
                    let rcols: Vec<usize> = fk
                        .ref_columns
                        .iter()
                        .filter_map(|c| parent.column_index(c))
                        .collect();
                    let (key, name) = self.unique_constraint_over(rt, &rcols);
                    (rt, rcols, key, name)
                });
                out.push(ConstraintRow {
                    deferrable: fk.deferrable,
                    deferred: fk.initially_deferred,
                    foreign_key: Some(fk),
                    unique_name: referenced.as_ref().and_then(|r| r.3.clone()),
                    referenced: referenced.map(|(rt, rcols, key, _)| (rt, rcols, key)),
                    ..plain(fk.name.clone(), "FOREIGN KEY", fk.columns.clone())
                });
            }
            for c in &tb.checks {
                let read = (tb.columns.iter().enumerate())
                    .filter(|(_, col)| crate::alter::expression_names(&c.expr, &col.name))
                    .map(|(i, _)| i)
                    .collect();
                out.push(ConstraintRow {
                    check_clause: Some(format!("(({}))", c.expr)),
                    ..plain(c.name.clone(), "CHECK", read)
                });
            }
            for (i, col) in tb.columns.iter().enumerate() {
                if col.not_null || tb.primary_key.contains(&i) {
                    let name = format!("{}_{}_{}_not_null", ti.nsp, ti.oid, i + 1);
                    out.push(ConstraintRow {
                        check_clause: Some(format!("{} IS NOT NULL", col.name)),
                        not_null: true,
                        ..plain(name, "CHECK", vec![i])
                    });
                }
            }
        }
        out
    }

    /// The primary key or UNIQUE constraint of table `at` over exactly `columns`: its
    /// columns' names in its own order, and its name.
    fn unique_constraint_over(
        &self,
        at: usize,
        columns: &[usize],
    ) -> (Vec<String>, Option<String>) {
        let tb = &self.tables[at].table;
        let mut want = columns.to_vec();
        want.sort_unstable();
        let names = |cols: &[usize]| cols.iter().map(|&c| tb.columns[c].name.clone()).collect();
        let mut pk = tb.primary_key.clone();
        pk.sort_unstable();
        if !pk.is_empty() && pk == want {
            return (names(&tb.primary_key), Some(tb.pkey_name()));
        }
        for index in self
            .indexes
            .iter()
            .filter(|i| i.table == at && i.def.unique)
        {
            let mut cols = index.def.columns.clone();
            cols.sort_unstable();
            if cols == want {
                return (names(&index.def.columns), Some(index.def.name.clone()));
            }
        }
        (Vec::new(), None)
    }
}

/// One schema of the current database, as the catalogs show it.
#[derive(Debug)]
struct SchemaInfo {
    oid: i64,
    name: String,
}

/// One user table.
#[derive(Debug)]
struct TableInfo {
    oid: i64,
    nsp: i64,
    table: Arc<Table>,
}

/// A secondary index: its OID (`16384 + 2 * id`, as for tables: ids are unique across the
/// catalog), its table's position in `Snapshot::tables`, and its definition.
#[derive(Debug)]
struct IndexInfo {
    oid: i64,
    table: usize,
    def: crate::catalog::IndexDef,
}

/// A sequence (CREATE SEQUENCE, or a serial column's): its OID, schema and definition.
#[derive(Debug)]
struct SequenceInfo {
    oid: i64,
    nsp: i64,
    schema: String,
    def: crate::catalog::SequenceDef,
}

/// A view: its OID, schema and definition.
#[derive(Debug)]
struct ViewInfo {
    oid: i64,
    nsp: i64,
    schema: String,
    def: crate::catalog::ViewDef,
}

/// A view's output columns (None: its query does not plan now, or views are being
/// described already).
type ViewColumns = Option<Vec<(String, Ty, i32)>>;

thread_local! {
    /// Set while a snapshot describes its views: a view over the catalog relations plans a
    /// snapshot of its own, which must not describe the views again.
    static DESCRIBING_VIEWS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A view's output columns, as CREATE VIEW described them: its query planned against
/// `catalog`, renamed by the view's column list.
fn view_columns(
    catalog: &Catalog,
    session: &Session,
    view: &crate::catalog::ViewDef,
) -> Option<Vec<(String, Ty, i32)>> {
    if DESCRIBING_VIEWS.with(|d| d.replace(true)) {
        return None;
    }
    /// Clears the flag however describing ends (a panic too).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            DESCRIBING_VIEWS.with(|d| d.set(false));
        }
    }
    let done = Done;
    let described = (|| {
        let parser = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {});
        let query = parser
            .try_with_sql(&view.query)
            .and_then(|mut p| p.parse_query())
            .ok()?;
        let no_params = std::cell::RefCell::new(Vec::new());
        crate::stmt::describe_query(session, catalog, &view.query, &query, &no_params).ok()
    })();
    drop(done);
    let mut columns: Vec<(String, Ty, i32)> = described?
        .into_iter()
        .map(|c| {
            let ty = Ty::from_oid(c.type_oid)?;
            Some((c.name, ty, c.type_modifier))
        })
        .collect::<Option<_>>()?;
    for (c, name) in columns.iter_mut().zip(&view.columns) {
        c.0 = name.clone();
    }
    Some(columns)
}

/// What the catalog relations and functions see for one statement: the catalog and the
/// session's user, database, search path and settings.
#[derive(Debug)]
pub(crate) struct Snapshot {
    user: String,
    database: String,
    /// Schema names in search order, `pg_catalog` first.
    search_path: Vec<String>,
    databases: Vec<(i64, String)>,
    schemas: Vec<SchemaInfo>,
    tables: Vec<TableInfo>,
    /// Secondary indexes (CREATE INDEX).
    indexes: Vec<IndexInfo>,
    sequences: Vec<SequenceInfo>,
    /// Sequence OID → position in `sequences`.
    sequence_by_oid: HashMap<i64, usize>,
    views: Vec<ViewInfo>,
    /// View OID → position in `views`.
    view_by_oid: HashMap<i64, usize>,
    /// Each view's columns, by position in `views`: described only when a statement reads
    /// `pg_class` or `pg_attribute` ([`Snapshot::describe_views`]).
    view_columns: std::sync::OnceLock<Vec<ViewColumns>>,
    /// Table and primary key index OIDs → (position in `tables`, is the index); secondary
    /// index OIDs are in `index_by_oid`.
    by_oid: HashMap<i64, (usize, bool)>,
    /// Secondary index OID → position in `indexes`.
    index_by_oid: HashMap<i64, usize>,
    /// (schema, relation name) → OID, for tables, indexes and sequences.
    by_name: HashMap<(String, String), i64>,
    params: Vec<(String, String)>,
    /// A size function (`pg_table_size` …) was bound: the statement gathers
    /// [`Snapshot::sizes`] from the shards before it runs ([`gather_sizes`]).
    wants_sizes: std::sync::atomic::AtomicBool,
    /// `pg_database_size` was bound: the other databases' sizes are gathered too.
    wants_database_sizes: std::sync::atomic::AtomicBool,
    /// Stored bytes of each table's rows and each secondary index's entries, by OID.
    sizes: std::sync::OnceLock<HashMap<i64, u64>>,
    /// The other databases' storage prefixes (their tables and indexes), for
    /// `pg_database_size`; their totals land in `database_sizes` with `sizes`.
    other_databases: Vec<(String, Vec<Vec<u8>>)>,
    database_sizes: std::sync::OnceLock<HashMap<String, u64>>,
    /// The session's output style (`pg_stats` shows histogram bounds as text).
    style: crate::types::Style,
}

impl Snapshot {
    pub(crate) fn new(catalog: &Catalog, session: &Session) -> Snapshot {
        let user = session.user().to_string();
        let database = session.database().to_string();
        let mut search_path = vec!["pg_catalog".to_string()];
        for part in session.parameter("search_path").unwrap_or("").split(',') {
            let p = part.trim();
            let p = p
                .strip_prefix('"')
                .and_then(|p| p.strip_suffix('"'))
                .map(|p| p.replace("\"\"", "\""))
                .unwrap_or_else(|| p.to_string());
            let p = if p == "$user" { user.clone() } else { p };
            if !p.is_empty() && !search_path.contains(&p) {
                search_path.push(p);
            }
        }
        let databases = catalog
            .databases
            .iter()
            .map(|(name, db)| (object_oid(db.id), name.clone()))
            .collect();
        let other_databases = catalog
            .databases
            .iter()
            .filter(|(name, _)| **name != database)
            .map(|(name, db)| (name.clone(), database_prefixes(db)))
            .collect();
        let mut schemas = vec![SchemaInfo {
            oid: PG_CATALOG_OID,
            name: "pg_catalog".to_string(),
        }];
        let mut tables = Vec::new();
        let mut sequences = Vec::new();
        let mut views = Vec::new();
        let mut pending_indexes = Vec::new();
        if let Some(db) = catalog.database(&database) {
            for (name, schema) in &db.schemas {
                let oid = if name == DEFAULT_SCHEMA {
                    PUBLIC_OID
                } else {
                    object_oid(schema.id)
                };
                schemas.push(SchemaInfo {
                    oid,
                    name: name.clone(),
                });
                for table in schema.tables.values() {
                    tables.push(TableInfo {
                        oid: object_oid(table.id),
                        nsp: oid,
                        table: table.clone(),
                    });
                }
                pending_indexes.extend(schema.indexes.values().map(|i| (name.clone(), i.clone())));
                views.extend(schema.views.values().map(|v| ViewInfo {
                    oid: object_oid(v.id),
                    nsp: oid,
                    schema: name.clone(),
                    def: v.clone(),
                }));
                sequences.extend(schema.sequences.values().map(|q| SequenceInfo {
                    oid: object_oid(q.id),
                    nsp: oid,
                    schema: name.clone(),
                    def: q.clone(),
                }));
            }
        }
        schemas.push(SchemaInfo {
            oid: INFORMATION_SCHEMA_OID,
            name: "information_schema".to_string(),
        });
        let mut by_oid = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, ti) in tables.iter().enumerate() {
            let tb = &ti.table;
            by_oid.insert(ti.oid, (i, false));
            by_name.insert((tb.schema.clone(), tb.name.clone()), ti.oid);
            if !tb.primary_key.is_empty() {
                by_oid.insert(pkey_oid(tb.id), (i, true));
                by_name
                    .entry((tb.schema.clone(), tb.pkey_name()))
                    .or_insert(pkey_oid(tb.id));
            }
        }
        let mut indexes = Vec::new();
        let mut index_by_oid = HashMap::new();
        for (schema, def) in pending_indexes {
            let Some(&table_oid) = by_name.get(&(schema.clone(), def.table.clone())) else {
                continue;
            };
            let Some(&(table, false)) = by_oid.get(&table_oid) else {
                continue;
            };
            let oid = object_oid(def.id);
            by_name.entry((schema, def.name.clone())).or_insert(oid);
            index_by_oid.insert(oid, indexes.len());
            indexes.push(IndexInfo { oid, table, def });
        }
        let mut sequence_by_oid = HashMap::new();
        for (i, q) in sequences.iter().enumerate() {
            by_name
                .entry((q.schema.clone(), q.def.name.clone()))
                .or_insert(q.oid);
            sequence_by_oid.insert(q.oid, i);
        }
        let mut view_by_oid = HashMap::new();
        for (i, v) in views.iter().enumerate() {
            by_name
                .entry((v.schema.clone(), v.def.name.clone()))
                .or_insert(v.oid);
            view_by_oid.insert(v.oid, i);
        }
        Snapshot {
            user,
            database,
            search_path,
            databases,
            schemas,
            tables,
            indexes,
            sequences,
            sequence_by_oid,
            views,
            view_by_oid,
            view_columns: std::sync::OnceLock::new(),
            by_oid,
            index_by_oid,
            by_name,
            params: session.all_parameters(),
            wants_sizes: std::sync::atomic::AtomicBool::new(false),
            wants_database_sizes: std::sync::atomic::AtomicBool::new(false),
            sizes: std::sync::OnceLock::new(),
            other_databases,
            database_sizes: std::sync::OnceLock::new(),
            style: session.style(),
        }
    }

    /// Stored bytes of database `name`'s tables and indexes (None: no such database).
    fn database_bytes(&self, name: &str) -> Result<Option<u64>, SqlError> {
        let not_gathered = || {
            SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "relation size functions are supported only in SELECT",
            )
        };
        if name == self.database {
            return Ok(Some(
                self.sizes.get().ok_or_else(not_gathered)?.values().sum(),
            ));
        }
        let sizes = self.database_sizes.get().ok_or_else(not_gathered)?;
        let exists = self.databases.iter().any(|(_, n)| n == name);
        Ok(exists.then(|| sizes.get(name).copied().unwrap_or(0)))
    }

    /// The key prefixes whose stored bytes make up each relation with storage: a table's
    /// rows, a secondary index's entries and (unique ones) claims.
    fn storage_prefixes(&self) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push((t.oid, crate::rowcodec::table_prefix(t.table.id).to_vec()));
        }
        for index in &self.indexes {
            let table_id = self.tables[index.table].table.id;
            out.push((index.oid, crate::index::entry_prefix(index.def.id)));
            out.push((
                index.oid,
                crate::index::claim_prefix(table_id, index.def.id),
            ));
        }
        out
    }

    /// Stored bytes of the relation `oid` (None: not one of this database's relations). A
    /// table counts its rows; a primary key index 0 (the rows are stored in its order: it
    /// has no storage of its own); a sequence or view 0.
    fn relation_bytes(&self, oid: i64) -> Result<Option<u64>, SqlError> {
        let sizes = self.sizes.get().ok_or_else(|| {
            SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "relation size functions are supported only in SELECT",
            )
        })?;
        if let Some(&bytes) = sizes.get(&oid) {
            return Ok(Some(bytes));
        }
        let known = self.by_oid.contains_key(&oid)
            || self.index_by_oid.contains_key(&oid)
            || self.sequence_by_oid.contains_key(&oid)
            || self.view_by_oid.contains_key(&oid);
        Ok(known.then_some(0))
    }

    /// Bytes of the secondary indexes of table `oid` (None: no such table).
    fn indexes_bytes(&self, oid: i64) -> Result<Option<u64>, SqlError> {
        let Some(&(at, false)) = self.by_oid.get(&oid) else {
            return Ok(None);
        };
        let mut total = 0;
        for index in self.indexes.iter().filter(|i| i.table == at) {
            total += self.relation_bytes(index.oid)?.unwrap_or(0);
        }
        Ok(Some(total))
    }
}

/// Asks every shard for the stored bytes of the snapshot's relations, if a size function of
/// the statement wants them (before it runs: evaluation cannot wait for the shards).
pub(crate) async fn gather_sizes<C: crate::cluster::Cluster>(
    cluster: &C,
    snapshot: Option<&Arc<Snapshot>>,
) -> Result<(), SqlError> {
    let Some(snapshot) = snapshot else {
        return Ok(());
    };
    if !snapshot
        .wants_sizes
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Ok(());
    }
    let relations = snapshot.storage_prefixes();
    let others: &[(String, Vec<Vec<u8>>)] = if snapshot
        .wants_database_sizes
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        &snapshot.other_databases
    } else {
        &[]
    };
    let mut request: Vec<Vec<u8>> = relations.iter().map(|(_, p)| p.clone()).collect();
    request.extend(
        others
            .iter()
            .flat_map(|(_, prefixes)| prefixes.iter().cloned()),
    );
    let mut sizes: HashMap<i64, u64> = HashMap::new();
    let mut database_sizes: HashMap<String, u64> = HashMap::new();
    let asks = (0..cluster.shard_count()).map(|shard| {
        let msg = crate::txn::TxnMsg::StoredBytes {
            prefixes: request.clone(),
        };
        cluster.txn_call(shard, msg)
    });
    for reply in futures_util::future::join_all(asks).await {
        let crate::txn::TxnReply::Sizes(bytes) = reply? else {
            return Err(SqlError::new(INTERNAL_ERROR, "a shard sent no sizes"));
        };
        let mut bytes = bytes.into_iter();
        for ((oid, _), b) in relations.iter().zip(bytes.by_ref()) {
            *sizes.entry(*oid).or_default() += b;
        }
        for (name, prefixes) in others {
            let total: u64 = bytes.by_ref().take(prefixes.len()).sum();
            *database_sizes.entry(name.clone()).or_default() += total;
        }
    }
    let _ = snapshot.sizes.set(sizes);
    let _ = snapshot.database_sizes.set(database_sizes);
    Ok(())
}

/// The storage prefixes of a database's tables (rows) and indexes (entries and claims).
fn database_prefixes(db: &crate::catalog::Database) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for schema in db.schemas.values() {
        for table in schema.tables.values() {
            out.push(crate::rowcodec::table_prefix(table.id).to_vec());
        }
        for index in schema.indexes.values() {
            out.push(crate::index::entry_prefix(index.id));
            if let Some(table) = schema.tables.get(&index.table) {
                out.push(crate::index::claim_prefix(table.id, index.id));
            }
        }
    }
    out
}

impl Snapshot {
    fn schema_name(&self, oid: i64) -> Option<&str> {
        self.schemas
            .iter()
            .find(|s| s.oid == oid)
            .map(|s| s.name.as_str())
    }

    fn table_by_oid(&self, oid: i64) -> Option<&TableInfo> {
        match self.by_oid.get(&oid) {
            Some(&(i, false)) => Some(&self.tables[i]),
            _ => None,
        }
    }

    /// The table whose primary key index has this OID.
    fn table_by_index_oid(&self, oid: i64) -> Option<&TableInfo> {
        match self.by_oid.get(&oid) {
            Some(&(i, true)) => Some(&self.tables[i]),
            _ => None,
        }
    }

    /// Describes every view's columns, once (they cost a plan each, so only statements that
    /// read `pg_class` or `pg_attribute` ask).
    fn describe_views(&self, catalog: &Catalog, session: &Session) {
        self.view_columns.get_or_init(|| {
            self.views
                .iter()
                .map(|v| view_columns(catalog, session, &v.def))
                .collect()
        });
    }

    /// A view's described columns (None until described, or when its query does not plan).
    fn columns_of_view(&self, i: usize) -> Option<&[(String, Ty, i32)]> {
        self.view_columns.get()?.get(i)?.as_deref()
    }

    /// Whether a table has a primary key or a secondary index.
    fn has_indexes(&self, ti: &TableInfo) -> bool {
        !ti.table.primary_key.is_empty()
            || self
                .indexes
                .iter()
                .any(|i| self.tables[i.table].oid == ti.oid)
    }

    /// A table, index, sequence or view's (schema, name), by OID.
    fn user_relation_name(&self, oid: i64) -> Option<(String, String)> {
        if let Some(t) = self.table_by_oid(oid) {
            Some((t.table.schema.clone(), t.table.name.clone()))
        } else if let Some(t) = self.table_by_index_oid(oid) {
            Some((t.table.schema.clone(), t.table.pkey_name()))
        } else if let Some(i) = self.secondary_index(oid) {
            Some((
                self.tables[i.table].table.schema.clone(),
                i.def.name.clone(),
            ))
        } else if let Some(&i) = self.sequence_by_oid.get(&oid) {
            let q = &self.sequences[i];
            Some((q.schema.clone(), q.def.name.clone()))
        } else {
            let v = &self.views[*self.view_by_oid.get(&oid)?];
            Some((v.schema.clone(), v.def.name.clone()))
        }
    }

    /// The table and column (attnum) a serial column's sequence belongs to: the column whose
    /// default takes its next value.
    fn sequence_owner(&self, q: &SequenceInfo) -> Option<(&TableInfo, usize)> {
        let table = q.def.owned_by.as_ref()?;
        let default = crate::stmt::serial_default(&q.def.name);
        self.tables
            .iter()
            .filter(|t| t.nsp == q.nsp && t.table.name == *table)
            .find_map(|t| {
                let i = t
                    .table
                    .columns
                    .iter()
                    .position(|c| c.default.as_deref() == Some(default.as_str()))?;
                Some((t, i + 1))
            })
    }

    /// `pg_get_serial_sequence(table, column)`: the qualified name of the sequence a serial
    /// column takes its values from (None: the column has none, or the relation is not a
    /// table). The table name is read as SQL reads names; the column name is taken as is.
    fn serial_sequence(&self, table: &str, column: &str) -> Result<Option<String>, SqlError> {
        let oid = self.regclass_oid(table).ok_or_else(|| {
            SqlError::new(
                UNDEFINED_TABLE,
                format!("relation \"{table}\" does not exist"),
            )
        })?;
        let Some(ti) = self.table_by_oid(oid) else {
            return Ok(None);
        };
        let attnum = ti
            .table
            .columns
            .iter()
            .position(|c| c.name == column)
            .ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_COLUMN,
                    format!(
                        "column \"{column}\" of relation \"{}\" does not exist",
                        ti.table.name
                    ),
                )
            })?
            + 1;
        Ok(self
            .sequences
            .iter()
            .find(|q| {
                self.sequence_owner(q)
                    .is_some_and(|(owner, n)| owner.oid == ti.oid && n == attnum)
            })
            .map(|q| format!("{}.{}", quote_ident(&q.schema), quote_ident(&q.def.name))))
    }

    /// A sequence's data type: its serial column's, else bigint (CREATE SEQUENCE's default).
    fn sequence_type(&self, q: &SequenceInfo) -> Ty {
        if let Some(ty) = q.def.data_type {
            return ty;
        }
        self.sequence_owner(q)
            .map_or(Ty::Int8, |(t, attnum)| t.table.columns[attnum - 1].ty)
    }

    /// `pg_table_is_visible`: the relation's schema is on the search path and no schema
    /// before it there has a relation of the same name.
    fn relation_visible(&self, oid: i64) -> bool {
        if let Some((schema, _)) = catalog_relation_by_oid(oid) {
            // pg_catalog is searched first; information_schema is not on the path.
            return schema == "pg_catalog";
        }
        let Some((schema, name)) = self.user_relation_name(oid) else {
            return false;
        };
        for s in &self.search_path {
            if *s == schema {
                return true;
            }
            if self.by_name.contains_key(&(s.clone(), name.clone())) {
                return false;
            }
        }
        false
    }

    /// A relation's name as `regclass` prints it: qualified unless visible.
    fn regclass_name(&self, oid: i64) -> String {
        if let Some((schema, name)) = catalog_relation_by_oid(oid) {
            return if schema == "pg_catalog" {
                name.to_string()
            } else {
                format!("{schema}.{name}")
            };
        }
        let found = self.user_relation_name(oid);
        match found {
            Some((schema, name)) if self.relation_visible(oid) => {
                let _ = schema;
                quote_ident(&name)
            }
            Some((schema, name)) => format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            None => oid.to_string(),
        }
    }

    /// `'name'::regclass`: the OID of a table or index by (optionally qualified) name.
    fn regclass_oid(&self, text: &str) -> Option<i64> {
        // A number is an OID, taken as it is (PostgreSQL's regclassin).
        if !text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()) {
            return text.parse().ok();
        }
        let parts = name_parts(text);
        let (schemas, name): (Vec<String>, &str) = match parts.as_slice() {
            [n] => (self.search_path.clone(), n),
            [s, n] => (vec![s.clone()], n),
            _ => return None,
        };
        for s in &schemas {
            if let Some(oid) = catalog_relation_oid(s, name) {
                return Some(oid);
            }
            if let Some(&oid) = self.by_name.get(&(s.clone(), name.to_string())) {
                return Some(oid);
            }
        }
        None
    }

    fn user_name(&self, oid: i64) -> String {
        if oid == SUPERUSER_OID {
            self.user.clone()
        } else {
            format!("unknown (OID={oid})")
        }
    }

    /// `pg_get_indexdef(oid, column, ..)`: the CREATE INDEX statement, or with a column
    /// number (1-based) just that key column.
    fn secondary_index(&self, oid: i64) -> Option<&IndexInfo> {
        self.index_by_oid.get(&oid).map(|&i| &self.indexes[i])
    }

    /// `pretty` (psql's `\d`) prints a partial index's WHERE without parentheses.
    fn index_def(&self, oid: i64, column: i64, pretty: bool) -> Option<String> {
        if let Some(i) = self.secondary_index(oid) {
            let table = &self.tables[i.table].table;
            if column > 0 {
                let key = usize::try_from(column - 1)
                    .ok()
                    .and_then(|k| i.def.columns.get(k));
                return Some(
                    key.map_or_else(String::new, |&c| quote_ident(&table.columns[c].name)),
                );
            }
            let cols: Vec<String> = i
                .def
                .columns
                .iter()
                .map(|&c| quote_ident(&table.columns[c].name))
                .collect();
            let predicate = i
                .def
                .predicate
                .as_ref()
                .map_or_else(String::new, |p| match pretty {
                    true => format!(" WHERE {p}"),
                    false => format!(" WHERE ({p})"),
                });
            let include = match i.def.include.is_empty() {
                true => String::new(),
                false => {
                    let names: Vec<String> = i.def.include.iter().map(|n| quote_ident(n)).collect();
                    format!(" INCLUDE ({})", names.join(", "))
                }
            };
            return Some(format!(
                "CREATE {}INDEX {} ON {}.{} USING btree ({}){include}{predicate}",
                if i.def.unique { "UNIQUE " } else { "" },
                quote_ident(&i.def.name),
                quote_ident(&table.schema),
                quote_ident(&table.name),
                cols.join(", ")
            ));
        }
        let t = self.table_by_index_oid(oid)?;
        if column > 0 {
            // Past the last key column PostgreSQL answers an empty string.
            let key = usize::try_from(column - 1)
                .ok()
                .and_then(|k| t.table.primary_key.get(k));
            return Some(key.map_or_else(String::new, |&i| quote_ident(&t.table.columns[i].name)));
        }
        let cols: Vec<String> = t
            .table
            .primary_key
            .iter()
            .map(|&i| quote_ident(&t.table.columns[i].name))
            .collect();
        Some(format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote_ident(&t.table.pkey_name()),
            quote_ident(&t.table.schema),
            quote_ident(&t.table.name),
            cols.join(", ")
        ))
    }

    fn constraint_def(&self, oid: i64, pretty: bool) -> Option<String> {
        if let Some(t) = self.table_by_index_oid(oid) {
            let cols: Vec<String> = t
                .table
                .primary_key
                .iter()
                .map(|&i| quote_ident(&t.table.columns[i].name))
                .collect();
            return Some(format!("PRIMARY KEY ({})", cols.join(", ")));
        }
        if let Some(index) = self
            .indexes
            .iter()
            .find(|i| i.def.constraint && unique_constraint_oid(i.def.id) == oid)
        {
            let table = &self.tables[index.table].table;
            let cols: Vec<String> = index
                .def
                .columns
                .iter()
                .map(|&i| quote_ident(&table.columns[i].name))
                .collect();
            return Some(format!("UNIQUE ({})", cols.join(", ")));
        }
        for t in &self.tables {
            for (n, c) in t.table.checks.iter().enumerate() {
                if check_oid(t.table.id, n) == oid {
                    let def = if pretty {
                        format!("CHECK ({})", c.expr)
                    } else {
                        format!("CHECK (({}))", c.expr)
                    };
                    return Some(if c.not_valid {
                        format!("{def} NOT VALID")
                    } else {
                        def
                    });
                }
            }
            for (n, fk) in t.table.foreign_keys.iter().enumerate() {
                if foreign_key_oid(t.table.id, n) == oid {
                    return Some(foreign_key_def(&t.table, fk));
                }
            }
        }
        None
    }
}

/// The snapshot of the statement `binder` plans (built once per statement).
fn snapshot(binder: &Binder, pos: Option<usize>) -> Result<Arc<Snapshot>, SqlError> {
    let planner = binder.planner.ok_or_else(|| {
        SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "system catalog functions are not supported here",
        )
        .at(pos)
    })?;
    Ok(planner
        .pg
        .get_or_init(|| Arc::new(Snapshot::new(planner.catalog, planner.session)))
        .clone())
}

// ---------------------------------------------------------------------------------------------
// Relations

/// Column types as written in the relation specs below.
fn spec_type(t: &str) -> Ty {
    match t {
        "oid" | "int8" => Ty::Int8,
        "name" => Ty::Name,
        "bool" => Ty::Bool,
        "int2" => Ty::Int2,
        "int4" => Ty::Int4,
        "float" => Ty::Float8,
        "float4" => Ty::Float4,
        "text[]" => Ty::Array(&Ty::Text),
        "int2[]" => Ty::Array(&Ty::Int2),
        // "char", text, arrays (text form), pg_node_tree.
        _ => Ty::Text,
    }
}

const PG_CLASS: &str = "oid:oid relname:name relnamespace:oid reltype:oid reloftype:oid relowner:oid relam:oid relfilenode:oid reltablespace:oid relpages:int4 reltuples:float4 relallvisible:int4 reltoastrelid:oid relhasindex:bool relisshared:bool relpersistence:char relkind:char relnatts:int2 relchecks:int2 relhasrules:bool relhastriggers:bool relhassubclass:bool relrowsecurity:bool relforcerowsecurity:bool relispopulated:bool relreplident:char relispartition:bool relrewrite:oid relacl:array reloptions:text[] relpartbound:node";
const PG_NAMESPACE: &str = "oid:oid nspname:name nspowner:oid nspacl:array";
const PG_ATTRIBUTE: &str = "attrelid:oid attname:name atttypid:oid attstattarget:int4 attlen:int2 attnum:int2 attndims:int4 attcacheoff:int4 atttypmod:int4 attbyval:bool attalign:char attstorage:char attcompression:char attnotnull:bool atthasdef:bool atthasmissing:bool attidentity:char attgenerated:char attisdropped:bool attislocal:bool attinhcount:int4 attcollation:oid attacl:array attoptions:array attfdwoptions:array attmissingval:array";
const PG_TYPE: &str = "oid:oid typname:name typnamespace:oid typowner:oid typlen:int2 typbyval:bool typtype:char typcategory:char typispreferred:bool typisdefined:bool typdelim:char typrelid:oid typsubscript:oid typelem:oid typarray:oid typinput:oid typoutput:oid typreceive:oid typsend:oid typmodin:oid typmodout:oid typanalyze:oid typalign:char typstorage:char typnotnull:bool typbasetype:oid typtypmod:int4 typndims:int4 typcollation:oid typdefaultbin:node typdefault:text typacl:array";
const PG_INDEX: &str = "indexrelid:oid indrelid:oid indnatts:int2 indnkeyatts:int2 indisunique:bool indnullsnotdistinct:bool indisprimary:bool indisexclusion:bool indimmediate:bool indisclustered:bool indisvalid:bool indcheckxmin:bool indisready:bool indislive:bool indisreplident:bool indkey:text indcollation:text indclass:text indoption:text indexprs:node indpred:node";
const PG_CONSTRAINT: &str = "oid:oid conname:name connamespace:oid contype:char condeferrable:bool condeferred:bool convalidated:bool conrelid:oid contypid:oid conindid:oid conparentid:oid confrelid:oid confupdtype:char confdeltype:char confmatchtype:char conislocal:bool coninhcount:int4 connoinherit:bool conkey:int2[] confkey:int2[] conpfeqop:array conppeqop:array conffeqop:array confdelsetcols:array conexclop:array conbin:node";
const PG_SEQUENCE: &str = "seqrelid:oid seqtypid:oid seqstart:int8 seqincrement:int8 seqmax:int8 seqmin:int8 seqcache:int8 seqcycle:bool";
const PG_TABLES: &str = "schemaname:name tablename:name tableowner:name tablespace:name hasindexes:bool hasrules:bool hastriggers:bool rowsecurity:bool";
const PG_INDEXES: &str =
    "schemaname:name tablename:name indexname:name tablespace:name indexdef:text";
const PG_DEPEND: &str =
    "classid:oid objid:oid objsubid:int4 refclassid:oid refobjid:oid refobjsubid:int4 deptype:char";
const PG_ATTRDEF: &str = "oid:oid adrelid:oid adnum:int2 adbin:node";
const PG_AM: &str = "oid:oid amname:name amhandler:oid amtype:char";
const PG_DATABASE: &str = "oid:oid datname:name datdba:oid encoding:int4 datlocprovider:char datistemplate:bool datallowconn:bool datconnlimit:int4 dattablespace:oid datcollate:text datctype:text daticulocale:text datcollversion:text datacl:array";
const PG_ROLES: &str = "rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool rolcreatedb:bool rolcanlogin:bool rolreplication:bool rolconnlimit:int4 rolpassword:text rolvaliduntil:text rolbypassrls:bool rolconfig:array oid:oid";
const PG_USER: &str = "usename:name usesysid:oid usecreatedb:bool usesuper:bool userepl:bool usebypassrls:bool passwd:text valuntil:text useconfig:array";
const PG_SETTINGS: &str = "name:text setting:text unit:text category:text short_desc:text extra_desc:text context:text vartype:text source:text min_val:text max_val:text enumvals:array boot_val:text reset_val:text sourcefile:text sourceline:int4 pending_restart:bool";
const PG_PROC: &str = "oid:oid proname:name pronamespace:oid proowner:oid prolang:oid procost:float4 prorows:float4 provariadic:oid prosupport:oid prokind:char prosecdef:bool proleakproof:bool proisstrict:bool proretset:bool provolatile:char proparallel:char pronargs:int2 pronargdefaults:int2 prorettype:oid proargtypes:text proallargtypes:array proargmodes:array proargnames:array proargdefaults:node protrftypes:array prosrc:text probin:text prosqlbody:node proconfig:array proacl:array";
const PG_AUTH_MEMBERS: &str = "oid:oid roleid:oid member:oid grantor:oid admin_option:bool";
const PG_EXTENSION: &str = "oid:oid extname:name extowner:oid extnamespace:oid extrelocatable:bool extversion:text extconfig:array extcondition:array";
const PG_TABLESPACE: &str = "oid:oid spcname:name spcowner:oid spcacl:array spcoptions:array";
const PG_DESCRIPTION: &str = "objoid:oid classoid:oid objsubid:int4 description:text";
const PG_COLLATION: &str = "oid:oid collname:name collnamespace:oid collowner:oid collprovider:char collisdeterministic:bool collencoding:int4 collcollate:text collctype:text colliculocale:text collversion:text";
const PG_INHERITS: &str = "inhrelid:oid inhparent:oid inhseqno:int4 inhdetachpending:bool";
const PG_POLICY: &str = "oid:oid polname:name polrelid:oid polcmd:char polpermissive:bool polroles:array polqual:node polwithcheck:node";
const PG_TRIGGER: &str = "oid:oid tgrelid:oid tgparentid:oid tgname:name tgfoid:oid tgtype:int2 tgenabled:char tgisinternal:bool tgconstrrelid:oid tgconstrindid:oid tgconstraint:oid tgdeferrable:bool tginitdeferred:bool tgnargs:int2 tgattr:text tgargs:text tgqual:node tgoldtable:name tgnewtable:name";
const PG_STATISTIC_EXT: &str = "oid:oid stxrelid:oid stxname:name stxnamespace:oid stxowner:oid stxstattarget:int4 stxkeys:text stxkind:array stxexprs:node";
const PG_PUBLICATION: &str = "oid:oid pubname:name pubowner:oid puballtables:bool pubinsert:bool pubupdate:bool pubdelete:bool pubtruncate:bool pubviaroot:bool";
const PG_PUBLICATION_REL: &str = "oid:oid prpubid:oid prrelid:oid prqual:node prattrs:text";
const PG_PUBLICATION_NAMESPACE: &str = "oid:oid pnpubid:oid pnnspid:oid";
const PG_REWRITE: &str = "oid:oid rulename:name ev_class:oid ev_type:char ev_enabled:char is_instead:bool ev_qual:node ev_action:node";
const PG_FOREIGN_TABLE: &str = "ftrelid:oid ftserver:oid ftoptions:array";
const PG_PARTITIONED_TABLE: &str = "partrelid:oid partstrat:char partnatts:int2 partdefid:oid partattrs:text partclass:text partcollation:text partexprs:node";
const IS_TABLES: &str = "table_catalog:name table_schema:name table_name:name table_type:text self_referencing_column_name:name reference_generation:text user_defined_type_catalog:name user_defined_type_schema:name user_defined_type_name:name is_insertable_into:text is_typed:text commit_action:text";
const IS_COLUMNS: &str = "table_catalog:name table_schema:name table_name:name column_name:name ordinal_position:int4 column_default:text is_nullable:text data_type:text character_maximum_length:int4 character_octet_length:int4 numeric_precision:int4 numeric_precision_radix:int4 numeric_scale:int4 datetime_precision:int4 udt_catalog:name udt_schema:name udt_name:name collation_name:name is_identity:text is_generated:text is_updatable:text";
const PG_STATS: &str = "schemaname:name tablename:name attname:name inherited:bool null_frac:float4 avg_width:int4 n_distinct:float4 most_common_vals:array most_common_freqs:array histogram_bounds:array correlation:float4 most_common_elems:array most_common_elem_freqs:array elem_count_histogram:array";
const IS_TABLE_CONSTRAINTS: &str = "constraint_catalog:name constraint_schema:name constraint_name:name table_catalog:name table_schema:name table_name:name constraint_type:text is_deferrable:text initially_deferred:text enforced:text nulls_distinct:text";
const IS_KEY_COLUMN_USAGE: &str = "constraint_catalog:name constraint_schema:name constraint_name:name table_catalog:name table_schema:name table_name:name column_name:name ordinal_position:int4 position_in_unique_constraint:int4";
const IS_REFERENTIAL_CONSTRAINTS: &str = "constraint_catalog:name constraint_schema:name constraint_name:name unique_constraint_catalog:name unique_constraint_schema:name unique_constraint_name:name match_option:text update_rule:text delete_rule:text";
const IS_CONSTRAINT_COLUMN_USAGE: &str = "table_catalog:name table_schema:name table_name:name column_name:name constraint_catalog:name constraint_schema:name constraint_name:name";
const IS_CHECK_CONSTRAINTS: &str =
    "constraint_catalog:name constraint_schema:name constraint_name:name check_clause:text";
const IS_SCHEMATA: &str = "catalog_name:name schema_name:name schema_owner:name default_character_set_catalog:name default_character_set_schema:name default_character_set_name:name sql_path:text";

/// The catalog relations: (schema, name, column spec).
const RELATIONS: &[(&str, &str, &str)] = &[
    ("pg_catalog", "pg_class", PG_CLASS),
    ("pg_catalog", "pg_namespace", PG_NAMESPACE),
    ("pg_catalog", "pg_attribute", PG_ATTRIBUTE),
    ("pg_catalog", "pg_type", PG_TYPE),
    ("pg_catalog", "pg_index", PG_INDEX),
    ("pg_catalog", "pg_constraint", PG_CONSTRAINT),
    ("pg_catalog", "pg_attrdef", PG_ATTRDEF),
    ("pg_catalog", "pg_sequence", PG_SEQUENCE),
    ("pg_catalog", "pg_depend", PG_DEPEND),
    ("pg_catalog", "pg_tables", PG_TABLES),
    ("pg_catalog", "pg_indexes", PG_INDEXES),
    ("pg_catalog", "pg_am", PG_AM),
    ("pg_catalog", "pg_database", PG_DATABASE),
    ("pg_catalog", "pg_roles", PG_ROLES),
    ("pg_catalog", "pg_user", PG_USER),
    ("pg_catalog", "pg_settings", PG_SETTINGS),
    ("pg_catalog", "pg_proc", PG_PROC),
    ("pg_catalog", "pg_description", PG_DESCRIPTION),
    ("pg_catalog", "pg_auth_members", PG_AUTH_MEMBERS),
    ("pg_catalog", "pg_extension", PG_EXTENSION),
    ("pg_catalog", "pg_tablespace", PG_TABLESPACE),
    ("pg_catalog", "pg_collation", PG_COLLATION),
    ("pg_catalog", "pg_inherits", PG_INHERITS),
    ("pg_catalog", "pg_policy", PG_POLICY),
    ("pg_catalog", "pg_trigger", PG_TRIGGER),
    ("pg_catalog", "pg_statistic_ext", PG_STATISTIC_EXT),
    ("pg_catalog", "pg_publication", PG_PUBLICATION),
    ("pg_catalog", "pg_publication_rel", PG_PUBLICATION_REL),
    (
        "pg_catalog",
        "pg_publication_namespace",
        PG_PUBLICATION_NAMESPACE,
    ),
    ("pg_catalog", "pg_rewrite", PG_REWRITE),
    ("pg_catalog", "pg_foreign_table", PG_FOREIGN_TABLE),
    ("pg_catalog", "pg_partitioned_table", PG_PARTITIONED_TABLE),
    ("information_schema", "tables", IS_TABLES),
    ("information_schema", "columns", IS_COLUMNS),
    ("information_schema", "schemata", IS_SCHEMATA),
    ("pg_catalog", "pg_stats", PG_STATS),
    (
        "information_schema",
        "table_constraints",
        IS_TABLE_CONSTRAINTS,
    ),
    (
        "information_schema",
        "key_column_usage",
        IS_KEY_COLUMN_USAGE,
    ),
    (
        "information_schema",
        "referential_constraints",
        IS_REFERENTIAL_CONSTRAINTS,
    ),
    (
        "information_schema",
        "constraint_column_usage",
        IS_CONSTRAINT_COLUMN_USAGE,
    ),
    (
        "information_schema",
        "check_constraints",
        IS_CHECK_CONSTRAINTS,
    ),
];

/// The OIDs of the catalog relations: PostgreSQL 15's fixed OIDs for system tables; views
/// (which PostgreSQL numbers at initdb) get `12000 +` their position in [`RELATIONS`].
fn catalog_relation_oid(schema: &str, name: &str) -> Option<i64> {
    let i = RELATIONS
        .iter()
        .position(|(rs, rn, _)| *rs == schema && *rn == name)?;
    let fixed = match name {
        "pg_class" if schema == "pg_catalog" => 1259,
        "pg_namespace" => 2615,
        "pg_attribute" => 1249,
        "pg_type" => 1247,
        "pg_index" => 2610,
        "pg_constraint" => 2606,
        "pg_attrdef" => 2604,
        "pg_sequence" => 2224,
        "pg_depend" => 2608,
        "pg_am" => 2601,
        "pg_database" => 1262,
        "pg_proc" => 1255,
        "pg_description" => 2609,
        "pg_collation" => 3456,
        "pg_inherits" => 2611,
        "pg_policy" => 3256,
        "pg_trigger" => 2620,
        "pg_statistic_ext" => 3381,
        "pg_publication" => 6104,
        "pg_publication_rel" => 6106,
        "pg_publication_namespace" => 6237,
        "pg_rewrite" => 2618,
        "pg_foreign_table" => 3118,
        "pg_partitioned_table" => 3350,
        "pg_auth_members" => 1261,
        "pg_extension" => 3079,
        "pg_tablespace" => 1213,
        _ => 12000 + i as i64,
    };
    Some(fixed)
}

fn catalog_relation_by_oid(oid: i64) -> Option<(&'static str, &'static str)> {
    RELATIONS
        .iter()
        .find(|(rs, rn, _)| catalog_relation_oid(rs, rn) == Some(oid))
        .map(|(rs, rn, _)| (*rs, *rn))
}

/// Resolves a FROM-clause table name to a catalog relation: its plan (constant rows) and
/// columns. None: not a catalog relation (plan it as a user table).
pub(crate) fn plan_relation(
    planner: &Planner,
    name: &ast::ObjectName,
) -> Result<Option<(Plan, Vec<ScopeColumn>)>, SqlError> {
    let (schema, rel) = split_name(name)?;
    let found = match schema.as_deref() {
        Some(s @ ("pg_catalog" | "information_schema")) => {
            let f = RELATIONS.iter().find(|(rs, rn, _)| *rs == s && *rn == rel);
            if f.is_none() {
                return Err(SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{s}.{rel}\" does not exist"),
                )
                .at(planner
                    .positions
                    .offset(sqlparser::ast::Spanned::span(name).start)));
            }
            f
        }
        None => RELATIONS
            .iter()
            .find(|(rs, rn, _)| *rs == "pg_catalog" && *rn == rel),
        Some(_) => None,
    };
    let Some((_, rel, spec)) = found else {
        return Ok(None);
    };
    let snap = planner
        .pg
        .get_or_init(|| Arc::new(Snapshot::new(planner.catalog, planner.session)))
        .clone();
    let types: Vec<(&str, Ty)> = spec
        .split_whitespace()
        .map(|c| {
            let (n, t) = c.split_once(':').expect("name:type");
            (n, spec_type(t))
        })
        .collect();
    if *rel == "pg_class" || *rel == "pg_attribute" {
        snap.describe_views(planner.catalog, planner.session);
    }
    let rows = rows_of(&snap, rel);
    let mut plan_rows = Vec::with_capacity(rows.len());
    for row in rows {
        if row.len() != types.len() {
            return Err(SqlError::new(
                INTERNAL_ERROR,
                format!(
                    "catalog relation {rel}: row of {} values for {} columns",
                    row.len(),
                    types.len()
                ),
            ));
        }
        plan_rows.push(
            row.into_iter()
                .zip(&types)
                .map(|(d, (_, t))| Bound::constant(d, *t))
                .collect(),
        );
    }
    let columns = types
        .iter()
        .map(|(n, t)| ScopeColumn {
            qualifier: Some(rel.to_string()),
            name: n.to_string(),
            ty: *t,
            typmod: TYPMOD_NONE,
            hidden: false,
        })
        .collect();
    Ok(Some((Plan::Values(plan_rows), columns)))
}

/// Statements that write a table (INSERT, UPDATE, DELETE) refuse catalog relations, as
/// PostgreSQL does without `allow_system_table_mods`.
pub(crate) fn refuse_catalog_write(schema: Option<&str>, name: &str) -> Result<(), SqlError> {
    let hit = RELATIONS.iter().any(|(rs, rn, _)| {
        *rn == name && (schema == Some(*rs) || (schema.is_none() && *rs == "pg_catalog"))
    });
    if hit {
        return Err(SqlError::new(
            "42501",
            format!("permission denied: \"{name}\" is a system catalog"),
        ));
    }
    Ok(())
}

const NULL: Datum = Datum::Null;

fn o(v: i64) -> Datum {
    Datum::Int(v)
}

fn t(s: &str) -> Datum {
    Datum::Text(s.to_string())
}

fn b(v: bool) -> Datum {
    Datum::Bool(v)
}

/// A built-in type's `pg_type` facts: (oid, typname, typlen, category, collation, array oid).
const TYPES: &[(i64, &str, i64, &str, i64, i64)] = &[
    (16, "bool", 1, "B", 0, 1000),
    (18, "char", 1, "Z", 0, 1002),
    (19, "name", 64, "S", C_COLLATION, 1003),
    (20, "int8", 8, "N", 0, 1016),
    (21, "int2", 2, "N", 0, 1005),
    (23, "int4", 4, "N", 0, 1007),
    (25, "text", -1, "S", DEFAULT_COLLATION, 1009),
    (26, "oid", 4, "N", 0, 1028),
    (700, "float4", 4, "N", 0, 1021),
    (701, "float8", 8, "N", 0, 1022),
    (705, "unknown", -2, "X", 0, 0),
    (1043, "varchar", -1, "S", DEFAULT_COLLATION, 1015),
    (1700, "numeric", -1, "N", 0, 1231),
    (2205, "regclass", 4, "N", 0, 2210),
    (2206, "regtype", 4, "N", 0, 2211),
    (17, "bytea", -1, "U", 0, 1001),
    (1042, "bpchar", -1, "S", DEFAULT_COLLATION, 1014),
    (1082, "date", 4, "D", 0, 1182),
    (1083, "time", 8, "D", 0, 1183),
    (1114, "timestamp", 8, "D", 0, 1115),
    (1184, "timestamptz", 8, "D", 0, 1185),
    (1186, "interval", 16, "T", 0, 1187),
    (2950, "uuid", 16, "U", 0, 2951),
    (3802, "jsonb", -1, "U", 0, 3807),
];

/// `pg_type` rows of the array types: (oid, typname, element oid, collation).
fn array_types() -> impl Iterator<Item = (i64, &'static str, i64, i64)> {
    crate::types::ARRAY_ELEMENTS.iter().map(|e| {
        let array = Ty::Array(e);
        (
            i64::from(array.oid()),
            array.type_name(),
            i64::from(e.oid()),
            type_collation(e.oid()),
        )
    })
}

fn type_collation(oid: u32) -> i64 {
    TYPES
        .iter()
        .find(|x| x.0 == i64::from(oid))
        .map_or(0, |x| x.4)
}

fn rows_of(s: &Snapshot, rel: &str) -> Vec<Vec<Datum>> {
    let mut rows = Vec::new();
    match rel {
        "pg_class" => {
            for q in &s.sequences {
                rows.push(ClassRow::new(q.oid, &q.def.name, q.nsp, "S", 3).row());
            }
            for (i, v) in s.views.iter().enumerate() {
                let natts = s.columns_of_view(i).map_or(0, <[_]>::len);
                rows.push(ClassRow::new(v.oid, &v.def.name, v.nsp, "v", natts).row());
            }
            for index in &s.indexes {
                let nsp = s.tables[index.table].nsp;
                let natts = index.def.columns.len();
                rows.push(ClassRow::new(index.oid, &index.def.name, nsp, "i", natts).row());
            }
            for ti in &s.tables {
                let tb = &ti.table;
                rows.push(
                    ClassRow {
                        checks: tb.checks.len(),
                        has_index: s.has_indexes(ti),
                        has_triggers: !tb.foreign_keys.is_empty()
                            || s.tables.iter().any(|other| {
                                other
                                    .table
                                    .foreign_keys
                                    .iter()
                                    .any(|fk| fk.references(&tb.schema, &tb.name))
                            }),
                        analyzed_rows: tb.stats.as_ref().map(|st| st.rows),
                        ..ClassRow::new(ti.oid, &tb.name, ti.nsp, "r", tb.columns.len())
                    }
                    .row(),
                );
                if !tb.primary_key.is_empty() {
                    let natts = tb.primary_key.len();
                    let name = tb.pkey_name();
                    rows.push(ClassRow::new(pkey_oid(tb.id), &name, ti.nsp, "i", natts).row());
                }
            }
        }
        "pg_sequence" => {
            for q in &s.sequences {
                let d = &q.def;
                rows.push(vec![
                    o(q.oid),
                    o(i64::from(s.sequence_type(q).oid())),
                    Datum::Int(d.start),
                    Datum::Int(d.increment),
                    Datum::Int(d.max),
                    Datum::Int(d.min),
                    Datum::Int(d.cache),
                    b(d.cycle),
                ]);
            }
        }
        "pg_tables" => {
            // User tables only: helios's own catalogs are not tables in pg_class either.
            for ti in &s.tables {
                rows.push(vec![
                    t(&ti.table.schema),
                    t(&ti.table.name),
                    t(&s.user),
                    NULL,
                    b(s.has_indexes(ti)),
                    b(false),
                    b(false),
                    b(false),
                ]);
            }
        }
        "pg_indexes" => {
            let primary = s
                .tables
                .iter()
                .filter(|ti| !ti.table.primary_key.is_empty())
                .map(|ti| (&ti.table, ti.table.pkey_name(), pkey_oid(ti.table.id)));
            let secondary = s
                .indexes
                .iter()
                .map(|i| (&s.tables[i.table].table, i.def.name.clone(), i.oid));
            for (table, name, oid) in primary.chain(secondary) {
                rows.push(vec![
                    t(&table.schema),
                    t(&table.name),
                    t(&name),
                    NULL,
                    s.index_def(oid, 0, false).map_or(NULL, Datum::Text),
                ]);
            }
        }
        "pg_stats" => {
            for ti in &s.tables {
                let tb = &ti.table;
                let Some(stats) = &tb.stats else { continue };
                for (column, cs) in tb.columns.iter().zip(&stats.columns) {
                    rows.push(vec![
                        t(&tb.schema),
                        t(&tb.name),
                        t(&column.name),
                        b(false),
                        Datum::Float4(cs.null_frac as f32),
                        NULL,
                        Datum::Float4(stats_distinct(cs.distinct, stats.rows)),
                        NULL,
                        NULL,
                        histogram_bounds(&cs.histogram, column.ty, &s.style),
                        NULL,
                        NULL,
                        NULL,
                        NULL,
                    ]);
                }
            }
        }
        "pg_depend" => {
            // A serial column's sequence is owned by (auto-dropped with) its column.
            for q in &s.sequences {
                if let Some((table, attnum)) = s.sequence_owner(q) {
                    rows.push(vec![
                        o(PG_CLASS_OID),
                        o(q.oid),
                        Datum::Int(0),
                        o(PG_CLASS_OID),
                        o(table.oid),
                        Datum::Int(attnum as i64),
                        t("a"),
                    ]);
                }
            }
        }
        "pg_namespace" => {
            for sc in &s.schemas {
                rows.push(vec![o(sc.oid), t(&sc.name), o(SUPERUSER_OID), NULL]);
            }
        }
        "pg_attribute" => {
            for (i, v) in s.views.iter().enumerate() {
                let columns = s.columns_of_view(i).unwrap_or_default();
                for (n, (name, ty, typmod)) in columns.iter().enumerate() {
                    rows.push(attribute_row(
                        v.oid,
                        name,
                        *ty,
                        *typmod,
                        n + 1,
                        false,
                        false,
                        "",
                    ));
                }
            }
            for ti in &s.tables {
                let tb = &ti.table;
                for (i, c) in tb.columns.iter().enumerate() {
                    let not_null = c.not_null || tb.primary_key.contains(&i);
                    rows.push(attribute_row(
                        ti.oid,
                        &c.name,
                        c.ty,
                        c.typmod,
                        i + 1,
                        not_null,
                        c.default.is_some(),
                        identity_code(c),
                    ));
                }
                if !tb.primary_key.is_empty() {
                    for (k, &i) in tb.primary_key.iter().enumerate() {
                        let c = &tb.columns[i];
                        rows.push(attribute_row(
                            pkey_oid(tb.id),
                            &c.name,
                            c.ty,
                            c.typmod,
                            k + 1,
                            false,
                            false,
                            "",
                        ));
                    }
                }
            }
        }
        "pg_type" => {
            let arrays =
                array_types().map(|(oid, name, elem, coll)| (oid, name, -1, "A", coll, 0, elem));
            let scalars = TYPES
                .iter()
                .map(|&(oid, name, len, cat, coll, arr)| (oid, name, len, cat, coll, arr, 0));
            for (oid, name, len, cat, coll, arr, elem) in scalars.chain(arrays) {
                rows.push(vec![
                    o(oid),
                    t(name),
                    o(PG_CATALOG_OID),
                    o(SUPERUSER_OID),
                    Datum::Int(len),
                    b((1..=8).contains(&len)),
                    t("b"),
                    t(cat),
                    b(false),
                    b(true),
                    t(","),
                    o(0),
                    o(0),
                    o(elem),
                    o(arr),
                    o(0),
                    o(0),
                    o(0),
                    o(0),
                    o(0),
                    o(0),
                    o(0),
                    t(if len == 8 {
                        "d"
                    } else if len == 2 {
                        "s"
                    } else if len == 1 || len == 64 {
                        "c"
                    } else {
                        "i"
                    }),
                    t(if len == -1 { "x" } else { "p" }),
                    b(false),
                    o(0),
                    Datum::Int(-1),
                    Datum::Int(0),
                    o(coll),
                    NULL,
                    NULL,
                    NULL,
                ]);
            }
        }
        "pg_index" => {
            for index in &s.indexes {
                let n = index.def.columns.len() as i64;
                let table = &s.tables[index.table].table;
                // Key columns, then INCLUDE columns (indnatts counts both).
                let included = index
                    .def
                    .include
                    .iter()
                    .filter_map(|c| table.column_index(c));
                let key: Vec<String> = index
                    .def
                    .columns
                    .iter()
                    .copied()
                    .chain(included)
                    .map(|i| (i + 1).to_string())
                    .collect();
                let zeros = vec!["0"; index.def.columns.len()].join(" ");
                rows.push(vec![
                    o(index.oid),
                    o(s.tables[index.table].oid),
                    Datum::Int(key.len() as i64),
                    Datum::Int(n),
                    b(index.def.unique),
                    b(false),
                    b(false),
                    b(false),
                    b(true),
                    b(false),
                    b(true),
                    b(false),
                    b(true),
                    b(true),
                    b(false),
                    t(&key.join(" ")),
                    t(&zeros),
                    t(&zeros),
                    t(&zeros),
                    NULL,
                    // Not PostgreSQL's node tree: the WHERE's text (non-NULL is what tools
                    // test to tell a partial index).
                    index.def.predicate.as_deref().map_or(NULL, t),
                ]);
            }
            for ti in &s.tables {
                let tb = &ti.table;
                if tb.primary_key.is_empty() {
                    continue;
                }
                let n = tb.primary_key.len() as i64;
                let key: Vec<String> = tb.primary_key.iter().map(|i| (i + 1).to_string()).collect();
                let zeros = vec!["0"; tb.primary_key.len()].join(" ");
                rows.push(vec![
                    o(pkey_oid(tb.id)),
                    o(ti.oid),
                    Datum::Int(n),
                    Datum::Int(n),
                    b(true),
                    b(false),
                    b(true),
                    b(false),
                    b(true),
                    b(false),
                    b(true),
                    b(false),
                    b(true),
                    b(true),
                    b(false),
                    t(&key.join(" ")),
                    t(&zeros),
                    t(&zeros),
                    t(&zeros),
                    NULL,
                    NULL,
                ]);
            }
        }
        "pg_constraint" => {
            for (at, ti) in s.tables.iter().enumerate() {
                let tb = &ti.table;
                if !tb.primary_key.is_empty() {
                    let key = tb
                        .primary_key
                        .iter()
                        .map(|&i| Datum::Int(i as i64 + 1))
                        .collect();
                    rows.push(constraint_row(
                        pkey_oid(tb.id),
                        &tb.pkey_name(),
                        ti,
                        "p",
                        pkey_oid(tb.id),
                        Datum::Array(key),
                        NULL,
                        true,
                    ));
                }
                for index in s
                    .indexes
                    .iter()
                    .filter(|i| i.def.constraint && i.table == at)
                {
                    let key = index
                        .def
                        .columns
                        .iter()
                        .map(|&i| Datum::Int(i as i64 + 1))
                        .collect();
                    rows.push(constraint_row(
                        unique_constraint_oid(index.def.id),
                        &index.def.name,
                        ti,
                        "u",
                        index.oid,
                        Datum::Array(key),
                        NULL,
                        true,
                    ));
                }
                for (n, c) in tb.checks.iter().enumerate() {
                    // conkey: the columns the expression reads.
                    let read: Vec<Datum> = (tb.columns.iter().enumerate())
                        .filter(|(_, col)| crate::alter::expression_names(&c.expr, &col.name))
                        .map(|(i, _)| Datum::Int(i as i64 + 1))
                        .collect();
                    rows.push(constraint_row(
                        check_oid(tb.id, n),
                        &c.name,
                        ti,
                        "c",
                        0,
                        Datum::Array(read),
                        t(&c.expr),
                        !c.not_valid,
                    ));
                }
                for (n, fk) in tb.foreign_keys.iter().enumerate() {
                    rows.push(foreign_key_row(s, ti, n, fk));
                }
            }
        }
        "pg_attrdef" => {
            for ti in &s.tables {
                for (i, c) in ti.table.columns.iter().enumerate() {
                    if let Some(d) = c.default.as_ref().filter(|_| !c.identity) {
                        rows.push(vec![
                            o(attrdef_oid(ti.table.id, i + 1)),
                            o(ti.oid),
                            Datum::Int(i as i64 + 1),
                            t(&deparse_default(d, c.ty)),
                        ]);
                    }
                }
            }
        }
        "pg_tablespace" => {
            rows.push(vec![o(1663), t("pg_default"), o(SUPERUSER_OID), NULL, NULL]);
            rows.push(vec![o(1664), t("pg_global"), o(SUPERUSER_OID), NULL, NULL]);
        }
        "pg_am" => {
            rows.push(vec![o(HEAP_AM), t("heap"), o(3), t("t")]);
            rows.push(vec![o(BTREE_AM), t("btree"), o(330), t("i")]);
        }
        "pg_database" => {
            for (oid, name) in &s.databases {
                rows.push(vec![
                    o(*oid),
                    t(name),
                    o(SUPERUSER_OID),
                    o(UTF8_ENCODING),
                    t("c"),
                    b(false),
                    b(true),
                    Datum::Int(-1),
                    o(1663),
                    t("C"),
                    t("C"),
                    NULL,
                    NULL,
                    NULL,
                ]);
            }
        }
        "pg_roles" => rows.push(vec![
            t(&s.user),
            b(true),
            b(true),
            b(true),
            b(true),
            b(true),
            b(true),
            Datum::Int(-1),
            t("********"),
            NULL,
            b(true),
            NULL,
            o(SUPERUSER_OID),
        ]),
        "pg_user" => rows.push(vec![
            t(&s.user),
            o(SUPERUSER_OID),
            b(true),
            b(true),
            b(true),
            b(true),
            t("********"),
            NULL,
            NULL,
        ]),
        "pg_settings" => {
            for (name, value) in &s.params {
                rows.push(vec![
                    t(name),
                    t(value),
                    NULL,
                    t("Ungrouped"),
                    t(""),
                    NULL,
                    t("user"),
                    t("string"),
                    t("default"),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    t(value),
                    NULL,
                    NULL,
                    b(false),
                ]);
            }
        }
        "pg_collation" => {
            for (oid, name, provider, collate) in [
                (DEFAULT_COLLATION, "default", "d", ""),
                (C_COLLATION, "C", "c", "C"),
                (951, "POSIX", "c", "POSIX"),
            ] {
                rows.push(vec![
                    o(oid),
                    t(name),
                    o(PG_CATALOG_OID),
                    o(SUPERUSER_OID),
                    t(provider),
                    b(true),
                    Datum::Int(-1),
                    if collate.is_empty() { NULL } else { t(collate) },
                    if collate.is_empty() { NULL } else { t(collate) },
                    NULL,
                    NULL,
                ]);
            }
        }
        "tables" => {
            for ti in &s.tables {
                rows.push(vec![
                    t(&s.database),
                    t(&ti.table.schema),
                    t(&ti.table.name),
                    t("BASE TABLE"),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    t("YES"),
                    t("NO"),
                    NULL,
                ]);
            }
        }
        "columns" => {
            for ti in &s.tables {
                let tb = &ti.table;
                for (i, c) in tb.columns.iter().enumerate() {
                    let not_null = c.not_null || tb.primary_key.contains(&i);
                    let (char_max, num_prec, radix, scale) = match c.ty {
                        Ty::Varchar if c.typmod >= 4 => {
                            (o(i64::from(c.typmod - 4)), NULL, NULL, NULL)
                        }
                        Ty::Int2 => (NULL, o(16), o(2), o(0)),
                        Ty::Int4 => (NULL, o(32), o(2), o(0)),
                        Ty::Int8 => (NULL, o(64), o(2), o(0)),
                        Ty::Float8 => (NULL, o(53), o(2), NULL),
                        Ty::Numeric if c.typmod >= 4 => {
                            let m = c.typmod - 4;
                            (NULL, o(i64::from(m >> 16)), o(10), o(i64::from(m & 0xFFFF)))
                        }
                        Ty::Numeric => (NULL, NULL, o(10), NULL),
                        _ => (NULL, NULL, NULL, NULL),
                    };
                    let octets = if c.ty.is_string() && c.ty != Ty::Name {
                        o(1_073_741_824)
                    } else {
                        NULL
                    };
                    rows.push(vec![
                        t(&s.database),
                        t(&tb.schema),
                        t(&tb.name),
                        t(&c.name),
                        o(i as i64 + 1),
                        c.default
                            .as_ref()
                            .filter(|_| !c.identity)
                            .map_or(NULL, |d| t(&deparse_default(d, c.ty))),
                        t(if not_null { "NO" } else { "YES" }),
                        t(c.ty.sql_name()),
                        char_max,
                        octets,
                        num_prec,
                        radix,
                        scale,
                        NULL,
                        t(&s.database),
                        t("pg_catalog"),
                        t(c.ty.type_name()),
                        NULL,
                        t(if c.identity { "YES" } else { "NO" }),
                        t("NEVER"),
                        t("YES"),
                    ]);
                }
            }
        }
        "schemata" => {
            for sc in &s.schemas {
                rows.push(vec![
                    t(&s.database),
                    t(&sc.name),
                    t(&s.user),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                ]);
            }
        }
        "table_constraints" => {
            for c in s.constraints() {
                let ti = &s.tables[c.table];
                let yes_no = |v: bool| t(if v { "YES" } else { "NO" });
                rows.push(vec![
                    t(&s.database),
                    t(&ti.table.schema),
                    t(&c.name),
                    t(&s.database),
                    t(&ti.table.schema),
                    t(&ti.table.name),
                    t(c.kind),
                    yes_no(c.deferrable),
                    yes_no(c.deferred),
                    t("YES"),
                    if c.kind == "UNIQUE" { t("YES") } else { NULL },
                ]);
            }
        }
        "key_column_usage" => {
            for c in s.constraints() {
                if c.kind == "CHECK" {
                    continue;
                }
                let tb = &s.tables[c.table].table;
                for (n, &col) in c.columns.iter().enumerate() {
                    // A foreign key column's place in the referenced unique constraint.
                    let in_unique = c.referenced.as_ref().map_or(NULL, |(rt, rcols, key)| {
                        let want = &s.tables[*rt].table.columns[rcols[n]].name;
                        key.iter()
                            .position(|k| *k == *want)
                            .map_or(NULL, |p| Datum::Int(p as i64 + 1))
                    });
                    rows.push(vec![
                        t(&s.database),
                        t(&tb.schema),
                        t(&c.name),
                        t(&s.database),
                        t(&tb.schema),
                        t(&tb.name),
                        t(&tb.columns[col].name),
                        Datum::Int(n as i64 + 1),
                        in_unique,
                    ]);
                }
            }
        }
        "referential_constraints" => {
            for c in s.constraints() {
                let (Some(fk), Some((rt, _, _))) = (c.foreign_key, c.referenced.as_ref()) else {
                    continue;
                };
                let schema = &s.tables[c.table].table.schema;
                let referenced = &s.tables[*rt].table;
                rows.push(vec![
                    t(&s.database),
                    t(schema),
                    t(&c.name),
                    t(&s.database),
                    t(&referenced.schema),
                    c.unique_name.as_deref().map_or(NULL, t),
                    t(if fk.match_full { "FULL" } else { "NONE" }),
                    t(fk.on_update.sql()),
                    t(fk.on_delete.sql()),
                ]);
            }
        }
        "constraint_column_usage" => {
            // NOT NULL constraints are not listed here, as in PostgreSQL.
            for c in s.constraints().into_iter().filter(|c| !c.not_null) {
                // A foreign key uses the referenced table's columns; the others their own.
                let (table, columns) = match &c.referenced {
                    Some((rt, rcols, _)) => (&s.tables[*rt].table, rcols.clone()),
                    None => (&s.tables[c.table].table, c.columns.clone()),
                };
                let owner = &s.tables[c.table].table;
                let mut columns = columns;
                columns.sort_unstable();
                columns.dedup();
                for col in columns {
                    rows.push(vec![
                        t(&s.database),
                        t(&table.schema),
                        t(&table.name),
                        t(&table.columns[col].name),
                        t(&s.database),
                        t(&owner.schema),
                        t(&c.name),
                    ]);
                }
            }
        }
        "check_constraints" => {
            for c in s.constraints() {
                if let Some(clause) = &c.check_clause {
                    rows.push(vec![
                        t(&s.database),
                        t(&s.tables[c.table].table.schema),
                        t(&c.name),
                        t(clause),
                    ]);
                }
            }
        }
        // pg_proc, pg_description and the relations of features helios lacks (inheritance,
        // policies, triggers, extended statistics, publications, rules, foreign and
        // partitioned tables) have no rows.
        _ => {}
    }
    rows
}

/// A possibly qualified relation name as `regclass` reads it: split at dots, each part
/// unquoted (`"My-Table"`) or lower-cased.
pub(crate) fn name_parts(text: &str) -> Vec<String> {
    text.split('.')
        .map(|p| {
            let p = p.trim();
            match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(q) => q.replace("\"\"", "\""),
                None => p.to_lowercase(),
            }
        })
        .collect()
}

/// The parts of a `pg_class` row that differ between user relations.
struct ClassRow<'a> {
    oid: i64,
    name: &'a str,
    nsp: i64,
    /// `r` (table), `i` (index), `S` (sequence) or `v` (view).
    kind: &'static str,
    natts: usize,
    checks: usize,
    has_index: bool,
    /// A table holding or referenced by a foreign key: PostgreSQL enforces those with
    /// triggers, and psql's `\d` lists them only when this is set.
    has_triggers: bool,
    /// A table's row count at its last ANALYZE (`reltuples`; -1 before the first).
    analyzed_rows: Option<u64>,
}

impl<'a> ClassRow<'a> {
    fn new(oid: i64, name: &'a str, nsp: i64, kind: &'static str, natts: usize) -> Self {
        ClassRow {
            oid,
            name,
            nsp,
            kind,
            natts,
            checks: 0,
            has_index: false,
            has_triggers: false,
            analyzed_rows: None,
        }
    }

    /// The row, with what PostgreSQL 15 shows for each kind: a sequence has one page and
    /// one tuple (last_value, log_cnt, is_called), a view no storage and a `_RETURN` rule.
    fn row(&self) -> Vec<Datum> {
        let (am, filenode, pages, tuples, has_rules, replident) = match self.kind {
            "i" => (BTREE_AM, self.oid, 1, 0.0, false, "n"),
            "r" => {
                let tuples = self.analyzed_rows.map_or(-1.0, |n| n as f64);
                (HEAP_AM, self.oid, 0, tuples, false, "d")
            }
            "S" => (0, self.oid, 1, 1.0, false, "n"),
            _ => (0, 0, 0, -1.0, true, "n"),
        };
        vec![
            o(self.oid),
            t(self.name),
            o(self.nsp),
            o(0),
            o(0),
            o(SUPERUSER_OID),
            o(am),
            o(filenode),
            o(0),
            Datum::Int(pages),
            // reltuples is a real (float4), as in PostgreSQL.
            Datum::Float4(tuples as f32),
            Datum::Int(0),
            o(0),
            b(self.has_index),
            b(false),
            t("p"),
            t(self.kind),
            Datum::Int(self.natts as i64),
            Datum::Int(self.checks as i64),
            b(has_rules),
            b(self.has_triggers),
            b(false),
            b(false),
            b(false),
            b(true),
            t(replident),
            b(false),
            o(0),
            NULL,
            NULL,
            NULL,
        ]
    }
}

/// `pg_attribute.attidentity`: 'd' (BY DEFAULT), 'a' (ALWAYS) or empty.
fn identity_code(c: &crate::catalog::ColumnDef) -> &'static str {
    match (c.identity, c.identity_always) {
        (false, _) => "",
        (true, false) => "d",
        (true, true) => "a",
    }
}

#[allow(clippy::too_many_arguments)]
fn attribute_row(
    rel: i64,
    name: &str,
    ty: Ty,
    typmod: i32,
    attnum: usize,
    not_null: bool,
    has_default: bool,
    identity: &str,
) -> Vec<Datum> {
    let len = i64::from(ty.size());
    vec![
        o(rel),
        t(name),
        o(i64::from(ty.oid())),
        Datum::Int(-1),
        Datum::Int(len),
        Datum::Int(attnum as i64),
        Datum::Int(0),
        Datum::Int(-1),
        Datum::Int(i64::from(typmod)),
        b((1..=8).contains(&len)),
        t("i"),
        t(if len == -1 { "x" } else { "p" }),
        t(""),
        b(not_null),
        b(has_default && identity.is_empty()),
        b(false),
        t(identity),
        t(""),
        b(false),
        b(true),
        Datum::Int(0),
        o(type_collation(ty.oid())),
        NULL,
        NULL,
        NULL,
        NULL,
    ]
}

/// A foreign key's `pg_constraint` row: its referenced table and columns, the unique
/// index it relies on, its actions and deferral.
fn foreign_key_row(
    s: &Snapshot,
    ti: &TableInfo,
    n: usize,
    fk: &crate::catalog::ForeignKeyDef,
) -> Vec<Datum> {
    let tb = &ti.table;
    let attnums = |cols: &mut dyn Iterator<Item = usize>| {
        Datum::Array(cols.map(|i| Datum::Int(i as i64 + 1)).collect())
    };
    let conkey = attnums(&mut fk.columns.iter().copied());
    let mut row = constraint_row(
        foreign_key_oid(tb.id, n),
        &fk.name,
        ti,
        "f",
        0,
        conkey,
        NULL,
        !fk.not_valid,
    );
    let parent = s
        .tables
        .iter()
        .enumerate()
        .find(|(_, p)| p.table.schema == fk.ref_schema && p.table.name == fk.ref_table);
    if let Some((at, p)) = parent {
        let positions: Vec<usize> = fk
            .ref_columns
            .iter()
            .filter_map(|c| p.table.column_index(c))
            .collect();
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        let mut pk = p.table.primary_key.clone();
        pk.sort_unstable();
        let index = if pk == sorted {
            pkey_oid(p.table.id)
        } else {
            s.indexes
                .iter()
                .find(|i| {
                    let mut c = i.def.columns.clone();
                    c.sort_unstable();
                    i.table == at && i.def.unique && c == sorted
                })
                .map_or(0, |i| i.oid)
        };
        row[9] = o(index);
        row[11] = o(p.oid);
        row[19] = attnums(&mut positions.into_iter());
    }
    row[4] = b(fk.deferrable);
    row[5] = b(fk.initially_deferred);
    row[12] = t(&fk.on_update.code().to_string());
    row[13] = t(&fk.on_delete.code().to_string());
    row[14] = t(if fk.match_full { "f" } else { "s" });
    row
}

#[allow(clippy::too_many_arguments)]
fn constraint_row(
    oid: i64,
    name: &str,
    ti: &TableInfo,
    contype: &str,
    index: i64,
    conkey: Datum,
    conbin: Datum,
    validated: bool,
) -> Vec<Datum> {
    vec![
        o(oid),
        t(name),
        o(ti.nsp),
        t(contype),
        b(false),
        b(false),
        b(validated),
        o(ti.oid),
        o(0),
        o(index),
        o(0),
        o(0),
        t(" "),
        t(" "),
        t(" "),
        b(true),
        Datum::Int(0),
        b(false),
        conkey,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        conbin,
    ]
}

/// A stored DEFAULT expression as `pg_get_expr` shows it: literals get PostgreSQL's
/// deparsed form (`'x'::text`, `7`, `'-1'::integer`); anything else is shown as stored.
fn deparse_default(text: &str, ty: Ty) -> String {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let parsed = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr());
    let Ok(e) = parsed else {
        return text.to_string();
    };
    let number_type = |n: &str| {
        if n.bytes().all(|c| c.is_ascii_digit()) {
            match n.parse::<i64>() {
                Ok(v) if i32::try_from(v).is_ok() => "integer",
                Ok(_) => "bigint",
                Err(_) => "numeric",
            }
        } else {
            "numeric"
        }
    };
    match &e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => {
                format!(
                    "'{}'::{}",
                    s.replace('\'', "''"),
                    format_type(ty.oid(), TYPMOD_NONE)
                )
            }
            ast::Value::Number(n, _) if ty.numeric_rank().is_some() => n.clone(),
            ast::Value::Boolean(v) => v.to_string(),
            ast::Value::Null => "NULL".to_string(),
            _ => text.to_string(),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => format!("'-{n}'::{}", number_type(n)),
                _ => text.to_string(),
            },
            _ => text.to_string(),
        },
        // A serial column's default: its argument is a regclass, shown with the cast.
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("nextval") => {
            match &f.args {
                ast::FunctionArguments::List(list) => match list.args.as_slice() {
                    [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
                        match &v.value {
                            ast::Value::SingleQuotedString(s) => {
                                format!("nextval('{}'::regclass)", s.replace('\'', "''"))
                            }
                            _ => text.to_string(),
                        }
                    }
                    _ => text.to_string(),
                },
                _ => text.to_string(),
            }
        }
        _ => text.to_string(),
    }
}

/// `format_type(oid, typmod)`.
pub(crate) fn format_type(oid: u32, typmod: i32) -> String {
    match Ty::from_oid(oid) {
        Some(Ty::Varchar) if typmod >= 4 => format!("character varying({})", typmod - 4),
        Some(Ty::Bpchar) if typmod >= 4 => format!("character({})", typmod - 4),
        Some(Ty::Bpchar) => "bpchar".to_string(),
        Some(ty @ (Ty::Time | Ty::Timestamp | Ty::TimestampTz)) if typmod >= 0 => {
            let name = ty.sql_name();
            let (base, zone) = name.split_once(' ').unwrap_or((name, ""));
            format!("{base}({typmod}) {zone}")
        }
        Some(Ty::Interval) if typmod >= 0 => format!("interval({typmod})"),
        Some(Ty::Array(e)) if typmod >= 0 => format!("{}[]", format_type(e.oid(), typmod)),
        Some(Ty::Numeric) if typmod >= 4 => {
            let m = typmod - 4;
            format!("numeric({},{})", m >> 16, m & 0xFFFF)
        }
        Some(ty) => ty.sql_name().to_string(),
        None => match oid {
            18 => "\"char\"".to_string(),
            26 => "oid".to_string(),
            700 => "real".to_string(),
            2205 => "regclass".to_string(),
            _ => "???".to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Functions, operators, casts

#[derive(Debug, Clone)]
pub(crate) enum PgFunc {
    /// Its argument (pg_partition_ancestors of a relation that is not partitioned).
    Identity,
    FormatType,
    /// pg_get_expr: the stored expression text.
    GetExpr,
    TableIsVisible,
    SerialSequence,
    /// Built-in types live in pg_catalog, always first on the search path.
    TypeIsVisible,
    False,
    GetUserById,
    GetIndexDef,
    /// pg_get_constraintdef(oid [, pretty])
    GetConstraintDef,
    /// A function that has nothing to say here (obj_description, …): NULL.
    NullText,
    EncodingToChar,
    ArrayToString,
    ArrayUpper,
    RelationIsPublishable,
    /// pg_table_size and its kin: stored bytes gathered before the statement ran.
    RelationSize(SizeOf),
    SizePretty,
    /// pg_database_size(name): its tables' and indexes' stored bytes.
    DatabaseSize,
    /// has_database_privilege(database, privileges): helios has no GRANT, so every user
    /// holds every privilege of every database.
    HasDatabasePrivilege,
    /// pg_get_viewdef: the view's stored query (sqlparser's rendering of it).
    ViewDef,
    CurrentSetting,
    SetConfig,
    /// oid → relation name (`::regclass`).
    RegclassOut,
    /// oid → type name (`::regtype`).
    RegtypeOut,
    /// type name → oid: `to_regtype` (NULL when no type has the name) and a text value cast
    /// to regtype (`missing_ok` false: 42704).
    RegtypeIn {
        missing_ok: bool,
    },
    /// relation name → oid: `to_regclass` (NULL when no relation has the name) and a text
    /// value (a parameter) cast to regclass (`missing_ok` false: 42P01).
    RegclassIn {
        missing_ok: bool,
    },
    /// oid → schema name (`::regnamespace`).
    RegnamespaceOut,
    /// `x ~ pattern` and friends.
    Regex {
        negated: bool,
        case_insensitive: bool,
    },
    /// `x op ANY/ALL (array)`; the left operand's type decides the elements' type.
    Any {
        op: Cmp,
        all: bool,
    },
    /// `array[i]`: the element, of unknown type.
    Subscript,
}

/// A bound catalog call: what it does and the snapshot it reads.
#[derive(Debug, Clone)]
pub(crate) struct PgCall {
    func: PgFunc,
    snap: Option<Arc<Snapshot>>,
}

fn call(
    func: PgFunc,
    snap: Option<Arc<Snapshot>>,
    args: Vec<Bound>,
    ty: Ty,
    pos: Option<usize>,
) -> Bound {
    Bound {
        kind: Kind::Pg(Box::new(PgCall { func, snap }), args),
        ty,
        typmod: TYPMOD_NONE,
        pos,
    }
}

/// An OID argument: any integer (or literal) as int8.
fn oid_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    if b.ty.is_integer() || b.ty == Ty::Unknown {
        Ok(Some(binder.coerce(b, Ty::Int8, TYPMOD_NONE)?))
    } else {
        Ok(None)
    }
}

fn text_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    if b.ty.is_string() || b.ty == Ty::Unknown {
        Ok(Some(binder.coerce(b, Ty::Text, TYPMOD_NONE)?))
    } else {
        Ok(None)
    }
}

fn int_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    if b.ty.is_integer() || b.ty == Ty::Unknown {
        Ok(Some(binder.coerce(b, Ty::Int8, TYPMOD_NONE)?))
    } else {
        Ok(None)
    }
}

/// `pg_size_pretty(numeric)`: a `sum()` of sizes is numeric.
fn numeric_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    Ok(Some(binder.coerce(b, Ty::Numeric, TYPMOD_NONE)?))
}

fn bool_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    if b.ty == Ty::Bool || b.ty == Ty::Unknown {
        Ok(Some(binder.coerce(b, Ty::Bool, TYPMOD_NONE)?))
    } else {
        Ok(None)
    }
}

/// What a size function adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeOf {
    /// pg_table_size, and pg_relation_size of the main fork.
    Relation,
    /// pg_relation_size of a fork helios has no storage for (fsm, vm, init): 0.
    OtherFork,
    /// pg_relation_size(rel, fork): the fork is its second argument.
    Fork,
    Indexes,
    /// pg_total_relation_size: the table and its indexes.
    Total,
}

/// A regclass argument: an OID, a text literal looked up now ('t'), or text looked up when
/// evaluated.
fn regclass_arg(binder: &Binder, b: Bound) -> Result<Option<Bound>, SqlError> {
    let pos = b.pos;
    match (&b.kind, b.ty) {
        (Kind::Const(Datum::Text(name)), Ty::Unknown) => {
            let snap = snapshot(binder, pos)?;
            let oid = snap.regclass_oid(name).ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                )
                .at(pos)
            })?;
            let mut c = Bound::constant(Datum::Int(oid), Ty::Int8);
            c.pos = pos;
            Ok(Some(c))
        }
        (_, ty) if ty.is_integer() || ty == Ty::Unknown => {
            Ok(Some(binder.coerce(b, Ty::Int8, TYPMOD_NONE)?))
        }
        (_, ty) if ty.is_string() => {
            let snap = snapshot(binder, pos)?;
            let arg = binder.coerce(b, Ty::Text, TYPMOD_NONE)?;
            Ok(Some(call(
                PgFunc::RegclassIn { missing_ok: false },
                Some(snap),
                vec![arg],
                Ty::Int8,
                pos,
            )))
        }
        _ => Ok(None),
    }
}

fn no_such_database(name: &str) -> SqlError {
    SqlError::new(
        UNDEFINED_DATABASE,
        format!("database \"{name}\" does not exist"),
    )
}

/// A database privilege list as `has_database_privilege` reads it: comma-separated CREATE,
/// CONNECT, TEMPORARY or TEMP, each optionally WITH GRANT OPTION, in any case.
fn check_database_privileges(list: &str) -> Result<(), SqlError> {
    for item in list.split(',') {
        let word = item.trim().to_ascii_lowercase();
        let word = word
            .strip_suffix("with grant option")
            .map_or(word.as_str(), str::trim_end);
        if !matches!(word, "create" | "connect" | "temporary" | "temp") {
            return Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("unrecognized privilege type: \"{}\"", item.trim()),
            ));
        }
    }
    Ok(())
}

/// PostgreSQL 15's `pg_size_pretty(bigint)`: bytes below 10 kB, then kB, MB, GB, TB, PB,
/// each below 20 × 1024 − 1 of its unit, half-rounded.
pub(crate) fn size_pretty(mut size: i64) -> String {
    const UNITS: [(&str, i64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    for (i, &(name, limit, round, bits)) in UNITS.iter().enumerate() {
        let next = UNITS.get(i + 1);
        if next.is_none() || size.unsigned_abs() < limit as u64 {
            if round {
                size = half_rounded(size);
            }
            return format!("{size} {name}");
        }
        let (_, _, next_round, next_bits) = *next.expect("a next unit");
        let shift = next_bits - bits - u32::from(next_round) + u32::from(round);
        size /= 1i64 << shift;
    }
    unreachable!("the last unit always answers")
}

type ArgCheck = fn(&Binder, Bound) -> Result<Option<Bound>, SqlError>;

/// Binds a catalog function by name; None: no such function (the caller reports it).
pub(crate) fn bind_function(
    binder: &Binder,
    name: &str,
    args: &[Bound],
    pos: Option<usize>,
) -> Result<Option<Bound>, SqlError> {
    use PgFunc as F;
    let n = args.len();
    let (func, checks, ty): (PgFunc, &[ArgCheck], Ty) = match (name, n) {
        ("format_type", 2) => (F::FormatType, &[oid_arg, int_arg], Ty::Text),
        ("pg_get_expr", 2) => (F::GetExpr, &[text_arg, oid_arg], Ty::Text),
        ("pg_get_expr", 3) => (F::GetExpr, &[text_arg, oid_arg, bool_arg], Ty::Text),
        ("pg_table_is_visible", 1) => (F::TableIsVisible, &[oid_arg], Ty::Bool),
        ("pg_get_serial_sequence", 2) => (F::SerialSequence, &[text_arg, text_arg], Ty::Text),
        ("pg_type_is_visible", 1) => (F::TypeIsVisible, &[oid_arg], Ty::Bool),
        // pg_proc is empty: no function is visible.
        ("pg_function_is_visible", 1) => (F::False, &[oid_arg], Ty::Bool),
        ("pg_get_userbyid", 1) => (F::GetUserById, &[oid_arg], Ty::Name),
        ("pg_get_indexdef", 1) => (F::GetIndexDef, &[oid_arg], Ty::Text),
        ("pg_get_indexdef", 3) => (F::GetIndexDef, &[oid_arg, int_arg, bool_arg], Ty::Text),
        ("pg_get_constraintdef", 1) => (F::GetConstraintDef, &[oid_arg], Ty::Text),
        ("pg_get_constraintdef", 2) => (F::GetConstraintDef, &[oid_arg, bool_arg], Ty::Text),
        ("obj_description", 1) => (F::NullText, &[oid_arg], Ty::Text),
        ("obj_description" | "shobj_description", 2) => {
            (F::NullText, &[oid_arg, text_arg], Ty::Text)
        }
        ("col_description", 2) => (F::NullText, &[oid_arg, int_arg], Ty::Text),
        ("pg_get_statisticsobjdef_columns", 1) => (F::NullText, &[oid_arg], Ty::Text),
        // pg_proc is empty, so there is no function these could describe (NULL, as
        // PostgreSQL answers for an OID that is no function).
        (
            "pg_get_function_result"
            | "pg_get_function_arguments"
            | "pg_get_function_identity_arguments",
            1,
        ) => (F::NullText, &[oid_arg], Ty::Text),
        ("pg_encoding_to_char", 1) => (F::EncodingToChar, &[int_arg], Ty::Name),
        ("array_to_string", 2) => (F::ArrayToString, &[text_arg, text_arg], Ty::Text),
        ("array_upper", 2) => (F::ArrayUpper, &[text_arg, int_arg], Ty::Int4),
        ("pg_relation_is_publishable", 1) => (F::RelationIsPublishable, &[oid_arg], Ty::Bool),
        ("pg_table_size" | "pg_relation_size", 1) => {
            (F::RelationSize(SizeOf::Relation), &[regclass_arg], Ty::Int8)
        }
        ("pg_relation_size", 2) => (
            F::RelationSize(SizeOf::Fork),
            &[regclass_arg, text_arg],
            Ty::Int8,
        ),
        ("pg_indexes_size", 1) => (F::RelationSize(SizeOf::Indexes), &[regclass_arg], Ty::Int8),
        ("pg_total_relation_size", 1) => {
            (F::RelationSize(SizeOf::Total), &[regclass_arg], Ty::Int8)
        }
        ("pg_size_pretty", 1) if args[0].ty == Ty::Numeric => {
            (F::SizePretty, &[numeric_arg], Ty::Text)
        }
        ("pg_size_pretty", 1) => (F::SizePretty, &[int_arg], Ty::Text),
        ("pg_database_size", 1) => (F::DatabaseSize, &[text_arg], Ty::Int8),
        ("has_database_privilege", 2) => (F::HasDatabasePrivilege, &[text_arg, text_arg], Ty::Bool),
        ("pg_get_viewdef", 1) => (F::ViewDef, &[regclass_arg], Ty::Text),
        // helios has no rewrite rules (a view's query is kept as such): no OID is a rule's,
        // and PostgreSQL answers NULL for an OID that is no rule.
        ("pg_get_ruledef", 1) => (F::NullText, &[oid_arg], Ty::Text),
        // pg_trigger is empty: there is no trigger to show.
        ("pg_get_triggerdef", 1) => (F::NullText, &[oid_arg], Ty::Text),
        ("pg_get_triggerdef", 2) => (F::NullText, &[oid_arg, bool_arg], Ty::Text),
        // No table is partitioned: a relation's only ancestor is itself.
        ("pg_partition_ancestors", 1) => (F::Identity, &[regclass_arg], Ty::Int8),
        ("pg_get_ruledef", 2) => (F::NullText, &[oid_arg, bool_arg], Ty::Text),
        ("pg_get_viewdef", 2) => (F::ViewDef, &[regclass_arg, bool_arg], Ty::Text),
        ("to_regtype", 1) => (F::RegtypeIn { missing_ok: true }, &[text_arg], Ty::Int8),
        ("to_regclass", 1) => (F::RegclassIn { missing_ok: true }, &[text_arg], Ty::Int8),
        ("current_setting", 1) => (F::CurrentSetting, &[text_arg], Ty::Text),
        ("current_setting", 2) => (F::CurrentSetting, &[text_arg, bool_arg], Ty::Text),
        // Its setting is made before the query runs (`lib::apply_set_config_calls`); the call
        // answers the setting's value then, as PostgreSQL's answers the new value.
        ("set_config", 3) => (F::SetConfig, &[text_arg, text_arg, bool_arg], Ty::Text),
        _ => return Ok(None),
    };
    let mut bound = Vec::with_capacity(n);
    for (a, check) in args.iter().zip(checks) {
        match check(binder, a.clone())? {
            Some(b) => bound.push(b),
            None => return Ok(None),
        }
    }
    let snap = snapshot(binder, pos)?;
    if matches!(func, F::RelationSize(_) | F::DatabaseSize) {
        snap.wants_sizes
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if matches!(func, F::DatabaseSize) {
        snap.wants_database_sizes
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Some(call(func, Some(snap), bound, ty, pos)))
}

/// `'name'::regtype`: the type's OID (a literal is looked up now, as `'t'::regclass` is). As
/// with regclass, the value is the OID that `::regtype::oid` would give, not a name.
fn regtype_of_text(binder: &Binder, inner: Bound) -> Result<Bound, SqlError> {
    let pos = inner.pos;
    if let Kind::Const(d) = &inner.kind {
        let oid = match d {
            Datum::Null => None,
            Datum::Text(name) => Some(type_oid_named(name).ok_or_else(|| no_such_type(name))?),
            _ => return Err(no_such_type(&format!("{d:?}"))),
        };
        let mut b = Bound::constant(oid.map_or(Datum::Null, Datum::Int), Ty::Int8);
        b.pos = pos;
        return Ok(b);
    }
    let arg = binder.coerce(inner, Ty::Text, TYPMOD_NONE)?;
    let snap = snapshot(binder, pos)?;
    Ok(call(
        PgFunc::RegtypeIn { missing_ok: false },
        Some(snap),
        vec![arg],
        Ty::Int8,
        pos,
    ))
}

fn no_such_type(name: &str) -> SqlError {
    SqlError::new(UNDEFINED_OBJECT, format!("type \"{name}\" does not exist"))
}

/// The OID of the type `name` means, as `to_regtype` reads it: a type in SQL syntax
/// (`integer`, `character varying`, `double precision`, `text[]`, `pg_catalog.int4`), else
/// a catalog type name (`oid`, `_int4`); None when no type has the name.
fn type_oid_named(name: &str) -> Option<i64> {
    let name = name.trim();
    let bare = name.strip_prefix("pg_catalog.").unwrap_or(name);
    let parsed = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(bare)
        .ok()
        .and_then(|mut parser| {
            let data_type = parser.parse_data_type().ok()?;
            let rest = parser.peek_token();
            (rest.token == sqlparser::tokenizer::Token::EOF).then_some(data_type)
        });
    if let Some((ty, _)) = parsed.and_then(|t| expr::resolve_type(&t).ok()) {
        return Some(i64::from(ty.oid()));
    }
    let lower = bare.to_ascii_lowercase();
    let catalog_name = lower.trim_matches('"');
    TYPES
        .iter()
        .map(|t| (t.0, t.1))
        .chain(array_types().map(|a| (a.0, a.1)))
        .find(|(_, n)| *n == catalog_name)
        .map(|(oid, _)| oid)
}

/// Casts to the `reg*` types, `oid`, `pg_catalog.`-qualified type names and array types.
/// None: an ordinary cast.
pub(crate) fn bind_cast(
    binder: &Binder,
    inner: Bound,
    data_type: &ast::DataType,
) -> Result<Option<Bound>, SqlError> {
    let pos = inner.pos;
    let name = match data_type {
        ast::DataType::Regclass => "regclass".to_string(),
        ast::DataType::Custom(name, mods) if mods.is_empty() => {
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.as_ident().map(crate::plan::ident).unwrap_or_default())
                .collect();
            match parts.as_slice() {
                [n] => n.clone(),
                [s, n] if s == "pg_catalog" => n.clone(),
                _ => return Ok(None),
            }
        }
        // The catalog's arrays are carried in their text form: casting one to an array type
        // checks nothing more. Literals and real arrays get the real array cast.
        ast::DataType::Array(_) if inner.ty == Ty::Unknown || inner.ty.element().is_some() => {
            return Ok(None)
        }
        ast::DataType::Array(_) => {
            return match inner.ty {
                Ty::Text => Ok(Some(binder.coerce(inner, Ty::Text, TYPMOD_NONE)?)),
                other => Err(SqlError::new(
                    CANNOT_COERCE,
                    format!("cannot cast type {} to an array type", other.sql_name()),
                )
                .at(pos)),
            };
        }
        _ => return Ok(None),
    };
    let reg = match name.as_str() {
        "regclass" => PgFunc::RegclassOut,
        "regtype" if inner.ty.is_integer() => PgFunc::RegtypeOut,
        "regtype" if inner.ty.is_string() || inner.ty == Ty::Unknown => {
            return regtype_of_text(binder, inner).map(Some);
        }
        "regnamespace" => PgFunc::RegnamespaceOut,
        "oid" => {
            if inner.ty.is_integer() || inner.ty == Ty::Unknown {
                return Ok(Some(binder.coerce(inner, Ty::Int8, TYPMOD_NONE)?));
            }
            return Err(SqlError::new(
                CANNOT_COERCE,
                format!("cannot cast type {} to oid", inner.ty.sql_name()),
            )
            .at(pos));
        }
        "text" | "name" | "int2" | "int4" | "int8" | "bool" | "float8" | "regtype" => {
            // `pg_catalog.text` etc.: the ordinary cast, unqualified.
            let ty = match name.as_str() {
                "text" => Ty::Text,
                "name" => Ty::Name,
                "int2" => Ty::Int2,
                "int4" => Ty::Int4,
                "int8" => Ty::Int8,
                "bool" => Ty::Bool,
                "float8" => Ty::Float8,
                _ => Ty::RegType,
            };
            return Ok(Some(binder.coerce(inner, ty, TYPMOD_NONE)?));
        }
        _ => return Ok(None),
    };
    let snap = snapshot(binder, pos)?;
    // 'name'::regclass: the relation's OID, looked up now (PostgreSQL prints the name; here
    // the value is the OID, as `::regclass::oid` would give).
    if let (Kind::Const(d), Ty::Unknown, PgFunc::RegclassOut) = (&inner.kind, inner.ty, &reg) {
        return match d {
            Datum::Null => Ok(Some(Bound::constant(Datum::Null, Ty::Int8))),
            Datum::Text(s) => match snap.regclass_oid(s) {
                Some(oid) => {
                    let mut b = Bound::constant(Datum::Int(oid), Ty::Int8);
                    b.pos = pos;
                    Ok(Some(b))
                }
                None => Err(SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{s}\" does not exist"),
                )
                .at(pos)),
            },
            _ => Ok(None),
        };
    }
    if matches!(reg, PgFunc::RegclassOut) && (inner.ty.is_string() || inner.ty == Ty::Unknown) {
        // A parameter or a text expression: looked up when evaluated.
        let arg = binder.coerce(inner, Ty::Text, TYPMOD_NONE)?;
        return Ok(Some(call(
            PgFunc::RegclassIn { missing_ok: false },
            Some(snap),
            vec![arg],
            Ty::Int8,
            pos,
        )));
    }
    if !inner.ty.is_integer() {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!(
                "cast from {} to {name} is not supported yet",
                inner.ty.sql_name()
            ),
        )
        .at(pos));
    }
    let arg = binder.coerce(inner, Ty::Int8, TYPMOD_NONE)?;
    Ok(Some(call(reg, Some(snap), vec![arg], Ty::Name, pos)))
}

/// The column name a cast to a catalog type gives (`x::pg_catalog.regclass` → "regclass").
pub(crate) fn cast_type_name(data_type: &ast::DataType) -> Option<String> {
    match data_type {
        ast::DataType::Regclass => Some("regclass".to_string()),
        ast::DataType::Custom(name, mods) if mods.is_empty() => {
            let last = name.0.last()?.as_ident().map(crate::plan::ident)?;
            [
                "regclass",
                "regtype",
                "regnamespace",
                "oid",
                "text",
                "name",
                "int2",
                "int4",
                "int8",
                "bool",
                "float8",
            ]
            .contains(&last.as_str())
            .then_some(last)
        }
        _ => None,
    }
}

/// Regular-expression operators (`~`, `~*`, `!~`, `!~*`, also as `OPERATOR(pg_catalog.~)`).
/// None: not one of them.
pub(crate) fn bind_binary(
    binder: &Binder,
    left: &ast::Expr,
    op: &ast::BinaryOperator,
    right: &ast::Expr,
) -> Result<Option<Bound>, SqlError> {
    use ast::BinaryOperator as B;
    let (negated, case_insensitive) = match op {
        B::PGRegexMatch => (false, false),
        B::PGRegexIMatch => (false, true),
        B::PGRegexNotMatch => (true, false),
        B::PGRegexNotIMatch => (true, true),
        B::PGCustomBinaryOperator(parts) => {
            let (schema_ok, sym) = match parts.as_slice() {
                [s, sym] => (s == "pg_catalog", sym.as_str()),
                [sym] => (true, sym.as_str()),
                _ => (false, ""),
            };
            if !schema_ok {
                return Ok(None);
            }
            let plain = match sym {
                "~" => return bind_binary(binder, left, &B::PGRegexMatch, right),
                "~*" => return bind_binary(binder, left, &B::PGRegexIMatch, right),
                "!~" => return bind_binary(binder, left, &B::PGRegexNotMatch, right),
                "!~*" => return bind_binary(binder, left, &B::PGRegexNotIMatch, right),
                "=" => B::Eq,
                "<>" => B::NotEq,
                "<" => B::Lt,
                "<=" => B::LtEq,
                ">" => B::Gt,
                ">=" => B::GtEq,
                _ => return Ok(None),
            };
            return binder
                .bind(&ast::Expr::BinaryOp {
                    left: Box::new(left.clone()),
                    op: plain,
                    right: Box::new(right.clone()),
                })
                .map(Some);
        }
        _ => return Ok(None),
    };
    let (l, r) = (binder.bind(left)?, binder.bind(right)?);
    let pos = l.pos;
    let (Some(l), Some(r)) = (text_arg(binder, l.clone())?, text_arg(binder, r.clone())?) else {
        return Err(SqlError::new(
            UNDEFINED_FUNCTION,
            format!(
                "operator does not exist: {} {op} {}",
                l.ty.sql_name(),
                r.ty.sql_name()
            ),
        )
        .with_hint(&crate::error::HINT_NO_OPERATOR)
        .at(pos));
    };
    // A constant pattern is checked now, as PostgreSQL does while planning.
    if let Kind::Const(Datum::Text(p)) = &r.kind {
        compile(p, case_insensitive)?;
    }
    Ok(Some(call(
        PgFunc::Regex {
            negated,
            case_insensitive,
        },
        None,
        vec![l, r],
        Ty::Bool,
        pos,
    )))
}

/// `COLLATE`, `x op ANY/ALL (array)` and subscripts. None: not one of them.
pub(crate) fn bind_expr(
    binder: &Binder,
    e: &ast::Expr,
    pos: Option<usize>,
) -> Result<Option<Bound>, SqlError> {
    match e {
        ast::Expr::Collate { expr, collation } => {
            let parts: Vec<String> = collation
                .0
                .iter()
                .map(|p| p.as_ident().map(|i| i.value.clone()).unwrap_or_default())
                .collect();
            let name = parts.last().cloned().unwrap_or_default();
            let schema_ok = parts.len() == 1 || (parts.len() == 2 && parts[0] == "pg_catalog");
            // Text compares bytewise here, which is what "C" and the default collation mean.
            if !(schema_ok && ["default", "C", "POSIX"].contains(&name.as_str())) {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    format!("collation \"{name}\" is not supported yet"),
                )
                .at(pos));
            }
            let b = binder.bind(expr)?;
            if !(b.ty.is_string() || b.ty == Ty::Unknown) {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!("collations are not supported by type {}", b.ty.sql_name()),
                )
                .at(pos));
            }
            Ok(Some(b))
        }
        ast::Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        }
        | ast::Expr::AllOp {
            left,
            compare_op,
            right,
        } => {
            let all = matches!(e, ast::Expr::AllOp { .. });
            let op = match compare_op {
                ast::BinaryOperator::Eq => Cmp::Eq,
                ast::BinaryOperator::NotEq => Cmp::Ne,
                ast::BinaryOperator::Lt => Cmp::Lt,
                ast::BinaryOperator::LtEq => Cmp::Le,
                ast::BinaryOperator::Gt => Cmp::Gt,
                ast::BinaryOperator::GtEq => Cmp::Ge,
                other => {
                    return Err(SqlError::new(
                        FEATURE_NOT_SUPPORTED,
                        format!("operator {other} with ANY/ALL is not supported yet"),
                    )
                    .at(pos))
                }
            };
            if matches!(right.as_ref(), ast::Expr::Subquery(_)) {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "ANY/ALL (subquery) is not supported yet",
                )
                .at(pos));
            }
            let l = binder.bind(left)?;
            let r = binder.bind(right)?;
            if let Some(elem) = r.ty.element() {
                let l = binder.coerce(l, elem, TYPMOD_NONE)?;
                return Ok(Some(crate::funcs::builtin(
                    crate::funcs::Builtin::ArrayAny { op, all },
                    vec![l, r],
                    Ty::Bool,
                    pos,
                )));
            }
            let l = if l.ty == Ty::Unknown {
                binder.coerce(l, Ty::Text, TYPMOD_NONE)?
            } else {
                l
            };
            let Some(r) = text_arg(binder, r.clone())? else {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!(
                        "op ANY/ALL (array) requires array on right side (not {})",
                        r.ty.sql_name()
                    ),
                )
                .at(pos));
            };
            Ok(Some(call(
                PgFunc::Any { op, all },
                None,
                vec![l, r],
                Ty::Bool,
                pos,
            )))
        }
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            // `t.col[i]` reaches here as `t` with the chain `.col`, `[i]`.
            let qualified;
            let (root, chain) = match (root.as_ref(), access_chain.as_slice()) {
                (
                    ast::Expr::Identifier(table),
                    [ast::AccessExpr::Dot(ast::Expr::Identifier(column)), rest @ ..],
                ) => {
                    qualified = ast::Expr::CompoundIdentifier(vec![table.clone(), column.clone()]);
                    (&qualified, rest)
                }
                _ => (root.as_ref(), access_chain.as_slice()),
            };
            let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] = chain else {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "array slices and field selection are not supported yet",
                )
                .at(pos));
            };
            let arr = binder.bind(root)?;
            if let Some(elem) = arr.ty.element() {
                let i = binder.bind(index)?;
                let i = binder.coerce(i, Ty::Int4, TYPMOD_NONE)?;
                return Ok(Some(crate::funcs::builtin(
                    crate::funcs::Builtin::ArraySubscript,
                    vec![arr, i],
                    elem,
                    pos,
                )));
            }
            let Some(arr) = text_arg(binder, arr.clone())? else {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!(
                        "cannot subscript type {} because it does not support subscripting",
                        arr.ty.sql_name()
                    ),
                )
                .at(pos));
            };
            let i = binder.bind(index)?;
            let Some(i) = int_arg(binder, i)? else {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    "array subscript must have type integer",
                )
                .at(pos));
            };
            Ok(Some(call(
                PgFunc::Subscript,
                None,
                vec![arr, i],
                Ty::Unknown,
                pos,
            )))
        }
        _ => Ok(None),
    }
}

fn compile(pattern: &str, case_insensitive: bool) -> Result<regex::Regex, SqlError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            SqlError::new(
                INVALID_REGULAR_EXPRESSION,
                format!(
                    "invalid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("")
                ),
            )
        })
}

/// Parses an array's text form (`{a,"b c",NULL}`) into its elements (one dimension).
pub(crate) fn parse_array(s: &str) -> Result<Vec<Option<String>>, SqlError> {
    let bad = || {
        SqlError::new(
            INVALID_TEXT_REPRESENTATION,
            format!("malformed array literal: \"{s}\""),
        )
    };
    let inner = s
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => item.push(chars.next().ok_or_else(bad)?),
                    Some(c) => item.push(c),
                    None => return Err(bad()),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return Err(bad());
                }
                if c == '\\' {
                    chars.next();
                    item.push(chars.next().ok_or_else(bad)?);
                    continue;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
            if item.is_empty() {
                return Err(bad());
            }
        }
        out.push(if !quoted && item.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return Err(bad()),
        }
    }
    Ok(out)
}

/// An array's text form, as `array_out` writes it.
/// `pg_stats.n_distinct` as PostgreSQL stores it: a count, or, where the column's distinct
/// values seem to grow with the table (over a tenth of its rows), minus their fraction of
/// the rows (-1: every row differs).
fn stats_distinct(distinct: u64, rows: u64) -> f32 {
    if rows > 0 && distinct.saturating_mul(10) > rows {
        -((distinct as f64 / rows as f64).min(1.0)) as f32
    } else {
        distinct as f32
    }
}

/// `pg_stats.histogram_bounds`: ANALYZE keeps them as order-preserving key bytes; shown
/// as PostgreSQL shows the array, NULL where there are none or the key bytes do not keep
/// the value (numeric, interval).
fn histogram_bounds(bounds: &[Vec<u8>], ty: crate::SqlType, style: &crate::types::Style) -> Datum {
    if bounds.len() < 2 {
        return NULL;
    }
    let mut items = Vec::with_capacity(bounds.len());
    for key in bounds {
        let Some(mut datums) = crate::rowcodec::decode_key_datums(key, &[ty]) else {
            return NULL;
        };
        let Some(datum) = datums.pop() else {
            return NULL;
        };
        items.push(crate::types::output(&datum, style));
    }
    Datum::Text(array_text(&items))
}

fn array_text(items: &[Option<String>]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            None => "NULL".to_string(),
            Some(s) => {
                let needs_quotes = s.is_empty()
                    || s.eq_ignore_ascii_case("null")
                    || s.chars()
                        .any(|c| c.is_whitespace() || "{},\"\\".contains(c));
                if needs_quotes {
                    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    s.clone()
                }
            }
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// `ARRAY(subquery)`: the rows' first column as an array (text form).
pub(crate) fn array_from_rows(rows: Vec<Vec<Datum>>, _ty: Ty, cx: &Eval) -> Datum {
    let items: Vec<Option<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .next()
                .and_then(|d| types::output(&d, &cx.env.style))
        })
        .collect();
    Datum::Text(array_text(&items))
}

fn int_of(d: &Datum) -> Option<i64> {
    match d {
        Datum::Int(v) => Some(*v),
        _ => None,
    }
}

pub(crate) fn eval(call: &PgCall, args: &[Bound], b: &Bound, cx: &Eval) -> Result<Datum, SqlError> {
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        values.push(expr::eval(a, cx)?);
    }
    let snap = || {
        call.snap
            .as_deref()
            .expect("catalog calls carry a snapshot")
    };
    let text = |d: &Datum| match d {
        Datum::Text(s) => Some(s.clone()),
        _ => None,
    };
    use PgFunc as F;
    // Strict functions: NULL in, NULL out (current_setting's flag and regex included).
    let strict = !matches!(call.func, F::NullText | F::Any { .. });
    if strict && values.first().is_some_and(|v| v.is_null()) {
        return Ok(Datum::Null);
    }
    Ok(match &call.func {
        F::FormatType => {
            let typmod = match values.get(1) {
                Some(Datum::Int(m)) => *m as i32,
                _ => TYPMOD_NONE,
            };
            let oid = int_of(&values[0]).unwrap_or(0);
            Datum::Text(format_type(u32::try_from(oid).unwrap_or(0), typmod))
        }
        F::GetExpr => values[0].clone(),
        F::TableIsVisible => Datum::Bool(snap().relation_visible(int_of(&values[0]).unwrap_or(0))),
        F::TypeIsVisible => {
            let oid = int_of(&values[0]).unwrap_or(0);
            // NULL for an OID that is no type, as PostgreSQL answers.
            if TYPES.iter().any(|t| t.0 == oid) {
                Datum::Bool(true)
            } else {
                Datum::Null
            }
        }
        F::False => Datum::Bool(false),
        F::GetUserById => Datum::Text(snap().user_name(int_of(&values[0]).unwrap_or(0))),
        F::GetIndexDef => match snap().index_def(
            int_of(&values[0]).unwrap_or(0),
            values.get(1).and_then(int_of).unwrap_or(0),
            matches!(values.get(2), Some(Datum::Bool(true))),
        ) {
            Some(d) => Datum::Text(d),
            None => Datum::Null,
        },
        F::GetConstraintDef => {
            let pretty = matches!(values.get(1), Some(Datum::Bool(true)));
            match snap().constraint_def(int_of(&values[0]).unwrap_or(0), pretty) {
                Some(d) => Datum::Text(d),
                None => {
                    return Err(SqlError::new(
                        INTERNAL_ERROR,
                        format!(
                            "cache lookup failed for constraint {}",
                            int_of(&values[0]).unwrap_or(0)
                        ),
                    ))
                }
            }
        }
        F::NullText => Datum::Null,
        F::Identity => values[0].clone(),
        F::EncodingToChar => Datum::Text(match int_of(&values[0]) {
            Some(0) => "SQL_ASCII".to_string(),
            Some(6) => "UTF8".to_string(),
            _ => String::new(),
        }),
        F::ArrayToString => {
            if values[1].is_null() {
                return Ok(Datum::Null);
            }
            let items = parse_array(&text(&values[0]).unwrap_or_default())?;
            let sep = text(&values[1]).unwrap_or_default();
            let kept: Vec<String> = items.into_iter().flatten().collect();
            Datum::Text(kept.join(&sep))
        }
        F::ArrayUpper => {
            let items = parse_array(&text(&values[0]).unwrap_or_default())?;
            if int_of(&values[1]) != Some(1) || items.is_empty() {
                Datum::Null
            } else {
                Datum::Int(items.len() as i64)
            }
        }
        F::RelationSize(of) => {
            let Some(oid) = int_of(&values[0]) else {
                return Ok(Datum::Null);
            };
            let of = match of {
                SizeOf::Fork => match text(&values[1]).as_deref() {
                    None => return Ok(Datum::Null),
                    Some("main") => SizeOf::Relation,
                    Some("fsm" | "vm" | "init") => SizeOf::OtherFork,
                    Some(_) => {
                        return Err(SqlError::new(INVALID_PARAMETER_VALUE, "invalid fork name"))
                    }
                },
                other => *other,
            };
            let snap = snap();
            let bytes = match of {
                SizeOf::Relation => snap.relation_bytes(oid)?,
                SizeOf::OtherFork => snap.relation_bytes(oid)?.map(|_| 0),
                SizeOf::Indexes => snap.indexes_bytes(oid)?,
                SizeOf::Total => match (snap.relation_bytes(oid)?, snap.indexes_bytes(oid)?) {
                    (Some(rel), indexes) => Some(rel + indexes.unwrap_or(0)),
                    (None, _) => None,
                },
                SizeOf::Fork => unreachable!("a fork argument is read above"),
            };
            bytes.map_or(Datum::Null, |b| {
                Datum::Int(i64::try_from(b).unwrap_or(i64::MAX))
            })
        }
        F::DatabaseSize => {
            let Some(name) = text(&values[0]) else {
                return Ok(Datum::Null);
            };
            match snap().database_bytes(&name)? {
                Some(bytes) => Datum::Int(i64::try_from(bytes).unwrap_or(i64::MAX)),
                None => return Err(no_such_database(&name)),
            }
        }
        F::HasDatabasePrivilege => {
            let (Some(name), Some(privileges)) = (text(&values[0]), text(&values[1])) else {
                return Ok(Datum::Null);
            };
            check_database_privileges(&privileges)?;
            if !snap().databases.iter().any(|(_, n)| *n == name) {
                return Err(no_such_database(&name));
            }
            Datum::Bool(true)
        }
        F::ViewDef => {
            let snap = snap();
            match int_of(&values[0]).and_then(|oid| snap.view_by_oid.get(&oid)) {
                Some(&at) => Datum::Text(format!(" {};", snap.views[at].def.query)),
                None => Datum::Null,
            }
        }
        F::SizePretty => match &values[0] {
            Datum::Int(size) => Datum::Text(size_pretty(*size)),
            Datum::Numeric(size) => {
                // PostgreSQL's numeric variant prints bytes as they are (fractions too) and
                // truncates as it divides into larger units, as the integer one does.
                use bigdecimal::ToPrimitive;
                if size.abs() < 10 * 1024 {
                    Datum::Text(format!("{} bytes", crate::numeric::to_text(size)))
                } else {
                    let bytes = size.with_scale(0).to_i64().ok_or_else(|| {
                        SqlError::new(NUMERIC_VALUE_OUT_OF_RANGE, "bigint out of range")
                    })?;
                    Datum::Text(size_pretty(bytes))
                }
            }
            _ => Datum::Null,
        },
        F::RelationIsPublishable => Datum::Bool(
            snap()
                .table_by_oid(int_of(&values[0]).unwrap_or(0))
                .is_some(),
        ),
        F::CurrentSetting => {
            let name = text(&values[0]).unwrap_or_default();
            let missing_ok = matches!(values.get(1), Some(Datum::Bool(true)));
            match snap()
                .params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                Some((_, v)) => Datum::Text(v.clone()),
                None if missing_ok => Datum::Null,
                None => return Err(crate::session::unrecognized(&name)),
            }
        }
        F::SetConfig if !values[1].is_null() => values[1].clone(),
        F::SetConfig => {
            // A NULL value resets the parameter: its value then.
            let name = text(&values[0]).unwrap_or_default();
            match snap()
                .params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                Some((_, v)) => Datum::Text(v.clone()),
                None => values[1].clone(),
            }
        }
        F::RegclassOut => Datum::Text(snap().regclass_name(int_of(&values[0]).unwrap_or(0))),
        F::RegtypeOut => {
            let oid = int_of(&values[0]).unwrap_or(0);
            Datum::Text(if oid == 0 {
                "-".to_string()
            } else {
                match format_type(u32::try_from(oid).unwrap_or(0), TYPMOD_NONE) {
                    s if s == "???" => oid.to_string(),
                    s => s,
                }
            })
        }
        F::RegtypeIn { missing_ok } => {
            let name = text(&values[0]).unwrap_or_default();
            match type_oid_named(&name) {
                Some(oid) => Datum::Int(oid),
                None if *missing_ok => Datum::Null,
                None => return Err(no_such_type(&name)),
            }
        }
        F::SerialSequence => {
            let (Some(table), Some(column)) = (text(&values[0]), text(&values[1])) else {
                return Ok(Datum::Null);
            };
            snap()
                .serial_sequence(&table, &column)?
                .map_or(Datum::Null, Datum::Text)
        }
        F::RegclassIn { missing_ok } => {
            let Some(name) = text(&values[0]) else {
                return Ok(Datum::Null);
            };
            match snap().regclass_oid(&name) {
                Some(oid) => Datum::Int(oid),
                None if *missing_ok => Datum::Null,
                None => {
                    return Err(SqlError::new(
                        UNDEFINED_TABLE,
                        format!("relation \"{name}\" does not exist"),
                    ))
                }
            }
        }
        F::RegnamespaceOut => {
            let oid = int_of(&values[0]).unwrap_or(0);
            Datum::Text(match snap().schema_name(oid) {
                Some(n) => quote_ident(n),
                None => oid.to_string(),
            })
        }
        F::Regex {
            negated,
            case_insensitive,
        } => {
            let (Some(v), Some(p)) = (text(&values[0]), text(&values[1])) else {
                return Ok(Datum::Null);
            };
            let re = compile(&p, *case_insensitive)?;
            Datum::Bool(re.is_match(&v) != *negated)
        }
        F::Any { op, all } => {
            let (left, arr) = (&values[0], &values[1]);
            let Some(arr) = text(arr) else {
                return Ok(Datum::Null);
            };
            let items = parse_array(&arr)?;
            if items.is_empty() {
                return Ok(Datum::Bool(*all));
            }
            if left.is_null() {
                return Ok(Datum::Null);
            }
            let mut saw_null = false;
            for item in items {
                let Some(s) = item else {
                    saw_null = true;
                    continue;
                };
                let elem = types::input(args[0].ty, TYPMOD_NONE, &s, &cx.env.style)?;
                let holds = expr::cmp_result(*op, expr::compare(left, &elem));
                if holds && !*all {
                    return Ok(Datum::Bool(true));
                }
                if !holds && *all {
                    return Ok(Datum::Bool(false));
                }
            }
            if saw_null {
                Datum::Null
            } else {
                Datum::Bool(*all)
            }
        }
        F::Subscript => {
            let Some(i) = int_of(&values[1]) else {
                return Ok(Datum::Null);
            };
            let items = parse_array(&text(&values[0]).unwrap_or_default())?;
            let _ = b;
            match usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| items.get(i))
            {
                Some(Some(s)) => Datum::Text(s.clone()),
                _ => Datum::Null,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_text_round_trips() {
        let items = vec![
            Some("a".to_string()),
            None,
            Some("b c".to_string()),
            Some(String::new()),
        ];
        let s = array_text(&items);
        assert_eq!(s, "{a,NULL,\"b c\",\"\"}");
        assert_eq!(parse_array(&s).unwrap(), items);
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(parse_array("{0}").unwrap(), vec![Some("0".to_string())]);
        assert!(parse_array("0").is_err());
        assert!(parse_array("{a,}").is_err());
    }

    #[test]
    fn oids_are_derived_from_ids() {
        assert_eq!(object_oid(3), 16390);
        assert_eq!(pkey_oid(3), 16391);
        assert_ne!(check_oid(3, 0), attrdef_oid(3, 0));
        assert!(check_oid(524_287, 2047) < 1 << 32);
        assert!(attrdef_oid(524_287, 2047) < 1 << 32);
    }

    #[test]
    fn defaults_deparse_like_postgres() {
        assert_eq!(deparse_default("'x'", Ty::Text), "'x'::text");
        assert_eq!(
            deparse_default("'it''s'", Ty::Varchar),
            "'it''s'::character varying"
        );
        assert_eq!(deparse_default("7", Ty::Int8), "7");
        assert_eq!(deparse_default("-1", Ty::Int4), "'-1'::integer");
        assert_eq!(deparse_default("true", Ty::Bool), "true");
    }

    #[test]
    fn type_names_resolve_as_to_regtype_reads_them() {
        assert_eq!(type_oid_named("integer"), Some(23));
        assert_eq!(type_oid_named("int4"), Some(23));
        assert_eq!(type_oid_named("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid_named("character varying"), Some(1043));
        assert_eq!(type_oid_named("double precision"), Some(701));
        assert_eq!(type_oid_named("text[]"), Some(1009));
        assert_eq!(type_oid_named("_int4"), Some(1007));
        assert_eq!(type_oid_named("oid"), Some(26));
        assert_eq!(type_oid_named("hstore"), None);
        assert_eq!(type_oid_named("integer junk"), None);
    }

    #[test]
    fn format_type_names() {
        assert_eq!(format_type(23, -1), "integer");
        assert_eq!(format_type(1043, 14), "character varying(10)");
        assert_eq!(format_type(1700, ((10 << 16) | 2) + 4), "numeric(10,2)");
        assert_eq!(format_type(99999, -1), "???");
    }
}
