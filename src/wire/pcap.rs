//! `--pcap FILE`: every datagram written to a pcap file (the classic format, microsecond
//! timestamps, LINKTYPE_ETHERNET) with synthesized Ethernet, IPv4/IPv6 and UDP headers
//! whose lengths and checksums are right, so Wireshark and tshark decode it as the wire
//! would have shown it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::base::error::describe_io;
use crate::net::addr::normalize;

const ETHERNET: u32 = 1;
const SNAPLEN: u32 = 262_144;

/// One datagram as a capture records it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub time: SystemTime,
    pub from: SocketAddr,
    pub to: SocketAddr,
    /// What was captured of it.
    pub payload: &'a [u8],
    /// Its length on the wire (more than the payload when it came truncated).
    pub len: usize,
}

/// A pcap file being written.
///
/// A capture is a side record of the traffic, not the job: a write that fails (a full
/// disk, a file removed under it) never stops a server or a relay. The first failure is
/// a warning naming the file and the error; recording stops there (the file keeps what
/// was written before), the datagrams after it are counted, and the count is a warning
/// when the writer is dropped.
pub struct PcapWriter {
    out: BufWriter<File>,
    scratch: Vec<u8>,
    path: PathBuf,
    failed: bool,
    unrecorded: u64,
}

impl PcapWriter {
    /// Create (truncate) `path` and write the file header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        out.write_all(&file_header())?;
        Ok(PcapWriter {
            out,
            scratch: Vec::with_capacity(65_600),
            path: path.to_path_buf(),
            failed: false,
            unrecorded: 0,
        })
    }

    /// Record one datagram (see the type's notes on failure).
    pub fn write(&mut self, record: &Record<'_>) {
        if self.failed {
            self.unrecorded += 1;
            return;
        }
        if let Err(e) = self.try_write(record) {
            self.fail(&e);
            self.unrecorded += 1;
        }
    }

    /// Push what is buffered to the file.
    pub fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = self.out.flush() {
                self.fail(&e);
            }
        }
    }

    /// Datagrams not recorded since a write failed.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded
    }

    fn fail(&mut self, e: &io::Error) {
        self.failed = true;
        warn!(
            "failed to write --pcap {}: {}; recording stopped, the traffic goes on",
            self.path.display(),
            describe_io(e)
        );
    }

    fn try_write(&mut self, r: &Record<'_>) -> io::Result<()> {
        self.scratch.clear();
        let orig = packet(&mut self.scratch, r.from, r.to, r.payload, r.len);
        let ts = r.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
        rec[8..12].copy_from_slice(&(self.scratch.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(orig as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&self.scratch)
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        self.flush();
        if self.unrecorded > 0 {
            warn!(
                "--pcap {}: {} datagrams after the failure were not recorded",
                self.path.display(),
                self.unrecorded
            );
        }
    }
}

fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&ETHERNET.to_le_bytes());
    h
}

/// The two addresses in one family: IPv4 when the peer is IPv4 (a dual-stack socket's
/// `[::]` becomes 0.0.0.0), IPv6 otherwise.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (src, dst) = (normalize(src), normalize(dst));
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V6(d)) => {
            let d4 = d.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
            (src, SocketAddr::new(IpAddr::V4(d4), dst.port()))
        }
        (IpAddr::V6(_), IpAddr::V4(d)) => (
            src,
            SocketAddr::new(IpAddr::V6(d.to_ipv6_mapped()), dst.port()),
        ),
        _ => (src, dst),
    }
}

/// Append Ethernet + IP + UDP headers and the captured payload to `out`; return the length
/// the whole frame had on the wire.
fn packet(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    len: usize,
) -> usize {
    let (src, dst) = same_family(src, dst);
    let udp_len = 8 + len;
    let truncated = payload.len() < len;
    // Ethernet: zero MACs, then the EtherType.
    out.extend_from_slice(&[0u8; 12]);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let ip_start = out.len();
            let total = (20 + udp_len).min(0xffff) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]); // id, DF, TTL 64, UDP
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let sum = checksum(&[&out[ip_start..ip_start + 20]]);
            out[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
            let udp = udp_header(src.port(), dst.port(), udp_len, payload, truncated, |c| {
                c.extend_from_slice(&s.octets());
                c.extend_from_slice(&d.octets());
                c.extend_from_slice(&[0, 17]);
                c.extend_from_slice(&(udp_len as u16).to_be_bytes());
            });
            out.extend_from_slice(&udp);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&0x86ddu16.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(udp_len as u16).to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let udp = udp_header(src.port(), dst.port(), udp_len, payload, truncated, |c| {
                c.extend_from_slice(&s.octets());
                c.extend_from_slice(&d.octets());
                c.extend_from_slice(&(udp_len as u32).to_be_bytes());
                c.extend_from_slice(&[0, 0, 0, 17]);
            });
            out.extend_from_slice(&udp);
        }
        _ => unreachable!("same_family returns one family"),
    }
    out.extend_from_slice(payload);
    out.len() - payload.len() + len
}

