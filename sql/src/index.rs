//! Secondary indexes: local to each shard's rows, kept in the same write batch as the rows,
//! read by scan fragments for equality and range predicates on an index's first column.
//!
//! Entry key: `0x82 index_id:u32 (column value)* row_key row_key_len:u16`, empty value. Each
//! column value is `0x00` for NULL, else `0x01` and the value's order-preserving key bytes
//! (`rowcodec::encode_key_datum`, self-delimiting), so the entries of one first-column value
//! are one key range. The row's storage key and its length close the entry, so entries with
//! equal values are distinct and the row key is read back from the end.
//!
//! A fragment that reads through an index collects the row keys of the entries in range,
//! sorts them (so rows come in the storage-key order a full scan gives), reads each row and
//! then applies the whole filter as a scan would: an entry whose row has changed or gone
//! since (a stale entry) is harmless; only a missing entry could lose a row, and every write
//! of a row updates its entries in the row's own batch.

use std::collections::HashMap;
use std::ops::Bound as Edge;
use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::{Catalog, Table};
use crate::error::*;
use crate::expr::{eval, Bound, Cmp, Env, Eval, Kind};
use crate::rowcodec;
use crate::types::{Datum, SqlType};

/// First byte of every index entry key (rows are 0x80, the catalog 0x81).
pub const INDEX_PREFIX: u8 = 0x82;

/// First byte of a unique index's claim keys (see [`claim_key`]).
pub const CLAIM_PREFIX: u8 = 0x85;

/// What a shard needs to maintain one index of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    pub id: u32,
    /// Column positions in the table.
    pub columns: Vec<usize>,
    /// UNIQUE: each non-NULL value is also claimed cluster-wide (see [`claim_key`]).
    pub unique: bool,
    pub name: String,
    pub table_id: u32,
    /// A partial index's WHERE: rows it is not true of have no entry and no claim.
    pub predicate: Option<Arc<IndexPredicate>>,
}

/// A partial index's WHERE, bound over its table's columns.
#[derive(Debug)]
pub struct IndexPredicate {
    /// As the catalog keeps it (what the index is compared by).
    pub text: String,
    bound: Bound,
    env: Env,
    /// The row width its evaluation reads (its highest column, plus one).
    pub width: usize,
}

impl PartialEq for IndexPredicate {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for IndexPredicate {}

impl IndexPredicate {
    /// The column positions it reads.
    pub(crate) fn columns_read(&self) -> Vec<usize> {
        let mut read = Vec::new();
        self.bound.visit(&mut |b| {
            if let Kind::Column(c) = b.kind {
                read.push(c);
            }
        });
        read
    }

