//! One glommio executor per shard, pinned to its core, joined into a full channel mesh.

use crate::mesh::{Envelope, MeshReceivers, MeshSenders, MESH_QUEUE_MESSAGES_MAX};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{CpuSet, LocalExecutorBuilder, Placement, PoolPlacement};
use std::future::Future;

/// Bytes of DMA memory glommio registers per executor; counted against RLIMIT_MEMLOCK.
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not start shard executor {shard}: {message}")]
    Start { shard: usize, message: String },
    #[error("shard executor {shard} panicked")]
    Panicked { shard: usize },
}

/// What a shard's main future receives.
pub struct ShardStart<Req: Send + 'static, Resp: Send + 'static> {
    pub senders: MeshSenders<Req, Resp>,
    pub receivers: MeshReceivers<Req, Resp>,
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn available_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
                .collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Threads of each shard's glommio blocking pool, where glommio runs a file's truncate,
/// rename and remove. Bulk CPU work has its own thread ([`crate::helper`]), so these never
/// wait behind it.
pub const BLOCKING_THREADS_PER_SHARD: usize = 1;

/// Where a shard's helper threads ([`crate::helper`], and glommio's blocking pool) may run:
/// on the CPUs no shard is pinned to (the default shard count leaves one), else on any but
/// its own shard's. Never on its shard's CPU: the kernel wakes a thread on its waker's CPU
/// when it can, and the two would then take turns on one core while another idles
/// (measured: an offloading COPY ran slower than one that parsed on the shard).
fn helper_cpus(cpus: &[usize], shard_cpus: &[usize], own_cpu: Option<usize>) -> Vec<usize> {
    let spare: Vec<usize> = cpus
        .iter()
        .copied()
        .filter(|c| !shard_cpus.contains(c))
        .collect();
    if spare.is_empty() {
        cpus.iter()
            .copied()
            .filter(|&c| Some(c) != own_cpu)
            .collect()
    } else {
        spare
    }
}

/// glommio's blocking pool, fenced to `allowed`.
fn pool_placement(allowed: &[usize]) -> PoolPlacement {
    let fence = CpuSet::online().map(|online| online.filter(|l| allowed.contains(&l.cpu)));
    match fence {
        Ok(set) if !set.is_empty() => PoolPlacement::Fenced(BLOCKING_THREADS_PER_SHARD, set),
        _ => PoolPlacement::Unbound(BLOCKING_THREADS_PER_SHARD),
    }
}

/// Shards when neither the flag nor the data dir says: one per available core, less one.
///
/// Why less one: fsync runs on io_uring's io-wq worker threads, TCP receive processing runs in
/// softirq context, and on small machines the clients often run on the same host; all of that
/// needs a core that no shard spins on. Measured on a 2-core VM with redis-benchmark on the same
/// machine: 1 shard beats 2 by 1.1-1.8x on every test (see README, Performance).
pub fn default_shard_count() -> usize {
    available_cpus().len().saturating_sub(1).max(1)
}

/// Starts `shard_count` executors, each pinned to one available CPU (round-robin when there are
/// more shards than CPUs), joins them into a mesh, runs `shard_main` on each, and waits for all.
/// A shard's identity is its mesh peer id (0..shard_count), handed to `shard_main` via the
/// senders' `peer_id()`.
pub fn run_shards<Req, Resp, F, Fut>(shard_count: usize, shard_main: F) -> Result<(), RuntimeError>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(ShardStart<Req, Resp>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    assert!(shard_count >= 1);
    let cpus = available_cpus();
    let mesh = MeshBuilder::<Envelope<Req, Resp>, _>::full(shard_count, MESH_QUEUE_MESSAGES_MAX);
    let mut handles = Vec::with_capacity(shard_count);
    let pinned = shard_count <= cpus.len();
    let shard_cpus = if pinned {
        &cpus[..shard_count]
    } else {
        &cpus[..]
    };
    for index in 0..shard_count {
        let placement = if pinned {
            Placement::Fixed(cpus[index])
        } else {
            Placement::Unbound
        };
        let own_cpu = pinned.then(|| cpus[index]);
        let helper_cpus = helper_cpus(&cpus, shard_cpus, own_cpu);
        let spare_cpus: Vec<usize> = if pinned {
            cpus.iter()
                .copied()
                .filter(|c| !shard_cpus.contains(c))
                .collect()
        } else {
            Vec::new()
        };
        let mesh = mesh.clone();
        let shard_main = shard_main.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{index}"))
            .io_memory(EXECUTOR_IO_MEMORY_BYTES)
            .preempt_timer(PREEMPT_TIMER)
            .blocking_thread_pool_placement(pool_placement(&helper_cpus))
            .spawn(move || async move {
                crate::helper::set_spare_cpus(spare_cpus);
                if let Err(error) =
                    crate::helper::start(format!("shard-{index}-helper"), helper_cpus)
                {
                    // Bulk work then goes to glommio's blocking pool instead.
                    tracing::warn!("shard {index}: no helper thread: {error}");
                }
                let (senders, receivers) = mesh.join().await.expect("joining the shard mesh");
                shard_main(ShardStart { senders, receivers }).await;
            })
            .map_err(|error| RuntimeError::Start {
                shard: index,
                message: error.to_string(),
            })?;
        handles.push(handle);
    }
    for (shard, handle) in handles.into_iter().enumerate() {
        handle
            .join()
            .map_err(|_| RuntimeError::Panicked { shard })?;
    }
    Ok(())
}

/// How long the shard runs tasks before glommio's reactor looks at its rings (timers, file
/// I/O completions). glommio polls them only when no task is runnable or this timer fires, and
/// a shard serving pipelined clients always has a runnable task: at glommio's default, 100 ms,
/// the async-durability WAL sync, a timer, a write and an fdatasync, each waiting for a poll,
/// held the durable position still for up to 1.5 s under RPUSH -P 16, until the WAL's
/// backpressure stopped every writer.
pub const PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(10);

/// Shares of the background task queue (flush, compaction) against the default queue's 1000:
/// background work gets about a fifth of a busy core and all of an idle one.
pub const BACKGROUND_SHARES: usize = 250;

thread_local! {
    static BACKGROUND_QUEUE: std::cell::Cell<Option<glommio::TaskQueueHandle>> =
        const { std::cell::Cell::new(None) };
}

/// This executor's background task queue, created on first use; None outside an executor.
pub fn background_queue() -> Option<glommio::TaskQueueHandle> {
    if let Some(queue) = BACKGROUND_QUEUE.with(|q| q.get()) {
        return Some(queue);
    }
    let executor = std::panic::catch_unwind(glommio::executor).ok()?;
    let queue = executor.create_task_queue(
        glommio::Shares::Static(BACKGROUND_SHARES),
        glommio::Latency::NotImportant,
        "background",
    );
    BACKGROUND_QUEUE.with(|q| q.set(Some(queue)));
    Some(queue)
}
