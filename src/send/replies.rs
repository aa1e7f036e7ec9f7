//! The reply side of the send loop: every reply queued on the socket read, matched to
//! what was sent (by the one outstanding datagram, by `--seq` number, by DNS ID and
//! question), judged against `--expect` and `--expect-rcode`, and printed.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use crate::net::errors::net_error;
use crate::report::output::{Datagram, Output};
use crate::send::run::{contains, Counts, DnsReply, Mismatch, Replies, State};
use crate::send::source::BATCH;
use crate::wire::seq;

impl State<'_> {
    /// Every reply queued now, each matched and printed. Returns whether any was printed.
    pub(super) fn take_replies(&mut self, output: &mut Output) -> anyhow::Result<bool> {
        let mut printed = false;
        loop {
            let n = match self.replies.recv(self.fd, BATCH) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(printed),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An unconnected socket may hear of an ICMP error for one responder:
                // others may still answer.
                Err(e)
                    if e.kind() == io::ErrorKind::ConnectionRefused
                        && matches!(self.plan.replies, Replies::Collect { .. }) =>
                {
                    continue
                }
                Err(e) => {
                    output.flush()?;
                    return Err(net_error(self.fd, e, self.plan.target, self.plan.ttl));
                }
            };
            let now = Instant::now();
            let time = SystemTime::now();
            for i in 0..n {
                let meta = self.replies.meta(i);
                let payload = self.replies.payload(i);
                let reply = Reply {
                    peer: meta.peer,
                    payload,
                    now,
                };
                let matcher = Matcher {
                    replies: &self.plan.replies,
                    tracker: &mut self.tracker,
                    outstanding: &mut self.outstanding,
                    counts: self.counts,
                };
                let Some(rtt) = matcher.matched(reply) else {
                    continue;
                };
                self.counts.replies += 1;
                self.counts.reply_bytes += meta.len as u64;
                if let Some(rtt) = rtt {
                    self.counts.rtt_us.record(rtt.as_micros() as u64);
                }
                output.write(&Datagram {
                    peer: meta.peer.into(),
                    payload,
                    len: meta.len,
                    time,
                    rtt,
                    leg: None,
                })?;
                printed = true;
            }
        }
    }
}

/// One reply as it arrived.
struct Reply<'p> {
    peer: SocketAddr,
    payload: &'p [u8],
    now: Instant,
}

/// What matching a reply reads and changes of the loop's state (apart from the receive
/// buffers the reply itself lies in).
struct Matcher<'s> {
    replies: &'s Replies,
    tracker: &'s mut seq::Tracker,
    outstanding: &'s mut Option<crate::send::run::Outstanding>,
    counts: &'s mut Counts,
}

impl Matcher<'_> {
    /// Whether a reply counts, and its RTT when one is known: `None` for a reply that
    /// answers nothing (counted stray, or without a `--seq` header, or a duplicate).
    fn matched(self, reply: Reply<'_>) -> Option<Option<Duration>> {
        let Reply { peer, payload, now } = reply;
        let rtt = match self.replies {
            Replies::Each { expect, dns, .. } => {
                if self.outstanding.is_none() {
                    self.counts.stray += 1;
                    debug!("reply from {} answers nothing outstanding", peer);
                    return None;
                }
                match dns
                    .as_ref()
                    .map(|want| check_dns(want, expect, payload, &peer, self.counts))
                {
                    Some(DnsCheck::Stray) => return None,
                    Some(DnsCheck::Truncated) => {
                        // Answered, but to be asked again over TCP: not printed here.
                        self.outstanding.take();
                        self.counts.tcp_retry = true;
                        return None;
                    }
                    Some(DnsCheck::Answer) => {}
                    None => check_expect(expect, payload, &peer, self.counts),
                }
                let sent_at = self.outstanding.take().map(|o| o.sent_at);
                sent_at.map(|at| now - at)
            }
            Replies::BySeq { expect, .. } => {
                let Some(header) = seq::parse(payload) else {
                    self.counts.mismatched += 1;
                    warn!("reply from {} has no sequence header", peer);
                    return None;
                };
                let dups = self.tracker.duplicates;
                self.tracker.record(header.seq);
                if self.tracker.duplicates > dups {
                    return None;
                }
                check_expect(expect, payload, &peer, self.counts);
                Some(Duration::from_nanos(
                    seq::now_ns().saturating_sub(header.sent_ns),
                ))
            }
            Replies::Streamed { expect, .. } => {
                check_expect(expect, payload, &peer, self.counts);
                None
            }
            Replies::Collect { .. } | Replies::Interactive | Replies::None => None,
        };
        Some(rtt)
    }
}

/// Count a reply without the `--expect` pattern (it is still a reply, and printed).
fn check_expect(expect: &Option<Vec<u8>>, reply: &[u8], peer: &SocketAddr, counts: &mut Counts) {
    if let Some(pattern) = expect {
        if !contains(reply, pattern) {
            counts.mismatched += 1;
            debug!("reply from {peer} does not contain the --expect pattern");
            counts
                .first_mismatch
                .get_or_insert_with(|| Mismatch::new(reply, reply.len(), *peer, false));
        }
    }
}

/// What a `--dns` reply is to the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsCheck {
    /// Not its answer (another ID or question, or not DNS): counted stray, ignored.
    Stray,
    /// Its answer, judged (RCODE, `--expect`).
    Answer,
    /// Its answer, truncated (TC): to be asked again over TCP, not judged.
    Truncated,
}

/// `--dns`: whether `reply` answers the query (another ID or question, or garbage, is
/// counted stray and ignored: a late answer to an earlier try, a spoof), whether it came
/// truncated, then its RCODE and `--expect` against the answer section in presentation
/// form.
pub fn check_dns(
    want: &DnsReply,
    expect: &Option<Vec<u8>>,
    reply: &[u8],
    peer: &SocketAddr,
    counts: &mut Counts,
) -> DnsCheck {
    let msg = match crate::wire::dns::decode(reply) {
        Ok(msg) if crate::wire::dns::is_reply_to(&msg, want.id, &want.question) => msg,
        Ok(msg) => {
            counts.stray += 1;
            debug!(
                "reply from {peer} (id {}) is not the answer to query {}",
                msg.metadata.id, want.id
            );
            return DnsCheck::Stray;
        }
        Err(reason) => {
            counts.stray += 1;
            debug!("reply from {peer} is not a DNS message: {reason}");
            return DnsCheck::Stray;
        }
    };
    if msg.metadata.truncation && want.fallback {
        return DnsCheck::Truncated;
    }
    let rcode = crate::wire::dns::rcode(&msg);
    counts.wrong_rcode = want.rcode.filter(|&w| w != rcode).map(|_| rcode);
    if counts.wrong_rcode.is_some() {
        warn!(
            "reply from {peer} has RCODE {}, not {}",
            crate::wire::dns::rcode_name(rcode),
            crate::wire::dns::rcode_name(want.rcode.unwrap_or_default())
        );
    }
    if let Some(pattern) = expect {
        let answers = crate::wire::dns::answer_text(&msg);
        if !contains(answers.as_bytes(), pattern) {
            counts.mismatched += 1;
            debug!("the answer from {peer} does not contain the --expect text");
            counts
                .first_mismatch
                .get_or_insert_with(|| Mismatch::new(answers.as_bytes(), reply.len(), *peer, true));
        }
    }
    DnsCheck::Answer
}
