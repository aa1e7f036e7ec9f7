//! The relay (SPEC §4 relay): every client address gets a session with its own upstream
//! socket, connected to UPSTREAM; what a client sends goes up on it, what UPSTREAM
//! answers comes back to the client from the listening address. One poll over the
//! listening socket, every session's socket, the signal pipe and the next timer; batched
//! receives (one shared buffer for all sessions); the impairment of echo, per direction.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use crate::base::error::{Ending, IoError, Unmet};
use crate::net::endpoint::Endpoint;
use crate::net::filter::SourceFilter;
use crate::net::signal::Signals;
use crate::net::sys::RecvBatch;
use crate::netem::{Dir, Impairment, PerDir, Shaper};
use crate::report::output::{Datagram, Leg, Output};
use crate::wire::pcap::{PcapWriter, Record};

/// Datagrams per receive call.
pub(crate) const BATCH: usize = 64;
/// After `--count` datagrams went up, replies are still relayed back until the relay has
/// been quiet this long.
const COUNT_GRACE: Duration = Duration::from_secs(1);

mod clock;
mod legs;
mod outbound;
mod sessions;
pub mod stats;
mod stream;

use clock::{Check, Clock};
pub use stats::{Counts, StreamCounts, Way};

use sessions::{Session, Side};
pub use stream::StreamLimits;

/// Where sessions go: UPSTREAM over UDP (each its own socket), over TCP (each its own
/// connection), or through a child (each its own `/bin/sh -c CMD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Exec(String),
}

impl Upstream {
    /// How it is shown before a session names it (a child's PID is the session's).
    pub fn name(&self) -> Endpoint {
        match self {
            Upstream::Udp(a) => Endpoint::Udp(*a),
            Upstream::Tcp(a) => Endpoint::Tcp(*a),
            Upstream::Exec(_) => Endpoint::Exec(0),
        }
    }

    /// The family of UDP datagrams going up, whose limit a frame must fit (none: the
    /// upstream is a stream too).
    fn udp(&self) -> Option<SocketAddr> {
        match self {
            Upstream::Udp(a) => Some(*a),
            Upstream::Tcp(_) | Upstream::Exec(_) => None,
        }
    }
}

/// Where clients come from: datagrams on a UDP socket (each client address a session),
/// connections on a TCP listener (each a session), or dgram's own stdio (one session).
#[derive(Clone, Copy)]
pub enum Front<'a> {
    Udp(&'a UdpSocket),
    Tcp(&'a TcpListener),
    Stdio,
}

/// A relay, fully decided.
#[derive(Debug)]
pub struct Plan {
    pub upstream: Upstream,
    /// How long a TCP connection up may take to be set up (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// What a stream may hold back (`--stream-buffer`, `--stream-queue`).
    pub stream: StreamLimits,
    pub idle_timeout: Duration,
    pub max_sessions: usize,
    /// Client → upstream, and back.
    pub impairment: PerDir<Impairment>,
    pub seed: u64,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    pub duration: Option<Duration>,
    pub max_size: usize,
    /// Socket options for the upstream legs.
    pub options: crate::net::socket::Options,
}

/// The poller's tokens: the signal pipe, the listening socket (or stdin), then one per
/// session's descriptor.
const WAKE: u64 = 0;
const LISTEN: u64 = 1;

/// A datagram waiting for [`Relay::send_queued`]: direction, client, its bytes.
type Outgoing = (Dir, SocketAddr, std::ops::Range<usize>);

/// The relay's state between polls.
pub struct Relay<'a> {
    plan: &'a Plan,
    front: Front<'a>,
    /// The listening address (UDP or TCP; unspecified for stdio).
    local: SocketAddr,
    wildcard: bool,
    filter: SourceFilter,
    sessions: HashMap<SocketAddr, Session>,
    /// Each descriptor's session and side, by its token.
    tokens: HashMap<u64, (SocketAddr, Side)>,
    /// Streams whose connection is being set up (their deadlines are looked at while
    /// there are any).
    connecting: usize,
    /// Accepting stopped for want of descriptors, until a session closes.
    accept_paused: bool,
    /// `relay -`'s stdin has ended (replies are waited for a moment).
    stdin_ended: bool,
    /// What a stream read lands in before the decoder takes it.
    read_buf: Vec<u8>,
    next_token: u64,
    poller: crate::net::sys::Poller,
    /// No session expires before this (None: no sessions); see [`Relay::expire`].
    next_expiry: Option<Instant>,
    /// Each direction's impairment.
    shapers: PerDir<Shaper<SocketAddr>>,
    output: Option<&'a mut Output>,
    pcap: Option<PcapWriter>,
    /// Datagrams waiting for [`Relay::send_queued`], and their bytes.
    out: Vec<Outgoing>,
    out_bytes: Vec<u8>,
    /// The buffers of `sendmmsg`, reused.
    scratch: crate::net::sys::SendScratch,
    verbose: bool,
    trace: bool,
    /// What the relay counted (the impairments' counts are the shapers').
    counts: Counts,
}

