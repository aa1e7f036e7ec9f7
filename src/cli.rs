//! The command line: clap types only. Each subcommand's `Args` is turned into a validated
//! config by its module in `cmd/`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::filter::parse_net;
use crate::output::Format;
use crate::units::{parse_bytes, parse_duration, parse_size};

/// netcat for datagrams, done right.
#[derive(Debug, Parser)]
#[command(
    name = "dgram",
    version,
    about = "netcat for datagrams, done right: send, listen, echo and multicast UDP",
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogOpts,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse this process's arguments: [`Cli::parse_from_args`] of `std::env::args_os`.
    pub fn from_env() -> Result<Cli, clap::Error> {
        Cli::parse_from_args(std::env::args_os().collect())
    }

    /// Parse a command line (program name first). The one-shot send that scripts run
    /// thousands of times, `dgram send TARGET [WORD]...` with no option, is read
    /// directly; everything else, and anything that could be an option, goes to clap.
    /// Both give the same `Cli`: a test compares them.
    pub fn parse_from_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        match one_shot_send(&args) {
            Some(cli) => Ok(cli),
            None => <Cli as clap::Parser>::try_parse_from(args),
        }
    }
}

/// `dgram send TARGET [WORD]...` where no word starts with `-`: what clap would give,
/// without building the command tree (start-up is a benchmark figure, and clap is most
/// of dgram's own share of it).
fn one_shot_send(args: &[OsString]) -> Option<Cli> {
    let [_, send, target, words @ ..] = args else {
        return None;
    };
    use std::os::unix::ffi::OsStrExt;
    let is_option = |w: &OsString| w.as_bytes().first() == Some(&b'-');
    if send != "send" || is_option(target) || words.iter().any(is_option) {
        return None;
    }
    let target = target.to_str()?.to_string();
    let none = SocketOpts {
        rcvbuf: None,
        sndbuf: None,
        ttl: None,
        tos: None,
    };
    Some(Cli {
        log: LogOpts {
            verbose: 0,
            quiet: false,
        },
        command: Command::Send(SendArgs {
            target,
            message: words.to_vec(),
            family: FamilyOpts {
                ipv4: false,
                ipv6: false,
            },
            lines: false,
            whole: false,
            file: None,
            size: None,
            seq: false,
            encoding: EncodingOpts {
                hex: false,
                base64: false,
                escapes: false,
            },
            count: None,
            interval: None,
            rate: None,
            duration: None,
            reply: false,
            timeout: DEFAULT_REPLY_TIMEOUT,
            retries: 0,
            expect: None,
            collect: false,
            format: None,
            bind: None,
            broadcast: false,
            dont_fragment: false,
            no_gso: false,
            socket: none,
            stats: false,
            histogram: false,
        }),
    })
}

/// `send -w`'s default.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// `-v` / `-q`, accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct LogOpts {
    /// More log detail on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on stderr (the `listening on` line is still printed)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands. `defer`: each one's arguments are built only when it is the one
/// named on the command line (clap's `Command::defer`), so a one-shot `send` does not
/// build `listen`'s, `echo`'s and `multicast`'s — start-up is a benchmark figure.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Send datagrams, optionally wait for replies
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Receive datagrams from every peer and print them
    #[command(after_help = LISTEN_EXAMPLES)]
    Listen(ListenArgs),
    /// Reflect every datagram to its sender: safe by default, impairable on demand
    #[command(after_help = ECHO_EXAMPLES)]
    Echo(EchoArgs),
    /// Join multicast groups and receive, or send to a group
    #[command(subcommand)]
    Multicast(MulticastCommand),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  dgram completions bash > /etc/bash_completion.d/dgram\n  dgram completions zsh > \"${fpath[1]}/_dgram\"\n  dgram completions fish > ~/.config/fish/completions/dgram.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(
        after_help = "Examples:\n  dgram manpage > /usr/local/share/man/man1/dgram.1\n  dgram manpage | man -l -"
    )]
    Manpage,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum MulticastCommand {
    /// Join GROUP:PORT (several at once) and print what arrives, as listen does
    #[command(after_help = JOIN_EXAMPLES)]
    Join(JoinArgs),
    /// Send to GROUP:PORT, with all of send's payload and pacing options
    #[command(after_help = MSEND_EXAMPLES)]
    Send(MulticastSendArgs),
}

