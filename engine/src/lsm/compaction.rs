//! Leveled compaction: which files to merge next, and which versions a merge may drop.
//!
//! Level-0 files fall into groups that overlap among themselves and not each other (with
//! [`super::LsmOptions::key_family`], a Redis list's elements and its metadata key are two such
//! groups). A group is compacted into level 1, with the L1 files it overlaps, once it holds
//! `l0_compaction_trigger` files; all of level 0 is, once it holds
//! [`L0_WHOLE_TRIGGER_FACTOR`] times that however its files group. A sorted level
//! `n >= 1` is compacted into `n + 1` once its bytes exceed its target
//! (`level1_bytes * ratio^(n-1)`); the level with the highest bytes/target score goes first, and
//! within it files are taken round-robin by key so the whole key space gets rewritten evenly.
//!
//! A file that overlaps nothing in the next level (and, on level 0, no other file there) is
//! moved by a manifest edit alone (a trivial move), without rewriting it. Level-0 files that
//! can move are moved at once, before any merge and whatever the trigger says: appending
//! workloads (a list pushed onto, a table filled in key order) then flush straight into L1
//! and are never rewritten there. Unless the compaction filter would change one of their
//! entries (`Lsm::filter_applies_to_any`): then they are merged, so that garbage is dropped.
//!
//! Why a group may be compacted alone: for every key, its versions in level 0 must be newer
//! than its versions in level 1 (a point read stops at the first level that has the key). A
//! group's range overlaps no other level-0 file, so the files it leaves behind hold none of the
//! keys it moves down; and no L1 version of their keys can be newer than them, since that
//! version would have come down with a group overlapping them.

use std::rc::Rc;

use bytes::Bytes;

use super::key::{SeqNo, ValueKind};
use super::snapshot::stripe_of;
use super::version::{Table, Version, LEVEL_COUNT};
use super::LsmOptions;
use crate::fs::FileSystem;

/// Decides, per input entry, whether an expired value (as the application defines it, e.g. a
/// Redis key past its expiry) should be treated as deleted: `filter(user_key, value)`.
pub type ExpiryFilter = Rc<dyn Fn(&[u8], &[u8]) -> bool>;

/// Whether every key in user-key range `[lo, hi]` is garbage ([`super::LsmOptions::dead_range`]).
pub type DeadRangeFilter = Rc<dyn Fn(&[u8], &[u8]) -> bool>;

/// Level 0 is merged whole, whatever its groups, once it holds this many times
/// `l0_compaction_trigger` files: many small groups that each overlap level 1 (elements pushed
/// back onto a list's popped indexes, say) would otherwise pile up. Counting per group first
/// keeps a tree with two families from merging twice as often as a tree with one.
pub const L0_WHOLE_TRIGGER_FACTOR: usize = 2;

/// A chosen compaction.
pub struct Pick<F: FileSystem> {
    pub level: usize,
    pub output_level: usize,
    /// Files of `level`.
    pub inputs: Vec<Rc<Table<F>>>,
    /// Files of `output_level` that overlap the inputs.
    pub next_inputs: Vec<Rc<Table<F>>>,
}

impl<F: FileSystem> Pick<F> {
    /// Input files that overlap nothing below them and not each other (a single file of a
    /// sorted level; level-0 files of disjoint ranges, as sequential loads make): move them
    /// instead of rewriting them.
    pub fn is_trivial_move(&self) -> bool {
        if !self.next_inputs.is_empty() {
            return false;
        }
        if self.level > 0 {
            return self.inputs.len() == 1;
        }
        let mut ranges: Vec<(&[u8], &[u8])> = self
            .inputs
            .iter()
            .map(|t| (t.smallest_user_key(), t.largest_user_key()))
            .collect();
        ranges.sort();
        ranges.windows(2).all(|w| w[0].1 < w[1].0)
    }

    /// The user-key range the compaction covers.
    pub fn key_range(&self) -> (Bytes, Bytes) {
        key_range(self.inputs.iter().chain(&self.next_inputs))
    }

    pub fn input_bytes(&self) -> u64 {
        self.inputs
            .iter()
            .chain(&self.next_inputs)
            .map(|t| t.meta.file_bytes)
            .sum()
    }
}

fn key_range<'a, F: FileSystem + 'a>(
    tables: impl Iterator<Item = &'a Rc<Table<F>>>,
) -> (Bytes, Bytes) {
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    for table in tables {
        let (s, l) = (table.smallest_user_key(), table.largest_user_key());
        lo = Some(lo.map_or(s, |lo| lo.min(s)));
        hi = Some(hi.map_or(l, |hi| hi.max(l)));
    }
    (
        Bytes::copy_from_slice(lo.unwrap_or_default()),
        Bytes::copy_from_slice(hi.unwrap_or_default()),
    )
}

/// Target bytes of sorted level `level` (>= 1).
pub fn level_target_bytes(opts: &LsmOptions, level: usize) -> u64 {
    assert!(level >= 1);
    let mut target = opts.level1_bytes;
    for _ in 1..level {
        target = target.saturating_mul(opts.level_size_ratio);
    }
    target
}

