//! Blocking pops through the real server, with clients on both shards: a push from any
//! connection wakes blocked clients in arrival order, timeouts reply nil, a client that
//! disconnects while blocked takes nothing, MULTI never blocks, and many clients blocked on
//! one key each get exactly one element.

use std::time::{Duration, Instant};

use helios_tests::{render, HeliosServer, RespConn, ServerOpts};

const DEADLINE: Duration = Duration::from_secs(10);

fn server() -> HeliosServer {
    HeliosServer::start(ServerOpts::default().shards(2))
}

fn connect(server: &HeliosServer) -> RespConn {
    let mut conn = RespConn::connect(server.port()).expect("connect");
    conn.set_read_timeout(DEADLINE).expect("timeout");
    conn
}

fn call(conn: &mut RespConn, args: &[&str]) -> String {
    render(&conn.cmd(args).expect("reply"))
}

fn blocked_clients(conn: &mut RespConn) -> u64 {
    let info = String::from_utf8_lossy(&conn.cmd(&["INFO", "clients"]).expect("INFO")).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients in INFO")
}

/// Polls INFO until `n` clients are blocked (registered on their keys' shards).
fn wait_blocked(admin: &mut RespConn, n: u64) {
    assert!(
        helios_tests::poll_until(DEADLINE, || blocked_clients(admin) == n),
        "never {n} blocked clients"
    );
}

fn reply(conn: &mut RespConn) -> String {
    render(&conn.read_reply().expect("a reply"))
}

#[test]
fn pushes_wake_blocked_clients_in_arrival_order() {
    let server = server();
    let mut admin = connect(&server);
    let mut a = connect(&server);
    let mut b = connect(&server);
    let mut c = connect(&server);
    a.send(&["BLPOP", "q", "0"]).expect("send");
    wait_blocked(&mut admin, 1);
    b.send(&["BLPOP", "nothing", "q", "0"]).expect("send");
    wait_blocked(&mut admin, 2);
    c.send(&["BRPOP", "q", "0"]).expect("send");
    wait_blocked(&mut admin, 3);

    assert_eq!(call(&mut admin, &["RPUSH", "q", "1"]), ":1\\r\\n");
    assert_eq!(reply(&mut a), "*2\\r\\n$1\\r\\nq\\r\\n$1\\r\\n1\\r\\n");
    wait_blocked(&mut admin, 2);
    // Two elements, two waiters: b pops the head, c the tail, whichever retries first.
    assert_eq!(call(&mut admin, &["RPUSH", "q", "2", "3"]), ":2\\r\\n");
    assert_eq!(reply(&mut b), "*2\\r\\n$1\\r\\nq\\r\\n$1\\r\\n2\\r\\n");
    assert_eq!(reply(&mut c), "*2\\r\\n$1\\r\\nq\\r\\n$1\\r\\n3\\r\\n");
    wait_blocked(&mut admin, 0);
    assert_eq!(call(&mut admin, &["EXISTS", "q"]), ":0\\r\\n");
}

