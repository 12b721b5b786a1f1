//! A single-threaded broadcast signal: tasks wait for "something changed" and re-check their
//! condition. Waiting registers a waker; `notify_all` wakes every waiter.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            notify: self,
            epoch: self.epoch.get(),
        }
    }
}

pub struct Wait<'a> {
    notify: &'a Notify,
    epoch: u64,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            return Poll::Ready(());
        }
        self.notify.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
