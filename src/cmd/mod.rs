//! The subcommands: each turns its `Args` into a validated config, then runs it.
//! They never import each other; what they share lives below them.

pub mod doctor;
pub mod echo;
pub mod listen;
pub mod multicast;
pub mod relay;
pub mod send;

use crate::net::addr::Family;
use clap::CommandFactory;

use crate::base::error::Ending;
use crate::cli::{Cli, Command, FamilyOpts, MulticastCommand, SocketOpts};
use crate::net::signal::Signals;

/// Run the chosen subcommand.
pub fn run(command: Command, signals: &Signals) -> anyhow::Result<Ending> {
    match command {
        Command::Send(args) => send::run(args, signals),
        Command::Listen(args) => listen::run(args, signals),
        Command::Echo(args) => echo::run(args, signals),
        Command::Relay(args) => relay::run(args, signals),
        Command::Doctor(args) => doctor::run(args),
        Command::Multicast(MulticastCommand::Join(args)) => multicast::join(args, signals),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dgram", &mut script);
            print_doc(&script)
        }
        Command::Manpage => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            print_doc(&page)
        }
        // `multicast send` is `send` with the sender-side multicast options.
        Command::Multicast(MulticastCommand::Send(args)) => {
            let group = multicast::sender_options(&args)?;
            send::run_to_group(args.send, signals, group)
        }
    }
}

/// Every refusal the command line decides on its own (exit 2), in the order `run` meets
/// them, with no socket opened and nothing sent: the subcommands' pure checks (listen
/// also reads the files its answer names). The malformed-command-line corpus runs this
/// in-process, and a sample of it as processes to hold the two to the same line.
pub fn check(command: Command) -> anyhow::Result<()> {
    let no_terminals = send::Terminals::default();
    match command {
        Command::Send(args) => send::Config::from_args(args, no_terminals).map(drop),
        Command::Multicast(MulticastCommand::Send(args)) => {
            multicast::sender_options(&args)?;
            send::Config::from_args(args.send, no_terminals).map(drop)
        }
        Command::Multicast(MulticastCommand::Join(args)) => multicast::join_plan(&args).map(drop),
        Command::Listen(args) => {
            listen::answer(&args.respond)?;
            crate::serve::local_address(&args.server).map(drop)
        }
        Command::Echo(args) => crate::serve::local_address(&args.server).map(drop),
        Command::Relay(args) => {
            relay::plan(&args)?;
            crate::serve::local_address(&args.server).map(drop)
        }
        Command::Doctor(_) | Command::Completions { .. } | Command::Manpage => Ok(()),
    }
}

/// Write generated documentation to stdout; a closed pipe is a quiet end.
fn print_doc(bytes: &[u8]) -> anyhow::Result<Ending> {
    let mut out = crate::report::output::Output::stdout(crate::report::output::Format::Raw)?;
    out.write_all(bytes)?;
    out.flush()?;
    Ok(Ending::Done)
}

impl FamilyOpts {
    /// The family `-4` / `-6` restrict addresses to.
    pub fn family(self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }
}

impl crate::cli::EncodingOpts {
    /// The encoding `-x`, `--base64` and `-e` ask for (text without them).
    pub fn encoding(self) -> crate::wire::codec::Encoding {
        use crate::wire::codec::Encoding;
        match (self.hex, self.base64, self.escapes) {
            (true, _, _) => Encoding::Hex,
            (_, true, _) => Encoding::Base64,
            (_, _, true) => Encoding::Escapes,
            _ => Encoding::Text,
        }
    }
}

impl SocketOpts {
    /// The socket options these flags ask for; the caller adds its own.
    pub fn options(&self, family: Family) -> crate::net::socket::Options {
        crate::net::socket::Options {
            v6_only: family == Family::V6,
            recv_buffer: self.rcvbuf,
            send_buffer: self.sndbuf,
            ttl: self.ttl,
            tos: self.tos,
            ..crate::net::socket::Options::default()
        }
    }
}
