//! The encodings a payload is written in and shown in (SPEC §3, §5): text, hex, base64
//! and escapes, decoded for sending (MESSAGE, stdin lines, files, `--respond`, `--expect`)
//! and rendered for output (`hex`, `base64`, and `text`'s safe line). DNS is the other
//! codec, in [`crate::wire::dns`].

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// How MESSAGE words, stdin lines and files are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes as given.
    #[default]
    Text,
    /// Hex digits; whitespace and `0x` prefixes ignored.
    Hex,
    /// Standard base64, padding optional, whitespace ignored.
    Base64,
    /// Text with `\n \r \t \0 \\ \xHH` escapes.
    Escapes,
}

/// Standard alphabet, accepting input with or without `=` padding.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode `input` written in `encoding` into the datagram's bytes.
pub fn decode(input: &[u8], encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Text => Ok(input.to_vec()),
        Encoding::Hex => decode_hex(input),
        Encoding::Base64 => {
            let compact: Vec<u8> = input
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            BASE64_LENIENT
                .decode(&compact)
                .map_err(|e| format!("invalid base64: {e}"))
        }
        Encoding::Escapes => unescape(input),
    }
}

/// Encode bytes so that [`decode`] gives them back (the inverse, used by tests and
/// by anything that shows a payload in the form it was typed).
pub fn encode(bytes: &[u8], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Text => bytes.to_vec(),
        Encoding::Hex => hex(bytes).into_bytes(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes(),
        Encoding::Escapes => {
            let mut out = Vec::with_capacity(bytes.len());
            for &b in bytes {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0 => out.extend_from_slice(b"\\0"),
                    0x20..=0x7e => out.push(b),
                    _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                }
            }
            out
        }
    }
}

/// Lower-case hex of `bytes`, no separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Lower-case hex of `bytes`, appended to `out`.
pub fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut digits = Vec::with_capacity(input.len());
    for token in input
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
    {
        let token = token
            .strip_prefix(b"0x")
            .or_else(|| token.strip_prefix(b"0X"))
            .unwrap_or(token);
        for &b in token {
            match hex_value(b) {
                Some(v) => digits.push(v),
                None => {
                    return Err(format!(
                        "invalid hex digit '{}'",
                        String::from_utf8_lossy(&[b]).escape_debug()
                    ))
                }
            }
        }
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}): every byte takes two",
            digits.len()
        ));
    }
    Ok(digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
}

fn unescape(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let byte = match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hi = bytes.next().and_then(hex_value);
                let lo = bytes.next().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => hi << 4 | lo,
                    _ => return Err("invalid escape: \\x needs two hex digits, as in \\x0a".into()),
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape '\\{}' (known: \\n \\r \\t \\0 \\\\ \\xHH)",
                    String::from_utf8_lossy(&[other]).escape_debug()
                ))
            }
            None => return Err("invalid escape: a lone '\\' at the end".into()),
        };
        out.push(byte);
    }
    Ok(out)
}

/// Characters that are invisible or change the direction of the text around them:
/// shown as they are, a datagram could display reversed or hide words (SPEC §5).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Append `payload` to `out` as one safe line: valid UTF-8 as it is, except control
/// characters (C0, DEL and C1), which become `\n`, `\r`, `\t` or `\xHH` of their bytes,
/// and invisible or direction-changing characters, which become `\u{202e}`; invalid
/// UTF-8 becomes `\xHH` per byte. No escape sequence can reach the terminal, and what is
/// shown reads in the order it was sent.
pub fn escape_text(payload: &[u8], out: &mut Vec<u8>) {
    fn hex_byte(b: u8, out: &mut Vec<u8>) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'x',
            DIGITS[usize::from(b >> 4)],
            DIGITS[usize::from(b & 0xf)],
        ]);
    }
    for chunk in payload.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        hex_byte(b, out);
                    }
                }
                c if is_invisible(c) => {
                    use std::io::Write;
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            hex_byte(b, out);
        }
    }
}

