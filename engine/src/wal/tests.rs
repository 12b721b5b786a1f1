//! WAL tests, all over [`MemFs`].

use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use futures_lite::future::block_on;
use proptest::prelude::*;

use super::format::{decode_record, Decoded};
use super::*;
use crate::memfs::{CrashMode, FaultOp, MemFs};

type Rec = (u64, u8, Vec<u8>);
type Task<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

fn dir() -> PathBuf {
    PathBuf::from("/data/shard-0/wal")
}

fn small() -> WalOptions {
    WalOptions {
        segment_bytes_max: 8192,
        preallocate_bytes: 0,
        replay_from_lsn: 0,
    }
}

/// Segments zero-filled ahead of the data recover exactly, across crashes, and keep appending.
#[test]
fn preallocated_segments_recover_and_continue() {
    let fs = MemFs::new();
    let opts = || WalOptions {
        segment_bytes_max: 64 << 10,
        preallocate_bytes: 16 << 10,
        replay_from_lsn: 0,
    };
    let mut expected = Vec::new();
    for round in 0..4u64 {
        let (wal, recovered) = open_wal(&fs, opts()).unwrap();
        assert_eq!(recovered.len(), expected.len(), "round {round}");
        block_on(async {
            for i in 0..50 {
                let lsn = wal.append(1, &payload(round * 100 + i, 300)).unwrap();
                expected.push(lsn);
            }
            wal.sync_all().await.unwrap();
        });
        drop(wal);
        fs.crash(CrashMode::LoseAll);
    }
    let (_, recovered) = open_wal(&fs, opts()).unwrap();
    assert_eq!(recovered.len(), expected.len());
}

fn payload(lsn: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (lsn as usize * 31 + i * 7) as u8)
        .collect()
}

fn open_wal(fs: &MemFs, opts: WalOptions) -> Result<(Wal<MemFs>, Vec<Rec>), WalError> {
    let mut records = Vec::new();
    let wal = block_on(Wal::open(fs.clone(), dir(), opts, |lsn, kind, payload| {
        records.push((lsn, kind, payload.to_vec()));
        Ok(())
    }))?;
    Ok((wal, records))
}

fn append(wal: &Wal<MemFs>, len: usize) -> Rec {
    let lsn = wal.last_lsn() + 1;
    let data = payload(lsn, len);
    let kind = (lsn % 5) as u8;
    assert_eq!(wal.append(kind, &data).unwrap(), lsn);
    (lsn, kind, data)
}

fn segment_files(fs: &MemFs) -> Vec<String> {
    block_on(fs.list(&dir())).unwrap()
}

fn last_segment(fs: &MemFs) -> PathBuf {
    dir().join(segment_files(fs).last().unwrap())
}

/// (start, end) of every record in a segment image.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Decoded::Record(record) = decode_record(&bytes[offset..]) {
        spans.push((offset, offset + record.encoded_bytes()));
        offset += record.encoded_bytes();
    }
    spans
}

/// Polls every future to completion on one thread, interleaving them.
fn join_all<T>(futures: Vec<Task<'_, T>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    block_on(poll_fn(|cx| {
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                if let Poll::Ready(value) = future.as_mut().poll(cx) {
                    *output = Some(value);
                    *slot = None;
                }
            }
        }
        if futures.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    outputs.into_iter().map(|o| o.unwrap()).collect()
}

#[test]
fn round_trip_across_segments() {
    let fs = MemFs::new();
    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert!(replayed.is_empty());
    assert_eq!(wal.last_lsn(), 0);
    let mut expected = Vec::new();
    for i in 0..300 {
        expected.push(append(&wal, (i * 37) % 3000));
        if i % 7 == 0 {
            block_on(wal.sync_all()).unwrap();
            assert_eq!(wal.durable_lsn(), wal.last_lsn());
        }
    }
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    assert!(segment_files(&fs).len() > 10, "{:?}", segment_files(&fs));
    assert_eq!(segment_files(&fs)[0], segment_file_name(1));

    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, expected);
    assert_eq!((wal.last_lsn(), wal.durable_lsn()), (300, 300));
    // One record larger than a write chunk and a segment.
    expected.push(append(&wal, WAL_WRITE_BYTES_MAX * 2 + 100));
    expected.push(append(&wal, 5));
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let (_wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, expected);
}

