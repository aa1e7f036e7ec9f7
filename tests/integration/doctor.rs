//! `dgram doctor`: every check of the SPEC, in text and JSON, the probe, and nothing off
//! loopback without it.

use crate::harness::{run, Server};

const CHECKS: [&str; 15] = [
    "loopback-ipv4",
    "loopback-ipv6",
    "rmem_default",
    "rmem_max",
    "wmem_max",
    "udp-memory",
    "ephemeral-ports",
    "udp-gso",
    "udp-gro",
    "ip-pktinfo",
    "so-meminfo",
    "ip-recverr",
    "multicast-ipv4-lo",
    "multicast-ipv6-lo",
    "firewall",
];

#[test]
fn on_this_machine_every_check_runs_and_nothing_fails() {
    let r = run(&["doctor"]);
    r.expect_code(0);
    let out = r.stdout_str();
    for check in CHECKS {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&format!("{check}:")))
            .unwrap_or_else(|| panic!("no {check} line in\n{out}"));
        assert!(
            line.starts_with("ok ") || line.starts_with("warn "),
            "{line}"
        );
    }
    assert!(out.contains("65507 bytes came back whole"), "{out}");
    assert!(out.contains("65527 bytes came back whole"), "{out}");
    // The buffer line says what the default holds, and warns with the fix when small.
    let bytes: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let line = out.lines().find(|l| l.contains("rmem_default:")).unwrap();
    assert!(
        line.contains(&format!("holds about {} datagrams of 64 B", bytes / 768)),
        "{line}"
    );
    if bytes / 768 < 1000 {
        assert!(
            line.starts_with("warn") && line.contains("sysctl -w net.core.rmem_default="),
            "{line}"
        );
    }
}

#[test]
fn json_is_one_object_per_check() {
    let r = run(&["doctor", "--format", "json"]);
    r.expect_code(0);
    let objects: Vec<serde_json::Value> = r
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS);
    for o in &objects {
        assert!(
            ["ok", "warn", "fail"].contains(&o["status"].as_str().unwrap()),
            "{o}"
        );
        assert!(o["detail"].is_string(), "{o}");
    }
    assert!(objects[0]["rtt_us"].is_u64() && objects[0]["largest"] == 65_507);
    assert!(objects[2]["bytes"].is_u64());
}

#[test]
fn a_probe_is_a_smoke_test() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = closed.local_addr().unwrap().to_string();
    drop(closed);
    let r = run(&["doctor", &t, "--probe"]);
    r.expect_code(1).expect_stderr("check(s) failed: probe");
    let probe = r
        .stdout_str()
        .lines()
        .find(|l| l.contains("probe:"))
        .unwrap()
        .to_string();
    assert!(
        probe.starts_with("fail")
            && probe.contains(&format!("connection refused: nothing is listening on {t}")),
        "{probe}"
    );
    let echo = Server::start(&["echo", "0"]);
    let r = run(&["doctor", &echo.addr.to_string(), "--probe"]);
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(
        out.contains(&format!("ok    resolve: {} is {}", echo.addr, echo.addr)),
        "{out}"
    );
    assert!(
        out.contains("ok    route: to ") && out.contains("(nothing sent)"),
        "{out}"
    );
    let probe = out.lines().find(|l| l.contains("probe:")).unwrap();
    assert!(
        probe.starts_with("ok") && probe.contains("answered 18 bytes in"),
        "{probe}"
    );
    // Without --probe nothing is sent to the target: the echo sees nothing.
    let silent = crate::harness::peer("127.0.0.1");
    run(&["doctor", &silent.local_addr().unwrap().to_string()]).expect_code(0);
    assert!(!crate::harness::arrives_within(
        &silent,
        std::time::Duration::from_millis(200)
    ));
}

