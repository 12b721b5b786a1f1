//! PostgreSQL's date/time types: `date`, `time`, `timestamp`, `timestamptz` and `interval`,
//! their input syntax (ISO 8601 and PostgreSQL's own spellings), their output in the ISO
//! DateStyle and the `postgres` IntervalStyle, and their arithmetic.
//!
//! Representation, as in PostgreSQL (so the binary wire format is a plain copy):
//! - `date`: days since 2000-01-01, i32; `i32::MIN`/`i32::MAX` are -infinity/infinity.
//! - `time`: microseconds since midnight, `0..=MICROS_PER_DAY`.
//! - `timestamp`: microseconds since 2000-01-01 00:00:00 (local, no zone); `timestamptz`:
//!   the same count for the UTC instant. `i64::MIN`/`i64::MAX` are -infinity/infinity.
//! - `interval`: months, days and microseconds, kept apart (a month is not 30 days, a day is
//!   not 24 hours across a DST change); compared by PostgreSQL's 30-day-month normal form.
//!
//! Calendar arithmetic is proleptic Gregorian over the whole range, done here (Howard
//! Hinnant's day-number algorithms); only the time-zone database comes from `jiff`.

use crate::error::*;

pub(crate) const MICROS_PER_SECOND: i64 = 1_000_000;
pub(crate) const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub(crate) const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub(crate) const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// Days from 1970-01-01 (the Unix epoch) to 2000-01-01 (PostgreSQL's epoch).
pub(crate) const UNIX_TO_PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from the Unix epoch to PostgreSQL's.
pub(crate) const UNIX_TO_PG_EPOCH_MICROS: i64 = UNIX_TO_PG_EPOCH_DAYS * MICROS_PER_DAY;
/// PostgreSQL's range: 4713-11-24 BC (Julian day 0) up to year 294276 for timestamps and
/// 5874897 for dates. Days relative to 2000-01-01.
const DATE_DAYS_MIN: i64 = -2_451_545;
/// The last date PostgreSQL has: 5874897-12-31 (its DATE_END_JULIAN is exclusive).
const DATE_DAYS_MAX: i64 = 2_147_483_494 - 2_451_545 - 1;
/// The last day a timestamp may fall on: 294276-12-31 (TIMESTAMP_END_JULIAN, exclusive).
const TIMESTAMP_DAYS_MAX: i64 = 109_203_528 - 2_451_545 - 1;
pub(crate) const DATE_NEG_INFINITY: i32 = i32::MIN;
pub(crate) const DATE_POS_INFINITY: i32 = i32::MAX;
pub(crate) const TS_NEG_INFINITY: i64 = i64::MIN;
pub(crate) const TS_POS_INFINITY: i64 = i64::MAX;
/// Input longer than this is not a date/time (bounds parsing work).
const INPUT_BYTES_MAX: usize = 256;

/// An interval: months, days and microseconds, each with its own sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Interval {
    pub(crate) months: i32,
    pub(crate) days: i32,
    pub(crate) micros: i64,
}

impl Interval {
    /// The 128-bit span PostgreSQL compares and hashes by (30-day months, 24-hour days).
    pub(crate) fn span(&self) -> i128 {
        (i128::from(self.months) * 30 + i128::from(self.days)) * i128::from(MICROS_PER_DAY)
            + i128::from(self.micros)
    }
}

/// A session's time zone: a name from the tz database, or a fixed offset.
#[derive(Clone, Debug)]
pub(crate) struct Zone(jiff::tz::TimeZone);

impl Default for Zone {
    fn default() -> Zone {
        Zone(jiff::tz::TimeZone::UTC)
    }
}

impl Zone {
    /// A `TimeZone` setting: a tz database name (any case), a UTC spelling, or a number of
    /// hours east of Greenwich as `SET TIME ZONE -5` gives.
    pub(crate) fn parse(name: &str) -> Option<Zone> {
        let n = name.trim();
        if let Ok(hours) = n.parse::<f64>() {
            if hours.abs() > 15.0 || !hours.is_finite() {
                return None;
            }
            let seconds = (hours * 3600.0).round() as i32;
            return jiff::tz::Offset::from_seconds(seconds)
                .ok()
                .map(|o| Zone(jiff::tz::TimeZone::fixed(o)));
        }
        match n.to_ascii_uppercase().as_str() {
            "UTC" | "GMT" | "Z" | "ZULU" | "UCT" | "UNIVERSAL" | "ETC/UTC" | "ETC/GMT" => {
                return Some(Zone::default())
            }
            _ => {}
        }
        if let Some(seconds) = parse_offset(n) {
            return jiff::tz::Offset::from_seconds(seconds)
                .ok()
                .map(|o| Zone(jiff::tz::TimeZone::fixed(o)));
        }
        jiff::tz::TimeZone::get(n).ok().map(Zone)
    }

    /// Seconds east of UTC at the UTC instant `ts` (microseconds since 2000-01-01).
    fn offset_at_utc(&self, ts: i64) -> i32 {
        let unix_seconds =
            ts.div_euclid(MICROS_PER_SECOND) + UNIX_TO_PG_EPOCH_MICROS / MICROS_PER_SECOND;
        match jiff::Timestamp::from_second(unix_seconds) {
            Ok(t) => self.0.to_offset(t).seconds(),
            // Beyond jiff's range (±9999 years): the zone's offset at its nearest edge.
            Err(_) => {
                let edge = if unix_seconds < 0 {
                    jiff::Timestamp::MIN
                } else {
                    jiff::Timestamp::MAX
                };
                self.0.to_offset(edge).seconds()
            }
        }
    }

    /// The offset that applies to the local time `local` (microseconds since 2000-01-01, no
    /// zone): for a time skipped or repeated by a DST change, the offset before the change,
    /// as PostgreSQL picks.
    fn offset_for_local(&self, local: i64) -> i32 {
        let days = local.div_euclid(MICROS_PER_DAY);
        let time = local.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = pg_civil(days);
        let civil = i16::try_from(y).ok().and_then(|y| {
            jiff::civil::DateTime::new(
                y,
                m as i8,
                d as i8,
                (time / MICROS_PER_HOUR) as i8,
                (time % MICROS_PER_HOUR / MICROS_PER_MINUTE) as i8,
                (time % MICROS_PER_MINUTE / MICROS_PER_SECOND) as i8,
                0,
            )
            .ok()
        });
        let Some(civil) = civil else {
            return self.offset_at_utc(local);
        };
        match self.0.to_ambiguous_timestamp(civil).later() {
            Ok(ts) => {
                let local_seconds = civil
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .map(|z| z.timestamp().as_second());
                match local_seconds {
                    Ok(l) => (l - ts.as_second()) as i32,
                    Err(_) => self.offset_at_utc(local),
                }
            }
            Err(_) => self.offset_at_utc(local),
        }
    }
}

/// `+05`, `-03:30`, `+0530`, `+05:30:15` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let parts: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else {
        match rest.len() {
            1 | 2 => vec![rest],
            4 => vec![&rest[..2], &rest[2..]],
            6 => vec![&rest[..2], &rest[2..4], &rest[4..]],
            _ => return None,
        }
    };
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let n: Vec<i32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, sec) = (n[0], *n.get(1).unwrap_or(&0), *n.get(2).unwrap_or(&0));
    if h > 15 || m > 59 || sec > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day number since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// PostgreSQL's day number (since 2000-01-01) of a date.
pub(crate) fn pg_days(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) - UNIX_TO_PG_EPOCH_DAYS
}

/// The (year, month, day) of a PostgreSQL day number.
pub(crate) fn pg_civil(days: i64) -> (i64, u32, u32) {
    civil_from_days(days + UNIX_TO_PG_EPOCH_DAYS)
}

