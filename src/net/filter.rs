//! `--allow` / `--deny`: which sources a server accepts.

use std::net::IpAddr;

use ipnet::IpNet;

/// Source filter: a datagram passes when no `--deny` network holds its source and, if any
/// `--allow` was given, one of them does. Deny wins over allow.
#[derive(Clone, Debug, Default)]
pub struct SourceFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl SourceFilter {
    /// A filter from the `--allow` and `--deny` networks.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        SourceFilter { allow, deny }
    }

    /// True when the filter lets everything through (the fast path skips it).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// True when a datagram from `ip` may pass. IPv4-mapped sources are matched as IPv4.
    /// Without rules this is one check, so callers need no fast path of their own.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.is_open() {
            return true;
        }
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// Parse `--allow`/`--deny`: a CIDR network, or a lone address (a /32 or /128).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("invalid network '{text}': expected CIDR like 127.0.0.0/8 or an address")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> SourceFilter {
        let p = |v: &[&str]| v.iter().map(|s| parse_net(s).unwrap()).collect();
        SourceFilter::new(p(allow), p(deny))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_rules_admit_everything() {
        let f = filter(&[], &[]);
        assert!(f.is_open());
        assert!(f.admits(ip("10.1.2.3")) && f.admits(ip("::1")));
    }

    #[test]
    fn allow_restricts_and_deny_wins() {
        let f = filter(&["127.0.0.0/8"], &["127.0.0.5"]);
        assert!(f.admits(ip("127.0.0.1")));
        assert!(!f.admits(ip("127.0.0.5")));
        assert!(!f.admits(ip("10.0.0.1")));
        assert!(!f.admits(ip("::1")));
    }

    #[test]
    fn mapped_sources_match_v4_rules() {
        let f = filter(&["127.0.0.0/8"], &[]);
        assert!(f.admits(ip("::ffff:127.0.0.9")));
        let f = filter(&[], &["127.0.0.0/8"]);
        assert!(!f.admits(ip("::ffff:127.0.0.9")));
    }

    #[test]
    fn networks_parse_and_bad_ones_are_named() {
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.0/33")
            .unwrap_err()
            .contains("'10.0.0.0/33'"));
        assert!(parse_net("nope").is_err());
    }
}
