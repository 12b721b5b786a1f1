//! ANALYZE (and VACUUM ANALYZE): a table's row count and, from a sample, each column's NULL
//! fraction, distinct values and a histogram, kept in the catalog (`Table::stats`). The
//! planner reads them to decide whether an index range is selective enough to beat a scan
//! (`index::choose`).
//!
//! The sample is each shard's first rows in storage-key order: rows are stored in hash-token
//! order, so that is an unbiased sample without reading the whole table. The same order
//! gives the row count: a shard that returned its whole quota has covered the share of its
//! token space up to its last row's token, and its rows are estimated as the quota over that
//! share (exact when the shard ran out of rows first). Distinct values are estimated from the
//! sample as PostgreSQL does (Haas and Stokes' estimator).

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{ColumnStats, DdlChange, Table, TableStats};
use crate::cluster::Cluster;
use crate::error::*;
use crate::exec::Row;
use crate::expr::Env;
use crate::session::Session;
use crate::types::{Datum, SqlType};

/// Rows ANALYZE looks at per table (PostgreSQL's default samples 30,000 too).
pub const SAMPLE_ROWS: usize = 30_000;
/// Histogram bounds kept per column.
const HISTOGRAM_BOUNDS: usize = 101;

/// Gathers and stores the statistics of one table.
pub(crate) async fn analyze_table<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    table: &Arc<Table>,
) -> Result<(), SqlError> {
    let env = Env::of(session);
    let per_shard = SAMPLE_ROWS.div_ceil(cluster.shard_count().max(1));
    let (rows, sample) = sample_table(cluster, table, &env, per_shard).await?;
    let columns = (0..table.columns.len())
        .map(|c| column_stats(table.columns[c].ty, rows, sample.iter().map(|r| &r[c])))
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

/// The table's estimated row count and a sample of its rows: up to `per_shard` from each
/// shard.
async fn sample_table<C: Cluster>(
    cluster: &C,
    table: &Arc<Table>,
    env: &Env,
    per_shard: usize,
) -> Result<(u64, Vec<Row>), SqlError> {
    let replies = crate::dist::fetch_sample(cluster, table, env, per_shard).await?;
    let mut shards = Vec::with_capacity(replies.len());
    for (shard, reply) in replies.into_iter().enumerate() {
        let covered = match reply.keys.last() {
            Some(key) if reply.rows.len() >= per_shard => {
                let token = crate::rowcodec::storage_key_token(key)
                    .ok_or_else(|| SqlError::new(INTERNAL_ERROR, "a sampled row has no token"))?;
                cluster.token_share_below(shard, token)
            }
            // The shard's rows ended before its quota: all of them were read.
            _ => 1.0,
        };
        shards.push((estimated_rows(reply.rows.len(), covered), reply.rows));
    }
    let rows: f64 = shards.iter().map(|(estimate, _)| estimate).sum();
    Ok((rows.round() as u64, pool_proportionally(shards)))
}

/// One sample of the table from each shard's (estimated rows, first rows read): each shard
/// contributes in proportion to its rows (a shard's first rows are a uniform sample of it),
/// as many as the shard that read the least of itself allows.
fn pool_proportionally(shards: Vec<(f64, Vec<Row>)>) -> Vec<Row> {
    let fraction = shards
        .iter()
        .filter(|(estimate, _)| *estimate > 0.0)
        .map(|(estimate, read)| read.len() as f64 / estimate)
        .fold(1.0, f64::min);
    let mut sample = Vec::new();
    for (estimate, mut read) in shards {
        let keep = ((estimate * fraction).round() as usize).min(read.len());
        read.truncate(keep);
        sample.extend(read);
    }
    sample
}

/// The rows of a shard whose first `read` rows in token order covered `covered` of its token
/// space.
fn estimated_rows(read: usize, covered: f64) -> f64 {
    if covered <= 0.0 {
        return read as f64;
    }
    (read as f64 / covered.min(1.0)).max(read as f64)
}

/// Distinct non-NULL values in a table of `total` non-NULL values, from a sample of `n` of
/// them with `distinct` distinct values, `once` of which were seen exactly once: PostgreSQL's
/// estimate (`compute_scalar_stats`, after Haas and Stokes): a sample with no repeated value
/// says every value is distinct; otherwise n·d / (n − f1 + f1·n/N), between d and N.
fn estimated_distinct(n: u64, distinct: u64, once: u64, total: f64) -> u64 {
    if n == 0 {
        return 0;
    }
    let total = total.max(n as f64);
    if once == distinct {
        return total.round() as u64;
    }
    let (n, d, f1) = (n as f64, distinct as f64, once as f64);
    let estimate = n * d / ((n - f1) + f1 * n / total);
    estimate.clamp(d, total).round() as u64
}

/// A column's statistics from its `values` in the sample of a table of `table_rows` rows.
fn column_stats<'a>(
    ty: SqlType,
    table_rows: u64,
    values: impl Iterator<Item = &'a Datum>,
) -> ColumnStats {
    let mut total = 0u64;
    let mut nulls = 0u64;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for v in values {
        total += 1;
        if v.is_null() {
            nulls += 1;
            continue;
        }
        let mut key = Vec::new();
        if crate::rowcodec::encode_key_datum(&mut key, v).is_ok() {
            keys.push(key);
        }
    }
    let null_frac = if total == 0 {
        0.0
    } else {
        nulls as f64 / total as f64
    };
    let mut seen: HashMap<&[u8], u64> = HashMap::with_capacity(keys.len());
    for key in &keys {
        *seen.entry(key.as_slice()).or_default() += 1;
    }
    let once = seen.values().filter(|&&n| n == 1).count() as u64;
    let distinct = estimated_distinct(
        keys.len() as u64,
        seen.len() as u64,
        once,
        table_rows as f64 * (1.0 - null_frac),
    );
    drop(seen);
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
        null_frac,
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

#[cfg(test)]
mod tests {
    use helios_engine::localrt::LocalRuntime;
    use helios_engine::memfs::MemFs;

    use super::*;
    use crate::testcluster::LocalCluster;

    #[test]
    fn distinct_values_are_estimated_as_postgresql_does() {
        // No value repeats in the sample: every value is taken to be distinct.
        assert_eq!(estimated_distinct(300, 300, 300, 100_000.0), 100_000);
        // The whole table sampled: the count is exact.
        assert_eq!(estimated_distinct(1000, 2, 0, 1000.0), 2);
        assert_eq!(estimated_distinct(1000, 600, 400, 1000.0), 600);
        // Few values, each seen often: no more than seen.
        assert_eq!(estimated_distinct(30_000, 10, 0, 1e6), 10);
        // Most seen once: 1000·600 / (500 + 500·1000/10⁶).
        assert_eq!(estimated_distinct(1000, 600, 500, 1e6), 1199);
        assert_eq!(estimated_distinct(0, 0, 0, 10.0), 0);
    }

    #[test]
    fn shards_contribute_to_the_sample_in_proportion_to_their_rows() {
        let rows = |n: usize, tag: i64| vec![vec![Datum::Int(tag)]; n];
        // A shard of 1000 rows read 100 of them (10 %); one of 300 read 100: it gives 30.
        let sample = pool_proportionally(vec![(1000.0, rows(100, 0)), (300.0, rows(100, 1))]);
        let from = |tag| sample.iter().filter(|r| r[0] == Datum::Int(tag)).count();
        assert_eq!((from(0), from(1)), (100, 30));
        // Shards read whole keep everything; an empty shard gives nothing.
        let sample = pool_proportionally(vec![
            (5.0, rows(5, 0)),
            (0.0, Vec::new()),
            (7.0, rows(7, 1)),
        ]);
        assert_eq!(sample.len(), 12);
    }

    #[test]
    fn a_partly_read_shard_is_scaled_by_the_share_it_covered() {
        assert_eq!(estimated_rows(100, 1.0), 100.0);
        assert_eq!(estimated_rows(100, 0.25), 400.0);
        // A share rounded above 1 or down to 0 never shrinks the count below what was read.
        assert_eq!(estimated_rows(100, 1.5), 100.0);
        assert_eq!(estimated_rows(100, 0.0), 100.0);
    }

    /// Samples far smaller than the table still estimate its rows and a unique column's
    /// distinct values closely, on one shard and on three (tokens dealt by remainder).
    #[test]
    fn small_samples_estimate_the_table() {
        for shards in [1, 3] {
            let rt = LocalRuntime::new(0);
            let rt2 = rt.clone();
            rt.block_on(async move {
                let cluster = LocalCluster::open(rt2, MemFs::new(), shards).await;
                let mut session = Session::new("u", "postgres");
                for sql in [
                    "CREATE TABLE t (id int PRIMARY KEY, k int)",
                    "INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 6000) g",
                ] {
                    let r = crate::execute_simple(&mut session, &cluster, sql).await;
                    assert!(r.iter().all(Result::is_ok), "{sql}: {r:?}");
                }
                let table = cluster
                    .catalog()
                    .table("postgres", None, "t")
                    .cloned()
                    .expect("table t");
                let env = Env::of(&session);
                let (rows, sample) = sample_table(&cluster, &table, &env, 400).await.unwrap();
                // Each shard's share of the sample follows its share of the rows.
                let pooled = sample.len();
                assert!(
                    pooled <= 400 * shards && pooled * 10 >= 400 * shards * 8,
                    "{pooled}"
                );
                let error = (rows as f64 - 6000.0).abs() / 6000.0;
                assert!(error < 0.15, "{shards} shards: {rows} rows estimated");
                let id = column_stats(SqlType::Int4, rows, sample.iter().map(|r| &r[0]));
                assert_eq!(id.distinct, rows, "a unique column");
                let k = column_stats(SqlType::Int4, rows, sample.iter().map(|r| &r[1]));
                assert_eq!(k.distinct, 10);
                // A quota larger than the table reads it all: exact.
                let (all, _) = sample_table(&cluster, &table, &env, 10_000).await.unwrap();
                assert_eq!(all, 6000);
            });
        }
    }
}
