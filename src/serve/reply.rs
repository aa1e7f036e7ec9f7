//! Answering datagrams from a server's own socket: the admission step (the echo policy
//! and the per-source rate limit), the impairment decisions with their timer queue, and
//! batched sends. `echo` uses it to reflect; the responders of `listen` will use it to
//! answer. One place decides who gets a reply, so no server can become a reflector.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tracing::{info, trace, warn};

use crate::net::signal::{Signals, Wake};
use crate::net::sys::{send_replies, RecvMeta, Reply};
use crate::netem::shaper::ShaperCounts;
use crate::netem::{Impairment, Shaper};
use crate::serve::limiter::SourceLimiter;
use crate::serve::policy::{self, Host, Refusal};
use crate::wire::pcap::{PcapWriter, Record};

/// Default per-source limit off loopback (SPEC §4 echo).
pub const DEFAULT_RATE_LIMIT: f64 = 1000.0;
/// Send errors logged before further ones are only counted.
const SEND_ERROR_LOGS: u64 = 5;
/// Replies per `sendmmsg` call.
const SEND_BATCH: usize = 64;

/// What a server answers a request with.
#[derive(Debug)]
pub enum Answer {
    /// The request itself, byte for byte (echo).
    Echo,
    /// The same bytes to every request (`--respond`, `--respond-file`).
    Fixed(Vec<u8>),
    /// A mock DNS server (`--dns-answer`, `--dns-zone`).
    Dns(crate::wire::dns::zone::Zone),
    /// A program's stdout (`--exec`): computed by [`crate::serve::exec`], then
    /// [`Replier::send`].
    Exec(crate::serve::exec::ExecSettings),
}

/// Which server answers: the words of its summary and JSON differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Responder {
    /// `dgram echo`: replies are echoes.
    Echo,
    /// `dgram listen` as a mock server: replies are answers.
    Listen,
}

impl Responder {
    /// The subcommand's name, as messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Responder::Echo => "echo",
            Responder::Listen => "listen",
        }
    }
}

/// How a server answers: who may get a reply, and how the network misbehaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What the reply is.
    pub answer: std::rc::Rc<Answer>,
    /// Who answers.
    pub responder: Responder,
    /// Requests the policy refused still count toward `--count` (listen: every request
    /// is a record; echo: only what passed the policy).
    pub count_refused: bool,
    /// Replies per second per source; `None`: no limit.
    pub rate_limit: Option<f64>,
    /// Sources the rate limit tracks at most.
    pub max_sources: usize,
    /// The impairment of replies.
    pub impairment: Impairment,
    /// The impairment's seed.
    pub seed: u64,
}

