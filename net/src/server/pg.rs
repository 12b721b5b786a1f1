//! The PostgreSQL front end: one connection's state machine over pgwire's message codec.
//!
//! pgwire's handler API wants `Send` futures and a tokio runtime; glommio sockets are `!Send`.
//! So only its message types and codec are used (`default-features = false`), driven by this
//! state machine on the shard's own socket ring, with no extra runtime or thread (see
//! ARCHITECTURE.md, "PostgreSQL front end").
//!
//! Supported: protocol 3.0 start-up (SSLRequest and GSSENCRequest answered `N`), `trust`
//! authentication, the ParameterStatus set clients expect, BackendKeyData, the simple query
//! protocol (several statements per message), the extended query protocol (Parse, Bind,
//! Describe, Execute with row limits and PortalSuspended, Close, Flush, Sync; named and unnamed
//! statements and portals; text and binary parameters and results), Terminate. Statements run
//! in `helios_sql` over the shards ([`ShardCluster`]).
//!
//! Replies are queued in `out` and written once the messages already received are handled
//! (one `send` for a whole pipelined Parse/Bind/Execute/Sync sequence), or earlier when a
//! large result fills `OUT_FLUSH_BYTES`.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use helios_shard::ring::{Connection, ReadOutcome};
use pgwire::messages::copy::{CopyData, CopyDone, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, NoticeResponse, ReadyForQuery, SslResponse,
    TransactionStatus,
};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, SslNegotiationMetaMessage,
};

use super::pgauth;
use super::shard::ShardState;
use super::sqlcluster::ShardCluster;
use helios_sql::pgbinary;

/// Format codes in Bind and RowDescription.
const FORMAT_TEXT: i16 = 0;
const FORMAT_BINARY: i16 = 1;
/// Queued replies past this size are written before the next row is encoded.
const OUT_FLUSH_BYTES: usize = 256 << 10;
/// Prepared statements and portals one connection may hold, each.
const STATEMENTS_PER_CONNECTION_MAX: usize = 10_000;
const PORTALS_PER_CONNECTION_MAX: usize = 10_000;
/// Parsed statements a connection keeps for reuse by query text (see [`ParseCache`]), and the
/// longest query text it keeps.
const PARSE_CACHE_ENTRIES_MAX: usize = 64;
const PARSE_CACHE_QUERY_BYTES_MAX: usize = 8 << 10;
/// The SQLSTATE of COPY FREEZE into a table its transaction did not create or truncate:
/// the one COPY FROM error PostgreSQL raises after copy-in has begun.
const COPY_FREEZE_REFUSED: &str = "55000";

/// Serves one PostgreSQL connection on `state`'s shard until the client leaves.
pub fn spawn_connection(state: &Rc<ShardState>, fd: std::os::fd::RawFd) {
    let connection = match state
        .ring
        .register(fd, helios_shard::ring::Sends::Offloaded)
    {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(shard = state.id, %error, "PostgreSQL connection refused");
            state.shared.connections_per_shard[state.id].fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    let id = state.shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    state
        .shared
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let state = state.clone();
    glommio::spawn_local(async move {
        let cluster = ShardCluster::new(state.clone());
        let mut conn = PgConn::new(backend_pid(state.id, id), cluster);
        conn.peer = peer_ip(fd);
        if let Err(error) = conn.serve(&connection).await {
            tracing::debug!(shard = state.id, %error, "PostgreSQL connection ended");
        }
        if let Err(error) = helios_sql::txn::connection_closed(&conn.cluster).await {
            tracing::warn!(shard = state.id, %error, "ending a closed connection's transaction failed");
        }
        state.pg_backends.borrow_mut().remove(&conn.pid);
        state.shared.connections_per_shard[state.id].fetch_sub(1, Ordering::Relaxed);
        drop(connection);
    })
    .detach();
}

/// The client's address (None when the socket has none, e.g. a Unix socket).
fn peer_ip(fd: std::os::fd::RawFd) -> Option<std::net::IpAddr> {
    // SAFETY: getpeername writes at most `len` bytes into the zeroed storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return None;
        }
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                let sin = &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    u32::from_be(sin.sin_addr.s_addr),
                )))
            }
            libc::AF_INET6 => {
                let sin6 =
                    &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                Some(std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                    sin6.sin6_addr.s6_addr,
                )))
            }
            _ => None,
        }
    }
}

/// The process id a client sees: the shard in the top byte, so that a CancelRequest arriving
/// on another core can be routed to the shard running the query.
fn backend_pid(shard: usize, client_id: u64) -> i32 {
    (((shard as u32 & 0x7f) << 24) | (client_id as u32 & 0x00ff_ffff)) as i32
}

enum Phase {
    /// Before the StartupMessage (SSL/GSS negotiation, or a CancelRequest).
    Startup,
    /// A configured user's password exchange (see `pgauth`).
    Authenticating(Box<PendingLogin>),
    Ready,
}

/// A login waiting for its password: the session to start once it is right.
struct PendingLogin {
    user: super::PgUser,
    session: helios_sql::Session,
    step: AuthStep,
}

enum AuthStep {
    Cleartext,
    Md5([u8; 4]),
    /// AuthenticationSASL sent; the SASLInitialResponse comes next.
    ScramFirst,
    /// AuthenticationSASLContinue sent; the SASLResponse comes next.
    ScramFinal(pgauth::ScramExchange),
}

/// Prepared statements or portals by name. The unnamed one ("") has a slot of its own: most
/// clients use only it (libpq's `PQexecParams`, pgbench `-M extended`), replacing it at every
/// statement, and a map lookup, insert and remove per message cost more than the rest of
/// handling the message.
struct NamedSlots<T> {
    unnamed: Option<T>,
    named: HashMap<String, T>,
}

impl<T> Default for NamedSlots<T> {
    fn default() -> Self {
        NamedSlots {
            unnamed: None,
            named: HashMap::new(),
        }
    }
}

impl<T> NamedSlots<T> {
    fn get(&self, name: &str) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: String, value: T) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else {
            self.named.insert(name, value);
        }
    }

    fn remove(&mut self, name: &str) -> Option<T> {
        if name.is_empty() {
            self.unnamed.take()
        } else {
            self.named.remove(name)
        }
    }

    fn len(&self) -> usize {
        self.named.len() + usize::from(self.unnamed.is_some())
    }

    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }
}

/// A parsed statement (Parse).
#[derive(Clone)]
struct Statement {
    prepared: Rc<helios_sql::Prepared>,
    /// A `DEALLOCATE`, run here rather than in `helios_sql`: the prepared statements it
    /// drops are this connection's.
    deallocate: Option<Deallocate>,
}

#[derive(Clone, Debug, PartialEq)]
enum Deallocate {
    All,
    Name(String),
}

/// A bound statement (Bind), with its result when it has run.
struct Portal {
    prepared: Rc<helios_sql::Prepared>,
    deallocate: Option<Deallocate>,
    params: Vec<Option<String>>,
    /// Result format per column (already expanded from Bind's codes).
    formats: Vec<i16>,
    /// After the first Execute of a row-returning statement: the rows not sent yet.
    pending: Option<PendingRows>,
    /// Ran to completion without returning rows: another Execute is refused (55000), as in
    /// PostgreSQL, rather than running the statement (an INSERT, say) a second time.
    done: bool,
}

struct PendingRows {
    rows: std::vec::IntoIter<Vec<Option<String>>>,
    columns: Vec<helios_sql::Column>,
    tag: String,
}

