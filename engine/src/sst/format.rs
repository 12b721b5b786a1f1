//! SSTable byte layout (see `engine/FORMAT.md`, section "SSTable"): varints, block handles,
//! block trailers and compression, the properties block and the footer. Encoding asserts what it
//! writes; decoding returns a reason for anything it rejects and never panics on file bytes.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::lsm::key::{self, SeqNo};

/// Footer magic: ASCII "HELIOSST".
pub const SST_MAGIC: [u8; 8] = *b"HELIOSST";
/// Current SSTable format version. 2: blocked bloom filters and hash-indexed data blocks, each
/// flagged in its own bytes, so a version-1 file reads as before; the number exists so an
/// older build refuses a newer file by its version, not as corrupt.
pub const SST_FORMAT_VERSION: u32 = 2;
/// Oldest SSTable format version this build reads.
pub const SST_FORMAT_VERSION_OLDEST_READ: u32 = 1;
/// Size of the footer at the end of every file.
pub const FOOTER_BYTES: usize = 64;
/// Size of the trailer after every stored block: compression byte + crc32c.
pub const BLOCK_TRAILER_BYTES: usize = 5;
/// Largest stored or decoded block. Blocks hold at least one entry, so this also bounds one
/// entry (a value up to the WAL's 576 MiB record fits); u32 restart offsets need < 4 GiB.
pub const BLOCK_BYTES_MAX: usize = 1 << 30;
/// Longest encoding of a u64 varint.
pub const VARINT_BYTES_MAX: usize = 10;
/// Bytes in front of a compressed block's payload: the decoded length (u32 LE).
pub const COMPRESSED_PREFIX_BYTES: usize = 4;

const _: () = assert!(BLOCK_BYTES_MAX < u32::MAX as usize);

/// Block compression of a file; the per-block trailer records what each block actually uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    /// zstd at this level (`zstd::compression_level_range()`).
    Zstd(i32),
}

impl Compression {
    /// The block trailer's compression byte.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd(_) => 2,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Varints (LEB128, little-endian base-128).

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes a varint at the start of `bytes`: `(value, bytes used)`. None when cut short, longer
/// than 10 bytes, or overflowing 64 bits.
#[inline]
pub fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    // Most lengths in a block (shared, unshared, value) are under 128: one byte.
    if let Some(&byte) = bytes.first() {
        if byte < 0x80 {
            return Some((u64::from(byte), 1));
        }
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(VARINT_BYTES_MAX).enumerate() {
        let low = u64::from(byte & 0x7f);
        if i == VARINT_BYTES_MAX - 1 && low > 1 {
            return None; // Bits past 64.
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A cursor that decodes varints and byte strings, failing with a reason.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub fn varint(&mut self) -> Result<u64, &'static str> {
        let (value, used) = get_varint(&self.bytes[self.pos..]).ok_or("bad varint")?;
        self.pos += used;
        Ok(value)
    }

    /// A varint that must fit `usize` and be at most `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, &'static str> {
        let value = self.varint()?;
        usize::try_from(value)
            .ok()
            .filter(|&len| len <= max)
            .ok_or("length out of range")
    }

    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("length past end of block")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.bytes(1)?[0])
    }
}

// ---------------------------------------------------------------------------------------------
// Block handles and trailers.

/// Where a block is stored: `size` counts the stored (possibly compressed) bytes, not the
/// 5-byte trailer that follows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

impl BlockHandle {
    /// Offset just past the block's trailer.
    pub fn end(self) -> u64 {
        self.offset + self.size + BLOCK_TRAILER_BYTES as u64
    }

    pub fn encode(self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.size);
    }

    /// Decodes an index entry's value; the whole value must be the handle.
    pub fn decode(bytes: &[u8]) -> Result<BlockHandle, &'static str> {
        let mut decoder = Decoder::new(bytes);
        let offset = decoder.varint()?;
        let size = decoder.varint()?;
        if !decoder.is_empty() {
            return Err("trailing bytes after block handle");
        }
        if size > BLOCK_BYTES_MAX as u64 {
            return Err("block size over limit");
        }
        // Bounded so that `end` cannot overflow.
        if offset > u64::MAX / 2 {
            return Err("block offset out of range");
        }
        Ok(BlockHandle { offset, size })
    }
}

/// The trailer's crc: crc32c over the stored bytes, then the compression byte.
pub fn block_crc(stored: &[u8], compression: u8) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(stored), &[compression])
}

