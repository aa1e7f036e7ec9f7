//! `dgram scan`'s probes (SPEC §11): for a port whose well-known protocol dgram knows, a
//! valid request of that protocol, written from its RFC, so a real service answers; an
//! empty datagram elsewhere.

use std::net::SocketAddr;

/// The probe for `to`'s port, and the protocol's name (`None`: no well-known protocol, an
/// empty datagram).
pub fn for_port(to: SocketAddr) -> (Vec<u8>, Option<&'static str>) {
    let probe = match to.port() {
        7 => Some((b"dgram scan\n".to_vec(), "echo")),
        53 => Some((dns(". NS", 0x6467), "dns")),
        123 => Some((ntp(crate::wire::seq::now_ns()), "ntp")),
        137 => Some((netbios_node_status(0x6467), "netbios-ns")),
        161 => Some((snmpv3_discovery(0x6467), "snmp")),
        1900 => Some((ssdp(to), "ssdp")),
        3478 => Some((stun_binding(0x6467_7261_6d20_7363_616e_0001), "stun")),
        5353 => Some((
            dns("_services._dns-sd._udp.local PTR +norecurse", 0),
            "mdns",
        )),
        _ => None,
    };
    match probe {
        Some((bytes, name)) => (bytes, Some(name)),
        None => (Vec::new(), None),
    }
}

/// A DNS query (RFC 1035 §4.1) from dig-like words, with ID `id` (0 for mDNS, RFC 6762
/// §18.1).
fn dns(words: &str, id: u16) -> Vec<u8> {
    crate::wire::dns::parse_query(words)
        .and_then(|q| q.encode(id))
        .expect("a fixed query encodes")
}

/// An NTP client request (RFC 5905 §7.3): 48 bytes, LI 0, version 4, mode 3 (client), the
/// transmit timestamp now (a server copies it into its reply's origin timestamp).
fn ntp(unix_ns: u64) -> Vec<u8> {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let mut p = vec![0u8; 48];
    p[0] = 0b00_100_011; // LI 0, version 4, mode 3
    let secs = unix_ns / 1_000_000_000 + UNIX_TO_NTP;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    p[40..44].copy_from_slice(&(secs as u32).to_be_bytes());
    p[44..48].copy_from_slice(&(frac as u32).to_be_bytes());
    p
}

/// A NetBIOS node status request (RFC 1002 §4.2.17) for the name `*`: the one query every
/// NetBIOS name service answers without knowing a name.
fn netbios_node_status(id: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(50);
    p.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a query, opcode 0), one question, no records.
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    // "*" padded with NULs to 16 bytes, each nibble as 'A' + nibble (RFC 1001 §14.1).
    let mut name = [0u8; 16];
    name[0] = b'*';
    p.push(32);
    for b in name {
        p.push(b'A' + (b >> 4));
        p.push(b'A' + (b & 0x0f));
    }
    p.push(0);
    // NBSTAT (0x21), class IN.
    p.extend_from_slice(&[0x00, 0x21, 0x00, 0x01]);
    p
}

/// A BER type-length-value (short lengths: every part of a probe is under 128 bytes).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    debug_assert!(content.len() < 128);
    let mut out = vec![tag, content.len() as u8];
    out.extend_from_slice(content);
    out
}

/// A BER INTEGER of `v` (minimal two's complement, as BER wants).
fn int(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

/// An SNMPv3 discovery request (RFC 3414 §4, RFC 3412 §6): a get-request with no
/// variables, no user and the reportable flag, which an SNMPv3 agent answers with a
/// report carrying its engine ID, unauthenticated.
fn snmpv3_discovery(id: u32) -> Vec<u8> {
    let seq = |parts: &[Vec<u8>]| tlv(0x30, &parts.concat());
    let empty = || tlv(0x04, &[]);
    let global = seq(&[int(id), int(65_507), tlv(0x04, &[0x04]), int(3)]);
    // USM security parameters: no engine, boots and time 0, no user, no auth, no privacy.
    let usm = seq(&[empty(), int(0), int(0), empty(), empty(), empty()]);
    let pdu = tlv(0xa0, &[int(id), int(0), int(0), seq(&[])].concat());
    let scoped = seq(&[empty(), empty(), pdu]);
    seq(&[int(3), global, tlv(0x04, &usm), scoped])
}

/// An SSDP search (UPnP Device Architecture 2.0 §1.3.2, unicast form): who is there.
fn ssdp(to: SocketAddr) -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {to}\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\nUSER-AGENT: dgram/1 UPnP/2.0 dgram/1\r\n\r\n"
    )
    .into_bytes()
}

