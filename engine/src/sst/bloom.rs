//! The file's bloom filter over user keys: one filter for the whole file ("full filter"), so a
//! point lookup costs one hash and `k` bit tests, with no I/O (the filter is loaded at open).
//!
//! Two layouts, told apart by the block's last byte (see `engine/FORMAT.md`, "Bloom block"):
//!
//! - **Blocked** (written now; last byte `0x80 | k`): the bit array is cut into 512-bit
//!   (64-byte, one cache line) blocks. `h = xxh3_64(user_key)`; the block is
//!   `((h >> 32) × blocks) >> 32`; with `x = h mod 2^32`, probe `i` tests bit `x_i >> 23` of
//!   that block, where `x_0 = x` and `x_{i+1} = x_i × 0x9E3779B9 mod 2^32`. A lookup reads
//!   one cache line and divides nothing; a file's filter is far larger than the CPU's caches,
//!   so the `k` lines of the full layout were `k` memory stalls for every key the file holds.
//!   It costs a little accuracy: ~1.2 % false positives at 10 bits per key, against ~0.8 %.
//! - **Full** (files written before; last byte `k`): `h1 = h & 0xffff_ffff`, `h2 = h >> 32`;
//!   probe `i` (0-based) tests bit `(h1 + i * h2) mod m` (computed in u64) —
//!   Kirsch–Mitzenmacher double hashing over the whole array.
//!
//! In both, bit `b` of an array is byte `b / 8`, bit `b % 8`.

use xxhash_rust::xxh3::xxh3_64;

/// Smallest bit array, so that tiny files do not get a useless filter.
const BLOOM_BITS_MIN: u64 = 64;
/// Probe counts accepted (more gains nothing at any sane bits per key).
const BLOOM_PROBES_MAX: u8 = 30;
/// Bytes of one block of the blocked layout: a cache line.
const BLOOM_BLOCK_BYTES: usize = 64;
/// The trailing byte's flag for the blocked layout (probe counts stay below it).
const BLOOM_BLOCKED_FLAG: u8 = 0x80;
/// The multiplier that derives each probe of the blocked layout from the previous one.
const BLOOM_PROBE_MULTIPLIER: u32 = 0x9E37_79B9;

const _: () = assert!(BLOOM_PROBES_MAX < BLOOM_BLOCKED_FLAG);

pub fn hash(user_key: &[u8]) -> u64 {
    xxh3_64(user_key)
}

/// Probe count for `bits_per_key`: ≈ bits × ln 2, which minimises the false-positive rate.
fn probes(bits_per_key: u32) -> u8 {
    let k = (f64::from(bits_per_key) * 0.69).round() as u64;
    k.clamp(1, u64::from(BLOOM_PROBES_MAX)) as u8
}

/// Builds the filter block (blocked layout) from the hashes of the file's distinct user keys.
pub fn build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    assert!(bits_per_key >= 1);
    let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(BLOOM_BITS_MIN);
    let blocks = bits.div_ceil(BLOOM_BLOCK_BYTES as u64 * 8);
    let k = probes(bits_per_key);
    let bytes = usize::try_from(blocks).expect("filter fits memory") * BLOOM_BLOCK_BYTES;
    let mut out = vec![0u8; bytes];
    for &h in hashes {
        let block = block_of(h, blocks);
        for bit in bits_in_block(h, k) {
            out[block + bit / 8] |= 1 << (bit % 8);
        }
    }
    out.push(BLOOM_BLOCKED_FLAG | k);
    out
}

/// The byte offset of `h`'s block among `blocks` (a multiply-shift, not a division).
fn block_of(h: u64, blocks: u64) -> usize {
    (((h >> 32) * blocks) >> 32) as usize * BLOOM_BLOCK_BYTES
}

/// The bits (0..512) that the blocked layout probes for `h` within its block.
fn bits_in_block(h: u64, k: u8) -> impl Iterator<Item = usize> {
    let mut x = h as u32;
    (0..k).map(move |_| {
        let bit = (x >> 23) as usize;
        x = x.wrapping_mul(BLOOM_PROBE_MULTIPLIER);
        bit
    })
}