const JOIN_EXAMPLES: &str = "\
Examples:
  dgram multicast join 239.1.2.3:5000 --iface eth0     receive a group on eth0
  dgram multicast join 239.1.2.3:0 --iface 127.0.0.1 -w 5s   on loopback; says why if silent
  dgram multicast join 232.1.1.1:5000 --source 10.0.0.7     source-specific (SSM)";

const MSEND_EXAMPLES: &str = "\
Examples:
  dgram multicast send 239.1.2.3:5000 hello --iface eth0  one datagram, TTL 1
  dgram multicast send 239.1.2.3:5000 --iface 127.0.0.1 --size 100 -n 1000 --rate 500
  dgram multicast send 239.255.255.250:1900 -e 'M-SEARCH * HTTP/1.1\\r\\n...' --collect -w 2s";

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Groups to join: GROUP:PORT, [GROUP%IFACE]:PORT; all on one port (0: a free one)
    #[arg(value_name = "GROUP:PORT", required = true)]
    pub groups: Vec<String>,
    /// Interface to join on: NAME, ADDRESS or INDEX (default: the kernel's choice, the
    /// interface of the route to the group)
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Join source-specific: receive the groups from this sender only (SSM)
    #[arg(long, value_name = "ADDR")]
    pub source: Option<std::net::IpAddr>,
    /// Explain at start what could keep datagrams away (also printed when --timeout ends
    /// a run that received nothing)
    #[arg(long)]
    pub diagnose: bool,
    #[command(flatten)]
    pub family: FamilyOpts,
    #[command(flatten)]
    pub receive: ReceiveOpts,
    #[command(flatten)]
    pub socket: SocketOpts,
}

#[derive(Debug, Args)]
pub struct MulticastSendArgs {
    #[command(flatten)]
    pub send: SendArgs,
    /// Interface to send on: NAME, ADDRESS or INDEX (default: the kernel's choice)
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Do not loop our datagrams back to joiners on this host
    #[arg(long)]
    pub no_loop: bool,
}

const SEND_EXAMPLES: &str = "\
Examples:
  dgram send 127.0.0.1:9000 hello                    one datagram, 'hello'
  printf 'a\\nb\\n' | dgram send 127.0.0.1:9000          one datagram per line
  dgram send 127.0.0.1:53 -x '1234 0100 0001 0000 0000 0000 0000 0100 01' -r -f hexdump
                                                     a DNS query for the root, reply as hexdump
  dgram send 127.0.0.1:9000 ping --reply --expect ping -w 500ms --retries 2
                                                     CI smoke test: exit 0 only on a good reply";

const LISTEN_EXAMPLES: &str = "\
Examples:
  dgram listen 9000                                  print what arrives on 127.0.0.1:9000
  dgram listen 0 --ready-file /tmp/addr -n 1 -w 5s   one datagram on a free port, 5 s at most
  dgram listen '[::]:9000' -f json --allow 10.0.0.0/8  every interface, JSON lines";

const ECHO_EXAMPLES: &str = "\
Examples:
  dgram echo 7000                                    an echo on 127.0.0.1:7000
  dgram echo 0 --ready-file /tmp/addr --drop 0.05 --delay 20ms --jitter 5ms --seed 1
                                                     a lossy, slow echo for testing retries
  dgram echo 0.0.0.0:7000 --rate-limit 100           every interface, 100 replies/s per source";

/// `-4` / `-6`.
#[derive(Debug, Args, Clone, Copy)]
pub struct FamilyOpts {
    /// IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only (and `[::]` binds v6-only)
    #[arg(short = '6')]
    pub ipv6: bool,
}

/// Socket options every subcommand takes.
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

/// How the payload is written (MESSAGE, stdin lines, --file, --expect).
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
    /// Keep sending for DUR (the payload repeated until then, or until --count)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Pacing")]
    pub duration: Option<Duration>,

    /// After each datagram, wait for one reply from the target and print it
    #[arg(short = 'r', long, help_heading = "Replies")]
    pub reply: bool,
    /// How long to wait for a reply, per try
    #[arg(short = 'w', long, value_name = "DUR", value_parser = parse_duration, default_value = "2s", help_heading = "Replies")]
    pub timeout: Duration,
    /// Send the same datagram again up to N times when no reply comes
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Replies")]
    pub retries: u32,
    /// The reply must contain PATTERN (written like the message); implies --reply
    #[arg(long, value_name = "PATTERN", value_parser = clap::value_parser!(OsString), help_heading = "Replies")]
    pub expect: Option<OsString>,
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
    pub format: Option<Format>,

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
    /// With --stats and replies: draw the RTT distribution even when stderr is not a terminal
    #[arg(long)]
    pub histogram: bool,
}

