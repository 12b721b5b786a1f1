//! The RESP reply encoder: writes a [`Reply`] in RESP2 or RESP3 exactly as Redis 7 writes the
//! same reply, appending to the connection's write buffer (no allocation beyond growing it).
//!
//! Doubles are formatted as Redis 7.2's `d2string` does (the RESP2 bulk string and the RESP3 `,`
//! line carry the same text): `nan`, `inf`, `-inf`, `0`, `-0`; integral values within ±2^62 as
//! integers (`3`, not `3.0`); anything else from the shortest digits that round-trip, laid out by
//! the rules of the `fpconv_dtoa` (Grisu2) code Redis 7.2 took up: plain decimals such as `1.5`,
//! `0.1`, `0.00012`; an exponent without padding once the number is very large or small, such as
//! `1e+300` or `1.5e-7`. Two caveats, both invisible to a client that parses the number:
//! - Redis 7.0 (the `redis-server` 7.0.15 installed on the dev machines) still prints `%.17g`,
//!   so it answers `0.10000000000000001` and `1e+17` where 7.2 and we answer `0.1` and
//!   `100000000000000000`.
//! - Grisu2 is not always shortest; in rare cases Redis 7.2 prints a longer digit string for the
//!   same double. Both read back as the same `f64`.

use std::fmt::Write as _;

use crate::Reply;

/// The protocol version a client chose with HELLO (RESP2 until it does).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// Appends `reply`, encoded for `proto`, to `out`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut Vec<u8>) {
    let resp3 = proto == Protocol::Resp3;
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Status(text) => encode_line(b'+', text, out),
        Reply::Error(text) => encode_line(b'-', text, out),
        Reply::Int(value) => encode_header(b':', *value, out),
        Reply::Bulk(bytes) => encode_bulk(bytes, out),
        Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::Null => out.extend_from_slice(b"$-1\r\n"),
        Reply::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) => encode_aggregate(b'*', items, proto, out),
        Reply::Set(items) => encode_aggregate(if resp3 { b'~' } else { b'*' }, items, proto, out),
        Reply::Push(items) => encode_aggregate(if resp3 { b'>' } else { b'*' }, items, proto, out),
        Reply::Many(replies) => {
            for reply in replies {
                encode(reply, proto, out);
            }
        }
        Reply::Map(pairs) => encode_map(pairs, proto, out),
        Reply::Pairs(pairs) => encode_pairs(pairs, proto, out),
        Reply::Double(value) => encode_double(*value, proto, out),
        Reply::Bool(value) => out.extend_from_slice(match (resp3, value) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Reply::Verbatim(format, bytes) => encode_verbatim(format, bytes, proto, out),
        Reply::Encoded(bytes) => out.extend_from_slice(bytes),
    }
}

/// An array of `count` bulk strings, encoded (the same in RESP2 and RESP3), for
/// [`Reply::Encoded`].
pub fn bulk_array<'a>(items: impl Iterator<Item = &'a [u8]>, count: usize) -> bytes::Bytes {
    let mut out = Vec::with_capacity(16 + count * 16);
    encode_header(b'*', count, &mut out);
    let mut written = 0;
    for item in items {
        encode_bulk(item, &mut out);
        written += 1;
    }
    assert_eq!(written, count, "an array's count and its items");
    bytes::Bytes::from(out)
}

/// The items of an array [`bulk_array`] encoded, as slices of its bytes: for the server's own
/// callers that read the elements of a reply (see [`Reply::expand_encoded`]).
pub fn bulk_array_items(encoded: &bytes::Bytes) -> Vec<bytes::Bytes> {
    let (count, mut at) = read_header(encoded, 0, b'*');
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, start) = read_header(encoded, at, b'$');
        items.push(encoded.slice(start..start + len));
        at = start + len + 2;
    }
    assert_eq!(
        at,
        encoded.len(),
        "an encoded array ends with its last item"
    );
    items
}

/// The number in the header line of kind `kind` at `at` of bytes this module encoded, and
/// where the line's payload starts.
fn read_header(bytes: &[u8], at: usize, kind: u8) -> (usize, usize) {
    assert_eq!(
        bytes[at], kind,
        "an encoded header of kind {}",
        kind as char
    );
    let cr = at
        + bytes[at..]
            .iter()
            .position(|&c| c == b'\r')
            .expect("an encoded header line ends");
    let digits = std::str::from_utf8(&bytes[at + 1..cr]).expect("encoded digits");
    (digits.parse().expect("an encoded count"), cr + 2)
}

