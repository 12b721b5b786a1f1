//! Query shapes: a simple-protocol statement with its literals taken out as parameters, so
//! that statements differing only in their constants (`... WHERE aid = 63781`, pgbench's and
//! most applications' simple-protocol traffic) share one parse and one plan.
//!
//! [`of`] rewrites `SELECT abalance FROM t WHERE aid = 63781` as `SELECT abalance FROM t
//! WHERE aid = $1` with the literal `63781` typed as PostgreSQL types it (int4, int8 or
//! numeric by its form). The session keeps a prepared statement per shape (see
//! `execute_simple`) and runs it with the literals as parameters, which is the extended
//! protocol's path: a typed parameter behaves as the constant it replaces.
//!
//! Only rewrites that keep the statement's meaning are made; anything else returns None and
//! the statement takes the ordinary path:
//! - only SELECT, INSERT, UPDATE and DELETE statements, one per string;
//! - numbers anywhere, except where an integer is a column position (ORDER BY, GROUP BY,
//!   DISTINCT ON, window clauses: their statements are left alone);
//! - quoted strings only right after a comparison operator (`name = 'x'`), where their
//!   unknown type resolves from the other side exactly as a parameter's does;
//! - comments, dollar quotes, parameters and prefixed strings (`E'..'`, `B'..'`) are left to
//!   the ordinary path, as is a negated integer at a type's boundary (`-2147483648` is int4
//!   as a constant, while `2147483648` alone is int8).

/// Longest statement text given a shape (longer ones are rarely repeated).
pub(crate) const SHAPE_QUERY_BYTES_MAX: usize = 8192;
/// Most literals taken out of one statement.
const SHAPE_LITERALS_MAX: usize = 256;

use crate::types::SqlType;

/// A parameter type OID that leaves the type to be inferred from where it stands.
const OID_UNSPECIFIED: u32 = 0;

/// A statement with its literals replaced by `$1`, `$2`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    pub text: String,
    /// Each parameter's value as text (a string's quotes and doubled quotes removed).
    pub values: Vec<String>,
    /// Each parameter's type OID: a number's type, or unspecified for a string.
    pub type_oids: Vec<u32>,
}

/// The previous significant token, which decides whether a string may become a parameter
/// and whether a minus sign negates a number.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Previous {
    Comparison,
    Minus,
    Other,
}

