//! How the keyspace is stored in the shard's LSM tree, byte by byte (also in
//! `engine/FORMAT.md`, "Redis keyspace in the LSM tree").
//!
//! ```text
//! storage key   = db:u8  token:u64 big-endian  key bytes
//! storage value = type:u8  flags:u8  [expire_at_ms:u64 LE if flags & 1]  payload
//! ```
//!
//! Big-endian tokens make the tree's byte order the keyspace's scan order `(db, token, key)`.
//! The expiry travels with the value, so compaction can drop expired keys by reading only the
//! value's header ([`expiry_filter`]) and a restart can rebuild the key index from one scan.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Value, DB_COUNT};
use crate::lsm::ExpiryFilter;
use crate::token::redis_token;

/// `type` byte of a string.
pub const TYPE_STRING: u8 = 0;
const FLAG_EXPIRE: u8 = 1;
/// Bytes before the payload: type, flags, and the expiry when present.
pub const fn header_bytes(has_expire: bool) -> usize {
    if has_expire {
        10
    } else {
        2
    }
}

/// The storage key of `key` in `db`. Built as `BytesMut` and frozen, so that the clones the
/// memtable and its iterators make are reference-count increments (a `Bytes` made from a `Vec`
/// allocates a shared header at its first clone).
pub fn storage_key(db: u8, key: &[u8]) -> Bytes {
    assert!((db as usize) < DB_COUNT);
    let mut out = BytesMut::with_capacity(9 + key.len());
    out.put_u8(db);
    out.put_u64(redis_token(key));
    out.extend_from_slice(key);
    out.freeze()
}

/// (db, token, key) of a storage key; None when malformed.
pub fn parse_storage_key(skey: &[u8]) -> Option<(u8, u64, &[u8])> {
    let (&db, rest) = skey.split_first()?;
    if db as usize >= DB_COUNT || rest.len() < 8 {
        return None;
    }
    let token = u64::from_be_bytes(rest[..8].try_into().ok()?);
    Some((db, token, &rest[8..]))
}

/// The stored bytes of a string value, and the same value as a slice of them (so that the
/// keyspace and the memtable share one allocation).
pub fn encode_string(payload: &[u8], expire_at_ms: Option<u64>) -> (Bytes, Bytes) {
    let header = header_bytes(expire_at_ms.is_some());
    let mut out = BytesMut::with_capacity(header + payload.len());
    out.put_u8(TYPE_STRING);
    match expire_at_ms {
        Some(at) => {
            out.put_u8(FLAG_EXPIRE);
            out.put_u64_le(at);
        }
        None => out.put_u8(0),
    }
    out.extend_from_slice(payload);
    let stored = out.freeze();
    let value = stored.slice(header..);
    (stored, value)
}

/// A decoded storage value.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub value: Value,
    pub expire_at_ms: Option<u64>,
}

/// Decodes a storage value; the payload is a slice of `stored`.
pub fn decode(stored: &Bytes) -> Result<Stored, String> {
    let (expire_at_ms, header) = decode_header(stored)?;
    match stored[0] {
        TYPE_STRING => Ok(Stored {
            value: Value::Str(stored.slice(header..)),
            expire_at_ms,
        }),
        other => Err(format!("unknown value type {other}")),
    }
}

/// The expiry and the header length of a storage value.
pub fn decode_header(stored: &[u8]) -> Result<(Option<u64>, usize), String> {
    match stored {
        [_, 0, ..] => Ok((None, header_bytes(false))),
        [_, FLAG_EXPIRE, rest @ ..] if rest.len() >= 8 => {
            let at = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            Ok((Some(at), header_bytes(true)))
        }
        _ => Err(format!("malformed value header ({} bytes)", stored.len())),
    }
}

/// The compaction filter of a keyspace tree: a value whose expiry has passed at `now_ms()` is
/// dropped (made a tombstone) by compaction. Only Redis storage keys (first byte a database
/// number) carry this header; the tree also holds other keyspaces (SQL rows from 0x80 on)
/// whose values must never be read as one.
pub fn expiry_filter(now_ms: impl Fn() -> u64 + 'static) -> ExpiryFilter {
    std::rc::Rc::new(move |key: &[u8], stored: &[u8]| {
        is_redis_storage_key(key)
            && matches!(decode_header(stored), Ok((Some(at), _)) if now_ms() > at)
    })
}

/// Whether a tree key belongs to the Redis keyspace (its first byte is a database number);
/// keys of the other keyspaces sharing the tree start at 0x80.
pub fn is_redis_storage_key(skey: &[u8]) -> bool {
    skey.first().is_some_and(|&db| (db as usize) < DB_COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_sort_like_the_keyspace() {
        let mut keys: Vec<(u8, &[u8])> = vec![(1, b"a"), (0, b"zz"), (0, b"a"), (0, b"{a}b")];
        let mut encoded: Vec<Bytes> = keys.iter().map(|(db, k)| storage_key(*db, k)).collect();
        encoded.sort();
        keys.sort_by_key(|(db, k)| (*db, redis_token(k), k.to_vec()));
        let parsed: Vec<(u8, &[u8])> = encoded
            .iter()
            .map(|s| {
                let (db, _, k) = parse_storage_key(s).unwrap();
                (db, k)
            })
            .collect();
        assert_eq!(parsed, keys);
        assert!(parse_storage_key(&[16, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(parse_storage_key(&[0, 1]).is_none());
    }

    #[test]
    fn expiry_filter_ignores_keys_of_other_keyspaces() {
        let filter = expiry_filter(|| u64::MAX);
        let (expired, _) = encode_string(b"v", Some(1));
        assert!(filter(&storage_key(0, b"k"), &expired));
        // A SQL row key (0x80 ...) whose value happens to look like an expiring header.
        assert!(!filter(b"\x80\0\0\0\x01rowkey", &expired));
        assert!(!filter(b"", &expired));
    }

    #[test]
    fn values_roundtrip_and_expiry_filter_reads_the_header() {
        let (stored, value) = encode_string(b"hello", Some(77));
        assert_eq!(&value[..], b"hello");
        let decoded = decode(&stored).unwrap();
        assert_eq!(decoded.value, Value::Str(Bytes::from_static(b"hello")));
        assert_eq!(decoded.expire_at_ms, Some(77));
        let (forever, _) = encode_string(b"", None);
        assert_eq!(decode(&forever).unwrap().expire_at_ms, None);
        assert!(decode(&Bytes::from_static(&[0, 1, 2])).is_err());
        assert!(decode(&Bytes::from_static(&[9, 0])).is_err());
        let filter = expiry_filter(|| 100);
        let key = storage_key(0, b"k");
        assert!(filter(&key, &stored));
        assert!(!filter(&key, &forever));
        let (later, _) = encode_string(b"x", Some(100));
        assert!(!filter(&key, &later));
    }
}
