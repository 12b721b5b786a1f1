//! A deterministic single-threaded runtime with virtual time, for tests (and the simulator).
//!
//! Tasks run in FIFO order of wake-ups; time stands still while any task can run and jumps to
//! the earliest timer when none can. The same seed of operations therefore always interleaves
//! the same way, so a failing property test replays exactly.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_task::Runnable;

use crate::rt::Runtime;

/// Polls of one task before `yield_if_needed` yields; keeps long loops interleaved.
const POLLS_BEFORE_YIELD: u32 = 64;

thread_local! {
    /// Runnable tasks of the runtimes on this thread. A task's scheduler must be `Send + Sync`,
    /// so it cannot hold an `Rc` to its runtime: it reaches the queue through this thread-local
    /// instead (a task is only ever woken on its own thread; `async_task` checks).
    static QUEUE: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
}

#[derive(Default)]
struct Inner {
    now_ms: Cell<u64>,
    /// (deadline, unique id) -> waker.
    timers: RefCell<BTreeMap<(u64, u64), Waker>>,
    next_timer_id: Cell<u64>,
    budget: Cell<u32>,
}

/// Cheap to clone; all clones share the executor. Use one runtime per thread at a time: the
/// ready queue is per thread.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Rc<Inner>,
}

impl LocalRuntime {
    /// A runtime whose clock starts at `start_ms` (Unix milliseconds).
    pub fn new(start_ms: u64) -> LocalRuntime {
        let inner = Rc::new(Inner::default());
        inner.now_ms.set(start_ms);
        LocalRuntime { inner }
    }

    /// Runs `future` to completion, running spawned tasks and advancing virtual time as needed.
    /// Panics if `future` can never complete (every task waits and no timer is set).
    pub fn block_on<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> T {
        let result: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let slot = result.clone();
        self.spawn_local(async move {
            let value = future.await;
            *slot.borrow_mut() = Some(value);
        });
        loop {
            if let Some(value) = result.borrow_mut().take() {
                return value;
            }
            if !self.run_ready() && !self.fire_next_timer() {
                panic!("LocalRuntime::block_on: deadlock (no task can run, no timer is set)");
            }
        }
    }

    /// Runs queued tasks until none is ready; returns whether any ran.
    fn run_ready(&self) -> bool {
        let mut ran = false;
        loop {
            let next = QUEUE.with(|queue| queue.borrow_mut().pop_front());
            match next {
                Some(runnable) => {
                    ran = true;
                    self.inner.budget.set(0);
                    runnable.run();
                }
                None => return ran,
            }
        }
    }

    fn fire_next_timer(&self) -> bool {
        let first = self.inner.timers.borrow_mut().pop_first();
        match first {
            Some(((deadline, _), waker)) => {
                let now = self.inner.now_ms.get().max(deadline);
                self.inner.now_ms.set(now);
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Advances the virtual clock (tests of expiry).
    pub fn advance(&self, duration: Duration) {
        let now = self.inner.now_ms.get() + duration.as_millis() as u64;
        self.inner.now_ms.set(now);
    }
}

struct Sleep {
    inner: Rc<Inner>,
    deadline_ms: u64,
    timer_id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.now_ms.get() >= self.deadline_ms {
            if let Some(id) = self.timer_id.take() {
                self.inner
                    .timers
                    .borrow_mut()
                    .remove(&(self.deadline_ms, id));
            }
            return Poll::Ready(());
        }
        let id = match self.timer_id {
            Some(id) => id,
            None => {
                let id = self.inner.next_timer_id.get();
                self.inner.next_timer_id.set(id + 1);
                self.timer_id = Some(id);
                id
            }
        };
        let key = (self.deadline_ms, id);
        self.inner
            .timers
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.timer_id {
            self.inner
                .timers
                .borrow_mut()
                .remove(&(self.deadline_ms, id));
        }
    }
}

/// Yields once: wakes itself and returns Pending the first time it is polled.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Runtime for LocalRuntime {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms.get()
    }

    async fn sleep(&self, duration: Duration) {
        let deadline_ms = self.inner.now_ms.get() + duration.as_millis().max(1) as u64;
        Sleep {
            inner: self.inner.clone(),
            deadline_ms,
            timer_id: None,
        }
        .await
    }

    fn spawn_local(&self, future: impl Future<Output = ()> + 'static) {
        let schedule =
            |runnable: Runnable| QUEUE.with(|queue| queue.borrow_mut().push_back(runnable));
        let (runnable, task) = async_task::spawn_local(future, schedule);
        runnable.schedule();
        task.detach();
    }

    async fn yield_if_needed(&self) {
        let used = self.inner.budget.get() + 1;
        self.inner.budget.set(used);
        if used >= POLLS_BEFORE_YIELD {
            YieldOnce(false).await;
        }
    }

    fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = T>>> {
        busy_helper(work)
    }
}

/// An offload ([`Runtime::offload`]) as a helper thread that is still busy when first asked,
/// and when asked again: `work` runs in place at the third poll. Callers that check without
/// waiting (a bulk COPY or scan, which keep two pieces on the helper and do the next one
/// themselves while it has its fill) take all of their paths, deterministically.
pub fn busy_helper<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Pin<Box<dyn Future<Output = T>>> {
    let mut work = Some(work);
    let mut polls = 0;
    Box::pin(std::future::poll_fn(move |cx| {
        polls += 1;
        if polls < 3 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let work = work.take().expect("polled after it finished");
        Poll::Ready(work())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_and_timers_run_in_virtual_time() {
        let rt = LocalRuntime::new(1_000);
        let log = Rc::new(RefCell::new(Vec::new()));
        let (rt2, log2) = (rt.clone(), log.clone());
        let out = rt.block_on(async move {
            let (rt3, log3) = (rt2.clone(), log2.clone());
            rt2.spawn_local(async move {
                rt3.sleep(Duration::from_millis(50)).await;
                log3.borrow_mut().push(rt3.now_ms());
            });
            rt2.sleep(Duration::from_millis(100)).await;
            log2.borrow_mut().push(rt2.now_ms());
            7
        });
        assert_eq!(out, 7);
        assert_eq!(*log.borrow(), vec![1_050, 1_100]);
    }
}
