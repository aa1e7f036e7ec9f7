//! DNS over TCP (SPEC §4 send, §10): the query framed on a TCP connection to the target
//! (`+tcp`, or after a truncated UDP answer), and the first framed answer back. A refused
//! or reset connection is exit 3 naming `tcp://ADDR`; no answer within the timeout is
//! exit 1.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::base::error::{describe_io, Unmet};
use crate::base::units::human_duration;
use crate::report::output::{Datagram, Output};
use crate::send::replies::{check_dns, DnsCheck};
use crate::send::run::{Counts, Plan, Replies};
use crate::wire::framing::{encode_into, Decoder};

/// Send `query` to `target` over TCP and return the first whole framed answer.
pub fn exchange(target: SocketAddr, query: &[u8], timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let silent = || -> anyhow::Error {
        Unmet(format!(
            "no TCP answer from tcp://{target} within {}",
            human_duration(timeout)
        ))
        .into()
    };
    let broken = |e: io::Error| -> anyhow::Error {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => silent(),
            io::ErrorKind::ConnectionRefused => {
                anyhow::anyhow!("connection refused: nothing is listening on tcp://{target}")
            }
            io::ErrorKind::ConnectionReset => anyhow::anyhow!("connection reset by tcp://{target}"),
            _ => anyhow::anyhow!("TCP to tcp://{target} failed: {}", describe_io(&e)),
        }
    };
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(broken)?;
    // A datagram is never held back to fill a segment (SPEC §10).
    stream.set_nodelay(true).map_err(broken)?;
    let mut frame = Vec::with_capacity(query.len() + 2);
    encode_into(query, &mut frame)
        .map_err(|_| anyhow::anyhow!("the query is too large for a TCP frame"))?;
    stream.set_write_timeout(Some(timeout)).map_err(broken)?;
    stream.write_all(&frame).map_err(broken)?;
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = decoder.next_frame() {
            return Ok(answer.to_vec());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(silent());
        }
        stream.set_read_timeout(Some(left)).map_err(broken)?;
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(Unmet(format!(
                    "tcp://{target} closed the connection before a whole answer ({} bytes of it)",
                    decoder.pending()
                ))
                .into())
            }
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(broken(e)),
        }
    }
}

/// The `--dns` query of `plan` over TCP: the answer matched (ID and question) and judged
/// as a UDP one is, counted and printed to `output`.
pub fn ask(
    plan: &Plan,
    query: &[u8],
    output: &mut Output,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let Replies::Each {
        timeout,
        expect,
        dns: Some(want),
        ..
    } = &plan.replies
    else {
        return Ok(());
    };
    let target = plan.target;
    let sent_at = Instant::now();
    counts.sent += 1;
    counts.bytes += query.len() as u64;
    let answer = exchange(target, query, *timeout)?;
    let rtt = sent_at.elapsed();
    match check_dns(want, expect, &answer, &target, counts) {
        DnsCheck::Answer | DnsCheck::Truncated => {}
        DnsCheck::Stray => {
            return Err(Unmet(format!(
                "the TCP answer from tcp://{target} is not the answer to the query (another ID or question, or not DNS)"
            ))
            .into())
        }
    }
    counts.replies += 1;
    counts.reply_bytes += answer.len() as u64;
    counts.rtt_us.record(rtt.as_micros() as u64);
    output.write(&Datagram {
        peer: target.into(),
        payload: &answer,
        len: answer.len(),
        time: std::time::SystemTime::now(),
        rtt: Some(rtt),
        leg: None,
    })
}
