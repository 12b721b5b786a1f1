use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet as Set;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(ks: &mut Keyspace, log: &mut Vec<u8>, db: u8, k: &str, v: &str, at: Option<u64>) {
    ks.apply_and_log(
        Mutation::Set {
            db,
            key: b(k),
            value: Value::Str(b(v)),
            expire_at_ms: at,
        },
        log,
    );
}

#[test]
fn get_set_and_lazy_expiry() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    set(&mut ks, &mut log, 0, "a", "1", None);
    set(&mut ks, &mut log, 0, "b", "2", Some(100));
    set(&mut ks, &mut log, 3, "a", "x", None);
    assert_eq!(
        ks.get(0, b"a", 0).map(|e| e.value.clone()),
        Some(Value::Str(b("1")))
    );
    assert_eq!(
        ks.get(3, b"a", 0).map(|e| e.value.clone()),
        Some(Value::Str(b("x")))
    );
    assert!(ks.get(1, b"a", 0).is_none());
    assert_eq!(ks.dbsize(0), 2);
    assert_eq!(ks.expires_count(0), 1);
    // Alive at exactly its expiry time, gone one millisecond later.
    assert!(ks.get(0, b"b", 100).is_some());
    assert!(ks.get(0, b"b", 101).is_none());
    assert_eq!(ks.dbsize(0), 1);
    assert_eq!(ks.expires_count(0), 0);
    ks.check_invariants();
}

#[test]
fn active_expire_respects_budget_and_order() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    for i in 0..10u64 {
        set(&mut ks, &mut log, 0, &format!("k{i}"), "v", Some(10 + i));
    }
    set(&mut ks, &mut log, 0, "forever", "v", None);
    assert_eq!(ks.active_expire(15, 100), 5); // 10..=14 are past at 15
    assert_eq!(ks.active_expire(100, 3), 3);
    assert_eq!(ks.active_expire(100, 100), 2);
    assert_eq!(ks.key_count_total(), 1);
    ks.check_invariants();
}

#[test]
fn set_expire_persist_overwrite_and_flush() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    set(&mut ks, &mut log, 0, "a", "1", Some(50));
    ks.apply_and_log(
        Mutation::SetExpire {
            db: 0,
            key: b("a"),
            expire_at_ms: Some(70),
        },
        &mut log,
    );
    assert_eq!(ks.peek(0, b"a").unwrap().expire_at_ms, Some(70));
    ks.apply_and_log(
        Mutation::SetExpire {
            db: 0,
            key: b("a"),
            expire_at_ms: None,
        },
        &mut log,
    );
    assert_eq!(ks.expires_count(0), 0);
    ks.apply_and_log(
        Mutation::SetExpire {
            db: 0,
            key: b("zz"),
            expire_at_ms: Some(1),
        },
        &mut log,
    );
    assert_eq!(ks.dbsize(0), 1);
    set(&mut ks, &mut log, 0, "a", "22", Some(5));
    set(&mut ks, &mut log, 1, "a", "22", Some(5));
    ks.check_invariants();
    ks.apply_and_log(Mutation::FlushDb { db: 0 }, &mut log);
    assert_eq!(ks.dbsize(0), 0);
    assert_eq!(ks.dbsize(1), 1);
    ks.check_invariants();
    let mut replay = Keyspace::new();
    replay.apply_logged(&log, 0).unwrap();
    assert_eq!(replay.dump(0), ks.dump(0));
    ks.apply_and_log(Mutation::FlushAll, &mut log);
    assert_eq!(ks.key_count_total(), 0);
    assert_eq!(ks.used_bytes(), 0);
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let mut log = Vec::new();
    Mutation::Set {
        db: 2,
        key: b("key"),
        value: Value::Str(b("value")),
        expire_at_ms: Some(9),
    }
    .encode(&mut log);
    for cut in 0..log.len() {
        let mut ks = Keyspace::new();
        let r = ks.apply_logged(&log[..cut], 0);
        assert_eq!(r.is_ok(), cut == 0, "cut {cut}");
        assert_eq!(ks.key_count_total(), 0);
    }
    let mut ks = Keyspace::new();
    assert_eq!(
        ks.apply_logged(&[99], 0),
        Err(KeyspaceError::BadTag { tag: 99, offset: 0 })
    );
    assert_eq!(
        ks.apply_logged(&[5, 4, 16], 0),
        Err(KeyspaceError::BadDb { db: 16, offset: 2 })
    );
    assert!(ks
        .apply_logged(
            &[2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            0
        )
        .is_err());
    assert!(ks.apply_logged(&[3, 0, 1, b'a', 7], 0).is_err());
    // A bad record after a good one: nothing is applied.
    let mut bad = log.clone();
    bad.push(77);
    assert!(ks.apply_logged(&bad, 0).is_err());
    assert_eq!(ks.key_count_total(), 0);
    ks.apply_logged(&log, 0).unwrap();
    assert_eq!(ks.key_count_total(), 1);
    // Replay of a set already expired at replay time leaves no key.
    let mut late = Keyspace::new();
    late.apply_logged(&log, 10).unwrap();
    assert_eq!(late.key_count_total(), 0);
}

#[test]
fn random_key_skips_and_removes_expired() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    assert_eq!(ks.random_key(0, 1, 0), None);
    set(&mut ks, &mut log, 0, "dead1", "v", Some(1));
    set(&mut ks, &mut log, 0, "dead2", "v", Some(1));
    assert_eq!(ks.random_key(0, 7, 5), None);
    assert_eq!(ks.dbsize(0), 0);
    set(&mut ks, &mut log, 0, "live", "v", None);
    set(&mut ks, &mut log, 1, "other", "v", None);
    for seed in 0..20 {
        assert_eq!(ks.random_key(0, seed, 5), Some(b("live")));
    }
    ks.check_invariants();
}

