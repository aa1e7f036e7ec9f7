//! Addresses of SPEC §2: `HOST:PORT`, `[V6]:PORT`, `[V6%SCOPE]:PORT`, names through the
//! system resolver, a bare `PORT` for servers, and IPv4-mapped peers shown as IPv4.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};

use crate::net::iface::index_by_name;

/// The address family a command is restricted to by `-4` / `-6`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// Whatever the address or the resolver gives.
    #[default]
    Any,
    /// `-4`: IPv4 only.
    V4,
    /// `-6`: IPv6 only.
    V6,
}

impl Family {
    fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Family::Any => "",
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

/// Why an address was refused. Always exit 2: the input, not the network, is at fault.
#[derive(Debug, PartialEq, Eq)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddrError {}

/// What the text before the port names.
#[derive(Debug, PartialEq, Eq)]
pub enum Host<'a> {
    Ip(IpAddr, u32),
    Name(&'a str),
}

/// Split `text` into host and port without resolving anything (also the fuzz target's
/// entry: nothing here touches the network).
///
/// `bare_port` is what a lone `PORT` stands for (servers: loopback), or `None` when a
/// host is required (`send`).
pub fn split(text: &str, bare_port: Option<IpAddr>) -> Result<(Host<'_>, u16), AddrError> {
    let err = |why: &str| Err(AddrError(format!("invalid address '{text}': {why}")));
    if text.is_empty() {
        return err("empty");
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return err("missing ']' after the IPv6 address");
        };
        let (inside, after) = (&rest[..close], &rest[close + 1..]);
        let Some(port) = after.strip_prefix(':') else {
            return err("expected ':PORT' after ']', as in [::1]:9000");
        };
        let (ip, scope) = match inside.split_once('%') {
            Some((ip, scope)) => (ip, Some(scope)),
            None => (inside, None),
        };
        let Ok(ip) = ip.parse::<Ipv6Addr>() else {
            return err(&format!("'{ip}' is not an IPv6 address"));
        };
        let scope_id = match scope {
            None => 0,
            Some(s) => {
                scope_id(s).map_err(|why| AddrError(format!("invalid address '{text}': {why}")))?
            }
        };
        return Ok((Host::Ip(IpAddr::V6(ip), scope_id), parse_port(text, port)?));
    }
    match text.matches(':').count() {
        0 => match bare_port {
            Some(ip) if text.bytes().all(|b| b.is_ascii_digit()) => {
                Ok((Host::Ip(ip, 0), parse_port(text, text)?))
            }
            Some(_) => err("expected PORT, HOST:PORT or [IPV6]:PORT"),
            None => err("missing ':PORT' (expected HOST:PORT or [IPV6]:PORT)"),
        },
        1 => {
            let (host, port) = text.split_once(':').expect("one colon");
            if host.is_empty() {
                return err("missing host before ':'");
            }
            let port = parse_port(text, port)?;
            if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return match host.parse::<Ipv4Addr>() {
                    Ok(ip) => Ok((Host::Ip(IpAddr::V4(ip), 0), port)),
                    Err(_) => err(&format!("'{host}' is not an IPv4 address")),
                };
            }
            Ok((Host::Name(host), port))
        }
        _ => {
            let hint = match text.rsplit_once(':') {
                Some((ip, port)) if ip.parse::<Ipv6Addr>().is_ok() => format!(" [{ip}]:{port}"),
                _ => " [::1]:9000".to_string(),
            };
            err(&format!("an IPv6 address needs brackets, as in{hint}"))
        }
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, AddrError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError(format!(
            "invalid port '{port}' in '{text}': expected a number from 0 to 65535"
        )));
    }
    port.parse().map_err(|_| {
        AddrError(format!(
            "invalid port '{port}' in '{text}': expected a number from 0 to 65535"
        ))
    })
}

/// A `%SCOPE`: an interface index, or a name the system knows.
fn scope_id(scope: &str) -> Result<u32, String> {
    if scope.is_empty() {
        return Err("empty scope after '%'".into());
    }
    if scope.bytes().all(|b| b.is_ascii_digit()) {
        return scope
            .parse()
            .map_err(|_| format!("scope '{scope}' is out of range"));
    }
    index_by_name(scope).ok_or_else(|| format!("no network interface named '{scope}'"))
}

fn with_scope(addr: SocketAddr, scope: u32) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) if scope != 0 => {
            SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, scope))
        }
        other => other,
    }
}

fn check_family(text: &str, addr: SocketAddr, family: Family) -> Result<SocketAddr, AddrError> {
    if family.admits(&addr.ip()) {
        Ok(addr)
    } else {
        let kind = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        Err(AddrError(format!(
            "address family mismatch: '{text}' is {kind} but {} was given",
            family.flag()
        )))
    }
}

