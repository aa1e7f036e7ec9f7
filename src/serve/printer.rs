//! The receive loop's handler for every server: the filter, the counters, `--seq`
//! accounting, `--pcap`, stdout, `--stats-interval` lines, and the answers (direct or
//! through the `--exec` workers).

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant, SystemTime};

use tracing::{trace, warn};

use crate::base::error::IoContext;
use crate::net::filter::SourceFilter;
use crate::net::icmp::{self, Tally};
use crate::net::recv::Handler;
use crate::net::signal::{Signals, Wake};
use crate::net::sys::{ErrorReport, RecvMeta};
use crate::report::output::{Datagram, Output};
use crate::serve::exec::{ExecPool, Job, Outcome};
use crate::serve::reply::{Admit, Replier, Settings};
use crate::serve::talk::Talk;
use crate::serve::Config;
use crate::wire::pcap::{PcapWriter, Record};
use crate::wire::seq::{self, Accounting};

/// Truncation warnings printed before further ones are only counted.
const TRUNCATION_WARNINGS: u64 = 5;

/// Prints what passes the filter, answers it when asked, and counts everything.
pub(crate) struct Printer {
    pub(crate) filter: SourceFilter,
    pub(crate) output: Option<Output>,
    pub(crate) replier: Option<Replier>,
    /// `--exec`: the workers that compute replies.
    pub(crate) exec: Option<ExecPool>,
    /// ICMP errors the replies met, by kind.
    pub(crate) icmp: Tally,
    pub(crate) local: SocketAddr,
    pub(crate) received: u64,
    pub(crate) bytes: u64,
    pub(crate) truncated: u64,
    pub(crate) filtered: u64,
    /// With --stats: what --seq headers say.
    pub(crate) seq: Option<Accounting>,
    /// With --pcap: the capture, and our address (the destination of what arrives).
    pub(crate) pcap: Option<(PcapWriter, SocketAddr)>,
    /// With --stats-interval: the next report, and the counters at the last one.
    pub(crate) interval: Option<Interval>,
    /// Lines typed back to a peer (two-way listen).
    pub(crate) talk: Option<Talk>,
    /// The socket, for the typed lines.
    pub(crate) fd: RawFd,
}

/// `--stats-interval`: a line every `every`, about the datagrams since the last one.
pub(crate) struct Interval {
    every: Duration,
    start: Instant,
    next: Instant,
    last_received: u64,
    last_bytes: u64,
    /// `--seq` datagrams missing at the last line.
    last_lost: u64,
    json: bool,
    fd: RawFd,
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
        if let Some(talk) = &mut self.talk {
            talk.heard(meta.peer);
        }
        if meta.captured < meta.len {
            self.note_truncated(&meta);
        }
        if let Some(seq) = &mut self.seq {
            // The kernel's arrival time: a batch read at once still has its spacing.
            let at = meta.received_ns.unwrap_or_else(seq::now_ns);
            seq.record(meta.peer, payload, at);
        }
        if let Some((pcap, local)) = &mut self.pcap {
            // Arrived at our address, or at the one PKTINFO names on a wildcard bind.
            let to = meta
                .dst
                .map_or(*local, |ip| SocketAddr::new(ip, local.port()));
            pcap.write(&Record {
                time,
                from: meta.peer,
                to,
                payload,
                len: meta.len,
            });
        }
        trace!(peer = %meta.peer, len = meta.len, "datagram");
        if let Some(output) = &mut self.output {
            output.write(&Datagram {
                peer: meta.peer.into(),
                payload,
                len: meta.len,
                time,
                rtt: None,
                leg: None,
            })?;
        }
        Ok(self.answer(meta, payload))
    }

    fn batch_end(&mut self) -> anyhow::Result<()> {
        if let Some(replier) = &mut self.replier {
            replier.flush(self.pcap.as_mut());
        }
        Ok(())
    }

    fn icmp(&mut self, report: ErrorReport) {
        if self.icmp.add(&report) <= 3 {
            tracing::info!(
                "{}",
                icmp::message(&report, report.dest.unwrap_or(self.local), None)
            );
        }
    }

    fn extra_fds(&self) -> [Option<RawFd>; 2] {
        [
            self.exec.as_ref().map(ExecPool::fd),
            self.talk.as_ref().and_then(Talk::fd),
        ]
    }

    fn extra_ready(&mut self, which: usize) -> anyhow::Result<()> {
        match which {
            0 => self.exec_replies(),
            _ => {
                if let Some(talk) = &mut self.talk {
                    talk.readable(self.fd, self.local.is_ipv6());
                }
            }
        }
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
        let span = (to - from).max(1e-9);
        let (rate, bitrate) = (n as f64 / span, bytes as f64 * 8.0 / span);
        let drops = crate::net::sys::kernel_drops(iv.fd);
        // With --seq senders: what went missing in this interval, and the jitter now.
        let seq = self.seq.as_ref().filter(|s| s.has_seq()).map(|s| {
            let lost = s.totals().0;
            let new = lost.saturating_sub(iv.last_lost);
            iv.last_lost = lost;
            (new, s.jitter_us().unwrap_or(0.0))
        });
        let line = if iv.json {
            let mut v = serde_json::json!({"interval_s": [from, to], "received": n, "bytes": bytes, "rate_pps": rate, "bitrate_bps": bitrate, "kernel_drops": drops});
            if let Some((lost, jitter)) = seq {
                v["lost"] = lost.into();
                v["jitter_us"] = jitter.into();
            }
            v.to_string()
        } else {
            let drops = drops.map_or("n/a".to_string(), |d| d.to_string());
            let mut line = format!("[{from:7.2}-{to:7.2}s] received {n} datagrams, {bytes} bytes, {rate:.1} datagrams/s, {}, kernel drops {drops}", crate::base::units::human_bitrate(bitrate));
            if let Some((lost, jitter)) = seq {
                let pct = 100.0 * lost as f64 / (n + lost).max(1) as f64;
                line.push_str(&format!(
                    ", lost {lost}/{} ({pct:.2}%), jitter {jitter:.1} µs",
                    n + lost
                ));
            }
            line
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
            pcap.flush();
        }
        match &mut self.output {
            Some(output) => output.flush(),
            None => Ok(()),
        }
    }
}

