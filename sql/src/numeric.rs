//! PostgreSQL `numeric` on top of `bigdecimal`: exact values whose scale (digits after the
//! point) is the display scale PostgreSQL would keep. `+ -` keep the larger scale and `*` the
//! sum of scales, which is what `BigDecimal` does; `/` follows `select_div_scale` exactly.

use std::str::FromStr;

use bigdecimal::num_bigint::{BigInt, Sign};
use bigdecimal::{BigDecimal, RoundingMode, Zero};

use crate::error::*;

/// PostgreSQL's `NUMERIC_MAX_DISPLAY_SCALE`, `NUMERIC_MIN_SIG_DIGITS` and `NUMERIC_MAX_PRECISION`.
const DISPLAY_SCALE_MAX: i64 = 1000;
const SIG_DIGITS_MIN: i64 = 16;
const PRECISION_MAX: i64 = 1000;
/// Decimal digits per base-10000 digit of PostgreSQL's representation (`DEC_DIGITS`).
const DEC_DIGITS: i64 = 4;
/// Input longer than this is refused rather than parsed (bounds work per literal).
const INPUT_BYTES_MAX: usize = 4096;

/// `numeric_in` syntax: `[+-] digits [. digits] [e [+-] digits]` (also `.5` and `5.`).
pub(crate) fn parse(s: &str) -> Option<BigDecimal> {
    if s.len() > INPUT_BYTES_MAX {
        return None;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if let Some(e) = exp {
        let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e_digits.is_empty() || e_digits.len() > 4 || !all_digits(e_digits) {
            return None;
        }
    }
    BigDecimal::from_str(s).ok().map(normalize_scale)
}

/// A negative scale (as `1e3` parses to) becomes scale 0: PostgreSQL never shows an exponent.
pub(crate) fn normalize_scale(n: BigDecimal) -> BigDecimal {
    if n.fractional_digit_count() < 0 {
        n.with_scale(0)
    } else {
        n
    }
}

pub(crate) fn to_text(n: &BigDecimal) -> String {
    let n = normalize_scale(n.clone());
    let s = n.to_plain_string();
    // No negative zero in numeric.
    if n.is_zero() {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// The message of a value that does not fit a numeric(p,s) (or numeric's own range).
pub(crate) const FIELD_OVERFLOW: &str = "numeric field overflow";

fn overflow() -> SqlError {
    SqlError::new(NUMERIC_VALUE_OUT_OF_RANGE, FIELD_OVERFLOW)
}

/// Rounds (half away from zero) to numeric(p,s)'s scale and checks its precision.
pub(crate) fn apply_typmod(n: BigDecimal, typmod: i32) -> Result<BigDecimal, SqlError> {
    if typmod < 4 {
        return Ok(n);
    }
    let precision = i64::from(((typmod - 4) >> 16) & 0xffff);
    let scale = i64::from((typmod - 4) & 0xffff);
    let rounded = n.with_scale_round(scale, RoundingMode::HalfUp);
    let (unscaled, _) = rounded.as_bigint_and_exponent();
    if !unscaled.is_zero() && digit_count(&unscaled) > precision {
        let limit = match precision - scale {
            0 => "1".to_string(),
            digits => format!("10^{digits}"),
        };
        return Err(overflow().with_detail(format!(
            "A field with precision {precision}, scale {scale} must round to an absolute value less than {limit}."
        )));
    }
    Ok(rounded)
}

/// The typmod `numeric(precision, scale)` stores.
pub(crate) fn typmod(precision: u64, scale: i64) -> Result<i32, SqlError> {
    if precision < 1 || precision as i64 > PRECISION_MAX {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("NUMERIC precision {precision} must be between 1 and {PRECISION_MAX}"),
        ));
    }
    if scale < 0 || scale as u64 > precision {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        ));
    }
    Ok((((precision as i32) << 16) | scale as i32) + 4)
}

fn digit_count(v: &BigInt) -> i64 {
    v.magnitude().to_string().len() as i64
}

/// Numeric → integer cast: round half away from zero; `None` when outside i64.
pub(crate) fn round_to_i64(n: &BigDecimal) -> Option<i64> {
    let r = n.with_scale_round(0, RoundingMode::HalfUp);
    let (v, _) = r.as_bigint_and_exponent();
    i64::try_from(v).ok()
}