/// The most urgent compaction, if any is due. `pointers[level]` is the largest user key the last
/// compaction of that level covered (round-robin position).
pub fn pick<F: FileSystem>(
    version: &Version<F>,
    opts: &LsmOptions,
    pointers: &[Bytes],
) -> Option<Pick<F>> {
    let l0 = &version.levels[0];
    let ranges: Vec<(&[u8], &[u8])> = l0
        .iter()
        .map(|t| (t.smallest_user_key(), t.largest_user_key()))
        .collect();
    let groups = overlap_groups(&ranges);
    let movable: Vec<Rc<Table<F>>> = groups
        .iter()
        .filter(|group| group.len() == 1)
        .map(|group| &l0[group[0]])
        .filter(|t| {
            version
                .overlapping(1, t.smallest_user_key(), t.largest_user_key())
                .is_empty()
        })
        .cloned()
        .collect();
    if !movable.is_empty() {
        return Some(Pick {
            level: 0,
            output_level: 1,
            inputs: movable,
            next_inputs: Vec::new(),
        });
    }
    let largest_group = groups.iter().max_by_key(|group| group.len());
    let trigger = opts.l0_compaction_trigger as f64;
    let group_score = largest_group.map_or(0.0, |group| group.len() as f64 / trigger);
    let whole_score = l0.len() as f64 / (L0_WHOLE_TRIGGER_FACTOR as f64 * trigger);
    let l0_score = group_score.max(whole_score);
    let mut best: Option<(f64, usize)> = (l0_score >= 1.0).then_some((l0_score, 0));
    // The last level has no target: it holds whatever is left.
    for level in 1..LEVEL_COUNT - 1 {
        let score = version.level_bytes(level) as f64 / level_target_bytes(opts, level) as f64;
        if score >= 1.0 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, level));
        }
    }
    let (_, level) = best?;
    let inputs = if level == 0 && group_score >= 1.0 {
        let largest = largest_group.expect("a group is due, so level 0 has files");
        largest.iter().map(|&i| l0[i].clone()).collect()
    } else if level == 0 {
        l0.clone()
    } else {
        vec![next_file_round_robin(&version.levels[level], &pointers[level]).clone()]
    };
    let (lo, hi) = key_range(inputs.iter());
    let next_inputs = version.overlapping(level + 1, &lo, &hi);
    Some(Pick {
        level,
        output_level: level + 1,
        inputs,
        next_inputs,
    })
}

/// Groups `ranges` (inclusive `[smallest, largest]` key ranges) into sets whose members overlap,
/// directly or through other members, and which do not overlap each other: the connected parts
/// of the overlap graph. Each group lists indexes into `ranges`, ascending; groups are in key
/// order.
pub fn overlap_groups(ranges: &[(&[u8], &[u8])]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by(|&a, &b| ranges[a].0.cmp(ranges[b].0));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_end: &[u8] = &[];
    for i in order {
        let (smallest, largest) = ranges[i];
        debug_assert!(smallest <= largest);
        match groups.last_mut() {
            Some(group) if smallest <= group_end => {
                group.push(i);
                group_end = group_end.max(largest);
            }
            _ => {
                groups.push(vec![i]);
                group_end = largest;
            }
        }
    }
    for group in &mut groups {
        group.sort_unstable();
    }
    groups
}

/// The most tables, among those whose smallest keys are `smallest_keys`, that belong to one
/// key family (by their smallest key): level 0's count for the write stall triggers when the
/// tree has families.
pub fn files_per_family_max<'a>(
    smallest_keys: impl Iterator<Item = &'a [u8]>,
    family_of: super::KeyFamily,
) -> usize {
    let mut counts = [0usize; 256];
    for key in smallest_keys {
        counts[family_of(key) as usize] += 1;
    }
    counts.into_iter().max().unwrap_or(0)
}

fn next_file_round_robin<'a, F: FileSystem>(
    files: &'a [Rc<Table<F>>],
    pointer: &[u8],
) -> &'a Rc<Table<F>> {
    assert!(!files.is_empty());
    files
        .iter()
        .find(|t| pointer.is_empty() || t.smallest_user_key() > pointer)
        .unwrap_or(&files[0])
}

/// What happens to one input entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Drop,
    /// Write it, with this kind (an expired value becomes a tombstone).
    Keep(ValueKind),
}

/// The garbage-collection rules of a merge, applied to entries in internal-key order:
/// - of the versions of a key that fall in the same snapshot stripe, only the newest is kept
///   (no reader can see the others);
/// - an expired value is turned into a tombstone;
/// - at the bottom of the tree (nothing older below), a tombstone that every snapshot sees is
///   dropped, with everything under it.
pub struct Gc {
    snapshots: Vec<SeqNo>,
    bottommost: bool,
    filter: Option<ExpiryFilter>,
    last_key: Vec<u8>,
    /// Stripe of the last version kept or dropped of `last_key`; None before its first one.
    last_stripe: Option<usize>,
}

