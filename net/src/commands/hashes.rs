//! Hash commands (`t_hash.c` in Redis 7.0): the same argument checks in the same order, the
//! same replies and error texts. Fields live in the keyspace's [`HashValue`] and, one key
//! each, in the shard's tree (see `helios_engine::keyspace::storage`).

use std::cell::Cell;

use bytes::Bytes;
use helios_engine::keyspace::{HashValue, Mutation, Value, HASH_ORDERED_FIELDS_MAX};

use super::num::{incr_by_float, parse_i64, FloatError};
use super::{err, glob_match, not_an_integer, syntax_error, wrong_type, ExecCtx};
use crate::{Command, Reply};

/// The hash at `key`: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn hash_of<'a>(ctx: &'a mut ExecCtx, key: &[u8]) -> Result<Option<&'a HashValue>, Reply> {
    match ctx.entry(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(wrong_type()),
        },
    }
}

fn set_fields(ctx: &mut ExecCtx, key: &Bytes, fields: Vec<(Bytes, Bytes)>) {
    let db = ctx.db;
    ctx.commit(Mutation::HashSet {
        db,
        key: key.clone(),
        fields,
    });
}

/// Field/value pairs of `args` (HSET, HMSET), or the arity error when one is unpaired.
fn pairs(cmd: &Command, name: &str) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    let args = &cmd.args[2..];
    if !args.len().is_multiple_of(2) {
        return Err(Reply::wrong_arity(name));
    }
    Ok(args
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect())
}

pub(super) fn hset(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let fields = match pairs(cmd, "hset") {
        Ok(f) => f,
        Err(e) => return e,
    };
    let key = &cmd.args[1];
    let added = match hash_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => {
            let mut distinct: Vec<&Bytes> = fields.iter().map(|(f, _)| f).collect();
            distinct.sort();
            distinct.dedup();
            distinct.len()
        }
        Ok(Some(h)) => {
            let mut seen = std::collections::HashSet::new();
            fields
                .iter()
                .filter(|(f, _)| !h.fields.contains_key(f) && seen.insert(f))
                .count()
        }
    };
    set_fields(ctx, key, fields);
    Reply::Int(added as i64)
}

pub(super) fn hmset(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let fields = match pairs(cmd, "hmset") {
        Ok(f) => f,
        Err(e) => return e,
    };
    if let Err(e) = hash_of(ctx, &cmd.args[1]) {
        return e;
    }
    set_fields(ctx, &cmd.args[1], fields);
    Reply::Ok
}

pub(super) fn hsetnx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (key, field) = (&cmd.args[1], &cmd.args[2]);
    match hash_of(ctx, key) {
        Err(e) => e,
        Ok(Some(h)) if h.fields.contains_key(field) => Reply::Int(0),
        Ok(_) => {
            set_fields(ctx, key, vec![(field.clone(), cmd.args[3].clone())]);
            Reply::Int(1)
        }
    }
}

pub(super) fn hget(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => h
            .and_then(|h| h.fields.get(&cmd.args[2]))
            .map_or(Reply::Null, |v| Reply::Bulk(v.clone())),
    }
}

pub(super) fn hmget(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Array(
            cmd.args[2..]
                .iter()
                .map(|f| {
                    h.and_then(|h| h.fields.get(f))
                        .map_or(Reply::Null, |v| Reply::Bulk(v.clone()))
                })
                .collect(),
        ),
    }
}

pub(super) fn hdel(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let present: Vec<Bytes> = match hash_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(h)) => {
            let mut present: Vec<Bytes> = cmd.args[2..]
                .iter()
                .filter(|f| h.fields.contains_key(*f))
                .cloned()
                .collect();
            present.sort();
            present.dedup();
            present
        }
    };
    if present.is_empty() {
        return Reply::Int(0);
    }
    let count = present.len() as i64;
    let db = ctx.db;
    ctx.commit(Mutation::HashDel {
        db,
        key: key.clone(),
        fields: present,
    });
    Reply::Int(count)
}

pub(super) fn hexists(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Int(h.is_some_and(|h| h.fields.contains_key(&cmd.args[2])) as i64),
    }
}

pub(super) fn hlen(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Int(h.map_or(0, |h| h.fields.len() as i64)),
    }
}

pub(super) fn hstrlen(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Int(
            h.and_then(|h| h.fields.get(&cmd.args[2]))
                .map_or(0, |v| v.len() as i64),
        ),
    }
}

pub(super) fn hkeys(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Array(h.map_or_else(Vec::new, |h| {
            h.fields.keys().map(|f| Reply::Bulk(f.clone())).collect()
        })),
    }
}

pub(super) fn hvals(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Array(h.map_or_else(Vec::new, |h| {
            h.fields.values().map(|v| Reply::Bulk(v.clone())).collect()
        })),
    }
}

