//! The capture reader on files built here, frame by frame.

use super::*;

#[test]
fn matches_parse_and_admit_either_end() {
    let m = Match::parse(":5353").unwrap();
    assert!(m.admits("10.0.0.1:5353".parse().unwrap()));
    assert!(!m.admits("10.0.0.1:53".parse().unwrap()));
    let m = Match::parse("10.0.0.1").unwrap();
    assert!(m.admits("10.0.0.1:1".parse().unwrap()));
    assert!(!m.admits("10.0.0.2:1".parse().unwrap()));
    let m = Match::parse("[::1]:53").unwrap();
    assert_eq!(
        m,
        Match {
            ip: Some("::1".parse().unwrap()),
            port: Some(53)
        }
    );
    assert!(Match::parse("[::1]").is_ok());
    assert!(Match::parse("nope").unwrap_err().contains("ADDR, :PORT"));
    assert!(Match::parse(":99999").is_err());
}

/// A pcap file header (little-endian, microseconds) of `linktype`.
fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(0xa1b2_c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(65535u32.to_le_bytes());
    f.extend(linktype.to_le_bytes());
    f
}

/// A pcap file (microseconds, raw IP) with the given IPv4/UDP payloads at 10 ms gaps.
fn pcap(payloads: &[&[u8]], snaplen_cut: Option<usize>) -> Vec<u8> {
    let mut f = pcap_header(101);
    for (i, p) in payloads.iter().enumerate() {
        let builder =
            etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).udp(4000, 5353);
        let mut frame = Vec::new();
        builder.write(&mut frame, p).unwrap();
        let orig = frame.len();
        if let Some(cut) = snaplen_cut {
            frame.truncate(cut.min(orig));
        }
        record(&mut f, 1_700_000_000, (i as u32) * 10_000, &frame, orig);
    }
    f
}

/// Append one pcap record: its time, the `frame` as captured, `orig` bytes on the wire.
fn record(f: &mut Vec<u8>, sec: u32, frac: u32, frame: &[u8], orig: usize) {
    f.extend(sec.to_le_bytes());
    f.extend(frac.to_le_bytes());
    f.extend((frame.len() as u32).to_le_bytes());
    f.extend((orig as u32).to_le_bytes());
    f.extend(frame);
}

#[test]
fn a_pcap_gives_its_datagrams_with_their_times_and_addresses() {
    let (got, skipped) = read_matching(pcap(&[b"one", b"two", b""], None), vec![]).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].payload, b"one");
    assert_eq!(got[2].payload, b"");
    assert_eq!(got[0].src, "127.0.0.1:4000".parse().unwrap());
    assert_eq!(got[0].dst, "127.0.0.2:5353".parse().unwrap());
    assert_eq!(got[1].ts_ns - got[0].ts_ns, 10_000_000);
    assert_eq!(skipped.frames, 3);
    let (got, skipped) =
        read_matching(pcap(&[b"one"], None), vec![Match::parse(":53").unwrap()]).unwrap();
    assert!(got.is_empty());
    assert_eq!(skipped.unmatched, 1);
}

#[test]
fn vlan_tagged_ethernet_frames_give_their_datagrams() {
    // No 8021q module in the test kernel for a real VLAN sub-interface: the frame is
    // built here, with etherparse's writer.
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1])
        .single_vlan(etherparse::VlanId::try_new(10).unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1111, 2222)
        .write(&mut frame, b"tagged")
        .unwrap();
    let (got, _) = read(pcap_at(1, false, &[(0, 0, frame)])).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"tagged");
    assert_eq!(got[0].dst, "10.0.0.2:2222".parse().unwrap());
}

#[test]
fn the_fuzz_corpus_replays_without_panics() {
    // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/capture.rs
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/capture");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("the committed corpus") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(mut r) = CaptureReader::from_reader("fuzz", std::io::Cursor::new(bytes), vec![]) {
            let mut left = 10_000;
            while let Ok(Some(_)) = r.next_datagram() {
                left -= 1;
                assert!(left > 0, "a small input gave endless datagrams");
            }
        }
        n += 1;
    }
    assert!(n >= 3, "{n} corpus files");
}

#[test]
fn cut_datagrams_are_skipped_and_bad_files_named() {
    let (got, skipped) =
        read_matching(pcap(&[b"a long enough payload", b"ok"], Some(40)), vec![]).unwrap();
    assert_eq!(
        got.iter().map(|c| c.payload.clone()).collect::<Vec<_>>(),
        [b"ok".to_vec()]
    );
    assert_eq!(skipped.truncated, 1);
    let e = read_matching(
        b"this is not a capture at all, just some bytes".to_vec(),
        vec![],
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("not a pcap or pcapng capture (offset 0)"),
        "{e:#}"
    );
    let whole = pcap(&[b"first", b"second"], None);
    let cut = &whole[..whole.len() - 3];
    let e = read_matching(cut.to_vec(), vec![]).unwrap_err();
    assert!(
        format!("{e:#}").contains("cut in the middle of a record at offset"),
        "{e:#}"
    );
}

