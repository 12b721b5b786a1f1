//! The Redis command table and per-shard command implementations.
