//! Key–value pairs packed back to back in one buffer, with an index that orders them.
//!
//! A bulk load (COPY into a table its transaction made, ADD PRIMARY KEY) gathers a million
//! rows per shard before [`super::Lsm::ingest`] writes them as table files. Kept as one
//! `Bytes` pair per row, that cost two allocations and two reference counts per row, and the
//! sorted write then chased pointers all over the heap. Packed, a row is one append to a
//! growing buffer and one 24-byte index slot; sorting moves only the slots.

use std::sync::Arc;

use super::batch::VALUE_BYTES_MAX;
use super::key::USER_KEY_BYTES_MAX;
use super::LsmError;

/// One entry: where its key and value lie in the buffer, and the number its order starts
/// with (a row's token), so that most comparisons need not read the buffer.
#[derive(Clone, Copy, Debug)]
struct Slot {
    order: u64,
    start: usize,
    key_len: u32,
    value_len: u32,
}

/// Entries appended in any order and sorted by (`order`, key) before ingestion.
#[derive(Debug, Default)]
pub struct PackedEntries {
    data: Vec<u8>,
    slots: Vec<Slot>,
}

/// What one entry costs beside its key and value bytes (for a caller's memory bound).
pub const PACKED_SLOT_BYTES: usize = std::mem::size_of::<Slot>();

impl PackedEntries {
    pub fn new() -> PackedEntries {
        PackedEntries::default()
    }

