//! Per-connection state: who is connected to what, and the run-time parameters (GUCs) that
//! `SET`/`SHOW`/`RESET` touch. Only parameters listed in [`PARAMS`] exist (plus custom
//! `prefix.name` ones, as in PostgreSQL); values are validated and normalized as PostgreSQL does.

use crate::error::*;
use std::sync::Arc;

/// How a parameter's value is checked and normalized.
#[derive(Clone, Copy)]
enum Kind {
    /// Reported or shown, never set.
    ReadOnly,
    /// Any string.
    Any,
    /// on/off (accepts PostgreSQL's boolean spellings).
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Enum(&'static [&'static str]),
    ClientEncoding,
    DateStyle,
    TimeZone,
    /// A list of identifiers (search_path), shown comma-separated and quoted where needed.
    List,
    /// application_name: printable ASCII, at most 63 bytes.
    AppName,
    /// Only "on" is supported (backslash handling in literals depends on it).
    OnlyOn,
    /// A duration in milliseconds: an integer with an optional unit (us, ms, s, min, h, d),
    /// shown in the largest unit that divides it, as PostgreSQL shows time settings.
    Millis,
}

struct ParamDef {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    /// `GUC_REPORT`: a change is sent to the client as ParameterStatus.
    reported: bool,
}

const fn def(name: &'static str, default: &'static str, kind: Kind, reported: bool) -> ParamDef {
    ParamDef {
        name,
        default,
        kind,
        reported,
    }
}

/// The value `server_version` reports; clients parse the leading number.
pub const SERVER_VERSION: &str = "16.4";
/// The parameters that exist, sorted by name (SHOW ALL lists them in this order).
const PARAMS: &[ParamDef] = &[
    def("application_name", "", Kind::AppName, true),
    def("bytea_output", "hex", Kind::Enum(&["hex", "escape"]), false),
    def("client_encoding", "UTF8", Kind::ClientEncoding, true),
    def(
        "client_min_messages",
        "notice",
        Kind::Enum(&[
            "debug5", "debug4", "debug3", "debug2", "debug1", "debug", "log", "notice", "warning",
            "error",
        ]),
        false,
    ),
    def("DateStyle", "ISO, MDY", Kind::DateStyle, true),
    def(
        "default_transaction_isolation",
        "read committed",
        Kind::Enum(&[
            "serializable",
            "repeatable read",
            "read committed",
            "read uncommitted",
        ]),
        false,
    ),
    def("default_transaction_read_only", "off", Kind::Bool, true),
    def(
        "extra_float_digits",
        "1",
        Kind::Int { min: -15, max: 3 },
        false,
    ),
    def("idle_in_transaction_session_timeout", "0", Kind::Any, false),
    def("in_hot_standby", "off", Kind::ReadOnly, true),
    def("integer_datetimes", "on", Kind::ReadOnly, true),
    def(
        "IntervalStyle",
        "postgres",
        Kind::Enum(&["postgres", "postgres_verbose", "sql_standard", "iso_8601"]),
        true,
    ),
    def("is_superuser", "on", Kind::ReadOnly, true),
    def("lock_timeout", "0", Kind::Any, false),
    def("max_identifier_length", "63", Kind::ReadOnly, false),
    def("search_path", "\"$user\", public", Kind::List, false),
    def("server_encoding", "UTF8", Kind::ReadOnly, true),
    def("server_version", SERVER_VERSION, Kind::ReadOnly, true),
    def("server_version_num", "160004", Kind::ReadOnly, false),
    def("session_authorization", "", Kind::ReadOnly, true),
    def("standard_conforming_strings", "on", Kind::OnlyOn, true),
    def("statement_timeout", "0", Kind::Millis, false),
    def("TimeZone", "UTC", Kind::TimeZone, true),
    def(
        "transaction_isolation",
        "read committed",
        Kind::ReadOnly,
        false,
    ),
    def("transaction_read_only", "off", Kind::ReadOnly, false),
];

