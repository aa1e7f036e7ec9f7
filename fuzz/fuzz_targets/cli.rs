//! Fuzz the whole command-line parse: the clap definitions of `dgram_cli::cli` with the
//! value parsers they use (addresses, durations, sizes, networks, formats). Input bytes
//! split on NUL into arguments; no argument list may panic.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;

use dgram_cli::cli;

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
