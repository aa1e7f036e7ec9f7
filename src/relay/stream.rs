//! One session's byte stream (SPEC §10): a TCP connection, a child's stdin and stdout
//! (`--to-exec`), or dgram's own (`relay -`). Non-blocking both ways: frames read are
//! decoded as their bytes come; frames to write wait in a bounded buffer (and, while a
//! connection is being set up, in a bounded queue) and leave as the peer takes them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::net::endpoint::Endpoint;
use crate::wire::framing::{self, Decoder};

/// How much a stream may hold back, from the flags.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Bytes of frames waiting for the peer to read (`--stream-buffer`).
    pub buffer: usize,
    /// Datagrams waiting for the connection (`--stream-queue`).
    pub queue: usize,
}

/// Why a datagram was not queued on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Longer than a frame can say.
    TooLarge,
    /// The buffer (or, while connecting, the queue) is full.
    Full,
}

/// What a read found.
#[derive(Debug)]
pub enum Got {
    /// Bytes fed to the decoder.
    Bytes,
    /// Nothing more for now.
    Empty,
    /// The peer closed its side.
    Closed,
}

/// Where the bytes go.
enum Io {
    Tcp(TcpStream),
    /// What dgram reads and what it writes: a child's stdout and stdin, or its own stdin
    /// and stdout.
    Pipes {
        input: File,
        output: File,
        /// The child, killed with its process group when the stream is dropped.
        child: Option<Child>,
        /// dgram's own stdio: whether each was non-blocking before, to put back.
        restore: Option<(bool, bool)>,
    },
}

/// A framed stream and what waits on it.
pub struct Stream {
    /// How the stream is shown: `tcp://ADDR`, `exec:PID`, `stdio`.
    pub name: Endpoint,
    io: Io,
    /// Frames read, as their bytes came.
    pub decoder: Decoder,
    /// Frames to write, from `at` on.
    out: Vec<u8>,
    at: usize,
    /// Until when the connection may take to be set up (None: it is).
    pub connecting: Option<Instant>,
    /// Datagrams queued while connecting.
    queued: usize,
    /// Whether the poller reports room to write (see [`Stream::wants_write`]).
    pub armed: bool,
    /// The poller's tokens for the read and write descriptors (the same for TCP).
    pub tokens: (u64, u64),
}

impl Stream {
    fn new(name: Endpoint, io: Io) -> Stream {
        Stream {
            name,
            io,
            decoder: Decoder::new(),
            out: Vec::new(),
            at: 0,
            connecting: None,
            queued: 0,
            armed: false,
            tokens: (0, 0),
        }
    }

