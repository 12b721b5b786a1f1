//! Transactional DDL: what undoes a transaction block's catalog changes.
//!
//! DDL inside a block changes the catalog at once (later statements of the block, and the
//! shards' write checks, need the new definitions), but the catalog also keeps, per open
//! transaction, the before-image of every entry the block changed ([`PendingDdl`]). ROLLBACK
//! (or ROLLBACK TO a savepoint taken before the DDL) puts those entries back; COMMIT forgets
//! them. Entries are schema and relation names, so undoing never touches another
//! transaction's changes: a change to an entry another open block has changed is refused
//! (55P03), as PostgreSQL's DDL would wait for that block's lock.
//!
//! While pending:
//! - the ids a before-image names stay live ([`Catalog::live_ids`]): a dropped or rewritten
//!   table's rows are not garbage until the drop commits;
//! - the tables the block changed are held: other transactions' writes to them are refused
//!   with the 40001 an ALTER TABLE's freeze gives (a statement outside a block waits and
//!   retries), so no row is written against a definition a rollback takes back.
//!
//! Crash safety: the first DDL of a block writes a marker key on shard 0 (value
//! [`MARKER_PENDING`]) in the same batch as the catalog; the block's COMMIT overwrites it
//! with [`MARKER_COMMITTED`] as one of the transaction's own writes, so the marker flips
//! atomically with the rest of the commit. A restart settles every pending block by its
//! marker (`DdlChange::SettlePending`): committed ones are forgotten, others undone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, IndexDef, Schema, SequenceDef, Table, ViewDef};

/// The marker of a block whose DDL is not committed.
pub const MARKER_PENDING: &[u8] = b"p";
/// The marker a committing block writes with its rows.
pub const MARKER_COMMITTED: &[u8] = b"c";

/// Shard 0's key recording whether transaction `txn`'s DDL committed.
pub fn marker_key(txn: u64) -> bytes::Bytes {
    let mut key = crate::rowcodec::CATALOG_KEY_PREFIX_DDL.to_vec();
    key.extend_from_slice(&txn.to_be_bytes());
    bytes::Bytes::from(key)
}

/// A catalog entry DDL can change: a schema, or a relation name in one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKey {
    Schema {
        database: String,
        schema: String,
    },
    Relation {
        database: String,
        schema: String,
        kind: RelationSlot,
        name: String,
    },
}

/// Which of a schema's maps a relation entry lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelationSlot {
    Table,
    Index,
    View,
    Sequence,
}

/// An entry's value before a change (`Absent`: it did not exist).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Before {
    Absent,
    /// A schema, by id (its relations are entries of their own).
    Schema(u32),
    Table(Table),
    Index(IndexDef),
    View(ViewDef),
    Sequence(SequenceDef),
}

impl Before {
    /// The id this before-image keeps live.
    fn id(&self) -> Option<u32> {
        match self {
            Before::Absent => None,
            Before::Schema(id) => Some(*id),
            Before::Table(t) => Some(t.id),
            Before::Index(i) => Some(i.id),
            Before::View(v) => Some(v.id),
            Before::Sequence(s) => Some(s.id),
        }
    }
}

/// One DDL statement's changes: each entry's value before it, made under savepoint `mark`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoStep {
    pub mark: u32,
    pub entries: Vec<(EntryKey, Before)>,
    /// The tables the step changed, or changed an index or serial sequence of (ids before
    /// and after): held until the block ends.
    #[serde(default)]
    pub tables: Vec<u32>,
}

/// An open transaction block's DDL, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingDdl {
    pub steps: Vec<UndoStep>,
}

impl PendingDdl {
    /// Whether one of its steps changed `key`.
    pub fn changed(&self, key: &EntryKey) -> bool {
        self.steps
            .iter()
            .any(|s| s.entries.iter().any(|(k, _)| k == key))
    }

