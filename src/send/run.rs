//! The send loop: one poll over the socket, stdin, the schedule's next instant and the
//! signal pipe, feeding payloads from a [`Source`] to one [`Transmitter`] and replies to
//! one matcher ([`Replies`]). Every way of sending — fire and forget, one reply per
//! request with retries, pipelined `--seq`, `--collect`, a terminal session, multicast —
//! is this loop with other parts.

use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::base::error::{Ending, IoError};
use crate::net::errors::net_error;
use crate::net::signal::{Signals, WakeAny};
use crate::net::sys::RecvBatch;
use crate::report::output::{Datagram, Output};
use crate::report::progress::Progress;
use crate::send::schedule::{Poll, Schedule};
use crate::send::source::{Source, BATCH};
use crate::send::transmit::Transmitter;
use crate::wire::seq;

/// The largest UDP payload: every reply fits a buffer of this size.
const LARGEST: usize = 65_535;

/// What the loop does with replies.
#[derive(Debug)]
pub enum Replies {
    /// None are awaited: send and exit.
    None,
    /// One reply per datagram, from the target only; the same datagram again up to
    /// `retries` times when none comes within `timeout`.
    Each {
        timeout: Duration,
        retries: u32,
        expect: Option<Vec<u8>>,
        /// `--dns`: only the reply with the query's ID and question counts.
        dns: Option<DnsReply>,
    },
    /// `--reply --seq`: sent at the schedule's pace, matched by sequence number as they
    /// come, then up to `timeout` after the last datagram for the rest.
    BySeq {
        timeout: Duration,
        expect: Option<Vec<u8>>,
    },
    /// `--replay --reply`: sent at the capture's pace, never held up by a reply; every
    /// reply from the target printed as it comes, counted but not matched (a capture's
    /// payloads carry no sequence number), then up to `timeout` after the last datagram
    /// while fewer replies than datagrams came.
    Streamed {
        timeout: Duration,
        expect: Option<Vec<u8>>,
    },
    /// Every reply from anyone (an unconnected socket) until `timeout` after the last
    /// datagram.
    Collect { timeout: Duration },
    /// Stdin is a terminal: every reply printed as it arrives, until end of input.
    Interactive,
}

impl Replies {
    fn are_awaited(&self) -> bool {
        !matches!(self, Replies::None)
    }
}

/// What a `--dns` reply must be: the answer to this query.
#[derive(Debug)]
pub struct DnsReply {
    pub id: u16,
    pub question: hickory_proto::op::Query,
    /// `--expect-rcode`.
    pub rcode: Option<u16>,
}

/// A send, fully decided.
#[derive(Debug)]
pub struct Plan {
    pub target: SocketAddr,
    pub replies: Replies,
    /// Stamp a `--seq` header into every datagram.
    pub seq: bool,
    /// UDP GSO allowed (bulk sends only).
    pub gso: bool,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
    /// `--replay` at the capture's pace: its gaps divided by this (`--speed`); `None`:
    /// not a replay, `--speed max`, or paced by `--rate`/`--interval` instead.
    pub replay_speed: Option<f64>,
    /// `--ttl`, named when a router says the TTL ran out.
    pub ttl: Option<u32>,
}

/// What a send counted, for `--stats` and the exit code.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: u64,
    pub bytes: u64,
    pub replies: u64,
    pub reply_bytes: u64,
    /// Datagrams that got no reply (after their retries).
    pub unanswered: u64,
    /// Replies without the `--expect` pattern (or, with `--seq`, without a header).
    pub mismatched: u64,
    /// Replies that answered nothing outstanding (late, or a second answer), or, with
    /// `--dns`, not the query asked (another ID or question, or not DNS at all).
    pub stray: u64,
    /// `--dns --expect-rcode`: the last reply's RCODE, when it was another.
    pub wrong_rcode: Option<u16>,
    /// `--reply --seq`: replies that came back out of order, and twice.
    pub reordered: u64,
    pub duplicates: u64,
    pub rtts_us: Vec<u64>,
    /// `--replay`: how late each datagram left against the capture's schedule.
    pub lateness: crate::send::schedule::Lateness,
}

/// The datagram of `Replies::Each` waiting for its answer.
struct Outstanding {
    payload: Vec<u8>,
    sent_at: Instant,
    deadline: Instant,
    tries: u32,
}

