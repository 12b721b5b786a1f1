//! PostgreSQL's binary format for the types helios has, in both directions, by way of their
//! text forms: `helios_sql` takes parameters and produces values as PostgreSQL text, so a
//! binary parameter is turned into that text ([`binary_to_text`]) and a value a client asked
//! for in binary is turned from it ([`text_to_binary`]). Formats as in PostgreSQL's `*send` /
//! `*recv` functions (all integers big-endian).

use std::fmt::Write;

use crate::wire;

pub const OID_BOOL: u32 = 16;
pub const OID_BYTEA: u32 = 17;
pub const OID_NAME: u32 = 19;
pub const OID_INT8: u32 = 20;
pub const OID_INT2: u32 = 21;
pub const OID_INT4: u32 = 23;
pub const OID_TEXT: u32 = 25;
pub const OID_OID: u32 = 26;
pub const OID_FLOAT4: u32 = 700;
pub const OID_FLOAT8: u32 = 701;
pub const OID_UNKNOWN: u32 = 705;
pub const OID_BPCHAR: u32 = 1042;
pub const OID_VARCHAR: u32 = 1043;
pub const OID_NUMERIC: u32 = 1700;
pub const OID_REGTYPE: u32 = 2206;

/// Digits of a numeric in one base-10000 group.
const NBASE_DIGITS: usize = 4;
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// PostgreSQL's NUMERIC_MAX_DISPLAY_SCALE-ish bound on the digits a binary numeric may claim.
const NUMERIC_GROUPS_MAX: usize = 1 << 14;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BinaryError {
    #[error("incorrect binary data format in bind parameter")]
    Malformed,
    /// Fewer bytes than the type reads: PostgreSQL's `*recv` fail in pq_getmsg* (08P01).
    #[error("insufficient data left in message for bind parameter")]
    Insufficient,
    #[error("no binary input function available for type with OID {0}")]
    NoReceive(u32),
    #[error("no binary output function available for type with OID {0}")]
    NoSend(u32),
    /// Text whose bytes are not UTF-8 (22021, as PostgreSQL's encoding check words it).
    #[error("invalid byte sequence for encoding \"UTF8\": 0x{0:02x}")]
    InvalidUtf8(u8),
}

