//! Commands the connection runs itself: connection state (HELLO, SELECT, CLIENT), server
//! introspection (INFO, CONFIG, COMMAND, TIME), and fan-outs over every shard or over the
//! owners of a multi-key command's keys (DBSIZE, KEYS, SCAN, MGET, MSET, DEL, RENAME...).

use super::conn::{client_line, Session};
use super::shard::{PutEntry, ShardReq, ShardResp, ShardState};
use super::Durability;
use crate::commands::{self, CommandKind, CommandSpec};
use crate::resp::Protocol;
use crate::{Command, Reply};
use bytes::Bytes;
use helios_engine::keyspace::Portable;
use helios_shard::glommio_rt::unix_ms;
use std::borrow::Cow;
use std::rc::Rc;

const REDIS_COMPAT_VERSION: &str = "7.2.4";

fn err(text: &'static str) -> Reply {
    Reply::Error(Cow::Borrowed(text))
}

fn not_integer() -> Reply {
    err("ERR value is not an integer or out of range")
}

fn parse_i64(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The keys of a command, per its table entry (first key, last key, step; negative last counts
/// from the end).
pub fn keys_of<'a>(spec: &CommandSpec, cmd: &'a Command) -> KeysOf<'a> {
    if let Some(positions) = commands::movable_key_positions(spec.name, &cmd.args) {
        return KeysOf::Movable(&cmd.args, positions.into_iter());
    }
    let argc = cmd.args.len() as i32;
    let first = spec.first_key;
    let last = if spec.last_key < 0 {
        argc + spec.last_key
    } else {
        spec.last_key.min(argc - 1)
    };
    let step = spec.step.max(1) as usize;
    let range = if first <= 0 || last < first {
        0..0
    } else {
        first as usize..(last as usize + 1)
    };
    KeysOf::Placed(cmd.args[range].iter().step_by(step))
}

/// The keys of a command: placed by its table entry (no allocation: this runs for every
/// command routed) or found by [`commands::movable_key_positions`].
pub enum KeysOf<'a> {
    Placed(std::iter::StepBy<std::slice::Iter<'a, Bytes>>),
    Movable(&'a [Bytes], std::vec::IntoIter<usize>),
}

impl<'a> Iterator for KeysOf<'a> {
    type Item = &'a Bytes;

    fn next(&mut self) -> Option<&'a Bytes> {
        match self {
            KeysOf::Placed(keys) => keys.next(),
            KeysOf::Movable(args, positions) => positions.next().map(|i| &args[i]),
        }
    }
}

/// Commands a client may send before it authenticates (Redis's `no_auth` flag).
pub fn runs_unauthenticated(cmd: &Command) -> bool {
    cmd.spec().is_some_and(|spec| spec.has_flag("no_auth"))
}

