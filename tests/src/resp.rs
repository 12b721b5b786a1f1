//! A raw RESP client for byte-exact comparisons.
//!
//! It sends commands as multibulk frames and reads back exactly one complete reply as the raw
//! bytes the server wrote, so the tests can compare two servers without any client library
//! normalizing the replies in between. `Frame` parses those bytes into a tree when a test needs
//! to normalize (sort a KEYS reply, blur a TTL).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// Longest single line (simple string, error, header) the reader accepts.
const LINE_BYTES_MAX: usize = 64 * 1024;
/// Largest bulk payload the reader accepts; the tests never ask for more.
const BULK_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest aggregate the reader accepts.
const AGGREGATE_LEN_MAX: i64 = 10_000_000;
/// Deepest nesting the reader follows.
const DEPTH_MAX: usize = 32;

pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RespConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespConn {
    pub fn connect(port: u16) -> io::Result<RespConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(RespConn {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }

    /// Sends one command as a multibulk frame (does not wait for the reply).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        let frame = encode_command(args);
        self.writer.write_all(&frame)
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends a command and returns its raw reply bytes.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Vec<u8>> {
        self.send(args)?;
        self.read_reply()
    }

    /// Convenience for tests: `cmd` on string arguments, panicking on I/O errors.
    pub fn call(&mut self, args: &[&str]) -> Vec<u8> {
        match self.cmd(args) {
            Ok(reply) => reply,
            Err(e) => panic!("command {args:?} failed: {e}"),
        }
    }

    /// Reads exactly one complete reply (including any attribute prefix) as raw bytes.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        read_value(&mut self.reader, &mut out, 0)?;
        Ok(out)
    }

    /// True when the server has closed the connection: a read returns EOF or a reset before the
    /// timeout. Any bytes that arrive first are returned in the error case as unexpected.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<(), String> {
        self.writer
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        match self.reader.read(&mut buf) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!(
                "unexpected bytes instead of close: {}",
                render(&buf[..n])
            )),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Err(format!("connection still open after {timeout:?}"))
            }
            Err(_) => Ok(()), // reset by peer counts as closed
        }
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.writer.shutdown(Shutdown::Write);
    }
}

pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut frame =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    frame.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
    frame
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one CRLF-terminated line into `out` (terminator included), returns the line body.
fn read_line<R: BufRead>(reader: &mut R, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(LINE_BYTES_MAX as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(format!(
            "unterminated or overlong line: {}",
            render(&line)
        )));
    }
    out.extend_from_slice(&line);
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_len(body: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| bad(format!("bad length: {}", render(body))))
}

fn read_value<R: BufRead>(reader: &mut R, out: &mut Vec<u8>, depth: usize) -> io::Result<()> {
    if depth > DEPTH_MAX {
        return Err(bad("reply nested too deeply"));
    }
    let line = read_line(reader, out)?;
    let Some((&kind, body)) = line.split_first() else {
        return Err(bad("empty reply line"));
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(()),
        b'$' | b'!' | b'=' => {
            let len = parse_len(body)?;
            if len < 0 {
                return Ok(()); // RESP2 null bulk
            }
            let len = len as usize;
            if len > BULK_BYTES_MAX {
                return Err(bad(format!("bulk too large: {len}")));
            }
            let start = out.len();
            out.resize(start + len + 2, 0);
            reader.read_exact(&mut out[start..])?;
            if &out[out.len() - 2..] != b"\r\n" {
                return Err(bad("bulk payload not followed by CRLF"));
            }
            Ok(())
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let len = parse_len(body)?;
            if len < 0 {
                return Ok(()); // RESP2 null array
            }
            if len > AGGREGATE_LEN_MAX {
                return Err(bad(format!("aggregate too large: {len}")));
            }
            let items = if kind == b'%' || kind == b'|' {
                len * 2
            } else {
                len
            };
            for _ in 0..items {
                read_value(reader, out, depth + 1)?;
            }
            if kind == b'|' {
                // An attribute is followed by the reply it decorates.
                read_value(reader, out, depth + 1)?;
            }
            Ok(())
        }
        _ => Err(bad(format!("unknown reply type: {}", render(&line)))),
    }
}

