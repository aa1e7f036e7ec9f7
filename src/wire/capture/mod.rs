//! Reading the UDP datagrams of a capture (SPEC §3 `--replay`): pcap and pcapng, streamed
//! through pcap-parser's fixed buffer (memory does not grow with the file); the layers
//! below UDP sliced by etherparse (Ethernet with VLAN tags, raw IP; the Linux cooked v1
//! and v2 and BSD loopback headers are fixed-size and stripped here); IP fragments
//! reassembled in etherparse's pool, bounded by age. A datagram the capture cut short is
//! never returned cut: it is skipped and counted, as are frames that are not UDP.

use std::fs::File;
use std::io::BufReader;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use etherparse::defrag::IpDefragPool;
use etherparse::{EtherType, IpNumber, NetSlice, SlicedPacket, TransportSlice, UdpHeader};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use serde::Serialize;

use crate::base::error::usage;

/// The reader's buffer: a whole record must fit (a 256 KiB jumbo frame does).
const BUFFER: usize = 256 * 1024;
/// Fragments of a datagram not completed within this much capture time are given up.
const FRAGMENT_AGE_NS: u64 = 30_000_000_000;

/// One datagram of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Nanoseconds since the epoch, as the capture says.
    pub ts_ns: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// What reading counted, for `--stats`.
#[derive(Debug, Default, Serialize, Clone)]
pub struct Skipped {
    /// Frames read from the file.
    pub frames: u64,
    /// Cut short by the capture's snap length.
    pub truncated: u64,
    /// Not UDP (TCP, ICMP, ARP...).
    pub not_udp: u64,
    /// A link type the reader does not know.
    pub unknown_link: u64,
    /// Headers that do not parse.
    pub malformed: u64,
    /// Fragments of datagrams that never completed.
    pub fragments_pending: u64,
    /// Not matching `--match`.
    pub unmatched: u64,
}

/// `--match ADDR|:PORT|ADDR:PORT`: a datagram matches when its source or destination does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl Match {
    /// Parse `10.0.0.1`, `:5353`, `10.0.0.1:53`, `[::1]:53`.
    pub fn parse(text: &str) -> Result<Match, String> {
        if let Some(port) = text.strip_prefix(':') {
            let port = port
                .parse()
                .map_err(|_| format!("invalid port in --match '{text}'"))?;
            return Ok(Match {
                ip: None,
                port: Some(port),
            });
        }
        if let Ok(ip) = text
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            return Ok(Match {
                ip: Some(ip),
                port: None,
            });
        }
        match text.parse::<SocketAddr>() {
            Ok(a) => Ok(Match {
                ip: Some(a.ip()),
                port: Some(a.port()),
            }),
            Err(_) => Err(format!(
                "invalid --match '{text}': expected ADDR, :PORT or ADDR:PORT"
            )),
        }
    }

    fn admits(&self, a: SocketAddr) -> bool {
        self.ip
            .is_none_or(|ip| ip.to_canonical() == a.ip().to_canonical())
            && self.port.is_none_or(|p| p == a.port())
    }
}

/// The timestamp rules of one pcapng interface, or of a pcap file.
#[derive(Clone, Copy, Debug)]
struct Link {
    linktype: i32,
    /// Units per second of the timestamps.
    resolution: u64,
    offset: u64,
}

/// A capture file being read, one datagram at a time.
pub struct CaptureReader {
    path: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    legacy: Option<Link>,
    interfaces: Vec<Link>,
    defrag: IpDefragPool<u64, ()>,
    matches: Vec<Match>,
    /// What was skipped, and why.
    pub skipped: Skipped,
}