fn bad(type_name: &str, s: &str) -> SqlError {
    SqlError::new(
        INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {type_name}: \"{s}\""),
    )
}

fn out_of_range(what: &str) -> SqlError {
    SqlError::new(DATETIME_FIELD_OVERFLOW, format!("{what} out of range"))
}

fn field_out_of_range(s: &str) -> SqlError {
    SqlError::new(
        DATETIME_FIELD_OVERFLOW,
        format!("date/time field value out of range: \"{s}\""),
    )
}

/// What a date/time literal says, before it is turned into one of the types.
#[derive(Debug, Default)]
struct Parsed {
    date: Option<(i64, u32, u32)>,
    /// Microseconds since midnight (24:00:00 allowed).
    time: Option<i64>,
    /// Seconds east of UTC, when the literal names a zone.
    offset: Option<ZoneSpec>,
    special: Option<Special>,
}

#[derive(Debug, Clone)]
enum ZoneSpec {
    Fixed(i32),
    Named(Zone),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Special {
    Epoch,
    Infinity,
    NegInfinity,
    Now,
    Today,
    Tomorrow,
    Yesterday,
    Allballs,
}

fn special(word: &str) -> Option<Special> {
    Some(match word {
        "epoch" => Special::Epoch,
        "infinity" | "+infinity" => Special::Infinity,
        "-infinity" => Special::NegInfinity,
        "now" => Special::Now,
        "today" => Special::Today,
        "tomorrow" => Special::Tomorrow,
        "yesterday" => Special::Yesterday,
        "allballs" => Special::Allballs,
        _ => return None,
    })
}

/// Splits a literal into its date, time, zone and era parts. `dmy` is the DateStyle order for
/// `1/2/2024` forms (false: MDY).
fn parse_parts(s: &str, type_name: &str, dmy: bool) -> Result<Parsed, SqlError> {
    if s.len() > INPUT_BYTES_MAX {
        return Err(bad(type_name, s));
    }
    let lower = s.trim().to_ascii_lowercase();
    let mut p = Parsed::default();
    if let Some(sp) = special(&lower) {
        p.special = Some(sp);
        return Ok(p);
    }
    let mut bc = false;
    // ISO 8601's 'T' between date and time.
    let normalized = match lower.find('t') {
        Some(i)
            if i > 0
                && lower.as_bytes()[i - 1].is_ascii_digit()
                && lower
                    .as_bytes()
                    .get(i + 1)
                    .is_some_and(|b| b.is_ascii_digit()) =>
        {
            format!("{} {}", &lower[..i], &lower[i + 1..])
        }
        _ => lower.clone(),
    };
    let mut tokens: Vec<&str> = normalized.split_whitespace().collect();
    if tokens.last() == Some(&"bc") {
        bc = true;
        tokens.pop();
    } else if tokens.last() == Some(&"ad") {
        tokens.pop();
    }
    for tok in tokens {
        if let Some(sp) = special(tok) {
            if p.special.is_some() {
                return Err(bad(type_name, s));
            }
            p.special = Some(sp);
            continue;
        }
        if p.date.is_none() && p.time.is_none() && looks_like_date(tok) {
            p.date = Some(parse_date_token(tok, dmy).ok_or_else(|| bad(type_name, s))?);
            continue;
        }
        if p.time.is_none() && tok.as_bytes()[0].is_ascii_digit() && tok.contains(':') {
            // A zone may follow the time directly: 12:00:00+02, 12:00z.
            let split = tok[1..]
                .find(['+', '-', 'z'])
                .map(|i| i + 1)
                .unwrap_or(tok.len());
            let (time, zone) = tok.split_at(split);
            p.time = Some(parse_time_token(time).ok_or_else(|| bad(type_name, s))?);
            if !zone.is_empty() {
                p.offset = Some(zone_token(zone).ok_or_else(|| bad(type_name, s))?);
            }
            continue;
        }
        if p.offset.is_none() && (p.time.is_some() || p.date.is_some()) {
            if let Some(z) = zone_token(tok) {
                p.offset = Some(z);
                continue;
            }
        }
        return Err(bad(type_name, s));
    }
    if bc {
        let Some((y, m, d)) = p.date else {
            return Err(bad(type_name, s));
        };
        if y <= 0 {
            return Err(bad(type_name, s));
        }
        p.date = Some((1 - y, m, d));
    }
    if let Some((y, m, d)) = p.date {
        if m == 0 || m > 12 || d == 0 || d > days_in_month(y, m) {
            return Err(field_out_of_range(s));
        }
    }
    Ok(p)
}

fn looks_like_date(tok: &str) -> bool {
    let b = tok.as_bytes();
    b[0].is_ascii_digit()
        && (tok.contains('-') || tok.contains('/') || tok.contains('.'))
        && !tok.contains(':')
        || (b.len() == 8 && b.iter().all(|c| c.is_ascii_digit()))
}

/// `2024-01-31`, `20240131`, `1/31/2024` (MDY) or `31/1/2024` (DMY), `2024/01/31`, `2024.01.31`.
fn parse_date_token(tok: &str, dmy: bool) -> Option<(i64, u32, u32)> {
    if tok.len() == 8 && tok.bytes().all(|b| b.is_ascii_digit()) {
        return Some((
            tok[..4].parse().ok()?,
            tok[4..6].parse().ok()?,
            tok[6..].parse().ok()?,
        ));
    }
    let parts: Vec<&str> = tok.split(['-', '/', '.']).collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 9) {
        return None;
    }
    if !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let n: Vec<i64> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, d) = if parts[0].len() >= 3 {
        (n[0], n[1], n[2])
    } else if dmy {
        (n[2], n[1], n[0])
    } else {
        (n[2], n[0], n[1])
    };
    // Two-digit years: 70–99 → 19xx, else 20xx (PostgreSQL's rule).
    let y = if parts[0].len() < 3 && parts[2].len() <= 2 {
        if y >= 70 {
            1900 + y
        } else {
            2000 + y
        }
    } else {
        y
    };
    Some((y, u32::try_from(m).ok()?, u32::try_from(d).ok()?))
}

/// `HH:MM`, `HH:MM:SS`, `HH:MM:SS.ffffff` → microseconds since midnight (rounded to µs).
fn parse_time_token(tok: &str) -> Option<i64> {
    let parts: Vec<&str> = tok.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let int = |p: &str| -> Option<i64> {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let h = int(parts[0])?;
    let m = int(parts[1])?;
    let micros = match parts.get(2) {
        None => 0,
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let s = int(whole)?;
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s * MICROS_PER_SECOND + frac_micros(frac)?
        }
    };
    if m > 59 || micros > 60 * MICROS_PER_SECOND {
        return None;
    }
    let total = h * MICROS_PER_HOUR + m * MICROS_PER_MINUTE + micros;
    (total <= MICROS_PER_DAY).then_some(total)
}

/// Fraction digits → microseconds, rounded half up at the 7th digit.
fn frac_micros(frac: &str) -> Option<i64> {
    if frac.is_empty() {
        return Some(0);
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(7).collect();
    let v: i64 = digits.parse().ok()?;
    Some((v + 5) / 10)
}

fn zone_token(tok: &str) -> Option<ZoneSpec> {
    if tok == "z" || tok == "utc" || tok == "gmt" {
        return Some(ZoneSpec::Fixed(0));
    }
    if let Some(seconds) = parse_offset(tok) {
        return Some(ZoneSpec::Fixed(seconds));
    }
    if tok.as_bytes()[0].is_ascii_alphabetic() {
        return jiff::tz::TimeZone::get(tok)
            .ok()
            .map(|z| ZoneSpec::Named(Zone(z)));
    }
    None
}

/// What "now" means to an input function: the statement's timestamp and zone.
pub(crate) struct Clock<'a> {
    /// The transaction's start (`now()`), µs since 2000-01-01 UTC.
    pub(crate) now: i64,
    pub(crate) zone: &'a Zone,
    /// DateStyle's field order is DMY.
    pub(crate) dmy: bool,
}

