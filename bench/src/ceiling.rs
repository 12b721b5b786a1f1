//! `helios-bench pg-ceiling`: a PostgreSQL-protocol server that does no work, to measure what
//! the machine allows a PostgreSQL server under `pgbench`.
//!
//! It speaks just enough of the protocol for `pgbench -n` in every query mode (`-M simple`,
//! `extended`, `prepared`) and answers every statement with one canned row, without parsing
//! SQL, storing anything or syncing a disk. What it costs per transaction is the kernel's
//! loopback round trip and a few hundred bytes of encoding, so its tps bounds, short of kernel
//! bypass, what a server can reach on the same machine with the same client: when pgbench and
//! the server share two cores, the ceiling for `pgbench -S` is set by pgbench's own CPU and the
//! kernel's, and a target above it cannot be met by server work (see README, "pgbench").
//!
//! One thread per core (`--threads`), each a level-triggered epoll loop over non-blocking
//! sockets with its own `SO_REUSEPORT` listener, as redis-server's event loop works: the
//! cheapest way a server can run request/response over TCP without kernel bypass. Replies to
//! every whole message read are written with one `write(2)`, as PostgreSQL flushes at Sync.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use anyhow::{bail, Context};

/// Largest message (or startup packet) accepted; a longer one closes the connection.
const MESSAGE_BYTES_MAX: usize = 1 << 20;
/// epoll events taken per wait.
const EVENTS_PER_WAIT: usize = 256;
/// Bytes read per `read(2)`.
const READ_BYTES: usize = 64 << 10;
/// Startup packet codes for SSL and GSS encryption requests (answered `N`: not supported).
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Type OIDs of the canned columns.
const INT4_OID: u32 = 23;
const INT8_OID: u32 = 20;

#[derive(clap::Args, Debug, Clone)]
pub struct CeilingArgs {
    /// Loopback (or other IPv4) address to listen on.
    #[arg(long, default_value = "127.0.0.1:5432")]
    pub addr: SocketAddrV4,
    /// Event-loop threads (0: one per available core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run_ceiling(args: CeilingArgs) -> anyhow::Result<()> {
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Bind every listener before serving, so a port already in use fails the command.
    let listeners = (0..threads)
        .map(|_| reuseport_listener(args.addr))
        .collect::<io::Result<Vec<_>>>()
        .with_context(|| format!("listening on {}", args.addr))?;
    eprintln!(
        "pg-ceiling: no-work PostgreSQL server on {} ({threads} threads)",
        args.addr
    );
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|listener| std::thread::spawn(move || serve(listener)))
        .collect();
    for handle in handles {
        match handle.join() {
            Ok(result) => result?,
            Err(_) => bail!("a pg-ceiling event loop panicked"),
        }
    }
    Ok(())
}

fn reuseport_listener(addr: SocketAddrV4) -> io::Result<TcpListener> {
    // SAFETY: plain socket calls on a descriptor this function owns; every pointer passed
    // points at a live local of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for option in [libc::SO_REUSEPORT, libc::SO_REUSEADDR] {
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let opt = (&one as *const libc::c_int).cast();
            if libc::setsockopt(fd, libc::SOL_SOCKET, option, opt, len) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = addr.port().to_be();
        sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), len) != 0
            || libc::listen(fd, 1024) != 0
        {
            return Err(io::Error::last_os_error());
        }
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