impl CaptureReader {
    /// Open `path`; a file that is not a capture is exit 2, naming it.
    pub fn open(path: &Path, matches: Vec<Match>) -> anyhow::Result<CaptureReader> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| {
            usage!(
                "cannot read --replay {name}: {}",
                crate::base::error::describe_io(&e)
            )
        })?;
        Self::from_reader(&name, BufReader::new(file), matches)
    }

    /// Read a capture from any reader (`name` for messages): what the fuzz target feeds.
    pub fn from_reader(
        name: &str,
        input: impl std::io::Read + Send + 'static,
        matches: Vec<Match>,
    ) -> anyhow::Result<CaptureReader> {
        let name = name.to_string();
        let reader = pcap_parser::create_reader(BUFFER, input).map_err(|e| match e {
            PcapError::Eof => usage!("--replay {name}: empty file, not a capture (offset 0)"),
            _ => usage!("--replay {name}: not a pcap or pcapng capture (offset 0)"),
        })?;
        Ok(CaptureReader {
            path: name,
            reader,
            legacy: None,
            interfaces: Vec::new(),
            defrag: IpDefragPool::new(),
            matches,
            skipped: Skipped::default(),
        })
    }

    /// The next UDP datagram that matches, or `None` at the end of the file. A capture cut
    /// in the middle of a record is exit 2, naming the offset.
    pub fn next_datagram(&mut self) -> anyhow::Result<Option<Captured>> {
        loop {
            let offset = self.reader.consumed();
            let found = match self.reader.next() {
                Ok((size, block)) => {
                    let found = handle(
                        block,
                        &mut self.legacy,
                        &mut self.interfaces,
                        &mut self.defrag,
                        &mut self.skipped,
                    );
                    self.reader.consume(size);
                    found
                }
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.reader.refill().map_err(|_| {
                        usage!("--replay {}: read error at offset {offset}", self.path)
                    })?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(usage!(
                    "--replay {}: the capture is cut in the middle of a record at offset {offset}",
                    self.path
                ))
                }
                Err(PcapError::BufferTooSmall) => {
                    return Err(usage!(
                        "--replay {}: a record at offset {offset} is larger than {} KiB",
                        self.path,
                        BUFFER >> 10
                    ))
                }
                Err(_) => {
                    return Err(usage!(
                        "--replay {}: not a valid capture record at offset {offset}",
                        self.path
                    ))
                }
            };
            let Some(c) = found else {
                continue;
            };
            if !self.matches.is_empty()
                && !self
                    .matches
                    .iter()
                    .any(|m| m.admits(c.src) || m.admits(c.dst))
            {
                self.skipped.unmatched += 1;
                continue;
            }
            return Ok(Some(c));
        }
    }
}

/// One block: interface and header blocks update the timestamp rules; a packet block
/// yields its UDP datagram, if it has a whole one.
fn handle(
    block: PcapBlockOwned<'_>,
    legacy: &mut Option<Link>,
    interfaces: &mut Vec<Link>,
    defrag: &mut IpDefragPool<u64, ()>,
    skipped: &mut Skipped,
) -> Option<Captured> {
    let frame = frame(block, legacy, interfaces, skipped)?;
    datagram(frame, defrag, skipped)
}

/// A packet block's frame, with its link and time in nanoseconds.
struct Frame<'a> {
    link: Link,
    ts_ns: u64,
    data: &'a [u8],
    caplen: u32,
    origlen: u32,
}

/// The frame of a packet block; header and interface blocks update the timestamp rules
/// and yield none.
fn frame<'a>(
    block: PcapBlockOwned<'a>,
    legacy: &mut Option<Link>,
    interfaces: &mut Vec<Link>,
    skipped: &mut Skipped,
) -> Option<Frame<'a>> {
    let (link, ts_ns, data, caplen, origlen) = match block {
        PcapBlockOwned::LegacyHeader(h) => {
            *legacy = Some(Link {
                linktype: h.network.0,
                resolution: if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                },
                offset: 0,
            });
            return None;
        }
        PcapBlockOwned::Legacy(b) => {
            let link = (*legacy)?;
            let ts = u64::from(b.ts_sec) * 1_000_000_000
                + u64::from(b.ts_usec) * (1_000_000_000 / link.resolution);
            (link, ts, b.data, b.caplen, b.origlen)
        }
        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
            interfaces.clear();
            return None;
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            interfaces.push(Link {
                linktype: idb.linktype.0,
                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                offset: idb.ts_offset().max(0) as u64,
            });
            return None;
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            let Some(link) = interfaces.get(epb.if_id as usize).copied() else {
                skipped.frames += 1;
                skipped.malformed += 1;
                return None;
            };
            let (sec, frac) = epb.decode_ts(link.offset, link.resolution);
            let ns = u64::from(sec) * 1_000_000_000
                + (u128::from(frac) * 1_000_000_000 / u128::from(link.resolution.max(1))) as u64;
            (link, ns, epb.data, epb.caplen, epb.origlen)
        }
        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
            let link = interfaces.first().copied()?;
            (link, 0, spb.data, spb.data.len() as u32, spb.origlen)
        }
        PcapBlockOwned::NG(_) => return None,
    };
    Some(Frame {
        link,
        ts_ns,
        data,
        caplen,
        origlen,
    })
}

