//! The built-in scalar functions applications use most: string, math, date/time, uuid and
//! array functions, with PostgreSQL's argument types, results and errors.
//!
//! Each name has one or more signatures; the binder picks the first whose parameters the
//! arguments reach by implicit coercion, preferring the one with the most exact matches (a
//! simplified form of PostgreSQL's function resolution that agrees with it on these
//! functions). Functions are strict (NULL in, NULL out) unless marked otherwise.

use bigdecimal::BigDecimal;

use crate::datetime as dt;
use crate::error::*;
use crate::expr::{common_type, Binder, Bound, Eval, Func, Kind};
use crate::numeric;
use crate::types::{Datum, SqlType as T, TYPMOD_NONE};

/// Bounds the output of repeat/lpad/rpad (PostgreSQL's 1 GB field limit, lowered).
const STRING_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Substr,
    Strpos,
    Btrim,
    Ltrim,
    Rtrim,
    Replace,
    Left,
    Right,
    Lpad,
    Rpad,
    Repeat,
    Reverse,
    SplitPart,
    StartsWith,
    Initcap,
    QuoteIdent,
    Md5,
    Ascii,
    Chr,
    OctetLength,
    ToHex,
    Translate,
    Concat,
    ConcatWs,
    Round,
    Trunc,
    Ceil,
    Floor,
    Sqrt,
    Cbrt,
    Exp,
    Ln,
    Log10,
    Power,
    Mod,
    Sign,
    Pi,
    Random,
    Degrees,
    Radians,
    Sin,
    Cos,
    Tan,
    Atan,
    Atan2,
    Div,
    Greatest,
    Least,
    Now,
    ClockTimestamp,
    CurrentDate,
    LocalTimestamp,
    LocalTime,
    DateTrunc,
    DatePart,
    /// EXTRACT(field FROM x): numeric, as PostgreSQL 14+ gives.
    Extract,
    Age,
    MakeDate,
    MakeTime,
    MakeTimestamp,
    ToTimestamp,
    GenRandomUuid,
    ArrayLength,
    Cardinality,
    ToChar,
    RegexpReplace,
    RegexpMatch,
    StringToArray,
    Format,
    ArrayToString,
    ArrayPosition,
    ArrayUpper,
    ArrayLower,
    ArrayAppend,
    ArrayPrepend,
    ArrayCat,
    /// jsonb `||`.
    JsonbConcat,
    /// ARRAY[a, b, …].
    ArrayConstruct,
    /// array[i] (1-based).
    ArraySubscript,
    /// x op ANY/ALL (array).
    ArrayAny {
        op: crate::expr::Cmp,
        all: bool,
    },
    /// The integer bit operators `&`, `|`, `#`, `<<`, `>>` and prefix `~`, in the width of
    /// their (first) operand's type.
    Bitwise(BitOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitOp {
    And,
    Or,
    Xor,
    ShiftLeft,
    ShiftRight,
    Not,
}

/// `a op b` (`b` unused for Not) in the width of `ty` (int2, int4 or int8), as PostgreSQL's
/// int2/int4/int8 operators compute them: shifts wrap around the width.
fn bitwise(op: BitOp, ty: T, a: i64, b: i64) -> i64 {
    fn apply<I>(op: BitOp, a: I, b: i64, bits: u32) -> I
    where
        I: Copy
            + std::ops::BitAnd<Output = I>
            + std::ops::BitOr<Output = I>
            + std::ops::BitXor<Output = I>
            + std::ops::Not<Output = I>
            + std::ops::Shl<u32, Output = I>
            + std::ops::Shr<u32, Output = I>
            + TryFrom<i64>,
    {
        let other = || I::try_from(b).ok().expect("operands share the width");
        let shift = (b.rem_euclid(i64::from(bits))) as u32;
        match op {
            BitOp::And => a & other(),
            BitOp::Or => a | other(),
            BitOp::Xor => a ^ other(),
            BitOp::ShiftLeft => a << shift,
            BitOp::ShiftRight => a >> shift,
            BitOp::Not => !a,
        }
    }
    match ty {
        T::Int2 => i64::from(apply(op, a as i16, b, 16)),
        T::Int4 => i64::from(apply(op, a as i32, b, 32)),
        _ => apply(op, a, b, 64),
    }
}

use Builtin as B;

/// A parameter type in a signature: a concrete type, or one taken from the arguments.
#[derive(Clone, Copy)]
enum P {
    Is(T),
    /// Any array; the result may be its type.
    AnyArray,
    /// The element type of the (first) array argument.
    Elem,
}

struct Sig {
    params: &'static [P],
    result: R,
    func: Builtin,
}

#[derive(Clone, Copy)]
enum R {
    Is(T),
    /// The array argument's type.
    Array,
}

const TX: P = P::Is(T::Text);
const I4: P = P::Is(T::Int4);
const I8: P = P::Is(T::Int8);
const NU: P = P::Is(T::Numeric);
const F8: P = P::Is(T::Float8);
const TS: P = P::Is(T::Timestamp);
const TZ: P = P::Is(T::TimestampTz);
const IV: P = P::Is(T::Interval);

macro_rules! sig {
    ($func:expr, [$($p:expr),*], $r:expr) => {
        Sig { params: &[$($p),*], result: $r, func: $func }
    };
}

fn signatures(name: &str) -> &'static [Sig] {
    use R::Is as Ret;
    match name {
        "substr" | "substring" => &[
            sig!(B::Substr, [TX, I4], Ret(T::Text)),
            sig!(B::Substr, [TX, I4, I4], Ret(T::Text)),
        ],
        "strpos" => &[sig!(B::Strpos, [TX, TX], Ret(T::Int4))],
        "btrim" => &[
            sig!(B::Btrim, [TX], Ret(T::Text)),
            sig!(B::Btrim, [TX, TX], Ret(T::Text)),
        ],
        "ltrim" => &[
            sig!(B::Ltrim, [TX], Ret(T::Text)),
            sig!(B::Ltrim, [TX, TX], Ret(T::Text)),
        ],
        "rtrim" => &[
            sig!(B::Rtrim, [TX], Ret(T::Text)),
            sig!(B::Rtrim, [TX, TX], Ret(T::Text)),
        ],
        "replace" => &[sig!(B::Replace, [TX, TX, TX], Ret(T::Text))],
        "left" => &[sig!(B::Left, [TX, I4], Ret(T::Text))],
        "right" => &[sig!(B::Right, [TX, I4], Ret(T::Text))],
        "lpad" => &[
            sig!(B::Lpad, [TX, I4], Ret(T::Text)),
            sig!(B::Lpad, [TX, I4, TX], Ret(T::Text)),
        ],
        "rpad" => &[
            sig!(B::Rpad, [TX, I4], Ret(T::Text)),
            sig!(B::Rpad, [TX, I4, TX], Ret(T::Text)),
        ],
        "repeat" => &[sig!(B::Repeat, [TX, I4], Ret(T::Text))],
        "reverse" => &[sig!(B::Reverse, [TX], Ret(T::Text))],
        "split_part" => &[sig!(B::SplitPart, [TX, TX, I4], Ret(T::Text))],
        "starts_with" => &[sig!(B::StartsWith, [TX, TX], Ret(T::Bool))],
        "initcap" => &[sig!(B::Initcap, [TX], Ret(T::Text))],
        "quote_ident" => &[sig!(B::QuoteIdent, [TX], Ret(T::Text))],
        "md5" => &[
            sig!(B::Md5, [TX], Ret(T::Text)),
            sig!(B::Md5, [P::Is(T::Bytea)], Ret(T::Text)),
        ],
        "ascii" => &[sig!(B::Ascii, [TX], Ret(T::Int4))],
        "chr" => &[sig!(B::Chr, [I4], Ret(T::Text))],
        "octet_length" => &[
            sig!(B::OctetLength, [TX], Ret(T::Int4)),
            sig!(B::OctetLength, [P::Is(T::Bytea)], Ret(T::Int4)),
        ],
        "to_hex" => &[
            sig!(B::ToHex, [I4], Ret(T::Text)),
            sig!(B::ToHex, [I8], Ret(T::Text)),
        ],
        "translate" => &[sig!(B::Translate, [TX, TX, TX], Ret(T::Text))],
        "round" => &[
            sig!(B::Round, [F8], Ret(T::Float8)),
            sig!(B::Round, [NU], Ret(T::Numeric)),
            sig!(B::Round, [NU, I4], Ret(T::Numeric)),
        ],
        "trunc" => &[
            sig!(B::Trunc, [F8], Ret(T::Float8)),
            sig!(B::Trunc, [NU], Ret(T::Numeric)),
            sig!(B::Trunc, [NU, I4], Ret(T::Numeric)),
        ],
        "ceil" | "ceiling" => &[
            sig!(B::Ceil, [F8], Ret(T::Float8)),
            sig!(B::Ceil, [NU], Ret(T::Numeric)),
        ],
        "floor" => &[
            sig!(B::Floor, [F8], Ret(T::Float8)),
            sig!(B::Floor, [NU], Ret(T::Numeric)),
        ],
        "sqrt" => &[sig!(B::Sqrt, [F8], Ret(T::Float8))],
        "cbrt" => &[sig!(B::Cbrt, [F8], Ret(T::Float8))],
        "exp" => &[sig!(B::Exp, [F8], Ret(T::Float8))],
        "ln" => &[sig!(B::Ln, [F8], Ret(T::Float8))],
        "log" | "log10" => &[sig!(B::Log10, [F8], Ret(T::Float8))],
        "power" | "pow" => &[sig!(B::Power, [F8, F8], Ret(T::Float8))],
        "mod" => &[
            sig!(B::Mod, [P::Is(T::Int2), P::Is(T::Int2)], Ret(T::Int2)),
            sig!(B::Mod, [I4, I4], Ret(T::Int4)),
            sig!(B::Mod, [I8, I8], Ret(T::Int8)),
            sig!(B::Mod, [NU, NU], Ret(T::Numeric)),
        ],
        "sign" => &[
            sig!(B::Sign, [F8], Ret(T::Float8)),
            sig!(B::Sign, [NU], Ret(T::Numeric)),
        ],
        "pi" => &[sig!(B::Pi, [], Ret(T::Float8))],
        "random" => &[sig!(B::Random, [], Ret(T::Float8))],
        "degrees" => &[sig!(B::Degrees, [F8], Ret(T::Float8))],
        "radians" => &[sig!(B::Radians, [F8], Ret(T::Float8))],
        "sin" => &[sig!(B::Sin, [F8], Ret(T::Float8))],
        "cos" => &[sig!(B::Cos, [F8], Ret(T::Float8))],
        "tan" => &[sig!(B::Tan, [F8], Ret(T::Float8))],
        "atan" => &[sig!(B::Atan, [F8], Ret(T::Float8))],
        "atan2" => &[sig!(B::Atan2, [F8, F8], Ret(T::Float8))],
        "div" => &[sig!(B::Div, [NU, NU], Ret(T::Numeric))],
        "now" | "transaction_timestamp" | "statement_timestamp" => {
            &[sig!(B::Now, [], Ret(T::TimestampTz))]
        }
        "clock_timestamp" => &[sig!(B::ClockTimestamp, [], Ret(T::TimestampTz))],
        "date_trunc" => &[
            sig!(B::DateTrunc, [TX, TS], Ret(T::Timestamp)),
            sig!(B::DateTrunc, [TX, TZ], Ret(T::TimestampTz)),
            sig!(B::DateTrunc, [TX, IV], Ret(T::Interval)),
        ],
        "date_part" => &[
            sig!(B::DatePart, [TX, TS], Ret(T::Float8)),
            sig!(B::DatePart, [TX, TZ], Ret(T::Float8)),
            sig!(B::DatePart, [TX, IV], Ret(T::Float8)),
            sig!(B::DatePart, [TX, P::Is(T::Date)], Ret(T::Float8)),
            sig!(B::DatePart, [TX, P::Is(T::Time)], Ret(T::Float8)),
        ],
        "age" => &[
            sig!(B::Age, [TS, TS], Ret(T::Interval)),
            sig!(B::Age, [TZ, TZ], Ret(T::Interval)),
            sig!(B::Age, [TS], Ret(T::Interval)),
            sig!(B::Age, [TZ], Ret(T::Interval)),
        ],
        "make_date" => &[sig!(B::MakeDate, [I4, I4, I4], Ret(T::Date))],
        "make_time" => &[sig!(B::MakeTime, [I4, I4, F8], Ret(T::Time))],
        "make_timestamp" => &[sig!(
            B::MakeTimestamp,
            [I4, I4, I4, I4, I4, F8],
            Ret(T::Timestamp)
        )],
        "to_timestamp" => &[sig!(B::ToTimestamp, [F8], Ret(T::TimestampTz))],
        "gen_random_uuid" | "uuid_generate_v4" => &[sig!(B::GenRandomUuid, [], Ret(T::Uuid))],
        "array_length" => &[sig!(B::ArrayLength, [P::AnyArray, I4], Ret(T::Int4))],
        "cardinality" => &[sig!(B::Cardinality, [P::AnyArray], Ret(T::Int4))],
        "array_append" => &[sig!(B::ArrayAppend, [P::AnyArray, P::Elem], R::Array)],
        "array_cat" => &[sig!(B::ArrayCat, [P::AnyArray, P::AnyArray], R::Array)],
        "array_upper" => &[sig!(B::ArrayUpper, [P::AnyArray, I4], Ret(T::Int4))],
        "to_char" => &[
            sig!(B::ToChar, [TS, TX], Ret(T::Text)),
            sig!(B::ToChar, [TZ, TX], Ret(T::Text)),
        ],
        "regexp_replace" => &[
            sig!(B::RegexpReplace, [TX, TX, TX], Ret(T::Text)),
            sig!(B::RegexpReplace, [TX, TX, TX, TX], Ret(T::Text)),
        ],
        "regexp_match" => &[
            sig!(B::RegexpMatch, [TX, TX], Ret(T::Array(&T::Text))),
            sig!(B::RegexpMatch, [TX, TX, TX], Ret(T::Array(&T::Text))),
        ],
        "string_to_array" => &[
            sig!(B::StringToArray, [TX, TX], Ret(T::Array(&T::Text))),
            sig!(B::StringToArray, [TX, TX, TX], Ret(T::Array(&T::Text))),
        ],
        "array_to_string" => &[
            sig!(B::ArrayToString, [P::AnyArray, TX], Ret(T::Text)),
            sig!(B::ArrayToString, [P::AnyArray, TX, TX], Ret(T::Text)),
        ],
        "array_position" => &[sig!(B::ArrayPosition, [P::AnyArray, P::Elem], Ret(T::Int4))],
        "array_lower" => &[sig!(B::ArrayLower, [P::AnyArray, I4], Ret(T::Int4))],
        _ => &[],
    }
}

