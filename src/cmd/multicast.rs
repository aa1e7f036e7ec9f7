//! `dgram multicast join` and the options of `multicast send` (SPEC §4 multicast), with the
//! multicast doctor: when a join hears nothing, say why it may be silent.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::base::error::{usage, Ending};
use crate::cli::{JoinArgs, MulticastSendArgs};
use crate::net::addr::{parse_local, Family};
use crate::net::iface::{self, Iface};
use crate::net::recv;
use crate::net::signal::Signals;
use crate::net::socket::GroupSend;
use crate::serve::{serve, Extras};

/// Parse `GROUP:PORT`, checking it is a multicast group. A `%scope` picks the interface.
fn parse_group(text: &str, family: Family) -> anyhow::Result<SocketAddr> {
    let addr = parse_local(text, family)?;
    if !addr.ip().is_multicast() {
        return Err(usage!(
            "'{text}' is not a multicast group: IPv4 groups are 224.0.0.0/4 (e.g. 239.1.2.3:5000), IPv6 ff00::/8"
        ));
    }
    Ok(addr)
}

/// Check `multicast send`'s target and options; the rest is `send`'s.
pub fn sender_options(args: &MulticastSendArgs) -> anyhow::Result<GroupSend> {
    let group = parse_group(&args.send.target, args.send.family.family())?;
    if crate::cmd::send::flags::wants_reply(&args.send)
        || (args.send.dns.is_some() && !args.send.collect)
    {
        return Err(usage!(
            "replies to a group come from each member's own address: use --collect, not --reply, --expect, -w, --retries or a lone --dns"
        ));
    }
    let iface = match &args.iface {
        Some(text) => iface::resolve(text, group.is_ipv6()).map_err(|e| usage!("{e}"))?,
        None => scope_iface(group),
    };
    Ok(GroupSend {
        iface,
        ttl: args.send.socket.ttl.unwrap_or(1),
        loop_: !args.no_loop,
    })
}

fn scope_iface(group: SocketAddr) -> Iface {
    match group {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => Iface::Index(v6.scope_id()),
        _ => Iface::Default,
    }
}

/// What `multicast join` joins, checked from its flags alone (nothing bound yet): the
/// groups, one port and family for all of them, the interface and the source.
pub struct JoinPlan {
    pub groups: Vec<SocketAddr>,
    pub iface: Iface,
    pub source: Option<IpAddr>,
}

/// Check `multicast join`'s groups, interface and source.
pub fn join_plan(args: &JoinArgs) -> anyhow::Result<JoinPlan> {
    let family = args.family.family();
    let groups = args
        .groups
        .iter()
        .map(|g| parse_group(g, family))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = groups[0];
    if let Some(g) = groups
        .iter()
        .find(|g| g.port() != first.port() || g.is_ipv6() != first.is_ipv6())
    {
        return Err(usage!(
            "all groups are received on one socket: {g} differs from {first} in port or family"
        ));
    }
    let iface = match &args.iface {
        Some(text) => iface::resolve(text, first.is_ipv6()).map_err(|e| usage!("{e}"))?,
        None => scope_iface(first),
    };
    if let Some(src) = args.source {
        if src.is_ipv6() != first.is_ipv6() {
            return Err(usage!(
                "address family mismatch: --source {src} and group {}",
                first.ip()
            ));
        }
    }
    Ok(JoinPlan {
        groups,
        iface,
        source: args.source,
    })
}

/// Run `dgram multicast join`.
pub fn join(args: JoinArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let JoinPlan {
        groups,
        iface,
        source,
    } = join_plan(&args)?;
    let first = groups[0];
    // The wildcard of the group's family on the group's port, shared (SO_REUSEADDR) with
    // other receivers of the group; IPv6 v6-only so IPv4 traffic stays out.
    let local = crate::net::addr::unspecified_for(&first);
    let local = SocketAddr::new(local.ip(), first.port());
    let mut options = args.socket.options(if first.is_ipv6() {
        Family::V6
    } else {
        Family::V4
    });
    options.reuse_addr = true;
    options.reuse_port = args.receive.reuse_port;
    options.recv_buffer_default = Some(recv::DEFAULT_RCVBUF);
    options.gro = args.receive.gro;
    crate::net::recv::clear_ready_file(args.receive.ready_file.as_deref())?;
    let bound = crate::net::socket::bind(local, &options)?;

    let addrs: Vec<IpAddr> = groups.iter().map(SocketAddr::ip).collect();
    let diagnose = args.diagnose;
    let joins = |socket: &UdpSocket| -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for g in &addrs {
            crate::net::socket::join(socket, *g, iface, source)?;
            let on = crate::doctor::multicast::joined_on(*g, iface)
                .unwrap_or_else(|| "an unknown interface".to_string());
            lines.push(match source {
                Some(s) => format!("joined {g} on {on} (source {s})"),
                None => format!("joined {g} on {on}"),
            });
        }
        if diagnose {
            lines.extend(crate::doctor::multicast::diagnose(&addrs, iface, source));
        }
        Ok(lines)
    };
    let silence = || {
        let mut text = String::from("received nothing; what could keep datagrams away:\n");
        for line in crate::doctor::multicast::diagnose(&addrs, iface, source) {
            text.push_str(&line);
            text.push('\n');
        }
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    };
    let extras = Extras {
        format: Some((args.receive.printed_format(), args.receive.dns)),
        on_silence: Some(&silence),
        before_receive: Some(&joins),
        reply: None,
    };
    // Leaving happens when the socket closes (IP_DROP_MEMBERSHIP is implied by close).
    serve(bound, &super::serve_config(&args.receive), signals, extras)
}
