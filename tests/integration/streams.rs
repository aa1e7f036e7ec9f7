//! Datagrams over a byte stream (SPEC §10): `relay --to tcp://`, `relay tcp://`,
//! `--to-exec`, `relay -`; the framing on the wire, what a stream that fails or closes
//! does to its session, a slow reader, hostile bytes, and a thousand streams at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::{
    arrives_within, bin, json_last_line, peer, recv, released_port, run, Server, LIMIT,
};

/// A UDP relay on a port of its own to `--to tcp://upstream`, with `flags`.
fn udp_to_tcp(upstream: SocketAddr, flags: &[&str]) -> Server {
    let to = format!("tcp://{upstream}");
    let mut args = vec!["relay", "0", "--to", &to];
    args.extend_from_slice(flags);
    Server::start(&args)
}

/// A TCP relay (`relay tcp://127.0.0.1:0`) to the UDP `upstream`, with `flags`.
fn tcp_to_udp(upstream: SocketAddr, flags: &[&str]) -> Server {
    let to = upstream.to_string();
    let mut args = vec!["relay", "tcp://0", "--to", &to];
    args.extend_from_slice(flags);
    Server::start(&args)
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + size) as u8).collect()
}

/// A frame: the 2-byte big-endian length, then the bytes.
fn frame(datagram: &[u8]) -> Vec<u8> {
    let mut out = (datagram.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(datagram);
    out
}

/// Read one frame from a stream (bounded by its read timeout).
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    next_frame(s, LIMIT).expect("a frame's length")
}

/// The next frame, or `None` if its length does not start within `wait`; once it has,
/// the rest of the frame is waited for up to [`LIMIT`].
fn next_frame(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("a frame's bytes");
    Some(body)
}

