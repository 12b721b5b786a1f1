//! helios-net: the front ends. The RESP parser and encoder, the Redis command table and the
//! per-shard command implementations, and the connection/server loop that routes commands to
//! shards. (The PostgreSQL front end will live here too.)

pub mod command;
pub mod commands;
pub mod reply;
pub mod resp;
pub mod server;
pub mod strtod;

pub use command::Command;
pub use reply::Reply;
