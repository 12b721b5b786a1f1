//! The `helios` command itself: flags and their defaults in --help, the TOML config file, and
//! the partition map's guard against restarting with another shard count.

use helios_tests::{free_port, helios_bin, Durability, HeliosServer, ServerOpts};
use std::process::Command;

fn run_helios(args: &[&str]) -> std::process::Output {
    Command::new(helios_bin())
        .args(args)
        .output()
        .expect("run helios")
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let out = run_helios(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "--data-dir",
        "./helios-data",
        "--redis-addr",
        "127.0.0.1:6379",
        "--pg-addr",
        "127.0.0.1:5432",
        "--shards",
        "--durability",
        "sync",
        "async",
        "--config",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}

/// Restarting with another --shards moves every key (values, expiries, databases) to the
/// shard that owns it under the new count: 2 → 1 → 3 shards, with a kill -9 in between.
#[test]
fn restart_with_another_shard_count_moves_the_data() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let expected = write_sample(&server, 0, 400);
    for shards in [1, 3] {
        server.terminate();
        server.restart_with_shards(shards);
        check_sample(&server, &expected);
        assert!(server.log().contains("resharding done"), "{}", server.log());
        assert_installed_layout(&server.data_dir(), shards);
    }
    let more = write_sample(&server, 400, 100);
    server.kill9();
    server.restart();
    check_sample(&server, &expected);
    check_sample(&server, &more);
    let info: String = redis::cmd("INFO")
        .arg("shards")
        .query(&mut connect(&server))
        .unwrap();
    assert_eq!(
        info.lines().filter(|l| l.starts_with("shard")).count(),
        3,
        "{info}"
    );
}

/// A resharding that crashed before its commit point leaves a staging dir: it is discarded.
#[test]
fn an_uncommitted_resharding_is_discarded() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let expected = write_sample(&server, 0, 50);
    server.terminate();
    let staging = server
        .data_dir()
        .join("resharding")
        .join("shard-0")
        .join("lsm");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("junk"), b"half-written").unwrap();
    server.restart();
    check_sample(&server, &expected);
    assert!(!server.data_dir().join("resharding").exists());
}

/// A resharding that crashed after its commit point (marker written, staging complete) is
/// finished at the next start. Here the staged layout is a copy of the live one.
#[test]
fn a_committed_resharding_is_finished() {
    let mut server =
        HeliosServer::start(ServerOpts::default().shards(2).durability(Durability::Sync));
    let expected = write_sample(&server, 0, 50);
    server.terminate();
    let data = server.data_dir();
    let staging = data.join("resharding");
    for shard in ["shard-0", "shard-1"] {
        copy_dir(&data.join(shard), &staging.join(shard));
    }
    std::fs::copy(data.join("partitions.map"), staging.join("partitions.map")).unwrap();
    std::fs::remove_dir_all(data.join("shard-1")).unwrap(); // as if the crash hit mid-install
    std::fs::write(data.join("RESHARD-COMMIT"), b"").unwrap();
    server.restart();
    check_sample(&server, &expected);
    assert!(!staging.exists() && !data.join("RESHARD-COMMIT").exists());
}

/// After a resharding to `shards`: each shard dir holds a store tree and nothing of the old
/// layout (no legacy `wal/`), there is no shard past the count, and no staging dir or marker.
fn assert_installed_layout(data: &std::path::Path, shards: usize) {
    for shard in 0..shards {
        let dir = data.join(format!("shard-{shard}"));
        assert!(dir.join("lsm").is_dir(), "{} has no lsm/", dir.display());
        assert!(!dir.join("wal").exists(), "{} kept a wal/", dir.display());
    }
    assert!(!data.join(format!("shard-{shards}")).exists());
    assert!(!data.join("resharding").exists() && !data.join("RESHARD-COMMIT").exists());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn connect(server: &HeliosServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Writes `count` keys over three databases, every third with a TTL; returns (db, key, value).
fn write_sample(server: &HeliosServer, first: usize, count: usize) -> Vec<(i64, String, String)> {
    let mut conn = connect(server);
    let mut written = Vec::new();
    for i in first..first + count {
        let db = (i % 3) as i64;
        let (key, value) = (format!("key:{i}"), format!("value:{i}"));
        let _: () = redis::cmd("SELECT").arg(db).query(&mut conn).unwrap();
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(&value);
        if i % 3 == 0 {
            set.arg("EX").arg(100_000);
        }
        let _: () = set.query(&mut conn).unwrap();
        written.push((db, key, value));
    }
    written
}

fn check_sample(server: &HeliosServer, expected: &[(i64, String, String)]) {
    let mut conn = connect(server);
    for (db, key, value) in expected {
        let _: () = redis::cmd("SELECT").arg(*db).query(&mut conn).unwrap();
        let (got, ttl): (Option<String>, i64) =
            redis::pipe().get(key).ttl(key).query(&mut conn).unwrap();
        assert_eq!(got.as_deref(), Some(value.as_str()), "db {db} key {key}");
        let index: usize = key["key:".len()..].parse().unwrap();
        if index.is_multiple_of(3) {
            assert!(ttl > 0, "{key} lost its TTL");
        } else {
            assert_eq!(ttl, -1, "{key} gained a TTL");
        }
    }
}

#[test]
fn config_file_sets_values_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helios.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "no_such_setting = 1\n").unwrap();
    let out = run_helios(&["--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_setting"));
    let port = free_port();
    let text = format!(
        "data_dir = {:?}\nredis_addr = \"127.0.0.1:{port}\"\npg_addr = \"127.0.0.1:0\"\nshards = 1\ndurability = \"async\"\n",
        dir.path().join("data")
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(helios_bin())
        .args(["--config", config.to_str().unwrap(), "--durability", "sync"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = loop {
        match client.get_connection() {
            Ok(conn) => break conn,
            Err(_) if std::time::Instant::now() < deadline => std::thread::yield_now(),
            Err(error) => panic!("helios did not start from its config file: {error}"),
        }
    };
    let fsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        fsync,
        vec!["appendfsync".to_string(), "always".to_string()],
        "the flag wins over the file"
    );
    assert!(dir.path().join("data").join("partitions.map").exists());
    // SAFETY: plain kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// The default data dir is relative (`./helios-data`): the server must start and keep data
/// there (glommio cannot open relative directories, so the path is made absolute first).
#[test]
fn default_relative_data_dir_works() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(helios_bin())
        .current_dir(cwd.path())
        .args([
            "--redis-addr",
            &format!("127.0.0.1:{port}"),
            "--pg-addr",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = loop {
        match client.get_connection() {
            Ok(conn) => break conn,
            Err(_)
                if std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() =>
            {
                std::thread::yield_now()
            }
            Err(error) => panic!("helios did not start with the default data dir: {error}"),
        }
    };
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    // SAFETY: plain kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(cwd
        .path()
        .join("helios-data")
        .join("partitions.map")
        .exists());
    assert!(cwd
        .path()
        .join("helios-data")
        .join("shard-0")
        .join("lsm")
        .join("wal")
        .exists());
}