    /// Whether every row that all of `conjuncts` (a query's AND-ed filter terms, over the same
    /// table's columns) are true of makes this predicate true too, so that the partial index
    /// holds every row the query can return. Proved the simple ways, which are how
    /// applications write such queries (the index's WHERE repeated): each of the predicate's
    /// AND-ed terms is one of the query's, or is `column IS NOT NULL` where the query compares
    /// that column with `=`, `<`, ... (never true of NULL). Anything else: not implied. The
    /// query's parameters count as the values `env` gives them (a simple query's literals
    /// reach here as parameters of its shape).
    pub(crate) fn implied_by(&self, conjuncts: &[Bound], env: &Env) -> bool {
        let mut terms = Vec::new();
        self.bound.clone().into_conjuncts(&mut terms);
        terms.iter().all(|term| {
            conjuncts.iter().any(|c| same_expression(term, c, env))
                || not_null_column(term).is_some_and(|column| {
                    conjuncts
                        .iter()
                        .any(|c| column_comparison(c).is_some_and(|(i, _, _)| i == column))
                })
        })
    }
}

/// The column `term` says IS NOT NULL, if that is all it says.
fn not_null_column(term: &Bound) -> Option<usize> {
    match &term.kind {
        Kind::IsNull(x, true) => match x.kind {
            Kind::Column(column) => Some(column),
            _ => None,
        },
        _ => None,
    }
}

/// Whether index predicate term `a` and query term `b` are the same expression: same shape,
/// types, columns and constants (positions in the query text aside; a parameter of `b` is
/// the value `env` gives it). Kinds not listed are never the same, which only means an index
/// is not used.
fn same_expression(a: &Bound, b: &Bound, env: &Env) -> bool {
    let same = |x: &Bound, y: &Bound| same_expression(x, y, env);
    let all =
        |x: &[Bound], y: &[Bound]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y));
    if a.ty != b.ty || a.typmod != b.typmod {
        return false;
    }
    match (&a.kind, &b.kind) {
        (Kind::Const(x), Kind::Const(y)) => x == y,
        (Kind::Const(x), Kind::Param(_)) => eval(b, &Eval::new(env)).is_ok_and(|y| *x == y),
        (Kind::Column(x), Kind::Column(y)) => x == y,
        (
            Kind::Cmp {
                op,
                l,
                r,
                null_safe,
            },
            Kind::Cmp {
                op: op2,
                l: l2,
                r: r2,
                null_safe: null_safe2,
            },
        ) => op == op2 && null_safe == null_safe2 && same(l, l2) && same(r, r2),
        (Kind::And(l, r), Kind::And(l2, r2))
        | (Kind::Or(l, r), Kind::Or(l2, r2))
        | (Kind::Concat(l, r), Kind::Concat(l2, r2))
        | (Kind::NullIf(l, r), Kind::NullIf(l2, r2)) => same(l, l2) && same(r, r2),
        (Kind::Arith(op, l, r), Kind::Arith(op2, l2, r2)) => {
            op == op2 && same(l, l2) && same(r, r2)
        }
        (Kind::Not(x), Kind::Not(y))
        | (Kind::Neg(x), Kind::Neg(y))
        | (Kind::Cast(x), Kind::Cast(y)) => same(x, y),
        (Kind::IsNull(x, negated), Kind::IsNull(y, negated2)) => negated == negated2 && same(x, y),
        (Kind::IsBool(x, value, negated), Kind::IsBool(y, value2, negated2)) => {
            value == value2 && negated == negated2 && same(x, y)
        }
        (Kind::Func(f, xs), Kind::Func(g, ys)) => f == g && all(xs, ys),
        (Kind::Coalesce(xs), Kind::Coalesce(ys)) => all(xs, ys),
        (
            Kind::InList { x, list, negated },
            Kind::InList {
                x: x2,
                list: list2,
                negated: negated2,
            },
        ) => negated == negated2 && same(x, x2) && all(list, list2),
        (
            Kind::Like {
                x,
                pattern,
                negated,
                case_insensitive,
            },
            Kind::Like {
                x: x2,
                pattern: pattern2,
                negated: negated2,
                case_insensitive: case_insensitive2,
            },
        ) => {
            negated == negated2
                && case_insensitive == case_insensitive2
                && same(x, x2)
                && same(pattern, pattern2)
        }
        _ => false,
    }
}

impl IndexSpec {
    /// Whether `row` has an entry (and, unique, a claim) in this index: its predicate is
    /// true of the row, or it has none.
    pub(crate) fn covers(&self, row: &[Datum]) -> Result<bool, SqlError> {
        let Some(p) = &self.predicate else {
            return Ok(true);
        };
        let cx = crate::expr::Eval::over_row(&p.env, row);
        Ok(crate::expr::eval(&p.bound, &cx)? == Datum::Bool(true))
    }

    /// The row width its maintenance reads: its columns and its predicate's.
    pub(crate) fn width(&self) -> usize {
        let columns = self.columns.iter().max().map_or(0, |m| m + 1);
        columns.max(self.predicate.as_ref().map_or(0, |p| p.width))
    }
}

