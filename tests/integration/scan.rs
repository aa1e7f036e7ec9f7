//! `dgram scan` (SPEC §11): on loopback (responders, closed ports, a reader that never
//! answers, every port of the host, the scanner's own port, JSON, `--open`, `--expect`
//! and `--wait`), and in namespaces the tests build (a firewall's reject and drop, a
//! router's unreachable route, a host that rate-limits its ICMP).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::{run, spawn, spawn_cmd, tool, Run, Server};
use crate::netns::Namespaces;

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    crate::harness::released_port()
}

fn lines(r: &Run) -> Vec<String> {
    r.stdout_str().lines().map(String::from).collect()
}

#[test]
fn each_port_gets_its_state_and_reason_in_port_order() {
    let echo = Server::start(&["echo", "0"]);
    // A reader that never answers: bound, so no ICMP; silent, so open|filtered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (e, s, c) = (
        echo.addr.port(),
        silent.local_addr().unwrap().port(),
        closed_port(),
    );
    let ports = format!("{c},{s},{e}");
    let r = run(&["scan", "127.0.0.1", &ports, "-w", "300ms"]);
    r.expect_code(0);
    let mut want: Vec<(u16, &str)> = vec![
        (c, "closed port-unreach"),
        (s, "open|filtered no-response"),
        (e, "open udp-response"),
    ];
    want.sort();
    let got = lines(&r);
    assert_eq!(got.len(), 3, "{got:?}");
    for (line, (port, what)) in got.iter().zip(&want) {
        assert!(
            line.starts_with(&format!("{port}/udp {what}")),
            "{line} (want {port} {what})"
        );
    }
    let closed_line = got
        .iter()
        .find(|l| l.starts_with(&format!("{c}/")))
        .unwrap();
    assert!(
        closed_line.ends_with("ms"),
        "the RTT of its ICMP: {closed_line}"
    );
    assert!(
        r.stderr.contains("scanned 3 ports of 127.0.0.1")
            && r.stderr
                .contains("1 open, 1 closed, 0 filtered, 1 open|filtered; 3 probes sent"),
        "{}",
        r.stderr
    );
    // --open: only the open one; JSON: an object per port.
    let r = run(&["scan", "127.0.0.1", &ports, "-w", "300ms", "--open"]);
    assert_eq!(
        lines(&r),
        [format!(
            "{e}/udp open udp-response {}",
            lines(&r)[0].rsplit(' ').next().unwrap()
        )]
    );
    let r = run(&["scan", "127.0.0.1", &ports, "-w", "300ms", "-f", "json"]);
    let objs: Vec<serde_json::Value> = lines(&r)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_port = |p: u16| objs.iter().find(|o| o["port"] == p).unwrap().clone();
    assert_eq!(by_port(e)["state"], "open");
    // No protocol is known on a high port: the probe is empty, and so is echo's reply.
    assert_eq!(by_port(e)["reply_len"], 0, "{}", by_port(e));
    assert_eq!(by_port(c)["state"], "closed");
    assert!(by_port(c)["rtt_us"].is_u64());
    assert_eq!(by_port(s)["state"], "open|filtered");
    assert!(by_port(s).get("rtt_us").is_none());
}

#[test]
fn all_65535_ports_of_this_host_exactly_and_never_the_scanners_own() {
    let responders: Vec<Server> = (0..3).map(|_| Server::start(&["echo", "0"])).collect();
    let mut open: Vec<u16> = responders.iter().map(|s| s.addr.port()).collect();
    open.sort();
    let r = run(&["scan", "127.0.0.1", "1-65535", "-f", "json", "-v"]);
    r.expect_code(0);
    let all: Vec<serde_json::Value> = lines(&r)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), 65_535, "every port, once");
    assert!(
        all.windows(2)
            .all(|w| w[0]["port"].as_u64() < w[1]["port"].as_u64()),
        "in port order"
    );
    let state = |p: u16| {
        all[usize::from(p) - 1]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for p in &open {
        assert_eq!(state(*p), "open", "responder {p}");
    }
    // The scanner's own port is probed from another socket once its own is closed: a
    // probe to itself would come back as a "reply".
    let own: u16 = r
        .stderr
        .split("port ")
        .find_map(|s| s.strip_suffix_own())
        .expect("-v names the scanner's own port");
    assert_eq!(state(own), "closed", "{}", r.stderr);
    // Other tests' servers run meanwhile: anything else open is theirs, each bound.
    assert!(r.stderr.contains("scanned 65535 ports"), "{}", r.stderr);
}

trait OwnPort {
    fn strip_suffix_own(&self) -> Option<u16>;
}

