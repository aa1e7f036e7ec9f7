//! `dgram listen`: receive datagrams from every peer and print them (SPEC §4 listen).

use crate::addr::parse_local;
use crate::cli::ListenArgs;
use crate::exit::Ending;
use crate::recv;
use crate::serve::{serve, Extras};
use crate::signal::Signals;

/// Run `dgram listen`.
pub fn run(args: ListenArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let family = args.family.family();
    let local = parse_local(&args.addr, family)?;
    let mut options = args.socket.options(family);
    options.reuse_port = args.receive.reuse_port;
    options.recv_buffer_default = Some(recv::DEFAULT_RCVBUF);
    let bound = crate::socket::bind(local, &options)?;
    let extras = Extras {
        format: Some(args.receive.format.unwrap_or_default()),
        ..Extras::default()
    };
    serve(bound, &args.receive, signals, extras)
}
