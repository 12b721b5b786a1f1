//! SORT and SORT_RO (`sort.c` in Redis 7.0), run by the router: BY and GET patterns name
//! keys anywhere, so the source is read on its shard, the keys the patterns form are read
//! in one batch per shard, and a STORE result is written on the destination's shard. The
//! source and destination are held under intent locks for the whole command (the pattern
//! keys are read under the same operation id, so a pattern naming them does not wait).

use std::rc::Rc;

use bytes::Bytes;

use super::admin::{self, exec_at, exec_on};
use super::conn::Session;
use super::shard::ShardState;
use crate::commands::parse_i64;
use crate::{Command, Reply};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Whether `cmd` is SORT or SORT_RO.
pub(super) fn is_sort(cmd: &Command) -> bool {
    eq(cmd.name(), "sort") || eq(cmd.name(), "sort_ro")
}

/// The options of one SORT, as `sortCommandGeneric` parses them.
struct SortArgs {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<Bytes>,
    /// BY names no `*`: keep the source's order.
    dont_sort: bool,
    gets: Vec<Bytes>,
    store: Option<Bytes>,
}

fn parse(cmd: &Command, readonly: bool) -> Result<SortArgs, Reply> {
    let args = &cmd.args;
    let mut o = SortArgs {
        desc: false,
        alpha: false,
        limit: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if eq(a, "asc") {
            o.desc = false;
        } else if eq(a, "desc") {
            o.desc = true;
        } else if eq(a, "alpha") {
            o.alpha = true;
        } else if eq(a, "limit") && left >= 2 {
            let not_int = || Reply::error("ERR value is not an integer or out of range");
            let start = parse_i64(&args[j + 1]).ok_or_else(not_int)?;
            let count = parse_i64(&args[j + 2]).ok_or_else(not_int)?;
            o.limit = Some((start, count));
            j += 2;
        } else if !readonly && eq(a, "store") && left >= 1 {
            o.store = Some(args[j + 1].clone());
            j += 1;
        } else if eq(a, "by") && left >= 1 {
            let pattern = args[j + 1].clone();
            o.dont_sort = !pattern.contains(&b'*');
            o.by = Some(pattern);
            j += 1;
        } else if eq(a, "get") && left >= 1 {
            o.gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return Err(Reply::error("ERR syntax error"));
        }
        j += 1;
    }
    Ok(o)
}

/// The key (and hash field) a pattern names for one element, as `lookupKeyByPattern`
/// builds it; None for `#` (the element itself) is handled by the caller, and a pattern
/// without `*` names nothing.
fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<(Bytes, Option<Bytes>)> {
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let arrow = after.windows(2).position(|w| w == b"->");
    let (postfix, field) = match arrow {
        Some(at) if at + 2 < after.len() => {
            (&after[..at], Some(Bytes::copy_from_slice(&after[at + 2..])))
        }
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    Some((Bytes::from(key), field))
}

/// A command for one shard, with its database.
type ShardCommand = (u8, Command);

/// Reads the values `pattern` names for each element (None: missing, or not a string, or
/// not a hash holding the field), one batch per shard.
async fn lookup_all(
    state: &Rc<ShardState>,
    db: u8,
    pattern: &Bytes,
    elements: &[Bytes],
    txid: u64,
) -> Vec<Option<Bytes>> {
    if pattern.as_ref() == b"#" {
        return elements.iter().cloned().map(Some).collect();
    }
    let mut out = vec![None; elements.len()];
    let mut per_shard: std::collections::BTreeMap<usize, Vec<(usize, ShardCommand)>> =
        Default::default();
    for (i, element) in elements.iter().enumerate() {
        let Some((key, field)) = pattern_key(pattern, element) else {
            continue;
        };
        let shard = state.owner_of(&key);
        let cmd = match field {
            Some(field) => Command::new(vec![b("HGET"), key, field]),
            None => Command::new(vec![b("GET"), key]),
        };
        per_shard.entry(shard).or_default().push((i, (db, cmd)));
    }
    let order: Vec<(usize, Vec<usize>)> = per_shard
        .iter()
        .map(|(s, cmds)| (*s, cmds.iter().map(|(i, _)| *i).collect()))
        .collect();
    let work = per_shard
        .into_iter()
        .map(|(s, cmds)| (s, cmds.into_iter().map(|(_, c)| c).collect()))
        .collect();
    for ((_, indexes), result) in order.into_iter().zip(exec_on(state, work, txid).await) {
        let Ok(replies) = result else { continue };
        for (i, reply) in indexes.into_iter().zip(replies) {
            if let Reply::Bulk(v) = reply {
                out[i] = Some(v);
            }
        }
    }
    out
}

/// The source's elements in its own order and its type; a missing key is an empty list.
async fn source(
    state: &Rc<ShardState>,
    db: u8,
    key: &Bytes,
    txid: u64,
) -> Result<(Vec<Bytes>, &'static str), Reply> {
    let (read, kind) = match exec_at(state, db, key, vec![b("TYPE"), key.clone()], txid).await {
        Reply::Status(t) if t == "none" => return Ok((Vec::new(), "list")),
        Reply::Status(t) if t == "list" => {
            (vec![b("LRANGE"), key.clone(), b("0"), b("-1")], "list")
        }
        Reply::Status(t) if t == "set" => (vec![b("SMEMBERS"), key.clone()], "set"),
        Reply::Status(t) if t == "zset" => {
            (vec![b("ZRANGE"), key.clone(), b("0"), b("-1")], "zset")
        }
        Reply::Status(_) => return Err(crate::commands::wrong_type_reply()),
        other => return Err(other),
    };
    match exec_at(state, db, key, read, txid).await.expand_encoded() {
        Reply::Array(items) | Reply::Set(items) => Ok((
            items
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Bulk(v) => Some(v),
                    _ => None,
                })
                .collect(),
            kind,
        )),
        other => Err(other),
    }
}

