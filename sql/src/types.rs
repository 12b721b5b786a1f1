//! The SQL types this slice knows, their values, and PostgreSQL's input/output functions and
//! casts between them. Output text is byte-for-byte what PostgreSQL 16 prints.

use std::str::FromStr;

use bigdecimal::BigDecimal;

use crate::datetime::{self, Interval, Zone};
use crate::error::*;
use crate::numeric;

/// A PostgreSQL type, identified by what it is in `pg_type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Numeric,
    Float8,
    Text,
    Varchar,
    Name,
    /// A quoted literal or NULL whose type is not settled yet; resolved to text on output.
    Unknown,
    RegType,
    Float4,
    /// `char(n)`: blank-padded to n characters; trailing blanks are insignificant.
    Bpchar,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
    /// A one-dimensional array of a scalar type (one of [`ARRAY_ELEMENTS`]).
    Array(#[serde(with = "array_elem")] &'static SqlType),
}

/// The element types arrays can have.
pub static ARRAY_ELEMENTS: [SqlType; 19] = [
    SqlType::Bool,
    SqlType::Int2,
    SqlType::Int4,
    SqlType::Int8,
    SqlType::Numeric,
    SqlType::Float8,
    SqlType::Text,
    SqlType::Varchar,
    SqlType::Name,
    SqlType::Float4,
    SqlType::Bpchar,
    SqlType::Bytea,
    SqlType::Date,
    SqlType::Time,
    SqlType::Timestamp,
    SqlType::TimestampTz,
    SqlType::Interval,
    SqlType::Uuid,
    SqlType::Jsonb,
];

/// The catalog stores an array type as its element type.
mod array_elem {
    use super::{SqlType, ARRAY_ELEMENTS};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &&'static SqlType, s: S) -> Result<S::Ok, S::Error> {
        (*t).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static SqlType, D::Error> {
        let t = SqlType::deserialize(d)?;
        ARRAY_ELEMENTS
            .iter()
            .find(|e| **e == t)
            .ok_or_else(|| serde::de::Error::custom(format!("no arrays of {t:?}")))
    }
}

