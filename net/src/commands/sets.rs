//! Set commands (`t_set.c` in Redis 7.0), with the same argument checks in the same order
//! and the same replies. A set is stored as a collection whose members have empty values
//! (see `helios_engine::keyspace`). The multi-key commands here run when all their keys
//! live on this shard; across shards the router gathers the members under intent locks
//! (`server::admin`) and combines them with [`combine`].

use bytes::Bytes;
use helios_engine::keyspace::{HashValue, Mutation, Value};
use indexmap::IndexSet;

use super::hashes::{random_below, scan_elements};
use super::num::parse_i64;
use super::{err, not_an_integer, syntax_error, wrong_type, ExecCtx};
use crate::{Command, Reply};

/// Redis 7.0 keeps a set of integers as an *intset* (sorted) while it has at most this many
/// members; helios replies its members in that order then, and in insertion order otherwise
/// (Redis's hashtable order is unspecified).
const INTSET_MEMBERS_MAX: usize = 512;

/// The set at `key`: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn set_of<'a>(ctx: &'a mut ExecCtx, key: &[u8]) -> Result<Option<&'a HashValue>, Reply> {
    match ctx.entry(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrong_type()),
        },
    }
}

/// A set's members in the order Redis would list them (see [`INTSET_MEMBERS_MAX`]).
pub fn members_in_order(set: &HashValue) -> Vec<Bytes> {
    let members: Vec<Bytes> = set.fields.keys().cloned().collect();
    ordered(members)
}

fn ordered(members: Vec<Bytes>) -> Vec<Bytes> {
    if members.len() > INTSET_MEMBERS_MAX {
        return members;
    }
    let ints: Option<Vec<(i64, Bytes)>> = members
        .iter()
        .map(|m| parse_i64(m).map(|v| (v, m.clone())))
        .collect();
    match ints {
        Some(mut ints) => {
            ints.sort_unstable_by_key(|(v, _)| *v);
            ints.into_iter().map(|(_, m)| m).collect()
        }
        None => members,
    }
}

fn bulk_set(members: Vec<Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

fn add(ctx: &mut ExecCtx, key: &Bytes, members: Vec<Bytes>) {
    let db = ctx.db;
    ctx.commit(Mutation::SetAdd {
        db,
        key: key.clone(),
        members,
    });
}

fn remove(ctx: &mut ExecCtx, key: &Bytes, members: Vec<Bytes>) {
    let db = ctx.db;
    ctx.commit(Mutation::SetRem {
        db,
        key: key.clone(),
        members,
    });
}

pub(super) fn sadd(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let mut new: IndexSet<Bytes> = IndexSet::new();
    match set_of(ctx, key) {
        Err(e) => return e,
        Ok(s) => {
            for m in &cmd.args[2..] {
                if !s.is_some_and(|s| s.fields.contains_key(m)) {
                    new.insert(m.clone());
                }
            }
        }
    }
    let added = new.len() as i64;
    if added > 0 {
        add(ctx, key, new.into_iter().collect());
    }
    Reply::Int(added)
}

pub(super) fn srem(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let present: IndexSet<Bytes> = match set_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(s)) => cmd.args[2..]
            .iter()
            .filter(|m| s.fields.contains_key(*m))
            .cloned()
            .collect(),
    };
    let removed = present.len() as i64;
    if removed > 0 {
        remove(ctx, key, present.into_iter().collect());
    }
    Reply::Int(removed)
}

pub(super) fn smembers(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match set_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(s) => bulk_set(s.map_or_else(Vec::new, members_in_order)),
    }
}

pub(super) fn sismember(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match set_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.is_some_and(|s| s.fields.contains_key(&cmd.args[2])) as i64),
    }
}

pub(super) fn smismember(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match set_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Array(
            cmd.args[2..]
                .iter()
                .map(|m| Reply::Int(s.is_some_and(|s| s.fields.contains_key(m)) as i64))
                .collect(),
        ),
    }
}

pub(super) fn scard(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match set_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(s) => Reply::Int(s.map_or(0, |s| s.fields.len() as i64)),
    }
}

