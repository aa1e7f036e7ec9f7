//! Which of the standard streams are terminals: the defaults that depend on them (the
//! output format, interactive stdin, the progress line and the RTT chart).

use std::io::{self, IsTerminal};

/// Which of the standard streams are terminals: the defaults that depend on them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terminals {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Terminals {
    /// This process's streams.
    pub fn detect() -> Self {
        Terminals {
            stdin: io::stdin().is_terminal(),
            stdout: io::stdout().is_terminal(),
            stderr: io::stderr().is_terminal(),
        }
    }
}