    /// The ids its before-images name.
    pub fn retained_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.steps
            .iter()
            .flat_map(|s| s.entries.iter().filter_map(|(_, b)| b.id()))
    }

    /// Whether one of its steps gave a table entry the id it has now in `catalog`: the block
    /// created table `id` (CREATE TABLE, or TRUNCATE / a rewrite switching it to `id`).
    pub fn made_table(&self, catalog: &Catalog, id: u32) -> bool {
        let in_before_image = self.retained_ids().any(|r| r == id);
        !in_before_image
            && self
                .steps
                .iter()
                .flat_map(|s| &s.entries)
                .any(|(key, _)| match key {
                    EntryKey::Relation {
                        database,
                        schema,
                        kind: RelationSlot::Table,
                        name,
                    } => schema_of(catalog, database, schema)
                        .and_then(|s| s.tables.get(name))
                        .is_some_and(|t| t.id == id),
                    _ => false,
                })
    }

    /// The tables its steps hold.
    pub fn held_tables(&self) -> impl Iterator<Item = u32> + '_ {
        self.steps.iter().flat_map(|s| s.tables.iter().copied())
    }
}

/// The tables a change of `entries` (from `before` to `after`) touches: a changed table's
/// ids, and the tables of changed indexes and serial sequences, in either catalog.
pub fn affected_tables(
    before: &Catalog,
    after: &Catalog,
    entries: &[(EntryKey, Before)],
) -> Vec<u32> {
    let mut tables = Vec::new();
    for (key, _) in entries {
        let EntryKey::Relation {
            database,
            schema,
            kind,
            name,
        } = key
        else {
            continue;
        };
        for catalog in [before, after] {
            let Some(s) = schema_of(catalog, database, schema) else {
                continue;
            };
            let table = match kind {
                RelationSlot::Table => s.tables.get(name),
                RelationSlot::Index => s.indexes.get(name).and_then(|i| s.tables.get(&i.table)),
                RelationSlot::Sequence => s
                    .sequences
                    .get(name)
                    .and_then(|q| q.owned_by.as_ref())
                    .and_then(|t| s.tables.get(t)),
                RelationSlot::View => None,
            };
            tables.extend(table.map(|t| t.id));
        }
    }
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// The entries `after` differs from `before` in, each with its value in `before`; schemas
/// before their relations. Databases are left out: CREATE and DROP DATABASE cannot run in
/// a transaction block.
pub fn diff(before: &Catalog, after: &Catalog) -> Vec<(EntryKey, Before)> {
    let mut changed = Vec::new();
    for (database, b_db, a_db) in union(&before.databases, &after.databases) {
        let empty = BTreeMap::new();
        let b_schemas = b_db.map_or(&empty, |d| &d.schemas);
        let a_schemas = a_db.map_or(&empty, |d| &d.schemas);
        for (schema, b, a) in union(b_schemas, a_schemas) {
            if b.map(|s| s.id) != a.map(|s| s.id) {
                changed.push((
                    EntryKey::Schema {
                        database: database.clone(),
                        schema: schema.clone(),
                    },
                    b.map_or(Before::Absent, |s| Before::Schema(s.id)),
                ));
            }
            let key = |kind, name: &String| EntryKey::Relation {
                database: database.clone(),
                schema: schema.clone(),
                kind,
                name: name.clone(),
            };
            let no_schema = Schema::new(0);
            let (b, a) = (b.unwrap_or(&no_schema), a.unwrap_or(&no_schema));
            for (name, bt, at) in union(&b.tables, &a.tables) {
                let same = match (bt, at) {
                    (Some(x), Some(y)) => std::sync::Arc::ptr_eq(x, y) || x == y,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    let before = bt.map_or(Before::Absent, |t| Before::Table((**t).clone()));
                    changed.push((key(RelationSlot::Table, name), before));
                }
            }
            diff_map(
                &mut changed,
                &b.indexes,
                &a.indexes,
                |n| key(RelationSlot::Index, n),
                Before::Index,
            );
            diff_map(
                &mut changed,
                &b.views,
                &a.views,
                |n| key(RelationSlot::View, n),
                Before::View,
            );
            diff_map(
                &mut changed,
                &b.sequences,
                &a.sequences,
                |n| key(RelationSlot::Sequence, n),
                Before::Sequence,
            );
        }
    }
    changed
}

fn diff_map<V: Clone + PartialEq>(
    changed: &mut Vec<(EntryKey, Before)>,
    before: &BTreeMap<String, V>,
    after: &BTreeMap<String, V>,
    key: impl Fn(&String) -> EntryKey,
    wrap: impl Fn(V) -> Before,
) {
    for (name, b, a) in union(before, after) {
        if b != a {
            changed.push((key(name), b.cloned().map_or(Before::Absent, &wrap)));
        }
    }
}

/// Schema `schema` of database `database`, if both exist.
fn schema_of<'a>(catalog: &'a Catalog, database: &str, schema: &str) -> Option<&'a Schema> {
    catalog.databases.get(database)?.schemas.get(schema)
}