/// A STUN Binding request (RFC 8489 §5, §6): type 0x0001, no attributes, the magic
/// cookie, and a 96-bit transaction ID.
fn stun_binding(transaction: u128) -> Vec<u8> {
    let mut p = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    p.extend_from_slice(&transaction.to_be_bytes()[4..]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn dns_and_mdns_probes_decode_as_the_queries_they_are() {
        let (bytes, name) = for_port(at(53));
        assert_eq!(name, Some("dns"));
        let msg = crate::wire::dns::decode(&bytes).unwrap();
        assert_eq!(msg.queries.len(), 1);
        assert_eq!(msg.queries[0].name().to_string(), ".");
        assert_eq!(msg.queries[0].query_type().to_string(), "NS");
        let (bytes, name) = for_port(at(5353));
        assert_eq!(name, Some("mdns"));
        let msg = crate::wire::dns::decode(&bytes).unwrap();
        assert_eq!(msg.metadata.id, 0, "mDNS queries carry ID 0");
        assert!(!msg.metadata.recursion_desired);
        assert_eq!(
            msg.queries[0].name().to_string(),
            "_services._dns-sd._udp.local."
        );
    }

    #[test]
    fn ntp_is_a_version_4_client_request_with_its_transmit_time() {
        let p = ntp(1_700_000_000_500_000_000);
        assert_eq!(p.len(), 48);
        assert_eq!(p[0] >> 6, 0, "LI");
        assert_eq!((p[0] >> 3) & 7, 4, "version");
        assert_eq!(p[0] & 7, 3, "mode client");
        assert!(p[1..40].iter().all(|&b| b == 0));
        let secs = u32::from_be_bytes(p[40..44].try_into().unwrap());
        assert_eq!(secs, 1_700_000_000 + 2_208_988_800);
        let frac = u32::from_be_bytes(p[44..48].try_into().unwrap());
        assert_eq!(frac, 1 << 31, "half a second");
    }

    #[test]
    fn netbios_asks_the_node_status_of_star() {
        let p = netbios_node_status(0x1234);
        assert_eq!(&p[..12], &[0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p[12], 32);
        assert_eq!(&p[13..15], b"CK", "'*' is 0x2A");
        assert!(p[15..45].iter().all(|&b| b == b'A'), "NUL padding");
        assert_eq!(&p[45..], &[0, 0x00, 0x21, 0x00, 0x01]);
    }

    #[test]
    fn snmpv3_discovery_is_the_ber_message_rfc_3414_describes() {
        let p = snmpv3_discovery(0x6467);
        let want: &[u8] = &[
            0x30, 0x3a, // SNMPv3Message
            0x02, 0x01, 0x03, // msgVersion 3
            0x30, 0x0f, // msgGlobalData
            0x02, 0x02, 0x64, 0x67, // msgID
            0x02, 0x03, 0x00, 0xff, 0xe3, // msgMaxSize 65507
            0x04, 0x01, 0x04, // msgFlags: reportable
            0x02, 0x01, 0x03, // msgSecurityModel: USM
            0x04, 0x10, 0x30, 0x0e, // msgSecurityParameters
            0x04, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00, 0x04, 0x00,
            0x30, 0x12, // ScopedPDU
            0x04, 0x00, 0x04, 0x00, // contextEngineID, contextName
            0xa0, 0x0c, // GetRequest-PDU
            0x02, 0x02, 0x64, 0x67, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x00,
        ];
        assert_eq!(p, want);
        assert_eq!(
            int(0x80),
            [0x02, 0x02, 0x00, 0x80],
            "a leading zero keeps it positive"
        );
    }

    #[test]
    fn stun_and_ssdp_and_echo_have_their_shapes_and_other_ports_get_nothing() {
        let (p, name) = for_port(at(3478));
        assert_eq!(name, Some("stun"));
        assert_eq!(p.len(), 20);
        assert_eq!(&p[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
        let (p, _) = for_port(at(1900));
        let text = String::from_utf8(p).unwrap();
        assert!(text.starts_with("M-SEARCH * HTTP/1.1\r\nHOST: 192.0.2.1:1900\r\n"));
        assert!(text.contains("MAN: \"ssdp:discover\"\r\n") && text.ends_with("\r\n\r\n"));
        assert_eq!(for_port(at(7)).1, Some("echo"));
        assert!(!for_port(at(7)).0.is_empty());
        assert_eq!(for_port(at(123)).0.len(), 48);
        assert_eq!(for_port(at(137)).1, Some("netbios-ns"));
        assert_eq!(for_port(at(161)).1, Some("snmp"));
        assert_eq!(for_port(at(9)), (Vec::new(), None));
        assert_eq!(for_port(at(65_535)), (Vec::new(), None));
    }
}
