//! Multicast checks: `dgram doctor`'s (IPv4 multicast on lo, whether IPv6 multicast
//! loops on lo), and the multicast doctor (SPEC §4 multicast): when a join hears
//! nothing, what the kernel says about the join (/proc/net/igmp, igmp6), the interface it
//! used, its flags, rp_filter, and what the sender must do. Reads only; changes nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::{Check, Status};
use crate::net::iface::{self, Iface};

/// The interface the kernel lists `group` on, preferring the one asked for.
pub fn joined_on(group: IpAddr, iface: Iface) -> Option<String> {
    let table = if group.is_ipv6() {
        "/proc/net/igmp6"
    } else {
        "/proc/net/igmp"
    };
    let text = std::fs::read_to_string(table).ok()?;
    let found = iface::memberships(&text, group);
    let wanted = iface::index_of(iface).ok().and_then(iface::name_of);
    match wanted {
        Some(w) if found.contains(&w) => Some(w),
        _ => found.into_iter().next(),
    }
}

/// The multicast doctor: what the kernel says about the join, and what else could keep
/// datagrams away. Each line starts with `doctor:`.
pub fn diagnose(groups: &[IpAddr], iface: Iface, source: Option<IpAddr>) -> Vec<String> {
    let mut out = Vec::new();
    let mut devices = memberships(groups, &mut out);
    out.push(interface_line(iface, &devices));
    devices.sort();
    devices.dedup();
    for dev in &devices {
        out.extend(device_lines(dev, groups.iter().any(IpAddr::is_ipv4)));
    }
    out.push(
        "doctor: IP_MULTICAST_ALL is off on this socket: only the groups joined here arrive, not every group \
         another socket on this host joined on the port"
            .to_string(),
    );
    if let Some(s) = source {
        out.push(format!(
            "doctor: source-specific join: only datagrams from {s} arrive"
        ));
    }
    out.push(
        "doctor: sender: the TTL / hop limit must cover every router between (dgram multicast send --ttl N; \
         the default 1 stays on the local link), and the sender must send on this link (its --iface)"
            .to_string(),
    );
    out
}

/// Whether the kernel lists each group as joined (a line each into `out`); the devices
/// it lists them on.
fn memberships(groups: &[IpAddr], out: &mut Vec<String>) -> Vec<String> {
    let mut devices = Vec::new();
    for &g in groups {
        let table = if g.is_ipv6() {
            "/proc/net/igmp6"
        } else {
            "/proc/net/igmp"
        };
        match std::fs::read_to_string(table) {
            Ok(text) => {
                let on = iface::memberships(&text, g);
                if on.is_empty() {
                    out.push(format!(
                        "doctor: {g} is not listed in {table}: the join did not take"
                    ));
                } else {
                    out.push(format!(
                        "doctor: {g} is listed in {table} on {}",
                        on.join(", ")
                    ));
                    devices.extend(on);
                }
            }
            Err(_) => out.push(format!("doctor: {table} is not readable here (not Linux?)")),
        }
    }
    devices
}

/// Which interface the join is on, and what that means.
fn interface_line(iface: Iface, devices: &[String]) -> String {
    match iface {
        Iface::Default => format!(
            "doctor: interface: no --iface, so the kernel joined on the interface of its route to the group ({}); \
             datagrams arriving on any other interface are not received",
            if devices.is_empty() { "unknown".to_string() } else { devices.join(", ") }
        ),
        other => format!(
            "doctor: interface: joined on {} as asked (--iface)",
            iface::index_of(other).ok().and_then(iface::name_of).unwrap_or_else(|| format!("{other:?}"))
        ),
    }
}

