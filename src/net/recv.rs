//! The receive loop every server shares (`listen` now; `echo` and `multicast join` later):
//! batches from a non-blocking socket, idle detection, deadlines and signals.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use crate::base::error::IoContext;
use crate::net::signal::{Signals, WakeAny};
use crate::net::sys::{RecvBatch, RecvMeta};

/// Datagrams taken per `recvmmsg` call.
pub const BATCH: usize = 64;

/// The receive buffer servers ask for when `--rcvbuf` is not given: 4 MiB holds about
/// 50 ms of a 100,000/s stream of small datagrams (each costs ~768 bytes of buffer),
/// where the kernel default (208 KiB) holds 2.5 ms, less than one scheduling hiccup on
/// a busy machine. Capped by `net.core.rmem_max` (4 MiB on many systems) without a word.
pub const DEFAULT_RCVBUF: usize = 4 << 20;

/// When a receive loop stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// After this many datagrams the handler counted.
    pub count: Option<u64>,
    /// When nothing counted has arrived for this long.
    pub idle: Option<Duration>,
    /// After this long in all.
    pub duration: Option<Duration>,
}

/// Why a receive loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--count` datagrams were counted.
    Count,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// `--duration` passed.
    Duration,
    /// SIGINT or SIGTERM (its number).
    Signal(i32),
}

