//! The Redis command table: arity, flags and key positions as Redis 7.0 reports them in
//! COMMAND INFO, how the router runs each command ([`CommandKind`]), a short COMMAND DOCS entry,
//! and the shard-local implementation where there is one.
//!
//! The table is sorted by name so [`lookup`] is a case-insensitive binary search that never
//! allocates. Entries were generated from `COMMAND INFO`/`COMMAND DOCS` of redis-server 7.0.

use std::borrow::Cow;

use super::{hashes, keys, sets, strings, ExecFn};
use crate::Reply;

/// How the server routes a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Served by the connection itself; touches no keyspace.
    Connection,
    /// Every key hashes to one shard: run `exec_local` there.
    SingleKey,
    /// Keys may span shards: split the keys per shard, run each part with `exec_local`,
    /// merge the replies. When all keys are on one shard it runs like `SingleKey`.
    MultiKey { merge: Merge },
    /// Keyless: run on every shard and merge.
    AllShards { merge: Merge },
}

/// How the per-shard replies of a fanned-out command combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Arrays concatenated; for MGET, put back in the order of the keys asked.
    ConcatArray,
    /// Integers summed (DEL, EXISTS, DBSIZE...).
    SumInt,
    /// `+OK` once all shards answered `+OK`.
    Ok,
    /// All shards must agree before any writes (MSETNX): 1 only if every key was absent.
    AllOrNothing,
    /// Two keys that may live on two shards (RENAME, RENAMENX): read, delete, write.
    TwoKey,
    /// Any shard's non-null reply (RANDOMKEY).
    AnyNonNull,
    /// The router drives `Keyspace::scan` shard after shard (SCAN).
    Scan,
    /// Set operations over keys on several shards: the router gathers the members under
    /// intent locks, combines them and stores the result where the command says.
    Gather,
}

/// Deprecation notice shown by COMMAND DOCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecation {
    pub since: &'static str,
    pub replaced_by: &'static str,
}

/// The COMMAND DOCS fields we report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub complexity: &'static str,
    pub deprecation: Option<Deprecation>,
}

/// One command's table entry.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis convention: N = exactly N arguments including the name, -N = at least N.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub kind: CommandKind,
    pub acl_categories: &'static [&'static str],
    /// COMMAND INFO "tips" (request/response policies).
    pub tips: &'static [&'static str],
    pub doc: Doc,
    /// The shard-local implementation (None: run by the connection or the router).
    pub(crate) exec: Option<ExecFn>,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .field("arity", &self.arity)
            .field("flags", &self.flags)
            .field("first_key", &self.first_key)
            .field("last_key", &self.last_key)
            .field("step", &self.step)
            .field("kind", &self.kind)
            .finish()
    }
}

impl CommandSpec {
    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == arity
        } else {
            argc >= arity
        }
    }

    /// Whether the command has `flag` (e.g. "write", "readonly").
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// Positions of the key arguments in an `argc`-long command, by first/last/step.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            (argc as i64 + self.last_key as i64).max(0) as usize
        } else {
            (self.last_key as usize).min(argc.saturating_sub(1))
        };
        let step = self.step.max(1) as usize;
        let range = if self.first_key > 0 && first <= last {
            first..last + 1
        } else {
            0..0
        };
        range.step_by(step)
    }
}

/// Every command this server knows, sorted by name.
pub fn all() -> &'static [CommandSpec] {
    COMMANDS
}

/// Case-insensitive look-up by name; no allocation.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    // This runs twice per request (routing and execution). A binary search comparing strings
    // (case folding, then memcmp calls) was ~15% of a GET pipeline's profile; comparing one
    // packed integer per step is a few instructions.
    let key = pack_name(name)?;
    let index = &*NAME_INDEX;
    let at = index
        .binary_search_by_key(&key, |&(packed, _)| packed)
        .ok()?;
    Some(&COMMANDS[index[at].1])
}

/// Command names of at most this many bytes are packed; longer ones are unknown commands.
const PACKED_NAME_BYTES_MAX: usize = 15;