// ---- Frames and files built byte by byte, for the reader's every branch. ----

const SRC: [u8; 4] = [10, 0, 0, 1];
const DST: [u8; 4] = [10, 0, 0, 2];

/// An IPv4/UDP packet 10.0.0.1:1111 → 10.0.0.2:2222 carrying `payload`.
fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    etherparse::PacketBuilder::ipv4(SRC, DST, 64)
        .udp(1111, 2222)
        .write(&mut p, payload)
        .unwrap();
    p
}

/// A legacy pcap of `linktype` (nanosecond timestamps when `nanos`), each frame whole,
/// at the given (seconds, fraction) times.
fn pcap_at(linktype: u32, nanos: bool, frames: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = pcap_header(linktype);
    if nanos {
        f[..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    }
    for (sec, frac, frame) in frames {
        record(&mut f, *sec, *frac, frame, frame.len());
    }
    f
}

/// A legacy pcap of `linktype` with the frames one second apart.
fn pcap_of(linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let timed: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (1_700_000_000 + i as u32, 0, f.clone()))
        .collect();
    pcap_at(linktype, false, &timed)
}

fn read(bytes: Vec<u8>) -> anyhow::Result<(Vec<Captured>, Skipped)> {
    read_matching(bytes, vec![])
}

fn read_matching(bytes: Vec<u8>, matches: Vec<Match>) -> anyhow::Result<(Vec<Captured>, Skipped)> {
    let mut r = CaptureReader::from_reader("test", std::io::Cursor::new(bytes), matches)?;
    let mut out = Vec::new();
    while let Some(c) = r.next_datagram()? {
        out.push(c);
    }
    Ok((out, r.skipped))
}

/// What was skipped, as (frames, truncated, not_udp, unknown_link, malformed, unmatched).
fn counts(s: &Skipped) -> (u64, u64, u64, u64, u64, u64) {
    (
        s.frames,
        s.truncated,
        s.not_udp,
        s.unknown_link,
        s.malformed,
        s.unmatched,
    )
}

/// A pcapng block: type, length, body (padded to 4), length again.
fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (body.len() + 12) as u32;
    let mut b = Vec::new();
    b.extend(kind.to_le_bytes());
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

fn ng_section() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(0x1a2b_3c4du32.to_le_bytes());
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes());
    ng_block(0x0a0d_0d0a, &body)
}

