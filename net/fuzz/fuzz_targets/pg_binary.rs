//! Fuzzes PostgreSQL binary parameter decoding: arbitrary bytes for each type helios takes in
//! binary must decode or fail with an error, never panic; a value that decodes must encode
//! back to bytes that decode to the same text.
#![no_main]

use helios_net::server::pgbinary::{binary_to_text, text_to_binary, OID_BOOL, OID_BYTEA, OID_FLOAT8, OID_INT2, OID_INT4, OID_INT8, OID_NUMERIC, OID_TEXT, OID_VARCHAR};
use libfuzzer_sys::fuzz_target;

const OIDS: [u32; 9] = [
    OID_BOOL, OID_BYTEA, OID_INT2, OID_INT4, OID_INT8, OID_FLOAT8, OID_NUMERIC, OID_TEXT, OID_VARCHAR,
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let oid = OIDS[usize::from(which) % OIDS.len()];
    let Ok(text) = binary_to_text(oid, bytes) else {
        return;
    };
    let mut again = Vec::new();
    text_to_binary(oid, &text, &mut again).expect("a decoded value encodes");
    assert_eq!(binary_to_text(oid, &again).expect("re-encoded value decodes"), text);
});