/// What every receiving subcommand takes: limits, filters, readiness, output.
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
    pub format: Option<Format>,
    /// Print a summary on stderr at the end (JSON with --format json)
    #[arg(long)]
    pub stats: bool,
    /// A stats line on stderr every DUR while running, as iperf3 -i (JSON with --format json)
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub stats_interval: Option<Duration>,
    /// Also write every datagram (echo: and every reply) to a pcap file, with synthesized
    /// Ethernet/IP/UDP headers, for Wireshark or tshark
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// What every server that binds one address takes (`listen`, `echo`).
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

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub server: ServerOpts,
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerOpts,

    /// Replies per second per source (default: off on loopback, 1000 elsewhere); bursts of twice that
    #[arg(long, value_name = "PPS", value_parser = parse_rate, help_heading = "Safety")]
    pub rate_limit: Option<f64>,
    /// No per-source rate limit, even on a non-loopback address
    #[arg(long, conflicts_with = "rate_limit", help_heading = "Safety")]
    pub no_rate_limit: bool,
    /// At most N sources tracked by the rate limit (memory stays bounded)
    #[arg(long, value_name = "N", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(2..=10_000_000), help_heading = "Safety")]
    pub max_sources: u64,

    /// Drop each reply with probability P (0.05 or 5%)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub drop: f64,
    /// Delay every reply by DUR (a timer queue: other replies are not held up)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Impairment")]
    pub delay: Option<Duration>,
    /// Vary each reply's delay uniformly within ± DUR
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Impairment")]
    pub jitter: Option<Duration>,
    /// Send a reply twice with probability P
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub duplicate: f64,
    /// Hold a reply back until the next one has gone, with probability P (at most 100 ms)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub reorder: f64,
    /// Seed of the impairment decisions: the same seed and input give the same decisions
    #[arg(long, value_name = "N", help_heading = "Impairment")]
    pub seed: Option<u64>,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let (text, scale) = match s.strip_suffix('%') {
        Some(t) => (t, 100.0),
        None => (s, 1.0),
    };
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=scale).contains(&p) => Ok(p / scale),
        _ => Err("expected a probability from 0 to 1 (or 0% to 100%)".into()),
    }
}

fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Ok(r),
        Ok(_) => Err("must be a rate above 0 datagrams per second".into()),
        Err(_) => Err("expected datagrams per second, like 1000 or 0.5".into()),
    }
}

fn parse_byte(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    match v {
        Ok(n) if n <= 255 => Ok(n),
        _ => Err("expected a byte, 0 to 255 or 0x00 to 0xff".into()),
    }
}

