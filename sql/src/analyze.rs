//! ANALYZE (and VACUUM ANALYZE): a table's row count and, from a sample, each column's NULL
//! fraction, distinct values and a histogram, kept in the catalog (`Table::stats`). The
//! planner reads them to decide whether an index range is selective enough to beat a scan
//! (`index::choose`).
//!
//! The sample is the first [`SAMPLE_ROWS`] rows the shards return: rows are stored in
//! hash-token order, so that is an unbiased sample without reading the whole table.

use std::collections::HashSet;

use crate::catalog::{ColumnStats, DdlChange, Table, TableStats};
use crate::cluster::Cluster;
use crate::error::*;
use crate::session::Session;
use crate::stmt;
use crate::types::{Datum, SqlType};
use crate::StatementResult;

/// Rows ANALYZE looks at per table (PostgreSQL's default samples 30,000 too).
pub const SAMPLE_ROWS: usize = 30_000;
/// Histogram bounds kept per column.
const HISTOGRAM_BOUNDS: usize = 101;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Gathers and stores the statistics of one table.
pub(crate) async fn analyze_table<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    table: &Table,
) -> Result<(), SqlError> {
    let name = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let count_sql = format!("SELECT count(*) FROM {name}");
    let rows = match run(session, cluster, &count_sql).await?.first() {
        Some(row) => row
            .first()
            .cloned()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0),
        None => 0,
    };
    let sample_sql = format!("SELECT * FROM {name} LIMIT {SAMPLE_ROWS}");
    let sample = fetch_sample(session, cluster, table, &sample_sql).await?;
    let columns = (0..table.columns.len())
        .map(|c| column_stats(table.columns[c].ty, sample.iter().map(|r| &r[c])))
        .collect();
    cluster
        .ddl(DdlChange::SetStats {
            database: session.database().to_string(),
            schema: table.schema.clone(),
            name: table.name.clone(),
            id: table.id,
            stats: TableStats { rows, columns },
        })
        .await?;
    Ok(())
}

async fn run<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    let mut parsed = crate::parse(sql)?;
    let Some(sqlparser::ast::Statement::Query(q)) = parsed.pop() else {
        return Err(SqlError::new(
            INTERNAL_ERROR,
            "ANALYZE's query did not parse",
        ));
    };
    match stmt::run_query(session, cluster, sql, &q, &stmt::Params::none()).await? {
        StatementResult::Rows { rows, .. } => Ok(rows),
        _ => Ok(Vec::new()),
    }
}

/// The sample's rows as values (their text output read back with each column's type).
async fn fetch_sample<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    table: &Table,
    sql: &str,
) -> Result<Vec<Vec<Datum>>, SqlError> {
    let style = session.style();
    let rows = run(session, cluster, sql).await?;
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&table.columns)
                .map(|(v, c)| match v {
                    None => Ok(Datum::Null),
                    Some(text) => crate::types::input(c.ty, c.typmod, &text, &style),
                })
                .collect()
        })
        .collect()
}

fn column_stats<'a>(ty: SqlType, values: impl Iterator<Item = &'a Datum>) -> ColumnStats {
    let mut total = 0u64;
    let mut nulls = 0u64;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for v in values {
        total += 1;
        if *v == Datum::Null {
            nulls += 1;
            continue;
        }
        let mut key = Vec::new();
        if crate::rowcodec::encode_key_datum(&mut key, v).is_ok() {
            keys.push(key);
        }
    }
    let distinct = keys.iter().collect::<HashSet<_>>().len() as u64;
    let histogram = if crate::index::ordered(ty) && !keys.is_empty() {
        keys.sort_unstable();
        let last = keys.len() - 1;
        let bounds = HISTOGRAM_BOUNDS.min(keys.len());
        (0..bounds)
            .map(|i| keys[i * last / (bounds - 1).max(1)].clone())
            .collect()
    } else {
        Vec::new()
    };
    ColumnStats {
        null_frac: if total == 0 {
            0.0
        } else {
            nulls as f64 / total as f64
        },
        distinct,
        histogram,
    }
}

/// The fraction of a column's non-NULL values whose key bytes fall in `[lower, upper)`
/// (`upper` None: no upper bound), by its histogram (None: no histogram).
pub(crate) fn range_fraction(
    stats: &ColumnStats,
    lower: &[u8],
    upper: Option<&[u8]>,
) -> Option<f64> {
    let h = &stats.histogram;
    if h.len() < 2 {
        return None;
    }
    let below = |k: &[u8]| h.iter().filter(|b| b.as_slice() < k).count();
    let upper_count = upper.map_or(h.len(), below);
    let inside = upper_count.saturating_sub(below(lower));
    Some(inside as f64 / h.len() as f64)
}
