//! The send loop: one poll over the socket, stdin, the schedule's next instant and the
//! signal pipe, feeding payloads from a [`Source`] to one [`Transmitter`] and replies to
//! one matcher ([`Replies`]). Every way of sending — fire and forget, one reply per
//! request with retries, pipelined `--seq`, `--collect`, a terminal session, multicast —
//! is this loop with other parts.

use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::base::error::{Ending, IoError};
use crate::net::errors::net_error;
use crate::net::signal::{Signals, WakeAny};
use crate::net::sys::RecvBatch;
use crate::report::output::Output;
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
    /// `+short`: the answer shows as `dig +short` prints it.
    pub short: bool,
    /// `+tcp`: the query goes over TCP from the start.
    pub tcp: bool,
    /// A truncated UDP answer is asked again over TCP (not with `+ignore`).
    pub fallback: bool,
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

/// A reply that lacked the `--expect` pattern: what came back (at most
/// [`Mismatch::KEPT`] bytes of it; with `--dns`, the answer section as text), its length
/// and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub got: Vec<u8>,
    pub len: usize,
    pub peer: SocketAddr,
    /// `--dns`: `got` is the answer section, not the datagram.
    pub answer: bool,
}

impl Mismatch {
    /// Bytes of a reply kept to show it.
    pub const KEPT: usize = 256;

    /// A mismatch of `reply` (`len` bytes) from `peer`.
    pub fn new(reply: &[u8], len: usize, peer: SocketAddr, answer: bool) -> Self {
        Mismatch {
            got: reply[..reply.len().min(Self::KEPT)].to_vec(),
            len,
            peer,
            answer,
        }
    }
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
    /// The first reply without the `--expect` pattern, for the one line that says so.
    pub first_mismatch: Option<Mismatch>,
    /// `--dns`: the UDP answer came truncated (TC); it is asked again over TCP.
    pub tcp_retry: bool,
    /// Replies that answered nothing outstanding (late, or a second answer), or, with
    /// `--dns`, not the query asked (another ID or question, or not DNS at all).
    pub stray: u64,
    /// `--dns --expect-rcode`: the last reply's RCODE, when it was another.
    pub wrong_rcode: Option<u16>,
    /// `--reply --seq`: replies that came back out of order, and twice.
    pub reordered: u64,
    pub duplicates: u64,
    /// Round trips in microseconds, in bounded memory.
    pub rtt_us: crate::base::histogram::Histogram,
    /// `--replay`: how late each datagram left against the capture's schedule.
    pub lateness: crate::send::schedule::Lateness,
}

