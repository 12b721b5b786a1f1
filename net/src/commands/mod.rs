//! The Redis command table and the per-shard command implementations.
//!
//! The router looks a command up in the [`table`], checks arity, groups keys by shard and,
//! on each owning shard, calls [`exec_local`] with the keys that live there. `exec_local`
//! reads and changes the shard's [`Keyspace`] and appends every state change, as an absolute
//! [`Mutation`], to `ExecCtx::log`; a command that changes nothing logs nothing.

mod glob;
mod hashes;
mod keys;
mod lists;
mod num;
mod sets;
mod strings;
mod table;
#[cfg(test)]
mod tests;
mod zsets;

pub use glob::{glob_match, keys_pattern_match, GLOB_NESTING_MAX};
pub use keys::copy_options;
pub use lists::{lmpop_args, parse_side};
pub use num::parse_i64;
pub use sets::{combine, intersection_card, members_in_order, sintercard_args, SetOp};
pub use table::{
    all, command_docs, command_info, lookup, subcommand_error, CommandKind, CommandSpec,
    Deprecation, Doc, Merge,
};
pub use zsets::{
    combine as zset_combine, combined_reply as zset_combined_reply,
    intersection_card as zset_intersection_card, zmpop_args, zmpop_reply, zop_keys, zop_kind,
    zop_options, zrangestore_check, zrangestore_select, Source as ZSource, ZOp,
};

use std::borrow::Cow;

use bytes::Bytes;
use helios_engine::keyspace::{Entry, Keyspace, Mutation, Value};

use crate::{Command, Reply};

/// Redis's proto-max-bulk-len default: the largest string a command may build (512 MiB).
pub const STRING_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// What a command running on a shard may touch.
pub struct ExecCtx<'a> {
    pub ks: &'a mut Keyspace,
    /// The connection's selected database (0..16).
    pub db: u8,
    /// The command's clock: one reading for the whole command, as Redis does.
    pub now_ms: u64,
    /// When set, every applied mutation is also encoded here (tests replay it; the server
    /// needs only the keyspace's pending storage writes and passes None).
    pub log: Option<&'a mut Vec<u8>>,
}

pub(crate) type ExecFn = fn(&mut ExecCtx<'_>, &Command) -> Reply;

impl ExecCtx<'_> {
    /// Logs `m` and applies it to the keyspace.
    fn commit(&mut self, m: Mutation) {
        match self.log.as_deref_mut() {
            Some(log) => self.ks.apply_and_log(m, log),
            None => self.ks.apply(m),
        }
    }

    fn entry(&mut self, key: &[u8]) -> Option<&Entry> {
        self.ks.get(self.db, key, self.now_ms)
    }

    /// The string at `key`: Ok(None) when absent, Err(WRONGTYPE) for another type.
    fn get_str(&mut self, key: &[u8]) -> Result<Option<(Bytes, Option<u64>)>, Reply> {
        match self.entry(key) {
            None => Ok(None),
            Some(e) if !e.value.is_resident() => Err(value_unavailable()),
            Some(e) => match e.value.as_str() {
                Some(s) => Ok(Some((s.clone(), e.expire_at_ms))),
                None => Err(wrong_type()),
            },
        }
    }

    fn set_str(&mut self, key: &Bytes, value: Bytes, expire_at_ms: Option<u64>) {
        self.commit(Mutation::Set {
            db: self.db,
            key: key.clone(),
            value: Value::Str(value),
            expire_at_ms,
        });
    }

    fn del(&mut self, key: &Bytes) {
        self.commit(Mutation::Del {
            db: self.db,
            key: key.clone(),
        });
    }
}

/// A command met a value that is still only on disk: the server loads every value a batch
/// names before running it, so this means that read failed (the log says why).
pub(crate) fn value_unavailable() -> Reply {
    Reply::error("ERR the value could not be read from disk (see the server log)")
}

/// The name TYPE reports for a value ("string", ...).
pub fn type_name(value: &Value) -> &'static str {
    value.type_name()
}

