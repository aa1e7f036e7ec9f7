//! Bytes on the wire: payload encodings, the `--seq` header, DNS messages, captures read
//! (pcap, pcapng) and written. Pure code on bytes and addresses: uses `base` and `net`'s
//! address types, never a socket.

pub mod capture;
pub mod codec;
pub mod dns;
pub mod framing;
pub mod payload;
pub mod pcap;
pub mod probes;
pub mod seq;
