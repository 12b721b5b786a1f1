//! Hashes, sets and lists through the real server: acknowledged writes survive kill -9 in sync
//! mode, a deleted big collection's element keys are reclaimed at the next start, a
//! pipeline cut by the kill leaves whole fields only, and redis-py works with both.
//! (Replies against redis-server are compared in `differential.rs`.)

use helios_tests::resp::encode_command;
use helios_tests::{render, Durability, Frame, HeliosServer, RespConn, ServerOpts};

fn cmd(conn: &mut RespConn, args: &[&str]) -> Vec<u8> {
    conn.cmd(args).expect("reply")
}

fn frame(conn: &mut RespConn, args: &[&str]) -> Frame {
    Frame::parse(&cmd(conn, args)).expect("a RESP frame")
}

/// HGETALL as sorted (field, value) pairs.
fn hgetall(conn: &mut RespConn, key: &str) -> Vec<(String, String)> {
    let reply = cmd(conn, &["HGETALL", key]);
    let parsed = Frame::parse(&reply).expect("frame");
    assert_eq!(parsed.kind(), b'*', "HGETALL {key}: {}", render(&reply));
    let items: Vec<String> = parsed
        .children
        .iter()
        .map(|f| String::from_utf8(f.bytes().expect("bulk").to_vec()).expect("utf-8"))
        .collect();
    let mut pairs: Vec<(String, String)> = items
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

/// LRANGE key 0 -1.
fn lrange(conn: &mut RespConn, key: &str) -> Vec<String> {
    Frame::parse(&cmd(conn, &["LRANGE", key, "0", "-1"]))
        .expect("frame")
        .children
        .iter()
        .map(|f| String::from_utf8(f.bytes().expect("bulk").to_vec()).expect("utf-8"))
        .collect()
}

/// SMEMBERS, sorted.
fn smembers(conn: &mut RespConn, key: &str) -> Vec<String> {
    let mut members: Vec<String> = Frame::parse(&cmd(conn, &["SMEMBERS", key]))
        .expect("frame")
        .children
        .iter()
        .map(|f| String::from_utf8(f.bytes().expect("bulk").to_vec()).expect("utf-8"))
        .collect();
    members.sort();
    members
}

#[test]
fn acknowledged_collection_writes_survive_kill9() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let mut conn = RespConn::connect(server.port()).expect("connect");
    assert_eq!(
        frame(&mut conn, &["HSET", "user:1", "name", "ada", "lang", "en"]).integer(),
        Some(2)
    );
    assert_eq!(
        frame(&mut conn, &["HINCRBY", "user:1", "visits", "41"]).integer(),
        Some(41)
    );
    assert_eq!(
        frame(&mut conn, &["HINCRBY", "user:1", "visits", "1"]).integer(),
        Some(42)
    );
    assert_eq!(
        frame(&mut conn, &["HDEL", "user:1", "lang"]).integer(),
        Some(1)
    );
    assert_eq!(
        render(&cmd(&mut conn, &["HINCRBYFLOAT", "user:1", "score", "2.5"])),
        "$3\\r\\n2.5\\r\\n"
    );
    // A big hash (more fields than are deleted eagerly), deleted, then a new one at its key.
    let mut big = vec!["HSET".to_string(), "big".to_string()];
    for i in 0..300 {
        big.push(format!("f{i}"));
        big.push(format!("v{i}"));
    }
    assert_eq!(
        frame(
            &mut conn,
            &big.iter().map(String::as_str).collect::<Vec<_>>()
        )
        .integer(),
        Some(300)
    );
    assert_eq!(frame(&mut conn, &["DEL", "big"]).integer(), Some(1));
    assert_eq!(
        frame(&mut conn, &["HSET", "big", "only", "1"]).integer(),
        Some(1)
    );
    // A hash renamed across shards keeps its fields and expiry.
    cmd(&mut conn, &["HSET", "src", "a", "1", "b", "2"]);
    cmd(&mut conn, &["EXPIRE", "src", "1000"]);
    assert_eq!(
        render(&cmd(&mut conn, &["RENAME", "src", "dst"])),
        "+OK\\r\\n"
    );
    // A hash overwritten by a string.
    cmd(&mut conn, &["HSET", "gone", "x", "1"]);
    cmd(&mut conn, &["SET", "gone", "now a string"]);

    // Sets: members, a cross-shard store, a popped-empty set.
    assert_eq!(
        frame(&mut conn, &["SADD", "tags", "b", "a", "c", "a"]).integer(),
        Some(3)
    );
    assert_eq!(frame(&mut conn, &["SREM", "tags", "c"]).integer(), Some(1));
    cmd(&mut conn, &["SADD", "other", "a", "z"]);
    assert_eq!(
        frame(&mut conn, &["SUNIONSTORE", "both", "tags", "other"]).integer(),
        Some(3)
    );
    cmd(&mut conn, &["SADD", "popped", "only"]);
    cmd(&mut conn, &["SPOP", "popped"]);
    let mut bigset = vec!["SADD".to_string(), "bigset".to_string()];
    bigset.extend((0..200).map(|i| format!("m{i}")));
    assert_eq!(
        frame(
            &mut conn,
            &bigset.iter().map(String::as_str).collect::<Vec<_>>()
        )
        .integer(),
        Some(200)
    );
    assert_eq!(frame(&mut conn, &["DEL", "bigset"]).integer(), Some(1));

    // Lists: pushes at both ends, pops, LSET, LINSERT, a trim, a cross-shard move.
    assert_eq!(
        frame(&mut conn, &["RPUSH", "queue", "b", "c", "d"]).integer(),
        Some(3)
    );
    assert_eq!(
        frame(&mut conn, &["LPUSH", "queue", "a", "z"]).integer(),
        Some(5)
    );
    assert_eq!(
        render(&cmd(&mut conn, &["LPOP", "queue"])),
        "$1\\r\\nz\\r\\n"
    );
    cmd(&mut conn, &["LSET", "queue", "1", "B"]);
    assert_eq!(
        frame(&mut conn, &["LINSERT", "queue", "AFTER", "B", "b2"]).integer(),
        Some(5)
    );
    cmd(&mut conn, &["LTRIM", "queue", "0", "3"]);
    cmd(&mut conn, &["RPUSH", "from", "x", "y"]);
    cmd(&mut conn, &["LMOVE", "from", "to", "LEFT", "RIGHT"]);
    let mut biglist = vec!["RPUSH".to_string(), "biglist".to_string()];
    biglist.extend((0..150).map(|i| i.to_string()));
    cmd(
        &mut conn,
        &biglist.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    cmd(&mut conn, &["DEL", "biglist"]);
    // Pops write no tombstones: popped indexes are taken again by later pushes.
    cmd(&mut conn, &["RPUSH", "q2", "1", "2", "3", "4", "5", "6"]);
    cmd(&mut conn, &["LPOP", "q2", "2"]);
    cmd(&mut conn, &["RPOP", "q2"]);
    cmd(&mut conn, &["RPUSH", "q2", "x"]);
    cmd(&mut conn, &["LPUSH", "q2", "y"]);

    // Sorted sets: adds, re-scores, an increment, removals, a cross-shard store, a big
    // deleted one.
    assert_eq!(
        frame(
            &mut conn,
            &["ZADD", "board", "1", "ann", "2", "bob", "3", "cy"]
        )
        .integer(),
        Some(3)
    );
    cmd(&mut conn, &["ZADD", "board", "XX", "5", "ann"]);
    cmd(&mut conn, &["ZINCRBY", "board", "0.5", "bob"]);
    assert_eq!(
        frame(&mut conn, &["ZREM", "board", "cy"]).integer(),
        Some(1)
    );
    cmd(&mut conn, &["ZADD", "other:z", "10", "dee"]);
    assert_eq!(
        frame(
            &mut conn,
            &["ZUNIONSTORE", "zboth", "2", "board", "other:z"]
        )
        .integer(),
        Some(3)
    );
    let mut bigz = vec!["ZADD".to_string(), "bigz".to_string()];
    for i in 0..200 {
        bigz.push(i.to_string());
        bigz.push(format!("m{i}"));
    }
    cmd(
        &mut conn,
        &bigz.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    cmd(&mut conn, &["DEL", "bigz"]);

    // A pipeline the kill cuts: whatever part survives is whole fields with their values.
    let mut pipeline = Vec::new();
    for n in 0..2000 {
        pipeline.extend(encode_command(&[
            "HSET",
            "cut",
            &format!("f{n}"),
            &n.to_string(),
        ]));
    }
    // And a queue the kill cuts: whatever survives is a whole list.
    for n in 0..1000 {
        pipeline.extend(encode_command(&["RPUSH", "cutq", &n.to_string()]));
        if n % 3 == 2 {
            pipeline.extend(encode_command(&["LPOP", "cutq"]));
        }
    }
    conn.send_raw(&pipeline).expect("send");
    server.kill9();
    server.restart();

    let mut conn = RespConn::connect(server.port()).expect("connect after restart");
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        hgetall(&mut conn, "user:1"),
        s(&[("name", "ada"), ("score", "2.5"), ("visits", "42")])
    );
    assert_eq!(hgetall(&mut conn, "big"), s(&[("only", "1")]));
    assert_eq!(hgetall(&mut conn, "dst"), s(&[("a", "1"), ("b", "2")]));
    let ttl = frame(&mut conn, &["TTL", "dst"]).integer().expect("TTL");
    assert!((900..=1000).contains(&ttl), "TTL {ttl}");
    assert_eq!(frame(&mut conn, &["EXISTS", "src"]).integer(), Some(0));
    assert_eq!(render(&cmd(&mut conn, &["TYPE", "gone"])), "+string\\r\\n");
    assert_eq!(smembers(&mut conn, "tags"), vec!["a", "b"]);
    assert_eq!(smembers(&mut conn, "both"), vec!["a", "b", "z"]);
    assert_eq!(
        frame(&mut conn, &["EXISTS", "popped", "bigset"]).integer(),
        Some(0)
    );
    assert_eq!(lrange(&mut conn, "queue"), vec!["a", "B", "b2", "c"]);
    assert_eq!(lrange(&mut conn, "q2"), vec!["y", "3", "4", "5", "x"]);
    let cutq: Vec<u64> = lrange(&mut conn, "cutq")
        .iter()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert!(
        cutq.windows(2).all(|w| w[1] == w[0] + 1),
        "a cut queue is a run of consecutive pushes: {cutq:?}"
    );
    assert_eq!(lrange(&mut conn, "from"), vec!["y"]);
    assert_eq!(lrange(&mut conn, "to"), vec!["x"]);
    assert_eq!(
        render(&cmd(
            &mut conn,
            &["ZRANGE", "board", "0", "-1", "WITHSCORES"]
        )),
        "*4\\r\\n$3\\r\\nbob\\r\\n$3\\r\\n2.5\\r\\n$3\\r\\nann\\r\\n$1\\r\\n5\\r\\n"
    );
    assert_eq!(
        render(&cmd(&mut conn, &["ZRANGE", "zboth", "0", "-1"])),
        "*3\\r\\n$3\\r\\nbob\\r\\n$3\\r\\nann\\r\\n$3\\r\\ndee\\r\\n"
    );
    assert_eq!(frame(&mut conn, &["EXISTS", "bigz"]).integer(), Some(0));
    let cut = hgetall(&mut conn, "cut");
    for (f, v) in &cut {
        assert_eq!(f, &format!("f{v}"), "field {f} has value {v}");
    }
    assert_eq!(
        frame(&mut conn, &["HLEN", "cut"]).integer(),
        Some(cut.len() as i64)
    );
    // The deleted big hash's 300 field keys, big set's 200 and big list's 150 were orphans,
    // deleted by this start.
    let orphans = orphans_deleted_at_start(&server.log());
    assert!(
        orphans >= 300,
        "orphaned fields deleted at start: {orphans}\n{}",
        server.log()
    );
}

/// The orphaned element keys the last start-up's scans deleted (summed over shards).
fn orphans_deleted_at_start(log: &str) -> usize {
    let log = strip_ansi(log);
    let last_start = log.rfind("helios listening for Redis clients").unwrap_or(0);
    log[last_start..]
        .lines()
        .filter(|l| l.contains("key index rebuilt"))
        .filter_map(|l| l.split("orphan_fields=").nth(1))
        .filter_map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// One shard, sync durability and 4 MiB memtables (a 16 MiB cache), so that a few MB of
/// writes flush and compact.
fn small_store_server() -> HeliosServer {
    HeliosServer::start(
        ServerOpts::default()
            .shards(1)
            .durability(Durability::Sync)
            .cache_size("16mb"),
    )
}

/// A counter of INFO's `# Storage` line (shard 0's), such as `compactions`; 0 if absent.
/// Writes 100 kB values under fresh keys, `batch` at a time, until INFO's storage counter
/// `name` is at least 1 or `seconds` pass; returns whether it got there and how many it wrote.
fn write_filler_until(
    conn: &mut RespConn,
    batch: usize,
    seconds: u64,
    name: &str,
) -> (bool, usize) {
    let filler = "x".repeat(100_000);
    let mut n = 0;
    let reached = helios_tests::poll_until(std::time::Duration::from_secs(seconds), || {
        for _ in 0..batch {
            cmd(conn, &["SET", &format!("filler{n}"), &filler]);
            n += 1;
        }
        storage_counter(conn, name) >= 1
    });
    (reached, n)
}

fn storage_counter(conn: &mut RespConn, name: &str) -> u64 {
    let info = String::from_utf8_lossy(&cmd(conn, &["INFO", "storage"])).into_owned();
    info.split(&format!(",{name}="))
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A queue's tables whose elements were all popped after they reached the tree are deleted
/// whole (`LsmOptions::dead_range`), without being read, and the next start finds few orphans.
#[test]
fn a_drained_queues_tables_are_deleted_whole() {
    let mut server = small_store_server();
    let mut conn = RespConn::connect(server.port()).expect("connect");
    // A queue: 6000 elements of 2 kB (12 MB, three 4 MiB memtables) pushed, then all but the
    // last 100 popped. Each flushed table of elements overlaps nothing, so it moved down the
    // tree unread; once its elements are popped, nothing would ever merge it again.
    let value = "v".repeat(2000);
    for batch in 0..60 {
        let mut rpush = vec!["RPUSH".to_string(), "q".to_string()];
        rpush.extend((0..100).map(|i| format!("{}:{value}", batch * 100 + i)));
        cmd(
            &mut conn,
            &rpush.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        frame(&mut conn, &["LPOP", "q", "5900"]).children.len(),
        5900
    );
    // Other writes, so that memtables flush and the compactor looks for dead tables.
    let (deleted, n) = write_filler_until(&mut conn, 10, 30, "dead_tables_deleted");
    assert!(
        deleted,
        "no table of popped elements deleted after {n} writes of 100 kB"
    );
    server.kill9();
    server.restart();
    let orphans = orphans_deleted_at_start(&server.log());
    assert!(
        orphans < 5900 / 2,
        "the start-up scan found {orphans} of the 5900 popped elements:\n{}",
        server.log()
    );
    let mut conn = RespConn::connect(server.port()).expect("connect after restart");
    let left: Vec<String> = (5900..6000).map(|i| format!("{i}:{value}")).collect();
    assert_eq!(lrange(&mut conn, "q"), left);
}

/// Compaction reclaims a deleted big collection's elements and a queue's popped ones: after
/// enough writes for the memtable holding them to be flushed and compacted, the next start
/// finds no orphan left.
#[test]
fn compaction_reclaims_a_deleted_collections_elements() {
    let mut server = small_store_server();
    let mut conn = RespConn::connect(server.port()).expect("connect");
    let value = "v".repeat(1000);
    let mut hset = vec!["HSET".to_string(), "big".to_string()];
    for i in 0..300 {
        hset.push(format!("f{i}"));
        hset.push(value.clone());
    }
    cmd(
        &mut conn,
        &hset.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(frame(&mut conn, &["DEL", "big"]).integer(), Some(1));
    // A queue: 300 pushed, 200 popped from both ends (no tombstones: their keys are orphans).
    let mut rpush = vec!["RPUSH".to_string(), "q".to_string()];
    rpush.extend((0..300).map(|i| format!("{i}:{value}")));
    cmd(
        &mut conn,
        &rpush.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    cmd(&mut conn, &["LPOP", "q", "120"]);
    cmd(&mut conn, &["RPOP", "q", "80"]);
    // About 24 MiB of other writes: memtables of 4 MiB flush, and level 0 is compacted.
    let (compacted, n) = write_filler_until(&mut conn, 20, 60, "compactions");
    assert!(compacted, "no compaction after {n} writes of 100 kB");
    server.kill9();
    server.restart();
    assert_eq!(
        orphans_deleted_at_start(&server.log()),
        0,
        "the start-up scan found orphans compaction should have reclaimed:\n{}",
        server.log()
    );
    let mut conn = RespConn::connect(server.port()).expect("connect after restart");
    assert_eq!(frame(&mut conn, &["EXISTS", "big"]).integer(), Some(0));
    let left: Vec<String> = (120..220).map(|i| format!("{i}:{value}")).collect();
    assert_eq!(lrange(&mut conn, "q"), left);
}

/// The log without its colour escapes (`ESC [ ... m`).
fn strip_ansi(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// redis-py (PyPI) runs tests/py/redis_py.py over strings, hashes, sets and lists in RESP2 and RESP3;
/// skipped (with a message) only when python3 is missing. tools/test.sh installs redis-py;
/// without it this fails.
#[test]
fn redis_py_program_passes() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    helios_tests::server::python_program_passes("redis_py.py", server.port(), "redis", &server);
}

/// The `redis` crate (typed commands, RESP2 and RESP3) over hashes, sets and lists, with
/// keys on both shards.
#[test]
fn redis_crate_program_over_every_collection() {
    use redis::Commands;
    use std::collections::{BTreeMap, BTreeSet};
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    for (protocol, url) in [
        ("resp2", server.url()),
        ("resp3", format!("{}?protocol=resp3", server.url())),
    ] {
        let client = redis::Client::open(url.as_str()).expect("client");
        let mut con = client
            .get_connection_with_timeout(std::time::Duration::from_secs(10))
            .expect("connect");
        let k = |name: &str| format!("{protocol}:{name}");

        // Hashes.
        let _: () = con
            .hset_multiple(k("user"), &[("name", "ada"), ("lang", "en")])
            .expect("HSET");
        let visits: i64 = con.hincr(k("user"), "visits", 3).expect("HINCRBY");
        assert_eq!(visits, 3);
        let all: BTreeMap<String, String> = con.hgetall(k("user")).expect("HGETALL");
        let want: BTreeMap<String, String> = [("name", "ada"), ("lang", "en"), ("visits", "3")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(all, want, "{protocol} HGETALL");
        let deleted: i64 = con.hdel(k("user"), "lang").expect("HDEL");
        assert_eq!(deleted, 1);
        let n: i64 = con.hlen(k("user")).expect("HLEN");
        assert_eq!(n, 2);

        // Sets, with an operation over keys on both shards.
        let _: i64 = con.sadd(k("a"), &["x", "y", "z"]).expect("SADD");
        let _: i64 = con.sadd(k("b"), &["y", "z", "w"]).expect("SADD");
        let inter: BTreeSet<String> = con.sinter(&[k("a"), k("b")]).expect("SINTER");
        assert_eq!(
            inter,
            ["y", "z"].iter().map(|s| s.to_string()).collect(),
            "{protocol} SINTER"
        );
        let stored: i64 = con
            .sunionstore(k("u"), &[k("a"), k("b")])
            .expect("SUNIONSTORE");
        assert_eq!(stored, 4);
        let is: bool = con.sismember(k("u"), "w").expect("SISMEMBER");
        assert!(is);

        // Lists, moved between keys on both shards.
        let len: i64 = con.rpush(k("q"), &["1", "2", "3"]).expect("RPUSH");
        assert_eq!(len, 3);
        let range: Vec<String> = con.lrange(k("q"), 0, -1).expect("LRANGE");
        assert_eq!(range, ["1", "2", "3"]);
        let moved: String = con
            .lmove(
                k("q"),
                k("r"),
                redis::Direction::Left,
                redis::Direction::Right,
            )
            .expect("LMOVE");
        assert_eq!(moved, "1");
        let popped: Option<String> = con.rpop(k("q"), None).expect("RPOP");
        assert_eq!(popped.as_deref(), Some("3"));
        let r: Vec<String> = con.lrange(k("r"), 0, -1).expect("LRANGE");
        assert_eq!(r, ["1"]);

        // Sorted sets, combined across both shards.
        let _: i64 = con
            .zadd_multiple(k("z1"), &[(1.0, "a"), (2.5, "b"), (3.0, "c")])
            .expect("ZADD");
        let _: i64 = con.zadd(k("z2"), "b", 10.0).expect("ZADD");
        let score: f64 = con.zincr(k("z1"), "a", 0.25).expect("ZINCRBY");
        assert_eq!(score, 1.25);
        let top: Vec<(String, f64)> = con.zrevrange_withscores(k("z1"), 0, 1).expect("ZREVRANGE");
        assert_eq!(
            top,
            [("c".to_string(), 3.0), ("b".to_string(), 2.5)],
            "{protocol}"
        );
        let by_score: Vec<String> = con
            .zrangebyscore(k("z1"), "(1.25", "+inf")
            .expect("ZRANGEBYSCORE");
        assert_eq!(by_score, ["b", "c"]);
        let rank: Option<i64> = con.zrank(k("z1"), "c").expect("ZRANK");
        assert_eq!(rank, Some(2));
        let stored: i64 = con
            .zinterstore(k("zi"), &[k("z1"), k("z2")])
            .expect("ZINTERSTORE");
        assert_eq!(stored, 1);
        let zi: Vec<(String, f64)> = con.zrange_withscores(k("zi"), 0, -1).expect("ZRANGE");
        assert_eq!(zi, [("b".to_string(), 12.5)], "{protocol} ZINTERSTORE");
        let popped: Vec<(String, f64)> = con.zpopmin(k("z1"), 1).expect("ZPOPMIN");
        assert_eq!(popped, [("a".to_string(), 1.25)], "{protocol} ZPOPMIN");
        let kinds: Vec<String> = [k("user"), k("u"), k("q"), k("z1")]
            .iter()
            .map(|key| redis::cmd("TYPE").arg(key).query(&mut con).expect("TYPE"))
            .collect();
        assert_eq!(kinds, ["hash", "set", "list", "zset"], "{protocol} TYPE");
    }
}

/// `redis-benchmark` with its default test list (no `-t`: strings, lists, sets, hashes,
/// sorted sets, LRANGE, MSET) completes against helios with no error reply.
#[test]
fn redis_benchmark_default_suite_completes_without_errors() {
    let Some(bench) = helios_tests::which("redis-benchmark") else {
        eprintln!("redis-benchmark not installed; skipping");
        return;
    };
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let out = std::process::Command::new(bench)
        .args([
            "-p",
            &server.port().to_string(),
            "-n",
            "300",
            "-c",
            "4",
            "-q",
        ])
        .output()
        .expect("run redis-benchmark");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "redis-benchmark failed:\n{text}");
    assert!(
        !text.contains("ERR") && !text.contains("Error"),
        "an error reply:\n{text}"
    );
    for test in [
        "SET",
        "LPUSH",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_600",
        "MSET",
    ] {
        assert!(
            text.contains(&format!("{test}:")) || text.contains(&format!("{test} (")),
            "{test} missing from:\n{text}"
        );
    }
}

/// SORT and SORT_RO (lists, sets, sorted sets; BY, GET, LIMIT, ALPHA, DESC, STORE; errors),
/// with keys on both shards, replied exactly as redis-server replies.
#[test]
fn sort_matches_redis() {
    let Some(redis) = helios_tests::RedisServer::try_start() else {
        return;
    };
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let script = [
        "RPUSH l 3 1 2 10",
        "SORT l",
        "SORT l DESC",
        "SORT l ALPHA",
        "SORT l LIMIT 1 2",
        "SORT l LIMIT -5 2",
        "SORT l LIMIT 10 2",
        "SORT l LIMIT 0 -1",
        "MSET w_1 30 w_2 20 w_3 10 o_1 one o_2 two",
        "HSET h_1 f x",
        "SORT l BY w_*",
        "SORT l BY w_* GET o_* GET # GET h_*->f",
        "SORT l BY nosort",
        "SORT l BY nosort DESC LIMIT 1 2",
        "SORT l BY w_* ALPHA",
        "SORT l BY w_* ALPHA DESC",
        "SADD s 5 3 9",
        "SORT s",
        "SORT s BY nosort STORE dst",
        "LRANGE dst 0 -1",
        "SORT l GET o_* STORE dst2",
        "LRANGE dst2 0 -1",
        "RPUSH bad a 1",
        "SORT bad",
        "SORT bad ALPHA",
        "ZADD z 3 a 1 b 2 c",
        "SORT z BY nosort",
        "SORT z BY nosort DESC LIMIT 0 2",
        "SORT z ALPHA",
        "SET str x",
        "SORT str",
        "SORT nope",
        "SORT nope STORE d3",
        "EXISTS d3",
        "SORT l LIMIT x 1",
        "SORT l bogus",
        "SORT_RO l STORE x",
        "SORT_RO l DESC",
    ];
    let run = |port: u16| -> Vec<String> {
        let mut conn = RespConn::connect(port).expect("connect");
        script
            .iter()
            .map(|line| {
                let args: Vec<&str> = line.split(' ').collect();
                format!("{line} -> {}", render(&cmd(&mut conn, &args)))
            })
            .collect()
    };
    assert_eq!(run(server.port()), run(redis.port()));
}
