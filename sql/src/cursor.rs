//! SQL cursors: DECLARE name [NO] SCROLL CURSOR [WITH[OUT] HOLD] FOR query, FETCH and CLOSE,
//! as psycopg's named cursors and Django's `QuerySet.iterator()` use them.
//!
//! A cursor's query runs once, at DECLARE, and its rows (as the text the wire sends) are
//! kept in the session; FETCH moves through them as PostgreSQL's cursor moves through its
//! portal. The rows are what the query saw at DECLARE, as a PostgreSQL cursor's are (its
//! snapshot is the DECLARE's), and at most a statement's row budget. A cursor without HOLD
//! ends with its transaction; one WITH HOLD outlives the COMMIT of the transaction that
//! declared it (a ROLLBACK of that transaction ends it too).

use std::sync::Arc;

use sqlparser::ast;

use crate::cluster::Cluster;
use crate::error::*;
use crate::session::Session;
use crate::{Column, StatementResult, TransactionState};

/// One declared cursor.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    columns: Vec<Column>,
    rows: Arc<Vec<Vec<Option<String>>>>,
    /// Where it is: 0 before the first row, `rows.len() + 1` after the last, else on row
    /// `position - 1`.
    position: usize,
    /// NO SCROLL: FETCH may only move forward.
    no_scroll: bool,
    hold: bool,
    /// The transaction block that declared it (its ROLLBACK ends even a WITH HOLD cursor).
    declared_in: Option<u64>,
}

const DUPLICATE_CURSOR: &str = "42P03";
const INVALID_CURSOR_NAME: &str = "34000";
const NO_ACTIVE_TRANSACTION: &str = "25P01";
const OBJECT_NOT_IN_STATE: &str = "55000";

static HINT_SCROLL: &str = "Declare it with SCROLL option to enable backward scan.";

fn done(tag: String) -> StatementResult {
    StatementResult::Command {
        tag,
        changed_parameters: Vec::new(),
        notices: Vec::new(),
    }
}

/// DECLARE: runs the query and keeps its rows under the cursor's name.
pub(crate) async fn declare<C: Cluster>(
    session: &mut Session,
    cluster: &C,
    sql: &str,
    declare: &ast::Declare,
    params: &crate::stmt::Params,
) -> Result<StatementResult, SqlError> {
    let (Some(query), [name]) = (declare.for_query.as_deref(), declare.names.as_slice()) else {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "this DECLARE is not supported",
        ));
    };
    if declare.binary == Some(true) {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "binary cursors are not supported",
        ));
    }
    let name = crate::plan::ident(name);
    let hold = declare.hold == Some(true);
    if !hold && session.transaction == TransactionState::Idle {
        return Err(SqlError::new(
            NO_ACTIVE_TRANSACTION,
            "DECLARE CURSOR can only be used in transaction blocks",
        ));
    }
    if session.cursors.contains_key(&name) && !params.describe {
        return Err(SqlError::new(
            DUPLICATE_CURSOR,
            format!("cursor \"{name}\" already exists"),
        ));
    }
    let StatementResult::Rows { columns, rows, .. } =
        crate::stmt::run_query(session, cluster, sql, query, params).await?
    else {
        unreachable!("a query answers with rows");
    };
    if params.describe {
        return Ok(done(String::new()));
    }
    session.cursors.insert(
        name,
        Cursor {
            columns,
            rows: Arc::new(rows),
            position: 0,
            no_scroll: declare.scroll == Some(false),
            hold,
            declared_in: session.block_txn,
        },
    );
    Ok(done("DECLARE CURSOR".into()))
}

/// A FETCH direction as a move: forward or backward by up to `count` rows (None: all), or
/// to an absolute or relative position.
enum Move {
    Forward(Option<u64>),
    Backward(Option<u64>),
    Absolute(i64),
    Relative(i64),
}

fn count_of(v: &ast::ValueWithSpan) -> Result<i64, SqlError> {
    let text = v.to_string();
    text.parse::<i64>()
        .map_err(|_| SqlError::new(SYNTAX_ERROR, format!("syntax error at or near \"{text}\"")))
}