impl SqlType {
    /// The type with this `pg_type` OID, among those helios has.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        if let Some(t) = ARRAY_ELEMENTS.iter().find(|e| e.array_oid() == oid) {
            return Some(SqlType::Array(t));
        }
        ARRAY_ELEMENTS
            .iter()
            .copied()
            .chain([SqlType::Unknown, SqlType::RegType])
            .find(|t| t.oid() == oid)
    }

    /// The array type whose elements are of this type, if helios has it.
    pub fn array_of(self) -> Option<SqlType> {
        ARRAY_ELEMENTS
            .iter()
            .find(|e| **e == self)
            .map(SqlType::Array)
    }

    /// `pg_type.typarray` of a scalar type (0: none here).
    pub fn array_oid(self) -> u32 {
        match self {
            SqlType::Bool => 1000,
            SqlType::Int2 => 1005,
            SqlType::Int4 => 1007,
            SqlType::Int8 => 1016,
            SqlType::Numeric => 1231,
            SqlType::Float8 => 1022,
            SqlType::Text => 1009,
            SqlType::Varchar => 1015,
            SqlType::Name => 1003,
            SqlType::Float4 => 1021,
            SqlType::Bpchar => 1014,
            SqlType::Bytea => 1001,
            SqlType::Date => 1182,
            SqlType::Time => 1183,
            SqlType::Timestamp => 1115,
            SqlType::TimestampTz => 1185,
            SqlType::Interval => 1187,
            SqlType::Uuid => 2951,
            SqlType::Jsonb => 3807,
            SqlType::RegType => 2211,
            SqlType::Unknown | SqlType::Array(_) => 0,
        }
    }

    /// The element type of an array type.
    pub fn element(self) -> Option<SqlType> {
        match self {
            SqlType::Array(e) => Some(*e),
            _ => None,
        }
    }

    pub fn oid(self) -> u32 {
        match self {
            SqlType::Bool => 16,
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Int8 => 20,
            SqlType::Numeric => 1700,
            SqlType::Float8 => 701,
            SqlType::Text => 25,
            SqlType::Varchar => 1043,
            SqlType::Name => 19,
            SqlType::Unknown => 705,
            SqlType::RegType => 2206,
            SqlType::Float4 => 700,
            SqlType::Bpchar => 1042,
            SqlType::Bytea => 17,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Interval => 1186,
            SqlType::Uuid => 2950,
            SqlType::Jsonb => 3802,
            SqlType::Array(e) => e.array_oid(),
        }
    }

    /// `pg_type.typlen`.
    pub(crate) fn size(self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int2 => 2,
            SqlType::Int4 | SqlType::RegType | SqlType::Float4 | SqlType::Date => 4,
            SqlType::Int8
            | SqlType::Float8
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz => 8,
            SqlType::Interval | SqlType::Uuid => 16,
            SqlType::Name => 64,
            SqlType::Numeric
            | SqlType::Text
            | SqlType::Varchar
            | SqlType::Bpchar
            | SqlType::Bytea
            | SqlType::Jsonb
            | SqlType::Array(_) => -1,
            SqlType::Unknown => -2,
        }
    }

    /// The name `format_type` gives, used in messages and by `pg_typeof`.
    pub(crate) fn sql_name(self) -> &'static str {
        match self {
            SqlType::Bool => "boolean",
            SqlType::Int2 => "smallint",
            SqlType::Int4 => "integer",
            SqlType::Int8 => "bigint",
            SqlType::Numeric => "numeric",
            SqlType::Float8 => "double precision",
            SqlType::Text => "text",
            SqlType::Varchar => "character varying",
            SqlType::Name => "name",
            SqlType::Unknown => "unknown",
            SqlType::RegType => "regtype",
            SqlType::Float4 => "real",
            SqlType::Bpchar => "character",
            SqlType::Bytea => "bytea",
            SqlType::Date => "date",
            SqlType::Time => "time without time zone",
            SqlType::Timestamp => "timestamp without time zone",
            SqlType::TimestampTz => "timestamp with time zone",
            SqlType::Interval => "interval",
            SqlType::Uuid => "uuid",
            SqlType::Jsonb => "jsonb",
            SqlType::Array(e) => ARRAY_SQL_NAMES[array_index(e)],
        }
    }

    /// `pg_type.typname`: what a cast to this type names its result column.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            SqlType::Bool => "bool",
            SqlType::Int2 => "int2",
            SqlType::Int4 => "int4",
            SqlType::Int8 => "int8",
            SqlType::Numeric => "numeric",
            SqlType::Float8 => "float8",
            SqlType::Text => "text",
            SqlType::Varchar => "varchar",
            SqlType::Name => "name",
            SqlType::Unknown => "unknown",
            SqlType::RegType => "regtype",
            SqlType::Float4 => "float4",
            SqlType::Bpchar => "bpchar",
            SqlType::Bytea => "bytea",
            SqlType::Date => "date",
            SqlType::Time => "time",
            SqlType::Timestamp => "timestamp",
            SqlType::TimestampTz => "timestamptz",
            SqlType::Interval => "interval",
            SqlType::Uuid => "uuid",
            SqlType::Jsonb => "jsonb",
            SqlType::Array(e) => ARRAY_TYPE_NAMES[array_index(e)],
        }
    }

    /// Position in the implicit-cast ladder of the numeric category (int2 → … → float8).
    pub(crate) fn numeric_rank(self) -> Option<u8> {
        match self {
            SqlType::Int2 => Some(0),
            SqlType::Int4 => Some(1),
            SqlType::Int8 => Some(2),
            SqlType::Numeric => Some(3),
            SqlType::Float4 => Some(4),
            SqlType::Float8 => Some(5),
            _ => None,
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(self, SqlType::Int2 | SqlType::Int4 | SqlType::Int8)
    }

    /// Types of the string category (binary-coercible to text for our operators).
    pub(crate) fn is_string(self) -> bool {
        matches!(
            self,
            SqlType::Text | SqlType::Varchar | SqlType::Name | SqlType::Bpchar
        )
    }

    /// date, time, timestamp, timestamptz, interval.
    pub(crate) fn is_datetime(self) -> bool {
        matches!(
            self,
            SqlType::Date
                | SqlType::Time
                | SqlType::Timestamp
                | SqlType::TimestampTz
                | SqlType::Interval
        )
    }

    fn int_range(self) -> (i64, i64) {
        match self {
            SqlType::Int2 => (i16::MIN.into(), i16::MAX.into()),
            SqlType::Int4 => (i32::MIN.into(), i32::MAX.into()),
            _ => (i64::MIN, i64::MAX),
        }
    }

    fn int_out_of_range(self) -> SqlError {
        let what = match self {
            SqlType::Int2 => "smallint",
            SqlType::Int4 => "integer",
            _ => "bigint",
        };
        SqlError::new(NUMERIC_VALUE_OUT_OF_RANGE, format!("{what} out of range"))
    }

    /// Checks an integer result against this type's range (the type must be an integer type).
    pub(crate) fn check_int(self, v: Option<i64>) -> Result<Datum, SqlError> {
        assert!(self.is_integer());
        let (min, max) = self.int_range();
        match v {
            Some(v) if v >= min && v <= max => Ok(Datum::Int(v)),
            _ => Err(self.int_out_of_range()),
        }
    }
}

