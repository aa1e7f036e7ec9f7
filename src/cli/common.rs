//! The options several subcommands share, flattened into their `Args`, and the value
//! parsers of the command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use crate::base::units::{parse_bytes, parse_duration, parse_size};
use crate::cli::format::FormatArg;
use crate::net::filter::parse_net;
use crate::report::output::Format;

// `-4` / `-6`.
#[derive(Debug, Args, Clone, Copy)]
pub struct FamilyOpts {
    /// IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only (and `[::]` binds v6-only)
    #[arg(short = '6')]
    pub ipv6: bool,
}

// Socket options every subcommand takes.
#[derive(Debug, Args, Clone)]
pub struct SocketOpts {
    /// Receive buffer size, SO_RCVBUF (e.g. 4M); warns when the kernel gives less
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub rcvbuf: Option<usize>,
    /// Send buffer size, SO_SNDBUF (e.g. 1M); warns when the kernel gives less
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub sndbuf: Option<usize>,
    /// IP TTL / IPv6 hop limit of datagrams sent
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: Option<u32>,
    /// IP TOS / IPv6 traffic class byte of datagrams sent (e.g. 0xb8 or 184)
    #[arg(long, value_name = "N", value_parser = parse_byte)]
    pub tos: Option<u32>,
}

// How the payload is written (MESSAGE, stdin lines, --file, --expect).
#[derive(Debug, Args, Clone, Copy)]
#[group(multiple = false)]
pub struct EncodingOpts {
    /// Payload is hex; whitespace and 0x ignored. Replies print as hexdump
    #[arg(short = 'x', long)]
    pub hex: bool,
    /// Payload is base64
    #[arg(long)]
    pub base64: bool,
    /// Payload has escapes: \n \r \t \0 \\ \xHH
    #[arg(short = 'e', long)]
    pub escapes: bool,
}

// What every receiving subcommand takes: limits, filters, readiness, output.
#[derive(Debug, Args)]
pub struct ReceiveOpts {
    /// Exit after N datagrams (exit 1 if something else ends the run first)
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,
    /// Exit when nothing has arrived for DUR
    #[arg(short = 'w', long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Exit after DUR
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Accept only sources in CIDR (repeatable)
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<IpNet>,
    /// Drop sources in CIDR (repeatable; wins over --allow)
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub deny: Vec<IpNet>,
    /// Keep at most BYTES of each datagram; longer ones are reported truncated
    #[arg(long, value_name = "BYTES", value_parser = parse_max_size, default_value = "65535")]
    pub max_size: usize,
    /// Share the port with other sockets (SO_REUSEPORT)
    #[arg(long)]
    pub reuse_port: bool,
    /// Take coalesced batches from the kernel (UDP GRO, Linux), split back into datagrams:
    /// less CPU for traffic that arrives coalesced, but a local GSO sender is no longer
    /// slowed to the receiver's pace, so floods lose more. Not with --count
    #[arg(long, conflicts_with = "count")]
    pub gro: bool,
    /// Once bound, write the address to PATH (atomically), for scripts to wait on
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// How datagrams are printed on stdout (listen: text on a terminal, raw into a pipe
    /// or file; echo: nothing unless asked)
    #[arg(short = 'f', long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Print a summary on stderr at the end (JSON with --format json); listen's adds the
    /// loss, reordering, one-way delay and RFC 3550 jitter of --seq senders, each sender's
    #[arg(long)]
    pub stats: bool,
    /// A stats line on stderr every DUR while running, as iperf3 -i (JSON with --format
    /// json): datagrams, bytes, rate, and with --seq senders the loss and jitter
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub stats_interval: Option<Duration>,
    /// The traffic is DNS: print each datagram decoded, as dig shows it (the default
    /// format then), and JSON lines gain a `dns` object
    #[arg(long)]
    pub dns: bool,
    /// Also write every datagram (echo: and every reply) to a pcap file, with synthesized
    /// Ethernet/IP/UDP headers, for Wireshark or tshark
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

impl ReceiveOpts {
    /// The format datagrams print in: `--format`, else `dns` with `--dns`, else `text` on
    /// a terminal and `raw` into a pipe or a file.
    pub fn printed_format(&self) -> Format {
        self.printed(self.dns)
    }

    /// Whether `--format json` was asked for (stats then print as JSON too).
    pub fn is_json(&self) -> bool {
        self.format == Some(FormatArg::Json)
    }

    /// [`printed_format`](Self::printed_format) when the traffic is DNS (`dns`: `--dns`,
    /// or a mock DNS server's requests) or not.
    pub fn printed(&self, dns: bool) -> Format {
        match (self.format, dns) {
            (Some(f), _) => f.into(),
            (None, true) => Format::Dns,
            (None, false) => Format::for_stdout(),
        }
    }
}

// What every server that binds one address takes (`listen`, `echo`).
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// Address to listen on: PORT (means 127.0.0.1:PORT), HOST:PORT, [IPV6]:PORT
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub addr: String,
    #[command(flatten)]
    pub family: FamilyOpts,
    #[command(flatten)]
    pub receive: ReceiveOpts,
    #[command(flatten)]
    pub socket: SocketOpts,
}

pub fn parse_probability(s: &str) -> Result<f64, String> {
    let (text, scale) = match s.strip_suffix('%') {
        Some(t) => (t, 100.0),
        None => (s, 1.0),
    };
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=scale).contains(&p) => Ok(p / scale),
        _ => Err("expected a probability from 0 to 1 (or 0% to 100%)".into()),
    }
}

pub fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `--mtu N`: an IPv4 packet's least MTU (68, RFC 791) up to the largest a UDP datagram
/// makes (65,575 with IPv6's headers).
pub fn parse_mtu(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (68..=65_575).contains(&n) => Ok(n),
        Ok(_) => Err("an MTU is 68 to 65575 bytes".into()),
        Err(_) => Err("expected an MTU in bytes, like 1280 or 576".into()),
    }
}

/// `--delay-distribution NAME`: netem's names.
pub fn parse_distribution(s: &str) -> Result<crate::netem::dist::Distribution, String> {
    crate::netem::dist::Distribution::from_name(s).ok_or_else(|| {
        format!("unknown distribution '{s}': uniform, normal, pareto or paretonormal")
    })
}

/// `--queue N`: datagrams waiting for `--bandwidth`'s link.
pub fn parse_queue(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err("expected a queue of 1 to 1000000 datagrams".into()),
    }
}

/// `--drop-burst N`: a mean run length of at least one datagram.
pub fn parse_burst(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && (1.0..=1e6).contains(&n) => Ok(n),
        Ok(_) => Err("a mean run of drops is at least 1 datagram".into()),
        Err(_) => Err("expected a mean run length in datagrams, like 4 or 2.5".into()),
    }
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Ok(r),
        Ok(_) => Err("must be a rate above 0 datagrams per second".into()),
        Err(_) => Err("expected datagrams per second, like 1000 or 0.5".into()),
    }
}

pub fn parse_byte(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    match v {
        Ok(n) if n <= 255 => Ok(n),
        _ => Err("expected a byte, 0 to 255 or 0x00 to 0xff".into()),
    }
}

pub fn parse_max_size(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        n @ 0..=65_535 => Ok(n as usize),
        _ => Err("at most 65535: no UDP datagram is larger".into()),
    }
}
