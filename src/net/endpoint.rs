//! Where a datagram came from or goes to, as a relay names it: a UDP address, a TCP
//! stream's peer (`tcp://ADDR`), a child's stdio (`exec:PID`), or dgram's own stdio.

use std::fmt;
use std::net::SocketAddr;

/// One side of a relay's leg, or a datagram's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A UDP address, shown bare (`127.0.0.1:53`), as every datagram's peer always was.
    Udp(SocketAddr),
    /// The far end of a TCP stream: `tcp://127.0.0.1:5300`.
    Tcp(SocketAddr),
    /// A child's stdin and stdout (`--to-exec`): `exec:PID`.
    Exec(u32),
    /// dgram's own stdin and stdout (`relay -`): `stdio`.
    Stdio,
}

impl Endpoint {
    /// The socket address, for a UDP or TCP side.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Endpoint::Udp(a) | Endpoint::Tcp(a) => Some(a),
            Endpoint::Exec(_) | Endpoint::Stdio => None,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint::Udp(a)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Udp(a) => a.fmt(f),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Exec(pid) => write!(f, "exec:{pid}"),
            Endpoint::Stdio => f.write_str("stdio"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_is_named_as_the_spec_names_it() {
        let a: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let v6: SocketAddr = "[::1]:5300".parse().unwrap();
        assert_eq!(Endpoint::from(a).to_string(), "127.0.0.1:53");
        assert_eq!(Endpoint::Tcp(v6).to_string(), "tcp://[::1]:5300");
        assert_eq!(Endpoint::Exec(4242).to_string(), "exec:4242");
        assert_eq!(Endpoint::Stdio.to_string(), "stdio");
        assert_eq!(Endpoint::Tcp(a).addr(), Some(a));
        assert_eq!(Endpoint::Udp(v6).addr(), Some(v6));
        assert_eq!(Endpoint::Exec(1).addr(), None);
        assert_eq!(Endpoint::Stdio.addr(), None);
    }
}
