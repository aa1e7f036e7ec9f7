//! Readiness of many descriptors at once, for the relay's sessions: epoll on Linux, where
//! a wait costs what is ready rather than what is watched; poll(2) over the registered
//! set elsewhere (the documented fallback: the same interface, a wait that grows with
//! the number of sessions).
//!
//! Level-triggered on both: a descriptor with data left (a batch that did not drain
//! it) or with an error queued is reported again by the next wait.

use std::time::Duration;

/// What a wait found on one descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the descriptor was added with.
    pub token: u64,
    /// Data to read.
    pub readable: bool,
    /// Room to write (only while writing is wanted: [`Poller::set_interest`]).
    pub writable: bool,
    /// An error queued (an ICMP error, with IP_RECVERR): read the error queue, or the
    /// descriptor stays ready.
    pub error: bool,
}

/// The longest wait in milliseconds, rounded up: waking a little late is harmless,
/// waking early would spin until the deadline.
fn millis(timeout: Option<Duration>) -> i32 {
    timeout.map_or(-1, |t| {
        let ms = t.as_nanos().div_ceil(1_000_000);
        ms.min(i32::MAX as u128) as i32
    })
}

#[cfg(target_os = "linux")]
pub use self::epoll::Poller;
#[cfg(not(target_os = "linux"))]
pub use self::fallback::Poller;

#[cfg(target_os = "linux")]
mod epoll {
    use super::{millis, Event};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    /// An epoll instance and a buffer for what one wait returns.
    pub struct Poller {
        epfd: OwnedFd,
        ready: Vec<libc::epoll_event>,
        /// epoll_pwait2 is there (until it says ENOSYS).
        precise: bool,
    }

    impl Poller {
        /// An empty set; a wait reports at most `batch` descriptors (the rest next time).
        pub fn new(batch: usize) -> io::Result<Self> {
            // SAFETY: no pointers; a new descriptor or -1.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Poller {
                // SAFETY: fd is a descriptor we just created and own alone.
                epfd: unsafe { OwnedFd::from_raw_fd(fd) },
                ready: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(1)],
                precise: true,
            })
        }

        fn ctl(
            &mut self,
            op: i32,
            fd: RawFd,
            token: u64,
            interest: (bool, bool),
        ) -> io::Result<()> {
            // EPOLLERR and EPOLLHUP are always reported; EPOLLIN and EPOLLOUT only while
            // reading and writing are wanted.
            let (read, write) = interest;
            let events = if read { libc::EPOLLIN as u32 } else { 0 }
                | if write { libc::EPOLLOUT as u32 } else { 0 };
            let mut ev = libc::epoll_event { events, u64: token };
            // SAFETY: ev lives across the call; the kernel copies it.
            let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// Watch `fd` for data and errors, reported with `token`.
        pub fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_ADD, fd, token, (true, false))
        }

        /// Report data on `fd` again (`true`), or only its errors (`false`).
        pub fn set_readable(&mut self, fd: RawFd, token: u64, readable: bool) -> io::Result<()> {
            self.set_interest(fd, token, readable, false)
        }

        /// Report data on `fd` (`readable`) and room to write on it (`writable`).
        pub fn set_interest(
            &mut self,
            fd: RawFd,
            token: u64,
            readable: bool,
            writable: bool,
        ) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_MOD, fd, token, (readable, writable))
        }

        /// Stop watching `fd` (before it is closed).
        pub fn remove(&mut self, fd: RawFd) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd, 0, (false, false))
        }

        /// Wait until a descriptor is ready or `timeout` passes; what was found replaces
        /// the contents of `events`. The timeout is kept to the nanosecond where the
        /// kernel has epoll_pwait2 (5.11): a shaper's timers are often under a
        /// millisecond away; elsewhere it is rounded up to one.
        pub fn wait(
            &mut self,
            events: &mut Vec<Event>,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.clear();
            let mut n = -1;
            if let Some(t) = timeout.filter(|_| self.precise) {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                // SAFETY: ready is a valid buffer of ready.len() events for the kernel to
                // fill; ts lives across the call; no signal mask.
                n = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.epfd.as_raw_fd(),
                        self.ready.as_mut_ptr(),
                        self.ready.len() as libc::c_int,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                } as i32;
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    self.precise = false;
                }
            }
            if n < 0 && (timeout.is_none() || !self.precise) {
                // SAFETY: ready is a valid buffer of ready.len() events for the kernel to fill.
                n = unsafe {
                    libc::epoll_wait(
                        self.epfd.as_raw_fd(),
                        self.ready.as_mut_ptr(),
                        self.ready.len() as i32,
                        millis(timeout),
                    )
                };
            }
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            events.extend(self.ready[..n as usize].iter().map(|e| Event {
                token: e.u64,
                readable: e.events & libc::EPOLLIN as u32 != 0,
                writable: e.events & libc::EPOLLOUT as u32 != 0,
                error: e.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0,
            }));
            Ok(())
        }
    }
}

// Built for the tests on Linux too, so the fallback is checked where the tests run.
#[cfg(any(not(target_os = "linux"), test))]
mod fallback {
    use super::{millis, Event};
    use std::io;
    use std::os::fd::RawFd;
    use std::time::Duration;

    /// The registered descriptors, polled together on each wait.
    pub struct Poller {
        /// Each descriptor, its token, and whether reading and writing are wanted.
        watched: Vec<(RawFd, u64, bool, bool)>,
        polls: Vec<libc::pollfd>,
    }

