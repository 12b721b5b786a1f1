//! SSTable tests, all over [`MemFs`]: a model-based property test, the bloom filter's false
//! positive rate, corruption and truncation of every part of a file, and writer durability.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::future::block_on;
use proptest::prelude::*;

use super::*;
use crate::cache::BlockCache;
use crate::fs::FileSystem;
use crate::lsm::key::{self, ValueKind};
use crate::memfs::{CrashMode, MemFs};

/// (user key, seq) → (kind, value); sorted by user key, then by seq *ascending* (reversed below).
type Model = BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), (ValueKind, Vec<u8>)>;
/// An (internal key, value) pair.
type Entry = (Vec<u8>, Vec<u8>);

fn dir() -> PathBuf {
    PathBuf::from("/data/shard-0/sst")
}

fn new_fs() -> MemFs {
    let fs = MemFs::new();
    block_on(fs.create_dir_all(&dir())).unwrap();
    fs
}

fn sst_path(name: &str) -> PathBuf {
    dir().join(name)
}

/// The model's entries as (internal key, value) in internal-key order.
fn entries(model: &Model) -> Vec<Entry> {
    model
        .iter()
        .map(|((user_key, seq), (kind, value))| {
            (key::encode(user_key, seq.0, *kind), value.clone())
        })
        .collect()
}

fn write(fs: &MemFs, path: &Path, entries: &[Entry], opts: SstOptions) -> SstInfo {
    block_on(async {
        let mut writer = SstWriter::create(fs, path, opts).await.unwrap();
        for (k, v) in entries {
            writer.add(k, v).await.unwrap();
        }
        writer.finish().await.unwrap()
    })
}

fn open(fs: &MemFs, path: &Path) -> Result<Rc<SstReader<MemFs>>, SstError> {
    block_on(SstReader::open(
        fs,
        path,
        1,
        Rc::new(BlockCache::new(1 << 20)),
    ))
}

fn scan(reader: &Rc<SstReader<MemFs>>) -> Result<Vec<Entry>, SstError> {
    block_on(async {
        let mut it = reader.iter();
        it.seek_to_first().await?;
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next().await?;
        }
        Ok(out)
    })
}

/// The model's answer to `get(user_key, snapshot)`.
fn model_get(model: &Model, user_key: &[u8], snapshot: u64) -> Option<(u64, ValueKind, Vec<u8>)> {
    let from = (user_key.to_vec(), std::cmp::Reverse(snapshot));
    let ((found_key, seq), (kind, value)) = model.range(from..).next()?;
    (found_key == user_key).then(|| (seq.0, *kind, value.clone()))
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => Just(Vec::new()),
        // Longer than any block size used here (and than a 4 KiB block).
        1 => (5000usize..12_000, any::<u8>()).prop_map(|(len, b)| vec![b; len]),
    ]
}

/// A 4-letter alphabet (zero bytes included) and short keys: many versions per key, the
/// empty key, and keys that are prefixes of others. Half of them share a 7-byte head, so that
/// keys of 7 to 11 bytes agree on their first 8 bytes, or on all but the 8th (the index
/// search compares 8-byte prefixes first).
fn user_key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let tail = proptest::collection::vec(
        prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(b'c')],
        0..5,
    );
    (any::<bool>(), tail).prop_map(|(long, tail)| {
        let head: &[u8] = if long { b"shared!" } else { b"" };
        [head, &tail].concat()
    })
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let entry = (
        user_key_strategy(),
        0u64..40,
        any::<bool>(),
        value_strategy(),
    );
    proptest::collection::vec(entry, 1..300).prop_map(|entries| {
        let mut model = Model::new();
        for (user_key, seq, put, value) in entries {
            let kind = if put {
                ValueKind::Put
            } else {
                ValueKind::Delete
            };
            let value = if put { value } else { Vec::new() };
            model.insert((user_key, std::cmp::Reverse(seq)), (kind, value));
        }
        model
    })
}

