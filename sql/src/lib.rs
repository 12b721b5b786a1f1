//! helios-sql: the SQL front end. Today's slice parses with `sqlparser` (PostgreSQL dialect)
//! and executes statements that need no tables — `SELECT <expressions>` without FROM,
//! `VALUES`, `SET`/`SHOW`/`RESET` — with PostgreSQL 16's result types, output text and
//! SQLSTATEs. Every other statement fails with 0A000 rather than pretending to succeed.
//!
//! The protocol layer (`net/src/pg`) owns a [`Session`] per connection and calls
//! [`execute_simple`] for each Query message; it knows nothing of SQL.

mod error;
mod expr;
mod numeric;
mod session;
mod types;

#[cfg(test)]
mod tests;

use sqlparser::ast::{self, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

pub use error::SqlError;
pub use session::{startup_parameters, ChangedParameter, Session, SERVER_VERSION};

use error::*;
use expr::{Binder, Eval};
use types::{SqlType, TYPMOD_NONE};

/// One result column's description (RowDescription fields that matter without tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
}

/// What one statement produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementResult {
    /// A row set: RowDescription, DataRows (text format; `None` is NULL), CommandComplete(tag).
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Option<String>>>,
        tag: String,
    },
    /// CommandComplete(tag); first send a ParameterStatus for each changed reported parameter.
    Command {
        tag: String,
        changed_parameters: Vec<ChangedParameter>,
    },
    /// The query string held no statement: EmptyQueryResponse.
    Empty,
}

/// A query string longer than this is refused (the wire layer bounds messages too).
pub const QUERY_BYTES_MAX: usize = 16 << 20;
/// Statements in one query string, at most.
pub const STATEMENTS_MAX: usize = 10_000;
/// Rows one `VALUES` may list.
const VALUES_ROWS_MAX: usize = 100_000;
/// Expression nesting sqlparser accepts before failing with 54001.
const PARSE_DEPTH_MAX: usize = 200;

/// Runs a simple-query string: every statement in order, one result each, stopping after the
/// first error (earlier results stand). The whole string is parsed first, so a syntax error
/// anywhere means no statement runs — as in PostgreSQL.
pub fn execute_simple(session: &mut Session, sql: &str) -> Vec<Result<StatementResult, SqlError>> {
    if sql.len() > QUERY_BYTES_MAX {
        return vec![Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("query string is longer than {QUERY_BYTES_MAX} bytes"),
        ))];
    }
    let statements = match parse(sql) {
        Ok(s) => s,
        Err(e) => return vec![Err(e)],
    };
    if statements.is_empty() {
        return vec![Ok(StatementResult::Empty)];
    }
    if statements.len() > STATEMENTS_MAX {
        return vec![Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("more than {STATEMENTS_MAX} statements in one query"),
        ))];
    }
    let mut results = Vec::with_capacity(statements.len());
    for statement in &statements {
        let r = execute(session, sql, statement);
        let failed = r.is_err();
        results.push(r);
        if failed {
            break;
        }
    }
    results
}

fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let parser = Parser::new(&PostgreSqlDialect {}).with_recursion_limit(PARSE_DEPTH_MAX);
    parser
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parse_error(sql, e))
}

/// sqlparser's error → PostgreSQL's wording: `syntax error at or near "x"` / `at end of input`.
fn parse_error(sql: &str, e: ParserError) -> SqlError {
    let message = match e {
        ParserError::RecursionLimitExceeded => {
            return SqlError::new(STATEMENT_TOO_COMPLEX, "stack depth limit exceeded");
        }
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
    };
    let (text, position) = match message.rsplit_once(" at Line: ") {
        Some((text, loc)) => {
            let mut parts = loc.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
            let column = parts.next().and_then(|c| c.trim().parse::<u64>().ok());
            let position = match (line, column) {
                (Some(line), Some(column)) => expr::Positions::new(sql)
                    .offset(sqlparser::tokenizer::Location { line, column }),
                _ => None,
            };
            (text.to_string(), position)
        }
        None => (message.clone(), None),
    };
    let end = sql.chars().count() + 1;
    if let Some((_, found)) = text.split_once(", found: ") {
        if found == "EOF" {
            return SqlError::new(SYNTAX_ERROR, "syntax error at end of input").at(Some(end));
        }
        return SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{found}\""))
            .at(position);
    }
    if text.starts_with("Unterminated string literal") {
        let rest: String = position
            .map(|p| sql.chars().skip(p - 1).collect())
            .unwrap_or_default();
        return SqlError::new(
            SYNTAX_ERROR,
            format!("unterminated quoted string at or near \"{rest}\""),
        )
        .at(position);
    }
    SqlError::new(SYNTAX_ERROR, format!("syntax error: {text}")).at(position)
}

