//! Disk accounting: the process's storage I/O counters (`/proc/self/io`) and a directory's
//! allocated size.
//!
//! `write_bytes` counts bytes the process caused to be sent to storage: buffered writes when
//! they dirty the page cache (even if written back later by the kernel), and direct I/O when
//! it is submitted. It covers every thread of the process, living or exited, io_uring's io-wq
//! workers included. `cancelled_write_bytes` counts dirty bytes that were never written because
//! their file was truncated or deleted first (a short-lived file).

use std::path::Path;

use anyhow::Context;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
}

impl IoCounters {
    /// `None` when the kernel has no per-task I/O accounting.
    pub fn now() -> Option<IoCounters> {
        let text = std::fs::read_to_string("/proc/self/io").ok()?;
        parse(&text)
    }

    /// Counts since `earlier`.
    pub fn since(&self, earlier: &IoCounters) -> IoCounters {
        IoCounters {
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(earlier.cancelled_write_bytes),
        }
    }
}

fn parse(text: &str) -> Option<IoCounters> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    Some(IoCounters {
        read_bytes: field("read_bytes")?,
        write_bytes: field("write_bytes")?,
        cancelled_write_bytes: field("cancelled_write_bytes")?,
    })
}

/// Bytes allocated on disk to the files under `dir` (st_blocks × 512: a preallocated or
/// sparse file counts what it occupies, not its length).
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let entries =
            std::fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))?;
        for entry in entries {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.blocks() * 512;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_io() {
        let text = "rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 0\nread_bytes: 4096\n\
                    write_bytes: 8192\ncancelled_write_bytes: 12\n";
        let counters = parse(text).unwrap();
        assert_eq!(counters.read_bytes, 4096);
        assert_eq!(counters.write_bytes, 8192);
        assert_eq!(counters.cancelled_write_bytes, 12);
        assert_eq!(parse("rchar: 1\n"), None);
    }

    #[test]
    fn dir_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![1u8; 10_000]).unwrap();
        assert!(dir_bytes(dir.path()).unwrap() >= 20_000);
    }
}