fn options_strategy() -> impl Strategy<Value = (usize, usize, bool)> {
    (
        prop_oneof![Just(64usize), Just(256), Just(4096)],
        prop_oneof![Just(1usize), Just(2), Just(4), Just(16)],
        proptest::bool::ANY,
    )
}

fn seek_expected(sorted: &[Entry], target: &[u8]) -> Option<Vec<u8>> {
    let at = sorted.partition_point(|(k, _)| key::compare(k, target).is_lt());
    sorted.get(at).map(|(k, _)| k.clone())
}

fn check_against_model(fs: &MemFs, path: &Path, model: &Model, probes: &[(Vec<u8>, u64)]) {
    let expected = entries(model);
    let reader = open(fs, path).unwrap();
    assert_eq!(scan(&reader).unwrap(), expected);
    block_on(async {
        let mut it = reader.iter();
        for (user_key, seq) in probes {
            for kind in [ValueKind::Put, ValueKind::Delete] {
                let target = key::encode(user_key, *seq, kind);
                it.seek(&target).await.unwrap();
                let got = it.valid().then(|| it.key().to_vec());
                assert_eq!(got, seek_expected(&expected, &target), "seek {target:?}");
            }
            let got = reader.get(user_key, *seq).await.unwrap();
            let got = got.map(|(s, k, v)| (s, k, v.to_vec()));
            assert_eq!(
                got,
                model_get(model, user_key, *seq),
                "get {user_key:?}@{seq}"
            );
        }
    });
    let info = block_on(verify(fs, path)).unwrap();
    assert_eq!(info.entries, model.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matches_model(
        model in model_strategy(),
        (block_bytes, restart_interval, hash_index) in options_strategy(),
        probes in proptest::collection::vec((user_key_strategy(), 0u64..45), 0..60),
    ) {
        let fs = new_fs();
        let compressions = [Compression::None, Compression::Lz4, Compression::Zstd(3)];
        for (i, compression) in compressions.into_iter().enumerate() {
            let path = sst_path(&format!("{i}.sst"));
            let opts = SstOptions { block_bytes, restart_interval, compression, hash_index, ..SstOptions::default() };
            let info = write(&fs, &path, &entries(&model), opts);
            prop_assert_eq!(info.entries, model.len() as u64);
            prop_assert_eq!(info.file_bytes, fs.file_bytes(&path).unwrap().len() as u64);
            // Every existing user key at its newest and at a middle snapshot, plus random probes.
            let mut all: Vec<(Vec<u8>, u64)> = model.keys().map(|(k, s)| (k.clone(), s.0)).collect();
            all.extend(model.keys().map(|(k, _)| (k.clone(), key::SEQ_MAX)));
            all.extend(probes.iter().cloned());
            check_against_model(&fs, &path, &model, &all);
            let reader = open(&fs, &path).unwrap();
            prop_assert_eq!(reader.info(), &block_on(verify(&fs, &path)).unwrap());
            prop_assert_eq!(reader.info().smallest.clone(), info.smallest);
        }
    }
}

fn numbered_entries(n: usize, value_len: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let k = key::encode(
                format!("key{i:08}").as_bytes(),
                i as u64 + 1,
                ValueKind::Put,
            );
            let v: Vec<u8> = (0..value_len).map(|j| ((i * 7 + j) % 251) as u8).collect();
            (k, v)
        })
        .collect()
}