/// The UDP header. Its checksum covers the pseudo-header, the header and the payload; when
/// the payload was truncated it cannot be computed and is left 0 ("none", RFC 768).
fn udp_header(
    sport: u16,
    dport: u16,
    udp_len: usize,
    payload: &[u8],
    truncated: bool,
    pseudo: impl FnOnce(&mut Vec<u8>),
) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&(udp_len.min(0xffff) as u16).to_be_bytes());
    if !truncated {
        let mut p = Vec::with_capacity(40);
        pseudo(&mut p);
        let mut sum = checksum(&[&p, &h, payload]);
        if sum == 0 {
            sum = 0xffff; // 0 means "no checksum"; its ones' complement twin is sent instead
        }
        h[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    h
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_checksum_of_rfc1071s_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2, complemented 220d.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
        // Splitting the data differently gives the same sum.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2], &[0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn ipv4_frames_check_out() {
        let mut out = Vec::new();
        let orig = packet(
            &mut out,
            sa("127.0.0.1:5000"),
            sa("127.0.0.2:53"),
            b"hello",
            5,
        );
        assert_eq!(orig, 14 + 20 + 8 + 5);
        assert_eq!(out.len(), orig);
        let ip = &out[14..34];
        assert_eq!(checksum(&[ip]), 0, "the IP header verifies");
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 33);
        // The UDP checksum verifies over pseudo-header + UDP.
        let mut pseudo = vec![127, 0, 0, 1, 127, 0, 0, 2, 0, 17, 0, 13];
        pseudo.extend_from_slice(&out[34..]);
        assert_eq!(checksum(&[&pseudo]), 0);
    }

    #[test]
    fn ipv6_and_mapped_frames_check_out() {
        let mut out = Vec::new();
        packet(&mut out, sa("[::1]:5000"), sa("[::1]:53"), b"six", 3);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        pseudo.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        pseudo.extend_from_slice(&[0, 0, 0, 11, 0, 0, 0, 17]);
        pseudo.extend_from_slice(&out[54..]);
        assert_eq!(checksum(&[&pseudo]), 0);
        // A v4 peer of a dual-stack socket is written as IPv4.
        let mut out = Vec::new();
        packet(
            &mut out,
            sa("[::ffff:127.0.0.1]:5000"),
            sa("[::]:53"),
            b"x",
            1,
        );
        assert_eq!(&out[12..14], &[0x08, 0x00]);
    }

    #[test]
    fn truncated_datagrams_keep_their_true_length() {
        let mut out = Vec::new();
        let orig = packet(&mut out, sa("127.0.0.1:1"), sa("127.0.0.1:2"), b"abc", 3000);
        assert_eq!(orig, 14 + 28 + 3000);
        assert_eq!(out.len(), 14 + 28 + 3);
        assert_eq!(u16::from_be_bytes([out[16], out[17]]), 3028);
        assert_eq!(
            &out[40..42],
            &[0, 0],
            "no UDP checksum for a partial payload"
        );
    }

    #[test]
    fn an_odd_byte_is_summed_as_the_high_half_of_a_word() {
        assert_eq!(checksum(&[&[0x01]]), !0x0100);
        assert_eq!(checksum(&[&[0x00, 0x01, 0xf2]]), !0xf201);
    }

    #[test]
    fn what_is_written_reads_back_through_the_capture_reader() {
        use std::time::Duration;
        let path = std::env::temp_dir().join(format!("dgram-pcap-{}.pcap", std::process::id()));
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let mut w = PcapWriter::create(&path).unwrap();
        let rec = |time, from, to, payload: &'static [u8], len| Record {
            time,
            from: sa(from),
            to: sa(to),
            payload,
            len,
        };
        w.write(&rec(t, "127.0.0.1:5000", "127.0.0.2:53", b"four", 4));
        // An IPv6 peer of a socket bound to an IPv4 address: both written as IPv6.
        let later = t + Duration::from_millis(1);
        w.write(&rec(later, "[2001:db8::1]:1", "127.0.0.1:2", b"mixed", 5));
        w.write(&rec(t, "127.0.0.1:1", "127.0.0.1:2", b"abc", 3000));
        w.write(&rec(t, "127.0.0.9:7", "127.0.0.3:9", b"hi", 2));
        w.write(&rec(t, "127.0.0.9:7", "127.0.0.4:9", b"hi", 2));
        w.flush();
        assert_eq!(w.unrecorded(), 0);
        let mut r = crate::wire::capture::CaptureReader::open(&path, vec![]).unwrap();
        let mut got = Vec::new();
        while let Some(c) = r.next_datagram().unwrap() {
            got.push(c);
        }
        std::fs::remove_file(&path).unwrap();
        let ends: Vec<(SocketAddr, SocketAddr, &[u8])> =
            got.iter().map(|c| (c.src, c.dst, &c.payload[..])).collect();
        assert_eq!(
            ends,
            [
                (sa("127.0.0.1:5000"), sa("127.0.0.2:53"), &b"four"[..]),
                (sa("[2001:db8::1]:1"), sa("[::ffff:127.0.0.1]:2"), b"mixed"),
                (sa("127.0.0.9:7"), sa("127.0.0.3:9"), b"hi"),
                (sa("127.0.0.9:7"), sa("127.0.0.4:9"), b"hi"),
            ]
        );
        // Microseconds, as the classic format keeps them.
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
        assert_eq!(got[1].ts_ns - got[0].ts_ns, 1_000_000);
        // The datagram cut to 3 of its 3000 bytes is seen as cut, and skipped.
        assert_eq!(r.skipped.frames, 5);
        assert_eq!(r.skipped.truncated, 1);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_full_disk_stops_recording_and_counts_what_was_not_recorded() {
        // /dev/full takes the open and fails every write with ENOSPC.
        let mut w = PcapWriter::create(Path::new("/dev/full")).unwrap();
        let r = Record {
            time: UNIX_EPOCH,
            from: sa("127.0.0.1:1"),
            to: sa("127.0.0.1:2"),
            payload: &[0; 1000],
            len: 1000,
        };
        // The buffer takes the first ones; the flush finds the disk full.
        w.write(&r);
        w.flush();
        assert_eq!(w.unrecorded(), 0);
        for _ in 0..3 {
            w.write(&r);
        }
        assert_eq!(w.unrecorded(), 3);
    }
}
