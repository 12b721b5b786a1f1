//! Sorted sets: a member → score map plus the members ordered by (score, member), in memory;
//! in the tree, a metadata value ([`storage::TYPE_ZSET`]) and one element key per member
//! whose value is the score ([`storage::encode_score`]). The order is rebuilt from the
//! element keys at start-up, so it is never written.

use std::collections::BTreeSet;

use bytes::Bytes;
use hashbrown::HashMap;

use super::{key_ref, storage, Keyspace, Value, FIELD_OVERHEAD_BYTES};

/// A sorted-set score: any double but NaN (Redis refuses NaN scores), ordered numerically,
/// with -0 equal to 0 as in Redis's comparisons.
#[derive(Debug, Clone, Copy)]
pub struct Score(f64);

impl Score {
    /// Panics on NaN: commands refuse NaN before they build a mutation.
    pub fn new(value: f64) -> Score {
        assert!(!value.is_nan(), "a NaN score");
        Score(value)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

/// A sorted set's members and the version its element keys carry in the tree.
#[derive(Debug, Clone, Eq)]
pub struct ZSetValue {
    pub version: u64,
    pub scores: HashMap<Bytes, Score>,
    /// The members by (score, member bytes): Redis's order.
    pub order: BTreeSet<(Score, Bytes)>,
    /// The member count its metadata value records (checked at start-up).
    pub stored_len: u64,
}

impl PartialEq for ZSetValue {
    /// Same members with the same scores (bit for bit: -0 is not 0 here).
    fn eq(&self, other: &Self) -> bool {
        self.scores.len() == other.scores.len()
            && self.scores.iter().all(|(m, s)| {
                other
                    .scores
                    .get(m)
                    .is_some_and(|o| o.0.to_bits() == s.0.to_bits())
            })
    }
}

impl ZSetValue {
    /// A sorted set whose members are still to be read from the tree (start-up).
    pub fn empty(version: u64, stored_len: u64) -> ZSetValue {
        ZSetValue {
            version,
            scores: HashMap::new(),
            order: BTreeSet::new(),
            stored_len,
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    /// Members in Redis's order: ascending score, then member bytes.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// The 0-based rank of `member` in ascending order. O(rank): the order is a B-tree
    /// without subtree counts.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = *self.scores.get(member)?;
        Some(
            self.order
                .range(..(score, Bytes::copy_from_slice(member)))
                .count(),
        )
    }

    /// Adds or re-scores a member; returns the bytes of memory it added.
    fn insert(&mut self, member: Bytes, score: Score) -> usize {
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                let removed = self.order.remove(&(old, member.clone()));
                assert!(removed, "sorted set order out of step");
                self.order.insert((score, member));
                0
            }
            None => {
                let added = member.len() + 2 * FIELD_OVERHEAD_BYTES;
                self.order.insert((score, member));
                added
            }
        }
    }

    /// Removes a member; returns the bytes of memory it freed (0: not a member).
    fn remove(&mut self, member: &[u8]) -> usize {
        let Some((member, score)) = self.scores.remove_entry(member) else {
            return 0;
        };
        let freed = member.len() + 2 * FIELD_OVERHEAD_BYTES;
        let removed = self.order.remove(&(score, member));
        assert!(removed, "sorted set order out of step");
        freed
    }

    pub(super) fn used_bytes(&self) -> usize {
        self.scores
            .keys()
            .map(|m| m.len() + 2 * FIELD_OVERHEAD_BYTES)
            .sum()
    }

    /// Adds a member read from the tree at start-up.
    pub(super) fn insert_stored(&mut self, member: &[u8], score: &[u8]) -> Result<usize, String> {
        let score = storage::decode_score(score)?;
        Ok(self.insert(Bytes::copy_from_slice(member), score))
    }

    pub(super) fn element_key(&self, db: u8, key: &[u8], member: &[u8]) -> Bytes {
        storage::field_key(db, key, self.version, member)
    }
}

impl Keyspace {
    /// Adds members with these scores (re-scores those present) to the sorted set at `key`,
    /// creating it without an expiry when absent.
    pub(super) fn zset_add(&mut self, db: u8, key: &[u8], members: Vec<(Bytes, Score)>) {
        let k = key_ref(db, key);
        if !self.map.contains_key(&k) {
            let version = self.next_version;
            self.next_version += 1;
            self.insert_entry(db, key, Value::ZSet(ZSetValue::empty(version, 0)), None);
        }
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let entry = self.map.get_mut(&k).expect("present or created above");
        let Value::ZSet(zset) = &mut entry.value else {
            panic!("a sorted set mutation on a {} key", entry.value.type_name());
        };
        for (member, score) in members {
            // A copy: the command's bytes may be slices of a large network buffer.
            let member = Bytes::copy_from_slice(&member);
            self.pending.put(
                zset.element_key(db, key, &member),
                storage::encode_score(score),
            );
            self.used_bytes += zset.insert(member, score);
        }
        zset.stored_len = zset.len() as u64;
        entry.stamp = stamp;
        self.meta_changed(db, key);
    }

    /// Removes members of the sorted set at `key` (absent ones are skipped); the key goes
    /// with its last member.
    pub(super) fn zset_remove(&mut self, db: u8, key: &[u8], members: Vec<Bytes>) {
        let k = key_ref(db, key);
        let Some(entry) = self.map.get_mut(&k) else {
            return;
        };
        let Value::ZSet(zset) = &mut entry.value else {
            panic!("a sorted set mutation on a {} key", entry.value.type_name());
        };
        for member in members {
            let freed = zset.remove(&member);
            if freed > 0 {
                self.used_bytes -= freed;
                self.pending.delete(zset.element_key(db, key, &member));
            }
        }
        zset.stored_len = zset.len() as u64;
        if zset.is_empty() {
            self.pending
                .write_storage(storage::storage_key(db, key), None);
            self.remove_ref(&k);
            return;
        }
        self.next_stamp += 1;
        entry.stamp = self.next_stamp;
        self.meta_changed(db, key);
    }
}
