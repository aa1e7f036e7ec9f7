//! `dgram scan` (SPEC §11): which UDP ports of a host answer, without root and without
//! guessing. One unconnected socket with IP_RECVERR: each ICMP error is matched to the
//! port it is about by the error queue's original destination, never to the send it
//! surfaced on; the queue is drained on every wake (it is charged to the receive buffer);
//! concurrent probes within a window and a rate; retries only for silent ports. Uses
//! `report`, `wire`, `net` and `base`.

mod connected;
pub mod ports;

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::base::error::IoError;
use crate::net::signal::Signals;
use crate::net::sys::{ErrorReport, RecvBatch};
use crate::report::scan::{PortReport, State};

/// What each port is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The port's well-known protocol's request where dgram knows one, else empty.
    Auto,
    Empty,
    /// The same bytes to every port.
    Fixed(Vec<u8>),
}

impl Payload {
    /// What `to` is sent: borrowed, but for a probe made for its port.
    pub fn for_port(&self, to: SocketAddr) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            Payload::Auto => Cow::Owned(crate::wire::probes::for_port(to).0),
            Payload::Empty => Cow::Borrowed(&[]),
            Payload::Fixed(bytes) => Cow::Borrowed(bytes),
        }
    }
}

/// A scan, fully decided.
#[derive(Debug)]
pub struct Plan {
    pub host: IpAddr,
    pub payload: Payload,
    /// Per try.
    pub timeout: Duration,
    /// Tries after the first, for ports that stayed silent.
    pub retries: u32,
    /// Probes per second (None: as fast as the window lets them go).
    pub rate: Option<f64>,
    /// HOST is this host: its ICMP is exact and instant, and the scanner's own port is a
    /// port of it.
    pub local: bool,
    pub options: crate::net::socket::Options,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The ports that came to a state, in port order.
    pub ports: Vec<PortReport>,
    pub sent: u64,
    /// Ports still silent after the last ICMP error came, on a host that sent some: its
    /// ICMP may be rate-limited (they may be closed).
    pub silent_after_errors: usize,
    /// A signal stopped the scan.
    pub stopped: Option<i32>,
}

/// Probes in flight at once on this host (its errors queue at once: the window keeps the
/// error queue, charged to the receive buffer, from overflowing between drains).
const LOCAL_WINDOW: usize = 256;
/// And off it (the rate is what paces them).
const REMOTE_WINDOW: usize = 4096;
const BATCH: usize = 64;

/// Scan `ports` of the plan's host. On this host the scanner's own port is probed last,
/// from a second socket, once the first is closed: it is never reported open for being
/// the scanner's.
pub fn run(plan: &Plan, ports: &[u16], signals: &Signals) -> anyhow::Result<Outcome> {
    if !error_queue() {
        return connected::run(plan, ports, signals);
    }
    let first = bind(plan)?;
    let own = first.local_addr()?.port();
    let (mine, rest): (Vec<u16>, Vec<u16>) = ports.iter().partition(|&&p| plan.local && p == own);
    let mut outcome = Scanner::new(plan, first, &rest)?.run(signals)?;
    if !mine.is_empty() && outcome.stopped.is_none() {
        tracing::info!("port {own} is the scanner's own: probed last, from another socket");
        // Bound while the first is open: a port of its own, never the first's.
        let second = bind(plan)?;
        let last = Scanner::new(plan, second, &mine)?.run(signals)?;
        outcome.sent += last.sent;
        outcome.stopped = last.stopped;
        outcome.ports.extend(last.ports);
        outcome.ports.sort_by_key(|p| p.port);
    }
    Ok(outcome)
}

/// Whether ICMP errors are read from the error queue (Linux), or from connected sockets'
/// errnos (elsewhere; on Linux too with `DGRAM_SCAN_CONNECTED=1`, the tests' way to hold
/// the fallback to the same results).
fn error_queue() -> bool {
    let linux = cfg!(target_os = "linux");
    if linux && std::env::var_os("DGRAM_SCAN_CONNECTED").is_none() {
        return true;
    }
    tracing::info!(
        "ICMP errors from connected sockets' errnos, {} ports at a time",
        connected::SOCKETS
    );
    false
}

