//! Keyspace commands (db.c, expire.c): TYPE, EXISTS, TOUCH, DEL, UNLINK, the EXPIRE family,
//! TTL family, PERSIST, RENAME, RENAMENX, and the per-shard parts of KEYS, DBSIZE, FLUSHDB,
//! FLUSHALL and RANDOMKEY.

use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use helios_engine::keyspace::{Mutation, Value};

use super::num::parse_i64;
use super::{
    cstr, err, error_from_bytes, int_arg, invalid_expire, is_opt, keys_pattern_match,
    not_an_integer, syntax_error, value_unavailable, ExecCtx,
};
use crate::{Command, Reply};

pub(super) fn type_(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let name = ctx
        .entry(&cmd.args[1])
        .map_or("none", |e| e.value.type_name());
    Reply::Status(Cow::Borrowed(name))
}

fn count_live(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let n = cmd.args[1..]
        .iter()
        .filter(|k| ctx.entry(k).is_some())
        .count();
    Reply::Int(n as i64)
}

pub(super) fn exists(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    count_live(ctx, cmd)
}

pub(super) fn touch(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    count_live(ctx, cmd)
}

fn delete_keys(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let mut deleted = 0;
    for key in &cmd.args[1..] {
        if ctx.entry(key).is_some() {
            ctx.del(key);
            deleted += 1;
        }
    }
    Reply::Int(deleted)
}

pub(super) fn del(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    delete_keys(ctx, cmd)
}

pub(super) fn unlink(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    delete_keys(ctx, cmd)
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// `parseExtendedExpireArgumentsOrReply`.
fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for arg in args {
        if is_opt(arg, "nx") {
            f.nx = true;
        } else if is_opt(arg, "xx") {
            f.xx = true;
        } else if is_opt(arg, "gt") {
            f.gt = true;
        } else if is_opt(arg, "lt") {
            f.lt = true;
        } else {
            // addReplyErrorFormat: "%s" stops at NUL, CR/LF at the end are trimmed.
            let mut text = b"ERR Unsupported option ".to_vec();
            text.extend_from_slice(cstr(arg));
            while matches!(text.last(), Some(b'\r' | b'\n')) {
                text.pop();
            }
            return Err(error_from_bytes(text));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// `expireGenericCommand`: `base_ms` is now for EXPIRE/PEXPIRE and 0 for the *AT forms.
fn expire_generic(
    ctx: &mut ExecCtx,
    cmd: &Command,
    base_ms: i64,
    seconds: bool,
    command: &str,
) -> Reply {
    let key = &cmd.args[1];
    let flags = match parse_expire_flags(&cmd.args[3..]) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut when = match int_arg(&cmd.args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid_expire(command);
        }
        when *= 1000;
    }
    if when > i64::MAX - base_ms {
        return invalid_expire(command);
    }
    when += base_ms;
    let current = match ctx.entry(key) {
        None => return Reply::Int(0),
        // The expiry is stored with the value: rewriting it needs the value.
        Some(e) if !e.value.is_resident() => return value_unavailable(),
        Some(e) => e.expire_at_ms.map(|at| at as i64),
    };
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        || (flags.gt && current.is_none_or(|c| when <= c))
        || (flags.lt && current.is_some_and(|c| when >= c));
    if refused {
        return Reply::Int(0);
    }
    if when <= ctx.now_ms as i64 {
        ctx.del(key);
    } else if current != Some(when) {
        let db = ctx.db;
        ctx.commit(Mutation::SetExpire {
            db,
            key: key.clone(),
            expire_at_ms: Some(when as u64),
        });
    }
    Reply::Int(1)
}

pub(super) fn expire(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, cmd, now, true, "expire")
}

pub(super) fn pexpire(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, cmd, now, false, "pexpire")
}

pub(super) fn expireat(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    expire_generic(ctx, cmd, 0, true, "expireat")
}

pub(super) fn pexpireat(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    expire_generic(ctx, cmd, 0, false, "pexpireat")
}

/// `ttlGenericCommand`.
fn ttl_generic(ctx: &mut ExecCtx, cmd: &Command, ms: bool, absolute: bool) -> Reply {
    let now = ctx.now_ms as i128;
    let at = match ctx.entry(&cmd.args[1]) {
        None => return Reply::Int(-2),
        Some(e) => match e.expire_at_ms {
            None => return Reply::Int(-1),
            Some(at) => at as i128,
        },
    };
    let ttl = if absolute { at } else { (at - now).max(0) };
    Reply::Int(if ms {
        ttl as i64
    } else {
        ((ttl + 500) / 1000) as i64
    })
}

pub(super) fn ttl(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    ttl_generic(ctx, cmd, false, false)
}

pub(super) fn pttl(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    ttl_generic(ctx, cmd, true, false)
}

pub(super) fn expiretime(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    ttl_generic(ctx, cmd, false, true)
}

pub(super) fn pexpiretime(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    ttl_generic(ctx, cmd, true, true)
}

