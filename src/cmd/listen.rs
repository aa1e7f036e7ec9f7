//! `dgram listen`: receive datagrams from every peer and print them (SPEC §4 listen), and
//! as a mock server answer each one (`--respond`, `--respond-file`, `--exec`,
//! `--dns-answer`, `--dns-zone`) through the same admission and policy as echo.

use std::rc::Rc;

use crate::base::error::{usage, Ending, IoContext};
use crate::cli::{ListenArgs, RespondOpts, ServerOpts};
use crate::net::addr::parse_target;
use crate::net::signal::Signals;
use crate::net::socket::Bound;
use crate::netem::Impairment;
use crate::serve::reply::{Answer, Responder, Settings};
use crate::serve::talk::TalkConfig;
use crate::serve::{self, Extras};
use crate::wire::codec::decode;
use crate::wire::payload::check_size;

/// How listen answers as a mock server, once `answer` has said with what and the socket
/// is bound: a fixed reply must fit a datagram to `local`, and the rate limit is on by
/// default off loopback, as echo's. Pure: nothing is sent yet.
pub fn settings(
    args: &ListenArgs,
    answer: Answer,
    local: std::net::SocketAddr,
) -> anyhow::Result<Settings> {
    if let Answer::Fixed(bytes) = &answer {
        check_size(bytes.len(), &local).map_err(|e| usage!("--respond: {e}"))?;
    }
    let safety = &args.respond.safety;
    Ok(Settings {
        answer: Rc::new(answer),
        responder: Responder::Listen,
        count_refused: true,
        rate_limit: Settings::rate_limit_for(local, safety.rate_limit, safety.no_rate_limit),
        max_sources: safety.max_sources as usize,
        impairment: Impairment::default(),
        seed: 0,
    })
}

/// Two-way listen, as `nc -u -l`: stdin's lines go back to a peer with `--stdin` or
/// `--to`, or by default when stdin is a terminal (a pipe is never read unasked).
pub fn talk(args: &ListenArgs, stdin_is_terminal: bool) -> anyhow::Result<Option<TalkConfig>> {
    if !(args.stdin || args.to.is_some() || stdin_is_terminal) {
        return Ok(None);
    }
    let to = args
        .to
        .as_deref()
        .map(|peer| parse_target(peer, args.server.family.family()))
        .transpose()?;
    Ok(Some(TalkConfig {
        encoding: args.respond.encoding.common().encoding(),
        to,
    }))
}

/// Every refusal listen's flags decide on their own, with no socket opened.
pub fn check(args: &ListenArgs) -> anyhow::Result<()> {
    let talks = talk(args, false)?.is_some();
    answer(&args.respond, talks)?;
    super::local_address(&args.server).map(drop)
}

/// Run `dgram listen`.
pub fn run(args: ListenArgs, signals: &Signals) -> anyhow::Result<Ending> {
    use std::io::IsTerminal;
    let opts = &args.server;
    let talk = talk(&args, std::io::stdin().is_terminal())?;
    let answer = answer(&args.respond, talk.is_some())?;
    // A mock DNS server's requests are DNS by definition: shown decoded (SPEC §4).
    let dns = opts.receive.dns || matches!(answer, Some(Answer::Dns(_)));
    let (bound, tcp) = match &answer {
        Some(Answer::Dns(zone)) if !args.respond.no_tcp => {
            let (bound, listener) = bind_udp_and_tcp(opts)?;
            let at = listener.local_addr()?;
            crate::serve::dns_tcp::serve_in_background(listener, zone.clone())
                .io_context(|| "failed to start answering over TCP".into())?;
            (bound, Some(at))
        }
        _ => (super::bind_server(opts, answer.is_some())?, None),
    };
    let local = bound.socket.local_addr()?;
    let also_tcp = |_: &std::net::UdpSocket| {
        Ok(tcp
            .map(|at| format!("also on tcp {}", crate::net::addr::normalize(at)))
            .into_iter()
            .collect())
    };
    let reply = answer
        .map(|answer| settings(&args, answer, local))
        .transpose()?;
    let extras = Extras {
        format: Some((opts.receive.printed(dns), dns)),
        reply,
        before_receive: Some(&also_tcp),
        ..Extras::default()
    };
    let config = serve::Config {
        talk,
        ..super::serve_config(&opts.receive)
    };
    serve::serve(bound, &config, signals, extras)
}

