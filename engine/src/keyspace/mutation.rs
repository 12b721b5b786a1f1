//! The keyspace's log records: deterministic, absolute state changes, and their byte format.
//!
//! A WAL payload is a plain concatenation of encoded mutations (no count, no padding; the WAL
//! record around it carries length and checksum). Each mutation, byte by byte:
//!
//! ```text
//! Set        01 db:u8 key:bytes type:u8 value:bytes expire
//! Del        02 db:u8 key:bytes
//! SetExpire  03 db:u8 key:bytes expire
//! FlushDb    04 db:u8
//! FlushAll   05
//! HashSet    06 db:u8 key:bytes count:varint (field:bytes value:bytes)*
//! HashDel    07 db:u8 key:bytes count:varint field:bytes*
//! SetAdd     08 db:u8 key:bytes count:varint member:bytes*
//! SetRem     09 db:u8 key:bytes count:varint member:bytes*
//! ListPush   0a db:u8 key:bytes left:u8 count:varint value:bytes*
//! ListPop    0b db:u8 key:bytes left:u8 count:varint
//! ListSet    0c db:u8 key:bytes index:varint value:bytes
//! ListReplace 0d db:u8 key:bytes count:varint value:bytes*
//! ZSetAdd    0e db:u8 key:bytes count:varint (member:bytes score:f64 bits, u64 LE; never NaN)*
//! ZSetRem    0f db:u8 key:bytes count:varint member:bytes*
//!
//! bytes  = len:varint (LEB128, at most 10 bytes, value <= MUTATION_BYTES_MAX) then len bytes
//! expire = 00                      no expiry (for SetExpire: persist)
//!        | 01 at_ms:u64 little-endian
//! type   = 00 string (the only value type so far)
//! ```
//!
//! Every record is absolute (a SET carries the resulting value and the absolute expiry time), so
//! replaying a payload never depends on the clock, and keys removed by expiry need no record.

use bytes::Bytes;
use thiserror::Error;

use super::{Score, Value, DB_COUNT};

/// The largest key or value a record may carry: Redis's proto-max-bulk-len (512 MiB).
pub const MUTATION_BYTES_MAX: u64 = 512 * 1024 * 1024;

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_SET_EXPIRE: u8 = 3;
const TAG_FLUSH_DB: u8 = 4;
const TAG_FLUSH_ALL: u8 = 5;
const TAG_HASH_SET: u8 = 6;
const TAG_HASH_DEL: u8 = 7;
const TAG_SET_ADD: u8 = 8;
const TAG_SET_REM: u8 = 9;
const TAG_LIST_PUSH: u8 = 10;
const TAG_LIST_POP: u8 = 11;
const TAG_LIST_SET: u8 = 12;
const TAG_LIST_REPLACE: u8 = 13;
const TAG_ZSET_ADD: u8 = 14;
const TAG_ZSET_REM: u8 = 15;
const VALUE_TYPE_STR: u8 = 0;
const VARINT_BYTES_MAX: usize = 10;

/// Why a logged payload could not be decoded. Replay stops at the first bad record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyspaceError {
    #[error("keyspace log truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("keyspace log: unknown mutation tag {tag} at byte {offset}")]
    BadTag { tag: u8, offset: usize },
    #[error("keyspace log: database {db} out of range at byte {offset}")]
    BadDb { db: u8, offset: usize },
    #[error("keyspace log: unknown value type {value_type} at byte {offset}")]
    BadValueType { value_type: u8, offset: usize },
    #[error("keyspace log: bad expiry flag {flag} at byte {offset}")]
    BadExpireFlag { flag: u8, offset: usize },
    #[error("keyspace log: bad length at byte {offset}")]
    BadLength { offset: usize },
}