impl Clock<'_> {
    fn today_local(&self) -> i64 {
        utc_to_local(self.now, self.zone).div_euclid(MICROS_PER_DAY)
    }
}

fn utc_to_local(ts: i64, zone: &Zone) -> i64 {
    ts + i64::from(zone.offset_at_utc(ts)) * MICROS_PER_SECOND
}

fn local_to_utc(local: i64, zone: &Zone) -> i64 {
    local - i64::from(zone.offset_for_local(local)) * MICROS_PER_SECOND
}

fn check_date_days(days: i64, s: &str) -> Result<i32, SqlError> {
    if !(DATE_DAYS_MIN..=DATE_DAYS_MAX).contains(&days) {
        return Err(SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            format!("date out of range: \"{s}\""),
        ));
    }
    Ok(days as i32)
}

/// `date_in`.
pub(crate) fn parse_date(s: &str, clock: &Clock) -> Result<i32, SqlError> {
    let p = parse_parts(s, "date", clock.dmy)?;
    if let Some(sp) = p.special {
        if p.date.is_some() || p.time.is_some() {
            return Err(bad("date", s));
        }
        return match sp {
            Special::Epoch => Ok(-(UNIX_TO_PG_EPOCH_DAYS as i32)),
            Special::Infinity => Ok(DATE_POS_INFINITY),
            Special::NegInfinity => Ok(DATE_NEG_INFINITY),
            Special::Now | Special::Today => check_date_days(clock.today_local(), s),
            Special::Tomorrow => check_date_days(clock.today_local() + 1, s),
            Special::Yesterday => check_date_days(clock.today_local() - 1, s),
            Special::Allballs => Err(bad("date", s)),
        };
    }
    let Some((y, m, d)) = p.date else {
        return Err(bad("date", s));
    };
    check_date_days(pg_days(y, m, d), s)
}

/// `time_in` (a zone in the literal is ignored, as PostgreSQL's `time` does).
pub(crate) fn parse_time(s: &str, clock: &Clock) -> Result<i64, SqlError> {
    let p = parse_parts(s, "time without time zone", clock.dmy)?;
    match p.special {
        Some(Special::Allballs) if p.time.is_none() => return Ok(0),
        Some(Special::Now) => {
            return Ok(utc_to_local(clock.now, clock.zone).rem_euclid(MICROS_PER_DAY))
        }
        Some(_) => return Err(bad("time without time zone", s)),
        None => {}
    }
    p.time.ok_or_else(|| bad("time without time zone", s))
}

/// `timestamp_in` (`with_zone` false) and `timestamptz_in` (true; the result is UTC).
pub(crate) fn parse_timestamp(s: &str, with_zone: bool, clock: &Clock) -> Result<i64, SqlError> {
    let type_name = if with_zone {
        "timestamp with time zone"
    } else {
        "timestamp without time zone"
    };
    let p = parse_parts(s, type_name, clock.dmy)?;
    let local = |days: i64| -> i64 { days * MICROS_PER_DAY };
    let value = match p.special {
        Some(Special::Infinity) => return Ok(TS_POS_INFINITY),
        Some(Special::NegInfinity) => return Ok(TS_NEG_INFINITY),
        Some(Special::Epoch) => {
            let v = -UNIX_TO_PG_EPOCH_MICROS;
            return Ok(v);
        }
        Some(Special::Now) => {
            return Ok(if with_zone {
                clock.now
            } else {
                utc_to_local(clock.now, clock.zone)
            })
        }
        Some(Special::Today | Special::Tomorrow | Special::Yesterday) => {
            let shift = match p.special {
                Some(Special::Tomorrow) => 1,
                Some(Special::Yesterday) => -1,
                _ => 0,
            };
            local(clock.today_local() + shift) + p.time.unwrap_or(0)
        }
        Some(Special::Allballs) => return Err(bad(type_name, s)),
        None => {
            let Some((y, m, d)) = p.date else {
                return Err(bad(type_name, s));
            };
            local(pg_days(y, m, d)) + p.time.unwrap_or(0)
        }
    };
    let days = value.div_euclid(MICROS_PER_DAY);
    if !(DATE_DAYS_MIN..=TIMESTAMP_DAYS_MAX).contains(&days) {
        return Err(SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            format!("timestamp out of range: \"{s}\""),
        ));
    }
    if !with_zone {
        return Ok(value);
    }
    Ok(match p.offset {
        Some(ZoneSpec::Fixed(seconds)) => value - i64::from(seconds) * MICROS_PER_SECOND,
        Some(ZoneSpec::Named(z)) => local_to_utc(value, &z),
        None => local_to_utc(value, clock.zone),
    })
}

/// The local timestamp of an instant in a zone (`timestamptz::timestamp`).
pub(crate) fn to_local(ts: i64, zone: &Zone) -> i64 {
    if is_infinite(ts) {
        return ts;
    }
    utc_to_local(ts, zone)
}

/// The instant of a local timestamp in a zone (`timestamp::timestamptz`).
pub(crate) fn from_local(ts: i64, zone: &Zone) -> i64 {
    if is_infinite(ts) {
        return ts;
    }
    local_to_utc(ts, zone)
}

pub(crate) fn is_infinite(ts: i64) -> bool {
    ts == TS_NEG_INFINITY || ts == TS_POS_INFINITY
}

fn push_year_month_day(out: &mut String, days: i64) -> bool {
    let (y, m, d) = pg_civil(days);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    out.push_str(&format!("{year:04}-{m:02}-{d:02}"));
    bc
}

fn push_time(out: &mut String, micros: i64) {
    let h = micros / MICROS_PER_HOUR;
    let m = micros % MICROS_PER_HOUR / MICROS_PER_MINUTE;
    let s = micros % MICROS_PER_MINUTE / MICROS_PER_SECOND;
    let frac = micros % MICROS_PER_SECOND;
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    push_fraction(out, frac);
}

fn push_fraction(out: &mut String, frac: i64) {
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// `date_out` (ISO).
pub(crate) fn format_date(days: i32) -> String {
    match days {
        DATE_POS_INFINITY => return "infinity".to_string(),
        DATE_NEG_INFINITY => return "-infinity".to_string(),
        _ => {}
    }
    let mut out = String::with_capacity(13);
    if push_year_month_day(&mut out, i64::from(days)) {
        out.push_str(" BC");
    }
    out
}

/// `time_out`.
pub(crate) fn format_time(micros: i64) -> String {
    let mut out = String::with_capacity(15);
    push_time(&mut out, micros);
    out
}

/// `timestamp_out` (`zone` None) and `timestamptz_out` (shown in `zone`, with its offset).
pub(crate) fn format_timestamp(ts: i64, zone: Option<&Zone>) -> String {
    match ts {
        TS_POS_INFINITY => return "infinity".to_string(),
        TS_NEG_INFINITY => return "-infinity".to_string(),
        _ => {}
    }
    let (local, offset) = match zone {
        Some(z) => {
            let off = z.offset_at_utc(ts);
            (ts + i64::from(off) * MICROS_PER_SECOND, Some(off))
        }
        None => (ts, None),
    };
    let mut out = String::with_capacity(32);
    let bc = push_year_month_day(&mut out, local.div_euclid(MICROS_PER_DAY));
    out.push(' ');
    push_time(&mut out, local.rem_euclid(MICROS_PER_DAY));
    if let Some(off) = offset {
        push_offset(&mut out, off);
    }
    if bc {
        out.push_str(" BC");
    }
    out
}

/// `+02`, `-03:30`, `+00:53:28`.
fn push_offset(out: &mut String, seconds: i32) {
    out.push(if seconds < 0 { '-' } else { '+' });
    let a = seconds.unsigned_abs();
    out.push_str(&format!("{:02}", a / 3600));
    if !a.is_multiple_of(3600) {
        out.push_str(&format!(":{:02}", a % 3600 / 60));
        if !a.is_multiple_of(60) {
            out.push_str(&format!(":{:02}", a % 60));
        }
    }
}

/// `interval_out` in the `postgres` IntervalStyle.
pub(crate) fn format_interval(iv: &Interval) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let years = iv.months / 12;
    let months = iv.months % 12;
    for (value, unit) in [
        (i64::from(years), "year"),
        (i64::from(months), "mon"),
        (i64::from(iv.days), "day"),
    ] {
        if value == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        is_before = value < 0;
        is_zero = false;
    }
    let t = iv.micros;
    if is_zero || t != 0 {
        let minus = t < 0;
        let a = t.unsigned_abs();
        let h = a / MICROS_PER_HOUR as u64;
        let m = a % MICROS_PER_HOUR as u64 / MICROS_PER_MINUTE as u64;
        let s = a % MICROS_PER_MINUTE as u64 / MICROS_PER_SECOND as u64;
        let frac = a % MICROS_PER_SECOND as u64;
        if !is_zero {
            out.push(' ');
        }
        out.push_str(if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        });
        out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
        push_fraction(&mut out, frac as i64);
    }
    out
}

