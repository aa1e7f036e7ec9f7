//! Fuzz the payload decoders and the stdin line splitter (`dgram_cli::wire::payload`): no input
//! panics, and what encodes decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dgram_cli::wire::codec::{self, decode, Encoding};
use dgram_cli::wire::payload::Lines;

fuzz_target!(|data: &[u8]| {
    for enc in [
        Encoding::Text,
        Encoding::Hex,
        Encoding::Base64,
        Encoding::Escapes,
    ] {
        let _ = decode(data, enc);
    }
    let mut lines = Lines::new(data);
    let mut line = Vec::new();
    let mut total = 0;
    while lines.next_into(&mut line).unwrap() {
        total += line.len();
        assert!(!line.contains(&b'\n'));
    }
    assert!(total <= data.len());
    let hex = codec::hex(data);
    assert_eq!(decode(hex.as_bytes(), Encoding::Hex).unwrap(), data);
});