pub(super) fn sscan(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    scan_elements(ctx, cmd, set_of, false)
}

/// `count` distinct random positions below `n` (all of them, in order, when count >= n).
fn distinct_picks(n: usize, count: usize) -> Vec<usize> {
    if count >= n {
        return (0..n).collect();
    }
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + random_below(n - i);
        all.swap(i, j);
    }
    all.truncate(count);
    all
}

pub(super) fn spop(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    if cmd.args.len() > 3 {
        return syntax_error();
    }
    let count = match cmd.args.get(2) {
        None => None,
        // Redis's positive-range check replies its own message for a non-integer too.
        Some(c) => match parse_i64(c) {
            Some(c) if c >= 0 => Some(c as u64),
            _ => return err("ERR value is out of range, must be positive"),
        },
    };
    let members = match set_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            return match count {
                None => Reply::Null,
                Some(_) => Reply::Set(Vec::new()),
            }
        }
        Ok(Some(s)) => members_in_order(s),
    };
    let popped: Vec<Bytes> = match count {
        None => vec![members[random_below(members.len())].clone()],
        Some(0) => return Reply::Set(Vec::new()),
        Some(c) => distinct_picks(members.len(), usize::try_from(c).unwrap_or(usize::MAX))
            .into_iter()
            .map(|i| members[i].clone())
            .collect(),
    };
    remove(ctx, key, popped.clone());
    match count {
        None => Reply::Bulk(popped.into_iter().next().expect("one member")),
        Some(_) => bulk_set(popped),
    }
}

pub(super) fn srandmember(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if cmd.args.len() == 2 {
        return match set_of(ctx, &cmd.args[1]) {
            Err(e) => e,
            Ok(None) => Reply::Null,
            Ok(Some(s)) => {
                let members = members_in_order(s);
                Reply::Bulk(members[random_below(members.len())].clone())
            }
        };
    }
    if cmd.args.len() > 3 {
        return syntax_error();
    }
    let Some(count) = parse_i64(&cmd.args[2]) else {
        return not_an_integer();
    };
    if count == i64::MIN {
        return err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
    }
    let members = match set_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(s)) => members_in_order(s),
    };
    let picks: Vec<usize> = if count < 0 {
        (0..count.unsigned_abs())
            .map(|_| random_below(members.len()))
            .collect()
    } else {
        distinct_picks(members.len(), usize::try_from(count).unwrap_or(usize::MAX))
    };
    Reply::Array(
        picks
            .into_iter()
            .map(|i| Reply::Bulk(members[i].clone()))
            .collect(),
    )
}

pub(super) fn smove(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (src, dst, member) = (&cmd.args[1], &cmd.args[2], &cmd.args[3]);
    let in_src = match set_of(ctx, src) {
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
        Ok(Some(s)) => s.fields.contains_key(member),
    };
    if let Err(e) = set_of(ctx, dst) {
        return e;
    }
    if src == dst || !in_src {
        return Reply::Int(in_src as i64);
    }
    remove(ctx, src, vec![member.clone()]);
    add(ctx, dst, vec![member.clone()]);
    Reply::Int(1)
}

/// A set operation over several sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Combines the members of several sets (None: a missing key, an empty set) as Redis does:
/// the intersection iterates the smallest set, the union and the difference the sets in
/// order. The result is in the order SMEMBERS of it would give.
pub fn combine(op: SetOp, sets: &[Option<Vec<Bytes>>]) -> Vec<Bytes> {
    let as_set =
        |s: &Option<Vec<Bytes>>| -> IndexSet<Bytes> { s.iter().flatten().cloned().collect() };
    let result: Vec<Bytes> = match op {
        SetOp::Inter => {
            if sets.iter().any(|s| s.as_ref().is_none_or(Vec::is_empty)) {
                return Vec::new();
            }
            let all: Vec<IndexSet<Bytes>> = sets.iter().map(as_set).collect();
            let smallest = all
                .iter()
                .min_by_key(|s| s.len())
                .expect("at least one set");
            smallest
                .iter()
                .filter(|m| all.iter().all(|s| s.contains(*m)))
                .cloned()
                .collect()
        }
        SetOp::Union => {
            let mut out: IndexSet<Bytes> = IndexSet::new();
            for s in sets {
                out.extend(s.iter().flatten().cloned());
            }
            out.into_iter().collect()
        }
        SetOp::Diff => {
            let mut out = as_set(&sets[0]);
            for s in &sets[1..] {
                for m in s.iter().flatten() {
                    out.shift_remove(m);
                }
            }
            out.into_iter().collect()
        }
    };
    ordered(result)
}

