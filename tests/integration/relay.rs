//! `dgram relay`: sessions, impairment per direction, what it shows and records, and
//! what it does when the upstream is not there.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::{arrives_within, json_last_line, peer, recv, responder, run, tool, Server};

#[test]
fn round_trips_through_the_relay_are_byte_exact_and_sessions_apart() {
    let echo = Server::start(&["echo", "0"]);
    let relay = relay_to(echo.addr, &[]);
    let (a, b) = (peer("127.0.0.1"), peer("127.0.0.1"));
    for size in [0usize, 1, 1472, 8192, 65_507] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 13 + size) as u8).collect();
        a.send_to(&payload, relay.addr).unwrap();
        let (reply, from) = recv(&a);
        assert_eq!(reply, payload, "size {size}");
        assert_eq!(from, relay.addr, "replies come from the relay's address");
    }
    // Two clients at once: each gets only its own replies.
    a.send_to(b"from a", relay.addr).unwrap();
    b.send_to(b"from b", relay.addr).unwrap();
    assert_eq!(recv(&a).0, b"from a");
    assert_eq!(recv(&b).0, b"from b");
    assert!(!arrives_within(&a, Duration::from_millis(100)));
}

#[test]
fn the_server_sees_one_source_port_per_client() {
    let server = peer("127.0.0.1");
    let t = server.local_addr().unwrap().to_string();
    let seen = responder(server, 3, |req| Some(req.to_vec()));
    let relay = relay_to(&t, &[]);
    let (a, b) = (peer("127.0.0.1"), peer("127.0.0.1"));
    for (c, m) in [(&a, "a1"), (&b, "b1"), (&a, "a2")] {
        c.send_to(m.as_bytes(), relay.addr).unwrap();
        assert_eq!(recv(c).0, m.as_bytes());
    }
    let seen = seen.join().unwrap();
    assert_eq!(seen[0].1, seen[2].1, "a's session keeps its port");
    assert_ne!(seen[0].1, seen[1].1, "b has a session of its own");
    drop(relay);
}

#[test]
fn idle_sessions_close_and_the_longest_idle_is_evicted() {
    let echo = Server::start(&["echo", "0"]);
    let relay = relay_to(
        echo.addr,
        &["--idle-timeout", "200ms", "-v", "--stats", "-f", "json"],
    );
    let pid = relay.guard.child.id();
    let base = fds(pid);
    let c = peer("127.0.0.1");
    c.send_to(b"one", relay.addr).unwrap();
    assert_eq!(recv(&c).0, b"one");
    assert_eq!(fds(pid), base + 1, "a session holds one socket");
    relay.guard.wait_stderr("closed: idle for 200ms");
    assert_eq!(fds(pid), base, "a closed session's socket is released");
    c.send_to(b"two", relay.addr).unwrap();
    assert_eq!(recv(&c).0, b"two");
    relay.guard.signal(libc::SIGINT);
    let r = relay.finish();
    r.expect_code(130);
    let v = json_last_line(&r.stderr);
    assert_eq!(
        (
            v["sessions_opened"].as_u64(),
            v["sessions_expired"].as_u64()
        ),
        (Some(2), Some(1)),
        "{v}"
    );
    // --max-sessions 2 with three clients: the longest idle goes.
    let relay = relay_to(echo.addr, &["--max-sessions", "2", "-v"]);
    let clients = [peer("127.0.0.1"), peer("127.0.0.1"), peer("127.0.0.1")];
    for c in &clients {
        c.send_to(b"hi", relay.addr).unwrap();
        assert_eq!(recv(c).0, b"hi");
    }
    let first = clients[0].local_addr().unwrap();
    relay
        .guard
        .wait_stderr(&format!("session {first} evicted (--max-sessions 2)"));
}

