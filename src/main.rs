//! dgram: netcat for datagrams, done right.
//!
//! Parse the command line, set up logging, run the subcommand, and turn its result into
//! an exit code (SPEC §6). Everything else lives in the library.

use std::process::ExitCode;

use dgram_cli::app::exit::ending_code;
use dgram_cli::app::{clap_error, logging, report, signals};
use dgram_cli::cli::Cli;
use dgram_cli::cmd;

fn main() -> ExitCode {
    let cli = match Cli::from_env() {
        Ok(cli) => cli,
        Err(err) => return clap_error(&err),
    };
    logging::init(&cli.log);
    let signals = match signals::install() {
        Ok(s) => s,
        Err(err) => return report(&err.context("failed to install signal handlers")),
    };
    let result = cmd::run(cli.command, &signals);
    logging::finish();
    match result {
        Ok(ending) => ending_code(ending),
        Err(err) => report(&err),
    }
}