    /// Room for `entries` entries of `bytes` key and value bytes in all.
    pub fn with_capacity(bytes: usize, entries: usize) -> PackedEntries {
        PackedEntries {
            data: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(entries),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes allocated for the keys and values and the index (capacity, not use: the
    /// buffers grow by doubling, and a memory bound must count what they took).
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity() + self.slots.capacity() * PACKED_SLOT_BYTES
    }

    /// Appends an entry.
    pub fn push(&mut self, order: u64, key: &[u8], value: &[u8]) -> Result<(), LsmError> {
        self.push_with(
            order,
            |out| out.extend_from_slice(key),
            |out| out.extend_from_slice(value),
        )
    }

    /// Appends an entry whose key and value the closures write at the end of the buffer, so
    /// that an encoder need not build them elsewhere first. An entry over the tree's key or
    /// value limit is refused (and not kept), as a write of it would be.
    pub fn push_with(
        &mut self,
        order: u64,
        write_key: impl FnOnce(&mut Vec<u8>),
        write_value: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), LsmError> {
        let start = self.data.len();
        write_key(&mut self.data);
        let key_len = self.data.len() - start;
        write_value(&mut self.data);
        let value_len = self.data.len() - start - key_len;
        let refused = if key_len > USER_KEY_BYTES_MAX {
            Some(LsmError::KeyTooLarge { len: key_len })
        } else if value_len > VALUE_BYTES_MAX {
            Some(LsmError::ValueTooLarge { len: value_len })
        } else {
            None
        };
        if let Some(error) = refused {
            self.data.truncate(start);
            return Err(error);
        }
        // Both limits are far under 4 GiB.
        self.slots.push(Slot {
            order,
            start,
            key_len: key_len as u32,
            value_len: value_len as u32,
        });
        Ok(())
    }

    /// Appends every entry of `other`, in its index order (a bulk copy of its bytes).
    pub fn extend_from(&mut self, other: &PackedEntries) {
        let base = self.data.len();
        self.data.extend_from_slice(&other.data);
        self.slots.extend(other.slots.iter().map(|slot| Slot {
            start: slot.start + base,
            ..*slot
        }));
    }

    /// Orders the entries by (`order`, key). For an ingestion, `order` must agree with the
    /// key order (a row's token is the first thing its key orders by after a shared prefix);
    /// [`super::Lsm::ingest`] refuses entries whose keys do not then ascend.
    pub fn sort(&mut self) {
        if self.sorts_quickly() {
            return;
        }
        let (mut dealt, starts) = self.deal();
        sort_buckets(&self.data, &mut dealt, &starts);
        self.slots = dealt;
    }

    /// Sorts entries that [`Self::sort`] sorts at once (few, or already in order); false
    /// for the rest, left as they are.
    fn sorts_quickly(&mut self) -> bool {
        let data = &self.data;
        if self
            .slots
            .is_sorted_by(|a, b| by_order_then_key(data, a, b).is_le())
        {
            return true;
        }
        if self.slots.len() < BUCKETED_SORT_MIN {
            self.slots
                .sort_unstable_by(|a, b| by_order_then_key(data, a, b));
            return true;
        }
        false
    }

    /// The slots dealt into buckets by their orders' top bits, and where each bucket starts
    /// (one more start than buckets, the last the end). Orders are tokens (hashes): spread
    /// evenly, so the buckets are each small enough to sort in cache, and few enough that
    /// the pass writes to each bucket's end from cache too. Uneven orders only make some
    /// buckets larger, which are sorted all the same.
    fn deal(&self) -> (Vec<Slot>, Vec<usize>) {
        let bits = (self.slots.len().ilog2() - BUCKET_ENTRIES_LOG2).clamp(1, BUCKET_BITS_MAX);
        let bucket_of = |slot: &Slot| (slot.order >> (64 - bits)) as usize;
        let mut starts = vec![0usize; (1 << bits) + 1];
        for slot in &self.slots {
            starts[bucket_of(slot) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next = starts.clone();
        let mut dealt = vec![
            Slot {
                order: 0,
                start: 0,
                key_len: 0,
                value_len: 0,
            };
            self.slots.len()
        ];
        for slot in &self.slots {
            let at = &mut next[bucket_of(slot)];
            dealt[*at] = *slot;
            *at += 1;
        }
        (dealt, starts)
    }

    /// A sort cut in two, for two threads: each [`SortHalf`] sorts half of the buckets
    /// [`Self::sort`] would, and [`Self::join_sorted`] puts the halves back together. Entries
    /// that sort at once (few, or already in order) come back sorted, as `Err`; so do
    /// entries whose orders crowd into a few buckets (many equal tokens), sorted whole here:
    /// a bucket sorts in one call, and one that large would hold up a shard.
    pub fn split_sort(mut self) -> Result<(SortHalf, SortHalf), PackedEntries> {
        if self.sorts_quickly() {
            return Err(self);
        }
        let (mut first, starts) = self.deal();
        let largest = starts.windows(2).map(|b| b[1] - b[0]).max().unwrap_or(0);
        let average = first.len() / (starts.len() - 1);
        if largest > SPLIT_SORT_BUCKET_ENTRIES_MIN.max(8 * average) {
            sort_buckets(&self.data, &mut first, &starts);
            self.slots = first;
            return Err(self);
        }
        // The bucket boundary nearest the middle entry.
        let middle = starts.partition_point(|&s| s < first.len() / 2);
        let second = first.split_off(starts[middle]);
        let data = Arc::new(std::mem::take(&mut self.data));
        let base = starts[middle];
        Ok((
            SortHalf {
                data: data.clone(),
                slots: first,
                starts: starts[..=middle].to_vec(),
                sorted: 0,
            },
            SortHalf {
                data,
                slots: second,
                starts: starts[middle..].iter().map(|s| s - base).collect(),
                sorted: 0,
            },
        ))
    }

    /// The entries of a [`Self::split_sort`], both halves sorted, in order.
    pub fn join_sorted(first: SortHalf, second: SortHalf) -> PackedEntries {
        assert!(
            first.is_sorted() && second.is_sorted(),
            "join_sorted: a half unsorted"
        );
        assert!(
            Arc::ptr_eq(&first.data, &second.data),
            "join_sorted: halves of two sorts"
        );
        let mut slots = first.slots;
        slots.extend_from_slice(&second.slots);
        drop(second.data);
        let data = Arc::try_unwrap(first.data).expect("both halves are here");
        PackedEntries { data, slots }
    }

    /// The `i`th entry's key and value.
    pub fn get(&self, i: usize) -> (&[u8], &[u8]) {
        let slot = &self.slots[i];
        let key_end = slot.start + slot.key_len as usize;
        (
            &self.data[slot.start..key_end],
            &self.data[key_end..key_end + slot.value_len as usize],
        )
    }

    /// The `i`th entry's order number.
    pub fn order(&self, i: usize) -> u64 {
        self.slots[i].order
    }

    /// Empties it, keeping its memory for the next entries.
    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
    }

    /// The entries in index order. Once sorted, that order jumps around the buffer, and
    /// every entry would wait for memory (a third of a million-row ingestion's time): the
    /// iterator asks for the bytes of the entry [`PREFETCH_DISTANCE`] ahead as it goes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.iter_range(0..self.len())
    }

    /// The entries of index positions `range`, as [`Self::iter`] gives them.
    pub fn iter_range(
        &self,
        range: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (&[u8], &[u8])> {
        assert!(range.end <= self.len());
        range.map(|i| {
            self.prefetch(i + PREFETCH_DISTANCE);
            self.get(i)
        })
    }

    /// The key and value bytes of the `i`th entry (read from the index alone).
    pub fn entry_bytes(&self, i: usize) -> usize {
        let slot = &self.slots[i];
        slot.key_len as usize + slot.value_len as usize
    }

    /// The first entry whose key and order equal the next one's. After [`Self::sort`], with
    /// orders that are a function of the key (a row's token), that finds any duplicated key,
    /// and neighbours of different orders are passed over without reading their bytes.
    pub fn first_repeated_key(&self) -> Option<usize> {
        let data = &self.data;
        self.slots.windows(2).position(|pair| {
            let [a, b] = pair else { return false };
            a.order == b.order && key_of(data, a) == key_of(data, b)
        })
    }

    fn prefetch(&self, i: usize) {
        if let Some(slot) = self.slots.get(i) {
            let end = slot.start + slot.key_len as usize + slot.value_len as usize;
            let bytes = &self.data[slot.start..end];
            prefetch_read(bytes.as_ptr());
            if let Some(last) = bytes.last() {
                prefetch_read(last);
            }
        }
    }
}

/// Half of a sort cut in two ([`PackedEntries::split_sort`]): its buckets, sorted a few at
/// a time or all at once, on any thread.
#[derive(Debug)]
pub struct SortHalf {
    data: Arc<Vec<u8>>,
    slots: Vec<Slot>,
    /// Where each bucket of `slots` starts, and the end.
    starts: Vec<usize>,
    /// Buckets sorted so far.
    sorted: usize,
}

impl SortHalf {
    /// Sorts more buckets, at least one (if any is left), until about `entries` entries
    /// were sorted; true once all are.
    pub fn sort_some(&mut self, entries: usize) -> bool {
        let total = self.starts.len() - 1;
        let from = self.sorted;
        let mut end = (from + 1).min(total);
        while end < total && self.starts[end + 1] - self.starts[from] <= entries {
            end += 1;
        }
        sort_buckets(&self.data, &mut self.slots, &self.starts[from..=end]);
        self.sorted = end;
        self.is_sorted()
    }

    /// Sorts every bucket left.
    pub fn sort_all(mut self) -> SortHalf {
        self.sort_some(usize::MAX);
        self
    }

    /// Entries in this half.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn is_sorted(&self) -> bool {
        self.sorted + 1 == self.starts.len()
    }
}

/// Sorts each bucket of `slots` that `starts` bounds (a start per bucket, then the end).
fn sort_buckets(data: &[u8], slots: &mut [Slot], starts: &[usize]) {
    for bucket in starts.windows(2) {
        if bucket[1] - bucket[0] > 1 {
            slots[bucket[0]..bucket[1]].sort_unstable_by(|a, b| by_order_then_key(data, a, b));
        }
    }
}

fn by_order_then_key(data: &[u8], a: &Slot, b: &Slot) -> std::cmp::Ordering {
    a.order
        .cmp(&b.order)
        .then_with(|| key_of(data, a).cmp(key_of(data, b)))
}

/// [`PackedEntries::split_sort`] splits a sort around buckets of up to 8 times the average,
/// or this many entries if more: only orders crowded together (many equal tokens) make a
/// larger one.
const SPLIT_SORT_BUCKET_ENTRIES_MIN: usize = 1 << (BUCKET_ENTRIES_LOG2 + 4);

/// Entries below which [`PackedEntries::sort`] sorts the slots as they are: dealing them into
/// buckets first pays only once a sort of the whole no longer fits in cache.
const BUCKETED_SORT_MIN: usize = 4096;
/// About 2^8 entries per bucket (6 KiB of slots: a sort within the L1 cache).
const BUCKET_ENTRIES_LOG2: u32 = 8;
/// At most 2^12 buckets: the dealing pass keeps one cache line per bucket hot.
const BUCKET_BITS_MAX: u32 = 12;

/// Entries ahead whose bytes [`PackedEntries::iter`] asks for: enough loads in flight to
/// cover a memory access while the current entry is written out.
const PREFETCH_DISTANCE: usize = 16;

/// A hint to start loading the cache line holding `byte`.
#[inline(always)]
fn prefetch_read(byte: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing architecturally and never faults,
    // and the pointer comes from a live slice anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(byte.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = byte;
}

fn key_of<'a>(data: &'a [u8], slot: &Slot) -> &'a [u8] {
    &data[slot.start..slot.start + slot.key_len as usize]
}