/// Binds partial index `text` over `table`'s columns (in `database`): a boolean expression
/// of them, with no subquery, aggregate, parameter or volatile function.
pub(crate) fn bind_predicate(
    catalog: &Catalog,
    database: &str,
    table: &Table,
    text: &str,
) -> Result<IndexPredicate, SqlError> {
    let session = crate::Session::new("postgres", database);
    let bound = crate::stmt::bind_table_expr(&session, catalog, table, text)?;
    if bound.ty != SqlType::Bool {
        return Err(SqlError::new(
            crate::error::DATATYPE_MISMATCH,
            format!(
                "argument of WHERE must be type boolean, not type {}",
                bound.ty.sql_name()
            ),
        ));
    }
    if !bound.is_row_local() {
        return Err(SqlError::new(
            crate::error::FEATURE_NOT_SUPPORTED,
            "cannot use subquery in index predicate",
        ));
    }
    // Only functions of their arguments, as PostgreSQL's IMMUTABLE requirement: a WHERE
    // reading the clock, the session or a sequence would not give a row the same answer
    // every time its entries are kept.
    let mut immutable = true;
    bound.visit(&mut |b| {
        use crate::expr::Func as F;
        use crate::funcs::Builtin as B;
        let varies = match &b.kind {
            Kind::Param(_) => true,
            Kind::Func(F::Builtin(f), _) => {
                crate::funcs::is_volatile(*f)
                    || matches!(
                        f,
                        B::Now | B::CurrentDate | B::LocalTimestamp | B::LocalTime | B::Age
                    )
            }
            Kind::Func(f, _) => !matches!(f, F::Length | F::Upper | F::Lower | F::Abs),
            _ => false,
        };
        immutable &= !varies;
    });
    if !immutable {
        return Err(SqlError::new(
            "42P17",
            "functions in index predicate must be marked IMMUTABLE",
        ));
    }
    let mut width = 0;
    bound.visit(&mut |b| {
        if let Kind::Column(c) = b.kind {
            width = width.max(c + 1);
        }
    });
    Ok(IndexPredicate {
        text: text.to_string(),
        bound,
        env: Env::of(&session),
        width,
    })
}

/// A change of a unique index's claim for one row: the value it gave up and the one it
/// takes (None: none, or one with a NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub index_id: u32,
    pub old: Option<Bytes>,
    pub new: Option<Bytes>,
    pub row_key: Bytes,
}

/// The key that claims `row`'s value in unique index `spec` (None when a column is NULL:
/// NULLs never conflict). `0x85 table_id:u32 index_id:u32 (column value)*` → the row key.
/// It lives on the shard its hash picks, wherever the row is, so one shard sees every
/// writer of a value: the claim is a row-locked insert there, in the writer's transaction.
pub(crate) fn claim_key(spec: &IndexSpec, row: &[Datum]) -> Result<Option<Bytes>, SqlError> {
    if !spec.covers(row)? {
        return Ok(None);
    }
    let mut key = Vec::with_capacity(16);
    key.push(CLAIM_PREFIX);
    key.extend_from_slice(&spec.table_id.to_be_bytes());
    key.extend_from_slice(&spec.id.to_be_bytes());
    for &c in &spec.columns {
        let d = row.get(c).unwrap_or(&Datum::Null);
        if d.is_null() {
            return Ok(None);
        }
        rowcodec::encode_key_datum(&mut key, d)?;
    }
    Ok(Some(Bytes::from(key)))
}

/// The values of a taken key (a row key, or a unique index's claim) that a shard reported with
/// a 23505, as PostgreSQL's DETAIL shows them: `Key (a, b)=(1, x)`. None when the key's table
/// or index is gone from `catalog` or its values cannot be read back from the key.
pub(crate) fn describe_conflict(
    catalog: &Catalog,
    key: &[u8],
    style: &crate::types::Style,
) -> Option<String> {
    let (table, _, columns, key_bytes) = conflict_source(catalog, key)?;
    if columns.is_empty() {
        return None;
    }
    let types: Vec<SqlType> = columns.iter().map(|&c| table.columns[c].ty).collect();
    let values = rowcodec::decode_key_datums(key_bytes, &types)?;
    Some(key_text(&table, &columns, &values, style))
}

/// `Key (a, b)=(1, 2)`: a key as PostgreSQL's error details write it (NULL as `null`).
pub(crate) fn key_text(
    table: &Table,
    columns: &[usize],
    values: &[Datum],
    style: &crate::types::Style,
) -> String {
    let names: Vec<&str> = columns
        .iter()
        .map(|&c| table.columns[c].name.as_str())
        .collect();
    let shown: Vec<String> = values
        .iter()
        .map(|v| crate::types::output(v, style).unwrap_or_else(|| "null".into()))
        .collect();
    format!("Key ({})=({})", names.join(", "), shown.join(", "))
}

