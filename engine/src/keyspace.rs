//! Redis keyspace.