/// The unit a word of an interval literal names, as (months, microseconds) per unit.
fn interval_unit(word: &str) -> Option<(f64, f64)> {
    let us = |v: i64| Some((0.0, v as f64));
    match word {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => us(1),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => us(1000),
        "second" | "seconds" | "s" | "sec" | "secs" => us(MICROS_PER_SECOND),
        "minute" | "minutes" | "m" | "min" | "mins" => us(MICROS_PER_MINUTE),
        "hour" | "hours" | "h" | "hr" | "hrs" => us(MICROS_PER_HOUR),
        // Days and weeks are kept as days (marked by a NaN months field below).
        "day" | "days" | "d" => Some((f64::NAN, 1.0)),
        "week" | "weeks" | "w" => Some((f64::NAN, 7.0)),
        "month" | "months" | "mon" | "mons" => Some((1.0, 0.0)),
        "year" | "years" | "y" | "yr" | "yrs" => Some((12.0, 0.0)),
        "decade" | "decades" | "dec" | "decs" => Some((120.0, 0.0)),
        "century" | "centuries" | "c" | "cent" => Some((1200.0, 0.0)),
        "millennium" | "millennia" | "mil" | "mils" => Some((12000.0, 0.0)),
        _ => None,
    }
}

/// Accumulates an interval literal's fields with PostgreSQL's spill-down of fractions: a
/// fractional month becomes 30-day days, a fractional day 24-hour time.
#[derive(Default)]
struct IntervalBuilder {
    months: i64,
    days: i64,
    micros: i128,
}

impl IntervalBuilder {
    fn add_months(&mut self, v: f64) {
        let whole = v.trunc();
        self.months += whole as i64;
        self.add_days((v - whole) * 30.0);
    }

    fn add_days(&mut self, v: f64) {
        let whole = v.trunc();
        self.days += whole as i64;
        self.micros += ((v - whole) * MICROS_PER_DAY as f64).round() as i128;
    }

    fn finish(self, s: &str) -> Result<Interval, SqlError> {
        let months = i32::try_from(self.months).map_err(|_| field_out_of_range(s))?;
        let days = i32::try_from(self.days).map_err(|_| field_out_of_range(s))?;
        let micros = i64::try_from(self.micros).map_err(|_| field_out_of_range(s))?;
        Ok(Interval {
            months,
            days,
            micros,
        })
    }
}

/// `interval_in`: `1 year 2 mons 3 days 04:05:06.5`, `3 hours`, `1.5 days`, `@ 1 day ago`,
/// `-1 day +02:00`, ISO 8601 `P1Y2M3DT4H5M6S`, or a bare number of seconds.
pub(crate) fn parse_interval(s: &str) -> Result<Interval, SqlError> {
    if s.len() > INPUT_BYTES_MAX {
        return Err(bad("interval", s));
    }
    let lower = s.trim().to_ascii_lowercase();
    if lower.starts_with('p') {
        return parse_iso_interval(&lower, s);
    }
    let mut b = IntervalBuilder::default();
    let mut tokens: Vec<String> = Vec::new();
    // "1day" and "1 day" alike: split digits from letters.
    for word in lower.split_whitespace() {
        let split = word
            .find(|c: char| c.is_ascii_alphabetic())
            .filter(|&i| i > 0 && !word.contains(':'));
        match split {
            Some(i) => {
                tokens.push(word[..i].to_string());
                tokens.push(word[i..].to_string());
            }
            None => tokens.push(word.to_string()),
        }
    }
    let mut ago = false;
    let mut i = 0;
    let mut any = false;
    while i < tokens.len() {
        let tok = tokens[i].as_str();
        i += 1;
        if tok == "@" {
            continue;
        }
        if tok == "ago" && i == tokens.len() {
            ago = true;
            continue;
        }
        if tok.contains(':') {
            let (neg, body) = match tok.as_bytes()[0] {
                b'-' => (true, &tok[1..]),
                b'+' => (false, &tok[1..]),
                _ => (false, tok),
            };
            let micros = parse_interval_time(body).ok_or_else(|| bad("interval", s))?;
            b.micros += if neg { -micros } else { micros } as i128;
            any = true;
            continue;
        }
        let value: f64 = match tok.parse() {
            Ok(v) if tok.bytes().any(|c| c.is_ascii_digit()) => v,
            _ => return Err(bad("interval", s)),
        };
        let unit = tokens.get(i).and_then(|u| interval_unit(u));
        match unit {
            Some((months, per)) => {
                i += 1;
                if months.is_nan() {
                    b.add_days(value * per);
                } else if months > 0.0 {
                    b.add_months(value * months);
                } else {
                    b.micros += (value * per).round() as i128;
                }
            }
            // A bare number is seconds.
            None => b.micros += (value * MICROS_PER_SECOND as f64).round() as i128,
        }
        any = true;
    }
    if !any {
        return Err(bad("interval", s));
    }
    let iv = b.finish(s)?;
    Ok(if ago { negate_interval(&iv)? } else { iv })
}

/// `H:MM[:SS[.f]]` in an interval (hours may exceed 24).
fn parse_interval_time(t: &str) -> Option<i64> {
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(parts[0]) || !digits(parts[1]) || parts[0].len() > 10 {
        return None;
    }
    let h: i64 = parts[0].parse().ok()?;
    let m: i64 = parts[1].parse().ok()?;
    let mut micros = h
        .checked_mul(MICROS_PER_HOUR)?
        .checked_add(m * MICROS_PER_MINUTE)?;
    if let Some(sec) = parts.get(2) {
        let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
        if !digits(whole) || !frac.bytes().all(|b| b.is_ascii_digit()) || whole.len() > 2 {
            return None;
        }
        micros += whole.parse::<i64>().ok()? * MICROS_PER_SECOND + frac_micros(frac)?;
    }
    Some(micros)
}