/// Bounds a compiled regular expression (as `~` does).
const REGEX_BYTES_MAX: usize = 1 << 20;

/// Whether a value of `from` reaches `to` by an implicit cast.
fn implicit(from: T, to: T) -> bool {
    from == to
        || from == T::Unknown
        || matches!((from.numeric_rank(), to.numeric_rank()), (Some(a), Some(b)) if a <= b)
        || (from.is_string() && to == T::Text)
        || matches!(
            (from, to),
            (T::Date, T::Timestamp | T::TimestampTz) | (T::Timestamp, T::TimestampTz)
        )
}

/// Binds a call of a built-in function; None when `name` is not one of them.
pub(crate) fn bind(
    binder: &Binder,
    name: &str,
    args: &[Bound],
    pos: Option<usize>,
) -> Result<Option<Bound>, SqlError> {
    match name {
        "concat" => return bind_concat(binder, B::Concat, args, pos).map(Some),
        "concat_ws" if !args.is_empty() => {
            return bind_concat(binder, B::ConcatWs, args, pos).map(Some)
        }
        "format" if !args.is_empty() => {
            let fmt = binder.coerce(args[0].clone(), T::Text, TYPMOD_NONE)?;
            let mut bound = vec![fmt];
            bound.extend(args[1..].iter().cloned());
            return Ok(Some(builtin(B::Format, bound, T::Text, pos)));
        }
        "greatest" | "least" if !args.is_empty() => {
            let f = if name == "greatest" {
                B::Greatest
            } else {
                B::Least
            };
            let ty = common_type(args.iter().map(|a| (a.ty, a.pos)), &name.to_uppercase())?;
            let args = coerce_all(binder, args, ty)?;
            return Ok(Some(builtin(f, args, ty, pos)));
        }
        "array_prepend" if args.len() == 2 => {
            let arr = args[1].ty;
            let Some(elem) = arr.element() else {
                return Err(no_function(name, args, pos));
            };
            let args = vec![
                binder.coerce(args[0].clone(), elem, TYPMOD_NONE)?,
                args[1].clone(),
            ];
            return Ok(Some(builtin(B::ArrayPrepend, args, arr, pos)));
        }
        _ => {}
    }
    let sigs = signatures(name);
    if sigs.is_empty() {
        return Ok(None);
    }
    let array_ty = args.iter().map(|a| a.ty).find(|t| t.element().is_some());
    let param_type = |p: P| -> Option<T> {
        match p {
            P::Is(t) => Some(t),
            P::AnyArray => array_ty,
            P::Elem => array_ty.and_then(T::element),
        }
    };
    let mut best: Option<(&Sig, usize)> = None;
    for s in sigs.iter().filter(|s| s.params.len() == args.len()) {
        let types: Option<Vec<T>> = s.params.iter().map(|p| param_type(*p)).collect();
        let Some(types) = types else { continue };
        if !args.iter().zip(&types).all(|(a, t)| implicit(a.ty, *t)) {
            continue;
        }
        let exact = args.iter().zip(&types).filter(|(a, t)| a.ty == **t).count();
        if best.is_none_or(|(_, e)| exact > e) {
            best = Some((s, exact));
        }
    }
    // No signature fits: the caller's other function tables may still know the name.
    let Some((s, _)) = best else {
        return Ok(None);
    };
    let mut bound = Vec::with_capacity(args.len());
    for (a, p) in args.iter().zip(s.params) {
        let t = param_type(*p).expect("checked above");
        bound.push(binder.coerce(a.clone(), t, TYPMOD_NONE)?);
    }
    let ty = match s.result {
        R::Is(t) => t,
        R::Array => array_ty.expect("array signatures have an array argument"),
    };
    Ok(Some(builtin(s.func, bound, ty, pos)))
}