/// An interface of `linktype`; `tsresol` is the if_tsresol option (a power of ten).
fn ng_interface(linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(linktype.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend(65535u32.to_le_bytes());
    if let Some(r) = tsresol {
        body.extend(9u16.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend([r, 0, 0, 0]);
        body.extend([0u8; 4]); // opt_endofopt
    }
    ng_block(1, &body)
}

fn ng_packet(if_id: u32, ts: u64, frame: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(if_id.to_le_bytes());
    body.extend(((ts >> 32) as u32).to_le_bytes());
    body.extend((ts as u32).to_le_bytes());
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend(frame);
    ng_block(6, &body)
}

fn ng_simple(frame: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend(frame);
    ng_block(3, &body)
}

#[test]
fn every_link_layer_is_stripped_down_to_the_same_datagram() {
    let ip = ipv4_udp(b"hi");
    let mut ethernet = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(SRC, DST, 64)
        .udp(1111, 2222)
        .write(&mut ethernet, b"hi")
        .unwrap();
    let mut sll = vec![0u8; 14];
    sll.extend(0x0800u16.to_be_bytes());
    sll.extend(&ip);
    let mut sll2 = 0x0800u16.to_be_bytes().to_vec();
    sll2.extend([0u8; 18]);
    sll2.extend(&ip);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend(&ip);
    let cases: [(u32, &[u8]); 10] = [
        (1, &ethernet),
        (101, &ip),
        (12, &ip),
        (14, &ip),
        (228, &ip),
        (229, &ipv4_udp(b"hi")),
        (113, &sll),
        (276, &sll2),
        (0, &null),
        (108, &null),
    ];
    for (linktype, frame) in cases {
        let (got, skipped) = read(pcap_of(linktype, &[frame.to_vec()])).unwrap();
        assert_eq!(got.len(), 1, "linktype {linktype}: {skipped:?}");
        assert_eq!(got[0].payload, b"hi", "linktype {linktype}");
        assert_eq!(got[0].src, "10.0.0.1:1111".parse().unwrap());
        assert_eq!(got[0].dst, "10.0.0.2:2222".parse().unwrap());
        assert_eq!(counts(&skipped), (1, 0, 0, 0, 0, 0), "linktype {linktype}");
    }
}

#[test]
fn a_frame_shorter_than_its_link_header_is_malformed() {
    for (linktype, len) in [(113, 15), (276, 19), (0, 3), (108, 0)] {
        let (got, skipped) = read(pcap_of(linktype, &[vec![0u8; len]])).unwrap();
        assert!(got.is_empty());
        assert_eq!(
            counts(&skipped),
            (1, 0, 0, 0, 1, 0),
            "linktype {linktype}, {len} bytes"
        );
    }
    // Exactly a cooked header, of a protocol that is not IP: not UDP, not malformed.
    let mut sll = vec![0u8; 14];
    sll.extend(0x88b5u16.to_be_bytes());
    let mut sll2 = 0x88b5u16.to_be_bytes().to_vec();
    sll2.extend([0u8; 18]);
    for (linktype, frame) in [(113, sll), (276, sll2)] {
        let (_, skipped) = read(pcap_of(linktype, &[frame])).unwrap();
        assert_eq!(counts(&skipped), (1, 0, 1, 0, 0, 0), "linktype {linktype}");
    }
}

#[test]
fn frames_that_carry_no_udp_are_counted_by_why() {
    let mut tcp = Vec::new();
    etherparse::PacketBuilder::ipv4(SRC, DST, 64)
        .tcp(1, 2, 0, 1000)
        .write(&mut tcp, b"tcp")
        .unwrap();
    let mut arp_like = Vec::new();
    arp_like.extend([2u8; 6]);
    arp_like.extend([1u8; 6]);
    arp_like.extend(0x88b5u16.to_be_bytes());
    arp_like.extend([0u8; 30]);
    let (got, skipped) = read(pcap_of(101, &[tcp, vec![0x45, 0, 0]])).unwrap();
    assert!(got.is_empty());
    assert_eq!(counts(&skipped), (2, 0, 1, 0, 1, 0));
    let (_, skipped) = read(pcap_of(1, &[arp_like])).unwrap();
    assert_eq!(counts(&skipped), (1, 0, 1, 0, 0, 0));
    let (_, skipped) = read(pcap_of(147, &[ipv4_udp(b"x"), ipv4_udp(b"y")])).unwrap();
    assert_eq!(counts(&skipped), (2, 0, 0, 2, 0, 0));
}

#[test]
fn ipv6_datagrams_keep_their_addresses() {
    let mut p = Vec::new();
    let (a, b) = (
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0u8; 16],
    );
    let mut b = b;
    b[15] = 1;
    etherparse::PacketBuilder::ipv6(a, b, 64)
        .udp(5353, 53)
        .write(&mut p, b"six")
        .unwrap();
    let (got, _) = read(pcap_of(101, &[p])).unwrap();
    assert_eq!(got[0].src, "[2001:db8::1]:5353".parse().unwrap());
    assert_eq!(got[0].dst, "[::1]:53".parse().unwrap());
    assert_eq!(got[0].payload, b"six");
}

/// IPv4 fragments of `transport` (protocol `proto`): the first `split` bytes (a multiple
/// of 8), then the rest.
fn fragments(transport: &[u8], proto: u8, split: usize) -> [Vec<u8>; 2] {
    let part = |data: &[u8], offset: usize, more: bool| {
        let mut h = etherparse::Ipv4Header::new(
            data.len() as u16,
            64,
            etherparse::IpNumber(proto),
            SRC,
            DST,
        )
        .unwrap();
        h.identification = 77;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16).unwrap();
        let mut p = Vec::new();
        h.write(&mut p).unwrap();
        p.extend(data);
        p
    };
    [
        part(&transport[..split], 0, true),
        part(&transport[split..], split, false),
    ]
}