/// AUTH [user] password (Redis 7.0 `authCommand`, the default user only).
fn auth(state: &ShardState, session: &mut Session, cmd: &Command) -> Reply {
    if cmd.args.len() > 3 {
        return err("ERR syntax error");
    }
    let (user, password) = match cmd.args.len() {
        2 => (None, &cmd.args[1]),
        _ => (Some(&cmd.args[1]), &cmd.args[2]),
    };
    if user.is_none() && !state.shared.password_required() {
        return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    match check_default_user(state, user.map(|u| u.as_ref()), password) {
        Ok(()) => {
            session.authenticated = true;
            Reply::Ok
        }
        Err(e) => e,
    }
}

/// Whether `user` (None: default) with `password` is the default user with its password
/// (any password when none is set, as Redis's `nopass`).
fn check_default_user(
    state: &ShardState,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<(), Reply> {
    let default = user.is_none_or(|u| u == b"default");
    if default && (!state.shared.password_required() || state.shared.password_matches(password)) {
        Ok(())
    } else {
        Err(err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

pub async fn run_special(state: &Rc<ShardState>, session: &mut Session, cmd: &Command) -> Reply {
    let name = cmd.name_lower();
    match name.as_ref() {
        "ping" => ping(cmd),
        "auth" => auth(state, session, cmd),
        "multi" => match session.multi {
            Some(_) => err("ERR MULTI calls can not be nested"),
            None => {
                session.multi = Some(Vec::new());
                session.multi_dirty = false;
                Reply::Ok
            }
        },
        "discard" => match session.multi.take() {
            Some(_) => {
                session.watched.clear();
                Reply::Ok
            }
            None => err("ERR DISCARD without MULTI"),
        },
        "watch" => watch(state, session, cmd).await,
        "unwatch" => {
            session.watched.clear();
            Reply::Ok
        }
        "exec" => super::conn::exec_transaction(state, session).await,
        "echo" => Reply::Bulk(cmd.args[1].clone()),
        "sort" | "sort_ro" => super::sort::run(state, session, cmd, 0).await,
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "publish" | "pubsub" => {
            super::pubsub::run(state, session, cmd).await
        }
        "hello" => hello(state, session, cmd),
        "quit" => {
            session.close_after_reply = true;
            Reply::Ok
        }
        "select" => select(session, cmd),
        "client" => client(state, session, cmd).await,
        "command" => command(cmd),
        "info" => info(state, cmd).await,
        "config" => config(state, cmd).await,
        "time" => {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            Reply::Array(vec![
                Reply::Bulk(Bytes::from((micros / 1_000_000).to_string())),
                Reply::Bulk(Bytes::from((micros % 1_000_000).to_string())),
            ])
        }
        "scan" => scan(state, session, cmd).await,
        "randomkey" => randomkey(state, session).await,
        "dbsize" | "flushdb" | "flushall" | "keys" => all_shards(state, session, cmd, 0).await,
        _ => match cmd.spec().map(|spec| spec.kind) {
            Some(CommandKind::MultiKey { .. }) => multi_key(state, session, cmd).await,
            _ => Reply::Error(format!("ERR command '{name}' cannot be routed").into()),
        },
    }
}

/// The reply of a command that reads nothing but its own arguments (PING, ECHO), which a
/// pipeline answers where it stands instead of running it as a barrier between the commands
/// queued for shards; None for any other command.
pub fn answer_in_place(cmd: &Command) -> Option<Reply> {
    match cmd.spec()?.name {
        "ping" => Some(ping(cmd)),
        "echo" if cmd.args.len() == 2 => Some(Reply::Bulk(cmd.args[1].clone())),
        _ => None,
    }
}

fn ping(cmd: &Command) -> Reply {
    match cmd.args.len() {
        1 => Reply::Status(Cow::Borrowed("PONG")),
        2 => Reply::Bulk(cmd.args[1].clone()),
        _ => Reply::wrong_arity("ping"),
    }
}

fn hello(state: &ShardState, session: &mut Session, cmd: &Command) -> Reply {
    let mut proto = session.proto;
    let mut name = None;
    let mut credentials = None;
    let mut args = cmd.args[1..].iter();
    if let Some(version) = args.next() {
        match parse_i64(version) {
            Some(2) => proto = Protocol::Resp2,
            Some(3) => proto = Protocol::Resp3,
            Some(_) => return err("NOPROTO unsupported protocol version"),
            None => return err("ERR Protocol version is not an integer or out of range"),
        }
        while let Some(option) = args.next() {
            if eq(option, "AUTH") {
                let (Some(user), Some(password)) = (args.next(), args.next()) else {
                    return Reply::Error(
                        format!(
                            "ERR Syntax error in HELLO option '{}'",
                            String::from_utf8_lossy(option)
                        )
                        .into(),
                    );
                };
                credentials = Some((user.clone(), password.clone()));
            } else if eq(option, "SETNAME") {
                let Some(value) = args.next() else {
                    return Reply::Error(
                        format!(
                            "ERR Syntax error in HELLO option '{}'",
                            String::from_utf8_lossy(option)
                        )
                        .into(),
                    );
                };
                if !valid_client_name(value) {
                    return err(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                name = Some(value.clone());
            } else {
                return Reply::Error(
                    format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(option)
                    )
                    .into(),
                );
            }
        }
    }
    // As Redis: the options are checked first, then the credentials, then whether the
    // client may go on.
    if let Some((user, password)) = credentials {
        if let Err(e) = check_default_user(state, Some(&user), &password) {
            return e;
        }
        session.authenticated = true;
    }
    if !session.authenticated && state.shared.password_required() {
        return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    session.proto = proto;
    let mut info = session.info.borrow_mut();
    info.proto = proto;
    if let Some(name) = name {
        info.name = Some(name);
    }
    let status = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    Reply::Map(vec![
        (status("server"), status("redis")),
        (status("version"), status(REDIS_COMPAT_VERSION)),
        (
            status("proto"),
            Reply::Int(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (status("id"), Reply::Int(info.id as i64)),
        (status("mode"), status("standalone")),
        (status("role"), status("master")),
        (status("modules"), Reply::Array(Vec::new())),
    ])
}

fn select(session: &mut Session, cmd: &Command) -> Reply {
    match parse_i64(&cmd.args[1]) {
        None => not_integer(),
        Some(db) if !(0..helios_engine::keyspace::DB_COUNT as i64).contains(&db) => {
            err("ERR DB index is out of range")
        }
        Some(db) => {
            session.db = db as u8;
            session.info.borrow_mut().db = db as u8;
            Reply::Ok
        }
    }
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

async fn client(state: &Rc<ShardState>, session: &mut Session, cmd: &Command) -> Reply {
    let sub = String::from_utf8_lossy(&cmd.args[1]).to_ascii_lowercase();
    let argc = cmd.args.len();
    let arity_error =
        || Reply::Error(format!("ERR wrong number of arguments for 'client|{sub}' command").into());
    match sub.as_str() {
        "id" if argc == 2 => Reply::Int(session.info.borrow().id as i64),
        "getname" if argc == 2 => match &session.info.borrow().name {
            Some(name) => Reply::Bulk(name.clone()),
            None => Reply::Null,
        },
        "setname" if argc == 3 => {
            if !valid_client_name(&cmd.args[2]) {
                return err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            session.info.borrow_mut().name = if cmd.args[2].is_empty() {
                None
            } else {
                Some(cmd.args[2].clone())
            };
            Reply::Ok
        }
        "setinfo" if argc == 4 => {
            let value = cmd.args[3].clone();
            if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return Reply::Error(
                    format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        String::from_utf8_lossy(&cmd.args[2]).to_ascii_lowercase()
                    )
                    .into(),
                );
            }
            let mut info = session.info.borrow_mut();
            if eq(&cmd.args[2], "LIB-NAME") {
                info.lib_name = Some(value);
            } else if eq(&cmd.args[2], "LIB-VER") {
                info.lib_ver = Some(value);
            } else {
                return Reply::Error(
                    format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&cmd.args[2])
                    )
                    .into(),
                );
            }
            Reply::Ok
        }
        "info" if argc == 2 => Reply::Verbatim(
            "txt",
            Bytes::from(format!(
                "{}\n",
                client_line(&session.info.borrow(), unix_ms())
            )),
        ),
        "list" => {
            let mut text = String::new();
            for (_, resp) in broadcast(state, || ShardReq::ClientList).await {
                if let Ok(ShardResp::ClientList(lines)) = resp {
                    text.push_str(&lines);
                }
            }
            text.push_str(&super::conn::client_list(state));
            Reply::Verbatim("txt", Bytes::from(text))
        }
        "id" | "getname" | "setname" | "setinfo" | "info" => arity_error(),
        _ => Reply::Error(
            format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&cmd.args[1])
            )
            .into(),
        ),
    }
}

fn command_info(spec: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from_static(spec.name.as_bytes())),
        Reply::Int(spec.arity as i64),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Status(Cow::Borrowed(*f)))
                .collect(),
        ),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(Vec::new()),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn command(cmd: &Command) -> Reply {
    let Some(sub) = cmd.args.get(1) else {
        return Reply::Array(commands::all().iter().map(command_info).collect());
    };
    let named = || cmd.args[2..].iter().map(|name| commands::lookup(name));
    if eq(sub, "COUNT") && cmd.args.len() == 2 {
        Reply::Int(commands::all().len() as i64)
    } else if eq(sub, "INFO") {
        if cmd.args.len() == 2 {
            return Reply::Array(commands::all().iter().map(command_info).collect());
        }
        Reply::Array(
            named()
                .map(|spec| spec.map(command_info).unwrap_or(Reply::NullArray))
                .collect(),
        )
    } else if eq(sub, "DOCS") {
        let specs: Vec<&CommandSpec> = if cmd.args.len() == 2 {
            commands::all().iter().collect()
        } else {
            named().flatten().collect()
        };
        Reply::Map(
            specs
                .into_iter()
                .map(|spec| {
                    (
                        Reply::Bulk(Bytes::from_static(spec.name.as_bytes())),
                        commands::command_docs(spec),
                    )
                })
                .collect(),
        )
    } else if eq(sub, "LIST") && cmd.args.len() == 2 {
        Reply::Array(
            commands::all()
                .iter()
                .map(|spec| Reply::Bulk(Bytes::from_static(spec.name.as_bytes())))
                .collect(),
        )
    } else {
        Reply::Error(
            format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
                String::from_utf8_lossy(sub)
            )
            .into(),
        )
    }
}

/// Sends a request to every other shard concurrently and collects the answers.
async fn broadcast(
    state: &Rc<ShardState>,
    make: impl Fn() -> ShardReq,
) -> Vec<(usize, Result<ShardResp, String>)> {
    let mut calls = Vec::new();
    for shard in (0..state.shared.map.shard_count()).filter(|&s| s != state.id) {
        let mesh = state.mesh.clone();
        let req = make();
        calls.push((
            shard,
            glommio::spawn_local(async move { mesh.call(shard, req).await }),
        ));
    }
    let mut answers = Vec::new();
    for (shard, call) in calls {
        answers.push((shard, call.await.map_err(|gone| gone.to_string())));
    }
    answers
}

/// Runs per-shard command lists (local inline, others over the mesh) and returns each shard's
/// replies in the order given.
pub(super) async fn exec_on(
    state: &Rc<ShardState>,
    work: Vec<(usize, Vec<(u8, Command)>)>,
    txid: u64,
) -> Vec<Result<Vec<Reply>, String>> {
    let mut calls = Vec::new();
    let mut local = None;
    for (slot, (shard, cmds)) in work.into_iter().enumerate() {
        if shard == state.id {
            local = Some((slot, cmds));
        } else {
            let mesh = state.mesh.clone();
            calls.push((
                slot,
                glommio::spawn_local(async move {
                    mesh.call(shard, ShardReq::Exec { txid, cmds }).await
                }),
            ));
        }
    }
    let mut results: Vec<Option<Result<Vec<Reply>, String>>> =
        vec![None; calls.len() + local.is_some() as usize];
    if let Some((slot, cmds)) = local {
        let mut replies = Vec::new();
        state
            .ready_to_exec(cmds.iter().map(|(db, cmd)| (*db, cmd)), txid)
            .await;
        let lsn = state.exec_batch(cmds.iter().map(|(db, cmd)| (*db, cmd)), &mut replies);
        results[slot] = Some(state.wait_durable(lsn).await.map(|()| replies));
    }
    for (slot, call) in calls {
        results[slot] = Some(match call.await {
            Ok(ShardResp::Replies(replies)) => Ok(replies),
            Ok(ShardResp::Error(error)) => Err(error),
            Ok(_) => Err("unexpected shard response".into()),
            Err(gone) => Err(gone.to_string()),
        });
    }
    results
        .into_iter()
        .map(|r| r.expect("every shard answered"))
        .collect()
}

fn all_shard_ids(state: &ShardState) -> impl Iterator<Item = usize> {
    0..state.shared.map.shard_count()
}

/// DBSIZE, FLUSHDB, FLUSHALL and KEYS on every shard, merged; `txid` is the transaction's
/// inside EXEC (a flush waits for other operations' intent locks, never for its own).
pub(super) async fn all_shards(
    state: &Rc<ShardState>,
    session: &Session,
    cmd: &Command,
    txid: u64,
) -> Reply {
    let work = all_shard_ids(state)
        .map(|shard| (shard, vec![(session.db, cmd.clone())]))
        .collect();
    let mut merged: Option<Reply> = None;
    for result in exec_on(state, work, txid).await {
        let reply = match result {
            Ok(mut replies) if replies.len() == 1 => replies.remove(0),
            Ok(_) => return err("ERR internal error: shard reply count"),
            Err(error) => return Reply::Error(format!("MISCONF {error}").into()),
        };
        merged = Some(match (merged, reply) {
            (_, error @ Reply::Error(_)) => return error,
            (None, reply) => reply,
            (Some(Reply::Int(a)), Reply::Int(b)) => Reply::Int(a + b),
            (Some(Reply::Array(mut a)), Reply::Array(b)) => {
                a.extend(b);
                Reply::Array(a)
            }
            (Some(Reply::Set(mut a)), Reply::Set(b)) => {
                a.extend(b);
                Reply::Set(a)
            }
            (Some(first), _) => first,
        });
    }
    merged.unwrap_or(Reply::Ok)
}

async fn randomkey(state: &Rc<ShardState>, session: &Session) -> Reply {
    let count = state.shared.map.shard_count();
    let start = (unix_ms() as usize).wrapping_mul(2654435761) % count;
    let randomkey = Command::new(vec![Bytes::from_static(b"RANDOMKEY")]);
    for offset in 0..count {
        let shard = (start + offset) % count;
        let result = exec_on(
            state,
            vec![(shard, vec![(session.db, randomkey.clone())])],
            0,
        )
        .await;
        match result.into_iter().next() {
            Some(Ok(mut replies)) if !replies.is_empty() => match replies.remove(0) {
                Reply::Null => continue,
                reply => return reply,
            },
            Some(Err(error)) => return Reply::Error(format!("ERR {error}").into()),
            _ => continue,
        }
    }
    Reply::Null
}

/// A multi-key command whose keys live on several shards: intent locks on every key (taken
/// shard by shard in ascending order, so two such commands cannot deadlock), the work, then
/// the locks released. Other commands touching those keys wait meanwhile, so the command is
/// atomic and isolated, as in Redis.
async fn multi_key(state: &Rc<ShardState>, session: &Session, cmd: &Command) -> Reply {
    let Some(spec) = cmd.spec() else {
        return commands::unknown_command(cmd);
    };
    if !(cmd.args.len() - spec.first_key as usize).is_multiple_of(spec.step.max(1) as usize) {
        return Reply::wrong_arity(spec.name);
    }
    let db = session.db;
    let mut keys_by_shard: std::collections::BTreeMap<usize, Vec<Bytes>> = Default::default();
    for key in keys_of(spec, cmd) {
        keys_by_shard
            .entry(state.owner_of(key))
            .or_default()
            .push(key.clone());
    }
    let txid = state
        .shared
        .next_txid
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reply = match lock_all(state, txid, db, &keys_by_shard).await {
        Err(error) => Reply::Error(format!("ERR {error}").into()),
        Ok(()) => run_locked(state, db, spec, cmd, txid).await,
    };
    unlock_all(state, txid, keys_by_shard.keys().copied()).await;
    reply
}

/// The current version of each key (on its owner shard), in the order given.
async fn versions(
    state: &Rc<ShardState>,
    db: u8,
    keys: &[Bytes],
) -> Result<Vec<Option<u64>>, String> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let shard = state.owner_of(key);
        let version = if shard == state.id {
            state.versions(db, std::slice::from_ref(key)).remove(0)
        } else {
            let req = ShardReq::Versions {
                db,
                keys: vec![key.clone()],
            };
            match state.mesh.call(shard, req).await {
                Ok(ShardResp::Versions(mut v)) if v.len() == 1 => v.remove(0),
                Ok(_) => return Err("unexpected shard response".into()),
                Err(gone) => return Err(gone.to_string()),
            }
        };
        out.push(version);
    }
    Ok(out)
}

