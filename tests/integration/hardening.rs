//! Under pressure: floods from many sources, vanishing clients, signals while busy,
//! closed pipes, and idleness that must cost nothing.

use std::time::{Duration, Instant};

use crate::harness::{peer, recv, Server};

fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn echo_survives_a_flood_from_many_sources_and_a_storm_of_vanished_clients() {
    let s = Server::start(&[
        "echo",
        "0",
        "--rate-limit",
        "100",
        "--max-sources",
        "1000",
        "--delay",
        "5ms",
        "--stats",
        "-f",
        "json",
    ]);
    let pid = s.guard.child.id();
    let fds = fd_count(pid);
    // Warm up, then note the memory.
    let c = peer("127.0.0.1");
    c.send_to(b"warm", s.addr).unwrap();
    recv(&c);
    let rss_before = proc_status(pid, "VmRSS:");
    // 5,000 sources across 127/8 (all of it routes to lo, so every bind succeeds), each
    // gone before its (delayed) reply: the per-source table must stay at its cap.
    for i in 0..5_000u32 {
        let ip = format!(
            "127.{}.{}.{}",
            1 + i / 65_536 % 250,
            i / 256 % 256,
            1 + i % 250
        );
        let sock = std::net::UdpSocket::bind((ip.as_str(), 0))
            .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        for _ in 0..3 {
            let _ = sock.send_to(b"flood", s.addr);
        }
    }
    // 10,000 clients gone before their replies: each reply meets a closed port, and
    // 10,000 ICMP errors queue on the echo's socket (SPEC §9).
    for _ in 0..10_000 {
        let gone = peer("127.0.0.1");
        let _ = gone.send_to(b"bye", s.addr);
    }
    // A new source is answered: its reply is due after every earlier one, so when it
    // comes the storm's replies have all gone. The flood may still fill the socket's
    // buffer when it arrives, so the probe retries, as a client would (a pacing gap).
    let probe = peer("127.0.0.3");
    let start = Instant::now();
    let answered = (0..25).any(|_| {
        probe.send_to(b"probe", s.addr).unwrap();
        crate::harness::arrives_within(&probe, Duration::from_millis(200))
    });
    assert!(answered, "no answer to the probe in {:?}", start.elapsed());
    // With the errors queued, the echo must not spin on POLLERR: an observation window
    // of one second in which it has nothing to do (a tick is 10 ms).
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1)); // observation window: nothing should happen
    let spent = cpu_ticks(pid) - ticks;
    assert!(
        spent <= 10,
        "{spent} ticks in a second with only queued errors"
    );
    let probe2 = peer("127.0.0.4");
    probe2.send_to(b"again", s.addr).unwrap();
    assert_eq!(recv(&probe2).0, b"again");
    let rss_after = proc_status(pid, "VmRSS:");
    assert!(rss_after < 32 * 1024, "RSS {rss_after} KiB");
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(fd_count(pid), fds, "file descriptors leaked");
    s.guard.signal(libc::SIGTERM);
    let r = s.finish();
    let v = crate::harness::json_last_line(&r.stderr);
    assert!(
        v["icmp_errors"]["port_unreachable"].as_u64().unwrap_or(0) >= 100,
        "the errors were counted by kind: {v}"
    );
}

