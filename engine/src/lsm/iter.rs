//! Iterators: one cursor per source (memtable, L0 file, sorted level), merged into one stream
//! in internal-key order, and the user-facing [`DbIter`] that applies a snapshot on top: it
//! shows, per user key, the newest version the snapshot may see, and hides tombstones.

use std::rc::Rc;

use bytes::Bytes;

use super::key::{self, SeqNo, ValueKind, SEEK_KIND};
use super::memtable::{MemIter, Memtable};
use super::snapshot::Snapshot;
use super::version::{Table, Version};
use super::LsmError;
use crate::fs::FileSystem;
use crate::sst::SstIter;

/// The current entry of a source, parsed.
pub struct Current<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    pub kind: ValueKind,
    pub value: &'a [u8],
}

/// A cursor over one sorted level: the files in order, one open at a time.
pub struct LevelIter<F: FileSystem> {
    files: Vec<Rc<Table<F>>>,
    /// Index of the open file; `files.len()` when exhausted.
    at: usize,
    iter: Option<SstIter<F>>,
}

impl<F: FileSystem> LevelIter<F> {
    pub fn new(files: Vec<Rc<Table<F>>>) -> LevelIter<F> {
        LevelIter {
            at: files.len(),
            files,
            iter: None,
        }
    }

    async fn open_at(&mut self, at: usize) -> Result<(), LsmError> {
        self.at = at;
        self.iter = None;
        if let Some(table) = self.files.get(at) {
            let mut iter = table.reader.iter();
            iter.seek_to_first().await?;
            self.iter = Some(iter);
        }
        Ok(())
    }

    async fn skip_exhausted_files(&mut self) -> Result<(), LsmError> {
        while self.iter.as_ref().is_some_and(|it| !it.valid()) {
            self.open_at(self.at + 1).await?;
        }
        Ok(())
    }

    pub async fn seek_to_first(&mut self) -> Result<(), LsmError> {
        self.open_at(0).await?;
        self.skip_exhausted_files().await
    }

    pub async fn seek(&mut self, target: &[u8]) -> Result<(), LsmError> {
        let at = self
            .files
            .partition_point(|t| key::compare(&t.meta.largest, target).is_lt());
        self.at = at;
        self.iter = None;
        if let Some(table) = self.files.get(at) {
            let mut iter = table.reader.iter();
            iter.seek(target).await?;
            self.iter = Some(iter);
        }
        self.skip_exhausted_files().await
    }

    pub async fn next(&mut self) -> Result<(), LsmError> {
        if !self.advance_in_block()? {
            self.finish_advance().await?;
        }
        Ok(())
    }

    /// [`SstIter::advance_in_block`] for the open file.
    fn advance_in_block(&mut self) -> Result<bool, LsmError> {
        match self.iter.as_mut() {
            Some(iter) => Ok(iter.advance_in_block()?),
            None => Ok(false),
        }
    }

    async fn finish_advance(&mut self) -> Result<(), LsmError> {
        if let Some(iter) = self.iter.as_mut() {
            iter.finish_advance().await?;
        }
        self.skip_exhausted_files().await
    }

    pub fn valid(&self) -> bool {
        self.iter.as_ref().is_some_and(|it| it.valid())
    }

    fn iter(&self) -> &SstIter<F> {
        self.iter.as_ref().expect("valid level iterator")
    }
}

/// One source of the merge.
pub enum Source<F: FileSystem> {
    Mem(MemIter),
    Table(SstIter<F>),
    Level(LevelIter<F>),
}

impl<F: FileSystem> Source<F> {
    async fn seek_to_first(&mut self) -> Result<(), LsmError> {
        match self {
            Source::Mem(it) => it.seek_to_first(),
            Source::Table(it) => it.seek_to_first().await?,
            Source::Level(it) => it.seek_to_first().await?,
        }
        Ok(())
    }

    /// Positions at the first entry at or after `(user_key, seq)`.
    async fn seek(&mut self, user_key: &[u8], seq: SeqNo) -> Result<(), LsmError> {
        match self {
            Source::Mem(it) => it.seek(user_key, seq),
            Source::Table(it) => it.seek(&key::encode(user_key, seq, SEEK_KIND)).await?,
            Source::Level(it) => it.seek(&key::encode(user_key, seq, SEEK_KIND)).await?,
        }
        Ok(())
    }

    /// Moves to the next entry if that needs no I/O (true), as [`SstIter::advance_in_block`].
    fn advance(&mut self) -> Result<bool, LsmError> {
        match self {
            Source::Mem(it) => {
                it.next();
                Ok(true)
            }
            Source::Table(it) => Ok(it.advance_in_block()?),
            Source::Level(it) => it.advance_in_block(),
        }
    }

    /// Ends a move [`Self::advance`] could not finish.
    async fn finish_advance(&mut self) -> Result<(), LsmError> {
        match self {
            Source::Mem(_) => {}
            Source::Table(it) => it.finish_advance().await?,
            Source::Level(it) => it.finish_advance().await?,
        }
        Ok(())
    }

