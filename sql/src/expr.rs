//! Expressions: the binder turns sqlparser's AST into typed [`Bound`] trees (resolving
//! operators, functions and literal types as PostgreSQL's parse analysis does, and failing
//! with its errors), and [`eval`] computes them. Binding happens before any evaluation, so
//! an unknown function is reported ahead of a division by zero, as in PostgreSQL.

use sqlparser::ast::{self, BinaryOperator, Spanned, UnaryOperator};

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::*;
use crate::numeric;
use crate::plan::{AggBinding, Planner, Scope, SortKey, SubqueryExpr, SubqueryMode};
use crate::session::Session;
use crate::types::{self, Datum, SqlType, TYPMOD_NONE};

/// A typed expression.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) kind: Kind,
    pub(crate) ty: SqlType,
    pub(crate) typmod: i32,
    /// 1-based offset of the expression's start in the query string.
    pub(crate) pos: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    /// nextval/currval/setval: args[0] is the sequence id, args[1] its name (constants);
    /// setval adds the value and is_called.
    NextVal,
    CurrVal,
    SetVal,
    Version,
    BackendPid,
    CurrentDatabase,
    CurrentUser,
    CurrentSchema,
    Length,
    Upper,
    Lower,
    Abs,
    PgTypeof,
    /// String, math, date/time, uuid and array functions (`funcs`).
    Builtin(crate::funcs::Builtin),
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Const(Datum),
    /// A column of the current row.
    Column(usize),
    /// A column of an enclosing query's row: (levels up, at least 1; column).
    Outer(usize, usize),
    /// `$n` (0-based), already of its inferred type.
    Param(usize),
    /// CASE: (operand compared with each WHEN value when present), WHEN/THEN pairs, ELSE.
    Case {
        operand: Option<Box<Bound>>,
        whens: Vec<(Bound, Bound)>,
        otherwise: Option<Box<Bound>>,
    },
    /// x [NOT] IN (list): values already coerced to x's type.
    InList {
        x: Box<Bound>,
        list: Vec<Bound>,
        negated: bool,
    },
    /// x [NOT] [I]LIKE pattern.
    Like {
        x: Box<Bound>,
        pattern: Box<Bound>,
        negated: bool,
        case_insensitive: bool,
    },
    Subquery(Box<SubqueryExpr>),
    Neg(Box<Bound>),
    /// Operands already coerced to the result type.
    Arith(Arith, Box<Bound>, Box<Bound>),
    /// Operands already coerced to one comparison type; `distinct` is IS [NOT] DISTINCT FROM.
    Cmp {
        op: Cmp,
        l: Box<Bound>,
        r: Box<Bound>,
        null_safe: bool,
    },
    Concat(Box<Bound>, Box<Bound>),
    And(Box<Bound>, Box<Bound>),
    Or(Box<Bound>, Box<Bound>),
    Not(Box<Bound>),
    IsNull(Box<Bound>, bool),
    /// IS [NOT] TRUE / FALSE / UNKNOWN: (operand, tested value (None = unknown), negated).
    IsBool(Box<Bound>, Option<bool>, bool),
    Cast(Box<Bound>),
    Func(Func, Vec<Bound>),
    Coalesce(Vec<Bound>),
    NullIf(Box<Bound>, Box<Bound>),
    /// A system-catalog function, operator or cast (see `pgcatalog`).
    Pg(Box<crate::pgcatalog::PgCall>, Vec<Bound>),
}

/// Bounds the number of arguments a function call may have.
const FUNC_ARGS_MAX: usize = 100;

/// What the binder needs from its surroundings: the session and the query text (for positions).
pub(crate) struct Binder<'a> {
    pub(crate) session: &'a Session,
    pub(crate) sql: &'a str,
    positions: &'a Positions,
    /// Columns names resolve against (None: no FROM clause in sight).
    pub(crate) scope: Option<&'a Scope<'a>>,
    /// Set while binding expressions evaluated after aggregation (select list, HAVING).
    pub(crate) agg: Option<&'a AggBinding<'a>>,
    /// Plans subqueries; None where subqueries cannot appear.
    pub(crate) planner: Option<&'a Planner<'a>>,
    /// Types of `$n` parameters, declared or inferred so far (None: not yet known).
    pub(crate) params: Option<&'a RefCell<Vec<Option<SqlType>>>>,
}

/// Maps sqlparser locations (1-based line and column) to PostgreSQL's 1-based char offsets.
pub(crate) struct Positions {
    /// Char offset where each line starts.
    line_starts: Vec<usize>,
}

impl Positions {
    pub(crate) fn new(sql: &str) -> Positions {
        let mut line_starts = vec![0];
        for (i, c) in sql.chars().enumerate() {
            if c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Positions { line_starts }
    }

    pub(crate) fn offset(&self, loc: sqlparser::tokenizer::Location) -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let col = usize::try_from(loc.column).ok()?;
        Some(self.line_starts.get(line)? + col)
    }
}

fn not_supported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported yet"),
    )
}

fn konst(d: Datum, ty: SqlType, pos: Option<usize>) -> Bound {
    Bound {
        kind: Kind::Const(d),
        ty,
        typmod: TYPMOD_NONE,
        pos,
    }
}

