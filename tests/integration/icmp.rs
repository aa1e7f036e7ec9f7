//! ICMP errors in detail (SPEC §9): three network namespaces this test builds (client,
//! router, server) joined by two veth pairs, the far link's MTU 1400, and routes that
//! make each error happen. The client runs inside its namespace: nothing leaves the
//! machine.

use crate::harness::spawn_cmd;
use crate::netns::Namespaces;

/// Client, router and server, as the module says.
struct Topology(Namespaces);

impl Topology {
    fn create(test: &str) -> Option<Topology> {
        let made = Namespaces::create(test, "i", &["c", "r", "s"], &[], |n| {
            let (c, r, s) = (n.ns("c"), n.ns("r"), n.ns("s"));
            vec![
                // No duplicate address detection: addresses, link-local ones too, are usable
                // at once, so the first IPv6 datagrams do not wait on it.
                format!("for n in {c} {r} {s}; do ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done"),
                format!("ip -n {r} link add cr type veth peer name rc netns {c}"),
                format!("ip -n {r} link add sr type veth peer name rs netns {s}"),
                format!("ip -n {r} link set sr mtu 1400"),
                format!("ip -n {s} link set rs mtu 1400"),
                format!("for n in {c} {r} {s}; do ip -n $n link set lo up; done"),
                format!("ip -n {c} link set rc up && ip -n {r} link set cr up && ip -n {r} link set sr up && ip -n {s} link set rs up"),
                format!("ip -n {c} addr add 10.91.1.2/24 dev rc && ip -n {c} addr add fd91:1::2/64 dev rc nodad"),
                format!("ip -n {r} addr add 10.91.1.1/24 dev cr && ip -n {r} addr add fd91:1::1/64 dev cr nodad"),
                format!("ip -n {r} addr add 10.91.2.1/24 dev sr && ip -n {r} addr add fd91:2::1/64 dev sr nodad"),
                format!("ip -n {s} addr add 10.91.2.2/24 dev rs && ip -n {s} addr add fd91:2::2/64 dev rs nodad"),
                format!("ip -n {c} route add default via 10.91.1.1 && ip -n {c} -6 route add default via fd91:1::1"),
                format!("ip -n {s} route add default via 10.91.2.1 && ip -n {s} -6 route add default via fd91:2::1"),
                format!("ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0"),
                format!("ip -n {r} route add unreachable 10.91.9.0/24 && ip -n {r} route add prohibit 10.91.8.0/24"),
                format!("ip -n {r} -6 route add unreachable fd91:9::/64 && ip -n {r} -6 route add prohibit fd91:8::/64"),
            ]
        })?;
        Some(Topology(made))
    }

    /// `dgram ARGS` in the client namespace, to completion.
    fn client(&self, args: &[&str]) -> crate::harness::Run {
        self.0.dgram("c", args)
    }
}