#[test]
fn group_commit_shares_fsyncs() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let wal = Rc::new(wal);
    fs.set_yield_on_io(true);
    let syncs_before = fs.sync_count();
    let tasks: Vec<Task<Result<u64, WalError>>> = (0..16)
        .map(|i| {
            let wal = wal.clone();
            Box::pin(async move {
                let lsn = wal.append(1, &payload(i, 100))?;
                wal.sync_to(lsn).await?;
                assert!(wal.durable_lsn() >= lsn);
                Ok(lsn)
            }) as Task<_>
        })
        .collect();
    let lsns: Vec<u64> = join_all(tasks).into_iter().map(Result::unwrap).collect();
    assert_eq!(lsns, (1..=16).collect::<Vec<_>>());
    let syncs = fs.sync_count() - syncs_before;
    // The first task flushes lsn 1 alone; everyone who arrived meanwhile shares one more flush.
    assert!(syncs <= 2, "{syncs} fsyncs for 16 concurrent commits");
    assert_eq!(wal.durable_lsn(), 16);
}

fn one_mib_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 1 << 20,
        ..small()
    }
}

/// A log with 1 MiB segments ([`one_mib_segments`]) and three small records appended, none
/// synced yet: where the write-through tests start.
fn three_records_unsynced(fs: &MemFs) -> (Wal<MemFs>, Vec<Rec>) {
    let (wal, _) = open_wal(fs, one_mib_segments()).unwrap();
    let records = (0..3).map(|_| append(&wal, 100)).collect();
    (wal, records)
}

/// A sync flush writes through the O_DSYNC handle and calls no fdatasync; after a plain
/// (async) write it must fdatasync, since a write-through write makes only itself durable.
/// Without that fallback the records of the plain write would be lost below.
#[test]
fn sync_flushes_write_through_and_fall_back_after_plain_writes() {
    let fs = MemFs::new();
    let (wal, mut expected) = three_records_unsynced(&fs);
    let (syncs, through) = (fs.sync_count(), fs.write_through_count());
    block_on(wal.sync_to(3)).unwrap();
    assert_eq!(
        fs.sync_count(),
        syncs,
        "no fdatasync for a write-through flush"
    );
    assert_eq!(fs.write_through_count(), through + 1);
    // Plain writes: two blocks' worth, so the next flush rewrites only the last one.
    expected.extend((0..6).map(|_| append(&wal, 1200)));
    block_on(wal.write_buffered()).unwrap();
    expected.push(append(&wal, 100));
    let lsn = wal.last_lsn();
    block_on(wal.sync_to(lsn)).unwrap();
    assert_eq!(fs.sync_count(), syncs + 1, "plain writes need an fdatasync");
    expected.push(append(&wal, 100));
    block_on(wal.sync_to(lsn + 1)).unwrap();
    assert_eq!(fs.sync_count(), syncs + 1, "synced: back to write-through");
    fs.crash(CrashMode::LoseAll);
    drop(wal);
    let (_, recovered) = open_wal(&fs, one_mib_segments()).unwrap();
    assert_eq!(recovered, expected);
}

/// A sync flush longer than a few writes goes out as plain writes and one fdatasync, not as a
/// durable write per chunk; what it synced survives a crash that loses everything unsynced.
#[test]
fn a_long_sync_flush_syncs_once() {
    let fs = MemFs::new();
    let (wal, mut expected) = three_records_unsynced(&fs);
    block_on(wal.sync_to(3)).unwrap();
    let (syncs, through, writes) = (fs.sync_count(), fs.write_through_count(), fs.write_count());
    // One write more than may go through, in one flush.
    let record = 16 << 10;
    let count = (WRITE_THROUGH_WRITES_MAX + 1) * WAL_WRITE_BYTES_MAX / record;
    expected.extend((0..count).map(|_| append(&wal, record)));
    let lsn = wal.last_lsn();
    block_on(wal.sync_to(lsn)).unwrap();
    assert_eq!(
        fs.sync_count(),
        syncs + 1,
        "one fdatasync for the long flush"
    );
    assert_eq!(
        fs.write_count(),
        writes + 1,
        "written plainly, the flush is one write, not one per 128 KiB"
    );
    assert_eq!(
        fs.write_through_count(),
        through,
        "no write-through write per chunk"
    );
    expected.push(append(&wal, 100));
    block_on(wal.sync_to(lsn + 1)).unwrap();
    assert_eq!(
        fs.write_through_count(),
        through + 1,
        "a short flush writes through again"
    );
    fs.crash(CrashMode::LoseAll);
    drop(wal);
    let (_, recovered) = open_wal(&fs, one_mib_segments()).unwrap();
    assert_eq!(recovered, expected);
}

