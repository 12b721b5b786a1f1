//! How table rows are stored in a shard's LSM tree, byte by byte (also in `engine/FORMAT.md`,
//! "SQL rows").
//!
//! ```text
//! row key   = 0x80  table_id:u32 BE  token:u64 BE  key bytes
//! key bytes = primary key columns, each order-preserving (below); or the hidden row id u64 BE
//! row value = version:u8 (1)  column_count:u16 LE  column*
//! column    = tag:u8 payload   (0 null · 1 bool u8 · 2 int i64 LE · 3 float f64 LE bits ·
//!                               4 text varint-len bytes · 5 numeric text varint-len bytes ·
//!                               6 float4 f32 LE bits · 7 bytea varint-len bytes ·
//!                               8 date i32 LE days since 2000-01-01 · 9 time i64 LE µs ·
//!                               10 timestamp / 11 timestamptz i64 LE µs since 2000-01-01 ·
//!                               12 interval months i32 LE, days i32 LE, µs i64 LE ·
//!                               13 uuid 16 bytes · 14 jsonb normalized text varint-len ·
//!                               15 array varint-count column*, elements never arrays ·
//!                               16 text ending in blanks: varint-blank-count varint-len bytes
//!                                  (char(n)'s padding is stored as a count, not as blanks))
//! catalog   = 0x81 "catalog" → the catalog as JSON (shard 0 only)
//! ```
//!
//! The token (xxh3 of the key bytes) picks the shard, exactly as a Redis key's token does, so
//! resharding moves rows with the same partition map. 0x80 and 0x81 sort after every Redis
//! storage key (whose first byte is a database number below 16), so the Redis index rebuild
//! stops at the first SQL key.

use bytes::Bytes;
use helios_engine::lsm::{get_varint, put_varint};

use crate::error::*;
use crate::types::{Datum, SqlType};

/// First byte of every table row key.
pub const ROW_PREFIX: u8 = 0x80;
/// First byte of catalog keys (stored on shard 0).
pub const CATALOG_PREFIX: u8 = 0x81;
/// The key the catalog is stored under on shard 0.
pub const CATALOG_KEY: &[u8] = b"\x81catalog";
/// Sequence records on shard 0: this, then the sequence id (u32 BE) → last value (i64 LE),
/// is_called (u8).
pub const CATALOG_KEY_PREFIX_SEQUENCE: &[u8] = b"\x81seq";
/// Transactional DDL markers on shard 0: this, then the transaction id (u64 BE) → `p`
/// (pending) or `c` (committed) ([`crate::ddl_undo`]).
pub const CATALOG_KEY_PREFIX_DDL: &[u8] = b"\x81ddl";
/// Bytes of a row key before the key bytes.
pub const ROW_KEY_HEADER_BYTES: usize = 13;

const ROW_FORMAT_VERSION: u8 = 1;
const TAG_NULL: u8 = 0;
const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_TEXT: u8 = 4;
const TAG_NUMERIC: u8 = 5;
const TAG_FLOAT4: u8 = 6;
const TAG_BYTES: u8 = 7;
const TAG_DATE: u8 = 8;
const TAG_TIME: u8 = 9;
const TAG_TIMESTAMP: u8 = 10;
const TAG_TIMESTAMPTZ: u8 = 11;
const TAG_INTERVAL: u8 = 12;
const TAG_UUID: u8 = 13;
const TAG_JSON: u8 = 14;
const TAG_ARRAY: u8 = 15;
const TAG_TEXT_BLANKS: u8 = 16;

/// Trailing blanks from which text stores them as a count (char(n) padding, pgbench's
/// `filler char(84)`): below this the count costs as much as the blanks.
const BLANK_RUN_MIN: usize = 4;

/// The token that routes a row: a hash of its key bytes.
pub fn row_token(key_bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key_bytes)
}

/// The full storage key of a row of `table_id` with the given key bytes.
pub fn row_key(table_id: u32, key_bytes: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(ROW_KEY_HEADER_BYTES + key_bytes.len());
    row_key_into(&mut out, table_id, row_token(key_bytes), key_bytes);
    Bytes::from(out)
}

