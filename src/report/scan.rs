//! How `dgram scan` shows its ports (SPEC §11): a line per port in port order,
//! `53/udp open udp-response 0.21ms`, or a JSON object per port; and the summary.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

/// A port's state, as nmap `-sU` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum State {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "filtered")]
    Filtered,
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Open,
        State::Closed,
        State::Filtered,
        State::OpenFiltered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Filtered => "filtered",
            State::OpenFiltered => "open|filtered",
        }
    }

    /// A state from its name (`--expect`).
    pub fn parse(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown state '{s}': use open, closed, filtered or open|filtered")
            })
    }
}

/// What one port came to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortReport {
    pub port: u16,
    pub state: State,
    /// `udp-response`, `port-unreach`, `admin-prohibited`, `no-response`, ...
    pub reason: &'static str,
    /// Who sent the ICMP error, when not the host scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<IpAddr>,
    /// From the last probe to its reply or error.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "micros")]
    pub rtt_us: Option<Duration>,
    /// The reply's length, for an open port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_len: Option<usize>,
}

fn micros<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_micros() as u64),
        None => s.serialize_none(),
    }
}

/// One port as a line: `53/udp open udp-response 0.21ms`, `9/udp filtered port-unreach
/// from 10.0.0.1 1.2ms`, `1234/udp open|filtered no-response`; JSON as one object.
pub fn line(p: &PortReport, json: bool, out: &mut String) {
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(p).expect("a port report serializes")
        );
        return;
    }
    let _ = write!(out, "{}/udp {} {}", p.port, p.state.name(), p.reason);
    if let Some(from) = p.from {
        let _ = write!(out, " from {from}");
    }
    if let Some(rtt) = p.rtt_us {
        let _ = write!(out, " {:.2}ms", rtt.as_secs_f64() * 1e3);
    }
    out.push('\n');
}

/// The summary on stderr: ports by state, probes sent, time taken.
pub fn summary(host: IpAddr, ports: &[PortReport], sent: u64, elapsed: Duration) -> String {
    let count = |s| ports.iter().filter(|p| p.state == s).count();
    format!(
        "scanned {} port{} of {host} in {:.2}s: {} open, {} closed, {} filtered, {} open|filtered; {sent} probe{} sent",
        ports.len(),
        if ports.len() == 1 { "" } else { "s" },
        elapsed.as_secs_f64(),
        count(State::Open),
        count(State::Closed),
        count(State::Filtered),
        count(State::OpenFiltered),
        if sent == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(port: u16, state: State, reason: &'static str) -> PortReport {
        PortReport {
            port,
            state,
            reason,
            from: None,
            rtt_us: None,
            reply_len: None,
        }
    }

    #[test]
    fn lines_read_as_the_spec_shows_them() {
        let mut p = report(53, State::Open, "udp-response");
        p.rtt_us = Some(Duration::from_micros(210));
        p.reply_len = Some(45);
        let mut out = String::new();
        line(&p, false, &mut out);
        assert_eq!(out, "53/udp open udp-response 0.21ms\n");
        let mut f = report(9, State::Filtered, "port-unreach");
        f.from = Some("10.0.0.1".parse().unwrap());
        f.rtt_us = Some(Duration::from_micros(1_200));
        line(&f, false, &mut out);
        line(
            &report(1234, State::OpenFiltered, "no-response"),
            false,
            &mut out,
        );
        assert_eq!(
            out,
            "53/udp open udp-response 0.21ms\n9/udp filtered port-unreach from 10.0.0.1 1.20ms\n1234/udp open|filtered no-response\n"
        );
    }

    #[test]
    fn json_carries_port_state_reason_from_rtt_and_reply_length() {
        let mut p = report(53, State::Open, "udp-response");
        p.rtt_us = Some(Duration::from_micros(210));
        p.reply_len = Some(45);
        let mut out = String::new();
        line(&p, true, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"port": 53, "state": "open", "reason": "udp-response", "rtt_us": 210, "reply_len": 45})
        );
        let mut f = report(9, State::OpenFiltered, "no-response");
        f.from = Some("10.0.0.1".parse().unwrap());
        out.clear();
        line(&f, true, &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"port": 9, "state": "open|filtered", "reason": "no-response", "from": "10.0.0.1"})
        );
    }

    #[test]
    fn states_parse_by_name_and_the_summary_counts_each() {
        for s in State::ALL {
            assert_eq!(State::parse(s.name()), Ok(s));
        }
        assert_eq!(State::parse("OPEN"), Ok(State::Open));
        assert!(State::parse("half-open")
            .unwrap_err()
            .contains("unknown state"));
        let ports = [
            report(1, State::Open, "udp-response"),
            report(2, State::Closed, "port-unreach"),
            report(3, State::Closed, "port-unreach"),
            report(4, State::OpenFiltered, "no-response"),
        ];
        let s = summary(
            "127.0.0.1".parse().unwrap(),
            &ports,
            5,
            Duration::from_millis(1500),
        );
        assert_eq!(
            s,
            "scanned 4 ports of 127.0.0.1 in 1.50s: 1 open, 2 closed, 0 filtered, 1 open|filtered; 5 probes sent"
        );
    }
}