/// A name, lower-cased, in the first 15 bytes of a u128 and its length in the last (so a
/// trailing NUL cannot make "get\0" equal "get").
fn pack_name(name: &[u8]) -> Option<u128> {
    if name.len() > PACKED_NAME_BYTES_MAX {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (dst, src) in bytes.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    bytes[15] = name.len() as u8;
    Some(u128::from_be_bytes(bytes))
}

/// (packed name, index in COMMANDS), sorted by packed name.
static NAME_INDEX: std::sync::LazyLock<Vec<(u128, usize)>> = std::sync::LazyLock::new(|| {
    let mut index: Vec<(u128, usize)> = COMMANDS
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            (
                pack_name(spec.name.as_bytes()).expect("command names are short"),
                i,
            )
        })
        .collect();
    index.sort_unstable();
    assert!(
        index.windows(2).all(|w| w[0].0 != w[1].0),
        "command names are unique"
    );
    index
});

fn status_set(items: &[&'static str]) -> Reply {
    Reply::Set(
        items
            .iter()
            .map(|s| Reply::Status(Cow::Borrowed(*s)))
            .collect(),
    )
}

fn bulk_str(s: &'static str) -> Reply {
    Reply::Bulk(bytes::Bytes::from_static(s.as_bytes()))
}

/// One command's COMMAND INFO reply (key specs and subcommands left empty).
pub fn command_info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        status_set(spec.flags),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        status_set(spec.acl_categories),
        Reply::Array(spec.tips.iter().map(|t| bulk_str(t)).collect()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// One command's COMMAND DOCS map (the value under its name): summary, since, group,
/// complexity, and deprecation fields where they apply.
pub fn command_docs(spec: &CommandSpec) -> Reply {
    let doc = &spec.doc;
    let mut map = vec![
        (bulk_str("summary"), bulk_str(doc.summary)),
        (bulk_str("since"), bulk_str(doc.since)),
        (bulk_str("group"), bulk_str(doc.group)),
        (bulk_str("complexity"), bulk_str(doc.complexity)),
    ];
    if let Some(dep) = doc.deprecation {
        map.push((bulk_str("doc_flags"), status_set(&["deprecated"])));
        map.push((bulk_str("deprecated_since"), bulk_str(dep.since)));
        map.push((bulk_str("replaced_by"), bulk_str(dep.replaced_by)));
    }
    Reply::Map(map)
}

static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "append",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Append a value to a key", since: "2.0.0", group: "string", complexity: "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.", deprecation: None },
        exec: Some(strings::append),
    },
    CommandSpec {
        name: "client",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@slow"],
        tips: &[],
        doc: Doc { summary: "A container for client connection commands", since: "2.4.0", group: "connection", complexity: "Depends on subcommand.", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@slow", "@connection"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Get array of Redis command details", since: "2.8.13", group: "server", complexity: "O(N) where N is the total number of Redis commands", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "config",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@slow"],
        tips: &[],
        doc: Doc { summary: "A container for server configuration commands", since: "2.0.0", group: "server", complexity: "Depends on subcommand.", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "dbsize",
        arity: 1,
        flags: &["readonly", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::SumInt },
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["request_policy:all_shards", "response_policy:agg_sum"],
        doc: Doc { summary: "Return the number of keys in the selected database", since: "1.0.0", group: "server", complexity: "O(1)", deprecation: None },
        exec: Some(keys::dbsize),
    },
    CommandSpec {
        name: "decr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Decrement the integer value of a key by one", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::decr),
    },
    CommandSpec {
        name: "decrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Decrement the integer value of a key by the given number", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::decrby),
    },
    CommandSpec {
        name: "del",
        arity: -2,
        flags: &["write"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::SumInt },
        acl_categories: &["@keyspace", "@write", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        doc: Doc { summary: "Delete a key", since: "1.0.0", group: "generic", complexity: "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).", deprecation: None },
        exec: Some(keys::del),
    },
    CommandSpec {
        name: "echo",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        doc: Doc { summary: "Echo the given string", since: "1.0.0", group: "connection", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::SumInt },
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        doc: Doc { summary: "Determine if a key exists", since: "1.0.0", group: "generic", complexity: "O(N) where N is the number of keys to check.", deprecation: None },
        exec: Some(keys::exists),
    },
    CommandSpec {
        name: "expire",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set a key's time to live in seconds", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::expire),
    },
    CommandSpec {
        name: "expireat",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the expiration for a key as a UNIX timestamp", since: "1.2.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::expireat),
    },
    CommandSpec {
        name: "expiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the expiration Unix timestamp for a key", since: "7.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::expiretime),
    },
    CommandSpec {
        name: "flushall",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::Ok },
        acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        doc: Doc { summary: "Remove all keys from all databases", since: "1.0.0", group: "server", complexity: "O(N) where N is the total number of keys in all databases", deprecation: None },
        exec: Some(keys::flushall),
    },
    CommandSpec {
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::Ok },
        acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        doc: Doc { summary: "Remove all keys from the current database", since: "1.0.0", group: "server", complexity: "O(N) where N is the number of keys in the selected database", deprecation: None },
        exec: Some(keys::flushdb),
    },
    CommandSpec {
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the value of a key", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::get),
    },
    CommandSpec {
        name: "getdel",
        arity: 2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the value of a key and delete the key", since: "6.2.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::getdel),
    },
    CommandSpec {
        name: "getex",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the value of a key and optionally set its expiration", since: "6.2.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::getex),
    },
    CommandSpec {
        name: "getrange",
        arity: 4,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@string", "@slow"],
        tips: &[],
        doc: Doc { summary: "Get a substring of the string stored at a key", since: "2.4.0", group: "string", complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.", deprecation: None },
        exec: Some(strings::getrange),
    },
    CommandSpec {
        name: "getset",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the string value of a key and return its old value", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: Some(Deprecation { since: "6.2.0", replaced_by: "`SET` with the `!GET` argument" }) },
        exec: Some(strings::getset),
    },
    CommandSpec {
        name: "hdel",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Delete one or more hash fields", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields to be removed.", deprecation: None },
        exec: Some(hashes::hdel),
    },
    CommandSpec {
        name: "hello",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        doc: Doc { summary: "Handshake with Redis", since: "6.0.0", group: "connection", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "hexists",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Determine if a hash field exists", since: "2.0.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hexists),
    },
    CommandSpec {
        name: "hget",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the value of a hash field", since: "2.0.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hget),
    },
    CommandSpec {
        name: "hgetall",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Get all the fields and values in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash.", deprecation: None },
        exec: Some(hashes::hgetall),
    },
    CommandSpec {
        name: "hincrby",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Increment the integer value of a hash field by the given number", since: "2.0.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hincrby),
    },
    CommandSpec {
        name: "hincrbyfloat",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Increment the float value of a hash field by the given amount", since: "2.6.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hincrbyfloat),
    },
    CommandSpec {
        name: "hkeys",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Get all the fields in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash.", deprecation: None },
        exec: Some(hashes::hkeys),
    },
    CommandSpec {
        name: "hlen",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the number of fields in a hash", since: "2.0.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hlen),
    },
    CommandSpec {
        name: "hmget",
        arity: -3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the values of all the given hash fields", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields being requested.", deprecation: None },
        exec: Some(hashes::hmget),
    },
    CommandSpec {
        name: "hmset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set multiple hash fields to multiple values", since: "2.0.0", group: "hash", complexity: "O(N) where N is the number of fields being set.", deprecation: Some(Deprecation { since: "4.0.0", replaced_by: "`HSET` with multiple field-value pairs" }) },
        exec: Some(hashes::hmset),
    },
    CommandSpec {
        name: "hrandfield",
        arity: -2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Get one or multiple random fields from a hash", since: "6.2.0", group: "hash", complexity: "O(N) where N is the number of fields returned", deprecation: None },
        exec: Some(hashes::hrandfield),
    },
    CommandSpec {
        name: "hscan",
        arity: -3,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Incrementally iterate hash fields and associated values", since: "2.8.0", group: "hash", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", deprecation: None },
        exec: Some(hashes::hscan),
    },
    CommandSpec {
        name: "hset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the string value of a hash field", since: "2.0.0", group: "hash", complexity: "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.", deprecation: None },
        exec: Some(hashes::hset),
    },
    CommandSpec {
        name: "hsetnx",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the value of a hash field, only if the field does not exist", since: "2.0.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hsetnx),
    },
    CommandSpec {
        name: "hstrlen",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the length of the value of a hash field", since: "3.2.0", group: "hash", complexity: "O(1)", deprecation: None },
        exec: Some(hashes::hstrlen),
    },
    CommandSpec {
        name: "hvals",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@hash", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Get all the values in a hash", since: "2.0.0", group: "hash", complexity: "O(N) where N is the size of the hash.", deprecation: None },
        exec: Some(hashes::hvals),
    },
    CommandSpec {
        name: "incr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Increment the integer value of a key by one", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::incr),
    },
    CommandSpec {
        name: "incrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Increment the integer value of a key by the given amount", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::incrby),
    },
    CommandSpec {
        name: "incrbyfloat",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Increment the float value of a key by the given amount", since: "2.6.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::incrbyfloat),
    },
    CommandSpec {
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@slow", "@dangerous"],
        tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"],
        doc: Doc { summary: "Get information and statistics about the server", since: "1.0.0", group: "server", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::ConcatArray },
        acl_categories: &["@keyspace", "@read", "@slow", "@dangerous"],
        tips: &["request_policy:all_shards", "nondeterministic_output_order"],
        doc: Doc { summary: "Find all keys matching the given pattern", since: "1.0.0", group: "generic", complexity: "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.", deprecation: None },
        exec: Some(keys::keys),
    },
    CommandSpec {
        name: "mget",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::ConcatArray },
        acl_categories: &["@read", "@string", "@fast"],
        tips: &["request_policy:multi_shard"],
        doc: Doc { summary: "Get the values of all the given keys", since: "1.0.0", group: "string", complexity: "O(N) where N is the number of keys to retrieve.", deprecation: None },
        exec: Some(strings::mget),
    },
    CommandSpec {
        name: "mset",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 2,
        kind: CommandKind::MultiKey { merge: Merge::Ok },
        acl_categories: &["@write", "@string", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:all_succeeded"],
        doc: Doc { summary: "Set multiple keys to multiple values", since: "1.0.1", group: "string", complexity: "O(N) where N is the number of keys to set.", deprecation: None },
        exec: Some(strings::mset),
    },
    CommandSpec {
        name: "msetnx",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 2,
        kind: CommandKind::MultiKey { merge: Merge::AllOrNothing },
        acl_categories: &["@write", "@string", "@slow"],
        tips: &["request_policy:multi_shard", "response_policy:agg_min"],
        doc: Doc { summary: "Set multiple keys to multiple values, only if none of the keys exist", since: "1.0.1", group: "string", complexity: "O(N) where N is the number of keys to set.", deprecation: None },
        exec: Some(strings::msetnx),
    },
    CommandSpec {
        name: "persist",
        arity: 2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Remove the expiration from a key", since: "2.2.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::persist),
    },
    CommandSpec {
        name: "pexpire",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set a key's time to live in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::pexpire),
    },
    CommandSpec {
        name: "pexpireat",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the expiration for a key as a UNIX timestamp specified in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::pexpireat),
    },
    CommandSpec {
        name: "pexpiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the expiration Unix timestamp for a key in milliseconds", since: "7.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::pexpiretime),
    },
    CommandSpec {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast", "@connection"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        doc: Doc { summary: "Ping the server", since: "1.0.0", group: "connection", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "psetex",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        doc: Doc { summary: "Set the value and expiration in milliseconds of a key", since: "2.6.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::psetex),
    },
    CommandSpec {
        name: "pttl",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Get the time to live for a key in milliseconds", since: "2.6.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::pttl),
    },
    CommandSpec {
        name: "quit",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        doc: Doc { summary: "Close the connection", since: "1.0.0", group: "connection", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "randomkey",
        arity: 1,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::AnyNonNull },
        acl_categories: &["@keyspace", "@read", "@slow"],
        tips: &["request_policy:all_shards", "nondeterministic_output"],
        doc: Doc { summary: "Return a random key from the keyspace", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::randomkey),
    },
    CommandSpec {
        name: "rename",
        arity: 3,
        flags: &["write"],
        first_key: 1,
        last_key: 2,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::TwoKey },
        acl_categories: &["@keyspace", "@write", "@slow"],
        tips: &[],
        doc: Doc { summary: "Rename a key", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::rename),
    },
    CommandSpec {
        name: "renamenx",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 2,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::TwoKey },
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &[],
        doc: Doc { summary: "Rename a key, only if the new key does not exist", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::renamenx),
    },
    CommandSpec {
        name: "sadd",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Add one or more members to a set", since: "1.0.0", group: "set", complexity: "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", deprecation: None },
        exec: Some(sets::sadd),
    },
    CommandSpec {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::AllShards { merge: Merge::Scan },
        acl_categories: &["@keyspace", "@read", "@slow"],
        tips: &["nondeterministic_output", "request_policy:special"],
        doc: Doc { summary: "Incrementally iterate the keys space", since: "2.8.0", group: "generic", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "scard",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the number of members in a set", since: "1.0.0", group: "set", complexity: "O(1)", deprecation: None },
        exec: Some(sets::scard),
    },
    CommandSpec {
        name: "sdiff",
        arity: -2,
        flags: &["readonly"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Subtract multiple sets", since: "1.0.0", group: "set", complexity: "O(N) where N is the total number of elements in all given sets.", deprecation: None },
        exec: Some(sets::sdiff),
    },
    CommandSpec {
        name: "sdiffstore",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@write", "@set", "@slow"],
        tips: &[],
        doc: Doc { summary: "Subtract multiple sets and store the resulting set in a key", since: "1.0.0", group: "set", complexity: "O(N) where N is the total number of elements in all given sets.", deprecation: None },
        exec: Some(sets::sdiffstore),
    },
    CommandSpec {
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast", "@connection"],
        tips: &[],
        doc: Doc { summary: "Change the selected database for the current connection", since: "1.0.0", group: "connection", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "set",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        doc: Doc { summary: "Set the string value of a key", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::set),
    },
    CommandSpec {
        name: "setex",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        doc: Doc { summary: "Set the value and expiration of a key", since: "2.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::setex),
    },
    CommandSpec {
        name: "setnx",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Set the value of a key, only if the key does not exist", since: "1.0.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::setnx),
    },
    CommandSpec {
        name: "setrange",
        arity: 4,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@string", "@slow"],
        tips: &[],
        doc: Doc { summary: "Overwrite part of a string at key starting at the specified offset", since: "2.2.0", group: "string", complexity: "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.", deprecation: None },
        exec: Some(strings::setrange),
    },
    CommandSpec {
        name: "sinter",
        arity: -2,
        flags: &["readonly"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Intersect multiple sets", since: "1.0.0", group: "set", complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", deprecation: None },
        exec: Some(sets::sinter),
    },
    CommandSpec {
        name: "sintercard",
        arity: -3,
        flags: &["readonly", "movablekeys"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@read", "@set", "@slow"],
        tips: &[],
        doc: Doc { summary: "Intersect multiple sets and return the cardinality of the result", since: "7.0.0", group: "set", complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", deprecation: None },
        exec: Some(sets::sintercard),
    },
    CommandSpec {
        name: "sinterstore",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@write", "@set", "@slow"],
        tips: &[],
        doc: Doc { summary: "Intersect multiple sets and store the resulting set in a key", since: "1.0.0", group: "set", complexity: "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", deprecation: None },
        exec: Some(sets::sinterstore),
    },
    CommandSpec {
        name: "sismember",
        arity: 3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Determine if a given value is a member of a set", since: "1.0.0", group: "set", complexity: "O(1)", deprecation: None },
        exec: Some(sets::sismember),
    },
    CommandSpec {
        name: "smembers",
        arity: 2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Get all the members in a set", since: "1.0.0", group: "set", complexity: "O(N) where N is the set cardinality.", deprecation: None },
        exec: Some(sets::smembers),
    },
    CommandSpec {
        name: "smismember",
        arity: -3,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Returns the membership associated with the given elements for a set", since: "6.2.0", group: "set", complexity: "O(N) where N is the number of elements being checked for membership", deprecation: None },
        exec: Some(sets::smismember),
    },
    CommandSpec {
        name: "smove",
        arity: 4,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 2,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@write", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Move a member from one set to another", since: "1.0.0", group: "set", complexity: "O(1)", deprecation: None },
        exec: Some(sets::smove),
    },
    CommandSpec {
        name: "spop",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@set", "@fast"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Remove and return one or multiple random members from a set", since: "1.0.0", group: "set", complexity: "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.", deprecation: None },
        exec: Some(sets::spop),
    },
    CommandSpec {
        name: "srandmember",
        arity: -2,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Get one or multiple random members from a set", since: "1.0.0", group: "set", complexity: "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.", deprecation: None },
        exec: Some(sets::srandmember),
    },
    CommandSpec {
        name: "srem",
        arity: -3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@write", "@set", "@fast"],
        tips: &[],
        doc: Doc { summary: "Remove one or more members from a set", since: "1.0.0", group: "set", complexity: "O(N) where N is the number of members to be removed.", deprecation: None },
        exec: Some(sets::srem),
    },
    CommandSpec {
        name: "sscan",
        arity: -3,
        flags: &["readonly"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Incrementally iterate Set elements", since: "2.8.0", group: "set", complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", deprecation: None },
        exec: Some(sets::sscan),
    },
    CommandSpec {
        name: "strlen",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@read", "@string", "@fast"],
        tips: &[],
        doc: Doc { summary: "Get the length of the value stored in a key", since: "2.2.0", group: "string", complexity: "O(1)", deprecation: None },
        exec: Some(strings::strlen),
    },
    CommandSpec {
        name: "sunion",
        arity: -2,
        flags: &["readonly"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@read", "@set", "@slow"],
        tips: &["nondeterministic_output_order"],
        doc: Doc { summary: "Add multiple sets", since: "1.0.0", group: "set", complexity: "O(N) where N is the total number of elements in all given sets.", deprecation: None },
        exec: Some(sets::sunion),
    },
    CommandSpec {
        name: "sunionstore",
        arity: -3,
        flags: &["write", "denyoom"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::Gather },
        acl_categories: &["@write", "@set", "@slow"],
        tips: &[],
        doc: Doc { summary: "Add multiple sets and store the resulting set in a key", since: "1.0.0", group: "set", complexity: "O(N) where N is the total number of elements in all given sets.", deprecation: None },
        exec: Some(sets::sunionstore),
    },
    CommandSpec {
        name: "time",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        kind: CommandKind::Connection,
        acl_categories: &["@fast"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Return the current server time", since: "2.6.0", group: "server", complexity: "O(1)", deprecation: None },
        exec: None,
    },
    CommandSpec {
        name: "touch",
        arity: -2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::SumInt },
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        doc: Doc { summary: "Alters the last access time of a key(s). Returns the number of existing keys specified.", since: "3.2.1", group: "generic", complexity: "O(N) where N is the number of keys that will be touched.", deprecation: None },
        exec: Some(keys::touch),
    },
    CommandSpec {
        name: "ttl",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &["nondeterministic_output"],
        doc: Doc { summary: "Get the time to live for a key in seconds", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::ttl),
    },
    CommandSpec {
        name: "type",
        arity: 2,
        flags: &["readonly", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        kind: CommandKind::SingleKey,
        acl_categories: &["@keyspace", "@read", "@fast"],
        tips: &[],
        doc: Doc { summary: "Determine the type stored at key", since: "1.0.0", group: "generic", complexity: "O(1)", deprecation: None },
        exec: Some(keys::type_),
    },
    CommandSpec {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: -1,
        step: 1,
        kind: CommandKind::MultiKey { merge: Merge::SumInt },
        acl_categories: &["@keyspace", "@write", "@fast"],
        tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
        doc: Doc { summary: "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", since: "4.0.0", group: "generic", complexity: "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.", deprecation: None },
        exec: Some(keys::unlink),
    },
];