/// A parsed reply: `head` is the type byte plus the header line (without CRLF), `payload` the
/// bulk bytes for blob types, `children` the elements for aggregates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub head: Vec<u8>,
    pub payload: Option<Vec<u8>>,
    pub children: Vec<Frame>,
}

impl Frame {
    /// Parses exactly one complete reply as produced by `RespConn::read_reply`.
    pub fn parse(raw: &[u8]) -> io::Result<Frame> {
        let mut cursor = raw;
        let frame = Frame::parse_from(&mut cursor)?;
        if !cursor.is_empty() {
            return Err(bad("trailing bytes after reply"));
        }
        Ok(frame)
    }

    fn parse_from(cursor: &mut &[u8]) -> io::Result<Frame> {
        let mut sink = Vec::new();
        let head = read_line(cursor, &mut sink)?;
        let kind = head.first().copied().unwrap_or(0);
        let mut frame = Frame {
            head: head.clone(),
            payload: None,
            children: Vec::new(),
        };
        match kind {
            b'$' | b'!' | b'=' => {
                let len = parse_len(&head[1..])?;
                if len >= 0 {
                    let len = len as usize;
                    if cursor.len() < len + 2 {
                        return Err(bad("short bulk"));
                    }
                    frame.payload = Some(cursor[..len].to_vec());
                    *cursor = &cursor[len + 2..];
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let len = parse_len(&head[1..])?;
                let items = if kind == b'%' || kind == b'|' {
                    len * 2
                } else {
                    len
                };
                for _ in 0..items.max(0) {
                    frame.children.push(Frame::parse_from(cursor)?);
                }
                if kind == b'|' {
                    frame.children.push(Frame::parse_from(cursor)?);
                }
            }
            _ => {}
        }
        Ok(frame)
    }

    pub fn kind(&self) -> u8 {
        self.head.first().copied().unwrap_or(0)
    }

    /// The integer of a `:` reply.
    pub fn integer(&self) -> Option<i64> {
        if self.kind() != b':' {
            return None;
        }
        std::str::from_utf8(&self.head[1..]).ok()?.parse().ok()
    }

    /// The text of a simple string / error, or the payload of a blob.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self.kind() {
            b'+' | b'-' | b'(' | b',' => Some(&self.head[1..]),
            _ => self.payload.as_deref(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"\r\n");
        if let Some(payload) = &self.payload {
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\n");
        }
        for child in &self.children {
            child.encode(out);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Renders raw protocol bytes readably: printable ASCII as is, CRLF as `\r\n`, the rest as `\xNN`.
pub fn render(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_reencode_round_trips() {
        let raw: &[u8] = b"*3\r\n$3\r\nfoo\r\n$-1\r\n%1\r\n+a\r\n:5\r\n";
        let frame = Frame::parse(raw).unwrap();
        assert_eq!(frame.children.len(), 3);
        assert_eq!(frame.children[0].bytes(), Some(&b"foo"[..]));
        assert_eq!(frame.children[2].children[1].integer(), Some(5));
        assert_eq!(frame.to_bytes(), raw);
    }

    #[test]
    fn reader_reads_exactly_one_reply() {
        let raw: &[u8] = b"|1\r\n+k\r\n+v\r\n~2\r\n,1.5\r\n_\r\n:7\r\n";
        let mut cursor = raw;
        let mut out = Vec::new();
        read_value(&mut cursor, &mut out, 0).unwrap();
        assert_eq!(&out[..], &raw[..raw.len() - 4]);
        assert_eq!(cursor, b":7\r\n");
    }

    #[test]
    fn encode_command_is_multibulk() {
        assert_eq!(
            encode_command(&["SET", "a", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n"
        );
    }
}
