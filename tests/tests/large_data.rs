//! Data larger than memory, through the real server: with a small `--cache-size`, load many
//! times the cache in 1 KB values over RESP, read random keys back, restart, read them again.
//! Compaction must keep level 0 bounded during the load (INFO `# Storage`).
//!
//! CI loads 192 MiB against a 16 MB cache (debug build, 2 cores). The full run — 4 GB
//! with `--cache-size 64MB` — is the same test with `HELIOS_LARGE_DATA_BYTES=4294967296
//! HELIOS_LARGE_DATA_CACHE=64MB` (see README, "Storage").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use helios_tests::resp::{encode_command, RespConn};
use helios_tests::rng::Rng;
use helios_tests::server::{HeliosServer, ServerOpts};

const VALUE_BYTES: usize = 1024;
const DEFAULT_TOTAL_BYTES: u64 = 192 << 20;
const DEFAULT_CACHE: &str = "16MB";
/// SETs sent before reading their replies.
const PIPELINE: usize = 256;
const SAMPLE_READS: usize = 2_000;
/// The bound on level 0: writers stop at the stop trigger (20), after which only memtables
/// already full (at most the active one and two immutable ones) can still be flushed into it.
const L0_FILES_MAX: usize = 20 + 3;

fn key(i: u64) -> String {
    format!("large:{i:012}")
}

/// A value that names its key, so a value read back under another key is caught.
fn value(i: u64) -> Vec<u8> {
    let mut v = format!("{i:012}:").into_bytes();
    let fill = b'a' + (i % 26) as u8;
    v.resize(VALUE_BYTES, fill);
    v
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn storage_info(port: u16) -> String {
    let mut conn = RespConn::connect(port).expect("connect");
    String::from_utf8_lossy(&conn.call(&["INFO", "storage"])).into_owned()
}

/// The largest `level_files` L0 count and `max_l0_files` over the shards.
fn max_l0(info: &str) -> usize {
    info.lines()
        .filter_map(|line| line.split("max_l0_files=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}

fn files_below_l0(info: &str) -> usize {
    info.lines()
        .filter_map(|line| line.split("level_files=").nth(1))
        .filter_map(|rest| rest.split(',').next())
        .map(|levels| {
            levels
                .split('/')
                .skip(1)
                .filter_map(|n| n.parse::<usize>().ok())
                .sum::<usize>()
        })
        .sum()
}

fn load(port: u16, keys: u64) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut i = 0;
    let mut buf = vec![0u8; 64 << 10];
    while i < keys {
        let n = (keys - i).min(PIPELINE as u64);
        let mut out = Vec::with_capacity(n as usize * (VALUE_BYTES + 64));
        for j in i..i + n {
            out.extend_from_slice(&encode_command(&[
                b"SET".as_slice(),
                key(j).as_bytes(),
                &value(j),
            ]));
        }
        stream.write_all(&out).unwrap();
        // Each reply is "+OK\r\n".
        let want = n as usize * 5;
        let mut got = 0;
        while got < want {
            let read = stream.read(&mut buf).expect("read replies");
            assert!(read > 0, "server closed the connection");
            assert!(
                buf[..read].iter().all(|&b| b"+OK\r\n".contains(&b)),
                "unexpected reply: {}",
                String::from_utf8_lossy(&buf[..read])
            );
            got += read;
        }
        i += n;
    }
}

fn read_sample(port: u16, keys: u64, seed: u64) {
    let mut conn = RespConn::connect(port).expect("connect");
    let mut rng = Rng::new(seed);
    for _ in 0..SAMPLE_READS {
        let i = rng.below(keys);
        let reply = conn
            .cmd(&[b"GET".as_slice(), key(i).as_bytes()])
            .expect("GET");
        let mut expected = format!("${VALUE_BYTES}\r\n").into_bytes();
        expected.extend_from_slice(&value(i));
        expected.extend_from_slice(b"\r\n");
        assert!(
            reply == expected,
            "GET {} returned {} bytes, not its value",
            key(i),
            reply.len()
        );
    }
    let reply = conn.call(&["DBSIZE"]);
    assert_eq!(reply, format!(":{keys}\r\n").into_bytes(), "DBSIZE");
}

#[test]
fn data_many_times_the_cache_loads_reads_back_and_survives_restart() {
    let total: u64 = env_or("HELIOS_LARGE_DATA_BYTES", DEFAULT_TOTAL_BYTES);
    let cache = std::env::var("HELIOS_LARGE_DATA_CACHE").unwrap_or_else(|_| DEFAULT_CACHE.into());
    let keys = total / VALUE_BYTES as u64;
    let mut server = HeliosServer::start(
        ServerOpts::default()
            .shards(1)
            .cache_size(&cache)
            .ready_deadline(Duration::from_secs(900)),
    );
    let started = Instant::now();
    load(server.port(), keys);
    let loaded = started.elapsed();
    let info = storage_info(server.port());
    eprintln!(
        "loaded {keys} keys ({} MiB) in {loaded:?}\n{info}",
        total >> 20
    );
    assert!(
        max_l0(&info) <= L0_FILES_MAX,
        "level 0 grew past its stop trigger:\n{info}"
    );
    assert!(
        files_below_l0(&info) > 0,
        "nothing was compacted below level 0:\n{info}"
    );
    read_sample(server.port(), keys, 1);

    server.terminate();
    let restarted = Instant::now();
    server.restart();
    eprintln!(
        "restart (key index rebuilt from the store) took {:?}",
        restarted.elapsed()
    );
    read_sample(server.port(), keys, 2);
    eprintln!("after restart:\n{}", storage_info(server.port()));
}
