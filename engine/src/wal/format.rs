//! On-disk layout of WAL segments and records (see `engine/FORMAT.md`, byte by byte).
//! Encoding asserts what it writes; decoding returns a reason for anything it rejects and never
//! panics on data read from disk.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the segment header block; records start at this offset.
pub const SEGMENT_HEADER_BYTES: usize = 4096;
/// Segment magic: ASCII "HELIOWAL".
pub const SEGMENT_MAGIC: [u8; 8] = *b"HELIOWAL";
/// Current segment format version.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Size of a record header.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Largest payload one record may carry.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 576 << 20;

/// The fixed part at the start of the 4096-byte segment header block (rest of the block: zeros).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub format_version: U32,
    pub reserved0: U32,
    pub first_lsn: U64,
    /// crc32c of bytes [0, 24) of this struct.
    pub crc32c: U32,
    pub reserved1: U32,
}

const SEGMENT_HEADER_CRC_COVERED_BYTES: usize = 24;

/// The fixed 32-byte header in front of every record payload.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordHeader {
    /// crc32c of header bytes [4, 32) followed by the payload.
    pub crc32c: U32,
    /// Payload length in bytes.
    pub len: U32,
    pub lsn: U64,
    pub term: U64,
    pub kind: u8,
    pub reserved: [u8; 7],
}

const _: () = assert!(std::mem::size_of::<SegmentHeader>() == 32);
const _: () = assert!(std::mem::size_of::<RecordHeader>() == RECORD_HEADER_BYTES);

/// Encodes a segment header block (4096 bytes, zero-padded) into `block`.
pub fn encode_segment_header(block: &mut [u8], first_lsn: u64) {
    assert_eq!(block.len(), SEGMENT_HEADER_BYTES);
    assert!(first_lsn >= 1);
    let mut header = SegmentHeader {
        magic: SEGMENT_MAGIC,
        format_version: U32::new(SEGMENT_FORMAT_VERSION),
        reserved0: U32::new(0),
        first_lsn: U64::new(first_lsn),
        crc32c: U32::new(0),
        reserved1: U32::new(0),
    };
    let crc = crc32c::crc32c(&header.as_bytes()[..SEGMENT_HEADER_CRC_COVERED_BYTES]);
    header.crc32c = U32::new(crc);
    block.fill(0);
    block[..32].copy_from_slice(header.as_bytes());
}

/// Decodes and checks a segment header; returns its first lsn.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, String> {
    let Ok((header, _)) = SegmentHeader::read_from_prefix(bytes) else {
        return Err(format!("segment header truncated ({} bytes)", bytes.len()));
    };
    if header.magic != SEGMENT_MAGIC {
        return Err("bad segment magic".to_string());
    }
    let crc = crc32c::crc32c(&header.as_bytes()[..SEGMENT_HEADER_CRC_COVERED_BYTES]);
    if crc != header.crc32c.get() {
        return Err("segment header checksum mismatch".to_string());
    }
    if header.format_version.get() != SEGMENT_FORMAT_VERSION {
        return Err(format!(
            "unsupported segment format version {}",
            header.format_version.get()
        ));
    }
    if header.first_lsn.get() == 0 {
        return Err("segment first lsn is 0".to_string());
    }
    Ok(header.first_lsn.get())
}

/// Appends one encoded record (header + payload) to `out` (tests build segments with it).
#[cfg(test)]
pub fn encode_record(out: &mut Vec<u8>, lsn: u64, term: u64, kind: u8, payload: &[u8]) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_BYTES, 0);
    out.extend_from_slice(payload);
    seal_record(&mut out[start..], lsn, term, kind);
}

/// Writes the header of the record in `record`, whose payload already follows the header's
/// room (`RECORD_HEADER_BYTES` bytes at its start): a payload encoded in place is never copied.
pub fn seal_record(record: &mut [u8], lsn: u64, term: u64, kind: u8) {
    assert!(lsn >= 1);
    let (head, payload) = record.split_at_mut(RECORD_HEADER_BYTES);
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX);
    let mut header = RecordHeader {
        crc32c: U32::new(0),
        len: U32::new(u32::try_from(payload.len()).expect("bounded by RECORD_PAYLOAD_BYTES_MAX")),
        lsn: U64::new(lsn),
        term: U64::new(term),
        kind,
        reserved: [0; 7],
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header.as_bytes()[4..]), payload);
    header.crc32c = U32::new(crc);
    head.copy_from_slice(header.as_bytes());
}