#[test]
fn a_second_sigint_exits_at_once_even_when_stuck() {
    // stdout is a pipe nobody reads: once it is full, the graceful stop after the first
    // SIGINT cannot flush. The second must end the process anyway.
    let mut g = crate::harness::spawn_own_stdout(&["listen", "0"]);
    let addr = g.announced();
    let _stdout = g.child.stdout.take(); // held open, never read
    let tx = peer("127.0.0.1");
    for _ in 0..200 {
        let _ = tx.send_to(&[b'x'; 1400], addr); // ~280 KB: more than a pipe holds
    }
    // Wait for the event: the process blocked writing to the full pipe.
    let pid = g.child.id();
    let deadline = Instant::now() + crate::harness::LIMIT;
    while !std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .unwrap_or_default()
        .contains("pipe")
    {
        assert!(
            Instant::now() < deadline,
            "listen never blocked on the full pipe"
        );
        std::thread::sleep(Duration::from_millis(2)); // polling interval of a bounded wait
    }
    g.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200)); // observation window: it must not exit
    assert!(
        g.child.try_wait().unwrap().is_none(),
        "blocked in write, it cannot have finished"
    );
    let start = Instant::now();
    g.signal(libc::SIGINT);
    let r = g.finish();
    assert_eq!(r.code(), 130);
    // A generous bound: a second SIGINT that did not end it would hang until LIMIT.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn sigint_during_a_busy_receive_flushes_every_counted_datagram() {
    let s = Server::start(&["listen", "0", "--stats", "-f", "json"]);
    let addr = s.addr;
    let flood = std::thread::spawn(move || {
        let tx = peer("127.0.0.1");
        let until = Instant::now() + Duration::from_millis(400);
        let mut n = 0u64;
        while Instant::now() < until {
            let _ = tx.send_to(format!("{n}").as_bytes(), addr);
            n += 1;
        }
    });
    // The event: datagrams are being printed, so the receive loop is busy.
    s.guard.wait_stdout("datagrams printed", |o| o.len() > 1000);
    let start = Instant::now();
    s.guard.signal(libc::SIGINT);
    let r = s.finish();
    flood.join().unwrap();
    assert_eq!(r.code(), 130);
    // A generous bound: it catches a receive loop that ignores the signal.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let v: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    let lines = r.stdout_str().lines().count() as u64;
    assert!(lines > 0);
    assert_eq!(
        v["received"].as_u64().unwrap(),
        lines,
        "every counted datagram is on stdout"
    );
}

#[test]
fn a_closed_stderr_does_not_panic() {
    use std::process::{Command, Stdio};
    let closed = peer("127.0.0.1");
    let target = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    let status = Command::new(crate::harness::bin())
        .args(["send", &target, "x", "-v"])
        .stdin(Stdio::null())
        .stderr(w)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the error is still the exit code");
}

#[test]
fn idle_servers_use_no_cpu() {
    let l = Server::start(&["listen", "0"]);
    let e = Server::start(&["echo", "0", "--delay", "10ms"]);
    let pids = [l.guard.child.id(), e.guard.child.id()];
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    std::thread::sleep(Duration::from_secs(10)); // observation window: idle, nothing happens
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    for (b, a) in before.iter().zip(&after) {
        // A tick is 10 ms: an idle server blocked in poll accrues none.
        assert!(a - b <= 1, "{} ticks while idle", a - b);
    }
}