/// The epoll set of one event loop.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    fn add(&self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `event` is a live local; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event]) -> io::Result<usize> {
        loop {
            // SAFETY: the kernel writes at most `events.len()` entries into `events`.
            let n =
                unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, -1) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: this struct owns the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let epoll = Epoll::new().context("epoll_create1")?;
    let listener_fd = listener.as_raw_fd();
    epoll.add(listener_fd).context("epoll_ctl")?;
    // Dropping a connection closes its socket, which also takes it out of the epoll set.
    let mut connections: HashMap<RawFd, (TcpStream, Session)> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let ready = epoll.wait(&mut events).context("epoll_wait")?;
        for event in &events[..ready] {
            let fd = event.u64 as RawFd;
            if fd == listener_fd {
                accept_all(&listener, &epoll, &mut connections);
                continue;
            }
            let Some((stream, session)) = connections.get_mut(&fd) else {
                continue;
            };
            if !serve_readable(stream, session, &mut buf) {
                connections.remove(&fd);
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    epoll: &Epoll,
    connections: &mut HashMap<RawFd, (TcpStream, Session)>,
) {
    while let Ok((stream, _)) = listener.accept() {
        let fd = stream.as_raw_fd();
        let ok = stream.set_nonblocking(true).is_ok()
            && stream.set_nodelay(true).is_ok()
            && epoll.add(fd).is_ok();
        if ok {
            connections.insert(fd, (stream, Session::default()));
        }
    }
}

/// Reads what the socket has, answers every whole message; false: close the connection.
fn serve_readable(stream: &mut TcpStream, session: &mut Session, buf: &mut [u8]) -> bool {
    let n = match stream.read(buf) {
        Ok(0) => return false,
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
        Err(_) => return false,
    };
    session.input.extend_from_slice(&buf[..n]);
    let mut out = Vec::new();
    let keep = session.answer(&mut out);
    // Replies are a few hundred bytes against a socket buffer of hundreds of KiB; if it is
    // ever full the client is not reading, and blocking briefly is the simplest correct wait.
    if !out.is_empty() && write_blocking(stream, &out).is_err() {
        return false;
    }
    keep
}

fn write_blocking(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.set_nonblocking(false)?;
                let rest = stream.write_all(&bytes[written..]);
                stream.set_nonblocking(true)?;
                return rest;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection's protocol state: bytes not yet a whole message, and whether the startup
/// packet has been answered.
#[derive(Default)]
struct Session {
    input: Vec<u8>,
    started: bool,
}

impl Session {
    /// Appends the replies to every whole message in `input` to `out`, consuming them;
    /// false when the connection should close (Terminate, or a malformed or oversized length).
    fn answer(&mut self, out: &mut Vec<u8>) -> bool {
        let input = std::mem::take(&mut self.input);
        let mut pos = 0;
        let keep = loop {
            let rest = &input[pos..];
            let (header, tag) = if self.started {
                (5, rest.first().copied())
            } else {
                (4, None)
            };
            if rest.len() < header {
                break true;
            }
            let len = be_u32(&rest[header - 4..]) as usize;
            if !(4..=MESSAGE_BYTES_MAX).contains(&len) {
                break false;
            }
            let whole = header - 4 + len;
            if rest.len() < whole {
                break true;
            }
            let body = &rest[header..whole];
            let keep = match tag {
                None => self.startup(body, out),
                Some(tag) => message(tag, body, out),
            };
            pos += whole;
            if !keep {
                break false;
            }
        };
        self.input = input;
        self.input.drain(..pos);
        keep
    }

    fn startup(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(code) = body.get(..4).map(be_u32) else {
            return false;
        };
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                out.push(b'N');
                true
            }
            CANCEL_REQUEST => false,
            _ => {
                self.started = true;
                put(out, b'R', &0u32.to_be_bytes());
                for (name, value) in [
                    ("server_version", "15.0"),
                    ("server_encoding", "UTF8"),
                    ("client_encoding", "UTF8"),
                    ("DateStyle", "ISO, MDY"),
                    ("integer_datetimes", "on"),
                    ("standard_conforming_strings", "on"),
                ] {
                    put(out, b'S', &[name, "\0", value, "\0"].concat().into_bytes());
                }
                put(out, b'K', &[0, 0, 0, 1, 0, 0, 0, 1]);
                ready_for_query(out);
                true
            }
        }
    }
}

/// Answers one regular message; false on Terminate.
fn message(tag: u8, body: &[u8], out: &mut Vec<u8>) -> bool {
    match tag {
        b'Q' => {
            simple_query(body, out);
            ready_for_query(out);
        }
        b'P' => put(out, b'1', b""),
        b'B' => put(out, b'2', b""),
        b'D' => {
            if body.first() == Some(&b'S') {
                // Every statement is described as taking one int4 parameter.
                put(out, b't', &[0, 1, 0, 0, 0, INT4_OID as u8]);
            }
            row_description(out, "abalance", INT4_OID);
        }
        b'E' => {
            data_row(out, &[Some("0")]);
            command_complete(out, "SELECT 1");
        }
        b'S' => ready_for_query(out),
        b'X' => return false,
        // Close, Flush and anything else: nothing to answer before the next Sync.
        _ => {}
    }
    true
}

