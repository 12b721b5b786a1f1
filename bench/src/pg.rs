//! PostgreSQL workloads over `tokio-postgres` (no TLS). One client per connection, its
//! connection task spawned on the thread's current-thread runtime. Three protocols:
//! `simple` (simple query, values inlined as literals), `extended` (extended query with
//! parameters and an unnamed statement each time: Parse/Bind/Execute in one round trip) and
//! `prepared` (each statement prepared once per connection, then executed).
//!
//! Every workload creates its own tables with `--load` (drop and create) and fills them with
//! multi-row INSERT batches of `LOAD_BATCH_ROWS` rows.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use crate::driver::{Outcome, Session, Workload};
use crate::keys::{Distribution, KeyGen, KeySpace};

/// Rows per INSERT statement while loading.
pub const LOAD_BATCH_ROWS: u64 = 1000;
/// TPC-B scale: accounts per branch and tellers per branch (as pgbench).
const ACCOUNTS_PER_BRANCH: u64 = 100_000;
const TELLERS_PER_BRANCH: u64 = 10;
const TPCB_DELTA_MAX: i64 = 5000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Simple,
    Extended,
    Prepared,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
            Protocol::Prepared => "prepared",
        }
    }
}

/// The tables a workload uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// `bench_kv(k bigint primary key, v text)`.
    Kv,
    /// `bench_accounts`, `bench_tellers`, `bench_branches`, `bench_history` (pgbench's layout).
    Tpcb,
    /// `usertable(ycsb_key text primary key, field0 text)`.
    Ycsb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Select,
    Insert,
    Update,
    Tpcb,
    RangeScan,
    Aggregate,
    YcsbRead,
    YcsbUpdate,
    YcsbInsert,
    YcsbScan,
    YcsbRmw,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Select => "select",
            Op::Insert | Op::YcsbInsert => "insert",
            Op::Update | Op::YcsbUpdate => "update",
            Op::Tpcb => "tpcb",
            Op::RangeScan => "range-scan",
            Op::Aggregate => "aggregate",
            Op::YcsbRead => "read",
            Op::YcsbScan => "scan",
            Op::YcsbRmw => "rmw",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    pub mix: Vec<(Op, u32)>,
    pub distribution: Distribution,
    pub schema: Schema,
}

pub const WORKLOADS: &str =
    "point-select, insert, update, tpcb, range-scan, aggregate, ycsb-a .. ycsb-f";

