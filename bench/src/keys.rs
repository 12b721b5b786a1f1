//! Key choice: a small deterministic PRNG and the key distributions (`uniform`, `zipfian[:theta]`,
//! `sequential`, `latest`). Every connection owns its own generator, seeded from `--seed` and its
//! connection index, so the same seed gives the same per-connection key sequence on every run.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// YCSB's default skew.
pub const ZIPFIAN_THETA_DEFAULT: f64 = 0.99;

/// xoshiro256** seeded through splitmix64: tiny, fast, reproducible across platforms.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)`; `n > 0`. Multiply-shift: no modulo bias worth measuring at our sizes.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Uniform,
    /// Key 0 is the most popular, key 1 the next, and so on (not scrambled: the server hashes
    /// keys to shards anyway, so hot keys do not cluster on one shard because of their rank).
    Zipfian {
        theta: f64,
    },
    /// Each connection walks the keyspace in order from its own starting point
    /// (`connection_index * keyspace / connections`), wrapping at the end.
    Sequential,
    /// Zipfian over recency: the newest key (highest id, including keys inserted by the
    /// workload) is the most popular.
    Latest {
        theta: f64,
    },
}

impl FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Distribution, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let theta = match arg {
            None => ZIPFIAN_THETA_DEFAULT,
            Some(a) => {
                let t: f64 = a.parse().map_err(|_| format!("bad theta {a:?}"))?;
                if t.is_nan() || t <= 0.0 || t >= 1.0 {
                    return Err(format!("theta must be in (0, 1), got {t}"));
                }
                t
            }
        };
        match (name, arg) {
            ("uniform", None) => Ok(Distribution::Uniform),
            ("sequential", None) => Ok(Distribution::Sequential),
            ("zipfian", _) => Ok(Distribution::Zipfian { theta }),
            ("latest", _) => Ok(Distribution::Latest { theta }),
            _ => Err(format!(
                "unknown distribution {s:?} (uniform, zipfian[:theta], sequential, latest[:theta])"
            )),
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Sequential => write!(f, "sequential"),
            Distribution::Zipfian { theta } => write!(f, "zipfian:{theta}"),
            Distribution::Latest { theta } => write!(f, "latest:{theta}"),
        }
    }
}

/// YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic
/// databases"): O(n) set-up for zeta(n), O(1) per sample. Built once per run and shared.
#[derive(Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Zipf {
        assert!(n > 0 && theta > 0.0 && theta < 1.0);
        let zeta = |count: u64| {
            (1..=count)
                .map(|i| 1.0 / (i as f64).powf(theta))
                .sum::<f64>()
        };
        let zeta2 = zeta(2.min(n));
        let zetan = zeta(n);
        let eta = if n < 2 {
            1.0
        } else {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        };
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// A rank in `[0, n)`, 0 the most popular.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// State shared by all connections of one run: the Zipf table and the count of keys that
/// exist (the keyspace plus keys inserted by `insert` operations).
#[derive(Debug)]
pub struct KeySpace {
    pub keyspace: u64,
    pub distribution: Distribution,
    zipf: Option<Zipf>,
    key_count: AtomicU64,
}

impl KeySpace {
    pub fn new(keyspace: u64, distribution: Distribution) -> Arc<KeySpace> {
        assert!(keyspace > 0);
        let zipf = match distribution {
            Distribution::Zipfian { theta } | Distribution::Latest { theta } => {
                Some(Zipf::new(keyspace, theta))
            }
            _ => None,
        };
        Arc::new(KeySpace {
            keyspace,
            distribution,
            zipf,
            key_count: AtomicU64::new(keyspace),
        })
    }

    /// Claims a fresh key id past everything that exists (for inserts).
    pub fn insert_key(&self) -> u64 {
        self.key_count.fetch_add(1, Ordering::Relaxed)
    }

    pub fn key_count(&self) -> u64 {
        self.key_count.load(Ordering::Relaxed)
    }
}

/// One connection's key generator.
#[derive(Debug)]
pub struct KeyGen {
    space: Arc<KeySpace>,
    rng: Rng,
    next_sequential: u64,
}

