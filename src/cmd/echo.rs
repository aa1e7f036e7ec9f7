//! `dgram echo`: reflect every datagram to its sender (SPEC §4 echo), never larger, never
//! to a forbidden source, rate-limited off loopback, and impaired on demand. The server
//! is `listen`'s, answering through [`crate::serve::reply`]; nothing is printed on stdout unless
//! `--format` asks.

use std::rc::Rc;

use crate::base::error::{usage, Ending};
use crate::cli::EchoArgs;
use crate::net::signal::Signals;
use crate::netem::link::{LinkSpec, DEFAULT_QUEUE};
use crate::netem::Impairment;
use crate::serve::reply::{Answer, Responder, Settings};
use crate::serve::{self, Extras};

/// How echo answers, from its flags and the address it binds (the rate limit is on by
/// default off loopback). Pure: nothing is bound yet.
pub fn settings(args: &EchoArgs, local: std::net::SocketAddr) -> Settings {
    let safety = &args.safety;
    Settings {
        answer: Rc::new(Answer::Echo),
        responder: Responder::Echo,
        count_refused: false,
        rate_limit: Settings::rate_limit_for(local, safety.rate_limit, safety.no_rate_limit),
        max_sources: safety.max_sources as usize,
        impairment: Impairment {
            drop: args.drop,
            drop_burst: args.drop_burst,
            delay: args.delay.unwrap_or_default(),
            jitter: args.jitter.unwrap_or_default(),
            duplicate: args.duplicate,
            reorder: args.reorder,
            corrupt: args.corrupt,
            max_payload: args.mtu.map(|m| super::path_payload(m, local)),
            distribution: args.delay_distribution.unwrap_or_default(),
            link: args.bandwidth.map(|rate| LinkSpec {
                rate,
                headers: super::headers(local),
                queue: args.queue.unwrap_or(DEFAULT_QUEUE),
            }),
        },
        seed: crate::netem::seed_or_now(args.seed),
    }
}

/// The refusals echo's flags decide on their own: `--seed` needs an impairment.
pub fn check(args: &EchoArgs) -> anyhow::Result<()> {
    let seeded_nothing = args.seed.is_some()
        && args.drop == 0.0
        && args.delay.is_none()
        && args.jitter.is_none()
        && args.duplicate == 0.0
        && args.reorder == 0.0
        && args.corrupt == 0.0
        && args.mtu.is_none()
        && args.bandwidth.is_none();
    if seeded_nothing {
        return Err(usage!("{}", crate::netem::SEED_ALONE));
    }
    super::local_address(&args.server).map(drop)
}

/// Run `dgram echo`.
pub fn run(args: EchoArgs, signals: &Signals) -> anyhow::Result<Ending> {
    check(&args)?;
    let opts = &args.server;
    let bound = super::bind_server(opts, true)?;
    let settings = settings(&args, bound.socket.local_addr()?);
    let extras = Extras {
        // Silent on stdout unless --format or --dns asks.
        format: (opts.receive.format.is_some() || opts.receive.dns)
            .then(|| (opts.receive.printed_format(), opts.receive.dns)),
        reply: Some(settings),
        ..Extras::default()
    };
    serve::serve(bound, &super::serve_config(&opts.receive), signals, extras)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn echo(args: &[&str], local: &str) -> Settings {
        let cli =
            crate::cli::Cli::try_parse_from(["dgram", "echo"].iter().chain(args).copied()).unwrap();
        let crate::cli::Command::Echo(args) = cli.command else {
            unreachable!("parsed an echo")
        };
        settings(&args, local.parse().unwrap())
    }

    #[test]
    fn the_rate_limit_is_on_off_loopback_unless_asked_otherwise() {
        assert_eq!(echo(&[], "127.0.0.1:7").rate_limit, None);
        assert_eq!(echo(&[], "0.0.0.0:7").rate_limit, Some(1000.0));
        assert_eq!(echo(&[], "[::]:7").rate_limit, Some(1000.0));
        assert_eq!(
            echo(&["--rate-limit", "5"], "127.0.0.1:7").rate_limit,
            Some(5.0)
        );
        assert_eq!(echo(&["--no-rate-limit"], "0.0.0.0:7").rate_limit, None);
        assert_eq!(echo(&["--max-sources", "10"], "0.0.0.0:7").max_sources, 10);
    }

    #[test]
    fn impairments_and_the_seed_come_from_the_flags() {
        let s = echo(
            &[
                "--drop",
                "5%",
                "--delay",
                "20ms",
                "--jitter",
                "5ms",
                "--duplicate",
                "0.1",
                "--reorder",
                "0.2",
                "--seed",
                "9",
            ],
            "127.0.0.1:7",
        );
        assert_eq!(s.impairment.drop, 0.05);
        assert_eq!(s.impairment.delay, std::time::Duration::from_millis(20));
        assert_eq!(s.impairment.jitter, std::time::Duration::from_millis(5));
        assert_eq!((s.impairment.duplicate, s.impairment.reorder), (0.1, 0.2));
        assert_eq!(s.seed, 9);
        assert!(matches!(*s.answer, Answer::Echo));
        assert!(!s.count_refused);
        assert!(!echo(&[], "127.0.0.1:7").impairment.is_active());
    }
}