#[test]
fn crash_lose_all_keeps_exactly_synced() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    let mut expected: Vec<Rec> = (0..40).map(|i| append(&wal, i * 50)).collect();
    block_on(wal.sync_all()).unwrap();
    for i in 0..10 {
        append(&wal, i * 10);
    }
    block_on(wal.write_buffered()).unwrap();
    append(&wal, 10);
    assert_eq!(wal.durable_lsn(), 40);
    fs.crash(CrashMode::LoseAll);
    drop(wal);
    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, expected);
    expected.push(append(&wal, 77));
    block_on(wal.sync_all()).unwrap();
    fs.crash(CrashMode::LoseAll);
    let (_wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, expected);
}

/// Writes `count` records (synced) into one segment; returns the records and that segment.
fn write_synced(fs: &MemFs, count: usize, len: usize) -> (Vec<Rec>, PathBuf) {
    let (wal, _) = open_wal(
        fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let records: Vec<Rec> = (0..count).map(|_| append(&wal, len)).collect();
    block_on(wal.sync_all()).unwrap();
    (records, last_segment(fs))
}

fn check_recovers_then_appends(fs: &MemFs, mut expected: Vec<Rec>, context: &str) {
    let (wal, replayed) = open_wal(
        fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    assert_eq!(replayed, expected, "{context}");
    expected.push(append(&wal, 300));
    expected.push(append(&wal, 0));
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let (_wal, replayed) = open_wal(
        fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    assert_eq!(replayed, expected, "{context} (after appending)");
}

#[test]
fn torn_tail_at_every_offset_of_last_record() {
    let fs = MemFs::new();
    let (records, path) = write_synced(&fs, 5, 200);
    let image = fs.file_bytes(&path).unwrap();
    let (start, end) = *record_spans(&image).last().unwrap();
    for cut in start..end {
        for zero_fill in [false, true] {
            let fs = MemFs::new();
            let mut torn = image[..cut].to_vec();
            if zero_fill {
                torn.resize(image.len(), 0);
            }
            fs.set_file_bytes(&path, torn);
            block_on(fs.create_dir_all(&dir())).unwrap();
            let context = format!("cut at {cut}, zero fill {zero_fill}");
            check_recovers_then_appends(&fs, records[..4].to_vec(), &context);
        }
    }
}

#[test]
fn flipped_bits_in_last_record_are_cut() {
    let written = MemFs::new();
    let (records, path) = write_synced(&written, 5, 200);
    let image = written.file_bytes(&path).unwrap();
    let (start, end) = *record_spans(&image).last().unwrap();
    for offset in [
        start,
        start + 4,
        start + 8,
        start + 20,
        start + 31,
        start + 32,
        end - 1,
    ] {
        let fs = MemFs::new();
        fs.set_file_bytes(&path, image.clone());
        block_on(fs.create_dir_all(&dir())).unwrap();
        fs.flip_bit(&path, offset as u64, 3);
        check_recovers_then_appends(&fs, records[..4].to_vec(), &format!("flip at {offset}"));
        assert!(fs.file_bytes(&path).unwrap().len() >= start);
    }
}

fn expect_corrupt(fs: &MemFs, file: &Path, offset: usize) {
    match open_wal(fs, small()) {
        Err(WalError::Corrupt {
            file: f,
            offset: o,
            reason,
        }) => {
            assert_eq!((f.as_path(), o), (file, offset as u64), "{reason}");
            let message = WalError::Corrupt {
                file: f,
                offset: o,
                reason,
            }
            .to_string();
            assert!(message.contains(&file.display().to_string()), "{message}");
            assert!(message.contains(&format!("offset {offset}")), "{message}");
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok((_, replayed)) => panic!("expected Corrupt, recovered {} records", replayed.len()),
    }
}

#[test]
fn flipped_bit_in_middle_record_is_corrupt() {
    let fs = MemFs::new();
    let (_, path) = write_synced(&fs, 5, 200);
    let spans = record_spans(&fs.file_bytes(&path).unwrap());
    fs.flip_bit(&path, spans[2].0 as u64 + 40, 0);
    expect_corrupt(&fs, &path, spans[2].0);
}

#[test]
fn flipped_bit_in_older_segment_is_corrupt() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    for _ in 0..100 {
        append(&wal, 500);
    }
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let first = dir().join(&segment_files(&fs)[0]);
    let spans = record_spans(&fs.file_bytes(&first).unwrap());
    let last = *spans.last().unwrap();
    // Even the last record of a non-last segment is not a torn tail.
    fs.flip_bit(&first, last.0 as u64 + 100, 5);
    expect_corrupt(&fs, &first, last.0);
}

#[test]
fn lsn_gap_between_segments_is_corrupt() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    for _ in 0..100 {
        append(&wal, 500);
    }
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let files = segment_files(&fs);
    assert!(files.len() >= 3);
    block_on(fs.remove(&dir().join(&files[1]))).unwrap();
    expect_corrupt(&fs, &dir().join(&files[2]), 0);
}

#[test]
fn incomplete_last_segment_header_is_removed() {
    let fs = MemFs::new();
    let (records, _) = write_synced(&fs, 3, 10);
    let stray = dir().join(segment_file_name(4));
    fs.set_file_bytes(&stray, vec![0xEE; 100]);
    check_recovers_then_appends(&fs, records, "torn segment header");
}

#[test]
fn sync_error_is_sticky() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    append(&wal, 10);
    block_on(wal.sync_all()).unwrap();
    append(&wal, 10);
    fs.fail_next(FaultOp::Sync, io::ErrorKind::Other);
    assert!(matches!(block_on(wal.sync_all()), Err(WalError::Io { .. })));
    assert!(wal.is_failed());
    assert_eq!(wal.durable_lsn(), 1);
    assert!(matches!(wal.append(1, b"x"), Err(WalError::Failed { .. })));
    assert!(matches!(
        block_on(wal.sync_to(2)),
        Err(WalError::Failed { .. })
    ));
    assert!(matches!(
        block_on(wal.write_buffered()),
        Err(WalError::Failed { .. })
    ));
    assert_eq!(wal.durable_lsn(), 1);
}

#[test]
fn write_error_and_full_disk_are_sticky() {
    for fault in [Some(io::ErrorKind::Other), None] {
        let fs = MemFs::new();
        let (wal, _) = open_wal(
            &fs,
            WalOptions {
                preallocate_bytes: 0,
                ..WalOptions::default()
            },
        )
        .unwrap();
        match fault {
            Some(kind) => fs.fail_next(FaultOp::Write, kind),
            None => fs.set_capacity_bytes(Some(fs.used_bytes())),
        }
        append(&wal, 5000);
        let err = block_on(wal.sync_all()).unwrap_err();
        if fault.is_none() {
            let WalError::Io { source, .. } = &err else {
                panic!("{err}")
            };
            assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        }
        fs.set_capacity_bytes(None);
        assert!(matches!(
            block_on(wal.sync_all()),
            Err(WalError::Failed { .. })
        ));
        assert_eq!(wal.durable_lsn(), 0);
    }
}

#[test]
fn waiters_see_failure_of_shared_flush() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let wal = Rc::new(wal);
    fs.set_yield_on_io(true);
    fs.fail_next(FaultOp::Sync, io::ErrorKind::Other);
    let tasks: Vec<Task<Result<(), WalError>>> = (0..4)
        .map(|_| {
            let wal = wal.clone();
            Box::pin(async move {
                let lsn = wal.append(1, b"abc")?;
                wal.sync_to(lsn).await
            }) as Task<_>
        })
        .collect();
    let results = join_all(tasks);
    assert!(results.iter().all(Result::is_err));
    assert_eq!(wal.durable_lsn(), 0);
}

