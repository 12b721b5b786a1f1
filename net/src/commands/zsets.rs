//! Sorted set commands (`t_zset.c` in Redis 7.0), with the same argument checks in the same
//! order and the same replies. A sorted set lives in the keyspace as a member → score map
//! plus the members ordered by (score, member) (see `helios_engine::keyspace::ZSetValue`).
//!
//! Scores are replied as [`Reply::Double`]s (RESP3 `,`, RESP2 a bulk string), formatted as
//! Redis 7.2 does; Redis 7.0 prints `%.17g` (README lists the difference).
//!
//! Lexicographic ranges assume, as Redis's do, that the members in range share one score;
//! over mixed scores they walk the order as Redis's compact (listpack) encoding does: from
//! the first member at or past the minimum until one is past the maximum.
//!
//! The multi-key commands here run when all their keys live on this shard; across shards the
//! router gathers each source with [`source_of`]'s reply shape under intent locks
//! (`server::admin`) and combines them with [`combine`].

use std::ops::Bound;

use bytes::Bytes;
use helios_engine::keyspace::{Mutation, Score, Value, ZSetValue};
use indexmap::IndexMap;

use super::hashes::{
    parse_scan_cursor, random_below, random_count_args, random_picks, scan_options, scan_page,
};
use super::lists::{mpop_args, optional_count, positive_arg};
use super::num::parse_i64;
use super::{cstr, err, is_opt, not_an_integer, syntax_error, wrong_type, ExecCtx};
use crate::resp::encode::format_double;
use crate::{Command, Reply};

/// Redis keeps a sorted set of at most this many members as a listpack: ZSCAN returns it
/// whole with cursor 0.
const LISTPACK_ENTRIES_MAX: usize = 128;

/// The sorted set at `key`: Ok(None) when absent, Err(WRONGTYPE) for another type.
fn zset_of<'a>(ctx: &'a mut ExecCtx, key: &[u8]) -> Result<Option<&'a ZSetValue>, Reply> {
    match ctx.entry(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(wrong_type()),
        },
    }
}

fn add(ctx: &mut ExecCtx, key: &Bytes, mut members: Vec<(Bytes, Score)>) {
    // Redis's listpack keeps a score as text that reads "-0" back as 0; its skiplist keeps -0.
    let listpack = match ctx.entry(key) {
        Some(e) => e
            .value
            .as_zset()
            .is_none_or(|z| z.len() <= LISTPACK_ENTRIES_MAX),
        None => true,
    };
    if listpack {
        for (_, score) in members.iter_mut() {
            if score.get() == 0.0 {
                *score = Score::new(0.0);
            }
        }
    }
    let db = ctx.db;
    ctx.commit(Mutation::ZSetAdd {
        db,
        key: key.clone(),
        members,
    });
}

fn remove(ctx: &mut ExecCtx, key: &Bytes, members: Vec<Bytes>) {
    if members.is_empty() {
        return;
    }
    let db = ctx.db;
    ctx.commit(Mutation::ZSetRem {
        db,
        key: key.clone(),
        members,
    });
}

/// Replaces whatever is at `dst` with a sorted set of these members (none: deletes `dst`),
/// as the STORE commands do; returns the member count.
pub(super) fn store(ctx: &mut ExecCtx, dst: &Bytes, members: Vec<(Bytes, f64)>) -> i64 {
    let count = members.len() as i64;
    ctx.del(dst);
    if !members.is_empty() {
        let members = members
            .into_iter()
            .map(|(m, s)| (m, Score::new(s)))
            .collect();
        add(ctx, dst, members);
    }
    count
}

/// C's `strtod` over the argument as a C string: its value, None when it converts nothing or
/// leaves text over (whether ERANGE would be set is the caller's to judge).
fn strtod_all(arg: &[u8]) -> Option<f64> {
    crate::strtod::strtod(arg).map(|c| c.value)
}

/// A score or weight argument as `getDoubleFromObject` reads it: all of the text, no leading
/// white space, no overflow to infinity or underflow to zero, never NaN.
pub fn parse_double(arg: &[u8]) -> Option<f64> {
    if arg.is_empty()
        || arg[0].is_ascii_whitespace()
        || arg[0] == 0x0b
        || cstr(arg).len() != arg.len()
    {
        return None;
    }
    let value = strtod_all(arg)?;
    if value.is_nan() {
        return None;
    }
    let literal_infinity = |b: &[u8]| {
        let b = b.strip_prefix(b"-").or(b.strip_prefix(b"+")).unwrap_or(b);
        b.eq_ignore_ascii_case(b"inf") || b.eq_ignore_ascii_case(b"infinity")
    };
    if value.is_infinite() && !literal_infinity(arg) {
        return None;
    }
    if value == 0.0 && arg.iter().any(|b| (b'1'..=b'9').contains(b)) {
        let mantissa_end = arg
            .iter()
            .position(|b| *b == b'e' || *b == b'E')
            .unwrap_or(arg.len());
        if arg[..mantissa_end]
            .iter()
            .any(|b| (b'1'..=b'9').contains(b))
        {
            return None;
        }
    }
    Some(value)
}

fn not_a_float() -> Reply {
    err("ERR value is not a valid float")
}

/// A score interval (`zrangespec`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreRange {
    min: f64,
    min_excl: bool,
    max: f64,
    max_excl: bool,
}

