//! Connections and routing of commands to shards.