    impl Poller {
        pub fn new(_batch: usize) -> io::Result<Self> {
            Ok(Poller {
                watched: Vec::new(),
                polls: Vec::new(),
            })
        }

        pub fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
            self.watched.push((fd, token, true, false));
            Ok(())
        }

        pub fn set_readable(&mut self, fd: RawFd, token: u64, readable: bool) -> io::Result<()> {
            self.set_interest(fd, token, readable, false)
        }

        pub fn set_interest(
            &mut self,
            fd: RawFd,
            _token: u64,
            readable: bool,
            writable: bool,
        ) -> io::Result<()> {
            for w in self.watched.iter_mut().filter(|w| w.0 == fd) {
                (w.2, w.3) = (readable, writable);
            }
            Ok(())
        }

        pub fn remove(&mut self, fd: RawFd) -> io::Result<()> {
            self.watched.retain(|w| w.0 != fd);
            Ok(())
        }

        pub fn wait(
            &mut self,
            events: &mut Vec<Event>,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.clear();
            self.polls.clear();
            self.polls.extend(
                self.watched
                    .iter()
                    .map(|&(fd, _, read, write)| libc::pollfd {
                        fd,
                        events: if read { libc::POLLIN } else { 0 }
                            | if write { libc::POLLOUT } else { 0 },
                        revents: 0,
                    }),
            );
            // SAFETY: polls is a valid slice of pollfd.
            let rc = unsafe {
                libc::poll(
                    self.polls.as_mut_ptr(),
                    self.polls.len() as libc::nfds_t,
                    millis(timeout),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            events.extend(
                self.polls
                    .iter()
                    .zip(&self.watched)
                    .filter(|(p, _)| p.revents != 0)
                    .map(|(p, w)| Event {
                        token: w.1,
                        readable: p.revents & libc::POLLIN != 0,
                        writable: p.revents & libc::POLLOUT != 0,
                        error: p.revents & (libc::POLLERR | libc::POLLHUP) != 0,
                    }),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same checks for each implementation: epoll, and the poll(2) fallback.
    macro_rules! poller_tests {
        ($name:ident, $poller:ty) => {
            mod $name {
                use super::super::Event;
                use std::net::UdpSocket;
                use std::os::fd::AsRawFd;
                use std::time::Duration;

                fn poller() -> $poller {
                    <$poller>::new(8).unwrap()
                }

                #[test]
                fn a_wait_reports_the_ready_descriptors_by_token() {
                    let mut p = poller();
                    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
                    p.add(a.as_raw_fd(), 7).unwrap();
                    p.add(b.as_raw_fd(), 9).unwrap();
                    let mut events = Vec::new();
                    // Nothing ready: the timeout ends the wait, with nothing found.
                    p.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                    assert!(events.is_empty());
                    a.send_to(b"x", b.local_addr().unwrap()).unwrap();
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    let ready = Event {
                        token: 9,
                        readable: true,
                        writable: false,
                        error: false,
                    };
                    assert_eq!(events, [ready]);
                    // Level-triggered: still there, still reported; not while reading is off.
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    assert_eq!(events, [ready]);
                    p.set_readable(b.as_raw_fd(), 9, false).unwrap();
                    p.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                    assert!(events.is_empty());
                    p.set_readable(b.as_raw_fd(), 9, true).unwrap();
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    assert_eq!(events, [ready]);
                    p.remove(b.as_raw_fd()).unwrap();
                    p.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                    assert!(events.is_empty(), "a removed descriptor is not reported");
                }

                #[test]
                fn room_to_write_is_reported_only_while_asked_for() {
                    use std::io::Write;
                    use std::os::unix::net::UnixStream;
                    let mut p = poller();
                    let (mut a, b) = UnixStream::pair().unwrap();
                    a.set_nonblocking(true).unwrap();
                    p.add(a.as_raw_fd(), 3).unwrap();
                    let mut events = Vec::new();
                    p.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                    assert!(events.is_empty(), "{events:?}");
                    p.set_interest(a.as_raw_fd(), 3, true, true).unwrap();
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    assert_eq!(events.len(), 1);
                    assert!(events[0].writable && !events[0].readable && events[0].token == 3);
                    // Full: no room until the peer reads.
                    while a.write(&[0; 4096]).is_ok() {}
                    p.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                    assert!(events.is_empty(), "{events:?}");
                    // The peer gone: a hang-up, reported as an error, asked for or not.
                    drop(b);
                    p.set_interest(a.as_raw_fd(), 3, false, false).unwrap();
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    assert!(events.len() == 1 && events[0].error, "{events:?}");
                }

                #[test]
                fn a_queued_icmp_error_is_reported_as_an_error() {
                    let mut p = poller();
                    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let to = closed.local_addr().unwrap();
                    drop(closed);
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.connect(to).unwrap();
                    p.add(s.as_raw_fd(), 1).unwrap();
                    s.send(b"anyone?").unwrap();
                    let mut events = Vec::new();
                    p.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
                    assert!(
                        events.len() == 1 && events[0].error && events[0].token == 1,
                        "{events:?}"
                    );
                }
            }
        };
    }

    poller_tests!(native, super::super::Poller);
    poller_tests!(portable, super::super::fallback::Poller);

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(millis(None), -1);
        assert_eq!(millis(Some(Duration::ZERO)), 0);
        assert_eq!(millis(Some(Duration::from_micros(1))), 1);
        assert_eq!(millis(Some(Duration::from_micros(1500))), 2);
        assert_eq!(millis(Some(Duration::from_secs(1 << 40))), i32::MAX);
    }
}