impl ScoreRange {
    /// `zslParseRange`: `(` makes a bound exclusive; strtod reads the rest.
    pub fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        let bound = |arg: &[u8]| -> Option<(f64, bool)> {
            let (excl, text) = match arg.first() {
                Some(b'(') => (true, &arg[1..]),
                _ => (false, arg),
            };
            strtod_all(text).filter(|v| !v.is_nan()).map(|v| (v, excl))
        };
        match (bound(min), bound(max)) {
            (Some((min, min_excl)), Some((max, max_excl))) => Ok(ScoreRange {
                min,
                min_excl,
                max,
                max_excl,
            }),
            _ => Err(err("ERR min or max is not a float")),
        }
    }

    fn gte_min(&self, s: f64) -> bool {
        if self.min_excl {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn lte_max(&self, s: f64) -> bool {
        if self.max_excl {
            s < self.max
        } else {
            s <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_excl || self.max_excl))
    }
}

/// One end of a lexicographic range (`zslParseLexRangeItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum LexItem {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexItem {
    fn parse(arg: &Bytes) -> Option<LexItem> {
        match arg.first()? {
            b'+' if cstr(arg).len() == 1 => Some(LexItem::Max),
            b'-' if cstr(arg).len() == 1 => Some(LexItem::Min),
            b'(' => Some(LexItem::Excl(arg.slice(1..))),
            b'[' => Some(LexItem::Incl(arg.slice(1..))),
            _ => None,
        }
    }

    /// Rank of the item among the three kinds, then its bytes (`sdscmplex`).
    fn cmp(&self, other: &LexItem) -> std::cmp::Ordering {
        let key = |i: &LexItem| match i {
            LexItem::Min => (0, None),
            LexItem::Incl(b) | LexItem::Excl(b) => (1, Some(b.clone())),
            LexItem::Max => (2, None),
        };
        key(self).cmp(&key(other))
    }

    fn is_excl(&self) -> bool {
        !matches!(self, LexItem::Incl(_))
    }
}

/// A lexicographic interval (`zlexrangespec`).
#[derive(Debug, Clone)]
pub struct LexRange {
    min: LexItem,
    max: LexItem,
}

impl LexRange {
    pub fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, Reply> {
        match (LexItem::parse(min), LexItem::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(err("ERR min or max not valid string range item")),
        }
    }

    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexItem::Min => true,
            LexItem::Max => false,
            LexItem::Incl(b) => m >= b.as_ref(),
            LexItem::Excl(b) => m > b.as_ref(),
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexItem::Min => false,
            LexItem::Max => true,
            LexItem::Incl(b) => m <= b.as_ref(),
            LexItem::Excl(b) => m < b.as_ref(),
        }
    }

    fn is_empty(&self) -> bool {
        match self.min.cmp(&self.max) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => self.min.is_excl() || self.max.is_excl(),
            std::cmp::Ordering::Less => false,
        }
    }
}

/// The members whose scores are in `range`, ascending or (`rev`) descending.
fn in_score_range<'a>(
    z: &'a ZSetValue,
    range: &'a ScoreRange,
    rev: bool,
) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
    if range.is_empty() {
        return Box::new(std::iter::empty());
    }
    if rev {
        // Everything below the next score up from the maximum, from the top down.
        let upper = match range.max.next_up() {
            up if up.is_infinite() && up > 0.0 && range.max.is_infinite() => Bound::Unbounded,
            up => Bound::Excluded((Score::new(up), Bytes::new())),
        };
        Box::new(
            z.order
                .range((Bound::Unbounded, upper))
                .rev()
                .map(|(s, m)| (m, s.get()))
                .skip_while(|(_, s)| !range.lte_max(*s))
                .take_while(|(_, s)| range.gte_min(*s)),
        )
    } else {
        let lower = Bound::Included((Score::new(range.min), Bytes::new()));
        Box::new(
            z.order
                .range((lower, Bound::Unbounded))
                .map(|(s, m)| (m, s.get()))
                .skip_while(|(_, s)| !range.gte_min(*s))
                .take_while(|(_, s)| range.lte_max(*s)),
        )
    }
}

/// The members in `range` as Redis's listpack walk finds them (see the module doc).
fn in_lex_range<'a>(
    z: &'a ZSetValue,
    range: &'a LexRange,
    rev: bool,
) -> Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a> {
    // `zzlIsInLexRange`: the last member must reach the minimum, the first the maximum.
    let outside = |z: &ZSetValue| {
        z.iter().next_back().is_none_or(|(m, _)| !range.gte_min(m))
            || z.iter().next().is_none_or(|(m, _)| !range.lte_max(m))
    };
    if range.is_empty() || outside(z) {
        return Box::new(std::iter::empty());
    }
    if rev {
        let mut it = z
            .iter()
            .rev()
            .skip_while(|(m, _)| !range.lte_max(m))
            .peekable();
        if it.peek().is_some_and(|(m, _)| !range.gte_min(m)) {
            return Box::new(std::iter::empty());
        }
        Box::new(it.take_while(|(m, _)| range.gte_min(m)))
    } else {
        let mut it = z.iter().skip_while(|(m, _)| !range.gte_min(m)).peekable();
        if it.peek().is_some_and(|(m, _)| !range.lte_max(m)) {
            return Box::new(std::iter::empty());
        }
        Box::new(it.take_while(|(m, _)| range.lte_max(m)))
    }
}