impl<'a> Binder<'a> {
    pub(crate) fn new(session: &'a Session, sql: &'a str, positions: &'a Positions) -> Binder<'a> {
        Binder {
            session,
            sql,
            positions,
            scope: None,
            agg: None,
            planner: None,
            params: None,
        }
    }

    /// The same binder over another scope (and out of any aggregation context).
    pub(crate) fn with_scope<'b>(&'b self, scope: Option<&'b Scope<'b>>) -> Binder<'b> {
        Binder {
            session: self.session,
            sql: self.sql,
            positions: self.positions,
            scope,
            agg: None,
            planner: self.planner,
            params: self.params,
        }
    }

    pub(crate) fn with_agg<'b>(&'b self, agg: &'b AggBinding<'b>) -> Binder<'b> {
        Binder {
            session: self.session,
            sql: self.sql,
            positions: self.positions,
            scope: self.scope,
            agg: Some(agg),
            planner: self.planner,
            params: self.params,
        }
    }

    pub(crate) fn offset(&self, loc: sqlparser::tokenizer::Location) -> Option<usize> {
        self.positions.offset(loc)
    }

    fn pos_of(&self, e: &ast::Expr) -> Option<usize> {
        self.offset(e.span().start)
    }

    /// Where the operator between `left` and the rest starts: the first occurrence of its text
    /// after `left` ends (sqlparser keeps no span for operators).
    fn op_pos(&self, left: &ast::Expr, op: &str) -> Option<usize> {
        let after = self.offset(left.span().end)?; // 1-based offset of the char after `left`
        let rest: String = self.sql.chars().skip(after - 1).collect();
        let byte = rest.find(op)?;
        Some(after + rest[..byte].chars().count())
    }

    pub(crate) fn bind(&self, e: &ast::Expr) -> Result<Bound, SqlError> {
        let pos = self.pos_of(e);
        if let Some(agg) = self.agg {
            if let Some(b) = self.bind_in_aggregate(agg, e, pos)? {
                return Ok(b);
            }
        }
        match e {
            ast::Expr::Value(v) => self.bind_value(&v.value, false, pos),
            ast::Expr::Nested(inner) => self.bind(inner),
            ast::Expr::Identifier(id) => self.bind_identifier(id, pos),
            ast::Expr::CompoundIdentifier(ids) => self.bind_compound(ids, pos),
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.bind_case(operand.as_deref(), conditions, else_result.as_deref(), pos),
            ast::Expr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => self.bind_in_list(expr, list, *negated, pos),
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => self.bind_between(expr, *negated, low, high, pos),
            ast::Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => self.bind_like(expr, pattern, *negated, false, pos),
            ast::Expr::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => self.bind_like(expr, pattern, *negated, true, pos),
            ast::Expr::Subquery(q) => self.bind_subquery(q, SubqueryMode::Scalar, pos),
            ast::Expr::Exists { subquery, negated } => {
                let b = self.bind_subquery(subquery, SubqueryMode::Exists, pos)?;
                Ok(if *negated { self.not(b) } else { b })
            }
            ast::Expr::In {
                expr,
                target: ast::InTarget::Subquery(subquery),
                negated,
                global: false,
            } => {
                let x = self.bind(expr)?;
                let b = self.bind_subquery(subquery, SubqueryMode::In(Box::new(x)), pos)?;
                Ok(if *negated { self.not(b) } else { b })
            }
            ast::Expr::UnaryOp { op, expr } => self.bind_unary(*op, expr, pos),
            ast::Expr::BinaryOp { left, op, right } => self.bind_binary(left, op, right),
            ast::Expr::IsNull(x) => Ok(self.is_null(self.bind(x)?, false)),
            ast::Expr::IsNotNull(x) => Ok(self.is_null(self.bind(x)?, true)),
            ast::Expr::IsTrue(x) => self.is_bool(x, Some(true), false),
            ast::Expr::IsNotTrue(x) => self.is_bool(x, Some(true), true),
            ast::Expr::IsFalse(x) => self.is_bool(x, Some(false), false),
            ast::Expr::IsNotFalse(x) => self.is_bool(x, Some(false), true),
            ast::Expr::IsUnknown(x) => self.is_bool(x, None, false),
            ast::Expr::IsNotUnknown(x) => self.is_bool(x, None, true),
            ast::Expr::IsDistinctFrom(l, r) => self.bind_cmp(l, Cmp::Ne, r, true),
            ast::Expr::IsNotDistinctFrom(l, r) => self.bind_cmp(l, Cmp::Eq, r, true),
            ast::Expr::Cast {
                expr,
                data_type,
                format: None,
                ..
            } => {
                // `ARRAY[]::int[]`: the cast gives the empty array its type.
                if matches!(&**expr, ast::Expr::Array(a) if a.elem.is_empty()) {
                    if let Ok((ty @ SqlType::Array(_), typmod)) = resolve_type(data_type) {
                        let empty = konst(Datum::Text("{}".into()), SqlType::Unknown, pos);
                        return self.explicit_cast(empty, ty, typmod);
                    }
                }
                let inner = self.bind(expr)?;
                if let Some(b) = crate::pgcatalog::bind_cast(self, inner.clone(), data_type)? {
                    return Ok(b);
                }
                let (ty, typmod) = resolve_type(data_type)?;
                self.explicit_cast(inner, ty, typmod)
            }
            ast::Expr::TypedString(ts) => {
                let (ty, typmod) = resolve_type(&ts.data_type)?;
                let inner =
                    self.bind_value(&ts.value.value, false, self.offset(ts.value.span.start))?;
                self.explicit_cast(inner, ty, typmod)
            }
            ast::Expr::Function(f) => self.bind_function(f, pos),
            ast::Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind(expr)?];
                args.push(match substring_from {
                    Some(e) => self.bind(e)?,
                    None => konst(Datum::Int(1), SqlType::Int4, pos),
                });
                if let Some(e) = substring_for {
                    args.push(self.bind(e)?);
                }
                self.bind_builtin("substr", &args, pos)
            }
            ast::Expr::Position { expr, r#in } => {
                let args = [self.bind(r#in)?, self.bind(expr)?];
                self.bind_builtin("strpos", &args, pos)
            }
            ast::Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(not_supported("TRIM with a character list").at(pos));
                }
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.bind(expr)?];
                if let Some(w) = trim_what {
                    args.push(self.bind(w)?);
                }
                self.bind_builtin(name, &args, pos)
            }
            ast::Expr::Ceil { expr, field } | ast::Expr::Floor { expr, field } => {
                if !matches!(
                    field,
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                ) {
                    return Err(not_supported("CEIL/FLOOR with a field or scale").at(pos));
                }
                let name = if matches!(e, ast::Expr::Ceil { .. }) {
                    "ceil"
                } else {
                    "floor"
                };
                let args = [self.bind(expr)?];
                self.bind_builtin(name, &args, pos)
            }
            ast::Expr::Extract { field, expr, .. } => {
                let field = konst(Datum::Text(datetime_field_name(field)), SqlType::Text, pos);
                let value = self.bind(expr)?;
                let value = if value.ty == SqlType::Unknown {
                    self.coerce(value, SqlType::TimestampTz, TYPMOD_NONE)?
                } else {
                    value
                };
                if !value.ty.is_datetime() {
                    return Err(SqlError::new(
                        UNDEFINED_FUNCTION,
                        format!(
                            "function pg_catalog.extract(unknown, {}) does not exist",
                            value.ty.sql_name()
                        ),
                    )
                    .with_hint(&HINT_NO_FUNCTION)
                    .at(pos));
                }
                Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::Extract,
                    vec![field, value],
                    SqlType::Numeric,
                    pos,
                ))
            }
            ast::Expr::Array(array) => {
                let elems = array
                    .elem
                    .iter()
                    .map(|x| self.bind(x))
                    .collect::<Result<Vec<_>, _>>()?;
                crate::funcs::bind_array(self, elems, pos)
            }
            ast::Expr::Interval(iv) => {
                if iv.last_field.is_some() || iv.fractional_seconds_precision.is_some() {
                    return Err(not_supported("INTERVAL field ranges").at(pos));
                }
                let text = match iv.value.as_ref() {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        ast::Value::Number(n, _) => n.clone(),
                        _ => return Err(not_supported("this INTERVAL literal").at(pos)),
                    },
                    _ => return Err(not_supported("this INTERVAL literal").at(pos)),
                };
                let text = match &iv.leading_field {
                    Some(f) if !text.chars().any(|c| c.is_ascii_alphabetic()) => {
                        format!("{text} {}", datetime_field_name(f))
                    }
                    _ => text,
                };
                let value = crate::datetime::parse_interval(&text).map_err(|e| e.at(pos))?;
                Ok(konst(Datum::Interval(value), SqlType::Interval, pos))
            }
            other => match crate::pgcatalog::bind_expr(self, other, pos)? {
                Some(b) => Ok(b),
                None => Err(not_supported(format!("expression \"{other}\"")).at(pos)),
            },
        }
    }

    /// A built-in bound by name, failing as an unknown function when no signature fits.
    fn bind_builtin(
        &self,
        name: &str,
        args: &[Bound],
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        crate::funcs::bind(self, name, args, pos)?.ok_or_else(|| {
            SqlError::new(
                UNDEFINED_FUNCTION,
                format!("function {name} does not exist"),
            )
            .with_hint(&HINT_NO_FUNCTION)
            .at(pos)
        })
    }

    fn bind_value(
        &self,
        v: &ast::Value,
        negate: bool,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        match v {
            ast::Value::Number(s, _) => number_literal(s, negate).map(|(d, ty)| konst(d, ty, pos)),
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::UnicodeStringLiteral(s) => {
                Ok(konst(Datum::Text(s.clone()), SqlType::Unknown, pos))
            }
            ast::Value::DollarQuotedString(d) => {
                Ok(konst(Datum::Text(d.value.clone()), SqlType::Unknown, pos))
            }
            ast::Value::Boolean(b) => Ok(konst(Datum::Bool(*b), SqlType::Bool, pos)),
            ast::Value::Null => Ok(konst(Datum::Null, SqlType::Unknown, pos)),
            ast::Value::Placeholder(p) => self.bind_param(p, pos),
            other => Err(not_supported(format!("literal {other}")).at(pos)),
        }
    }

    fn bind_identifier(&self, id: &ast::Ident, pos: Option<usize>) -> Result<Bound, SqlError> {
        if let Some(b) = self.resolve_column(None, &ident_name(id), pos)? {
            return Ok(b);
        }
        if id.quote_style.is_none() {
            match id.value.to_ascii_lowercase().as_str() {
                "current_schema" => return self.call(Func::CurrentSchema, vec![], pos),
                "current_catalog" => return self.call(Func::CurrentDatabase, vec![], pos),
                _ => {}
            }
        }
        Err(SqlError::new(
            UNDEFINED_COLUMN,
            format!("column \"{}\" does not exist", ident_name(id)),
        )
        .at(pos))
    }

    fn bind_unary(
        &self,
        op: UnaryOperator,
        expr: &ast::Expr,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        match op {
            UnaryOperator::Minus => {
                // PostgreSQL folds "-<number>" into one constant, so -2147483648 is an int4.
                if let ast::Expr::Value(v) = expr {
                    if let ast::Value::Number(..) = v.value {
                        return self.bind_value(&v.value, true, pos);
                    }
                }
                let x = self.bind(expr)?;
                if x.ty.numeric_rank().is_none() && x.ty != SqlType::Interval {
                    return Err(self.no_prefix_op("-", x.ty, pos));
                }
                Ok(Bound {
                    ty: x.ty,
                    typmod: TYPMOD_NONE,
                    pos,
                    kind: Kind::Neg(Box::new(x)),
                })
            }
            UnaryOperator::Plus => {
                let x = self.bind(expr)?;
                if x.ty.numeric_rank().is_none() {
                    return Err(self.no_prefix_op("+", x.ty, pos));
                }
                Ok(x)
            }
            UnaryOperator::Not => {
                let x = self.require_bool(self.bind(expr)?, "NOT")?;
                Ok(Bound {
                    ty: SqlType::Bool,
                    typmod: TYPMOD_NONE,
                    pos,
                    kind: Kind::Not(Box::new(x)),
                })
            }
            UnaryOperator::BitwiseNot => {
                let x = self.bind(expr)?;
                if !x.ty.is_integer() {
                    return Err(self.no_prefix_op("~", x.ty, pos));
                }
                let ty = x.ty;
                Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::Bitwise(crate::funcs::BitOp::Not),
                    vec![x],
                    ty,
                    pos,
                ))
            }
            other => Err(not_supported(format!("operator {other}")).at(pos)),
        }
    }

    fn no_prefix_op(&self, op: &str, ty: SqlType, pos: Option<usize>) -> SqlError {
        if ty == SqlType::Unknown {
            return SqlError::new(
                AMBIGUOUS_FUNCTION,
                format!("operator is not unique: {op} unknown"),
            )
            .at(pos);
        }
        SqlError::new(
            UNDEFINED_FUNCTION,
            format!("operator does not exist: {op} {}", ty.sql_name()),
        )
        .with_hint(&HINT_NO_PREFIX_OPERATOR)
        .at(pos)
    }

    fn bind_binary(
        &self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
    ) -> Result<Bound, SqlError> {
        let arith = match op {
            BinaryOperator::Plus => Some(Arith::Add),
            BinaryOperator::Minus => Some(Arith::Sub),
            BinaryOperator::Multiply => Some(Arith::Mul),
            BinaryOperator::Divide => Some(Arith::Div),
            BinaryOperator::Modulo => Some(Arith::Mod),
            BinaryOperator::PGExp => Some(Arith::Pow),
            _ => None,
        };
        if let Some(a) = arith {
            return self.bind_arith(left, a, op, right);
        }
        let cmp = match op {
            BinaryOperator::Eq => Some(Cmp::Eq),
            BinaryOperator::NotEq => Some(Cmp::Ne),
            BinaryOperator::Lt => Some(Cmp::Lt),
            BinaryOperator::LtEq => Some(Cmp::Le),
            BinaryOperator::Gt => Some(Cmp::Gt),
            BinaryOperator::GtEq => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(c) = cmp {
            return self.bind_cmp(left, c, right, false);
        }
        let pos = self.pos_of(left);
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                let word = if *op == BinaryOperator::And {
                    "AND"
                } else {
                    "OR"
                };
                let l = self.require_bool(self.bind(left)?, word)?;
                let r = self.require_bool(self.bind(right)?, word)?;
                let kind = if word == "AND" {
                    Kind::And(Box::new(l), Box::new(r))
                } else {
                    Kind::Or(Box::new(l), Box::new(r))
                };
                Ok(Bound {
                    kind,
                    ty: SqlType::Bool,
                    typmod: TYPMOD_NONE,
                    pos,
                })
            }
            BinaryOperator::StringConcat => {
                let (l, r) = (self.bind(left)?, self.bind(right)?);
                if let Some(b) = self.bind_array_or_jsonb_concat(left, l.clone(), r.clone(), pos)? {
                    return Ok(b);
                }
                let textual = |t: SqlType| t.is_string() || t == SqlType::Unknown;
                if !textual(l.ty) && !textual(r.ty) {
                    return Err(self.no_binary_op(left, "||", l.ty, r.ty));
                }
                // An unknown literal beside a non-text value is text (anynonarray || text);
                // char(n) becomes text without its padding.
                let l = if l.ty == SqlType::Unknown || l.ty == SqlType::Bpchar {
                    self.coerce(l, SqlType::Text, TYPMOD_NONE)?
                } else {
                    l
                };
                let r = if r.ty == SqlType::Unknown || r.ty == SqlType::Bpchar {
                    self.coerce(r, SqlType::Text, TYPMOD_NONE)?
                } else {
                    r
                };
                Ok(Bound {
                    kind: Kind::Concat(Box::new(l), Box::new(r)),
                    ty: SqlType::Text,
                    typmod: TYPMOD_NONE,
                    pos,
                })
            }
            BinaryOperator::BitwiseAnd
            | BinaryOperator::BitwiseOr
            | BinaryOperator::PGBitwiseXor
            | BinaryOperator::PGBitwiseShiftLeft
            | BinaryOperator::PGBitwiseShiftRight => self.bind_bitwise(left, op, right),
            other => match crate::pgcatalog::bind_binary(self, left, other, right)? {
                Some(b) => Ok(b),
                None => Err(not_supported(format!("operator {other}"))
                    .at(self.op_pos(left, &other.to_string()))),
            },
        }
    }

    /// `||` between arrays (array_cat, array_append, array_prepend) or jsonb values
    /// (jsonb_concat), as PostgreSQL resolves the operator: an unknown literal beside an
    /// array or a jsonb value takes its type. None: the text concatenation.
    fn bind_array_or_jsonb_concat(
        &self,
        left: &ast::Expr,
        l: Bound,
        r: Bound,
        pos: Option<usize>,
    ) -> Result<Option<Bound>, SqlError> {
        use crate::funcs::{builtin, Builtin};
        let (lt, rt) = (l.ty, r.ty);
        let no_operator = || self.no_binary_op(left, "||", lt, rt);
        // The operands' common element type (anycompatiblearray || anycompatible).
        let array_of_common = |a: SqlType, b: SqlType| {
            common_type([(a, None), (b, None)].into_iter(), "||")
                .ok()
                .and_then(SqlType::array_of)
                .ok_or_else(no_operator)
        };
        let (f, args, ty) = match (lt.element(), rt.element()) {
            (Some(_), None) if rt == SqlType::Unknown => {
                let r = self.coerce(r, lt, TYPMOD_NONE)?;
                (Builtin::ArrayCat, vec![l, r], lt)
            }
            (None, Some(_)) if lt == SqlType::Unknown => {
                let l = self.coerce(l, rt, TYPMOD_NONE)?;
                (Builtin::ArrayCat, vec![l, r], rt)
            }
            (Some(le), Some(re)) => {
                let ty = array_of_common(le, re)?;
                let (l, r) = (
                    self.coerce(l, ty, TYPMOD_NONE)?,
                    self.coerce(r, ty, TYPMOD_NONE)?,
                );
                (Builtin::ArrayCat, vec![l, r], ty)
            }
            (Some(le), None) => {
                let ty = array_of_common(le, rt)?;
                let elem = ty.element().expect("an array type");
                let (l, r) = (
                    self.coerce(l, ty, TYPMOD_NONE)?,
                    self.coerce(r, elem, TYPMOD_NONE)?,
                );
                (Builtin::ArrayAppend, vec![l, r], ty)
            }
            (None, Some(re)) => {
                let ty = array_of_common(lt, re)?;
                let elem = ty.element().expect("an array type");
                let (l, r) = (
                    self.coerce(l, elem, TYPMOD_NONE)?,
                    self.coerce(r, ty, TYPMOD_NONE)?,
                );
                (Builtin::ArrayPrepend, vec![l, r], ty)
            }
            (None, None) => {
                let jsonb = |t: SqlType| t == SqlType::Jsonb || t == SqlType::Unknown;
                if !(jsonb(lt) && jsonb(rt)) || (lt, rt) == (SqlType::Unknown, SqlType::Unknown) {
                    return Ok(None);
                }
                let l = self.coerce(l, SqlType::Jsonb, TYPMOD_NONE)?;
                let r = self.coerce(r, SqlType::Jsonb, TYPMOD_NONE)?;
                (Builtin::JsonbConcat, vec![l, r], SqlType::Jsonb)
            }
        };
        Ok(Some(builtin(f, args, ty, pos)))
    }

    /// `&`, `|`, `#` over integers of one width (the wider one's), `<<` and `>>` over the left
    /// operand's width by an integer count.
    fn bind_bitwise(
        &self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
    ) -> Result<Bound, SqlError> {
        use crate::funcs::BitOp;
        let (bit, symbol) = match op {
            BinaryOperator::BitwiseAnd => (BitOp::And, "&"),
            BinaryOperator::BitwiseOr => (BitOp::Or, "|"),
            BinaryOperator::PGBitwiseXor => (BitOp::Xor, "#"),
            BinaryOperator::PGBitwiseShiftLeft => (BitOp::ShiftLeft, "<<"),
            _ => (BitOp::ShiftRight, ">>"),
        };
        let (l, r) = (self.bind(left)?, self.bind(right)?);
        let integer = |t: SqlType| t.is_integer() || t == SqlType::Unknown;
        if !integer(l.ty) || !integer(r.ty) || (l.ty, r.ty) == (SqlType::Unknown, SqlType::Unknown)
        {
            return Err(self.no_binary_op(left, symbol, l.ty, r.ty));
        }
        let (l, r, ty) = match bit {
            BitOp::ShiftLeft | BitOp::ShiftRight => {
                let ty = if l.ty == SqlType::Unknown {
                    SqlType::Int4
                } else {
                    l.ty
                };
                let l = self.coerce(l, ty, TYPMOD_NONE)?;
                let r = self.coerce(r, SqlType::Int4, TYPMOD_NONE)?;
                (l, r, ty)
            }
            _ => self.unify(left, symbol, l, r, true)?,
        };
        let pos = self.pos_of(left);
        Ok(crate::funcs::builtin(
            crate::funcs::Builtin::Bitwise(bit),
            vec![l, r],
            ty,
            pos,
        ))
    }

    fn no_binary_op(&self, left: &ast::Expr, op: &str, l: SqlType, r: SqlType) -> SqlError {
        SqlError::new(
            UNDEFINED_FUNCTION,
            format!(
                "operator does not exist: {} {op} {}",
                l.sql_name(),
                r.sql_name()
            ),
        )
        .with_hint(&HINT_NO_OPERATOR)
        .at(self.op_pos(left, op))
    }

    /// Settles both operands' types for an operator that wants one common numeric type
    /// (`numeric_only`) or one comparable type.
    fn unify(
        &self,
        left: &ast::Expr,
        op: &str,
        l: Bound,
        r: Bound,
        numeric_only: bool,
    ) -> Result<(Bound, Bound, SqlType), SqlError> {
        use SqlType::Unknown;
        let target = match (l.ty, r.ty) {
            (Unknown, Unknown) if numeric_only => {
                return Err(SqlError::new(
                    AMBIGUOUS_FUNCTION,
                    format!("operator is not unique: unknown {op} unknown"),
                )
                .at(self.op_pos(left, op)))
            }
            (Unknown, Unknown) => SqlType::Text,
            (Unknown, t) | (t, Unknown) if t.numeric_rank().is_some() || !numeric_only => {
                if t.is_string() && t != SqlType::Bpchar {
                    SqlType::Text
                } else {
                    t
                }
            }
            // real with another numeric type is computed in double precision (float48pl…).
            (SqlType::Float4, b) | (b, SqlType::Float4)
                if b != SqlType::Float4 && b.numeric_rank().is_some() =>
            {
                SqlType::Float8
            }
            (a, b) => match (a.numeric_rank(), b.numeric_rank()) {
                (Some(x), Some(y)) => {
                    if x >= y {
                        a
                    } else {
                        b
                    }
                }
                _ if !numeric_only && a == b => a,
                _ if !numeric_only && a.is_string() && b.is_string() => SqlType::Text,
                // date < timestamp < timestamptz: the earlier is converted to the later.
                _ if !numeric_only
                    && matches!(a, SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz)
                    && matches!(b, SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz) =>
                {
                    if a == SqlType::TimestampTz || b == SqlType::TimestampTz {
                        SqlType::TimestampTz
                    } else {
                        SqlType::Timestamp
                    }
                }
                _ if !numeric_only && a == b => a,
                _ => return Err(self.no_binary_op(left, op, a, b)),
            },
        };
        if numeric_only && target.numeric_rank().is_none() {
            return Err(self.no_binary_op(left, op, l.ty, r.ty));
        }
        let as_is = |t: SqlType| t.is_string() && t != SqlType::Bpchar && target == SqlType::Text;
        let l = if as_is(l.ty) {
            l
        } else {
            self.coerce(l, target, TYPMOD_NONE)?
        };
        let r = if as_is(r.ty) {
            r
        } else {
            self.coerce(r, target, TYPMOD_NONE)?
        };
        Ok((l, r, target))
    }

    fn bind_arith(
        &self,
        left: &ast::Expr,
        a: Arith,
        op: &BinaryOperator,
        right: &ast::Expr,
    ) -> Result<Bound, SqlError> {
        let op_text = op.to_string();
        let (l, r) = (self.bind(left)?, self.bind(right)?);
        if l.ty.is_datetime() || r.ty.is_datetime() {
            return self.bind_datetime_arith(left, a, &op_text, l, r);
        }
        // `^` exists for float8 and numeric only; integers go to float8.
        let (l, r) = if a == Arith::Pow {
            let to = |b: Bound| {
                if b.ty.is_integer() || b.ty == SqlType::Unknown {
                    self.coerce(b, SqlType::Float8, TYPMOD_NONE)
                } else {
                    Ok(b)
                }
            };
            (to(l)?, to(r)?)
        } else {
            (l, r)
        };
        let (l, r, ty) = self.unify(left, &op_text, l, r, true)?;
        if (a == Arith::Mod && ty == SqlType::Float8) || (a == Arith::Pow && ty == SqlType::Numeric)
        {
            if a == Arith::Pow {
                return Err(not_supported("numeric ^ numeric").at(self.op_pos(left, &op_text)));
            }
            return Err(self.no_binary_op(left, &op_text, ty, ty));
        }
        let pos = self.pos_of(left);
        Ok(Bound {
            kind: Kind::Arith(a, Box::new(l), Box::new(r)),
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    /// The date/time operators: which operand types they take (an unknown literal is read
    /// as the type the operator wants there) and what they give.
    fn bind_datetime_arith(
        &self,
        left: &ast::Expr,
        a: Arith,
        op: &str,
        l: Bound,
        r: Bound,
    ) -> Result<Bound, SqlError> {
        use SqlType as T;
        let numeric = |t: T| t.numeric_rank().is_some();
        let (lt, rt) = (l.ty, r.ty);
        if (a, lt, rt) == (Arith::Add, T::Date, T::Unknown) {
            // date + integer, date + interval and date + time all fit: PostgreSQL refuses.
            return Err(SqlError::new(
                AMBIGUOUS_FUNCTION,
                "operator is not unique: date + unknown",
            )
            .at(self.op_pos(left, op)));
        }
        let signature: Option<(T, T, T)> = match (a, lt, rt) {
            (Arith::Add | Arith::Sub, T::Date, t) if t.is_integer() => {
                Some((T::Date, T::Int4, T::Date))
            }
            (Arith::Add, t, T::Date) if t.is_integer() => Some((T::Int4, T::Date, T::Date)),
            (Arith::Sub, T::Date, T::Date | T::Unknown) => Some((T::Date, T::Date, T::Int4)),
            (Arith::Add | Arith::Sub, T::Date, T::Interval) => {
                Some((T::Date, T::Interval, T::Timestamp))
            }
            (Arith::Add, T::Interval, T::Date) => Some((T::Interval, T::Date, T::Timestamp)),
            (Arith::Add, T::Date, T::Time) => Some((T::Date, T::Time, T::Timestamp)),
            (Arith::Add, T::Time, T::Date) => Some((T::Time, T::Date, T::Timestamp)),
            (Arith::Add | Arith::Sub, T::Time, T::Interval) => {
                Some((T::Time, T::Interval, T::Time))
            }
            (Arith::Add, T::Interval, T::Time) => Some((T::Interval, T::Time, T::Time)),
            (Arith::Sub, T::Time, T::Time | T::Unknown) => Some((T::Time, T::Time, T::Interval)),
            (Arith::Add, T::Time, T::Unknown) => Some((T::Time, T::Interval, T::Time)),
            (Arith::Add | Arith::Sub, T::Timestamp | T::TimestampTz, T::Interval) => {
                Some((lt, T::Interval, lt))
            }
            (Arith::Add, T::Timestamp | T::TimestampTz, T::Unknown) => Some((lt, T::Interval, lt)),
            (Arith::Add, T::Interval, T::Timestamp | T::TimestampTz) => Some((T::Interval, rt, rt)),
            (
                Arith::Sub,
                T::Timestamp | T::TimestampTz | T::Date,
                T::Timestamp | T::TimestampTz | T::Date | T::Unknown,
            )
            | (Arith::Sub, T::Unknown, T::Timestamp | T::TimestampTz) => {
                // Both sides become the later of the two in date < timestamp < timestamptz.
                let rank = |t: T| match t {
                    T::Date => 0,
                    T::Timestamp => 1,
                    T::TimestampTz => 2,
                    _ => -1,
                };
                let common = if rank(lt) >= rank(rt) { lt } else { rt };
                let common = if common == T::Date {
                    T::Timestamp
                } else {
                    common
                };
                Some((common, common, T::Interval))
            }
            (Arith::Add | Arith::Sub, T::Interval, T::Interval | T::Unknown)
            | (Arith::Add | Arith::Sub, T::Unknown, T::Interval) => {
                Some((T::Interval, T::Interval, T::Interval))
            }
            (Arith::Mul | Arith::Div, T::Interval, t) if numeric(t) || t == T::Unknown => Some((
                T::Interval,
                if t == T::Unknown { T::Float8 } else { t },
                T::Interval,
            )),
            (Arith::Mul, t, T::Interval) if numeric(t) || t == T::Unknown => Some((
                if t == T::Unknown { T::Float8 } else { t },
                T::Interval,
                T::Interval,
            )),
            _ => None,
        };
        let Some((want_l, want_r, result)) = signature else {
            return Err(self.no_binary_op(left, op, lt, rt));
        };
        let l = self.coerce(l, want_l, TYPMOD_NONE)?;
        let r = self.coerce(r, want_r, TYPMOD_NONE)?;
        let pos = self.pos_of(left);
        Ok(Bound {
            kind: Kind::Arith(a, Box::new(l), Box::new(r)),
            ty: result,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_cmp(
        &self,
        left: &ast::Expr,
        op: Cmp,
        right: &ast::Expr,
        null_safe: bool,
    ) -> Result<Bound, SqlError> {
        let op_text = match (op, null_safe) {
            (_, true) => "=",
            (Cmp::Eq, _) => "=",
            (Cmp::Ne, _) => "<>",
            (Cmp::Lt, _) => "<",
            (Cmp::Le, _) => "<=",
            (Cmp::Gt, _) => ">",
            (Cmp::Ge, _) => ">=",
        };
        let (l, r) = (self.bind(left)?, self.bind(right)?);
        let (l, r, _) = self.unify(left, op_text, l, r, false)?;
        let pos = self.pos_of(left);
        Ok(Bound {
            kind: Kind::Cmp {
                op,
                l: Box::new(l),
                r: Box::new(r),
                null_safe,
            },
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn is_null(&self, x: Bound, negated: bool) -> Bound {
        let pos = x.pos;
        Bound {
            kind: Kind::IsNull(Box::new(x), negated),
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        }
    }

    fn is_bool(
        &self,
        x: &ast::Expr,
        value: Option<bool>,
        negated: bool,
    ) -> Result<Bound, SqlError> {
        let b = self.require_bool(self.bind(x)?, "IS TRUE")?;
        let pos = b.pos;
        Ok(Bound {
            kind: Kind::IsBool(Box::new(b), value, negated),
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    /// `argument of AND must be type boolean, not type integer`, or the coerced operand.
    fn require_bool(&self, b: Bound, what: &str) -> Result<Bound, SqlError> {
        match b.ty {
            SqlType::Bool => Ok(b),
            SqlType::Unknown => self.coerce(b, SqlType::Bool, TYPMOD_NONE),
            other => Err(SqlError::new(
                DATATYPE_MISMATCH,
                format!(
                    "argument of {what} must be type boolean, not type {}",
                    other.sql_name()
                ),
            )
            .at(b.pos)),
        }
    }

    /// An explicit cast: as [`Binder::coerce`], except that a literal cast to varchar(n) or
    /// char(n) is cut to length rather than refused.
    fn explicit_cast(&self, b: Bound, ty: SqlType, typmod: i32) -> Result<Bound, SqlError> {
        if typmod >= 4 && matches!(ty, SqlType::Varchar | SqlType::Bpchar) {
            let whole = self.coerce(b, ty, TYPMOD_NONE)?;
            let pos = whole.pos;
            return Ok(Bound {
                kind: Kind::Cast(Box::new(whole)),
                ty,
                typmod,
                pos,
            });
        }
        self.coerce(b, ty, typmod)
    }

    /// Converts `b` to `ty`: an unknown literal goes through the type's input function now
    /// (so bad input fails at bind time, pointing at the literal); anything else gets a cast.
    pub(crate) fn coerce(&self, b: Bound, ty: SqlType, typmod: i32) -> Result<Bound, SqlError> {
        if b.ty == ty && typmod == TYPMOD_NONE {
            return Ok(b);
        }
        if let (Kind::Param(n), SqlType::Unknown) = (&b.kind, b.ty) {
            if let Some(params) = self.params {
                params.borrow_mut()[*n] = Some(ty);
            }
            return Ok(Bound {
                kind: Kind::Param(*n),
                ty,
                typmod: TYPMOD_NONE,
                pos: b.pos,
            });
        }
        if let (Kind::Const(d), SqlType::Unknown) = (&b.kind, b.ty) {
            let value = match d {
                Datum::Null => Datum::Null,
                Datum::Text(s) => {
                    types::input(ty, typmod, s, &self.session.style()).map_err(|e| e.at(b.pos))?
                }
                other => unreachable!("unknown-typed constant {other:?}"),
            };
            return Ok(Bound {
                kind: Kind::Const(value),
                ty,
                typmod,
                pos: b.pos,
            });
        }
        check_cast(b.ty, ty).map_err(|e| e.at(b.pos))?;
        let pos = b.pos;
        Ok(Bound {
            kind: Kind::Cast(Box::new(b)),
            ty,
            typmod,
            pos,
        })
    }

    fn bind_function(&self, f: &ast::Function, pos: Option<usize>) -> Result<Bound, SqlError> {
        let parts: Vec<String> = f
            .name
            .0
            .iter()
            .map(|p| p.as_ident().map(ident_name).unwrap_or_default())
            .collect();
        let name = match parts.as_slice() {
            [n] => n.clone(),
            [schema, n] if schema == "pg_catalog" => n.clone(),
            _ => parts.join("."),
        };
        if f.filter.is_some() {
            return Err(SqlError::new(
                WRONG_OBJECT_TYPE,
                format!("FILTER specified, but {name} is not an aggregate function"),
            )
            .at(pos));
        }
        if f.over.is_some()
            || !f.within_group.is_empty()
            || !matches!(f.parameters, ast::FunctionArguments::None)
        {
            return Err(not_supported(format!("{name} with FILTER, OVER or WITHIN GROUP")).at(pos));
        }
        let args = match &f.args {
            ast::FunctionArguments::None => None,
            ast::FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(not_supported(format!(
                        "{name} with DISTINCT, ORDER BY or other clauses"
                    ))
                    .at(pos));
                }
                if list.args.len() > FUNC_ARGS_MAX {
                    return Err(SqlError::new(
                        PROGRAM_LIMIT_EXCEEDED,
                        format!("cannot pass more than {FUNC_ARGS_MAX} arguments to a function"),
                    )
                    .at(pos));
                }
                let mut bound = Vec::with_capacity(list.args.len());
                for a in &list.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                            bound.push(self.bind(e)?)
                        }
                        other => {
                            return Err(not_supported(format!("function argument {other}")).at(pos))
                        }
                    }
                }
                Some(bound)
            }
            ast::FunctionArguments::Subquery(q) if name == "array" => {
                return self.bind_subquery(q, SubqueryMode::Array, pos)
            }
            ast::FunctionArguments::Subquery(_) => return Err(not_supported("subqueries").at(pos)),
        };
        // SQL-keyword functions are written without parentheses.
        if args.is_none() {
            return match name.as_str() {
                "current_user" | "session_user" | "user" | "current_role" => {
                    self.call(Func::CurrentUser, vec![], pos)
                }
                "current_schema" => self.call(Func::CurrentSchema, vec![], pos),
                "current_catalog" => self.call(Func::CurrentDatabase, vec![], pos),
                "current_timestamp" => Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::Now,
                    vec![],
                    SqlType::TimestampTz,
                    pos,
                )),
                "current_date" => Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::CurrentDate,
                    vec![],
                    SqlType::Date,
                    pos,
                )),
                "localtimestamp" => Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::LocalTimestamp,
                    vec![],
                    SqlType::Timestamp,
                    pos,
                )),
                "localtime" => Ok(crate::funcs::builtin(
                    crate::funcs::Builtin::LocalTime,
                    vec![],
                    SqlType::Time,
                    pos,
                )),
                "current_time" => Err(not_supported("type time with time zone").at(pos)),
                _ => Err(not_supported(format!("SQL function {name}")).at(pos)),
            };
        }
        let args = args.unwrap_or_default();
        if let Some(func) = match name.as_str() {
            "nextval" => Some(Func::NextVal),
            "currval" => Some(Func::CurrVal),
            "setval" => Some(Func::SetVal),
            _ => None,
        } {
            return self.bind_sequence_call(func, args, pos);
        }
        let arg_types: Vec<SqlType> = args.iter().map(|a| a.ty).collect();
        let textual = |t: &SqlType| t.is_string() || *t == SqlType::Unknown;
        let func = match (name.as_str(), arg_types.as_slice()) {
            ("version", []) => Some(Func::Version),
            ("pg_backend_pid", []) => Some(Func::BackendPid),
            ("current_database", []) => Some(Func::CurrentDatabase),
            ("current_schema", []) => Some(Func::CurrentSchema),
            ("length" | "char_length" | "character_length", [t]) if textual(t) => {
                Some(Func::Length)
            }
            ("upper", [t]) if textual(t) => Some(Func::Upper),
            ("lower", [t]) if textual(t) => Some(Func::Lower),
            ("abs", [t]) if t.numeric_rank().is_some() || *t == SqlType::Unknown => Some(Func::Abs),
            ("pg_typeof", [_]) => Some(Func::PgTypeof),
            ("coalesce", [_, ..]) => return self.bind_coalesce(args, pos),
            ("nullif", [_, _]) => return self.bind_nullif(args, pos),
            _ => None,
        };
        let Some(func) = func else {
            if let Some(b) = crate::funcs::bind(self, &name, &args, pos)? {
                return Ok(b);
            }
            if let Some(b) = crate::pgcatalog::bind_function(self, &name, &args, pos)? {
                return Ok(b);
            }
            let types: Vec<&str> = arg_types.iter().map(|t| t.sql_name()).collect();
            return Err(SqlError::new(
                UNDEFINED_FUNCTION,
                format!("function {name}({}) does not exist", types.join(", ")),
            )
            .with_hint(&HINT_NO_FUNCTION)
            .at(pos));
        };
        self.call(func, args, pos)
    }

    /// nextval('s'), currval('s'), setval('s', v [, is_called]): the sequence is resolved now
    /// (its name must be a constant, as PostgreSQL's `regclass` argument is in practice).
    fn bind_sequence_call(
        &self,
        func: Func,
        args: Vec<Bound>,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let arity_ok = match func {
            Func::SetVal => args.len() == 2 || args.len() == 3,
            _ => args.len() == 1,
        };
        let mut name = args.first().and_then(|a| match &a.kind {
            Kind::Const(Datum::Text(t)) => Some(t.clone()),
            Kind::Cast(inner) => match &inner.kind {
                Kind::Const(Datum::Text(t)) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        });
        // A catalog function of constants (`setval(pg_get_serial_sequence('t', 'id'), n)`,
        // as Django and Rails reset sequences) is fixed for the statement: evaluated now.
        if let Some(Kind::Pg(_, pg_args)) = args.first().map(|a| &a.kind) {
            if pg_args.iter().all(Bound::is_constant) {
                let env = Env::of(self.session);
                match eval(&args[0], &Eval::new(&env))? {
                    Datum::Text(t) => name = Some(t),
                    // Strict: a NULL sequence name gives NULL.
                    Datum::Null if arity_ok => {
                        return Ok(Bound::constant(Datum::Null, SqlType::Int8))
                    }
                    _ => {}
                }
            }
        }
        let (Some(name), true) = (name, arity_ok) else {
            return Err(not_supported(
                "sequence functions with a non-constant sequence name or these arguments",
            )
            .at(pos));
        };
        let Some(planner) = self.planner else {
            return Err(not_supported("sequence functions here").at(pos));
        };
        // As regclass reads it: `public."My-Table_id_seq"`, as pg_get_serial_sequence prints.
        let (schema, relname) = match crate::pgcatalog::name_parts(&name).as_slice() {
            [s, n] => (Some(s.clone()), n.clone()),
            [n] => (None, n.clone()),
            _ => (None, name.to_lowercase()),
        };
        let seq = planner
            .catalog
            .sequence(
                self.session.database(),
                planner.catalog.resolve_schema(
                    self.session.database(),
                    schema.as_deref(),
                    &self.session.search_path(),
                    &relname,
                ),
                &relname,
            )
            .ok_or_else(|| {
                SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                )
                .at(pos)
            })?;
        let mut bound = vec![
            konst(Datum::Int(i64::from(seq.id)), SqlType::Int8, pos),
            konst(Datum::Text(seq.name.clone()), SqlType::Text, pos),
        ];
        if func == Func::SetVal {
            let mut rest = args.into_iter().skip(1);
            let value = rest.next().expect("arity checked");
            bound.push(self.coerce(value, SqlType::Int8, TYPMOD_NONE)?);
            let called = rest
                .next()
                .map(|b| self.coerce(b, SqlType::Bool, TYPMOD_NONE))
                .transpose()?
                .unwrap_or_else(|| konst(Datum::Bool(true), SqlType::Bool, pos));
            bound.push(called);
        }
        Ok(Bound {
            kind: Kind::Func(func, bound),
            ty: SqlType::Int8,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn call(&self, func: Func, args: Vec<Bound>, pos: Option<usize>) -> Result<Bound, SqlError> {
        let ty = match func {
            Func::Version | Func::Upper | Func::Lower => SqlType::Text,
            Func::NextVal | Func::CurrVal | Func::SetVal => SqlType::Int8,
            Func::CurrentDatabase | Func::CurrentUser | Func::CurrentSchema => SqlType::Name,
            Func::BackendPid => SqlType::Int4,
            Func::Length => SqlType::Int4,
            // abs(unknown) resolves to the numeric category's preferred type, float8.
            Func::Abs => {
                if args[0].ty == SqlType::Unknown {
                    SqlType::Float8
                } else {
                    args[0].ty
                }
            }
            Func::PgTypeof => SqlType::RegType,
            Func::Builtin(_) => unreachable!("built-ins are bound by funcs::bind"),
        };
        let args = match func {
            Func::Abs => vec![self.coerce(
                args.into_iter().next().expect("abs has one argument"),
                ty,
                TYPMOD_NONE,
            )?],
            Func::Length | Func::Upper | Func::Lower => {
                let a = args.into_iter().next().expect("one argument");
                vec![if a.ty == SqlType::Unknown || a.ty == SqlType::Bpchar {
                    self.coerce(a, SqlType::Text, TYPMOD_NONE)?
                } else {
                    a
                }]
            }
            _ => args,
        };
        Ok(Bound {
            kind: Kind::Func(func, args),
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_coalesce(&self, args: Vec<Bound>, pos: Option<usize>) -> Result<Bound, SqlError> {
        let ty = common_type(args.iter().map(|a| (a.ty, a.pos)), "COALESCE")?;
        let args = args
            .into_iter()
            .map(|a| self.coerce(a, ty, TYPMOD_NONE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Bound {
            kind: Kind::Coalesce(args),
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_nullif(&self, args: Vec<Bound>, pos: Option<usize>) -> Result<Bound, SqlError> {
        let ty = common_type(args.iter().map(|a| (a.ty, a.pos)), "NULLIF")?;
        let mut it = args.into_iter().map(|a| self.coerce(a, ty, TYPMOD_NONE));
        let (a, b) = (
            it.next().expect("two arguments")?,
            it.next().expect("two arguments")?,
        );
        Ok(Bound {
            kind: Kind::NullIf(Box::new(a), Box::new(b)),
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }
}

fn ident_name(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// An integer literal is int4 if it fits, else int8, else numeric; one with a point or an
/// exponent is numeric.
fn number_literal(s: &str, negate: bool) -> Result<(Datum, SqlType), SqlError> {
    let text = if negate {
        format!("-{s}")
    } else {
        s.to_string()
    };
    let bad = || {
        SqlError::new(
            INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    };
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse::<i64>() {
            let ty = if i32::try_from(v).is_ok() {
                SqlType::Int4
            } else {
                SqlType::Int8
            };
            return Ok((Datum::Int(v), ty));
        }
    }
    let n = numeric::parse(&text).ok_or_else(bad)?;
    Ok((Datum::Numeric(n), SqlType::Numeric))
}

/// PostgreSQL's `select_common_type` for the types this slice has.
pub(crate) fn common_type(
    types: impl Iterator<Item = (SqlType, Option<usize>)>,
    context: &str,
) -> Result<SqlType, SqlError> {
    let mut common: Option<SqlType> = None;
    for (t, pos) in types {
        if t == SqlType::Unknown {
            continue;
        }
        common = Some(match common {
            None => t,
            Some(c) if c == t => c,
            Some(c) => match (c.numeric_rank(), t.numeric_rank()) {
                (Some(x), Some(y)) => {
                    if x >= y {
                        c
                    } else {
                        t
                    }
                }
                _ if c.is_string() && t.is_string() => SqlType::Text,
                _ => {
                    return Err(SqlError::new(
                        DATATYPE_MISMATCH,
                        format!(
                            "{context} types {} and {} cannot be matched",
                            c.sql_name(),
                            t.sql_name()
                        ),
                    )
                    .at(pos))
                }
            },
        });
    }
    Ok(common.unwrap_or(SqlType::Text))
}

/// Which casts exist (explicitly); see [`types::cast`] for what they do.
fn check_cast(from: SqlType, to: SqlType) -> Result<(), SqlError> {
    let ok = from == to
        || from.is_string()
        || from == SqlType::Unknown
        || to.is_string()
        || (from.numeric_rank().is_some() && to.numeric_rank().is_some())
        || (from == SqlType::Int4 && to == SqlType::Bool)
        || (from == SqlType::Bool && to == SqlType::Int4)
        || datetime_cast_exists(from, to)
        || matches!((from.element(), to.element()), (Some(f), Some(t)) if check_cast(f, t).is_ok());
    if ok && to != SqlType::RegType && from != SqlType::RegType
        || (from == SqlType::RegType && to.is_string())
    {
        return Ok(());
    }
    Err(SqlError::new(
        CANNOT_COERCE,
        format!("cannot cast type {} to {}", from.sql_name(), to.sql_name()),
    ))
}

pub(crate) fn datetime_cast_exists(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    matches!(
        (from, to),
        (
            T::Date | T::Timestamp | T::TimestampTz,
            T::Date | T::Timestamp | T::TimestampTz
        ) | (T::Timestamp | T::TimestampTz, T::Time)
            | (T::Time, T::Interval)
            | (T::Interval, T::Time)
    )
}

/// A type name as written in a cast → type and typmod.
pub(crate) fn resolve_type(t: &ast::DataType) -> Result<(SqlType, i32), SqlError> {
    use ast::DataType as D;
    let none = TYPMOD_NONE;
    Ok(match t {
        D::Int2(None) | D::SmallInt(None) => (SqlType::Int2, none),
        D::Int(None) | D::Int4(None) | D::Integer(None) => (SqlType::Int4, none),
        D::Int8(None) | D::BigInt(None) => (SqlType::Int8, none),
        D::Numeric(info) | D::Decimal(info) => (
            SqlType::Numeric,
            match info {
                ast::ExactNumberInfo::None => none,
                ast::ExactNumberInfo::Precision(p) => numeric::typmod(*p, 0)?,
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => numeric::typmod(*p, *s)?,
            },
        ),
        D::Float8 | D::DoublePrecision | D::Float(ast::ExactNumberInfo::None) => {
            (SqlType::Float8, none)
        }
        D::Text => (SqlType::Text, none),
        D::Varchar(len) | D::CharacterVarying(len) => (
            SqlType::Varchar,
            match len {
                None => none,
                Some(ast::CharacterLength::IntegerLength { length, .. })
                    if *length >= 1 && *length <= 10_485_760 =>
                {
                    *length as i32 + 4
                }
                Some(_) => {
                    return Err(SqlError::new(
                        INVALID_PARAMETER_VALUE,
                        "length for type varchar must be between 1 and 10485760",
                    ))
                }
            },
        ),
        D::Bool | D::Boolean => (SqlType::Bool, none),
        D::Real | D::Float4 => (SqlType::Float4, none),
        D::Float(ast::ExactNumberInfo::Precision(p)) => match p {
            1..=24 => (SqlType::Float4, none),
            25..=53 => (SqlType::Float8, none),
            _ => {
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    if *p == 0 {
                        "precision for type float must be at least 1 bit"
                    } else {
                        "precision for type float must be less than 54 bits"
                    },
                ))
            }
        },
        D::Char(len) | D::Character(len) => (
            SqlType::Bpchar,
            match len {
                None => 1 + 4,
                Some(ast::CharacterLength::IntegerLength { length, .. })
                    if *length >= 1 && *length <= 10_485_760 =>
                {
                    *length as i32 + 4
                }
                Some(_) => {
                    return Err(SqlError::new(
                        INVALID_PARAMETER_VALUE,
                        "length for type char must be between 1 and 10485760",
                    ))
                }
            },
        ),
        D::Bytea => (SqlType::Bytea, none),
        D::Date => (SqlType::Date, none),
        D::Time(p, tz) => {
            if matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) {
                return Err(not_supported("type time with time zone"));
            }
            (SqlType::Time, time_precision(*p)?)
        }
        D::Timestamp(p, tz) => (
            match tz {
                ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => SqlType::TimestampTz,
                _ => SqlType::Timestamp,
            },
            time_precision(*p)?,
        ),
        D::Interval {
            fields: None,
            precision,
        } => (SqlType::Interval, time_precision(*precision)?),
        D::Uuid => (SqlType::Uuid, none),
        D::JSONB => (SqlType::Jsonb, none),
        D::JSON => return Err(not_supported("type json (use jsonb)")),
        D::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::Qualified(inner, _),
        ) => {
            let (elem, typmod) = resolve_type(inner)?;
            let array = elem
                .array_of()
                .ok_or_else(|| not_supported(format!("arrays of {}", elem.sql_name())))?;
            (array, typmod)
        }
        D::Custom(name, mods) if mods.is_empty() && name.0.len() == 1 => {
            let n = name.0[0].as_ident().map(ident_name).unwrap_or_default();
            match n.as_str() {
                "name" => (SqlType::Name, none),
                "regtype" => (SqlType::RegType, none),
                "int2" => (SqlType::Int2, none),
                "int4" => (SqlType::Int4, none),
                "int8" => (SqlType::Int8, none),
                "float4" => (SqlType::Float4, none),
                "float8" => (SqlType::Float8, none),
                "bool" => (SqlType::Bool, none),
                "bpchar" => (SqlType::Bpchar, none),
                "timestamptz" => (SqlType::TimestampTz, none),
                "jsonb" => (SqlType::Jsonb, none),
                "uuid" => (SqlType::Uuid, none),
                _ => {
                    return Err(SqlError::new(
                        UNDEFINED_OBJECT,
                        format!("type \"{n}\" does not exist"),
                    ))
                }
            }
        }
        other => return Err(not_supported(format!("type {other}"))),
    })
}

/// A field name of EXTRACT or an INTERVAL literal, lowercased.
fn datetime_field_name(f: &ast::DateTimeField) -> String {
    match f {
        ast::DateTimeField::Custom(id) => ident_name(id),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// The fractional-second digits of time(p), timestamp(p), interval(p): the typmod is p.
fn time_precision(p: Option<u64>) -> Result<i32, SqlError> {
    match p {
        None => Ok(TYPMOD_NONE),
        Some(p) if p <= 6 => Ok(p as i32),
        // PostgreSQL warns and uses 6.
        Some(_) => Ok(6),
    }
}

/// PostgreSQL's `FigureColname`: the name a select-list item gets without an alias, and how
/// strong that choice is (2 = column/function name, 1 = type name of a cast, 0 = none).
pub(crate) fn column_name(e: &ast::Expr) -> (String, u8) {
    match e {
        ast::Expr::Identifier(id) => (ident_name(id), 2),
        ast::Expr::CompoundIdentifier(ids) => (ids.last().map(ident_name).unwrap_or_default(), 2),
        ast::Expr::Nested(inner) => column_name(inner),
        ast::Expr::Function(f) => {
            let last = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(ident_name)
                .unwrap_or_default();
            (last, 2)
        }
        ast::Expr::Cast {
            expr, data_type, ..
        } => cast_name(column_name(expr), data_type),
        ast::Expr::TypedString(ts) => cast_name(("?column?".to_string(), 0), &ts.data_type),
        ast::Expr::Case { .. } => ("case".to_string(), 2),
        ast::Expr::Exists { .. } => ("exists".to_string(), 2),
        // `a[1]` is named after `a`; `(x).f` after its last field.
        // `t.col[i]`: the last field named (`col`), else the root's name.
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            match access_chain.iter().rev().find_map(|a| match a {
                ast::AccessExpr::Dot(ast::Expr::Identifier(field)) => Some(field),
                _ => None,
            }) {
                Some(field) => (ident_name(field), 2),
                None => column_name(root),
            }
        }
        ast::Expr::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.as_slice() {
                [ast::SelectItem::UnnamedExpr(e)] => column_name(e),
                [ast::SelectItem::ExprWithAlias { alias, .. }] => (ident_name(alias), 2),
                _ => ("?column?".to_string(), 0),
            },
            _ => ("?column?".to_string(), 0),
        },
        _ => ("?column?".to_string(), 0),
    }
}

fn cast_name(inner: (String, u8), t: &ast::DataType) -> (String, u8) {
    if inner.1 > 1 {
        return inner;
    }
    match resolve_type(t) {
        // The type's name as written, without the brackets: `::text[]` names a column "text".
        Ok((SqlType::Array(elem), _)) => (elem.type_name().to_string(), 1),
        Ok((ty, _)) => (ty.type_name().to_string(), 1),
        Err(_) => crate::pgcatalog::cast_type_name(t).map_or(inner, |n| (n, 1)),
    }
}

/// What evaluation needs from the session; cloned into shard fragments.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    pub(crate) user: String,
    pub(crate) database: String,
    /// extra_float_digits, TimeZone, DateStyle and the transaction's start.
    pub(crate) style: types::Style,
    /// `$n` values, already of their parameters' types.
    pub(crate) params: Vec<Datum>,
    /// Set when the client cancels the statement (CancelRequest); long loops check it.
    pub(crate) cancel: crate::session::CancelFlag,
    /// Sequence values reserved for this statement, and the session's currval values.
    pub(crate) sequences: Arc<StatementSequences>,
    pub(crate) backend_pid: i32,
    /// The first schema of search_path (`current_schema()`).
    pub(crate) current_schema: Option<String>,
    /// Batches are evaluated as vectors (`helios.vectorized`, on unless set off).
    pub(crate) vectorized: bool,
}

impl Env {
    pub(crate) fn of(session: &Session) -> Env {
        Env {
            user: session.user().to_string(),
            database: session.database().to_string(),
            style: session.style(),
            params: Vec::new(),
            cancel: session.cancel_flag(),
            sequences: Arc::new(StatementSequences {
                reserved: Default::default(),
                set: Default::default(),
                last: session.sequence_values(),
            }),
            backend_pid: session.backend_pid(),
            current_schema: session
                .search_path()
                .iter()
                .find(|s| *s != session.user())
                .cloned(),
            vectorized: session
                .parameter("helios.vectorized")
                .is_none_or(|v| crate::session::parse_bool(v) != Some(false)),
        }
    }

    /// Fails with 57014 once the statement has been cancelled.
    pub(crate) fn check_cancelled(&self) -> Result<(), SqlError> {
        self.cancel.check()
    }
}

/// A statement's sequence values: nextval values reserved on shard 0 before evaluation (the
/// evaluator is synchronous; reserving is a round trip), the setval calls already carried
/// out, and the session's last value of each sequence (currval).
#[derive(Debug)]
pub(crate) struct StatementSequences {
    pub(crate) reserved: std::sync::Mutex<HashMap<u32, std::collections::VecDeque<i64>>>,
    pub(crate) set: std::sync::Mutex<HashSet<u32>>,
    pub(crate) last: crate::session::SequenceValues,
}

/// Evaluation context: the environment, the current row, the enclosing queries' rows (for
/// correlated subqueries) and the fetched table rows subqueries read.
pub(crate) struct Eval<'a> {
    pub(crate) env: &'a Env,
    pub(crate) row: &'a [Datum],
    pub(crate) outer: Option<&'a Eval<'a>>,
    pub(crate) inputs: Option<&'a crate::exec::Inputs>,
}

impl<'a> Eval<'a> {
    pub(crate) fn new(env: &'a Env) -> Eval<'a> {
        Eval::over_row(env, &[])
    }

    /// Evaluation over one row: no enclosing row, no other fetches' rows (row-local
    /// expressions: a shard's fragments, a write's filter, COPY's WHERE).
    pub(crate) fn over_row(env: &'a Env, row: &'a [Datum]) -> Eval<'a> {
        Eval {
            env,
            row,
            outer: None,
            inputs: None,
        }
    }
}

/// True when `row` passes `filter` as a WHERE does: only a true result passes (false and
/// NULL do not); no filter passes everything.
pub(crate) fn passes(filter: Option<&Bound>, env: &Env, row: &[Datum]) -> Result<bool, SqlError> {
    match filter {
        None => Ok(true),
        Some(f) => Ok(eval(f, &Eval::over_row(env, row))? == Datum::Bool(true)),
    }
}

pub(crate) fn cmp_result(op: Cmp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Cmp::Eq => ord == Equal,
        Cmp::Ne => ord != Equal,
        Cmp::Lt => ord == Less,
        Cmp::Le => ord != Greater,
        Cmp::Gt => ord == Greater,
        Cmp::Ge => ord != Less,
    }
}

/// float8 ordering as PostgreSQL's: NaN equals NaN and sorts above everything; -0 = 0.
fn float_cmp(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

pub(crate) fn compare(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    match (a, b) {
        (Datum::Bool(x), Datum::Bool(y)) => x.cmp(y),
        (Datum::Int(x), Datum::Int(y)) => x.cmp(y),
        (Datum::Numeric(x), Datum::Numeric(y)) => x.cmp(y),
        (Datum::Float(x), Datum::Float(y)) => float_cmp(*x, *y),
        // Byte order: the "C" collation.
        (Datum::Text(x), Datum::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Datum::Type(x), Datum::Type(y)) => x.oid().cmp(&y.oid()),
        (Datum::Float4(x), Datum::Float4(y)) => float_cmp(f64::from(*x), f64::from(*y)),
        (Datum::Bytes(x), Datum::Bytes(y)) => x.cmp(y),
        (Datum::Date(x), Datum::Date(y)) => x.cmp(y),
        (Datum::Time(x), Datum::Time(y))
        | (Datum::Timestamp(x), Datum::Timestamp(y))
        | (Datum::TimestampTz(x), Datum::TimestampTz(y)) => x.cmp(y),
        (Datum::Interval(x), Datum::Interval(y)) => x.span().cmp(&y.span()),
        (Datum::Uuid(x), Datum::Uuid(y)) => x.cmp(y),
        (Datum::Json(x), Datum::Json(y)) => x.as_bytes().cmp(y.as_bytes()),
        // Element by element, NULL above everything, then the shorter array first.
        (Datum::Array(x), Datum::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(a, b)| compare_nullable(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (x, y) => unreachable!("comparison of differently typed values {x:?} and {y:?}"),
    }
}

fn float_result(v: f64, inputs_finite: bool, zero_ok: bool) -> Result<Datum, SqlError> {
    if v.is_infinite() && inputs_finite {
        return Err(SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: overflow",
        ));
    }
    if v == 0.0 && !zero_ok {
        return Err(SqlError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: underflow",
        ));
    }
    Ok(Datum::Float(v))
}

/// Integer arithmetic on a type of `ty`'s width: error iff the exact result is out of range.
fn int_arith(a: Arith, ty: SqlType, x: i64, y: i64) -> Result<Datum, SqlError> {
    let division_by_zero = || SqlError::new(DIVISION_BY_ZERO, "division by zero");
    let v = match a {
        Arith::Add => x.checked_add(y),
        Arith::Sub => x.checked_sub(y),
        Arith::Mul => x.checked_mul(y),
        Arith::Div if y == 0 => return Err(division_by_zero()),
        Arith::Div => x.checked_div(y),
        Arith::Mod if y == 0 => return Err(division_by_zero()),
        // PostgreSQL special-cases -1 so that MIN % -1 is 0, not an overflow.
        Arith::Mod => Some(if y == -1 { 0 } else { x % y }),
        Arith::Pow => unreachable!("integer ^ is bound as float8"),
    };
    ty.check_int(v)
}

pub(crate) fn arith(
    a: Arith,
    ty: SqlType,
    x: Datum,
    y: Datum,
    style: &types::Style,
) -> Result<Datum, SqlError> {
    use crate::datetime as dt;
    let sign = if a == Arith::Sub { -1 } else { 1 };
    match (x, y) {
        (Datum::Float4(x), Datum::Float4(y)) => {
            match arith(
                a,
                SqlType::Float8,
                Datum::Float(f64::from(x)),
                Datum::Float(f64::from(y)),
                style,
            )? {
                Datum::Float(v) => {
                    let f = v as f32;
                    if f.is_infinite() && v.is_finite() {
                        return Err(SqlError::new(
                            NUMERIC_VALUE_OUT_OF_RANGE,
                            "value out of range: overflow",
                        ));
                    }
                    Ok(Datum::Float4(f))
                }
                other => Ok(other),
            }
        }
        (Datum::Date(d), Datum::Int(n)) | (Datum::Int(n), Datum::Date(d)) => {
            if d == dt::DATE_POS_INFINITY || d == dt::DATE_NEG_INFINITY {
                return Ok(Datum::Date(d));
            }
            let v = i64::from(d) + i64::from(sign) * n;
            i32::try_from(v)
                .ok()
                .filter(|v| {
                    *v != dt::DATE_POS_INFINITY
                        && *v != dt::DATE_NEG_INFINITY
                        && dt::date_in_range(*v)
                })
                .map(Datum::Date)
                .ok_or_else(|| SqlError::new(DATETIME_FIELD_OVERFLOW, "date out of range"))
        }
        (Datum::Date(x), Datum::Date(y)) => {
            let finite = |d: i32| d != dt::DATE_POS_INFINITY && d != dt::DATE_NEG_INFINITY;
            if !finite(x) || !finite(y) {
                return Err(SqlError::new(
                    DATETIME_FIELD_OVERFLOW,
                    "cannot subtract infinite dates",
                ));
            }
            ty.check_int(Some(i64::from(x) - i64::from(y)))
        }
        (Datum::Date(d), Datum::Interval(iv)) | (Datum::Interval(iv), Datum::Date(d)) => {
            let iv = if sign < 0 {
                dt::negate_interval(&iv)?
            } else {
                iv
            };
            dt::timestamp_plus_interval(dt::date_to_timestamp(d)?, &iv).map(Datum::Timestamp)
        }
        (Datum::Date(d), Datum::Time(t)) | (Datum::Time(t), Datum::Date(d)) => {
            let ts = dt::date_to_timestamp(d)?;
            Ok(Datum::Timestamp(if dt::is_infinite(ts) {
                ts
            } else {
                ts + t
            }))
        }
        (Datum::Timestamp(ts), Datum::Interval(iv))
        | (Datum::Interval(iv), Datum::Timestamp(ts)) => {
            let iv = if sign < 0 {
                dt::negate_interval(&iv)?
            } else {
                iv
            };
            dt::timestamp_plus_interval(ts, &iv).map(Datum::Timestamp)
        }
        (Datum::TimestampTz(ts), Datum::Interval(iv))
        | (Datum::Interval(iv), Datum::TimestampTz(ts)) => {
            let iv = if sign < 0 {
                dt::negate_interval(&iv)?
            } else {
                iv
            };
            dt::timestamptz_plus_interval(ts, &iv, &style.zone).map(Datum::TimestampTz)
        }
        (Datum::Timestamp(x), Datum::Timestamp(y))
        | (Datum::TimestampTz(x), Datum::TimestampTz(y)) => {
            dt::timestamp_diff(x, y).map(Datum::Interval)
        }
        (Datum::Time(t), Datum::Interval(iv)) | (Datum::Interval(iv), Datum::Time(t)) => {
            let iv = if sign < 0 {
                dt::negate_interval(&iv)?
            } else {
                iv
            };
            Ok(Datum::Time(dt::time_plus_interval(t, &iv)))
        }
        (Datum::Time(x), Datum::Time(y)) => Ok(Datum::Interval(dt::Interval {
            months: 0,
            days: 0,
            micros: x - y,
        })),
        (Datum::Interval(x), Datum::Interval(y)) => {
            dt::add_intervals(&x, &y, sign).map(Datum::Interval)
        }
        (Datum::Interval(iv), n) | (n, Datum::Interval(iv)) => {
            let factor = match n {
                Datum::Int(v) => v as f64,
                Datum::Float(f) => f,
                Datum::Float4(f) => f64::from(f),
                Datum::Numeric(n) => numeric::to_text(&n).parse().unwrap_or(f64::NAN),
                other => unreachable!("interval arithmetic with {other:?}"),
            };
            if a == Arith::Div {
                if factor == 0.0 {
                    return Err(SqlError::new(DIVISION_BY_ZERO, "division by zero"));
                }
                return dt::divide_interval(&iv, factor).map(Datum::Interval);
            }
            dt::scale_interval(&iv, factor).map(Datum::Interval)
        }
        (Datum::Int(x), Datum::Int(y)) => int_arith(a, ty, x, y),
        (Datum::Numeric(x), Datum::Numeric(y)) => Ok(Datum::Numeric(match a {
            Arith::Add => x + y,
            Arith::Sub => x - y,
            Arith::Mul => x * y,
            Arith::Div => numeric::div(&x, &y)?,
            Arith::Mod => numeric::rem(&x, &y)?,
            Arith::Pow => unreachable!("numeric ^ is refused at bind time"),
        })),
        (Datum::Float(x), Datum::Float(y)) => {
            let finite = x.is_finite() && y.is_finite();
            match a {
                Arith::Add => float_result(x + y, finite, true),
                Arith::Sub => float_result(x - y, finite, true),
                Arith::Mul => float_result(x * y, finite, x == 0.0 || y == 0.0),
                Arith::Div if y == 0.0 => Err(SqlError::new(DIVISION_BY_ZERO, "division by zero")),
                Arith::Div => float_result(x / y, finite, x == 0.0 || y.is_infinite()),
                Arith::Pow => {
                    if x == 0.0 && y < 0.0 {
                        return Err(SqlError::new(
                            "2201F",
                            "zero raised to a negative power is undefined",
                        ));
                    }
                    if x < 0.0 && y.fract() != 0.0 {
                        return Err(SqlError::new("2201F", "a negative number raised to a non-integer power yields a complex result"));
                    }
                    float_result(x.powf(y), finite, x == 0.0 || x.abs() >= 1.0 || y <= 0.0)
                }
                Arith::Mod => unreachable!("float8 % is refused at bind time"),
            }
        }
        (x, y) => unreachable!("arithmetic on {x:?} and {y:?}"),
    }
}

/// A comparison's value: `x op y` over operands of type `ty`, NULL when either is NULL,
/// unless `null_safe` (IS [NOT] DISTINCT FROM), where NULLs compare as equal to each other.
pub(crate) fn compare_op(op: Cmp, null_safe: bool, ty: SqlType, x: &Datum, y: &Datum) -> Datum {
    let ord = |x: &Datum, y: &Datum| match (x, y) {
        // char(n) compares without its trailing blanks.
        (Datum::Text(a), Datum::Text(b)) if ty == SqlType::Bpchar => {
            a.trim_end_matches(' ').cmp(b.trim_end_matches(' '))
        }
        _ => compare(x, y),
    };
    match (x.is_null(), y.is_null(), null_safe) {
        (false, false, _) => Datum::Bool(cmp_result(op, ord(x, y))),
        (_, _, false) => Datum::Null,
        (xn, yn, true) => Datum::Bool(cmp_result(
            op,
            if xn == yn {
                std::cmp::Ordering::Equal
            } else {
                std::cmp::Ordering::Less
            },
        )),
    }
}

/// AND (`is_and`) or OR of two truth values under three-valued logic (None: unknown).
pub(crate) fn and_or(is_and: bool, x: Option<bool>, y: Option<bool>) -> Datum {
    match (x, y) {
        (Some(p), Some(q)) => Datum::Bool(if is_and { p && q } else { p || q }),
        (Some(v), None) | (None, Some(v)) if v != is_and => Datum::Bool(v),
        _ => Datum::Null,
    }
}

pub(crate) fn eval(b: &Bound, cx: &Eval) -> Result<Datum, SqlError> {
    let digits = &cx.env.style;
    match &b.kind {
        Kind::Const(d) => Ok(d.clone()),
        Kind::Column(i) => Ok(cx.row[*i].clone()),
        Kind::Outer(depth, i) => {
            let mut at = cx;
            for _ in 0..*depth {
                at = at.outer.expect("an outer row for every outer reference");
            }
            Ok(at.row[*i].clone())
        }
        Kind::Param(n) => Ok(cx.env.params.get(*n).cloned().unwrap_or(Datum::Null)),
        Kind::Case {
            operand,
            whens,
            otherwise,
        } => {
            let subject = match operand {
                Some(o) => Some(eval(o, cx)?),
                None => None,
            };
            for (when, then) in whens {
                let hit = match &subject {
                    // `CASE x WHEN v`: x = v, where a NULL on either side never matches.
                    Some(x) => {
                        let v = eval(when, cx)?;
                        !x.is_null() && !v.is_null() && compare(x, &v) == std::cmp::Ordering::Equal
                    }
                    None => eval(when, cx)? == Datum::Bool(true),
                };
                if hit {
                    return eval(then, cx);
                }
            }
            match otherwise {
                Some(e) => eval(e, cx),
                None => Ok(Datum::Null),
            }
        }
        Kind::InList { x, list, negated } => {
            let v = eval(x, cx)?;
            let mut saw_null = v.is_null();
            let mut found = false;
            if !saw_null {
                for item in list {
                    let w = eval(item, cx)?;
                    if w.is_null() {
                        saw_null = true;
                    } else if compare(&v, &w) == std::cmp::Ordering::Equal {
                        found = true;
                        break;
                    }
                }
            }
            Ok(match (found, saw_null) {
                (true, _) => Datum::Bool(!negated),
                (false, true) => Datum::Null,
                (false, false) => Datum::Bool(*negated),
            })
        }
        Kind::Like {
            x,
            pattern,
            negated,
            case_insensitive,
        } => {
            let (v, p) = (eval(x, cx)?, eval(pattern, cx)?);
            match (v, p) {
                (Datum::Text(v), Datum::Text(p)) => {
                    let hit = if *case_insensitive {
                        like(&v.to_lowercase(), &p.to_lowercase())?
                    } else {
                        like(&v, &p)?
                    };
                    Ok(Datum::Bool(hit != *negated))
                }
                _ => Ok(Datum::Null),
            }
        }
        Kind::Subquery(sq) => crate::exec::eval_subquery(sq, cx),
        Kind::Pg(call, args) => crate::pgcatalog::eval(call, args, b, cx),
        Kind::Neg(x) => match eval(x, cx)? {
            Datum::Null => Ok(Datum::Null),
            Datum::Int(v) => b.ty.check_int(v.checked_neg()),
            Datum::Numeric(n) => Ok(Datum::Numeric(-n)),
            Datum::Float(f) => Ok(Datum::Float(-f)),
            Datum::Float4(f) => Ok(Datum::Float4(-f)),
            Datum::Interval(iv) => Ok(Datum::Interval(crate::datetime::negate_interval(&iv)?)),
            other => unreachable!("negation of {other:?}"),
        },
        Kind::Arith(a, l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            if x.is_null() || y.is_null() {
                return Ok(Datum::Null);
            }
            arith(*a, b.ty, x, y, &cx.env.style)
        }
        Kind::Cmp {
            op,
            l,
            r,
            null_safe,
        } => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            Ok(compare_op(*op, *null_safe, l.ty, &x, &y))
        }
        Kind::Concat(l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            // A non-text operand is cast to text, and boolean's cast says `true` where its
            // output function says `t`.
            let as_text = |d: &Datum| match d {
                Datum::Bool(b) => Some(b.to_string()),
                d => types::output(d, digits),
            };
            match (as_text(&x), as_text(&y)) {
                (Some(x), Some(y)) => Ok(Datum::Text(x + &y)),
                _ => Ok(Datum::Null),
            }
        }
        // Both sides are evaluated (PostgreSQL folds every constant argument), then combined
        // with three-valued logic.
        Kind::And(l, r) | Kind::Or(l, r) => {
            let is_and = matches!(b.kind, Kind::And(..));
            let x = as_bool(eval(l, cx)?);
            // A decided left side skips a right side that reads the row (PostgreSQL stops
            // there at run time), but not a constant one, which PostgreSQL folds (and fails
            // on) at plan time.
            if x == Some(!is_and) && !r.is_constant() {
                return Ok(Datum::Bool(!is_and));
            }
            let y = as_bool(eval(r, cx)?);
            Ok(and_or(is_and, x, y))
        }
        Kind::Not(x) => Ok(as_bool(eval(x, cx)?).map_or(Datum::Null, |v| Datum::Bool(!v))),
        Kind::IsNull(x, negated) => Ok(Datum::Bool((eval(x, cx)?.is_null()) != *negated)),
        Kind::IsBool(x, value, negated) => {
            Ok(Datum::Bool((as_bool(eval(x, cx)?) == *value) != *negated))
        }
        Kind::Cast(x) => types::cast(eval(x, cx)?, x.ty, b.ty, b.typmod, digits),
        Kind::Func(f, args) => call(*f, args, cx),
        Kind::Coalesce(args) => {
            // Lazy, like PostgreSQL: arguments after the first non-null are not evaluated.
            for a in args {
                let v = eval(a, cx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Ok(Datum::Null)
        }
        Kind::NullIf(l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            if !x.is_null() && !y.is_null() && compare(&x, &y) == std::cmp::Ordering::Equal {
                Ok(Datum::Null)
            } else {
                Ok(x)
            }
        }
    }
}

pub(crate) fn as_bool(d: Datum) -> Option<bool> {
    match d {
        Datum::Bool(v) => Some(v),
        Datum::Null => None,
        other => unreachable!("boolean operand {other:?}"),
    }
}

/// `version()`'s text: clients look for the leading "PostgreSQL 16".
pub(crate) const VERSION_TEXT: &str =
    "PostgreSQL 16.4 (HeliosDB 0.1.0) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit";

fn call(f: Func, args: &[Bound], cx: &Eval) -> Result<Datum, SqlError> {
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        values.push(eval(a, cx)?);
    }
    let s = cx.env;
    Ok(match (f, values.as_slice()) {
        (Func::NextVal, [Datum::Int(id), Datum::Text(name), ..]) => {
            let id = *id as u32;
            let value = s
                .sequences
                .reserved
                .lock()
                .ok()
                .and_then(|mut r| r.get_mut(&id).and_then(|q| q.pop_front()))
                .ok_or_else(|| {
                    not_supported(format!(
                        "nextval('{name}') here (it runs in INSERT ... VALUES, column defaults and SELECT without FROM)"
                    ))
                })?;
            if let Ok(mut last) = s.sequences.last.lock() {
                last.insert(id, value);
            }
            Datum::Int(value)
        }
        (Func::CurrVal, [Datum::Int(id), Datum::Text(name), ..]) => {
            let last = s
                .sequences
                .last
                .lock()
                .ok()
                .and_then(|l| l.get(&(*id as u32)).copied());
            Datum::Int(last.ok_or_else(|| {
                SqlError::new(
                    "55000",
                    format!("currval of sequence \"{name}\" is not yet defined in this session"),
                )
            })?)
        }
        (Func::SetVal, [Datum::Int(id), Datum::Text(name), value, ..]) => {
            let done = s
                .sequences
                .set
                .lock()
                .is_ok_and(|set| set.contains(&(*id as u32)));
            if !done {
                return Err(not_supported(format!(
                    "setval('{name}') here (it runs in SELECT without FROM)"
                )));
            }
            value.clone()
        }
        (Func::Version, _) => Datum::Text(VERSION_TEXT.to_string()),
        (Func::BackendPid, _) => Datum::Int(i64::from(s.backend_pid)),
        (Func::CurrentDatabase, _) => Datum::Text(s.database.clone()),
        (Func::CurrentUser, _) => Datum::Text(s.user.clone()),
        (Func::CurrentSchema, _) => s.current_schema.clone().map_or(Datum::Null, Datum::Text),
        (Func::PgTypeof, _) => Datum::Type(args[0].ty),
        (Func::Builtin(f), _) => return crate::funcs::eval(f, &values, args, cx),
        (_, [Datum::Null]) => Datum::Null,
        (Func::Length, [Datum::Text(t)]) => Datum::Int(t.chars().count() as i64),
        (Func::Upper, [Datum::Text(t)]) => Datum::Text(t.to_uppercase()),
        (Func::Lower, [Datum::Text(t)]) => Datum::Text(t.to_lowercase()),
        (Func::Abs, [Datum::Int(v)]) => args[0].ty.check_int(v.checked_abs())?,
        (Func::Abs, [Datum::Numeric(n)]) => Datum::Numeric(n.abs()),
        (Func::Abs, [Datum::Float(f)]) => Datum::Float(f.abs()),
        (Func::Abs, [Datum::Float4(f)]) => Datum::Float4(f.abs()),
        (f, v) => unreachable!("{f:?} bound with arguments {v:?}"),
    })
}

/// Exposed for the property test: integer arithmetic as int4/int8 would do it.
#[cfg(test)]
pub(crate) fn int_op(op: char, ty: SqlType, x: i64, y: i64) -> Result<i64, SqlError> {
    let a = match op {
        '+' => Arith::Add,
        '-' => Arith::Sub,
        '*' => Arith::Mul,
        '/' => Arith::Div,
        _ => Arith::Mod,
    };
    match int_arith(a, ty, x, y)? {
        Datum::Int(v) => Ok(v),
        other => unreachable!("{other:?}"),
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg,
    ArrayAgg,
}

/// One aggregate call of a query: its argument is bound over the input rows.
#[derive(Debug, Clone)]
pub(crate) struct AggCall {
    pub(crate) func: AggFunc,
    pub(crate) arg: Option<Bound>,
    /// string_agg's delimiter.
    pub(crate) delimiter: Option<Bound>,
    pub(crate) distinct: bool,
    /// The order the call folds its inputs in (ORDER BY inside the call, over the input
    /// rows; string_agg and array_agg with DISTINCT sort by their argument, as PostgreSQL
    /// does). Empty: input order.
    pub(crate) order_by: Vec<SortKey>,
    /// `FILTER (WHERE ...)`, over the input rows: only rows where it is true are folded.
    pub(crate) filter: Option<Bound>,
    /// The result type.
    pub(crate) ty: SqlType,
}

pub(crate) fn aggregate_func(name: &str) -> Option<AggFunc> {
    Some(match name {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "bool_and" | "every" => AggFunc::BoolAnd,
        "bool_or" => AggFunc::BoolOr,
        "string_agg" => AggFunc::StringAgg,
        "array_agg" => AggFunc::ArrayAgg,
        _ => return None,
    })
}

fn function_name(f: &ast::Function) -> String {
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident_name).unwrap_or_default())
        .collect();
    match parts.as_slice() {
        [n] => n.clone(),
        [schema, n] if schema == "pg_catalog" => n.clone(),
        _ => parts.join("."),
    }
}

/// Whether `e` calls an aggregate outside any subquery.
pub(crate) fn contains_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            if aggregate_func(&function_name(f)).is_some() && f.over.is_none() {
                return true;
            }
            match &f.args {
                ast::FunctionArguments::List(list) => list.args.iter().any(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                        contains_aggregate(e)
                    }
                    _ => false,
                }),
                _ => false,
            }
        }
        E::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsNotTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotFalse(expr)
        | E::IsUnknown(expr)
        | E::IsNotUnknown(expr)
        | E::Cast { expr, .. } => contains_aggregate(expr),
        E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
            contains_aggregate(a) || contains_aggregate(b)
        }
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        E::In { expr, target, .. } => {
            contains_aggregate(expr)
                || matches!(target, ast::InTarget::List(list) if list.iter().any(contains_aggregate))
        }
        E::Between {
            expr, low, high, ..
        } => contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high),
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
            contains_aggregate(expr) || contains_aggregate(pattern)
        }
        _ => false,
    }
}