/// The UDP header and payload of a datagram 1111 → 2222 (checksum 0: none).
fn udp_bytes(payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(1111u16.to_be_bytes());
    u.extend(2222u16.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

#[test]
fn fragments_come_back_whole_and_what_is_not_udp_is_counted() {
    let payload: Vec<u8> = (0..100u8).collect();
    let [a, b] = fragments(&udp_bytes(&payload), 17, 48);
    let (got, skipped) = read(pcap_of(101, &[a, b])).unwrap();
    assert_eq!(got.len(), 1, "{skipped:?}");
    assert_eq!(got[0].payload, payload);
    assert_eq!(got[0].dst, "10.0.0.2:2222".parse().unwrap());
    assert_eq!(
        got[0].ts_ns,
        1_700_000_001 * 1_000_000_000,
        "the last fragment's time"
    );
    assert_eq!(counts(&skipped), (2, 0, 0, 0, 0, 0));
    // An ICMP message in fragments.
    let [a, b] = fragments(&[8u8; 40], 1, 16);
    let (got, skipped) = read(pcap_of(101, &[a, b])).unwrap();
    assert!(got.is_empty());
    assert_eq!(counts(&skipped), (2, 0, 1, 0, 0, 0));
    // A fragment that is not the last must carry a multiple of 8 bytes: this one is
    // malformed, and its datagram never completes.
    let [a, b] = fragments(&udp_bytes(&payload), 17, 45);
    let (got, skipped) = read(pcap_of(101, &[a, b])).unwrap();
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(counts(&skipped), (2, 0, 0, 0, 1, 0));
}

#[test]
fn reassembled_udp_shorter_than_its_header_is_malformed() {
    // An empty first fragment (0 is a multiple of 8), then the 4-byte rest: whole, but
    // no room for the 8-byte UDP header.
    let [empty, _] = fragments(&udp_bytes(b""), 17, 0);
    let [_, rest] = fragments(&[1, 2, 3, 4], 17, 0);
    let (got, skipped) = read(pcap_of(101, &[empty, rest])).unwrap();
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(counts(&skipped), (2, 0, 0, 0, 1, 0));
}

#[test]
fn a_datagram_whose_fragments_are_30_seconds_apart_is_given_up() {
    let payload = [7u8; 64];
    let udp = udp_bytes(&payload);
    for (gap_s, whole) in [(29, true), (30, false), (31, false)] {
        let [a, b] = fragments(&udp, 17, 40);
        let file = pcap_at(
            101,
            false,
            &[(1_700_000_000, 0, a), (1_700_000_000 + gap_s, 0, b)],
        );
        let (got, _) = read(file).unwrap();
        assert_eq!(got.len(), usize::from(whole), "fragments {gap_s} s apart");
    }
}

#[test]
fn timestamps_are_nanoseconds_since_the_epoch_whatever_the_resolution() {
    let ip = ipv4_udp(b"t");
    let (got, _) = read(pcap_at(101, false, &[(1_700_000_000, 123_456, ip.clone())])).unwrap();
    assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
    let (got, _) = read(pcap_at(
        101,
        true,
        &[(1_700_000_000, 123_456_789, ip.clone())],
    ))
    .unwrap();
    assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_789);
    // pcapng: microseconds by default, nanoseconds with if_tsresol 9.
    let mut f = ng_section();
    f.extend(ng_interface(101, None));
    f.extend(ng_interface(101, Some(9)));
    f.extend(ng_packet(0, 1_700_000_000_123_456, &ip));
    f.extend(ng_packet(1, 1_700_000_000_123_456_789, &ip));
    let (got, skipped) = read(f).unwrap();
    assert_eq!(counts(&skipped), (2, 0, 0, 0, 0, 0));
    assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
    assert_eq!(got[1].ts_ns, 1_700_000_000_123_456_789);
}

#[test]
fn pcapng_packets_follow_the_interfaces_of_their_section() {
    let ip = ipv4_udp(b"ng");
    let mut f = ng_section();
    f.extend(ng_interface(101, None));
    f.extend(ng_packet(1, 0, &ip)); // no interface 1
    f.extend(ng_simple(&ip)); // the first interface, no time
    f.extend(ng_section()); // a new section forgets the interfaces
    f.extend(ng_packet(0, 0, &ip));
    let (got, skipped) = read(f).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"ng");
    assert_eq!(got[0].ts_ns, 0);
    assert_eq!(counts(&skipped), (3, 0, 0, 0, 2, 0));
}

#[test]
fn an_empty_file_is_said_to_be_empty() {
    let e = read(Vec::new()).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "--replay test: empty file, not a capture (offset 0)"
    );
}

#[test]
fn a_match_admits_a_datagram_by_its_source_as_well_as_its_destination() {
    let file = || pcap_of(101, &[ipv4_udp(b"m")]);
    for (m, admitted) in [
        (":1111", true),
        (":2222", true),
        ("10.0.0.1", true),
        (":3333", false),
    ] {
        let (got, skipped) = read_matching(file(), vec![Match::parse(m).unwrap()]).unwrap();
        assert_eq!(got.len(), usize::from(admitted), "--match {m}");
        assert_eq!(skipped.unmatched, u64::from(!admitted), "--match {m}");
    }
}

#[test]
fn the_largest_datagram_fits_the_reader_whole() {
    let big = vec![0xab; 65_507];
    let mut p = Vec::new();
    etherparse::PacketBuilder::ipv4(SRC, DST, 64)
        .udp(1111, 2222)
        .write(&mut p, &big)
        .unwrap();
    let (got, _) = read(pcap_of(101, &[p])).unwrap();
    assert_eq!(got[0].payload, big);
}
