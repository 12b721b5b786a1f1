//! C's `strtod` as glibc converts text, for the Redis commands that read numbers with it
//! (SORT's weights, sorted set scores and ranges): which texts convert, to what, and when
//! `errno` would be ERANGE, since Redis refuses some of those and not others.

/// What `strtod` gives for a whole text: the value, and whether `errno` would be ERANGE
/// (overflow to infinity, or a result below the normal range that is not exact).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Converted {
    pub value: f64,
    pub erange: bool,
}

impl Converted {
    fn exact(value: f64) -> Converted {
        Converted {
            value,
            erange: false,
        }
    }
}

/// glibc's `strtod` over all of `arg` read as a C string (up to its first NUL): leading C
/// white space and a sign, then a decimal, `0x` hexadecimal (with `.` and a `p` exponent),
/// `inf`/`infinity` or `nan` in any case. None where it converts nothing or leaves text over
/// (Redis refuses both); an empty text converts to 0 with nothing left over.
pub fn strtod(arg: &[u8]) -> Option<Converted> {
    // Redis hands strtod the value as a C string: it ends at the first NUL.
    let value = arg.split(|&c| c == 0).next().unwrap_or_default();
    if value.is_empty() {
        // strtod reads nothing, and nothing is left over: 0.
        return Some(Converted::exact(0.0));
    }
    // Only white space: strtod converts nothing and points back at the start.
    let blank = value
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .count();
    let text = &value[blank..];
    let (negative, unsigned) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = match unsigned {
        [b'0', b'x' | b'X', rest @ ..] => hexadecimal(rest)?,
        _ => decimal(unsigned)?,
    };
    Some(Converted {
        value: if negative {
            -magnitude.value
        } else {
            magnitude.value
        },
        erange: magnitude.erange,
    })
}

/// An unsigned decimal (or `inf`, `infinity`, `nan`) as glibc's `strtod` converts it, None
/// where it leaves text over.
fn decimal(text: &[u8]) -> Option<Converted> {
    // Rust's parser takes a sign, which the caller has taken already: a second is text over.
    if matches!(text.first(), Some(b'+' | b'-')) {
        return None;
    }
    let v: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    if v.is_nan() || v.is_infinite() {
        // "inf", "infinity" and "nan" convert; a finite literal too large is ERANGE.
        let literal = text[0].is_ascii_alphabetic();
        return Some(Converted {
            value: v,
            erange: !literal,
        });
    }
    let mantissa = text
        .split(|&c| c == b'e' || c == b'E')
        .next()
        .unwrap_or_default();
    let nonzero = mantissa.iter().any(|c| (b'1'..=b'9').contains(c));
    // A decimal below the smallest normal double is never exact in binary: ERANGE.
    Some(Converted {
        value: v,
        erange: v < f64::MIN_POSITIVE && nonzero,
    })
}

/// The hexadecimal float after `0x` (`1A`, `1.8p3`, `.8`) as glibc's `strtod` converts it:
/// rounded to nearest, even; None where text is left over.
fn hexadecimal(text: &[u8]) -> Option<Converted> {
    // Mantissa bits beyond 120 only decide rounding: they are kept as one sticky bit.
    const MANTISSA_BITS_KEPT: u32 = 120;
    let mut mantissa: u128 = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut seen_point = false;
    let mut at = 0;
    while let Some(&c) = text.get(at) {
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            digits += 1;
            if mantissa >> MANTISSA_BITS_KEPT == 0 {
                mantissa = (mantissa << 4) | u128::from(d);
                if seen_point {
                    exponent -= 4;
                }
            } else {
                sticky |= d != 0;
                if !seen_point {
                    exponent += 4;
                }
            }
        } else {
            break;
        }
        at += 1;
    }
    if digits == 0 {
        // "0x" alone: strtod converts the 0 and leaves the "x".
        return None;
    }
    if let Some(b'p' | b'P') = text.get(at) {
        let power = &text[at + 1..];
        let (sign, power_digits) = match power.first() {
            Some(b'-') => (-1, &power[1..]),
            Some(b'+') => (1, &power[1..]),
            _ => (1, power),
        };
        if power_digits.is_empty() || !power_digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let p: i64 = std::str::from_utf8(power_digits)
            .ok()?
            .parse()
            .unwrap_or(i64::MAX / 4);
        exponent = exponent.saturating_add(sign * p.min(i64::MAX / 4));
    } else if at != text.len() {
        return None;
    }
    if mantissa == 0 {
        return Some(Converted::exact(0.0));
    }
    Some(binary_to_f64(mantissa, exponent, sticky))
}

/// `mantissa` × 2^`exponent` (plus a nonzero tail below it where `sticky`), rounded to the
/// nearest double, ties to even; ERANGE on overflow (infinity) or an inexact result below the
/// normal range.
fn binary_to_f64(mantissa: u128, exponent: i64, sticky: bool) -> Converted {
    const SIGNIFICAND_BITS: i64 = 53;
    const EXPONENT_MAX: i64 = 1023;
    const SUBNORMAL_LOWEST_BIT: i64 = -1074;
    let top = exponent + 127 - i64::from(mantissa.leading_zeros());
    if top > EXPONENT_MAX {
        return Converted {
            value: f64::INFINITY,
            erange: true,
        };
    }
    // The lowest bit a double keeps at this magnitude.
    let lowest = (top - (SIGNIFICAND_BITS - 1)).max(SUBNORMAL_LOWEST_BIT);
    let drop = lowest - exponent;
    let (kept, inexact) = if drop <= 0 {
        (mantissa, sticky)
    } else if drop >= 128 {
        (0, true)
    } else {
        let kept = mantissa >> drop;
        let rest = mantissa & ((1u128 << drop) - 1);
        let half = 1u128 << (drop - 1);
        let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
        (kept + u128::from(round_up), rest != 0 || sticky)
    };
    let scale = if drop <= 0 { exponent } else { lowest };
    // kept < 2^54: exact as a double; scaling in two steps keeps each factor finite.
    let v = (kept as f64) * 2f64.powi((scale / 2) as i32) * 2f64.powi((scale - scale / 2) as i32);
    Converted {
        value: v,
        erange: v.is_infinite() || (v < f64::MIN_POSITIVE && inexact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value is kept where ERANGE is set, as glibc returns it (ZRANGEBYSCORE's ranges use
    /// it without looking at `errno`).
    #[test]
    fn erange_keeps_the_value() {
        let huge = strtod(b"1e309").expect("converts");
        assert_eq!((huge.value, huge.erange), (f64::INFINITY, true));
        let tiny = strtod(b"-1e-400").expect("converts");
        assert_eq!((tiny.value, tiny.erange), (-0.0, true));
        let big_hex = strtod(b"0x1p1024").expect("converts");
        assert_eq!((big_hex.value, big_hex.erange), (f64::INFINITY, true));
        assert!(strtod(b"nan").is_some_and(|c| c.value.is_nan() && !c.erange));
        assert_eq!(strtod(b"-inf"), Some(Converted::exact(f64::NEG_INFINITY)));
        // More hexadecimal digits than a u64 holds still convert, rounded.
        assert_eq!(
            strtod(b"0x123456789abcdef123").map(|c| c.value),
            Some(0x12_3456_789a_bcde_f123_u128 as f64)
        );
    }
}