#[test]
fn drops_apply_to_the_direction_asked() {
    let server = peer("127.0.0.1");
    let t = server.local_addr().unwrap().to_string();
    let pcap = std::env::temp_dir().join(format!("dgram-relay-drop-{}.pcap", std::process::id()));
    let relay = relay_to(&t, &["--drop", "up=100%", "--pcap", pcap.to_str().unwrap()]);
    let c = peer("127.0.0.1");
    c.send_to(b"lost", relay.addr).unwrap();
    assert!(
        !arrives_within(&server, Duration::from_millis(300)),
        "nothing goes up"
    );
    let relay_port = relay.addr.port();
    relay.guard.signal(libc::SIGTERM);
    relay.finish().expect_code(143);
    // The capture shows where it was lost: it came in on the client's leg, and never
    // left on the upstream's.
    if tool(
        "relay::drops_apply_to_the_direction_asked (tshark)",
        "tshark",
    ) {
        let rows = crate::harness::tshark_fields(
            &pcap,
            &[],
            &["udp.srcport", "udp.dstport", "udp.payload"],
        );
        let want = [
            c.local_addr().unwrap().port().to_string(),
            relay_port.to_string(),
            "6c6f7374".to_string(), // "lost"
        ];
        assert_eq!(rows, [want]);
    }
    std::fs::remove_file(&pcap).unwrap();
    let relay = relay_to(&t, &["--drop", "down=100%"]);
    c.send_to(b"up only", relay.addr).unwrap();
    let (got, from) = recv(&server);
    assert_eq!(got, b"up only");
    server.send_to(b"never back", from).unwrap();
    assert!(
        !arrives_within(&c, Duration::from_millis(300)),
        "nothing comes down"
    );
}

#[test]
fn the_same_seed_drops_the_same_datagrams() {
    let run_once = |seed: &str| -> Vec<u64> {
        let server = peer("127.0.0.1");
        let t = server.local_addr().unwrap().to_string();
        let relay = relay_to(&t, &["--drop", "up=50%", "--seed", seed]);
        run(&[
            "send",
            &relay.addr.to_string(),
            "--seq",
            "--size",
            "64",
            "-n",
            "100",
            "--rate",
            "2000",
        ])
        .expect_code(0);
        let mut got = Vec::new();
        let mut buf = [0u8; 128];
        server
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while let Ok(n) = server.recv(&mut buf) {
            let header = dgram_cli::wire::seq::parse(&buf[..n]).expect("a --seq header");
            got.push(header.seq);
        }
        drop(relay);
        got
    };
    let first = run_once("7");
    let second = run_once("7");
    assert!(
        first.len() > 20 && first.len() < 80,
        "{} of 100 went up",
        first.len()
    );
    assert_eq!(first, second);
    assert_ne!(first, run_once("8"), "another seed, other decisions");
}

