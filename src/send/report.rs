//! What a send reports when it ends: the `--stats` summary (with the replay's frame
//! counts and lateness, or the ICMP error that ended it) and, when what was expected did
//! not happen, the one-line reason behind exit 1.

use std::io;
use std::time::Duration;

use crate::base::error::Unmet;
use crate::report::stats::Summary;
use crate::send::run::{Counts, Plan, Replies};

/// `--replay --stats`: the summary, then frames read, skipped by reason, and lateness.
fn replay_stats(
    summary: &Summary,
    counts: &Counts,
    skipped: &crate::wire::capture::Skipped,
    too_large: u64,
    json: bool,
) -> String {
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
        return format!("{v}\n");
    }
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
    format!("{}{line}\n", summary.text())
}

/// Exit 1 when the expected did not happen.
pub fn judge(plan: &Plan, counts: &Counts) -> anyhow::Result<()> {
    let target = plan.target;
    let (timeout, retries) = match &plan.replies {
        Replies::Each {
            timeout, retries, ..
        } => (*timeout, *retries),
        Replies::BySeq { timeout, .. } | Replies::Streamed { timeout, .. } => (*timeout, 0),
        _ => (Duration::ZERO, 0),
    };
    match &plan.replies {
        Replies::Each { .. } | Replies::BySeq { .. } | Replies::Streamed { .. }
            if counts.unanswered > 0 =>
        {
            let per_try = crate::base::units::human_duration(timeout);
            let what = if counts.unanswered == 1 && counts.replies == 0 {
                "no reply".to_string()
            } else {
                let n = counts.unanswered;
                format!("no reply to {n} datagram{}", if n == 1 { "" } else { "s" })
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
        Replies::Each { expect, .. }
        | Replies::BySeq { expect, .. }
        | Replies::Streamed { expect, .. }
            if counts.mismatched > 0 =>
        {
            Err(Unmet(mismatch_line(expect.as_deref(), counts, target)).into())
        }
        Replies::Each {
            dns: Some(want), ..
        } if counts.wrong_rcode.is_some() => Err(Unmet(format!(
            "the reply from {target} has RCODE {}, not {} (--expect-rcode)",
            crate::wire::dns::rcode_name(counts.wrong_rcode.unwrap_or_default()),
            crate::wire::dns::rcode_name(want.rcode.unwrap_or_default())
        ))
        .into()),
        Replies::Collect { timeout } if counts.replies == 0 => Err(Unmet(format!(
            "no reply to --collect within {}",
            crate::base::units::human_duration(*timeout)
        ))
        .into()),
        _ => Ok(()),
    }
}

/// How `--stats` is shown: as JSON (`-f json`), and with the RTT chart.
#[derive(Clone, Copy, Debug)]
pub struct Shown {
    pub json: bool,
    pub histogram: bool,
}

/// The one line of an `--expect` mismatch (SPEC §4 send): the pattern and what came back
/// as `text` shows them (a long reply shortened here; stdout has it whole), and how many
/// replies lacked it when there were several:
/// `expected 'pong', got 'pang' (4 bytes from 127.0.0.1:9000)`.
fn mismatch_line(pattern: Option<&[u8]>, counts: &Counts, target: std::net::SocketAddr) -> String {
    let shown = |bytes: &[u8]| {
        let mut text = Vec::new();
        crate::wire::codec::escape_text(bytes, &mut text);
        let text = String::from_utf8_lossy(&text).into_owned();
        match text.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text,
        }
    };
    let expected = shown(pattern.unwrap_or_default());
    let mut line = match &counts.first_mismatch {
        Some(m) if m.answer => format!(
            "expected '{expected}', got '{}' (the answer section of {} bytes from {})",
            shown(&m.got),
            m.len,
            m.peer
        ),
        Some(m) => format!(
            "expected '{expected}', got '{}' ({} bytes from {})",
            shown(&m.got),
            m.len,
            m.peer
        ),
        None => format!("expected '{expected}' in the replies from {target}"),
    };
    if counts.replies > 1 {
        line.push_str(&format!(
            "; {} of {} replies lacked it",
            counts.mismatched, counts.replies
        ));
    }
    line
}

/// Characters of a pattern or reply shown in the mismatch line, at most.
const SHOWN_CHARS: usize = 60;

/// `--stats`: the summary on stderr.
pub fn print_stats(
    plan: &Plan,
    shown: Shown,
    counts: &Counts,
    elapsed: Duration,
    replay: Option<(crate::wire::capture::Skipped, u64)>,
    icmp: Option<crate::net::sys::ErrorReport>,
) {
    let text = stats(plan, shown, counts, elapsed, replay, icmp);
    let _ = io::Write::write_all(&mut io::stderr(), text.as_bytes());
}

/// What `--stats` prints: the summary (JSON with `-f json`), a replay's frames and
/// lateness, the ICMP error that ended the run, and the RTT chart when asked.
pub(crate) fn stats(
    plan: &Plan,
    shown: Shown,
    counts: &Counts,
    elapsed: Duration,
    replay: Option<(crate::wire::capture::Skipped, u64)>,
    icmp: Option<crate::net::sys::ErrorReport>,
) -> String {
    let replies = &plan.replies;
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
    if matches!(
        replies,
        Replies::Each { .. } | Replies::BySeq { .. } | Replies::Streamed { .. }
    ) {
        if plan.seq {
            summary.reordered = Some(counts.reordered);
            summary.duplicates = Some(counts.duplicates);
        }
        summary.lost = Some(counts.unanswered);
        summary.rtt_us = counts.rtt_us.summary();
    }
    summary.finish(elapsed, counts.sent);
    // What went out, in bits of payload a second (iperf3's sender bitrate).
    summary.bitrate_of(counts.bytes);
    let json = shown.json;
    let mut text = match (replay, icmp) {
        (Some((skipped, too_large)), _) => {
            replay_stats(&summary, counts, &skipped, too_large, json)
        }
        // The ICMP error that ended the run, in detail (SPEC §9).
        (None, Some(report)) if json => {
            let mut v = serde_json::to_value(&summary).expect("a summary serializes");
            if let Some(obj) = v.as_object_mut() {
                obj.insert("icmp".into(), crate::net::icmp::to_json(&report));
            }
            format!("{v}\n")
        }
        (None, _) => summary.render(json),
    };
    if shown.histogram && !counts.rtt_us.is_empty() && !json {
        text.push_str(&crate::report::stats::bar_chart(&counts.rtt_us, 8, 40));
    }
    text
}
