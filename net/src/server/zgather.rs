//! The sorted-set commands whose keys live on several shards (ZUNION, ZINTER, ZDIFF, their
//! STORE forms, ZINTERCARD, ZRANGESTORE, ZMPOP), run by the router under intent locks on
//! every key, so atomic and isolated as in Redis: each source is read on its shard, the
//! combination is computed here ([`commands::zset_combine`]) and the result is written on
//! the destination's shard in one batch. Checks come in Redis's order: the key count, the
//! sources' types, then the options.

use std::rc::Rc;

use bytes::Bytes;

use super::admin::exec_at;
use super::shard::ShardState;
use crate::commands::{self, ZOp, ZSource};
use crate::{Command, Reply};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Member-score pairs of a WITHSCORES or pop reply.
fn scored(pairs: Vec<(Reply, Reply)>) -> Vec<(Bytes, f64)> {
    pairs
        .into_iter()
        .filter_map(|(m, s)| match (m, s) {
            (Reply::Bulk(m), Reply::Double(s)) => Some((m, s)),
            _ => None,
        })
        .collect()
}

/// The members of a sorted set (or a set, scoring 1) at `key`; None when absent.
/// With `sets_too` false a set is WRONGTYPE (ZRANGESTORE reads sorted sets only).
async fn source(
    state: &Rc<ShardState>,
    db: u8,
    key: &Bytes,
    sets_too: bool,
    txid: u64,
) -> Result<ZSource, Reply> {
    let read = match exec_at(state, db, key, vec![b("TYPE"), key.clone()], txid).await {
        Reply::Status(t) if t == "none" => return Ok(None),
        Reply::Status(t) if t == "zset" => {
            vec![b("ZRANGE"), key.clone(), b("0"), b("-1"), b("WITHSCORES")]
        }
        Reply::Status(t) if t == "set" && sets_too => vec![b("SMEMBERS"), key.clone()],
        Reply::Status(_) => return Err(commands::wrong_type_reply()),
        other => return Err(other),
    };
    match exec_at(state, db, key, read, txid).await {
        Reply::Pairs(pairs) => Ok(Some(scored(pairs))),
        Reply::Set(items) | Reply::Array(items) => Ok(Some(
            items
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Bulk(m) => Some((m, 1.0)),
                    _ => None,
                })
                .collect(),
        )),
        other => Err(other),
    }
}

/// Replaces `dst` with a sorted set of `members` (none: deletes it) on its shard.
async fn store(
    state: &Rc<ShardState>,
    db: u8,
    dst: &Bytes,
    members: Vec<(Bytes, f64)>,
    txid: u64,
) -> Reply {
    let count = members.len() as i64;
    let mut cmds = vec![(db, Command::new(vec![b("DEL"), dst.clone()]))];
    if !members.is_empty() {
        let mut zadd = vec![b("ZADD"), dst.clone()];
        for (m, s) in members {
            // Rust prints the shortest text that reads back as the same double.
            zadd.push(Bytes::from(s.to_string()));
            zadd.push(m);
        }
        cmds.push((db, Command::new(zadd)));
    }
    super::admin::write_at_owner(state, dst, cmds, txid, Reply::Int(count)).await
}

/// Runs a sorted-set command of this module's list across shards.
pub(super) async fn zset_op_across(
    state: &Rc<ShardState>,
    db: u8,
    cmd: &Command,
    txid: u64,
) -> Reply {
    let name = cmd.name_lower();
    match name.as_ref() {
        "zrangestore" => return zrangestore(state, db, cmd, txid).await,
        "zmpop" => return zmpop(state, db, cmd, txid).await,
        _ => {}
    }
    let Some((op, to_store, card_only, numkeys_at)) = commands::zop_kind(&name) else {
        return Reply::error("ERR internal error: not a sorted set operation");
    };
    let keys = match commands::zop_keys(&cmd.args, numkeys_at, &name) {
        Ok(keys) => keys,
        Err(e) => return e,
    };
    let mut sources = Vec::with_capacity(keys.len());
    for key in keys {
        match source(state, db, key, true, txid).await {
            Ok(s) => sources.push(s),
            Err(e) => return e,
        }
    }
    let rest = &cmd.args[numkeys_at + 1 + keys.len()..];
    let options = match commands::zop_options(rest, op, keys.len(), to_store, card_only) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if card_only {
        return Reply::Int(commands::zset_intersection_card(&sources, &options));
    }
    let members = commands::zset_combine(op, &sources, &options);
    if to_store {
        store(state, db, &cmd.args[1], members, txid).await
    } else {
        debug_assert!(op != ZOp::Union || !sources.is_empty());
        commands::zset_combined_reply(members, &options)
    }
}

async fn zrangestore(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    if let Err(e) = commands::zrangestore_check(&cmd.args) {
        return e;
    }
    let members = match source(state, db, &cmd.args[2], false, txid).await {
        Ok(Some(members)) => members,
        Ok(None) => Vec::new(),
        Err(e) => return e,
    };
    match commands::zrangestore_select(&cmd.args, members) {
        Ok(selected) => store(state, db, &cmd.args[1], selected, txid).await,
        Err(e) => e,
    }
}

async fn zmpop(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let (keys, max, count) = match commands::zmpop_args(&cmd.args, 1) {
        Ok(a) => a,
        Err(e) => return e,
    };
    for key in keys {
        match exec_at(state, db, key, vec![b("TYPE"), key.clone()], txid).await {
            Reply::Status(t) if t == "none" => continue,
            Reply::Status(t) if t == "zset" => {
                let pop = if max { b("ZPOPMAX") } else { b("ZPOPMIN") };
                let args = vec![pop, key.clone(), Bytes::from(count.to_string())];
                return match exec_at(state, db, key, args, txid).await {
                    Reply::Pairs(pairs) => commands::zmpop_reply(key.clone(), scored(pairs)),
                    other => other,
                };
            }
            Reply::Status(_) => return commands::wrong_type_reply(),
            other => return other,
        }
    }
    Reply::NullArray
}
