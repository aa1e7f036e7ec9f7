//! `listen` as a responder: fixed replies, `--exec`, and a mock DNS server, each through
//! echo's admission and policy, while every request is still printed.

use std::time::Duration;

use crate::harness::{arrives_within, json_last_line, peer, recv, run, tool, Server};

#[test]
fn a_fixed_reply_in_every_encoding_and_every_request_recorded() {
    for (flags, want) in [
        (&["--respond", "pong"][..], &b"pong"[..]),
        (&["--respond", "70 6f 6e 67 00", "-x"], b"pong\0"),
        (&["--respond", "cG9uZw==", "--base64"], b"pong"),
        (&["--respond", r"po\nng", "-e"], b"po\nng"),
    ] {
        let mut args = vec!["listen", "0", "-n", "2", "-f", "json"];
        args.extend_from_slice(flags);
        let s = Server::start(&args);
        // dgram as the client, and a plain socket.
        let r = run(&["send", &s.addr.to_string(), "ping", "-r"]);
        r.expect_code(0).expect_stdout(want);
        let c = peer("127.0.0.1");
        c.send_to(b"from python", s.addr).unwrap();
        assert_eq!(recv(&c).0, want, "{flags:?}");
        let r = s.finish();
        r.expect_code(0);
        let texts = crate::harness::json_texts(&r.stdout_str());
        assert_eq!(texts, ["ping", "from python"]);
    }
}

#[test]
fn a_reply_file_arrives_byte_exact() {
    let dir = std::env::temp_dir().join(format!("dgram-respond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("reply.bin");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    std::fs::write(&file, &bytes).unwrap();
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "1",
        "--respond-file",
        file.to_str().unwrap(),
    ]);
    let c = peer("127.0.0.1");
    c.send_to(b"?", s.addr).unwrap();
    assert_eq!(recv(&c).0, bytes);
    s.finish().expect_code(0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exec_answers_with_what_the_command_prints() {
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "3",
        "--exec",
        "tr a-z A-Z",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    c.send_to(b"hello", s.addr).unwrap();
    assert_eq!(recv(&c).0, b"HELLO");
    let s2 = Server::start(&[
        "listen",
        "0",
        "-n",
        "1",
        "--exec",
        r#"printf %s "$DGRAM_PEER_PORT""#,
    ]);
    let c2 = peer("127.0.0.1");
    c2.send_to(b"x", s2.addr).unwrap();
    assert_eq!(
        recv(&c2).0,
        c2.local_addr().unwrap().port().to_string().as_bytes()
    );
    s2.finish().expect_code(0);
    // A non-zero exit or empty stdout: no reply, and the server goes on.
    let s3 = Server::start(&[
        "listen",
        "0",
        "-n",
        "2",
        "--exec",
        "cat; exit 1",
        "--stats",
        "-f",
        "json",
    ]);
    c.send_to(b"fails", s3.addr).unwrap();
    c.send_to(b"fails too", s3.addr).unwrap();
    assert!(!arrives_within(&c, Duration::from_millis(300)));
    let r = s3.finish();
    assert_eq!(
        json_last_line(&r.stderr)["exec_failures"],
        2,
        "{}",
        r.stderr
    );
    c.send_to(b"a", s.addr).unwrap();
    c.send_to(b"b", s.addr).unwrap();
    let mut got = [recv(&c).0, recv(&c).0];
    got.sort();
    assert_eq!(got, [b"A".to_vec(), b"B".to_vec()]);
    let r = s.finish();
    assert_eq!(json_last_line(&r.stderr)["replied"], 3, "{}", r.stderr);
}

#[test]
fn exec_sees_the_request_in_its_environment_and_its_stderr_reaches_ours() {
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "1",
        "--exec",
        r#"echo "child says hi" >&2; printf '%s|%s|%s|%s' "$DGRAM_PEER" "$DGRAM_PEER_ADDR" "$DGRAM_LOCAL" "$DGRAM_LEN""#,
    ]);
    let c = peer("127.0.0.1");
    c.send_to(b"twelve bytes", s.addr).unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(
        String::from_utf8(recv(&c).0).unwrap(),
        format!("{me}|127.0.0.1|{}|12", s.addr)
    );
    let r = s.finish();
    r.expect_code(0).expect_stderr("child says hi\n");
    // Empty stdout, and stdout over the largest datagram: no reply, the latter counted.
    for (cmd, key) in [
        ("true", None),
        ("head -c 70000 /dev/zero", Some("exec_too_large")),
    ] {
        let s = Server::start(&[
            "listen", "0", "-n", "1", "--exec", cmd, "--stats", "-f", "json",
        ]);
        c.send_to(b"?", s.addr).unwrap();
        let r = s.finish();
        r.expect_code(0);
        assert!(!arrives_within(&c, Duration::from_millis(100)), "{cmd}");
        let v = json_last_line(&r.stderr);
        assert_eq!(
            (v["exec_started"].as_u64(), v["replied"].as_u64()),
            (Some(1), Some(0)),
            "{v}"
        );
        if let Some(key) = key {
            assert_eq!(v[key], 1, "{v}");
        }
    }
}

