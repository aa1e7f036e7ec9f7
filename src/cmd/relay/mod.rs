//! `dgram relay`: a UDP proxy that shows and impairs what passes between clients and a
//! real server (SPEC §4 relay). A recipe over [`crate::relay`].

use std::time::Instant;

use crate::base::error::{usage, Ending, IoContext};
use crate::cli::{Directed, RelayArgs};
use std::net::SocketAddr;
use std::time::Duration;

use crate::net::addr::Family;
use crate::net::filter::SourceFilter;
use crate::net::signal::Signals;
use crate::netem::dist::Distribution;
use crate::netem::link::{LinkSpec, DEFAULT_QUEUE};
use crate::netem::{Dir, Impairment, PerDir};
use crate::relay::{Front, Plan, Relay, StreamLimits, Upstream};

mod streams;
use crate::report::output::Output;
pub use streams::{front, FrontAddr};
use streams::{stream_flags, upstream};

/// One direction's impairment from the repeated, directed flags; `toward` is where that
/// direction's datagrams go (its family sets `--mtu`'s header bytes).
fn impairment(args: &RelayArgs, dir: Dir, toward: SocketAddr) -> Impairment {
    Impairment {
        corrupt: Directed::pick(&args.corrupt, dir).unwrap_or(0.0),
        max_payload: Directed::pick(&args.mtu, dir).map(|m| super::path_payload(m, toward)),
        drop: Directed::pick(&args.drop, dir).unwrap_or(0.0),
        drop_burst: Directed::pick(&args.drop_burst, dir),
        delay: Directed::pick(&args.delay, dir).unwrap_or_default(),
        jitter: Directed::pick(&args.jitter, dir).unwrap_or_default(),
        duplicate: Directed::pick(&args.duplicate, dir).unwrap_or(0.0),
        reorder: Directed::pick(&args.reorder, dir).unwrap_or(0.0),
        distribution: Directed::pick(&args.delay_distribution, dir).unwrap_or_default(),
        link: Directed::pick(&args.bandwidth, dir).map(|rate| LinkSpec {
            rate,
            headers: super::headers(toward),
            queue: Directed::pick(&args.queue, dir).unwrap_or(DEFAULT_QUEUE),
        }),
    }
}

/// `--connect-timeout`'s default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `--stream-buffer`'s default: 1 MiB a session.
const STREAM_BUFFER: usize = 1 << 20;
/// The receive buffer each session's upstream socket asks for (the kernel may cap it).
const SESSION_RCVBUF: usize = 1 << 20;
/// `--stream-queue`'s default.
const STREAM_QUEUE: usize = 256;