/// Order of ParameterStatus messages at startup.
const STARTUP_REPORTED: &[&str] = &[
    "server_version",
    "server_encoding",
    "client_encoding",
    "DateStyle",
    "integer_datetimes",
    "standard_conforming_strings",
    "TimeZone",
    "IntervalStyle",
    "is_superuser",
    "session_authorization",
    "application_name",
    "default_transaction_read_only",
    "in_hot_standby",
];
/// Bound on custom (`prefix.name`) parameters one session may create.
const CUSTOM_PARAMS_MAX: usize = 256;
/// Bound on one parameter value's length.
const VALUE_BYTES_MAX: usize = 8192;

/// One client connection's SQL state.
#[derive(Debug, Clone)]
pub struct Session {
    user: String,
    database: String,
    /// Current values, indexed like [`PARAMS`]. Shared with the open block's settings
    /// history and copied only on a change: every BEGIN snapshots them, and copying ~50
    /// strings for it (and again at COMMIT) was 2 % of a pgbench TPC-B transaction.
    values: Arc<Vec<String>>,
    /// `prefix.name` parameters set by the client.
    custom: Vec<(String, String)>,
    /// Where the session is with respect to a transaction block.
    pub(crate) transaction: TransactionState,
    /// The current transaction block's isolation level and access mode.
    pub(crate) isolation: Option<crate::txn::Isolation>,
    pub(crate) read_only: bool,
    /// When the current transaction block began (`now()` inside it); µs since 2000-01-01.
    pub(crate) block_start: Option<i64>,
    /// The transaction id of the open block (its DDL's owner: relations it changed are not
    /// held from it).
    pub(crate) block_txn: Option<u64>,
    cancel: CancelFlag,
    /// The process id the client was given in BackendKeyData (`pg_backend_pid()`).
    backend_pid: i32,
    /// The last value nextval gave this session, per sequence id (currval).
    sequence_values: SequenceValues,
    /// What RESET restores (see `fix_session_defaults`); None: the built-in defaults.
    session_defaults: Option<Vec<String>>,
    /// Bumped by every parameter change (SET, RESET, custom parameters), so that what was
    /// derived from the settings (a connection's cached parsed statements) can tell it is
    /// still valid without comparing them all.
    parameters_epoch: u64,
    /// Prepared statements of the simple-protocol query shapes this session ran (see
    /// `crate::shape`).
    pub(crate) shapes: crate::ShapeCache,
    /// What statements derive from the parameters, computed once per `parameters_epoch`
    /// (every statement needs them: parsing search_path and looking up TimeZone each time
    /// was 2 % of a pgbench transaction).
    derived: std::cell::RefCell<Option<Derived>>,
    /// SQL cursors (DECLARE ... CURSOR), by name: see `crate::cursor`.
    pub(crate) cursors: std::collections::BTreeMap<String, crate::cursor::Cursor>,
    /// The open block's settings history (PostgreSQL's settings are transactional).
    settings_block: Option<SettingsBlock>,
    /// Reported parameters whose value changed where no command result carries them (a
    /// failed COMMIT or implicit block putting SETs back, set_config); the protocol layer
    /// sends them before ReadyForQuery, where PostgreSQL reports changed settings.
    parameters_to_report: Vec<ChangedParameter>,
}

/// Parameter values at one moment: the built-in ones, then the custom ones.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    values: Arc<Vec<String>>,
    custom: Vec<(String, String)>,
}

/// What a transaction block's end (or ROLLBACK TO) puts the settings back to.
#[derive(Debug, Clone)]
struct SettingsBlock {
    /// At BEGIN: what ROLLBACK restores.
    start: Settings,
    /// The values plain SETs made (SET LOCAL's left out): what COMMIT keeps.
    session_level: Settings,
    /// At each open savepoint (by name, oldest first): the values then, and the session
    /// level then; what ROLLBACK TO restores.
    savepoints: Vec<(String, Settings, Settings)>,
}

#[derive(Debug, Clone)]
struct Derived {
    epoch: u64,
    search_path: std::sync::Arc<[String]>,
    float_digits: i32,
    zone: crate::datetime::Zone,
    dmy: bool,
}

/// Per sequence id, the last value nextval returned in a session; shared with the
/// statements' environments, which update it as they draw values.
pub type SequenceValues = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, i64>>>;