/// Start and end positions (inclusive) of a rank range over `len` members, as Redis
/// sanitizes them; None when empty.
fn rank_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

fn in_rank_range(
    z: &ZSetValue,
    start: usize,
    end: usize,
    rev: bool,
) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
    let n = end - start + 1;
    if rev {
        Box::new(z.iter().rev().skip(start).take(n))
    } else {
        Box::new(z.iter().skip(start).take(n))
    }
}

/// Members as a reply: bulk strings, or (WITHSCORES) member-score pairs (RESP3 nested).
fn members_reply(items: Vec<(Bytes, f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

fn owned<'a>(it: impl Iterator<Item = (&'a Bytes, f64)>) -> Vec<(Bytes, f64)> {
    it.map(|(m, s)| (m.clone(), s)).collect()
}

// ---- ZADD, ZINCRBY -------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// ZADD and ZINCRBY (`zaddGenericCommand`).
fn zadd_generic(ctx: &mut ExecCtx, cmd: &Command, incr: bool) -> Reply {
    let key = &cmd.args[1];
    let mut flags = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut at = 2;
    while at < cmd.args.len() {
        let opt = &cmd.args[at];
        if is_opt(opt, "nx") {
            flags.nx = true;
        } else if is_opt(opt, "xx") {
            flags.xx = true;
        } else if is_opt(opt, "ch") {
            flags.ch = true;
        } else if is_opt(opt, "incr") {
            flags.incr = true;
        } else if is_opt(opt, "gt") {
            flags.gt = true;
        } else if is_opt(opt, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        at += 1;
    }
    let rest = &cmd.args[at..];
    if rest.is_empty() || rest.len() % 2 == 1 {
        return syntax_error();
    }
    if flags.nx && flags.xx {
        return err("ERR XX and NX options at the same time are not compatible");
    }
    if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
        return err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if flags.incr && rest.len() > 2 {
        return err("ERR INCR option supports a single increment-element pair");
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        match parse_double(&pair[0]) {
            Some(score) => pairs.push((score, &pair[1])),
            None => return not_a_float(),
        }
    }
    let existing = match zset_of(ctx, key) {
        Err(e) => return e,
        Ok(z) => z,
    };
    if existing.is_none() && flags.xx {
        return if flags.incr {
            Reply::Null
        } else {
            Reply::Int(0)
        };
    }
    // Each pair sees the ones before it (a member may come twice).
    let mut changed: IndexMap<Bytes, f64> = IndexMap::new();
    let (mut added, mut updated, mut processed, mut last) = (0i64, 0i64, 0, 0.0);
    for (score, member) in pairs {
        let current = changed
            .get(member)
            .copied()
            .or_else(|| existing.and_then(|z| z.score(member)));
        let new = match current {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                let new = if flags.incr { current + score } else { score };
                if new.is_nan() {
                    return err("ERR resulting score is not a number (NaN)");
                }
                if (flags.lt && new >= current) || (flags.gt && new <= current) {
                    continue;
                }
                if new != current {
                    updated += 1;
                    changed.insert(member.clone(), new);
                }
                new
            }
            None => {
                if flags.xx {
                    continue;
                }
                added += 1;
                changed.insert(member.clone(), score);
                score
            }
        };
        processed += 1;
        last = new;
    }
    if !changed.is_empty() {
        add(
            ctx,
            key,
            changed
                .into_iter()
                .map(|(m, s)| (m, Score::new(s)))
                .collect(),
        );
    }
    if flags.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Null
        }
    } else if flags.ch {
        Reply::Int(added + updated)
    } else {
        Reply::Int(added)
    }
}

pub(super) fn zadd(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zadd_generic(ctx, cmd, false)
}

pub(super) fn zincrby(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zadd_generic(ctx, cmd, true)
}

// ---- Single-member reads and removal -------------------------------------------------------

pub(super) fn zrem(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let mut present: Vec<Bytes> = match zset_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => cmd.args[2..]
            .iter()
            .filter(|m| z.score(m).is_some())
            .cloned()
            .collect(),
    };
    present.sort();
    present.dedup();
    let removed = present.len() as i64;
    remove(ctx, key, present);
    Reply::Int(removed)
}

pub(super) fn zscore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.score(&cmd.args[2]))
            .map_or(Reply::Null, Reply::Double),
    }
}

pub(super) fn zmscore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Array(
            cmd.args[2..]
                .iter()
                .map(|m| {
                    z.and_then(|z| z.score(m))
                        .map_or(Reply::Null, Reply::Double)
                })
                .collect(),
        ),
    }
}

pub(super) fn zcard(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len() as i64)),
    }
}

/// ZRANK and ZREVRANK, with Redis 7.2's WITHSCORE.
fn rank_generic(ctx: &mut ExecCtx, cmd: &Command, rev: bool) -> Reply {
    if cmd.args.len() > 4 {
        return Reply::wrong_arity(if rev { "zrevrank" } else { "zrank" });
    }
    let with_score = match cmd.args.get(3) {
        None => false,
        Some(a) if is_opt(a, "withscore") => true,
        Some(_) => return syntax_error(),
    };
    let none = if with_score {
        Reply::NullArray
    } else {
        Reply::Null
    };
    let z = match zset_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return none,
        Ok(Some(z)) => z,
    };
    let member = &cmd.args[2];
    let (Some(rank), Some(score)) = (z.rank(member), z.score(member)) else {
        return none;
    };
    let rank = if rev { z.len() - 1 - rank } else { rank } as i64;
    if with_score {
        Reply::Array(vec![Reply::Int(rank), Reply::Double(score)])
    } else {
        Reply::Int(rank)
    }
}

