//! `dgram multicast`: IPv4 groups on loopback (`--iface 127.0.0.1`), source-specific
//! joins, interop with Python and socat, the doctor, and IPv6 across a veth pair between
//! two network namespaces the test creates (root and `ip` needed, else skipped).

use crate::harness::{run, spawn, spawn_cmd, Guard};

/// Start `dgram multicast join ARGS` and wait until it has joined (its `joined` line).
fn joiner(args: &[&str]) -> (Guard, u16) {
    let mut full = vec!["multicast", "join"];
    full.extend_from_slice(args);
    let mut g = spawn(&full, None);
    g.close_stdin();
    let addr = g.announced();
    g.wait_stderr("joined ");
    (g, addr.port())
}

fn lines(g: Guard) -> (i32, Vec<String>, String) {
    let r = g.finish();
    let out = r.stdout_str().lines().map(str::to_string).collect();
    (r.code(), out, r.stderr)
}

#[test]
fn a_thousand_datagrams_reach_two_joiners_and_not_another_group() {
    let (a, port) = joiner(&[
        "239.7.7.1:0",
        "--iface",
        "127.0.0.1",
        "-n",
        "1000",
        "-f",
        "line",
    ]);
    let p = port.to_string();
    let (b, _) = joiner(&[
        &format!("239.7.7.1:{p}"),
        "--iface",
        "127.0.0.1",
        "-n",
        "1000",
        "-f",
        "line",
    ]);
    let (c, _) = joiner(&[
        &format!("239.7.7.2:{p}"),
        "--iface",
        "127.0.0.1",
        "-w",
        "500ms",
        "-f",
        "line",
    ]);
    run(&[
        "multicast",
        "send",
        &format!("239.7.7.1:{p}"),
        "--iface",
        "127.0.0.1",
        "-n",
        "1000",
        "--size",
        "100",
    ])
    .expect_code(0);
    for g in [a, b] {
        let (code, out, err) = lines(g);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.len(), 1000, "{err}");
    }
    let (code, out, err) = lines(c);
    assert_eq!(code, 0);
    assert!(
        out.is_empty(),
        "another group on the same port received {} datagrams",
        out.len()
    );
    assert!(err.contains("joined 239.7.7.2 on lo"), "{err}");
}

#[test]
fn a_source_specific_join_hears_that_source_only() {
    let (g, port) = joiner(&[
        "239.7.7.3:0",
        "--iface",
        "127.0.0.1",
        "--source",
        "127.0.0.2",
        "-w",
        "500ms",
        "-f",
        "line",
    ]);
    let to = format!("239.7.7.3:{port}");
    for (from, msg) in [("127.0.0.3:0", "from three"), ("127.0.0.2:0", "from two")] {
        run(&[
            "multicast",
            "send",
            &to,
            msg,
            "--iface",
            "127.0.0.1",
            "--bind",
            from,
        ])
        .expect_code(0);
    }
    let (code, out, err) = lines(g);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, ["from two"]);
    assert!(err.contains("(source 127.0.0.2)"), "{err}");
}

#[test]
fn several_groups_at_once_and_no_loop() {
    let (g, port) = joiner(&[
        "239.7.7.4:0",
        "239.7.7.5:0",
        "--iface",
        "lo",
        "-n",
        "2",
        "-f",
        "line",
    ]);
    for grp in ["239.7.7.4", "239.7.7.5"] {
        run(&[
            "multicast",
            "send",
            &format!("{grp}:{port}"),
            grp,
            "--iface",
            "127.0.0.1",
        ])
        .expect_code(0);
    }
    let (code, out, err) = lines(g);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, ["239.7.7.4", "239.7.7.5"]);
}

#[test]
fn a_silent_join_explains_itself() {
    let r = run(&[
        "multicast",
        "join",
        "239.7.7.7:0",
        "--iface",
        "127.0.0.1",
        "-w",
        "200ms",
    ]);
    r.expect_code(0)
        .expect_stderr("joined 239.7.7.7 on lo")
        .expect_stderr("received nothing")
        .expect_stderr("doctor: interface: joined on lo as asked")
        .expect_stderr("doctor: 239.7.7.7 is listed in /proc/net/igmp on lo")
        .expect_stderr("doctor: lo: rp_filter all=")
        .expect_stderr("doctor: sender: the TTL / hop limit must cover every router between");
    // Without --iface the doctor names the kernel's choice. Such a join sends an IGMP
    // report on the default-route interface, so it runs in a namespace of its own whose
    // default route is a dummy interface: nothing leaves the machine.
    if let Some(ns) = DummyNetns::create() {
        let mut g = in_ns(
            &ns.name,
            &[
                "multicast",
                "join",
                "239.7.7.8:0",
                "-w",
                "100ms",
                "--diagnose",
            ],
        );
        g.close_stdin();
        g.finish()
            .expect_code(0)
            .expect_stderr("doctor: interface: no --iface");
    }
    // --count unmet by the timeout: exit 1, and still the explanation.
    run(&[
        "multicast",
        "join",
        "239.7.7.9:0",
        "--iface",
        "lo",
        "-n",
        "1",
        "-w",
        "100ms",
    ])
    .expect_code(1)
    .expect_stderr("doctor: interface: joined on lo as asked (--iface)");
}

