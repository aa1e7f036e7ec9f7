//! `dgram scan`: which UDP ports of a host answer (SPEC §11). A recipe over
//! [`crate::scan`]: the plan from the flags, rounds until `--expect` holds or `--wait`
//! passes, then a line per port in port order and a summary on stderr.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::base::error::{usage, Ending, Unmet};
use crate::cli::format::FormatArg;
use crate::cli::{ProbeArg, ScanArgs};
use crate::net::addr::Family;
use crate::net::signal::Signals;
use crate::report::scan::{PortReport, State};
use crate::scan::{Payload, Plan};

/// Off this host: its ICMP is rate-limited, so probes go at this pace by default.
const REMOTE_RATE: f64 = 100.0;
const REMOTE_RETRIES: u32 = 2;
/// How long `--wait` rests between rounds.
const WAIT_GAP: Duration = Duration::from_millis(200);

/// A scan checked from its flags, with nothing sent.
pub struct Checked {
    pub plan: Plan,
    pub ports: Vec<u16>,
    pub expect: Option<Vec<State>>,
}

/// `dgram scan`'s flags checked into a plan.
pub fn check(args: &ScanArgs) -> anyhow::Result<Checked> {
    if args.format != FormatArg::Text && args.format != FormatArg::Json {
        return Err(usage!("scan prints text or json (-f text, -f json)"));
    }
    let ports = crate::scan::ports::parse(&args.ports).map_err(|e| usage!("invalid PORTS: {e}"))?;
    let host = host(&args.host, args.family.family())?;
    let local = crate::scan::is_this_host(host);
    let expect = args
        .expect
        .as_deref()
        .map(|text| {
            text.split(',')
                .map(|s| State::parse(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| usage!("invalid --expect: {e}"))
        })
        .transpose()?;
    let family = if host.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let plan = Plan {
        host,
        payload: payload(args, SocketAddr::new(host, 0))?,
        timeout: args.timeout,
        retries: args
            .retries
            .unwrap_or(if local { 0 } else { REMOTE_RETRIES }),
        rate: args.rate.or((!local).then_some(REMOTE_RATE)),
        local,
        options: crate::net::socket::Options {
            v6_only: false,
            recv_errors: true,
            recv_buffer_default: Some(4 << 20),
            ..args.socket.options(family)
        },
    };
    Ok(Checked {
        plan,
        ports,
        expect,
    })
}

/// HOST: an address (IPv6 with or without brackets), or a name resolved once.
fn host(text: &str, family: Family) -> anyhow::Result<IpAddr> {
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let target = SocketAddr::new(ip, 1);
        return Ok(crate::net::addr::parse_target(&target.to_string(), family)?.ip());
    }
    Ok(crate::net::addr::parse_target(&format!("{text}:1"), family)?.ip())
}

/// What every port is sent: MESSAGE, `--file`, `--dns`, or the probes.
fn payload(args: &ScanArgs, target: SocketAddr) -> anyhow::Result<Payload> {
    use crate::wire::codec::decode;
    let encoding = args.encoding.encoding();
    if !args.message.is_empty() {
        let joined = crate::wire::payload::join_words(&args.message);
        let bytes = decode(&joined, encoding).map_err(|e| usage!("invalid MESSAGE: {e}"))?;
        return Ok(Payload::Fixed(bytes));
    }
    if let Some(path) = &args.file {
        let bytes = crate::send::source::read_file("--file", path, &target, encoding)?;
        let bytes = decode(&bytes, encoding)
            .map_err(|e| usage!("invalid --file {}: {e}", path.display()))?;
        return Ok(Payload::Fixed(bytes));
    }
    if let Some(query) = &args.dns {
        let spec =
            crate::wire::dns::parse_query(query).map_err(|e| usage!("invalid --dns: {e}"))?;
        let bytes = spec
            .encode(crate::wire::dns::random_id())
            .map_err(|e| usage!("invalid --dns: {e}"))?;
        return Ok(Payload::Fixed(bytes));
    }
    Ok(match args.probe {
        ProbeArg::Auto => Payload::Auto,
        ProbeArg::Empty => Payload::Empty,
    })
}

