//! A list of byte strings packed into chunks of bytes, as Redis's quicklist of listpacks:
//! the resident form of a Redis list.
//!
//! A list of `Bytes` handles cost about 72 bytes per element (a 32-byte handle, the value's
//! own allocation, and the header `Bytes` adds when a value is shared with the memtable). A
//! list of a million short elements then pinned 70 MB, and on a VM where the kernel zeroes
//! every fresh page slowly, growing it was most of a pipelined LPUSH's time. Packed, a 3-byte
//! element costs 5 bytes.
//!
//! # Format
//!
//! A chunk's live bytes are `buf[start..]`, a sequence of elements, each:
//!
//! ```text
//! len: LEB128 varint | data: len bytes | len again: LEB128 varint with its bytes reversed
//! ```
//!
//! The trailing length lets a reader step backwards from an element's end, so both ends of
//! a chunk pop in O(1), and iteration runs either way. Space before `start` is headroom for
//! pushes at the front; a Vec's spare capacity is headroom at the back.
//!
//! # Invariants (checked by `assert_invariants` in tests)
//!
//! - No chunk is empty; the list's `len` is the sum of the chunks' counts.
//! - A chunk holding more than one element holds at most [`CHUNK_BYTES_MAX`] live bytes: one
//!   bigger element gets a chunk of its own.
//!
//! Finding element `i` walks the chunks' counts from the nearer end of the list, then the
//! elements of its chunk from the nearer end of the chunk: O(chunks + chunk), as Redis's.

use std::collections::VecDeque;
use std::fmt;

/// Live bytes of a chunk of more than one element (Redis's `list-max-listpack-size -2`).
/// Tests use tiny chunks so that their lists cross chunk boundaries.
#[cfg(not(test))]
pub const CHUNK_BYTES_MAX: usize = 8 << 10;
#[cfg(test)]
pub const CHUNK_BYTES_MAX: usize = 24;

/// Front headroom a chunk grows by at least, so that pushes at the front do not copy the
/// chunk each time.
const FRONT_HEADROOM_MIN: usize = 64;

/// Bytes of the LEB128 varint of `n`.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes an element of `len` data bytes takes in a chunk.
pub fn encoded_len(len: usize) -> usize {
    2 * varint_len(len) + len
}

/// Writes `n` as LEB128 into `out` (exactly `varint_len(n)` bytes), reversed when `reverse`.
fn write_varint(out: &mut [u8], mut n: usize, reverse: bool) {
    let width = out.len();
    debug_assert_eq!(width, varint_len(n));
    for i in 0..width {
        let more = if i + 1 < width { 0x80 } else { 0 };
        let byte = (n & 0x7f) as u8 | more;
        n >>= 7;
        out[if reverse { width - 1 - i } else { i }] = byte;
    }
}

/// Reads a LEB128 varint starting at `at`: (value, bytes).
fn read_varint(buf: &[u8], at: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut i = 0;
    loop {
        let byte = buf[at + i];
        n |= ((byte & 0x7f) as usize) << (7 * i);
        i += 1;
        if byte & 0x80 == 0 {
            return (n, i);
        }
    }
}

/// Reads a reversed LEB128 varint that ends just before `end`: (value, bytes).
fn read_varint_back(buf: &[u8], end: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut i = 0;
    loop {
        let byte = buf[end - 1 - i];
        n |= ((byte & 0x7f) as usize) << (7 * i);
        i += 1;
        if byte & 0x80 == 0 {
            return (n, i);
        }
    }
}

/// Encodes one element into `out`, which is exactly `encoded_len(value.len())` bytes.
fn encode_into(out: &mut [u8], value: &[u8]) {
    let width = varint_len(value.len());
    write_varint(&mut out[..width], value.len(), false);
    out[width..width + value.len()].copy_from_slice(value);
    write_varint(&mut out[width + value.len()..], value.len(), true);
}