/// The table a conflicting row key or unique-index claim belongs to, and the constraint it
/// violates (its primary key's, or the unique index's name).
pub(crate) fn conflict_names(catalog: &Catalog, key: &[u8]) -> Option<(Arc<Table>, String)> {
    conflict_source(catalog, key).map(|(table, name, _, _)| (table, name))
}

/// What a conflicting row key or unique-index claim is of: its table, the constraint (the
/// primary key's, or the index's name), that constraint's columns and the key's value bytes.
type ConflictSource<'k> = (Arc<Table>, String, Vec<usize>, &'k [u8]);

fn conflict_source<'k>(catalog: &Catalog, key: &'k [u8]) -> Option<ConflictSource<'k>> {
    let id_at = |at: usize| Some(u32::from_be_bytes(key.get(at..at + 4)?.try_into().ok()?));
    match *key.first()? {
        rowcodec::ROW_PREFIX => {
            let table = table_by_id(catalog, id_at(1)?)?;
            let (name, columns) = (table.pkey_name(), table.primary_key.clone());
            Some((
                table,
                name,
                columns,
                key.get(rowcodec::ROW_KEY_HEADER_BYTES..)?,
            ))
        }
        CLAIM_PREFIX => {
            let table = table_by_id(catalog, id_at(1)?)?;
            let index_id = id_at(5)?;
            let spec = specs_for(catalog, &table)
                .into_iter()
                .find(|spec| spec.id == index_id)?;
            Some((table, spec.name, spec.columns, key.get(9..)?))
        }
        _ => None,
    }
}

/// PostgreSQL's DETAIL of a 23505 raised on a shard: `Key (id)=(1) already exists.`
pub(crate) fn already_exists_detail(
    catalog: &Catalog,
    key: &[u8],
    style: &crate::types::Style,
) -> Option<String> {
    describe_conflict(catalog, key, style).map(|key| format!("{key} already exists."))
}

fn table_by_id(catalog: &Catalog, id: u32) -> Option<std::sync::Arc<Table>> {
    catalog
        .databases
        .values()
        .flat_map(|database| database.schemas.values())
        .flat_map(|schema| schema.tables.values())
        .find(|table| table.id == id)
        .cloned()
}

/// Deletes an index's entries and its claims on every shard: a dropped index, an index of a
/// dropped or truncated table, or one a table rewrite built again under a new id.
pub async fn delete_index_data<C: crate::cluster::Cluster>(
    cluster: &C,
    table_id: u32,
    index_id: u32,
) -> Result<(), SqlError> {
    for shard in 0..cluster.shard_count() {
        for prefix in [
            index_prefix(index_id),
            claim_index_prefix(table_id, index_id),
        ] {
            cluster
                .txn_call(shard, crate::txn::TxnMsg::DeletePrefix { prefix })
                .await?;
        }
    }
    Ok(())
}

/// The token that places a claim key on a shard.
pub(crate) fn claim_token(claim: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(claim)
}

/// Every claim key of one table starts with this.
pub fn claim_table_prefix(table_id: u32) -> Vec<u8> {
    let mut p = vec![CLAIM_PREFIX];
    p.extend_from_slice(&table_id.to_be_bytes());
    p
}

/// Every claim key of one index starts with this.
pub(crate) fn claim_index_prefix(table_id: u32, index_id: u32) -> Vec<u8> {
    let mut p = claim_table_prefix(table_id);
    p.extend_from_slice(&index_id.to_be_bytes());
    p
}

/// The indexes of `table` as of `catalog` (found by the table's id: ids are unique across
/// databases).
pub(crate) fn specs_for(catalog: &Catalog, table: &Table) -> Vec<IndexSpec> {
    for (database_name, database) in &catalog.databases {
        let Some(schema) = database.schemas.get(&table.schema) else {
            continue;
        };
        if schema
            .tables
            .get(&table.name)
            .is_none_or(|t| t.id != table.id)
        {
            continue;
        }
        return schema
            .indexes
            .values()
            .filter(|i| i.table == table.name && i.columns.iter().all(|&c| c < table.columns.len()))
            .map(|i| IndexSpec {
                id: i.id,
                columns: i.columns.clone(),
                unique: i.unique,
                name: i.name.clone(),
                table_id: table.id,
                predicate: i
                    .predicate
                    .as_ref()
                    .and_then(|text| predicate_of(catalog, database_name, table, i.id, text)),
            })
            .collect();
    }
    Vec::new()
}

