//! The relay's stream legs (SPEC §10): the front it takes clients from (a UDP socket, a
//! TCP listener, its own stdio), and what a stream's readiness means: a connection set
//! up or failed, room to write, frames to read, a peer that closed or reset.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::sessions::Side;
use super::stream::{Got, Stream};
use super::{Front, Relay, LISTEN};
use crate::net::sys::Event;
use crate::netem::Dir;

/// The session key of `relay -`'s one session (it has no client address).
const STDIO_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Reads of one stream per wake, at most: a fast stream does not starve the others.
const READS_PER_WAKE: usize = 16;

/// What one read takes at most.
const READ_SIZE: usize = 64 * 1024;

/// How long the last frames for `relay -`'s stdout may take once its stdin has ended.
const STDIO_LINGER: Duration = Duration::from_secs(1);

impl Relay<'_> {
    /// Watch the front: the listening socket, or open `relay -`'s one session.
    pub(super) fn start(&mut self, now: Instant) -> anyhow::Result<()> {
        match self.front {
            Front::Udp(s) => self.poller.add(s.as_raw_fd(), LISTEN)?,
            Front::Tcp(l) => self.poller.add(l.as_raw_fd(), LISTEN)?,
            Front::Stdio => {
                let stdio = Stream::stdio()?;
                if !self.open(STDIO_CLIENT, Some(stdio), None, now)? {
                    anyhow::bail!("cannot reach the upstream for relay -");
                }
            }
        }
        Ok(())
    }

    /// `relay -` ends with its one session, or once its stdin has ended and the replies
    /// have been quiet for a moment (as `--count`'s last replies are waited for): its
    /// stdout takes what waits for it first.
    pub(super) fn front_closed(&mut self, now: Instant) -> bool {
        if !matches!(self.front, Front::Stdio) {
            return false;
        }
        if !self.stdin_ended || self.stdio_deadline().is_some_and(|t| now < t) {
            return self.sessions.is_empty();
        }
        if let Some(stream) = self
            .sessions
            .get_mut(&STDIO_CLIENT)
            .and_then(|s| s.client_stream.as_mut())
        {
            linger(stream);
        }
        self.close(STDIO_CLIENT);
        true
    }

    /// When `relay -`, its stdin ended, stops waiting for replies.
    pub(super) fn stdio_deadline(&self) -> Option<Instant> {
        if !self.stdin_ended {
            return None;
        }
        Some(self.sessions.get(&STDIO_CLIENT)?.last + super::COUNT_GRACE)
    }

    /// Past `--count`: clients are no longer read (a UDP socket's errors still are).
    pub(super) fn stop_listening(&mut self) -> io::Result<()> {
        match self.front {
            Front::Udp(s) => self.poller.set_readable(s.as_raw_fd(), LISTEN, false),
            Front::Tcp(l) => self.poller.set_readable(l.as_raw_fd(), LISTEN, false),
            Front::Stdio => Ok(()),
        }
    }

    /// Every connection waiting on the TCP listener, each a session. Out of descriptors,
    /// accepting pauses (counted, logged once) until a session closes.
    pub(super) fn accept(&mut self, now: Instant) -> anyhow::Result<()> {
        let Front::Tcp(listener) = self.front else {
            return Ok(());
        };
        loop {
            let (conn, peer) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    self.counts.sessions_refused += 1;
                    if !self.accept_paused {
                        warn!(
                            "out of descriptors: new connections wait until a session closes ({})",
                            crate::base::error::describe_io(&e)
                        );
                        self.poller
                            .set_readable(listener.as_raw_fd(), LISTEN, false)?;
                        self.accept_paused = true;
                    }
                    return Ok(());
                }
                Err(e) => {
                    // A connection reset before it was accepted, and the like: not ours.
                    tracing::debug!("accept: {}", crate::base::error::describe_io(&e));
                    return Ok(());
                }
            };
            if !self.filter.admits(peer.ip()) {
                self.counts.filtered += 1;
                continue;
            }
            match Stream::accepted(conn, peer) {
                Ok(stream) => {
                    self.counts.streams.streams_opened += 1;
                    self.open(peer, Some(stream), None, now)?;
                }
                Err(e) => warn!(
                    "connection from {peer}: {}",
                    crate::base::error::describe_io(&e)
                ),
            }
        }
    }

    /// A session closed: a paused accept may go on.
    pub(super) fn resume_accepting(&mut self) {
        if let (true, Front::Tcp(l)) = (self.accept_paused, self.front) {
            if self
                .poller
                .set_readable(l.as_raw_fd(), LISTEN, true)
                .is_ok()
            {
                self.accept_paused = false;
            }
        }
    }

    /// The earliest a connection being set up times out.
    pub(super) fn next_connect_deadline(&mut self) -> Option<Instant> {
        if self.connecting == 0 {
            return None;
        }
        self.sessions
            .values_mut()
            .filter_map(|s| s.up_stream().and_then(|st| st.connecting))
            .min()
    }

    /// Fail the sessions whose connection was not set up within `--connect-timeout`.
    pub(super) fn connect_timeouts(&mut self, now: Instant) {
        if self.connecting == 0 {
            return;
        }
        let late: Vec<SocketAddr> = self
            .sessions
            .iter_mut()
            .filter(|(_, s)| {
                matches!(&s.up, super::sessions::UpLeg::Stream(st) if st.connecting.is_some_and(|d| now >= d))
            })
            .map(|(c, _)| *c)
            .collect();
        let timeout = crate::base::units::human_duration(self.plan.connect_timeout);
        for client in late {
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not connected within {timeout} (--connect-timeout)"),
            );
            self.stream_failed(client, Side::Upstream, &e);
        }
    }

    /// What the poller found on one of `client`'s streams; returns whether any datagram
    /// passed.
    pub(super) fn stream_ready(
        &mut self,
        client: SocketAddr,
        side: Side,
        ev: &Event,
    ) -> anyhow::Result<bool> {
        let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) else {
            return Ok(false);
        };
        if stream.connecting.is_some() {
            if !(ev.writable || ev.error) {
                return Ok(false);
            }
            let name = stream.name;
            if let Err(e) = stream.connected() {
                self.stream_failed(client, side, &e);
                return Ok(false);
            }
            self.connecting -= 1;
            self.counts.streams.streams_opened += 1;
            if self.verbose {
                info!("{name} connected for {}", self.client_name(client));
            }
        }
        let stream = self
            .sessions
            .get_mut(&client)
            .and_then(|s| s.stream(side))
            .expect("the session is still open");
        let mut result = Ok(());
        if ev.writable || ev.error {
            result = stream.flush();
        }
        if let Err(e) = result.and_then(|()| super::sessions::arm(&mut self.poller, stream)) {
            self.stream_failed(client, side, &e);
            return Ok(false);
        }
        if ev.readable || ev.error {
            return self.read_stream(client, side);
        }
        Ok(false)
    }

    /// Read what one of `client`'s streams brought, and send each whole frame on.
    fn read_stream(&mut self, client: SocketAddr, side: Side) -> anyhow::Result<bool> {
        if self.read_buf.len() < READ_SIZE {
            self.read_buf.resize(READ_SIZE, 0);
        }
        let mut any = false;
        for _ in 0..READS_PER_WAKE {
            let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) else {
                break;
            };
            match stream.read(&mut self.read_buf) {
                Ok(Got::Bytes) => any |= self.frames(client, side)?,
                Ok(Got::Empty) => break,
                Ok(Got::Closed) => {
                    self.stream_closed(client, side);
                    break;
                }
                Err(e) => {
                    self.stream_failed(client, side, &e);
                    break;
                }
            }
        }
        Ok(any)
    }

    /// Each whole frame a stream has brought: shown, impaired, and sent on its way (up
    /// from a client's stream, down from an upstream's).
    fn frames(&mut self, client: SocketAddr, side: Side) -> anyhow::Result<bool> {
        let Some(session) = self.sessions.get_mut(&client) else {
            return Ok(false);
        };
        let now = Instant::now();
        session.last = now;
        let Some(stream) = session.stream(side) else {
            return Ok(false);
        };
        // The decoder is taken out while its frames go on (they borrow it).
        let mut decoder = std::mem::take(&mut stream.decoder);
        let (dir, name) = (side.onward(), stream.name);
        // The UDP limit of the family each frame would go on.
        let limit = match dir {
            Dir::Up => self.plan.upstream.udp(),
            Dir::Down => self.client_name(client).addr(),
        }
        .map(|a| crate::wire::payload::max_payload(&crate::net::addr::normalize(a)));
        let time = SystemTime::now();
        let mut any = false;
        let mut result = Ok(());
        while let Some(frame) = decoder.next_frame() {
            self.counts.streams.frames_in += 1;
            if limit.is_some_and(|l| frame.len() > l) {
                self.counts.streams.too_large += 1;
                if self.counts.streams.too_large <= 5 {
                    warn!(
                        "{name}: a {}-byte frame is over the UDP limit of {} bytes: dropped",
                        frame.len(),
                        limit.unwrap_or_default()
                    );
                }
                continue;
            }
            any = true;
            result = self.show(dir, client, frame, frame.len(), time);
            if result.is_err() {
                break;
            }
            self.impair(dir, client, frame, now);
        }
        if let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) {
            stream.decoder = decoder;
        }
        self.send_queued();
        result.map(|()| any)
    }

    /// The peer closed its stream: the session ends (a frame it ended inside of is
    /// dropped and counted). `relay -`'s last frames to stdout still go, for a moment.
    fn stream_closed(&mut self, client: SocketAddr, side: Side) {
        let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) else {
            return;
        };
        let partial = stream.decoder.pending();
        let (name, read_fd) = (stream.name, stream.read_fd());
        let status = stream.exit_status();
        if partial > 0 {
            self.counts.streams.partial_frames += 1;
            warn!("{name} ended inside a frame: {partial} bytes dropped");
        }
        if matches!(self.front, Front::Stdio) && side == Side::Client {
            // stdin ended: replies still come back for a moment (see front_closed).
            let _ = self.poller.remove(read_fd);
            self.stdin_ended = true;
            return;
        }
        if self.verbose {
            let how = status.map_or(String::new(), |s| format!(" ({s})"));
            info!(
                "session {} closed: {name} closed the stream{how}",
                self.client_name(client)
            );
        }
        self.close(client);
    }

    /// One of `client`'s streams failed (refused, reset, timed out, a child gone): the
    /// session ends; what waited on the stream is dropped and counted.
    pub(super) fn stream_failed(&mut self, client: SocketAddr, side: Side, e: &io::Error) {
        let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) else {
            return;
        };
        let name = stream.name;
        let (queued, partial) = (stream.queued(), stream.decoder.pending());
        let streams = &mut self.counts.streams;
        streams.streams_failed += 1;
        streams.queue_drops += queued as u64;
        if partial > 0 {
            streams.partial_frames += 1;
        }
        if streams.streams_failed <= 5 || self.verbose {
            let dropped = if queued > 0 {
                format!(" ({queued} queued datagrams dropped)")
            } else {
                String::new()
            };
            warn!(
                "session {} ended: {name}: {}{dropped}",
                self.client_name(client),
                crate::base::error::describe_io(e)
            );
        }
        self.close(client);
    }
}

/// Give `relay -`'s stdout a moment to take what waits for it.
fn linger(stream: &mut Stream) {
    let until = Instant::now() + STDIO_LINGER;
    while stream.waiting() > 0 && Instant::now() < until {
        if stream.flush().is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
