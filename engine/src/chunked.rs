//! A double-ended queue kept in chunks of at most `C` items: the memtable's runs of entries
//! written in key order (resident Redis lists are packed instead: `crate::packed_list`).
//!
//! A `VecDeque` grows by doubling: every doubling copies the whole queue into fresh memory,
//! which the kernel must zero page by page first. Here a full chunk is never moved: growing
//! adds a chunk, popping frees one, and indexing stays O(1).
//!
//! Invariant (checked by `assert_invariant` in tests): no chunk is empty, and every chunk but
//! the first and the last holds exactly `C` items. So item `i` lies in the first chunk, or at
//! `(i - first.len()) / C + 1`. A lone chunk grows by doubling like any `VecDeque` until it
//! holds `C` items, so a short queue costs no more than a `VecDeque`.

use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct ChunkedDeque<T, const C: usize> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
    /// The last full-size chunk a pop emptied, kept for the next push: a queue that pushes
    /// and pops across a chunk boundary would otherwise allocate and free a chunk every time.
    spare: Option<VecDeque<T>>,
}

impl<T, const C: usize> Default for ChunkedDeque<T, C> {
    fn default() -> Self {
        const { assert!(C > 0) };
        ChunkedDeque {
            chunks: VecDeque::new(),
            len: 0,
            spare: None,
        }
    }
}

impl<T, const C: usize> ChunkedDeque<T, C> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < C => chunk.push_back(item),
            _ => {
                let mut chunk = self.new_chunk();
                chunk.push_back(item);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, item: T) {
        match self.chunks.front_mut() {
            Some(chunk) if chunk.len() < C => chunk.push_front(item),
            _ => {
                let mut chunk = self.new_chunk();
                chunk.push_front(item);
                self.chunks.push_front(chunk);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let chunk = self.chunks.front_mut()?;
        let item = chunk.pop_front().expect("no chunk is empty");
        if chunk.is_empty() {
            let emptied = self.chunks.pop_front().expect("just popped from");
            self.keep_spare(emptied);
        }
        self.len -= 1;
        Some(item)
    }

    pub fn pop_back(&mut self) -> Option<T> {
        let chunk = self.chunks.back_mut()?;
        let item = chunk.pop_back().expect("no chunk is empty");
        if chunk.is_empty() {
            let emptied = self.chunks.pop_back().expect("just popped from");
            self.keep_spare(emptied);
        }
        self.len -= 1;
        Some(item)
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        let (chunk, offset) = self.locate(index)?;
        self.chunks[chunk].get(offset)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let (chunk, offset) = self.locate(index)?;
        self.chunks[chunk].get_mut(offset)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// Items `start..end` in order (clamped to the list), found by index rather than by
    /// walking from the front.
    pub fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &T> + '_ {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        let (chunk, offset) = self.locate(start).unwrap_or((self.chunks.len(), 0));
        self.chunks
            .range(chunk..)
            .enumerate()
            .flat_map(move |(i, items)| items.range(if i == 0 { offset } else { 0 }..))
            .take(end - start)
    }

    /// The chunks, front to back: for dropping a long deque a chunk at a time.
    pub fn into_chunks(self) -> impl Iterator<Item = VecDeque<T>> {
        self.chunks.into_iter()
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunk and offset of item `index`, if it exists.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        let first = self.chunks.front().map_or(0, VecDeque::len);
        if index < first {
            return Some((0, index));
        }
        let rest = index - first;
        Some((1 + rest / C, rest % C))
    }

    /// A chunk beside a full one is sized for `C` items at once (the list is long); the first
    /// chunk of a list starts empty and grows as a `VecDeque` does (most lists are short).
    fn new_chunk(&mut self) -> VecDeque<T> {
        if self.chunks.is_empty() {
            VecDeque::new()
        } else {
            self.spare
                .take()
                .unwrap_or_else(|| VecDeque::with_capacity(C))
        }
    }

    fn keep_spare(&mut self, emptied: VecDeque<T>) {
        debug_assert!(emptied.is_empty());
        if emptied.capacity() >= C && self.len > 0 {
            self.spare = Some(emptied);
        }
    }

    #[cfg(test)]
    fn assert_invariant(&self) {
        let chunks = self.chunks.len();
        for (i, chunk) in self.chunks.iter().enumerate() {
            assert!(!chunk.is_empty(), "chunk {i} of {chunks} is empty");
            assert!(chunk.len() <= C);
            if i > 0 && i + 1 < chunks {
                assert_eq!(chunk.len(), C, "middle chunk {i} of {chunks} is not full");
            }
        }
        assert_eq!(
            self.len,
            self.chunks.iter().map(VecDeque::len).sum::<usize>()
        );
    }
}

impl<T, const C: usize> std::ops::Index<usize> for ChunkedDeque<T, C> {
    type Output = T;
    fn index(&self, index: usize) -> &T {
        let len = self.len;
        self.get(index)
            .unwrap_or_else(|| panic!("index {index} out of a list of {len}"))
    }
}

impl<T, const C: usize> std::ops::IndexMut<usize> for ChunkedDeque<T, C> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        self.get_mut(index)
            .unwrap_or_else(|| panic!("index {index} out of a list of {len}"))
    }
}