/// The UDP datagram of a frame, if it holds a whole one (reassembled from fragments when
/// it came in several).
fn datagram(
    frame: Frame<'_>,
    defrag: &mut IpDefragPool<u64, ()>,
    skipped: &mut Skipped,
) -> Option<Captured> {
    let Frame {
        link,
        ts_ns,
        data,
        caplen,
        origlen,
    } = frame;
    skipped.frames += 1;
    let data = &data[..(caplen as usize).min(data.len())];
    if caplen < origlen {
        skipped.truncated += 1;
        return None;
    }
    let sliced = match slice(link.linktype, data) {
        Some(Ok(s)) => s,
        Some(Err(())) => {
            skipped.malformed += 1;
            return None;
        }
        None => {
            skipped.unknown_link += 1;
            return None;
        }
    };
    let (src_ip, dst_ip, fragmented) = match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
            v4.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(v6)) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
            v6.is_payload_fragmented(),
        ),
        _ => {
            skipped.not_udp += 1;
            return None;
        }
    };
    if fragmented {
        return reassemble(&sliced, ts_ns, (src_ip, dst_ip), defrag, skipped);
    }
    match &sliced.transport {
        Some(TransportSlice::Udp(udp)) => Some(Captured {
            ts_ns,
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload().to_vec(),
        }),
        _ => {
            skipped.not_udp += 1;
            None
        }
    }
}

/// A fragment into the reassembly pool (fragments older than [`FRAGMENT_AGE_NS`] let
/// go first); the datagram once the last fragment of it came.
fn reassemble(
    sliced: &SlicedPacket<'_>,
    ts_ns: u64,
    (src_ip, dst_ip): (IpAddr, IpAddr),
    defrag: &mut IpDefragPool<u64, ()>,
    skipped: &mut Skipped,
) -> Option<Captured> {
    defrag.retain(|&first| ts_ns.saturating_sub(first) < FRAGMENT_AGE_NS);
    match defrag.process_sliced_packet(sliced, ts_ns, ()) {
        Ok(Some(whole)) if whole.ip_number == IpNumber::UDP => {
            let datagram = UdpHeader::from_slice(&whole.payload)
                .ok()
                .map(|(udp, data)| Captured {
                    ts_ns,
                    src: SocketAddr::new(src_ip, udp.source_port),
                    dst: SocketAddr::new(dst_ip, udp.destination_port),
                    payload: data.to_vec(),
                });
            if datagram.is_none() {
                skipped.malformed += 1;
            }
            defrag.return_buf(whole);
            datagram
        }
        Ok(Some(whole)) => {
            skipped.not_udp += 1;
            defrag.return_buf(whole);
            None
        }
        // A fragment kept until the rest arrives.
        Ok(None) => None,
        Err(_) => {
            skipped.malformed += 1;
            None
        }
    }
}

/// Slice a frame of `linktype` down to its transport layer. `None` for a link type this
/// reader does not know.
fn slice(linktype: i32, data: &[u8]) -> Option<Result<SlicedPacket<'_>, ()>> {
    // LINKTYPE_* numbers: https://www.tcpdump.org/linktypes.html
    let sliced = match linktype {
        1 => SlicedPacket::from_ethernet(data),
        // Linux cooked v1: 16 bytes, the protocol type last. Stripped here: etherparse
        // refuses the ARPHRD_LOOPBACK frames that `-i any` captures of lo carry.
        113 => {
            if data.len() < 16 {
                return Some(Err(()));
            }
            let ether_type = EtherType(u16::from_be_bytes([data[14], data[15]]));
            SlicedPacket::from_ether_type(ether_type, &data[16..])
        }
        // Linux cooked v2: 20 bytes, the protocol type first.
        276 => {
            if data.len() < 20 {
                return Some(Err(()));
            }
            let ether_type = EtherType(u16::from_be_bytes([data[0], data[1]]));
            SlicedPacket::from_ether_type(ether_type, &data[20..])
        }
        // Raw IP (LINKTYPE_RAW, and the DLT_RAW values of some systems), IPv4, IPv6.
        101 | 12 | 14 | 228 | 229 => SlicedPacket::from_ip(data),
        // BSD loopback (host byte order) and OpenBSD loopback (network order): a
        // 4-byte address family, then IP.
        0 | 108 => {
            if data.len() < 4 {
                return Some(Err(()));
            }
            SlicedPacket::from_ip(&data[4..])
        }
        _ => return None,
    };
    Some(sliced.map_err(|_| ()))
}

#[cfg(test)]
mod tests;
