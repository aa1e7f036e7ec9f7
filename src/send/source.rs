//! Where a send's payloads come from (SPEC §3): one payload repeated (MESSAGE, `--file`,
//! `--whole`, `--size`), or stdin, one datagram per line — typed at a terminal or piped.
//! Reading is bounded: no input makes dgram hold more than one datagram can carry.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::base::error::{usage, IoError};
use crate::net::signal::{Signals, Wake};
use crate::wire::codec::{decode, Encoding};
use crate::wire::payload::{
    check_size, generated, input_cap, max_payload, read_bounded, with_seq_room, Lines,
};
use crate::wire::seq;

/// Payloads read for one send call at most.
pub const BATCH: usize = 64;

/// "larger than the IPv4 UDP limit of 65507 bytes", for input refused before it was
/// read whole.
pub fn too_large_for(target: &SocketAddr) -> String {
    let family = if target.is_ipv4() { "IPv4" } else { "IPv6" };
    format!(
        "larger than the {family} UDP limit of {} bytes",
        max_payload(target)
    )
}

/// `--file PATH` (or another `flag`'s file), refused unread when its size is over what
/// one datagram to `target` can carry.
pub fn read_file(
    flag: &str,
    path: &Path,
    target: &SocketAddr,
    encoding: Encoding,
) -> anyhow::Result<Vec<u8>> {
    let cant = |e: io::Error| {
        usage!(
            "cannot read {flag} {}: {}",
            path.display(),
            crate::base::error::describe_io(&e)
        )
    };
    let cap = input_cap(max_payload(target), encoding);
    let file = std::fs::File::open(path).map_err(cant)?;
    let too_large = |len: String| {
        usage!(
            "{flag} {} is {len} bytes: {}",
            path.display(),
            too_large_for(target)
        )
    };
    // The size from the metadata first; then a bounded read, for files whose size is not
    // known ahead (pipes, /proc, /dev/stdin).
    match file.metadata() {
        Ok(m) if m.is_file() && m.len() > cap as u64 => return Err(too_large(m.len().to_string())),
        _ => {}
    }
    read_bounded(file, cap)
        .map_err(cant)?
        .ok_or_else(|| too_large(format!("more than {cap}")))
}

/// `--whole`: all of `input`, refused as soon as it holds more than one datagram can
/// carry (an endless pipe is not read to its end). Call once the input is readable, or
/// where blocking on it is fine.
pub fn read_whole(
    input: impl Read,
    target: &SocketAddr,
    encoding: Encoding,
) -> anyhow::Result<Vec<u8>> {
    let cap = input_cap(max_payload(target), encoding);
    read_bounded(input, cap)
        .map_err(|e| anyhow::Error::new(IoError(e)).context("failed to read stdin"))?
        .ok_or_else(|| {
            // Only cap + 1 bytes were read: say "at least", and how many.
            let seen = cap + 1;
            if encoding == Encoding::Text {
                usage!("stdin (--whole) is at least {seen} bytes: {}", too_large_for(target))
            } else {
                let flag = match encoding {
                    Encoding::Hex => "-x",
                    Encoding::Base64 => "--base64",
                    _ => "-e",
                };
                usage!(
                    "stdin (--whole, {flag}) is at least {seen} bytes: more than any datagram up to the {} UDP limit of {} bytes is written in",
                    if target.is_ipv4() { "IPv4" } else { "IPv6" },
                    max_payload(target)
                )
            }
        })
}

/// A batch of payloads read for one send.
#[derive(Debug, Default)]
pub struct Batch {
    /// How many payloads are ready.
    pub len: usize,
    /// An error found at the payload after the last one ready (an oversize or undecodable
    /// line): raised after the ready ones are sent.
    pub error: Option<anyhow::Error>,
    /// The input is exhausted.
    pub eof: bool,
}

/// The payloads of a run.
pub struct Source<R: Read = io::Stdin> {
    /// `--seq`: every payload has room for the header in front.
    seq: bool,
    fixed: Option<Vec<u8>>,
    lines: Option<Lines<R>>,
    encoding: Encoding,
    target: SocketAddr,
    slots: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    replay: Option<Replay>,
}

