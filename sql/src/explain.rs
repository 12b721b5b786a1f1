//! EXPLAIN: the distributed plan of a query as text, one row per line (PostgreSQL's single
//! `QUERY PLAN` column). It shows the two halves of every plan: the shard fragments (which
//! table, on which shards, what filter runs there) and the coordinator's operators over
//! their results.

use sqlparser::ast;

use crate::cluster::Cluster;
use crate::error::*;
use crate::expr::{Bound, Env, Kind};
use crate::plan::{Fetch, FetchOutput, JoinKind, JoinMethod, Plan, Planner, SetOpKind, ShardJoin};
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
    let mut fetches = planner.fetches.into_inner();
    let plan = crate::pushdown::push_down(plan, &mut fetches);
    let env = Env::of(session);
    let mut lines = vec![format!(
        "Coordinator (on the client's shard; {} shards)",
        cluster.shard_count()
    )];
    plan_lines(&plan, &fetches, 1, &mut lines);
    if !fetches.is_empty() {
        lines.push("Shard fragments".to_string());
    }
    for (i, f) in fetches.iter().enumerate() {
        fragment_lines(cluster, i, f, &fetches, &env, &mut lines)?;
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
    fetches: &[Fetch],
    env: &Env,
    lines: &mut Vec<String>,
) -> Result<(), SqlError> {
    let table = format!("{}.{}", f.table.schema, f.table.name);
    let where_ = match crate::stmt::point_key(&f.table, f.filter.as_ref(), env)? {
        Some(key) => {
            let token = crate::rowcodec::storage_key_token(&key).unwrap_or_default();
            format!("primary key; shard {} only", cluster.shard_of_token(token))
        }
        None => {
            let specs = crate::index::specs_for(&cluster.catalog(), &f.table);
            let index = crate::index::choose(&f.table, &specs, f.filter.as_ref(), env)?;
            let shards = format!("every shard: 0..{} in parallel", cluster.shard_count());
            match index.and_then(|r| index_name(cluster, &f.table, r.index_id)) {
                Some(name) => format!("index {name}; {shards}"),
                None => shards,
            }
        }
    };
    if f.push.absorbed {
        absorbed_lines(index, f, fetches, &where_, lines);
        return Ok(());
    }
    let Some(join) = &f.push.join else {
        let names = |c: usize| column_name(&f.table, c);
        let what = if where_.starts_with("primary key") {
            "Point Get"
        } else {
            "Scan"
        };
        lines.push(format!("  #{index} {what} on {table} ({where_})"));
        if let Some(filter) = &f.filter {
            lines.push(format!(
                "        Filter (pushed down): {}",
                expr_text(filter, &names)
            ));
        }
        output_lines(f, env, &names, lines);
        return Ok(());
    };
    join_lines(index, f, join, fetches, &where_, env, lines);
    Ok(())
}

/// The name of index `id` of `table`.
fn index_name<C: Cluster>(cluster: &C, table: &crate::catalog::Table, id: u32) -> Option<String> {
    let catalog = cluster.catalog();
    catalog.databases.values().find_map(|d| {
        d.schemas
            .get(&table.schema)?
            .indexes
            .values()
            .find(|i| i.id == id && i.table == table.name)
            .map(|i| i.name.clone())
    })
}

