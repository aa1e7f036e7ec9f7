//! `dgram send`: send datagrams, optionally wait for replies (SPEC §4 send).
//!
//! Four modes share one payload source and one schedule:
//! - fire and forget (default): a connected socket, batches of up to 64 per `sendmmsg`;
//! - `--reply`/`--expect`: one datagram, one reply (with `--retries`), then the next;
//! - `--collect`: an unconnected socket, every reply from anyone until the timeout;
//! - interactive (stdin is a terminal): lines typed are sent, replies printed as they come.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::addr::{parse_local, parse_target};
use crate::cli::SendArgs;
use crate::exit::{usage, Ending, IoError, Unmet};
use crate::output::{Datagram, Format, Output};
use crate::pacing::TokenBucket;
use crate::payload::{
    check_size, decode, generated, input_cap, max_payload, read_bounded, Encoding, Lines,
};
use crate::seq;
use crate::signal::{Signals, Wake};
use crate::socket::GroupSend;
use crate::stats::{percentiles, Summary};
use crate::sys::RecvBatch;
use crate::transmit::Transmitter;

/// Datagrams handed to the kernel per `sendmmsg` call.
const BATCH: usize = 64;
/// The largest UDP payload: every reply fits a buffer of this size.
const LARGEST: usize = 65_535;

/// How the run waits for replies.
#[derive(Debug)]
enum Mode {
    /// Send and exit.
    Fire,
    /// One reply per datagram, from the target only.
    Reply {
        timeout: Duration,
        retries: u32,
        expect: Option<Vec<u8>>,
    },
    /// Every reply from anyone until the timeout after the last datagram.
    Collect { timeout: Duration },
    /// Stdin is a terminal: lines typed are sent, replies printed as they arrive.
    Interactive,
}

/// Where datagrams come from.
#[derive(Debug)]
enum Source {
    /// One payload, repeated `--count` times (or until `--duration`).
    Fixed(Vec<u8>),
    /// Stdin, one datagram per line.
    Lines,
}

/// `dgram send` with every flag checked: nothing has been sent yet.
#[derive(Debug)]
struct Config {
    target: SocketAddr,
    bind: SocketAddr,
    options: crate::socket::Options,
    source: Source,
    encoding: Encoding,
    count: Option<u64>,
    rate: Option<f64>,
    duration: Option<Duration>,
    mode: Mode,
    format: Format,
    stats: bool,
    /// Draw the RTT chart: `--histogram`, or stderr is a terminal.
    histogram: bool,
    /// `--seq`: each datagram starts with a sequence header.
    seq: bool,
    /// UDP GSO may be used: a bulk send (SPEC §1), and no `--no-gso`.
    gso: bool,
}

/// Datagrams from which a send counts as bulk, and may use UDP GSO (SPEC §1).
const GSO_MIN_COUNT: u64 = 1_000;
/// Rates above which a paced send counts as bulk.
const GSO_MIN_RATE: f64 = 10_000.0;

/// True for a bulk send of one repeated payload: at least [`GSO_MIN_COUNT`] datagrams
/// (or for a `--duration`), unpaced or faster than [`GSO_MIN_RATE`]. A capture on the
/// sending host shows a GSO send as one merged packet, so anything smaller goes one
/// packet per datagram.
fn is_bulk(count: Option<u64>, duration: Option<Duration>, rate: Option<f64>) -> bool {
    let many = match count {
        Some(n) => n >= GSO_MIN_COUNT,
        None => duration.is_some(),
    };
    many && rate.is_none_or(|r| r > GSO_MIN_RATE)
}

