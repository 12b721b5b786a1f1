//! EXPLAIN: the distributed plan of a query as text, one row per line (PostgreSQL's single
//! `QUERY PLAN` column). It shows the two halves of every plan: the shard fragments (which
//! table, on which shards, what filter runs there) and the coordinator's operators over
//! their results.

use sqlparser::ast;

use crate::cluster::Cluster;
use crate::error::*;
use crate::expr::{Bound, Env, Kind};
use crate::plan::{Fetch, JoinKind, Plan, Planner, SetOpKind};
use crate::session::Session;
use crate::types::{self, Datum, SqlType, TYPMOD_NONE};
use crate::{column, StatementResult};

/// Deepest plan tree EXPLAIN prints before eliding the rest.
const DEPTH_MAX: usize = 64;

pub(crate) async fn run_explain<C: Cluster>(
    session: &Session,
    cluster: &C,
    sql: &str,
    statement: &ast::Statement,
    analyze: bool,
) -> Result<StatementResult, SqlError> {
    if analyze {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "EXPLAIN ANALYZE is not supported yet",
        ));
    }
    let ast::Statement::Query(q) = statement else {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "EXPLAIN of statements other than queries is not supported yet",
        ));
    };
    let catalog = cluster.catalog();
    let positions = crate::expr::Positions::new(sql);
    let param_types = std::cell::RefCell::new(Vec::new());
    let planner = Planner::new(session, sql, &positions, &catalog, &param_types);
    let (plan, _) = planner.plan_query(q, None)?;
    let fetches = planner.fetches.into_inner();
    let env = Env::of(session);
    let mut lines = vec![format!(
        "Coordinator (on the client's shard; {} shards)",
        cluster.shard_count()
    )];
    plan_lines(&plan, 1, &mut lines);
    if !fetches.is_empty() {
        lines.push("Shard fragments".to_string());
    }
    for (i, f) in fetches.iter().enumerate() {
        fragment_lines(cluster, i, f, &env, &mut lines)?;
    }
    Ok(StatementResult::Rows {
        columns: vec![column("QUERY PLAN".to_string(), SqlType::Text, TYPMOD_NONE)],
        rows: lines.into_iter().map(|l| vec![Some(l)]).collect(),
        tag: "EXPLAIN".to_string(),
    })
}

fn fragment_lines<C: Cluster>(
    cluster: &C,
    index: usize,
    f: &Fetch,
    env: &Env,
    lines: &mut Vec<String>,
) -> Result<(), SqlError> {
    let table = format!("{}.{}", f.table.schema, f.table.name);
    let names = |c: usize| {
        f.table
            .columns
            .get(c)
            .map_or_else(|| format!("${c}"), |col| col.name.clone())
    };
    match crate::stmt::point_key(&f.table, f.filter.as_ref(), env)? {
        Some(key) => {
            let token = crate::rowcodec::storage_key_token(&key).unwrap_or_default();
            lines.push(format!(
                "  #{index} Point Get on {table} (primary key; shard {} only)",
                cluster.shard_of_token(token)
            ));
        }
        None => lines.push(format!(
            "  #{index} Scan on {table} (every shard: 0..{} in parallel)",
            cluster.shard_count()
        )),
    }
    if let Some(filter) = &f.filter {
        lines.push(format!(
            "        Filter (pushed down): {}",
            expr_text(filter, &names)
        ));
    }
    Ok(())
}

fn plan_lines(plan: &Plan, depth: usize, lines: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    if depth > DEPTH_MAX {
        lines.push(format!("{indent}..."));
        return;
    }
    let (label, inputs): (String, Vec<&Plan>) = match plan {
        Plan::Unit => ("Result (one row)".to_string(), vec![]),
        Plan::Values(rows) => (format!("Values ({} rows)", rows.len()), vec![]),
        Plan::Fetch(n) => (format!("Fragment results #{n}"), vec![]),
        Plan::Series { .. } => ("Function Scan on generate_series".to_string(), vec![]),
        Plan::Filter(input, _) => ("Filter".to_string(), vec![input.as_ref()]),
        Plan::Project(input, exprs) => (
            format!("Project ({} columns)", exprs.len()),
            vec![input.as_ref()],
        ),
        Plan::Join {
            left,
            right,
            kind,
            left_keys,
            ..
        } => {
            let kind = match kind {
                JoinKind::Inner => "Inner",
                JoinKind::Left => "Left",
                JoinKind::Right => "Right",
                JoinKind::Full => "Full",
            };
            let method = if left_keys.is_empty() {
                "Nested Loop".to_string()
            } else {
                format!("Hash Join on {} key(s)", left_keys.len())
            };
            (
                format!("{method} ({kind})"),
                vec![left.as_ref(), right.as_ref()],
            )
        }
        Plan::Aggregate {
            input,
            groups,
            calls,
        } => {
            let calls: Vec<String> = calls
                .iter()
                .map(|c| match c.func {
                    crate::expr::AggFunc::CountStar => "count(*)".to_string(),
                    crate::expr::AggFunc::StringAgg => "string_agg".to_string(),
                    crate::expr::AggFunc::BoolAnd => "bool_and".to_string(),
                    crate::expr::AggFunc::BoolOr => "bool_or".to_string(),
                    f => format!("{f:?}").to_lowercase(),
                })
                .collect();
            let kind = if groups.is_empty() {
                "Aggregate".to_string()
            } else {
                format!("Hash Aggregate ({} group keys)", groups.len())
            };
            (
                format!("{kind}: {}", calls.join(", ")),
                vec![input.as_ref()],
            )
        }
        Plan::Sort(input, keys) => (format!("Sort ({} keys)", keys.len()), vec![input.as_ref()]),
        Plan::Limit { input, .. } => ("Limit".to_string(), vec![input.as_ref()]),
        Plan::Distinct(input) => ("Distinct".to_string(), vec![input.as_ref()]),
        Plan::SetOp {
            op,
            all,
            left,
            right,
        } => {
            let op = match op {
                SetOpKind::Union => "Union",
                SetOpKind::Intersect => "Intersect",
                SetOpKind::Except => "Except",
            };
            let all = if *all { " All" } else { "" };
            (format!("{op}{all}"), vec![left.as_ref(), right.as_ref()])
        }
        Plan::Truncate(input, _) => return plan_lines(input, depth, lines),
    };
    lines.push(format!("{indent}->  {label}"));
    for input in inputs {
        plan_lines(input, depth + 1, lines);
    }
}