impl KeyGen {
    pub fn new(space: Arc<KeySpace>, seed: u64, connection: u64, connections: u64) -> KeyGen {
        assert!(connection < connections.max(1));
        let start = (u128::from(connection) * u128::from(space.keyspace)
            / u128::from(connections.max(1))) as u64;
        KeyGen {
            rng: Rng::new(seed ^ connection.wrapping_mul(0xA076_1D64_78BD_642F)),
            space,
            next_sequential: start,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    pub fn space(&self) -> &KeySpace {
        &self.space
    }

    pub fn next_key(&mut self) -> u64 {
        let keyspace = self.space.keyspace;
        match self.space.distribution {
            Distribution::Uniform => self.rng.below(keyspace),
            Distribution::Sequential => {
                let key = self.next_sequential;
                self.next_sequential = (key + 1) % keyspace;
                key
            }
            Distribution::Zipfian { .. } => zipf(&self.space).sample(&mut self.rng),
            Distribution::Latest { .. } => {
                let newest = self.space.key_count() - 1;
                let back = zipf(&self.space).sample(&mut self.rng);
                newest - back.min(newest)
            }
        }
    }
}

fn zipf(space: &KeySpace) -> &Zipf {
    space
        .zipf
        .as_ref()
        .expect("zipf table built for zipfian/latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(dist: Distribution, n: u64, samples: usize) -> Vec<u64> {
        let mut gen = KeyGen::new(KeySpace::new(n, dist), 7, 0, 1);
        let mut hits = vec![0u64; n as usize];
        for _ in 0..samples {
            hits[gen.next_key() as usize] += 1;
        }
        hits
    }

    #[test]
    fn zipfian_is_skewed_toward_key_zero() {
        let (n, samples) = (1000u64, 100_000usize);
        let hits = histogram(Distribution::Zipfian { theta: 0.99 }, n, samples);
        let uniform_share = samples as u64 / n;
        let top = *hits.iter().max().unwrap();
        assert_eq!(hits[0], top, "key 0 is the most popular");
        assert!(
            top > 50 * uniform_share,
            "top {top} vs uniform {uniform_share}"
        );
        // And uniform really is flat.
        let flat = histogram(Distribution::Uniform, n, samples);
        assert!(*flat.iter().max().unwrap() < 3 * uniform_share);
    }

    #[test]
    fn same_seed_same_sequence_other_seed_differs() {
        let space = KeySpace::new(10_000, Distribution::Zipfian { theta: 0.9 });
        let draw = |seed: u64, conn: u64| {
            let mut gen = KeyGen::new(space.clone(), seed, conn, 4);
            (0..1000).map(|_| gen.next_key()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 2), draw(1, 2));
        assert_ne!(draw(1, 2), draw(2, 2));
        assert_ne!(draw(1, 2), draw(1, 3));
    }

    #[test]
    fn sequential_walks_from_connection_offset_and_wraps() {
        let space = KeySpace::new(10, Distribution::Sequential);
        let mut gen = KeyGen::new(space, 0, 1, 2);
        let keys: Vec<u64> = (0..7).map(|_| gen.next_key()).collect();
        assert_eq!(keys, vec![5, 6, 7, 8, 9, 0, 1]);
    }

    #[test]
    fn latest_favours_newest_and_follows_inserts() {
        let space = KeySpace::new(1000, Distribution::Latest { theta: 0.99 });
        let mut gen = KeyGen::new(space.clone(), 3, 0, 1);
        let mut newest_hits = 0;
        for _ in 0..10_000 {
            let k = gen.next_key();
            assert!(k < 1000);
            newest_hits += u32::from(k == 999);
        }
        assert!(newest_hits > 1000, "newest key got {newest_hits}");
        assert_eq!(space.insert_key(), 1000);
        let mut saw_inserted = false;
        for _ in 0..1000 {
            let k = gen.next_key();
            assert!(k <= 1000);
            saw_inserted |= k == 1000;
        }
        assert!(saw_inserted);
    }

    #[test]
    fn distribution_parsing() {
        assert_eq!("uniform".parse(), Ok(Distribution::Uniform));
        assert_eq!("zipfian".parse(), Ok(Distribution::Zipfian { theta: 0.99 }));
        assert_eq!(
            "zipfian:0.5".parse(),
            Ok(Distribution::Zipfian { theta: 0.5 })
        );
        assert!("zipfian:1.5".parse::<Distribution>().is_err());
        assert!("gaussian".parse::<Distribution>().is_err());
    }
}