impl Spec {
    pub fn parse(name: &str) -> Result<Spec, String> {
        use Op::*;
        let zipf = Distribution::Zipfian {
            theta: crate::keys::ZIPFIAN_THETA_DEFAULT,
        };
        let uniform = Distribution::Uniform;
        let (mix, distribution, schema): (Vec<(Op, u32)>, _, _) = match name {
            "point-select" => (vec![(Select, 1)], uniform, Schema::Kv),
            "insert" => (vec![(Insert, 1)], uniform, Schema::Kv),
            "update" => (vec![(Update, 1)], uniform, Schema::Kv),
            "range-scan" => (vec![(RangeScan, 1)], uniform, Schema::Kv),
            "aggregate" => (vec![(Aggregate, 1)], uniform, Schema::Kv),
            "tpcb" => (vec![(Tpcb, 1)], uniform, Schema::Tpcb),
            "ycsb-a" => (vec![(YcsbRead, 50), (YcsbUpdate, 50)], zipf, Schema::Ycsb),
            "ycsb-b" => (vec![(YcsbRead, 95), (YcsbUpdate, 5)], zipf, Schema::Ycsb),
            "ycsb-c" => (vec![(YcsbRead, 100)], zipf, Schema::Ycsb),
            "ycsb-d" => (
                vec![(YcsbRead, 95), (YcsbInsert, 5)],
                Distribution::Latest {
                    theta: crate::keys::ZIPFIAN_THETA_DEFAULT,
                },
                Schema::Ycsb,
            ),
            "ycsb-e" => (vec![(YcsbScan, 95), (YcsbInsert, 5)], zipf, Schema::Ycsb),
            "ycsb-f" => (vec![(YcsbRead, 50), (YcsbRmw, 50)], zipf, Schema::Ycsb),
            _ => return Err(format!("unknown workload {name:?} (one of: {WORKLOADS})")),
        };
        Ok(Spec {
            name: name.to_string(),
            mix,
            distribution,
            schema,
        })
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ConnParams {
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub keyspace: u64,
    pub value_size: usize,
    pub seed: u64,
    /// Rows per range-scan/aggregate range, and the maximum rows of a ycsb-e scan.
    pub scan_len: u64,
    pub protocol: Protocol,
    pub conn: ConnParams,
}

// The statements, by index; `$n` are parameters. `PARAM_TYPES` gives their types.
const KV_SELECT: usize = 0;
const KV_INSERT: usize = 1;
const KV_UPDATE: usize = 2;
const KV_RANGE: usize = 3;
const KV_AGGREGATE: usize = 4;
const BEGIN: usize = 5;
const TPCB_ACCOUNT: usize = 6;
const TPCB_SELECT: usize = 7;
const TPCB_TELLER: usize = 8;
const TPCB_BRANCH: usize = 9;
const TPCB_HISTORY: usize = 10;
const END: usize = 11;
const Y_READ: usize = 12;
const Y_UPDATE: usize = 13;
const Y_INSERT: usize = 14;
const Y_SCAN: usize = 15;

const SQL: [&str; 16] = [
    "SELECT v FROM bench_kv WHERE k = $1",
    "INSERT INTO bench_kv (k, v) VALUES ($1, $2)",
    "UPDATE bench_kv SET v = $2 WHERE k = $1",
    "SELECT k, v FROM bench_kv WHERE k BETWEEN $1 AND $2 ORDER BY k",
    "SELECT count(*), sum(length(v)) FROM bench_kv WHERE k BETWEEN $1 AND $2",
    "BEGIN",
    "UPDATE bench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "SELECT abalance FROM bench_accounts WHERE aid = $1",
    "UPDATE bench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
    "UPDATE bench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
    "INSERT INTO bench_history (tid, bid, aid, delta, mtime) \
     VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
    "END",
    "SELECT field0 FROM usertable WHERE ycsb_key = $1",
    "UPDATE usertable SET field0 = $2 WHERE ycsb_key = $1",
    "INSERT INTO usertable (ycsb_key, field0) VALUES ($1, $2)",
    "SELECT ycsb_key, field0 FROM usertable WHERE ycsb_key >= $1 ORDER BY ycsb_key LIMIT $2",
];

const PARAM_TYPES: [&[Type]; 16] = [
    &[Type::INT8],
    &[Type::INT8, Type::TEXT],
    &[Type::INT8, Type::TEXT],
    &[Type::INT8, Type::INT8],
    &[Type::INT8, Type::INT8],
    &[],
    &[Type::INT4, Type::INT8],
    &[Type::INT8],
    &[Type::INT4, Type::INT8],
    &[Type::INT4, Type::INT8],
    &[Type::INT8, Type::INT8, Type::INT8, Type::INT4],
    &[],
    &[Type::TEXT],
    &[Type::TEXT, Type::TEXT],
    &[Type::TEXT, Type::TEXT],
    &[Type::TEXT, Type::INT8],
];

/// The statements an operation uses (prepared at connect time with `--protocol prepared`).
fn statements_of(op: Op) -> &'static [usize] {
    match op {
        Op::Select => &[KV_SELECT],
        Op::Insert => &[KV_INSERT],
        Op::Update => &[KV_UPDATE],
        Op::RangeScan => &[KV_RANGE],
        Op::Aggregate => &[KV_AGGREGATE],
        Op::Tpcb => &[
            BEGIN,
            TPCB_ACCOUNT,
            TPCB_SELECT,
            TPCB_TELLER,
            TPCB_BRANCH,
            TPCB_HISTORY,
            END,
        ],
        Op::YcsbRead => &[Y_READ],
        Op::YcsbUpdate => &[Y_UPDATE],
        Op::YcsbInsert => &[Y_INSERT],
        Op::YcsbScan => &[Y_SCAN],
        Op::YcsbRmw => &[Y_READ, Y_UPDATE],
    }
}

/// A parameter value.
#[derive(Debug)]
enum Val {
    I8(i64),
    I4(i32),
    Text(String),
}

impl Val {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Val::I8(v) => v,
            Val::I4(v) => v,
            Val::Text(v) => v,
        }
    }

    fn push_literal(&self, sql: &mut String) {
        match self {
            Val::I8(v) => {
                let _ = write!(sql, "{v}");
            }
            Val::I4(v) => {
                let _ = write!(sql, "{v}");
            }
            Val::Text(v) => push_text_literal(sql, v),
        }
    }
}

