//! Installing the SIGINT and SIGTERM handlers, once, at the start: the first signal sets
//! a flag and writes to a wake-up pipe that every wait polls (`net::signal`); a second
//! one exits at once with 130 or 143.

use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use crate::net::signal::Signals;

/// Install the handlers. Call once, before any waiting.
pub fn install() -> anyhow::Result<Signals> {
    // Neither end is made non-blocking: the read end is only ever polled (the pipe is
    // never drained, `net::signal`) and signal-hook writes to a socket with
    // MSG_DONTWAIT. The write end is never closed: a handler may write to it for the
    // rest of the process's life. One descriptor serves both signals (a `dup` each, and
    // the two `ioctl`s, were five of a one-datagram send's 90 system calls).
    let (read, write) = UnixStream::pair()?;
    let write = write.into_raw_fd();
    let int = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(AtomicBool::new(false));
    for (sig, own, code) in [(SIGINT, &int, 130), (SIGTERM, &term, 143)] {
        // Order matters: the exit check runs before the flag is set, so only a
        // second signal finds `stopping` already true.
        flag::register_conditional_shutdown(sig, code, Arc::clone(&stopping))?;
        flag::register(sig, Arc::clone(&stopping))?;
        flag::register(sig, Arc::clone(own))?;
        signal_hook::low_level::pipe::register_raw(sig, write)?;
    }
    Ok(Signals::new(read, int, term))
}