/// An unconnected socket on the wildcard address of the host's family, hearing ICMP
/// errors.
fn bind(plan: &Plan) -> anyhow::Result<UdpSocket> {
    let any = crate::net::addr::unspecified_for(&SocketAddr::new(plan.host, 0));
    Ok(crate::net::socket::bind(any, &plan.options)?.warn())
}

/// One port's progress.
struct Slot {
    port: u16,
    tries: u32,
    sent_at: Option<Instant>,
    /// A try is out, unanswered and not yet timed out.
    out: bool,
    done: Option<PortReport>,
}

struct Scanner<'a> {
    plan: &'a Plan,
    /// HOST as replies and errors name it (an IPv4-mapped address as IPv4).
    host: IpAddr,
    socket: UdpSocket,
    slots: Vec<Slot>,
    /// Each port's slot, plus one (0: not scanned).
    index: Vec<u32>,
    /// Slots waiting to be sent, and those sent with their deadline (answered ones stay
    /// until it passes: `out` counts the tries still waiting).
    queue: VecDeque<usize>,
    inflight: VecDeque<(usize, Instant)>,
    out: usize,
    window: usize,
    next_send: Instant,
    left: usize,
    sent: u64,
    last_error: Option<Instant>,
    batch: RecvBatch,
}

impl<'a> Scanner<'a> {
    fn new(plan: &'a Plan, socket: UdpSocket, ports: &[u16]) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let mut index = vec![0u32; 65_536];
        let slots: Vec<Slot> = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                index[usize::from(port)] = i as u32 + 1;
                Slot {
                    port,
                    tries: 0,
                    sent_at: None,
                    out: false,
                    done: None,
                }
            })
            .collect();
        Ok(Scanner {
            plan,
            host: crate::net::addr::normalize(SocketAddr::new(plan.host, 0)).ip(),
            socket,
            queue: (0..slots.len()).collect(),
            left: slots.len(),
            slots,
            index,
            inflight: VecDeque::new(),
            out: 0,
            window: if plan.local {
                LOCAL_WINDOW
            } else {
                REMOTE_WINDOW
            },
            next_send: Instant::now(),
            sent: 0,
            last_error: None,
            batch: RecvBatch::new(BATCH, 65_536),
        })
    }

    fn run(mut self, signals: &Signals) -> anyhow::Result<Outcome> {
        let fds = [self.socket.as_raw_fd(), signals.wake_fd()];
        let mut ready = [false; 2];
        let mut stopped = None;
        // A long scan on a terminal shows how far it is (the ports come to a state).
        let total = self.slots.len();
        let mut progress = crate::report::progress::Progress::ports(total as u64, self.plan.rate);
        while self.left > 0 {
            progress.update((total - self.left) as u64);
            if let Some(sig) = signals.pending() {
                stopped = Some(sig);
                break;
            }
            let retry_soon = self.send_some()?;
            let now = Instant::now();
            let deadline = [
                self.inflight.front().map(|&(_, d)| d),
                (!self.queue.is_empty() && self.out < self.window).then_some(self.next_send),
                retry_soon.then(|| now + Duration::from_millis(1)),
                progress.wake(),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            match crate::net::sys::wait_readable_any(&fds, &mut ready, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to wait")),
            }
            self.errors();
            self.replies()?;
            self.expire(Instant::now());
        }
        progress.finish();
        Ok(self.outcome(stopped))
    }

    /// Send what the window and the rate allow; true when the kernel asked to wait a moment
    /// (no buffer space).
    fn send_some(&mut self) -> anyhow::Result<bool> {
        let mut busy = 0;
        while let Some(&i) = self.queue.front() {
            // On this host errors come back as fast as probes go, so the window never
            // fills: replies are read between batches, not only once all is sent (their
            // RTTs true, the receive buffer never full).
            if self.sent % BATCH as u64 == BATCH as u64 - 1 {
                self.replies()?;
            }
            let now = Instant::now();
            if self.out >= self.window || now < self.next_send {
                return Ok(false);
            }
            if self.slots[i].done.is_some() {
                self.queue.pop_front();
                continue;
            }
            let to = SocketAddr::new(self.plan.host, self.slots[i].port);
            let payload = self.plan.payload.for_port(to);
            match self.socket.send_to(&payload, to) {
                Ok(_) => {
                    busy = 0;
                    self.queue.pop_front();
                    let slot = &mut self.slots[i];
                    slot.tries += 1;
                    slot.sent_at = Some(now);
                    slot.out = true;
                    self.out += 1;
                    self.inflight.push_back((i, now + self.plan.timeout));
                    self.sent += 1;
                    if let Some(rate) = self.plan.rate {
                        let gap = Duration::from_secs_f64(1.0 / rate);
                        self.next_send = (self.next_send + gap).max(now);
                    }
                }
                // An earlier probe's error, given back by this send, which did not go:
                // its report is queued; read the queue, and send again (on this host
                // every probe's error is queued as it is sent: every other send meets
                // one). Errors without reports a moment later.
                Err(e) if crate::net::recv::is_icmp_errno(&e) && self.errors() > 0 => {
                    busy += 1;
                    if busy > 8 {
                        return Ok(true);
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    return Ok(true);
                }
                Err(e) => self.refused_here(i, e)?,
            }
        }
        Ok(false)
    }

    /// A send this host refused: no route (before anything went: the host cannot be
    /// reached, exit 3), or a local firewall (the port is filtered, here).
    fn refused_here(&mut self, i: usize, e: io::Error) -> anyhow::Result<()> {
        let reason = match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => "admin-prohibited",
            Some(libc::ENETUNREACH) if self.sent > 0 => "net-unreach",
            Some(libc::EHOSTUNREACH) if self.sent > 0 => "host-unreach",
            _ => {
                return Err(anyhow::Error::new(IoError(e))
                    .context(format!("cannot reach {}", self.plan.host)))
            }
        };
        self.queue.pop_front();
        self.finish(i, State::Filtered, reason, None, None);
        Ok(())
    }

    /// Every ICMP error queued, matched to its port by the original destination; how
    /// many there were.
    fn errors(&mut self) -> usize {
        let mut total = 0;
        loop {
            let mut reports = Vec::new();
            if crate::net::recv::drain_reports(self.socket.as_raw_fd(), |r| reports.push(r)) == 0 {
                return total;
            }
            total += reports.len();
            let now = Instant::now();
            for r in reports {
                self.error(&r, now);
            }
        }
    }

    fn error(&mut self, r: &ErrorReport, now: Instant) {
        let Some(dest) = r.dest.map(crate::net::addr::normalize) else {
            return;
        };
        if dest.ip() != self.host {
            return;
        }
        let Some(i) = self.slot_of(dest.port()) else {
            return;
        };
        let Some((state, reason, from)) = judge(r, self.plan.host, self.plan.local) else {
            return;
        };
        self.last_error = Some(now);
        let rtt = self.slots[i].sent_at.map(|t| now - t);
        self.finish(i, state, reason, from, rtt);
    }

    /// Every datagram queued: a reply from HOST:PORT makes PORT open.
    fn replies(&mut self) -> anyhow::Result<()> {
        let host = self.host;
        loop {
            let n = match self.batch.recv(self.socket.as_raw_fd(), BATCH) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if crate::net::recv::is_icmp_errno(&e) => {
                    if self.errors() == 0 {
                        return Ok(()); // an errno whose report was already read
                    }
                    continue;
                }
                Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to receive")),
            };
            let now = Instant::now();
            for k in 0..n {
                let meta = self.batch.meta(k);
                let peer = crate::net::addr::normalize(meta.peer);
                if peer.ip() != host {
                    continue;
                }
                if let Some(i) = self.slot_of(peer.port()) {
                    let rtt = self.slots[i].sent_at.map(|t| now - t);
                    self.finish(i, State::Open, "udp-response", None, rtt);
                    if let Some(done) = &mut self.slots[i].done {
                        done.reply_len.get_or_insert(meta.len);
                    }
                }
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// Tries past their time: sent again while retries are left, else `open|filtered`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(i, deadline)) = self.inflight.front() {
            if deadline > now {
                return;
            }
            self.inflight.pop_front();
            let slot = &self.slots[i];
            // A try sent again since has its own entry: this one is stale.
            let current = slot
                .sent_at
                .is_some_and(|t| t + self.plan.timeout == deadline);
            if slot.done.is_some() || !current {
                continue;
            }
            self.slots[i].out = false;
            self.out -= 1;
            if self.slots[i].tries <= self.plan.retries {
                self.queue.push_back(i);
            } else {
                self.finish(i, State::OpenFiltered, "no-response", None, None);
            }
        }
    }

    fn slot_of(&self, port: u16) -> Option<usize> {
        match self.index[usize::from(port)] {
            0 => None,
            n => Some(n as usize - 1),
        }
    }

    /// `i`'s state, the first time it is known (a retry's late reply changes nothing).
    fn finish(
        &mut self,
        i: usize,
        state: State,
        reason: &'static str,
        from: Option<IpAddr>,
        rtt: Option<Duration>,
    ) {
        let slot = &mut self.slots[i];
        if slot.done.is_some() {
            return;
        }
        if slot.out {
            slot.out = false;
            self.out -= 1;
        }
        slot.done = Some(PortReport {
            port: slot.port,
            state,
            reason,
            from,
            rtt_us: rtt,
            reply_len: None,
        });
        self.left -= 1;
    }

    fn outcome(self, stopped: Option<i32>) -> Outcome {
        let last_error = self.last_error;
        let silent_after_errors = match last_error {
            Some(at) if !self.plan.local => self
                .slots
                .iter()
                .filter(|s| {
                    s.done
                        .as_ref()
                        .is_some_and(|d| d.state == State::OpenFiltered)
                        && s.sent_at.is_some_and(|t| t > at)
                })
                .count(),
            _ => 0,
        };
        Outcome {
            ports: self.slots.into_iter().filter_map(|s| s.done).collect(),
            sent: self.sent,
            silent_after_errors,
            stopped,
        }
    }
}