impl<'a> Relay<'a> {
    /// A relay on `listen`, waiting with `poller` (made before the relay announces itself:
    /// a test counts the relay's descriptors from then on).
    pub fn new(
        plan: &'a Plan,
        front: Front<'a>,
        poller: crate::net::sys::Poller,
        filter: SourceFilter,
        output: Option<&'a mut Output>,
        pcap: Option<PcapWriter>,
    ) -> io::Result<Self> {
        let local = match &front {
            Front::Udp(s) => s.local_addr()?,
            Front::Tcp(l) => l.local_addr()?,
            Front::Stdio => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        // Each direction draws from its own generator, so one way's decisions do not
        // depend on the other's traffic.
        let salt = |dir| match dir {
            Dir::Up => 0,
            Dir::Down => 0x9e37_79b9_7f4a_7c15,
        };
        let shapers =
            PerDir::from_fn(|dir| Shaper::new(*plan.impairment.get(dir), plan.seed ^ salt(dir)));
        Ok(Relay {
            plan,
            front,
            local,
            wildcard: local.ip().is_unspecified(),
            filter,
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            connecting: 0,
            accept_paused: false,
            stdin_ended: false,
            read_buf: Vec::new(),
            next_token: LISTEN + 1,
            poller,
            next_expiry: None,
            shapers,
            output,
            pcap,
            out: Vec::with_capacity(BATCH),
            out_bytes: Vec::with_capacity(64 * 1024),
            scratch: crate::net::sys::SendScratch::default(),
            verbose: tracing::enabled!(tracing::Level::INFO),
            trace: tracing::enabled!(tracing::Level::DEBUG),
            counts: Counts::default(),
        })
    }

    /// What the relay counted so far.
    pub fn counts(&self) -> Counts {
        let mut counts = self.counts.clone();
        for dir in Dir::BOTH {
            counts.ways.get_mut(dir).impairment = self.shapers.get(dir).counts;
        }
        counts
    }

    /// Whether a leg is a stream (`--stats` then shows the streams' counts).
    pub fn has_streams(&self) -> bool {
        !matches!(self.front, Front::Udp(_)) || self.plan.upstream.udp().is_none()
    }

    /// Sessions live now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Relay until a limit or a signal; then flush what is printed and recorded.
    pub fn run(&mut self, signals: &Signals) -> anyhow::Result<Ending> {
        let mut clock = Clock::new(self.plan);
        let mut batches = (
            RecvBatch::with(BATCH, self.plan.max_size, ancillary(self.wildcard)),
            RecvBatch::new(BATCH, self.plan.max_size),
        );
        let mut events = Vec::with_capacity(BATCH);
        self.poller.add(signals.wake_fd(), WAKE)?;
        self.start(Instant::now())?;
        let mut listening = true;
        loop {
            if let Some(sig) = signals.pending() {
                self.flush()?;
                return Ok(Ending::Signal(sig));
            }
            let now = Instant::now();
            self.timers(now);
            self.expire(now);
            self.connect_timeouts(now);
            if self.front_closed(now) {
                break;
            }
            let counted = self
                .plan
                .count
                .is_some_and(|c| self.counts.ways.up.forwarded >= c);
            match clock.check(self.plan, counted, now) {
                Check::Go => {}
                Check::End => break,
                Check::Idle => {
                    self.flush()?;
                    return self.idle_ending();
                }
            }
            // Past --count, clients are no longer read (their errors still are).
            if counted && listening {
                self.stop_listening()?;
                listening = false;
            }
            // Wait for the socket, a session, the next timer, or a limit.
            let deadline = [
                self.next_timer(),
                self.next_expiry,
                self.next_connect_deadline(),
                self.stdio_deadline(),
                clock.deadline(self.plan),
            ]
            .into_iter()
            .flatten()
            .min();
            self.flush()?;
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.poller.wait(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to wait")),
            }
            if self.dispatch(&events, listening, &mut batches)? {
                clock.last_traffic = Instant::now();
            }
        }
        self.drain(signals);
        self.flush()?;
        Ok(Ending::Done)
    }

    /// The idle timeout ended the run: fine, unless `--count` was not reached (exit 1).
    fn idle_ending(&self) -> anyhow::Result<Ending> {
        match self.plan.count {
            Some(want) => Err(Unmet(format!(
                "relayed {} of {want} datagrams up (nothing for {})",
                self.counts.ways.up.forwarded,
                crate::base::units::human_duration(self.plan.timeout.unwrap_or_default())
            ))
            .into()),
            None => Ok(Ending::Done),
        }
    }

    /// Handle what the poller reported; returns whether any datagram was relayed.
    fn dispatch(
        &mut self,
        events: &[crate::net::sys::Event],
        listening: bool,
        (client_batch, upstream_batch): &mut (RecvBatch, RecvBatch),
    ) -> anyhow::Result<bool> {
        let mut traffic = false;
        for ev in events {
            // A queued ICMP error keeps the descriptor ready until the error queue is
            // read: read it first, or the wait would never sleep again.
            match ev.token {
                WAKE => {} // a signal: seen at the top of the loop
                LISTEN => match self.front {
                    Front::Udp(_) => {
                        if ev.error {
                            self.client_errors(None);
                        }
                        if ev.readable && listening {
                            traffic |= self.relay_up(client_batch)?;
                        }
                    }
                    Front::Tcp(_) => {
                        if listening {
                            self.accept(Instant::now())?;
                        }
                    }
                    Front::Stdio => {}
                },
                token => {
                    // A session evicted by this round's new ones is gone: skip it.
                    let Some(&(client, side)) = self.tokens.get(&token) else {
                        continue;
                    };
                    let udp = side == Side::Upstream
                        && self.sessions.get(&client).is_some_and(|s| s.token == token);
                    if !udp {
                        traffic |= self.stream_ready(client, side, ev)?;
                        continue;
                    }
                    if ev.error {
                        self.upstream_errors(client, None);
                    }
                    if ev.readable {
                        traffic |= self.relay_down(client, upstream_batch)?;
                    }
                }
            }
        }
        Ok(traffic)
    }

    /// After the end: delayed datagrams still go (bounded by their delays), unless a
    /// signal comes.
    fn drain(&mut self, signals: &Signals) {
        while let Some(when) = self.next_timer() {
            if signals.pending().is_some() {
                return;
            }
            if when > Instant::now()
                && !matches!(
                    signals.wait(None, Some(when)),
                    Ok(crate::net::signal::Wake::Timeout)
                )
            {
                return;
            }
            self.timers(Instant::now());
        }
    }

    /// Everything queued on the listening socket: each datagram up its session. Returns
    /// whether anything was relayed.
    fn relay_up(&mut self, batch: &mut RecvBatch) -> anyhow::Result<bool> {
        let Front::Udp(listen) = self.front else {
            return Ok(false);
        };
        let fd = listen.as_raw_fd();
        let mut any = false;
        loop {
            let want = match self.plan.count {
                Some(c) => {
                    (c.saturating_sub(self.counts.ways.up.forwarded)).min(BATCH as u64) as usize
                }
                None => BATCH,
            };
            if want == 0 {
                return Ok(any);
            }
            let n = match batch.recv(fd, want) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for a reply sent to a client (gone, or its path broken).
                Err(e) if crate::net::recv::is_icmp_errno(&e) => {
                    self.client_errors(Some(&e));
                    continue;
                }
                Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to receive")),
            };
            let now = Instant::now();
            let time = SystemTime::now();
            for i in 0..n {
                let meta = batch.meta(i);
                if !self.filter.admits(meta.peer.ip()) {
                    self.counts.filtered += 1;
                    continue;
                }
                if meta.captured < meta.len {
                    self.counts.truncated += 1;
                    warn!(
                        "datagram from {} is {} bytes, over --max-size: not relayed",
                        meta.peer, meta.len
                    );
                    continue;
                }
                let payload = batch.payload(i);
                if !self.session(meta, now)? {
                    continue;
                }
                any = true;
                self.show(Dir::Up, meta.peer, payload, meta.len, time)?;
                self.impair(Dir::Up, meta.peer, payload, now);
            }
            self.send_queued();
            if n < want {
                return Ok(any);
            }
        }
    }

