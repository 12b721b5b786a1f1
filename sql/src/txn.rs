//! Transactions: BEGIN / COMMIT / ROLLBACK / SAVEPOINT, READ COMMITTED and REPEATABLE READ,
//! row locks, and atomic commit across shards.
//!
//! **Intents.** A transaction's writes do not go to the LSM tree while it runs: each owning
//! shard keeps them in memory as *intents* (key → new value or deletion, index entries
//! included), and locks the rows they touch. Other sessions read committed data only (the tree),
//! so there are no dirty reads; the transaction's own scans read the tree overlaid with its
//! intents. A row locked by another transaction makes a writer wait (deadlocks are found in a
//! cluster-wide wait-for graph and end one waiter with 40P01). Autocommit statements that write
//! run as one-statement transactions, so a statement is atomic across shards too.
//!
//! **Snapshots.** A REPEATABLE READ transaction pins one LSM snapshot per shard at its first
//! statement and reads at it until it ends; it may only change rows whose newest committed
//! version is the one its snapshot sees (first committer wins: 40001 otherwise). A READ
//! COMMITTED statement that scans more than one row key pins a snapshot per shard for itself.
//! Snapshots on all shards are pinned while no multi-shard commit is being applied (the
//! [`CommitGate`]), so every snapshot sees each transaction wholly or not at all.
//!
//! **Commit.** One shard with intents: they become one LSM batch there, durable before the
//! reply — no coordination. Several: the coordinator gathers the intents, writes a *commit
//! record* holding all of them to its own shard's tree and syncs it (the commit point), then
//! has each participant apply its part together with an *applied marker* in one batch, synced.
//! After a crash, [`recover`] re-applies every commit record's parts on the participants
//! whose marker is missing, then deletes the records and markers: a transaction is applied
//! everywhere or, with no record, nowhere (its intents were only in memory).
//!
//! Key layout: commit record `0x83 txn_id:u64 BE` → [`encode_record`]; applied marker
//! `0x84 txn_id:u64 BE` → empty.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound as RangeBound;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use helios_engine::fs::FileSystem;
use helios_engine::lsm::key::ValueKind;
use helios_engine::lsm::notify::Notify;
use helios_engine::lsm::snapshot::Snapshot;
use helios_engine::lsm::{Lsm, WriteBatch};
use helios_engine::rt::Runtime;

use crate::cluster::{storage_error, Cluster};
use crate::error::SqlError;

pub type TxnId = u64;

pub const RECORD_PREFIX: u8 = 0x83;
pub const MARKER_PREFIX: u8 = 0x84;

/// SQLSTATEs of this module.
pub(crate) const SERIALIZATION_FAILURE: &str = "40001";
pub(crate) const DEADLOCK_DETECTED: &str = "40P01";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    ReadCommitted,
    RepeatableRead,
}

impl Isolation {
    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
        }
    }

    /// The level a setting's text names. READ UNCOMMITTED is READ COMMITTED (as in
    /// PostgreSQL); SERIALIZABLE is refused, never silently weakened.
    pub fn parse(text: &str) -> Result<Isolation, SqlError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "read committed" | "read uncommitted" => Ok(Isolation::ReadCommitted),
            "repeatable read" => Ok(Isolation::RepeatableRead),
            "serializable" => Err(serializable_refused()),
            other => Err(SqlError::new(
                crate::error::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"transaction_isolation\": \"{other}\""),
            )),
        }
    }
}

pub(crate) fn serializable_refused() -> SqlError {
    SqlError::new(
        crate::error::FEATURE_NOT_SUPPORTED,
        "SERIALIZABLE isolation is not supported; use REPEATABLE READ (snapshot isolation) or READ COMMITTED",
    )
}

/// Row lock strength: PostgreSQL's four row lock modes, weakest first. Each conflicts with
/// every mode a stronger one conflicts with... and more: the order is total, so a holder's
/// mode is the strongest it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    /// FOR KEY SHARE (a foreign key's check of its referenced row): only writes that delete
    /// the row or change its key wait.
    KeyShare,
    /// FOR SHARE: other sharers may hold it too; writers wait.
    Shared,
    /// FOR NO KEY UPDATE, and an UPDATE that changes no key column (primary key or unique
    /// index): FOR KEY SHARE holders let it through.
    NoKeyExclusive,
    /// Other writes, and FOR UPDATE.
    Exclusive,
}

impl LockMode {
    /// Whether a holder in `held` mode keeps another transaction from `self`, as in
    /// PostgreSQL's row lock conflict table.
    fn conflicts_with(self, held: LockMode) -> bool {
        use LockMode::*;
        match (self, held) {
            (KeyShare, other) | (other, KeyShare) => other == Exclusive,
            (Shared, Shared) => false,
            _ => true,
        }
    }
}

/// What a fragment carries about the transaction it runs in.
#[derive(Clone, Debug)]
pub struct TxnCtx {
    pub id: TxnId,
    pub isolation: Isolation,
    /// The snapshot pinned on every shard that the fragment reads at (None: the newest data).
    pub snapshot: Option<u64>,
    /// The savepoint mark the fragment's writes are tagged with.
    pub mark: u32,
    /// How long a row lock may be waited for, and what ends the wait early.
    pub wait: LockWait,
}

/// How a lock wait may end besides the lock's release: the statement is cancelled
/// (CancelRequest, statement_timeout), `lock_timeout` passes, or NOWAIT.
#[derive(Clone, Debug, Default)]
pub struct LockWait {
    pub cancel: Option<crate::session::CancelFlag>,
    /// `lock_timeout` in ms (0: none).
    pub timeout_ms: u64,
    pub nowait: bool,
}

/// SELECT ... FOR UPDATE / FOR SHARE [NOWAIT | SKIP LOCKED].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLock {
    pub mode: LockMode,
    pub nowait: bool,
    /// SKIP LOCKED: rows another transaction holds are left out instead of waited for.
    pub skip_locked: bool,
}

/// How often a lock waiter looks at its cancel flag and deadline.
const LOCK_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";

// ---------------------------------------------------------------------------------------
// Shard side
// ---------------------------------------------------------------------------------------

/// A transaction's intents on one shard: key → new value (None: deleted).
pub type Intents = BTreeMap<Bytes, Option<Bytes>>;

/// What a scan reads: the tree at a snapshot (None: newest), overlaid with one transaction's
/// intents.
#[derive(Default, Clone)]
pub struct ReadView {
    pub overlay: Option<Rc<RefCell<Intents>>>,
    pub snapshot: Option<Snapshot>,
}

impl ReadView {
    /// The intent for `key`: Some(None) when the transaction deleted it.
    pub(crate) fn intent(&self, key: &[u8]) -> Option<Option<Bytes>> {
        self.overlay.as_ref()?.borrow().get(key).cloned()
    }

    /// `key`'s value as this view sees it.
    pub(crate) async fn get<F: FileSystem + Clone + 'static, R: Runtime>(
        &self,
        lsm: &Lsm<F, R>,
        key: &[u8],
    ) -> Result<Option<Bytes>, SqlError> {
        if let Some(intent) = self.intent(key) {
            return Ok(intent);
        }
        lsm.get(key, self.snapshot.as_ref())
            .await
            .map_err(storage_error)
    }

    /// The first intent at or after `from` (strictly after when `after`), below `upper`.
    pub(crate) fn next_intent(
        &self,
        from: &[u8],
        after: bool,
        upper: Option<&[u8]>,
    ) -> Option<(Bytes, Option<Bytes>)> {
        let overlay = self.overlay.as_ref()?.borrow();
        let lower = if after {
            RangeBound::Excluded(from)
        } else {
            RangeBound::Included(from)
        };
        let (k, v) = overlay
            .range::<[u8], _>((lower, RangeBound::Unbounded))
            .next()?;
        if upper.is_some_and(|u| k.as_ref() >= u) {
            return None;
        }
        Some((k.clone(), v.clone()))
    }
}

struct Undo {
    mark: u32,
    key: Bytes,
    /// The intent the key had before (None: none).
    before: Option<Option<Bytes>>,
}

#[derive(Default)]
struct ShardTxn {
    intents: Rc<RefCell<Intents>>,
    undo: Vec<Undo>,
    locked: Vec<Bytes>,
    /// What its intents take (see [`TXN_INTENT_BYTES_MAX`]); not lowered by ROLLBACK TO.
    bytes: usize,
    /// Rows under new hidden row ids (COPY, INSERT into a table without a primary key or
    /// index), in arrival order with their savepoint marks: kept out of the ordered map until
    /// something reads the transaction's view ([`ShardTxns::settle_appended`]), so a bulk
    /// load inside a transaction costs a push per row.
    appended: Vec<(u32, Bytes, Bytes)>,
}

/// The transactions holding a row's lock, each with the strongest mode it took: one
/// holder inline (the common case: no allocation per locked row), several in a list.
#[derive(Debug)]
enum Holder {
    One(TxnId, LockMode),
    Many(Vec<(TxnId, LockMode)>),
}

impl Holder {
    fn each(&self) -> impl Iterator<Item = (TxnId, LockMode)> + '_ {
        let (one, many) = match self {
            Holder::One(t, m) => (Some((*t, *m)), &[][..]),
            Holder::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().copied())
    }

    /// Adds `txn` in `mode`, or raises its mode to `mode` if stronger; whether it is new.
    fn take(&mut self, txn: TxnId, mode: LockMode) -> bool {
        match self {
            Holder::One(t, m) if *t == txn => {
                *m = (*m).max(mode);
                false
            }
            Holder::One(t, m) => {
                *self = Holder::Many(vec![(*t, *m), (txn, mode)]);
                true
            }
            Holder::Many(v) => match v.iter_mut().find(|(t, _)| *t == txn) {
                Some((_, m)) => {
                    *m = (*m).max(mode);
                    false
                }
                None => {
                    v.push((txn, mode));
                    true
                }
            },
        }
    }

    /// Drops `txn`; whether no holder is left.
    fn release(&mut self, txn: TxnId) -> bool {
        match self {
            Holder::One(t, _) => *t == txn,
            Holder::Many(v) => {
                v.retain(|(t, _)| *t != txn);
                v.is_empty()
            }
        }
    }
}

