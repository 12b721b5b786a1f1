//! COPY ... FROM STDIN and COPY ... TO STDOUT, text, CSV and binary formats, as PostgreSQL
//! 16 reads and writes them (`copyfromparse.c`, `copyto.c`). Binary fields go through
//! [`crate::pgbinary`] to and from the text the rest of the load path takes.
//!
//! sqlparser's COPY grammar lacks most of PostgreSQL's option forms (`WITH (FREEZE ON)`,
//! `CSV HEADER`), so the statement is parsed here, by hand, before the SQL parser sees it.
//!
//! Loading streams: the protocol layer feeds CopyData chunks to a [`CopyLoader`], which cuts
//! them into records, converts each field with the column type's input function, and sends
//! rows to their owning shards in batches of [`COPY_BATCH_ROWS`]. A bad record fails the
//! COPY with its line number in the CONTEXT, and the rows already written are deleted again,
//! so a failed COPY leaves nothing behind (until multi-shard transactions exist, a concurrent
//! reader may see them for that moment, and a crash in the middle leaves the rows written so
//! far).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::catalog::{ColumnDef, Table};
use crate::cluster::{Cluster, RowOp, WriteRequest};
use crate::error::*;
use crate::expr::{eval, Bound, Env, Eval};
use crate::rowcodec;
use crate::session::Session;
use crate::stmt;
use crate::types::{self, Datum};
use crate::{PackedEntries, StatementResult};

/// Rows sent to the shards per round while loading.
pub const COPY_BATCH_ROWS: usize = 4096;
/// A record (one row's text, quoted newlines included) longer than this is refused.
pub const COPY_RECORD_BYTES_MAX: usize = 64 << 20;
/// Keys of rows written by one COPY that are remembered for undoing it on failure.
const UNDO_KEYS_MAX: usize = 50_000_000;
/// Bytes of rows an ingesting COPY ([`crate::txn::copy_may_ingest`]) gathers before it
/// sorts them and writes them into the shards' tables.
const INGEST_BUFFER_BYTES: usize = 256 << 20;

/// SQLSTATE bad_copy_file_format.
const BAD_COPY_FILE_FORMAT: &str = "22P04";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    /// PostgreSQL's binary COPY format (`copyfromparse.c`'s `CopyReadBinaryTupleFields`):
    /// a signature, flags and extension area, then per row a field count and each field's
    /// length (-1: NULL) and bytes in the type's binary send format, then -1.
    Binary,
}

/// Columns a FORCE_QUOTE, FORCE_NOT_NULL or FORCE_NULL option names (`*`: all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ForceColumns {
    #[default]
    None,
    All,
    Named(Vec<String>),
}

impl ForceColumns {
    fn is_set(&self) -> bool {
        *self != ForceColumns::None
    }

    /// For each of `columns` (the COPY's, in order), whether the option covers it; 42703 for
    /// a named column `table` (the COPY's table, if any) lacks, 42P10 for one the COPY does
    /// not have.
    fn flags(
        &self,
        option: &str,
        columns: &[String],
        table: Option<&Table>,
    ) -> Result<Vec<bool>, SqlError> {
        match self {
            ForceColumns::None => Ok(vec![false; columns.len()]),
            ForceColumns::All => Ok(vec![true; columns.len()]),
            ForceColumns::Named(names) => {
                let mut flags = vec![false; columns.len()];
                for name in names {
                    if let Some(t) = table.filter(|t| t.column_index(name).is_none()) {
                        return Err(SqlError::new(
                            UNDEFINED_COLUMN,
                            format!(
                                "column \"{name}\" of relation \"{}\" does not exist",
                                t.name
                            ),
                        ));
                    }
                    let at = columns.iter().position(|c| c == name).ok_or_else(|| {
                        SqlError::new(
                            "42P10",
                            format!("{option} column \"{name}\" not referenced by COPY"),
                        )
                    })?;
                    flags[at] = true;
                }
                Ok(flags)
            }
        }
    }
}

/// The parsed options of a COPY statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    /// HEADER MATCH: the header line's names must be the COPY's columns.
    pub header_match: bool,
    pub quote: u8,
    pub escape: u8,
    pub force_quote: ForceColumns,
    pub force_not_null: ForceColumns,
    pub force_null: ForceColumns,
    /// FREEZE: the table was created or truncated in this block, and its rows may be
    /// visible as of the load rather than the commit (see `txn::copy_may_ingest`).
    pub freeze: bool,
}

impl CopyOptions {
    fn defaults(format: CopyFormat) -> CopyOptions {
        match format {
            CopyFormat::Text | CopyFormat::Binary => CopyOptions {
                format,
                delimiter: b'\t',
                null: "\\N".into(),
                header: false,
                header_match: false,
                quote: b'"',
                escape: b'"',
                force_quote: ForceColumns::None,
                force_not_null: ForceColumns::None,
                force_null: ForceColumns::None,
                freeze: false,
            },
            CopyFormat::Csv => CopyOptions {
                format,
                delimiter: b',',
                null: String::new(),
                header: false,
                header_match: false,
                quote: b'"',
                escape: b'"',
                force_quote: ForceColumns::None,
                force_not_null: ForceColumns::None,
                force_null: ForceColumns::None,
                freeze: false,
            },
        }
    }
}

/// What a COPY reads from or writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// A table (its name as written: `schema.table` parts) and optional column list.
    Table {
        name: Vec<String>,
        columns: Vec<String>,
    },
    /// `COPY (query) TO`: the query's text.
    Query(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyStatement {
    pub source: CopySource,
    /// FROM STDIN (true) or TO STDOUT (false).
    pub from: bool,
    pub options: CopyOptions,
    /// COPY FROM's `WHERE condition`: rows it is not true for are skipped.
    pub filter: Option<CopyFilter>,
}

/// The condition of `COPY ... FROM STDIN WHERE condition`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFilter {
    /// The statement's text after WHERE.
    pub text: String,
    /// Characters before `text` in the statement (to place error positions).
    pub offset: usize,
}

/// What the protocol layer must do for a COPY FROM STDIN: send CopyInResponse for
/// `column_count` text columns, then feed the client's data to a [`CopyLoader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyInStart {
    pub column_count: usize,
    pub(crate) statement: CopyStatement,
}

impl CopyInStart {
    /// The data comes in the binary format (CopyInResponse says so).
    pub fn binary(&self) -> bool {
        self.statement.options.format == CopyFormat::Binary
    }
}

/// Whether `sql` is a COPY statement (its first word), so that it is parsed here.
pub(crate) fn is_copy(sql: &str) -> bool {
    let body = skip_space_and_comments(sql);
    body.len() >= 4
        && body[..4].eq_ignore_ascii_case("copy")
        && body[4..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '(' || c == '"')
}

fn skip_space_and_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.find('\n').map_or("", |i| &rest[i..]);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.find("*/").map_or("", |i| &rest[i + 2..]);
        } else {
            return s;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The statement.

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// An unquoted word, lower-cased.
    Word(String),
    /// A "quoted identifier".
    Quoted(String),
    /// A 'string literal' (E'' escapes applied).
    Str(String),
    Number(String),
    Punct(char),
    /// `( query )` after COPY: the text between the parentheses.
    Query(String),
    /// `WHERE condition`: the rest of the statement, parsed as SQL (`at` is the 0-based
    /// character offset of WHERE, `text_at` of the text after it).
    Where {
        at: usize,
        text_at: usize,
        text: String,
    },
}

fn syntax_error(near: &str) -> SqlError {
    SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{near}\""))
}

fn tokenize(sql: &str) -> Result<Vec<Token>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Parentheses open around the current token (an option list): WHERE there is a word.
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '(' && tokens.len() == 1 {
            // COPY ( query ): take the text up to the matching parenthesis.
            let start = i + 1;
            let mut depth = 0usize;
            let mut quote: Option<char> = None;
            while i < chars.len() {
                let ch = chars[i];
                match quote {
                    Some(q) if ch == q => quote = None,
                    Some(_) => {}
                    None if ch == '\'' || ch == '"' => quote = Some(ch),
                    None if ch == '(' => depth += 1,
                    None if ch == ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    None => {}
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(SqlError::new(SYNTAX_ERROR, "syntax error at end of input"));
            }
            tokens.push(Token::Query(chars[start..i].iter().collect()));
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SqlError::new(
                            SYNTAX_ERROR,
                            "unterminated quoted identifier",
                        ))
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Quoted(s));
        } else if c == '\'' || ((c == 'e' || c == 'E') && chars.get(i + 1) == Some(&'\'')) {
            let escapes = c != '\'';
            i += if escapes { 2 } else { 1 };
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(SqlError::new(SYNTAX_ERROR, "unterminated quoted string")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if escapes => {
                        let next = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // After a dot it is a name (`public.where`), inside an option list an option.
            let clause = depth == 0 && tokens.last() != Some(&Token::Punct('.'));
            if clause && word.eq_ignore_ascii_case("where") {
                // COPY FROM's condition is an SQL expression: sqlparser takes it from here.
                tokens.push(Token::Where {
                    at: start,
                    text_at: i,
                    text: chars[i..].iter().collect(),
                });
                return Ok(tokens);
            }
            tokens.push(Token::Word(word.to_lowercase()));
        } else if "(),.;*".contains(c) {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(syntax_error(&c.to_string()));
        }
    }
    while tokens.last() == Some(&Token::Punct(';')) {
        tokens.pop();
    }
    Ok(tokens)
}

struct Cursor {
    tokens: Vec<Token>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, p: char) -> bool {
        if self.peek() == Some(&Token::Punct(p)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn error_here(&self) -> SqlError {
        match self.peek() {
            None => SqlError::new(SYNTAX_ERROR, "syntax error at end of input"),
            Some(t) => syntax_error(&token_text(t)),
        }
    }

    fn name(&mut self) -> Result<String, SqlError> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => Ok(w),
            _ => {
                self.at -= 1;
                Err(self.error_here())
            }
        }
    }

    fn string(&mut self) -> Result<String, SqlError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            _ => {
                self.at -= 1;
                Err(self.error_here())
            }
        }
    }
}

fn token_text(t: &Token) -> String {
    match t {
        Token::Word(w) | Token::Number(w) => w.clone(),
        Token::Quoted(w) => format!("\"{w}\""),
        Token::Str(s) => format!("'{s}'"),
        Token::Punct(c) => c.to_string(),
        Token::Query(q) => format!("({q})"),
        Token::Where { .. } => "where".to_string(),
    }
}