/// Statements this connection parsed recently, by query text: drivers send the same text in a
/// Parse before every execution (tokio-postgres `query_typed`, the unnamed statement of
/// libpq's `PQexecParams`, JDBC before its prepare threshold), and parsing plus describing it
/// costs more than running a point read. A statement is reused only while everything its
/// preparation read is unchanged: the declared parameter types, the catalog version, the
/// session's parameters (search_path, ...) and its transaction state (a failed transaction
/// refuses every Parse, so nothing is reused then); the database is fixed per connection. The
/// prepared statement is immutable but for its plan cache, which checks its own validity again.
#[derive(Default)]
struct ParseCache {
    entries: HashMap<String, Vec<CachedParse>>,
    len: usize,
}

struct CachedParse {
    validity: ParseValidity,
    statement: Statement,
}

/// What a cached parse was made under (see [`ParseCache`]).
#[derive(Clone, PartialEq)]
struct ParseValidity {
    type_oids: Vec<u32>,
    session: ParseSession,
}

/// The session's part of [`ParseValidity`].
#[derive(Clone, Copy, PartialEq)]
struct ParseSession {
    catalog_version: u64,
    parameters_epoch: u64,
    transaction: helios_sql::TransactionState,
}

impl ParseCache {
    fn get(&self, query: &str, type_oids: &[u32], session: ParseSession) -> Option<Statement> {
        if session.transaction == helios_sql::TransactionState::Failed {
            return None;
        }
        self.entries.get(query)?.iter().find_map(|c| {
            (c.validity.session == session && c.validity.type_oids == type_oids)
                .then(|| c.statement.clone())
        })
    }

    fn insert(&mut self, query: &str, entry: CachedParse) {
        if query.len() > PARSE_CACHE_QUERY_BYTES_MAX
            || entry.validity.session.transaction == helios_sql::TransactionState::Failed
        {
            return;
        }
        if self.len >= PARSE_CACHE_ENTRIES_MAX {
            // Stale versions and one-off texts pile up otherwise; refilling costs one parse
            // per statement still in use.
            self.entries.clear();
            self.len = 0;
        }
        let versions = self.entries.entry(query.to_string()).or_default();
        // Older versions of the same text (another catalog or settings) will not match again.
        self.len -= versions.len();
        versions.retain(|c| {
            (&c.validity.type_oids, c.validity.session.transaction)
                != (
                    &entry.validity.type_oids,
                    entry.validity.session.transaction,
                )
        });
        versions.push(entry);
        self.len += versions.len();
    }
}

struct PgConn {
    pid: i32,
    secret: i32,
    phase: Phase,
    ctx: DecodeContext,
    session: Option<helios_sql::Session>,
    cluster: ShardCluster,
    statements: NamedSlots<Statement>,
    portals: NamedSlots<Portal>,
    parse_cache: ParseCache,
    /// After an error in an extended-query sequence: skip messages until Sync.
    discard_until_sync: bool,
    out: BytesMut,
    /// The client's address: users not in the config file are trusted only from loopback.
    peer: Option<std::net::IpAddr>,
    /// A COPY FROM STDIN in progress: CopyData goes to it until CopyDone or CopyFail.
    /// Boxed: it is taken out and put back for every CopyData message (one per row from
    /// pgbench), and moving the loader itself copied hundreds of bytes each time.
    copy_in: Option<Box<helios_sql::CopyLoader>>,
    /// The COPY in progress came through the extended protocol: when it ends, ReadyForQuery
    /// waits for the client's Sync, and an error discards messages up to it.
    copy_in_extended: bool,
    /// The extended protocol's implicit transaction: the Executes before one Sync.
    implicit: helios_sql::ImplicitBlock,
    /// Whether the message after the one being handled has arrived and is a Sync.
    sync_follows: bool,
}

#[derive(Debug, thiserror::Error)]
enum PgConnError {
    #[error("connection closed")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}

/// An error for the client: SQLSTATE and message.
type PgResult<T> = Result<T, helios_sql::SqlError>;

fn protocol_violation(message: impl Into<String>) -> helios_sql::SqlError {
    helios_sql::SqlError::new("08P01", message)
}

impl PgConn {
    fn new(pid: i32, cluster: ShardCluster) -> PgConn {
        PgConn {
            peer: None,
            pid,
            secret: rand_secret(pid),
            phase: Phase::Startup,
            ctx: DecodeContext::default(),
            session: None,
            cluster,
            statements: NamedSlots::default(),
            portals: NamedSlots::default(),
            parse_cache: ParseCache::default(),
            discard_until_sync: false,
            out: BytesMut::new(),
            copy_in: None,
            copy_in_extended: false,
            implicit: helios_sql::ImplicitBlock::default(),
            sync_follows: false,
        }
    }

    async fn serve(&mut self, connection: &Connection) -> Result<(), PgConnError> {
        let mut buf = BytesMut::new();
        loop {
            loop {
                let message = match self.decode_next(&mut buf) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(reason) => {
                        self.error("08P01", &reason);
                        connection.write_all(&self.out).await?;
                        return Err(PgConnError::Protocol(reason));
                    }
                };
                // A Sync has one type byte; the frontend sends no other message with it.
                self.sync_follows = buf.first() == Some(&b'S');
                let keep_going = self.handle(message, connection).await?;
                if !keep_going {
                    connection.write_all(&self.out).await?;
                    return Ok(());
                }
            }
            if !self.out.is_empty() {
                connection.write_reply(&self.out).await?;
                self.out.clear();
            }
            let idle_ms = self
                .session
                .as_ref()
                .map_or(0, |s| s.idle_in_transaction_timeout_ms());
            let read = if idle_ms == 0 || self.copy_in.is_some() {
                connection.read(&mut buf).await
            } else {
                let read = std::pin::pin!(connection.read(&mut buf));
                let timer = std::pin::pin!(glommio::timer::sleep(
                    std::time::Duration::from_millis(idle_ms)
                ));
                match futures_util::future::select(read, timer).await {
                    futures_util::future::Either::Left((outcome, _)) => outcome,
                    futures_util::future::Either::Right(_) => {
                        // Its transaction ends undone when the connection closes (locks
                        // released), as PostgreSQL's does.
                        self.fatal(
                            "25P03",
                            "terminating connection due to idle-in-transaction timeout",
                        );
                        connection.write_all(&self.out).await?;
                        return Err(PgConnError::Closed);
                    }
                }
            };
            if let ReadOutcome::Eof = read {
                if let Some(loader) = self.copy_in.take() {
                    // A client gone in the middle of a COPY: what it loaded goes too.
                    loader.abort(&self.cluster).await;
                }
                return Err(PgConnError::Closed);
            }
        }
    }

