//! `dgram listen`: every peer, every format, limits, filters, signals and pipes.

use std::time::Duration;

use crate::harness::{arrives_within, peer, run, Server};

fn send_from(ip: &str, to: &Server, payload: &[u8]) {
    peer(ip).send_to(payload, to.addr).unwrap();
}

#[test]
fn announces_its_address_first_and_in_the_ready_file() {
    let dir = std::env::temp_dir().join(format!("dgram-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("addr");
    let s = Server::start(&[
        "listen",
        "0",
        "-q",
        "-n",
        "1",
        "--ready-file",
        ready.to_str().unwrap(),
    ]);
    assert_eq!(
        s.addr.ip().to_string(),
        "127.0.0.1",
        "a bare port means loopback"
    );
    assert_ne!(s.addr.port(), 0);
    assert_eq!(
        std::fs::read_to_string(&ready).unwrap(),
        format!("{}\n", s.addr)
    );
    send_from("127.0.0.1", &s, b"x");
    let r = s.finish();
    r.expect_code(0).expect_stdout(b"x");
    assert!(r.stderr.starts_with("listening on "), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn receives_from_every_peer() {
    // guards: listen must not lock onto the first peer
    let s = Server::start(&["listen", "0", "-n", "3", "-f", "json"]);
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        send_from(ip, &s, ip.as_bytes());
    }
    let r = s.finish();
    r.expect_code(0);
    let peers: Vec<String> = r
        .stdout_str()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["peer"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(peers.len(), 3);
    for (p, ip) in peers.iter().zip(["127.0.0.1", "127.0.0.2", "127.0.0.3"]) {
        assert!(p.starts_with(&format!("{ip}:")), "{p}");
    }
}

#[test]
fn a_lone_datagram_is_printed_at_once() {
    // guards: output is flushed when the socket goes idle, not when a buffer fills
    let s = Server::start(&["listen", "0", "-f", "line"]);
    send_from("127.0.0.1", &s, b"first");
    s.guard
        .wait_stdout("the first datagram", |o| o == b"first\n");
}

#[test]
fn every_format_prints_what_the_spec_says() {
    let cases: [(&str, &[u8], &str); 5] = [
        ("raw", b"a\nb", "a\nb"),
        ("line", b"ab", "ab\n"),
        ("hex", b"\x00\xff", "00ff\n"),
        ("base64", b"hi", "aGk=\n"),
        ("hexdump", b"hi", " 2 bytes\n00000000  68 69"),
    ];
    for (format, payload, want) in cases {
        let s = Server::start(&["listen", "0", "-n", "1", "-f", format]);
        send_from("127.0.0.1", &s, payload);
        let r = s.finish();
        r.expect_code(0);
        if !r.stdout_str().contains(want) {
            r.fail(&format!("--format {format} lacks {want:?}"));
        }
    }
}

#[test]
fn json_lines_carry_the_spec_fields() {
    let s = Server::start(&["listen", "0", "--count", "1", "--format", "json"]);
    let tx = peer("127.0.0.1");
    tx.send_to(b"hello", s.addr).unwrap();
    let r = s.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let time = v["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.len() == "2026-01-01T00:00:00.000000Z".len(),
        "{time}"
    );
    assert_eq!(v["peer"], tx.local_addr().unwrap().to_string());
    assert_eq!(v["len"], 5);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["base64"], "aGVsbG8=");
    assert_eq!(v["text"], "hello");
}

#[test]
fn the_largest_datagram_arrives_whole() {
    let s = Server::start(&["listen", "0", "-n", "1"]);
    send_from("127.0.0.1", &s, &vec![b'z'; 65_507]);
    let r = s.finish();
    r.expect_code(0);
    assert_eq!(r.stdout.len(), 65_507);
}

#[test]
fn a_datagram_over_max_size_is_reported_truncated_with_its_true_length() {
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "1",
        "--max-size",
        "100",
        "-f",
        "json",
        "--stats",
    ]);
    send_from("127.0.0.1", &s, &vec![b'z'; 3000]);
    let r = s.finish();
    r.expect_code(0).expect_stderr("3000 bytes, kept 100");
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["len"], 3000);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["captured"], 100);
    let stats: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(stats["truncated"], 1);
}

