//! `dgram send`: payloads, pacing, replies, and the exit codes that go with them.

use std::time::Duration;

use crate::harness::{arrives_within, peer, recv, responder, run, run_with_stdin};

fn target(s: &std::net::UdpSocket) -> String {
    s.local_addr().unwrap().to_string()
}

#[test]
fn message_words_are_joined_by_single_spaces() {
    let rx = peer("127.0.0.1");
    run(&["send", &target(&rx), "hello", "big  world"]).expect_code(0);
    assert_eq!(recv(&rx).0, b"hello big  world");
}

#[test]
fn an_empty_message_is_an_empty_datagram() {
    let rx = peer("127.0.0.1");
    run(&["send", &target(&rx), ""]).expect_code(0);
    assert_eq!(recv(&rx).0, b"");
}

#[test]
fn stdin_lines_are_one_datagram_each() {
    // guards: \r\n and \n endings removed, empty line = empty datagram, last line kept
    let rx = peer("127.0.0.1");
    run_with_stdin(&["send", &target(&rx)], b"a\r\nb\n\nlast").expect_code(0);
    for want in [&b"a"[..], b"b", b"", b"last"] {
        assert_eq!(recv(&rx).0, want);
    }
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

#[test]
fn whole_and_file_send_one_datagram() {
    let rx = peer("127.0.0.1");
    run_with_stdin(&["send", &target(&rx), "--whole"], b"a\nb\n").expect_code(0);
    assert_eq!(recv(&rx).0, b"a\nb\n");
    let dir = std::env::temp_dir().join(format!("dgram-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload.hex");
    std::fs::write(&file, "de ad\nbe ef\n").unwrap();
    run(&["send", &target(&rx), "--file", file.to_str().unwrap(), "-x"]).expect_code(0);
    assert_eq!(recv(&rx).0, [0xde, 0xad, 0xbe, 0xef]);
    let missing = dir.join("missing");
    run(&["send", &target(&rx), "--file", missing.to_str().unwrap()])
        .expect_code(2)
        .expect_stderr("cannot read --file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn encodings_decode_before_sending() {
    let rx = peer("127.0.0.1");
    let t = target(&rx);
    run(&["send", &t, "-x", "0x68 69"]).expect_code(0);
    assert_eq!(recv(&rx).0, b"hi");
    run(&["send", &t, "--base64", "aGk="]).expect_code(0);
    assert_eq!(recv(&rx).0, b"hi");
    run(&["send", &t, "-e", r"a\tb\x00\n"]).expect_code(0);
    assert_eq!(recv(&rx).0, b"a\tb\0\n");
    run_with_stdin(&["send", &t, "-x"], b"0102\n03 04\n").expect_code(0);
    assert_eq!(recv(&rx).0, [1, 2]);
    assert_eq!(recv(&rx).0, [3, 4]);
}

#[test]
fn bad_encodings_send_nothing() {
    let rx = peer("127.0.0.1");
    let t = target(&rx);
    run(&["send", &t, "-x", "abc"])
        .expect_code(2)
        .expect_stderr("odd number of hex digits");
    run(&["send", &t, "-e", r"\q"])
        .expect_code(2)
        .expect_stderr("unknown escape");
    run(&["send", &t, "--base64", "@@"])
        .expect_code(2)
        .expect_stderr("invalid base64");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

#[test]
fn the_largest_datagram_arrives_whole_and_one_more_byte_is_refused() {
    let rx = peer("127.0.0.1");
    run(&["send", &target(&rx), "--size", "65507"]).expect_code(0);
    assert_eq!(recv(&rx).0.len(), 65_507);
    run(&["send", &target(&rx), "--size", "65508"])
        .expect_code(2)
        .expect_stderr("65508 bytes is larger than the IPv4 UDP limit of 65507");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
    let rx6 = peer("::1");
    run(&["send", &target(&rx6), "--size", "65527"]).expect_code(0);
    assert_eq!(recv(&rx6).0.len(), 65_527);
    run(&["send", &target(&rx6), "--size", "65528"])
        .expect_code(2)
        .expect_stderr("IPv6 UDP limit of 65527");
}

#[test]
fn an_oversize_line_stops_the_run_after_the_lines_before_it() {
    let rx = peer("127.0.0.1");
    let mut input = b"one\ntwo\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 65_508));
    input.extend_from_slice(b"\nfour\n");
    run_with_stdin(&["send", &target(&rx)], &input)
        .expect_code(2)
        .expect_stderr("line 3: larger than the IPv4 UDP limit of 65507 bytes");
    assert_eq!(recv(&rx).0, b"one");
    assert_eq!(recv(&rx).0, b"two");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

/// Feed `dgram ARGS` an endless stdin until it exits; returns the run and how many
/// bytes it took before it did.
fn with_endless_stdin(args: &[&str], pattern: &'static [u8]) -> (crate::harness::Run, u64) {
    use std::io::Write;
    let mut g = crate::harness::spawn(args, None);
    let mut pipe = g.child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = pattern.repeat((1 << 20) / pattern.len().max(1));
        let mut written = 0u64;
        // At most 4 GiB: a dgram that read it all would have failed the test long before.
        while written < 4 << 30 && pipe.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        written
    });
    let run = g.finish();
    (run, writer.join().unwrap())
}

#[test]
fn no_input_is_read_past_what_one_datagram_can_carry() {
    // guards: --whole and --lines on an endless pipe are refused after about 64 KiB, not
    // read to the end (which grew to 5.8 GB for 3 GB of input)
    let rx = peer("127.0.0.1");
    let t = target(&rx);
    let (run, written) = with_endless_stdin(&["send", &t, "--whole"], b"\0");
    run.expect_code(2).expect_stderr(
        "stdin (--whole) is at least 65508 bytes: larger than the IPv4 UDP limit of 65507 bytes",
    );
    assert!(written < 64 << 20, "{written} bytes taken before refusing");
    let (run, written) = with_endless_stdin(&["send", &t], b"x");
    run.expect_code(2)
        .expect_stderr("line 1: larger than the IPv4 UDP limit");
    assert!(written < 64 << 20, "{written} bytes taken before refusing");
    let (run, _) = with_endless_stdin(&["send", &t, "-x", "--whole"], b"00");
    run.expect_code(2)
        .expect_stderr("stdin (--whole, -x) is at least 458579 bytes: more than any datagram up to the IPv4 UDP limit of 65507 bytes is written in");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

#[test]
fn sizes_are_checked_before_anything_is_allocated() {
    // guards: --size 2000000000 allocated 1.9 GB before refusing; 99999999999 aborted
    let rx = peer("127.0.0.1");
    let t = target(&rx);
    for size in ["2000000000", "99999999999", "4G"] {
        run(&["send", &t, "--size", size])
            .expect_code(2)
            .expect_stderr("is larger than the IPv4 UDP limit of 65507 bytes");
    }
    run(&["send", &t, "--size", "4G"]).expect_stderr("4294967296 bytes");
    // Sizes take the same suffixes as every size-valued flag.
    run(&["send", &t, "--size", "1K"]).expect_code(0);
    assert_eq!(recv(&rx).0.len(), 1024);
    run(&["send", &t, "--size", "4X"])
        .expect_code(2)
        .expect_stderr("like 1400, 64K, 4M or 1G");
    // A file is refused by its size, without being read: a sparse 3 GB file, and
    // /dev/zero, whose size is not known ahead.
    let dir = std::env::temp_dir().join(format!("dgram-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sparse = dir.join("sparse");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    run(&["send", &t, "--file", sparse.to_str().unwrap()])
        .expect_code(2)
        .expect_stderr("is 3221225472 bytes: larger than the IPv4 UDP limit");
    run(&["send", &t, "--file", "/dev/zero"])
        .expect_code(2)
        .expect_stderr("/dev/zero is more than 65507 bytes");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

/// A receiver with UDP GRO on: a GSO send reaches it as one merged buffer, as a capture
/// on the sending host would show it (SPEC §1), so each `recv` is one packet.
#[cfg(target_os = "linux")]
fn gro_peer() -> std::net::UdpSocket {
    use std::os::fd::AsRawFd;
    let s = peer("127.0.0.1");
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on our own socket with a live int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_GRO: {}", std::io::Error::last_os_error());
    s
}

#[cfg(target_os = "linux")]
#[test]
fn small_sends_leave_one_packet_per_datagram() {
    // guards: `send -n 2 x` left as one GSO super-packet `xx`, which tcpdump shows merged
    let rx = gro_peer();
    run(&["send", &target(&rx), "only", "-n", "2", "-vv"])
        .expect_code(0)
        .expect_stdout(b"");
    assert_eq!(recv(&rx).0, b"only");
    assert_eq!(recv(&rx).0, b"only");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
    // A bulk send may merge (that is what makes it fast), says so with -v, and
    // --no-gso stops it.
    let r = run(&["send", &target(&rx), "ab", "-n", "1000", "-v"]);
    r.expect_code(0).expect_stderr("UDP GSO on");
    let merged = recv(&rx).0;
    assert!(
        merged.len() > 2 && merged.len().is_multiple_of(2),
        "{} bytes",
        merged.len()
    );
    while arrives_within(&rx, Duration::from_millis(100)) {}
    let r = run(&["send", &target(&rx), "ab", "-n", "1000", "-v", "--no-gso"]);
    r.expect_code(0);
    assert!(!r.stderr.contains("GSO on"), "{}", r.stderr);
    assert_eq!(recv(&rx).0, b"ab");
}

#[test]
fn count_repeats_and_limits_lines() {
    let rx = peer("127.0.0.1");
    run(&["send", &target(&rx), "x", "-n", "5"]).expect_code(0);
    for _ in 0..5 {
        assert_eq!(recv(&rx).0, b"x");
    }
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
    run_with_stdin(&["send", &target(&rx), "-n", "2"], b"a\nb\nc\n").expect_code(0);
    assert_eq!(recv(&rx).0, b"a");
    assert_eq!(recv(&rx).0, b"b");
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

#[test]
fn interval_and_rate_pace_the_datagrams() {
    let rx = peer("127.0.0.1");
    // guards: the test checked only a lower bound on the whole run, so a sender that
    // waited a second between datagrams passed. The gaps are measured where the
    // datagrams arrive, both ways: the span at least what was asked and no gap near zero
    // (pacing is against deadlines, so one late datagram shortens the gap after it: a
    // loaded host can make one gap short, never all of them), and never long (a
    // generous bound: the machine is shared).
    let arrivals = |n: usize, args: &[&str]| -> Vec<Duration> {
        let mut g = crate::harness::spawn(args, None);
        g.close_stdin();
        let times: Vec<std::time::Instant> = (0..n)
            .map(|_| {
                recv(&rx);
                std::time::Instant::now()
            })
            .collect();
        g.finish().expect_code(0);
        times.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let t = target(&rx);
    let gaps = arrivals(4, &["send", &t, "x", "-n", "4", "-i", "50ms"]);
    let span: Duration = gaps.iter().sum();
    assert!(span >= Duration::from_millis(145), "{gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(5)),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_millis(400)),
        "{gaps:?}"
    );
    // --rate 200: 5 ms apart, 20 gaps in about 100 ms.
    let gaps = arrivals(21, &["send", &t, "x", "-n", "21", "--rate", "200"]);
    let span: Duration = gaps.iter().sum();
    assert!(span >= Duration::from_millis(95), "{span:?}");
    assert!(
        span <= Duration::from_millis(600),
        "{span:?} for 20 gaps of 5 ms"
    );
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_millis(200)),
        "{gaps:?}"
    );
    assert!(
        !arrives_within(&rx, Duration::from_millis(50)),
        "no more than asked"
    );
}

#[test]
fn duration_repeats_until_it_ends() {
    let rx = peer("127.0.0.1");
    let r = run(&[
        "send",
        &target(&rx),
        "tick",
        "--duration",
        "300ms",
        "--rate",
        "100",
    ]);
    r.expect_code(0);
    assert!(r.elapsed >= Duration::from_millis(290), "{:?}", r.elapsed);
    let mut n = 0;
    while arrives_within(&rx, Duration::from_millis(200)) {
        n += 1;
    }
    assert!((15..=45).contains(&n), "{n} datagrams in 300 ms at 100/s");
}

#[test]
fn reply_prints_the_reply_and_exits_0() {
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 1, |req| Some([b"re: ", req].concat()));
    let r = run(&["send", &t, "ping", "--reply"]);
    r.expect_code(0).expect_stdout(b"re: ping");
    assert_eq!(echo.join().unwrap()[0].0, b"ping");
}

#[test]
fn only_replies_from_the_target_count() {
    // guards: a stranger's datagram to our port is not taken for the reply
    let server = peer("127.0.0.1");
    let stranger = peer("127.0.0.2");
    let t = target(&server);
    let echo = std::thread::spawn(move || {
        let (_, client) = recv(&server);
        // In this order, from one thread: on loopback the stranger's datagram reaches the
        // client's port first, and must not be taken for the reply.
        stranger.send_to(b"stranger", client).unwrap();
        server.send_to(b"real", client).unwrap();
    });
    run(&["send", &t, "q", "-r"])
        .expect_code(0)
        .expect_stdout(b"real");
    echo.join().unwrap();
}

#[test]
fn a_closed_port_is_connection_refused_exit_3_at_once() {
    let closed = peer("127.0.0.1");
    let t = target(&closed);
    drop(closed);
    let r = run(&["send", &t, "hi", "--reply"]);
    r.expect_code(3)
        .expect_stderr(&format!("connection refused: nothing is listening on {t}"));
    // Exit 3, not the timeout's exit 1: the refusal was heard, not waited out.
    // Without --reply too: the ICMP error is already queued when dgram exits.
    run(&["send", &t, "hi"])
        .expect_code(3)
        .expect_stderr("connection refused");
    run(&["send", &t, "hi", "-n", "3"])
        .expect_code(3)
        .expect_stderr("connection refused");
}

#[test]
fn a_silent_peer_gives_exit_1_after_all_retries() {
    let silent = peer("127.0.0.1");
    let r = run(&[
        "send",
        &target(&silent),
        "q",
        "--reply",
        "-w",
        "200ms",
        "--retries",
        "2",
    ]);
    r.expect_code(1)
        .expect_stderr("no reply from")
        .expect_stderr("after 3 tries of 200ms");
    assert!(r.elapsed >= Duration::from_millis(600), "{:?}", r.elapsed);
    // Each retry sent the same datagram again.
    for _ in 0..3 {
        assert_eq!(recv(&silent).0, b"q");
    }
}

#[test]
fn expect_checks_the_reply() {
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 2, |req| Some(req.to_vec()));
    run(&["send", &t, "hello world", "--expect", "world"]).expect_code(0);
    // guards: a mismatch printed two lines and never what came back.
    let r = run(&["send", &t, "hel\x01lo", "-e", "--expect", "bye"]);
    r.expect_code(1);
    assert_eq!(
        r.stderr,
        format!("dgram: expected 'bye', got 'hel\\x01lo' (6 bytes from {t})\n")
    );
    assert_eq!(r.stdout, b"hel\x01lo", "the reply itself, whole, on stdout");
    echo.join().unwrap();
}

#[test]
fn reply_formats_carry_rtt_and_hex_defaults_to_hexdump() {
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 2, |req| Some(req.to_vec()));
    let r = run(&["send", &t, "hi", "-r", "-f", "json"]);
    r.expect_code(0);
    let v: serde_json::Value =
        serde_json::from_slice(&r.stdout).unwrap_or_else(|_| r.fail("not JSON"));
    assert_eq!(v["text"], "hi");
    assert_eq!(v["peer"], t);
    assert!(v["rtt_us"].as_u64().is_some(), "{v}");
    let r = run(&["send", &t, "-x", "6869", "-r"]);
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(
        out.starts_with(&format!("{t} 2 bytes")) && out.contains("68 69") && out.contains("|hi|"),
        "{out}"
    );
    echo.join().unwrap();
}

#[test]
fn collect_prints_every_responder_and_fails_on_silence() {
    let a = peer("127.0.0.1");
    let b = peer("127.0.0.3");
    let t = target(&a);
    let helper = std::thread::spawn(move || {
        let (_, client) = recv(&a);
        a.send_to(b"from a", client).unwrap();
        b.send_to(b"from b", client).unwrap();
    });
    let r = run(&["send", &t, "who", "--collect", "-w", "300ms", "-f", "line"]);
    r.expect_code(0);
    helper.join().unwrap();
    let out = r.stdout_str();
    assert!(
        out.contains("from a\n") && out.contains("from b\n"),
        "{out}"
    );
    let silent = peer("127.0.0.1");
    run(&["send", &target(&silent), "who", "--collect", "-w", "100ms"])
        .expect_code(1)
        .expect_stderr("no reply to --collect");
}

#[test]
fn bind_chooses_the_source_address() {
    let rx = peer("127.0.0.1");
    run(&["send", &target(&rx), "x", "--bind", "127.0.0.7:0"]).expect_code(0);
    assert_eq!(recv(&rx).1.ip().to_string(), "127.0.0.7");
}

#[test]
fn broadcast_needs_the_flag() {
    run(&["send", "127.255.255.255:9", "hi"])
        .expect_code(2)
        .expect_stderr("127.255.255.255 is a broadcast address: add --broadcast");
    run(&["send", "255.255.255.255:9", "hi"])
        .expect_code(2)
        .expect_stderr("255.255.255.255 is a broadcast address: add --broadcast to send to it");
}

#[test]
fn socket_options_are_accepted_and_checked() {
    let rx = peer("127.0.0.1");
    run(&[
        "send",
        &target(&rx),
        "x",
        "--ttl",
        "5",
        "--tos",
        "0x10",
        "--sndbuf",
        "64K",
        "--dont-fragment",
    ])
    .expect_code(0);
    assert_eq!(recv(&rx).0, b"x");
    run(&["send", &target(&rx), "x", "--ttl", "256"]).expect_code(2);
}

#[test]
fn stats_summarise_sends_and_round_trips() {
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 3, |req| Some(req.to_vec()));
    let r = run(&["send", &t, "x", "-n", "3", "-r", "--stats", "-f", "json"]);
    r.expect_code(0);
    let line = r.stderr.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|_| r.fail("last stderr line is not JSON"));
    assert_eq!(v["sent"], 3);
    assert_eq!(v["received"], 3);
    assert_eq!(v["lost"], 0);
    for k in ["min", "p50", "p90", "p99", "max"] {
        assert!(v["rtt_us"][k].is_u64(), "{k} in {v}");
    }
    echo.join().unwrap();
    let rx = peer("127.0.0.1");
    let r = run(&["send", &target(&rx), "abc", "-n", "2", "--stats"]);
    r.expect_code(0).expect_stderr("sent 2 datagrams, 6 bytes");
}

#[test]
fn ipv6_targets_work() {
    let rx = peer("::1");
    run(&["send", &target(&rx), "six"]).expect_code(0);
    assert_eq!(recv(&rx).0, b"six");
    run(&["send", "-4", &target(&rx), "six"])
        .expect_code(2)
        .expect_stderr("address family mismatch: '[::1]:")
        .expect_stderr("is IPv6 but -4 was given");
}

#[test]
fn a_terminal_on_stdin_is_interactive() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 2, |req| Some([b"re:", req, b"\n"].concat()));
    let (mut master, slave) = crate::harness::pty();
    let mut child = Command::new(crate::harness::bin())
        .args(["send", &t])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    for line in ["one", "two"] {
        master.write_all(format!("{line}\n").as_bytes()).unwrap();
        let want = format!("re:{line}\n");
        // Each reply is printed as it arrives, before any more input.
        while !String::from_utf8_lossy(&seen).contains(&want) {
            seen.extend(
                rx.recv_timeout(crate::harness::LIMIT)
                    .expect("a reply printed"),
            );
        }
    }
    master.write_all(&[4]).unwrap(); // Ctrl-D: end of input
    let deadline = std::time::Instant::now() + crate::harness::LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("interactive send did not end at Ctrl-D");
        }
        std::thread::sleep(Duration::from_millis(5)); // polling interval of a bounded wait
    };
    assert!(status.success(), "{status:?}");
    let requests: Vec<Vec<u8>> = echo.join().unwrap().into_iter().map(|(r, _)| r).collect();
    assert_eq!(requests, [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn sigint_stops_a_paced_send_at_once_with_130() {
    let rx = peer("127.0.0.1");
    let g = crate::harness::spawn(
        &[
            "send",
            &target(&rx),
            "x",
            "--rate",
            "2",
            "--duration",
            "30s",
            "--stats",
        ],
        Some(b""),
    );
    // The first datagram leaves at once; the next is 500 ms away when the signal comes.
    assert_eq!(recv(&rx).0, b"x");
    g.signal(libc::SIGINT);
    let r = g.finish();
    r.expect_code(130).expect_stderr("sent 1 datagram,");
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
}

#[test]
fn logs_go_to_stderr_and_never_to_stdout() {
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 1, |req| Some(req.to_vec()));
    let r = run(&["send", &t, "data", "-r", "-vvv"]);
    r.expect_code(0)
        .expect_stdout(b"data")
        .expect_stderr("dgram: debug:");
    echo.join().unwrap();
    // RUST_LOG overrides -q.
    let out = std::process::Command::new(crate::harness::bin())
        .args(["-q", "send", "127.255.255.255:9", "x", "--broadcast"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dgram: debug:"));
    // A RUST_LOG that does not parse changes nothing, and says so; the send goes on.
    let rx = peer("127.0.0.1");
    let out = std::process::Command::new(crate::harness::bin())
        .args(["send", &target(&rx), "still sent"])
        .env("RUST_LOG", "dgram_cli=loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(recv(&rx).0, b"still sent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "dgram: warning: RUST_LOG=\"dgram_cli=loud\" ignored: it takes LEVEL or TARGET=LEVEL,... (debug, dgram_cli=trace)\n"
    );
}

#[test]
fn long_sends_show_progress_on_a_terminal_only() {
    use std::process::{Command, Stdio};
    let rx = peer("127.0.0.1");
    let t = target(&rx);
    let (master, slave) = crate::harness::pty();
    let child = Command::new(crate::harness::bin())
        .args(["send", &t, "x", "-n", "300", "--rate", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let guard = crate::harness::Guard::adopt(child, "send -n 300 --rate 200 on a pty".into());
    let (tx, rx_lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 4096];
        // Ends with EIO once the run has ended and its terminal end is closed.
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + crate::harness::LIMIT;
    while !String::from_utf8_lossy(&seen).contains("/300 datagrams") {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress line: {:?}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(chunk) = rx_lines.recv_timeout(Duration::from_millis(100)) {
            seen.extend(chunk);
        }
    }
    guard.finish().expect_code(0);
    while let Ok(chunk) = rx_lines.recv_timeout(crate::harness::LIMIT) {
        seen.extend(chunk);
    }
    let text = String::from_utf8_lossy(&seen).to_string();
    // Each redraw is one line rewritten in place, with the rate and the time left; the
    // run leaves the line cleared for what follows.
    assert!(text.starts_with("\rsent "), "{text:?}");
    assert!(
        text.contains("/s  ") && text.contains(" left  ["),
        "{text:?}"
    );
    assert!(!text.contains('\n'), "the line never scrolls: {text:?}");
    assert!(text.ends_with("\r\x1b[K"), "left uncleared: {text:?}");
    // The same run with -q draws nothing.
    let (master, slave) = crate::harness::pty();
    let status = Command::new(crate::harness::bin())
        .args(["-q", "send", &t, "x", "-n", "300", "--rate", "200"])
        .stdin(Stdio::null())
        .stderr(Stdio::from(slave))
        .status()
        .unwrap();
    assert!(status.success());
    // Everything the run wrote is in the pty's buffer now; read it without blocking.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        use std::os::fd::AsRawFd;
        let fd = master.as_raw_fd();
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        );
    }
    let mut buf = [0u8; 4096];
    // Nothing to read is EAGAIN, or EIO once the terminal's other end is closed (pty(7));
    // any other error is a failure, not "drew nothing".
    let n = match std::io::Read::read(&mut &master, &mut buf) {
        Ok(n) => n,
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::EIO) =>
        {
            0
        }
        Err(e) => panic!("reading the terminal: {e}"),
    };
    assert_eq!(String::from_utf8_lossy(&buf[..n]), "", "-q drew something");
}

#[test]
fn an_interactive_session_on_a_terminal_prints_each_reply_as_a_line() {
    // guards: each reply ran into the next prompt line (`hello therehello there`)
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = peer("127.0.0.1");
    let t = target(&server);
    let echo = responder(server, 2, |req| Some(req.to_vec()));
    let (mut master, slave) = crate::harness::pty();
    let child = Command::new(crate::harness::bin())
        .args(["send", &t])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = crate::harness::Guard::adopt(child, format!("dgram send {t}"));
    master.write_all(b"hello there\n").unwrap();
    // The terminal echoes the typed line; the reply follows on a line of its own.
    let screen =
        crate::harness::read_pty_until(&master, |s| s.matches("hello there\n").count() == 2);
    assert!(!screen.contains("therehello"), "{screen:?}");
    master.write_all(b"\x1b[2J\n").unwrap();
    let screen = crate::harness::read_pty_until(&master, |s| s.contains("\\x1b[2J\n"));
    assert!(
        screen.contains("\\x1b[2J\n"),
        "the reply escaped: {screen:?}"
    );
    master.write_all(&[4]).unwrap(); // Ctrl-D: end of input
    guard.finish().expect_code(0);
    assert_eq!(echo.join().unwrap().len(), 2);
}

#[test]
fn the_rtt_runs_from_before_the_send_to_the_reply() {
    // guards: the RTT was stamped after send() returned, so a loopback RTT read 1-4 µs.
    let server = peer("127.0.0.1");
    let t = target(&server);
    let late = responder(server, 2, |req| {
        std::thread::sleep(Duration::from_millis(20)); // the responder's think time, in the RTT
        Some(req.to_vec())
    });
    for extra in [&[][..], &["--retries", "1"]] {
        let mut line = vec!["send", t.as_str(), "ping", "--reply", "-f", "json"];
        line.extend_from_slice(extra);
        let r = run(&line);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(r.stdout_str().trim()).unwrap();
        let rtt = v["rtt_us"].as_u64().unwrap();
        assert!(
            (20_000..1_000_000).contains(&rtt),
            "rtt {rtt} µs for a 20 ms responder"
        );
    }
    late.join().unwrap();
}
