//! In-memory file system with fault injection.