fn execute(
    session: &mut Session,
    sql: &str,
    statement: &Statement,
) -> Result<StatementResult, SqlError> {
    match statement {
        Statement::Query(q) => run_query(session, sql, q),
        Statement::Set(set) => run_set(session, set),
        Statement::ShowVariable { variable } => run_show(session, variable),
        Statement::Reset(r) => {
            let changed_parameters = match &r.reset {
                ast::Reset::ALL => session.reset_all(),
                ast::Reset::ConfigurationParameter(name) => session
                    .reset_parameter(&object_name(name))?
                    .into_iter()
                    .collect(),
                ast::Reset::SessionAuthorization => {
                    return Err(not_supported("RESET SESSION AUTHORIZATION"))
                }
            };
            Ok(StatementResult::Command {
                tag: "RESET".to_string(),
                changed_parameters,
            })
        }
        other => Err(not_supported(statement_kind(other))),
    }
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported yet"),
    )
}

/// The leading keywords of a statement, for messages: "CREATE TABLE", "INSERT", "BEGIN".
fn statement_kind(s: &Statement) -> String {
    const OBJECT_WORDS: &[&str] = &[
        "OR",
        "REPLACE",
        "TEMPORARY",
        "TEMP",
        "UNLOGGED",
        "UNIQUE",
        "MATERIALIZED",
        "TABLE",
        "INDEX",
        "VIEW",
        "SCHEMA",
        "DATABASE",
        "SEQUENCE",
        "FUNCTION",
        "PROCEDURE",
        "ROLE",
        "USER",
        "TYPE",
        "EXTENSION",
        "TRIGGER",
    ];
    if let Statement::StartTransaction { begin: true, .. } = s {
        return "BEGIN".to_string();
    }
    let text = s.to_string();
    let mut words = text.split_whitespace().map(|w| w.to_ascii_uppercase());
    let first = words.next().unwrap_or_default();
    let mut kind = first.clone();
    if ["CREATE", "DROP", "ALTER"].contains(&first.as_str()) {
        for w in words.take_while(|w| OBJECT_WORDS.contains(&w.as_str())) {
            kind.push(' ');
            kind.push_str(&w);
        }
    }
    kind
}

fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn column(name: String, ty: SqlType, typmod: i32) -> Column {
    // Unknown-typed outputs (string literals, bare NULL) are resolved to text.
    let ty = if ty == SqlType::Unknown {
        SqlType::Text
    } else {
        ty
    };
    Column {
        name,
        type_oid: ty.oid(),
        type_size: ty.size(),
        type_modifier: typmod,
    }
}

fn run_query(session: &Session, sql: &str, q: &ast::Query) -> Result<StatementResult, SqlError> {
    let clause = if q.with.is_some() {
        Some("WITH")
    } else if q.order_by.is_some() {
        Some("ORDER BY")
    } else if q.limit_clause.is_some() || q.fetch.is_some() {
        Some("LIMIT, OFFSET and FETCH")
    } else if !q.locks.is_empty() {
        Some("FOR UPDATE/SHARE")
    } else {
        None
    };
    if let Some(clause) = clause {
        return Err(not_supported(clause));
    }
    let binder = Binder::new(session, sql);
    let (columns, rows) = match q.body.as_ref() {
        ast::SetExpr::Select(select) => run_select(&binder, select)?,
        ast::SetExpr::Values(values) => run_values(&binder, values)?,
        ast::SetExpr::Query(inner) => return run_query(session, sql, inner),
        ast::SetExpr::SetOperation { op, .. } => return Err(not_supported(format!("{op}"))),
        _ => return Err(not_supported("this kind of query")),
    };
    let tag = format!("SELECT {}", rows.len());
    Ok(StatementResult::Rows { columns, rows, tag })
}

type RowSet = (Vec<Column>, Vec<Vec<Option<String>>>);