#[test]
fn oversized_record_is_refused() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let big = vec![0; RECORD_PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(
        wal.append(0, &big),
        Err(WalError::RecordTooLarge { .. })
    ));
    assert_eq!(wal.last_lsn(), 0);
}

#[test]
fn segment_names() {
    assert_eq!(segment_file_name(12), "wal-00000000000000000012.log");
    assert_eq!(
        parse_segment_file_name("wal-00000000000000000012.log"),
        Some(12)
    );
    assert_eq!(parse_segment_file_name("wal-12.log"), None);
    assert_eq!(parse_segment_file_name("MANIFEST"), None);
}

#[derive(Clone, Debug)]
enum Op {
    Append { kind: u8, len: usize },
    SyncAll,
    WriteBuffered,
    FailNextSync,
    Crash { seed: u64, lose_all: bool },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), 0usize..1500).prop_map(|(kind, len)| Op::Append { kind, len }),
        3 => Just(Op::SyncAll),
        2 => Just(Op::WriteBuffered),
        1 => Just(Op::FailNextSync),
        1 => (any::<u64>(), any::<bool>()).prop_map(|(seed, lose_all)| Op::Crash { seed, lose_all }),
    ]
}

/// The model: what was appended, how far it was handed to a flush, how far it is durable.
struct Model {
    appended: Vec<(u8, Vec<u8>)>,
    written_lsn: u64,
    synced_lsn: u64,
}

