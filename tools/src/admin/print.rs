//! How the offline commands render bytes: keys and values escaped (non-printable bytes as
//! `\xNN`, as `escape_ascii` does), long values cut with their total length, internal keys as
//! `"user key"@seq`, and WAL record payloads decoded by their record kind.

use std::fmt::Write;

use bytes::Bytes;
use helios_engine::keyspace::{self, Mutation, Value};
use helios_engine::lsm::batch::{self, WAL_KIND_BATCH};
use helios_engine::lsm::key::{self, ValueKind};
use helios_engine::lsm::manifest::{self, MANIFEST_RECORD_KIND};

/// Bytes of a value shown before it is cut.
pub const VALUE_SHOWN_BYTES_MAX: usize = 64;
/// Bytes of a key shown before it is cut (keys are usually short; a 64 KiB one is not).
pub const KEY_SHOWN_BYTES_MAX: usize = 256;
/// WAL record kind of the server's keyspace mutations (`helios_net`'s `WAL_KIND_REDIS`, private
/// there). Keep in step.
pub const WAL_KIND_REDIS: u8 = 1;

/// `"escaped bytes"`, cut after `max` bytes with the total length: `"abc…" (1000 bytes)`.
pub fn quoted(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return format!("\"{}\"", bytes.escape_ascii());
    }
    format!(
        "\"{}…\" ({} bytes)",
        bytes[..max].escape_ascii(),
        bytes.len()
    )
}

/// A key as shown.
pub fn key(bytes: &[u8]) -> String {
    quoted(bytes, KEY_SHOWN_BYTES_MAX)
}

/// A value as shown.
pub fn value(bytes: &[u8]) -> String {
    quoted(bytes, VALUE_SHOWN_BYTES_MAX)
}

/// Lower-case hex, cut after `max` bytes with the total length.
pub fn hex(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(2 * bytes.len().min(max) + 16);
    for b in &bytes[..bytes.len().min(max)] {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > max {
        let _ = write!(out, "… ({} bytes)", bytes.len());
    }
    out
}

/// An internal key: `"user key"@seq put` / `del`, or `0x…` (not an internal key) when it does
/// not parse.
pub fn internal_key(bytes: &[u8]) -> String {
    match key::parse(bytes) {
        Some(parsed) => format!(
            "{}@{} {}",
            key(parsed.user_key),
            parsed.seq,
            kind_name(parsed.kind)
        ),
        None => format!(
            "0x{} (not an internal key)",
            hex(bytes, KEY_SHOWN_BYTES_MAX)
        ),
    }
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Put => "put",
        ValueKind::Delete => "del",
    }
}

/// A short name for a WAL record kind.
pub fn record_kind_name(kind: u8) -> String {
    match kind {
        WAL_KIND_REDIS => "redis".to_string(),
        WAL_KIND_BATCH => "lsm-batch".to_string(),
        MANIFEST_RECORD_KIND => "manifest-edit".to_string(),
        other => format!("{other:#04x}"),
    }
}

/// A payload decoded by its record kind: one line per entry (mutation, batch entry, edit),
/// or why it does not decode (`Err`). An unknown kind is one line of hex, not an error.
pub fn record_payload(kind: u8, payload: &[u8]) -> Result<Vec<String>, String> {
    match kind {
        WAL_KIND_REDIS => keyspace::decode_all(payload)
            .map(|mutations| mutations.iter().map(mutation).collect())
            .map_err(|error| error.to_string()),
        WAL_KIND_BATCH => {
            let decoded = batch::decode(Bytes::copy_from_slice(payload))?;
            let lines = decoded.entries.iter().enumerate();
            Ok(lines
                .map(|(i, (kind, key, value))| {
                    batch_entry(decoded.base_seq + i as u64, *kind, key, value)
                })
                .collect())
        }
        MANIFEST_RECORD_KIND => manifest::decode_edit(payload).map(|edit| vec![edit.to_string()]),
        _ => Ok(vec![format!("unknown kind: {}", hex(payload, 64))]),
    }
}

