//! The output formats' tests: every format, JSON's fields, DNS and relay legs, buffering.
use super::*;
use proptest::prelude::*;

fn dgram(payload: &[u8]) -> Datagram<'_> {
    Datagram {
        peer: addr("127.0.0.1:5353").into(),
        payload,
        len: payload.len(),
        time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        rtt: None,
        leg: None,
    }
}

fn shown(d: &Datagram<'_>, f: Format) -> String {
    let mut v = Vec::new();
    render(d, f, &mut v);
    String::from_utf8(v).unwrap()
}

#[test]
fn raw_line_hex_base64_print_the_payload() {
    let d = dgram(b"hi\n");
    assert_eq!(shown(&d, Format::Raw), "hi\n");
    assert_eq!(shown(&d, Format::Line), "hi\n\n");
    assert_eq!(shown(&d, Format::Hex), "68690a\n");
    assert_eq!(shown(&d, Format::Base64), "aGkK\n");
    assert_eq!(shown(&dgram(b""), Format::Hex), "\n");
}

#[test]
fn text_is_one_safe_line_per_datagram() {
    // guards: on a terminal a datagram could retitle it, clear it, or run into the next
    assert_eq!(shown(&dgram(b"hello"), Format::Text), "hello\n");
    assert_eq!(shown(&dgram(b""), Format::Text), "\n");
    assert_eq!(
        shown(&dgram(b"a\nb\r\tc\0"), Format::Text),
        "a\\nb\\r\\tc\\x00\n"
    );
    let hostile = shown(&dgram(b"\x1b]0;owned\x07\x1b[2J"), Format::Text);
    assert_eq!(hostile, "\\x1b]0;owned\\x07\\x1b[2J\n");
    assert!(!hostile.contains('\x1b'));
    assert_eq!(shown(&dgram(b"\xff\xfeok"), Format::Text), "\\xff\\xfeok\n");
    // UTF-8 stays as it is; DEL and the C1 controls (CSI is U+009B) do not.
    assert_eq!(
        shown(&dgram("héllo ✓".as_bytes()), Format::Text),
        "héllo ✓\n"
    );
    assert_eq!(shown(&dgram(b"\x7f"), Format::Text), "\\x7f\n");
    assert_eq!(
        shown(&dgram("\u{9b}2J".as_bytes()), Format::Text),
        "\\xc2\\x9b2J\n"
    );
    assert_eq!(Format::default_for(true), Format::Text);
    assert_eq!(Format::default_for(false), Format::Raw);
}

#[test]
fn dns_shows_messages_and_says_why_others_are_not() {
    let spec = crate::wire::dns::parse_query("example.com MX").unwrap();
    let query = spec.encode(99).unwrap();
    let shown_dns = shown(&dgram(&query), Format::Dns);
    assert!(
        shown_dns.starts_with(&format!(";; 127.0.0.1:5353, {} bytes\n", query.len())),
        "{shown_dns}"
    );
    assert!(
        shown_dns.contains("id: 99") && shown_dns.contains(";example.com.\t\tIN\tMX"),
        "{shown_dns}"
    );
    let junk = shown(&dgram(b"hello"), Format::Dns);
    // The same first line as a message, then why it is not one.
    assert!(
        junk.starts_with(
            ";; 127.0.0.1:5353, 5 bytes\n;; not a DNS message: 5 bytes, shorter than a DNS header"
        ),
        "{junk}"
    );
    assert!(junk.contains("|hello|"), "{junk}");
    let mut v = Vec::new();
    render_with(&dgram(&query), Format::Json, true, &mut v);
    let line: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(line["dns"]["question"][0]["name"], "example.com.");
    assert_eq!(line["dns"]["id"], 99);
    let mut v = Vec::new();
    render_with(&dgram(b"hello"), Format::Json, true, &mut v);
    let line: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert!(line["dns"]["error"].as_str().unwrap().contains("shorter"));
    assert!(
        serde_json::from_str::<serde_json::Value>(&shown(&dgram(&query), Format::Json))
            .unwrap()
            .get("dns")
            .is_none()
    );
}