#[derive(Clone)]
struct Chunk {
    buf: Vec<u8>,
    start: usize,
    count: usize,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            buf: Vec::new(),
            start: 0,
            count: 0,
        }
    }

    fn live_bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether an element of `encoded` bytes may join this chunk.
    fn fits(&self, encoded: usize) -> bool {
        self.count == 0 || self.live_bytes() + encoded <= CHUNK_BYTES_MAX
    }

    fn push_back(&mut self, value: &[u8]) {
        let encoded = encoded_len(value.len());
        if self.buf.len() + encoded > self.buf.capacity() && self.start > 0 {
            // Reuse the room popped at the front before growing: a queue within one chunk
            // would otherwise grow its buffer forever.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let at = self.buf.len();
        self.buf.resize(at + encoded, 0);
        encode_into(&mut self.buf[at..], value);
        self.count += 1;
    }

    fn push_front(&mut self, value: &[u8]) {
        let encoded = encoded_len(value.len());
        if self.start < encoded {
            let live = self.live_bytes();
            let headroom = encoded.max(live).max(FRONT_HEADROOM_MIN);
            let mut buf = Vec::with_capacity(headroom + live);
            buf.resize(headroom, 0);
            buf.extend_from_slice(&self.buf[self.start..]);
            self.buf = buf;
            self.start = headroom;
        }
        self.start -= encoded;
        encode_into(&mut self.buf[self.start..self.start + encoded], value);
        self.count += 1;
    }

    /// The element starting at byte `at`: (data range, end of the element).
    fn element_at(&self, at: usize) -> (std::ops::Range<usize>, usize) {
        let (len, width) = read_varint(&self.buf, at);
        let data = at + width..at + width + len;
        let end = data.end + width;
        (data, end)
    }

    /// The element ending at byte `end`: (start of the element, data range).
    fn element_before(&self, end: usize) -> (usize, std::ops::Range<usize>) {
        let (len, width) = read_varint_back(&self.buf, end);
        let data = end - width - len..end - width;
        (data.start - width, data)
    }

    fn pop_front(&mut self) {
        let (_, end) = self.element_at(self.start);
        self.start = end;
        self.count -= 1;
        if self.count == 0 {
            self.buf.clear();
            self.start = 0;
        }
    }

    fn pop_back(&mut self) {
        let (at, _) = self.element_before(self.buf.len());
        self.buf.truncate(at);
        self.count -= 1;
        if self.count == 0 {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Byte offset where element `i` (< count) starts, walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        debug_assert!(i < self.count);
        if i <= self.count / 2 {
            let mut at = self.start;
            for _ in 0..i {
                at = self.element_at(at).1;
            }
            at
        } else {
            let mut end = self.buf.len();
            for _ in 0..self.count - i {
                end = self.element_before(end).0;
            }
            end
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let (data, _) = self.element_at(self.offset_of(i));
        &self.buf[data]
    }

    fn set(&mut self, i: usize, value: &[u8]) {
        let at = self.offset_of(i);
        let (_, end) = self.element_at(at);
        let mut encoded = vec![0; encoded_len(value.len())];
        encode_into(&mut encoded, value);
        self.buf.splice(at..end, encoded);
    }

    fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            chunk: self,
            front: self.start,
            back: self.buf.len(),
            left: self.count,
        }
    }

    /// Splits off the elements from `i` on into a new chunk.
    fn split_off(&mut self, i: usize) -> Chunk {
        let at = self.offset_of(i);
        let tail = Chunk {
            buf: self.buf[at..].to_vec(),
            start: 0,
            count: self.count - i,
        };
        self.buf.truncate(at);
        self.count = i;
        tail
    }
}

/// The elements of one chunk, from either end.
struct ChunkIter<'a> {
    chunk: &'a Chunk,
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (data, end) = self.chunk.element_at(self.front);
        self.front = end;
        self.left -= 1;
        Some(&self.chunk.buf[data])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for ChunkIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (at, data) = self.chunk.element_before(self.back);
        self.back = at;
        self.left -= 1;
        Some(&self.chunk.buf[data])
    }
}

/// A Redis list's elements, packed (see the module's documentation).
#[derive(Default)]
pub struct PackedList {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// What the chunks hold allocated: their buffers' capacity (headroom included: a chunk
    /// grown by pushes at the front may hold twice its live bytes) and their own size. Kept
    /// as they change, so that a memory bound reads it in O(1).
    allocated: usize,
}