/// A record decoded from bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub lsn: u64,
    pub term: u64,
    pub kind: u8,
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Encoded size (header + payload).
    pub fn encoded_bytes(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }
}

/// What decoding at an offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A record whose checksum verifies.
    Record(Record<'a>),
    /// An all-zero header: the end of the log in this segment.
    End,
    /// Anything else: torn or corrupt, with the reason.
    Bad(String),
}

/// Decodes the record starting at `bytes[0]` (`bytes` runs to the end of the file).
/// The end of the file exactly at a record boundary reads as [`Decoded::End`].
pub fn decode_record(bytes: &[u8]) -> Decoded<'_> {
    if bytes.is_empty() {
        return Decoded::End;
    }
    let Ok((header, rest)) = RecordHeader::read_from_prefix(bytes) else {
        if bytes.iter().all(|b| *b == 0) {
            return Decoded::End;
        }
        return Decoded::Bad(format!("record header truncated ({} bytes)", bytes.len()));
    };
    if header.as_bytes().iter().all(|b| *b == 0) {
        return Decoded::End;
    }
    let len = header.len.get() as usize;
    if len > RECORD_PAYLOAD_BYTES_MAX {
        return Decoded::Bad(format!(
            "record length {len} exceeds {RECORD_PAYLOAD_BYTES_MAX}"
        ));
    }
    if header.reserved != [0; 7] {
        return Decoded::Bad("record reserved bytes not zero".to_string());
    }
    let Some(payload) = rest.get(..len) else {
        return Decoded::Bad(format!(
            "record payload truncated ({} of {len} bytes)",
            rest.len()
        ));
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header.as_bytes()[4..]), payload);
    if crc != header.crc32c.get() {
        return Decoded::Bad("record checksum mismatch".to_string());
    }
    if header.lsn.get() == 0 {
        return Decoded::Bad("record lsn is 0".to_string());
    }
    Decoded::Record(Record {
        lsn: header.lsn.get(),
        term: header.term.get(),
        kind: header.kind,
        payload,
    })
}

/// Scans `bytes` from `from` for a record whose checksum verifies and whose lsn is greater than
/// `lsn_after`; returns its offset. Used to tell a torn tail (nothing valid follows) from
/// corruption in the middle of the log (valid records follow).
pub fn find_valid_record(bytes: &[u8], from: usize, lsn_after: u64) -> Option<usize> {
    let last_start = bytes.len().checked_sub(RECORD_HEADER_BYTES)?;
    let mut offset = from;
    while offset <= last_start {
        // A record header is never all zeros (its lsn is at least 1), so a record starting at
        // `offset` has a non-zero byte within its first RECORD_HEADER_BYTES: skip zero runs
        // (a zero-filled segment tail is megabytes long) in one pass.
        let nonzero = bytes[offset..].iter().position(|&b| b != 0)?;
        if nonzero >= RECORD_HEADER_BYTES {
            offset += nonzero - (RECORD_HEADER_BYTES - 1);
            continue;
        }
        if let Decoded::Record(record) = decode_record(&bytes[offset..]) {
            if record.lsn > lsn_after {
                return Some(offset);
            }
        }
        offset += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_rejections() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, 0, 3, b"hello");
        assert_eq!(out.len(), RECORD_HEADER_BYTES + 5);
        let expected = Record {
            lsn: 7,
            term: 0,
            kind: 3,
            payload: b"hello",
        };
        assert_eq!(decode_record(&out), Decoded::Record(expected));
        assert!(matches!(decode_record(&out[..20]), Decoded::Bad(_)));
        assert!(matches!(decode_record(&out[..34]), Decoded::Bad(_)));
        assert_eq!(decode_record(&[0; 40]), Decoded::End);
        assert_eq!(decode_record(&[0; 10]), Decoded::End);
        let mut flipped = out.clone();
        flipped[33] ^= 4;
        assert!(matches!(decode_record(&flipped), Decoded::Bad(_)));
        let mut padded = vec![0xAB; 3];
        padded.extend_from_slice(&out);
        assert_eq!(find_valid_record(&padded, 0, 6), Some(3));
        assert_eq!(find_valid_record(&padded, 0, 7), None);
    }

    #[test]
    fn segment_header_round_trip() {
        let mut block = vec![1; SEGMENT_HEADER_BYTES];
        encode_segment_header(&mut block, 42);
        assert_eq!(decode_segment_header(&block), Ok(42));
        block[17] ^= 1;
        assert!(decode_segment_header(&block).is_err());
        assert!(decode_segment_header(&[0; 4]).is_err());
    }
}
