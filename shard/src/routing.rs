//! Key → shard routing: token (engine::token) → one of [`PARTITION_COUNT`] virtual partitions
//! → shard, by a partition map recorded in the data dir.
//!
//! Partitions are contiguous token ranges (`partition = token >> 54`), so a shard's keys in
//! token order are whole partitions, and a partition can later move between shards as a unit.

use std::io::Write;
use std::path::{Path, PathBuf};

pub const PARTITION_COUNT: usize = 1024;
const PARTITION_BITS: u32 = PARTITION_COUNT.trailing_zeros();
const MAP_FILE: &str = "partitions.map";
const MAP_HEADER: &str = "helios partition map v1";

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed partition map: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("the data dir {dir} holds {recorded} shards but --shards {requested} was given")]
    ShardCountMismatch {
        dir: PathBuf,
        recorded: usize,
        requested: usize,
    },
}

pub fn partition_of(token: u64) -> usize {
    let partition = (token >> (64 - PARTITION_BITS)) as usize;
    debug_assert_eq!(
        partition,
        ((u128::from(token) * PARTITION_COUNT as u128) >> 64) as usize
    );
    partition
}

/// The first token of a partition (tokens of partition p are [first_token(p), first_token(p+1))).
pub fn first_token(partition: usize) -> u64 {
    assert!(partition < PARTITION_COUNT);
    (partition as u64) << (64 - PARTITION_BITS)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMap {
    shard_count: usize,
    owners: Vec<u16>,
}

impl PartitionMap {
    /// Partitions dealt round-robin over `shard_count` shards.
    pub fn balanced(shard_count: usize) -> PartitionMap {
        assert!((1..=PARTITION_COUNT).contains(&shard_count));
        let owners = (0..PARTITION_COUNT)
            .map(|p| (p % shard_count) as u16)
            .collect();
        PartitionMap {
            shard_count,
            owners,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    pub fn shard_of_token(&self, token: u64) -> usize {
        self.owners[partition_of(token)] as usize
    }

    /// The fraction of `shard`'s token space at or below `token`: how much of the shard a
    /// scan in token order has covered when it reaches `token` (ANALYZE scales a sample's
    /// row count by it). 0.0 for a shard that owns no partition.
    pub fn token_share_below(&self, shard: usize, token: u64) -> f64 {
        let owned = self.partitions_of(shard).count();
        if owned == 0 {
            return 0.0;
        }
        let at = partition_of(token);
        let before = self.partitions_of(shard).take_while(|&p| p < at).count() as f64;
        let within = if self.owners[at] as usize == shard {
            // Tokens of one partition share its top bits; the rest is the position inside.
            let offset = token - first_token(at);
            (offset as f64 + 1.0) / (1u64 << (64 - PARTITION_BITS)) as f64
        } else {
            0.0
        };
        (before + within) / owned as f64
    }

    /// Partitions owned by `shard`, in token order.
    pub fn partitions_of(&self, shard: usize) -> impl Iterator<Item = usize> + '_ {
        (0..PARTITION_COUNT).filter(move |&p| self.owners[p] as usize == shard)
    }

    /// Reads the map recorded in `dir`, or records a balanced one for `requested` shards.
    /// `requested = None` adopts whatever the data dir records (or `default_count` when new).
    pub fn load_or_create(
        dir: &Path,
        requested: Option<usize>,
        default_count: usize,
    ) -> Result<PartitionMap, RoutingError> {
        let path = dir.join(MAP_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let map = Self::parse(&text).map_err(|reason| RoutingError::Malformed {
                    path: path.clone(),
                    reason,
                })?;
                match requested {
                    Some(requested) if requested != map.shard_count => {
                        Err(RoutingError::ShardCountMismatch {
                            dir: dir.to_path_buf(),
                            recorded: map.shard_count,
                            requested,
                        })
                    }
                    _ => Ok(map),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let map = PartitionMap::balanced(requested.unwrap_or(default_count));
                map.store(dir)
                    .map_err(|source| RoutingError::Io { path, source })?;
                Ok(map)
            }
            Err(source) => Err(RoutingError::Io { path, source }),
        }
    }

    fn render(&self) -> String {
        let owners: Vec<String> = self.owners.iter().map(|o| o.to_string()).collect();
        let body = format!(
            "{MAP_HEADER}\nshards {}\npartitions {}\n{}\n",
            self.shard_count,
            PARTITION_COUNT,
            owners.join(" ")
        );
        format!("{body}crc32c {:08x}\n", crc32c::crc32c(body.as_bytes()))
    }

    fn parse(text: &str) -> Result<PartitionMap, String> {
        let (body, crc_line) = text.trim_end().rsplit_once('\n').ok_or("too short")?;
        let body = format!("{body}\n");
        let crc = crc_line
            .strip_prefix("crc32c ")
            .ok_or("missing checksum line")?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad checksum value")?;
        if crc != crc32c::crc32c(body.as_bytes()) {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAP_HEADER) {
            return Err("unknown header".into());
        }
        let field = |line: Option<&str>, name: &str| -> Result<usize, String> {
            line.and_then(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .ok_or(format!("bad '{name}' line"))
        };
        let shard_count = field(lines.next(), "shards ")?;
        let partitions = field(lines.next(), "partitions ")?;
        if partitions != PARTITION_COUNT || shard_count == 0 || shard_count > PARTITION_COUNT {
            return Err(format!(
                "unsupported layout: {shard_count} shards, {partitions} partitions"
            ));
        }
        let owners: Vec<u16> = lines
            .next()
            .ok_or("missing owners")?
            .split(' ')
            .map(|o| o.parse::<u16>().map_err(|_| format!("bad owner '{o}'")))
            .collect::<Result<_, _>>()?;
        if owners.len() != PARTITION_COUNT || owners.iter().any(|&o| o as usize >= shard_count) {
            return Err("owner list does not match the shard count".into());
        }
        Ok(PartitionMap {
            shard_count,
            owners,
        })
    }

    /// Writes the map atomically: temp file, fsync, rename, fsync the directory.
    pub fn store(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{MAP_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(self.render().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(MAP_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_share_counts_only_the_shards_own_partitions() {
        let map = PartitionMap::balanced(2);
        // Shard 1 owns the odd partitions: at the end of partition 1 it has covered one of
        // its 512, and partition 2 (shard 0's) adds nothing.
        let end_of_1 = first_token(2) - 1;
        assert_eq!(map.token_share_below(1, end_of_1), 1.0 / 512.0);
        assert_eq!(map.token_share_below(1, first_token(2) + 5), 1.0 / 512.0);
        let half = map.token_share_below(0, first_token(0) + (first_token(1) / 2) - 1);
        assert!((half - 0.5 / 512.0).abs() < 1e-12, "{half}");
        assert_eq!(map.token_share_below(0, u64::MAX), 1.0);
        assert_eq!(map.token_share_below(1, u64::MAX), 1.0);
        let one = PartitionMap::balanced(1);
        assert!((one.token_share_below(0, u64::MAX / 4) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn partitions_are_contiguous_token_ranges() {
        assert_eq!(partition_of(0), 0);
        assert_eq!(partition_of(u64::MAX), PARTITION_COUNT - 1);
        for p in [0, 1, 511, 1023] {
            assert_eq!(partition_of(first_token(p)), p);
            if p > 0 {
                assert_eq!(partition_of(first_token(p) - 1), p - 1);
            }
        }
    }

    #[test]
    fn map_round_trips_and_refuses_another_shard_count() {
        let dir = std::env::temp_dir().join(format!("helios-routing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let created = PartitionMap::load_or_create(&dir, Some(3), 2).unwrap();
        assert_eq!(created.shard_count(), 3);
        assert_eq!(
            PartitionMap::load_or_create(&dir, None, 8).unwrap(),
            created
        );
        assert_eq!(
            PartitionMap::load_or_create(&dir, Some(3), 8).unwrap(),
            created
        );
        let error = PartitionMap::load_or_create(&dir, Some(2), 8).unwrap_err();
        assert!(
            matches!(
                error,
                RoutingError::ShardCountMismatch {
                    recorded: 3,
                    requested: 2,
                    ..
                }
            ),
            "{error}"
        );
        std::fs::write(
            dir.join(MAP_FILE),
            created.render().replace("shards 3", "shards 2"),
        )
        .unwrap();
        assert!(matches!(
            PartitionMap::load_or_create(&dir, None, 8),
            Err(RoutingError::Malformed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn balanced_map_spreads_partitions_evenly() {
        let map = PartitionMap::balanced(3);
        let counts: Vec<usize> = (0..3).map(|s| map.partitions_of(s).count()).collect();
        assert!(counts.iter().all(|&c| c == 341 || c == 342), "{counts:?}");
    }
}
