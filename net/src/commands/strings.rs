//! String commands (t_string.c): SET and its variants, GET and its variants, counters,
//! APPEND, STRLEN, GETRANGE, SETRANGE, MGET, MSET, MSETNX.

use bytes::Bytes;

use super::num::{incr_by_float, FloatError};
use super::{
    cstr, err, int_arg, invalid_expire, not_an_integer, parse_i64, syntax_error, ExecCtx,
    STRING_BYTES_MAX,
};
use crate::{Command, Reply};
use helios_engine::keyspace::Mutation;

/// SET / GETEX options, as `parseExtendedStringArgumentsOrReply` collects them.
#[derive(Default)]
struct ExtOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    ex: bool,
    px: bool,
    exat: bool,
    pxat: bool,
    expire: Option<&'a Bytes>,
}

impl ExtOpts<'_> {
    fn any_expire(&self) -> bool {
        self.ex || self.px || self.exat || self.pxat
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum ExtFor {
    Set,
    GetEx,
}

/// Parses options the way Redis 7.0 does: each option is accepted only when it does not clash
/// with one already seen (repeats of the same option are fine, the last value wins); anything
/// else is a syntax error.
fn parse_ext(args: &[Bytes], mode: ExtFor) -> Result<ExtOpts<'_>, Reply> {
    let mut o = ExtOpts::default();
    let set = mode == ExtFor::Set;
    let mut j = 0;
    while j < args.len() {
        let opt = cstr(&args[j]);
        let next = args.get(j + 1);
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if is("nx") && !o.xx && set {
            o.nx = true;
        } else if is("xx") && !o.nx && set {
            o.xx = true;
        } else if is("get") && set {
            o.get = true;
        } else if is("keepttl") && !o.persist && !o.any_expire() && set {
            o.keepttl = true;
        } else if is("persist") && !set && !o.any_expire() && !o.keepttl {
            o.persist = true;
        } else if is("ex")
            && !o.keepttl
            && !o.persist
            && !o.exat
            && !o.px
            && !o.pxat
            && next.is_some()
        {
            o.ex = true;
            o.expire = next;
            j += 1;
        } else if is("px")
            && !o.keepttl
            && !o.persist
            && !o.ex
            && !o.exat
            && !o.pxat
            && next.is_some()
        {
            o.px = true;
            o.expire = next;
            j += 1;
        } else if is("exat")
            && !o.keepttl
            && !o.persist
            && !o.ex
            && !o.px
            && !o.pxat
            && next.is_some()
        {
            o.exat = true;
            o.expire = next;
            j += 1;
        } else if is("pxat")
            && !o.keepttl
            && !o.persist
            && !o.ex
            && !o.exat
            && !o.px
            && next.is_some()
        {
            o.pxat = true;
            o.expire = next;
            j += 1;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    Ok(o)
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in ms, or Redis's error.
fn expire_ms(
    arg: &[u8],
    seconds: bool,
    relative: bool,
    now_ms: u64,
    command: &str,
) -> Result<u64, Reply> {
    let v = int_arg(arg)?;
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        return Err(invalid_expire(command));
    }
    let mut ms = if seconds { v * 1000 } else { v };
    if relative {
        ms = ms
            .checked_add(now_ms as i64)
            .ok_or_else(|| invalid_expire(command))?;
    }
    Ok(ms as u64)
}

fn opts_expire_ms(o: &ExtOpts, now_ms: u64, command: &str) -> Result<Option<u64>, Reply> {
    match o.expire {
        None => Ok(None),
        Some(arg) => expire_ms(arg, o.ex || o.exat, o.ex || o.px, now_ms, command).map(Some),
    }
}

fn bulk_or_null(v: Option<Bytes>) -> Reply {
    match v {
        Some(b) => Reply::Bulk(b),
        None => Reply::Null,
    }
}

/// `setGenericCommand`.
fn set_generic(
    ctx: &mut ExecCtx,
    key: &Bytes,
    value: &Bytes,
    o: &ExtOpts,
    command: &str,
    ok_reply: Reply,
    abort_reply: Reply,
) -> Reply {
    let expire = match opts_expire_ms(o, ctx.now_ms, command) {
        Ok(e) => e,
        Err(e) => return e,
    };
    // Without GET, SET overwrites a value of any type.
    let old_value = match o.get {
        true => match ctx.get_str(key) {
            Ok(old) => old.map(|(v, _)| v),
            Err(wrongtype) => return wrongtype,
        },
        false => None,
    };
    // Look the key up only when an option needs it: Some(expiry) when it exists.
    let current = match o.nx || o.xx || o.keepttl {
        true => ctx.entry(key).map(|e| e.expire_at_ms),
        false => None,
    };
    let found = current.is_some();
    if (o.nx && found) || (o.xx && !found) {
        return if o.get {
            bulk_or_null(old_value)
        } else {
            abort_reply
        };
    }
    let expire_at_ms = match expire {
        Some(at) => Some(at),
        None if o.keepttl => current.flatten(),
        None => None,
    };
    ctx.set_str(key, value.clone(), expire_at_ms);
    if o.get {
        bulk_or_null(old_value)
    } else {
        ok_reply
    }
}

pub(super) fn set(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let a = &cmd.args;
    match parse_ext(&a[3..], ExtFor::Set) {
        Ok(o) => set_generic(ctx, &a[1], &a[2], &o, "set", Reply::Ok, Reply::Null),
        Err(e) => e,
    }
}

pub(super) fn setnx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let o = ExtOpts {
        nx: true,
        ..ExtOpts::default()
    };
    set_generic(
        ctx,
        &cmd.args[1],
        &cmd.args[2],
        &o,
        "setnx",
        Reply::Int(1),
        Reply::Int(0),
    )
}

pub(super) fn setex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let o = ExtOpts {
        ex: true,
        expire: Some(&cmd.args[2]),
        ..ExtOpts::default()
    };
    set_generic(
        ctx,
        &cmd.args[1],
        &cmd.args[3],
        &o,
        "setex",
        Reply::Ok,
        Reply::Null,
    )
}