fn move_of(direction: &ast::FetchDirection) -> Result<Move, SqlError> {
    use ast::FetchDirection as D;
    let signed = |n: i64| match n {
        n if n < 0 => Move::Backward(Some(n.unsigned_abs())),
        n => Move::Forward(Some(n as u64)),
    };
    Ok(match direction {
        D::Next | D::Forward { limit: None } => Move::Forward(Some(1)),
        D::Prior | D::Backward { limit: None } => Move::Backward(Some(1)),
        D::Count { limit } | D::Forward { limit: Some(limit) } => signed(count_of(limit)?),
        D::Backward { limit: Some(limit) } => match count_of(limit)? {
            n if n < 0 => Move::Forward(Some(n.unsigned_abs())),
            n => Move::Backward(Some(n as u64)),
        },
        D::All | D::ForwardAll => Move::Forward(None),
        D::BackwardAll => Move::Backward(None),
        D::First => Move::Absolute(1),
        D::Last => Move::Absolute(-1),
        D::Absolute { limit } => Move::Absolute(count_of(limit)?),
        D::Relative { limit } => Move::Relative(count_of(limit)?),
    })
}

/// FETCH: the rows the move passes over, in its direction; the cursor stays where it ends.
pub(crate) fn fetch(
    session: &mut Session,
    name: &ast::Ident,
    direction: &ast::FetchDirection,
    into: Option<&ast::ObjectName>,
    describe: bool,
) -> Result<StatementResult, SqlError> {
    let moving = into.is_some_and(|i| i.to_string().contains(crate::MOVE_MARKER));
    if into.is_some() && !moving {
        return Err(SqlError::new(
            FEATURE_NOT_SUPPORTED,
            "FETCH ... INTO is not supported",
        ));
    }
    let name = crate::plan::ident(name);
    let Some(cursor) = session.cursors.get_mut(&name) else {
        return Err(SqlError::new(
            INVALID_CURSOR_NAME,
            format!("cursor \"{name}\" does not exist"),
        ));
    };
    let m = move_of(direction)?;
    let backward = match m {
        Move::Backward(_) => true,
        Move::Absolute(n) => (n.max(0) as usize) < cursor.position || n < 0,
        Move::Relative(n) => n < 0,
        Move::Forward(_) => false,
    };
    if backward && cursor.no_scroll {
        return Err(
            SqlError::new(OBJECT_NOT_IN_STATE, "cursor can only scan forward")
                .with_hint(&HINT_SCROLL),
        );
    }
    if describe && moving {
        return Ok(done(String::new()));
    }
    if describe {
        return Ok(StatementResult::Rows {
            columns: cursor.columns.clone(),
            rows: Vec::new(),
            tag: String::new(),
        });
    }
    let rows = moved(cursor, m);
    if moving {
        return Ok(done(format!("MOVE {}", rows.len())));
    }
    Ok(StatementResult::Rows {
        columns: cursor.columns.clone(),
        tag: format!("FETCH {}", rows.len()),
        rows,
    })
}

/// Moves `cursor` and returns the rows it fetches, as PostgreSQL's portal does.
fn moved(cursor: &mut Cursor, m: Move) -> Vec<Vec<Option<String>>> {
    let len = cursor.rows.len();
    let row_at = |position: usize| (1..=len).contains(&position).then(|| position - 1);
    let mut out = Vec::new();
    match m {
        Move::Forward(Some(0)) | Move::Relative(0) => {
            out.extend(row_at(cursor.position).map(|i| cursor.rows[i].clone()));
        }
        Move::Forward(count) => {
            let mut left = count.unwrap_or(u64::MAX);
            while left > 0 && cursor.position <= len {
                cursor.position += 1;
                match row_at(cursor.position) {
                    Some(i) => out.push(cursor.rows[i].clone()),
                    None => break,
                }
                left -= 1;
            }
        }
        Move::Backward(count) => {
            let mut left = count.unwrap_or(u64::MAX);
            while left > 0 && cursor.position > 0 {
                cursor.position -= 1;
                match row_at(cursor.position) {
                    Some(i) => out.push(cursor.rows[i].clone()),
                    None => break,
                }
                left -= 1;
            }
        }
        Move::Absolute(n) => {
            cursor.position = if n >= 0 {
                (n as usize).min(len + 1)
            } else {
                (len + 1).saturating_sub(n.unsigned_abs() as usize)
            };
            out.extend(row_at(cursor.position).map(|i| cursor.rows[i].clone()));
        }
        Move::Relative(n) => {
            let target = cursor.position as i64 + n;
            cursor.position = target.clamp(0, len as i64 + 1) as usize;
            out.extend(row_at(cursor.position).map(|i| cursor.rows[i].clone()));
        }
    }
    out
}