pub(super) fn zrank(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    rank_generic(ctx, cmd, false)
}

pub(super) fn zrevrank(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    rank_generic(ctx, cmd, true)
}

pub(super) fn zcount(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let range = match ScoreRange::parse(&cmd.args[2], &cmd.args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => Reply::Int(in_score_range(z, &range, false).count() as i64),
    }
}

pub(super) fn zlexcount(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let range = match LexRange::parse(&cmd.args[2], &cmd.args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Int(0),
        Ok(Some(z)) => Reply::Int(in_lex_range(z, &range, false).count() as i64),
    }
}

// ---- ZRANGE and its forms ------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The range a ZRANGE-family command asked for, parsed.
enum RangeSpec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

struct RangeArgs {
    spec: RangeSpec,
    rev: bool,
    with_scores: bool,
    offset: i64,
    limit: i64,
}

/// `zrangeGenericCommand`'s parsing: options after `<src> <min> <max>` (at `src_at`), then
/// the range. `rev`/`kind` are fixed by the command name or None to be chosen by options.
fn range_args(
    args: &[Bytes],
    src_at: usize,
    store: bool,
    kind: RangeType,
    rev: Option<bool>,
) -> Result<RangeArgs, Reply> {
    let (mut kind, mut direction) = (kind, rev);
    let (mut with_scores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = src_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if !store && is_opt(a, "withscores") {
            with_scores = true;
        } else if is_opt(a, "limit") && left >= 2 {
            offset = parse_i64(&args[j + 1]).ok_or_else(not_an_integer)?;
            limit = parse_i64(&args[j + 2]).ok_or_else(not_an_integer)?;
            j += 2;
        } else if direction.is_none() && is_opt(a, "rev") {
            direction = Some(true);
        } else if kind == RangeType::Auto && is_opt(a, "bylex") {
            kind = RangeType::Lex;
        } else if kind == RangeType::Auto && is_opt(a, "byscore") {
            kind = RangeType::Score;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let rev = direction.unwrap_or(false);
    if kind == RangeType::Auto {
        kind = RangeType::Rank;
    }
    if limit != -1 && kind == RangeType::Rank {
        return Err(err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && kind == RangeType::Lex {
        return Err(err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (&args[src_at + 1], &args[src_at + 2]);
    if rev && kind != RangeType::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let spec = match kind {
        RangeType::Score => RangeSpec::Score(ScoreRange::parse(lo, hi)?),
        RangeType::Lex => RangeSpec::Lex(LexRange::parse(lo, hi)?),
        _ => RangeSpec::Rank(
            parse_i64(lo).ok_or_else(not_an_integer)?,
            parse_i64(hi).ok_or_else(not_an_integer)?,
        ),
    };
    Ok(RangeArgs {
        spec,
        rev,
        with_scores,
        offset,
        limit,
    })
}

/// Skips `offset` members then takes `limit` (negative: all), as Redis's range walks do:
/// a negative offset walks off the end.
fn limited<'a>(
    it: Box<dyn Iterator<Item = (&'a Bytes, f64)> + 'a>,
    offset: i64,
    limit: i64,
) -> Vec<(Bytes, f64)> {
    if offset < 0 {
        return Vec::new();
    }
    let it = it.skip(offset as usize);
    if limit < 0 {
        owned(it)
    } else {
        owned(it.take(limit as usize))
    }
}

/// The members a parsed range selects.
fn select(z: &ZSetValue, a: &RangeArgs) -> Vec<(Bytes, f64)> {
    match &a.spec {
        RangeSpec::Rank(start, end) => match rank_range(*start, *end, z.len()) {
            None => Vec::new(),
            Some((start, end)) => owned(in_rank_range(z, start, end, a.rev)),
        },
        RangeSpec::Score(range) => limited(in_score_range(z, range, a.rev), a.offset, a.limit),
        RangeSpec::Lex(range) => limited(in_lex_range(z, range, a.rev), a.offset, a.limit),
    }
}

fn range_generic(ctx: &mut ExecCtx, cmd: &Command, kind: RangeType, rev: Option<bool>) -> Reply {
    let a = match range_args(&cmd.args, 1, false, kind, rev) {
        Ok(a) => a,
        Err(e) => return e,
    };
    match zset_of(ctx, &cmd.args[1]) {
        Err(e) => e,
        Ok(None) => Reply::Array(Vec::new()),
        Ok(Some(z)) => members_reply(select(z, &a), a.with_scores),
    }
}

pub(super) fn zrange(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Auto, None)
}

pub(super) fn zrevrange(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Rank, Some(true))
}

pub(super) fn zrangebyscore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Score, Some(false))
}

pub(super) fn zrevrangebyscore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Score, Some(true))
}

pub(super) fn zrangebylex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Lex, Some(false))
}

pub(super) fn zrevrangebylex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    range_generic(ctx, cmd, RangeType::Lex, Some(true))
}