/// SQL LIKE with `%`, `_` and the default escape `\`.
pub(crate) fn like(s: &str, p: &str) -> Result<bool, SqlError> {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = p.chars().collect();
    // Iterative matcher with backtracking to the last `%`.
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                '%' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '_' => {
                    si += 1;
                    pi += 1;
                    continue;
                }
                '\\' => {
                    let Some(&lit) = p.get(pi + 1) else {
                        return Err(SqlError::new(
                            "22025",
                            "LIKE pattern must not end with escape character",
                        ));
                    };
                    if lit == s[si] {
                        si += 1;
                        pi += 2;
                        continue;
                    }
                }
                c if c == s[si] => {
                    si += 1;
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return Ok(false),
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    Ok(pi == p.len())
}

impl Bound {
    /// True when the value depends on no row, parameter or subquery.
    pub(crate) fn is_constant(&self) -> bool {
        match &self.kind {
            Kind::Const(_) => true,
            Kind::Column(_)
            | Kind::Outer(..)
            | Kind::Param(_)
            | Kind::Subquery(_)
            | Kind::Pg(..) => false,
            Kind::Neg(x)
            | Kind::Not(x)
            | Kind::IsNull(x, _)
            | Kind::IsBool(x, ..)
            | Kind::Cast(x) => x.is_constant(),
            Kind::Arith(_, l, r)
            | Kind::Concat(l, r)
            | Kind::And(l, r)
            | Kind::Or(l, r)
            | Kind::NullIf(l, r) => l.is_constant() && r.is_constant(),
            Kind::Cmp { l, r, .. } => l.is_constant() && r.is_constant(),
            Kind::Like { x, pattern, .. } => x.is_constant() && pattern.is_constant(),
            Kind::Func(Func::NextVal | Func::CurrVal | Func::SetVal, _) => false,
            Kind::Func(Func::Builtin(f), _) if crate::funcs::is_volatile(*f) => false,
            Kind::Func(_, args) | Kind::Coalesce(args) => args.iter().all(Bound::is_constant),
            Kind::InList { x, list, .. } => x.is_constant() && list.iter().all(Bound::is_constant),
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.as_ref().is_none_or(|o| o.is_constant())
                    && whens
                        .iter()
                        .all(|(w, t)| w.is_constant() && t.is_constant())
                    && otherwise.as_ref().is_none_or(|o| o.is_constant())
            }
        }
    }

    /// True when the expression can run inside a shard's scan: it reads only the scanned row
    /// (no enclosing row, no subquery). Parameters travel in the fragment's environment.
    pub(crate) fn is_row_local(&self) -> bool {
        match &self.kind {
            Kind::Const(_) | Kind::Column(_) | Kind::Param(_) => true,
            // Catalog functions read the coordinator's catalog snapshot: never on a shard.
            Kind::Outer(..) | Kind::Subquery(_) | Kind::Pg(..) => false,
            Kind::Neg(x)
            | Kind::Not(x)
            | Kind::IsNull(x, _)
            | Kind::IsBool(x, ..)
            | Kind::Cast(x) => x.is_row_local(),
            Kind::Arith(_, l, r)
            | Kind::Concat(l, r)
            | Kind::And(l, r)
            | Kind::Or(l, r)
            | Kind::NullIf(l, r) => l.is_row_local() && r.is_row_local(),
            Kind::Cmp { l, r, .. } => l.is_row_local() && r.is_row_local(),
            Kind::Like { x, pattern, .. } => x.is_row_local() && pattern.is_row_local(),
            // Sequence functions draw values the coordinator reserved for the statement.
            Kind::Func(Func::NextVal | Func::CurrVal | Func::SetVal, _) => false,
            Kind::Func(_, args) | Kind::Coalesce(args) => args.iter().all(Bound::is_row_local),
            Kind::InList { x, list, .. } => {
                x.is_row_local() && list.iter().all(Bound::is_row_local)
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                operand.as_ref().is_none_or(|o| o.is_row_local())
                    && whens
                        .iter()
                        .all(|(w, t)| w.is_row_local() && t.is_row_local())
                    && otherwise.as_ref().is_none_or(|o| o.is_row_local())
            }
        }
    }

    /// Column positions this expression reads from the current row.
    pub(crate) fn columns_read(&self, out: &mut Vec<usize>) {
        match &self.kind {
            Kind::Column(i) => out.push(*i),
            Kind::Const(_) | Kind::Outer(..) | Kind::Param(_) => {}
            Kind::Subquery(sq) => {
                if let SubqueryMode::In(x) = &sq.mode {
                    x.columns_read(out);
                }
                // Correlated references inside the subquery read this row too.
                sq.plan.outer_columns_read(1, out);
            }
            Kind::Neg(x)
            | Kind::Not(x)
            | Kind::IsNull(x, _)
            | Kind::IsBool(x, ..)
            | Kind::Cast(x) => x.columns_read(out),
            Kind::Arith(_, l, r)
            | Kind::Concat(l, r)
            | Kind::And(l, r)
            | Kind::Or(l, r)
            | Kind::NullIf(l, r) => {
                l.columns_read(out);
                r.columns_read(out);
            }
            Kind::Cmp { l, r, .. } => {
                l.columns_read(out);
                r.columns_read(out);
            }
            Kind::Like { x, pattern, .. } => {
                x.columns_read(out);
                pattern.columns_read(out);
            }
            Kind::Func(_, args) | Kind::Coalesce(args) | Kind::Pg(_, args) => {
                args.iter().for_each(|a| a.columns_read(out))
            }
            Kind::InList { x, list, .. } => {
                x.columns_read(out);
                list.iter().for_each(|a| a.columns_read(out));
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.columns_read(out);
                }
                for (w, t) in whens {
                    w.columns_read(out);
                    t.columns_read(out);
                }
                if let Some(o) = otherwise {
                    o.columns_read(out);
                }
            }
        }
    }

    /// References to the row `depth` levels out (as seen from inside this expression).
    pub(crate) fn outer_columns_read(&self, depth: usize, out: &mut Vec<usize>) {
        self.visit(&mut |b| match &b.kind {
            Kind::Outer(d, i) if *d == depth => out.push(*i),
            Kind::Subquery(sq) => sq.plan.outer_columns_read(depth + 1, out),
            _ => {}
        });
    }

    /// Calls `f` on this node and every descendant within this expression (not inside
    /// subquery plans: `f` sees the Subquery node and may descend itself).
    pub(crate) fn visit(&self, f: &mut dyn FnMut(&Bound)) {
        f(self);
        match &self.kind {
            Kind::Const(_) | Kind::Column(_) | Kind::Outer(..) | Kind::Param(_) => {}
            Kind::Subquery(sq) => {
                if let SubqueryMode::In(x) = &sq.mode {
                    x.visit(f);
                }
            }
            Kind::Neg(x)
            | Kind::Not(x)
            | Kind::IsNull(x, _)
            | Kind::IsBool(x, ..)
            | Kind::Cast(x) => x.visit(f),
            Kind::Arith(_, l, r)
            | Kind::Concat(l, r)
            | Kind::And(l, r)
            | Kind::Or(l, r)
            | Kind::NullIf(l, r) => {
                l.visit(f);
                r.visit(f);
            }
            Kind::Cmp { l, r, .. } => {
                l.visit(f);
                r.visit(f);
            }
            Kind::Like { x, pattern, .. } => {
                x.visit(f);
                pattern.visit(f);
            }
            Kind::Func(_, args) | Kind::Coalesce(args) | Kind::Pg(_, args) => {
                args.iter().for_each(|a| a.visit(f))
            }
            Kind::InList { x, list, .. } => {
                x.visit(f);
                list.iter().for_each(|a| a.visit(f));
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.visit(f);
                }
                for (w, t) in whens {
                    w.visit(f);
                    t.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
        }
    }

    /// Rewrites column references through `map` (old position → new position).
    pub(crate) fn remap_columns(&mut self, map: &dyn Fn(usize) -> usize) {
        self.visit_mut(&mut |b| {
            if let Kind::Column(i) = &mut b.kind {
                *i = map(*i);
            }
        });
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Bound)) {
        f(self);
        match &mut self.kind {
            Kind::Const(_) | Kind::Column(_) | Kind::Outer(..) | Kind::Param(_) => {}
            Kind::Subquery(sq) => {
                if let SubqueryMode::In(x) = &mut sq.mode {
                    x.visit_mut(f);
                }
            }
            Kind::Neg(x)
            | Kind::Not(x)
            | Kind::IsNull(x, _)
            | Kind::IsBool(x, ..)
            | Kind::Cast(x) => x.visit_mut(f),
            Kind::Arith(_, l, r)
            | Kind::Concat(l, r)
            | Kind::And(l, r)
            | Kind::Or(l, r)
            | Kind::NullIf(l, r) => {
                l.visit_mut(f);
                r.visit_mut(f);
            }
            Kind::Cmp { l, r, .. } => {
                l.visit_mut(f);
                r.visit_mut(f);
            }
            Kind::Like { x, pattern, .. } => {
                x.visit_mut(f);
                pattern.visit_mut(f);
            }
            Kind::Func(_, args) | Kind::Coalesce(args) | Kind::Pg(_, args) => {
                args.iter_mut().for_each(|a| a.visit_mut(f))
            }
            Kind::InList { x, list, .. } => {
                x.visit_mut(f);
                list.iter_mut().for_each(|a| a.visit_mut(f));
            }
            Kind::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.visit_mut(f);
                }
                for (w, t) in whens {
                    w.visit_mut(f);
                    t.visit_mut(f);
                }
                if let Some(o) = otherwise {
                    o.visit_mut(f);
                }
            }
        }
    }

    /// A column reference (planner use).
    pub(crate) fn column(i: usize, ty: SqlType, typmod: i32) -> Bound {
        Bound {
            kind: Kind::Column(i),
            ty,
            typmod,
            pos: None,
        }
    }

    pub(crate) fn constant(d: Datum, ty: SqlType) -> Bound {
        konst(d, ty, None)
    }

    /// Splits an AND tree into its conjuncts.
    pub(crate) fn into_conjuncts(self, out: &mut Vec<Bound>) {
        match self.kind {
            Kind::And(l, r) => {
                l.into_conjuncts(out);
                r.into_conjuncts(out);
            }
            _ => out.push(self),
        }
    }

    /// Joins conjuncts back with AND (None when there are none).
    pub(crate) fn conjunction(parts: Vec<Bound>) -> Option<Bound> {
        let mut it = parts.into_iter();
        let first = it.next()?;
        Some(it.fold(first, |acc, b| {
            let pos = acc.pos;
            Bound {
                kind: Kind::And(Box::new(acc), Box::new(b)),
                ty: SqlType::Bool,
                typmod: TYPMOD_NONE,
                pos,
            }
        }))
    }

    /// `Column(i) = <expression over no row>`: (i, the other side).
    pub(crate) fn as_column_equality(&self) -> Option<(usize, &Bound)> {
        if let Kind::Cmp {
            op: Cmp::Eq,
            l,
            r,
            null_safe: false,
        } = &self.kind
        {
            match (&l.kind, &r.kind) {
                (Kind::Column(i), _) if r.is_constant() || matches!(r.kind, Kind::Param(_)) => {
                    return Some((*i, r))
                }
                (_, Kind::Column(i)) if l.is_constant() || matches!(l.kind, Kind::Param(_)) => {
                    return Some((*i, l))
                }
                _ => {}
            }
        }
        None
    }

    /// `left_expr = right_expr` where each side reads only one side of a join split at
    /// `left_width`: (left side, right side rebased to the right input).
    pub(crate) fn as_equi_join(&self, left_width: usize) -> Option<(Bound, Bound)> {
        let Kind::Cmp {
            op: Cmp::Eq,
            l,
            r,
            null_safe: false,
        } = &self.kind
        else {
            return None;
        };
        let side = |b: &Bound| -> Option<bool> {
            if !b.is_row_local() {
                return None;
            }
            let mut cols = Vec::new();
            b.columns_read(&mut cols);
            if cols.is_empty() {
                return None;
            }
            if cols.iter().all(|c| *c < left_width) {
                Some(true)
            } else if cols.iter().all(|c| *c >= left_width) {
                Some(false)
            } else {
                None
            }
        };
        let rebase = |b: &Bound| {
            let mut b = b.clone();
            b.remap_columns(&|i| i - left_width);
            b
        };
        match (side(l)?, side(r)?) {
            (true, false) => Some(((**l).clone(), rebase(r))),
            (false, true) => Some(((**r).clone(), rebase(l))),
            _ => None,
        }
    }
}

