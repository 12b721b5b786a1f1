//! A parsed request: the command name and its arguments as zero-copy slices of the
//! connection's read buffer (`Bytes` is `Send`, so a command can travel to another shard).

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `args[0]` is the command name as the client sent it; never empty.
    pub args: Vec<Bytes>,
}

impl Command {
    pub fn new(args: Vec<Bytes>) -> Command {
        assert!(!args.is_empty(), "a command has at least its name");
        Command { args }
    }

    pub fn name(&self) -> &[u8] {
        &self.args[0]
    }

    /// The lower-cased name, for error texts and table look-up.
    pub fn name_lower(&self) -> String {
        String::from_utf8_lossy(&self.args[0]).to_ascii_lowercase()
    }

    pub fn arg_count(&self) -> usize {
        self.args.len()
    }
}