fn array_index(e: &SqlType) -> usize {
    ARRAY_ELEMENTS
        .iter()
        .position(|x| x == e)
        .expect("array element types come from ARRAY_ELEMENTS")
}

/// `format_type` names of the array types, in [`ARRAY_ELEMENTS`] order.
const ARRAY_SQL_NAMES: [&str; 19] = [
    "boolean[]",
    "smallint[]",
    "integer[]",
    "bigint[]",
    "numeric[]",
    "double precision[]",
    "text[]",
    "character varying[]",
    "name[]",
    "real[]",
    "character[]",
    "bytea[]",
    "date[]",
    "time without time zone[]",
    "timestamp without time zone[]",
    "timestamp with time zone[]",
    "interval[]",
    "uuid[]",
    "jsonb[]",
];

/// `pg_type.typname` of the array types, in [`ARRAY_ELEMENTS`] order.
const ARRAY_TYPE_NAMES: [&str; 19] = [
    "_bool",
    "_int2",
    "_int4",
    "_int8",
    "_numeric",
    "_float8",
    "_text",
    "_varchar",
    "_name",
    "_float4",
    "_bpchar",
    "_bytea",
    "_date",
    "_time",
    "_timestamp",
    "_timestamptz",
    "_interval",
    "_uuid",
    "_jsonb",
];

/// A value. Integers of every width are held as i64; the static type says which width.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Numeric(BigDecimal),
    Float(f64),
    Float4(f32),
    /// text, varchar, name and char(n) (blank-padded).
    Text(String),
    Type(SqlType),
    Bytes(Vec<u8>),
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 2000-01-01, local.
    Timestamp(i64),
    /// Microseconds since 2000-01-01 UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid([u8; 16]),
    /// jsonb in its normalized text form (see `json`).
    Json(String),
    /// Elements of a one-dimensional array (NULLs allowed).
    Array(Vec<Datum>),
}

impl Datum {
    /// SQL NULL. Cheaper than `== Datum::Null`, which the derived `PartialEq` makes a call
    /// that compares discriminants out of line (5 % of a COPY's profile, once per column).
    #[inline]
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

/// How values are read and written in a session: `extra_float_digits`, the time zone, the
/// transaction's start (for 'now') and DateStyle's field order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Style {
    pub(crate) float_digits: i32,
    pub(crate) zone: Zone,
    pub(crate) now: i64,
    pub(crate) dmy: bool,
}

impl Style {
    fn clock(&self) -> datetime::Clock<'_> {
        datetime::Clock {
            now: self.now,
            zone: &self.zone,
            dmy: self.dmy,
        }
    }
}

/// Type modifier meaning "none" (`atttypmod = -1`).
pub(crate) const TYPMOD_NONE: i32 = -1;
/// `NAMEDATALEN - 1`: the longest a `name` may be, in bytes.
pub(crate) const NAME_BYTES_MAX: usize = 63;

fn invalid_input(ty: SqlType, s: &str) -> SqlError {
    SqlError::new(
        INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {}: \"{s}\"", ty.sql_name()),
    )
}

/// The type's input function: text → value. `typmod` applies numeric(p,s) / varchar(n) /
/// char(n).
pub(crate) fn input(ty: SqlType, typmod: i32, s: &str, style: &Style) -> Result<Datum, SqlError> {
    let d = input_value(ty, typmod, s, style)?;
    Ok(round_fraction(d, ty, typmod))
}