    /// The next complete message in `buf`, or None until more bytes arrive; Err (a protocol
    /// violation, 08P01) ends the connection.
    ///
    /// pgwire's decoders read from the buffer they are given without checking the declared
    /// length: a Bind whose counts claim more than its body holds reads on into the next
    /// pipelined message, or panics (taking the shard's executor down) at the end of the
    /// buffer, and a length below 4 underflows. So, as PostgreSQL does ("invalid message
    /// length", "invalid message format"): a length below the header is refused, a message
    /// is cut out of `buf` by its length and decoded on its own, it must use exactly its
    /// bytes, and a panic in a decoder is caught.
    fn decode_next(&self, buf: &mut BytesMut) -> Result<Option<PgWireFrontendMessage>, String> {
        let decode = |buf: &mut BytesMut| match std::panic::catch_unwind(
            std::panic::AssertUnwindSafe(|| PgWireFrontendMessage::decode(buf, &self.ctx)),
        ) {
            Ok(result) => result.map_err(|e| format!("invalid message: {e}")),
            Err(_) => Err("invalid message format".to_string()),
        };
        if let Phase::Startup = self.phase {
            // No type byte; pgwire peeks at a startup packet without consuming it (SSL
            // negotiation), so it reads `buf` itself.
            if buf.len() >= 4 && i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) < 8 {
                return Err("invalid length of startup packet".to_string());
            }
            return decode(buf);
        }
        if buf.len() < 5 {
            return Ok(None);
        }
        let length = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if length < 4 {
            return Err("invalid message length".to_string());
        }
        let total = 1 + length as usize;
        if buf.len() < total {
            // pgwire refuses a length over the type's limit without waiting for the body.
            return decode(buf);
        }
        let mut frame = buf.split_to(total);
        if !frame_well_formed(&frame) {
            return Err("invalid message format".to_string());
        }
        match decode(&mut frame)? {
            Some(message) if frame.is_empty() => Ok(Some(message)),
            _ => Err("invalid message format".to_string()),
        }
    }

    /// Writes the queued replies if they have grown large (a big result streams out).
    async fn flush_if_large(&mut self, connection: &Connection) -> Result<(), PgConnError> {
        if self.out.len() >= OUT_FLUSH_BYTES {
            connection.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Handles one message, queueing the replies in `out`; false ends the connection.
    async fn handle(
        &mut self,
        message: PgWireFrontendMessage,
        connection: &Connection,
    ) -> Result<bool, PgConnError> {
        let message = match (&self.phase, message) {
            (Phase::Startup, PgWireFrontendMessage::SslNegotiation(negotiation)) => {
                match negotiation {
                    SslNegotiationMetaMessage::PostgresSsl(_) => {
                        self.send(PgWireBackendMessage::SslResponse(SslResponse::Refuse));
                    }
                    SslNegotiationMetaMessage::PostgresGss(_) => {
                        self.send(PgWireBackendMessage::GssEncResponse(
                            pgwire::messages::response::GssEncResponse::Refuse,
                        ));
                    }
                    _ => {}
                }
                // Whatever was negotiated, a StartupMessage or CancelRequest comes next.
                self.ctx.awaiting_frontend_ssl = false;
                return Ok(true);
            }
            (Phase::Startup, PgWireFrontendMessage::CancelRequest(cancel)) => {
                // PostgreSQL answers nothing and closes, whether or not the key matched.
                // The key arrives as 4 bytes (Bytes) or an i32, depending on the decoder.
                if let Ok(secret) = <[u8; 4]>::try_from(&cancel.secret_key.to_bytes()[..]) {
                    let secret = i32::from_be_bytes(secret);
                    forward_cancel(&self.cluster.state, cancel.pid, secret).await;
                }
                return Ok(false);
            }
            (Phase::Startup, PgWireFrontendMessage::Startup(startup)) => {
                return Ok(self.start(startup))
            }
            (Phase::Startup, _) => {
                self.fatal("08P01", "expected a startup message");
                return Ok(false);
            }
            (Phase::Authenticating(_), message) => return Ok(self.authenticate(message)),
            (Phase::Ready, message) => message,
        };
        if let Some(loader) = self.copy_in.take() {
            if let PgWireFrontendMessage::Terminate(_) = message {
                loader.abort(&self.cluster).await;
                return Ok(false);
            }
            self.copy_in = Some(loader);
            self.copy_in_message(message).await;
            return Ok(true);
        }
        match message {
            PgWireFrontendMessage::Query(query) => {
                self.discard_until_sync = false;
                // Executes not yet closed by a Sync commit first (PostgreSQL would take them
                // into the query's own transaction).
                if let Some(session) = self.session.as_mut() {
                    if let Err(error) = self.implicit.commit(session, &self.cluster).await {
                        self.sql_error(&error);
                        self.ready();
                        return Ok(true);
                    }
                }
                // A simple query ends the unnamed statement and portal.
                self.statements.remove("");
                self.portals.remove("");
                self.simple_query(&query.query, connection).await?;
                if self.copy_in.is_none() {
                    self.ready();
                }
            }
            PgWireFrontendMessage::Terminate(_) => return Ok(false),
            PgWireFrontendMessage::Sync(_) => {
                self.discard_until_sync = false;
                if let Some(session) = self.session.as_mut() {
                    if let Err(error) = self.implicit.commit(session, &self.cluster).await {
                        self.sql_error(&error);
                    }
                }
                self.ready();
            }
            PgWireFrontendMessage::Flush(_) => {}
            message if message.is_extended_query() => {
                if self.discard_until_sync {
                    return Ok(true);
                }
                if let Err(error) = self.extended(message, connection).await? {
                    self.sql_error(&error);
                    // Any error fails a transaction block, as in PostgreSQL: Parse, Bind and
                    // Describe errors too, not only those of the statement's execution; the
                    // implicit block of the Executes before a Sync ends rolled back.
                    if let Some(session) = self.session.as_mut() {
                        if self.implicit.is_open() {
                            self.implicit.abort(session, &self.cluster).await;
                        } else {
                            session.statement_failed();
                        }
                    }
                    self.discard_until_sync = true;
                }
            }
            PgWireFrontendMessage::CopyData(_)
            | PgWireFrontendMessage::CopyDone(_)
            | PgWireFrontendMessage::CopyFail(_) => {
                // No COPY is in progress: PostgreSQL ignores these.
            }
            _ => {
                self.error("08P01", "unexpected message for the connection's state");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A message while a COPY FROM STDIN is in progress (PostgreSQL's CopyGetData): data,
    /// its end, or its failure; Flush and Sync are ignored; anything else fails the COPY.
    async fn copy_in_message(&mut self, message: PgWireFrontendMessage) {
        let Some(mut loader) = self.copy_in.take() else {
            return;
        };
        let outcome = match message {
            PgWireFrontendMessage::CopyData(data) => {
                match loader.feed(&self.cluster, &data.data).await {
                    Ok(()) => {
                        self.copy_in = Some(loader);
                        return;
                    }
                    Err(error) => Err((error, Some(loader))),
                }
            }
            PgWireFrontendMessage::Flush(_) | PgWireFrontendMessage::Sync(_) => {
                self.copy_in = Some(loader);
                return;
            }
            PgWireFrontendMessage::CopyDone(_) => {
                let session = self.session.as_mut().expect("a session once ready");
                loader
                    .finish(session, &self.cluster)
                    .await
                    .map_err(|e| (e, None))
            }
            PgWireFrontendMessage::CopyFail(fail) => Err((
                helios_sql::SqlError::new(
                    "57014",
                    format!("COPY from stdin failed: {}", fail.message),
                ),
                Some(loader),
            )),
            other => Err((
                protocol_violation(format!(
                    "unexpected message during COPY from stdin: {}",
                    message_name(&other)
                )),
                Some(loader),
            )),
        };
        match outcome {
            Ok(done) => self.statement_done(done),
            Err((error, loader)) => {
                if let Some(loader) = loader {
                    loader.abort(&self.cluster).await;
                }
                self.sql_error(&error);
                if let Some(session) = self.session.as_mut() {
                    session.statement_failed();
                }
                if self.copy_in_extended {
                    self.discard_until_sync = true;
                }
            }
        }
        // The COPY is over; later CopyData, CopyDone and CopyFail are ignored. Through the
        // extended protocol, the client's Sync brings ReadyForQuery.
        if !self.copy_in_extended {
            self.ready();
        }
    }

    /// Starts a COPY FROM STDIN: CopyInResponse, then copy-in mode.
    fn begin_copy_in(&mut self, start: &helios_sql::CopyInStart, extended: bool) -> PgResult<()> {
        let session = self.session.as_ref().expect("a session once ready");
        let format = i8::from(start.binary());
        let response = PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
            format,
            start.column_count as i16,
            vec![i16::from(format); start.column_count],
        ));
        let loader = match helios_sql::copy_in_loader(session, &self.cluster, start) {
            Ok(loader) => loader,
            Err(error) if error.sqlstate == COPY_FREEZE_REFUSED => {
                // PostgreSQL checks FREEZE once copy-in has begun: the client gets
                // CopyInResponse, then the error, and the data it still sends is ignored
                // (psql reports the error at the data's end, not in it).
                self.send(response);
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        self.send(response);
        self.copy_in = Some(Box::new(loader));
        self.copy_in_extended = extended;
        Ok(())
    }

    /// A COPY TO STDOUT's replies: CopyOutResponse, a CopyData per row, CopyDone,
    /// CommandComplete.
    async fn send_copy_out(
        &mut self,
        column_count: usize,
        binary: bool,
        rows: Vec<Vec<u8>>,
        tag: String,
        connection: &Connection,
    ) -> Result<(), PgConnError> {
        let format = i8::from(binary);
        self.send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            column_count as i16,
            vec![i16::from(format); column_count],
        )));
        for row in rows {
            self.send(PgWireBackendMessage::CopyData(CopyData::new(row.into())));
            self.flush_if_large(connection).await?;
        }
        self.send(PgWireBackendMessage::CopyDone(CopyDone::new()));
        self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            tag,
        )));
        Ok(())
    }

    /// One extended-query message; an Err is sent as ErrorResponse and discards up to Sync.
    async fn extended(
        &mut self,
        message: PgWireFrontendMessage,
        connection: &Connection,
    ) -> Result<PgResult<()>, PgConnError> {
        Ok(match message {
            PgWireFrontendMessage::Parse(parse) => self.parse(parse),
            PgWireFrontendMessage::Bind(bind) => self.bind(bind),
            PgWireFrontendMessage::Describe(describe) => self.describe(describe),
            PgWireFrontendMessage::Execute(execute) => self.execute(execute, connection).await?,
            PgWireFrontendMessage::Close(close) => {
                self.close(close);
                Ok(())
            }
            _ => Err(protocol_violation("unexpected extended-query message")),
        })
    }

    fn parse(&mut self, parse: Parse) -> PgResult<()> {
        let name = parse.name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(helios_sql::SqlError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        if self.statements.len() >= STATEMENTS_PER_CONNECTION_MAX {
            return Err(helios_sql::SqlError::new(
                "54000",
                format!("more than {STATEMENTS_PER_CONNECTION_MAX} prepared statements"),
            ));
        }
        let session = self.session.as_ref().expect("a session once ready");
        let parse_session = ParseSession {
            catalog_version: helios_sql::Cluster::catalog(&self.cluster).version,
            parameters_epoch: session.parameters_epoch(),
            transaction: session.transaction_state(),
        };
        let cached = self
            .parse_cache
            .get(&parse.query, &parse.type_oids, parse_session);
        let statement = match cached {
            Some(statement) => statement,
            None => {
                let deallocate = deallocate_target(&parse.query);
                // A DEALLOCATE is described as the empty statement: no parameters, NoData.
                let sql = if deallocate.is_some() {
                    ""
                } else {
                    &parse.query
                };
                let prepared = helios_sql::prepare(session, &self.cluster, sql, &parse.type_oids)?;
                let statement = Statement {
                    prepared: Rc::new(prepared),
                    deallocate,
                };
                let validity = ParseValidity {
                    type_oids: parse.type_oids,
                    session: parse_session,
                };
                self.parse_cache.insert(
                    &parse.query,
                    CachedParse {
                        validity,
                        statement: statement.clone(),
                    },
                );
                statement
            }
        };
        self.statements.insert(name, statement);
        self.send(PgWireBackendMessage::ParseComplete(ParseComplete::new()));
        Ok(())
    }

    fn bind(&mut self, bind: Bind) -> PgResult<()> {
        let statement_name = bind.statement_name.unwrap_or_default();
        let Statement {
            prepared,
            deallocate,
        } = self
            .statements
            .get(&statement_name)
            .cloned()
            .ok_or_else(|| {
                helios_sql::SqlError::new(
                    "26000",
                    format!("prepared statement \"{statement_name}\" does not exist"),
                )
            })?;
        let portal_name = bind.portal_name.unwrap_or_default();
        if !portal_name.is_empty() && self.portals.contains_key(&portal_name) {
            return Err(helios_sql::SqlError::new(
                "42P03",
                format!("cursor \"{portal_name}\" already exists"),
            ));
        }
        if self.portals.len() >= PORTALS_PER_CONNECTION_MAX {
            return Err(helios_sql::SqlError::new(
                "54000",
                format!("more than {PORTALS_PER_CONNECTION_MAX} portals"),
            ));
        }
        let count = prepared.param_types.len();
        if bind.parameters.len() != count {
            return Err(protocol_violation(format!(
                "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires {count}",
                bind.parameters.len()
            )));
        }
        let param_formats = expand_formats(&bind.parameter_format_codes, count, "parameter")?;
        let mut params = Vec::with_capacity(count);
        for (i, value) in bind.parameters.iter().enumerate() {
            params.push(match value {
                None => None,
                Some(bytes) => Some(param_text(
                    prepared.param_types[i],
                    param_formats[i],
                    bytes,
                    i,
                )?),
            });
        }
        let columns = prepared.columns.as_deref().unwrap_or(&[]);
        let formats = expand_formats(&bind.result_column_format_codes, columns.len(), "result")?;
        for (column, &format) in columns.iter().zip(&formats) {
            if format == FORMAT_BINARY && !pgbinary::has_binary(column.type_oid) {
                return Err(helios_sql::SqlError::new(
                    "42883",
                    format!(
                        "no binary output function available for type with OID {}",
                        column.type_oid
                    ),
                ));
            }
        }
        self.portals.insert(
            portal_name,
            Portal {
                prepared,
                deallocate,
                params,
                formats,
                pending: None,
                done: false,
            },
        );
        self.send(PgWireBackendMessage::BindComplete(BindComplete::new()));
        Ok(())
    }

    fn describe(&mut self, describe: Describe) -> PgResult<()> {
        let name = describe.name.unwrap_or_default();
        match describe.target_type {
            b'S' => {
                let prepared = self
                    .statements
                    .get(&name)
                    .map(|s| s.prepared.clone())
                    .ok_or_else(|| {
                        helios_sql::SqlError::new(
                            "26000",
                            format!("prepared statement \"{name}\" does not exist"),
                        )
                    })?;
                self.send(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(prepared.param_types.clone()),
                ));
                match &prepared.columns {
                    Some(columns) => self.row_description(columns, &[]),
                    None => self.send(PgWireBackendMessage::NoData(NoData::new())),
                }
            }
            b'P' => {
                let Some(portal) = self.portals.get(&name) else {
                    // A SQL cursor (DECLARE) is a portal too.
                    let cursor = self.session.as_ref().and_then(|s| s.cursor_columns(&name));
                    let columns = cursor.ok_or_else(|| {
                        helios_sql::SqlError::new(
                            "34000",
                            format!("portal \"{name}\" does not exist"),
                        )
                    })?;
                    self.row_description(&columns, &[]);
                    return Ok(());
                };
                match &portal.prepared.columns {
                    Some(columns) => {
                        encode_row_description(&mut self.out, columns, &portal.formats)
                    }
                    None => self.send(PgWireBackendMessage::NoData(NoData::new())),
                }
            }
            other => {
                return Err(protocol_violation(format!(
                    "invalid DESCRIBE message subtype {other}"
                )))
            }
        }
        Ok(())
    }

    async fn execute(
        &mut self,
        execute: Execute,
        connection: &Connection,
    ) -> Result<PgResult<()>, PgConnError> {
        let name = execute.name.unwrap_or_default();
        let Some(mut portal) = self.portals.remove(&name) else {
            return Ok(Err(helios_sql::SqlError::new(
                "34000",
                format!("portal \"{name}\" does not exist"),
            )));
        };
        if portal.done {
            self.portals.insert(name.clone(), portal);
            return Ok(Err(helios_sql::SqlError::new(
                "55000",
                format!("portal \"{name}\" cannot be run"),
            )));
        }
        if let (None, Some(deallocate)) = (&portal.pending, &portal.deallocate) {
            let result = self.deallocate(deallocate);
            portal.done = result.is_ok();
            self.portals.insert(name, portal);
            return Ok(result);
        }
        if portal.pending.is_none() {
            let session = self.session.as_mut().expect("a session once ready");
            session.cancel_flag().reset();
            let timeout = arm_statement_timeout(session);
            let result = helios_sql::execute_prepared_in_block(
                session,
                &self.cluster,
                &portal.prepared,
                &portal.params,
                &mut self.implicit,
                !self.sync_follows,
            )
            .await;
            drop(timeout);
            match result {
                Err(error) => return Ok(Err(error)),
                Ok(helios_sql::StatementResult::CopyIn(start)) => {
                    let started = self.begin_copy_in(&start, true);
                    portal.done = true;
                    self.portals.insert(name, portal);
                    return Ok(started);
                }
                Ok(helios_sql::StatementResult::CopyOut {
                    column_count,
                    binary,
                    rows,
                    tag,
                }) => {
                    self.send_copy_out(column_count, binary, rows, tag, connection)
                        .await?;
                    portal.done = true;
                    self.portals.insert(name, portal);
                    return Ok(Ok(()));
                }
                Ok(helios_sql::StatementResult::Rows { columns, rows, tag }) => {
                    portal.pending = Some(PendingRows {
                        rows: rows.into_iter(),
                        columns,
                        tag,
                    });
                }
                Ok(other) => {
                    self.statement_done(other);
                    // A finished portal stays until closed or the transaction ends.
                    portal.done = true;
                    self.portals.insert(name, portal);
                    return Ok(Ok(()));
                }
            }
        }
        let limit = if execute.max_rows > 0 {
            execute.max_rows as u64
        } else {
            u64::MAX
        };
        let pending = portal.pending.as_mut().expect("rows pending");
        let mut sent_now = 0u64;
        while sent_now < limit {
            let Some(row) = pending.rows.next() else {
                break;
            };
            if let Err(error) = encode_row(&mut self.out, &row, &pending.columns, &portal.formats) {
                return Ok(Err(error));
            }
            sent_now += 1;
            self.flush_if_large(connection).await?;
        }
        if pending.rows.len() > 0 {
            self.send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()));
        } else {
            // As PostgreSQL's: "SELECT n" counts the rows this Execute returned (the last
            // batch of a portal read with a row limit; 0 once it is exhausted).
            let tag = if pending.tag.starts_with("SELECT") {
                format!("SELECT {sent_now}")
            } else {
                pending.tag.clone()
            };
            self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )));
        }
        self.portals.insert(name, portal);
        Ok(Ok(()))
    }

    /// `DISCARD ALL`: the session back to its state after start-up: parameters reset (each
    /// change reported), prepared statements and portals dropped.
    fn discard_all(&mut self) -> PgResult<()> {
        let session = self.session.as_mut().expect("a session once ready");
        if session.transaction_state() != helios_sql::TransactionState::Idle {
            return Err(helios_sql::SqlError::new(
                "25001",
                "DISCARD ALL cannot run inside a transaction block",
            ));
        }
        let changed = session.reset_all();
        self.parse_cache = ParseCache::default();
        self.statements.clear();
        self.portals.clear();
        for (name, value) in changed {
            self.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )));
        }
        self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            "DISCARD ALL".to_string(),
        )));
        Ok(())
    }

    /// `DEALLOCATE name` / `DEALLOCATE ALL`: drops this connection's prepared statements
    /// (ALL leaves the unnamed one, as PostgreSQL's).
    fn deallocate(&mut self, target: &Deallocate) -> PgResult<()> {
        let session = self.session.as_mut().expect("a session once ready");
        if session.transaction_state() == helios_sql::TransactionState::Failed {
            return Err(helios_sql::SqlError::new(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let tag = match target {
            Deallocate::All => {
                self.statements.named.clear();
                "DEALLOCATE ALL"
            }
            Deallocate::Name(name) => {
                if name.is_empty() || self.statements.remove(name).is_none() {
                    return Err(helios_sql::SqlError::new(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    ));
                }
                "DEALLOCATE"
            }
        };
        self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            tag.to_string(),
        )));
        Ok(())
    }

    fn close(&mut self, close: Close) {
        let name = close.name.unwrap_or_default();
        match close.target_type {
            b'S' => {
                self.statements.remove(&name);
            }
            _ => {
                self.portals.remove(&name);
            }
        }
        self.send(PgWireBackendMessage::CloseComplete(CloseComplete::new()));
    }

    fn start(&mut self, startup: pgwire::messages::startup::Startup) -> bool {
        if startup.protocol_number_major != 3 {
            self.fatal(
                "0A000",
                &format!(
                    "unsupported frontend protocol {}.{}: server supports 3.0",
                    startup.protocol_number_major, startup.protocol_number_minor
                ),
            );
            return false;
        }
        let Some(user) = startup.parameters.get("user").cloned() else {
            self.fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            );
            return false;
        };
        let database = startup
            .parameters
            .get("database")
            .cloned()
            .unwrap_or_else(|| user.clone());
        if helios_sql::Cluster::catalog(&self.cluster)
            .database(&database)
            .is_none()
        {
            self.fatal("3D000", &format!("database \"{database}\" does not exist"));
            return false;
        }
        let mut session = helios_sql::Session::new(&user, &database);
        session.set_backend_pid(self.pid);
        // Session parameters a client sends in the startup packet (application_name,
        // client_encoding, DateStyle, ...); PostgreSQL refuses a bad value with FATAL.
        for (name, value) in &startup.parameters {
            if matches!(
                name.as_str(),
                "user" | "database" | "options" | "replication"
            ) {
                continue;
            }
            if let Err(error) = session.set_parameter(name, value) {
                self.fatal(error.sqlstate, &error.message);
                return false;
            }
        }
        session.fix_session_defaults();
        self.ctx.awaiting_frontend_ssl = false;
        self.ctx.awaiting_frontend_startup = false;
        let configured = self
            .cluster
            .state
            .shared
            .config
            .pg_users
            .iter()
            .find(|u| u.name == user)
            .cloned();
        let Some(login) = configured else {
            // trust, as PostgreSQL's default pg_hba.conf allows it: loopback only.
            if !self.peer.is_none_or(|ip| ip.is_loopback()) {
                let host = self.peer.map(|ip| ip.to_string()).unwrap_or_default();
                self.fatal(
                    "28000",
                    &format!("no pg_hba.conf entry for host \"{host}\", user \"{user}\", database \"{database}\", no encryption"),
                );
                return false;
            }
            self.finish_startup(session);
            return true;
        };
        let step = match login.method {
            super::PgAuthMethod::Password => {
                self.send(PgWireBackendMessage::Authentication(
                    Authentication::CleartextPassword,
                ));
                AuthStep::Cleartext
            }
            super::PgAuthMethod::Md5 => {
                let salt = pgauth::random_bytes::<4>();
                self.send(PgWireBackendMessage::Authentication(
                    Authentication::MD5Password(salt.to_vec()),
                ));
                AuthStep::Md5(salt)
            }
            super::PgAuthMethod::ScramSha256 => {
                self.send(PgWireBackendMessage::Authentication(Authentication::SASL(
                    vec![pgauth::SCRAM_MECHANISM.to_string()],
                )));
                AuthStep::ScramFirst
            }
        };
        self.phase = Phase::Authenticating(Box::new(PendingLogin {
            user: login,
            session,
            step,
        }));
        true
    }

    /// One message of a password exchange; false ends the connection (after a FATAL).
    fn authenticate(&mut self, message: PgWireFrontendMessage) -> bool {
        let Phase::Authenticating(mut login) = std::mem::replace(&mut self.phase, Phase::Startup)
        else {
            return false;
        };
        let PgWireFrontendMessage::PasswordMessageFamily(family) = message else {
            self.fatal("08P01", "expected password response");
            return false;
        };
        let outcome = match std::mem::replace(&mut login.step, AuthStep::Cleartext) {
            AuthStep::Cleartext => family
                .into_password()
                .map_err(|_| pgauth::AuthError::Protocol("expected a password message"))
                .and_then(|p| login.user.check_cleartext(&p.password))
                .map(|()| true),
            AuthStep::Md5(salt) => family
                .into_password()
                .map_err(|_| pgauth::AuthError::Protocol("expected a password message"))
                .and_then(|p| login.user.check_md5(&p.password, &salt))
                .map(|()| true),
            AuthStep::ScramFirst => family
                .into_sasl_initial_response()
                .map_err(|_| pgauth::AuthError::Protocol("expected SASLInitialResponse"))
                .and_then(|r| {
                    if r.auth_method != pgauth::SCRAM_MECHANISM {
                        return Err(pgauth::AuthError::Protocol(
                            "client selected an invalid SASL authentication mechanism",
                        ));
                    }
                    let data = r.data.unwrap_or_default();
                    let (exchange, server_first) =
                        pgauth::ScramExchange::start(&login.user, &data)?;
                    self.send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(bytes::Bytes::from(server_first)),
                    ));
                    login.step = AuthStep::ScramFinal(exchange);
                    Ok(false)
                }),
            AuthStep::ScramFinal(exchange) => family
                .into_sasl_response()
                .map_err(|_| pgauth::AuthError::Protocol("expected SASLResponse"))
                .and_then(|r| exchange.finish(&login.user, &r.data))
                .map(|server_final| {
                    self.send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(bytes::Bytes::from(server_final)),
                    ));
                    true
                }),
        };
        match outcome {
            Ok(true) => {
                self.finish_startup(login.session);
                true
            }
            Ok(false) => {
                self.phase = Phase::Authenticating(login);
                true
            }
            Err(error @ pgauth::AuthError::Failed(_)) => {
                tracing::info!(user = %login.user.name, "PostgreSQL password authentication failed");
                self.fatal("28P01", &error.to_string());
                false
            }
            Err(error) => {
                self.fatal("08P01", &error.to_string());
                false
            }
        }
    }

    /// AuthenticationOk, the ParameterStatus set, BackendKeyData, ReadyForQuery.
    fn finish_startup(&mut self, session: helios_sql::Session) {
        self.send(PgWireBackendMessage::Authentication(Authentication::Ok));
        for (name, value) in helios_sql::startup_parameters(&session) {
            self.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )));
        }
        self.send(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
            self.pid,
            SecretKey::I32(self.secret),
        )));
        self.cluster
            .state
            .pg_backends
            .borrow_mut()
            .insert(self.pid, (self.secret, session.cancel_flag()));
        self.session = Some(session);
        self.phase = Phase::Ready;
        self.ready();
    }

    async fn simple_query(
        &mut self,
        sql: &str,
        connection: &Connection,
    ) -> Result<(), PgConnError> {
        if is_discard_all(sql) {
            if let Err(error) = self.discard_all() {
                self.sql_error(&error);
                if let Some(session) = self.session.as_mut() {
                    session.statement_failed();
                }
            }
            return Ok(());
        }
        if let Some(target) = deallocate_target(sql) {
            if let Err(error) = self.deallocate(&target) {
                self.sql_error(&error);
                if let Some(session) = self.session.as_mut() {
                    session.statement_failed();
                }
            }
            return Ok(());
        }
        let session = self.session.as_mut().expect("a session once ready");
        session.cancel_flag().reset();
        let timeout = arm_statement_timeout(session);
        let results = helios_sql::execute_simple(session, &self.cluster, sql).await;
        drop(timeout);
        for result in results {
            match result {
                Ok(helios_sql::StatementResult::Rows { columns, rows, tag }) => {
                    self.row_description(&columns, &[]);
                    for row in &rows {
                        // Text output cannot fail.
                        let _ = encode_row(&mut self.out, row, &columns, &[]);
                        self.flush_if_large(connection).await?;
                    }
                    self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )));
                }
                Ok(helios_sql::StatementResult::CopyIn(start)) => {
                    if let Err(error) = self.begin_copy_in(&start, false) {
                        self.sql_error(&error);
                        if let Some(session) = self.session.as_mut() {
                            session.statement_failed();
                        }
                    }
                    // COPY is the whole query string: nothing follows it.
                    break;
                }
                Ok(helios_sql::StatementResult::CopyOut {
                    column_count,
                    binary,
                    rows,
                    tag,
                }) => {
                    self.send_copy_out(column_count, binary, rows, tag, connection)
                        .await?
                }
                Ok(other) => self.statement_done(other),
                Err(error) => {
                    self.sql_error(&error);
                    break;
                }
            }
        }
        Ok(())
    }

    /// The replies of a statement that returned no rows.
    fn statement_done(&mut self, result: helios_sql::StatementResult) {
        match result {
            helios_sql::StatementResult::Command {
                tag,
                changed_parameters,
                notices,
            } => {
                for notice in notices {
                    self.notice(&notice);
                }
                for (name, value) in changed_parameters {
                    self.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        name, value,
                    )));
                }
                self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )));
            }
            helios_sql::StatementResult::Empty => {
                self.send(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ));
            }
            helios_sql::StatementResult::Rows { tag, .. }
            | helios_sql::StatementResult::CopyOut { tag, .. } => {
                self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )));
            }
            helios_sql::StatementResult::CopyIn(_) => {
                // The extended protocol refuses COPY when it is parsed.
                self.error(
                    "0A000",
                    "COPY is supported in the simple query protocol only",
                );
            }
        }
    }

    /// RowDescription for `columns`; a column without a format code in `formats` is text.
    fn row_description(&mut self, columns: &[helios_sql::Column], formats: &[i16]) {
        encode_row_description(&mut self.out, columns, formats);
    }

    fn ready(&mut self) {
        let reports = self
            .session
            .as_mut()
            .map(|s| s.take_parameters_to_report())
            .unwrap_or_default();
        for (name, value) in reports {
            self.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )));
        }
        let status = match self.session.as_ref().map(|s| s.transaction_state()) {
            Some(helios_sql::TransactionState::InBlock) => TransactionStatus::Transaction,
            Some(helios_sql::TransactionState::Failed) => TransactionStatus::Error,
            _ => TransactionStatus::Idle,
        };
        if let TransactionStatus::Idle = status {
            // Portals end with their transaction (the implicit one of a Sync or a simple
            // query too), as in PostgreSQL: kept, they would pile up to the per-connection
            // limit for clients that never Close them.
            self.portals.clear();
        }
        self.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            status,
        )));
    }

    fn notice(&mut self, text: &str) {
        let (severity, message) = match text.strip_prefix("WARNING: ") {
            Some(message) => ("WARNING", message),
            None => ("NOTICE", text),
        };
        let code = if severity == "WARNING" {
            "01000"
        } else {
            "00000"
        };
        self.send(PgWireBackendMessage::NoticeResponse(NoticeResponse::new(
            vec![
                (b'S', severity.to_string()),
                (b'V', severity.to_string()),
                (b'C', code.to_string()),
                (b'M', message.to_string()),
            ],
        )));
    }

    fn sql_error(&mut self, error: &helios_sql::SqlError) {
        let mut fields = vec![
            (b'S', "ERROR".to_string()),
            (b'V', "ERROR".to_string()),
            (b'C', error.sqlstate.to_string()),
            (b'M', error.message.clone()),
        ];
        if let Some(detail) = &error.detail {
            fields.push((b'D', detail.clone()));
        }
        if let Some(hint) = error.hint_text() {
            fields.push((b'H', hint.to_string()));
        }
        if let Some(position) = error.position {
            fields.push((b'P', position.to_string()));
        }
        if let Some(context) = &error.context {
            fields.push((b'W', context.clone()));
        }
        if let Some(names) = error.names() {
            fields.push((b's', names.schema.clone()));
            fields.push((b't', names.table.clone()));
            if let Some(column) = &names.column {
                fields.push((b'c', column.clone()));
            }
            if let Some(constraint) = &names.constraint {
                fields.push((b'n', constraint.clone()));
            }
        }
        self.send(PgWireBackendMessage::ErrorResponse(ErrorResponse::new(
            fields,
        )));
    }

    fn error(&mut self, sqlstate: &str, message: &str) {
        self.send(PgWireBackendMessage::ErrorResponse(ErrorResponse::new(
            vec![
                (b'S', "ERROR".to_string()),
                (b'V', "ERROR".to_string()),
                (b'C', sqlstate.to_string()),
                (b'M', message.to_string()),
            ],
        )));
    }

    fn fatal(&mut self, sqlstate: &str, message: &str) {
        self.send(PgWireBackendMessage::ErrorResponse(ErrorResponse::new(
            vec![
                (b'S', "FATAL".to_string()),
                (b'V', "FATAL".to_string()),
                (b'C', sqlstate.to_string()),
                (b'M', message.to_string()),
            ],
        )));
    }

    fn send(&mut self, message: PgWireBackendMessage) {
        if let Err(error) = message.encode(&mut self.out) {
            tracing::error!(%error, "encoding a PostgreSQL message failed");
        }
    }
}

