//! Command tests. Expected replies were checked against redis-server 7.0.
//!
//! `differential_against_redis` replays random command sequences against a live redis-server
//! when `HELIOS_DIFF_REDIS=host:port` is set (start one with
//! `redis-server --port 7778 --save '' --appendonly no`), comparing RESP2 bytes.

use super::*;
use helios_engine::keyspace::Keyspace;
use proptest::prelude::*;

struct Shard {
    ks: Keyspace,
    log: Vec<u8>,
    now_ms: u64,
    db: u8,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            ks: Keyspace::new(),
            log: Vec::new(),
            now_ms: 1_700_000_000_000,
            db: 0,
        }
    }

    fn run_args(&mut self, args: Vec<Bytes>) -> Reply {
        let cmd = Command::new(args);
        let mut ctx = ExecCtx {
            ks: &mut self.ks,
            db: self.db,
            now_ms: self.now_ms,
            log: Some(&mut self.log),
        };
        exec_local(&mut ctx, &cmd)
    }

    fn run(&mut self, line: &str) -> Reply {
        self.run_args(
            line.split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
        )
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn error(s: &str) -> Reply {
    Reply::Error(Cow::Owned(s.to_string()))
}

fn status(s: &str) -> Reply {
    Reply::Status(Cow::Owned(s.to_string()))
}

/// Runs `line` and checks the reply.
fn check(shard: &mut Shard, line: &str, want: Reply) {
    assert_eq!(shard.run(line), want, "{line}");
}

#[test]
fn table_is_sorted_and_looked_up_case_insensitively() {
    for pair in all().windows(2) {
        assert!(
            pair[0].name < pair[1].name,
            "{} before {}",
            pair[0].name,
            pair[1].name
        );
    }
    assert_eq!(all().len(), 158);
    assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
    assert_eq!(
        lookup(b"ZREMRANGEBYSCORE").map(|s| s.name),
        Some("zremrangebyscore"),
        "names over 15 bytes"
    );
    for spec in all() {
        let upper = spec.name.to_ascii_uppercase();
        assert_eq!(lookup(upper.as_bytes()).map(|s| s.name), Some(spec.name));
        assert_eq!(
            lookup(format!("{}\0", spec.name).as_bytes()).map(|s| s.name),
            None
        );
    }
    assert_eq!(lookup(b"getx").map(|s| s.name), None);
    assert_eq!(lookup(b"").map(|s| s.name), None);
    let set = lookup(b"SET").unwrap();
    assert_eq!(
        (set.arity, set.first_key, set.last_key, set.step),
        (-3, 1, 1, 1)
    );
    assert_eq!(set.flags, &["write", "denyoom"]);
    let mset = lookup(b"mset").unwrap();
    assert_eq!(mset.kind, CommandKind::MultiKey { merge: Merge::Ok });
    assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(
        lookup(b"del").unwrap().key_positions(4).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        lookup(b"rename")
            .unwrap()
            .key_positions(3)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(lookup(b"ping").unwrap().key_positions(3).count(), 0);
    assert_eq!(lookup(b"ping").unwrap().kind, CommandKind::Connection);
    assert!(lookup(b"set").unwrap().arity_ok(3));
    assert!(!lookup(b"get").unwrap().arity_ok(3));
    for spec in all() {
        // Movable keys (SINTERCARD) are found by the router's `keys_of`.
        let keyed = spec.first_key > 0
            || spec.has_flag("movablekeys")
            || super::movable_key_positions(spec.name, &[]).is_some();
        let runs_local = spec.exec.is_some();
        match spec.kind {
            // WATCH names keys (COMMAND INFO says so) but is run by the connection.
            CommandKind::Connection => {
                // So do the blocking commands (`server::blocking`).
                let blocking = spec.has_flag("blocking");
                assert!(
                    !runs_local
                        && (!keyed
                            || ["watch", "sort", "sort_ro"].contains(&spec.name)
                            || blocking),
                    "{}",
                    spec.name
                )
            }
            CommandKind::SingleKey | CommandKind::MultiKey { .. } => {
                assert!(runs_local && keyed, "{}", spec.name)
            }
            CommandKind::AllShards { .. } => assert!(!keyed, "{}", spec.name),
        }
        assert!(matches!(command_docs(spec), Reply::Map(ref m) if m.len() >= 4));
        assert!(matches!(command_info(spec), Reply::Array(ref a) if a.len() == 10));
    }
}

#[test]
fn unknown_command_text() {
    let cmd = |args: &[&str]| {
        Command::new(
            args.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
        )
    };
    assert_eq!(
        unknown_command(&cmd(&["foo", "a", "b"])),
        error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        unknown_command(&cmd(&["FoO"])),
        error("ERR unknown command 'FoO', with args beginning with: ")
    );
    assert_eq!(
        unknown_command(&cmd(&["x\r\ny", "a\nb"])),
        error("ERR unknown command 'x  y', with args beginning with: 'a b' ")
    );
    let long = "z".repeat(200);
    let r = unknown_command(&cmd(&["f", &long, "next"]));
    assert_eq!(
        r,
        error(&format!(
            "ERR unknown command 'f', with args beginning with: '{}' ",
            "z".repeat(128)
        ))
    );
    let mut sh = Shard::new();
    check(
        &mut sh,
        "nosuch 1",
        error("ERR unknown command 'nosuch', with args beginning with: '1' "),
    );
    check(
        &mut sh,
        "get",
        error("ERR wrong number of arguments for 'get' command"),
    );
    check(
        &mut sh,
        "mset a",
        error("ERR wrong number of arguments for 'mset' command"),
    );
    check(
        &mut sh,
        "mset a 1 b",
        error("ERR wrong number of arguments for 'mset' command"),
    );
    assert!(sh.run("ping").is_error());
    assert!(sh.log.is_empty());
}

#[test]
fn set_options_and_errors() {
    let mut sh = Shard::new();
    check(&mut sh, "set k v", Reply::Ok);
    check(&mut sh, "get k", bulk("v"));
    check(&mut sh, "set k v2 nx", Reply::Null);
    check(&mut sh, "set k v2 xx get", bulk("v"));
    check(&mut sh, "set n v xx", Reply::Null);
    check(&mut sh, "set n v nx get", Reply::Null);
    check(&mut sh, "get n", bulk("v"));
    check(&mut sh, "set k v nx xx", error("ERR syntax error"));
    check(&mut sh, "set k v ex 10 px 10", error("ERR syntax error"));
    check(&mut sh, "set k v ex 10 keepttl", error("ERR syntax error"));
    check(&mut sh, "set k v ex", error("ERR syntax error"));
    check(&mut sh, "set k v persist", error("ERR syntax error"));
    check(
        &mut sh,
        "set k v ex abc",
        error("ERR value is not an integer or out of range"),
    );
    check(&mut sh, "set k v ex abc nx xx", error("ERR syntax error"));
    check(
        &mut sh,
        "set k v ex 0",
        error("ERR invalid expire time in 'set' command"),
    );
    check(
        &mut sh,
        "set k v px -5",
        error("ERR invalid expire time in 'set' command"),
    );
    check(
        &mut sh,
        "set k v ex 9223372036854776",
        error("ERR invalid expire time in 'set' command"),
    );
    check(
        &mut sh,
        "set k v px 9223372036854775807",
        error("ERR invalid expire time in 'set' command"),
    );
    check(&mut sh, "set k v ex 10 ex 20", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(20));
    check(&mut sh, "set k v keepttl", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(20));
    check(&mut sh, "set k v", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(-1));
    check(&mut sh, "set k v PXAT 1700000005000", Reply::Ok);
    check(&mut sh, "pttl k", Reply::Int(5000));
    check(&mut sh, "set k v EXAT 1700000001", Reply::Ok);
    check(&mut sh, "pexpiretime k", Reply::Int(1_700_000_001_000));
    // An absolute time in the past stores a key that is already gone.
    check(&mut sh, "set k v exat 1", Reply::Ok);
    check(&mut sh, "get k", Reply::Null);
    check(&mut sh, "setnx k a", Reply::Int(1));
    check(&mut sh, "setnx k b", Reply::Int(0));
    check(
        &mut sh,
        "setex k 0 v",
        error("ERR invalid expire time in 'setex' command"),
    );
    check(
        &mut sh,
        "psetex k -1 v",
        error("ERR invalid expire time in 'psetex' command"),
    );
    check(&mut sh, "setex k 100 v", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(100));
    check(&mut sh, "psetex k 1500 v", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(2));
    check(&mut sh, "pttl k", Reply::Int(1500));
    check(&mut sh, "getset k new", bulk("v"));
    check(&mut sh, "ttl k", Reply::Int(-1));
    check(&mut sh, "getset nokey x", Reply::Null);
    check(&mut sh, "getdel k", bulk("new"));
    check(&mut sh, "getdel k", Reply::Null);
}

#[test]
fn getex_options() {
    let mut sh = Shard::new();
    check(&mut sh, "getex nokey ex abc", Reply::Null);
    check(&mut sh, "getex nokey nx", error("ERR syntax error"));
    check(&mut sh, "set k v", Reply::Ok);
    check(&mut sh, "getex k ex 10", bulk("v"));
    check(&mut sh, "ttl k", Reply::Int(10));
    check(&mut sh, "getex k persist", bulk("v"));
    check(&mut sh, "ttl k", Reply::Int(-1));
    check(&mut sh, "getex k persist ex 10", error("ERR syntax error"));
    check(&mut sh, "getex k keepttl", error("ERR syntax error"));
    check(
        &mut sh,
        "getex k ex 0",
        error("ERR invalid expire time in 'getex' command"),
    );
    check(
        &mut sh,
        "getex k ex x",
        error("ERR value is not an integer or out of range"),
    );
    check(&mut sh, "getex k px 100 px 200", bulk("v"));
    check(&mut sh, "pttl k", Reply::Int(200));
    check(&mut sh, "getex k pxat 1", bulk("v"));
    check(&mut sh, "exists k", Reply::Int(0));
}

#[test]
fn counters() {
    let mut sh = Shard::new();
    check(&mut sh, "incr c", Reply::Int(1));
    check(&mut sh, "incrby c 10", Reply::Int(11));
    check(&mut sh, "decr c", Reply::Int(10));
    check(&mut sh, "decrby c -5", Reply::Int(15));
    check(
        &mut sh,
        "incrby c x",
        error("ERR value is not an integer or out of range"),
    );
    check(
        &mut sh,
        "incrby c 01",
        error("ERR value is not an integer or out of range"),
    );
    check(
        &mut sh,
        "decrby c -9223372036854775808",
        error("ERR decrement would overflow"),
    );
    check(&mut sh, "set c 9223372036854775807", Reply::Ok);
    check(
        &mut sh,
        "incr c",
        error("ERR increment or decrement would overflow"),
    );
    check(&mut sh, "set c -9223372036854775808", Reply::Ok);
    check(
        &mut sh,
        "decr c",
        error("ERR increment or decrement would overflow"),
    );
    check(&mut sh, "set c abc", Reply::Ok);
    check(
        &mut sh,
        "incr c",
        error("ERR value is not an integer or out of range"),
    );
    check(&mut sh, "set c 5 ex 100", Reply::Ok);
    check(&mut sh, "incr c", Reply::Int(6));
    check(&mut sh, "ttl c", Reply::Int(100));
    check(&mut sh, "incrbyfloat c 0.5", bulk("6.5"));
    check(&mut sh, "ttl c", Reply::Int(100));
    check(&mut sh, "incrbyfloat f 0.1", bulk("0.1"));
    check(&mut sh, "incrbyfloat f 0.2", bulk("0.3"));
    check(&mut sh, "incrbyfloat f 1e20", bulk("100000000000000000000"));
    check(
        &mut sh,
        "incrbyfloat f abc",
        error("ERR value is not a valid float"),
    );
    check(
        &mut sh,
        "incrbyfloat f inf",
        error("ERR increment would produce NaN or Infinity"),
    );
    check(&mut sh, "set f abc", Reply::Ok);
    check(
        &mut sh,
        "incrbyfloat f 1",
        error("ERR value is not a valid float"),
    );
    check(
        &mut sh,
        "incr f",
        error("ERR value is not an integer or out of range"),
    );
}

#[test]
fn incrbyfloat_digits_match_redis() {
    // (stored value, increment, reply) from redis-server 7.0.15 on x86-64.
    let cases: &[(&str, &str, &str)] = &[
        ("0", "0.1", "0.1"),
        ("0.1", "0.2", "0.3"),
        ("10.5", "-10.5", "0"),
        ("-1", "0.5", "-0.5"),
        ("0", "-1e-30", "0"),
        ("3.0e3", "1", "3001"),
        ("5", ".5", "5.5"),
        ("5", "5.", "10"),
        ("0", "+1", "1"),
        ("0", "1e-4940", "0"),
        ("0", "3.3333333333333333333333", "3.33333333333333333"),
        ("1e300", "1", "1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144"),
        ("0.1", "0.7", "0.8"),
        ("1e-17", "0", "0.00000000000000001"),
        ("1.5e-17", "0", "0.00000000000000002"),
        ("2.5e-17", "0", "0.00000000000000002"),
        ("123456789.123456789", "0.000000001", "123456789.12345678999554366"),
        ("0", "-0", "0"),
        ("0", "0x1.8p1", "3"),
        ("0", "0x.8", "0.5"),
        ("0", "1E+2", "100"),
        ("0", "9e-18", "0.00000000000000001"),
        ("0", "5e-18", "0"),
        ("1.1", "2.2", "3.3"),
    ];
    let mut sh = Shard::new();
    for (value, incr, want) in cases {
        sh.run_args(vec![bulk_b("set"), bulk_b("k"), bulk_b(value)]);
        let got = sh.run_args(vec![bulk_b("incrbyfloat"), bulk_b("k"), bulk_b(incr)]);
        assert_eq!(got, bulk(want), "{value} + {incr}");
    }
    sh.run("set k 0");
    let r = sh.run("incrbyfloat k 1e4000");
    let Reply::Bulk(b) = r else { panic!("{r:?}") };
    assert!(b.starts_with(b"9999999999999999999965463873099623784932492583506957631301508333043"));
    assert_eq!(b.len(), 4000);
}

fn bulk_b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn append_strlen_ranges() {
    let mut sh = Shard::new();
    check(&mut sh, "append a hello", Reply::Int(5));
    check(&mut sh, "append a _world", Reply::Int(11));
    check(&mut sh, "strlen a", Reply::Int(11));
    check(&mut sh, "strlen nokey", Reply::Int(0));
    check(&mut sh, "getrange a 0 4", bulk("hello"));
    check(&mut sh, "getrange a -5 -1", bulk("world"));
    check(&mut sh, "getrange a -1 -5", bulk(""));
    check(&mut sh, "getrange a 5 3", bulk(""));
    check(&mut sh, "getrange a -100 100", bulk("hello_world"));
    check(&mut sh, "getrange a 0 -100", bulk("h"));
    check(
        &mut sh,
        "getrange a -9223372036854775808 9223372036854775807",
        bulk("hello_world"),
    );
    check(&mut sh, "getrange nokey 0 -1", bulk(""));
    check(
        &mut sh,
        "getrange a x 1",
        error("ERR value is not an integer or out of range"),
    );
    check(&mut sh, "setrange a 6 WORLD", Reply::Int(11));
    check(&mut sh, "get a", bulk("hello_WORLD"));
    check(&mut sh, "setrange a 13 !", Reply::Int(14));
    check(
        &mut sh,
        "getrange a 11 13",
        Reply::Bulk(Bytes::from_static(b"\0\0!")),
    );
    check(
        &mut sh,
        "setrange a -1 x",
        error("ERR offset is out of range"),
    );
    check(
        &mut sh,
        "setrange a 536870912 x",
        error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    );
    check(&mut sh, "setrange a 536870911 x", Reply::Int(536_870_912));
    check(
        &mut sh,
        "append a x",
        error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    );
    check(&mut sh, "del a", Reply::Int(1));
    let log_len = sh.log.len();
    check(&mut sh, "setrange nokey 5 ", Reply::Int(0));
    check(&mut sh, "setrange b 2 xy", Reply::Int(4));
    check(&mut sh, "get b", Reply::Bulk(Bytes::from_static(b"\0\0xy")));
    check(&mut sh, "setrange b 0 ", Reply::Int(4));
    check(&mut sh, "exists nokey", Reply::Int(0));
    assert!(sh.log.len() > log_len);
}

#[test]
fn multi_key_commands() {
    let mut sh = Shard::new();
    check(&mut sh, "mset a 1 b 2", Reply::Ok);
    check(
        &mut sh,
        "mget a b c",
        Reply::Array(vec![bulk("1"), bulk("2"), Reply::Null]),
    );
    check(&mut sh, "msetnx c 3 a 9", Reply::Int(0));
    check(&mut sh, "get c", Reply::Null);
    check(&mut sh, "msetnx c 3 d 4 c 5", Reply::Int(1));
    check(&mut sh, "get c", bulk("5"));
    check(&mut sh, "exists a a nokey b", Reply::Int(3));
    check(&mut sh, "touch a nokey", Reply::Int(1));
    check(&mut sh, "del a a b nokey", Reply::Int(2));
    check(&mut sh, "unlink c d", Reply::Int(2));
    check(&mut sh, "dbsize", Reply::Int(0));
}

#[test]
fn expire_family() {
    let mut sh = Shard::new();
    check(&mut sh, "expire nokey 10", Reply::Int(0));
    check(&mut sh, "set k v", Reply::Ok);
    check(&mut sh, "ttl k", Reply::Int(-1));
    check(&mut sh, "ttl nokey", Reply::Int(-2));
    check(&mut sh, "expire k 10 xx", Reply::Int(0));
    check(&mut sh, "expire k 10 gt", Reply::Int(0));
    check(&mut sh, "expire k 10 lt", Reply::Int(1));
    check(&mut sh, "expire k 20 nx", Reply::Int(0));
    check(&mut sh, "expire k 20 gt", Reply::Int(1));
    check(&mut sh, "expire k 15 gt", Reply::Int(0));
    check(&mut sh, "expire k 30 lt", Reply::Int(0));
    check(&mut sh, "expire k 15 LT xx", Reply::Int(1));
    check(&mut sh, "ttl k", Reply::Int(15));
    check(&mut sh, "expiretime k", Reply::Int(1_700_000_015));
    check(&mut sh, "pexpire k 1234", Reply::Int(1));
    check(&mut sh, "pttl k", Reply::Int(1234));
    check(&mut sh, "ttl k", Reply::Int(1));
    check(&mut sh, "pexpire k 1500", Reply::Int(1));
    check(&mut sh, "ttl k", Reply::Int(2));
    check(&mut sh, "expireat k 1800000000", Reply::Int(1));
    check(&mut sh, "pexpiretime k", Reply::Int(1_800_000_000_000));
    check(&mut sh, "pexpireat k 1800000000123", Reply::Int(1));
    check(&mut sh, "expiretime k", Reply::Int(1_800_000_000));
    check(&mut sh, "persist k", Reply::Int(1));
    check(&mut sh, "persist k", Reply::Int(0));
    check(&mut sh, "persist nokey", Reply::Int(0));
    check(&mut sh, "expiretime k", Reply::Int(-1));
    check(
        &mut sh,
        "expire k 10 nx xx",
        error("ERR NX and XX, GT or LT options at the same time are not compatible"),
    );
    check(
        &mut sh,
        "expire k 10 gt lt",
        error("ERR GT and LT options at the same time are not compatible"),
    );
    check(
        &mut sh,
        "expire k abc foo",
        error("ERR Unsupported option foo"),
    );
    check(
        &mut sh,
        "expire k abc",
        error("ERR value is not an integer or out of range"),
    );
    check(
        &mut sh,
        "expire k 9223372036854776",
        error("ERR invalid expire time in 'expire' command"),
    );
    check(
        &mut sh,
        "pexpire k 9223372036854775807",
        error("ERR invalid expire time in 'pexpire' command"),
    );
    check(&mut sh, "pexpireat k 9223372036854775807", Reply::Int(1));
    check(&mut sh, "expiretime k", Reply::Int(9_223_372_036_854_776));
    check(
        &mut sh,
        "expireat k -9223372036854776",
        error("ERR invalid expire time in 'expireat' command"),
    );
    // A time in the past deletes the key.
    check(&mut sh, "expire k -1", Reply::Int(1));
    check(&mut sh, "exists k", Reply::Int(0));
    check(&mut sh, "set k v", Reply::Ok);
    check(&mut sh, "pexpireat k 1700000000000", Reply::Int(1));
    check(&mut sh, "exists k", Reply::Int(0));
    // Expiry is lazy: a key is alive at exactly its expiry time.
    check(&mut sh, "set k v px 100", Reply::Ok);
    sh.now_ms += 100;
    check(&mut sh, "pttl k", Reply::Int(0));
    check(&mut sh, "ttl k", Reply::Int(0));
    sh.now_ms += 1;
    check(&mut sh, "pttl k", Reply::Int(-2));
}

#[test]
fn type_rename_keys_flush_random() {
    let mut sh = Shard::new();
    check(&mut sh, "type k", status("none"));
    check(&mut sh, "set k v ex 100", Reply::Ok);
    check(&mut sh, "type k", status("string"));
    check(&mut sh, "rename nokey x", error("ERR no such key"));
    check(&mut sh, "renamenx nokey x", error("ERR no such key"));
    check(&mut sh, "rename k k", Reply::Ok);
    check(&mut sh, "renamenx k k", Reply::Int(0));
    check(&mut sh, "rename k k2", Reply::Ok);
    check(&mut sh, "ttl k2", Reply::Int(100));
    check(&mut sh, "exists k", Reply::Int(0));
    check(&mut sh, "set k3 x", Reply::Ok);
    check(&mut sh, "renamenx k2 k3", Reply::Int(0));
    check(&mut sh, "renamenx k2 k4", Reply::Int(1));
    check(&mut sh, "rename k4 k3", Reply::Ok);
    check(&mut sh, "get k3", bulk("v"));
    check(&mut sh, "ttl k3", Reply::Int(100));
    check(&mut sh, "mset h1 a h2 b hx c", Reply::Ok);
    let Reply::Array(mut keys) = sh.run("keys h?") else {
        panic!()
    };
    keys.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(keys, vec![bulk("h1"), bulk("h2"), bulk("hx")]);
    let Reply::Array(keys) = sh.run("keys h[0-9]") else {
        panic!()
    };
    assert_eq!(keys.len(), 2);
    let Reply::Array(keys) = sh.run("keys *") else {
        panic!()
    };
    assert_eq!(keys.len(), 4);
    check(&mut sh, "dbsize", Reply::Int(4));
    assert!(matches!(sh.run("randomkey"), Reply::Bulk(_)));
    check(&mut sh, "flushdb bla", error("ERR syntax error"));
    check(&mut sh, "flushdb async extra", error("ERR syntax error"));
    sh.db = 1;
    check(&mut sh, "set other 1", Reply::Ok);
    check(&mut sh, "flushdb ASYNC", Reply::Ok);
    check(&mut sh, "dbsize", Reply::Int(0));
    check(&mut sh, "randomkey", Reply::Null);
    sh.db = 0;
    check(&mut sh, "dbsize", Reply::Int(4));
    check(&mut sh, "flushall sync", Reply::Ok);
    check(&mut sh, "dbsize", Reply::Int(0));
    let len = sh.log.len();
    check(&mut sh, "flushall", Reply::Ok);
    assert_eq!(sh.log.len(), len, "flushing nothing logs nothing");
}

#[test]
fn failed_or_readonly_commands_log_nothing() {
    let mut sh = Shard::new();
    check(&mut sh, "set k 1", Reply::Ok);
    let len = sh.log.len();
    for line in [
        "get k",
        "set k 2 nx",
        "set n 2 xx",
        "expire nokey 10",
        "expire k 10 xx",
        "persist k",
        "incr nokey x",
        "incrby k x",
        "append k ",
        "getex k",
        "rename nokey x",
        "renamenx k k",
        "del nokey",
        "mget k nokey",
        "ttl k",
        "exists k",
        "keys *",
        "dbsize",
        "strlen k",
        "getrange k 0 1",
        "setrange k 0 1",
        "getdel nokey",
        "set k v ex 0",
        "msetnx k 1",
        "flushdb x",
    ] {
        sh.run(line);
        assert_eq!(sh.log.len(), len, "{line} logged something");
    }
}

fn arg_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("k1".to_string()),
        Just("k2".to_string()),
        Just("{t}a".to_string()),
        Just("{t}b".to_string()),
        (-3i64..200).prop_map(|n| n.to_string()),
        Just("1.5".to_string()),
        Just("abc".to_string()),
        Just("".to_string()),
        Just("nx".to_string()),
        Just("xx".to_string()),
        Just("gt".to_string()),
        Just("lt".to_string()),
        Just("ex".to_string()),
        Just("px".to_string()),
        Just("exat".to_string()),
        Just("pxat".to_string()),
        Just("keepttl".to_string()),
        Just("persist".to_string()),
        Just("get".to_string()),
        Just("1700000000500".to_string()),
    ]
}