impl<T, const C: usize> FromIterator<T> for ChunkedDeque<T, C> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut deque = ChunkedDeque::default();
        for item in items {
            deque.push_back(item);
        }
        deque
    }
}

impl<T, const C: usize> IntoIterator for ChunkedDeque<T, C> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::collections::vec_deque::IntoIter<VecDeque<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

impl<T: PartialEq, const C: usize> PartialEq for ChunkedDeque<T, C> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq, const C: usize> Eq for ChunkedDeque<T, C> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(u32),
        PushFront(u32),
        PopBack,
        PopFront,
        Set(usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u32>().prop_map(Op::PushBack),
            3 => any::<u32>().prop_map(Op::PushFront),
            2 => Just(Op::PopBack),
            2 => Just(Op::PopFront),
            1 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
        ]
    }

    proptest! {
        /// Against a `VecDeque` model, with chunks of 3 so that runs of pushes and pops cross
        /// chunk boundaries at both ends: every item by index, both iteration orders, length.
        #[test]
        fn matches_a_vecdeque(ops in proptest::collection::vec(op(), 0..400)) {
            let mut deque = ChunkedDeque::<u32, 3>::default();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(v) => { deque.push_back(v); model.push_back(v); }
                    Op::PushFront(v) => { deque.push_front(v); model.push_front(v); }
                    Op::PopBack => prop_assert_eq!(deque.pop_back(), model.pop_back()),
                    Op::PopFront => prop_assert_eq!(deque.pop_front(), model.pop_front()),
                    Op::Set(i, v) if !model.is_empty() => {
                        let i = i % model.len();
                        deque[i] = v;
                        model[i] = v;
                    }
                    Op::Set(..) => {}
                }
                deque.assert_invariant();
                prop_assert_eq!(deque.len(), model.len());
            }
            for (i, item) in model.iter().enumerate() {
                prop_assert_eq!(deque.get(i), Some(item));
            }
            prop_assert_eq!(deque.get(model.len()), None);
            prop_assert!(deque.iter().eq(model.iter()));
            prop_assert!(deque.iter().rev().eq(model.iter().rev()));
            for start in 0..=model.len() + 1 {
                for end in [start, start + 1, start + 4, model.len(), model.len() + 2] {
                    let want = model.iter().skip(start).take(end.saturating_sub(start));
                    prop_assert!(deque.range(start..end).eq(want), "range {}..{}", start, end);
                }
            }
            let collected: ChunkedDeque<u32, 3> = model.iter().copied().collect();
            prop_assert!(collected == deque);
            prop_assert_eq!(deque.into_iter().collect::<Vec<_>>(), Vec::from(model));
        }
    }

    #[test]
    fn pushes_and_pops_across_a_chunk_boundary_reuse_one_chunk() {
        let mut deque = ChunkedDeque::<u64, 4>::default();
        for i in 0..8 {
            deque.push_front(i);
        }
        deque.push_front(8);
        let chunk = deque.chunks[0].as_slices().0.as_ptr();
        for i in 0..10 {
            assert_eq!(deque.pop_front(), Some(8 + i));
            deque.push_front(9 + i);
            assert_eq!(
                deque.chunks[0].as_slices().0.as_ptr(),
                chunk,
                "the same chunk again"
            );
            deque.assert_invariant();
        }
    }

    #[test]
    fn a_long_list_never_moves_a_full_chunk() {
        let mut deque = ChunkedDeque::<u64, 4>::default();
        for i in 0..10 {
            deque.push_back(i);
        }
        let item_address = &deque[4] as *const u64;
        for i in 10..100 {
            deque.push_back(i);
        }
        // The chunk headers may move (the outer deque grows); the items in a full chunk don't.
        assert_eq!(&deque[4] as *const u64, item_address);
        deque.assert_invariant();
        assert_eq!(deque.len(), 100);
    }
}