#[test]
fn count_and_timeout_decide_the_exit_code() {
    // Fewer than --count before the idle timeout: exit 1.
    let s = Server::start(&["listen", "0", "-n", "3", "-w", "300ms"]);
    send_from("127.0.0.1", &s, b"a");
    let r = s.finish();
    r.expect_code(1).expect_stderr("received 1 of 3 datagrams");
    assert_eq!(r.stdout, b"a", "what arrived is still printed");
    // guards: a -w run that ended at once passed. The idle timeout is waited, and not
    // much longer.
    assert!(r.elapsed >= Duration::from_millis(290), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    // A timeout without --count is a normal end, after the timeout.
    let r = Server::start(&["listen", "0", "-w", "200ms"]).finish();
    r.expect_code(0);
    assert!(r.elapsed >= Duration::from_millis(190), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    // So is --duration, which ends even under traffic.
    let s = Server::start(&["listen", "0", "--duration", "300ms"]);
    let r = s.finish();
    r.expect_code(0);
    assert!(r.elapsed >= Duration::from_millis(290));
    let r = Server::start(&["listen", "0", "-n", "1", "--duration", "200ms"]).finish();
    r.expect_code(1)
        .expect_stderr("received 0 of 1 datagrams (--duration 200ms ended)");
}

#[test]
fn allow_and_deny_filter_and_filtered_datagrams_do_not_count() {
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "2",
        "--allow",
        "127.0.0.0/8",
        "--deny",
        "127.0.0.2",
        "--stats",
        "-f",
        "json",
    ]);
    send_from("127.0.0.2", &s, b"denied");
    send_from("127.0.0.1", &s, b"one");
    send_from("127.0.0.3", &s, b"two");
    let r = s.finish();
    r.expect_code(0);
    let texts = crate::harness::json_texts(&r.stdout_str());
    assert_eq!(texts, ["one", "two"]);
    let stats: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(stats["filtered"], 1);
    assert_eq!(stats["received"], 2);
    assert_eq!(stats["kernel_drops"], 0);
}

#[test]
fn sigint_and_sigterm_flush_and_exit_130_and_143() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let s = Server::start(&["listen", "0", "-f", "line", "--stats"]);
        send_from("127.0.0.1", &s, b"kept");
        s.guard.wait_stdout("the datagram", |o| o == b"kept\n");
        s.guard.signal(sig);
        let r = s.finish();
        r.expect_code(code)
            .expect_stdout(b"kept\n")
            .expect_stderr("received 1 datagram,");
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_exit_0() {
    // `dgram listen ... | head -n 1`: the reader takes one line and goes away.
    let mut g = crate::harness::spawn_own_stdout(&["listen", "0", "-f", "line"]);
    let addr = g.announced();
    let mut stdout = g.child.stdout.take().unwrap();
    peer("127.0.0.1").send_to(b"one", addr).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = [0u8; 4];
        let got = std::io::Read::read_exact(&mut stdout, &mut line).map(|_| line);
        // Close the pipe's only reader before saying so, as `head` does.
        drop(stdout);
        let _ = tx.send(got);
    });
    let line = rx
        .recv_timeout(crate::harness::LIMIT)
        .expect("a line in time")
        .unwrap();
    assert_eq!(&line, b"one\n");
    // Keep sending until dgram notices: a test thread forking at the same moment can
    // hold a copy of the pipe's read end until its exec, so one write may still pass.
    let tx = peer("127.0.0.1");
    let deadline = std::time::Instant::now() + crate::harness::LIMIT;
    while g.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        tx.send_to(b"two", addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20)); // pacing gap between tries
    }
    let r = g.finish();
    r.expect_code(0);
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "only the announcement: {}",
        r.stderr
    );
}

#[test]
fn dual_stack_shows_v4_peers_as_v4_and_dash_6_is_v6_only() {
    let s = Server::start(&["listen", "[::]:0", "-n", "1", "-f", "json"]);
    assert_eq!(s.addr.ip().to_string(), "::");
    let tx = peer("127.0.0.1");
    tx.send_to(b"v4", ("127.0.0.1", s.addr.port())).unwrap();
    let r = s.finish();
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["peer"], tx.local_addr().unwrap().to_string());

    let s = Server::start(&["listen", "-6", "[::]:0", "-n", "1", "-w", "300ms"]);
    let _ = peer("127.0.0.1").send_to(b"v4", ("127.0.0.1", s.addr.port()));
    s.finish().expect_code(1);
}