/// Appends `raw` to `out` as a stored block plus trailer, compressed with `compression` when
/// that saves at least 1/8. Returns the handle's size (stored bytes, without the trailer).
pub fn encode_block(out: &mut Vec<u8>, raw: &[u8], compression: Compression) -> u64 {
    assert!(raw.len() <= BLOCK_BYTES_MAX, "block of {} bytes", raw.len());
    let start = out.len();
    let mut code = 0u8;
    if let Some(compressed) = compress(raw, compression) {
        // Storing compressed must pay for the decompression on every read.
        if compressed.len() <= raw.len() - raw.len() / 8 {
            out.extend_from_slice(&compressed);
            code = compression.code();
        }
    }
    if code == 0 {
        out.extend_from_slice(raw);
    }
    let stored_len = out.len() - start;
    let crc = block_crc(&out[start..], code);
    out.push(code);
    out.extend_from_slice(&crc.to_le_bytes());
    stored_len as u64
}

/// `raw` compressed: decoded length (u32 LE) + codec payload. None for `Compression::None`.
fn compress(raw: &[u8], compression: Compression) -> Option<Vec<u8>> {
    let payload = match compression {
        Compression::None => return None,
        Compression::Lz4 => lz4_flex::block::compress(raw),
        // zstd fails only on bad parameters, which `SstWriter::create` rules out.
        Compression::Zstd(level) => zstd::bulk::compress(raw, level).expect("zstd compress"),
    };
    let mut out = Vec::with_capacity(COMPRESSED_PREFIX_BYTES + payload.len());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    Some(out)
}

