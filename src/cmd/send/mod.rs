//! `dgram send`: send datagrams, optionally wait for replies (SPEC §4 send).
//!
//! A recipe: check the flags ([`Config::from_args`], pure), open and connect the
//! socket, pick the payload source and the reply matcher, run the send loop
//! ([`crate::engine::send`]), then print the stats and judge the exit code.

mod config;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

pub use config::{Config, Payload, Terminals};

use crate::cli::SendArgs;
use crate::codec::decode;
use crate::engine::send::{Counts, Replies};
use crate::exit::{broadcast_refused, usage, Ending, IoError, Unmet};
use crate::output::{Format, Output};
use crate::payload::{check_size, generated};
use crate::signal::{Signals, Wake};
use crate::socket::GroupSend;
use crate::source::{read_file, read_whole, Source};
use crate::stats::{percentiles, Summary};
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
            v6.set_scope_id(crate::iface::index_of(g.iface));
        }
    }
    debug!(?config, ?group, "send");
    let target = config.plan.target;
    let mut source = match open_source(&config, signals)? {
        Some(source) => source,
        None => return Ok(Ending::Signal(signals.pending().unwrap_or(libc::SIGINT))),
    };
    let socket = crate::socket::bind(config.bind, &config.options)?.warn();
    if let Some(g) = group {
        crate::socket::set_multicast_send(&socket, target.is_ipv6(), g)?;
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
    let result = crate::engine::send::run(
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
            .and_then(|e| e.downcast_ref::<crate::icmp::IcmpError>())
            .map(|e| e.report);
        print_stats(
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
        judge(&config, &counts)?;
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
            crate::capture::CaptureReader::open(path, matches.clone())?,
            target,
        ),
    };
    Ok(Some(source))
}

/// `--replay --stats`: the summary, then frames read, skipped by reason, and lateness.
fn print_replay_stats(
    summary: &Summary,
    counts: &Counts,
    skipped: &crate::capture::Skipped,
    too_large: u64,
    json: bool,
) {
    let l = &counts.lateness;
    let (p50, p99, max) = (l.percentile(50.0), l.percentile(99.0), l.max_us());
    if json {
        let mut v = serde_json::to_value(summary).expect("a summary serializes");
        if let Some(obj) = v.as_object_mut() {
            obj.insert("frames".into(), skipped.frames.into());
            let mut by_reason = serde_json::to_value(skipped).expect("counts serialize");
            if let Some(r) = by_reason.as_object_mut() {
                r.remove("frames");
                r.insert("too_large".into(), too_large.into());
            }
            obj.insert("skipped".into(), by_reason);
            if !l.is_empty() {
                obj.insert(
                    "lateness_us".into(),
                    serde_json::json!({"p50": p50, "p99": p99, "max": max}),
                );
            }
        }
        let _ = io::Write::write_all(&mut io::stderr(), format!("{v}\n").as_bytes());
        return;
    }
    summary.print(false);
    let mut line = format!(
        "replay: frames {}, sent {}; skipped: truncated {}, not UDP {}, unknown link {}, malformed {}, unmatched {}, too large {}",
        skipped.frames,
        counts.sent,
        skipped.truncated,
        skipped.not_udp,
        skipped.unknown_link,
        skipped.malformed,
        skipped.unmatched,
        too_large
    );
    if !l.is_empty() {
        line.push_str(&format!("; lateness p50/p99/max = {p50}/{p99}/{max} µs"));
    }
    let _ = io::Write::write_all(&mut io::stderr(), format!("{line}\n").as_bytes());
}

/// Exit 1 when the expected did not happen.
fn judge(config: &Config, counts: &Counts) -> anyhow::Result<()> {
    let target = config.plan.target;
    let (timeout, retries) = match &config.plan.replies {
        Replies::Each {
            timeout, retries, ..
        } => (*timeout, *retries),
        Replies::BySeq { timeout, .. } => (*timeout, 0),
        _ => (Duration::ZERO, 0),
    };
    match &config.plan.replies {
        Replies::Each { .. } | Replies::BySeq { .. } if counts.unanswered > 0 => {
            let per_try = crate::units::human_duration(timeout);
            let what = if counts.unanswered == 1 && counts.replies == 0 {
                "no reply".to_string()
            } else {
                format!("no reply to {} datagrams", counts.unanswered)
            };
            let tries = match retries + 1 {
                1 => format!("within {per_try}"),
                tries => format!("after {tries} tries of {per_try}"),
            };
            // Say what came that did not count: a DNS reply to another query, a late one.
            let ignored = match counts.stray {
                0 => String::new(),
                1 => " (1 datagram from it was not the answer and was ignored)".to_string(),
                n => format!(" ({n} datagrams from it were not the answer and were ignored)"),
            };
            Err(Unmet(format!("{what} from {target} {tries}{ignored}")).into())
        }
        Replies::Each { .. } | Replies::BySeq { .. } if counts.mismatched > 0 => {
            Err(Unmet(format!(
                "{} of {} replies from {target} did not contain the --expect pattern",
                counts.mismatched, counts.replies
            ))
            .into())
        }
        Replies::Each {
            dns: Some(want), ..
        } if counts.wrong_rcode.is_some() => Err(Unmet(format!(
            "the reply from {target} has RCODE {}, not {} (--expect-rcode)",
            crate::dns::rcode_name(counts.wrong_rcode.unwrap_or_default()),
            crate::dns::rcode_name(want.rcode.unwrap_or_default())
        ))
        .into()),
        Replies::Collect { timeout } if counts.replies == 0 => Err(Unmet(format!(
            "no reply to --collect within {}",
            crate::units::human_duration(*timeout)
        ))
        .into()),
        _ => Ok(()),
    }
}

fn print_stats(
    config: &Config,
    counts: &Counts,
    elapsed: Duration,
    replay: Option<(crate::capture::Skipped, u64)>,
    icmp: Option<crate::sys::ErrorReport>,
) {
    let replies = &config.plan.replies;
    let waits = !matches!(replies, Replies::None);
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
    if matches!(replies, Replies::Each { .. } | Replies::BySeq { .. }) {
        if config.plan.seq {
            summary.reordered = Some(counts.reordered);
            summary.duplicates = Some(counts.duplicates);
        }
        summary.lost = Some(counts.unanswered);
        let mut rtts = counts.rtts_us.clone();
        summary.rtt_us = percentiles(&mut rtts);
    }
    summary.finish(elapsed, counts.sent);
    let json = config.format == Format::Json;
    match (replay, icmp) {
        (Some((skipped, too_large)), _) => {
            print_replay_stats(&summary, counts, &skipped, too_large, json)
        }
        // The ICMP error that ended the run, in detail (SPEC §9).
        (None, Some(report)) if json => {
            let mut v = serde_json::to_value(&summary).expect("a summary serializes");
            if let Some(obj) = v.as_object_mut() {
                obj.insert("icmp".into(), crate::icmp::to_json(&report));
            }
            let _ = io::Write::write_all(&mut io::stderr(), format!("{v}\n").as_bytes());
        }
        (None, _) => summary.print(json),
    }
    if config.histogram && !counts.rtts_us.is_empty() && config.format != Format::Json {
        let chart = crate::stats::bar_chart(&counts.rtts_us, 8, 40);
        let _ = io::Write::write_all(&mut io::stderr(), chart.as_bytes());
    }
}
