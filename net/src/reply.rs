//! A reply before it is encoded. Commands build a `Reply`; the connection encodes it in the
//! protocol version (RESP2 or RESP3) the client chose with HELLO. `Reply` is `Send` so shard
//! actors can return it over the mesh.

use bytes::Bytes;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A status line, e.g. `+PONG` (no CR/LF inside).
    Status(Cow<'static, str>),
    /// An error line with its prefix, e.g. `ERR syntax error` or `WRONGTYPE Operation ...`.
    Error(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Null,
    /// RESP2 `*-1`, RESP3 `_`.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 `%`; RESP2 a flat array of key, value, key, value...
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`; RESP2 an array.
    Set(Vec<Reply>),
    /// RESP3 an array of two-element arrays; RESP2 one flat array (HRANDFIELD WITHVALUES,
    /// ZRANGE WITHSCORES).
    Pairs(Vec<(Reply, Reply)>),
    /// RESP3 `,`; RESP2 a bulk string formatted as Redis formats doubles.
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2 `:1`/`:0`.
    Bool(bool),
    /// RESP3 `=` with a three-letter format (`txt`); RESP2 a bulk string.
    Verbatim(&'static str, Bytes),
    /// RESP3 `>` push; RESP2 an array.
    Push(Vec<Reply>),
    /// A reply already encoded, whose bytes read the same in RESP2 and RESP3 (LRANGE's array
    /// of bulk strings, encoded straight from the packed list: see
    /// [`crate::resp::encode::bulk_array`]).
    Encoded(Bytes),
    /// Several top-level replies to one command, one after the other (SUBSCRIBE answers
    /// each channel on its own).
    Many(Vec<Reply>),
}

impl Reply {
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// The reply with an [`Reply::Encoded`] array turned back into an `Array` of `Bulk`s, for
    /// the server's own callers that read a command's elements (SORT, a cross-shard COPY of a
    /// list); any other reply as it is.
    pub fn expand_encoded(self) -> Reply {
        match self {
            Reply::Encoded(bytes) => Reply::Array(
                crate::resp::encode::bulk_array_items(&bytes)
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
            other => other,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// `ERR wrong number of arguments for 'name' command`, as Redis words it.
    pub fn wrong_arity(name: &str) -> Reply {
        Reply::Error(
            format!(
                "ERR wrong number of arguments for '{}' command",
                name.to_ascii_lowercase()
            )
            .into(),
        )
    }
}