pub(super) fn psetex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let o = ExtOpts {
        px: true,
        expire: Some(&cmd.args[2]),
        ..ExtOpts::default()
    };
    set_generic(
        ctx,
        &cmd.args[1],
        &cmd.args[3],
        &o,
        "psetex",
        Reply::Ok,
        Reply::Null,
    )
}

pub(super) fn get(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match ctx.get_str(&cmd.args[1]) {
        Ok(v) => bulk_or_null(v.map(|(v, _)| v)),
        Err(e) => e,
    }
}

pub(super) fn getset(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    match ctx.get_str(key) {
        Ok(old) => {
            ctx.set_str(key, cmd.args[2].clone(), None);
            bulk_or_null(old.map(|(v, _)| v))
        }
        Err(e) => e,
    }
}

pub(super) fn getdel(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    match ctx.get_str(key) {
        Ok(Some((v, _))) => {
            ctx.del(key);
            Reply::Bulk(v)
        }
        Ok(None) => Reply::Null,
        Err(e) => e,
    }
}

pub(super) fn getex(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let o = match parse_ext(&cmd.args[2..], ExtFor::GetEx) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (value, current) = match ctx.get_str(key) {
        Ok(Some(v)) => v,
        Ok(None) => return Reply::Null,
        Err(e) => return e,
    };
    let expire = match opts_expire_ms(&o, ctx.now_ms, "getex") {
        Ok(e) => e,
        Err(e) => return e,
    };
    let db = ctx.db;
    match expire {
        Some(at) if (o.exat || o.pxat) && at <= ctx.now_ms => ctx.del(key),
        Some(at) if current != Some(at) => ctx.commit(Mutation::SetExpire {
            db,
            key: key.clone(),
            expire_at_ms: Some(at),
        }),
        None if o.persist && current.is_some() => ctx.commit(Mutation::SetExpire {
            db,
            key: key.clone(),
            expire_at_ms: None,
        }),
        _ => {}
    }
    Reply::Bulk(value)
}

pub(super) fn mget(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let values = cmd.args[1..]
        .iter()
        .map(|key| match ctx.get_str(key) {
            Ok(Some((v, _))) => Reply::Bulk(v),
            _ => Reply::Null,
        })
        .collect();
    Reply::Array(values)
}

pub(super) fn mset(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if cmd.args.len().is_multiple_of(2) {
        return Reply::wrong_arity("mset");
    }
    for pair in cmd.args[1..].chunks_exact(2) {
        ctx.set_str(&pair[0], pair[1].clone(), None);
    }
    Reply::Ok
}

pub(super) fn msetnx(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    if cmd.args.len().is_multiple_of(2) {
        return Reply::wrong_arity("msetnx");
    }
    let pairs = cmd.args[1..].chunks_exact(2);
    if pairs.clone().any(|pair| ctx.entry(&pair[0]).is_some()) {
        return Reply::Int(0);
    }
    for pair in pairs {
        ctx.set_str(&pair[0], pair[1].clone(), None);
    }
    Reply::Int(1)
}

/// `incrDecrCommand`: the result keeps the key's expiry.
fn incr_by(ctx: &mut ExecCtx, key: &Bytes, incr: i64) -> Reply {
    let (old, expire_at_ms) = match ctx.get_str(key) {
        Ok(Some((v, at))) => match parse_i64(&v) {
            Some(n) => (n, at),
            None => return not_an_integer(),
        },
        Ok(None) => (0, None),
        Err(e) => return e,
    };
    let Some(new) = old.checked_add(incr) else {
        return err("ERR increment or decrement would overflow");
    };
    ctx.set_str(key, Bytes::from(new.to_string()), expire_at_ms);
    Reply::Int(new)
}

