//! helios-engine: one shard's storage. It knows nothing of networking, SQL or other shards,
//! and reaches files and time only through [`fs`] and [`rt`].

pub mod cache;
pub mod chunked;
pub mod fs;
pub mod keyspace;
pub mod localrt;
pub mod lsm;
pub mod memfs;
pub mod packed_list;
pub mod rt;
pub mod sst;
pub mod token;
pub mod wal;
