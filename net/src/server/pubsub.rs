//! Pub/sub: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE and PUBSUB
//! CHANNELS/NUMSUB/NUMPAT, across shards.
//!
//! A subscription is state of the connection, which lives on one shard: each shard keeps the
//! channels and patterns its own connections subscribe to ([`Registry`]). PUBLISH asks every
//! shard that has subscriptions (`Shared::subscriptions`) to deliver the message to its
//! subscribers and sums their counts; PUBSUB queries every shard and merges. A delivered
//! message waits in the subscriber's queue until its connection writes it (the connection
//! waits on input and on its queue at once). A subscriber whose queue passes
//! [`QUEUE_BYTES_MAX`] is disconnected, as Redis's `client-output-buffer-limit pubsub` does.
//!
//! In RESP2 a subscribed connection may only run (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING and QUIT
//! (PING answers `["pong", message]`); in RESP3 any command runs and messages come as push
//! frames.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};

use bytes::Bytes;
use indexmap::IndexSet;

use super::conn::Session;
use super::shard::{ShardReq, ShardResp, ShardState};
use crate::commands::glob_match;
use crate::resp::Protocol;
use crate::{Command, Reply};

/// A subscriber's undelivered messages may take this many bytes; past it, the connection is
/// closed (Redis's default pubsub hard limit).
pub const QUEUE_BYTES_MAX: usize = 32 << 20;

