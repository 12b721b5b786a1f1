//! Snapshots: a sequence number pinned until released. Readers at a snapshot see exactly the
//! entries with `seq <= snapshot`; compaction keeps, for each pinned snapshot, the version of
//! each key that snapshot sees.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::key::SeqNo;

/// The pinned sequence numbers of one LSM, with a count each.
#[derive(Default, Debug)]
pub struct SnapshotList {
    pinned: RefCell<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// Pins `seq` until the returned handle (and its clones) are dropped.
    pub fn pin(self: &Rc<Self>, seq: SeqNo) -> Snapshot {
        *self.pinned.borrow_mut().entry(seq).or_insert(0) += 1;
        Snapshot {
            inner: Rc::new(Pinned {
                list: self.clone(),
                seq,
            }),
        }
    }

    /// Every pinned sequence number, ascending.
    pub fn pinned(&self) -> Vec<SeqNo> {
        self.pinned.borrow().keys().copied().collect()
    }

    pub fn newest(&self) -> Option<SeqNo> {
        self.pinned.borrow().keys().next_back().copied()
    }

    pub fn oldest(&self) -> Option<SeqNo> {
        self.pinned.borrow().keys().next().copied()
    }

    pub fn len(&self) -> usize {
        self.pinned.borrow().values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pinned.borrow().is_empty()
    }
}

#[derive(Debug)]
struct Pinned {
    list: Rc<SnapshotList>,
    seq: SeqNo,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut pinned = self.list.pinned.borrow_mut();
        let count = pinned
            .get_mut(&self.seq)
            .expect("pinned snapshot is listed");
        *count -= 1;
        if *count == 0 {
            pinned.remove(&self.seq);
        }
    }
}

/// A pinned sequence number. Cloning shares the pin.
#[derive(Clone, Debug)]
pub struct Snapshot {
    inner: Rc<Pinned>,
}

impl Snapshot {
    pub fn seq(&self) -> SeqNo {
        self.inner.seq
    }
}

/// Which "stripe" `seq` falls in: the index of the oldest pinned snapshot that sees it, or
/// `snapshots.len()` when no pinned snapshot does (only the live view sees it). Within one
/// stripe only the newest version of a key is ever visible; older ones can go.
pub fn stripe_of(snapshots: &[SeqNo], seq: SeqNo) -> usize {
    snapshots.partition_point(|&s| s < seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_counted_and_released_on_drop() {
        let list = Rc::new(SnapshotList::default());
        let a = list.pin(5);
        let b = list.pin(5);
        let c = list.pin(9);
        assert_eq!(list.pinned(), vec![5, 9]);
        drop(a);
        assert_eq!(list.pinned(), vec![5, 9]);
        drop(b);
        assert_eq!(list.oldest(), Some(9));
        drop(c);
        assert!(list.is_empty());
    }

    #[test]
    fn stripes() {
        assert_eq!(stripe_of(&[], 7), 0);
        assert_eq!(stripe_of(&[5, 9], 3), 0);
        assert_eq!(stripe_of(&[5, 9], 5), 0);
        assert_eq!(stripe_of(&[5, 9], 6), 1);
        assert_eq!(stripe_of(&[5, 9], 10), 2);
    }
}
