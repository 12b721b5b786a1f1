//! The Redis front end driven by real clients: the `redis` crate and `redis-cli`.
//! Many keys are used so that, with `--shards 2`, every test touches both shards.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use helios_tests::{poll_until, redis_cli, which, HeliosServer, ServerOpts};
use redis::{Connection, Value};

/// Enough keys that both shards see many of them whatever the hash.
const KEYS_COUNT: usize = 500;

fn connect(server: &HeliosServer) -> Connection {
    let client = redis::Client::open(server.url()).expect("client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    con
}

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query(con) {
        Ok(v) => v,
        Err(e) => panic!("{args:?} failed: {e}"),
    }
}

fn key(i: usize) -> String {
    format!("key:{i}")
}

#[test]
fn strings_across_shards() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    for i in 0..KEYS_COUNT {
        let ok: String = q(&mut con, &["SET", &key(i), &format!("v{i}")]);
        assert_eq!(ok, "OK");
    }
    for i in 0..KEYS_COUNT {
        let v: Option<String> = q(&mut con, &["GET", &key(i)]);
        assert_eq!(
            v.as_deref(),
            Some(format!("v{i}").as_str()),
            "GET {}",
            key(i)
        );
    }
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, KEYS_COUNT as i64);

    // Multi-key commands spanning both shards.
    let mut args = vec!["EXISTS".to_string()];
    args.extend((0..KEYS_COUNT).map(key));
    args.push("missing".into());
    args.push(key(0)); // EXISTS counts repeats
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let n: i64 = q(&mut con, &refs);
    assert_eq!(n, KEYS_COUNT as i64 + 1);

    let mut mset = vec!["MSET".to_string()];
    for i in 0..KEYS_COUNT {
        mset.push(format!("m:{i}"));
        mset.push(format!("{i}"));
    }
    let refs: Vec<&str> = mset.iter().map(String::as_str).collect();
    let ok: String = q(&mut con, &refs);
    assert_eq!(ok, "OK");
    let mut mget = vec!["MGET".to_string()];
    mget.extend((0..KEYS_COUNT).map(|i| format!("m:{i}")));
    mget.push("nope".into());
    let refs: Vec<&str> = mget.iter().map(String::as_str).collect();
    let values: Vec<Option<String>> = q(&mut con, &refs);
    assert_eq!(values.len(), KEYS_COUNT + 1);
    for (i, v) in values[..KEYS_COUNT].iter().enumerate() {
        assert_eq!(v.as_deref(), Some(i.to_string().as_str()), "MGET m:{i}");
    }
    assert_eq!(values[KEYS_COUNT], None);

    for i in 0..KEYS_COUNT {
        let v: i64 = q(&mut con, &["INCR", &format!("m:{i}")]);
        assert_eq!(v, i as i64 + 1);
    }
    let v: i64 = q(&mut con, &["INCRBY", "m:7", "-10"]);
    assert_eq!(v, -2);

    let mut del = vec!["DEL".to_string()];
    del.extend((0..KEYS_COUNT).filter(|i| i % 2 == 0).map(key));
    del.push("missing".into());
    let refs: Vec<&str> = del.iter().map(String::as_str).collect();
    let n: i64 = q(&mut con, &refs);
    assert_eq!(n, (KEYS_COUNT / 2) as i64);
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, (KEYS_COUNT + KEYS_COUNT / 2) as i64);
    let e: i64 = q(&mut con, &["EXISTS", &key(0)]);
    assert_eq!(e, 0);
    let e: i64 = q(&mut con, &["EXISTS", &key(1)]);
    assert_eq!(e, 1);
}

