//! The PostgreSQL front end: one connection's state machine over pgwire's message codec.
//!
//! pgwire's handler API wants `Send` futures and a tokio runtime; glommio sockets are `!Send`.
//! So only its message types and codec are used (`default-features = false`), driven by this
//! state machine on the shard's own socket ring, with no extra runtime or thread (see
//! ARCHITECTURE.md, "PostgreSQL front end").
//!
//! Supported so far: protocol 3.0 start-up (SSLRequest and GSSENCRequest answered `N`),
//! `trust` authentication, the ParameterStatus set clients expect, BackendKeyData, the simple
//! query protocol (several statements per message), Terminate. Statements run in
//! `helios_sql` (no tables yet). Extended-query messages get 0A000 and are discarded up to
//! Sync, as after any error, so clients stay in step.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use helios_shard::ring::{Connection, ReadOutcome};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, ReadyForQuery, SslResponse,
    TransactionStatus,
};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, SslNegotiationMetaMessage,
};

use super::shard::ShardState;

/// The only database a fresh server has (CREATE DATABASE comes with the SQL work).
const DATABASE_POSTGRES: &str = "postgres";
/// Text format code in RowDescription.
const FORMAT_TEXT: i16 = 0;

/// Serves one PostgreSQL connection on `state`'s shard until the client leaves.
pub fn spawn_connection(state: &Rc<ShardState>, fd: std::os::fd::RawFd) {
    let connection = match state.ring.register(fd) {
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
        let mut conn = PgConn::new(backend_pid(state.id, id));
        if let Err(error) = conn.serve(&connection).await {
            tracing::debug!(shard = state.id, %error, "PostgreSQL connection ended");
        }
        state.shared.connections_per_shard[state.id].fetch_sub(1, Ordering::Relaxed);
        drop(connection);
    })
    .detach();
}

/// The process id a client sees: the shard in the top byte, so that a CancelRequest arriving
/// on another core can be routed to the shard running the query.
fn backend_pid(shard: usize, client_id: u64) -> i32 {
    (((shard as u32 & 0x7f) << 24) | (client_id as u32 & 0x00ff_ffff)) as i32
}

enum Phase {
    /// Before the StartupMessage (SSL/GSS negotiation, or a CancelRequest).
    Startup,
    Ready,
}

struct PgConn {
    pid: i32,
    secret: i32,
    phase: Phase,
    ctx: DecodeContext,
    session: Option<helios_sql::Session>,
    /// After an error in an extended-query sequence: skip messages until Sync.
    discard_until_sync: bool,
    out: BytesMut,
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

impl PgConn {
    fn new(pid: i32) -> PgConn {
        PgConn {
            pid,
            secret: rand_secret(pid),
            phase: Phase::Startup,
            ctx: DecodeContext::default(),
            session: None,
            discard_until_sync: false,
            out: BytesMut::new(),
        }
    }

    async fn serve(&mut self, connection: &Connection) -> Result<(), PgConnError> {
        let mut buf = BytesMut::new();
        loop {
            loop {
                let message = match PgWireFrontendMessage::decode(&mut buf, &self.ctx) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(error) => {
                        self.error("08P01", &format!("invalid message: {error}"));
                        connection.write_all(&self.out).await?;
                        return Err(PgConnError::Protocol(error.to_string()));
                    }
                };
                let keep_going = self.handle(message);
                if !self.out.is_empty() {
                    connection.write_all(&self.out).await?;
                    self.out.clear();
                }
                if !keep_going {
                    return Ok(());
                }
            }
            if let ReadOutcome::Eof = connection.read(&mut buf).await {
                return Err(PgConnError::Closed);
            }
        }
    }