/// Run the send: payloads from `source` (stdin on `input` when it reads lines) to
/// `socket` (connected to the target unless collecting), replies to `output`.
pub fn run<R: Read>(
    plan: &Plan,
    socket: &UdpSocket,
    source: &mut Source<R>,
    input: Option<RawFd>,
    signals: &Signals,
    output: &mut Output,
    counts: &mut Counts,
) -> anyhow::Result<Ending> {
    let awaited = plan.replies.are_awaited();
    let mut tx = match plan.replies {
        Replies::Collect { .. } => Transmitter::unconnected(socket, plan.target),
        _ => Transmitter::new(socket, &plan.target, plan.gso),
    };
    let start = Instant::now();
    let mut schedule = Schedule::new(plan.count, plan.duration, plan.rate, start);
    let mut progress = match plan.replies {
        Replies::Interactive | Replies::Each { .. } => Progress::new(None, None, None),
        _ => Progress::new(
            plan.count.filter(|_| source.fixed_payload().is_some()),
            plan.duration,
            plan.rate,
        ),
    };
    let mut state = State {
        plan,
        fd: socket.as_raw_fd(),
        // 4 MiB of receive buffers, only for a send that reads replies.
        replies: if awaited {
            RecvBatch::new(BATCH, LARGEST)
        } else {
            RecvBatch::new(0, 0)
        },
        tracker: seq::Tracker::default(),
        next_seq: 0,
        outstanding: None,
        counts,
    };
    let fd = state.fd;
    let mut sending = true;
    let mut stopped_sending = Instant::now();
    let mut input_ready = false;
    let mut pending_error = None;
    let ending = loop {
        if awaited && state.take_replies(output)? {
            output.flush()?;
        }
        if let Some(sig) = signals.pending() {
            break Ending::Signal(sig);
        }
        let now = Instant::now();
        state.retry_or_give_up(&mut tx, now)?;
        let mut wake: Option<Instant> = None;
        let mut wait_input = false;
        // A replay at the capture's pace: the next datagram waits for its time.
        let mut horizon = None;
        if let (true, Some(speed)) = (sending, plan.replay_speed) {
            let elapsed = now.duration_since(start).as_nanos() as f64 * speed;
            horizon = Some(elapsed as u64);
            if let Some(due) = source.next_due()? {
                if due as f64 > elapsed {
                    wake = Some(start + Duration::from_nanos((due as f64 / speed) as u64));
                }
            }
        }
        if sending && state.outstanding.is_none() && wake.is_none() {
            if !source.is_ready() && !input_ready {
                wait_input = true;
            } else {
                let max = match (&plan.replies, source.fixed_payload()) {
                    (Replies::Each { .. }, _) => 1,
                    (_, Some(p)) => tx.batch_for(p.len()),
                    (_, None) => BATCH,
                };
                match schedule.poll(max, now) {
                    Poll::Go(n) => {
                        input_ready = false;
                        let batch = source.fill_until(n, horizon)?;
                        let sent = state.transmit(&mut tx, source, batch.len)?;
                        if let Some(speed) = plan.replay_speed {
                            let now = Instant::now();
                            for &due in &source.last_dues()[..sent] {
                                let at = start + Duration::from_nanos((due as f64 / speed) as u64);
                                state
                                    .counts
                                    .lateness
                                    .record(now.saturating_duration_since(at));
                            }
                        }
                        schedule.sent(sent);
                        progress.update(state.counts.sent);
                        if sent < batch.len {
                            // A partial batch ends with the error that stopped it.
                            let e = socket
                                .take_error()?
                                .unwrap_or_else(|| io::Error::other("send stopped early"));
                            return Err(net_error(fd, e, plan.target, plan.ttl));
                        }
                        match batch.error {
                            // A bad line typed at a terminal is reported: type it again.
                            Some(err) if matches!(plan.replies, Replies::Interactive) => {
                                warn!("{err:#}")
                            }
                            Some(err) => {
                                pending_error = Some(err);
                                sending = false;
                            }
                            None => sending = !batch.eof,
                        }
                        if !sending {
                            stopped_sending = Instant::now();
                        }
                        continue;
                    }
                    Poll::Wait(at) => wake = Some(at),
                    Poll::Done => {
                        sending = false;
                        stopped_sending = now;
                    }
                }
            }
        }
        if !sending && state.outstanding.is_none() {
            let until = match plan.replies {
                Replies::BySeq { timeout, .. } | Replies::Streamed { timeout, .. }
                    if state.counts.replies < state.counts.sent =>
                {
                    Some(stopped_sending + timeout)
                }
                Replies::Collect { timeout } => Some(stopped_sending + timeout),
                _ => None,
            };
            match until {
                Some(t) if now < t => wake = Some(t),
                _ => break Ending::Done,
            }
        }
        if let Some(o) = &state.outstanding {
            wake = Some(wake.map_or(o.deadline, |w: Instant| w.min(o.deadline)));
        }
        let fds = [awaited.then_some(fd), wait_input.then_some(input).flatten()];
        match signals
            .wait_any(fds, wake)
            .map_err(|e| anyhow::Error::new(IoError(e)).context("failed to wait"))?
        {
            WakeAny::Signal(sig) => break Ending::Signal(sig),
            WakeAny::Timeout => {}
            WakeAny::Ready(ready) => input_ready |= ready[1],
        }
    };
    progress.finish();
    if let Replies::BySeq { .. } | Replies::Streamed { .. } = plan.replies {
        state.counts.unanswered = state.counts.sent.saturating_sub(state.counts.replies);
    }
    if let Replies::BySeq { .. } = plan.replies {
        state.counts.reordered = state.tracker.reordered;
        state.counts.duplicates = state.tracker.duplicates;
    }
    if ending != Ending::Done {
        return Ok(ending);
    }
    if let Some(err) = pending_error {
        return Err(err);
    }
    // An ICMP error for the last datagrams, already queued (on loopback it is): report it
    // rather than exit 0. Nothing waits for one that has not come.
    if !matches!(plan.replies, Replies::Collect { .. }) {
        if let Some(e) = socket.take_error()? {
            return Err(net_error(fd, e, plan.target, plan.ttl));
        }
    }
    Ok(ending)
}