/// Bytes a chunk costs besides its buffer (its place in the chunk deque).
const CHUNK_BYTES: usize = std::mem::size_of::<Chunk>();

impl PackedList {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, value: &[u8]) {
        let encoded = encoded_len(value.len());
        if !self.chunks.back().is_some_and(|c| c.fits(encoded)) {
            self.chunks.push_back(Chunk::new());
            self.allocated += CHUNK_BYTES;
        }
        let chunk = self.chunks.back_mut().expect("pushed above");
        let before = chunk.buf.capacity();
        chunk.push_back(value);
        self.allocated = self.allocated + chunk.buf.capacity() - before;
        self.len += 1;
    }

    pub fn push_front(&mut self, value: &[u8]) {
        let encoded = encoded_len(value.len());
        if !self.chunks.front().is_some_and(|c| c.fits(encoded)) {
            self.chunks.push_front(Chunk::new());
            self.allocated += CHUNK_BYTES;
        }
        let chunk = self.chunks.front_mut().expect("pushed above");
        let before = chunk.buf.capacity();
        chunk.push_front(value);
        self.allocated = self.allocated + chunk.buf.capacity() - before;
        self.len += 1;
    }

    /// Removes the first element; false when the list is empty.
    pub fn pop_front(&mut self) -> bool {
        let Some(chunk) = self.chunks.front_mut() else {
            return false;
        };
        chunk.pop_front();
        if chunk.count == 0 {
            let chunk = self.chunks.pop_front().expect("the chunk just popped from");
            self.allocated -= chunk.buf.capacity() + CHUNK_BYTES;
        }
        self.len -= 1;
        true
    }

    /// Removes the last element; false when the list is empty.
    pub fn pop_back(&mut self) -> bool {
        let Some(chunk) = self.chunks.back_mut() else {
            return false;
        };
        chunk.pop_back();
        if chunk.count == 0 {
            let chunk = self.chunks.pop_back().expect("the chunk just popped from");
            self.allocated -= chunk.buf.capacity() + CHUNK_BYTES;
        }
        self.len -= 1;
        true
    }

    pub fn front(&self) -> Option<&[u8]> {
        self.chunks.front().map(|c| c.get(0))
    }

    pub fn back(&self) -> Option<&[u8]> {
        self.chunks.back().map(|c| c.get(c.count - 1))
    }

    /// The chunk holding element `index` (< len) and the element's position in it, counted
    /// from the nearer end of the list.
    fn locate(&self, index: usize) -> (usize, usize) {
        debug_assert!(index < self.len);
        if index < self.len / 2 {
            let mut i = index;
            for (ci, chunk) in self.chunks.iter().enumerate() {
                if i < chunk.count {
                    return (ci, i);
                }
                i -= chunk.count;
            }
        } else {
            let mut from_back = self.len - index;
            for (ci, chunk) in self.chunks.iter().enumerate().rev() {
                if from_back <= chunk.count {
                    return (ci, chunk.count - from_back);
                }
                from_back -= chunk.count;
            }
        }
        unreachable!("index {index} within a list of {}", self.len)
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        if index >= self.len {
            return None;
        }
        let (ci, i) = self.locate(index);
        Some(self.chunks[ci].get(i))
    }

    /// Replaces element `index` (< len) with `value`.
    pub fn set(&mut self, index: usize, value: &[u8]) {
        assert!(index < self.len, "set at {index} in a list of {}", self.len);
        let (ci, i) = self.locate(index);
        let chunk = &mut self.chunks[ci];
        let before = chunk.buf.capacity();
        chunk.set(i, value);
        self.allocated = self.allocated + chunk.buf.capacity() - before;
        self.split_oversized(ci);
    }

    /// Splits chunk `ci` until every piece holds at most `CHUNK_BYTES_MAX` live bytes or one
    /// element.
    fn split_oversized(&mut self, ci: usize) {
        let mut ci = ci;
        loop {
            let chunk = &mut self.chunks[ci];
            if chunk.count <= 1 || chunk.live_bytes() <= CHUNK_BYTES_MAX {
                return;
            }
            // Keep as many leading elements as fit (at least one).
            let mut keep = 0;
            let mut bytes = 0;
            for value in chunk.iter() {
                let e = encoded_len(value.len());
                if keep > 0 && bytes + e > CHUNK_BYTES_MAX {
                    break;
                }
                bytes += e;
                keep += 1;
            }
            let tail = chunk.split_off(keep);
            self.allocated += tail.buf.capacity() + CHUNK_BYTES;
            self.chunks.insert(ci + 1, tail);
            ci += 1;
        }
    }

    /// The elements, first to last.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        Iter {
            chunks: self.chunks.iter(),
            front: None,
            back: None,
            left: self.len,
        }
    }

    /// Elements `range.start..range.end` (within the list), first to last.
    pub fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &[u8]> + '_ {
        assert!(range.start <= range.end && range.end <= self.len);
        let count = range.end - range.start;
        let (first_chunk, skip) = if count == 0 {
            (self.chunks.len(), 0)
        } else {
            self.locate(range.start)
        };
        self.chunks
            .range(first_chunk..)
            .flat_map(Chunk::iter)
            .skip(skip)
            .take(count)
    }

    /// Bytes the list's chunks hold (live elements; not headroom).
    pub fn packed_bytes(&self) -> usize {
        self.chunks.iter().map(Chunk::live_bytes).sum()
    }

    /// Bytes the list holds allocated (see `allocated`): what a memory bound counts.
    pub fn allocated_bytes(&self) -> usize {
        self.allocated
    }

    #[cfg(test)]
    fn assert_invariants(&self) {
        let mut total = 0;
        for chunk in &self.chunks {
            assert!(chunk.count > 0, "an empty chunk");
            assert!(
                chunk.count == 1 || chunk.live_bytes() <= CHUNK_BYTES_MAX,
                "a chunk of {} elements holds {} bytes",
                chunk.count,
                chunk.live_bytes()
            );
            assert_eq!(chunk.iter().count(), chunk.count);
            let bytes: usize = chunk.iter().map(|v| encoded_len(v.len())).sum();
            assert_eq!(bytes, chunk.live_bytes());
            total += chunk.count;
        }
        assert_eq!(total, self.len);
        let allocated: usize = self
            .chunks
            .iter()
            .map(|c| c.buf.capacity() + CHUNK_BYTES)
            .sum();
        assert_eq!(allocated, self.allocated, "allocated bytes kept in step");
    }
}

