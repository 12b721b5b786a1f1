//! A version: the set of live SSTables, per level, that readers see at one instant.
//!
//! Versions are immutable and shared by `Rc`; a flush or compaction builds a new one and swaps
//! it in. A reader (iterator, get) holds the version it started with, so files a compaction
//! retired stay readable until the last reader drops them.
//!
//! Level 0 holds flushed memtables, which may overlap; they are kept newest first. Levels 1 and
//! below are sorted by key and do not overlap.

use std::cmp::Ordering;
use std::rc::Rc;

use super::key;
use super::manifest::FileMeta;
use crate::fs::FileSystem;
use crate::sst::SstReader;

/// Number of levels (L0..L6).
pub const LEVEL_COUNT: usize = 7;

pub struct Table<F: FileSystem> {
    pub meta: FileMeta,
    pub reader: Rc<SstReader<F>>,
}

impl<F: FileSystem> Table<F> {
    pub fn smallest_user_key(&self) -> &[u8] {
        key::user_key(&self.meta.smallest)
    }

    pub fn largest_user_key(&self) -> &[u8] {
        key::user_key(&self.meta.largest)
    }

    /// Whether the file's key range intersects `[lo, hi]` (user keys, inclusive).
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest_user_key() <= hi && self.largest_user_key() >= lo
    }
}

pub struct Version<F: FileSystem> {
    pub levels: Vec<Vec<Rc<Table<F>>>>,
}

impl<F: FileSystem> Clone for Version<F> {
    fn clone(&self) -> Self {
        Version {
            levels: self.levels.clone(),
        }
    }
}

impl<F: FileSystem> Default for Version<F> {
    fn default() -> Self {
        Version {
            levels: vec![Vec::new(); LEVEL_COUNT],
        }
    }
}

impl<F: FileSystem> Version<F> {
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level].iter().map(|t| t.meta.file_bytes).sum()
    }

    pub fn file_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// The file of sorted level `level` (>= 1) whose range may hold `user_key`.
    pub fn find_in_level(&self, level: usize, user_key: &[u8]) -> Option<&Rc<Table<F>>> {
        debug_assert!(level >= 1);
        let files = &self.levels[level];
        let at = files.partition_point(|t| t.largest_user_key() < user_key);
        files.get(at).filter(|t| t.smallest_user_key() <= user_key)
    }

    /// Files of `level` overlapping user-key range `[lo, hi]`.
    pub fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Rc<Table<F>>> {
        self.levels[level]
            .iter()
            .filter(|t| t.overlaps(lo, hi))
            .cloned()
            .collect()
    }

    /// Whether any level deeper than `level` holds keys in `[lo, hi]`.
    pub fn has_data_below(&self, level: usize, lo: &[u8], hi: &[u8]) -> bool {
        (level + 1..LEVEL_COUNT).any(|l| self.levels[l].iter().any(|t| t.overlaps(lo, hi)))
    }

    /// Adds `table` at `level`, keeping the level's order.
    pub fn add(&mut self, level: usize, table: Rc<Table<F>>) {
        let files = &mut self.levels[level];
        if level == 0 {
            // Newest first: by highest sequence number, descending.
            let at = files.partition_point(|t| t.meta.seq_max > table.meta.seq_max);
            files.insert(at, table);
        } else {
            let at = files.partition_point(|t| {
                key::compare(&t.meta.smallest, &table.meta.smallest) == Ordering::Less
            });
            files.insert(at, table);
        }
    }

    /// Removes file `id` from `level`; returns it.
    pub fn remove(&mut self, level: usize, id: u64) -> Option<Rc<Table<F>>> {
        let files = &mut self.levels[level];
        let at = files.iter().position(|t| t.meta.id == id)?;
        Some(files.remove(at))
    }

    /// Checks the level invariants (sorted, non-overlapping below L0); panics naming the level.
    pub fn assert_invariants(&self) {
        for (level, files) in self.levels.iter().enumerate().skip(1) {
            for pair in files.windows(2) {
                assert!(
                    pair[0].largest_user_key() < pair[1].smallest_user_key(),
                    "level {level}: files {} and {} overlap or are out of order",
                    pair[0].meta.id,
                    pair[1].meta.id
                );
            }
        }
    }
}