/// `<kind><value>\r\n`, for integers and aggregate headers.
fn encode_header(kind: u8, value: impl itoa::Integer, out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A status or error line. A CR or LF inside would end the line early and desynchronise the
/// client, so each becomes a space, as Redis's error sanitizer does.
fn encode_line(kind: u8, text: &str, out: &mut Vec<u8>) {
    out.push(kind);
    out.extend(text.bytes().map(|byte| {
        if byte == b'\r' || byte == b'\n' {
            b' '
        } else {
            byte
        }
    }));
    out.extend_from_slice(b"\r\n");
}

fn encode_bulk(bytes: &[u8], out: &mut Vec<u8>) {
    encode_header(b'$', bytes.len(), out);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn encode_aggregate(kind: u8, items: &[Reply], proto: Protocol, out: &mut Vec<u8>) {
    encode_header(kind, items.len(), out);
    for item in items {
        encode(item, proto, out);
    }
}

/// RESP3 `%<pairs>`; RESP2 a flat array of `2 × pairs` items.
fn encode_map(pairs: &[(Reply, Reply)], proto: Protocol, out: &mut Vec<u8>) {
    match proto {
        Protocol::Resp3 => encode_header(b'%', pairs.len(), out),
        Protocol::Resp2 => encode_header(b'*', pairs.len() * 2, out),
    }
    for (key, value) in pairs {
        encode(key, proto, out);
        encode(value, proto, out);
    }
}

/// RESP3 an array of `[key, value]` arrays; RESP2 a flat array of `2 × pairs` items.
fn encode_pairs(pairs: &[(Reply, Reply)], proto: Protocol, out: &mut Vec<u8>) {
    match proto {
        Protocol::Resp3 => encode_header(b'*', pairs.len(), out),
        Protocol::Resp2 => encode_header(b'*', pairs.len() * 2, out),
    }
    for (key, value) in pairs {
        if proto == Protocol::Resp3 {
            out.extend_from_slice(b"*2\r\n");
        }
        encode(key, proto, out);
        encode(value, proto, out);
    }
}

/// RESP3 `=<len>\r\n<fmt>:<bytes>\r\n`; RESP2 a bulk string of the bytes alone.
fn encode_verbatim(format: &str, bytes: &[u8], proto: Protocol, out: &mut Vec<u8>) {
    assert_eq!(
        format.len(),
        3,
        "a verbatim string's format is three bytes: {format:?}"
    );
    match proto {
        Protocol::Resp2 => encode_bulk(bytes, out),
        Protocol::Resp3 => {
            encode_header(b'=', bytes.len() + 4, out);
            out.extend_from_slice(format.as_bytes());
            out.push(b':');
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn encode_double(value: f64, proto: Protocol, out: &mut Vec<u8>) {
    let mut text = TextBuf::new();
    d2string(value, &mut text);
    match proto {
        Protocol::Resp3 => {
            out.push(b',');
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Protocol::Resp2 => encode_bulk(text.as_bytes(), out),
    }
}

/// A double as a [`Reply::Double`] prints it (ZSCAN replies scores as these bulk strings).
pub fn format_double(value: f64) -> String {
    let mut text = TextBuf::new();
    d2string(value, &mut text);
    String::from_utf8_lossy(text.as_bytes()).into_owned()
}

/// Longer than any `d2string` output: a sign, 17 digits, a point or an exponent, and at most 7
/// zeros of padding.
const DOUBLE_TEXT_BYTES_MAX: usize = 40;

/// A fixed buffer to format a double into without allocating.
struct TextBuf {
    bytes: [u8; DOUBLE_TEXT_BYTES_MAX],
    len: usize,
}

impl TextBuf {
    fn new() -> TextBuf {
        TextBuf {
            bytes: [0; DOUBLE_TEXT_BYTES_MAX],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, byte: u8) {
        assert!(self.len < DOUBLE_TEXT_BYTES_MAX, "double text too long");
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.push(byte);
        }
    }
}

impl std::fmt::Write for TextBuf {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        if self.len + text.len() > DOUBLE_TEXT_BYTES_MAX {
            return Err(std::fmt::Error);
        }
        self.extend(text.as_bytes());
        Ok(())
    }
}

/// Redis 7.2's `d2string` (see the module doc).
fn d2string(value: f64, text: &mut TextBuf) {
    if value.is_nan() {
        text.extend(b"nan");
    } else if value.is_infinite() {
        text.extend(if value < 0.0 { b"-inf" } else { b"inf" });
    } else if value == 0.0 {
        text.extend(if value.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        });
    } else if let Some(integer) = double2ll(value) {
        text.extend(itoa::Buffer::new().format(integer).as_bytes());
    } else {
        fpconv_dtoa(value, text);
    }
}

/// Redis's `double2ll`: the value as an integer if it is integral and within ±`i64::MAX / 2`.
fn double2ll(value: f64) -> Option<i64> {
    // `i64::MAX / 2` (2^62 - 1) rounds to 2^62 as a double, as it does in Redis's C.
    let limit = (i64::MAX / 2) as f64;
    if !(-limit..=limit).contains(&value) {
        return None;
    }
    // In range, so the cast only drops a fraction, which the comparison then detects.
    let integer = value as i64;
    (integer as f64 == value).then_some(integer)
}

/// `fpconv_dtoa`'s layout of the shortest round-trip digits of a finite, non-zero value.
fn fpconv_dtoa(value: f64, text: &mut TextBuf) {
    // `{:e}` prints the shortest round-trip digits as `-d.ddde-x`; take the digits and exponent.
    let mut scientific = TextBuf::new();
    write!(scientific, "{:e}", value.abs()).expect("a double's `{:e}` text fits in 40 bytes");
    let scientific = scientific.as_bytes();
    let e_index = scientific
        .iter()
        .position(|&byte| byte == b'e')
        .expect("`{:e}` has an exponent");
    let mut digits = [0u8; DOUBLE_TEXT_BYTES_MAX];
    let mut digits_len = 0;
    for &byte in scientific[..e_index]
        .iter()
        .filter(|byte| byte.is_ascii_digit())
    {
        digits[digits_len] = byte;
        digits_len += 1;
    }
    let exponent: i32 = std::str::from_utf8(&scientific[e_index + 1..])
        .ok()
        .and_then(|exponent| exponent.parse().ok())
        .expect("`{:e}` has an integer exponent");
    let negative = value < 0.0;
    if negative {
        text.push(b'-');
    }
    let digits_count = i32::try_from(digits_len).expect("at most 17 digits");
    // fpconv's `K`: the value is `digits × 10^K`.
    emit_digits(
        &digits[..digits_len],
        exponent - (digits_count - 1),
        negative,
        text,
    );
}

/// `fpconv`'s `emit_digits`: plain integer, plain decimal, or `d.ddde±x`.
fn emit_digits(digits: &[u8], k: i32, negative: bool, text: &mut TextBuf) {
    let ndigits = i32::try_from(digits.len()).expect("at most 17 digits");
    let exp = (k + ndigits - 1).abs();
    if k >= 0 && exp < ndigits + 7 {
        text.extend(digits);
        for _ in 0..k {
            text.push(b'0');
        }
        return;
    }
    if k < 0 && (k > -7 || exp < 4) {
        let offset = ndigits - k.abs();
        if offset <= 0 {
            text.extend(b"0.");
            for _ in 0..-offset {
                text.push(b'0');
            }
            text.extend(digits);
        } else {
            let (whole, fraction) = digits.split_at(offset.unsigned_abs() as usize);
            text.extend(whole);
            text.push(b'.');
            text.extend(fraction);
        }
        return;
    }
    let shown = digits.len().min(if negative { 17 } else { 18 });
    text.push(digits[0]);
    if shown > 1 {
        text.push(b'.');
        text.extend(&digits[1..shown]);
    }
    text.push(b'e');
    text.push(if k + ndigits - 1 < 0 { b'-' } else { b'+' });
    text.extend(itoa::Buffer::new().format(exp).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use Protocol::{Resp2, Resp3};

    fn encoded(reply: &Reply, proto: Protocol) -> String {
        let mut out = b"keep:".to_vec(); // `encode` appends.
        encode(reply, proto, &mut out);
        let out = String::from_utf8(out).unwrap();
        out.strip_prefix("keep:").unwrap().to_string()
    }

    fn both(reply: Reply, resp2: &str, resp3: &str) {
        assert_eq!(encoded(&reply, Resp2), resp2, "{reply:?} in RESP2");
        assert_eq!(encoded(&reply, Resp3), resp3, "{reply:?} in RESP3");
    }

    fn same(reply: Reply, expected: &str) {
        both(reply, expected, expected);
    }

    #[test]
    fn simple_replies() {
        same(Reply::Ok, "+OK\r\n");
        same(Reply::Status("PONG".into()), "+PONG\r\n");
        same(Reply::error("ERR syntax error"), "-ERR syntax error\r\n");
        same(
            Reply::error("WRONGTYPE Operation"),
            "-WRONGTYPE Operation\r\n",
        );
        same(Reply::Int(0), ":0\r\n");
        same(Reply::Int(-42), ":-42\r\n");
        same(Reply::Int(i64::MIN), ":-9223372036854775808\r\n");
        same(Reply::Int(i64::MAX), ":9223372036854775807\r\n");
    }

    #[test]
    fn line_breaks_in_status_and_error_become_spaces() {
        same(Reply::error("ERR bad\r\nthing\n"), "-ERR bad  thing \r\n");
        same(Reply::Status("a\rb".into()), "+a b\r\n");
    }

    #[test]
    fn encoded_bulk_arrays_read_back_and_encode_as_arrays() {
        let items: Vec<&[u8]> = vec![b"", b"a", b"x\r\ny", &[0u8; 300]];
        let packed = bulk_array(items.iter().copied(), items.len());
        let array = Reply::Array(
            items
                .iter()
                .map(|i| Reply::Bulk(bytes::Bytes::copy_from_slice(i)))
                .collect(),
        );
        for proto in [Resp2, Resp3] {
            assert_eq!(
                encoded(&Reply::Encoded(packed.clone()), proto),
                encoded(&array, proto)
            );
        }
        let back = bulk_array_items(&packed);
        assert!(back.iter().map(|b| &b[..]).eq(items.iter().copied()));
        assert_eq!(Reply::Encoded(packed).expand_encoded(), array);
        let empty = bulk_array(std::iter::empty(), 0);
        assert!(bulk_array_items(&empty).is_empty());
    }

    #[test]
    fn bulk_strings() {
        same(Reply::bulk(Bytes::from_static(b"hello")), "$5\r\nhello\r\n");
        same(Reply::bulk(Bytes::new()), "$0\r\n\r\n");
        same(
            Reply::bulk(Bytes::from_static(b"a\r\nb")),
            "$4\r\na\r\nb\r\n",
        );
        let mut out = Vec::new();
        encode(&Reply::bulk(Bytes::from_static(b"\0\xff")), Resp2, &mut out);
        assert_eq!(out, b"$2\r\n\0\xff\r\n");
    }

    #[test]
    fn nulls() {
        both(Reply::Null, "$-1\r\n", "_\r\n");
        both(Reply::NullArray, "*-1\r\n", "_\r\n");
    }

    #[test]
    fn aggregates() {
        let items = || {
            vec![
                Reply::Int(1),
                Reply::bulk(Bytes::from_static(b"a")),
                Reply::Null,
            ]
        };
        assert_eq!(
            encoded(&Reply::Array(items()), Resp2),
            "*3\r\n:1\r\n$1\r\na\r\n$-1\r\n"
        );
        assert_eq!(
            encoded(&Reply::Array(items()), Resp3),
            "*3\r\n:1\r\n$1\r\na\r\n_\r\n"
        );
        same(Reply::Array(vec![]), "*0\r\n");
        both(
            Reply::Set(items()),
            "*3\r\n:1\r\n$1\r\na\r\n$-1\r\n",
            "~3\r\n:1\r\n$1\r\na\r\n_\r\n",
        );
        both(Reply::Set(vec![]), "*0\r\n", "~0\r\n");
        both(
            Reply::Push(items()),
            "*3\r\n:1\r\n$1\r\na\r\n$-1\r\n",
            ">3\r\n:1\r\n$1\r\na\r\n_\r\n",
        );
        let map = Reply::Map(vec![
            (Reply::bulk(Bytes::from_static(b"k")), Reply::Int(1)),
            (
                Reply::Status("s".into()),
                Reply::Array(vec![Reply::Bool(true)]),
            ),
        ]);
        both(
            map,
            "*4\r\n$1\r\nk\r\n:1\r\n+s\r\n*1\r\n:1\r\n",
            "%2\r\n$1\r\nk\r\n:1\r\n+s\r\n*1\r\n#t\r\n",
        );
        both(Reply::Map(vec![]), "*0\r\n", "%0\r\n");
        both(
            Reply::Pairs(vec![(Reply::Bulk(Bytes::from_static(b"f")), Reply::Int(1))]),
            "*2\r\n$1\r\nf\r\n:1\r\n",
            "*1\r\n*2\r\n$1\r\nf\r\n:1\r\n",
        );
        both(
            Reply::Array(vec![
                Reply::Array(vec![Reply::NullArray]),
                Reply::Double(1.5),
            ]),
            "*2\r\n*1\r\n*-1\r\n$3\r\n1.5\r\n",
            "*2\r\n*1\r\n_\r\n,1.5\r\n",
        );
    }

    #[test]
    fn booleans() {
        both(Reply::Bool(true), ":1\r\n", "#t\r\n");
        both(Reply::Bool(false), ":0\r\n", "#f\r\n");
    }

    #[test]
    fn verbatim() {
        both(
            Reply::Verbatim("txt", Bytes::from_static(b"Some string")),
            "$11\r\nSome string\r\n",
            "=15\r\ntxt:Some string\r\n",
        );
        both(
            Reply::Verbatim("mkd", Bytes::new()),
            "$0\r\n\r\n",
            "=4\r\nmkd:\r\n",
        );
    }

    #[test]
    #[should_panic(expected = "three bytes")]
    fn verbatim_format_must_be_three_bytes() {
        encode(
            &Reply::Verbatim("text", Bytes::new()),
            Resp3,
            &mut Vec::new(),
        );
    }

    fn double_text(value: f64) -> String {
        let text = encoded(&Reply::Double(value), Resp3);
        let text = text
            .strip_prefix(',')
            .unwrap()
            .strip_suffix("\r\n")
            .unwrap()
            .to_string();
        assert_eq!(
            encoded(&Reply::Double(value), Resp2),
            format!("${}\r\n{text}\r\n", text.len())
        );
        text
    }

    #[test]
    fn doubles_special_values() {
        both(Reply::Double(f64::INFINITY), "$3\r\ninf\r\n", ",inf\r\n");
        both(
            Reply::Double(f64::NEG_INFINITY),
            "$4\r\n-inf\r\n",
            ",-inf\r\n",
        );
        both(Reply::Double(f64::NAN), "$3\r\nnan\r\n", ",nan\r\n");
        both(Reply::Double(-f64::NAN), "$3\r\nnan\r\n", ",nan\r\n");
        both(Reply::Double(0.0), "$1\r\n0\r\n", ",0\r\n");
        both(Reply::Double(-0.0), "$2\r\n-0\r\n", ",-0\r\n");
    }

    #[test]
    fn doubles_as_redis_7_2_formats_them() {
        let cases: [(f64, &str); 25] = [
            (3.0, "3"),
            (-3.0, "-3"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-0.1, "-0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123456.789, "123456.789"),
            (1e17, "100000000000000000"),
            (4611686018427387904.0, "4611686018427387904"), // 2^62: the last integer printed so.
            (-4611686018427387904.0, "-4611686018427387904"),
            (9223372036854775808.0, "9223372036854776000"), // 2^63: fpconv's plain integer.
            (1e19, "1e+19"),
            (1e22, "1e+22"),
            (1.5e300, "1.5e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "0.00001"),
            (1.5e-6, "1.5e-6"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (-1.25e-7, "-1.25e-7"),
            (1.2345678901234568e-5, "1.2345678901234568e-5"),
            (5e-324, "5e-324"),
            (2.5, "2.5"),
        ];
        for (value, text) in cases {
            assert_eq!(double_text(value), text, "{value:e}");
        }
    }

    #[test]
    fn doubles_round_trip() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            if !value.is_finite() {
                continue;
            }
            let text = double_text(value);
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                value.to_bits(),
                "{text}"
            );
        }
    }
}