fn no_function(name: &str, args: &[Bound], pos: Option<usize>) -> SqlError {
    let types: Vec<&str> = args.iter().map(|a| a.ty.sql_name()).collect();
    SqlError::new(
        UNDEFINED_FUNCTION,
        format!("function {name}({}) does not exist", types.join(", ")),
    )
    .with_hint(&HINT_NO_FUNCTION)
    .at(pos)
}

pub(crate) fn builtin(f: Builtin, args: Vec<Bound>, ty: T, pos: Option<usize>) -> Bound {
    Bound {
        kind: Kind::Func(Func::Builtin(f), args),
        ty,
        typmod: TYPMOD_NONE,
        pos,
    }
}

fn coerce_all(binder: &Binder, args: &[Bound], ty: T) -> Result<Vec<Bound>, SqlError> {
    args.iter()
        .map(|a| binder.coerce(a.clone(), ty, TYPMOD_NONE))
        .collect()
}

/// concat and concat_ws take any types: arguments are turned into text.
fn bind_concat(
    binder: &Binder,
    f: Builtin,
    args: &[Bound],
    pos: Option<usize>,
) -> Result<Bound, SqlError> {
    // Values are written with their output functions (true is "t"), unknowns are text.
    let args = args
        .iter()
        .map(|a| {
            if a.ty == T::Unknown {
                binder.coerce(a.clone(), T::Text, TYPMOD_NONE)
            } else {
                Ok(a.clone())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(builtin(f, args, T::Text, pos))
}

/// ARRAY[…]: the elements' common type; an empty one needs a cast to say its type.
pub(crate) fn bind_array(
    binder: &Binder,
    elems: Vec<Bound>,
    pos: Option<usize>,
) -> Result<Bound, SqlError> {
    if elems.is_empty() {
        return Err(SqlError::new("42P18", "cannot determine type of empty array").at(pos));
    }
    let elem = common_type(elems.iter().map(|e| (e.ty, e.pos)), "ARRAY")?;
    let Some(array) = elem.array_of() else {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!("arrays of type {} are not supported yet", elem.sql_name()),
        )
        .at(pos));
    };
    let elems = coerce_all(binder, &elems, elem)?;
    Ok(builtin(B::ArrayConstruct, elems, array, pos))
}

/// Whether a call must run at each evaluation (never folded or shared).
pub(crate) fn is_volatile(f: Builtin) -> bool {
    matches!(f, B::Random | B::ClockTimestamp | B::GenRandomUuid)
}

/// Evaluates a built-in over its evaluated arguments.
pub(crate) fn eval(f: Builtin, v: &[Datum], args: &[Bound], cx: &Eval) -> Result<Datum, SqlError> {
    let style = &cx.env.style;
    // Functions that see NULL arguments.
    match f {
        B::Concat | B::ConcatWs => return Ok(concat(f, v, style)),
        B::Greatest | B::Least => return Ok(extreme(f, v)),
        B::ArrayConstruct => return Ok(Datum::Array(v.to_vec())),
        B::ArrayAppend | B::ArrayPrepend | B::ArrayCat => return array_edit(f, v),
        B::ArrayAny { op, all } => return Ok(array_any(op, all, v, args)),
        B::Format => return format(v, style),
        B::StringToArray if v.len() >= 2 && !v[0].is_null() => return Ok(string_to_array(v)),
        B::ArrayToString if v.len() >= 2 && !v[0].is_null() && !v[1].is_null() => {
            return Ok(array_to_string(v, style))
        }
        B::ArrayPosition => {
            return Ok(match &v[0] {
                Datum::Array(items) => items
                    .iter()
                    .position(|d| match (d, &v[1]) {
                        (Datum::Null, Datum::Null) => true,
                        (Datum::Null, _) | (_, Datum::Null) => false,
                        (a, b) => crate::expr::compare(a, b).is_eq(),
                    })
                    .map_or(Datum::Null, |i| Datum::Int(i as i64 + 1)),
                _ => Datum::Null,
            })
        }
        _ => {}
    }
    if v.contains(&Datum::Null) {
        return Ok(Datum::Null);
    }
    Ok(match (f, v) {
        (B::JsonbConcat, [Datum::Json(a), Datum::Json(b)]) => {
            Datum::Json(crate::json::concat(a, b))
        }
        (B::Substr, [Datum::Text(s), Datum::Int(start), rest @ ..]) => {
            let len = match rest {
                [Datum::Int(n)] if *n < 0 => {
                    return Err(SqlError::new(
                        "22011",
                        "negative substring length not allowed",
                    ))
                }
                [Datum::Int(n)] => Some(*n),
                _ => None,
            };
            Datum::Text(substr(s, *start, len))
        }
        (B::Strpos, [Datum::Text(s), Datum::Text(p)]) => Datum::Int(match s.find(p.as_str()) {
            Some(i) => s[..i].chars().count() as i64 + 1,
            None => 0,
        }),
        (B::Btrim | B::Ltrim | B::Rtrim, [Datum::Text(s), rest @ ..]) => {
            let set: Vec<char> = match rest {
                [Datum::Text(chars)] => chars.chars().collect(),
                _ => vec![' '],
            };
            let t = match f {
                B::Ltrim => s.trim_start_matches(set.as_slice()),
                B::Rtrim => s.trim_end_matches(set.as_slice()),
                _ => s.trim_matches(set.as_slice()),
            };
            Datum::Text(t.to_string())
        }
        (B::Replace, [Datum::Text(s), Datum::Text(from), Datum::Text(to)]) => {
            if from.is_empty() {
                Datum::Text(s.clone())
            } else {
                check_len(s.len() / from.len() * to.len() + s.len())?;
                Datum::Text(s.replace(from.as_str(), to))
            }
        }
        (B::Left | B::Right, [Datum::Text(s), Datum::Int(n)]) => {
            let count = s.chars().count() as i64;
            let keep = if *n >= 0 {
                (*n).min(count)
            } else {
                (count + n).max(0)
            };
            Datum::Text(if f == B::Left {
                s.chars().take(keep as usize).collect()
            } else {
                s.chars().skip((count - keep) as usize).collect()
            })
        }
        (B::Lpad | B::Rpad, [Datum::Text(s), Datum::Int(n), rest @ ..]) => {
            let fill: Vec<char> = match rest {
                [Datum::Text(f)] => f.chars().collect(),
                _ => vec![' '],
            };
            Datum::Text(pad(s, *n, &fill, f == B::Lpad)?)
        }
        (B::Repeat, [Datum::Text(s), Datum::Int(n)]) => {
            let n = (*n).max(0) as usize;
            check_len(s.len().saturating_mul(n))?;
            Datum::Text(s.repeat(n))
        }
        (B::Reverse, [Datum::Text(s)]) => Datum::Text(s.chars().rev().collect()),
        (B::SplitPart, [Datum::Text(s), Datum::Text(d), Datum::Int(n)]) => {
            if *n == 0 {
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    "field position must not be zero",
                ));
            }
            let parts: Vec<&str> = if d.is_empty() {
                vec![s.as_str()]
            } else {
                s.split(d.as_str()).collect()
            };
            let index = if *n > 0 {
                usize::try_from(*n - 1).ok()
            } else {
                usize::try_from(parts.len() as i64 + n).ok()
            };
            Datum::Text(index.and_then(|i| parts.get(i)).unwrap_or(&"").to_string())
        }
        (B::StartsWith, [Datum::Text(s), Datum::Text(p)]) => Datum::Bool(s.starts_with(p.as_str())),
        (B::Initcap, [Datum::Text(s)]) => Datum::Text(initcap(s)),
        (B::QuoteIdent, [Datum::Text(s)]) => Datum::Text(crate::quote_ident(s)),
        (B::Md5, [d]) => {
            use md5::Digest;
            let bytes: &[u8] = match d {
                Datum::Text(s) => s.as_bytes(),
                Datum::Bytes(b) => b,
                _ => unreachable!("md5 of {d:?}"),
            };
            let digest = md5::Md5::digest(bytes);
            Datum::Text(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        (B::Ascii, [Datum::Text(s)]) => Datum::Int(s.chars().next().map_or(0, |c| c as i64)),
        (B::Chr, [Datum::Int(n)]) => {
            let c = u32::try_from(*n)
                .ok()
                .filter(|n| *n != 0)
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    SqlError::new(
                        "54000",
                        format!("requested character too large for encoding: {n}"),
                    )
                })?;
            Datum::Text(c.to_string())
        }
        (B::OctetLength, [Datum::Text(s)]) => Datum::Int(s.len() as i64),
        (B::OctetLength, [Datum::Bytes(b)]) => Datum::Int(b.len() as i64),
        (B::ToHex, [Datum::Int(n)]) => Datum::Text(if args[0].ty == T::Int4 {
            format!("{:x}", *n as i32)
        } else {
            format!("{n:x}")
        }),
        (B::Translate, [Datum::Text(s), Datum::Text(from), Datum::Text(to)]) => {
            let from: Vec<char> = from.chars().collect();
            let to: Vec<char> = to.chars().collect();
            Datum::Text(
                s.chars()
                    .filter_map(|c| match from.iter().position(|x| *x == c) {
                        Some(i) => to.get(i).copied(),
                        None => Some(c),
                    })
                    .collect(),
            )
        }
        (B::Round | B::Trunc | B::Ceil | B::Floor, [Datum::Float(x)]) => Datum::Float(match f {
            B::Round => x.round_ties_even(),
            B::Trunc => x.trunc(),
            B::Ceil => x.ceil(),
            _ => x.floor(),
        }),
        (B::Round | B::Trunc | B::Ceil | B::Floor, [Datum::Numeric(n), rest @ ..]) => {
            let scale = match rest {
                [Datum::Int(s)] => (*s).clamp(-1000, 1000),
                _ => 0,
            };
            Datum::Numeric(round_numeric(f, n, scale))
        }
        (B::Sqrt, [Datum::Float(x)]) if *x < 0.0 => {
            return Err(SqlError::new(
                "2201F",
                "cannot take square root of a negative number",
            ))
        }
        (B::Ln | B::Log10, [Datum::Float(x)]) if *x <= 0.0 => {
            return Err(SqlError::new(
                "2201E",
                if *x == 0.0 {
                    "cannot take logarithm of zero"
                } else {
                    "cannot take logarithm of a negative number"
                },
            ))
        }
        (
            B::Sqrt | B::Cbrt | B::Exp | B::Ln | B::Log10 | B::Degrees | B::Radians,
            [Datum::Float(x)],
        )
        | (B::Sin | B::Cos | B::Tan | B::Atan, [Datum::Float(x)]) => {
            let r = match f {
                B::Sqrt => x.sqrt(),
                B::Cbrt => x.cbrt(),
                B::Exp => x.exp(),
                B::Ln => x.ln(),
                B::Log10 => x.log10(),
                B::Degrees => x.to_degrees(),
                B::Radians => x.to_radians(),
                B::Sin => x.sin(),
                B::Cos => x.cos(),
                B::Tan => x.tan(),
                _ => x.atan(),
            };
            if r.is_infinite() && x.is_finite() {
                return Err(SqlError::new(
                    NUMERIC_VALUE_OUT_OF_RANGE,
                    "value out of range: overflow",
                ));
            }
            Datum::Float(r)
        }
        (B::Power, [Datum::Float(x), Datum::Float(y)]) => {
            if *x == 0.0 && *y < 0.0 {
                return Err(SqlError::new(
                    "2201F",
                    "zero raised to a negative power is undefined",
                ));
            }
            if *x < 0.0 && y.fract() != 0.0 {
                return Err(SqlError::new(
                    "2201F",
                    "a negative number raised to a non-integer power yields a complex result",
                ));
            }
            Datum::Float(x.powf(*y))
        }
        (B::Atan2, [Datum::Float(y), Datum::Float(x)]) => Datum::Float(y.atan2(*x)),
        (B::Mod, [Datum::Int(_), Datum::Int(0)]) | (B::Div, [_, Datum::Numeric(_)])
            if is_zero(&v[1]) =>
        {
            return Err(SqlError::new(DIVISION_BY_ZERO, "division by zero"))
        }
        (B::Mod, [Datum::Int(x), Datum::Int(y)]) => Datum::Int(if *y == -1 { 0 } else { x % y }),
        (B::Mod, [Datum::Numeric(x), Datum::Numeric(y)]) => Datum::Numeric(numeric::rem(x, y)?),
        (B::Div, [Datum::Numeric(x), Datum::Numeric(y)]) => {
            let q = numeric::div(x, y)?;
            Datum::Numeric(round_numeric(B::Trunc, &q, 0))
        }
        (B::Sign, [Datum::Float(x)]) => Datum::Float(if *x > 0.0 {
            1.0
        } else if *x < 0.0 {
            -1.0
        } else {
            0.0
        }),
        (B::Sign, [Datum::Numeric(n)]) => Datum::Numeric(BigDecimal::from(match n.sign() {
            bigdecimal::num_bigint::Sign::Plus => 1,
            bigdecimal::num_bigint::Sign::Minus => -1,
            bigdecimal::num_bigint::Sign::NoSign => 0,
        })),
        (B::Pi, []) => Datum::Float(std::f64::consts::PI),
        (B::Random, []) => Datum::Float(random_unit()),
        (B::Now, []) => Datum::TimestampTz(style.now),
        (B::ClockTimestamp, []) => Datum::TimestampTz(dt::now_micros()),
        (B::CurrentDate, []) => Datum::Date(dt::date_of(dt::to_local(style.now, &style.zone))?),
        (B::LocalTimestamp, []) => Datum::Timestamp(dt::to_local(style.now, &style.zone)),
        (B::LocalTime, []) => Datum::Time(dt::time_of(dt::to_local(style.now, &style.zone))),
        (B::DateTrunc, [Datum::Text(field), value]) => {
            let field = field.to_ascii_lowercase();
            let unknown = || unit_not_recognized(&field, args[1].ty);
            match value {
                Datum::Timestamp(t) => {
                    Datum::Timestamp(dt::trunc_timestamp(&field, *t).ok_or_else(unknown)?)
                }
                Datum::TimestampTz(t) => Datum::TimestampTz(
                    dt::trunc_timestamptz(&field, *t, &style.zone).ok_or_else(unknown)?,
                ),
                Datum::Interval(iv) => {
                    Datum::Interval(dt::trunc_interval(&field, iv).ok_or_else(unknown)?)
                }
                other => unreachable!("date_trunc of {other:?}"),
            }
        }
        (B::DatePart | B::Extract, [Datum::Text(field), value]) => {
            let field = field.to_ascii_lowercase();
            let x = extract(&field, value, args[1].ty, style)?;
            if f == B::DatePart {
                Datum::Float(x)
            } else {
                Datum::Numeric(extract_numeric(&field, x, args[1].ty))
            }
        }
        (B::Age, [a, b]) => {
            let (x, y) = (local_of(a, style), local_of(b, style));
            Datum::Interval(dt::age(x, y)?)
        }
        (B::Age, [a]) => {
            let today = dt::date_to_timestamp(dt::date_of(dt::to_local(style.now, &style.zone))?)?;
            Datum::Interval(dt::age(today, local_of(a, style))?)
        }
        (B::MakeDate, [Datum::Int(y), Datum::Int(m), Datum::Int(d)]) => {
            Datum::Date(make_date(*y, *m, *d)?)
        }
        (B::MakeTime, [Datum::Int(h), Datum::Int(m), Datum::Float(s)]) => {
            Datum::Time(make_time(*h, *m, *s)?)
        }
        (
            B::MakeTimestamp,
            [Datum::Int(y), Datum::Int(mo), Datum::Int(d), Datum::Int(h), Datum::Int(mi), Datum::Float(s)],
        ) => {
            let days = i64::from(make_date(*y, *mo, *d)?);
            Datum::Timestamp(days * dt::MICROS_PER_DAY + make_time(*h, *mi, *s)?)
        }
        (B::ToTimestamp, [Datum::Float(secs)]) => {
            if secs.is_infinite() {
                Datum::TimestampTz(if *secs > 0.0 {
                    dt::TS_POS_INFINITY
                } else {
                    dt::TS_NEG_INFINITY
                })
            } else {
                let micros = (secs * 1e6).round();
                if !micros.is_finite() || micros.abs() > 9.2e18 {
                    return Err(SqlError::new(
                        DATETIME_FIELD_OVERFLOW,
                        "timestamp out of range",
                    ));
                }
                Datum::TimestampTz(micros as i64 - dt::UNIX_TO_PG_EPOCH_MICROS)
            }
        }
        (B::GenRandomUuid, []) => Datum::Uuid(*uuid::Uuid::new_v4().as_bytes()),
        (B::ArrayLength, [Datum::Array(items), Datum::Int(dim)]) => {
            if *dim == 1 && !items.is_empty() {
                Datum::Int(items.len() as i64)
            } else {
                Datum::Null
            }
        }
        (B::Cardinality, [Datum::Array(items)]) => Datum::Int(items.len() as i64),
        (B::ToChar, [value, Datum::Text(fmt)]) => {
            let input = match value {
                Datum::Timestamp(t) => dt::CharInput {
                    local: *t,
                    offset: None,
                    zone_name: None,
                },
                Datum::TimestampTz(t) => {
                    let abbreviation = dt::zone_abbreviation(*t, &style.zone);
                    return Ok(Datum::Text(dt::to_char(
                        &dt::CharInput {
                            local: dt::to_local(*t, &style.zone),
                            offset: Some(dt::offset_seconds(*t, &style.zone)),
                            zone_name: Some(&abbreviation),
                        },
                        fmt,
                    )));
                }
                other => unreachable!("to_char of {other:?}"),
            };
            if dt::is_infinite(input.local) {
                return Ok(Datum::Null);
            }
            Datum::Text(dt::to_char(&input, fmt))
        }
        (B::RegexpReplace, [Datum::Text(s), Datum::Text(p), Datum::Text(r), rest @ ..]) => {
            let flags = match rest {
                [Datum::Text(f)] => f.as_str(),
                _ => "",
            };
            let re = regex(p, flags)?;
            let replacement = pg_replacement(r);
            Datum::Text(if flags.contains('g') {
                re.replace_all(s, replacement.as_str()).into_owned()
            } else {
                re.replace(s, replacement.as_str()).into_owned()
            })
        }
        (B::RegexpMatch, [Datum::Text(s), Datum::Text(p), rest @ ..]) => {
            let flags = match rest {
                [Datum::Text(f)] => f.as_str(),
                _ => "",
            };
            let re = regex(p, flags)?;
            match re.captures(s) {
                None => Datum::Null,
                Some(c) if c.len() == 1 => Datum::Array(vec![Datum::Text(c[0].to_string())]),
                Some(c) => Datum::Array(
                    c.iter()
                        .skip(1)
                        .map(|m| m.map_or(Datum::Null, |m| Datum::Text(m.as_str().to_string())))
                        .collect(),
                ),
            }
        }
        (B::ArrayUpper | B::ArrayLower, [Datum::Array(items), Datum::Int(dim)]) => {
            if *dim != 1 || items.is_empty() {
                Datum::Null
            } else if f == B::ArrayUpper {
                Datum::Int(items.len() as i64)
            } else {
                Datum::Int(1)
            }
        }
        (B::Bitwise(op), [Datum::Int(a), rest @ ..]) => {
            let b = match rest {
                [Datum::Int(b)] => *b,
                _ => 0,
            };
            Datum::Int(bitwise(op, args[0].ty, *a, b))
        }
        (B::ArraySubscript, [Datum::Array(items), Datum::Int(i)]) => usize::try_from(*i)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| items.get(i))
            .cloned()
            .unwrap_or(Datum::Null),
        (f, v) => unreachable!("{f:?} bound with arguments {v:?}"),
    })
}

