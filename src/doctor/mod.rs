//! `dgram doctor`: what this host's UDP can do, one check a line (SPEC §4 doctor). It
//! changes nothing on the host, and sends nothing beyond loopback unless asked
//! (`TARGET --probe`). Each check is bounded in time.

pub mod multicast;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's line: `ok  loopback-ipv4: ...`, and the numbers behind it.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(flatten)]
    pub values: serde_json::Map<String, Value>,
}

impl Check {
    fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check,
            status,
            detail: detail.into(),
            values: serde_json::Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Check {
        self.values.insert(key.to_string(), value.into());
        self
    }

    /// The line as text: `ok    CHECK: DETAIL`.
    pub fn line(&self) -> String {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        };
        format!("{status:<5} {}: {}", self.check, self.detail)
    }
}

/// What a 64-byte datagram costs in a receive buffer (its skb's truesize, measured here:
/// about 768 bytes; socket(7) counts buffers in that currency).
const SMALL_DATAGRAM_COST: u64 = 768;
/// The receive buffer dgram's servers ask for (see `recv::DEFAULT_RCVBUF`).
const WANTED_RCVBUF: u64 = crate::net::recv::DEFAULT_RCVBUF as u64;
/// How long a probe or a round trip waits.
const WAIT: Duration = Duration::from_secs(1);

/// Every check of the host; with `target`, name resolution and the route; with `probe`,
/// one datagram to it.
pub fn run(target: Option<&str>, probe: bool) -> Vec<Check> {
    let mut checks = vec![
        round_trip("loopback-ipv4", IpAddr::V4(Ipv4Addr::LOCALHOST), 65_507),
        round_trip("loopback-ipv6", IpAddr::V6(Ipv6Addr::LOCALHOST), 65_527),
    ];
    checks.extend(buffers());
    checks.push(udp_memory());
    checks.push(ports());
    checks.extend(features());
    checks.push(multicast::loopback_v4());
    checks.push(multicast::loopback_v6());
    checks.push(firewall());
    if let Some(t) = target {
        checks.extend(target_checks(t, probe));
    }
    checks
}

/// An echo of its own on port 0 of `ip`: the RTT of a small datagram, and the largest one
/// coming back whole.
fn round_trip(name: &'static str, ip: IpAddr, largest: usize) -> Check {
    let result = (|| -> std::io::Result<(Duration, bool)> {
        let echo = UdpSocket::bind((ip, 0))?;
        let client = UdpSocket::bind((ip, 0))?;
        client.connect(echo.local_addr()?)?;
        echo.set_read_timeout(Some(WAIT))?;
        client.set_read_timeout(Some(WAIT))?;
        let mut buf = vec![0u8; 65_536];
        let small = [0x5au8; 64];
        let started = Instant::now();
        client.send(&small)?;
        let (n, from) = echo.recv_from(&mut buf)?;
        echo.send_to(&buf[..n], from)?;
        let n = client.recv(&mut buf)?;
        let rtt = started.elapsed();
        if n != small.len() {
            return Ok((rtt, false));
        }
        let big: Vec<u8> = (0..largest).map(|i| i as u8).collect();
        client.send(&big)?;
        let (n, from) = echo.recv_from(&mut buf)?;
        echo.send_to(&buf[..n], from)?;
        let n = client.recv(&mut buf)?;
        Ok((rtt, n == largest && buf[..n] == big[..]))
    })();
    match result {
        Ok((rtt, true)) => Check::new(
            name,
            Status::Ok,
            format!(
                "round trip {} through an echo on {ip}; {largest} bytes came back whole",
                crate::base::units::human_duration(rtt)
            ),
        )
        .with("rtt_us", rtt.as_micros() as u64)
        .with("largest", largest),
        Ok((_, false)) => Check::new(
            name,
            Status::Fail,
            format!("a {largest}-byte datagram did not come back whole"),
        ),
        Err(e) if ip.is_ipv6() => Check::new(
            name,
            Status::Warn,
            format!(
                "no IPv6 on loopback here ({}): -6 and [::1] will not work",
                crate::base::error::describe_io(&e)
            ),
        ),
        Err(e) => Check::new(
            name,
            Status::Fail,
            format!(
                "loopback round trip failed: {}",
                crate::base::error::describe_io(&e)
            ),
        ),
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `rmem_default`, `rmem_max`, `wmem_max`, and what they mean.
fn buffers() -> Vec<Check> {
    let mut out = Vec::new();
    match read_number("/proc/sys/net/core/rmem_default") {
        Some(bytes) => {
            let holds = bytes / SMALL_DATAGRAM_COST;
            let detail = format!(
                "{bytes} bytes: the default receive buffer holds about {holds} datagrams of 64 B; a burst beyond that is dropped"
            );
            let c = if holds < 1000 {
                Check::new("rmem_default", Status::Warn, format!("{detail} (dgram asks for 4 MiB itself; other programs: sysctl -w net.core.rmem_default={WANTED_RCVBUF})"))
            } else {
                Check::new("rmem_default", Status::Ok, detail)
            };
            out.push(c.with("bytes", bytes).with("datagrams_64b", holds));
        }
        None => out.push(Check::new(
            "rmem_default",
            Status::Warn,
            "/proc/sys/net/core/rmem_default is not readable here",
        )),
    }
    match read_number("/proc/sys/net/core/rmem_max") {
        Some(bytes) if bytes < WANTED_RCVBUF => out.push(
            Check::new(
                "rmem_max",
                Status::Warn,
                format!("{bytes} bytes: --rcvbuf and dgram's 4 MiB default are capped to it; sysctl -w net.core.rmem_max={WANTED_RCVBUF}"),
            )
            .with("bytes", bytes),
        ),
        Some(bytes) => out.push(
            Check::new("rmem_max", Status::Ok, format!("{bytes} bytes: receive buffers up to that (--rcvbuf)")).with("bytes", bytes),
        ),
        None => out.push(Check::new("rmem_max", Status::Warn, "/proc/sys/net/core/rmem_max is not readable here")),
    }
    match read_number("/proc/sys/net/core/wmem_max") {
        Some(bytes) => out.push(
            Check::new(
                "wmem_max",
                Status::Ok,
                format!("{bytes} bytes: send buffers up to that (--sndbuf)"),
            )
            .with("bytes", bytes),
        ),
        None => out.push(Check::new(
            "wmem_max",
            Status::Warn,
            "/proc/sys/net/core/wmem_max is not readable here",
        )),
    }
    out
}

/// UDP memory in use (`/proc/net/sockstat`) against the pressure threshold (`udp_mem`).
fn udp_memory() -> Check {
    let used = std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("UDP:"))?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "mem")?;
            words.get(i + 1)?.parse::<u64>().ok()
        });
    let limits: Option<Vec<u64>> = std::fs::read_to_string("/proc/sys/net/ipv4/udp_mem")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        });
    match (used, limits.as_deref()) {
        (Some(used), Some([_, pressure, max])) => {
            let c = if used >= *pressure {
                Check::new("udp-memory", Status::Warn, format!("{used} pages in use, at or over the pressure threshold {pressure} (udp_mem): the kernel drops datagrams host-wide"))
            } else {
                Check::new(
                    "udp-memory",
                    Status::Ok,
                    format!("{used} pages in use of {pressure} before pressure (max {max})"),
                )
            };
            c.with("pages", used)
                .with("pressure_pages", *pressure)
                .with("max_pages", *max)
        }
        _ => Check::new(
            "udp-memory",
            Status::Warn,
            "/proc/net/sockstat or udp_mem is not readable here",
        ),
    }
}

