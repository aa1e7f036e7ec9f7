//! The command line: clap types only, a file per subcommand and one for the options they
//! share. Each subcommand's `Args` is turned into a checked config by its module in
//! `cmd/`.
// The doc comments here are the terminal's help text, written for a person at a shell:
// `[IPV6]:PORT` and `'NAME [TTL] TYPE'` are notation there, not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]
// A `derive(Args)` struct's `///` comment becomes its command's `about` and, flattened
// into a subcommand, overwrites that subcommand's first help line: the option structs
// are described with `//` comments, and each subcommand's line is its variant's `///`.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

mod common;
pub mod format;
mod multicast;
mod relay;
mod scan;
mod send;
mod server;

pub use common::{EncodingOpts, FamilyOpts, ReceiveOpts, ServerOpts, SocketOpts};
pub use multicast::{JoinArgs, MulticastSendArgs};
pub use relay::{Directed, RelayArgs};
pub use scan::{ProbeArg, ScanArgs};
pub use send::{SendArgs, Speed};
pub use server::{EchoArgs, ListenArgs, RespondOpts, SafetyOpts};

/// netcat for datagrams, done right.
#[derive(Debug, Parser)]
#[command(
    name = "dgram",
    version,
    about = "netcat for datagrams, done right: send, listen, echo, relay, scan and multicast UDP",
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
        if let Some(err) = help_cluster(&args) {
            return Err(err);
        }
        match one_shot_send(&args) {
            Some(cli) => Ok(cli),
            None => <Cli as clap::Parser>::try_parse_from(args),
        }
    }
}

/// `-hello`, `-hi`: clap reads a word that starts with `-h` as `-h` and prints the help
/// (exit 0), so `dgram send HOST -hello` would check nothing. Only `-h` and `--help` on
/// their own ask for help; such a word is refused, with the line that sends it.
fn help_cluster(args: &[OsString]) -> Option<clap::Error> {
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("?")).collect();
    let end = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let at = (1..end).find(|&i| words[i].starts_with("-h") && words[i].len() > 2)?;
    let mut fixed = words.clone();
    fixed.insert(at, "--");
    fixed[0] = "dgram";
    Some(clap::Error::raw(
        clap::error::ErrorKind::UnknownArgument,
        format!(
            "'{}' is not an option (-h alone asks for help): a MESSAGE that starts with '-' goes after --: {}\n",
            words[at],
            fixed.join(" ")
        ),
    ))
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
            bitrate: None,
            duration: None,
            reply: false,
            timeout: None,
            retries: None,
            expect: None,
            expect_rcode: None,
            dns: None,
            replay: None,
            speed: None,
            matches: Vec::new(),
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

// `-v` / `-q`, accepted before or after the subcommand.
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
    /// A UDP proxy that shows and impairs what passes between clients and a server
    #[command(after_help = RELAY_EXAMPLES)]
    Relay(RelayArgs),
    /// Which UDP ports of a host answer: open, closed, filtered, open|filtered, never a guess
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
    /// What this host's UDP can do: quick checks, one line each
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Join multicast groups and receive, or send to a group
    #[command(subcommand, after_help = MULTICAST_EXAMPLES)]
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
    /// Print the man page (roff): dgram(1), or a subcommand's, dgram-SUBCOMMAND(1)
    #[command(
        after_help = "Examples:\n  dgram manpage > /usr/local/share/man/man1/dgram.1\n  dgram manpage send | man -l -\n  dgram manpage multicast join > dgram-multicast-join.1"
    )]
    Manpage {
        /// The subcommand whose page to print (`multicast join` for a nested one)
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Vec<String>,
    },
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

const MULTICAST_EXAMPLES: &str = "\
Examples:
  dgram multicast join 239.1.2.3:5000 --iface eth0     receive a group on eth0
  dgram multicast send 239.1.2.3:5000 hello --iface eth0  send it one datagram, TTL 1
  dgram multicast join 224.0.0.251:5353 --dns          watch mDNS, decoded";

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