    /// Everything queued on a session's socket: each reply back to its client.
    fn relay_down(&mut self, client: SocketAddr, batch: &mut RecvBatch) -> anyhow::Result<bool> {
        let Some(sessions::UpLeg::Udp { socket, .. }) = self.sessions.get(&client).map(|s| &s.up)
        else {
            return Ok(false);
        };
        let fd = socket.as_raw_fd();
        let mut any = false;
        loop {
            let n = match batch.recv(fd, BATCH) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // An ICMP error from upstream: counted for its session, never fatal.
                    self.upstream_errors(client, Some(&e));
                    return Ok(any);
                }
            };
            let now = Instant::now();
            let time = SystemTime::now();
            if let Some(s) = self.sessions.get_mut(&client) {
                s.last = now;
            }
            for i in 0..n {
                let meta = batch.meta(i);
                let payload = batch.payload(i);
                if meta.captured < meta.len {
                    self.counts.truncated += 1;
                    continue;
                }
                any = true;
                self.show(Dir::Down, client, payload, meta.len, time)?;
                self.impair(Dir::Down, client, payload, now);
            }
            self.send_queued();
            if n < BATCH {
                return Ok(any);
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        Dir::BOTH
            .iter()
            .filter_map(|&dir| self.shapers.get(dir).next_due())
            .min()
    }

