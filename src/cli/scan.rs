//! `dgram scan`'s arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::common::{parse_rate, EncodingOpts, FamilyOpts, SocketOpts};
use super::format::FormatArg;
use crate::base::units::parse_duration;

/// `--probe`: what a port is sent when no payload is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProbeArg {
    /// A valid request of the port's well-known protocol where dgram knows one (DNS 53,
    /// NTP 123, NetBIOS 137, SNMP 161, SSDP 1900, STUN 3478, mDNS 5353, echo 7), else empty
    Auto,
    /// An empty datagram to every port
    Empty,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The host to scan: a name, an IPv4 or IPv6 address
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Ports and ranges: 53,123,1000-2000 or 1-65535
    #[arg(value_name = "PORTS")]
    pub ports: String,
    /// Send these words to every port instead of the probes ('' sends an empty datagram)
    #[arg(value_name = "MESSAGE", value_parser = clap::value_parser!(OsString))]
    pub message: Vec<OsString>,

    #[command(flatten)]
    pub family: FamilyOpts,

    /// What a port is sent when no payload is given
    #[arg(long, value_enum, default_value = "auto", help_heading = "Payload")]
    pub probe: ProbeArg,
    /// Send the file's content to every port
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "message",
        help_heading = "Payload"
    )]
    pub file: Option<PathBuf>,
    /// Send this DNS query (dig-like words) to every port
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["message", "file"], help_heading = "Payload")]
    pub dns: Option<String>,
    #[command(flatten, next_help_heading = "Payload")]
    pub encoding: EncodingOpts,

    /// How long to wait for an answer, per try
    #[arg(short = 'w', long, value_name = "DUR", value_parser = parse_duration, default_value = "1s", help_heading = "Timing")]
    pub timeout: Duration,
    /// Tries after the first for a port that stayed silent [default: 2; 0 on this host,
    /// whose ICMP is exact and instant]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=20), help_heading = "Timing")]
    pub retries: Option<u32>,
    /// Probes per second [default: 100 off this host (hosts rate-limit their ICMP);
    /// unlimited on it]
    #[arg(long, value_name = "PPS", value_parser = parse_rate, help_heading = "Timing")]
    pub rate: Option<f64>,

    /// Print only the open ports
    #[arg(long)]
    pub open: bool,
    /// A line per port (text), or a JSON object per port (json)
    #[arg(
        short = 'f',
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub format: FormatArg,
    /// Exit 1 unless every port is in one of these states (open, closed, filtered,
    /// open|filtered; comma-separated)
    #[arg(long, value_name = "STATES")]
    pub expect: Option<String>,
    /// With --expect: keep probing the ports not yet in a wanted state until they are, or
    /// DUR has passed
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "expect")]
    pub wait: Option<Duration>,

    #[command(flatten)]
    pub socket: SocketOpts,
}
