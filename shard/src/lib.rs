//! helios-shard: the thread-per-core runtime. One glommio executor pinned per core, the shard
//! mesh (request/response over glommio's channel mesh), key → shard routing with a partition
//! map recorded in the data dir, each shard's own socket ring, and the glommio implementations
//! of the engine's file and runtime seams. It knows nothing of wire protocols or SQL.

pub mod glommio_fs;
pub mod glommio_rt;
pub mod helper;
pub mod mesh;
pub mod ring;
pub mod routing;
pub mod runtime;