fn crash_and_check(fs: &MemFs, model: &mut Model, mode: CrashMode) -> Wal<MemFs> {
    fs.crash(mode);
    let (wal, replayed) = open_wal(fs, small()).unwrap();
    let n = replayed.len();
    assert!(
        n as u64 >= model.synced_lsn,
        "lost synced records: {n} < {}",
        model.synced_lsn
    );
    assert!(
        n as u64 <= model.written_lsn,
        "recovered never-written records"
    );
    for (i, (lsn, kind, payload)) in replayed.into_iter().enumerate() {
        assert_eq!(lsn, i as u64 + 1);
        assert_eq!(
            (kind, &payload),
            (model.appended[i].0, &model.appended[i].1),
            "lsn {lsn}"
        );
    }
    model.appended.truncate(n);
    model.written_lsn = n as u64;
    model.synced_lsn = n as u64;
    assert_eq!(wal.last_lsn(), n as u64);
    wal
}

fn run_model(ops: Vec<Op>) {
    let fs = MemFs::new();
    let mut model = Model {
        appended: Vec::new(),
        written_lsn: 0,
        synced_lsn: 0,
    };
    let (mut wal, _) = open_wal(&fs, small()).unwrap();
    for op in ops {
        match op {
            Op::Append { kind, len } => {
                let data = payload(model.appended.len() as u64, len);
                match wal.append(kind, &data) {
                    Ok(lsn) => {
                        model.appended.push((kind, data));
                        assert_eq!(lsn, model.appended.len() as u64);
                    }
                    Err(error) => assert!(wal.is_failed(), "{error}"),
                }
            }
            Op::SyncAll | Op::WriteBuffered => {
                let sync = matches!(op, Op::SyncAll);
                let was_failed = wal.is_failed();
                let result = block_on(async {
                    if sync {
                        wal.sync_all().await
                    } else {
                        wal.write_buffered().await
                    }
                });
                if !was_failed {
                    // Even a failed flush may have written some records.
                    model.written_lsn = wal.last_lsn();
                }
                match result {
                    Ok(()) if sync => model.synced_lsn = wal.last_lsn(),
                    Ok(()) => {}
                    Err(_) => assert!(wal.is_failed()),
                }
                assert!(wal.durable_lsn() >= model.synced_lsn);
            }
            Op::FailNextSync => fs.fail_next(FaultOp::Sync, io::ErrorKind::Other),
            Op::Crash { seed, lose_all } => {
                let mode = if lose_all {
                    CrashMode::LoseAll
                } else {
                    CrashMode::KeepPrefix { seed }
                };
                drop(wal);
                // Injected faults must not hit recovery itself.
                fs.clear_faults();
                wal = crash_and_check(&fs, &mut model, mode);
            }
        }
    }
    drop(wal);
    fs.clear_faults();
    crash_and_check(&fs, &mut model, CrashMode::KeepPrefix { seed: 7 });
}

proptest! {
    // 256 cases by default; set PROPTEST_CASES for a longer run.
    #[test]
    fn model_appends_syncs_crashes(ops in prop::collection::vec(op_strategy(), 1..120)) {
        run_model(ops);
    }
}

#[test]
fn cancelled_flush_fails_the_log() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    fs.set_yield_on_io(true);
    let lsn = wal.append(1, b"abc").unwrap();
    {
        let mut flush = std::pin::pin!(wal.sync_to(lsn));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(flush.as_mut().poll(&mut cx).is_pending());
    } // Dropped mid-write.
    assert!(wal.is_failed());
    assert!(matches!(
        block_on(wal.sync_to(lsn)),
        Err(WalError::Failed { .. })
    ));
    assert_eq!(wal.durable_lsn(), 0);
}

