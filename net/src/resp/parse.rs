//! The RESP request parser: finds one whole request at the front of the connection's read buffer
//! and reports where its arguments lie, so the connection can hand them on as zero-copy `Bytes`.
//!
//! It follows Redis 7's `processMultibulkBuffer` / `processInlineBuffer` / `sdssplitargs` byte for
//! byte, quirks included, so clients see the same replies:
//!
//! - A request starting with `*` is multibulk: `*<count>\r\n` then `count` × `$<len>\r\n<bytes>\r\n`.
//!   Numbers follow `string2ll`: optional `-`, no `+`, no leading zeros, no spaces. A count of 0 or
//!   less is an empty request. Like Redis, the byte after each `\r` and the two bytes after each bulk
//!   are skipped without being checked (`*1\r\n$4\r\nPINGxx` is a valid PING).
//! - Anything else is an inline command: one line ending in `\n` (a `\r` before it is dropped),
//!   split with `sdssplitargs`' quoting rules.
//! - Redis looks for line ends with `strchr`, which stops at a NUL byte: a NUL before the line end
//!   means "no line end yet" (Redis waits, then fails with "too big ..."). We do the same.
//!
//! Deliberate differences, all argued where they are coded:
//! - The "too big ... string/request" checks are made as if bytes arrived one at a time: a header
//!   or inline line longer than `inline_bytes_max` is rejected even when its line end is already in
//!   the buffer. Redis accepts such a line only when it happens to arrive in one read, so its result
//!   depends on TCP segmentation; ours depends only on the bytes, and the scan for a line end is
//!   bounded by the limit.
//! - The multibulk count limit is `multibulk_len_max` (default 1024 × 1024, Redis ≤ 6.2's limit).
//!   Redis 7 accepts counts up to `i32::MAX`; raise the limit to match it.
//! - `expected '$', got 'X'` shows a byte ≥ 0x80 as U+FFFD: Redis writes the raw byte, which a
//!   Rust `String` cannot hold.
//! - No `unauthenticated multibulk/bulk length` checks: authentication is not the parser's job.
//!
//! The parser keeps no state between calls: a request still arriving is parsed again from its
//! first byte on the next call. Each header scan is bounded by `inline_bytes_max`, and bulk bodies
//! are skipped by length, so a re-parse costs O(number of arguments seen so far).

use bytes::{Buf, Bytes, BytesMut};

use crate::Command;

/// Redis's `proto-max-bulk-len` default.
pub const BULK_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;
/// Redis ≤ 6.2's multibulk count limit (Redis 7 allows up to `i32::MAX`).
pub const MULTIBULK_LEN_MAX_DEFAULT: usize = 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline line or header line without a line end.
pub const INLINE_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Redis stores the multibulk count in an `int`.
const MULTIBULK_LEN_MAX_REDIS: i64 = i32::MAX as i64;
/// `string2ll` rejects strings of `LONG_STR_SIZE` (21) bytes or more.
const LONG_STR_BYTES_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// The largest bulk argument accepted (`$<len>`).
    pub bulk_bytes_max: usize,
    /// The largest argument count accepted (`*<count>`).
    pub multibulk_len_max: usize,
    /// The longest inline line, and the longest `*`/`$` header line, without a line end.
    pub inline_bytes_max: usize,
}

impl Default for ParseLimits {
    fn default() -> ParseLimits {
        ParseLimits {
            bulk_bytes_max: BULK_BYTES_MAX_DEFAULT,
            multibulk_len_max: MULTIBULK_LEN_MAX_DEFAULT,
            inline_bytes_max: INLINE_BYTES_MAX_DEFAULT,
        }
    }
}

/// A malformed request. `Display` is exactly the error line Redis sends (without the `-`); the
/// connection replies with it and then closes, as Redis does after a protocol error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// The byte found where a bulk header's `$` should be.
    #[error("ERR Protocol error: expected '$', got '{}'", redis_char(*.0))]
    ExpectedDollar(u8),
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// How Redis prints one byte with `%c` in an error: CR and LF become spaces (the error sanitizer),
/// other ASCII as is; bytes ≥ 0x80 as U+FFFD (see the module doc).
fn redis_char(byte: u8) -> char {
    match byte {
        b'\r' | b'\n' => ' ',
        0..=0x7f => char::from(byte),
        _ => char::REPLACEMENT_CHARACTER,
    }
}