#[test]
fn bad_groups_and_interfaces_are_usage_errors() {
    for (args, mention) in [
        (
            &["multicast", "join", "10.0.0.1:5000"][..],
            "not a multicast group",
        ),
        (
            &[
                "multicast",
                "join",
                "239.1.1.1:5000",
                "--iface",
                "nosuchif0",
            ],
            "nosuchif0",
        ),
        (
            &["multicast", "join", "239.1.1.1:5000", "--iface", "::1"],
            "family mismatch",
        ),
        (
            &["multicast", "join", "239.1.1.1:5000", "239.1.1.2:5001"],
            "differs",
        ),
        (
            &["multicast", "join", "239.1.1.1:5000", "--source", "::1"],
            "family mismatch",
        ),
        (
            &["multicast", "send", "127.0.0.1:5000", "x"],
            "not a multicast group",
        ),
        (
            &["multicast", "send", "239.1.1.1:5000", "x", "--reply"],
            "--collect",
        ),
        (
            &[
                "multicast",
                "send",
                "239.1.1.1:5000",
                "x",
                "--iface",
                "nosuchif0",
            ],
            "nosuchif0",
        ),
        (&["multicast", "join"], "GROUP:PORT"),
    ] {
        let r = run(args);
        r.expect_code(2).expect_stderr(mention);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}

/// A Python socket that joins `group` on loopback, takes one datagram and runs `then`
/// (Python, with `data`, `addr` and the socket `s`). Returns it and its port, or `None`
/// (skipped) without python3.
fn python_member(group: &str, then: &str) -> Option<(Guard, String)> {
    if !crate::harness::tool("multicast::python_member", "python3") {
        return None;
    }
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("{group}") + socket.inet_aton("127.0.0.1"))
print(s.getsockname()[1], flush=True)
s.settimeout(10)
data, addr = s.recvfrom(100)
{then}
"#
    );
    let g = spawn_cmd("python3", &["-c", &script], None);
    let out = g.wait_stdout("the port", |o| o.contains(&b'\n'));
    let port = String::from_utf8_lossy(&out).trim().to_string();
    Some((g, port))
}

#[test]
fn a_python_joiner_receives_what_multicast_send_sends() {
    let Some((g, port)) = python_member("239.7.8.1", "print(data.decode(), flush=True)") else {
        return;
    };
    run(&[
        "multicast",
        "send",
        &format!("239.7.8.1:{port}"),
        "to python",
        "--iface",
        "127.0.0.1",
    ])
    .expect_code(0);
    g.wait_stdout("the datagram", |o| {
        String::from_utf8_lossy(o).contains("to python")
    });
}