fn parse_iso_interval(lower: &str, s: &str) -> Result<Interval, SqlError> {
    let mut b = IntervalBuilder::default();
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in lower[1..].chars() {
        match c {
            't' if number.is_empty() => in_time = true,
            '0'..='9' | '.' | '-' | '+' => number.push(c),
            unit => {
                let v: f64 = number.parse().map_err(|_| bad("interval", s))?;
                number.clear();
                any = true;
                match (unit, in_time) {
                    ('y', false) => b.add_months(v * 12.0),
                    ('m', false) => b.add_months(v),
                    ('w', false) => b.add_days(v * 7.0),
                    ('d', false) => b.add_days(v),
                    ('h', true) => b.micros += (v * MICROS_PER_HOUR as f64).round() as i128,
                    ('m', true) => b.micros += (v * MICROS_PER_MINUTE as f64).round() as i128,
                    ('s', true) => b.micros += (v * MICROS_PER_SECOND as f64).round() as i128,
                    _ => return Err(bad("interval", s)),
                }
            }
        }
    }
    if !number.is_empty() || !any {
        return Err(bad("interval", s));
    }
    b.finish(s)
}

fn interval_overflow() -> SqlError {
    out_of_range("interval")
}

pub(crate) fn negate_interval(iv: &Interval) -> Result<Interval, SqlError> {
    Ok(Interval {
        months: iv.months.checked_neg().ok_or_else(interval_overflow)?,
        days: iv.days.checked_neg().ok_or_else(interval_overflow)?,
        micros: iv.micros.checked_neg().ok_or_else(interval_overflow)?,
    })
}

pub(crate) fn add_intervals(a: &Interval, b: &Interval, sign: i32) -> Result<Interval, SqlError> {
    let b = if sign < 0 { negate_interval(b)? } else { *b };
    Ok(Interval {
        months: a
            .months
            .checked_add(b.months)
            .ok_or_else(interval_overflow)?,
        days: a.days.checked_add(b.days).ok_or_else(interval_overflow)?,
        micros: a
            .micros
            .checked_add(b.micros)
            .ok_or_else(interval_overflow)?,
    })
}

/// `interval * float8` with PostgreSQL's spill-down of fractional months and days.
pub(crate) fn scale_interval(iv: &Interval, factor: f64) -> Result<Interval, SqlError> {
    if !factor.is_finite() {
        return Err(interval_overflow());
    }
    let months = f64::from(iv.months) * factor;
    let days = f64::from(iv.days) * factor;
    let whole_months = months.trunc();
    let month_days = (months - whole_months) * 30.0;
    let total_days = days + month_days;
    let whole_days = total_days.trunc();
    let micros = iv.micros as f64 * factor + (total_days - whole_days) * MICROS_PER_DAY as f64;
    let fits = |v: f64, lo: f64, hi: f64| v >= lo && v <= hi;
    if !fits(whole_months, i32::MIN as f64, i32::MAX as f64)
        || !fits(whole_days, i32::MIN as f64, i32::MAX as f64)
        || !fits(micros.round(), -9.2e18, 9.2e18)
    {
        return Err(interval_overflow());
    }
    Ok(Interval {
        months: whole_months as i32,
        days: whole_days as i32,
        micros: micros.round() as i64,
    })
}

/// `interval / float8` exactly as PostgreSQL 15's `interval_div` computes it (avg(interval)
/// divides its sum by the count so): whole months and days divided, the fractions spilled
/// down after rounding to microsecond precision of a day (`TSROUND`), so results differ
/// from `scale_interval(iv, 1.0 / divisor)` in the last digits.
pub(crate) fn divide_interval(iv: &Interval, divisor: f64) -> Result<Interval, SqlError> {
    assert!(divisor != 0.0, "an interval divided by zero");
    let ts_round = |v: f64| (v * 1e6).round_ties_even() / 1e6;
    let months = f64::from(iv.months) / divisor;
    let days = f64::from(iv.days) / divisor;
    if !months.is_finite() || !days.is_finite() {
        return Err(interval_overflow());
    }
    let (whole_months, mut whole_days) = (months.trunc(), days.trunc());
    let month_days = ts_round((months - whole_months) * 30.0);
    let seconds_per_day = (MICROS_PER_DAY / MICROS_PER_SECOND) as f64;
    let mut seconds =
        ts_round((days - whole_days + month_days - month_days.trunc()) * seconds_per_day);
    if seconds.abs() >= seconds_per_day {
        let spill = (seconds / seconds_per_day).trunc();
        whole_days += spill;
        seconds -= spill * seconds_per_day;
    }
    // C's `int += double`: the sum is truncated, not each part.
    let whole_days = (whole_days + month_days).trunc();
    let micros =
        (iv.micros as f64 / divisor + seconds * MICROS_PER_SECOND as f64).round_ties_even();
    let fits = |v: f64, lo: f64, hi: f64| v >= lo && v <= hi;
    if !fits(whole_months, i32::MIN as f64, i32::MAX as f64)
        || !fits(whole_days, i32::MIN as f64, i32::MAX as f64)
        || !fits(micros, -9.2e18, 9.2e18)
    {
        return Err(interval_overflow());
    }
    Ok(Interval {
        months: whole_months as i32,
        days: whole_days as i32,
        micros: micros as i64,
    })
}

fn timestamp_overflow() -> SqlError {
    out_of_range("timestamp")
}

/// A local timestamp plus an interval: months by calendar (clamping the day to the month's
/// end), then days, then time.
pub(crate) fn timestamp_plus_interval(ts: i64, iv: &Interval) -> Result<i64, SqlError> {
    if is_infinite(ts) {
        return Ok(ts);
    }
    let mut ts = ts;
    if iv.months != 0 {
        let days = ts.div_euclid(MICROS_PER_DAY);
        let time = ts.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = pg_civil(days);
        let total = y * 12 + i64::from(m - 1) + i64::from(iv.months);
        let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
        let nd = d.min(days_in_month(ny, nm));
        ts = pg_days(ny, nm, nd)
            .checked_mul(MICROS_PER_DAY)
            .and_then(|t| t.checked_add(time))
            .ok_or_else(timestamp_overflow)?;
    }
    let ts = ts
        .checked_add(i64::from(iv.days) * MICROS_PER_DAY)
        .and_then(|t| t.checked_add(iv.micros))
        .ok_or_else(timestamp_overflow)?;
    check_timestamp(ts)
}

/// An instant plus an interval in a zone: months and days move the local calendar time (so
/// `+ 1 day` across a DST change keeps the wall-clock time), microseconds move the instant.
pub(crate) fn timestamptz_plus_interval(
    ts: i64,
    iv: &Interval,
    zone: &Zone,
) -> Result<i64, SqlError> {
    if is_infinite(ts) {
        return Ok(ts);
    }
    let mut ts = ts;
    if iv.months != 0 || iv.days != 0 {
        let local = utc_to_local(ts, zone);
        let moved = timestamp_plus_interval(
            local,
            &Interval {
                months: iv.months,
                days: iv.days,
                micros: 0,
            },
        )?;
        ts = local_to_utc(moved, zone);
    }
    check_timestamp(ts.checked_add(iv.micros).ok_or_else(timestamp_overflow)?)
}

fn check_timestamp(ts: i64) -> Result<i64, SqlError> {
    let days = ts.div_euclid(MICROS_PER_DAY);
    if !(DATE_DAYS_MIN..=TIMESTAMP_DAYS_MAX).contains(&days) {
        return Err(timestamp_overflow());
    }
    Ok(ts)
}

/// `timestamp - timestamp`: days and time, normalized as `interval_justify_hours` does.
pub(crate) fn timestamp_diff(a: i64, b: i64) -> Result<Interval, SqlError> {
    if is_infinite(a) || is_infinite(b) {
        return Err(SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            "cannot subtract infinite timestamps",
        ));
    }
    let d = a.checked_sub(b).ok_or_else(interval_overflow)?;
    Ok(Interval {
        months: 0,
        days: (d / MICROS_PER_DAY) as i32,
        micros: d % MICROS_PER_DAY,
    })
}

/// `time + interval` (wraps around midnight, ignoring months and days).
pub(crate) fn time_plus_interval(t: i64, iv: &Interval) -> i64 {
    (t + iv.micros % MICROS_PER_DAY).rem_euclid(MICROS_PER_DAY)
}

