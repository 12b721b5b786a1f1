//! The production runtime seam: wall-clock time, glommio timers and tasks.

use helios_engine::rt::Runtime;
use helios_engine::wal::GroupCommitClock;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioRuntime;

/// Milliseconds since the Unix epoch (Redis expiry is absolute wall-clock time).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Runtime for GlommioRuntime {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }

    async fn sleep(&self, duration: Duration) {
        glommio::timer::sleep(duration).await;
    }

    fn spawn_local(&self, future: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(future).detach();
    }

    fn spawn_background(&self, future: impl Future<Output = ()> + 'static) {
        // The executor's background queue (fewer shares than client work) when the shard made
        // one; otherwise the current queue.
        match crate::runtime::background_queue() {
            Some(queue) => glommio::spawn_local_into(future, queue)
                .map(|task| task.detach())
                .unwrap_or_else(|e| panic!("spawn into the background queue failed: {e}")),
            None => glommio::spawn_local(future).detach(),
        };
    }

    async fn yield_if_needed(&self) {
        glommio::yield_if_needed().await;
    }
}

/// The WAL's group-commit clock: monotonic microseconds and glommio timers (see
/// `helios_engine::wal::GroupCommitClock`).
pub struct GlommioClock {
    start: Instant,
}

impl GlommioClock {
    pub fn new() -> GlommioClock {
        GlommioClock {
            start: Instant::now(),
        }
    }
}

impl Default for GlommioClock {
    fn default() -> GlommioClock {
        GlommioClock::new()
    }
}

impl GroupCommitClock for GlommioClock {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(glommio::timer::sleep(duration))
    }
}
