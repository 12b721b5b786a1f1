//! Fuzzes the SQL front end with arbitrary query strings: parsing, binding, describing for the
//! extended protocol, and running statements that need no table (expressions, casts, set
//! operations over VALUES, SET/SHOW) must answer with a result or an error carrying a
//! five-character SQLSTATE, never panic. Table I/O is refused by the cluster below, so the
//! storage side is covered by the crate's own tests.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use helios_sql::txn::{Cleanup, CommitGate, ConnTxn, TxnId, TxnMsg, TxnReply};
use helios_sql::{
    Catalog, Cluster, DdlOutcome, DdlRequest, ScanRequest, ScanRows, SequenceDef, SequenceOp,
    Session, SqlError, WriteOutcome, WriteRequest,
};
use libfuzzer_sys::fuzz_target;

struct NoStorage(Arc<Catalog>, RefCell<ConnTxn>, Arc<CommitGate>);

impl Cluster for NoStorage {
    fn catalog(&self) -> Arc<Catalog> {
        self.0.clone()
    }
    fn shard_count(&self) -> usize {
        2
    }
    fn shard_of_token(&self, token: u64) -> usize {
        (token % 2) as usize
    }
    async fn apply_ddl(&self, _: DdlRequest) -> Result<DdlOutcome, SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn scan(&self, _: usize, _: ScanRequest) -> Result<ScanRows, SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn write(&self, _: usize, _: WriteRequest) -> Result<WriteOutcome, SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn truncate(&self, _: usize, _: u32) -> Result<(), SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn ingest(
        &self,
        _: usize,
        _: helios_sql::PackedEntries,
    ) -> Result<(), SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn sequence(&self, _: SequenceDef, _: SequenceOp) -> Result<Vec<i64>, SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    async fn txn_call(&self, _: usize, _: TxnMsg) -> Result<TxnReply, SqlError> {
        Err(SqlError::new("58030", "no storage in the fuzzer"))
    }
    fn conn_txn(&self) -> &RefCell<ConnTxn> {
        &self.1
    }
    fn new_txn_id(&self) -> TxnId {
        1
    }
    fn commit_timestamp(&self) -> u64 {
        1
    }
    fn home_shard(&self) -> usize {
        0
    }
    fn commit_gate(&self) -> &Arc<CommitGate> {
        &self.2
    }
    async fn pause(&self) {}
    async fn after_commit(&self, _: Cleanup) {}
    async fn release_snapshot(&self, _: u64) {}
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let cluster = NoStorage(Arc::new(Catalog::new()), RefCell::default(), Arc::default());
    let mut session = Session::new("fuzz", "postgres");
    if let Ok(prepared) = helios_sql::prepare(&session, &cluster, sql, &[]) {
        let params = vec![None; prepared.param_types.len()];
        let run = helios_sql::execute_prepared(&mut session, &cluster, &prepared, &params);
        if let Some(Err(e)) = futures_util::FutureExt::now_or_never(run) {
            assert_eq!(e.sqlstate.len(), 5);
        }
    }
    let run = helios_sql::execute_simple(&mut session, &cluster, sql);
    if let Some(results) = futures_util::FutureExt::now_or_never(run) {
        for r in results {
            if let Err(e) = r {
                assert_eq!(e.sqlstate.len(), 5, "{e:?}");
            }
        }
    }
});