/// Milliseconds in a time setting's text: `250`, `250ms`, `5s`, `1min`, `2 h`, `1d`, `1500us`
/// (rounded down); None when malformed, negative or over `i32::MAX` ms (PostgreSQL's bound).
fn parse_millis(value: &str) -> Option<i64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: i64 = number.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => n,
        "us" => n / 1000,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    (0..=i64::from(i32::MAX)).contains(&ms).then_some(ms)
}

fn show_millis(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1000, "s"),
    ];
    if ms == 0 {
        return "0".to_string();
    }
    for (size, unit) in UNITS {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A statement's cancellation flag, shared between the connection (which sets it on a
/// CancelRequest) and the statement's fragments on every shard (which poll it).
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(std::sync::Arc<std::sync::atomic::AtomicU8>);

const NOT_CANCELLED: u8 = 0;
const CANCELLED_BY_USER: u8 = 1;
const CANCELLED_BY_TIMEOUT: u8 = 2;

impl CancelFlag {
    /// A CancelRequest for the running statement.
    pub fn cancel(&self) {
        self.0
            .store(CANCELLED_BY_USER, std::sync::atomic::Ordering::Relaxed);
    }

    /// `statement_timeout` expired.
    pub fn time_out(&self) {
        self.0
            .store(CANCELLED_BY_TIMEOUT, std::sync::atomic::Ordering::Relaxed);
    }

    /// Clears a cancellation that arrived while no statement ran (PostgreSQL ignores those).
    pub fn reset(&self) {
        self.0
            .store(NOT_CANCELLED, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) != NOT_CANCELLED
    }

    pub fn check(&self) -> Result<(), SqlError> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            NOT_CANCELLED => Ok(()),
            CANCELLED_BY_TIMEOUT => Err(SqlError::new(
                QUERY_CANCELED,
                "canceling statement due to statement timeout",
            )),
            _ => Err(SqlError::new(
                QUERY_CANCELED,
                "canceling statement due to user request",
            )),
        }
    }
}

/// The transaction status a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InBlock,
    /// 'E': in a failed transaction block; statements are refused until ROLLBACK.
    Failed,
}

/// A parameter change the protocol layer reports with ParameterStatus: (name, new value).
pub type ChangedParameter = (String, String);

fn find(name: &str) -> Option<usize> {
    PARAMS
        .iter()
        .position(|p| p.name.eq_ignore_ascii_case(name))
}

