//! `dgram send`'s flags checked into a [`Config`]: pure (the terminals are passed in,
//! files and stdin are read only when the run starts), so every combination is
//! unit-tested here without spawning a process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::flags::{
    format_needs_replies, host_port_hint, needs, pace, wants_reply, DEFAULT_REPLY_TIMEOUT,
};
use crate::base::error::usage;
use crate::cli::SendArgs;
use crate::net::addr::{parse_bind, parse_target};
use crate::net::errors::broadcast_refused;
use crate::report::output::Format;
pub use crate::report::terminals::Terminals;
use crate::send::run::{DnsReply, Plan, Replies};
use crate::send::source::Payload;
use crate::send::transmit::is_bulk;
use crate::wire::codec::{decode, Encoding};
use crate::wire::payload::check_size;
use crate::wire::payload::{join_words, os_bytes, with_seq_room};
use crate::wire::seq;

/// `dgram send` with every flag checked: nothing has been read or sent yet.
#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub options: crate::net::socket::Options,
    pub payload: Payload,
    pub encoding: Encoding,
    pub plan: Plan,
    pub format: Format,
    /// `--dns`: replies are DNS (JSON lines carry the `dns` object).
    pub dns: bool,
    pub stats: bool,
    /// Draw the RTT chart: `--histogram`, or stderr is a terminal.
    pub histogram: bool,
}

impl Config {
    /// Check every flag of `args`, with `terminals` for the defaults that depend on them.
    /// Reads nothing: files and stdin are read when the run starts.
    pub fn from_args(args: SendArgs, terminals: Terminals) -> anyhow::Result<Self> {
        let family = args.family.family();
        let target =
            parse_target(&args.target, family).map_err(|e| match host_port_hint(&args) {
                Some(hint) => usage!("{e} (did you mean {hint}?)"),
                None => e.into(),
            })?;
        if target.ip() == IpAddr::V4(Ipv4Addr::BROADCAST) && !args.broadcast {
            return Err(broadcast_refused(target.ip()));
        }
        let bind = parse_bind(args.bind.as_deref(), &target, family)?;
        let encoding = args.encoding.encoding();
        let (payload, dns) = match dns_query(&args)? {
            Some((query, reply)) => (Payload::Message(query), Some(reply)),
            None => (payload(&args, encoding, &target)?, None),
        };
        if let Payload::Message(bytes) = &payload {
            check_size(bytes.len(), &target).map_err(|e| usage!("{e}"))?;
        }
        needs(&args)?;
        if args.seq && wants_reply(&args) && args.retries.unwrap_or(0) > 0 {
            return Err(usage!(
                "--retries with --seq: replies are matched by sequence number and a missing one is counted lost, not resent"
            ));
        }
        let expect = expect_pattern(&args, encoding, dns.is_some())?;
        let is_dns = dns.is_some();
        let short = dns.as_ref().is_some_and(|d| d.short);
        let lines = payload == Payload::Lines;
        let replies = replies(&args, expect, dns, lines && terminals.stdin);
        format_needs_replies(&args, &replies)?;
        let replay = matches!(payload, Payload::Replay(..));
        // A single payload goes once, unless --count or --duration ask for more.
        let count = match (lines || replay, args.count, args.duration) {
            (false, None, None) => Some(1),
            (_, count, _) => count,
        };
        let rate = pace(&args, &payload)?;
        let mut options = args.socket.options(family);
        options.broadcast = args.broadcast;
        options.dont_fragment = args.dont_fragment;
        // What the network says about our datagrams, and who says it (SPEC §9).
        options.recv_errors = true;
        let format = match reply_format(&args, encoding, is_dns, terminals.stdout) {
            Format::Dns if short => Format::DnsShort,
            other => other,
        };
        let gso = !args.no_gso && !lines && !replay && is_bulk(count, args.duration, rate);
        // The captured gaps set the pace unless --rate/--interval replace them.
        let replay_speed = match (replay, rate, args.speed) {
            (true, None, None) => Some(1.0),
            (true, None, Some(crate::cli::Speed::Factor(x))) => Some(x),
            _ => None,
        };
        Ok(Config {
            bind,
            options,
            payload,
            encoding,
            plan: Plan {
                target,
                replies,
                seq: args.seq,
                gso,
                count,
                duration: args.duration,
                rate,
                replay_speed,
                ttl: args.socket.ttl,
            },
            format,
            dns: is_dns,
            stats: args.stats || args.histogram,
            histogram: args.histogram || terminals.stderr,
        })
    }
}

