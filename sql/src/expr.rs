//! Expressions: the binder turns sqlparser's AST into typed [`Bound`] trees (resolving
//! operators, functions and literal types as PostgreSQL's parse analysis does, and failing
//! with its errors), and [`eval`] computes them. Binding happens before any evaluation, so
//! an unknown function is reported ahead of a division by zero, as in PostgreSQL.

use sqlparser::ast::{self, BinaryOperator, Spanned, UnaryOperator};

use crate::error::*;
use crate::numeric;
use crate::session::Session;
use crate::types::{self, Datum, SqlType, TYPMOD_NONE};

/// A typed expression.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    kind: Kind,
    pub(crate) ty: SqlType,
    pub(crate) typmod: i32,
    /// 1-based offset of the expression's start in the query string.
    pub(crate) pos: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Version,
    CurrentDatabase,
    CurrentUser,
    CurrentSchema,
    Length,
    Upper,
    Lower,
    Abs,
    PgTypeof,
}

#[derive(Debug, Clone)]
enum Kind {
    Const(Datum),
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
}

/// Bounds the number of arguments a function call may have.
const FUNC_ARGS_MAX: usize = 100;

/// What the binder needs from its surroundings: the session and the query text (for positions).
pub(crate) struct Binder<'a> {
    pub(crate) session: &'a Session,
    pub(crate) sql: &'a str,
    positions: Positions,
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
    pub(crate) fn new(session: &'a Session, sql: &'a str) -> Binder<'a> {
        Binder {
            session,
            sql,
            positions: Positions::new(sql),
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
        match e {
            ast::Expr::Value(v) => self.bind_value(&v.value, false, pos),
            ast::Expr::Nested(inner) => self.bind(inner),
            ast::Expr::Identifier(id) => self.bind_identifier(id, pos),
            ast::Expr::CompoundIdentifier(ids) => Err(SqlError::new(
                UNDEFINED_TABLE,
                format!(
                    "missing FROM-clause entry for table \"{}\"",
                    ident_name(&ids[0])
                ),
            )
            .at(pos)),
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
                let (ty, typmod) = resolve_type(data_type)?;
                let inner = self.bind(expr)?;
                self.coerce(inner, ty, typmod)
            }
            ast::Expr::TypedString(ts) => {
                let (ty, typmod) = resolve_type(&ts.data_type)?;
                let inner =
                    self.bind_value(&ts.value.value, false, self.offset(ts.value.span.start))?;
                self.coerce(inner, ty, typmod)
            }
            ast::Expr::Function(f) => self.bind_function(f, pos),
            other => Err(not_supported(format!("expression \"{other}\"")).at(pos)),
        }
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
            other => Err(not_supported(format!("literal {other}")).at(pos)),
        }
    }

    fn bind_identifier(&self, id: &ast::Ident, pos: Option<usize>) -> Result<Bound, SqlError> {
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
                if x.ty.numeric_rank().is_none() {
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
                let textual = |t: SqlType| t.is_string() || t == SqlType::Unknown;
                if !textual(l.ty) && !textual(r.ty) {
                    return Err(self.no_binary_op(left, "||", l.ty, r.ty));
                }
                // An unknown literal beside a non-text value is text (anynonarray || text).
                let l = if l.ty == SqlType::Unknown {
                    self.coerce(l, SqlType::Text, TYPMOD_NONE)?
                } else {
                    l
                };
                let r = if r.ty == SqlType::Unknown {
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
            other => Err(not_supported(format!("operator {other}"))
                .at(self.op_pos(left, &other.to_string()))),
        }
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
                if t.is_string() {
                    SqlType::Text
                } else {
                    t
                }
            }
            (a, b) => match (a.numeric_rank(), b.numeric_rank()) {
                (Some(x), Some(y)) => {
                    if x >= y {
                        a
                    } else {
                        b
                    }
                }
                _ if !numeric_only && a.is_string() && b.is_string() => SqlType::Text,
                _ if !numeric_only && a == b => a,
                _ => return Err(self.no_binary_op(left, op, a, b)),
            },
        };
        if numeric_only && target.numeric_rank().is_none() {
            return Err(self.no_binary_op(left, op, l.ty, r.ty));
        }
        let l = if l.ty.is_string() && target == SqlType::Text {
            l
        } else {
            self.coerce(l, target, TYPMOD_NONE)?
        };
        let r = if r.ty.is_string() && target == SqlType::Text {
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

    /// Converts `b` to `ty`: an unknown literal goes through the type's input function now
    /// (so bad input fails at bind time, pointing at the literal); anything else gets a cast.
    pub(crate) fn coerce(&self, b: Bound, ty: SqlType, typmod: i32) -> Result<Bound, SqlError> {
        if b.ty == ty && typmod == TYPMOD_NONE {
            return Ok(b);
        }
        if let (Kind::Const(d), SqlType::Unknown) = (&b.kind, b.ty) {
            let value = match d {
                Datum::Null => Datum::Null,
                Datum::Text(s) => types::input(ty, typmod, s).map_err(|e| e.at(b.pos))?,
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
        if f.filter.is_some()
            || f.over.is_some()
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
                _ => Err(not_supported(format!("SQL function {name}")).at(pos)),
            };
        }
        let args = args.unwrap_or_default();
        let arg_types: Vec<SqlType> = args.iter().map(|a| a.ty).collect();
        let textual = |t: &SqlType| t.is_string() || *t == SqlType::Unknown;
        let func = match (name.as_str(), arg_types.as_slice()) {
            ("version", []) => Some(Func::Version),
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
            let types: Vec<&str> = arg_types.iter().map(|t| t.sql_name()).collect();
            return Err(SqlError::new(
                UNDEFINED_FUNCTION,
                format!("function {name}({}) does not exist", types.join(", ")),
            )
            .at(pos));
        };
        self.call(func, args, pos)
    }

    fn call(&self, func: Func, args: Vec<Bound>, pos: Option<usize>) -> Result<Bound, SqlError> {
        let ty = match func {
            Func::Version | Func::Upper | Func::Lower => SqlType::Text,
            Func::CurrentDatabase | Func::CurrentUser | Func::CurrentSchema => SqlType::Name,
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
        };
        let args = match func {
            Func::Abs => vec![self.coerce(
                args.into_iter().next().expect("abs has one argument"),
                ty,
                TYPMOD_NONE,
            )?],
            Func::Length | Func::Upper | Func::Lower => {
                let a = args.into_iter().next().expect("one argument");
                vec![if a.ty == SqlType::Unknown {
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
        || to.is_string()
        || (from.numeric_rank().is_some() && to.numeric_rank().is_some())
        || (from == SqlType::Int4 && to == SqlType::Bool)
        || (from == SqlType::Bool && to == SqlType::Int4);
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
        D::Custom(name, mods) if mods.is_empty() && name.0.len() == 1 => {
            let n = name.0[0].as_ident().map(ident_name).unwrap_or_default();
            match n.as_str() {
                "name" => (SqlType::Name, none),
                "regtype" => (SqlType::RegType, none),
                "int2" => (SqlType::Int2, none),
                "int4" => (SqlType::Int4, none),
                "int8" => (SqlType::Int8, none),
                "float8" => (SqlType::Float8, none),
                "bool" => (SqlType::Bool, none),
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
        _ => ("?column?".to_string(), 0),
    }
}

fn cast_name(inner: (String, u8), t: &ast::DataType) -> (String, u8) {
    if inner.1 > 1 {
        return inner;
    }
    match resolve_type(t) {
        Ok((ty, _)) => (ty.type_name().to_string(), 1),
        Err(_) => inner,
    }
}

/// Evaluation context: what the session lends to functions and output.
pub(crate) struct Eval<'a> {
    pub(crate) session: &'a Session,
}

fn cmp_result(op: Cmp, ord: std::cmp::Ordering) -> bool {
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

fn compare(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    match (a, b) {
        (Datum::Bool(x), Datum::Bool(y)) => x.cmp(y),
        (Datum::Int(x), Datum::Int(y)) => x.cmp(y),
        (Datum::Numeric(x), Datum::Numeric(y)) => x.cmp(y),
        (Datum::Float(x), Datum::Float(y)) => float_cmp(*x, *y),
        // Byte order: the "C" collation.
        (Datum::Text(x), Datum::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Datum::Type(x), Datum::Type(y)) => x.oid().cmp(&y.oid()),
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

fn arith(a: Arith, ty: SqlType, x: Datum, y: Datum) -> Result<Datum, SqlError> {
    match (x, y) {
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

pub(crate) fn eval(b: &Bound, cx: &Eval) -> Result<Datum, SqlError> {
    let digits = cx.session.extra_float_digits();
    match &b.kind {
        Kind::Const(d) => Ok(d.clone()),
        Kind::Neg(x) => match eval(x, cx)? {
            Datum::Null => Ok(Datum::Null),
            Datum::Int(v) => b.ty.check_int(v.checked_neg()),
            Datum::Numeric(n) => Ok(Datum::Numeric(-n)),
            Datum::Float(f) => Ok(Datum::Float(-f)),
            other => unreachable!("negation of {other:?}"),
        },
        Kind::Arith(a, l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            if x == Datum::Null || y == Datum::Null {
                return Ok(Datum::Null);
            }
            arith(*a, b.ty, x, y)
        }
        Kind::Cmp {
            op,
            l,
            r,
            null_safe,
        } => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            Ok(match (x == Datum::Null, y == Datum::Null, null_safe) {
                (false, false, _) => Datum::Bool(cmp_result(*op, compare(&x, &y))),
                (_, _, false) => Datum::Null,
                (xn, yn, true) => Datum::Bool(cmp_result(
                    *op,
                    if xn == yn {
                        std::cmp::Ordering::Equal
                    } else {
                        std::cmp::Ordering::Less
                    },
                )),
            })
        }
        Kind::Concat(l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            match (types::output(&x, digits), types::output(&y, digits)) {
                (Some(x), Some(y)) => Ok(Datum::Text(x + &y)),
                _ => Ok(Datum::Null),
            }
        }
        // Both sides are evaluated (PostgreSQL folds every constant argument), then combined
        // with three-valued logic.
        Kind::And(l, r) | Kind::Or(l, r) => {
            let is_and = matches!(b.kind, Kind::And(..));
            let (x, y) = (as_bool(eval(l, cx)?), as_bool(eval(r, cx)?));
            Ok(match (x, y) {
                (Some(p), Some(q)) => Datum::Bool(if is_and { p && q } else { p || q }),
                (Some(v), None) | (None, Some(v)) if v != is_and => Datum::Bool(v),
                _ => Datum::Null,
            })
        }
        Kind::Not(x) => Ok(as_bool(eval(x, cx)?).map_or(Datum::Null, |v| Datum::Bool(!v))),
        Kind::IsNull(x, negated) => Ok(Datum::Bool((eval(x, cx)? == Datum::Null) != *negated)),
        Kind::IsBool(x, value, negated) => {
            Ok(Datum::Bool((as_bool(eval(x, cx)?) == *value) != *negated))
        }
        Kind::Cast(x) => types::cast(eval(x, cx)?, x.ty, b.ty, b.typmod, digits),
        Kind::Func(f, args) => call(*f, args, cx),
        Kind::Coalesce(args) => {
            // Lazy, like PostgreSQL: arguments after the first non-null are not evaluated.
            for a in args {
                let v = eval(a, cx)?;
                if v != Datum::Null {
                    return Ok(v);
                }
            }
            Ok(Datum::Null)
        }
        Kind::NullIf(l, r) => {
            let (x, y) = (eval(l, cx)?, eval(r, cx)?);
            if x != Datum::Null && y != Datum::Null && compare(&x, &y) == std::cmp::Ordering::Equal
            {
                Ok(Datum::Null)
            } else {
                Ok(x)
            }
        }
    }
}

fn as_bool(d: Datum) -> Option<bool> {
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
    let s = cx.session;
    Ok(match (f, values.as_slice()) {
        (Func::Version, _) => Datum::Text(VERSION_TEXT.to_string()),
        (Func::CurrentDatabase, _) => Datum::Text(s.database().to_string()),
        (Func::CurrentUser, _) => Datum::Text(s.user().to_string()),
        (Func::CurrentSchema, _) => Datum::Text("public".to_string()),
        (Func::PgTypeof, _) => Datum::Type(args[0].ty),
        (_, [Datum::Null]) => Datum::Null,
        (Func::Length, [Datum::Text(t)]) => Datum::Int(t.chars().count() as i64),
        (Func::Upper, [Datum::Text(t)]) => Datum::Text(t.to_uppercase()),
        (Func::Lower, [Datum::Text(t)]) => Datum::Text(t.to_lowercase()),
        (Func::Abs, [Datum::Int(v)]) => args[0].ty.check_int(v.checked_abs())?,
        (Func::Abs, [Datum::Numeric(n)]) => Datum::Numeric(n.abs()),
        (Func::Abs, [Datum::Float(f)]) => Datum::Float(f.abs()),
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