/// Segments rolled into files prepared (zero-filled) in advance recover exactly, and a
/// prepared file left by a crash is dropped at open.
#[test]
fn rolls_into_prepared_segments_and_recovers() {
    let fs = MemFs::new();
    let opts = || WalOptions {
        segment_bytes_max: 16 << 10,
        preallocate_bytes: 16 << 10,
        replay_from_lsn: 0,
    };
    let mut expected = Vec::new();
    for round in 0..3u64 {
        let (wal, recovered) = open_wal(&fs, opts()).unwrap();
        assert_eq!(recovered.len(), expected.len(), "round {round}");
        block_on(async {
            for i in 0..120 {
                if i % 10 == 0 {
                    wal.prepare_next_segment().await.unwrap();
                }
                expected.push(wal.append(1, &payload(round * 1000 + i, 500)).unwrap());
                if i % 7 == 0 {
                    wal.sync_all().await.unwrap();
                }
            }
            wal.sync_all().await.unwrap();
            wal.prepare_next_segment().await.unwrap();
        });
        let segments = block_on(fs.list(&dir())).unwrap();
        assert!(segments.len() > 3, "{segments:?}");
        assert!(segments
            .iter()
            .any(|name| name == crate::wal::PREPARED_SEGMENT_NAME));
        drop(wal);
        fs.crash(CrashMode::LoseAll);
    }
    let (_, recovered) = open_wal(&fs, opts()).unwrap();
    assert_eq!(recovered.len(), expected.len());
    let names = block_on(fs.list(&dir())).unwrap();
    assert!(
        !names
            .iter()
            .any(|name| name == crate::wal::PREPARED_SEGMENT_NAME),
        "{names:?}"
    );
}

/// Appends `count` records of `len` bytes and syncs them.
fn append_synced(wal: &Wal<MemFs>, count: usize, len: usize) -> Vec<Rec> {
    let records: Vec<Rec> = (0..count).map(|_| append(wal, len)).collect();
    block_on(wal.sync_all()).unwrap();
    records
}

fn open_from(fs: &MemFs, replay_from_lsn: u64) -> (Wal<MemFs>, Vec<Rec>) {
    open_wal(
        fs,
        WalOptions {
            replay_from_lsn,
            ..small()
        },
    )
    .unwrap()
}

#[test]
fn remove_segments_before_frees_whole_segments_only() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    let records = append_synced(&wal, 100, 500);
    let lsns = wal.segment_first_lsns();
    assert!(lsns.len() >= 6, "{lsns:?}");
    assert_eq!(wal.segment_count(), segment_files(&fs).len());
    // Segment 2 holds lsns[2]..lsns[3]: it stays while lsn lsns[3] - 1 is still wanted.
    let sizes: u64 = segment_files(&fs)[..2]
        .iter()
        .map(|name| fs.file_bytes(&dir().join(name)).unwrap().len() as u64)
        .sum();
    let syncs_dir_before = fs.sync_dir_count();
    assert_eq!(
        block_on(wal.remove_segments_before(lsns[3] - 1)).unwrap(),
        sizes
    );
    assert_eq!(fs.sync_dir_count() - syncs_dir_before, 2);
    assert_eq!(wal.first_lsn(), lsns[2]);
    assert_eq!(segment_files(&fs)[0], segment_file_name(lsns[2]));
    assert!(block_on(wal.remove_segments_before(lsns[3])).unwrap() > 0);
    assert_eq!(wal.first_lsn(), lsns[3]);
    // Nothing more to free below the same bound.
    assert_eq!(block_on(wal.remove_segments_before(lsns[3])).unwrap(), 0);
    // Never the segment being appended to, even when every record is below the bound.
    block_on(wal.remove_segments_before(u64::MAX)).unwrap();
    assert_eq!(wal.segment_count(), 1);
    assert_eq!(segment_files(&fs).len(), 1);
    let first = wal.first_lsn();
    assert_eq!(first, *lsns.last().unwrap());
    drop(wal);
    // Recovery accepts a log that starts mid-way, and continues it.
    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, records[first as usize - 1..].to_vec());
    assert_eq!((wal.first_lsn(), wal.last_lsn()), (first, 100));
    let more = append_synced(&wal, 30, 500);
    drop(wal);
    let (_, replayed) = open_wal(&fs, small()).unwrap();
    let mut expected = records[first as usize - 1..].to_vec();
    expected.extend(more);
    assert_eq!(replayed, expected);
}