/// time(p), timestamp(p), timestamptz(p) and interval(p) keep p fractional digits (rounded
/// half away from zero, as PostgreSQL's `AdjustTimestampForTypmod`).
fn round_fraction(d: Datum, ty: SqlType, typmod: i32) -> Datum {
    if !(0..6).contains(&typmod) || !ty.is_datetime() {
        return d;
    }
    let unit = 10i64.pow(6 - typmod as u32);
    let round = |v: i64| {
        if datetime::is_infinite(v) {
            v
        } else if v >= 0 {
            (v + unit / 2) / unit * unit
        } else {
            -((-v + unit / 2) / unit * unit)
        }
    };
    match d {
        Datum::Time(t) => Datum::Time(round(t)),
        Datum::Timestamp(t) => Datum::Timestamp(round(t)),
        Datum::TimestampTz(t) => Datum::TimestampTz(round(t)),
        Datum::Interval(iv) => Datum::Interval(Interval {
            micros: round(iv.micros),
            ..iv
        }),
        other => other,
    }
}

fn input_value(ty: SqlType, typmod: i32, s: &str, style: &Style) -> Result<Datum, SqlError> {
    match ty {
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 => input_int(ty, s),
        SqlType::Numeric => {
            let n = numeric::parse(s.trim()).ok_or_else(|| invalid_input(ty, s))?;
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        SqlType::Float8 => input_float(s),
        SqlType::Float4 => input_float4(s),
        SqlType::Bool => input_bool(s)
            .map(Datum::Bool)
            .ok_or_else(|| invalid_input(ty, s)),
        SqlType::Text | SqlType::Unknown => Ok(Datum::Text(s.to_string())),
        SqlType::Varchar => Ok(Datum::Text(fit_length(ty, s, typmod)?)),
        SqlType::Bpchar => Ok(Datum::Text(pad_chars(&fit_length(ty, s, typmod)?, typmod))),
        SqlType::Name => Ok(Datum::Text(truncate_bytes(s, NAME_BYTES_MAX))),
        SqlType::Bytea => input_bytea(s).map(Datum::Bytes),
        SqlType::Date => datetime::parse_date(s, &style.clock()).map(Datum::Date),
        SqlType::Time => datetime::parse_time(s, &style.clock()).map(Datum::Time),
        SqlType::Timestamp => {
            datetime::parse_timestamp(s, false, &style.clock()).map(Datum::Timestamp)
        }
        SqlType::TimestampTz => {
            datetime::parse_timestamp(s, true, &style.clock()).map(Datum::TimestampTz)
        }
        SqlType::Interval => datetime::parse_interval(s).map(Datum::Interval),
        SqlType::Uuid => input_uuid(s).map(Datum::Uuid),
        SqlType::Jsonb => crate::json::normalize(s).map(Datum::Json),
        SqlType::Array(elem) => input_array(*elem, typmod, s, style),
        SqlType::RegType => Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "input of type regtype is not supported yet",
        )),
    }
}

/// `float4in`: parsed as float8, then checked against float4's range.
fn input_float4(s: &str) -> Result<Datum, SqlError> {
    let Datum::Float(v) = input_float(s).map_err(|e| {
        if e.sqlstate == INVALID_TEXT_REPRESENTATION {
            invalid_input(SqlType::Float4, s)
        } else {
            e
        }
    })?
    else {
        unreachable!("input_float gives a float")
    };
    let f = v as f32;
    if v.is_finite() && (f.is_infinite() || (f == 0.0 && v != 0.0)) {
        return Err(SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{}\" is out of range for type real", s.trim()),
        ));
    }
    Ok(Datum::Float4(f))
}

/// `byteain`: the hex format (`\x0aff`) or the escape format (`a\000b`, `\\`).
fn input_bytea(s: &str) -> Result<Vec<u8>, SqlError> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let invalid = |c: u8| {
            SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("invalid hexadecimal digit: \"{}\"", c as char),
            )
        };
        if !digits.len().is_multiple_of(2) {
            return Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                "invalid hexadecimal data: odd number of digits",
            ));
        }
        return digits
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char)
                    .to_digit(16)
                    .ok_or_else(|| invalid(pair[0]))?;
                let lo = (pair[1] as char)
                    .to_digit(16)
                    .ok_or_else(|| invalid(pair[1]))?;
                Ok((hi * 16 + lo) as u8)
            })
            .collect();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(oct) = bytes.get(i + 1..i + 4).filter(|o| {
            (b'0'..=b'3').contains(&o[0]) && o[1..].iter().all(|c| (b'0'..=b'7').contains(c))
        }) {
            out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
            i += 4;
        } else {
            return Err(invalid_input(SqlType::Bytea, s));
        }
    }
    Ok(out)
}

