//! Output formats of SPEC §5 and the buffered stdout they are written to.
//!
//! Stdout is data: every datagram goes through [`Output::write`] into one buffer that is
//! flushed when the socket goes idle (the caller's job, see [`Output::flush`]), when it
//! fills, and before exit. A reader that goes away (`| head`) becomes
//! [`StdoutClosed`], which ends the program quietly.

use crate::net::endpoint::Endpoint;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::base::error::StdoutClosed;
use crate::netem::Dir;

/// How a received datagram is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Each answer's data, one per line, as `dig +short` (send's `--dns '... +short'`)
    DnsShort,
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
    /// Who sent it (IPv4-mapped addresses already shown as IPv4; a relay's stream side
    /// by its stream).
    pub peer: Endpoint,
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
    /// Client → upstream, or back.
    pub dir: Dir,
    pub client: Endpoint,
    pub upstream: Endpoint,
}

impl Leg {
    /// `CLIENT -> UPSTREAM` or `UPSTREAM -> CLIENT`, and a newline, appended to `out`.
    fn header(&self, out: &mut Vec<u8>) {
        let (from, to) = match self.dir {
            Dir::Up => (self.client, self.upstream),
            Dir::Down => (self.upstream, self.client),
        };
        let _ = writeln!(out, "{from} -> {to}");
    }
}

impl Datagram<'_> {
    /// True when the kernel cut the datagram to fit the receive buffer.
    pub fn is_truncated(&self) -> bool {
        self.payload.len() < self.len
    }
}

/// A value serialized as the string its `Display` writes, written straight into the
/// output (serde's `collect_str`): a JSON line allocates no string per datagram.
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
#[serde(bound(serialize = "B: std::fmt::Display"))]
struct JsonLine<'a, B: std::fmt::Display> {
    time: Shown<humantime::Rfc3339Timestamp>,
    peer: Shown<Endpoint>,
    len: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    captured: Option<usize>,
    base64: Shown<B>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<Shown<Endpoint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<Shown<Endpoint>>,
}

/// The `dns` object of a JSON line: the message, or why the datagram is not one.
#[derive(Serialize)]
#[serde(untagged)]
enum DnsField {
    Message(crate::wire::dns::DnsJson),
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
            leg.header(out);
        }
    }
    match format {
        Format::Raw => out.extend_from_slice(d.payload),
        Format::Line => {
            out.extend_from_slice(d.payload);
            out.push(b'\n');
        }
        Format::Text => {
            crate::wire::codec::escape_text(d.payload, out);
            out.push(b'\n');
        }
        Format::Hex => {
            crate::wire::codec::hex_into(d.payload, out);
            out.push(b'\n');
        }
        Format::Base64 => {
            crate::wire::codec::base64_into(d.payload, out);
            out.push(b'\n');
        }
        Format::Hexdump => hexdump(d, out),
        Format::DnsShort => match crate::wire::dns::decode(d.payload) {
            Ok(msg) => {
                let mut text = String::new();
                crate::wire::dns::write_short(&msg, &mut text);
                out.extend_from_slice(text.as_bytes());
            }
            Err(reason) => not_dns(d, &reason, out),
        },
        Format::Dns => match crate::wire::dns::decode(d.payload) {
            Ok(msg) => {
                let mut text = String::new();
                crate::wire::dns::write_dig(&msg, d.peer, d.len, d.rtt, &mut text);
                out.extend_from_slice(text.as_bytes());
            }
            Err(reason) => not_dns(d, &reason, out),
        },
        Format::Json => {
            let line = JsonLine {
                time: Shown(humantime::format_rfc3339_micros(d.time)),
                peer: Shown(d.peer),
                len: d.len,
                truncated: d.is_truncated(),
                captured: d.is_truncated().then_some(d.payload.len()),
                base64: Shown(crate::wire::codec::base64_display(d.payload)),
                text: std::str::from_utf8(d.payload).ok(),
                rtt_us: d.rtt.map(|r| r.as_micros() as u64),
                dns: dns.then(|| match crate::wire::dns::decode(d.payload) {
                    Ok(msg) => DnsField::Message(crate::wire::dns::DnsJson::new(&msg)),
                    Err(error) => DnsField::Error { error },
                }),
                dir: d.leg.map(|l| l.dir.name()),
                client: d.leg.map(|l| Shown(l.client)),
                upstream: d.leg.map(|l| Shown(l.upstream)),
            };
            serde_json::to_writer(&mut *out, &line).expect("writing JSON to a Vec cannot fail");
            out.push(b'\n');
        }
    }
}

/// A datagram shown as DNS that does not decode (SPEC §5): the same `;; PEER, LEN bytes`
/// line as a message, the reason, and the bytes as hexdump rows; the run goes on.
fn not_dns(d: &Datagram<'_>, reason: &str, out: &mut Vec<u8>) {
    let mut head = String::new();
    crate::wire::dns::write_peer_line(d.peer, d.len, d.rtt, &mut head);
    out.extend_from_slice(head.as_bytes());
    let _ = writeln!(out, ";; not a DNS message: {reason}");
    hexdump_rows(d.payload, out);
    out.push(b'\n');
}

fn hexdump(d: &Datagram<'_>, out: &mut Vec<u8>) {
    // Written straight into `out` (io::Write on a Vec cannot fail).
    let _ = write!(out, "{} {} bytes", d.peer, d.len);
    if d.is_truncated() {
        let _ = write!(out, " (truncated, {} kept)", d.payload.len());
    }
    if let Some(rtt) = d.rtt {
        let _ = write!(out, " rtt {}", crate::base::units::HumanDuration(rtt));
    }
    out.push(b'\n');
    hexdump_rows(d.payload, out);
}

/// Offset / hex / ASCII rows of 16 bytes.
fn hexdump_rows(payload: &[u8], out: &mut Vec<u8>) {
    for (row, chunk) in payload.chunks(16).enumerate() {
        let _ = write!(out, "{:08x}  ", row * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(&b) => {
                    crate::wire::codec::hex_into(&[b], out);
                    out.push(b' ');
                }
                None => out.extend_from_slice(b"   "),
            }
            if i == 7 {
                out.push(b' ');
            }
        }
        out.extend_from_slice(b" |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'.'
            }
        }));
        out.extend_from_slice(b"|\n");
    }
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
    let owned = io::stdout().as_fd().try_clone_to_owned().map_err(|e| {
        anyhow::anyhow!("cannot use stdout: {}", crate::base::error::describe_io(&e))
    })?;
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
            crate::base::error::describe_io(&e)
        )
    }
}

#[cfg(test)]
mod tests;
