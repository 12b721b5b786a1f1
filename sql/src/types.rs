//! The SQL types this slice knows, their values, and PostgreSQL's input/output functions and
//! casts between them. Output text is byte-for-byte what PostgreSQL 16 prints.

use std::str::FromStr;

use bigdecimal::BigDecimal;

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
}

impl SqlType {
    /// The type with this `pg_type` OID, among those helios has.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        [
            SqlType::Bool,
            SqlType::Int2,
            SqlType::Int4,
            SqlType::Int8,
            SqlType::Numeric,
            SqlType::Float8,
            SqlType::Text,
            SqlType::Varchar,
            SqlType::Name,
            SqlType::Unknown,
            SqlType::RegType,
        ]
        .into_iter()
        .find(|t| t.oid() == oid)
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
        }
    }

    /// `pg_type.typlen`.
    pub(crate) fn size(self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int2 => 2,
            SqlType::Int4 | SqlType::RegType => 4,
            SqlType::Int8 | SqlType::Float8 => 8,
            SqlType::Name => 64,
            SqlType::Numeric | SqlType::Text | SqlType::Varchar => -1,
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
        }
    }

    /// Position in the implicit-cast ladder of the numeric category (int2 → … → float8).
    pub(crate) fn numeric_rank(self) -> Option<u8> {
        match self {
            SqlType::Int2 => Some(0),
            SqlType::Int4 => Some(1),
            SqlType::Int8 => Some(2),
            SqlType::Numeric => Some(3),
            SqlType::Float8 => Some(4),
            _ => None,
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        matches!(self, SqlType::Int2 | SqlType::Int4 | SqlType::Int8)
    }

    /// Types of the string category (binary-coercible to text for our operators).
    pub(crate) fn is_string(self) -> bool {
        matches!(self, SqlType::Text | SqlType::Varchar | SqlType::Name)
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

/// A value. Integers of every width are held as i64; the static type says which width.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Numeric(BigDecimal),
    Float(f64),
    Text(String),
    Type(SqlType),
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

/// The type's input function: text → value. `typmod` applies numeric(p,s) / varchar(n).
pub(crate) fn input(ty: SqlType, typmod: i32, s: &str) -> Result<Datum, SqlError> {
    match ty {
        SqlType::Int2 | SqlType::Int4 | SqlType::Int8 => input_int(ty, s),
        SqlType::Numeric => {
            let n = numeric::parse(s.trim()).ok_or_else(|| invalid_input(ty, s))?;
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        SqlType::Float8 => input_float(s),
        SqlType::Bool => input_bool(s)
            .map(Datum::Bool)
            .ok_or_else(|| invalid_input(ty, s)),
        SqlType::Text | SqlType::Unknown => Ok(Datum::Text(s.to_string())),
        SqlType::Varchar => Ok(Datum::Text(truncate_chars(s, typmod))),
        SqlType::Name => Ok(Datum::Text(truncate_bytes(s, NAME_BYTES_MAX))),
        SqlType::RegType => Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "input of type regtype is not supported yet",
        )),
    }
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

fn truncate_chars(s: &str, typmod: i32) -> String {
    if typmod < 4 {
        return s.to_string();
    }
    let chars_max = (typmod - 4) as usize;
    s.chars().take(chars_max).collect()
}

fn truncate_bytes(s: &str, bytes_max: usize) -> String {
    let mut end = s.len().min(bytes_max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The type's output function: value → text. `float_digits` is `extra_float_digits`.
pub(crate) fn output(d: &Datum, float_digits: i32) -> Option<String> {
    Some(match d {
        Datum::Null => return None,
        Datum::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
        Datum::Int(v) => v.to_string(),
        Datum::Numeric(n) => numeric::to_text(n),
        Datum::Float(f) => float_to_text(*f, float_digits),
        Datum::Text(s) => s.clone(),
        Datum::Type(t) => t.sql_name().to_string(),
    })
}

/// `float8out`: shortest round-trip digits when `extra_float_digits > 0` (the default),
/// else `%.{15 + extra_float_digits}g`. Exponent form below 1e-4 and from 1e15 (resp. the
/// precision) up, with a signed exponent of at least two digits, as C's printf writes it.
pub(crate) fn float_to_text(v: f64, float_digits: i32) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let (precision, sci) = if float_digits > 0 {
        (15, format!("{v:e}"))
    } else {
        let p = (15 + float_digits).max(1) as usize;
        (p as i32, format!("{:.*e}", p - 1, v))
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
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
    float_digits: i32,
) -> Result<Datum, SqlError> {
    if matches!(d, Datum::Null) {
        return Ok(Datum::Null);
    }
    if to == SqlType::Text || to == SqlType::Varchar || to == SqlType::Name {
        let text = match (&d, from) {
            // bool's cast to text spells the word out, unlike its output function.
            (Datum::Bool(b), _) => b.to_string(),
            _ => output(&d, float_digits).unwrap_or_default(),
        };
        return input(to, typmod, &text);
    }
    if from.is_string() || from == SqlType::Unknown {
        let Datum::Text(s) = &d else {
            unreachable!("string-typed datum is not text: {d:?}")
        };
        return input(to, typmod, s);
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
        (Datum::Int(v), SqlType::Bool) if from == SqlType::Int4 => Ok(Datum::Bool(v != 0)),
        (Datum::Numeric(n), t) if t.is_integer() => t.check_int(numeric::round_to_i64(&n)),
        (Datum::Numeric(n), SqlType::Numeric) => {
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        (Datum::Numeric(n), SqlType::Float8) => Ok(Datum::Float(
            f64::from_str(&numeric::to_text(&n)).unwrap_or(f64::NAN),
        )),
        (Datum::Float(f), t) if t.is_integer() => {
            let r = f.round_ties_even();
            let fits = (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r);
            t.check_int(fits.then_some(r as i64))
        }
        (Datum::Float(f), SqlType::Float8) => Ok(Datum::Float(f)),
        (Datum::Float(f), SqlType::Numeric) => {
            let n = numeric::from_f64(f)?;
            Ok(Datum::Numeric(numeric::apply_typmod(n, typmod)?))
        }
        (Datum::Bool(b), SqlType::Int4) => Ok(Datum::Int(b.into())),
        (Datum::Bool(b), SqlType::Bool) => Ok(Datum::Bool(b)),
        _ => Err(cannot()),
    }
}
