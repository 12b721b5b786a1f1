//! The time-and-spawning seam: production implements it over glommio (`helios-shard`),
//! tests and the simulator over virtual time.
#![allow(async_fn_in_trait)]

use std::future::Future;
use std::time::Duration;

pub trait Runtime: Clone + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (Redis expiry is absolute).
    fn now_ms(&self) -> u64;
    /// Resolves after `duration`.
    async fn sleep(&self, duration: Duration);
    /// Runs `future` on this shard's executor, concurrently with the caller.
    fn spawn_local(&self, future: impl Future<Output = ()> + 'static);
}
