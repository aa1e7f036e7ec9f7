//! The portable scan, where no error queue exists (SPEC §11; Linux uses it too when
//! `DGRAM_SCAN_CONNECTED=1`, so the tests hold it to the same results): a connected
//! socket per port, at most [`SOCKETS`] at once, each told its port's ICMP by the errno
//! its next receive gives (connection refused: closed; unreachable or prohibited:
//! filtered). An errno names no sender: a port unreachable sent by a router shows as
//! `closed` here, where the error queue would say `filtered ... from ROUTER`.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Outcome, Plan};
use crate::base::error::IoError;
use crate::net::signal::Signals;
use crate::report::scan::{PortReport, State};

/// Connected sockets open at once: a bounded number of descriptors, whatever the scan.
pub const SOCKETS: usize = 64;

/// A probe out: its socket, port, try, and when the try ends.
struct Out {
    socket: UdpSocket,
    port: u16,
    tries: u32,
    sent: Instant,
}

/// Scan `ports` with connected sockets.
pub fn run(plan: &Plan, ports: &[u16], signals: &Signals) -> anyhow::Result<Outcome> {
    let mut queue: VecDeque<(u16, u32)> = ports.iter().map(|&p| (p, 0)).collect();
    let mut out: Vec<Out> = Vec::with_capacity(SOCKETS);
    let mut done: Vec<PortReport> = Vec::with_capacity(ports.len());
    let mut sent = 0u64;
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; 65_536];
    while !(queue.is_empty() && out.is_empty()) {
        if let Some(sig) = signals.pending() {
            return Ok(finish(done, sent, Some(sig)));
        }
        while out.len() < SOCKETS && Instant::now() >= next_send {
            let Some((port, tries)) = queue.pop_front() else {
                break;
            };
            match probe(plan, port) {
                Ok(socket) => {
                    sent += 1;
                    out.push(Out {
                        socket,
                        port,
                        tries: tries + 1,
                        sent: Instant::now(),
                    });
                }
                Err(e) => done.push(refused(plan, port, e, sent)?),
            }
            if let Some(rate) = plan.rate {
                next_send = (next_send + Duration::from_secs_f64(1.0 / rate)).max(Instant::now());
            }
        }
        let now = Instant::now();
        let deadline = out
            .iter()
            .map(|o| o.sent + plan.timeout)
            .chain((!queue.is_empty() && out.len() < SOCKETS).then_some(next_send))
            .min();
        let mut fds: Vec<_> = out.iter().map(|o| o.socket.as_raw_fd()).collect();
        fds.push(signals.wake_fd());
        let mut ready = vec![false; fds.len()];
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        match crate::net::sys::wait_readable_any(&fds, &mut ready, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to wait")),
        }
        ready.truncate(out.len()); // the wake pipe's flag is not a probe's
        settle(plan, &mut out, &mut ready, &mut buf, &mut queue, &mut done);
    }
    Ok(finish(done, sent, None))
}

/// Each probe out that was answered or timed out: its report, or its port queued again
/// while retries are left; its socket closes (and `ready` shifts with it).
fn settle(
    plan: &Plan,
    out: &mut Vec<Out>,
    ready: &mut Vec<bool>,
    buf: &mut [u8],
    queue: &mut VecDeque<(u16, u32)>,
    done: &mut Vec<PortReport>,
) {
    let now = Instant::now();
    let mut i = 0;
    while i < out.len() {
        let o = &out[i];
        let answer = if ready[i] { read(o, buf, now) } else { None };
        match answer {
            Some(report) => done.push(report),
            None if now >= o.sent + plan.timeout => {
                if o.tries <= plan.retries {
                    queue.push_back((o.port, o.tries));
                } else {
                    done.push(report(
                        o.port,
                        State::OpenFiltered,
                        "no-response",
                        None,
                        None,
                    ));
                }
            }
            None => {
                i += 1;
                continue;
            }
        }
        out.swap_remove(i);
        ready.swap_remove(i);
    }
}

/// A socket connected to HOST:PORT (never one whose own port is PORT, on this host: it
/// would hear its own probe), with the probe sent.
fn probe(plan: &Plan, port: u16) -> io::Result<UdpSocket> {
    let to = SocketAddr::new(plan.host, port);
    let any = crate::net::addr::unspecified_for(&to);
    let mut socket = UdpSocket::bind(any)?;
    if plan.local && socket.local_addr()?.port() == port {
        let other = UdpSocket::bind(any)?;
        socket = other;
    }
    socket.connect(to)?;
    socket.set_nonblocking(true)?;
    socket.send(&plan.payload.for_port(to))?;
    Ok(socket)
}

/// What a ready socket says: a reply (open), or its port's ICMP as an errno.
fn read(o: &Out, buf: &mut [u8], now: Instant) -> Option<PortReport> {
    let rtt = Some(now - o.sent);
    match o.socket.recv(buf) {
        Ok(n) => {
            let mut r = report(o.port, State::Open, "udp-response", rtt, None);
            r.reply_len = Some(n);
            Some(r)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => {
            let (state, reason) = by_errno(&e)?;
            Some(report(o.port, state, reason, rtt, None))
        }
    }
}

/// A port's state from the errno its socket gave.
fn by_errno(e: &io::Error) -> Option<(State, &'static str)> {
    Some(match e.raw_os_error()? {
        libc::ECONNREFUSED => (State::Closed, "port-unreach"),
        libc::EHOSTUNREACH => (State::Filtered, "host-unreach"),
        libc::ENETUNREACH => (State::Filtered, "net-unreach"),
        libc::EACCES | libc::EPERM => (State::Filtered, "admin-prohibited"),
        _ => return None,
    })
}

/// A probe this host would not send: no route before anything went (the host cannot be
/// reached: exit 3), else the port is filtered here.
fn refused(plan: &Plan, port: u16, e: io::Error, sent: u64) -> anyhow::Result<PortReport> {
    match by_errno(&e) {
        Some((_, reason)) if sent > 0 || reason == "admin-prohibited" => {
            Ok(report(port, State::Filtered, reason, None, None))
        }
        _ => Err(anyhow::Error::new(IoError(e)).context(format!("cannot reach {}", plan.host))),
    }
}

fn report(
    port: u16,
    state: State,
    reason: &'static str,
    rtt: Option<Duration>,
    from: Option<std::net::IpAddr>,
) -> PortReport {
    PortReport {
        port,
        state,
        reason,
        from,
        rtt_us: rtt,
        reply_len: None,
    }
}

fn finish(mut done: Vec<PortReport>, sent: u64, stopped: Option<i32>) -> Outcome {
    done.sort_by_key(|p| p.port);
    Outcome {
        ports: done,
        sent,
        silent_after_errors: 0,
        stopped,
    }
}