fn parse_max_size(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        n @ 0..=65_535 => Ok(n as usize),
        _ => Err("at most 65535: no UDP datagram is larger".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use proptest::prelude::*;

    /// Words a fuzzer should combine: every subcommand and flag, and awkward values.
    fn word() -> impl Strategy<Value = String> {
        let known: Vec<String> = {
            let mut v = vec![
                "send",
                "listen",
                "echo",
                "multicast",
                "join",
                "completions",
                "manpage",
                "--",
                "-",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
            fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
                for a in cmd.get_arguments() {
                    if let Some(l) = a.get_long() {
                        out.push(format!("--{l}"));
                    }
                    if let Some(c) = a.get_short() {
                        out.push(format!("-{c}"));
                    }
                }
                for sub in cmd.get_subcommands() {
                    walk(sub, out);
                }
            }
            walk(&Cli::command(), &mut v);
            v
        };
        prop_oneof![
            proptest::sample::select(known),
            Just("127.0.0.1:9".to_string()),
            Just("[::1]:0".to_string()),
            Just("239.1.2.3:0".to_string()),
            "[0-9]{0,6}",
            "\\PC{0,12}",
        ]
    }

    #[test]
    fn the_fuzz_corpus_replays_without_panics() {
        // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/cli.rs
        use std::os::unix::ffi::OsStringExt;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/cli");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the committed corpus") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let args = std::iter::once(OsString::from("dgram")).chain(
                data.split(|&b| b == 0)
                    .map(|a| OsString::from_vec(a.to_vec())),
            );
            let _ = Cli::try_parse_from(args);
            n += 1;
        }
        assert!(n >= 4, "{n} corpus files");
    }

    proptest! {
        #[test]
        fn no_command_line_makes_the_parser_panic(words in proptest::collection::vec(word(), 0..8)) {
            let _ = Cli::try_parse_from(std::iter::once("dgram".to_string()).chain(words));
        }
    }

    #[test]
    fn the_one_shot_send_parses_as_clap_would() {
        // guards: the fast path must never drift from the clap definitions
        let clap = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            format!("{:?}", <Cli as Parser>::try_parse_from(args).unwrap())
        };
        let fast = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            one_shot_send(&args).map(|c| format!("{c:?}"))
        };
        for args in [
            &["dgram", "send", "127.0.0.1:9"][..],
            &["dgram", "send", "127.0.0.1:9", "hello"],
            &["dgram", "send", "[::1]:53", "a", "b  c", ""],
            &["dgram", "send", "localhost:9", "x=1"],
        ] {
            assert_eq!(fast(args), Some(clap(args)), "{args:?}");
        }
        for args in [
            &["dgram", "send"][..],
            &["dgram", "send", "127.0.0.1:9", "-x", "00"],
            &["dgram", "send", "127.0.0.1:9", "--", "-x"],
            &["dgram", "send", "-4", "127.0.0.1:9"],
            &["dgram", "-v", "send", "127.0.0.1:9"],
            &["dgram", "listen", "9000"],
            &["dgram", "send", "127.0.0.1:9", "x", "-"],
        ] {
            assert_eq!(fast(args), None, "{args:?}");
        }
        assert!(clap(&["dgram", "send", "x:1"]).contains("timeout: 2s"));
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dgram").chain(args.iter().copied()))
    }

    #[test]
    fn good_command_lines_parse() {
        let Command::Send(s) = parse(&[
            "send",
            "127.0.0.1:9",
            "a",
            "b",
            "-n",
            "3",
            "-i",
            "1.5s",
            "-v",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(s.message, ["a", "b"]);
        assert_eq!(s.count, Some(3));
        assert_eq!(s.interval, Some(Duration::from_millis(1500)));
        assert_eq!(s.timeout, Duration::from_secs(2));
        let cli = parse(&[
            "-q",
            "listen",
            "9000",
            "--allow",
            "127.0.0.0/8",
            "-f",
            "json",
        ])
        .unwrap();
        assert!(cli.log.quiet);
        let Command::Listen(l) = cli.command else {
            panic!()
        };
        assert_eq!(l.server.receive.format, Some(Format::Json));
        assert_eq!(l.server.receive.allow.len(), 1);
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for bad in [
            &["send", "127.0.0.1:9", "x", "-n", "0"][..],
            &["send", "127.0.0.1:9", "x", "-n", "abc"],
            &["send", "127.0.0.1:9", "x", "--rate", "0"],
            &["send", "127.0.0.1:9", "x", "--rate", "5", "-i", "1s"],
            &["send", "127.0.0.1:9", "-x", "--base64", "00"],
            &["send", "127.0.0.1:9", "--whole", "--file", "f"],
            &["send", "127.0.0.1:9", "x", "--collect", "--reply"],
            &["send", "127.0.0.1:9", "x", "--ttl", "256"],
            &["send", "127.0.0.1:9", "x", "--tos", "0x100"],
            &["send", "127.0.0.1:9", "x", "-w", "5x"],
            &["send", "-4", "-6", "127.0.0.1:9", "x"],
            &["send"],
            &["listen", "--max-size", "70000"],
            &["listen", "--allow", "10.0.0.0/33"],
            &["listen", "-v", "-q"],
            &["echo", "--drop", "1.5"],
            &["echo", "--drop", "-0.1"],
            &["echo", "--reorder", "x"],
            &["echo", "--rate-limit", "5", "--no-rate-limit"],
            &["frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
