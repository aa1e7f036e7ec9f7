//! `dgram echo`: reflect every datagram to its sender (SPEC §4 echo), never larger, never
//! to a forbidden source, rate-limited off loopback, and impaired on demand. The server
//! is `listen`'s, answering through [`crate::reply`]; nothing is printed on stdout unless
//! `--format` asks.

use std::rc::Rc;

use crate::cli::EchoArgs;
use crate::exit::Ending;
use crate::impair::Impairment;
use crate::reply::{Answer, Settings};
use crate::serve::{self, Extras};
use crate::signal::Signals;

/// Run `dgram echo`.
pub fn run(args: EchoArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let opts = &args.server;
    let bound = serve::bind(opts, true)?;
    let local = bound.socket.local_addr()?;
    let safety = &args.safety;
    let settings = Settings {
        answer: Rc::new(Answer::Echo),
        name: "echo",
        count_refused: false,
        rate_limit: Settings::rate_limit_for(local, safety.rate_limit, safety.no_rate_limit),
        max_sources: safety.max_sources as usize,
        impairment: Impairment {
            drop: args.drop,
            delay: args.delay.unwrap_or_default(),
            jitter: args.jitter.unwrap_or_default(),
            duplicate: args.duplicate,
            reorder: args.reorder,
        },
        seed: crate::impair::seed_or_now(args.seed),
    };
    let extras = Extras {
        // Silent on stdout unless --format or --dns asks.
        format: (opts.receive.format.is_some() || opts.receive.dns)
            .then(|| opts.receive.printed_format()),
        reply: Some(settings),
        ..Extras::default()
    };
    serve::serve(bound, &opts.receive, signals, extras)
}