/// `dgram relay`'s flags checked into its plan, before anything is bound.
pub fn plan(args: &RelayArgs) -> anyhow::Result<Plan> {
    let opts = &args.server;
    let receive = &opts.receive;
    if receive.gro || receive.stats_interval.is_some() {
        return Err(usage!("--gro and --stats-interval do not apply to relay"));
    }
    let family = opts.family.family();
    let front = front(opts)?;
    let upstream = upstream(args, family)?;
    stream_flags(args, &front, &upstream)?;
    // Where each way goes: up to UPSTREAM, down to the clients (a child or stdio: IPv4's
    // headers are assumed).
    let v4 = SocketAddr::from(([0, 0, 0, 0], 0));
    let up_to = match &upstream {
        Upstream::Udp(a) | Upstream::Tcp(a) => *a,
        Upstream::Exec(_) => v4,
    };
    let down_to = match front {
        FrontAddr::Udp(a) | FrontAddr::Tcp(a) => a,
        FrontAddr::Stdio => v4,
    };
    let impairment =
        PerDir::from_fn(|dir| impairment(args, dir, if dir == Dir::Up { up_to } else { down_to }));
    for dir in Dir::BOTH {
        let i = impairment.get(dir);
        if i.drop_burst.is_some() && i.drop == 0.0 {
            return Err(usage!(
                "--drop-burst shapes the drops of --drop: give a --drop for the {} direction too",
                dir.name()
            ));
        }
        if i.distribution != Distribution::Uniform && i.jitter.is_zero() {
            return Err(usage!(
                "--delay-distribution shapes the delays of --jitter: give a --jitter for the {} direction too",
                dir.name()
            ));
        }
        if i.link.is_none() && Directed::pick(&args.queue, dir).is_some() {
            return Err(usage!(
                "--queue is the queue of --bandwidth's link: give a --bandwidth for the {} direction too",
                dir.name()
            ));
        }
    }
    if args.seed.is_some() && !impairment.up.is_active() && !impairment.down.is_active() {
        return Err(usage!("{}", crate::netem::SEED_ALONE));
    }
    let seed = crate::netem::seed_or_now(args.seed);
    Ok(Plan {
        upstream,
        connect_timeout: args.connect_timeout.unwrap_or(CONNECT_TIMEOUT),
        stream: StreamLimits {
            buffer: args.stream_buffer.unwrap_or(STREAM_BUFFER),
            queue: args.stream_queue.map_or(STREAM_QUEUE, |n| n as usize),
        },
        idle_timeout: args.idle_timeout,
        max_sessions: args.max_sessions as usize,
        impairment,
        seed,
        count: receive.count,
        timeout: receive.timeout,
        duration: receive.duration,
        max_size: receive.max_size,
        // The sessions' upstream sockets. The kernel's default buffer (208 KiB) holds
        // 100 replies of 1,000 bytes: one stall of the relay on a busy machine, with the
        // replies a shaper let go at once, overflows it. 1 MiB each (a limit, not an
        // allocation) unless --rcvbuf says.
        options: crate::net::socket::Options {
            v6_only: false,
            recv_errors: true,
            recv_buffer_default: Some(SESSION_RCVBUF),
            ..opts.socket.options(family)
        },
    })
}

/// Run `dgram relay`.
pub fn run(args: RelayArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let plan = plan(&args)?;
    let opts = &args.server;
    match front(opts)? {
        FrontAddr::Udp(_) => {
            let bound = super::bind_server(opts, true)?;
            let local = bound.socket.local_addr()?;
            let socket = bound.warn();
            serve(&args, &plan, Front::Udp(&socket), Some(local), signals)
        }
        FrontAddr::Tcp(local) => {
            crate::net::recv::clear_ready_file(opts.receive.ready_file.as_deref())?;
            let v6_only = opts.family.family() == Family::V6;
            let listener = crate::net::socket::listen_tcp(local, v6_only)?;
            let local = listener.local_addr()?;
            serve(&args, &plan, Front::Tcp(&listener), Some(local), signals)
        }
        FrontAddr::Stdio => serve(&args, &plan, Front::Stdio, None, signals),
    }
}

/// A relay holds a descriptor or two a session: the soft limit goes up to the hard one,
/// as servers do (said with `-v`); where it cannot, sessions past it are refused and
/// counted.
fn raise_open_files() {
    match crate::net::sys::raise_open_files_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!("open-files limit raised from {before} to {after}");
        }
        Ok((_, limit)) => tracing::info!("open-files limit {limit} (the hard limit)"),
        Err(e) => tracing::info!(
            "open-files limit not raised: {}",
            crate::base::error::describe_io(&e)
        ),
    }
}

