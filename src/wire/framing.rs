//! Datagrams over a byte stream (SPEC §10): each datagram is a 2-byte big-endian length,
//! then that many bytes, as DNS over TCP (RFC 1035 §4.2.2, RFC 7766) and mullvad's
//! udp-over-tcp frame them. A zero length is an empty datagram.
//!
//! The [`Decoder`] takes bytes as they come, split anywhere, several frames in one read,
//! and hands back each whole frame as a slice of its own buffer: in the steady state it
//! allocates nothing per frame.

/// The largest datagram a frame can carry: its length is a `u16`.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Bytes of the length before each datagram.
pub const HEADER: usize = 2;

/// A datagram longer than a frame can say ([`MAX_FRAME`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge(pub usize);

/// Append `datagram` to `out` as one frame.
pub fn encode_into(datagram: &[u8], out: &mut Vec<u8>) -> Result<(), TooLarge> {
    let len = u16::try_from(datagram.len()).map_err(|_| TooLarge(datagram.len()))?;
    out.reserve(HEADER + datagram.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(datagram);
    Ok(())
}

/// Frames out of a byte stream, as its bytes arrive.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`; what is before it has been handed out.
    start: usize,
}

impl Decoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes that arrived on the stream, in order.
    pub fn feed(&mut self, bytes: &[u8]) {
        // What was handed out goes before the buffer grows: the buffer holds at most a
        // partial frame and one read, so it stops growing once it has seen the largest.
        if self.start > 0
            && (self.start == self.buf.len() || self.buf.len() + bytes.len() > self.buf.capacity())
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's datagram, if the stream has brought all of it.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.start..];
        let (header, body) = rest.split_first_chunk::<HEADER>()?;
        let len = usize::from(u16::from_be_bytes(*header));
        if body.len() < len {
            return None;
        }
        let from = self.start + HEADER;
        self.start = from + len;
        Some(&self.buf[from..from + len])
    }

    /// Bytes of a frame begun and not finished: what a stream that ends now cuts off
    /// (counted as a partial frame, never delivered).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(datagrams: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for d in datagrams {
            encode_into(d, &mut out).unwrap();
        }
        out
    }

    fn drain(d: &mut Decoder) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while let Some(f) = d.next_frame() {
            got.push(f.to_vec());
        }
        got
    }

    #[test]
    fn a_frame_is_a_big_endian_length_and_the_bytes() {
        assert_eq!(frames(&[b"hi"]), [0, 2, b'h', b'i']);
        assert_eq!(frames(&[b""]), [0, 0]);
        let big = vec![7u8; 300];
        assert_eq!(&frames(&[&big])[..2], &[1, 44]);
        let mut out = Vec::new();
        assert_eq!(
            encode_into(&vec![0; MAX_FRAME + 1], &mut out),
            Err(TooLarge(MAX_FRAME + 1))
        );
        assert!(out.is_empty(), "nothing written for a datagram too large");
        assert!(encode_into(&vec![0; MAX_FRAME], &mut out).is_ok());
    }

    #[test]
    fn several_frames_in_one_read_and_one_frame_in_many() {
        let mut d = Decoder::new();
        d.feed(&frames(&[b"one", b"", b"three"]));
        assert_eq!(drain(&mut d), [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(d.pending(), 0);
        // Byte by byte: nothing until the last byte of each frame.
        for &b in &frames(&[b"slow"]) {
            assert!(d.next_frame().is_none());
            d.feed(&[b]);
        }
        assert_eq!(d.next_frame(), Some(&b"slow"[..]));
        // A stream that ends inside a frame leaves it pending, never delivered.
        d.feed(&[0, 9, b'p', b'a']);
        assert!(d.next_frame().is_none());
        assert_eq!(d.pending(), 4);
        d.feed(&[0]);
        assert_eq!(d.pending(), 5);
    }

    #[test]
    fn the_buffer_stops_growing_in_the_steady_state() {
        let mut d = Decoder::new();
        let chunk = frames(&[&[1u8; 1000], &[2u8; 1000]]);
        for _ in 0..10 {
            d.feed(&chunk);
            assert_eq!(drain(&mut d).len(), 2);
        }
        let cap = d.buf.capacity();
        for _ in 0..1000 {
            // Split across feeds: a frame's head in one read, its tail in the next.
            let (a, b) = chunk.split_at(1500);
            d.feed(a);
            assert_eq!(drain(&mut d).len(), 1);
            d.feed(b);
            assert_eq!(drain(&mut d).len(), 1);
        }
        assert_eq!(d.buf.capacity(), cap, "no growth once warm");
    }

    #[test]
    fn the_fuzz_corpus_replays_without_panics() {
        // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/framing.rs
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/framing");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the committed corpus") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let mut d = Decoder::new();
            d.feed(&bytes);
            let total: usize = drain(&mut d).iter().map(|f| f.len() + HEADER).sum();
            assert_eq!(total + d.pending(), bytes.len());
            n += 1;
        }
        assert!(n >= 2, "{n} corpus files");
    }

    proptest! {
        #[test]
        fn any_datagrams_split_anywhere_come_back_whole(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in proptest::collection::vec(0usize..2000, 0..10),
        ) {
            let refs: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
            let stream = frames(&refs);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                d.feed(&stream[from..cut]);
                from = cut;
                got.extend(drain(&mut d));
            }
            prop_assert_eq!(got, datagrams);
            prop_assert_eq!(d.pending(), 0);
        }
    }
}
