//! The LSM against a model: a `BTreeMap` for the live state, one per snapshot, and the state
//! as of the last sync for crashes. Runs over the fault-injecting `MemFs` and the deterministic
//! `LocalRuntime`, with tiny memtables and levels so that flushes and compactions happen often.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::cache::BlockCache;
use crate::localrt::LocalRuntime;
use crate::memfs::{CrashMode, MemFs};
use crate::sst::SstOptions;
use crate::wal::WalOptions;

type Db = Rc<Lsm<MemFs, LocalRuntime>>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn small_options() -> LsmOptions {
    LsmOptions {
        memtable_bytes: 2 << 10,
        max_immutable_memtables: 2,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 4,
        l0_stop_trigger: 6,
        level1_bytes: 8 << 10,
        level_size_ratio: 3,
        target_file_bytes: 4 << 10,
        sst: SstOptions {
            block_bytes: 256,
            ..SstOptions::default()
        },
        wal: WalOptions {
            segment_bytes_max: 16 << 10,
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
        expiry_filter: None,
        dead_range: None,
        key_family: None,
        bulk_chunk_bytes: 1 << 10,
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

async fn open(fs: &MemFs, rt: &LocalRuntime, opts: LsmOptions) -> Db {
    let cache = Rc::new(BlockCache::new(16 << 10));
    Lsm::open(fs.clone(), rt.clone(), dir(), opts, cache)
        .await
        .expect("open")
}

async fn contents(db: &Db, snapshot: Option<Snapshot>) -> Model {
    let mut iter = db.iter(ReadOptions {
        snapshot,
        upper_bound: None,
    });
    iter.seek_to_first().await.expect("seek");
    let mut out = Model::new();
    while iter.valid() {
        let previous = out.insert(iter.key().to_vec(), iter.value().to_vec());
        assert!(previous.is_none(), "iterator returned a key twice");
        iter.next().await.expect("next");
    }
    out
}

/// Runs a test body on a fresh runtime, which it gets to hand to the LSM.
fn run<T: 'static, Fut: std::future::Future<Output = T> + 'static>(
    body: impl FnOnce(LocalRuntime) -> Fut,
) -> T {
    let rt = LocalRuntime::new(0);
    rt.block_on(body(rt.clone()))
}

#[test]
fn puts_survive_flush_compaction_and_reopen() {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt2, small_options()).await;
        let mut model = Model::new();
        for i in 0..2_000u32 {
            let key = format!("key{:05}", (i * 7919) % 1_000).into_bytes();
            let value = format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes();
            if i % 11 == 0 {
                db.delete(&key).await.unwrap();
                model.remove(&key);
            } else {
                db.put(&key, &value).await.unwrap();
                model.insert(key, value);
            }
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        let stats = db.stats();
        assert!(stats.flushes > 5 && stats.compactions > 0, "{stats:?}");
        // Files that overlap no other stay until level 0 as a whole is due.
        let whole =
            super::compaction::L0_WHOLE_TRIGGER_FACTOR * small_options().l0_compaction_trigger;
        assert!(db.level_file_counts()[0] < whole);
        assert_eq!(contents(&db, None).await, model);
        for (key, value) in model.iter().take(100) {
            assert_eq!(
                db.get(key, None).await.unwrap().as_deref(),
                Some(&value[..])
            );
        }
        assert_eq!(db.get(b"absent", None).await.unwrap(), None);
        db.close().await.unwrap();
        drop(db);

        let db = open(&fs, &rt2, small_options()).await;
        assert_eq!(contents(&db, None).await, model);
        db.close().await.unwrap();
    });
}

#[test]
fn snapshot_sees_its_state_across_flush_and_compaction() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        for i in 0..300u32 {
            db.put(format!("k{i:04}").as_bytes(), b"old").await.unwrap();
        }
        let snapshot = db.snapshot();
        let before = contents(&db, Some(snapshot.clone())).await;
        for i in 0..300u32 {
            if i % 2 == 0 {
                db.delete(format!("k{i:04}").as_bytes()).await.unwrap();
            } else {
                db.put(format!("k{i:04}").as_bytes(), b"new-value")
                    .await
                    .unwrap();
            }
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        assert_eq!(contents(&db, Some(snapshot.clone())).await, before);
        assert_eq!(
            db.get(b"k0000", Some(&snapshot)).await.unwrap().as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(db.get(b"k0000", None).await.unwrap(), None);
        assert_eq!(contents(&db, None).await.len(), 150);
        db.close().await.unwrap();
    });
}