impl<'a> Binder<'a> {
    fn not(&self, b: Bound) -> Bound {
        let pos = b.pos;
        Bound {
            kind: Kind::Not(Box::new(b)),
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        }
    }

    fn bind_param(&self, p: &str, pos: Option<usize>) -> Result<Bound, SqlError> {
        let n: usize = p
            .strip_prefix('$')
            .and_then(|d| d.parse().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{p}\"")).at(pos)
            })?;
        let Some(params) = self.params else {
            return Err(
                SqlError::new(UNDEFINED_PARAMETER, format!("there is no parameter ${n}")).at(pos),
            );
        };
        let mut types = params.borrow_mut();
        if n > PARAMS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("a statement takes at most {PARAMS_MAX} parameters"),
            )
            .at(pos));
        }
        if types.len() < n {
            types.resize(n, None);
        }
        // Named now: unknown until something gives it a type (None stays "never named").
        let ty = *types[n - 1].get_or_insert(SqlType::Unknown);
        Ok(Bound {
            kind: Kind::Param(n - 1),
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    /// Resolves a (possibly qualified) column name through the scopes; None: no such column
    /// anywhere (the caller words the error).
    fn resolve_column(
        &self,
        qualifier: Option<&str>,
        name: &str,
        pos: Option<usize>,
    ) -> Result<Option<Bound>, SqlError> {
        let mut depth = 0;
        let mut scope = self.scope;
        while let Some(s) = scope {
            let mut found: Option<usize> = None;
            for (i, c) in s.columns.iter().enumerate() {
                let qualifier_ok = match qualifier {
                    None => !c.hidden,
                    Some(q) => c.qualifier.as_deref() == Some(q),
                };
                if qualifier_ok && c.name == name {
                    if found.is_some() {
                        return Err(SqlError::new(
                            AMBIGUOUS_COLUMN,
                            format!("column reference \"{name}\" is ambiguous"),
                        )
                        .at(pos));
                    }
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                let c = &s.columns[i];
                let kind = if depth == 0 {
                    Kind::Column(i)
                } else {
                    Kind::Outer(depth, i)
                };
                return Ok(Some(Bound {
                    kind,
                    ty: c.ty,
                    typmod: c.typmod,
                    pos,
                }));
            }
            if let Some(q) = qualifier {
                if s.columns.iter().any(|c| c.qualifier.as_deref() == Some(q)) {
                    return Err(SqlError::new(
                        UNDEFINED_COLUMN,
                        format!("column {q}.{name} does not exist"),
                    )
                    .at(pos));
                }
            }
            depth += 1;
            scope = s.parent;
        }
        Ok(None)
    }

    fn bind_compound(&self, ids: &[ast::Ident], pos: Option<usize>) -> Result<Bound, SqlError> {
        let names: Vec<String> = ids.iter().map(ident_name).collect();
        // schema.table.column: the schema is checked by the FROM clause; match table.column.
        let (qualifier, column) = match names.as_slice() {
            [q, c] => (q.as_str(), c.as_str()),
            [_, q, c] => (q.as_str(), c.as_str()),
            _ => {
                return Err(SqlError::new(
                    SYNTAX_ERROR,
                    format!(
                        "improper qualified name (too many dotted names): {}",
                        names.join(".")
                    ),
                )
                .at(pos))
            }
        };
        if let Some(b) = self.resolve_column(Some(qualifier), column, pos)? {
            return Ok(b);
        }
        Err(SqlError::new(
            UNDEFINED_TABLE,
            format!("missing FROM-clause entry for table \"{qualifier}\""),
        )
        .at(pos))
    }

    fn bind_case(
        &self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let operand = operand.map(|o| self.bind(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        for c in conditions {
            let w = self.bind(&c.condition)?;
            let w = match &operand {
                // CASE x WHEN v: v and x are compared in their common type.
                Some(_) => w,
                None => self.require_bool(w, "CASE/WHEN")?,
            };
            whens.push(w);
            results.push(self.bind(&c.result)?);
        }
        let otherwise = else_result.map(|e| self.bind(e)).transpose()?;
        let ty = common_type(
            results
                .iter()
                .chain(otherwise.iter())
                .map(|r| (r.ty, r.pos)),
            "CASE",
        )?;
        let operand = match operand {
            Some(o) => {
                let cmp_ty = common_type(
                    std::iter::once((o.ty, o.pos)).chain(whens.iter().map(|w| (w.ty, w.pos))),
                    "CASE/WHEN",
                )?;
                whens = whens
                    .into_iter()
                    .map(|w| self.coerce(w, cmp_ty, TYPMOD_NONE))
                    .collect::<Result<_, _>>()?;
                Some(Box::new(self.coerce(o, cmp_ty, TYPMOD_NONE)?))
            }
            None => None,
        };
        let results = results
            .into_iter()
            .map(|r| self.coerce(r, ty, TYPMOD_NONE))
            .collect::<Result<Vec<_>, _>>()?;
        let otherwise = otherwise
            .map(|o| self.coerce(o, ty, TYPMOD_NONE))
            .transpose()?
            .map(Box::new);
        Ok(Bound {
            kind: Kind::Case {
                operand,
                whens: whens.into_iter().zip(results).collect(),
                otherwise,
            },
            ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_in_list(
        &self,
        expr: &ast::Expr,
        list: &[ast::Expr],
        negated: bool,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let x = self.bind(expr)?;
        let items = list
            .iter()
            .map(|e| self.bind(e))
            .collect::<Result<Vec<_>, _>>()?;
        let ty = common_type(
            std::iter::once((x.ty, x.pos)).chain(items.iter().map(|i| (i.ty, i.pos))),
            "IN",
        )?;
        let x = self.coerce(x, ty, TYPMOD_NONE)?;
        let list = items
            .into_iter()
            .map(|i| self.coerce(i, ty, TYPMOD_NONE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Bound {
            kind: Kind::InList {
                x: Box::new(x),
                list,
                negated,
            },
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_between(
        &self,
        expr: &ast::Expr,
        negated: bool,
        low: &ast::Expr,
        high: &ast::Expr,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        // x BETWEEN a AND b is x >= a AND x <= b (x is evaluated twice, as in PostgreSQL).
        let ge = self.bind_cmp(expr, Cmp::Ge, low, false)?;
        let le = self.bind_cmp(expr, Cmp::Le, high, false)?;
        let both = Bound {
            kind: Kind::And(Box::new(ge), Box::new(le)),
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        };
        Ok(if negated { self.not(both) } else { both })
    }

    fn bind_like(
        &self,
        expr: &ast::Expr,
        pattern: &ast::Expr,
        negated: bool,
        case_insensitive: bool,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let (x, p) = (self.bind(expr)?, self.bind(pattern)?);
        let op = if case_insensitive { "~~*" } else { "~~" };
        let textual = |t: SqlType| t.is_string() || t == SqlType::Unknown;
        if !textual(x.ty) || !textual(p.ty) {
            return Err(self.no_binary_op(expr, op, x.ty, p.ty));
        }
        let x = self.coerce(x, SqlType::Text, TYPMOD_NONE)?;
        let p = self.coerce(p, SqlType::Text, TYPMOD_NONE)?;
        Ok(Bound {
            kind: Kind::Like {
                x: Box::new(x),
                pattern: Box::new(p),
                negated,
                case_insensitive,
            },
            ty: SqlType::Bool,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    fn bind_subquery(
        &self,
        q: &ast::Query,
        mode: SubqueryMode,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let Some(planner) = self.planner else {
            return Err(not_supported("subqueries here").at(pos));
        };
        // In an aggregated query, a subquery sees the grouped row.
        let scope = match self.agg {
            Some(agg) => Some(&agg.post_scope),
            None => self.scope,
        };
        let (plan, columns) = planner.plan_query(q, scope)?;
        let ty = match &mode {
            SubqueryMode::Exists => SqlType::Bool,
            SubqueryMode::Scalar | SubqueryMode::In(_) | SubqueryMode::Array => {
                if columns.len() != 1 {
                    return Err(SqlError::new(
                        SYNTAX_ERROR,
                        if columns.len() > 1 {
                            "subquery must return only one column"
                        } else {
                            "subquery must return a column"
                        },
                    )
                    .at(pos));
                }
                crate::plan::sql_type_of(&columns[0])
            }
        };
        let (mode, result_ty) = match mode {
            SubqueryMode::In(x) => {
                // x IN (SELECT y ...): compared in the common type of x and y.
                let common = common_type([(x.ty, x.pos), (ty, pos)].into_iter(), "IN")?;
                if common != ty && ty != SqlType::Unknown {
                    // The subquery's column is converted as it is read.
                    let x = self.coerce(*x, common, TYPMOD_NONE)?;
                    (SubqueryMode::In(Box::new(x)), SqlType::Bool)
                } else {
                    let x = self.coerce(*x, ty, TYPMOD_NONE)?;
                    (SubqueryMode::In(Box::new(x)), SqlType::Bool)
                }
            }
            SubqueryMode::Exists => (SubqueryMode::Exists, SqlType::Bool),
            SubqueryMode::Scalar => (SubqueryMode::Scalar, ty),
            // ARRAY(subquery): an array of the column's type (an unknown literal's is
            // text[]); of a type with no array type here, its text form (see `pgcatalog`).
            SubqueryMode::Array => (
                SubqueryMode::Array,
                array_subquery_type(ty).unwrap_or(SqlType::Text),
            ),
        };
        let column_ty = ty;
        Ok(Bound {
            kind: Kind::Subquery(Box::new(SubqueryExpr {
                plan,
                mode,
                column_ty,
            })),
            ty: result_ty,
            typmod: TYPMOD_NONE,
            pos,
        })
    }

    /// In an aggregation context: a grouped expression or an aggregate call becomes a column
    /// of the aggregated row; a column that is neither is an error. None: bind normally.
    fn bind_in_aggregate(
        &self,
        agg: &AggBinding,
        e: &ast::Expr,
        pos: Option<usize>,
    ) -> Result<Option<Bound>, SqlError> {
        if let Some(i) = agg.group_ast.iter().position(|g| g == e) {
            let g = &agg.group_bound[i];
            return Ok(Some(Bound::column(i, g.ty, g.typmod)));
        }
        match e {
            ast::Expr::Function(f) if f.over.is_none() => {
                let name = function_name(f);
                if let Some(func) = aggregate_func(&name) {
                    return self.bind_aggregate(agg, f, func, &name, pos).map(Some);
                }
                Ok(None)
            }
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                let input = self.with_scope(Some(agg.input));
                let b = input.bind(e)?;
                match b.kind {
                    Kind::Column(k) => {
                        if let Some(i) = agg
                            .group_bound
                            .iter()
                            .position(|g| matches!(g.kind, Kind::Column(c) if c == k))
                        {
                            return Ok(Some(Bound::column(i, b.ty, b.typmod)));
                        }
                        let c = &agg.input.columns[k];
                        let shown = match &c.qualifier {
                            Some(q) => format!("{q}.{}", c.name),
                            None => c.name.clone(),
                        };
                        Err(SqlError::new(
                            GROUPING_ERROR,
                            format!("column \"{shown}\" must appear in the GROUP BY clause or be used in an aggregate function"),
                        )
                        .at(pos))
                    }
                    _ => Ok(Some(b)),
                }
            }
            _ => Ok(None),
        }
    }

    fn bind_aggregate(
        &self,
        agg: &AggBinding,
        f: &ast::Function,
        func: AggFunc,
        name: &str,
        pos: Option<usize>,
    ) -> Result<Bound, SqlError> {
        let input = self.with_scope(Some(agg.input));
        let filter = self.aggregate_filter(agg, f)?;
        let (args, distinct, order_by) = match &f.args {
            ast::FunctionArguments::List(list) => {
                let order_by = self.aggregate_order(agg, list, name, pos)?;
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut args = Vec::new();
                for a in &list.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)
                            if func == AggFunc::Count && list.args.len() == 1 =>
                        {
                            args.clear();
                            let call = AggCall {
                                func: AggFunc::CountStar,
                                arg: None,
                                delimiter: None,
                                distinct: false,
                                order_by: Vec::new(),
                                filter,
                                ty: SqlType::Int8,
                            };
                            return Ok(agg.push(call, pos));
                        }
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                            if contains_aggregate(e) {
                                return Err(SqlError::new(
                                    GROUPING_ERROR,
                                    "aggregate function calls cannot be nested",
                                )
                                .at(input.pos_of(e)));
                            }
                            args.push(input.bind(e)?)
                        }
                        other => {
                            return Err(not_supported(format!("aggregate argument {other}")).at(pos))
                        }
                    }
                }
                (args, distinct, order_by)
            }
            _ => {
                return Err(SqlError::new(
                    UNDEFINED_FUNCTION,
                    format!("function {name}() does not exist"),
                )
                .with_hint(&HINT_NO_FUNCTION)
                .at(pos))
            }
        };
        let undefined = |args: &[Bound]| {
            let types: Vec<&str> = args.iter().map(|a| a.ty.sql_name()).collect();
            SqlError::new(
                UNDEFINED_FUNCTION,
                format!("function {name}({}) does not exist", types.join(", ")),
            )
            .at(pos)
        };
        let mut args = args.into_iter();
        let (arg, delimiter, ty) = match (func, args.len()) {
            (AggFunc::Count, 1) => (args.next(), None, SqlType::Int8),
            (AggFunc::Sum | AggFunc::Avg, 1) => {
                let a = args.next().expect("one argument");
                // sum(real) adds in real, as PostgreSQL's float4pl; avg(real) in double
                // precision, as its float4_accum.
                let a = match (func, a.ty) {
                    (_, SqlType::Unknown) | (AggFunc::Avg, SqlType::Float4) => {
                        self.coerce(a, SqlType::Float8, TYPMOD_NONE)?
                    }
                    _ => a,
                };
                let ty = match (func, a.ty) {
                    (AggFunc::Sum, SqlType::Int2 | SqlType::Int4) => SqlType::Int8,
                    (AggFunc::Sum, SqlType::Int8 | SqlType::Numeric) => SqlType::Numeric,
                    (AggFunc::Avg, t) if t.is_integer() || t == SqlType::Numeric => {
                        SqlType::Numeric
                    }
                    (AggFunc::Sum, SqlType::Float4) => SqlType::Float4,
                    (_, SqlType::Float8) => SqlType::Float8,
                    (_, SqlType::Interval) => SqlType::Interval,
                    _ => return Err(undefined(&[a])),
                };
                (Some(a), None, ty)
            }
            (AggFunc::Min | AggFunc::Max, 1) => {
                let a = args.next().expect("one argument");
                // PostgreSQL has min/max of text only (varchar and name reach it by their
                // implicit casts, and return text), and none of boolean, bytea, uuid or
                // jsonb.
                let a = match a.ty {
                    SqlType::Unknown | SqlType::Varchar | SqlType::Name => {
                        self.coerce(a, SqlType::Text, TYPMOD_NONE)?
                    }
                    SqlType::Bool | SqlType::Bytea | SqlType::Uuid | SqlType::Jsonb => {
                        return Err(undefined(&[a]))
                    }
                    _ => a,
                };
                let ty = a.ty;
                (Some(a), None, ty)
            }
            (AggFunc::BoolAnd | AggFunc::BoolOr, 1) => {
                let a = args.next().expect("one argument");
                if a.ty != SqlType::Bool && a.ty != SqlType::Unknown {
                    return Err(undefined(&[a]));
                }
                let a = self.coerce(a, SqlType::Bool, TYPMOD_NONE)?;
                (Some(a), None, SqlType::Bool)
            }
            (AggFunc::StringAgg, 2) => {
                let a = args.next().expect("two arguments");
                let d = args.next().expect("two arguments");
                let textual = |t: SqlType| t.is_string() || t == SqlType::Unknown;
                if !textual(a.ty) || !textual(d.ty) {
                    return Err(undefined(&[a, d]));
                }
                let a = self.coerce(a, SqlType::Text, TYPMOD_NONE)?;
                let d = self.coerce(d, SqlType::Text, TYPMOD_NONE)?;
                (Some(a), Some(d), SqlType::Text)
            }
            (AggFunc::ArrayAgg, 1) => {
                let a = args.next().expect("one argument");
                let a = if a.ty == SqlType::Unknown {
                    self.coerce(a, SqlType::Text, TYPMOD_NONE)?
                } else {
                    a
                };
                let Some(ty) = a.ty.array_of() else {
                    return Err(SqlError::new(
                        UNDEFINED_OBJECT,
                        format!(
                            "could not find array type for data type {}",
                            a.ty.sql_name()
                        ),
                    )
                    .at(pos));
                };
                (Some(a), None, ty)
            }
            _ => return Err(undefined(&args.collect::<Vec<_>>())),
        };
        let order_by = match (&arg, order_by) {
            // DISTINCT string_agg and array_agg fold their values sorted (PostgreSQL
            // sorts to find the distinct ones).
            (Some(a), keys) if keys.is_empty() && distinct && sorts_distinct(func) => {
                vec![SortKey {
                    expr: a.clone(),
                    descending: false,
                    nulls_first: false,
                }]
            }
            (_, keys) => keys,
        };
        let call = AggCall {
            func,
            arg,
            delimiter,
            distinct,
            order_by,
            filter,
            ty,
        };
        Ok(agg.push(call, pos))
    }

    /// `FILTER (WHERE cond)` of an aggregate call: a boolean over the input rows, without
    /// aggregates.
    fn aggregate_filter(
        &self,
        agg: &AggBinding,
        f: &ast::Function,
    ) -> Result<Option<Bound>, SqlError> {
        let Some(cond) = &f.filter else {
            return Ok(None);
        };
        let input = self.with_scope(Some(agg.input));
        if contains_aggregate(cond) {
            return Err(SqlError::new(
                GROUPING_ERROR,
                "aggregate functions are not allowed in FILTER",
            )
            .at(input.pos_of(cond)));
        }
        let b = input.bind(cond)?;
        match b.ty {
            SqlType::Bool => Ok(Some(b)),
            SqlType::Unknown => Ok(Some(input.coerce(b, SqlType::Bool, TYPMOD_NONE)?)),
            other => {
                let pos = b.pos;
                Err(SqlError::new(
                    DATATYPE_MISMATCH,
                    format!(
                        "argument of FILTER must be type boolean, not type {}",
                        other.sql_name()
                    ),
                )
                .at(pos))
            }
        }
    }

    /// The ORDER BY inside an aggregate call's parentheses, bound over the input rows. With
    /// DISTINCT, each key must be one of the arguments (the values are sorted, then
    /// duplicates dropped), as PostgreSQL requires.
    fn aggregate_order(
        &self,
        agg: &AggBinding,
        list: &ast::FunctionArgumentList,
        name: &str,
        pos: Option<usize>,
    ) -> Result<Vec<SortKey>, SqlError> {
        let input = self.with_scope(Some(agg.input));
        let distinct = matches!(
            list.duplicate_treatment,
            Some(ast::DuplicateTreatment::Distinct)
        );
        let mut keys = Vec::new();
        for clause in &list.clauses {
            let ast::FunctionArgumentClause::OrderBy(exprs) = clause else {
                return Err(not_supported(format!("{name} with {clause}")).at(pos));
            };
            for o in exprs {
                let is_argument = list.args.iter().any(|a| {
                    matches!(a, ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) if *e == o.expr)
                });
                if distinct && !is_argument {
                    return Err(SqlError::new(
                        INVALID_COLUMN_REFERENCE,
                        "in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list",
                    )
                    .at(input.pos_of(&o.expr)));
                }
                if contains_aggregate(&o.expr) {
                    return Err(SqlError::new(
                        GROUPING_ERROR,
                        "aggregate function calls cannot be nested",
                    )
                    .at(input.pos_of(&o.expr)));
                }
                let key = input.bind(&o.expr)?;
                let key = if key.ty == SqlType::Unknown {
                    input.coerce(key, SqlType::Text, TYPMOD_NONE)?
                } else {
                    key
                };
                keys.push(crate::plan::sort_key(key, &o.options));
            }
        }
        Ok(keys)
    }
}

/// The type of `ARRAY(subquery)` over a column of type `column`; None: carried as text.
pub(crate) fn array_subquery_type(column: SqlType) -> Option<SqlType> {
    match column {
        SqlType::Unknown => SqlType::Text.array_of(),
        t => t.array_of(),
    }
}

/// Aggregates whose DISTINCT form folds its values in sorted order (the result shows it).
fn sorts_distinct(func: AggFunc) -> bool {
    matches!(func, AggFunc::StringAgg | AggFunc::ArrayAgg)
}

/// Parameters one statement may have (the wire protocol's Int16 count).
pub(crate) const PARAMS_MAX: usize = 65_535;

/// `l = r` of operands already of one type.
pub(crate) fn cmp_eq(l: Bound, r: Bound) -> Bound {
    let pos = l.pos;
    Bound {
        kind: Kind::Cmp {
            op: Cmp::Eq,
            l: Box::new(l),
            r: Box::new(r),
            null_safe: false,
        },
        ty: SqlType::Bool,
        typmod: TYPMOD_NONE,
        pos,
    }
}

/// Ordering where NULL equals NULL and sorts last (for "did this value change").
pub(crate) fn compare_nullable(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    match (a, b) {
        (Datum::Null, Datum::Null) => std::cmp::Ordering::Equal,
        (Datum::Null, _) => std::cmp::Ordering::Greater,
        (_, Datum::Null) => std::cmp::Ordering::Less,
        (x, y) => compare(x, y),
    }
}