fn run_select(binder: &Binder, s: &ast::Select) -> Result<RowSet, SqlError> {
    if !s.from.is_empty() {
        return Err(not_supported("SELECT with FROM (there are no tables yet)"));
    }
    let unsupported = if s.distinct.is_some() {
        Some("DISTINCT")
    } else if s.into.is_some() {
        Some("SELECT INTO")
    } else if s.having.is_some()
        || !matches!(&s.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        Some("GROUP BY and HAVING")
    } else if !s.named_window.is_empty()
        || s.qualify.is_some()
        || s.top.is_some()
        || s.prewhere.is_some()
        || !s.lateral_views.is_empty()
        || !s.connect_by.is_empty()
        || !s.sort_by.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
    {
        Some("this SELECT clause")
    } else {
        None
    };
    if let Some(what) = unsupported {
        return Err(not_supported(what));
    }
    let mut names = Vec::with_capacity(s.projection.len());
    let mut bound = Vec::with_capacity(s.projection.len());
    for item in &s.projection {
        let (e, name) = match item {
            ast::SelectItem::UnnamedExpr(e) => {
                let (name, strength) = expr::column_name(e);
                (
                    e,
                    if strength == 0 {
                        "?column?".to_string()
                    } else {
                        name
                    },
                )
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, alias_name(alias)),
            ast::SelectItem::Wildcard(_) => {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    "SELECT * with no tables specified is not valid",
                ));
            }
            other => return Err(not_supported(format!("select item {other}"))),
        };
        names.push(name);
        bound.push(binder.bind(e)?);
    }
    let filter = match &s.selection {
        Some(w) => {
            let b = binder.bind(w)?;
            if b.ty != SqlType::Bool && b.ty != SqlType::Unknown {
                return Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!(
                        "argument of WHERE must be type boolean, not type {}",
                        b.ty.sql_name()
                    ),
                )
                .at(binder.offset(w.span_start())));
            }
            Some(binder.coerce(b, SqlType::Bool, TYPMOD_NONE)?)
        }
        None => None,
    };
    let cx = Eval {
        session: binder.session,
    };
    let digits = binder.session.extra_float_digits();
    let columns = names
        .into_iter()
        .zip(&bound)
        .map(|(n, b)| column(n, b.ty, b.typmod))
        .collect();
    if let Some(f) = filter {
        if expr::eval(&f, &cx)? != types::Datum::Bool(true) {
            return Ok((columns, Vec::new()));
        }
    }
    let mut row = Vec::with_capacity(bound.len());
    for b in &bound {
        row.push(types::output(&expr::eval(b, &cx)?, digits));
    }
    Ok((columns, vec![row]))
}

trait SpanStart {
    fn span_start(&self) -> sqlparser::tokenizer::Location;
}

impl SpanStart for ast::Expr {
    fn span_start(&self) -> sqlparser::tokenizer::Location {
        use sqlparser::ast::Spanned;
        self.span().start
    }
}

fn alias_name(alias: &ast::Ident) -> String {
    if alias.quote_style.is_some() {
        alias.value.clone()
    } else {
        alias.value.to_lowercase()
    }
}

fn run_values(binder: &Binder, v: &ast::Values) -> Result<RowSet, SqlError> {
    if v.rows.len() > VALUES_ROWS_MAX {
        return Err(SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            format!("VALUES lists at most {VALUES_ROWS_MAX} rows"),
        ));
    }
    let width = v.rows.first().map_or(0, |r| r.len());
    let mut bound_rows = Vec::with_capacity(v.rows.len());
    for row in &v.rows {
        if row.len() != width {
            return Err(
                SqlError::new(SYNTAX_ERROR, "VALUES lists must all be the same length")
                    .at(row.first().and_then(|e| binder.offset(e.span_start()))),
            );
        }
        bound_rows.push(
            row.iter()
                .map(|e| binder.bind(e))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let mut types = Vec::with_capacity(width);
    for c in 0..width {
        types.push(expr::common_type(
            bound_rows.iter().map(|r| (r[c].ty, r[c].pos)),
            "VALUES",
        )?);
    }
    let cx = Eval {
        session: binder.session,
    };
    let digits = binder.session.extra_float_digits();
    let mut rows = Vec::with_capacity(bound_rows.len());
    for row in bound_rows {
        let mut out = Vec::with_capacity(width);
        for (b, ty) in row.into_iter().zip(&types) {
            let b = binder.coerce(b, *ty, TYPMOD_NONE)?;
            out.push(types::output(&expr::eval(&b, &cx)?, digits));
        }
        rows.push(out);
    }
    let columns = types
        .iter()
        .enumerate()
        .map(|(i, t)| column(format!("column{}", i + 1), *t, TYPMOD_NONE))
        .collect();
    Ok((columns, rows))
}

/// The text a SET value stands for, as PostgreSQL flattens it.
fn set_value_text(e: &ast::Expr, list: bool) -> Result<String, SqlError> {
    Ok(match e {
        ast::Expr::Identifier(id) if list => quote_ident(&alias_name(id)),
        ast::Expr::Identifier(id) => alias_name(id),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) if list => {
                quote_ident(s)
            }
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => s.clone(),
            ast::Value::DollarQuotedString(d) => d.value.clone(),
            ast::Value::Number(n, _) => n.clone(),
            ast::Value::Boolean(b) => b.to_string(),
            other => return Err(not_supported(format!("SET value {other}"))),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                format!("-{}", v.value)
            }
            _ => {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    format!("syntax error at or near \"{e}\""),
                ))
            }
        },
        other => {
            return Err(SqlError::new(
                SYNTAX_ERROR,
                format!("syntax error at or near \"{other}\""),
            ))
        }
    })
}