fn push_text_literal(sql: &mut String, text: &str) {
    sql.push('\'');
    for c in text.chars() {
        if c == '\'' {
            sql.push('\'');
        }
        sql.push(c);
    }
    sql.push('\'');
}

/// `template` with each `$n` replaced by the literal of `params[n - 1]`.
fn render(template: &str, params: &[Val], sql: &mut String) {
    sql.clear();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        sql.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let n: usize = rest[at + 1..at + 1 + digits].parse().expect("$n");
        params[n - 1].push_literal(sql);
        rest = &rest[at + 1 + digits..];
    }
    sql.push_str(rest);
}

/// YCSB keys sort in id order: `user` and 12 digits.
fn ycsb_key(id: u64) -> String {
    format!("user{id:012}")
}

fn random_value(size: usize, seed: u64) -> Arc<str> {
    let mut rng = crate::keys::Rng::new(seed);
    let value: String = (0..size)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    value.into()
}

fn to_io(e: tokio_postgres::Error) -> std::io::Error {
    use std::error::Error as _;
    let kind = match e.source().and_then(|s| s.downcast_ref::<std::io::Error>()) {
        Some(io) => io.kind(),
        None if e.as_db_error().is_some() => std::io::ErrorKind::PermissionDenied,
        None => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

static CONNECT_ERROR_SHOWN: AtomicBool = AtomicBool::new(false);

/// Opens a client to `target` (`HOST:PORT`) and spawns its connection task on the current
/// runtime. The first failure of the process is also printed in full (the report counts them
/// by kind).
pub async fn connect(target: &str, conn: &ConnParams) -> std::io::Result<Client> {
    let result = connect_inner(target, conn).await;
    if let Err(e) = &result {
        if !CONNECT_ERROR_SHOWN.swap(true, Ordering::Relaxed) {
            let mut message = e.to_string();
            let mut source = e.get_ref().and_then(|inner| inner.source());
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            eprintln!("helios-bench pg: connecting to {target}: {message}");
        }
    }
    result
}

async fn connect_inner(target: &str, conn: &ConnParams) -> std::io::Result<Client> {
    let (host, port) = target
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("target {target:?} is not HOST:PORT"),
            )
        })?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(&conn.user)
        .dbname(&conn.dbname);
    if let Some(password) = &conn.password {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await.map_err(to_io)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `sql` (one or more statements) over the simple protocol.
async fn batch(client: &Client, sql: &str) -> anyhow::Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| anyhow::anyhow!("{sql:.80}: {e}"))
}

fn tpcb_counts(keyspace: u64) -> (u64, u64) {
    let branches = keyspace.div_ceil(ACCOUNTS_PER_BRANCH).max(1);
    (branches, branches * TELLERS_PER_BRANCH)
}