#[test]
fn keys_filters_expired_and_other_dbs() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    set(&mut ks, &mut log, 0, "a", "v", None);
    set(&mut ks, &mut log, 0, "b", "v", Some(3));
    set(&mut ks, &mut log, 1, "c", "v", None);
    let mut keys = ks.keys(0, 10, |_, _| true);
    keys.sort();
    assert_eq!(keys, vec![b("a")]);
    assert_eq!(ks.keys(0, 0, |k, _| k == b"b"), vec![b("b")]);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8, u8, Option<u64>),
    Del(u8, u8),
    Expire(u8, u8, Option<u64>),
    FlushDb(u8),
    FlushAll,
    Tick(u64),
    ActiveExpire(usize),
    Get(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let db = 0u8..3;
    let key = 0u8..40;
    let at = proptest::option::of(0u64..200);
    prop_oneof![
        8 => (db.clone(), key.clone(), any::<u8>(), at.clone()).prop_map(|(d, k, v, a)| Op::Set(d, k, v, a)),
        3 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Del(d, k)),
        3 => (db.clone(), key.clone(), at).prop_map(|(d, k, a)| Op::Expire(d, k, a)),
        1 => db.clone().prop_map(Op::FlushDb),
        1 => Just(Op::FlushAll),
        2 => (0u64..20).prop_map(Op::Tick),
        2 => (0usize..5).prop_map(Op::ActiveExpire),
        3 => (db, key).prop_map(|(d, k)| Op::Get(d, k)),
    ]
}

fn key_name(k: u8) -> Bytes {
    // Some keys share a hash tag, hence a token, to exercise token groups.
    if k.is_multiple_of(4) {
        Bytes::from(format!("{{tag{}}}k{k}", k % 3))
    } else {
        Bytes::from(format!("key:{k}"))
    }
}

proptest! {
    #[test]
    fn replaying_the_log_reproduces_the_keyspace(ops in proptest::collection::vec(op(), 1..200)) {
        let mut ks = Keyspace::new();
        let mut replica = Keyspace::new();
        let mut now = 0u64;
        for op in ops {
            let mut log = Vec::new();
            match op {
                Op::Set(db, k, v, at) => ks.apply_and_log(
                    Mutation::Set { db, key: key_name(k), value: Value::Str(Bytes::from(vec![v; (v % 5) as usize])), expire_at_ms: at },
                    &mut log),
                Op::Del(db, k) => {
                    if ks.get(db, &key_name(k), now).is_some() {
                        ks.apply_and_log(Mutation::Del { db, key: key_name(k) }, &mut log);
                    }
                }
                Op::Expire(db, k, at) => {
                    if ks.get(db, &key_name(k), now).is_some() {
                        ks.apply_and_log(Mutation::SetExpire { db, key: key_name(k), expire_at_ms: at }, &mut log);
                    }
                }
                Op::FlushDb(db) => ks.apply_and_log(Mutation::FlushDb { db }, &mut log),
                Op::FlushAll => ks.apply_and_log(Mutation::FlushAll, &mut log),
                Op::Tick(d) => now += d,
                Op::ActiveExpire(n) => { ks.active_expire(now, n); }
                Op::Get(db, k) => { ks.get(db, &key_name(k), now); }
            }
            replica.apply_logged(&log, now).unwrap();
            ks.check_invariants();
            replica.check_invariants();
            prop_assert_eq!(ks.dump(now), replica.dump(now));
            for db in 0..3u8 {
                let live = ks.keys(db, now, |_, _| true).len();
                prop_assert_eq!(live, replica.keys(db, now, |_, _| true).len());
            }
        }
    }

    #[test]
    fn scan_never_skips_a_key_present_throughout(
        initial in proptest::collection::btree_set(0u8..60, 0..60),
        steps in proptest::collection::vec((1usize..8, proptest::collection::vec((any::<bool>(), 0u8..60), 0..6)), 1..40),
    ) {
        let mut ks = Keyspace::new();
        let mut log = Vec::new();
        for k in &initial {
            ks.apply_and_log(Mutation::Set { db: 0, key: key_name(*k), value: Value::Str(Bytes::new()), expire_at_ms: None }, &mut log);
        }
        // Keys present at the start and never deleted must all be returned.
        let mut ever_deleted: Set<u8> = Set::new();
        let mut seen: Set<Bytes> = Set::new();
        let mut cursor = 0u64;
        let mut steps = steps.into_iter();
        let mut finished = false;
        for _ in 0..10_000 {
            let (count, changes) = steps.next().unwrap_or((5, Vec::new()));
            let (keys, next) = ks.scan(0, cursor, count, 0, |_, _| true);
            seen.extend(keys);
            for (insert, k) in changes {
                if insert {
                    ks.apply_and_log(Mutation::Set { db: 0, key: key_name(k), value: Value::Str(Bytes::new()), expire_at_ms: None }, &mut log);
                } else {
                    ever_deleted.insert(k);
                    ks.apply_and_log(Mutation::Del { db: 0, key: key_name(k) }, &mut log);
                }
            }
            match next {
                Some(n) => { prop_assert!(n > cursor); cursor = n; }
                None => { finished = true; break; }
            }
        }
        prop_assert!(finished);
        for k in initial.difference(&ever_deleted) {
            prop_assert!(seen.contains(&key_name(*k)), "missed {:?}", key_name(*k));
        }
    }
}