/// pgbench's simple queries: its start-up probes of the tables (a row count, the partition
/// query that reads `partstrat`), then its scripts' statements.
fn simple_query(body: &[u8], out: &mut Vec<u8>) {
    let sql = String::from_utf8_lossy(body).to_ascii_lowercase();
    if sql.contains("partstrat") {
        // One search-path entry, no partitioning (NULL strategy), no partitions.
        row_description(out, "n", INT4_OID);
        data_row(out, &[Some("1"), None, Some("0")]);
        command_complete(out, "SELECT 1");
    } else if sql.contains("count(") {
        row_description(out, "count", INT8_OID);
        data_row(out, &[Some("10")]);
        command_complete(out, "SELECT 1");
    } else if sql.trim_start().starts_with("select") {
        row_description(out, "abalance", INT4_OID);
        data_row(out, &[Some("0")]);
        command_complete(out, "SELECT 1");
    } else {
        // BEGIN, UPDATE, INSERT, END: a command tag with no rows (pgbench checks the status,
        // not the tag).
        command_complete(out, "UPDATE 1");
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn put(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

fn ready_for_query(out: &mut Vec<u8>) {
    put(out, b'Z', b"I");
}

fn command_complete(out: &mut Vec<u8>, tag: &str) {
    put(out, b'C', &[tag.as_bytes(), b"\0"].concat());
}

/// A one-column text-format row description.
fn row_description(out: &mut Vec<u8>, column: &str, type_oid: u32) {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(column.as_bytes());
    body.push(0);
    body.extend_from_slice(&0u32.to_be_bytes()); // table oid
    body.extend_from_slice(&0u16.to_be_bytes()); // column number
    body.extend_from_slice(&type_oid.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes()); // type size
    body.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
    body.extend_from_slice(&0u16.to_be_bytes()); // text format
    put(out, b'T', &body);
}

fn data_row(out: &mut Vec<u8>, values: &[Option<&str>]) {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for value in values {
        match value {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(text) => {
                body.extend_from_slice(&(text.len() as u32).to_be_bytes());
                body.extend_from_slice(text.as_bytes());
            }
        }
    }
    put(out, b'D', &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, tag, body);
        out
    }

    fn startup_packet(code: u32) -> Vec<u8> {
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        packet
    }

    /// The tags of the messages in `bytes`, a started session's output.
    fn tags(bytes: &[u8]) -> Vec<u8> {
        let mut tags = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            tags.push(bytes[pos]);
            pos += 1 + be_u32(&bytes[pos + 1..]) as usize;
        }
        tags
    }

    fn unstarted(input: Vec<u8>) -> Session {
        Session {
            input,
            started: false,
        }
    }

    fn started() -> Session {
        let mut session = unstarted(startup_packet(196_608));
        let mut out = Vec::new();
        assert!(session.answer(&mut out));
        assert!(session.started);
        assert_eq!(tags(&out), b"RSSSSSSKZ");
        session
    }

    #[test]
    fn ssl_request_is_refused_then_startup_proceeds() {
        let mut session = unstarted(startup_packet(SSL_REQUEST));
        let mut out = Vec::new();
        assert!(session.answer(&mut out));
        assert_eq!(out, b"N");
        assert!(!session.started);
    }

    #[test]
    fn prepared_execution_answers_like_a_server() {
        let mut session = started();
        for (tag, body) in [
            (b'B', &b"\0P_0\0"[..]),
            (b'D', b"P\0"),
            (b'E', b"\0\0\0\0\0"),
            (b'S', b""),
        ] {
            session.input.extend_from_slice(&frame(tag, body));
        }
        let mut out = Vec::new();
        assert!(session.answer(&mut out));
        assert_eq!(tags(&out), b"2TDCZ");
        assert!(session.input.is_empty());
    }

    #[test]
    fn a_partial_message_waits_for_the_rest() {
        let mut session = started();
        let whole = frame(
            b'Q',
            b"SELECT abalance FROM pgbench_accounts WHERE aid = 7;\0",
        );
        session.input.extend_from_slice(&whole[..10]);
        let mut out = Vec::new();
        assert!(session.answer(&mut out));
        assert!(out.is_empty());
        session.input.extend_from_slice(&whole[10..]);
        assert!(session.answer(&mut out));
        assert_eq!(tags(&out), b"TDCZ");
    }

    #[test]
    fn bad_lengths_and_terminate_close() {
        let mut session = started();
        session.input = vec![b'Q', 0, 0, 0, 2];
        assert!(!session.answer(&mut Vec::new()));
        let mut session = started();
        session.input = vec![b'Q', 0x7f, 0xff, 0xff, 0xff];
        assert!(!session.answer(&mut Vec::new()));
        let mut session = started();
        session.input = frame(b'X', b"");
        assert!(!session.answer(&mut Vec::new()));
        let mut session = unstarted(vec![0, 0, 0, 3]);
        assert!(!session.answer(&mut Vec::new()));
    }
}