pub(super) fn hgetall(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match hash_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(h) => Reply::Map(h.map_or_else(Vec::new, |h| {
            h.fields
                .iter()
                .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                .collect()
        })),
    }
}

pub(super) fn hincrby(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (key, field) = (&cmd.args[1], &cmd.args[2]);
    let Some(incr) = parse_i64(&cmd.args[3]) else {
        return not_an_integer();
    };
    let old = match hash_of(ctx, key) {
        Err(e) => return e,
        Ok(h) => h.and_then(|h| h.fields.get(field)).cloned(),
    };
    let old = match old {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return err("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        return err("ERR increment or decrement would overflow");
    };
    let text = Bytes::from(new.to_string());
    set_fields(ctx, key, vec![(field.clone(), text)]);
    Reply::Int(new)
}

pub(super) fn hincrbyfloat(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (key, field, incr) = (&cmd.args[1], &cmd.args[2], &cmd.args[3]);
    match incr_by_float(b"0", incr) {
        Ok(_) => {}
        Err(FloatError::NotAFloat) => return err("ERR value is not a valid float"),
        Err(FloatError::NanOrInfinity) => return err("ERR value is NaN or Infinity"),
    }
    let old = match hash_of(ctx, key) {
        Err(e) => return e,
        Ok(h) => h.and_then(|h| h.fields.get(field)).cloned(),
    };
    let old = old.unwrap_or_else(|| Bytes::from_static(b"0"));
    match incr_by_float(&old, incr) {
        Ok(text) => {
            let value = Bytes::from(text);
            set_fields(ctx, key, vec![(field.clone(), value.clone())]);
            Reply::Bulk(value)
        }
        Err(FloatError::NotAFloat) => err("ERR hash value is not a float"),
        Err(FloatError::NanOrInfinity) => err("ERR increment would produce NaN or Infinity"),
    }
}

thread_local! {
    /// HRANDFIELD's generator (xorshift64*), seeded from the OS once per thread.
    static RANDOM: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// A random index below `n` (n > 0).
pub(super) fn random_below(n: usize) -> usize {
    assert!(n > 0);
    RANDOM.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    })
}

/// HRANDFIELD's and ZRANDMEMBER's `count [WITH...]`, checked in Redis's order: the count,
/// then the syntax, then the count's range when values are asked for too.
pub(super) fn random_count_args(args: &[Bytes], with: &str) -> Result<(i64, bool), Reply> {
    let count = parse_i64(&args[2]).ok_or_else(not_an_integer)?;
    if count == i64::MIN {
        return Err(err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
    }
    let with_values = match args.get(3) {
        None => false,
        Some(a) if args.len() == 4 && a.eq_ignore_ascii_case(with.as_bytes()) => true,
        Some(_) => return Err(syntax_error()),
    };
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(err("ERR value is out of range"));
    }
    Ok((count, with_values))
}

/// Which of `n` elements a random pick of `count` returns: |count| independent draws when
/// negative; all of them when `count` reaches `n` (from the last when `from_tail`, as Redis
/// walks a sorted set); else distinct ones, by a partial shuffle.
pub(super) fn random_picks(n: usize, count: i64, from_tail: bool) -> Vec<usize> {
    if count < 0 {
        (0..count.unsigned_abs()).map(|_| random_below(n)).collect()
    } else if count as u64 >= n as u64 {
        if from_tail {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        }
    } else {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..count as usize {
            let j = i + random_below(n - i);
            all.swap(i, j);
        }
        all.truncate(count as usize);
        all
    }
}

pub(super) fn hrandfield(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if cmd.args.len() == 2 {
        return match hash_of(ctx, &cmd.args[1]) {
            Err(e) => e,
            Ok(None) => Reply::Null,
            Ok(Some(h)) => {
                let (f, _) = h
                    .fields
                    .get_index(random_below(h.fields.len()))
                    .expect("in range");
                Reply::Bulk(f.clone())
            }
        };
    }
    let (count, with_values) = match random_count_args(&cmd.args, "withvalues") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let h = match hash_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(h)) => h,
    };
    let picks = random_picks(h.fields.len(), count, false);
    let pick = |i: usize| h.fields.get_index(i).expect("in range");
    if with_values {
        Reply::Pairs(
            picks
                .into_iter()
                .map(|i| {
                    let (f, v) = pick(i);
                    (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))
                })
                .collect(),
        )
    } else {
        Reply::Array(
            picks
                .into_iter()
                .map(|i| Reply::Bulk(pick(i).0.clone()))
                .collect(),
        )
    }
}

