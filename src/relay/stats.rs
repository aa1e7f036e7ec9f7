//! The relay's `--stats`: per direction and per cause, sessions, ICMP errors; one JSON
//! object with `--format json`.

use std::io::Write;
use std::time::Duration;

use crate::relay::{Relay, Way};
use crate::report::stats::Summary;

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
        let way = |name: &str, w: &Way| {
            format!(
                "{name}: forwarded {} ({} bytes), dropped {}, duplicated {}, delayed {}, reordered {}, send errors {}",
                w.forwarded, w.bytes, w.impairment.dropped, w.impairment.duplicated, w.impairment.delayed, w.impairment.reordered, w.send_errors
            )
        };
        format!(
            "{}\n{}\nsessions: opened {}, expired {}, evicted {}, live {}; upstream ICMP errors {}; client ICMP errors {}; filtered {}; in {:.3}s",
            way("up", &c.ways.up),
            way("down", &c.ways.down),
            c.sessions_opened,
            c.sessions_expired,
            c.sessions_evicted,
            relay.sessions(),
            c.icmp_errors.summary(),
            c.client_icmp_errors.summary(),
            c.filtered,
            elapsed.as_secs_f64()
        )
    };
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}
