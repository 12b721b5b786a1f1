//! Multi-key commands whose keys live on different shards are atomic and isolated: MGET never
//! sees half of an MSET, and of racing MSETNX calls on the same keys exactly one wins.

use helios_tests::{HeliosServer, ServerOpts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const KEYS: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];

fn connect(server: &HeliosServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn mget_never_sees_half_of_an_mset_across_shards() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let mut conn = connect(&server);
            std::thread::spawn(move || {
                for round in 0..300 {
                    let value = format!("w{writer}-r{round}");
                    let mut cmd = redis::cmd("MSET");
                    for key in KEYS {
                        cmd.arg(key).arg(&value);
                    }
                    let _: () = cmd.query(&mut conn).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut conn = connect(&server);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut checked = 0;
                while !stop.load(Ordering::Relaxed) {
                    let values: Vec<Option<String>> =
                        redis::cmd("MGET").arg(&KEYS[..]).query(&mut conn).unwrap();
                    if values[0].is_some() {
                        assert!(
                            values.iter().all(|v| v == &values[0]),
                            "torn MSET seen by MGET: {values:?}"
                        );
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checked: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checked > 0, "the readers checked nothing");
}

#[test]
fn racing_msetnx_across_shards_has_exactly_one_winner() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    for round in 0..40 {
        let keys: Vec<String> = KEYS.iter().map(|k| format!("{k}:{round}")).collect();
        let threads: Vec<_> = (0..4)
            .map(|contender| {
                let mut conn = connect(&server);
                let keys = keys.clone();
                std::thread::spawn(move || {
                    let mut cmd = redis::cmd("MSETNX");
                    for key in &keys {
                        cmd.arg(key).arg(contender);
                    }
                    let won: i64 = cmd.query(&mut conn).unwrap();
                    won
                })
            })
            .collect();
        let wins: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(wins, 1, "round {round}");
        let mut conn = connect(&server);
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut conn).unwrap();
        assert!(
            values.iter().all(|v| v.is_some() && v == &values[0]),
            "round {round}: {values:?}"
        );
    }
}

/// RENAME and RENAMENX between every pair of keys (so across shards too) move the value and
/// its expiry, and RENAMENX onto an existing key changes nothing.
#[test]
fn rename_between_shards_moves_value_and_ttl() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let mut conn = connect(&server);
    for src in KEYS {
        for dst in KEYS.iter().filter(|&&d| d != src) {
            let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
            let _: () = redis::cmd("SET")
                .arg(src)
                .arg("v")
                .arg("PX")
                .arg(100_000)
                .query(&mut conn)
                .unwrap();
            let _: () = redis::cmd("RENAME")
                .arg(src)
                .arg(dst)
                .query(&mut conn)
                .unwrap();
            let (value, gone, ttl): (Option<String>, i64, i64) = redis::pipe()
                .get(*dst)
                .exists(src)
                .pttl(*dst)
                .query(&mut conn)
                .unwrap();
            assert_eq!((value.as_deref(), gone), (Some("v"), 0), "{src} -> {dst}");
            assert!(ttl > 0 && ttl <= 100_000, "{src} -> {dst}: ttl {ttl}");
            let _: () = redis::cmd("SET")
                .arg(src)
                .arg("w")
                .query(&mut conn)
                .unwrap();
            let renamed: i64 = redis::cmd("RENAMENX")
                .arg(src)
                .arg(dst)
                .query(&mut conn)
                .unwrap();
            assert_eq!(renamed, 0);
            let (src_value, dst_value): (String, String) =
                redis::pipe().get(src).get(*dst).query(&mut conn).unwrap();
            assert_eq!(
                (src_value.as_str(), dst_value.as_str()),
                ("w", "v"),
                "{src} -> {dst}"
            );
            let error = redis::cmd("RENAME")
                .arg("missing")
                .arg(*dst)
                .query::<()>(&mut conn)
                .unwrap_err();
            assert!(error.to_string().contains("no such key"), "{error}");
        }
    }
}
