//! The commands on files written by the engine itself (over [`StdFs`]): an SSTable, and a whole
//! LSM tree (manifest, tables, WAL); then the same files damaged.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_lite::future::block_on;
use helios_engine::cache::BlockCache;
use helios_engine::localrt::LocalRuntime;
use helios_engine::lsm::key::{self, ValueKind};
use helios_engine::lsm::manifest::sst_file_name;
use helios_engine::lsm::{Lsm, LsmOptions};
use helios_engine::sst::{SstOptions, SstWriter};
use helios_engine::wal::WalOptions;

use super::{check, inspect, InspectTarget, LimitArg, Outcome};
use crate::stdfs::StdFs;

fn inspect_output(target: InspectTarget) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = inspect::run(&target, &mut out).expect("inspect runs");
    (outcome, String::from_utf8(out).expect("utf-8 output"))
}

fn check_output(data_dir: &Path) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = check::run(data_dir, &mut out).expect("check runs");
    (outcome, String::from_utf8(out).expect("utf-8 output"))
}

const NO_LIMIT: LimitArg = LimitArg { limit: None };

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// An SSTable of `count` keys (every tenth a tombstone), written by the engine's writer.
fn write_sst(path: &Path, count: u32) {
    let fs = StdFs::writable();
    block_on(async {
        let opts = SstOptions {
            block_bytes: 512,
            ..SstOptions::default()
        };
        let mut writer = SstWriter::create(&fs, path, opts).await.unwrap();
        for i in 0..count {
            let user_key = format!("key{i:04}");
            let (kind, value) = match i % 10 {
                0 => (ValueKind::Delete, Vec::new()),
                _ => (ValueKind::Put, format!("value-{i}\x00").into_bytes()),
            };
            let internal = key::encode(user_key.as_bytes(), u64::from(i) + 1, kind);
            writer.add(&internal, &value).await.unwrap();
        }
        writer.finish().await.unwrap();
    });
}

#[test]
fn inspect_sst_prints_properties_and_entries_and_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(sst_file_name(1));
    write_sst(&path, 200);
    let (outcome, out) = inspect_output(InspectTarget::Sst {
        path: path.clone(),
        limit: NO_LIMIT,
    });
    assert_eq!(outcome, Outcome::Fine, "{out}");
    assert!(
        out.contains("entries=200 tombstones=20 seq=1..=200"),
        "{out}"
    );
    assert!(out.contains("\"key0000\"@1 del = \"\""), "{out}");
    assert!(
        out.contains("\"key0001\"@2 put = \"value-1\\x00\""),
        "{out}"
    );
    assert!(out.contains("verify: ok"), "{out}");

    let (_, limited) = inspect_output(InspectTarget::Sst {
        path: path.clone(),
        limit: LimitArg { limit: Some(3) },
    });
    assert!(limited.contains("(197 more entries not shown"), "{limited}");
    assert!(!limited.contains("key0003"), "{limited}");

    // A flipped byte in the first data block (at offset 0).
    let damaged = dir.path().join("damaged.sst");
    std::fs::copy(&path, &damaged).unwrap();
    flip_byte(&damaged, 100);
    let (outcome, out) = inspect_output(InspectTarget::Sst {
        path: damaged,
        limit: NO_LIMIT,
    });
    assert_eq!(outcome, Outcome::Problems, "{out}");
    assert!(out.contains("corrupt at offset 0"), "{out}");
}

fn lsm_options() -> LsmOptions {
    LsmOptions {
        wal: WalOptions {
            preallocate_bytes: 0,
            ..WalOptions::default()
        },
        ..LsmOptions::default()
    }
}

