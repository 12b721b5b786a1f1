//! A parsed request: the command name and its arguments as zero-copy slices of the
//! connection's read buffer (`Bytes` is `Send`, so a command can travel to another shard).

use bytes::Bytes;

use crate::commands::{self, CommandSpec};

#[derive(Debug, Clone)]
pub struct Command {
    /// `args[0]` is the command name as the client sent it; never empty. Never change
    /// `args[0]` after construction: `spec` was looked up from it.
    pub args: Vec<Bytes>,
    /// The command table's entry for `args[0]`, looked up once here: routing, admission
    /// (auth, maxmemory, MULTI) and execution each ask for it, and the look-up was a sixth
    /// of a pipelined GET's profile when each asked the table again.
    spec: Option<&'static CommandSpec>,
}

impl PartialEq for Command {
    fn eq(&self, other: &Command) -> bool {
        self.args == other.args
    }
}

impl Eq for Command {}

impl Command {
    pub fn new(args: Vec<Bytes>) -> Command {
        assert!(!args.is_empty(), "a command has at least its name");
        let spec = commands::lookup(&args[0]);
        Command { args, spec }
    }

    pub fn name(&self) -> &[u8] {
        &self.args[0]
    }

    /// The command table's entry for this name; None for an unknown command.
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        debug_assert_eq!(
            self.spec.map(|s| s.name),
            commands::lookup(&self.args[0]).map(|s| s.name),
            "args[0] changed after construction"
        );
        self.spec
    }

    /// The lower-cased name, for error texts and table look-up: the command table's own
    /// name when it knows the command (no allocation on a request's path), else built.
    pub fn name_lower(&self) -> std::borrow::Cow<'static, str> {
        match self.spec {
            Some(spec) => std::borrow::Cow::Borrowed(spec.name),
            None => String::from_utf8_lossy(&self.args[0])
                .to_ascii_lowercase()
                .into(),
        }
    }

    pub fn arg_count(&self) -> usize {
        self.args.len()
    }
}