/// What an ICMP error says of its port: `closed` for a port unreachable from HOST itself,
/// `filtered` with its reason for any other unreachable (and who sent it, when not HOST);
/// None for what says nothing of the port (a local report, a path MTU).
fn judge(
    r: &ErrorReport,
    host: IpAddr,
    local: bool,
) -> Option<(State, &'static str, Option<IpAddr>)> {
    let v4 = match r.origin {
        2 => true,
        3 => false,
        _ => return None,
    };
    let offender = r
        .offender
        .map(|o| crate::net::addr::normalize(SocketAddr::new(o, 0)).ip());
    let host = crate::net::addr::normalize(SocketAddr::new(host, 0)).ip();
    // On this host the kernel answers from whichever of its addresses it likes.
    let from_host = offender.is_none_or(|o| o == host || (local && is_own(o)));
    let from = if from_host { None } else { offender };
    let reason = match (v4, r.icmp_type, r.icmp_code) {
        (true, 3, 3) | (false, 1, 4) if from_host => {
            return Some((State::Closed, "port-unreach", None))
        }
        (true, 3, 3) | (false, 1, 4) => "port-unreach",
        (true, 3, 0) | (false, 1, 0) => "net-unreach",
        (true, 3, 1) | (false, 1, 3) => "host-unreach",
        (true, 3, 2) => "proto-unreach",
        (true, 3, 9) => "net-prohibited",
        (true, 3, 10) => "host-prohibited",
        (true, 3, 13) | (false, 1, 1 | 5 | 6) => "admin-prohibited",
        (false, 1, 2) => "beyond-scope",
        (true, 3, _) | (false, 1, _) => "unreach",
        (true, 11, _) | (false, 3, _) => "time-exceeded",
        _ => return None,
    };
    Some((State::Filtered, reason, from))
}

