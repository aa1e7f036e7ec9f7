//! `--seq` and `--stats`: loss, reordering, duplicates, kernel drops, round trips, JSON.

use crate::harness::{json_last_line, run, Server};

#[test]
fn ten_thousand_seq_round_trips_through_a_lossy_echo_are_accounted_exactly() {
    let echo = Server::start(&[
        "echo", "0", "--drop", "5%", "--seed", "11", "--stats", "-f", "json",
    ]);
    let r = run(&[
        "send",
        &echo.addr.to_string(),
        "--seq",
        "--size",
        "64",
        "-n",
        "10000",
        "--rate",
        "20000",
        "--reply",
        "-w",
        "500ms",
        "--stats",
        "-f",
        "json",
    ]);
    // Some replies were dropped on purpose: exit 1, and exact counts.
    r.expect_code(1)
        .expect_stderr("datagrams from 127.0.0.1:")
        .expect_stderr("within 500ms");
    let v = json_last_line(&r.stderr);
    let (sent, received, lost) = (
        v["sent"].as_u64().unwrap(),
        v["received"].as_u64().unwrap(),
        v["lost"].as_u64().unwrap(),
    );
    assert_eq!(sent, 10_000);
    assert_eq!(received + lost, sent, "{v}");
    assert!(
        (350..=650).contains(&lost),
        "5% of 10,000 dropped, {lost} lost: {v}"
    );
    for k in ["min", "p50", "p90", "p99", "max"] {
        assert!(v["rtt_us"][k].is_u64(), "{k}: {v}");
    }
    echo.guard.signal(libc::SIGTERM);
    let e = json_last_line(&echo.finish().stderr);
    assert_eq!(
        e["dropped"].as_u64().unwrap(),
        lost,
        "the echo dropped exactly what the sender lost"
    );
}

/// 200 `--seq` round trips at 5,000/s through `echo`; the JSON summary (exit 0 checked).
fn seq_round_trips(echo: &Server) -> serde_json::Value {
    let target = echo.addr.to_string();
    let r = run(&[
        "send", &target, "x", "--seq", "-n", "200", "--rate", "5000", "-r", "-w", "300ms",
        "--stats", "-f", "json",
    ]);
    r.expect_code(0);
    json_last_line(&r.stderr)
}