/// One connection's subscriptions and undelivered messages.
#[derive(Default)]
pub struct Subscriber {
    pub channels: RefCell<IndexSet<Bytes>>,
    pub patterns: RefCell<IndexSet<Bytes>>,
    queue: RefCell<std::collections::VecDeque<Reply>>,
    queued_bytes: Cell<usize>,
    overflowed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Subscriber {
    /// Channels plus patterns: the count Redis replies after each (un)subscription.
    pub fn count(&self) -> usize {
        self.channels.borrow().len() + self.patterns.borrow().len()
    }

    fn deliver(&self, message: Reply, bytes: usize) {
        if self.overflowed.get() {
            return;
        }
        let queued = self.queued_bytes.get() + bytes;
        if queued > QUEUE_BYTES_MAX {
            self.overflowed.set(true);
            self.queue.borrow_mut().clear();
        } else {
            self.queued_bytes.set(queued);
            self.queue.borrow_mut().push_back(message);
        }
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until a message is queued (or the queue overflowed).
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            if !self.queue.borrow().is_empty() || self.overflowed.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Takes every queued message; Err when the queue overflowed (close the connection).
    pub fn drain(&self) -> Result<Vec<Reply>, ()> {
        if self.overflowed.get() {
            return Err(());
        }
        self.queued_bytes.set(0);
        Ok(self.queue.borrow_mut().drain(..).collect())
    }
}

/// The subscriptions of one shard's connections.
#[derive(Default)]
pub struct Registry {
    channels: HashMap<Bytes, Vec<(u64, Rc<Subscriber>)>>,
    patterns: HashMap<Bytes, Vec<(u64, Rc<Subscriber>)>>,
}

impl Registry {
    fn add(
        map: &mut HashMap<Bytes, Vec<(u64, Rc<Subscriber>)>>,
        name: &Bytes,
        id: u64,
        s: &Rc<Subscriber>,
    ) {
        let subs = map.entry(name.clone()).or_default();
        if !subs.iter().any(|(i, _)| *i == id) {
            subs.push((id, s.clone()));
        }
    }

    fn remove(map: &mut HashMap<Bytes, Vec<(u64, Rc<Subscriber>)>>, name: &Bytes, id: u64) {
        if let Some(subs) = map.get_mut(name) {
            subs.retain(|(i, _)| *i != id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Delivers a message to this shard's subscribers; returns how many received it (a
    /// client matching by channel and by two patterns receives it three times, as in Redis).
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let bytes = channel.len() + message.len() + 32;
        let mut count = 0;
        if let Some(subs) = self.channels.get(channel) {
            for (_, s) in subs {
                s.deliver(
                    Reply::Push(vec![
                        bulk("message"),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(message.clone()),
                    ]),
                    bytes,
                );
                count += 1;
            }
        }
        for (pattern, subs) in &self.patterns {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for (_, s) in subs {
                s.deliver(
                    Reply::Push(vec![
                        bulk("pmessage"),
                        Reply::Bulk(pattern.clone()),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(message.clone()),
                    ]),
                    bytes + pattern.len(),
                );
                count += 1;
            }
        }
        count
    }

    fn subscriptions(&self) -> usize {
        self.channels.values().map(Vec::len).sum::<usize>()
            + self.patterns.values().map(Vec::len).sum::<usize>()
    }

    /// This shard's part of a PUBSUB query.
    pub fn query(&self, query: &PubsubQuery) -> PubsubAnswer {
        match query {
            PubsubQuery::Channels(pattern) => PubsubAnswer::Names(
                self.channels
                    .keys()
                    .filter(|c| pattern.as_ref().is_none_or(|p| glob_match(p, c, false)))
                    .cloned()
                    .collect(),
            ),
            PubsubQuery::NumSub(channels) => PubsubAnswer::Counts(
                channels
                    .iter()
                    .map(|c| self.channels.get(c).map_or(0, Vec::len) as i64)
                    .collect(),
            ),
            PubsubQuery::Patterns => PubsubAnswer::Names(self.patterns.keys().cloned().collect()),
        }
    }
}

/// What PUBSUB asks each shard.
#[derive(Clone, Debug)]
pub enum PubsubQuery {
    Channels(Option<Bytes>),
    NumSub(Vec<Bytes>),
    Patterns,
}

#[derive(Debug)]
pub enum PubsubAnswer {
    Names(BTreeSet<Bytes>),
    Counts(Vec<i64>),
}

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

/// Keeps `Shared::subscriptions` for this shard in step with its registry.
fn publish_count(state: &ShardState) {
    let n = state.pubsub.borrow().subscriptions();
    state.shared.subscriptions[state.id].store(n, Ordering::Relaxed);
}

/// Whether a RESP2 connection in subscribe mode may run `name`.
pub(super) fn allowed_in_subscribe_mode(name: &str) -> bool {
    matches!(
        name,
        "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
    )
}

/// Redis's refusal of other commands in RESP2 subscribe mode.
pub(super) fn refused_in_subscribe_mode(cmd: &Command) -> Reply {
    Reply::Error(
        format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.name_lower()
        )
        .into(),
    )
}

/// Runs a pub/sub command for the session's connection.
pub(super) async fn run(state: &Rc<ShardState>, session: &mut Session, cmd: &Command) -> Reply {
    let name = cmd.name_lower();
    match name.as_ref() {
        "subscribe" => subscribe(state, session, &cmd.args[1..], false),
        "psubscribe" => subscribe(state, session, &cmd.args[1..], true),
        "unsubscribe" => unsubscribe(state, session, &cmd.args[1..], false),
        "punsubscribe" => unsubscribe(state, session, &cmd.args[1..], true),
        "publish" => Reply::Int(publish(state, &cmd.args[1], &cmd.args[2]).await),
        "pubsub" => pubsub(state, cmd).await,
        _ => Reply::error("ERR internal error: not a pub/sub command"),
    }
}

fn subscribe(state: &ShardState, session: &Session, names: &[Bytes], pattern: bool) -> Reply {
    let id = session.info.borrow().id;
    let sub = &session.subscriber;
    let kind = if pattern { "psubscribe" } else { "subscribe" };
    let mut replies = Vec::with_capacity(names.len());
    {
        let mut registry = state.pubsub.borrow_mut();
        for name in names {
            let (mine, map) = if pattern {
                (&sub.patterns, &mut registry.patterns)
            } else {
                (&sub.channels, &mut registry.channels)
            };
            mine.borrow_mut().insert(name.clone());
            Registry::add(map, name, id, sub);
            replies.push(Reply::Push(vec![
                bulk(kind),
                Reply::Bulk(name.clone()),
                Reply::Int(sub.count() as i64),
            ]));
        }
    }
    publish_count(state);
    Reply::Many(replies)
}

fn unsubscribe(state: &ShardState, session: &Session, names: &[Bytes], pattern: bool) -> Reply {
    let id = session.info.borrow().id;
    let sub = &session.subscriber;
    let kind = if pattern {
        "punsubscribe"
    } else {
        "unsubscribe"
    };
    let mine = if pattern {
        &sub.patterns
    } else {
        &sub.channels
    };
    let names: Vec<Bytes> = if names.is_empty() {
        mine.borrow().iter().cloned().collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        return Reply::Many(vec![Reply::Push(vec![
            bulk(kind),
            Reply::Null,
            Reply::Int(sub.count() as i64),
        ])]);
    }
    let mut replies = Vec::with_capacity(names.len());
    {
        let mut registry = state.pubsub.borrow_mut();
        for name in &names {
            mine.borrow_mut().shift_remove(name);
            let map = if pattern {
                &mut registry.patterns
            } else {
                &mut registry.channels
            };
            Registry::remove(map, name, id);
            replies.push(Reply::Push(vec![
                bulk(kind),
                Reply::Bulk(name.clone()),
                Reply::Int(sub.count() as i64),
            ]));
        }
    }
    publish_count(state);
    Reply::Many(replies)
}

/// Forgets every subscription of a closed connection.
pub(super) fn forget_subscriber(state: &ShardState, id: u64, subscriber: &Subscriber) {
    if subscriber.count() == 0 {
        return;
    }
    {
        let mut registry = state.pubsub.borrow_mut();
        for name in subscriber.channels.borrow().iter() {
            Registry::remove(&mut registry.channels, name, id);
        }
        for name in subscriber.patterns.borrow().iter() {
            Registry::remove(&mut registry.patterns, name, id);
        }
    }
    publish_count(state);
}

/// Delivers on every shard with subscriptions; returns how many clients received it.
async fn publish(state: &Rc<ShardState>, channel: &Bytes, message: &Bytes) -> i64 {
    let mut total = 0;
    for shard in 0..state.shared.subscriptions.len() {
        if state.shared.subscriptions[shard].load(Ordering::Relaxed) == 0 {
            continue;
        }
        if shard == state.id {
            total += state.pubsub.borrow().publish(channel, message);
            continue;
        }
        let req = ShardReq::Publish {
            channel: channel.clone(),
            message: message.clone(),
        };
        match state.mesh.call(shard, req).await {
            Ok(ShardResp::Published(n)) => total += n,
            Ok(_) => tracing::warn!(shard, "PUBLISH: unexpected shard reply"),
            Err(error) => tracing::warn!(shard, %error, "PUBLISH: shard unreachable"),
        }
    }
    total
}

/// Every shard's answer to a PUBSUB query.
async fn ask_all(state: &Rc<ShardState>, query: PubsubQuery) -> Vec<PubsubAnswer> {
    let mut answers = Vec::new();
    for shard in 0..state.shared.subscriptions.len() {
        if shard == state.id {
            answers.push(state.pubsub.borrow().query(&query));
            continue;
        }
        match state
            .mesh
            .call(shard, ShardReq::Pubsub(query.clone()))
            .await
        {
            Ok(ShardResp::Pubsub(answer)) => answers.push(answer),
            Ok(_) => tracing::warn!(shard, "PUBSUB: unexpected shard reply"),
            Err(error) => tracing::warn!(shard, %error, "PUBSUB: shard unreachable"),
        }
    }
    answers
}

fn names(answers: Vec<PubsubAnswer>) -> BTreeSet<Bytes> {
    let mut all = BTreeSet::new();
    for a in answers {
        if let PubsubAnswer::Names(n) = a {
            all.extend(n);
        }
    }
    all
}

async fn pubsub(state: &Rc<ShardState>, cmd: &Command) -> Reply {
    let sub = String::from_utf8_lossy(&cmd.args[1]).to_ascii_lowercase();
    let argc = cmd.args.len();
    match sub.as_str() {
        "channels" if argc <= 3 => {
            let query = PubsubQuery::Channels(cmd.args.get(2).cloned());
            Reply::Array(
                names(ask_all(state, query).await)
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            )
        }
        "numsub" => {
            let channels = cmd.args[2..].to_vec();
            let mut counts = vec![0i64; channels.len()];
            for answer in ask_all(state, PubsubQuery::NumSub(channels.clone())).await {
                if let PubsubAnswer::Counts(c) = answer {
                    for (total, n) in counts.iter_mut().zip(c) {
                        *total += n;
                    }
                }
            }
            Reply::Array(
                channels
                    .into_iter()
                    .zip(counts)
                    .flat_map(|(c, n)| [Reply::Bulk(c), Reply::Int(n)])
                    .collect(),
            )
        }
        "numpat" if argc == 2 => {
            Reply::Int(names(ask_all(state, PubsubQuery::Patterns).await).len() as i64)
        }
        "help" if argc == 2 => Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|l| Reply::Status((*l).into()))
            .collect(),
        ),
        "channels" | "numpat" | "help" => {
            Reply::Error(format!("ERR wrong number of arguments for 'pubsub|{sub}' command").into())
        }
        _ => Reply::Error(
            format!(
                "ERR unknown subcommand '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&cmd.args[1])
            )
            .into(),
        ),
    }
}

/// PING in RESP2 subscribe mode: `["pong", message]`.
pub(super) fn ping_in_subscribe_mode(cmd: &Command) -> Reply {
    Reply::Array(vec![
        bulk("pong"),
        Reply::Bulk(cmd.args.get(1).cloned().unwrap_or_default()),
    ])
}

/// Whether the connection is in RESP2 subscribe mode.
pub(super) fn in_subscribe_mode(session: &Session) -> bool {
    session.proto == Protocol::Resp2 && session.subscriber.count() > 0
}