/// Whether a whole frontend message (type, length, body) holds the fields its type declares,
/// within its length: checked before pgwire decodes it, whose decoders would panic reading
/// past the end instead (the catch in `decode_next` is the backstop).
/// A frontend message's name, for protocol-violation errors.
fn message_name(message: &PgWireFrontendMessage) -> &'static str {
    match message {
        PgWireFrontendMessage::Query(_) => "Query",
        PgWireFrontendMessage::Parse(_) => "Parse",
        PgWireFrontendMessage::Bind(_) => "Bind",
        PgWireFrontendMessage::Execute(_) => "Execute",
        PgWireFrontendMessage::Describe(_) => "Describe",
        PgWireFrontendMessage::Close(_) => "Close",
        PgWireFrontendMessage::Terminate(_) => "Terminate",
        _ => "other",
    }
}

fn frame_well_formed(frame: &[u8]) -> bool {
    struct Fields<'a>(&'a [u8]);
    impl Fields<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        fn cstring(&mut self) -> Option<()> {
            let end = self.0.iter().position(|&b| b == 0)?;
            self.take(end + 1).map(|_| ())
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn count(&mut self) -> Option<usize> {
            usize::try_from(self.i16()?).ok()
        }
    }
    let mut f = Fields(&frame[5..]);
    let complete = match frame[0] {
        b'Q' | b'f' => f.cstring(),
        b'P' => (|| {
            f.cstring()?;
            f.cstring()?;
            let n = f.count()?;
            f.take(n * 4).map(|_| ())
        })(),
        b'B' => (|| {
            f.cstring()?;
            f.cstring()?;
            let n = f.count()?;
            f.take(n * 2)?;
            for _ in 0..f.count()? {
                let len = f.i32()?;
                if len >= 0 {
                    f.take(len as usize)?;
                } else if len != -1 {
                    return None;
                }
            }
            let n = f.count()?;
            f.take(n * 2).map(|_| ())
        })(),
        b'E' => (|| {
            f.cstring()?;
            f.i32().map(|_| ())
        })(),
        b'D' | b'C' => (|| {
            f.take(1)?;
            f.cstring()
        })(),
        _ => Some(()),
    };
    complete.is_some()
}