impl OwnPort for str {
    /// `N is the scanner's own...` → N.
    fn strip_suffix_own(&self) -> Option<u16> {
        let (n, rest) = self.split_once(' ')?;
        rest.starts_with("is the scanner's own")
            .then(|| n.parse().ok())?
    }
}

#[test]
fn expect_and_wait_make_a_ci_check_of_a_service_that_starts_late() {
    let port = closed_port();
    let p = port.to_string();
    let r = run(&["scan", "127.0.0.1", &p, "--expect", "open"]);
    r.expect_code(1)
        .expect_stderr(&format!("{port}/udp closed (port-unreach)"));
    run(&["scan", "127.0.0.1", &p, "--expect", "closed,filtered"]).expect_code(0);
    // The service comes up while scan waits: exit 0, its port open.
    let mut waiting = spawn(
        &[
            "scan",
            "127.0.0.1",
            &p,
            "--expect",
            "open",
            "--wait",
            "20s",
            "-v",
        ],
        None,
    );
    waiting.close_stdin();
    // Once a round has found it closed, the service starts.
    waiting.wait_stderr("not yet");
    let listen_at = format!("127.0.0.1:{port}");
    let _echo = Server::start(&["echo", &listen_at]);
    let r = waiting.finish();
    r.expect_code(0);
    assert!(
        r.stdout_str()
            .starts_with(&format!("{port}/udp open udp-response")),
        "{}",
        r.stdout_str()
    );
    // --wait passes with the port still closed: exit 1.
    let other = closed_port().to_string();
    let t = Instant::now();
    run(&[
        "scan",
        "127.0.0.1",
        &other,
        "--expect",
        "open",
        "--wait",
        "600ms",
    ])
    .expect_code(1);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "it kept trying: {:?}",
        t.elapsed()
    );
}

#[test]
fn bad_port_lists_are_usage_errors_and_netcats_z_points_here() {
    for (ports, says) in [
        ("0", "out of 1-65535"),
        ("1-70000", "out of 1-65535"),
        ("", "empty part"),
        ("20-10", "runs backwards"),
        ("dns", "not a port number"),
    ] {
        run(&["scan", "127.0.0.1", ports])
            .expect_code(2)
            .expect_stderr(says);
    }
    run(&["scan", "127.0.0.1", "53", "--expect", "half"])
        .expect_code(2)
        .expect_stderr("unknown state");
    run(&["scan", "127.0.0.1", "53", "--wait", "1s"])
        .expect_code(2)
        .expect_stderr("--expect");
    run(&["scan", "127.0.0.1", "53", "-f", "hex"])
        .expect_code(2)
        .expect_stderr("text or json");
    for sub in ["send", "listen"] {
        run(&[sub, "-z", "127.0.0.1:53"])
            .expect_code(2)
            .expect_stderr("use dgram scan HOST PORTS");
    }
}

#[test]
fn a_payload_flag_replaces_the_probes() {
    // A responder that answers only "ping": with the message it is open, with the
    // default (empty) probe it stays silent.
    let picky = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = picky.local_addr().unwrap().port().to_string();
    let seen =
        crate::harness::responder(picky, 2, |req| (req == b"ping").then(|| b"pong".to_vec()));
    let r = run(&["scan", "127.0.0.1", &port, "-w", "300ms"]);
    assert!(
        r.stdout_str().contains("open|filtered no-response"),
        "{}",
        r.stdout_str()
    );
    let r = run(&["scan", "127.0.0.1", &port, "ping", "-w", "2s"]);
    assert!(
        r.stdout_str().contains("open udp-response"),
        "{}",
        r.stdout_str()
    );
    let seen = seen.join().unwrap();
    assert_eq!(
        seen[0].0, b"",
        "an empty datagram where no protocol is known"
    );
    assert_eq!(seen[1].0, b"ping");
}

