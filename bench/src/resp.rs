//! A minimal RESP client codec: request encoding into a reused buffer (keys are fixed width so
//! each request is a memcpy of a pre-encoded header plus a few digits) and a reply reader that
//! only finds where a reply ends and whether it is an error or a nil. RESP2 and RESP3 replies.

use thiserror::Error;

/// Nested aggregates deeper than this are a protocol error (our commands reply at depth ≤ 1).
const REPLY_DEPTH_MAX: usize = 8;
/// Key ids are written as this many zero-padded digits after the prefix.
pub const KEY_DIGITS: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
}

/// What one complete reply was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Value,
    Nil,
    /// An error reply; the range (within the parsed buffer) holds its first word (`ERR`,
    /// `WRONGTYPE`, ...), which is what errors are counted by.
    Error {
        start: usize,
        end: usize,
    },
}

/// Parses one reply at the start of `buf`: `Ok(None)` when incomplete, else its length and kind.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(usize, ReplyKind)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn parse_at(
    buf: &[u8],
    pos: usize,
    depth: usize,
) -> Result<Option<(usize, ReplyKind)>, ProtocolError> {
    if depth > REPLY_DEPTH_MAX {
        return Err(ProtocolError::Malformed("nesting too deep"));
    }
    let Some(line_end) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let Some(&tag) = buf.get(pos) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..line_end];
    let after = line_end + 2;
    match tag {
        b'+' | b':' | b',' | b'#' | b'(' => Ok(Some((after, ReplyKind::Value))),
        b'_' => Ok(Some((after, ReplyKind::Nil))),
        b'-' => {
            let word = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
            Ok(Some((after, error_kind(pos + 1, word))))
        }
        b'$' | b'=' | b'!' => {
            let len = parse_int(line)?;
            if len < 0 {
                return Ok(Some((after, ReplyKind::Nil)));
            }
            let end = after + len as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(ProtocolError::Malformed("bulk string not followed by CRLF"));
            }
            if tag == b'!' {
                let body = &buf[after..end - 2];
                let word = body.iter().position(|&b| b == b' ').unwrap_or(body.len());
                return Ok(Some((end, error_kind(after, word))));
            }
            Ok(Some((end, ReplyKind::Value)))
        }
        b'*' | b'~' | b'>' | b'%' => {
            let count = parse_int(line)?;
            if count < 0 {
                return Ok(Some((after, ReplyKind::Nil)));
            }
            let elements = count as usize * if tag == b'%' { 2 } else { 1 };
            let mut at = after;
            for _ in 0..elements {
                match parse_at(buf, at, depth + 1)? {
                    Some((next, _)) => at = next,
                    None => return Ok(None),
                }
            }
            Ok(Some((at, ReplyKind::Value)))
        }
        _ => Err(ProtocolError::Malformed("unknown reply type byte")),
    }
}

fn error_kind(start: usize, len: usize) -> ReplyKind {
    ReplyKind::Error {
        start,
        end: start + len,
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    if from >= buf.len() {
        return None;
    }
    let mut at = from;
    loop {
        let cr = at + buf[at..].iter().position(|&b| b == b'\r')?;
        match buf.get(cr + 1) {
            Some(b'\n') => return Some(cr),
            Some(_) => at = cr + 1,
            None => return None,
        }
    }
}

/// A RESP length: optional '-', then 1..=18 decimal digits (no overflow possible).
fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(ProtocolError::Malformed("bad length"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ProtocolError::Malformed("bad length"));
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if negative { -n } else { n })
}

/// Appends `*count\r\n$len\r\nNAME\r\n`: the array header and command name, pre-encodable.
pub fn command_header(name: &str, args_after_name: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(format!("*{}\r\n", args_after_name + 1).as_bytes());
    push_bulk(&mut buf, name.as_bytes());
    buf
}

pub fn push_bulk(buf: &mut Vec<u8>, arg: &[u8]) {
    buf.push(b'$');
    push_decimal(buf, arg.len() as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(arg);
    buf.extend_from_slice(b"\r\n");
}

fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends the bulk string `$len\r\n<prefix><id as KEY_DIGITS digits>\r\n`.
pub fn push_key(buf: &mut Vec<u8>, prefix: &[u8], id: u64) {
    buf.push(b'$');
    push_decimal(buf, (prefix.len() + KEY_DIGITS) as u64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(prefix);
    let mut digits = [b'0'; KEY_DIGITS];
    let mut n = id;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    assert_eq!(n, 0, "key id {id} wider than {KEY_DIGITS} digits");
    buf.extend_from_slice(&digits);
    buf.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLIES: &[u8] = b"+OK\r\n$5\r\nhello\r\n$-1\r\n:42\r\n-WRONGTYPE Operation against a key\r\n*3\r\n$1\r\na\r\n$-1\r\n:1\r\n_\r\n%1\r\n+k\r\n+v\r\n!9\r\nERR oops!\r\n";

    fn parse_all(buf: &[u8]) -> Vec<ReplyKind> {
        let mut kinds = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let (len, kind) = parse_reply(&buf[at..]).unwrap().expect("complete");
            kinds.push(match kind {
                ReplyKind::Error { start, end } => {
                    assert!(matches!(&buf[at + start..at + end], b"WRONGTYPE" | b"ERR"));
                    kind
                }
                k => k,
            });
            at += len;
        }
        kinds
    }

    #[test]
    fn parses_every_reply_kind() {
        let kinds = parse_all(REPLIES);
        assert_eq!(kinds.len(), 9);
        assert_eq!(kinds[0], ReplyKind::Value);
        assert_eq!(kinds[2], ReplyKind::Nil);
        assert!(matches!(kinds[4], ReplyKind::Error { .. }));
        assert_eq!(kinds[5], ReplyKind::Value);
        assert_eq!(kinds[6], ReplyKind::Nil);
        assert!(matches!(kinds[8], ReplyKind::Error { .. }));
    }

    #[test]
    fn every_split_point_is_incomplete_then_complete() {
        // Each prefix of a reply stream must parse as some complete replies then one
        // incomplete one, never as an error or a wrong length.
        let whole = parse_all(REPLIES);
        for cut in 0..REPLIES.len() {
            let head = &REPLIES[..cut];
            let mut at = 0;
            let mut count = 0;
            while let Some((len, _)) = parse_reply(&head[at..]).unwrap() {
                at += len;
                count += 1;
            }
            assert!(count < whole.len());
            // Feeding the rest completes the stream with the same kinds.
            let mut joined = head.to_vec();
            joined.extend_from_slice(&REPLIES[cut..]);
            assert_eq!(parse_all(&joined), whole);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_reply(b"?what\r\n").is_err());
        assert!(parse_reply(b"$x\r\n").is_err());
        assert!(parse_reply(b"$\r\n").is_err());
        assert!(parse_reply(b"*1-\r\n").is_err());
        assert_eq!(
            parse_reply(b"+a\rb\r\n").unwrap(),
            Some((6, ReplyKind::Value))
        );
        assert!(parse_reply(b"$3\r\nabcXY").is_err());
    }

    #[test]
    fn encodes_fixed_width_keys() {
        let mut buf = command_header("GET", 1);
        push_key(&mut buf, b"key:", 42);
        assert_eq!(buf, b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n");
    }
}
