//! One server for every receiving subcommand (`listen`, `echo`, `multicast join`): set-up
//! (the announcement, the ready file, pcap), the receive loop with its filter, counters,
//! output and stats (`printer`), answers through [`reply`], and the stop → ending
//! mapping. Takes a plain [`Config`]: the command layer builds it from the flags. Uses
//! `report`, `wire`, `netem`, `net` and `base`.

pub mod dns_tcp;
pub mod exec;
pub mod limiter;
pub mod policy;
mod printer;
pub mod reply;
mod summary;
pub mod talk;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::base::error::{Ending, Unmet};
use crate::base::units::human_duration;
use crate::net::filter::SourceFilter;
use crate::net::recv::{self, Limits, Stop};
use crate::net::signal::Signals;
use crate::net::socket::Bound;
use crate::net::sys::{Ancillary, RecvBatch};
use crate::report::output::{Format, Output};
use crate::serve::printer::Printer;

/// What a server does with what it receives, whatever answers it: the receive-side
/// flags of SPEC §4 listen, as plain values.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// `--count`, `--timeout` (idle), `--duration`.
    pub limits: Limits,
    /// `--allow` / `--deny`.
    pub filter: SourceFilter,
    /// `--max-size`: the receive buffer for one datagram.
    pub max_size: usize,
    /// `--ready-file`.
    pub ready_file: Option<PathBuf>,
    /// `--stats`.
    pub stats: bool,
    /// `--format json`: the stats summary and interval lines as JSON.
    pub json: bool,
    /// `--stats-interval`.
    pub stats_interval: Option<Duration>,
    /// `--pcap`.
    pub pcap: Option<PathBuf>,
    /// Two-way listen: lines typed on stdin go back to a peer.
    pub talk: Option<talk::TalkConfig>,
}

/// Work on the socket before the announcement (joining groups); returns lines for stderr
/// to follow it (`joined GROUP on IFACE`).
pub type Prepare<'a> = &'a dyn Fn(&UdpSocket) -> anyhow::Result<Vec<String>>;

/// What a caller adds around the common loop.
#[derive(Default)]
pub struct Extras<'a> {
    /// How datagrams are printed on stdout, and whether as DNS; `None`: not at all (echo
    /// without `--format`).
    pub format: Option<(Format, bool)>,
    /// Answer every admitted datagram (echo, listen's responders), under these settings.
    pub reply: Option<reply::Settings>,
    /// Called before `listening on`; its lines are printed after it.
    pub before_receive: Option<Prepare<'a>>,
    /// Called when the run ends by its timeout or duration with nothing received.
    pub on_silence: Option<&'a dyn Fn()>,
}

/// Announce, receive and print until a limit or a signal; shared by every receiving
/// subcommand that prints what it gets.
pub fn serve(
    bound: Bound,
    config: &Config,
    signals: &Signals,
    extras: Extras<'_>,
) -> anyhow::Result<Ending> {
    let local = bound.socket.local_addr()?;
    // Join groups and the like first: whoever reacts to `listening on` (or the ready file)
    // must not race the socket's set-up. Their lines follow the announcement.
    let after = match extras.before_receive {
        Some(prepare) => prepare(&bound.socket)?,
        None => Vec::new(),
    };
    let output = extras
        .format
        .map(|(format, dns)| Output::stdout(format).map(|o| o.with_dns(dns)))
        .transpose()?;
    let fd = bound.socket.as_raw_fd();
    let mut printer = Printer::new(config, output, extras.reply.as_ref(), fd, local)?;
    let _ready = announce(local, config, &extras, &after)?;
    // --seq senders' jitter wants each datagram's arrival, not its batch's read.
    let wants_times = config.stats || config.stats_interval.is_some();
    let ancillary = Ancillary {
        gro: bound.gro,
        pktinfo: bound.pktinfo,
        timestamps: wants_times && crate::net::sys::enable_timestamps(fd).is_ok(),
    };
    let socket = &bound.warn();
    let mut batch = RecvBatch::with(recv::BATCH, config.max_size, ancillary);
    tracing::debug!(local = %local, gro = ancillary.gro, rcvbuf = crate::net::socket::recv_buffer_size(socket), "receiving");
    let start = Instant::now();
    let result = recv::run(socket, &mut batch, config.limits, signals, &mut printer);
    // Replies of running --exec jobs, and delayed and held replies, still go, unless a
    // signal ended the run.
    if let Ok((stop, _)) = &result {
        if !matches!(stop, Stop::Signal(_)) {
            printer.finish_replies(signals);
        }
    }
    // ICMP errors already queued (for replies sent up to the end) are counted too.
    recv::drain_errors(socket.as_raw_fd(), &mut printer);
    // Whatever happened, what was received is written before anything else is said.
    let flushed = recv::Handler::idle(&mut printer);
    let (stop, counted) = result?;
    flushed?;
    summary::print(&printer, config, start.elapsed(), socket);
    if printer.received == 0 && matches!(stop, Stop::Idle | Stop::Duration) {
        if let Some(on_silence) = extras.on_silence {
            on_silence();
        }
    }
    ending(stop, counted, config.limits, printer.replier.is_some())
}

/// `listening on ADDR` (and the ready file), then what the caller's set-up and the
/// replier's settings have to say.
fn announce(
    local: std::net::SocketAddr,
    config: &Config,
    extras: &Extras<'_>,
    after: &[String],
) -> anyhow::Result<recv::ReadyFile> {
    let ready = recv::announce(local, config.ready_file.as_deref())?;
    if let Some(warning) = extras.reply.as_ref().and_then(|s| s.open_warning(local)) {
        tracing::warn!("{warning}");
    }
    if let Some(s) = extras.reply.as_ref().filter(|s| s.impairment.is_active()) {
        tracing::info!("impairment {:?}, seed {}", s.impairment, s.seed);
    }
    for line in after {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
    }
    Ok(ready)
}

/// How the run ended: a signal, the count reached, or the count unmet when the timeout
/// or duration ended it first (exit 1, SPEC §4 listen).
fn ending(stop: Stop, counted: u64, limits: Limits, answers: bool) -> anyhow::Result<Ending> {
    match (stop, limits.count) {
        (Stop::Signal(sig), _) => Ok(Ending::Signal(sig)),
        (Stop::Count, _) => Ok(Ending::Done),
        (_, Some(want)) => {
            let why = if stop == Stop::Idle {
                format!(
                    "nothing for {}",
                    human_duration(limits.idle.unwrap_or_default())
                )
            } else {
                format!(
                    "--duration {} ended",
                    human_duration(limits.duration.unwrap_or_default())
                )
            };
            let what = if answers { "answered" } else { "received" };
            Err(Unmet(format!("{what} {counted} of {want} datagrams ({why})")).into())
        }
        (_, None) => Ok(Ending::Done),
    }
}