    /// Print one datagram as it arrives, and record it on the leg it came by.
    fn show(
        &mut self,
        dir: Dir,
        client: SocketAddr,
        payload: &[u8],
        len: usize,
        time: SystemTime,
    ) -> anyhow::Result<()> {
        // Silent (the usual case): no names to look up for a datagram nobody sees.
        if !self.trace && self.pcap.is_none() && self.output.is_none() {
            return Ok(());
        }
        let (client_name, upstream) = (self.client_name(client), self.upstream_name(client));
        if self.trace {
            debug!(
                "{} {len} bytes",
                if dir == Dir::Up {
                    format!("{client_name} -> {upstream}")
                } else {
                    format!("{upstream} -> {client_name}")
                }
            );
        }
        if self.pcap.is_some() {
            // The leg it arrived on; the leg it leaves on is recorded as it is sent. A
            // child's pipes have no addresses: that leg is not recorded.
            let ends = if dir == Dir::Up {
                client_name.addr().zip(self.relay_side(client))
            } else {
                upstream.addr().zip(self.upstream_side(client))
            };
            if let (Some(pcap), Some((from, to))) = (&mut self.pcap, ends) {
                pcap.write(&Record {
                    time,
                    from,
                    to,
                    payload,
                    len,
                });
            }
        }
        if let Some(output) = self.output.as_deref_mut() {
            output.write(&Datagram {
                peer: if dir == Dir::Up {
                    client_name
                } else {
                    upstream
                },
                payload,
                len,
                time,
                rtt: None,
                leg: Some(Leg {
                    dir,
                    client: client_name,
                    upstream,
                }),
            })?;
        }
        Ok(())
    }

    /// Push printed and recorded datagrams out: the sockets are idle.
    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(pcap) = &mut self.pcap {
            pcap.flush();
        }
        if let Some(output) = self.output.as_deref_mut() {
            output.flush()?;
        }
        Ok(())
    }
}

fn ancillary(wildcard: bool) -> crate::net::sys::Ancillary {
    crate::net::sys::Ancillary {
        gro: false,
        pktinfo: wildcard,
        timestamps: false,
    }
}