/// A field of `extract`/`date_part` over a local timestamp.
pub(crate) fn extract_timestamp(field: &str, local: i64, utc: Option<(i64, i32)>) -> Option<f64> {
    let days = local.div_euclid(MICROS_PER_DAY);
    let time = local.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = pg_civil(days);
    let dow = (days + 6).rem_euclid(7); // 2000-01-01 was a Saturday (6)
    Some(match field {
        "microsecond" | "microseconds" => (time % MICROS_PER_MINUTE) as f64,
        "millisecond" | "milliseconds" => (time % MICROS_PER_MINUTE) as f64 / 1000.0,
        "second" | "seconds" => (time % MICROS_PER_MINUTE) as f64 / MICROS_PER_SECOND as f64,
        "minute" | "minutes" => (time % MICROS_PER_HOUR / MICROS_PER_MINUTE) as f64,
        "hour" | "hours" => (time / MICROS_PER_HOUR) as f64,
        "day" | "days" => f64::from(d),
        "month" | "months" => f64::from(m),
        "quarter" => f64::from((m - 1) / 3 + 1),
        "year" | "years" => (if y <= 0 { y - 1 } else { y }) as f64,
        "decade" => {
            (if y >= 0 {
                y / 10
            } else {
                -((8 - (y - 1)) / 10)
            }) as f64
        }
        "century" => {
            (if y > 0 {
                (y + 99) / 100
            } else {
                -((99 - (y - 1)) / 100)
            }) as f64
        }
        "millennium" => {
            (if y > 0 {
                (y + 999) / 1000
            } else {
                -((999 - (y - 1)) / 1000)
            }) as f64
        }
        "dow" => dow as f64,
        "isodow" => (if dow == 0 { 7 } else { dow }) as f64,
        "doy" => (days - pg_days(y, 1, 1) + 1) as f64,
        "week" => iso_week(y, days) as f64,
        "isoyear" => iso_year(y, days) as f64,
        "julian" => (days + 2_451_545) as f64 + time as f64 / MICROS_PER_DAY as f64,
        "epoch" => match utc {
            Some((instant, _)) => (instant + UNIX_TO_PG_EPOCH_MICROS) as f64 / 1e6,
            None => (local + UNIX_TO_PG_EPOCH_MICROS) as f64 / 1e6,
        },
        "timezone" => f64::from(utc?.1),
        "timezone_hour" => f64::from(utc?.1 / 3600),
        "timezone_minute" => f64::from(utc?.1 % 3600 / 60),
        _ => return None,
    })
}

/// The offset of a zone at an instant (for `extract(timezone …)`).
pub(crate) fn offset_seconds(ts: i64, zone: &Zone) -> i32 {
    zone.offset_at_utc(ts)
}

fn iso_week_start(y: i64) -> i64 {
    // The Monday of the week holding January 4th.
    let jan4 = pg_days(y, 1, 4);
    let dow = (jan4 + 6).rem_euclid(7); // 0 = Sunday
    let monday_offset = (dow + 6) % 7;
    jan4 - monday_offset
}

fn iso_year(y: i64, days: i64) -> i64 {
    if days >= iso_week_start(y + 1) {
        y + 1
    } else if days < iso_week_start(y) {
        y - 1
    } else {
        y
    }
}

fn iso_week(y: i64, days: i64) -> i64 {
    let iy = iso_year(y, days);
    (days - iso_week_start(iy)) / 7 + 1
}

/// A field of `extract` over an interval.
pub(crate) fn extract_interval(field: &str, iv: &Interval) -> Option<f64> {
    let t = iv.micros;
    Some(match field {
        "microsecond" | "microseconds" => (t % MICROS_PER_MINUTE) as f64,
        "millisecond" | "milliseconds" => (t % MICROS_PER_MINUTE) as f64 / 1000.0,
        "second" | "seconds" => (t % MICROS_PER_MINUTE) as f64 / 1e6,
        "minute" | "minutes" => (t % MICROS_PER_HOUR / MICROS_PER_MINUTE) as f64,
        "hour" | "hours" => (t / MICROS_PER_HOUR) as f64,
        "day" | "days" => f64::from(iv.days),
        "month" | "months" => f64::from(iv.months % 12),
        "quarter" => f64::from(iv.months % 12 / 3 + 1),
        "year" | "years" => f64::from(iv.months / 12),
        "decade" => f64::from(iv.months / 120),
        "century" => f64::from(iv.months / 1200),
        "millennium" => f64::from(iv.months / 12000),
        "epoch" => {
            let years = f64::from(iv.months / 12);
            let months = f64::from(iv.months % 12);
            years * 365.25 * 86400.0
                + months * 30.0 * 86400.0
                + f64::from(iv.days) * 86400.0
                + t as f64 / 1e6
        }
        _ => return None,
    })
}

/// Whether a stored timestamp value lies in PostgreSQL's range (or is an infinity): binary
/// input must be checked, text input always is.
pub(crate) fn timestamp_in_range(ts: i64) -> bool {
    is_infinite(ts) || check_timestamp(ts).is_ok()
}

/// Whether a date value lies in PostgreSQL's range (or is an infinity).
pub(crate) fn date_in_range(days: i32) -> bool {
    days == DATE_POS_INFINITY
        || days == DATE_NEG_INFINITY
        || (DATE_DAYS_MIN..=DATE_DAYS_MAX).contains(&i64::from(days))
}

/// `date_trunc(field, local timestamp)`.
pub(crate) fn trunc_timestamp(field: &str, local: i64) -> Option<i64> {
    if is_infinite(local) {
        return Some(local);
    }
    let days = local.div_euclid(MICROS_PER_DAY);
    let time = local.rem_euclid(MICROS_PER_DAY);
    let (y, m, _) = pg_civil(days);
    let at = |d: i64| d * MICROS_PER_DAY;
    Some(match field {
        "microseconds" | "microsecond" => local,
        "milliseconds" | "millisecond" => at(days) + time - time % 1000,
        "second" | "seconds" => at(days) + time - time % MICROS_PER_SECOND,
        "minute" | "minutes" => at(days) + time - time % MICROS_PER_MINUTE,
        "hour" | "hours" => at(days) + time - time % MICROS_PER_HOUR,
        "day" | "days" => at(days),
        "week" | "weeks" => {
            let dow = (days + 6).rem_euclid(7);
            at(days - (dow + 6) % 7)
        }
        "month" | "months" => at(pg_days(y, m, 1)),
        "quarter" => at(pg_days(y, (m - 1) / 3 * 3 + 1, 1)),
        "year" | "years" => at(pg_days(y, 1, 1)),
        "decade" => at(pg_days(y - y.rem_euclid(10), 1, 1)),
        "century" => at(pg_days(((y - 1).div_euclid(100)) * 100 + 1, 1, 1)),
        "millennium" => at(pg_days(((y - 1).div_euclid(1000)) * 1000 + 1, 1, 1)),
        _ => return None,
    })
}

/// `date_trunc(field, timestamptz)`: truncated in the zone's local time.
pub(crate) fn trunc_timestamptz(field: &str, ts: i64, zone: &Zone) -> Option<i64> {
    if is_infinite(ts) {
        return Some(ts);
    }
    let local = trunc_timestamp(field, utc_to_local(ts, zone))?;
    Some(local_to_utc(local, zone))
}

