//! Differential test: the same seeded random command sequence runs on helios (`--shards 2`) and on
//! a real redis-server, and every reply must match byte for byte, in RESP2 and again in RESP3.
//!
//! Replies that legitimately differ are normalized first, and only those: KEYS (order) is
//! sorted, a full SCAN walk is compared as a sorted set, and positive TTL / expire-time integers
//! are compared as "positive" (-1 and -2 stay exact).
//!
//! Relative expiry values are derived from the step number (`10_000 + 10 * step` seconds), so two
//! different steps never produce expire times close enough for GT/LT comparisons to depend on
//! how long the run took.
//!
//! Env: `HELIOS_DIFF_SEEDS=N` runs N seeds (default 6), `HELIOS_DIFF_STEPS=N` steps per seed,
//! `HELIOS_DIFF_TRACE=1` prints every step with redis-server's reply.

use helios_tests::rng::Rng;
use helios_tests::{render, Frame, HeliosServer, RedisServer, RespConn, ServerOpts};

const SEEDS_DEFAULT: u64 = 6;
const STEPS_DEFAULT: usize = 400;

/// How a reply is normalized before comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    Exact,
    /// KEYS: element order is unspecified.
    Sorted,
    /// TTL/PTTL/EXPIRETIME/PEXPIRETIME: positive integers depend on the clock.
    Positive,
    /// Only the reply type byte is compared (HELLO: server name, version and id differ).
    TypeOnly,
    /// Pseudo-command: walk SCAN from cursor 0 to 0 with the given extra args, compare the set of
    /// keys seen.
    ScanAll,
    /// SSCAN walked from cursor 0 to 0 (args: SSCAN key <cursor> options...): the set of
    /// members seen.
    SscanAll,
}

struct Step {
    args: Vec<Vec<u8>>,
    norm: Norm,
}

impl Step {
    fn exact(args: Vec<Vec<u8>>) -> Step {
        Step {
            args,
            norm: Norm::Exact,
        }
    }

    fn show(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| format!("\"{}\"", render(a)))
            .collect();
        let prefix = if self.norm == Norm::ScanAll {
            "<SCAN walk> "
        } else {
            ""
        };
        format!("{prefix}{}", args.join(" "))
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"k1",
    b"k2",
    b"k3",
    b"k10",
    b"num",
    b"neg",
    b"fl",
    b"{t}x",
    b"{t}y",
    b"{t}z",
    b"{u}1",
    b"{u}2",
    b"",
    b"sp ace",
    b"x\r\ny",
    b"bin\x00\xff",
    b"long:key:with:colons",
];

const VALUES: &[&[u8]] = &[
    b"",
    b"v",
    b"hello",
    b"world",
    b"0",
    b"1",
    b"10",
    b"-5",
    b"010",
    b" 1",
    b"1 ",
    b"+1",
    b"-0",
    b"1.5",
    b"3e2",
    b"-0.25",
    b"0x10",
    b"inf",
    b"-inf",
    b"nan",
    b"abc\x00def",
    b"\r\n",
    b"9223372036854775806",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"-9223372036854775807",
    b"12345678901234567890",
    b"1e308",
    b"0.1",
];

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "-3",
    "100",
    "-100",
    "1000000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775806",
    "-9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "abc",
    "",
    "1.5",
    " 1",
    "1 ",
    "+5",
    "-0",
    "0x1",
    "010",
    "1e3",
];

const FLOATS: &[&str] = &[
    "0.1",
    "0.2",
    "1.5",
    "-0.25",
    "10",
    "-10",
    "3.0e2",
    "1e-5",
    "5.0e3",
    "1e308",
    "-1e308",
    "abc",
    "",
    "inf",
    "-inf",
    "+inf",
    "nan",
    " 1",
    "1 ",
    "0x10",
    "1.7976931348623157e308",
    "2.5",
    "100.125",
    "-0",
    "0",
];

/// Offsets for GETRANGE (any size is harmless there).
const RANGE_OFFSETS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "5",
    "10",
    "100",
    "-1",
    "-2",
    "-3",
    "-10",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "",
    "1.0",
];

/// Expiry times that are valid for any command unit (fixed, far future: year 2096).
const UNIX_SECONDS_FUTURE: &[&str] = &["4000000000", "4000000100", "3999999000", "4100000000"];

const KEYS_PATTERNS: &[&str] = &[
    "*", "k*", "k?", "{t}*", "\\{t\\}*", "?", "[ab]", "[a-c]", "[^a]*", "*y*", "k[1-3]*", "*\\*",
    "", "sp*", "x*", "[", "[]", "*[", "k1", "a\\", "[!a]*",
];

fn key(rng: &mut Rng) -> Vec<u8> {
    rng.pick(KEYS).to_vec()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(15) {
        let len = rng.below(12) as usize;
        return rng.bytes(len);
    }
    rng.pick(VALUES).to_vec()
}