/// One shard's transactions: intents, row locks, pinned snapshots.
#[derive(Default)]
pub struct ShardTxns {
    txns: RefCell<HashMap<TxnId, ShardTxn>>,
    locks: RefCell<HashMap<Bytes, Holder>>,
    snapshots: RefCell<HashMap<u64, Snapshot>>,
    released: Notify,
    /// Transient ids for writes outside any transaction (COPY, table rewrites): they lock
    /// their rows for the length of one batch.
    next_transient: Cell<u64>,
    /// Overrides [`TXN_INTENT_BYTES_MAX`] when nonzero (tests).
    intent_bytes_max: Cell<usize>,
}

/// What one transaction's intents may take on one shard, in memory, until it commits: a
/// bigger one fails with 54000 instead of exhausting the server's memory.
pub const TXN_INTENT_BYTES_MAX: usize = 1 << 30;

fn too_large(limit: usize) -> SqlError {
    SqlError::new(
        crate::error::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "transaction is too large: its changes on one shard would exceed {} MiB (commit in smaller transactions)",
            limit >> 20
        ),
    )
}

/// Per intent, beside its key and value: the map entry and its undo record.
const INTENT_OVERHEAD_BYTES: usize = 96;

/// Cluster-wide: who waits for whom (waiter, shard) → holders. A cycle is a deadlock.
#[derive(Default, Debug)]
pub struct WaitGraph {
    edges: Mutex<HashMap<(TxnId, usize), Vec<TxnId>>>,
}

impl WaitGraph {
    /// Records that `waiter` waits on `shard` for `holders`; Err when that closes a cycle.
    fn wait(&self, waiter: TxnId, shard: usize, holders: Vec<TxnId>) -> Result<(), SqlError> {
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        edges.insert((waiter, shard), holders.clone());
        let mut seen = BTreeSet::new();
        let mut stack = holders;
        while let Some(t) = stack.pop() {
            if t == waiter {
                edges.remove(&(waiter, shard));
                return Err(SqlError::new(DEADLOCK_DETECTED, "deadlock detected"));
            }
            if !seen.insert(t) {
                continue;
            }
            for ((w, _), hs) in edges.iter() {
                if *w == t {
                    stack.extend(hs.iter().copied());
                }
            }
        }
        Ok(())
    }

    fn done(&self, waiter: TxnId, shard: usize) {
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        edges.remove(&(waiter, shard));
    }
}

/// Removes a waiter's edge however its wait ends (a dropped statement included).
struct Waiting<'a> {
    graph: &'a WaitGraph,
    waiter: TxnId,
    shard: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.graph.done(self.waiter, self.shard);
    }
}

/// Transient ids are above this bit (transaction ids from coordinators are below).
const TRANSIENT_BIT: u64 = 1 << 63;

impl ShardTxns {
    pub fn transient_id(&self, shard: usize) -> TxnId {
        let n = self.next_transient.get() + 1;
        self.next_transient.set(n);
        TRANSIENT_BIT | ((shard as u64) << 48) | n
    }

    /// The view a fragment of `ctx` reads (no transaction: the newest committed data).
    pub fn view(&self, ctx: Option<&TxnCtx>) -> Result<ReadView, SqlError> {
        let Some(ctx) = ctx else {
            return Ok(ReadView::default());
        };
        self.settle_appended(ctx.id);
        let overlay = self.txns.borrow().get(&ctx.id).map(|t| t.intents.clone());
        let snapshot = match ctx.snapshot {
            None => None,
            Some(id) => Some(self.snapshots.borrow().get(&id).cloned().ok_or_else(|| {
                SqlError::new(
                    "XX000",
                    "the transaction's snapshot is not pinned on this shard",
                )
            })?),
        };
        Ok(ReadView { overlay, snapshot })
    }

    /// Pins snapshot `id` here unless it already is.
    pub fn pin_if_absent(&self, id: u64, snapshot: impl FnOnce() -> Snapshot) {
        self.snapshots
            .borrow_mut()
            .entry(id)
            .or_insert_with(snapshot);
    }

    /// Holders that keep `txn` from locking `key` in `mode`.
    /// Whether `txn` could lock `key` in `mode` now, without waiting.
    pub fn lockable(&self, txn: TxnId, key: &Bytes, mode: LockMode) -> bool {
        self.blockers(txn, key, mode).is_empty()
    }

    /// Locks `keys`, which must all be [`ShardTxns::lockable`] (checked since, with no
    /// `.await` between): SKIP LOCKED's rows.
    pub fn lock_free_rows(&self, txn: TxnId, keys: &[Bytes], mode: LockMode) {
        let blockers = self.try_lock(txn, keys, mode);
        assert!(blockers.is_empty(), "rows checked lockable were taken");
    }

    fn blockers(&self, txn: TxnId, key: &Bytes, mode: LockMode) -> Vec<TxnId> {
        match self.locks.borrow().get(key) {
            None => Vec::new(),
            Some(holders) => holders
                .each()
                .filter(|(t, held)| *t != txn && mode.conflicts_with(*held))
                .map(|(t, _)| t)
                .collect(),
        }
    }

    /// Takes every lock or none: returns the holders in the way.
    fn try_lock(&self, txn: TxnId, keys: &[Bytes], mode: LockMode) -> Vec<TxnId> {
        let mut blockers: Vec<TxnId> = keys
            .iter()
            .flat_map(|k| self.blockers(txn, k, mode))
            .collect();
        if !blockers.is_empty() {
            blockers.sort_unstable();
            blockers.dedup();
            return blockers;
        }
        let mut locks = self.locks.borrow_mut();
        let mut taken = Vec::new();
        for key in keys {
            // Held already: at the stronger of the two modes.
            let new = match locks.get_mut(key) {
                Some(holders) => holders.take(txn, mode),
                None => {
                    locks.insert(key.clone(), Holder::One(txn, mode));
                    true
                }
            };
            if new {
                taken.push(key.clone());
            }
        }
        drop(locks);
        if txn & TRANSIENT_BIT == 0 {
            self.txns
                .borrow_mut()
                .entry(txn)
                .or_default()
                .locked
                .extend(taken);
        }
        Vec::new()
    }

    /// Locks `keys` for `txn`, waiting while other transactions hold them (as `wait` allows).
    /// Returns whether it had to wait (what it read before may be stale).
    #[allow(clippy::too_many_arguments)]
    pub async fn lock<R: Runtime>(
        &self,
        graph: &WaitGraph,
        rt: &R,
        shard: usize,
        txn: TxnId,
        keys: &[Bytes],
        mode: LockMode,
        wait: &LockWait,
    ) -> Result<bool, SqlError> {
        let mut waited = false;
        let deadline = (wait.timeout_ms > 0).then(|| rt.now_ms() + wait.timeout_ms);
        loop {
            let blockers = self.try_lock(txn, keys, mode);
            if blockers.is_empty() {
                return Ok(waited);
            }
            if wait.nowait {
                return Err(SqlError::new(
                    LOCK_NOT_AVAILABLE,
                    "could not obtain lock on row",
                ));
            }
            graph.wait(txn, shard, blockers)?;
            let _waiting = Waiting {
                graph,
                waiter: txn,
                shard,
            };
            let released = std::pin::pin!(self.released.wait());
            let poll = std::pin::pin!(rt.sleep(LOCK_WAIT_POLL));
            futures_util::future::select(released, poll).await;
            if let Some(cancel) = &wait.cancel {
                cancel.check()?;
            }
            if deadline.is_some_and(|d| rt.now_ms() >= d) {
                return Err(SqlError::new(
                    LOCK_NOT_AVAILABLE,
                    "canceling statement due to lock timeout",
                ));
            }
            waited = true;
        }
    }

    /// Releases every lock of `txn` on this shard.
    fn unlock_keys(&self, txn: TxnId, keys: &[Bytes]) {
        let mut locks = self.locks.borrow_mut();
        for key in keys {
            let remove = match locks.get_mut(key) {
                Some(holders) => holders.release(txn),
                None => false,
            };
            if remove {
                locks.remove(key);
            }
        }
        drop(locks);
        self.released.notify_all();
    }

    /// Releases a transient writer's locks.
    pub fn unlock_transient(&self, txn: TxnId, keys: &[Bytes]) {
        self.unlock_keys(txn, keys);
    }

    /// Ends `txn` here: its intents leave memory and its locks and snapshot go.
    fn finish(&self, txn: TxnId) {
        self.snapshots.borrow_mut().remove(&txn);
        let state = self.txns.borrow_mut().remove(&txn);
        if let Some(state) = state {
            self.unlock_keys(txn, &state.locked);
        }
    }

    /// Records `batch` (built over the transaction's view) as intents tagged with `mark`.
    pub fn add_intents(&self, txn: TxnId, mark: u32, batch: WriteBatch) -> Result<(), SqlError> {
        use helios_engine::lsm::key::ValueKind;
        // Undo records stay in write order: earlier appends go into the map first.
        self.settle_appended(txn);
        let mut txns = self.txns.borrow_mut();
        let state = txns.entry(txn).or_default();
        self.charge(state, &batch)?;
        let mut intents = state.intents.borrow_mut();
        for (kind, key, value) in batch.into_entries() {
            let new = (kind == ValueKind::Put).then_some(value);
            let before = intents.insert(key.clone(), new);
            state.undo.push(Undo { mark, key, before });
        }
        Ok(())
    }

    /// Records rows under new hidden row ids (`batch` holds only their puts) as intents,
    /// without ordering them yet.
    pub fn add_appended(&self, txn: TxnId, mark: u32, batch: WriteBatch) -> Result<(), SqlError> {
        let mut txns = self.txns.borrow_mut();
        let state = txns.entry(txn).or_default();
        self.charge(state, &batch)?;
        state.appended.extend(
            batch
                .into_entries()
                .into_iter()
                .map(|(_, k, v)| (mark, k, v)),
        );
        Ok(())
    }