impl Config {
    fn from_args(args: SendArgs, signals: &Signals) -> anyhow::Result<Self> {
        let family = args.family.family();
        let target = parse_target(&args.target, family)?;
        if target.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) && !args.broadcast {
            return Err(broadcast_refused(target));
        }
        let bind = match &args.bind {
            None => crate::socket::unspecified_for(&target),
            // A bare port picks the source port, not loopback: any interface may send.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                let port = p
                    .parse()
                    .map_err(|_| usage!("invalid --bind '{p}': expected a port from 0 to 65535"))?;
                SocketAddr::new(crate::socket::unspecified_for(&target).ip(), port)
            }
            Some(text) => {
                let addr = parse_local(text, family)?;
                if addr.is_ipv4() != target.is_ipv4() {
                    return Err(usage!(
                        "--bind {addr} and target {target} are of different address families"
                    ));
                }
                addr
            }
        };
        let encoding = match (
            args.encoding.hex,
            args.encoding.base64,
            args.encoding.escapes,
        ) {
            (true, _, _) => Encoding::Hex,
            (_, true, _) => Encoding::Base64,
            (_, _, true) => Encoding::Escapes,
            _ => Encoding::Text,
        };
        let has_message = !args.message.is_empty();
        if has_message && (args.file.is_some() || args.whole || args.lines || args.size.is_some()) {
            return Err(usage!("MESSAGE cannot be combined with --file, --whole, --lines or --size: they name another payload"));
        }
        let source = if has_message {
            let joined = join_words(&args.message);
            Source::Fixed(decode(&joined, encoding).map_err(|e| usage!("invalid MESSAGE: {e}"))?)
        } else if let Some(path) = &args.file {
            let raw = read_file(path, &target, encoding)?;
            Source::Fixed(
                decode(&raw, encoding)
                    .map_err(|e| usage!("invalid --file {}: {e}", path.display()))?,
            )
        } else if let Some(size) = args.size {
            // Checked before anything is allocated: --size 4G is refused at once.
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            check_size(size, &target).map_err(|e| usage!("--size: {e}"))?;
            if args.seq && size < seq::HEADER_LEN {
                return Err(usage!(
                    "--size {size} with --seq: at least {} bytes, the sequence header",
                    seq::HEADER_LEN
                ));
            }
            // With --seq the header is part of the N bytes.
            Source::Fixed(generated(size))
        } else if args.whole {
            let raw = read_all_stdin(signals, &target, encoding)?;
            Source::Fixed(decode(&raw, encoding).map_err(|e| usage!("invalid stdin: {e}"))?)
        } else {
            Source::Lines
        };
        let source = match source {
            // Room for the header in front of a message, a file or stdin.
            Source::Fixed(body) if args.seq && args.size.is_none() => {
                Source::Fixed([vec![0; seq::HEADER_LEN], body].concat())
            }
            other => other,
        };
        if let Source::Fixed(payload) = &source {
            check_size(payload.len(), &target).map_err(|e| usage!("{e}"))?;
        }
        if args.seq && args.reply && args.retries > 0 {
            return Err(usage!(
                "--retries with --seq: replies are matched by sequence number and a missing one is counted lost, not resent"
            ));
        }
        let expect = args
            .expect
            .as_ref()
            .map(|p| decode(&os_bytes(p), encoding).map_err(|e| usage!("invalid --expect: {e}")))
            .transpose()?;
        let interactive = matches!(source, Source::Lines) && io::stdin().is_terminal();
        let mode = if args.collect {
            Mode::Collect {
                timeout: args.timeout,
            }
        } else if args.reply || expect.is_some() {
            Mode::Reply {
                timeout: args.timeout,
                retries: args.retries,
                expect,
            }
        } else if interactive {
            Mode::Interactive
        } else {
            Mode::Fire
        };
        // A fixed payload goes once, unless --count or --duration ask for more.
        let count = match (&source, args.count, args.duration) {
            (Source::Fixed(_), None, None) => Some(1),
            (_, count, _) => count,
        };
        let rate = args
            .rate
            .or(args.interval.map(|i| 1.0 / i.as_secs_f64().max(1e-9)));
        let mut options = args.socket.options(family);
        options.broadcast = args.broadcast;
        options.dont_fragment = args.dont_fragment;
        let format = args.format.unwrap_or(if encoding == Encoding::Hex {
            Format::Hexdump
        } else {
            Format::Raw
        });
        let gso = !args.no_gso
            && matches!(source, Source::Fixed(_))
            && is_bulk(count, args.duration, rate);
        Ok(Config {
            gso,
            target,
            bind,
            options,
            source,
            encoding,
            count,
            rate,
            duration: args.duration,
            mode,
            format,
            stats: args.stats,
            histogram: args.histogram || io::stderr().is_terminal(),
            seq: args.seq,
        })
    }
}

/// MESSAGE words joined by single spaces, as bytes (arguments need not be UTF-8).
fn join_words(words: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&os_bytes(w));
    }
    out
}

fn os_bytes(s: &OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_os_str().as_bytes().to_vec()
}

fn broadcast_refused(target: SocketAddr) -> anyhow::Error {
    usage!(
        "{} is a broadcast address: add --broadcast to send to it",
        target.ip()
    )
}

/// Wait for stdin to be readable, or a signal: `Ok(Some(sig))` when a signal came first.
fn wait_stdin(signals: &Signals) -> anyhow::Result<Option<i32>> {
    match signals.wait(Some(io::stdin().as_raw_fd()), None) {
        Ok(Wake::Signal(sig)) => Ok(Some(sig)),
        Ok(_) => Ok(None),
        Err(e) => Err(anyhow::Error::new(IoError(e)).context("failed to wait for stdin")),
    }
}

/// `--file PATH`, refused unread when its size is over what one datagram can carry.
fn read_file(
    path: &std::path::Path,
    target: &SocketAddr,
    encoding: Encoding,
) -> anyhow::Result<Vec<u8>> {
    let cant = |e: io::Error| {
        usage!(
            "cannot read --file {}: {}",
            path.display(),
            crate::exit::describe_io(&e)
        )
    };
    let cap = input_cap(max_payload(target), encoding);
    let file = std::fs::File::open(path).map_err(cant)?;
    let too_large = |len: String| {
        usage!(
            "--file {} is {len} bytes: {}",
            path.display(),
            too_large_for(target)
        )
    };
    // The size from the metadata first; then a bounded read, for files whose size is not
    // known ahead (pipes, /proc, /dev/stdin).
    match file.metadata() {
        Ok(m) if m.is_file() && m.len() > cap as u64 => return Err(too_large(m.len().to_string())),
        _ => {}
    }
    read_bounded(file, cap)
        .map_err(cant)?
        .ok_or_else(|| too_large(format!("more than {cap}")))
}