fn ports() -> Check {
    let range: Option<Vec<u64>> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        });
    match range.as_deref() {
        Some([lo, hi]) if hi >= lo => {
            let n = hi - lo + 1;
            let status = if n < 1000 { Status::Warn } else { Status::Ok };
            Check::new(
                "ephemeral-ports",
                status,
                format!("{lo}-{hi}: {n} source ports for port 0 (one per relay session)"),
            )
            .with("low", *lo)
            .with("high", *hi)
        }
        _ => Check::new(
            "ephemeral-ports",
            Status::Warn,
            "ip_local_port_range is not readable here",
        ),
    }
}

/// What the kernel offers: GSO, GRO, PKTINFO, SO_MEMINFO, IP_RECVERR.
fn features() -> Vec<Check> {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return vec![Check::new(
            "features",
            Status::Fail,
            "cannot open a UDP socket",
        )];
    };
    let fd = socket.as_raw_fd();
    let yes_no = |name: &'static str, r: std::io::Result<()>, ok: &str, missing: &str| match r {
        Ok(()) => Check::new(name, Status::Ok, ok.to_string()),
        Err(e) => Check::new(
            name,
            Status::Warn,
            format!("{missing} ({})", crate::base::error::describe_io(&e)),
        ),
    };
    let gso = crate::net::sys::probe_gso(fd);
    vec![
        yes_no(
            "udp-gso",
            gso,
            "UDP_SEGMENT: bulk sends hand the kernel up to 128 datagrams a call",
            "no UDP GSO: bulk sends use sendmmsg, a little slower",
        ),
        yes_no(
            "udp-gro",
            crate::net::sys::enable_gro(fd),
            "UDP_GRO: listen --gro can take coalesced batches",
            "no UDP GRO: --gro warns and is ignored",
        ),
        yes_no(
            "ip-pktinfo",
            crate::net::sys::enable_pktinfo(fd, false),
            "IP_PKTINFO: servers on 0.0.0.0 reply from the address asked",
            "no IP_PKTINFO: replies on a wildcard bind leave from the kernel's choice",
        ),
        match crate::net::sys::kernel_drops(fd) {
            Some(_) => Check::new(
                "so-meminfo",
                Status::Ok,
                "SO_MEMINFO: --stats reports the kernel's drops exactly",
            ),
            None => Check::new(
                "so-meminfo",
                Status::Warn,
                "no SO_MEMINFO: kernel drops show as n/a",
            ),
        },
        yes_no(
            "ip-recverr",
            crate::net::sys::enable_recverr(fd, false),
            "IP_RECVERR: ICMP errors name what happened and who said so",
            "no IP_RECVERR: errors are the plain errno",
        ),
    ]
}