fn is_zero(d: &Datum) -> bool {
    match d {
        Datum::Int(v) => *v == 0,
        Datum::Numeric(n) => n == &BigDecimal::from(0),
        _ => false,
    }
}

fn check_len(bytes: usize) -> Result<(), SqlError> {
    if bytes > STRING_BYTES_MAX {
        return Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("a string result may be at most {STRING_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// `substr(s, start [, count])` with PostgreSQL's 1-based start that may lie before the
/// string (the count still runs from there).
fn substr(s: &str, start: i64, count: Option<i64>) -> String {
    let end = count.map(|n| start.saturating_add(n));
    let first = start.max(1);
    if let Some(e) = end {
        if e <= first {
            return String::new();
        }
    }
    let skip = (first - 1) as usize;
    match end {
        Some(e) => s.chars().skip(skip).take((e - first) as usize).collect(),
        None => s.chars().skip(skip).collect(),
    }
}

fn pad(s: &str, n: i64, fill: &[char], left: bool) -> Result<String, SqlError> {
    let n = n.max(0) as usize;
    check_len(n.saturating_mul(4))?;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= n || fill.is_empty() {
        return Ok(chars.into_iter().take(n).collect());
    }
    let padding: String = fill.iter().cycle().take(n - chars.len()).collect();
    Ok(if left {
        padding + s
    } else {
        s.to_string() + &padding
    })
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if at_word_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_word_start = false;
        } else {
            out.push(c);
            at_word_start = true;
        }
    }
    out
}

fn concat(f: Builtin, v: &[Datum], style: &crate::types::Style) -> Datum {
    let text = |d: &Datum| crate::types::output(d, style);
    if f == B::Concat {
        return Datum::Text(v.iter().filter_map(text).collect());
    }
    let Some(sep) = v.first().and_then(text) else {
        return Datum::Null;
    };
    let parts: Vec<String> = v[1..].iter().filter_map(text).collect();
    Datum::Text(parts.join(&sep))
}

/// greatest/least ignore NULLs; all NULL gives NULL.
fn extreme(f: Builtin, v: &[Datum]) -> Datum {
    let mut best: Option<&Datum> = None;
    for d in v.iter().filter(|d| !d.is_null()) {
        let better = match best {
            None => true,
            Some(b) => {
                let ord = crate::expr::compare(d, b);
                if f == B::Greatest {
                    ord.is_gt()
                } else {
                    ord.is_lt()
                }
            }
        };
        if better {
            best = Some(d);
        }
    }
    best.cloned().unwrap_or(Datum::Null)
}

fn array_edit(f: Builtin, v: &[Datum]) -> Result<Datum, SqlError> {
    let items = |d: &Datum| match d {
        Datum::Array(items) => Some(items.clone()),
        _ => None,
    };
    Ok(match (f, v) {
        (B::ArrayAppend, [a, e]) => {
            let mut out = items(a).unwrap_or_default();
            out.push(e.clone());
            Datum::Array(out)
        }
        (B::ArrayPrepend, [e, a]) => {
            let mut out = vec![e.clone()];
            out.extend(items(a).unwrap_or_default());
            Datum::Array(out)
        }
        (B::ArrayCat, [a, b]) => match (items(a), items(b)) {
            (None, None) => Datum::Null,
            (x, y) => {
                let mut out = x.unwrap_or_default();
                out.extend(y.unwrap_or_default());
                Datum::Array(out)
            }
        },
        (f, v) => unreachable!("{f:?} with {v:?}"),
    })
}

/// `x op ANY (array)` / `ALL`: three-valued over the elements.
fn array_any(op: crate::expr::Cmp, all: bool, v: &[Datum], _args: &[Bound]) -> Datum {
    let (x, Datum::Array(items)) = (&v[0], &v[1]) else {
        return Datum::Null;
    };
    if items.is_empty() {
        return Datum::Bool(all);
    }
    if x.is_null() {
        return Datum::Null;
    }
    let mut saw_null = false;
    for item in items {
        if item.is_null() {
            saw_null = true;
            continue;
        }
        let holds = crate::expr::cmp_result(op, crate::expr::compare(x, item));
        if holds != all {
            return Datum::Bool(holds);
        }
    }
    if saw_null {
        Datum::Null
    } else {
        Datum::Bool(all)
    }
}

fn round_numeric(f: Builtin, n: &BigDecimal, scale: i64) -> BigDecimal {
    use bigdecimal::RoundingMode as M;
    let mode = match f {
        B::Round => M::HalfUp,
        B::Trunc => M::Down,
        B::Ceil => M::Ceiling,
        _ => M::Floor,
    };
    let r = n.with_scale_round(scale, mode);
    numeric::normalize_scale(r)
}

fn random_unit() -> f64 {
    let bytes = uuid::Uuid::new_v4();
    let bits = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn unit_not_recognized(field: &str, ty: T) -> SqlError {
    SqlError::new(
        INVALID_PARAMETER_VALUE,
        format!("unit \"{field}\" not recognized for type {}", ty.sql_name()),
    )
}

fn local_of(d: &Datum, style: &crate::types::Style) -> i64 {
    match d {
        Datum::Timestamp(t) => *t,
        Datum::TimestampTz(t) => dt::to_local(*t, &style.zone),
        other => unreachable!("local time of {other:?}"),
    }
}

fn extract(
    field: &str,
    value: &Datum,
    ty: T,
    style: &crate::types::Style,
) -> Result<f64, SqlError> {
    let r = match value {
        Datum::Timestamp(t) => dt::extract_timestamp(field, *t, None),
        Datum::TimestampTz(t) => {
            let offset = dt::offset_seconds(*t, &style.zone);
            dt::extract_timestamp(field, dt::to_local(*t, &style.zone), Some((*t, offset)))
        }
        Datum::Date(d) => {
            let time_field = matches!(
                field,
                "hour"
                    | "minute"
                    | "second"
                    | "millisecond"
                    | "milliseconds"
                    | "microsecond"
                    | "microseconds"
                    | "hours"
                    | "minutes"
                    | "seconds"
            );
            if time_field {
                None
            } else {
                dt::extract_timestamp(field, dt::date_to_timestamp(*d)?, None)
            }
        }
        Datum::Time(t) => match field {
            "hour" | "minute" | "second" | "millisecond" | "milliseconds" | "microsecond"
            | "microseconds" | "hours" | "minutes" | "seconds" => {
                dt::extract_timestamp(field, *t, None)
            }
            "epoch" => Some(*t as f64 / 1e6),
            _ => None,
        },
        Datum::Interval(iv) => dt::extract_interval(field, iv),
        other => unreachable!("extract from {other:?}"),
    };
    r.ok_or_else(|| unit_not_recognized(field, ty))
}

/// EXTRACT's numeric result keeps the scale PostgreSQL shows: 6 digits for seconds and
/// epoch, 3 for milliseconds, none for whole-number fields.
fn extract_numeric(field: &str, x: f64, ty: T) -> BigDecimal {
    let scale = match field {
        "second" | "seconds" => 6,
        "millisecond" | "milliseconds" => 3,
        "epoch" | "julian" if ty != T::Date => 6,
        _ => 0,
    };
    let n = numeric::from_f64(x).unwrap_or_default();
    n.with_scale_round(scale, bigdecimal::RoundingMode::HalfEven)
}

fn make_date(y: i64, m: i64, d: i64) -> Result<i32, SqlError> {
    let bad = || {
        SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            format!("date field value out of range: {y}-{m:02}-{d:02}"),
        )
    };
    if y == 0 || !(1..=12).contains(&m) || d < 1 {
        return Err(bad());
    }
    // Negative years are BC: year -1 is 1 BC, proleptic year 0.
    let year = if y < 0 { y + 1 } else { y };
    if d > i64::from(dt::days_in_month(year, m as u32)) {
        return Err(bad());
    }
    i32::try_from(dt::pg_days(year, m as u32, d as u32)).map_err(|_| bad())
}

fn make_time(h: i64, m: i64, s: f64) -> Result<i64, SqlError> {
    let micros = (s * 1e6).round() as i64;
    let total = h * dt::MICROS_PER_HOUR + m * dt::MICROS_PER_MINUTE + micros;
    if !(0..=23).contains(&h)
        || !(0..=59).contains(&m)
        || !(0.0..=60.0).contains(&s)
        || total > dt::MICROS_PER_DAY
    {
        return Err(SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            format!("time field value out of range: {h}:{m:02}:{s:02}"),
        ));
    }
    Ok(total)
}