fn invalid_value(name: &str, value: &str) -> SqlError {
    SqlError::new(
        INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

pub(crate) fn unrecognized(name: &str) -> SqlError {
    SqlError::new(
        UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

impl Session {
    pub fn new(user: &str, database: &str) -> Session {
        let values = PARAMS
            .iter()
            .map(|p| {
                if p.name == "session_authorization" {
                    user.to_string()
                } else {
                    p.default.to_string()
                }
            })
            .collect();
        Session {
            user: user.to_string(),
            database: database.to_string(),
            values: Arc::new(values),
            custom: Vec::new(),
            transaction: TransactionState::Idle,
            isolation: None,
            read_only: false,
            block_start: None,
            block_txn: None,
            cancel: CancelFlag::default(),
            backend_pid: 0,
            shapes: Default::default(),
            sequence_values: Default::default(),
            session_defaults: None,
            parameters_epoch: 0,
            derived: Default::default(),
            cursors: Default::default(),
            settings_block: None,
            parameters_to_report: Vec::new(),
        }
    }

    /// The settings derived from the parameters, as of now.
    fn derived(&self) -> Derived {
        if let Some(d) = self.derived.borrow().as_ref() {
            if d.epoch == self.parameters_epoch {
                return d.clone();
            }
        }
        let d = Derived {
            epoch: self.parameters_epoch,
            search_path: self.parse_search_path().into(),
            float_digits: self.extra_float_digits(),
            zone: self
                .parameter("TimeZone")
                .and_then(crate::datetime::Zone::parse)
                .unwrap_or_default(),
            dmy: self
                .parameter("DateStyle")
                .is_some_and(|v| v.ends_with("DMY")),
        };
        *self.derived.borrow_mut() = Some(d.clone());
        d
    }

    /// Changes whenever any parameter may have changed (see `parameters_epoch`).
    pub fn parameters_epoch(&self) -> u64 {
        self.parameters_epoch
    }

    pub(crate) fn sequence_values(&self) -> SequenceValues {
        self.sequence_values.clone()
    }

    pub fn set_backend_pid(&mut self, pid: i32) {
        self.backend_pid = pid;
    }

    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// The flag that cancels this session's running statement.
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// The level a transaction starts at (`default_transaction_isolation`).
    pub(crate) fn default_isolation(&self) -> Result<crate::txn::Isolation, SqlError> {
        crate::txn::Isolation::parse(
            self.parameter("default_transaction_isolation")
                .unwrap_or("read committed"),
        )
    }

    /// The status byte's state for ReadyForQuery.
    pub fn transaction_state(&self) -> TransactionState {
        self.transaction
    }

    /// An error ended the statement: a transaction block becomes failed.
    pub fn statement_failed(&mut self) {
        if self.transaction == TransactionState::InBlock {
            self.transaction = TransactionState::Failed;
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The current value of a parameter, by case-insensitive name.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        if let Some(i) = find(name) {
            return Some(&self.values[i]);
        }
        self.custom
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `statement_timeout` in milliseconds (0: none).
    /// `idle_in_transaction_session_timeout` in ms (0: none): how long a session inside a
    /// transaction block may wait for its next query before the server ends it.
    pub fn idle_in_transaction_timeout_ms(&self) -> u64 {
        if self.transaction == TransactionState::Idle {
            return 0;
        }
        self.parameter("idle_in_transaction_session_timeout")
            .and_then(parse_millis)
            .map_or(0, |ms| ms.max(0) as u64)
    }

    /// `lock_timeout` in ms (0: wait as long as it takes).
    pub fn lock_timeout_ms(&self) -> u64 {
        self.parameter("lock_timeout")
            .and_then(parse_millis)
            .map_or(0, |ms| ms.max(0) as u64)
    }

    pub fn statement_timeout_ms(&self) -> u64 {
        self.parameter("statement_timeout")
            .and_then(parse_millis)
            .map_or(0, |ms| ms as u64)
    }

    /// How this session reads and writes values; `now` is the transaction's start.
    pub(crate) fn style(&self) -> crate::types::Style {
        let in_block = self.transaction != TransactionState::Idle;
        let derived = self.derived();
        crate::types::Style {
            float_digits: derived.float_digits,
            zone: derived.zone,
            now: match self.block_start {
                Some(t) if in_block => t,
                _ => crate::datetime::now_micros(),
            },
            dmy: derived.dmy,
        }
    }

    /// `search_path` as schema names, `$user` replaced by the session's user.
    pub(crate) fn search_path(&self) -> std::sync::Arc<[String]> {
        self.derived().search_path
    }

    fn parse_search_path(&self) -> Vec<String> {
        let value = self.parameter("search_path").unwrap_or("public");
        value
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                let unquoted = s
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .map(|r| r.replace("\"\"", "\""));
                match unquoted {
                    Some(u) if u == "$user" => self.user.clone(),
                    Some(u) => u,
                    None if s == "$user" => self.user.clone(),
                    None => s.to_lowercase(),
                }
            })
            .collect()
    }

    pub(crate) fn extra_float_digits(&self) -> i32 {
        self.parameter("extra_float_digits")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Sets a parameter as `SET name = value` does (also for startup-packet options).
    /// Returns the change to report to the client, if the parameter is reported and changed.
    pub fn set_parameter(
        &mut self,
        name: &str,
        value: &str,
    ) -> Result<Option<ChangedParameter>, SqlError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                format!("value for parameter \"{name}\" is too long"),
            ));
        }
        let Some(i) = find(name) else {
            return self.set_custom(name, value).map(|()| None);
        };
        let p = &PARAMS[i];
        let v = normalize(p, value)?;
        Ok(self.store(i, v))
    }

    fn store(&mut self, i: usize, v: String) -> Option<ChangedParameter> {
        self.parameters_epoch += 1;
        if self.values[i] == v {
            return None;
        }
        Arc::make_mut(&mut self.values)[i] = v;
        PARAMS[i]
            .reported
            .then(|| (PARAMS[i].name.to_string(), self.values[i].clone()))
    }

    fn set_custom(&mut self, name: &str, value: &str) -> Result<(), SqlError> {
        let valid = name
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
        if !valid {
            return Err(unrecognized(name));
        }
        self.parameters_epoch += 1;
        if let Some(slot) = self
            .custom
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = value.to_string();
        } else if self.custom.len() >= CUSTOM_PARAMS_MAX {
            return Err(SqlError::new(
                PROGRAM_LIMIT_EXCEEDED,
                "too many custom configuration parameters",
            ));
        } else {
            self.custom
                .push((name.to_ascii_lowercase(), value.to_string()));
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            values: self.values.clone(),
            custom: self.custom.clone(),
        }
    }

    /// Puts the settings back to `to`; the reported ones that change are returned. A custom
    /// parameter first set since stays defined, empty, as PostgreSQL keeps its placeholder
    /// (`current_setting(name, true)` is then '', not NULL).
    fn restore_settings(&mut self, to: Settings) -> Vec<ChangedParameter> {
        if self.settings() == to {
            return Vec::new();
        }
        self.parameters_epoch += 1;
        let mut custom = to.custom;
        for (name, _) in &self.custom {
            if !custom.iter().any(|(n, _)| n == name) {
                custom.push((name.clone(), String::new()));
            }
        }
        self.custom = custom;
        let changed = (0..PARAMS.len())
            .filter(|&i| PARAMS[i].reported && self.values[i] != to.values[i])
            .map(|i| (PARAMS[i].name.to_string(), to.values[i].clone()))
            .collect();
        self.values = to.values;
        changed
    }

    /// BEGIN: later SETs are undone by ROLLBACK, and SET LOCALs by the block's end.
    pub(crate) fn settings_begin(&mut self) {
        let now = self.settings();
        self.settings_block = Some(SettingsBlock {
            start: now.clone(),
            session_level: now,
            savepoints: Vec::new(),
        });
    }

    /// After a SET (`local`: SET LOCAL) of `name` inside a block: a plain SET's value is
    /// also what COMMIT keeps.
    pub(crate) fn settings_changed(&mut self, name: &str, local: bool) {
        if local {
            return;
        }
        let now = self.settings();
        let Some(block) = self.settings_block.as_mut() else {
            return;
        };
        let level = &mut block.session_level;
        match find(name) {
            Some(i) => Arc::make_mut(&mut level.values)[i] = now.values[i].clone(),
            None => {
                level.custom.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                if let Some(c) = now
                    .custom
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                {
                    level.custom.push(c.clone());
                }
            }
        }
    }

    /// A custom parameter SET LOCAL or `set_config(.., true)` named outside a block: defined
    /// (empty) if it was not, with no value, as PostgreSQL leaves its placeholder.
    pub(crate) fn define_placeholder(&mut self, name: &str) {
        if find(name).is_none() && self.parameter(name).is_none() {
            let _ = self.set_custom(name, "");
        }
    }

    /// After RESET ALL in a block: every value now is what COMMIT keeps.
    pub(crate) fn settings_changed_all(&mut self) {
        let now = self.settings();
        if let Some(block) = self.settings_block.as_mut() {
            block.session_level = now;
        }
    }

    /// Whether a transaction block keeps a settings history (SET LOCAL has an effect).
    pub(crate) fn in_settings_block(&self) -> bool {
        self.settings_block.is_some()
    }

    pub(crate) fn settings_savepoint(&mut self, name: &str) {
        let now = self.settings();
        if let Some(block) = self.settings_block.as_mut() {
            let level = block.session_level.clone();
            block.savepoints.push((name.to_string(), now, level));
        }
    }

    /// RELEASE: the savepoint and those after it are gone; their settings stay.
    pub(crate) fn settings_release(&mut self, name: &str) {
        if let Some(block) = self.settings_block.as_mut() {
            if let Some(at) = block.savepoints.iter().rposition(|(n, _, _)| n == name) {
                block.savepoints.truncate(at);
            }
        }
    }

    /// ROLLBACK TO: the settings as they were at the savepoint, which stays.
    pub(crate) fn settings_rollback_to(&mut self, name: &str) -> Vec<ChangedParameter> {
        let Some(block) = self.settings_block.as_mut() else {
            return Vec::new();
        };
        let Some(at) = block.savepoints.iter().rposition(|(n, _, _)| n == name) else {
            return Vec::new();
        };
        block.savepoints.truncate(at + 1);
        let (_, then, level) = block.savepoints[at].clone();
        block.session_level = level;
        self.restore_settings(then)
    }

    /// The block ends: committed, plain SETs stay and SET LOCALs go; rolled back, every
    /// change it made goes.
    /// Queues parameter changes to report before the next ReadyForQuery.
    pub(crate) fn report_later(&mut self, changed: impl IntoIterator<Item = ChangedParameter>) {
        self.parameters_to_report.extend(changed);
    }

    /// The parameter changes queued by [`Session::report_later`], oldest first.
    pub fn take_parameters_to_report(&mut self) -> Vec<ChangedParameter> {
        std::mem::take(&mut self.parameters_to_report)
    }

    pub(crate) fn settings_end(&mut self, committed: bool) -> Vec<ChangedParameter> {
        let Some(block) = self.settings_block.take() else {
            return Vec::new();
        };
        self.restore_settings(match committed {
            true => block.session_level,
            false => block.start,
        })
    }

    /// `RESET name` / `SET name TO DEFAULT`.
    pub(crate) fn reset_parameter(
        &mut self,
        name: &str,
    ) -> Result<Option<ChangedParameter>, SqlError> {
        let Some(i) = find(name) else {
            if self.parameter(name).is_some() {
                self.parameters_epoch += 1;
                self.custom.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                return Ok(None);
            }
            return Err(unrecognized(name));
        };
        if matches!(PARAMS[i].kind, Kind::ReadOnly) {
            return Err(cannot_change(PARAMS[i].name));
        }
        Ok(self.store(i, self.session_default(i)))
    }

    /// `RESET ALL`.
    pub fn reset_all(&mut self) -> Vec<ChangedParameter> {
        self.parameters_epoch += 1;
        self.custom.clear();
        (0..PARAMS.len())
            .filter(|&i| !matches!(PARAMS[i].kind, Kind::ReadOnly))
            .filter_map(|i| {
                let value = self.session_default(i);
                self.store(i, value)
            })
            .collect()
    }

    /// Makes the current values (the built-in defaults with the start-up packet's settings
    /// applied) what RESET returns to, as PostgreSQL's session defaults.
    pub fn fix_session_defaults(&mut self) {
        self.session_defaults = Some(self.values.to_vec());
    }

    fn session_default(&self, i: usize) -> String {
        match &self.session_defaults {
            Some(values) => values[i].clone(),
            None => PARAMS[i].default.to_string(),
        }
    }

    /// Canonical name of a parameter (what SHOW names its column), if it exists.
    pub(crate) fn canonical_name(&self, name: &str) -> Option<String> {
        if let Some(i) = find(name) {
            return Some(PARAMS[i].name.to_string());
        }
        self.custom
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, _)| n.clone())
    }

    /// (name, value) of every parameter, sorted by name, for `SHOW ALL`.
    pub(crate) fn all_parameters(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = PARAMS
            .iter()
            .zip(self.values.iter())
            .map(|(p, v)| (p.name.to_string(), v.clone()))
            .collect();
        all.extend(self.custom.iter().cloned());
        all.sort_by_key(|(n, _)| n.to_ascii_lowercase());
        all
    }

    /// Whether `name` takes a list (several comma-separated SET values).
    pub(crate) fn is_list(&self, name: &str) -> bool {
        find(name).is_some_and(|i| matches!(PARAMS[i].kind, Kind::List | Kind::DateStyle))
    }
}