/// ZRANGESTORE's selection: the members it stores, or the error (checked in Redis's order:
/// the options and range, then the source's type).
pub fn zrangestore_members(
    args: &[Bytes],
    source: Result<Option<&ZSetValue>, Reply>,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let a = range_args(args, 2, true, RangeType::Auto, None)?;
    match source? {
        None => Ok(Vec::new()),
        Some(z) => Ok(select(z, &a)),
    }
}

/// Parses ZRANGESTORE's options without a source (the router checks them before it reads).
pub fn zrangestore_check(args: &[Bytes]) -> Result<(), Reply> {
    range_args(args, 2, true, RangeType::Auto, None).map(|_| ())
}

/// ZRANGESTORE over a source given as its members in order (the router's cross-shard path).
pub fn zrangestore_select(
    args: &[Bytes],
    members: Vec<(Bytes, f64)>,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let a = range_args(args, 2, true, RangeType::Auto, None)?;
    let z = zset_from(members);
    Ok(select(&z, &a))
}

fn zset_from(members: Vec<(Bytes, f64)>) -> ZSetValue {
    let mut z = ZSetValue::empty(0, 0);
    for (m, s) in members {
        z.scores.insert(m.clone(), Score::new(s));
        z.order.insert((Score::new(s), m));
    }
    z
}

pub(super) fn zrangestore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let src = cmd.args[2].clone();
    let selected = {
        let source = zset_of(ctx, &src);
        zrangestore_members(&cmd.args, source)
    };
    match selected {
        Err(e) => e,
        Ok(members) => Reply::Int(store(ctx, &cmd.args[1].clone(), members)),
    }
}

// ---- Removal by range ----------------------------------------------------------------------

fn remrange_generic(ctx: &mut ExecCtx, cmd: &Command, kind: RangeType) -> Reply {
    let spec = match kind {
        RangeType::Score => ScoreRange::parse(&cmd.args[2], &cmd.args[3]).map(RangeSpec::Score),
        RangeType::Lex => LexRange::parse(&cmd.args[2], &cmd.args[3]).map(RangeSpec::Lex),
        _ => match (parse_i64(&cmd.args[2]), parse_i64(&cmd.args[3])) {
            (Some(s), Some(e)) => Ok(RangeSpec::Rank(s, e)),
            _ => Err(not_an_integer()),
        },
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return e,
    };
    let key = &cmd.args[1];
    let doomed: Vec<Bytes> = match zset_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Int(0),
        Ok(Some(z)) => {
            let a = RangeArgs {
                spec,
                rev: false,
                with_scores: false,
                offset: 0,
                limit: -1,
            };
            select(z, &a).into_iter().map(|(m, _)| m).collect()
        }
    };
    let removed = doomed.len() as i64;
    remove(ctx, key, doomed);
    Reply::Int(removed)
}

pub(super) fn zremrangebyrank(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    remrange_generic(ctx, cmd, RangeType::Rank)
}

pub(super) fn zremrangebyscore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    remrange_generic(ctx, cmd, RangeType::Score)
}

pub(super) fn zremrangebylex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    remrange_generic(ctx, cmd, RangeType::Lex)
}

// ---- Pops ----------------------------------------------------------------------------------

/// Removes and returns the `count` lowest (`max`: highest) members of the sorted set at `key`.
fn pop(ctx: &mut ExecCtx, key: &Bytes, max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let taken: Vec<(Bytes, f64)> = match ctx.ks.get(ctx.db, key, ctx.now_ms) {
        Some(e) => match &e.value {
            Value::ZSet(z) if max => owned(z.iter().rev().take(count)),
            Value::ZSet(z) => owned(z.iter().take(count)),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    remove(ctx, key, taken.iter().map(|(m, _)| m.clone()).collect());
    taken
}

fn flat_pairs(items: Vec<(Bytes, f64)>) -> Vec<Reply> {
    items
        .into_iter()
        .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
        .collect()
}

fn nested_pairs(items: Vec<(Bytes, f64)>) -> Vec<Reply> {
    items
        .into_iter()
        .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
        .collect()
}

/// ZPOPMIN and ZPOPMAX (`zpopMinMaxCommand`): a flat array without a count; with one,
/// member-score pairs (nested in RESP3).
fn zpop_generic(ctx: &mut ExecCtx, cmd: &Command, max: bool) -> Reply {
    if cmd.args.len() > 3 {
        return syntax_error();
    }
    let count = match optional_count(cmd.args.get(2)) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = &cmd.args[1];
    match zset_of(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(_)) => {}
    }
    match count {
        Some(0) => Reply::Array(Vec::new()),
        None => Reply::Array(flat_pairs(pop(ctx, key, max, 1))),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Reply::Pairs(
                pop(ctx, key, max, n)
                    .into_iter()
                    .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                    .collect(),
            )
        }
    }
}

pub(super) fn zpopmin(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zpop_generic(ctx, cmd, false)
}

pub(super) fn zpopmax(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zpop_generic(ctx, cmd, true)
}

/// ZMPOP's arguments (`zmpopGenericCommand`) from `numkeys_at`: its keys, the side (true:
/// MAX) and the count.
pub fn zmpop_args(args: &[Bytes], numkeys_at: usize) -> Result<(&[Bytes], bool, u64), Reply> {
    mpop_args(args, numkeys_at, |side| {
        if is_opt(side, "min") {
            Ok(false)
        } else if is_opt(side, "max") {
            Ok(true)
        } else {
            Err(syntax_error())
        }
    })
}