/// Whether `ip` is one of this host's addresses.
fn is_own(ip: IpAddr) -> bool {
    ip.is_loopback()
        || crate::net::sys::interface_addrs().is_ok_and(|addrs| addrs.iter().any(|a| a.addr == ip))
}

/// Whether `host` is this host: loopback, unspecified, or one of its addresses (its ICMP
/// is then exact and instant: no rate limit applies).
pub fn is_this_host(host: IpAddr) -> bool {
    host.is_unspecified() || is_own(crate::net::addr::normalize(SocketAddr::new(host, 0)).ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(origin: u8, icmp_type: u8, icmp_code: u8, offender: &str) -> ErrorReport {
        ErrorReport {
            errno: libc::ECONNREFUSED,
            origin,
            icmp_type,
            icmp_code,
            info: 0,
            offender: Some(offender.parse().unwrap()),
            dest: None,
        }
    }

    #[test]
    fn a_port_unreachable_from_the_host_is_closed_from_elsewhere_filtered() {
        let host: IpAddr = "10.9.0.2".parse().unwrap();
        assert_eq!(
            judge(&report(2, 3, 3, "10.9.0.2"), host, false),
            Some((State::Closed, "port-unreach", None))
        );
        let router: IpAddr = "10.9.0.1".parse().unwrap();
        assert_eq!(
            judge(&report(2, 3, 3, "10.9.0.1"), host, false),
            Some((State::Filtered, "port-unreach", Some(router)))
        );
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(
            judge(&report(3, 1, 4, "fd00::2"), v6, false),
            Some((State::Closed, "port-unreach", None))
        );
    }

    #[test]
    fn every_other_unreachable_is_filtered_with_its_reason() {
        let host: IpAddr = "10.9.0.2".parse().unwrap();
        let r = |origin, t, c| judge(&report(origin, t, c, "10.9.0.1"), host, false).map(|j| j.1);
        assert_eq!(r(2, 3, 13), Some("admin-prohibited"));
        assert_eq!(r(3, 1, 1), Some("admin-prohibited"));
        assert_eq!(r(3, 1, 6), Some("admin-prohibited"));
        assert_eq!(r(2, 3, 1), Some("host-unreach"));
        assert_eq!(r(3, 1, 3), Some("host-unreach"));
        assert_eq!(r(2, 3, 0), Some("net-unreach"));
        assert_eq!(r(2, 3, 2), Some("proto-unreach"));
        assert_eq!(r(2, 3, 10), Some("host-prohibited"));
        assert_eq!(r(2, 11, 0), Some("time-exceeded"));
        assert_eq!(r(2, 3, 4), Some("unreach"));
        assert_eq!(
            r(2, 12, 0),
            None,
            "a parameter problem says nothing of the port"
        );
        assert_eq!(r(1, 0, 0), None, "a local report neither");
        let j = judge(&report(2, 3, 13, "10.9.0.1"), host, false).unwrap();
        assert_eq!(j.0, State::Filtered);
        assert_eq!(j.2, Some("10.9.0.1".parse().unwrap()), "who said so");
    }

    #[test]
    fn on_this_host_any_of_its_addresses_speaks_for_it() {
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            judge(&report(2, 3, 3, "127.0.0.2"), host, true),
            Some((State::Closed, "port-unreach", None))
        );
        assert!(is_this_host(host));
        assert!(is_this_host("::1".parse().unwrap()));
        assert!(is_this_host("0.0.0.0".parse().unwrap()));
        assert!(!is_this_host("192.0.2.77".parse().unwrap()));
    }
}