/// `uuid_in`: 32 hex digits, optionally hyphenated in 4-byte groups, optionally in braces.
fn input_uuid(s: &str) -> Result<[u8; 16], SqlError> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|&b| b != b'-').collect();
    let hyphens_ok = t.len() == 32
        || (t.len() == 36 && [8, 13, 18, 23].iter().all(|&i| t.as_bytes()[i] == b'-'))
        || (t.len() == 39 && t.bytes().filter(|&b| b == b'-').count() == 7);
    if digits.len() != 32 || !hyphens_ok || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid_input(SqlType::Uuid, s));
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).map_err(|_| invalid_input(SqlType::Uuid, s))?;
        out[i] = u8::from_str_radix(hex, 16).map_err(|_| invalid_input(SqlType::Uuid, s))?;
    }
    Ok(out)
}

/// Bounds the elements one array literal may have.
pub(crate) const ARRAY_ELEMENTS_MAX: usize = 1 << 20;

/// `array_in` for one-dimensional arrays: `{1,2,NULL}`, `{"a b","c\\"d"}`.
fn input_array(elem: SqlType, typmod: i32, s: &str, style: &Style) -> Result<Datum, SqlError> {
    // PostgreSQL adds the detail (`_why`) in a DETAIL field, which SqlError does not carry.
    let malformed = |_why: &str| {
        SqlError::new(
            INVALID_TEXT_REPRESENTATION,
            format!("malformed array literal: \"{s}\""),
        )
    };
    let t = s.trim();
    let Some(body) = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return Err(malformed(
            "Array value must start with \"{\" or dimension information.",
        ));
    };
    let mut items = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    if chars.iter().all(|c| c.is_whitespace()) {
        return Ok(Datum::Array(items));
    }
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "multidimensional arrays are not supported yet",
            ));
        }
        let mut value = String::new();
        let mut quoted = false;
        if chars.get(i) == Some(&'"') {
            quoted = true;
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(malformed("Unexpected end of input.")),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        value.push(
                            *chars
                                .get(i + 1)
                                .ok_or_else(|| malformed("Unexpected end of input."))?,
                        );
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
        } else {
            while i < chars.len() && chars[i] != ',' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(c) = chars.get(i) {
                    value.push(*c);
                }
                i += 1;
            }
            value = value.trim_end().to_string();
            if value.is_empty() {
                return Err(malformed("Unexpected \",\" character."));
            }
        }
        if items.len() >= ARRAY_ELEMENTS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("an array holds at most {ARRAY_ELEMENTS_MAX} elements"),
            ));
        }
        items.push(if !quoted && value.eq_ignore_ascii_case("null") {
            Datum::Null
        } else {
            input(elem, typmod, &value, style)?
        });
        match chars.get(i) {
            None => break,
            Some(',') => i += 1,
            Some(_) => return Err(malformed("Unexpected array element.")),
        }
    }
    Ok(Datum::Array(items))
}

fn input_int(ty: SqlType, s: &str) -> Result<Datum, SqlError> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_input(ty, s));
    }
    let out_of_range = || {
        SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("value \"{s}\" is out of range for type {}", ty.sql_name()),
        )
    };
    let v: i64 = t.parse().map_err(|_| out_of_range())?;
    let (min, max) = ty.int_range();
    if v < min || v > max {
        return Err(out_of_range());
    }
    Ok(Datum::Int(v))
}

fn input_float(s: &str) -> Result<Datum, SqlError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let special = match lower.as_str() {
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(Datum::Float(v));
    }
    // Rust's parser accepts "inf"/"nan" spellings handled above and nothing else exotic;
    // requiring a digit keeps out strings such as "." or "e5".
    let ok_chars = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    let v: f64 = match t.parse() {
        Ok(v) if ok_chars && t.bytes().any(|b| b.is_ascii_digit()) => v,
        _ => return Err(invalid_input(SqlType::Float8, s)),
    };
    let mantissa_nonzero = t
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .bytes()
        .any(|b| (b'1'..=b'9').contains(&b));
    if v.is_infinite() || (v == 0.0 && mantissa_nonzero) {
        return Err(SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{t}\" is out of range for type double precision"),
        ));
    }
    Ok(Datum::Float(v))
}