/// ZMPOP's reply: the key and its popped member-score pairs (nested in both protocols).
pub fn zmpop_reply(key: Bytes, popped: Vec<(Bytes, f64)>) -> Reply {
    Reply::Array(vec![Reply::Bulk(key), Reply::Array(nested_pairs(popped))])
}

pub(super) fn zmpop(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (keys, max, count) = match zmpop_args(&cmd.args, 1) {
        Ok(a) => a,
        Err(e) => return e,
    };
    for key in keys.iter().cloned() {
        match zset_of(ctx, &key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(_)) => {
                let n = usize::try_from(count).unwrap_or(usize::MAX);
                let popped = pop(ctx, &key, max, n);
                return zmpop_reply(key, popped);
            }
        }
    }
    Reply::NullArray
}

// ---- Random members and scans --------------------------------------------------------------

pub(super) fn zrandmember(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if cmd.args.len() == 2 {
        return match zset_of(ctx, &cmd.args[1]) {
            Err(e) => e,
            Ok(None) => Reply::Null,
            Ok(Some(z)) => {
                let i = random_below(z.len());
                let (m, _) = z.iter().nth(i).expect("in range");
                Reply::Bulk(m.clone())
            }
        };
    }
    let (count, with_scores) = match random_count_args(&cmd.args, "withscores") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let z = match zset_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(z)) => z,
    };
    let all: Vec<(&Bytes, f64)> = z.iter().collect();
    // Redis walks a whole sorted set from its tail (`zuiInitIterator`).
    let picks = random_picks(all.len(), count, true);
    members_reply(
        picks
            .into_iter()
            .map(|i| (all[i].0.clone(), all[i].1))
            .collect(),
        with_scores,
    )
}

/// ZSCAN: the cursor, the key, then the options, as HSCAN; scores as bulk strings.
pub(super) fn zscan(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let Some(cursor) = parse_scan_cursor(&cmd.args[2]) else {
        return err("ERR invalid cursor");
    };
    let z = match zset_of(ctx, &cmd.args[1]) {
        Err(e) => return e,
        Ok(None) => return scan_page(cursor, None, 10, Vec::new(), true),
        Ok(Some(z)) => z,
    };
    let (pattern, count) = match scan_options(&cmd.args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let elements: Vec<(Bytes, Option<Bytes>)> = z
        .iter()
        .map(|(m, s)| (m.clone(), Some(Bytes::from(format_double(s)))))
        .collect();
    scan_page(
        cursor,
        pattern,
        count,
        elements,
        z.len() <= LISTPACK_ENTRIES_MAX,
    )
}

// ---- ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD -------------------------------

/// Which combination of the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A source's members with their scores; a plain set's members score 1.
pub type Source = Option<Vec<(Bytes, f64)>>;

/// The options after the keys of a ZUNION-family command.
pub struct ZOpOptions {
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: usize,
}

/// The keys of a ZUNION-family command whose `numkeys` is at `numkeys_at` (the name of the
/// command for the error text), before their types are checked.
pub fn zop_keys<'a>(
    args: &'a [Bytes],
    numkeys_at: usize,
    name: &str,
) -> Result<&'a [Bytes], Reply> {
    let n = parse_i64(&args[numkeys_at]).ok_or_else(not_an_integer)?;
    if n < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            name.to_ascii_lowercase()
        )));
    }
    let rest = &args[numkeys_at + 1..];
    if n as u64 > rest.len() as u64 {
        return Err(syntax_error());
    }
    Ok(&rest[..n as usize])
}

