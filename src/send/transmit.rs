//! Sending many datagrams fast: UDP GSO where the kernel has it, `sendmmsg` where it does
//! not, `send` elsewhere; chosen at run time. Shared by every sending subcommand.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tracing::{debug, info};

use crate::net::sys::{send_batch, send_replies, send_segments, Reply};
use crate::wire::payload::max_payload;

/// Rewrites a datagram just before it is sent (`--seq` writes its header).
pub type Stamp<'a> = &'a mut dyn FnMut(&mut [u8]);

/// Segments per GSO call: Linux's UDP_MAX_SEGMENTS since 6.x (it was 64 before; a
/// kernel that refuses 128 with EINVAL is asked again with 64).
const GSO_SEGMENTS: usize = 128;
/// The older kernels' limit.
const GSO_SEGMENTS_OLD: usize = 64;

/// Sends on one socket: connected (every send path of `send`), or unconnected with one
/// destination (`--collect`, which must hear replies from anyone).
pub struct Transmitter {
    fd: RawFd,
    /// The destination of an unconnected socket; `None` when connected.
    to: Option<SocketAddr>,
    ipv6_socket: bool,
    /// False once the kernel refused GSO (or it was never possible here).
    gso: bool,
    limit: usize,
    /// The payload of [`send_copies`](Self::send_copies), repeated for GSO.
    copies: Vec<u8>,
    /// Segments per GSO call this kernel takes.
    segments: usize,
    /// The buffers of `sendmmsg`, reused.
    scratch: crate::net::sys::SendScratch,
}

impl Transmitter {
    /// A transmitter for `socket`, connected to `dest`; `gso` allows UDP GSO for
    /// repeated payloads (bulk sends only, SPEC §1).
    pub fn new(socket: &UdpSocket, dest: &SocketAddr, gso: bool) -> Self {
        let gso = gso && cfg!(target_os = "linux");
        if gso {
            info!(
                "UDP GSO on: up to {GSO_SEGMENTS} datagrams per send call, which a capture on \
                 this host shows as one packet (--no-gso: one packet per datagram)"
            );
        }
        Transmitter {
            fd: socket.as_raw_fd(),
            to: None,
            ipv6_socket: dest.is_ipv6(),
            gso,
            limit: max_payload(dest),
            copies: Vec::new(),
            segments: GSO_SEGMENTS,
            scratch: crate::net::sys::SendScratch::default(),
        }
    }

    /// A transmitter for an unconnected `socket`, sending to `dest` (no GSO).
    pub fn unconnected(socket: &UdpSocket, dest: SocketAddr) -> Self {
        let mut tx = Transmitter::new(socket, &dest, false);
        tx.to = Some(dest);
        tx.ipv6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        tx
    }

    /// How many copies of a `len`-byte payload one call sends: what a batch should hold.
    pub fn batch_for(&self, len: usize) -> usize {
        match self.segments_per_call(len) {
            k if self.gso && k >= 2 => k,
            _ => GSO_SEGMENTS_OLD,
        }
    }

    fn segments_per_call(&self, len: usize) -> usize {
        self.limit
            .checked_div(len)
            .map_or(0, |k| k.min(self.segments))
    }