/// Parses a COPY statement (PostgreSQL's grammar, new and old option syntax).
pub(crate) fn parse_copy(sql: &str) -> Result<CopyStatement, SqlError> {
    let mut cur = Cursor {
        tokens: tokenize(sql)?,
        at: 0,
    };
    if !cur.eat_word("copy") {
        return Err(cur.error_here());
    }
    let source = match cur.peek().cloned() {
        Some(Token::Query(q)) => {
            cur.at += 1;
            CopySource::Query(q)
        }
        _ => {
            let mut name = vec![cur.name()?];
            while cur.eat_punct('.') {
                name.push(cur.name()?);
            }
            let mut columns = Vec::new();
            if cur.eat_punct('(') {
                loop {
                    columns.push(cur.name()?);
                    if cur.eat_punct(')') {
                        break;
                    }
                    if !cur.eat_punct(',') {
                        return Err(cur.error_here());
                    }
                }
            }
            CopySource::Table { name, columns }
        }
    };
    let from = if cur.eat_word("from") {
        true
    } else if cur.eat_word("to") {
        false
    } else {
        return Err(cur.error_here());
    };
    if from && matches!(source, CopySource::Query(_)) {
        return Err(syntax_error("FROM"));
    }
    match cur.next() {
        Some(Token::Word(w)) if w == (if from { "stdin" } else { "stdout" }) => {}
        Some(Token::Str(_)) | Some(Token::Word(_)) => {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "COPY {} a file or program is not supported; use COPY ... {} (psql's \\copy)",
                    if from { "from" } else { "to" },
                    if from { "FROM STDIN" } else { "TO STDOUT" }
                ),
            ))
        }
        _ => {
            cur.at -= 1;
            return Err(cur.error_here());
        }
    }
    let options = parse_options(&mut cur)?;
    // PostgreSQL's grammar takes the condition, and refuses it with COPY TO, before the
    // options are checked; `COPY (query) TO` has no WHERE in its grammar at all.
    let filter = match cur.peek().cloned() {
        Some(Token::Where { at, text_at, text }) => {
            if matches!(source, CopySource::Query(_)) {
                let word: String = sql.chars().skip(at).take("where".len()).collect();
                return Err(syntax_error(&word).at(Some(at + 1)));
            }
            cur.at += 1;
            crate::parse_copy_filter(&text).map_err(|e| shift_position(e, text_at))?;
            if !from {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "WHERE clause not allowed with COPY TO",
                )
                .at(Some(at + 1)));
            }
            Some(CopyFilter {
                text,
                offset: text_at,
            })
        }
        _ => None,
    };
    check_direction(&options, from)?;
    if cur.peek().is_some() {
        return Err(cur.error_here());
    }
    Ok(CopyStatement {
        source,
        from,
        options,
        filter,
    })
}

/// An error about part of a statement, placed in the whole statement (`offset` characters
/// come before the part).
pub(crate) fn shift_position(mut e: SqlError, offset: usize) -> SqlError {
    e.position = e.position.map(|p| p + offset);
    e
}

/// Options that only one direction takes (PostgreSQL 16's messages).
fn check_direction(o: &CopyOptions, from: bool) -> Result<(), SqlError> {
    let wrong = |what: &str, direction: &str| {
        Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!("COPY {what} only available using {direction}"),
        ))
    };
    if from && o.force_quote.is_set() {
        return wrong("force quote", "COPY TO");
    }
    if !from && o.force_not_null.is_set() {
        return wrong("force not null", "COPY FROM");
    }
    if !from && o.force_null.is_set() {
        return wrong("force null", "COPY FROM");
    }
    if !from && o.header_match {
        return Err(SqlError::new(
            SYNTAX_ERROR,
            "cannot use \"match\" with HEADER in COPY TO",
        ));
    }
    if !from && o.freeze {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "COPY FREEZE cannot be used with COPY TO",
        ));
    }
    Ok(())
}

/// A single-byte option character (DELIMITER, QUOTE, ESCAPE).
fn one_byte(option: &str, value: &str) -> Result<u8, SqlError> {
    match value.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!("COPY {option} must be a single one-byte character"),
        )),
    }
}

#[derive(Default)]
struct RawOptions {
    format: Option<CopyFormat>,
    delimiter: Option<String>,
    null: Option<String>,
    header: Option<bool>,
    header_match: bool,
    quote: Option<String>,
    escape: Option<String>,
    force_quote: ForceColumns,
    force_not_null: ForceColumns,
    force_null: ForceColumns,
    freeze: bool,
}

/// A FORCE option's column list: `*` (FORCE_QUOTE only) or names, in parentheses in the
/// new syntax, bare in the old one.
fn force_columns(
    cur: &mut Cursor,
    star_allowed: bool,
    parenthesized: bool,
) -> Result<ForceColumns, SqlError> {
    if star_allowed && cur.eat_punct('*') {
        return Ok(ForceColumns::All);
    }
    let open = parenthesized && cur.eat_punct('(');
    if parenthesized && !open {
        return Err(cur.error_here());
    }
    let mut names = vec![cur.name()?];
    while cur.eat_punct(',') {
        names.push(cur.name()?);
    }
    if open && !cur.eat_punct(')') {
        return Err(cur.error_here());
    }
    Ok(ForceColumns::Named(names))
}

fn parse_options(cur: &mut Cursor) -> Result<CopyOptions, SqlError> {
    let mut raw = RawOptions::default();
    let with = cur.eat_word("with");
    if cur.eat_punct('(') {
        loop {
            let option = cur.name()?;
            parse_new_option(cur, &option, &mut raw)?;
            if cur.eat_punct(')') {
                break;
            }
            if !cur.eat_punct(',') {
                return Err(cur.error_here());
            }
        }
    } else {
        let _ = with;
        parse_old_options(cur, &mut raw)?;
    }
    finish_options(raw)
}

/// A boolean option value: absent (true), true/false/on/off/1/0.
fn option_bool(cur: &mut Cursor, option: &str) -> Result<bool, SqlError> {
    let value = match cur.peek().cloned() {
        None | Some(Token::Punct(',')) | Some(Token::Punct(')')) => return Ok(true),
        Some(Token::Word(w)) | Some(Token::Str(w)) | Some(Token::Number(w)) => w.to_lowercase(),
        Some(_) => return Err(cur.error_here()),
    };
    cur.at += 1;
    match value.as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => Err(SqlError::new(
            SYNTAX_ERROR,
            format!("{option} requires a Boolean value"),
        )),
    }
}

fn conflicting() -> SqlError {
    SqlError::new(SYNTAX_ERROR, "conflicting or redundant options")
}

fn parse_new_option(cur: &mut Cursor, option: &str, raw: &mut RawOptions) -> Result<(), SqlError> {
    match option {
        "format" => {
            let f = cur.name()?;
            if raw.format.is_some() {
                return Err(conflicting());
            }
            raw.format = Some(match f.as_str() {
                "text" => CopyFormat::Text,
                "csv" => CopyFormat::Csv,
                "binary" => CopyFormat::Binary,
                other => {
                    return Err(SqlError::new(
                        INVALID_PARAMETER_VALUE,
                        format!("COPY format \"{other}\" not recognized"),
                    ))
                }
            });
        }
        "freeze" => raw.freeze = option_bool(cur, "freeze")?,
        "delimiter" => raw.delimiter = Some(cur.string()?),
        "null" => raw.null = Some(cur.string()?),
        "header" => {
            if raw.header.is_some() {
                return Err(conflicting());
            }
            if cur.eat_word("match") {
                raw.header = Some(true);
                raw.header_match = true;
            } else {
                raw.header = Some(option_bool(cur, "header")?)
            }
        }
        "quote" => raw.quote = Some(cur.string()?),
        "escape" => raw.escape = Some(cur.string()?),
        "encoding" => {
            let e = cur.string()?;
            let e = e.to_ascii_lowercase().replace(['-', '_'], "");
            if e != "utf8" && e != "sqlascii" {
                return Err(SqlError::new(
                    FEATURE_NOT_SUPPORTED,
                    "COPY ENCODING other than UTF8 is not supported",
                ));
            }
        }
        "force_quote" => {
            if raw.force_quote.is_set() {
                return Err(conflicting());
            }
            raw.force_quote = force_columns(cur, true, true)?
        }
        "force_not_null" => {
            if raw.force_not_null.is_set() {
                return Err(conflicting());
            }
            raw.force_not_null = force_columns(cur, false, true)?
        }
        "force_null" => {
            if raw.force_null.is_set() {
                return Err(conflicting());
            }
            raw.force_null = force_columns(cur, false, true)?
        }
        "default" => {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                format!("COPY option \"{option}\" is not supported"),
            ))
        }
        other => {
            return Err(SqlError::new(
                SYNTAX_ERROR,
                format!("option \"{other}\" not recognized"),
            ))
        }
    }
    Ok(())
}

/// The pre-9.0 syntax: `[BINARY] [DELIMITER [AS] 'c'] [NULL [AS] 's'] [CSV [HEADER] [QUOTE
/// [AS] 'c'] [ESCAPE [AS] 'c']]`, in any order.
fn parse_old_options(cur: &mut Cursor, raw: &mut RawOptions) -> Result<(), SqlError> {
    loop {
        let Some(Token::Word(w)) = cur.peek().cloned() else {
            return Ok(());
        };
        match w.as_str() {
            "binary" => {
                cur.at += 1;
                raw.format = Some(CopyFormat::Binary);
            }
            "csv" => {
                cur.at += 1;
                raw.format = Some(CopyFormat::Csv);
            }
            "header" => {
                cur.at += 1;
                raw.header = Some(true);
            }
            "freeze" => {
                cur.at += 1;
                raw.freeze = true;
            }
            "delimiter" | "null" | "quote" | "escape" => {
                cur.at += 1;
                cur.eat_word("as");
                let value = cur.string()?;
                match w.as_str() {
                    "delimiter" => raw.delimiter = Some(value),
                    "null" => raw.null = Some(value),
                    "quote" => raw.quote = Some(value),
                    _ => raw.escape = Some(value),
                }
            }
            "force" => {
                cur.at += 1;
                if cur.eat_word("quote") {
                    raw.force_quote = force_columns(cur, true, false)?;
                } else if cur.eat_word("not") {
                    if !cur.eat_word("null") {
                        return Err(cur.error_here());
                    }
                    raw.force_not_null = force_columns(cur, false, false)?;
                } else if cur.eat_word("null") {
                    raw.force_null = force_columns(cur, false, false)?;
                } else {
                    return Err(cur.error_here());
                }
            }
            _ => return Ok(()),
        }
    }
}

fn finish_options(raw: RawOptions) -> Result<CopyOptions, SqlError> {
    let format = raw.format.unwrap_or(CopyFormat::Text);
    let mut o = CopyOptions::defaults(format);
    if format == CopyFormat::Binary {
        for (given, what) in [
            (raw.delimiter.is_some(), "DELIMITER"),
            (raw.null.is_some(), "NULL"),
            (raw.header.is_some(), "HEADER"),
        ] {
            if given {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    format!("cannot specify {what} in BINARY mode"),
                ));
            }
        }
    }
    for (given, what) in [
        (raw.force_quote.is_set(), "force quote"),
        (raw.force_not_null.is_set(), "force not null"),
        (raw.force_null.is_set(), "force null"),
    ] {
        if given && format != CopyFormat::Csv {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                format!("COPY {what} available only in CSV mode"),
            ));
        }
    }
    o.header_match = raw.header_match;
    o.freeze = raw.freeze;
    o.force_quote = raw.force_quote;
    o.force_not_null = raw.force_not_null;
    o.force_null = raw.force_null;
    if let Some(d) = &raw.delimiter {
        o.delimiter = one_byte("delimiter", d)?;
    }
    if let Some(n) = raw.null {
        o.null = n;
    }
    if let Some(h) = raw.header {
        o.header = h;
    }
    if format != CopyFormat::Csv && (raw.quote.is_some() || raw.escape.is_some()) {
        let which = if raw.quote.is_some() {
            "quote"
        } else {
            "escape"
        };
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            format!("COPY {which} available only in CSV mode"),
        ));
    }
    if let Some(q) = &raw.quote {
        o.quote = one_byte("quote", q)?;
    }
    o.escape = match &raw.escape {
        Some(e) => one_byte("escape", e)?,
        None => o.quote,
    };
    if matches!(o.delimiter, b'\r' | b'\n') {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            "COPY delimiter cannot be newline or carriage return",
        ));
    }
    if o.null.contains(['\r', '\n']) {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            "COPY null representation cannot use newline or carriage return",
        ));
    }
    if format == CopyFormat::Text && (o.delimiter == b'\\' || o.delimiter.is_ascii_alphanumeric()) {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            format!(
                "COPY delimiter cannot be \"{}\"",
                (o.delimiter as char).escape_default()
            ),
        ));
    }
    if format == CopyFormat::Csv && o.delimiter == o.quote {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            "COPY delimiter and quote must be different",
        ));
    }
    if o.null.as_bytes().contains(&o.delimiter) {
        return Err(SqlError::new(
            INVALID_PARAMETER_VALUE,
            "COPY delimiter must not appear in the NULL specification",
        ));
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Records and fields.

/// One field of a record: None is NULL.
/// One field of a record: None for the NULL string; the record's own bytes when it needs
/// no unescaping (no allocation per field for the usual record).
type Field<'a> = Option<std::borrow::Cow<'a, str>>;

fn bad_format(message: impl Into<String>) -> SqlError {
    SqlError::new(BAD_COPY_FILE_FORMAT, message)
}

/// Splits a text-format line (no line terminator) into fields, applying backslash escapes;
/// a field whose raw text is the NULL string is NULL.
pub(crate) fn split_text<'a>(line: &'a [u8], o: &CopyOptions) -> Result<Vec<Field<'a>>, SqlError> {
    let mut fields = Vec::new();
    let mut start = 0;
    loop {
        // The raw field runs to the next unescaped delimiter.
        let mut i = start;
        while i < line.len() && line[i] != o.delimiter {
            i += if line[i] == b'\\' { 2 } else { 1 };
        }
        let end = i.min(line.len());
        let raw = &line[start..end];
        if raw == o.null.as_bytes() {
            fields.push(None);
        } else {
            fields.push(Some(unescape_text(raw)?));
        }
        if end >= line.len() {
            return Ok(fields);
        }
        start = end + 1;
    }
}