/// Whether a simple query is exactly `DISCARD ALL` (other DISCARD forms go to the SQL layer,
/// which refuses them).
fn is_discard_all(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let mut words = sql.split_ascii_whitespace();
    matches!(
        (words.next(), words.next(), words.next()),
        (Some(d), Some(a), None) if d.eq_ignore_ascii_case("discard") && a.eq_ignore_ascii_case("all")
    )
}

/// The target of a query that is exactly one `DEALLOCATE [PREPARE] {name | ALL}` (what
/// psycopg and libpq-based drivers send to drop their prepared statements), else None.
fn deallocate_target(sql: &str) -> Option<Deallocate> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let mut words = sql.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let mut word = words.next()?;
    if word.eq_ignore_ascii_case("prepare") {
        word = words.next()?;
    }
    if words.next().is_some() {
        return None;
    }
    if word.eq_ignore_ascii_case("all") {
        return Some(Deallocate::All);
    }
    if let Some(quoted) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        if quoted.is_empty() || quoted.replace("\"\"", "").contains('"') {
            return None;
        }
        return Some(Deallocate::Name(quoted.replace("\"\"", "\"")));
    }
    let plain = word.starts_with(|c: char| c.is_alphabetic() || c == '_')
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    // An unquoted identifier is folded to lower case.
    plain.then(|| Deallocate::Name(word.to_lowercase()))
}

