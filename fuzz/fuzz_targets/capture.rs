//! Fuzz the capture reader (`dgram_cli::wire::capture`): any bytes are a capture with
//! datagrams, or a refusal naming an offset; never a panic or an endless read.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dgram_cli::wire::capture::CaptureReader;

fuzz_target!(|data: &[u8]| {
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(mut reader) = CaptureReader::from_reader("fuzz", input, Vec::new()) {
        let mut left = data.len() + 16;
        while let Ok(Some(_)) = reader.next_datagram() {
            left -= 1;
            assert!(left > 0, "more datagrams than the input could hold");
        }
    }
});
