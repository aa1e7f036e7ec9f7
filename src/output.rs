//! Output formats of SPEC §5 and the buffered stdout they are written to.
//!
//! Stdout is data: every datagram goes through [`Output::write`] into one buffer that is
//! flushed when the socket goes idle (the caller's job, see [`Output::flush`]), when it
//! fills, and before exit. A reader that goes away (`| head`) becomes
//! [`StdoutClosed`](crate::exit::StdoutClosed), which ends the program quietly.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::codec::hex;
use crate::exit::StdoutClosed;

/// How a received datagram is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The payload bytes exactly, nothing added (netcat compatible; the default into a
    /// pipe or a file).
    #[default]
    Raw,
    /// One line per datagram, control characters and invalid UTF-8 escaped (the default
    /// on a terminal: datagrams never run together or drive the terminal).
    Text,
    /// The payload and a newline.
    Line,
    /// One line of lower-case hex per datagram.
    Hex,
    /// A header with peer and length, then offset / hex / ASCII rows.
    Hexdump,
    /// One line of base64 per datagram.
    Base64,
    /// One JSON object per line: time, peer, len, truncated, base64, text...
    Json,
    /// Decoded as a DNS message, as dig shows one (a datagram that does not decode is
    /// shown as `;; not a DNS message: REASON` and a hexdump)
    Dns,
}

impl Format {
    /// The format when none is asked for: `text` on a terminal, `raw` elsewhere, so a
    /// terminal never receives raw bytes from the network and pipes stay netcat-exact.
    pub fn default_for(stdout_is_terminal: bool) -> Format {
        if stdout_is_terminal {
            Format::Text
        } else {
            Format::Raw
        }
    }
}

impl Format {
    /// [`Format::default_for`] this process's stdout.
    pub fn for_stdout() -> Format {
        use std::io::IsTerminal;
        Format::default_for(io::stdout().is_terminal())
    }
}

/// One received datagram, as the output sees it.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    /// Who sent it (IPv4-mapped addresses already shown as IPv4).
    pub peer: SocketAddr,
    /// The bytes kept: all of them, or the first `captured` when truncated.
    pub payload: &'a [u8],
    /// The datagram's true length on the wire.
    pub len: usize,
    /// When it was received.
    pub time: SystemTime,
    /// For replies to `send`: the time since the request left.
    pub rtt: Option<Duration>,
    /// For `relay`: which way it went, and between whom.
    pub leg: Option<Leg>,
}

/// A datagram passing a relay: its direction and its session.
#[derive(Clone, Copy, Debug)]
pub struct Leg {
    /// Client → upstream (`up`), or back (`down`).
    pub up: bool,
    pub client: SocketAddr,
    pub upstream: SocketAddr,
}

impl Leg {
    /// `CLIENT -> UPSTREAM` or `UPSTREAM -> CLIENT`.
    fn header(&self) -> String {
        if self.up {
            format!("{} -> {}\n", self.client, self.upstream)
        } else {
            format!("{} -> {}\n", self.upstream, self.client)
        }
    }
}

impl Datagram<'_> {
    /// True when the kernel cut the datagram to fit the receive buffer.
    pub fn is_truncated(&self) -> bool {
        self.payload.len() < self.len
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    peer: String,
    len: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    captured: Option<usize>,
    base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
}

/// The `dns` object of a JSON line: the message, or why the datagram is not one.
#[derive(Serialize)]
#[serde(untagged)]
enum DnsField {
    Message(crate::dns::DnsJson),
    Error { error: String },
}

/// Append `d` to `out` in `format`.
pub fn render(d: &Datagram<'_>, format: Format, out: &mut Vec<u8>) {
    render_with(d, format, false, out)
}