/// The options after the keys (checked after the keys' types, as Redis does).
pub fn zop_options(
    rest: &[Bytes],
    op: ZOp,
    nkeys: usize,
    store: bool,
    card_only: bool,
) -> Result<ZOpOptions, Reply> {
    let mut o = ZOpOptions {
        weights: vec![1.0; nkeys],
        aggregate: Aggregate::Sum,
        with_scores: false,
        limit: 0,
    };
    let mut j = 0;
    while j < rest.len() {
        let remaining = rest.len() - j;
        let a = &rest[j];
        if op != ZOp::Diff && !card_only && remaining > nkeys && is_opt(a, "weights") {
            for i in 0..nkeys {
                o.weights[i] = parse_double(&rest[j + 1 + i])
                    .ok_or_else(|| err("ERR weight value is not a float"))?;
            }
            j += 1 + nkeys;
        } else if op != ZOp::Diff && !card_only && remaining >= 2 && is_opt(a, "aggregate") {
            let b = &rest[j + 1];
            o.aggregate = if is_opt(b, "sum") {
                Aggregate::Sum
            } else if is_opt(b, "min") {
                Aggregate::Min
            } else if is_opt(b, "max") {
                Aggregate::Max
            } else {
                return Err(syntax_error());
            };
            j += 2;
        } else if !store && !card_only && is_opt(a, "withscores") {
            o.with_scores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is_opt(a, "limit") {
            let limit = positive_arg(&rest[j + 1], "ERR LIMIT can't be negative")?;
            o.limit = usize::try_from(limit).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(o)
}

fn aggregate(into: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *into += value;
            // +inf plus -inf: Redis keeps 0 rather than NaN.
            if into.is_nan() {
                *into = 0.0;
            }
        }
        Aggregate::Min => *into = into.min(value),
        Aggregate::Max => *into = into.max(value),
    }
}

fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// Combines the sources (`zunionInterDiffGenericCommand`); the result in Redis's order.
pub fn combine(op: ZOp, sources: &[Source], o: &ZOpOptions) -> Vec<(Bytes, f64)> {
    let lookup: Vec<Option<std::collections::HashMap<&Bytes, f64>>> = sources
        .iter()
        .map(|s| s.as_ref().map(|v| v.iter().map(|(m, s)| (m, *s)).collect()))
        .collect();
    let mut out: IndexMap<Bytes, f64> = IndexMap::new();
    match op {
        ZOp::Inter => {
            // From the smallest source, as Redis does (the sum's order of additions).
            let mut order: Vec<usize> = (0..sources.len()).collect();
            order.sort_by_key(|&i| sources[i].as_ref().map_or(0, |v| v.len()));
            let Some(first) = sources[order[0]].as_ref() else {
                return Vec::new();
            };
            'members: for (m, s) in first {
                let mut score = weighted(*s, o.weights[order[0]]);
                for &i in &order[1..] {
                    match lookup[i].as_ref().and_then(|l| l.get(m)) {
                        Some(v) => aggregate(&mut score, weighted(*v, o.weights[i]), o.aggregate),
                        None => continue 'members,
                    }
                }
                out.insert(m.clone(), score);
            }
        }
        ZOp::Union => {
            let mut order: Vec<usize> = (0..sources.len()).collect();
            order.sort_by_key(|&i| sources[i].as_ref().map_or(0, |v| v.len()));
            for &i in &order {
                for (m, s) in sources[i].iter().flatten() {
                    let v = weighted(*s, o.weights[i]);
                    match out.get_mut(m) {
                        Some(score) => aggregate(score, v, o.aggregate),
                        None => {
                            out.insert(m.clone(), v);
                        }
                    }
                }
            }
        }
        ZOp::Diff => {
            let Some(first) = sources[0].as_ref() else {
                return Vec::new();
            };
            for (m, s) in first {
                if !lookup[1..]
                    .iter()
                    .any(|l| l.as_ref().is_some_and(|l| l.contains_key(m)))
                {
                    out.insert(m.clone(), *s);
                }
            }
        }
    }
    let mut result: Vec<(Bytes, f64)> = out.into_iter().collect();
    result.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .expect("no NaN scores")
            .then_with(|| a.0.cmp(&b.0))
    });
    result
}

/// The reply of ZUNION, ZINTER or ZDIFF (no STORE).
pub fn combined_reply(members: Vec<(Bytes, f64)>, o: &ZOpOptions) -> Reply {
    members_reply(members, o.with_scores)
}

/// ZINTERCARD's count, stopping at the limit (0: none).
pub fn intersection_card(sources: &[Source], o: &ZOpOptions) -> i64 {
    let n = combine(ZOp::Inter, sources, o).len();
    if o.limit > 0 {
        n.min(o.limit) as i64
    } else {
        n as i64
    }
}

/// A source as the combining commands read it: a sorted set's members, a set's members
/// with score 1, None when absent; WRONGTYPE for anything else.
fn source_of(ctx: &mut ExecCtx, key: &[u8]) -> Result<Source, Reply> {
    match ctx.entry(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(owned(z.iter()))),
            Value::Set(s) => Ok(Some(s.fields.keys().map(|m| (m.clone(), 1.0)).collect())),
            _ => Err(wrong_type()),
        },
    }
}

/// How each command of the family is laid out: the op, whether it stores, whether it only
/// counts, and where `numkeys` is.
pub fn zop_kind(name: &str) -> Option<(ZOp, bool, bool, usize)> {
    Some(match name {
        "zunion" => (ZOp::Union, false, false, 1),
        "zinter" => (ZOp::Inter, false, false, 1),
        "zdiff" => (ZOp::Diff, false, false, 1),
        "zintercard" => (ZOp::Inter, false, true, 1),
        "zunionstore" => (ZOp::Union, true, false, 2),
        "zinterstore" => (ZOp::Inter, true, false, 2),
        "zdiffstore" => (ZOp::Diff, true, false, 2),
        _ => return None,
    })
}

fn zop_generic(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let name = cmd.name_lower();
    let Some((op, store, card_only, numkeys_at)) = zop_kind(&name) else {
        return err("ERR internal error: not a sorted set operation");
    };
    let keys = match zop_keys(&cmd.args, numkeys_at, &name) {
        Ok(k) => k.to_vec(),
        Err(e) => return e,
    };
    let mut sources = Vec::with_capacity(keys.len());
    for key in &keys {
        match source_of(ctx, key) {
            Ok(s) => sources.push(s),
            Err(e) => return e,
        }
    }
    let rest = &cmd.args[numkeys_at + 1 + keys.len()..];
    let o = match zop_options(rest, op, keys.len(), store, card_only) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if card_only {
        return Reply::Int(intersection_card(&sources, &o));
    }
    let members = combine(op, &sources, &o);
    if store {
        Reply::Int(store_combined(ctx, &cmd.args[1].clone(), members))
    } else {
        combined_reply(members, &o)
    }
}