#[test]
fn expiry_removes_keys() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    for i in 0..50 {
        let _: String = q(&mut con, &["SET", &format!("exp:{i}"), "x", "PX", "50"]);
    }
    let _: String = q(&mut con, &["SET", "keeper", "x"]);
    // A long expiry to read PTTL from: the PX 50 keys may be gone by the time it is asked (a
    // loaded machine can take 50 ms over the 51 round trips above).
    let _: String = q(&mut con, &["SET", "probe", "x", "PX", "600000"]);
    let ttl: i64 = q(&mut con, &["PTTL", "probe"]);
    assert!(
        (590_000..=600_000).contains(&ttl),
        "PTTL right after SET PX 600000: {ttl}"
    );
    let _: i64 = q(&mut con, &["DEL", "probe"]);
    let gone = poll_until(Duration::from_secs(5), || {
        (0..50).all(|i| q::<Option<String>>(&mut con, &["GET", &format!("exp:{i}")]).is_none())
    });
    assert!(gone, "keys set with PX 50 still readable after 5 s");
    let n: i64 = q(&mut con, &["EXISTS", "exp:3"]);
    assert_eq!(n, 0);
    let ttl: i64 = q(&mut con, &["TTL", "exp:3"]);
    assert_eq!(ttl, -2);
    let ttl: i64 = q(&mut con, &["TTL", "keeper"]);
    assert_eq!(ttl, -1);
    // Expired keys must also stop counting, once the server has noticed them (lazily or actively).
    let counted_out = poll_until(Duration::from_secs(5), || {
        q::<i64>(&mut con, &["DBSIZE"]) <= 1
    });
    let keys: Vec<String> = q(&mut con, &["KEYS", "*"]);
    assert_eq!(keys, vec!["keeper".to_string()], "KEYS lists expired keys");
    assert!(
        counted_out,
        "DBSIZE still counts expired keys 5 s after they expired"
    );
}

#[test]
fn select_isolates_databases() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut a = connect(&server);
    let mut b = connect(&server);
    let _: String = q(&mut a, &["SET", "shared", "db0"]);
    let _: String = q(&mut b, &["SELECT", "3"]);
    let v: Option<String> = q(&mut b, &["GET", "shared"]);
    assert_eq!(v, None, "db3 sees db0's key");
    let _: String = q(&mut b, &["SET", "shared", "db3"]);
    let _: String = q(&mut b, &["SET", "only3", "x"]);
    let v: Option<String> = q(&mut a, &["GET", "shared"]);
    assert_eq!(v.as_deref(), Some("db0"));
    let n: i64 = q(&mut a, &["DBSIZE"]);
    assert_eq!(n, 1);
    let n: i64 = q(&mut b, &["DBSIZE"]);
    assert_eq!(n, 2);
    let _: String = q(&mut b, &["FLUSHDB"]);
    let n: i64 = q(&mut b, &["DBSIZE"]);
    assert_eq!(n, 0);
    let v: Option<String> = q(&mut a, &["GET", "shared"]);
    assert_eq!(v.as_deref(), Some("db0"), "FLUSHDB on db3 touched db0");
    let err = redis::cmd("SELECT")
        .arg(16)
        .query::<String>(&mut a)
        .unwrap_err();
    assert!(
        err.to_string().contains("DB index is out of range"),
        "{err}"
    );
}

#[test]
fn scan_keys_dbsize_flushall() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    let mut expected = BTreeSet::new();
    for i in 0..KEYS_COUNT {
        let k = if i % 5 == 0 {
            format!("{{tag}}:{i}")
        } else {
            key(i)
        };
        let _: String = q(&mut con, &["SET", &k, "v"]);
        expected.insert(k);
    }
    // Full SCAN: every key at least once; cursor must come back to 0 within a bounded number of calls.
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) = q(&mut con, &["SCAN", &cursor, "COUNT", "37"]);
        seen.extend(batch);
        calls += 1;
        assert!(calls < 10 * KEYS_COUNT, "SCAN did not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen, expected, "SCAN missed or invented keys");

    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<String>) =
            q(&mut con, &["SCAN", &cursor, "MATCH", "{tag}*"]);
        seen.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let tagged: BTreeSet<String> = expected
        .iter()
        .filter(|k| k.starts_with("{tag}"))
        .cloned()
        .collect();
    assert_eq!(seen, tagged, "SCAN MATCH");

    let keys: Vec<String> = q(&mut con, &["KEYS", "*"]);
    assert_eq!(
        keys.len(),
        expected.len(),
        "KEYS * returned duplicates or missed keys"
    );
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), expected);
    let keys: Vec<String> = q(&mut con, &["KEYS", "key:1?"]);
    let want: BTreeSet<String> = (10..20).filter(|i| i % 5 != 0).map(key).collect();
    assert_eq!(
        keys.into_iter().collect::<BTreeSet<_>>(),
        want,
        "KEYS key:1?"
    );

    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, KEYS_COUNT as i64);
    let _: String = q(&mut con, &["SELECT", "1"]);
    let _: String = q(&mut con, &["SET", "in-db1", "v"]);
    let ok: String = q(&mut con, &["FLUSHALL"]);
    assert_eq!(ok, "OK");
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, 0);
    let _: String = q(&mut con, &["SELECT", "0"]);
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, 0, "FLUSHALL left keys in db0");
    let keys: Vec<String> = q(&mut con, &["KEYS", "*"]);
    assert!(keys.is_empty());
}

