//! List commands (`t_list.c` in Redis 7.0), with the same argument checks in the same
//! order and the same replies. LMOVE, RPOPLPUSH and LMPOP run here when their keys live on
//! this shard; across shards the router runs them under intent locks (`server::admin`).
//! Not yet: the blocking forms (BLPOP, BRPOP, BLMOVE, BLMPOP, BRPOPLPUSH).

use bytes::Bytes;
use helios_engine::keyspace::{ListValue, Mutation, Value};

use super::num::parse_i64;
use super::{err, not_an_integer, syntax_error, wrong_type, ExecCtx};
use crate::resp::encode;
use crate::{Command, Reply};

/// The list at `key`: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn list_of<'a>(ctx: &'a mut ExecCtx, key: &[u8]) -> Result<Option<&'a ListValue>, Reply> {
    match ctx.entry(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(wrong_type()),
        },
    }
}

fn len_of(ctx: &mut ExecCtx, key: &[u8]) -> i64 {
    ctx.entry(key)
        .and_then(|e| e.value.as_list())
        .map_or(0, |l| l.items.len() as i64)
}

fn push(ctx: &mut ExecCtx, key: &Bytes, left: bool, values: Vec<Bytes>) {
    let db = ctx.db;
    ctx.commit(Mutation::ListPush {
        db,
        key: key.clone(),
        left,
        values,
    });
}

fn pop(ctx: &mut ExecCtx, key: &Bytes, left: bool, count: u64) {
    let db = ctx.db;
    ctx.commit(Mutation::ListPop {
        db,
        key: key.clone(),
        left,
        count,
    });
}

fn replace(ctx: &mut ExecCtx, key: &Bytes, values: Vec<Bytes>) {
    let db = ctx.db;
    ctx.commit(Mutation::ListReplace {
        db,
        key: key.clone(),
        values,
    });
}

/// Redis's `getLongFromObjectOrReply` with its default message.
fn long_arg(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(not_an_integer)
}

/// A count in `0..=LONG_MAX`, or Redis's message for anything else.
/// The optional COUNT of LPOP/RPOP/ZPOPMIN/ZPOPMAX (`getPositiveLongFromObjectOrReply`).
pub(super) fn optional_count(arg: Option<&Bytes>) -> Result<Option<u64>, Reply> {
    arg.map(|c| positive_arg(c, "ERR value is out of range, must be positive"))
        .transpose()
}

pub(super) fn positive_arg(arg: &[u8], message: &'static str) -> Result<u64, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(err(message)),
    }
}

fn push_generic(ctx: &mut ExecCtx, cmd: &Command, left: bool, only_existing: bool) -> Reply {
    let key = &cmd.args[1];
    match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) if only_existing => return Reply::Int(0),
        Ok(_) => {}
    }
    push(ctx, key, left, cmd.args[2..].to_vec());
    Reply::Int(len_of(ctx, key))
}

pub(super) fn lpush(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    push_generic(ctx, cmd, true, false)
}

pub(super) fn rpush(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    push_generic(ctx, cmd, false, false)
}

pub(super) fn lpushx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    push_generic(ctx, cmd, true, true)
}

pub(super) fn rpushx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    push_generic(ctx, cmd, false, true)
}

/// Takes up to `count` elements from one end of the list at `key` (which exists).
fn take(ctx: &mut ExecCtx, key: &Bytes, left: bool, count: u64) -> Vec<Bytes> {
    let list = list_of(ctx, key)
        .ok()
        .flatten()
        .expect("a list checked by the caller");
    let n = count.min(list.items.len() as u64) as usize;
    let taken: Vec<Bytes> = if left {
        list.items
            .iter()
            .take(n)
            .map(Bytes::copy_from_slice)
            .collect()
    } else {
        list.items
            .iter()
            .rev()
            .take(n)
            .map(Bytes::copy_from_slice)
            .collect()
    };
    pop(ctx, key, left, n as u64);
    taken
}

fn pop_generic(ctx: &mut ExecCtx, cmd: &Command, left: bool) -> Reply {
    let name = if left { "lpop" } else { "rpop" };
    if cmd.args.len() > 3 {
        return Reply::wrong_arity(name);
    }
    let count = match optional_count(cmd.args.get(2)) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = &cmd.args[1];
    match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            return match count {
                None => Reply::Null,
                Some(_) => Reply::NullArray,
            }
        }
        Ok(Some(_)) => {}
    }
    match count {
        Some(0) => Reply::Array(Vec::new()),
        Some(c) => Reply::Array(
            take(ctx, key, left, c)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        None => Reply::Bulk(take(ctx, key, left, 1).remove(0)),
    }
}