#[test]
fn overwriting_one_key_does_not_fill_the_memtable_unless_a_snapshot_needs_the_versions() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        // Far more than a 2 KiB memtable holds if every version were kept.
        for i in 0..2_000u32 {
            db.put(b"counter", format!("{i}").as_bytes()).await.unwrap();
        }
        assert_eq!(
            db.stats().flushes,
            0,
            "dead versions were dropped, not flushed"
        );
        // One version of one key counts about 250 bytes (its overheads included); two, 350.
        assert!(db.memtable_bytes() < 300, "{} bytes", db.memtable_bytes());
        let snapshot = db.snapshot();
        db.put(b"counter", b"after").await.unwrap();
        db.put(b"counter", b"after again").await.unwrap();
        assert_eq!(
            db.get(b"counter", Some(&snapshot))
                .await
                .unwrap()
                .as_deref(),
            Some(&b"1999"[..]),
            "the pinned snapshot's version was kept"
        );
        assert_eq!(
            db.get(b"counter", None).await.unwrap().as_deref(),
            Some(&b"after again"[..])
        );
        drop(snapshot);
        db.close().await.unwrap();
        let db = open(&fs, &rt, small_options()).await;
        assert_eq!(
            db.get(b"counter", None).await.unwrap().as_deref(),
            Some(&b"after again"[..]),
            "replay keeps the newest version"
        );
        db.close().await.unwrap();
    });
}

#[test]
fn flushed_wal_segments_are_deleted() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        for i in 0..3_000u32 {
            db.put(format!("k{:05}", i % 500).as_bytes(), &[7u8; 40])
                .await
                .unwrap();
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        let wal_files = db.wal().segment_count();
        assert!(
            wal_files <= 2,
            "{wal_files} WAL segments left after flushing everything"
        );
        db.close().await.unwrap();
    });
}

#[test]
fn prefix_iterator_stops_at_the_prefix_end() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        for key in ["a", "ab", "abc", "abd", "ac", "b"] {
            db.put(key.as_bytes(), b"v").await.unwrap();
        }
        db.flush().await.unwrap();
        db.put(b"abz", b"v").await.unwrap();
        let mut iter = db.prefix_iter(b"ab", None).await.unwrap();
        let mut keys = Vec::new();
        while iter.valid() {
            keys.push(String::from_utf8(iter.key().to_vec()).unwrap());
            iter.next().await.unwrap();
        }
        assert_eq!(keys, ["ab", "abc", "abd", "abz"]);
        db.close().await.unwrap();
    });
}

/// A point read waits for the newest write to its key's bucket, not for the log's end: a key
/// written (or deleted) reports its own record, a key written by no one since the tree opened
/// reports 0, and after a reopen everything recovered is durable (0 again).
#[test]
fn newest_write_lsn_follows_writes_to_the_key() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        let (a, b) = (b"row-a".as_slice(), b"row-b".as_slice());
        let untouched = (0u32..)
            .map(|i| format!("untouched-{i}").into_bytes())
            .find(|k| {
                let bucket = db::write_lsn_bucket(k);
                bucket != db::write_lsn_bucket(a) && bucket != db::write_lsn_bucket(b)
            })
            .unwrap();
        assert_eq!(db.newest_write_lsn(a), 0);
        let first = db.put(a, b"1").await.unwrap();
        assert_eq!(db.newest_write_lsn(a), first);
        let second = db.put(b, b"2").await.unwrap();
        assert!(second > first);
        assert_eq!(db.newest_write_lsn(a), first, "a write of another key");
        assert_eq!(db.newest_write_lsn(b), second);
        let deleted = db.delete(a).await.unwrap();
        assert_eq!(
            db.newest_write_lsn(a),
            deleted,
            "a tombstone is a write a reader sees"
        );
        let mut batch = WriteBatch::default();
        batch.put(Bytes::from_static(b"row-a"), Bytes::from_static(b"3"));
        batch.put(Bytes::from_static(b"row-b"), Bytes::from_static(b"4"));
        let both = db.write(&batch).unwrap();
        assert_eq!(
            (db.newest_write_lsn(a), db.newest_write_lsn(b)),
            (both, both)
        );
        assert!(db.wal().last_lsn() >= both);
        assert_eq!(db.newest_write_lsn(&untouched), 0);
        db.close().await.unwrap();
        let db = open(&fs, &rt, small_options()).await;
        assert_eq!(db.newest_write_lsn(a), 0);
        assert_eq!(db.get(a, None).await.unwrap().as_deref(), Some(&b"3"[..]));
        db.close().await.unwrap();
    });
}