fn command_strategy() -> impl Strategy<Value = Vec<String>> {
    let names: Vec<&'static str> = all()
        .iter()
        .filter(|s| s.exec.is_some() && s.name != "flushall")
        .map(|s| s.name)
        .collect();
    (
        proptest::sample::select(names),
        proptest::collection::vec(arg_strategy(), 0..6),
    )
        .prop_map(|(name, args)| {
            let mut v = vec![name.to_string()];
            v.extend(args);
            v
        })
}

proptest! {
    #[test]
    fn replaying_the_log_reproduces_the_state(
        cmds in proptest::collection::vec((command_strategy(), 0u64..700, 0u8..2), 1..120)
    ) {
        let mut sh = Shard::new();
        let mut replica = Keyspace::new();
        for (args, advance_ms, db) in cmds {
            sh.now_ms += advance_ms;
            sh.db = db;
            let before = sh.log.len();
            sh.run_args(args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect());
            replica.apply_logged(&sh.log[before..], sh.now_ms).unwrap();
            sh.ks.check_invariants();
            prop_assert_eq!(sh.ks.dump(sh.now_ms), replica.dump(sh.now_ms));
        }
        // The whole log replayed at once, at the end, gives the same state too.
        let mut fresh = Keyspace::new();
        fresh.apply_logged(&sh.log, sh.now_ms).unwrap();
        prop_assert_eq!(sh.ks.dump(sh.now_ms), fresh.dump(sh.now_ms));
    }
}

