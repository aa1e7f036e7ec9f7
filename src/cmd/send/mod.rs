//! `dgram send`: send datagrams, optionally wait for replies (SPEC §4 send).
//!
//! A recipe: check the flags ([`Config::from_args`], pure), open and connect the
//! socket, pick the payload source and the reply matcher, run the send loop
//! ([`crate::send::run`]), then print the stats and judge the exit code.

mod config;
mod report;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tracing::debug;

pub use config::{Config, Payload, Terminals};

use crate::base::error::{usage, Ending, IoContext, IoError};
use crate::cli::SendArgs;
use crate::net::errors::broadcast_refused;
use crate::net::signal::{Signals, Wake};
use crate::net::socket::GroupSend;
use crate::report::output::Output;
use crate::send::run::{Counts, Replies};
use crate::send::source::{read_file, read_whole, Source};
use crate::wire::codec::decode;
use crate::wire::payload::{check_size, generated};
use config::with_seq_room;

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
    let mut config = Config::from_args(args, Terminals::detect())?;
    let target = &mut config.plan.target;
    if let (Some(g), SocketAddr::V6(v6)) = (group, target) {
        // A link-scoped group (ff02::...) needs its link: take it from --iface.
        if v6.scope_id() == 0 {
            let index = crate::net::iface::index_of(g.iface)
                .io_context(|| "cannot list this host's interfaces for --iface".into())?;
            v6.set_scope_id(index);
        }
    }
    debug!(?config, ?group, "send");
    let target = config.plan.target;
    let mut source = match open_source(&config, signals)? {
        Some(source) => source,
        None => return Ok(Ending::Signal(signals.pending().unwrap_or(libc::SIGINT))),
    };
    let socket = crate::net::socket::bind(config.bind, &config.options)?.warn();
    if let Some(g) = group {
        crate::net::socket::set_multicast_send(&socket, target.is_ipv6(), g)?;
    }
    // Sends block for room in the send buffer (microseconds); replies are read with
    // MSG_DONTWAIT after a poll, so blocking mode only affects sends.
    socket.set_nonblocking(false)?;
    if !matches!(config.plan.replies, Replies::Collect { .. }) {
        // Connected: the kernel reports ICMP port-unreachable as ECONNREFUSED and
        // delivers replies from the target only.
        socket.connect(target).map_err(|e| match e.raw_os_error() {
            Some(libc::EACCES) => broadcast_refused(target.ip()),
            _ => anyhow::Error::new(IoError(e)).context(format!("failed to connect to {target}")),
        })?;
    }
    let start = Instant::now();
    let mut counts = Counts::default();
    let mut output = Output::stdout(config.format)?.with_dns(config.dns);
    let input = (config.payload == Payload::Lines).then_some(libc::STDIN_FILENO);
    let result = crate::send::run::run(
        &config.plan,
        &socket,
        &mut source,
        input,
        signals,
        &mut output,
        &mut counts,
    );
    let flushed = output.flush();
    if config.stats {
        let icmp = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<crate::net::icmp::IcmpError>())
            .map(|e| e.report);
        report::print_stats(
            &config,
            &counts,
            start.elapsed(),
            source.replay_counts(),
            icmp,
        );
    }
    let ending = result?;
    flushed?;
    if ending == Ending::Done {
        report::judge(&config, &counts)?;
    }
    Ok(ending)
}

/// The payload source, reading `--file` or `--whole` stdin now (bounded). `None` when a
/// signal came while waiting for stdin.
fn open_source(config: &Config, signals: &Signals) -> anyhow::Result<Option<Source>> {
    let target = config.plan.target;
    let fixed = |bytes: Vec<u8>| Source::fixed(bytes, target);
    let decoded = |raw: Vec<u8>, what: String| {
        decode(&raw, config.encoding)
            .map(|b| with_seq_room(b, config.plan.seq))
            .map_err(|e| usage!("invalid {what}: {e}"))
    };
    let source = match &config.payload {
        Payload::Message(bytes) => fixed(bytes.clone()),
        Payload::Size(n) => fixed(generated(*n)),
        Payload::File(path) => {
            let raw = read_file("--file", path, &target, config.encoding)?;
            let bytes = decoded(raw, format!("--file {}", path.display()))?;
            check_size(bytes.len(), &target).map_err(|e| usage!("{e}"))?;
            fixed(bytes)
        }
        Payload::Whole => {
            // SA_RESTART handlers: stdin is read only once poll says it is readable, so a
            // signal while it is silent still ends the run.
            match signals.wait(Some(libc::STDIN_FILENO), None) {
                Ok(Wake::Signal(_)) => return Ok(None),
                Ok(_) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(IoError(e)).context("failed to wait for stdin"))
                }
            }
            let raw = read_whole(io::stdin().lock(), &target, config.encoding)?;
            let bytes = decoded(raw, "stdin".to_string())?;
            check_size(bytes.len(), &target).map_err(|e| usage!("{e}"))?;
            fixed(bytes)
        }
        Payload::Lines => Source::lines(io::stdin(), config.encoding, config.plan.seq, target),
        Payload::Replay(path, matches) => Source::replay(
            crate::wire::capture::CaptureReader::open(path, matches.clone())?,
            target,
        ),
    };
    Ok(Some(source))
}
