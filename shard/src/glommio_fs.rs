//! The production file system: glommio DMA files (O_DIRECT, io_uring), behind the engine's seam.

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use helios_engine::fs;
use std::io;
use std::path::Path;

#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioFs;

pub struct GlommioFile {
    file: DmaFile,
}

/// glommio's errors carry context; the engine speaks `std::io::Error`.
fn to_io(error: glommio::GlommioError<()>) -> io::Error {
    match error {
        glommio::GlommioError::IoError(error) => error,
        glommio::GlommioError::EnhancedIoError {
            source,
            op,
            path,
            fd,
        } => io::Error::new(
            source.kind(),
            format!(
                "{op} {}: {source} (fd {fd:?})",
                path.map(|p| p.display().to_string()).unwrap_or_default()
            ),
        ),
        other => io::Error::other(other.to_string()),
    }
}

pub struct Buf(DmaBuffer);

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl AsMut<[u8]> for Buf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.0.as_bytes_mut()
    }
}

impl fs::DmaFile for GlommioFile {
    type Buf = Buf;

    fn alloc(&self, len: usize) -> Buf {
        assert_eq!(
            len % <Self as fs::DmaFile>::ALIGN,
            0,
            "unaligned DMA buffer length {len}"
        );
        let mut buf = self.file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        Buf(buf)
    }

    async fn write_at(&self, buf: Buf, pos: u64) -> io::Result<usize> {
        self.file.write_at(buf.0, pos).await.map_err(to_io)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let result = self.file.read_at(pos, len).await.map_err(to_io)?;
        Ok(result.to_vec())
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(to_io)
    }
}

thread_local! {
    /// Devices (st_dev) whose io_uring poll support this thread's executor has probed.
    static PROBED_DEVICES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes of the probe file: one O_DIRECT block.
const IOPOLL_PROBE_BYTES: usize = 4096;

/// Works around a glommio 0.9 probe bug. The first DMA file opened on a device decides, for the
/// whole executor, whether that device's reads go to the IOPOLL ring: glommio reads the first
/// block of that file on the poll ring and calls the device pollable unless the read fails.
/// When that file is new and empty the read "succeeds" at end of file on any device, every later
/// read goes to the poll ring, and on a device without poll queues (virtio, most SATA) each one
/// fails with EOPNOTSUPP. So before the first open on a device, open a one-block file there, so
/// that the probe reads real data and gets the device's true answer.
async fn probe_iopoll_with_data(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let device = match std::fs::metadata(dir) {
        Ok(meta) => meta.dev(),
        Err(_) => return Ok(()), // The open below reports the real problem.
    };
    if PROBED_DEVICES.with(|probed| probed.borrow().contains(&device)) {
        return Ok(());
    }
    // Once per device and executor, at start-up: a small blocking write is acceptable here.
    let probe = dir.join(format!(".helios-iopoll-probe-{}", std::process::id()));
    std::fs::write(&probe, [0u8; IOPOLL_PROBE_BYTES])?;
    let opened = OpenOptions::new().read(true).dma_open(&probe).await;
    if let Ok(file) = opened {
        let _ = file.close().await;
    }
    std::fs::remove_file(&probe)?;
    PROBED_DEVICES.with(|probed| probed.borrow_mut().push(device));
    Ok(())
}

impl fs::FileSystem for GlommioFs {
    type File = GlommioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<GlommioFile> {
        if let Some(dir) = path.parent() {
            probe_iopoll_with_data(dir).await?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        Ok(GlommioFile { file })
    }

    async fn open_write_through(&self, path: &Path) -> io::Result<GlommioFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        Ok(GlommioFile { file })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // Directory creation happens at start-up only, before the shard serves anyone.
        std::fs::create_dir_all(path)
    }

    async fn list(&self, path: &Path) -> io::Result<Vec<String>> {
        // Start-up only (recovery), like create_dir_all.
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        // Removal is rare (start-up clean-up, later segment deletion) and cheap.
        std::fs::remove_file(path)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        // A rename per 64 MiB WAL segment: rare and quick.
        std::fs::rename(from, to)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = glommio::io::Directory::open(path).await.map_err(to_io)?;
        dir.sync().await.map_err(to_io)
    }
}