    /// Moves `txn`'s appended rows into its ordered intents (with their undo records, in
    /// the order they were written), before anything reads or rolls back the intents.
    fn settle_appended(&self, txn: TxnId) {
        let mut txns = self.txns.borrow_mut();
        let Some(state) = txns.get_mut(&txn) else {
            return;
        };
        if state.appended.is_empty() {
            return;
        }
        let mut intents = state.intents.borrow_mut();
        for (mark, key, value) in state.appended.drain(..) {
            let before = intents.insert(key.clone(), Some(value));
            state.undo.push(Undo { mark, key, before });
        }
    }

    /// Whether a transaction other than `except`, or a write outside one, holds rows under
    /// `prefix` here: a row lock (every intent has one), or a row under a new hidden row id
    /// (which takes none).
    pub fn writers_of(&self, prefix: &[u8], except: Option<TxnId>) -> bool {
        let other = |h: &Holder| h.each().any(|(t, _)| Some(t) != except);
        self.locks
            .borrow()
            .iter()
            .any(|(k, h)| k.starts_with(prefix) && other(h))
            || self.txns.borrow().iter().any(|(id, t)| {
                Some(*id) != except && t.appended.iter().any(|(_, k, _)| k.starts_with(prefix))
            })
    }

    /// Whether `txn` holds a lock on, or has appended, a row under `prefix` here: an ALTER
    /// TABLE that froze the table waits for it ([`ShardTxns::writers_of`]).
    pub fn holds_rows_of(&self, txn: TxnId, prefix: &[u8]) -> bool {
        let holds = |h: &Holder| h.each().any(|(t, _)| t == txn);
        self.locks
            .borrow()
            .iter()
            .any(|(k, h)| k.starts_with(prefix) && holds(h))
            || self
                .txns
                .borrow()
                .get(&txn)
                .is_some_and(|t| t.appended.iter().any(|(_, k, _)| k.starts_with(prefix)))
    }

    /// Counts `batch` against the transaction's intent limit; Err (nothing counted) beyond it.
    fn charge(&self, state: &mut ShardTxn, batch: &WriteBatch) -> Result<(), SqlError> {
        let added: usize = batch
            .entries()
            .iter()
            .map(|(_, k, v)| k.len() + v.len() + INTENT_OVERHEAD_BYTES)
            .sum();
        let limit = self.intent_bytes_max();
        if state.bytes + added > limit {
            return Err(too_large(limit));
        }
        state.bytes += added;
        Ok(())
    }

    fn intent_bytes_max(&self) -> usize {
        match self.intent_bytes_max.get() {
            0 => TXN_INTENT_BYTES_MAX,
            n => n,
        }
    }

    /// Lowers the per-transaction intent limit (tests).
    #[cfg(test)]
    pub(crate) fn set_intent_bytes_max(&self, bytes: usize) {
        self.intent_bytes_max.set(bytes);
    }

    /// The intents of `txn` as a batch, moved out (empty: nothing to write here); its locks
    /// stay until [`ShardTxns::finish`].
    fn take_batch(&self, txn: TxnId) -> WriteBatch {
        let (intents, appended) = match self.txns.borrow_mut().get_mut(&txn) {
            Some(state) => (
                std::mem::take(&mut *state.intents.borrow_mut()),
                std::mem::take(&mut state.appended),
            ),
            None => return WriteBatch::new(),
        };
        // Mapped in place (same layout): a COPY's million appended rows are not copied again.
        let puts: Vec<(ValueKind, Bytes, Bytes)> = appended
            .into_iter()
            .map(|(_, k, v)| (ValueKind::Put, k, v))
            .collect();
        let mut batch = WriteBatch::from_entries(puts);
        batch.reserve(intents.len());
        for (k, v) in intents {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        batch
    }

    /// Undoes the writes `txn` made at or after savepoint `mark`.
    fn rollback_to(&self, txn: TxnId, mark: u32) {
        self.settle_appended(txn);
        let mut txns = self.txns.borrow_mut();
        let Some(state) = txns.get_mut(&txn) else {
            return;
        };
        let mut intents = state.intents.borrow_mut();
        while state.undo.last().is_some_and(|u| u.mark >= mark) {
            let u = state.undo.pop().expect("checked");
            match u.before {
                Some(v) => intents.insert(u.key, v),
                None => intents.remove(&u.key),
            };
        }
    }

    pub fn has_intents(&self, txn: TxnId) -> bool {
        self.txns
            .borrow()
            .get(&txn)
            .is_some_and(|t| !t.intents.borrow().is_empty() || !t.appended.is_empty())
    }
}

/// How often a shard looks again whether the writers of a table an ALTER TABLE froze have
/// ended.
const WRITERS_POLL_MS: u64 = 2;

/// A transaction message to one shard.
#[derive(Debug, Clone)]
pub enum TxnMsg {
    /// Pin a snapshot of the newest data under `id`.
    Pin {
        id: u64,
    },
    Release {
        id: u64,
    },
    /// Commit a transaction whose only intents are here: one batch, durable before the reply.
    Commit {
        txn: TxnId,
    },
    /// Send the intents (phase one of a multi-shard commit; the locks stay).
    Gather {
        txn: TxnId,
    },
    /// Apply the intents with the applied marker and release (phase two); answered at once
    /// with the WAL position to sync before the commit record may go.
    Apply {
        txn: TxnId,
    },
    /// Sync the WAL to here (whatever the durability mode).
    SyncTo {
        lsn: u64,
    },
    /// Recovery: apply these entries with the marker unless the marker is there.
    Redo {
        txn: TxnId,
        entries: Vec<Entry>,
    },
    Abort {
        txn: TxnId,
    },
    RollbackTo {
        txn: TxnId,
        mark: u32,
    },
    /// The coordinator's commit record: write it (synced), or delete it.
    WriteRecord {
        txn: TxnId,
        record: Vec<u8>,
    },
    DeleteRecord {
        txn: TxnId,
    },
    /// Delete the applied marker (its commit record is gone for good).
    Forget {
        txn: TxnId,
    },
    /// Recovery: the commit records on this shard.
    Records,
    /// Recovery: delete every applied marker (no commit record is left anywhere).
    DropMarkers,
    /// Delete every key with this prefix (a failed unique index build's claims).
    DeletePrefix {
        prefix: Vec<u8>,
    },
    /// About how many bytes the keys under each prefix take here (`pg_table_size` and its
    /// kin): [`TxnReply::Sizes`], one per prefix.
    StoredBytes {
        prefixes: Vec<Vec<u8>>,
    },
    /// Answer once no transaction (or write outside one) holds rows of the table here: its
    /// writes are frozen, so the ones already in flight only end. 55P03 after `timeout_ms`.
    /// The rows of transaction `except` (the DDL's own block) do not count: it is not
    /// waiting for itself.
    AwaitNoWriters {
        table_id: u32,
        timeout_ms: u64,
        except: Option<TxnId>,
    },
}

/// One intent as it travels: key, value (None: delete).
pub type Entry = (Bytes, Option<Bytes>);

#[derive(Debug, Clone)]
pub enum TxnReply {
    Done,
    Applied(u64),
    Entries(Vec<Entry>),
    Records(Vec<(TxnId, Vec<u8>)>),
    Sizes(Vec<u64>),
}

/// What a shard must do before replying to a transaction message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Durability {
    /// Wait until the WAL is durable to here (the server's durability mode applies).
    pub lsn: u64,
    /// Sync the WAL to `lsn` whatever the durability mode (commit records, multi-shard
    /// applies: losing one would leave a transaction half-applied).
    pub force_sync: bool,
}

fn record_key(txn: TxnId) -> Bytes {
    let mut k = vec![RECORD_PREFIX];
    k.extend_from_slice(&txn.to_be_bytes());
    Bytes::from(k)
}

fn marker_key(txn: TxnId) -> Bytes {
    let mut k = vec![MARKER_PREFIX];
    k.extend_from_slice(&txn.to_be_bytes());
    Bytes::from(k)
}

