//! How the keyspace is stored in the shard's LSM tree, byte by byte (also in
//! `engine/FORMAT.md`, "Redis keyspace in the LSM tree").
//!
//! ```text
//! storage key   = db:u8  token:u64 big-endian  key bytes
//! storage value = type:u8  flags:u8  [expire_at_ms:u64 LE if flags & 1]  payload
//! field key     = 0x10|db:u8  token:u64 BE  key_len:u32 BE  key  version:u64 BE  field
//! field value   = the field's value
//! ```
//!
//! A hash is a metadata value under its storage key (type 1: its version and field count)
//! plus one field key per field. A new incarnation of a key (created after DEL, expiry or
//! an overwrite) takes a new version, so DEL writes one tombstone: the old incarnation's
//! field keys are orphans, deleted at once when few ([`super::EAGER_RECLAIM_FIELDS_MAX`])
//! and by the next start-up's scan otherwise.
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

/// A stored value's header: its type, its flags and, when it has one, its expiry.
fn put_header(out: &mut BytesMut, type_byte: u8, expire_at_ms: Option<u64>) {
    out.put_u8(type_byte);
    match expire_at_ms {
        Some(at) => {
            out.put_u8(FLAG_EXPIRE);
            out.put_u64_le(at);
        }
        None => out.put_u8(0),
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
    put_header(&mut out, TYPE_STRING, expire_at_ms);
    out.extend_from_slice(payload);
    let stored = out.freeze();
    let value = stored.slice(header..);
    (stored, value)
}

/// `type` byte of a hash's metadata value (its payload: version:u64 LE, field count:u64 LE).
pub const TYPE_HASH: u8 = 1;
/// `type` byte of a set's metadata value (payload as a hash's; members are field keys with
/// empty values).
pub const TYPE_SET: u8 = 2;
/// `type` byte of a list's metadata value (payload: version:u64 LE, length:u64 LE,
/// head:i64 LE, the index of its first element; element `i` is the field key whose field
/// is [`list_index_field`] of `head + i`).
pub const TYPE_LIST: u8 = 3;
/// `type` byte of a sorted set's metadata value (payload as a hash's; each member is a field
/// key whose value is its score, [`encode_score`]).
pub const TYPE_ZSET: u8 = 4;
/// Bytes of a list metadata payload.
const LIST_META_BYTES: usize = 24;

/// The metadata value of a list.
pub fn encode_list_meta(version: u64, len: u64, head: i64, expire_at_ms: Option<u64>) -> Bytes {
    let mut out = BytesMut::with_capacity(header_bytes(expire_at_ms.is_some()) + LIST_META_BYTES);
    put_header(&mut out, TYPE_LIST, expire_at_ms);
    out.put_u64_le(version);
    out.put_u64_le(len);
    out.put_i64_le(head);
    out.freeze()
}

/// The field of a list element's key: its index, order-preserving (sign bit flipped, big
/// endian), so the tree holds a list's elements in order.
pub fn list_index_field(index: i64) -> [u8; 8] {
    ((index as u64) ^ (1 << 63)).to_be_bytes()
}

/// The index a list element's field holds; None when it is not 8 bytes.
pub fn parse_list_index(field: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = field.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}
/// Bytes of a hash metadata payload.
const HASH_META_BYTES: usize = 16;
/// First byte of a collection's element keys: this plus the database number. Element keys
/// sort after every key of the 16 databases and before the SQL keyspace (0x80).
pub const FIELD_KEY_BASE: u8 = 0x10;

/// The tree's key families ([`crate::lsm::LsmOptions::key_family`]): every Redis key (all 16
/// databases), every collection element, and each first byte above those (SQL's rows, catalog,
/// indexes) its own. Elements apart from their metadata keys is what lets an appending list
/// flush into tables that overlap nothing and so move down the tree instead of being merged:
/// each push rewrites the list's metadata key, and a table holding both would overlap every
/// other. Non-decreasing in key order, as the tree requires.
pub fn key_family(user_key: &[u8]) -> u8 {
    match user_key.first() {
        Some(&first) if first < FIELD_KEY_BASE => 0,
        Some(&first) if first < FIELD_KEY_BASE + DB_COUNT as u8 => FIELD_KEY_BASE,
        Some(&first) => first,
        None => 0,
    }
}

/// The metadata value of a collection (`type` [`TYPE_HASH`] or [`TYPE_SET`]): its version
/// (its element keys carry it) and element count.
pub fn encode_collection_meta(
    type_byte: u8,
    version: u64,
    len: u64,
    expire_at_ms: Option<u64>,
) -> Bytes {
    assert!(matches!(type_byte, TYPE_HASH | TYPE_SET | TYPE_ZSET));
    let mut out = BytesMut::with_capacity(header_bytes(expire_at_ms.is_some()) + HASH_META_BYTES);
    put_header(&mut out, type_byte, expire_at_ms);
    out.put_u64_le(version);
    out.put_u64_le(len);
    out.freeze()
}

/// A sorted-set member's stored score: the double's IEEE 754 bits, big endian (exact,
/// -0 and infinities included).
pub fn encode_score(score: super::Score) -> Bytes {
    Bytes::copy_from_slice(&score.get().to_bits().to_be_bytes())
}

/// The score a member's element value holds.
pub fn decode_score(stored: &[u8]) -> Result<super::Score, String> {
    let bytes: [u8; 8] = stored
        .try_into()
        .map_err(|_| format!("a sorted-set score of {} bytes", stored.len()))?;
    let value = f64::from_bits(u64::from_be_bytes(bytes));
    if value.is_nan() {
        return Err("a NaN sorted-set score".to_string());
    }
    Ok(super::Score::new(value))
}

/// The key of one field of the hash at `key` in `db`, in its incarnation `version`:
/// `0x10|db  token:u64 BE  key_len:u32 BE  key  version:u64 BE  field`. The token comes
/// first, so elements route, reshard and sort with their key.
pub fn field_key(db: u8, key: &[u8], version: u64, field: &[u8]) -> Bytes {
    assert!((db as usize) < DB_COUNT);
    let key_len = u32::try_from(key.len()).expect("keys are under 4 GiB");
    let mut out = BytesMut::with_capacity(1 + 8 + 4 + key.len() + 8 + field.len());
    out.put_u8(FIELD_KEY_BASE | db);
    out.put_u64(redis_token(key));
    out.put_u32(key_len);
    out.extend_from_slice(key);
    out.put_u64(version);
    out.extend_from_slice(field);
    out.freeze()
}

/// An element key taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldKey<'a> {
    pub db: u8,
    pub token: u64,
    pub key: &'a [u8],
    pub version: u64,
    pub field: &'a [u8],
}