fn connect(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

/// Two UDP clients through `relay`: every size comes back byte-exact, each client gets
/// only its own replies.
fn round_trips(relay: SocketAddr) {
    let (a, b) = (peer("127.0.0.1"), peer("127.0.0.1"));
    for size in [0usize, 1, 1400, 65_507] {
        let p = payload(size);
        a.send_to(&p, relay).unwrap();
        let (reply, from) = recv(&a);
        assert!(reply == p, "size {size}: {} bytes back", reply.len());
        assert_eq!(from, relay);
    }
    a.send_to(b"from a", relay).unwrap();
    b.send_to(b"from b", relay).unwrap();
    assert_eq!(recv(&a).0, b"from a");
    assert_eq!(recv(&b).0, b"from b");
    assert!(!arrives_within(&a, Duration::from_millis(100)));
}

#[test]
fn udp_over_tcp_and_back_is_byte_exact_with_a_stream_per_client() {
    let echo = Server::start(&["echo", "0"]);
    let far = tcp_to_udp(echo.addr, &["--stats", "-f", "json"]);
    let near = udp_to_tcp(far.addr, &["--stats", "-f", "json"]);
    round_trips(near.addr);
    // A TCP client of its own: frames in, the same frames out, in order, none merged.
    let mut s = connect(far.addr);
    let mut burst = Vec::new();
    for i in 0..50u8 {
        burst.extend(frame(&[i; 3]));
    }
    s.write_all(&burst).unwrap();
    for i in 0..50u8 {
        assert_eq!(read_frame(&mut s), [i; 3]);
    }
    drop(s);
    near.guard.signal(libc::SIGTERM);
    let n = json_last_line(&near.finish().stderr);
    assert_eq!(n["streams_opened"], 2, "one stream per client: {n}");
    assert_eq!(n["frames_out"], 6, "{n}");
    assert_eq!(n["frames_in"], 6, "{n}");
    far.guard.signal(libc::SIGTERM);
    let f = json_last_line(&far.finish().stderr);
    assert_eq!(f["streams_opened"], 3, "{f}");
    assert_eq!(f["sessions_opened"], 3, "{f}");
    assert_eq!(f["frames_in"], 56, "{f}");
}

#[test]
fn to_exec_runs_dgram_itself_as_the_far_end_and_kills_it_with_the_session() {
    let echo = Server::start(&["echo", "0"]);
    let command = format!("exec {} relay - --to {}", bin(), echo.addr);
    let relay = Server::start(&[
        "relay",
        "0",
        "--to-exec",
        &command,
        "--idle-timeout",
        "1s",
        "-v",
        "-f",
        "json",
    ]);
    round_trips(relay.addr);
    // Each session its own child, named exec:PID; the child ends with its session.
    let out = relay.guard.wait_stdout("two sessions' datagrams", |o| {
        String::from_utf8_lossy(o)
            .matches("\"dir\":\"down\"")
            .count()
            >= 6
    });
    let text = String::from_utf8_lossy(&out).to_string();
    let pids: std::collections::BTreeSet<u32> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["upstream"].as_str()?.strip_prefix("exec:")?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{text}");
    relay.guard.wait_stderr("closed: idle");
    let deadline = Instant::now() + LIMIT;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "children {pids:?} outlived their sessions"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling /proc until the children are gone (bounded above)
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is not alive: its parent has not reaped it yet, but it runs no more.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn the_bytes_on_the_wire_are_mullvads_udp_over_tcp_framing() {
    // The far end is a plain TCP listener the test controls: what udp2tcp sends, and
    // what tcp2udp sends back.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = udp_to_tcp(listener.local_addr().unwrap(), &[]);
    let c = peer("127.0.0.1");
    c.send_to(b"hi", relay.addr).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    assert!(s.nodelay().is_ok());
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, [0, 2, b'h', b'i']);
    // Two frames in one write, then one split byte by byte: three datagrams, none merged.
    s.write_all(&[0, 3, b'a', b'b', b'c', 0, 0]).unwrap();
    assert_eq!(recv(&c).0, b"abc");
    assert_eq!(recv(&c).0, b"");
    for b in frame(b"slow") {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(recv(&c).0, b"slow");
}

#[test]
fn a_stream_closed_by_the_far_end_ends_its_session_and_the_next_datagram_opens_another() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = udp_to_tcp(
        listener.local_addr().unwrap(),
        &["-v", "--stats", "-f", "json"],
    );
    let c = peer("127.0.0.1");
    for round in 0..2u8 {
        c.send_to(&[round], relay.addr).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        assert_eq!(read_frame(&mut s), [round]);
        // The far end closes inside a frame: its partial frame is dropped and counted.
        s.write_all(&[0, 9, 1, 2]).unwrap();
        drop(s);
        let n = round as usize + 1;
        wait_count(&relay.guard, "ended inside a frame", n);
        wait_count(&relay.guard, "closed the stream", n);
    }
    assert!(!arrives_within(&c, Duration::from_millis(50)));
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert_eq!(v["sessions_opened"], 2, "{v}");
    assert_eq!(v["streams_opened"], 2, "{v}");
    assert_eq!(v["partial_frames"], 2, "{v}");
}

#[test]
fn refused_and_timed_out_connections_are_counted_and_never_stop_the_relay() {
    // Nothing listens: refused at once.
    let refused = SocketAddr::from(([127, 0, 0, 1], released_port()));
    let relay = udp_to_tcp(refused, &["--stats", "-f", "json"]);
    let c = peer("127.0.0.1");
    c.send_to(b"one", relay.addr).unwrap();
    wait_count(&relay.guard, "refused", 1);
    c.send_to(b"two", relay.addr).unwrap();
    wait_count(&relay.guard, "refused", 2);
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert_eq!(v["streams_failed"], 2, "{v}");
    assert_eq!(v["queue_drops"], 2, "the queued datagram of each: {v}");
    assert_eq!(v["streams_opened"], 0, "{v}");

    // A listener whose backlog is full never completes the handshake: the connection
    // times out, and what waited for it is dropped and counted.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    full.listen(0).unwrap();
    let at = full.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&at.into());
        fillers.push(s);
    }
    let relay = udp_to_tcp(
        at,
        &[
            "--connect-timeout",
            "300ms",
            "--stream-queue",
            "3",
            "--stats",
            "-f",
            "json",
        ],
    );
    for i in 0..5u8 {
        c.send_to(&[i], relay.addr).unwrap();
    }
    relay.guard.wait_stderr("--connect-timeout");
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert_eq!(v["streams_failed"], 1, "{v}");
    assert_eq!(
        v["queue_drops"], 5,
        "3 queued and dropped, 2 past the queue: {v}"
    );
}

