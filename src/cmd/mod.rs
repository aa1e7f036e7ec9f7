//! The subcommands: each turns its `Args` into a validated config, then runs it.
//! They never import each other; what they share lives below them.

pub mod doctor;
pub mod echo;
pub mod listen;
pub mod multicast;
pub mod relay;
pub mod scan;
pub mod send;

use crate::net::addr::Family;
use clap::CommandFactory;

use crate::base::error::{usage, Ending};
use crate::cli::{Cli, Command, FamilyOpts, MulticastCommand, ReceiveOpts, ServerOpts, SocketOpts};
use crate::net::signal::Signals;
use crate::net::socket::Bound;

/// Run the chosen subcommand.
pub fn run(command: Command, signals: &Signals) -> anyhow::Result<Ending> {
    match command {
        Command::Send(args) => send::run(args, signals),
        Command::Listen(args) => listen::run(args, signals),
        Command::Echo(args) => echo::run(args, signals),
        Command::Relay(args) => relay::run(args, signals),
        Command::Scan(args) => scan::run(args, signals),
        Command::Doctor(args) => doctor::run(args),
        Command::Multicast(MulticastCommand::Join(args)) => multicast::join(args, signals),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dgram", &mut script);
            print_doc(&script)
        }
        Command::Manpage { subcommand } => print_doc(&manpage(&subcommand)?),
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
        Command::Listen(args) => listen::check(&args),
        Command::Echo(args) => echo::check(&args),
        Command::Relay(args) => relay::plan(&args).map(drop),
        Command::Scan(args) => scan::check(&args).map(drop),
        Command::Manpage { subcommand } => manpage(&subcommand).map(drop),
        Command::Doctor(args) => doctor::check(&args),
        Command::Completions { .. } => Ok(()),
    }
}

/// The roff page of the command at `path` below dgram (none: dgram(1)); its name is
/// `dgram-send`, `dgram-multicast-join`, as the pages it lists name them.
pub fn manpage(path: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut command = Cli::command();
    // Building names each subcommand `dgram-NAME`, the name its page goes by.
    command.build();
    let mut at = &command;
    for (i, name) in path.iter().enumerate() {
        at = at.find_subcommand(name).ok_or_else(|| {
            let known: Vec<&str> = at.get_subcommands().map(|c| c.get_name()).collect();
            usage!(
                "dgram manpage: no subcommand '{}' (pages: {})",
                path[..=i].join(" "),
                known.join(", ")
            )
        })?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(at.clone()).render(&mut page)?;
    Ok(page)
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

/// The largest payload a path of `mtu` bytes takes to or from `peer`: less 28 bytes of
/// IPv4 and UDP headers, or 48 of IPv6 (an IPv4-mapped address is IPv4 on the wire).
pub fn path_payload(mtu: usize, peer: std::net::SocketAddr) -> usize {
    mtu.saturating_sub(headers(peer))
}

/// The IP and UDP header bytes of a datagram to or from `peer`: 28 on IPv4, 48 on IPv6
/// (an IPv4-mapped address is IPv4 on the wire).
pub fn headers(peer: std::net::SocketAddr) -> usize {
    if crate::net::addr::normalize(peer).is_ipv4() {
        28
    } else {
        48
    }
}

/// Bind a server's socket to its ADDR (bare PORT: loopback), with the receive buffer
/// servers ask for by default; a server that `replies` also asks for its replies' ICMP
/// errors (SPEC §9) and, on a wildcard bind, each datagram's destination (PKTINFO: a
/// socket bound to one unicast address receives no broadcast or multicast, and its
/// replies leave from that address anyway).
pub fn bind_server(opts: &ServerOpts, replies: bool) -> anyhow::Result<Bound> {
    crate::net::recv::clear_ready_file(opts.receive.ready_file.as_deref())?;
    let family = opts.family.family();
    let local = local_address(opts)?;
    let mut options = opts.socket.options(family);
    options.reuse_port = opts.receive.reuse_port;
    options.recv_buffer_default = Some(crate::net::recv::DEFAULT_RCVBUF);
    options.gro = opts.receive.gro;
    options.recv_errors = replies;
    options.pktinfo = replies && crate::serve::reply::Replier::needs_destination(local);
    crate::net::socket::bind(local, &options)
}

/// The address a server binds (a bare PORT is loopback), checked with no socket opened.
pub fn local_address(opts: &ServerOpts) -> anyhow::Result<std::net::SocketAddr> {
    Ok(crate::net::addr::parse_local(
        &opts.addr,
        opts.family.family(),
    )?)
}

/// The server's receive-side flags as the plain config the server layer takes.
pub fn serve_config(opts: &ReceiveOpts) -> crate::serve::Config {
    crate::serve::Config {
        limits: crate::net::recv::Limits {
            count: opts.count,
            idle: opts.timeout,
            duration: opts.duration,
        },
        filter: crate::net::filter::SourceFilter::new(opts.allow.clone(), opts.deny.clone()),
        max_size: opts.max_size,
        ready_file: opts.ready_file.clone(),
        stats: opts.stats,
        json: opts.is_json(),
        stats_interval: opts.stats_interval,
        pcap: opts.pcap.clone(),
        talk: None,
    }
}
