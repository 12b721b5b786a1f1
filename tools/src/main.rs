//! The `helios` executable: parses flags (and an optional TOML config file), checks the
//! machine (io_uring, RLIMIT_MEMLOCK), installs SIGINT/SIGTERM handling, and runs the server.
//! With a subcommand (`inspect`, `check`) it runs an offline admin command instead (see
//! [`admin`]), which needs neither io_uring nor a running server.

mod admin;
mod stdfs;

/// mimalloc instead of glibc's malloc: collection writes spent about 40 % of their time in
/// glibc's malloc and free (`malloc_consolidate`, `unlink_chunk`) under redis-benchmark -P 16.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v3's `mi_option_e`; libmimalloc-sys names no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's `mi_option_allow_thp`, likewise.
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Keeps freed memory mapped for reuse instead of returning it to the OS. A shard's memtables
/// are born and retired every few seconds under write load (64 MiB of entries and a
/// pre-sized index each): with mimalloc's default 10 ms purge, each new one faulted its pages
/// in again, and zeroing them (`clear_page_erms`) was 6-17 % of a pipelined LPUSH's shard
/// time. The process keeps its peak footprint, as a database with fixed pools does; the
/// `--maxmemory` accounting is the keyspace's own and does not change.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option; mimalloc reads it at each purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Turns transparent huge pages off for this process, as Redis does (`disable-thp yes`, its
/// default). mimalloc asks for huge pages for its arenas; the kernel then backs each first
/// touch with a 2 MiB page, found (compacting memory if need be) and zeroed at once. On this
/// project's test VM that was 55-64 % of a fresh server's pipelined LPUSH time, and a round of
/// 500k LPUSHes ran at 0.29 M req/s instead of 0.53 M; a sparsely touched table (the
/// memtable's pre-sized index) also became resident 2 MiB at a time.
fn disable_transparent_huge_pages() {
    // SAFETY: sets a process-wide allocator option, read at each OS allocation.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    // SAFETY: prctl with integer arguments only; it flags this process's address space, and
    // overrides the MADV_HUGEPAGE advice mimalloc gave the arena it reserved before main.
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not turn transparent huge pages off; first touches of memory may be slow"
        );
    }
}

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use helios_net::server::{self, Durability, ServerConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DurabilityArg {
    /// Acknowledge a write only after its WAL record is fsynced (group commit per shard).
    Sync,
    /// Acknowledge once in memory and the WAL buffer; fsync at least every 100 ms.
    Async,
}

/// HeliosDB: a thread-per-core database speaking the Redis protocol (and, soon, PostgreSQL's).
#[derive(Parser, Debug)]
#[command(
    name = "helios",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Offline admin commands; without one, helios runs the server.
    #[command(subcommand)]
    command: Option<admin::AdminCommand>,
    /// TOML file with any of the settings below (keys as the flags, with '_' for '-');
    /// flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the WAL and the partition map live.
    #[arg(long, value_name = "PATH", default_value = "./helios-data")]
    data_dir: Option<PathBuf>,
    /// Address for Redis (RESP2/RESP3) clients.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
    redis_addr: Option<SocketAddr>,
    /// Address for PostgreSQL clients (psql, pgbench, drivers).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5432")]
    pg_addr: Option<SocketAddr>,
    /// Shards (one per core). Default: the count recorded in the data dir, else the cores
    /// available to the process less one (left for the kernel's network and fsync work).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// When a write is acknowledged.
    #[arg(long, value_enum, default_value = "sync")]
    durability: Option<DurabilityArg>,
    /// Memory for cached data, divided evenly among shards; each shard gives half to its block
    /// cache and half to values kept in memory. A size with a unit: 64MB, 512MiB, 2GiB.
    /// Default: a quarter of the machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_cache_size)]
    cache_size: Option<u64>,
    /// Refuse writes that may grow the data (Redis's "denyoom" commands: SET, HSET, LPUSH,
    /// ...) while the keyspace holds more than this, as Redis's `noeviction` policy does
    /// (`OOM command not allowed ...`). A size with a unit: 100MB, 2GiB. Default: no limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_maxmemory)]
    maxmemory: Option<u64>,
    /// Redis clients must AUTH with this password (Redis's `requirepass`). Default: none.
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// Without a password, serve Redis clients on the loopback interface only (Redis's
    /// `protected-mode`).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    protected_mode: Option<bool>,
}

fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

fn parse_maxmemory(text: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .map_err(|e| format!("{e} (expected a size such as 100MB or 2GiB)"))
}

/// Smallest `--cache-size`: a block cache and a value budget of a few MiB per shard.
const CACHE_SIZE_MIN_BYTES: u64 = 8 << 20;
/// `--cache-size` when unset: this fraction of physical memory.
const CACHE_SIZE_DEFAULT_DIVISOR: u64 = 4;

fn parse_cache_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .map_err(|e| format!("{e} (expected a size such as 64MB or 2GiB)"))?;
    if bytes < CACHE_SIZE_MIN_BYTES {
        return Err(format!(
            "must be at least {}MiB",
            CACHE_SIZE_MIN_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Physical memory of the machine, from sysconf.
fn physical_memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page_size <= 0 {
        return 1 << 30;
    }
    pages as u64 * page_size as u64
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    redis_addr: Option<SocketAddr>,
    pg_addr: Option<SocketAddr>,
    shards: Option<usize>,
    durability: Option<DurabilityArg>,
    cache_size: Option<String>,
    maxmemory: Option<String>,
    requirepass: Option<String>,
    protected_mode: Option<bool>,
    /// PostgreSQL users with passwords: `[[pg_users]]` name, password, auth
    /// (`scram-sha-256`, `md5` or `password`).
    #[serde(default)]
    pg_users: Vec<PgUserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PgUserEntry {
    name: String,
    password: String,
    #[serde(default = "default_pg_auth")]
    auth: helios_net::server::PgAuthMethod,
}

fn default_pg_auth() -> helios_net::server::PgAuthMethod {
    helios_net::server::PgAuthMethod::ScramSha256
}

/// Command-line values that were typed (not defaulted) override the config file.
fn resolve(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ServerConfig> {
    let explicit =
        |name: &str| matches.value_source(name) == Some(clap::parser::ValueSource::CommandLine);
    let file: FileConfig = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    fn pick<T>(explicit: bool, cli: Option<T>, file: Option<T>) -> Option<T> {
        if explicit {
            cli
        } else {
            file.or(cli)
        }
    }
    let shards = pick(explicit("shards"), cli.shards, file.shards);
    if shards == Some(0) || shards.is_some_and(|s| s > 256) {
        anyhow::bail!("--shards must be between 1 and 256");
    }
    let durability = match pick(explicit("durability"), cli.durability, file.durability)
        .unwrap_or(DurabilityArg::Sync)
    {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Async => Durability::Async,
    };
    let data_dir: PathBuf = pick(explicit("data_dir"), cli.data_dir, file.data_dir)
        .unwrap_or_else(|| "./helios-data".into());
    // Absolute, because glommio opens directories through io_uring, where a relative path
    // fails (EBADF): the default `./helios-data` must work.
    let data_dir = std::path::absolute(&data_dir)
        .map_err(|e| anyhow::anyhow!("cannot resolve the data dir {}: {e}", data_dir.display()))?;
    let cache_bytes = match (explicit("cache_size"), cli.cache_size, file.cache_size) {
        (true, Some(bytes), _) | (false, Some(bytes), None) => bytes,
        (false, _, Some(text)) => parse_cache_size(&text)
            .map_err(|e| anyhow::anyhow!("config file: cache_size {text:?}: {e}"))?,
        _ => (physical_memory_bytes() / CACHE_SIZE_DEFAULT_DIVISOR).max(CACHE_SIZE_MIN_BYTES),
    };
    let maxmemory_bytes = match (explicit("maxmemory"), cli.maxmemory, file.maxmemory) {
        (true, Some(bytes), _) | (false, Some(bytes), None) => bytes,
        (false, _, Some(text)) => parse_maxmemory(&text)
            .map_err(|e| anyhow::anyhow!("config file: maxmemory {text:?}: {e}"))?,
        _ => 0,
    };
    let mut pg_users = Vec::with_capacity(file.pg_users.len());
    for u in &file.pg_users {
        if pg_users
            .iter()
            .any(|p: &helios_net::server::PgUser| p.name == u.name)
        {
            anyhow::bail!("config file: pg_users lists {:?} twice", u.name);
        }
        pg_users.push(
            helios_net::server::PgUser::new(&u.name, u.auth, &u.password)
                .map_err(|e| anyhow::anyhow!("cannot derive the SCRAM secret: {e}"))?,
        );
    }
    Ok(ServerConfig {
        pg_users,
        cache_bytes,
        maxmemory_bytes,
        requirepass: pick(explicit("requirepass"), cli.requirepass, file.requirepass)
            .filter(|p| !p.is_empty()),
        protected_mode: pick(
            explicit("protected_mode"),
            cli.protected_mode,
            file.protected_mode,
        )
        .unwrap_or(true),
        data_dir,
        redis_addr: pick(explicit("redis_addr"), cli.redis_addr, file.redis_addr)
            .expect("clap default"),
        pg_addr: pick(explicit("pg_addr"), cli.pg_addr, file.pg_addr).expect("clap default"),
        shards,
        durability,
        config_file: cli.config,
    })
}

/// glommio registers DMA memory with io_uring per executor, which counts against
/// RLIMIT_MEMLOCK: raise the soft limit toward what we need, or say exactly what to change.
fn check_memlock(shards: usize) -> anyhow::Result<()> {
    if has_cap_ipc_lock() {
        return Ok(()); // With CAP_IPC_LOCK the kernel does not charge registered memory to the limit.
    }
    let needed = shards as u64 * helios_shard::runtime::EXECUTOR_IO_MEMORY_BYTES as u64 + (1 << 20);
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) != 0 {
            return Ok(());
        }
        if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed {
            return Ok(());
        }
        let raised = libc::rlimit {
            rlim_cur: needed.max(limit.rlim_cur),
            rlim_max: limit.rlim_max.max(needed),
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
            tracing::info!(bytes = needed, "raised RLIMIT_MEMLOCK");
            return Ok(());
        }
        if limit.rlim_max >= needed {
            let soft = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft) == 0 {
                return Ok(());
            }
        }
    }
    anyhow::bail!(
        "RLIMIT_MEMLOCK is too low for {shards} shards (need {} KiB) and cannot be raised by this user. \
         Run `ulimit -l unlimited` (or `ulimit -l {}`) in the shell that starts helios, or set `LimitMEMLOCK=infinity` \
         in its systemd unit, or add `<user> - memlock unlimited` to /etc/security/limits.conf",
        needed / 1024,
        needed / 1024
    )
}

/// CAP_IPC_LOCK (capability 14) in the effective set, read from /proc/self/status.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Fails early, with advice, where io_uring is missing or disabled.
fn check_io_uring() -> anyhow::Result<()> {
    match io_uring_probe() {
        Ok(()) => Ok(()),
        Err(error) => anyhow::bail!(
            "io_uring is not available ({error}). helios needs Linux 6.1 or newer with io_uring enabled: \
             check `sysctl kernel.io_uring_disabled` (must be 0) and that no seccomp profile (e.g. a container runtime's) blocks io_uring_setup"
        ),
    }
}

fn io_uring_probe() -> std::io::Result<()> {
    // SAFETY: io_uring_setup with a zeroed params struct; the fd is closed right away.
    unsafe {
        let mut params = [0u8; 120];
        let fd = libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr());
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(fd as i32);
    }
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    disable_transparent_huge_pages();
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let Some(command) = cli.command.take() {
        return admin::run(command);
    }
    let config = match resolve(cli, &matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("helios: {error}");
            return ExitCode::from(2);
        }
    };
    let shards_hint = config
        .shards
        .unwrap_or_else(|| helios_shard::runtime::available_cpus().len().max(1));
    if let Err(error) = check_io_uring().and_then(|()| check_memlock(shards_hint)) {
        eprintln!("helios: {error}");
        return ExitCode::from(1);
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, shutdown.clone()) {
            eprintln!("helios: cannot install the handler for signal {signal}: {error}");
            return ExitCode::from(1);
        }
    }
    match server::run(config, shutdown) {
        Ok(()) => {
            tracing::info!("helios stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("helios: {error}");
            ExitCode::from(1)
        }
    }
}