/// The datagram of `Replies::Each` waiting for its answer.
pub(super) struct Outstanding {
    pub(super) payload: Vec<u8>,
    pub(super) sent_at: Instant,
    pub(super) deadline: Instant,
    pub(super) tries: u32,
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
    let mut sender = Sender::new(plan, source);
    let mut state = State::new(plan, socket, counts);
    let fd = state.fd;
    let ending = loop {
        if awaited && state.take_replies(output)? {
            output.flush()?;
        }
        if let Some(sig) = signals.pending() {
            break Ending::Signal(sig);
        }
        let now = Instant::now();
        state.retry_or_give_up(&mut tx, now)?;
        let (horizon, mut wake) = sender.replay_due(source, now)?;
        let mut wait_input = false;
        if sender.sending && state.outstanding.is_none() && wake.is_none() {
            match sender.send_some(&mut state, &mut tx, source, horizon, now)? {
                Step::Sent => continue,
                Step::WaitInput => wait_input = true,
                Step::WaitUntil(at) => wake = Some(at),
                Step::Done => {}
            }
        }
        if !sender.sending && state.outstanding.is_none() {
            match state.linger_until(sender.stopped_sending) {
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
            WakeAny::Ready(ready) => sender.input_ready |= ready[1],
        }
    };
    sender.progress.finish();
    state.close();
    if ending != Ending::Done {
        return Ok(ending);
    }
    if let Some(err) = sender.pending_error {
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

/// What one turn of the sending side did.
enum Step {
    /// A batch went: look at replies and signals, then go on.
    Sent,
    /// Stdin has no line yet: wait for it.
    WaitInput,
    /// The schedule says: not before then.
    WaitUntil(Instant),
    /// Nothing more to send.
    Done,
}

/// The sending side of the loop: the schedule, the progress line, and how sending ended.
struct Sender<'a> {
    plan: &'a Plan,
    start: Instant,
    schedule: Schedule,
    progress: Progress,
    sending: bool,
    stopped_sending: Instant,
    input_ready: bool,
    /// An error of the input (a bad line) that ends the send once replies are in.
    pending_error: Option<anyhow::Error>,
}

impl<'a> Sender<'a> {
    fn new<R: Read>(plan: &'a Plan, source: &Source<R>) -> Self {
        let start = Instant::now();
        let progress = match plan.replies {
            Replies::Interactive | Replies::Each { .. } => Progress::new(None, None, None),
            _ => Progress::new(
                plan.count.filter(|_| source.fixed_payload().is_some()),
                plan.duration,
                plan.rate,
            ),
        };
        Sender {
            plan,
            start,
            schedule: Schedule::new(plan.count, plan.duration, plan.rate, start),
            progress,
            sending: true,
            stopped_sending: start,
            input_ready: false,
            pending_error: None,
        }
    }

    /// A replay at the capture's pace: how far into the capture `now` is (the horizon
    /// of what may go), and when the next datagram is due if it is not yet.
    fn replay_due<R: Read>(
        &self,
        source: &mut Source<R>,
        now: Instant,
    ) -> anyhow::Result<(Option<u64>, Option<Instant>)> {
        let (true, Some(speed)) = (self.sending, self.plan.replay_speed) else {
            return Ok((None, None));
        };
        let elapsed = now.duration_since(self.start).as_nanos() as f64 * speed;
        let wake = match source.next_due()? {
            Some(due) if due as f64 > elapsed => {
                Some(self.start + Duration::from_nanos((due as f64 / speed) as u64))
            }
            _ => None,
        };
        Ok((Some(elapsed as u64), wake))
    }

    /// Send the batch the schedule allows now, if the input has one.
    fn send_some<R: Read>(
        &mut self,
        state: &mut State<'_>,
        tx: &mut Transmitter,
        source: &mut Source<R>,
        horizon: Option<u64>,
        now: Instant,
    ) -> anyhow::Result<Step> {
        if !source.is_ready() && !self.input_ready {
            return Ok(Step::WaitInput);
        }
        let max = match (&self.plan.replies, source.fixed_payload()) {
            (Replies::Each { .. }, _) => 1,
            (_, Some(p)) => tx.batch_for(p.len()),
            (_, None) => BATCH,
        };
        let n = match self.schedule.poll(max, now) {
            Poll::Go(n) => n,
            Poll::Wait(at) => return Ok(Step::WaitUntil(at)),
            Poll::Done => {
                self.stop(now);
                return Ok(Step::Done);
            }
        };
        self.input_ready = false;
        let batch = source.fill_until(n, horizon)?;
        let sent = state.transmit(tx, source, batch.len)?;
        if let Some(speed) = self.plan.replay_speed {
            let now = Instant::now();
            for &due in &source.last_dues()[..sent] {
                let at = self.start + Duration::from_nanos((due as f64 / speed) as u64);
                state
                    .counts
                    .lateness
                    .record(now.saturating_duration_since(at));
            }
        }
        self.schedule.sent(sent);
        self.progress.update(state.counts.sent);
        if sent < batch.len {
            // A partial batch ends with the error that stopped it.
            let e = state
                .socket
                .take_error()?
                .unwrap_or_else(|| io::Error::other("send stopped early"));
            return Err(net_error(state.fd, e, self.plan.target, self.plan.ttl));
        }
        match batch.error {
            // A bad line typed at a terminal is reported: type it again.
            Some(err) if matches!(self.plan.replies, Replies::Interactive) => warn!("{err:#}"),
            Some(err) => {
                self.pending_error = Some(err);
                self.stop(Instant::now());
            }
            None if batch.eof => self.stop(Instant::now()),
            None => {}
        }
        Ok(Step::Sent)
    }

    fn stop(&mut self, now: Instant) {
        self.sending = false;
        self.stopped_sending = now;
    }
}

/// The loop's state between polls.
pub(super) struct State<'a> {
    pub(super) plan: &'a Plan,
    pub(super) socket: &'a UdpSocket,
    pub(super) fd: RawFd,
    pub(super) replies: RecvBatch,
    pub(super) tracker: seq::Tracker,
    pub(super) next_seq: u64,
    pub(super) outstanding: Option<Outstanding>,
    pub(super) counts: &'a mut Counts,
}

impl<'a> State<'a> {
    fn new(plan: &'a Plan, socket: &'a UdpSocket, counts: &'a mut Counts) -> Self {
        State {
            plan,
            socket,
            fd: socket.as_raw_fd(),
            // 4 MiB of receive buffers, only for a send that reads replies.
            replies: if plan.replies.are_awaited() {
                RecvBatch::new(BATCH, LARGEST)
            } else {
                RecvBatch::new(0, 0)
            },
            tracker: seq::Tracker::default(),
            next_seq: 0,
            outstanding: None,
            counts,
        }
    }

    /// After the last datagram: until when replies are still waited for, if at all.
    fn linger_until(&self, stopped_sending: Instant) -> Option<Instant> {
        match self.plan.replies {
            Replies::BySeq { timeout, .. } | Replies::Streamed { timeout, .. }
                if self.counts.replies < self.counts.sent =>
            {
                Some(stopped_sending + timeout)
            }
            Replies::Collect { timeout } => Some(stopped_sending + timeout),
            _ => None,
        }
    }

    /// The counts only the end can tell: what went unanswered, reordered, twice.
    fn close(&mut self) {
        if let Replies::BySeq { .. } | Replies::Streamed { .. } = self.plan.replies {
            self.counts.unanswered = self.counts.sent.saturating_sub(self.counts.replies);
        }
        if let Replies::BySeq { .. } = self.plan.replies {
            self.counts.reordered = self.tracker.reordered;
            self.counts.duplicates = self.tracker.duplicates;
        }
    }

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
        // The RTT runs from just before the datagram is handed to the kernel (SPEC §4).
        let before = Instant::now();
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
            self.outstanding = Some(Outstanding {
                payload: source.get(0).to_vec(),
                sent_at: before,
                deadline: Instant::now() + *timeout,
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
        let before = Instant::now();
        tx.send_each(&[&o.payload])
            .map_err(|e| net_error(self.fd, e, self.plan.target, self.plan.ttl))?;
        self.counts.sent += 1;
        self.counts.bytes += o.payload.len() as u64;
        o.tries += 1;
        o.sent_at = before;
        o.deadline = Instant::now() + *timeout;
        Ok(())
    }
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
