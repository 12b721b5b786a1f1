//! The offline admin commands on a real server's data dir: `helios check` passes on what a
//! cleanly stopped server left, `helios inspect wal` shows the keys written, and a byte flipped
//! in the middle of a WAL record makes `check` fail, naming the file and the offset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use helios_tests::{helios_bin, Durability, HeliosServer, RespConn, ServerOpts};

/// Where records start in a WAL segment (after the header block); see engine/FORMAT.md.
const SEGMENT_HEADER_BYTES: usize = 4096;
const RECORD_HEADER_BYTES: usize = 32;
const KEYS: usize = 60;

fn helios(args: &[&str], dir: &Path) -> Output {
    Command::new(helios_bin())
        .args(args)
        .arg(dir)
        .output()
        .expect("run helios")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every WAL segment of the data dir.
fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(data_dir).unwrap() {
        let wal = shard.unwrap().path().join("lsm").join("wal");
        let Ok(entries) = std::fs::read_dir(&wal) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("wal-") && name.ends_with(".log") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Payload length of the record at `offset` (header bytes 4..8, little-endian).
fn record_len(bytes: &[u8], offset: usize) -> usize {
    u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().unwrap()) as usize
}

#[test]
fn check_passes_inspect_shows_keys_and_a_flipped_byte_fails_check() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let mut conn = RespConn::connect(server.port()).expect("connect");
    for i in 0..KEYS {
        let reply = conn.call(&["SET", &format!("admin-key-{i}"), &format!("value-{i}")]);
        assert_eq!(reply, b"+OK\r\n");
    }
    drop(conn);
    server.terminate();
    let data_dir = server.data_dir();

    let out = helios(&["check", "--data-dir"], &data_dir);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("check: 0 errors"), "{}", stdout(&out));

    let segments = segments(&data_dir);
    assert!(!segments.is_empty());
    let mut shown = String::new();
    for segment in &segments {
        let out = Command::new(helios_bin())
            .args(["inspect", "wal"])
            .arg(segment)
            .output()
            .expect("run helios inspect");
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        shown += &stdout(&out);
    }
    // Records are write batches of the shard's tree: storage key (db, token, key) = stored
    // value (type and expiry header, then the string).
    for i in 0..KEYS {
        let (key, value) = (format!("admin-key-{i}\""), format!("value-{i}\""));
        assert!(
            shown.lines().any(|line| line.contains("put seq=")
                && line.contains(&key)
                && line.contains(&value)),
            "inspect lacks {key} = {value}:\n{shown}"
        );
    }

    // Damage the first record of a segment holding several (so valid records follow it: not a
    // torn tail, which recovery would cut, but corruption it refuses).
    let segment = segments
        .iter()
        .find(|s| {
            stdout(&helios(&["inspect", "wal"], s))
                .matches("\nlsn=")
                .count()
                >= 2
        })
        .expect("a segment with two records");
    let mut bytes = std::fs::read(segment).unwrap();
    let middle =
        SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + record_len(&bytes, SEGMENT_HEADER_BYTES) / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(segment, &bytes).unwrap();

    let out = helios(&["check", "--data-dir"], &data_dir);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        report.lines().any(|line| line.starts_with("error:")
            && line.contains(&name)
            && line.contains(&format!("offset {SEGMENT_HEADER_BYTES}"))),
        "check does not name {name} at offset {SEGMENT_HEADER_BYTES}:\n{report}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(helios_bin())
        .args(["inspect", "nonsense", "x"])
        .output()
        .expect("run helios");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(helios_bin())
        .args(["--shards", "2", "check"])
        .output()
        .expect("run helios");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreadable_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(helios_bin())
        .args(["inspect", "sst"])
        .arg(dir.path().join("missing.sst"))
        .output()
        .expect("run helios");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.sst"));
}
