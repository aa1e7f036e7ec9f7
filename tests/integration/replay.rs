//! `send --replay`: captures made by tshark (a program nobody here wrote) inside network
//! namespaces these tests create, replayed to a `dgram listen` on loopback and compared
//! payload for payload, in order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{run, spawn_cmd, tool, Guard, Server};

/// A namespace of its own (lo up, and a veth pair inside it when asked), removed on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn create(test: &str, veth: bool) -> Option<Ns> {
        if !crate::harness::root(test, "network namespaces")
            || !tool(test, "ip")
            || !tool(test, "tshark")
        {
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = Ns {
            name: format!("dgram-r{}-{n}", std::process::id()),
        };
        let name = &ns.name;
        let mut script = format!("ip netns add {name} && ip -n {name} link set lo up");
        if veth {
            // A peer namespace at the other end of a veth pair: frames cross a real
            // Ethernet link, and stay between the two namespaces.
            script.push_str(&format!(
                " && ip netns add {name}-b && ip -n {name} link add va type veth peer name vb netns {name}-b && ip -n {name} link set va up && ip -n {name}-b link set vb up && ip -n {name}-b link set lo up && ip -n {name} addr add 10.77.0.1/24 dev va && ip -n {name} addr add fd77::1/64 dev va nodad && ip -n {name}-b addr add 10.77.0.2/24 dev vb && ip -n {name}-b addr add fd77::2/64 dev vb nodad"
            ));
        }
        let ok = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{test}: could not set up namespace {name}");
        Some(ns)
    }

    /// `dgram ARGS` inside the namespace, to completion.
    fn dgram(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name, crate::harness::bin()];
        full.extend_from_slice(args);
        let mut g = spawn_cmd("ip", &full, None);
        g.close_stdin();
        g.finish();
    }

    /// Capture `count` UDP packets on `iface` with tshark `extra` flags while `traffic`
    /// runs inside the namespace; the capture file.
    fn capture(
        &self,
        file: &str,
        iface: &str,
        count: usize,
        extra: &[&str],
        traffic: impl FnOnce(&Ns),
    ) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}-{file}", self.name));
        let count = count.to_string();
        let path_str = path.to_str().unwrap().to_string();
        let mut args = vec![
            "netns", "exec", &self.name, "tshark", "-i", iface, "-f", "udp", "-c", &count, "-w",
            &path_str,
        ];
        args.extend_from_slice(extra);
        let mut t: Guard = spawn_cmd("ip", &args, None);
        t.close_stdin();
        t.wait_stderr("Capture started");
        traffic(self);
        let r = t.finish();
        assert!(r.status.success(), "tshark: {}", r.stderr);
        path
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Replay `file` to a fresh `dgram listen` on loopback; the payloads it received, in order.
fn replayed(
    file: &std::path::Path,
    n: usize,
    extra: &[&str],
) -> (Vec<Vec<u8>>, crate::harness::Run) {
    let s = Server::start(&["listen", "0", "-n", &n.to_string(), "-w", "5s", "-f", "hex"]);
    let mut args = vec![
        "send".to_string(),
        s.addr.to_string(),
        "--replay".into(),
        file.to_str().unwrap().into(),
        "--stats".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let sent = run(&argv);
    let r = s.finish();
    let got = r.stdout_str().lines().map(crate::harness::unhex).collect();
    (got, sent)
}

fn messages(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

#[test]
fn captures_of_every_kind_replay_payload_for_payload() {
    let Some(ns) = Ns::create("replay::captures_of_every_kind", false) else {
        return;
    };
    for (file, iface, extra, prefix) in [
        ("lo.pcapng", "lo", &[][..], "pcapng"),
        ("lo.pcap", "lo", &["-F", "pcap"][..], "pcap"),
        ("any.pcapng", "any", &[][..], "cooked1"),
        ("any2.pcapng", "any", &["-y", "LINUX_SLL2"][..], "cooked2"),
    ] {
        let want = messages(prefix, 5);
        let path = ns.capture(file, iface, 6, extra, |ns| {
            let lines: String = want
                .iter()
                .map(|m| format!("{}\n", String::from_utf8_lossy(m)))
                .collect();
            std::fs::write(format!("/tmp/{}-lines", ns.name), &lines).unwrap();
            ns.dgram(&[
                "send",
                "127.0.0.1:5353",
                "--file",
                &format!("/tmp/{}-lines", ns.name),
            ]);
            for m in &want {
                ns.dgram(&["send", "127.0.0.1:5353", std::str::from_utf8(m).unwrap()]);
            }
        });
        // The first datagram was the whole file; the five after it are the messages.
        let (got, sent) = replayed(&path, 6, &["--speed", "max"]);
        sent.expect_code(0);
        assert_eq!(got.len(), 6, "{file}: {}", sent.stderr);
        assert_eq!(&got[1..], &want[..], "{file}");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn ethernet_ipv6_and_fragments_cross_a_veth_and_come_back_whole() {
    let Some(ns) = Ns::create("replay::ethernet_ipv6_and_fragments", true) else {
        return;
    };
    let big = "y".repeat(4000);
    let path = ns.capture("veth.pcapng", "va", 5, &[], |ns| {
        ns.dgram(&[
            "send",
            "10.77.0.2:7000",
            "small v4",
            "--bind",
            "10.77.0.1:0",
        ]);
        ns.dgram(&[
            "send",
            "[fd77::2]:7000",
            "small v6",
            "--bind",
            "[fd77::1]:0",
        ]);
        // 4,000 bytes over a 1,500-byte MTU: three fragments on the wire.
        ns.dgram(&["send", "10.77.0.2:7000", &big, "--bind", "10.77.0.1:0"]);
    });
    // The capture on va sees them leave.
    let (got, sent) = replayed(&path, 3, &["--speed", "max"]);
    sent.expect_code(0);
    assert_eq!(
        got,
        [b"small v4".to_vec(), b"small v6".to_vec(), big.into_bytes()]
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn vlan_tagged_frames_replay_their_payloads() {
    let test = "replay::vlan_tagged_frames_replay_their_payloads";
    let Some(ns) = Ns::create(test, true) else {
        return;
    };
    let name = &ns.name;
    // A VLAN sub-interface on each end of the veth: the parent carries tagged frames.
    let vlan = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ip -n {name} link add link va name va.7 type vlan id 7 2>&1 && ip -n {name}-b link add link vb name vb.7 type vlan id 7 && ip -n {name} link set va.7 up && ip -n {name}-b link set vb.7 up && ip -n {name} addr add 10.78.0.1/24 dev va.7 && ip -n {name}-b addr add 10.78.0.2/24 dev vb.7"),
        ])
        .output()
        .unwrap();
    if !vlan.status.success() {
        // Only a kernel without 802.1Q may skip this (the frames are still read in
        // capture::tests, built byte by byte).
        crate::harness::skip_for_host(
            test,
            &format!(
                "this kernel has no 802.1Q VLAN support (ip link add type vlan: {})",
                String::from_utf8_lossy(&vlan.stdout).trim()
            ),
        );
        return;
    }
    let want = messages("tagged", 3);
    let path = ns.capture("vlan.pcapng", "va", 3, &[], |ns| {
        for m in &want {
            ns.dgram(&[
                "send",
                "10.78.0.2:7000",
                std::str::from_utf8(m).unwrap(),
                "--bind",
                "10.78.0.1:0",
            ]);
        }
    });
    let (got, sent) = replayed(&path, 3, &["--speed", "max"]);
    sent.expect_code(0);
    assert_eq!(got, want);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_snap_length_cut_datagram_is_skipped_and_counted() {
    let Some(ns) = Ns::create("replay::a_snap_length_cut", false) else {
        return;
    };
    let long = "z".repeat(300);
    let path = ns.capture("snap.pcapng", "lo", 3, &["-s", "100"], |ns| {
        ns.dgram(&["send", "127.0.0.1:5353", "short one"]);
        ns.dgram(&["send", "127.0.0.1:5353", &long]);
        ns.dgram(&["send", "127.0.0.1:5353", "short two"]);
    });
    let (got, sent) = replayed(&path, 2, &["--speed", "max"]);
    sent.expect_code(0).expect_stderr("truncated 1");
    assert_eq!(got, [b"short one".to_vec(), b"short two".to_vec()]);
    let _ = std::fs::remove_file(&path);
}

/// dgram's own capture at `path` of ten datagrams `tick`, 20 ms apart.
fn ticks(path: &std::path::Path) -> PathBuf {
    let rx = Server::start(&["listen", "0", "--pcap", path.to_str().unwrap(), "-n", "10"]);
    run(&[
        "send",
        &rx.addr.to_string(),
        "tick",
        "-n",
        "10",
        "-i",
        "20ms",
    ])
    .expect_code(0);
    rx.finish().expect_code(0);
    path.to_path_buf()
}

#[test]
fn dgram_s_own_capture_replays_what_it_received_with_its_timing() {
    let dir = std::env::temp_dir().join(format!("dgram-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = ticks(&dir.join("own.pcap"));
    let started = Instant::now();
    let (got, sent) = replayed(&pcap, 10, &[]);
    sent.expect_code(0).expect_stderr("lateness p50/p99/max");
    assert_eq!(got, vec![b"tick".to_vec(); 10]);
    // Nine 20 ms gaps: about 180 ms (a loose bound: timing is the benchmark's job).
    assert!(
        started.elapsed() >= Duration::from_millis(170),
        "{:?}",
        started.elapsed()
    );
    // --speed 2 halves it; --match keeps only one port.
    let (got, sent) = replayed(&pcap, 10, &["--speed", "2", "-f", "json"]);
    sent.expect_code(0);
    assert_eq!(got.len(), 10);
    let v = crate::harness::json_last_line(&sent.stderr);
    // Nine 20 ms gaps halved: about 90 ms of sending (loose bounds).
    let took = v["elapsed_s"].as_f64().unwrap();
    assert!((0.080..0.160).contains(&took), "--speed 2 took {took} s");
    let (got, sent) = replayed(&pcap, 1, &["--match", ":9", "-w", "300ms"]);
    sent.expect_code(0).expect_stderr("unmatched 10");
    assert!(got.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_that_are_not_captures_are_refused_with_their_offset() {
    let dir = std::env::temp_dir().join(format!("dgram-replay-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"certainly not a capture file, only words").unwrap();
    run(&["send", "127.0.0.1:9", "--replay", junk.to_str().unwrap()])
        .expect_code(2)
        .expect_stderr("not a pcap or pcapng capture (offset 0)");
    let pcap = dir.join("own.pcap");
    let rx = Server::start(&["listen", "0", "--pcap", pcap.to_str().unwrap(), "-n", "3"]);
    run(&["send", &rx.addr.to_string(), "cut me", "-n", "3"]).expect_code(0);
    rx.finish().expect_code(0);
    let whole = std::fs::read(&pcap).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 5]).unwrap();
    let s = Server::start(&["listen", "0", "-n", "2", "-f", "line"]);
    run(&[
        "send",
        &s.addr.to_string(),
        "--replay",
        cut.to_str().unwrap(),
        "--speed",
        "max",
    ])
    .expect_code(2)
    .expect_stderr("cut in the middle of a record at offset");
    // The datagrams before the cut were sent.
    s.finish().expect_code(0).expect_stdout(b"cut me\ncut me\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replies_print_as_they_come_without_holding_the_schedule() {
    // guards: --replay --reply waited for each reply before the next datagram, so a
    // 100 ms echo stretched ten datagrams 20 ms apart to a second, 0.7 s late.
    let dir = std::env::temp_dir().join(format!("dgram-replay-reply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = ticks(&dir.join("ticks.pcap"));
    let echo = Server::start(&["echo", "0", "--delay", "100ms"]);
    let r = run(&[
        "send",
        &echo.addr.to_string(),
        "--replay",
        pcap.to_str().unwrap(),
        "--reply",
        "--stats",
        "-f",
        "json",
    ]);
    r.expect_code(0);
    assert_eq!(
        crate::harness::json_texts(&r.stdout_str()),
        vec!["tick"; 10]
    );
    let v = crate::harness::json_last_line(&r.stderr);
    assert_eq!(
        (v["sent"].as_u64(), v["received"].as_u64()),
        (Some(10), Some(10)),
        "{v}"
    );
    // Each left on time, though every reply took 100 ms: held up by its replies, the
    // last would leave 725 ms late (a generous bound for a loaded host: 300 ms).
    let late = v["lateness_us"]["max"].as_u64().unwrap();
    assert!(late < 300_000, "a datagram left {late} µs late: {v}");
    // A silent target: exit 1, saying how many went unanswered.
    let silent = crate::harness::peer("127.0.0.1");
    run(&[
        "send",
        &silent.local_addr().unwrap().to_string(),
        "--replay",
        pcap.to_str().unwrap(),
        "--reply",
        "-w",
        "100ms",
    ])
    .expect_code(1)
    .expect_stderr("no reply to 10 datagrams");
    // --count takes the first N; --interval replaces the captured gaps.
    let (got, sent) = replayed(&pcap, 3, &["--count", "3"]);
    sent.expect_code(0);
    assert_eq!(got, vec![b"tick".to_vec(); 3]);
    let (got, sent) = replayed(&pcap, 10, &["--interval", "1ms", "-f", "json"]);
    sent.expect_code(0);
    assert_eq!(got.len(), 10);
    let took = crate::harness::json_last_line(&sent.stderr)["elapsed_s"]
        .as_f64()
        .unwrap();
    assert!(
        took < 0.150,
        "the captured 180 ms of gaps were kept: {took} s"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
