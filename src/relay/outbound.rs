//! The relay's way out: each datagram through its direction's impairment (drop,
//! duplicate, delay on a timer queue, reorder), then queued and sent in batches, up on
//! the session's socket or down from the listening socket.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use tracing::debug;

use super::{Relay, MAX_HOLD};
use crate::base::error::IoContext;
use crate::net::sys::{send_replies, Reply};
use crate::netem::Delayed;

impl Relay<'_> {
    /// Send one datagram on its way, through the direction's impairment.
    pub(super) fn impair(&mut self, up: bool, client: SocketAddr, payload: &[u8], now: Instant) {
        let way = if up { &mut self.up } else { &mut self.down };
        if !way.impairment.is_active() {
            self.deliver(up, client, payload);
            return;
        }
        let decision = way.impairment.decide(&mut way.rng);
        let counts = if up {
            &mut self.counts.up
        } else {
            &mut self.counts.down
        };
        if decision.drop {
            counts.dropped += 1;
            return;
        }
        if decision.copies == 2 {
            counts.duplicated += 1;
        }
        for copy in 0..decision.copies {
            let way = if up { &mut self.up } else { &mut self.down };
            way.seq += 1;
            let d = Delayed {
                due: now + decision.delay,
                seq: way.seq,
                to: client,
                from: None,
                payload: payload.to_vec(),
                hold: decision.hold && copy == 0,
            };
            if decision.delay.is_zero() {
                self.release(up, d, now);
            } else if way.timers.push(d) {
                let counts = if up {
                    &mut self.counts.up
                } else {
                    &mut self.counts.down
                };
                counts.delayed += 1;
            } else {
                let counts = if up {
                    &mut self.counts.up
                } else {
                    &mut self.counts.down
                };
                counts.dropped += 1;
            }
        }
    }

    /// A datagram whose time has come: sent, or held back once (reorder).
    pub(super) fn release(&mut self, up: bool, d: Delayed, now: Instant) {
        let way = if up { &mut self.up } else { &mut self.down };
        if d.hold && way.held.is_none() {
            way.held = Some((d, now + MAX_HOLD));
            let counts = if up {
                &mut self.counts.up
            } else {
                &mut self.counts.down
            };
            counts.reordered += 1;
            return;
        }
        let held = way.held.take();
        self.deliver(up, d.to, &d.payload);
        if let Some((h, _)) = held {
            self.deliver(up, h.to, &h.payload);
        }
    }

    /// Send the datagrams whose delay or hold is over.
    pub(super) fn timers(&mut self, now: Instant) -> anyhow::Result<()> {
        for up in [true, false] {
            loop {
                let way = if up { &mut self.up } else { &mut self.down };
                let Some(d) = way.timers.pop_due(now) else {
                    break;
                };
                self.release(up, d, now);
            }
            let way = if up { &mut self.up } else { &mut self.down };
            if way.held.as_ref().is_some_and(|(_, due)| *due <= now) {
                if let Some((h, _)) = way.held.take() {
                    self.deliver(up, h.to, &h.payload);
                }
            }
        }
        self.send_queued()
    }

    /// Queue a datagram up on the client's session socket, or down to the client from the
    /// listening socket; [`send_queued`](Self::send_queued) sends the queue in batches.
    pub(super) fn deliver(&mut self, up: bool, client: SocketAddr, payload: &[u8]) {
        let start = self.out_bytes.len();
        self.out_bytes.extend_from_slice(payload);
        self.out.push((up, client, start..self.out_bytes.len()));
    }

    /// Send what [`deliver`](Self::deliver) queued: consecutive datagrams of one session
    /// and direction in one `sendmmsg` (the usual case: a batch from one socket).
    pub(super) fn send_queued(&mut self) -> anyhow::Result<()> {
        let mut i = 0;
        while i < self.out.len() {
            let (up, client, _) = self.out[i];
            let mut j = i + 1;
            while j < self.out.len() && j - i < 64 && self.out[j].0 == up && self.out[j].1 == client
            {
                j += 1;
            }
            let bytes = &self.out_bytes;
            let payloads = self.out[i..j].iter().map(|(_, _, r)| &bytes[r.clone()]);
            let result = if up {
                match self.sessions.get(&client) {
                    Some(s) => crate::net::sys::send_batch(
                        s.upstream.as_raw_fd(),
                        payloads,
                        &mut self.scratch,
                    ),
                    None => Err(io::Error::other("session gone")),
                }
            } else {
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
                let (fd, ipv6) = (self.listen.as_raw_fd(), self.local.is_ipv6());
                send_replies(fd, ipv6, replies, &mut self.scratch)
            };
            let counts = if up {
                &mut self.counts.up
            } else {
                &mut self.counts.down
            };
            // What went is counted; the first that did not is an error and is skipped.
            let (sent, failed) = match result {
                Ok(n) => (n, None),
                Err(e) => {
                    counts.send_errors += 1;
                    if counts.send_errors <= 5 {
                        debug!(
                            "relaying {} for {client} failed: {}",
                            if up { "up" } else { "down" },
                            crate::base::error::describe_io(&e)
                        );
                    }
                    (0, Some(e))
                }
            };
            let counts = if up {
                &mut self.counts.up
            } else {
                &mut self.counts.down
            };
            counts.forwarded += sent as u64;
            let went = &self.out[i..i + sent];
            counts.bytes += went.iter().map(|(_, _, r)| r.len() as u64).sum::<u64>();
            // What left, on the leg it left by (what an impairment dropped never does).
            if sent > 0 && self.pcap.is_some() {
                let upstream = self.plan.upstream;
                let (from, to) = if up {
                    (self.upstream_side(client), upstream)
                } else {
                    (self.relay_side(client), client)
                };
                let time = std::time::SystemTime::now();
                if let Some(pcap) = &mut self.pcap {
                    for (_, _, r) in &self.out[i..i + sent] {
                        let p = &self.out_bytes[r.clone()];
                        pcap.write(time, from, to, p, p.len())
                            .io_context(|| "failed to write --pcap".into())?;
                    }
                }
            }
            // An earlier datagram's ICMP error, given back by this send: counted by kind.
            match failed {
                Some(e) if crate::net::recv::is_icmp_errno(&e) && up => {
                    self.upstream_errors(client, Some(&e));
                }
                Some(e) if crate::net::recv::is_icmp_errno(&e) => self.client_errors(Some(&e)),
                _ => {}
            }
            i += sent.max(1);
        }
        self.out.clear();
        self.out_bytes.clear();
        Ok(())
    }
}