/// Partial index predicates, bound once per catalog version and index (binding parses).
type PredicateCache = HashMap<(u64, u32), Option<Arc<IndexPredicate>>>;

thread_local! {
    static PREDICATES: std::cell::RefCell<PredicateCache> = Default::default();
}

/// Index `id`'s predicate `text`, bound. A predicate that no longer binds (a column it read
/// was dropped) covers no row: such an index is dropped with the column.
fn predicate_of(
    catalog: &Catalog,
    database: &str,
    table: &Table,
    id: u32,
    text: &str,
) -> Option<Arc<IndexPredicate>> {
    const CACHED_MAX: usize = 1024;
    let key = (catalog.version, id);
    if let Some(hit) = PREDICATES.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let bound = bind_predicate(catalog, database, table, text)
        .ok()
        .map(Arc::new);
    PREDICATES.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= CACHED_MAX {
            cache.clear();
        }
        cache.insert(key, bound.clone());
    });
    bound
}

/// The prefix of every entry of index `id`.
pub(crate) fn entry_prefix(id: u32) -> Vec<u8> {
    index_prefix(id)
}

/// The prefix of every claim of unique index `id` on table `table_id`.
pub(crate) fn claim_prefix(table_id: u32, id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(9);
    p.push(CLAIM_PREFIX);
    p.extend_from_slice(&table_id.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p
}

fn index_prefix(id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(5);
    p.push(INDEX_PREFIX);
    p.extend_from_slice(&id.to_be_bytes());
    p
}

fn encode_value(out: &mut Vec<u8>, d: &Datum) -> Result<(), SqlError> {
    if d.is_null() {
        out.push(0);
        return Ok(());
    }
    out.push(1);
    rowcodec::encode_key_datum(out, d)
}

/// The entry of `row` (stored under `row_key`) in index `spec`.
pub(crate) fn entry_key(
    spec: &IndexSpec,
    row: &[Datum],
    row_key: &[u8],
) -> Result<Option<Bytes>, SqlError> {
    if !spec.covers(row)? {
        return Ok(None);
    }
    let mut key = index_prefix(spec.id);
    for &c in &spec.columns {
        encode_value(&mut key, row.get(c).unwrap_or(&Datum::Null))?;
    }
    let len = u16::try_from(row_key.len())
        .map_err(|_| SqlError::new(PROGRAM_LIMIT_EXCEEDED, "row key too long to index"))?;
    key.extend_from_slice(row_key);
    key.extend_from_slice(&len.to_be_bytes());
    Ok(Some(Bytes::from(key)))
}

/// The row key an entry points at (None: not an entry this code wrote).
pub(crate) fn row_key_of(entry: &[u8]) -> Option<&[u8]> {
    let n = entry.len();
    if n < 7 {
        return None;
    }
    let len = u16::from_be_bytes([entry[n - 2], entry[n - 1]]) as usize;
    entry.get(n - 2 - len..n - 2)
}

/// A key range of one index: entries from `lower` (inclusive) up to `upper` (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRange {
    pub index_id: u32,
    pub lower: Vec<u8>,
    pub upper: Vec<u8>,
}

/// Whether values of type `ty` have key bytes in value order (numeric's do not: it is keyed
/// by its normalized text).
pub(crate) fn ordered(ty: SqlType) -> bool {
    !matches!(ty, SqlType::Numeric)
}