fn cannot_change(name: &str) -> SqlError {
    SqlError::new(
        CANT_CHANGE_RUNTIME_PARAM,
        format!("parameter \"{name}\" cannot be changed"),
    )
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    let t = v.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || t == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || t == "0" {
        Some(false)
    } else {
        None
    }
}

fn normalize(p: &ParamDef, value: &str) -> Result<String, SqlError> {
    let name = p.name;
    match p.kind {
        Kind::ReadOnly => Err(cannot_change(name)),
        Kind::Any => Ok(value.to_string()),
        Kind::Bool => match parse_bool(value) {
            Some(b) => Ok(if b { "on" } else { "off" }.to_string()),
            None => Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("parameter \"{name}\" requires a Boolean value"),
            )),
        },
        Kind::OnlyOn => match parse_bool(value) {
            Some(true) => Ok("on".to_string()),
            Some(false) => Err(SqlError::new(
                FEATURE_NOT_SUPPORTED,
                format!("{name} = off is not supported"),
            )),
            None => Err(SqlError::new(
                INVALID_PARAMETER_VALUE,
                format!("parameter \"{name}\" requires a Boolean value"),
            )),
        },
        Kind::Millis => parse_millis(value)
            .map(show_millis)
            .ok_or_else(|| invalid_value(name, value)),
        Kind::Int { min, max } => {
            let v: i64 = value.trim().parse().map_err(|_| {
                SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!("invalid value for parameter \"{name}\": \"{value}\""),
                )
            })?;
            if v < min || v > max {
                return Err(SqlError::new(
                    INVALID_PARAMETER_VALUE,
                    format!(
                        "{v} is outside the valid range for parameter \"{name}\" ({min} .. {max})"
                    ),
                ));
            }
            Ok(v.to_string())
        }
        Kind::Enum(options) => {
            let lower = value.trim().to_ascii_lowercase();
            options
                .iter()
                .find(|o| **o == lower)
                .map(|o| o.to_string())
                .ok_or_else(|| invalid_value(name, value))
        }
        Kind::ClientEncoding => {
            let norm: String = value
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            match norm.as_str() {
                "utf8" | "unicode" => Ok("UTF8".to_string()),
                "sqlascii" => Ok("SQL_ASCII".to_string()),
                _ => Err(invalid_value(name, value)),
            }
        }
        Kind::DateStyle => date_style(value).ok_or_else(|| invalid_value(name, value)),
        Kind::TimeZone => time_zone(value).ok_or_else(|| invalid_value(name, value)),
        Kind::List | Kind::AppName => Ok(if matches!(p.kind, Kind::AppName) {
            app_name(value)
        } else {
            value.to_string()
        }),
    }
}