/// Appends [`row_key`] of a row whose token (`row_token(key_bytes)`) is known.
pub fn row_key_into(out: &mut Vec<u8>, table_id: u32, token: u64, key_bytes: &[u8]) {
    debug_assert_eq!(token, row_token(key_bytes));
    out.push(ROW_PREFIX);
    out.extend_from_slice(&table_id.to_be_bytes());
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(key_bytes);
}

/// Every row of a table on a shard starts with this.
pub fn table_prefix(table_id: u32) -> [u8; 5] {
    let id = table_id.to_be_bytes();
    [ROW_PREFIX, id[0], id[1], id[2], id[3]]
}

/// The token of a SQL storage key (rows route by it; catalog keys live on shard 0: None).
pub fn storage_key_token(skey: &[u8]) -> Option<u64> {
    if skey.first() == Some(&ROW_PREFIX) && skey.len() >= ROW_KEY_HEADER_BYTES {
        return Some(u64::from_be_bytes(skey[5..13].try_into().ok()?));
    }
    None
}

/// Appends `d` to a primary key, order-preserving within the column's type.
pub fn encode_key_datum(out: &mut Vec<u8>, d: &Datum) -> Result<(), SqlError> {
    match d {
        Datum::Null => {
            return Err(SqlError::new(
                NOT_NULL_VIOLATION,
                "null value in primary key column",
            ))
        }
        Datum::Bool(b) => out.push(u8::from(*b)),
        // Sign bit flipped: big-endian bytes then sort as the integers do.
        Datum::Int(v) => out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes()),
        Datum::Float(f) => {
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        // 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x01.
        Datum::Text(s) => {
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0, 1]);
        }
        // Numeric keys are routed and compared by their normalized text (equal values are
        // equal bytes); their byte order is not numeric order, which a hash-partitioned key
        // does not need.
        Datum::Numeric(n) => {
            let text = crate::numeric::to_text(&n.normalized());
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&[0, 1]);
        }
        Datum::Float4(f) => encode_key_datum(out, &Datum::Float(f64::from(*f)))?,
        Datum::Date(d) => encode_key_datum(out, &Datum::Int(i64::from(*d)))?,
        Datum::Time(t) | Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            encode_key_datum(out, &Datum::Int(*t))?
        }
        Datum::Uuid(u) => out.extend_from_slice(u),
        Datum::Bytes(b) => {
            for &byte in b {
                out.push(byte);
                if byte == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0, 1]);
        }
        // Equal intervals ('1 day' = '24 hours') must route alike: keyed by their span.
        Datum::Interval(iv) => {
            out.extend_from_slice(&(iv.span() as u128 ^ (1 << 127)).to_be_bytes())
        }
        Datum::Type(_) | Datum::Json(_) | Datum::Array(_) => {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "this type cannot be part of a primary key",
            ))
        }
    }
    Ok(())
}

/// Reads back key datums written by [`encode_key_datum`], one per type, for messages (the
/// DETAIL of a 23505). None where the encoding does not keep the value (numeric and interval
/// keys keep only their normalized order) or the bytes do not parse.
pub(crate) fn decode_key_datums(mut bytes: &[u8], types: &[SqlType]) -> Option<Vec<Datum>> {
    let mut out = Vec::with_capacity(types.len());
    let int = |bytes: &mut &[u8]| -> Option<i64> {
        let (head, rest) = bytes.split_first_chunk::<8>()?;
        *bytes = rest;
        Some((u64::from_be_bytes(*head) ^ (1 << 63)) as i64)
    };
    for ty in types {
        out.push(match ty {
            SqlType::Bool => {
                let (&b, rest) = bytes.split_first()?;
                bytes = rest;
                Datum::Bool(b != 0)
            }
            SqlType::Int2 | SqlType::Int4 | SqlType::Int8 => Datum::Int(int(&mut bytes)?),
            SqlType::Date => Datum::Date(i32::try_from(int(&mut bytes)?).ok()?),
            SqlType::Timestamp => Datum::Timestamp(int(&mut bytes)?),
            SqlType::TimestampTz => Datum::TimestampTz(int(&mut bytes)?),
            SqlType::Time => Datum::Time(int(&mut bytes)?),
            SqlType::Text | SqlType::Varchar | SqlType::Name | SqlType::Bpchar => {
                Datum::Text(String::from_utf8(unescape_key_bytes(&mut bytes)?).ok()?)
            }
            SqlType::Bytea => Datum::Bytes(unescape_key_bytes(&mut bytes)?),
            SqlType::Float8 | SqlType::Float4 => {
                let ordered = int(&mut bytes)? as u64 ^ (1 << 63);
                let bits = if ordered >> 63 == 1 {
                    ordered & !(1 << 63)
                } else {
                    !ordered
                };
                let value = f64::from_bits(bits);
                match ty {
                    SqlType::Float4 => Datum::Float4(value as f32),
                    _ => Datum::Float(value),
                }
            }
            SqlType::Uuid => {
                let (head, rest) = bytes.split_first_chunk::<16>()?;
                bytes = rest;
                Datum::Uuid(*head)
            }
            _ => return None,
        });
    }
    bytes.is_empty().then_some(out)
}