/// Sizes of key ranges count what lies in them, in memory and in table files, and little
/// beyond: two ranges of 300 and 100 rows, an empty range, and the whole tree.
#[test]
fn approximate_bytes_of_key_ranges() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        let value = [7u8; 40];
        for i in 0..300u32 {
            db.put(format!("a{i:05}").as_bytes(), &value).await.unwrap();
        }
        for i in 0..100u32 {
            db.put(format!("c{i:05}").as_bytes(), &value).await.unwrap();
        }
        let row = 6 + value.len() as u64;
        for flushed in [false, true] {
            if flushed {
                db.flush().await.unwrap();
                db.wait_idle().await.unwrap();
            }
            let size = |start: &'static [u8], end: Option<&'static [u8]>| {
                let db = db.clone();
                async move { db.approximate_bytes(start, end).await.unwrap() }
            };
            let a = size(b"a", Some(b"b")).await;
            let c = size(b"c", Some(b"d")).await;
            // Internal keys add 8 bytes a row; files add block overhead.
            assert!(
                (300 * row..=400 * row).contains(&a),
                "flushed {flushed}: a {a}"
            );
            assert!(
                (100 * row..=150 * row).contains(&c),
                "flushed {flushed}: c {c}"
            );
            assert_eq!(size(b"b", Some(b"c")).await, 0, "flushed {flushed}");
            assert_eq!(
                size(b"a00100", Some(b"a00100")).await,
                0,
                "flushed {flushed}"
            );
            let some = size(b"a00100", Some(b"a00110")).await;
            assert!(
                (10 * row..=12 * (row + 8)).contains(&some),
                "flushed {flushed}: {some}"
            );
            let all = size(b"", None).await;
            assert!(all >= a + c, "flushed {flushed}: {all} < {a} + {c}");
        }
        db.close().await.unwrap();
    });
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, usize),
    Delete(u8),
    /// A put or delete written scan-only (see `WriteBatch::put_scan_only`), on the same keys as
    /// the others: even mixed, point reads and scans must see the newest version.
    ScanOnly(u8, Option<usize>),
    /// One batch of puts (Some(len)) and deletes (None), some scan-only, with repeated keys:
    /// large ones go into the memtable in key order, not batch order.
    Batch(Vec<(u8, Option<usize>, bool)>),
    Get(u8),
    Scan(u8, usize),
    /// `Lsm::bulk_scan` of `[key_of(a), key_of(b))` (ends swapped into order), now or at a
    /// held snapshot: where it plans a scan, the chunks must read what the model holds.
    BulkScan(u8, u8, Option<usize>),
    Snapshot,
    ReadSnapshot(usize),
    Release(usize),
    Sync,
    Flush,
    Compact,
    Crash(bool, u64),
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<u8>(), 0usize..300).prop_map(|(k, len)| Op::Put(k, len)),
        8 => any::<u8>().prop_map(Op::Delete),
        8 => (any::<u8>(), proptest::option::of(0usize..300)).prop_map(|(k, len)| Op::ScanOnly(k, len)),
        3 => proptest::collection::vec((any::<u8>(), proptest::option::of(0usize..100), any::<bool>()), 0..150)
            .prop_map(Op::Batch),
        8 => any::<u8>().prop_map(Op::Get),
        3 => (any::<u8>(), 0usize..20).prop_map(|(k, n)| Op::Scan(k, n)),
        3 => (any::<u8>(), any::<u8>(), proptest::option::of(0usize..8))
            .prop_map(|(a, b, at)| Op::BulkScan(a, b, at)),
        2 => Just(Op::Snapshot),
        3 => (0usize..8).prop_map(Op::ReadSnapshot),
        2 => (0usize..8).prop_map(Op::Release),
        4 => Just(Op::Sync),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        2 => (any::<bool>(), any::<u64>()).prop_map(|(all, seed)| Op::Crash(all, seed)),
        1 => Just(Op::Reopen),
    ]
}

fn key_of(k: u8) -> Vec<u8> {
    // A small key space (many overwrites), keys of varied length sharing prefixes.
    format!("key{}", k % 64).into_bytes()
}

fn value_of(step: usize, len: usize) -> Vec<u8> {
    let mut value = format!("{step}:").into_bytes();
    value.resize(len.max(value.len()), b'a' + (step % 26) as u8);
    value
}

/// Every live entry a planned bulk scan reads, in order.
async fn bulk_read(scan: &super::bulk::BulkScan<MemFs>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut read = Vec::new();
    for i in 0..scan.len() {
        let chunk = scan.read(i).await.unwrap();
        chunk
            .for_each(
                |e| e,
                |k, v| {
                    read.push((k.to_vec(), v.to_vec()));
                    Ok(())
                },
            )
            .unwrap();
    }
    read
}