/// `--expect`, decoded as the message is; with `--dns`, text matched against the answer
/// section as it is shown.
fn expect_pattern(
    args: &SendArgs,
    encoding: Encoding,
    dns: bool,
) -> anyhow::Result<Option<Vec<u8>>> {
    let encoding = if dns { Encoding::Text } else { encoding };
    args.expect
        .as_ref()
        .map(|p| decode(&os_bytes(p), encoding).map_err(|e| usage!("invalid --expect: {e}")))
        .transpose()
}

/// How replies print: `--format`, else `dns` for `--dns`, `hexdump` for `-x`, `text` on
/// a terminal and `raw` elsewhere.
fn reply_format(args: &SendArgs, encoding: Encoding, dns: bool, stdout_terminal: bool) -> Format {
    args.format.map(Format::from).unwrap_or(if dns {
        Format::Dns
    } else if encoding == Encoding::Hex {
        Format::Hexdump
    } else {
        Format::default_for(stdout_terminal)
    })
}

/// `--dns NAME [TYPE]`: the query's bytes and what its answer must match, with
/// `--expect-rcode`.
fn dns_query(args: &SendArgs) -> anyhow::Result<Option<(Vec<u8>, DnsReply)>> {
    let Some(words) = &args.dns else {
        return Ok(None);
    };
    let spec = crate::wire::dns::parse_query(words).map_err(|e| usage!("--dns: {e}"))?;
    let id = crate::wire::dns::random_id();
    let bytes = spec.encode(id).map_err(|e| usage!("--dns: {e}"))?;
    let rcode = args
        .expect_rcode
        .as_deref()
        .map(crate::wire::dns::parse_rcode)
        .transpose()
        .map_err(|e| usage!("--expect-rcode: {e}"))?;
    let question = spec.message(id).queries.remove(0);
    Ok(Some((
        bytes,
        DnsReply {
            id,
            question,
            rcode,
            short: spec.short,
            tcp: spec.tcp,
            fallback: !spec.ignore,
        },
    )))
}

/// What is sent, when it is not a DNS query: MESSAGE, a capture, a file, `--size`
/// generated bytes, stdin whole, or stdin lines (the default). Sizes are checked here,
/// before anything is allocated or read.
fn payload(args: &SendArgs, encoding: Encoding, target: &SocketAddr) -> anyhow::Result<Payload> {
    let has_message = !args.message.is_empty();
    if has_message && (args.file.is_some() || args.whole || args.lines || args.size.is_some()) {
        return Err(usage!("MESSAGE cannot be combined with --file, --whole, --lines or --size: they name another payload"));
    }
    if has_message {
        let joined = join_words(&args.message);
        let bytes = decode(&joined, encoding).map_err(|e| usage!("invalid MESSAGE: {e}"))?;
        return Ok(Payload::Message(with_seq_room(bytes, args.seq)));
    }
    if let Some(path) = &args.replay {
        let matches = args
            .matches
            .iter()
            .map(|m| crate::wire::capture::Match::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage!("{e}"))?;
        return Ok(Payload::Replay(path.clone(), matches));
    }
    if let Some(path) = &args.file {
        return Ok(Payload::File(path.clone()));
    }
    if let Some(size) = args.size {
        // Checked before anything is allocated: --size 4G is refused at once.
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        check_size(size, target).map_err(|e| usage!("--size: {e}"))?;
        if args.seq && size < seq::HEADER_LEN {
            return Err(usage!(
                "--size {size} with --seq: at least {} bytes, the sequence header",
                seq::HEADER_LEN
            ));
        }
        return Ok(Payload::Size(size));
    }
    Ok(if args.whole {
        Payload::Whole
    } else {
        Payload::Lines
    })
}

