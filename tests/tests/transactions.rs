//! MULTI/EXEC/DISCARD: scripted transactions compared byte for byte with redis-server
//! (queueing errors, EXECABORT, runtime errors inside EXEC, nesting, keys on both shards),
//! and a bank-transfer invariant under concurrent clients: transfers between accounts on
//! different shards never show a half-done state to an auditor reading all accounts in a
//! transaction of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use helios_tests::{render, HeliosServer, RedisServer, RespConn, ServerOpts};

/// Scripts of commands; each is run on a fresh connection to both servers.
const SCRIPTS: &[&[&[&str]]] = &[
    &[
        &["MULTI"],
        &["SET", "a", "1"],
        &["INCR", "a"],
        &["MSET", "k1", "x", "k2", "y", "k3", "z"],
        &["MGET", "k1", "k2", "k3", "nope"],
        &["RPUSH", "list", "1", "2"],
        &["HSET", "h", "f", "v"],
        &["SADD", "s1", "m"],
        &["SUNIONSTORE", "s2", "s1", "s1"],
        &["RENAME", "k1", "k9"],
        &["EXEC"],
        &["MGET", "a", "k9", "k1"],
    ],
    // A runtime error inside EXEC does not stop the others.
    &[
        &["MULTI"],
        &["SET", "str", "x"],
        &["INCR", "str"],
        &["LPUSH", "str", "y"],
        &["GET", "str"],
        &["EXEC"],
    ],
    // Queueing errors abort the whole transaction.
    &[
        &["MULTI"],
        &["SET", "q", "1"],
        &["NOSUCHCOMMAND", "x"],
        &["GET"],
        &["EXEC"],
        &["GET", "q"],
    ],
    &[
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "d", "1"],
        &["DISCARD"],
        &["GET", "d"],
        &["MULTI"],
        &["EXEC"],
    ],
    // SELECT inside a transaction, and PING.
    &[
        &["MULTI"],
        &["SELECT", "2"],
        &["SET", "in2", "v"],
        &["PING"],
        &["EXEC"],
        &["GET", "in2"],
        &["SELECT", "0"],
        &["GET", "in2"],
    ],
];

#[test]
fn scripted_transactions_match_redis() {
    let Some(redis) = RedisServer::try_start() else {
        return;
    };
    let helios = HeliosServer::start(ServerOpts::default().shards(2));
    for (n, script) in SCRIPTS.iter().enumerate() {
        for port in [redis.port(), helios.port()] {
            let mut c = RespConn::connect(port).expect("connect");
            c.cmd(&["FLUSHALL"]).expect("FLUSHALL");
        }
        let mut on_redis = RespConn::connect(redis.port()).expect("connect to redis-server");
        let mut on_helios = RespConn::connect(helios.port()).expect("connect to helios");
        for args in script.iter() {
            let want = on_redis.cmd(args).expect("redis reply");
            let got = on_helios.cmd(args).expect("helios reply");
            assert_eq!(
                render(&got),
                render(&want),
                "script {n}, command {args:?}: helios vs redis-server"
            );
        }
    }
}

const ACCOUNTS: usize = 8;
const BALANCE: i64 = 1000;
const TRANSFERS_PER_CLIENT: usize = 300;
const CLIENTS: usize = 4;

fn account(i: usize) -> String {
    format!("acct:{i}")
}