#[test]
fn bloom_has_no_false_negatives_and_few_false_positives() {
    let fs = new_fs();
    let path = sst_path("bloom.sst");
    let keys = numbered_entries(10_000, 4);
    write(&fs, &path, &keys, SstOptions::default());
    let reader = open(&fs, &path).unwrap();
    for (k, _) in &keys {
        assert!(reader.may_contain(key::user_key(k)));
    }
    let probes = 100_000;
    let false_positives = (0..probes)
        .filter(|i| reader.may_contain(format!("absent{i:08}").as_bytes()))
        .count();
    let rate = false_positives as f64 / probes as f64;
    assert!(rate <= 0.02, "false positive rate {rate}");
    // About 10 bits per key.
    assert!(
        (12_000..=13_000).contains(&reader.bloom_bytes()),
        "{}",
        reader.bloom_bytes()
    );
    // A lookup the bloom rejects does no I/O.
    let misses = block_on(reader.get(b"absent-key", key::SEQ_MAX)).unwrap();
    assert!(misses.is_none());
}

/// Byte ranges of every part of a file: (name, start, end).
fn regions(reader: &SstReader<MemFs>, file_bytes: u64) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = reader
        .data_block_handles()
        .enumerate()
        .map(|(i, h)| (format!("data block {i}"), h.offset, h.end()))
        .collect();
    for (name, h) in reader.meta_block_handles() {
        out.push((name.to_string(), h.offset, h.end()));
    }
    out.push(("footer".to_string(), file_bytes - 64, file_bytes));
    out
}

fn assert_corrupt_in<T: std::fmt::Debug>(
    result: Result<T, SstError>,
    path: &Path,
    (name, start, end): &(String, u64, u64),
    what: &str,
) {
    match result {
        Err(SstError::Corrupt {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path, "{what} in {name}");
            assert!(
                (*start..*end).contains(&offset),
                "{what} in {name} [{start}, {end}): offset {offset}"
            );
        }
        other => panic!("{what} in {name}: expected Corrupt, got {other:?}"),
    }
}

/// Every get either returns the right answer or reports corruption inside the region.
fn check_gets(fs: &MemFs, path: &Path, good: &[Entry], region: &(String, u64, u64)) -> usize {
    let reader = open(fs, path).unwrap();
    let mut corrupt = 0;
    for (k, v) in good {
        match block_on(reader.get(key::user_key(k), key::SEQ_MAX)) {
            Ok(found) => {
                let (_, kind, value) = found.expect("present key found");
                assert_eq!((kind, &value[..]), (ValueKind::Put, &v[..]), "wrong data");
            }
            result => {
                assert_corrupt_in(result, path, region, "get");
                corrupt += 1;
            }
        }
    }
    corrupt
}

#[test]
fn bit_flips_anywhere_are_reported_as_corruption_of_that_block() {
    for compression in [Compression::None, Compression::Lz4] {
        let fs = new_fs();
        let path = sst_path("flip.sst");
        let good = numbered_entries(300, 40);
        let opts = SstOptions {
            block_bytes: 1024,
            compression,
            ..SstOptions::default()
        };
        write(&fs, &path, &good, opts);
        let original = fs.file_bytes(&path).unwrap();
        let file_bytes = original.len() as u64;
        let all_regions = regions(&open(&fs, &path).unwrap(), file_bytes);
        assert!(all_regions.len() > 6, "several data blocks");
        for region in &all_regions {
            let (name, start, end) = region;
            for offset in [*start, (start + end) / 2, end - 5, end - 1] {
                fs.set_file_bytes(&path, original.clone());
                fs.flip_bit(&path, offset, (offset % 8) as u8);
                let what = format!("flip at {offset}");
                if !name.starts_with("data") {
                    assert_corrupt_in(open(&fs, &path), &path, region, &what);
                    assert_corrupt_in(block_on(verify(&fs, &path)), &path, region, &what);
                    continue;
                }
                assert_corrupt_in(block_on(verify(&fs, &path)), &path, region, &what);
                let reader = open(&fs, &path).unwrap();
                assert_corrupt_in(scan(&reader), &path, region, &what);
                assert!(check_gets(&fs, &path, &good, region) > 0, "{what}");
            }
        }
    }
}

