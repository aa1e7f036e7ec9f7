//! Fuzz the DNS decoder and its renderers (`dgram_cli::wire::dns`): any datagram decodes to a
//! message or a reason, and a message always renders, as dig text and as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dgram_cli::wire::dns;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = dns::decode(data) {
        let mut text = String::new();
        dns::write_dig(
            &msg,
            "127.0.0.1:53".parse().unwrap(),
            data.len(),
            None,
            &mut text,
        );
        let _ = dns::to_json(&msg).to_string();
        let _ = dns::answer_text(&msg);
    }
});