/// Append `d` to `out` in `format`; with `dns`, JSON lines carry the `dns` object of the
/// datagram decoded as a DNS message (or `{"error": REASON}`).
pub fn render_with(d: &Datagram<'_>, format: Format, dns: bool, out: &mut Vec<u8>) {
    // A relayed datagram's text formats start with the leg it took.
    if let Some(leg) = &d.leg {
        if !matches!(format, Format::Raw | Format::Json) {
            out.extend_from_slice(leg.header().as_bytes());
        }
    }
    match format {
        Format::Raw => out.extend_from_slice(d.payload),
        Format::Line => {
            out.extend_from_slice(d.payload);
            out.push(b'\n');
        }
        Format::Text => {
            crate::codec::escape_text(d.payload, out);
            out.push(b'\n');
        }
        Format::Hex => {
            out.extend_from_slice(hex(d.payload).as_bytes());
            out.push(b'\n');
        }
        Format::Base64 => {
            crate::codec::base64_into(d.payload, out);
            out.push(b'\n');
        }
        Format::Hexdump => hexdump(d, out),
        Format::Dns => match crate::dns::decode(d.payload) {
            Ok(msg) => {
                let mut text = String::new();
                crate::dns::write_dig(&msg, d.peer, d.len, d.rtt, &mut text);
                out.extend_from_slice(text.as_bytes());
            }
            Err(reason) => {
                out.extend_from_slice(format!(";; not a DNS message: {reason}\n").as_bytes());
                hexdump(d, out);
                out.push(b'\n');
            }
        },
        Format::Json => {
            let line = JsonLine {
                time: humantime::format_rfc3339_micros(d.time).to_string(),
                peer: d.peer.to_string(),
                len: d.len,
                truncated: d.is_truncated(),
                captured: d.is_truncated().then_some(d.payload.len()),
                base64: crate::codec::base64(d.payload),
                text: std::str::from_utf8(d.payload).ok(),
                rtt_us: d.rtt.map(|r| r.as_micros() as u64),
                dns: dns.then(|| match crate::dns::decode(d.payload) {
                    Ok(msg) => DnsField::Message(crate::dns::DnsJson::new(&msg)),
                    Err(error) => DnsField::Error { error },
                }),
                dir: d.leg.map(|l| if l.up { "up" } else { "down" }),
                client: d.leg.map(|l| l.client.to_string()),
                upstream: d.leg.map(|l| l.upstream.to_string()),
            };
            serde_json::to_writer(&mut *out, &line).expect("writing JSON to a Vec cannot fail");
            out.push(b'\n');
        }
    }
}

fn hexdump(d: &Datagram<'_>, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(80 + d.payload.len() * 4);
    let _ = write!(s, "{} {} bytes", d.peer, d.len);
    if d.is_truncated() {
        let _ = write!(s, " (truncated, {} kept)", d.payload.len());
    }
    if let Some(rtt) = d.rtt {
        let _ = write!(s, " rtt {}", crate::units::human_duration(rtt));
    }
    s.push('\n');
    for (row, chunk) in d.payload.chunks(16).enumerate() {
        let _ = write!(s, "{:08x}  ", row * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => {
                    let _ = write!(s, "{b:02x} ");
                }
                None => s.push_str("   "),
            }
            if i == 7 {
                s.push(' ');
            }
        }
        s.push_str(" |");
        s.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        s.push_str("|\n");
    }
    out.extend_from_slice(s.as_bytes());
}

/// The output buffer's size.
const BUFFER: usize = 256 * 1024;

/// Datagrams rendered in one format into a buffered writer (stdout in the program).
/// The buffer is allocated at the first write: a run that prints nothing (a one-shot
/// send) never pays for it.
pub struct Output<W: Write = File> {
    writer: Writer<W>,
    format: Format,
    /// JSON lines carry the `dns` object (`--dns`).
    dns: bool,
    scratch: Vec<u8>,
}

/// The writer, before and after the first write.
enum Writer<W: Write> {
    Unused(W),
    Buffered(BufWriter<W>),
    /// Only while switching from one to the other.
    Moving,
}

