//! The echo policy (SPEC §4 echo): which datagrams `echo` never answers. A pure function,
//! so every forbidden class is tested here, exhaustively.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;

use crate::net::addr::normalize;

/// Why a datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Source port 0: no one can receive a reply there.
    SourcePortZero,
    /// Source ports below 1024: the classic reflection targets (DNS, NTP, chargen...).
    PrivilegedPort,
    /// From our own address and port: a reply would loop forever.
    Itself,
    /// From 0.0.0.0 or `::`.
    UnspecifiedSource,
    /// From a broadcast address.
    BroadcastSource,
    /// From a multicast address.
    MulticastSource,
    /// Sent to a broadcast address: answering would multiply one request by every host.
    BroadcastDestination,
    /// Sent to a multicast group: the same.
    MulticastDestination,
    /// Longer than the receive buffer: a reply could not be byte-identical.
    Truncated,
}

impl Refusal {
    /// The reason's name as stats print it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::SourcePortZero => "source_port_zero",
            Refusal::PrivilegedPort => "privileged_port",
            Refusal::Itself => "itself",
            Refusal::UnspecifiedSource => "unspecified_source",
            Refusal::BroadcastSource => "broadcast_source",
            Refusal::MulticastSource => "multicast_source",
            Refusal::BroadcastDestination => "broadcast_destination",
            Refusal::MulticastDestination => "multicast_destination",
            Refusal::Truncated => "truncated",
        }
    }
}

/// What the policy needs to know about the host.
#[derive(Clone, Debug)]
pub struct Host {
    /// The address the server is bound to (maybe a wildcard).
    pub local: SocketAddr,
    /// The host's broadcast addresses (255.255.255.255 and each interface's).
    pub broadcasts: Vec<Ipv4Addr>,
}

impl Host {
    fn is_broadcast(&self, ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v4) if self.broadcasts.contains(&v4))
    }
}

