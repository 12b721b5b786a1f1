//! The engine's LSM over the production file system (glommio DMA files): tables written with
//! O_DIRECT, truncated to their exact length, and read back.

use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use helios_engine::cache::BlockCache;
use helios_engine::lsm::{Lsm, LsmOptions, ReadOptions};
use helios_shard::glommio_fs::GlommioFs;
use helios_shard::glommio_rt::GlommioRuntime;

#[test]
fn lsm_flushes_compacts_and_reopens_on_glommio_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .expect("glommio executor");
    executor.run(async move {
        let opts = || LsmOptions {
            memtable_bytes: 64 << 10,
            level1_bytes: 256 << 10,
            target_file_bytes: 64 << 10,
            ..LsmOptions::default()
        };
        let cache = Rc::new(BlockCache::new(1 << 20));
        let lsm = Lsm::open(
            GlommioFs,
            GlommioRuntime,
            path.clone(),
            opts(),
            cache.clone(),
        )
        .await
        .expect("open");
        for i in 0..5_000u32 {
            lsm.put(format!("key{i:06}").as_bytes(), &[i as u8; 100])
                .await
                .expect("put");
        }
        lsm.flush().await.expect("flush");
        lsm.wait_idle().await.expect("idle");
        assert!(lsm.stats().flushes >= 5, "{:?}", lsm.stats());
        lsm.close().await.expect("close");
        drop(lsm);

        let lsm = Lsm::open(GlommioFs, GlommioRuntime, path.clone(), opts(), cache)
            .await
            .expect("reopen");
        for i in (0..5_000u32).step_by(97) {
            let value = lsm
                .get(format!("key{i:06}").as_bytes(), None)
                .await
                .expect("get");
            assert_eq!(value.as_deref(), Some(&[i as u8; 100][..]));
        }
        let mut iter = lsm.iter(ReadOptions::default());
        iter.seek_to_first().await.expect("seek");
        let mut count = 0;
        while iter.valid() {
            count += 1;
            iter.next().await.expect("next");
        }
        assert_eq!(count, 5_000);
        lsm.close().await.expect("close");
    });
}
