//! The relay's `--stats`: per direction and per cause, sessions, ICMP errors; one JSON
//! object with `--format json`.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::netem::shaper::ShaperCounts;
use crate::netem::PerDir;
use crate::relay::Relay;
use crate::report::stats::Summary;

/// One direction's counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Way {
    pub forwarded: u64,
    pub bytes: u64,
    /// What the direction's impairment did (filled in by [`Relay::counts`]).
    #[serde(flatten)]
    pub impairment: ShaperCounts,
    pub send_errors: u64,
}

/// What a relay counted, for `--stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// `up` and `down`.
    #[serde(flatten)]
    pub ways: PerDir<Way>,
    pub sessions_opened: u64,
    pub sessions_expired: u64,
    pub sessions_evicted: u64,
    /// The upstream's ICMP errors, by kind (SPEC §9).
    pub icmp_errors: crate::net::icmp::Tally,
    /// The ICMP errors replies to clients met (a client gone, a path to it broken).
    pub client_icmp_errors: crate::net::icmp::Tally,
    pub filtered: u64,
    pub truncated: u64,
    /// Sessions not opened: no socket, connection or child could be had (the open-files
    /// limit, most often).
    pub sessions_refused: u64,
    /// The streams' counts (SPEC §10).
    #[serde(flatten)]
    pub streams: StreamCounts,
}

/// What the stream legs counted (SPEC §10).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StreamCounts {
    /// Connections set up, accepted, children started.
    pub streams_opened: u64,
    /// Connections refused, reset, timed out; children that could not start.
    pub streams_failed: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames a stream ended inside of.
    pub partial_frames: u64,
    /// Frames over the UDP limit of the family they would go on (never cut).
    pub too_large: u64,
    /// Datagrams dropped for a full queue (while connecting) or a full stream buffer
    /// (a peer reading slower than datagrams arrive).
    pub queue_drops: u64,
}

/// `--stats`: per direction and per cause, sessions, upstream ICMP errors.
pub fn print(relay: &Relay<'_>, json: bool, elapsed: Duration) {
    let c = &relay.counts();
    let line = if json {
        let mut summary = Summary {
            sent: Some(c.ways.up.forwarded),
            received: Some(c.ways.down.forwarded),
            bytes: c.ways.up.bytes + c.ways.down.bytes,
            filtered: Some(c.filtered),
            truncated: Some(c.truncated),
            ..Summary::default()
        };
        summary.finish(elapsed, c.ways.up.forwarded + c.ways.down.forwarded);
        let mut v = serde_json::to_value(&summary).expect("a summary serializes");
        if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
            (v.as_object_mut(), serde_json::to_value(c))
        {
            obj.extend(extra);
            obj.insert("sessions".into(), relay.sessions().into());
        }
        v.to_string()
    } else {
        // Forwarded, dropped, duplicated and reordered always; the rest when they happened.
        let way = |name: &str, w: &Way| {
            let i = &w.impairment;
            let mut line = format!(
                "{name}: forwarded {} ({} bytes), dropped {}, duplicated {}, reordered {}",
                w.forwarded, w.bytes, i.dropped, i.duplicated, i.reordered
            );
            for (n, what) in i.labelled().into_iter().skip(1) {
                if n > 0 && !matches!(what, "duplicated" | "reordered") {
                    line.push_str(&format!(", {what} {n}"));
                }
            }
            if w.send_errors > 0 {
                line.push_str(&format!(", send errors {}", w.send_errors));
            }
            line
        };
        let t = &c.streams;
        let streams = if relay.has_streams() {
            format!(
                "\nstreams: opened {}, failed {}; frames in {}, out {}; partial frames {}, too large {}, queue drops {}",
                t.streams_opened, t.streams_failed, t.frames_in, t.frames_out, t.partial_frames, t.too_large, t.queue_drops
            )
        } else {
            String::new()
        };
        format!(
            "{}\n{}\nsessions: opened {}, expired {}, evicted {}, refused {}, live {}; upstream ICMP errors {}; client ICMP errors {}; filtered {}; in {:.3}s{streams}",
            way("up", &c.ways.up),
            way("down", &c.ways.down),
            c.sessions_opened,
            c.sessions_expired,
            c.sessions_evicted,
            c.sessions_refused,
            relay.sessions(),
            c.icmp_errors.summary(),
            c.client_icmp_errors.summary(),
            c.filtered,
            elapsed.as_secs_f64()
        )
    };
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}