/// An expression over one table's columns as SQL-like text.
fn expr_text(b: &Bound, names: &dyn Fn(usize) -> String) -> String {
    let t = |b: &Bound| expr_text(b, names);
    match &b.kind {
        Kind::Const(Datum::Null) => "NULL".to_string(),
        Kind::Const(d @ Datum::Text(_)) => {
            let text = types::output(d, &types::Style::default()).unwrap_or_default();
            format!("'{}'", text.replace('\'', "''"))
        }
        Kind::Const(d) => types::output(d, &types::Style::default()).unwrap_or_default(),
        Kind::Column(c) => names(*c),
        Kind::Outer(_, c) => format!("outer.${c}"),
        Kind::Param(n) => format!("${}", n + 1),
        Kind::Case { .. } => "CASE ... END".to_string(),
        Kind::InList { x, list, negated } => {
            let items: Vec<String> = list.iter().map(t).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("({} {not}IN ({}))", t(x), items.join(", "))
        }
        Kind::Like {
            x,
            pattern,
            negated,
            case_insensitive,
        } => {
            let not = if *negated { "NOT " } else { "" };
            let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
            format!("({} {not}{op} {})", t(x), t(pattern))
        }
        Kind::Subquery(_) => "(SubPlan)".to_string(),
        Kind::Neg(x) => format!("(-{})", t(x)),
        Kind::Arith(op, l, r) => {
            let op = match op {
                crate::expr::Arith::Add => "+",
                crate::expr::Arith::Sub => "-",
                crate::expr::Arith::Mul => "*",
                crate::expr::Arith::Div => "/",
                crate::expr::Arith::Mod => "%",
                crate::expr::Arith::Pow => "^",
            };
            format!("({} {op} {})", t(l), t(r))
        }
        Kind::Cmp {
            op,
            l,
            r,
            null_safe,
        } => {
            let op = match (op, null_safe) {
                (crate::expr::Cmp::Eq, true) => "IS NOT DISTINCT FROM",
                (crate::expr::Cmp::Ne, true) => "IS DISTINCT FROM",
                (crate::expr::Cmp::Eq, false) => "=",
                (crate::expr::Cmp::Ne, _) => "<>",
                (crate::expr::Cmp::Lt, _) => "<",
                (crate::expr::Cmp::Le, _) => "<=",
                (crate::expr::Cmp::Gt, _) => ">",
                (crate::expr::Cmp::Ge, _) => ">=",
            };
            format!("({} {op} {})", t(l), t(r))
        }
        Kind::Concat(l, r) => format!("({} || {})", t(l), t(r)),
        Kind::And(l, r) => format!("({} AND {})", t(l), t(r)),
        Kind::Or(l, r) => format!("({} OR {})", t(l), t(r)),
        Kind::Not(x) => format!("(NOT {})", t(x)),
        Kind::IsNull(x, negated) => {
            let not = if *negated { "NOT " } else { "" };
            format!("({} IS {not}NULL)", t(x))
        }
        Kind::IsBool(x, value, negated) => {
            let not = if *negated { "NOT " } else { "" };
            let v = match value {
                Some(true) => "TRUE",
                Some(false) => "FALSE",
                None => "UNKNOWN",
            };
            format!("({} IS {not}{v})", t(x))
        }
        Kind::Cast(x) => format!("({})::{}", t(x), b.ty.sql_name()),
        Kind::Func(f, args) => {
            let args: Vec<String> = args.iter().map(t).collect();
            format!("{}({})", format!("{f:?}").to_lowercase(), args.join(", "))
        }
        Kind::Coalesce(args) => {
            let args: Vec<String> = args.iter().map(t).collect();
            format!("COALESCE({})", args.join(", "))
        }
        Kind::NullIf(a, b) => format!("NULLIF({}, {})", t(a), t(b)),
        Kind::Pg(_, args) => {
            let args: Vec<String> = args.iter().map(t).collect();
            format!("catalog_function({})", args.join(", "))
        }
    }
}