/// One argument of a parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// The argument is `buf[start..end]` (every multibulk argument, and inline arguments without
    /// escapes or quotes in the middle).
    Range(usize, usize),
    /// An inline argument rebuilt from escapes or quotes; not a slice of the buffer.
    Owned(Bytes),
}

/// Parses one request from the front of `buf`. `Ok(None)`: incomplete, read more. `Ok(Some(n))`:
/// a whole request of `n` bytes was found; `args` (cleared first) holds its arguments. An empty
/// request (a blank inline line, or `*0`/`*-1`) yields `Ok(Some(n))` with `args` empty: the caller
/// skips `n` bytes. On the multibulk path nothing is allocated but `args`' growth, and `args` grows
/// only with headers that have arrived, never with a declared count.
pub fn parse_request(
    buf: &[u8],
    limits: &ParseLimits,
    args: &mut Vec<Arg>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    let result = match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits, args),
        Some(_) => parse_inline(buf, limits, args),
    };
    if let Ok(Some(n)) = result {
        assert!(n > 0 && n <= buf.len());
        assert!(args.iter().all(|arg| match *arg {
            Arg::Range(start, end) => start <= end && end <= n,
            Arg::Owned(_) => true,
        }));
    } else {
        args.clear();
    }
    result
}

/// Splits the `n` bytes of a request parsed by [`parse_request`] off `buf` and returns its
/// `Command`, whose arguments are zero-copy slices of those bytes (`None` for an empty request).
/// The slices keep the request's bytes alive, not the rest of `buf`.
pub fn take_command(buf: &mut BytesMut, n: usize, args: &[Arg]) -> Option<Command> {
    assert!(
        n <= buf.len(),
        "request of {n} bytes in a buffer of {}",
        buf.len()
    );
    let mut request = buf.split_to(n).freeze();
    let (last, rest) = args.split_last()?;
    let mut taken: Vec<Bytes> = Vec::with_capacity(args.len());
    taken.extend(rest.iter().map(|arg| match arg {
        Arg::Range(start, end) => request.slice(*start..*end),
        Arg::Owned(bytes) => bytes.clone(),
    }));
    // The last argument takes the request's own handle, cut down to it: one reference
    // count taken and dropped less per command (they are atomic: ~10 % of a pipelined
    // ZADD's profile went to the arguments' counts).
    taken.push(match last {
        Arg::Range(start, end) => {
            request.truncate(*end);
            request.advance(*start);
            request
        }
        Arg::Owned(bytes) => bytes.clone(),
    });
    Some(Command::new(taken))
}