impl Settings {
    /// The `--exec` command's settings, when that is the answer.
    pub fn exec(&self) -> Option<&crate::serve::exec::ExecSettings> {
        match &*self.answer {
            Answer::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// The rate limit SPEC §4 echo asks for: off on loopback unless asked, on elsewhere
    /// unless `--no-rate-limit` (`none`).
    pub fn rate_limit_for(local: SocketAddr, asked: Option<f64>, none: bool) -> Option<f64> {
        match (none, asked) {
            (true, _) => None,
            (false, Some(r)) => Some(r),
            (false, None) if is_loopback(local) => None,
            (false, None) => Some(DEFAULT_RATE_LIMIT),
        }
    }

    /// The warning a server bound off loopback prints after its announcement:
    /// `echo on 0.0.0.0:7 answers other hosts: rate limit of 1000 replies/s per source ...`.
    pub fn open_warning(&self, local: SocketAddr) -> Option<String> {
        let who = self.responder.name();
        if is_loopback(local) {
            return None;
        }
        Some(match self.rate_limit {
            Some(r) => format!("{who} on {local} answers other hosts: rate limit of {r} replies/s per source (change it with --rate-limit, or --no-rate-limit)"),
            None => format!("{who} on {local} answers other hosts with no rate limit (--no-rate-limit)"),
        })
    }
}

fn is_loopback(local: SocketAddr) -> bool {
    local.ip().to_canonical().is_loopback()
}

/// What replying counted: the summary at exit.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Replies sent.
    pub echoed: u64,
    /// Requests the answer had nothing for (a mock DNS server's undecodable header).
    #[serde(skip_serializing_if = "is_zero")]
    pub unanswerable: u64,
    /// Datagrams the policy refused, by reason.
    pub refused: BTreeMap<&'static str, u64>,
    /// Datagrams over the per-source rate limit.
    pub rate_limited: u64,
    /// Sends that failed (never fatal).
    pub send_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    /// Datagrams refused by the policy, all reasons.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// Queue a reply for this batch: its bytes into `arena`, where it goes into `queued`.
fn queue(
    arena: &mut Vec<u8>,
    queued: &mut Vec<Queued>,
    payload: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) {
    let start = arena.len();
    arena.extend_from_slice(payload);
    queued.push(Queued {
        payload: start..arena.len(),
        to,
        from,
    });
}

/// A reply ready to go in this batch.
struct Queued {
    payload: Range<usize>,
    to: SocketAddr,
    from: Option<IpAddr>,
}

/// Answers on one socket.
pub struct Replier {
    answer: std::rc::Rc<Answer>,
    responder: Responder,
    /// From [`Settings::count_refused`].
    pub count_refused: bool,
    host: Host,
    limiter: Option<SourceLimiter>,
    /// The impairment of replies (they all go down, to the client).
    shaper: Shaper<(SocketAddr, Option<IpAddr>)>,
    fd: RawFd,
    ipv6_socket: bool,
    wildcard: bool,
    verbose: bool,
    /// Payloads of this batch's replies.
    arena: Vec<u8>,
    queued: Vec<Queued>,
    /// The buffers of `sendmmsg`, reused.
    scratch: crate::net::sys::SendScratch,
    /// What happened so far.
    pub counts: Counts,
}

impl Replier {
    /// How long an `--exec` child may run, when that is the answer.
    pub fn exec_timeout(&self) -> Option<std::time::Duration> {
        match &*self.answer {
            Answer::Exec(e) => Some(e.timeout),
            _ => None,
        }
    }

    /// A replier for the socket `fd`, bound to `local`.
    /// Fails only when this host's interfaces cannot be listed: without their broadcast
    /// addresses the policy could not refuse a broadcast request.
    pub fn new(fd: RawFd, local: SocketAddr, settings: &Settings) -> std::io::Result<Self> {
        Ok(Replier {
            answer: std::rc::Rc::clone(&settings.answer),
            responder: settings.responder,
            count_refused: settings.count_refused,
            host: Host {
                local,
                broadcasts: crate::net::sys::broadcast_addrs()?,
            },
            limiter: settings
                .rate_limit
                .map(|r| SourceLimiter::new(r, 2.0 * r, settings.max_sources)),
            shaper: Shaper::new(settings.impairment, settings.seed),
            fd,
            ipv6_socket: local.is_ipv6(),
            wildcard: local.ip().is_unspecified(),
            verbose: tracing::enabled!(tracing::Level::INFO),
            arena: Vec::with_capacity(64 * 1024),
            queued: Vec::with_capacity(SEND_BATCH),
            scratch: crate::net::sys::SendScratch::default(),
            counts: Counts::default(),
        })
    }

    /// Whether replies need each datagram's destination (PKTINFO): on a wildcard bind,
    /// to tell broadcast from unicast and to answer from the address asked.
    pub fn needs_destination(local: SocketAddr) -> bool {
        local.ip().is_unspecified()
    }

    /// Admission: may `meta`'s sender get a reply now? Refusals by the policy are counted
    /// by reason and return `Admit::Refused`; the rate limit's drops `Admit::Limited`.
    pub fn admit(&mut self, meta: &RecvMeta, now: Instant) -> Admit {
        if let Err(reason) =
            policy::check(&self.host, meta.peer, meta.dst, meta.captured < meta.len)
        {
            *self.counts.refused.entry(reason.name()).or_insert(0) += 1;
            if self.verbose {
                info!(
                    "{} {} bytes: refused ({})",
                    meta.peer,
                    meta.len,
                    reason.name()
                );
            }
            return Admit::Refused(reason);
        }
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(meta.peer.ip(), now) {
                self.counts.rate_limited += 1;
                trace!(peer = %meta.peer, "rate limited");
                return Admit::Limited;
            }
        }
        if self.verbose {
            info!("{} {} bytes", meta.peer, meta.len);
        }
        Admit::Yes
    }

    /// Answer the request `meta`, `request`, through the impairment; sent at
    /// [`flush`](Self::flush) or, when delayed, at [`tick`](Self::tick).
    pub fn reply(&mut self, meta: &RecvMeta, request: &[u8], now: Instant) {
        let answer = std::rc::Rc::clone(&self.answer);
        let computed;
        let payload: &[u8] = match &*answer {
            Answer::Echo => request,
            Answer::Fixed(bytes) => bytes,
            Answer::Dns(zone) => match zone.answer(request) {
                Some(bytes) => {
                    computed = bytes;
                    &computed
                }
                None => {
                    self.counts.unanswerable += 1;
                    return;
                }
            },
            // Answered later, from the program's stdout.
            Answer::Exec(_) => return,
        };
        self.send(meta, payload, now);
    }

    /// Send `payload` as the reply to `meta` (already admitted), through the impairment.
    pub fn send(&mut self, meta: &RecvMeta, payload: &[u8], now: Instant) {
        let from = if self.wildcard { meta.dst } else { None };
        let (arena, queued) = (&mut self.arena, &mut self.queued);
        self.shaper
            .push((meta.peer, from), payload, now, &mut |(to, from), p| {
                queue(arena, queued, p, to, from)
            });
    }

    /// Send what is queued, in batches; each reply also goes to `pcap` when given.
    pub fn flush(&mut self, mut pcap: Option<&mut (PcapWriter, SocketAddr)>) {
        let mut start = 0;
        while start < self.queued.len() {
            let arena = &self.arena;
            let reply = |q: &Queued| Reply {
                payload: &arena[q.payload.clone()],
                to: q.to,
                from: q.from,
            };
            let batch = self.queued[start..].iter().take(SEND_BATCH).map(reply);
            match send_replies(self.fd, self.ipv6_socket, batch, &mut self.scratch) {
                Ok(n) => {
                    self.counts.echoed += n as u64;
                    if let Some((writer, local)) = pcap.as_deref_mut() {
                        let now = SystemTime::now();
                        for r in self.queued[start..start + n].iter().map(reply) {
                            let from = r
                                .from
                                .map_or(*local, |ip| SocketAddr::new(ip, local.port()));
                            writer.write(&Record {
                                time: now,
                                from,
                                to: r.to,
                                payload: r.payload,
                                len: r.payload.len(),
                            });
                        }
                    }
                    start += n;
                }
                Err(e) => {
                    // Never fatal: an ICMP error or a full buffer concerns one peer.
                    self.counts.send_errors += 1;
                    if self.counts.send_errors <= SEND_ERROR_LOGS {
                        warn!(
                            "reply to {} failed: {}",
                            self.queued[start].to,
                            crate::base::error::describe_io(&e)
                        );
                    }
                    start += 1;
                }
            }
        }
        self.queued.clear();
        self.arena.clear();
    }

    /// Who answers.
    pub fn responder(&self) -> Responder {
        self.responder
    }

    /// When delayed or held replies are due, if any.
    pub fn wake_at(&self) -> Option<Instant> {
        self.shaper.next_due()
    }

    /// Send the replies due by `now`.
    pub fn tick(&mut self, now: Instant, pcap: Option<&mut (PcapWriter, SocketAddr)>) {
        let (arena, queued) = (&mut self.arena, &mut self.queued);
        self.shaper
            .tick(now, &mut |(to, from), p| queue(arena, queued, p, to, from));
        self.flush(pcap);
    }

    /// What the impairment did.
    pub fn impairment_counts(&self) -> ShaperCounts {
        self.shaper.counts
    }

    /// After the last datagram: let delayed and held replies go (bounded by their delays),
    /// so a client that asked for N replies gets them. A signal cuts it short.
    pub fn drain(&mut self, signals: &Signals, mut pcap: Option<&mut (PcapWriter, SocketAddr)>) {
        while let Some(when) = self.wake_at() {
            if signals.pending().is_some() {
                return;
            }
            if when > Instant::now() && !matches!(signals.wait(None, Some(when)), Ok(Wake::Timeout))
            {
                return;
            }
            self.tick(Instant::now(), pcap.as_deref_mut());
        }
    }

    /// The line a server that answers prints at exit: `echoed 2 of 2 datagrams, refused
    /// 1 (...)...` (`answered` for listen's responders).
    pub fn summary_line(&self, received: u64, filtered: u64) -> String {
        let c = &self.counts;
        let i = self.shaper.counts;
        let verb = match self.responder {
            Responder::Echo => "echoed",
            Responder::Listen => "answered",
        };
        let mut line = format!("{verb} {} of {received} datagrams", c.echoed);
        let refused = c.refused_total();
        if refused > 0 {
            let reasons: Vec<String> = c.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
            line.push_str(&format!(", refused {refused} ({})", reasons.join(", ")));
        }
        let policy = [
            (filtered, "filtered"),
            (c.unanswerable, "not answerable"),
            (c.rate_limited, "rate-limited"),
        ];
        let errors = [(c.send_errors, "send errors")];
        for (n, what) in policy.into_iter().chain(i.labelled()).chain(errors) {
            if n > 0 {
                line.push_str(&format!(", {what} {n}"));
            }
        }
        line
    }
}

/// The admission step's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Answer it.
    Yes,
    /// The policy forbids a reply (counted by reason).
    Refused(Refusal),
    /// Over the sender's rate limit (counted).
    Limited,
}