fn txn_of_key(key: &[u8]) -> Option<TxnId> {
    Some(TxnId::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// Runs a transaction message on this shard.
pub async fn txn_local<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    rt: &R,
    txns: &ShardTxns,
    msg: TxnMsg,
) -> Result<(TxnReply, Durability), SqlError> {
    let done = |d: Durability| Ok((TxnReply::Done, d));
    match msg {
        TxnMsg::AwaitNoWriters {
            table_id,
            timeout_ms,
            except,
        } => {
            let prefix = crate::rowcodec::table_prefix(table_id);
            let deadline = rt.now_ms().saturating_add(timeout_ms);
            while txns.writers_of(&prefix, except) {
                if rt.now_ms() >= deadline {
                    return Err(SqlError::new(
                        "55P03",
                        "could not lock the relation for ALTER TABLE: open transactions hold \
                         rows of it",
                    ));
                }
                rt.sleep(std::time::Duration::from_millis(WRITERS_POLL_MS))
                    .await;
            }
            done(Durability::default())
        }
        TxnMsg::DeletePrefix { prefix } => {
            let lsn = crate::cluster::delete_prefix_local(lsm, rt, &prefix).await?;
            done(Durability {
                lsn,
                force_sync: false,
            })
        }
        TxnMsg::Pin { id } => {
            txns.snapshots.borrow_mut().insert(id, lsm.snapshot());
            done(Durability::default())
        }
        TxnMsg::Release { id } => {
            txns.snapshots.borrow_mut().remove(&id);
            done(Durability::default())
        }
        TxnMsg::Commit { txn } => {
            // Written before the locks go: no one may read the rows' old versions after.
            let written = write_batch(lsm, txns.take_batch(txn)).await;
            txns.finish(txn);
            let lsn = written?;
            done(Durability {
                lsn,
                force_sync: false,
            })
        }
        TxnMsg::Gather { txn } => {
            txns.settle_appended(txn);
            let entries = txns
                .txns
                .borrow()
                .get(&txn)
                .map(|t| {
                    t.intents
                        .borrow()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Ok((TxnReply::Entries(entries), Durability::default()))
        }
        TxnMsg::Apply { txn } => {
            // Not waited for: the commit record holds this part until it is durable (the
            // record goes only after `SyncTo`).
            let mut batch = txns.take_batch(txn);
            batch.put(marker_key(txn), Bytes::new());
            let written = write_batch(lsm, batch).await;
            txns.finish(txn);
            Ok((TxnReply::Applied(written?), Durability::default()))
        }
        TxnMsg::SyncTo { lsn } => done(Durability {
            lsn,
            force_sync: true,
        }),
        TxnMsg::Redo { txn, entries } => {
            if lsm
                .get(&marker_key(txn), None)
                .await
                .map_err(storage_error)?
                .is_some()
            {
                return done(Durability::default());
            }
            let mut batch = WriteBatch::new();
            for (k, v) in entries {
                match v {
                    Some(v) => batch.put(k, v),
                    None => batch.delete(k),
                }
            }
            batch.put(marker_key(txn), Bytes::new());
            let lsn = write_batch(lsm, batch).await?;
            done(Durability {
                lsn,
                force_sync: true,
            })
        }
        TxnMsg::Abort { txn } => {
            txns.finish(txn);
            done(Durability::default())
        }
        TxnMsg::RollbackTo { txn, mark } => {
            txns.rollback_to(txn, mark);
            done(Durability::default())
        }
        TxnMsg::WriteRecord { txn, record } => {
            done(write_one(lsm, record_key(txn), Some(Bytes::from(record)), true).await?)
        }
        TxnMsg::DeleteRecord { txn } => done(write_one(lsm, record_key(txn), None, true).await?),
        TxnMsg::Forget { txn } => done(write_one(lsm, marker_key(txn), None, false).await?),
        TxnMsg::StoredBytes { prefixes } => {
            let mut sizes = Vec::with_capacity(prefixes.len());
            for prefix in &prefixes {
                let end = helios_engine::lsm::prefix_upper_bound(prefix);
                let bytes = lsm
                    .approximate_bytes(prefix, end.as_deref())
                    .await
                    .map_err(crate::cluster::storage_error)?;
                sizes.push(bytes);
            }
            Ok((TxnReply::Sizes(sizes), Durability::default()))
        }
        TxnMsg::Records => {
            let mut records = Vec::new();
            for (key, value) in keys_with_prefix(lsm, RECORD_PREFIX).await? {
                if let Some(txn) = txn_of_key(&key) {
                    records.push((txn, value.to_vec()));
                }
            }
            Ok((TxnReply::Records(records), Durability::default()))
        }
        TxnMsg::DropMarkers => {
            let mut batch = WriteBatch::new();
            for (key, _) in keys_with_prefix(lsm, MARKER_PREFIX).await? {
                batch.delete(key);
            }
            let lsn = write_batch(lsm, batch).await?;
            done(Durability {
                lsn,
                force_sync: true,
            })
        }
    }
}

/// Puts (or deletes, `value` None) one key; what to wait for before replying.
async fn write_one<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    key: Bytes,
    value: Option<Bytes>,
    force_sync: bool,
) -> Result<Durability, SqlError> {
    let mut batch = WriteBatch::new();
    match value {
        Some(v) => batch.put(key, v),
        None => batch.delete(key),
    }
    let lsn = write_batch(lsm, batch).await?;
    Ok(Durability { lsn, force_sync })
}

async fn keys_with_prefix<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    prefix: u8,
) -> Result<Vec<(Bytes, Bytes)>, SqlError> {
    let mut out = Vec::new();
    let mut iter = lsm
        .prefix_iter(&[prefix], None)
        .await
        .map_err(storage_error)?;
    while iter.valid() {
        out.push((iter.key().clone(), iter.value_bytes()));
        iter.next().await.map_err(storage_error)?;
    }
    Ok(out)
}

async fn write_batch<F: FileSystem + Clone + 'static, R: Runtime>(
    lsm: &Lsm<F, R>,
    batch: WriteBatch,
) -> Result<u64, SqlError> {
    if batch.is_empty() {
        return Ok(lsm.wal().last_lsn());
    }
    lsm.wait_for_write_room().await.map_err(storage_error)?;
    lsm.write_owned(batch).map_err(storage_error)
}

/// A commit record: its commit timestamp (a [`HybridClock`] reading; recovery redoes records
/// in this order: a transaction that changed a row after another did commits after it), then
/// per participant shard its entries.
/// Layout: varint commit timestamp; varint participants; per participant: varint shard, varint
/// entries; per entry: u8 kind (1 put, 0 delete), varint key length, key, [varint value
/// length, value].
pub fn encode_record(commit_seq: u64, parts: &[(usize, Vec<Entry>)]) -> Vec<u8> {
    use helios_engine::lsm::batch::put_varint;
    let mut out = Vec::new();
    put_varint(&mut out, commit_seq);
    put_varint(&mut out, parts.len() as u64);
    for (shard, entries) in parts {
        put_varint(&mut out, *shard as u64);
        put_varint(&mut out, entries.len() as u64);
        for (k, v) in entries {
            out.push(u8::from(v.is_some()));
            put_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k);
            if let Some(v) = v {
                put_varint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// A decoded commit record: (commit sequence, per participant its entries).
pub type Record = (u64, Vec<(usize, Vec<Entry>)>);

pub fn decode_record(bytes: &[u8]) -> Result<Record, SqlError> {
    use helios_engine::lsm::batch::get_varint;
    let corrupt = || SqlError::new("XX001", "a transaction commit record is corrupt");
    let mut at = 0;
    let take = |at: &mut usize, n: usize| -> Result<Bytes, SqlError> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(corrupt)?;
        let out = Bytes::copy_from_slice(&bytes[*at..end]);
        *at = end;
        Ok(out)
    };
    let commit_seq = get_varint(bytes, &mut at).ok_or_else(corrupt)?;
    let count = get_varint(bytes, &mut at).ok_or_else(corrupt)?;
    let mut parts = Vec::new();
    for _ in 0..count {
        let shard = get_varint(bytes, &mut at).ok_or_else(corrupt)? as usize;
        let n = get_varint(bytes, &mut at).ok_or_else(corrupt)?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let kind = take(&mut at, 1)?[0];
            let klen = get_varint(bytes, &mut at).ok_or_else(corrupt)? as usize;
            let key = take(&mut at, klen)?;
            let value = if kind == 1 {
                let vlen = get_varint(bytes, &mut at).ok_or_else(corrupt)? as usize;
                Some(take(&mut at, vlen)?)
            } else {
                None
            };
            entries.push((key, value));
        }
        parts.push((shard, entries));
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok((commit_seq, parts))
}

// ---------------------------------------------------------------------------------------
// Cluster-wide: commit timestamps
// ---------------------------------------------------------------------------------------

/// A hybrid logical clock: wall-clock milliseconds in the high 48 bits, a counter in the low
/// 16. Readings never go backwards and never repeat, even when the wall clock stalls or steps
/// back. Multi-shard commits take their timestamp from it (one clock per process: its shards
/// share it; across nodes each would merge the timestamps it receives).
#[derive(Debug, Default)]
pub struct HybridClock {
    last: std::sync::atomic::AtomicU64,
}

impl HybridClock {
    pub fn now(&self, wall_ms: u64) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        let physical = wall_ms << 16;
        let next = |last: u64| physical.max(last + 1);
        match self
            .last
            .fetch_update(SeqCst, SeqCst, |last| Some(next(last)))
        {
            Ok(previous) | Err(previous) => next(previous),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cluster-wide: the commit gate
// ---------------------------------------------------------------------------------------

/// Keeps snapshot pinning and multi-shard applies apart: any number of either may run at
/// once, never both, so the snapshots pinned on the shards see each multi-shard commit on all
/// of its shards or on none. Holds are short (one round of messages); a side with waiters
/// gets the next turn, so neither starves.
#[derive(Default, Debug)]
pub struct CommitGate {
    state: Mutex<GateState>,
}

#[derive(Default, Debug)]
struct GateState {
    active: [usize; 2],
    waiting: [usize; 2],
    turn: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateSide {
    Pin = 0,
    Apply = 1,
}

impl CommitGate {
    /// Enters on `side` if it may now; `was_waiting` says whether this caller counted itself
    /// as waiting before.
    fn try_enter(&self, side: GateSide, was_waiting: bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let me = side as usize;
        let other = 1 - me;
        let ok = s.active[other] == 0 && (s.waiting[other] == 0 || s.turn == me);
        if ok {
            s.active[me] += 1;
            if was_waiting {
                s.waiting[me] -= 1;
            }
        } else {
            if !was_waiting {
                s.waiting[me] += 1;
            }
            // The other side is in: it takes no newcomers until this side has had a turn.
            if s.active[other] > 0 {
                s.turn = me;
            }
        }
        ok
    }

    fn leave(&self, side: GateSide) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let me = side as usize;
        s.active[me] -= 1;
        if s.active[me] == 0 && s.waiting[1 - me] > 0 {
            s.turn = 1 - me;
        }
    }

    fn give_up(&self, side: GateSide) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.waiting[side as usize] -= 1;
    }
}

/// Held while on one side of the gate.
pub struct GatePass<'a> {
    gate: &'a CommitGate,
    side: GateSide,
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.gate.leave(self.side);
    }
}

struct GateWaiter<'a> {
    gate: &'a CommitGate,
    side: GateSide,
    waiting: bool,
}

impl Drop for GateWaiter<'_> {
    fn drop(&mut self) {
        if self.waiting {
            self.gate.give_up(self.side);
        }
    }
}

pub(crate) async fn enter_gate<C: Cluster>(cluster: &C, side: GateSide) -> GatePass<'_> {
    let gate = cluster.commit_gate();
    let mut w = GateWaiter {
        gate,
        side,
        waiting: false,
    };
    loop {
        if gate.try_enter(side, w.waiting) {
            w.waiting = false;
            return GatePass { gate, side };
        }
        w.waiting = true;
        cluster.pause().await;
    }
}

// ---------------------------------------------------------------------------------------
// Coordinator side: a connection's transaction
// ---------------------------------------------------------------------------------------