/// The text form of a binary value of type `oid`.
pub fn binary_to_text(oid: u32, bytes: &[u8]) -> Result<String, BinaryError> {
    let fixed = |n: usize| -> Result<&[u8], BinaryError> {
        match bytes.len().cmp(&n) {
            std::cmp::Ordering::Equal => Ok(bytes),
            std::cmp::Ordering::Less => Err(BinaryError::Insufficient),
            std::cmp::Ordering::Greater => Err(BinaryError::Malformed),
        }
    };
    Ok(match oid {
        OID_BOOL => match fixed(1)?[0] {
            0 => "f".to_string(),
            _ => "t".to_string(),
        },
        OID_INT2 => i16::from_be_bytes(fixed(2)?.try_into().expect("2 bytes")).to_string(),
        OID_INT4 => i32::from_be_bytes(fixed(4)?.try_into().expect("4 bytes")).to_string(),
        OID_OID => u32::from_be_bytes(fixed(4)?.try_into().expect("4 bytes")).to_string(),
        OID_INT8 => i64::from_be_bytes(fixed(8)?.try_into().expect("8 bytes")).to_string(),
        OID_FLOAT4 => float_text(f32::from_be_bytes(fixed(4)?.try_into().expect("4")) as f64),
        OID_FLOAT8 => float_text(f64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
        OID_TEXT | OID_VARCHAR | OID_BPCHAR | OID_NAME | OID_UNKNOWN => {
            String::from_utf8(bytes.to_vec())
                .map_err(|e| BinaryError::InvalidUtf8(e.as_bytes()[e.utf8_error().valid_up_to()]))?
        }
        OID_BYTEA => {
            let mut s = String::with_capacity(2 + bytes.len() * 2);
            s.push_str("\\x");
            for b in bytes {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
        OID_NUMERIC => numeric_from_binary(bytes)?,
        other if wire::handles(other) => {
            wire::binary_to_text(other, bytes, &elem_to_text).map_err(wire_error)?
        }
        other => return Err(BinaryError::NoReceive(other)),
    })
}

fn wire_error(e: wire::WireError) -> BinaryError {
    match e {
        wire::WireError::Insufficient => BinaryError::Insufficient,
        wire::WireError::Malformed => BinaryError::Malformed,
        wire::WireError::InvalidUtf8(byte) => BinaryError::InvalidUtf8(byte),
    }
}

/// Array elements of the scalar types, for `helios_sql::wire`.
fn elem_to_text(oid: u32, bytes: &[u8]) -> Result<String, wire::WireError> {
    binary_to_text(oid, bytes).map_err(|e| match e {
        BinaryError::Insufficient => wire::WireError::Insufficient,
        BinaryError::InvalidUtf8(byte) => wire::WireError::InvalidUtf8(byte),
        _ => wire::WireError::Malformed,
    })
}

fn elem_to_binary(oid: u32, text: &str, out: &mut Vec<u8>) -> Result<(), wire::WireError> {
    text_to_binary(oid, text, out).map_err(|_| wire::WireError::Malformed)
}

/// The binary form of a value of type `oid` given in its PostgreSQL text form.
pub fn text_to_binary(oid: u32, text: &str, out: &mut Vec<u8>) -> Result<(), BinaryError> {
    let bad = |_| BinaryError::NoSend(oid);
    match oid {
        OID_BOOL => out.push(u8::from(text == "t" || text == "true")),
        OID_INT2 => out.extend_from_slice(&text.parse::<i16>().map_err(bad)?.to_be_bytes()),
        OID_INT4 => out.extend_from_slice(&text.parse::<i32>().map_err(bad)?.to_be_bytes()),
        OID_OID | OID_REGTYPE if text.parse::<u32>().is_ok() => {
            out.extend_from_slice(&text.parse::<u32>().map_err(bad)?.to_be_bytes())
        }
        OID_INT8 => out.extend_from_slice(&text.parse::<i64>().map_err(bad)?.to_be_bytes()),
        OID_FLOAT4 => out.extend_from_slice(
            &(parse_float(text).ok_or(BinaryError::NoSend(oid))? as f32)
                .to_bits()
                .to_be_bytes(),
        ),
        OID_FLOAT8 => out.extend_from_slice(
            &parse_float(text)
                .ok_or(BinaryError::NoSend(oid))?
                .to_bits()
                .to_be_bytes(),
        ),
        OID_TEXT | OID_VARCHAR | OID_BPCHAR | OID_NAME | OID_UNKNOWN | OID_REGTYPE => {
            out.extend_from_slice(text.as_bytes())
        }
        OID_BYTEA => {
            let hex = text.strip_prefix("\\x").ok_or(BinaryError::NoSend(oid))?;
            if hex.len() % 2 != 0 {
                return Err(BinaryError::NoSend(oid));
            }
            for pair in hex.as_bytes().chunks(2) {
                let pair = std::str::from_utf8(pair).map_err(|_| BinaryError::NoSend(oid))?;
                out.push(u8::from_str_radix(pair, 16).map_err(|_| BinaryError::NoSend(oid))?);
            }
        }
        OID_NUMERIC => numeric_to_binary(text, out).ok_or(BinaryError::NoSend(oid))?,
        other if wire::handles(other) => wire::text_to_binary(other, text, out, &elem_to_binary)
            .map_err(|_| BinaryError::NoSend(other))?,
        other => return Err(BinaryError::NoSend(other)),
    }
    Ok(())
}

/// Whether values of `oid` can be sent in binary.
pub fn has_binary(oid: u32) -> bool {
    matches!(
        oid,
        OID_BOOL
            | OID_BYTEA
            | OID_NAME
            | OID_INT8
            | OID_INT2
            | OID_INT4
            | OID_TEXT
            | OID_OID
            | OID_FLOAT4
            | OID_FLOAT8
            | OID_UNKNOWN
            | OID_BPCHAR
            | OID_VARCHAR
            | OID_NUMERIC
    ) || wire::handles(oid)
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// A float's text for the SQL layer's input (shortest round-trip digits).
fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "Infinity".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        format!("{v:?}")
    }
}

/// numeric_send: ndigits, weight, sign, dscale (i16/i16/u16/u16), then base-10000 digits.
fn numeric_to_binary(text: &str, out: &mut Vec<u8>) -> Option<()> {
    let special = match text {
        "NaN" => Some(NUMERIC_NAN),
        "Infinity" => Some(NUMERIC_PINF),
        "-Infinity" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        return Some(());
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let dscale = u16::try_from(frac_part.len()).ok()?;
    // Pad the integer part on the left and the fraction on the right to whole groups.
    let int_pad = (NBASE_DIGITS - int_part.len() % NBASE_DIGITS) % NBASE_DIGITS;
    let frac_pad = (NBASE_DIGITS - frac_part.len() % NBASE_DIGITS) % NBASE_DIGITS;
    let digits: String = "0".repeat(int_pad) + int_part + frac_part + &"0".repeat(frac_pad);
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(NBASE_DIGITS)
        .map(|c| std::str::from_utf8(c).ok().and_then(|s| s.parse().ok()))
        .collect::<Option<_>>()?;
    let mut weight = ((int_part.len() + int_pad) / NBASE_DIGITS) as i32 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.extend_from_slice(&i16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

/// numeric_recv, to text with `dscale` fraction digits.
fn numeric_from_binary(bytes: &[u8]) -> Result<String, BinaryError> {
    let word = |i: usize| -> Result<u16, BinaryError> {
        bytes
            .get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(BinaryError::Insufficient)
    };
    let ndigits = word(0)? as i16;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    let dscale = word(3)? as usize;
    if ndigits < 0 || ndigits as usize > NUMERIC_GROUPS_MAX || dscale > NUMERIC_GROUPS_MAX {
        return Err(BinaryError::Malformed);
    }
    match bytes.len().cmp(&(8 + 2 * ndigits as usize)) {
        std::cmp::Ordering::Less => return Err(BinaryError::Insufficient),
        std::cmp::Ordering::Greater => return Err(BinaryError::Malformed),
        std::cmp::Ordering::Equal => {}
    }
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_string()),
        NUMERIC_PINF => return Ok("Infinity".to_string()),
        NUMERIC_NINF => return Ok("-Infinity".to_string()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err(BinaryError::Malformed),
    }
    let groups: Vec<u16> = (0..ndigits as usize)
        .map(|i| word(4 + i))
        .collect::<Result<_, _>>()?;
    if groups.iter().any(|&g| g >= 10_000) {
        return Err(BinaryError::Malformed);
    }
    let group = |i: i32| -> u16 {
        // Group i has weight (weight - i); positions outside the stored digits are zero.
        if i < 0 || i as usize >= groups.len() {
            0
        } else {
            groups[i as usize]
        }
    };
    let mut s = String::new();
    if sign == NUMERIC_NEG {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for w in (0..=weight).rev() {
            let g = group(weight - w);
            if w == weight {
                let _ = write!(s, "{g}");
            } else {
                let _ = write!(s, "{g:04}");
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::new();
        let mut w = -1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", group(weight - w));
            w -= 1;
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(oid: u32, text: &str) -> String {
        let mut bin = Vec::new();
        text_to_binary(oid, text, &mut bin).expect("encodes");
        binary_to_text(oid, &bin).expect("decodes")
    }

    #[test]
    fn text_that_is_not_utf8_names_its_first_bad_byte() {
        assert_eq!(
            binary_to_text(OID_TEXT, b"ok\xffno"),
            Err(BinaryError::InvalidUtf8(0xff))
        );
    }

    #[test]
    fn text_in_an_array_or_jsonb_that_is_not_utf8_names_its_first_bad_byte() {
        let mut array = Vec::new();
        text_to_binary(1009, "{ab,cd}", &mut array).expect("encodes text[]");
        let at = array
            .iter()
            .position(|&b| b == b'c')
            .expect("element bytes");
        array[at] = 0xfe;
        assert_eq!(
            binary_to_text(1009, &array),
            Err(BinaryError::InvalidUtf8(0xfe))
        );
        // jsonb: version byte 1, then the text.
        assert_eq!(
            binary_to_text(3802, b"\x01\"a\xc3\""),
            Err(BinaryError::InvalidUtf8(0xc3))
        );
    }

    #[test]
    fn numeric_matches_postgres_bytes() {
        // SELECT numeric_send(1234.5678::numeric) = \x0002 0000 0000 0004 04d2 162e
        let mut bin = Vec::new();
        numeric_to_binary("1234.5678", &mut bin).unwrap();
        assert_eq!(bin, [0, 2, 0, 0, 0, 0, 0, 4, 0x04, 0xd2, 0x16, 0x2e]);
        // numeric_send(-0.01) = \x0001 ffff 4000 0002 0064
        bin.clear();
        numeric_to_binary("-0.01", &mut bin).unwrap();
        assert_eq!(bin, [0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0, 100]);
        // numeric_send(0) = \x0000 0000 0000 0000
        bin.clear();
        numeric_to_binary("0", &mut bin).unwrap();
        assert_eq!(bin, [0; 8]);
        for t in [
            "0",
            "0.00",
            "10000",
            "1",
            "-12345678901234567890.000123",
            "0.0001",
            "NaN",
        ] {
            assert_eq!(round_trip(OID_NUMERIC, t), t);
        }
    }

    #[test]
    fn malformed_binary_is_an_error_not_a_panic() {
        assert_eq!(
            binary_to_text(OID_INT4, &[1, 2]),
            Err(BinaryError::Insufficient)
        );
        assert_eq!(
            binary_to_text(OID_INT4, &[1, 2, 3, 4, 5]),
            Err(BinaryError::Malformed)
        );
        assert_eq!(
            binary_to_text(OID_NUMERIC, &[0, 5, 0, 0]),
            Err(BinaryError::Insufficient)
        );
        assert_eq!(
            binary_to_text(OID_NUMERIC, &[0, 1, 0, 0, 0, 0, 0, 0]),
            Err(BinaryError::Insufficient)
        );
        assert_eq!(
            binary_to_text(OID_NUMERIC, &[0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(BinaryError::Malformed)
        );
        assert_eq!(
            binary_to_text(OID_NUMERIC, &[0xff, 0xff, 0, 0, 0, 0, 0, 0]),
            Err(BinaryError::Malformed)
        );
        assert!(binary_to_text(OID_TEXT, &[0xff]).is_err());
        assert_eq!(binary_to_text(9999, &[]), Err(BinaryError::NoReceive(9999)));
    }

    proptest! {
        #[test]
        fn integers_and_floats_round_trip(i in any::<i64>(), f in any::<f64>()) {
            prop_assert_eq!(round_trip(OID_INT8, &i.to_string()), i.to_string());
            let t = float_text(f);
            prop_assert_eq!(round_trip(OID_FLOAT8, &t), t);
        }

        #[test]
        fn numerics_round_trip(neg in any::<bool>(), int in "[1-9][0-9]{0,20}|0", frac in "([0-9]{1,12})?") {
            let mut t = String::new();
            if neg && int != "0" { t.push('-'); }
            t.push_str(&int);
            if !frac.is_empty() { t.push('.'); t.push_str(&frac); }
            prop_assert_eq!(round_trip(OID_NUMERIC, &t), t);
        }

        #[test]
        fn arbitrary_bytes_never_panic(oid in prop::sample::select(vec![OID_BOOL, OID_INT2, OID_INT4, OID_INT8, OID_FLOAT8, OID_NUMERIC, OID_TEXT, OID_BYTEA]), bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = binary_to_text(oid, &bytes);
        }
    }
}