/// Parses an element key; None when it is not one or is malformed.
pub fn parse_field_key(fkey: &[u8]) -> Option<FieldKey<'_>> {
    let (&first, rest) = fkey.split_first()?;
    if !is_field_key(fkey) || rest.len() < 12 {
        return None;
    }
    let token = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let key_len = u32::from_be_bytes(rest[8..12].try_into().ok()?) as usize;
    let rest = &rest[12..];
    if rest.len() < key_len + 8 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let version = u64::from_be_bytes(rest[..8].try_into().ok()?);
    Some(FieldKey {
        db: first - FIELD_KEY_BASE,
        token,
        key,
        version,
        field: &rest[8..],
    })
}

/// Whether a tree key is a collection element's key (see [`field_key`]).
pub fn is_field_key(skey: &[u8]) -> bool {
    skey.first()
        .is_some_and(|&b| (FIELD_KEY_BASE..FIELD_KEY_BASE + DB_COUNT as u8).contains(&b))
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
        TYPE_LIST => {
            let payload = &stored[header..];
            if payload.len() != LIST_META_BYTES {
                return Err(format!("list metadata of {} bytes", payload.len()));
            }
            let word = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8"));
            Ok(Stored {
                value: Value::List(super::ListValue::empty(word(0), word(8), word(16) as i64)),
                expire_at_ms,
            })
        }
        type_byte @ (TYPE_HASH | TYPE_SET | TYPE_ZSET) => {
            let payload = &stored[header..];
            if payload.len() != HASH_META_BYTES {
                return Err(format!("collection metadata of {} bytes", payload.len()));
            }
            let word = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8"));
            let empty = super::HashValue::empty(word(0), word(8));
            Ok(Stored {
                value: match type_byte {
                    TYPE_HASH => Value::Hash(empty),
                    TYPE_SET => Value::Set(empty),
                    _ => Value::ZSet(super::ZSetValue::empty(empty.version, empty.stored_len)),
                },
                expire_at_ms,
            })
        }
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

/// Answers whether an element key belongs to no live collection (an orphan of a deleted,
/// expired or overwritten incarnation). Installed once the shard's keyspace is rebuilt;
/// until then (start-up, resharding) nothing is an orphan.
pub type OrphanOracle = std::rc::Rc<std::cell::RefCell<Option<Box<dyn Fn(&FieldKey) -> bool>>>>;

/// Answers [`super::Keyspace::is_orphan_range`] for the fields `[lo.field, hi_field]` of
/// `lo`'s incarnation; unset until the shard's key index is rebuilt.
pub type OrphanRangeOracle =
    std::rc::Rc<std::cell::RefCell<Option<Box<dyn Fn(&FieldKey, &[u8]) -> bool>>>>;

/// Whether every tree key in `[lo, hi]` is an orphaned element: both are element keys of one
/// incarnation (same database, key and version), and the oracle says none between is live.
/// The tree then deletes a table of that range whole ([`crate::lsm::LsmOptions::dead_range`]).
pub fn is_orphan_range(lo: &[u8], hi: &[u8], oracle: &OrphanRangeOracle) -> bool {
    let (Some(lo), Some(hi)) = (parse_field_key(lo), parse_field_key(hi)) else {
        return false;
    };
    if (lo.db, lo.key, lo.version) != (hi.db, hi.key, hi.version) {
        return false;
    }
    oracle
        .borrow()
        .as_ref()
        .is_some_and(|is_orphan_range| is_orphan_range(&lo, hi.field))
}

/// The shard's compaction filter: expired Redis keys (see [`expiry_filter`]) and, once the
/// oracle is installed, orphaned element keys become tombstones, so compaction reclaims the
/// elements of a big collection that DEL, expiry or overwrite left behind.
pub fn compaction_filter(
    now_ms: impl Fn() -> u64 + 'static,
    orphans: OrphanOracle,
) -> ExpiryFilter {
    let expired = expiry_filter(now_ms);
    std::rc::Rc::new(move |key: &[u8], stored: &[u8]| {
        if expired(key, stored) {
            return true;
        }
        if !is_field_key(key) {
            return false;
        }
        let Some(field) = parse_field_key(key) else {
            return false;
        };
        orphans
            .borrow()
            .as_ref()
            .is_some_and(|is_orphan| is_orphan(&field))
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
    fn key_families_split_keys_from_elements_and_never_decrease() {
        let keys = [
            storage_key(0, b"list"),
            storage_key(15, b"zzz"),
            field_key(0, b"list", 1, &[0; 8]),
            field_key(15, b"zzz", 9, b"f"),
            Bytes::from_static(b"\x80rows"),
            Bytes::from_static(b"\x82index"),
        ];
        let families: Vec<u8> = keys.iter().map(|k| key_family(k)).collect();
        assert_eq!(families, [0, 0, 0x10, 0x10, 0x80, 0x82]);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "listed in key order");
    }

    #[test]
    fn field_keys_roundtrip_and_sort_with_their_key() {
        let f = field_key(3, b"user:1", 7, b"name");
        let parsed = parse_field_key(&f).unwrap();
        assert_eq!(
            parsed,
            FieldKey {
                db: 3,
                token: redis_token(b"user:1"),
                key: b"user:1",
                version: 7,
                field: b"name"
            }
        );
        assert!(is_field_key(&f) && !is_redis_storage_key(&f));
        // After every database key, before the SQL keyspace.
        assert!(f.as_ref() > storage_key(15, b"\xff").as_ref());
        assert!(f.as_ref() < &b"\x80"[..]);
        // A key that is a prefix of another cannot read the other's fields as its own.
        let long = field_key(3, b"user:10", 7, b"x");
        assert_eq!(parse_field_key(&long).unwrap().key, b"user:10");
        assert!(parse_field_key(&f[..10]).is_none());
        assert!(parse_field_key(&storage_key(0, b"k")).is_none());
        let meta = encode_collection_meta(TYPE_HASH, 9, 2, Some(5));
        let decoded = decode(&meta).unwrap();
        assert_eq!(decoded.expire_at_ms, Some(5));
        match decoded.value {
            Value::Hash(h) => assert_eq!((h.version, h.stored_len), (9, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_indexes_sort_as_integers_and_lists_roundtrip() {
        let mut indexes = [5i64, -3, 0, i64::MIN, i64::MAX, -1];
        let mut fields: Vec<[u8; 8]> = indexes.iter().map(|&i| list_index_field(i)).collect();
        fields.sort();
        indexes.sort();
        let back: Vec<i64> = fields
            .iter()
            .map(|f| parse_list_index(f).unwrap())
            .collect();
        assert_eq!(back, indexes);
        assert_eq!(parse_list_index(b"short"), None);
        match decode(&encode_list_meta(4, 2, -7, None)).unwrap().value {
            Value::List(l) => assert_eq!((l.version, l.stored_len, l.head), (4, 2, -7)),
            other => panic!("{other:?}"),
        }
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