/// What a receive loop does with what it receives.
pub trait Handler {
    /// One datagram. Returns whether it counts (passed the filters) toward `--count`.
    fn datagram(
        &mut self,
        meta: RecvMeta,
        payload: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<bool>;
    /// The socket has nothing queued: flush output now, so no datagram waits behind a buffer.
    fn idle(&mut self) -> anyhow::Result<()>;
    /// The last batch has been handed over (echo sends its replies here, in one batch).
    fn batch_end(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// When the handler wants [`tick`](Self::tick) called, if ever (echo's delayed replies).
    fn wake_at(&self) -> Option<Instant> {
        None
    }
    /// Called at or after [`wake_at`](Self::wake_at).
    fn tick(&mut self, _now: Instant) -> anyhow::Result<()> {
        Ok(())
    }
    /// Other descriptors to wait on beside the socket (`--exec`'s finished jobs, stdin's
    /// typed lines).
    fn extra_fds(&self) -> [Option<std::os::fd::RawFd>; 2] {
        [None, None]
    }
    /// The extra descriptor `which` (its index in [`extra_fds`](Self::extra_fds)) is
    /// readable.
    fn extra_ready(&mut self, _which: usize) -> anyhow::Result<()> {
        Ok(())
    }
    /// An ICMP error the socket's error queue reported (a reply's destination said no).
    fn icmp(&mut self, _report: crate::net::sys::ErrorReport) {}
}

/// Receive on `socket` until a limit or a signal stops it. Returns why it stopped and how
/// many datagrams were counted.
pub fn run(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    limits: Limits,
    signals: &Signals,
    handler: &mut impl Handler,
) -> anyhow::Result<(Stop, u64)> {
    let start = Instant::now();
    let mut rx = Receiver {
        fd: socket.as_raw_fd(),
        limits,
        end: limits.duration.map(|d| start + d),
        last: start,
        counted: 0,
    };
    loop {
        if let Some(sig) = signals.pending() {
            return Ok((Stop::Signal(sig), rx.counted));
        }
        let stop = match rx.take(batch, handler)? {
            Turn::Stop(stop) => Some(stop),
            Turn::Again => None,
            Turn::Wait => rx.wait(signals, handler)?,
        };
        if let Some(stop) = stop {
            return Ok((stop, rx.counted));
        }
    }
}

/// What one receive call left the loop to do.
enum Turn {
    /// A limit was reached.
    Stop(Stop),
    /// Read again at once: the queue may hold more.
    Again,
    /// The queue is empty: wait for the socket, a timer or a limit.
    Wait,
}

/// The receive loop's state: its limits and what it counted.
struct Receiver {
    fd: RawFd,
    limits: Limits,
    end: Option<Instant>,
    /// When the last counted datagram came (the idle timeout runs from it).
    last: Instant,
    counted: u64,
}

impl Receiver {
    /// One receive call: hand each datagram to `handler`, count it, and say whether a
    /// limit stopped the run.
    fn take(&mut self, batch: &mut RecvBatch, handler: &mut impl Handler) -> anyhow::Result<Turn> {
        // Never take more than --count still needs, so nothing is dequeued and then lost.
        let want = self
            .limits
            .count
            .map_or(BATCH, |c| (c - self.counted).min(BATCH as u64) as usize);
        let n = match batch.recv(self.fd, want) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A wake with nothing to read may be a queued ICMP error (POLLERR): drain
                // the queue, or the poll would spin.
                drain_errors(self.fd, handler);
                return Ok(Turn::Wait);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Turn::Again),
            // An ICMP error for an earlier send from this socket (echo's replies): it
            // concerns that peer, not this loop.
            Err(e) if drain_errors(self.fd, handler) > 0 || is_icmp_errno(&e) => {
                return Ok(Turn::Again)
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(crate::base::error::IoError(e)).context("failed to receive")
                )
            }
        };
        let now = SystemTime::now();
        let before = self.counted;
        for i in 0..n {
            if handler.datagram(batch.meta(i), batch.payload(i), now)? {
                self.counted += 1;
                // One GRO buffer may hold more datagrams than --count wants.
                if self.limits.count.is_some_and(|c| self.counted >= c) {
                    break;
                }
            }
        }
        handler.batch_end()?;
        let now = Instant::now();
        if handler.wake_at().is_some_and(|w| w <= now) {
            handler.tick(now)?;
        }
        if self.counted > before {
            self.last = now;
        }
        let stop = if self.limits.count.is_some_and(|c| self.counted >= c) {
            Some(Stop::Count)
        } else if self.end.is_some_and(|e| Instant::now() >= e) {
            Some(Stop::Duration)
        } else {
            None
        };
        if let Some(stop) = stop {
            handler.idle()?;
            return Ok(Turn::Stop(stop));
        }
        // Fewer messages than asked for: the queue was empty when the kernel looked.
        // Wait now rather than spend a call to hear EAGAIN (if one came in since, poll
        // returns at once).
        Ok(if batch.messages() < want.min(batch.capacity()) {
            Turn::Wait
        } else {
            Turn::Again
        })
    }

    /// The socket is idle: flush, then wait for it, the handler's descriptor or timer,
    /// a limit, or a signal. Returns the stop, if that is what came.
    fn wait(
        &mut self,
        signals: &Signals,
        handler: &mut impl Handler,
    ) -> anyhow::Result<Option<Stop>> {
        handler.idle()?;
        let idle_end = self.limits.idle.map(|d| self.last + d);
        let deadline = [idle_end, self.end, handler.wake_at()]
            .into_iter()
            .flatten()
            .min();
        let [a, b] = handler.extra_fds();
        let wake = signals
            .wait_any([Some(self.fd), a, b], deadline)
            .io_context(|| "failed to wait for datagrams".into())?;
        match wake {
            WakeAny::Ready([_, ready_a, ready_b]) => {
                for (which, ready) in [ready_a, ready_b].into_iter().enumerate() {
                    if ready {
                        handler.extra_ready(which)?;
                    }
                }
                Ok(None)
            }
            WakeAny::Signal(sig) => Ok(Some(Stop::Signal(sig))),
            WakeAny::Timeout => {
                let now = Instant::now();
                if handler.wake_at().is_some_and(|w| w <= now) {
                    handler.tick(now)?;
                    // A timer, not a limit, woke us: unless a limit passed too.
                    if idle_end.is_none_or(|i| now < i) && self.end.is_none_or(|e| now < e) {
                        return Ok(None);
                    }
                }
                Ok(Some(if self.end.is_some_and(|e| now >= e) {
                    Stop::Duration
                } else {
                    Stop::Idle
                }))
            }
        }
    }
}