#[test]
fn a_slow_reader_costs_its_own_datagrams_and_never_the_others() {
    // The far end accepts and never reads: its session's buffer fills, and what does not
    // fit is dropped and counted; another client's stream still flows.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = udp_to_tcp(
        listener.local_addr().unwrap(),
        &["--stream-buffer", "64K", "--stats", "-f", "json"],
    );
    let slow = peer("127.0.0.1");
    slow.send_to(b"first", relay.addr).unwrap();
    let (stalled, _) = listener.accept().unwrap();
    let chunk = [7u8; 1400];
    for _ in 0..3000 {
        slow.send_to(&chunk, relay.addr).unwrap();
    }
    let fast = peer("127.0.0.1");
    fast.send_to(b"me too", relay.addr).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(read_frame(&mut s), b"me too");
    s.write_all(&frame(b"answer")).unwrap();
    assert_eq!(recv(&fast).0, b"answer");
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert!(v["queue_drops"].as_u64().unwrap() > 0, "{v}");
    drop(stalled);
}

#[test]
fn dig_over_tcp_through_a_tcp_relay_reaches_dnsmasq_on_udp() {
    let Some((_dnsmasq, dns)) = crate::dns::dnsmasq() else {
        return;
    };
    if !crate::harness::tool("streams::dig_over_tcp", "dig") {
        return;
    }
    let relay = tcp_to_udp(dns, &["--dns"]);
    let out = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &relay.addr.port().to_string()])
        .args(["+tcp", "+tries=1", "+time=2", "host.example", "A"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains("(TCP)"), "dig used TCP: {text}");
    assert!(text.contains("10.1.2.3"), "{text}");
    let shown = relay.guard.wait_stdout("both legs", |o| {
        String::from_utf8_lossy(o).matches("opcode: QUERY").count() >= 2
    });
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains(&format!("-> {dns}")), "{shown}");
    assert!(
        shown.contains(&format!("{dns} -> tcp://127.0.0.1:")),
        "{shown}"
    );
}

#[test]
fn stream_flags_that_do_not_apply_are_refused() {
    for (args, says) in [
        (
            &[
                "relay",
                "0",
                "--to",
                "127.0.0.1:53",
                "--connect-timeout",
                "1s",
            ][..],
            "--connect-timeout",
        ),
        (
            &[
                "relay",
                "tcp://0",
                "--to",
                "127.0.0.1:53",
                "--stream-queue",
                "9",
            ],
            "--stream-queue",
        ),
        (
            &[
                "relay",
                "0",
                "--to",
                "127.0.0.1:53",
                "--stream-buffer",
                "1M",
            ],
            "--stream-buffer",
        ),
        (
            &["relay", "tcp://0", "--to", "tcp://127.0.0.1:53"],
            "both sides are streams",
        ),
        (
            &["relay", "-", "--to-exec", "cat"],
            "both sides are streams",
        ),
        (
            &["relay", "-", "--to", "127.0.0.1:53", "-f", "json"],
            "stdout",
        ),
        (
            &["relay", "0", "--to", "127.0.0.1:53", "--to-exec", "cat"],
            "cannot be used with",
        ),
        (
            &["relay", "0", "--to-exec", " "],
            "--to-exec needs a command",
        ),
        (&["relay", "0"], "--to"),
    ] {
        run(args).expect_code(2).expect_stderr(says);
    }
}

#[test]
fn relay_dash_is_one_session_over_stdin_and_stdout() {
    let echo = Server::start(&["echo", "0"]);
    let mut input = Vec::new();
    for d in [&b"one"[..], b"", b"three"] {
        input.extend(frame(d));
    }
    // A frame cut short at the end: dropped, counted, never delivered.
    input.extend([0, 5, b'x']);
    let to = echo.addr.to_string();
    let mut g = crate::harness::spawn(&["relay", "-", "--to", &to, "--stats"], Some(&input));
    g.close_stdin();
    let r = g.finish();
    let mut want = Vec::new();
    for d in [&b"one"[..], b"", b"three"] {
        want.extend(frame(d));
    }
    r.expect_code(0);
    assert_eq!(
        r.stdout, want,
        "every reply framed on stdout before the end"
    );
    // stdout is the stream: --stats is text on stderr.
    assert!(
        r.stderr.contains("frames in 3, out 3; partial frames 1,"),
        "{}",
        r.stderr
    );
}

