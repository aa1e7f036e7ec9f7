//! `dgram echo`: reflect every datagram to its sender (SPEC §4 echo), never larger, never
//! to a forbidden source, rate-limited off loopback, and impaired on demand.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::{debug, info, trace, warn};

use crate::addr::parse_local;
use crate::cli::EchoArgs;
use crate::exit::{Ending, Unmet};
use crate::filter::SourceFilter;
use crate::impair::{Delayed, Impairment, Rng, TimerQueue};
use crate::limiter::SourceLimiter;
use crate::output::Format;
use crate::policy::{self, Host, Refusal};
use crate::recv::{self, Handler, Limits, Stop};
use crate::signal::Signals;
use crate::stats::Summary;
use crate::sys::{send_replies, Ancillary, RecvBatch, RecvMeta, Reply};

/// Default per-source limit off loopback (SPEC §4 echo).
const DEFAULT_RATE_LIMIT: f64 = 1000.0;
/// Delayed replies held at most; beyond, replies are dropped and counted.
const TIMER_CAPACITY: usize = 100_000;
/// A reordered reply is held at most this long waiting for a next reply.
const MAX_HOLD: Duration = Duration::from_millis(100);
/// Send errors logged before further ones are only counted.
const SEND_ERROR_LOGS: u64 = 5;

/// Echo's counters: the summary at exit.
#[derive(Debug, Default, Serialize)]
struct Counts {
    received: u64,
    bytes: u64,
    echoed: u64,
    filtered: u64,
    refused: BTreeMap<&'static str, u64>,
    rate_limited: u64,
    impairment_dropped: u64,
    duplicated: u64,
    delayed: u64,
    reordered: u64,
    send_errors: u64,
}

/// A reply ready to go in this batch.
struct Queued {
    payload: Range<usize>,
    to: SocketAddr,
    from: Option<IpAddr>,
}

struct Echo {
    host: Host,
    filter: SourceFilter,
    limiter: Option<SourceLimiter>,
    impairment: Option<(Impairment, Rng)>,
    fd: std::os::fd::RawFd,
    ipv6_socket: bool,
    wildcard: bool,
    verbose: bool,
    /// Payloads of this batch's replies, copied out of the receive buffers.
    arena: Vec<u8>,
    queued: Vec<Queued>,
    timers: TimerQueue,
    held: Option<(Delayed, Instant)>,
    seq: u64,
    counts: Counts,
    /// With --pcap: requests and replies, and our address.
    pcap: Option<(crate::pcap::PcapWriter, SocketAddr)>,
}

impl Echo {
    fn refuse(&mut self, reason: Refusal, meta: &RecvMeta) {
        *self.counts.refused.entry(reason.name()).or_insert(0) += 1;
        if self.verbose {
            info!(
                "{} {} bytes: refused ({})",
                meta.peer,
                meta.len,
                reason.name()
            );
        }
    }

    fn queue(&mut self, payload: &[u8], to: SocketAddr, from: Option<IpAddr>) {
        let start = self.arena.len();
        self.arena.extend_from_slice(payload);
        self.queued.push(Queued {
            payload: start..self.arena.len(),
            to,
            from,
        });
    }

    /// Queue a reply now, or hold it back (reorder); a held reply goes right after the
    /// next one.
    fn release(&mut self, d: Delayed, now: Instant) {
        if d.hold && self.held.is_none() {
            self.counts.reordered += 1;
            self.held = Some((d, now + MAX_HOLD));
            return;
        }
        self.queue(&d.payload, d.to, d.from);
        if let Some((h, _)) = self.held.take() {
            self.queue(&h.payload, h.to, h.from);
        }
    }

    fn send_queued(&mut self) {
        let mut start = 0;
        while start < self.queued.len() {
            let replies: Vec<Reply<'_>> = self.queued[start..]
                .iter()
                .take(64)
                .map(|q| Reply {
                    payload: &self.arena[q.payload.clone()],
                    to: q.to,
                    from: q.from,
                })
                .collect();
            match send_replies(self.fd, self.ipv6_socket, &replies) {
                Ok(n) => {
                    self.counts.echoed += n as u64;
                    if let Some((pcap, local)) = &mut self.pcap {
                        let now = SystemTime::now();
                        for r in &replies[..n] {
                            let from = r
                                .from
                                .map_or(*local, |ip| SocketAddr::new(ip, local.port()));
                            if pcap
                                .write(now, from, r.to, r.payload, r.payload.len())
                                .is_err()
                            {
                                self.counts.send_errors += 1;
                            }
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
                            replies[0].to,
                            crate::exit::describe_io(&e)
                        );
                    }
                    start += 1;
                }
            }
        }
        self.queued.clear();
        self.arena.clear();
    }
}