/// `boolin`: t/true/y/yes/on/1 and f/false/n/no/off/0, any case, unique prefixes allowed.
fn input_bool(s: &str) -> Option<bool> {
    let t = s.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || t == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// varchar(n) and char(n) input: a longer string is an error unless the excess is blanks,
/// which are cut (an explicit cast cuts anything first: [`cut_for_cast`]).
pub(crate) fn fit_length(ty: SqlType, s: &str, typmod: i32) -> Result<String, SqlError> {
    if typmod < 4 {
        return Ok(s.to_string());
    }
    let max = (typmod - 4) as usize;
    // At most `max` bytes is at most `max` characters: nothing to cut (the common case).
    if s.len() <= max {
        return Ok(s.to_string());
    }
    let cut = if s.is_ascii() {
        max
    } else {
        match s.char_indices().nth(max) {
            Some((cut, _)) => cut,
            None => return Ok(s.to_string()),
        }
    };
    if s[cut..].bytes().any(|b| b != b' ') {
        let name = if ty == SqlType::Varchar {
            "character varying"
        } else {
            "character"
        };
        return Err(SqlError::new(
            STRING_DATA_RIGHT_TRUNCATION,
            format!("value too long for type {name}({max})"),
        ));
    }
    Ok(s[..cut].to_string())
}

/// An explicit cast to varchar(n) or char(n) cuts the string to n characters.
fn cut_for_cast(text: String, to: SqlType, typmod: i32) -> String {
    if typmod < 4 || !matches!(to, SqlType::Varchar | SqlType::Bpchar) {
        return text;
    }
    let max = (typmod - 4) as usize;
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    }
}

fn truncate_bytes(s: &str, bytes_max: usize) -> String {
    let mut end = s.len().min(bytes_max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The type's output function: value → text.
pub(crate) fn output(d: &Datum, style: &Style) -> Option<String> {
    Some(match d {
        Datum::Null => return None,
        Datum::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
        Datum::Int(v) => v.to_string(),
        Datum::Numeric(n) => numeric::to_text(n),
        Datum::Float(f) => float_to_text(*f, style.float_digits),
        Datum::Float4(f) => float4_to_text(*f, style.float_digits),
        Datum::Text(s) => s.clone(),
        Datum::Type(t) => t.sql_name().to_string(),
        Datum::Bytes(b) => bytea_to_text(b),
        Datum::Date(d) => datetime::format_date(*d),
        Datum::Time(t) => datetime::format_time(*t),
        Datum::Timestamp(t) => datetime::format_timestamp(*t, None),
        Datum::TimestampTz(t) => datetime::format_timestamp(*t, Some(&style.zone)),
        Datum::Interval(iv) => datetime::format_interval(iv),
        Datum::Uuid(u) => uuid_to_text(u),
        Datum::Json(j) => j.clone(),
        Datum::Array(items) => array_to_text(items, style),
    })
}

fn bytea_to_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("\\x");
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

fn uuid_to_text(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `array_out`: elements quoted when empty, `NULL`-like, or holding `{},"\\` or blanks.
fn array_to_text(items: &[Datum], style: &Style) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match output(item, style) {
            None => out.push_str("NULL"),
            Some(text) => {
                let quote = text.is_empty()
                    || text.eq_ignore_ascii_case("null")
                    || text
                        .chars()
                        .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
                if quote {
                    out.push('"');
                    for c in text.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&text);
                }
            }
        }
    }
    out.push('}');
    out
}

/// `float8out`: shortest round-trip digits when `extra_float_digits > 0` (the default),
/// else `%.{15 + extra_float_digits}g`. Exponent form below 1e-4 and from 1e15 (resp. the
/// precision) up, with a signed exponent of at least two digits, as C's printf writes it.
pub(crate) fn float_to_text(v: f64, float_digits: i32) -> String {
    if let Some(s) = float_special(v) {
        return s;
    }
    if float_digits > 0 {
        float_layout(&format!("{v:e}"), 15)
    } else {
        let p = (15 + float_digits).max(1) as usize;
        float_layout(&format!("{:.*e}", p - 1, v), p as i32)
    }
}

