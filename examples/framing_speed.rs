//! The stream decoder alone, for the benchmark (`bench/bench.py`, case `framing`): 64-byte
//! frames fed in 64 KiB reads, as a relay's stream read hands them over, beside a plain
//! copy of the same reads (this machine's memory bandwidth, the reference).
//! Prints `framing: bytes=N decode_s=T copy_s=T frames=F`.

use std::hint::black_box;
use std::time::Instant;

use dgram_cli::wire::framing::{encode_into, Decoder};

fn main() {
    let mut stream = Vec::new();
    let datagram = [0x5au8; 64];
    while stream.len() < 64 << 20 {
        encode_into(&datagram, &mut stream).expect("64 bytes fit a frame");
    }
    let (mut decode, mut copy, mut frames) = (f64::MAX, f64::MAX, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let mut d = Decoder::new();
        let mut n = 0u64;
        for read in stream.chunks(64 * 1024) {
            d.feed(read);
            while let Some(f) = d.next_frame() {
                n += black_box(f).len() as u64 / 64;
            }
        }
        decode = decode.min(t.elapsed().as_secs_f64());
        frames = n;
        let t = Instant::now();
        let mut buf = Vec::with_capacity(128 * 1024);
        for read in stream.chunks(64 * 1024) {
            buf.clear();
            buf.extend_from_slice(black_box(read));
            black_box(&buf);
        }
        copy = copy.min(t.elapsed().as_secs_f64());
    }
    println!(
        "framing: bytes={} decode_s={decode:.6} copy_s={copy:.6} frames={frames}",
        stream.len()
    );
}
