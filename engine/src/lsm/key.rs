//! Internal keys: a user key plus the MVCC trailer that orders its versions.
//!
//! Byte layout (LevelDB's, written down in `engine/FORMAT.md`):
//!
//! ```text
//! internal key = user_key  trailer:u64 little-endian
//! trailer      = seq << 8 | kind
//! ```
//!
//! Order ([`compare`]): user keys ascending, bytewise; then trailers *descending*, so the newest
//! version of a key comes first and a seek to `(key, snapshot_seq)` lands on the newest version
//! that snapshot may see.

use std::cmp::Ordering;

/// A sequence number: every entry written gets the next one; a snapshot is one.
pub type SeqNo = u64;

/// The largest sequence number (the trailer keeps 56 bits for it).
pub const SEQ_MAX: SeqNo = (1 << 56) - 1;

/// Bytes of the trailer after the user key.
pub const TRAILER_BYTES: usize = 8;

/// Largest user key the engine accepts (Redis allows 512 MiB keys; the engine caps keys so that
/// a block always holds at least a few entries — larger keys are refused by the caller).
pub const USER_KEY_BYTES_MAX: usize = 64 << 10;

/// What an entry records for its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// The key is deleted as of this sequence number (a tombstone).
    Delete = 0,
    /// The key holds this entry's value.
    Put = 1,
}

impl ValueKind {
    pub fn from_u8(byte: u8) -> Option<ValueKind> {
        match byte {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// Kind used when building a seek target: the largest, so that `(key, seq, SEEK_KIND)` sorts
/// before every entry of `key` with that `seq` or less.
pub const SEEK_KIND: ValueKind = ValueKind::Put;

pub fn pack_trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    assert!(seq <= SEQ_MAX, "sequence number {seq} exceeds SEQ_MAX");
    (seq << 8) | kind as u64
}

/// Appends the internal key of `(user_key, seq, kind)` to `out`.
pub fn encode_into(out: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

pub fn encode(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + TRAILER_BYTES);
    encode_into(&mut out, user_key, seq, kind);
    out
}

/// A decoded view of an internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    pub kind: ValueKind,
}

/// Splits an internal key; None when it is too short or its kind byte is unknown (corruption).
pub fn parse(internal_key: &[u8]) -> Option<ParsedKey<'_>> {
    let split = internal_key.len().checked_sub(TRAILER_BYTES)?;
    let (user_key, trailer) = internal_key.split_at(split);
    let trailer = u64::from_le_bytes(trailer.try_into().ok()?);
    Some(ParsedKey {
        user_key,
        seq: trailer >> 8,
        kind: ValueKind::from_u8(trailer as u8)?,
    })
}

/// The user key part of an internal key. Panics on a key shorter than the trailer: callers pass
/// only keys that [`parse`] accepted or that they encoded.
pub fn user_key(internal_key: &[u8]) -> &[u8] {
    &internal_key[..internal_key.len() - TRAILER_BYTES]
}

fn trailer(internal_key: &[u8]) -> u64 {
    let at = internal_key.len() - TRAILER_BYTES;
    u64::from_le_bytes(internal_key[at..].try_into().expect("8-byte trailer"))
}

/// The internal-key order: user key ascending, then trailer (sequence) descending.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a)
        .cmp(user_key(b))
        .then_with(|| trailer(b).cmp(&trailer(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first_and_prefixes_sort_by_user_key() {
        let mut keys = [
            encode(b"ab", 1, ValueKind::Put),
            encode(b"a", 1, ValueKind::Put),
            encode(b"a", 9, ValueKind::Delete),
            encode(b"b", 0, ValueKind::Put),
        ];
        keys.sort_by(|x, y| compare(x, y));
        let parsed: Vec<_> = keys.iter().map(|k| parse(k).unwrap()).collect();
        let order: Vec<_> = parsed.iter().map(|p| (p.user_key, p.seq)).collect();
        assert_eq!(
            order,
            vec![
                (&b"a"[..], 9),
                (&b"a"[..], 1),
                (&b"ab"[..], 1),
                (&b"b"[..], 0)
            ]
        );
    }

    #[test]
    fn parse_rejects_short_keys_and_unknown_kinds() {
        assert!(parse(b"short").is_none());
        let mut key = encode(b"k", 3, ValueKind::Put);
        let last = key.len() - TRAILER_BYTES;
        key[last] = 7;
        assert!(parse(&key).is_none());
    }
}
