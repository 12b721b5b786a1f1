//! In-memory file system with fault injection: the test (and simulator) twin of the glommio DMA
//! file system. Single-threaded and cheap to clone (`Rc<RefCell<..>>` inside).
//!
//! Durability model:
//! - Each file keeps a *durable* image (what survives a crash) and the *current* image (what reads
//!   see), plus the list of writes and truncations issued since the last `sync`. `sync` applies
//!   them to the durable image.
//! - [`MemFs::crash`] models a process/power crash. [`CrashMode::LoseAll`] reverts every file to
//!   its durable image. [`CrashMode::KeepPrefix`] keeps, per file, a random prefix of the pending
//!   operations; the first operation not kept whole may land partially, in whole 512-byte sectors,
//!   and its last landed sector may be torn: new bytes up to a random cut, garbage after it. Bytes
//!   that a write leaves unchanged (same value as before) keep their value even in a torn sector:
//!   this is the model a log that rewrites its partial tail block relies on (as PostgreSQL's WAL
//!   does), i.e. rewriting a byte with its own value does not damage it.
//! - A write through a handle from [`FileSystem::open_write_through`] (O_DSYNC) is pending
//!   while in flight (a crash then may keep it torn) and durable once it completes. It makes
//!   nothing else durable, as a FUA write does not: older pending writes keep their place (the
//!   bytes they share with it read as its bytes if they land), unless a truncation is pending,
//!   when it syncs the whole file (a write after a size change syncs metadata, as fdatasync).
//! - Directory entries are durable at once: a created file survives a crash (with its durable
//!   image, possibly empty), and a removed file stays removed. `sync_dir` only counts calls.
//! - File handles opened before a crash are stale afterwards: every operation on them fails, so a
//!   test cannot accidentally keep using a "dead process's" handle.
//!
//! Faults: [`MemFs::fail_next`] makes the next operation of a kind fail with a given error kind;
//! [`MemFs::set_capacity_bytes`] bounds the total size of all files (a write that would grow past
//! it fails with `ErrorKind::StorageFull`). Writes assert O_DIRECT alignment (4096) of position and
//! length.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::fs::{DmaFile, FileSystem};

/// Alignment required of write positions and lengths (as O_DIRECT requires).
pub const MEMFS_ALIGN: usize = 4096;
const _: () = assert!(MEMFS_ALIGN.is_power_of_two());
/// Size of the unit a crash can tear.
pub const MEMFS_SECTOR_BYTES: usize = 512;
/// Bound on one write or read, as a sanity limit on buffers.
pub const MEMFS_IO_BYTES_MAX: usize = 256 << 20;

/// How a simulated crash treats data written since the last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write and truncation is lost.
    LoseAll,
    /// A random (seeded) prefix of each file's unsynced operations survives, possibly ending in a
    /// partially written operation whose last sector is torn.
    KeepPrefix { seed: u64 },
}

/// An operation kind that [`MemFs::fail_next`] can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultOp {
    Open,
    Write,
    Read,
    Sync,
    Truncate,
    Remove,
    SyncDir,
}

#[derive(Debug, Clone)]
enum PendingOp {
    /// `id`: unique in the file system, so a write-through write finds itself in the list.
    Write {
        id: u64,
        pos: u64,
        data: Vec<u8>,
    },
    Truncate {
        len: u64,
    },
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

#[derive(Debug, Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    /// path → inode id.
    names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    inode_next: u64,
    /// Incremented on every crash; handles of an older generation are stale.
    generation: u64,
    faults: BTreeMap<FaultOp, VecDeque<io::ErrorKind>>,
    capacity_bytes: Option<u64>,
    yield_on_io: bool,
    sync_count: u64,
    write_through_count: u64,
    write_count: u64,
    /// The id of the next pending write.
    write_id_next: u64,
    read_count: u64,
    sync_dir_count: u64,
}

/// The in-memory file system. Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    state: Rc<RefCell<State>>,
}

