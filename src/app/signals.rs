//! Installing the SIGINT and SIGTERM handlers, once, at the start: the first signal sets
//! a flag and writes to a wake-up pipe that every wait polls (`net::signal`); a second
//! one exits at once with 130 or 143.

use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use crate::net::signal::Signals;

/// Install the handlers. Call once, before any waiting.
pub fn install() -> anyhow::Result<Signals> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let int = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(AtomicBool::new(false));
    for (sig, own, code) in [(SIGINT, &int, 130), (SIGTERM, &term, 143)] {
        // Order matters: the exit check runs before the flag is set, so only a
        // second signal finds `stopping` already true.
        flag::register_conditional_shutdown(sig, code, Arc::clone(&stopping))?;
        flag::register(sig, Arc::clone(&stopping))?;
        flag::register(sig, Arc::clone(own))?;
        signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
    }
    Ok(Signals::new(read, int, term))
}