#[test]
fn transfers_across_shards_keep_the_total_under_concurrency() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let port = server.port();
    let mut setup = RespConn::connect(port).expect("connect");
    for i in 0..ACCOUNTS {
        setup
            .cmd(&["SET", &account(i), &BALANCE.to_string()])
            .expect("SET");
    }
    let done = Arc::new(AtomicBool::new(false));
    let auditor = {
        let done = done.clone();
        thread::spawn(move || {
            let mut c = RespConn::connect(port).expect("auditor connect");
            let mut audits = 0;
            while !done.load(Ordering::Relaxed) {
                c.cmd(&["MULTI"]).expect("MULTI");
                for i in 0..ACCOUNTS {
                    assert_eq!(c.cmd(&["GET", &account(i)]).expect("GET"), b"+QUEUED\r\n");
                }
                let reply = helios_tests::Frame::parse(&c.cmd(&["EXEC"]).expect("EXEC"))
                    .expect("EXEC reply");
                let total: i64 = reply
                    .children
                    .iter()
                    .map(|f| {
                        std::str::from_utf8(f.bytes().expect("a balance"))
                            .expect("utf-8")
                            .parse::<i64>()
                            .expect("an integer")
                    })
                    .sum();
                assert_eq!(
                    total,
                    BALANCE * ACCOUNTS as i64,
                    "audit {audits} saw a half-done transfer"
                );
                audits += 1;
            }
            audits
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            thread::spawn(move || {
                let mut c = RespConn::connect(port).expect("client connect");
                for n in 0..TRANSFERS_PER_CLIENT {
                    let from = (t + n) % ACCOUNTS;
                    let to = (t * 3 + n * 5 + 1) % ACCOUNTS;
                    let amount = ((n % 7) + 1).to_string();
                    c.cmd(&["MULTI"]).expect("MULTI");
                    c.cmd(&["DECRBY", &account(from), &amount]).expect("DECRBY");
                    c.cmd(&["INCRBY", &account(to), &amount]).expect("INCRBY");
                    let reply = c.cmd(&["EXEC"]).expect("EXEC");
                    assert_eq!(reply[0], b'*', "EXEC: {}", render(&reply));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    done.store(true, Ordering::Relaxed);
    let audits = auditor.join().expect("auditor");
    assert!(audits > 0, "the auditor ran");
    let mut total = 0;
    for i in 0..ACCOUNTS {
        let raw = setup.cmd(&["GET", &account(i)]).expect("GET");
        let f = helios_tests::Frame::parse(&raw).expect("frame");
        total += std::str::from_utf8(f.bytes().expect("bulk"))
            .expect("utf-8")
            .parse::<i64>()
            .expect("integer");
    }
    assert_eq!(total, BALANCE * ACCOUNTS as i64);
    eprintln!(
        "{audits} audits saw the right total during {} transfers",
        CLIENTS * TRANSFERS_PER_CLIENT
    );
}

/// Two-client scripts: (client, command). WATCH on keys of both shards, changed or not by
/// the other client, by the watcher itself, by expiry or deletion; UNWATCH; WATCH inside
/// MULTI; DISCARD forgetting the watches.
const WATCH_SCRIPTS: &[&[(usize, &[&str])]] = &[
    &[
        (0, &["SET", "w1", "a"]),
        (0, &["WATCH", "w1", "w2"]),
        (1, &["SET", "w2", "changed"]),
        (0, &["MULTI"]),
        (0, &["SET", "w1", "b"]),
        (0, &["EXEC"]),
        (0, &["GET", "w1"]),
    ],
    &[
        (0, &["WATCH", "w1", "w2", "w3", "w4"]),
        (1, &["GET", "w1"]),
        (0, &["MULTI"]),
        (0, &["SET", "w1", "b"]),
        (0, &["INCR", "w3"]),
        (0, &["EXEC"]),
        (0, &["MGET", "w1", "w3"]),
    ],
    &[
        (0, &["WATCH", "w1"]),
        (0, &["SET", "w1", "mine"]),
        (0, &["MULTI"]),
        (0, &["GET", "w1"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w2"]),
        (1, &["DEL", "w2"]),
        (0, &["MULTI"]),
        (0, &["WATCH", "w3"]),
        (0, &["EXEC"]),
    ],
    &[
        (0, &["SET", "w4", "x"]),
        (0, &["WATCH", "w4"]),
        (0, &["UNWATCH"]),
        (1, &["SET", "w4", "y"]),
        (0, &["MULTI"]),
        (0, &["GET", "w4"]),
        (0, &["EXEC"]),
        (0, &["WATCH", "w4"]),
        (1, &["HSET", "w4h", "f", "v"]),
        (0, &["MULTI"]),
        (0, &["DISCARD"]),
        (1, &["SET", "w4", "z"]),
        (0, &["MULTI"]),
        (0, &["GET", "w4"]),
        (0, &["EXEC"]),
    ],
];

#[test]
fn watch_matches_redis() {
    let Some(redis) = RedisServer::try_start() else {
        return;
    };
    let helios = HeliosServer::start(ServerOpts::default().shards(2));
    for (n, script) in WATCH_SCRIPTS.iter().enumerate() {
        for port in [redis.port(), helios.port()] {
            let mut c = RespConn::connect(port).expect("connect");
            c.cmd(&["FLUSHALL"]).expect("FLUSHALL");
        }
        let mut clients: Vec<[RespConn; 2]> = [redis.port(), helios.port()]
            .iter()
            .map(|&p| {
                [
                    RespConn::connect(p).expect("connect"),
                    RespConn::connect(p).expect("connect"),
                ]
            })
            .collect();
        for (who, args) in script.iter() {
            let want = clients[0][*who].cmd(args).expect("redis reply");
            let got = clients[1][*who].cmd(args).expect("helios reply");
            assert_eq!(
                render(&got),
                render(&want),
                "watch script {n}, client {who}, command {args:?}: helios vs redis-server"
            );
        }
    }
}