    /// Handles one message, queueing the replies in `out`; false ends the connection.
    fn handle(&mut self, message: PgWireFrontendMessage) -> bool {
        match (&self.phase, message) {
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
                true
            }
            (Phase::Startup, PgWireFrontendMessage::CancelRequest(_)) => {
                // Nothing runs long enough to cancel yet; PostgreSQL closes without a reply.
                false
            }
            (Phase::Startup, PgWireFrontendMessage::Startup(startup)) => self.start(startup),
            (Phase::Ready, PgWireFrontendMessage::Query(query)) => {
                self.discard_until_sync = false;
                self.simple_query(&query.query);
                self.ready();
                true
            }
            (Phase::Ready, PgWireFrontendMessage::Terminate(_)) => false,
            (Phase::Ready, PgWireFrontendMessage::Sync(_)) => {
                self.discard_until_sync = false;
                self.ready();
                true
            }
            (Phase::Ready, PgWireFrontendMessage::Flush(_)) => true,
            (Phase::Ready, message) if message.is_extended_query() => {
                if !self.discard_until_sync {
                    self.error(
                        "0A000",
                        "the extended query protocol is not supported yet; use the simple query protocol",
                    );
                    self.discard_until_sync = true;
                }
                true
            }
            (_, _) => {
                self.error("08P01", "unexpected message for the connection's state");
                false
            }
        }
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
        if database != DATABASE_POSTGRES {
            self.fatal("3D000", &format!("database \"{database}\" does not exist"));
            return false;
        }
        let mut session = helios_sql::Session::new(&user, &database);
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
        self.ctx.awaiting_frontend_ssl = false;
        self.ctx.awaiting_frontend_startup = false;
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
        self.session = Some(session);
        self.phase = Phase::Ready;
        self.ready();
        true
    }

    fn simple_query(&mut self, sql: &str) {
        let session = self.session.as_mut().expect("a session once ready");
        let results = helios_sql::execute_simple(session, sql);
        for result in results {
            match result {
                Ok(helios_sql::StatementResult::Rows { columns, rows, tag }) => {
                    self.row_description(&columns);
                    for row in &rows {
                        self.data_row(row);
                    }
                    self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )));
                }
                Ok(helios_sql::StatementResult::Command {
                    tag,
                    changed_parameters,
                }) => {
                    for (name, value) in changed_parameters {
                        self.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name, value,
                        )));
                    }
                    self.send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )));
                }
                Ok(helios_sql::StatementResult::Empty) => {
                    self.send(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ));
                }
                Err(error) => {
                    self.sql_error(&error);
                    break;
                }
            }
        }
    }

    fn row_description(&mut self, columns: &[helios_sql::Column]) {
        let fields = columns
            .iter()
            .map(|c| {
                FieldDescription::new(
                    c.name.clone(),
                    0,
                    0,
                    c.type_oid,
                    c.type_size,
                    c.type_modifier,
                    FORMAT_TEXT,
                )
            })
            .collect();
        self.send(PgWireBackendMessage::RowDescription(RowDescription::new(
            fields,
        )));
    }

    fn data_row(&mut self, row: &[Option<String>]) {
        let mut data = BytesMut::new();
        for value in row {
            match value {
                Some(text) => {
                    data.put_i32(text.len() as i32);
                    data.put_slice(text.as_bytes());
                }
                None => data.put_i32(-1),
            }
        }
        self.send(PgWireBackendMessage::DataRow(DataRow::new(
            data,
            row.len() as i16,
        )));
    }

    fn ready(&mut self) {
        self.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            TransactionStatus::Idle,
        )));
    }

    fn sql_error(&mut self, error: &helios_sql::SqlError) {
        let mut fields = vec![
            (b'S', "ERROR".to_string()),
            (b'V', "ERROR".to_string()),
            (b'C', error.sqlstate.to_string()),
            (b'M', error.message.clone()),
        ];
        if let Some(position) = error.position {
            fields.push((b'P', position.to_string()));
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

/// A cancel key: not a secret against a local attacker yet (cancellation is not served), but
/// different per connection.
fn rand_secret(pid: i32) -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (xxhash_rust::xxh3::xxh3_64(&[pid.to_le_bytes(), nanos.to_le_bytes()].concat()) as i32)
        & i32::MAX
}
