//! The relay's sessions: one per client, each with its upstream socket in the poller;
//! opened on a client's first datagram, closed when idle or evicted when full; the
//! addresses of both legs; and the ICMP errors either leg's socket queues.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Instant;

use tracing::{info, warn};

use super::stream::Stream;
use super::{Front, Plan, Relay, Upstream};
use crate::base::error::IoContext;
use crate::net::endpoint::Endpoint;
use crate::net::sys::RecvMeta;
use crate::netem::Dir;

/// A session's way to UPSTREAM: its own UDP socket, or its own stream.
pub(super) enum UpLeg {
    Udp {
        socket: UdpSocket,
        /// The socket's own address: the relay's side of the upstream leg.
        local: SocketAddr,
    },
    Stream(Stream),
}

/// A client's session.
pub(super) struct Session {
    pub(super) up: UpLeg,
    /// The client's stream, when clients come over one (`relay tcp://`, `relay -`).
    pub(super) client_stream: Option<Stream>,
    pub(super) last: Instant,
    /// The address the client sent to (PKTINFO, on a wildcard bind): replies leave from it.
    pub(super) local_ip: Option<IpAddr>,
    pub(super) icmp_errors: u64,
    /// Its upstream UDP socket's token in the poller.
    pub(super) token: u64,
}

impl Session {
    /// The upstream stream, if the session goes up over one.
    pub(super) fn up_stream(&mut self) -> Option<&mut Stream> {
        match &mut self.up {
            UpLeg::Stream(s) => Some(s),
            UpLeg::Udp { .. } => None,
        }
    }

    /// The stream on `side`, if that side is one.
    pub(super) fn stream(&mut self, side: Side) -> Option<&mut Stream> {
        match side {
            Side::Upstream => self.up_stream(),
            Side::Client => self.client_stream.as_mut(),
        }
    }
}

/// Which of a session's legs a descriptor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Upstream,
    Client,
}

impl Side {
    /// The leg datagrams going `dir` leave by: up to the upstream, down to the client.
    pub(super) fn toward(dir: Dir) -> Side {
        match dir {
            Dir::Up => Side::Upstream,
            Dir::Down => Side::Client,
        }
    }

    /// The way a datagram read from this leg goes: from the client up, from the upstream
    /// down.
    pub(super) fn onward(self) -> Dir {
        match self {
            Side::Client => Dir::Up,
            Side::Upstream => Dir::Down,
        }
    }
}

