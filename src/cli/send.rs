//! `dgram send`'s arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::common::{parse_count, parse_rate, EncodingOpts, FamilyOpts, SocketOpts};

/// `--speed`: a factor, or as fast as the socket takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    Factor(f64),
    Max,
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1e6 => Ok(Speed::Factor(x)),
        _ => Err("expected a factor above 0 (0.5, 2, 10) or max".into()),
    }
}
use crate::base::units::{parse_bitrate, parse_duration, parse_size};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Where to send: HOST:PORT, [IPV6]:PORT, [IPV6%SCOPE]:PORT
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// The datagram: the words joined by single spaces ('' sends an empty datagram).
    /// Without MESSAGE, stdin is read
    #[arg(value_name = "MESSAGE", value_parser = clap::value_parser!(OsString))]
    pub message: Vec<OsString>,

    #[command(flatten)]
    pub family: FamilyOpts,

    /// Stdin: one datagram per line, line ending removed (the default)
    #[arg(long, conflicts_with_all = ["whole", "file", "size"], help_heading = "Payload")]
    pub lines: bool,
    /// Stdin: all of it is one datagram
    #[arg(long, conflicts_with_all = ["file", "size"], help_heading = "Payload")]
    pub whole: bool,
    /// The file's content is one datagram
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "size",
        help_heading = "Payload"
    )]
    pub file: Option<PathBuf>,
    /// A DNS query from dig-like words: 'NAME [TYPE] [CLASS] [+FLAG]...' (TYPE A, CLASS IN;
    /// +norecurse, +dnssec, +bufsize=N, +noedns, +short), or '-x ADDR' for its PTR
    /// query, as dig. Implies --reply; replies print as dns
    #[arg(
        long,
        value_name = "QUERY",
        allow_hyphen_values = true,
        conflicts_with_all = ["message", "lines", "whole", "file", "size", "seq", "hex", "base64", "escapes"],
        help_heading = "Payload"
    )]
    pub dns: Option<String>,
    /// The payloads are the UDP datagrams of a capture (pcap or pcapng), each sent at its
    /// captured offset from the first
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["message", "lines", "whole", "file", "size", "seq", "dns", "hex", "base64", "escapes"],
        help_heading = "Payload"
    )]
    pub replay: Option<PathBuf>,
    /// With --replay: the captured gaps divided by X (2: twice as fast; max: no gaps)
    #[arg(long, value_name = "X", value_parser = parse_speed, help_heading = "Payload")]
    pub speed: Option<Speed>,
    /// With --replay: keep only datagrams whose source or destination is ADDR, :PORT or
    /// ADDR:PORT (repeatable)
    #[arg(long = "match", value_name = "ADDR|:PORT", help_heading = "Payload")]
    pub matches: Vec<String>,
    /// A generated payload of N bytes (1400, 64K; at most 65507 over IPv4, 65527 over IPv6)
    #[arg(long, value_name = "N", value_parser = parse_size, help_heading = "Payload")]
    pub size: Option<u64>,
    /// Start every datagram with a sequence header (magic, number, send time), for loss,
    /// reordering, duplicates and delay at listen --stats, and RTT matching with --reply
    #[arg(long, help_heading = "Payload")]
    pub seq: bool,
    #[command(flatten, next_help_heading = "Payload")]
    pub encoding: EncodingOpts,

    /// Send N datagrams (the payload repeated; with stdin lines, at most N lines)
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_count, help_heading = "Pacing")]
    pub count: Option<u64>,
    /// Wait DUR between datagrams (500ms, 1s, ...)
    #[arg(short = 'i', long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "rate", help_heading = "Pacing")]
    pub interval: Option<Duration>,
    /// Pace to PPS datagrams per second (token bucket)
    #[arg(long, value_name = "PPS", value_parser = parse_rate, help_heading = "Pacing")]
    pub rate: Option<f64>,
    /// Pace to RATE bits of UDP payload per second (500k, 10M, 1G; decimal, as iperf3 -b):
    /// --rate RATE / (8 x the payload's size)
    #[arg(long, value_name = "RATE", value_parser = parse_bitrate, conflicts_with_all = ["rate", "interval"], help_heading = "Pacing")]
    pub bitrate: Option<f64>,
    /// Keep sending for DUR (the payload repeated until then, or until --count)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Pacing")]
    pub duration: Option<Duration>,

    /// After each datagram, wait for one reply from the target and print it
    #[arg(short = 'r', long, help_heading = "Replies")]
    pub reply: bool,
    /// How long to wait for a reply, per try; implies --reply (unless --collect)
    /// [default: 2s]
    #[arg(short = 'w', long, value_name = "DUR", value_parser = parse_duration, help_heading = "Replies")]
    pub timeout: Option<Duration>,
    /// Send the same datagram again up to N times when no reply comes; implies --reply
    /// [default: 0]
    #[arg(long, value_name = "N", help_heading = "Replies")]
    pub retries: Option<u32>,
    /// The reply must contain PATTERN (written like the message; with --dns, text of the
    /// answer section: 'A 127.0.0.1'); implies --reply
    #[arg(long, value_name = "PATTERN", value_parser = clap::value_parser!(OsString), help_heading = "Replies")]
    pub expect: Option<OsString>,
    /// With --dns: exit 1 unless the reply's RCODE is this (NOERROR, NXDOMAIN, SERVFAIL,
    /// REFUSED, ... or a number)
    #[arg(long, value_name = "RCODE", help_heading = "Replies")]
    pub expect_rcode: Option<String>,
    /// Wait the whole timeout and print every reply from every responder (discovery)
    #[arg(long, conflicts_with_all = ["reply", "expect"], help_heading = "Replies")]
    pub collect: bool,
    /// How replies are printed (default: text on a terminal, raw into a pipe or file;
    /// hexdump with -x)
    #[arg(
        short = 'f',
        long,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Replies"
    )]
    pub format: Option<crate::cli::format::FormatArg>,

    /// Local address to send from, ADDR or PORT
    #[arg(long, value_name = "ADDR", help_heading = "Socket")]
    pub bind: Option<String>,
    /// Allow sending to a broadcast address (SO_BROADCAST)
    #[arg(long, help_heading = "Socket")]
    pub broadcast: bool,
    /// Set the don't-fragment bit: too large for the path fails instead of fragmenting
    #[arg(long, help_heading = "Socket")]
    pub dont_fragment: bool,
    /// Never use UDP GSO. It is used only for bulk sends (1,000 datagrams or more,
    /// unpaced or above 10,000/s), where a capture on this host shows each send call as
    /// one merged packet
    #[arg(long, help_heading = "Socket")]
    pub no_gso: bool,
    #[command(flatten, next_help_heading = "Socket")]
    pub socket: SocketOpts,

    /// Print a summary on stderr at the end (JSON with --format json)
    #[arg(long)]
    pub stats: bool,
    /// Draw the RTT distribution even when stderr is not a terminal; implies --stats
    #[arg(long)]
    pub histogram: bool,
}