pub(super) fn incr(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    incr_by(ctx, &cmd.args[1], 1)
}

pub(super) fn decr(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    incr_by(ctx, &cmd.args[1], -1)
}

pub(super) fn incrby(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match int_arg(&cmd.args[2]) {
        Ok(n) => incr_by(ctx, &cmd.args[1], n),
        Err(e) => e,
    }
}

pub(super) fn decrby(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match int_arg(&cmd.args[2]) {
        Ok(i64::MIN) => err("ERR decrement would overflow"),
        Ok(n) => incr_by(ctx, &cmd.args[1], -n),
        Err(e) => e,
    }
}

pub(super) fn incrbyfloat(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let key = &cmd.args[1];
    let (old, expire_at_ms) = match ctx.get_str(key) {
        Ok(Some(v)) => v,
        Ok(None) => (Bytes::from_static(b"0"), None),
        Err(e) => return e,
    };
    match incr_by_float(&old, &cmd.args[2]) {
        Ok(text) => {
            let value = Bytes::from(text);
            ctx.set_str(key, value.clone(), expire_at_ms);
            Reply::Bulk(value)
        }
        Err(FloatError::NotAFloat) => err("ERR value is not a valid float"),
        Err(FloatError::NanOrInfinity) => err("ERR increment would produce NaN or Infinity"),
    }
}

fn string_too_long(len: u64, extra: u64) -> bool {
    len.saturating_add(extra) > STRING_BYTES_MAX
}

fn too_long_error() -> Reply {
    err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub(super) fn append(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (key, suffix) = (&cmd.args[1], &cmd.args[2]);
    match ctx.get_str(key) {
        Err(e) => e,
        Ok(None) => {
            ctx.set_str(key, suffix.clone(), None);
            Reply::Int(suffix.len() as i64)
        }
        Ok(Some((old, expire_at_ms))) => {
            if string_too_long(old.len() as u64, suffix.len() as u64) {
                return too_long_error();
            }
            if suffix.is_empty() {
                return Reply::Int(old.len() as i64);
            }
            let mut v = Vec::with_capacity(old.len() + suffix.len());
            v.extend_from_slice(&old);
            v.extend_from_slice(suffix);
            let len = v.len();
            ctx.set_str(key, Bytes::from(v), expire_at_ms);
            Reply::Int(len as i64)
        }
    }
}

pub(super) fn strlen(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    match ctx.get_str(&cmd.args[1]) {
        Ok(v) => Reply::Int(v.map_or(0, |(v, _)| v.len() as i64)),
        Err(e) => e,
    }
}

pub(super) fn getrange(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (start, end) = match (int_arg(&cmd.args[2]), int_arg(&cmd.args[3])) {
        (Ok(s), Ok(e)) => (s as i128, e as i128),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let s = match ctx.get_str(&cmd.args[1]) {
        Ok(Some((v, _))) => v,
        Ok(None) => return Reply::Bulk(Bytes::new()),
        Err(e) => return e,
    };
    let len = s.len() as i128;
    if start < 0 && end < 0 && start > end {
        return Reply::Bulk(Bytes::new());
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let mut end = if end < 0 { (len + end).max(0) } else { end };
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Reply::Bulk(Bytes::new());
    }
    Reply::Bulk(s.slice(start as usize..=end as usize))
}

pub(super) fn setrange(ctx: &mut ExecCtx, cmd: &Command) -> Reply {
    let (key, patch) = (&cmd.args[1], &cmd.args[3]);
    let offset = match int_arg(&cmd.args[2]) {
        Ok(n) if n < 0 => return err("ERR offset is out of range"),
        Ok(n) => n as u64,
        Err(e) => return e,
    };
    let (old, expire_at_ms) = match ctx.get_str(key) {
        Err(e) => return e,
        Ok(None) if patch.is_empty() => return Reply::Int(0),
        Ok(None) => (Bytes::new(), None),
        Ok(Some((old, _))) if patch.is_empty() => return Reply::Int(old.len() as i64),
        Ok(Some(v)) => v,
    };
    if string_too_long(offset, patch.len() as u64) {
        return too_long_error();
    }
    let offset = offset as usize;
    let new_len = old.len().max(offset + patch.len());
    let exists = ctx.entry(key).is_some();
    if exists && new_len == old.len() && old[offset..offset + patch.len()] == patch[..] {
        return Reply::Int(new_len as i64);
    }
    let mut v = Vec::with_capacity(new_len);
    v.extend_from_slice(&old);
    v.resize(new_len, 0);
    v[offset..offset + patch.len()].copy_from_slice(patch);
    ctx.set_str(key, Bytes::from(v), expire_at_ms);
    Reply::Int(new_len as i64)
}