/// Checks a stored block's trailer and decodes it. `with_trailer` is the stored bytes followed
/// by the 5-byte trailer.
pub fn decode_block(with_trailer: &[u8]) -> Result<Vec<u8>, String> {
    let stored_len = with_trailer
        .len()
        .checked_sub(BLOCK_TRAILER_BYTES)
        .ok_or("block shorter than its trailer")?;
    let (stored, trailer) = with_trailer.split_at(stored_len);
    let code = trailer[0];
    let crc = u32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    let actual = block_crc(stored, code);
    if crc != actual {
        return Err(format!(
            "block checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    decompress(stored, code)
}

fn decompress(stored: &[u8], code: u8) -> Result<Vec<u8>, String> {
    if code == 0 {
        return Ok(stored.to_vec());
    }
    if stored.len() < COMPRESSED_PREFIX_BYTES {
        return Err("compressed block shorter than its length prefix".into());
    }
    let (prefix, payload) = stored.split_at(COMPRESSED_PREFIX_BYTES);
    let raw_len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if raw_len > BLOCK_BYTES_MAX {
        return Err(format!("decoded block length {raw_len} over limit"));
    }
    let raw = match code {
        1 => lz4_flex::block::decompress(payload, raw_len).map_err(|e| format!("lz4: {e}"))?,
        2 => zstd::bulk::decompress(payload, raw_len).map_err(|e| format!("zstd: {e}"))?,
        other => return Err(format!("unknown compression type {other}")),
    };
    if raw.len() != raw_len {
        return Err(format!(
            "block decoded to {} bytes, prefix says {raw_len}",
            raw.len()
        ));
    }
    Ok(raw)
}

// ---------------------------------------------------------------------------------------------
// Footer.

/// The last 64 bytes of every SSTable.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Footer {
    pub index_offset: U64,
    pub index_size: U64,
    pub bloom_offset: U64,
    pub bloom_size: U64,
    pub properties_offset: U64,
    pub properties_size: U64,
    pub format_version: U32,
    /// crc32c of footer bytes [0, 52) followed by bytes [56, 64).
    pub crc32c: U32,
    pub magic: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<Footer>() == FOOTER_BYTES);
const FOOTER_CRC_AT: usize = 52;

fn footer_crc(bytes: &[u8]) -> u32 {
    assert_eq!(bytes.len(), FOOTER_BYTES);
    let crc = crc32c::crc32c(&bytes[..FOOTER_CRC_AT]);
    crc32c::crc32c_append(crc, &bytes[FOOTER_CRC_AT + 4..])
}

/// The three metadata blocks a footer points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FooterHandles {
    pub index: BlockHandle,
    pub bloom: BlockHandle,
    pub properties: BlockHandle,
    /// The file's format version (a writer writes [`SST_FORMAT_VERSION`]).
    pub format_version: u32,
}

pub fn encode_footer(handles: FooterHandles) -> [u8; FOOTER_BYTES] {
    let mut footer = Footer {
        index_offset: U64::new(handles.index.offset),
        index_size: U64::new(handles.index.size),
        bloom_offset: U64::new(handles.bloom.offset),
        bloom_size: U64::new(handles.bloom.size),
        properties_offset: U64::new(handles.properties.offset),
        properties_size: U64::new(handles.properties.size),
        format_version: U32::new(handles.format_version),
        crc32c: U32::new(0),
        magic: SST_MAGIC,
    };
    footer.crc32c = U32::new(footer_crc(footer.as_bytes()));
    let mut out = [0u8; FOOTER_BYTES];
    out.copy_from_slice(footer.as_bytes());
    out
}

/// Decodes and checks a footer found at `footer_offset`: magic, checksum, version, and that the
/// index, bloom and properties blocks lie back to back, ending exactly at the footer.
pub fn decode_footer(bytes: &[u8], footer_offset: u64) -> Result<FooterHandles, String> {
    let footer = Footer::read_from_bytes(bytes).map_err(|_| "footer is not 64 bytes")?;
    if footer.magic != SST_MAGIC {
        return Err("bad footer magic (not an SSTable, or truncated)".into());
    }
    let crc = footer_crc(bytes);
    if footer.crc32c.get() != crc {
        return Err(format!(
            "footer checksum mismatch (stored {:#010x}, computed {crc:#010x})",
            footer.crc32c.get()
        ));
    }
    let versions_read = SST_FORMAT_VERSION_OLDEST_READ..=SST_FORMAT_VERSION;
    if !versions_read.contains(&footer.format_version.get()) {
        return Err(format!(
            "unsupported format version {}",
            footer.format_version.get()
        ));
    }
    let handle = |offset: U64, size: U64| BlockHandle {
        offset: offset.get(),
        size: size.get(),
    };
    let handles = FooterHandles {
        index: handle(footer.index_offset, footer.index_size),
        bloom: handle(footer.bloom_offset, footer.bloom_size),
        properties: handle(footer.properties_offset, footer.properties_size),
        format_version: footer.format_version.get(),
    };
    check_footer_layout(handles, footer_offset)?;
    Ok(handles)
}

fn check_footer_layout(h: FooterHandles, footer_offset: u64) -> Result<(), String> {
    for block in [h.index, h.bloom, h.properties] {
        if block.size > BLOCK_BYTES_MAX as u64 || block.offset > footer_offset {
            return Err(format!("footer block handle {block:?} out of range"));
        }
    }
    let contiguous = h.index.end() == h.bloom.offset
        && h.bloom.end() == h.properties.offset
        && h.properties.end() == footer_offset;
    if !contiguous {
        return Err(format!(
            "footer block handles {h:?} do not end at the footer ({footer_offset})"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties block.

/// What the properties block records about a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstProperties {
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub entries: u64,
    pub tombstones: u64,
    pub seq_min: SeqNo,
    pub seq_max: SeqNo,
    pub data_blocks: u64,
    /// Sum of the internal keys' lengths (before prefix compression).
    pub raw_key_bytes: u64,
    /// Sum of the values' lengths (before block compression).
    pub raw_value_bytes: u64,
    /// What the writer was asked to use; single blocks may still be stored uncompressed.
    pub compression: Compression,
    pub format_version: u32,
}

/// Encoding: varint-prefixed `smallest` and `largest`, then varints `entries`, `tombstones`,
/// `seq_min`, `seq_max`, `data_blocks`, `raw_key_bytes`, `raw_value_bytes`, then
/// `compression:u8`, the zstd level as a zigzag varint (0 otherwise), `format_version` varint.
pub fn encode_properties(props: &SstProperties) -> Vec<u8> {
    let mut out = Vec::with_capacity(props.smallest.len() + props.largest.len() + 64);
    put_varint(&mut out, props.smallest.len() as u64);
    out.extend_from_slice(&props.smallest);
    put_varint(&mut out, props.largest.len() as u64);
    out.extend_from_slice(&props.largest);
    for value in [
        props.entries,
        props.tombstones,
        props.seq_min,
        props.seq_max,
        props.data_blocks,
        props.raw_key_bytes,
        props.raw_value_bytes,
    ] {
        put_varint(&mut out, value);
    }
    out.push(props.compression.code());
    let level = match props.compression {
        Compression::Zstd(level) => level,
        _ => 0,
    };
    put_varint(&mut out, zigzag(level));
    put_varint(&mut out, u64::from(props.format_version));
    out
}

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(value: u64) -> Option<i32> {
    let value = u32::try_from(value).ok()?;
    Some(((value >> 1) as i32) ^ -((value & 1) as i32))
}

pub fn decode_properties(bytes: &[u8]) -> Result<SstProperties, &'static str> {
    let mut d = Decoder::new(bytes);
    let key_bytes_max = key::USER_KEY_BYTES_MAX + key::TRAILER_BYTES;
    let len = d.len(key_bytes_max)?;
    let smallest = d.bytes(len)?.to_vec();
    let len = d.len(key_bytes_max)?;
    let largest = d.bytes(len)?.to_vec();
    let mut next = || d.varint();
    let (entries, tombstones, seq_min, seq_max) = (next()?, next()?, next()?, next()?);
    let (data_blocks, raw_key_bytes, raw_value_bytes) = (next()?, next()?, next()?);
    let code = d.u8()?;
    let level = unzigzag(d.varint()?).ok_or("bad compression level")?;
    let compression = match code {
        0 => Compression::None,
        1 => Compression::Lz4,
        2 => Compression::Zstd(level),
        _ => return Err("unknown compression in properties"),
    };
    let format_version = u32::try_from(d.varint()?).map_err(|_| "bad format version")?;
    if !d.is_empty() {
        return Err("trailing bytes after properties");
    }
    let props = SstProperties {
        smallest,
        largest,
        entries,
        tombstones,
        seq_min,
        seq_max,
        data_blocks,
        raw_key_bytes,
        raw_value_bytes,
        compression,
        format_version,
    };
    check_properties(&props)?;
    Ok(props)
}

/// The properties' own invariants (their agreement with the rest of the file is the reader's).
fn check_properties(p: &SstProperties) -> Result<(), &'static str> {
    let smallest = key::parse(&p.smallest).ok_or("bad smallest key")?;
    let largest = key::parse(&p.largest).ok_or("bad largest key")?;
    if key::compare(&p.smallest, &p.largest).is_gt() {
        return Err("smallest key after largest");
    }
    if p.entries == 0 || p.data_blocks == 0 || p.data_blocks > p.entries {
        return Err("entry or block count out of range");
    }
    if p.tombstones > p.entries || p.seq_min > p.seq_max || p.seq_max > key::SEQ_MAX {
        return Err("tombstone count or sequence range out of range");
    }
    if smallest.seq < p.seq_min || smallest.seq > p.seq_max || largest.seq > p.seq_max {
        return Err("smallest/largest sequence outside the sequence range");
    }
    if !(SST_FORMAT_VERSION_OLDEST_READ..=SST_FORMAT_VERSION).contains(&p.format_version) {
        return Err("unsupported properties format version");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_garbage() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(get_varint(&out), Some((value, out.len())));
            assert_eq!(get_varint(&out[..out.len() - 1]), None);
        }
        assert_eq!(get_varint(&[0x80; 11]), None);
        // 10th byte carrying bits past 64.
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(get_varint(&overflow), None);
    }

    #[test]
    fn zigzag_round_trips() {
        for level in [0, 1, -1, 3, 22, -7, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag(zigzag(level)), Some(level));
        }
    }

    #[test]
    fn blocks_round_trip_with_each_compression() {
        let raw: Vec<u8> = (0..10_000u32).map(|i| (i % 13) as u8).collect();
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd(3)] {
            let mut out = Vec::new();
            let size = encode_block(&mut out, &raw, compression);
            assert_eq!(out.len() as u64, size + BLOCK_TRAILER_BYTES as u64);
            assert_eq!(out[size as usize], compression.code());
            assert_eq!(decode_block(&out).unwrap(), raw);
        }
        // Incompressible data is stored as is.
        let noise: Vec<u8> = (0..4096u64)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()) as u8)
            .collect();
        let mut out = Vec::new();
        let size = encode_block(&mut out, &noise, Compression::Lz4);
        assert_eq!(out[size as usize], 0);
    }

    #[test]
    fn footer_round_trips_and_rejects_flips() {
        let handles = FooterHandles {
            index: BlockHandle {
                offset: 100,
                size: 10,
            },
            bloom: BlockHandle {
                offset: 115,
                size: 20,
            },
            properties: BlockHandle {
                offset: 140,
                size: 30,
            },
            format_version: SST_FORMAT_VERSION,
        };
        let bytes = encode_footer(handles);
        assert_eq!(decode_footer(&bytes, 175).unwrap(), handles);
        assert!(decode_footer(&bytes, 176).is_err());
        // Files of the versions this build reads decode; a newer one is refused by version.
        for version in SST_FORMAT_VERSION_OLDEST_READ..=SST_FORMAT_VERSION + 1 {
            let footer = encode_footer(FooterHandles {
                format_version: version,
                ..handles
            });
            let decoded = decode_footer(&footer, 175);
            if version > SST_FORMAT_VERSION {
                let error = decoded.unwrap_err();
                assert!(error.contains("unsupported format version"), "{error}");
            } else {
                assert_eq!(decoded.unwrap().format_version, version);
            }
        }
        for bit in 0..FOOTER_BYTES * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_footer(&bad, 175).is_err(), "bit {bit}");
        }
    }
}