#[test]
fn crash_after_removal_recovers_the_remaining_records() {
    for (round, mode) in [
        CrashMode::LoseAll,
        CrashMode::KeepPrefix { seed: 1 },
        CrashMode::KeepPrefix { seed: 99 },
    ]
    .into_iter()
    .enumerate()
    {
        let fs = MemFs::new();
        let (wal, _) = open_wal(&fs, small()).unwrap();
        let records = append_synced(&wal, 80, 700);
        block_on(wal.remove_segments_before(50)).unwrap();
        let first = wal.first_lsn();
        assert!(first > 1 && first <= 50, "{first}");
        // Unsynced, partly written records after the removal.
        for _ in 0..20 {
            append(&wal, 700);
        }
        block_on(wal.write_buffered()).unwrap();
        append(&wal, 10);
        drop(wal);
        fs.crash(mode);
        let (wal, replayed) = open_wal(&fs, small()).unwrap();
        let kept = &records[first as usize - 1..];
        assert!(replayed.len() >= kept.len(), "round {round}");
        assert_eq!(&replayed[..kept.len()], kept, "round {round}");
        assert_eq!(wal.first_lsn(), first);
        for (i, record) in replayed.iter().enumerate() {
            assert_eq!(record.0, first + i as u64);
        }
    }
}

#[test]
fn roll_starts_a_new_segment() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(
        &fs,
        WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let mut expected: Vec<Rec> = (0..3).map(|_| append(&wal, 100)).collect();
    block_on(wal.roll()).unwrap();
    // Rolling flushed and synced what was appended before it.
    assert_eq!(wal.durable_lsn(), 3);
    assert_eq!(wal.segment_first_lsns(), vec![1, 4]);
    // An empty segment is not rolled again.
    block_on(wal.roll()).unwrap();
    assert_eq!(wal.segment_first_lsns(), vec![1, 4]);
    expected.push(append(&wal, 100));
    block_on(wal.roll()).unwrap();
    expected.push(append(&wal, 100));
    block_on(wal.sync_all()).unwrap();
    assert_eq!(wal.segment_first_lsns(), vec![1, 4, 5]);
    assert_eq!(
        segment_files(&fs),
        vec![
            segment_file_name(1),
            segment_file_name(4),
            segment_file_name(5)
        ]
    );
    drop(wal);
    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, expected);
    assert_eq!(wal.segment_first_lsns(), vec![1, 4, 5]);
}

/// A roll followed by removing everything before it leaves one empty segment whose name keeps
/// the lsn sequence going across a crash.
#[test]
fn empty_sole_segment_keeps_the_lsn() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    append_synced(&wal, 40, 300);
    block_on(wal.roll()).unwrap();
    block_on(wal.remove_segments_before(41)).unwrap();
    assert_eq!(wal.segment_first_lsns(), vec![41]);
    drop(wal);
    fs.crash(CrashMode::LoseAll);
    let (wal, replayed) = open_wal(&fs, small()).unwrap();
    assert!(replayed.is_empty());
    assert_eq!((wal.first_lsn(), wal.last_lsn()), (41, 40));
    let record = append(&wal, 10);
    assert_eq!(record.0, 41);
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let (_, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, vec![record]);
}

#[test]
fn replay_from_lsn_skips_but_checks_older_records() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    let records = append_synced(&wal, 60, 400);
    drop(wal);
    let (wal, replayed) = open_from(&fs, 45);
    assert_eq!(replayed, records[44..].to_vec());
    assert_eq!(wal.last_lsn(), 60);
    drop(wal);
    // Older records are still checked: damage in them is refused.
    let damaged = MemFs::new();
    block_on(damaged.create_dir_all(&dir())).unwrap();
    for name in segment_files(&fs) {
        let path = dir().join(&name);
        damaged.set_file_bytes(&path, fs.file_bytes(&path).unwrap());
    }
    let first = dir().join(&segment_files(&damaged)[0]);
    let spans = record_spans(&damaged.file_bytes(&first).unwrap());
    damaged.flip_bit(&first, spans[0].0 as u64 + 40, 1);
    assert!(matches!(
        open_wal(
            &damaged,
            WalOptions {
                replay_from_lsn: 45,
                ..small()
            }
        ),
        Err(WalError::Corrupt { .. })
    ));
    // Replaying from beyond the end: the log lost records kept elsewhere (flushed, then a crash
    // dropped the unsynced log tail). Numbering continues from there, never below.
    let (wal, replayed) = open_from(&fs, 1000);
    assert!(replayed.is_empty());
    assert_eq!(wal.last_lsn(), 999);
    assert_eq!(wal.append(1, b"next").unwrap(), 1000);
    block_on(wal.sync_all()).unwrap();
    drop(wal);
    let (wal, replayed) = open_from(&fs, 1000);
    assert_eq!(replayed.len(), 1);
    assert_eq!(wal.last_lsn(), 1000);
    assert_eq!(segment_files(&fs), vec![segment_file_name(1000)]);
}