#[test]
fn hello3_and_client_name() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    let hello: Value = q(&mut con, &["HELLO", "3"]);
    let Value::Map(fields) = hello else {
        panic!("HELLO 3 did not return a map: {hello:?}")
    };
    let fields: HashMap<String, Value> = fields
        .into_iter()
        .map(|(k, v)| {
            (
                redis::from_redis_value::<String>(&k).expect("string key"),
                v,
            )
        })
        .collect();
    assert_eq!(
        fields.get("proto"),
        Some(&Value::Int(3)),
        "HELLO 3 fields: {fields:?}"
    );
    assert!(fields.contains_key("server"), "HELLO 3 fields: {fields:?}");
    // RESP3 null for a missing key.
    let v: Value = q(&mut con, &["GET", "missing"]);
    assert_eq!(v, Value::Nil);

    let name: Option<String> = q(&mut con, &["CLIENT", "GETNAME"]);
    assert_eq!(name, None);
    let ok: String = q(&mut con, &["CLIENT", "SETNAME", "tester-1"]);
    assert_eq!(ok, "OK");
    let name: Option<String> = q(&mut con, &["CLIENT", "GETNAME"]);
    assert_eq!(name.as_deref(), Some("tester-1"));
    let err = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("has space")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Client names cannot contain spaces"),
        "{err}"
    );
}

#[test]
fn pipeline_of_1000_replies_in_order() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("p:{i}")).arg(i);
        pipe.cmd("INCR").arg(format!("p:{i}"));
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 1000);
    for i in 0..500 {
        assert_eq!(replies[2 * i], Value::Okay, "reply {}", 2 * i);
        assert_eq!(
            replies[2 * i + 1],
            Value::Int(i as i64 + 1),
            "reply {}",
            2 * i + 1
        );
    }
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("GET").arg(format!("p:{}", i % 500));
    }
    let values: Vec<Option<i64>> = pipe.query(&mut con).expect("pipeline");
    for (i, v) in values.iter().enumerate() {
        assert_eq!(*v, Some((i % 500) as i64 + 1), "GET #{i}");
    }
}

/// PING and ECHO are answered where they stand in a pipeline, without waiting for the
/// commands queued before them: their replies must still come in order, between those of
/// keyed commands on both shards.
#[test]
fn ping_and_echo_keep_their_place_in_a_pipeline() {
    let server = HeliosServer::start(ServerOpts::default());
    let mut con = connect(&server);
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("INCR").arg(key(i));
        pipe.cmd("PING");
        pipe.cmd("ECHO").arg(format!("e{i}"));
        pipe.cmd("PING").arg(format!("p{i}"));
        pipe.cmd("GET").arg(key(i));
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 1000);
    for i in 0..200 {
        let r = &replies[5 * i..5 * i + 5];
        assert_eq!(r[0], Value::Int(1), "INCR #{i}");
        assert_eq!(r[1], Value::SimpleString("PONG".into()), "PING #{i}");
        assert_eq!(
            r[2],
            Value::BulkString(format!("e{i}").into_bytes()),
            "ECHO #{i}"
        );
        assert_eq!(
            r[3],
            Value::BulkString(format!("p{i}").into_bytes()),
            "PING #{i}"
        );
        assert_eq!(r[4], Value::BulkString(b"1".to_vec()), "GET #{i}");
    }
}