#[test]
fn timeouts_reply_nil_in_each_shape() {
    let server = server();
    let mut conn = connect(&server);
    let start = Instant::now();
    assert_eq!(call(&mut conn, &["BLPOP", "none", "0.2"]), "*-1\\r\\n");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        call(
            &mut conn,
            &["BLMOVE", "none", "dst", "LEFT", "RIGHT", "0.05"]
        ),
        "$-1\\r\\n"
    );
    assert_eq!(call(&mut conn, &["BZPOPMIN", "none", "0.05"]), "*-1\\r\\n");
    assert!(call(&mut conn, &["HELLO", "3"]).starts_with('%'));
    assert_eq!(
        call(&mut conn, &["BLMPOP", "0.05", "1", "none", "LEFT"]),
        "_\\r\\n"
    );
    assert_eq!(
        call(&mut conn, &["BLPOP", "k", "-1"]),
        "-ERR timeout is negative\\r\\n"
    );
    assert_eq!(
        call(&mut conn, &["BLPOP", "k", "x"]),
        "-ERR timeout is not a float or out of range\\r\\n"
    );
    call(&mut conn, &["SET", "str", "v"]);
    assert_eq!(
        call(&mut conn, &["BLPOP", "str", "0"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\\r\\n"
    );
    assert_eq!(
        call(&mut conn, &["BLMPOP", "0", "0", "k", "LEFT"]),
        "-ERR numkeys should be greater than 0\\r\\n"
    );
}

#[test]
fn blocked_moves_and_sorted_set_pops_across_shards() {
    let server = server();
    let mut admin = connect(&server);
    // Several pairs, so some have their keys on different shards.
    for i in 0..4 {
        let (src, dst) = (format!("src{i}"), format!("dst{i}"));
        let mut waiter = connect(&server);
        waiter
            .send(&["BLMOVE", src.as_str(), dst.as_str(), "RIGHT", "LEFT", "0"])
            .expect("send");
        wait_blocked(&mut admin, 1);
        call(&mut admin, &["RPUSH", src.as_str(), "a", "b"]);
        assert_eq!(reply(&mut waiter), "$1\\r\\nb\\r\\n");
        assert_eq!(
            call(&mut admin, &["LRANGE", dst.as_str(), "0", "-1"]),
            "*1\\r\\n$1\\r\\nb\\r\\n"
        );
        wait_blocked(&mut admin, 0);
    }
    let mut z = connect(&server);
    z.send(&["BZPOPMAX", "za", "zb", "0"]).expect("send");
    wait_blocked(&mut admin, 1);
    call(&mut admin, &["ZADD", "zb", "1", "low", "2.5", "high"]);
    assert_eq!(
        reply(&mut z),
        "*3\\r\\n$2\\r\\nzb\\r\\n$4\\r\\nhigh\\r\\n$3\\r\\n2.5\\r\\n"
    );
    z.send(&["BZMPOP", "0", "2", "za", "zb", "MIN", "COUNT", "5"])
        .expect("send");
    assert_eq!(
        reply(&mut z),
        "*2\\r\\n$2\\r\\nzb\\r\\n*1\\r\\n*2\\r\\n$3\\r\\nlow\\r\\n$1\\r\\n1\\r\\n"
    );
    wait_blocked(&mut admin, 0);
}

#[test]
fn a_client_that_disconnects_while_blocked_takes_nothing() {
    let server = server();
    let mut admin = connect(&server);
    let mut gone = connect(&server);
    gone.send(&["BLPOP", "q", "0"]).expect("send");
    wait_blocked(&mut admin, 1);
    drop(gone);
    wait_blocked(&mut admin, 0);
    call(&mut admin, &["RPUSH", "q", "kept"]);
    assert_eq!(call(&mut admin, &["LLEN", "q"]), ":1\\r\\n");
}

#[test]
fn multi_never_blocks() {
    let server = server();
    let mut conn = connect(&server);
    call(&mut conn, &["MULTI"]);
    call(&mut conn, &["BLPOP", "empty", "0"]);
    call(&mut conn, &["RPUSH", "full", "x"]);
    call(&mut conn, &["BRPOP", "full", "0"]);
    assert_eq!(
        call(&mut conn, &["EXEC"]),
        "*3\\r\\n*-1\\r\\n:1\\r\\n*2\\r\\n$4\\r\\nfull\\r\\n$1\\r\\nx\\r\\n"
    );
}

/// Twenty clients blocked on one key; twenty elements pushed one at a time: each client
/// gets exactly one, none is lost or given twice.
#[test]
fn many_blocked_clients_each_get_one_element() {
    let server = server();
    let mut admin = connect(&server);
    let mut waiters: Vec<RespConn> = (0..20).map(|_| connect(&server)).collect();
    for (i, w) in waiters.iter_mut().enumerate() {
        w.send(&["BLPOP", "jobs", "0"]).expect("send");
        wait_blocked(&mut admin, i as u64 + 1);
    }
    for n in 0..20 {
        call(&mut admin, &["RPUSH", "jobs", &n.to_string()]);
    }
    let mut got: Vec<String> = waiters.iter_mut().map(reply).collect();
    got.sort();
    let mut want: Vec<String> = (0..20)
        .map(|n: i32| {
            let n = n.to_string();
            format!("*2\\r\\n$4\\r\\njobs\\r\\n${}\\r\\n{n}\\r\\n", n.len())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    wait_blocked(&mut admin, 0);
    assert_eq!(call(&mut admin, &["EXISTS", "jobs"]), ":0\\r\\n");
}