/// Peak RSS (VmHWM) of a process, KiB.
fn hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn random_bytes_split_anywhere_never_crash_a_tcp_relay() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay = tcp_to_udp(sink.local_addr().unwrap(), &["--stats", "-f", "json"]);
    let pid = relay.guard.child.id();
    // xorshift: the same chunks each run.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = connect(relay.addr);
    for i in 0..10_000 {
        let len = (next() % 512) as usize;
        let chunk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if s.write_all(&chunk).is_err() || i % 2_000 == 1_999 {
            // Now and then a new connection, as a fuzzer's client would.
            s = connect(relay.addr);
        }
    }
    drop(s);
    // Still serving: a well-formed frame goes through.
    let mut s = connect(relay.addr);
    s.write_all(&frame(b"still here")).unwrap();
    sink.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + LIMIT;
    loop {
        let (n, _) = sink.recv_from(&mut buf).expect("the relay still relays");
        if &buf[..n] == b"still here" {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let hwm = hwm_kib(pid);
    assert!(hwm < 64 * 1024, "peak RSS {hwm} KiB");
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert!(v["frames_in"].as_u64().unwrap() > 1, "{v}");
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Raise this process's soft open-files limit to its hard one (the test holds a thousand
/// streams as the relay does).
fn raise_own_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for the kernel to fill, then read.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Wait until `text` is on the guard's stderr `n` times.
fn wait_count(guard: &crate::harness::Guard, text: &str, n: usize) {
    let deadline = Instant::now() + LIMIT;
    while guard.stderr().matches(text).count() < n {
        assert!(
            Instant::now() < deadline,
            "'{text}' not {n} times: {}",
            guard.stderr()
        );
        std::thread::sleep(Duration::from_millis(10)); // polling the fd count, bounded by the deadline
    }
}

#[test]
fn a_thousand_streams_at_once_and_their_descriptors_given_back() {
    if raise_own_limit() < 2_200 {
        crate::harness::skip_for_host(
            "streams::a_thousand_streams",
            "the hard open-files limit is under 2,200",
        );
        return;
    }
    let echo = Server::start(&["echo", "0"]);
    let relay = tcp_to_udp(echo.addr, &["-v", "--stats", "-f", "json"]);
    let pid = relay.guard.child.id();
    let base = fds(pid);
    let mut streams: Vec<TcpStream> = (0..1_000).map(|_| connect(relay.addr)).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(&frame(&(i as u32).to_be_bytes())).unwrap();
    }
    for (i, s) in streams.iter_mut().enumerate() {
        assert_eq!(read_frame(s), (i as u32).to_be_bytes(), "stream {i}");
    }
    let rss = super::relay::rss_kib(pid);
    assert!(rss < 128 * 1024, "RSS {rss} KiB with 1,000 streams");
    assert!(fds(pid) >= base + 2_000, "a socket and a stream each");
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(1);
    while fds(pid) != base {
        assert!(
            Instant::now() < deadline,
            "{} descriptors a second after the streams closed (base {base})",
            fds(pid)
        );
        std::thread::sleep(Duration::from_millis(10)); // polling stderr, bounded by the deadline
    }
    relay.guard.signal(libc::SIGTERM);
    let r = relay.finish();
    assert!(
        r.stderr.contains("open-files limit"),
        "said with -v: {}",
        r.stderr
    );
    let v = json_last_line(&r.stderr);
    assert_eq!(v["sessions_opened"], 1_000, "{v}");
    assert_eq!(v["sessions_refused"], 0, "{v}");
}

#[test]
fn past_the_open_files_limit_sessions_are_refused_and_counted_never_a_crash() {
    let echo = Server::start(&["echo", "0"]);
    // A hard limit of 40 descriptors: the relay cannot raise it, about 15 sessions fit.
    let script = format!(
        "ulimit -n 40 && exec {} relay tcp://0 --to {} --stats -f json",
        bin(),
        echo.addr
    );
    let mut relay = crate::harness::spawn_cmd("sh", &["-c", &script], None);
    relay.close_stdin();
    let at = relay.announced();
    let mut streams: Vec<TcpStream> = (0..40).map(|_| connect(at)).collect();
    let mut answered = 0;
    for (i, s) in streams.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if s.write_all(&frame(&[i as u8])).is_ok() {
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_ok() {
                answered += 1;
            }
        }
    }
    assert!((5..40).contains(&answered), "{answered} of 40 answered");
    // Once they close, the relay serves again: nothing was lost but the refused.
    drop(streams);
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut s = connect(at);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if s.write_all(&frame(b"again")).is_ok() && s.read_exact(&mut [0u8; 7]).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never served again: {}",
            relay.stderr()
        );
    }
    relay.signal(libc::SIGTERM);
    let r = relay.finish();
    let v = json_last_line(&r.stderr);
    assert!(v["sessions_refused"].as_u64().unwrap() > 0, "{v}");
    assert!(
        r.stderr.contains("out of descriptors") || r.stderr.contains("cannot open a session"),
        "{}",
        r.stderr
    );
}