    fn valid(&self) -> bool {
        match self {
            Source::Mem(it) => it.valid(),
            Source::Table(it) => it.valid(),
            Source::Level(it) => it.valid(),
        }
    }

    /// The current value, where it lies (no key parsing, no reference count).
    fn value(&self) -> &[u8] {
        match self {
            Source::Mem(it) => &it.entry().value,
            Source::Table(it) => it.value(),
            Source::Level(it) => it.iter().value(),
        }
    }

    /// The current value as [`Bytes`] that outlive the cursor.
    fn value_bytes(&self) -> Bytes {
        match self {
            Source::Mem(it) => it.entry().value.clone(),
            Source::Table(it) => it.value_bytes(),
            Source::Level(it) => it.iter().value_bytes(),
        }
    }

    fn current(&self) -> Result<Current<'_>, LsmError> {
        match self {
            Source::Mem(it) => {
                let e = it.entry();
                Ok(Current {
                    user_key: &e.user_key,
                    seq: e.seq,
                    kind: e.kind,
                    value: &e.value[..],
                })
            }
            Source::Table(it) => table_current(it),
            Source::Level(it) => table_current(it.iter()),
        }
    }
}

fn table_current<F: FileSystem>(it: &SstIter<F>) -> Result<Current<'_>, LsmError> {
    let parsed = key::parse(it.key()).ok_or_else(|| LsmError::Corrupt {
        reason: "an SSTable iterator returned a malformed internal key".to_string(),
    })?;
    Ok(Current {
        user_key: parsed.user_key,
        seq: parsed.seq,
        kind: parsed.kind,
        value: it.value(),
    })
}

/// Merges sources into one stream in internal-key order. Sources are few (memtables, L0
/// files, one per sorted level), so the smallest is found by a linear scan.
pub struct MergingIter<F: FileSystem> {
    sources: Vec<Source<F>>,
    current: Option<usize>,
    /// Whether the current source was the only valid one at the last pick. A source that
    /// runs out stays out until the next seek, so until then the current one needs no
    /// comparison: a scan of one sorted level (a table loaded by COPY, read back by ADD
    /// PRIMARY KEY) parsed every source's key on every step otherwise.
    alone: bool,
}

impl<F: FileSystem> MergingIter<F> {
    pub fn new(sources: Vec<Source<F>>) -> MergingIter<F> {
        MergingIter {
            sources,
            current: None,
            alone: false,
        }
    }

    /// Sources for everything readable at `version` plus the given memtables (newest first).
    pub fn over(memtables: &[Rc<Memtable>], version: &Version<F>) -> MergingIter<F> {
        let mut sources: Vec<Source<F>> = memtables
            .iter()
            .map(|m| Source::Mem(MemIter::new(m.clone())))
            .collect();
        for table in &version.levels[0] {
            sources.push(Source::Table(table.reader.iter()));
        }
        for files in version.levels.iter().skip(1).filter(|f| !f.is_empty()) {
            sources.push(Source::Level(LevelIter::new(files.clone())));
        }
        MergingIter::new(sources)
    }

    pub async fn seek_to_first(&mut self) -> Result<(), LsmError> {
        for source in &mut self.sources {
            source.seek_to_first().await?;
        }
        self.pick()
    }

    pub async fn seek(&mut self, user_key: &[u8], seq: SeqNo) -> Result<(), LsmError> {
        for source in &mut self.sources {
            source.seek(user_key, seq).await?;
        }
        self.pick()
    }

    pub async fn next(&mut self) -> Result<(), LsmError> {
        let at = self.current.expect("next on an exhausted merging iterator");
        if !self.sources[at].advance()? {
            self.sources[at].finish_advance().await?;
        }
        if self.alone {
            if !self.sources[at].valid() {
                self.current = None;
            }
            return Ok(());
        }
        self.pick()
    }

    pub fn valid(&self) -> bool {
        self.current.is_some()
    }

    pub fn current(&self) -> Result<Current<'_>, LsmError> {
        self.sources[self.current.expect("valid merging iterator")].current()
    }

    /// The current entry's value.
    pub fn current_value(&self) -> &[u8] {
        self.sources[self.current.expect("valid merging iterator")].value()
    }

    /// The current entry's value as [`Bytes`] that outlive the cursor.
    pub fn current_value_bytes(&self) -> Bytes {
        self.sources[self.current.expect("valid merging iterator")].value_bytes()
    }

    fn pick(&mut self) -> Result<(), LsmError> {
        let mut best: Option<(usize, &[u8], SeqNo)> = None;
        let mut valid = 0;
        for (at, source) in self.sources.iter().enumerate() {
            if !source.valid() {
                continue;
            }
            valid += 1;
            let cur = source.current()?;
            let better = match best {
                None => true,
                Some((_, key, seq)) => {
                    (cur.user_key, std::cmp::Reverse(cur.seq)) < (key, std::cmp::Reverse(seq))
                }
            };
            if better {
                best = Some((at, cur.user_key, cur.seq));
            }
        }
        self.current = best.map(|(at, _, _)| at);
        self.alone = valid == 1;
        Ok(())
    }
}

