//! What the engines are asked to do (db_bench semantics): the workloads, the 16-byte keys and
//! the half-compressible values. Everything derives from `--seed` and the workload, so every
//! engine gets the very same operations whichever other workloads run.

use clap::ValueEnum;

use crate::keys::Rng;

pub const KEY_BYTES: usize = 16;
/// Size of the value pool that values are cut from (db_bench: 1 MB).
const VALUE_POOL_BYTES: usize = 1 << 20;
/// Random bytes per `COMPRESSIBLE_PIECE_BYTES` of value; the rest repeats them, so lz4 halves
/// a value as db_bench's `--compression_ratio=0.5` does.
const COMPRESSIBLE_PIECE_BYTES: usize = 100;
const COMPRESSION_RATIO: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Keys 0..N in order into an empty database (its own fresh directory).
    Fillseq,
    /// The N keys in a random order (a permutation) into an empty database.
    Fillrandom,
    /// N puts of uniformly random existing keys.
    Overwrite,
    /// R gets of uniformly random existing keys.
    Readrandom,
    /// One scan over every entry.
    Readseq,
    /// R seeks to uniformly random existing keys, each reading `--scan-len` entries.
    Seekrandom,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Fillseq,
        Workload::Fillrandom,
        Workload::Overwrite,
        Workload::Readrandom,
        Workload::Readseq,
        Workload::Seekrandom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Fillseq => "fillseq",
            Workload::Fillrandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::Readrandom => "readrandom",
            Workload::Readseq => "readseq",
            Workload::Seekrandom => "seekrandom",
        }
    }

    pub fn writes(self) -> bool {
        matches!(
            self,
            Workload::Fillseq | Workload::Fillrandom | Workload::Overwrite
        )
    }

    /// Seeds the workload's own generator: the same ops whatever else runs.
    pub fn seed(self, seed: u64) -> u64 {
        seed ^ (self as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Key `index`: 8 bytes big-endian index, then 8 bytes derived from it. Distinct indexes give
/// distinct keys, and key order is index order.
pub fn key(index: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    key[..8].copy_from_slice(&index.to_be_bytes());
    key[8..].copy_from_slice(&filler(index).to_le_bytes());
    key
}

/// splitmix64's finalizer: cheap, and spreads the filler bytes.
fn filler(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The indexes 0..n in a random order (Fisher-Yates).
pub fn permutation(n: u64, rng: &mut Rng) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// db_bench's value generator: a pool of half-compressible bytes; each value is the next
/// `value_bytes` of the pool (wrapping), so consecutive values differ and cost nothing to make.
pub struct Values {
    pool: Vec<u8>,
    value_bytes: usize,
    position: usize,
}

impl Values {
    pub fn new(seed: u64, value_bytes: usize) -> Values {
        assert!(value_bytes > 0);
        let mut rng = Rng::new(seed);
        let pool_bytes = VALUE_POOL_BYTES.max(2 * value_bytes);
        let mut pool = Vec::with_capacity(pool_bytes + COMPRESSIBLE_PIECE_BYTES);
        let random_bytes = (COMPRESSIBLE_PIECE_BYTES as f64 * COMPRESSION_RATIO) as usize;
        while pool.len() < pool_bytes {
            // Printable ASCII, as db_bench; then the random part repeated to fill the piece.
            let piece_start = pool.len();
            for _ in 0..random_bytes {
                pool.push(b' ' + rng.below(95) as u8);
            }
            while pool.len() - piece_start < COMPRESSIBLE_PIECE_BYTES {
                pool.push(pool[piece_start + (pool.len() - piece_start) % random_bytes]);
            }
        }
        pool.truncate(pool_bytes);
        Values {
            pool,
            value_bytes,
            position: 0,
        }
    }

    pub fn next_value(&mut self) -> &[u8] {
        if self.position + self.value_bytes > self.pool.len() {
            self.position = 0;
        }
        let start = self.position;
        self.position += self.value_bytes;
        &self.pool[start..start + self.value_bytes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_index_order() {
        let mut previous = key(0);
        for index in [1, 2, 255, 256, 65_535, 1 << 32, u64::MAX] {
            let next = key(index);
            assert!(previous < next, "{index}");
            previous = next;
        }
    }

    #[test]
    fn permutation_holds_every_index_once() {
        let mut rng = Rng::new(7);
        let mut order = permutation(10_000, &mut rng);
        assert_ne!(order[..10], (0..10).collect::<Vec<u64>>()[..]);
        order.sort_unstable();
        assert!(order.iter().enumerate().all(|(i, &v)| i as u64 == v));
    }

    #[test]
    fn values_are_deterministic_and_half_repeated() {
        let mut a = Values::new(3, 1024);
        let mut b = Values::new(3, 1024);
        for _ in 0..2000 {
            assert_eq!(a.next_value(), b.next_value());
        }
        let value = Values::new(3, 100).next_value().to_vec();
        assert_eq!(value[..50], value[50..]);
        assert!(value.iter().all(|b| (b' '..=b'~').contains(b)));
    }
}