/// One logged state change of a [`super::Keyspace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Create or overwrite `key` with `value` and exactly this expiry (None: no expiry).
    Set {
        db: u8,
        key: Bytes,
        value: Value,
        expire_at_ms: Option<u64>,
    },
    /// Remove `key` (no-op when absent).
    Del {
        db: u8,
        key: Bytes,
    },
    /// Set or (None) remove the expiry of an existing `key` (no-op when absent).
    SetExpire {
        db: u8,
        key: Bytes,
        expire_at_ms: Option<u64>,
    },
    FlushDb {
        db: u8,
    },
    FlushAll,
    /// Set these fields of the hash at `key` (absolute values), creating the hash without
    /// an expiry when the key is absent. The key is absent or a hash.
    HashSet {
        db: u8,
        key: Bytes,
        fields: Vec<(Bytes, Bytes)>,
    },
    /// Remove these fields of the hash at `key` (absent ones are skipped); the key goes
    /// with its last field. The key is absent or a hash.
    HashDel {
        db: u8,
        key: Bytes,
        fields: Vec<Bytes>,
    },
    /// Add these members to the set at `key`, creating it without an expiry when absent.
    /// The key is absent or a set.
    SetAdd {
        db: u8,
        key: Bytes,
        members: Vec<Bytes>,
    },
    /// Remove these members of the set at `key` (absent ones are skipped); the key goes with
    /// its last member. The key is absent or a set.
    SetRem {
        db: u8,
        key: Bytes,
        members: Vec<Bytes>,
    },
    /// Push these values, one after the other, at the head (`left`) or tail of the list at
    /// `key`, creating it without an expiry when absent. The key is absent or a list.
    ListPush {
        db: u8,
        key: Bytes,
        left: bool,
        values: Vec<Bytes>,
    },
    /// Remove `count` elements (all, when fewer) from the head or tail of the list at `key`;
    /// the key goes with its last element. The key is a list.
    ListPop {
        db: u8,
        key: Bytes,
        left: bool,
        count: u64,
    },
    /// Replace the element at position `index` (0: the head) of the list at `key`, which
    /// exists there.
    ListSet {
        db: u8,
        key: Bytes,
        index: u64,
        value: Bytes,
    },
    /// Replace all elements of the list at `key` (keeping its expiry); the key goes when
    /// `values` is empty. The key is a list.
    ListReplace {
        db: u8,
        key: Bytes,
        values: Vec<Bytes>,
    },
    /// Give these members these scores (adding those absent) in the sorted set at `key`,
    /// creating it without an expiry when absent. The key is absent or a sorted set.
    ZSetAdd {
        db: u8,
        key: Bytes,
        members: Vec<(Bytes, Score)>,
    },
    /// Remove these members of the sorted set at `key` (absent ones are skipped); the key
    /// goes with its last member. The key is absent or a sorted set.
    ZSetRem {
        db: u8,
        key: Bytes,
        members: Vec<Bytes>,
    },
}

