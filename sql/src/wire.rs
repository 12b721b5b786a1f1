//! PostgreSQL's binary wire format for the date/time, interval, uuid, jsonb and array types
//! (their `*send`/`*recv` functions), to and from the text form the rest of the server
//! passes around. The protocol layer (`net`'s `pgbinary`) handles the scalar types it has
//! always had and asks here for these; array elements go back to it through `elem`.
//!
//! Text produced here is unambiguous whatever the session's settings (timestamptz with an
//! explicit `+00` offset), so reading it back as a parameter gives the same value.

use crate::datetime::{self, Interval};
use crate::types::{self, Datum, SqlType, Style};

/// Bounds the elements a binary array parameter may claim.
const ARRAY_ELEMENTS_MAX: usize = types::ARRAY_ELEMENTS_MAX;

#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// Too few bytes for what the type reads.
    Insufficient,
    /// Bytes or text that are no value of the type.
    Malformed,
    /// Text that is not UTF-8: the first byte that breaks it (22021).
    InvalidUtf8(u8),
}

impl WireError {
    /// The error for `bytes`, which failed UTF-8 validation.
    pub fn invalid_utf8(bytes: &[u8], error: std::str::Utf8Error) -> WireError {
        WireError::InvalidUtf8(bytes.get(error.valid_up_to()).copied().unwrap_or(0))
    }
}

/// Converts an array element between its text and binary forms (the caller's scalar codecs).
pub type ElemToBinary<'a> = &'a dyn Fn(u32, &str, &mut Vec<u8>) -> Result<(), WireError>;
pub type ElemToText<'a> = &'a dyn Fn(u32, &[u8]) -> Result<String, WireError>;

/// Whether this module has the binary format of `oid`.
pub fn handles(oid: u32) -> bool {
    matches!(
        SqlType::from_oid(oid),
        Some(
            SqlType::Date
                | SqlType::Time
                | SqlType::Timestamp
                | SqlType::TimestampTz
                | SqlType::Interval
                | SqlType::Uuid
                | SqlType::Jsonb
                | SqlType::Array(_)
        )
    )
}

fn utc() -> Style {
    Style {
        float_digits: 1,
        ..Style::default()
    }
}

/// The binary form of a value given as PostgreSQL text.
pub fn text_to_binary(
    oid: u32,
    text: &str,
    out: &mut Vec<u8>,
    elem: ElemToBinary,
) -> Result<(), WireError> {
    let ty = SqlType::from_oid(oid).ok_or(WireError::Malformed)?;
    let style = utc();
    let value =
        types::input(ty, types::TYPMOD_NONE, text, &style).map_err(|_| WireError::Malformed)?;
    match value {
        Datum::Date(d) => out.extend_from_slice(&d.to_be_bytes()),
        Datum::Time(t) | Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            out.extend_from_slice(&t.to_be_bytes())
        }
        Datum::Interval(iv) => {
            out.extend_from_slice(&iv.micros.to_be_bytes());
            out.extend_from_slice(&iv.days.to_be_bytes());
            out.extend_from_slice(&iv.months.to_be_bytes());
        }
        Datum::Uuid(u) => out.extend_from_slice(&u),
        Datum::Json(j) => {
            out.push(JSONB_VERSION);
            out.extend_from_slice(j.as_bytes());
        }
        Datum::Array(items) => {
            let elem_ty = ty.element().ok_or(WireError::Malformed)?;
            let has_null = items.contains(&Datum::Null);
            out.extend_from_slice(&i32::from(!items.is_empty()).to_be_bytes());
            out.extend_from_slice(&i32::from(has_null).to_be_bytes());
            out.extend_from_slice(&elem_ty.oid().to_be_bytes());
            if !items.is_empty() {
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
            }
            for item in &items {
                match types::output(item, &style) {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(t) => {
                        let at = out.len();
                        out.extend_from_slice(&0i32.to_be_bytes());
                        elem(elem_ty.oid(), &t, out)?;
                        let len = (out.len() - at - 4) as i32;
                        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
                    }
                }
            }
        }
        _ => return Err(WireError::Malformed),
    }
    Ok(())
}