/// One write since the last sync: the model before it is recoverable too.
struct Unsynced {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

/// A key family for `key_of`'s keys (`key7`, `key42`): the first digit, so that tables split
/// into groups that often do not overlap. Non-decreasing in key order, as the tree requires.
fn first_digit_family(user_key: &[u8]) -> u8 {
    user_key.get(3).copied().unwrap_or(0)
}

async fn check_model(rt: LocalRuntime, ops: Vec<Op>, families: bool) {
    let opts = LsmOptions {
        key_family: families.then_some(first_digit_family as super::KeyFamily),
        ..small_options()
    };
    let mut fs = MemFs::new();
    fs.set_yield_on_io(true);
    let mut db = open(&fs, &rt, opts.clone()).await;
    let mut model = Model::new();
    let mut synced = Model::new();
    let mut unsynced: Vec<Unsynced> = Vec::new();
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    // The WAL position of each key's newest write since the tree opened: a read of the key
    // must wait at least that far (`Lsm::newest_write_lsn`).
    let mut written: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put(k, len) => {
                let (key, value) = (key_of(k), value_of(step, len));
                written.insert(key.clone(), db.put(&key, &value).await.unwrap());
                model.insert(key.clone(), value.clone());
                unsynced.push(Unsynced {
                    key,
                    value: Some(value),
                });
            }
            Op::Delete(k) => {
                let key = key_of(k);
                written.insert(key.clone(), db.delete(&key).await.unwrap());
                model.remove(&key);
                unsynced.push(Unsynced { key, value: None });
            }
            Op::ScanOnly(k, len) => {
                let key = key_of(k);
                let value = len.map(|len| value_of(step, len));
                let mut batch = WriteBatch::new();
                match &value {
                    Some(v) => {
                        batch.put_scan_only(Bytes::from(key.clone()), Bytes::from(v.clone()))
                    }
                    None => batch.delete_scan_only(Bytes::from(key.clone())),
                }
                db.wait_for_write_room().await.unwrap();
                written.insert(key.clone(), db.write_owned(batch).unwrap());
                match &value {
                    Some(v) => model.insert(key.clone(), v.clone()),
                    None => model.remove(&key),
                };
                unsynced.push(Unsynced { key, value });
            }
            Op::Batch(entries) => {
                let mut batch = WriteBatch::new();
                let mut keys = Vec::new();
                for (k, len, scan_only) in entries {
                    let key = key_of(k);
                    let value = len.map(|len| value_of(step, len));
                    let (k, v) = (Bytes::from(key.clone()), value.clone().map(Bytes::from));
                    match (v, scan_only) {
                        (Some(v), false) => batch.put(k, v),
                        (Some(v), true) => batch.put_scan_only(k, v),
                        (None, false) => batch.delete(k),
                        (None, true) => batch.delete_scan_only(k),
                    }
                    match &value {
                        Some(v) => model.insert(key.clone(), v.clone()),
                        None => model.remove(&key),
                    };
                    keys.push(key.clone());
                    // Looser than the batch's all-or-nothing, which is the WAL's to keep.
                    unsynced.push(Unsynced { key, value });
                }
                db.wait_for_write_room().await.unwrap();
                let lsn = db.write_owned(batch).unwrap();
                for key in keys {
                    written.insert(key, lsn);
                }
            }
            Op::Get(k) => {
                let key = key_of(k);
                let got = db.get(&key, None).await.unwrap();
                assert_eq!(
                    got.as_deref(),
                    model.get(&key).map(|v| &v[..]),
                    "get {key:?} at step {step}"
                );
                let wait = db.newest_write_lsn(&key);
                assert!(
                    wait >= written.get(&key).copied().unwrap_or(0) && wait <= db.wal().last_lsn(),
                    "a read of {key:?} at step {step} waits for {wait}, its newest write is {:?}",
                    written.get(&key)
                );
            }
            Op::Scan(k, n) => {
                let from = key_of(k);
                let mut iter = db.iter(ReadOptions::default());
                iter.seek(&from).await.unwrap();
                let mut got = Vec::new();
                while iter.valid() && got.len() < n {
                    got.push((iter.key().to_vec(), iter.value().to_vec()));
                    iter.next().await.unwrap();
                }
                let want: Vec<_> = model
                    .range(from..)
                    .take(n)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "scan at step {step}");
            }
            Op::BulkScan(a, b, at) => {
                let (mut lower, mut upper) = (key_of(a), key_of(b));
                if lower > upper {
                    std::mem::swap(&mut lower, &mut upper);
                }
                let (snapshot, expected) = match at {
                    Some(i) if !snapshots.is_empty() => {
                        let (snapshot, expected) = &snapshots[i % snapshots.len()];
                        (Some(snapshot), expected)
                    }
                    _ => (None, &model),
                };
                if let Some(scan) = db.bulk_scan(&lower, &upper, snapshot).await {
                    let want: Vec<(Vec<u8>, Vec<u8>)> = expected
                        .range(lower.clone()..upper.clone())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    assert_eq!(
                        bulk_read(&scan).await,
                        want,
                        "bulk scan of {lower:?}..{upper:?} at step {step}"
                    );
                }
            }
            Op::Snapshot => snapshots.push((db.snapshot(), model.clone())),
            Op::ReadSnapshot(i) => {
                if let Some((snapshot, expected)) = snapshots.get(i % snapshots.len().max(1)) {
                    assert_eq!(
                        &contents(&db, Some(snapshot.clone())).await,
                        expected,
                        "snapshot at step {step}"
                    );
                    for key in expected.keys().take(5) {
                        let got = db.get(key, Some(snapshot)).await.unwrap();
                        assert_eq!(got.as_deref(), expected.get(key).map(|v| &v[..]));
                    }
                }
            }
            Op::Release(i) => {
                if !snapshots.is_empty() {
                    let at = i % snapshots.len();
                    snapshots.remove(at);
                }
            }
            Op::Sync => {
                db.wal().sync_all().await.unwrap();
                synced = model.clone();
                unsynced.clear();
            }
            Op::Flush => {
                db.flush().await.unwrap();
            }
            Op::Compact => db.wait_idle().await.unwrap(),
            Op::Crash(lose_all, seed) => {
                let mode = if lose_all {
                    CrashMode::LoseAll
                } else {
                    CrashMode::KeepPrefix { seed }
                };
                let crashed = fs.crash_fork(mode);
                db.stop().await;
                snapshots.clear();
                fs = crashed;
                db = open(&fs, &rt, opts.clone()).await;
                written.clear();
                let recovered = contents(&db, None).await;
                // Everything synced survives; of the rest, a prefix of the writes may.
                let mut candidate = synced.clone();
                let mut matched = recovered == candidate;
                for write in &unsynced {
                    if matched {
                        break;
                    }
                    match &write.value {
                        Some(value) => candidate.insert(write.key.clone(), value.clone()),
                        None => candidate.remove(&write.key),
                    };
                    matched = recovered == candidate;
                }
                assert!(matched, "after a crash at step {step} ({mode:?}) the state is not synced + a prefix of later writes");
                model = recovered;
                synced = model.clone();
                unsynced.clear();
            }
            Op::Reopen => {
                db.close().await.unwrap();
                snapshots.clear();
                db = open(&fs, &rt, opts.clone()).await;
                written.clear();
                synced = model.clone();
                unsynced.clear();
                assert_eq!(
                    contents(&db, None).await,
                    model,
                    "after reopen at step {step}"
                );
            }
        }
    }
    assert_eq!(contents(&db, None).await, model);
    drop(snapshots);
    db.close().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lsm_matches_a_model(
        ops in proptest::collection::vec(op_strategy(), 1..400),
        families in any::<bool>(),
    ) {
        let rt = LocalRuntime::new(0);
        rt.block_on(check_model(rt.clone(), ops, families));
    }
}