/// Standard base64 of `bytes`, padded, appended to `out`.
pub fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let n = base64::encoded_len(bytes.len(), true).expect("a datagram's base64 fits");
    out.resize(start + n, 0);
    base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("the slice has the encoded length");
}

/// Standard base64 of `bytes`, padded, as a `Display` that writes it where it goes.
pub fn base64_display(bytes: &[u8]) -> impl std::fmt::Display + '_ {
    base64::display::Base64Display::new(bytes, &base64::engine::general_purpose::STANDARD)
}

/// Standard base64 of `bytes`, padded.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_escaped() {
        // guards: U+202E showed as is, so a datagram could display reversed.
        let mut out = Vec::new();
        escape_text(
            "abc\u{202e}fed\u{200b}x\u{feff}\u{2066}é".as_bytes(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "abc\\u{202e}fed\\u{200b}x\\u{feff}\\u{2066}é"
        );
        for c in ['\u{200a}', '\u{2010}', '\u{2029}', '\u{2070}', '\u{202f}'] {
            let mut out = Vec::new();
            escape_text(c.to_string().as_bytes(), &mut out);
            assert_eq!(out, c.to_string().into_bytes(), "{c:?} is visible, kept");
        }
        for c in ['\u{200b}', '\u{200f}', '\u{202a}', '\u{2069}'] {
            let mut out = Vec::new();
            escape_text(c.to_string().as_bytes(), &mut out);
            assert_eq!(out, format!("\\u{{{:x}}}", u32::from(c)).into_bytes());
        }
    }
    use proptest::prelude::*;

    #[test]
    fn hex_ignores_whitespace_and_0x() {
        assert_eq!(
            decode(b"de ad\tBE\nef", Encoding::Hex),
            Ok(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(
            decode(b"0x01 0X02 0x0304", Encoding::Hex),
            Ok(vec![1, 2, 3, 4])
        );
        assert_eq!(decode(b"", Encoding::Hex), Ok(vec![]));
        assert!(decode(b"abc", Encoding::Hex)
            .unwrap_err()
            .contains("odd number"));
        assert!(decode(b"zz", Encoding::Hex).unwrap_err().contains("'z'"));
    }

    #[test]
    fn escapes_decode_and_bad_ones_are_named() {
        assert_eq!(
            decode(br"a\n\r\t\0\\\x41\xff", Encoding::Escapes),
            Ok(b"a\n\r\t\0\\A\xff".to_vec())
        );
        assert!(decode(br"\x4", Encoding::Escapes)
            .unwrap_err()
            .contains("two hex digits"));
        assert!(decode(br"\xg0", Encoding::Escapes).is_err());
        assert!(decode(br"\q", Encoding::Escapes)
            .unwrap_err()
            .contains("'\\q'"));
        assert!(decode(br"end\", Encoding::Escapes)
            .unwrap_err()
            .contains("lone"));
    }

    #[test]
    fn escapes_encode_each_byte_in_its_shortest_typed_form() {
        assert_eq!(
            encode(b"a\\\n\r\t\0 ~\x1f\x7f\xff", Encoding::Escapes),
            br"a\\\n\r\t\0 ~\x1f\x7f\xff".to_vec()
        );
        assert_eq!(encode(b"", Encoding::Escapes), b"");
    }

    #[test]
    fn base64_takes_padding_or_not_and_wrapped_lines() {
        assert_eq!(decode(b"aGk=", Encoding::Base64), Ok(b"hi".to_vec()));
        assert_eq!(decode(b"aGk", Encoding::Base64), Ok(b"hi".to_vec()));
        assert_eq!(decode(b"aG\nk=\n", Encoding::Base64), Ok(b"hi".to_vec()));
        assert!(decode(b"a*Gk", Encoding::Base64)
            .unwrap_err()
            .starts_with("invalid base64"));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for enc in [Encoding::Text, Encoding::Hex, Encoding::Base64, Encoding::Escapes] {
                prop_assert_eq!(decode(&encode(&bytes, enc), enc), Ok(bytes.clone()));
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for enc in [Encoding::Hex, Encoding::Base64, Encoding::Escapes] {
                let _ = decode(&bytes, enc);
            }
        }

    }
}
