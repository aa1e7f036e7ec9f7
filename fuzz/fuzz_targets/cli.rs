//! Fuzz the whole command-line parse: the clap definitions of src/cli.rs with the value
//! parsers they use (addresses, durations, sizes, networks, formats), included as they
//! are. Input bytes split on NUL into arguments; no argument list may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/addr.rs"]
#[allow(dead_code)]
mod addr;
#[path = "../../src/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../../src/exit.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod exit;
#[path = "../../src/filter.rs"]
#[allow(dead_code)]
mod filter;
#[path = "../../src/output.rs"]
#[allow(dead_code)]
mod output;
#[path = "../../src/payload.rs"]
#[allow(dead_code)]
mod payload;
#[path = "../../src/units.rs"]
#[allow(dead_code)]
mod units;

use clap::Parser;

fuzz_target!(|data: &[u8]| {
    use std::os::unix::ffi::OsStringExt;
    let args = std::iter::once(std::ffi::OsString::from("dgram")).chain(
        data.split(|&b| b == 0)
            .map(|a| std::ffi::OsString::from_vec(a.to_vec())),
    );
    if let Ok(cli) = cli::Cli::try_parse_from(args) {
        // What parses is well-formed enough to print.
        let _ = format!("{cli:?}");
    }
});