/// WATCH: remembers each key's current version (a key watched already keeps its first);
/// refused inside MULTI, without aborting it, as Redis does.
async fn watch(state: &Rc<ShardState>, session: &mut Session, cmd: &Command) -> Reply {
    if session.multi.is_some() {
        return err("ERR WATCH inside MULTI is not allowed");
    }
    let db = session.db;
    let keys: Vec<Bytes> = cmd.args[1..]
        .iter()
        .filter(|k| !session.watched.iter().any(|(d, w, _)| *d == db && w == *k))
        .cloned()
        .collect();
    match versions(state, db, &keys).await {
        Ok(found) => {
            session
                .watched
                .extend(keys.into_iter().zip(found).map(|(k, v)| (db, k, v)));
            Reply::Ok
        }
        Err(error) => Reply::Error(format!("ERR {error}").into()),
    }
}

/// Whether every watched key still has the version it had at WATCH.
pub(super) async fn watched_unchanged(
    state: &Rc<ShardState>,
    watched: &[(u8, Bytes, Option<u64>)],
) -> Result<bool, String> {
    for (db, key, then) in watched {
        let now = versions(state, *db, std::slice::from_ref(key)).await?;
        if now[0] != *then {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A multi-key command whose keys are locked under `txid` already (by `multi_key`, or by
/// a transaction's EXEC).
pub(super) async fn run_locked(
    state: &Rc<ShardState>,
    db: u8,
    spec: &commands::CommandSpec,
    cmd: &Command,
    txid: u64,
) -> Reply {
    match spec.name {
        "rename" => rename_across(state, db, cmd, false).await,
        "renamenx" => rename_across(state, db, cmd, true).await,
        "msetnx" => msetnx_locked(state, db, cmd, txid).await,
        _ if spec.kind
            == (CommandKind::MultiKey {
                merge: commands::Merge::Gather,
            }) =>
        {
            set_op_across(state, db, cmd, txid).await
        }
        _ => split_exec(state, db, cmd, txid).await,
    }
}

pub(super) async fn lock_all(
    state: &Rc<ShardState>,
    txid: u64,
    db: u8,
    keys_by_shard: &std::collections::BTreeMap<usize, Vec<Bytes>>,
) -> Result<(), String> {
    for (&shard, keys) in keys_by_shard {
        if shard == state.id {
            state.lock_keys(txid, db, keys.clone()).await;
        } else {
            match state
                .mesh
                .call(
                    shard,
                    ShardReq::Lock {
                        txid,
                        db,
                        keys: keys.clone(),
                    },
                )
                .await
            {
                Ok(ShardResp::Done) => {}
                Ok(_) => return Err("unexpected shard response".into()),
                Err(gone) => return Err(gone.to_string()),
            }
        }
    }
    Ok(())
}

pub(super) async fn unlock_all(
    state: &Rc<ShardState>,
    txid: u64,
    shards: impl Iterator<Item = usize>,
) {
    for shard in shards {
        if shard == state.id {
            state.unlock(txid);
        } else {
            // A shard that is gone holds no locks any more.
            let _ = state.mesh.call(shard, ShardReq::Unlock { txid }).await;
        }
    }
}

/// Splits a multi-key command over the owners of its keys (under `txid`'s locks), then merges.
async fn split_exec(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let Some(spec) = cmd.spec() else {
        return commands::unknown_command(cmd);
    };
    let step = spec.step.max(1) as usize;
    // Per owning shard: the positions (key index in the command) and the sub-command's args.
    let mut groups: Vec<(usize, Vec<usize>, Vec<Bytes>)> = Vec::new();
    for (position, key) in keys_of(spec, cmd).enumerate() {
        let shard = state.owner_of(key);
        let group = match groups.iter().position(|(s, _, _)| *s == shard) {
            Some(g) => g,
            None => {
                groups.push((shard, Vec::new(), vec![cmd.args[0].clone()]));
                groups.len() - 1
            }
        };
        let first = spec.first_key as usize + position * step;
        groups[group].1.push(position);
        let Some(args) = cmd.args.get(first..first + step) else {
            return Reply::wrong_arity(spec.name);
        };
        groups[group].2.extend(args.iter().cloned());
    }
    let key_count = keys_of(spec, cmd).count();
    let work = groups
        .iter()
        .map(|(shard, _, args)| (*shard, vec![(db, Command::new(args.clone()))]))
        .collect();
    let results = exec_on(state, work, txid).await;
    let mut values = vec![Reply::Null; key_count];
    let mut total = 0i64;
    for ((_, positions, _), result) in groups.iter().zip(results) {
        let reply = match result {
            Ok(mut replies) if replies.len() == 1 => replies.remove(0),
            Ok(_) => return err("ERR internal error: shard reply count"),
            Err(error) => return Reply::Error(format!("MISCONF {error}").into()),
        };
        match reply {
            Reply::Error(_) => return reply,
            Reply::Int(n) => total += n,
            Reply::Array(items) => {
                for (position, item) in positions.iter().zip(items) {
                    values[*position] = item;
                }
            }
            _ => {}
        }
    }
    match spec.kind {
        CommandKind::MultiKey {
            merge: commands::Merge::ConcatArray,
        } => Reply::Array(values),
        CommandKind::MultiKey {
            merge: commands::Merge::SumInt,
        } => Reply::Int(total),
        _ => Reply::Ok,
    }
}

/// MSETNX over several shards, under locks on every key: set all only if none exists.
async fn msetnx_locked(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let mut exists = vec![Bytes::from_static(b"EXISTS")];
    exists.extend(cmd.args[1..].iter().step_by(2).cloned());
    match split_exec(state, db, &Command::new(exists), txid).await {
        Reply::Int(0) => {}
        Reply::Int(_) => return Reply::Int(0),
        other => return other,
    }
    let mut mset = vec![Bytes::from_static(b"MSET")];
    mset.extend(cmd.args[1..].iter().cloned());
    match split_exec(state, db, &Command::new(mset), txid).await {
        Reply::Ok => Reply::Int(1),
        other => other,
    }
}

/// Runs one command on the shard that owns `key` (under `txid`'s locks) and returns its reply.
pub(super) async fn exec_at(
    state: &Rc<ShardState>,
    db: u8,
    key: &Bytes,
    args: Vec<Bytes>,
    txid: u64,
) -> Reply {
    let shard = state.owner_of(key);
    let results = exec_on(state, vec![(shard, vec![(db, Command::new(args))])], txid).await;
    match results.into_iter().next() {
        Some(Ok(mut replies)) if replies.len() == 1 => replies.remove(0),
        Some(Err(error)) => Reply::Error(format!("MISCONF {error}").into()),
        _ => err("ERR internal error: shard reply count"),
    }
}

/// Runs `cmds` as one batch on the shard owning `dst` (a STORE's write); replies the first
/// error among them, else `ok`.
pub(super) async fn write_at_owner(
    state: &Rc<ShardState>,
    dst: &Bytes,
    cmds: Vec<(u8, Command)>,
    txid: u64,
    ok: Reply,
) -> Reply {
    match exec_on(state, vec![(state.owner_of(dst), cmds)], txid)
        .await
        .into_iter()
        .next()
    {
        Some(Ok(replies)) => replies.into_iter().find(Reply::is_error).unwrap_or(ok),
        Some(Err(error)) => Reply::Error(format!("MISCONF {error}").into()),
        None => err("ERR internal error: shard reply count"),
    }
}

/// The members of the set at each key, read in key order (None: no such key); the first
/// WRONGTYPE stops it, as Redis's type checks do.
async fn gather_sets(
    state: &Rc<ShardState>,
    db: u8,
    keys: &[Bytes],
    txid: u64,
) -> Result<Vec<Option<Vec<Bytes>>>, Reply> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        let args = vec![Bytes::from_static(b"SMEMBERS"), key.clone()];
        match exec_at(state, db, key, args, txid).await {
            Reply::Set(items) | Reply::Array(items) => {
                let members: Vec<Bytes> = items
                    .into_iter()
                    .filter_map(|r| match r {
                        Reply::Bulk(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                sets.push((!members.is_empty()).then_some(members));
            }
            other => return Err(other),
        }
    }
    Ok(sets)
}

/// SMOVE, SINTER, SUNION, SDIFF, their STORE forms and SINTERCARD over keys on several
/// shards, under intent locks on every key (so atomic and isolated, as in Redis): gather
/// the members, combine them here, write the result on the destination's shard in one
/// batch.
async fn set_op_across(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    use commands::SetOp;
    let name = cmd.name_lower();
    let bulk = |members: Vec<Bytes>| Reply::Set(members.into_iter().map(Reply::Bulk).collect());
    let (op, store) = match name.as_ref() {
        "smove" => return smove_across(state, db, cmd, txid).await,
        "lmove" | "rpoplpush" | "lmpop" => return list_across(state, db, cmd, txid).await,
        "copy" => return copy_across(state, db, cmd, txid).await,
        "zunion" | "zinter" | "zdiff" | "zintercard" | "zunionstore" | "zinterstore"
        | "zdiffstore" | "zrangestore" | "zmpop" => {
            return super::zgather::zset_op_across(state, db, cmd, txid).await
        }
        "sintercard" => {
            let (keys, limit) = match commands::sintercard_args(&cmd.args) {
                Ok(a) => a,
                Err(e) => return e,
            };
            return match gather_sets(state, db, keys, txid).await {
                Ok(sets) => Reply::Int(commands::intersection_card(&sets, limit)),
                Err(e) => e,
            };
        }
        "sinter" => (SetOp::Inter, false),
        "sunion" => (SetOp::Union, false),
        "sdiff" => (SetOp::Diff, false),
        "sinterstore" => (SetOp::Inter, true),
        "sunionstore" => (SetOp::Union, true),
        "sdiffstore" => (SetOp::Diff, true),
        _ => return err("ERR internal error: not a set operation"),
    };
    let sources = if store {
        &cmd.args[2..]
    } else {
        &cmd.args[1..]
    };
    let sets = match gather_sets(state, db, sources, txid).await {
        Ok(sets) => sets,
        Err(e) => return e,
    };
    let members = commands::combine(op, &sets);
    if !store {
        return bulk(members);
    }
    let dst = &cmd.args[1];
    let count = members.len() as i64;
    let mut cmds = vec![(
        db,
        Command::new(vec![Bytes::from_static(b"DEL"), dst.clone()]),
    )];
    if !members.is_empty() {
        let mut sadd = vec![Bytes::from_static(b"SADD"), dst.clone()];
        sadd.extend(members);
        cmds.push((db, Command::new(sadd)));
    }
    write_at_owner(state, dst, cmds, txid, Reply::Int(count)).await
}

/// COPY between two shards, under intent locks on both keys: read the source's type,
/// value and expiry on its shard, then (unless the destination exists and REPLACE is not
/// given) write the copy on the destination's shard in one batch.
async fn copy_across(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let (dst_db, replace) = match commands::copy_options(&cmd.args) {
        Ok((dst_db, replace)) => (dst_db.unwrap_or(db), replace),
        Err(e) => return e,
    };
    let (src, dst) = (&cmd.args[1], &cmd.args[2]);
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let kind = match exec_at(state, db, src, vec![b("TYPE"), src.clone()], txid).await {
        Reply::Status(t) => t.into_owned(),
        other => return other,
    };
    let read = match kind.as_str() {
        "none" => return Reply::Int(0),
        "string" => vec![b("GET"), src.clone()],
        "hash" => vec![b("HGETALL"), src.clone()],
        "set" => vec![b("SMEMBERS"), src.clone()],
        "list" => vec![b("LRANGE"), src.clone(), b("0"), b("-1")],
        "zset" => vec![b("ZRANGE"), src.clone(), b("0"), b("-1"), b("WITHSCORES")],
        other => return Reply::Error(format!("ERR COPY of a {other} is not supported").into()),
    };
    let value = exec_at(state, db, src, read, txid).await.expand_encoded();
    let expire_at = match exec_at(state, db, src, vec![b("PEXPIRETIME"), src.clone()], txid).await {
        Reply::Int(ms) if ms >= 0 => Some(ms),
        Reply::Int(_) => None,
        other => return other,
    };
    let exists = exec_at(state, dst_db, dst, vec![b("EXISTS"), dst.clone()], txid).await;
    if matches!(exists, Reply::Int(1)) && !replace {
        return Reply::Int(0);
    }
    let bulk = |r: Reply| match r {
        Reply::Bulk(v) => Some(v),
        _ => None,
    };
    let mut write = match (kind.as_str(), value) {
        ("string", Reply::Bulk(v)) => vec![b("SET"), dst.clone(), v],
        ("hash", Reply::Map(pairs)) => {
            let mut args = vec![b("HSET"), dst.clone()];
            for (f, v) in pairs {
                args.extend(bulk(f));
                args.extend(bulk(v));
            }
            args
        }
        ("set", Reply::Set(items) | Reply::Array(items)) => {
            let mut args = vec![b("SADD"), dst.clone()];
            args.extend(items.into_iter().filter_map(bulk));
            args
        }
        ("list", Reply::Array(items)) => {
            let mut args = vec![b("RPUSH"), dst.clone()];
            args.extend(items.into_iter().filter_map(bulk));
            args
        }
        ("zset", Reply::Pairs(pairs)) => {
            let mut args = vec![b("ZADD"), dst.clone()];
            for (m, s) in pairs {
                if let (Reply::Bulk(m), Reply::Double(s)) = (m, s) {
                    // Rust prints the shortest text that reads back as the same double.
                    args.push(Bytes::from(s.to_string()));
                    args.push(m);
                }
            }
            args
        }
        (_, other) => return other,
    };
    let mut cmds = vec![(dst_db, Command::new(vec![b("DEL"), dst.clone()]))];
    if let (Some(ms), "string") = (expire_at, kind.as_str()) {
        write.extend([b("PXAT"), Bytes::from(ms.to_string())]);
    }
    cmds.push((dst_db, Command::new(write)));
    if let (Some(ms), false) = (expire_at, kind == "string") {
        let at = Bytes::from(ms.to_string());
        cmds.push((dst_db, Command::new(vec![b("PEXPIREAT"), dst.clone(), at])));
    }
    write_at_owner(state, dst, cmds, txid, Reply::Int(1)).await
}

/// The TYPE of `key`: Ok(true) for a list, Ok(false) when absent, Err(WRONGTYPE or a
/// shard's error) otherwise.
async fn list_or_none(
    state: &Rc<ShardState>,
    db: u8,
    key: &Bytes,
    txid: u64,
) -> Result<bool, Reply> {
    let args = vec![Bytes::from_static(b"TYPE"), key.clone()];
    match exec_at(state, db, key, args, txid).await {
        Reply::Status(t) if t == "none" => Ok(false),
        Reply::Status(t) if t == "list" => Ok(true),
        Reply::Status(_) => Err(commands::wrong_type_reply()),
        other => Err(other),
    }
}

/// LMOVE, RPOPLPUSH and LMPOP over keys on several shards (under intent locks on every
/// key), in Redis's order: the source's type and emptiness, the destination's type, then
/// the pop on the source's shard and the push on the destination's.
async fn list_across(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let pop_cmd = |left: bool| Bytes::from_static(if left { b"LPOP" } else { b"RPOP" });
    if cmd.name_lower() == "lmpop" {
        let (keys, left, count) = match commands::lmpop_args(&cmd.args) {
            Ok(a) => a,
            Err(e) => return e,
        };
        for key in keys {
            match list_or_none(state, db, key, txid).await {
                Err(e) => return e,
                Ok(false) => continue,
                Ok(true) => {
                    let args = vec![pop_cmd(left), key.clone(), Bytes::from(count.to_string())];
                    return match exec_at(state, db, key, args, txid).await {
                        popped @ Reply::Array(_) => {
                            Reply::Array(vec![Reply::Bulk(key.clone()), popped])
                        }
                        other => other,
                    };
                }
            }
        }
        return Reply::NullArray;
    }
    let (from_left, to_left) = if cmd.name_lower() == "rpoplpush" {
        (false, true)
    } else {
        match (
            commands::parse_side(&cmd.args[3]),
            commands::parse_side(&cmd.args[4]),
        ) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return e,
        }
    };
    let (src, dst) = (&cmd.args[1], &cmd.args[2]);
    match list_or_none(state, db, src, txid).await {
        Err(e) => return e,
        Ok(false) => return Reply::Null,
        Ok(true) => {}
    }
    if let Err(e) = list_or_none(state, db, dst, txid).await {
        return e;
    }
    let element = match exec_at(state, db, src, vec![pop_cmd(from_left), src.clone()], txid).await {
        Reply::Bulk(element) => element,
        other => return other,
    };
    let push_cmd = Bytes::from_static(if to_left { b"LPUSH" } else { b"RPUSH" });
    match exec_at(
        state,
        db,
        dst,
        vec![push_cmd, dst.clone(), element.clone()],
        txid,
    )
    .await
    {
        Reply::Int(_) => Reply::Bulk(element),
        other => other,
    }
}

/// SMOVE between two shards, in Redis's order: a missing source is 0, then both types are
/// checked, then the member moves (removed, then added).
async fn smove_across(state: &Rc<ShardState>, db: u8, cmd: &Command, txid: u64) -> Reply {
    let (src, dst, member) = (&cmd.args[1], &cmd.args[2], &cmd.args[3]);
    let type_of = |key: &Bytes| vec![Bytes::from_static(b"TYPE"), key.clone()];
    match exec_at(state, db, src, type_of(src), txid).await {
        Reply::Status(t) if t == "none" => return Reply::Int(0),
        Reply::Status(t) if t == "set" => {}
        Reply::Status(_) => return commands::wrong_type_reply(),
        other => return other,
    }
    match exec_at(state, db, dst, type_of(dst), txid).await {
        Reply::Status(t) if t == "none" || t == "set" => {}
        Reply::Status(_) => return commands::wrong_type_reply(),
        other => return other,
    }
    let srem = vec![Bytes::from_static(b"SREM"), src.clone(), member.clone()];
    match exec_at(state, db, src, srem, txid).await {
        Reply::Int(1) => {}
        Reply::Int(_) => return Reply::Int(0),
        other => return other,
    }
    let sadd = vec![Bytes::from_static(b"SADD"), dst.clone(), member.clone()];
    match exec_at(state, db, dst, sadd, txid).await {
        Reply::Int(_) => Reply::Int(1),
        other => other,
    }
}

/// RENAME/RENAMENX between two shards (under locks on both keys): take the source, store it.
async fn rename_across(
    state: &Rc<ShardState>,
    db: u8,
    cmd: &Command,
    only_if_absent: bool,
) -> Reply {
    let (src, dst) = (cmd.args[1].clone(), cmd.args[2].clone());
    let (src_shard, dst_shard) = (state.owner_of(&src), state.owner_of(&dst));
    let taken = if src_shard == state.id {
        match state.take_loaded(db, &src).await {
            Ok(taken) => state
                .wait_durable(state.wal().last_lsn())
                .await
                .map(|()| taken),
            Err(error) => Err(error),
        }
    } else {
        match state
            .mesh
            .call(
                src_shard,
                ShardReq::Take {
                    db,
                    key: src.clone(),
                },
            )
            .await
        {
            Ok(ShardResp::Taken(taken)) => Ok(taken),
            Ok(ShardResp::Error(error)) => Err(error),
            Ok(_) => Err("unexpected shard response".to_string()),
            Err(gone) => Err(gone.to_string()),
        }
    };
    let (value, expire_at_ms) = match taken {
        Ok(Some(entry)) => entry,
        Ok(None) => return err("ERR no such key"),
        Err(error) => return Reply::Error(format!("ERR {error}").into()),
    };
    let put = |key: Bytes, value: Portable, only_if_absent| PutEntry {
        db,
        key,
        value,
        expire_at_ms,
        only_if_absent,
    };
    let stored = put_on(state, dst_shard, put(dst, value.clone(), only_if_absent)).await;
    match stored {
        Ok(true) if only_if_absent => Reply::Int(1),
        Ok(true) => Reply::Ok,
        // RENAMENX lost (the destination exists), or the store failed: put the source back.
        Ok(false) | Err(_) => {
            let restored = put_on(state, src_shard, put(src, value, false)).await;
            match (stored, restored) {
                (Ok(_), Ok(_)) => Reply::Int(0),
                (Err(error), Ok(_)) => Reply::Error(format!("ERR {error}").into()),
                (_, Err(lost)) => Reply::Error(
                    format!("ERR rename failed and the source could not be restored: {lost}")
                        .into(),
                ),
            }
        }
    }
}

async fn put_on(state: &Rc<ShardState>, shard: usize, entry: PutEntry) -> Result<bool, String> {
    if shard == state.id {
        let stored = state.put(entry)?;
        state.wait_durable(state.wal().last_lsn()).await?;
        return Ok(stored);
    }
    match state.mesh.call(shard, ShardReq::Put(entry)).await {
        Ok(ShardResp::Put(stored)) => Ok(stored),
        Ok(ShardResp::Error(error)) => Err(error),
        Ok(_) => Err("unexpected shard response".into()),
        Err(gone) => Err(gone.to_string()),
    }
}

/// The token SCAN starts a shard at: the first token of its lowest partition.
fn shard_start_token(map: &helios_shard::routing::PartitionMap, shard: usize) -> u64 {
    let first = map
        .partitions_of(shard)
        .next()
        .expect("every shard owns a partition");
    helios_shard::routing::first_token(first)
}

/// SCAN over all shards, one after the other: the cursor is the token to resume from, and the
/// token's partition names the shard, so a cursor stays valid across calls and restarts.
/// Cursor 0 starts at shard 0 (which owns partition 0) and a returned 0 means done.
async fn scan(state: &Rc<ShardState>, session: &Session, cmd: &Command) -> Reply {
    let Some(cursor) = std::str::from_utf8(&cmd.args[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return err("ERR invalid cursor");
    };
    let mut count = 10usize;
    let mut pattern = None;
    let mut type_filter = None;
    let mut args = cmd.args[2..].iter();
    while let Some(option) = args.next() {
        let Some(value) = args.next() else {
            return err("ERR syntax error");
        };
        if eq(option, "COUNT") {
            match parse_i64(value) {
                None => return not_integer(),
                Some(n) if n < 1 => return err("ERR syntax error"),
                Some(n) => count = n.min(1 << 20) as usize,
            }
        } else if eq(option, "MATCH") {
            pattern = Some(value.clone());
        } else if eq(option, "TYPE") {
            type_filter = Some(value.clone());
        } else {
            return err("ERR syntax error");
        }
    }
    let map = &state.shared.map;
    let shard_count = map.shard_count();
    let mut shard = map.shard_of_token(cursor);
    let mut cursor_token = cursor;
    let db = session.db;
    let (keys, next) = loop {
        let (keys, next) = if shard == state.id {
            scan_local(
                state,
                db,
                cursor_token,
                count,
                pattern.clone(),
                type_filter.clone(),
            )
        } else {
            let req = ShardReq::Scan {
                db,
                cursor_token,
                count,
                pattern: pattern.clone(),
                type_filter: type_filter.clone(),
            };
            match state.mesh.call(shard, req).await {
                Ok(ShardResp::Scan(keys, next)) => (keys, next),
                _ => return err("ERR shard unavailable during SCAN"),
            }
        };
        match next {
            Some(token) => {
                assert_eq!(
                    map.shard_of_token(token),
                    shard,
                    "a shard resumes SCAN at one of its own tokens"
                );
                break (keys, token);
            }
            None if shard + 1 < shard_count => {
                shard += 1;
                cursor_token = shard_start_token(map, shard);
                if !keys.is_empty() {
                    break (keys, cursor_token);
                }
            }
            None => break (keys, 0),
        }
    };
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ])
}

pub fn scan_local(
    state: &ShardState,
    db: u8,
    cursor_token: u64,
    count: usize,
    pattern: Option<Bytes>,
    type_filter: Option<Bytes>,
) -> (Vec<Bytes>, Option<u64>) {
    let now_ms = unix_ms();
    let filter = |key: &[u8], value: &helios_engine::keyspace::Value| {
        pattern
            .as_ref()
            .is_none_or(|p| commands::keys_pattern_match(p, key))
            && type_filter
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(commands::type_name(value).as_bytes()))
    };
    state
        .ks
        .borrow_mut()
        .scan(db, cursor_token, count, now_ms, filter)
}

async fn info(state: &Rc<ShardState>, cmd: &Command) -> Reply {
    let mut stats = vec![];
    for (_, resp) in broadcast(state, || ShardReq::Stats).await {
        if let Ok(ShardResp::Stats(s)) = resp {
            stats.push(*s);
        }
    }
    stats.push(state.local_stats());
    stats.sort_by_key(|s| s.shard);
    let sections: Vec<String> = cmd.args[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    Reply::Verbatim(
        "txt",
        Bytes::from(super::info::render(
            &state.shared,
            &stats,
            &sections,
            unix_ms(),
        )),
    )
}

async fn config(state: &Rc<ShardState>, cmd: &Command) -> Reply {
    let sub = String::from_utf8_lossy(&cmd.args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "get" if cmd.args.len() >= 3 => {
            let params = config_params(state);
            let mut pairs = Vec::new();
            for (name, value) in &params {
                if cmd.args[2..]
                    .iter()
                    .any(|p| commands::glob_match(p, name.as_bytes(), true))
                {
                    pairs.push((
                        Reply::Bulk(Bytes::from(name.to_string())),
                        Reply::Bulk(Bytes::from(value.clone())),
                    ));
                }
            }
            Reply::Map(pairs)
        }
        "set" if cmd.args.len() >= 4 && cmd.args.len().is_multiple_of(2) => {
            config_set(state, cmd).await
        }
        "resetstat" if cmd.args.len() == 2 => Reply::Ok,
        "get" | "set" | "resetstat" => {
            Reply::Error(format!("ERR wrong number of arguments for 'config|{sub}' command").into())
        }
        _ => Reply::Error(
            format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(&cmd.args[1])
            )
            .into(),
        ),
    }
}

fn config_params(state: &ShardState) -> Vec<(&'static str, String)> {
    let config = &state.shared.config;
    let appendfsync = match state.durability.get() {
        Durability::Sync => "always",
        Durability::Async => "everysec",
    };
    vec![
        ("appendonly", "yes".into()),
        ("appendfsync", appendfsync.into()),
        ("save", String::new()),
        ("databases", helios_engine::keyspace::DB_COUNT.to_string()),
        ("port", config.redis_addr.port().to_string()),
        ("bind", config.redis_addr.ip().to_string()),
        ("dir", config.data_dir.display().to_string()),
        ("proto-max-bulk-len", (512u64 << 20).to_string()),
        ("client-query-buffer-limit", (1u64 << 30).to_string()),
        (
            "maxmemory",
            state
                .shared
                .maxmemory
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        ),
        ("maxmemory-policy", "noeviction".into()),
        (
            "requirepass",
            state
                .shared
                .requirepass
                .read()
                .ok()
                .and_then(|p| p.clone())
                .unwrap_or_default(),
        ),
        (
            "protected-mode",
            if state
                .shared
                .protected_mode
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        ("timeout", "0".into()),
        ("hz", "10".into()),
    ]
}

/// A memory size as Redis's `memtoull` reads it: digits, then an optional unit (b; k, m, g
/// are powers of 1000; kb, mb, gb powers of 1024), case-insensitive.
fn parse_memory(arg: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(arg).ok()?.to_ascii_lowercase();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(multiplier)
}

async fn config_set(state: &Rc<ShardState>, cmd: &Command) -> Reply {
    for pair in cmd.args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        if name == "maxmemory" {
            let Some(bytes) = parse_memory(&pair[1]) else {
                return Reply::Error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer").into());
            };
            state
                .shared
                .maxmemory
                .store(bytes, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if name == "requirepass" {
            let password = String::from_utf8_lossy(&pair[1]).into_owned();
            if let Ok(mut p) = state.shared.requirepass.write() {
                *p = (!password.is_empty()).then_some(password);
            }
            continue;
        }
        if name == "protected-mode" {
            let on = if eq(&pair[1], "yes") {
                true
            } else if eq(&pair[1], "no") {
                false
            } else {
                return Reply::Error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be 'yes' or 'no'").into());
            };
            state
                .shared
                .protected_mode
                .store(on, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if name == "maxmemory-policy" {
            if !eq(&pair[1], "noeviction") {
                return Reply::Error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - helios supports only the noeviction policy").into());
            }
            continue;
        }
        if name != "appendfsync" {
            if config_params(state).iter().any(|(known, _)| *known == name) {
                return Reply::Error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config").into());
            }
            return Reply::Error(
                format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
                    .into(),
            );
        }
        let durability = if eq(&pair[1], "always") {
            Durability::Sync
        } else if eq(&pair[1], "everysec") {
            Durability::Async
        } else {
            return Reply::Error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - argument(s) must be one of the following: always, everysec").into());
        };
        state.durability.set(durability);
        broadcast(state, || ShardReq::SetDurability(durability)).await;
    }
    Reply::Ok
}