impl Mutation {
    /// The type of collection a mutation writes into (as `Value::type_name` names it); None
    /// for the writes of any type (SET, DEL, expiry, flushes).
    pub fn collection_type(&self) -> Option<&'static str> {
        match self {
            Mutation::HashSet { .. } | Mutation::HashDel { .. } => Some("hash"),
            Mutation::SetAdd { .. } | Mutation::SetRem { .. } => Some("set"),
            Mutation::ListPush { .. }
            | Mutation::ListPop { .. }
            | Mutation::ListSet { .. }
            | Mutation::ListReplace { .. } => Some("list"),
            Mutation::ZSetAdd { .. } | Mutation::ZSetRem { .. } => Some("zset"),
            Mutation::Set { .. }
            | Mutation::Del { .. }
            | Mutation::SetExpire { .. }
            | Mutation::FlushDb { .. }
            | Mutation::FlushAll => None,
        }
    }

    /// The one key a mutation writes (None: FLUSHDB and FLUSHALL).
    pub fn key(&self) -> Option<(u8, &[u8])> {
        match self {
            Mutation::FlushDb { .. } | Mutation::FlushAll => None,
            Mutation::Set { db, key, .. }
            | Mutation::Del { db, key }
            | Mutation::SetExpire { db, key, .. }
            | Mutation::HashSet { db, key, .. }
            | Mutation::HashDel { db, key, .. }
            | Mutation::SetAdd { db, key, .. }
            | Mutation::SetRem { db, key, .. }
            | Mutation::ListPush { db, key, .. }
            | Mutation::ListPop { db, key, .. }
            | Mutation::ListSet { db, key, .. }
            | Mutation::ListReplace { db, key, .. }
            | Mutation::ZSetAdd { db, key, .. }
            | Mutation::ZSetRem { db, key, .. } => Some((*db, key)),
        }
    }

    /// Appends this mutation's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Mutation::Set {
                db,
                key,
                value,
                expire_at_ms,
            } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_SET);
                out.push(*db);
                put_bytes(out, key);
                match value {
                    Value::Str(s) => {
                        out.push(VALUE_TYPE_STR);
                        put_bytes(out, s);
                    }
                    Value::OffloadedStr { .. } => {
                        panic!("a mutation carried an offloaded value")
                    }
                    Value::Hash(_) | Value::Set(_) | Value::List(_) | Value::ZSet(_) => {
                        panic!("a collection is written by its own mutations")
                    }
                }
                put_expire(out, *expire_at_ms);
            }
            Mutation::Del { db, key } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_DEL);
                out.push(*db);
                put_bytes(out, key);
            }
            Mutation::SetExpire {
                db,
                key,
                expire_at_ms,
            } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_SET_EXPIRE);
                out.push(*db);
                put_bytes(out, key);
                put_expire(out, *expire_at_ms);
            }
            Mutation::FlushDb { db } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_FLUSH_DB);
                out.push(*db);
            }
            Mutation::FlushAll => out.push(TAG_FLUSH_ALL),
            Mutation::HashSet { db, key, fields } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_HASH_SET);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, fields.len() as u64);
                for (f, v) in fields {
                    put_bytes(out, f);
                    put_bytes(out, v);
                }
            }
            Mutation::SetAdd { db, key, members } | Mutation::SetRem { db, key, members } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(if matches!(self, Mutation::SetAdd { .. }) {
                    TAG_SET_ADD
                } else {
                    TAG_SET_REM
                });
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, members.len() as u64);
                for m in members {
                    put_bytes(out, m);
                }
            }
            Mutation::ListPush {
                db,
                key,
                left,
                values,
            } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_LIST_PUSH);
                out.push(*db);
                put_bytes(out, key);
                out.push(u8::from(*left));
                put_varint(out, values.len() as u64);
                for v in values {
                    put_bytes(out, v);
                }
            }
            Mutation::ListPop {
                db,
                key,
                left,
                count,
            } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_LIST_POP);
                out.push(*db);
                put_bytes(out, key);
                out.push(u8::from(*left));
                put_varint(out, *count);
            }
            Mutation::ListSet {
                db,
                key,
                index,
                value,
            } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_LIST_SET);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, *index);
                put_bytes(out, value);
            }
            Mutation::ListReplace { db, key, values } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_LIST_REPLACE);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, values.len() as u64);
                for v in values {
                    put_bytes(out, v);
                }
            }
            Mutation::ZSetAdd { db, key, members } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_ZSET_ADD);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, members.len() as u64);
                for (m, score) in members {
                    put_bytes(out, m);
                    out.extend_from_slice(&score.get().to_bits().to_le_bytes());
                }
            }
            Mutation::ZSetRem { db, key, members } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_ZSET_REM);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, members.len() as u64);
                for m in members {
                    put_bytes(out, m);
                }
            }
            Mutation::HashDel { db, key, fields } => {
                assert!((*db as usize) < DB_COUNT);
                out.push(TAG_HASH_DEL);
                out.push(*db);
                put_bytes(out, key);
                put_varint(out, fields.len() as u64);
                for f in fields {
                    put_bytes(out, f);
                }
            }
        }
        debug_assert_eq!(
            Mutation::decode(&out[start..]).map(|(m, n)| (m, n + start)),
            Ok((self.clone(), out.len()))
        );
    }

    /// Decodes one mutation from the front of `buf`; returns it and the bytes it used.
    pub fn decode(buf: &[u8]) -> Result<(Mutation, usize), KeyspaceError> {
        let mut r = Reader { buf, pos: 0 };
        let tag_offset = r.pos;
        let tag = r.u8()?;
        let m = match tag {
            TAG_SET => {
                let db = r.db()?;
                let key = r.bytes()?;
                let type_offset = r.pos;
                let value = match r.u8()? {
                    VALUE_TYPE_STR => Value::Str(r.bytes()?),
                    value_type => {
                        return Err(KeyspaceError::BadValueType {
                            value_type,
                            offset: type_offset,
                        })
                    }
                };
                let expire_at_ms = r.expire()?;
                Mutation::Set {
                    db,
                    key,
                    value,
                    expire_at_ms,
                }
            }
            TAG_DEL => {
                let db = r.db()?;
                Mutation::Del {
                    db,
                    key: r.bytes()?,
                }
            }
            TAG_SET_EXPIRE => {
                let db = r.db()?;
                let key = r.bytes()?;
                Mutation::SetExpire {
                    db,
                    key,
                    expire_at_ms: r.expire()?,
                }
            }
            TAG_FLUSH_DB => Mutation::FlushDb { db: r.db()? },
            TAG_FLUSH_ALL => Mutation::FlushAll,
            TAG_HASH_SET => {
                let db = r.db()?;
                let key = r.bytes()?;
                let n = r.count()?;
                let mut fields = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let f = r.bytes()?;
                    fields.push((f, r.bytes()?));
                }
                Mutation::HashSet { db, key, fields }
            }
            TAG_LIST_PUSH | TAG_LIST_POP => {
                let db = r.db()?;
                let key = r.bytes()?;
                let side_offset = r.pos;
                let left = match r.u8()? {
                    0 => false,
                    1 => true,
                    flag => {
                        return Err(KeyspaceError::BadExpireFlag {
                            flag,
                            offset: side_offset,
                        })
                    }
                };
                if tag == TAG_LIST_POP {
                    Mutation::ListPop {
                        db,
                        key,
                        left,
                        count: r.varint()?,
                    }
                } else {
                    let n = r.count()?;
                    let mut values = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        values.push(r.bytes()?);
                    }
                    Mutation::ListPush {
                        db,
                        key,
                        left,
                        values,
                    }
                }
            }
            TAG_LIST_SET => {
                let db = r.db()?;
                let key = r.bytes()?;
                let index = r.varint()?;
                Mutation::ListSet {
                    db,
                    key,
                    index,
                    value: r.bytes()?,
                }
            }
            TAG_LIST_REPLACE => {
                let db = r.db()?;
                let key = r.bytes()?;
                let n = r.count()?;
                let mut values = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    values.push(r.bytes()?);
                }
                Mutation::ListReplace { db, key, values }
            }
            TAG_ZSET_ADD => {
                let db = r.db()?;
                let key = r.bytes()?;
                let n = r.count()?;
                let mut members = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let m = r.bytes()?;
                    let offset = r.pos;
                    let bits = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
                    let score = f64::from_bits(bits);
                    if score.is_nan() {
                        return Err(KeyspaceError::BadLength { offset });
                    }
                    members.push((m, Score::new(score)));
                }
                Mutation::ZSetAdd { db, key, members }
            }
            TAG_HASH_DEL | TAG_SET_ADD | TAG_SET_REM | TAG_ZSET_REM => {
                let db = r.db()?;
                let key = r.bytes()?;
                let n = r.count()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(r.bytes()?);
                }
                match tag {
                    TAG_HASH_DEL => Mutation::HashDel {
                        db,
                        key,
                        fields: items,
                    },
                    TAG_SET_ADD => Mutation::SetAdd {
                        db,
                        key,
                        members: items,
                    },
                    TAG_ZSET_REM => Mutation::ZSetRem {
                        db,
                        key,
                        members: items,
                    },
                    _ => Mutation::SetRem {
                        db,
                        key,
                        members: items,
                    },
                }
            }
            tag => {
                return Err(KeyspaceError::BadTag {
                    tag,
                    offset: tag_offset,
                })
            }
        };
        Ok((m, r.pos))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    assert!(
        b.len() as u64 <= MUTATION_BYTES_MAX,
        "mutation field over MUTATION_BYTES_MAX"
    );
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_expire(out: &mut Vec<u8>, at: Option<u64>) {
    match at {
        None => out.push(0),
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], KeyspaceError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(KeyspaceError::Truncated {
                offset: self.buf.len(),
            });
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, KeyspaceError> {
        Ok(self.take(1)?[0])
    }

    fn db(&mut self) -> Result<u8, KeyspaceError> {
        let offset = self.pos;
        let db = self.u8()?;
        if db as usize >= DB_COUNT {
            return Err(KeyspaceError::BadDb { db, offset });
        }
        Ok(db)
    }

    fn varint(&mut self) -> Result<u64, KeyspaceError> {
        let offset = self.pos;
        let mut v: u64 = 0;
        for i in 0..VARINT_BYTES_MAX {
            let b = self.u8()?;
            let bits = (b & 0x7f) as u64;
            if i == VARINT_BYTES_MAX - 1 && bits > 1 {
                return Err(KeyspaceError::BadLength { offset });
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(KeyspaceError::BadLength { offset })
    }

    fn bytes(&mut self) -> Result<Bytes, KeyspaceError> {
        let offset = self.pos;
        let len = self.varint()?;
        if len > MUTATION_BYTES_MAX {
            return Err(KeyspaceError::BadLength { offset });
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    /// An element count: each element takes at least one byte, so a count beyond the bytes
    /// left is malformed (and never sizes an allocation).
    fn count(&mut self) -> Result<usize, KeyspaceError> {
        let offset = self.pos;
        let n = self.varint()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(KeyspaceError::BadLength { offset });
        }
        Ok(n as usize)
    }

    fn expire(&mut self) -> Result<Option<u64>, KeyspaceError> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(Some(u64::from_le_bytes(a)))
            }
            flag => Err(KeyspaceError::BadExpireFlag { flag, offset }),
        }
    }
}