/// `--replay`: a capture's datagrams, each with its offset from the first.
struct Replay {
    reader: crate::wire::capture::CaptureReader,
    /// The next datagram, read ahead to know when it is due.
    next: Option<crate::wire::capture::Captured>,
    first_ts: Option<u64>,
    ended: bool,
    /// Datagrams over the target's size limit (an IPv6 capture replayed over IPv4).
    too_large: u64,
    /// When each datagram of the last batch was due (capture time after the first).
    dues: Vec<u64>,
}

impl<R: Read> Source<R> {
    /// The datagrams of a capture, in order.
    pub fn replay(reader: crate::wire::capture::CaptureReader, target: SocketAddr) -> Self {
        Source {
            seq: false,
            fixed: None,
            lines: None,
            encoding: Encoding::Text,
            target,
            slots: vec![Vec::new(); BATCH],
            scratch: Vec::new(),
            replay: Some(Replay {
                reader,
                next: None,
                first_ts: None,
                ended: false,
                too_large: 0,
                dues: Vec::with_capacity(BATCH),
            }),
        }
    }

    /// `--replay`: when the next datagram is due, in nanoseconds of capture time after the
    /// first one (`None`: not a replay, or nothing left).
    pub fn next_due(&mut self) -> anyhow::Result<Option<u64>> {
        let Some(r) = &mut self.replay else {
            return Ok(None);
        };
        if r.next.is_none() && !r.ended {
            r.next = r.reader.next_datagram()?;
            r.ended = r.next.is_none();
        }
        Ok(r.next.as_ref().map(|c| {
            let first = *r.first_ts.get_or_insert(c.ts_ns);
            c.ts_ns.saturating_sub(first)
        }))
    }

    /// `--replay`: when each datagram of the last batch was due.
    pub fn last_dues(&self) -> &[u64] {
        self.replay.as_ref().map_or(&[], |r| &r.dues)
    }

    /// `--replay`: what reading skipped, and the datagrams too large for the target.
    pub fn replay_counts(&self) -> Option<(crate::wire::capture::Skipped, u64)> {
        self.replay
            .as_ref()
            .map(|r| (r.reader.skipped.clone(), r.too_large))
    }
    /// One payload, repeated (with `--seq`, the caller has made room for the header).
    pub fn fixed(payload: Vec<u8>, target: SocketAddr) -> Self {
        Source {
            seq: false,
            fixed: Some(payload),
            lines: None,
            encoding: Encoding::Text,
            target,
            slots: Vec::new(),
            scratch: Vec::new(),
            replay: None,
        }
    }

    /// Lines of `input`, each decoded from `encoding`, one datagram each.
    pub fn lines(input: R, encoding: Encoding, seq: bool, target: SocketAddr) -> Self {
        let max = input_cap(max_payload(&target), encoding);
        Source {
            seq,
            fixed: None,
            lines: Some(Lines::with_max(input, max)),
            encoding,
            target,
            slots: vec![Vec::new(); BATCH],
            scratch: Vec::new(),
            replay: None,
        }
    }

    /// The repeated payload, if this is one.
    pub fn fixed_payload(&self) -> Option<&[u8]> {
        self.fixed.as_deref()
    }

    /// True when the next payload can be read without waiting for input.
    pub fn is_ready(&self) -> bool {
        if self.replay.is_some() {
            return true;
        }
        self.lines.as_ref().is_none_or(Lines::has_buffered_line)
    }

    /// Up to `max` payloads. Lines are batched only while whole lines are already
    /// buffered: the first may wait for input (call once it is readable), later ones
    /// never do.
    pub fn fill(&mut self, max: usize) -> anyhow::Result<Batch> {
        self.fill_until(max, None)
    }