#[test]
fn data_survives_sigterm_restart() {
    let mut server = HeliosServer::start(ServerOpts::default());
    {
        let mut con = connect(&server);
        for i in 0..KEYS_COUNT {
            let _: String = q(&mut con, &["SET", &key(i), &i.to_string()]);
        }
        let _: String = q(&mut con, &["SET", "with-ttl", "x", "EX", "100000"]);
        let _: i64 = q(&mut con, &["DEL", &key(3)]);
        let _: i64 = q(&mut con, &["INCRBY", &key(4), "100"]);
        let _: String = q(&mut con, &["SELECT", "2"]);
        let _: String = q(&mut con, &["SET", "db2key", "y"]);
    }
    server.terminate();
    server.restart();
    let mut con = connect(&server);
    for i in 0..KEYS_COUNT {
        let v: Option<i64> = q(&mut con, &["GET", &key(i)]);
        let want = match i {
            3 => None,
            4 => Some(104),
            _ => Some(i as i64),
        };
        assert_eq!(v, want, "{} after restart", key(i));
    }
    let ttl: i64 = q(&mut con, &["TTL", "with-ttl"]);
    assert!(ttl > 99_000 && ttl <= 100_000, "TTL after restart: {ttl}");
    let n: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(n, KEYS_COUNT as i64);
    let _: String = q(&mut con, &["SELECT", "2"]);
    let v: Option<String> = q(&mut con, &["GET", "db2key"]);
    assert_eq!(v.as_deref(), Some("y"));
}

fn have_redis_cli() -> bool {
    if which("redis-cli").is_some() {
        return true;
    }
    eprintln!("SKIPPED: redis-cli is not installed (tools/test.sh installs it)");
    false
}

#[test]
fn redis_cli_set_get_info_command() {
    if !have_redis_cli() {
        return;
    }
    let server = HeliosServer::start(ServerOpts::default());
    let port = server.port();
    let (ok, out, err) = redis_cli(port, &["set", "a", "b"], None);
    assert!(ok, "redis-cli set: {err}");
    assert_eq!(out.trim_end(), "OK");
    let (ok, out, err) = redis_cli(port, &["get", "a"], None);
    assert!(ok, "redis-cli get: {err}");
    assert_eq!(out.trim_end(), "b");
    let (ok, out, err) = redis_cli(port, &["COMMAND", "COUNT"], None);
    assert!(ok, "redis-cli COMMAND COUNT: {err}");
    let count: i64 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("COMMAND COUNT output: {out:?}"));
    assert!(
        count >= 50,
        "COMMAND COUNT = {count}, fewer than the commands helios supports"
    );
    let (ok, out, err) = redis_cli(port, &["INFO", "keyspace"], None);
    assert!(ok, "redis-cli INFO keyspace: {err}");
    assert!(out.contains("# Keyspace"), "INFO keyspace: {out:?}");
    assert!(out.contains("db0:keys=1,"), "INFO keyspace: {out:?}");
}

#[test]
fn redis_cli_pipe_mass_insert() {
    if !have_redis_cli() {
        return;
    }
    const INSERTS: usize = 10_000;
    let server = HeliosServer::start(ServerOpts::default());
    let mut input = Vec::new();
    for i in 0..INSERTS {
        input.extend(helios_tests::resp::encode_command(&[
            "SET",
            &format!("mass:{i}"),
            &format!("{i}"),
        ]));
    }
    let (ok, out, err) = redis_cli(server.port(), &["--pipe"], Some(&input));
    assert!(ok, "redis-cli --pipe failed:\n{out}\n{err}");
    assert!(
        out.contains(&format!("errors: 0, replies: {INSERTS}")),
        "redis-cli --pipe: {out}"
    );
    let (ok, out, _) = redis_cli(server.port(), &["DBSIZE"], None);
    assert!(ok);
    assert_eq!(out.trim(), INSERTS.to_string());
    let (_, out, _) = redis_cli(server.port(), &["GET", "mass:9999"], None);
    assert_eq!(out.trim_end(), "9999");
}

/// Commands pipelined after QUIT are neither run nor answered, as in Redis.
#[test]
fn quit_ends_the_pipeline() {
    use std::io::{Read, Write};
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .write_all(b"SET before 1\r\nQUIT\r\nSET after 2\r\n")
        .unwrap();
    let mut replies = Vec::new();
    stream.read_to_end(&mut replies).unwrap();
    assert_eq!(replies, b"+OK\r\n+OK\r\n");
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let (before, after): (Option<String>, Option<String>) = redis::pipe()
        .get("before")
        .get("after")
        .query(&mut conn)
        .unwrap();
    assert_eq!((before.as_deref(), after), (Some("1"), None));
}