/// Hand every report of the socket's error queue to the handler; how many there were.
/// Servers call it once more as they stop, so an error already queued is still counted.
pub fn drain_errors(fd: std::os::fd::RawFd, handler: &mut impl Handler) -> usize {
    drain_reports(fd, |report| handler.icmp(report))
}

/// Hand every report of the socket's error queue to `each`; how many there were.
/// Bounded: a flood of queued errors is drained a batch at a time between receives
/// (what is left keeps POLLERR up, so the next wake takes the next batch).
pub fn drain_reports(
    fd: std::os::fd::RawFd,
    mut each: impl FnMut(crate::net::sys::ErrorReport),
) -> usize {
    let mut n = 0;
    while n < 1024 {
        match crate::net::sys::take_error_report(fd) {
            Ok(Some(report)) => {
                each(report);
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// As [`drain_reports`]; when nothing was queued, the errno a call gave for the error
/// (`e`: no error queue on this platform, or its report already read) is handed on
/// instead, as all that is known of it.
pub fn drain_reports_or_errno(
    fd: std::os::fd::RawFd,
    e: Option<&io::Error>,
    mut each: impl FnMut(crate::net::sys::ErrorReport),
) -> usize {
    let n = drain_reports(fd, &mut each);
    match e.and_then(io::Error::raw_os_error) {
        Some(errno) if n == 0 => {
            each(crate::net::sys::ErrorReport::from_errno(errno));
            1
        }
        _ => n,
    }
}

/// The errnos an ICMP error for an earlier send leaves on a socket.
pub fn is_icmp_errno(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EMSGSIZE
                | libc::EACCES
                | libc::EPERM
                | libc::EPROTO
        )
    )
}

/// Remove a `--ready-file` an earlier run left, before the server binds: a script that
/// waits for the file must never read an old address (SPEC §2).
pub fn clear_ready_file(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    match path.map(std::fs::remove_file) {
        Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => Err(anyhow::Error::new(
            crate::base::error::IoError(e),
        )
        .context(format!(
            "cannot remove the old --ready-file {}",
            path.unwrap_or_else(|| std::path::Path::new("")).display()
        ))),
        _ => Ok(()),
    }
}

/// The `--ready-file` this run wrote: removed when the run ends (dropped), however it
/// ends but a second signal's immediate exit.
#[must_use = "the ready file is removed when this is dropped"]
pub struct ReadyFile(Option<std::path::PathBuf>);

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Write the `--ready-file` atomically (a temporary file renamed into place), then print
/// `listening on ADDR` as the first stderr line (even with `-q`). In that order, so that a
/// reader who sees the line can also read the file. The file goes when the returned
/// [`ReadyFile`] is dropped.
pub fn announce(
    addr: std::net::SocketAddr,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<ReadyFile> {
    use std::io::Write;
    let addr = crate::net::addr::normalize(addr);
    if let Some(path) = ready_file {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{addr}\n"))
            .io_context(|| format!("failed to write --ready-file {}", tmp.display()))?;
        std::fs::rename(&tmp, path).io_context(|| {
            format!(
                "failed to move {} to --ready-file {}",
                tmp.display(),
                path.display()
            )
        })?;
    }
    // One write: a reader of the pipe never sees half a line.
    let _ = io::stderr().write_all(format!("listening on {addr}\n").as_bytes());
    Ok(ReadyFile(ready_file.map(std::path::Path::to_path_buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_errno_stands_for_the_error_only_when_nothing_was_queued() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let mut got = Vec::new();
        let n = drain_reports_or_errno(s.as_raw_fd(), Some(&refused), |r| got.push(r));
        assert_eq!(n, 1);
        assert_eq!(
            crate::net::icmp::classify(&got[0]),
            crate::net::icmp::Kind::PortUnreachable
        );
        assert_eq!(
            drain_reports_or_errno(s.as_raw_fd(), None, |r| got.push(r)),
            0
        );
        assert_eq!(got.len(), 1);
    }
}
