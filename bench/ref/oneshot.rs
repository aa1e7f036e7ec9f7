//! The start-up reference in Rust: the least a Rust program does to send one datagram
//! (std `UdpSocket::bind` + `send_to`), built with dgram's release profile (LTO, one
//! codegen unit, panic=abort, stripped). `oneshot HOST PORT MESSAGE`.
use std::net::UdpSocket;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: oneshot HOST PORT MESSAGE");
        std::process::exit(2);
    }
    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let port: u16 = args[2].parse().expect("port");
    socket
        .send_to(args[3].as_bytes(), (args[1].as_str(), port))
        .expect("send");
}
