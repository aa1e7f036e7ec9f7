//! Waiting for a descriptor, a deadline or a stop signal (SIGINT, SIGTERM), whichever
//! comes first: the first signal stops the run gracefully (flush, stats, exit 130/143),
//! a second one exits at once. Installing the handlers is the app layer's
//! (`app::signals`); this is what every loop waits with.
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
    /// A handle over a wake-up pipe's read end and the flags the handlers set; the
    /// handlers themselves are the app layer's (`app::signals::install`).
    pub fn new(wake: UnixStream, int: Arc<AtomicBool>, term: Arc<AtomicBool>) -> Signals {
        Signals { wake, int, term }
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
            // The wake pipe first, then the `Some` descriptors; eight or fewer on the
            // stack, more on the heap.
            const INLINE: usize = 8;
            let wake = self.wake.as_raw_fd();
            let (mut inline, mut heap) = ([wake; INLINE], Vec::new());
            let mut inline_ready = [false; INLINE];
            let mut heap_ready = Vec::new();
            let (polled, ready_of): (&mut [RawFd], &mut [bool]) = if N < INLINE {
                (&mut inline[..], &mut inline_ready[..])
            } else {
                heap.resize(N + 1, wake);
                heap_ready.resize(N + 1, false);
                (&mut heap[..], &mut heap_ready[..])
            };
            let mut slots = [None; N];
            let mut n = 1;
            for (i, fd) in fds.iter().enumerate() {
                if let Some(fd) = fd {
                    polled[n] = *fd;
                    slots[i] = Some(n);
                    n += 1;
                }
            }
            match crate::net::sys::wait_readable_any(&polled[..n], &mut ready_of[..n], timeout) {
                Ok(_) => {
                    let ready = slots.map(|s| s.is_some_and(|i| ready_of[i]));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn quiet() -> (Signals, UnixStream, Arc<AtomicBool>) {
        let (read, write) = UnixStream::pair().unwrap();
        read.set_nonblocking(true).unwrap();
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        (Signals::new(read, Arc::clone(&int), term), write, int)
    }

    #[test]
    fn a_wait_on_many_descriptors_names_the_readable_one() {
        // guards: the wait polled a fixed [fd; 8] and panicked on the eighth descriptor.
        let (signals, _write, _) = quiet();
        let socks: Vec<UdpSocket> = (0..10)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut fds = [None; 10];
        for (slot, s) in fds.iter_mut().zip(&socks) {
            *slot = Some(s.as_raw_fd());
        }
        fds[3] = None;
        socks[0]
            .send_to(b"x", socks[9].local_addr().unwrap())
            .unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let WakeAny::Ready(ready) = signals.wait_any(fds, deadline).unwrap() else {
            panic!("not readable");
        };
        let which: Vec<usize> = (0..10).filter(|&i| ready[i]).collect();
        assert_eq!(which, vec![9]);
        let soon = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(
            signals
                .wait_any([Some(socks[1].as_raw_fd())], soon)
                .unwrap(),
            WakeAny::Timeout
        );
    }

    #[test]
    fn a_signal_flag_and_the_wake_pipe_end_the_wait() {
        let (signals, mut write, int) = quiet();
        int.store(true, Ordering::Relaxed);
        std::io::Write::write_all(&mut write, b"x").unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(signals.wait(None, deadline).unwrap(), Wake::Signal(SIGINT));
        assert_eq!(signals.pending(), Some(SIGINT));
    }
}