/// The smallest byte string greater than every string starting with `prefix`.
fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last != 0xFF {
            p.push(last + 1);
            return p;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

/// An index range that holds every row `filter` can pass, from a conjunct `column op
/// constant` on the first column of one of `indexes` (equality first, else the tightest
/// bounds); None when no index helps.
pub(crate) fn choose(
    table: &Table,
    indexes: &[IndexSpec],
    filter: Option<&Bound>,
    env: &Env,
) -> Result<Option<IndexRange>, SqlError> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if indexes.is_empty() {
        return Ok(None);
    }
    let mut conjuncts = Vec::new();
    filter.clone().into_conjuncts(&mut conjuncts);
    let mut best: Option<(u8, IndexRange)> = None;
    // A partial index lacks the rows its WHERE is not true of: read only for a query whose
    // WHERE implies it.
    let usable = |spec: &&IndexSpec| {
        spec.predicate
            .as_ref()
            .is_none_or(|p| p.implied_by(&conjuncts, env))
    };
    for spec in indexes.iter().filter(usable) {
        let first = spec.columns[0];
        let column_ty = table.columns[first].ty;
        let prefix = index_prefix(spec.id);
        let mut lower: Edge<Vec<u8>> = Edge::Unbounded;
        let mut upper: Edge<Vec<u8>> = Edge::Unbounded;
        let mut equal: Option<Vec<u8>> = None;
        for c in &conjuncts {
            let Some((col, op, value)) = column_comparison(c) else {
                continue;
            };
            if col != first || value.ty != column_ty {
                continue;
            }
            let v = eval(value, &Eval::new(env))?;
            if v.is_null() {
                // `col op NULL` passes no row: an empty range.
                return Ok(Some(IndexRange {
                    index_id: spec.id,
                    lower: prefix.clone(),
                    upper: prefix.clone(),
                }));
            }
            let mut bytes = prefix.clone();
            encode_value(&mut bytes, &v)?;
            match op {
                Cmp::Eq => equal = Some(bytes),
                _ if !ordered(column_ty) => {}
                Cmp::Gt => lower = tighter_lower(lower, Edge::Excluded(bytes)),
                Cmp::Ge => lower = tighter_lower(lower, Edge::Included(bytes)),
                Cmp::Lt => upper = tighter_upper(upper, Edge::Excluded(bytes)),
                Cmp::Le => upper = tighter_upper(upper, Edge::Included(bytes)),
                Cmp::Ne => {}
            }
        }
        let (rank, range) = if let Some(eq) = equal {
            (
                2,
                IndexRange {
                    index_id: spec.id,
                    upper: after_prefix(&eq),
                    lower: eq,
                },
            )
        } else if lower != Edge::Unbounded || upper != Edge::Unbounded {
            // Non-NULL values only: a range comparison never passes NULL.
            let mut non_null = prefix.clone();
            non_null.push(1);
            let lower = match lower {
                Edge::Unbounded => non_null.clone(),
                Edge::Included(b) => b,
                Edge::Excluded(b) => after_prefix(&b),
            };
            let upper = match upper {
                Edge::Unbounded => after_prefix(&non_null),
                Edge::Included(b) => after_prefix(&b),
                Edge::Excluded(b) => b,
            };
            (
                1,
                IndexRange {
                    index_id: spec.id,
                    lower,
                    upper,
                },
            )
        } else {
            continue;
        };
        if too_broad(table, first, rank == 2, &range) {
            continue;
        }
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, range));
        }
    }
    Ok(best.map(|(_, r)| r))
}

/// An index range expected to hold more than this fraction of a table's rows is not used:
/// reading each row by key would cost more than scanning them all.
const INDEX_FRACTION_MAX: f64 = 0.2;

/// Whether ANALYZE's statistics say the range holds too much of the table for an index to
/// pay (without statistics, every usable index is used).
fn too_broad(table: &Table, column: usize, equality: bool, range: &IndexRange) -> bool {
    let Some(stats) = table.stats.as_ref().and_then(|s| s.columns.get(column)) else {
        return false;
    };
    let non_null = 1.0 - stats.null_frac;
    let fraction = if equality {
        non_null / stats.distinct.max(1) as f64
    } else {
        // Strip the index prefix and the non-NULL tag: what is left are value key bytes.
        const VALUE_AT: usize = 6;
        let lower = range.lower.get(VALUE_AT..).unwrap_or(&[]);
        let upper: Option<&[u8]> = match range.upper.get(VALUE_AT - 1) {
            Some(1) => range.upper.get(VALUE_AT..),
            _ => None,
        };
        match crate::analyze::range_fraction(stats, lower, upper) {
            Some(f) => f * non_null,
            None => return false,
        }
    };
    fraction > INDEX_FRACTION_MAX
}