impl Printer {
    /// A datagram the kernel cut to `--max-size`: counted, and the first few said.
    fn note_truncated(&mut self, meta: &RecvMeta) {
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

    /// Answer an admitted datagram, directly or through the `--exec` workers; returns
    /// whether it counts toward `--count` (a refused one does for listen, not for echo).
    fn answer(&mut self, meta: RecvMeta, payload: &[u8]) -> bool {
        let Some(replier) = &mut self.replier else {
            return true;
        };
        let now = Instant::now();
        match replier.admit(&meta, now) {
            Admit::Yes => match &mut self.exec {
                Some(pool) => {
                    let job = Job {
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
            Admit::Refused(_) => return replier.count_refused,
            Admit::Limited => {}
        }
        true
    }

    /// Everything a server works with, made before it announces itself: stdout's writer,
    /// the `--exec` workers, the `--pcap` file and the replier. Ready means ready, and a
    /// failure here is never preceded by a `listening on` line.
    pub(crate) fn new(
        config: &Config,
        output: Option<Output>,
        reply: Option<&Settings>,
        fd: RawFd,
        local: SocketAddr,
    ) -> anyhow::Result<Printer> {
        let exec = reply
            .and_then(Settings::exec)
            .map(ExecPool::start)
            .transpose()
            .io_context(|| "failed to start the --exec workers".into())?;
        let pcap = match &config.pcap {
            Some(path) => Some((
                PcapWriter::create(path)
                    .io_context(|| format!("failed to create --pcap {}", path.display()))?,
                local,
            )),
            None => None,
        };
        let now = Instant::now();
        let interval = config
            .stats_interval
            .filter(|d| !d.is_zero())
            .map(|every| Interval {
                every,
                start: now,
                next: now + every,
                last_received: 0,
                last_bytes: 0,
                last_lost: 0,
                json: config.json,
                fd,
            });
        Ok(Printer {
            icmp: Tally::default(),
            exec,
            local,
            filter: config.filter.clone(),
            output,
            replier: reply
                .map(|settings| Replier::new(fd, local, settings))
                .transpose()
                .io_context(|| "cannot list this host's interfaces (getifaddrs)".into())?,
            received: 0,
            bytes: 0,
            truncated: 0,
            filtered: 0,
            seq: (config.stats || interval.is_some()).then(Accounting::default),
            pcap,
            interval,
            talk: config.talk.map(Talk::new),
            fd,
        })
    }

    /// Send the replies of the `--exec` jobs that are done.
    pub(crate) fn exec_replies(&mut self) {
        let (Some(pool), Some(replier)) = (&mut self.exec, &mut self.replier) else {
            return;
        };
        let now = Instant::now();
        for done in pool.take_done() {
            match done.outcome {
                Outcome::Reply(bytes) => replier.send(&done.meta, &bytes, now),
                other => trace!(peer = %done.meta.peer, ?other, "--exec: no reply"),
            }
        }
        replier.flush(self.pcap.as_mut());
    }

    /// After the last request: the replies of `--exec` jobs still running, then the
    /// delayed and held replies.
    pub(crate) fn finish_replies(&mut self, signals: &Signals) {
        if let Some(timeout) = self.replier.as_ref().and_then(|r| r.exec_timeout()) {
            self.finish_exec(signals, timeout);
        }
        if let Some(replier) = &mut self.replier {
            replier.drain(signals, self.pcap.as_mut());
        }
    }

    /// After the last request: wait for the `--exec` jobs still running (each bounded by
    /// its timeout) and send their replies. A signal cuts it short.
    fn finish_exec(&mut self, signals: &Signals, timeout: Duration) {
        let Some(fd) = self.exec.as_ref().map(ExecPool::fd) else {
            return;
        };
        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        while self.exec.as_ref().is_some_and(|p| p.in_flight() > 0) {
            match signals.wait(Some(fd), Some(deadline)) {
                Ok(Wake::Readable) => self.exec_replies(),
                _ => return,
            }
        }
    }
}