/// A mock DNS server's UDP socket and a TCP listener on the same address and port. On
/// port 0 the kernel picks the UDP port, and that number is tried for TCP: taken, the
/// pair is tried again (SPEC §4: the same number for both).
fn bind_udp_and_tcp(opts: &ServerOpts) -> anyhow::Result<(Bound, std::net::TcpListener)> {
    let any_port = super::local_address(opts)?.port() == 0;
    let mut tries = 0;
    loop {
        let bound = super::bind_server(opts, true)?;
        let local = bound.socket.local_addr()?;
        match std::net::TcpListener::bind(local) {
            Ok(listener) => return Ok((bound, listener)),
            Err(e) if any_port && e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(crate::base::error::IoError(e)).context(format!(
                        "failed to bind TCP to {local} (--no-tcp: UDP only)"
                    )),
                )
            }
        }
    }
}

/// What `--respond`, `--respond-file`, `--dns-answer` and `--dns-zone` ask to answer with,
/// checked before anything is bound.
pub fn answer(opts: &RespondOpts, talks: bool) -> anyhow::Result<Option<Answer>> {
    let encoding = opts.encoding.common().encoding();
    let answer = if let Some(text) = &opts.respond {
        use std::os::unix::ffi::OsStrExt;
        let bytes =
            decode(text.as_bytes(), encoding).map_err(|e| usage!("invalid --respond: {e}"))?;
        Some(Answer::Fixed(bytes))
    } else if let Some(path) = &opts.respond_file {
        // The largest datagram, read bounded: a larger file is refused unread.
        let target = "127.0.0.1:0".parse().expect("an address");
        let bytes = crate::send::source::read_file("--respond-file", path, &target, encoding)?;
        let bytes = decode(&bytes, encoding)
            .map_err(|e| usage!("invalid --respond-file {}: {e}", path.display()))?;
        Some(Answer::Fixed(bytes))
    } else if let Some(command) = &opts.exec {
        Some(Answer::Exec(crate::serve::exec::ExecSettings {
            command: command.clone(),
            jobs: opts.exec_jobs.unwrap_or(16) as usize,
            queue: opts.exec_queue.unwrap_or(256) as usize,
            timeout: opts
                .exec_timeout
                .unwrap_or(std::time::Duration::from_secs(5)),
        }))
    } else if !opts.dns_answer.is_empty() || opts.dns_zone.is_some() {
        let mut zone = crate::wire::dns::zone::Zone::default();
        if let Some(path) = &opts.dns_zone {
            let text = read_zone(path)?;
            zone.add_file_text(&text)
                .map_err(|e| usage!("--dns-zone {}: {e}", path.display()))?;
        }
        for line in &opts.dns_answer {
            zone.add_line(line)
                .map_err(|e| usage!("--dns-answer '{line}': {e}"))?;
        }
        Some(Answer::Dns(zone))
    } else {
        None
    };
    if opts.no_tcp && answer.as_ref().is_none_or(|a| !matches!(a, Answer::Dns(_))) {
        return Err(usage!(
            "--no-tcp applies to a mock DNS server: add --dns-answer or --dns-zone"
        ));
    }
    let exec_flags =
        opts.exec_timeout.is_some() || opts.exec_jobs.is_some() || opts.exec_queue.is_some();
    if exec_flags && opts.exec.is_none() {
        return Err(usage!(
            "--exec-timeout, --exec-jobs and --exec-queue apply to --exec: add --exec CMD"
        ));
    }
    let encoded = opts.encoding.hex || opts.encoding.base64 || opts.encoding.escapes;
    if answer.is_none() && (opts.safety.is_set() || (encoded && !talks)) {
        return Err(usage!(
            "-x, --base64, -e and the safety flags apply to a responder: add --respond, --respond-file, --exec, --dns-answer or --dns-zone"
        ));
    }
    if encoded && !talks && !matches!(answer, Some(Answer::Fixed(_))) {
        return Err(usage!(
            "-x, --base64 and -e apply to --respond, --respond-file and lines typed back (--stdin)"
        ));
    }
    Ok(answer)
}