/// What a [`DbIter`] reads: the snapshot, and an exclusive upper bound on user keys.
#[derive(Default, Clone)]
pub struct ReadOptions {
    /// None: the newest data at the moment the iterator is made.
    pub snapshot: Option<Snapshot>,
    pub upper_bound: Option<Bytes>,
}

/// The user-facing iterator: live keys in order, as of its snapshot.
pub struct DbIter<F: FileSystem> {
    merge: MergingIter<F>,
    /// Keeps the sequence number pinned (compaction keeps what it needs) while we iterate.
    snapshot: Snapshot,
    upper_bound: Option<Bytes>,
    /// The current user key, in a buffer reused from row to row: a scan that never asks
    /// for the key as [`Bytes`] allocates nothing per row.
    key: Vec<u8>,
    /// [`DbIter::key`]'s copy of `key`, made on first ask.
    key_bytes: std::cell::OnceCell<Bytes>,
    /// A user key whose remaining versions `settle` skips (the one just returned, or a
    /// deleted one); meaningful while `skipping`.
    skip: Vec<u8>,
    /// The merge rests on the current entry while valid: its value is read from there.
    valid: bool,
    /// Pins the files the iterator reads.
    _version: Rc<Version<F>>,
}

impl<F: FileSystem> DbIter<F> {
    pub(super) fn new(
        memtables: &[Rc<Memtable>],
        version: Rc<Version<F>>,
        snapshot: Snapshot,
        upper_bound: Option<Bytes>,
    ) -> DbIter<F> {
        DbIter {
            merge: MergingIter::over(memtables, &version),
            snapshot,
            upper_bound,
            key: Vec::new(),
            key_bytes: std::cell::OnceCell::new(),
            skip: Vec::new(),
            valid: false,
            _version: version,
        }
    }

    pub async fn seek_to_first(&mut self) -> Result<(), LsmError> {
        self.merge.seek_to_first().await?;
        self.settle(false).await
    }

    /// Positions at the first live key >= `user_key`.
    pub async fn seek(&mut self, user_key: &[u8]) -> Result<(), LsmError> {
        self.merge.seek(user_key, self.snapshot.seq()).await?;
        self.settle(false).await
    }

    pub async fn next(&mut self) -> Result<(), LsmError> {
        assert!(self.valid, "next on an invalid iterator");
        // The key just returned is skipped from now on: its older versions follow it.
        std::mem::swap(&mut self.key, &mut self.skip);
        self.merge.next().await?;
        self.settle(true).await
    }

    pub fn valid(&self) -> bool {
        self.valid
    }

    pub fn key(&self) -> &Bytes {
        self.key_bytes
            .get_or_init(|| Bytes::copy_from_slice(&self.key))
    }

    /// The current user key, without making it [`Bytes`].
    pub fn user_key(&self) -> &[u8] {
        &self.key
    }

    /// The current value, read in place (a block of a table file, or the memtable).
    pub fn value(&self) -> &[u8] {
        assert!(self.valid, "value on an invalid iterator");
        self.merge.current_value()
    }

    /// The current value as [`Bytes`] that outlive the iterator's position (a slice of the
    /// cached block: no copy, one reference count).
    pub fn value_bytes(&self) -> Bytes {
        assert!(self.valid, "value on an invalid iterator");
        self.merge.current_value_bytes()
    }

    /// Advances the merge to the newest visible version of the next user key that is live,
    /// skipping the versions of `self.skip` (with `skipping`: a key already returned or
    /// deleted) and versions newer than the snapshot.
    async fn settle(&mut self, mut skipping: bool) -> Result<(), LsmError> {
        let snapshot = self.snapshot.seq();
        self.key_bytes = std::cell::OnceCell::new();
        loop {
            if !self.merge.valid() {
                self.valid = false;
                return Ok(());
            }
            let cur = self.merge.current()?;
            if let Some(bound) = &self.upper_bound {
                if cur.user_key >= &bound[..] {
                    self.valid = false;
                    return Ok(());
                }
            }
            let hidden = cur.seq > snapshot || (skipping && self.skip == cur.user_key);
            if !hidden {
                match cur.kind {
                    ValueKind::Put => {
                        self.key.clear();
                        self.key.extend_from_slice(cur.user_key);
                        self.valid = true;
                        return Ok(());
                    }
                    ValueKind::Delete => {
                        self.skip.clear();
                        self.skip.extend_from_slice(cur.user_key);
                        skipping = true;
                    }
                }
            }
            self.merge.next().await?;
        }
    }
}

/// The exclusive upper bound of the keys starting with `prefix` (None: no bound, the prefix is
/// empty or all 0xff).
pub fn prefix_upper_bound(prefix: &[u8]) -> Option<Bytes> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < 0xff {
            bound.push(last + 1);
            return Some(Bytes::from(bound));
        }
    }
    None
}