/// Decodes a whole payload (concatenated mutations) into a list, all or nothing.
pub fn decode_all(payload: &[u8]) -> Result<Vec<Mutation>, KeyspaceError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let (m, used) = Mutation::decode(&payload[pos..]).map_err(|e| e.shifted(pos))?;
        assert!(used > 0);
        out.push(m);
        pos += used;
    }
    Ok(out)
}

impl KeyspaceError {
    fn shifted(self, by: usize) -> KeyspaceError {
        match self {
            KeyspaceError::Truncated { offset } => KeyspaceError::Truncated {
                offset: offset + by,
            },
            KeyspaceError::BadTag { tag, offset } => KeyspaceError::BadTag {
                tag,
                offset: offset + by,
            },
            KeyspaceError::BadDb { db, offset } => KeyspaceError::BadDb {
                db,
                offset: offset + by,
            },
            KeyspaceError::BadValueType { value_type, offset } => KeyspaceError::BadValueType {
                value_type,
                offset: offset + by,
            },
            KeyspaceError::BadExpireFlag { flag, offset } => KeyspaceError::BadExpireFlag {
                flag,
                offset: offset + by,
            },
            KeyspaceError::BadLength { offset } => KeyspaceError::BadLength {
                offset: offset + by,
            },
        }
    }
}