/// A tree at `dir` with two flushed tables and a few writes left in the WAL only.
fn write_lsm(dir: PathBuf) {
    let rt = LocalRuntime::new(0);
    let rt2 = rt.clone();
    rt.block_on(async move {
        let fs = StdFs::writable();
        let cache = Rc::new(BlockCache::new(1 << 20));
        let db = Lsm::open(fs, rt2, dir, lsm_options(), cache).await.unwrap();
        for i in 0..50u32 {
            db.put(format!("a{i:03}").as_bytes(), b"first")
                .await
                .unwrap();
        }
        db.flush().await.unwrap();
        for i in 0..50u32 {
            db.put(format!("b{i:03}").as_bytes(), b"second")
                .await
                .unwrap();
        }
        db.delete(b"a001").await.unwrap();
        db.flush().await.unwrap();
        db.put(b"only-in-wal", b"\x01\x02").await.unwrap();
        db.close().await.unwrap();
    });
}

/// The `.sst` files of a tree, sorted.
fn sst_files(lsm_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(lsm_dir.join("sst"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sst"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_and_inspect_an_lsm_tree() {
    let data = tempfile::tempdir().unwrap();
    let lsm_dir = data.path().join("shard-0").join("lsm");
    write_lsm(lsm_dir.clone());

    let (outcome, out) = check_output(data.path());
    assert_eq!(outcome, Outcome::Fine, "{out}");
    assert!(out.contains("check: 0 errors"), "{out}");
    assert!(out.contains("lsm/manifest"), "{out}");
    assert_eq!(out.matches(".sst: ").count(), 2, "{out}");

    let (outcome, out) = inspect_output(InspectTarget::Manifest {
        path: lsm_dir.join("manifest"),
        limit: NO_LIMIT,
    });
    assert_eq!(outcome, Outcome::Fine, "{out}");
    // Two flushes; the first table overlaps nothing and may have moved down to L1 since.
    assert!(out.contains(" files=2 "), "{out}");
    assert!(out.contains("+L0#"), "{out}");

    let (outcome, out) = inspect_output(InspectTarget::Wal {
        path: lsm_dir.join("wal"),
        limit: NO_LIMIT,
    });
    assert_eq!(outcome, Outcome::Fine, "{out}");
    assert!(out.contains("kind=lsm-batch"), "{out}");
    assert!(
        out.contains("put seq=102 \"only-in-wal\" = \"\\x01\\x02\""),
        "{out}"
    );

    // A file the manifest does not list: a warning, not an error.
    let tables = sst_files(&lsm_dir);
    let stray = lsm_dir.join("sst").join(sst_file_name(999));
    std::fs::copy(&tables[0], &stray).unwrap();
    let (outcome, out) = check_output(data.path());
    assert_eq!(outcome, Outcome::Fine, "{out}");
    assert!(
        out.contains("unreferenced (would be removed at start)"),
        "{out}"
    );
    std::fs::remove_file(&stray).unwrap();

    // A flipped byte in a live table: an error naming the file and the block offset.
    let saved = std::fs::read(&tables[1]).unwrap();
    flip_byte(&tables[1], 10);
    let (outcome, out) = check_output(data.path());
    assert_eq!(outcome, Outcome::Problems, "{out}");
    let name = tables[1]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("error:") && l.contains(&name) && l.contains("offset 0")),
        "{out}"
    );

    // A live table gone: an error.
    std::fs::write(&tables[1], saved).unwrap();
    std::fs::remove_file(&tables[0]).unwrap();
    let (outcome, out) = check_output(data.path());
    assert_eq!(outcome, Outcome::Problems, "{out}");
    assert!(out.contains("listed in the manifest"), "{out}");
}

#[test]
fn check_never_writes() {
    let data = tempfile::tempdir().unwrap();
    let wal_dir = data.path().join("shard-0").join("lsm");
    write_lsm(wal_dir.clone());
    // Damage the WAL's last record: a torn tail, which recovery would cut (and check must not).
    let segment = std::fs::read_dir(wal_dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[end] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let (outcome, out) = check_output(data.path());
    assert_eq!(outcome, Outcome::Fine, "{out}");
    assert!(out.contains("a torn tail"), "{out}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}