/// Random casing of a command name, so case-insensitive lookup is exercised.
fn name(rng: &mut Rng, s: &str) -> Vec<u8> {
    if !rng.chance(20) {
        return b(s);
    }
    s.bytes()
        .map(|c| {
            if rng.chance(50) {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Seconds for a relative expiry, unique to this step (see module docs).
fn rel_seconds(step: usize, rng: &mut Rng) -> i64 {
    10_000 + 10 * step as i64 + rng.range(0, 4)
}

/// An expiry option (EX/PX/EXAT/PXAT, sometimes invalid) for SET/GETEX.
///
/// A time in the past is only generated when `past_ok`: Redis 7.0 stores a SET with a past
/// EXAT/PXAT and lets the key be reclaimed lazily or by the 10 Hz active-expiry cycle, so DBSIZE
/// would depend on timing. GETEX with a past time deletes the key at once, so it is safe there.
fn expiry_option(rng: &mut Rng, step: usize, past_ok: bool) -> Vec<Vec<u8>> {
    let secs = rel_seconds(step, rng);
    match rng.below(12) {
        0 | 1 => vec![b("EX"), b(&secs.to_string())],
        2 | 3 => vec![b("PX"), b(&(secs * 1000 + rng.range(0, 999)).to_string())],
        4 => vec![b("EXAT"), b(rng.pick(UNIX_SECONDS_FUTURE))],
        5 => vec![
            b("PXAT"),
            b(&format!("{}123", rng.pick(UNIX_SECONDS_FUTURE))),
        ],
        6 if past_ok => vec![b("EXAT"), b("1")], // in the past: the key is deleted
        6 => vec![b("EXAT"), b("abc")],
        7 => vec![
            b("EX"),
            b(rng.pick(&["0", "-5", "abc", "9223372036854775807", "1.5", ""])),
        ],
        8 => vec![
            b("PX"),
            b(rng.pick(&["0", "-1", "9223372036854775807", "x"])),
        ],
        9 if past_ok => vec![b("PXAT"), b(rng.pick(&["0", "-1", "1", "abc"]))],
        9 => vec![b("PXAT"), b(rng.pick(&["0", "-1", "abc"]))],
        10 => vec![b("EX")], // missing value
        _ => vec![b("KEEPTTL")],
    }
}

fn gen_set(rng: &mut Rng, step: usize) -> Step {
    let mut args = vec![name(rng, "SET"), key(rng), value(rng)];
    let mut opts: Vec<Vec<Vec<u8>>> = Vec::new();
    if rng.chance(40) {
        opts.push(expiry_option(rng, step, false));
    }
    if rng.chance(25) {
        opts.push(vec![b(rng.pick(&["NX", "XX", "nx", "xx"]))]);
    }
    if rng.chance(20) {
        opts.push(vec![b(rng.pick(&["GET", "get"]))]);
    }
    if rng.chance(6) {
        opts.push(vec![b(rng.pick(&["BOGUS", "EX", "NX", "KEEPTTL", "PX"]))]);
    }
    if rng.chance(3) {
        // Two expiry options: a syntax error.
        opts.push(expiry_option(rng, step, false));
    }
    // Option order must not matter; shuffle deterministically.
    for i in (1..opts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        opts.swap(i, j);
    }
    for opt in opts {
        args.extend(opt);
    }
    Step::exact(args)
}

fn gen_getex(rng: &mut Rng, step: usize) -> Step {
    let mut args = vec![name(rng, "GETEX"), key(rng)];
    match rng.below(6) {
        0 => {}
        1 => args.push(b("PERSIST")),
        2 => args.extend([b("PERSIST"), b("EX"), b("100")]),
        3 => args.push(b("BOGUS")),
        _ => {
            let opt = expiry_option(rng, step, true);
            if opt[0] != b"KEEPTTL" {
                args.extend(opt);
            } else {
                args.push(b("KEEPTTL")); // not valid for GETEX
            }
        }
    }
    Step::exact(args)
}

fn gen_expire(rng: &mut Rng, step: usize) -> Step {
    let secs = rel_seconds(step, rng);
    let which = rng.pick(&["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]);
    let time = match (which, rng.below(10)) {
        (_, 0) => b(rng.pick(&[
            "-1",
            "0",
            "abc",
            "",
            "9223372036854775807",
            "-9223372036854775808",
            "1.5",
        ])),
        ("EXPIRE", _) => b(&secs.to_string()),
        ("PEXPIRE", _) => b(&(secs * 1000 + rng.range(0, 999)).to_string()),
        ("EXPIREAT", 1) => b("100"), // in the past
        ("EXPIREAT", _) => b(rng.pick(UNIX_SECONDS_FUTURE)),
        ("PEXPIREAT", 1) => b("100000"),
        (_, _) => b(&format!("{}456", rng.pick(UNIX_SECONDS_FUTURE))),
    };
    let mut args = vec![name(rng, which), key(rng), time];
    if rng.chance(40) {
        args.push(b(rng.pick(&["NX", "XX", "GT", "LT", "nx", "gt", "BOGUS"])));
        if rng.chance(20) {
            args.push(b(rng.pick(&["NX", "XX", "GT", "LT"])));
        }
    }
    Step::exact(args)
}

fn keys_list(rng: &mut Rng, min: u64) -> Vec<Vec<u8>> {
    let n = min + rng.below(4);
    (0..n).map(|_| key(rng)).collect()
}

fn gen_multikey(rng: &mut Rng, cmd: &str) -> Step {
    let mut args = vec![name(rng, cmd)];
    args.extend(keys_list(rng, 1));
    Step::exact(args)
}

fn gen_mset(rng: &mut Rng, cmd: &str) -> Step {
    let mut args = vec![name(rng, cmd)];
    for _ in 0..1 + rng.below(4) {
        args.push(key(rng));
        args.push(value(rng));
    }
    Step::exact(args)
}

fn gen_counter(rng: &mut Rng) -> Step {
    // Bias toward the keys the prelude loaded with extreme values.
    let k = if rng.chance(50) {
        b(rng.pick(&["num", "neg", "k1", "a"]))
    } else {
        key(rng)
    };
    match rng.below(5) {
        0 => Step::exact(vec![name(rng, "INCR"), k]),
        1 => Step::exact(vec![name(rng, "DECR"), k]),
        2 => Step::exact(vec![name(rng, "INCRBY"), k, b(rng.pick(INTS))]),
        3 => Step::exact(vec![name(rng, "DECRBY"), k, b(rng.pick(INTS))]),
        _ => {
            let k = if rng.chance(50) { b("fl") } else { k };
            Step::exact(vec![name(rng, "INCRBYFLOAT"), k, b(rng.pick(FLOATS))])
        }
    }
}

fn gen_range(rng: &mut Rng) -> Step {
    if rng.chance(50) {
        let (s, e) = (rng.pick(RANGE_OFFSETS), rng.pick(RANGE_OFFSETS));
        return Step::exact(vec![name(rng, "GETRANGE"), key(rng), b(s), b(e)]);
    }
    // SETRANGE offsets stay small unless the call must fail (or the value is empty, a no-op).
    let (offset, val) = match rng.below(10) {
        0 => (
            b(rng.pick(&["-1", "-100", "abc", "", "9223372036854775808"])),
            value(rng),
        ),
        1 => (
            b(rng.pick(&["536870912", "9223372036854775807", "536870913"])),
            b("x"),
        ),
        2 => (
            b(rng.pick(&["536870912", "9223372036854775807", "100"])),
            b(""),
        ),
        _ => (b(&rng.below(24).to_string()), value(rng)),
    };
    Step::exact(vec![name(rng, "SETRANGE"), key(rng), offset, val])
}

fn gen_keyspace(rng: &mut Rng) -> Step {
    match rng.below(14) {
        0 | 1 => Step {
            args: vec![name(rng, "KEYS"), b(rng.pick(KEYS_PATTERNS))],
            norm: Norm::Sorted,
        },
        2 => {
            let mut args = vec![b("SCAN")];
            if rng.chance(50) {
                args.extend([b("MATCH"), b(rng.pick(KEYS_PATTERNS))]);
            }
            if rng.chance(50) {
                args.extend([b("COUNT"), b(rng.pick(&["1", "3", "10", "1000"]))]);
            }
            if rng.chance(30) {
                args.extend([
                    b("TYPE"),
                    b(rng.pick(&["string", "list", "none", "STRING"])),
                ]);
            }
            Step {
                args,
                norm: Norm::ScanAll,
            }
        }
        3 => {
            let bad: &[&[&str]] = &[
                &["SCAN", "abc"],
                &["SCAN", "0", "COUNT", "0"],
                &["SCAN", "0", "COUNT", "abc"],
                &["SCAN", "0", "MATCH"],
                &["SCAN", "0", "BOGUS", "x"],
                &["SCAN", "18446744073709551616"],
            ];
            Step::exact(rng.pick(bad).iter().map(|s| b(s)).collect())
        }
        4 => Step::exact(vec![name(rng, "DBSIZE")]),
        5 => Step::exact(vec![name(rng, "TYPE"), key(rng)]),
        6 => {
            let cmd = rng_pick_str(rng, &["RENAME", "RENAMENX"]);
            Step::exact(vec![name(rng, cmd), key(rng), key(rng)])
        }
        7 => {
            let ttl = rng_pick_str(rng, &["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]);
            Step {
                args: vec![name(rng, ttl), key(rng)],
                norm: Norm::Positive,
            }
        }
        8 => Step::exact(vec![name(rng, "PERSIST"), key(rng)]),
        9 => gen_multikey(rng, "TOUCH"),
        10 => gen_multikey(rng, "EXISTS"),
        11 => gen_multikey(rng, "UNLINK"),
        12 if rng.chance(10) => {
            let flush = rng_pick_str(rng, &["FLUSHDB", "FLUSHALL"]);
            let mut args = vec![name(rng, flush)];
            if rng.chance(50) {
                args.push(b(rng.pick(&["SYNC", "ASYNC", "async", "BOGUS"])));
            }
            Step::exact(args)
        }
        _ => {
            let db = rng.pick(&["0", "0", "1", "2", "16", "-1", "abc", "9999999999999999999"]);
            Step::exact(vec![name(rng, "SELECT"), b(db)])
        }
    }
}

fn rng_pick_str<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items)
}

fn gen_connection(rng: &mut Rng) -> Step {
    let cases: &[&[&str]] = &[
        &["PING"],
        &["PING", "hello"],
        &["PING", "a", "b"],
        &["ECHO", "x y"],
        &["ECHO"],
        &["CLIENT", "SETNAME", "diff-client"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "SETNAME", ""],
        &["CLIENT", "GETNAME", "extra"],
        &["CLIENT", "BOGUS"],
        &["CLIENT"],
        &["HELLO", "4"],
        &["HELLO", "abc"],
        &["HELLO", "1"],
        &["CONFIG", "GET", "no-such-parameter-xyz"],
        &["CONFIG"],
        &["CONFIG", "BOGUS"],
        &["FOOBAR"],
        &["FOOBAR", "a", "b c"],
        &["foobar", "x"],
        &["GETT", "k"],
    ];
    Step::exact(rng.pick(cases).iter().map(|s| b(s)).collect())
}

/// Wrong arity for commands with a fixed or minimum arity (Redis arity incl. the name).
fn gen_wrong_arity(rng: &mut Rng) -> Step {
    const ARITY: &[(&str, i32)] = &[
        ("GET", 2),
        ("SET", -3),
        ("GETSET", 3),
        ("GETDEL", 2),
        ("GETEX", -2),
        ("SETNX", 3),
        ("SETEX", 4),
        ("PSETEX", 4),
        ("MGET", -2),
        ("MSET", -3),
        ("MSETNX", -3),
        ("INCR", 2),
        ("DECR", 2),
        ("INCRBY", 3),
        ("DECRBY", 3),
        ("INCRBYFLOAT", 3),
        ("APPEND", 3),
        ("STRLEN", 2),
        ("GETRANGE", 4),
        ("SETRANGE", 4),
        ("EXPIRE", -3),
        ("PEXPIRE", -3),
        ("EXPIREAT", -3),
        ("PEXPIREAT", -3),
        ("EXPIRETIME", 2),
        ("PEXPIRETIME", 2),
        ("TTL", 2),
        ("PTTL", 2),
        ("PERSIST", 2),
        ("TOUCH", -2),
        ("TYPE", 2),
        ("EXISTS", -2),
        ("DEL", -2),
        ("UNLINK", -2),
        ("KEYS", 2),
        ("SCAN", -2),
        ("RENAME", 3),
        ("RENAMENX", 3),
        ("DBSIZE", 1),
        ("ECHO", 2),
        ("SELECT", 2),
    ];
    let (cmd, arity) = rng.pick(ARITY);
    let argc = if arity > 0 {
        let n = arity as u64;
        if n == 1 || rng.chance(50) {
            n + 1
        } else {
            1 + rng.below(n - 1)
        }
    } else {
        1 + rng.below((-arity - 1) as u64)
    };
    let mut args = vec![name(rng, cmd)];
    args.extend((1..argc).map(|_| key(rng)));
    if cmd == "MSET" || cmd == "MSETNX" {
        // Odd number of key/value args is also an arity error.
        args = vec![name(rng, cmd), key(rng), value(rng), key(rng)];
    }
    Step::exact(args)
}

fn gen_step(rng: &mut Rng, step: usize) -> Step {
    match rng.below(236) {
        0..=11 => gen_set(rng, step),
        12..=19 => Step::exact(vec![name(rng, "GET"), key(rng)]),
        20..=23 => gen_getex(rng, step),
        24..=26 => Step::exact(vec![name(rng, "GETSET"), key(rng), value(rng)]),
        27..=29 => Step::exact(vec![name(rng, "GETDEL"), key(rng)]),
        30..=31 => Step::exact(vec![name(rng, "SETNX"), key(rng), value(rng)]),
        32..=34 => {
            let cmd = rng_pick_str(rng, &["SETEX", "PSETEX"]);
            let secs = rel_seconds(step, rng);
            let t = match rng.below(5) {
                0 => b(rng.pick(&["0", "-1", "abc", "9223372036854775807"])),
                _ if cmd == "SETEX" => b(&secs.to_string()),
                _ => b(&(secs * 1000).to_string()),
            };
            Step::exact(vec![name(rng, cmd), key(rng), t, value(rng)])
        }
        35..=38 => gen_multikey(rng, "MGET"),
        39..=41 => gen_mset(rng, "MSET"),
        42..=43 => gen_mset(rng, "MSETNX"),
        44..=53 => gen_counter(rng),
        54..=57 => Step::exact(vec![name(rng, "APPEND"), key(rng), value(rng)]),
        58..=59 => Step::exact(vec![name(rng, "STRLEN"), key(rng)]),
        60..=65 => gen_range(rng),
        66..=71 => gen_expire(rng, step),
        72..=73 => gen_multikey(rng, "DEL"),
        74..=87 => gen_keyspace(rng),
        88..=92 => gen_connection(rng),
        100..=129 => gen_hash(rng),
        130..=159 => gen_set_cmd(rng),
        160..=189 => gen_list_cmd(rng),
        190..=195 => gen_copy(rng),
        196..=235 => gen_zset_cmd(rng),
        93..=94 => gen_object(rng),
        95..=97 => gen_sort(rng),
        98..=99 => Step::exact(vec![pick_name(rng, &["MULTI", "MULTI", "EXEC", "DISCARD"])]),
        _ => gen_wrong_arity(rng),
    }
}

/// One of `names`, randomly cased.
fn pick_name(rng: &mut Rng, names: &[&str]) -> Vec<u8> {
    let chosen = rng_pick_str(rng, names);
    name(rng, chosen)
}

const FIELDS: &[&[u8]] = &[b"f1", b"f2", b"f3", b"a", b"", b"num", b"fl", b"F1"];

fn field(rng: &mut Rng) -> Vec<u8> {
    rng.pick(FIELDS).to_vec()
}

fn fields(rng: &mut Rng, min: u64) -> Vec<Vec<u8>> {
    (0..rng.range(min as i64, 4)).map(|_| field(rng)).collect()
}

/// COPY between keys of every type (and the same key), with DB and REPLACE options.
fn gen_copy(rng: &mut Rng) -> Step {
    let prefix = rng_pick_str(rng, &["h", "s", "l", "z", "k"]);
    let src = if prefix == "k" {
        key(rng)
    } else {
        typed_key(rng, prefix)
    };
    let dst = if rng.chance(10) {
        src.clone()
    } else {
        typed_key(rng, prefix)
    };
    let mut args = vec![name(rng, "COPY"), src, dst];
    for _ in 0..rng.range(0, 2) {
        match rng.below(5) {
            0 | 1 => args.push(b(rng_pick_str(rng, &["REPLACE", "replace"]))),
            2 | 3 => args.extend([b("DB"), b(rng_pick_str(rng, &["0", "1", "16", "-1", "x"]))]),
            _ => args.push(b("bogus")),
        }
    }
    Step::exact(args)
}

/// A key for a collection command: mostly one of a few keys of that type's own (`h`, `s`,
/// `l`; some hashtagged to share a shard, others not), so the commands meet real
/// collections; sometimes any key, so WRONGTYPE comes up both ways.
fn typed_key(rng: &mut Rng, prefix: &str) -> Vec<u8> {
    if rng.chance(35) {
        return key(rng);
    }
    let n = rng.below(4);
    match n {
        0 => b(&format!("{{t}}{prefix}{n}")),
        _ => b(&format!("{prefix}{n}")),
    }
}

const ELEMENTS: &[&str] = &["a", "b", "c", "1", ""];
const INDEXES: &[&str] = &["0", "-1", "1", "2", "-2", "5", "100", "-100", "x"];

/// An element to store: now and then one of 3000 bytes, so that a list of a few spans
/// several of helios's packed chunks (8 KiB each) and LSET and LINSERT split them.
fn element(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(10) {
        let fill = rng.pick(b"pq");
        return vec![fill; 3000];
    }
    b(rng.pick(ELEMENTS))
}

fn elements(rng: &mut Rng, min: i64) -> Vec<Vec<u8>> {
    (0..rng.range(min, 4)).map(|_| element(rng)).collect()
}

fn side(rng: &mut Rng) -> Vec<u8> {
    b(rng_pick_str(
        rng,
        &["LEFT", "RIGHT", "left", "right", "middle"],
    ))
}

/// List commands over the same keys as the others; every reply is ordered, so all compare
/// exactly.
fn gen_list_cmd(rng: &mut Rng) -> Step {
    let k = typed_key(rng, "l");
    let mut args = match rng.below(15) {
        0..=2 => {
            let mut args = vec![pick_name(rng, &["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), k];
            args.extend(elements(rng, 1));
            args
        }
        3 => {
            let mut args = vec![pick_name(rng, &["LPOP", "RPOP"]), k];
            if rng.chance(60) {
                args.push(b(rng_pick_str(rng, &["1", "2", "0", "-1", "x", "10"])));
            }
            if rng.chance(5) {
                args.push(b("extra"));
            }
            args
        }
        4 => vec![name(rng, "LLEN"), k],
        5 => vec![name(rng, "LINDEX"), k, b(rng.pick(INDEXES))],
        6 => vec![name(rng, "LSET"), k, b(rng.pick(INDEXES)), element(rng)],
        7 => vec![
            name(rng, "LRANGE"),
            k,
            b(rng.pick(INDEXES)),
            b(rng.pick(INDEXES)),
        ],
        8 => vec![
            name(rng, "LTRIM"),
            k,
            b(rng.pick(INDEXES)),
            b(rng.pick(INDEXES)),
        ],
        9 => vec![
            name(rng, "LREM"),
            k,
            b(rng_pick_str(rng, &["0", "1", "-1", "2", "-2", "x"])),
            b(rng.pick(ELEMENTS)),
        ],
        10 => vec![
            name(rng, "LINSERT"),
            k,
            b(rng_pick_str(rng, &["BEFORE", "AFTER", "after", "inside"])),
            b(rng.pick(ELEMENTS)),
            element(rng),
        ],
        11 => {
            let mut args = vec![name(rng, "LPOS"), k, b(rng.pick(ELEMENTS))];
            for _ in 0..rng.range(0, 2) {
                match rng.below(4) {
                    0 => {
                        args.extend([b("RANK"), b(rng_pick_str(rng, &["1", "-1", "2", "0", "x"]))])
                    }
                    1 => args.extend([b("COUNT"), b(rng_pick_str(rng, &["0", "1", "2", "-1"]))]),
                    2 => args.extend([b("MAXLEN"), b(rng_pick_str(rng, &["0", "1", "3", "-1"]))]),
                    _ => args.push(b("bogus")),
                }
            }
            args
        }
        12 => vec![
            name(rng, "LMOVE"),
            k,
            typed_key(rng, "l"),
            side(rng),
            side(rng),
        ],
        13 => vec![name(rng, "RPOPLPUSH"), k, typed_key(rng, "l")],
        _ => {
            let keys: Vec<Vec<u8>> = (0..rng.range(1, 3)).map(|_| typed_key(rng, "l")).collect();
            let numkeys = match rng.below(8) {
                0 => "0".to_string(),
                1 => "9".to_string(),
                _ => keys.len().to_string(),
            };
            let mut args = vec![name(rng, "LMPOP"), b(&numkeys)];
            args.extend(keys);
            args.push(side(rng));
            if rng.chance(40) {
                args.extend([b("COUNT"), b(rng_pick_str(rng, &["1", "2", "0", "x"]))]);
            }
            args
        }
    };
    if args.is_empty() {
        args.push(b("PING"));
    }
    Step::exact(args)
}

const MEMBERS: &[&[u8]] = &[b"1", b"2", b"3", b"10", b"-1", b"a", b"b", b""];

fn members(rng: &mut Rng, min: i64) -> Vec<Vec<u8>> {
    (0..rng.range(min, 4))
        .map(|_| rng.pick(MEMBERS).to_vec())
        .collect()
}

fn keys_for_sets(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..rng.range(1, 3)).map(|_| typed_key(rng, "s")).collect()
}

/// Set commands over the same keys as the others. Replies whose order Redis leaves to its
/// hashtable (SMEMBERS, SINTER, ...) are compared sorted, SSCAN as a full walk, and random
/// ones only where deterministic (counts at least the set's size, errors).
fn gen_set_cmd(rng: &mut Rng) -> Step {
    let sorted = |args: Vec<Vec<u8>>| Step {
        args,
        norm: Norm::Sorted,
    };
    let k = typed_key(rng, "s");
    match rng.below(14) {
        0..=2 => {
            let mut args = vec![name(rng, "SADD"), k];
            args.extend(members(rng, 1));
            Step::exact(args)
        }
        3 => {
            let mut args = vec![name(rng, "SREM"), k];
            args.extend(members(rng, 1));
            Step::exact(args)
        }
        4 => sorted(vec![name(rng, "SMEMBERS"), k]),
        5 => {
            let cmd = pick_name(rng, &["SISMEMBER", "SMISMEMBER"]);
            let mut args = vec![cmd, k];
            args.extend(members(rng, 1));
            if args[0].eq_ignore_ascii_case(b"SISMEMBER") {
                args.truncate(3);
            }
            Step::exact(args)
        }
        6 => Step::exact(vec![name(rng, "SCARD"), k]),
        7 => {
            let count = rng_pick_str(rng, &["100", "0", "-1", "abc"]);
            let mut args = vec![name(rng, "SPOP"), k, b(count)];
            if rng.chance(10) {
                args.push(b("x"));
            }
            sorted(args)
        }
        8 => {
            let count = rng_pick_str(rng, &["100", "0", "abc", "-0"]);
            sorted(vec![name(rng, "SRANDMEMBER"), k, b(count)])
        }
        9 => {
            let member = rng.pick(MEMBERS).to_vec();
            Step::exact(vec![name(rng, "SMOVE"), k, typed_key(rng, "s"), member])
        }
        10 => {
            let cmd = pick_name(rng, &["SINTER", "SUNION", "SDIFF"]);
            let mut args = vec![cmd];
            args.extend(keys_for_sets(rng));
            sorted(args)
        }
        11 => {
            let cmd = pick_name(rng, &["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]);
            let mut args = vec![cmd, k];
            args.extend(keys_for_sets(rng));
            Step::exact(args)
        }
        12 => {
            let keys = keys_for_sets(rng);
            let numkeys = match rng.below(8) {
                0 => "0".to_string(),
                1 => "9".to_string(),
                2 => "x".to_string(),
                _ => keys.len().to_string(),
            };
            let mut args = vec![name(rng, "SINTERCARD"), b(&numkeys)];
            args.extend(keys);
            if rng.chance(40) {
                args.push(b("LIMIT"));
                args.push(b(rng_pick_str(rng, &["1", "0", "-1", "x"])));
            }
            Step::exact(args)
        }
        _ => {
            let mut args = vec![name(rng, "SSCAN"), k, b("0")];
            if rng.chance(30) {
                args.push(b("MATCH"));
                args.push(b(rng_pick_str(rng, &["1*", "*", "?", "[ab]"])));
            }
            if rng.chance(30) {
                args.push(b("COUNT"));
                args.push(b(rng_pick_str(rng, &["1", "2", "0", "x"])));
            }
            Step {
                args,
                norm: Norm::SscanAll,
            }
        }
    }
}

/// A field value Redis keeps in its listpack encoding (at most 64 bytes): its hashes then
/// keep insertion order, which helios's do up to 128 fields, so replies compare exactly.
/// (A hash Redis converts to a hashtable has no defined order, in either server.)
fn hash_value(rng: &mut Rng) -> Vec<u8> {
    let mut v = value(rng);
    v.truncate(64);
    // A huge number would let HINCRBYFLOAT make a value of hundreds of bytes (1e308 + 1.5).
    let huge = std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .is_some_and(|f| f.abs() >= 1e17);
    if huge {
        v = b("1");
    }
    v
}

/// Increments whose results stay short (1e308 would make a 309-byte value, see above).
const HASH_FLOATS: &[&str] = &[
    "0.1", "0.2", "1.5", "-0.25", "10", "-10", "3.0e2", "1e-5", "abc", "", "inf", "-inf", "nan",
    " 1", "1 ", "0x10", "2.5", "100.125", "-0", "0",
];

/// Hash commands over the same keys as the string commands, so WRONGTYPE goes both ways.
/// HRANDFIELD is asked only what is deterministic: the whole hash (a count at least its
/// size, in its order), no fields, or an error.
fn gen_hash(rng: &mut Rng) -> Step {
    let k = typed_key(rng, "h");
    let mut args = match rng.below(16) {
        0..=2 => {
            let cmd = rng_pick_str(rng, &["HSET", "HSET", "HMSET"]);
            let mut args = vec![name(rng, cmd), k];
            for _ in 0..rng.range(1, 4) {
                args.push(field(rng));
                args.push(hash_value(rng));
            }
            if rng.chance(5) {
                args.pop();
            }
            args
        }
        3 => vec![name(rng, "HSETNX"), k, field(rng), hash_value(rng)],
        4 => vec![name(rng, "HGET"), k, field(rng)],
        5 => {
            let mut args = vec![name(rng, "HMGET"), k];
            args.extend(fields(rng, 1));
            args
        }
        6 => {
            let mut args = vec![name(rng, "HDEL"), k];
            args.extend(fields(rng, 1));
            args
        }
        7 => vec![pick_name(rng, &["HEXISTS", "HSTRLEN"]), k, field(rng)],
        8 => vec![
            pick_name(rng, &["HLEN", "HKEYS", "HVALS", "HGETALL", "TYPE"]),
            k,
        ],
        9 => {
            let incr = if rng.chance(80) {
                rng.pick(INTS).to_string()
            } else {
                "x".to_string()
            };
            vec![name(rng, "HINCRBY"), k, field(rng), b(&incr)]
        }
        10 => {
            let incr = rng.pick(HASH_FLOATS).to_string();
            vec![name(rng, "HINCRBYFLOAT"), k, field(rng), b(&incr)]
        }
        11 => {
            let count = rng_pick_str(rng, &["100", "9", "0", "abc", "-0"]);
            let mut args = vec![name(rng, "HRANDFIELD"), k, b(count)];
            match rng.below(4) {
                0 => args.push(b("WITHVALUES")),
                1 => args.push(b("withvalues")),
                2 if rng.chance(30) => args.push(b("nope")),
                _ => {}
            }
            args
        }
        12 => {
            let cursor = rng_pick_str(rng, &["0", "0", "0", "x", "-1"]);
            let mut args = vec![name(rng, "HSCAN"), k, b(cursor)];
            if rng.chance(40) {
                args.push(b("MATCH"));
                args.push(b(rng_pick_str(rng, &["f*", "*", "?", "[af]*", "num"])));
            }
            if rng.chance(30) {
                args.push(b("COUNT"));
                args.push(b(rng_pick_str(rng, &["1", "10", "0", "x"])));
            }
            if rng.chance(5) {
                args.push(b("bogus"));
            }
            args
        }
        13 => vec![
            name(rng, "HINCRBY"),
            k,
            b("num"),
            b(rng_pick_str(
                rng,
                &["9223372036854775807", "-9223372036854775808", "1"],
            )),
        ],
        14 => vec![pick_name(rng, &["HGET", "HEXISTS"]), k],
        _ => vec![name(rng, "HSET"), k],
    };
    if args.is_empty() {
        args.push(b("PING"));
    }
    Step::exact(args)
}

/// SORT and SORT_RO over lists and sets, with BY/GET patterns naming string and hash keys.
/// Left out where Redis's order is its qsort's or its hashtable's: ALPHA with a BY pattern
/// (ties), and a set kept unsorted (BY without `*`, no STORE). Sorted sets are left out: SORT
/// converts one to a skiplist in Redis 7.0 for good, changing its later ZSCAN and OBJECT
/// replies (`sort_matches_redis` covers SORT of sorted sets).
fn gen_sort(rng: &mut Rng) -> Step {
    let prefix = rng_pick_str(rng, &["l", "s"]);
    let mut args = vec![
        pick_name(rng, &["SORT", "SORT", "SORT_RO"]),
        typed_key(rng, prefix),
    ];
    let mut alpha = false;
    let mut by_pattern = false;
    for _ in 0..rng.range(0, 3) {
        match rng.below(7) {
            0 => args.push(b(rng_pick_str(rng, &["DESC", "ASC"]))),
            1 => {
                args.push(b("ALPHA"));
                alpha = true;
            }
            2 => args.extend([b("LIMIT"), b(rng.pick(INDEXES)), b(rng.pick(INDEXES))]),
            3 => {
                let pattern = if prefix == "s" {
                    "k*"
                } else {
                    rng_pick_str(rng, &["k*", "nosort", "h*->f1"])
                };
                by_pattern |= pattern.contains('*');
                args.extend([b("BY"), b(pattern)]);
            }
            4 | 5 => args.extend([
                b("GET"),
                b(rng_pick_str(rng, &["#", "k*", "h*->f1", "h*->", "x"])),
            ]),
            _ => args.extend([b("STORE"), typed_key(rng, "l")]),
        }
    }
    if alpha && by_pattern {
        args.retain(|a| !a.eq_ignore_ascii_case(b"ALPHA"));
    }
    Step::exact(args)
}

/// OBJECT over collections whose encoding helios follows (a set that once held a non-integer
/// stays a hashtable in Redis, so sets are left out) and its errors.
fn gen_object(rng: &mut Rng) -> Step {
    let n = rng.below(4);
    let prefix = rng_pick_str(rng, &["h", "l", "z", "nope"]);
    let key = b(&format!("{prefix}{n}"));
    let args = match rng.below(8) {
        0 => vec![name(rng, "OBJECT"), b("FREQ"), key],
        1 => vec![name(rng, "OBJECT"), b("REFCOUNT"), key],
        2 => vec![
            name(rng, "OBJECT"),
            b(rng_pick_str(rng, &["HELP", "bogus", "ENCODING"])),
        ],
        _ => vec![name(rng, "OBJECT"), b("ENCODING"), key],
    };
    Step::exact(args)
}

/// Scores whose text Redis 7.0 (`%.17g`) and 7.2 (shortest round trip) print alike: small
/// dyadic fractions (sums and weighted sums of them stay so), infinities, and bad ones.
const SCORES: &[&str] = &[
    "1", "2", "-1", "0", "1.5", "-2.5", "0.25", "3", "10", "inf", "-inf", "+inf", "-0", "x", "nan",
    "", " 1", "1e2",
];

fn score(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(85) {
        b(rng.pick(&SCORES[..10]))
    } else {
        b(rng.pick(SCORES))
    }
}

const ZMEMBERS: &[&str] = &["a", "b", "c", "d", "", "1", "aa"];

fn zmember(rng: &mut Rng) -> Vec<u8> {
    b(rng.pick(ZMEMBERS))
}

const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "inf", "1", "(1", "2", "(2", "0", "-1", "(-inf", "1.5", "x", "(x", "", "(",
];
const LEX_BOUNDS: &[&str] = &["-", "+", "[a", "(a", "[b", "(c", "[", "(", "[aa", "a", "+x"];

fn zsource_keys(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..rng.range(1, 3))
        .map(|_| {
            if rng.chance(20) {
                typed_key(rng, "s")
            } else {
                typed_key(rng, "z")
            }
        })
        .collect()
}

/// ZUNION/ZINTER/ZDIFF's options: WEIGHTS, AGGREGATE, WITHSCORES, LIMIT, sometimes wrong.
fn zop_options(rng: &mut Rng, nkeys: usize, args: &mut Vec<Vec<u8>>) {
    for _ in 0..rng.range(0, 2) {
        match rng.below(6) {
            0 | 1 => {
                args.push(b("WEIGHTS"));
                let n = if rng.chance(10) { nkeys + 1 } else { nkeys };
                for _ in 0..n {
                    args.push(b(rng_pick_str(
                        rng,
                        &["1", "2", "0", "-1", "0.5", "inf", "x"],
                    )));
                }
            }
            2 | 3 => {
                args.push(b("AGGREGATE"));
                args.push(b(rng_pick_str(rng, &["SUM", "min", "MAX", "avg"])));
            }
            4 => args.push(b(rng_pick_str(rng, &["WITHSCORES", "withscores"]))),
            _ => {
                args.push(b("LIMIT"));
                args.push(b(rng_pick_str(rng, &["0", "1", "-1"])));
            }
        }
    }
}

fn numkeys(rng: &mut Rng, n: usize) -> Vec<u8> {
    match rng.below(10) {
        0 => b("0"),
        1 => b("9"),
        2 => b("x"),
        _ => b(&n.to_string()),
    }
}

/// Sorted-set commands over the same keys as the others. Every reply Redis gives for these
/// small sets is ordered (listpack), so all compare exactly; ZRANDMEMBER only where
/// deterministic (counts at least the size). ZRANK's WITHSCORE is Redis 7.2's, not asked.
fn gen_zset_cmd(rng: &mut Rng) -> Step {
    let k = typed_key(rng, "z");
    let mut args = match rng.below(24) {
        0..=3 => {
            let mut args = vec![name(rng, "ZADD"), k];
            for _ in 0..rng.range(0, 2) {
                args.push(b(rng_pick_str(
                    rng,
                    &["NX", "XX", "GT", "LT", "CH", "INCR", "ch"],
                )));
            }
            for _ in 0..rng.range(1, 3) {
                args.push(score(rng));
                args.push(zmember(rng));
            }
            if rng.chance(5) {
                args.pop();
            }
            args
        }
        4 => {
            let mut args = vec![name(rng, "ZREM"), k];
            for _ in 0..rng.range(1, 3) {
                args.push(zmember(rng));
            }
            args
        }
        5 => vec![
            pick_name(rng, &["ZSCORE", "ZRANK", "ZREVRANK"]),
            k,
            zmember(rng),
        ],
        6 => {
            let mut args = vec![name(rng, "ZMSCORE"), k];
            for _ in 0..rng.range(1, 3) {
                args.push(zmember(rng));
            }
            args
        }
        7 => vec![pick_name(rng, &["ZCARD", "TYPE"]), k],
        8 => vec![name(rng, "ZINCRBY"), k, score(rng), zmember(rng)],
        9 => vec![
            name(rng, "ZCOUNT"),
            k,
            b(rng.pick(SCORE_BOUNDS)),
            b(rng.pick(SCORE_BOUNDS)),
        ],
        10 => vec![
            name(rng, "ZLEXCOUNT"),
            k,
            b(rng.pick(LEX_BOUNDS)),
            b(rng.pick(LEX_BOUNDS)),
        ],
        11..=13 => {
            let (lo, hi, by) = match rng.below(3) {
                0 => (rng.pick(INDEXES), rng.pick(INDEXES), None),
                1 => (
                    rng.pick(SCORE_BOUNDS),
                    rng.pick(SCORE_BOUNDS),
                    Some("BYSCORE"),
                ),
                _ => (rng.pick(LEX_BOUNDS), rng.pick(LEX_BOUNDS), Some("BYLEX")),
            };
            let store = rng.chance(20);
            let mut args = if store {
                vec![name(rng, "ZRANGESTORE"), typed_key(rng, "z"), k]
            } else {
                vec![name(rng, "ZRANGE"), k]
            };
            args.extend([b(lo), b(hi)]);
            if let Some(by) = by {
                if rng.chance(90) {
                    args.push(b(by));
                }
            }
            if rng.chance(30) {
                args.push(b("REV"));
            }
            if rng.chance(30) {
                args.extend([b("LIMIT"), b(rng.pick(INDEXES)), b(rng.pick(INDEXES))]);
            }
            if rng.chance(30) {
                args.push(b("WITHSCORES"));
            }
            args
        }
        14 => {
            let (cmd, lo, hi) = match rng.below(5) {
                0 => ("ZREVRANGE", rng.pick(INDEXES), rng.pick(INDEXES)),
                1 => (
                    "ZRANGEBYSCORE",
                    rng.pick(SCORE_BOUNDS),
                    rng.pick(SCORE_BOUNDS),
                ),
                2 => (
                    "ZREVRANGEBYSCORE",
                    rng.pick(SCORE_BOUNDS),
                    rng.pick(SCORE_BOUNDS),
                ),
                3 => ("ZRANGEBYLEX", rng.pick(LEX_BOUNDS), rng.pick(LEX_BOUNDS)),
                _ => ("ZREVRANGEBYLEX", rng.pick(LEX_BOUNDS), rng.pick(LEX_BOUNDS)),
            };
            let mut args = vec![name(rng, cmd), k, b(lo), b(hi)];
            if rng.chance(40) {
                args.push(b("WITHSCORES"));
            }
            if rng.chance(30) {
                args.extend([b("LIMIT"), b(rng.pick(INDEXES)), b(rng.pick(INDEXES))]);
            }
            args
        }
        15 => {
            let (cmd, lo, hi) = match rng.below(3) {
                0 => ("ZREMRANGEBYRANK", rng.pick(INDEXES), rng.pick(INDEXES)),
                1 => (
                    "ZREMRANGEBYSCORE",
                    rng.pick(SCORE_BOUNDS),
                    rng.pick(SCORE_BOUNDS),
                ),
                _ => ("ZREMRANGEBYLEX", rng.pick(LEX_BOUNDS), rng.pick(LEX_BOUNDS)),
            };
            vec![name(rng, cmd), k, b(lo), b(hi)]
        }
        16 => {
            let mut args = vec![pick_name(rng, &["ZPOPMIN", "ZPOPMAX"]), k];
            if rng.chance(60) {
                args.push(b(rng_pick_str(rng, &["1", "2", "0", "-1", "x", "100"])));
            }
            args
        }
        17 => {
            let keys = zsource_keys(rng);
            let mut args = vec![name(rng, "ZMPOP"), numkeys(rng, keys.len())];
            args.extend(keys);
            args.push(b(rng_pick_str(rng, &["MIN", "max", "middle"])));
            if rng.chance(50) {
                args.extend([
                    b("COUNT"),
                    b(rng_pick_str(rng, &["1", "2", "0", "x", "10"])),
                ]);
            }
            args
        }
        18..=19 => {
            let cmd = rng_pick_str(rng, &["ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD"]);
            let keys = zsource_keys(rng);
            let n = keys.len();
            let mut args = vec![name(rng, cmd), numkeys(rng, n)];
            args.extend(keys);
            zop_options(rng, n, &mut args);
            args
        }
        20 => {
            let cmd = rng_pick_str(rng, &["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]);
            let keys = zsource_keys(rng);
            let n = keys.len();
            let mut args = vec![name(rng, cmd), k, numkeys(rng, n)];
            args.extend(keys);
            zop_options(rng, n, &mut args);
            args
        }
        21 => {
            let count = rng_pick_str(rng, &["100", "0", "abc", "-0", "9"]);
            let mut args = vec![name(rng, "ZRANDMEMBER"), k, b(count)];
            if rng.chance(40) {
                args.push(b(rng_pick_str(rng, &["WITHSCORES", "nope"])));
            }
            args
        }
        22 => {
            let cursor = rng_pick_str(rng, &["0", "0", "x"]);
            let mut args = vec![name(rng, "ZSCAN"), k, b(cursor)];
            if rng.chance(40) {
                args.extend([b("MATCH"), b(rng_pick_str(rng, &["a*", "*", "?"]))]);
            }
            if rng.chance(30) {
                args.extend([b("COUNT"), b(rng_pick_str(rng, &["1", "0", "x"]))]);
            }
            args
        }
        _ => vec![pick_name(rng, &["ZADD", "ZINCRBY", "ZRANGE", "ZCOUNT"]), k],
    };
    // (ZRANDMEMBER with only a key picks at random.)
    if rng.chance(3) && !args[0].eq_ignore_ascii_case(b"ZRANDMEMBER") {
        args.truncate(2);
    }
    Step::exact(args)
}

/// Fixed opening of every sequence: puts counters at the edges so overflow paths get hit.
fn prelude() -> Vec<Step> {
    let steps: &[&[&str]] = &[
        &["SET", "num", "9223372036854775800"],
        &["INCRBY", "num", "7"],
        &["INCR", "num"],
        &["DECRBY", "num", "-1"],
        &["SET", "neg", "-9223372036854775800"],
        &["DECRBY", "neg", "8"],
        &["DECR", "neg"],
        &["INCRBY", "neg", "-1"],
        &["SET", "neg", "5"],
        &["DECRBY", "neg", "-9223372036854775808"],
        &["INCRBYFLOAT", "fl", "0.1"],
        &["INCRBYFLOAT", "fl", "0.2"],
        &["INCRBYFLOAT", "fl", "1e308"],
        &["INCRBYFLOAT", "fl", "1e308"],
        &["INCRBYFLOAT", "fl", "-1e308"],
        &["SET", "fl", "5.0e3"],
        &["INCRBYFLOAT", "fl", "2.0e2"],
        &["INCRBYFLOAT", "fl", "1"],
        &["SET", "k1", "010"],
        &["INCR", "k1"],
        &["SETRANGE", "k2", "5", "x"],
        &["GETRANGE", "k2", "0", "-1"],
        &["SETRANGE", "k2", "0", ""],
        &["GETRANGE", "k2", "-100", "100"],
        &["GETRANGE", "k2", "3", "1"],
        &["SET", "num", "1"],
    ];
    steps
        .iter()
        .map(|s| Step::exact(s.iter().map(|a| b(a)).collect()))
        .collect()
}

fn sequence(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut seq = prelude();
    // Inside MULTI, EXEC replies every queued command in one array, compared as it is: a
    // step whose reply needs normalizing (SCAN walks, KEYS order...) is drawn again.
    let mut in_multi = false;
    for step in 0..steps {
        let mut next = gen_step(&mut rng, step);
        while in_multi && next.norm != Norm::Exact {
            next = gen_step(&mut rng, step);
        }
        match next.args.first().map(|a| a.to_ascii_uppercase()) {
            Some(name) if name == b"MULTI" => in_multi = true,
            Some(name) if name == b"EXEC" || name == b"DISCARD" => in_multi = false,
            _ => {}
        }
        seq.push(next);
    }
    seq
}

/// Runs one step and returns the normalized reply bytes.
fn run_step(conn: &mut RespConn, step: &Step) -> Result<Vec<u8>, String> {
    if step.norm == Norm::ScanAll {
        return scan_all(conn, &[b("SCAN")], &step.args[1..]);
    }
    if step.norm == Norm::SscanAll {
        return scan_all(conn, &step.args[..2], &step.args[3..]);
    }
    let raw = conn
        .cmd(&step.args)
        .map_err(|e| format!("<I/O error: {e}>"))?;
    match step.norm {
        Norm::Exact | Norm::ScanAll | Norm::SscanAll => Ok(raw),
        Norm::TypeOnly => Ok(raw[..1].to_vec()),
        Norm::Sorted => {
            let mut frame = Frame::parse(&raw).map_err(|e| format!("<unparsable: {e}>"))?;
            frame.children.sort();
            Ok(frame.to_bytes())
        }
        Norm::Positive => {
            let frame = Frame::parse(&raw).map_err(|e| format!("<unparsable: {e}>"))?;
            match frame.integer() {
                Some(n) if n > 0 => Ok(b(":<positive>\r\n")),
                _ => Ok(raw),
            }
        }
    }
}

/// Upper bound on SCAN calls in one walk (the keyspace has at most ~20 keys per db).
const SCAN_CALLS_MAX: usize = 1000;

/// Walks a SCAN-family command (`prefix`: the name, and the key for SSCAN) from cursor 0
/// back to 0; returns the sorted set of elements seen, or an error reply as is.
fn scan_all(conn: &mut RespConn, prefix: &[Vec<u8>], extra: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut cursor = b("0");
    let mut seen: Vec<Frame> = Vec::new();
    for _ in 0..SCAN_CALLS_MAX {
        let mut args = prefix.to_vec();
        args.push(cursor.clone());
        args.extend(extra.iter().cloned());
        let raw = conn.cmd(&args).map_err(|e| format!("<I/O error: {e}>"))?;
        let frame = Frame::parse(&raw).map_err(|e| format!("<unparsable: {e}>"))?;
        if frame.kind() != b'*' || frame.children.len() != 2 {
            return Ok(raw); // an error reply: compare it as is
        }
        seen.extend(frame.children[1].children.iter().cloned());
        cursor = frame.children[0]
            .bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        if cursor == b"0" {
            seen.sort();
            seen.dedup();
            let set = Frame {
                head: format!("*{}", seen.len()).into_bytes(),
                payload: None,
                children: seen,
            };
            return Ok(set.to_bytes());
        }
    }
    Err(format!(
        "<SCAN walk did not return to cursor 0 within {SCAN_CALLS_MAX} calls>"
    ))
}

struct Mismatch {
    seed: u64,
    resp: u8,
    index: usize,
    command: String,
    helios: String,
    redis: String,
    /// The steps just before, with redis-server's replies (both servers agreed on them).
    context: Vec<String>,
}

/// Steps of context shown before a mismatch.
const CONTEXT_STEPS: usize = 8;

/// Runs `seq` on both servers over fresh connections; returns the first mismatch, if any (later
/// steps are not compared: the two keyspaces have diverged).
fn run_sequence(
    helios_port: u16,
    redis_port: u16,
    seed: u64,
    resp: u8,
    seq: &[Step],
) -> Option<Mismatch> {
    let mut h = RespConn::connect(helios_port).expect("connect helios");
    let mut r = RespConn::connect(redis_port).expect("connect redis");
    let mut setup = vec![Step::exact(vec![b("FLUSHALL")])];
    if resp == 3 {
        setup.push(Step {
            args: vec![b("HELLO"), b("3")],
            norm: Norm::TypeOnly,
        });
    }
    let seq = setup.iter().chain(seq);
    let trace = std::env::var_os("HELIOS_DIFF_TRACE").is_some();
    let mut context = std::collections::VecDeque::with_capacity(CONTEXT_STEPS + 1);
    for (index, step) in seq.enumerate() {
        let hr = run_step(&mut h, step);
        let rr = run_step(&mut r, step);
        let mut rr = rr.unwrap_or_else(|e| panic!("redis-server failed on {}: {e}", step.show()));
        if hr.as_deref() != Ok(&rr[..]) && sort_failed_on_stale_errno(step, &rr) {
            rr = rerun_sort_with_errno_cleared(&mut r, step);
        }
        if trace {
            eprintln!(
                "seed {seed} RESP{resp} step {index}: {} -> {}",
                step.show(),
                render(&rr)
            );
        }
        let hr_text = match &hr {
            Ok(bytes) => render(bytes),
            Err(e) => e.clone(),
        };
        if hr.as_deref() != Ok(&rr[..]) {
            let context = context.into_iter().collect();
            return Some(Mismatch {
                seed,
                resp,
                index,
                command: step.show(),
                helios: hr_text,
                redis: render(&rr),
                context,
            });
        }
        context.push_back(format!("{} -> {}", step.show(), render(&rr)));
        if context.len() > CONTEXT_STEPS {
            context.pop_front();
        }
    }
    None
}

/// Redis 7.0's SORT converts each weight with `strtod` and then tests `errno == ERANGE`
/// without clearing `errno` first, so a weight as plain as "1" fails ("One or more scores
/// can't be converted into double") when an earlier command left ERANGE behind: a SCAN
/// cursor past 2^64 does. helios sorts such elements; this is redis-server's answer to tell
/// apart from a real difference.
fn sort_failed_on_stale_errno(step: &Step, redis_reply: &[u8]) -> bool {
    let name = step.args[0].to_ascii_uppercase();
    (name == b"SORT" || name == b"SORT_RO")
        && redis_reply == b"-ERR One or more scores can't be converted into double\r\n"
}

/// Clears redis-server's `errno` (ZUNION parses its WEIGHTS with `errno = 0` first; the key is
/// one no sequence names, so nothing is read or written) and runs the SORT again. The failed
/// SORT changed nothing, so running it again (STORE included) is its first effect.
fn rerun_sort_with_errno_cleared(redis: &mut RespConn, step: &Step) -> Vec<u8> {
    let clear = [
        b("ZUNION"),
        b("1"),
        b("__differential_errno__"),
        b("WEIGHTS"),
        b("1"),
    ];
    redis.cmd(&clear).expect("redis-server: ZUNION");
    run_step(redis, step)
        .unwrap_or_else(|e| panic!("redis-server failed on {} (again): {e}", step.show()))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn helios_matches_redis_byte_for_byte() {
    compare_with_redis(ServerOpts::default().shards(2));
}

/// The same sequences with no value kept in memory after a batch: every command that reads a
/// value first loads it from the shard's LSM tree (the path data larger than memory takes).
#[test]
fn helios_matches_redis_with_every_value_offloaded() {
    compare_with_redis(
        ServerOpts::default()
            .shards(2)
            .env("HELIOS_TEST_RESIDENT_VALUE_BYTES", "0"),
    );
}

fn compare_with_redis(opts: ServerOpts) {
    let Some(redis) = RedisServer::try_start() else {
        return;
    };
    let helios = HeliosServer::start(opts);
    let seeds: u64 = env_or("HELIOS_DIFF_SEEDS", SEEDS_DEFAULT);
    let steps: usize = env_or("HELIOS_DIFF_STEPS", STEPS_DEFAULT);
    let mut mismatches = Vec::new();
    for seed in 1..=seeds {
        let seq = sequence(seed, steps);
        for resp in [2u8, 3] {
            if let Some(m) = run_sequence(helios.port(), redis.port(), seed, resp, &seq) {
                mismatches.push(m);
            }
        }
    }
    if mismatches.is_empty() {
        return;
    }
    let mut report = format!(
        "{} of {} runs diverged from redis-server:\n",
        mismatches.len(),
        seeds * 2
    );
    for m in &mismatches {
        report.push_str(&format!(
            "\nseed {} RESP{} step {}:\n  after:\n",
            m.seed, m.resp, m.index
        ));
        for line in &m.context {
            report.push_str(&format!("    {line}\n"));
        }
        report.push_str(&format!(
            "  command: {}\n  helios:  {}\n  redis:   {}\n",
            m.command, m.helios, m.redis
        ));
    }
    panic!("{report}");
}

#[test]
fn sequences_are_deterministic() {
    let a: Vec<String> = sequence(42, 200).iter().map(Step::show).collect();
    let b: Vec<String> = sequence(42, 200).iter().map(Step::show).collect();
    assert_eq!(a, b);
}