fn tighter_lower(a: Edge<Vec<u8>>, b: Edge<Vec<u8>>) -> Edge<Vec<u8>> {
    let key = |e: &Edge<Vec<u8>>| match e {
        Edge::Unbounded => None,
        Edge::Included(v) => Some((v.clone(), 0)),
        Edge::Excluded(v) => Some((v.clone(), 1)),
    };
    if key(&b) > key(&a) {
        b
    } else {
        a
    }
}

fn tighter_upper(a: Edge<Vec<u8>>, b: Edge<Vec<u8>>) -> Edge<Vec<u8>> {
    let key = |e: &Edge<Vec<u8>>| match e {
        Edge::Unbounded => None,
        Edge::Included(v) => Some((v.clone(), 1)),
        Edge::Excluded(v) => Some((v.clone(), 0)),
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if y < x => b,
        _ => a,
    }
}

/// `column op value` (or `value op column`, flipped) with a constant or parameter value.
fn column_comparison(b: &Bound) -> Option<(usize, Cmp, &Bound)> {
    let Kind::Cmp {
        op,
        l,
        r,
        null_safe: false,
    } = &b.kind
    else {
        return None;
    };
    let constant = |e: &Bound| e.is_constant() || matches!(e.kind, Kind::Param(_));
    match (&l.kind, &r.kind) {
        (Kind::Column(i), _) if constant(r) => Some((*i, *op, r)),
        (_, Kind::Column(i)) if constant(l) => Some((
            *i,
            match op {
                Cmp::Lt => Cmp::Gt,
                Cmp::Le => Cmp::Ge,
                Cmp::Gt => Cmp::Lt,
                Cmp::Ge => Cmp::Le,
                other => *other,
            },
            l,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_name_the_value_not_the_row_and_skip_nulls() {
        let spec = IndexSpec {
            id: 3,
            columns: vec![1, 2],
            unique: true,
            name: "u".to_string(),
            table_id: 9,
            predicate: None,
        };
        let a = claim_key(&spec, &[Datum::Int(1), Datum::Int(5), Datum::Int(6)]).unwrap();
        let b = claim_key(&spec, &[Datum::Int(2), Datum::Int(5), Datum::Int(6)]).unwrap();
        assert_eq!(a, b, "two rows with one value claim one key");
        let a = a.unwrap();
        assert!(a.starts_with(&claim_index_prefix(9, 3)));
        assert!(a.starts_with(&claim_table_prefix(9)));
        let c = claim_key(&spec, &[Datum::Int(1), Datum::Int(5), Datum::Int(7)]).unwrap();
        assert_ne!(Some(a), c);
        assert_eq!(
            claim_key(&spec, &[Datum::Int(1), Datum::Null, Datum::Int(6)]).unwrap(),
            None
        );
    }

    #[test]
    fn entries_give_back_their_row_keys_and_group_by_value() {
        let spec = IndexSpec {
            id: 7,
            columns: vec![1],
            unique: false,
            name: "i".to_string(),
            table_id: 1,
            predicate: None,
        };
        let row_a = vec![Datum::Int(1), Datum::Int(5)];
        let row_b = vec![Datum::Int(2), Datum::Int(5)];
        let row_c = vec![Datum::Int(3), Datum::Int(6)];
        let covered = |entry: Result<Option<Bytes>, SqlError>| entry.unwrap().expect("covered");
        let a = covered(entry_key(&spec, &row_a, b"\x80rowkey-a"));
        let b = covered(entry_key(&spec, &row_b, b"\x80rowkey-bb"));
        let c = covered(entry_key(&spec, &row_c, b"\x80c"));
        assert_eq!(row_key_of(&a), Some(&b"\x80rowkey-a"[..]));
        assert_eq!(row_key_of(&b), Some(&b"\x80rowkey-bb"[..]));
        let mut five = index_prefix(7);
        encode_value(&mut five, &Datum::Int(5)).unwrap();
        let end = after_prefix(&five);
        for (entry, inside) in [(&a, true), (&b, true), (&c, false)] {
            assert_eq!(
                entry[..] >= five[..] && entry[..] < end[..],
                inside,
                "{entry:?}"
            );
        }
        let null = covered(entry_key(&spec, &[Datum::Int(4), Datum::Null], b"\x80n"));
        assert!(
            null < a,
            "NULL entries sort first, outside every value's range"
        );
    }
}
