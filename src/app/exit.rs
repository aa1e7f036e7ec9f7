//! The exit codes of SPEC §6 and the map from an error to its code: the one place
//! that decides what the process returns.

use std::process::ExitCode;

use crate::base::error::{Ending, StdoutClosed, Unmet, Usage};
use crate::net::addr::AddrError;

/// Exit 0: success.
pub const SUCCESS: u8 = 0;
/// Exit 1: the expected did not happen (no reply, `--expect` mismatch, too few datagrams).
pub const UNMET: u8 = 1;
/// Exit 2: usage or invalid input.
pub const USAGE: u8 = 2;
/// Exit 3: network or system error.
pub const SYSTEM: u8 = 3;

/// The process exit code of a run that did not fail: 0, or 128 + the signal number
/// (130 for SIGINT, 143 for SIGTERM).
pub fn ending_code(ending: Ending) -> ExitCode {
    match ending {
        Ending::Done => ExitCode::from(SUCCESS),
        Ending::Signal(sig) => ExitCode::from(128u8.saturating_add(sig as u8)),
    }
}

/// The exit code for an error: the marker types first, then the I/O error kind.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<StdoutClosed>() {
            return SUCCESS;
        }
        if cause.is::<Usage>() || cause.is::<AddrError>() {
            return USAGE;
        }
        if cause.is::<Unmet>() {
            return UNMET;
        }
    }
    SYSTEM
}

/// True when the error means stdout's reader went away, which ends the program quietly.
pub fn is_quiet(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.is::<StdoutClosed>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::error::usage;
    use std::io;

    #[test]
    fn markers_anywhere_in_the_chain_pick_the_code() {
        let e = usage!("bad port").context("parsing target");
        assert_eq!(code_for(&e), USAGE);
        let e = anyhow::Error::new(Unmet("no reply".into())).context("x");
        assert_eq!(code_for(&e), UNMET);
        let e: anyhow::Error = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        assert_eq!(code_for(&e), SYSTEM);
        let e = anyhow::Error::new(StdoutClosed).context("writing");
        assert_eq!(code_for(&e), SUCCESS);
        assert!(is_quiet(&e));
        let e = anyhow::Error::new(AddrError("invalid address".into()));
        assert_eq!(code_for(&e), USAGE);
    }

    #[test]
    fn signal_endings_map_to_128_plus_signal() {
        assert_eq!(ending_code(Ending::Signal(2)), ExitCode::from(130));
        assert_eq!(ending_code(Ending::Signal(15)), ExitCode::from(143));
        assert_eq!(ending_code(Ending::Done), ExitCode::from(0));
    }
}