/// A fragment that joins its rows with another fetch's: how, the filters and conditions it
/// runs, its output stage.
fn join_lines(
    index: usize,
    f: &Fetch,
    join: &ShardJoin,
    fetches: &[Fetch],
    where_: &str,
    env: &Env,
    lines: &mut Vec<String>,
) {
    let table = qualified(&f.table);
    let other = &fetches[join.other];
    let other_table = format!("{}.{}", other.table.schema, other.table.name);
    // The fragment's row: the join's left side's columns, then its right side's.
    let other_is_left = matches!(
        join.method,
        JoinMethod::Broadcast {
            other_is_left: true,
            ..
        }
    );
    let (left, right) = if other_is_left {
        (other, f)
    } else {
        (f, other)
    };
    let left_width = left.table.columns.len();
    let row_names: Vec<String> = left
        .table
        .columns
        .iter()
        .chain(&right.table.columns)
        .map(|c| c.name.clone())
        .collect();
    let names = |c: usize| row_names.get(c).cloned().unwrap_or_else(|| format!("${c}"));
    let own_names = |c: usize| names(if other_is_left { c + left_width } else { c });
    let kind = join_kind(join.kind);
    match &join.method {
        JoinMethod::Colocated { .. } => lines.push(format!(
            "  #{index} Co-located Join ({kind}) of {table} and {other_table} on their primary keys ({where_})"
        )),
        JoinMethod::Broadcast {
            left_keys,
            right_keys,
            ..
        } => {
            let (lt, rt) = (qualified(&left.table), qualified(&right.table));
            lines.push(format!(
                "  #{index} Broadcast Join ({kind}) of {lt} and {rt} ({where_}): #{} broadcast to every shard",
                join.other
            ));
            // Qualified: both sides may be the same table.
            let left_names = |c: usize| format!("{}.{}", left.table.name, names(c));
            let right_names =
                |c: usize| format!("{}.{}", right.table.name, names(c + left_width));
            let conds: Vec<String> = left_keys
                .iter()
                .zip(right_keys)
                .map(|(l, r)| {
                    let (l, r) = (expr_text(l, &left_names), expr_text(r, &right_names));
                    format!("({l} = {r})")
                })
                .collect();
            lines.push(format!("        Hash Cond: {}", conds.join(" AND ")));
        }
    }
    if let Some(filter) = &f.filter {
        lines.push(format!(
            "        Filter on {table} (pushed down): {}",
            expr_text(filter, &own_names)
        ));
    }
    if let (JoinMethod::Colocated { .. }, Some(filter)) = (&join.method, &other.filter) {
        let other_names = |c: usize| names(c + f.table.columns.len());
        lines.push(format!(
            "        Filter on {other_table} (pushed down): {}",
            expr_text(filter, &other_names)
        ));
    }
    if let Some(residual) = &join.residual {
        lines.push(format!(
            "        Join Filter (pushed down): {}",
            expr_text(residual, &names)
        ));
    }
    if matches!(join.method, JoinMethod::Broadcast { .. }) {
        lines.push(format!(
            "        Broadcast limit: {} rows, {} MiB (above it: hash join on the coordinator)",
            crate::dist::BROADCAST_ROWS_MAX,
            crate::dist::BROADCAST_BYTES_MAX >> 20
        ));
    }
    output_lines(f, env, &names, lines);
}

fn qualified(t: &crate::catalog::Table) -> String {
    format!("{}.{}", t.schema, t.name)
}

fn column_name(t: &crate::catalog::Table, c: usize) -> String {
    t.columns
        .get(c)
        .map_or_else(|| format!("${c}"), |col| col.name.clone())
}

/// A fetch another fetch's join reads: a co-located one is not fetched at all; a broadcast
/// one is read first, whole rows, and sent along.
fn absorbed_lines(
    index: usize,
    f: &Fetch,
    fetches: &[Fetch],
    where_: &str,
    lines: &mut Vec<String>,
) {
    let table = qualified(&f.table);
    let by = fetches.iter().enumerate().find_map(|(i, g)| {
        g.push
            .join
            .as_ref()
            .filter(|j| j.other == index)
            .map(|j| (i, j))
    });
    let (by, join) = by.expect("an absorbed fetch has its join");
    if matches!(join.method, JoinMethod::Colocated { .. }) {
        lines.push(format!("  #{index} {table}: read by a co-located join"));
        return;
    }
    let what = if where_.starts_with("primary key") {
        "Point Get"
    } else {
        "Scan"
    };
    lines.push(format!(
        "  #{index} {what} on {table} ({where_}), broadcast to #{by}'s fragments"
    ));
    if let Some(filter) = &f.filter {
        let names = |c: usize| column_name(&f.table, c);
        lines.push(format!(
            "        Filter (pushed down): {}",
            expr_text(filter, &names)
        ));
    }
}

/// The fragment's output stage and projection.
fn output_lines(f: &Fetch, env: &Env, names: &dyn Fn(usize) -> String, lines: &mut Vec<String>) {
    // LIMIT and OFFSET are constants or parameters: shown as their values when known.
    let value = |b: &Bound| match crate::expr::eval(b, &crate::expr::Eval::new(env)) {
        Ok(d) => types::output(&d, &types::Style::default()).unwrap_or_else(|| "NULL".to_string()),
        Err(_) => expr_text(b, names),
    };
    let count = |limit: &Bound, offset: &Option<Bound>| match offset {
        None => value(limit),
        Some(o) => format!("{} (+ OFFSET {})", value(limit), value(o)),
    };
    match &f.push.output {
        FetchOutput::Rows => {}
        FetchOutput::Limit { limit, offset } => {
            lines.push(format!("        Limit: {}", count(limit, offset)));
        }
        FetchOutput::TopN {
            keys,
            limit,
            offset,
        } => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| {
                    let dir = if k.descending { " DESC" } else { "" };
                    let nulls = match (k.descending, k.nulls_first) {
                        (false, true) => " NULLS FIRST",
                        (true, false) => " NULLS LAST",
                        _ => "",
                    };
                    format!("{}{dir}{nulls}", expr_text(&k.expr, names))
                })
                .collect();
            lines.push(format!(
                "        Top-N: {} by {}",
                count(limit, offset),
                keys.join(", ")
            ));
        }
        FetchOutput::PartialAggregate { groups, calls } => {
            let calls: Vec<String> = calls.iter().map(|c| call_text(c, names)).collect();
            let mut line = format!("        Partial Aggregate: {}", calls.join(", "));
            if !groups.is_empty() {
                let groups: Vec<String> = groups.iter().map(|g| expr_text(g, names)).collect();
                line.push_str(&format!(" by {}", groups.join(", ")));
            }
            lines.push(line);
        }
    }
    if let Some(columns) = &f.push.columns {
        let shown: Vec<String> = columns.iter().map(|&c| names(c)).collect();
        let shown = if shown.is_empty() {
            "(no columns)".to_string()
        } else {
            shown.join(", ")
        };
        lines.push(format!("        Projection: {shown}"));
    }
}