#[test]
fn multicast_join_receives_what_socat_sends() {
    if !crate::harness::tool(
        "multicast::multicast_join_receives_what_socat_sends",
        "socat",
    ) {
        return;
    }
    let (g, port) = joiner(&[
        "239.7.8.2:0",
        "--iface",
        "127.0.0.1",
        "-n",
        "1",
        "-f",
        "line",
    ]);
    let mut s = spawn_cmd(
        "socat",
        &[
            "-u",
            "-",
            &format!("UDP4-DATAGRAM:239.7.8.2:{port},ip-multicast-if=127.0.0.1"),
        ],
        Some(b"from socat"),
    );
    s.close_stdin();
    s.finish().expect_code(0);
    let (code, out, err) = lines(g);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, ["from socat"]);
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct Netns {
    names: [String; 2],
    /// Apart from other tests' pairs: a number of this process's own.
    id: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        let test = "multicast veth tests";
        if !crate::harness::root(test, "network namespaces") || !crate::harness::tool(test, "ip") {
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let names = [format!("dgram-a-{id}"), format!("dgram-b-{id}")];
        let sh = |cmd: String| {
            std::process::Command::new("sh")
                .args(["-c", &cmd])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        let (a, b) = (&names[0], &names[1]);
        let ok = sh(format!("ip netns add {a} && ip netns add {b}"))
            && sh(format!("ip link add va-{id} netns {a} type veth peer name vb-{id} netns {b}"))
            && sh(format!("ip -n {a} link set lo up && ip -n {a} link set va-{id} up && ip -n {a} addr add fd99::1/64 dev va-{id} nodad && ip -n {a} addr add fd99::3/64 dev va-{id} nodad && ip -n {a} addr add 10.99.0.1/24 dev va-{id}"))
            && sh(format!("ip -n {b} link set lo up && ip -n {b} link set vb-{id} up && ip -n {b} addr add fd99::2/64 dev vb-{id} nodad && ip -n {b} addr add 10.99.0.2/24 dev vb-{id}"));
        let ns = Netns { names, id };
        ok.then_some(ns)
    }

    fn iface(&self, side: usize) -> String {
        format!("v{}-{}", ["a", "b"][side], self.id)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

/// A network namespace whose default route is one end of a veth pair whose other end is
/// in the same namespace: what a host's default route looks like to a multicast join,
/// with nowhere outside for its reports to go. (No dummy driver in every kernel.)
struct DummyNetns {
    name: String,
}

impl DummyNetns {
    fn create() -> Option<DummyNetns> {
        let test = "multicast::DummyNetns";
        if !crate::harness::root(test, "a network namespace") || !crate::harness::tool(test, "ip") {
            return None;
        }
        let name = format!("dgram-d-{}", std::process::id());
        let ns = DummyNetns { name };
        let n = &ns.name;
        let ok = std::process::Command::new("sh")
            .args(["-c", &format!("ip netns add {n} && ip -n {n} link set lo up && ip -n {n} link add d0 type veth peer name d1 && ip -n {n} link set d0 up && ip -n {n} link set d1 up && ip -n {n} addr add 10.98.0.1/24 dev d0 && ip -n {n} route add default dev d0")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not set up namespace {n}");
        Some(ns)
    }
}

impl Drop for DummyNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `dgram ARGS` inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Guard {
    let mut full = vec!["netns", "exec", ns, crate::harness::bin()];
    full.extend_from_slice(args);
    let mut g = spawn_cmd("ip", &full, None);
    g.close_stdin();
    g
}

fn ns_joiner_ssm(ns: &str, iface: &str, source: &str) -> (Guard, u16) {
    let g = in_ns(
        ns,
        &[
            "multicast",
            "join",
            "[ff3e::4243]:0",
            "--iface",
            iface,
            "--source",
            source,
            "-w",
            "1s",
            "-f",
            "line",
        ],
    );
    let port = g.announced().port();
    g.wait_stderr("joined ");
    (g, port)
}

fn ns_joiner(ns: &str, target: &str, iface: &str, wait: &str) -> (Guard, u16) {
    let g = in_ns(
        ns,
        &[
            "multicast",
            "join",
            target,
            "--iface",
            iface,
            "-w",
            wait,
            "-f",
            "line",
        ],
    );
    let port = g.announced().port();
    g.wait_stderr("joined ");
    (g, port)
}

#[test]
fn groups_cross_a_veth_pair_with_the_ttl_asked_and_no_loop_skips_local_joiners() {
    // Traffic stays inside two namespaces this test creates (their own addresses on a
    // veth pair); nothing reaches any other host.
    let Some(ns) = Netns::create() else {
        return; // skipped, and said so, by Netns::create
    };
    let (a, b) = (&ns.names[0], &ns.names[1]);
    let (if_a, if_b) = (ns.iface(0), ns.iface(1));

    // IPv6, link-scoped group: crosses the link.
    let (g, port) = ns_joiner(b, "[ff02::4242]:0", &if_b, "1s");
    in_ns(
        a,
        &[
            "multicast",
            "send",
            &format!("[ff02::4242]:{port}"),
            "six across",
            "--iface",
            &if_a,
        ],
    )
    .finish()
    .expect_code(0);
    g.finish().expect_code(0).expect_stdout(b"six across\n");

    // IPv6 source-specific (SSM range ff3e::/32): only fd99::1 is heard, not fd99::3.
    let (g, port) = ns_joiner_ssm(b, &if_b, "fd99::1");
    let to = format!("[ff3e::4243]:{port}");
    for (from, msg) in [("[fd99::3]:0", "from three"), ("[fd99::1]:0", "from one")] {
        in_ns(
            a,
            &[
                "multicast",
                "send",
                &to,
                msg,
                "--iface",
                &if_a,
                "--bind",
                from,
            ],
        )
        .finish()
        .expect_code(0);
    }
    g.finish().expect_code(0).expect_stdout(b"from one\n");

    // IPv4: the TTL on the wire is what --ttl says (default 1), read by a receiver with
    // IP_RECVTTL. (Measured here: Linux 6.18 transmits TTL-0 multicast too, so "TTL 0 stays
    // home" is not something the kernel guarantees; the README says so.)
    let script = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("239.7.9.1") + socket.inet_aton("10.99.0.2"))
s.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL (Linux)
print(s.getsockname()[1], flush=True)
s.settimeout(5)
for _ in range(3):
    data, anc, _, _ = s.recvmsg(100, 64)
    ttl = [struct.unpack("i", d)[0] for (l, t, d) in anc if t == 2]  # IP_TTL
    print(data.decode(), ttl[0], flush=True)
"#;
    let py = spawn_cmd("ip", &["netns", "exec", b, "python3", "-c", script], None);
    let out = py.wait_stdout("the port", |o| o.contains(&b'\n'));
    let port = String::from_utf8_lossy(&out).trim().to_string();
    let to = format!("239.7.9.1:{port}");
    for ttl in [None, Some("0"), Some("7")] {
        let mut args = vec!["multicast", "send", &to, "ttl", "--iface", &if_a];
        if let Some(t) = ttl {
            args.extend(["--ttl", t]);
        }
        in_ns(a, &args).finish().expect_code(0);
    }
    let out = py.wait_stdout("three datagrams", |o| {
        o.iter().filter(|&&c| c == b'\n').count() >= 4
    });
    let lines: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(lines, ["ttl 1", "ttl 0", "ttl 7"]);

    // --no-loop: a joiner on the sender's own host hears nothing, the other host does.
    let (far, port) = ns_joiner(b, "239.7.9.2:0", &if_b, "1s");
    let (near, _) = ns_joiner(a, &format!("239.7.9.2:{port}"), &if_a, "1s");
    in_ns(
        a,
        &[
            "multicast",
            "send",
            &format!("239.7.9.2:{port}"),
            "not home",
            "--iface",
            &if_a,
            "--no-loop",
        ],
    )
    .finish()
    .expect_code(0);
    far.finish().expect_code(0).expect_stdout(b"not home\n");
    near.finish().expect_code(0).expect_stdout(b"");
}

#[test]
fn multicast_send_collect_gathers_answers_from_members() {
    // A member that answers every datagram from its own (unicast) address: discovery.
    let Some((_member, port)) =
        python_member("239.7.8.3", r#"s.sendto(b"member here: " + data, addr)"#)
    else {
        return;
    };
    run(&[
        "multicast",
        "send",
        &format!("239.7.8.3:{port}"),
        "who is there",
        "--iface",
        "127.0.0.1",
        "--collect",
        "-w",
        "500ms",
        "-f",
        "line",
    ])
    .expect_code(0)
    .expect_stdout(b"member here: who is there\n");
}

#[test]
fn mdns_over_ipv6_decodes_on_its_own_group_and_port() {
    // [ff02::fb]:5353 in a namespace pair of this test's own (IPv6 multicast does not
    // loop on lo): port 5353 there is free, and nothing reaches another host.
    let Some(ns) = Netns::create() else {
        return;
    };
    let (a, b) = (&ns.names[0], &ns.names[1]);
    let g = in_ns(
        b,
        &[
            "multicast",
            "join",
            "[ff02::fb]:5353",
            "--iface",
            &ns.iface(1),
            "--dns",
            "-n",
            "2",
            "-w",
            "5s",
        ],
    );
    g.wait_stderr("joined ");
    // A question for x.local AAAA with the unicast-response bit, then its answer with the
    // cache-flush bit, as mDNS responders send them.
    let question = "0000 0000 0001 0000 0000 0000 0178 056c6f63616c00 001c 8001";
    let answer = "0000 8400 0000 0001 0000 0000 0178 056c6f63616c00 001c 8001 00000078 0010 fd990000000000000000000000000001";
    for hex in [question, answer] {
        in_ns(
            a,
            &[
                "multicast",
                "send",
                "[ff02::fb]:5353",
                "--iface",
                &ns.iface(0),
                "-x",
                hex,
            ],
        )
        .finish()
        .expect_code(0);
    }
    let r = g.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(
        out.contains(";x.local.\t\tIN\tAAAA\t; unicast-response\n"),
        "{out}"
    );
    assert!(
        out.contains("x.local.\t120\tIN\tAAAA\tfd99::1\t; cache-flush\n"),
        "{out}"
    );
    // The peer line names the sender: one of its addresses on the veth (fd99::1, ::3).
    assert!(out.starts_with(";; [fd99::"), "{out}");
}