/// A --rcvbuf the kernel must clamp: twice this host's rmem_max (SO_RCVBUF is capped by
/// it), or `None` where rmem_max is too large for a request to exceed it.
fn clamped_rcvbuf() -> Option<String> {
    let max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let ask = max.checked_mul(2)?.min(i32::MAX as u64);
    (ask > max).then(|| ask.to_string()).or_else(|| {
        crate::harness::skip_for_host(
            "listen: a clamp check",
            &format!("rmem_max {max} cannot be exceeded by SO_RCVBUF"),
        );
        None
    })
}

#[test]
fn a_small_rcvbuf_is_warned_about_when_clamped() {
    let Some(ask) = clamped_rcvbuf() else {
        return;
    };
    let s = Server::start(&["listen", "0", "--rcvbuf", &ask, "-w", "100ms"]);
    let r = s.finish();
    r.expect_code(0)
        .expect_stderr(&format!("--rcvbuf {ask}: the kernel gave SO_RCVBUF = "))
        .expect_stderr("capped by net.core.rmem_max");
}

#[test]
fn reuse_port_shares_a_port_and_a_taken_port_is_exit_3() {
    let a = Server::start(&["listen", "0", "--reuse-port", "-w", "2s"]);
    let port = a.addr.port().to_string();
    let b = Server::start(&["listen", &port, "--reuse-port", "-w", "100ms"]);
    assert_eq!(b.addr, a.addr);
    b.finish().expect_code(0);
    run(&["listen", &port])
        .expect_code(3)
        .expect_stderr(&format!(
            "failed to bind UDP socket to 127.0.0.1:{port}: address already in use"
        ));
}

#[test]
fn ipv6_loopback_listens() {
    let s = Server::start(&["listen", "[::1]:0", "-n", "1"]);
    peer("::1").send_to(b"six", s.addr).unwrap();
    s.finish().expect_code(0).expect_stdout(b"six");
}

#[cfg(target_os = "linux")]
/// Send `buf` as one GSO call of `segment`-byte datagrams (Linux UDP_SEGMENT).
fn gso_send(socket: &std::net::UdpSocket, buf: &[u8], segment: u16) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let seg = libc::c_int::from(segment);
    // SAFETY: setsockopt with a live c_int; send with a live buffer.
    unsafe {
        let fd = socket.as_raw_fd();
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&seg as *const libc::c_int).cast(),
            size,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) != buf.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
/// GSO batches of mixed sizes; every datagram has its own content. Returns the datagrams.
/// With `strict`, every send must succeed (the receiver is still there for all of them).
fn gso_batches(to: std::net::SocketAddr, strict: bool) -> Vec<Vec<u8>> {
    let tx = peer("127.0.0.1");
    tx.connect(to).unwrap();
    let mut all = Vec::new();
    for (segment, count, last) in [
        (100usize, 5usize, 37usize),
        (7, 64, 7),
        (1400, 3, 1),
        (1000, 1, 1000),
        (1, 20, 1),
    ] {
        let mut buf = Vec::new();
        for i in 0..count {
            let len = if i + 1 == count { last } else { segment };
            let d: Vec<u8> = (0..len).map(|j| (all.len() * 31 + j) as u8).collect();
            buf.extend_from_slice(&d);
            all.push(d);
        }
        let sent = gso_send(&tx, &buf, segment as u16);
        if strict {
            sent.expect("GSO send");
        }
    }
    all
}

