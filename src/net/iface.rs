//! Network interfaces for multicast: `--iface NAME|ADDR|INDEX`, and what the kernel says
//! about memberships (/proc/net/igmp, /proc/net/igmp6) and interface flags, for the
//! multicast doctor.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use crate::base::error::describe_io;

/// An interface chosen with `--iface`, or the kernel's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iface {
    /// No `--iface`: the kernel picks (the interface of the route to the group).
    Default,
    /// By index (a name or index was given, or an IPv6 address was looked up).
    Index(u32),
    /// By IPv4 address.
    V4(Ipv4Addr),
}

/// The index of the interface called `name` (if_nametoindex(3)), or `None` if there is
/// none.
pub fn index_by_name(name: &str) -> Option<u32> {
    crate::net::sys::if_nametoindex(name)
}

/// The interface's name for an index, if one exists.
pub fn name_of(index: u32) -> Option<String> {
    crate::net::sys::if_indextoname(index)
}

/// Every (interface index, address) pair of this host (getifaddrs(3)).
pub fn addresses() -> io::Result<Vec<(u32, IpAddr)>> {
    Ok(crate::net::sys::interface_addrs()?
        .into_iter()
        .map(|a| (a.index, a.addr))
        .collect())
}

/// Resolve `--iface` for a group of the given family. Errors name the culprit.
pub fn resolve(text: &str, ipv6_group: bool) -> Result<Iface, String> {
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        let index: u32 = text
            .parse()
            .map_err(|_| format!("invalid --iface '{text}'"))?;
        return match name_of(index) {
            Some(_) => Ok(Iface::Index(index)),
            None => Err(format!(
                "invalid --iface '{text}': no interface has index {index}"
            )),
        };
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        if ip.is_ipv6() != ipv6_group {
            let (i, g) = if ip.is_ipv6() {
                ("IPv6", "IPv4")
            } else {
                ("IPv4", "IPv6")
            };
            return Err(format!(
                "address family mismatch: --iface {text} is {i} but the group is {g}"
            ));
        }
        let all = addresses().map_err(|e| {
            format!(
                "cannot list this host's interfaces for --iface '{text}': {}",
                describe_io(&e)
            )
        })?;
        let Some((index, _)) = all.into_iter().find(|(_, a)| *a == ip) else {
            return Err(format!(
                "invalid --iface '{text}': no interface of this host has that address"
            ));
        };
        return Ok(match ip {
            IpAddr::V4(v4) => Iface::V4(v4),
            IpAddr::V6(_) => Iface::Index(index),
        });
    }
    index_by_name(text)
        .map(Iface::Index)
        .ok_or_else(|| format!("invalid --iface '{text}': no network interface named '{text}'"))
}

/// The interface index of an `Iface` (0 for the kernel's choice, or an IPv4 address no
/// interface has).
pub fn index_of(iface: Iface) -> io::Result<u32> {
    Ok(match iface {
        Iface::Default => 0,
        Iface::Index(i) => i,
        Iface::V4(a) => addresses()?
            .into_iter()
            .find(|(_, ip)| *ip == IpAddr::V4(a))
            .map_or(0, |(i, _)| i),
    })
}

/// The interfaces on which `group` is listed as joined, from the text of /proc/net/igmp
/// (IPv4) or /proc/net/igmp6 (IPv6).
pub fn memberships(proc_text: &str, group: IpAddr) -> Vec<String> {
    let mut found = Vec::new();
    match group {
        IpAddr::V4(g) => {
            // "1\tlo        :     2      V3" then "\t\t\t\t030201EF     1 0:00000000\t\t0":
            // groups in host byte order (little endian here), under their device's line.
            let want = format!("{:08X}", u32::from_ne_bytes(g.octets()));
            let mut device = String::new();
            for line in proc_text.lines().skip(1) {
                if !line.starts_with('\t') {
                    if let Some(dev) = line.split_whitespace().nth(1) {
                        device = dev.to_string();
                    }
                } else if line.split_whitespace().next() == Some(want.as_str())
                    && !found.contains(&device)
                {
                    found.push(device.clone());
                }
            }
        }
        IpAddr::V6(g) => {
            // "1    lo              ff020000000000000000000000000001     1 0000000C 0"
            let want: String = g.octets().iter().map(|b| format!("{b:02x}")).collect();
            for line in proc_text.lines() {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() >= 3 && cols[2] == want && !found.contains(&cols[1].to_string()) {
                    found.push(cols[1].to_string());
                }
            }
        }
    }
    found
}

/// An interface's flags from /sys/class/net/NAME/flags.
pub fn flags(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// A sysctl's value, read from /proc/sys.
pub fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igmp_memberships_are_read_per_device() {
        let text = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
            1\tlo        :     2      V3\n\
            \t\t\t\t030201EF     1 0:00000000\t\t0\n\
            \t\t\t\t010000E0     1 0:00000000\t\t0\n\
            4\teth0      :     1      V3\n\
            \t\t\t\t010000E0     1 0:00000000\t\t0\n";
        assert_eq!(memberships(text, "239.1.2.3".parse().unwrap()), ["lo"]);
        assert_eq!(
            memberships(text, "224.0.0.1".parse().unwrap()),
            ["lo", "eth0"]
        );
        assert!(memberships(text, "239.9.9.9".parse().unwrap()).is_empty());
    }

    #[test]
    fn igmp6_memberships_are_read() {
        let text = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
            4    eth0            ff0200000000000000000001ff000002     1 00000004 0\n";
        assert_eq!(memberships(text, "ff02::1".parse().unwrap()), ["lo"]);
        assert_eq!(
            memberships(text, "ff02::1:ff00:2".parse().unwrap()),
            ["eth0"]
        );
    }

    #[test]
    fn ifaces_resolve_by_name_index_and_address() {
        let lo = index_by_name("lo").unwrap();
        assert_eq!(resolve("lo", false), Ok(Iface::Index(lo)));
        assert_eq!(resolve(&lo.to_string(), true), Ok(Iface::Index(lo)));
        assert_eq!(
            resolve("127.0.0.1", false),
            Ok(Iface::V4(Ipv4Addr::LOCALHOST))
        );
        assert!(resolve("127.0.0.1", true)
            .unwrap_err()
            .contains("family mismatch"));
        assert!(resolve("nosuchif0", false)
            .unwrap_err()
            .contains("no network interface named 'nosuchif0'"));
        assert!(resolve("9999", false)
            .unwrap_err()
            .contains("no interface has index"));
        assert!(resolve("10.255.255.254", false)
            .unwrap_err()
            .contains("no interface of this host"));
        assert_eq!(name_of(lo).as_deref(), Some("lo"));
        assert_eq!(index_of(Iface::V4(Ipv4Addr::LOCALHOST)).unwrap(), lo);
    }
}