/// `date_trunc(field, interval)`.
pub(crate) fn trunc_interval(field: &str, iv: &Interval) -> Option<Interval> {
    let t = iv.micros;
    let mut out = *iv;
    match field {
        "microseconds" | "microsecond" => {}
        "milliseconds" | "millisecond" => out.micros = t - t % 1000,
        "second" | "seconds" => out.micros = t - t % MICROS_PER_SECOND,
        "minute" | "minutes" => out.micros = t - t % MICROS_PER_MINUTE,
        "hour" | "hours" => out.micros = t - t % MICROS_PER_HOUR,
        "day" | "days" => out.micros = 0,
        "month" | "months" => (out.days, out.micros) = (0, 0),
        "year" | "years" => (out.months, out.days, out.micros) = (iv.months / 12 * 12, 0, 0),
        _ => return None,
    }
    Some(out)
}

/// `age(a, b)`: years, months and days between two local timestamps, as PostgreSQL's
/// field-wise subtraction with borrowing.
pub(crate) fn age(a: i64, b: i64) -> Result<Interval, SqlError> {
    if is_infinite(a) || is_infinite(b) {
        return Err(interval_overflow());
    }
    let (neg, hi, lo) = if a < b { (true, b, a) } else { (false, a, b) };
    let (y1, m1, d1) = pg_civil(hi.div_euclid(MICROS_PER_DAY));
    let (y0, m0, d0) = pg_civil(lo.div_euclid(MICROS_PER_DAY));
    let mut micros = hi.rem_euclid(MICROS_PER_DAY) - lo.rem_euclid(MICROS_PER_DAY);
    let mut days = i64::from(d1) - i64::from(d0);
    let mut months = (y1 - y0) * 12 + i64::from(m1) - i64::from(m0);
    if micros < 0 {
        micros += MICROS_PER_DAY;
        days -= 1;
    }
    if days < 0 {
        // Borrow the length of the earlier date's month, as PostgreSQL's age() does.
        days += i64::from(days_in_month(y0, m0));
        months -= 1;
    }
    let iv = Interval {
        months: i32::try_from(months).map_err(|_| interval_overflow())?,
        days: days as i32,
        micros,
    };
    if neg {
        negate_interval(&iv)
    } else {
        Ok(iv)
    }
}

/// `justify_interval`-free helpers used by casts: the time part of a timestamp.
pub(crate) fn time_of(local: i64) -> i64 {
    local.rem_euclid(MICROS_PER_DAY)
}

/// The date of a local timestamp (infinities map to the date infinities).
pub(crate) fn date_of(local: i64) -> Result<i32, SqlError> {
    match local {
        TS_POS_INFINITY => Ok(DATE_POS_INFINITY),
        TS_NEG_INFINITY => Ok(DATE_NEG_INFINITY),
        _ => Ok(local.div_euclid(MICROS_PER_DAY) as i32),
    }
}

/// The local timestamp at midnight of a date.
pub(crate) fn date_to_timestamp(days: i32) -> Result<i64, SqlError> {
    match days {
        DATE_POS_INFINITY => Ok(TS_POS_INFINITY),
        DATE_NEG_INFINITY => Ok(TS_NEG_INFINITY),
        d if i64::from(d) > TIMESTAMP_DAYS_MAX => Err(SqlError::new(
            DATETIME_FIELD_OVERFLOW,
            "date out of range for timestamp",
        )),
        d => Ok(i64::from(d) * MICROS_PER_DAY),
    }
}

/// The current time, µs since 2000-01-01 UTC.
pub(crate) fn now_micros() -> i64 {
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    since_unix - UNIX_TO_PG_EPOCH_MICROS
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// What `to_char` formats: a local time, and for timestamptz its zone's offset and name.
pub(crate) struct CharInput<'a> {
    pub(crate) local: i64,
    pub(crate) offset: Option<i32>,
    pub(crate) zone_name: Option<&'a str>,
}

