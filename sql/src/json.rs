//! `jsonb` input and output: a literal is parsed (RFC 8259) and printed back in jsonb's
//! normal form, which is what PostgreSQL returns for a stored jsonb value: object keys
//! unique (the last one wins) and ordered by length then bytes, one space after `:` and `,`,
//! numbers as `numeric` prints them, strings with JSON's escapes.

use crate::error::*;

/// Nesting depth a jsonb value may have (PostgreSQL stops at its stack depth limit).
const DEPTH_MAX: usize = 1000;

enum Value {
    Null,
    Bool(bool),
    /// Normalized numeric text.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

fn invalid(s: &str) -> SqlError {
    SqlError::new(
        INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type json: \"{s}\""),
    )
}

/// Parses `s` as JSON and returns jsonb's normal text form.
pub(crate) fn normalize(s: &str) -> Result<String, SqlError> {
    let mut p = Parser {
        src: s.as_bytes(),
        at: 0,
        text: s,
    };
    let v = p.value(0)?;
    p.skip_ws();
    if p.at != p.src.len() {
        return Err(invalid(s));
    }
    let mut out = String::with_capacity(s.len());
    write(&v, &mut out);
    Ok(out)
}

/// jsonb `||` of two values in normal form: two objects merge (the right one's value wins
/// for a key both have); otherwise both are made arrays (a non-array becomes a one-element
/// array) and joined, as PostgreSQL's jsonb_concat does.
pub(crate) fn concat(a: &str, b: &str) -> String {
    let inner = |s: &str| s[1..s.len() - 1].to_string();
    let (open, close, x, y) = match (a.starts_with('{'), b.starts_with('{')) {
        (true, true) => ('{', '}', inner(a), inner(b)),
        _ => {
            let items = |s: &str| {
                if s.starts_with('[') {
                    inner(s)
                } else {
                    s.to_string()
                }
            };
            ('[', ']', items(a), items(b))
        }
    };
    let joined = match (x.is_empty(), y.is_empty()) {
        (true, _) => format!("{open}{y}{close}"),
        (_, true) => format!("{open}{x}{close}"),
        _ => format!("{open}{x}, {y}{close}"),
    };
    // Merged objects are normalized again (key order, the later of two equal keys wins);
    // joined arrays are in normal form already.
    if open == '{' {
        normalize(&joined).expect("two jsonb objects in normal form merge into valid JSON")
    } else {
        joined
    }
}

struct Parser<'a> {
    src: &'a [u8],
    at: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.src.len() && matches!(self.src[self.at], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.at += 1;
        }
    }

    fn err(&self) -> SqlError {
        invalid(self.text)
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.src[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SqlError> {
        if depth > DEPTH_MAX {
            return Err(SqlError::new(
                STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded",
            ));
        }
        self.skip_ws();
        let Some(&c) = self.src.get(self.at) else {
            return Err(self.err());
        };
        match c {
            b'n' if self.eat(b"null") => Ok(Value::Null),
            b't' if self.eat(b"true") => Ok(Value::Bool(true)),
            b'f' if self.eat(b"false") => Ok(Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b"]") {
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b"]") {
                        return Ok(Value::Array(items));
                    }
                    if !self.eat(b",") {
                        return Err(self.err());
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut fields: Vec<(String, Value)> = Vec::new();
                self.skip_ws();
                if self.eat(b"}") {
                    return Ok(Value::Object(fields));
                }
                loop {
                    self.skip_ws();
                    if self.src.get(self.at) != Some(&b'"') {
                        return Err(self.err());
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(b":") {
                        return Err(self.err());
                    }
                    let v = self.value(depth + 1)?;
                    fields.retain(|(k, _)| *k != key);
                    fields.push((key, v));
                    self.skip_ws();
                    if self.eat(b"}") {
                        fields.sort_by(|(a, _), (b, _)| {
                            a.len()
                                .cmp(&b.len())
                                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
                        });
                        return Ok(Value::Object(fields));
                    }
                    if !self.eat(b",") {
                        return Err(self.err());
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err()),
        }
    }

    fn number(&mut self) -> Result<Value, SqlError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let s = p.at;
            while p.at < p.src.len() && p.src[p.at].is_ascii_digit() {
                p.at += 1;
            }
            p.at - s
        };
        self.eat(b"-");
        let int_start = self.at;
        let n = digits(self);
        if n == 0 || (n > 1 && self.src[int_start] == b'0') {
            return Err(self.err());
        }
        if self.eat(b".") && digits(self) == 0 {
            return Err(self.err());
        }
        if matches!(self.src.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.src.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.err());
            }
        }
        let text = &self.text[start..self.at];
        let n = crate::numeric::parse(text).ok_or_else(|| self.err())?;
        Ok(Value::Number(crate::numeric::to_text(&n)))
    }

    fn string(&mut self) -> Result<String, SqlError> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.at;
            while self.at < self.src.len() && !matches!(self.src[self.at], b'"' | b'\\') {
                if self.src[self.at] < 0x20 {
                    return Err(self.err());
                }
                self.at += 1;
            }
            out.push_str(&self.text[start..self.at]);
            match self.src.get(self.at) {
                None => return Err(self.err()),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(_) => {
                    self.at += 1;
                    let esc = *self.src.get(self.at).ok_or_else(|| self.err())?;
                    self.at += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(self.err()),
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SqlError> {
        let h = self
            .text
            .get(self.at..self.at + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err())?;
        self.at += 4;
        u32::from_str_radix(h, 16).map_err(|_| self.err())
    }

    fn unicode_escape(&mut self) -> Result<char, SqlError> {
        let unsupported = || SqlError::new("22P05", "unsupported Unicode escape sequence");
        let hi = self.hex4()?;
        if hi == 0 {
            return Err(unsupported());
        }
        if (0xD800..0xDC00).contains(&hi) {
            if !self.eat(b"\\u") {
                return Err(self.err());
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err());
            }
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return char::from_u32(c).ok_or_else(|| self.err());
        }
        char::from_u32(hi).ok_or_else(|| self.err())
    }
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(k, out);
                out.push_str(": ");
                write(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn jsonb_normal_form_matches_postgres() {
        let n = |s: &str| normalize(s).unwrap();
        assert_eq!(
            n(r#"{"b":1,"a":[1,2.50,1e2],"aa":null,"a":true}"#),
            r#"{"a": true, "b": 1, "aa": null}"#
        );
        assert_eq!(n(" [ ] "), "[]");
        assert_eq!(n(r#""tab\there\u00e9""#), "\"tab\\there\u{e9}\"");
        assert_eq!(n("-0"), "0");
        assert_eq!(n("[1.50, 1E-2]"), "[1.50, 0.01]");
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "{'a':1}",
            "tru",
            "\"\\u0000\"",
            "1 2",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
