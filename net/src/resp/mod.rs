//! RESP (the Redis protocol): the request parser and the reply encoder. The connection parses
//! requests with [`parse_request`] / [`take_command`] and encodes replies with [`encode`] in the
//! [`Protocol`] the client chose.

pub mod encode;
pub mod parse;

pub use encode::{encode, Protocol};
pub use parse::{parse_request, take_command, Arg, ParseLimits, ProtocolError};
