//! Crash consistency: with `--durability sync`, a reply means the write is durable. Writers pipeline
//! SETs and INCRs and record what was acknowledged; the server is killed with SIGKILL mid-load and
//! restarted on the same data dir, and every acknowledged write must be there.
//!
//! Per writer thread and cycle, keys are `key:<cycle>:<thread>:<n>` with value `n`, sent in order
//! on one connection, so "acknowledged" is a prefix `0..acked` and "sent" a prefix `0..sent`.
//! Keys in `acked..sent` may or may not have survived, but if one did, its value must be `n`.
//! Counters `counter:<thread>` persist across cycles: after a restart each must be at least its
//! last acknowledged value and at most the number of INCRs ever sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use helios_tests::resp::encode_command;
use helios_tests::{render, Durability, Frame, HeliosServer, RespConn, ServerOpts};

const WRITERS: usize = 4;
const CYCLES: usize = 3;
/// Commands per pipelined batch (SETs; one INCR is appended to each batch).
const BATCH_SETS: u64 = 64;
// Long enough for the first acknowledgements: a fresh or restarted server zero-fills its WAL
// segments (64 MiB each, the active one and the next, per shard) in its first second, and the
// first fsyncs queue behind that I/O (about 1 s on the 2-core VM in a debug build).
const LOAD_DURATION: Duration = Duration::from_millis(3000);
/// Keys per MGET when verifying.
const VERIFY_CHUNK: u64 = 1000;

#[derive(Clone, Debug, Default)]
struct WriterLog {
    /// SETs `0..acked` got `+OK`.
    acked: u64,
    /// SETs `0..sent` were written to the socket (at least partly).
    sent: u64,
    /// Highest INCR reply seen.
    counter_acked: i64,
    /// INCRs written to the socket.
    incr_sent: u64,
    /// A reply that was neither the expected success nor a dropped connection.
    unexpected: Option<String>,
}

fn set_key(cycle: usize, thread: usize, n: u64) -> String {
    format!("key:{cycle}:{thread}:{n}")
}

fn counter_key(thread: usize) -> String {
    format!("counter:{thread}")
}

/// Pipelines batches until the connection breaks (the server was killed) or `stop` is set.
fn writer(port: u16, cycle: usize, thread: usize, stop: Arc<AtomicBool>) -> WriterLog {
    let mut log = WriterLog::default();
    let Ok(mut conn) = RespConn::connect(port) else {
        log.unexpected = Some("could not connect".into());
        return log;
    };
    while !stop.load(Ordering::Relaxed) {
        let mut frame = Vec::new();
        let first = log.sent;
        for n in first..first + BATCH_SETS {
            frame.extend(encode_command(&[
                b"SET".as_slice(),
                set_key(cycle, thread, n).as_bytes(),
                n.to_string().as_bytes(),
            ]));
        }
        frame.extend(encode_command(&["INCR", &counter_key(thread)]));
        log.sent += BATCH_SETS;
        log.incr_sent += 1;
        if conn.send_raw(&frame).is_err() {
            return log;
        }
        for n in first..first + BATCH_SETS {
            match conn.read_reply() {
                Ok(reply) if reply == b"+OK\r\n" => log.acked = n + 1,
                Ok(reply) => {
                    log.unexpected = Some(format!("SET #{n}: {}", render(&reply)));
                    return log;
                }
                Err(_) => return log,
            }
        }
        match conn
            .read_reply()
            .map(|r| (Frame::parse(&r).ok().and_then(|f| f.integer()), r))
        {
            Ok((Some(v), _)) => log.counter_acked = log.counter_acked.max(v),
            Ok((None, reply)) => {
                log.unexpected = Some(format!("INCR: {}", render(&reply)));
                return log;
            }
            Err(_) => return log,
        }
    }
    log
}

/// Runs the writers against `port` for LOAD_DURATION, then SIGKILLs the server while they are
/// mid-pipeline; returns their logs.
fn load_then_kill(server: &mut HeliosServer, cycle: usize) -> Vec<WriterLog> {
    let stop = Arc::new(AtomicBool::new(false));
    let port = server.port();
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || writer(port, cycle, t, stop))
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < LOAD_DURATION {
        assert!(server.is_alive(), "helios died under load in cycle {cycle}");
        thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    // Writers stop on the broken connection; the flag is a backstop.
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<WriterLog> = handles
        .into_iter()
        .map(|h| h.join().expect("writer panicked"))
        .collect();
    for (t, log) in logs.iter().enumerate() {
        assert!(
            log.unexpected.is_none(),
            "cycle {cycle} writer {t}: unexpected reply {:?}",
            log.unexpected
        );
        assert!(
            log.acked > 0,
            "cycle {cycle} writer {t}: no write acknowledged in {LOAD_DURATION:?}"
        );
    }
    logs
}