fn unescape_text(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, SqlError> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|e| invalid_utf8(raw[e.valid_up_to()]));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d) if d.is_ascii_hexdigit() => {
                            value = value * 16 + (*d as char).to_digit(16).unwrap_or(0);
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    utf8(out).map(std::borrow::Cow::Owned)
}

fn utf8(bytes: Vec<u8>) -> Result<String, SqlError> {
    String::from_utf8(bytes).map_err(|e| invalid_utf8(e.as_bytes()[e.utf8_error().valid_up_to()]))
}

fn invalid_utf8(bad: u8) -> SqlError {
    SqlError::new(
        "22021",
        format!("invalid byte sequence for encoding \"UTF8\": 0x{bad:02x}"),
    )
}

/// FORCE_NOT_NULL and FORCE_NULL per field of a CSV record (missing: not forced).
#[derive(Clone, Copy, Default)]
pub(crate) struct CsvForce<'a> {
    /// The NULL string reads as itself.
    pub not_null: &'a [bool],
    /// The NULL string reads as NULL even quoted.
    pub null: &'a [bool],
}

/// Splits a CSV record (quoted newlines included, no final terminator) into fields.
pub(crate) fn split_csv(
    record: &[u8],
    o: &CopyOptions,
    force: CsvForce,
) -> Result<Vec<Field<'static>>, SqlError> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let mut value = Vec::new();
        let mut quoted = false;
        let start = i;
        loop {
            if i >= record.len() || record[i] == o.delimiter {
                break;
            }
            if record[i] == o.quote {
                quoted = true;
                i += 1;
                loop {
                    match record.get(i) {
                        None => return Err(bad_format("unterminated CSV quoted field")),
                        Some(&b) if b == o.escape && record.get(i + 1) == Some(&o.quote) => {
                            value.push(o.quote);
                            i += 2;
                        }
                        Some(&b)
                            if b == o.escape
                                && o.escape != o.quote
                                && record.get(i + 1) == Some(&o.escape) =>
                        {
                            value.push(o.escape);
                            i += 2;
                        }
                        Some(&b) if b == o.quote => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            value.push(b);
                            i += 1;
                        }
                    }
                }
            } else {
                value.push(record[i]);
                i += 1;
            }
        }
        let raw = &record[start..i];
        let k = fields.len();
        let forced = |flags: &[bool]| flags.get(k).copied().unwrap_or(false);
        let is_null = if quoted {
            forced(force.null) && value == o.null.as_bytes()
        } else {
            raw == o.null.as_bytes() && !forced(force.not_null)
        };
        if is_null {
            fields.push(None);
        } else {
            fields.push(Some(utf8(value)?.into()));
        }
        if i >= record.len() {
            return Ok(fields);
        }
        i += 1;
    }
}

/// Where the next CSV record ends in `data` (the index of its terminating newline), honouring
/// quotes; None when the record is not complete yet.
fn csv_record_end(data: &[u8], o: &CopyOptions) -> Option<usize> {
    match csv_scan(data, o, 0, false) {
        CsvScan::End(end) => Some(end),
        CsvScan::More { .. } => None,
    }
}

/// Where a CSV scan stopped.
#[derive(Debug, PartialEq, Eq)]
enum CsvScan {
    /// The record ends at this newline.
    End(usize),
    /// No end yet: the next scan resumes at `resume` (its last byte is scanned again, so an
    /// escape split from what it escapes is read whole) in this quote state.
    More { resume: usize, in_quote: bool },
}

/// [`csv_record_end`] from `from`, in quote state `in_quote` there: a record that arrives in
/// many chunks is scanned once, not once per chunk.
fn csv_scan(data: &[u8], o: &CopyOptions, from: usize, in_quote: bool) -> CsvScan {
    let mut in_quote = in_quote;
    let mut i = from;
    let mut last = (from, in_quote);
    while i < data.len() {
        last = (i, in_quote);
        let b = data[i];
        if in_quote {
            if b == o.escape
                && o.escape != o.quote
                && data
                    .get(i + 1)
                    .is_some_and(|&next| next == o.quote || next == o.escape)
            {
                i += 2;
                continue;
            }
            if b == o.quote {
                in_quote = false;
            }
        } else if b == o.quote {
            in_quote = true;
        } else if b == b'\n' {
            return CsvScan::End(i);
        }
        i += 1;
    }
    CsvScan::More {
        resume: last.0,
        in_quote: last.1,
    }
}

// ---------------------------------------------------------------------------------------
// The binary format.

/// The binary format's signature: `PGCOPY\n\377\r\n\0`.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Header flag bit 16: every tuple carries an OID (not written since PostgreSQL 12).
const BINARY_FLAG_OIDS: u32 = 1 << 16;
/// Flag bits 16-31 are critical: a reader must refuse what it does not know.
const BINARY_CRITICAL_FLAGS: u32 = 0xffff_0000;

/// The length of the binary file header at the start of `data` (signature, flags, header
/// extension); None while incomplete.
fn binary_header_len(data: &[u8]) -> Result<Option<usize>, SqlError> {
    const FIXED: usize = 11 + 4 + 4;
    let signature_seen = data.len().min(BINARY_SIGNATURE.len());
    if data[..signature_seen] != BINARY_SIGNATURE[..signature_seen] {
        return Err(bad_format("COPY file signature not recognized"));
    }
    if data.len() < FIXED {
        return Ok(None);
    }
    let flags = u32::from_be_bytes(data[11..15].try_into().expect("4 bytes"));
    if flags & BINARY_FLAG_OIDS != 0 {
        return Err(bad_format("invalid COPY file header (WITH OIDS)"));
    }
    if flags & BINARY_CRITICAL_FLAGS != 0 {
        return Err(bad_format(
            "unrecognized critical flags in COPY file header",
        ));
    }
    let extension = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
    if extension > COPY_RECORD_BYTES_MAX {
        return Err(bad_format("invalid COPY file header (wrong length)"));
    }
    Ok((data.len() >= FIXED + extension).then_some(FIXED + extension))
}