/// Drops and creates the workload's tables (and fills the small TPC-B ones).
pub async fn create_tables(target: &str, spec: &Spec, params: &Params) -> anyhow::Result<()> {
    let client = connect(target, &params.conn).await?;
    match spec.schema {
        Schema::Kv => {
            batch(&client, "DROP TABLE IF EXISTS bench_kv").await?;
            batch(
                &client,
                "CREATE TABLE bench_kv (k bigint PRIMARY KEY, v text)",
            )
            .await?;
            // Range reads need keys in order: PostgreSQL's primary key is a btree already,
            // helios places rows by a hash of the key, so both get an ordered index on k.
            let ranges = spec
                .mix
                .iter()
                .any(|(op, _)| matches!(op, Op::RangeScan | Op::Aggregate));
            if ranges {
                batch(&client, "CREATE INDEX bench_kv_k ON bench_kv (k)").await?;
            }
        }
        Schema::Ycsb => {
            batch(&client, "DROP TABLE IF EXISTS usertable").await?;
            batch(
                &client,
                "CREATE TABLE usertable (ycsb_key text PRIMARY KEY, field0 text)",
            )
            .await?;
        }
        Schema::Tpcb => {
            for table in [
                "bench_history",
                "bench_accounts",
                "bench_tellers",
                "bench_branches",
            ] {
                batch(&client, &format!("DROP TABLE IF EXISTS {table}")).await?;
            }
            for create in [
                "CREATE TABLE bench_branches (bid bigint PRIMARY KEY, bbalance int NOT NULL, \
                 filler char(88))",
                "CREATE TABLE bench_tellers (tid bigint PRIMARY KEY, bid bigint NOT NULL, \
                 tbalance int NOT NULL, filler char(84))",
                "CREATE TABLE bench_accounts (aid bigint PRIMARY KEY, bid bigint NOT NULL, \
                 abalance int NOT NULL, filler char(84))",
                "CREATE TABLE bench_history (tid bigint, bid bigint, aid bigint, delta int, \
                 mtime timestamp, filler char(22))",
            ] {
                batch(&client, create).await?;
            }
            let (branches, tellers) = tpcb_counts(params.keyspace);
            let rows: Vec<String> = (0..branches).map(|b| format!("({b}, 0)")).collect();
            let sql = format!(
                "INSERT INTO bench_branches (bid, bbalance) VALUES {}",
                rows.join(",")
            );
            batch(&client, &sql).await?;
            let rows: Vec<String> = (0..tellers)
                .map(|t| format!("({t}, {}, 0)", t / TELLERS_PER_BRANCH))
                .collect();
            let sql = format!(
                "INSERT INTO bench_tellers (tid, bid, tbalance) VALUES {}",
                rows.join(",")
            );
            batch(&client, &sql).await?;
        }
    }
    Ok(())
}

/// After loading: VACUUM ANALYZE the tables (as `pgbench -i` does). A failure only warns.
pub async fn finish_load(target: &str, spec: &Spec, params: &Params) -> anyhow::Result<()> {
    let client = connect(target, &params.conn).await?;
    let tables: &[&str] = match spec.schema {
        Schema::Kv => &["bench_kv"],
        Schema::Ycsb => &["usertable"],
        Schema::Tpcb => &[
            "bench_accounts",
            "bench_tellers",
            "bench_branches",
            "bench_history",
        ],
    };
    for table in tables {
        if let Err(e) = batch(&client, &format!("VACUUM ANALYZE {table}")).await {
            eprintln!("helios-bench pg: warning: {e}");
        }
    }
    Ok(())
}

/// The measured workload.
pub struct PgWorkload {
    spec: Spec,
    params: Params,
    space: Arc<KeySpace>,
    value: Arc<str>,
    weight_total: u32,
}

impl PgWorkload {
    pub fn new(spec: Spec, distribution: Option<Distribution>, params: Params) -> PgWorkload {
        let distribution = distribution.unwrap_or(spec.distribution);
        let weight_total = spec.mix.iter().map(|(_, w)| w).sum();
        PgWorkload {
            space: KeySpace::new(params.keyspace, distribution),
            value: random_value(params.value_size, params.seed),
            spec,
            params,
            weight_total,
        }
    }

    pub fn distribution(&self) -> Distribution {
        self.space.distribution
    }
}

pub struct PgSession {
    client: Client,
    protocol: Protocol,
    /// Prepared statements by statement index (`--protocol prepared` only).
    prepared: Vec<Option<Statement>>,
    keys: KeyGen,
    mix: Vec<(Op, u32)>,
    weight_total: u32,
    value: Arc<str>,
    scan_len: u64,
    tpcb: (u64, u64),
    sql: String,
}

/// What one statement returned.
struct Done {
    rows: u64,
    /// Rows a write touched (where the protocol tells).
    affected: Option<u64>,
}

impl Workload for PgWorkload {
    type Session = PgSession;

    fn op_names(&self) -> Vec<String> {
        self.spec
            .mix
            .iter()
            .map(|(op, _)| op.name().to_string())
            .collect()
    }

