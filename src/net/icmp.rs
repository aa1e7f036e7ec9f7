//! ICMP errors in detail (SPEC §9): a report of the socket's error queue turned into what
//! the network said and who said it, with its kind for the servers' counters.

use std::net::SocketAddr;

use serde::Serialize;

use crate::net::sys::ErrorReport;

/// `SO_EE_ORIGIN_*` (linux/errqueue.h).
const ORIGIN_LOCAL: u8 = 1;
const ORIGIN_ICMP: u8 = 2;
const ORIGIN_ICMP6: u8 = 3;

/// What kind of error a report is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    PortUnreachable,
    HostUnreachable,
    Prohibited,
    TtlExceeded,
    MessageTooLong,
    Other,
}

impl Kind {
    /// The name the counters use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PortUnreachable => "port_unreachable",
            Kind::HostUnreachable => "host_unreachable",
            Kind::Prohibited => "prohibited",
            Kind::TtlExceeded => "ttl_exceeded",
            Kind::MessageTooLong => "message_too_long",
            Kind::Other => "other",
        }
    }
}

/// The kind of `r`, from the ICMP type and code (RFC 792, RFC 1812 §5.2.7.1, RFC 4443).
pub fn classify(r: &ErrorReport) -> Kind {
    match (r.origin, r.icmp_type, r.icmp_code) {
        (ORIGIN_ICMP, 3, 3) | (ORIGIN_ICMP6, 1, 4) => Kind::PortUnreachable,
        (ORIGIN_ICMP, 3, 4) | (ORIGIN_ICMP6, 2, _) => Kind::MessageTooLong,
        (ORIGIN_ICMP, 3, 9 | 10 | 13) | (ORIGIN_ICMP6, 1, 1 | 5 | 6) => Kind::Prohibited,
        (ORIGIN_ICMP, 3, _) | (ORIGIN_ICMP6, 1, _) => Kind::HostUnreachable,
        (ORIGIN_ICMP, 11, _) | (ORIGIN_ICMP6, 3, _) => Kind::TtlExceeded,
        // Local reports (an MTU this host already knows) and others: by their errno.
        _ => match r.errno {
            libc::ECONNREFUSED => Kind::PortUnreachable,
            libc::EHOSTUNREACH | libc::ENETUNREACH => Kind::HostUnreachable,
            libc::EACCES | libc::EPERM => Kind::Prohibited,
            libc::EMSGSIZE => Kind::MessageTooLong,
            _ => Kind::Other,
        },
    }
}

/// ICMP errors counted by kind: a server's `icmp_errors` (SPEC §9), a JSON object of
/// kind names and counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tally(std::collections::BTreeMap<&'static str, u64>);

impl Tally {
    /// Count `r`; how many of its kind there are now (the first few are worth a log line).
    pub fn add(&mut self, r: &ErrorReport) -> u64 {
        let n = self.0.entry(classify(r).name()).or_insert(0);
        *n += 1;
        *n
    }

    /// Every error counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// For the text summaries: `3 (host_unreachable 1, port_unreachable 2)`, or `0`.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "0".to_string();
        }
        let kinds: Vec<String> = self.0.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("{} ({})", self.total(), kinds.join(", "))
    }
}

/// An ICMP error that ended a send: its message, and the report behind it (for the
/// `icmp` object of `--stats --format json`). Exit 3, as every network error.
#[derive(Debug)]
pub struct IcmpError {
    pub report: ErrorReport,
    pub message: String,
}

impl std::fmt::Display for IcmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IcmpError {}

/// The `icmp` object of JSON stats: `kind`, `type`, `code`, `offender`, `mtu`.
pub fn to_json(r: &ErrorReport) -> serde_json::Value {
    serde_json::json!({
        "kind": classify(r).name(),
        "type": r.icmp_type,
        "code": r.icmp_code,
        "offender": r.offender.map(|o| o.to_string()),
        "mtu": (classify(r) == Kind::MessageTooLong && r.info > 0).then_some(r.info),
    })
}