fn json_payloads(out: &str) -> Vec<(usize, Vec<u8>, bool)> {
    use base64::Engine;
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v["base64"].as_str().unwrap())
                .unwrap();
            (
                v["len"].as_u64().unwrap() as usize,
                bytes,
                v["truncated"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn gro_buffers_are_split_back_into_every_datagram() {
    // guards: with UDP GRO on, coalesced GSO batches are never printed merged
    // Trace logs show that the kernel really coalesced (and that the split ran).
    let mut g = crate::harness::spawn_env(
        &["listen", "0", "--gro", "-f", "json", "-w", "1s"],
        &[("RUST_LOG", "trace")],
    );
    g.close_stdin();
    let sent = gso_batches(g.announced(), true);
    let r = g.finish();
    r.expect_code(0);
    if cfg!(target_os = "linux") {
        r.expect_stderr("GRO buffer split");
    }
    crate::harness::run(&["listen", "0", "--gro", "-n", "1"])
        .expect_code(2)
        .expect_stderr("the argument '--gro' cannot be used with '--count <N>'");
    let got = json_payloads(&r.stdout_str());
    assert_eq!(got.len(), sent.len(), "one JSON line per datagram sent");
    for (i, ((len, bytes, truncated), want)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(
            (*len, bytes, *truncated),
            (want.len(), want, false),
            "datagram {i}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn gro_split_datagrams_are_truncated_one_by_one() {
    let s = Server::start(&[
        "listen",
        "0",
        "--gro",
        "-f",
        "json",
        "-w",
        "1s",
        "--max-size",
        "50",
    ]);
    let sent = gso_batches(s.addr, true);
    let r = s.finish();
    r.expect_code(0);
    let got = json_payloads(&r.stdout_str());
    assert_eq!(got.len(), sent.len());
    for ((len, bytes, truncated), want) in got.iter().zip(&sent) {
        assert_eq!(*len, want.len());
        assert_eq!(bytes[..], want[..want.len().min(50)]);
        assert_eq!(*truncated, want.len() > 50);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn without_gro_gso_batches_arrive_one_by_one_and_none_beyond_count() {
    let s = Server::start(&["listen", "0", "-f", "json", "-n", "10"]);
    // dgram exits after 10: later sends may meet its port closed.
    let sent = gso_batches(s.addr, false);
    let r = s.finish();
    r.expect_code(0);
    let got = json_payloads(&r.stdout_str());
    assert_eq!(got.len(), 10);
    for ((_, bytes, _), want) in got.iter().zip(&sent) {
        assert_eq!(bytes, want);
    }
}

#[test]
fn the_announcement_is_first_even_with_debug_logs() {
    // guards: logs from socket set-up must not come before `listening on`
    let Some(ask) = clamped_rcvbuf() else {
        return;
    };
    let r = Server::start(&["listen", "0", "-vv", "--rcvbuf", &ask, "-w", "100ms"]).finish();
    r.expect_code(0)
        .expect_stderr("dgram: debug:")
        .expect_stderr("capped by net.core.rmem_max");
    assert!(r.stderr.starts_with("listening on "), "{}", r.stderr);
}

#[test]
fn an_ignored_rust_log_is_said_after_the_announcement() {
    // guards: the warning about an unparsable RUST_LOG came before `listening on`,
    // which must be a server's first stderr line.
    let mut g = crate::harness::spawn_env(
        &["listen", "0", "-w", "100ms"],
        &[("RUST_LOG", "dgram_cli=loud")],
    );
    g.close_stdin();
    let r = g.finish();
    r.expect_code(0).expect_stderr(
        "dgram: warning: RUST_LOG=\"dgram_cli=loud\" ignored: it takes LEVEL or TARGET=LEVEL",
    );
    assert!(r.stderr.starts_with("listening on "), "{}", r.stderr);
}

/// `dgram listen ARGS` with a terminal as stdout: the pty's master and the guard.
fn listen_on_a_terminal(
    args: &[&str],
) -> (std::fs::File, crate::harness::Guard, std::net::SocketAddr) {
    use std::process::{Command, Stdio};
    let (master, slave) = crate::harness::pty();
    let child = Command::new(crate::harness::bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = crate::harness::Guard::adopt(child, format!("dgram {args:?}"));
    let addr = guard.announced();
    (master, guard, addr)
}

#[test]
fn on_a_terminal_each_datagram_is_one_safe_line() {
    // guards: on a terminal `hello` `world` `a` `b` printed as `helloworldab`, and any
    // sender could retitle or clear the terminal
    let (master, guard, addr) = listen_on_a_terminal(&["listen", "0"]);
    let t = addr.to_string();
    run(&["send", &t, "hello"]).expect_code(0);
    run(&["send", &t, "world"]).expect_code(0);
    crate::harness::run_with_stdin(&["send", &t], b"a\nb\n").expect_code(0);
    let c = peer("127.0.0.1");
    for d in [&b"\x1b]0;owned\x07\x1b[2J"[..], b"\xff\xfe", b"", b"end"] {
        c.send_to(d, addr).unwrap();
    }
    let screen = crate::harness::read_pty_until(&master, |s| s.contains("end\n"));
    assert_eq!(
        screen,
        "hello\nworld\na\nb\n\\x1b]0;owned\\x07\\x1b[2J\n\\xff\\xfe\n\nend\n"
    );
    assert!(!screen.contains('\x1b'));
    drop(guard);
    // -f raw on a terminal is still raw: the bytes unchanged.
    let (master, guard, addr) = listen_on_a_terminal(&["listen", "0", "-f", "raw"]);
    c.send_to(b"ab", addr).unwrap();
    c.send_to(b"cd\x1b[0m", addr).unwrap();
    let screen = crate::harness::read_pty_until(&master, |s| s.contains("\x1b[0m"));
    assert_eq!(screen, "abcd\x1b[0m");
    drop(guard);
}

#[test]
fn the_ready_file_is_never_stale_and_goes_with_the_server() {
    // guards: the file was never removed, so the README's wait loop passed at once on a
    // second run and read the first run's port.
    let dir = std::env::temp_dir().join(format!("dgram-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("addr");
    let file = path.to_str().unwrap();
    // A server that cannot bind still removes what an earlier run left, first.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    std::fs::write(&path, "127.0.0.1:1\n").unwrap();
    crate::harness::run(&["listen", &taken, "--ready-file", file, "-w", "1s"])
        .expect_code(3)
        .expect_stderr("failed to bind UDP socket to");
    assert!(
        !path.exists(),
        "the stale file outlived a server that never bound"
    );
    // Written once bound; removed at the end by a signal...
    std::fs::write(&path, "127.0.0.1:1\n").unwrap();
    let s = Server::start(&["listen", "0", "--ready-file", file, "-w", "10s"]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", s.addr)
    );
    s.guard.signal(libc::SIGTERM);
    s.finish().expect_code(143);
    assert!(!path.exists(), "left behind after SIGTERM");
    // ... by --count, and for echo and relay alike.
    let e = Server::start(&["echo", "0", "--ready-file", file, "-n", "1"]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", e.addr)
    );
    send_from("127.0.0.1", &e, b"x");
    e.finish().expect_code(0);
    assert!(!path.exists(), "left behind by echo -n 1");
    let r = Server::start(&[
        "relay",
        "0",
        "--to",
        "127.0.0.1:9",
        "--ready-file",
        file,
        "-w",
        "100ms",
    ]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", r.addr)
    );
    r.finish().expect_code(0);
    assert!(!path.exists(), "left behind by relay");
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn text_shows_invisible_and_direction_changing_characters_escaped() {
    // guards: U+202E (right-to-left override) and zero-width characters were printed as
    // they are: a datagram could display reversed or hide words.
    let s = Server::start(&["listen", "0", "-f", "text", "-n", "1"]);
    send_from("127.0.0.1", &s, "pay \u{202e}321 \u{200b}now".as_bytes());
    let r = s.finish();
    r.expect_code(0)
        .expect_stdout("pay \\u{202e}321 \\u{200b}now\n".as_bytes());
}

/// `dgram listen ARGS` with stdin a pipe the test writes to, announced.
fn listen_with_stdin(args: &[&str]) -> (crate::harness::Guard, std::net::SocketAddr) {
    let guard = crate::harness::spawn(args, None);
    let addr = guard.announced();
    (guard, addr)
}

fn type_line(guard: &mut crate::harness::Guard, line: &str) {
    use std::io::Write;
    let stdin = guard.child.stdin.as_mut().expect("stdin is a pipe");
    stdin.write_all(line.as_bytes()).unwrap();
    stdin.flush().unwrap();
}

#[test]
fn two_way_listen_types_back_to_the_peer_that_spoke_last() {
    // guards: listen only received; nc -u -l lets a person type back.
    let (mut g, addr) = listen_with_stdin(&["listen", "0", "--stdin", "-f", "line"]);
    // A line before any peer is not sent, and says so.
    type_line(&mut g, "too early\n");
    g.wait_stderr("line 1 not sent: no peer yet");
    let a = peer("127.0.0.1");
    a.send_to(b"hi from a", addr).unwrap();
    g.wait_stdout("a's datagram", |o| o.ends_with(b"hi from a\n"));
    type_line(&mut g, "back to a\n");
    assert_eq!(crate::harness::recv(&a), (b"back to a".to_vec(), addr));
    g.wait_stderr(&format!("replying to {}", a.local_addr().unwrap()));
    // The most recent peer gets the next line, announced once.
    let b = peer("127.0.0.2");
    b.send_to(b"hi from b", addr).unwrap();
    g.wait_stdout("b's datagram", |o| o.ends_with(b"hi from b\n"));
    type_line(&mut g, "to b\nand again\n");
    assert_eq!(crate::harness::recv(&b).0, b"to b");
    assert_eq!(crate::harness::recv(&b).0, b"and again");
    assert!(!arrives_within(&a, Duration::from_millis(50)), "a is not b");
    // End of stdin stops reading, not listening.
    g.close_stdin();
    a.send_to(b"still here", addr).unwrap();
    g.wait_stdout("after stdin ended", |o| o.ends_with(b"still here\n"));
    g.signal(libc::SIGTERM);
    let r = g.finish();
    r.expect_code(143);
    assert_eq!(r.stderr.matches("replying to ").count(), 2, "{}", r.stderr);
}

#[test]
fn to_fixes_the_destination_and_filtered_peers_are_never_one() {
    let fixed = peer("127.0.0.3");
    let to = fixed.local_addr().unwrap().to_string();
    let (mut g, addr) =
        listen_with_stdin(&["listen", "0", "--to", &to, "-x", "--deny", "127.0.0.2"]);
    // --to implies --stdin; -x applies to the typed lines; no peer is needed first.
    type_line(&mut g, "6869\n");
    assert_eq!(crate::harness::recv(&fixed).0, b"hi");
    let (mut g2, addr2) = listen_with_stdin(&["listen", "0", "--stdin", "--deny", "127.0.0.2"]);
    let ok = peer("127.0.0.1");
    ok.send_to(b"allowed", addr2).unwrap();
    let denied = peer("127.0.0.2");
    g2.wait_stdout("the allowed datagram", |o| o.ends_with(b"allowed"));
    denied.send_to(b"denied", addr2).unwrap();
    // Sent after the denied one arrived: still to the allowed peer.
    denied.send_to(b"denied again", addr2).unwrap();
    ok.send_to(b"x", addr2).unwrap();
    g2.wait_stdout("the second allowed datagram", |o| o.ends_with(b"allowedx"));
    type_line(&mut g2, "reply\n");
    assert_eq!(crate::harness::recv(&ok).0, b"reply");
    assert!(!arrives_within(&denied, Duration::from_millis(50)));
    drop((g, addr, g2));
}

#[test]
fn a_piped_stdin_is_never_read_without_stdin() {
    let (mut g, addr) = listen_with_stdin(&["listen", "0", "-f", "line"]);
    let a = peer("127.0.0.1");
    a.send_to(b"hello", addr).unwrap();
    g.wait_stdout("the datagram", |o| o.ends_with(b"hello\n"));
    type_line(&mut g, "not for anyone\n");
    assert!(
        !arrives_within(&a, Duration::from_millis(200)),
        "stdin was read"
    );
}

#[test]
fn on_a_terminal_listen_talks_back_by_default() {
    use std::process::{Command, Stdio};
    let (master, slave) = crate::harness::pty();
    let child = Command::new(crate::harness::bin())
        .args(["listen", "0"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = crate::harness::Guard::adopt(child, "dgram listen 0 (terminal)".into());
    let addr = guard.announced();
    let a = peer("127.0.0.1");
    a.send_to(b"ping", addr).unwrap();
    crate::harness::read_pty_until(&master, |s| s.contains("ping\n"));
    std::io::Write::write_all(&mut &master, b"pong\n").unwrap();
    assert_eq!(crate::harness::recv(&a).0, b"pong");
    drop(guard);
}