fn resolve(text: &str, name: &str, port: u16, family: Family) -> Result<SocketAddr, AddrError> {
    let found = (name, port)
        .to_socket_addrs()
        .map_err(|e| AddrError(format!("cannot resolve '{name}' in '{text}': {e}")))?;
    let mut any = false;
    for addr in found {
        any = true;
        if family.admits(&addr.ip()) {
            return Ok(normalize(addr));
        }
    }
    let why = if any {
        format!("'{name}' has no {} address", family.flag())
    } else {
        format!("'{name}' has no address")
    };
    Err(AddrError(format!("cannot resolve '{text}': {why}")))
}

/// Parse and resolve a destination (`send`): a host is required, port 0 is refused.
pub fn parse_target(text: &str, family: Family) -> Result<SocketAddr, AddrError> {
    let (host, port) = split(text, None)?;
    if port == 0 {
        return Err(AddrError(format!(
            "invalid address '{text}': port 0 cannot be sent to"
        )));
    }
    let addr = match host {
        Host::Ip(ip, scope) => with_scope(SocketAddr::new(ip, port), scope),
        Host::Name(name) => return resolve(text, name, port, family),
    };
    check_family(text, normalize(addr), family)
}

/// Parse and resolve a local address to bind (servers, `--bind`).
///
/// A bare `PORT` is loopback: `127.0.0.1:PORT`, or `[::1]:PORT` under `-6`.
pub fn parse_local(text: &str, family: Family) -> Result<SocketAddr, AddrError> {
    let loopback = match family {
        Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let (host, port) = split(text, Some(loopback))?;
    match host {
        // Binding an IPv4-mapped address is meaningless; keep what was written.
        Host::Ip(ip, scope) => {
            check_family(text, with_scope(SocketAddr::new(ip, port), scope), family)
        }
        Host::Name(name) => resolve(text, name, port, family),
    }
}

/// `--bind`: a bare port picks the source port on every interface; an address must be
/// of the target's family. Without it, the unspecified address of the target's family.
pub fn parse_bind(
    bind: Option<&str>,
    target: &SocketAddr,
    family: Family,
) -> Result<SocketAddr, AddrError> {
    let any = unspecified_for(target);
    match bind {
        None => Ok(any),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let port = p.parse().map_err(|_| {
                AddrError(format!(
                    "invalid --bind '{p}': expected a port from 0 to 65535"
                ))
            })?;
            Ok(SocketAddr::new(any.ip(), port))
        }
        Some(text) => {
            let addr = parse_local(text, family)?;
            if addr.is_ipv4() != target.is_ipv4() {
                return Err(AddrError(format!(
                    "--bind {addr} and target {target} are of different address families"
                )));
            }
            Ok(addr)
        }
    }
}

