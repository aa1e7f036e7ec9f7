//! Interop with tools nobody here wrote: socat and OpenBSD nc (installed by .ci/run).
//! A missing tool skips its test with a line on stderr, and fails it under CI=true.

use std::time::{Duration, Instant};

use crate::harness::{run, spawn_cmd, Server};

fn skip(tool: &str) -> bool {
    !crate::harness::tool("interop", tool)
}

/// The UDP port a process has bound, read from /proc (no pre-picked port): the socket
/// inodes in /proc/PID/fd matched against /proc/net/udp{,6}. Waits (bounded) for it.
fn bound_udp_port(pid: u32) -> u16 {
    let deadline = Instant::now() + crate::harness::LIMIT;
    loop {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter_map(|l| {
                        l.to_str()?
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            for line in std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() > 9 && inodes.iter().any(|i| i == cols[9]) {
                    let port = cols[1].rsplit(':').next().unwrap();
                    return u16::from_str_radix(port, 16).unwrap();
                }
            }
        }
        assert!(Instant::now() < deadline, "process {pid} bound no UDP port");
        std::thread::sleep(Duration::from_millis(5)); // polling interval of a bounded wait
    }
}

#[test]
fn socat_sends_to_dgram_listen() {
    if skip("socat") {
        return;
    }
    let s = Server::start(&["listen", "0", "-n", "2", "-f", "line"]);
    for msg in ["from socat", "again"] {
        let mut g = spawn_cmd(
            "socat",
            &["-u", "-", &format!("UDP-SENDTO:{}", s.addr)],
            Some(msg.as_bytes()),
        );
        g.close_stdin();
        g.finish().expect_code(0);
    }
    s.finish()
        .expect_code(0)
        .expect_stdout(b"from socat\nagain\n");
}

#[test]
fn dgram_send_reaches_socat() {
    if skip("socat") {
        return;
    }
    let g = spawn_cmd("socat", &["-u", "UDP-RECV:0,bind=127.0.0.1", "-"], None);
    let port = bound_udp_port(g.child.id());
    run(&["send", &format!("127.0.0.1:{port}"), "hello socat"]).expect_code(0);
    g.wait_stdout("the datagram", |o| o == b"hello socat");
}

#[test]
fn dgram_send_reply_against_a_socat_echo() {
    if skip("socat") {
        return;
    }
    let g = spawn_cmd(
        "socat",
        &["UDP-RECVFROM:0,bind=127.0.0.1", "EXEC:cat"],
        None,
    );
    let port = bound_udp_port(g.child.id());
    run(&[
        "send",
        &format!("127.0.0.1:{port}"),
        "ping",
        "--reply",
        "-w",
        "5s",
    ])
    .expect_code(0)
    .expect_stdout(b"ping");
}

#[test]
fn openbsd_nc_sends_to_dgram_listen() {
    if skip("nc.openbsd") {
        return;
    }
    let s = Server::start(&["listen", "0", "-n", "1", "-f", "json"]);
    let port = s.addr.port().to_string();
    let mut g = spawn_cmd(
        "nc.openbsd",
        &["-u", "-w", "1", "127.0.0.1", &port],
        Some(b"from nc"),
    );
    g.close_stdin();
    let r = s.finish();
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["text"], "from nc");
    drop(g);
}