/// `float8_numeric`: the value printed with 15 significant digits (`DBL_DIG`), then parsed.
pub(crate) fn from_f64(f: f64) -> Result<BigDecimal, SqlError> {
    if !f.is_finite() {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "numeric NaN and Infinity are not supported yet",
        ));
    }
    let n = BigDecimal::from_str(&format!("{f:.14e}")).map_err(|_| overflow())?;
    Ok(normalize_scale(n.normalized()))
}

fn pow10(e: i64) -> BigInt {
    BigInt::from(10u8).pow(e as u32)
}

/// `n / d` for integers, rounded half away from zero (`round`) or truncated toward zero.
fn div_int(n: &BigInt, d: &BigInt, round: bool) -> BigInt {
    let q = n / d;
    let r = n - &q * d;
    if round && !r.is_zero() && (r.magnitude() * 2u8) >= *d.magnitude() {
        let away = if (n.sign() == Sign::Minus) == (d.sign() == Sign::Minus) {
            1
        } else {
            -1
        };
        q + away
    } else {
        q
    }
}

/// a / b at `scale` digits, computed exactly on the unscaled integers.
fn div_at_scale(a: &BigDecimal, b: &BigDecimal, scale: i64, round: bool) -> BigDecimal {
    let (ua, sa) = a.as_bigint_and_exponent();
    let (ub, sb) = b.as_bigint_and_exponent();
    // a/b * 10^scale = ua * 10^(sb + scale - sa) / ub
    let shift = sb + scale - sa;
    let (n, d) = if shift >= 0 {
        (ua * pow10(shift), ub)
    } else {
        (ua, ub * pow10(-shift))
    };
    BigDecimal::new(div_int(&n, &d, round), scale)
}

/// Weight and first digit of |n| in PostgreSQL's base-10000 representation (n ≠ 0).
fn base10000_head(n: &BigDecimal) -> (i64, u32) {
    let (u, scale) = n.as_bigint_and_exponent();
    let u = u.magnitude().clone();
    // 10^p <= |n| < 10^(p+1)
    let p = u.to_string().len() as i64 - 1 - scale;
    let weight = p.div_euclid(DEC_DIGITS);
    let shift = scale + weight * DEC_DIGITS; // |n| / 10000^weight = u / 10^shift
    let head = if shift >= 0 {
        u / pow10(shift).magnitude()
    } else {
        u * pow10(-shift).magnitude()
    };
    let digit = u32::try_from(&head).unwrap_or(0);
    assert!(digit > 0 && digit < 10_000, "base-10000 head digit {digit}");
    (weight, digit)
}

/// PostgreSQL's `select_div_scale`: enough digits for 16 significant ones, at least as many
/// as either input shows, at most 1000.
fn div_scale(a: &BigDecimal, b: &BigDecimal) -> i64 {
    let (w1, d1) = if a.is_zero() {
        (0, 0)
    } else {
        base10000_head(a)
    };
    let (w2, d2) = if b.is_zero() {
        (0, 0)
    } else {
        base10000_head(b)
    };
    let mut qweight = w1 - w2;
    if d1 <= d2 {
        qweight -= 1;
    }
    let rscale = SIG_DIGITS_MIN - qweight * DEC_DIGITS;
    rscale
        .max(a.fractional_digit_count())
        .max(b.fractional_digit_count())
        .clamp(0, DISPLAY_SCALE_MAX)
}

fn division_by_zero() -> SqlError {
    SqlError::new(DIVISION_BY_ZERO, "division by zero")
}

pub(crate) fn div(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, SqlError> {
    if b.is_zero() {
        return Err(division_by_zero());
    }
    Ok(div_at_scale(a, b, div_scale(a, b), true))
}

/// `numeric_mod`: a - b * trunc(a / b), at the larger of the two scales.
pub(crate) fn rem(a: &BigDecimal, b: &BigDecimal) -> Result<BigDecimal, SqlError> {
    if b.is_zero() {
        return Err(division_by_zero());
    }
    let q = div_at_scale(a, b, 0, false);
    Ok(a - b * q)
}
