//! `dgram echo`: byte-exact replies, the safety policy, the rate limit, impairment.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::{arrives_within, peer, recv, run, Server};

/// Send each payload and collect what comes back within `wait` after the last one.
fn exchange(
    from: &UdpSocket,
    to: SocketAddr,
    payloads: &[Vec<u8>],
    wait: Duration,
) -> Vec<Vec<u8>> {
    for p in payloads {
        from.send_to(p, to).unwrap();
    }
    let mut got = Vec::new();
    from.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = from.recv_from(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

fn numbered(n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|i| i.to_be_bytes().to_vec()).collect()
}

#[test]
fn replies_are_byte_identical_for_every_size() {
    let s = Server::start(&["echo", "0"]);
    let c = peer("127.0.0.1");
    for size in [0usize, 1, 1472, 8192, 65_507] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        c.send_to(&payload, s.addr).unwrap();
        let (reply, from) = recv(&c);
        assert_eq!(reply, payload, "size {size}");
        assert_eq!(from, s.addr);
    }
}

#[test]
fn dgram_send_reply_against_dgram_echo() {
    let s = Server::start(&["echo", "0"]);
    run(&["send", &s.addr.to_string(), "ping", "--expect", "ping"])
        .expect_code(0)
        .expect_stdout(b"ping");
    let s6 = Server::start(&["echo", "[::1]:0"]);
    run(&["send", &s6.addr.to_string(), "six", "-r"])
        .expect_code(0)
        .expect_stdout(b"six");
}

#[test]
fn privileged_source_ports_get_no_reply_while_a_twin_does() {
    let Some(low) = crate::harness::privileged_peer() else {
        crate::harness::skip(
            "echo::privileged_source_ports",
            "binding a port below 1024 needs root",
        );
        return;
    };
    let s = Server::start(&["echo", "0", "--stats", "-f", "json"]);
    low.send_to(b"twin", s.addr).unwrap();
    assert!(
        !arrives_within(&low, Duration::from_millis(200)),
        "a privileged port got a reply"
    );
    let high = peer("127.0.0.1");
    high.send_to(b"twin", s.addr).unwrap();
    assert_eq!(recv(&high).0, b"twin");
    s.guard.signal(libc::SIGTERM);
    let r = s.finish();
    let v: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(v["refused"]["privileged_port"], 1, "{v}");
    assert_eq!(v["echoed"], 1);
}

#[test]
fn datagrams_to_a_broadcast_address_are_refused_and_replies_come_from_the_address_asked() {
    // Bound to the wildcard (still loopback traffic only): the destination decides.
    let s = Server::start(&["echo", "0.0.0.0:0", "--stats"]);
    let port = s.addr.port();
    let b = peer("0.0.0.0");
    b.set_broadcast(true).unwrap();
    b.send_to(b"to all", ("127.255.255.255", port)).unwrap();
    assert!(
        !arrives_within(&b, Duration::from_millis(200)),
        "a broadcast got a reply"
    );
    // A connected client only accepts replies from 127.0.0.5: PKTINFO picks the source.
    let c = peer("127.0.0.1");
    c.connect(("127.0.0.5", port)).unwrap();
    c.send(b"unicast").unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&mut buf).expect("a reply from 127.0.0.5");
    assert_eq!(&buf[..n], b"unicast");
    s.guard.signal(libc::SIGINT);
    let r = s.finish();
    r.expect_code(130)
        .expect_stderr("broadcast_destination 1")
        // Bound off loopback: the warning says the rate limit is on.
        .expect_stderr(&format!(
            "echo on 0.0.0.0:{port} answers other hosts: rate limit of 1000 replies/s per source"
        ));
}

#[test]
fn drop_1_answers_nothing_and_drop_0_everything() {
    let s = Server::start(&["echo", "0", "--drop", "1"]);
    let c = peer("127.0.0.1");
    assert!(exchange(&c, s.addr, &numbered(20), Duration::from_millis(200)).is_empty());
    let s = Server::start(&["echo", "0", "--drop", "0%"]);
    assert_eq!(
        exchange(&c, s.addr, &numbered(20), Duration::from_millis(200)).len(),
        20
    );
}

fn survivors(seed: &str) -> BTreeSet<Vec<u8>> {
    let s = Server::start(&["echo", "0", "--drop", "0.3", "--seed", seed]);
    let c = peer("127.0.0.1");
    exchange(&c, s.addr, &numbered(300), Duration::from_millis(300))
        .into_iter()
        .collect()
}

#[test]
fn the_same_seed_drops_the_same_datagrams() {
    let a = survivors("7");
    let b = survivors("7");
    assert_eq!(a, b);
    assert!(
        (150..260).contains(&a.len()),
        "{} of 300 survived --drop 0.3",
        a.len()
    );
    assert_ne!(a, survivors("8"));
}