/// The positions of the keys of a command whose keys move with its arguments (Redis's
/// `movablekeys`: a `numkeys` count); None for the others, whose table entry places them. A
/// malformed count names no key: the command then runs on one shard and replies the error.
pub fn movable_key_positions(name: &str, args: &[Bytes]) -> Option<Vec<usize>> {
    let counted = |numkeys_at: usize| -> Vec<usize> {
        match args.get(numkeys_at).and_then(|a| parse_i64(a)) {
            Some(n) if n > 0 && (n as u64) < (args.len() - numkeys_at) as u64 => {
                (numkeys_at + 1..numkeys_at + 1 + n as usize).collect()
            }
            _ => Vec::new(),
        }
    };
    Some(match name {
        "sintercard" | "lmpop" | "zmpop" | "zunion" | "zinter" | "zdiff" | "zintercard" => {
            counted(1)
        }
        "blmpop" | "bzmpop" => counted(2),
        // SORT key ... [STORE dst]: the destination is a key too.
        "sort" => {
            let mut keys = vec![1];
            keys.extend(
                (2..args.len().saturating_sub(1))
                    .filter(|&i| args[i].eq_ignore_ascii_case(b"store"))
                    .map(|i| i + 1),
            );
            keys
        }
        // OBJECT <subcommand> key (OBJECT HELP names none).
        "object" => (args.len() >= 3).then_some(2).into_iter().collect(),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut keys = vec![1];
            keys.extend(counted(2));
            keys
        }
        _ => return None,
    })
}

/// Whether the command may grow the data (its table entry has Redis's "denyoom" flag): the
/// commands refused over `maxmemory`.
pub fn may_grow(cmd: &Command) -> bool {
    cmd.spec().is_some_and(|spec| spec.has_flag("denyoom"))
}

/// Whether the command may change the keyspace (its table entry has the "write" flag).
/// Unknown commands are not writes.
pub fn is_write(cmd: &Command) -> bool {
    cmd.spec().is_some_and(|spec| spec.has_flag("write"))
}

/// Runs a keyed (or per-shard keyless) command against this shard's keyspace. Never panics on
/// any argument list: unknown names, connection-level commands and bad arity become errors.
pub fn exec_local(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    assert!((ctx.db as usize) < helios_engine::keyspace::DB_COUNT);
    let Some(spec) = cmd.spec() else {
        return unknown_command(cmd);
    };
    if !spec.arity_ok(cmd.arg_count()) {
        return Reply::wrong_arity(spec.name);
    }
    match spec.exec {
        Some(exec) => exec(ctx, cmd),
        None => Reply::error(format!("ERR '{}' is not run by a shard", spec.name)),
    }
}

/// Redis's reply to an unknown command, e.g.
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
pub fn unknown_command(cmd: &Command) -> Reply {
    // sds semantics: `%.128s` stops at a NUL and at 128 bytes; the args list stops growing
    // once it reaches 128 bytes; CR and LF become spaces.
    let mut args: Vec<u8> = Vec::new();
    for arg in cmd.args.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&cstr(arg)[..cstr(arg).len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    let name = cstr(cmd.name());
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name[..name.len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&args);
    error_from_bytes(text)
}

/// The bytes a C string function sees: up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// An error line from client-influenced bytes: CR/LF become spaces (as Redis does); bytes
/// that are not UTF-8 are replaced (a `Reply::Error` holds text).
fn error_from_bytes(mut text: Vec<u8>) -> Reply {
    for c in text.iter_mut() {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    match String::from_utf8(text) {
        Ok(s) => Reply::Error(Cow::Owned(s)),
        Err(e) => Reply::Error(Cow::Owned(
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
        )),
    }
}

fn err(text: &'static str) -> Reply {
    Reply::Error(Cow::Borrowed(text))
}

fn wrong_type() -> Reply {
    err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// Redis's WRONGTYPE error (for the router's cross-shard commands).
pub fn wrong_type_reply() -> Reply {
    wrong_type()
}

fn syntax_error() -> Reply {
    err("ERR syntax error")
}

fn not_an_integer() -> Reply {
    err("ERR value is not an integer or out of range")
}

fn invalid_expire(command: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{command}' command"))
}

/// An integer argument, or Redis's error reply.
fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(not_an_integer)
}

/// Case-insensitive comparison of an option argument, as `strcasecmp` sees it.
fn is_opt(arg: &[u8], name: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(name.as_bytes())
}