/// The loop's state between polls.
struct State<'a> {
    plan: &'a Plan,
    fd: RawFd,
    replies: RecvBatch,
    tracker: seq::Tracker,
    next_seq: u64,
    outstanding: Option<Outstanding>,
    counts: &'a mut Counts,
}

impl State<'_> {
    /// Send the `n` payloads of the last batch (stamped with `--seq` headers), one GSO
    /// call for a repeated payload where allowed, `sendmmsg` otherwise.
    fn transmit<R: Read>(
        &mut self,
        tx: &mut Transmitter,
        source: &mut Source<R>,
        n: usize,
    ) -> anyhow::Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let seq = self.plan.seq;
        let next = &mut self.next_seq;
        let mut stamp = |d: &mut [u8]| {
            seq::write(d, *next, seq::now_ns());
            *next += 1;
        };
        let result = match source.fixed_payload() {
            Some(payload) => tx.send_copies(payload, n, seq.then_some(&mut stamp as _)),
            None => {
                if seq {
                    for slot in source.slots_mut(n) {
                        stamp(slot);
                    }
                }
                let refs: Vec<&[u8]> = (0..n).map(|i| source.get(i)).collect();
                tx.send_each(&refs)
            }
        };
        let sent = result.map_err(|e| net_error(self.fd, e, self.plan.target, self.plan.ttl))?;
        self.counts.sent += sent as u64;
        self.counts.bytes += (0..sent).map(|i| source.get(i).len() as u64).sum::<u64>();
        if let (Replies::Each { timeout, .. }, true) = (&self.plan.replies, sent == 1) {
            let now = Instant::now();
            self.outstanding = Some(Outstanding {
                payload: source.get(0).to_vec(),
                sent_at: now,
                deadline: now + *timeout,
                tries: 1,
            });
        }
        Ok(sent)
    }

    /// `Replies::Each`: resend the outstanding datagram when its try timed out, or count
    /// it unanswered after the last try.
    fn retry_or_give_up(&mut self, tx: &mut Transmitter, now: Instant) -> anyhow::Result<()> {
        let Replies::Each {
            timeout, retries, ..
        } = &self.plan.replies
        else {
            return Ok(());
        };
        let Some(o) = &mut self.outstanding else {
            return Ok(());
        };
        if now < o.deadline {
            return Ok(());
        }
        if o.tries > *retries {
            self.counts.unanswered += 1;
            self.outstanding = None;
            return Ok(());
        }
        info!(
            "no reply within {}; try {} of {}",
            crate::base::units::human_duration(*timeout),
            o.tries + 1,
            retries + 1
        );
        tx.send_each(&[&o.payload])
            .map_err(|e| net_error(self.fd, e, self.plan.target, self.plan.ttl))?;
        self.counts.sent += 1;
        self.counts.bytes += o.payload.len() as u64;
        o.tries += 1;
        o.sent_at = Instant::now();
        o.deadline = o.sent_at + *timeout;
        Ok(())
    }

    /// Every reply queued now, each matched and printed. Returns whether any was printed.
    fn take_replies(&mut self, output: &mut Output) -> anyhow::Result<bool> {
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
                let rtt = match &self.plan.replies {
                    Replies::Each { expect, dns, .. } => {
                        if self.outstanding.is_none() {
                            self.counts.stray += 1;
                            debug!("reply from {} answers nothing outstanding", meta.peer);
                            continue;
                        }
                        match dns {
                            Some(want) => {
                                if !check_dns(want, expect, payload, &meta.peer, self.counts) {
                                    continue;
                                }
                            }
                            None => check_expect(expect, payload, &meta.peer, self.counts),
                        }
                        let sent_at = self.outstanding.take().map(|o| o.sent_at);
                        sent_at.map(|at| now - at)
                    }
                    Replies::BySeq { expect, .. } => {
                        let Some(header) = seq::parse(payload) else {
                            self.counts.mismatched += 1;
                            warn!("reply from {} has no sequence header", meta.peer);
                            continue;
                        };
                        let dups = self.tracker.duplicates;
                        self.tracker.record(header.seq);
                        if self.tracker.duplicates > dups {
                            continue;
                        }
                        check_expect(expect, payload, &meta.peer, self.counts);
                        Some(Duration::from_nanos(
                            seq::now_ns().saturating_sub(header.sent_ns),
                        ))
                    }
                    Replies::Streamed { expect, .. } => {
                        check_expect(expect, payload, &meta.peer, self.counts);
                        None
                    }
                    Replies::Collect { .. } | Replies::Interactive | Replies::None => None,
                };
                self.counts.replies += 1;
                self.counts.reply_bytes += meta.len as u64;
                if let Some(rtt) = rtt {
                    self.counts.rtts_us.push(rtt.as_micros() as u64);
                }
                output.write(&Datagram {
                    peer: meta.peer,
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

/// Count a reply without the `--expect` pattern (it is still a reply, and printed).
fn check_expect(expect: &Option<Vec<u8>>, reply: &[u8], peer: &SocketAddr, counts: &mut Counts) {
    if let Some(pattern) = expect {
        if !contains(reply, pattern) {
            counts.mismatched += 1;
            warn!("reply from {peer} does not contain the --expect pattern");
        }
    }
}

/// `--dns`: whether `reply` answers the query (another ID or question, or garbage, is
/// counted stray and ignored: a late answer to an earlier try, a spoof), then its RCODE
/// and `--expect` against the answer section in presentation form.
fn check_dns(
    want: &DnsReply,
    expect: &Option<Vec<u8>>,
    reply: &[u8],
    peer: &SocketAddr,
    counts: &mut Counts,
) -> bool {
    let msg = match crate::wire::dns::decode(reply) {
        Ok(msg) if crate::wire::dns::is_reply_to(&msg, want.id, &want.question) => msg,
        Ok(msg) => {
            counts.stray += 1;
            debug!(
                "reply from {peer} (id {}) is not the answer to query {}",
                msg.metadata.id, want.id
            );
            return false;
        }
        Err(reason) => {
            counts.stray += 1;
            debug!("reply from {peer} is not a DNS message: {reason}");
            return false;
        }
    };
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
            warn!("the answer from {peer} does not contain the --expect text");
        }
    }
    true
}

/// True when `needle` occurs in `haystack` (an empty needle always does).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"hello", b"ell"));
        assert!(contains(b"x", b""));
        assert!(!contains(b"he", b"hello"));
        assert!(contains(b"hello", b"hello"));
        assert!(!contains(b"hello", b"lo!"));
    }
}
