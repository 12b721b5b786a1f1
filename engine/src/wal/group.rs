//! Group commit sizing: how long a sync flush waits for the writers it expects.
//!
//! Without waiting, concurrent writers settle into two alternating halves: while one flush's
//! fdatasync runs, the writers it does not cover append and wait; when it ends they start the
//! next flush at once, just before the writers it released come back with their next record.
//! Each fdatasync then covers half the writers (measured: 16 PostgreSQL clients inserting, 7.6
//! records per fdatasync, ~3 ms each on the 2-core VM's disk). So a sync flush that starts
//! right after another one waits, briefly, for the writers that one released: its group is
//! expected to be the records already waiting plus those released. It stops waiting as soon
//! as that many records are appended, or after the recent flush duration (at most
//! [`GROUP_WAIT_US_MAX`]): waiting one flush's time for the whole group does at worst as well
//! as the two halves' alternation, so a writer that does not come back costs one wait, and the
//! expectation is capped by what arrived the last time a wait ran out (raised by one after
//! each flush that reached the cap), so a workload that mixes reads in does not wait every
//! time, and the cap climbs back when the writers do come.
//! A lone writer never waits: the group it is expected to form is itself.
//! PostgreSQL's `commit_delay` and MySQL's `binlog_group_commit_sync_delay` are the same
//! trade, tuned by hand.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Longest a sync flush waits for its expected group, µs.
pub const GROUP_WAIT_US_MAX: u64 = 2000;
/// Bound on the expected group size (records), far above any connection count per shard.
const GROUP_RECORDS_MAX: usize = 1 << 16;

/// The runtime's monotonic clock and timer, which a waiting flush needs (the engine reaches
/// time only through its runtime seam). Without one, flushes never wait.
pub trait GroupCommitClock {
    /// Microseconds since an arbitrary start; never decreases.
    fn now_us(&self) -> u64;
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// The group-commit bookkeeping inside the WAL's state.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// Records appended since the last flush took the buffer.
    pub(super) pending_records: usize,
    /// Records the next sync flush expects to cover (0: none expected, do not wait).
    target_records: usize,
    /// Upper bound on `target_records`: what arrived when a wait last ran out, plus one per
    /// flush since that took at least the cap.
    cap_records: usize,
    /// Moving average of a sync flush's write + fdatasync time, µs (0: none measured yet).
    flush_us_avg: u64,
    /// The waiting flush, woken by the append that completes its group.
    filler: Option<Waker>,
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            cap_records: GROUP_RECORDS_MAX,
            ..Group::default()
        }
    }

    /// One record appended.
    pub(super) fn appended(&mut self) {
        self.pending_records += 1;
        if self.pending_records >= self.target_records {
            if let Some(waker) = self.filler.take() {
                waker.wake();
            }
        }
    }

    /// How long a flush about to take the buffer should wait for more records (None: not).
    pub(super) fn wait_budget(&self) -> Option<Duration> {
        let budget_us = self.flush_us_avg.min(GROUP_WAIT_US_MAX);
        (budget_us > 0 && self.pending_records < self.target_records)
            .then(|| Duration::from_micros(budget_us))
    }

    /// A wait ended, filled or not: one that ran out caps the groups to expect.
    pub(super) fn wait_ended(&mut self) {
        self.filler = None;
        if self.pending_records < self.target_records {
            self.cap_records = self.pending_records.max(1);
        }
    }

    /// A sync flush that covered `taken` records ended after `flush_us`: the writers it
    /// releases are expected back, with those that appended meanwhile, for the next one.
    pub(super) fn flushed(&mut self, taken: usize, flush_us: u64) {
        self.flush_us_avg = match self.flush_us_avg {
            0 => flush_us,
            avg => (avg * 7 + flush_us) / 8,
        };
        if taken >= self.cap_records {
            // Probe for a larger group: the writers a timed-out wait missed may be back.
            self.cap_records = (self.cap_records + 1).min(GROUP_RECORDS_MAX);
        }
        self.target_records = (taken + self.pending_records).min(self.cap_records);
    }
}

/// Resolves once the expected group has appended, or the timer runs out.
pub(super) struct GroupFilled<'a> {
    pub(super) group: &'a std::cell::RefCell<super::State>,
    pub(super) timer: Pin<Box<dyn Future<Output = ()>>>,
}

impl Future for GroupFilled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut state = self.group.borrow_mut();
            if state.group.pending_records >= state.group.target_records {
                return Poll::Ready(());
            }
            state.group.filler = Some(cx.waker().clone());
        }
        self.timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(group: &mut Group) {
        group.flushed(1, 2000);
        group.pending_records = 0;
    }

    #[test]
    fn a_lone_writer_never_waits() {
        let mut group = Group::new();
        measured(&mut group);
        for _ in 0..3 {
            group.appended();
            assert_eq!(group.wait_budget(), None);
            group.pending_records = 0;
            group.flushed(1, 2000);
        }
    }

    #[test]
    fn alternating_halves_wait_for_the_released_writers() {
        let mut group = Group::new();
        measured(&mut group);
        // A flush took 8 records while 8 more arrived: the next expects all 16.
        group.pending_records = 8;
        group.flushed(8, 2000);
        assert_eq!(group.wait_budget(), Some(Duration::from_micros(2000)));
        for _ in 0..8 {
            group.appended();
        }
        assert_eq!(group.wait_budget(), None);
        group.wait_ended();
        assert_eq!(group.cap_records, GROUP_RECORDS_MAX);
    }

    #[test]
    fn a_wait_that_runs_out_caps_the_next_expectation() {
        let mut group = Group::new();
        group.pending_records = 8;
        group.flushed(8, 400);
        assert_eq!(group.wait_budget(), Some(Duration::from_micros(400)));
        for _ in 0..3 {
            group.appended();
        }
        group.wait_ended();
        assert_eq!(group.cap_records, 11);
        group.pending_records = 0;
        // Each flush that reaches the cap raises it by one, waiting or not.
        group.flushed(11, 400);
        assert_eq!(group.cap_records, 12);
        assert_eq!(group.target_records, 11);
        group.pending_records = 12;
        group.flushed(12, 400);
        assert_eq!((group.cap_records, group.target_records), (13, 13));
    }
}