impl Handler for Echo {
    fn datagram(
        &mut self,
        meta: RecvMeta,
        payload: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<bool> {
        if !self.filter.admits(meta.peer.ip()) {
            self.counts.filtered += 1;
            return Ok(false);
        }
        if let Some((pcap, local)) = &mut self.pcap {
            pcap.write_arrival(time, &meta, *local, payload)
                .map_err(|e| {
                    anyhow::Error::new(crate::exit::IoError(e)).context("failed to write --pcap")
                })?;
        }
        self.counts.received += 1;
        self.counts.bytes += meta.len as u64;
        if let Err(reason) =
            policy::check(&self.host, meta.peer, meta.dst, meta.captured < meta.len)
        {
            self.refuse(reason, &meta);
            return Ok(false);
        }
        let now = Instant::now();
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(meta.peer.ip(), now) {
                self.counts.rate_limited += 1;
                trace!(peer = %meta.peer, "rate limited");
                return Ok(true);
            }
        }
        if self.verbose {
            info!("{} {} bytes", meta.peer, meta.len);
        }
        let from = if self.wildcard { meta.dst } else { None };
        let Some((impairment, rng)) = &mut self.impairment else {
            self.queue(payload, meta.peer, from);
            return Ok(true);
        };
        let decision = impairment.decide(rng);
        if decision.drop {
            self.counts.impairment_dropped += 1;
            return Ok(true);
        }
        if decision.copies == 2 {
            self.counts.duplicated += 1;
        }
        for copy in 0..decision.copies {
            self.seq += 1;
            let d = Delayed {
                due: now + decision.delay,
                seq: self.seq,
                to: meta.peer,
                from,
                payload: payload.to_vec(),
                // Only the first copy of a duplicated reply is held back.
                hold: decision.hold && copy == 0,
            };
            if decision.delay.is_zero() {
                self.release(d, now);
            } else if self.timers.push(d) {
                self.counts.delayed += 1;
            } else {
                self.counts.impairment_dropped += 1;
            }
        }
        Ok(true)
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        if let Some((pcap, _)) = &mut self.pcap {
            pcap.flush().map_err(|e| {
                anyhow::Error::new(crate::exit::IoError(e)).context("failed to write --pcap")
            })?;
        }
        Ok(())
    }

    fn batch_end(&mut self) -> anyhow::Result<()> {
        self.send_queued();
        Ok(())
    }

    fn wake_at(&self) -> Option<Instant> {
        [self.timers.next_due(), self.held.as_ref().map(|(_, t)| *t)]
            .into_iter()
            .flatten()
            .min()
    }

    fn tick(&mut self, now: Instant) -> anyhow::Result<()> {
        while let Some(d) = self.timers.pop_due(now) {
            self.release(d, now);
        }
        if self
            .held
            .as_ref()
            .is_some_and(|(_, deadline)| *deadline <= now)
        {
            let (h, _) = self.held.take().expect("checked");
            self.queue(&h.payload, h.to, h.from);
        }
        self.send_queued();
        Ok(())
    }
}

