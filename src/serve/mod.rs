//! One server for every receiving subcommand (`listen`, `echo`, `multicast join`): set-up
//! (GRO, PKTINFO, group joins, the announcement, the ready file, pcap), the receive loop
//! with its filter, counters, output and stats, answers through [`crate::serve::reply`], and the
//! stop → exit code mapping.

pub mod exec;
pub mod limiter;
pub mod policy;
pub mod reply;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Instant, SystemTime};

use tracing::{trace, warn};

use crate::base::error::{Ending, IoContext, Unmet};
use crate::cli::{ReceiveOpts, ServerOpts};
use crate::net::filter::SourceFilter;
use crate::net::recv::{self, Handler, Limits, Stop};
use crate::net::signal::Signals;
use crate::net::socket::Bound;
use crate::net::sys::{RecvBatch, RecvMeta};
use crate::report::output::{Datagram, Format, Output};
use crate::report::stats::Summary;
use crate::serve::reply::{Admit, Replier};

/// Work on the socket before the announcement (joining groups); returns lines for stderr
/// to follow it (`joined GROUP on IFACE`).
pub type Prepare<'a> = &'a dyn Fn(&UdpSocket) -> anyhow::Result<Vec<String>>;

/// What a caller adds around the common loop.
#[derive(Default)]
pub struct Extras<'a> {
    /// How datagrams are printed on stdout; `None`: not at all (echo without `--format`).
    pub format: Option<Format>,
    /// Answer every admitted datagram (echo, listen's responders), under these settings.
    pub reply: Option<crate::serve::reply::Settings>,
    /// Called before `listening on`; its lines are printed after it.
    pub before_receive: Option<Prepare<'a>>,
    /// Called when the run ends by its timeout or duration with nothing received.
    pub on_silence: Option<&'a dyn Fn()>,
}

/// Truncation warnings printed before further ones are only counted.
const TRUNCATION_WARNINGS: u64 = 5;

/// Prints what passes the filter, answers it when asked, and counts everything.
struct Printer {
    filter: SourceFilter,
    output: Option<Output>,
    replier: Option<crate::serve::reply::Replier>,
    /// `--exec`: the workers that compute replies.
    exec: Option<crate::serve::exec::ExecPool>,
    /// ICMP errors the replies met, by kind.
    icmp: crate::net::icmp::Tally,
    local: std::net::SocketAddr,
    received: u64,
    bytes: u64,
    truncated: u64,
    filtered: u64,
    /// With --stats: what --seq headers say.
    seq: Option<crate::wire::seq::Accounting>,
    /// With --pcap: the capture, and our address (the destination of what arrives).
    pcap: Option<(crate::wire::pcap::PcapWriter, std::net::SocketAddr)>,
    /// With --stats-interval: the next report, and the counters at the last one.
    interval: Option<Interval>,
}

/// `--stats-interval`: a line every `every`, about the datagrams since the last one.
struct Interval {
    every: std::time::Duration,
    start: Instant,
    next: Instant,
    last_received: u64,
    last_bytes: u64,
    json: bool,
    fd: std::os::fd::RawFd,
}