    /// Send `n` datagrams, each `payload`, each first passed through `stamp` when given
    /// (`--seq` writes its header there). Returns how many went before an error, or the
    /// error when none did.
    pub fn send_copies(
        &mut self,
        payload: &[u8],
        n: usize,
        mut stamp: Option<Stamp<'_>>,
    ) -> io::Result<usize> {
        let len = payload.len();
        let per_call = self.segments_per_call(len);
        let gso = self.gso && per_call >= 2 && n >= 2;
        if !gso && stamp.is_none() {
            // Identical datagrams: no copies needed.
            return self.send_repeated_each(payload, n);
        }
        let k = if gso {
            per_call
        } else {
            n.clamp(1, GSO_SEGMENTS_OLD)
        };
        if self.copies.len() != k * len || !self.copies.starts_with(payload) {
            self.copies = payload.repeat(k);
        }
        let mut sent = 0;
        while sent < n {
            let chunk = (n - sent).min(k);
            if let Some(stamp) = stamp.as_mut() {
                for seg in self.copies[..chunk * len].chunks_mut(len.max(1)) {
                    stamp(seg);
                }
            }
            let result = if gso && self.gso {
                send_segments(self.fd, &self.copies[..chunk * len], len as u16).map(|_| chunk)
            } else {
                // The copies are lent out for the call (a move, not a copy).
                let copies = std::mem::take(&mut self.copies);
                let result = self.send_each_inner(chunk, |i| &copies[i * len..(i + 1) * len]);
                self.copies = copies;
                result
            };
            match result {
                Ok(m) => {
                    sent += m;
                    if m < chunk {
                        return Ok(sent);
                    }
                }
                Err(e)
                    if gso
                        && self.segments > GSO_SEGMENTS_OLD
                        && chunk > GSO_SEGMENTS_OLD
                        && e.raw_os_error() == Some(libc::EINVAL) =>
                {
                    debug!("UDP GSO takes at most {GSO_SEGMENTS_OLD} segments here");
                    self.segments = GSO_SEGMENTS_OLD;
                    return self.send_copies(payload, n - sent, stamp).map(|m| sent + m);
                }
                Err(e) if gso && self.gso && is_gso_refusal(&e) => {
                    debug!("UDP GSO refused ({e}); falling back to sendmmsg");
                    self.gso = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return if sent == 0 { Err(e) } else { Ok(sent) },
            }
        }
        Ok(sent)
    }

    fn send_repeated_each(&mut self, payload: &[u8], n: usize) -> io::Result<usize> {
        self.send_each_inner(n, |_| payload)
    }

    /// Send each of `payloads` as one datagram (`sendmmsg` batches).
    pub fn send_each(&mut self, payloads: &[&[u8]]) -> io::Result<usize> {
        self.send_each_inner(payloads.len(), |i| payloads[i])
    }

    /// Send payloads `0..n` (`payload(i)` is the i-th), as many a call as the kernel takes.
    fn send_each_inner<'p>(
        &mut self,
        n: usize,
        payload: impl Fn(usize) -> &'p [u8],
    ) -> io::Result<usize> {
        let mut sent = 0;
        while sent < n {
            let result = match self.to {
                None => send_batch(self.fd, (sent..n).map(&payload), &mut self.scratch),
                Some(to) => {
                    let replies = (sent..n).map(|i| Reply {
                        payload: payload(i),
                        to,
                        from: None,
                    });
                    send_replies(self.fd, self.ipv6_socket, replies, &mut self.scratch)
                }
            };
            match result {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return if sent == 0 { Err(e) } else { Ok(sent) },
            }
        }
        Ok(sent)
    }
}

/// The errors that mean "no GSO for this socket or route", not "the send failed".
fn is_gso_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
        )
}

/// Datagrams from which a send counts as bulk, and may use UDP GSO (SPEC §1).
pub const GSO_MIN_COUNT: u64 = 1_000;
/// Rates above which a paced send counts as bulk.
pub const GSO_MIN_RATE: f64 = 10_000.0;

/// True for a bulk send of one repeated payload: at least [`GSO_MIN_COUNT`] datagrams
/// (or for a `--duration`), unpaced or faster than [`GSO_MIN_RATE`]. A capture on the
/// sending host shows a GSO send as one merged packet, so anything smaller goes one
/// packet per datagram.
pub fn is_bulk(count: Option<u64>, duration: Option<Duration>, rate: Option<f64>) -> bool {
    let many = match count {
        Some(n) => n >= GSO_MIN_COUNT,
        None => duration.is_some(),
    };
    many && rate.is_none_or(|r| r > GSO_MIN_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bulk_sends_may_use_gso() {
        let secs = Duration::from_secs;
        assert!(is_bulk(Some(1_000), None, None));
        assert!(!is_bulk(Some(999), None, None));
        assert!(!is_bulk(Some(2), None, None));
        assert!(is_bulk(None, Some(secs(1)), None));
        assert!(!is_bulk(None, None, None));
        assert!(is_bulk(Some(100_000), None, Some(10_001.0)));
        assert!(!is_bulk(Some(100_000), None, Some(10_000.0)));
        assert!(!is_bulk(None, Some(secs(5)), Some(100.0)));
    }

    use std::time::Duration;

    #[test]
    fn copies_arrive_as_separate_whole_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut t = Transmitter::new(&tx, &rx.local_addr().unwrap(), true);
        // 150 copies: three GSO calls of 64, 64 and 22 segments.
        assert_eq!(t.send_copies(b"0123456789", 150, None).unwrap(), 150);
        let mut buf = [0u8; 100];
        for _ in 0..150 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"0123456789");
        }
        // Empty datagrams cannot be segmented; they still go, one by one.
        assert_eq!(t.send_copies(b"", 3, None).unwrap(), 3);
        for _ in 0..3 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 0);
        }
        // Stamped copies are each their own datagram, in order.
        let mut next = 0u8;
        let mut stamp = |seg: &mut [u8]| {
            seg[0] = next;
            next += 1;
        };
        assert_eq!(t.send_copies(b"xy", 100, Some(&mut stamp)).unwrap(), 100);
        for i in 0..100u8 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i, b'y']);
        }
    }
}
