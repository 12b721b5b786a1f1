//! The catalog: databases, schemas, tables and their columns. One immutable [`Catalog`] value
//! is current at a time; DDL builds the next one with [`Catalog::apply`] (on shard 0, which
//! persists it before publishing), so a statement sees one consistent catalog from start to end
//! and a DDL statement takes effect atomically for every shard.
//!
//! Table ids are never reused, so rows a dropped table left behind can never be read as a new
//! table's rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ddl_undo::{EntryKey, PendingDdl, UndoStep};
use crate::error::*;
use crate::types::SqlType;

/// Databases one server holds, at most.
pub const DATABASES_MAX: usize = 1024;
/// Tables one database holds, at most.
pub const TABLES_PER_DATABASE_MAX: usize = 100_000;
/// Columns one table may have (PostgreSQL's MaxHeapAttributeNumber).
pub const COLUMNS_MAX: usize = 1600;
/// `NAMEDATALEN - 1`.
pub const IDENTIFIER_BYTES_MAX: usize = 63;

pub const DEFAULT_DATABASE: &str = "postgres";
pub const DEFAULT_SCHEMA: &str = "public";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Catalog {
    /// Incremented by every change; a DDL statement names the version it was planned on.
    pub version: u64,
    /// The next id for a database, schema or table. Ids are never reused: the keys of a
    /// dropped table or index are left to compaction (see [`LiveIds`]).
    pub next_id: u32,
    pub databases: BTreeMap<String, Database>,
    /// Ids reserved for a table rewrite's new table and indexes, written before the catalog
    /// names them: their keys are not garbage. No build survives a restart
    /// ([`Catalog::forget_builds`]).
    #[serde(default)]
    pub building: BTreeSet<u32>,
    /// Tables whose writes the shards refuse while an ALTER TABLE checks or rewrites their
    /// rows (a write it did not see would be lost, or break the constraint it checks).
    #[serde(default)]
    pub frozen: BTreeSet<u32>,
    /// The DDL of open transaction blocks, by transaction: what undoes it
    /// ([`crate::ddl_undo`]).
    #[serde(default)]
    pub pending: BTreeMap<u64, PendingDdl>,
    /// [`Catalog::live_ids`], computed once per version (every write fragment asks).
    #[serde(skip)]
    live: std::sync::OnceLock<LiveIds>,
    /// Tables open blocks' DDL changed, with the block that holds them.
    #[serde(skip)]
    held: std::sync::OnceLock<HashMap<u32, u64>>,
    /// [`Catalog::view_for`]'s views of this version, by the block whose DDL they keep.
    #[serde(skip)]
    views: ViewCache,
}

/// A catalog's views without other blocks' DDL ([`Catalog::view_for`]), by the one block
/// whose DDL each keeps (None: none). A clone starts empty: a changed copy must not answer
/// with its original's views.
#[derive(Debug, Default)]
struct ViewCache(std::sync::Mutex<Vec<(Option<u64>, Arc<Catalog>)>>);

impl Clone for ViewCache {
    fn clone(&self) -> ViewCache {
        ViewCache::default()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Database {
    pub id: u32,
    pub schemas: BTreeMap<String, Schema>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schema {
    pub id: u32,
    #[serde(with = "arc_tables")]
    pub tables: BTreeMap<String, Arc<Table>>,
    /// Tables, indexes and views share one namespace per schema, as relations do in
    /// PostgreSQL (a name is taken by at most one of them).
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexDef>,
    #[serde(default)]
    pub views: BTreeMap<String, ViewDef>,
    #[serde(default)]
    pub sequences: BTreeMap<String, SequenceDef>,
}

impl Schema {
    pub(crate) fn new(id: u32) -> Schema {
        Schema {
            id,
            tables: BTreeMap::new(),
            indexes: BTreeMap::new(),
            views: BTreeMap::new(),
            sequences: BTreeMap::new(),
        }
    }

    /// Whether a table, index or view has this name.
    pub fn has_relation(&self, name: &str) -> bool {
        self.tables.contains_key(name)
            || self.indexes.contains_key(name)
            || self.views.contains_key(name)
            || self.sequences.contains_key(name)
    }
}

/// A secondary index (CREATE INDEX). Recorded in the catalog (psql lists it, DROP INDEX
/// removes it, dropping its table drops it); queries do not use it yet: they scan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexDef {
    pub id: u32,
    pub name: String,
    /// The indexed table's name (same schema).
    pub table: String,
    /// Column positions in the table.
    pub columns: Vec<usize>,
    pub unique: bool,
    /// The index of a UNIQUE constraint (CREATE TABLE's, or ALTER TABLE ADD CONSTRAINT's),
    /// named as the constraint: ALTER TABLE DROP CONSTRAINT drops it, DROP INDEX refuses,
    /// and `pg_constraint` lists it, as in PostgreSQL.
    #[serde(default)]
    pub constraint: bool,
    /// A partial index's WHERE (SQL text over the table's column names): only rows it is
    /// true of have entries (and, unique, claims). None: every row.
    #[serde(default)]
    pub predicate: Option<String>,
    /// `INCLUDE (col, ...)`: columns it carries besides its keys, by name (a covering
    /// index; they take no part in entries or uniqueness here).
    #[serde(default)]
    pub include: Vec<String>,
}

/// A sequence (CREATE SEQUENCE, or a serial column's). Its current value lives on shard 0
/// (`cluster::SequenceStates`), not in the catalog.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SequenceDef {
    pub id: u32,
    pub name: String,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub start: i64,
    pub cycle: bool,
    /// The table whose serial column it feeds (dropped with it).
    pub owned_by: Option<String>,
    /// `AS smallint|integer|bigint`; None (catalogs written before it was kept): bigint, or
    /// a serial column's type.
    #[serde(default)]
    pub data_type: Option<crate::types::SqlType>,
    /// `CACHE n`: recorded for `pg_sequence`; values are handed out one at a time anyway.
    #[serde(default = "one")]
    pub cache: i64,
}

fn one() -> i64 {
    1
}

/// A view (CREATE VIEW): its query, planned afresh wherever the view is used.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewDef {
    pub id: u32,
    pub name: String,
    /// The defining query as SQL text.
    pub query: String,
    /// Column names given with the view (`CREATE VIEW v (a, b)`); empty: the query's own.
    pub columns: Vec<String>,
}

