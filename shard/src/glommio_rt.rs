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

    /// On the shard's helper thread ([`crate::helper`]), or glommio's blocking pool where
    /// the shard has none. The result comes back through a channel the job fills itself, so
    /// a shard that checks for it without waiting (a COPY, between its batches) sees it at
    /// once. A panic in `work` is caught there (the helper would otherwise die, and every
    /// later offload of this shard wait forever) and raised again here, on the shard.
    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = T>>> {
        let (done, result) = futures_channel::oneshot::channel();
        let job: crate::helper::Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        });
        if let Err(job) = crate::helper::submit(job) {
            // Spawned, so that the request reaches the pool at the caller's next await:
            // glommio sends it only when the `spawn_blocking` future is first polled.
            glommio::spawn_local(glommio::executor().spawn_blocking(job)).detach();
        }
        Box::pin(async move {
            match result.await {
                Ok(Ok(value)) => value,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                // The job was dropped unrun: only the shard's shutdown does that, and it
                // drops this task too.
                Err(futures_channel::oneshot::Canceled) => std::future::pending().await,
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::FutureExt;

    /// An offload runs on the shard's helper thread; its result is seen by a check that
    /// gives the executor no turn (as a COPY's loader checks between batches); a panic in it
    /// is raised again on the shard, and the helper goes on.
    #[test]
    fn an_offloaded_result_is_seen_without_an_executor_turn() {
        let ex = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                crate::helper::start("offload-test-helper".into(), Vec::new()).unwrap();
                let rt = GlommioRuntime;
                let mut job = rt.offload(|| std::thread::current().name().map(str::to_owned));
                let deadline = Instant::now() + Duration::from_secs(30);
                let name = loop {
                    if let Some(name) = futures_lite::future::poll_once(job.as_mut()).await {
                        break name;
                    }
                    assert!(Instant::now() < deadline, "never seen");
                    std::thread::yield_now();
                };
                assert_eq!(name.as_deref(), Some("offload-test-helper"));
                let panicked = std::panic::AssertUnwindSafe(rt.offload(|| panic!("in the job")))
                    .catch_unwind()
                    .await;
                assert!(panicked.is_err());
                assert_eq!(rt.offload(|| 7).await, 7);
            })
            .unwrap();
        ex.join().unwrap();
    }
}