/// Run `dgram echo`.
pub fn run(args: EchoArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let family = args.family.family();
    let local = parse_local(&args.addr, family)?;
    let opts = &args.receive;
    let mut options = args.socket.options(family);
    options.reuse_port = opts.reuse_port;
    options.recv_buffer_default = Some(recv::DEFAULT_RCVBUF);
    let bound = crate::socket::bind(local, &options)?;
    let fd = bound.socket.as_raw_fd();
    // Destinations matter only on a wildcard bind: a socket bound to one unicast address
    // receives only datagrams sent to it, never a broadcast or multicast, and its replies
    // leave from that address anyway. Elsewhere PKTINFO would be per-datagram work for
    // nothing.
    let pktinfo =
        local.ip().is_unspecified() && crate::sys::enable_pktinfo(fd, local.is_ipv6()).is_ok();
    let gro = opts.gro && crate::sys::enable_gro(fd).is_ok();
    recv::announce(bound.socket.local_addr()?, opts.ready_file.as_deref())?;
    let socket: UdpSocket = bound.warn();
    let local = socket.local_addr()?;

    let loopback = crate::addr::normalize_ip(local.ip()).is_loopback();
    let rate = match (args.no_rate_limit, args.rate_limit) {
        (true, _) => None,
        (false, Some(r)) => Some(r),
        (false, None) if loopback => None,
        (false, None) => Some(DEFAULT_RATE_LIMIT),
    };
    if !loopback {
        match rate {
            Some(r) => warn!("echo on {local} answers other hosts: rate limit of {r} replies/s per source (change it with --rate-limit, or --no-rate-limit)"),
            None => warn!("echo on {local} answers other hosts with no rate limit (--no-rate-limit)"),
        }
    }
    let impairment = Impairment {
        drop: args.drop,
        delay: args.delay.unwrap_or_default(),
        jitter: args.jitter.unwrap_or_default(),
        duplicate: args.duplicate,
        reorder: args.reorder,
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    if impairment.is_active() {
        info!("impairment {impairment:?}, seed {seed}");
    }
    let mut echo = Echo {
        host: Host {
            local,
            broadcasts: crate::sys::broadcast_addrs(),
        },
        filter: SourceFilter::new(opts.allow.clone(), opts.deny.clone()),
        limiter: rate.map(|r| SourceLimiter::new(r, 2.0 * r, args.max_sources as usize)),
        impairment: impairment.is_active().then(|| (impairment, Rng::new(seed))),
        fd,
        ipv6_socket: local.is_ipv6(),
        wildcard: local.ip().is_unspecified(),
        verbose: tracing::enabled!(tracing::Level::INFO),
        arena: Vec::with_capacity(64 * 1024),
        queued: Vec::with_capacity(recv::BATCH),
        timers: TimerQueue::new(TIMER_CAPACITY),
        held: None,
        seq: 0,
        counts: Counts::default(),
        pcap: match &opts.pcap {
            Some(path) => Some((
                crate::pcap::PcapWriter::create(path).map_err(|e| {
                    anyhow::Error::new(crate::exit::IoError(e))
                        .context(format!("failed to create --pcap {}", path.display()))
                })?,
                local,
            )),
            None => None,
        },
    };
    debug!(%local, pktinfo, gro, ?rate, "echo");
    let mut batch = RecvBatch::with(recv::BATCH, opts.max_size, Ancillary { gro, pktinfo });
    let limits = Limits {
        count: opts.count,
        idle: opts.timeout,
        duration: opts.duration,
    };
    let start = Instant::now();
    let (stop, _) = recv::run(&socket, &mut batch, limits, signals, &mut echo)?;
    if !matches!(stop, Stop::Signal(_)) {
        drain(&mut echo, signals);
    }
    echo.idle()?;
    report(
        &echo.counts,
        opts.stats,
        opts.format == Format::Json,
        start.elapsed(),
        &socket,
    );
    match (stop, opts.count) {
        (Stop::Signal(sig), _) => Ok(Ending::Signal(sig)),
        (Stop::Count, _) | (_, None) => Ok(Ending::Done),
        (_, Some(want)) => {
            let counted = echo.counts.received - echo.counts.refused.values().sum::<u64>();
            Err(Unmet(format!(
                "echoed for {counted} of {want} datagrams before the run ended"
            ))
            .into())
        }
    }
}

/// After the last datagram: let delayed and held replies go (bounded by their delays),
/// so a client that asked for N replies gets them.
fn drain(echo: &mut Echo, signals: &Signals) {
    while let Some(when) = echo.wake_at() {
        if signals.pending().is_some() {
            return;
        }
        let now = Instant::now();
        if when > now
            && !matches!(
                signals.wait(None, Some(when)),
                Ok(crate::signal::Wake::Timeout)
            )
        {
            return;
        }
        let _ = echo.tick(Instant::now());
    }
}

fn report(c: &Counts, stats: bool, json: bool, elapsed: Duration, socket: &UdpSocket) {
    use std::io::Write;
    if json && stats {
        let mut summary = Summary {
            sent: Some(c.echoed),
            received: Some(c.received),
            bytes: c.bytes,
            filtered: Some(c.filtered),
            kernel_drops: crate::sys::kernel_drops(socket.as_raw_fd()),
            ..Summary::default()
        };
        summary.finish(elapsed, c.received);
        let mut v = serde_json::to_value(&summary).expect("a summary serializes");
        let extra = serde_json::to_value(c).expect("counts serialize");
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for k in [
                "refused",
                "rate_limited",
                "impairment_dropped",
                "duplicated",
                "delayed",
                "reordered",
                "send_errors",
                "echoed",
            ] {
                obj.insert(k.to_string(), extra[k].clone());
            }
        }
        let _ = std::io::stderr().write_all(format!("{v}\n").as_bytes());
        return;
    }
    if !tracing::enabled!(tracing::Level::WARN) && !stats {
        return; // -q
    }
    let refused: u64 = c.refused.values().sum();
    let mut line = format!("echoed {} of {} datagrams", c.echoed, c.received);
    if refused > 0 {
        let reasons: Vec<String> = c.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line.push_str(&format!(", refused {refused} ({})", reasons.join(", ")));
    }
    for (n, what) in [
        (c.filtered, "filtered"),
        (c.rate_limited, "rate-limited"),
        (c.impairment_dropped, "dropped by impairment"),
        (c.duplicated, "duplicated"),
        (c.delayed, "delayed"),
        (c.reordered, "reordered"),
        (c.send_errors, "send errors"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {what} {n}"));
        }
    }
    if stats {
        let rate = c.received as f64 / elapsed.as_secs_f64().max(1e-9);
        line.push_str(&format!(
            " in {:.3}s ({rate:.1} datagrams/s)",
            elapsed.as_secs_f64()
        ));
        if let Some(d) = crate::sys::kernel_drops(socket.as_raw_fd()) {
            line.push_str(&format!(", kernel drops {d}"));
        }
    }
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}
