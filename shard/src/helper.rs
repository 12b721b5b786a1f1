//! Each shard's helper thread: CPU-bound bulk work the shard hands off
//! ([`helios_engine::rt::Runtime::offload`]: parsing a COPY's records, sorting and encoding a
//! bulk load, decoding a bulk scan's blocks), run in the order it was handed over.
//!
//! Why not glommio's blocking pool (`spawn_blocking`): glommio runs a file's truncate,
//! rename and remove on that pool too, so a flush or compaction finishing a table waited
//! behind whole bulk jobs (an encoded 64 MiB table, a sort); and a job's result reached the
//! shard only after its reactor's next turn. Here a job is sent at once, and its result
//! comes back on a channel the job fills itself.

use std::cell::RefCell;
use std::sync::mpsc::{channel, Sender};

/// A job for the helper thread.
pub type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The running shard's helper thread, where [`start`] made one.
    static HELPER: RefCell<Option<Sender<Job>>> = const { RefCell::new(None) };
    /// The CPUs no shard is pinned to, as the running shard's executor was told
    /// ([`set_spare_cpus`]); empty where every CPU has a shard, or outside a shard.
    static SPARE_CPUS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Records, for the calling shard's thread, the CPUs no shard is pinned to.
pub fn set_spare_cpus(cpus: Vec<usize>) {
    SPARE_CPUS.with(|spare| *spare.borrow_mut() = cpus);
}

/// The CPUs no shard is pinned to (see [`set_spare_cpus`]).
pub fn spare_cpus() -> Vec<usize> {
    SPARE_CPUS.with(|spare| spare.borrow().clone())
}

/// Starts the calling shard's helper thread, named `name`, allowed on `cpus` (empty: any).
/// It ends once the shard's thread does (its sender is dropped with the thread's locals).
pub fn start(name: String, cpus: Vec<usize>) -> std::io::Result<()> {
    let (jobs, received) = channel::<Job>();
    std::thread::Builder::new().name(name).spawn(move || {
        pin_to(&cpus);
        while let Ok(job) = received.recv() {
            job();
        }
    })?;
    HELPER.with(|helper| *helper.borrow_mut() = Some(jobs));
    Ok(())
}

/// Hands `job` to the calling shard's helper thread; gives it back where there is none (a
/// thread [`start`] was not called on, or whose helper is gone).
pub fn submit(job: Job) -> Result<(), Job> {
    HELPER.with(|helper| match helper.borrow().as_ref() {
        Some(jobs) => jobs.send(job).map_err(|failed| failed.0),
        None => Err(job),
    })
}

/// Restricts the calling thread to `cpus` (best effort: a failure leaves it unpinned).
fn pin_to(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: `set` is a plain bit set that CPU_ZERO/CPU_SET initialise and
    // sched_setaffinity only reads; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            if cpu < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut set);
            }
        }
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_on_the_helper_and_none_without_one() {
        let job: Job = Box::new(|| {});
        assert!(submit(job).is_err(), "no helper on this thread yet");
        start("test-helper".into(), Vec::new()).unwrap();
        let (done, results) = channel();
        for i in 0..100 {
            let done = done.clone();
            let job: Job = Box::new(move || {
                let name = std::thread::current().name().map(str::to_owned);
                done.send((i, name)).unwrap();
            });
            assert!(submit(job).is_ok());
        }
        let ran: Vec<(i32, Option<String>)> = (0..100).map(|_| results.recv().unwrap()).collect();
        assert!(ran.iter().enumerate().all(|(n, (i, _))| n as i32 == *i));
        assert!(ran
            .iter()
            .all(|(_, name)| name.as_deref() == Some("test-helper")));
    }
}