/// A connection's transaction state, kept by its cluster handle.
#[derive(Default, Debug)]
pub struct ConnTxn {
    pub(crate) current: Option<TxnState>,
    /// The running READ COMMITTED statement's snapshot.
    pub(crate) statement_snapshot: StatementSnapshot,
    /// Set while a DDL statement runs: its own reads and writes are not the transaction's.
    pub(crate) suspended: bool,
    /// The running statement's cancel flag and `lock_timeout`.
    pub(crate) wait: LockWait,
    /// The statement snapshot's pin ticket while its first fragments are on their way.
    pub(crate) ticket: std::sync::Weak<PinTicket>,
    /// The committing transaction's commit record is durable: it is committed, whatever
    /// fails after.
    pub(crate) past_commit_point: bool,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatementSnapshot {
    #[default]
    None,
    /// Being pinned by another fragment of the statement.
    Pinning,
    Pinned(u64),
}

#[derive(Debug)]
pub(crate) struct TxnState {
    pub(crate) id: TxnId,
    pub(crate) isolation: Isolation,
    /// A one-statement transaction around an autocommit write.
    pub(crate) implicit: bool,
    /// Shards holding its intents or locks.
    pub(crate) touched: BTreeSet<usize>,
    /// Tables whose rows (or unique claims) it has written or locked: DDL on one of them
    /// inside the block is refused.
    pub(crate) tables: BTreeSet<u32>,
    /// REPEATABLE READ: its snapshot (id = its id) is pinned on every shard.
    pub(crate) pinned: StatementSnapshot,
    pub(crate) savepoints: Vec<(String, u32)>,
    next_mark: u32,
    /// Its DDL is pending in the catalog: COMMIT flips its marker, ROLLBACK undoes it
    /// ([`crate::ddl_undo`]).
    pub(crate) ddl: bool,
    /// A statement of it has read (taken a snapshot): SET TRANSACTION ISOLATION LEVEL is
    /// too late from then on, even at READ COMMITTED, whose snapshots are not kept.
    pub(crate) queried: bool,
    /// INITIALLY DEFERRED foreign key checks for COMMIT: (savepoint mark when queued,
    /// referencing table id, constraint name, keys).
    pub(crate) deferred_checks: Vec<DeferredCheck>,
    /// SET CONSTRAINTS: deferrable constraints made DEFERRED (true) or IMMEDIATE for the
    /// rest of the transaction, all of them (`None` key) or by (table id, name).
    pub(crate) constraint_modes: HashMap<Option<(u32, String)>, bool>,
    /// Row keys this transaction inserted or updated (keeping their key) and has not
    /// deleted since: they exist, under its write lock, so a foreign key referencing one
    /// needs no lookup. Cleared by anything that might delete or move a row
    /// ([`forget_written_rows`]); at most [`WRITTEN_ROWS_MAX`].
    pub(crate) written_rows: std::collections::HashSet<Bytes>,
}

/// Rows a transaction remembers writing, at most (beyond it, foreign keys look them up).
const WRITTEN_ROWS_MAX: usize = 4096;

/// Notes rows the connection's transaction inserted or updated in place (see
/// [`TxnState::written_rows`]).
pub(crate) fn note_written_rows<C: Cluster>(cluster: &C, keys: impl Iterator<Item = Bytes>) {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut() else {
        return;
    };
    for key in keys {
        if t.written_rows.len() >= WRITTEN_ROWS_MAX {
            break;
        }
        t.written_rows.insert(key);
    }
}

/// A statement may have deleted or moved rows: the transaction forgets which rows it wrote.
pub(crate) fn forget_written_rows<C: Cluster>(cluster: &C) {
    if let Some(t) = cluster.conn_txn().borrow_mut().current.as_mut() {
        t.written_rows.clear();
    }
}

/// Whether the connection's transaction wrote row `key` and still has it.
pub(crate) fn wrote_row<C: Cluster>(cluster: &C, key: &[u8]) -> bool {
    cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_some_and(|t| t.written_rows.contains(key))
}

/// A deferred foreign key check: the referencing keys a statement wrote.
#[derive(Debug, Clone)]
pub(crate) struct DeferredCheck {
    mark: u32,
    table_id: u32,
    constraint: String,
    keys: Vec<Vec<crate::types::Datum>>,
}

/// Queues a deferred foreign key check for COMMIT when the connection is in a transaction
/// block (true); outside one (false) the statement's end is the commit, and it checks now.
pub(crate) fn defer_check<C: Cluster>(
    cluster: &C,
    table_id: u32,
    constraint: &str,
    keys: &[Vec<crate::types::Datum>],
) -> bool {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut().filter(|t| !t.implicit) else {
        return false;
    };
    let mark = t.mark();
    t.deferred_checks.push(DeferredCheck {
        mark,
        table_id,
        constraint: constraint.to_string(),
        keys: keys.to_vec(),
    });
    true
}

/// A rewrite in the block gave table `old_id`'s rows id `new_id`: its queued deferred checks
/// hold for the new id too. The old id's stay, for a ROLLBACK TO that takes the rewrite
/// back (COMMIT checks only the ids the catalog has).
pub(crate) fn table_rewritten<C: Cluster>(cluster: &C, old_id: u32, new_id: u32) {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut() else {
        return;
    };
    let moved: Vec<DeferredCheck> = t
        .deferred_checks
        .iter()
        .filter(|d| d.table_id == old_id)
        .map(|d| DeferredCheck {
            table_id: new_id,
            ..d.clone()
        })
        .collect();
    t.deferred_checks.extend(moved);
}

/// The deferred foreign key checks queued so far for the constraints `which` picks (by
/// table id and name), taken out: (table id, constraint, keys).
pub(crate) fn take_deferred_checks<C: Cluster>(
    cluster: &C,
    which: &dyn Fn(u32, &str) -> bool,
) -> Vec<(u32, String, Vec<Vec<crate::types::Datum>>)> {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut() else {
        return Vec::new();
    };
    let (taken, kept) = std::mem::take(&mut t.deferred_checks)
        .into_iter()
        .partition(|d| which(d.table_id, &d.constraint));
    t.deferred_checks = kept;
    taken
        .into_iter()
        .map(|d: DeferredCheck| (d.table_id, d.constraint, d.keys))
        .collect()
}

/// Whether a deferrable constraint is deferred in the connection's transaction: as SET
/// CONSTRAINTS last made it (by name, else ALL), else as declared.
pub(crate) fn constraint_deferred<C: Cluster>(
    cluster: &C,
    table_id: u32,
    name: &str,
    initially_deferred: bool,
) -> bool {
    let conn = cluster.conn_txn().borrow();
    let Some(t) = conn.current.as_ref() else {
        return initially_deferred;
    };
    t.constraint_modes
        .get(&Some((table_id, name.to_string())))
        .or_else(|| t.constraint_modes.get(&None))
        .copied()
        .unwrap_or(initially_deferred)
}

/// SET CONSTRAINTS: `constraints` (None: ALL) deferred or immediate for the rest of the
/// transaction.
pub(crate) fn set_constraint_modes<C: Cluster>(
    cluster: &C,
    constraints: Option<Vec<(u32, String)>>,
    deferred: bool,
) {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut() else {
        return;
    };
    match constraints {
        None => {
            t.constraint_modes.clear();
            t.constraint_modes.insert(None, deferred);
        }
        Some(list) => {
            for c in list {
                t.constraint_modes.insert(Some(c), deferred);
            }
        }
    }
}

impl TxnState {
    fn mark(&self) -> u32 {
        self.savepoints.last().map_or(0, |s| s.1)
    }
}

/// The catalog as the connection owning `conn` sees it: without other open blocks'
/// uncommitted DDL ([`Catalog::view_for`]).
pub fn catalog_view(
    catalog: &std::sync::Arc<crate::catalog::Catalog>,
    conn: &std::cell::RefCell<ConnTxn>,
) -> std::sync::Arc<crate::catalog::Catalog> {
    if catalog.pending.is_empty() {
        return catalog.clone();
    }
    let Ok(conn) = conn.try_borrow() else {
        debug_assert!(
            false,
            "the catalog is read while the connection's transaction changes"
        );
        return catalog.clone();
    };
    let block = conn.current.as_ref().map(|t| t.id);
    crate::catalog::Catalog::view_for(catalog, block)
}

/// Starts a transaction on the connection.
pub(crate) fn begin<C: Cluster>(cluster: &C, isolation: Isolation, implicit: bool) -> TxnId {
    let id = cluster.new_txn_id();
    assert!(
        id & TRANSIENT_BIT == 0,
        "transaction ids stay below the transient bit"
    );
    cluster.conn_txn().borrow_mut().current = Some(TxnState {
        id,
        isolation,
        implicit,
        touched: BTreeSet::new(),
        tables: BTreeSet::new(),
        pinned: StatementSnapshot::None,
        savepoints: Vec::new(),
        next_mark: 0,
        ddl: false,
        queried: false,
        deferred_checks: Vec::new(),
        constraint_modes: HashMap::new(),
        written_rows: Default::default(),
    });
    id
}

pub(crate) fn in_transaction<C: Cluster>(cluster: &C) -> bool {
    cluster.conn_txn().borrow().current.is_some()
}

/// Whether the connection's statements read the newest committed version of a row they
/// change (READ COMMITTED, in a transaction or not), not a transaction snapshot's.
pub(crate) fn reads_newest<C: Cluster>(cluster: &C) -> bool {
    cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_none_or(|t| t.isolation == Isolation::ReadCommitted)
}

/// Whether the connection's transaction block made table `table` (created it, or truncated
/// it into a fresh id) in its pending DDL: what COPY FREEZE requires.
pub(crate) fn block_made_table<C: Cluster>(cluster: &C, table: &crate::catalog::Table) -> bool {
    let conn = cluster.conn_txn().borrow();
    let Some(t) = conn.current.as_ref().filter(|t| !t.implicit) else {
        return false;
    };
    let catalog = cluster.catalog();
    catalog
        .pending
        .get(&t.id)
        .is_some_and(|p| p.made_table(&catalog, table.id))
}

/// Whether a COPY FREEZE into `table` (which [`block_made_table`]) may write its rows
/// straight into the shards' tables ([`Cluster::ingest`]) instead of holding them as the
/// transaction's intents: no one else reads or writes the table until the block commits
/// ([`crate::ddl_undo`]), and a rollback (or a crash before COMMIT) makes every row under its
/// id garbage — as PostgreSQL's COPY FREEZE skips the WAL there, and with its visibility:
/// the rows carry the load's sequence number, not the commit's, so a REPEATABLE READ
/// snapshot taken between them sees them once the block commits. Only at READ COMMITTED (the
/// block's own snapshot must see them), with no savepoint (a ROLLBACK TO could not take them
/// back), and for rows under hidden row ids with no index (nothing to check or maintain).
pub(crate) fn copy_may_ingest<C: Cluster>(
    cluster: &C,
    table: &crate::catalog::Table,
    has_indexes: bool,
) -> bool {
    // (A foreign key's check reads the rows the COPY wrote as the statement's own.)
    if !table.primary_key.is_empty() || has_indexes || !table.foreign_keys.is_empty() {
        return false;
    }
    let conn = cluster.conn_txn().borrow();
    let Some(t) = conn.current.as_ref() else {
        return false;
    };
    t.ddl && t.isolation == Isolation::ReadCommitted && t.savepoints.is_empty()
}

/// Whether the connection's block has DDL pending in the catalog.
pub(crate) fn has_pending_ddl<C: Cluster>(cluster: &C) -> bool {
    cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_some_and(|t| t.ddl)
}

/// Whether the connection's transaction has written anything yet.
/// The connection's open transaction, if any.
pub(crate) fn current_id<C: Cluster>(cluster: &C) -> Option<TxnId> {
    cluster.conn_txn().borrow().current.as_ref().map(|t| t.id)
}

/// The context of a scan of table `table_id` by DDL, which runs suspended from its block
/// (None: no DDL is running). Of a table the block has written or locked rows of, it reads
/// the newest committed rows and the block's own, so that a check or an index build sees
/// them, as PostgreSQL's DDL in a block does; of others, the newest committed rows only.
pub(crate) fn ddl_scan_ctx<C: Cluster>(cluster: &C, table_id: u32) -> Option<Option<TxnCtx>> {
    let conn = cluster.conn_txn().borrow();
    if !conn.suspended {
        return None;
    }
    let t = conn.current.as_ref();
    Some(t.filter(|t| t.tables.contains(&table_id)).map(|t| TxnCtx {
        id: t.id,
        isolation: Isolation::ReadCommitted,
        snapshot: None,
        mark: t.mark(),
        wait: conn.wait.clone(),
    }))
}

pub(crate) fn has_touched<C: Cluster>(cluster: &C) -> bool {
    cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_some_and(|t| !t.touched.is_empty())
}

/// Whether the connection is in a REPEATABLE READ transaction that has taken its snapshot:
/// rows DDL writes now (a rewrite's, an index build's) would be invisible to it.
pub(crate) fn snapshot_taken<C: Cluster>(cluster: &C) -> bool {
    cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_some_and(|t| {
            t.isolation == Isolation::RepeatableRead && t.pinned != StatementSnapshot::None
        })
}

/// The first of `tables` whose rows the transaction has written or locked.
pub(crate) fn first_touched_of<C: Cluster>(cluster: &C, tables: &[u32]) -> Option<u32> {
    let conn = cluster.conn_txn().borrow();
    let t = conn.current.as_ref()?;
    tables.iter().copied().find(|id| t.tables.contains(id))
}

/// Before each statement: what may end its lock waits.
pub(crate) fn statement_start<C: Cluster>(cluster: &C, session: &crate::Session) {
    cluster.conn_txn().borrow_mut().wait = LockWait {
        cancel: Some(session.cancel_flag()),
        timeout_ms: session.lock_timeout_ms(),
        nowait: false,
    };
}

pub(crate) fn set_suspended<C: Cluster>(cluster: &C, suspended: bool) {
    cluster.conn_txn().borrow_mut().suspended = suspended;
}

/// The context a write fragment for `shard` carries (None: outside any transaction); it
/// writes or locks rows of table `table_id`.
pub fn write_ctx<C: Cluster>(cluster: &C, shard: usize, table_id: u32) -> Option<TxnCtx> {
    let mut conn = cluster.conn_txn().borrow_mut();
    if conn.suspended {
        return None;
    }
    let snapshot = match conn.statement_snapshot {
        StatementSnapshot::Pinned(id) => Some(id),
        _ => None,
    };
    let t = conn.current.as_mut()?;
    t.touched.insert(shard);
    t.tables.insert(table_id);
    let snapshot = match t.isolation {
        Isolation::RepeatableRead => Some(t.id),
        Isolation::ReadCommitted => snapshot,
    };
    Some(TxnCtx {
        id: t.id,
        isolation: t.isolation,
        snapshot,
        mark: t.mark(),
        wait: conn.wait.clone(),
    })
}

/// The context a scan fragment carries. A REPEATABLE READ transaction pins its snapshot on
/// every shard first (once); a READ COMMITTED statement does for itself unless it reads one
/// row key (`point`) or there is one shard.
/// The context of a scan that reads the newest committed rows and the transaction's own
/// (None: outside a transaction, where that is what every scan reads).
pub(crate) fn newest_ctx<C: Cluster>(cluster: &C) -> Option<TxnCtx> {
    let conn = cluster.conn_txn().borrow();
    if conn.suspended {
        return None; // DDL reads outside the transaction ([`ddl_scan_ctx`])
    }
    let wait = conn.wait.clone();
    conn.current.as_ref().map(|t| TxnCtx {
        id: t.id,
        isolation: Isolation::ReadCommitted,
        snapshot: None,
        mark: t.mark(),
        wait,
    })
}

pub async fn scan_ctx<C: Cluster>(
    cluster: &C,
    point: bool,
) -> Result<(Option<TxnCtx>, Option<Arc<PinTicket>>), SqlError> {
    loop {
        let (id, isolation, mark, state, rr, wait) = {
            let mut conn = cluster.conn_txn().borrow_mut();
            let wait = conn.wait.clone();
            if conn.suspended {
                return Ok((None, None));
            }
            if let Some(t) = conn.current.as_mut() {
                t.queried = true;
            }
            match &conn.current {
                Some(t) if t.isolation == Isolation::RepeatableRead => {
                    (t.id, t.isolation, t.mark(), t.pinned, true, wait)
                }
                Some(t) => (
                    t.id,
                    t.isolation,
                    t.mark(),
                    conn.statement_snapshot,
                    false,
                    wait,
                ),
                None => (
                    0,
                    Isolation::ReadCommitted,
                    0,
                    conn.statement_snapshot,
                    false,
                    wait,
                ),
            }
        };
        let ctx = |snapshot: Option<u64>| {
            (id != 0 || snapshot.is_some()).then(|| TxnCtx {
                id,
                isolation,
                snapshot,
                mark,
                wait: wait.clone(),
            })
        };
        match state {
            StatementSnapshot::Pinned(s) if rr => return Ok((ctx(Some(s)), None)),
            StatementSnapshot::Pinned(s) => {
                // Fragments that reach a shard before the first wave's may pin it too.
                let ticket = cluster.conn_txn().borrow().ticket.upgrade();
                return Ok((ctx(Some(s)), ticket));
            }
            StatementSnapshot::Pinning => cluster.pause().await,
            StatementSnapshot::None => {
                if !rr && (point || cluster.shard_count() == 1) {
                    return Ok((ctx(None), None));
                }
                let snapshot = if rr { id } else { cluster.new_txn_id() };
                set_snapshot_state(cluster, rr, StatementSnapshot::Pinning);
                if rr {
                    // Once per transaction, and its first statement may not scan every
                    // shard: pinned everywhere now.
                    let pinned = pin_all(cluster, snapshot).await;
                    let next = match &pinned {
                        Ok(()) => StatementSnapshot::Pinned(snapshot),
                        Err(_) => StatementSnapshot::None,
                    };
                    set_snapshot_state(cluster, rr, next);
                    pinned?;
                    return Ok((ctx(Some(snapshot)), None));
                }
                // A statement's snapshot is pinned by its first scan's fragments as they
                // arrive (no round of its own), the gate held until the last one has.
                let pass = enter_gate(cluster, GateSide::Pin).await;
                std::mem::forget(pass);
                let ticket = Arc::new(PinTicket {
                    gate: cluster.commit_gate().clone(),
                    snapshot,
                });
                {
                    let mut conn = cluster.conn_txn().borrow_mut();
                    conn.ticket = Arc::downgrade(&ticket);
                    conn.statement_snapshot = StatementSnapshot::Pinned(snapshot);
                }
                return Ok((ctx(Some(snapshot)), Some(ticket)));
            }
        }
    }
}

/// Keeps the commit gate's Pin side held until every fragment that carries a clone has
/// pinned the statement's snapshot on its shard ([`crate::ScanRequest::pin_on_arrival`]
/// drops the clone): the snapshots are then pinned with no multi-shard commit applied
/// between them, without a round of messages of their own.
pub struct PinTicket {
    gate: Arc<CommitGate>,
    pub snapshot: u64,
}

impl Drop for PinTicket {
    fn drop(&mut self) {
        self.gate.leave(GateSide::Pin);
    }
}

impl std::fmt::Debug for PinTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinTicket({})", self.snapshot)
    }
}

