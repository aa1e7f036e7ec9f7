//! Two-way listen, as `nc -u -l` (SPEC §4 listen): each line read from stdin is a
//! datagram sent from the listening socket to the peer of the most recent datagram (or
//! the one `--to` names). Stdin is read only when the poll says it is readable, one line
//! at a time and then only what is already buffered, so the receive loop never waits on
//! a half-typed line from a terminal.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use tracing::warn;

use crate::base::error::describe_io;
use crate::net::sys::{send_replies, Reply, SendScratch};
use crate::wire::codec::{decode, Encoding};
use crate::wire::payload::{check_size, Lines};

/// How typed lines are sent: their encoding (send's `-x`, `--base64`, `-e`), and a fixed
/// destination (`--to`) or none (the peer that spoke last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TalkConfig {
    pub encoding: Encoding,
    pub to: Option<SocketAddr>,
}

/// Lines from stdin to a peer.
pub struct Talk {
    config: TalkConfig,
    lines: Option<Lines<io::Stdin>>,
    /// The peer of the most recent admitted datagram.
    last_peer: Option<SocketAddr>,
    /// The destination the last line went to: a new one is announced.
    replying_to: Option<SocketAddr>,
    line: Vec<u8>,
    scratch: SendScratch,
    /// Lines that went, and lines that could not (no peer yet, bad encoding, too large,
    /// a send error).
    pub sent: u64,
    pub not_sent: u64,
}

impl Talk {
    /// Talk back through stdin.
    pub fn new(config: TalkConfig) -> Talk {
        Talk {
            config,
            lines: Some(Lines::new(io::stdin())),
            last_peer: None,
            replying_to: None,
            line: Vec::new(),
            scratch: SendScratch::default(),
            sent: 0,
            not_sent: 0,
        }
    }

    /// Stdin's descriptor while it is still open.
    pub fn fd(&self) -> Option<RawFd> {
        self.lines.as_ref().map(|_| libc::STDIN_FILENO)
    }

    /// A datagram from `peer` passed the filters: the next line goes to it (unless
    /// `--to` fixed the destination).
    pub fn heard(&mut self, peer: SocketAddr) {
        self.last_peer = Some(peer);
    }

    /// Stdin is readable: send the line it has, and every whole line already buffered.
    /// End of input stops reading, not listening.
    pub fn readable(&mut self, socket: RawFd, ipv6_socket: bool) {
        loop {
            let Some(lines) = &mut self.lines else {
                return;
            };
            match lines.next_into(&mut self.line) {
                Ok(true) => {}
                Ok(false) => {
                    self.lines = None;
                    return;
                }
                Err(e) => {
                    warn!("stopped reading stdin: {}", describe_io(&e));
                    self.lines = None;
                    return;
                }
            }
            let number = lines.number();
            let more = lines.has_buffered_line();
            self.send_line(number, socket, ipv6_socket);
            if !more {
                return;
            }
        }
    }

    fn send_line(&mut self, number: u64, socket: RawFd, ipv6_socket: bool) {
        let Some(to) = self.config.to.or(self.last_peer) else {
            self.not_sent += 1;
            warn!("line {number} not sent: no peer yet (a datagram from one says where to send, or --to)");
            return;
        };
        let payload = match self.config.encoding {
            Encoding::Text => std::mem::take(&mut self.line),
            encoding => match decode(&self.line, encoding) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.not_sent += 1;
                    warn!("line {number} not sent: {e}");
                    return;
                }
            },
        };
        if let Err(e) = check_size(payload.len(), &to) {
            self.not_sent += 1;
            warn!("line {number} not sent: {e}");
            return;
        }
        if self.replying_to != Some(to) {
            // Said as the announcement is, whatever the log level: who gets what is typed.
            let _ = io::stderr().write_all(format!("replying to {to}\n").as_bytes());
            self.replying_to = Some(to);
        }
        let reply = Reply {
            payload: &payload,
            to,
            from: None,
        };
        match send_replies(socket, ipv6_socket, [reply], &mut self.scratch) {
            Ok(1) => self.sent += 1,
            Ok(_) => self.not_sent += 1,
            Err(e) => {
                self.not_sent += 1;
                warn!("line {number} to {to} not sent: {}", describe_io(&e));
            }
        }
        self.line = payload;
    }
}