    async fn connect(
        &self,
        target: &str,
        connection: u64,
        connections: u64,
    ) -> std::io::Result<PgSession> {
        let client = connect(target, &self.params.conn).await?;
        let mut prepared = vec![None; SQL.len()];
        if self.params.protocol == Protocol::Prepared {
            for (op, _) in &self.spec.mix {
                for &stmt in statements_of(*op) {
                    if prepared[stmt].is_none() {
                        let statement = client
                            .prepare_typed(SQL[stmt], PARAM_TYPES[stmt])
                            .await
                            .map_err(to_io)?;
                        prepared[stmt] = Some(statement);
                    }
                }
            }
        }
        Ok(PgSession {
            client,
            protocol: self.params.protocol,
            prepared,
            keys: KeyGen::new(
                self.space.clone(),
                self.params.seed,
                connection,
                connections,
            ),
            mix: self.spec.mix.clone(),
            weight_total: self.weight_total,
            value: self.value.clone(),
            scan_len: self.params.scan_len.max(1),
            tpcb: tpcb_counts(self.params.keyspace),
            sql: String::new(),
        })
    }
}

impl PgSession {
    fn value_param(&self) -> Val {
        Val::Text(self.value.to_string())
    }

    fn pick_op(&mut self) -> usize {
        let mut roll = self.keys.rng().below(u64::from(self.weight_total)) as u32;
        for (index, (_, weight)) in self.mix.iter().enumerate() {
            if roll < *weight {
                return index;
            }
            roll -= weight;
        }
        unreachable!("roll below the weight total")
    }

