//! A minimal async mutex for one thread: serializes multi-step async operations (a WAL segment
//! removal, a manifest edit) that must not interleave with another of their kind, without
//! holding a `RefCell` borrow across an `.await`. Runtime-agnostic (wakers only), no `Send`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Bound on distinct tasks waiting at once; a single shard never has more tasks than this
/// contending for one lock, so exceeding it is a bug (asserted).
const LOCK_WAITERS_MAX: usize = 1 << 16;

/// An async lock for single-threaded executors. Not fair: every waiter is woken at release and
/// the first to run takes it (waiters are few and the holders short).
#[derive(Debug, Default)]
pub struct LocalLock {
    locked: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

/// Holds a [`LocalLock`] until dropped.
#[derive(Debug)]
pub struct LocalLockGuard<'a> {
    lock: &'a LocalLock,
}

impl LocalLock {
    pub fn new() -> LocalLock {
        LocalLock::default()
    }

    /// Waits until the lock is free, then takes it.
    pub async fn lock(&self) -> LocalLockGuard<'_> {
        Acquire { lock: self }.await
    }

    /// Whether some guard holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }
}

impl Drop for LocalLockGuard<'_> {
    fn drop(&mut self) {
        assert!(self.lock.locked.get(), "lock released twice");
        self.lock.locked.set(false);
        let waiters = std::mem::take(&mut *self.lock.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}

struct Acquire<'a> {
    lock: &'a LocalLock,
}

impl<'a> Future for Acquire<'a> {
    type Output = LocalLockGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LocalLockGuard<'a>> {
        let lock = self.lock;
        if !lock.locked.get() {
            lock.locked.set(true);
            return Poll::Ready(LocalLockGuard { lock });
        }
        let mut waiters = lock.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            assert!(waiters.len() < LOCK_WAITERS_MAX, "too many lock waiters");
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::rc::Rc;

    #[test]
    fn second_locker_waits_for_the_first() {
        let lock = Rc::new(LocalLock::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        let task = |id: u32| {
            let lock = lock.clone();
            let order = order.clone();
            Box::pin(async move {
                let _guard = lock.lock().await;
                order.borrow_mut().push(id);
                // Hold the lock across a suspension point.
                let mut yielded = false;
                poll_fn(|cx| {
                    if yielded {
                        Poll::Ready(())
                    } else {
                        yielded = true;
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                })
                .await;
                order.borrow_mut().push(id);
            })
        };
        let mut tasks = [Some(task(1)), Some(task(2))];
        futures_lite::future::block_on(poll_fn(|cx| {
            for slot in tasks.iter_mut() {
                if slot
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready())
                {
                    *slot = None;
                }
            }
            if tasks.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        assert_eq!(*order.borrow(), vec![1, 1, 2, 2]);
        assert!(!lock.is_locked());
    }
}
