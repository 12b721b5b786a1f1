//! The file's bloom filter over user keys: one bit array for the whole file ("full filter"), so a
//! point lookup costs one hash and `k` bit tests, with no I/O (the filter is loaded at open).
//!
//! Hashing: `h = xxh3_64(user_key)`, `h1 = h & 0xffff_ffff`, `h2 = h >> 32`; probe `i` (0-based)
//! tests bit `(h1 + i * h2) mod m` (computed in u64) — Kirsch–Mitzenmacher double hashing.
//! Block layout: the bit array (`m / 8` bytes, bit `b` is byte `b / 8`, bit `b % 8`), then the
//! probe count `k:u8`.

use xxhash_rust::xxh3::xxh3_64;

/// Smallest bit array, so that tiny files do not get a useless filter.
const BLOOM_BITS_MIN: u64 = 64;
/// Probe counts accepted (more gains nothing at any sane bits per key).
const BLOOM_PROBES_MAX: u8 = 30;

pub fn hash(user_key: &[u8]) -> u64 {
    xxh3_64(user_key)
}

/// Probe count for `bits_per_key`: ≈ bits × ln 2, which minimises the false-positive rate.
fn probes(bits_per_key: u32) -> u8 {
    let k = (f64::from(bits_per_key) * 0.69).round() as u64;
    k.clamp(1, u64::from(BLOOM_PROBES_MAX)) as u8
}

/// Builds the filter block from the hashes of the file's distinct user keys.
pub fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    assert!(bits_per_key >= 1);
    let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(BLOOM_BITS_MIN);
    let bytes = bits.div_ceil(8);
    let bits = bytes * 8;
    let k = probes(bits_per_key);
    let mut out = vec![0u8; usize::try_from(bytes).expect("filter fits memory")];
    for &h in hashes {
        for bit in probe_bits(h, bits, k) {
            out[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    out.push(k);
    out
}

fn probe_bits(h: u64, bits: u64, k: u8) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, h >> 32);
    (0..u64::from(k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// A decoded filter.
#[derive(Clone, Debug)]
pub struct Bloom {
    bits: Vec<u8>,
    probes: u8,
}

impl Bloom {
    pub fn decode(mut block: Vec<u8>) -> Result<Bloom, &'static str> {
        let probes = block.pop().ok_or("empty bloom block")?;
        if block.is_empty() {
            return Err("bloom block without a bit array");
        }
        if probes == 0 || probes > BLOOM_PROBES_MAX {
            return Err("bloom probe count out of range");
        }
        Ok(Bloom {
            bits: block,
            probes,
        })
    }

    pub fn may_contain_hash(&self, h: u64) -> bool {
        let bits = self.bits.len() as u64 * 8;
        probe_bits(h, bits, self.probes)
            .all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(hash(user_key))
    }

    pub fn bytes(&self) -> usize {
        self.bits.len() + 1
    }
}