/// An open file of a [`MemFs`].
#[derive(Debug)]
pub struct MemFile {
    state: Rc<RefCell<State>>,
    inode: u64,
    generation: u64,
    path: PathBuf,
    /// Opened with [`FileSystem::open_write_through`]: each write is durable on completion.
    write_through: bool,
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// Simulates a crash: unsynced data is lost as `mode` says; open handles become stale.
    pub fn crash(&self, mode: CrashMode) {
        let mut state = self.state.borrow_mut();
        let mut rng = match mode {
            CrashMode::LoseAll => None,
            CrashMode::KeepPrefix { seed } => Some(Rng::new(seed)),
        };
        for inode in state.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            if let Some(rng) = rng.as_mut() {
                crash_keep_prefix(&mut inode.durable, pending, rng);
            }
            inode.current = inode.durable.clone();
        }
        state.generation += 1;
    }

    /// Simulates a crash into a *separate* file system: returns a new `MemFs` holding what
    /// survives (as [`MemFs::crash`] would leave it), while this one carries on unchanged. Tasks
    /// of the crashed process that are still running keep writing into this one, where their
    /// writes can no longer reach the restarted process — as after a real crash.
    pub fn crash_fork(&self, mode: CrashMode) -> MemFs {
        let image = {
            let state = self.state.borrow();
            State {
                dirs: state.dirs.clone(),
                names: state.names.clone(),
                inodes: state
                    .inodes
                    .iter()
                    .map(|(id, inode)| {
                        let copy = Inode {
                            durable: inode.durable.clone(),
                            current: inode.current.clone(),
                            pending: inode.pending.clone(),
                        };
                        (*id, copy)
                    })
                    .collect(),
                inode_next: state.inode_next,
                yield_on_io: state.yield_on_io,
                ..State::default()
            }
        };
        let fork = MemFs {
            state: Rc::new(RefCell::new(image)),
        };
        fork.crash(mode);
        fork
    }

    /// Makes the next operation of kind `op` fail with `kind` (queued: call twice for two failures).
    pub fn fail_next(&self, op: FaultOp, kind: io::ErrorKind) {
        self.state
            .borrow_mut()
            .faults
            .entry(op)
            .or_default()
            .push_back(kind);
    }

    /// Drops every queued injected fault.
    pub fn clear_faults(&self) {
        self.state.borrow_mut().faults.clear();
    }

    /// Bounds the total bytes of all files (`None`: unbounded).
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.state.borrow_mut().capacity_bytes = capacity_bytes;
    }

    /// When set, every file operation yields to the executor once before completing, so that
    /// concurrent tasks interleave at I/O points as they would on a real disk.
    pub fn set_yield_on_io(&self, yield_on_io: bool) {
        self.state.borrow_mut().yield_on_io = yield_on_io;
    }

    /// Flips one bit of a file, in both the durable and the current image (corruption at rest).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) {
        assert!(bit < 8);
        let mut state = self.state.borrow_mut();
        let id = *state.names.get(path).expect("flip_bit: no such file");
        let inode = state.inodes.get_mut(&id).expect("inode of a name");
        let offset = usize::try_from(offset).expect("offset fits usize");
        assert!(
            offset < inode.current.len(),
            "flip_bit: offset past end of file"
        );
        inode.current[offset] ^= 1 << bit;
        if offset < inode.durable.len() {
            inode.durable[offset] ^= 1 << bit;
        }
    }

    /// The current (readable) image of a file, or `None` if it does not exist.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        let id = state.names.get(path)?;
        Some(state.inodes[id].current.clone())
    }

    /// Replaces a file's durable and current image (dropping pending operations); creates it if
    /// needed. For tests that construct torn or corrupt files by hand.
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = self.state.borrow_mut();
        let id = match state.names.get(path) {
            Some(id) => *id,
            None => state.create_inode(path),
        };
        let inode = state.inodes.get_mut(&id).expect("inode of a name");
        inode.durable = bytes.clone();
        inode.current = bytes;
        inode.pending.clear();
    }

    /// Number of successful file syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.state.borrow().sync_count
    }

    /// Number of successful writes through write-through handles so far (each a sync of its
    /// own bytes).
    pub fn write_through_count(&self) -> u64 {
        self.state.borrow().write_through_count
    }

    /// Number of successful writes so far.
    /// Reads issued so far (tests of read-ahead).
    pub fn read_count(&self) -> u64 {
        self.state.borrow().read_count
    }

    pub fn write_count(&self) -> u64 {
        self.state.borrow().write_count
    }

    /// Number of successful directory syncs so far.
    pub fn sync_dir_count(&self) -> u64 {
        self.state.borrow().sync_dir_count
    }

    /// Total bytes of all files' current images.
    pub fn used_bytes(&self) -> u64 {
        self.state.borrow().used_bytes()
    }

    async fn io_point(&self, op: Option<FaultOp>) -> io::Result<()> {
        io_point(&self.state, op).await
    }

    async fn open_handle(
        &self,
        path: &Path,
        create: bool,
        write_through: bool,
    ) -> io::Result<MemFile> {
        self.io_point(Some(FaultOp::Open)).await?;
        let mut state = self.state.borrow_mut();
        let id = match state.names.get(path) {
            Some(id) => *id,
            None if create => {
                let parent = path.parent().unwrap_or(Path::new(""));
                if !state.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                state.create_inode(path)
            }
            None => return Err(not_found(path)),
        };
        Ok(MemFile {
            state: self.state.clone(),
            inode: id,
            generation: state.generation,
            path: path.to_path_buf(),
            write_through,
        })
    }
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    fn take_fault(&mut self, op: FaultOp) -> Option<io::ErrorKind> {
        self.faults.get_mut(&op)?.pop_front()
    }

    fn create_inode(&mut self, path: &Path) -> u64 {
        let id = self.inode_next;
        self.inode_next += 1;
        self.inodes.insert(id, Inode::default());
        self.names.insert(path.to_path_buf(), id);
        id
    }
}

