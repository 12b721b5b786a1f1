//! Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP).
//!
//! Each is its non-blocking twin (LMPOP, LMOVE, RPOPLPUSH, ZMPOP) tried first through the
//! usual route (one shard, or several under intent locks). When that finds nothing, the
//! client registers on the shard owning each key ([`ShardState::block`]), in arrival order
//! per key, and waits. A write leaving elements under a key wakes as many of its waiters, in
//! order, as there are elements; a woken client tries its twin again and either replies or
//! waits on in its place. Registration itself wakes the client when a key already holds
//! elements, so a write between the empty attempt and the registration is not missed. A
//! client that leaves (served, timed out, disconnected) unregisters, which wakes the next in
//! line for anything it was woken for but did not take. Inside MULTI/EXEC the twin runs once
//! and its nil is the answer, as in Redis.
//!
//! Limits, as documented in README: a write by RENAME/COPY across shards (which store values
//! directly) does not wake waiters until the next write to the key; fairness holds among
//! blocked clients, but a client that is not blocked may take an element between a waiter's
//! wake-up and its retry.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use helios_shard::ring::Connection;

use super::conn::{self, Session};
use super::shard::{ShardReq, ShardState};
use crate::commands::{self, parse_i64};
use crate::{Command, Reply};

/// Whether `cmd` is one of the blocking commands this module runs.
pub(super) fn is_blocking(cmd: &Command) -> bool {
    matches!(
        cmd.name_lower().as_ref(),
        "blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop" | "bzpopmin" | "bzpopmax" | "bzmpop"
    )
}

/// How a twin's reply becomes the blocking command's.
#[derive(Clone, Copy)]
enum Shape {
    /// LMPOP's `[key, [element]]` → `[key, element]` (BLPOP, BRPOP).
    KeyElement,
    /// ZMPOP's `[key, [[member, score]]]` → `[key, member, score]` (BZPOPMIN, BZPOPMAX).
    KeyMemberScore,
    /// The twin's reply as it is (BLMOVE, BRPOPLPUSH, BLMPOP, BZMPOP).
    Same,
}