/// The shape of `sql`, or None where taking its literals out could change its meaning (see
/// the module comment).
pub(crate) fn of(sql: &str) -> Option<Shape> {
    if sql.len() > SHAPE_QUERY_BYTES_MAX {
        return None;
    }
    let first = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()?;
    if !["select", "insert", "update", "delete"]
        .iter()
        .any(|kind| first.eq_ignore_ascii_case(kind))
    {
        return None;
    }
    let bytes = sql.as_bytes();
    let mut shape = Shape {
        text: String::with_capacity(sql.len()),
        values: Vec::new(),
        type_oids: Vec::new(),
    };
    let mut previous = Previous::Other;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                shape.text.push(char::from(byte));
                at += 1;
                continue;
            }
            b'$' | b'\\' | b'`' => return None,
            b';' => {
                // Only a last, trailing semicolon: one statement per string.
                if sql[at + 1..].trim().is_empty() {
                    break;
                }
                return None;
            }
            b'\'' => {
                let (value, end) = quoted(sql, at, b'\'')?;
                if previous == Previous::Comparison {
                    push_parameter(&mut shape, value, OID_UNSPECIFIED)?;
                } else {
                    shape.text.push_str(&sql[at..end]);
                }
                at = end;
            }
            b'"' => {
                let (_, end) = quoted(sql, at, b'"')?;
                shape.text.push_str(&sql[at..end]);
                at = end;
            }
            b'0'..=b'9' => {
                let end = number_end(bytes, at)?;
                let text = &sql[at..end];
                let oid = number_type(text)?;
                if previous == Previous::Minus && at_type_boundary(text) {
                    return None;
                }
                push_parameter(&mut shape, text.to_string(), oid)?;
                at = end;
            }
            _ if is_operator_byte(byte) => {
                // PostgreSQL's operators are maximal runs of these characters (`<->`, `@>`,
                // `->>`), so a comparison is a run that is exactly one.
                let end = at
                    + bytes[at..]
                        .iter()
                        .take_while(|&&b| is_operator_byte(b))
                        .count();
                let operator = &sql[at..end];
                if operator.contains("--") || operator.contains("/*") {
                    return None; // a comment
                }
                if operator.len() > 1 && operator.ends_with(['-', '+']) {
                    return None; // `=-5`: the lexer splits these; leave it to the parser
                }
                shape.text.push_str(operator);
                previous = match operator {
                    "=" | "<>" | "!=" | "<" | ">" | "<=" | ">=" => Previous::Comparison,
                    "-" => Previous::Minus,
                    _ => Previous::Other,
                };
                at = end;
                continue;
            }
            _ if is_word_start(byte) => {
                let end = at + bytes[at..].iter().take_while(|&&b| is_word_byte(b)).count();
                let word = &sql[at..end];
                // A prefixed string (E'..', B'..', X'..', N'..', U&'..') is not a plain one.
                if matches!(bytes.get(end), Some(b'\'') | Some(b'&')) {
                    return None;
                }
                if ["order", "group", "distinct", "over", "window"]
                    .iter()
                    .any(|positional| word.eq_ignore_ascii_case(positional))
                {
                    return None;
                }
                shape.text.push_str(word);
                at = end;
            }
            _ => {
                // Multi-byte UTF-8 characters are copied whole.
                let width = sql[at..].chars().next().map_or(1, char::len_utf8);
                shape.text.push_str(&sql[at..at + width]);
                at += width;
            }
        }
        previous = Previous::Other;
    }
    Some(shape)
}

fn push_parameter(shape: &mut Shape, value: String, oid: u32) -> Option<()> {
    if shape.values.len() >= SHAPE_LITERALS_MAX {
        return None;
    }
    shape.values.push(value);
    shape.type_oids.push(oid);
    shape.text.push('$');
    shape.text.push_str(&shape.values.len().to_string());
    Some(())
}

/// A quoted string or identifier starting at `start`: its content (doubled quotes made one)
/// and the index after its closing quote. None when it does not close.
fn quoted(sql: &str, start: usize, quote: u8) -> Option<(String, usize)> {
    let bytes = sql.as_bytes();
    let mut value = String::new();
    let mut at = start + 1;
    let mut run = at;
    loop {
        let offset = bytes[at..].iter().position(|&b| b == quote)?;
        at += offset;
        value.push_str(&sql[run..at]);
        if bytes.get(at + 1) == Some(&quote) {
            value.push(char::from(quote));
            at += 2;
            run = at;
        } else {
            return Some((value, at + 1));
        }
    }
}

/// The end of a number starting at `start` (digits, an optional fraction and exponent); None
/// when letters or another dot follow it (`1abc`, `1.2.3`), which is not one plain number.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits = |at: usize| {
        bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = start + digits(start);
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        at += digits(at);
    }
    if matches!(bytes.get(at), Some(b'e') | Some(b'E')) {
        let mut exponent = at + 1;
        if matches!(bytes.get(exponent), Some(b'+') | Some(b'-')) {
            exponent += 1;
        }
        let exponent_digits = digits(exponent);
        if exponent_digits == 0 {
            return None;
        }
        at = exponent + exponent_digits;
    }
    match bytes.get(at) {
        Some(&b) if is_word_byte(b) || b == b'.' => None,
        _ => Some(at),
    }
}

/// PostgreSQL's type of a numeric constant: int4 if it fits, else int8, else numeric; any
/// fraction or exponent makes it numeric.
fn number_type(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match text.parse::<i64>() {
            Ok(v) if i32::try_from(v).is_ok() => SqlType::Int4.oid(),
            Ok(_) => SqlType::Int8.oid(),
            Err(_) => SqlType::Numeric.oid(),
        });
    }
    Some(SqlType::Numeric.oid())
}