    async fn exec(&mut self, stmt: usize, params: &[Val]) -> Result<Done, tokio_postgres::Error> {
        let returns_rows = SQL[stmt].starts_with("SELECT");
        match self.protocol {
            Protocol::Simple => {
                render(SQL[stmt], params, &mut self.sql);
                let messages = self.client.simple_query(&self.sql).await?;
                let mut done = Done {
                    rows: 0,
                    affected: None,
                };
                for message in messages {
                    match message {
                        SimpleQueryMessage::Row(_) => done.rows += 1,
                        SimpleQueryMessage::CommandComplete(n) if !returns_rows => {
                            done.affected = Some(n)
                        }
                        _ => {}
                    }
                }
                Ok(done)
            }
            Protocol::Extended => {
                let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
                    .iter()
                    .zip(PARAM_TYPES[stmt])
                    .map(|(v, t)| (v.as_sql(), t.clone()))
                    .collect();
                if returns_rows {
                    let rows = self.client.query_typed(SQL[stmt], &typed).await?;
                    Ok(Done {
                        rows: rows.len() as u64,
                        affected: None,
                    })
                } else {
                    let n = self.client.execute_typed(SQL[stmt], &typed).await?;
                    Ok(Done {
                        rows: 0,
                        affected: Some(n),
                    })
                }
            }
            Protocol::Prepared => {
                let statement = self.prepared[stmt].as_ref().expect("prepared at connect");
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Val::as_sql).collect();
                if returns_rows {
                    let rows = self.client.query(statement, &refs).await?;
                    Ok(Done {
                        rows: rows.len() as u64,
                        affected: None,
                    })
                } else {
                    let n = self.client.execute(statement, &refs).await?;
                    Ok(Done {
                        rows: 0,
                        affected: Some(n),
                    })
                }
            }
        }
    }

    /// Runs one operation; `Ok(true)` when it found nothing (a miss).
    async fn run_op(&mut self, op: Op) -> Result<bool, tokio_postgres::Error> {
        match op {
            Op::Select => {
                let k = self.keys.next_key() as i64;
                Ok(self.exec(KV_SELECT, &[Val::I8(k)]).await?.rows == 0)
            }
            Op::Insert => {
                let k = self.keys.space().insert_key() as i64;
                let v = self.value_param();
                self.exec(KV_INSERT, &[Val::I8(k), v]).await?;
                Ok(false)
            }
            Op::Update => {
                let k = self.keys.next_key() as i64;
                let v = self.value_param();
                let done = self.exec(KV_UPDATE, &[Val::I8(k), v]).await?;
                Ok(done.affected == Some(0))
            }
            Op::RangeScan | Op::Aggregate => {
                let first = self.keys.next_key() as i64;
                let last = first + self.scan_len as i64 - 1;
                let stmt = if op == Op::RangeScan {
                    KV_RANGE
                } else {
                    KV_AGGREGATE
                };
                let done = self.exec(stmt, &[Val::I8(first), Val::I8(last)]).await?;
                Ok(done.rows == 0)
            }
            Op::Tpcb => self.tpcb().await,
            Op::YcsbRead => {
                let key = ycsb_key(self.keys.next_key());
                Ok(self.exec(Y_READ, &[Val::Text(key)]).await?.rows == 0)
            }
            Op::YcsbUpdate => {
                let key = ycsb_key(self.keys.next_key());
                let v = self.value_param();
                let done = self.exec(Y_UPDATE, &[Val::Text(key), v]).await?;
                Ok(done.affected == Some(0))
            }
            Op::YcsbInsert => {
                let key = ycsb_key(self.keys.space().insert_key());
                let v = self.value_param();
                self.exec(Y_INSERT, &[Val::Text(key), v]).await?;
                Ok(false)
            }
            Op::YcsbScan => {
                let first = self.keys.next_key();
                let len = 1 + self.keys.rng().below(self.scan_len);
                let done = self
                    .exec(Y_SCAN, &[Val::Text(ycsb_key(first)), Val::I8(len as i64)])
                    .await?;
                Ok(done.rows == 0)
            }
            Op::YcsbRmw => {
                let id = self.keys.next_key();
                let read = self.exec(Y_READ, &[Val::Text(ycsb_key(id))]).await?;
                let v = self.value_param();
                self.exec(Y_UPDATE, &[Val::Text(ycsb_key(id)), v]).await?;
                Ok(read.rows == 0)
            }
        }
    }

    /// pgbench's TPC-B-like transaction; rolled back if a statement fails.
    async fn tpcb(&mut self) -> Result<bool, tokio_postgres::Error> {
        let (branches, tellers) = self.tpcb;
        let aid = self.keys.next_key() as i64;
        let rng = self.keys.rng();
        let bid = rng.below(branches) as i64;
        let tid = rng.below(tellers) as i64;
        let delta = (rng.below(2 * TPCB_DELTA_MAX as u64 + 1) as i64 - TPCB_DELTA_MAX) as i32;
        self.exec(BEGIN, &[]).await?;
        let result = async {
            self.exec(TPCB_ACCOUNT, &[Val::I4(delta), Val::I8(aid)])
                .await?;
            let read = self.exec(TPCB_SELECT, &[Val::I8(aid)]).await?;
            self.exec(TPCB_TELLER, &[Val::I4(delta), Val::I8(tid)])
                .await?;
            self.exec(TPCB_BRANCH, &[Val::I4(delta), Val::I8(bid)])
                .await?;
            let history = [Val::I8(tid), Val::I8(bid), Val::I8(aid), Val::I4(delta)];
            self.exec(TPCB_HISTORY, &history).await?;
            self.exec(END, &[]).await?;
            Ok(read.rows == 0)
        }
        .await;
        if result.is_err() && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        result
    }
}

impl Session for PgSession {
    async fn run_batch(&mut self, count: usize, out: &mut Vec<Outcome>) -> std::io::Result<()> {
        for _ in 0..count {
            let index = self.pick_op();
            let op = self.mix[index].0;
            let result = self.run_op(op).await;
            let done = Instant::now();
            match result {
                Ok(miss) => out.push(Outcome {
                    op: index,
                    done,
                    error: None,
                    miss,
                }),
                Err(e) if self.client.is_closed() => return Err(to_io(e)),
                Err(e) => out.push(Outcome {
                    op: index,
                    done,
                    error: Some(
                        e.code()
                            .map_or_else(|| "error".to_string(), |c| c.code().to_string()),
                    ),
                    miss: false,
                }),
            }
        }
        Ok(())
    }
}

/// Loads the rows a workload reads: one multi-row INSERT of `LOAD_BATCH_ROWS` rows per
/// operation, batches handed out from one shared counter. Run after `create_tables`.
pub struct LoadWorkload {
    next: Arc<AtomicU64>,
    rows: u64,
    schema: Schema,
    value: Arc<str>,
    conn: ConnParams,
}

