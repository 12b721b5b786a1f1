//! The model engine: a `BTreeMap` in memory. It writes nothing to disk, so it measures the
//! harness's own per-operation cost (key and value generation, timing, dispatch) and gives
//! the answers every real engine must agree with.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::kv::KvEngine;

#[derive(Default)]
pub struct ModelEngine {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Reads copy the value out, as a real engine copies it out of a block or a buffer.
    scratch: Vec<u8>,
}

impl ModelEngine {
    fn read_out(scratch: &mut Vec<u8>, value: &[u8]) -> usize {
        scratch.clear();
        scratch.extend_from_slice(value);
        std::hint::black_box(&scratch);
        value.len()
    }
}

impl KvEngine for ModelEngine {
    fn name(&self) -> &'static str {
        "model"
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self.map.get_mut(key) {
            Some(existing) => {
                existing.clear();
                existing.extend_from_slice(value);
            }
            None => {
                self.map.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    async fn get(&mut self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        let scratch = &mut self.scratch;
        Ok(self.map.get(key).map(|v| Self::read_out(scratch, v)))
    }

    async fn scan(&mut self, start: &[u8], limit: usize) -> anyhow::Result<usize> {
        let range = (Bound::Included(start), Bound::Unbounded);
        let mut count = 0;
        for (_, value) in self.map.range::<[u8], _>(range).take(limit) {
            Self::read_out(&mut self.scratch, value);
            count += 1;
        }
        Ok(count)
    }

    async fn scan_all(&mut self) -> anyhow::Result<usize> {
        for value in self.map.values() {
            Self::read_out(&mut self.scratch, value);
        }
        Ok(self.map.len())
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn wait_idle(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
