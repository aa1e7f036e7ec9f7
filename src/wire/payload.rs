//! Payloads on the send side (SPEC §3): the UDP size limits, generated payloads, reads
//! bounded by what one datagram can carry, and stdin split into lines. The encodings
//! are [`crate::wire::codec`]'s.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;

use crate::wire::codec::Encoding;

/// Largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6: 65,535 − 8 (UDP header); the IPv6 header is not counted
/// in its payload length.
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// The largest payload a datagram to `dest` can carry.
pub fn max_payload(dest: &SocketAddr) -> usize {
    if dest.is_ipv4() {
        MAX_PAYLOAD_V4
    } else {
        MAX_PAYLOAD_V6
    }
}

/// `Err` naming the size and the limit when `len` does not fit one datagram to `dest`.
pub fn check_size(len: usize, dest: &SocketAddr) -> Result<(), String> {
    let limit = max_payload(dest);
    if len > limit {
        let family = if dest.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!(
            "payload of {len} bytes is larger than the {family} UDP limit of {limit} bytes"
        ));
    }
    Ok(())
}

/// A generated payload of `size` bytes: a printable, repeating pattern, so a payload shown
/// with `--format line` or `hexdump` is recognisable.
pub fn generated(size: usize) -> Vec<u8> {
    const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    PATTERN.iter().copied().cycle().take(size).collect()
}

/// The most input bytes that can write one datagram of `limit` bytes in `encoding`:
/// the limit itself for text, and room for separators, `0x` prefixes and `\xHH` escapes
/// otherwise. Input beyond it is refused unread, so no input makes dgram hold more than
/// it could ever send.
pub fn input_cap(limit: usize, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Text => limit,
        _ => limit * 6 + 64 * 1024,
    }
}

/// Read all of `reader` if it holds at most `cap` bytes; `Ok(None)` when it holds more,
/// having read no more than `cap + 1` of them.
pub fn read_bounded<R: Read>(reader: R, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut all = Vec::new();
    reader.take(cap as u64 + 1).read_to_end(&mut all)?;
    Ok((all.len() <= cap).then_some(all))
}

/// Stdin split into lines, one datagram each: `\n` or `\r\n` removed, a last line without
/// a newline still returned. A line longer than the limit is not read to its end: it is
/// returned cut, and [`Lines::was_cut`] says so.
pub struct Lines<R> {
    reader: BufReader<R>,
    number: u64,
    max: usize,
    cut: bool,
}

impl<R: Read> Lines<R> {
    /// Lines of `inner`, read through a 256 KiB buffer, with no length limit.
    pub fn new(inner: R) -> Self {
        Self::with_max(inner, usize::MAX / 2)
    }

    /// Lines of `inner` of at most `max` bytes each (line ending not counted).
    pub fn with_max(inner: R, max: usize) -> Self {
        Lines {
            reader: BufReader::with_capacity(256 * 1024, inner),
            number: 0,
            max,
            cut: false,
        }
    }

    /// Read the next line into `line` (cleared first). `Ok(false)` at end of input.
    pub fn next_into(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        line.clear();
        self.cut = false;
        // Room for the longest line and its `\r\n`; past that the line is too long.
        let room = self.max + 2;
        let mut ended = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                break;
            }
            let want = room - line.len();
            let (take, newline) = match buf.iter().take(want).position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len().min(want), false),
            };
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if newline {
                ended = true;
                break;
            }
            if line.len() >= room {
                self.cut = true;
                break;
            }
        }
        if line.is_empty() && !ended {
            return Ok(false);
        }
        if ended {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        self.cut |= line.len() > self.max;
        self.number += 1;
        Ok(true)
    }

    /// True when the line last returned was longer than the limit: it holds only the
    /// first bytes, and the rest of it was not read.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// The 1-based number of the line last returned.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// True when a whole line is already buffered, so reading it will not block.
    /// Batching stops when this is false: a line is never held back waiting for the next.
    pub fn has_buffered_line(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }
}

/// With `--seq`, room for the header in front of a message, a file or stdin.
pub fn with_seq_room(body: Vec<u8>, seq: bool) -> Vec<u8> {
    if seq {
        [vec![0; crate::wire::seq::HEADER_LEN], body].concat()
    } else {
        body
    }
}

/// MESSAGE words joined by single spaces, as bytes (arguments need not be UTF-8).
pub fn join_words(words: &[std::ffi::OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&os_bytes(w));
    }
    out
}

