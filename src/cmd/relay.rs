//! `dgram relay`: a UDP proxy that shows and impairs what passes between clients and a
//! real server (SPEC §4 relay). A recipe over [`crate::relay`].

use std::time::Instant;

use crate::base::error::{usage, Ending, IoContext};
use crate::cli::{Directed, RelayArgs};
use crate::net::addr::parse_target;
use crate::net::filter::SourceFilter;
use crate::net::signal::Signals;
use crate::netem::{Dir, Impairment, PerDir};
use crate::relay::{Plan, Relay};
use crate::report::output::Output;

/// One direction's impairment from the repeated, directed flags.
fn impairment(args: &RelayArgs, dir: Dir) -> Impairment {
    Impairment {
        drop: Directed::pick(&args.drop, dir).unwrap_or(0.0),
        delay: Directed::pick(&args.delay, dir).unwrap_or_default(),
        jitter: Directed::pick(&args.jitter, dir).unwrap_or_default(),
        duplicate: Directed::pick(&args.duplicate, dir).unwrap_or(0.0),
        reorder: Directed::pick(&args.reorder, dir).unwrap_or(0.0),
    }
}

/// `dgram relay`'s flags checked into its plan, before anything is bound.
pub fn plan(args: &RelayArgs) -> anyhow::Result<Plan> {
    let opts = &args.server;
    let receive = &opts.receive;
    if receive.gro || receive.stats_interval.is_some() {
        return Err(usage!("--gro and --stats-interval do not apply to relay"));
    }
    let family = opts.family.family();
    let upstream = parse_target(&args.to, family)?;
    let impairment = PerDir::from_fn(|dir| impairment(args, dir));
    if args.seed.is_some() && !impairment.up.is_active() && !impairment.down.is_active() {
        return Err(usage!("{}", crate::netem::SEED_ALONE));
    }
    let seed = crate::netem::seed_or_now(args.seed);
    Ok(Plan {
        upstream,
        idle_timeout: args.idle_timeout,
        max_sessions: args.max_sessions as usize,
        impairment,
        seed,
        count: receive.count,
        timeout: receive.timeout,
        duration: receive.duration,
        max_size: receive.max_size,
        options: crate::net::socket::Options {
            v6_only: false,
            recv_errors: true,
            ..opts.socket.options(family)
        },
    })
}

/// Run `dgram relay`.
pub fn run(args: RelayArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let plan = plan(&args)?;
    let (opts, upstream, seed) = (&args.server, plan.upstream, plan.seed);
    let receive = &opts.receive;
    let bound = super::bind_server(opts, true)?;
    let local = bound.socket.local_addr()?;
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
    let _ready = crate::net::recv::announce(local, receive.ready_file.as_deref())?;
    let socket = bound.warn();
    let loopback = local.ip().to_canonical().is_loopback();
    if !loopback && receive.allow.is_empty() {
        tracing::warn!(
            "relay on {local} takes clients from other hosts: anyone who can reach it can use {upstream} through it (--allow CIDR limits them)"
        );
    }
    let PerDir { up, down } = &plan.impairment;
    if up.is_active() || down.is_active() {
        tracing::info!("impairment up {up:?}, down {down:?}, seed {seed}");
    }
    let filter = SourceFilter::new(receive.allow.clone(), receive.deny.clone());
    let start = Instant::now();
    let mut relay = Relay::new(&plan, &socket, poller, filter, output.as_mut(), pcap)
        .io_context(|| "failed to start the relay".into())?;
    let result = relay.run(signals);
    if receive.stats {
        crate::relay::stats::print(&relay, receive.is_json(), start.elapsed());
    }
    result
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
        assert_eq!(p.upstream, "127.0.0.1:53".parse().unwrap());
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