impl Relay<'_> {
    /// The session of the client of `meta`, opened if new (evicting the longest idle when
    /// full). `false` when it could not be opened (logged and counted).
    pub(super) fn session(&mut self, meta: RecvMeta, now: Instant) -> anyhow::Result<bool> {
        if let Some(s) = self.sessions.get_mut(&meta.peer) {
            s.last = now;
            if meta.dst.is_some() {
                s.local_ip = meta.dst;
            }
            return Ok(true);
        }
        self.open(meta.peer, None, meta.dst, now)
    }

    /// Open a session for `client` (its stream, when it came over one), evicting the
    /// longest idle when full. `false` when its upstream leg could not be opened.
    pub(super) fn open(
        &mut self,
        client: SocketAddr,
        client_stream: Option<Stream>,
        local_ip: Option<IpAddr>,
        now: Instant,
    ) -> anyhow::Result<bool> {
        if self.sessions.len() >= self.plan.max_sessions {
            self.evict_one();
        }
        let up = match self.open_upstream(now) {
            Ok(up) => up,
            Err(e) => {
                self.refused(client, &e);
                return Ok(false);
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let mut session = Session {
            up,
            client_stream,
            last: now,
            local_ip,
            icmp_errors: 0,
            token,
        };
        self.register(client, &mut session)?;
        // The earliest a session can expire: no later than this new one's end.
        let ends = now + self.plan.idle_timeout;
        self.next_expiry = Some(self.next_expiry.map_or(ends, |t| t.min(ends)));
        if self.verbose {
            let (from, to) = (
                self.client_name(client),
                session_upstream(&session, self.plan),
            );
            info!(
                "session {from} opened: {} -> {to}",
                self.leg_local(&session)
            );
        }
        self.counts.sessions_opened += 1;
        self.sessions.insert(client, session);
        Ok(true)
    }

    fn evict_one(&mut self) {
        let Some(oldest) = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(c, _)| *c)
        else {
            return;
        };
        let name = self.client_name(oldest);
        self.close(oldest);
        self.counts.sessions_evicted += 1;
        if self.verbose {
            info!(
                "session {name} evicted (--max-sessions {})",
                self.plan.max_sessions
            );
        }
    }

    /// A session that could not be opened: counted, and logged (the first few, and then
    /// with `-v`: a flood of clients past the open-files limit writes no flood of lines).
    fn refused(&mut self, client: SocketAddr, e: &anyhow::Error) {
        self.counts.sessions_refused += 1;
        if self.counts.sessions_refused <= 5 || self.verbose {
            warn!(
                "cannot open a session for {}: {e:#}",
                self.client_name(client)
            );
        }
    }

    /// The session's upstream leg: a UDP socket connected to UPSTREAM, a TCP connection
    /// begun, or a child started.
    fn open_upstream(&self, now: Instant) -> anyhow::Result<UpLeg> {
        match &self.plan.upstream {
            Upstream::Udp(to) => {
                let socket = open_udp(*to, self.plan)?;
                let local = socket.local_addr()?;
                Ok(UpLeg::Udp { socket, local })
            }
            Upstream::Tcp(to) => Stream::connect(*to, now + self.plan.connect_timeout)
                .map(UpLeg::Stream)
                .io_context(|| format!("cannot connect to tcp://{to}")),
            Upstream::Exec(command) => Stream::exec(command)
                .map(UpLeg::Stream)
                .io_context(|| "--to-exec: cannot start /bin/sh".into()),
        }
    }

    /// Put a new session's descriptors in the poller, each with a token naming its side.
    fn register(&mut self, client: SocketAddr, session: &mut Session) -> io::Result<()> {
        if let UpLeg::Udp { socket, .. } = &session.up {
            self.poller.add(socket.as_raw_fd(), session.token)?;
            self.tokens.insert(session.token, (client, Side::Upstream));
        }
        for side in [Side::Upstream, Side::Client] {
            if let Some(stream) = session.stream(side) {
                if stream.connecting.is_some() {
                    self.connecting += 1;
                }
                add_stream(
                    &mut self.poller,
                    &mut self.tokens,
                    &mut self.next_token,
                    stream,
                    (client, side),
                )?;
            }
        }
        Ok(())
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

    /// End `client`'s session: out of the poller, its sockets closed, its child killed.
    pub(super) fn close(&mut self, client: SocketAddr) {
        let Some(mut s) = self.sessions.remove(&client) else {
            return;
        };
        if let UpLeg::Udp { socket, .. } = &s.up {
            let _ = self.poller.remove(socket.as_raw_fd());
            self.tokens.remove(&s.token);
        }
        for side in [Side::Upstream, Side::Client] {
            if let Some(stream) = s.stream(side) {
                if stream.connecting.is_some() {
                    self.connecting -= 1;
                }
                let _ = self.poller.remove(stream.read_fd());
                if stream.write_fd() != stream.read_fd() {
                    let _ = self.poller.remove(stream.write_fd());
                }
                self.tokens.remove(&stream.tokens.0);
                self.tokens.remove(&stream.tokens.1);
            }
        }
        // A session closed may free the descriptors a paused accept waits for.
        self.resume_accepting();
    }

    /// The relay's address on `client`'s leg: where the client sent to (none for stdio).
    pub(super) fn relay_side(&self, client: SocketAddr) -> Option<SocketAddr> {
        let session = self.sessions.get(&client);
        match self.front {
            Front::Udp(_) => Some(match session.and_then(|s| s.local_ip) {
                Some(ip) if self.wildcard => SocketAddr::new(ip, self.local.port()),
                _ => self.local,
            }),
            Front::Tcp(_) => session?.client_stream.as_ref()?.local_addr(),
            Front::Stdio => None,
        }
    }

    /// The relay's address on `client`'s upstream leg: its session's socket (none for a
    /// child's pipes).
    pub(super) fn upstream_side(&self, client: SocketAddr) -> Option<SocketAddr> {
        match &self.sessions.get(&client)?.up {
            UpLeg::Udp { local, .. } => Some(*local),
            UpLeg::Stream(s) => s.local_addr(),
        }
    }

    /// The relay's own end of a session's upstream leg, for the log.
    fn leg_local(&self, session: &Session) -> String {
        match &session.up {
            UpLeg::Udp { local, .. } => local.to_string(),
            UpLeg::Stream(s) => s.local_addr().map_or("dgram".into(), |a| a.to_string()),
        }
    }

    /// How `client` is shown: its address, its stream (`tcp://ADDR`), or `stdio`.
    pub(super) fn client_name(&self, client: SocketAddr) -> Endpoint {
        match &self.front {
            Front::Udp(_) => Endpoint::Udp(client),
            Front::Tcp(_) => Endpoint::Tcp(client),
            Front::Stdio => Endpoint::Stdio,
        }
    }

    /// How `client`'s upstream is shown: UPSTREAM, `tcp://UPSTREAM`, `exec:PID`.
    pub(super) fn upstream_name(&self, client: SocketAddr) -> Endpoint {
        match self.sessions.get(&client) {
            Some(s) => session_upstream(s, self.plan),
            None => self.plan.upstream.name(),
        }
    }

    /// Count the errors queued on the listening socket: replies to clients that met an
    /// ICMP error; the first few of each kind are logged. `e`: the errno a call gave
    /// for them, counted when nothing was queued.
    pub(super) fn client_errors(&mut self, e: Option<&io::Error>) {
        let (tally, local) = (&mut self.counts.client_icmp_errors, self.local);
        let Front::Udp(listen) = self.front else {
            return;
        };
        crate::net::recv::drain_reports_or_errno(listen.as_raw_fd(), e, |r| {
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
        let UpLeg::Udp { socket, .. } = &s.up else {
            return;
        };
        let Upstream::Udp(upstream) = self.plan.upstream else {
            return;
        };
        let (tally, session_errors) = (&mut self.counts.icmp_errors, &mut s.icmp_errors);
        crate::net::recv::drain_reports_or_errno(socket.as_raw_fd(), e, |r| {
            tally.add(&r);
            *session_errors += 1;
            if *session_errors == 1 {
                let message = crate::net::icmp::message(&r, upstream, None);
                warn!("upstream {upstream} for client {client}: {message}");
            }
        });
    }
}

/// How a session's upstream is shown.
fn session_upstream(s: &Session, plan: &Plan) -> Endpoint {
    match &s.up {
        UpLeg::Stream(stream) => stream.name,
        UpLeg::Udp { .. } => plan.upstream.name(),
    }
}

/// A session's upstream socket: bound to a free port, connected to UPSTREAM, so the
/// server sees one source port per client and only UPSTREAM's replies arrive.
fn open_udp(to: SocketAddr, plan: &Plan) -> anyhow::Result<UdpSocket> {
    let any = crate::net::addr::unspecified_for(&to);
    let socket = crate::net::socket::bind(any, &plan.options)?.warn();
    socket
        .connect(to)
        .io_context(|| format!("failed to connect to {to}"))?;
    Ok(socket)
}

/// Put a stream's descriptors in the poller (one for TCP, two for pipes), each with a
/// token of its own that names `owner`.
pub(super) fn add_stream(
    poller: &mut crate::net::sys::Poller,
    tokens: &mut HashMap<u64, (SocketAddr, Side)>,
    next_token: &mut u64,
    stream: &mut Stream,
    owner: (SocketAddr, Side),
) -> io::Result<()> {
    let read = *next_token;
    poller.add(stream.read_fd(), read)?;
    tokens.insert(read, owner);
    *next_token += 1;
    let write = if stream.write_fd() == stream.read_fd() {
        read
    } else {
        let write = *next_token;
        *next_token += 1;
        poller.add(stream.write_fd(), write)?;
        poller.set_interest(stream.write_fd(), write, false, false)?;
        tokens.insert(write, owner);
        write
    };
    stream.tokens = (read, write);
    stream.armed = false;
    arm(poller, stream)
}

/// Ask the poller for room to write on `stream` while it has something to write (or a
/// connection to finish), and no longer once it has not.
pub(super) fn arm(poller: &mut crate::net::sys::Poller, stream: &mut Stream) -> io::Result<()> {
    let want = stream.wants_write();
    if want == stream.armed {
        return Ok(());
    }
    let fd = stream.write_fd();
    let shared = fd == stream.read_fd();
    poller.set_interest(fd, stream.tokens.1, shared, want)?;
    stream.armed = want;
    Ok(())
}