#[test]
fn thirty_seconds_of_flood_from_many_sources_leave_memory_and_fds_flat() {
    // ~20,000 datagrams/s from 2,000 sources across 127/8, for 30 s, at an echo with a
    // per-source limit (its table capped at 1,000) and a listen (to /dev/null).
    let echo = Server::start(&["echo", "0", "--rate-limit", "50", "--max-sources", "1000"]);
    let listen = Server::start(&["listen", "0"]);
    let targets = [echo.addr, listen.addr];
    let pids = [echo.guard.child.id(), listen.guard.child.id()];
    let fds: Vec<usize> = pids.iter().map(|&p| fd_count(p)).collect();
    let sources: Vec<std::net::UdpSocket> = (0..2_000u32)
        .filter_map(|i| {
            std::net::UdpSocket::bind((
                format!("127.{}.{}.{}", 10 + i / 62_500, i / 250 % 250, 1 + i % 250).as_str(),
                0,
            ))
            .ok()
        })
        .collect();
    let start = Instant::now();
    let mut warm_rss: Option<Vec<u64>> = None;
    let mut peak = [0u64; 2];
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(30) {
        // One second's worth, paced in 20 slices.
        for _ in 0..20 {
            for _ in 0..1_000 {
                let s = &sources[(sent as usize) % sources.len()];
                let _ = s.send_to(b"flood", targets[(sent % 2) as usize]);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(50)); // pacing gap: 20,000 a second
        }
        let rss: Vec<u64> = pids.iter().map(|&p| proc_status(p, "VmRSS:")).collect();
        if start.elapsed() >= Duration::from_secs(5) && warm_rss.is_none() {
            warm_rss = Some(rss.clone());
        }
        for i in 0..2 {
            peak[i] = peak[i].max(rss[i]);
        }
    }
    let warm = warm_rss.expect("ran past warm-up");
    for (i, name) in ["echo", "listen"].iter().enumerate() {
        assert!(peak[i] <= 32 * 1024, "{name} peak RSS {} KiB", peak[i]);
        assert!(
            peak[i] <= warm[i] + 2 * 1024,
            "{name} grew after warm-up: {} -> {} KiB",
            warm[i],
            peak[i]
        );
        assert_eq!(fd_count(pids[i]), fds[i], "{name} leaked file descriptors");
    }
    // Once the flood stops, a new source is answered at once.
    let probe = peer("127.0.0.2");
    let t = Instant::now();
    probe.send_to(b"after", echo.addr).unwrap();
    assert_eq!(recv(&probe).0, b"after");
    // A generous bound: it catches a server still busy with the flood, not slowness.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(sent > 300_000, "{sent} sent");
    drop(listen);
}

#[test]
fn servers_with_errors_queued_for_vanished_clients_do_not_spin() {
    // guards: relay read the error of a reply to a gone client as a bare ECONNREFUSED
    // and left the report queued, so POLLERR woke its poll at once, forever (100% CPU).
    let echo = Server::start(&["echo", "0"]);
    let relay = Server::start(&[
        "relay",
        "0",
        "--to",
        &echo.addr.to_string(),
        "--stats",
        "-f",
        "json",
        "-v",
    ]);
    let respond = Server::start(&[
        "listen",
        "0",
        "--respond",
        "ok",
        "--stats",
        "-f",
        "json",
        "-v",
    ]);
    for s in [&relay, &respond] {
        // Rounds of vanished clients until one reply met a closed port (logged with -v;
        // the global ICMP bucket, shared with parallel tests, can be empty for a while).
        let mut rounds = 0;
        loop {
            for _ in 0..20 {
                let gone = peer("127.0.0.1");
                gone.send_to(b"bye", s.addr).unwrap();
            }
            rounds += 1;
            if s.guard
                .stderr_within("nothing is listening on 127.0.0.1:", Duration::from_secs(1))
                .is_some()
            {
                break;
            }
            assert!(rounds < 10, "no ICMP error logged after {rounds} rounds");
        }
    }
    // An observation window of one second with nothing to do but errors queued.
    let pids = [relay.guard.child.id(), respond.guard.child.id()];
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    std::thread::sleep(Duration::from_secs(1)); // observation window: nothing should happen
    for (pid, b) in pids.iter().zip(before) {
        let spent = cpu_ticks(*pid) - b;
        assert!(
            spent <= 10,
            "{spent} ticks in a second with only queued errors"
        );
    }
    // Both still answer, and counted the errors by kind.
    let c = peer("127.0.0.1");
    c.send_to(b"still there?", relay.addr).unwrap();
    assert_eq!(recv(&c).0, b"still there?");
    c.send_to(b"and you?", respond.addr).unwrap();
    assert_eq!(recv(&c).0, b"ok");
    for (s, key) in [(relay, "client_icmp_errors"), (respond, "icmp_errors")] {
        s.guard.signal(libc::SIGTERM);
        let r = s.finish();
        let v = crate::harness::json_last_line(&r.stderr);
        assert!(
            v[key]["port_unreachable"].as_u64().unwrap_or(0) >= 1,
            "{key}: {v}"
        );
    }
}