/// HSCAN's options (Redis 7.0 `scanGenericCommand`): MATCH and COUNT, in any order.
pub(super) fn scan_options(args: &[Bytes]) -> Result<(Option<&Bytes>, usize), Reply> {
    let (mut pattern, mut count) = (None, 10usize);
    let mut i = 0;
    while i < args.len() {
        let more = i + 1 < args.len();
        if args[i].eq_ignore_ascii_case(b"count") && more {
            match parse_i64(&args[i + 1]) {
                None => return Err(not_an_integer()),
                Some(c) if c < 1 => return Err(syntax_error()),
                Some(c) => count = c as usize,
            }
        } else if args[i].eq_ignore_ascii_case(b"match") && more {
            pattern = Some(&args[i + 1]);
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((pattern, count))
}

/// HSCAN (see [`scan_elements`]).
pub(super) fn hscan(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    scan_elements(ctx, cmd, hash_of, true)
}

/// How a collection command finds its key: Ok(None) when absent, Err(WRONGTYPE).
pub(super) type Lookup = for<'a> fn(&'a mut ExecCtx, &[u8]) -> Result<Option<&'a HashValue>, Reply>;

/// HSCAN and SSCAN, checked in Redis 7.0's order: the cursor, the key, then the options.
/// A collection small enough for Redis's compact encodings (at most
/// [`HASH_ORDERED_FIELDS_MAX`] elements) is returned whole with cursor 0, as Redis does.
/// A bigger one is walked in the order of its elements' 64-bit hashes: the cursor is the
/// hash to resume at, so an element present from the first call to the last is returned
/// once at least, whatever is added or removed in between.
pub(super) fn scan_elements(
    ctx: &mut ExecCtx,
    cmd: &Command,
    lookup: Lookup,
    with_values: bool,
) -> Reply {
    let Some(cursor) = parse_scan_cursor(&cmd.args[2]) else {
        return err("ERR invalid cursor");
    };
    let h = match lookup(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => {
            return Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"0")),
                Reply::Array(Vec::new()),
            ])
        }
        Ok(Some(h)) => h,
    };
    let (pattern, count) = match scan_options(&cmd.args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let elements: Vec<(Bytes, Option<Bytes>)> = h
        .fields
        .iter()
        .map(|(f, v)| (f.clone(), with_values.then(|| v.clone())))
        .collect();
    scan_page(
        cursor,
        pattern,
        count,
        elements,
        h.fields.len() <= HASH_ORDERED_FIELDS_MAX,
    )
}

/// One page of a collection scan from `cursor`: all `elements` with cursor 0 when `small`
/// (Redis's compact encodings), else those whose hashes are at or past the cursor, in hash
/// order, about `count` of them (see [`scan_elements`]). Each element is its name and, for
/// HSCAN and ZSCAN, its value.
pub(super) fn scan_page(
    cursor: u64,
    pattern: Option<&Bytes>,
    count: usize,
    elements: Vec<(Bytes, Option<Bytes>)>,
    small: bool,
) -> Reply {
    let matches = |f: &[u8]| pattern.is_none_or(|p| p.as_ref() == b"*" || glob_match(p, f, false));
    let (elements, next): (Vec<(Bytes, Option<Bytes>)>, u64) = if small {
        (elements, 0)
    } else {
        let mut by_hash: Vec<(u64, Bytes, Option<Bytes>)> = elements
            .into_iter()
            .map(|(f, v)| (field_hash(&f), f, v))
            .filter(|(hash, _, _)| *hash >= cursor)
            .collect();
        by_hash.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut take = count.min(by_hash.len());
        // A group of equal hashes is never split across two calls.
        while take < by_hash.len() && take > 0 && by_hash[take].0 == by_hash[take - 1].0 {
            take += 1;
        }
        let next = by_hash.get(take).map_or(0, |(hash, _, _)| *hash);
        by_hash.truncate(take);
        (by_hash.into_iter().map(|(_, f, v)| (f, v)).collect(), next)
    };
    let mut items = Vec::with_capacity(elements.len() * 2);
    for (f, v) in elements {
        if matches(&f) {
            items.push(Reply::Bulk(f));
            if let Some(v) = v {
                items.push(Reply::Bulk(v));
            }
        }
    }
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(items),
    ])
}

pub(super) fn parse_scan_cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// A field's place in a big hash's HSCAN order; never 0 (cursor 0 means "done").
pub(super) fn field_hash(f: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(f).max(1)
}

#[cfg(test)]
mod tests {
    use super::parse_scan_cursor;

    #[test]
    fn cursors_parse_as_strtoul() {
        assert_eq!(parse_scan_cursor(b"0"), Some(0));
        assert_eq!(parse_scan_cursor(b""), Some(0));
        assert_eq!(parse_scan_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"+7"), Some(7));
        assert_eq!(parse_scan_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551616"), None);
        for bad in [&b" 1"[..], b"x", b"1x", b"-", b"+", b"1 "] {
            assert_eq!(parse_scan_cursor(bad), None, "{bad:?}");
        }
    }
}