/// One escaped, terminated byte string of a key (see [`encode_key_datum`]).
fn unescape_key_bytes(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match (bytes.get(at)?, bytes.get(at + 1)) {
            (0, Some(1)) => break,
            (0, Some(0xFF)) => {
                out.push(0);
                at += 2;
            }
            (0, _) => return None,
            (&b, _) => {
                out.push(b);
                at += 1;
            }
        }
    }
    *bytes = &bytes[at + 2..];
    Some(out)
}

pub fn encode_row(row: &[Datum]) -> Bytes {
    let mut out = Vec::with_capacity(3 + row.iter().map(encoded_len_bound).sum::<usize>());
    encode_row_into(&mut out, row);
    Bytes::from(out)
}

/// Appends [`encode_row`]'s bytes.
pub fn encode_row_into(out: &mut Vec<u8>, row: &[Datum]) {
    out.push(ROW_FORMAT_VERSION);
    out.extend_from_slice(&(row.len() as u16).to_le_bytes());
    for d in row {
        encode_datum(out, d);
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// At least the bytes `encode_datum` writes for `d`, so that a row is encoded into one
/// allocation (the numeric case guesses).
fn encoded_len_bound(d: &Datum) -> usize {
    const VARINT_MAX: usize = 10;
    match d {
        Datum::Text(s) | Datum::Json(s) => 1 + VARINT_MAX + s.len(),
        Datum::Bytes(b) => 1 + VARINT_MAX + b.len(),
        Datum::Numeric(_) => 1 + VARINT_MAX + 24,
        Datum::Array(items) => 1 + VARINT_MAX + items.iter().map(encoded_len_bound).sum::<usize>(),
        _ => 17,
    }
}

/// Length of `bytes` without its trailing blanks, eight at a time while it can (a char(n)
/// value is mostly padding).
fn without_trailing_blanks(bytes: &[u8]) -> usize {
    const EIGHT_BLANKS: u64 = u64::from_ne_bytes([b' '; 8]);
    let mut end = bytes.len();
    while end >= 8 {
        let word = u64::from_ne_bytes(bytes[end - 8..end].try_into().expect("eight bytes"));
        if word != EIGHT_BLANKS {
            break;
        }
        end -= 8;
    }
    while end > 0 && bytes[end - 1] == b' ' {
        end -= 1;
    }
    end
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if bytes.last() != Some(&b' ') {
        return put_bytes(out, TAG_TEXT, bytes);
    }
    let kept = without_trailing_blanks(bytes);
    let blanks = bytes.len() - kept;
    if blanks < BLANK_RUN_MIN {
        return put_bytes(out, TAG_TEXT, bytes);
    }
    out.push(TAG_TEXT_BLANKS);
    put_varint(out, blanks as u64);
    put_varint(out, kept as u64);
    out.extend_from_slice(&bytes[..kept]);
}

fn encode_datum(out: &mut Vec<u8>, d: &Datum) {
    match d {
        Datum::Null => out.push(TAG_NULL),
        Datum::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        Datum::Int(v) => {
            out.push(TAG_INT);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Datum::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Datum::Float4(f) => {
            out.push(TAG_FLOAT4);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Datum::Text(s) => put_text(out, s),
        Datum::Numeric(n) => put_bytes(out, TAG_NUMERIC, crate::numeric::to_text(n).as_bytes()),
        Datum::Bytes(b) => put_bytes(out, TAG_BYTES, b),
        Datum::Json(j) => put_bytes(out, TAG_JSON, j.as_bytes()),
        Datum::Date(d) => {
            out.push(TAG_DATE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Datum::Time(t) | Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            out.push(match d {
                Datum::Time(_) => TAG_TIME,
                Datum::Timestamp(_) => TAG_TIMESTAMP,
                _ => TAG_TIMESTAMPTZ,
            });
            out.extend_from_slice(&t.to_le_bytes());
        }
        Datum::Interval(iv) => {
            out.push(TAG_INTERVAL);
            out.extend_from_slice(&iv.months.to_le_bytes());
            out.extend_from_slice(&iv.days.to_le_bytes());
            out.extend_from_slice(&iv.micros.to_le_bytes());
        }
        Datum::Uuid(u) => {
            out.push(TAG_UUID);
            out.extend_from_slice(u);
        }
        Datum::Array(items) => {
            out.push(TAG_ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                encode_datum(out, item);
            }
        }
        Datum::Type(t) => unreachable!("a regtype value {t:?} is never stored"),
    }
}

/// Decodes a stored row into `width` columns (columns a shorter, older row lacks are NULL).
pub fn decode_row(bytes: &[u8], width: usize) -> Result<Vec<Datum>, String> {
    if bytes.len() < 3 || bytes[0] != ROW_FORMAT_VERSION {
        return Err(malformed("header"));
    }
    let count = u16::from_le_bytes([bytes[1], bytes[2]]) as usize;
    let mut at = 3;
    let mut budget = ROW_BLANKS_MAX;
    let mut row = Vec::with_capacity(width.max(count));
    for _ in 0..count {
        row.push(decode_datum(bytes, &mut at, true, &mut budget)?);
    }
    if at != bytes.len() {
        return Err(malformed("trailing bytes"));
    }
    row.resize(width.max(row.len()), Datum::Null);
    row.truncate(width);
    Ok(row)
}

/// Like [`decode_row`], but decodes only the columns `wanted` marks (the others read as
/// NULL, and cost no allocation): a scan decodes what its fragment reads.
pub fn decode_row_columns(
    bytes: &[u8],
    width: usize,
    wanted: &[bool],
) -> Result<Vec<Datum>, String> {
    let mut row = Vec::new();
    decode_row_columns_into(bytes, width, wanted, false, &mut row)?;
    Ok(row)
}

/// [`decode_row_columns`] into `row`, reusing its allocation (a loop over a million rows);
/// with `whole`, the values after the last wanted one are checked too (a table rewrite that
/// copies the stored bytes as they are).
pub fn decode_row_columns_into(
    bytes: &[u8],
    width: usize,
    wanted: &[bool],
    whole: bool,
    row: &mut Vec<Datum>,
) -> Result<(), String> {
    // Reset in place: a scan reuses `row` for every row, and clearing it then cloning NULL
    // back into each slot was two out-of-line calls per column per row (3 % of a rekeying
    // scan's profile); only the slots holding a value need dropping.
    row.truncate(width);
    for slot in row.iter_mut().filter(|slot| !slot.is_null()) {
        *slot = Datum::Null;
    }
    row.resize_with(width, || Datum::Null);
    check_row_header(bytes)?;
    let count = u16::from_le_bytes([bytes[1], bytes[2]]) as usize;
    let mut at = 3;
    let mut budget = ROW_BLANKS_MAX;
    // The values after the last wanted one are not even skipped (count(*) reads none).
    let read = match wanted.iter().rposition(|&w| w) {
        _ if whole => count,
        Some(last) => (last + 1).min(count),
        None => 0,
    };
    for c in 0..read {
        match row.get_mut(c) {
            Some(slot) if wanted.get(c).copied().unwrap_or(false) => {
                *slot = decode_datum(bytes, &mut at, true, &mut budget)?;
            }
            _ => skip_datum(bytes, &mut at, true)?,
        }
    }
    if read == count && at != bytes.len() {
        return Err(malformed("trailing bytes"));
    }
    Ok(())
}

/// Checks that `bytes` start as a stored row does (its format version and value count).
pub fn check_row_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 3 || bytes[0] != ROW_FORMAT_VERSION {
        return Err(malformed("header"));
    }
    Ok(())
}

/// Moves past one encoded value without decoding it.
fn skip_datum(bytes: &[u8], at: &mut usize, nested_ok: bool) -> Result<(), String> {
    let tag = take_array::<1>(bytes, at)?[0];
    let fixed = match tag {
        TAG_NULL => 0,
        TAG_BOOL => 1,
        TAG_FLOAT4 | TAG_DATE => 4,
        TAG_INT | TAG_FLOAT | TAG_TIME | TAG_TIMESTAMP | TAG_TIMESTAMPTZ => 8,
        TAG_INTERVAL | TAG_UUID => 16,
        TAG_TEXT | TAG_NUMERIC | TAG_BYTES | TAG_JSON => {
            take_varlen(bytes, at)?;
            return Ok(());
        }
        TAG_TEXT_BLANKS => {
            blank_count(bytes, at)?;
            take_varlen(bytes, at)?;
            return Ok(());
        }
        TAG_ARRAY if nested_ok => {
            let n = get_varint(bytes, at).ok_or_else(|| malformed("length"))?;
            if n > (bytes.len() - *at) as u64 {
                return Err(malformed("array length"));
            }
            for _ in 0..n {
                skip_datum(bytes, at, false)?;
            }
            return Ok(());
        }
        _ => return Err(malformed("unknown tag")),
    };
    take(bytes, at, fixed)?;
    Ok(())
}

fn malformed(what: &str) -> String {
    format!("stored row is malformed: {what}")
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = at.checked_add(n).ok_or_else(|| malformed("length"))?;
    let s = bytes.get(*at..end).ok_or_else(|| malformed("truncated"))?;
    *at = end;
    Ok(s)
}

fn take_array<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N], String> {
    take(bytes, at, N)?
        .try_into()
        .map_err(|_| malformed("truncated"))
}

fn take_varlen<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let len = get_varint(bytes, at).ok_or_else(|| malformed("length"))?;
    take(
        bytes,
        at,
        usize::try_from(len).map_err(|_| malformed("length"))?,
    )
}

/// The blank count of a `TAG_TEXT_BLANKS` value: at most char(n)'s limit (a corrupt count
/// must not allocate gigabytes).
fn blank_count(bytes: &[u8], at: &mut usize) -> Result<usize, String> {
    let n = get_varint(bytes, at).ok_or_else(|| malformed("length"))?;
    match usize::try_from(n) {
        Ok(n) if n <= MAX_BLANK_RUN => Ok(n),
        _ => Err(malformed("blank count")),
    }
}

/// PostgreSQL's limit on char(n) (10 485 760 characters).
const MAX_BLANK_RUN: usize = 10 * 1024 * 1024;
/// Blanks one decoded row may hold in all: a corrupt row of many padded columns must not
/// make its decoding allocate without bound (65 535 columns × `MAX_BLANK_RUN`).
const ROW_BLANKS_MAX: usize = 256 * 1024 * 1024;

fn take_blank_padded_text(
    bytes: &[u8],
    at: &mut usize,
    blanks_left: &mut usize,
) -> Result<String, String> {
    let blanks = blank_count(bytes, at)?;
    *blanks_left = blanks_left
        .checked_sub(blanks)
        .ok_or_else(|| malformed("blank count"))?;
    let kept = take_varlen(bytes, at)?;
    let mut text = Vec::with_capacity(kept.len() + blanks);
    text.extend_from_slice(kept);
    text.resize(kept.len() + blanks, b' ');
    String::from_utf8(text).map_err(|_| malformed("text is not UTF-8"))
}

fn take_text(bytes: &[u8], at: &mut usize) -> Result<String, String> {
    String::from_utf8(take_varlen(bytes, at)?.to_vec()).map_err(|_| malformed("text is not UTF-8"))
}

/// One value; `nested_ok` is false inside an array (arrays are one-dimensional).
fn decode_datum(
    bytes: &[u8],
    at: &mut usize,
    nested_ok: bool,
    blanks_left: &mut usize,
) -> Result<Datum, String> {
    let tag = take_array::<1>(bytes, at)?[0];
    Ok(match tag {
        TAG_NULL => Datum::Null,
        TAG_BOOL => Datum::Bool(take_array::<1>(bytes, at)?[0] != 0),
        TAG_INT => Datum::Int(i64::from_le_bytes(take_array(bytes, at)?)),
        TAG_FLOAT => Datum::Float(f64::from_bits(u64::from_le_bytes(take_array(bytes, at)?))),
        TAG_FLOAT4 => Datum::Float4(f32::from_bits(u32::from_le_bytes(take_array(bytes, at)?))),
        TAG_TEXT => Datum::Text(take_text(bytes, at)?),
        TAG_TEXT_BLANKS => Datum::Text(take_blank_padded_text(bytes, at, blanks_left)?),
        TAG_NUMERIC => Datum::Numeric(
            crate::numeric::parse(&take_text(bytes, at)?).ok_or_else(|| malformed("numeric"))?,
        ),
        TAG_BYTES => Datum::Bytes(take_varlen(bytes, at)?.to_vec()),
        TAG_JSON => Datum::Json(take_text(bytes, at)?),
        TAG_DATE => Datum::Date(i32::from_le_bytes(take_array(bytes, at)?)),
        TAG_TIME => Datum::Time(i64::from_le_bytes(take_array(bytes, at)?)),
        TAG_TIMESTAMP => Datum::Timestamp(i64::from_le_bytes(take_array(bytes, at)?)),
        TAG_TIMESTAMPTZ => Datum::TimestampTz(i64::from_le_bytes(take_array(bytes, at)?)),
        TAG_INTERVAL => Datum::Interval(crate::datetime::Interval {
            months: i32::from_le_bytes(take_array(bytes, at)?),
            days: i32::from_le_bytes(take_array(bytes, at)?),
            micros: i64::from_le_bytes(take_array(bytes, at)?),
        }),
        TAG_UUID => Datum::Uuid(take_array(bytes, at)?),
        TAG_ARRAY if nested_ok => {
            let n = get_varint(bytes, at).ok_or_else(|| malformed("length"))?;
            // Each element takes at least its tag byte: a count beyond the bytes left is bad.
            if n > (bytes.len() - *at) as u64 {
                return Err(malformed("array length"));
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                items.push(decode_datum(bytes, at, false, blanks_left)?);
            }
            Datum::Array(items)
        }
        _ => return Err(malformed("unknown tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datum() -> impl Strategy<Value = Datum> {
        prop_oneof![
            Just(Datum::Null),
            any::<bool>().prop_map(Datum::Bool),
            any::<i64>().prop_map(Datum::Int),
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(Datum::Float),
            ".{0,20}".prop_map(Datum::Text),
            ".{0,6} {0,90}".prop_map(Datum::Text),
            (any::<i64>(), 0i64..6)
                .prop_map(|(v, s)| Datum::Numeric(bigdecimal::BigDecimal::new(v.into(), s))),
            any::<f32>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(Datum::Float4),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Datum::Bytes),
            any::<i32>().prop_map(Datum::Date),
            any::<i64>().prop_map(Datum::Time),
            any::<i64>().prop_map(Datum::Timestamp),
            any::<i64>().prop_map(Datum::TimestampTz),
            (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| {
                Datum::Interval(crate::datetime::Interval {
                    months,
                    days,
                    micros,
                })
            }),
            any::<[u8; 16]>().prop_map(Datum::Uuid),
            ".{0,12}".prop_map(Datum::Json),
        ]
    }

    /// A key column's type and a value of it, for every type whose key bytes keep the value.
    fn keyed_datum() -> impl Strategy<Value = (SqlType, Datum)> {
        prop_oneof![
            any::<bool>().prop_map(|b| (SqlType::Bool, Datum::Bool(b))),
            any::<i64>().prop_map(|v| (SqlType::Int8, Datum::Int(v))),
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(|f| (SqlType::Float8, Datum::Float(f))),
            "(.|\u{0}){0,12}".prop_map(|s| (SqlType::Text, Datum::Text(s))),
            proptest::collection::vec(any::<u8>(), 0..12)
                .prop_map(|b| (SqlType::Bytea, Datum::Bytes(b))),
            any::<i32>().prop_map(|d| (SqlType::Date, Datum::Date(d))),
            any::<i64>().prop_map(|t| (SqlType::Timestamp, Datum::Timestamp(t))),
            any::<i64>().prop_map(|t| (SqlType::TimestampTz, Datum::TimestampTz(t))),
            any::<[u8; 16]>().prop_map(|u| (SqlType::Uuid, Datum::Uuid(u))),
        ]
    }

    fn datum_or_array() -> impl Strategy<Value = Datum> {
        prop_oneof![
            4 => datum(),
            1 => proptest::collection::vec(datum(), 0..5).prop_map(Datum::Array),
        ]
    }

    #[test]
    fn trailing_blanks_are_found_word_by_word_and_byte_by_byte() {
        for text in [
            "",
            " ",
            "a",
            "a ",
            "  a  ",
            "abcdefgh        ",
            "x       y          ",
        ] {
            for pad in [0, 1, 7, 8, 9, 17, 84] {
                let s = format!("{text}{}", " ".repeat(pad));
                assert_eq!(
                    without_trailing_blanks(s.as_bytes()),
                    s.trim_end_matches(' ').len(),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn trailing_blanks_are_stored_as_a_count() {
        let padded = Datum::Text(format!("x{}", " ".repeat(83)));
        let row = encode_row(std::slice::from_ref(&padded));
        assert_eq!(row.len(), 3 + 1 + 1 + 1 + 1, "tag, count, length, 'x'");
        assert_eq!(decode_row(&row, 1).unwrap(), vec![padded]);
        let blanks_only = Datum::Text(" ".repeat(10));
        assert_eq!(
            decode_row(&encode_row(std::slice::from_ref(&blanks_only)), 1).unwrap(),
            vec![blanks_only]
        );
        let few = Datum::Text("ab   ".into());
        assert_eq!(
            encode_row(std::slice::from_ref(&few)).len(),
            3 + 2 + 5,
            "3 blanks stay text"
        );
        let mut huge = vec![ROW_FORMAT_VERSION, 1, 0, TAG_TEXT_BLANKS];
        put_varint(&mut huge, u64::MAX);
        huge.push(0);
        assert!(
            decode_row(&huge, 1).is_err(),
            "a corrupt count is an error, not an allocation"
        );
    }

    proptest! {
        #[test]
        fn rows_round_trip(row in proptest::collection::vec(datum_or_array(), 0..12)) {
            let decoded = decode_row(&encode_row(&row), row.len()).unwrap();
            prop_assert_eq!(decoded, row);
        }

        #[test]
        fn wanted_columns_decode_and_the_rest_read_null(
            row in proptest::collection::vec(datum_or_array(), 0..12),
            wanted in proptest::collection::vec(any::<bool>(), 0..14),
        ) {
            let decoded = decode_row_columns(&encode_row(&row), row.len(), &wanted).unwrap();
            let expected: Vec<Datum> = row
                .iter()
                .enumerate()
                .map(|(c, d)| if wanted.get(c) == Some(&true) { d.clone() } else { Datum::Null })
                .collect();
            prop_assert_eq!(decoded, expected);
        }

        /// Key datums read back exactly where the DETAIL of a 23505 shows them, and only the
        /// whole key parses (a truncated one is None, never a wrong value).
        #[test]
        fn key_datums_read_back(row in proptest::collection::vec(keyed_datum(), 1..4)) {
            let mut key = Vec::new();
            for (_, datum) in &row {
                encode_key_datum(&mut key, datum).unwrap();
            }
            let types: Vec<SqlType> = row.iter().map(|(ty, _)| *ty).collect();
            let datums: Vec<Datum> = row.into_iter().map(|(_, datum)| datum).collect();
            prop_assert_eq!(decode_key_datums(&key, &types), Some(datums));
            if !key.is_empty() {
                prop_assert_eq!(decode_key_datums(&key[..key.len() - 1], &types), None);
            }
        }

        #[test]
        fn int_keys_sort_as_integers(a in any::<i64>(), b in any::<i64>()) {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            encode_key_datum(&mut x, &Datum::Int(a)).unwrap();
            encode_key_datum(&mut y, &Datum::Int(b)).unwrap();
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        }

        #[test]
        fn text_keys_sort_as_bytes(a in ".{0,8}", b in ".{0,8}") {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            encode_key_datum(&mut x, &Datum::Text(a.clone())).unwrap();
            encode_key_datum(&mut y, &Datum::Text(b.clone())).unwrap();
            prop_assert_eq!(x.cmp(&y), a.as_bytes().cmp(b.as_bytes()));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes, 4);
            let _ = decode_row_columns(&bytes, 4, &[true, false, true, false]);
        }
    }
}
