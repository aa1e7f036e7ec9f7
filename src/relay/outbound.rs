//! The relay's way out: each datagram through its direction's shaper (netem: drop,
//! duplicate, delay on a timer queue, reorder), then queued and sent in batches, up on
//! the session's socket or down from the listening socket.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Instant;

use tracing::{debug, warn};

use super::sessions::{arm, Side, UpLeg};
use super::stream::Refused;
use super::{Front, Outgoing, Relay};
use crate::net::sys::{send_replies, Reply};
use crate::netem::Dir;
use crate::wire::pcap::Record;

/// The most datagrams sent in one batch: one `sendmmsg`, or one run onto a stream.
const RUN: usize = 64;
const _: () = assert!(
    RUN <= u64::BITS as usize,
    "frame_run keeps a run's fate in a u64"
);

impl Relay<'_> {
    /// Send one datagram on its way, through its direction's impairment.
    pub(super) fn impair(&mut self, dir: Dir, client: SocketAddr, payload: &[u8], now: Instant) {
        let (out, out_bytes) = (&mut self.out, &mut self.out_bytes);
        self.shapers
            .get_mut(dir)
            .push(client, payload, now, &mut |client, p| {
                deliver(out, out_bytes, dir, client, p)
            });
    }

    /// Send the datagrams whose delay or hold is over.
    pub(super) fn timers(&mut self, now: Instant) {
        for dir in Dir::BOTH {
            let (out, out_bytes) = (&mut self.out, &mut self.out_bytes);
            self.shapers.get_mut(dir).tick(now, &mut |client, p| {
                deliver(out, out_bytes, dir, client, p)
            });
        }
        self.send_queued();
    }

    /// Send what [`deliver`] queued: consecutive datagrams of one session and direction
    /// in one `sendmmsg` (the usual case: a batch from one socket).
    pub(super) fn send_queued(&mut self) {
        let mut i = 0;
        while i < self.out.len() {
            let (dir, client, _) = self.out[i];
            let mut j = i + 1;
            while j < self.out.len()
                && j - i < RUN
                && self.out[j].0 == dir
                && self.out[j].1 == client
            {
                j += 1;
            }
            if self.onto_stream(dir, client) {
                self.frame_run(i..j, dir, client);
                i = j;
                continue;
            }
            let result = self.send_run(i..j, dir, client);
            let counts = self.counts.ways.get_mut(dir);
            // What went is counted; the first that did not is an error and is skipped.
            let (sent, failed) = match result {
                Ok(n) => (n, None),
                Err(e) => {
                    counts.send_errors += 1;
                    if counts.send_errors <= 5 {
                        debug!(
                            "relaying {} for {client} failed: {}",
                            dir.name(),
                            crate::base::error::describe_io(&e)
                        );
                    }
                    (0, Some(e))
                }
            };
            counts.forwarded += sent as u64;
            let went = &self.out[i..i + sent];
            counts.bytes += went.iter().map(|(_, _, r)| r.len() as u64).sum::<u64>();
            self.record_sent(i..i + sent, dir, client);
            // An earlier datagram's ICMP error, given back by this send: counted by kind.
            match failed {
                Some(e) if crate::net::recv::is_icmp_errno(&e) && dir == Dir::Up => {
                    self.upstream_errors(client, Some(&e));
                }
                Some(e) if crate::net::recv::is_icmp_errno(&e) => self.client_errors(Some(&e)),
                _ => {}
            }
            i += sent.max(1);
        }
        self.out.clear();
        self.out_bytes.clear();
    }

    /// One `sendmmsg` of the queued datagrams `run`, all of one session and direction:
    /// up on the session's socket, or down from the listening socket (from the address
    /// the client wrote to, on a wildcard bind).
    fn send_run(&mut self, run: Range<usize>, dir: Dir, client: SocketAddr) -> io::Result<usize> {
        let bytes = &self.out_bytes;
        let payloads = self.out[run].iter().map(|(_, _, r)| &bytes[r.clone()]);
        if dir == Dir::Up {
            return match self.sessions.get(&client).map(|s| &s.up) {
                Some(UpLeg::Udp { socket, .. }) => {
                    crate::net::sys::send_batch(socket.as_raw_fd(), payloads, &mut self.scratch)
                }
                _ => Err(io::Error::other("session gone")),
            };
        }
        let Front::Udp(listen) = self.front else {
            return Err(io::Error::other("no UDP clients"));
        };
        let from = if self.wildcard {
            self.sessions.get(&client).and_then(|s| s.local_ip)
        } else {
            None
        };
        let replies = payloads.map(|payload| Reply {
            payload,
            to: client,
            from,
        });
        let (fd, ipv6) = (listen.as_raw_fd(), self.local.is_ipv6());
        send_replies(fd, ipv6, replies, &mut self.scratch)
    }

    /// What left (the queued datagrams at the indexes `sent`), on the leg it left by
    /// (what an impairment dropped never does).
    fn record_sent(&mut self, sent: impl Iterator<Item = usize>, dir: Dir, client: SocketAddr) {
        let mut sent = sent.peekable();
        if sent.peek().is_none() || self.pcap.is_none() {
            return;
        }
        let ends = if dir == Dir::Up {
            self.upstream_side(client)
                .zip(self.upstream_name(client).addr())
        } else {
            self.relay_side(client).zip(self.client_name(client).addr())
        };
        let time = std::time::SystemTime::now();
        if let (Some(pcap), Some((from, to))) = (&mut self.pcap, ends) {
            for i in sent {
                let payload = &self.out_bytes[self.out[i].2.clone()];
                pcap.write(&Record {
                    time,
                    from,
                    to,
                    payload,
                    len: payload.len(),
                });
            }
        }
    }
}

