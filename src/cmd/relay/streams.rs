//! `dgram relay`'s stream sides (SPEC §10): where clients come from (ADDR, `tcp://ADDR`,
//! `-`), where sessions go (`--to`, `--to tcp://`, `--to-exec`), and the stream flags
//! refused where no stream is.

use std::net::SocketAddr;

use crate::base::error::usage;
use crate::cli::{RelayArgs, ServerOpts};
use crate::net::addr::{parse_local, parse_target, Family};
use crate::relay::Upstream;

/// Where clients come from: ADDR (UDP), `tcp://ADDR`, or `-` (stdin and stdout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontAddr {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Stdio,
}

/// The front ADDR names, checked with nothing bound (a bare PORT is loopback).
pub fn front(opts: &ServerOpts) -> anyhow::Result<FrontAddr> {
    let family = opts.family.family();
    Ok(match opts.addr.as_str() {
        "-" => FrontAddr::Stdio,
        a => match strip_scheme(a, "tcp") {
            Some(rest) => FrontAddr::Tcp(parse_local(rest, family)?),
            None => FrontAddr::Udp(parse_local(a, family)?),
        },
    })
}

/// `rest` of `scheme://rest`, if `text` is one (any case, as URLs are); another scheme
/// is refused by the address parser.
fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = text.split_once("://")?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// `--to UPSTREAM`, `--to tcp://UPSTREAM` or `--to-exec CMD`.
pub(super) fn upstream(args: &RelayArgs, family: Family) -> anyhow::Result<Upstream> {
    if let Some(command) = &args.to_exec {
        if command.trim().is_empty() {
            return Err(usage!("--to-exec needs a command"));
        }
        return Ok(Upstream::Exec(command.clone()));
    }
    let to = args.to.as_deref().unwrap_or_default();
    Ok(match strip_scheme(to, "tcp") {
        Some(rest) => Upstream::Tcp(parse_target(rest, family)?),
        None => Upstream::Udp(parse_target(to, family)?),
    })
}

/// The stream flags apply where a stream is: refused elsewhere, never silently ignored.
pub(super) fn stream_flags(
    args: &RelayArgs,
    front: &FrontAddr,
    upstream: &Upstream,
) -> anyhow::Result<()> {
    let stdio = *front == FrontAddr::Stdio;
    let front_stream = stdio || matches!(front, FrontAddr::Tcp(_));
    let up_stream = !matches!(upstream, Upstream::Udp(_));
    if front_stream && up_stream {
        return Err(usage!(
            "relay {} --to {}: both sides are streams; one must be UDP",
            args.server.addr,
            args.to.as_deref().unwrap_or("--to-exec")
        ));
    }
    if !matches!(upstream, Upstream::Tcp(_)) {
        for (given, flag) in [
            (args.connect_timeout.is_some(), "--connect-timeout"),
            (args.stream_queue.is_some(), "--stream-queue"),
        ] {
            if given {
                return Err(usage!("{flag} applies to --to tcp://HOST:PORT only"));
            }
        }
    }
    if args.stream_buffer.is_some() && !front_stream && !up_stream {
        return Err(usage!(
            "--stream-buffer applies to a stream leg only (relay tcp://ADDR, relay -, --to tcp://, --to-exec)"
        ));
    }
    let receive = &args.server.receive;
    if stdio && (receive.format.is_some() || receive.dns) {
        return Err(usage!(
            "relay - carries its stream on stdout: --format and --dns cannot print there (--pcap records it)"
        ));
    }
    if stdio && (receive.reuse_port || receive.ready_file.is_some()) {
        return Err(usage!(
            "relay - binds no address: --reuse-port and --ready-file do not apply"
        ));
    }
    if matches!(front, FrontAddr::Tcp(_)) && receive.reuse_port {
        return Err(usage!("--reuse-port applies to a UDP ADDR only"));
    }
    Ok(())
}
