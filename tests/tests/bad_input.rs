//! Hostile and broken clients must not hurt the server: protocol errors get Redis's exact error
//! reply and a closed connection, and afterwards the process is alive and serves a normal client.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use helios_tests::rng::Rng;
use helios_tests::{render, HeliosServer, RespConn, ServerOpts};

const CLOSE_DEADLINE: Duration = Duration::from_secs(5);
const CONNECTIONS_TOTAL: usize = 2000;
/// Connections held open at once (keeps us far below the fd limit).
const CONNECTIONS_BATCH: usize = 200;

/// The server still works: it is alive and a fresh connection gets correct replies.
fn assert_healthy(server: &mut HeliosServer) {
    assert!(server.is_alive(), "helios process died");
    let mut conn = RespConn::connect(server.port()).expect("connect after abuse");
    assert_eq!(conn.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(conn.call(&["SET", "health", "ok"]), b"+OK\r\n");
    assert_eq!(conn.call(&["GET", "health"]), b"$2\r\nok\r\n");
    assert_eq!(conn.call(&["DEL", "health"]), b":1\r\n");
}

/// `render` of at most the first 100 bytes, for messages.
fn show(input: &[u8]) -> String {
    let shown = render(&input[..input.len().min(100)]);
    if input.len() > 100 {
        format!("{shown}... ({} bytes)", input.len())
    } else {
        shown
    }
}

/// Sends `input`, expects exactly `reply` and then the connection closed by the server.
fn expect_error_and_close(port: u16, input: &[u8], reply: &[u8]) {
    let mut conn = RespConn::connect(port).expect("connect");
    conn.send_raw(input).expect("send");
    let got = conn
        .read_reply()
        .unwrap_or_else(|e| panic!("no reply to {}: {e}", show(input)));
    assert_eq!(render(&got), render(reply), "reply to {}", show(input));
    if let Err(e) = conn.wait_closed(CLOSE_DEADLINE) {
        panic!(
            "after a protocol error on {} the connection must close: {e}",
            show(input)
        );
    }
}

#[test]
fn protocol_errors_reply_and_close() {
    let mut server = HeliosServer::start(ServerOpts::default());
    let port = server.port();
    expect_error_and_close(
        port,
        b"*99999999999\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    expect_error_and_close(
        port,
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    expect_error_and_close(
        port,
        b"*1\r\n$2147483648\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_and_close(
        port,
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    expect_error_and_close(
        port,
        b"*1\r\nPING\r\n",
        b"-ERR Protocol error: expected '$', got 'P'\r\n",
    );
    expect_error_and_close(
        port,
        b"SET \"a b\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    expect_error_and_close(
        port,
        b"ECHO 'x\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    // An inline request with no newline in sight after 64 KiB.
    let long_inline = vec![b'A'; 70 * 1024];
    expect_error_and_close(
        port,
        &long_inline,
        b"-ERR Protocol error: too big inline request\r\n",
    );
    assert_healthy(&mut server);
}

#[test]
fn odd_but_valid_framing() {
    let mut server = HeliosServer::start(ServerOpts::default());
    let mut conn = RespConn::connect(server.port()).expect("connect");
    // Empty and null multibulks are skipped silently.
    conn.send_raw(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n")
        .expect("send");
    assert_eq!(render(&conn.read_reply().expect("reply")), "+PONG\\r\\n");
    // Inline commands, with quoting.
    conn.send_raw(b"SET inl \"a b\\r\\n\"\r\n").expect("send");
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    assert_eq!(conn.call(&["GET", "inl"]), b"$5\r\na b\r\n\r\n");
    conn.send_raw(b"\r\n\r\nPING\n").expect("send"); // empty lines ignored; bare LF accepted
    assert_eq!(conn.read_reply().expect("reply"), b"+PONG\r\n");
    // One command dribbled a byte at a time.
    for byte in b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nbytes\r\n" {
        conn.send_raw(&[*byte]).expect("send byte");
    }
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    // Binary-safe bulk payloads.
    let payload: Vec<u8> = (0..=255u8).collect();
    assert_eq!(
        conn.cmd(&[b"SET".as_slice(), b"bin", &payload])
            .expect("SET"),
        b"+OK\r\n"
    );
    let mut want = b"$256\r\n".to_vec();
    want.extend_from_slice(&payload);
    want.extend_from_slice(b"\r\n");
    assert_eq!(conn.call(&["GET", "bin"]), want);
    assert_healthy(&mut server);
}

#[test]
fn truncated_frames_and_garbage() {
    let mut server = HeliosServer::start(ServerOpts::default());
    let port = server.port();
    let mut rng = Rng::new(0xbad1);
    // Truncated frames, then disconnect: nothing may be executed.
    let truncated: &[&[u8]] = &[
        b"*3\r\n$3\r\nSET\r\n$4\r\ntrnc\r\n$5\r\nval",
        b"*3\r\n$3\r\nSET\r\n$4\r\ntrnc\r\n",
        b"*3\r\n$3\r\nSET\r\n$4\r\ntr",
        b"*3\r\n$3\r\nSE",
        b"*3\r\n",
        b"*3",
        b"SET trnc inline-without-newline",
    ];
    for input in truncated {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(input).expect("send");
        drop(stream);
    }
    // Disconnect half-way through a large bulk.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"*3\r\n$3\r\nSET\r\n$4\r\ntrnc\r\n$1000000\r\n")
        .expect("send");
    stream.write_all(&vec![b'x'; 300_000]).expect("send");
    drop(stream);

    // Random binary garbage, some of it looking like the start of a multibulk.
    for round in 0..50 {
        let len = 1 + rng.below(8192) as usize;
        let mut garbage = rng.bytes(len);
        if round % 3 == 0 {
            garbage[0] = b'*';
        }
        if round % 5 == 0 {
            garbage.splice(0..0, b"*2\r\n$3\r\nGET\r\n$".iter().copied());
        }
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // The server may close on us mid-write; that is fine.
        let _ = stream.write_all(&garbage);
        drop(stream);
    }
    let mut conn = RespConn::connect(port).expect("connect");
    assert_eq!(
        conn.call(&["EXISTS", "trnc"]),
        b":0\r\n",
        "a truncated SET was executed"
    );
    assert_healthy(&mut server);
}

/// Raises the soft fd limit to the hard limit so the connection storm cannot hit EMFILE here.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn connection_storm() {
    raise_fd_limit();
    let mut server = HeliosServer::start(ServerOpts::default());
    let port = server.port();
    let mut opened = 0;
    while opened < CONNECTIONS_TOTAL {
        let mut batch = Vec::with_capacity(CONNECTIONS_BATCH);
        for _ in 0..CONNECTIONS_BATCH {
            batch.push(TcpStream::connect(("127.0.0.1", port)).expect("connect during storm"));
            opened += 1;
        }
        // Every tenth connection does real work before going away.
        for (i, stream) in batch.iter_mut().enumerate() {
            if i % 10 == 0 {
                stream
                    .write_all(b"*1\r\n$4\r\nPING\r\n")
                    .expect("send PING");
            }
        }
        for (i, stream) in batch.iter_mut().enumerate() {
            if i % 10 == 0 {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut buf = [0u8; 7];
                std::io::Read::read_exact(stream, &mut buf).expect("PONG during storm");
                assert_eq!(&buf, b"+PONG\r\n");
            }
        }
        drop(batch);
    }
    assert_healthy(&mut server);
    // Many clients alive at once, all served.
    let mut conns: Vec<RespConn> = (0..CONNECTIONS_BATCH)
        .map(|_| RespConn::connect(port).expect("connect"))
        .collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.send(&["SET", &format!("c:{i}"), &i.to_string()])
            .expect("send");
    }
    for conn in conns.iter_mut() {
        assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    }
    assert_eq!(
        conns[0].call(&["DBSIZE"]),
        format!(":{CONNECTIONS_BATCH}\r\n").into_bytes()
    );
}