/// Yields once when configured, then applies an injected fault for `op` if one is queued.
async fn io_point(state: &Rc<RefCell<State>>, op: Option<FaultOp>) -> io::Result<()> {
    let yield_on_io = state.borrow().yield_on_io;
    if yield_on_io {
        YieldOnce(false).await;
    }
    if let Some(op) = op {
        if let Some(kind) = state.borrow_mut().take_fault(op) {
            return Err(io::Error::new(
                kind,
                format!("memfs: injected {op:?} fault"),
            ));
        }
    }
    Ok(())
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("memfs: {} not found", path.display()),
    )
}

impl FileSystem for MemFs {
    type File = MemFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<MemFile> {
        self.open_handle(path, create, false).await
    }

    async fn open_write_through(&self, path: &Path) -> io::Result<MemFile> {
        self.open_handle(path, false, true).await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.io_point(None).await?;
        let mut state = self.state.borrow_mut();
        for ancestor in path.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    async fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        self.io_point(None).await?;
        let state = self.state.borrow();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = state
            .names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.io_point(Some(FaultOp::Remove)).await?;
        let mut state = self.state.borrow_mut();
        let id = state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.inodes.remove(&id);
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.io_point(None).await?;
        let mut state = self.state.borrow_mut();
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        if let Some(replaced) = state.names.insert(to.to_path_buf(), id) {
            state.inodes.remove(&replaced);
        }
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.io_point(Some(FaultOp::SyncDir)).await?;
        let mut state = self.state.borrow_mut();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.sync_dir_count += 1;
        Ok(())
    }
}

impl MemFile {
    /// Runs `f` on this handle's inode, failing if the handle is stale or the file was removed.
    fn with_inode<R>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<R>) -> io::Result<R> {
        let mut state = self.state.borrow_mut();
        if state.generation != self.generation {
            return Err(io::Error::other(format!(
                "memfs: stale handle for {} (opened before a crash)",
                self.path.display()
            )));
        }
        if !state.inodes.contains_key(&self.inode) {
            return Err(not_found(&self.path));
        }
        f(&mut state, self.inode)
    }
}

impl DmaFile for MemFile {
    type Buf = Vec<u8>;

