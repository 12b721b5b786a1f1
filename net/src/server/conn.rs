//! One client connection: read, parse the whole buffer, run the batch grouped by shard, wait for
//! durability once, encode the replies in order, send them with one write.

use super::admin;
use super::blocking;
use super::pubsub;
use super::shard::{ShardReq, ShardResp, ShardState};
use crate::commands::{self, CommandKind};
use crate::resp::{self, Protocol};
use crate::{Command, Reply};
use bytes::{Bytes, BytesMut};
use helios_shard::glommio_rt::unix_ms;
use helios_shard::ring::{Connection, ReadOutcome, INBOX_BYTES_MAX};
use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// Requests parsed per batch at most; the rest of the buffer waits for the next round, so one
/// client's huge pipeline cannot starve the shard.
const BATCH_COMMANDS_MAX: usize = 1024;

/// What CLIENT LIST/INFO show, and what HELLO/SELECT/CLIENT SETNAME change.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub db: u8,
    pub proto: Protocol,
    pub created_ms: u64,
    pub last_interaction_ms: u64,
    pub last_command: std::borrow::Cow<'static, str>,
}

/// Per-connection state seen by the command code.
pub struct Session {
    pub info: Rc<RefCell<ClientInfo>>,
    pub db: u8,
    pub proto: Protocol,
    pub close_after_reply: bool,
    /// Authenticated as the default user (by AUTH or HELLO AUTH, or because no password
    /// was set when the connection came). A password set later does not undo it (as Redis).
    pub authenticated: bool,
    /// Commands queued since MULTI (None: not in a transaction).
    pub multi: Option<Vec<Command>>,
    /// A command was refused while queueing: EXEC will abort (EXECABORT).
    pub multi_dirty: bool,
    /// WATCHed keys with the version each had then (db, key, version).
    pub watched: Vec<(u8, bytes::Bytes, Option<u64>)>,
    /// Pub/sub channels and patterns, and the messages not yet written.
    pub subscriber: Rc<pubsub::Subscriber>,
}