#[test]
fn each_icmp_error_names_what_happened_and_who_said_so() {
    let Some(t) = Topology::create("icmp::each_icmp_error") else {
        return;
    };
    let cases: [(&[&str], &str); 10] = [
        (
            &["send", "10.91.2.2:9", "hi", "-r"],
            "connection refused: nothing is listening on 10.91.2.2:9",
        ),
        (
            &["send", "10.91.9.9:53", "hi", "-r"],
            "host unreachable: 10.91.9.9 (reported by 10.91.1.1)",
        ),
        (
            &["send", "10.91.8.8:53", "hi", "-r"],
            "prohibited by a firewall: 10.91.8.8:53 (reported by 10.91.1.1)",
        ),
        (
            &["send", "10.91.2.2:9", "hi", "-r", "--ttl", "1"],
            "TTL exceeded in transit at 10.91.1.1 (--ttl 1)",
        ),
        (
            &[
                "send",
                "10.91.2.2:9",
                "--size",
                "1472",
                "--dont-fragment",
                "-r",
            ],
            "message too long: the path MTU to 10.91.2.2 is 1400 (reported by 10.91.1.1)",
        ),
        (
            &["send", "[fd91:2::2]:9", "hi", "-r"],
            "connection refused: nothing is listening on [fd91:2::2]:9",
        ),
        (
            &["send", "[fd91:9::9]:53", "hi", "-r"],
            "host unreachable: fd91:9::9 (reported by fd91:1::1)",
        ),
        (
            &["send", "[fd91:8::8]:53", "hi", "-r"],
            "prohibited by a firewall: [fd91:8::8]:53 (reported by fd91:1::1)",
        ),
        (
            &["send", "[fd91:2::2]:9", "hi", "-r", "--ttl", "1"],
            "TTL exceeded in transit at fd91:1::1 (--ttl 1)",
        ),
        (
            &[
                "send",
                "[fd91:2::2]:9",
                "--size",
                "1452",
                "--dont-fragment",
                "-r",
            ],
            "message too long: the path MTU to fd91:2::2 is 1400 (reported by fd91:1::1)",
        ),
    ];
    let mut failures = Vec::new();
    for (args, says) in cases {
        // A retry: the first datagram to a new neighbour may wait on its resolution.
        let mut args = args.to_vec();
        args.extend_from_slice(&["-w", "1s", "--retries", "1"]);
        let r = t.client(&args);
        if r.code() != 3 || !r.stderr.contains(says) {
            failures.push(format!(
                "{args:?}: exit {}, stderr {:?}, wanted {says:?}",
                r.code(),
                r.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // --stats --format json carries the error in detail.
    let r = t.client(&[
        "send",
        "10.91.2.2:9",
        "--size",
        "1472",
        "--dont-fragment",
        "-r",
        "-w",
        "1s",
        "--retries",
        "1",
        "--stats",
        "-f",
        "json",
    ]);
    r.expect_code(3);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["icmp"]["kind"], "message_too_long", "{v}");
    assert_eq!(v["icmp"]["mtu"], 1400, "{v}");
    // The path MTU is cached now: this host may report it before the router does.
    assert!(
        v["icmp"]["offender"] == "10.91.1.1" || v["icmp"]["offender"].is_null(),
        "{v}"
    );
}

#[test]
fn a_relay_counts_its_upstream_s_errors_by_kind_and_goes_on() {
    let Some(t) = Topology::create("icmp::a_relay_counts") else {
        return;
    };
    let ns = t.0.ns("c");
    for (upstream, kind) in [
        ("10.91.9.9:53", "host_unreachable"),
        ("10.91.8.8:53", "prohibited"),
        ("10.91.2.2:9", "port_unreachable"),
    ] {
        let relay = spawn_cmd(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                crate::harness::bin(),
                "relay",
                "0",
                "--to",
                upstream,
                "--stats",
                "-f",
                "json",
            ],
            None,
        );
        let addr = relay.announced().to_string();
        for _ in 0..3 {
            let r = t.client(&["send", &addr, "anyone?"]);
            assert_eq!(r.code(), 0, "{}", r.stderr);
        }
        relay.wait_stderr(upstream);
        relay.signal(libc::SIGTERM);
        let r = relay.finish();
        r.expect_code(143);
        let v = crate::harness::json_last_line(&r.stderr);
        assert!(
            v["icmp_errors"][kind].as_u64().unwrap_or(0) >= 1,
            "{upstream}: {v}"
        );
        assert_eq!(v["sessions_opened"], 3, "{v}");
    }
}

#[test]
fn echo_and_relay_count_what_their_clients_paths_say_and_go_on() {
    // Clients whose addresses the router cannot reach back (an unreachable and a
    // prohibit route) and a client that is gone: each reply of the servers meets another
    // ICMP error. Both keep serving, and count each by kind.
    let Some(t) = Topology::create("icmp::echo_and_relay_count") else {
        return;
    };
    let (c, r, s) = (t.0.ns("c"), t.0.ns("r"), t.0.ns("s"));
    let script = [
        format!("ip -n {c} addr add 10.91.9.5/32 dev rc && ip -n {c} addr add 10.91.8.5/32 dev rc"),
        format!("ip -n {c} addr add fd91:9::5/128 dev rc nodad && ip -n {c} addr add fd91:8::5/128 dev rc nodad"),
        // The requests come from sources the router has no way back to: no reverse-path
        // filter may drop them on the way in.
        format!("ip netns exec {r} sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.cr.rp_filter=0"),
        // A second address for the server host: the router rate-limits the errors it
        // sends to one address (an unreachable route's: 5, then one a second, and
        // icmp_ratelimit besides). With echo and relay on one address their four IPv4
        // errors shared one budget and CI once missed the fourth; each phase now
        // writes to its own address, and each budget sees two.
        format!("ip -n {s} addr add 10.91.2.3/24 dev rs && ip -n {s} addr add fd91:2::3/64 dev rs nodad"),
    ]
    .join(" && ");
    let ok = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not add the client addresses");
    let in_s = |args: &[&str]| {
        let mut full = vec!["netns", "exec", s.as_str(), crate::harness::bin()];
        full.extend_from_slice(args);
        spawn_cmd("ip", &full, None)
    };
    // Each reply 200 ms late: a client that sent and exited is surely gone when its
    // reply comes (without it, a fast reply can beat the client's exit and be taken).
    let echo = in_s(&[
        "echo", "[::]:0", "--delay", "200ms", "--stats", "-f", "json", "-v",
    ]);
    let echo_port = echo.announced().port();
    let relay = in_s(&[
        "relay",
        "[::]:0",
        "--to",
        &format!("127.0.0.1:{echo_port}"),
        "--stats",
        "-f",
        "json",
        "-v",
    ]);
    let relay_port = relay.announced().port();
    let phases = [
        (&echo, echo_port, "10.91.2.2", "[fd91:2::2]"),
        (&relay, relay_port, "10.91.2.3", "[fd91:2::3]"),
    ];
    for (server, port, v4, v6) in phases {
        for (to, from, says) in [
            (
                v4,
                "10.91.9.5:0",
                "host unreachable: 10.91.9.5 (reported by 10.91.2.1)",
            ),
            (v4, "10.91.8.5:0", "prohibited by a firewall: 10.91.8.5:"),
            (
                v6,
                "[fd91:9::5]:0",
                "host unreachable: fd91:9::5 (reported by fd91:2::1)",
            ),
            (
                v6,
                "[fd91:8::5]:0",
                "prohibited by a firewall: [fd91:8::5]:",
            ),
        ] {
            let target = format!("{to}:{port}");
            t.client(&["send", &target, "hello", "--bind", from])
                .expect_code(0);
            server.wait_stderr(says);
        }
        // A client gone before its reply: port unreachable from its host.
        t.client(&["send", &format!("{v4}:{port}"), "bye"])
            .expect_code(0);
        server.wait_stderr("connection refused: nothing is listening on 10.91.1.2:");
        // Still serving.
        t.client(&[
            "send",
            &format!("{v6}:{port}"),
            "still there?",
            "--expect",
            "still there?",
        ])
        .expect_code(0);
    }
    for (server, key) in [(relay, "client_icmp_errors"), (echo, "icmp_errors")] {
        server.signal(libc::SIGTERM);
        let r = server.finish();
        r.expect_code(143);
        let v = crate::harness::json_last_line(&r.stderr);
        for (kind, at_least) in [
            ("host_unreachable", 2),
            ("prohibited", 2),
            ("port_unreachable", 1),
        ] {
            assert!(
                v[key][kind].as_u64().unwrap_or(0) >= at_least,
                "{key} {kind}: {v}"
            );
        }
    }
}