#[test]
fn truncated_files_are_corrupt() {
    let fs = new_fs();
    let path = sst_path("short.sst");
    write(
        &fs,
        &path,
        &numbered_entries(200, 30),
        SstOptions::default(),
    );
    let original = fs.file_bytes(&path).unwrap();
    let len = original.len();
    for cut in [
        0,
        1,
        63,
        64,
        100,
        len / 2,
        len - 65,
        len - 64,
        len - 63,
        len - 1,
    ] {
        fs.set_file_bytes(&path, original[..cut].to_vec());
        let footer_at = (cut as u64).saturating_sub(64);
        let region = ("truncated file".to_string(), footer_at, footer_at + 64);
        assert_corrupt_in(open(&fs, &path), &path, &region, &format!("cut {cut}"));
        assert_corrupt_in(block_on(verify(&fs, &path)), &path, &region, "verify");
    }
    // Bytes appended after the footer: the footer is no longer last.
    let mut longer = original.clone();
    longer.extend_from_slice(&[0; 100]);
    fs.set_file_bytes(&path, longer);
    assert!(matches!(open(&fs, &path), Err(SstError::Corrupt { .. })));
}

#[test]
fn finished_file_is_durable_and_exactly_sized() {
    let fs = new_fs();
    let path = sst_path("durable.sst");
    let entries = numbered_entries(1000, 100);
    let syncs_dir = fs.sync_dir_count();
    let info = write(&fs, &path, &entries, SstOptions::default());
    assert_eq!(fs.sync_dir_count(), syncs_dir + 1);
    fs.crash(CrashMode::LoseAll);
    assert_eq!(fs.file_bytes(&path).unwrap().len() as u64, info.file_bytes);
    assert_eq!(block_on(verify(&fs, &path)).unwrap(), info);
    assert_eq!(info.smallest, entries[0].0);
    assert_eq!(info.largest, entries[999].0);
    assert_eq!((info.seq_min, info.seq_max), (1, 1000));
}

#[test]
fn estimated_size_tracks_the_file() {
    let fs = new_fs();
    let path = sst_path("estimate.sst");
    let entries = numbered_entries(5000, 50);
    block_on(async {
        let mut writer = SstWriter::create(&fs, &path, SstOptions::default())
            .await
            .unwrap();
        let mut last = 0;
        for (k, v) in &entries {
            writer.add(k, v).await.unwrap();
            assert!(writer.estimated_file_bytes() >= last);
            last = writer.estimated_file_bytes();
        }
        let info = writer.finish().await.unwrap();
        let error = last.abs_diff(info.file_bytes) as f64 / info.file_bytes as f64;
        assert!(error < 0.05, "estimate {last}, actual {}", info.file_bytes);
    });
}

#[test]
fn huge_values_and_tombstones() {
    let fs = new_fs();
    let path = sst_path("huge.sst");
    let big = vec![7u8; 700 << 10];
    let entries = vec![
        (key::encode(b"a", 5, ValueKind::Put), big.clone()),
        (key::encode(b"a", 4, ValueKind::Delete), Vec::new()),
        (key::encode(b"b", 3, ValueKind::Put), b"small".to_vec()),
        (key::encode(b"c", 9, ValueKind::Put), big.clone()),
    ];
    for compression in [Compression::None, Compression::Zstd(1)] {
        let opts = SstOptions {
            compression,
            ..SstOptions::default()
        };
        let info = write(&fs, &path, &entries, opts);
        assert_eq!(info.tombstones, 1);
        let reader = open(&fs, &path).unwrap();
        // a@5 fills a block alone; a@4, b@3 and c@9 share the next (cut after c@9).
        assert_eq!(reader.properties().data_blocks, 2);
        let got = block_on(reader.get(b"a", 4)).unwrap().unwrap();
        assert_eq!((got.0, got.1, got.2.len()), (4, ValueKind::Delete, 0));
        let got = block_on(reader.get(b"c", 100)).unwrap().unwrap();
        assert_eq!(got.2, Bytes::from(big.clone()));
        assert!(block_on(reader.get(b"c", 8)).unwrap().is_none());
        assert_eq!(scan(&reader).unwrap(), entries);
    }
}