#[test]
fn drop_burst_loses_in_runs_at_the_rate_asked_and_counts_them() {
    // 20% long-run loss in runs of mean 5, seeded: the missing numbers come in runs, and
    // the stats count the drops and the runs.
    let s = Server::start(&[
        "echo",
        "0",
        "--drop",
        "20%",
        "--drop-burst",
        "5",
        "--seed",
        "3",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    let mut got = BTreeSet::new();
    for chunk in numbered(3000).chunks(100) {
        got.extend(exchange(&c, s.addr, chunk, Duration::from_millis(50)));
    }
    let lost: Vec<u32> = (0..3000u32)
        .filter(|i| !got.contains(i.to_be_bytes().as_slice()))
        .collect();
    let runs = 1 + lost.windows(2).filter(|w| w[1] != w[0] + 1).count();
    let mean = lost.len() as f64 / runs as f64;
    assert!(
        (450..750).contains(&lost.len()),
        "{} of 3000 lost",
        lost.len()
    );
    assert!(
        (3.0..8.0).contains(&mean),
        "mean run {mean} over {runs} runs"
    );
    s.guard.signal(libc::SIGTERM);
    let v = crate::harness::json_last_line(&s.finish().stderr);
    assert_eq!(v["dropped"], lost.len() as u64, "{v}");
    assert_eq!(v["drop_bursts"], runs as u64, "{v}");
    // Burst without a drop rate: refused, never silently nothing.
    run(&["echo", "0", "--drop-burst", "4"])
        .expect_code(2)
        .expect_stderr("--drop");
    run(&[
        "relay",
        "0",
        "--to",
        "127.0.0.1:9",
        "--drop",
        "up=5%",
        "--drop-burst",
        "down=4",
    ])
    .expect_code(2)
    .expect_stderr("give a --drop for the down direction too");
}

#[test]
fn delay_delays_without_serialising_replies() {
    let s = Server::start(&["echo", "0", "--delay", "100ms"]);
    let c = peer("127.0.0.1");
    let start = Instant::now();
    for p in numbered(30) {
        c.send_to(&p, s.addr).unwrap();
    }
    let first = recv(&c);
    let t_first = start.elapsed();
    for _ in 1..30 {
        recv(&c);
    }
    let t_last = start.elapsed();
    assert!(
        t_first >= Duration::from_millis(95),
        "first reply after {t_first:?}"
    );
    // Serialised, thirty delays would take three seconds; in parallel about 100 ms (a
    // generous bound, for a loaded machine).
    assert!(
        t_last < Duration::from_secs(2),
        "last reply after {t_last:?}"
    );
    assert_eq!(first.0, 0u32.to_be_bytes());
}

#[test]
fn duplicate_and_reorder_do_what_they_say() {
    let s = Server::start(&["echo", "0", "--duplicate", "1"]);
    let c = peer("127.0.0.1");
    let got = exchange(&c, s.addr, &numbered(5), Duration::from_millis(200));
    assert_eq!(got.len(), 10);
    let s = Server::start(&["echo", "0", "--reorder", "1", "--seed", "1"]);
    let got = exchange(
        &c,
        s.addr,
        &[b"1".to_vec(), b"2".to_vec()],
        Duration::from_millis(300),
    );
    assert_eq!(got, [b"2".to_vec(), b"1".to_vec()]);
}

#[test]
fn the_rate_limit_caps_a_flooding_source_and_serves_another_in_full() {
    let s = Server::start(&["echo", "0", "--rate-limit", "50"]);
    let flood = peer("127.0.0.1");
    let start = Instant::now();
    let got = exchange(&flood, s.addr, &numbered(500), Duration::from_millis(200));
    let t = start.elapsed().as_secs_f64();
    // Burst 2 x 50, plus 50/s for the time it took.
    let cap = (100.0 + 50.0 * t).ceil() as usize;
    assert!(
        got.len() <= cap && got.len() >= 100,
        "{} replies, cap {cap}",
        got.len()
    );
    let other = peer("127.0.0.2");
    assert_eq!(
        exchange(&other, s.addr, &numbered(20), Duration::from_millis(200)).len(),
        20
    );
}

#[test]
fn a_vanished_client_does_not_stop_the_server() {
    let s = Server::start(&[
        "echo", "0", "--delay", "50ms", "--stats", "-f", "json", "-v",
    ]);
    // Rounds of twenty vanished clients and a probe, until the server has logged an ICMP
    // error (-v). Loopback is exempt from the per-host ICMP limit but not from the
    // global one (net.ipv4.icmp_msgs_burst, 50 here), which every test sending to a
    // closed port shares in parallel: a round can meet an empty bucket.
    let (mut echoed, mut rounds) = (0, 0);
    let c = peer("127.0.0.1");
    loop {
        for _ in 0..20 {
            let gone = peer("127.0.0.1");
            gone.send_to(b"bye", s.addr).unwrap();
            drop(gone); // the reply will meet a closed port: ICMP unreachable
        }
        c.send_to(b"still there?", s.addr).unwrap();
        assert_eq!(recv(&c).0, b"still there?");
        (echoed, rounds) = (echoed + 21, rounds + 1);
        // The errors travel the loopback queue behind the replies, so the probe's reply
        // may come first: wait for the server's log line, not for time.
        let logged = s
            .guard
            .stderr_within("nothing is listening on 127.0.0.1:", Duration::from_secs(1));
        if logged.is_some() {
            break;
        }
        assert!(rounds < 10, "no ICMP error logged after {rounds} rounds");
    }
    s.guard.signal(libc::SIGTERM);
    let r = s.finish();
    let v = crate::harness::json_last_line(&r.stderr);
    // Counted by kind (SPEC §9); not every one, for the global limit above.
    assert!(
        v["icmp_errors"]["port_unreachable"].as_u64().unwrap_or(0) >= 1,
        "{v}"
    );
    assert_eq!(v["echoed"], echoed, "{v}");
}

#[test]
fn count_counts_what_passed_the_filters_and_the_policy() {
    let s = Server::start(&["echo", "0", "-n", "2", "--deny", "127.0.0.9", "-v"]);
    peer("127.0.0.9").send_to(b"denied", s.addr).unwrap();
    let c = peer("127.0.0.1");
    assert_eq!(
        exchange(&c, s.addr, &numbered(2), Duration::from_millis(300)).len(),
        2
    );
    let r = s.finish();
    r.expect_code(0)
        .expect_stderr("echoed 2 of 2")
        .expect_stderr("filtered 1");
    assert!(
        r.stderr
            .contains(&format!("{} 4 bytes", c.local_addr().unwrap())),
        "-v logs each: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn format_and_stats_interval_do_what_they_say_on_echo() {
    // guards: echo accepted -f hexdump and --stats-interval and silently ignored both
    let s = Server::start(&["echo", "0", "-f", "hexdump", "--stats-interval", "50ms"]);
    let c = peer("127.0.0.1");
    c.send_to(b"hello echo", s.addr).unwrap();
    assert_eq!(recv(&c).0, b"hello echo");
    let out = s.guard.wait_stdout("a hexdump of the request", |o| {
        String::from_utf8_lossy(o).contains("|hello echo|")
    });
    assert!(
        String::from_utf8_lossy(&out)
            .starts_with(&format!("{} 10 bytes\n", c.local_addr().unwrap())),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A stats line counts the datagram once it is in an interval.
    s.guard.wait_stderr("received 1 datagrams");
    s.guard.signal(libc::SIGINT);
    s.finish().expect_code(130);
}

#[test]
fn corrupt_flips_exactly_one_bit_and_mtu_drops_what_would_not_fit() {
    let s = Server::start(&[
        "echo",
        "0",
        "--corrupt",
        "100%",
        "--seed",
        "9",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    let sent: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 40]).collect();
    let got = exchange(&c, s.addr, &sent, Duration::from_millis(300));
    assert_eq!(got.len(), 50);
    for (a, b) in sent.iter().zip(&got) {
        let flipped: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert_eq!(flipped, 1, "{a:?} came back as {b:?}");
    }
    s.guard.signal(libc::SIGTERM);
    assert_eq!(
        crate::harness::json_last_line(&s.finish().stderr)["corrupted"],
        50
    );
    // IPv4: 576 bytes of packet are 548 of payload.
    let s = Server::start(&["echo", "0", "--mtu", "576", "--stats", "-f", "json"]);
    let got = exchange(
        &c,
        s.addr,
        &[vec![1; 548], vec![2; 549]],
        Duration::from_millis(300),
    );
    assert_eq!(got, [vec![1; 548]]);
    s.guard.signal(libc::SIGTERM);
    assert_eq!(
        crate::harness::json_last_line(&s.finish().stderr)["mtu_dropped"],
        1
    );
    // IPv6's headers are 20 bytes more: 528 fit, 529 do not.
    let s = Server::start(&["echo", "[::1]:0", "--mtu", "576"]);
    let c6 = peer("::1");
    let got = exchange(
        &c6,
        s.addr,
        &[vec![3; 528], vec![4; 529]],
        Duration::from_millis(300),
    );
    assert_eq!(got, [vec![3; 528]]);
}