pub(super) fn lpop(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    pop_generic(ctx, cmd, true)
}

pub(super) fn rpop(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    pop_generic(ctx, cmd, false)
}

pub(super) fn llen(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match list_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(l) => Reply::Int(l.map_or(0, |l| l.items.len() as i64)),
    }
}

/// The position of Redis index `index` (negative: from the tail) in a list of `len`.
fn position(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub(super) fn lindex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let list = match list_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Null,
        Ok(Some(l)) => l,
    };
    let index = match long_arg(&cmd.args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    position(index, list.items.len()).map_or(Reply::Null, |i| {
        Reply::Bulk(Bytes::copy_from_slice(
            list.items.get(i).expect("a position in the list"),
        ))
    })
}

pub(super) fn lset(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let len = match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return err("ERR no such key"),
        Ok(Some(l)) => l.items.len(),
    };
    let index = match long_arg(&cmd.args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let Some(i) = position(index, len) else {
        return err("ERR index out of range");
    };
    let db = ctx.db;
    ctx.commit(Mutation::ListSet {
        db,
        key: key.clone(),
        index: i as u64,
        value: cmd.args[3].clone(),
    });
    Reply::Ok
}

/// LRANGE/LTRIM's `start..=end` over a list of `len`, Redis's way (None: empty).
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

pub(super) fn lrange(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (start, end) = match (long_arg(&cmd.args[2]), long_arg(&cmd.args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let list = match list_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(l)) => l,
    };
    match range(start, end, list.items.len()) {
        None => Reply::Array(Vec::new()),
        // Encoded here, straight from the packed elements: no handle per element.
        Some((a, b)) => Reply::Encoded(encode::bulk_array(list.items.range(a..b + 1), b + 1 - a)),
    }
}

pub(super) fn ltrim(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (start, end) = match (long_arg(&cmd.args[2]), long_arg(&cmd.args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let key = &cmd.args[1];
    let len = match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Ok,
        Ok(Some(l)) => l.items.len(),
    };
    let (from_head, from_tail) = match range(start, end, len) {
        None => (len, 0),
        Some((a, b)) => (a, len - b - 1),
    };
    if from_head > 0 {
        pop(ctx, key, true, from_head as u64);
    }
    if from_tail > 0 && from_head < len {
        pop(ctx, key, false, from_tail as u64);
    }
    Reply::Ok
}

pub(super) fn lrem(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let count = match long_arg(&cmd.args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (key, element) = (&cmd.args[1], &cmd.args[3]);
    let list = match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    let mut items: Vec<Bytes> = list.items.iter().map(Bytes::copy_from_slice).collect();
    if count < 0 {
        items.reverse();
    }
    let mut removed = 0usize;
    items.retain(|v| {
        if removed < limit && v == element {
            removed += 1;
            false
        } else {
            true
        }
    });
    if count < 0 {
        items.reverse();
    }
    if removed > 0 {
        replace(ctx, key, items);
    }
    Reply::Int(removed as i64)
}

pub(super) fn linsert(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let after = if cmd.args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if cmd.args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return syntax_error();
    };
    let (key, pivot, element) = (&cmd.args[1], &cmd.args[3], &cmd.args[4]);
    let list = match list_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(l)) => l,
    };
    let Some(at) = list.items.iter().position(|v| v == pivot) else {
        return Reply::Int(-1);
    };
    let mut items: Vec<Bytes> = list.items.iter().map(Bytes::copy_from_slice).collect();
    items.insert(at + usize::from(after), element.clone());
    let len = items.len() as i64;
    replace(ctx, key, items);
    Reply::Int(len)
}