// The slots keep lengths as u32.
const _: () = assert!(USER_KEY_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(VALUE_BYTES_MAX <= u32::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a model: a vector of pairs sorted by (order, key).
        #[test]
        fn sorted_entries_match_a_sorted_vector(
            entries in proptest::collection::vec(
                (0u64..4, proptest::collection::vec(any::<u8>(), 0..6),
                 proptest::collection::vec(any::<u8>(), 0..6)),
                0..64,
            )
        ) {
            let mut packed = PackedEntries::new();
            for (order, key, value) in &entries {
                packed.push(*order, key, value).unwrap();
            }
            packed.sort();
            let mut model = entries.clone();
            model.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            prop_assert_eq!(packed.len(), model.len());
            for (i, (_, key, value)) in model.iter().enumerate() {
                // Equal (order, key) pairs may come in either order: compare keys only then.
                prop_assert_eq!(packed.get(i).0, key.as_slice());
                if model.iter().filter(|m| m.0 == model[i].0 && m.1 == *key).count() == 1 {
                    prop_assert_eq!(packed.get(i).1, value.as_slice());
                }
            }
            prop_assert_eq!(
                packed.first_repeated_key().is_some(),
                model.windows(2).any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Past [`BUCKETED_SORT_MIN`] the slots are dealt into buckets by their orders' top
        /// bits first: against the model, with hashed orders, orders crowded into one bucket
        /// (ties broken by key), and input already in order; sorted whole, and as a sort cut
        /// in two halves ([`PackedEntries::split_sort`]).
        #[test]
        fn bucketed_sorts_match_a_sorted_vector(
            seed in any::<u64>(),
            len in BUCKETED_SORT_MIN..3 * BUCKETED_SORT_MIN,
            spread in 0u32..3,
        ) {
            let mut state = seed | 1;
            let mut next = move || {
                // xorshift64*: a cheap deterministic stream.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_F491_4F6C_DD1D)
            };
            let mut model: Vec<(u64, Vec<u8>)> = (0..len)
                .map(|i| {
                    let order = match spread {
                        0 => next(),
                        1 => next() % 8,
                        _ => i as u64 * 3,
                    };
                    let key = next().to_be_bytes()[..1 + (next() % 8) as usize].to_vec();
                    (order, key)
                })
                .collect();
            let mut packed = PackedEntries::new();
            for (order, key) in &model {
                packed.push(*order, key, b"v").unwrap();
            }
            // Sorted whole, and cut in two, with one half sorted a few buckets at a time.
            let mut whole = PackedEntries::new();
            whole.extend_from(&packed);
            whole.sort();
            let split = match packed.split_sort() {
                Ok((mut first, second)) => {
                    while !first.sort_some(40) {}
                    PackedEntries::join_sorted(first, second.sort_all())
                }
                Err(sorted) => sorted,
            };
            model.sort();
            for sorted in [&whole, &split] {
                prop_assert_eq!(sorted.len(), model.len());
                for (i, (order, key)) in model.iter().enumerate() {
                    prop_assert_eq!((sorted.order(i), sorted.get(i).0), (*order, key.as_slice()));
                }
            }
        }
    }

    #[test]
    fn push_with_writes_in_place_and_counts_its_memory() {
        let mut packed = PackedEntries::new();
        packed
            .push_with(7, |k| k.extend_from_slice(b"key"), |v| v.push(1))
            .unwrap();
        packed.push(3, b"a", b"").unwrap();
        assert!(packed.memory_bytes() >= 5 + 2 * PACKED_SLOT_BYTES);
        let huge = vec![0u8; USER_KEY_BYTES_MAX + 1];
        assert!(matches!(
            packed.push(1, &huge, b""),
            Err(LsmError::KeyTooLarge { .. })
        ));
        packed.sort();
        assert_eq!(packed.get(0), (&b"a"[..], &b""[..]));
        assert_eq!(packed.get(1), (&b"key"[..], &[1u8][..]));
    }
}