impl Gc {
    pub fn new(snapshots: Vec<SeqNo>, bottommost: bool, filter: Option<ExpiryFilter>) -> Gc {
        debug_assert!(snapshots.windows(2).all(|w| w[0] < w[1]));
        Gc {
            snapshots,
            bottommost,
            filter,
            last_key: Vec::new(),
            last_stripe: None,
        }
    }

    pub fn decide(
        &mut self,
        user_key: &[u8],
        seq: SeqNo,
        kind: ValueKind,
        value: &[u8],
    ) -> Decision {
        if self.last_stripe.is_none() || self.last_key != user_key {
            self.last_key.clear();
            self.last_key.extend_from_slice(user_key);
            self.last_stripe = None;
        }
        let stripe = stripe_of(&self.snapshots, seq);
        if self.last_stripe == Some(stripe) {
            return Decision::Drop;
        }
        self.last_stripe = Some(stripe);
        let expired =
            kind == ValueKind::Put && self.filter.as_ref().is_some_and(|f| f(user_key, value));
        let kind = if expired { ValueKind::Delete } else { kind };
        if kind == ValueKind::Delete && self.bottommost && stripe == 0 {
            return Decision::Drop;
        }
        Decision::Keep(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueKind::{Delete, Put};

    fn groups(ranges: &[(&str, &str)]) -> Vec<Vec<usize>> {
        let ranges: Vec<(&[u8], &[u8])> = ranges
            .iter()
            .map(|(lo, hi)| (lo.as_bytes(), hi.as_bytes()))
            .collect();
        overlap_groups(&ranges)
    }

    #[test]
    fn overlap_groups_join_files_that_overlap_through_others() {
        assert!(groups(&[]).is_empty());
        assert_eq!(groups(&[("a", "b")]), vec![vec![0]]);
        // 0 and 2 overlap only through 1; 3 touches 2 at "m" (ranges are inclusive).
        assert_eq!(
            groups(&[("a", "c"), ("b", "f"), ("e", "m"), ("m", "n"), ("p", "q")]),
            vec![vec![0, 1, 2, 3], vec![4]]
        );
        // A Redis list pushed onto over four flushes: one metadata key, disjoint elements.
        assert_eq!(
            groups(&[
                ("m", "m"),
                ("x1", "x2"),
                ("m", "m"),
                ("x3", "x4"),
                ("x5", "x6")
            ]),
            vec![vec![0, 2], vec![1], vec![3], vec![4]]
        );
        // Nested ranges, listed out of order.
        assert_eq!(
            groups(&[("k", "l"), ("a", "z"), ("b", "c")]),
            vec![vec![0, 1, 2]]
        );
    }

    #[test]
    fn stall_counts_take_the_fullest_family() {
        fn first_byte(key: &[u8]) -> u8 {
            key.first().copied().unwrap_or(0)
        }
        let keys: [&[u8]; 5] = [b"m1", b"x1", b"m2", b"x2", b"x3"];
        assert_eq!(files_per_family_max(keys.into_iter(), first_byte), 3);
        assert_eq!(files_per_family_max(std::iter::empty(), first_byte), 0);
    }

    #[test]
    fn keeps_the_newest_version_per_stripe() {
        let mut gc = Gc::new(vec![5], false, None);
        assert_eq!(gc.decide(b"k", 9, Put, b""), Decision::Keep(Put));
        assert_eq!(gc.decide(b"k", 7, Put, b""), Decision::Drop);
        assert_eq!(gc.decide(b"k", 5, Put, b""), Decision::Keep(Put));
        assert_eq!(gc.decide(b"k", 2, Put, b""), Decision::Drop);
        assert_eq!(gc.decide(b"l", 2, Delete, b""), Decision::Keep(Delete));
    }

    #[test]
    fn bottom_level_drops_tombstones_every_snapshot_sees() {
        let mut gc = Gc::new(vec![5], true, None);
        // A tombstone newer than the snapshot must stay: the snapshot sees the older value.
        assert_eq!(gc.decide(b"k", 9, Delete, b""), Decision::Keep(Delete));
        assert_eq!(gc.decide(b"k", 3, Put, b""), Decision::Keep(Put));
        assert_eq!(gc.decide(b"l", 4, Delete, b""), Decision::Drop);
        assert_eq!(gc.decide(b"l", 2, Put, b""), Decision::Drop);
    }

    #[test]
    fn expired_values_become_tombstones() {
        let filter: ExpiryFilter = Rc::new(|_, value| value == b"old");
        let mut gc = Gc::new(vec![], false, Some(filter.clone()));
        assert_eq!(gc.decide(b"k", 3, Put, b"old"), Decision::Keep(Delete));
        let mut gc = Gc::new(vec![], true, Some(filter));
        assert_eq!(gc.decide(b"k", 3, Put, b"old"), Decision::Drop);
        assert_eq!(gc.decide(b"m", 3, Put, b"new"), Decision::Keep(Put));
    }
}
