//! Write batches: the unit of atomicity of the LSM, and their WAL payload.
//!
//! A batch's entries get consecutive sequence numbers and are logged as one WAL record of kind
//! [`WAL_KIND_BATCH`], so after a crash either all of a batch is recovered or none of it.
//! Payload, byte by byte (see `engine/FORMAT.md`):
//!
//! ```text
//! base_seq:u64 LE  count:u32 LE  count × entry
//! entry = kind:u8  key_len:varint  key  value_len:varint  value      (kind 0 delete, 1 put)
//! ```

use bytes::Bytes;

use super::key::{SeqNo, ValueKind, USER_KEY_BYTES_MAX};
use super::LsmError;

/// WAL record kind of an LSM write batch.
pub const WAL_KIND_BATCH: u8 = 0x4C;
/// Largest value the LSM stores (Redis's proto-max-bulk-len).
pub const VALUE_BYTES_MAX: usize = 512 << 20;
const HEADER_BYTES: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    entries: Vec<(ValueKind, Bytes, Bytes)>,
    /// Per entry: written with [`WriteBatch::put_scan_only`] / [`WriteBatch::delete_scan_only`].
    /// Kept in memory only: the WAL record does not carry it (replay indexes every entry).
    scan_only: Vec<bool>,
    payload_bytes: usize,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// An empty batch with room for `entries` entries.
    pub fn with_capacity(entries: usize) -> WriteBatch {
        WriteBatch {
            entries: Vec::with_capacity(entries),
            scan_only: Vec::with_capacity(entries),
            ..WriteBatch::default()
        }
    }

    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.push(ValueKind::Put, key.into(), value.into());
    }

    pub fn delete(&mut self, key: impl Into<Bytes>) {
        self.push(ValueKind::Delete, key.into(), Bytes::new());
    }

    /// A put of a key that is only ever read by scans, never by a point read: the memtable
    /// skips its newest-version index for it (see `Memtable::insert_scan_only`). The writer
    /// writes every version of such a key this way.
    pub fn put_scan_only(&mut self, key: Bytes, value: Bytes) {
        self.push(ValueKind::Put, key, value);
        *self.scan_only.last_mut().expect("just pushed") = true;
    }

    /// A delete of a key written with [`WriteBatch::put_scan_only`].
    pub fn delete_scan_only(&mut self, key: Bytes) {
        self.push(ValueKind::Delete, key, Bytes::new());
        *self.scan_only.last_mut().expect("just pushed") = true;
    }

    /// Turns entry `i` into a put of `value` (Some) or a delete (None) of the same key. For a
    /// writer that coalesces a key's writes within the batch: when entry `i` is the key's last
    /// write so far, the batch's final state is that of appending the new write instead (a
    /// batch is applied atomically, and writes of other keys commute with it).
    pub fn replace(&mut self, i: usize, value: Option<Bytes>) {
        let entry = &mut self.entries[i];
        self.payload_bytes -= entry.2.len();
        let (kind, value) = match value {
            Some(v) => (ValueKind::Put, v),
            None => (ValueKind::Delete, Bytes::new()),
        };
        self.payload_bytes += value.len();
        entry.0 = kind;
        entry.2 = value;
    }

    /// A batch of `entries`, reusing their vector (no copy of a bulk load's million entries);
    /// more may be pushed after them.
    pub fn from_entries(entries: Vec<(ValueKind, Bytes, Bytes)>) -> WriteBatch {
        let payload_bytes = entries
            .iter()
            .map(|(_, k, v)| 1 + 10 + k.len() + 10 + v.len())
            .sum();
        WriteBatch {
            scan_only: vec![false; entries.len()],
            entries,
            payload_bytes,
        }
    }

    /// Room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        self.scan_only.reserve(additional);
    }

    fn push(&mut self, kind: ValueKind, key: Bytes, value: Bytes) {
        self.payload_bytes += 1 + 10 + key.len() + 10 + value.len();
        self.entries.push((kind, key, value));
        self.scan_only.push(false);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Roughly the bytes of the batch's WAL payload.
    pub fn approx_bytes(&self) -> usize {
        HEADER_BYTES + self.payload_bytes
    }

    pub fn into_entries(self) -> Vec<(ValueKind, Bytes, Bytes)> {
        self.entries
    }

    /// The entries, each with whether it was written scan-only.
    pub fn into_entries_marked(self) -> impl Iterator<Item = ((ValueKind, Bytes, Bytes), bool)> {
        self.entries.into_iter().zip(self.scan_only)
    }

    /// The entries and, beside them, whether each was written scan-only.
    pub fn into_parts(self) -> (Vec<(ValueKind, Bytes, Bytes)>, Vec<bool>) {
        (self.entries, self.scan_only)
    }

    /// Whether entry `i` was written scan-only.
    pub fn is_scan_only(&self, i: usize) -> bool {
        self.scan_only[i]
    }

    pub fn entries(&self) -> &[(ValueKind, Bytes, Bytes)] {
        &self.entries
    }

    /// Checks the limits the engine enforces on keys and values.
    pub fn validate(&self) -> Result<(), LsmError> {
        for (_, key, value) in &self.entries {
            if key.len() > USER_KEY_BYTES_MAX {
                return Err(LsmError::KeyTooLarge { len: key.len() });
            }
            if value.len() > VALUE_BYTES_MAX {
                return Err(LsmError::ValueTooLarge { len: value.len() });
            }
        }
        Ok(())
    }

    pub fn encode(&self, base_seq: SeqNo) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(base_seq, &mut out);
        out
    }

    /// Appends the batch's encoding to `out` (the WAL's buffer: see `Wal::append_with`).
    pub fn encode_into(&self, base_seq: SeqNo, out: &mut Vec<u8>) {
        out.reserve(HEADER_BYTES + self.payload_bytes);
        out.extend_from_slice(&base_seq.to_le_bytes());
        let count = u32::try_from(self.entries.len()).expect("batch of at most u32::MAX entries");
        out.extend_from_slice(&count.to_le_bytes());
        for (kind, key, value) in &self.entries {
            out.push(*kind as u8);
            put_varint(out, key.len() as u64);
            out.extend_from_slice(key);
            put_varint(out, value.len() as u64);
            out.extend_from_slice(value);
        }
    }
}