impl Session {
    /// The columns of SQL cursor `name` (DECLARE), which is also a portal of that name to the
    /// extended protocol's Describe, as in PostgreSQL (psycopg's named cursors describe it so).
    pub fn cursor_columns(&self, name: &str) -> Option<Vec<Column>> {
        self.cursors.get(name).map(|c| c.columns.clone())
    }
}

/// CLOSE name | ALL.
pub(crate) fn close(
    session: &mut Session,
    cursor: &ast::CloseCursor,
) -> Result<StatementResult, SqlError> {
    match cursor {
        ast::CloseCursor::All => {
            session.cursors.clear();
            return Ok(done("CLOSE CURSOR ALL".into()));
        }
        ast::CloseCursor::Specific { name } => {
            let name = crate::plan::ident(name);
            if session.cursors.remove(&name).is_none() {
                return Err(SqlError::new(
                    INVALID_CURSOR_NAME,
                    format!("cursor \"{name}\" does not exist"),
                ));
            }
        }
    }
    Ok(done("CLOSE CURSOR".into()))
}

/// The block ends: its cursors without HOLD go, and on a ROLLBACK the ones it declared.
pub(crate) fn end_of_block(session: &mut Session, rolled_back: bool) {
    let block = session.block_txn;
    session.cursors.retain(|_, c| {
        c.hold && !(rolled_back && c.declared_in.is_some() && c.declared_in == block)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(n: usize) -> Cursor {
        Cursor {
            columns: Vec::new(),
            rows: Arc::new((1..=n).map(|i| vec![Some(i.to_string())]).collect()),
            position: 0,
            no_scroll: false,
            hold: false,
            declared_in: None,
        }
    }

    fn values(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
        rows.into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect()
    }

    /// The moves of PostgreSQL's portal over 5 rows (checked against PostgreSQL 15 with a
    /// SCROLL cursor over generate_series(1, 5)).
    #[test]
    fn moves_as_a_postgresql_portal() {
        let mut c = cursor(5);
        assert_eq!(values(moved(&mut c, Move::Forward(Some(2)))), ["1", "2"]);
        assert_eq!(values(moved(&mut c, Move::Forward(Some(0)))), ["2"]);
        assert_eq!(values(moved(&mut c, Move::Backward(Some(1)))), ["1"]);
        assert_eq!(
            values(moved(&mut c, Move::Backward(Some(1)))),
            Vec::<String>::new()
        );
        assert_eq!(c.position, 0);
        assert_eq!(
            values(moved(&mut c, Move::Forward(None))),
            ["1", "2", "3", "4", "5"]
        );
        assert_eq!(c.position, 6);
        assert_eq!(
            values(moved(&mut c, Move::Forward(Some(1)))),
            Vec::<String>::new()
        );
        assert_eq!(values(moved(&mut c, Move::Backward(Some(2)))), ["5", "4"]);
        assert_eq!(values(moved(&mut c, Move::Absolute(-1))), ["5"]);
        assert_eq!(values(moved(&mut c, Move::Absolute(2))), ["2"]);
        assert_eq!(values(moved(&mut c, Move::Relative(2))), ["4"]);
        assert_eq!(
            values(moved(&mut c, Move::Relative(5))),
            Vec::<String>::new()
        );
        assert_eq!(c.position, 6);
        assert_eq!(
            values(moved(&mut c, Move::Absolute(0))),
            Vec::<String>::new()
        );
        assert_eq!(
            values(moved(&mut c, Move::Backward(None))),
            Vec::<String>::new()
        );
        assert_eq!(
            values(moved(&mut c, Move::Absolute(9))),
            Vec::<String>::new()
        );
        assert_eq!(
            values(moved(&mut c, Move::Backward(None))),
            ["5", "4", "3", "2", "1"]
        );
    }
}