/// An argument's bytes (arguments need not be UTF-8).
pub fn os_bytes(s: &std::ffi::OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    s.as_os_str().as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    #[test]
    fn words_join_with_single_spaces() {
        let words: Vec<OsString> = ["a", "b c", ""].iter().map(OsString::from).collect();
        assert_eq!(join_words(&words), b"a b c ");
        assert_eq!(join_words(&[OsString::new()]), b"");
    }

    use crate::wire::codec::{decode, Encoding};
    use proptest::prelude::*;

    fn all_lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(input);
        let mut out = Vec::new();
        let mut line = Vec::new();
        while lines.next_into(&mut line).unwrap() {
            out.push(line.clone());
        }
        out
    }

    #[test]
    fn lines_strip_lf_and_crlf_and_keep_empty_and_unterminated_lines() {
        assert_eq!(
            all_lines(b"a\nb\r\n\nlast"),
            [&b"a"[..], b"b", b"", b"last"]
        );
        assert_eq!(all_lines(b"a\n"), [b"a"]);
        assert!(all_lines(b"").is_empty());
        assert_eq!(all_lines(b"\n"), [b""]);
        // A lone \r not before \n is data.
        assert_eq!(all_lines(b"a\rb\n"), [b"a\rb"]);
    }

    #[test]
    fn line_numbers_count_from_one_and_buffered_lines_are_seen() {
        let mut lines = Lines::new(&b"x\ny\n"[..]);
        let mut line = Vec::new();
        assert!(lines.next_into(&mut line).unwrap());
        assert_eq!(lines.number(), 1);
        assert!(lines.has_buffered_line());
        assert!(lines.next_into(&mut line).unwrap());
        assert!(!lines.has_buffered_line());
        assert_eq!(lines.number(), 2);
    }

    #[test]
    fn long_lines_are_cut_at_the_limit_and_not_read_further() {
        let input = [&b"abc\n"[..], &[b'x'; 100], b"\nlast\r\n"].concat();
        let mut lines = Lines::with_max(&input[..], 5);
        let mut line = Vec::new();
        assert!(lines.next_into(&mut line).unwrap());
        assert_eq!((&line[..], lines.was_cut()), (&b"abc"[..], false));
        assert!(lines.next_into(&mut line).unwrap());
        assert!(lines.was_cut());
        assert!(line.len() <= 7, "{} bytes held", line.len());
        assert_eq!(lines.number(), 2);
        // Exactly the limit, with a CRLF ending, is not cut.
        let mut lines = Lines::with_max(&b"12345\r\n123456\n"[..], 5);
        assert!(lines.next_into(&mut line).unwrap());
        assert_eq!((&line[..], lines.was_cut()), (&b"12345"[..], false));
        assert!(lines.next_into(&mut line).unwrap());
        assert_eq!((&line[..], lines.was_cut()), (&b"123456"[..], true));
        assert!(!lines.next_into(&mut line).unwrap());
    }

    /// A reader that hands out at most three bytes a read, after one EINTR.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupted: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.interrupted, true) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_line_read_in_pieces_is_still_cut_at_the_limit_and_eintr_is_retried() {
        let input = [&[b'x'; 100][..], b"\nok\n"].concat();
        let reader = Trickle {
            data: &input,
            interrupted: false,
        };
        let mut lines = Lines::with_max(reader, 5);
        let mut line = Vec::new();
        assert!(lines.next_into(&mut line).unwrap());
        assert!(lines.was_cut());
        assert!(line.len() <= 7, "{} bytes held", line.len());
        // Any other error is the caller's to see.
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::PermissionDenied.into())
            }
        }
        let e = Lines::new(Broken).next_into(&mut line).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn bounded_reads_stop_one_byte_past_the_cap() {
        assert_eq!(
            read_bounded(&b"hello"[..], 5).unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(read_bounded(&b"hello!"[..], 5).unwrap(), None);
        // An endless input is refused after cap + 1 bytes.
        assert_eq!(read_bounded(io::repeat(b'x'), 1000).unwrap(), None);
    }

    #[test]
    fn the_input_cap_holds_the_wordiest_typing_of_the_largest_datagram_and_no_more() {
        const L: usize = 65_507;
        assert_eq!(input_cap(L, Encoding::Text), L);
        for encoding in [Encoding::Hex, Encoding::Base64, Encoding::Escapes] {
            let cap = input_cap(L, encoding);
            // Room for "0xHH" and two separators a byte (`\xHH` is only four), then 64 KiB
            // of line breaks and indentation; and no more, so no input makes dgram hold
            // much more than it could send.
            assert_eq!(cap, 6 * L + 64 * 1024, "{encoding:?}");
        }
        let typed: Vec<u8> = (0..L).flat_map(|_| *b"0xab  ").collect();
        assert_eq!(decode(&typed, Encoding::Hex).unwrap().len(), L);
        assert!(typed.len() <= input_cap(L, Encoding::Hex));
    }

    #[test]
    fn limits_depend_on_the_family() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert!(check_size(65_507, &v4).is_ok());
        let e = check_size(65_508, &v4).unwrap_err();
        assert!(
            e.contains("65508") && e.contains("65507") && e.contains("IPv4"),
            "{e}"
        );
        assert!(check_size(65_527, &v6).is_ok());
        assert!(check_size(65_528, &v6).is_err());
    }

    #[test]
    fn generated_payloads_have_the_asked_size() {
        assert_eq!(generated(0), b"");
        assert_eq!(generated(3), b"012");
        assert_eq!(generated(65_507).len(), 65_507);
    }

    #[test]
    fn the_fuzz_corpus_replays_without_panics() {
        // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/payload.rs
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/payload");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the committed corpus") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for enc in [
                Encoding::Text,
                Encoding::Hex,
                Encoding::Base64,
                Encoding::Escapes,
            ] {
                let _ = decode(&bytes, enc);
            }
            assert!(all_lines(&bytes).iter().map(Vec::len).sum::<usize>() <= bytes.len());
            n += 1;
        }
        assert!(n > 50, "{n} corpus files");
    }

    proptest! {
        #[test]
        fn lines_rejoin_to_the_input(lines in proptest::collection::vec("[^\n\r]{0,8}", 0..8)) {
            let input = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let got = all_lines(input.as_bytes());
            let want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