impl Output<File> {
    /// Buffered output to this process's stdout.
    ///
    /// Writes go to a duplicate of fd 1 rather than through `io::stdout()`, whose
    /// `LineWriter` would flush at every newline even into a pipe.
    pub fn stdout(format: Format) -> anyhow::Result<Self> {
        let fd = stdout_fd()?;
        Ok(Output::new(fd, format))
    }
}

#[cfg(unix)]
fn stdout_fd() -> anyhow::Result<File> {
    use std::os::fd::AsFd;
    let owned = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| anyhow::anyhow!("cannot use stdout: {}", crate::exit::describe_io(&e)))?;
    Ok(File::from(owned))
}

impl<W: Write> Output<W> {
    /// Output in `format` to `writer`, through a 256 KiB buffer.
    pub fn new(writer: W, format: Format) -> Self {
        Output {
            writer: Writer::Unused(writer),
            format,
            dns: false,
            scratch: Vec::new(),
        }
    }

    /// With `dns`, JSON lines carry each datagram decoded as DNS (`--dns`).
    pub fn with_dns(mut self, dns: bool) -> Self {
        self.dns = dns;
        self
    }

    fn buffered(&mut self) -> &mut BufWriter<W> {
        if let Writer::Unused(_) = self.writer {
            if let Writer::Unused(w) = std::mem::replace(&mut self.writer, Writer::Moving) {
                self.writer = Writer::Buffered(BufWriter::with_capacity(BUFFER, w));
            }
        }
        match &mut self.writer {
            Writer::Buffered(b) => b,
            Writer::Unused(_) | Writer::Moving => unreachable!("buffered above"),
        }
    }

    /// Write one datagram (buffered).
    pub fn write(&mut self, d: &Datagram<'_>) -> anyhow::Result<()> {
        let result = if self.format == Format::Raw && d.leg.is_none() {
            self.buffered().write_all(d.payload)
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            render_with(d, self.format, self.dns, &mut scratch);
            let result = self.buffered().write_all(&scratch);
            self.scratch = scratch;
            result
        };
        result.map_err(stdout_error)
    }

    /// Write bytes as they are (generated documents, not datagrams).
    pub fn write_all(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.buffered().write_all(bytes).map_err(stdout_error)
    }

    /// Push everything buffered to the writer: call when the socket goes idle.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.writer {
            Writer::Buffered(b) => b.flush().map_err(stdout_error),
            Writer::Unused(_) | Writer::Moving => Ok(()),
        }
    }

    #[cfg(test)]
    fn into_inner(self) -> W {
        match self.writer {
            Writer::Buffered(b) => b.into_inner().ok().expect("flush"),
            Writer::Unused(w) => w,
            Writer::Moving => unreachable!(),
        }
    }
}

fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::anyhow!(
            "failed to write to stdout: {}",
            crate::exit::describe_io(&e)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dgram(payload: &[u8]) -> Datagram<'_> {
        Datagram {
            peer: "127.0.0.1:5353".parse().unwrap(),
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
        let spec = crate::dns::parse_query("example.com MX").unwrap();
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
        assert!(
            junk.starts_with(";; not a DNS message: 5 bytes, shorter than a DNS header"),
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
        let (client, upstream) = (
            "127.0.0.2:4000".parse().unwrap(),
            "127.0.0.1:53".parse().unwrap(),
        );
        d.leg = Some(Leg {
            up: true,
            client,
            upstream,
        });
        assert_eq!(
            shown(&d, Format::Text),
            "127.0.0.2:4000 -> 127.0.0.1:53\nq\n"
        );
        assert_eq!(shown(&d, Format::Raw), "q");
        d.leg = Some(Leg {
            up: false,
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
        assert!(
            shown(&d, Format::Hexdump).starts_with("127.0.0.1:5353 9 bytes (truncated, 2 kept)\n")
        );
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
        assert!(crate::exit::is_quiet(&err));
    }

    proptest! {
        #[test]
        fn every_format_decodes_back_to_the_payload(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            use crate::codec::{decode, Encoding};
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
}