#[test]
fn dnsmasq_answers_the_dns_probe() {
    let Some((_dnsmasq, addr)) = crate::dns::dnsmasq() else {
        return;
    };
    // dnsmasq on its own port: the DNS probe goes to port 53 only, so send it as --dns.
    let port = addr.port().to_string();
    let r = run(&["scan", "127.0.0.1", &port, "--dns", ". NS", "-f", "json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout_str().trim()).unwrap();
    assert_eq!(v["state"], "open", "{v}");
    assert!(
        v["reply_len"].as_u64().unwrap() >= 12,
        "a DNS header at least: {v}"
    );
}

/// Client and server namespaces and a router between them (10.92.0.0/16, apart from
/// icmp.rs's); the server keeps Linux's ICMP rate limit, and a firewall that rejects port
/// 7001 with admin-prohibited and drops 7002; the router has no way to 10.92.9.0/24.
struct Net(Namespaces);

impl Net {
    fn create(test: &str) -> Option<Net> {
        let made = Namespaces::create(test, "s", &["c", "r", "s"], &["nft"], |n| {
            let (c, r, s) = (n.ns("c"), n.ns("r"), n.ns("s"));
            vec![
                format!("ip -n {r} link add cr type veth peer name rc netns {c}"),
                format!("ip -n {r} link add sr type veth peer name rs netns {s}"),
                format!("for n in {c} {r} {s}; do ip -n $n link set lo up; done"),
                format!("ip -n {c} link set rc up && ip -n {r} link set cr up && ip -n {r} link set sr up && ip -n {s} link set rs up"),
                format!("ip -n {c} addr add 10.92.1.2/24 dev rc && ip -n {r} addr add 10.92.1.1/24 dev cr"),
                format!("ip -n {r} addr add 10.92.2.1/24 dev sr && ip -n {s} addr add 10.92.2.2/24 dev rs"),
                format!("ip -n {c} route add default via 10.92.1.1 && ip -n {s} route add default via 10.92.2.1"),
                format!("ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0"),
                format!("ip -n {r} route add unreachable 10.92.9.0/24"),
                format!(
                    "ip netns exec {s} nft 'add table inet t; add chain inet t in {{ type filter hook input priority 0; }}; \
                     add rule inet t in udp dport 7001 reject with icmpx admin-prohibited; \
                     add rule inet t in udp dport 7002 drop'"
                ),
            ]
        })?;
        Some(Net(made))
    }

    fn ns(&self, which: &str) -> String {
        self.0.ns(which)
    }

    /// `dgram ARGS` in the client namespace, to completion.
    fn client(&self, args: &[&str]) -> Run {
        self.0.dgram("c", args)
    }
}

#[test]
fn a_host_that_rate_limits_its_icmp_gets_a_warning_never_a_guess() {
    let Some(net) = Net::create("scan::rate_limits") else {
        return;
    };
    // While the server's ICMP bucket is full: 20 closed ports as fast as they go, no
    // retries. Linux answers a burst of 6, then one a second: 6 closed, the rest
    // open|filtered, and the warning; none called closed without its ICMP.
    let t = Instant::now();
    let r = net.client(&[
        "scan",
        "10.92.2.2",
        "100-119",
        "--retries",
        "0",
        "--rate",
        "1000",
        "-w",
        "500ms",
    ]);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let out = r.stdout_str();
    assert_eq!(out.matches(" closed port-unreach").count(), 6, "{out}");
    assert_eq!(
        out.matches(" open|filtered no-response").count(),
        14,
        "{out}"
    );
    assert!(
        r.stderr.contains("rate-limit ICMP") && r.stderr.contains("may be closed"),
        "{}",
        r.stderr
    );
    // With the defaults (100/s, two retries) the bucket refills between tries: more
    // ports come back closed, each with its ICMP's RTT.
    let r = net.client(&["scan", "10.92.2.2", "100-119"]);
    let out = r.stdout_str();
    let closed: Vec<&str> = out.lines().filter(|l| l.contains(" closed ")).collect();
    assert!(closed.len() >= 2, "{out}");
    assert!(closed.iter().all(|l| l.ends_with("ms")), "{out}");
}

#[test]
fn firewalls_and_routers_are_told_apart_and_no_route_is_exit_3() {
    let Some(net) = Net::create("scan::firewalls_routers") else {
        return;
    };
    // A firewall's reject with admin-prohibited, its drop, and a closed port.
    let r = net.client(&[
        "scan",
        "10.92.2.2",
        "9,7001,7002",
        "-w",
        "300ms",
        "--retries",
        "1",
    ]);
    let out = r.stdout_str();
    assert!(out.contains("9/udp closed port-unreach"), "{out}");
    assert!(out.contains("7001/udp filtered admin-prohibited"), "{out}");
    assert!(out.contains("7002/udp open|filtered no-response"), "{out}");
    // An unreachable route at the router: filtered, and who said so.
    let r = net.client(&["scan", "10.92.9.9", "53", "-w", "300ms", "--retries", "0"]);
    assert!(
        r.stdout_str()
            .contains("53/udp filtered host-unreach from 10.92.1.1"),
        "{}",
        r.stdout_str()
    );
    // No route at all from the client: exit 3, naming the host.
    let ns = net.ns("c");
    let ok = std::process::Command::new("ip")
        .args(["-n", &ns, "route", "del", "default"])
        .status()
        .unwrap();
    assert!(ok.success());
    net.client(&["scan", "10.92.2.2", "53"])
        .expect_code(3)
        .expect_stderr("cannot reach 10.92.2.2");
}

/// A responder for the probes' protocols, in Python: it answers a probe only when its
/// bytes have the layout the protocol's RFC gives, and says what it checked.
const RFC_RESPONDER: &str = r#"
import select, socket, struct, sys
def ntp(p): return len(p) == 48 and (p[0] >> 3) & 7 == 4 and p[0] & 7 == 3 and p[40:48] != bytes(8)
def stun(p): return len(p) == 20 and struct.unpack("!HHI", p[:8]) == (1, 0, 0x2112A442)
def ssdp(p):
    t = p.decode("ascii", "replace")
    return t.startswith("M-SEARCH * HTTP/1.1\r\n") and 'MAN: "ssdp:discover"\r\n' in t and t.endswith("\r\n\r\n")
def nbns(p):
    return (len(p) == 50 and struct.unpack("!HHHHH", p[2:12]) == (0, 1, 0, 0, 0)
            and p[12] == 32 and p[13:45] == b"CK" + b"A" * 30 and p[45:] == b"\0\0\x21\0\x01")
def snmp(p): return p[0] == 0x30 and p[2:5] == b"\x02\x01\x03" and b"\x04\x01\x04\x02\x01\x03" in p
checks = {123: ntp, 3478: stun, 1900: ssdp, 137: nbns, 161: snmp}
socks = {}
for port in checks:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks[s] = port
print("ready", flush=True)
while True:
    for s in select.select(list(socks), [], [])[0]:
        p, peer = s.recvfrom(65535)
        ok = checks[socks[s]](p)
        print(socks[s], "ok" if ok else "bad " + p.hex(), flush=True)
        if ok:
            s.sendto(b"valid", peer)
"#;

#[test]
fn each_probe_has_the_layout_of_its_rfc_as_a_responder_checks_it() {
    let Some(net) = Net::create("scan::each_probe") else {
        return;
    };
    if !tool("scan::each_probe", "python3") {
        return;
    }
    let ns = net.ns("s");
    let responder = spawn_cmd(
        "ip",
        &["netns", "exec", &ns, "python3", "-c", RFC_RESPONDER],
        None,
    );
    responder.wait_stdout("the responder ready", |o| o.starts_with(b"ready"));
    let r = net.client(&["scan", "10.92.2.2", "123,137,161,1900,3478", "-w", "2s"]);
    let out = r.stdout_str();
    for port in [123, 137, 161, 1900, 3478] {
        assert!(
            out.contains(&format!("{port}/udp open udp-response")),
            "{port}: {out}\nresponder: {}",
            String::from_utf8_lossy(&responder.stdout())
        );
    }
}

#[test]
fn a_long_scan_shows_its_progress_on_a_terminal() {
    use std::process::{Command, Stdio};
    // Two ports: one closed at once, one silent for the whole 2 s try.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ports = format!("{},{}", closed_port(), silent.local_addr().unwrap().port());
    let (master, slave) = crate::harness::pty();
    let child = Command::new(crate::harness::bin())
        .args(["scan", "127.0.0.1", &ports, "-w", "2s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let guard = crate::harness::Guard::adopt(child, "scan -w 2s on a pty".into());
    let seen = crate::harness::read_pty_until(&master, |s| s.contains("scanned 1/2 ports"));
    assert!(seen.contains("scanned 1/2 ports"), "{seen}");
    guard.finish().expect_code(0);
}

#[test]
fn the_portable_fallback_with_connected_sockets_gives_the_same_states() {
    let echo = Server::start(&["echo", "0"]);
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ports = format!(
        "{},{},{},1-2000",
        echo.addr.port(),
        silent.local_addr().unwrap().port(),
        closed_port()
    );
    let scan = |env: &[(&str, &str)]| {
        let mut args = vec!["scan", "127.0.0.1", ports.as_str(), "-w", "500ms", "-v"];
        args.push("--retries");
        args.push("0");
        let mut g = crate::harness::spawn_env(&args, env);
        g.close_stdin();
        g.finish()
    };
    let queue = scan(&[]);
    let connected = scan(&[("DGRAM_SCAN_CONNECTED", "1")]);
    assert!(
        connected.stderr.contains("connected sockets"),
        "{}",
        connected.stderr
    );
    assert!(
        !queue.stderr.contains("connected sockets"),
        "{}",
        queue.stderr
    );
    // Port, state and reason alike (the RTTs differ).
    let states = |r: &Run| -> Vec<String> {
        lines(r)
            .iter()
            .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(states(&queue), states(&connected));
    assert!(states(&connected).contains(&format!("{}/udp open udp-response", echo.addr.port())));
}