#[test]
fn a_relayed_datagram_says_which_way_it_went() {
    let mut d = dgram(b"q");
    let (client, upstream) = (addr("127.0.0.2:4000").into(), addr("127.0.0.1:53").into());
    d.leg = Some(Leg {
        dir: crate::netem::Dir::Up,
        client,
        upstream,
    });
    assert_eq!(
        shown(&d, Format::Text),
        "127.0.0.2:4000 -> 127.0.0.1:53\nq\n"
    );
    assert_eq!(shown(&d, Format::Raw), "q");
    d.leg = Some(Leg {
        dir: crate::netem::Dir::Down,
        client,
        upstream,
    });
    assert_eq!(
        shown(&d, Format::Hex),
        "127.0.0.1:53 -> 127.0.0.2:4000\n71\n"
    );
    let v: serde_json::Value = serde_json::from_str(&shown(&d, Format::Json)).unwrap();
    assert_eq!(
        (
            v["dir"].as_str(),
            v["client"].as_str(),
            v["upstream"].as_str()
        ),
        (Some("down"), Some("127.0.0.2:4000"), Some("127.0.0.1:53"))
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(&shown(&dgram(b"q"), Format::Json))
            .unwrap()
            .get("dir")
            .is_none()
    );
}

#[test]
fn json_carries_the_spec_fields() {
    let mut d = dgram(b"hello");
    d.rtt = Some(Duration::from_micros(250));
    let v: serde_json::Value = serde_json::from_str(&shown(&d, Format::Json)).unwrap();
    assert_eq!(v["time"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["peer"], "127.0.0.1:5353");
    assert_eq!(v["len"], 5);
    assert_eq!(v["truncated"], false);
    assert!(v.get("captured").is_none());
    assert_eq!(v["base64"], "aGVsbG8=");
    assert_eq!(v["text"], "hello");
    assert_eq!(v["rtt_us"], 250);
}

#[test]
fn json_marks_truncation_and_omits_text_for_binary() {
    let mut d = dgram(b"\xff\xfe");
    d.len = 70_000;
    let v: serde_json::Value = serde_json::from_str(&shown(&d, Format::Json)).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["captured"], 2);
    assert_eq!(v["len"], 70_000);
    assert!(v.get("text").is_none());
    assert!(v.get("rtt_us").is_none());
}

#[test]
fn hexdump_has_a_header_and_canonical_rows() {
    let s = shown(&dgram(b"hello world, this is 20"), Format::Hexdump);
    let want = "127.0.0.1:5353 23 bytes\n\
        00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 2c 20 74 68 69  |hello world, thi|\n\
        00000010  73 20 69 73 20 32 30                              |s is 20|\n";
    assert_eq!(s, want);
    let mut d = dgram(b"ab");
    d.len = 9;
    assert!(shown(&d, Format::Hexdump).starts_with("127.0.0.1:5353 9 bytes (truncated, 2 kept)\n"));
}

#[test]
fn output_buffers_until_flushed() {
    let mut out = Output::new(Vec::new(), Format::Line);
    out.write(&dgram(b"a")).unwrap();
    out.write(&dgram(b"")).unwrap();
    out.flush().unwrap();
    assert_eq!(out.into_inner(), b"a\n\n");
}

#[test]
fn documents_are_written_as_they_are_in_any_format() {
    let mut out = Output::new(Vec::new(), Format::Hexdump);
    out.write_all(b"# a man page\n").unwrap();
    out.write_all(b"").unwrap();
    out.write_all(b"\xff").unwrap();
    out.flush().unwrap();
    assert_eq!(out.into_inner(), b"# a man page\n\xff");
}

#[test]
fn a_broken_pipe_is_stdout_closed() {
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut out = Output::new(Closed, Format::Raw);
    out.write(&dgram(b"x")).unwrap();
    let err = out.flush().unwrap_err();
    assert!(err
        .chain()
        .any(|c| c.is::<crate::base::error::StdoutClosed>()));
}

