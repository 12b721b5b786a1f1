//! RESP parsing and encoding.