/// An appending workload in the shape of a Redis list being pushed onto: each batch rewrites
/// one metadata key and adds elements past every earlier one. Returns the tree's counters.
fn append_like_a_list(key_family: Option<super::KeyFamily>) -> super::LsmStats {
    run(|rt| async move {
        let fs = MemFs::new();
        let opts = LsmOptions {
            key_family,
            ..small_options()
        };
        let db = open(&fs, &rt, opts.clone()).await;
        let mut model = Model::new();
        for batch_no in 0..400u32 {
            let mut batch = WriteBatch::new();
            let meta = (
                b"meta:list".to_vec(),
                format!("len={}", batch_no * 4).into_bytes(),
            );
            batch.put(Bytes::from(meta.0.clone()), Bytes::from(meta.1.clone()));
            model.insert(meta.0, meta.1);
            for i in 0..4 {
                let element = format!("x:list:{:08}", batch_no * 4 + i).into_bytes();
                let value = format!("element {}", batch_no * 4 + i).into_bytes();
                batch.put(Bytes::from(element.clone()), Bytes::from(value.clone()));
                model.insert(element, value);
            }
            db.wait_for_write_room().await.unwrap();
            db.write(&batch).unwrap();
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        assert_eq!(contents(&db, None).await, model);
        assert_eq!(
            db.get(b"meta:list", None).await.unwrap().as_deref(),
            Some(&b"len=1596"[..])
        );
        let stats = db.stats();
        db.close().await.unwrap();
        drop(db);
        let db = open(&fs, &rt, opts).await;
        assert_eq!(contents(&db, None).await, model, "after reopening");
        db.close().await.unwrap();
        stats
    })
}

#[test]
fn level0_files_the_filter_would_change_are_merged_not_moved() {
    run(|rt| async move {
        let fs = MemFs::new();
        let opts = LsmOptions {
            expiry_filter: Some(Rc::new(|_: &[u8], value: &[u8]| {
                value.starts_with(b"expired")
            })),
            ..small_options()
        };
        let db = open(&fs, &rt, opts).await;
        let mut model = Model::new();
        // Keys in ascending order, so that every flushed table overlaps nothing: each could move.
        for i in 0..600u32 {
            let key = format!("k{i:06}").into_bytes();
            let value = if (200..210).contains(&i) {
                b"expired".to_vec()
            } else {
                format!("value {i}").into_bytes()
            };
            db.put(&key, &value).await.unwrap();
            if !value.starts_with(b"expired") {
                model.insert(key, value);
            }
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        let stats = db.stats();
        assert!(stats.trivial_moves > 0, "clean tables moved: {stats:?}");
        assert!(
            stats.compaction_bytes_written > 0,
            "the table with expired values was merged: {stats:?}"
        );
        assert_eq!(
            contents(&db, None).await,
            model,
            "expired values were dropped"
        );
        db.close().await.unwrap();
    });
}

#[test]
fn appended_elements_move_down_the_tree_without_being_rewritten() {
    fn first_byte(user_key: &[u8]) -> u8 {
        user_key.first().copied().unwrap_or(0)
    }
    let split = append_like_a_list(Some(first_byte));
    assert!(split.flushes > 20, "{split:?}");
    assert!(split.trivial_moves >= split.flushes, "{split:?}");
    // Only the metadata key's tables are merged: a few bytes per flush.
    assert!(
        split.compaction_bytes_written * 10 < split.flush_bytes_written,
        "{split:?}"
    );
    // One family: every table holds the metadata key, so every table overlaps every other
    // and everything is merged, again and again.
    let mixed = append_like_a_list(None);
    assert!(
        mixed.compaction_bytes_written > mixed.flush_bytes_written,
        "{mixed:?}"
    );
}

#[test]
fn bytes_helpers_are_exposed() {
    let _ = Bytes::new();
}

#[test]
fn background_io_errors_fail_the_tree_without_losing_acknowledged_data() {
    use crate::memfs::FaultOp;
    for op in [FaultOp::Write, FaultOp::Sync, FaultOp::Read] {
        run(move |rt| async move {
            let fs = MemFs::new();
            let db = open(&fs, &rt, small_options()).await;
            let mut model = Model::new();
            for i in 0..200u32 {
                let key = format!("k{i:04}").into_bytes();
                db.put(&key, &[1u8; 50]).await.unwrap();
                model.insert(key, vec![1u8; 50]);
            }
            db.wal().sync_all().await.unwrap();
            fs.fail_next(op, std::io::ErrorKind::Other);
            // Keep writing until the fault hits a flush or compaction (or a read by either).
            let mut failed = false;
            for i in 200..5_000u32 {
                let key = format!("k{i:04}").into_bytes();
                match db.put(&key, &[2u8; 50]).await {
                    Ok(_) => {
                        model.insert(key, vec![2u8; 50]);
                    }
                    Err(LsmError::Failed { .. }) => {
                        failed = true;
                        break;
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                if db.wal().is_failed() {
                    failed = true;
                    break;
                }
            }
            fs.clear_faults();
            if !failed {
                // The fault hit a read that a retry-free path tolerates? Then nothing failed and
                // everything must still be there.
                db.wal().sync_all().await.unwrap();
            }
            db.stop().await;
            drop(db);
            // Everything written before the first failure and synced... the WAL may have failed
            // too, so only the synced prefix is promised; the reopened tree must hold at least
            // the keys synced before the fault, and never a value that was not written.
            let db = open(&fs, &rt, small_options()).await;
            let recovered = contents(&db, None).await;
            for i in 0..200u32 {
                let key = format!("k{i:04}").into_bytes();
                assert_eq!(
                    recovered.get(&key),
                    Some(&vec![1u8; 50]),
                    "{op:?}: synced key lost"
                );
            }
            for (key, value) in &recovered {
                assert_eq!(model.get(key), Some(value), "{op:?}: a value nobody wrote");
            }
            db.close().await.unwrap();
        });
    }
}

/// `Lsm::ingest` puts a fresh key range into tables at once: readers see it whole (and an
/// older snapshot not at all), it lands on a level where it needs no compaction, it survives
/// a crash the moment the call returns, and later writes to its keys win.
#[test]
fn ingested_ranges_read_back_survive_a_crash_and_yield_to_later_writes() {
    run(|rt| async move {
        let mut fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        let mut model = Model::new();
        for i in 0..600u32 {
            let key = format!("a{:04}", (i * 7) % 500).into_bytes();
            db.put(&key, b"before").await.unwrap();
            model.insert(key, b"before".to_vec());
        }
        db.wal().sync_all().await.unwrap();
        let before = db.snapshot();
        let ingested: Vec<(Bytes, Bytes)> = (0..3_000u32)
            .map(|i| {
                let value = format!("ingested-{i}-{}", "y".repeat((i % 40) as usize));
                (Bytes::from(format!("m{i:05}")), Bytes::from(value))
            })
            .collect();
        db.ingest(std::sync::Arc::new(packed(&ingested)))
            .await
            .unwrap();
        for (k, v) in &ingested {
            model.insert(k.to_vec(), v.to_vec());
        }
        assert!(db.stats().ingested_files > 1, "cut at the target file size");
        let counts = db.level_file_counts();
        assert!(
            counts[crate::lsm::manifest::LEVEL_COUNT - 1] > 0,
            "on the last level: {counts:?}"
        );
        assert_eq!(contents(&db, None).await, model);
        assert!(contents(&db, Some(before))
            .await
            .keys()
            .all(|k| k[0] == b'a'));
        assert_eq!(
            db.get(b"m01234", None).await.unwrap().as_deref(),
            Some(&ingested[1234].1[..])
        );
        // Refused: keys out of order, and a range a memtable holds keys of.
        let unordered = vec![ingested[5].clone(), ingested[4].clone()];
        assert!(db
            .ingest(std::sync::Arc::new(packed(&unordered)))
            .await
            .is_err());
        db.put(b"z1", b"in memory").await.unwrap();
        model.insert(b"z1".to_vec(), b"in memory".to_vec());
        let overlapping = vec![
            (Bytes::from_static(b"z0"), Bytes::new()),
            (Bytes::from_static(b"z2"), Bytes::new()),
        ];
        assert!(db
            .ingest(std::sync::Arc::new(packed(&overlapping)))
            .await
            .is_err());
        db.wal().sync_all().await.unwrap();

        // Durable without any WAL record: a crash that loses everything unsynced keeps it.
        let crashed = fs.crash_fork(CrashMode::LoseAll);
        db.stop().await;
        fs = crashed;
        let db = open(&fs, &rt, small_options()).await;
        assert_eq!(contents(&db, None).await, model);
        // Sequence numbers went on above the ingested one: a new write to its keys wins,
        // through flushes and compactions.
        for i in (0..3_000u32).step_by(3) {
            let key = format!("m{i:05}").into_bytes();
            db.put(&key, b"rewritten").await.unwrap();
            model.insert(key, b"rewritten".to_vec());
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        assert_eq!(contents(&db, None).await, model);
        // Over keys tables already hold (some deleted): the ingested versions are newer, so
        // they go above those tables and win.
        for i in (0..500u32).step_by(5) {
            let key = format!("a{i:04}").into_bytes();
            db.delete(&key).await.unwrap();
            model.remove(&key);
        }
        db.flush().await.unwrap();
        let over: Vec<(Bytes, Bytes)> = (0..500u32)
            .step_by(2)
            .map(|i| (Bytes::from(format!("a{i:04}")), Bytes::from_static(b"over")))
            .collect();
        db.ingest(std::sync::Arc::new(packed(&over))).await.unwrap();
        for (k, v) in &over {
            model.insert(k.to_vec(), v.to_vec());
        }
        assert_eq!(contents(&db, None).await, model);
        assert_eq!(
            db.get(b"a0010", None).await.unwrap().as_deref(),
            Some(&b"over"[..])
        );
        db.wait_idle().await.unwrap();
        assert_eq!(contents(&db, None).await, model);
        db.close().await.unwrap();
        drop(db);
        let db = open(&fs, &rt, small_options()).await;
        assert_eq!(contents(&db, None).await, model);
        db.close().await.unwrap();
    });
}

/// `LsmOptions::dead_range` lets the tree delete tables whose whole range is garbage without
/// reading them: an ingested range on the last level, which no compaction would ever reach.
#[test]
fn tables_of_a_dead_range_are_deleted_whole() {
    run(|rt| async move {
        let fs = MemFs::new();
        let dead = Rc::new(std::cell::Cell::new(false));
        let flag = dead.clone();
        let opts = LsmOptions {
            dead_range: Some(Rc::new(move |lo: &[u8], hi: &[u8]| {
                flag.get() && lo.starts_with(b"m") && hi.starts_with(b"m")
            })),
            ..small_options()
        };
        let db = open(&fs, &rt, opts.clone()).await;
        let rows: Vec<(Bytes, Bytes)> = (0..2_000u32)
            .map(|i| (Bytes::from(format!("m{i:05}")), Bytes::from_static(b"row")))
            .collect();
        db.ingest(std::sync::Arc::new(packed(&rows))).await.unwrap();
        for i in 0..300u32 {
            db.put(format!("a{i:04}").as_bytes(), b"live")
                .await
                .unwrap();
        }
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        assert_eq!(db.stats().dead_tables_deleted, 0, "not dead yet");
        let files_before: usize = db.level_file_counts().iter().sum();
        dead.set(true);
        db.put(b"a9999", b"wakes the compaction loop")
            .await
            .unwrap();
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        let deleted = db.stats().dead_tables_deleted;
        assert!(deleted >= 2, "the ingested tables went: {deleted}");
        assert!(db.level_file_counts().iter().sum::<usize>() < files_before + 1);
        let left = contents(&db, None).await;
        assert!(left.keys().all(|k| k[0] == b'a'), "only live keys remain");
        assert_eq!(left.len(), 301);
        db.close().await.unwrap();
        drop(db);
        let db = open(&fs, &rt, opts).await;
        assert_eq!(
            contents(&db, None).await.len(),
            301,
            "the deletion is in the manifest"
        );
        db.close().await.unwrap();
    });
}

/// An ingestion that fails before the manifest names its files (here: a table's sync)
/// deletes what it wrote, and the tree goes on taking writes and ingestions.
#[test]
fn a_failed_ingestion_leaves_no_file_and_the_tree_writable() {
    use crate::fs::FileSystem;
    use crate::memfs::FaultOp;
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        db.put(b"a", b"1").await.unwrap();
        db.flush().await.unwrap();
        db.wait_idle().await.unwrap();
        let sst_dir = dir().join("sst");
        let before = fs.list(&sst_dir).await.unwrap().len();
        let rows: Vec<(Bytes, Bytes)> = (0..2_000u32)
            .map(|i| (Bytes::from(format!("m{i:05}")), Bytes::from_static(b"row")))
            .collect();
        fs.fail_next(FaultOp::Sync, std::io::ErrorKind::Other);
        assert!(db.ingest(std::sync::Arc::new(packed(&rows))).await.is_err());
        assert_eq!(
            fs.list(&sst_dir).await.unwrap().len(),
            before,
            "its files are gone"
        );
        assert_eq!(db.get(b"m00001", None).await.unwrap(), None);
        db.put(b"b", b"2").await.unwrap();
        db.ingest(std::sync::Arc::new(packed(&rows))).await.unwrap();
        assert_eq!(
            db.get(b"m01999", None).await.unwrap().as_deref(),
            Some(&b"row"[..])
        );
        db.close().await.unwrap();
    });
}

/// An ingestion is cut into tables written at once: the cuts cover every entry once, in
/// order, and keys that stop ascending exactly at a cut are still refused, whichever thread
/// encodes the table after it.
#[test]
fn ingestion_cuts_cover_every_entry_and_order_is_checked_across_them() {
    let rows: Vec<(Bytes, Bytes)> = (0..40u32)
        .map(|i| {
            (
                Bytes::from(format!("k{i:03}")),
                Bytes::from(vec![b'v'; 1000]),
            )
        })
        .collect();
    let parts = super::db::ingest_parts(&packed(&rows), small_options().target_file_bytes);
    assert!(
        parts.len() > super::db::INGEST_TABLES_AT_ONCE as usize,
        "{parts:?}"
    );
    assert_eq!(parts.first().map(|p| p.start), Some(0));
    assert_eq!(parts.last().map(|p| p.end), Some(rows.len()));
    assert!(parts.iter().all(|p| !p.is_empty()));
    assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
    // At the end of a table the shard encodes, then of one the helper encodes.
    let swapped_at = |cut: usize| {
        let mut swapped = rows.clone();
        swapped.swap(cut - 1, cut);
        swapped
    };
    let swapped = [swapped_at(parts[0].end), swapped_at(parts[1].end)];
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        for swapped in &swapped {
            assert!(db
                .ingest(std::sync::Arc::new(packed(swapped)))
                .await
                .is_err());
        }
        db.ingest(std::sync::Arc::new(packed(&rows))).await.unwrap();
        assert_eq!(db.stats().ingested_files, parts.len() as u64);
        for (key, value) in &rows {
            assert_eq!(
                db.get(key, None).await.unwrap().as_deref(),
                Some(&value[..])
            );
        }
        db.close().await.unwrap();
    });
}

/// Ingestion input from pairs, in the given order.
fn packed(rows: &[(Bytes, Bytes)]) -> super::PackedEntries {
    let mut packed = super::PackedEntries::new();
    for (key, value) in rows {
        packed.push(0, key, value).unwrap();
    }
    packed
}

/// `Lsm::bulk_scan` plans a scan only where reading the files gives what an iterator gives:
/// a range one sorted level alone holds (an ingested one), with nothing of it in memory, no
/// tombstone, nothing newer than the snapshot.
#[test]
fn a_bulk_scan_is_planned_only_where_it_reads_what_an_iterator_reads() {
    run(|rt| async move {
        let fs = MemFs::new();
        let db = open(&fs, &rt, small_options()).await;
        for i in 0..200u32 {
            db.put(format!("a{i:04}").as_bytes(), b"elsewhere")
                .await
                .unwrap();
        }
        let rows: Vec<(Bytes, Bytes)> = (0..2_000u32)
            .map(|i| {
                (
                    Bytes::from(format!("m{i:05}")),
                    Bytes::from(format!("row {i}")),
                )
            })
            .collect();
        let before_ingest = db.snapshot();
        db.ingest(std::sync::Arc::new(packed(&rows))).await.unwrap();
        // The ingested tables are newer than that snapshot: an iterator at it sees none of
        // their rows, and the files cannot tell it so.
        assert!(db
            .bulk_scan(b"m", b"n", Some(&before_ingest))
            .await
            .is_none());
        drop(before_ingest);
        let before_write = db.snapshot();
        let scan = db
            .bulk_scan(b"m", b"n", None)
            .await
            .expect("an ingested range is planned");
        let read: Vec<(Bytes, Bytes)> = bulk_read(&scan)
            .await
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
            .collect();
        assert_eq!(read, rows);
        // A level-0 file whose keys span the range but hold none of it does not count.
        db.put(b"l", b"before").await.unwrap();
        db.put(b"z", b"after").await.unwrap();
        db.flush().await.unwrap();
        assert!(db.level_file_counts()[0] > 0);
        assert!(db.bulk_scan(b"m", b"n", None).await.is_some());
        // The memtable holds a key of the range, then level 0 does.
        db.put(b"m00007", b"newer").await.unwrap();
        assert!(db.bulk_scan(b"m", b"n", None).await.is_none());
        db.flush().await.unwrap();
        assert!(db.bulk_scan(b"m", b"n", None).await.is_none());
        // A snapshot older than the tables' newest entries cannot read them straight.
        assert!(db
            .bulk_scan(b"m", b"n", Some(&before_write))
            .await
            .is_none());
        // Elsewhere is unaffected; an empty range is not planned.
        assert!(db
            .bulk_scan(b"m01000", b"m01999", Some(&before_write))
            .await
            .is_some());
        assert!(db.bulk_scan(b"x", b"y", None).await.is_none());
        db.close().await.unwrap();
    });
}

/// Level 0's files may overlap one another, so a range only they hold is not read straight
/// from them: each holds its own version of the keys.
#[test]
fn a_range_held_by_level_0_alone_is_not_bulk_scanned() {
    run(|rt| async move {
        let fs = MemFs::new();
        let opts = LsmOptions {
            l0_compaction_trigger: 100,
            l0_slowdown_trigger: 200,
            l0_stop_trigger: 300,
            ..small_options()
        };
        let db = open(&fs, &rt, opts).await;
        for round in 0..2 {
            for i in 0..20u32 {
                db.put(
                    format!("p{i:02}").as_bytes(),
                    format!("round {round}").as_bytes(),
                )
                .await
                .unwrap();
            }
            db.flush().await.unwrap();
        }
        assert!(
            db.level_file_counts()[0] >= 2,
            "{:?}",
            db.level_file_counts()
        );
        assert!(db.bulk_scan(b"p", b"q", None).await.is_none());
        db.close().await.unwrap();
    });
}