    fn alloc(&self, len: usize) -> Vec<u8> {
        assert!(aligned(len as u64), "alloc length {len} not aligned");
        assert!(len <= MEMFS_IO_BYTES_MAX);
        vec![0; len]
    }

    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<usize> {
        // O_DIRECT alignment is a programming error, not an I/O error.
        assert!(aligned(pos), "write position {pos} not aligned");
        assert!(
            aligned(buf.len() as u64),
            "write length {} not aligned",
            buf.len()
        );
        assert!(buf.len() <= MEMFS_IO_BYTES_MAX);
        io_point(&self.state, Some(FaultOp::Write)).await?;
        let (len, write_id) = self.with_inode(|state, id| {
            let end = pos + buf.len() as u64;
            let size = state.inodes[&id].current.len() as u64;
            if let Some(capacity) = state.capacity_bytes {
                let grow = end.saturating_sub(size);
                if state.used_bytes() + grow > capacity {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "memfs: disk full",
                    ));
                }
            }
            let write_id = state.write_id_next;
            state.write_id_next += 1;
            let inode = state.inodes.get_mut(&id).expect("checked");
            apply_write(&mut inode.current, pos, &buf);
            let len = buf.len();
            inode.pending.push(PendingOp::Write {
                id: write_id,
                pos,
                data: buf,
            });
            state.write_count += 1;
            Ok((len, write_id))
        })?;
        if self.write_through {
            // The write is in flight until here: a crash meanwhile may keep it torn.
            io_point(&self.state, Some(FaultOp::Sync)).await?;
            self.with_inode(|state, id| {
                let inode = state.inodes.get_mut(&id).expect("checked");
                inode.make_write_durable(write_id);
                state.write_through_count += 1;
                Ok(())
            })?;
        }
        Ok(len)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        assert!(len <= MEMFS_IO_BYTES_MAX);
        io_point(&self.state, Some(FaultOp::Read)).await?;
        self.state.borrow_mut().read_count += 1;
        self.with_inode(|state, id| {
            let current = &state.inodes[&id].current;
            let start = usize::try_from(pos)
                .unwrap_or(usize::MAX)
                .min(current.len());
            let end = start.saturating_add(len).min(current.len());
            Ok(current[start..end].to_vec())
        })
    }

    async fn sync(&self) -> io::Result<()> {
        io_point(&self.state, Some(FaultOp::Sync)).await?;
        self.with_inode(|state, id| {
            let inode = state.inodes.get_mut(&id).expect("checked");
            for op in inode.pending.drain(..) {
                apply_op(&mut inode.durable, &op);
            }
            debug_assert_eq!(inode.durable, inode.current);
            state.sync_count += 1;
            Ok(())
        })
    }

    async fn size(&self) -> io::Result<u64> {
        io_point(&self.state, None).await?;
        self.with_inode(|state, id| Ok(state.inodes[&id].current.len() as u64))
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        io_point(&self.state, Some(FaultOp::Truncate)).await?;
        self.with_inode(|state, id| {
            let size = state.inodes[&id].current.len() as u64;
            if let Some(capacity) = state.capacity_bytes {
                if state.used_bytes() + len.saturating_sub(size) > capacity {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "memfs: disk full",
                    ));
                }
            }
            let inode = state.inodes.get_mut(&id).expect("checked");
            let op = PendingOp::Truncate { len };
            apply_op(&mut inode.current, &op);
            inode.pending.push(op);
            Ok(())
        })
    }
}

impl Inode {
    /// Makes the pending write `write_id` durable, as a write-through (O_DSYNC) write is when it
    /// completes; nothing if a sync already did.
    fn make_write_durable(&mut self, write_id: u64) {
        let is_it = |op: &PendingOp| matches!(op, PendingOp::Write { id, .. } if *id == write_id);
        let Some(index) = self.pending.iter().position(is_it) else {
            return;
        };
        if self
            .pending
            .iter()
            .any(|op| matches!(op, PendingOp::Truncate { .. }))
        {
            for op in self.pending.drain(..) {
                apply_op(&mut self.durable, &op);
            }
            return;
        }
        let PendingOp::Write { pos, data, .. } = self.pending.remove(index) else {
            unreachable!("found as a write");
        };
        // An older write that lands after a crash must not bring back what this one replaced.
        for older in &mut self.pending[..index] {
            if let PendingOp::Write {
                pos: older_pos,
                data: older_data,
                ..
            } = older
            {
                copy_overlap(*older_pos, older_data, pos, &data);
            }
        }
        apply_write(&mut self.durable, pos, &data);
    }
}

/// Copies into `dst` (the bytes at `dst_pos`) the part of `src` (at `src_pos`) they share.
fn copy_overlap(dst_pos: u64, dst: &mut [u8], src_pos: u64, src: &[u8]) {
    let start = dst_pos.max(src_pos);
    let end = (dst_pos + dst.len() as u64).min(src_pos + src.len() as u64);
    if start >= end {
        return;
    }
    let (len, in_dst, in_src) = (
        (end - start) as usize,
        (start - dst_pos) as usize,
        (start - src_pos) as usize,
    );
    dst[in_dst..in_dst + len].copy_from_slice(&src[in_src..in_src + len]);
}

