//! The engine's [`FileSystem`] over `std::fs`, for the offline commands (`helios inspect`,
//! `helios check`): blocking positional I/O (`FileExt::read_at`/`write_at`), no glommio, no
//! io_uring, no O_DIRECT. The engine's futures complete on their first poll here, so
//! `futures_lite::future::block_on` drives them.
//!
//! [`StdFs::read_only`] is what the commands use: files are opened `O_RDONLY` and every call that
//! would change something (create, write, truncate, remove, rename, sync) fails with
//! `PermissionDenied`, so a check can never cut a torn tail or remove a file behind a server's
//! back. [`StdFs::writable`] allows writes (plain `pwrite`, no alignment needed without
//! O_DIRECT, though the engine aligns them anyway); tests use it to build files with the
//! engine's writers.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use helios_engine::fs::{DmaFile, FileSystem};

#[derive(Clone, Copy, Debug)]
pub struct StdFs {
    writable: bool,
}

impl StdFs {
    /// Opens files read-only; every mutating call fails.
    pub fn read_only() -> StdFs {
        StdFs { writable: false }
    }

    /// Allows writes (tests build files with the engine's writers through it).
    #[cfg(test)]
    pub fn writable() -> StdFs {
        StdFs { writable: true }
    }

    fn check_writable(&self, what: &str, path: &Path) -> io::Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(read_only_error(what, path))
    }
}

fn read_only_error(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what} {}: the offline tools are read-only", path.display()),
    )
}

pub struct StdFile {
    file: File,
    writable: bool,
}

impl StdFile {
    fn check_writable(&self, what: &str) -> io::Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(read_only_error(what, Path::new("(open file)")))
    }
}

impl DmaFile for StdFile {
    type Buf = Vec<u8>;

    fn alloc(&self, len: usize) -> Vec<u8> {
        vec![0; len]
    }

    async fn write_at(&self, buf: Vec<u8>, pos: u64) -> io::Result<usize> {
        self.check_writable("write")?;
        self.file.write_all_at(&buf, pos)?;
        Ok(buf.len())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        // Never allocate past the end of the file, whatever length a damaged file asks for.
        let remaining = self.file.metadata()?.len().saturating_sub(pos);
        let len = len.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match self.file.read_at(&mut buf[filled..], pos + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    async fn sync(&self) -> io::Result<()> {
        self.check_writable("sync")?;
        self.file.sync_data()
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.check_writable("truncate")?;
        self.file.set_len(len)
    }
}

impl FileSystem for StdFs {
    type File = StdFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<StdFile> {
        if create {
            self.check_writable("create", path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(self.writable)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(StdFile {
            file,
            writable: self.writable,
        })
    }

    async fn open_write_through(&self, path: &Path) -> io::Result<StdFile> {
        self.check_writable("open for writing", path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(path)?;
        Ok(StdFile {
            file,
            writable: true,
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check_writable("create", path)?;
        std::fs::create_dir_all(path)
    }

    async fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            // Names that are not UTF-8 are none of the engine's files.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.check_writable("remove", path)?;
        std::fs::remove_file(path)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_writable("rename", from)?;
        std::fs::rename(from, to)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check_writable("sync", path)?;
        File::open(path)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn read_only_refuses_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello world").unwrap();
        let fs = StdFs::read_only();
        block_on(async {
            let file = fs.open(&path, false).await.unwrap();
            assert_eq!(file.read_at(6, 100).await.unwrap(), b"world");
            assert_eq!(file.size().await.unwrap(), 11);
            assert!(file.truncate(0).await.is_err());
            assert!(file.write_at(file.alloc(4096), 0).await.is_err());
            assert!(fs.open(&dir.path().join("new"), true).await.is_err());
            assert!(fs.remove(&path).await.is_err());
            assert_eq!(fs.list(dir.path()).await.unwrap(), ["f"]);
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    }

    #[test]
    fn writable_writes_positionally() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = StdFs::writable();
        block_on(async {
            let file = fs.open(&path, true).await.unwrap();
            let mut buf = file.alloc(4096);
            buf[..3].copy_from_slice(b"abc");
            assert_eq!(file.write_at(buf, 4096).await.unwrap(), 4096);
            assert_eq!(file.size().await.unwrap(), 8192);
            assert_eq!(file.read_at(4096, 3).await.unwrap(), b"abc");
            file.truncate(4099).await.unwrap();
            file.sync().await.unwrap();
        });
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4099);
    }
}
