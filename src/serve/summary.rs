//! What a server says when it ends: the `--stats` summary, and for a server that
//! answers, the `echoed N of M datagrams` line or its JSON object.

use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::report::stats::Summary;
use crate::serve::printer::Printer;
use crate::serve::reply::{Replier, Responder};
use crate::serve::Config;

/// What the server says at its end: the replier's line or object, or the `--stats`
/// summary of what was received.
pub(crate) fn print(printer: &Printer, config: &Config, elapsed: Duration, socket: &UdpSocket) {
    if let Some(replier) = &printer.replier {
        report_replies(printer, replier, config.stats, config.json, elapsed, socket);
    } else if config.stats {
        received_summary(printer, elapsed, socket).print(config.json);
    }
}

/// `--stats` of a server that only receives: counts, kernel drops, and what `--seq`
/// headers say.
fn received_summary(printer: &Printer, elapsed: Duration, socket: &UdpSocket) -> Summary {
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
        summary.jitter_us = seq.jitter_us();
        summary.senders = Some(seq.senders());
    }
    summary.finish(elapsed, printer.received);
    summary.bitrate_of(summary.bytes);
    summary
}

/// The summary of a server that answers: with `--stats --format json` one object (the
/// summary's keys, `sent` = replies, and the reply counters); otherwise the one line
/// `echoed N of M datagrams, ...` (unless `-q`), with rate and kernel drops under `--stats`.
fn report_replies(
    printer: &Printer,
    replier: &Replier,
    stats: bool,
    json: bool,
    elapsed: Duration,
    socket: &UdpSocket,
) {
    let drops = crate::net::sys::kernel_drops(socket.as_raw_fd());
    let text = if json && stats {
        replies_json(printer, replier, elapsed, drops).to_string()
    } else if !tracing::enabled!(tracing::Level::WARN) && !stats {
        return; // -q
    } else {
        replies_line(printer, replier, stats.then_some(elapsed), drops)
    };
    let _ = std::io::stderr().write_all(
        format!(
            "{text}
"
        )
        .as_bytes(),
    );
}

/// `--stats --format json` of a server that answers.
fn replies_json(
    printer: &Printer,
    replier: &Replier,
    elapsed: Duration,
    drops: Option<u64>,
) -> serde_json::Value {
    let c = &replier.counts;
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
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.insert(
        "icmp_errors".to_string(),
        serde_json::to_value(&printer.icmp).unwrap_or_default(),
    );
    if let Some(pool) = &printer.exec {
        obj.extend(object(&pool.counts));
    }
    let mut extra = object(c);
    if replier.responder() != Responder::Echo {
        // A responder's replies are not echoes.
        if let Some(n) = extra.remove("echoed") {
            extra.insert("replied".to_string(), n);
        }
    }
    obj.extend(extra);
    // SPEC §12's keys, as relay's directions have them.
    obj.extend(object(&replier.impairment_counts()));
    v
}

/// `echoed N of M datagrams, ...`, and under `--stats` (`elapsed`) the rate and kernel
/// drops.
fn replies_line(
    printer: &Printer,
    replier: &Replier,
    elapsed: Option<Duration>,
    drops: Option<u64>,
) -> String {
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
    if let Some(elapsed) = elapsed {
        let rate = printer.received as f64 / elapsed.as_secs_f64().max(1e-9);
        line.push_str(&format!(
            " in {:.3}s ({rate:.1} datagrams/s)",
            elapsed.as_secs_f64()
        ));
        if let Some(d) = drops {
            line.push_str(&format!(", kernel drops {d}"));
        }
    }
    line
}

/// A value's JSON object's keys and values (none when it is not an object).
fn object(value: &impl serde::Serialize) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}