/// A sort weight as Redis reads it: glibc's `strtod` over the whole value, refused where
/// `strtod` reports ERANGE (overflow, or a result too small to be normal and not exact) or the
/// result is NaN.
fn weight(value: &[u8]) -> Option<f64> {
    crate::strtod::strtod(value)
        .filter(|c| !c.erange && !c.value.is_nan())
        .map(|c| c.value)
}

/// Runs SORT or SORT_RO; `txid` is the transaction's (EXEC) or 0 to take locks here.
pub(super) async fn run(
    state: &Rc<ShardState>,
    session: &Session,
    cmd: &Command,
    txid: u64,
) -> Reply {
    let readonly = eq(cmd.name(), "sort_ro");
    let o = match parse(cmd, readonly) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let db = session.db;
    if txid != 0 {
        return sort_locked(state, db, cmd, o, txid).await;
    }
    let txid = state
        .shared
        .next_txid
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut keys_by_shard: std::collections::BTreeMap<usize, Vec<Bytes>> = Default::default();
    for key in std::iter::once(&cmd.args[1]).chain(o.store.iter()) {
        let keys = keys_by_shard.entry(state.owner_of(key)).or_default();
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let reply = match admin::lock_all(state, txid, db, &keys_by_shard).await {
        Err(error) => Reply::Error(format!("ERR {error}").into()),
        Ok(()) => sort_locked(state, db, cmd, o, txid).await,
    };
    admin::unlock_all(state, txid, keys_by_shard.keys().copied()).await;
    reply
}

async fn sort_locked(
    state: &Rc<ShardState>,
    db: u8,
    cmd: &Command,
    mut o: SortArgs,
    txid: u64,
) -> Reply {
    let (mut elements, kind) = match source(state, db, &cmd.args[1], txid).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    // A set has no order of its own to keep: stored results are sorted, as in Redis.
    if o.dont_sort && kind == "set" && o.store.is_some() {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elements.len() as i64;
    let (limit_start, limit_count) = o.limit.unwrap_or((0, -1));
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        len - 1
    } else {
        start + limit_count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if o.dont_sort && (kind == "list" || kind == "zset") {
        // The source's own order (reversed by DESC), cut to the range directly.
        if o.desc {
            elements.reverse();
        }
        if end >= start {
            elements = elements[start as usize..=end as usize].to_vec();
        } else {
            elements.clear();
        }
        end -= start;
        start = 0;
    } else if !o.dont_sort {
        match sort(state, db, &o, elements, txid).await {
            Ok(sorted) => elements = sorted,
            Err(e) => return e,
        }
    }
    let range: Vec<Bytes> = if end >= start && start >= 0 {
        elements[start as usize..=end as usize].to_vec()
    } else {
        Vec::new()
    };
    let mut output: Vec<Option<Bytes>> = Vec::new();
    if o.gets.is_empty() {
        output = range.iter().cloned().map(Some).collect();
    } else {
        let mut columns = Vec::with_capacity(o.gets.len());
        for pattern in &o.gets {
            columns.push(lookup_all(state, db, pattern, &range, txid).await);
        }
        for i in 0..range.len() {
            for column in &columns {
                output.push(column[i].clone());
            }
        }
    }
    match &o.store {
        None => Reply::Array(
            output
                .into_iter()
                .map(|v| v.map_or(Reply::Null, Reply::Bulk))
                .collect(),
        ),
        Some(dst) => store(state, db, dst, output, txid).await,
    }
}

/// Sorts the elements by their weights (BY) or themselves, numerically or (ALPHA) by bytes.
async fn sort(
    state: &Rc<ShardState>,
    db: u8,
    o: &SortArgs,
    elements: Vec<Bytes>,
    txid: u64,
) -> Result<Vec<Bytes>, Reply> {
    let by: Vec<Option<Bytes>> = match &o.by {
        Some(pattern) => lookup_all(state, db, pattern, &elements, txid).await,
        None => elements.iter().cloned().map(Some).collect(),
    };
    let mut keyed: Vec<(Bytes, Option<Bytes>, f64)> = Vec::with_capacity(elements.len());
    for (element, by) in elements.into_iter().zip(by) {
        let score = match (&by, o.alpha) {
            (Some(v), false) => weight(v).ok_or_else(|| {
                Reply::error("ERR One or more scores can't be converted into double")
            })?,
            _ => 0.0,
        };
        keyed.push((element, by, score));
    }
    let alpha_by = o.by.is_some();
    keyed.sort_by(|a, b| {
        let cmp = if !o.alpha {
            a.2.partial_cmp(&b.2)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        } else if alpha_by {
            // A missing weight sorts first.
            a.1.cmp(&b.1)
        } else {
            a.0.cmp(&b.0)
        };
        if o.desc {
            cmp.reverse()
        } else {
            cmp
        }
    });
    Ok(keyed.into_iter().map(|(e, _, _)| e).collect())
}

/// STORE: the result as a list at `dst` (a missing GET value stores as ""), or no key.
async fn store(
    state: &Rc<ShardState>,
    db: u8,
    dst: &Bytes,
    output: Vec<Option<Bytes>>,
    txid: u64,
) -> Reply {
    let count = output.len() as i64;
    let mut cmds = vec![(db, Command::new(vec![b("DEL"), dst.clone()]))];
    if !output.is_empty() {
        let mut rpush = vec![b("RPUSH"), dst.clone()];
        rpush.extend(output.into_iter().map(Option::unwrap_or_default));
        cmds.push((db, Command::new(rpush)));
    }
    admin::write_at_owner(state, dst, cmds, txid, Reply::Int(count)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_build_keys_as_lookup_key_by_pattern() {
        let k = |p: &str, e: &str| pattern_key(p.as_bytes(), e.as_bytes());
        assert_eq!(k("w_*", "1"), Some((b("w_1"), None)));
        assert_eq!(k("h_*->f", "1"), Some((b("h_1"), Some(b("f")))));
        assert_eq!(
            k("h_*->", "1"),
            Some((b("h_1->"), None)),
            "an empty field is no field"
        );
        assert_eq!(k("*x*", "1"), Some((b("1x*"), None)), "the first star only");
        assert_eq!(k("fixed", "1"), None);
    }

    #[test]
    fn weights_parse_as_strtod() {
        assert_eq!(weight(b"1.5"), Some(1.5));
        assert_eq!(weight(b" 2"), Some(2.0));
        assert_eq!(weight(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(weight(b"1x"), None);
        assert_eq!(weight(b"nan"), None);
        assert_eq!(weight(b"1e999"), None);
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b"\x00junk"), Some(0.0), "a C string ends at NUL");
        assert_eq!(weight(b"\r\n"), None, "white space only converts nothing");
    }

    /// Each case as glibc 2.36's strtod gives it (checked with a C program): the value, or None
    /// where text is left over or errno is ERANGE, which Redis refuses.
    #[test]
    fn weights_match_glibc_strtod() {
        let cases: &[(&[u8], Option<f64>)] = &[
            (b"0x10", Some(16.0)),
            (b"-0X1A", Some(-26.0)),
            (b"0x1.8p1", Some(3.0)),
            (b"0x.8", Some(0.5)),
            (b" +0x1p-1", Some(0.5)),
            (b"0x", None),
            (b"0xg", None),
            (b"00x10", None),
            (b"0x1p", None),
            (b"0x1p1024", None),
            (b"0x1.fffffffffffffp1023", Some(f64::MAX)),
            (b"0x1.fffffffffffff8p1023", None),
            (b"0x1p-1074", Some(f64::from_bits(1))),
            (b"0x1p-1075", None),
            (b"0x0p-5000", Some(0.0)),
            (
                b"0x123456789abcdef123p0",
                Some(0x12_3456_789a_bcde_f123_u128 as f64),
            ),
            (b"1e-310", None),
            (b"4.9e-324", None),
            (b"2.2250738585072014e-308", Some(f64::MIN_POSITIVE)),
            (b"2.2250738585072011e-308", None),
            (b"1e-400", None),
            (b"0e-400", Some(0.0)),
            (b"0.0", Some(0.0)),
            (b"1e309", None),
            (b"1.7976931348623159e308", None),
            (b"infinity", Some(f64::INFINITY)),
            (b"INFINITY", Some(f64::INFINITY)),
            (b"infinit", None),
            (b"nan", None),
            (b"1e+", None),
            (b"  +.5", Some(0.5)),
            (b".", None),
            (b"+", None),
            (b"--1", None),
            (b"\x0b5", Some(5.0)),
            (b"0x1.00000000000008p0", Some(1.0)),
            (b"0x1.000000000000081p0", Some(1.0000000000000002)),
            (b"0x1.00000000000018p0", Some(1.0000000000000004)),
            (b"0x3p-1076", None),
            (b"0x1.8p-1074", None),
        ];
        for &(text, want) in cases {
            assert_eq!(weight(text), want, "{}", String::from_utf8_lossy(text));
        }
    }
}