pub(super) fn persist(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    match ctx.entry(key) {
        Some(e) if e.expire_at_ms.is_some() && !e.value.is_resident() => value_unavailable(),
        Some(e) if e.expire_at_ms.is_some() => {
            let db = ctx.db;
            ctx.commit(Mutation::SetExpire {
                db,
                key: key.clone(),
                expire_at_ms: None,
            });
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

/// Stores `value` with exactly this expiry at `dst` in the context's db, replacing what
/// is there (RENAME, COPY): a string in one mutation, a collection as its own mutations.
fn write_value(ctx: &mut ExecCtx, dst: &Bytes, value: Value, expire_at_ms: Option<u64>) {
    let db = ctx.db;
    match value {
        collection @ (Value::Hash(_) | Value::Set(_) | Value::List(_) | Value::ZSet(_)) => {
            if ctx.entry(dst).is_some() {
                ctx.del(dst);
            }
            ctx.commit(match collection {
                Value::Hash(hash) => Mutation::HashSet {
                    db,
                    key: dst.clone(),
                    fields: hash.fields.into_iter().collect(),
                },
                Value::Set(set) => Mutation::SetAdd {
                    db,
                    key: dst.clone(),
                    members: set.fields.into_keys().collect(),
                },
                Value::List(list) => Mutation::ListPush {
                    db,
                    key: dst.clone(),
                    left: false,
                    values: list.items.iter().map(Bytes::copy_from_slice).collect(),
                },
                Value::ZSet(zset) => Mutation::ZSetAdd {
                    db,
                    key: dst.clone(),
                    members: zset.order.into_iter().map(|(s, m)| (m, s)).collect(),
                },
                _ => unreachable!("matched above"),
            });
            if expire_at_ms.is_some() {
                ctx.commit(Mutation::SetExpire {
                    db,
                    key: dst.clone(),
                    expire_at_ms,
                });
            }
        }
        value => ctx.commit(Mutation::Set {
            db,
            key: dst.clone(),
            value,
            expire_at_ms,
        }),
    }
}

/// COPY's options: the destination db (None: the current one) and REPLACE.
pub fn copy_options(args: &[Bytes]) -> Result<(Option<u8>, bool), Reply> {
    let (mut db, mut replace) = (None, false);
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if args[i].eq_ignore_ascii_case(b"db") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(not_an_integer)?;
            if !(0..helios_engine::keyspace::DB_COUNT as i64).contains(&n) {
                return Err(err("ERR DB index is out of range"));
            }
            db = Some(n as u8);
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    Ok((db, replace))
}

/// COPY with both keys on this shard (Redis 7.0 `copyCommand`'s checks, in its order).
pub(super) fn copy(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (db, replace) = match copy_options(&cmd.args) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (src, dst) = (&cmd.args[1], &cmd.args[2]);
    let src_db = ctx.db;
    let dst_db = db.unwrap_or(src_db);
    if dst_db == src_db && src == dst {
        return err("ERR source and destination objects are the same");
    }
    if ctx.entry(src).is_some_and(|e| !e.value.is_resident()) {
        return value_unavailable();
    }
    let Some(entry) = ctx.entry(src).cloned() else {
        return Reply::Int(0);
    };
    ctx.db = dst_db;
    let copied = match ctx.entry(dst).is_some() {
        true if !replace => false,
        exists => {
            if exists {
                ctx.del(dst);
            }
            write_value(ctx, dst, entry.value, entry.expire_at_ms);
            true
        }
    };
    ctx.db = src_db;
    Reply::Int(copied as i64)
}

/// `renameGenericCommand`, both keys on this shard. The value moves with its expiry.
fn rename_generic(ctx: &mut ExecCtx, cmd: &Command, nx: bool) -> Reply {
    let (src, dst) = (&cmd.args[1], &cmd.args[2]);
    if ctx.entry(src).is_some_and(|e| !e.value.is_resident()) {
        return value_unavailable();
    }
    let Some(entry) = ctx.entry(src).cloned() else {
        return err("ERR no such key");
    };
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::Ok };
    }
    if nx && ctx.entry(dst).is_some() {
        return Reply::Int(0);
    }
    write_value(ctx, dst, entry.value, entry.expire_at_ms);
    ctx.del(src);
    if nx {
        Reply::Int(1)
    } else {
        Reply::Ok
    }
}

pub(super) fn rename(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    rename_generic(ctx, cmd, false)
}

pub(super) fn renamenx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    rename_generic(ctx, cmd, true)
}

/// This shard's keys matching the pattern (unordered; the router concatenates).
pub(super) fn keys(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let pattern = &cmd.args[1];
    let keys = ctx
        .ks
        .keys(ctx.db, ctx.now_ms, |k, _| keys_pattern_match(pattern, k));
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}

pub(super) fn dbsize(ctx: &mut ExecCtx, _cmd: &Command) -> Reply {
    Reply::Int(ctx.ks.dbsize(ctx.db) as i64)
}

