//! SIGINT and SIGTERM: the first stops the run gracefully (flush, stats, exit 130/143),
//! a second one exits at once.
//!
//! Waiting is done in `poll` on the socket *and* a self-pipe the signal handler writes
//! to, so a signal can never slip in between a flag check and a blocking read. The
//! handlers are installed with `SA_RESTART` (signal-hook), so nothing may block outside
//! such a wait: stdin too is read only once `poll` says it is readable.
//!
//! The pipe is never drained: a signal only ever means "stop", and a pipe left readable
//! wakes every later wait, in every thread, at once.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// What ended a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The descriptor waited on is readable.
    Readable,
    /// The deadline passed.
    Timeout,
    /// SIGINT or SIGTERM arrived (its number).
    Signal(i32),
}

/// What ended a wait on several descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeAny<const N: usize> {
    /// Which of the descriptors waited on are readable (at least one is).
    Ready([bool; N]),
    /// The deadline passed.
    Timeout,
    /// SIGINT or SIGTERM arrived (its number).
    Signal(i32),
}

/// The installed handlers and the read end of their wake-up pipe.
pub struct Signals {
    wake: UnixStream,
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    /// Install the handlers. Call once, before any waiting.
    pub fn install() -> anyhow::Result<Self> {
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
        Ok(Signals {
            wake: read,
            int,
            term,
        })
    }

    /// The descriptor that becomes readable (and stays so) once a signal came: for loops
    /// that poll many descriptors themselves.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// The signal that asked us to stop, if one did.
    pub fn pending(&self) -> Option<i32> {
        if self.int.load(Ordering::Relaxed) {
            Some(SIGINT)
        } else if self.term.load(Ordering::Relaxed) {
            Some(SIGTERM)
        } else {
            None
        }
    }

    /// Wait until one of `fds` (the `Some` ones) is readable, `deadline` passes, or a
    /// signal arrives. With no descriptor it is a sleep that a signal cuts short.
    pub fn wait_any<const N: usize>(
        &self,
        fds: [Option<RawFd>; N],
        deadline: Option<Instant>,
    ) -> io::Result<WakeAny<N>> {
        loop {
            if let Some(sig) = self.pending() {
                return Ok(WakeAny::Signal(sig));
            }
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(WakeAny::Timeout),
                },
                None => None,
            };
            let mut polled = [self.wake.as_raw_fd(); 8];
            let mut slots = [None; N];
            let mut n = 1;
            for (i, fd) in fds.iter().enumerate() {
                if let Some(fd) = fd {
                    polled[n] = *fd;
                    slots[i] = Some(n);
                    n += 1;
                }
            }
            match crate::net::sys::wait_readable_any(&polled[..n], timeout) {
                Ok(mask) => {
                    let ready = slots.map(|s| s.is_some_and(|bit| mask & (1 << bit) != 0));
                    if ready.iter().any(|&r| r) {
                        return Ok(WakeAny::Ready(ready));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Wait until `fd` is readable, `deadline` passes, or a signal arrives.
    pub fn wait(&self, fd: Option<RawFd>, deadline: Option<Instant>) -> io::Result<Wake> {
        Ok(match self.wait_any([fd], deadline)? {
            WakeAny::Ready(_) => Wake::Readable,
            WakeAny::Timeout => Wake::Timeout,
            WakeAny::Signal(sig) => Wake::Signal(sig),
        })
    }
}