/// What to tell the user about `r`, for a socket sending to `target` with `--ttl ttl`:
/// `host unreachable: 198.51.100.2 (reported by 192.0.2.1)`.
pub fn message(r: &ErrorReport, target: SocketAddr, ttl: Option<u32>) -> String {
    let dest = r.dest.unwrap_or(target);
    let by = match (r.origin, r.offender) {
        (ORIGIN_LOCAL, _) => " (reported by this host)".to_string(),
        (_, Some(o)) => format!(" (reported by {o})"),
        (_, None) => String::new(),
    };
    match classify(r) {
        Kind::PortUnreachable => format!("connection refused: nothing is listening on {dest}"),
        Kind::HostUnreachable => format!("host unreachable: {}{by}", dest.ip()),
        Kind::Prohibited => format!("prohibited by a firewall: {dest}{by}"),
        Kind::TtlExceeded => {
            let at = r.offender.map_or("a router".to_string(), |o| o.to_string());
            let ttl = ttl.map_or(String::new(), |t| format!(" (--ttl {t})"));
            format!("TTL exceeded in transit at {at}{ttl}")
        }
        Kind::MessageTooLong if r.info > 0 => format!(
            "message too long: the path MTU to {} is {}{by}",
            dest.ip(),
            r.info
        ),
        Kind::MessageTooLong => format!("message too long for the path to {}{by}", dest.ip()),
        Kind::Other => format!(
            "failed to send to {dest}: {}{by}",
            crate::base::error::describe_io(&std::io::Error::from_raw_os_error(r.errno))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(origin: u8, t: u8, code: u8, errno: i32) -> ErrorReport {
        ErrorReport {
            errno,
            origin,
            icmp_type: t,
            icmp_code: code,
            info: 0,
            offender: Some("192.0.2.1".parse().unwrap()),
            dest: Some("198.51.100.2:53".parse().unwrap()),
        }
    }

    #[test]
    fn a_tally_counts_by_kind_and_sums_them() {
        let mut t = Tally::default();
        assert_eq!((t.total(), t.summary()), (0, "0".to_string()));
        assert_eq!(t.add(&report(2, 3, 3, libc::ECONNREFUSED)), 1);
        assert_eq!(t.add(&report(2, 3, 3, libc::ECONNREFUSED)), 2);
        assert_eq!(t.add(&report(2, 3, 1, libc::EHOSTUNREACH)), 1);
        assert_eq!(t.total(), 3);
        assert_eq!(t.summary(), "3 (host_unreachable 1, port_unreachable 2)");
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"host_unreachable": 1, "port_unreachable": 2})
        );
    }

    #[test]
    fn each_icmp_error_says_what_happened_and_who_said_so() {
        let t: SocketAddr = "198.51.100.2:53".parse().unwrap();
        let m = |r: ErrorReport, ttl| message(&r, t, ttl);
        assert_eq!(
            m(report(2, 3, 3, libc::ECONNREFUSED), None),
            "connection refused: nothing is listening on 198.51.100.2:53"
        );
        assert_eq!(
            m(report(2, 3, 1, libc::EHOSTUNREACH), None),
            "host unreachable: 198.51.100.2 (reported by 192.0.2.1)"
        );
        assert_eq!(
            m(report(2, 3, 0, libc::ENETUNREACH), None),
            "host unreachable: 198.51.100.2 (reported by 192.0.2.1)"
        );
        assert_eq!(
            m(report(2, 3, 13, libc::EHOSTUNREACH), None),
            "prohibited by a firewall: 198.51.100.2:53 (reported by 192.0.2.1)"
        );
        assert_eq!(
            m(report(2, 11, 0, libc::EHOSTUNREACH), Some(1)),
            "TTL exceeded in transit at 192.0.2.1 (--ttl 1)"
        );
        let mut mtu = report(2, 3, 4, libc::EMSGSIZE);
        mtu.info = 1400;
        assert_eq!(
            m(mtu, None),
            "message too long: the path MTU to 198.51.100.2 is 1400 (reported by 192.0.2.1)"
        );
        // The same over ICMPv6.
        assert_eq!(
            classify(&report(3, 1, 4, libc::ECONNREFUSED)),
            Kind::PortUnreachable
        );
        assert_eq!(
            classify(&report(3, 1, 0, libc::ENETUNREACH)),
            Kind::HostUnreachable
        );
        assert_eq!(
            classify(&report(3, 1, 3, libc::EHOSTUNREACH)),
            Kind::HostUnreachable
        );
        assert_eq!(classify(&report(3, 1, 1, libc::EACCES)), Kind::Prohibited);
        assert_eq!(
            classify(&report(3, 2, 0, libc::EMSGSIZE)),
            Kind::MessageTooLong
        );
        assert_eq!(
            classify(&report(3, 3, 0, libc::EHOSTUNREACH)),
            Kind::TtlExceeded
        );
        // Local: the MTU this host already knows.
        let mut local = report(1, 0, 0, libc::EMSGSIZE);
        local.info = 1400;
        local.offender = None;
        assert_eq!(
            m(local, None),
            "message too long: the path MTU to 198.51.100.2 is 1400 (reported by this host)"
        );
        assert_eq!(Kind::Prohibited.name(), "prohibited");
        let mut mtu = report(2, 3, 4, libc::EMSGSIZE);
        mtu.info = 1400;
        let v = to_json(&mtu);
        assert_eq!(v["kind"], "message_too_long");
        assert_eq!(
            (v["type"].as_u64(), v["code"].as_u64(), v["mtu"].as_u64()),
            (Some(3), Some(4), Some(1400))
        );
        assert_eq!(v["offender"], "192.0.2.1");
        assert!(to_json(&report(2, 3, 3, libc::ECONNREFUSED))["mtu"].is_null());
        assert_eq!(classify(&report(9, 0, 0, libc::EIO)), Kind::Other);
        // ICMP type and code decide, whatever the errno says.
        assert_eq!(classify(&report(2, 3, 0, 0)), Kind::HostUnreachable);
        assert_eq!(classify(&report(3, 1, 3, 0)), Kind::HostUnreachable);
        assert_eq!(classify(&report(2, 11, 0, 0)), Kind::TtlExceeded);
        assert_eq!(classify(&report(2, 3, 13, 0)), Kind::Prohibited);
        // Without an MTU, the message says so without a number.
        let no_mtu = report(2, 3, 4, libc::EMSGSIZE);
        assert_eq!(
            message(&no_mtu, "198.51.100.2:53".parse().unwrap(), None),
            "message too long for the path to 198.51.100.2 (reported by 192.0.2.1)"
        );
        let mut one = no_mtu;
        one.info = 1;
        assert!(message(&one, "198.51.100.2:53".parse().unwrap(), None)
            .contains("MTU to 198.51.100.2 is 1"));
        // A local report with another errno is that errno's kind.
        assert_eq!(
            classify(&report(1, 0, 0, libc::ECONNREFUSED)),
            Kind::PortUnreachable
        );
        // A report of no known origin falls back to its errno.
        for (errno, kind) in [
            (libc::ECONNREFUSED, Kind::PortUnreachable),
            (libc::EHOSTUNREACH, Kind::HostUnreachable),
            (libc::ENETUNREACH, Kind::HostUnreachable),
            (libc::EACCES, Kind::Prohibited),
            (libc::EPERM, Kind::Prohibited),
            (libc::EMSGSIZE, Kind::MessageTooLong),
        ] {
            assert_eq!(classify(&report(0, 0, 0, errno)), kind, "errno {errno}");
        }
        let e = IcmpError {
            report: report(2, 3, 3, libc::ECONNREFUSED),
            message: "connection refused: nothing is listening on x".into(),
        };
        assert_eq!(
            e.to_string(),
            "connection refused: nothing is listening on x"
        );
        for k in [
            Kind::PortUnreachable,
            Kind::HostUnreachable,
            Kind::TtlExceeded,
            Kind::MessageTooLong,
            Kind::Other,
        ] {
            assert!(
                !k.name().is_empty()
                    && k.name().chars().all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
        assert_eq!(Kind::TtlExceeded.name(), "ttl_exceeded");
        assert_eq!(Kind::Other.name(), "other");
        assert!(m(report(9, 0, 0, libc::EIO), None)
            .starts_with("failed to send to 198.51.100.2:53: input/output error"));
    }
}
