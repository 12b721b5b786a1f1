//! RESP workloads over a plain `TcpStream`: requests are encoded into one reused buffer and
//! written with one `write_all` per batch; replies are read into one reused buffer and only
//! framed (`resp::parse_reply`), never decoded into values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::driver::{Outcome, Session, Workload};
use crate::keys::{Distribution, KeyGen, KeySpace};
use crate::resp::{self, ReplyKind};

/// Keys are `key:<12 digits>`; INCR counters live apart as `ctr:<12 digits>` so that a loaded
/// data set of strings never makes INCR fail.
const KEY_PREFIX: &[u8] = b"key:";
const COUNTER_PREFIX: &[u8] = b"ctr:";
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A reply larger than this is treated as a broken connection (bounds the read buffer).
const READ_BUFFER_BYTES_MAX: usize = 256 << 20;

/// The operation types a RESP workload is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    Incr,
    /// MSET of `mset_keys` consecutive keys.
    Mset,
    /// The RESP stand-in for a YCSB range scan: MGET of 1..=`scan_len` consecutive keys.
    Scan,
    /// SET of a brand-new key past the current end of the keyspace.
    Insert,
    /// Read-modify-write: GET, wait for the reply, then SET the key (two round trips).
    Rmw,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Incr => "incr",
            Op::Mset => "mset",
            Op::Scan => "scan",
            Op::Insert => "insert",
            Op::Rmw => "rmw",
        }
    }

    fn parse(name: &str) -> Option<Op> {
        [
            Op::Get,
            Op::Set,
            Op::Incr,
            Op::Mset,
            Op::Scan,
            Op::Insert,
            Op::Rmw,
        ]
        .into_iter()
        .find(|op| op.name() == name)
    }
}

/// A workload: weighted operation types and its default key distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    pub mix: Vec<(Op, u32)>,
    pub distribution: Distribution,
}

pub const WORKLOADS: &str = "set, get, incr, mset, mix, ycsb-a .. ycsb-f";

impl Spec {
    pub fn parse(name: &str, mix: Option<&str>) -> Result<Spec, String> {
        use Op::*;
        let zipf = Distribution::Zipfian {
            theta: crate::keys::ZIPFIAN_THETA_DEFAULT,
        };
        let (ops, distribution): (Vec<(Op, u32)>, _) = match name {
            "set" => (vec![(Set, 1)], Distribution::Uniform),
            "get" => (vec![(Get, 1)], Distribution::Uniform),
            "incr" => (vec![(Incr, 1)], Distribution::Uniform),
            "mset" => (vec![(Mset, 1)], Distribution::Uniform),
            "mix" => (
                parse_mix(mix.unwrap_or("get=90,set=10"))?,
                Distribution::Uniform,
            ),
            "ycsb-a" => (vec![(Get, 50), (Set, 50)], zipf),
            "ycsb-b" => (vec![(Get, 95), (Set, 5)], zipf),
            "ycsb-c" => (vec![(Get, 100)], zipf),
            "ycsb-d" => (
                vec![(Get, 95), (Insert, 5)],
                Distribution::Latest {
                    theta: crate::keys::ZIPFIAN_THETA_DEFAULT,
                },
            ),
            "ycsb-e" => (vec![(Scan, 95), (Insert, 5)], zipf),
            "ycsb-f" => (vec![(Get, 50), (Rmw, 50)], zipf),
            _ => return Err(format!("unknown workload {name:?} (one of: {WORKLOADS})")),
        };
        if mix.is_some() && name != "mix" {
            return Err("--mix only applies to --workload mix".into());
        }
        Ok(Spec {
            name: name.to_string(),
            mix: ops,
            distribution,
        })
    }

    pub fn uses(&self, op: Op) -> bool {
        self.mix.iter().any(|(o, _)| *o == op)
    }
}