/// A device's flags and, for IPv4 groups, its reverse-path filter.
fn device_lines(dev: &str, ipv4: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = iface::flags(dev) {
        const IFF_UP: u32 = 0x1;
        const IFF_LOOPBACK: u32 = 0x8;
        const IFF_MULTICAST: u32 = 0x1000;
        let yn = |b: bool| if b { "yes" } else { "no" };
        let mut line = format!(
            "doctor: {dev}: UP {}, MULTICAST {}",
            yn(f & IFF_UP != 0),
            yn(f & IFF_MULTICAST != 0)
        );
        if f & IFF_MULTICAST == 0 && f & IFF_LOOPBACK == 0 {
            line.push_str(" (without MULTICAST the interface does not take multicast: ip link set DEV multicast on)");
        } else if f & IFF_LOOPBACK != 0 {
            line.push_str(" (loopback carries IPv4 multicast when senders use --iface 127.0.0.1; IPv6 multicast is not looped here)");
        }
        out.push(line);
    }
    if ipv4 {
        let all = iface::sysctl("net/ipv4/conf/all/rp_filter").unwrap_or_else(|| "?".into());
        let this =
            iface::sysctl(&format!("net/ipv4/conf/{dev}/rp_filter")).unwrap_or_else(|| "?".into());
        out.push(format!(
                "doctor: {dev}: rp_filter all={all} {dev}={this} (the higher applies; 1 = strict drops datagrams \
                 whose source is not routed back through {dev}, 2 = loose)"
            ));
    }
    out
}

/// IPv4 multicast on lo with `--iface 127.0.0.1`: a join and a datagram to it, on lo only.
pub(super) fn loopback_v4() -> Check {
    let group: Ipv4Addr = "239.255.77.77".parse().expect("a group");
    let result = (|| -> anyhow::Result<bool> {
        let rx = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        crate::net::socket::join(
            &rx,
            IpAddr::V4(group),
            crate::net::iface::Iface::V4(Ipv4Addr::LOCALHOST),
            None,
        )?;
        rx.set_read_timeout(Some(Duration::from_millis(500)))?;
        let port = rx.local_addr()?.port();
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        tx.set_multicast_ttl_v4(0)?;
        crate::net::socket::set_multicast_send(
            &tx,
            false,
            crate::net::socket::GroupSend {
                iface: crate::net::iface::Iface::V4(Ipv4Addr::LOCALHOST),
                ttl: 0,
                loop_: true,
            },
        )?;
        tx.send_to(b"doctor", (group, port))?;
        let mut buf = [0u8; 16];
        Ok(matches!(rx.recv(&mut buf), Ok(6)))
    })();
    match result {
        Ok(true) => Check::new(
            "multicast-ipv4-lo",
            Status::Ok,
            "a join on lo with --iface 127.0.0.1 receives a local sender's datagrams",
        ),
        Ok(false) => Check::new(
            "multicast-ipv4-lo",
            Status::Warn,
            "joined on lo, but a local datagram did not arrive: check the MULTICAST flag of lo",
        ),
        Err(e) => Check::new(
            "multicast-ipv4-lo",
            Status::Warn,
            format!("cannot join on lo: {e:#}"),
        ),
    }
}

/// Whether IPv6 multicast loops on lo (this kernel's does not: use a veth pair).
pub(super) fn loopback_v6() -> Check {
    let Some(lo) = crate::net::sys::if_nametoindex("lo") else {
        return Check::new("multicast-ipv6-lo", Status::Warn, "no interface lo");
    };
    let group: Ipv6Addr = "ff02::4d:7777".parse().expect("a group");
    let result = (|| -> anyhow::Result<bool> {
        let rx = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
        crate::net::socket::join(
            &rx,
            IpAddr::V6(group),
            crate::net::iface::Iface::Index(lo),
            None,
        )?;
        rx.set_read_timeout(Some(Duration::from_millis(300)))?;
        let port = rx.local_addr()?.port();
        let tx = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?;
        crate::net::socket::set_multicast_send(
            &tx,
            true,
            crate::net::socket::GroupSend {
                iface: crate::net::iface::Iface::Index(lo),
                ttl: 0,
                loop_: true,
            },
        )?;
        let dest = SocketAddr::V6(std::net::SocketAddrV6::new(group, port, 0, lo));
        if tx.send_to(b"doctor", dest).is_err() {
            return Ok(false);
        }
        let mut buf = [0u8; 16];
        Ok(matches!(rx.recv(&mut buf), Ok(6)))
    })();
    match result {
        Ok(true) => Check::new("multicast-ipv6-lo", Status::Ok, "IPv6 multicast loops on lo"),
        Ok(false) | Err(_) => Check::new(
            "multicast-ipv6-lo",
            Status::Warn,
            "IPv6 multicast does not loop on lo here: test it across a veth pair between two network namespaces",
        ),
    }
}