/// Whether firewall rules mention UDP (read only; nftables has no /proc view, so `nft
/// list ruleset` is asked, bounded; iptables' tables from /proc).
fn firewall() -> Check {
    let nft = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let tables = std::fs::read_to_string("/proc/net/ip_tables_names").unwrap_or_default();
    match nft {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let udp = text.lines().filter(|l| l.contains("udp")).count();
            if udp > 0 {
                Check::new(
                    "firewall",
                    Status::Warn,
                    format!(
                        "{udp} nftables rule lines mention udp: read them with nft list ruleset"
                    ),
                )
                .with("udp_rules", udp)
            } else {
                Check::new("firewall", Status::Ok, "no nftables rule mentions udp")
                    .with("udp_rules", 0)
            }
        }
        _ if !tables.trim().is_empty() => Check::new(
            "firewall",
            Status::Warn,
            format!(
                "iptables tables in use ({}): read them with iptables -S",
                tables.split_whitespace().collect::<Vec<_>>().join(", ")
            ),
        ),
        _ => Check::new(
            "firewall",
            Status::Ok,
            "no readable firewall ruleset mentions udp (nft not available or not permitted)",
        ),
    }
}

/// The target's addresses, the route and source address the kernel would use (a
/// connected socket: nothing sent), and with `probe` one datagram.
fn target_checks(target: &str, probe: bool) -> Vec<Check> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    let addrs: Vec<SocketAddr> =
        match crate::net::addr::parse_target(target, crate::net::addr::Family::Any) {
            Ok(first) => {
                let mut all: Vec<SocketAddr> = target
                    .to_socket_addrs()
                    .map(|a| a.collect())
                    .unwrap_or_default();
                if all.is_empty() {
                    all.push(first);
                }
                all
            }
            Err(e) => {
                out.push(Check::new(
                    "resolve",
                    Status::Fail,
                    format!("{target}: {e:#}"),
                ));
                return out;
            }
        };
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    out.push(
        Check::new(
            "resolve",
            Status::Ok,
            format!("{target} is {}", list.join(", ")),
        )
        .with("addresses", list),
    );
    let first = addrs[0];
    let socket = match UdpSocket::bind(crate::net::addr::unspecified_for(&first))
        .and_then(|s| s.connect(first).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            out.push(Check::new(
                "route",
                Status::Fail,
                format!(
                    "no route to {first}: {}",
                    crate::base::error::describe_io(&e)
                ),
            ));
            return out;
        }
    };
    let source = socket
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    out.push(
        Check::new(
            "route",
            Status::Ok,
            format!("to {first} from {source} (nothing sent)"),
        )
        .with("source", source),
    );
    if probe {
        out.push(probe_target(&socket, first));
    }
    out
}

/// One datagram to `target`: its answer, or the ICMP error in detail (SPEC §9).
fn probe_target(socket: &UdpSocket, target: SocketAddr) -> Check {
    let fd = socket.as_raw_fd();
    let _ = crate::net::sys::enable_recverr(fd, target.is_ipv6());
    let _ = socket.set_read_timeout(Some(WAIT));
    let started = Instant::now();
    if let Err(e) = socket.send(b"dgram doctor probe") {
        let e = crate::net::errors::net_error(fd, e, target, None);
        return Check::new("probe", Status::Fail, format!("{e:#}"));
    }
    let mut buf = [0u8; 65_536];
    match socket.recv(&mut buf) {
        Ok(n) => {
            let rtt = started.elapsed();
            Check::new("probe", Status::Ok, format!("{target} answered {n} bytes in {}", crate::base::units::human_duration(rtt)))
                .with("rtt_us", rtt.as_micros() as u64)
                .with("len", n)
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Check::new(
            "probe",
            Status::Warn,
            format!("no answer from {target} within 1s (silence is not an error for UDP: the service may not answer this datagram)"),
        ),
        Err(e) => {
            let e = crate::net::errors::net_error(fd, e, target, None);
            Check::new("probe", Status::Fail, format!("{e:#}"))
        }
    }
}

/// The report in `json` (one object per check) or text lines.
pub fn render(checks: &[Check], json: bool) -> String {
    let mut out = String::new();
    for c in checks {
        if json {
            out.push_str(
                &serde_json::to_string(c).unwrap_or_else(|_| json!({"check": c.check}).to_string()),
            );
        } else {
            out.push_str(&c.line());
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_json_carry_the_check_status_and_values() {
        let c = Check::new("rmem_max", Status::Warn, "212992 bytes").with("bytes", 212_992);
        assert_eq!(c.line(), "warn  rmem_max: 212992 bytes");
        let v: Value = serde_json::from_str(render(&[c], true).trim()).unwrap();
        assert_eq!(v["check"], "rmem_max");
        assert_eq!(v["status"], "warn");
        assert_eq!(v["bytes"], 212_992);
        let ok = Check::new("x", Status::Ok, "fine");
        assert_eq!(ok.line(), "ok    x: fine");
        assert_eq!(Check::new("y", Status::Fail, "no").line(), "fail  y: no");
    }
}