fn parse_mix(text: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut mix = Vec::new();
    for part in text.split(',') {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix entry {part:?} is not OP=WEIGHT"))?;
        let op = Op::parse(name.trim()).ok_or_else(|| format!("unknown op {name:?} in --mix"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("bad weight in {part:?}"))?;
        if weight > 0 {
            mix.push((op, weight));
        }
    }
    if mix.is_empty() {
        return Err("--mix has no operation with a weight above 0".into());
    }
    Ok(mix)
}

#[derive(Clone, Debug)]
pub struct Params {
    pub keyspace: u64,
    pub value_size: usize,
    pub seed: u64,
    pub scan_len: u64,
    pub mset_keys: u64,
}

/// The measured workload.
pub struct RespWorkload {
    spec: Spec,
    params: Params,
    space: Arc<KeySpace>,
    /// `$len\r\n<value>\r\n`, encoded once.
    value_bulk: Arc<[u8]>,
    weight_total: u32,
}

impl RespWorkload {
    pub fn new(spec: Spec, distribution: Option<Distribution>, params: Params) -> RespWorkload {
        let distribution = distribution.unwrap_or(spec.distribution);
        let weight_total = spec.mix.iter().map(|(_, w)| w).sum();
        RespWorkload {
            space: KeySpace::new(params.keyspace, distribution),
            value_bulk: value_bulk(params.value_size, params.seed),
            spec,
            params,
            weight_total,
        }
    }

    pub fn distribution(&self) -> Distribution {
        self.space.distribution
    }
}

fn value_bulk(size: usize, seed: u64) -> Arc<[u8]> {
    let mut rng = crate::keys::Rng::new(seed);
    let value: Vec<u8> = (0..size).map(|_| b'a' + rng.below(26) as u8).collect();
    let mut bulk = Vec::new();
    resp::push_bulk(&mut bulk, &value);
    bulk.into()
}

/// One RESP connection with its reused buffers.
pub struct Conn {
    stream: TcpStream,
    write_buf: Vec<u8>,
    read_buf: Vec<u8>,
    read_start: usize,
    read_end: usize,
    /// When the latest read returned: a reply is complete at the read that delivered its end.
    read_at: Instant,
}

impl Conn {
    async fn open(target: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(target).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            write_buf: Vec::with_capacity(READ_CHUNK_BYTES),
            read_buf: vec![0; READ_CHUNK_BYTES],
            read_start: 0,
            read_end: 0,
            read_at: Instant::now(),
        })
    }

    /// Writes `write_buf` and reads `count` replies, pushing one outcome each with `ops[i]`.
    async fn round_trip(&mut self, ops: &[usize], out: &mut Vec<Outcome>) -> std::io::Result<()> {
        self.stream.write_all(&self.write_buf).await?;
        self.write_buf.clear();
        for &op in ops {
            let (len, kind) = loop {
                match resp::parse_reply(&self.read_buf[self.read_start..self.read_end]) {
                    Ok(Some(parsed)) => break parsed,
                    Ok(None) => self.fill().await?,
                    Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
                }
            };
            let base = self.read_start;
            let error = match kind {
                ReplyKind::Error { start, end } => Some(
                    String::from_utf8_lossy(&self.read_buf[base + start..base + end]).into_owned(),
                ),
                _ => None,
            };
            out.push(Outcome {
                op,
                done: self.read_at,
                error,
                miss: kind == ReplyKind::Nil,
            });
            self.read_start += len;
        }
        Ok(())
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.read_start == self.read_end {
            self.read_start = 0;
            self.read_end = 0;
        }
        if self.read_end == self.read_buf.len() {
            if self.read_start > 0 {
                self.read_buf.copy_within(self.read_start..self.read_end, 0);
                self.read_end -= self.read_start;
                self.read_start = 0;
            } else if self.read_buf.len() < READ_BUFFER_BYTES_MAX {
                let grown = self.read_buf.len() * 2;
                self.read_buf.resize(grown, 0);
            } else {
                return Err(std::io::Error::other(
                    "reply larger than the read buffer bound",
                ));
            }
        }
        let n = self
            .stream
            .read(&mut self.read_buf[self.read_end..])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.read_end += n;
        self.read_at = Instant::now();
        Ok(())
    }
}

pub struct RespSession {
    conn: Conn,
    keys: KeyGen,
    workload: Arc<RespShared>,
    ops: Vec<usize>,
    rmw_keys: Vec<u64>,
}