/// Tables are shared (`Arc`) between catalog versions and statements; serde stores them as
/// plain values.
mod arc_tables {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        tables: &BTreeMap<String, Arc<Table>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let plain: BTreeMap<&String, &Table> =
            tables.iter().map(|(k, v)| (k, v.as_ref())).collect();
        plain.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Arc<Table>>, D::Error> {
        let plain = BTreeMap::<String, Table>::deserialize(d)?;
        Ok(plain.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Table {
    pub id: u32,
    pub name: String,
    pub schema: String,
    pub columns: Vec<ColumnDef>,
    /// Column positions of the primary key; empty: rows are keyed by a hidden row id.
    pub primary_key: Vec<usize>,
    /// The PRIMARY KEY constraint's name (and its index's) where it is not the table's
    /// current name + `_pkey`: one given with CONSTRAINT, or the name it had when the table
    /// was renamed (PostgreSQL keeps a constraint's name through RENAME TO).
    #[serde(default)]
    pub pkey_constraint: Option<String>,
    pub checks: Vec<CheckDef>,
    /// FOREIGN KEY constraints this table's rows must satisfy (it is their referencing
    /// table).
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// What ANALYZE last gathered (None: never analyzed, or the columns changed since).
    #[serde(default)]
    pub stats: Option<TableStats>,
}

/// A table's statistics, from ANALYZE: its row count and, per column, a sample's shape.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TableStats {
    pub rows: u64,
    pub columns: Vec<ColumnStats>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnStats {
    /// Fraction of the sample that is NULL.
    pub null_frac: f64,
    /// Distinct non-NULL values in the table, estimated from the sample.
    pub distinct: u64,
    /// Up to 101 equally spaced values of the sorted non-NULL sample, as their order-preserving
    /// key bytes (empty for types whose key bytes are not in value order).
    pub histogram: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub typmod: i32,
    pub not_null: bool,
    /// The DEFAULT expression as SQL text, bound again wherever it is used.
    pub default: Option<String>,
    /// GENERATED BY DEFAULT AS IDENTITY: `default` is its owned sequence's nextval, which
    /// the catalogs show as an identity (`attidentity` 'd'), not as a DEFAULT.
    #[serde(default)]
    pub identity: bool,
    /// GENERATED ALWAYS AS IDENTITY: INSERT takes no value for it without OVERRIDING SYSTEM
    /// VALUE, and UPDATE sets it only to DEFAULT.
    #[serde(default)]
    pub identity_always: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckDef {
    pub name: String,
    /// The CHECK expression as SQL text.
    pub expr: String,
    /// Added NOT VALID and not validated since: the rows there were then are not known to
    /// pass it (new and changed rows are checked).
    #[serde(default)]
    pub not_valid: bool,
}

/// A FOREIGN KEY constraint, held by its referencing table. The referenced table is named
/// (schema and name in the same database) and so are its columns: the catalog renames them
/// here when that table or its columns are renamed, and drops the constraint with the table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForeignKeyDef {
    pub name: String,
    /// Referencing columns: positions in this table.
    pub columns: Vec<usize>,
    pub ref_schema: String,
    pub ref_table: String,
    /// The referenced columns, in `columns`' order: a primary key's or a UNIQUE
    /// constraint's columns.
    pub ref_columns: Vec<String>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
    /// MATCH FULL: the key columns are all NULL or none is (else MATCH SIMPLE: a key with a
    /// NULL is not checked).
    pub match_full: bool,
    pub deferrable: bool,
    /// INITIALLY DEFERRED: the referenced row must exist when the transaction commits, not
    /// when the statement ends.
    pub initially_deferred: bool,
    /// Added NOT VALID and not validated since.
    #[serde(default)]
    pub not_valid: bool,
}

/// What a referenced row's DELETE or key UPDATE does to the rows referencing it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    /// `pg_constraint.confupdtype` / `confdeltype`.
    pub fn code(self) -> char {
        match self {
            FkAction::NoAction => 'a',
            FkAction::Restrict => 'r',
            FkAction::Cascade => 'c',
            FkAction::SetNull => 'n',
            FkAction::SetDefault => 'd',
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

impl ForeignKeyDef {
    pub fn references(&self, schema: &str, table: &str) -> bool {
        self.ref_schema == schema && self.ref_table == table
    }
}

impl Database {
    /// Drops every foreign key whose referenced columns are no longer a primary key or
    /// UNIQUE constraint of its referenced table (DROP CONSTRAINT ... CASCADE).
    fn forget_unbacked_foreign_keys(&mut self) {
        let backed = |db: &Database, fk: &ForeignKeyDef| {
            let Some(schema) = db.schemas.get(&fk.ref_schema) else {
                return false;
            };
            let Some(parent) = schema.tables.get(&fk.ref_table) else {
                return false;
            };
            let mut want: Vec<usize> = fk
                .ref_columns
                .iter()
                .filter_map(|c| parent.column_index(c))
                .collect();
            want.sort_unstable();
            let sorted = |c: &[usize]| {
                let mut c = c.to_vec();
                c.sort_unstable();
                c
            };
            (!parent.primary_key.is_empty() && sorted(&parent.primary_key) == want)
                || schema
                    .indexes
                    .values()
                    .any(|i| i.unique && i.table == parent.name && sorted(&i.columns) == want)
        };
        let mut unbacked: Vec<(String, String, String)> = Vec::new();
        for (schema_name, schema) in &self.schemas {
            for t in schema.tables.values() {
                for fk in &t.foreign_keys {
                    if !backed(self, fk) {
                        unbacked.push((schema_name.clone(), t.name.clone(), fk.name.clone()));
                    }
                }
            }
        }
        for (schema, table, name) in unbacked {
            if let Some(t) = self
                .schemas
                .get_mut(&schema)
                .and_then(|s| s.tables.get_mut(&table))
            {
                Arc::make_mut(t).foreign_keys.retain(|fk| fk.name != name);
            }
        }
    }

    /// Every foreign key referencing table `schema.name`, with the table holding it.
    pub fn foreign_keys_to<'a>(
        &'a self,
        schema: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Arc<Table>, &'a ForeignKeyDef)> + 'a {
        self.schemas
            .values()
            .flat_map(|s| s.tables.values())
            .flat_map(|t| t.foreign_keys.iter().map(move |fk| (t, fk)))
            .filter(move |(_, fk)| fk.references(schema, name))
    }

    /// Drops the foreign keys referencing any of `tables` ((schema, name)) from the other
    /// tables: their referenced table is gone (DROP ... CASCADE).
    fn forget_foreign_keys_to(&mut self, tables: &[(String, String)]) {
        for s in self.schemas.values_mut() {
            for t in s.tables.values_mut() {
                let gone = |fk: &ForeignKeyDef| tables.iter().any(|(s, n)| fk.references(s, n));
                if t.foreign_keys.iter().any(gone) {
                    Arc::make_mut(t).foreign_keys.retain(|fk| !gone(fk));
                }
            }
        }
    }

    /// Follows a referenced table's RENAME TO and RENAME COLUMNs in the foreign keys that
    /// reference it.
    fn follow_renames(&mut self, schema: &str, old: &Table, new: &Table) {
        let renamed_columns: Vec<(&str, &str)> = if old.columns.len() == new.columns.len() {
            old.columns
                .iter()
                .zip(&new.columns)
                .filter(|(o, n)| o.name != n.name)
                .map(|(o, n)| (o.name.as_str(), n.name.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        let dropped_columns = old.columns.len() != new.columns.len();
        if old.name == new.name && renamed_columns.is_empty() && !dropped_columns {
            return;
        }
        for s in self.schemas.values_mut() {
            for t in s.tables.values_mut() {
                if !t
                    .foreign_keys
                    .iter()
                    .any(|fk| fk.references(schema, &old.name))
                {
                    continue;
                }
                let t = Arc::make_mut(t);
                for fk in &mut t.foreign_keys {
                    if !fk.references(schema, &old.name) {
                        continue;
                    }
                    fk.ref_table = new.name.clone();
                    for c in &mut fk.ref_columns {
                        if let Some((_, to)) = renamed_columns.iter().find(|(from, _)| from == c) {
                            *c = to.to_string();
                        }
                    }
                }
                // A referenced column dropped (DROP COLUMN ... CASCADE) takes its foreign
                // keys with it.
                t.foreign_keys.retain(|fk| {
                    !fk.references(schema, &new.name)
                        || fk.ref_columns.iter().all(|c| new.column_index(c).is_some())
                });
            }
        }
    }
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn pkey_name(&self) -> String {
        self.pkey_constraint
            .clone()
            .unwrap_or_else(|| format!("{}_pkey", self.name))
    }
}

/// A catalog change, computed by the statement's coordinator and applied on shard 0.
#[derive(Clone, Debug)]
pub enum DdlChange {
    CreateTable {
        database: String,
        table: Table,
        if_not_exists: bool,
        /// Sequences of its serial columns, created with it.
        sequences: Vec<SequenceDef>,
    },
    DropTables {
        database: String,
        /// (schema, table name)
        tables: Vec<(String, String)>,
        if_exists: bool,
    },
    CreateIndex {
        database: String,
        schema: String,
        index: IndexDef,
        if_not_exists: bool,
    },
    CreateSequence {
        database: String,
        schema: String,
        sequence: SequenceDef,
        if_not_exists: bool,
    },
    CreateView {
        database: String,
        schema: String,
        view: ViewDef,
        or_replace: bool,
    },
    DropRelations {
        database: String,
        kind: RelationKind,
        /// (schema, name)
        names: Vec<(String, String)>,
        if_exists: bool,
    },
    CreateDatabase {
        name: String,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
    },
    CreateSchema {
        database: String,
        name: String,
        if_not_exists: bool,
    },
    DropSchema {
        database: String,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    /// Takes a fresh id (for the rows of a table being rewritten), durably, so that no later
    /// object is given it.
    ReserveId,
    /// Refuse writes to a table (an ALTER TABLE is about to read all of its rows); 40001
    /// when another ALTER already has.
    FreezeWrites {
        table_id: u32,
    },
    /// Accept writes to it again (the ALTER failed; its `AlterTable` switch thaws too).
    ThawWrites {
        table_id: u32,
    },
    /// ANALYZE's result for table `name` (if it still has id `id`).
    SetStats {
        database: String,
        schema: String,
        name: String,
        id: u32,
        stats: TableStats,
    },
    /// ALTER TABLE: replaces table `old_name` (which must still have id `old_id`, else it
    /// changed meanwhile) with `table`. A new id means its rows were rewritten under that id:
    /// the old id's rows are then deleted. A new name renames its indexes' and serial
    /// sequences' references too; `index_columns` gives each of its indexes' column positions
    /// in the new table (None: the index is dropped with a dropped column), and `index_ids`
    /// the new id of each index a rewrite built again under the new table id (the old ids'
    /// entries are then deleted).
    AlterTable {
        database: String,
        schema: String,
        old_name: String,
        old_id: u32,
        table: Table,
        index_columns: Vec<(String, Option<Vec<usize>>)>,
        index_ids: Vec<(String, u32)>,
        /// Columns renamed, (old name, new name): renamed in its partial indexes' WHEREs
        /// and INCLUDE lists too.
        column_renames: Vec<(String, String)>,
    },
    /// ALTER INDEX ... RENAME TO (or ALTER TABLE ... RENAME CONSTRAINT of a UNIQUE
    /// constraint or primary key, whose index is renamed with it).
    RenameIndex {
        database: String,
        schema: String,
        old_name: String,
        new_name: String,
    },
    /// Gives sequence `name` a fresh id, so that it starts over from its START value
    /// (TRUNCATE ... RESTART IDENTITY in a transaction block). The values are kept per id,
    /// so a ROLLBACK, which puts the old id back, also puts back the old values; PostgreSQL
    /// gives the sequence a new relfilenode for the same reason.
    RenewSequence {
        database: String,
        schema: String,
        name: String,
    },
    /// A transaction block ends: its pending DDL is forgotten (`undo_from` None: committed),
    /// or its steps made at or after savepoint mark `undo_from` are undone (`Some(0)`: all
    /// of them, the block rolled back).
    EndDdl {
        txn: u64,
        undo_from: Option<u32>,
    },
    /// At start-up: settles every pending block, forgetting those in `committed` (their
    /// marker says they committed; filled in on shard 0) and undoing the rest.
    SettlePending {
        committed: Vec<u64>,
    },
}

impl DdlChange {
    /// Whether a transaction block's ROLLBACK undoes this change (the others are bookkeeping
    /// of a running statement, or cannot run in a block).
    pub(crate) fn is_transactional(&self) -> bool {
        !matches!(
            self,
            DdlChange::ReserveId
                | DdlChange::FreezeWrites { .. }
                | DdlChange::ThawWrites { .. }
                | DdlChange::SetStats { .. }
                | DdlChange::CreateDatabase { .. }
                | DdlChange::DropDatabase { .. }
                | DdlChange::EndDdl { .. }
                | DdlChange::SettlePending { .. }
        )
    }
}

/// The transaction block a DDL statement runs in, and its savepoint mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdlOwner {
    pub txn: u64,
    pub mark: u32,
}

/// A catalog change and the block it belongs to (None: outside a block, final at once).
#[derive(Clone, Debug)]
pub struct DdlRequest {
    pub change: DdlChange,
    pub owner: Option<DdlOwner>,
}

/// Relations dropped by name other than tables (whose rows must go too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelationKind {
    Index,
    View,
    Sequence,
}

impl RelationKind {
    fn noun(self) -> &'static str {
        match self {
            RelationKind::Index => "index",
            RelationKind::View => "view",
            RelationKind::Sequence => "sequence",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            RelationKind::Index => "an index",
            RelationKind::View => "a view",
            RelationKind::Sequence => "a sequence",
        }
    }
}

/// What applying a change did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DdlOutcome {
    /// Tables whose rows must now be deleted from every shard.
    pub dropped_tables: Vec<u32>,
    /// Indexes (table id, index id) whose entries and claims must now be deleted from every
    /// shard.
    pub dropped_indexes: Vec<(u32, u32)>,
    /// The id `ReserveId` took.
    pub reserved_id: Option<u32>,
    /// NOTICE messages for the client ("table "x" does not exist, skipping").
    pub notices: Vec<String>,
    /// The change was recorded as its owner block's pending DDL.
    pub owned: bool,
    /// DDL markers to write with the catalog: (transaction, true: put pending / false:
    /// delete).
    pub markers: Vec<(u64, bool)>,
}

/// The end of the message of [`held_by_another_block`]'s 55P03.
pub(crate) const HELD_BY_BLOCK: &str = "is being changed by another transaction's uncommitted DDL";

/// A relation an open transaction block's DDL changed: others wait for the block (as they
/// would for PostgreSQL's lock), then fail with this.
pub(crate) fn held_by_another_block(name: &str) -> SqlError {
    SqlError::new("55P03", format!("relation \"{name}\" {HELD_BY_BLOCK}"))
}

/// The message of a write refused because an ALTER TABLE froze its table or the table id is
/// gone (40001): a statement outside a transaction block waits for the thaw and runs again.
pub(crate) const WRITES_REFUSED_FOR_DDL: &str =
    "could not write: the relation was changed by ALTER TABLE or dropped; retry";

/// Which SQL keys are garbage: those of a table or index id the catalog handed out and no
/// longer names (dropped, or replaced by a rewrite). DROP TABLE, DROP INDEX and the switch of
/// a rewrite leave such keys in place instead of deleting them one by one; compaction drops
/// them (the shard's compaction filter asks [`LiveIds::is_dead_key`]). The default judges
/// nothing dead (a shard before it has the catalog).
#[derive(Debug, Default, Clone)]
pub struct LiveIds {
    next_id: u32,
    live: HashSet<u32>,
}

impl LiveIds {
    fn is_dead(&self, id: u32) -> bool {
        id < self.next_id && !self.live.contains(&id)
    }

    /// Whether every key of range `[lo, hi]` is dead: both ends name the same dropped table's
    /// rows or claims, or the same dropped index's entries (the id bytes, which follow the
    /// prefix byte, are then shared by every key between them).
    pub fn is_dead_range(&self, lo: &[u8], hi: &[u8]) -> bool {
        const ID_END: usize = 5;
        let (Some(lo_id), Some(hi_id)) = (lo.get(..ID_END), hi.get(..ID_END)) else {
            return false;
        };
        if lo_id != hi_id {
            return false;
        }
        let id = u32::from_be_bytes(lo_id[1..].try_into().expect("four id bytes"));
        matches!(
            lo_id[0],
            crate::rowcodec::ROW_PREFIX | crate::index::INDEX_PREFIX | crate::index::CLAIM_PREFIX
        ) && self.is_dead(id)
    }

    /// Whether `key` is a row, index entry or unique-index claim of a dead table or index.
    /// Other keys (catalog, transaction records, Redis) are never dead here.
    pub fn is_dead_key(&self, key: &[u8]) -> bool {
        let id_at = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(key.get(at..at + 4)?.try_into().ok()?))
        };
        match key.first() {
            Some(&crate::rowcodec::ROW_PREFIX) | Some(&crate::index::INDEX_PREFIX) => {
                id_at(1).is_some_and(|id| self.is_dead(id))
            }
            Some(&crate::index::CLAIM_PREFIX) => {
                id_at(1).is_some_and(|table| self.is_dead(table))
                    || id_at(5).is_some_and(|index| self.is_dead(index))
            }
            _ => false,
        }
    }
}

/// The table id of a row key (None: not a row key).
fn row_table_id(key: &[u8]) -> Option<u32> {
    if key.first() != Some(&crate::rowcodec::ROW_PREFIX) {
        return None;
    }
    key.get(1..5)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog::new()
    }
}

impl Catalog {
    /// A fresh server's catalog: database `postgres` with schema `public`.
    pub fn new() -> Catalog {
        let mut c = Catalog {
            version: 1,
            next_id: 1,
            databases: BTreeMap::new(),
            building: BTreeSet::new(),
            frozen: BTreeSet::new(),
            pending: BTreeMap::new(),
            live: std::sync::OnceLock::new(),
            held: std::sync::OnceLock::new(),
            views: ViewCache::default(),
        };
        c.add_database(DEFAULT_DATABASE);
        c
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).expect("catalog ids exhausted");
        id
    }

    fn add_database(&mut self, name: &str) {
        let id = self.take_id();
        let schema_id = self.take_id();
        let mut schemas = BTreeMap::new();
        schemas.insert(DEFAULT_SCHEMA.to_string(), Schema::new(schema_id));
        self.databases
            .insert(name.to_string(), Database { id, schemas });
    }

    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.get(name)
    }

