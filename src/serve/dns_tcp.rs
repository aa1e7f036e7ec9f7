//! A mock DNS server's TCP side (SPEC §4 listen as a responder, §10): on the same address
//! and port as its UDP socket, each connection's framed queries answered from the same
//! zone, whole (never TC), so a client's TC fallback works against it. Connections are
//! served by threads of their own, at most [`MAX_CONNECTIONS`] at once, each ending
//! after [`IDLE`] without a query; the UDP receive loop never waits for them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::wire::dns::zone::Zone;
use crate::wire::framing::{encode_into, Decoder};

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection with no query for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);

/// Serve `listener` from a thread of its own until the process ends.
pub fn serve_in_background(listener: TcpListener, zone: Zone) -> std::io::Result<()> {
    let zone = Arc::new(zone);
    let live = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if live.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                    live.fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(
                        "DNS over TCP: {MAX_CONNECTIONS} connections already; one refused"
                    );
                    continue;
                }
                let (conn_zone, conn_live) = (Arc::clone(&zone), Arc::clone(&live));
                let spawned = std::thread::Builder::new()
                    .name("dns-tcp-conn".into())
                    .spawn(move || {
                        answer_connection(stream, &conn_zone);
                        conn_live.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    live.fetch_sub(1, Ordering::Relaxed);
                }
            }
        })
        .map(drop)
}

/// Answer every whole framed query on `stream` until it closes, fails or idles.
fn answer_connection(mut stream: TcpStream, zone: &Zone) {
    if stream.set_nodelay(true).is_err() || stream.set_read_timeout(Some(IDLE)).is_err() {
        return;
    }
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        while let Some(query) = decoder.next_frame() {
            out.clear();
            if let Some(answer) = zone.answer_over_tcp(query) {
                if encode_into(&answer, &mut out).is_err() || stream.write_all(&out).is_err() {
                    return;
                }
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.feed(&buf[..n]),
        }
    }
}
