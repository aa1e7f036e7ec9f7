//! The arguments of the servers that bind one address: `listen` and `echo`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::common::{
    parse_burst, parse_distribution, parse_mtu, parse_probability, parse_queue, parse_rate,
    EncodingOpts, ServerOpts,
};
use crate::base::units::{parse_bitrate, parse_delay, parse_duration};
use crate::netem::dist::Distribution;

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    #[command(flatten)]
    pub respond: RespondOpts,
    /// Send each line read from stdin as a datagram to the peer that sent the most
    /// recent one, as nc -u -l (the default when stdin is a terminal)
    #[arg(long, help_heading = "Two-way")]
    pub stdin: bool,
    /// Send stdin's lines to PEER (HOST:PORT), not to the peer that spoke last; implies
    /// --stdin
    #[arg(long, value_name = "PEER", help_heading = "Two-way")]
    pub to: Option<String>,
}

// How listen's answer (--respond) is written: send's -x, --base64 and -e, with what
// they mean here.
#[derive(Debug, Args, Clone, Copy)]
#[group(multiple = false)]
pub struct AnswerEncodingOpts {
    /// --respond's PAYLOAD (and lines typed back to a peer) is hex (whitespace and 0x
    /// ignored); what arrives prints as --format says
    #[arg(short = 'x', long)]
    pub hex: bool,
    /// --respond's PAYLOAD, --respond-file's content and typed lines are base64
    #[arg(long)]
    pub base64: bool,
    /// --respond's PAYLOAD and typed lines have escapes: \n \r \t \0 \\ \xHH
    #[arg(short = 'e', long)]
    pub escapes: bool,
}

impl AnswerEncodingOpts {
    /// As send's encoding flags.
    pub fn common(self) -> EncodingOpts {
        EncodingOpts {
            hex: self.hex,
            base64: self.base64,
            escapes: self.escapes,
        }
    }
}

// `listen` as a mock server: what it answers each request with.
#[derive(Debug, Args)]
pub struct RespondOpts {
    /// Answer every request with PAYLOAD (written as send's MESSAGE: -x, --base64, -e)
    #[arg(long, value_name = "PAYLOAD", value_parser = clap::value_parser!(OsString), help_heading = "Responder")]
    pub respond: Option<OsString>,
    /// Answer every request with the content of PATH
    #[arg(long, value_name = "PATH", conflicts_with_all = ["respond", "dns_answer", "dns_zone"], help_heading = "Responder")]
    pub respond_file: Option<PathBuf>,
    /// Answer each request with what CMD prints (run by /bin/sh -c, one child per request:
    /// stdin the payload; DGRAM_PEER, DGRAM_PEER_ADDR, DGRAM_PEER_PORT, DGRAM_LOCAL and
    /// DGRAM_LEN in its environment; empty stdout or a non-zero exit: no reply)
    #[arg(long, value_name = "CMD", conflicts_with_all = ["respond", "respond_file", "dns_answer", "dns_zone"], help_heading = "Responder")]
    pub exec: Option<String>,
    // With --exec only (checked by the command, since clap's `requires` lapses when a
    // flag that conflicts with --exec is given).
    /// With --exec: a child running longer is killed with its process group [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Responder")]
    pub exec_timeout: Option<Duration>,
    /// With --exec: children at once [default: 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024), help_heading = "Responder")]
    pub exec_jobs: Option<u64>,
    /// With --exec: requests waiting for a free child at most; beyond, dropped and counted
    /// [default: 256]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=1_000_000), help_heading = "Responder")]
    pub exec_queue: Option<u64>,
    /// A mock DNS server's record, 'NAME [TTL] TYPE RDATA' (repeatable; TTL 60 by default)
    #[arg(
        long,
        value_name = "RECORD",
        conflicts_with = "respond",
        help_heading = "Responder"
    )]
    pub dns_answer: Vec<String>,
    /// A file of --dns-answer lines (';' starts a comment)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "respond",
        help_heading = "Responder"
    )]
    pub dns_zone: Option<PathBuf>,
    /// A mock DNS server answers over TCP too, on the same address and port (whole
    /// answers, for a client's TC fallback); --no-tcp: UDP only
    #[arg(long, help_heading = "Responder")]
    pub no_tcp: bool,
    #[command(flatten, next_help_heading = "Responder")]
    pub encoding: AnswerEncodingOpts,
    #[command(flatten)]
    pub safety: SafetyOpts,
}