pub fn spawn_connection(state: &Rc<ShardState>, fd: RawFd) {
    let connection = match state.ring.register(fd, helios_shard::ring::Sends::Inline) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(shard = state.id, %error, "connection refused");
            state.shared.connections_per_shard[state.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    let id = state.shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    state
        .shared
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    state
        .connections_received
        .set(state.connections_received.get() + 1);
    let now_ms = unix_ms();
    let info = Rc::new(RefCell::new(ClientInfo {
        id,
        addr: connection
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        laddr: connection
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        name: None,
        lib_name: None,
        lib_ver: None,
        db: 0,
        proto: Protocol::Resp2,
        created_ms: now_ms,
        last_interaction_ms: now_ms,
        last_command: "NULL".into(),
    }));
    state.clients.borrow_mut().insert(id, info.clone());
    let state = state.clone();
    glommio::spawn_local(async move {
        let session = Session {
            info,
            db: 0,
            proto: Protocol::Resp2,
            close_after_reply: false,
            authenticated: !state.shared.password_required(),
            multi: None,
            multi_dirty: false,
            watched: Vec::new(),
            subscriber: Default::default(),
        };
        let subscriber = session.subscriber.clone();
        serve(&state, &connection, session).await;
        pubsub::forget_subscriber(&state, id, &subscriber);
        state.clients.borrow_mut().remove(&id);
        state.shared.connections_per_shard[state.id].fetch_sub(1, Ordering::Relaxed);
        drop(connection);
    })
    .detach();
}

/// Redis's refusal of a non-loopback client in protected mode (no password set).
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether protected mode refuses this client: it is on, no password is set, and the
/// peer is not on the loopback interface.
fn protected_mode_refuses(state: &ShardState, connection: &Connection) -> bool {
    state.shared.protected_mode.load(Ordering::Relaxed)
        && !state.shared.password_required()
        && connection
            .peer_addr()
            .is_some_and(|addr| !addr.ip().is_loopback())
}

async fn serve(state: &Rc<ShardState>, connection: &Connection, mut session: Session) {
    if protected_mode_refuses(state, connection) {
        let _ = connection.write_all(PROTECTED_MODE_DENIED.as_bytes()).await;
        return;
    }
    let limits = resp::ParseLimits::default();
    let mut buf = BytesMut::new();
    let mut ranges = Vec::new();
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let subscriber = session.subscriber.clone();
    loop {
        let input = async { Some(connection.read(&mut buf).await) };
        let message = async {
            subscriber.ready().await;
            None
        };
        match futures_lite::future::or(input, message).await {
            Some(ReadOutcome::Eof) => return,
            Some(ReadOutcome::Data) => {}
            None => {
                if write_messages(&session, connection, &mut out)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        }
        loop {
            let protocol_error = parse_batch(&mut buf, &limits, &mut ranges, &mut batch);
            if batch.is_empty() && protocol_error.is_none() {
                break;
            }
            out.clear();
            run_batch(
                state,
                &mut session,
                std::mem::take(&mut batch),
                &mut out,
                connection,
            )
            .await;
            if let Some(error) = &protocol_error {
                resp::encode(&Reply::error(error.to_string()), session.proto, &mut out);
            }
            if connection.write_reply(&out).await.is_err() {
                return;
            }
            if write_messages(&session, connection, &mut out)
                .await
                .is_err()
            {
                return;
            }
            if protocol_error.is_some() || session.close_after_reply {
                return;
            }
        }
        if buf.len() > INBOX_BYTES_MAX {
            out.clear();
            resp::encode(
                &Reply::error("ERR Protocol error: query buffer limit exceeded"),
                session.proto,
                &mut out,
            );
            let _ = connection.write_all(&out).await;
            return;
        }
    }
}

/// Writes the pub/sub messages queued for this connection; Err when the connection must
/// close (write failed, or its queue overflowed).
async fn write_messages(
    session: &Session,
    connection: &Connection,
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let messages = session.subscriber.drain()?;
    if messages.is_empty() {
        return Ok(());
    }
    out.clear();
    for message in &messages {
        resp::encode(message, session.proto, out);
    }
    connection.write_all(out).await.map_err(|_| ())
}

/// Parses up to BATCH_COMMANDS_MAX complete requests off the front of `buf`.
fn parse_batch(
    buf: &mut BytesMut,
    limits: &resp::ParseLimits,
    ranges: &mut Vec<resp::Arg>,
    batch: &mut Vec<Command>,
) -> Option<resp::ProtocolError> {
    while batch.len() < BATCH_COMMANDS_MAX {
        match resp::parse_request(buf, limits, ranges) {
            Ok(Some(consumed)) => {
                if let Some(cmd) = resp::take_command(buf, consumed, ranges) {
                    batch.push(cmd);
                }
            }
            Ok(None) => return None,
            Err(error) => return Some(error),
        }
    }
    None
}

/// Commands that act on a transaction itself, run even between MULTI and EXEC.
fn controls_transaction(cmd: &Command) -> bool {
    ["multi", "exec", "discard", "quit", "watch"]
        .iter()
        .any(|n| cmd.name().eq_ignore_ascii_case(n.as_bytes()))
}

/// Queues a command after MULTI: `+QUEUED`, or the error it would get now (an unknown
/// command, a wrong argument count), which makes EXEC abort, as in Redis.
fn queue_in_transaction(session: &mut Session, cmd: Command) -> Reply {
    let refused = match cmd.spec() {
        None => Some(commands::unknown_command(&cmd)),
        Some(spec) if !spec.arity_ok(cmd.arg_count()) => Some(Reply::wrong_arity(spec.name)),
        Some(_) => commands::subcommand_error(&cmd.args),
    };
    if let Some(error) = refused {
        session.multi_dirty = true;
        return error;
    }
    session
        .multi
        .as_mut()
        .expect("queueing inside MULTI")
        .push(cmd);
    Reply::Status(std::borrow::Cow::Borrowed("QUEUED"))
}

/// EXEC: runs the queued commands in order under intent locks on every key they name
/// (taken shard by shard in ascending order, as a multi-key command's), so no other client
/// sees or changes those keys in between: atomic and isolated across shards, as Redis's
/// MULTI/EXEC. The keys are locked in the database current at EXEC; a SELECT inside the
/// transaction moves later commands to another database without locking its keys.
pub(super) async fn exec_transaction(state: &Rc<ShardState>, session: &mut Session) -> Reply {
    let Some(queue) = session.multi.take() else {
        return Reply::error("ERR EXEC without MULTI");
    };
    let watched = std::mem::take(&mut session.watched);
    if std::mem::take(&mut session.multi_dirty) {
        return Reply::error("EXECABORT Transaction discarded because of previous errors.");
    }
    let mut keys_by_shard: std::collections::BTreeMap<usize, Vec<bytes::Bytes>> =
        Default::default();
    for cmd in &queue {
        if let Some(spec) = cmd.spec() {
            for key in admin::keys_of(spec, cmd) {
                let keys = keys_by_shard.entry(state.owner_of(key)).or_default();
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
    // Watched keys are locked too, so their check and the commands are one step.
    for (_, key, _) in &watched {
        let keys = keys_by_shard.entry(state.owner_of(key)).or_default();
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let txid = state.shared.next_txid.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = admin::lock_all(state, txid, session.db, &keys_by_shard).await {
        return Reply::error(format!("ERR {error}"));
    }
    match admin::watched_unchanged(state, &watched).await {
        Ok(true) => {}
        Ok(false) => {
            admin::unlock_all(state, txid, keys_by_shard.keys().copied()).await;
            return Reply::NullArray;
        }
        Err(error) => {
            admin::unlock_all(state, txid, keys_by_shard.keys().copied()).await;
            return Reply::error(format!("ERR {error}"));
        }
    }
    let mut replies = Vec::with_capacity(queue.len());
    for cmd in &queue {
        replies.push(run_in_transaction(state, session, cmd, txid).await);
    }
    admin::unlock_all(state, txid, keys_by_shard.keys().copied()).await;
    Reply::Array(replies)
}

/// One queued command, with the transaction's locks already held under `txid`.
async fn run_in_transaction(
    state: &Rc<ShardState>,
    session: &mut Session,
    cmd: &Command,
    txid: u64,
) -> Reply {
    let spec = cmd.spec().expect("checked when queued");
    match route(state, cmd) {
        Route::Reject(reply) => reply,
        Route::Shard(shard) => {
            let work = vec![(shard, vec![(session.db, cmd.clone())])];
            match admin::exec_on(state, work, txid).await.into_iter().next() {
                Some(Ok(mut replies)) if replies.len() == 1 => replies.remove(0),
                Some(Err(error)) => Reply::error(format!("MISCONF {error}")),
                _ => Reply::error("ERR internal error: shard reply count"),
            }
        }
        Route::Special if matches!(spec.kind, commands::CommandKind::MultiKey { .. }) => {
            admin::run_locked(state, session.db, spec, cmd, txid).await
        }
        Route::Special
            if ["dbsize", "flushdb", "flushall", "keys"]
                .iter()
                .any(|n| cmd.name().eq_ignore_ascii_case(n.as_bytes())) =>
        {
            admin::all_shards(state, session, cmd, txid).await
        }
        Route::Special if super::sort::is_sort(cmd) => {
            super::sort::run(state, session, cmd, txid).await
        }
        // Boxed: the blocking commands run their twins through here.
        Route::Special if blocking::is_blocking(cmd) => {
            Box::pin(blocking::run(state, session, cmd, txid, None)).await
        }
        // Boxed: run_special runs EXEC, which runs this (EXEC itself is never queued).
        Route::Special => Box::pin(admin::run_special(state, session, cmd)).await,
    }
}

/// Runs one command as a client's would run: under `txid`'s locks when given (EXEC),
/// else by its usual route (one shard, or several under fresh intent locks).
pub(super) async fn run_one(
    state: &Rc<ShardState>,
    session: &mut Session,
    cmd: &Command,
    txid: u64,
) -> Reply {
    if txid != 0 {
        return Box::pin(run_in_transaction(state, session, cmd, txid)).await;
    }
    match route(state, cmd) {
        Route::Reject(reply) => reply,
        Route::Shard(shard) => {
            let work = vec![(shard, vec![(session.db, cmd.clone())])];
            match admin::exec_on(state, work, 0).await.into_iter().next() {
                Some(Ok(mut replies)) if replies.len() == 1 => replies.remove(0),
                Some(Err(error)) => Reply::error(format!("MISCONF {error}")),
                _ => Reply::error("ERR internal error: shard reply count"),
            }
        }
        Route::Special => Box::pin(admin::run_special(state, session, cmd)).await,
    }
}

/// Where one command runs.
enum Route {
    /// Handled by the connection itself (or a fan-out it coordinates); a barrier in the batch.
    Special,
    /// Every key is owned by this shard.
    Shard(usize),
    /// An error decided before routing (unknown command, wrong arity).
    Reject(Reply),
}

fn route(state: &ShardState, cmd: &Command) -> Route {
    let Some(spec) = cmd.spec() else {
        return Route::Reject(commands::unknown_command(cmd));
    };
    let argc = cmd.arg_count() as i32;
    if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
        return Route::Reject(Reply::wrong_arity(spec.name));
    }
    match spec.kind {
        CommandKind::Connection | CommandKind::AllShards { .. } => Route::Special,
        CommandKind::SingleKey | CommandKind::MultiKey { .. } => {
            match single_owner(state, spec, cmd) {
                Some(shard) => Route::Shard(shard),
                None => Route::Special,
            }
        }
    }
}

/// The shard owning every key of `cmd`, or None when they are spread over several.
fn single_owner(state: &ShardState, spec: &commands::CommandSpec, cmd: &Command) -> Option<usize> {
    let mut owner = None;
    for key in admin::keys_of(spec, cmd) {
        let shard = state.owner_of(key);
        match owner {
            None => owner = Some(shard),
            Some(o) if o != shard => return None,
            Some(_) => {}
        }
    }
    // A keyed command with no key (impossible after the arity check) runs locally and errors there.
    Some(owner.unwrap_or(state.id))
}

/// Commands queued for shards between two barriers.
struct Pending {
    /// Per shard: (position in the batch, db, command).
    per_shard: Vec<Vec<(usize, u8, Command)>>,
    count: usize,
}

async fn run_batch(
    state: &Rc<ShardState>,
    session: &mut Session,
    batch: Vec<Command>,
    out: &mut Vec<u8>,
    connection: &Connection,
) {
    let n = batch.len();
    let mut replies: Vec<Option<Reply>> = vec![None; n];
    let mut pending = Pending {
        per_shard: vec![Vec::new(); state.shared.map.shard_count()],
        count: 0,
    };
    let mut lsn = 0;
    let mut encoded = 0;
    let last_name = batch.last().map(Command::name_lower);
    // Commands after a QUIT in the same pipeline are neither run nor answered, as in Redis.
    let mut answered = n;
    for (index, cmd) in batch.into_iter().enumerate() {
        if !session.authenticated
            && state.shared.password_required()
            && !admin::runs_unauthenticated(&cmd)
        {
            replies[index] = Some(Reply::error("NOAUTH Authentication required."));
            continue;
        }
        if pubsub::in_subscribe_mode(session) {
            let name = cmd.name_lower();
            if !pubsub::allowed_in_subscribe_mode(&name) {
                replies[index] = Some(pubsub::refused_in_subscribe_mode(&cmd));
                continue;
            }
            if name == "ping" && cmd.args.len() <= 2 {
                replies[index] = Some(pubsub::ping_in_subscribe_mode(&cmd));
                continue;
            }
        }
        if session.multi.is_some() && !controls_transaction(&cmd) {
            replies[index] = Some(queue_in_transaction(session, cmd));
            continue;
        }
        if let Some(reply) = admin::answer_in_place(&cmd) {
            // No barrier: the reply depends on nothing the commands before it change.
            replies[index] = Some(reply);
            continue;
        }
        match route(state, &cmd) {
            Route::Reject(reply) => replies[index] = Some(reply),
            Route::Shard(shard) => {
                pending.per_shard[shard].push((index, session.db, cmd));
                pending.count += 1;
            }
            Route::Special => {
                lsn = lsn.max(flush(state, &mut pending, &mut replies).await);
                encode_ready(&mut replies, &mut encoded, index, session.proto, out);
                let reply = if blocking::is_blocking(&cmd) {
                    blocking::run(state, session, &cmd, 0, Some(connection)).await
                } else {
                    admin::run_special(state, session, &cmd).await
                };
                lsn = lsn.max(state.wal().last_lsn());
                resp::encode(&reply, session.proto, out);
                encoded = index + 1;
                if session.close_after_reply {
                    answered = encoded;
                    break;
                }
            }
        }
    }
    lsn = lsn.max(flush(state, &mut pending, &mut replies).await);
    encode_ready(&mut replies, &mut encoded, answered, session.proto, out);
    if let Err(error) = state.wait_durable(lsn).await {
        out.clear();
        for _ in 0..n {
            resp::encode(
                &Reply::error(format!("MISCONF WAL sync failed: {error}")),
                session.proto,
                out,
            );
        }
    }
    let mut info = session.info.borrow_mut();
    info.last_interaction_ms = unix_ms();
    if let Some(name) = last_name {
        info.last_command = name;
    }
}

/// Encodes replies[from..to] (all present by now) in order.
fn encode_ready(
    replies: &mut [Option<Reply>],
    encoded: &mut usize,
    to: usize,
    proto: Protocol,
    out: &mut Vec<u8>,
) {
    for reply in &mut replies[*encoded..to] {
        let reply = reply.take().expect("every reply before a barrier is ready");
        resp::encode(&reply, proto, out);
    }
    *encoded = to;
}

/// Sends every shard its queued commands (one message per shard), runs our own inline, and
/// collects the replies. Returns the local WAL position the replies depend on.
async fn flush(
    state: &Rc<ShardState>,
    pending: &mut Pending,
    replies: &mut [Option<Reply>],
) -> u64 {
    if pending.count == 0 {
        return 0;
    }
    pending.count = 0;
    let mut calls = Vec::new();
    for (shard, queued) in pending.per_shard.iter_mut().enumerate() {
        if shard == state.id || queued.is_empty() {
            continue;
        }
        let queued = std::mem::take(queued);
        let positions: Vec<usize> = queued.iter().map(|(index, _, _)| *index).collect();
        let cmds = queued.into_iter().map(|(_, db, cmd)| (db, cmd)).collect();
        let mesh = state.mesh.clone();
        calls.push((
            positions,
            glommio::spawn_local(async move {
                mesh.call(shard, ShardReq::Exec { txid: 0, cmds }).await
            }),
        ));
    }
    let local = std::mem::take(&mut pending.per_shard[state.id]);
    let mut lsn = 0;
    if !local.is_empty() {
        state
            .ready_to_exec(local.iter().map(|(_, db, cmd)| (*db, cmd)), 0)
            .await;
        let mut local_replies = Vec::with_capacity(local.len());
        lsn = state.exec_batch(
            local.iter().map(|(_, db, cmd)| (*db, cmd)),
            &mut local_replies,
        );
        for ((index, _, _), reply) in local.iter().zip(local_replies) {
            replies[*index] = Some(reply);
        }
    }
    for (positions, call) in calls {
        match call.await {
            Ok(ShardResp::Replies(shard_replies)) => {
                assert_eq!(
                    shard_replies.len(),
                    positions.len(),
                    "a shard answers every command it is sent"
                );
                for (index, reply) in positions.into_iter().zip(shard_replies) {
                    replies[index] = Some(reply);
                }
            }
            Ok(ShardResp::Error(error)) => {
                for index in positions {
                    replies[index] =
                        Some(Reply::error(format!("MISCONF WAL sync failed: {error}")));
                }
            }
            Ok(_) => unreachable!("Exec is answered with Replies or Error"),
            Err(gone) => {
                for index in positions {
                    replies[index] = Some(Reply::error(format!("ERR {gone}")));
                }
            }
        }
    }
    lsn
}

/// CLIENT LIST lines for this shard's connections.
pub fn client_list(state: &ShardState) -> String {
    let now_ms = unix_ms();
    let mut text = String::new();
    for info in state.clients.borrow().values() {
        text.push_str(&client_line(&info.borrow(), now_ms));
        text.push('\n');
    }
    text
}

pub fn client_line(info: &ClientInfo, now_ms: u64) -> String {
    let lossy = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        info.id,
        info.addr,
        info.laddr,
        lossy(&info.name),
        now_ms.saturating_sub(info.created_ms) / 1000,
        now_ms.saturating_sub(info.last_interaction_ms) / 1000,
        info.db,
        info.last_command,
        if info.proto == Protocol::Resp3 { 3 } else { 2 },
        lossy(&info.lib_name),
        lossy(&info.lib_ver),
    )
}
