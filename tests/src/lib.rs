//! Test harness shared by the integration tests.
//!
//! - `server`: start/stop/restart the real `helios` binary (and a reference `redis-server`) on
//!   free ports and temp dirs, with readiness polled against deadlines.
//! - `resp`: a raw RESP client that returns replies as the exact bytes the server sent.
//! - `rng`: a tiny seeded generator so every random test is reproducible from its seed.

pub mod resp;
pub mod rng;
pub mod server;

pub use resp::{render, Frame, RespConn};
pub use server::{
    free_port, helios_bin, redis_cli, which, Durability, HeliosServer, RedisServer, ServerOpts,
};

/// Polls `check` until it returns true or `deadline` passes; returns whether it succeeded.
pub fn poll_until(deadline: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