/// `jsonb_send`'s format version byte.
const JSONB_VERSION: u8 = 1;

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], WireError> {
    match bytes.len().cmp(&N) {
        std::cmp::Ordering::Less => Err(WireError::Insufficient),
        std::cmp::Ordering::Greater => Err(WireError::Malformed),
        std::cmp::Ordering::Equal => bytes.try_into().map_err(|_| WireError::Malformed),
    }
}

/// The text form of a binary value.
pub fn binary_to_text(oid: u32, bytes: &[u8], elem: ElemToText) -> Result<String, WireError> {
    let ty = SqlType::from_oid(oid).ok_or(WireError::Malformed)?;
    let value = match ty {
        SqlType::Date => {
            let d = i32::from_be_bytes(fixed(bytes)?);
            if !datetime::date_in_range(d) {
                return Err(WireError::Malformed);
            }
            Datum::Date(d)
        }
        SqlType::Time => {
            let t = i64::from_be_bytes(fixed(bytes)?);
            if !(0..=datetime::MICROS_PER_DAY).contains(&t) {
                return Err(WireError::Malformed);
            }
            Datum::Time(t)
        }
        SqlType::Timestamp | SqlType::TimestampTz => {
            let t = i64::from_be_bytes(fixed(bytes)?);
            if !datetime::timestamp_in_range(t) {
                return Err(WireError::Malformed);
            }
            if ty == SqlType::Timestamp {
                Datum::Timestamp(t)
            } else {
                Datum::TimestampTz(t)
            }
        }
        SqlType::Interval => {
            let b: [u8; 16] = fixed(bytes)?;
            Datum::Interval(Interval {
                micros: i64::from_be_bytes(b[..8].try_into().map_err(|_| WireError::Malformed)?),
                days: i32::from_be_bytes(b[8..12].try_into().map_err(|_| WireError::Malformed)?),
                months: i32::from_be_bytes(b[12..].try_into().map_err(|_| WireError::Malformed)?),
            })
        }
        SqlType::Uuid => Datum::Uuid(fixed(bytes)?),
        SqlType::Jsonb => {
            let (&version, text) = bytes.split_first().ok_or(WireError::Insufficient)?;
            if version != JSONB_VERSION {
                return Err(WireError::Malformed);
            }
            let text = std::str::from_utf8(text).map_err(|e| WireError::invalid_utf8(text, e))?;
            Datum::Json(crate::json::normalize(text).map_err(|_| WireError::Malformed)?)
        }
        SqlType::Array(e) => return array_from_binary(*e, bytes, elem),
        _ => return Err(WireError::Malformed),
    };
    types::output(&value, &utc()).ok_or(WireError::Malformed)
}