/// DateStyle: an output format and/or a field order, shown as e.g. "ISO, MDY".
fn date_style(value: &str) -> Option<String> {
    let (mut format, mut order) = ("ISO", "MDY");
    for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
        match token.as_str() {
            "iso" => format = "ISO",
            "sql" => format = "SQL",
            "postgres" => format = "Postgres",
            "german" => {
                format = "German";
                order = "DMY";
            }
            "ymd" => order = "YMD",
            "dmy" | "euro" | "european" => order = "DMY",
            "mdy" | "us" | "noneuro" | "noneuropean" => order = "MDY",
            "default" => {}
            _ => return None,
        }
    }
    Some(format!("{format}, {order}"))
}

/// A TimeZone value: a tz database name (bundled), a UTC spelling or an offset; kept as given.
fn time_zone(value: &str) -> Option<String> {
    let v = value.trim();
    crate::datetime::Zone::parse(v).map(|_| v.to_string())
}

/// application_name keeps printable ASCII only (others become '?'), at most 63 bytes.
fn app_name(value: &str) -> String {
    value
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(crate::types::NAME_BYTES_MAX)
        .collect()
}

/// ParameterStatus values sent at startup, in order.
pub fn startup_parameters(session: &Session) -> Vec<(String, String)> {
    STARTUP_REPORTED
        .iter()
        .map(|name| {
            let value = session.parameter(name);
            assert!(
                value.is_some(),
                "startup parameter {name} missing from PARAMS"
            );
            (name.to_string(), value.unwrap_or_default().to_string())
        })
        .collect()
}