fn regex(pattern: &str, flags: &str) -> Result<regex::Regex, SqlError> {
    for f in flags.chars() {
        if !"gicnsx".contains(f) {
            return Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("invalid regular expression option: \"{f}\""),
            ));
        }
    }
    regex::RegexBuilder::new(pattern)
        .case_insensitive(flags.contains('i'))
        .size_limit(REGEX_BYTES_MAX)
        .build()
        .map_err(|e| SqlError::new("2201B", format!("invalid regular expression: {e}")))
}

/// PostgreSQL's replacement syntax (`\1`, `\&`) in the regex crate's (`${1}`, `${0}`).
fn pg_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d @ '1'..='9') => out.push_str(&format!("${{{d}}}")),
                Some('&') => out.push_str("${0}"),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// `string_to_array(s, delimiter [, null_string])`: a NULL delimiter splits into characters,
/// an empty one gives the whole string.
fn string_to_array(v: &[Datum]) -> Datum {
    let Datum::Text(s) = &v[0] else {
        return Datum::Null;
    };
    if s.is_empty() {
        return Datum::Array(Vec::new());
    }
    let null_string = match v.get(2) {
        Some(Datum::Text(n)) => Some(n.as_str()),
        _ => None,
    };
    let parts: Vec<String> = match &v[1] {
        Datum::Text(d) if d.is_empty() => vec![s.clone()],
        Datum::Text(d) => s.split(d.as_str()).map(str::to_string).collect(),
        _ => s.chars().map(|c| c.to_string()).collect(),
    };
    Datum::Array(
        parts
            .into_iter()
            .map(|p| {
                if Some(p.as_str()) == null_string {
                    Datum::Null
                } else {
                    Datum::Text(p)
                }
            })
            .collect(),
    )
}

