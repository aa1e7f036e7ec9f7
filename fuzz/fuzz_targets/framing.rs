//! Fuzz the stream framing decoder (`dgram_cli::wire::framing`): any bytes, split at the
//! points the first bytes choose, decode to the same frames as fed whole, never panic,
//! and every frame re-encodes to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;

use dgram_cli::wire::framing::{encode_into, Decoder};

fuzz_target!(|data: &[u8]| {
    let (cuts, stream) = data.split_at(data.len().min(4));
    let decode = |splits: &[u8]| {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut from = 0;
        for &c in splits {
            let to = (from + usize::from(c)).min(stream.len());
            d.feed(&stream[from..to]);
            from = to;
            while let Some(f) = d.next_frame() {
                got.push(f.to_vec());
            }
        }
        d.feed(&stream[from..]);
        while let Some(f) = d.next_frame() {
            got.push(f.to_vec());
        }
        (got, d.pending())
    };
    let whole = decode(&[]);
    assert_eq!(decode(cuts), whole);
    let mut again = Vec::new();
    for f in &whole.0 {
        encode_into(f, &mut again).unwrap();
    }
    assert_eq!(again.len() + whole.1, stream.len());
    assert_eq!(&again[..], &stream[..again.len()]);
});