/// Bind's format codes for `count` values: none (all text), one (for all), or one each.
fn expand_formats(codes: &[i16], count: usize, what: &str) -> PgResult<Vec<i16>> {
    let formats = match codes {
        [] => vec![FORMAT_TEXT; count],
        [one] => vec![*one; count],
        many if many.len() == count => many.to_vec(),
        many => {
            return Err(protocol_violation(format!(
                "bind message has {} {what} formats but {count} {what}s",
                many.len()
            )))
        }
    };
    if let Some(bad) = formats
        .iter()
        .find(|&&f| f != FORMAT_TEXT && f != FORMAT_BINARY)
    {
        return Err(protocol_violation(format!(
            "unsupported format code: {bad}"
        )));
    }
    Ok(formats)
}

/// A Bind parameter as the text `helios_sql` takes.
fn param_text(oid: u32, format: i16, bytes: &[u8], index: usize) -> PgResult<String> {
    if format == FORMAT_BINARY {
        return pgbinary::binary_to_text(oid, bytes).map_err(|e| {
            let code = match e {
                pgbinary::BinaryError::Malformed => "22P03",
                pgbinary::BinaryError::Insufficient => "08P01",
                pgbinary::BinaryError::InvalidUtf8(_) => {
                    return helios_sql::SqlError::new("22021", e.to_string());
                }
                _ => "42883",
            };
            helios_sql::SqlError::new(code, format!("{e} ${}", index + 1))
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        helios_sql::SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\"")
    })
}