#[test]
fn point_reads_fill_the_block_cache_and_scans_read_ahead_without_filling_it() {
    let fs = new_fs();
    let path = sst_path("cached.sst");
    let entries = numbered_entries(500, 20);
    write(&fs, &path, &entries, SstOptions::default());
    let cache = Rc::new(BlockCache::new(1 << 20));
    let reader = block_on(SstReader::open(&fs, &path, 7, cache.clone())).unwrap();
    let blocks = reader.properties().data_blocks;
    assert!(blocks > 2);
    let reads_before = fs.read_count();
    assert_eq!(scan(&reader).unwrap(), entries);
    assert_eq!((cache.hits(), cache.misses()), (0, blocks));
    assert_eq!(cache.len(), 0, "a scan does not fill the cache");
    let reads = fs.read_count() - reads_before;
    assert!(
        reads < blocks,
        "read-ahead: {reads} reads for {blocks} blocks"
    );
    let k = key::user_key(&entries[10].0);
    assert!(block_on(reader.get(k, key::SEQ_MAX)).unwrap().is_some());
    assert_eq!(cache.len(), 1);
    assert!(block_on(reader.get(k, key::SEQ_MAX)).unwrap().is_some());
    assert_eq!(cache.hits(), 1);
    // A scan uses what point reads cached.
    scan(&reader).unwrap();
    assert_eq!(cache.hits(), 2);
}

#[test]
fn finish_without_entries_is_an_error() {
    let fs = new_fs();
    let path = sst_path("empty.sst");
    let result = block_on(async {
        let writer = SstWriter::create(&fs, &path, SstOptions::default())
            .await
            .unwrap();
        writer.finish().await
    });
    assert!(matches!(result, Err(SstError::Empty { .. })));
}

#[test]
#[should_panic(expected = "not strictly increasing")]
fn out_of_order_keys_panic() {
    let fs = new_fs();
    block_on(async {
        let path = sst_path("order.sst");
        let mut writer = SstWriter::create(&fs, &path, SstOptions::default())
            .await
            .unwrap();
        writer
            .add(&key::encode(b"a", 1, ValueKind::Put), b"")
            .await
            .unwrap();
        // Same user key, newer seq: sorts *before* the previous entry.
        writer
            .add(&key::encode(b"a", 2, ValueKind::Put), b"")
            .await
            .unwrap();
    });
}

#[test]
fn dump_visits_every_entry() {
    let fs = new_fs();
    let path = sst_path("dump.sst");
    let entries = numbered_entries(100, 3);
    write(&fs, &path, &entries, SstOptions::default());
    let mut seen = Vec::new();
    let info = block_on(dump(&fs, &path, |k, v| seen.push((k.to_vec(), v.to_vec())))).unwrap();
    assert_eq!(seen, entries);
    assert_eq!(info.entries, 100);
}

#[test]
fn io_errors_are_reported_as_io() {
    use crate::memfs::FaultOp;
    let fs = new_fs();
    let path = sst_path("io.sst");
    let entries = numbered_entries(100, 3);
    fs.fail_next(FaultOp::Sync, std::io::ErrorKind::Other);
    let result = block_on(async {
        let mut writer = SstWriter::create(&fs, &path, SstOptions::default())
            .await
            .unwrap();
        for (k, v) in &entries {
            writer.add(k, v).await.unwrap();
        }
        writer.finish().await
    });
    assert!(matches!(result, Err(SstError::Io { .. })));
    write(&fs, &path, &entries, SstOptions::default());
    let reader = open(&fs, &path).unwrap();
    fs.fail_next(FaultOp::Read, std::io::ErrorKind::Other);
    assert!(matches!(scan(&reader), Err(SstError::Io { .. })));
    assert_eq!(scan(&reader).unwrap(), entries);
}