/// "larger than the IPv4 UDP limit of 65507 bytes", for input refused before it was
/// read whole.
fn too_large_for(target: &SocketAddr) -> String {
    let family = if target.is_ipv4() { "IPv4" } else { "IPv6" };
    format!(
        "larger than the {family} UDP limit of {} bytes",
        max_payload(target)
    )
}

/// `--whole`: all of stdin, refused as soon as it holds more than one datagram can carry
/// (an endless pipe is not read to its end).
fn read_all_stdin(
    signals: &Signals,
    target: &SocketAddr,
    encoding: Encoding,
) -> anyhow::Result<Vec<u8>> {
    let cap = input_cap(max_payload(target), encoding);
    let mut all = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut stdin = io::stdin().lock();
    loop {
        if all.len() > cap {
            return Err(usage!("stdin (--whole) is {}", too_large_for(target)));
        }
        if let Some(sig) = wait_stdin(signals)? {
            return Err(anyhow::anyhow!(
                "interrupted by signal {sig} while reading stdin"
            ));
        }
        match stdin.read(&mut chunk) {
            Ok(0) => return Ok(all),
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow::Error::new(IoError(e)).context("failed to read stdin")),
        }
    }
}

/// The error for a failed send or receive on a socket talking to `target`.
fn net_error(e: io::Error, target: SocketAddr) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => anyhow::anyhow!("connection refused: nothing is listening on {target}"),
        Some(libc::EACCES) if target.is_ipv4() => broadcast_refused(target),
        Some(libc::EMSGSIZE) => anyhow::anyhow!(
            "failed to send to {target}: message too long for the path (the MTU, with --dont-fragment)"
        ),
        _ => anyhow::Error::new(IoError(e)).context(format!("failed to send to {target}")),
    }
}

/// Counts, deadline and pacing: how many datagrams may go now.
struct Schedule {
    remaining: Option<u64>,
    deadline: Option<Instant>,
    pacer: Option<TokenBucket>,
}

/// The schedule's answer.
enum Grant {
    /// Send up to this many now.
    Go(usize),
    /// The count is reached or the duration is over.
    Done,
    /// SIGINT or SIGTERM.
    Signal(i32),
}

impl Schedule {
    fn new(config: &Config, start: Instant) -> Self {
        Schedule {
            remaining: config.count,
            deadline: config.duration.map(|d| start + d),
            pacer: config.rate.map(|r| TokenBucket::pacer(r, start)),
        }
    }

    /// Without waiting: how many of up to `max` datagrams may go now, or when to ask again.
    fn poll(&mut self, max: usize, now: Instant) -> Poll {
        let want = self.remaining.map_or(max, |r| r.min(max as u64) as usize);
        if want == 0 || self.deadline.is_some_and(|d| now >= d) {
            return Poll::Done;
        }
        let Some(pacer) = &mut self.pacer else {
            return Poll::Go(want);
        };
        match pacer.take(now, want as u64) as usize {
            0 => {
                let wake = now + pacer.wait_time(now);
                Poll::Wait(self.deadline.map_or(wake, |d| wake.min(d)))
            }
            granted => Poll::Go(granted),
        }
    }

    /// Wait (paced, interruptible) until at least one of up to `max` datagrams may go.
    fn next(&mut self, max: usize, signals: &Signals) -> anyhow::Result<Grant> {
        loop {
            if let Some(sig) = signals.pending() {
                return Ok(Grant::Signal(sig));
            }
            match self.poll(max, Instant::now()) {
                Poll::Go(n) => return Ok(Grant::Go(n)),
                Poll::Done => return Ok(Grant::Done),
                Poll::Wait(wake) => {
                    if let Wake::Signal(sig) = signals.wait(None, Some(wake))? {
                        return Ok(Grant::Signal(sig));
                    }
                }
            }
        }
    }

    fn sent(&mut self, n: usize) {
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(n as u64);
        }
    }
}

/// The schedule's answer without waiting.
enum Poll {
    Go(usize),
    Wait(Instant),
    Done,
}

/// Numbers datagrams for `--seq`.
#[derive(Default)]
struct Sequencer {
    next: u64,
}

impl Sequencer {
    /// Write the next header into the start of `datagram`.
    fn stamp(&mut self, datagram: &mut [u8]) {
        seq::write(datagram, self.next, seq::now_ns());
        self.next += 1;
    }
}

/// A batch of payloads read for one send.
struct Batch {
    /// How many payloads are ready.
    len: usize,
    /// An error found at the payload after the last one ready (an oversize or undecodable
    /// line): raised after the ready ones are sent.
    error: Option<anyhow::Error>,
    /// Stdin is exhausted.
    eof: bool,
    /// A signal arrived while waiting for stdin.
    signal: Option<i32>,
}

