//! Fuzz the address parser (`dgram_cli::net::addr`): splitting never panics, and what it
//! accepts as an IP literal prints back to something it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dgram_cli::net::addr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // split() only: parse_target() would hand random names to the system resolver.
    for bare in [None, Some(std::net::IpAddr::from([127, 0, 0, 1]))] {
        if let Ok((addr::Host::Ip(ip, scope), port)) = addr::split(text, bare) {
            let again = std::net::SocketAddr::new(ip, port).to_string();
            if scope == 0 {
                assert!(
                    addr::split(&again, None).is_ok(),
                    "{text:?} -> {again:?} refused"
                );
            }
        }
    }
});