    /// The schema a name means: its own when qualified, else the first schema on the search
    /// path that holds a relation or sequence of that name (None: nowhere).
    pub fn resolve_schema<'a>(
        &self,
        database: &str,
        schema: Option<&'a str>,
        path: &'a [String],
        name: &str,
    ) -> Option<&'a str> {
        if let Some(s) = schema {
            return Some(s);
        }
        let db = self.databases.get(database)?;
        path.iter().map(String::as_str).find(|s| {
            db.schemas.get(*s).is_some_and(|sc| {
                sc.tables.contains_key(name)
                    || sc.views.contains_key(name)
                    || sc.sequences.contains_key(name)
                    || sc.indexes.contains_key(name)
            })
        })
    }

    /// Where an unqualified CREATE puts its object: the first existing schema on the path.
    pub fn creation_schema(
        &self,
        database: &str,
        schema: Option<String>,
        path: &[String],
    ) -> Result<String, SqlError> {
        if let Some(s) = schema {
            return Ok(s);
        }
        let db = self.databases.get(database);
        path.iter()
            .find(|s| db.is_some_and(|d| d.schemas.contains_key(s.as_str())))
            .cloned()
            .ok_or_else(|| {
                SqlError::new(
                    INVALID_SCHEMA_NAME,
                    "no schema has been selected to create in",
                )
            })
    }

    /// Looks a table up by optional schema (default: `public`).
    pub fn table(&self, database: &str, schema: Option<&str>, name: &str) -> Option<&Arc<Table>> {
        self.databases
            .get(database)?
            .schemas
            .get(schema.unwrap_or(DEFAULT_SCHEMA))?
            .tables
            .get(name)
    }

    /// Applies `change`, producing the next catalog version.
    /// Applies a change made outside any transaction block.
    pub fn apply(&mut self, change: DdlChange) -> Result<DdlOutcome, SqlError> {
        self.apply_owned(change, None)
    }

    /// Applies a change; one made in a block (`owner`) is recorded so that the block's
    /// ROLLBACK can undo it ([`crate::ddl_undo`]). A change to an entry another open block
    /// changed is refused (55P03): undoing that block would undo it too.
    pub fn apply_owned(
        &mut self,
        change: DdlChange,
        owner: Option<DdlOwner>,
    ) -> Result<DdlOutcome, SqlError> {
        self.held = std::sync::OnceLock::new();
        match change {
            DdlChange::EndDdl { txn, undo_from } => return Ok(self.end_ddl(txn, undo_from)),
            DdlChange::SettlePending { committed } => {
                let mut outcome = DdlOutcome::default();
                let txns: Vec<u64> = self.pending.keys().copied().collect();
                for txn in txns {
                    let undo_from = (!committed.contains(&txn)).then_some(0);
                    outcome.markers.extend(self.end_ddl(txn, undo_from).markers);
                }
                return Ok(outcome);
            }
            _ => {}
        }
        let mine = owner.map(|o| o.txn);
        self.refuse_held_by_others(&change, mine)?;
        let owner = owner.filter(|_| change.is_transactional());
        let tracked = change.is_transactional() && (owner.is_some() || !self.pending.is_empty());
        let before = tracked.then(|| self.clone());
        let others_pending = self.pending.keys().any(|&txn| Some(txn) != mine);
        let retry = others_pending.then(|| change.clone());
        let mut outcome = match self.apply_plain(change) {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some(change) = retry {
                    self.refuse_if_held_name_decides(change, mine)?;
                }
                return Err(e);
            }
        };
        let Some(before) = before else {
            return Ok(outcome);
        };
        let entries = crate::ddl_undo::diff(&before, self);
        if let (true, Some(change)) = (entries.is_empty(), retry) {
            // IF [NOT] EXISTS finding the name another block made or dropped.
            self.refuse_if_held_name_decides(change, mine)?;
        }
        let tables = crate::ddl_undo::affected_tables(&before, self, &entries);
        self.refuse_entries_held_by_others(&entries, mine)?;
        for (txn, pending) in &self.pending {
            if Some(*txn) == mine {
                continue;
            }
            if let Some(id) = pending.held_tables().find(|id| tables.contains(id)) {
                return Err(held_by_another_block(&before.table_name(id)));
            }
        }
        if let (Some(owner), false) = (owner, entries.is_empty()) {
            let pending = self.pending.entry(owner.txn).or_default();
            if pending.steps.is_empty() {
                outcome.markers.push((owner.txn, true));
            }
            pending.steps.push(UndoStep {
                mark: owner.mark,
                entries,
                tables,
            });
            outcome.owned = true;
            self.live = std::sync::OnceLock::new();
        }
        Ok(outcome)
    }

    /// A change that failed or did nothing (CREATE of a name that exists, DROP of one that
    /// does not, with or without IF [NOT] EXISTS) but would have worked on the catalog as the connection sees it, without other blocks'
    /// uncommitted DDL, changing an entry one of them changed: refused with 55P03 instead,
    /// so the statement waits for that block and runs again, as PostgreSQL's would wait for
    /// the block's lock before it knows whether the name is taken.
    fn refuse_if_held_name_decides(
        &self,
        change: DdlChange,
        mine: Option<u64>,
    ) -> Result<(), SqlError> {
        let seen = self.without_ddl_of(|txn| Some(txn) != mine);
        let mut changed = seen.clone();
        if changed.apply_plain(change).is_err() {
            return Ok(());
        }
        let entries = crate::ddl_undo::diff(&seen, &changed);
        self.refuse_entries_held_by_others(&entries, mine)
    }

    /// Refuses (55P03) changing an entry another open block's DDL changed: undoing that
    /// block would undo this change too.
    fn refuse_entries_held_by_others(
        &self,
        entries: &[(EntryKey, crate::ddl_undo::Before)],
        mine: Option<u64>,
    ) -> Result<(), SqlError> {
        let others = self.pending.iter().filter(|(txn, _)| Some(**txn) != mine);
        for (_, pending) in others {
            let held_keys = pending.steps.iter().flat_map(|s| s.entries.iter());
            for (key, _) in held_keys {
                if let Some((k, _)) = entries
                    .iter()
                    .find(|(k, _)| crate::ddl_undo::overlaps(k, key))
                {
                    return Err(held_by_another_block(crate::ddl_undo::entry_name(k)));
                }
            }
        }
        Ok(())
    }

    /// Refuses (55P03) a change that freezes a table another block holds, or drops a
    /// database another block's pending DDL is in.
    fn refuse_held_by_others(&self, change: &DdlChange, mine: Option<u64>) -> Result<(), SqlError> {
        match change {
            DdlChange::FreezeWrites { table_id } => match self.held_tables().get(table_id) {
                Some(&owner) if Some(owner) != mine => {
                    Err(held_by_another_block(&self.table_name(*table_id)))
                }
                _ => Ok(()),
            },
            DdlChange::DropDatabase { name, .. } => {
                let in_it = self.pending.values().flat_map(|p| &p.steps).any(|s| {
                    s.entries.iter().any(|(k, _)| match k {
                        EntryKey::Schema { database, .. } | EntryKey::Relation { database, .. } => {
                            database == name
                        }
                    })
                });
                if in_it {
                    return Err(SqlError::new(
                        "55006",
                        format!("database \"{name}\" is being changed by another transaction's uncommitted DDL"),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A table's name by id, for messages (its id when the catalog no longer names it).
    pub(crate) fn table_name(&self, id: u32) -> String {
        self.databases
            .values()
            .flat_map(|d| d.schemas.values())
            .flat_map(|s| s.tables.values())
            .find(|t| t.id == id)
            .map_or_else(|| id.to_string(), |t| t.name.clone())
    }

    /// Ends (or rolls back to a savepoint) block `txn`'s pending DDL; see
    /// [`DdlChange::EndDdl`].
    fn end_ddl(&mut self, txn: u64, undo_from: Option<u32>) -> DdlOutcome {
        let mut outcome = DdlOutcome::default();
        let Some(mut pending) = self.pending.remove(&txn) else {
            // Its steps were all undone by a ROLLBACK TO; a commit may still have written
            // its marker.
            outcome.markers.push((txn, false));
            return outcome;
        };
        if let Some(mark) = undo_from {
            while pending.steps.last().is_some_and(|s| s.mark >= mark) {
                let step = pending.steps.pop().expect("checked");
                crate::ddl_undo::undo_step(self, &step);
            }
        } else {
            pending.steps.clear();
        }
        if pending.steps.is_empty() {
            outcome.markers.push((txn, false));
        } else {
            self.pending.insert(txn, pending);
        }
        self.live = std::sync::OnceLock::new();
        self.version += 1;
        outcome
    }

    /// Tables an open block's DDL changed, with that block: other transactions may not
    /// write them until it ends.
    pub fn held_tables(&self) -> &HashMap<u32, u64> {
        self.held.get_or_init(|| {
            let mut held = HashMap::new();
            for (&txn, pending) in &self.pending {
                held.extend(pending.held_tables().map(|id| (id, txn)));
            }
            held
        })
    }

    /// The catalog as a connection sees it: other open blocks' uncommitted DDL is not there
    /// (their before-images are), as PostgreSQL's catalog rows are MVCC-visible only once
    /// committed. `block` is the connection's transaction block, whose own DDL it sees.
    ///
    /// The view keeps the open blocks' pending steps, so a relation they changed is still
    /// held (a statement on it waits for the block), and its ids, live and held tables are
    /// the whole catalog's: nothing judged from the view lets another block's rows go.
    pub fn view_for(this: &Arc<Catalog>, block: Option<u64>) -> Arc<Catalog> {
        if this.pending.keys().all(|&txn| Some(txn) == block) {
            return this.clone();
        }
        let kept = block.filter(|b| this.pending.contains_key(b));
        // A poisoned lock only means another thread panicked mid-insert: the list is
        // still a list of finished views.
        let mut views = this.views.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, view)) = views.iter().find(|(k, _)| *k == kept) {
            return view.clone();
        }
        let view = Arc::new(this.without_ddl_of(|txn| Some(txn) != kept));
        views.push((kept, view.clone()));
        view
    }

    /// This catalog with the pending DDL of the blocks `undo` picks undone.
    fn without_ddl_of(&self, undo: impl Fn(u64) -> bool) -> Catalog {
        let mut view = self.clone();
        for (&txn, pending) in &self.pending {
            if !undo(txn) {
                continue;
            }
            for step in pending.steps.iter().rev() {
                crate::ddl_undo::undo_step(&mut view, step);
            }
        }
        view.live = std::sync::OnceLock::from(self.live_ids().clone());
        view.held = std::sync::OnceLock::from(self.held_tables().clone());
        view
    }

    /// This catalog with no relation held (for describing a statement, which reads nothing).
    pub(crate) fn without_holds(&self) -> Catalog {
        let mut c = self.clone();
        c.pending.clear();
        c.held = std::sync::OnceLock::new();
        c.live = std::sync::OnceLock::new();
        c
    }

    /// 55P03 for `name`, which an open block's DDL changed. A statement that reads or writes
    /// the relation waits for the block before it fails with it
    /// (`lib::execute_statement`).
    pub(crate) fn refuse_held(&self, table: &Table, block: Option<u64>) -> Result<(), SqlError> {
        match self.held_tables().get(&table.id) {
            Some(&owner) if Some(owner) != block => Err(held_by_another_block(&table.name)),
            _ => Ok(()),
        }
    }

    fn apply_plain(&mut self, change: DdlChange) -> Result<DdlOutcome, SqlError> {
        self.live = std::sync::OnceLock::new();
        let mut outcome = DdlOutcome::default();
        match change {
            DdlChange::EndDdl { .. } | DdlChange::SettlePending { .. } => {
                unreachable!("handled by apply_owned")
            }
            DdlChange::CreateTable {
                database,
                mut table,
                if_not_exists,
                sequences,
            } => {
                let next_id = self.next_id;
                let db = self.database_mut(&database)?;
                let table_count: usize = db.schemas.values().map(|s| s.tables.len()).sum();
                let schema = db.schemas.get_mut(&table.schema).ok_or_else(|| {
                    SqlError::new(
                        INVALID_SCHEMA_NAME,
                        format!("schema \"{}\" does not exist", table.schema),
                    )
                })?;
                if schema.has_relation(&table.name) {
                    if if_not_exists {
                        outcome.notices.push(format!(
                            "relation \"{}\" already exists, skipping",
                            table.name
                        ));
                        return Ok(outcome);
                    }
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", table.name),
                    ));
                }
                if table_count >= TABLES_PER_DATABASE_MAX {
                    return Err(SqlError::new(
                        PROGRAM_LIMIT_EXCEEDED,
                        format!("a database holds at most {TABLES_PER_DATABASE_MAX} tables"),
                    ));
                }
                if let Some(taken) = sequences.iter().find(|s| schema.has_relation(&s.name)) {
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", taken.name),
                    ));
                }
                let schema_name = table.schema.clone();
                table.id = next_id;
                schema.tables.insert(table.name.clone(), Arc::new(table));
                self.take_id();
                for mut sequence in sequences {
                    sequence.id = self.take_id();
                    self.schema_mut(&database, &schema_name)?
                        .sequences
                        .insert(sequence.name.clone(), sequence);
                }
            }
            DdlChange::CreateSequence {
                database,
                schema,
                mut sequence,
                if_not_exists,
            } => {
                check_identifier(&sequence.name)?;
                let id = self.next_id;
                let schema = self.schema_mut(&database, &schema)?;
                if schema.has_relation(&sequence.name) {
                    if if_not_exists {
                        outcome.notices.push(format!(
                            "relation \"{}\" already exists, skipping",
                            sequence.name
                        ));
                        return Ok(outcome);
                    }
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", sequence.name),
                    ));
                }
                sequence.id = id;
                schema.sequences.insert(sequence.name.clone(), sequence);
                self.take_id();
            }
            DdlChange::DropTables {
                database,
                tables,
                if_exists,
            } => {
                let db = self.database_mut(&database)?;
                // All named tables must exist (unless IF EXISTS) before any is dropped.
                let mut found = Vec::new();
                for (schema, name) in &tables {
                    match db.schemas.get(schema).and_then(|s| s.tables.get(name)) {
                        Some(t) => found.push((schema.clone(), name.clone(), t.id)),
                        None if if_exists => outcome
                            .notices
                            .push(format!("table \"{name}\" does not exist, skipping")),
                        None => {
                            return Err(SqlError::new(
                                UNDEFINED_TABLE,
                                format!("table \"{name}\" does not exist"),
                            ))
                        }
                    }
                }
                let gone: Vec<(String, String)> = found
                    .iter()
                    .map(|(s, n, _)| (s.clone(), n.clone()))
                    .collect();
                db.forget_foreign_keys_to(&gone);
                for (schema, name, id) in found {
                    if let Some(s) = db.schemas.get_mut(&schema) {
                        if s.tables.remove(&name).is_some() {
                            outcome.dropped_tables.push(id);
                            // A table's indexes and serial sequences go with it.
                            s.indexes.retain(|_, index| {
                                let dropped = index.table == name;
                                if dropped {
                                    outcome.dropped_indexes.push((id, index.id));
                                }
                                !dropped
                            });
                            s.sequences
                                .retain(|_, seq| seq.owned_by.as_deref() != Some(name.as_str()));
                        }
                    }
                }
            }
            DdlChange::CreateIndex {
                database,
                schema,
                mut index,
                if_not_exists,
            } => {
                check_identifier(&index.name)?;
                let id = self.next_id;
                let schema = self.schema_mut(&database, &schema)?;
                if schema.has_relation(&index.name) {
                    if if_not_exists {
                        outcome.notices.push(format!(
                            "relation \"{}\" already exists, skipping",
                            index.name
                        ));
                        return Ok(outcome);
                    }
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", index.name),
                    ));
                }
                if !schema.tables.contains_key(&index.table) {
                    return Err(SqlError::new(
                        UNDEFINED_TABLE,
                        format!("relation \"{}\" does not exist", index.table),
                    ));
                }
                index.id = id;
                schema.indexes.insert(index.name.clone(), index);
                self.take_id();
            }
            DdlChange::CreateView {
                database,
                schema,
                mut view,
                or_replace,
            } => {
                check_identifier(&view.name)?;
                let id = self.next_id;
                let schema = self.schema_mut(&database, &schema)?;
                let replacing = or_replace && schema.views.contains_key(&view.name);
                if !replacing && schema.has_relation(&view.name) {
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", view.name),
                    ));
                }
                view.id = match schema.views.get(&view.name) {
                    Some(old) if replacing => old.id,
                    _ => id,
                };
                schema.views.insert(view.name.clone(), view);
                if !replacing {
                    self.take_id();
                }
            }
            DdlChange::DropRelations {
                database,
                kind,
                names,
                if_exists,
            } => {
                let db = self.database_mut(&database)?;
                // All must exist (unless IF EXISTS) before any is dropped.
                let mut found = Vec::new();
                for (schema, name) in &names {
                    let s = db.schemas.get(schema);
                    let exists = s.is_some_and(|s| match kind {
                        RelationKind::Index => s.indexes.contains_key(name),
                        RelationKind::View => s.views.contains_key(name),
                        RelationKind::Sequence => s.sequences.contains_key(name),
                    });
                    if exists {
                        found.push((schema.clone(), name.clone()));
                        continue;
                    }
                    let what = kind.noun();
                    if s.is_some_and(|s| s.has_relation(name)) {
                        return Err(SqlError::new(
                            WRONG_OBJECT_TYPE,
                            format!("\"{name}\" is not {}", kind.with_article()),
                        ));
                    }
                    if if_exists {
                        outcome
                            .notices
                            .push(format!("{what} \"{name}\" does not exist, skipping"));
                        continue;
                    }
                    return Err(SqlError::new(
                        UNDEFINED_OBJECT,
                        format!("{what} \"{name}\" does not exist"),
                    ));
                }
                for (schema, name) in found {
                    if let Some(s) = db.schemas.get_mut(&schema) {
                        match kind {
                            RelationKind::Index => s.indexes.remove(&name).map(|index| {
                                if let Some(table) = s.tables.get(&index.table) {
                                    outcome.dropped_indexes.push((table.id, index.id));
                                }
                            }),
                            RelationKind::View => s.views.remove(&name).map(|_| ()),
                            RelationKind::Sequence => s.sequences.remove(&name).map(|_| ()),
                        };
                    }
                }
                if kind == RelationKind::Index {
                    db.forget_unbacked_foreign_keys();
                }
            }
            DdlChange::CreateDatabase { name } => {
                check_identifier(&name)?;
                if self.databases.contains_key(&name) {
                    return Err(SqlError::new(
                        DUPLICATE_DATABASE,
                        format!("database \"{name}\" already exists"),
                    ));
                }
                if self.databases.len() >= DATABASES_MAX {
                    return Err(SqlError::new(
                        PROGRAM_LIMIT_EXCEEDED,
                        format!("a server holds at most {DATABASES_MAX} databases"),
                    ));
                }
                self.add_database(&name);
            }
            DdlChange::DropDatabase { name, if_exists } => match self.databases.remove(&name) {
                Some(db) => {
                    for schema in db.schemas.values() {
                        outcome
                            .dropped_tables
                            .extend(schema.tables.values().map(|t| t.id));
                    }
                }
                None if if_exists => outcome
                    .notices
                    .push(format!("database \"{name}\" does not exist, skipping")),
                None => {
                    return Err(SqlError::new(
                        UNDEFINED_DATABASE,
                        format!("database \"{name}\" does not exist"),
                    ))
                }
            },
            DdlChange::CreateSchema {
                database,
                name,
                if_not_exists,
            } => {
                check_identifier(&name)?;
                let id = self.next_id;
                let db = self.database_mut(&database)?;
                if db.schemas.contains_key(&name) {
                    if if_not_exists {
                        outcome
                            .notices
                            .push(format!("schema \"{name}\" already exists, skipping"));
                        return Ok(outcome);
                    }
                    return Err(SqlError::new(
                        DUPLICATE_SCHEMA,
                        format!("schema \"{name}\" already exists"),
                    ));
                }
                db.schemas.insert(name, Schema::new(id));
                self.take_id();
            }
            DdlChange::DropSchema {
                database,
                names,
                if_exists,
                cascade,
            } => {
                let db = self.database_mut(&database)?;
                for name in &names {
                    match db.schemas.get(name) {
                        None if if_exists => outcome
                            .notices
                            .push(format!("schema \"{name}\" does not exist, skipping")),
                        None => {
                            return Err(SqlError::new(
                                UNDEFINED_SCHEMA,
                                format!("schema \"{name}\" does not exist"),
                            ))
                        }
                        Some(s) if (!s.tables.is_empty() || !s.views.is_empty()) && !cascade => {
                            return Err(SqlError::new(
                                DEPENDENT_OBJECTS_STILL_EXIST,
                                format!(
                                    "cannot drop schema {name} because other objects depend on it"
                                ),
                            ))
                        }
                        Some(_) => {}
                    }
                }
                let gone: Vec<(String, String)> = names
                    .iter()
                    .filter_map(|n| db.schemas.get(n).map(|s| (n, s)))
                    .flat_map(|(n, s)| s.tables.keys().map(move |t| (n.clone(), t.clone())))
                    .collect();
                db.forget_foreign_keys_to(&gone);
                for name in &names {
                    if let Some(s) = db.schemas.remove(name) {
                        outcome
                            .dropped_tables
                            .extend(s.tables.values().map(|t| t.id));
                    }
                }
            }
            DdlChange::FreezeWrites { table_id } => {
                if !self.named_ids().contains(&table_id) {
                    return Err(SqlError::new(
                        "40001",
                        "the relation was changed by another statement during ALTER TABLE; retry",
                    ));
                }
                if !self.frozen.insert(table_id) {
                    return Err(SqlError::new(
                        "40001",
                        "the relation is being altered by another statement; retry",
                    ));
                }
            }
            DdlChange::ThawWrites { table_id } => {
                self.frozen.remove(&table_id);
            }
            DdlChange::ReserveId => {
                let id = self.take_id();
                self.building.insert(id);
                outcome.reserved_id = Some(id);
            }
            DdlChange::SetStats {
                database,
                schema,
                name,
                id,
                stats,
            } => {
                let schema = self.schema_mut(&database, &schema)?;
                // A table dropped or rewritten meanwhile keeps what it has.
                if let Some(table) = schema.tables.get_mut(&name).filter(|t| t.id == id) {
                    Arc::make_mut(table).stats = Some(stats);
                }
            }
            DdlChange::RenameIndex {
                database,
                schema,
                old_name,
                new_name,
            } => {
                check_identifier(&new_name)?;
                let schema = self.schema_mut(&database, &schema)?;
                let pkey_of = schema
                    .tables
                    .iter()
                    .find(|(_, t)| !t.primary_key.is_empty() && t.pkey_name() == old_name)
                    .map(|(name, _)| name.clone());
                let exists = pkey_of.is_some() || schema.indexes.contains_key(&old_name);
                if !exists {
                    let (code, message) = match schema.has_relation(&old_name) {
                        true => (WRONG_OBJECT_TYPE, format!("\"{old_name}\" is not an index")),
                        false => (
                            UNDEFINED_TABLE,
                            format!("relation \"{old_name}\" does not exist"),
                        ),
                    };
                    return Err(SqlError::new(code, message));
                }
                if schema.has_relation(&new_name)
                    || schema
                        .tables
                        .values()
                        .any(|t| !t.primary_key.is_empty() && t.pkey_name() == new_name)
                {
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{new_name}\" already exists"),
                    ));
                }
                match pkey_of {
                    Some(table) => {
                        let t = schema.tables.get_mut(&table).expect("found above");
                        Arc::make_mut(t).pkey_constraint = Some(new_name);
                    }
                    None => {
                        let mut index = schema.indexes.remove(&old_name).expect("found above");
                        index.name = new_name.clone();
                        schema.indexes.insert(new_name, index);
                    }
                }
            }
            DdlChange::RenewSequence {
                database,
                schema,
                name,
            } => {
                let id = self.take_id();
                let sequence = self
                    .schema_mut(&database, &schema)?
                    .sequences
                    .get_mut(&name)
                    .ok_or_else(|| {
                        SqlError::new(
                            UNDEFINED_TABLE,
                            format!("relation \"{name}\" does not exist"),
                        )
                    })?;
                sequence.id = id;
            }
            DdlChange::AlterTable {
                database,
                schema,
                old_name,
                old_id,
                table,
                index_columns,
                index_ids,
                column_renames,
            } => {
                check_identifier(&table.name)?;
                let schema_name = schema;
                let schema = self.schema_mut(&database, &schema_name)?;
                let before = match schema.tables.get(&old_name) {
                    Some(t) if t.id == old_id => t.clone(),
                    _ => {
                        return Err(SqlError::new(
                            "40001",
                            format!("relation \"{old_name}\" was changed by another statement during ALTER TABLE; retry"),
                        ))
                    }
                };
                if table.name != old_name && schema.has_relation(&table.name) {
                    return Err(SqlError::new(
                        DUPLICATE_TABLE,
                        format!("relation \"{}\" already exists", table.name),
                    ));
                }
                schema.tables.remove(&old_name);
                for (index, columns) in index_columns {
                    match columns {
                        Some(columns) => {
                            if let Some(def) = schema.indexes.get_mut(&index) {
                                def.columns = columns;
                                def.table = table.name.clone();
                                if let Some(p) = &mut def.predicate {
                                    *p = crate::alter::predicate_after(p, &column_renames);
                                }
                                for name in &mut def.include {
                                    *name = crate::alter::column_name_after(name, &column_renames);
                                }
                            }
                        }
                        None => {
                            if let Some(def) = schema.indexes.remove(&index) {
                                outcome.dropped_indexes.push((old_id, def.id));
                            }
                        }
                    }
                }
                for (index, id) in index_ids {
                    if let Some(def) = schema.indexes.get_mut(&index) {
                        outcome.dropped_indexes.push((old_id, def.id));
                        def.id = id;
                    }
                }
                for seq in schema.sequences.values_mut() {
                    if seq.owned_by.as_deref() == Some(old_name.as_str()) {
                        seq.owned_by = Some(table.name.clone());
                    }
                }
                if table.id != old_id {
                    outcome.dropped_tables.push(old_id);
                }
                schema
                    .tables
                    .insert(table.name.clone(), Arc::new(table.clone()));
                let db = self.database_mut(&database)?;
                db.follow_renames(&schema_name, &before, &table);
                db.forget_unbacked_foreign_keys();
                // The ALTER that froze the table's writes is done with its rows.
                self.frozen.remove(&old_id);
            }
        }
        // A reserved id the catalog now names is built.
        let named = self.named_ids();
        self.building.retain(|id| !named.contains(id));
        self.frozen.retain(|id| named.contains(id));
        self.version += 1;
        Ok(outcome)
    }

    /// Every id the catalog names: databases, schemas and their relations.
    fn named_ids(&self) -> HashSet<u32> {
        let mut ids = HashSet::new();
        for db in self.databases.values() {
            ids.insert(db.id);
            for schema in db.schemas.values() {
                ids.insert(schema.id);
                ids.extend(schema.tables.values().map(|t| t.id));
                ids.extend(schema.indexes.values().map(|i| i.id));
                ids.extend(schema.views.values().map(|v| v.id));
                ids.extend(schema.sequences.values().map(|q| q.id));
            }
        }
        ids
    }

    /// The ids whose keys are live, for the compaction filter and the write check.
    pub fn live_ids(&self) -> &LiveIds {
        self.live.get_or_init(|| {
            let mut live = self.named_ids();
            live.extend(self.building.iter().copied());
            // A pending drop or rewrite's old ids are live until the block commits.
            for pending in self.pending.values() {
                live.extend(pending.retained_ids());
            }
            LiveIds {
                next_id: self.next_id,
                live,
            }
        })
    }

    /// Forgets what running ALTER TABLEs held (at start-up: none is still running): their
    /// reserved ids, so that what they wrote is garbage, and their tables' write freezes.
    pub fn forget_builds(&mut self) {
        self.building.clear();
        self.frozen.clear();
        self.live = std::sync::OnceLock::new();
    }

    /// Refuses a write fragment that changes rows of a table an ALTER TABLE has frozen, or
    /// of a table id that is gone (the ALTER switched the table to a new id, or it was
    /// dropped) — a statement planned before the change reached this shard: 40001, so the
    /// client retries with the new catalog instead of writing where no one reads.
    /// The frozen tables `ops` write rows of.
    pub fn frozen_in(&self, ops: &[crate::cluster::RowOp]) -> Vec<u32> {
        let mut ids: Vec<u32> = ops
            .iter()
            .filter_map(|op| row_table_id(op.key()))
            .filter(|id| self.frozen.contains(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Refuses (40001) `ops` that write rows of a frozen table, except tables in `exempt`
    /// (those the writing transaction already holds rows of here: the ALTER waits for it,
    /// as PostgreSQL's ALTER waits for a writer holding the table's lock), or of a dead id.
    /// Tables another open block's DDL changed are refused the same way (`writer`: the
    /// writing transaction).
    pub fn refuse_frozen_writes(
        &self,
        ops: &[crate::cluster::RowOp],
        exempt: &[u32],
        writer: Option<u64>,
    ) -> Result<(), SqlError> {
        let live = self.live_ids();
        let held = self.held_tables();
        // A fragment's rows are nearly always one table's: judge each id once.
        let mut last_allowed: Option<u32> = None;
        for op in ops {
            let Some(id) = row_table_id(op.key()) else {
                continue;
            };
            if last_allowed == Some(id) {
                continue;
            }
            let held_by_other = held.get(&id).is_some_and(|&owner| Some(owner) != writer);
            if (self.frozen.contains(&id) && !exempt.contains(&id))
                || held_by_other
                || live.is_dead(id)
            {
                return Err(SqlError::new("40001", WRITES_REFUSED_FOR_DDL));
            }
            last_allowed = Some(id);
        }
        Ok(())
    }

    /// Whether writes to table `id` wait for an ALTER TABLE.
    pub fn is_frozen(&self, id: u32) -> bool {
        self.frozen.contains(&id)
    }

    fn schema_mut(&mut self, database: &str, schema: &str) -> Result<&mut Schema, SqlError> {
        self.database_mut(database)?
            .schemas
            .get_mut(schema)
            .ok_or_else(|| {
                SqlError::new(
                    INVALID_SCHEMA_NAME,
                    format!("schema \"{schema}\" does not exist"),
                )
            })
    }

    /// Looks a sequence up by optional schema (default: `public`).
    pub fn sequence(
        &self,
        database: &str,
        schema: Option<&str>,
        name: &str,
    ) -> Option<&SequenceDef> {
        self.databases
            .get(database)?
            .schemas
            .get(schema.unwrap_or(DEFAULT_SCHEMA))?
            .sequences
            .get(name)
    }

    /// A sequence by id, in any database.
    pub fn sequence_by_id(&self, id: u32) -> Option<&SequenceDef> {
        self.databases
            .values()
            .flat_map(|d| d.schemas.values())
            .flat_map(|s| s.sequences.values())
            .find(|s| s.id == id)
    }

    /// Looks a view up by optional schema (default: `public`).
    pub fn view(&self, database: &str, schema: Option<&str>, name: &str) -> Option<&ViewDef> {
        self.databases
            .get(database)?
            .schemas
            .get(schema.unwrap_or(DEFAULT_SCHEMA))?
            .views
            .get(name)
    }

    fn database_mut(&mut self, name: &str) -> Result<&mut Database, SqlError> {
        self.databases.get_mut(name).ok_or_else(|| {
            SqlError::new(
                UNDEFINED_DATABASE,
                format!("database \"{name}\" does not exist"),
            )
        })
    }

    /// The persisted form (JSON: the catalog is small and changes rarely; readable in `helios
    /// inspect`).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a catalog always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Catalog, String> {
        let mut catalog: Catalog =
            serde_json::from_slice(bytes).map_err(|e| format!("catalog does not decode: {e}"))?;
        catalog.quote_legacy_serial_defaults();
        Ok(catalog)
    }

    /// Serial defaults written before sequence names were quoted in them read
    /// `nextval('Users_id_seq')`, which resolves to `users_id_seq`; they become
    /// `nextval('"Users_id_seq"')`. Names that need no quotes are unchanged.
    fn quote_legacy_serial_defaults(&mut self) {
        for schema in self
            .databases
            .values_mut()
            .flat_map(|d| d.schemas.values_mut())
        {
            let Schema {
                tables, sequences, ..
            } = schema;
            for sequence in sequences.values() {
                let Some(owner) = sequence.owned_by.as_ref() else {
                    continue;
                };
                let legacy = format!("nextval('{}')", sequence.name);
                let quoted = crate::stmt::serial_default(&sequence.name);
                let Some(table) = tables.get_mut(owner).filter(|_| legacy != quoted) else {
                    continue;
                };
                let table = Arc::make_mut(table);
                for column in &mut table.columns {
                    if column.default.as_deref() == Some(legacy.as_str()) {
                        column.default = Some(quoted.clone());
                    }
                }
            }
        }
    }
}

fn check_identifier(name: &str) -> Result<(), SqlError> {
    if name.is_empty() || name.len() > IDENTIFIER_BYTES_MAX {
        return Err(SqlError::new(
            INVALID_NAME,
            format!("invalid name \"{name}\": 1 to {IDENTIFIER_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// A catalog written before UNIQUE constraints were marked reads back with plain
    /// indexes; a marked one keeps its mark.
    #[test]
    fn index_constraint_marks_round_trip_and_default_to_none() {
        let old = r#"{"id":3,"name":"t_a","table":"t","columns":[0],"unique":true}"#;
        let def: IndexDef = serde_json::from_str(old).unwrap();
        assert!(!def.constraint);
        let marked = IndexDef {
            constraint: true,
            ..def
        };
        let back: IndexDef = serde_json::from_slice(&serde_json::to_vec(&marked).unwrap()).unwrap();
        assert_eq!(back, marked);
    }

    use super::*;

    fn table(name: &str) -> Table {
        Table {
            id: 0,
            name: name.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
            columns: vec![ColumnDef {
                name: "a".to_string(),
                ty: SqlType::Int4,
                typmod: -1,
                not_null: false,
                default: None,
                identity: false,
                identity_always: false,
            }],
            primary_key: vec![],
            pkey_constraint: None,
            checks: vec![],
            foreign_keys: vec![],
            stats: None,
        }
    }

    /// A catalog written before serial defaults quoted their sequence reads back with the
    /// quoted form where the name needs it (a table named with capitals could not INSERT).
    #[test]
    fn legacy_serial_defaults_are_quoted_on_load() {
        let mut c = Catalog::new();
        for name in ["Users", "plain"] {
            let mut t = table(name);
            let sequence = format!("{name}_a_seq");
            t.columns[0].default = Some(format!("nextval('{sequence}')"));
            c.apply(DdlChange::CreateTable {
                database: "postgres".into(),
                table: t,
                if_not_exists: false,
                sequences: vec![SequenceDef {
                    id: 0,
                    name: sequence,
                    increment: 1,
                    min: 1,
                    max: i64::from(i32::MAX),
                    start: 1,
                    cycle: false,
                    owned_by: Some(name.to_string()),
                    data_type: None,
                    cache: 1,
                }],
            })
            .unwrap();
        }
        let loaded = Catalog::decode(&c.encode()).unwrap();
        let default = |name: &str| {
            loaded.table("postgres", None, name).unwrap().columns[0]
                .default
                .clone()
        };
        assert_eq!(
            default("Users").as_deref(),
            Some("nextval('\"Users_a_seq\"')")
        );
        assert_eq!(default("plain").as_deref(), Some("nextval('plain_a_seq')"));
    }

    #[test]
    fn ids_are_never_reused_and_drops_are_all_or_nothing() {
        let mut c = Catalog::new();
        let create = |t: &str| DdlChange::CreateTable {
            database: "postgres".into(),
            table: table(t),
            if_not_exists: false,
            sequences: Vec::new(),
        };
        c.apply(create("t1")).unwrap();
        let id1 = c.table("postgres", None, "t1").unwrap().id;
        let err = c
            .apply(DdlChange::DropTables {
                database: "postgres".into(),
                tables: vec![
                    ("public".into(), "t1".into()),
                    ("public".into(), "nope".into()),
                ],
                if_exists: false,
            })
            .unwrap_err();
        assert_eq!(err.sqlstate, UNDEFINED_TABLE);
        assert!(c.table("postgres", None, "t1").is_some());
        let out = c
            .apply(DdlChange::DropTables {
                database: "postgres".into(),
                tables: vec![("public".into(), "t1".into())],
                if_exists: false,
            })
            .unwrap();
        assert_eq!(out.dropped_tables, vec![id1]);
        c.apply(create("t1")).unwrap();
        assert!(c.table("postgres", None, "t1").unwrap().id > id1);
        assert_eq!(c.apply(create("t1")).unwrap_err().sqlstate, DUPLICATE_TABLE);
        let round = Catalog::decode(&c.encode()).unwrap();
        assert_eq!(round.version, c.version);
        assert_eq!(
            round.table("postgres", None, "t1"),
            c.table("postgres", None, "t1")
        );
    }

    #[test]
    fn connections_see_no_other_blocks_uncommitted_ddl() {
        let create = |t: &str, if_not_exists| DdlChange::CreateTable {
            database: "postgres".into(),
            table: table(t),
            if_not_exists,
            sequences: Vec::new(),
        };
        let drop = |t: &str| DdlChange::DropTables {
            database: "postgres".into(),
            tables: vec![("public".into(), t.into())],
            if_exists: false,
        };
        let owner = |txn| Some(DdlOwner { txn, mark: 0 });
        let mut c = Catalog::new();
        c.apply(create("kept", false)).unwrap();
        c.apply_owned(create("mine", false), owner(1)).unwrap();
        c.apply_owned(drop("kept"), owner(1)).unwrap();
        let c = Arc::new(c);
        let has = |c: &Catalog, t: &str| c.table("postgres", None, t).is_some();
        // Block 1 sees its own DDL; everyone else sees the catalog as it was.
        assert!(Arc::ptr_eq(&Catalog::view_for(&c, Some(1)), &c));
        let others = Catalog::view_for(&c, None);
        assert!(!has(&others, "mine") && has(&others, "kept"));
        assert!(Arc::ptr_eq(&others, &Catalog::view_for(&c, Some(7))));
        // The view still holds what block 1 changed, and keeps its ids live.
        assert_eq!(others.held_tables(), c.held_tables());
        let mine = c.table("postgres", None, "mine").unwrap().id;
        assert!(!others
            .live_ids()
            .is_dead_key(&crate::rowcodec::row_key(mine, b"k")));
        // Block 2's DDL is hidden from block 1 and the other way round.
        let mut c = (*c).clone();
        c.apply_owned(create("theirs", false), owner(2)).unwrap();
        let c = Arc::new(c);
        let one = Catalog::view_for(&c, Some(1));
        assert!(has(&one, "mine") && !has(&one, "theirs") && !has(&one, "kept"));
        assert!(Arc::ptr_eq(&one, &Catalog::view_for(&c, Some(1))), "cached");
        let two = Catalog::view_for(&c, Some(2));
        assert!(!has(&two, "mine") && has(&two, "theirs") && has(&two, "kept"));
        // Whether another block's name is free waits on that block (55P03), with or
        // without IF NOT EXISTS; a name taken for everyone is 42P07 at once.
        let mut next = (*c).clone();
        for change in [create("mine", false), create("mine", true), drop("theirs")] {
            let e = next.clone().apply_owned(change, None).unwrap_err();
            assert_eq!(e.sqlstate, "55P03", "{e:?}");
        }
        next.apply_owned(create("theirs", false), owner(1))
            .unwrap_err();
        let e = next.apply_owned(create("other", false), None);
        assert!(e.is_ok());
        let e = next.apply_owned(create("other", false), None).unwrap_err();
        assert_eq!(e.sqlstate, DUPLICATE_TABLE);
    }

    #[test]
    fn only_keys_of_ids_handed_out_and_no_longer_named_are_dead() {
        use crate::index::{CLAIM_PREFIX, INDEX_PREFIX};
        use crate::rowcodec::{row_key, ROW_PREFIX};
        let index_key = |id: u32| [&[INDEX_PREFIX][..], &id.to_be_bytes(), b"x"].concat();
        let claim_key = |table: u32, index: u32| {
            [
                &[CLAIM_PREFIX][..],
                &table.to_be_bytes(),
                &index.to_be_bytes(),
                b"x",
            ]
            .concat()
        };
        let mut c = Catalog::new();
        c.apply(DdlChange::CreateTable {
            database: "postgres".into(),
            table: table("t"),
            if_not_exists: false,
            sequences: Vec::new(),
        })
        .unwrap();
        let t = c.table("postgres", None, "t").unwrap().id;
        c.apply(DdlChange::CreateIndex {
            database: "postgres".into(),
            schema: "public".into(),
            index: IndexDef {
                id: 0,
                name: "t_a".into(),
                table: "t".into(),
                columns: vec![0],
                unique: true,
                constraint: false,
                predicate: None,
                include: Vec::new(),
            },
            if_not_exists: false,
        })
        .unwrap();
        let i = c.databases["postgres"].schemas["public"].indexes["t_a"].id;
        let live = c.live_ids().clone();
        assert!(!live.is_dead_key(&row_key(t, b"k")));
        assert!(!live.is_dead_key(&index_key(i)));
        assert!(!live.is_dead_key(&claim_key(t, i)));
        // Ids not handed out yet (another shard's newer catalog may have), and keys that
        // are not SQL rows, entries or claims, are never dead.
        assert!(!live.is_dead_key(&row_key(c.next_id + 5, b"k")));
        assert!(!live.is_dead_key(b"\x00redis-key"));
        assert!(!live.is_dead_key(crate::rowcodec::CATALOG_KEY));
        assert!(
            !live.is_dead_key(&[ROW_PREFIX, 0]),
            "too short to name an id"
        );
        assert!(!LiveIds::default().is_dead_key(&row_key(1, b"k")));

        // A rewrite's reserved id is live while it builds, and once the catalog names it.
        let reserved = c.apply(DdlChange::ReserveId).unwrap().reserved_id.unwrap();
        assert!(!c.live_ids().is_dead_key(&row_key(reserved, b"k")));
        // After a restart, a build that never switched is garbage.
        let mut restarted = Catalog::decode(&c.encode()).unwrap();
        restarted.forget_builds();
        assert!(restarted.live_ids().is_dead_key(&row_key(reserved, b"k")));
        assert!(!restarted.live_ids().is_dead_key(&row_key(t, b"k")));

        // Dropping the index kills its entries and claims; dropping the table, its rows.
        c.apply(DdlChange::DropRelations {
            database: "postgres".into(),
            kind: RelationKind::Index,
            names: vec![("public".into(), "t_a".into())],
            if_exists: false,
        })
        .unwrap();
        let live = c.live_ids().clone();
        assert!(live.is_dead_key(&index_key(i)));
        assert!(live.is_dead_key(&claim_key(t, i)));
        assert!(!live.is_dead_key(&row_key(t, b"k")));
        // Whole ranges: only when both ends share one dead id (a live table's claims under a
        // dropped index vary with the index id, so a claim range is judged by its table).
        assert!(live.is_dead_range(&index_key(i), &index_key(i)));
        assert!(!live.is_dead_range(&claim_key(t, i), &claim_key(t, i)));
        assert!(!live.is_dead_range(&row_key(t, b"a"), &row_key(t, b"z")));
        assert!(!live.is_dead_range(&index_key(i), &row_key(t, b"k")));
        assert!(!live.is_dead_range(b"\x00a", b"\x00z"));
        c.apply(DdlChange::DropTables {
            database: "postgres".into(),
            tables: vec![("public".into(), "t".into())],
            if_exists: false,
        })
        .unwrap();
        assert!(c.live_ids().is_dead_key(&row_key(t, b"k")));
        assert!(c
            .live_ids()
            .is_dead_range(&row_key(t, b"a"), &row_key(t, b"z")));
        assert!(c
            .live_ids()
            .is_dead_range(&claim_key(t, i), &claim_key(t, i)));
        assert!(!c
            .live_ids()
            .is_dead_range(&row_key(t, b"a"), &row_key(t + 1, b"a")));
    }
}