/// Relay from `front` (bound at `local`; none for stdio) until a limit or a signal.
fn serve(
    args: &RelayArgs,
    plan: &Plan,
    front: Front<'_>,
    local: Option<SocketAddr>,
    signals: &Signals,
) -> anyhow::Result<Ending> {
    let receive = &args.server.receive;
    let pcap = match &receive.pcap {
        Some(path) => Some(
            crate::wire::pcap::PcapWriter::create(path)
                .io_context(|| format!("failed to create --pcap {}", path.display()))?,
        ),
        None => None,
    };
    // Every descriptor the relay holds before its first session (the poller, stdout's
    // writer) exists before it says it is ready. Silent on stdout unless --format or
    // --dns asks.
    let poller = crate::net::sys::Poller::new(crate::relay::BATCH)
        .io_context(|| "failed to start the relay".into())?;
    let mut output = (receive.format.is_some() || receive.dns)
        .then(|| Output::stdout(receive.printed_format()).map(|o| o.with_dns(receive.dns)))
        .transpose()?;
    let upstream = plan.upstream.name();
    let _ready = match local {
        Some(local) => {
            let ready = crate::net::recv::announce(local, receive.ready_file.as_deref())?;
            if !local.ip().to_canonical().is_loopback() && receive.allow.is_empty() {
                tracing::warn!(
                    "relay on {local} takes clients from other hosts: anyone who can reach it can use {} through it (--allow CIDR limits them)",
                    shown_upstream(&plan.upstream)
                );
            }
            Some(ready)
        }
        None => {
            tracing::info!("relaying stdin and stdout to {upstream}");
            None
        }
    };
    raise_open_files();
    let PerDir { up, down } = &plan.impairment;
    if up.is_active() || down.is_active() {
        tracing::info!("impairment up {up:?}, down {down:?}, seed {}", plan.seed);
    }
    let filter = SourceFilter::new(receive.allow.clone(), receive.deny.clone());
    let start = Instant::now();
    let mut relay = Relay::new(plan, front, poller, filter, output.as_mut(), pcap)
        .io_context(|| "failed to start the relay".into())?;
    let result = relay.run(signals);
    if receive.stats {
        crate::relay::stats::print(&relay, receive.is_json(), start.elapsed());
    }
    result
}

/// UPSTREAM as the user wrote it, for messages (`--to-exec` by its command).
fn shown_upstream(upstream: &Upstream) -> String {
    match upstream {
        Upstream::Exec(command) => format!("--to-exec '{command}'"),
        other => other.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn relay(args: &[&str]) -> anyhow::Result<Plan> {
        let cli = crate::cli::Cli::try_parse_from(["dgram", "relay"].iter().chain(args).copied())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let crate::cli::Command::Relay(args) = cli.command else {
            unreachable!("parsed a relay")
        };
        plan(&args)
    }

    #[test]
    fn upstream_sockets_hear_icmp_errors_and_take_either_family() {
        let p = relay(&["--to", "127.0.0.1:53"]).unwrap();
        assert!(
            p.options.recv_errors,
            "upstream ICMP errors are counted (SPEC relay)"
        );
        assert!(!p.options.v6_only);
        let p = relay(&["[::1]:0", "-6", "--to", "[::1]:53"]).unwrap();
        assert!(p.options.recv_errors && !p.options.v6_only);
        // Room for a burst of replies, unless --rcvbuf says otherwise.
        assert_eq!(p.options.recv_buffer_default, Some(SESSION_RCVBUF));
        let p = relay(&["--to", "127.0.0.1:53", "--rcvbuf", "64K"]).unwrap();
        assert_eq!(p.options.recv_buffer, Some(64 << 10));
    }

    #[test]
    fn impairments_go_the_way_they_name() {
        let p = relay(&[
            "--to",
            "127.0.0.1:53",
            "--drop",
            "5%",
            "--drop",
            "down=50%",
            "--delay",
            "up=10ms",
            "--seed",
            "3",
        ])
        .unwrap();
        assert_eq!(p.impairment.up.drop, 0.05);
        assert_eq!(p.impairment.down.drop, 0.5);
        assert_eq!(p.impairment.up.delay, std::time::Duration::from_millis(10));
        assert!(p.impairment.down.delay.is_zero());
        assert_eq!(p.seed, 3);
        assert_eq!(p.upstream, Upstream::Udp("127.0.0.1:53".parse().unwrap()));
        assert_eq!(
            (p.max_sessions, p.idle_timeout),
            (1024, std::time::Duration::from_secs(60))
        );
        assert!(!relay(&["--to", "127.0.0.1:53"])
            .unwrap()
            .impairment
            .up
            .is_active());
    }

    #[test]
    fn what_does_not_apply_is_refused() {
        for bad in [
            &["--to", "127.0.0.1:53", "--gro"][..],
            &["--to", "127.0.0.1:53", "--stats-interval", "1s"],
        ] {
            let e = relay(bad).unwrap_err();
            assert_eq!(
                crate::app::exit::code_for(&e),
                crate::app::exit::USAGE,
                "{e:#}"
            );
        }
        let e = relay(&["--to", "nonsense"]).unwrap_err();
        assert_eq!(
            crate::app::exit::code_for(&e),
            crate::app::exit::USAGE,
            "{e:#}"
        );
    }
}