#[test]
fn failed_directory_sync_during_removal_fails_the_log() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    append_synced(&wal, 60, 500);
    fs.fail_next(FaultOp::SyncDir, io::ErrorKind::Other);
    assert!(matches!(
        block_on(wal.remove_segments_before(50)),
        Err(WalError::Io { .. })
    ));
    assert!(wal.is_failed());
    assert!(matches!(
        block_on(wal.remove_segments_before(50)),
        Err(WalError::Failed { .. })
    ));
    // A failed remove (not a sync) leaves a contiguous log and the log usable.
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    let records = append_synced(&wal, 60, 500);
    fs.fail_next(FaultOp::Remove, io::ErrorKind::Other);
    assert!(block_on(wal.remove_segments_before(50)).is_err());
    assert!(!wal.is_failed());
    drop(wal);
    let (_, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, records);
}

/// Removal, appends, syncs and rolls interleave at every I/O point; the log stays contiguous
/// and holds every synced record from its first lsn on.
#[test]
fn removal_interleaves_with_appends_and_flushes() {
    let fs = MemFs::new();
    let (wal, _) = open_wal(&fs, small()).unwrap();
    let wal = Rc::new(wal);
    fs.set_yield_on_io(true);
    let writers: Vec<Task<Vec<Rec>>> = (0..3)
        .map(|task| {
            let wal = wal.clone();
            Box::pin(async move {
                let mut mine = Vec::new();
                for i in 0..60u64 {
                    let data = payload(task * 1000 + i, 300 + (i as usize % 5) * 200);
                    let lsn = wal.append(1, &data).unwrap();
                    if i % 4 == 0 {
                        wal.sync_to(lsn).await.unwrap();
                    }
                    if task == 0 && i % 25 == 0 {
                        wal.roll().await.unwrap();
                    }
                    mine.push((lsn, 1u8, data));
                }
                wal.sync_all().await.unwrap();
                mine
            }) as Task<_>
        })
        .collect();
    let remover: Task<Vec<Rec>> = {
        let wal = wal.clone();
        Box::pin(async move {
            // Until the writers are done (bounded, in case they stall).
            for _ in 0..100_000 {
                let durable = wal.durable_lsn();
                wal.remove_segments_before(durable.saturating_sub(20))
                    .await
                    .unwrap();
                if durable >= 180 {
                    break;
                }
                YieldOnce(false).await;
            }
            Vec::new()
        })
    };
    let mut tasks = writers;
    tasks.push(remover);
    let mut all: Vec<Rec> = join_all(tasks).into_iter().flatten().collect();
    all.sort();
    let first = wal.first_lsn();
    assert!(first > 1, "nothing was removed");
    assert_eq!(wal.segment_count(), segment_files(&fs).len());
    fs.set_yield_on_io(false);
    drop(wal);
    fs.crash(CrashMode::LoseAll);
    let (_, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, all[first as usize - 1..].to_vec());
}

/// A preparation that starts while a roll installs the prepared file must not delete that file
/// (under load the rename then failed with ENOENT and the log failed).
#[test]
fn preparing_during_a_roll_leaves_the_installing_file_alone() {
    let fs = MemFs::new();
    fs.set_yield_on_io(true);
    let opts = WalOptions {
        segment_bytes_max: 16 << 10,
        preallocate_bytes: 16 << 10,
        replay_from_lsn: 0,
    };
    let (wal, _) = open_wal(&fs, opts).unwrap();
    let mut written = Vec::new();
    block_on(async {
        for _ in 0..20 {
            wal.prepare_next_segment().await.unwrap();
            for _ in 0..10 {
                written.push(append(&wal, 2000));
            }
            let lsn = wal.last_lsn();
            // Keep trying to prepare while the flush rolls, as the server's timer task does.
            let preparer = async {
                for _ in 0..64 {
                    wal.prepare_next_segment().await?;
                    futures_lite::future::yield_now().await;
                }
                Ok::<(), WalError>(())
            };
            let (synced, prepared) = futures_lite::future::zip(wal.sync_to(lsn), preparer).await;
            synced.unwrap();
            prepared.unwrap();
        }
    });
    drop(wal);
    let (_, replayed) = open_wal(&fs, small()).unwrap();
    assert_eq!(replayed, written);
}
