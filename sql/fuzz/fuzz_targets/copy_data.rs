//! Fuzzes COPY's record parsers (text, CSV and binary) with arbitrary data and options:
//! every input splits into fields or fails with a SQLSTATE, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&options, data)) = data.split_first() else {
        return;
    };
    helios_sql::copy_fuzzing::parse_all(options, data);
});