impl LoadWorkload {
    pub fn new(spec: &Spec, params: &Params) -> LoadWorkload {
        LoadWorkload {
            next: Arc::new(AtomicU64::new(0)),
            rows: params.keyspace,
            schema: spec.schema,
            value: random_value(params.value_size, params.seed),
            conn: params.conn.clone(),
        }
    }

    /// INSERT statements the load takes.
    pub fn requests(&self) -> u64 {
        self.rows.div_ceil(LOAD_BATCH_ROWS)
    }
}

pub struct LoadSession {
    client: Client,
    next: Arc<AtomicU64>,
    rows: u64,
    schema: Schema,
    value: Arc<str>,
    sql: String,
}

impl Workload for LoadWorkload {
    type Session = LoadSession;

    fn op_names(&self) -> Vec<String> {
        vec!["load".into()]
    }

    async fn connect(&self, target: &str, _: u64, _: u64) -> std::io::Result<LoadSession> {
        Ok(LoadSession {
            client: connect(target, &self.conn).await?,
            next: self.next.clone(),
            rows: self.rows,
            schema: self.schema,
            value: self.value.clone(),
            sql: String::new(),
        })
    }
}

impl LoadSession {
    fn encode(&mut self, batch: u64) {
        let sql = &mut self.sql;
        sql.clear();
        sql.push_str(match self.schema {
            Schema::Kv => "INSERT INTO bench_kv (k, v) VALUES ",
            Schema::Ycsb => "INSERT INTO usertable (ycsb_key, field0) VALUES ",
            Schema::Tpcb => "INSERT INTO bench_accounts (aid, bid, abalance, filler) VALUES ",
        });
        let first = batch * LOAD_BATCH_ROWS;
        let last = (first + LOAD_BATCH_ROWS).min(self.rows);
        for id in first..last {
            if id > first {
                sql.push(',');
            }
            match self.schema {
                Schema::Kv => {
                    let _ = write!(sql, "({id},");
                    push_text_literal(sql, &self.value);
                }
                Schema::Ycsb => {
                    sql.push('(');
                    push_text_literal(sql, &ycsb_key(id));
                    sql.push(',');
                    push_text_literal(sql, &self.value);
                }
                Schema::Tpcb => {
                    let _ = write!(sql, "({id},{},0,''", id / ACCOUNTS_PER_BRANCH);
                }
            }
            sql.push(')');
        }
    }
}

impl Session for LoadSession {
    async fn run_batch(&mut self, count: usize, out: &mut Vec<Outcome>) -> std::io::Result<()> {
        for _ in 0..count {
            let batch = self.next.fetch_add(1, Ordering::Relaxed);
            self.encode(batch);
            let result = self.client.batch_execute(&self.sql).await;
            let error = match result {
                Ok(()) => None,
                Err(e) if self.client.is_closed() => return Err(to_io(e)),
                Err(e) => Some(e.to_string()),
            };
            out.push(Outcome {
                op: 0,
                done: Instant::now(),
                error,
                miss: false,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse() {
        let spec = Spec::parse("ycsb-b").unwrap();
        assert_eq!(spec.mix, vec![(Op::YcsbRead, 95), (Op::YcsbUpdate, 5)]);
        assert_eq!(spec.schema, Schema::Ycsb);
        assert_eq!(Spec::parse("tpcb").unwrap().schema, Schema::Tpcb);
        assert!(Spec::parse("ycsb-z").is_err());
    }

    #[test]
    fn statements_have_types_for_every_parameter() {
        for (sql, types) in SQL.iter().zip(PARAM_TYPES) {
            assert_eq!(sql.matches('$').count(), types.len(), "{sql}");
        }
    }

    #[test]
    fn render_inlines_literals() {
        let mut sql = String::new();
        let params = [Val::Text("it's".into()), Val::I8(-3)];
        render(SQL[Y_SCAN], &params, &mut sql);
        assert_eq!(
            sql,
            "SELECT ycsb_key, field0 FROM usertable WHERE ycsb_key >= 'it''s' \
             ORDER BY ycsb_key LIMIT -3"
        );
    }

    #[test]
    fn ycsb_keys_sort_by_id() {
        assert!(ycsb_key(9) < ycsb_key(10));
        assert_eq!(ycsb_key(7), "user000000000007");
    }
}