/// The members of every set named by `keys` (type-checked in order, as Redis does).
fn gather(ctx: &mut ExecCtx, keys: &[Bytes]) -> Result<Vec<Option<Vec<Bytes>>>, Reply> {
    keys.iter()
        .map(|k| set_of(ctx, k).map(|s| s.map(|s| s.fields.keys().cloned().collect())))
        .collect()
}

fn set_op(ctx: &mut ExecCtx, cmd: &Command, op: SetOp) -> Reply {
    match gather(ctx, &cmd.args[1..]) {
        Err(e) => e,
        Ok(sets) => bulk_set(combine(op, &sets)),
    }
}

/// Replaces `dst` with `members` (deletes it when empty); the STORE forms' reply.
pub(super) fn store(ctx: &mut ExecCtx, dst: &Bytes, members: Vec<Bytes>) -> Reply {
    let count = members.len() as i64;
    if ctx.entry(dst).is_some() {
        ctx.del(dst);
    }
    if !members.is_empty() {
        add(ctx, dst, members);
    }
    Reply::Int(count)
}

fn set_op_store(ctx: &mut ExecCtx, cmd: &Command, op: SetOp) -> Reply {
    match gather(ctx, &cmd.args[2..]) {
        Err(e) => e,
        Ok(sets) => {
            let members = combine(op, &sets);
            store(ctx, &cmd.args[1], members)
        }
    }
}

pub(super) fn sinter(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op(ctx, cmd, SetOp::Inter)
}

pub(super) fn sunion(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op(ctx, cmd, SetOp::Union)
}

pub(super) fn sdiff(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op(ctx, cmd, SetOp::Diff)
}

pub(super) fn sinterstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op_store(ctx, cmd, SetOp::Inter)
}

pub(super) fn sunionstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op_store(ctx, cmd, SetOp::Union)
}

pub(super) fn sdiffstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    set_op_store(ctx, cmd, SetOp::Diff)
}

/// SINTERCARD's arguments: its keys and LIMIT (0: none), or Redis's error.
pub fn sintercard_args(args: &[Bytes]) -> Result<(&[Bytes], usize), Reply> {
    // Redis's range check replies its own message for a non-integer too.
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n > 0 => n as u64,
        _ => return Err(err("ERR numkeys should be greater than 0")),
    };
    let rest = &args[2..];
    if numkeys > rest.len() as u64 {
        return Err(err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (keys, options) = rest.split_at(numkeys as usize);
    let mut limit = 0usize;
    let mut i = 0;
    while i < options.len() {
        if options[i].eq_ignore_ascii_case(b"limit") && i + 1 < options.len() {
            match parse_i64(&options[i + 1]) {
                Some(l) if l >= 0 => limit = l as usize,
                _ => return Err(err("ERR LIMIT can't be negative")),
            }
            i += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((keys, limit))
}

/// The size of an intersection, capped at `limit` (0: none).
pub fn intersection_card(sets: &[Option<Vec<Bytes>>], limit: usize) -> i64 {
    let n = combine(SetOp::Inter, sets).len();
    (if limit == 0 { n } else { n.min(limit) }) as i64
}

pub(super) fn sintercard(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (keys, limit) = match sintercard_args(&cmd.args) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let keys = keys.to_vec();
    match gather(ctx, &keys) {
        Err(e) => e,
        Ok(sets) => Reply::Int(intersection_card(&sets, limit)),
    }
}
