//! Pub/sub through the real server: a scripted session compared byte for byte with
//! redis-server (RESP2 subscribe mode and RESP3 pushes), and a fan-out test with
//! subscribers and publishers spread over both shards: every subscriber gets every message
//! once, in each publisher's order, and PUBLISH counts them.

use std::time::{Duration, Instant};

use helios_tests::resp::encode_command;
use helios_tests::{render, HeliosServer, RedisServer, RespConn, ServerOpts};

const DEADLINE: Duration = Duration::from_secs(10);

fn connect(port: u16) -> RespConn {
    let mut conn = RespConn::connect(port).expect("connect");
    conn.set_read_timeout(DEADLINE).expect("timeout");
    conn
}

/// Sends raw commands and reads the replies `frames` frames long.
fn exchange(conn: &mut RespConn, commands: &[&[&str]], frames: usize) -> String {
    let mut bytes = Vec::new();
    for c in commands {
        bytes.extend(encode_command(c));
    }
    conn.send_raw(&bytes).expect("send");
    (0..frames)
        .map(|_| render(&conn.read_reply().expect("a frame")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Subscribes (and waits for the confirmations) before anyone publishes.
fn scripted_session(port: u16) -> Vec<String> {
    let mut a = connect(port);
    let mut b = connect(port);
    let mut c = connect(port);
    let mut out = vec![exchange(&mut a, &[&["SUBSCRIBE", "ch1", "ch2"]], 2)];
    out.push(
        exchange(&mut c, &[&["HELLO", "3"]], 1)
            .split(' ')
            .count()
            .to_string(),
    );
    out.push(exchange(&mut c, &[&["PSUBSCRIBE", "ch*", "x?"]], 2));
    out.push(exchange(
        &mut b,
        &[
            &["PUBLISH", "ch1", "hello"],
            &["PUBLISH", "none", "x"],
            &["PUBSUB", "NUMSUB", "ch1", "ch2", "zz"],
            &["PUBSUB", "NUMPAT"],
            &["PUBSUB", "CHANNELS", "*2"],
        ],
        5,
    ));
    out.push(exchange(&mut a, &[], 1));
    out.push(exchange(&mut c, &[], 1));
    out.push(exchange(
        &mut a,
        &[
            &["GET", "x"],
            &["PING"],
            &["PING", "hi"],
            &["UNSUBSCRIBE", "ch1"],
            &["UNSUBSCRIBE"],
            &["UNSUBSCRIBE"],
            &["GET", "x"],
        ],
        7,
    ));
    out.push(exchange(&mut c, &[&["GET", "x"], &["PUNSUBSCRIBE"]], 3));
    out.push(exchange(
        &mut b,
        &[&["PUBLISH", "ch1", "nobody"], &["PUBSUB", "NUMPAT"]],
        2,
    ));
    out
}

#[test]
fn pubsub_session_matches_redis() {
    let Some(redis) = RedisServer::try_start() else {
        return;
    };
    let helios = HeliosServer::start(ServerOpts::default().shards(2));
    assert_eq!(
        scripted_session(helios.port()),
        scripted_session(redis.port())
    );
}

#[test]
fn messages_fan_out_to_every_subscriber_on_every_shard() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let subscribers: Vec<RespConn> = (0..6)
        .map(|i| {
            let mut s = connect(server.port());
            if i % 2 == 1 {
                exchange(&mut s, &[&["HELLO", "3"]], 1);
            }
            let command: &[&str] = if i % 3 == 0 {
                &["PSUBSCRIBE", "news.*"]
            } else {
                &["SUBSCRIBE", "news.today"]
            };
            exchange(&mut s, &[command], 1);
            s
        })
        .collect();
    let mut publishers: Vec<RespConn> = (0..3).map(|_| connect(server.port())).collect();
    let start = Instant::now();
    for n in 0..20 {
        for (p, conn) in publishers.iter_mut().enumerate() {
            let message = format!("p{p}-{n}");
            let reply = conn
                .cmd(&["PUBLISH", "news.today", &message])
                .expect("PUBLISH");
            assert_eq!(render(&reply), ":6\\r\\n", "every subscriber counted");
        }
    }
    for (i, mut s) in subscribers.into_iter().enumerate() {
        let mut seen: Vec<Vec<i32>> = vec![Vec::new(); 3];
        for _ in 0..60 {
            let frame = render(&s.read_reply().expect("a message"));
            let text = frame.rsplit("\\r\\n").nth(1).expect("payload").to_string();
            let (p, n) = text
                .trim_start_matches('p')
                .split_once('-')
                .expect("p<publisher>-<n>");
            seen[p.parse::<usize>().expect("publisher")].push(n.parse().expect("n"));
            let kind = if i % 3 == 0 { "pmessage" } else { "message" };
            assert!(frame.contains(kind), "subscriber {i}: {frame}");
            assert!(
                frame.starts_with(if i % 2 == 1 { '>' } else { '*' }),
                "subscriber {i}: {frame}"
            );
        }
        for per_publisher in &seen {
            assert_eq!(
                per_publisher,
                &(0..20).collect::<Vec<_>>(),
                "subscriber {i}"
            );
        }
    }
    assert!(start.elapsed() < DEADLINE);
}

#[test]
fn a_subscriber_that_leaves_is_forgotten() {
    let server = HeliosServer::start(ServerOpts::default().shards(2));
    let mut s = connect(server.port());
    exchange(&mut s, &[&["SUBSCRIBE", "c"]], 1);
    drop(s);
    let mut p = connect(server.port());
    let forgotten = helios_tests::poll_until(DEADLINE, || {
        render(&p.cmd(&["PUBSUB", "NUMSUB", "c"]).expect("NUMSUB")).ends_with(":0\\r\\n")
    });
    assert!(forgotten, "the subscription outlived its connection");
    assert_eq!(
        render(&p.cmd(&["PUBLISH", "c", "x"]).expect("PUBLISH")),
        ":0\\r\\n"
    );
}