/// `array_to_string(array, sep [, null_string])`: NULLs skipped unless a null_string is given.
fn array_to_string(v: &[Datum], style: &crate::types::Style) -> Datum {
    let (Datum::Array(items), Datum::Text(sep)) = (&v[0], &v[1]) else {
        return Datum::Null;
    };
    let null_string = match v.get(2) {
        Some(Datum::Text(n)) => Some(n.clone()),
        _ => None,
    };
    let parts: Vec<String> = items
        .iter()
        .filter_map(|d| crate::types::output(d, style).or_else(|| null_string.clone()))
        .collect();
    Datum::Text(parts.join(sep))
}

/// `format(fmt, args…)`: `%s` (NULL as empty), `%I` (identifier, quoted when needed), `%L`
/// (literal, NULL unquoted), `%%`.
fn format(v: &[Datum], style: &crate::types::Style) -> Result<Datum, SqlError> {
    let Datum::Text(fmt) = &v[0] else {
        return Ok(Datum::Null);
    };
    let mut args = v[1..].iter();
    let mut out = String::with_capacity(fmt.len());
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().ok_or_else(|| {
            SqlError::new(
                INVALID_PARAMETER_VALUE,
                "unterminated format() type specifier",
            )
        })?;
        if spec == '%' {
            out.push('%');
            continue;
        }
        let arg = args.next().ok_or_else(|| {
            SqlError::new(INVALID_PARAMETER_VALUE, "too few arguments for format()")
        })?;
        let text = crate::types::output(arg, style);
        match (spec, text) {
            ('s', t) => out.push_str(&t.unwrap_or_default()),
            ('I', None) => {
                return Err(SqlError::new(
                    NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            ('I', Some(t)) => out.push_str(&crate::quote_ident(&t)),
            ('L', None) => out.push_str("NULL"),
            ('L', Some(t)) => out.push_str(&format!("'{}'", t.replace('\'', "''"))),
            (other, _) => {
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!("unrecognized format() type specifier \"{other}\""),
                ))
            }
        }
    }
    Ok(Datum::Text(out))
}