/// `array_recv` for one-dimensional arrays (and the empty array), producing `array_out` text.
fn array_from_binary(
    elem_ty: SqlType,
    bytes: &[u8],
    elem: ElemToText,
) -> Result<String, WireError> {
    let mut at = 0usize;
    let i32_at = |at: &mut usize| -> Result<i32, WireError> {
        let b = bytes.get(*at..*at + 4).ok_or(WireError::Insufficient)?;
        *at += 4;
        Ok(i32::from_be_bytes(
            b.try_into().map_err(|_| WireError::Malformed)?,
        ))
    };
    let ndim = i32_at(&mut at)?;
    let _flags = i32_at(&mut at)?;
    let oid = i32_at(&mut at)? as u32;
    if oid != elem_ty.oid() || !(0..=1).contains(&ndim) {
        return Err(WireError::Malformed);
    }
    let count = if ndim == 1 {
        let n = i32_at(&mut at)?;
        let _lower_bound = i32_at(&mut at)?;
        usize::try_from(n).map_err(|_| WireError::Malformed)?
    } else {
        0
    };
    if count > ARRAY_ELEMENTS_MAX || count > bytes.len() / 4 {
        return Err(WireError::Malformed);
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i32_at(&mut at)?;
        if len < 0 {
            items.push(Datum::Null);
            continue;
        }
        let end = at.checked_add(len as usize).ok_or(WireError::Malformed)?;
        let raw = bytes.get(at..end).ok_or(WireError::Insufficient)?;
        at = end;
        let text = elem(elem_ty.oid(), raw)?;
        items.push(Datum::Text(text));
    }
    if at != bytes.len() {
        return Err(WireError::Malformed);
    }
    // Elements are already text: lay them out as array_out does.
    types::output(&Datum::Array(items), &utc()).ok_or(WireError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_elem(_: u32, _: &str, _: &mut Vec<u8>) -> Result<(), WireError> {
        Err(WireError::Malformed)
    }

    fn int_elem(_: u32, t: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.extend_from_slice(
            &t.parse::<i32>()
                .map_err(|_| WireError::Malformed)?
                .to_be_bytes(),
        );
        Ok(())
    }

    fn int_text(_: u32, b: &[u8]) -> Result<String, WireError> {
        Ok(i32::from_be_bytes(fixed(b)?).to_string())
    }

    fn round_trip(oid: u32, text: &str) -> String {
        let mut out = Vec::new();
        text_to_binary(oid, text, &mut out, &int_elem).unwrap();
        binary_to_text(oid, &out, &int_text).unwrap()
    }

    #[test]
    fn values_match_postgres_binary_layouts() {
        let mut out = Vec::new();
        text_to_binary(1082, "2000-01-02", &mut out, &no_elem).unwrap();
        assert_eq!(out, 1i32.to_be_bytes());
        out.clear();
        text_to_binary(1184, "2000-01-01 00:00:01+00", &mut out, &no_elem).unwrap();
        assert_eq!(out, 1_000_000i64.to_be_bytes());
        out.clear();
        text_to_binary(1186, "1 mon 2 days 00:00:03", &mut out, &no_elem).unwrap();
        assert_eq!(
            out,
            [
                &3_000_000i64.to_be_bytes()[..],
                &2i32.to_be_bytes(),
                &1i32.to_be_bytes()
            ]
            .concat()
        );
        out.clear();
        text_to_binary(1007, "{1,NULL}", &mut out, &int_elem).unwrap();
        let expected: Vec<u8> = [1i32, 1, 23, 2, 1, 4, 1, -1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn text_survives_binary_round_trips() {
        assert_eq!(
            round_trip(1184, "2024-03-10 06:34:56.789-04"),
            "2024-03-10 10:34:56.789+00"
        );
        assert_eq!(
            round_trip(1114, "2024-03-10 12:00:00"),
            "2024-03-10 12:00:00"
        );
        assert_eq!(round_trip(1083, "23:59:59.999999"), "23:59:59.999999");
        assert_eq!(round_trip(1186, "-1 days +02:00:00"), "-1 days +02:00:00");
        assert_eq!(
            round_trip(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(
            round_trip(3802, r#"{"b": 1, "a": [true]}"#),
            r#"{"a": [true], "b": 1}"#
        );
        assert_eq!(round_trip(1007, "{}"), "{}");
        assert_eq!(round_trip(1007, "{3,NULL,-4}"), "{3,NULL,-4}");
    }

    #[test]
    fn malformed_binary_is_an_error() {
        let text = |oid: u32, b: &[u8]| binary_to_text(oid, b, &int_text);
        assert_eq!(text(1082, &[0, 1]), Err(WireError::Insufficient));
        assert_eq!(
            text(1083, &(-1i64).to_be_bytes()),
            Err(WireError::Malformed)
        );
        assert_eq!(text(3802, &[2, b'1']), Err(WireError::Malformed));
        assert!(text(
            1007,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0x7f, 0, 0, 0, 0, 0, 0, 1]
        )
        .is_err());
    }
}