    /// As [`fill`](Self::fill); a replay takes only the datagrams due by `horizon`
    /// (nanoseconds of capture time after the first; `None`: all).
    pub fn fill_until(&mut self, max: usize, horizon: Option<u64>) -> anyhow::Result<Batch> {
        // A repeated payload needs no slots: as many as one GSO call takes.
        let max = if self.fixed.is_some() {
            max
        } else {
            max.min(BATCH)
        };
        if self.replay.is_some() {
            return Ok(self.fill_replay(max, horizon));
        }
        if self.lines.is_none() {
            return Ok(Batch {
                len: max,
                ..Batch::default()
            });
        }
        self.fill_lines(max)
    }

    /// The capture's next datagrams, up to `max` and due by `horizon`; one too large to
    /// send is skipped and counted.
    fn fill_replay(&mut self, max: usize, horizon: Option<u64>) -> Batch {
        let mut batch = Batch::default();
        if let Some(r) = &mut self.replay {
            r.dues.clear();
            while batch.len < max {
                // An error in the capture stops the run after the datagrams before it.
                let due = match self.next_due() {
                    Ok(Some(due)) => due,
                    Ok(None) => {
                        batch.eof = true;
                        break;
                    }
                    Err(e) => {
                        batch.error = Some(e);
                        break;
                    }
                };
                if horizon.is_some_and(|h| due > h) {
                    break;
                }
                let Some(r) = &mut self.replay else { break };
                let Some(c) = r.next.take() else { break };
                if check_size(c.payload.len(), &self.target).is_err() {
                    r.too_large += 1;
                    continue;
                }
                r.dues.push(due);
                self.slots[batch.len] = c.payload;
                batch.len += 1;
            }
        }
        batch
    }

    /// Up to `max` lines of stdin, decoded and checked; batched only while whole lines
    /// are already buffered.
    fn fill_lines(&mut self, max: usize) -> anyhow::Result<Batch> {
        let mut batch = Batch::default();
        let Some(lines) = &mut self.lines else {
            return Ok(batch);
        };
        while batch.len < max {
            if batch.len > 0 && !lines.has_buffered_line() {
                break;
            }
            let slot = &mut self.slots[batch.len];
            let more = if self.encoding == Encoding::Text {
                lines.next_into(slot)
            } else {
                lines.next_into(&mut self.scratch)
            }
            .map_err(|e| anyhow::Error::new(IoError(e)).context("failed to read stdin"))?;
            if !more {
                batch.eof = true;
                break;
            }
            let number = lines.number();
            if lines.was_cut() {
                batch.error = Some(usage!("line {number}: {}", too_large_for(&self.target)));
                break;
            }
            if self.encoding != Encoding::Text {
                match decode(&self.scratch, self.encoding) {
                    Ok(bytes) => *slot = bytes,
                    Err(e) => {
                        batch.error = Some(usage!("line {number}: {e}"));
                        break;
                    }
                }
            }
            if self.seq {
                slot.splice(0..0, [0; seq::HEADER_LEN]);
            }
            if let Err(e) = check_size(slot.len(), &self.target) {
                batch.error = Some(usage!("line {number}: {e}"));
                break;
            }
            batch.len += 1;
        }
        Ok(batch)
    }

    /// Payload `i` of the last batch.
    pub fn get(&self, i: usize) -> &[u8] {
        match &self.fixed {
            Some(p) => p,
            None => &self.slots[i],
        }
    }

    /// The payloads of the last batch, to stamp `--seq` headers into.
    pub fn slots_mut(&mut self, n: usize) -> &mut [Vec<u8>] {
        &mut self.slots[..n]
    }
}

/// Where the payload comes from, before anything is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// MESSAGE words, decoded.
    Message(Vec<u8>),
    /// `--file PATH`, read at start.
    File(PathBuf),
    /// `--size N`, generated.
    Size(usize),
    /// `--whole`: all of stdin.
    Whole,
    /// Stdin, one datagram per line (the default).
    Lines,
    /// `--replay FILE`, with its `--match` filters.
    Replay(PathBuf, Vec<crate::wire::capture::Match>),
}