/// One binary tuple at the start of `data`: the bytes it takes and its fields (None: the
/// trailer); None while incomplete.
#[allow(clippy::type_complexity)]
fn binary_tuple(
    data: &[u8],
    columns: usize,
) -> Result<Option<(usize, Option<Vec<Option<&[u8]>>>)>, SqlError> {
    let Some(count) = data.get(..2) else {
        return Ok(None);
    };
    let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
    if count == -1 {
        return Ok(Some((2, None)));
    }
    if usize::try_from(count).ok() != Some(columns) {
        return Err(bad_format(format!(
            "row field count is {count}, expected {columns}"
        )));
    }
    let mut at = 2;
    let mut fields = Vec::with_capacity(columns);
    for _ in 0..columns {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        at += 4;
        if len == -1 {
            fields.push(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| bad_format("invalid field size"))?;
        if len > COPY_RECORD_BYTES_MAX {
            return Err(bad_format("invalid field size"));
        }
        let Some(bytes) = data.get(at..at + len) else {
            return Ok(None);
        };
        fields.push(Some(bytes));
        at += len;
    }
    Ok(Some((at, Some(fields))))
}

/// The binary file header a COPY TO writes: no flags, no extension.
fn binary_header() -> Vec<u8> {
    let mut out = BINARY_SIGNATURE.to_vec();
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// Appends one row in the binary format; `oids` are the columns' types.
fn encode_binary_row(
    out: &mut Vec<u8>,
    row: &[Option<String>],
    oids: &[u32],
) -> Result<(), SqlError> {
    let count = i16::try_from(row.len())
        .map_err(|_| SqlError::new(PROGRAM_LIMIT_EXCEEDED, "too many columns for binary COPY"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (field, &oid) in row.iter().zip(oids) {
        let Some(text) = field else {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        };
        let len_at = out.len();
        out.extend_from_slice(&0i32.to_be_bytes());
        crate::pgbinary::text_to_binary(oid, text, out).map_err(|_| {
            SqlError::new(
                UNDEFINED_FUNCTION,
                format!(
                    "no binary output function available for type {}",
                    crate::pgcatalog::format_type(oid, -1)
                ),
            )
        })?;
        let len = i32::try_from(out.len() - len_at - 4).map_err(|_| {
            SqlError::new(PROGRAM_LIMIT_EXCEEDED, "a binary COPY field is too long")
        })?;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Loading.

/// What turns a record into a checked row: the read-only part of a COPY FROM, shared with
/// the helper thread that parses batches of records off the shard ([`Cluster::offload`]).
struct RecordReader {
    table: Arc<Table>,
    /// Table column of each input field.
    targets: Vec<usize>,
    /// The fields are every column, in order (the usual COPY): no defaults to fill in.
    targets_all_in_order: bool,
    options: CopyOptions,
    env: Env,
    /// Bound DEFAULT of each column not among the targets (None: NULL).
    defaults: Vec<Option<Bound>>,
    checks: Vec<(String, Bound)>,
    /// COPY FROM's WHERE, bound over the table's columns: a row it is not true for is
    /// skipped (before the constraints are checked, as PostgreSQL does).
    filter: Option<Bound>,
    /// CSV FORCE_NOT_NULL and FORCE_NULL, per input field.
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
}

/// A COPY FROM STDIN in progress.
pub struct CopyLoader {
    reader: Arc<RecordReader>,
    /// The table's secondary indexes, kept with its rows.
    indexes: Vec<crate::index::IndexSpec>,
    /// Bytes of an incomplete record carried to the next chunk.
    partial: Vec<u8>,
    /// How far into `partial` the search for the record's end got (and, for CSV, whether it
    /// was inside quotes there): each byte of a long record is scanned about once.
    scanned: usize,
    scan_in_quote: bool,
    /// Records read so far (the header included): the line number of errors.
    line: u64,
    /// The end-of-data marker (`\.`) was seen: the rest is ignored.
    ended: bool,
    /// Binary format: the file header has been read.
    binary_header_read: bool,
    /// Rows waiting for the next batch, with the line each came from.
    pending: Vec<(u64, RowOp)>,
    /// The database the COPY runs in: its tables' foreign keys name referenced tables there.
    database: String,
    /// (shard, key) of every row written, to delete them again if the COPY fails.
    written: Vec<(usize, Bytes)>,
    rows: u64,
    /// Rows gathered per shard for [`Cluster::ingest`], when the COPY writes straight into
    /// the tables (None: it writes through the shards' write path).
    ingest: Option<IngestBuffer>,
    /// An ingesting text or CSV COPY has its records parsed off the shard
    /// ([`Cluster::offload`]), a batch at a time, while the shard reads the next batch and
    /// answers its other clients: the records gathered for the next batch.
    batch: Option<RecordBatch>,
    /// The batches being parsed, oldest first.
    parsing: std::collections::VecDeque<
        std::pin::Pin<Box<dyn std::future::Future<Output = ParsedBatch>>>,
    >,
}

/// Records parsed per batch off the shard: enough that handing a batch over costs little
/// beside parsing it, few enough that the last batch (parsed while the shard waits) is short.
const OFFLOAD_BATCH_RECORDS: usize = 16_384;
/// Batches handed to the helper and not yet taken back, at most. With one, the helper
/// idled while the shard parsed the next batch itself and gathered the one after: it was
/// busy about half of a `pgbench -i` COPY, and the shard all of it (it also decodes a
/// CopyData message per row). With two, the shard parses a batch itself only when the
/// helper has fallen behind.
const OFFLOAD_BATCHES_IN_FLIGHT: usize = 2;
/// Bytes of records per batch at most, so that long records keep the rows in flight (the
/// batch gathered, the ones on the helper, their staged rows) within a few of these, beside
/// [`INGEST_BUFFER_BYTES`].
const OFFLOAD_BATCH_BYTES: usize = 8 << 20;

/// Records of an offloading COPY, back to back, for the helper thread to parse.
#[derive(Default)]
struct RecordBatch {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
    /// The line of the first record.
    first_line: u64,
}

impl RecordBatch {
    fn push(&mut self, line: u64, record: &[u8]) {
        if self.ends.is_empty() {
            self.first_line = line;
        }
        debug_assert_eq!(self.first_line + self.ends.len() as u64, line);
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Parses each record into a checked row and hands it, with its key bytes, to `stage`.
    /// Stops at the first bad record (its error in its line's context); returns the rows
    /// staged (COPY's WHERE may skip some).
    fn parse_into(
        &self,
        reader: &RecordReader,
        mut stage: impl FnMut(&[u8], &[Datum]) -> Result<(), SqlError>,
    ) -> Result<u64, SqlError> {
        let mut rows = 0;
        let mut key_bytes = Vec::new();
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            let line = self.first_line + i as u64;
            let record = &self.bytes[start..end];
            start = end;
            let Some(row) = reader.row_of_record(line, record)? else {
                continue;
            };
            let in_context = |e| with_context(e, &reader.table.name, line, None);
            stmt::key_bytes_into(&reader.table, &row, &mut key_bytes).map_err(in_context)?;
            stage(&key_bytes, &row).map_err(in_context)?;
            rows += 1;
        }
        Ok(rows)
    }
}

/// What the helper thread hands back: the batch (emptied, for its memory), the rows it
/// staged, and how many (or the first bad record's error).
struct ParsedBatch {
    batch: RecordBatch,
    staged: PackedEntries,
    rows: Result<u64, SqlError>,
}

/// The helper thread's side of an offloading COPY: the rows of `batch`'s records, staged
/// into `staged` by token. Stops at the first bad record, as a COPY does.
fn parse_batch(
    reader: &RecordReader,
    mut batch: RecordBatch,
    mut staged: PackedEntries,
) -> ParsedBatch {
    let rows = batch.parse_into(reader, |key_bytes, row| {
        stage_row(&mut staged, reader.table.id, key_bytes, row)
    });
    batch.clear();
    ParsedBatch {
        batch,
        staged,
        rows,
    }
}

/// Appends a row to `rows` under its key, ordered by its token.
fn stage_row(
    rows: &mut PackedEntries,
    table_id: u32,
    key_bytes: &[u8],
    row: &[Datum],
) -> Result<(), SqlError> {
    let token = rowcodec::row_token(key_bytes);
    rows.push_with(
        token,
        |out| rowcodec::row_key_into(out, table_id, token, key_bytes),
        |out| rowcodec::encode_row_into(out, row),
    )
    .map_err(crate::cluster::storage_error)
}

#[derive(Default)]
struct IngestBuffer {
    /// Each shard's rows, encoded straight into it, ordered by token once flushed (keys of
    /// one table order by their token first, so the sort compares integers and the key
    /// bytes only break ties).
    per_shard: BTreeMap<usize, PackedEntries>,
    bytes: usize,
    /// Rows added since the last batch ([`CopyLoader::batch_is_full`]).
    staged: usize,
    /// Where the helper thread stages a batch's rows before they join their shards' rows
    /// (one batch's worth, kept for its memory).
    scratch: PackedEntries,
}

impl IngestBuffer {
    fn stage<C: Cluster>(
        &mut self,
        cluster: &C,
        table_id: u32,
        key_bytes: &[u8],
        row: &[Datum],
    ) -> Result<(), SqlError> {
        let token = rowcodec::row_token(key_bytes);
        let rows = self
            .per_shard
            .entry(cluster.shard_of_token(token))
            .or_default();
        let before = rows.memory_bytes();
        stage_row(rows, table_id, key_bytes, row)?;
        self.bytes += rows.memory_bytes() - before;
        self.staged += 1;
        Ok(())
    }

    /// Where the helper thread stages a batch's rows, before they join their shards' rows.
    fn take_staging(&mut self) -> PackedEntries {
        std::mem::take(&mut self.scratch)
    }

    /// Takes back what [`Self::take_staging`] lent, with a parsed batch's rows in it: they
    /// join their shards' rows (one bulk copy when there is one shard).
    fn absorb<C: Cluster>(
        &mut self,
        cluster: &C,
        mut staged: PackedEntries,
    ) -> Result<(), SqlError> {
        if cluster.shard_count() == 1 {
            self.per_shard.entry(0).or_default().extend_from(&staged);
        } else {
            for i in 0..staged.len() {
                let (key, value) = staged.get(i);
                let token = staged.order(i);
                self.per_shard
                    .entry(cluster.shard_of_token(token))
                    .or_default()
                    .push(token, key, value)
                    .map_err(crate::cluster::storage_error)?;
            }
        }
        staged.clear();
        self.scratch = staged;
        self.bytes = self
            .per_shard
            .values()
            .map(PackedEntries::memory_bytes)
            .sum::<usize>()
            + self.scratch.memory_bytes();
        Ok(())
    }
}

impl std::fmt::Debug for CopyLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyLoader")
            .field("table", &self.reader.table.name)
            .field("line", &self.line)
            .field("rows", &self.rows)
            .finish()
    }
}

/// Binary data past the -1 trailer (PostgreSQL refuses it too).
fn after_trailer(table: &str, line: u64) -> SqlError {
    with_context(
        bad_format("received copy data after EOF marker"),
        table,
        line,
        None,
    )
}

/// A record as an error's CONTEXT shows it: its first 100 characters.
fn context_line(record: &[u8]) -> String {
    let text = String::from_utf8_lossy(record);
    let shown: String = text.chars().take(100).collect();
    let more = if text.chars().count() > 100 {
        "..."
    } else {
        ""
    };
    format!(": \"{shown}{more}\"")
}

/// The CONTEXT line PostgreSQL gives a COPY error: `COPY t, line 3`.
fn with_context(mut e: SqlError, table: &str, line: u64, detail: Option<String>) -> SqlError {
    let mut context = format!("COPY {table}, line {line}");
    if let Some(d) = detail {
        context.push_str(&d);
    }
    if e.context.is_none() {
        e.context = Some(context);
    }
    e
}

impl RecordReader {
    /// The row of data record `record` on line `line` (None: COPY's WHERE skips it).
    fn row_of_record(&self, line: u64, record: &[u8]) -> Result<Option<Vec<Datum>>, SqlError> {
        let force = CsvForce {
            not_null: &self.force_not_null,
            null: &self.force_null,
        };
        let fields = match self.options.format {
            CopyFormat::Csv => split_csv(record, &self.options, force),
            _ => split_text(record, &self.options),
        }
        .map_err(|e| with_context(e, &self.table.name, line, Some(context_line(record))))?;
        self.row_of_fields(line, fields, Some(record))
    }

    /// A record's fields, as text, checked against the columns and converted (`record`: its
    /// text, for an error's CONTEXT).
    fn row_of_fields(
        &self,
        line: u64,
        fields: Vec<Field>,
        record: Option<&[u8]>,
    ) -> Result<Option<Vec<Datum>>, SqlError> {
        let context = || record.map(context_line);
        // An empty line is one NULL field for a one-column COPY, else missing data.
        if fields.len() > self.targets.len() {
            return Err(with_context(
                bad_format("extra data after last expected column"),
                &self.table.name,
                line,
                context(),
            ));
        }
        if fields.len() < self.targets.len() {
            let missing = &self.table.columns[self.targets[fields.len()]].name;
            return Err(with_context(
                bad_format(format!("missing data for column \"{missing}\"")),
                &self.table.name,
                line,
                context(),
            ));
        }
        self.row_of(line, fields)
            .map_err(|e| with_context(e, &self.table.name, line, context()))
    }

    /// HEADER MATCH: the header line names the COPY's columns, in order.
    fn match_header(&self, fields: &[Field]) -> Result<(), SqlError> {
        if fields.len() != self.targets.len() {
            return Err(bad_format(format!(
                "wrong number of fields in header line: got {}, expected {}",
                fields.len(),
                self.targets.len()
            )));
        }
        for (i, (field, &t)) in fields.iter().zip(&self.targets).enumerate() {
            let expected = &self.table.columns[t].name;
            match field {
                None => {
                    return Err(bad_format(format!(
                        "column name mismatch in header line field {}: got null value (\"{}\"), expected \"{expected}\"",
                        i + 1,
                        self.options.null
                    )))
                }
                Some(name) if name != expected => {
                    return Err(bad_format(format!(
                        "column name mismatch in header line field {}: got \"{name}\", expected \"{expected}\"",
                        i + 1
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The table row a record gives (None: COPY's WHERE skips it), checked against the
    /// table's constraints.
    fn row_of(&self, line: u64, fields: Vec<Field>) -> Result<Option<Vec<Datum>>, SqlError> {
        let width = self.table.columns.len();
        if self.targets_all_in_order {
            let mut full = Vec::with_capacity(width);
            for (field, column) in fields.into_iter().zip(&self.table.columns) {
                full.push(self.field_value(line, field, column)?);
            }
            return self.filter_and_verify(full);
        }
        let mut row: Vec<Option<Datum>> = vec![None; width];
        for (field, &t) in fields.into_iter().zip(&self.targets) {
            row[t] = Some(self.field_value(line, field, &self.table.columns[t])?);
        }
        let mut full = Vec::with_capacity(row.len());
        for (i, v) in row.into_iter().enumerate() {
            full.push(match (v, &self.defaults[i]) {
                (Some(v), _) => v,
                (None, None) => Datum::Null,
                (None, Some(b)) => {
                    let v = eval(b, &Eval::new(&self.env))?;
                    stmt::assign(v, b.ty, &self.table.columns[i], &self.env.style)?
                }
            });
        }
        self.filter_and_verify(full)
    }

    fn filter_and_verify(&self, row: Vec<Datum>) -> Result<Option<Vec<Datum>>, SqlError> {
        if !crate::expr::passes(self.filter.as_ref(), &self.env, &row)? {
            return Ok(None);
        }
        stmt::verify_row(&self.table, &self.checks, &row, &self.env)?;
        Ok(Some(row))
    }

    /// A field read by its column type's input function with the column's typmod, as
    /// PostgreSQL's COPY reads it: the value is then of the column's type and length
    /// already, and no assignment cast follows.
    fn field_value(&self, line: u64, field: Field, column: &ColumnDef) -> Result<Datum, SqlError> {
        let Some(text) = field else {
            return Ok(Datum::Null);
        };
        types::input(column.ty, column.typmod, &text, &self.env.style).map_err(|e| {
            let shown: String = text.chars().take(100).collect();
            with_context(
                e,
                &self.table.name,
                line,
                Some(format!(", column {}: \"{shown}\"", column.name)),
            )
        })
    }
}

impl CopyLoader {
    fn new(
        session: &Session,
        cluster_catalog: &crate::catalog::Catalog,
        table: Arc<Table>,
        targets: Vec<usize>,
        options: CopyOptions,
        filter: Option<&CopyFilter>,
    ) -> Result<CopyLoader, SqlError> {
        let env = Env::of(session);
        let filter = filter
            .map(|f| {
                stmt::bind_copy_filter(session, cluster_catalog, &table, &f.text)
                    .map_err(|e| shift_position(e, f.offset))
            })
            .transpose()?;
        let mut defaults = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            defaults.push(match (&column.default, targets.contains(&i)) {
                (Some(text), false) => Some(stmt::bind_table_expr(
                    session,
                    cluster_catalog,
                    &table,
                    text,
                )?),
                _ => None,
            });
        }
        let checks = stmt::bind_checks(session, cluster_catalog, &table)?;
        let indexes = crate::index::specs_for(cluster_catalog, &table);
        let names: Vec<String> = targets
            .iter()
            .map(|&t| table.columns[t].name.clone())
            .collect();
        let force_not_null =
            options
                .force_not_null
                .flags("FORCE_NOT_NULL", &names, Some(&table))?;
        let force_null = options
            .force_null
            .flags("FORCE_NULL", &names, Some(&table))?;
        Ok(CopyLoader {
            reader: Arc::new(RecordReader {
                force_not_null,
                force_null,
                targets_all_in_order: targets.iter().copied().eq(0..table.columns.len()),
                table,
                targets,
                options,
                env,
                defaults,
                checks,
                filter,
            }),
            binary_header_read: false,
            indexes,
            partial: Vec::new(),
            scanned: 0,
            scan_in_quote: false,
            line: 0,
            ended: false,
            pending: Vec::new(),
            database: session.database().to_string(),
            written: Vec::new(),
            rows: 0,
            ingest: None,
            batch: None,
            parsing: std::collections::VecDeque::new(),
        })
    }

    /// Takes the next chunk of CopyData; writes complete batches.
    pub async fn feed<C: Cluster>(&mut self, cluster: &C, data: &[u8]) -> Result<(), SqlError> {
        if self.ended {
            if self.reader.options.format == CopyFormat::Binary && !data.is_empty() {
                return Err(after_trailer(&self.reader.table.name, self.line + 1));
            }
            return Ok(());
        }
        self.partial.extend_from_slice(data);
        if self.reader.options.format == CopyFormat::Binary {
            return self.feed_binary(cluster).await;
        }
        let mut buffer = std::mem::take(&mut self.partial);
        let mut start = 0;
        loop {
            let rest = &buffer[start..];
            let end = match self.reader.options.format {
                CopyFormat::Csv => {
                    match csv_scan(rest, &self.reader.options, self.scanned, self.scan_in_quote) {
                        CsvScan::End(end) => Some(end),
                        CsvScan::More { resume, in_quote } => {
                            (self.scanned, self.scan_in_quote) = (resume, in_quote);
                            None
                        }
                    }
                }
                _ => match rest[self.scanned..].iter().position(|&b| b == b'\n') {
                    Some(at) => Some(self.scanned + at),
                    None => {
                        self.scanned = rest.len();
                        None
                    }
                },
            };
            let Some(end) = end else { break };
            (self.scanned, self.scan_in_quote) = (0, false);
            self.record(cluster, &rest[..end])?;
            start += end + 1;
            if self.ended {
                break;
            }
            if self.batch_is_full() {
                self.write_pending(cluster).await?;
            }
        }
        if !self.ended {
            // Only the unfinished record moves (none when it is all there is).
            buffer.drain(..start);
            self.partial = buffer;
            if let Err(e) = self.check_partial_size() {
                self.parse_gathered(cluster).await?;
                return Err(e);
            }
        }
        Ok(())
    }

    fn check_partial_size(&self) -> Result<(), SqlError> {
        if self.partial.len() > COPY_RECORD_BYTES_MAX {
            return Err(with_context(
                SqlError::new(
                    PROGRAM_LIMIT_EXCEEDED,
                    format!("a COPY record is longer than {COPY_RECORD_BYTES_MAX} bytes"),
                ),
                &self.reader.table.name,
                self.line + 1,
                None,
            ));
        }
        Ok(())
    }

    /// Binary format: the header once, then every complete tuple in the buffer.
    async fn feed_binary<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        let mut buffer = std::mem::take(&mut self.partial);
        let mut at = 0;
        if !self.binary_header_read {
            match binary_header_len(&buffer)
                .map_err(|e| with_context(e, &self.reader.table.name, 1, None))?
            {
                Some(n) => {
                    at = n;
                    self.binary_header_read = true;
                }
                None => {
                    self.partial = buffer;
                    return self.check_partial_size();
                }
            }
        }
        while !self.ended {
            let tuple = binary_tuple(&buffer[at..], self.reader.targets.len())
                .map_err(|e| with_context(e, &self.reader.table.name, self.line + 1, None))?;
            let Some((used, fields)) = tuple else { break };
            at += used;
            let Some(fields) = fields else {
                self.ended = true;
                if at < buffer.len() {
                    return Err(after_trailer(&self.reader.table.name, self.line + 1));
                }
                break;
            };
            self.line += 1;
            let mut texts = Vec::with_capacity(fields.len());
            for (bytes, &t) in fields.into_iter().zip(&self.reader.targets) {
                let column = &self.reader.table.columns[t];
                texts.push(match bytes {
                    None => None,
                    Some(b) => Some(
                        crate::pgbinary::binary_to_text(column.ty.oid(), b)
                            .map_err(|e| {
                                let e = match e {
                                    crate::pgbinary::BinaryError::NoReceive(_) => SqlError::new(
                                        UNDEFINED_FUNCTION,
                                        format!(
                                            "no binary input function available for type {}",
                                            column.ty.sql_name()
                                        ),
                                    ),
                                    crate::pgbinary::BinaryError::InvalidUtf8(_) => {
                                        SqlError::new("22021", e.to_string())
                                    }
                                    _ => SqlError::new("22P03", "incorrect binary data format"),
                                };
                                with_context(
                                    e,
                                    &self.reader.table.name,
                                    self.line,
                                    Some(format!(", column {}", column.name)),
                                )
                            })?
                            .into(),
                    ),
                });
            }
            self.push_fields(cluster, texts, None)?;
            if self.batch_is_full() {
                self.write_pending(cluster).await?;
            }
        }
        if !self.ended {
            buffer.drain(..at);
            self.partial = buffer;
            self.check_partial_size()?;
        }
        Ok(())
    }

    /// CopyDone: the last record (without a final newline), the last batch; the command tag.
    pub async fn finish<C: Cluster>(
        mut self,
        session: &mut Session,
        cluster: &C,
    ) -> Result<StatementResult, SqlError> {
        let result = self.finish_inner(cluster).await;
        if let Err(e) = result {
            self.undo(cluster).await;
            return Err(e);
        }
        stmt::note_write(session);
        Ok(StatementResult::Command {
            tag: format!("COPY {}", self.rows),
            changed_parameters: Vec::new(),
            notices: Vec::new(),
        })
    }

    async fn finish_inner<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        if self.reader.options.format == CopyFormat::Binary {
            // Data may end at a tuple boundary without the trailer, as PostgreSQL allows.
            if !self.binary_header_read {
                return Err(with_context(
                    bad_format("COPY file signature not recognized"),
                    &self.reader.table.name,
                    1,
                    None,
                ));
            }
            if !self.ended && !self.partial.is_empty() {
                return Err(with_context(
                    bad_format("unexpected EOF in COPY data"),
                    &self.reader.table.name,
                    self.line + 1,
                    None,
                ));
            }
            self.write_pending(cluster).await?;
            return self.flush_ingest(cluster).await;
        }
        if !self.ended && !self.partial.is_empty() {
            // The gathered records come first: a bad one among them is the error to report.
            self.parse_gathered(cluster).await?;
            let last = std::mem::take(&mut self.partial);
            if self.reader.options.format == CopyFormat::Csv
                && csv_record_end(&last, &self.reader.options).is_none()
            {
                // An open quote at the end of the data.
                let mut probe = last.clone();
                probe.push(b'\n');
                if csv_record_end(&probe, &self.reader.options).is_none() {
                    return Err(with_context(
                        bad_format("unterminated CSV quoted field"),
                        &self.reader.table.name,
                        self.line + 1,
                        None,
                    ));
                }
            }
            self.record(cluster, &last)?;
        }
        self.write_pending(cluster).await?;
        self.flush_ingest(cluster).await
    }

    /// Takes back the batches the helper has finished, then hands it the gathered records
    /// (an offloading COPY; nothing to do otherwise).
    async fn hand_over_batch<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        if self.batch.as_ref().is_none_or(|b| b.ends.is_empty()) {
            return Ok(());
        }
        let mut spare = None;
        while let Some(oldest) = self.parsing.front_mut() {
            let Some(parsed) = futures_util::FutureExt::now_or_never(oldest.as_mut()) else {
                break;
            };
            self.parsing.pop_front();
            spare = Some(self.absorb_parsed(cluster, parsed)?);
        }
        // While the helper has its fill of batches, this shard parses the next one itself
        // rather than wait: both cores parse.
        if self.parsing.len() >= OFFLOAD_BATCHES_IN_FLIGHT {
            return self.parse_here(cluster).await;
        }
        let (Some(batch), Some(buffer)) = (self.batch.as_mut(), self.ingest.as_mut()) else {
            unreachable!("an offloading COPY gathers records and ingests")
        };
        let batch = std::mem::replace(batch, spare.unwrap_or_default());
        let staged = buffer.take_staging();
        let reader = self.reader.clone();
        let parsing = cluster.offload(move || parse_batch(&reader, batch, staged));
        self.parsing.push_back(parsing);
        // A turn for the shard's other tasks between batches, even while one large chunk of
        // CopyData keeps this task busy (and, on a shard without a helper thread of its
        // own, for the task that hands the batch to glommio's blocking pool).
        crate::cluster::yield_once().await;
        Ok(())
    }

    /// Every record gathered so far parsed (an offloading COPY): a bad one among them is
    /// reported before an error found later in the stream.
    async fn parse_gathered<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        self.hand_over_batch(cluster).await?;
        self.collect_parsed(cluster).await
    }

    /// Parses the gathered batch on this shard, straight into the shards' rows. A bad record
    /// here is reported only if the batches the helper is parsing (earlier lines) have none.
    async fn parse_here<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        let reader = self.reader.clone();
        let (Some(batch), Some(buffer)) = (self.batch.as_mut(), self.ingest.as_mut()) else {
            unreachable!("an offloading COPY gathers records and ingests")
        };
        let parsed = batch.parse_into(&reader, |key_bytes, row| {
            buffer.stage(cluster, reader.table.id, key_bytes, row)
        });
        batch.clear();
        self.rows += std::mem::take(&mut buffer.staged) as u64;
        if let Err(e) = parsed {
            self.collect_parsed(cluster).await?;
            return Err(e);
        }
        Ok(())
    }

    /// The rows of the batches being parsed join the shards' buffers, oldest first (so the
    /// first bad record is the one reported).
    async fn collect_parsed<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        while let Some(parsing) = self.parsing.pop_front() {
            let parsed = parsing.await;
            self.absorb_parsed(cluster, parsed)?;
        }
        Ok(())
    }

    /// A parsed batch's rows join the shards' buffers; returns the batch, emptied, for the
    /// next one to reuse.
    fn absorb_parsed<C: Cluster>(
        &mut self,
        cluster: &C,
        parsed: ParsedBatch,
    ) -> Result<RecordBatch, SqlError> {
        let buffer = self.ingest.as_mut().expect("an offloading COPY ingests");
        buffer.absorb(cluster, parsed.staged)?;
        self.rows += parsed.rows?;
        Ok(parsed.batch)
    }

    /// Sorts the gathered rows of each shard and writes them into its tables.
    async fn flush_ingest<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        self.collect_parsed(cluster).await?;
        let Some(buffer) = self.ingest.as_mut() else {
            return Ok(());
        };
        let per_shard = std::mem::take(&mut buffer.per_shard);
        buffer.bytes = 0;
        let ingests = per_shard.into_iter().map(|(shard, rows)| async move {
            let rows = crate::cluster::sort_on_both_cores(cluster, rows).await;
            cluster.ingest(shard, rows).await
        });
        for result in futures_util::future::join_all(ingests).await {
            result.map_err(|e| with_context(e, &self.reader.table.name, self.line, None))?;
        }
        Ok(())
    }

    /// The COPY failed (a bad record, CopyFail, a lost connection): deletes what it wrote.
    pub async fn abort<C: Cluster>(mut self, cluster: &C) {
        self.undo(cluster).await;
    }

    async fn undo<C: Cluster>(&mut self, cluster: &C) {
        self.pending.clear();
        // The helper thread's batches still here are waited for (not one that a dropped
        // `collect_parsed` was awaiting, but a batch's parse touches nothing outside it).
        for parsing in std::mem::take(&mut self.parsing) {
            parsing.await;
        }
        self.batch = None;
        // Ingested rows live under an id the block's rollback (which a failed COPY forces)
        // makes garbage.
        self.ingest = None;
        let mut per_shard: BTreeMap<usize, Vec<RowOp>> = BTreeMap::new();
        for (shard, key) in self.written.drain(..) {
            per_shard
                .entry(shard)
                .or_default()
                .push(RowOp::Delete { key });
        }
        for (shard, ops) in per_shard {
            for chunk in ops.chunks(COPY_BATCH_ROWS * 4) {
                let request = WriteRequest {
                    ops: chunk.to_vec(),
                    constraint: String::new(),
                    indexes: self.indexes.clone(),
                    txn: crate::txn::write_ctx(cluster, shard, self.reader.table.id),
                };
                // Best effort: the COPY's own error is what the client hears; a shard that
                // cannot delete now has failed for good and is refusing every write.
                if let Ok(outcome) = cluster.write(shard, request).await {
                    let _ = stmt::settle_claims(cluster, &self.indexes, outcome.claims).await;
                }
            }
        }
    }

    /// One record (without its newline).
    fn record<C: Cluster>(&mut self, cluster: &C, mut record: &[u8]) -> Result<(), SqlError> {
        self.line += 1;
        if let [rest @ .., b'\r'] = record {
            record = rest;
        }
        if record == b"\\." {
            self.ended = true;
            return Ok(());
        }
        if self.line == 1 && self.reader.options.header {
            return self.header(record);
        }
        let line = self.line;
        if let Some(batch) = self.batch.as_mut() {
            batch.push(line, record);
            return Ok(());
        }
        let row = self.reader.row_of_record(self.line, record)?;
        self.stage(cluster, row)
    }

    /// The header line: skipped, or matched against the columns (HEADER MATCH).
    fn header(&self, record: &[u8]) -> Result<(), SqlError> {
        let reader = &self.reader;
        let no_force = CsvForce {
            not_null: &[],
            null: &[],
        };
        let fields = match reader.options.format {
            CopyFormat::Csv => split_csv(record, &reader.options, no_force),
            _ => split_text(record, &reader.options),
        };
        let in_context =
            |e| with_context(e, &reader.table.name, self.line, Some(context_line(record)));
        let fields = fields.map_err(in_context)?;
        if reader.options.header_match {
            reader.match_header(&fields).map_err(in_context)?;
        }
        Ok(())
    }

    /// One record's fields, as text (binary COPY): checked, converted and queued.
    fn push_fields<C: Cluster>(
        &mut self,
        cluster: &C,
        fields: Vec<Field>,
        record: Option<&[u8]>,
    ) -> Result<(), SqlError> {
        let row = self.reader.row_of_fields(self.line, fields, record)?;
        self.stage(cluster, row)
    }

    /// Queues a checked row (None: COPY's WHERE skipped it) for the next batch.
    fn stage<C: Cluster>(&mut self, cluster: &C, row: Option<Vec<Datum>>) -> Result<(), SqlError> {
        let Some(row) = row else {
            return Ok(());
        };
        let key_bytes = stmt::key_bytes_of(&self.reader.table, &row)
            .map_err(|e| with_context(e, &self.reader.table.name, self.line, None))?;
        if let Some(buffer) = self.ingest.as_mut() {
            return buffer
                .stage(cluster, self.reader.table.id, &key_bytes, &row)
                .map_err(|e| with_context(e, &self.reader.table.name, self.line, None));
        }
        let key = rowcodec::row_key(self.reader.table.id, &key_bytes);
        let value = rowcodec::encode_row(&row);
        // A hidden row id is unique by construction: no existence check for it.
        let op = if self.reader.table.primary_key.is_empty() {
            RowOp::Append { key, value }
        } else {
            RowOp::Insert {
                key,
                value,
                if_absent: false,
            }
        };
        self.pending.push((self.line, op)); // the shard is found when the batch is sent
        Ok(())
    }

    /// A batch of rows is ready to go to the shards.
    fn batch_is_full(&self) -> bool {
        if let Some(batch) = &self.batch {
            return batch.ends.len() >= OFFLOAD_BATCH_RECORDS
                || batch.bytes.len() >= OFFLOAD_BATCH_BYTES;
        }
        let staged = self.ingest.as_ref().map_or(0, |b| b.staged);
        self.pending.len() + staged >= COPY_BATCH_ROWS
    }

    async fn write_pending<C: Cluster>(&mut self, cluster: &C) -> Result<(), SqlError> {
        if let Some(buffer) = self.ingest.as_mut() {
            assert!(self.pending.is_empty(), "an ingesting COPY stages its rows");
            self.rows += std::mem::take(&mut buffer.staged) as u64;
            self.hand_over_batch(cluster).await?;
            if self
                .ingest
                .as_ref()
                .is_some_and(|b| b.bytes >= INGEST_BUFFER_BYTES)
            {
                self.flush_ingest(cluster).await?;
            }
            return Ok(());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        // The rows' referencing keys are checked once they are written (as PostgreSQL's
        // foreign key triggers run after the rows are in).
        let table = self.reader.table.clone();
        let referencing_rows = match table.foreign_keys.is_empty() {
            true => Vec::new(),
            false => self
                .pending
                .iter()
                .map(|(_, op)| match op {
                    RowOp::Insert { value, .. } | RowOp::Append { value, .. } => {
                        rowcodec::decode_row(value, table.columns.len()).map_err(|e| {
                            SqlError::new(
                                INTERNAL_ERROR,
                                format!("a COPY row does not decode: {e}"),
                            )
                        })
                    }
                    _ => unreachable!("COPY queues inserts and puts"),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mut per_shard: BTreeMap<usize, Vec<RowOp>> = BTreeMap::new();
        let mut keys: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        // Each row's line, for the CONTEXT of an error a shard reports about one row.
        let mut lines: Vec<(Bytes, u64)> = Vec::with_capacity(self.pending.len());
        for (line, op) in self.pending.drain(..) {
            let (RowOp::Insert { key, .. } | RowOp::Append { key, .. }) = &op else {
                unreachable!("COPY queues inserts and puts")
            };
            let token = rowcodec::storage_key_token(key).expect("a row key has a token");
            let shard = cluster.shard_of_token(token);
            keys.entry(shard).or_default().push(key.clone());
            lines.push((key.clone(), line));
            per_shard.entry(shard).or_default().push(op);
        }
        let constraint = self.reader.table.pkey_name();
        let shards: Vec<usize> = per_shard.keys().copied().collect();
        let futures = per_shard.into_iter().map(|(shard, ops)| {
            cluster.write(
                shard,
                WriteRequest {
                    ops,
                    constraint: constraint.clone(),
                    indexes: self.indexes.clone(),
                    txn: crate::txn::write_ctx(cluster, shard, self.reader.table.id),
                },
            )
        });
        let results = futures_util::future::join_all(futures).await;
        let mut first_error = None;
        let mut claims = Vec::new();
        for (shard, result) in shards.into_iter().zip(results) {
            match result {
                // One shard's request is one atomic batch: all of its rows, or none.
                Ok(outcome) => {
                    self.rows += outcome.applied;
                    claims.extend(outcome.claims);
                    let shard_keys = keys.remove(&shard).unwrap_or_default();
                    if self.written.len() + shard_keys.len() <= UNDO_KEYS_MAX {
                        self.written
                            .extend(shard_keys.into_iter().map(|k| (shard, k)));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() {
            if let Err(e) = stmt::settle_claims(cluster, &self.indexes, claims).await {
                first_error = Some(e);
            }
        }
        let Some(mut e) = first_error else {
            return crate::fkey::check_references(
                cluster,
                &self.database,
                &self.reader.env,
                &table,
                &referencing_rows,
                None,
            )
            .await;
        };
        // A duplicated row key names the line that brought it, as PostgreSQL's CONTEXT does.
        let mut line = self.line;
        if let Some(key) = e.take_conflict_key() {
            if let Some(&(_, at)) = lines.iter().find(|(row_key, _)| **row_key == *key) {
                line = at;
            }
            e.detail = crate::index::already_exists_detail(
                &cluster.catalog(),
                &key,
                &self.reader.env.style,
            );
        }
        Err(with_context(e, &self.reader.table.name, line, None))
    }
}

/// Starts a COPY FROM STDIN: resolves the table and columns; the protocol layer then sends
/// CopyInResponse and feeds the loader.
pub(crate) fn start_copy_in<C: Cluster>(
    session: &Session,
    cluster: &C,
    statement: CopyStatement,
) -> Result<StatementResult, SqlError> {
    let (table, targets) = resolve_target(session, cluster, &statement)?;
    let _ = table;
    Ok(StatementResult::CopyIn(CopyInStart {
        column_count: targets.len(),
        statement,
    }))
}

fn resolve_target<C: Cluster>(
    session: &Session,
    cluster: &C,
    statement: &CopyStatement,
) -> Result<(Arc<Table>, Vec<usize>), SqlError> {
    let CopySource::Table { name, columns } = &statement.source else {
        return Err(syntax_error("("));
    };
    let catalog = cluster.catalog();
    let object = sqlparser::ast::ObjectName::from(
        name.iter()
            .map(|n| sqlparser::ast::Ident::with_quote('"', n.clone()))
            .collect::<Vec<_>>(),
    );
    let positions = crate::expr::Positions::new("");
    let params = std::cell::RefCell::new(Vec::new());
    let planner = crate::plan::Planner::new(session, "", &positions, &catalog, &params);
    let table = planner.lookup_table(&object)?;
    let targets = if columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(columns.len());
        for c in columns {
            let i = table.column_index(c).ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_COLUMN,
                    format!(
                        "column \"{c}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })?;
            if t.contains(&i) {
                return Err(SqlError::new(
                    DUPLICATE_COLUMN,
                    format!("column \"{c}\" specified more than once"),
                ));
            }
            t.push(i);
        }
        t
    };
    Ok((table, targets))
}

/// The loader for a started COPY FROM STDIN.
pub fn copy_in_loader<C: Cluster>(
    session: &Session,
    cluster: &C,
    start: &CopyInStart,
) -> Result<CopyLoader, SqlError> {
    let (table, targets) = resolve_target(session, cluster, &start.statement)?;
    let freeze = start.statement.options.freeze;
    if freeze && !crate::txn::block_made_table(cluster, &table) {
        return Err(SqlError::new(
            "55000",
            "cannot perform COPY FREEZE because the table was not created or truncated in the current subtransaction",
        ));
    }
    let mut loader = CopyLoader::new(
        session,
        &cluster.catalog(),
        table,
        targets,
        start.statement.options.clone(),
        start.statement.filter.as_ref(),
    )?;
    if freeze
        && crate::txn::copy_may_ingest(cluster, &loader.reader.table, !loader.indexes.is_empty())
    {
        loader.ingest = Some(IngestBuffer::default());
        if loader.reader.options.format != CopyFormat::Binary {
            loader.batch = Some(RecordBatch::default());
        }
    }
    Ok(loader)
}

// ---------------------------------------------------------------------------------------
// COPY TO STDOUT.

/// The query a COPY TO runs.
fn copy_out_query(statement: &CopyStatement) -> String {
    match &statement.source {
        CopySource::Query(q) => q.clone(),
        CopySource::Table { name, columns } => {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let list = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let table = name.iter().map(|n| quote(n)).collect::<Vec<_>>().join(".");
            format!("SELECT {list} FROM {table}")
        }
    }
}

/// Encodes one row in the text or CSV format, newline included; `force_quote` per column
/// (CSV: quoted even when it need not be).
pub(crate) fn encode_copy_row(
    out: &mut Vec<u8>,
    row: &[Option<String>],
    o: &CopyOptions,
    force_quote: &[bool],
) {
    for (i, field) in row.iter().enumerate() {
        if i > 0 {
            out.push(o.delimiter);
        }
        match field {
            None => out.extend_from_slice(o.null.as_bytes()),
            Some(text) => match o.format {
                CopyFormat::Csv => {
                    let force = force_quote.get(i).copied().unwrap_or(false);
                    quote_csv(out, text.as_bytes(), o, force)
                }
                _ => escape_text(out, text.as_bytes(), o.delimiter),
            },
        }
    }
    out.push(b'\n');
}

fn escape_text(out: &mut Vec<u8>, text: &[u8], delimiter: u8) {
    for &b in text {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0b => out.extend_from_slice(b"\\v"),
            b if b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn quote_csv(out: &mut Vec<u8>, text: &[u8], o: &CopyOptions, force: bool) {
    // Quoted when it holds a delimiter, quote, newline, or would read back as NULL.
    let needs = force
        || text.is_empty() && o.null.is_empty()
        || text == o.null.as_bytes()
        || text == b"\\."
        || text
            .iter()
            .any(|&b| b == o.delimiter || b == o.quote || b == b'\n' || b == b'\r');
    if !needs {
        out.extend_from_slice(text);
        return;
    }
    out.push(o.quote);
    for &b in text {
        if b == o.quote || b == o.escape {
            out.push(o.escape);
        }
        out.push(b);
    }
    out.push(o.quote);
}

/// Runs a COPY TO STDOUT: the rows, encoded.
async fn run_copy_out<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    statement: &CopyStatement,
) -> Result<StatementResult, SqlError> {
    let sql = copy_out_query(statement);
    let mut parsed = crate::parse(&sql)?;
    if parsed.len() != 1 {
        return Err(syntax_error(";"));
    }
    let query = match parsed.pop() {
        Some(sqlparser::ast::Statement::Query(q)) => q,
        _ => {
            return Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                "COPY (query) TO takes a SELECT, VALUES or TABLE query",
            ))
        }
    };
    let result = stmt::run_query(session, cluster, &sql, &query, &stmt::Params::none()).await?;
    let StatementResult::Rows { columns, rows, .. } = result else {
        return Err(SqlError::new(INTERNAL_ERROR, "a query returned no rows"));
    };
    let o = &statement.options;
    let mut data = Vec::with_capacity(rows.len() + 2);
    let binary = o.format == CopyFormat::Binary;
    if binary {
        // As PostgreSQL sends it: the header with the first row, one row per CopyData, the
        // trailer in its own (binary-copy readers such as tokio-postgres's expect that).
        let oids: Vec<u32> = columns.iter().map(|c| c.type_oid).collect();
        let mut first = binary_header();
        for (i, row) in rows.iter().enumerate() {
            let mut out = if i == 0 {
                std::mem::take(&mut first)
            } else {
                Vec::new()
            };
            encode_binary_row(&mut out, row, &oids)?;
            data.push(out);
        }
        first.extend_from_slice(&(-1i16).to_be_bytes());
        data.push(first);
    } else {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let table = match (&statement.source, &o.force_quote) {
            (CopySource::Table { .. }, ForceColumns::Named(_)) => {
                Some(resolve_target(session, cluster, statement)?.0)
            }
            (CopySource::Query(_), ForceColumns::Named(wanted)) => {
                // A query's columns are all the COPY's: a name not among them does not exist.
                if let Some(name) = wanted.iter().find(|w| !names.contains(w)) {
                    return Err(SqlError::new(
                        UNDEFINED_COLUMN,
                        format!("column \"{name}\" does not exist"),
                    ));
                }
                None
            }
            _ => None,
        };
        let force_quote = o
            .force_quote
            .flags("FORCE_QUOTE", &names, table.as_deref())?;
        if o.header {
            let names: Vec<Option<String>> = names.into_iter().map(Some).collect();
            let mut line = Vec::new();
            encode_copy_row(&mut line, &names, o, &[]);
            data.push(line);
        }
        for row in &rows {
            let mut line = Vec::new();
            encode_copy_row(&mut line, row, o, &force_quote);
            data.push(line);
        }
    }
    Ok(StatementResult::CopyOut {
        column_count: columns.len(),
        binary,
        rows: data,
        tag: format!("COPY {}", rows.len()),
    })
}

/// Runs a COPY statement's first step: CopyIn for FROM STDIN, the data for TO STDOUT.
pub(crate) async fn run_copy<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
) -> Result<StatementResult, SqlError> {
    let statement = parse_copy(sql)?;
    if statement.from {
        start_copy_in(session, cluster, statement)
    } else {
        run_copy_out(session, cluster, &statement).await
    }
}

/// What the `copy_data` fuzz target drives: every record parser over arbitrary bytes.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// Splits `data` as text, CSV (delimiter, quote and escape from `options`' bits, FORCE
    /// flags on the first fields) and binary records; panics only on a bug.
    pub fn parse_all(options: u8, data: &[u8]) {
        let mut csv = CopyOptions::defaults(CopyFormat::Csv);
        if options & 1 != 0 {
            csv.delimiter = b';';
        }
        if options & 2 != 0 {
            csv.escape = b'\\';
        }
        let flags = [options & 4 != 0, options & 8 != 0];
        let force = CsvForce {
            not_null: &flags,
            null: &flags,
        };
        let mut rest = data;
        while let Some(end) = csv_record_end(rest, &csv) {
            check(split_csv(&rest[..end], &csv, force));
            rest = &rest[end + 1..];
        }
        check(split_csv(rest, &csv, force));
        let text = CopyOptions::defaults(CopyFormat::Text);
        for line in data.split(|&b| b == b'\n') {
            check(split_text(line, &text));
        }
        let columns = usize::from(options >> 4);
        let Ok(Some(mut at)) = binary_header_len(data) else {
            return;
        };
        while let Ok(Some((used, fields))) = binary_tuple(&data[at..], columns) {
            assert!(used > 0 && at + used <= data.len());
            at += used;
            if fields.is_none() {
                break;
            }
        }
    }

    fn check<T>(r: Result<T, SqlError>) {
        if let Err(e) = r {
            assert_eq!(e.sqlstate.len(), 5);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scanning a CSV stream a byte, two bytes, or any chunk at a time finds the same
    /// record ends as scanning it whole, escapes split from their quote included.
    #[test]
    fn csv_scan_resumes_across_chunks() {
        let mut o = csv();
        o.escape = b'\\';
        let data: &[u8] = b"a,\"x\\\"y\nz\",b\n\"q\"\"\",\\\n\"\\\\\"\nlast\n";
        let whole: Vec<usize> = {
            let mut ends = Vec::new();
            let mut start = 0;
            while let CsvScan::End(end) = csv_scan(&data[start..], &o, 0, false) {
                ends.push(start + end);
                start += end + 1;
            }
            ends
        };
        assert_eq!(whole.len(), 4, "{whole:?}");
        for chunk in 1..=5 {
            let mut ends = Vec::new();
            let (mut start, mut resume, mut in_quote) = (0, 0, false);
            for upto in (chunk..data.len() + chunk).step_by(chunk) {
                let seen = &data[..upto.min(data.len())];
                loop {
                    match csv_scan(&seen[start..], &o, resume, in_quote) {
                        CsvScan::End(end) => {
                            ends.push(start + end);
                            start += end + 1;
                            (resume, in_quote) = (0, false);
                        }
                        CsvScan::More {
                            resume: r,
                            in_quote: q,
                        } => {
                            (resume, in_quote) = (r, q);
                            break;
                        }
                    }
                }
            }
            assert_eq!(ends, whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn fuzz_entry_survives_odd_input() {
        for input in [
            &b""[..],
            b"\"",
            b"a,\"b\n\"\\",
            b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\x01\xff\xff\xff\xff\xff\xff",
        ] {
            for options in [0u8, 0x1f, 0x3c, 0xff] {
                fuzzing::parse_all(options, input);
            }
        }
    }

    fn text() -> CopyOptions {
        CopyOptions::defaults(CopyFormat::Text)
    }

    fn csv() -> CopyOptions {
        CopyOptions::defaults(CopyFormat::Csv)
    }

    fn s(v: &str) -> Field<'static> {
        Some(v.to_string().into())
    }

    /// A field as the output encoders take it.
    fn o_(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn a_where_condition_is_kept_as_written_for_copy_from_only() {
        let c = parse_copy("copy t from stdin (format csv) where a > 'where';").unwrap();
        assert_eq!(c.options.format, CopyFormat::Csv);
        assert_eq!(
            c.filter,
            Some(CopyFilter {
                text: " a > 'where';".into(),
                offset: 36,
            })
        );
        assert_eq!(parse_copy("copy t from stdin").unwrap().filter, None);
        // A quoted column named where is a column, not the clause.
        let c = parse_copy("copy t (\"where\") from stdin").unwrap();
        assert_eq!(c.filter, None);
        let e = parse_copy("copy t to stdout where a > 1").unwrap_err();
        assert_eq!(
            (e.sqlstate, e.message.as_str(), e.position),
            ("0A000", "WHERE clause not allowed with COPY TO", Some(18))
        );
        // After a dot `where` is a table name; in an option list, an (unknown) option.
        let c = parse_copy("copy public.where from stdin").unwrap();
        assert_eq!(
            c.source,
            CopySource::Table {
                name: vec!["public".into(), "where".into()],
                columns: vec![]
            }
        );
        let e = parse_copy("copy t from stdin (where true)").unwrap_err();
        assert_eq!(e.message, "option \"where\" not recognized");
        // PostgreSQL 16's DEFAULT (helios reports server_version 16) is refused plainly.
        let e = parse_copy("copy t from stdin (format text, default 'D')").unwrap_err();
        assert_eq!(
            (e.sqlstate, e.message.as_str()),
            (
                FEATURE_NOT_SUPPORTED,
                "COPY option \"default\" is not supported"
            )
        );
        // The query form has no WHERE; COPY TO's refusal comes before option checks but
        // after the condition parses, as in PostgreSQL's grammar.
        let e = parse_copy("copy (select 1) to stdout WHERE true").unwrap_err();
        assert_eq!(
            (e.sqlstate, e.message.as_str(), e.position),
            ("42601", "syntax error at or near \"WHERE\"", Some(27))
        );
        let e = parse_copy("copy t to stdout (freeze) where a > 1").unwrap_err();
        assert_eq!((e.sqlstate, e.position), ("0A000", Some(27)));
        let e = parse_copy("copy t to stdout where a >;").unwrap_err();
        assert_eq!((e.sqlstate, e.position), ("42601", Some(27)));
        let e = parse_copy("copy t from stdin where a > 1 b").unwrap_err();
        assert_eq!(
            (e.sqlstate, e.message.as_str(), e.position),
            ("42601", "syntax error at or near \"b\"", Some(31))
        );
    }

    #[test]
    fn statements_parse_in_both_option_syntaxes() {
        let c = parse_copy("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert!(c.from);
        assert_eq!(
            c.options,
            CopyOptions {
                freeze: true,
                ..text()
            }
        );
        assert!(
            parse_copy("copy t from stdin freeze")
                .unwrap()
                .options
                .freeze
        );
        let c =
            parse_copy("COPY s.\"T\" (a, b) FROM STDIN WITH CSV HEADER DELIMITER AS ';' NULL 'x'")
                .unwrap();
        assert_eq!(
            c.source,
            CopySource::Table {
                name: vec!["s".into(), "T".into()],
                columns: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(c.options.format, CopyFormat::Csv);
        assert!(c.options.header);
        assert_eq!(c.options.delimiter, b';');
        assert_eq!(c.options.null, "x");
        let c = parse_copy("copy (select 1, ')') to stdout (format csv, header true, quote '''');")
            .unwrap();
        assert_eq!(c.source, CopySource::Query("select 1, ')'".into()));
        assert_eq!(c.options.quote, b'\'');
        assert_eq!(c.options.escape, b'\'');
        assert!(!c.from);
        let e = parse_copy("copy t from '/etc/passwd'").unwrap_err();
        assert_eq!(e.sqlstate, FEATURE_NOT_SUPPORTED);
        let c = parse_copy("copy t from stdin (format binary)").unwrap();
        assert_eq!(c.options.format, CopyFormat::Binary);
        assert_eq!(
            parse_copy("copy t to stdout binary")
                .unwrap()
                .options
                .format,
            CopyFormat::Binary
        );
        let e = parse_copy("copy t from stdin (delimiter ',,')").unwrap_err();
        assert_eq!(e.sqlstate, FEATURE_NOT_SUPPORTED);
        let e = parse_copy("copy t from stdin (quote '\"')").unwrap_err();
        assert_eq!(e.message, "COPY quote available only in CSV mode");
        let e = parse_copy("copy t frm stdin").unwrap_err();
        assert_eq!(e.message, "syntax error at or near \"frm\"");
        assert!(is_copy("  copy t from stdin"));
        assert!(is_copy("/* x */ COPY(select 1) to stdout"));
        assert!(!is_copy("copyx"));
    }

    #[test]
    fn force_options_parse_and_are_checked_as_postgresql_checks_them() {
        let c = parse_copy("copy t to stdout (format csv, force_quote (a, \"B\"))").unwrap();
        assert_eq!(
            c.options.force_quote,
            ForceColumns::Named(vec!["a".into(), "B".into()])
        );
        let c = parse_copy("copy t to stdout csv force quote *").unwrap();
        assert_eq!(c.options.force_quote, ForceColumns::All);
        let c = parse_copy(
            "copy t from stdin with csv header force not null a, b force null c null 'x'",
        )
        .unwrap();
        assert_eq!(
            c.options.force_not_null,
            ForceColumns::Named(vec!["a".into(), "b".into()])
        );
        assert_eq!(c.options.force_null, ForceColumns::Named(vec!["c".into()]));
        assert_eq!(c.options.null, "x");
        let c = parse_copy("copy t from stdin (format csv, header match)").unwrap();
        assert!(c.options.header && c.options.header_match);
        let refused = [
            (
                "copy t to stdout (force_quote *)",
                "COPY force quote available only in CSV mode",
            ),
            (
                "copy t from stdin (format csv, force_quote *)",
                "COPY force quote only available using COPY TO",
            ),
            (
                "copy t to stdout (format csv, force_null (a))",
                "COPY force null only available using COPY FROM",
            ),
            (
                "copy t to stdout (format csv, force_not_null (a))",
                "COPY force not null only available using COPY FROM",
            ),
            (
                "copy t to stdout (freeze)",
                "COPY FREEZE cannot be used with COPY TO",
            ),
            (
                "copy t from stdin (format csv, force_quote *, force_quote *)",
                "conflicting or redundant options",
            ),
            (
                "copy t to stdout (format csv, header match)",
                "cannot use \"match\" with HEADER in COPY TO",
            ),
            (
                "copy t from stdin (format binary, header)",
                "cannot specify HEADER in BINARY mode",
            ),
            (
                "copy t from stdin (format binary, delimiter ',')",
                "cannot specify DELIMITER in BINARY mode",
            ),
            (
                "copy t from stdin (format binary, quote '\"')",
                "COPY quote available only in CSV mode",
            ),
            (
                "copy t from stdin (format csv, header, header)",
                "conflicting or redundant options",
            ),
        ];
        for (sql, message) in refused {
            assert_eq!(parse_copy(sql).unwrap_err().message, message, "{sql}");
        }
        let e = ForceColumns::Named(vec!["z".into()])
            .flags("FORCE_QUOTE", &["a".into()], None)
            .unwrap_err();
        assert_eq!(
            (e.sqlstate, &*e.message),
            ("42P10", "FORCE_QUOTE column \"z\" not referenced by COPY")
        );
    }

    #[test]
    fn csv_force_null_and_not_null_decide_what_reads_as_null() {
        let o = csv();
        let plain = CsvForce::default();
        let not_null = CsvForce {
            not_null: &[true, false],
            null: &[],
        };
        let null = CsvForce {
            not_null: &[],
            null: &[true, false],
        };
        assert_eq!(split_csv(b",\"\"", &o, plain).unwrap(), vec![None, s("")]);
        assert_eq!(
            split_csv(b",\"\"", &o, not_null).unwrap(),
            vec![s(""), s("")]
        );
        assert_eq!(
            split_csv(b"\"\",\"\"", &o, null).unwrap(),
            vec![None, s("")]
        );
        let mut out = Vec::new();
        encode_copy_row(
            &mut out,
            &[o_("a"), o_("b"), None],
            &o,
            &[true, false, true],
        );
        assert_eq!(out, b"\"a\",b,\n");
    }

    #[test]
    fn binary_tuples_parse_in_any_chunking_and_round_trip() {
        let oids = [23, 25];
        let rows = vec![vec![o_("7"), None], vec![o_("-1"), o_("h\u{e9}llo")]];
        let mut data = binary_header();
        for row in &rows {
            encode_binary_row(&mut data, row, &oids).unwrap();
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        // Every prefix is either incomplete or a whole header.
        for cut in 0..19 {
            assert_eq!(binary_header_len(&data[..cut]).unwrap(), None, "{cut}");
        }
        let mut at = binary_header_len(&data).unwrap().expect("whole header");
        assert_eq!(at, 19);
        let mut got = Vec::new();
        loop {
            let rest = &data[at..];
            for cut in 0..rest.len().min(8) {
                if let Some((used, _)) = binary_tuple(&rest[..cut], 2).unwrap() {
                    assert!(used <= cut);
                }
            }
            let (used, fields) = binary_tuple(rest, 2).unwrap().expect("complete");
            at += used;
            let Some(fields) = fields else { break };
            let texts: Vec<Option<String>> = fields
                .into_iter()
                .zip(oids)
                .map(|(f, oid)| f.map(|b| crate::pgbinary::binary_to_text(oid, b).unwrap()))
                .collect();
            got.push(texts);
        }
        assert_eq!(got, rows);
        assert_eq!(at, data.len());
        assert_eq!(
            binary_header_len(b"PGCOPY\nX").unwrap_err().message,
            "COPY file signature not recognized"
        );
        let mut oids_flag = binary_header();
        oids_flag[11..15].copy_from_slice(&BINARY_FLAG_OIDS.to_be_bytes());
        assert_eq!(
            binary_header_len(&oids_flag).unwrap_err().message,
            "invalid COPY file header (WITH OIDS)"
        );
        assert_eq!(
            binary_tuple(&3i16.to_be_bytes(), 2).unwrap_err().message,
            "row field count is 3, expected 2"
        );
        let mut bad = 1i16.to_be_bytes().to_vec();
        bad.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            binary_tuple(&bad, 1).unwrap_err().message,
            "invalid field size"
        );
    }

    #[test]
    fn text_fields_unescape_and_null() {
        let o = text();
        assert_eq!(
            split_text(b"1\t\\N\ta\\tb\\\\c\\n\\101\\x41\\q", &o).unwrap(),
            vec![s("1"), None, s("a\tb\\c\nAAq")]
        );
        assert_eq!(split_text(b"", &o).unwrap(), vec![s("")]);
        assert_eq!(split_text(b"a\t", &o).unwrap(), vec![s("a"), s("")]);
        assert_eq!(split_text(b"a\\\tb", &o).unwrap(), vec![s("a\tb")]);
    }

    #[test]
    fn csv_fields_quote_and_null() {
        let o = csv();
        assert_eq!(
            split_csv(b"1,,\"\",\"a,\"\"b\"\"\nc\"", &o, CsvForce::default()).unwrap(),
            vec![s("1"), None, s(""), s("a,\"b\"\nc")]
        );
        assert_eq!(
            split_csv(b"\"x", &o, CsvForce::default())
                .unwrap_err()
                .message,
            "unterminated CSV quoted field"
        );
        assert_eq!(csv_record_end(b"a,\"b\nc\"\nnext", &o), Some(7));
        assert_eq!(csv_record_end(b"a,\"b\nc", &o), None);
    }

    #[test]
    fn output_reads_back_as_it_was() {
        for o in [text(), csv()] {
            let row = vec![
                s("plain"),
                None,
                s(""),
                s("tab\there, comma, \"quote\"\nnewline\\"),
                s("\\."),
            ];
            let owned: Vec<Option<String>> = row
                .iter()
                .map(|f| f.as_ref().map(|v| v.to_string()))
                .collect();
            let mut out = Vec::new();
            encode_copy_row(&mut out, &owned, &o, &[]);
            assert_eq!(out.last(), Some(&b'\n'));
            out.pop();
            let back = match o.format {
                CopyFormat::Csv => split_csv(&out, &o, CsvForce::default()).unwrap(),
                _ => split_text(&out, &o).unwrap(),
            };
            assert_eq!(back, row, "{:?}", o.format);
        }
    }
}
