//! The relay's sessions: one per client, each with its upstream socket in the poller;
//! opened on a client's first datagram, closed when idle or evicted when full; the
//! addresses of both legs; and the ICMP errors either leg's socket queues.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use tracing::{info, warn};

use super::{Plan, Relay};
use crate::base::error::IoContext;
use crate::net::sys::RecvMeta;

/// A client's session.
pub(super) struct Session {
    pub(super) upstream: UdpSocket,
    /// The upstream socket's own address: the relay's side of the upstream leg.
    pub(super) upstream_local: SocketAddr,
    pub(super) last: Instant,
    /// The address the client sent to (PKTINFO, on a wildcard bind): replies leave from it.
    pub(super) local_ip: Option<IpAddr>,
    pub(super) icmp_errors: u64,
    /// Its upstream socket's token in the poller.
    pub(super) token: u64,
}

impl Relay<'_> {
    /// The session of the client of `meta`, opened if new (evicting the longest idle when
    /// full). `false` when its upstream socket could not be opened (logged).
    pub(super) fn session(&mut self, meta: RecvMeta, now: Instant) -> anyhow::Result<bool> {
        if let Some(s) = self.sessions.get_mut(&meta.peer) {
            s.last = now;
            if meta.dst.is_some() {
                s.local_ip = meta.dst;
            }
            return Ok(true);
        }
        if self.sessions.len() >= self.plan.max_sessions {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(c, _)| *c)
            {
                self.close(oldest);
                self.counts.sessions_evicted += 1;
                if self.verbose {
                    info!(
                        "session {oldest} evicted (--max-sessions {})",
                        self.plan.max_sessions
                    );
                }
            }
        }
        let upstream = match open_upstream(self.plan) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot open a session for {}: {e:#}", meta.peer);
                return Ok(false);
            }
        };
        let upstream_local = upstream.local_addr()?;
        let token = self.next_token;
        self.next_token += 1;
        self.poller.add(upstream.as_raw_fd(), token)?;
        self.tokens.insert(token, meta.peer);
        // The earliest a session can expire: no later than this new one's end.
        let ends = now + self.plan.idle_timeout;
        self.next_expiry = Some(self.next_expiry.map_or(ends, |t| t.min(ends)));
        if self.verbose {
            info!(
                "session {} opened: {upstream_local} -> {}",
                meta.peer, self.plan.upstream
            );
        }
        self.counts.sessions_opened += 1;
        self.sessions.insert(
            meta.peer,
            Session {
                upstream,
                upstream_local,
                last: now,
                local_ip: meta.dst,
                icmp_errors: 0,
                token,
            },
        );
        Ok(true)
    }

    /// Close the sessions idle past `--idle-timeout`.
    pub(super) fn expire(&mut self, now: Instant) {
        // A session's end only moves later (traffic moves `last` on), so none ends
        // before `next_expiry`: the sessions are looked at when it comes, not on every
        // wake. (An early value, left by a closed session, costs one look.)
        if self.next_expiry.is_none_or(|t| now < t) {
            return;
        }
        let idle = self.plan.idle_timeout;
        let mut closed = Vec::new();
        let mut next: Option<Instant> = None;
        for (client, s) in &self.sessions {
            let ends = s.last + idle;
            if now >= ends {
                closed.push(*client);
            } else {
                next = Some(next.map_or(ends, |t| t.min(ends)));
            }
        }
        self.next_expiry = next;
        self.counts.sessions_expired += closed.len() as u64;
        for client in closed {
            self.close(client);
            // Logged once the socket is closed: the line says what is already so.
            if self.verbose {
                info!(
                    "session {client} closed: idle for {}",
                    crate::base::units::human_duration(idle)
                );
            }
        }
    }

    /// End `client`'s session: out of the poller, its socket closed.
    pub(super) fn close(&mut self, client: SocketAddr) {
        if let Some(s) = self.sessions.remove(&client) {
            let _ = self.poller.remove(s.upstream.as_raw_fd());
            self.tokens.remove(&s.token);
        }
    }

    /// The relay's address on `client`'s leg: where the client sent to.
    pub(super) fn relay_side(&self, client: SocketAddr) -> SocketAddr {
        match self.sessions.get(&client).and_then(|s| s.local_ip) {
            Some(ip) if self.wildcard => SocketAddr::new(ip, self.local.port()),
            _ => self.local,
        }
    }

    /// The relay's address on `client`'s upstream leg: its session's socket.
    pub(super) fn upstream_side(&self, client: SocketAddr) -> SocketAddr {
        self.sessions
            .get(&client)
            .map_or(self.local, |s| s.upstream_local)
    }

    /// Count the errors queued on the listening socket: replies to clients that met an
    /// ICMP error; the first few of each kind are logged. `e`: the errno a call gave
    /// for them, counted when nothing was queued.
    pub(super) fn client_errors(&mut self, e: Option<&io::Error>) {
        let (tally, local) = (&mut self.counts.client_icmp_errors, self.local);
        crate::net::recv::drain_reports_or_errno(self.listen.as_raw_fd(), e, |r| {
            if tally.add(&r) <= 3 {
                let message = crate::net::icmp::message(&r, r.dest.unwrap_or(local), None);
                info!("reply to a client: {message}");
            }
        });
    }

    /// Count the errors queued on `client`'s upstream socket, for its session; the first
    /// of a session is logged. `e`: as for [`Relay::client_errors`].
    pub(super) fn upstream_errors(&mut self, client: SocketAddr, e: Option<&io::Error>) {
        let Some(s) = self.sessions.get_mut(&client) else {
            return;
        };
        let (tally, upstream) = (&mut self.counts.icmp_errors, self.plan.upstream);
        let session_errors = &mut s.icmp_errors;
        crate::net::recv::drain_reports_or_errno(s.upstream.as_raw_fd(), e, |r| {
            tally.add(&r);
            *session_errors += 1;
            if *session_errors == 1 {
                let message = crate::net::icmp::message(&r, upstream, None);
                warn!("upstream {upstream} for client {client}: {message}");
            }
        });
    }
}

/// A session's upstream socket: bound to a free port, connected to UPSTREAM, so the
/// server sees one source port per client and only UPSTREAM's replies arrive.
fn open_upstream(plan: &Plan) -> anyhow::Result<UdpSocket> {
    let any = crate::net::addr::unspecified_for(&plan.upstream);
    let socket = crate::net::socket::bind(any, &plan.options)?.warn();
    socket
        .connect(plan.upstream)
        .io_context(|| format!("failed to connect to {}", plan.upstream))?;
    Ok(socket)
}