/// RESP2 bytes of a reply, as redis-server writes them (test-only encoder).
fn resp2(r: &Reply, out: &mut Vec<u8>) {
    match r {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Status(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Null => out.extend_from_slice(b"$-1\r\n"),
        Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            items.iter().for_each(|i| resp2(i, out));
        }
        Reply::Encoded(bytes) => out.extend_from_slice(bytes),
        other => panic!("not used by shard commands: {other:?}"),
    }
}

/// Reads one RESP2 reply's raw bytes from `r`.
fn read_reply(r: &mut impl std::io::BufRead, out: &mut Vec<u8>) {
    let start = out.len();
    r.read_until(b'\n', out).unwrap();
    let line = out[start..].to_vec();
    let n = || {
        std::str::from_utf8(&line[1..line.len() - 2])
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    match line[0] {
        b'$' if n() >= 0 => {
            let mut buf = vec![0; n() as usize + 2];
            r.read_exact(&mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        b'*' => (0..n().max(0)).for_each(|_| read_reply(r, out)),
        _ => {}
    }
}

/// A sorted copy of an array reply's RESP2 (KEYS order is unspecified).
fn sorted_array(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut r = std::io::BufReader::new(bytes);
    let mut head = Vec::new();
    std::io::BufRead::read_until(&mut r, b'\n', &mut head).unwrap();
    let mut items = Vec::new();
    if head[0] == b'*' {
        let n: usize = std::str::from_utf8(&head[1..head.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        for _ in 0..n {
            let mut item = Vec::new();
            read_reply(&mut r, &mut item);
            items.push(item);
        }
    }
    items.sort();
    items.insert(0, head);
    items
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn random_command(rng: &mut Rng, now_ms: u64) -> Vec<Vec<u8>> {
    const KEYS: &[&str] = &["k1", "k2", "k3", "{t}a", "{t}b"];
    const VALUES: &[&str] = &[
        "0",
        "1",
        "-1",
        "7",
        "10",
        "100",
        "1.5",
        "-2.5",
        "1e3",
        "0.1",
        "abc",
        "",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "0x10",
        "inf",
        " 1",
        "01",
        "-0",
        "3.0",
        "1e400",
        "hello",
    ];
    const OPTS: &[&str] = &[
        "nx", "xx", "gt", "lt", "ex", "px", "exat", "pxat", "keepttl", "persist", "get", "NX", "Ex",
    ];
    let skip = [
        "flushall",
        "flushdb",
        "dbsize",
        "randomkey",
        "pttl",
        "pexpiretime",
        "expiretime",
    ];
    let names: Vec<&str> = all()
        .iter()
        .filter(|s| s.exec.is_some() && !skip.contains(&s.name))
        .map(|s| s.name)
        .collect();
    let name = rng.pick(&names);
    let spec = lookup(name.as_bytes()).unwrap();
    let arity = spec.arity.unsigned_abs() as usize;
    let argc = match rng.below(10) {
        0 => rng.below(6) + 1,
        1..=5 => arity,
        _ if spec.arity < 0 => arity + rng.below(5),
        _ => arity,
    };
    let mut args = vec![name.as_bytes().to_vec()];
    for i in 1..argc {
        let arg = match rng.below(10) {
            _ if i == 1 && spec.first_key == 1 => rng.pick(KEYS).to_string(),
            0 | 1 => rng.pick(KEYS).to_string(),
            2 | 3 => rng.pick(OPTS).to_string(),
            4 => (now_ms / 1000 + rng.below(100) as u64).to_string(),
            5 => (now_ms + rng.below(100_000) as u64).to_string(),
            6 => format!("{}", rng.below(200) as i64 - 20),
            _ => rng.pick(VALUES).to_string(),
        };
        args.push(arg.into_bytes());
    }
    args
}

/// Replays random commands against redis-server (HELIOS_DIFF_REDIS=host:port) and against
/// exec_local, comparing RESP2 bytes. Skipped when the variable is unset.
#[test]
fn differential_against_redis() {
    use std::io::Write;
    let Ok(addr) = std::env::var("HELIOS_DIFF_REDIS") else {
        return;
    };
    let iterations: usize = std::env::var("HELIOS_DIFF_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("HELIOS_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut send = |args: &[Vec<u8>]| -> Vec<u8> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        writer.write_all(&req).unwrap();
        let mut out = Vec::new();
        read_reply(&mut reader, &mut out);
        out
    };
    // Database 0 for this test, 1 for the INCRBYFLOAT one: they may run at the same time.
    send(&[b"select".to_vec(), b"0".to_vec()]);
    send(&[b"flushdb".to_vec()]);
    let mut sh = Shard::new();
    let mut rng = Rng(seed);
    let mut history: Vec<String> = Vec::new();
    for i in 0..iterations {
        if i % 500 == 0 {
            send(&[b"flushdb".to_vec()]);
            sh.run("flushdb");
            history.clear();
        }
        let now = unix_ms();
        // Both sides read their own clock, a few ms apart: drop keys about to expire so no
        // command lands between the two expiry instants.
        for key in ["k1", "k2", "k3", "{t}a", "{t}b"] {
            let near = sh
                .ks
                .peek(0, key.as_bytes())
                .and_then(|e| e.expire_at_ms)
                .is_some_and(|at| at < now + 2_000);
            if near {
                send(&[b"del".to_vec(), key.as_bytes().to_vec()]);
                sh.run(&format!("del {key}"));
            }
        }
        let args = random_command(&mut rng, now);
        let want = send(&args);
        sh.now_ms = unix_ms();
        let reply = sh.run_args(args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
        let mut got = Vec::new();
        resp2(&reply, &mut got);
        let line = args
            .iter()
            .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
            .collect::<Vec<_>>()
            .join(" ");
        history.push(line.clone());
        let same = match &args[0][..] {
            b"keys" => sorted_array(&want) == sorted_array(&got),
            b"ttl" => {
                let n = |b: &[u8]| {
                    std::str::from_utf8(&b[1..b.len() - 2])
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                };
                match (n(&want), n(&got)) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1,
                    _ => want == got,
                }
            }
            _ => want == got,
        };
        // The state must agree too: compare every key's value after each command.
        let mut state_diff = None;
        for key in ["k1", "k2", "k3", "{t}a", "{t}b"] {
            let racy = sh
                .ks
                .peek(0, key.as_bytes())
                .and_then(|e| e.expire_at_ms)
                .is_some_and(|at| at < unix_ms() + 2_000);
            if racy {
                continue;
            }
            let get = vec![b"get".to_vec(), key.as_bytes().to_vec()];
            let want = send(&get);
            let mut got = Vec::new();
            resp2(
                &sh.run_args(get.iter().map(|a| Bytes::copy_from_slice(a)).collect()),
                &mut got,
            );
            if want != got && state_diff.is_none() {
                state_diff = Some(format!(
                    "{key}: redis {:?} helios {:?}",
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        assert!(
            state_diff.is_none(),
            "state differs after #{i}: {line}: {}\nhistory:\n{}",
            state_diff.unwrap_or_default(),
            history[history.len().saturating_sub(30)..].join("\n")
        );
        assert!(
            same,
            "mismatch at #{i}: {line}\nredis:  {:?}\nhelios: {:?}\nstate: {:?}\nhistory:\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got),
            sh.ks.dump(sh.now_ms),
            history[history.len().saturating_sub(30)..].join("\n")
        );
    }
}

fn random_float_text(rng: &mut Rng) -> String {
    let mut s = String::new();
    match rng.below(10) {
        0 => s.push('-'),
        1 => s.push('+'),
        _ => {}
    }
    if rng.below(12) == 0 {
        s.push_str("0x");
        for _ in 0..rng.below(18) {
            s.push(b"0123456789abcdefABCDEF"[rng.below(22)] as char);
        }
        if rng.below(2) == 0 {
            s.push('.');
            for _ in 0..rng.below(6) {
                s.push(b"0123456789abcdef"[rng.below(16)] as char);
            }
        }
        if rng.below(2) == 0 {
            s.push_str(&format!("p{}", rng.below(200) as i64 - 100));
        }
        return s;
    }
    let digits = |rng: &mut Rng, n: usize| {
        (0..n)
            .map(|_| (b'0' + rng.below(10) as u8) as char)
            .collect::<String>()
    };
    let int_len = rng.below(22);
    s.push_str(&digits(rng, int_len));
    if rng.below(2) == 0 {
        s.push('.');
        let frac_len = rng.below(24);
        s.push_str(&digits(rng, frac_len));
    }
    match rng.below(6) {
        0 => s.push_str(&format!("e{}", rng.below(80) as i64 - 40)),
        1 => s.push_str(&format!("E{}", rng.below(9900) as i64 - 4950)),
        _ => {}
    }
    s
}

/// INCRBYFLOAT on random decimal and hex texts against redis-server (HELIOS_DIFF_REDIS).
#[test]
fn differential_incrbyfloat_against_redis() {
    use std::io::Write;
    let Ok(addr) = std::env::var("HELIOS_DIFF_REDIS") else {
        return;
    };
    let iterations: usize = std::env::var("HELIOS_DIFF_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("HELIOS_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xf10a7);
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut send = |args: &[&[u8]]| -> Vec<u8> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        writer.write_all(&req).unwrap();
        let mut out = Vec::new();
        read_reply(&mut reader, &mut out);
        out
    };
    send(&[b"select", b"1"]);
    send(&[b"del", b"fk"]);
    let mut sh = Shard::new();
    let mut rng = Rng(seed);
    for i in 0..iterations {
        if rng.below(3) == 0 {
            let value = random_float_text(&mut rng);
            send(&[b"set", b"fk", value.as_bytes()]);
            sh.run_args(vec![bulk_b("set"), bulk_b("fk"), bulk_b(&value)]);
        }
        let incr = random_float_text(&mut rng);
        let want = send(&[b"incrbyfloat", b"fk", incr.as_bytes()]);
        let mut got = Vec::new();
        resp2(
            &sh.run_args(vec![bulk_b("incrbyfloat"), bulk_b("fk"), bulk_b(&incr)]),
            &mut got,
        );
        assert_eq!(
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got),
            "#{i}: incrbyfloat {incr:?} on {:?}",
            sh.ks.peek(0, b"fk")
        );
    }
}

proptest! {
    #[test]
    fn exec_local_never_panics(
        name in proptest::sample::select(all().iter().map(|s| s.name).collect::<Vec<_>>()),
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..7),
        numeric in proptest::collection::vec(any::<i64>(), 0..4),
    ) {
        let mut sh = Shard::new();
        sh.run("set k1 hello");
        let mut argv = vec![Bytes::from_static(name.as_bytes())];
        argv.extend(args.into_iter().map(Bytes::from));
        argv.extend(numeric.iter().map(|n| Bytes::from(n.to_string())));
        sh.run_args(argv.clone());
        argv[1..].iter_mut().take(1).for_each(|a| *a = Bytes::from_static(b"k1"));
        sh.run_args(argv);
        sh.ks.check_invariants();
    }
}

#[test]
fn movable_keys_follow_numkeys() {
    let args = |s: &str| -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    };
    use super::movable_key_positions as keys;
    assert_eq!(
        keys("zunion", &args("ZUNION 2 a b WEIGHTS 1 2")),
        Some(vec![2, 3])
    );
    assert_eq!(
        keys("zunionstore", &args("ZUNIONSTORE d 2 a b")),
        Some(vec![1, 3, 4])
    );
    assert_eq!(keys("zmpop", &args("ZMPOP 1 a MIN")), Some(vec![2]));
    assert_eq!(
        keys("zinter", &args("ZINTER 9 a b")),
        Some(vec![]),
        "too few keys"
    );
    assert_eq!(
        keys("zinter", &args("ZINTER x a")),
        Some(vec![]),
        "not a count"
    );
    assert_eq!(keys("get", &args("GET a")), None);
}