/// The payloads of a run: a fixed one repeated, or stdin lines.
struct Payloads {
    /// `--seq`: lines get room for the header in front.
    seq: bool,
    fixed: Option<Vec<u8>>,
    lines: Option<Lines<io::Stdin>>,
    encoding: Encoding,
    slots: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl Payloads {
    fn new(source: Source, encoding: Encoding, seq: bool, target: &SocketAddr) -> Self {
        let max = input_cap(max_payload(target), encoding);
        let (fixed, lines) = match source {
            Source::Fixed(p) => (Some(p), None),
            Source::Lines => (None, Some(Lines::with_max(io::stdin(), max))),
        };
        Payloads {
            seq,
            fixed,
            lines,
            encoding,
            slots: vec![Vec::new(); BATCH],
            scratch: Vec::new(),
        }
    }

    /// Up to `max` payloads. Stdin lines are batched only while whole lines are already
    /// buffered: the first may wait for input, later ones never do.
    fn fill(
        &mut self,
        max: usize,
        target: &SocketAddr,
        signals: &Signals,
    ) -> anyhow::Result<Batch> {
        let max = max.min(BATCH);
        let mut batch = Batch {
            len: 0,
            error: None,
            eof: false,
            signal: None,
        };
        let Some(lines) = &mut self.lines else {
            batch.len = max;
            return Ok(batch);
        };
        while batch.len < max {
            if !lines.has_buffered_line() {
                if batch.len > 0 {
                    break;
                }
                if let Some(sig) = wait_stdin(signals)? {
                    batch.signal = Some(sig);
                    break;
                }
            }
            let slot = &mut self.slots[batch.len];
            let more = if self.encoding == Encoding::Text {
                lines.next_into(slot)
            } else {
                lines.next_into(&mut self.scratch)
            }
            .map_err(|e| anyhow::Error::new(IoError(e)).context("failed to read stdin"))?;
            if !more {
                batch.eof = true;
                break;
            }
            let number = lines.number();
            if lines.was_cut() {
                batch.error = Some(usage!("line {number}: {}", too_large_for(target)));
                break;
            }
            if self.encoding != Encoding::Text {
                match decode(&self.scratch, self.encoding) {
                    Ok(bytes) => *slot = bytes,
                    Err(e) => {
                        batch.error = Some(usage!("line {number}: {e}"));
                        break;
                    }
                }
            }
            if self.seq {
                slot.splice(0..0, [0; seq::HEADER_LEN]);
            }
            if let Err(e) = check_size(slot.len(), target) {
                batch.error = Some(usage!("line {number}: {e}"));
                break;
            }
            batch.len += 1;
        }
        Ok(batch)
    }

    fn get(&self, i: usize) -> &[u8] {
        match &self.fixed {
            Some(p) => p,
            None => &self.slots[i],
        }
    }
}

impl Counts {
    /// Count the first `sent` payloads of the batch as sent.
    fn add_sent(&mut self, payloads: &Payloads, sent: usize) {
        self.sent += sent as u64;
        self.bytes += (0..sent).map(|i| payloads.get(i).len() as u64).sum::<u64>();
    }
}

/// Counters for `--stats`.
#[derive(Default)]
struct Counts {
    /// `--reply --seq`: replies that came back out of order, and twice.
    reordered: u64,
    duplicates: u64,
    sent: u64,
    bytes: u64,
    replies: u64,
    reply_bytes: u64,
    unanswered: u64,
    mismatched: u64,
    rtts_us: Vec<u64>,
}

/// Run `dgram send`.
pub fn run(args: SendArgs, signals: &Signals) -> anyhow::Result<Ending> {
    run_inner(args, signals, None)
}

/// Run `dgram multicast send`: `send` to a group, with its interface, TTL and loop.
pub fn run_to_group(args: SendArgs, signals: &Signals, group: GroupSend) -> anyhow::Result<Ending> {
    run_inner(args, signals, Some(group))
}

fn run_inner(
    mut args: SendArgs,
    signals: &Signals,
    group: Option<GroupSend>,
) -> anyhow::Result<Ending> {
    if group.is_some() {
        // The TTL applies as the multicast TTL, set below; not IP_TTL.
        args.socket.ttl = None;
    }
    let mut config = Config::from_args(args, signals)?;
    if let (Some(g), SocketAddr::V6(v6)) = (group, &mut config.target) {
        // A link-scoped group (ff02::...) needs its link: take it from --iface.
        if v6.scope_id() == 0 {
            v6.set_scope_id(crate::iface::index_of(g.iface));
        }
    }
    debug!(?config, ?group, "send");
    let socket = crate::socket::bind(config.bind, &config.options)?.warn();
    if let Some(g) = group {
        crate::socket::set_multicast_send(&socket, config.target.is_ipv6(), g)?;
    }
    // Sends block for room in the send buffer (microseconds); replies are read with
    // MSG_DONTWAIT after a poll, so blocking mode only affects sends.
    socket.set_nonblocking(false)?;
    if !matches!(config.mode, Mode::Collect { .. }) {
        // Connected: the kernel reports ICMP port-unreachable as ECONNREFUSED and
        // delivers replies from the target only.
        socket
            .connect(config.target)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES) => broadcast_refused(config.target),
                _ => anyhow::Error::new(IoError(e))
                    .context(format!("failed to connect to {}", config.target)),
            })?;
    }
    let start = Instant::now();
    let mut counts = Counts::default();
    let mut output = Output::stdout(config.format)?;
    let result = match &config.mode {
        Mode::Fire => fire(&config, &socket, signals, &mut counts),
        Mode::Reply { .. } if config.seq => {
            pipelined(&config, &socket, signals, &mut counts, &mut output)
        }
        Mode::Reply { .. } => request_reply(&config, &socket, signals, &mut counts, &mut output),
        Mode::Collect { timeout } => collect(
            &config,
            *timeout,
            &socket,
            signals,
            &mut counts,
            &mut output,
        ),
        Mode::Interactive => interactive(&config, &socket, signals, &mut counts),
    };
    let flushed = output.flush();
    if config.stats {
        print_stats(&config, &counts, start.elapsed());
    }
    let ending = result?;
    flushed?;
    if ending == Ending::Done {
        judge(&config, &counts)?;
    }
    Ok(ending)
}