/// Run `dgram scan`.
pub fn run(args: ScanArgs, signals: &Signals) -> anyhow::Result<Ending> {
    let Checked {
        plan,
        ports,
        expect,
    } = check(&args)?;
    let start = Instant::now();
    let until = args.wait.map(|w| start + w);
    let mut found: BTreeMap<u16, PortReport> = BTreeMap::new();
    let mut sent = 0;
    let mut todo = ports.clone();
    let (silent, stopped) = loop {
        let outcome = crate::scan::run(&plan, &todo, signals)?;
        sent += outcome.sent;
        let (silent, stopped) = (outcome.silent_after_errors, outcome.stopped);
        for p in outcome.ports {
            found.insert(p.port, p);
        }
        let wanted = |p: &u16| {
            let state = found.get(p).map(|r| r.state);
            expect
                .as_ref()
                .is_none_or(|e| state.is_some_and(|s| e.contains(&s)))
        };
        todo.retain(|p| !wanted(p));
        if !todo.is_empty() && until.is_some() {
            tracing::info!(
                "{} port{} not yet {}: probing again",
                todo.len(),
                if todo.len() == 1 { "" } else { "s" },
                expect
                    .iter()
                    .flatten()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        }
        if todo.is_empty()
            || stopped.is_some()
            || until.is_none_or(|u| Instant::now() + WAIT_GAP >= u)
            || signals.wait(None, Some(Instant::now() + WAIT_GAP)).is_err()
        {
            break (silent, stopped);
        }
    };
    let reports: Vec<PortReport> = found.into_values().collect();
    print(&reports, &args)?;
    if silent > 0 {
        tracing::warn!(
            "{silent} port{} went silent after {}'s ICMP errors stopped coming: hosts rate-limit ICMP (Linux: a burst of 6, then one a second), so they may be closed; a lower --rate or more --retries tells them apart",
            if silent == 1 { "" } else { "s" },
            plan.host
        );
    }
    // One write, and no panic on a closed stderr (eprintln! would).
    let summary = crate::report::scan::summary(plan.host, &reports, sent, start.elapsed());
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{summary}\n").as_bytes());
    if let Some(sig) = stopped {
        return Ok(Ending::Signal(sig));
    }
    expectation(&reports, &ports, expect.as_deref())?;
    Ok(Ending::Done)
}

/// Exit 1 unless every port is in one of the expected states, naming the first few that
/// are not.
fn expectation(
    reports: &[PortReport],
    ports: &[u16],
    expect: Option<&[State]>,
) -> anyhow::Result<()> {
    let Some(expect) = expect else {
        return Ok(());
    };
    let off: Vec<String> = reports
        .iter()
        .filter(|r| !expect.contains(&r.state))
        .map(|r| format!("{}/udp {} ({})", r.port, r.state.name(), r.reason))
        .collect();
    if off.is_empty() && reports.len() == ports.len() {
        return Ok(());
    }
    let names: Vec<&str> = expect.iter().map(|s| s.name()).collect();
    let shown = off.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more = off.len().saturating_sub(5);
    Err(Unmet(format!(
        "{} of {} port{} not {}: {shown}{}",
        off.len(),
        ports.len(),
        if ports.len() == 1 { "" } else { "s" },
        names.join(" or "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
    .into())
}

/// A line (or JSON object) per port in port order; `--open`: only the open ones.
fn print(reports: &[PortReport], args: &ScanArgs) -> anyhow::Result<()> {
    let json = args.format == FormatArg::Json;
    let mut text = String::new();
    for r in reports
        .iter()
        .filter(|r| !args.open || r.state == State::Open)
    {
        crate::report::scan::line(r, json, &mut text);
    }
    let mut out = crate::report::output::Output::stdout(crate::report::output::Format::Raw)?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