#[test]
fn scan_visits_whole_token_groups() {
    let mut ks = Keyspace::new();
    let mut log = Vec::new();
    for i in 0..10 {
        set(&mut ks, &mut log, 0, &format!("{{same}}{i}"), "v", None);
    }
    set(&mut ks, &mut log, 0, "other", "v", None);
    set(&mut ks, &mut log, 1, "elsewhere", "v", None);
    let (first, next) = ks.scan(0, 0, 1, 0, |_, _| true);
    assert!(first.len() == 10 || first.len() == 1);
    let (second, end) = ks.scan(0, next.unwrap(), 1, 0, |_, _| true);
    assert_eq!(first.len() + second.len(), 11);
    assert_eq!(end, None);
    let (filtered, _) = ks.scan(0, 0, 100, 0, |k, _| k.starts_with(b"o"));
    assert_eq!(filtered, vec![b("other")]);
}

/// The tree, as the keyspace sees it: storage key → stored value.
type Store = std::collections::BTreeMap<Vec<u8>, Bytes>;

fn write_pending(ks: &mut Keyspace, store: &mut Store) {
    for (kind, key, value) in ks.take_pending().entries() {
        match kind {
            crate::lsm::key::ValueKind::Put => {
                store.insert(key.to_vec(), value.clone());
            }
            crate::lsm::key::ValueKind::Delete => {
                store.remove(&key[..]);
            }
        }
    }
}

/// Makes `key`'s value resident from the store, as the server does before a batch.
fn load(ks: &mut Keyspace, store: &Store, db: u8, key: &[u8], now_ms: u64) {
    if let Some((skey, stamp)) = ks.needs_load(db, key, now_ms) {
        ks.install_loaded(db, key, stamp, store.get(&skey)).unwrap();
    }
}

#[derive(Clone, Debug)]
enum TierOp {
    Set(u8, u8, Option<u64>),
    Del(u8),
    Expire(u8, u64),
    Persist(u8),
    Get(u8),
    Evict(usize),
    Restart,
    Tick(u64),
}

fn tier_op() -> impl Strategy<Value = TierOp> {
    prop_oneof![
        6 => (0u8..12, 0u8..40, proptest::option::of(0u64..200)).prop_map(|(k, len, at)| TierOp::Set(k, len, at)),
        2 => (0u8..12).prop_map(TierOp::Del),
        2 => (0u8..12, 0u64..200).prop_map(|(k, at)| TierOp::Expire(k, at)),
        1 => (0u8..12).prop_map(TierOp::Persist),
        6 => (0u8..12).prop_map(TierOp::Get),
        2 => (0usize..64).prop_map(TierOp::Evict),
        1 => Just(TierOp::Restart),
        1 => (0u64..30).prop_map(TierOp::Tick),
    ]
}

proptest! {
    /// Values move between memory and the store (eviction, loading, a restart that rebuilds the
    /// index from the store) without ever changing what a reader sees.
    #[test]
    fn tiered_values_match_a_model(ops in proptest::collection::vec(tier_op(), 1..200)) {
        let mut ks = Keyspace::with_resident_budget(64);
        let mut store = Store::new();
        let mut model: std::collections::BTreeMap<Vec<u8>, (Bytes, Option<u64>)> = Default::default();
        let mut log = Vec::new();
        let mut now = 0u64;
        for (step, op) in ops.into_iter().enumerate() {
            model.retain(|_, (_, at)| !matches!(at, Some(at) if now > *at));
            match op {
                TierOp::Set(k, len, at) => {
                    let key = format!("k{k}");
                    let value = Bytes::from(vec![b'a' + (step % 26) as u8; len as usize]);
                    ks.apply_and_log(Mutation::Set { db: 0, key: b(&key), value: Value::Str(value.clone()), expire_at_ms: at }, &mut log);
                    if matches!(at, Some(at) if now > at) {
                        model.remove(key.as_bytes());
                    } else {
                        model.insert(key.into_bytes(), (value, at));
                    }
                }
                TierOp::Del(k) => {
                    let key = format!("k{k}");
                    if ks.contains(0, key.as_bytes(), now) {
                        ks.apply_and_log(Mutation::Del { db: 0, key: b(&key) }, &mut log);
                    }
                    model.remove(key.as_bytes());
                }
                TierOp::Expire(k, at) => {
                    let key = format!("k{k}");
                    load(&mut ks, &store, 0, key.as_bytes(), now);
                    if ks.contains(0, key.as_bytes(), now) {
                        ks.apply_and_log(Mutation::SetExpire { db: 0, key: b(&key), expire_at_ms: Some(at) }, &mut log);
                        if let Some(entry) = model.get_mut(key.as_bytes()) {
                            entry.1 = Some(at);
                        }
                    }
                }
                TierOp::Persist(k) => {
                    let key = format!("k{k}");
                    load(&mut ks, &store, 0, key.as_bytes(), now);
                    if ks.contains(0, key.as_bytes(), now) {
                        ks.apply_and_log(Mutation::SetExpire { db: 0, key: b(&key), expire_at_ms: None }, &mut log);
                        if let Some(entry) = model.get_mut(key.as_bytes()) {
                            entry.1 = None;
                        }
                    }
                }
                TierOp::Get(k) => {
                    let key = format!("k{k}");
                    load(&mut ks, &store, 0, key.as_bytes(), now);
                    let got = ks.get(0, key.as_bytes(), now).map(|e| (e.value.clone(), e.expire_at_ms));
                    let want = model.get(key.as_bytes()).map(|(v, at)| (Value::Str(v.clone()), *at));
                    prop_assert_eq!(got, want, "get {} at step {}", key, step);
                }
                TierOp::Evict(budget) => {
                    ks.resident_budget = budget;
                    ks.evict_to_budget();
                    prop_assert!(ks.resident_bytes() <= budget);
                }
                TierOp::Restart => {
                    write_pending(&mut ks, &mut store);
                    let mut rebuilt = Keyspace::with_resident_budget(64);
                    for (skey, stored) in &store {
                        rebuilt.insert_stored(skey, stored, now).unwrap();
                    }
                    ks = rebuilt;
                }
                TierOp::Tick(ms) => now += ms,
            }
            write_pending(&mut ks, &mut store);
            ks.check_invariants();
            model.retain(|_, (_, at)| !matches!(at, Some(at) if now > *at));
            prop_assert_eq!(ks.key_count_total(), {
                // Keys the model holds, plus expired ones the index has not removed yet.
                let live = model.len();
                let expired_in_index = ks.iter().filter(|(_, _, e)| e.is_expired(now)).count();
                live + expired_in_index
            });
        }
    }
}