/// Whether `x` is a multiple of [`MEMFS_ALIGN`] (a power of two).
fn aligned(x: u64) -> bool {
    x & (MEMFS_ALIGN as u64 - 1) == 0
}

fn apply_write(image: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let pos = usize::try_from(pos).expect("position fits usize");
    let end = pos + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[pos..end].copy_from_slice(data);
}

fn apply_op(image: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { pos, data, .. } => apply_write(image, *pos, data),
        PendingOp::Truncate { len } => {
            image.resize(usize::try_from(*len).expect("length fits usize"), 0)
        }
    }
}

/// Applies a random prefix of `pending` to `durable`; the first operation not kept whole may land
/// partially (whole sectors, then possibly one torn sector).
fn crash_keep_prefix(durable: &mut Vec<u8>, pending: Vec<PendingOp>, rng: &mut Rng) {
    let kept = rng.below(pending.len() as u64 + 1) as usize;
    let mut ops = pending.into_iter();
    for op in ops.by_ref().take(kept) {
        apply_op(durable, &op);
    }
    let Some(PendingOp::Write { pos, data, .. }) = ops.next() else {
        return; // Nothing left, or a truncation: those land whole or not at all.
    };
    let sectors = data.len() / MEMFS_SECTOR_BYTES;
    if sectors == 0 {
        return;
    }
    let sectors_kept = rng.below(sectors as u64) as usize; // < sectors: never the whole write
    apply_write(durable, pos, &data[..sectors_kept * MEMFS_SECTOR_BYTES]);
    if rng.below(2) == 0 {
        return;
    }
    // Tear the next sector: new bytes up to a cut, garbage after it, unchanged bytes unchanged.
    let sector_start = sectors_kept * MEMFS_SECTOR_BYTES;
    let sector_pos = pos as usize + sector_start;
    if durable.len() < sector_pos + MEMFS_SECTOR_BYTES {
        durable.resize(sector_pos + MEMFS_SECTOR_BYTES, 0);
    }
    let cut = rng.below(MEMFS_SECTOR_BYTES as u64) as usize;
    for i in 0..MEMFS_SECTOR_BYTES {
        let new = data[sector_start + i];
        let byte = &mut durable[sector_pos + i];
        if *byte != new {
            *byte = if i < cut { new } else { rng.next() as u8 };
        }
    }
}