fn call_text(c: &crate::expr::AggCall, names: &dyn Fn(usize) -> String) -> String {
    let arg = c
        .arg
        .as_ref()
        .map_or("*".to_string(), |a| expr_text(a, names));
    let filter = c.filter.as_ref().map_or(String::new(), |w| {
        format!(" FILTER (WHERE {})", expr_text(w, names))
    });
    format!("{}({arg}){filter}", agg_name(c.func))
}

fn agg_name(func: crate::expr::AggFunc) -> String {
    match func {
        crate::expr::AggFunc::CountStar => "count".to_string(),
        crate::expr::AggFunc::StringAgg => "string_agg".to_string(),
        crate::expr::AggFunc::ArrayAgg => "array_agg".to_string(),
        crate::expr::AggFunc::BoolAnd => "bool_and".to_string(),
        crate::expr::AggFunc::BoolOr => "bool_or".to_string(),
        f => format!("{f:?}").to_lowercase(),
    }
}

fn join_kind(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "Inner",
        JoinKind::Left => "Left",
        JoinKind::Right => "Right",
        JoinKind::Full => "Full",
    }
}

/// How the coordinator reads fetch `n`'s results.
fn fetch_label(n: usize, fetches: &[Fetch]) -> String {
    let Some(f) = fetches.get(n) else {
        return format!("Fragment results #{n}");
    };
    match (&f.push.output, &f.push.join) {
        (FetchOutput::PartialAggregate { groups, calls }, _) => {
            let calls: Vec<String> = calls
                .iter()
                .map(|c| match c.func {
                    crate::expr::AggFunc::CountStar => "count(*)".to_string(),
                    f => agg_name(f),
                })
                .collect();
            format!(
                "Finalize Aggregate ({} group keys): {} over partial states of #{n}",
                groups.len(),
                calls.join(", ")
            )
        }
        (FetchOutput::TopN { keys, .. }, _) => {
            format!(
                "Merge ({} sort keys) of sorted fragment results #{n}",
                keys.len()
            )
        }
        (_, Some(j)) => {
            let method = match j.method {
                JoinMethod::Colocated { .. } => "Co-located",
                JoinMethod::Broadcast { .. } => "Broadcast",
            };
            format!(
                "{method} Join ({}): fragment results #{n}",
                join_kind(j.kind)
            )
        }
        _ => format!("Fragment results #{n}"),
    }
}

fn plan_lines(plan: &Plan, fetches: &[Fetch], depth: usize, lines: &mut Vec<String>) {
    let indent = "  ".repeat(depth);
    if depth > DEPTH_MAX {
        lines.push(format!("{indent}..."));
        return;
    }
    let (label, inputs): (String, Vec<&Plan>) = match plan {
        Plan::Unit => ("Result (one row)".to_string(), vec![]),
        Plan::Values(rows) => (format!("Values ({} rows)", rows.len()), vec![]),
        Plan::Fetch(n) => (fetch_label(*n, fetches), vec![]),
        Plan::Function { func, .. } => (format!("Function Scan on {}", func.name()), vec![]),
        Plan::LateralFunction { input, funcs, .. } => (
            match &funcs[..] {
                [func] => format!("Nested Loop (Function Scan on {} per row)", func.name()),
                _ => format!("ProjectSet ({} functions)", funcs.len()),
            },
            vec![input.as_ref()],
        ),
        Plan::LateralSubquery {
            input,
            sub,
            keep_unmatched,
            ..
        } => (
            format!(
                "Nested Loop{} (Subquery per row)",
                if *keep_unmatched { " Left Join" } else { "" }
            ),
            vec![input.as_ref(), sub.as_ref()],
        ),
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
            let kind = join_kind(*kind);
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
                    f => agg_name(f),
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
        Plan::Truncate(input, _) => return plan_lines(input, fetches, depth, lines),
    };
    lines.push(format!("{indent}->  {label}"));
    for input in inputs {
        plan_lines(input, fetches, depth + 1, lines);
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