pub(super) fn lpos(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0u64);
    let mut i = 3;
    while i < cmd.args.len() {
        let (opt, more) = (&cmd.args[i], i + 1 < cmd.args.len());
        if opt.eq_ignore_ascii_case(b"rank") && more {
            match parse_i64(&cmd.args[i + 1]) {
                None => return not_an_integer(),
                Some(i64::MIN) => return err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
                Some(0) => return err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"),
                Some(r) => rank = r,
            }
        } else if opt.eq_ignore_ascii_case(b"count") && more {
            match positive_arg(&cmd.args[i + 1], "ERR COUNT can't be negative") {
                Ok(c) => count = Some(c),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"maxlen") && more {
            match positive_arg(&cmd.args[i + 1], "ERR MAXLEN can't be negative") {
                Ok(m) => maxlen = m,
                Err(e) => return e,
            }
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let list = match list_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return match count {
                Some(_) => Reply::Array(Vec::new()),
                None => Reply::Null,
            }
        }
        Ok(Some(l)) => l,
    };
    let element = &cmd.args[2];
    let len = list.items.len();
    let wanted = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(c) => usize::try_from(c).unwrap_or(usize::MAX),
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let scanned = if maxlen == 0 {
        len
    } else {
        len.min(usize::try_from(maxlen).unwrap_or(usize::MAX))
    };
    let forward = list.items.iter().enumerate();
    let in_rank_order: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
        Box::new(forward)
    } else {
        Box::new(forward.rev())
    };
    for (at, value) in in_rank_order.take(scanned) {
        if value == element {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(Reply::Int(at as i64));
            if found.len() >= wanted {
                break;
            }
        }
    }
    match count {
        Some(_) => Reply::Array(found),
        None => found.into_iter().next().unwrap_or(Reply::Null),
    }
}

/// LEFT or RIGHT (true: left), or a syntax error.
pub fn parse_side(arg: &[u8]) -> Result<bool, Reply> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(syntax_error())
    }
}

fn move_generic(
    ctx: &mut ExecCtx,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
) -> Reply {
    match list_of(ctx, src) {
        Err(e) => return e,
        Ok(None) => return Reply::Null,
        Ok(Some(_)) => {}
    }
    if let Err(e) = list_of(ctx, dst) {
        return e;
    }
    let element = take(ctx, src, from_left, 1).remove(0);
    push(ctx, dst, to_left, vec![element.clone()]);
    Reply::Bulk(element)
}

pub(super) fn lmove(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (from_left, to_left) = match (parse_side(&cmd.args[3]), parse_side(&cmd.args[4])) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    move_generic(ctx, &cmd.args[1], &cmd.args[2], from_left, to_left)
}

pub(super) fn rpoplpush(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    move_generic(ctx, &cmd.args[1], &cmd.args[2], false, true)
}

/// LMPOP's arguments: its keys, the side (true: LEFT) and the count.
pub fn lmpop_args(args: &[Bytes]) -> Result<(&[Bytes], bool, u64), Reply> {
    mpop_args(args, 1, parse_side)
}

/// LMPOP's and ZMPOP's `numkeys key... SIDE [COUNT n]` from `numkeys_at` (Redis's
/// `lmpopGenericCommand`/`zmpopGenericCommand`): the keys, the side as `side` reads it, and
/// the count (1 without COUNT).
pub(super) fn mpop_args(
    args: &[Bytes],
    numkeys_at: usize,
    side: fn(&[u8]) -> Result<bool, Reply>,
) -> Result<(&[Bytes], bool, u64), Reply> {
    let numkeys = match parse_i64(&args[numkeys_at]) {
        Some(n) if n > 0 => n as u64,
        _ => return Err(err("ERR numkeys should be greater than 0")),
    };
    let rest = &args[numkeys_at + 1..];
    // The side follows the keys: without it, a syntax error (as Redis).
    if numkeys >= rest.len() as u64 {
        return Err(syntax_error());
    }
    let (keys, rest) = rest.split_at(numkeys as usize);
    let side = side(&rest[0])?;
    let mut count = None;
    let mut i = 1;
    while i < rest.len() {
        // COUNT is taken once; a second one is a syntax error, as in Redis.
        if count.is_none() && rest[i].eq_ignore_ascii_case(b"count") && i + 1 < rest.len() {
            match parse_i64(&rest[i + 1]) {
                Some(c) if c > 0 => count = Some(c as u64),
                _ => return Err(err("ERR count should be greater than 0")),
            }
            i += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok((keys, side, count.unwrap_or(1)))
}

pub(super) fn lmpop(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (keys, left, count) = match lmpop_args(&cmd.args) {
        Ok(a) => a,
        Err(e) => return e,
    };
    for key in keys.iter().cloned() {
        match list_of(ctx, &key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(_)) => {
                let popped = take(ctx, &key, left, count);
                return Reply::Array(vec![
                    Reply::Bulk(key),
                    Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                ]);
            }
        }
    }
    Reply::NullArray
}
