//! `dgram listen`: receive datagrams from every peer and print them (SPEC §4 listen).

use crate::cli::ListenArgs;
use crate::exit::Ending;
use crate::serve::{self, Extras};
use crate::signal::Signals;

/// Run `dgram listen`.
pub fn run(args: ListenArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let opts = &args.server;
    let bound = serve::bind(opts)?;
    let extras = Extras {
        format: Some(opts.receive.printed_format()),
        ..Extras::default()
    };
    serve::serve(bound, &opts.receive, signals, extras)
}