impl Relay<'_> {
    /// Whether datagrams going `dir` for `client` go onto a stream (its upstream's, or
    /// its own) rather than a UDP socket.
    fn onto_stream(&mut self, dir: Dir, client: SocketAddr) -> bool {
        self.sessions
            .get_mut(&client)
            .is_some_and(|s| s.stream(Side::toward(dir)).is_some())
    }

    /// Queued datagrams `run`, all of one session and direction, as frames on its stream:
    /// what the buffer (or the queue while connecting) takes is forwarded, the rest
    /// dropped and counted; then written as far as the peer takes it.
    fn frame_run(&mut self, run: Range<usize>, dir: Dir, client: SocketAddr) {
        let side = Side::toward(dir);
        let limits = self.plan.stream;
        let Some(stream) = self.sessions.get_mut(&client).and_then(|s| s.stream(side)) else {
            return;
        };
        let (mut forwarded, mut bytes, mut full, mut too_large) = (0, 0, 0, 0);
        // Which of the run the stream took: a refused datagram may sit between two it
        // took (a large one that no longer fits, a small one that still does).
        let mut took = 0u64; // bit k: the run's k-th datagram; runs are RUN <= 64 long
        for (k, (_, _, r)) in self.out[run.clone()].iter().enumerate() {
            match stream.push(&self.out_bytes[r.clone()], limits) {
                Ok(()) => {
                    forwarded += 1;
                    bytes += r.len() as u64;
                    took |= 1 << k;
                }
                Err(Refused::Full) => full += 1,
                Err(Refused::TooLarge) => too_large += 1,
            }
        }
        let flushed = stream.flush();
        let name = stream.name;
        let armed = arm(&mut self.poller, stream);
        let streams = &mut self.counts.streams;
        streams.frames_out += forwarded;
        streams.too_large += too_large;
        streams.queue_drops += full;
        if full > 0 && streams.queue_drops == full {
            warn!("{name} takes datagrams slower than they come: dropping what does not fit (--stream-buffer, --stream-queue)");
        }
        let way = self.counts.ways.get_mut(dir);
        way.forwarded += forwarded;
        way.bytes += bytes;
        let taken = (0..run.len()).filter(move |k| took >> k & 1 == 1);
        self.record_sent(taken.map(|k| run.start + k), dir, client);
        if let Err(e) = flushed.and(armed) {
            self.stream_failed(client, side, &e);
        }
    }
}

/// Queue a datagram up on the client's session socket, or down to the client from the
/// listening socket; [`Relay::send_queued`] sends the queue in batches.
fn deliver(
    out: &mut Vec<Outgoing>,
    out_bytes: &mut Vec<u8>,
    dir: Dir,
    client: SocketAddr,
    payload: &[u8],
) {
    let start = out_bytes.len();
    out_bytes.extend_from_slice(payload);
    out.push((dir, client, start..out_bytes.len()));
}
