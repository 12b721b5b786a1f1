//! Key → 64-bit token. The token orders keys inside a shard's keyspace and picks the virtual
//! partition (and so the shard) that owns a key; both must agree, so there is one function.

use xxhash_rust::xxh3::xxh3_64;

/// The part of a Redis key that is hashed: the first non-empty `{...}` section when there is
/// one (Redis Cluster's hash-tag rule), else the whole key. Keys sharing a tag share a shard.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(close) => &rest[..close],
    }
}

/// The routing token of a Redis key.
pub fn redis_token(key: &[u8]) -> u64 {
    xxh3_64(hash_tag(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis_cluster_rules() {
        assert_eq!(hash_tag(b"user:{42}:name"), b"42");
        assert_eq!(hash_tag(b"{}x"), b"{}x");
        assert_eq!(hash_tag(b"no-tag"), b"no-tag");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
        assert_eq!(hash_tag(b"{a}{b}"), b"a");
        assert_eq!(redis_token(b"x{t}y"), redis_token(b"{t}z"));
    }
}