const DOCTOR_EXAMPLES: &str = "\
Examples:
  dgram doctor                                       what will bite UDP on this host
  dgram doctor 127.0.0.1:7 --probe                   one datagram: its answer, or the ICMP error
  dgram doctor --format json                         one object per check";

// `dgram doctor`'s arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this target: its addresses and the route to it (nothing is sent
    /// without --probe)
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// Send one datagram to TARGET and report its answer or the ICMP error
    #[arg(long, requires = "target")]
    pub probe: bool,
    /// text (default) or json (one object per check)
    #[arg(short = 'f', long, value_enum, value_name = "FORMAT")]
    pub format: Option<format::DoctorFormat>,
}

const RELAY_EXAMPLES: &str = "\
Examples:
  dgram relay 5300 --to 127.0.0.53:53 --dns          watch an application talk to its resolver
  dgram relay 9000 --to 10.0.0.7:9000 --drop up=10% --delay down=50ms --seed 1
                                                     test a client against a real server, badly
  dgram relay 0 --to 127.0.0.1:7000 -f json --pcap both.pcap   record both legs
  dgram relay 53 --to tcp://127.0.0.1:5300           each client session over its own TCP stream
  dgram relay tcp://5300 --to 127.0.0.1:53           ... and back to UDP at the far end
  dgram relay 53 --to-exec 'ssh host dgram relay - --to 127.0.0.1:53'
                                                     through ssh, no port forwarding";

const SCAN_EXAMPLES: &str = "\
Examples:
  dgram scan 127.0.0.1 1-65535 --open                  every UDP port that answers here
  dgram scan 10.0.0.5 53,123,161,5353                 the well-known services, each asked properly
  dgram scan 127.0.0.1 8125 --expect open --wait 30s  CI: wait until the service is up (exit 1 if not)
  dgram scan db.internal 5000-5100 -f json            a JSON object per port";

const SEND_EXAMPLES: &str = "\
Examples:
  dgram send 127.0.0.1:9000 hello                    one datagram, 'hello'
  printf 'a\\nb\\n' | dgram send 127.0.0.1:9000          one datagram per line
  dgram send 127.0.0.1:53 --dns 'example.com AAAA'   a DNS query, the answer as dig shows it
  dgram send 127.0.0.1:53 --dns 'example.com' --expect 'A 127.0.0.1' --expect-rcode NOERROR
                                                     CI smoke test of a resolver
  dgram send 127.0.0.1:9000 ping --reply --expect ping -w 500ms --retries 2
                                                     CI smoke test: exit 0 only on a good reply";

const LISTEN_EXAMPLES: &str = "\
Examples:
  dgram listen 9000                                  print what arrives on 127.0.0.1:9000
  dgram listen 0 --ready-file /tmp/addr -n 1 -w 5s   one datagram on a free port, 5 s at most
  dgram listen '[::]:9000' -f json --allow 10.0.0.0/8  every interface, JSON lines
  dgram listen 5353 --dns                            see what an application asks its resolver
  dgram listen 0 --respond pong -f json              a mock server: answer 'pong', record as JSON
  dgram listen 5353 --dns-answer 'db.test A 127.0.0.1'   a one-line mock DNS server";

const ECHO_EXAMPLES: &str = "\
Examples:
  dgram echo 7000                                    an echo on 127.0.0.1:7000
  dgram echo 0 --ready-file /tmp/addr --drop 0.05 --delay 20ms --jitter 5ms --seed 1
                                                     a lossy, slow echo for testing retries
  dgram echo 0.0.0.0:7000 --rate-limit 100           every interface, 100 replies/s per source";

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
        assert!(clap(&["dgram", "send", "x:1"]).contains("timeout: None"));
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
        assert_eq!(s.interval, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(s.timeout, None, "the default is the command's");
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
        assert_eq!(l.server.receive.format, Some(format::FormatArg::Json));
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