fn set_snapshot_state<C: Cluster>(cluster: &C, rr: bool, state: StatementSnapshot) {
    let mut conn = cluster.conn_txn().borrow_mut();
    if rr {
        if let Some(t) = conn.current.as_mut() {
            t.pinned = state;
        }
    } else {
        conn.statement_snapshot = state;
    }
}

/// Pins snapshot `id` on every shard, while no multi-shard commit is being applied.
async fn pin_all<C: Cluster>(cluster: &C, id: u64) -> Result<(), SqlError> {
    let _pass = enter_gate(cluster, GateSide::Pin).await;
    let calls = (0..cluster.shard_count()).map(|s| cluster.txn_call(s, TxnMsg::Pin { id }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    Ok(())
}

pub async fn release_all<C: Cluster>(cluster: &C, id: u64) -> Result<(), SqlError> {
    let calls = (0..cluster.shard_count()).map(|s| cluster.txn_call(s, TxnMsg::Release { id }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    Ok(())
}

/// After each statement: releases its snapshot, and ends a one-statement transaction
/// (committed when the statement succeeded).
pub(crate) async fn statement_end<C: Cluster>(cluster: &C, ok: bool) -> Result<(), SqlError> {
    let snapshot = std::mem::take(&mut cluster.conn_txn().borrow_mut().statement_snapshot);
    if let StatementSnapshot::Pinned(id) = snapshot {
        cluster.release_snapshot(id).await;
    }
    let implicit = cluster
        .conn_txn()
        .borrow()
        .current
        .as_ref()
        .is_some_and(|t| t.implicit);
    if implicit {
        if ok {
            commit(cluster).await?;
        } else {
            abort(cluster).await?;
        }
    }
    Ok(())
}

/// The block a DDL statement of this connection belongs to (None: outside one).
pub(crate) fn ddl_owner<C: Cluster + ?Sized>(cluster: &C) -> Option<crate::catalog::DdlOwner> {
    let conn = cluster.conn_txn().borrow();
    conn.current
        .as_ref()
        .filter(|t| !t.implicit)
        .map(|t| crate::catalog::DdlOwner {
            txn: t.id,
            mark: t.mark(),
        })
}

/// The block's DDL is now pending in the catalog.
pub(crate) fn note_pending_ddl<C: Cluster + ?Sized>(cluster: &C) {
    if let Some(t) = cluster.conn_txn().borrow_mut().current.as_mut() {
        t.ddl = true;
    }
}

/// Ends block `txn`'s pending DDL: forgets it (`undo_from` None) or undoes the steps made at
/// or after that savepoint mark.
async fn end_ddl<C: Cluster>(
    cluster: &C,
    txn: TxnId,
    undo_from: Option<u32>,
) -> Result<(), SqlError> {
    cluster
        .apply_ddl(crate::catalog::DdlRequest {
            change: crate::catalog::DdlChange::EndDdl { txn, undo_from },
            owner: None,
        })
        .await
        .map(|_| ())
}

/// Writes the committed DDL marker as one of the transaction's writes on shard 0, so that
/// it becomes durable exactly when the rest of the commit does.
async fn write_ddl_marker<C: Cluster>(cluster: &C) -> Result<(), SqlError> {
    const MARKER_SHARD: usize = 0;
    let ctx = {
        let mut conn = cluster.conn_txn().borrow_mut();
        let wait = conn.wait.clone();
        let t = conn.current.as_mut().expect("a transaction is committing");
        t.touched.insert(MARKER_SHARD);
        TxnCtx {
            id: t.id,
            isolation: t.isolation,
            snapshot: None,
            mark: 0,
            wait,
        }
    };
    let txn = ctx.id;
    let req = crate::cluster::WriteRequest {
        ops: vec![crate::cluster::RowOp::Append {
            key: crate::ddl_undo::marker_key(txn),
            value: bytes::Bytes::from_static(crate::ddl_undo::MARKER_COMMITTED),
        }],
        constraint: String::new(),
        indexes: Vec::new(),
        txn: Some(ctx),
    };
    cluster.write(MARKER_SHARD, req).await.map(|_| ())
}

/// Ends the connection's transaction, undoing everything it wrote (its DDL too).
pub(crate) async fn abort<C: Cluster>(cluster: &C) -> Result<(), SqlError> {
    let Some(t) = cluster.conn_txn().borrow_mut().current.take() else {
        return Ok(());
    };
    let undone = abort_rows(cluster, &t).await;
    if t.ddl {
        end_ddl(cluster, t.id, Some(0)).await?;
    }
    undone
}

async fn abort_rows<C: Cluster>(cluster: &C, t: &TxnState) -> Result<(), SqlError> {
    let shards: BTreeSet<usize> = if t.pinned == StatementSnapshot::None {
        t.touched.clone()
    } else {
        (0..cluster.shard_count()).collect()
    };
    let calls = shards
        .iter()
        .map(|&s| cluster.txn_call(s, TxnMsg::Abort { txn: t.id }));
    let mut first_error = None;
    for r in futures_util::future::join_all(calls).await {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Commits the connection's transaction: on its one shard with intents directly, or across
/// several through a commit record (see the module comment). A block with DDL commits its
/// marker with its rows, then has the catalog forget the DDL's undo.
pub(crate) async fn commit<C: Cluster>(cluster: &C) -> Result<(), SqlError> {
    let ddl = {
        let conn = cluster.conn_txn().borrow();
        conn.current.as_ref().filter(|t| t.ddl).map(|t| t.id)
    };
    let Some(txn) = ddl else {
        return commit_rows(cluster).await;
    };
    if let Err(e) = write_ddl_marker(cluster).await {
        abort(cluster).await?;
        return Err(e);
    }
    cluster.conn_txn().borrow_mut().past_commit_point = false;
    match commit_rows(cluster).await {
        Ok(()) => end_ddl(cluster, txn, None).await,
        Err(e) => {
            // Committed for sure (the record is durable): the DDL is too. Otherwise it is
            // unknown whether the commit is durable, and the DDL stays pending until a
            // restart settles it by its marker.
            if std::mem::take(&mut cluster.conn_txn().borrow_mut().past_commit_point) {
                let _ = end_ddl(cluster, txn, None).await;
            }
            Err(e)
        }
    }
}

async fn commit_rows<C: Cluster>(cluster: &C) -> Result<(), SqlError> {
    let Some(t) = cluster.conn_txn().borrow_mut().current.take() else {
        return Ok(());
    };
    let txn = t.id;
    // Shards without intents (only locks, or only the snapshot) just end it.
    let mut writers = Vec::new();
    let mut others: BTreeSet<usize> = if t.pinned == StatementSnapshot::None {
        BTreeSet::new()
    } else {
        (0..cluster.shard_count()).collect()
    };
    if t.touched.len() == 1 {
        writers.extend(t.touched.iter().copied());
    } else {
        let gathers = t
            .touched
            .iter()
            .map(|&s| async move { (s, cluster.txn_call(s, TxnMsg::Gather { txn }).await) });
        let mut parts = Vec::new();
        let mut failed = None;
        for (s, r) in futures_util::future::join_all(gathers).await {
            match r {
                Ok(TxnReply::Entries(entries)) if !entries.is_empty() => {
                    writers.push(s);
                    parts.push((s, entries));
                }
                Ok(_) => {
                    others.insert(s);
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            cluster.conn_txn().borrow_mut().current = Some(t);
            abort(cluster).await?;
            return Err(e);
        }
        if writers.len() > 1 {
            for s in &writers {
                others.remove(s);
            }
            return commit_across(cluster, txn, parts, others).await;
        }
    }
    for s in &writers {
        others.remove(s);
    }
    let mut calls: Vec<_> = writers
        .iter()
        .map(|&s| cluster.txn_call(s, TxnMsg::Commit { txn }))
        .collect();
    calls.extend(
        others
            .iter()
            .map(|&s| cluster.txn_call(s, TxnMsg::Abort { txn })),
    );
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    Ok(())
}

/// The multi-shard commit: commit record (the commit point, fsynced), then every part applied
/// with its marker; the client has its answer then, and [`clean_up`] deletes the record and
/// markers once the parts are durable. One fsync is on the client's path.
async fn commit_across<C: Cluster>(
    cluster: &C,
    txn: TxnId,
    parts: Vec<(usize, Vec<Entry>)>,
    others: BTreeSet<usize>,
) -> Result<(), SqlError> {
    let home = cluster.home_shard();
    let writers: Vec<usize> = parts.iter().map(|p| p.0).collect();
    // Taken with every row lock held: a later writer of any of these rows takes a larger one.
    let record = encode_record(cluster.commit_timestamp(), &parts);
    if let Err(e) = cluster
        .txn_call(home, TxnMsg::WriteRecord { txn, record })
        .await
    {
        // Not committed: no record is durable (a failed write refuses every later one).
        let calls = writers
            .iter()
            .chain(&others)
            .map(|&s| cluster.txn_call(s, TxnMsg::Abort { txn }));
        futures_util::future::join_all(calls).await;
        return Err(e);
    }
    cluster.conn_txn().borrow_mut().past_commit_point = true;
    let mut applied = Vec::new();
    {
        let _pass = enter_gate(cluster, GateSide::Apply).await;
        let calls = writers
            .iter()
            .map(|&s| cluster.txn_call(s, TxnMsg::Apply { txn }));
        for (r, &s) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .zip(&writers)
        {
            // Committed (the record says so); a shard that failed to apply its part redoes
            // it from the record at restart.
            match r? {
                TxnReply::Applied(lsn) => applied.push((s, lsn)),
                _ => return Err(SqlError::new("XX000", "unexpected reply to Apply")),
            }
        }
    }
    let calls = others
        .iter()
        .map(|&s| cluster.txn_call(s, TxnMsg::Abort { txn }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    cluster.after_commit(Cleanup { txn, home, applied }).await;
    Ok(())
}

/// What is left of a multi-shard commit once every part is applied (off the client's path):
/// make the parts durable, then delete the commit record, then the markers.
#[derive(Debug, Clone)]
pub struct Cleanup {
    txn: TxnId,
    home: usize,
    applied: Vec<(usize, u64)>,
}

pub async fn clean_up<C: Cluster>(cluster: &C, cleanup: Cleanup) -> Result<(), SqlError> {
    let Cleanup { txn, home, applied } = cleanup;
    let calls = applied
        .iter()
        .map(|&(s, lsn)| cluster.txn_call(s, TxnMsg::SyncTo { lsn }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    cluster.txn_call(home, TxnMsg::DeleteRecord { txn }).await?;
    let calls = applied
        .iter()
        .map(|&(s, _)| cluster.txn_call(s, TxnMsg::Forget { txn }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    Ok(())
}

/// Startup, before any client: finishes every multi-shard commit whose record survived.
pub async fn recover<C: Cluster>(cluster: &C) -> Result<usize, SqlError> {
    // (commit sequence, record's shard, transaction, parts), from every shard.
    let mut found = Vec::new();
    for shard in 0..cluster.shard_count() {
        let TxnReply::Records(records) = cluster.txn_call(shard, TxnMsg::Records).await? else {
            return Err(SqlError::new("XX000", "unexpected reply to Records"));
        };
        for (txn, record) in records {
            let (commit_seq, parts) = decode_record(&record)?;
            found.push((commit_seq, shard, txn, parts));
        }
    }
    found.sort_by_key(|f| f.0);
    let finished = found.len();
    for (_, shard, txn, parts) in found {
        for (participant, entries) in parts {
            if participant >= cluster.shard_count() {
                return Err(SqlError::new(
                    "XX000",
                    format!("a commit record names shard {participant}, which does not exist"),
                ));
            }
            cluster
                .txn_call(participant, TxnMsg::Redo { txn, entries })
                .await?;
        }
        cluster
            .txn_call(shard, TxnMsg::DeleteRecord { txn })
            .await?;
    }
    for shard in 0..cluster.shard_count() {
        cluster.txn_call(shard, TxnMsg::DropMarkers).await?;
    }
    // Now that every commit is whole, blocks that crashed with DDL pending are settled.
    if !cluster.catalog().pending.is_empty() {
        cluster
            .apply_ddl(crate::catalog::DdlRequest {
                change: crate::catalog::DdlChange::SettlePending {
                    committed: Vec::new(),
                },
                owner: None,
            })
            .await?;
    }
    Ok(finished)
}

/// SAVEPOINT name.
pub(crate) fn savepoint<C: Cluster>(cluster: &C, name: &str) {
    let mut conn = cluster.conn_txn().borrow_mut();
    if let Some(t) = conn.current.as_mut() {
        t.next_mark += 1;
        let mark = t.next_mark;
        t.savepoints.push((name.to_lowercase(), mark));
    }
}

/// Where the newest savepoint called `name` (case-insensitively) is on the stack.
fn savepoint_position(t: &TxnState, name: &str) -> Result<usize, SqlError> {
    let lower = name.to_lowercase();
    t.savepoints
        .iter()
        .rposition(|s| s.0 == lower)
        .ok_or_else(|| no_savepoint(name))
}

fn no_savepoint(name: &str) -> SqlError {
    SqlError::new("3B001", format!("savepoint \"{name}\" does not exist"))
}

/// ROLLBACK TO SAVEPOINT name: undoes what was written since; the savepoint stays.
pub(crate) async fn rollback_to<C: Cluster>(cluster: &C, name: &str) -> Result<(), SqlError> {
    let (txn, mark, shards, ddl) = {
        let mut conn = cluster.conn_txn().borrow_mut();
        let t = conn.current.as_mut().ok_or_else(|| no_savepoint(name))?;
        let at = savepoint_position(t, name)?;
        t.savepoints.truncate(at + 1);
        let mark = t.savepoints[at].1;
        // The rows those checks were for are undone too, and so may be rows it wrote.
        t.deferred_checks.retain(|d| d.mark < mark);
        t.written_rows.clear();
        (t.id, mark, t.touched.clone(), t.ddl)
    };
    let calls = shards
        .iter()
        .map(|&s| cluster.txn_call(s, TxnMsg::RollbackTo { txn, mark }));
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    if ddl {
        end_ddl(cluster, txn, Some(mark)).await?;
    }
    Ok(())
}

/// RELEASE SAVEPOINT name: forgets it and the ones after it (their writes stay).
pub(crate) fn release<C: Cluster>(cluster: &C, name: &str) -> Result<(), SqlError> {
    let mut conn = cluster.conn_txn().borrow_mut();
    let t = conn.current.as_mut().ok_or_else(|| no_savepoint(name))?;
    let at = savepoint_position(t, name)?;
    t.savepoints.truncate(at);
    Ok(())
}

/// SET TRANSACTION ISOLATION LEVEL inside a block: only before its first query.
/// The transaction ran a statement that takes a snapshot in PostgreSQL (see `set_isolation`).
pub(crate) fn note_queried<C: Cluster>(cluster: &C) {
    if let Some(t) = cluster.conn_txn().borrow_mut().current.as_mut() {
        t.queried = true;
    }
}

pub(crate) fn set_isolation<C: Cluster>(cluster: &C, level: Isolation) -> Result<(), SqlError> {
    let mut conn = cluster.conn_txn().borrow_mut();
    let Some(t) = conn.current.as_mut() else {
        return Ok(());
    };
    // The level it has already may be set again, as PostgreSQL allows.
    let started = t.queried || t.pinned != StatementSnapshot::None || !t.touched.is_empty();
    if started && t.isolation != level {
        return Err(SqlError::new(
            "25001",
            "SET TRANSACTION ISOLATION LEVEL must be called before any query",
        ));
    }
    t.isolation = level;
    Ok(())
}

/// The connection is gone: its transaction (if any) ends undone, releasing its locks.
pub async fn connection_closed<C: Cluster>(cluster: &C) -> Result<(), SqlError> {
    let snapshot = std::mem::take(&mut cluster.conn_txn().borrow_mut().statement_snapshot);
    let released = match snapshot {
        StatementSnapshot::Pinned(id) => release_all(cluster, id).await,
        _ => Ok(()),
    };
    // Undone even if the release failed: its locks and pending DDL must not outlive it.
    let aborted = abort(cluster).await;
    released.and(aborted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
        )
            .prop_map(|(k, v)| (Bytes::from(k), v.map(Bytes::from)))
    }

    proptest! {
        /// A commit record reads back as written.
        #[test]
        fn records_round_trip(
            seq in any::<u64>(),
            parts in proptest::collection::vec(
                (0usize..64, proptest::collection::vec(entry(), 0..8)),
                0..5,
            ),
        ) {
            let bytes = encode_record(seq, &parts);
            prop_assert_eq!(decode_record(&bytes).unwrap(), (seq, parts));
        }

        /// Damaged records (any bytes, or a record cut short) are an error, never a panic.
        #[test]
        fn damaged_records_are_errors(
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
            parts in proptest::collection::vec(
                (0usize..4, proptest::collection::vec(entry(), 1..4)),
                1..3,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let _ = decode_record(&garbage);
            let bytes = encode_record(1, &parts);
            let cut = cut.index(bytes.len());
            prop_assert!(decode_record(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn the_gate_keeps_pinning_and_applying_apart_and_takes_turns() {
        let gate = CommitGate::default();
        assert!(gate.try_enter(GateSide::Pin, false));
        assert!(gate.try_enter(GateSide::Pin, false), "pins share the gate");
        assert!(
            !gate.try_enter(GateSide::Apply, false),
            "no apply while pinning"
        );
        // The waiting applier has the next turn: a new pinner waits behind it.
        gate.leave(GateSide::Pin);
        assert!(!gate.try_enter(GateSide::Pin, false));
        gate.leave(GateSide::Pin);
        assert!(gate.try_enter(GateSide::Apply, true));
        assert!(!gate.try_enter(GateSide::Pin, true));
        gate.leave(GateSide::Apply);
        assert!(gate.try_enter(GateSide::Pin, true));
    }

    #[test]
    fn a_transaction_too_large_for_memory_fails_cleanly() {
        let txns = ShardTxns::default();
        txns.set_intent_bytes_max(4096);
        let mut small = WriteBatch::new();
        small.put(Bytes::from_static(b"\x80k1"), Bytes::from(vec![0u8; 1000]));
        txns.add_intents(7, 0, small).unwrap();
        let mut big = WriteBatch::new();
        for i in 0..4u8 {
            big.put(Bytes::from(vec![0x80, i]), Bytes::from(vec![0u8; 1000]));
        }
        let err = txns.add_intents(7, 0, big).unwrap_err();
        assert_eq!(err.sqlstate, crate::error::PROGRAM_LIMIT_EXCEEDED);
        assert!(err.message.contains("transaction is too large"), "{err:?}");
        // Nothing of the refused batch was kept.
        assert_eq!(txns.take_batch(7).len(), 1);
    }

    #[test]
    fn the_hybrid_clock_never_goes_back_or_repeats() {
        let clock = HybridClock::default();
        let a = clock.now(1_000);
        let b = clock.now(1_000);
        let c = clock.now(900); // the wall clock stepped back
        let d = clock.now(2_000);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(a >> 16, 1_000);
        assert_eq!(d, 2_000 << 16);
    }

    #[test]
    fn appended_rows_join_the_view_in_order_and_roll_back_by_savepoint() {
        let txns = ShardTxns::default();
        let put = |k: &'static [u8]| {
            let mut b = WriteBatch::new();
            b.put(Bytes::from_static(k), Bytes::from_static(b"v"));
            b
        };
        txns.add_appended(1, 0, put(b"\x80b")).unwrap();
        txns.add_intents(1, 1, put(b"\x80a")).unwrap();
        txns.add_appended(1, 2, put(b"\x80c")).unwrap();
        let ctx = TxnCtx {
            id: 1,
            isolation: Isolation::ReadCommitted,
            snapshot: None,
            mark: 2,
            wait: LockWait::default(),
        };
        let view = txns.view(Some(&ctx)).unwrap();
        let keys: Vec<Bytes> = view
            .overlay
            .as_ref()
            .unwrap()
            .borrow()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, [&b"\x80a"[..], b"\x80b", b"\x80c"]);
        // ROLLBACK TO the savepoint of mark 1 undoes the intent and the later append, not
        // the append made before it.
        txns.add_appended(1, 2, put(b"\x80d")).unwrap();
        txns.rollback_to(1, 1);
        let batch = txns.take_batch(1);
        let written: Vec<&Bytes> = batch.entries().iter().map(|(_, k, _)| k).collect();
        assert_eq!(written, [&Bytes::from_static(b"\x80b")]);
    }

    #[test]
    fn a_wait_that_closes_a_cycle_is_a_deadlock() {
        let graph = WaitGraph::default();
        graph.wait(1, 0, vec![2]).unwrap();
        graph.wait(2, 1, vec![3]).unwrap();
        let err = graph.wait(3, 0, vec![1]).unwrap_err();
        assert_eq!(err.sqlstate, DEADLOCK_DETECTED);
        graph.done(2, 1);
        graph.wait(3, 0, vec![1]).unwrap();
    }
}