#[test]
fn duplicates_and_reordering_from_the_echo_are_counted() {
    let echo = Server::start(&["echo", "0", "--duplicate", "1"]);
    let v = seq_round_trips(&echo);
    assert_eq!(
        (v["received"].as_u64(), v["lost"].as_u64()),
        (Some(200), Some(0)),
        "{v}"
    );
    // The run ends once every datagram has its answer: the last reply's twin may still be
    // on its way then, and is not waited for.
    let dups = v["duplicates"].as_u64().unwrap();
    assert!((199..=200).contains(&dups), "{v}");
    let echo = Server::start(&["echo", "0", "--reorder", "0.5", "--seed", "2"]);
    let v = seq_round_trips(&echo);
    assert!(v["reordered"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["lost"], 0);
}

#[test]
fn a_flood_into_a_tiny_buffer_shows_kernel_drops_and_every_datagram_is_accounted() {
    let s = Server::start(&[
        "listen", "0", "--rcvbuf", "4K", "--stats", "-f", "json", "-w", "1s",
    ]);
    let n = 50_000u64;
    run(&[
        "send",
        &s.addr.to_string(),
        "--seq",
        "--size",
        "64",
        "-n",
        &n.to_string(),
    ])
    .expect_code(0);
    let r = s.finish();
    r.expect_code(0);
    let v = json_last_line(&r.stderr);
    let received = v["received"].as_u64().unwrap();
    let drops = v["kernel_drops"].as_u64().unwrap();
    assert!(drops > 0, "a 4K buffer under a flood dropped nothing? {v}");
    assert_eq!(received + drops, n, "received + kernel drops == sent: {v}");
    // Sequence numbers see the gaps below the highest one received, never more than the
    // kernel dropped (drops after the last arrival are invisible to them).
    let lost = v["lost"].as_u64().unwrap();
    assert!(lost > 0 && lost <= drops, "{v}");
    assert_eq!(
        r.stdout_str().lines().count() as u64,
        received,
        "one JSON line per datagram"
    );
}

#[test]
fn listen_stats_json_carries_every_field() {
    let s = Server::start(&["listen", "0", "--stats", "-f", "json", "-n", "3"]);
    let t = s.addr.to_string();
    run(&["send", &t, "--seq", "-n", "2", "hi"]).expect_code(0);
    run(&["send", &t, "plain"]).expect_code(0);
    let r = s.finish();
    r.expect_code(0);
    let v = json_last_line(&r.stderr);
    for k in [
        "received",
        "bytes",
        "elapsed_s",
        "rate_pps",
        "truncated",
        "filtered",
        "kernel_drops",
        "lost",
        "reordered",
        "duplicates",
        "non_seq",
        "owd_us",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["non_seq"], 1);
    assert_eq!(v["lost"], 0);
    // The text form says the same.
    let s = Server::start(&["listen", "0", "--stats", "-n", "1"]);
    run(&["send", &s.addr.to_string(), "--seq", "x"]).expect_code(0);
    s.finish()
        .expect_code(0)
        .expect_stderr("seq: lost 0, reordered 0, duplicates 0")
        .expect_stderr("one-way delay");
}

#[test]
fn seq_sizes_and_conflicts_are_checked() {
    run(&["send", "127.0.0.1:9", "--seq", "--size", "10"])
        .expect_code(2)
        .expect_stderr("at least 24");
    run(&["send", "127.0.0.1:9", "--seq", "x", "-r", "--retries", "2"])
        .expect_code(2)
        .expect_stderr("--retries with --seq");
    // The header counts toward the UDP limit.
    run(&["send", "127.0.0.1:9", "--seq", "--size", "65508"])
        .expect_code(2)
        .expect_stderr(
            "--size: payload of 65508 bytes is larger than the IPv4 UDP limit of 65507 bytes",
        );
    let rx = crate::harness::peer("127.0.0.1");
    run(&[
        "send",
        &rx.local_addr().unwrap().to_string(),
        "--seq",
        "abc",
    ])
    .expect_code(0);
    let (d, _) = crate::harness::recv(&rx);
    assert_eq!(d.len(), 24 + 3);
    assert_eq!(&d[..4], b"DGSQ");
    assert_eq!(&d[8..16], &0u64.to_be_bytes());
    assert_eq!(&d[24..], b"abc");
}

/// tshark's reading of a pcap: one line per packet, tab-separated fields.
fn tshark(path: &std::path::Path, fields: &[&str]) -> Option<Vec<Vec<String>>> {
    if !crate::harness::tool("stats::tshark", "tshark") {
        return None;
    }
    let checks = [
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ];
    Some(crate::harness::tshark_fields(path, &checks, fields))
}

#[test]
fn pcap_files_decode_with_the_right_ports_lengths_and_payloads() {
    let dir = std::env::temp_dir().join(format!("dgram-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // listen, IPv4, one datagram cut by --max-size.
    let file = dir.join("listen.pcap");
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "2",
        "--max-size",
        "10",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    let tx = crate::harness::peer("127.0.0.1");
    tx.send_to(b"hello", s.addr).unwrap();
    tx.send_to(&[b'z'; 100], s.addr).unwrap();
    let rx_port = s.addr.port().to_string();
    s.finish().expect_code(0);
    let tx_port = tx.local_addr().unwrap().port().to_string();
    if let Some(rows) = tshark(
        &file,
        &[
            "ip.src",
            "udp.srcport",
            "udp.dstport",
            "udp.length",
            "ip.checksum.status",
            "udp.checksum.status",
            "udp.payload",
        ],
    ) {
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            rows[0],
            [
                "127.0.0.1",
                &tx_port,
                &rx_port,
                "13",
                "1",
                "1",
                "68656c6c6f"
            ]
        );
        // The true length, 8 + 100, though only 10 bytes were kept.
        assert_eq!(rows[1][3], "108");
    }
    // echo over IPv6: requests and replies.
    let file = dir.join("echo6.pcap");
    let s = Server::start(&[
        "echo",
        "[::1]:0",
        "-n",
        "1",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    run(&["send", &s.addr.to_string(), "six", "-r"])
        .expect_code(0)
        .expect_stdout(b"six");
    s.finish().expect_code(0);
    if let Some(rows) = tshark(
        &file,
        &[
            "ipv6.src",
            "ipv6.dst",
            "udp.length",
            "udp.checksum.status",
            "udp.payload",
        ],
    ) {
        assert_eq!(rows.len(), 2, "{rows:?}");
        for row in &rows {
            assert_eq!(row, &["::1", "::1", "11", "1", "736978"]);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stats_interval_prints_a_line_per_interval() {
    let s = Server::start(&[
        "listen",
        "0",
        "--stats-interval",
        "200ms",
        "--duration",
        "700ms",
    ]);
    run(&[
        "send",
        &s.addr.to_string(),
        "x",
        "-n",
        "40",
        "--rate",
        "100",
    ])
    .expect_code(0);
    let r = s.finish();
    r.expect_code(0);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!((2..=4).contains(&lines.len()), "{}", r.stderr);
    assert!(
        lines[0].contains("received")
            && lines[0].contains("datagrams/s")
            && lines[0].contains("kernel drops"),
        "{}",
        lines[0]
    );
    // JSON lines with --format json.
    let s = Server::start(&[
        "listen",
        "0",
        "--stats-interval",
        "100ms",
        "--duration",
        "350ms",
        "-f",
        "json",
    ]);
    let r = s.finish();
    let v: serde_json::Value = serde_json::from_str(r.stderr.lines().nth(1).unwrap()).unwrap();
    assert_eq!(v["received"], 0);
    assert!(v["interval_s"].is_array());
}

#[test]
fn histogram_draws_the_rtt_distribution() {
    let echo = Server::start(&["echo", "0"]);
    let r = run(&[
        "send",
        &echo.addr.to_string(),
        "x",
        "--seq",
        "-n",
        "100",
        "--rate",
        "2000",
        "-r",
        "--stats",
        "--histogram",
    ]);
    r.expect_code(0)
        .expect_stderr("rtt distribution (µs):")
        .expect_stderr("█");
    let counted: u64 = r
        .stderr
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 100);
    // Without --histogram and with stderr not a terminal: no chart.
    let r = run(&[
        "send",
        &echo.addr.to_string(),
        "x",
        "-n",
        "3",
        "-r",
        "--stats",
    ]);
    r.expect_code(0);
    assert!(!r.stderr.contains("distribution"));
}

#[test]
#[cfg(target_os = "linux")]
fn a_pcap_file_that_cannot_be_written_is_a_warning_and_the_traffic_goes_on() {
    // guards: a failed --pcap write ended listen with exit 3 after its first datagram,
    // while the relay stopped differently; now both warn once, name the file, and go on.
    // /dev/full takes the open and fails every write with "no space left on device".
    let listen = Server::start(&[
        "listen",
        "0",
        "-n",
        "3",
        "-f",
        "line",
        "--pcap",
        "/dev/full",
    ]);
    let tx = crate::harness::peer("127.0.0.1");
    for word in ["one", "two", "three"] {
        tx.send_to(word.as_bytes(), listen.addr).unwrap();
        // Each datagram first, then the idle flush that finds the disk full.
        listen
            .guard
            .wait_stdout(word, |out| out.ends_with(format!("{word}\n").as_bytes()));
    }
    let r = listen.finish();
    r.expect_code(0).expect_stdout(b"one\ntwo\nthree\n");
    let warned = r
        .stderr
        .matches("failed to write --pcap /dev/full: no space left on device")
        .count();
    assert_eq!(warned, 1, "one warning, naming the file:\n{}", r.stderr);

    let echo = Server::start(&["echo", "0"]);
    let relay = Server::start(&[
        "relay",
        "0",
        "--to",
        &echo.addr.to_string(),
        "--pcap",
        "/dev/full",
    ]);
    for word in ["one", "two", "three"] {
        tx.send_to(word.as_bytes(), relay.addr).unwrap();
        assert_eq!(
            crate::harness::recv(&tx).0,
            word.as_bytes(),
            "relayed despite the capture"
        );
    }
    relay
        .guard
        .wait_stderr("failed to write --pcap /dev/full: no space left on device");
}