// Who may get a reply (echo, and listen's responders).
#[derive(Debug, Args)]
pub struct SafetyOpts {
    /// Replies per second per source (default: off on loopback, 1000 elsewhere); bursts of twice that
    #[arg(long, value_name = "PPS", value_parser = parse_rate, help_heading = "Safety")]
    pub rate_limit: Option<f64>,
    /// No per-source rate limit, even on a non-loopback address
    #[arg(long, conflicts_with = "rate_limit", help_heading = "Safety")]
    pub no_rate_limit: bool,
    /// At most N sources tracked by the rate limit (memory stays bounded)
    #[arg(long, value_name = "N", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(2..=10_000_000), help_heading = "Safety")]
    pub max_sources: u64,
}

impl SafetyOpts {
    /// True when a flag was given (listen takes them only with a responder).
    pub fn is_set(&self) -> bool {
        self.rate_limit.is_some() || self.no_rate_limit || self.max_sources != 16_384
    }
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    #[command(flatten)]
    pub safety: SafetyOpts,

    /// Drop each reply with probability P (0.05 or 5%)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub drop: f64,
    /// Drops come in runs of mean length N (a Gilbert–Elliott chain whose long-run rate is
    /// --drop; netem's loss gemodel), as real links lose in bursts
    #[arg(long, value_name = "N", value_parser = parse_burst, requires = "drop", help_heading = "Impairment")]
    pub drop_burst: Option<f64>,
    /// Delay every reply by DUR (a timer queue: other replies are not held up; 50ms, 1s)
    #[arg(long, value_name = "DUR", value_parser = parse_delay, help_heading = "Impairment")]
    pub delay: Option<Duration>,
    /// Vary each reply's delay by up to DUR (evenly within ± DUR unless
    /// --delay-distribution says otherwise)
    #[arg(long, value_name = "DUR", value_parser = parse_delay, help_heading = "Impairment")]
    pub jitter: Option<Duration>,
    /// How delays vary within --jitter: uniform, normal, pareto or paretonormal (netem's
    /// tables) [default: uniform]
    #[arg(long, value_name = "NAME", value_parser = parse_distribution, requires = "jitter", help_heading = "Impairment")]
    pub delay_distribution: Option<Distribution>,
    /// A bottleneck of RATE bits/s (64k, 10M, 1G; counting 28 bytes of IPv4 or 48 of IPv6
    /// headers): replies leave at that rate in order, waiting in a queue
    #[arg(long, value_name = "RATE", value_parser = parse_bitrate, help_heading = "Impairment")]
    pub bandwidth: Option<f64>,
    /// Replies waiting for --bandwidth at most; the next is dropped [default: 1000]
    #[arg(long, value_name = "N", value_parser = parse_queue, requires = "bandwidth", help_heading = "Impairment")]
    pub queue: Option<usize>,
    /// Send a reply twice with probability P
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub duplicate: f64,
    /// Reorder a reply with probability P: with --delay or --jitter it goes at once, past the
    /// delayed ones (netem's reorder); with no delay, it is held until the next has gone
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub reorder: f64,
    /// Flip one random bit of a reply with probability P (a broken middlebox: the UDP
    /// checksum is valid)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub corrupt: f64,
    /// Drop a reply whose IP packet would exceed N bytes (payload + 28 on IPv4, 48 on IPv6)
    #[arg(long, value_name = "N", value_parser = parse_mtu, help_heading = "Impairment")]
    pub mtu: Option<usize>,
    /// Seed of the impairment decisions: the same seed and input give the same decisions
    #[arg(long, value_name = "N", help_heading = "Impairment")]
    pub seed: Option<u64>,
}