/// What sessions need from the workload (kept apart so sessions hold no `RespWorkload`).
struct RespShared {
    mix: Vec<(Op, u32)>,
    weight_total: u32,
    value_bulk: Arc<[u8]>,
    scan_len: u64,
    mset_keys: u64,
}

/// Operation indexes are positions in `spec.mix`.
impl Workload for RespWorkload {
    type Session = RespSession;

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
    ) -> std::io::Result<RespSession> {
        let conn = Conn::open(target).await?;
        Ok(RespSession {
            conn,
            keys: KeyGen::new(
                self.space.clone(),
                self.params.seed,
                connection,
                connections,
            ),
            workload: Arc::new(RespShared {
                mix: self.spec.mix.clone(),
                weight_total: self.weight_total,
                value_bulk: self.value_bulk.clone(),
                scan_len: self.params.scan_len.max(1),
                mset_keys: self.params.mset_keys.max(1),
            }),
            ops: Vec::new(),
            rmw_keys: Vec::new(),
        })
    }
}

impl RespSession {
    fn pick_op(&mut self) -> usize {
        let w = &self.workload;
        let mut roll = self.keys.rng().below(u64::from(w.weight_total)) as u32;
        for (index, (_, weight)) in w.mix.iter().enumerate() {
            if roll < *weight {
                return index;
            }
            roll -= weight;
        }
        unreachable!("roll below the weight total")
    }

    fn encode(&mut self, op: Op) {
        let buf = &mut self.conn.write_buf;
        let w = &self.workload;
        match op {
            Op::Get | Op::Rmw => {
                buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
                resp::push_key(buf, KEY_PREFIX, self.keys.next_key());
            }
            Op::Set | Op::Insert => {
                let key = if op == Op::Set {
                    self.keys.next_key()
                } else {
                    self.keys.space().insert_key()
                };
                buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                resp::push_key(buf, KEY_PREFIX, key);
                buf.extend_from_slice(&w.value_bulk);
            }
            Op::Incr => {
                buf.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n");
                resp::push_key(buf, COUNTER_PREFIX, self.keys.next_key());
            }
            Op::Mset => {
                let first = self.keys.next_key();
                buf.extend_from_slice(&resp::command_header("MSET", 2 * w.mset_keys as usize));
                for i in 0..w.mset_keys {
                    let key = (first + i) % self.keys.space().keyspace;
                    resp::push_key(buf, KEY_PREFIX, key);
                    buf.extend_from_slice(&w.value_bulk);
                }
            }
            Op::Scan => {
                let first = self.keys.next_key();
                let exist = self.keys.space().key_count();
                let len = (1 + self.keys.rng().below(w.scan_len)).min(exist - first);
                buf.extend_from_slice(&resp::command_header("MGET", len as usize));
                for i in 0..len {
                    resp::push_key(buf, KEY_PREFIX, first + i);
                }
            }
        }
    }
}

impl Session for RespSession {
    async fn run_batch(&mut self, count: usize, out: &mut Vec<Outcome>) -> std::io::Result<()> {
        self.ops.clear();
        self.rmw_keys.clear();
        for _ in 0..count {
            let index = self.pick_op();
            let op = self.workload.mix[index].0;
            let before = self.conn.write_buf.len();
            self.encode(op);
            if op == Op::Rmw {
                // Remember the key for the write half: it is the GET's key.
                let encoded = &self.conn.write_buf[before..];
                self.rmw_keys.push(key_id_of(encoded));
            }
            self.ops.push(index);
        }
        let ops = std::mem::take(&mut self.ops);
        let result = self.conn.round_trip(&ops, out).await;
        self.ops = ops;
        result?;
        if self.rmw_keys.is_empty() {
            return Ok(());
        }
        // The write half of each read-modify-write: its outcome replaces the read's, so an
        // RMW's latency spans both round trips.
        let rmw_indexes: Vec<usize> = (0..out.len())
            .filter(|&i| self.workload.mix[out[i].op].0 == Op::Rmw)
            .collect();
        for &key in &self.rmw_keys {
            self.conn
                .write_buf
                .extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            resp::push_key(&mut self.conn.write_buf, KEY_PREFIX, key);
            self.conn
                .write_buf
                .extend_from_slice(&self.workload.value_bulk);
        }
        let write_ops: Vec<usize> = rmw_indexes.iter().map(|&i| out[i].op).collect();
        let mut writes = Vec::with_capacity(write_ops.len());
        self.conn.round_trip(&write_ops, &mut writes).await?;
        for (&i, write) in rmw_indexes.iter().zip(writes) {
            let read_error = out[i].error.take();
            out[i] = Outcome {
                error: read_error.or(write.error),
                ..write
            };
        }
        Ok(())
    }
}

