//! Fuzzes the RESP request parser the way a connection drives it: the input is a byte stream,
//! fed in pieces; every request found must lie inside the buffer, be found again (and only then)
//! whatever the split, and turn into a `Command`. The parser must never panic.
#![no_main]

use bytes::BytesMut;
use helios_net::resp::{parse_request, take_command, Arg, ParseLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    // Small limits half the time, so the "too big" and "invalid length" paths are reachable.
    let limits = if control & 1 == 0 {
        ParseLimits::default()
    } else {
        ParseLimits {
            bulk_bytes_max: 64,
            multibulk_len_max: 16,
            inline_bytes_max: 32,
        }
    };
    let chunk_bytes = usize::from(control >> 1) + 1;

    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut prefix_args = Vec::new();
    for chunk in stream.chunks(chunk_bytes) {
        buf.extend_from_slice(chunk);
        // A protocol error ends the stream, as it closes a connection.
        while let Ok(Some(n)) = parse_request(&buf, &limits, &mut args) {
            assert!(n > 0 && n <= buf.len());
            for arg in &args {
                if let Arg::Range(start, end) = *arg {
                    assert!(start <= end && end <= n);
                }
            }
            // One byte short of a request is never a request.
            let short = parse_request(&buf[..n - 1], &limits, &mut prefix_args);
            assert!(matches!(short, Ok(None) | Err(_)), "{short:?}");
            if let Some(command) = take_command(&mut buf, n, &args) {
                assert_eq!(command.args.len(), args.len());
            }
        }
    }
});