/// A parsed blocking command: its twin, its keys, how long to wait (None: forever).
struct Blocking {
    twin: Command,
    keys: Vec<Bytes>,
    timeout: Option<Duration>,
    shape: Shape,
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Redis's `getTimeoutFromObjectOrReply` in seconds: a float, not negative; 0 is forever.
fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let seconds = std::str::from_utf8(arg)
        .ok()
        .filter(|t| !t.starts_with(|c: char| c.is_ascii_whitespace()))
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|v| !v.is_nan())
        .ok_or_else(|| Reply::error("ERR timeout is not a float or out of range"))?;
    let ms = (seconds * 1000.0).ceil();
    if ms < 0.0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    if ms > (i64::MAX / 2) as f64 {
        return Err(Reply::error("ERR timeout is out of range"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// The twin of `[name, keys..., timeout]` popping from `side`.
fn keys_then_timeout(
    cmd: &Command,
    twin: &'static str,
    side: &'static str,
    shape: Shape,
) -> Result<Blocking, Reply> {
    let n = cmd.args.len();
    let timeout = parse_timeout(&cmd.args[n - 1])?;
    let keys = cmd.args[1..n - 1].to_vec();
    let mut args = vec![b(twin), Bytes::from(keys.len().to_string())];
    args.extend(keys.iter().cloned());
    args.push(b(side));
    Ok(Blocking {
        twin: Command::new(args),
        keys,
        timeout,
        shape,
    })
}

/// `[name, timeout, numkeys, keys..., options]` → the twin with everything after the timeout.
fn timeout_then_numkeys(cmd: &Command, twin: &'static str) -> Result<Blocking, Reply> {
    let timeout = parse_timeout(&cmd.args[1])?;
    let mut args = vec![b(twin)];
    args.extend(cmd.args[2..].iter().cloned());
    let keys = match parse_i64(&cmd.args[2]) {
        Some(n) if n > 0 && (n as u64) < (cmd.args.len() - 2) as u64 => {
            cmd.args[3..3 + n as usize].to_vec()
        }
        // A bad count: the twin replies the error.
        _ => Vec::new(),
    };
    Ok(Blocking {
        twin: Command::new(args),
        keys,
        timeout,
        shape: Shape::Same,
    })
}

fn parse(cmd: &Command) -> Result<Blocking, Reply> {
    let a = &cmd.args;
    match cmd.name_lower().as_ref() {
        "blpop" => keys_then_timeout(cmd, "LMPOP", "LEFT", Shape::KeyElement),
        "brpop" => keys_then_timeout(cmd, "LMPOP", "RIGHT", Shape::KeyElement),
        "bzpopmin" => keys_then_timeout(cmd, "ZMPOP", "MIN", Shape::KeyMemberScore),
        "bzpopmax" => keys_then_timeout(cmd, "ZMPOP", "MAX", Shape::KeyMemberScore),
        "blmpop" => timeout_then_numkeys(cmd, "LMPOP"),
        "bzmpop" => timeout_then_numkeys(cmd, "ZMPOP"),
        "blmove" => {
            commands::parse_side(&a[3])?;
            commands::parse_side(&a[4])?;
            Ok(Blocking {
                twin: Command::new(vec![
                    b("LMOVE"),
                    a[1].clone(),
                    a[2].clone(),
                    a[3].clone(),
                    a[4].clone(),
                ]),
                keys: vec![a[1].clone()],
                timeout: parse_timeout(&a[5])?,
                shape: Shape::Same,
            })
        }
        "brpoplpush" => Ok(Blocking {
            twin: Command::new(vec![b("RPOPLPUSH"), a[1].clone(), a[2].clone()]),
            keys: vec![a[1].clone()],
            timeout: parse_timeout(&a[3])?,
            shape: Shape::Same,
        }),
        _ => Err(Reply::error("ERR internal error: not a blocking command")),
    }
}

fn is_nil(reply: &Reply) -> bool {
    matches!(reply, Reply::Null | Reply::NullArray)
}

/// The twin's reply in the blocking command's shape.
fn reshape(reply: Reply, shape: Shape) -> Reply {
    let Reply::Array(mut parts) = reply else {
        return reply;
    };
    match shape {
        Shape::Same => Reply::Array(parts),
        Shape::KeyElement | Shape::KeyMemberScore if parts.len() == 2 => {
            let popped = parts.pop().expect("two parts");
            let key = parts.pop().expect("two parts");
            let mut out = vec![key];
            if let Reply::Array(items) = popped {
                for item in items {
                    match item {
                        Reply::Array(pair) => out.extend(pair),
                        single => out.push(single),
                    }
                }
            }
            Reply::Array(out)
        }
        _ => Reply::Array(parts),
    }
}

/// The nil a blocking command replies on timeout (or in MULTI with nothing to pop).
fn nil_of(cmd: &Command) -> Reply {
    match cmd.name_lower().as_ref() {
        "blmove" | "brpoplpush" => Reply::Null,
        _ => Reply::NullArray,
    }
}

/// Runs a blocking command. `txid` is the transaction's (EXEC) or 0; `connection` is None
/// inside a transaction, where nothing blocks.
pub(super) async fn run(
    state: &Rc<ShardState>,
    session: &mut Session,
    cmd: &Command,
    txid: u64,
    connection: Option<&Connection>,
) -> Reply {
    let blocking = match parse(cmd) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let first = conn::run_one(state, session, &blocking.twin, txid).await;
    if !is_nil(&first) {
        return reshape(first, blocking.shape);
    }
    let Some(connection) = connection else {
        return nil_of(cmd);
    };
    if blocking.keys.is_empty() {
        return nil_of(cmd);
    }
    let id = session.info.borrow().id;
    let db = session.db;
    let (wake, woken) = flume::unbounded();
    let by_shard = keys_by_shard(state, &blocking.keys);
    register(state, id, db, &by_shard, Some(wake)).await;
    state.shared.blocked_clients.fetch_add(1, Ordering::Relaxed);
    let deadline = blocking.timeout.map(|t| Instant::now() + t);
    let reply = loop {
        let timer = async {
            match deadline {
                Some(at) => {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await
                }
                None => std::future::pending::<()>().await,
            }
            Event::Timeout
        };
        let wake_up = async {
            match woken.recv_async().await {
                Ok(()) => Event::Woken,
                Err(_) => Event::Timeout,
            }
        };
        let gone = async {
            connection.closed().await;
            Event::Gone
        };
        match futures_lite::future::or(wake_up, futures_lite::future::or(timer, gone)).await {
            Event::Woken => {
                // Several wake-ups may have queued: one retry serves them all.
                while woken.try_recv().is_ok() {}
                let reply = conn::run_one(state, session, &blocking.twin, 0).await;
                if !is_nil(&reply) {
                    break reshape(reply, blocking.shape);
                }
            }
            Event::Timeout => break nil_of(cmd),
            Event::Gone => break nil_of(cmd),
        }
    };
    state.shared.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    register(state, id, db, &by_shard, None).await;
    reply
}

enum Event {
    Woken,
    Timeout,
    Gone,
}

fn keys_by_shard(state: &ShardState, keys: &[Bytes]) -> Vec<(usize, Vec<Bytes>)> {
    let mut by_shard: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for key in keys {
        let shard = state.owner_of(key);
        match by_shard.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, ks)) if ks.contains(key) => {}
            Some((_, ks)) => ks.push(key.clone()),
            None => by_shard.push((shard, vec![key.clone()])),
        }
    }
    by_shard
}