/// Exit 1 when the expected did not happen.
fn judge(config: &Config, counts: &Counts) -> anyhow::Result<()> {
    match &config.mode {
        Mode::Reply {
            timeout, retries, ..
        } if counts.unanswered > 0 => {
            let tries = retries + 1;
            let per_try = crate::units::human_duration(*timeout);
            let what = if counts.unanswered == 1 && counts.replies == 0 {
                "no reply".to_string()
            } else {
                format!("no reply to {} datagrams", counts.unanswered)
            };
            let tries = if tries == 1 {
                format!("within {per_try}")
            } else {
                format!("after {tries} tries of {per_try}")
            };
            Err(Unmet(format!("{what} from {} {tries}", config.target)).into())
        }
        Mode::Reply { .. } if counts.mismatched > 0 => Err(Unmet(format!(
            "{} of {} replies from {} did not contain the --expect pattern",
            counts.mismatched, counts.replies, config.target
        ))
        .into()),
        Mode::Collect { timeout } if counts.replies == 0 => Err(Unmet(format!(
            "no reply to --collect within {}",
            crate::units::human_duration(*timeout)
        ))
        .into()),
        _ => Ok(()),
    }
}

fn print_stats(config: &Config, counts: &Counts, elapsed: Duration) {
    let waits = !matches!(config.mode, Mode::Fire);
    let mut summary = Summary {
        sent: Some(counts.sent),
        bytes: if waits {
            counts.reply_bytes
        } else {
            counts.bytes
        },
        ..Summary::default()
    };
    if waits {
        summary.received = Some(counts.replies);
    }
    if matches!(config.mode, Mode::Reply { .. }) {
        if config.seq {
            summary.reordered = Some(counts.reordered);
            summary.duplicates = Some(counts.duplicates);
        }
        summary.lost = Some(counts.unanswered);
        let mut rtts = counts.rtts_us.clone();
        summary.rtt_us = percentiles(&mut rtts);
    }
    summary.finish(elapsed, counts.sent);
    summary.print(config.format == Format::Json);
    if config.histogram && !counts.rtts_us.is_empty() && config.format != Format::Json {
        let chart = crate::stats::bar_chart(&counts.rtts_us, 8, 40);
        let _ = io::Write::write_all(&mut io::stderr(), chart.as_bytes());
    }
}

/// Send everything, as fast as the schedule allows, in batches: one GSO call per batch
/// for a repeated payload, one `sendmmsg` per batch of lines.
fn fire(
    config: &Config,
    socket: &UdpSocket,
    signals: &Signals,
    counts: &mut Counts,
) -> anyhow::Result<Ending> {
    let mut payloads = Payloads::new(
        clone_source(&config.source),
        config.encoding,
        config.seq,
        &config.target,
    );
    let mut schedule = Schedule::new(config, Instant::now());
    let mut tx = Transmitter::new(socket, &config.target, config.gso);
    let mut sequencer = Sequencer::default();
    let mut progress = crate::progress::Progress::new(
        config.count.filter(|_| payloads.fixed.is_some()),
        config.duration,
        config.rate,
    );
    let ending = loop {
        let batch_size = payloads
            .fixed
            .as_ref()
            .map_or(BATCH, |p| tx.batch_for(p.len()));
        let max = match schedule.next(batch_size, signals)? {
            Grant::Go(n) => n,
            Grant::Done => break Ending::Done,
            Grant::Signal(sig) => break Ending::Signal(sig),
        };
        let batch = payloads.fill(max, &config.target, signals)?;
        let sent = transmit(
            &mut payloads,
            batch.len,
            &mut tx,
            config.seq.then_some(&mut sequencer),
        )
        .map_err(|e| net_error(e, config.target))?;
        counts.add_sent(&payloads, sent);
        schedule.sent(sent);
        progress.update(counts.sent);
        if sent < batch.len {
            // A partial batch ends with the error that stopped it, pending on the socket.
            let e = socket
                .take_error()?
                .unwrap_or_else(|| io::Error::other("send stopped early"));
            return Err(net_error(e, config.target));
        }
        if let Some(err) = batch.error {
            return Err(err);
        }
        if let Some(sig) = batch.signal {
            break Ending::Signal(sig);
        }
        if batch.eof {
            break Ending::Done;
        }
    };
    progress.finish();
    // An ICMP error for the last datagrams, already queued (on loopback it is): report it
    // rather than exit 0. Nothing waits for one that has not come.
    if let Some(e) = socket.take_error()? {
        return Err(net_error(e, config.target));
    }
    Ok(ending)
}

