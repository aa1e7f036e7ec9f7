//! Which of send's flags imply another, and which are refused without the one they need
//! (SPEC §1: no flag is silently ignored).

use crate::base::error::usage;
use crate::cli::format::FormatArg;
use crate::cli::SendArgs;
use crate::send::run::Replies;
use crate::send::source::Payload;

/// `-w`'s default: how long a reply is waited for, per try.
pub const DEFAULT_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether one reply per datagram is asked for: `--reply`, or a flag that means nothing
/// without it (`--expect`, `-w`, `--retries`: SPEC §1, no flag is silently ignored).
/// With `--collect`, `-w` is how long it collects.
pub fn wants_reply(args: &SendArgs) -> bool {
    args.reply
        || args.expect.is_some()
        || (!args.collect && (args.timeout.is_some() || args.retries.is_some()))
}

/// Flags that mean something only with another, and are refused without it (exit 2,
/// naming what they need) where none implies it.
pub fn needs(args: &SendArgs) -> anyhow::Result<()> {
    let encoded = args.encoding.hex || args.encoding.base64 || args.encoding.escapes;
    let refusal = if args.speed.is_some() && args.replay.is_none() {
        "--speed paces a capture: add --replay FILE"
    } else if !args.matches.is_empty() && args.replay.is_none() {
        "--match picks datagrams of a capture: add --replay FILE"
    } else if args.expect_rcode.is_some() && args.dns.is_none() {
        "--expect-rcode judges a DNS answer: add --dns QUERY"
    } else if args.collect && args.retries.is_some() {
        "--retries resends for --reply; --collect waits once for every responder"
    } else if encoded && args.size.is_some() && args.expect.is_none() {
        "-x, --base64 and -e say how MESSAGE, stdin, --file or --expect are written; --size generates its payload"
    } else {
        return Ok(());
    };
    Err(usage!("{refusal}"))
}

/// `--format` says how replies print: a send that waits for none refuses it, unless it
/// is `-f json` for the `--stats` summary.
pub fn format_needs_replies(args: &SendArgs, replies: &Replies) -> anyhow::Result<()> {
    let for_stats = args.stats && args.format == Some(FormatArg::Json);
    if args.format.is_some() && matches!(replies, Replies::None) && !for_stats {
        return Err(usage!(
            "--format says how replies print: add --reply, --expect or --collect (or --stats with -f json)"
        ));
    }
    Ok(())
}

/// nc's `HOST PORT` (`dgram send 127.0.0.1 9000 hi`): when TARGET has no port and the
/// first word is one, the target that was meant (`127.0.0.1:9000`, `[::1]:9000`).
pub fn host_port_hint(args: &SendArgs) -> Option<String> {
    let port = args.message.first()?.to_str()?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err()
    {
        return None;
    }
    let host = args.target.as_str();
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => Some(format!("[{host}]:{port}")),
        Ok(_) => Some(format!("{host}:{port}")),
        Err(_) if !host.contains(':') && !host.is_empty() => Some(format!("{host}:{port}")),
        Err(_) => None,
    }
}

/// Datagrams a second, from `--rate`, `--interval` or `--bitrate` (over the payload's
/// size); None: as fast as the socket takes them.
pub fn pace(args: &SendArgs, payload: &Payload) -> anyhow::Result<Option<f64>> {
    Ok(match args.bitrate {
        Some(bits) => Some(bits / (8.0 * fixed_size(payload)? as f64)),
        None => args
            .rate
            .or(args.interval.map(|i| 1.0 / i.as_secs_f64().max(1e-9))),
    })
}

/// The one size of every datagram, which `--bitrate` turns into a pace: MESSAGE's,
/// `--size`'s or `--file`'s.
fn fixed_size(payload: &Payload) -> anyhow::Result<usize> {
    let size = match payload {
        Payload::Message(bytes) => bytes.len(),
        Payload::Size(n) => *n,
        Payload::File(path) => std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .map_err(|e| {
                usage!(
                    "--file {}: {}",
                    path.display(),
                    crate::base::error::describe_io(&e)
                )
            })?,
        _ => {
            return Err(usage!(
            "--bitrate paces datagrams of one size: give MESSAGE, --size or --file (or use --rate)"
        ))
        }
    };
    if size == 0 {
        return Err(usage!("--bitrate needs a payload of at least one byte"));
    }
    Ok(size)
}