/// SIGTERM with idle clients still connected (on both shards): the server closes them, syncs
/// and exits 0, and the writes they made are there after the restart.
#[test]
fn sigterm_with_idle_clients_exits_cleanly() {
    let mut server = HeliosServer::start(ServerOpts::default().shards(2));
    let mut idle: Vec<Connection> = (0..6)
        .map(|_| {
            redis::Client::open(server.url())
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect();
    for (i, conn) in idle.iter_mut().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(format!("idle:{i}"))
            .arg(i)
            .query(conn)
            .unwrap();
    }
    server.terminate();
    drop(idle);
    server.restart();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for i in 0..6 {
        let value: Option<i64> = redis::cmd("GET")
            .arg(format!("idle:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(value, Some(i as i64));
    }
}

/// A client that pipelines large values faster than the shard can log them is slowed down by
/// TCP flow control (the shard stops receiving while its inbox is full), never disconnected,
/// and every write is acknowledged and kept.
#[test]
fn large_pipelined_values_are_all_acknowledged() {
    use std::io::{Read, Write};
    const VALUES: usize = 12;
    const VALUE_BYTES: usize = 8 << 20;
    let mut server = HeliosServer::start(ServerOpts::default().shards(1));
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let value = vec![b'v'; VALUE_BYTES];
        for i in 0..VALUES {
            let key = format!("big:{i}");
            let header = format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${VALUE_BYTES}\r\n",
                key.len()
            );
            writer.write_all(header.as_bytes()).unwrap();
            writer.write_all(&value).unwrap();
            writer.write_all(b"\r\n").unwrap();
        }
    });
    let mut replies = Vec::new();
    let mut reader = stream;
    while replies.len() < VALUES * 5 {
        let mut chunk = [0u8; 256];
        let n = reader.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&replies)
        );
        replies.extend_from_slice(&chunk[..n]);
    }
    sender.join().unwrap();
    assert_eq!(replies, b"+OK\r\n".repeat(VALUES));
    server.terminate();
    server.restart();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    for i in 0..VALUES {
        let len: usize = redis::cmd("STRLEN")
            .arg(format!("big:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(len, VALUE_BYTES);
    }
}

/// `maxmemory` with Redis's `noeviction` behaviour: above the limit, commands that may grow
/// the data fail with Redis's OOM error; reads and deletes still work, and writes work again
/// once deletes bring the data under the limit.
#[test]
fn maxmemory_refuses_growing_writes_until_data_is_deleted() {
    let server = HeliosServer::start(
        ServerOpts::default()
            .shards(2)
            .config("maxmemory = \"2MB\""),
    );
    let mut con = connect(&server);
    let configured: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxmemory"]);
    assert_eq!(configured, ["maxmemory", "2097152"]);
    let ok: String = q(&mut con, &["CONFIG", "SET", "maxmemory", "200kb"]);
    assert_eq!(ok, "OK");
    let value = "x".repeat(1000);
    let mut refused_at = None;
    for i in 0..1000 {
        let r: redis::RedisResult<String> =
            redis::cmd("SET").arg(key(i)).arg(&value).query(&mut con);
        if let Err(e) = r {
            assert_eq!(e.code(), Some("OOM"), "{e}");
            assert!(
                e.to_string()
                    .contains("command not allowed when used memory > 'maxmemory'"),
                "{e}"
            );
            refused_at = Some(i);
            break;
        }
    }
    let refused_at = refused_at.expect("SETs are refused once 200kb are used");
    assert!(
        (150..=260).contains(&refused_at),
        "refused after {refused_at} SETs of 1 KB"
    );
    // Other growing commands are refused too; reads and deletes are not.
    let r: redis::RedisResult<i64> = redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .query(&mut con);
    assert!(r.is_err(), "HSET over maxmemory");
    let v: Option<String> = q(&mut con, &["GET", &key(0)]);
    assert_eq!(v.as_deref(), Some(value.as_str()));
    let mut del = vec!["DEL".to_string()];
    del.extend((0..refused_at).map(key));
    let args: Vec<&str> = del.iter().map(String::as_str).collect();
    let deleted: i64 = q(&mut con, &args);
    assert_eq!(deleted, refused_at as i64);
    // Every shard sees the freed memory after its next batch.
    assert!(poll_until(Duration::from_secs(10), || {
        redis::cmd("SET")
            .arg("after")
            .arg("1")
            .query::<String>(&mut con)
            .is_ok()
    }));
    let info: String = q(&mut con, &["INFO", "memory"]);
    assert!(info.contains("maxmemory:204800"), "{info}");
}

/// requirepass and AUTH with Redis's replies: NOAUTH before AUTH (but AUTH, HELLO and QUIT
/// run), WRONGPASS for a wrong password or user, HELLO AUTH, the `redis` crate with a
/// password in its URL, and CONFIG SET requirepass at run time.
#[test]
fn requirepass_auth_and_hello() {
    let server = HeliosServer::start(ServerOpts::default().config("requirepass = \"s3cret\""));
    let mut con = connect_raw(&server);
    let reply = |con: &mut helios_tests::RespConn, args: &[&str]| {
        helios_tests::render(&con.cmd(args).expect("reply"))
    };
    assert_eq!(
        reply(&mut con, &["PING"]),
        "-NOAUTH Authentication required.\\r\\n"
    );
    assert_eq!(
        reply(&mut con, &["GET", "k"]),
        "-NOAUTH Authentication required.\\r\\n"
    );
    assert!(reply(&mut con, &["HELLO", "3"]).starts_with("-NOAUTH HELLO must be called"));
    assert_eq!(
        reply(&mut con, &["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\\r\\n"
    );
    assert_eq!(
        reply(&mut con, &["AUTH", "bob", "s3cret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\\r\\n"
    );
    assert_eq!(reply(&mut con, &["AUTH", "s3cret"]), "+OK\\r\\n");
    assert_eq!(reply(&mut con, &["PING"]), "+PONG\\r\\n");
    // HELLO AUTH authenticates a new connection and switches protocol at once.
    let mut other = connect_raw(&server);
    assert!(reply(&mut other, &["HELLO", "3", "AUTH", "default", "s3cret"]).starts_with("%"));
    assert_eq!(reply(&mut other, &["PING"]), "+PONG\\r\\n");
    // The redis crate, with the password in its URL.
    let url = format!("redis://:s3cret@127.0.0.1:{}/", server.port());
    let mut typed = redis::Client::open(url.as_str())
        .expect("client")
        .get_connection()
        .expect("connect with a password");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut typed)
        .expect("SET");
    // Removing the password lets new connections in; setting one again shuts them out.
    assert_eq!(
        reply(&mut con, &["CONFIG", "SET", "requirepass", ""]),
        "+OK\\r\\n"
    );
    let mut open = connect_raw(&server);
    assert_eq!(reply(&mut open, &["GET", "k"]), "$1\\r\\nv\\r\\n");
    assert_eq!(
        reply(&mut open, &["AUTH", "x"]),
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\\r\\n"
    );
    assert_eq!(
        reply(&mut con, &["CONFIG", "SET", "requirepass", "new"]),
        "+OK\\r\\n"
    );
    let mut late = connect_raw(&server);
    assert_eq!(
        reply(&mut late, &["PING"]),
        "-NOAUTH Authentication required.\\r\\n"
    );
    // A connection authenticated before keeps its session, as in Redis.
    assert_eq!(reply(&mut open, &["PING"]), "+PONG\\r\\n");
}

fn connect_raw(server: &HeliosServer) -> helios_tests::RespConn {
    helios_tests::RespConn::connect(server.port()).expect("connect")
}

/// This host's address on a non-loopback interface (the default route's), if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Protected mode: with no password, a client from a non-loopback address gets Redis's
/// DENIED message and is disconnected, until protected mode is turned off or a password is
/// set. Skipped (with a message) on a host without a non-loopback interface.
#[test]
fn protected_mode_refuses_remote_clients_without_a_password() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback interface: skipping the protected-mode test");
        return;
    };
    let server = HeliosServer::start(ServerOpts {
        bind_any: true,
        ..ServerOpts::default()
    });
    let remote_ping = || -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect((ip, server.port())).expect("connect remotely");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"PING\r\n").expect("send");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !out.ends_with(b"\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let denied = remote_ping();
    assert!(
        denied.starts_with("-DENIED Redis is running in protected mode"),
        "{denied}"
    );
    let mut local = connect_raw(&server);
    assert_eq!(local.cmd(&["PING"]).expect("local PING"), b"+PONG\r\n");
    local
        .cmd(&["CONFIG", "SET", "protected-mode", "no"])
        .expect("CONFIG SET");
    assert_eq!(remote_ping(), "+PONG\r\n");
    local
        .cmd(&["CONFIG", "SET", "protected-mode", "yes"])
        .expect("CONFIG SET");
    local
        .cmd(&["CONFIG", "SET", "requirepass", "pw"])
        .expect("CONFIG SET");
    assert_eq!(remote_ping(), "-NOAUTH Authentication required.\r\n");
}