/// A small seeded generator (splitmix64); the simulator needs determinism, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn setup() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        block_on(fs.create_dir_all(&dir)).unwrap();
        (fs, dir)
    }

    fn block(fill: u8) -> Vec<u8> {
        vec![fill; MEMFS_ALIGN]
    }

    #[test]
    fn unsynced_writes_lost_on_crash() {
        let (fs, dir) = setup();
        let path = dir.join("f");
        let f = block_on(async {
            let f = fs.open(&path, true).await.unwrap();
            f.write_at(block(1), 0).await.unwrap();
            f.sync().await.unwrap();
            f.write_at(block(2), 4096).await.unwrap();
            assert_eq!(f.size().await.unwrap(), 8192);
            f
        });
        fs.crash(CrashMode::LoseAll);
        assert_eq!(fs.file_bytes(&path).unwrap(), block(1));
        // Handles from before the crash are stale; a fresh one sees the durable image.
        assert!(block_on(f.size()).is_err());
        let size = block_on(async { fs.open(&path, false).await.unwrap().size().await.unwrap() });
        assert_eq!(size, 4096);
    }

    #[test]
    fn keep_prefix_keeps_synced_and_unchanged_bytes() {
        for seed in 0..200 {
            let (fs, dir) = setup();
            let path = dir.join("f");
            let synced = block(7);
            block_on(async {
                let f = fs.open(&path, true).await.unwrap();
                f.write_at(synced.clone(), 0).await.unwrap();
                f.sync().await.unwrap();
                let mut rewrite = synced.clone();
                rewrite[2048..].fill(9);
                f.write_at(rewrite, 0).await.unwrap();
                f.write_at(block(3), 4096).await.unwrap();
            });
            fs.crash(CrashMode::KeepPrefix { seed });
            let bytes = fs.file_bytes(&path).unwrap();
            assert_eq!(&bytes[..2048], &synced[..2048], "seed {seed}");
        }
    }

    /// A write-through write is durable on completion, and only it: an older plain write to
    /// another block is lost, and one to the same block never brings back what it replaced.
    #[test]
    fn write_through_writes_are_durable_alone() {
        for seed in 0..200 {
            let (fs, dir) = setup();
            let path = dir.join("f");
            block_on(async {
                let plain = fs.open(&path, true).await.unwrap();
                plain.write_at(block(1), 0).await.unwrap();
                plain.write_at(block(2), 4096).await.unwrap();
                let through = fs.open_write_through(&path).await.unwrap();
                through.write_at(block(3), 4096).await.unwrap();
            });
            assert_eq!(fs.write_through_count(), 1);
            assert_eq!(fs.sync_count(), 0);
            let mode = if seed == 0 {
                CrashMode::LoseAll
            } else {
                CrashMode::KeepPrefix { seed }
            };
            fs.crash(mode);
            let bytes = fs.file_bytes(&path).unwrap();
            assert_eq!(bytes.len(), 8192, "seed {seed}");
            assert_eq!(&bytes[4096..], &block(3)[..], "seed {seed}");
            if seed == 0 {
                assert_eq!(&bytes[..4096], &block(0)[..], "the plain write is lost");
            }
        }
    }

    /// A write-through write in flight when the process crashes is not durable.
    #[test]
    fn write_through_writes_in_flight_are_not_durable() {
        let (fs, dir) = setup();
        let path = dir.join("f");
        block_on(fs.open(&path, true)).unwrap();
        fs.set_yield_on_io(true);
        let through = block_on(fs.open_write_through(&path)).unwrap();
        let mut write = Box::pin(through.write_at(block(5), 0));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        // Past the first yield the write is applied but not yet complete.
        assert!(write.as_mut().poll(&mut cx).is_pending());
        assert!(write.as_mut().poll(&mut cx).is_pending());
        fs.crash(CrashMode::LoseAll);
        assert!(matches!(write.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
        assert_eq!(fs.file_bytes(&path).unwrap(), Vec::<u8>::new());
    }

    /// A write-through write after a pending truncation syncs the whole file, as O_DSYNC
    /// syncs the metadata a size change dirtied.
    #[test]
    fn write_through_after_truncate_syncs_everything() {
        let (fs, dir) = setup();
        let path = dir.join("f");
        block_on(async {
            let plain = fs.open(&path, true).await.unwrap();
            plain.write_at(block(1), 0).await.unwrap();
            plain.truncate(16384).await.unwrap();
            let through = fs.open_write_through(&path).await.unwrap();
            through.write_at(block(3), 4096).await.unwrap();
        });
        fs.crash(CrashMode::LoseAll);
        let bytes = fs.file_bytes(&path).unwrap();
        assert_eq!(bytes.len(), 16384);
        assert_eq!(&bytes[..4096], &block(1)[..]);
        assert_eq!(&bytes[4096..8192], &block(3)[..]);
    }

    #[test]
    fn faults_and_capacity() {
        let (fs, dir) = setup();
        let path = dir.join("f");
        block_on(async {
            let f = fs.open(&path, true).await.unwrap();
            fs.fail_next(FaultOp::Sync, io::ErrorKind::Other);
            f.write_at(block(1), 0).await.unwrap();
            assert!(f.sync().await.is_err());
            f.sync().await.unwrap();
            fs.set_capacity_bytes(Some(8192));
            f.write_at(block(1), 4096).await.unwrap();
            let err = f.write_at(block(1), 8192).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::StorageFull);
            assert_eq!(fs.list(&dir).await.unwrap(), vec!["f".to_string()]);
        });
        assert_eq!(fs.sync_count(), 1);
    }

    #[test]
    #[should_panic(expected = "not aligned")]
    fn unaligned_write_panics() {
        let (fs, dir) = setup();
        block_on(async {
            let f = fs.open(&dir.join("f"), true).await.unwrap();
            f.write_at(block(1), 512).await.unwrap();
        });
    }
}