/// How replies are awaited: `--collect`, by `--seq` number, one per datagram (`--reply`,
/// `--expect`, `--dns`), interactively (lines typed on a terminal), or not at all.
fn replies(
    args: &SendArgs,
    expect: Option<Vec<u8>>,
    dns: Option<DnsReply>,
    typed: bool,
) -> Replies {
    let timeout = args.timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT);
    let reply = wants_reply(args);
    if args.collect {
        Replies::Collect { timeout }
    } else if reply && args.replay.is_some() {
        Replies::Streamed { timeout, expect }
    } else if reply && args.seq {
        Replies::BySeq { timeout, expect }
    } else if reply || dns.is_some() {
        Replies::Each {
            timeout,
            retries: args.retries.unwrap_or(0),
            expect,
            dns,
        }
    } else if typed {
        Replies::Interactive
    } else {
        Replies::None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str], terminals: Terminals) -> anyhow::Result<Config> {
        let cli =
            crate::cli::Cli::try_parse_from(["dgram", "send"].iter().chain(args.iter()).copied())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let crate::cli::Command::Send(args) = cli.command else {
            unreachable!("parsed a send")
        };
        Config::from_args(args, terminals)
    }

    /// The `Config` of `dgram send ARGS` (for the tests of the report too).
    pub(crate) fn ok(args: &[&str]) -> Config {
        config(args, Terminals::default()).unwrap_or_else(|e| panic!("{args:?}: {e:#}"))
    }

    fn refused(args: &[&str]) -> String {
        let e = config(args, Terminals::default()).expect_err("refused");
        assert_eq!(
            crate::app::exit::code_for(&e),
            crate::app::exit::USAGE,
            "{e:#}"
        );
        format!("{e:#}")
    }

    #[test]
    fn bulk_sends_of_one_payload_use_gso_unless_told_not_to() {
        assert!(ok(&["127.0.0.1:9", "x", "-n", "5000"]).plan.gso);
        assert!(!ok(&["127.0.0.1:9", "x", "-n", "5000", "--no-gso"]).plan.gso);
        assert!(!ok(&["127.0.0.1:9", "-n", "5000"]).plan.gso, "stdin lines");
    }

    #[test]
    fn the_payload_and_its_count_follow_the_flags() {
        let c = ok(&["127.0.0.1:9", "hello", "world"]);
        assert_eq!(c.payload, Payload::Message(b"hello world".to_vec()));
        assert_eq!(c.plan.count, Some(1));
        assert!(matches!(c.plan.replies, Replies::None));
        let c = ok(&["127.0.0.1:9"]);
        assert_eq!((c.payload, c.plan.count), (Payload::Lines, None));
        let c = ok(&["127.0.0.1:9", "--size", "64", "-n", "3"]);
        assert_eq!((c.payload, c.plan.count), (Payload::Size(64), Some(3)));
        let c = ok(&["127.0.0.1:9", "--whole"]);
        assert_eq!(c.payload, Payload::Whole);
        let c = ok(&["127.0.0.1:9", "-x", "6869", "--seq"]);
        assert_eq!(
            c.payload,
            Payload::Message([vec![0; seq::HEADER_LEN], b"hi".to_vec()].concat())
        );
        assert_eq!(
            ok(&["127.0.0.1:9", "x", "-i", "250ms"]).plan.rate,
            Some(4.0)
        );
        // --bitrate: bits of payload a second, over the payload's size.
        let paced = |args: &[&str]| ok(args).plan.rate.unwrap();
        assert_eq!(
            paced(&["127.0.0.1:9", "--size", "1400", "--bitrate", "1G"]),
            1e9 / 11_200.0
        );
        assert_eq!(
            paced(&["127.0.0.1:9", "abcd", "-n", "9", "--bitrate", "64k"]),
            2000.0
        );
        for (args, why) in [
            (&["127.0.0.1:9", "--bitrate", "1M"][..], "one size"),
            (&["127.0.0.1:9", "--whole", "--bitrate", "1M"], "one size"),
            (
                &["127.0.0.1:9", "-x", "", "--bitrate", "1M"],
                "at least one byte",
            ),
        ] {
            let e = config(args, Terminals::default()).unwrap_err().to_string();
            assert!(e.contains(why), "{args:?}: {e}");
        }
        assert_eq!(ok(&["127.0.0.1:9", "-x", "00"]).format, Format::Hexdump);
        assert_eq!(ok(&["127.0.0.1:9", "x", "-r"]).format, Format::Raw);
        let tty = Terminals {
            stdout: true,
            ..Terminals::default()
        };
        let text = config(&["127.0.0.1:9", "x", "-r"], tty).unwrap().format;
        assert_eq!(text, Format::Text);
        let raw = config(&["127.0.0.1:9", "x", "-r", "-f", "raw"], tty).unwrap();
        assert_eq!(raw.format, Format::Raw);
    }

    #[test]
    fn replies_are_matched_as_the_flags_say() {
        let reply = |args: &[&str], t: Terminals| config(args, t).unwrap().plan.replies;
        let none = Terminals::default();
        let tty = Terminals {
            stdin: true,
            ..none
        };
        assert!(matches!(
            reply(&["127.0.0.1:9", "x", "-r", "--retries", "2"], none),
            Replies::Each { retries: 2, .. }
        ));
        assert!(matches!(
            reply(&["127.0.0.1:9", "x", "--expect", "x"], none),
            Replies::Each {
                expect: Some(_),
                ..
            }
        ));
        assert!(matches!(
            reply(&["127.0.0.1:9", "x", "-r", "--seq"], none),
            Replies::BySeq { .. }
        ));
        assert!(matches!(
            reply(&["127.0.0.1:9", "x", "--collect"], none),
            Replies::Collect { .. }
        ));
        assert!(matches!(
            reply(&["127.0.0.1:9", "--replay", "c.pcap", "-r"], none),
            Replies::Streamed { expect: None, .. }
        ));
        assert!(matches!(
            reply(
                &["127.0.0.1:9", "--replay", "c.pcap", "--expect", "ok"],
                none
            ),
            Replies::Streamed {
                expect: Some(_),
                ..
            }
        ));
        assert!(matches!(
            reply(&["127.0.0.1:9", "--replay", "c.pcap"], none),
            Replies::None
        ));
        assert!(matches!(reply(&["127.0.0.1:9"], tty), Replies::Interactive));
        assert!(matches!(reply(&["127.0.0.1:9"], none), Replies::None));
        assert!(matches!(reply(&["127.0.0.1:9", "x"], tty), Replies::None));
        assert!(ok(&["127.0.0.1:9", "x", "--histogram"]).histogram);
        let stderr_tty = Terminals {
            stderr: true,
            ..none
        };
        assert!(config(&["127.0.0.1:9", "x"], stderr_tty).unwrap().histogram);
        assert!(!ok(&["127.0.0.1:9", "x"]).histogram);
    }

    #[test]
    fn a_dns_query_is_the_payload_and_its_answer_the_reply() {
        let c = ok(&[
            "127.0.0.1:53",
            "--dns",
            "example.com AAAA",
            "--expect-rcode",
            "nxdomain",
        ]);
        let Payload::Message(bytes) = &c.payload else {
            panic!("{:?}", c.payload)
        };
        let query = crate::wire::dns::decode(bytes).unwrap();
        let Replies::Each {
            dns: Some(want),
            retries: 0,
            ..
        } = &c.plan.replies
        else {
            panic!("{:?}", c.plan.replies)
        };
        assert_eq!(want.id, query.metadata.id);
        assert_eq!(want.question, query.queries[0]);
        assert_eq!(want.rcode, Some(3));
        assert_eq!(c.format, Format::Dns);
        assert!(c.dns);
        let c = ok(&["127.0.0.1:53", "--dns", "x", "-f", "json"]);
        assert_eq!(c.format, Format::Json);
        assert!(refused(&["127.0.0.1:53", "--dns", "a..b"]).contains("--dns: invalid name 'a..b'"));
        assert!(refused(&["127.0.0.1:53", "--dns", "x BOGUS"]).contains("'BOGUS'"));
        assert!(
            refused(&["127.0.0.1:53", "--dns", "x", "--expect-rcode", "NOPE"])
                .contains("--expect-rcode")
        );
        let collect = ok(&[
            "224.0.0.251:5353",
            "--dns",
            "_http._tcp.local PTR",
            "--collect",
        ]);
        assert!(matches!(collect.plan.replies, Replies::Collect { .. }));
    }

    #[test]
    fn bad_combinations_are_refused_before_any_io() {
        assert!(refused(&["255.255.255.255:9", "x"]).contains("add --broadcast"));
        for other in [
            &["--size", "3"][..],
            &["--file", "f"],
            &["--whole"],
            &["--lines"],
        ] {
            let args = [&["127.0.0.1:9", "x"][..], other].concat();
            assert!(refused(&args).contains("MESSAGE cannot"), "{args:?}");
        }
        assert!(refused(&["127.0.0.1:9", "--size", "65508"]).contains("65508 bytes"));
        assert!(refused(&["[::1]:9", "--size", "65528"]).contains("IPv6 UDP limit of 65527"));
        assert!(refused(&["127.0.0.1:9", "--size", "10", "--seq"]).contains("at least"));
        // Exactly the header is enough, and without --seq any size is.
        let header = seq::HEADER_LEN.to_string();
        assert!(ok(&["127.0.0.1:9", "--size", &header, "--seq"]).plan.seq);
        let short = (seq::HEADER_LEN - 1).to_string();
        assert!(refused(&["127.0.0.1:9", "--size", &short, "--seq"]).contains("at least"));
        assert_eq!(
            ok(&["127.0.0.1:9", "--size", "1"]).payload,
            Payload::Size(1)
        );
        assert!(
            refused(&["127.0.0.1:9", "x", "-r", "--seq", "--retries", "1"])
                .contains("--retries with --seq")
        );
        assert!(refused(&["127.0.0.1:9", "-x", "abc"]).contains("invalid MESSAGE"));
        assert!(refused(&["127.0.0.1:9", "00", "-x", "--expect", "zz"]).contains("--expect"));
        assert!(refused(&["127.0.0.1:9", "x", "--bind", "[::1]:0"]).contains("families"));
        assert!(refused(&["127.0.0.1:9", "x", "--bind", "99999"]).contains("--bind"));
        let big = "x".repeat(65_508);
        assert!(refused(&["127.0.0.1:9", &big]).contains("65508"));
        assert_eq!(
            ok(&["127.0.0.1:9", "x", "--bind", "4000"]).bind,
            "0.0.0.0:4000".parse().unwrap()
        );
    }

    #[test]
    fn a_replay_keeps_the_captured_pace_unless_told_otherwise() {
        let speed = |extra: &[&str]| {
            let args = [&["127.0.0.1:9", "--replay", "c.pcap"][..], extra].concat();
            ok(&args).plan.replay_speed
        };
        assert_eq!(speed(&[]), Some(1.0));
        assert_eq!(speed(&["--speed", "2.5"]), Some(2.5));
        assert_eq!(speed(&["--speed", "max"]), None, "as fast as it goes");
        assert_eq!(speed(&["--rate", "100"]), None, "the rate paces instead");
        assert_eq!(ok(&["127.0.0.1:9", "x"]).plan.replay_speed, None);
    }
}