fn mget(conn: &mut RespConn, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let mut args = vec!["MGET".to_string()];
    args.extend(keys.iter().cloned());
    let raw = conn.cmd(&args).expect("MGET");
    let frame = Frame::parse(&raw).expect("parse MGET");
    assert_eq!(
        frame.children.len(),
        keys.len(),
        "MGET reply: {}",
        render(&raw)
    );
    frame.children.iter().map(|c| c.payload.clone()).collect()
}

/// Checks every cycle's writes so far plus the counters.
fn verify(server: &HeliosServer, history: &[Vec<WriterLog>]) {
    let mut conn = RespConn::connect(server.port()).expect("connect");
    for (cycle, logs) in history.iter().enumerate() {
        for (t, log) in logs.iter().enumerate() {
            let mut n = 0;
            while n < log.sent {
                let end = (n + VERIFY_CHUNK).min(log.sent);
                let keys: Vec<String> = (n..end).map(|i| set_key(cycle, t, i)).collect();
                for (i, value) in (n..end).zip(mget(&mut conn, &keys)) {
                    let want = i.to_string().into_bytes();
                    match value {
                        Some(v) => assert_eq!(v, want, "{} has a wrong value", set_key(cycle, t, i)),
                        None => assert!(
                            i >= log.acked,
                            "{} was acknowledged (acked prefix {} of {} sent) but is missing after restart",
                            set_key(cycle, t, i),
                            log.acked,
                            log.sent
                        ),
                    }
                }
                n = end;
            }
        }
    }
    for t in 0..WRITERS {
        let acked = history
            .iter()
            .map(|logs| logs[t].counter_acked)
            .max()
            .unwrap_or(0);
        let sent: u64 = history.iter().map(|logs| logs[t].incr_sent).sum();
        let raw = conn.cmd(&["GET", &counter_key(t)]).expect("GET counter");
        let frame = Frame::parse(&raw).expect("parse");
        let value: i64 = frame
            .payload
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
            .unwrap_or(0);
        assert!(
            value >= acked,
            "{} = {value} after restart, but {acked} was acknowledged",
            counter_key(t)
        );
        assert!(
            value <= sent as i64,
            "{} = {value} after restart, but only {sent} INCRs were sent",
            counter_key(t)
        );
    }
}

/// `helios check` on the data dir the killed process left: torn WAL tails and tables a flush had
/// not yet committed are warnings (recovery handles them), anything else is an error.
fn check_offline(server: &HeliosServer) {
    let out = std::process::Command::new(helios_tests::server::helios_bin())
        .args(["check", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .expect("run helios check");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "helios check after kill -9:\n{report}"
    );
}

#[test]
fn sync_durability_survives_kill9_under_load() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let mut history = Vec::new();
    for cycle in 0..CYCLES {
        history.push(load_then_kill(&mut server, cycle));
        check_offline(&server);
        server.restart();
        verify(&server, &history);
    }
    let total: u64 = history.iter().flatten().map(|l| l.acked).sum();
    eprintln!("verified {total} acknowledged SETs over {CYCLES} kill -9 cycles");
}

#[test]
fn async_durability_sigterm_keeps_acknowledged_writes() {
    const SETS: u64 = 5000;
    let mut server = HeliosServer::start(
        ServerOpts::default()
            .shards(2)
            .durability(Durability::Async),
    );
    {
        let mut conn = RespConn::connect(server.port()).expect("connect");
        let mut frame = Vec::new();
        for n in 0..SETS {
            frame.extend(encode_command(&[
                b"SET".as_slice(),
                set_key(0, 0, n).as_bytes(),
                n.to_string().as_bytes(),
            ]));
            frame.extend(encode_command(&["INCR", "counter:async"]));
        }
        conn.send_raw(&frame).expect("send");
        for n in 0..SETS {
            assert_eq!(
                conn.read_reply().expect("SET reply"),
                b"+OK\r\n",
                "SET #{n}"
            );
            let want = format!(":{}\r\n", n + 1).into_bytes();
            assert_eq!(conn.read_reply().expect("INCR reply"), want, "INCR #{n}");
        }
    }
    server.terminate();
    server.restart();
    let mut conn = RespConn::connect(server.port()).expect("connect");
    let keys: Vec<String> = (0..SETS).map(|n| set_key(0, 0, n)).collect();
    for (n, v) in mget(&mut conn, &keys).into_iter().enumerate() {
        assert_eq!(
            v,
            Some(n.to_string().into_bytes()),
            "{} after SIGTERM + restart",
            keys[n]
        );
    }
    assert_eq!(
        conn.call(&["GET", "counter:async"]),
        format!("${}\r\n{SETS}\r\n", SETS.to_string().len()).into_bytes()
    );
    assert_eq!(
        conn.call(&["DBSIZE"]),
        format!(":{}\r\n", SETS + 1).into_bytes()
    );
}
