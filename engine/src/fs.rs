//! The file-system seam. The engine reaches files only through these traits so that the same
//! WAL and recovery code runs over glommio DMA files in production (`helios-shard`) and over the
//! in-memory, fault-injecting file system in tests (and, later, the simulator).
//!
//! Writes are positional and must be aligned: `pos` and the buffer length are multiples of
//! [`DmaFile::ALIGN`], as O_DIRECT requires. Reads may be unaligned.
#![allow(async_fn_in_trait)]

use std::io;
use std::path::{Path, PathBuf};

/// An open file used for positional, aligned (O_DIRECT-style) I/O.
pub trait DmaFile {
    /// A buffer the file can write from without copying (glommio's `DmaBuffer`).
    type Buf: AsRef<[u8]> + AsMut<[u8]>;
    /// Required alignment of write offsets and lengths.
    const ALIGN: usize = 4096;

    /// Allocates a zero-filled buffer of `len` bytes (`len` a multiple of `ALIGN`).
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Writes the whole buffer at `pos` (aligned); returns the bytes written.
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<usize>;
    /// Reads up to `len` bytes at `pos`; a short result means end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Makes every completed write durable (fdatasync).
    async fn sync(&self) -> io::Result<()>;
    /// The file's current size in bytes.
    async fn size(&self) -> io::Result<u64>;
    /// Cuts or extends the file to `len` bytes.
    async fn truncate(&self, len: u64) -> io::Result<()>;
}

/// A directory tree of [`DmaFile`]s.
pub trait FileSystem {
    type File: DmaFile;

    /// Opens `path` for reading and writing, creating it when `create` is set.
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    /// Opens the existing file `path` so that each write through this handle is durable when
    /// it completes (O_DSYNC): it needs no `sync`. Such a write makes nothing else durable:
    /// a device with FUA writes it through its cache and flushes nothing written before it
    /// through other handles.
    async fn open_write_through(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates `path` and its parents.
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Lists the file names (not paths) directly inside `path`, sorted.
    async fn list(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Removes the file at `path`.
    async fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file within a directory (atomically replacing `to`); durable after `sync_dir`.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created or removed files) durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// Joins a directory and a file name; a helper so call sites read plainly.
pub fn child(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
