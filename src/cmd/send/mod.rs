//! `dgram send`: send datagrams, optionally wait for replies (SPEC §4 send).
//!
//! A recipe: check the flags ([`Config::from_args`], pure), open and connect the
//! socket, pick the payload source and the reply matcher, run the send loop
//! ([`crate::send::run`]), then print the stats and judge the exit code.

pub mod config;
pub mod flags;
#[cfg(test)]
mod report_tests;

use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use tracing::debug;

pub use crate::send::source::Payload;
pub use config::{Config, Terminals};

use crate::base::error::{Ending, IoContext, IoError};
use crate::cli::SendArgs;
use crate::net::errors::broadcast_refused;
use crate::net::signal::Signals;
use crate::net::socket::GroupSend;
use crate::report::output::{Format, Output};
use crate::send::report;
use crate::send::run::{Counts, Replies};
use crate::send::source::Source;

/// Run `dgram send`.
pub fn run(args: SendArgs, signals: &Signals) -> anyhow::Result<Ending> {
    run_inner(args, signals, None)
}

/// Run `dgram multicast send`: `send` to a group, with its interface, TTL and loop.
pub fn run_to_group(args: SendArgs, signals: &Signals, group: GroupSend) -> anyhow::Result<Ending> {
    run_inner(args, signals, Some(group))
}

/// `--stats`: the summary, with the ICMP error that ended the run in detail.
fn stats(
    config: &Config,
    counts: &Counts,
    start: Instant,
    source: &Source,
    result: &anyhow::Result<Ending>,
) {
    let icmp = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<crate::net::icmp::IcmpError>())
        .map(|e| e.report);
    report::print_stats(
        &config.plan,
        report::Shown {
            json: config.format == Format::Json,
            histogram: config.histogram,
        },
        counts,
        start.elapsed(),
        source.replay_counts(),
        icmp,
    );
}

/// `--dns '... +tcp'`: the query goes over TCP from the start.
fn asks_over_tcp(plan: &crate::send::run::Plan) -> bool {
    matches!(&plan.replies, Replies::Each { dns: Some(d), .. } if d.tcp)
}

/// The socket to send from: bound, set up for a group, blocking for sends, and connected
/// to the target unless collecting replies from anyone.
fn open_socket(config: &Config, group: Option<GroupSend>) -> anyhow::Result<UdpSocket> {
    let target = config.plan.target;
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
    Ok(socket)
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
    let mut source = match Source::open(
        &config.payload,
        config.encoding,
        config.plan.seq,
        target,
        signals,
    )? {
        Some(source) => source,
        None => return Ok(Ending::Signal(signals.pending().unwrap_or(libc::SIGINT))),
    };
    let socket = open_socket(&config, group)?;
    let start = Instant::now();
    let mut counts = Counts::default();
    let mut output = Output::stdout(config.format)?.with_dns(config.dns);
    let input = (config.payload == Payload::Lines).then_some(libc::STDIN_FILENO);
    let query = match &config.payload {
        Payload::Message(bytes) => bytes.as_slice(),
        _ => &[],
    };
    let result = if asks_over_tcp(&config.plan) {
        crate::send::tcp::ask(&config.plan, query, &mut output, &mut counts).map(|()| Ending::Done)
    } else {
        match crate::send::run::run(
            &config.plan,
            &socket,
            &mut source,
            input,
            signals,
            &mut output,
            &mut counts,
        ) {
            // As dig: the truncated UDP answer is not shown, the TCP one is.
            Ok(Ending::Done) if counts.tcp_retry => {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    b";; Truncated, retrying in TCP mode.\n",
                );
                crate::send::tcp::ask(&config.plan, query, &mut output, &mut counts)
                    .map(|()| Ending::Done)
            }
            other => other,
        }
    };
    let flushed = output.flush();
    if config.stats {
        stats(&config, &counts, start, &source, &result);
    }
    let ending = result?;
    flushed?;
    if ending == Ending::Done {
        report::judge(&config.plan, &counts)?;
    }
    Ok(ending)
}
