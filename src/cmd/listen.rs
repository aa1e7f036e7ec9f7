//! `dgram listen`: receive datagrams from every peer and print them (SPEC §4 listen), and
//! as a mock server answer each one (`--respond`, `--respond-file`, `--exec`,
//! `--dns-answer`, `--dns-zone`) through the same admission and policy as echo.

use std::rc::Rc;

use crate::cli::{ListenArgs, RespondOpts};
use crate::codec::decode;
use crate::exit::{usage, Ending};
use crate::impair::Impairment;
use crate::payload::check_size;
use crate::reply::{Answer, Settings};
use crate::serve::{self, Extras};
use crate::signal::Signals;

/// Run `dgram listen`.
pub fn run(args: ListenArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let opts = &args.server;
    let answer = answer(&args.respond)?;
    let bound = serve::bind(opts, answer.is_some())?;
    let local = bound.socket.local_addr()?;
    let reply = match answer {
        Some(answer) => {
            if let Answer::Fixed(bytes) = &answer {
                check_size(bytes.len(), &local).map_err(|e| usage!("--respond: {e}"))?;
            }
            let safety = &args.respond.safety;
            Some(Settings {
                answer: Rc::new(answer),
                name: "listen",
                count_refused: true,
                rate_limit: Settings::rate_limit_for(
                    local,
                    safety.rate_limit,
                    safety.no_rate_limit,
                ),
                max_sources: safety.max_sources as usize,
                impairment: Impairment::default(),
                seed: 0,
            })
        }
        None => None,
    };
    let extras = Extras {
        format: Some(opts.receive.printed_format()),
        reply,
        ..Extras::default()
    };
    serve::serve(bound, &opts.receive, signals, extras)
}

/// What `--respond`, `--respond-file`, `--dns-answer` and `--dns-zone` ask to answer with,
/// checked before anything is bound.
fn answer(opts: &RespondOpts) -> anyhow::Result<Option<Answer>> {
    let encoding = opts.encoding.encoding();
    let answer = if let Some(text) = &opts.respond {
        use std::os::unix::ffi::OsStrExt;
        let bytes =
            decode(text.as_bytes(), encoding).map_err(|e| usage!("invalid --respond: {e}"))?;
        Some(Answer::Fixed(bytes))
    } else if let Some(path) = &opts.respond_file {
        // The largest datagram, read bounded: a larger file is refused unread.
        let target = "127.0.0.1:0".parse().expect("an address");
        let bytes = crate::source::read_file("--respond-file", path, &target, encoding)?;
        let bytes = decode(&bytes, encoding)
            .map_err(|e| usage!("invalid --respond-file {}: {e}", path.display()))?;
        Some(Answer::Fixed(bytes))
    } else if let Some(command) = &opts.exec {
        Some(Answer::Exec(crate::exec::ExecSettings {
            command: command.clone(),
            jobs: opts.exec_jobs as usize,
            queue: opts.exec_queue as usize,
            timeout: opts.exec_timeout,
        }))
    } else if !opts.dns_answer.is_empty() || opts.dns_zone.is_some() {
        let mut zone = crate::dns::zone::Zone::default();
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
    let encoded = opts.encoding.hex || opts.encoding.base64 || opts.encoding.escapes;
    if answer.is_none() && (encoded || opts.safety.is_set()) {
        return Err(usage!(
            "-x, --base64, -e and the safety flags apply to a responder: add --respond, --respond-file, --exec, --dns-answer or --dns-zone"
        ));
    }
    if encoded && !matches!(answer, Some(Answer::Fixed(_))) {
        return Err(usage!(
            "-x, --base64 and -e apply to --respond and --respond-file"
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
            crate::exit::describe_io(&e)
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