#[derive(Clone, Debug)]
enum HashOp {
    HSet(u8, Vec<(u8, u8)>),
    /// Sets fields 0..n at once (n over EAGER_RECLAIM_FIELDS_MAX leaves orphans on DEL).
    HSetMany(u8, u16),
    HDel(u8, Vec<u8>),
    Del(u8),
    SetStr(u8),
    Expire(u8, u64),
    Tick(u64),
    Restart,
}

fn hash_op() -> impl Strategy<Value = HashOp> {
    let fields = proptest::collection::vec((0u8..12, 0u8..4), 1..5);
    prop_oneof![
        6 => (0u8..6, fields).prop_map(|(k, f)| HashOp::HSet(k, f)),
        1 => (0u8..6, 1u16..300).prop_map(|(k, n)| HashOp::HSetMany(k, n)),
        4 => (0u8..6, proptest::collection::vec(0u8..12, 1..4)).prop_map(|(k, f)| HashOp::HDel(k, f)),
        2 => (0u8..6).prop_map(HashOp::Del),
        1 => (0u8..6).prop_map(HashOp::SetStr),
        2 => (0u8..6, 0u64..100).prop_map(|(k, at)| HashOp::Expire(k, at)),
        1 => (0u64..30).prop_map(HashOp::Tick),
        2 => Just(HashOp::Restart),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum ModelValue {
    Str,
    Hash(std::collections::BTreeMap<Bytes, Bytes>),
}

/// A keyspace rebuilt from the store as the server's start-up does: keys, then fields,
/// deleting the orphans it meets.
fn restart(store: &mut Store, now: u64) -> Keyspace {
    let mut ks = Keyspace::new();
    let mut orphans = Vec::new();
    for (k, v) in store.iter() {
        if storage::is_redis_storage_key(k) {
            ks.insert_stored(k, v, now).unwrap();
        } else if storage::is_field_key(k) && !ks.insert_stored_field(k, v).unwrap() {
            orphans.push(k.clone());
        }
    }
    for k in orphans {
        store.remove(&k);
    }
    ks.check_rebuilt().unwrap();
    ks
}

proptest! {
    /// Hashes match a model through writes, deletes, overwrites, expiry and restarts; after
    /// a restart the tree holds exactly the live hashes' fields (orphans are gone).
    #[test]
    fn hashes_match_a_model(ops in proptest::collection::vec(hash_op(), 1..80)) {
        let mut ks = Keyspace::new();
        let mut store = Store::new();
        let mut model: std::collections::BTreeMap<Bytes, (ModelValue, Option<u64>)> = Default::default();
        let mut now = 0u64;
        let key = |k: u8| b(&format!("h{k}"));
        for op in ops {
            model.retain(|_, (_, at)| !matches!(at, Some(at) if now > *at));
            let live_type = |ks: &mut Keyspace, k: &Bytes| ks.get(0, k, now).map(|e| e.value.type_name());
            match op {
                // HSET on a string is WRONGTYPE: no mutation.
                HashOp::HSet(k, _) | HashOp::HSetMany(k, _) if live_type(&mut ks, &key(k)) == Some("string") => {}
                HashOp::HSet(k, fields) => {
                    let fields: Vec<(Bytes, Bytes)> = fields.iter().map(|(f, v)| (b(&format!("f{f}")), b(&format!("v{v}")))).collect();
                    ks.apply(Mutation::HashSet { db: 0, key: key(k), fields: fields.clone() });
                    let entry = model.entry(key(k)).or_insert((ModelValue::Hash(Default::default()), None));
                    if let ModelValue::Hash(h) = &mut entry.0 { h.extend(fields); }
                }
                HashOp::HSetMany(k, n) => {
                    let fields: Vec<(Bytes, Bytes)> = (0..n).map(|i| (b(&format!("m{i}")), b("x"))).collect();
                    ks.apply(Mutation::HashSet { db: 0, key: key(k), fields: fields.clone() });
                    let entry = model.entry(key(k)).or_insert((ModelValue::Hash(Default::default()), None));
                    if let ModelValue::Hash(h) = &mut entry.0 { h.extend(fields); }
                }
                HashOp::HDel(k, fields) => {
                    if live_type(&mut ks, &key(k)) == Some("hash") {
                        let fields: Vec<Bytes> = fields.iter().map(|f| b(&format!("f{f}"))).collect();
                        ks.apply(Mutation::HashDel { db: 0, key: key(k), fields: fields.clone() });
                        if let Some((ModelValue::Hash(h), _)) = model.get_mut(&key(k)) {
                            for f in &fields { h.remove(f); }
                            if h.is_empty() { model.remove(&key(k)); }
                        }
                    }
                }
                HashOp::Del(k) => {
                    if ks.contains(0, &key(k), now) {
                        ks.apply(Mutation::Del { db: 0, key: key(k) });
                    }
                    model.remove(&key(k));
                }
                HashOp::SetStr(k) => {
                    ks.apply(Mutation::Set { db: 0, key: key(k), value: Value::Str(b("s")), expire_at_ms: None });
                    model.insert(key(k), (ModelValue::Str, None));
                }
                HashOp::Expire(k, at) => {
                    load(&mut ks, &store, 0, &key(k), now);
                    if ks.contains(0, &key(k), now) {
                        ks.apply(Mutation::SetExpire { db: 0, key: key(k), expire_at_ms: Some(at) });
                        if let Some(entry) = model.get_mut(&key(k)) { entry.1 = Some(at); }
                    }
                }
                HashOp::Tick(d) => now += d,
                HashOp::Restart => {
                    write_pending(&mut ks, &mut store);
                    ks = restart(&mut store, now);
                    // No orphans: every field key in the tree belongs to a live hash.
                    let field_keys = store.keys().filter(|k| storage::is_field_key(k)).count();
                    let live_fields: usize = ks.iter().filter(|(_, _, e)| !e.is_expired(now)).map(|(_, _, e)| e.value.as_hash().map_or(0, |h| h.fields.len())).sum();
                    let expired_fields: usize = ks.iter().filter(|(_, _, e)| e.is_expired(now)).map(|(_, _, e)| e.value.as_hash().map_or(0, |h| h.fields.len())).sum();
                    prop_assert_eq!(field_keys, live_fields + expired_fields);
                }
            }
            model.retain(|_, (_, at)| !matches!(at, Some(at) if now > *at));
            write_pending(&mut ks, &mut store);
            for k in 0..6u8 {
                let got = ks.get(0, &key(k), now).map(|e| match &e.value {
                    Value::Hash(h) => (ModelValue::Hash(h.fields.iter().map(|(f, v)| (f.clone(), v.clone())).collect()), e.expire_at_ms),
                    _ => (ModelValue::Str, e.expire_at_ms),
                });
                prop_assert_eq!(got, model.get(&key(k)).cloned(), "key h{}", k);
            }
        }
    }
}

#[test]
fn small_hashes_keep_insertion_order_through_deletes() {
    let mut ks = Keyspace::new();
    let fields = ["c", "a", "b", "d"]
        .iter()
        .map(|f| (b(f), b("v")))
        .collect();
    ks.apply(Mutation::HashSet {
        db: 0,
        key: b("h"),
        fields,
    });
    ks.apply(Mutation::HashDel {
        db: 0,
        key: b("h"),
        fields: vec![b("a")],
    });
    let order: Vec<Bytes> = ks
        .get(0, b"h", 0)
        .unwrap()
        .value
        .as_hash()
        .unwrap()
        .fields
        .keys()
        .cloned()
        .collect();
    assert_eq!(order, vec![b("c"), b("b"), b("d")]);
}

#[derive(Clone, Debug)]
enum ListOp {
    Push(bool, Vec<u8>),
    Pop(bool, u8),
    Set(u8, u8),
    Replace(Vec<u8>),
    Del,
    Restart,
}

fn list_op() -> impl Strategy<Value = ListOp> {
    prop_oneof![
        5 => (any::<bool>(), proptest::collection::vec(0u8..50, 1..6)).prop_map(|(l, v)| ListOp::Push(l, v)),
        1 => (any::<bool>(), 1u16..200).prop_map(|(l, n)| ListOp::Push(l, (0..n).map(|i| i as u8).collect())),
        3 => (any::<bool>(), 1u8..5).prop_map(|(l, n)| ListOp::Pop(l, n)),
        2 => (0u8..8, 0u8..50).prop_map(|(i, v)| ListOp::Set(i, v)),
        1 => proptest::collection::vec(0u8..50, 0..5).prop_map(ListOp::Replace),
        1 => Just(ListOp::Del),
        2 => Just(ListOp::Restart),
    ]
}

proptest! {
    /// Lists match a VecDeque through pushes and pops at both ends, LSET, replacement,
    /// DEL and restarts; after a restart the tree holds exactly the list's elements.
    #[test]
    fn lists_match_a_model(ops in proptest::collection::vec(list_op(), 1..60)) {
        let mut ks = Keyspace::new();
        let mut store = Store::new();
        let mut model: std::collections::VecDeque<Bytes> = Default::default();
        let key = b("l");
        let v = |x: u8| b(&format!("v{x}"));
        for op in ops {
            match op {
                ListOp::Push(left, values) => {
                    let values: Vec<Bytes> = values.into_iter().map(v).collect();
                    for x in &values {
                        if left { model.push_front(x.clone()) } else { model.push_back(x.clone()) }
                    }
                    ks.apply(Mutation::ListPush { db: 0, key: key.clone(), left, values });
                }
                ListOp::Pop(left, n) if !model.is_empty() => {
                    for _ in 0..n { if left { model.pop_front(); } else { model.pop_back(); } }
                    ks.apply(Mutation::ListPop { db: 0, key: key.clone(), left, count: n as u64 });
                }
                ListOp::Set(i, x) if (i as usize) < model.len() => {
                    model[i as usize] = v(x);
                    ks.apply(Mutation::ListSet { db: 0, key: key.clone(), index: i as u64, value: v(x) });
                }
                ListOp::Replace(values) if !model.is_empty() => {
                    model = values.iter().map(|&x| v(x)).collect();
                    ks.apply(Mutation::ListReplace { db: 0, key: key.clone(), values: model.iter().cloned().collect() });
                }
                ListOp::Del => {
                    if ks.contains(0, &key, 0) {
                        ks.apply(Mutation::Del { db: 0, key: key.clone() });
                    }
                    model.clear();
                }
                ListOp::Restart => {
                    write_pending(&mut ks, &mut store);
                    ks = restart(&mut store, 0);
                    let element_keys = store.keys().filter(|k| storage::is_field_key(k)).count();
                    prop_assert_eq!(element_keys, model.len());
                }
                _ => {}
            }
            write_pending(&mut ks, &mut store);
            let got: Option<Vec<Bytes>> = ks.get(0, &key, 0).map(|e| e.value.as_list().expect("a list").items.iter().map(Bytes::copy_from_slice).collect());
            let want = (!model.is_empty()).then(|| model.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(got, want);
        }
    }
}

#[derive(Clone, Debug)]
enum ZOp {
    Add(Vec<(u8, i8)>),
    /// Members 0..n at once (n over EAGER_RECLAIM_FIELDS_MAX leaves orphans on DEL).
    AddMany(u16),
    Rem(Vec<u8>),
    Del,
    Restart,
}

fn zset_op() -> impl Strategy<Value = ZOp> {
    prop_oneof![
        5 => proptest::collection::vec((0u8..20, -4i8..4), 1..5).prop_map(ZOp::Add),
        1 => (1u16..200).prop_map(ZOp::AddMany),
        3 => proptest::collection::vec(0u8..20, 1..4).prop_map(ZOp::Rem),
        1 => Just(ZOp::Del),
        2 => Just(ZOp::Restart),
    ]
}

proptest! {
    /// Sorted sets match a map through adds, re-scores, removals, DEL and restarts: the
    /// scores, the (score, member) order, and exactly the live members' element keys in the
    /// tree after a restart.
    #[test]
    fn sorted_sets_match_a_model(ops in proptest::collection::vec(zset_op(), 1..60)) {
        use super::Score;
        let mut ks = Keyspace::new();
        let mut store = Store::new();
        let mut model: std::collections::BTreeMap<Bytes, f64> = Default::default();
        let key = b("z");
        let m = |x: u16| b(&format!("m{x}"));
        for op in ops {
            match op {
                ZOp::Add(pairs) => {
                    let members: Vec<(Bytes, Score)> = pairs.iter().map(|&(x, s)| (m(x as u16), Score::new(s as f64 / 2.0))).collect();
                    for (member, s) in &members { model.insert(member.clone(), s.get()); }
                    ks.apply(Mutation::ZSetAdd { db: 0, key: key.clone(), members });
                }
                ZOp::AddMany(n) => {
                    let members: Vec<(Bytes, Score)> = (0..n).map(|i| (m(1000 + i), Score::new(i as f64))).collect();
                    for (member, s) in &members { model.insert(member.clone(), s.get()); }
                    ks.apply(Mutation::ZSetAdd { db: 0, key: key.clone(), members });
                }
                ZOp::Rem(xs) => {
                    if ks.contains(0, &key, 0) {
                        let members: Vec<Bytes> = xs.iter().map(|&x| m(x as u16)).collect();
                        for member in &members { model.remove(member); }
                        ks.apply(Mutation::ZSetRem { db: 0, key: key.clone(), members });
                    }
                }
                ZOp::Del => {
                    if ks.contains(0, &key, 0) {
                        ks.apply(Mutation::Del { db: 0, key: key.clone() });
                    }
                    model.clear();
                }
                ZOp::Restart => {
                    write_pending(&mut ks, &mut store);
                    ks = restart(&mut store, 0);
                    let element_keys = store.keys().filter(|k| storage::is_field_key(k)).count();
                    prop_assert_eq!(element_keys, model.len());
                }
            }
            write_pending(&mut ks, &mut store);
            let got: Option<Vec<(Bytes, f64)>> = ks.get(0, &key, 0).map(|e| {
                e.value.as_zset().expect("a sorted set").iter().map(|(m, s)| (m.clone(), s)).collect()
            });
            let mut want: Vec<(Bytes, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
            want.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
            prop_assert_eq!(got, (!want.is_empty()).then_some(want));
            if let Some(z) = ks.get(0, &key, 0).and_then(|e| e.value.as_zset()) {
                for (i, (member, _)) in z.iter().enumerate() {
                    prop_assert_eq!(z.rank(member), Some(i));
                }
            }
        }
    }
}

/// The compaction filter turns into tombstones exactly the element keys no live collection
/// owns, and only once the oracle is installed (start-up rebuild, resharding: nothing is an
/// orphan yet).
#[test]
fn compaction_filter_reclaims_orphaned_elements_only() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let ks = Rc::new(RefCell::new(Keyspace::new()));
    let members = |n: u16| (0..n).map(|i| b(&format!("m{i}"))).collect::<Vec<_>>();
    ks.borrow_mut().apply(Mutation::SetAdd {
        db: 0,
        key: b("big"),
        members: members(200),
    });
    let old_version = match &RefCell::borrow(&ks).peek(0, b"big").unwrap().value {
        Value::Set(s) => s.version,
        other => panic!("{other:?}"),
    };
    let element = storage::field_key(0, b"big", old_version, b"m7");
    let oracle = storage::OrphanOracle::default();
    let filter = storage::compaction_filter(|| 0, oracle.clone());
    assert!(!filter(&element, b""), "a live set's element");
    // DEL: the 200 elements are left behind (more than are deleted eagerly)...
    ks.borrow_mut().apply(Mutation::Del {
        db: 0,
        key: b("big"),
    });
    assert!(!filter(&element, b""), "no oracle yet: kept");
    let weak = Rc::downgrade(&ks);
    *oracle.borrow_mut() = Some(Box::new(move |f| {
        weak.upgrade()
            .is_some_and(|ks| RefCell::borrow(&ks).is_orphan(f.db, f.key, f.version, f.field))
    }));
    assert!(filter(&element, b""), "an orphan once the oracle answers");
    // ...and a new set at the same key owns only its own version's elements.
    ks.borrow_mut().apply(Mutation::SetAdd {
        db: 0,
        key: b("big"),
        members: members(1),
    });
    let new_version = match &RefCell::borrow(&ks).peek(0, b"big").unwrap().value {
        Value::Set(s) => s.version,
        other => panic!("{other:?}"),
    };
    assert!(filter(&element, b""), "the old incarnation's element");
    assert!(!filter(
        &storage::field_key(0, b"big", new_version, b"m0"),
        b""
    ));
    // A string at the key owns no element; plain keys are judged by expiry only.
    ks.borrow_mut().apply(Mutation::Set {
        db: 0,
        key: b("big"),
        value: Value::Str(b("s")),
        expire_at_ms: None,
    });
    assert!(filter(
        &storage::field_key(0, b"big", new_version, b"m0"),
        b""
    ));
    let (stored, _) = storage::encode_string(b"v", None);
    assert!(!filter(&storage::storage_key(0, b"big"), &stored));
}

/// Pops write no tombstones: the popped elements' keys stay in the tree outside the list's
/// live range, where compaction drops them and a restart skips and deletes them.
#[test]
fn popped_list_elements_are_orphans_outside_the_live_range() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let ks = Rc::new(RefCell::new(Keyspace::new()));
    let push = |ks: &Rc<RefCell<Keyspace>>, left: bool, values: &[&str]| {
        ks.borrow_mut().apply(Mutation::ListPush {
            db: 0,
            key: b("q"),
            left,
            values: values.iter().map(|v| b(v)).collect(),
        })
    };
    push(&ks, false, &["a", "b", "c", "d"]);
    let mut store = Store::new();
    write_pending(&mut ks.borrow_mut(), &mut store);
    let version = RefCell::borrow(&ks)
        .peek(0, b"q")
        .unwrap()
        .value
        .as_list()
        .unwrap()
        .version;
    let element =
        |index: i64| storage::field_key(0, b"q", version, &storage::list_index_field(index));
    // LPOP and RPOP: "b", "c" are left, at indexes 1 and 2.
    for left in [true, false] {
        ks.borrow_mut().apply(Mutation::ListPop {
            db: 0,
            key: b("q"),
            left,
            count: 1,
        });
    }
    write_pending(&mut ks.borrow_mut(), &mut store);
    assert_eq!(
        store.keys().filter(|k| storage::is_field_key(k)).count(),
        4,
        "pops wrote no tombstones"
    );
    let oracle = storage::OrphanOracle::default();
    let filter = storage::compaction_filter(|| 0, oracle.clone());
    let weak = Rc::downgrade(&ks);
    *oracle.borrow_mut() = Some(Box::new(move |f| {
        weak.upgrade()
            .is_some_and(|ks| RefCell::borrow(&ks).is_orphan(f.db, f.key, f.version, f.field))
    }));
    let dropped: Vec<bool> = (0..4).map(|i| filter(&element(i), b"x")).collect();
    assert_eq!(dropped, [true, false, false, true]);
    // Whole ranges (a table's first and last keys): dead only on one side of the live [1, 2].
    let ranges = storage::OrphanRangeOracle::default();
    let weak = Rc::downgrade(&ks);
    *ranges.borrow_mut() = Some(Box::new(move |lo, hi_field| {
        weak.upgrade().is_some_and(|ks| {
            RefCell::borrow(&ks).is_orphan_range(lo.db, lo.key, lo.version, lo.field, hi_field)
        })
    }));
    let dead = |lo: i64, hi: i64| storage::is_orphan_range(&element(lo), &element(hi), &ranges);
    assert!(dead(-5, 0) && dead(3, 9) && dead(0, 0));
    assert!(!dead(0, 1) && !dead(2, 3) && !dead(0, 3) && !dead(1, 2));
    let other = storage::field_key(0, b"q", version + 1, &storage::list_index_field(0));
    assert!(
        !storage::is_orphan_range(&element(0), &other, &ranges),
        "keys of two incarnations: not judged"
    );
    assert!(
        storage::is_orphan_range(&other, &other, &ranges),
        "another incarnation's"
    );
    // A push takes index 3 again: live, and newer than the popped element's key.
    push(&ks, false, &["e"]);
    assert!(!filter(&element(3), b"x"));
    write_pending(&mut ks.borrow_mut(), &mut store);
    // A restart rebuilds b, c, e and deletes the one orphan (index 0) it meets.
    let rebuilt = restart(&mut store, 0);
    let items: Vec<Bytes> = rebuilt
        .peek(0, b"q")
        .unwrap()
        .value
        .as_list()
        .unwrap()
        .items
        .iter()
        .map(Bytes::copy_from_slice)
        .collect();
    assert_eq!(items, vec![b("b"), b("c"), b("e")]);
    assert_eq!(store.keys().filter(|k| storage::is_field_key(k)).count(), 3);
}

#[derive(Clone, Debug)]
enum BatchOp {
    Set(u8, u8),
    Del(u8),
    Expire(u8, Option<u64>),
    HSet(u8, u8),
    Push(u8, bool),
    Pop(u8, bool),
}

fn batch_op() -> impl Strategy<Value = (BatchOp, bool)> {
    let op = prop_oneof![
        4 => (0u8..3, any::<u8>()).prop_map(|(k, v)| BatchOp::Set(k, v)),
        2 => (0u8..3).prop_map(BatchOp::Del),
        1 => (0u8..3, proptest::option::of(1000u64..2000)).prop_map(|(k, at)| BatchOp::Expire(k, at)),
        2 => (0u8..3, 0u8..4).prop_map(|(k, f)| BatchOp::HSet(k, f)),
        2 => (0u8..3, any::<bool>()).prop_map(|(k, l)| BatchOp::Push(k, l)),
        2 => (0u8..3, any::<bool>()).prop_map(|(k, l)| BatchOp::Pop(k, l)),
    ];
    (op, any::<bool>())
}

/// The mutation `op` stands for on `ks`, if it applies to the key's type (as a command would
/// check first).
fn batch_mutation(ks: &Keyspace, op: &BatchOp) -> Option<Mutation> {
    let key = |k: u8| b(&format!("k{k}"));
    let type_of = |k: u8| ks.peek(0, &key(k)).map(|e| e.value.type_name());
    Some(match *op {
        BatchOp::Set(k, v) => Mutation::Set {
            db: 0,
            key: key(k),
            value: Value::Str(b(&format!("v{v}"))),
            expire_at_ms: None,
        },
        BatchOp::Del(k) => {
            type_of(k)?;
            Mutation::Del { db: 0, key: key(k) }
        }
        BatchOp::Expire(k, expire_at_ms) => {
            type_of(k)?;
            Mutation::SetExpire {
                db: 0,
                key: key(k),
                expire_at_ms,
            }
        }
        BatchOp::HSet(k, f) if matches!(type_of(k), None | Some("hash")) => Mutation::HashSet {
            db: 0,
            key: key(k),
            fields: vec![(b(&format!("f{f}")), b("x"))],
        },
        BatchOp::Push(k, left) if matches!(type_of(k), None | Some("list")) => Mutation::ListPush {
            db: 0,
            key: key(k),
            left,
            values: vec![b("e")],
        },
        BatchOp::Pop(k, left) if type_of(k) == Some("list") => Mutation::ListPop {
            db: 0,
            key: key(k),
            left,
            count: 1,
        },
        _ => return None,
    })
}

proptest! {
    /// A storage key written several times in one batch keeps only its last write there: the
    /// tree ends the same as when every mutation is its own batch.
    #[test]
    fn coalesced_batches_leave_the_tree_as_single_writes_do(
        ops in proptest::collection::vec(batch_op(), 1..60),
    ) {
        let (mut single, mut single_store) = (Keyspace::new(), Store::new());
        let (mut batched, mut batched_store) = (Keyspace::new(), Store::new());
        for (op, end_batch) in &ops {
            let Some(m) = batch_mutation(&single, op) else { continue };
            prop_assert_eq!(batch_mutation(&batched, op).is_some(), true);
            single.apply(m.clone());
            write_pending(&mut single, &mut single_store);
            batched.apply(m);
            if *end_batch {
                let batch = batched.take_pending();
                let keys: Set<&[u8]> = batch
                    .entries()
                    .iter()
                    .filter(|(_, k, _)| !storage::is_field_key(k))
                    .map(|(_, k, _)| &k[..])
                    .collect();
                prop_assert_eq!(
                    keys.len(),
                    batch.entries().iter().filter(|(_, k, _)| !storage::is_field_key(k)).count(),
                    "a storage key appears once per batch"
                );
                for (kind, key, value) in batch.entries() {
                    match kind {
                        crate::lsm::key::ValueKind::Put => { batched_store.insert(key.to_vec(), value.clone()); }
                        crate::lsm::key::ValueKind::Delete => { batched_store.remove(&key[..]); }
                    }
                }
            }
        }
        write_pending(&mut batched, &mut batched_store);
        prop_assert_eq!(&single_store, &batched_store);
        // And both rebuild to the same keyspace.
        let a = restart(&mut single_store, 0);
        let b_ = restart(&mut batched_store, 0);
        for k in 0..3u8 {
            let key = b(&format!("k{k}"));
            prop_assert_eq!(a.peek(0, &key).map(|e| &e.value), b_.peek(0, &key).map(|e| &e.value));
        }
    }
}

#[test]
fn no_load_is_needed_until_a_value_is_offloaded() {
    let mut ks = Keyspace::with_resident_budget(4);
    let mut log = Vec::new();
    set(&mut ks, &mut log, 0, "a", "vv", None);
    assert!(!ks.may_need_loads());
    assert_eq!(ks.needs_load(0, b"a", 0), None);
    set(&mut ks, &mut log, 0, "b", "vvvv", None);
    ks.evict_to_budget();
    assert!(ks.may_need_loads());
    assert!(ks.needs_load(0, b"a", 0).is_some());
}

/// Lazy expiry is not in the log: a collection written over an expired key of another type
/// replaces it (the logging command removed it when it read it), while an expired collection
/// of the same type replayed later than it was written takes the write and stays expired
/// instead of coming back without its expiry.
#[test]
fn replay_treats_expired_keys_as_their_writers_did() {
    let hash_set = |key: &str, field: &str| Mutation::HashSet {
        db: 0,
        key: b(key),
        fields: vec![(b(field), b("1"))],
    };
    // Applied as it grows: a string that expired at 1, then a hash written at 2.
    let mut log = Vec::new();
    set(&mut Keyspace::new(), &mut log, 0, "s", "v", Some(1));
    let mut replica = Keyspace::new();
    replica.apply_logged(&log, 0).unwrap();
    let mut more = Vec::new();
    hash_set("s", "f").encode(&mut more);
    replica.apply_logged(&more, 2).unwrap();
    let got = replica.get(0, b"s", 2).map(|e| e.value.type_name());
    assert_eq!(got, Some("hash"));
    replica.check_invariants();

    // Replayed at start-up, long after: a hash that expired at 10 and took a field at 5.
    let mut log = Vec::new();
    hash_set("h", "a").encode(&mut log);
    Mutation::SetExpire {
        db: 0,
        key: b("h"),
        expire_at_ms: Some(10),
    }
    .encode(&mut log);
    hash_set("h", "b").encode(&mut log);
    let mut restarted = Keyspace::new();
    restarted.apply_logged(&log, 20).unwrap();
    assert!(
        restarted.get(0, b"h", 20).is_none(),
        "expired, not brought back"
    );
}