/// `to_char(timestamp, format)`: PostgreSQL's template patterns (YYYY, MM, DD, HH24, MI, SS,
/// MS, US, Month, Mon, Day, Dy, AM/PM, Q, WW, IW, DDD, D, ID, J, TZ, OF, FM prefix,
/// "quoted" text, backslash escapes); other characters are copied.
pub(crate) fn to_char(input: &CharInput, format: &str) -> String {
    let local = input.local;
    let days = local.div_euclid(MICROS_PER_DAY);
    let time = local.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = pg_civil(days);
    let dow = (days + 6).rem_euclid(7) as usize; // 0 = Sunday
    let hour = time / MICROS_PER_HOUR;
    let year = if y <= 0 { 1 - y } else { y };
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::with_capacity(format.len() + 16);
    let mut i = 0;
    let starts = |i: usize, p: &str| {
        let p: Vec<char> = p.chars().collect();
        chars.len() >= i + p.len() && chars[i..i + p.len()] == p[..]
    };
    while i < chars.len() {
        let mut fill = true;
        if starts(i, "FM") || starts(i, "fm") {
            fill = false;
            i += 2;
            if i >= chars.len() {
                break;
            }
        }
        let num = |out: &mut String, v: i64, width: usize| {
            if fill {
                out.push_str(&format!("{v:0width$}"));
            } else {
                out.push_str(&v.to_string());
            }
        };
        let name = |out: &mut String, word: &str, pattern: &str, width: usize| {
            let cased = if pattern.chars().all(|c| c.is_ascii_uppercase()) {
                word.to_uppercase()
            } else if pattern.chars().all(|c| c.is_ascii_lowercase()) {
                word.to_lowercase()
            } else {
                word.to_string()
            };
            if fill {
                out.push_str(&format!("{cased:<width$}"));
            } else {
                out.push_str(&cased);
            }
        };
        // Longest patterns first, as PostgreSQL's keyword table is searched.
        let matched: Option<(&str, usize)> = [
            "YYYY", "IYYY", "HH24", "HH12", "MONTH", "Month", "month", "A.M.", "P.M.", "a.m.",
            "p.m.", "YYY", "DDD", "MON", "Mon", "mon", "DAY", "Day", "day", "YY", "MM", "DD", "HH",
            "MI", "SS", "MS", "US", "DY", "Dy", "dy", "AM", "PM", "am", "pm", "WW", "IW", "ID",
            "TZ", "tz", "OF", "Y", "Q", "D", "J",
        ]
        .iter()
        .find(|p| starts(i, p))
        .map(|p| (*p, p.chars().count()))
        .or_else(|| {
            // Numeric patterns match in any case (names keep theirs: they set the output's).
            [
                "YYYY", "IYYY", "HH24", "HH12", "YYY", "DDD", "YY", "MM", "DD", "HH", "MI", "SS",
                "MS", "US", "WW", "IW", "ID", "OF", "Y", "Q", "D", "J",
            ]
            .iter()
            .find(|p| {
                let n = p.len();
                chars.len() >= i + n
                    && chars[i..i + n]
                        .iter()
                        .zip(p.chars())
                        .all(|(a, b)| a.to_ascii_uppercase() == b)
            })
            .map(|p| (*p, p.len()))
        });
        let Some((p, len)) = matched else {
            match chars[i] {
                '"' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        out.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                }
                '\\' if i + 1 < chars.len() => {
                    out.push(chars[i + 1]);
                    i += 2;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
            continue;
        };
        i += len;
        match p {
            "YYYY" => num(&mut out, year, 4),
            "IYYY" => num(&mut out, iso_year(y, days), 4),
            "YYY" => num(&mut out, year % 1000, 3),
            "YY" => num(&mut out, year % 100, 2),
            "Y" => num(&mut out, year % 10, 1),
            "MM" => num(&mut out, i64::from(m), 2),
            "DD" => num(&mut out, i64::from(d), 2),
            "DDD" => num(&mut out, days - pg_days(y, 1, 1) + 1, 3),
            "D" => num(&mut out, dow as i64 + 1, 1),
            "ID" => num(&mut out, if dow == 0 { 7 } else { dow as i64 }, 1),
            "HH24" => num(&mut out, hour, 2),
            "HH12" | "HH" => num(&mut out, (hour + 11) % 12 + 1, 2),
            "MI" => num(&mut out, time % MICROS_PER_HOUR / MICROS_PER_MINUTE, 2),
            "SS" => num(&mut out, time % MICROS_PER_MINUTE / MICROS_PER_SECOND, 2),
            "MS" => num(&mut out, time % MICROS_PER_SECOND / 1000, 3),
            "US" => num(&mut out, time % MICROS_PER_SECOND, 6),
            "Q" => num(&mut out, i64::from((m - 1) / 3 + 1), 1),
            "WW" => num(&mut out, (days - pg_days(y, 1, 1)) / 7 + 1, 2),
            "IW" => num(&mut out, iso_week(y, days), 2),
            "J" => num(&mut out, days + 2_451_545, 1),
            "MONTH" | "Month" | "month" => name(&mut out, MONTH_NAMES[m as usize - 1], p, 9),
            "MON" | "Mon" | "mon" => name(&mut out, &MONTH_NAMES[m as usize - 1][..3], p, 3),
            "DAY" | "Day" | "day" => name(&mut out, DAY_NAMES[dow], p, 9),
            "DY" | "Dy" | "dy" => name(&mut out, &DAY_NAMES[dow][..3], p, 3),
            "AM" | "PM" => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            "am" | "pm" => out.push_str(if hour < 12 { "am" } else { "pm" }),
            "A.M." | "P.M." => out.push_str(if hour < 12 { "A.M." } else { "P.M." }),
            "a.m." | "p.m." => out.push_str(if hour < 12 { "a.m." } else { "p.m." }),
            "TZ" | "tz" => {
                let zone = input.zone_name.unwrap_or("");
                out.push_str(&if p == "TZ" {
                    zone.to_uppercase()
                } else {
                    zone.to_lowercase()
                });
            }
            "OF" => {
                if let Some(off) = input.offset {
                    push_offset(&mut out, off);
                }
            }
            other => unreachable!("pattern {other}"),
        }
    }
    out
}

/// The abbreviation `to_char`'s TZ shows for a zone at an instant ("UTC", "CET", "EDT").
pub(crate) fn zone_abbreviation(ts: i64, zone: &Zone) -> String {
    let unix_seconds =
        ts.div_euclid(MICROS_PER_SECOND) + UNIX_TO_PG_EPOCH_MICROS / MICROS_PER_SECOND;
    match jiff::Timestamp::from_second(unix_seconds) {
        Ok(t) => {
            let info = zone.0.to_offset_info(t);
            info.abbreviation().to_string()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(zone: &Zone) -> Clock<'_> {
        Clock {
            now: 0,
            zone,
            dmy: false,
        }
    }

    #[test]
    fn day_numbers_round_trip_across_eras() {
        for days in [-2_451_545i64, -1, 0, 1, 59, 60, 366, 10_000, 2_000_000] {
            let (y, m, d) = pg_civil(days);
            assert_eq!(pg_days(y, m, d), days);
        }
        assert_eq!(pg_days(2000, 1, 1), 0);
        assert_eq!(pg_days(1970, 1, 1), -UNIX_TO_PG_EPOCH_DAYS);
    }

    #[test]
    fn dates_parse_and_print_as_postgres_does() {
        let z = Zone::default();
        let c = clock(&z);
        assert_eq!(
            format_date(parse_date("2024-02-29", &c).unwrap()),
            "2024-02-29"
        );
        assert_eq!(
            format_date(parse_date("1/2/2024", &c).unwrap()),
            "2024-01-02"
        );
        assert_eq!(
            format_date(parse_date("20240131", &c).unwrap()),
            "2024-01-31"
        );
        assert_eq!(
            format_date(parse_date("0044-03-15 BC", &c).unwrap()),
            "0044-03-15 BC"
        );
        assert_eq!(format_date(parse_date("epoch", &c).unwrap()), "1970-01-01");
        assert_eq!(format_date(parse_date("infinity", &c).unwrap()), "infinity");
        assert!(parse_date("2023-02-29", &c).is_err());
        assert!(parse_date("2024-13-01", &c).is_err());
        assert!(parse_date("garbage", &c).is_err());
    }

    #[test]
    fn timestamps_parse_zones_and_print_in_the_session_zone() {
        let utc = Zone::default();
        let c = clock(&utc);
        let ts = parse_timestamp("2024-03-10 12:34:56.789+02", true, &c).unwrap();
        assert_eq!(
            format_timestamp(ts, Some(&utc)),
            "2024-03-10 10:34:56.789+00"
        );
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(
            format_timestamp(ts, Some(&ny)),
            "2024-03-10 06:34:56.789-04"
        );
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        assert_eq!(
            format_timestamp(ts, Some(&kolkata)),
            "2024-03-10 16:04:56.789+05:30"
        );
        let local = parse_timestamp("2024-01-15T08:00:00", true, &clock(&ny)).unwrap();
        assert_eq!(
            format_timestamp(local, Some(&utc)),
            "2024-01-15 13:00:00+00"
        );
        let plain = parse_timestamp("2024-01-15 08:00:00+05", false, &c).unwrap();
        assert_eq!(format_timestamp(plain, None), "2024-01-15 08:00:00");
        assert_eq!(
            format_timestamp(parse_timestamp("epoch", true, &c).unwrap(), Some(&utc)),
            "1970-01-01 00:00:00+00"
        );
    }

    #[test]
    fn intervals_print_in_the_postgres_style() {
        let p = |s: &str| format_interval(&parse_interval(s).unwrap());
        assert_eq!(
            p("1 year 2 months 3 days 04:05:06.5"),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(p("0"), "00:00:00");
        assert_eq!(p("-1 day +02:00"), "-1 days +02:00:00");
        assert_eq!(p("1.5 days"), "1 day 12:00:00");
        assert_eq!(p("1.5 months"), "1 mon 15 days");
        assert_eq!(p("@ 2 hours ago"), "-02:00:00");
        assert_eq!(p("P1Y2M3DT4H5M6S"), "1 year 2 mons 3 days 04:05:06");
        assert_eq!(p("90 minutes"), "01:30:00");
        assert_eq!(p("-3 years"), "-3 years");
        assert!(parse_interval("one day").is_err());
    }

    #[test]
    fn month_arithmetic_clamps_to_the_month_end() {
        let z = Zone::default();
        let c = clock(&z);
        let ts = parse_timestamp("2024-01-31 10:00", false, &c).unwrap();
        let plus = timestamp_plus_interval(ts, &parse_interval("1 month").unwrap()).unwrap();
        assert_eq!(format_timestamp(plus, None), "2024-02-29 10:00:00");
        let b = parse_timestamp("2023-12-25 12:00", false, &c).unwrap();
        assert_eq!(
            format_interval(&timestamp_diff(ts, b).unwrap()),
            "36 days 22:00:00"
        );
        assert_eq!(
            format_interval(&age(ts, b).unwrap()),
            "1 mon 5 days 22:00:00"
        );
    }

    #[test]
    fn extract_and_trunc_fields() {
        let z = Zone::default();
        let ts = parse_timestamp("2024-03-10 12:34:56.5", false, &clock(&z)).unwrap();
        assert_eq!(extract_timestamp("year", ts, None), Some(2024.0));
        assert_eq!(extract_timestamp("dow", ts, None), Some(0.0));
        assert_eq!(extract_timestamp("doy", ts, None), Some(70.0));
        assert_eq!(extract_timestamp("second", ts, None), Some(56.5));
        assert_eq!(extract_timestamp("week", ts, None), Some(10.0));
        let t = trunc_timestamp("month", ts).unwrap();
        assert_eq!(format_timestamp(t, None), "2024-03-01 00:00:00");
        let w = trunc_timestamp("week", ts).unwrap();
        assert_eq!(format_timestamp(w, None), "2024-03-04 00:00:00");
    }
}