/// Every key of either map, with its value in each.
fn union<'a, V>(
    a: &'a BTreeMap<String, V>,
    b: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = (&'a String, Option<&'a V>, Option<&'a V>)> + 'a {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().map(move |k| (k, a.get(k), b.get(k)))
}

/// Puts one step's entries back: schemas that existed first (their relations need them),
/// then the relations, then the schemas the step created.
pub fn undo_step(catalog: &mut Catalog, step: &UndoStep) {
    for (key, before) in &step.entries {
        if let (EntryKey::Schema { database, schema }, Before::Schema(id)) = (key, before) {
            if let Some(db) = catalog.databases.get_mut(database) {
                db.schemas
                    .entry(schema.clone())
                    .or_insert_with(|| Schema::new(*id));
            }
        }
    }
    for (key, before) in step.entries.iter().rev() {
        let EntryKey::Relation {
            database,
            schema,
            kind,
            name,
        } = key
        else {
            continue;
        };
        let Some(schema) = catalog
            .databases
            .get_mut(database)
            .and_then(|db| db.schemas.get_mut(schema))
        else {
            continue;
        };
        let name = name.clone();
        match (kind, before.clone()) {
            (RelationSlot::Table, Before::Table(t)) => {
                schema.tables.insert(name, std::sync::Arc::new(t));
            }
            (RelationSlot::Table, _) => {
                schema.tables.remove(&name);
            }
            (RelationSlot::Index, Before::Index(i)) => {
                schema.indexes.insert(name, i);
            }
            (RelationSlot::Index, _) => {
                schema.indexes.remove(&name);
            }
            (RelationSlot::View, Before::View(v)) => {
                schema.views.insert(name, v);
            }
            (RelationSlot::View, _) => {
                schema.views.remove(&name);
            }
            (RelationSlot::Sequence, Before::Sequence(s)) => {
                schema.sequences.insert(name, s);
            }
            (RelationSlot::Sequence, _) => {
                schema.sequences.remove(&name);
            }
        }
    }
    for (key, before) in &step.entries {
        if let (EntryKey::Schema { database, schema }, Before::Absent) = (key, before) {
            if let Some(db) = catalog.databases.get_mut(database) {
                db.schemas.remove(schema);
            }
        }
    }
}

/// The name a client knows an entry by, for messages.
pub fn entry_name(key: &EntryKey) -> &str {
    match key {
        EntryKey::Schema { schema, .. } => schema,
        EntryKey::Relation { name, .. } => name,
    }
}

/// Whether changing `key` also changes what `held` covers: the same name (tables,
/// indexes, views and sequences share one namespace per schema), or (for a relation) its
/// schema.
pub fn overlaps(key: &EntryKey, held: &EntryKey) -> bool {
    match (key, held) {
        (
            EntryKey::Relation {
                database: d1,
                schema: s1,
                name: n1,
                ..
            },
            EntryKey::Relation {
                database: d2,
                schema: s2,
                name: n2,
                ..
            },
        ) => d1 == d2 && s1 == s2 && n1 == n2,
        (
            EntryKey::Schema {
                database: d1,
                schema: s1,
            },
            EntryKey::Schema {
                database: d2,
                schema: s2,
            },
        ) => d1 == d2 && s1 == s2,
        (
            EntryKey::Relation {
                database, schema, ..
            },
            EntryKey::Schema {
                database: d,
                schema: s,
            },
        )
        | (
            EntryKey::Schema {
                database: d,
                schema: s,
            },
            EntryKey::Relation {
                database, schema, ..
            },
        ) => database == d && schema == s,
    }
}