/// Appends one DataRow, each value in its column's format.
/// A RowDescription written straight into `out` (a column without a format code in `formats`
/// is text): built through pgwire's message types it cost a `String` per column name and a
/// vector per message, on every Describe and every simple query.
fn encode_row_description(out: &mut BytesMut, columns: &[helios_sql::Column], formats: &[i16]) {
    let start = out.len();
    out.put_u8(b'T');
    out.put_i32(0); // length, patched below
    out.put_i16(columns.len() as i16);
    for (i, column) in columns.iter().enumerate() {
        debug_assert!(!column.name.as_bytes().contains(&0));
        out.put_slice(column.name.as_bytes());
        out.put_u8(0);
        out.put_i32(0); // table OID
        out.put_i16(0); // column attribute number
        out.put_u32(column.type_oid);
        out.put_i16(column.type_size);
        out.put_i32(column.type_modifier);
        out.put_i16(formats.get(i).copied().unwrap_or(FORMAT_TEXT));
    }
    let length = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&length.to_be_bytes());
}

fn encode_row(
    out: &mut BytesMut,
    row: &[Option<String>],
    columns: &[helios_sql::Column],
    formats: &[i16],
) -> PgResult<()> {
    let start = out.len();
    out.put_u8(b'D');
    out.put_i32(0); // length, patched below
    out.put_i16(row.len() as i16);
    let mut binary = Vec::new();
    for (i, value) in row.iter().enumerate() {
        let Some(text) = value else {
            out.put_i32(-1);
            continue;
        };
        if formats.get(i) == Some(&FORMAT_BINARY) {
            binary.clear();
            let oid = columns.get(i).map_or(pgbinary::OID_TEXT, |c| c.type_oid);
            if let Err(e) = pgbinary::text_to_binary(oid, text, &mut binary) {
                out.truncate(start);
                return Err(helios_sql::SqlError::new("42883", e.to_string()));
            }
            out.put_i32(binary.len() as i32);
            out.put_slice(&binary);
        } else {
            out.put_i32(text.len() as i32);
            out.put_slice(text.as_bytes());
        }
    }
    let length = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// Arms `statement_timeout` for the statement about to run: a timer task that marks the
/// session's cancel flag, which the statement's fragments poll (57014, "statement timeout").
/// Dropping the returned task disarms it.
fn arm_statement_timeout(session: &helios_sql::Session) -> Option<glommio::Task<()>> {
    let ms = session.statement_timeout_ms();
    if ms == 0 {
        return None;
    }
    let flag = session.cancel_flag();
    Some(glommio::spawn_local(async move {
        glommio::timer::sleep(std::time::Duration::from_millis(ms)).await;
        flag.time_out();
    }))
}

/// Routes a CancelRequest to the shard serving the connection (the pid's top byte).
async fn forward_cancel(state: &Rc<ShardState>, pid: i32, secret: i32) {
    let shard = ((pid as u32) >> 24) as usize;
    if shard == state.id {
        cancel_local(state, pid, secret);
    } else if shard < state.shared.map.shard_count() {
        let _ = state
            .mesh
            .call(shard, super::shard::ShardReq::PgCancel { pid, secret })
            .await;
    }
}

/// Cancels the statement running on connection `pid` of this shard if `secret` matches.
pub fn cancel_local(state: &ShardState, pid: i32, secret: i32) {
    let backends = state.pg_backends.borrow();
    match backends.get(&pid) {
        Some((expected, flag)) if *expected == secret => {
            tracing::debug!(shard = state.id, pid, "cancel request: statement cancelled");
            flag.cancel();
        }
        Some(_) => tracing::debug!(shard = state.id, pid, "cancel request: wrong key, ignored"),
        None => tracing::debug!(shard = state.id, pid, "cancel request: no such backend"),
    }
}

/// A cancel key: not cryptographically strong (a local attacker who can observe timing could
/// guess it), but different per connection.
fn rand_secret(pid: i32) -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (xxhash_rust::xxh3::xxh3_64(&[pid.to_le_bytes(), nanos.to_le_bytes()].concat()) as i32)
        & i32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deallocate_statements_are_recognised() {
        let name = |n: &str| Some(Deallocate::Name(n.to_string()));
        assert_eq!(deallocate_target("DEALLOCATE ALL"), Some(Deallocate::All));
        assert_eq!(
            deallocate_target(" deallocate prepare all ; "),
            Some(Deallocate::All)
        );
        assert_eq!(deallocate_target("DEALLOCATE _pg3_0"), name("_pg3_0"));
        assert_eq!(deallocate_target("Deallocate Prepare S1;"), name("s1"));
        assert_eq!(
            deallocate_target("DEALLOCATE \"My\"\"Stmt\""),
            name("My\"Stmt")
        );
        for other in [
            "DEALLOCATE",
            "DEALLOCATE a b",
            "DEALLOCATE \"\"",
            "DEALLOCATE 1x",
            "SELECT 1",
            "DEALLOCATE a; SELECT 1",
        ] {
            assert_eq!(deallocate_target(other), None, "{other}");
        }
    }

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn frames_must_hold_their_fields() {
        assert!(frame_well_formed(&frame(b'S', b"")));
        assert!(frame_well_formed(&frame(b'Q', b"SELECT 1\0")));
        assert!(!frame_well_formed(&frame(b'Q', b"SELECT 1")));
        // Bind: portal, statement, 1 format, 1 parameter of 4 bytes, no result formats.
        let bind = b"\0s\0\0\x01\0\x01\0\x01\0\0\0\x04abcd\0\0";
        assert!(frame_well_formed(&frame(b'B', bind)));
        for cut in 0..bind.len() {
            assert!(
                !frame_well_formed(&frame(b'B', &bind[..cut])),
                "cut at {cut}"
            );
        }
        assert!(frame_well_formed(&frame(
            b'B',
            b"\0\0\0\0\0\x01\xff\xff\xff\xff\0\0"
        )));
        assert!(!frame_well_formed(&frame(
            b'B',
            b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"
        )));
        assert!(frame_well_formed(&frame(
            b'P',
            b"\0SELECT $1\0\0\x01\0\0\0\x17"
        )));
        assert!(!frame_well_formed(&frame(
            b'P',
            b"\0SELECT $1\0\0\x02\0\0\0\x17"
        )));
        assert!(!frame_well_formed(&frame(b'P', b"\0SELECT $1\0\xff\xff")));
        assert!(frame_well_formed(&frame(b'E', b"\0\0\0\0\x02")));
        assert!(!frame_well_formed(&frame(b'E', b"\0\0\0")));
        assert!(frame_well_formed(&frame(b'D', b"Sname\0")));
        assert!(!frame_well_formed(&frame(b'C', b"S")));
    }
}