#[test]
fn a_lowered_default_buffer_in_a_namespace_warns() {
    if !crate::harness::root("doctor::a_lowered_default_buffer", "a network namespace") {
        return;
    }
    let ns = format!("dgram-doc-{}", std::process::id());
    let ok = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ip netns add {ns} && ip -n {ns} link set lo up"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok);
    let _ = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.core.rmem_default=106496",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    // Read back: some kernels refuse it in a namespace, and sysctl -q exits 0 anyway.
    let now = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "cat",
            "/proc/sys/net/core/rmem_default",
        ])
        .output()
        .unwrap();
    let lowered = String::from_utf8_lossy(&now.stdout).trim() == "106496";
    if lowered {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, crate::harness::bin(), "doctor"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("rmem_default:"))
            .unwrap_or_default();
        assert!(
            line.starts_with("warn") && line.contains("106496 bytes") && line.contains("sysctl -w"),
            "{line}"
        );
    } else {
        crate::harness::skip_for_host(
            "doctor::a_lowered_default_buffer",
            "this kernel refuses net.core.rmem_default in a network namespace (EINVAL)",
        );
    }
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
}

#[test]
fn nothing_leaves_loopback_without_probe() {
    let test = "doctor::nothing_leaves_loopback";
    if !crate::harness::root(test, "network namespaces") || !crate::harness::tool(test, "tshark") {
        return;
    }
    let (a, b) = (
        format!("dgram-dq-{}", std::process::id()),
        format!("dgram-dr-{}", std::process::id()),
    );
    let setup = format!(
        "ip netns add {a} && ip netns add {b} && ip -n {a} link set lo up && ip -n {a} link add va type veth peer name vb netns {b} && ip -n {a} link set va up && ip -n {b} link set vb up && ip -n {a} addr add 10.93.0.1/24 dev va && ip -n {b} addr add 10.93.0.2/24 dev vb"
    );
    assert!(std::process::Command::new("sh")
        .args(["-c", &setup])
        .status()
        .unwrap()
        .success());
    let udp_on_the_veth = |args: &[&str]| -> usize {
        let file = std::env::temp_dir().join(format!("{a}-{}.pcapng", args.len()));
        let file_s = file.to_str().unwrap().to_string();
        let mut t = crate::harness::spawn_cmd(
            "ip",
            &[
                "netns",
                "exec",
                &a,
                "tshark",
                "-i",
                "va",
                "-f",
                "udp",
                "-a",
                "duration:3",
                "-w",
                &file_s,
            ],
            None,
        );
        t.close_stdin();
        t.wait_stderr("Capture started");
        let mut full = vec!["netns", "exec", a.as_str(), crate::harness::bin(), "doctor"];
        full.extend_from_slice(args);
        let mut d = crate::harness::spawn_cmd("ip", &full, None);
        d.close_stdin();
        d.finish();
        t.finish();
        let out = std::process::Command::new("tshark")
            .args(["-r", &file_s])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // Every check, and TARGET's route, with nothing on the wire; --probe is one datagram.
    assert_eq!(udp_on_the_veth(&["10.93.0.2:53"]), 0);
    assert_eq!(udp_on_the_veth(&["10.93.0.2:53", "--probe"]), 1);
    for n in [&a, &b] {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", n])
            .status();
    }
}

#[test]
fn a_target_without_a_port_is_refused_before_any_check() {
    // guards: `dgram doctor 127.0.0.1` ran every check, then failed "resolve".
    let r = run(&["doctor", "127.0.0.1"]);
    r.expect_code(2)
        .expect_stderr("invalid address '127.0.0.1': missing ':PORT'");
    assert!(r.stdout.is_empty(), "no check ran: {}", r.stdout_str());
    // A well-formed name that does not resolve is a check that fails, after the others.
    let r = run(&["doctor", "nosuch.invalid:53"]);
    r.expect_code(1).expect_stderr("check(s) failed: resolve");
    assert!(r.stdout_str().contains("loopback"), "{}", r.stdout_str());
}