/// A decoded batch payload.
pub struct DecodedBatch {
    pub base_seq: SeqNo,
    pub entries: Vec<(ValueKind, Bytes, Bytes)>,
}

/// Decodes a payload written by [`WriteBatch::encode`]; `payload` is shared so that keys and
/// values are slices of it. Errors name the byte offset of the problem.
pub fn decode(payload: Bytes) -> Result<DecodedBatch, String> {
    if payload.len() < HEADER_BYTES {
        return Err(format!("batch header truncated ({} bytes)", payload.len()));
    }
    let base_seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes")) as usize;
    let mut at = HEADER_BYTES;
    // Each entry takes at least 3 bytes: refuse counts the payload cannot hold before allocating.
    if count > (payload.len() - HEADER_BYTES) / 3 {
        return Err(format!(
            "batch count {count} exceeds what {} bytes hold",
            payload.len()
        ));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let kind_byte = *payload
            .get(at)
            .ok_or_else(|| format!("entry truncated at byte {at}"))?;
        let kind = ValueKind::from_u8(kind_byte)
            .ok_or_else(|| format!("unknown entry kind {kind_byte} at byte {at}"))?;
        at += 1;
        let key = take_bytes(&payload, &mut at, USER_KEY_BYTES_MAX)?;
        let value = take_bytes(&payload, &mut at, VALUE_BYTES_MAX)?;
        entries.push((kind, key, value));
    }
    if at != payload.len() {
        return Err(format!(
            "{} trailing bytes after the batch",
            payload.len() - at
        ));
    }
    Ok(DecodedBatch { base_seq, entries })
}

fn take_bytes(payload: &Bytes, at: &mut usize, max: usize) -> Result<Bytes, String> {
    let start = *at;
    let len = get_varint(payload, at).ok_or_else(|| format!("bad length at byte {start}"))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= max)
        .ok_or_else(|| format!("length {len} over the limit at byte {start}"))?;
    let end = at
        .checked_add(len)
        .filter(|&end| end <= payload.len())
        .ok_or_else(|| format!("bytes truncated at byte {start}"))?;
    let bytes = payload.slice(*at..end);
    *at = end;
    Ok(bytes)
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_roundtrips_and_bad_payloads_are_refused() {
        let mut batch = WriteBatch::new();
        batch.put(&b"a"[..], &b"1"[..]);
        batch.delete(&b"b"[..]);
        batch.put(&b""[..], vec![7u8; 300]);
        let payload = Bytes::from(batch.encode(42));
        let decoded = decode(payload.clone()).unwrap();
        assert_eq!(decoded.base_seq, 42);
        assert_eq!(decoded.entries, batch.entries);
        for cut in 0..payload.len() {
            assert!(decode(payload.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut bad = payload.to_vec();
        bad[12] = 9;
        assert!(decode(Bytes::from(bad)).is_err());
    }
}