#[test]
fn a_delay_down_adds_its_time_without_serialising() {
    let echo = Server::start(&["echo", "0"]);
    let relay = relay_to(echo.addr, &["--delay", "down=100ms"]);
    let started = Instant::now();
    let r = run(&[
        "send",
        &relay.addr.to_string(),
        "--seq",
        "--size",
        "64",
        "-n",
        "40",
        "--rate",
        "1000",
        "-r",
        "--stats",
        "-f",
        "json",
    ]);
    r.expect_code(0);
    let v = json_last_line(&r.stderr);
    assert_eq!(v["received"], 40, "{v}");
    assert!(v["rtt_us"]["min"].as_u64().unwrap() >= 100_000, "{v}");
    // Forty delayed replies in flight at once: not 40 x 100 ms (a generous bound).
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_upstream_with_nothing_listening_is_counted_and_never_stops_the_relay() {
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = closed.local_addr().unwrap().to_string();
    drop(closed);
    let relay = relay_to(&t, &["--stats", "-f", "json"]);
    let (a, b) = (peer("127.0.0.1"), peer("127.0.0.1"));
    for _ in 0..3 {
        a.send_to(b"anyone?", relay.addr).unwrap();
        b.send_to(b"anyone?", relay.addr).unwrap();
    }
    relay.guard.wait_stderr("connection refused");
    assert!(!arrives_within(&a, Duration::from_millis(100)));
    // Still serving: a new client still gets a session of its own.
    let c = peer("127.0.0.1");
    c.send_to(b"and me?", relay.addr).unwrap();
    relay
        .guard
        .wait_stderr(&format!("for client {}", c.local_addr().unwrap()));
    relay.guard.signal(libc::SIGTERM);
    let r = relay.finish();
    r.expect_code(143);
    let v = json_last_line(&r.stderr);
    assert!(
        v["icmp_errors"]["port_unreachable"].as_u64().unwrap_or(0) >= 2,
        "by kind: {v}"
    );
    assert_eq!(v["sessions_opened"], 3);
}

#[test]
fn dig_through_the_relay_to_dnsmasq_shows_both_legs() {
    if !tool("relay::dig_through_the_relay", "dig")
        || !tool("relay::dig_through_the_relay", "dnsmasq")
    {
        return;
    }
    // The DNS tests' dnsmasq, answered once it is up: test.example is 127.0.0.1.
    let Some((_dnsmasq, upstream)) = crate::dns::dnsmasq() else {
        return;
    };
    let port = upstream.port();
    let dir = std::env::temp_dir().join(format!("dgram-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("both.pcap");
    let relay = relay_to(
        format!("127.0.0.1:{port}"),
        &["--dns", "--pcap", pcap.to_str().unwrap(), "-n", "1"],
    );
    let dig = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &relay.addr.port().to_string(),
            "+tries=3",
            "+time=1",
            "test.example",
            "A",
            "+short",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&dig.stdout).trim(), "127.0.0.1");
    let relay_port = relay.addr.port().to_string();
    let r = relay.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    let up = format!(" -> 127.0.0.1:{port}\n;; ");
    let down = format!("127.0.0.1:{port} -> ");
    assert!(out.contains(&up) && out.contains(&down), "{out}");
    assert!(
        out.contains("status: NOERROR") && out.contains("test.example.\t0\tIN\tA\t127.0.0.1"),
        "{out}"
    );
    if tool("relay::dig_through_the_relay (tshark)", "tshark") {
        let rows = crate::harness::tshark_fields(
            &pcap,
            // Both legs decoded as DNS (a random port may be some other protocol's).
            &[
                "-d",
                &format!("udp.port=={port},dns"),
                "-d",
                &format!("udp.port=={relay_port},dns"),
            ],
            &[
                "udp.srcport",
                "udp.dstport",
                "dns.qry.name",
                "dns.flags.response",
            ],
        );
        // Both legs, each way: dig -> relay, relay -> dnsmasq, and back.
        let port = port.to_string();
        let legs: Vec<(bool, bool, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r[0] == relay_port || r[1] == relay_port,
                    r[0] == port || r[1] == port,
                    r[3].as_str(),
                )
            })
            .collect();
        assert_eq!(
            legs,
            [
                (true, false, "0"),
                (false, true, "0"),
                (false, true, "1"),
                (true, false, "1")
            ],
            "{rows:?}"
        );
        assert!(rows.iter().all(|r| r[2] == "test.example"), "{rows:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn ten_thousand_clients_for_thirty_seconds_keep_memory_and_descriptors_bounded() {
    let echo = Server::start(&["echo", "0"]);
    let relay = relay_to(
        echo.addr,
        &["--max-sessions", "1000", "--stats", "-f", "json"],
    );
    let pid = relay.guard.child.id();
    let base_fds = fds(pid);
    let c = peer("127.0.0.1");
    c.send_to(b"warm", relay.addr).unwrap();
    assert_eq!(recv(&c).0, b"warm");
    let rss_warm = rss_kib(pid);
    let started = Instant::now();
    let mut i = 0u32;
    let mut peak_fds = 0;
    while started.elapsed() < Duration::from_secs(30) {
        // 10,000 client addresses across 127/8, each a new session; a few datagrams each.
        let ip = format!(
            "127.{}.{}.{}",
            10 + (i / 62_500) % 200,
            (i / 250) % 250,
            1 + i % 250
        );
        let s = UdpSocket::bind((ip.as_str(), 0)).unwrap();
        for _ in 0..3 {
            let _ = s.send_to(b"load", relay.addr);
        }
        i = (i + 1) % 10_000;
        if i.is_multiple_of(500) {
            peak_fds = peak_fds.max(fds(pid));
            std::thread::sleep(Duration::from_millis(10)); // pacing gap: ~40,000 datagrams/s at most
        }
    }
    peak_fds = peak_fds.max(fds(pid));
    assert!(
        peak_fds <= base_fds + 1000 + 2,
        "{peak_fds} descriptors (base {base_fds})"
    );
    let rss = rss_kib(pid);
    assert!(
        rss < 32 * 1024 && rss < rss_warm + 16 * 1024,
        "RSS {rss} KiB (warm {rss_warm})"
    );
    // A probe is still answered (a generous bound: it catches a hang, not slowness).
    let probe = peer("127.0.0.3");
    let t = Instant::now();
    let answered = (0..20).any(|_| {
        probe.send_to(b"probe", relay.addr).unwrap();
        arrives_within(&probe, Duration::from_millis(250))
    });
    assert!(
        answered,
        "no answer to the probe after the load, {:?}",
        t.elapsed()
    );
    relay.guard.signal(libc::SIGTERM);
    let r = relay.finish();
    let v = json_last_line(&r.stderr);
    assert!(v["sessions_evicted"].as_u64().unwrap() > 5_000, "{v}");
    assert!(v["sessions"].as_u64().unwrap() <= 1000, "{v}");
}

/// A relay on a port of its own to `upstream`, with `flags`, once it has announced itself.
fn relay_to(upstream: impl std::fmt::Display, flags: &[&str]) -> Server {
    let upstream = upstream.to_string();
    let mut args = vec!["relay", "0", "--to", &upstream];
    args.extend_from_slice(flags);
    Server::start(&args)
}

#[test]
fn allow_count_duration_and_the_open_relay_warning() {
    let echo = Server::start(&["echo", "0"]);
    // --allow: a client from elsewhere is dropped and counted; --count 2 ends the run
    // once two went up and the replies stopped.
    let relay = relay_to(
        echo.addr,
        &[
            "--allow",
            "127.0.0.2/32",
            "--count",
            "2",
            "--stats",
            "-f",
            "json",
        ],
    );
    let (stranger, friend) = (peer("127.0.0.1"), peer("127.0.0.2"));
    stranger.send_to(b"let me in", relay.addr).unwrap();
    for m in [&b"one"[..], b"two"] {
        friend.send_to(m, relay.addr).unwrap();
        assert_eq!(recv(&friend).0, m);
    }
    assert!(!arrives_within(&stranger, Duration::from_millis(50)));
    let r = relay.finish();
    r.expect_code(0);
    let v = json_last_line(&r.stderr);
    assert_eq!(
        (v["filtered"].as_u64(), v["sent"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert!(
        !r.stderr.contains("takes clients from other hosts"),
        "{}",
        r.stderr
    );
    // --count unmet when --timeout ends it: exit 1, saying how many.
    relay_to(echo.addr, &["--count", "5", "--timeout", "200ms"])
        .finish()
        .expect_code(1)
        .expect_stderr("relayed 0 of 5 datagrams up");
    // --duration ends it with exit 0.
    let start = Instant::now();
    relay_to(echo.addr, &["--duration", "300ms"])
        .finish()
        .expect_code(0);
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Bound off loopback without --allow: a warning, since anyone can use the upstream.
    let open = Server::start(&[
        "relay",
        "0.0.0.0:0",
        "--to",
        &echo.addr.to_string(),
        "--duration",
        "100ms",
    ]);
    open.finish()
        .expect_code(0)
        .expect_stderr("takes clients from other hosts: anyone who can reach it can use");
    let guarded = Server::start(&[
        "relay",
        "0.0.0.0:0",
        "--to",
        &echo.addr.to_string(),
        "--allow",
        "127.0.0.0/8",
        "--duration",
        "100ms",
    ]);
    let r = guarded.finish();
    r.expect_code(0);
    assert!(!r.stderr.contains("takes clients"), "{}", r.stderr);
}

#[test]
fn corrupt_and_mtu_apply_only_the_way_they_name() {
    let echo = Server::start(&["echo", "0"]);
    let relay = relay_to(
        echo.addr,
        &[
            "--corrupt",
            "down=100%",
            "--mtu",
            "up=576",
            "--seed",
            "2",
            "--stats",
            "-f",
            "json",
        ],
    );
    let c = peer("127.0.0.1");
    // Up: 548 bytes pass (uncorrupted on the way up, corrupted on the way down), 549 do not.
    c.send_to(&[7; 548], relay.addr).unwrap();
    let (back, _) = recv(&c);
    let flipped: u32 = back.iter().map(|b| (b ^ 7).count_ones()).sum();
    assert_eq!((back.len(), flipped), (548, 1));
    c.send_to(&[8; 549], relay.addr).unwrap();
    assert!(!arrives_within(&c, Duration::from_millis(200)));
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    assert_eq!(v["up"]["mtu_dropped"], 1, "{v}");
    assert_eq!(v["up"]["corrupted"], 0, "{v}");
    assert_eq!(v["down"]["corrupted"], 1, "{v}");
    assert_eq!(v["down"]["mtu_dropped"], 0, "{v}");
}