/// `getFlushCommandFlags`: optional SYNC or ASYNC (both run synchronously here).
fn flush_args_ok(cmd: &Command) -> bool {
    match cmd.args.len() {
        1 => true,
        2 => is_opt(&cmd.args[1], "sync") || is_opt(&cmd.args[1], "async"),
        _ => false,
    }
}

pub(super) fn flushdb(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if !flush_args_ok(cmd) {
        return syntax_error();
    }
    if ctx.ks.dbsize(ctx.db) > 0 {
        let db = ctx.db;
        ctx.commit(Mutation::FlushDb { db });
    }
    Reply::Ok
}

pub(super) fn flushall(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if !flush_args_ok(cmd) {
        return syntax_error();
    }
    if ctx.ks.key_count_total() > 0 {
        ctx.commit(Mutation::FlushAll);
    }
    Reply::Ok
}

thread_local! {
    /// Per-shard sequence mixed into RANDOMKEY's seed so repeated calls differ.
    static RANDOM_SEQ: Cell<u64> = const { Cell::new(0) };
}

pub(super) fn randomkey(ctx: &mut ExecCtx, _cmd: &Command) -> Reply {
    let seq = RANDOM_SEQ.with(|s| {
        let v = s.get().wrapping_add(1);
        s.set(v);
        v
    });
    let seed = ctx.now_ms.rotate_left(17) ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match ctx.ks.random_key(ctx.db, seed, ctx.now_ms) {
        Some(k) => Reply::Bulk(k),
        None => Reply::Null,
    }
}

/// The encoding name Redis 7.0 would report for a value that behaves as helios stores it:
/// the thresholds are those where helios's replies follow Redis's compact encodings
/// (insertion order, intset order, listpack score text). Lists are `quicklist` and sets
/// `intset` or `hashtable`, as in 7.0 (7.2 added `listpack` for small ones).
fn encoding_of(value: &Value) -> &'static str {
    use helios_engine::keyspace::HASH_ORDERED_FIELDS_MAX;
    /// Redis's `OBJ_ENCODING_EMBSTR_SIZE_LIMIT`.
    const EMBSTR_BYTES_MAX: usize = 44;
    /// Redis's `set-max-intset-entries`.
    const INTSET_MEMBERS_MAX: usize = 512;
    /// Redis's `zset-max-listpack-entries`.
    const ZSET_LISTPACK_MEMBERS_MAX: usize = 128;
    match value {
        Value::Str(s) if s.len() <= 20 && parse_i64(s).is_some() => "int",
        Value::Str(s) if s.len() <= EMBSTR_BYTES_MAX => "embstr",
        Value::OffloadedStr { len } if *len <= EMBSTR_BYTES_MAX => "embstr",
        Value::Str(_) | Value::OffloadedStr { .. } => "raw",
        Value::Hash(h) if h.fields.len() <= HASH_ORDERED_FIELDS_MAX => "listpack",
        Value::Hash(_) => "hashtable",
        Value::Set(s)
            if s.fields.len() <= INTSET_MEMBERS_MAX
                && s.fields.keys().all(|m| parse_i64(m).is_some()) =>
        {
            "intset"
        }
        Value::Set(_) => "hashtable",
        Value::List(_) => "quicklist",
        Value::ZSet(z) if z.len() <= ZSET_LISTPACK_MEMBERS_MAX => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT ENCODING/FREQ/IDLETIME/REFCOUNT/HELP. FREQ is refused as Redis refuses it without
/// an LFU policy (helios evicts nothing); IDLETIME is the time since a command last touched
/// the key; REFCOUNT is 1 (values are not shared).
pub(super) fn object(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let sub = String::from_utf8_lossy(&cmd.args[1]).to_ascii_lowercase();
    let argc = cmd.args.len();
    match sub.as_str() {
        "help" if argc == 2 => Reply::Array(
            OBJECT_HELP
                .iter()
                .map(|l| Reply::Status(Cow::Borrowed(*l)))
                .collect(),
        ),
        "encoding" | "freq" | "idletime" | "refcount" if argc == 3 => {
            let key = &cmd.args[2];
            let (db, now_ms) = (ctx.db, ctx.now_ms);
            if sub == "idletime" {
                return match ctx.ks.idle_ms(db, key, now_ms) {
                    Some(ms) => Reply::Int((ms / 1000) as i64),
                    None => Reply::Null,
                };
            }
            let Some(entry) = ctx.ks.peek(db, key).filter(|e| !e.is_expired(now_ms)) else {
                return Reply::Null;
            };
            match sub.as_str() {
                "encoding" => Reply::Bulk(Bytes::from_static(encoding_of(&entry.value).as_bytes())),
                "refcount" => Reply::Int(1),
                _ => err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
            }
        }
        "encoding" | "freq" | "idletime" | "refcount" | "help" => {
            Reply::Error(format!("ERR wrong number of arguments for 'object|{sub}' command").into())
        }
        _ => Reply::Error(
            format!(
                "ERR unknown subcommand '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(&cmd.args[1])
            )
            .into(),
        ),
    }
}