/// Whether to answer a datagram from `src`, sent to `dst` (when known), that was
/// `truncated` or not. `Ok(())` means answer.
pub fn check(
    host: &Host,
    src: SocketAddr,
    dst: Option<IpAddr>,
    truncated: bool,
) -> Result<(), Refusal> {
    let src = normalize(src);
    let ip = src.ip();
    if ip.is_unspecified() {
        return Err(Refusal::UnspecifiedSource);
    }
    if ip.is_multicast() {
        return Err(Refusal::MulticastSource);
    }
    if host.is_broadcast(ip) {
        return Err(Refusal::BroadcastSource);
    }
    if let Some(dst) = dst.map(|d| d.to_canonical()) {
        if dst.is_multicast() {
            return Err(Refusal::MulticastDestination);
        }
        if host.is_broadcast(dst) {
            return Err(Refusal::BroadcastDestination);
        }
    }
    if src.port() == 0 {
        return Err(Refusal::SourcePortZero);
    }
    if src.port() < 1024 {
        return Err(Refusal::PrivilegedPort);
    }
    let local = normalize(host.local);
    let own_ip = dst.map(|d| d.to_canonical()).unwrap_or(local.ip());
    if src.port() == local.port() && (ip == own_ip || ip == local.ip()) {
        return Err(Refusal::Itself);
    }
    if truncated {
        return Err(Refusal::Truncated);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refusals_are_named_as_the_stats_print_them() {
        let all = [
            (Refusal::SourcePortZero, "source_port_zero"),
            (Refusal::PrivilegedPort, "privileged_port"),
            (Refusal::Itself, "itself"),
            (Refusal::UnspecifiedSource, "unspecified_source"),
            (Refusal::BroadcastSource, "broadcast_source"),
            (Refusal::MulticastSource, "multicast_source"),
            (Refusal::BroadcastDestination, "broadcast_destination"),
            (Refusal::MulticastDestination, "multicast_destination"),
            (Refusal::Truncated, "truncated"),
        ];
        for (r, name) in all {
            assert_eq!(r.name(), name);
            // The JSON stats serialize the same name.
            assert_eq!(serde_json::to_value(r).unwrap(), name);
        }
    }

    fn host() -> Host {
        Host {
            local: "127.0.0.1:7000".parse().unwrap(),
            broadcasts: vec![
                Ipv4Addr::BROADCAST,
                Ipv4Addr::new(127, 255, 255, 255),
                Ipv4Addr::new(192, 168, 1, 255),
            ],
        }
    }
    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_ordinary_client_is_answered() {
        assert_eq!(
            check(&host(), sa("127.0.0.1:40000"), ip("127.0.0.1"), false),
            Ok(())
        );
        assert_eq!(check(&host(), sa("[::1]:40000"), ip("::1"), false), Ok(()));
        assert_eq!(check(&host(), sa("127.0.0.1:1024"), None, false), Ok(()));
    }

    #[test]
    fn every_forbidden_class_is_refused_with_its_reason() {
        let h = host();
        let cases = [
            (sa("127.0.0.1:0"), ip("127.0.0.1"), Refusal::SourcePortZero),
            (sa("127.0.0.1:53"), ip("127.0.0.1"), Refusal::PrivilegedPort),
            (
                sa("127.0.0.1:1023"),
                ip("127.0.0.1"),
                Refusal::PrivilegedPort,
            ),
            (sa("127.0.0.1:7000"), ip("127.0.0.1"), Refusal::Itself),
            (
                sa("0.0.0.0:40000"),
                ip("127.0.0.1"),
                Refusal::UnspecifiedSource,
            ),
            (sa("[::]:40000"), ip("::1"), Refusal::UnspecifiedSource),
            (
                sa("255.255.255.255:40000"),
                ip("127.0.0.1"),
                Refusal::BroadcastSource,
            ),
            (
                sa("192.168.1.255:40000"),
                ip("127.0.0.1"),
                Refusal::BroadcastSource,
            ),
            (
                sa("224.0.0.1:40000"),
                ip("127.0.0.1"),
                Refusal::MulticastSource,
            ),
            (sa("[ff02::1]:40000"), ip("::1"), Refusal::MulticastSource),
            (
                sa("127.0.0.1:40000"),
                ip("127.255.255.255"),
                Refusal::BroadcastDestination,
            ),
            (
                sa("127.0.0.1:40000"),
                ip("255.255.255.255"),
                Refusal::BroadcastDestination,
            ),
            (
                sa("127.0.0.1:40000"),
                ip("239.1.2.3"),
                Refusal::MulticastDestination,
            ),
            (
                sa("[::1]:40000"),
                ip("ff02::1"),
                Refusal::MulticastDestination,
            ),
        ];
        for (src, dst, want) in cases {
            assert_eq!(check(&h, src, dst, false), Err(want), "{src} -> {dst:?}");
        }
        assert_eq!(
            check(&h, sa("127.0.0.1:40000"), None, true),
            Err(Refusal::Truncated)
        );
    }

    #[test]
    fn mapped_sources_are_judged_as_ipv4() {
        let h = host();
        assert_eq!(
            check(&h, sa("[::ffff:127.0.0.1]:53"), None, false),
            Err(Refusal::PrivilegedPort)
        );
        assert_eq!(
            check(&h, sa("[::ffff:255.255.255.255]:4000"), None, false),
            Err(Refusal::BroadcastSource)
        );
        assert_eq!(
            check(
                &h,
                sa("[::ffff:127.0.0.1]:7000"),
                ip("::ffff:127.0.0.1"),
                false
            ),
            Err(Refusal::Itself)
        );
    }

    #[test]
    fn on_a_wildcard_bind_itself_is_the_destination_and_port() {
        let h = Host {
            local: sa("0.0.0.0:7000"),
            broadcasts: vec![],
        };
        assert_eq!(
            check(&h, sa("127.0.0.9:7000"), ip("127.0.0.9"), false),
            Err(Refusal::Itself)
        );
        assert_eq!(
            check(&h, sa("127.0.0.9:7000"), ip("127.0.0.1"), false),
            Ok(())
        );
    }

    proptest! {
        #[test]
        fn never_allows_a_forbidden_class(src: SocketAddr, dst: Option<IpAddr>, truncated: bool) {
            let h = host();
            if check(&h, src, dst, truncated).is_ok() {
                let s = normalize(src);
                prop_assert!(s.port() >= 1024);
                prop_assert!(!s.ip().is_unspecified() && !s.ip().is_multicast() && !h.is_broadcast(s.ip()));
                prop_assert!(!truncated);
                if let Some(d) = dst.map(|d| d.to_canonical()) {
                    prop_assert!(!d.is_multicast() && !h.is_broadcast(d));
                }
                prop_assert!(!(s.port() == 7000 && s.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)));
            }
        }
    }
}