impl Handler for Printer {
    fn datagram(
        &mut self,
        meta: RecvMeta,
        payload: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<bool> {
        if !self.filter.admits(meta.peer.ip()) {
            self.filtered += 1;
            trace!(peer = %meta.peer, len = meta.len, "filtered");
            return Ok(false);
        }
        self.received += 1;
        self.bytes += meta.len as u64;
        if meta.captured < meta.len {
            self.truncated += 1;
            if self.truncated <= TRUNCATION_WARNINGS {
                warn!(
                    "truncated datagram from {}: {} bytes, kept {} (raise --max-size){}",
                    meta.peer,
                    meta.len,
                    meta.captured,
                    if self.truncated == TRUNCATION_WARNINGS {
                        "; further truncations are only counted (--stats)"
                    } else {
                        ""
                    }
                );
            }
        }
        if let Some(seq) = &mut self.seq {
            seq.record(meta.peer, payload, crate::wire::seq::now_ns());
        }
        if let Some((pcap, local)) = &mut self.pcap {
            pcap.write_arrival(time, &meta, *local, payload)
                .io_context(|| "failed to write --pcap".into())?;
        }
        trace!(peer = %meta.peer, len = meta.len, "datagram");
        if let Some(output) = &mut self.output {
            output.write(&Datagram {
                peer: meta.peer,
                payload,
                len: meta.len,
                time,
                rtt: None,
                leg: None,
            })?;
        }
        let Some(replier) = &mut self.replier else {
            return Ok(true);
        };
        let now = Instant::now();
        match replier.admit(&meta, now) {
            Admit::Yes => match &mut self.exec {
                Some(pool) => {
                    let job = crate::serve::exec::Job {
                        meta,
                        payload: payload.to_vec(),
                        local: self.local,
                    };
                    if !pool.submit(job) {
                        trace!(peer = %meta.peer, "--exec queue full: dropped");
                    }
                }
                None => replier.reply(&meta, payload, now),
            },
            // Not counted toward --count: only what passed the filters and the policy.
            Admit::Refused(_) => return Ok(replier.count_refused),
            Admit::Limited => {}
        }
        Ok(true)
    }

    fn batch_end(&mut self) -> anyhow::Result<()> {
        if let Some(replier) = &mut self.replier {
            replier.flush(self.pcap.as_mut());
        }
        Ok(())
    }

    fn icmp(&mut self, report: crate::net::sys::ErrorReport) {
        if self.icmp.add(&report) <= 3 {
            tracing::info!(
                "{}",
                crate::net::icmp::message(&report, report.dest.unwrap_or(self.local), None)
            );
        }
    }

    fn extra_fd(&self) -> Option<std::os::fd::RawFd> {
        self.exec.as_ref().map(crate::serve::exec::ExecPool::fd)
    }

    fn extra_ready(&mut self) -> anyhow::Result<()> {
        self.exec_replies();
        Ok(())
    }

    fn wake_at(&self) -> Option<Instant> {
        let interval = self.interval.as_ref().map(|i| i.next);
        let replies = self.replier.as_ref().and_then(|r| r.wake_at());
        interval.into_iter().chain(replies).min()
    }

    fn tick(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(replier) = &mut self.replier {
            if replier.wake_at().is_some_and(|w| w <= now) {
                replier.tick(now, self.pcap.as_mut());
            }
        }
        let Some(iv) = &mut self.interval else {
            return Ok(());
        };
        if now < iv.next {
            return Ok(());
        }
        let (from, to) = (
            (iv.next - iv.every - iv.start).as_secs_f64(),
            (now - iv.start).as_secs_f64(),
        );
        let (n, bytes) = (self.received - iv.last_received, self.bytes - iv.last_bytes);
        let rate = n as f64 / (to - from).max(1e-9);
        let drops = crate::net::sys::kernel_drops(iv.fd);
        let line = if iv.json {
            serde_json::json!({"interval_s": [from, to], "received": n, "bytes": bytes, "rate_pps": rate, "kernel_drops": drops})
                .to_string()
        } else {
            let drops = drops.map_or("n/a".to_string(), |d| d.to_string());
            format!("[{from:7.2}-{to:7.2}s] received {n} datagrams, {bytes} bytes, {rate:.1} datagrams/s, kernel drops {drops}")
        };
        iv.last_received = self.received;
        iv.last_bytes = self.bytes;
        // Skip intervals missed while busy rather than print a burst of them.
        while iv.next <= now {
            iv.next += iv.every;
        }
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
        Ok(())
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        if let Some((pcap, _)) = &mut self.pcap {
            pcap.flush()
                .io_context(|| "failed to write --pcap".into())?;
        }
        match &mut self.output {
            Some(output) => output.flush(),
            None => Ok(()),
        }
    }
}

impl Printer {
    /// Send the replies of the `--exec` jobs that are done.
    fn exec_replies(&mut self) {
        let (Some(pool), Some(replier)) = (&mut self.exec, &mut self.replier) else {
            return;
        };
        let now = Instant::now();
        for done in pool.take_done() {
            match done.outcome {
                crate::serve::exec::Outcome::Reply(bytes) => replier.send(&done.meta, &bytes, now),
                other => trace!(peer = %done.meta.peer, ?other, "--exec: no reply"),
            }
        }
        replier.flush(self.pcap.as_mut());
    }

