//! Manifest tests, all over [`MemFs`].

use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::future::block_on;
use proptest::prelude::*;

use super::*;
use crate::memfs::{CrashMode, MemFs};
use crate::wal::segment_file_name;

fn dir() -> PathBuf {
    PathBuf::from("/data/shard-0/manifest")
}

fn open(fs: &MemFs) -> Result<(Manifest<MemFs>, ManifestState), ManifestError> {
    block_on(Manifest::open(fs.clone(), dir()))
}

fn ikey(user_key: &[u8], seq: u64) -> Vec<u8> {
    key::encode(user_key, seq, key::ValueKind::Put)
}

fn file(id: u64, level: u8, lo: &str, hi: &str, seq_min: u64, seq_max: u64) -> FileMeta {
    FileMeta {
        id,
        level,
        file_bytes: 1000 + id,
        entries: 10,
        tombstones: 1,
        smallest: ikey(lo.as_bytes(), seq_max),
        largest: ikey(hi.as_bytes(), seq_min),
        seq_min,
        seq_max,
    }
}

/// Makes a stream of valid edits the way an LSM would: flushes into L0, compactions of L0 and
/// L1 into disjoint L1 files, and moves of a whole level down into an empty one.
struct EditGen {
    rng: u64,
    state: ManifestState,
    /// Appended to every user key, to make edits as large as a test wants.
    key_pad: String,
}