/// Registers the client on every shard of its keys (`wake` given) or unregisters it.
async fn register(
    state: &Rc<ShardState>,
    id: u64,
    db: u8,
    by_shard: &[(usize, Vec<Bytes>)],
    wake: Option<flume::Sender<()>>,
) {
    for (shard, keys) in by_shard {
        match (&wake, *shard == state.id) {
            (Some(wake), true) => state.block(id, db, keys.clone(), wake.clone()),
            (None, true) => state.unblock(id, db, keys),
            (Some(wake), false) => {
                let req = ShardReq::Block {
                    id,
                    db,
                    keys: keys.clone(),
                    wake: wake.clone(),
                };
                if let Err(error) = state.mesh.call(*shard, req).await {
                    tracing::warn!(%error, "blocking: registration lost");
                }
            }
            (None, false) => {
                let req = ShardReq::Unblock {
                    id,
                    db,
                    keys: keys.clone(),
                };
                if let Err(error) = state.mesh.call(*shard, req).await {
                    tracing::warn!(%error, "blocking: unregistration lost");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Command {
        Command::new(
            s.split(' ')
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn timeouts_parse_as_redis() {
        assert_eq!(parse_timeout(b"0").ok(), Some(None));
        assert_eq!(
            parse_timeout(b"0.0015").ok(),
            Some(Some(Duration::from_millis(2)))
        );
        assert!(parse_timeout(b"-1").is_err());
        assert!(parse_timeout(b"x").is_err());
        assert!(parse_timeout(b"nan").is_err());
        assert!(parse_timeout(b"1e300").is_err());
    }

    #[test]
    fn twins_are_the_non_blocking_commands() {
        let b = parse(&cmd("BLPOP a b 1")).expect("valid");
        assert_eq!(b.twin, cmd("LMPOP 2 a b LEFT"));
        assert_eq!(b.keys.len(), 2);
        let b = parse(&cmd("BZMPOP 0 2 a b MAX COUNT 3")).expect("valid");
        assert_eq!(b.twin, cmd("ZMPOP 2 a b MAX COUNT 3"));
        assert_eq!(b.timeout, None);
        assert!(parse(&cmd("BLMOVE a b UP LEFT 0")).is_err());
    }

    #[test]
    fn replies_take_the_blocking_shape() {
        let bulk = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
        let lmpop = Reply::Array(vec![bulk("k"), Reply::Array(vec![bulk("v")])]);
        assert_eq!(
            reshape(lmpop, Shape::KeyElement),
            Reply::Array(vec![bulk("k"), bulk("v")])
        );
        let zmpop = Reply::Array(vec![
            bulk("k"),
            Reply::Array(vec![Reply::Array(vec![bulk("m"), Reply::Double(1.5)])]),
        ]);
        assert_eq!(
            reshape(zmpop, Shape::KeyMemberScore),
            Reply::Array(vec![bulk("k"), bulk("m"), Reply::Double(1.5)])
        );
    }
}