proptest! {
    #[test]
    fn every_format_decodes_back_to_the_payload(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        use crate::wire::codec::{decode, Encoding};
        let d = dgram(&bytes);
        prop_assert_eq!(shown_bytes(&d, Format::Raw), bytes.clone());
        let line = shown_bytes(&d, Format::Line);
        prop_assert_eq!(&line[..line.len() - 1], &bytes[..]);
        prop_assert_eq!(decode(shown(&d, Format::Hex).trim_end().as_bytes(), Encoding::Hex), Ok(bytes.clone()));
        prop_assert_eq!(decode(shown(&d, Format::Base64).as_bytes(), Encoding::Base64), Ok(bytes.clone()));
        let v: serde_json::Value = serde_json::from_str(&shown(&d, Format::Json)).unwrap();
        prop_assert_eq!(decode(v["base64"].as_str().unwrap().as_bytes(), Encoding::Base64), Ok(bytes.clone()));
        let dump = shown(&d, Format::Hexdump);
        let hexed: String = dump.lines().skip(1).map(|l| &l[10..58]).collect();
        prop_assert_eq!(decode(hexed.as_bytes(), Encoding::Hex), Ok(bytes.clone()));
    }
}

proptest! {
    #[test]
    fn text_is_one_line_with_no_control_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let line = shown_bytes(&dgram(&bytes), Format::Text);
        prop_assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        prop_assert!(body.iter().all(|&b| b >= 0x20 && b != 0x7f), "{:?}", body);
        prop_assert!(std::str::from_utf8(body).is_ok());
        prop_assert!(!std::str::from_utf8(body).unwrap().chars().any(char::is_control));
    }
}

fn shown_bytes(d: &Datagram<'_>, f: Format) -> Vec<u8> {
    let mut v = Vec::new();
    render(d, f, &mut v);
    v
}

#[test]
fn json_hex_and_hexdump_lines_allocate_nothing_per_datagram() {
    // guards: each JSON line built four Strings (time, peer, base64, and the leg's
    // addresses), hex and hexdump one each.
    let payload: Vec<u8> = (0..200u8).collect();
    let mut d = dgram(&payload);
    d.rtt = Some(std::time::Duration::from_micros(250));
    d.leg = Some(Leg {
        dir: crate::netem::Dir::Up,
        client: addr("127.0.0.1:5000").into(),
        upstream: addr("[::1]:53").into(),
    });
    for format in [
        Format::Json,
        Format::Hex,
        Format::Hexdump,
        Format::Text,
        Format::Base64,
    ] {
        // Room for every line: growing the buffer is not a per-datagram cost.
        let mut out = Vec::with_capacity(8 << 20);
        render(&d, format, &mut out);
        let n = crate::net::sys::counting_alloc::allocations_in(|| {
            for _ in 0..1000 {
                render(&d, format, &mut out);
            }
        });
        assert_eq!(n, 0, "{format:?}: {n} allocations for 1000 datagrams");
        assert!(
            out.len() > 1000 * payload.len(),
            "{format:?} wrote its lines"
        );
    }
}

fn addr(s: &str) -> std::net::SocketAddr {
    s.parse().unwrap()
}

#[test]
fn a_stream_side_is_named_by_its_stream() {
    use crate::net::endpoint::Endpoint;
    let mut d = dgram(b"q");
    d.peer = Endpoint::Exec(77);
    d.leg = Some(Leg {
        dir: crate::netem::Dir::Down,
        client: Endpoint::Tcp(addr("127.0.0.1:4000")),
        upstream: Endpoint::Exec(77),
    });
    assert_eq!(
        shown(&d, Format::Text),
        "exec:77 -> tcp://127.0.0.1:4000\nq\n"
    );
    let v: serde_json::Value = serde_json::from_str(&shown(&d, Format::Json)).unwrap();
    assert_eq!(v["peer"], "exec:77");
    assert_eq!(v["client"], "tcp://127.0.0.1:4000");
    assert_eq!(v["upstream"], "exec:77");
    assert_eq!(v["dir"], "down");
}