    /// After the last request: wait for the `--exec` jobs still running (each bounded by
    /// its timeout) and send their replies. A signal cuts it short.
    fn finish_exec(&mut self, signals: &Signals, timeout: std::time::Duration) {
        let Some(fd) = self.exec.as_ref().map(crate::serve::exec::ExecPool::fd) else {
            return;
        };
        let deadline = Instant::now() + timeout + std::time::Duration::from_secs(1);
        while self.exec.as_ref().is_some_and(|p| p.in_flight() > 0) {
            match signals.wait(Some(fd), Some(deadline)) {
                Ok(crate::net::signal::Wake::Readable) => self.exec_replies(),
                _ => return,
            }
        }
    }
}

/// Bind a server's socket to its ADDR (bare PORT: loopback), with the receive buffer
/// servers ask for by default; a server that `replies` also asks for its replies' ICMP
/// errors (SPEC §9) and, on a wildcard bind, each datagram's destination (PKTINFO: a
/// socket bound to one unicast address receives no broadcast or multicast, and its
/// replies leave from that address anyway).
pub fn bind(opts: &ServerOpts, replies: bool) -> anyhow::Result<Bound> {
    let family = opts.family.family();
    let local = local_address(opts)?;
    let mut options = opts.socket.options(family);
    options.reuse_port = opts.receive.reuse_port;
    options.recv_buffer_default = Some(recv::DEFAULT_RCVBUF);
    options.gro = opts.receive.gro;
    options.recv_errors = replies;
    options.pktinfo = replies && Replier::needs_destination(local);
    crate::net::socket::bind(local, &options)
}

/// The address a server binds (a bare PORT is loopback), checked with no socket opened.
pub fn local_address(opts: &ServerOpts) -> anyhow::Result<std::net::SocketAddr> {
    Ok(crate::net::addr::parse_local(
        &opts.addr,
        opts.family.family(),
    )?)
}

/// Announce, receive and print until a limit or a signal; shared by every receiving
/// subcommand that prints what it gets.
pub fn serve(
    bound: Bound,
    opts: &ReceiveOpts,
    signals: &Signals,
    extras: Extras<'_>,
) -> anyhow::Result<Ending> {
    let local = bound.socket.local_addr()?;
    let (gro, pktinfo) = (bound.gro, bound.pktinfo);
    // Join groups and the like first: whoever reacts to `listening on` (or the ready file)
    // must not race the socket's set-up. Their lines follow the announcement.
    let after = match extras.before_receive {
        Some(prepare) => prepare(&bound.socket)?,
        None => Vec::new(),
    };
    // Then everything it works with (stdout's writer, the --exec workers, the --pcap
    // file, the replier): ready means ready, and a failure here is never preceded by a
    // `listening on` line.
    let fd = bound.socket.as_raw_fd();
    let json = opts.format == Some(Format::Json);
    let exec_settings = extras.reply.as_ref().and_then(|s| match &*s.answer {
        crate::serve::reply::Answer::Exec(e) => Some(e.clone()),
        _ => None,
    });
    let mut printer = Printer {
        icmp: crate::net::icmp::Tally::default(),
        exec: exec_settings
            .as_ref()
            .map(crate::serve::exec::ExecPool::start)
            .transpose()
            .io_context(|| "failed to start the --exec workers".into())?,
        local,
        filter: SourceFilter::new(opts.allow.clone(), opts.deny.clone()),
        output: extras
            .format
            .map(|f| Output::stdout(f).map(|o| o.with_dns(opts.dns)))
            .transpose()?,
        replier: extras
            .reply
            .as_ref()
            .map(|settings| Replier::new(fd, local, settings)),
        received: 0,
        bytes: 0,
        truncated: 0,
        filtered: 0,
        seq: opts.stats.then(crate::wire::seq::Accounting::default),
        pcap: match &opts.pcap {
            Some(path) => Some((
                crate::wire::pcap::PcapWriter::create(path)
                    .io_context(|| format!("failed to create --pcap {}", path.display()))?,
                local,
            )),
            None => None,
        },
        interval: opts
            .stats_interval
            .filter(|d| !d.is_zero())
            .map(|every| Interval {
                every,
                start: Instant::now(),
                next: Instant::now() + every,
                last_received: 0,
                last_bytes: 0,
                json,
                fd,
            }),
    };
    recv::announce(local, opts.ready_file.as_deref())?;
    if let Some(warning) = extras.reply.as_ref().and_then(|s| s.open_warning(local)) {
        tracing::warn!("{warning}");
    }
    if let Some(s) = extras.reply.as_ref().filter(|s| s.impairment.is_active()) {
        tracing::info!("impairment {:?}, seed {}", s.impairment, s.seed);
    }
    let socket = &bound.warn();
    for line in after {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    }
    let limits = Limits {
        count: opts.count,
        idle: opts.timeout,
        duration: opts.duration,
    };
    let ancillary = crate::net::sys::Ancillary { gro, pktinfo };
    let mut batch = RecvBatch::with(recv::BATCH, opts.max_size, ancillary);
    tracing::debug!(
        local = %socket.local_addr()?,
        gro,
        rcvbuf = crate::net::socket::recv_buffer_size(socket),
        "receiving"
    );
    let start = Instant::now();
    let result = recv::run(socket, &mut batch, limits, signals, &mut printer);
    // Replies of running --exec jobs, and delayed and held replies, still go, unless a
    // signal ended the run.
    if let Ok((stop, _)) = &result {
        if !matches!(stop, Stop::Signal(_)) {
            if let Some(e) = &exec_settings {
                printer.finish_exec(signals, e.timeout);
            }
            if let Some(replier) = &mut printer.replier {
                replier.drain(signals, printer.pcap.as_mut());
            }
        }
    }
    // ICMP errors already queued (for replies sent up to the end) are counted too.
    recv::drain_errors(socket.as_raw_fd(), &mut printer);
    // Whatever happened, what was received is written before anything else is said.
    let flushed = printer.idle();
    let (stop, counted) = result?;
    flushed?;
    if let Some(replier) = &printer.replier {
        report_replies(&printer, replier, opts.stats, json, start.elapsed(), socket);
    } else if opts.stats {
        let mut summary = Summary {
            received: Some(printer.received),
            bytes: printer.bytes,
            truncated: Some(printer.truncated),
            filtered: Some(printer.filtered),
            kernel_drops: crate::net::sys::kernel_drops(socket.as_raw_fd()),
            ..Summary::default()
        };
        if let Some(seq) = printer.seq.as_ref().filter(|s| s.has_seq()) {
            let (lost, reordered, duplicates) = seq.totals();
            summary.lost = Some(lost);
            summary.reordered = Some(reordered);
            summary.duplicates = Some(duplicates);
            summary.non_seq = Some(seq.non_seq + seq.untracked);
            summary.owd_us = seq.owd.summary();
        }
        summary.finish(start.elapsed(), printer.received);
        summary.print(json);
    }
    if printer.received == 0 && matches!(stop, Stop::Idle | Stop::Duration) {
        if let Some(on_silence) = extras.on_silence {
            on_silence();
        }
    }
    match (stop, opts.count) {
        (Stop::Signal(sig), _) => Ok(Ending::Signal(sig)),
        (Stop::Count, _) => Ok(Ending::Done),
        (_, Some(want)) => {
            let why = if stop == Stop::Idle {
                format!(
                    "nothing for {}",
                    crate::base::units::human_duration(opts.timeout.unwrap_or_default())
                )
            } else {
                format!(
                    "--duration {} ended",
                    crate::base::units::human_duration(opts.duration.unwrap_or_default())
                )
            };
            let what = if printer.replier.is_some() {
                "answered"
            } else {
                "received"
            };
            Err(Unmet(format!("{what} {counted} of {want} datagrams ({why})")).into())
        }
        (_, None) => Ok(Ending::Done),
    }
}

/// The summary of a server that answers: with `--stats --format json` one object (the
/// summary's keys, `sent` = replies, and the reply counters); otherwise the one line
/// `echoed N of M datagrams, ...` (unless `-q`), with rate and kernel drops under `--stats`.
fn report_replies(
    printer: &Printer,
    replier: &Replier,
    stats: bool,
    json: bool,
    elapsed: std::time::Duration,
    socket: &std::net::UdpSocket,
) {
    use std::io::Write;
    let drops = crate::net::sys::kernel_drops(socket.as_raw_fd());
    let c = &replier.counts;
    if json && stats {
        let mut summary = Summary {
            sent: Some(c.echoed),
            received: Some(printer.received),
            bytes: printer.bytes,
            truncated: Some(printer.truncated),
            filtered: Some(printer.filtered),
            kernel_drops: drops,
            ..Summary::default()
        };
        summary.finish(elapsed, printer.received);
        let mut v = serde_json::to_value(&summary).expect("a summary serializes");
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "icmp_errors".to_string(),
                serde_json::to_value(&printer.icmp).unwrap_or_default(),
            );
        }
        if let (Some(obj), Some(pool)) = (v.as_object_mut(), &printer.exec) {
            if let Ok(serde_json::Value::Object(exec)) = serde_json::to_value(&pool.counts) {
                obj.extend(exec);
            }
        }
        if let (Some(obj), Ok(serde_json::Value::Object(mut extra))) =
            (v.as_object_mut(), serde_json::to_value(c))
        {
            if replier.name() != "echo" {
                // A responder's replies are not echoes.
                if let Some(n) = extra.remove("echoed") {
                    extra.insert("replied".to_string(), n);
                }
            }
            obj.extend(extra);
        }
        let _ = std::io::stderr().write_all(format!("{v}\n").as_bytes());
        return;
    }
    if !tracing::enabled!(tracing::Level::WARN) && !stats {
        return; // -q
    }
    let mut line = replier.summary_line(printer.received, printer.filtered);
    if printer.icmp.total() > 0 {
        line.push_str(&format!(", ICMP errors {}", printer.icmp.summary()));
    }
    if let Some(pool) = &printer.exec {
        let e = &pool.counts;
        for (n, what) in [
            (e.exec_failures, "exec failures"),
            (e.exec_timeouts, "exec timeouts"),
            (e.exec_too_large, "exec replies too large"),
            (e.exec_queue_drops, "dropped by a full --exec queue"),
        ] {
            if n > 0 {
                line.push_str(&format!(", {what} {n}"));
            }
        }
    }
    if stats {
        let rate = printer.received as f64 / elapsed.as_secs_f64().max(1e-9);
        line.push_str(&format!(
            " in {:.3}s ({rate:.1} datagrams/s)",
            elapsed.as_secs_f64()
        ));
        if let Some(d) = drops {
            line.push_str(&format!(", kernel drops {d}"));
        }
    }
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}
