//! The time-and-spawning seam: production implements it over glommio (`helios-shard`),
//! tests and the simulator over virtual time ([`crate::localrt::LocalRuntime`]).
#![allow(async_fn_in_trait)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub trait Runtime: Clone + 'static {
    /// Wall-clock time in milliseconds since the Unix epoch (Redis expiry is absolute).
    fn now_ms(&self) -> u64;
    /// Resolves after `duration`.
    async fn sleep(&self, duration: Duration);
    /// Runs `future` on this shard's executor, concurrently with the caller.
    fn spawn_local(&self, future: impl Future<Output = ()> + 'static);
    /// Runs `future` as background work (flush, compaction): on this shard's executor, but in a
    /// class with fewer shares than client work, so it cannot starve the foreground.
    fn spawn_background(&self, future: impl Future<Output = ()> + 'static) {
        self.spawn_local(future);
    }
    /// Gives other tasks a turn if this one has run long enough; long loops call it.
    async fn yield_if_needed(&self);
    /// Runs CPU-bound `work` (parsing a bulk load, sorting or encoding its rows) where it does
    /// not hold up this shard's other tasks: production hands it to the shard's helper
    /// thread. By default, as in the tests and the simulator, it runs in place, at once.
    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = T>>> {
        let done = work();
        Box::pin(std::future::ready(done))
    }
}