/// The most a `--dns-zone` file may hold: far more records than any mock server needs,
/// and a bound on what an input can make dgram allocate.
const MAX_ZONE: u64 = 16 << 20;

fn read_zone(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let cant = |e: std::io::Error| {
        usage!(
            "cannot read --dns-zone {}: {}",
            path.display(),
            crate::base::error::describe_io(&e)
        )
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(cant)?
        .take(MAX_ZONE + 1)
        .read_to_string(&mut text)
        .map_err(cant)?;
    if text.len() as u64 > MAX_ZONE {
        return Err(usage!(
            "--dns-zone {} is over {} MiB",
            path.display(),
            MAX_ZONE >> 20
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn listen(args: &[&str]) -> ListenArgs {
        let cli =
            crate::cli::Cli::try_parse_from(["dgram", "listen", "0"].iter().chain(args).copied())
                .unwrap();
        let crate::cli::Command::Listen(args) = cli.command else {
            unreachable!("parsed a listen")
        };
        args
    }

    fn answer_of(args: &[&str]) -> anyhow::Result<Option<Answer>> {
        answer(&listen(args).respond, false)
    }

    fn error(args: &[&str]) -> String {
        match answer_of(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn the_answer_is_what_the_flags_name() {
        assert!(answer_of(&[]).unwrap().is_none());
        let Some(Answer::Fixed(bytes)) = answer_of(&["--respond", "pong"]).unwrap() else {
            panic!("a fixed answer")
        };
        assert_eq!(bytes, b"pong");
        let Some(Answer::Fixed(bytes)) = answer_of(&["--respond", "6f6b", "-x"]).unwrap() else {
            panic!("a fixed answer")
        };
        assert_eq!(bytes, b"ok");
        let Some(Answer::Exec(exec)) = answer_of(&["--exec", "cat"]).unwrap() else {
            panic!("an exec answer")
        };
        assert_eq!(exec.command, "cat");
        assert!(matches!(
            answer_of(&["--dns-answer", "example.com A 192.0.2.1"]).unwrap(),
            Some(Answer::Dns(_))
        ));
    }

    #[test]
    fn what_cannot_answer_is_refused_before_binding() {
        assert!(error(&["--respond", "zz", "-x"]).contains("invalid --respond"));
        assert!(error(&["--dns-answer", "example.com A not-an-ip"]).contains("--dns-answer"));
        assert!(error(&["-x"]).contains("apply to a responder"));
        assert!(error(&["--rate-limit", "5"]).contains("apply to a responder"));
        assert!(error(&["--exec", "cat", "-x"]).contains("apply to --respond"));
    }

    #[test]
    fn a_responder_is_rate_limited_off_loopback_and_its_reply_fits_a_datagram() {
        let args = listen(&["--respond", "x"]);
        let fixed = || Answer::Fixed(b"x".to_vec());
        let on = |local: &str| settings(&args, fixed(), local.parse().unwrap()).unwrap();
        assert_eq!(on("127.0.0.1:7").rate_limit, None);
        assert_eq!(on("0.0.0.0:7").rate_limit, Some(1000.0));
        assert!(on("127.0.0.1:7").count_refused);
        let big = Answer::Fixed(vec![0; 65_508]);
        let refused = settings(&args, big, "127.0.0.1:7".parse().unwrap());
        assert!(matches!(refused, Err(e) if format!("{e:#}").contains("--respond")));
        let big = Answer::Fixed(vec![0; 65_507]);
        assert!(settings(&args, big, "127.0.0.1:7".parse().unwrap()).is_ok());
    }
}