/// The full layout's probes (files written before the blocked layout).
fn probe_bits(h: u64, bits: u64, k: u8) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, h >> 32);
    (0..u64::from(k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// A decoded filter.
#[derive(Clone, Debug)]
pub struct Bloom {
    bits: Vec<u8>,
    probes: u8,
    /// The blocked layout (else the full one).
    blocked: bool,
}

impl Bloom {
    pub fn decode(mut block: Vec<u8>) -> Result<Bloom, &'static str> {
        let last = block.pop().ok_or("empty bloom block")?;
        if block.is_empty() {
            return Err("bloom block without a bit array");
        }
        let blocked = last & BLOOM_BLOCKED_FLAG != 0;
        let probes = last & !BLOOM_BLOCKED_FLAG;
        if probes == 0 || probes > BLOOM_PROBES_MAX {
            return Err("bloom probe count out of range");
        }
        if blocked && !block.len().is_multiple_of(BLOOM_BLOCK_BYTES) {
            return Err("blocked bloom array not a whole number of blocks");
        }
        Ok(Bloom {
            bits: block,
            probes,
            blocked,
        })
    }

    pub fn may_contain_hash(&self, h: u64) -> bool {
        if self.blocked {
            let blocks = (self.bits.len() / BLOOM_BLOCK_BYTES) as u64;
            let block = &self.bits[block_of(h, blocks)..][..BLOOM_BLOCK_BYTES];
            return bits_in_block(h, self.probes).all(|bit| block[bit / 8] & (1 << (bit % 8)) != 0);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The full layout as written before the blocked one, for the reader's sake.
    fn build_full(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
        let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(BLOOM_BITS_MIN);
        let bytes = bits.div_ceil(8);
        let k = probes(bits_per_key);
        let mut out = vec![0u8; bytes as usize];
        for &h in hashes {
            for bit in probe_bits(h, bytes * 8, k) {
                out[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        out.push(k);
        out
    }

    fn false_positive_rate(bloom: &Bloom) -> f64 {
        let probes = 200_000u64;
        let hits = (0..probes)
            .filter(|i| bloom.may_contain(format!("absent{i}").as_bytes()))
            .count();
        hits as f64 / probes as f64
    }

    #[test]
    fn both_layouts_hold_every_key_and_reject_most_others() {
        let hashes: Vec<u64> = (0..20_000)
            .map(|i| hash(format!("key{i}").as_bytes()))
            .collect();
        for (layout, block) in [
            ("blocked", build(&hashes, 10)),
            ("full", build_full(&hashes, 10)),
        ] {
            let bloom = Bloom::decode(block).unwrap();
            assert_eq!(bloom.blocked, layout == "blocked");
            assert!(
                hashes.iter().all(|&h| bloom.may_contain_hash(h)),
                "{layout}"
            );
            let rate = false_positive_rate(&bloom);
            assert!(rate < 0.016, "{layout}: false positive rate {rate}");
        }
    }

    #[test]
    fn tiny_filters_are_one_block() {
        let hashes = [hash(b"only")];
        let block = build(&hashes, 10);
        assert_eq!(block.len(), BLOOM_BLOCK_BYTES + 1);
        let bloom = Bloom::decode(block).unwrap();
        assert!(bloom.may_contain(b"only"));
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        assert!(Bloom::decode(vec![]).is_err());
        assert!(Bloom::decode(vec![7]).is_err());
        assert!(Bloom::decode(vec![0xff, 0]).is_err());
        assert!(Bloom::decode(vec![0xff, BLOOM_PROBES_MAX + 1]).is_err());
        // Blocked, but not a whole number of 64-byte blocks.
        assert!(Bloom::decode(vec![0xff; 65]).is_err());
        assert!(Bloom::decode(vec![0xff; 64].into_iter().chain([0x87]).collect()).is_ok());
    }
}