fn store_combined(ctx: &mut ExecCtx, dst: &Bytes, members: Vec<(Bytes, f64)>) -> i64 {
    store(ctx, dst, members)
}

pub(super) fn zunion(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zinter(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zdiff(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zintercard(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zunionstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zinterstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

pub(super) fn zdiffstore(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    zop_generic(ctx, cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_parse_as_redis_reads_them() {
        assert_eq!(parse_double(b"1.5"), Some(1.5));
        assert_eq!(parse_double(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_double(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_double(b"0x10"), Some(16.0));
        assert_eq!(
            parse_double(b"0x1.8p1"),
            Some(3.0),
            "glibc reads hexadecimal floats"
        );
        assert_eq!(parse_double(b"nan"), None);
        assert_eq!(parse_double(b""), None);
        assert_eq!(parse_double(b" 1"), None);
        assert_eq!(parse_double(b"1 "), None);
        assert_eq!(parse_double(b"1e999"), None, "overflow");
        assert_eq!(parse_double(b"1e-999"), None, "underflow");
        assert_eq!(parse_double(b"0e5"), Some(0.0));
        assert_eq!(parse_double(b"--1"), None);
    }

    #[test]
    fn score_ranges_parse_as_zslparserange() {
        let r = ScoreRange::parse(b"(1", b"+inf").expect("valid");
        assert!(!r.gte_min(1.0) && r.gte_min(1.5) && r.lte_max(f64::INFINITY));
        let r = ScoreRange::parse(b"", b"(").expect("strtod reads nothing as 0");
        assert!(r.is_empty());
        assert!(ScoreRange::parse(b"a", b"1").is_err());
        assert!(ScoreRange::parse(b"1", b"nan").is_err());
        assert!(
            ScoreRange::parse(b"1e999", b"2").is_ok(),
            "no overflow check"
        );
    }

    #[test]
    fn lex_ranges_compare_as_sdscmplex() {
        let p = |a: &'static [u8], b: &'static [u8]| {
            LexRange::parse(&Bytes::from_static(a), &Bytes::from_static(b))
        };
        assert!(p(b"-", b"+").is_ok_and(|r| !r.is_empty()));
        assert!(p(b"+", b"-").is_ok_and(|r| r.is_empty()));
        assert!(p(b"-", b"-").is_ok_and(|r| r.is_empty()));
        assert!(p(b"[a", b"(a").is_ok_and(|r| r.is_empty()));
        assert!(p(b"[a", b"[a").is_ok_and(|r| !r.is_empty()));
        assert!(p(b"a", b"[b").is_err());
        assert!(p(b"+x", b"[b").is_err());
    }

    fn z(items: &[(&'static str, f64)]) -> ZSetValue {
        zset_from(
            items
                .iter()
                .map(|(m, s)| (Bytes::from_static(m.as_bytes()), *s))
                .collect(),
        )
    }

    fn names(v: Vec<(Bytes, f64)>) -> Vec<String> {
        v.into_iter()
            .map(|(m, _)| String::from_utf8_lossy(&m).into_owned())
            .collect()
    }

    #[test]
    fn score_ranges_select_in_both_directions() {
        let set = z(&[
            ("a", 1.0),
            ("b", 2.0),
            ("c", 2.0),
            ("d", 3.0),
            ("e", f64::INFINITY),
        ]);
        let r = ScoreRange::parse(b"2", b"3").expect("valid");
        assert_eq!(
            names(owned(in_score_range(&set, &r, false))),
            ["b", "c", "d"]
        );
        assert_eq!(
            names(owned(in_score_range(&set, &r, true))),
            ["d", "c", "b"]
        );
        let r = ScoreRange::parse(b"(2", b"+inf").expect("valid");
        assert_eq!(names(owned(in_score_range(&set, &r, true))), ["e", "d"]);
        let r = ScoreRange::parse(b"-inf", b"(2").expect("valid");
        assert_eq!(names(owned(in_score_range(&set, &r, true))), ["a"]);
    }

    #[test]
    fn rank_ranges_sanitize_as_redis() {
        assert_eq!(rank_range(0, -1, 3), Some((0, 2)));
        assert_eq!(rank_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(rank_range(2, 1, 3), None);
        assert_eq!(rank_range(3, 5, 3), None);
        assert_eq!(rank_range(0, -4, 3), None);
    }

    #[test]
    fn combine_weights_and_aggregates() {
        let a = Some(vec![
            (Bytes::from_static(b"x"), 1.0),
            (Bytes::from_static(b"y"), 2.0),
        ]);
        let b = Some(vec![(Bytes::from_static(b"y"), 10.0)]);
        let mut o = zop_options(&[], ZOp::Union, 2, false, false).expect("no options");
        assert_eq!(
            combine(ZOp::Union, &[a.clone(), b.clone()], &o),
            vec![
                (Bytes::from_static(b"x"), 1.0),
                (Bytes::from_static(b"y"), 12.0)
            ]
        );
        o.aggregate = Aggregate::Max;
        o.weights = vec![2.0, 0.5];
        assert_eq!(
            combine(ZOp::Inter, &[a.clone(), b.clone()], &o),
            vec![(Bytes::from_static(b"y"), 5.0)]
        );
        assert_eq!(
            combine(ZOp::Diff, &[a, b], &o),
            vec![(Bytes::from_static(b"x"), 1.0)]
        );
    }
}