impl EditGen {
    fn new(seed: u64, key_pad_bytes: usize) -> EditGen {
        EditGen {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            state: ManifestState::new(),
            key_pad: "p".repeat(key_pad_bytes),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn user_key(&self, n: u64) -> String {
        format!("k{n:05}{}", self.key_pad)
    }

    /// The next edit; also applies it to the generator's own state.
    fn next_edit(&mut self) -> VersionEdit {
        let edit = match self.next_u64() % 5 {
            0 | 1 => self.flush(),
            2 => self.compact().unwrap_or_else(|| self.flush()),
            _ => self.move_down().unwrap_or_else(|| self.flush()),
        };
        self.state.apply(&edit).expect("generated edits are valid");
        edit
    }

    fn flush(&mut self) -> VersionEdit {
        let id = self.state.next_file_id;
        let lo = self.next_u64() % 10_000;
        let hi = lo + self.next_u64() % 500;
        let seq_min = self.state.last_seq + 1;
        let seq_max = seq_min + self.next_u64() % 100;
        let (lo, hi) = (self.user_key(lo), self.user_key(hi));
        VersionEdit {
            added: vec![file(id, 0, &lo, &hi, seq_min, seq_max)],
            next_file_id: Some(id + 1),
            last_seq: Some(seq_max),
            flushed_lsn: Some(self.state.flushed_lsn + 1 + self.next_u64() % 10),
            ..VersionEdit::default()
        }
    }

    /// Every L0 and L1 file into 1..=3 disjoint L1 files covering their key range.
    fn compact(&mut self) -> Option<VersionEdit> {
        let inputs: Vec<FileMeta> = self.state.levels[0]
            .iter()
            .chain(&self.state.levels[1])
            .cloned()
            .collect();
        if self.state.levels[0].is_empty() {
            return None;
        }
        let number = |k: &[u8]| -> u64 {
            std::str::from_utf8(&key::user_key(k)[1..6])
                .unwrap()
                .parse()
                .unwrap()
        };
        let lo = inputs.iter().map(|f| number(&f.smallest)).min()?;
        let hi = inputs.iter().map(|f| number(&f.largest)).max()?;
        let seq_min = inputs.iter().map(|f| f.seq_min).min()?;
        let seq_max = inputs.iter().map(|f| f.seq_max).max()?;
        let parts = 1 + self.next_u64() % 3;
        let step = (hi - lo) / parts + 1;
        let mut edit = VersionEdit {
            deleted: inputs.iter().map(|f| (f.level, f.id)).collect(),
            ..VersionEdit::default()
        };
        let mut id = self.state.next_file_id;
        let mut start = lo;
        while start <= hi {
            let end = (start + step - 1).min(hi);
            let (a, b) = (self.user_key(start), self.user_key(end));
            edit.added.push(file(id, 1, &a, &b, seq_min, seq_max));
            id += 1;
            start = end + 1;
        }
        edit.next_file_id = Some(id);
        Some(edit)
    }

    /// Moves a whole level into the next one when that one is empty (a trivial move).
    fn move_down(&mut self) -> Option<VersionEdit> {
        let level = (1..LEVEL_COUNT - 1).find(|&level| {
            !self.state.levels[level].is_empty() && self.state.levels[level + 1].is_empty()
        })?;
        let files = &self.state.levels[level];
        Some(VersionEdit {
            deleted: files.iter().map(|f| (f.level, f.id)).collect(),
            added: files
                .iter()
                .map(|f| FileMeta {
                    level: f.level + 1,
                    ..f.clone()
                })
                .collect(),
            ..VersionEdit::default()
        })
    }
}

fn apply_all(manifest: &Manifest<MemFs>, edits: &[VersionEdit]) {
    block_on(async {
        for edit in edits {
            manifest.apply(edit).await.unwrap();
        }
    });
}

fn manifest_state(manifest: &Manifest<MemFs>) -> ManifestState {
    manifest.with_state(ManifestState::clone)
}

fn dir_bytes(fs: &MemFs) -> u64 {
    block_on(fs.list(&dir()))
        .unwrap()
        .iter()
        .map(|name| fs.file_bytes(&dir().join(name)).unwrap().len() as u64)
        .sum()
}

// ---- Encoding -----------------------------------------------------------------------------------

fn file_strategy() -> impl Strategy<Value = FileMeta> {
    let keys = (
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 0..40),
    );
    (any::<[u64; 7]>(), 0..LEVEL_COUNT as u8, keys).prop_map(|(n, level, (smallest, largest))| {
        FileMeta {
            id: n[0],
            level,
            file_bytes: n[1],
            entries: n[2],
            tombstones: n[3] >> (n[3] % 64),
            smallest,
            largest,
            seq_min: n[5],
            seq_max: n[6],
        }
    })
}

fn edit_strategy() -> impl Strategy<Value = VersionEdit> {
    (
        prop::collection::vec(file_strategy(), 0..6),
        prop::collection::vec((0..LEVEL_COUNT as u8, any::<u64>()), 0..6),
        any::<[Option<u64>; 3]>(),
        any::<bool>(),
    )
        .prop_map(|(added, deleted, counters, is_snapshot)| VersionEdit {
            added,
            deleted,
            next_file_id: counters[0],
            last_seq: counters[1],
            flushed_lsn: counters[2],
            is_snapshot,
        })
}

proptest! {
    #[test]
    fn edit_encoding_round_trips(edit in edit_strategy()) {
        let bytes = encode_edit(&edit);
        prop_assert_eq!(decode_edit(&bytes), Ok(edit.clone()));
        // Cut short anywhere: an error or (at a field boundary) a shorter edit, never a panic.
        for cut in 0..bytes.len() {
            if let Ok(prefix) = decode_edit(&bytes[..cut]) {
                prop_assert!(prefix != edit);
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        edit in edit_strategy(),
        flip in any::<(usize, u8)>(),
    ) {
        let _ = decode_edit(&bytes);
        let mut damaged = encode_edit(&edit);
        if !damaged.is_empty() {
            let at = flip.0 % damaged.len();
            damaged[at] ^= flip.1 | 1;
            if let Ok(decoded) = decode_edit(&damaged) {
                // Whatever decodes must apply or be refused without panicking.
                let _ = ManifestState::new().apply(&decoded);
            }
        }
    }
}

#[test]
fn decoding_rejects_malformed_edits() {
    let valid = encode_edit(&VersionEdit {
        next_file_id: Some(300),
        ..VersionEdit::default()
    });
    assert_eq!(valid, vec![TAG_NEXT_FILE_ID, 0xAC, 0x02]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown tag", vec![99]),
        ("tag 0", vec![0]),
        ("given twice", vec![TAG_LAST_SEQ, 1, TAG_LAST_SEQ, 2]),
        ("repeated", vec![TAG_SNAPSHOT, TAG_SNAPSHOT]),
        ("truncated", vec![TAG_FLUSHED_LSN, 0x80]),
        ("truncated", vec![TAG_DELETED_FILE, 0]),
        ("out of range", vec![TAG_DELETED_FILE, LEVEL_COUNT as u8, 1]),
        (
            "overflows",
            [vec![TAG_LAST_SEQ], vec![0xFF; 9], vec![0x02]].concat(),
        ),
        (
            "longer than 10",
            [vec![TAG_LAST_SEQ], vec![0x80; 11]].concat(),
        ),
    ];
    for (expected, bytes) in cases {
        let reason = decode_edit(&bytes).unwrap_err();
        assert!(reason.contains(expected), "{bytes:?}: {reason}");
    }
    let mut long_key = vec![TAG_ADDED_FILE, 1, 0, 0, 0, 0];
    put_varint(&mut long_key, INTERNAL_KEY_BYTES_MAX as u64 + 1);
    assert!(decode_edit(&long_key)
        .unwrap_err()
        .contains("over the limit"));
    let max = [vec![TAG_LAST_SEQ], vec![0xFF; 9], vec![0x01]].concat();
    assert_eq!(decode_edit(&max).unwrap().last_seq, Some(u64::MAX));
}

// ---- State --------------------------------------------------------------------------------------

#[test]
fn state_refuses_edits_that_break_invariants() {
    let mut state = ManifestState::new();
    state
        .apply(&VersionEdit {
            added: vec![
                file(1, 1, "a", "c", 1, 5),
                file(2, 1, "e", "g", 1, 5),
                file(3, 0, "a", "z", 6, 9),
            ],
            next_file_id: Some(4),
            last_seq: Some(9),
            ..VersionEdit::default()
        })
        .unwrap();
    state.check_invariants().unwrap();
    let before = state.clone();
    let bad = |edit: VersionEdit, expected: &str| {
        let mut copy = before.clone();
        match copy.apply(&edit) {
            Err(ManifestError::Corrupt { reason }) => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("{edit}: expected Corrupt ({expected}), got {other:?}"),
        }
        assert_eq!(copy, before, "a refused edit changed the state");
    };
    let add = |files: Vec<FileMeta>| VersionEdit {
        added: files,
        next_file_id: Some(10),
        last_seq: Some(20),
        ..VersionEdit::default()
    };
    bad(
        VersionEdit {
            deleted: vec![(1, 3)],
            ..VersionEdit::default()
        },
        "not in L1",
    );
    bad(add(vec![file(2, 2, "x", "y", 1, 1)]), "added twice");
    bad(add(vec![file(5, 1, "c", "d", 1, 1)]), "overlap");
    bad(add(vec![file(5, 1, "f", "f", 1, 1)]), "overlap");
    bad(
        VersionEdit {
            added: vec![file(5, 2, "a", "b", 1, 1)],
            ..VersionEdit::default()
        },
        "next_file_id",
    );
    bad(add(vec![file(5, 2, "a", "b", 1, 30)]), "above last_seq");
    bad(
        add(vec![file(5, 2, "b", "a", 1, 1)]),
        "smallest key after largest",
    );
    bad(
        VersionEdit {
            last_seq: Some(3),
            ..VersionEdit::default()
        },
        "goes back",
    );
    let mut not_a_key = file(5, 2, "a", "b", 1, 1);
    not_a_key.largest = b"short".to_vec();
    bad(add(vec![not_a_key]), "not an internal key");
    bad(
        VersionEdit {
            is_snapshot: true,
            ..VersionEdit::default()
        },
        "lacks a counter",
    );
    // A trivial move (delete and add the same id) is fine; so are touching-but-disjoint keys.
    let mut moved = before.clone();
    moved
        .apply(&VersionEdit {
            deleted: vec![(1, 2)],
            added: vec![file(2, 2, "e", "g", 1, 5), file(7, 1, "d", "d", 1, 1)],
            next_file_id: Some(8),
            ..VersionEdit::default()
        })
        .unwrap();
    assert_eq!(
        moved.levels[1].iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![1, 7]
    );
    assert_eq!(moved.live_file_ids().count(), 4);
}

#[test]
fn level_zero_is_ordered_newest_last() {
    let mut state = ManifestState::new();
    state
        .apply(&VersionEdit {
            added: vec![
                file(3, 0, "a", "b", 20, 30),
                file(1, 0, "a", "b", 1, 10),
                file(2, 0, "a", "b", 11, 19),
            ],
            next_file_id: Some(4),
            last_seq: Some(30),
            ..VersionEdit::default()
        })
        .unwrap();
    let order: Vec<u64> = state.levels[0].iter().map(|f| f.id).collect();
    assert_eq!(order, vec![1, 2, 3]);
}

// ---- The manifest log ---------------------------------------------------------------------------

#[test]
fn apply_then_reopen_gives_the_same_state() {
    for seed in 1..6 {
        let fs = MemFs::new();
        let (manifest, state) = open(&fs).unwrap();
        assert_eq!(state, ManifestState::new());
        let mut generator = EditGen::new(seed, 0);
        let edits: Vec<VersionEdit> = (0..300).map(|_| generator.next_edit()).collect();
        apply_all(&manifest, &edits);
        assert_eq!(manifest_state(&manifest), generator.state);
        drop(manifest);
        let (manifest, state) = open(&fs).unwrap();
        assert_eq!(state, generator.state, "seed {seed}");
        state.check_invariants().unwrap();
        assert!(state.levels.iter().skip(1).any(|level| !level.is_empty()));
        // And it keeps going after a reopen.
        let more: Vec<VersionEdit> = (0..20).map(|_| generator.next_edit()).collect();
        apply_all(&manifest, &more);
        drop(manifest);
        let (_, state) = open(&fs).unwrap();
        assert_eq!(state, generator.state);
        let read = block_on(read_all(fs.clone(), dir())).unwrap();
        let all: Vec<VersionEdit> = edits.into_iter().chain(more).collect();
        assert_eq!(read.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), all);
        assert!(read
            .iter()
            .enumerate()
            .all(|(i, (lsn, _))| *lsn == i as u64 + 1));
    }
}

/// Polls `future` at most `polls` times with a no-op waker; returns whether it finished.
fn poll_some<T>(future: Pin<&mut impl Future<Output = T>>, polls: usize) -> bool {
    let mut future = future;
    let mut cx = Context::from_waker(std::task::Waker::noop());
    (0..polls).any(|_| future.as_mut().poll(&mut cx).is_ready())
}

fn crash_modes() -> Vec<CrashMode> {
    vec![
        CrashMode::LoseAll,
        CrashMode::KeepPrefix { seed: 3 },
        CrashMode::KeepPrefix { seed: 11 },
        CrashMode::KeepPrefix { seed: 12345 },
    ]
}

/// A crash at every step of an edit leaves the state of the last acknowledged edit, or (when
/// the crash came after the record was durable but before `apply` returned) the next one.
#[test]
fn crash_during_apply_keeps_the_acknowledged_state() {
    for mode in crash_modes() {
        for polls in 0..14 {
            let fs = MemFs::new();
            let (manifest, _) = open(&fs).unwrap();
            let mut generator = EditGen::new(polls as u64 + 7, 30);
            let edits: Vec<VersionEdit> = (0..25).map(|_| generator.next_edit()).collect();
            apply_all(&manifest, &edits);
            let acknowledged = generator.state.clone();
            let edit = generator.next_edit();
            fs.set_yield_on_io(true);
            let finished = {
                let apply = std::pin::pin!(manifest.apply(&edit));
                poll_some(apply, polls)
            };
            drop(manifest);
            fs.set_yield_on_io(false);
            fs.crash(mode);
            let (_, state) = open(&fs).unwrap();
            let context = format!("{mode:?}, {polls} polls, finished {finished}");
            if finished {
                assert_eq!(state, generator.state, "{context}");
            } else {
                assert!(
                    state == acknowledged || state == generator.state,
                    "{context}"
                );
            }
        }
    }
}

/// A crash at every step of a rewrite changes nothing: the old log or the snapshot holds the
/// same state.
#[test]
fn crash_during_rewrite_keeps_the_state() {
    for mode in crash_modes() {
        for polls in 0..40 {
            let fs = MemFs::new();
            let (manifest, _) = open(&fs).unwrap();
            let mut generator = EditGen::new(polls as u64 + 100, 100);
            let edits: Vec<VersionEdit> = (0..120).map(|_| generator.next_edit()).collect();
            apply_all(&manifest, &edits);
            if polls % 2 == 1 {
                // Some runs crash in a second rewrite, with an older snapshot in the log.
                block_on(manifest.rewrite()).unwrap();
            }
            fs.set_yield_on_io(true);
            {
                let rewrite = std::pin::pin!(manifest.rewrite());
                poll_some(rewrite, polls);
            }
            drop(manifest);
            fs.set_yield_on_io(false);
            fs.crash(mode);
            let (manifest, state) = open(&fs).unwrap();
            assert_eq!(state, generator.state, "{mode:?}, {polls} polls");
            // The reopened manifest keeps working, and drops segments a snapshot replaced.
            let more: Vec<VersionEdit> = (0..5).map(|_| generator.next_edit()).collect();
            apply_all(&manifest, &more);
            assert!(manifest.segment_count() <= 2);
            drop(manifest);
            assert_eq!(open(&fs).unwrap().1, generator.state);
        }
    }
}

#[test]
fn rewrite_keeps_the_state_and_bounds_the_log() {
    let fs = MemFs::new();
    let (manifest, _) = open(&fs).unwrap();
    let mut generator = EditGen::new(42, 400);
    let mut rewrites = 0;
    let mut written_bytes = 0;
    block_on(async {
        for _ in 0..6000 {
            let edit = generator.next_edit();
            written_bytes += encode_edit(&edit).len() as u64;
            manifest.apply(&edit).await.unwrap();
            if manifest.maybe_rewrite(&generator.state).await.unwrap() {
                rewrites += 1;
            }
            assert!(
                manifest.segment_count() <= 2,
                "{}",
                manifest.segment_count()
            );
        }
    });
    assert!(
        written_bytes > 4 * MANIFEST_REWRITE_BYTES,
        "{written_bytes}"
    );
    assert!(rewrites >= 3, "{rewrites} rewrites");
    let snapshot_bytes = encode_edit(&generator.state.snapshot_edit()).len() as u64;
    assert!(snapshot_bytes < MANIFEST_REWRITE_BYTES / 4);
    assert!(
        dir_bytes(&fs) <= MANIFEST_REWRITE_BYTES + 3 * snapshot_bytes + (64 << 10),
        "{} bytes on disk",
        dir_bytes(&fs)
    );
    assert!(manifest.bytes_since_snapshot() <= MANIFEST_REWRITE_BYTES + (8 << 10));
    drop(manifest);
    let (manifest, state) = open(&fs).unwrap();
    assert_eq!(state, generator.state);
    assert!(manifest.bytes_since_snapshot() <= MANIFEST_REWRITE_BYTES + (8 << 10));
    let read = block_on(read_all(fs.clone(), dir())).unwrap();
    assert!(read[0].1.is_snapshot, "{}", read[0].1);
}

#[test]
fn record_damaged_mid_log_names_file_and_offset() {
    let fs = MemFs::new();
    let (manifest, _) = open(&fs).unwrap();
    let mut generator = EditGen::new(5, 0);
    let edits: Vec<VersionEdit> = (0..30).map(|_| generator.next_edit()).collect();
    apply_all(&manifest, &edits);
    drop(manifest);
    let segment = dir().join(segment_file_name(1));
    let offset: usize = crate::wal::SEGMENT_HEADER_BYTES
        + edits[..10]
            .iter()
            .map(|e| RECORD_HEADER_BYTES + encode_edit(e).len())
            .sum::<usize>();
    fs.flip_bit(&segment, offset as u64 + RECORD_HEADER_BYTES as u64 + 2, 4);
    match open(&fs) {
        Err(error @ ManifestError::Wal(WalError::Corrupt { .. })) => {
            let message = error.to_string();
            assert!(
                message.contains(&segment.display().to_string()),
                "{message}"
            );
            assert!(message.contains(&format!("offset {offset}")), "{message}");
        }
        Err(other) => panic!("expected a corrupt log, got {other}"),
        Ok(_) => panic!("opened a damaged manifest"),
    }
}

/// Records whose checksum verifies but which do not make sense are refused at open, naming the
/// record's lsn.
#[test]
fn undecodable_or_inapplicable_records_are_refused() {
    let wrong_delete = encode_edit(&VersionEdit {
        deleted: vec![(3, 77)],
        ..VersionEdit::default()
    });
    let cases: Vec<(u8, Vec<u8>, &str)> = vec![
        (MANIFEST_RECORD_KIND, wrong_delete, "not in L3"),
        (MANIFEST_RECORD_KIND, vec![200, 1, 2], "unknown tag"),
        (0x01, Vec::new(), "not a manifest record"),
    ];
    for (kind, payload, expected) in cases {
        let fs = MemFs::new();
        let (manifest, _) = open(&fs).unwrap();
        let mut generator = EditGen::new(9, 0);
        let edits: Vec<VersionEdit> = (0..4).map(|_| generator.next_edit()).collect();
        apply_all(&manifest, &edits);
        let lsn = manifest.wal.append(kind, &payload).unwrap();
        block_on(manifest.wal.sync_all()).unwrap();
        drop(manifest);
        match open(&fs) {
            Err(ManifestError::Corrupt { reason }) => {
                assert!(reason.contains(expected), "{reason}");
                assert!(reason.contains(&format!("lsn {lsn}")), "{reason}");
                assert!(reason.contains(&dir().display().to_string()), "{reason}");
            }
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("opened a manifest with a bad record"),
        }
        assert!(block_on(read_all(fs.clone(), dir())).is_err() || kind == MANIFEST_RECORD_KIND);
    }
}

#[test]
fn invalid_edit_is_refused_without_writing() {
    let fs = MemFs::new();
    let (manifest, _) = open(&fs).unwrap();
    let mut generator = EditGen::new(77, 0);
    let edits: Vec<VersionEdit> = (0..10).map(|_| generator.next_edit()).collect();
    apply_all(&manifest, &edits);
    let writes = fs.write_count();
    let missing = VersionEdit {
        deleted: vec![(4, 999)],
        ..VersionEdit::default()
    };
    assert!(matches!(
        block_on(manifest.apply(&missing)),
        Err(ManifestError::InvalidEdit { .. })
    ));
    let duplicate = VersionEdit {
        added: vec![generator
            .state
            .levels
            .iter()
            .flatten()
            .next()
            .unwrap()
            .clone()],
        ..VersionEdit::default()
    };
    assert!(matches!(
        block_on(manifest.apply(&duplicate)),
        Err(ManifestError::InvalidEdit { .. })
    ));
    assert_eq!(fs.write_count(), writes);
    assert_eq!(manifest_state(&manifest), generator.state);
    assert!(!manifest.is_failed());
    let edit = generator.next_edit();
    block_on(manifest.apply(&edit)).unwrap();
    drop(manifest);
    assert_eq!(open(&fs).unwrap().1, generator.state);
}

/// Edits started together by several tasks are written one at a time, each durable.
#[test]
fn concurrent_applies_are_serialized() {
    let fs = MemFs::new();
    let (manifest, _) = open(&fs).unwrap();
    let manifest = Rc::new(manifest);
    fs.set_yield_on_io(true);
    let mut tasks: Vec<Option<Pin<Box<dyn Future<Output = ()>>>>> = (1..=8u64)
        .map(|id| {
            let manifest = manifest.clone();
            let edit = VersionEdit {
                added: vec![file(id, 0, "a", "z", id * 10, id * 10 + 5)],
                next_file_id: Some(100),
                last_seq: Some(1000),
                ..VersionEdit::default()
            };
            Some(Box::pin(async move { manifest.apply(&edit).await.unwrap() }) as Pin<Box<_>>)
        })
        .collect();
    block_on(poll_fn(|cx| {
        for slot in tasks.iter_mut() {
            if slot
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready())
            {
                *slot = None;
            }
        }
        if tasks.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    fs.set_yield_on_io(false);
    let state = manifest_state(&manifest);
    assert_eq!(state.levels[0].len(), 8);
    let order: Vec<u64> = state.levels[0].iter().map(|f| f.id).collect();
    assert_eq!(order, (1..=8).collect::<Vec<_>>());
    drop(tasks);
    drop(manifest);
    assert_eq!(open(&fs).unwrap().1, state);
}

#[test]
fn read_all_of_a_missing_manifest_is_an_error() {
    let fs = MemFs::new();
    assert!(block_on(read_all(fs.clone(), dir())).is_err());
    assert!(block_on(fs.list(Path::new("/data"))).is_err());
}

// ---- Names and display --------------------------------------------------------------------------

#[test]
fn sst_names_and_obsolete_files() {
    assert_eq!(sst_file_name(42), "0000000000000042.sst");
    assert_eq!(parse_sst_file_name("0000000000000042.sst"), Some(42));
    assert_eq!(
        parse_sst_file_name(&sst_file_name(u64::MAX)),
        Some(u64::MAX)
    );
    for bad in [
        "42.sst",
        "000000000000004a.sst",
        "00000000000000042.sst",
        "0000000000000042.sst.tmp",
        "99999999999999999999.sst",
        "wal-00000000000000000001.log",
    ] {
        assert_eq!(parse_sst_file_name(bad), None, "{bad}");
    }
    let mut state = ManifestState::new();
    state
        .apply(&VersionEdit {
            added: vec![file(1, 0, "a", "b", 1, 1), file(3, 1, "a", "b", 1, 1)],
            next_file_id: Some(5),
            last_seq: Some(1),
            ..VersionEdit::default()
        })
        .unwrap();
    let names: Vec<String> = [1, 2, 3, 4]
        .into_iter()
        .map(sst_file_name)
        .chain([
            "MANIFEST".to_string(),
            "0000000000000002.sst.tmp".to_string(),
        ])
        .collect();
    assert_eq!(
        obsolete_files(&state, &names),
        vec![sst_file_name(2), sst_file_name(4)]
    );
}

#[test]
fn edits_display_on_one_line() {
    let edit = VersionEdit {
        added: vec![file(8, 1, "a\n", "q", 3, 9)],
        deleted: vec![(0, 3)],
        next_file_id: Some(9),
        last_seq: None,
        flushed_lsn: Some(40),
        is_snapshot: false,
    };
    let text = edit.to_string();
    assert_eq!(
        text,
        "next_file_id=9 flushed_lsn=40 -L0#3 \
         +L1#8[\"a\\n\"@9..\"q\"@3 seq=3..9 entries=10 tombstones=1 bytes=1008]"
    );
    assert!(!text.contains('\n'));
    assert_eq!(VersionEdit::default().to_string(), "(empty edit)");
    let snapshot = ManifestState::new().snapshot_edit().to_string();
    assert!(
        snapshot.starts_with("snapshot next_file_id=1"),
        "{snapshot}"
    );
}