/// The key id at the end of an encoded `GET key:<digits>` request.
fn key_id_of(encoded: &[u8]) -> u64 {
    let digits = &encoded[encoded.len() - 2 - resp::KEY_DIGITS..encoded.len() - 2];
    digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

/// Loads the data set a workload reads: SET of every `key:` id with the value, and (when the
/// workload increments) `ctr:` ids to 0. Keys are handed out from one shared counter.
pub struct LoadWorkload {
    next: Arc<AtomicU64>,
    keyspace: u64,
    counters: bool,
    value_bulk: Arc<[u8]>,
}

impl LoadWorkload {
    pub fn new(spec: &Spec, params: &Params) -> LoadWorkload {
        LoadWorkload {
            next: Arc::new(AtomicU64::new(0)),
            keyspace: params.keyspace,
            counters: spec.uses(Op::Incr),
            value_bulk: value_bulk(params.value_size, params.seed),
        }
    }

    /// Requests the load takes.
    pub fn requests(&self) -> u64 {
        self.keyspace * if self.counters { 2 } else { 1 }
    }
}

pub struct LoadSession {
    conn: Conn,
    next: Arc<AtomicU64>,
    keyspace: u64,
    value_bulk: Arc<[u8]>,
    ops: Vec<usize>,
}

impl Workload for LoadWorkload {
    type Session = LoadSession;

    fn op_names(&self) -> Vec<String> {
        vec!["load".into()]
    }

    async fn connect(&self, target: &str, _: u64, _: u64) -> std::io::Result<LoadSession> {
        Ok(LoadSession {
            conn: Conn::open(target).await?,
            next: self.next.clone(),
            keyspace: self.keyspace,
            value_bulk: self.value_bulk.clone(),
            ops: Vec::new(),
        })
    }
}

impl Session for LoadSession {
    async fn run_batch(&mut self, count: usize, out: &mut Vec<Outcome>) -> std::io::Result<()> {
        self.ops.clear();
        for _ in 0..count {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let buf = &mut self.conn.write_buf;
            buf.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            if id < self.keyspace {
                resp::push_key(buf, KEY_PREFIX, id);
                buf.extend_from_slice(&self.value_bulk);
            } else {
                resp::push_key(buf, COUNTER_PREFIX, id - self.keyspace);
                buf.extend_from_slice(b"$1\r\n0\r\n");
            }
            self.ops.push(0);
        }
        let ops = std::mem::take(&mut self.ops);
        let result = self.conn.round_trip(&ops, out).await;
        self.ops = ops;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse() {
        assert_eq!(
            Spec::parse("ycsb-b", None).unwrap().mix,
            vec![(Op::Get, 95), (Op::Set, 5)]
        );
        let mix = Spec::parse("mix", Some("get=80, set=20,incr=0")).unwrap();
        assert_eq!(mix.mix, vec![(Op::Get, 80), (Op::Set, 20)]);
        assert!(Spec::parse("mix", Some("fly=1")).is_err());
        assert!(Spec::parse("get", Some("get=1")).is_err());
        assert!(Spec::parse("ycsb-z", None).is_err());
    }

    #[test]
    fn key_id_round_trips_through_encoding() {
        let mut buf = b"*2\r\n$3\r\nGET\r\n".to_vec();
        resp::push_key(&mut buf, KEY_PREFIX, 987_654);
        assert_eq!(key_id_of(&buf), 987_654);
    }
}
