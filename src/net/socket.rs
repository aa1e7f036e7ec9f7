//! The one socket builder: socket2 creates and configures a UDP socket, each option with
//! its own error context, then hands back a std `UdpSocket`. No other module uses socket2.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockRef, Socket, Type};
use tracing::warn;

use crate::base::error::{usage, IoContext};
use crate::net::iface::Iface;

/// Options for [`bind`], each `None`/`false` leaving the kernel's default.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// For IPv6 sockets: `IPV6_V6ONLY`. Always set explicitly, never left to
    /// `net.ipv6.bindv6only`: `false` makes `[::]` dual-stack.
    pub v6_only: bool,
    /// `SO_REUSEADDR`.
    pub reuse_addr: bool,
    /// `SO_REUSEPORT`: several sockets share the port, the kernel spreads datagrams.
    pub reuse_port: bool,
    /// `SO_RCVBUF` in bytes, asked for by the user: warned about when clamped.
    pub recv_buffer: Option<usize>,
    /// `SO_RCVBUF` when the user asked for none: best effort, capped without a word.
    pub recv_buffer_default: Option<usize>,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer: Option<usize>,
    /// `SO_BROADCAST`.
    pub broadcast: bool,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`.
    pub ttl: Option<u32>,
    /// `IP_TOS` / `IPV6_TCLASS`.
    pub tos: Option<u32>,
    /// `IP_MTU_DISCOVER = IP_PMTUDISC_DO` / its IPv6 twin: no fragmentation.
    pub dont_fragment: bool,
    /// `IP_RECVERR` / `IPV6_RECVERR`: ICMP errors queued with who sent them (Linux).
    pub recv_errors: bool,
    /// `UDP_GRO` (Linux): coalesced receives, split again by the receive batch; a warning
    /// where the kernel has none.
    pub gro: bool,
    /// `IP_PKTINFO` / `IPV6_RECVPKTINFO`: each datagram's destination (replies from a
    /// wildcard bind); a warning without.
    pub pktinfo: bool,
}

/// A bound socket and what the kernel did not grant. The builder logs nothing itself:
/// a server's first stderr line must be its `listening on`.
pub struct Bound {
    /// The socket, non-blocking.
    pub socket: UdpSocket,
    /// Warnings for the user (a buffer clamped by the kernel), to be logged by the caller
    /// once it has announced its address: `listening on` must be the first stderr line.
    pub warnings: Vec<String>,
    /// UDP GRO is on (asked for, and the kernel has it).
    pub gro: bool,
    /// PKTINFO is on (asked for, and the kernel has it).
    pub pktinfo: bool,
}

impl Bound {
    /// Log the warnings and hand over the socket.
    pub fn warn(self) -> UdpSocket {
        for w in &self.warnings {
            warn!("{w}");
        }
        self.socket
    }
}

/// Create a UDP socket for `local`'s family, apply `opts`, bind it to `local`.
/// The socket is non-blocking: every read waits in `poll` with a deadline.
pub fn bind(local: SocketAddr, opts: &Options) -> anyhow::Result<Bound> {
    let mut warnings = Vec::new();
    let domain = Domain::for_address(local);
    let ipv6 = local.is_ipv6();
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .io_context(|| format!("failed to create a UDP socket for {local}"))?;
    if ipv6 {
        socket
            .set_only_v6(opts.v6_only)
            .io_context(|| "failed to set IPV6_V6ONLY".into())?;
    }
    if opts.reuse_addr {
        socket
            .set_reuse_address(true)
            .io_context(|| "failed to set SO_REUSEADDR".into())?;
    }
    if opts.reuse_port {
        set_reuse_port(&socket)?;
    }
    set_buffers(&socket, opts, &mut warnings)?;
    if opts.broadcast {
        socket
            .set_broadcast(true)
            .io_context(|| "failed to set SO_BROADCAST".into())?;
    }
    set_ip_header(&socket, opts, ipv6)?;
    if opts.recv_errors {
        // Best effort: elsewhere than Linux the plain errno stands.
        let _ = crate::net::sys::enable_recverr(socket.as_raw_fd(), ipv6);
    }
    let (gro, pktinfo) = set_ancillary(&socket, opts, ipv6, &mut warnings);
    socket
        .set_nonblocking(true)
        .io_context(|| "failed to make the socket non-blocking".into())?;
    socket
        .bind(&local.into())
        .io_context(|| format!("failed to bind UDP socket to {local}"))?;
    Ok(Bound {
        socket: socket.into(),
        warnings,
        gro,
        pktinfo,
    })
}

/// SO_RCVBUF and SO_SNDBUF as asked (a warning when the kernel clamps one), or the
/// servers' default receive buffer.
fn set_buffers(socket: &Socket, opts: &Options, warnings: &mut Vec<String>) -> anyhow::Result<()> {
    if let Some(size) = opts.recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .io_context(|| format!("failed to set SO_RCVBUF to {size}"))?;
        warnings.extend(check_buffer(
            "--rcvbuf",
            "SO_RCVBUF",
            "rmem_max",
            size,
            socket.recv_buffer_size().ok(),
        ));
    }
    if let (None, Some(size)) = (opts.recv_buffer, opts.recv_buffer_default) {
        // Failure only means the kernel default stays; nothing to tell the user.
        let _ = socket.set_recv_buffer_size(size);
    }
    if let Some(size) = opts.send_buffer {
        socket
            .set_send_buffer_size(size)
            .io_context(|| format!("failed to set SO_SNDBUF to {size}"))?;
        warnings.extend(check_buffer(
            "--sndbuf",
            "SO_SNDBUF",
            "wmem_max",
            size,
            socket.send_buffer_size().ok(),
        ));
    }
    Ok(())
}

/// `--ttl`, `--tos` and `--dont-fragment`: values the kernel refuses are usage errors.
fn set_ip_header(socket: &Socket, opts: &Options, ipv6: bool) -> anyhow::Result<()> {
    if let Some(ttl) = opts.ttl {
        let r = if ipv6 {
            socket.set_unicast_hops_v6(ttl)
        } else {
            socket.set_ttl_v4(ttl)
        };
        r.map_err(|e| {
            usage!(
                "invalid --ttl {ttl}: {}",
                crate::base::error::describe_io(&e)
            )
        })?;
    }
    if let Some(tos) = opts.tos {
        let r = if ipv6 {
            socket.set_tclass_v6(tos)
        } else {
            socket.set_tos_v4(tos)
        };
        r.map_err(|e| {
            usage!(
                "invalid --tos {tos}: {}",
                crate::base::error::describe_io(&e)
            )
        })?;
    }
    if opts.dont_fragment {
        crate::net::sys::set_dont_fragment(socket.as_raw_fd(), ipv6)
            .map_err(|e| usage!("--dont-fragment: {}", crate::base::error::describe_io(&e)))?;
    }
    Ok(())
}

/// GRO and PKTINFO when asked for and available (a warning when not): whether each is on.
fn set_ancillary(
    socket: &Socket,
    opts: &Options,
    ipv6: bool,
    warnings: &mut Vec<String>,
) -> (bool, bool) {
    // GRO (opt-in): on loopback, segmenting in a GSO sender's send() is what paces a flood
    // to the receiver; with GRO the sender runs free and the receiver drops more (the
    // benchmark's GSO case: 15-23% delivered with GRO, 66-75% without).
    let gro = opts.gro
        && match crate::net::sys::enable_gro(socket.as_raw_fd()) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!(
                    "--gro: UDP GRO is not available here ({}); receiving without it",
                    crate::base::error::describe_io(&e)
                ));
                false
            }
        };
    let pktinfo = opts.pktinfo
        && match crate::net::sys::enable_pktinfo(socket.as_raw_fd(), ipv6) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!(
                    "IP_PKTINFO is not available here ({}): replies leave from the kernel's choice of address",
                    crate::base::error::describe_io(&e)
                ));
                false
            }
        };
    (gro, pktinfo)
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> anyhow::Result<()> {
    socket
        .set_reuse_port(true)
        .io_context(|| "failed to set SO_REUSEPORT".into())
}

/// A warning when the kernel gave a buffer smaller than asked.
///
/// Linux doubles the value set, for its bookkeeping overhead, and reports the doubled
/// value; it caps the request at `net.core.rmem_max` / `wmem_max` (socket(7)).
fn check_buffer(
    flag: &str,
    option: &str,
    sysctl: &str,
    asked: usize,
    got: Option<usize>,
) -> Option<String> {
    let got = got?;
    let effective = if cfg!(target_os = "linux") {
        got / 2
    } else {
        got
    };
    if effective < asked {
        Some(format!(
            "{flag} {asked}: the kernel gave {option} = {effective} bytes \
             (capped by net.core.{sysctl}; raise it with sysctl -w net.core.{sysctl}={asked})"
        ))
    } else {
        None
    }
}

/// A TCP listener on `local`, non-blocking, with room for a burst of connections (a
/// backlog of 1,024; the kernel caps it at `net.core.somaxconn`); `v6_only` as for UDP.
pub fn listen_tcp(local: SocketAddr, v6_only: bool) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .io_context(|| "failed to create a TCP socket".into())?;
    socket.set_reuse_address(true).ok();
    if local.is_ipv6() {
        socket.set_only_v6(v6_only).ok();
    }
    socket
        .bind(&local.into())
        .io_context(|| format!("failed to bind tcp://{local}"))?;
    socket
        .listen(1024)
        .io_context(|| format!("failed to listen on tcp://{local}"))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Join `group` on `iface` (any-source), or source-specific when `source` is given, and
/// turn `IP_MULTICAST_ALL` off so the socket receives only its own joins (Linux defaults
/// it on: a wildcard-bound socket would get every group any socket on the host joined).
pub fn join(
    socket: &UdpSocket,
    group: IpAddr,
    iface: Iface,
    source: Option<IpAddr>,
) -> anyhow::Result<()> {
    let sock = SockRef::from(socket);
    let what = || {
        let on = match iface {
            Iface::Default => "the default interface".to_string(),
            Iface::Index(i) => format!(
                "interface {}",
                crate::net::iface::name_of(i).unwrap_or_else(|| i.to_string())
            ),
            Iface::V4(a) => a.to_string(),
        };
        match source {
            Some(src) => format!("failed to join {group} from source {src} on {on}"),
            None => format!("failed to join {group} on {on}"),
        }
    };
    #[cfg(target_os = "linux")]
    {
        let r = match group {
            IpAddr::V4(_) => sock.set_multicast_all_v4(false),
            IpAddr::V6(_) => sock.set_multicast_all_v6(false),
        };
        r.io_context(|| "failed to turn IP_MULTICAST_ALL off".into())?;
    }
    if let Some(source) = source {
        let index = crate::net::iface::index_of(iface)
            .io_context(|| "cannot list this host's interfaces".into())?;
        return join_source(socket, group, source, index).io_context(what);
    }
    match (group, iface) {
        (IpAddr::V4(g), Iface::Index(i)) => {
            sock.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(i))
        }
        (IpAddr::V4(g), Iface::V4(a)) => sock.join_multicast_v4(&g, &a),
        (IpAddr::V4(g), Iface::Default) => sock.join_multicast_v4(&g, &Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(g), iface) => {
            crate::net::iface::index_of(iface).and_then(|index| sock.join_multicast_v6(&g, index))
        }
    }
    .io_context(what)
}

/// `MCAST_JOIN_SOURCE_GROUP` (RFC 3678), the protocol-independent source-specific join.
fn join_source(
    socket: &UdpSocket,
    group: IpAddr,
    source: IpAddr,
    index: u32,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    crate::net::sys::join_source_group(socket.as_raw_fd(), group, source, index)
}

/// Sender-side multicast settings: the outgoing interface, TTL / hop limit, and whether
/// our datagrams loop back to joiners on this host.
#[derive(Clone, Copy, Debug)]
pub struct GroupSend {
    pub iface: Iface,
    pub ttl: u32,
    pub loop_: bool,
}

/// Apply [`GroupSend`] to a sending socket.
pub fn set_multicast_send(socket: &UdpSocket, ipv6: bool, group: GroupSend) -> anyhow::Result<()> {
    let GroupSend { iface, ttl, loop_ } = group;
    let sock = SockRef::from(socket);
    if ipv6 {
        if iface != Iface::Default {
            let index = crate::net::iface::index_of(iface)
                .io_context(|| "cannot list this host's interfaces".into())?;
            sock.set_multicast_if_v6(index)
                .io_context(|| format!("failed to send from interface {index}"))?;
        }
        sock.set_multicast_hops_v6(ttl).map_err(|e| {
            usage!(
                "invalid --ttl {ttl}: {}",
                crate::base::error::describe_io(&e)
            )
        })?;
        sock.set_multicast_loop_v6(loop_)
            .io_context(|| "failed to set IPV6_MULTICAST_LOOP".into())?;
    } else {
        let addr = match iface {
            Iface::Default => None,
            Iface::V4(a) => Some(a),
            Iface::Index(i) => crate::net::iface::addresses()
                .io_context(|| "cannot list this host's interfaces".into())?
                .into_iter()
                .find_map(|(idx, ip)| match ip {
                    IpAddr::V4(a) if idx == i => Some(a),
                    _ => None,
                }),
        };
        if let Some(a) = addr {
            sock.set_multicast_if_v4(&a)
                .io_context(|| format!("failed to send multicast from {a}"))?;
        } else if iface != Iface::Default {
            return Err(usage!(
                "--iface: that interface has no IPv4 address to send from"
            ));
        }
        sock.set_multicast_ttl_v4(ttl).map_err(|e| {
            usage!(
                "invalid --ttl {ttl}: {}",
                crate::base::error::describe_io(&e)
            )
        })?;
        sock.set_multicast_loop_v4(loop_)
            .io_context(|| "failed to set IP_MULTICAST_LOOP".into())?;
    }
    Ok(())
}

/// The socket's receive buffer as the kernel reports it (Linux: twice what was set).
pub fn recv_buffer_size(socket: &UdpSocket) -> Option<usize> {
    SockRef::from(socket).recv_buffer_size().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_is_explicit() {
        let opts = Options::default();
        let s = bind("[::]:0".parse().unwrap(), &opts).unwrap().socket;
        let s2: Socket = s.into();
        assert!(!s2.only_v6().unwrap());
        let opts = Options {
            v6_only: true,
            ..Options::default()
        };
        let s: Socket = bind("[::]:0".parse().unwrap(), &opts)
            .unwrap()
            .socket
            .into();
        assert!(s.only_v6().unwrap());
    }

    #[test]
    fn options_reach_the_socket() {
        let opts = Options {
            reuse_addr: true,
            reuse_port: true,
            broadcast: true,
            ttl: Some(7),
            tos: Some(0x10),
            recv_buffer: Some(100_000),
            ..Options::default()
        };
        let s: Socket = bind("127.0.0.1:0".parse().unwrap(), &opts)
            .unwrap()
            .socket
            .into();
        assert!(s.reuse_address().unwrap());
        assert!(s.reuse_port().unwrap());
        assert!(s.broadcast().unwrap());
        assert_eq!(s.ttl_v4().unwrap(), 7);
        assert_eq!(s.tos_v4().unwrap(), 0x10);
        assert!(s.recv_buffer_size().unwrap() >= 100_000);
        // Twice this host's rmem_max is clamped, whatever rmem_max is (up to the int).
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
        let ask = max.saturating_mul(2).min(i32::MAX as usize);
        if ask > max {
            let huge = Options {
                recv_buffer: Some(ask),
                ..Options::default()
            };
            let bound = bind("127.0.0.1:0".parse().unwrap(), &huge).unwrap();
            assert!(
                bound.warnings.iter().any(|w| w.contains("rmem_max")),
                "{:?}",
                bound.warnings
            );
        }
    }

    #[test]
    fn bind_errors_name_the_address() {
        let first = bind("127.0.0.1:0".parse().unwrap(), &Options::default())
            .unwrap()
            .socket;
        let taken = first.local_addr().unwrap();
        let err = bind(taken, &Options::default()).err().unwrap();
        assert_eq!(
            format!("{err:#}"),
            format!("failed to bind UDP socket to {taken}: address already in use")
        );
    }

    #[test]
    fn a_bad_ttl_is_a_usage_error() {
        let opts = Options {
            ttl: Some(300),
            ..Options::default()
        };
        let err = bind("127.0.0.1:0".parse().unwrap(), &opts).err().unwrap();
        assert_eq!(crate::app::exit::code_for(&err), crate::app::exit::USAGE);
    }
}