impl Source<io::Stdin> {
    /// The source of `payload`, reading `--file` or `--whole` stdin now (bounded), with
    /// room for a `--seq` header. `None` when a signal came while waiting for stdin.
    pub fn open(
        payload: &Payload,
        encoding: Encoding,
        seq: bool,
        target: SocketAddr,
        signals: &Signals,
    ) -> anyhow::Result<Option<Source>> {
        let fixed = |bytes: Vec<u8>| Source::fixed(bytes, target);
        let decoded = |raw: Vec<u8>, what: String| {
            decode(&raw, encoding)
                .map(|b| with_seq_room(b, seq))
                .map_err(|e| usage!("invalid {what}: {e}"))
        };
        let source = match payload {
            Payload::Message(bytes) => fixed(bytes.clone()),
            Payload::Size(n) => fixed(generated(*n)),
            Payload::File(path) => {
                let raw = read_file("--file", path, &target, encoding)?;
                let bytes = decoded(raw, format!("--file {}", path.display()))?;
                check_size(bytes.len(), &target).map_err(|e| usage!("{e}"))?;
                fixed(bytes)
            }
            Payload::Whole => {
                // SA_RESTART handlers: stdin is read only once poll says it is readable, so a
                // signal while it is silent still ends the run.
                match signals.wait(Some(libc::STDIN_FILENO), None) {
                    Ok(Wake::Signal(_)) => return Ok(None),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(IoError(e)).context("failed to wait for stdin")
                        )
                    }
                }
                let raw = read_whole(io::stdin().lock(), &target, encoding)?;
                let bytes = decoded(raw, "stdin".to_string())?;
                check_size(bytes.len(), &target).map_err(|e| usage!("{e}"))?;
                fixed(bytes)
            }
            Payload::Lines => Source::lines(io::stdin(), encoding, seq, target),
            Payload::Replay(path, matches) => Source::replay(
                crate::wire::capture::CaptureReader::open(path, matches.clone())?,
                target,
            ),
        };
        Ok(Some(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[test]
    fn lines_batch_while_buffered_and_report_the_bad_line_after_the_good_ones() {
        let mut s = Source::lines(&b"a\nb\nzz\nc\n"[..], Encoding::Hex, false, target());
        let b = s.fill(64).unwrap();
        // "a" is odd hex: the first line is already the error.
        assert_eq!(b.len, 0);
        assert!(format!("{:#}", b.error.unwrap()).contains("line 1"));
        let mut s = Source::lines(&b"x\ny\n"[..], Encoding::Text, true, target());
        let b = s.fill(64).unwrap();
        assert_eq!((b.len, b.eof), (2, false));
        assert_eq!(s.get(1).len(), seq::HEADER_LEN + 1);
        assert_eq!(s.get(1)[seq::HEADER_LEN..], *b"y");
        let b = s.fill(64).unwrap();
        assert_eq!((b.len, b.eof), (0, true));
    }

    #[test]
    fn an_oversize_line_is_named_by_its_number() {
        let input = [&b"ok\n"[..], &vec![b'x'; 70_000], b"\n"].concat();
        let mut s = Source::lines(&input[..], Encoding::Text, false, target());
        let b = s.fill(64).unwrap();
        assert_eq!(b.len, 1);
        let e = format!("{:#}", b.error.unwrap());
        assert!(e.contains("line 2") && e.contains("65507"), "{e}");
    }

    #[test]
    fn fixed_payloads_repeat() {
        let mut s: Source<&[u8]> = Source::fixed(b"hi".to_vec(), target());
        assert!(s.is_ready());
        assert_eq!(s.get(5), b"hi");
        assert_eq!(s.fill(10).unwrap().len, 10);
        assert_eq!(s.fixed_payload(), Some(&b"hi"[..]));
    }

    #[test]
    fn whole_input_is_bounded() {
        let t = target();
        assert_eq!(
            read_whole(&b"a\nb"[..], &t, Encoding::Text).unwrap(),
            b"a\nb"
        );
        let e = read_whole(io::repeat(0), &t, Encoding::Text).unwrap_err();
        assert!(
            format!("{e:#}").contains(
                "stdin (--whole) is at least 65508 bytes: larger than the IPv4 UDP limit"
            ),
            "{e:#}"
        );
    }
}