/// The elements of a list, from either end.
struct Iter<'a> {
    chunks: std::collections::vec_deque::Iter<'a, Chunk>,
    front: Option<ChunkIter<'a>>,
    back: Option<ChunkIter<'a>>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(value) = self.front.as_mut().and_then(Iterator::next) {
                self.left -= 1;
                return Some(value);
            }
            match self.chunks.next() {
                Some(chunk) => self.front = Some(chunk.iter()),
                None => {
                    // The rest is in the chunk the back end started.
                    let value = self.back.as_mut().and_then(Iterator::next)?;
                    self.left -= 1;
                    return Some(value);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(value) = self.back.as_mut().and_then(DoubleEndedIterator::next_back) {
                self.left -= 1;
                return Some(value);
            }
            match self.chunks.next_back() {
                Some(chunk) => self.back = Some(chunk.iter()),
                None => {
                    let value = self
                        .front
                        .as_mut()
                        .and_then(DoubleEndedIterator::next_back)?;
                    self.left -= 1;
                    return Some(value);
                }
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> FromIterator<&'a [u8]> for PackedList {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut list = PackedList::default();
        for value in iter {
            list.push_back(value);
        }
        list
    }
}

impl Clone for PackedList {
    /// A clone's buffers are as long as their contents (a `Vec`'s clone drops its spare
    /// capacity), so its allocation is counted anew.
    fn clone(&self) -> Self {
        let chunks = self.chunks.clone();
        let allocated = chunks.iter().map(|c| c.buf.capacity() + CHUNK_BYTES).sum();
        PackedList {
            chunks,
            len: self.len,
            allocated,
        }
    }
}

impl PartialEq for PackedList {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for PackedList {}

impl fmt::Debug for PackedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(bytes::Bytes::copy_from_slice))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopBack,
        PopFront,
        Set(usize, Vec<u8>),
    }

    /// Values from empty to a few times a chunk's bound, so that some take a chunk alone
    /// and some lengths need two-byte varints.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..6),
            1 => proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => value().prop_map(Op::PushBack),
            3 => value().prop_map(Op::PushFront),
            2 => Just(Op::PopBack),
            2 => Just(Op::PopFront),
            1 => (any::<usize>(), value()).prop_map(|(i, v)| Op::Set(i, v)),
        ]
    }

    fn check(list: &PackedList, model: &VecDeque<Vec<u8>>) {
        list.assert_invariants();
        assert_eq!(list.len(), model.len());
        assert!(list.iter().eq(model.iter().map(Vec::as_slice)));
        assert!(list.iter().rev().eq(model.iter().rev().map(Vec::as_slice)));
        for (i, v) in model.iter().enumerate() {
            assert_eq!(list.get(i), Some(v.as_slice()), "element {i}");
        }
        assert_eq!(list.get(model.len()), None);
        assert_eq!(list.front(), model.front().map(Vec::as_slice));
        assert_eq!(list.back(), model.back().map(Vec::as_slice));
    }

    proptest! {
        #[test]
        fn matches_a_vecdeque(ops in proptest::collection::vec(op(), 0..300)) {
            let mut list = PackedList::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(v) => { list.push_back(&v); model.push_back(v); }
                    Op::PushFront(v) => { list.push_front(&v); model.push_front(v); }
                    Op::PopBack => assert_eq!(list.pop_back(), model.pop_back().is_some()),
                    Op::PopFront => assert_eq!(list.pop_front(), model.pop_front().is_some()),
                    Op::Set(i, v) => if !model.is_empty() {
                        let i = i % model.len();
                        list.set(i, &v);
                        model[i] = v;
                    },
                }
                check(&list, &model);
            }
            // Every range, and the mixed ends of one iterator.
            for a in 0..=model.len() {
                for b in a..=model.len().min(a + 7) {
                    prop_assert!(list.range(a..b).eq(model.range(a..b).map(Vec::as_slice)));
                }
            }
            let mut it = list.iter();
            let mut expected = model.iter().map(Vec::as_slice);
            let mut front = true;
            loop {
                let (got, want) = if front {
                    (it.next(), expected.next())
                } else {
                    (it.next_back(), expected.next_back())
                };
                prop_assert_eq!(got, want);
                if want.is_none() { break; }
                front = !front;
            }
            let rebuilt: PackedList = model.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(&rebuilt, &list);
            let cloned = list.clone();
            cloned.assert_invariants();
            prop_assert_eq!(&cloned, &list);
        }
    }

    #[test]
    fn varints_round_trip_both_ways() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            1 << 21,
            usize::MAX >> 1,
        ] {
            let width = varint_len(n);
            let mut buf = vec![0; width];
            write_varint(&mut buf, n, false);
            assert_eq!(read_varint(&buf, 0), (n, width));
            write_varint(&mut buf, n, true);
            assert_eq!(read_varint_back(&buf, width), (n, width));
        }
    }

    #[test]
    fn a_queue_in_one_chunk_reuses_its_buffer() {
        let mut list = PackedList::default();
        list.push_back(b"a");
        for _ in 0..10_000 {
            list.push_back(b"bc");
            assert!(list.pop_front());
        }
        assert_eq!(list.chunks.len(), 1);
        assert!(
            list.chunks[0].buf.capacity() <= 64,
            "{}",
            list.chunks[0].buf.capacity()
        );
        let mut list = PackedList::default();
        list.push_front(b"a");
        for _ in 0..10_000 {
            list.push_front(b"bc");
            assert!(list.pop_back());
        }
        assert!(list.chunks[0].buf.capacity() <= 2 * FRONT_HEADROOM_MIN);
    }

    #[test]
    fn short_elements_cost_their_bytes_and_two() {
        let mut list = PackedList::default();
        for _ in 0..1000 {
            list.push_front(b"xxx");
        }
        assert_eq!(list.packed_bytes(), 5000);
        list.assert_invariants();
    }
}