/// `quote_identifier`: bare if lower-case letters, digits and underscores (not leading digit).
fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn run_set(session: &mut Session, set: &ast::Set) -> Result<StatementResult, SqlError> {
    let (name, value) = match set {
        ast::Set::SingleAssignment {
            scope,
            hivevar: false,
            variable,
            values,
        } => {
            let name = object_name(variable);
            let is_default = matches!(values.as_slice(), [ast::Expr::Identifier(id)] if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
            if let Some(ast::ContextModifier::Local) = scope {
                // Outside a transaction block SET LOCAL has no effect (PostgreSQL warns).
                if session.canonical_name(&name).is_none() && !name.contains('.') {
                    return Err(session::unrecognized(&name));
                }
                return Ok(set_done(Vec::new()));
            }
            if is_default {
                return Ok(set_done(
                    session.reset_parameter(&name)?.into_iter().collect(),
                ));
            }
            let list = session.is_list(&name);
            if values.len() > 1 && !list {
                if session.canonical_name(&name).is_none() && !name.contains('.') {
                    return Err(session::unrecognized(&name));
                }
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!("SET {name} takes only one argument"),
                ));
            }
            let parts = values
                .iter()
                .map(|v| set_value_text(v, list && !name.eq_ignore_ascii_case("datestyle")))
                .collect::<Result<Vec<_>, _>>()?;
            (name, parts.join(", "))
        }
        ast::Set::SetTimeZone {
            local: false,
            value,
        } => ("TimeZone".to_string(), set_value_text(value, false)?),
        ast::Set::SetNames {
            charset_name,
            collation_name: None,
        } => ("client_encoding".to_string(), charset_name.value.clone()),
        other => {
            let words: Vec<String> = other
                .to_string()
                .split_whitespace()
                .take(3)
                .map(str::to_string)
                .collect();
            return Err(not_supported(words.join(" ")));
        }
    };
    Ok(set_done(
        session.set_parameter(&name, &value)?.into_iter().collect(),
    ))
}

fn set_done(changed_parameters: Vec<ChangedParameter>) -> StatementResult {
    StatementResult::Command {
        tag: "SET".to_string(),
        changed_parameters,
    }
}

fn text_column(name: &str) -> Column {
    column(name.to_string(), SqlType::Text, TYPMOD_NONE)
}

fn run_show(session: &Session, variable: &[ast::Ident]) -> Result<StatementResult, SqlError> {
    let name = variable
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(".");
    // sqlparser splits "SHOW TIME ZONE" / "SHOW TRANSACTION ISOLATION LEVEL" into words.
    let name = match name.to_ascii_lowercase().as_str() {
        "time.zone" => "TimeZone".to_string(),
        "transaction.isolation.level" => "transaction_isolation".to_string(),
        _ => name,
    };
    let tag = "SHOW".to_string();
    if name.eq_ignore_ascii_case("all") {
        let columns = vec![
            text_column("name"),
            text_column("setting"),
            text_column("description"),
        ];
        let rows = session
            .all_parameters()
            .into_iter()
            .map(|(n, v)| vec![Some(n), Some(v), Some(String::new())])
            .collect();
        return Ok(StatementResult::Rows { columns, rows, tag });
    }
    let canonical = session
        .canonical_name(&name)
        .ok_or_else(|| session::unrecognized(&name))?;
    let value = session
        .parameter(&canonical)
        .unwrap_or_default()
        .to_string();
    Ok(StatementResult::Rows {
        columns: vec![text_column(&canonical)],
        rows: vec![vec![Some(value)]],
        tag,
    })
}