/// A TCP listener whose accepted streams have a small receive buffer: a far end that
/// does not read stops taking bytes after a few KiB, and the relay's own buffer fills.
fn small_window_listener() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(8).unwrap();
    s.into()
}

/// Every frame the far end is sent until `marker` (a datagram the client sends again
/// and again, as reading makes room for it), the markers that got through included.
fn frames_until(
    far: &mut TcpStream,
    client: &UdpSocket,
    relay: SocketAddr,
    marker: &[u8],
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + LIMIT;
    let mut frames = Vec::new();
    while Instant::now() < deadline {
        client.send_to(marker, relay).unwrap();
        while let Some(body) = next_frame(far, Duration::from_millis(200)) {
            let done = body == marker;
            frames.push(body);
            if done {
                return frames;
            }
        }
    }
    panic!("the marker never came through ({} frames)", frames.len());
}

#[test]
fn the_pcap_of_a_stream_leg_holds_exactly_the_datagrams_the_stream_took() {
    // guards: when the stream's buffer refused a datagram in the middle of a batch, the
    // pcap recorded the batch's first N datagrams, not the N the stream took.
    let test = "streams::the_pcap_of_a_stream_leg_holds_exactly_the_datagrams_the_stream_took";
    if !crate::harness::tool(test, "tshark") {
        return;
    }
    let listener = small_window_listener();
    let upstream = listener.local_addr().unwrap();
    let pcap = std::env::temp_dir().join(format!("dgram-stream-pcap-{}.pcap", std::process::id()));
    let relay = udp_to_tcp(
        upstream,
        &[
            "--stream-buffer",
            "16K",
            "--stats",
            "-f",
            "json",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    let client = peer("127.0.0.1");
    client.send_to(b"first", relay.addr).unwrap();
    let (mut far, _) = listener.accept().unwrap();
    // Numbered datagrams of two sizes, in bursts: once the buffer is nearly full a
    // large one is refused where a small one after it still fits.
    for i in 0..20_000u32 {
        let mut datagram = vec![0u8; if i % 2 == 0 { 1400 } else { 8 }];
        datagram[..4].copy_from_slice(&i.to_be_bytes());
        client.send_to(&datagram, relay.addr).unwrap();
    }
    let frames = frames_until(&mut far, &client, relay.addr, b"end");
    relay.guard.signal(libc::SIGTERM);
    let stats = json_last_line(&relay.finish().stderr);
    assert!(
        stats["queue_drops"].as_u64().unwrap() > 0,
        "nothing was refused: {stats}"
    );
    let port = upstream.port().to_string();
    let recorded: Vec<Vec<u8>> =
        crate::harness::tshark_fields(&pcap, &[], &["udp.dstport", "udp.payload"])
            .into_iter()
            .filter(|row| row[0] == port)
            .map(|row| crate::harness::unhex(row.get(1).map_or("", String::as_str)))
            .collect();
    let _ = std::fs::remove_file(&pcap);
    // The reader stops at the first marker through; a marker sent again before it was
    // read may have been taken too, after it.
    assert!(
        recorded.len() >= frames.len(),
        "{} datagrams recorded, {} frames read",
        recorded.len(),
        frames.len()
    );
    let (read, after) = recorded.split_at(frames.len());
    let first_difference = read.iter().zip(&frames).position(|(r, f)| r != f);
    assert_eq!(first_difference, None, "the pcap and the stream part ways");
    assert!(
        after.iter().all(|r| r == b"end"),
        "recorded after the marker: {after:?}"
    );
}