/// Whether a negated integer would have a narrower type than the integer alone.
fn at_type_boundary(text: &str) -> bool {
    let digits = text.trim_start_matches('0');
    digits == "2147483648" || digits == "9223372036854775808"
}

fn is_operator_byte(byte: u8) -> bool {
    matches!(
        byte,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'?'
    )
}

fn is_word_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_word_byte(byte: u8) -> bool {
    is_word_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID_INT4: u32 = 23;
    const OID_INT8: u32 = 20;
    const OID_NUMERIC: u32 = 1700;

    fn shape(sql: &str) -> Option<(String, Vec<&'static str>, Vec<u32>)> {
        of(sql).map(|s| {
            let values = s
                .values
                .iter()
                .map(|v| &*Box::leak(v.clone().into_boxed_str()))
                .collect();
            (s.text, values, s.type_oids)
        })
    }

    #[test]
    fn pgbench_statements_take_their_literals_out() {
        assert_eq!(
            shape("SELECT abalance FROM pgbench_accounts WHERE aid = 63781;"),
            Some((
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1".into(),
                vec!["63781"],
                vec![OID_INT4]
            ))
        );
        assert_eq!(
            shape("UPDATE pgbench_accounts SET abalance = abalance + -4270 WHERE aid = 5;"),
            Some((
                "UPDATE pgbench_accounts SET abalance = abalance + -$1 WHERE aid = $2".into(),
                vec!["4270", "5"],
                vec![OID_INT4, OID_INT4]
            ))
        );
        assert_eq!(
            shape("insert into h (a, d) values (3000000000, 1.5e3)").map(|s| (s.0, s.2)),
            Some((
                "insert into h (a, d) values ($1, $2)".into(),
                vec![OID_INT8, OID_NUMERIC]
            ))
        );
    }

    #[test]
    fn strings_become_parameters_only_after_a_comparison() {
        assert_eq!(
            shape("SELECT 'x' || name FROM t WHERE name = 'O''Brien' AND t1.c <> 'é'"),
            Some((
                "SELECT 'x' || name FROM t WHERE name = $1 AND t1.c <> $2".into(),
                vec!["O'Brien", "é"],
                vec![OID_UNSPECIFIED, OID_UNSPECIFIED]
            ))
        );
        assert_eq!(
            shape("SELECT \"a\"\"b\" FROM t WHERE d = date '2024-01-01'").map(|s| s.0),
            Some("SELECT \"a\"\"b\" FROM t WHERE d = date '2024-01-01'".into())
        );
    }

    #[test]
    fn statements_whose_meaning_could_change_keep_their_literals() {
        for sql in [
            "SELECT a FROM t ORDER BY 1",
            "SELECT a, count(*) FROM t GROUP BY 1",
            "SELECT DISTINCT ON (1) a FROM t",
            "SELECT -2147483648",
            "SELECT 1 -- comment",
            "SELECT /* c */ 1",
            "SELECT $1",
            "SELECT E'\\n'",
            "SELECT 1; SELECT 2",
            "SELECT 1abc",
            "SELECT 'unterminated",
            "SET x = 1",
            "EXPLAIN SELECT 1",
            "BEGIN",
        ] {
            assert_eq!(of(sql), None, "{sql}");
        }
        assert_eq!(
            shape("SELECT -2147483647").map(|s| s.0),
            Some("SELECT -$1".into())
        );
        // Strings after operators that are not comparisons stay: their unknown type would
        // resolve differently as a parameter.
        assert_eq!(
            shape("SELECT v <-> '[1,2]', d->'k', d ->> 'k' FROM t WHERE d @> '{}' AND a = 'x'")
                .map(|s| s.0),
            Some(
                "SELECT v <-> '[1,2]', d->'k', d ->> 'k' FROM t WHERE d @> '{}' AND a = $1".into()
            )
        );
        assert_eq!(of("SELECT 1 WHERE a =-1"), None);
    }
}