/// One keyspace mutation on one line.
pub fn mutation(m: &Mutation) -> String {
    match m {
        Mutation::Set {
            db,
            key: k,
            value: Value::Str(v),
            expire_at_ms,
        } => {
            let expire = expire_at_ms.map_or(String::new(), |at| format!(" expire_at_ms={at}"));
            format!("set db={db} {} = {}{expire}", key(k), value(v))
        }
        Mutation::Set {
            db,
            key: k,
            value: Value::OffloadedStr { len },
            ..
        } => format!("set db={db} {} = <{len} bytes, not in the record>", key(k)),
        Mutation::Del { db, key: k } => format!("del db={db} {}", key(k)),
        Mutation::SetExpire {
            db,
            key: k,
            expire_at_ms: Some(at),
        } => format!("expire db={db} {} at_ms={at}", key(k)),
        Mutation::SetExpire {
            db,
            key: k,
            expire_at_ms: None,
        } => format!("persist db={db} {}", key(k)),
        Mutation::FlushDb { db } => format!("flushdb db={db}"),
        Mutation::FlushAll => "flushall".to_string(),
        Mutation::Set {
            db,
            key: k,
            value: v @ (Value::Hash(_) | Value::Set(_) | Value::List(_) | Value::ZSet(_)),
            ..
        } => format!("set db={db} {} = <a {}>", key(k), v.type_name()),
        Mutation::ListPush {
            db,
            key: k,
            left,
            values,
        } => {
            let values: Vec<String> = values.iter().map(|v| value(v)).collect();
            let op = if *left { "lpush" } else { "rpush" };
            format!("{op} db={db} {} {}", key(k), values.join(", "))
        }
        Mutation::ListPop {
            db,
            key: k,
            left,
            count,
        } => {
            let op = if *left { "lpop" } else { "rpop" };
            format!("{op} db={db} {} count={count}", key(k))
        }
        Mutation::ListSet {
            db,
            key: k,
            index,
            value: v,
        } => format!("lset db={db} {} [{index}] = {}", key(k), value(v)),
        Mutation::ListReplace { db, key: k, values } => {
            let values: Vec<String> = values.iter().map(|v| value(v)).collect();
            format!("lreplace db={db} {} {}", key(k), values.join(", "))
        }
        Mutation::SetAdd {
            db,
            key: k,
            members,
        }
        | Mutation::SetRem {
            db,
            key: k,
            members,
        } => {
            let members: Vec<String> = members.iter().map(|m| value(m)).collect();
            let op = if matches!(m, Mutation::SetAdd { .. }) {
                "sadd"
            } else {
                "srem"
            };
            format!("{op} db={db} {} {}", key(k), members.join(", "))
        }
        Mutation::HashSet { db, key: k, fields } => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(f, v)| format!("{} = {}", value(f), value(v)))
                .collect();
            format!("hset db={db} {} {}", key(k), fields.join(", "))
        }
        Mutation::HashDel { db, key: k, fields } => {
            let fields: Vec<String> = fields.iter().map(|f| value(f)).collect();
            format!("hdel db={db} {} {}", key(k), fields.join(", "))
        }
        Mutation::ZSetAdd {
            db,
            key: k,
            members,
        } => {
            let members: Vec<String> = members
                .iter()
                .map(|(m, s)| format!("{} = {}", value(m), s.get()))
                .collect();
            format!("zadd db={db} {} {}", key(k), members.join(", "))
        }
        Mutation::ZSetRem {
            db,
            key: k,
            members,
        } => {
            let members: Vec<String> = members.iter().map(|m| value(m)).collect();
            format!("zrem db={db} {} {}", key(k), members.join(", "))
        }
    }
}

/// One entry of an LSM write batch on one line.
pub fn batch_entry(seq: u64, kind: ValueKind, k: &[u8], v: &[u8]) -> String {
    match kind {
        ValueKind::Put => format!("put seq={seq} {} = {}", key(k), value(v)),
        ValueKind::Delete => format!("del seq={seq} {}", key(k)),
    }
}

/// `1.5 MiB`-style sizes for summaries.
pub fn bytes_human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use helios_engine::lsm::manifest::VersionEdit;
    use helios_engine::lsm::WriteBatch;

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(value(b"plain"), "\"plain\"");
        assert_eq!(value(b"a\x00\n\"\xff"), r#""a\x00\n\"\xff""#);
        let long = vec![b'x'; 100];
        let shown = value(&long);
        assert!(
            shown.starts_with(&format!("\"{}…\"", "x".repeat(64))),
            "{shown}"
        );
        assert!(shown.ends_with("(100 bytes)"));
        assert_eq!(hex(&[0xde, 0xad], 8), "dead");
        assert_eq!(hex(&[1, 2, 3], 2), "0102… (3 bytes)");
    }

    #[test]
    fn internal_keys() {
        let k = key::encode(b"user\x01", 42, ValueKind::Put);
        assert_eq!(internal_key(&k), r#""user\x01"@42 put"#);
        let k = key::encode(b"gone", 7, ValueKind::Delete);
        assert_eq!(internal_key(&k), "\"gone\"@7 del");
        assert!(internal_key(b"ab").contains("not an internal key"));
    }

    #[test]
    fn payloads_by_kind() {
        let mut out = Vec::new();
        Mutation::Set {
            db: 0,
            key: Bytes::from_static(b"k1"),
            value: Value::Str(Bytes::from_static(b"v1")),
            expire_at_ms: Some(99),
        }
        .encode(&mut out);
        Mutation::Del {
            db: 3,
            key: Bytes::from_static(b"k2"),
        }
        .encode(&mut out);
        let lines = record_payload(WAL_KIND_REDIS, &out).unwrap();
        assert_eq!(
            lines,
            [
                "set db=0 \"k1\" = \"v1\" expire_at_ms=99",
                "del db=3 \"k2\""
            ]
        );
        assert!(record_payload(WAL_KIND_REDIS, &out[..5]).is_err());

        let mut batch = WriteBatch::new();
        batch.put(&b"a"[..], &b"1"[..]);
        batch.delete(&b"b"[..]);
        let lines = record_payload(WAL_KIND_BATCH, &batch.encode(10)).unwrap();
        assert_eq!(lines, ["put seq=10 \"a\" = \"1\"", "del seq=11 \"b\""]);

        let edit = VersionEdit {
            last_seq: Some(5),
            ..VersionEdit::default()
        };
        let payload = manifest::encode_edit(&edit);
        let lines = record_payload(MANIFEST_RECORD_KIND, &payload).unwrap();
        assert_eq!(lines, ["last_seq=5"]);

        assert_eq!(
            record_payload(0x99, b"\x01\x02").unwrap(),
            ["unknown kind: 0102"]
        );
        assert_eq!(record_kind_name(0x99), "0x99");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(bytes_human(12), "12 B");
        assert_eq!(bytes_human(1536), "1.5 KiB");
        assert_eq!(bytes_human(3 << 20), "3.0 MiB");
    }
}