fn parse_multibulk(
    buf: &[u8],
    limits: &ParseLimits,
    args: &mut Vec<Arg>,
) -> Result<Option<usize>, ProtocolError> {
    debug_assert_eq!(buf[0], b'*');
    let Some(cr) = find_line_end(buf, 0, b'\r', limits.inline_bytes_max)
        .map_err(|()| ProtocolError::TooBigMultibulkCount)?
    else {
        return Ok(None);
    };
    // Redis only checks that one byte follows the `\r`, not that it is `\n`.
    if cr + 2 > buf.len() {
        return Ok(None);
    }
    let count_max =
        MULTIBULK_LEN_MAX_REDIS.min(i64::try_from(limits.multibulk_len_max).unwrap_or(i64::MAX));
    let count = match string2ll(&buf[1..cr]) {
        Some(count) if count <= count_max => count,
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    let mut pos = cr + 2;
    // `count` is at most `i32::MAX`; a count <= 0 is an empty request.
    for _ in 0..count.max(0) {
        match parse_bulk(buf, pos, limits)? {
            None => return Ok(None),
            Some((start, end, next)) => {
                args.push(Arg::Range(start, end));
                pos = next;
            }
        }
    }
    Ok(Some(pos))
}

/// Parses `$<len>\r\n<bytes>\r\n` at `pos`: `Some((start, end, next))` with the argument at
/// `buf[start..end]` and the next header at `next`; `None` if incomplete.
fn parse_bulk(
    buf: &[u8],
    pos: usize,
    limits: &ParseLimits,
) -> Result<Option<(usize, usize, usize)>, ProtocolError> {
    let Some(cr) = find_line_end(buf, pos, b'\r', limits.inline_bytes_max)
        .map_err(|()| ProtocolError::TooBigBulkCount)?
    else {
        return Ok(None);
    };
    if cr + 2 > buf.len() {
        return Ok(None);
    }
    if buf[pos] != b'$' {
        return Err(ProtocolError::ExpectedDollar(buf[pos]));
    }
    let len = string2ll(&buf[pos + 1..cr])
        .and_then(|len| usize::try_from(len).ok())
        .filter(|&len| len <= limits.bulk_bytes_max)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let start = cr + 2;
    // Redis skips the two bytes after the argument without checking that they are `\r\n`.
    match start.checked_add(len).and_then(|end| end.checked_add(2)) {
        Some(next) if next <= buf.len() => Ok(Some((start, start + len, next))),
        _ => Ok(None),
    }
}

fn parse_inline(
    buf: &[u8],
    limits: &ParseLimits,
    args: &mut Vec<Arg>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = find_line_end(buf, 0, b'\n', limits.inline_bytes_max)
        .map_err(|()| ProtocolError::TooBigInline)?
    else {
        return Ok(None);
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    split_args(&buf[..line_end], args)?;
    Ok(Some(newline + 1))
}

/// Finds the first `end` byte at or after `from`, the way Redis's `strchr` does (a NUL byte ends
/// the search). `Ok(None)`: not there yet. `Err(())`: more than `line_bytes_max` bytes were seen
/// without one, so Redis, reading byte by byte, would have given up.
fn find_line_end(
    buf: &[u8],
    from: usize,
    end: u8,
    line_bytes_max: usize,
) -> Result<Option<usize>, ()> {
    debug_assert!(from <= buf.len());
    let window_end = buf
        .len()
        .min(from.saturating_add(line_bytes_max).saturating_add(1));
    let found = buf[from..window_end]
        .iter()
        .position(|&byte| byte == end || byte == 0);
    match found {
        Some(offset) if buf[from + offset] == end => Ok(Some(from + offset)),
        _ if buf.len() - from > line_bytes_max => Err(()),
        _ => Ok(None),
    }
}

/// Redis's `string2ll`: an optional `-`, then `0` alone or a digit 1-9 and more digits, fitting
/// an `i64`, in fewer than 21 bytes.
fn string2ll(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > LONG_STR_BYTES_MAX {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// C's `isspace` in the C locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Redis's `sdssplitargs` over one inline line (which holds no NUL: `find_line_end` stops there).
/// Reading past the end yields 0, as reading a C string's terminator does.
fn split_args(line: &[u8], args: &mut Vec<Arg>) -> Result<(), ProtocolError> {
    let at = |index: usize| line.get(index).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(());
        }
        let mut token = Token {
            start: p,
            end: p,
            owned: None,
        };
        p = split_token(line, p, &mut token)?;
        args.push(token.finish());
    }
}

/// Reads one token starting at `p` (not a space) into `token`; returns where the next one may
/// start. The state machine is `sdssplitargs`' inner loop, case for case.
fn split_token(line: &[u8], mut p: usize, token: &mut Token) -> Result<usize, ProtocolError> {
    let at = |index: usize| line.get(index).copied().unwrap_or(0);
    let (mut in_double, mut in_single, mut done) = (false, false, false);
    while !done {
        let byte = at(p);
        if in_double {
            if let (b'\\', b'x', Some(high), Some(low)) =
                (byte, at(p + 1), hex_value(at(p + 2)), hex_value(at(p + 3)))
            {
                token.push_byte(line, high * 16 + low);
                p += 3;
            } else if byte == b'\\' && at(p + 1) != 0 {
                p += 1;
                let escaped = match at(p) {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                };
                token.push_byte(line, escaped);
            } else if byte == b'"' {
                // A closing quote must be followed by a space or nothing at all.
                if at(p + 1) != 0 && !is_space(at(p + 1)) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                done = true;
            } else if byte == 0 {
                return Err(ProtocolError::UnbalancedQuotes);
            } else {
                token.push_source(line, p);
            }
        } else if in_single {
            if byte == b'\\' && at(p + 1) == b'\'' {
                p += 1;
                token.push_byte(line, b'\'');
            } else if byte == b'\'' {
                if at(p + 1) != 0 && !is_space(at(p + 1)) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                done = true;
            } else if byte == 0 {
                return Err(ProtocolError::UnbalancedQuotes);
            } else {
                token.push_source(line, p);
            }
        } else {
            match byte {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                b'"' => in_double = true,
                b'\'' => in_single = true,
                _ => token.push_source(line, p),
            }
        }
        if at(p) != 0 {
            p += 1;
        }
    }
    Ok(p)
}

/// An inline token being built: a range of the line while its bytes are contiguous there,
/// copied out on the first escape or quote that breaks the run.
struct Token {
    start: usize,
    end: usize,
    owned: Option<Vec<u8>>,
}

impl Token {
    /// Appends `line[index]`.
    fn push_source(&mut self, line: &[u8], index: usize) {
        match &mut self.owned {
            Some(owned) => owned.push(line[index]),
            None if self.start == self.end => (self.start, self.end) = (index, index + 1),
            None if self.end == index => self.end += 1,
            None => self.push_byte(line, line[index]),
        }
    }

    /// Appends a byte that is not where the range would continue (an escape's value).
    fn push_byte(&mut self, line: &[u8], byte: u8) {
        let owned = self
            .owned
            .get_or_insert_with(|| line[self.start..self.end].to_vec());
        owned.push(byte);
    }

    fn finish(self) -> Arg {
        match self.owned {
            Some(owned) => Arg::Owned(Bytes::from(owned)),
            None => Arg::Range(self.start, self.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> ParseLimits {
        ParseLimits::default()
    }

    /// The arguments as byte strings, resolving ranges against `buf`.
    fn resolve(buf: &[u8], args: &[Arg]) -> Vec<Vec<u8>> {
        args.iter()
            .map(|arg| match arg {
                Arg::Range(start, end) => buf[*start..*end].to_vec(),
                Arg::Owned(bytes) => bytes.to_vec(),
            })
            .collect()
    }

    type Parsed = Result<Option<(usize, Vec<Vec<u8>>)>, ProtocolError>;

    fn parse_with(buf: &[u8], limits: &ParseLimits) -> Parsed {
        let mut args = vec![Arg::Range(0, 0)]; // Must be cleared.
        let parsed = parse_request(buf, limits, &mut args)?;
        Ok(parsed.map(|n| (n, resolve(buf, &args))))
    }

    fn parse(buf: &[u8]) -> Parsed {
        parse_with(buf, &limits())
    }

    fn request(n: usize, args: &[&[u8]]) -> Parsed {
        Ok(Some((n, args.iter().map(|arg| arg.to_vec()).collect())))
    }

    /// Every strict prefix of `input` is incomplete, or fails as the whole input does: the result
    /// does not depend on how the bytes were split into reads.
    fn assert_split_invariant(input: &[u8], limits: &ParseLimits) {
        let whole = parse_with(input, limits);
        for cut in 0..input.len() {
            let prefix = parse_with(&input[..cut], limits);
            match (&prefix, &whole) {
                (Ok(None), _) => {}
                (Err(prefix_error), Err(whole_error)) if prefix_error == whole_error => {}
                (Ok(Some(_)), Ok(Some(_))) if prefix == whole => {}
                _ => panic!("cut at {cut} of {input:?}: {prefix:?}, whole: {whole:?}"),
            }
        }
    }

    #[test]
    fn multibulk_request() {
        let input = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        assert_eq!(parse(input), request(input.len(), &[b"ECHO", b"hello"]));
        let mut args = Vec::new();
        parse_request(input, &limits(), &mut args).unwrap();
        assert_eq!(args, vec![Arg::Range(8, 12), Arg::Range(18, 23)]);
    }

    #[test]
    fn multibulk_binary_and_empty_arguments() {
        let input = b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\n\r\n\0\xff\r\n";
        assert_eq!(
            parse(input),
            request(input.len(), &[b"SET", b"", b"\r\n\0\xff"])
        );
    }

    #[test]
    fn multibulk_pipelined_stops_after_first_request() {
        let input = b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        assert_eq!(parse(input), request(14, &[b"PING"]));
        assert_eq!(parse(&input[14..]), request(14, &[b"PING"]));
    }

    #[test]
    fn multibulk_empty_counts_are_empty_requests() {
        assert_eq!(parse(b"*0\r\nPING\r\n"), request(4, &[]));
        assert_eq!(parse(b"*-1\r\n"), request(5, &[]));
        assert_eq!(parse(b"*-9223372036854775808\r\n"), request(23, &[]));
    }

    #[test]
    fn multibulk_unchecked_line_ends_as_redis() {
        // Redis skips the byte after `\r` and the two bytes after a bulk unchecked.
        assert_eq!(parse(b"*1\r\n$4\r\nPINGxx"), request(14, &[b"PING"]));
        assert_eq!(parse(b"*1\rX$4\rXPING\r\n"), request(14, &[b"PING"]));
        assert_eq!(parse(b"*1\r\n$4\r\nPINGx"), Ok(None));
        assert_eq!(parse(b"*1\r"), Ok(None));
    }

    #[test]
    fn multibulk_count_errors() {
        for bad in [
            &b"*\r\n"[..],
            b"*-0\r\n",
            b"*01\r\n",
            b"*+1\r\n",
            b"*1 \r\n",
            b"* 1\r\n",
            b"*x\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProtocolError::InvalidMultibulkLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse(b"*99999999999999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(parse(b"*1048576\r\n"), Ok(None));
        assert_eq!(
            parse(b"*1048577\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let redis7 = ParseLimits {
            multibulk_len_max: usize::MAX,
            ..limits()
        };
        assert_eq!(parse_with(b"*2147483647\r\n", &redis7), Ok(None));
        assert_eq!(
            parse_with(b"*2147483648\r\n", &redis7),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            ProtocolError::InvalidMultibulkLength.to_string(),
            "ERR Protocol error: invalid multibulk length"
        );
    }

    #[test]
    fn multibulk_bulk_length_errors() {
        for bad in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$01\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$+1\r\n",
            b"*1\r\n$1x\r\n",
        ] {
            assert_eq!(parse(bad), Err(ProtocolError::InvalidBulkLength), "{bad:?}");
        }
        assert_eq!(parse(b"*1\r\n$536870912\r\n"), Ok(None));
        assert_eq!(
            parse(b"*1\r\n$536870913\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$9223372036854775807\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        let unlimited = ParseLimits {
            bulk_bytes_max: usize::MAX,
            ..limits()
        };
        assert_eq!(
            parse_with(b"*1\r\n$9223372036854775807\r\nab", &unlimited),
            Ok(None)
        );
        assert_eq!(
            ProtocolError::InvalidBulkLength.to_string(),
            "ERR Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn multibulk_expected_dollar() {
        assert_eq!(
            parse(b"*1\r\nX4\r\n"),
            Err(ProtocolError::ExpectedDollar(b'X'))
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'X').to_string(),
            "ERR Protocol error: expected '$', got 'X'"
        );
        // As Redis: the CR or LF is shown as a space.
        assert_eq!(
            parse(b"*1\r\n\r\n"),
            Err(ProtocolError::ExpectedDollar(b'\r'))
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'\r').to_string(),
            "ERR Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            parse(b"*1\r\n\n\r\n"),
            Err(ProtocolError::ExpectedDollar(b'\n'))
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(0xff).to_string(),
            "ERR Protocol error: expected '$', got '\u{fffd}'"
        );
        // The header line must be complete before the `$` is checked.
        assert_eq!(parse(b"*1\r\nX4"), Ok(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(b':'))
        );
    }

    #[test]
    fn nul_hides_the_line_end_as_in_redis() {
        assert_eq!(parse(b"*1\r\n\0\r\n"), Ok(None));
        assert_eq!(parse(b"*1\0\r\n"), Ok(None));
        assert_eq!(parse(b"PING\0\n"), Ok(None));
        let mut long = b"PING\0\n".to_vec();
        long.resize(INLINE_BYTES_MAX_DEFAULT + 1, b'\n');
        assert_eq!(parse(&long), Err(ProtocolError::TooBigInline));
    }

    #[test]
    fn too_big_header_lines() {
        let mut count = b"*".to_vec();
        count.resize(INLINE_BYTES_MAX_DEFAULT, b'1');
        assert_eq!(parse(&count), Ok(None));
        count.push(b'1');
        assert_eq!(parse(&count), Err(ProtocolError::TooBigMultibulkCount));
        assert_eq!(
            ProtocolError::TooBigMultibulkCount.to_string(),
            "ERR Protocol error: too big mbulk count string"
        );

        let mut bulk = b"*1\r\n$".to_vec();
        bulk.resize(4 + INLINE_BYTES_MAX_DEFAULT, b'1');
        assert_eq!(parse(&bulk), Ok(None));
        bulk.push(b'1');
        assert_eq!(parse(&bulk), Err(ProtocolError::TooBigBulkCount));
        let mut garbage = b"*1\r\n".to_vec();
        garbage.resize(4 + INLINE_BYTES_MAX_DEFAULT + 1, b'x');
        assert_eq!(parse(&garbage), Err(ProtocolError::TooBigBulkCount));
        assert_eq!(
            ProtocolError::TooBigBulkCount.to_string(),
            "ERR Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn too_big_inline() {
        let mut line = vec![b'a'; INLINE_BYTES_MAX_DEFAULT];
        assert_eq!(parse(&line), Ok(None));
        line.push(b'a');
        assert_eq!(parse(&line), Err(ProtocolError::TooBigInline));
        assert_eq!(
            ProtocolError::TooBigInline.to_string(),
            "ERR Protocol error: too big inline request"
        );
        // A line within the limit is fine, however long the buffer.
        let mut ok = vec![b'a'; INLINE_BYTES_MAX_DEFAULT];
        ok.extend_from_slice(b"\nmore");
        ok.resize(3 * INLINE_BYTES_MAX_DEFAULT, b'b');
        assert!(matches!(parse(&ok), Ok(Some((n, _))) if n == INLINE_BYTES_MAX_DEFAULT + 1));
        // Longer than the limit, even with its newline already here: Redis reading it in pieces
        // would have refused it (see the module doc).
        let mut long = vec![b'a'; INLINE_BYTES_MAX_DEFAULT + 1];
        long.push(b'\n');
        assert_eq!(parse(&long), Err(ProtocolError::TooBigInline));
    }

    #[test]
    fn inline_requests() {
        assert_eq!(parse(b"PING\r\n"), request(6, &[b"PING"]));
        assert_eq!(parse(b"PING\n"), request(5, &[b"PING"]));
        assert_eq!(
            parse(b"SET  k \t v\r\nGET k\r\n"),
            request(12, &[b"SET", b"k", b"v"])
        );
        assert_eq!(parse(b"ECHO a\r\r\n"), request(9, &[b"ECHO", b"a"]));
        // A vertical tab skips as a blank before a token but does not end one.
        assert_eq!(
            parse(b"\x0bECHO x\x0by\r\n"),
            request(11, &[b"ECHO", b"x\x0by"])
        );
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(parse(b"PING\r"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn inline_empty_lines_are_empty_requests() {
        assert_eq!(parse(b"\r\n"), request(2, &[]));
        assert_eq!(parse(b"\n"), request(1, &[]));
        assert_eq!(parse(b"   \t\r\nPING\r\n"), request(6, &[]));
    }

    #[test]
    fn inline_quotes_and_escapes() {
        assert_eq!(
            parse(b"ECHO \"a\\x41\\n\\q\\r\\t\\b\\a\\\\\\\"\"\r\n"),
            request(30, &[b"ECHO", b"aA\nq\r\t\x08\x07\\\""])
        );
        assert_eq!(parse(b"ECHO 'a\\'b'\r\n"), request(13, &[b"ECHO", b"a'b"]));
        assert_eq!(parse(b"ECHO 'a\\b'\r\n"), request(12, &[b"ECHO", b"a\\b"]));
        assert_eq!(
            parse(b"ECHO \"a\\x4\"\r\n"),
            request(13, &[b"ECHO", b"ax4"])
        );
        assert_eq!(
            parse(b"ECHO \"\\x4G\\XAB\"\r\n"),
            request(17, &[b"ECHO", b"x4GXAB"])
        );
        assert_eq!(parse(b"ECHO \"\"\r\n"), request(9, &[b"ECHO", b""]));
        assert_eq!(
            parse(b"ECHO ab\"cd\"\r\n"),
            request(13, &[b"ECHO", b"abcd"])
        );
        assert_eq!(
            parse(b"ECHO a\"b c\"\r\n"),
            request(13, &[b"ECHO", b"ab c"])
        );
        assert_eq!(parse(b"ECHO \"x\"\x0b\r\n"), request(11, &[b"ECHO", b"x"]));
        assert_eq!(parse(b"\"\" x\n"), request(5, &[b"", b"x"]));
    }

    #[test]
    fn inline_plain_and_simply_quoted_arguments_are_ranges() {
        let input = b"SET \"k\" 'v w' \"\"\r\n";
        let mut args = Vec::new();
        assert_eq!(
            parse_request(input, &limits(), &mut args),
            Ok(Some(input.len()))
        );
        assert_eq!(
            args,
            vec![
                Arg::Range(0, 3),
                Arg::Range(5, 6),
                Arg::Range(9, 12),
                Arg::Range(14, 14)
            ]
        );
        let escaped = b"SET \"a\\nb\"\r\n";
        assert_eq!(
            parse_request(escaped, &limits(), &mut args),
            Ok(Some(escaped.len()))
        );
        assert_eq!(
            args,
            vec![Arg::Range(0, 3), Arg::Owned(Bytes::from_static(b"a\nb"))]
        );
    }

    #[test]
    fn inline_unbalanced_quotes() {
        for bad in [
            &b"ECHO \"abc\r\n"[..],
            b"ECHO \"abc\"d\r\n",
            b"ECHO \"a b\"c\r\n",
            b"ECHO \"a\\\"\r\n",
            b"ECHO 'x\r\n",
            b"ECHO 'x'y\n",
            b"ECHO \"\\\n",
        ] {
            assert_eq!(parse(bad), Err(ProtocolError::UnbalancedQuotes), "{bad:?}");
        }
        assert_eq!(
            ProtocolError::UnbalancedQuotes.to_string(),
            "ERR Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn split_at_every_offset() {
        let mut big = b"*2\r\n$3\r\nGET\r\n$300\r\n".to_vec();
        big.extend_from_slice(&[b'x'; 300]);
        big.extend_from_slice(b"\r\n");
        let inputs: [&[u8]; 12] = [
            b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n",
            b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\n\r\n\0\xff\r\n",
            b"*0\r\n",
            b"ECHO \"a\\x41\" 'b\\'c' d\r\n",
            b"PING\n",
            b"\r\n",
            b"*1\r\nX4\r\n",
            b"*1\r\n$-1\r\n",
            b"*-0\r\n",
            b"ECHO \"abc\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
            &big,
        ];
        for input in inputs {
            assert_split_invariant(input, &limits());
        }
        let small = ParseLimits {
            inline_bytes_max: 8,
            ..limits()
        };
        for input in [
            &b"*1\r\n$123456789\r\n"[..],
            b"*123456789\r\n",
            b"ECHO abcdefgh\r\n",
        ] {
            assert_split_invariant(input, &small);
        }
    }

    #[test]
    fn take_command_slices_the_request() {
        let mut buf =
            BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nECHO \"a\\tb\"\r\n\r\n"[..]);
        let mut args = Vec::new();
        let n = parse_request(&buf, &limits(), &mut args).unwrap().unwrap();
        let command = take_command(&mut buf, n, &args).unwrap();
        assert_eq!(
            command.args,
            vec![Bytes::from_static(b"ECHO"), Bytes::from_static(b"hi")]
        );
        let n = parse_request(&buf, &limits(), &mut args).unwrap().unwrap();
        let command = take_command(&mut buf, n, &args).unwrap();
        assert_eq!(
            command.args,
            vec![Bytes::from_static(b"ECHO"), Bytes::from_static(b"a\tb")]
        );
        let n = parse_request(&buf, &limits(), &mut args).unwrap().unwrap();
        assert_eq!(take_command(&mut buf, n, &args), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"18446744073709551616",
        ] {
            assert_eq!(string2ll(bad), None, "{bad:?}");
        }
    }

    /// Encodes a command as a multibulk request, as clients do.
    fn encode_multibulk(args: &[Vec<u8>], out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Quotes an argument for an inline request the way `redis-cli` (`sdscatrepr`) does.
    fn quote_inline(arg: &[u8], out: &mut Vec<u8>) {
        out.push(b'"');
        for &byte in arg {
            match byte {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', byte]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b' '..=b'~' => out.push(byte),
                _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            }
        }
        out.push(b'"');
    }

    /// Feeds `stream` to the parser in the given chunks, like a connection does, and collects the
    /// commands.
    fn feed(stream: &[u8], cuts: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let (mut buf, mut commands, mut args, mut fed) =
            (BytesMut::new(), Vec::new(), Vec::new(), 0);
        for cut in cuts {
            buf.extend_from_slice(&stream[fed..cut]);
            fed = cut;
            while let Some(n) = parse_request(&buf, &limits(), &mut args)? {
                if let Some(command) = take_command(&mut buf, n, &args) {
                    commands.push(command.args.iter().map(|arg| arg.to_vec()).collect());
                }
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(commands)
    }

    fn commands() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
        let arg = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*'), Just(0u8)],
                0..8
            ),
        ];
        proptest::collection::vec(proptest::collection::vec(arg, 1..8), 1..12)
    }

    /// Bytes drawn mostly from the protocol's own alphabet, to reach every branch.
    fn protocol_noise() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => proptest::sample::select(b"*$\r\n-0123456789 \"'\\xaF\t\x0b\0".to_vec()),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..200)
    }

    proptest! {
        #[test]
        fn multibulk_round_trip(commands in commands(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let mut stream = Vec::new();
            for command in &commands {
                encode_multibulk(command, &mut stream);
            }
            prop_assert_eq!(feed(&stream, &cuts)?, commands);
        }

        #[test]
        fn inline_round_trip(commands in commands(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let mut stream = Vec::new();
            for command in &commands {
                for arg in command {
                    quote_inline(arg, &mut stream);
                    stream.push(b' ');
                }
                stream.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(feed(&stream, &cuts)?, commands);
        }

        #[test]
        fn random_bytes_never_panic(
            input in prop_oneof![protocol_noise(), proptest::collection::vec(any::<u8>(), 0..200)],
            inline_bytes_max in prop_oneof![Just(INLINE_BYTES_MAX_DEFAULT), 0usize..16],
            bulk_bytes_max in prop_oneof![Just(BULK_BYTES_MAX_DEFAULT), 0usize..16],
        ) {
            let limits = ParseLimits { inline_bytes_max, bulk_bytes_max, multibulk_len_max: 16 };
            let mut args = Vec::new();
            if let Ok(Some(n)) = parse_request(&input, &limits, &mut args) {
                prop_assert!(n > 0 && n <= input.len());
                for arg in &args {
                    if let Arg::Range(start, end) = *arg {
                        prop_assert!(start <= end && end <= n);
                    }
                }
            }
            assert_split_invariant(&input, &limits);
        }

        #[test]
        fn mutated_requests_never_panic(
            commands in commands(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut stream = Vec::new();
            for command in &commands {
                encode_multibulk(command, &mut stream);
            }
            for (index, byte) in edits {
                let index = index % stream.len();
                stream[index] = byte;
            }
            let mut args = Vec::new();
            if let Ok(Some(n)) = parse_request(&stream, &limits(), &mut args) {
                prop_assert!(n <= stream.len());
                prop_assert!(args.iter().all(|arg| !matches!(*arg, Arg::Range(_, end) if end > n)));
            }
        }
    }
}