/// `float4out`: as `float8out`, with float4's shortest digits and 6 significant digits.
pub(crate) fn float4_to_text(v: f32, float_digits: i32) -> String {
    if let Some(s) = float_special(f64::from(v)) {
        return s;
    }
    if float_digits > 0 {
        float_layout(&format!("{v:e}"), 6)
    } else {
        let p = (6 + float_digits).max(1) as usize;
        float_layout(&format!("{:.*e}", p - 1, v), p as i32)
    }
}

fn float_special(v: f64) -> Option<String> {
    if v.is_nan() {
        return Some("NaN".to_string());
    }
    if v.is_infinite() {
        return Some(if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string());
    }
    None
}

/// Lays out digits given in Rust's `{:e}` form as C's `%g` does: exponent form below 1e-4
/// and from 10^precision up.
fn float_layout(sci: &str, precision: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= precision {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// An explicit cast (`CAST(x AS t)`, `x::t`) of a non-null value; implicit coercions between
/// numeric types use it too.
pub(crate) fn cast(
    d: Datum,
    from: SqlType,
    to: SqlType,
    typmod: i32,
    style: &Style,
) -> Result<Datum, SqlError> {
    let d = cast_value(d, from, to, typmod, style)?;
    Ok(round_fraction(d, to, typmod))
}

fn cast_value(
    d: Datum,
    from: SqlType,
    to: SqlType,
    typmod: i32,
    style: &Style,
) -> Result<Datum, SqlError> {
    if matches!(d, Datum::Null) {
        return Ok(Datum::Null);
    }
    if to.is_string() {
        let text = match (&d, from) {
            // bool's cast to text spells the word out, unlike its output function.
            (Datum::Bool(b), _) => b.to_string(),
            // char(n) loses its padding when it becomes another string type.
            (Datum::Text(t), SqlType::Bpchar) if to != SqlType::Bpchar => {
                t.trim_end_matches(' ').to_string()
            }
            _ => output(&d, style).unwrap_or_default(),
        };
        return input(to, typmod, &cut_for_cast(text, to, typmod), style);
    }
    if from.is_string() || from == SqlType::Unknown {
        let Datum::Text(s) = d else {
            unreachable!("string-typed datum is not text: {d:?}")
        };
        return input(to, typmod, &cut_for_cast(s, to, typmod), style);
    }
    let cannot = || {
        SqlError::new(
            CANNOT_COERCE,
            format!("cannot cast type {} to {}", from.sql_name(), to.sql_name()),
        )
    };
    match (d, to) {
        (Datum::Int(v), t) if t.is_integer() => t.check_int(Some(v)),
        (Datum::Int(v), SqlType::Numeric) => Ok(Datum::Numeric(numeric::apply_typmod(
            BigDecimal::from(v),
            typmod,
        )?)),
        (Datum::Int(v), SqlType::Float8) => Ok(Datum::Float(v as f64)),
        (Datum::Int(v), SqlType::Float4) => Ok(Datum::Float4(v as f32)),
        (Datum::Int(v), SqlType::Bool) if from == SqlType::Int4 => Ok(Datum::Bool(v != 0)),
        (Datum::Numeric(n), t) if t.is_integer() => t.check_int(numeric::round_to_i64(&n)),
        (Datum::Numeric(n), SqlType::Numeric) => {
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        (Datum::Numeric(n), SqlType::Float8) => Ok(Datum::Float(
            f64::from_str(&numeric::to_text(&n)).unwrap_or(f64::NAN),
        )),
        (Datum::Numeric(n), SqlType::Float4) => input_float4(&numeric::to_text(&n)),
        (Datum::Float4(f), t) if !matches!(t, SqlType::Float4) => {
            // float4 → float8 keeps the float4's exact value; → numeric goes by its text.
            match t {
                SqlType::Numeric => {
                    let n = numeric::parse(&float4_to_text(f, 0))
                        .ok_or_else(|| invalid_input(SqlType::Numeric, &f.to_string()))?;
                    Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
                }
                _ => cast(
                    Datum::Float(f64::from(f)),
                    SqlType::Float8,
                    t,
                    typmod,
                    style,
                ),
            }
        }
        (Datum::Float4(f), SqlType::Float4) => Ok(Datum::Float4(f)),
        (Datum::Float(f), t) if t.is_integer() => {
            let r = f.round_ties_even();
            let fits = (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r);
            t.check_int(fits.then_some(r as i64))
        }
        (Datum::Float(f), SqlType::Float8) => Ok(Datum::Float(f)),
        (Datum::Float(f), SqlType::Float4) => {
            let g = f as f32;
            if f.is_finite() && (g.is_infinite() || (g == 0.0 && f != 0.0)) {
                return Err(SqlError::new(
                    NUMERIC_VALUE_OUT_OF_RANGE,
                    if g == 0.0 {
                        "value out of range: underflow"
                    } else {
                        "value out of range: overflow"
                    },
                ));
            }
            Ok(Datum::Float4(g))
        }
        (Datum::Float(f), SqlType::Numeric) => {
            let n = numeric::from_f64(f)?;
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        (Datum::Bool(b), SqlType::Int4) => Ok(Datum::Int(b.into())),
        (Datum::Bool(b), SqlType::Bool) => Ok(Datum::Bool(b)),
        (Datum::Date(d), SqlType::Date) => Ok(Datum::Date(d)),
        (Datum::Date(d), SqlType::Timestamp) => {
            datetime::date_to_timestamp(d).map(Datum::Timestamp)
        }
        (Datum::Date(d), SqlType::TimestampTz) => {
            let local = datetime::date_to_timestamp(d)?;
            Ok(Datum::TimestampTz(datetime::from_local(local, &style.zone)))
        }
        (Datum::Timestamp(t), SqlType::Timestamp) => Ok(Datum::Timestamp(t)),
        (Datum::Timestamp(t), SqlType::Date) => datetime::date_of(t).map(Datum::Date),
        (Datum::Timestamp(t), SqlType::Time) if !datetime::is_infinite(t) => {
            Ok(Datum::Time(datetime::time_of(t)))
        }
        (Datum::Timestamp(t), SqlType::TimestampTz) => {
            Ok(Datum::TimestampTz(datetime::from_local(t, &style.zone)))
        }
        (Datum::TimestampTz(t), SqlType::TimestampTz) => Ok(Datum::TimestampTz(t)),
        (Datum::TimestampTz(t), SqlType::Timestamp) => {
            Ok(Datum::Timestamp(datetime::to_local(t, &style.zone)))
        }
        (Datum::TimestampTz(t), SqlType::Date) => {
            datetime::date_of(datetime::to_local(t, &style.zone)).map(Datum::Date)
        }
        (Datum::TimestampTz(t), SqlType::Time) if !datetime::is_infinite(t) => Ok(Datum::Time(
            datetime::time_of(datetime::to_local(t, &style.zone)),
        )),
        (Datum::Time(t), SqlType::Time) => Ok(Datum::Time(t)),
        (Datum::Time(t), SqlType::Interval) => Ok(Datum::Interval(Interval {
            months: 0,
            days: 0,
            micros: t,
        })),
        (Datum::Interval(iv), SqlType::Interval) => Ok(Datum::Interval(iv)),
        (Datum::Interval(iv), SqlType::Time) => {
            Ok(Datum::Time(iv.micros.rem_euclid(datetime::MICROS_PER_DAY)))
        }
        (Datum::Uuid(u), SqlType::Uuid) => Ok(Datum::Uuid(u)),
        (Datum::Bytes(b), SqlType::Bytea) => Ok(Datum::Bytes(b)),
        (Datum::Json(j), SqlType::Jsonb) => Ok(Datum::Json(j)),
        (Datum::Array(items), SqlType::Array(to_elem)) => {
            let from_elem = from.element().unwrap_or(SqlType::Unknown);
            let items = items
                .into_iter()
                .map(|item| cast(item, from_elem, *to_elem, typmod, style))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Datum::Array(items))
        }
        _ => Err(cannot()),
    }
}

/// Pads (or, on an explicit cast, cuts) a string to char(n)'s length.
fn pad_chars(s: &str, typmod: i32) -> String {
    if typmod < 4 {
        return s.to_string();
    }
    let n = (typmod - 4) as usize;
    let count = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    if count >= n {
        let cut = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
        return s[..cut].to_string();
    }
    const BLANKS: &str = "                                                                ";
    let mut out = String::with_capacity(s.len() + n - count);
    out.push_str(s);
    let mut missing = n - count;
    while missing > 0 {
        let run = missing.min(BLANKS.len());
        out.push_str(&BLANKS[..run]);
        missing -= run;
    }
    out
}