    /// A connection to `to`, begun and not waited for: ready to write once set up, by
    /// `deadline` or failed.
    pub fn connect(to: SocketAddr, deadline: Instant) -> io::Result<Stream> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&to.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut s = Stream::new(Endpoint::Tcp(to), Io::Tcp(socket.into()));
        s.connecting = Some(deadline);
        Ok(s)
    }

    /// An accepted connection from `peer`.
    pub fn accepted(conn: TcpStream, peer: SocketAddr) -> io::Result<Stream> {
        conn.set_nonblocking(true)?;
        conn.set_nodelay(true)?;
        Ok(Stream::new(Endpoint::Tcp(peer), Io::Tcp(conn)))
    }

    /// `/bin/sh -c command` in its own process group, its stdin and stdout the stream,
    /// its stderr dgram's.
    pub fn exec(command: &str) -> io::Result<Stream> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both were asked to be piped")
        };
        let (input, output) = (
            File::from(OwnedFd::from(stdout)),
            File::from(OwnedFd::from(stdin)),
        );
        crate::net::sys::set_nonblocking(input.as_raw_fd(), true)?;
        crate::net::sys::set_nonblocking(output.as_raw_fd(), true)?;
        let pid = child.id();
        let io = Io::Pipes {
            input,
            output,
            child: Some(child),
            restore: None,
        };
        Ok(Stream::new(Endpoint::Exec(pid), io))
    }

    /// dgram's own stdin and stdout (non-blocking until dropped).
    pub fn stdio() -> io::Result<Stream> {
        let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let restore = (
            crate::net::sys::set_nonblocking(input.as_raw_fd(), true)?,
            crate::net::sys::set_nonblocking(output.as_raw_fd(), true)?,
        );
        let io = Io::Pipes {
            input,
            output,
            child: None,
            restore: Some(restore),
        };
        Ok(Stream::new(Endpoint::Stdio, io))
    }

    /// The descriptor frames are read from.
    pub fn read_fd(&self) -> RawFd {
        match &self.io {
            Io::Tcp(s) => s.as_raw_fd(),
            Io::Pipes { input, .. } => input.as_raw_fd(),
        }
    }

    /// The descriptor frames are written to (the same as [`Stream::read_fd`] for TCP).
    pub fn write_fd(&self) -> RawFd {
        match &self.io {
            Io::Tcp(s) => s.as_raw_fd(),
            Io::Pipes { output, .. } => output.as_raw_fd(),
        }
    }

    /// The stream's own address, for a TCP stream (what a pcap shows of the relay's side).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.io {
            Io::Tcp(s) => s.local_addr().ok(),
            Io::Pipes { .. } => None,
        }
    }

    /// Read what the peer sent into the decoder, through `scratch`.
    pub fn read(&mut self, scratch: &mut [u8]) -> io::Result<Got> {
        let got = match &mut self.io {
            Io::Tcp(s) => s.read(scratch),
            Io::Pipes { input, .. } => input.read(scratch),
        };
        match got {
            Ok(0) => Ok(Got::Closed),
            Ok(n) => {
                self.decoder.feed(&scratch[..n]);
                Ok(Got::Bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Got::Bytes),
            Err(e) => Err(e),
        }
    }

    /// Queue `datagram` as a frame, within `limits`; [`Stream::flush`] sends it.
    pub fn push(&mut self, datagram: &[u8], limits: StreamLimits) -> Result<(), Refused> {
        if datagram.len() > framing::MAX_FRAME {
            return Err(Refused::TooLarge);
        }
        if self.connecting.is_some() && self.queued >= limits.queue {
            return Err(Refused::Full);
        }
        // An empty buffer takes any one frame; past that, the limit holds.
        let waiting = self.waiting();
        if waiting > 0 && waiting + framing::HEADER + datagram.len() > limits.buffer {
            return Err(Refused::Full);
        }
        framing::encode_into(datagram, &mut self.out).map_err(|_| Refused::TooLarge)?;
        if self.connecting.is_some() {
            self.queued += 1;
        }
        Ok(())
    }

    /// Bytes of frames not yet taken by the peer.
    pub fn waiting(&self) -> usize {
        self.out.len() - self.at
    }

    /// Datagrams queued while connecting (dropped with the stream if it fails).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether the poller should report room to write: a connection being set up, or
    /// frames waiting.
    pub fn wants_write(&self) -> bool {
        self.connecting.is_some() || self.waiting() > 0
    }

    /// The connection is writable: set up, or failed (its error).
    pub fn connected(&mut self) -> io::Result<()> {
        if let Io::Tcp(s) = &self.io {
            if let Some(e) = s.take_error()? {
                return Err(e);
            }
            // Writable with no error yet can still be a refused connection on some
            // systems: a peer address says it is set up.
            s.peer_addr()?;
        }
        self.connecting = None;
        self.queued = 0;
        Ok(())
    }

    /// Write what the peer will take now; an error ends the stream.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.connecting.is_some() {
            return Ok(());
        }
        while self.at < self.out.len() {
            let rest = &self.out[self.at..];
            let wrote = match &mut self.io {
                Io::Tcp(s) => s.write(rest),
                Io::Pipes { output, .. } => output.write(rest),
            };
            match wrote {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
        } else if self.at > self.out.capacity() / 2 {
            // Half the buffer is written: move the rest to the front, so it never grows
            // past the limit plus one datagram.
            self.out.drain(..self.at);
            self.at = 0;
        }
        Ok(())
    }

    /// How the child ended, if it has (`exit status 3`, `signal 9`).
    pub fn exit_status(&mut self) -> Option<String> {
        let Io::Pipes {
            child: Some(child), ..
        } = &mut self.io
        else {
            return None;
        };
        child.try_wait().ok().flatten().map(|s| s.to_string())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Io::Pipes {
            child,
            restore,
            input,
            output,
        } = &mut self.io
        {
            if let Some(child) = child {
                crate::net::sys::kill_group(child.id());
                let _ = child.wait();
            }
            // The copies share stdin's and stdout's open files: put back what was found.
            if let Some((was_in, was_out)) = *restore {
                let _ = crate::net::sys::set_nonblocking(input.as_raw_fd(), was_in);
                let _ = crate::net::sys::set_nonblocking(output.as_raw_fd(), was_out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    const LIMITS: StreamLimits = StreamLimits {
        buffer: 100,
        queue: 2,
    };

    /// A stream connected to a listener the test holds, and the test's end of it.
    fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let mut s = Stream::connect(at, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(s.name, Endpoint::Tcp(at));
        let (peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Connected once the handshake is through (the accept says it is).
        s.connected().unwrap();
        (s, peer)
    }

    #[test]
    fn while_connecting_the_queue_holds_n_datagrams_then_they_leave_framed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let mut s = Stream::connect(at, Instant::now() + Duration::from_secs(5)).unwrap();
        assert!(s.wants_write(), "a connection to finish");
        assert_eq!(s.push(b"a", LIMITS), Ok(()));
        assert_eq!(s.push(b"bc", LIMITS), Ok(()));
        assert_eq!(
            s.push(b"d", LIMITS),
            Err(Refused::Full),
            "past --stream-queue"
        );
        assert_eq!(s.queued(), 2);
        s.flush().unwrap();
        assert_eq!(
            s.waiting(),
            7,
            "nothing is written before the connection is up"
        );
        let (mut peer, _) = listener.accept().unwrap();
        s.connected().unwrap();
        assert_eq!(s.queued(), 0);
        s.flush().unwrap();
        assert!(!s.wants_write());
        let mut got = [0u8; 7];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, [0, 1, b'a', 0, 2, b'b', b'c']);
    }

    #[test]
    fn a_connection_that_fails_at_once_is_an_error_not_a_stream_connecting() {
        // No route to a multicast group over TCP: refused locally, nothing sent.
        let to = SocketAddr::from(([224, 0, 0, 1], 80));
        assert!(Stream::connect(to, Instant::now() + Duration::from_secs(5)).is_err());
    }

    #[test]
    fn tcp_reads_and_writes_one_descriptor_pipes_two() {
        let (s, _peer) = pair();
        assert_eq!(s.read_fd(), s.write_fd());
        assert!(s.read_fd() > 2, "a socket of its own, not stdio");
        assert!(s.local_addr().is_some_and(|a| a.ip().is_loopback()));
        let c = Stream::exec("cat").unwrap();
        assert_ne!(c.read_fd(), c.write_fd());
        assert!(c.read_fd() > 2 && c.write_fd() > 2);
        assert_eq!(c.local_addr(), None);
    }

    #[test]
    fn the_buffer_takes_one_frame_of_any_size_then_holds_its_limit() {
        let (mut s, _peer) = pair();
        assert_eq!(
            s.push(&[1; 150], LIMITS),
            Ok(()),
            "an empty buffer takes any frame"
        );
        assert_eq!(s.push(&[2; 1], LIMITS), Err(Refused::Full));
        assert_eq!(s.waiting(), 152);
        s.flush().unwrap();
        assert_eq!(s.waiting(), 0);
        assert_eq!(s.push(&[3; 48], LIMITS), Ok(()));
        assert_eq!(s.push(&[4; 48], LIMITS), Ok(()), "100 bytes: at the limit");
        assert_eq!(s.push(&[], LIMITS), Err(Refused::Full), "102: past it");
        assert_eq!(
            s.push(&vec![0; framing::MAX_FRAME + 1], LIMITS),
            Err(Refused::TooLarge)
        );
        s.flush().unwrap();
        assert_eq!(s.push(&[5; 10], LIMITS), Ok(()));
        assert_eq!(
            s.push(&[6; 87], LIMITS),
            Err(Refused::Full),
            "12 + 89 is past 100"
        );
        assert_eq!(s.push(&[6; 86], LIMITS), Ok(()), "12 + 88: at it");
        s.flush().unwrap();
        let roomy = StreamLimits {
            buffer: 1 << 20,
            queue: 1,
        };
        assert_eq!(
            s.push(&vec![7; framing::MAX_FRAME], roomy),
            Ok(()),
            "the largest frame"
        );
    }

    #[test]
    fn a_reset_connection_is_an_error_on_read() {
        let (mut s, peer) = pair();
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer); // an RST, not a FIN
        let mut scratch = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(Instant::now() < deadline, "no error after the reset");
            match s.read(&mut scratch) {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                    break;
                }
                Ok(Got::Closed) => panic!("a reset read as a clean close"),
                Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    #[test]
    fn frames_read_whole_and_a_closed_peer_is_seen() {
        let (mut s, mut peer) = pair();
        peer.write_all(&[0, 2, b'h', b'i', 0, 0, 0, 3, b'x'])
            .unwrap();
        let mut scratch = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        while frames.len() < 2 {
            assert!(Instant::now() < deadline);
            s.read(&mut scratch).unwrap();
            while let Some(f) = s.decoder.next_frame() {
                frames.push(f.to_vec());
            }
        }
        assert_eq!(frames, [b"hi".to_vec(), vec![]]);
        assert_eq!(s.decoder.pending(), 3, "a frame begun");
        drop(peer);
        loop {
            assert!(Instant::now() < deadline);
            if let Got::Closed = s.read(&mut scratch).unwrap() {
                break;
            }
        }
    }

    #[test]
    fn a_slow_peer_leaves_bytes_waiting_and_asks_for_room_to_write() {
        let (mut s, mut peer) = pair();
        let big = StreamLimits {
            buffer: 64 << 20,
            queue: 1,
        };
        for _ in 0..200 {
            s.push(&[9; 60_000], big).unwrap();
        }
        s.flush().unwrap();
        assert!(s.waiting() > 0, "12 MB does not fit the socket's buffers");
        assert!(s.waiting() < 200 * 60_002, "part of it went");
        assert!(s.wants_write());
        // The peer reads it all: everything leaves, in order.
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 20];
        while total < 200 * 60_002 {
            s.flush().unwrap();
            total += peer.read(&mut buf).unwrap();
        }
        s.flush().unwrap();
        assert_eq!(s.waiting(), 0);
        assert!(!s.wants_write());
    }

    #[test]
    #[cfg(target_os = "linux")] // reads /proc
    fn a_childs_stdio_is_a_stream_and_the_child_dies_with_it() {
        let mut s = Stream::exec("cat").unwrap();
        let Endpoint::Exec(pid) = s.name else {
            panic!("{}", s.name)
        };
        s.push(b"echoed", LIMITS).unwrap();
        s.flush().unwrap();
        let mut scratch = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(5);
        let frame = loop {
            assert!(Instant::now() < deadline);
            s.read(&mut scratch).unwrap();
            if let Some(f) = s.decoder.next_frame() {
                break f.to_vec();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(frame, b"echoed");
        assert_eq!(s.exit_status(), None, "cat still runs");
        drop(s);
        // Reaped: no such process any more (not even a zombie).
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