/// The unspecified address of `peer`'s family, port 0: where a socket that talks to
/// `peer` binds by default.
pub fn unspecified_for(peer: &SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Show and filter IPv4-mapped IPv6 peers (`::ffff:1.2.3.4`) as the IPv4 they are.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn local(s: &str) -> Result<SocketAddr, AddrError> {
        parse_local(s, Family::Any)
    }
    fn target(s: &str) -> Result<SocketAddr, AddrError> {
        parse_target(s, Family::Any)
    }
    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_bare_port_is_loopback_for_servers() {
        assert_eq!(local("9000"), Ok(sa("127.0.0.1:9000")));
        assert_eq!(local("0"), Ok(sa("127.0.0.1:0")));
        assert_eq!(parse_local("53", Family::V6), Ok(sa("[::1]:53")));
        assert!(target("9000").unwrap_err().0.contains("missing ':PORT'"));
    }

    #[test]
    fn literal_addresses_parse() {
        assert_eq!(target("127.0.0.1:53"), Ok(sa("127.0.0.1:53")));
        assert_eq!(target("[::1]:53"), Ok(sa("[::1]:53")));
        assert_eq!(local("0.0.0.0:9000"), Ok(sa("0.0.0.0:9000")));
        assert_eq!(local("[::]:9000"), Ok(sa("[::]:9000")));
        assert_eq!(target("[fe80::1%7]:53"), Ok(sa("[fe80::1%7]:53")));
    }

    #[test]
    fn scope_names_resolve_through_the_system() {
        let lo = crate::net::iface::index_by_name("lo").expect("loopback interface");
        let SocketAddr::V6(v6) = target("[fe80::1%lo]:53").unwrap() else {
            panic!()
        };
        assert_eq!(v6.scope_id(), lo);
        let err = target("[fe80::1%nosuchif0]:53").unwrap_err().0;
        assert!(
            err.contains("no network interface named 'nosuchif0'"),
            "{err}"
        );
        assert!(target("[fe80::1%]:53")
            .unwrap_err()
            .0
            .contains("empty scope"));
    }

    #[test]
    fn names_resolve_and_respect_the_family() {
        assert_eq!(target("localhost:53").unwrap().port(), 53);
        assert_eq!(
            parse_target("localhost:53", Family::V4),
            Ok(sa("127.0.0.1:53"))
        );
    }

    #[test]
    fn mapped_v4_is_shown_as_v4() {
        assert_eq!(normalize(sa("[::ffff:1.2.3.4]:80")), sa("1.2.3.4:80"));
        assert_eq!(target("[::ffff:127.0.0.1]:80"), Ok(sa("127.0.0.1:80")));
        assert_eq!(normalize(sa("[::1]:80")), sa("[::1]:80"));
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        let cases = [
            ("127.0.0.1:-1", "invalid port '-1'"),
            ("127.0.0.1:65536", "invalid port '65536'"),
            ("127.0.0.1:abc", "invalid port 'abc'"),
            ("127.0.0.1:", "invalid port ''"),
            ("256.1.1.1:80", "'256.1.1.1' is not an IPv4 address"),
            ("[::1:80", "missing ']'"),
            ("[::1]", "expected ':PORT'"),
            ("[::1]80", "expected ':PORT'"),
            ("::1:80", "needs brackets"),
            ("[zz::1]:80", "not an IPv6 address"),
            (":80", "missing host"),
            ("", "empty"),
            ("127.0.0.1:0", "port 0"),
        ];
        for (input, want) in cases {
            let got = target(input).unwrap_err().0;
            assert!(got.contains(want), "{input:?}: got {got:?}, want {want:?}");
        }
        assert!(local("65536").unwrap_err().0.contains("invalid port"));
        assert!(local("abc").unwrap_err().0.contains("expected PORT"));
    }

    #[test]
    fn an_unbracketed_ipv6_address_gets_the_bracketed_form_as_a_hint() {
        let hint = |s: &str| target(s).unwrap_err().to_string();
        assert_eq!(
            hint("::1:80"),
            "invalid address '::1:80': an IPv6 address needs brackets, as in [::1]:80"
        );
        assert_eq!(
            hint("fe80::2:53"),
            "invalid address 'fe80::2:53': an IPv6 address needs brackets, as in [fe80::2]:53"
        );
        // When what is before the last ':' is no address either, a generic example.
        assert_eq!(
            hint("a:b:c"),
            "invalid address 'a:b:c': an IPv6 address needs brackets, as in [::1]:9000"
        );
    }

    #[test]
    fn a_port_is_digits_only_even_where_rust_would_parse_a_sign() {
        // "+80".parse::<u16>() is Ok(80): the digits check is what refuses it.
        let e = target("127.0.0.1:+80").unwrap_err().0;
        assert!(e.contains("invalid port '+80'"), "{e}");
        assert!(local("+80").is_err());
    }

    #[test]
    fn a_scope_is_only_applied_when_there_is_one() {
        let scoped: SocketAddr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 53, 0, 5));
        assert_eq!(
            with_scope(scoped, 0),
            scoped,
            "no %SCOPE keeps the resolver's"
        );
        let SocketAddr::V6(v6) = with_scope(scoped, 7) else {
            panic!("still v6")
        };
        assert_eq!(v6.scope_id(), 7);
        let v4 = sa("127.0.0.1:53");
        assert_eq!(with_scope(v4, 7), v4);
    }

    #[test]
    fn family_mismatch_is_refused() {
        let e = parse_target("[::1]:53", Family::V4).unwrap_err().0;
        assert!(e.contains("family mismatch") && e.contains("-4"), "{e}");
        assert!(parse_target("127.0.0.1:53", Family::V6).is_err());
        assert!(parse_local("0.0.0.0:1", Family::V6).is_err());
    }

    #[test]
    fn the_fuzz_corpus_replays_without_panics() {
        // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/addr.rs
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/addr");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the committed corpus") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = split(text, None);
                let _ = split(text, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            }
            n += 1;
        }
        assert!(n > 50, "{n} corpus files");
    }

    proptest! {
        #[test]
        fn any_socket_addr_round_trips_through_its_display(addr: SocketAddr) {
            prop_assume!(addr.port() != 0);
            // Flow info is not part of the textual form; scope is.
            let addr = match addr {
                SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
                v4 => v4,
            };
            prop_assert_eq!(parse_target(&addr.to_string(), Family::Any), Ok(normalize(addr)));
        }

        #[test]
        fn no_input_panics(s in "\\PC{0,40}") {
            // split only: parse_* would hand random names to the resolver.
            let _ = split(&s, None);
            let _ = split(&s, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
    }
}