#[test]
fn a_child_past_its_timeout_is_killed_and_leaves_nothing_behind() {
    let dir = std::env::temp_dir().join(format!("dgram-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("pid");
    let cmd = format!("echo $$ > {}; exec sleep 10", pidfile.display());
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "1",
        "--exec",
        &cmd,
        "--exec-timeout",
        "200ms",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    c.send_to(b"slow", s.addr).unwrap();
    let r = s.finish();
    r.expect_code(0);
    assert_eq!(
        json_last_line(&r.stderr)["exec_timeouts"],
        1,
        "{}",
        r.stderr
    );
    assert!(!arrives_within(&c, Duration::from_millis(100)));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill with signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the child {pid} outlived its timeout");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn requests_beyond_the_jobs_and_the_queue_are_dropped_and_counted() {
    let s = Server::start(&[
        "listen",
        "0",
        "--exec",
        "sleep 0.5; cat",
        "--exec-jobs",
        "2",
        "--exec-queue",
        "8",
        "-n",
        "50",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    for i in 0..50 {
        c.send_to(format!("{i}").as_bytes(), s.addr).unwrap();
    }
    let r = s.finish();
    r.expect_code(0);
    let v = json_last_line(&r.stderr);
    // 2 running and 8 waiting were taken at once; the 40 others found the queue full.
    assert_eq!(v["exec_queue_drops"], 40, "{v}");
    assert_eq!(v["replied"], 10, "{v}");
    let mut answered = 0;
    while arrives_within(&c, Duration::from_millis(200)) {
        answered += 1;
    }
    assert_eq!(answered, 10);
}

#[test]
fn a_privileged_source_port_gets_no_reply_while_an_ephemeral_one_does() {
    let Some(low) = crate::harness::privileged_peer() else {
        crate::harness::skip(
            "respond::a_privileged_source_port",
            "binding a port below 1024 needs root",
        );
        return;
    };
    let s = Server::start(&[
        "listen",
        "0",
        "-n",
        "2",
        "--respond",
        "pong",
        "--stats",
        "-f",
        "json",
    ]);
    low.send_to(b"ping", s.addr).unwrap();
    let high = peer("127.0.0.1");
    high.send_to(b"ping", s.addr).unwrap();
    assert_eq!(recv(&high).0, b"pong");
    assert!(!arrives_within(&low, Duration::from_millis(200)));
    let r = s.finish();
    let v = json_last_line(&r.stderr);
    assert_eq!(v["refused"]["privileged_port"], 1, "{v}");
    assert_eq!(v["replied"], 1);
}

fn dig(port: u16, args: &[&str]) -> String {
    let mut full = vec![
        "@127.0.0.1".to_string(),
        "-p".into(),
        port.to_string(),
        "+tries=1".into(),
        "+time=2".into(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let out = std::process::Command::new("dig")
        .args(&full)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--dns-answer` pairs for 40 TXT records under big.example: an answer too big for a
/// 512-byte UDP reply, so it is truncated over UDP and whole over TCP or with EDNS.
fn big_txt_answers() -> impl Iterator<Item = String> {
    (0..40).flat_map(|i| {
        [
            "--dns-answer".to_string(),
            format!("big.example TXT record-number-{i:02}-with-some-padding"),
        ]
    })
}

#[test]
fn a_one_line_mock_dns_server_answers_dig() {
    if !tool("respond::a_one_line_mock_dns_server_answers_dig", "dig") {
        return;
    }
    let mut args = vec![
        "listen".to_string(),
        "0".into(),
        "--dns-answer".into(),
        "test.example A 127.0.0.1".into(),
        "--dns-answer".into(),
        "test.example 300 TXT first".into(),
    ];
    args.extend(big_txt_answers());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(&argv);
    let port = s.addr.port();
    assert_eq!(
        dig(port, &["test.example", "A", "+short"]).trim(),
        "127.0.0.1"
    );
    let nodata = dig(port, &["test.example", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    let nx = dig(port, &["nope.example"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let big = dig(port, &["big.example", "TXT", "+noedns", "+ignore"]);
    assert!(big.contains(" tc") || big.contains("tc "), "{big}");
    let size: usize = big
        .split("MSG SIZE  rcvd: ")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {big}"));
    assert!(size <= 512, "{size} bytes");
    // Garbage after a valid header: FORMERR, with the ID copied.
    let c = peer("127.0.0.1");
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xc0, 0xff, 0, 1]);
    c.send_to(&garbage, s.addr).unwrap();
    let reply = recv(&c).0;
    assert_eq!(&reply[..2], &[0xab, 0xcd]);
    assert_eq!(reply[3] & 0x0f, 1, "RCODE FORMERR");
    drop(s);
}

#[test]
fn a_zone_file_answers_and_each_request_is_recorded_as_dns() {
    let dir = std::env::temp_dir().join(format!("dgram-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zone = dir.join("mock.zone");
    std::fs::write(
        &zone,
        "; a mock zone for a CI job\nweb.test A 10.0.0.7   ; the web server\n\nweb.test 30 AAAA fd00::7\nmail.test MX 10 web.test.\n",
    )
    .unwrap();
    let s = Server::start(&[
        "listen",
        "0",
        "--dns-zone",
        zone.to_str().unwrap(),
        "-f",
        "json",
        "--dns",
    ]);
    let t = s.addr.to_string();
    for (query, record) in [
        ("web.test", "web.test.\t60\tIN\tA\t10.0.0.7"),
        ("web.test AAAA", "web.test.\t30\tIN\tAAAA\tfd00::7"),
        ("mail.test MX", "mail.test.\t60\tIN\tMX\t10 web.test."),
    ] {
        let r = run(&["send", &t, "--dns", query]);
        r.expect_code(0);
        let out = r.stdout_str();
        assert!(out.contains(&format!("\n{record}\n")), "{query}: {out}");
        assert!(out.contains(";; flags: qr aa rd;"), "{query}: {out}");
    }
    // Shorter than a DNS header: not a query, so no answer at all (not even FORMERR).
    let c = peer("127.0.0.1");
    c.send_to(b"hello", s.addr).unwrap();
    assert!(!arrives_within(&c, Duration::from_millis(200)));
    s.guard.signal(libc::SIGTERM);
    let r = s.finish();
    r.expect_code(143);
    // Every request is on stdout, as the client asked it.
    let asked: Vec<(String, String)> = r
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["dns"]["error"].is_null())
        .map(|v| {
            let q = &v["dns"]["question"][0];
            (
                q["name"].as_str().unwrap().to_string(),
                q["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [
            ("web.test.".to_string(), "A".to_string()),
            ("web.test.".into(), "AAAA".into()),
            ("mail.test.".into(), "MX".into())
        ]
    );
    // The garbage is recorded too, with why it is not DNS.
    let last = json_last_line(&r.stdout_str());
    assert_eq!(last["text"], "hello");
    assert_eq!(
        last["dns"]["error"],
        "5 bytes, shorter than a DNS header (12)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mock_dns_server_shows_the_requests_decoded_by_default() {
    // guards: without --dns the requests printed as raw bytes: they are DNS by definition.
    let s = Server::start(&[
        "listen",
        "0",
        "--dns-answer",
        "db.test A 127.0.0.1",
        "-n",
        "1",
    ]);
    run(&["send", &s.addr.to_string(), "--dns", "db.test"]).expect_code(0);
    let r = s.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(out.contains(";; QUESTION SECTION:"), "{out}");
    assert!(out.contains(";db.test."), "{out}");
    // JSON lines carry the dns object too.
    let s = Server::start(&[
        "listen",
        "0",
        "--dns-answer",
        "db.test A 127.0.0.1",
        "-n",
        "1",
        "-f",
        "json",
    ]);
    run(&["send", &s.addr.to_string(), "--dns", "db.test"]).expect_code(0);
    let r = s.finish();
    let v: serde_json::Value = serde_json::from_str(r.stdout_str().trim()).unwrap();
    assert_eq!(v["dns"]["question"][0]["name"], "db.test.", "{v}");
}

#[test]
fn a_mock_dns_server_answers_over_tcp_on_the_same_port() {
    // guards: a client's TC fallback had nowhere to go (SPEC §4: the mock server answers
    // over TCP too, whole answers, never TC; --no-tcp turns it off).
    let mut args = vec![
        "listen".to_string(),
        "0".into(),
        "--dns-answer".into(),
        "db.test A 127.0.0.1".into(),
    ];
    args.extend(big_txt_answers());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(&argv);
    s.guard.wait_stderr(&format!("also on tcp {}", s.addr));
    let t = s.addr.to_string();
    run(&["send", &t, "--dns", "db.test +tcp +short"])
        .expect_code(0)
        .expect_stdout(b"127.0.0.1\n");
    // Too big for UDP without EDNS: truncated there, whole over TCP.
    let r = run(&["send", &t, "--dns", "big.example TXT +noedns"]);
    r.expect_code(0)
        .expect_stderr(";; Truncated, retrying in TCP mode.");
    assert_eq!(
        r.stdout_str().matches("record-number-").count(),
        40,
        "{}",
        r.stdout_str()
    );
    if tool("respond::a_mock_dns_server_answers_over_tcp", "dig") {
        let out = dig(s.addr.port(), &["db.test", "+tcp", "+short"]);
        assert_eq!(out.trim(), "127.0.0.1");
    }
    drop(s);
    let s = Server::start(&[
        "listen",
        "0",
        "--dns-answer",
        "db.test A 127.0.0.1",
        "--no-tcp",
    ]);
    run(&["send", &s.addr.to_string(), "--dns", "db.test +tcp"])
        .expect_code(3)
        .expect_stderr("connection refused: nothing is listening on tcp://");
    run(&["listen", "0", "--no-tcp"])
        .expect_code(2)
        .expect_stderr("--no-tcp applies to a mock DNS server");
}
