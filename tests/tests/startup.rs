//! The `helios` command itself: flags and their defaults in --help, the TOML config file, and
//! the partition map's guard against restarting with another shard count.

use helios_tests::{free_port, helios_bin, HeliosServer, ServerOpts};
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

#[test]
fn restart_with_another_shard_count_is_refused_with_advice() {
    let mut server = HeliosServer::start(ServerOpts::default().shards(2));
    let data_dir = server.data_dir();
    server.terminate();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let dir = data_dir.to_str().unwrap();
    let out = run_helios(&[
        "--data-dir",
        dir,
        "--redis-addr",
        &addr,
        "--pg-addr",
        "127.0.0.1:0",
        "--shards",
        "1",
    ]);
    assert!(!out.status.success(), "a shard-count change must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds 2 shards") && stderr.contains("--shards 2"),
        "{stderr}"
    );
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