fn clone_source(source: &Source) -> Source {
    match source {
        Source::Fixed(p) => Source::Fixed(p.clone()),
        Source::Lines => Source::Lines,
    }
}

/// Send the `n` payloads of a batch (stamped with `--seq` headers when a sequencer is
/// given): one GSO call for a repeated payload, `sendmmsg` for lines.
fn transmit(
    payloads: &mut Payloads,
    n: usize,
    tx: &mut Transmitter,
    mut sequencer: Option<&mut Sequencer>,
) -> io::Result<usize> {
    if let (Some(seq), None) = (sequencer.as_deref_mut(), &payloads.fixed) {
        for slot in &mut payloads.slots[..n] {
            seq.stamp(slot);
        }
    }
    match &payloads.fixed {
        Some(payload) => match sequencer {
            Some(seq) => {
                let mut stamp = |d: &mut [u8]| seq.stamp(d);
                tx.send_copies(payload, n, Some(&mut stamp))
            }
            None => tx.send_copies(payload, n, None),
        },
        None => {
            let refs: Vec<&[u8]> = (0..n).map(|i| payloads.get(i)).collect();
            tx.send_each(&refs)
        }
    }
}

/// Send one datagram (a request, an interactive line).
fn send_one(
    socket: &UdpSocket,
    payload: &[u8],
    target: SocketAddr,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    loop {
        match socket.send(payload) {
            Ok(_) => {
                counts.sent += 1;
                counts.bytes += payload.len() as u64;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(net_error(e, target)),
        }
    }
}

/// One datagram, one reply: `--reply`, `--expect`, `--retries`.
fn request_reply(
    config: &Config,
    socket: &UdpSocket,
    signals: &Signals,
    counts: &mut Counts,
    output: &mut Output,
) -> anyhow::Result<Ending> {
    let Mode::Reply {
        timeout,
        retries,
        expect,
    } = &config.mode
    else {
        unreachable!()
    };
    let mut payloads = Payloads::new(
        clone_source(&config.source),
        config.encoding,
        config.seq,
        &config.target,
    );
    let mut schedule = Schedule::new(config, Instant::now());
    let mut replies = RecvBatch::new(1, LARGEST);
    let fd = socket.as_raw_fd();
    loop {
        match schedule.next(1, signals)? {
            Grant::Go(_) => {}
            Grant::Done => return Ok(Ending::Done),
            Grant::Signal(sig) => return Ok(Ending::Signal(sig)),
        }
        let batch = payloads.fill(1, &config.target, signals)?;
        if batch.len == 1 {
            let payload = payloads.get(0);
            let mut answered = false;
            for attempt in 0..=*retries {
                if attempt > 0 {
                    info!(
                        "no reply within {}; try {} of {}",
                        crate::units::human_duration(*timeout),
                        attempt + 1,
                        retries + 1
                    );
                }
                send_one(socket, payload, config.target, counts)?;
                let sent_at = Instant::now();
                let deadline = sent_at + *timeout;
                loop {
                    match signals.wait(Some(fd), Some(deadline))? {
                        Wake::Signal(sig) => return Ok(Ending::Signal(sig)),
                        Wake::Timeout => break,
                        Wake::Readable => {}
                    }
                    match replies.recv(fd, 1) {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        Err(e) => return Err(net_error(e, config.target)),
                    }
                    let rtt = sent_at.elapsed();
                    let meta = replies.meta(0);
                    let reply = replies.payload(0);
                    counts.replies += 1;
                    counts.reply_bytes += meta.len as u64;
                    counts.rtts_us.push(rtt.as_micros() as u64);
                    output.write(&Datagram {
                        peer: meta.peer,
                        payload: reply,
                        len: meta.len,
                        time: SystemTime::now(),
                        rtt: Some(rtt),
                    })?;
                    output.flush()?;
                    if let Some(pattern) = expect {
                        if !contains(reply, pattern) {
                            counts.mismatched += 1;
                            warn!(
                                "reply from {} does not contain the --expect pattern",
                                meta.peer
                            );
                        }
                    }
                    answered = true;
                    break;
                }
                if answered {
                    break;
                }
            }
            if !answered {
                counts.unanswered += 1;
            }
            schedule.sent(1);
        }
        if let Some(err) = batch.error {
            return Err(err);
        }
        if let Some(sig) = batch.signal {
            return Ok(Ending::Signal(sig));
        }
        if batch.eof {
            return Ok(Ending::Done);
        }
    }
}

/// `--reply --seq`: send at the schedule's pace without waiting for each reply, match
/// replies by their sequence number as they come (from any echo: the header travels in
/// the payload), then wait up to the timeout after the last datagram for the rest.
fn pipelined(
    config: &Config,
    socket: &UdpSocket,
    signals: &Signals,
    counts: &mut Counts,
    output: &mut Output,
) -> anyhow::Result<Ending> {
    let Mode::Reply {
        timeout, expect, ..
    } = &config.mode
    else {
        unreachable!("pipelined is a reply mode")
    };
    let mut payloads = Payloads::new(
        clone_source(&config.source),
        config.encoding,
        config.seq,
        &config.target,
    );
    let mut schedule = Schedule::new(config, Instant::now());
    let mut tx = Transmitter::new(socket, &config.target, config.gso);
    let mut sequencer = Sequencer::default();
    let mut replies = RecvBatch::new(crate::recv::BATCH, LARGEST);
    let mut tracker = seq::Tracker::default();
    let fd = socket.as_raw_fd();
    let mut sending = true;
    let mut last_send = Instant::now();
    let mut pending_error = None;
    let mut progress = crate::progress::Progress::new(config.count, config.duration, config.rate);
    let ending = loop {
        // Every reply queued now.
        loop {
            match replies.recv(fd, crate::recv::BATCH) {
                Ok(n) => {
                    let now_ns = seq::now_ns();
                    for i in 0..n {
                        let meta = replies.meta(i);
                        let reply = replies.payload(i);
                        let Some(header) = seq::parse(reply) else {
                            counts.mismatched += 1;
                            warn!("reply from {} has no sequence header", meta.peer);
                            continue;
                        };
                        let dups = tracker.duplicates;
                        tracker.record(header.seq);
                        if tracker.duplicates > dups {
                            continue;
                        }
                        let rtt = Duration::from_nanos(now_ns.saturating_sub(header.sent_ns));
                        counts.replies += 1;
                        counts.reply_bytes += meta.len as u64;
                        counts.rtts_us.push(rtt.as_micros() as u64);
                        if let Some(pattern) = expect {
                            if !contains(reply, pattern) {
                                counts.mismatched += 1;
                            }
                        }
                        output.write(&Datagram {
                            peer: meta.peer,
                            payload: reply,
                            len: meta.len,
                            time: SystemTime::now(),
                            rtt: Some(rtt),
                        })?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(net_error(e, config.target)),
            }
        }
        output.flush()?;
        if let Some(sig) = signals.pending() {
            break Ending::Signal(sig);
        }
        let now = Instant::now();
        let mut wake = None;
        if sending {
            match schedule.poll(BATCH, now) {
                Poll::Go(max) => {
                    let batch = payloads.fill(max, &config.target, signals)?;
                    let sent = transmit(&mut payloads, batch.len, &mut tx, Some(&mut sequencer))
                        .map_err(|e| net_error(e, config.target))?;
                    counts.add_sent(&payloads, sent);
                    schedule.sent(sent);
                    progress.update(counts.sent);
                    last_send = Instant::now();
                    if let Some(sig) = batch.signal {
                        break Ending::Signal(sig);
                    }
                    if batch.error.is_some() || batch.eof {
                        pending_error = batch.error;
                        sending = false;
                    }
                    continue;
                }
                Poll::Wait(at) => wake = Some(at),
                Poll::Done => sending = false,
            }
        }
        if !sending {
            if counts.replies >= counts.sent {
                break Ending::Done;
            }
            let deadline = last_send + *timeout;
            if now >= deadline {
                break Ending::Done;
            }
            wake = Some(deadline);
        }
        if let Wake::Signal(sig) = signals.wait(Some(fd), wake)? {
            break Ending::Signal(sig);
        }
    };
    progress.finish();
    counts.unanswered = counts.sent.saturating_sub(counts.replies);
    counts.reordered = tracker.reordered;
    counts.duplicates = tracker.duplicates;
    match pending_error {
        Some(err) if ending == Ending::Done => Err(err),
        _ => Ok(ending),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Send everything from an unconnected socket, then print every reply from anyone until
/// `timeout` after the last datagram.
fn collect(
    config: &Config,
    timeout: Duration,
    socket: &UdpSocket,
    signals: &Signals,
    counts: &mut Counts,
    output: &mut Output,
) -> anyhow::Result<Ending> {
    let mut payloads = Payloads::new(
        clone_source(&config.source),
        config.encoding,
        config.seq,
        &config.target,
    );
    let mut schedule = Schedule::new(config, Instant::now());
    let mut replies = RecvBatch::new(crate::recv::BATCH, LARGEST);
    let fd = socket.as_raw_fd();
    let mut pending_error = None;
    loop {
        match schedule.next(BATCH, signals)? {
            Grant::Go(n) => {
                let batch = payloads.fill(n, &config.target, signals)?;
                for i in 0..batch.len {
                    let p = payloads.get(i);
                    socket
                        .send_to(p, config.target)
                        .map_err(|e| net_error(e, config.target))?;
                    counts.sent += 1;
                    counts.bytes += p.len() as u64;
                }
                schedule.sent(batch.len);
                if let Some(sig) = batch.signal {
                    return Ok(Ending::Signal(sig));
                }
                if batch.error.is_some() || batch.eof {
                    pending_error = batch.error;
                    break;
                }
            }
            Grant::Done => break,
            Grant::Signal(sig) => return Ok(Ending::Signal(sig)),
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        match replies.recv(fd, crate::recv::BATCH) {
            Ok(n) => {
                let now = SystemTime::now();
                for i in 0..n {
                    let meta = replies.meta(i);
                    counts.replies += 1;
                    counts.reply_bytes += meta.len as u64;
                    output.write(&Datagram {
                        peer: meta.peer,
                        payload: replies.payload(i),
                        len: meta.len,
                        time: now,
                        rtt: None,
                    })?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                output.flush()?;
                match signals.wait(Some(fd), Some(deadline))? {
                    Wake::Readable => {}
                    Wake::Timeout => break,
                    Wake::Signal(sig) => return Ok(Ending::Signal(sig)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // An unconnected socket sees no ICMP errors on Linux; others may. Not fatal:
            // other responders may still answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                return Err(anyhow::Error::new(IoError(e)).context("failed to receive replies"))
            }
        }
    }
    match pending_error {
        Some(err) => Err(err),
        None => Ok(Ending::Done),
    }
}

/// Stdin is a terminal: every line typed is a datagram, every reply is printed as it
/// arrives (by a second thread), until end of input.
fn interactive(
    config: &Config,
    socket: &UdpSocket,
    signals: &Signals,
    counts: &mut Counts,
) -> anyhow::Result<Ending> {
    let receiver = socket.try_clone()?;
    let target = config.target;
    let format = config.format;
    let mut output = Output::stdout(format)?;
    // Not joined: at end of input the process exits and takes the thread with it.
    std::thread::spawn(move || {
        let mut replies = RecvBatch::new(crate::recv::BATCH, LARGEST);
        let fd = receiver.as_raw_fd();
        loop {
            match replies.recv(fd, crate::recv::BATCH) {
                Ok(n) => {
                    let now = SystemTime::now();
                    for i in 0..n {
                        let meta = replies.meta(i);
                        let d = Datagram {
                            peer: meta.peer,
                            payload: replies.payload(i),
                            len: meta.len,
                            time: now,
                            rtt: None,
                        };
                        if output.write(&d).and_then(|_| output.flush()).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = crate::sys::wait_readable([fd], None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // nc's behaviour: the peer is gone, so the session is over.
                    let _ = output.flush();
                    let line = format!("dgram: {:#}\n", net_error(e, target));
                    let _ = io::Write::write_all(&mut io::stderr(), line.as_bytes());
                    std::process::exit(i32::from(crate::exit::SYSTEM));
                }
            }
        }
    });
    let mut payloads = Payloads::new(Source::Lines, config.encoding, config.seq, &config.target);
    let mut schedule = Schedule::new(config, Instant::now());
    loop {
        match schedule.next(1, signals)? {
            Grant::Go(_) => {}
            Grant::Done => return Ok(Ending::Done),
            Grant::Signal(sig) => return Ok(Ending::Signal(sig)),
        }
        let batch = payloads.fill(1, &config.target, signals)?;
        if batch.len == 1 {
            send_one(socket, payloads.get(0), config.target, counts)?;
            schedule.sent(1);
        }
        if let Some(err) = batch.error {
            // A bad line typed at a terminal is reported, not fatal: type it again.
            warn!("{err:#}");
        }
        if let Some(sig) = batch.signal {
            return Ok(Ending::Signal(sig));
        }
        if batch.eof {
            return Ok(Ending::Done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_join_with_single_spaces() {
        let words: Vec<OsString> = ["a", "b c", ""].iter().map(OsString::from).collect();
        assert_eq!(join_words(&words), b"a b c ");
        assert_eq!(join_words(&[OsString::new()]), b"");
    }

    #[test]
    fn only_bulk_sends_may_use_gso() {
        let secs = Duration::from_secs;
        assert!(is_bulk(Some(1_000), None, None));
        assert!(!is_bulk(Some(999), None, None));
        assert!(!is_bulk(Some(2), None, None));
        assert!(is_bulk(None, Some(secs(1)), None));
        assert!(!is_bulk(None, None, None));
        assert!(is_bulk(Some(100_000), None, Some(10_001.0)));
        assert!(!is_bulk(Some(100_000), None, Some(10_000.0)));
        assert!(!is_bulk(None, Some(secs(5)), Some(100.0)));
    }

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"hello", b"ell"));
        assert!(contains(b"x", b""));
        assert!(!contains(b"he", b"hello"));
    }
}
