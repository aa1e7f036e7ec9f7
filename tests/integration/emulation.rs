//! SPEC §12 from outside: a bottleneck's rate, queue and queueing delay through echo and
//! relay, delay distributions reaching the wire, and the flags that would do nothing
//! refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{json_last_line, peer, run, Server};

/// Payload bytes of the backlog's datagrams: 1,000 bytes of IPv4 packet, 1 ms at 8 Mbit/s.
const SIZE: usize = 972;

/// One reply: its number, when its request left, when it came back.
struct Reply {
    n: u32,
    sent: Instant,
    back: Instant,
}

/// Offer `count` datagrams at 2,000 a second (16 Mbit/s of packets, twice an 8 Mbit/s
/// bottleneck) in bursts of 20, reading the replies as they come, until none has come for
/// 500 ms after the last was sent.
fn backlog(target: SocketAddr, count: u32) -> Vec<Reply> {
    let c = peer("127.0.0.1");
    // Room for every reply, so that a reader starved of the CPU by other tests loses none
    // (a reply lost here would read as a slower link); the kernel may clamp it.
    socket2::SockRef::from(&c)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    let reader = c.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let t0 = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut sent = Vec::with_capacity(count as usize);
        let mut buf = vec![0u8; SIZE];
        for n in 0..count {
            if n % 20 == 0 {
                let at = t0 + Duration::from_millis(u64::from(n / 20) * 10);
                let wait = at.saturating_duration_since(Instant::now());
                std::thread::sleep(wait); // a pacing gap: the offered load
            }
            buf[..4].copy_from_slice(&n.to_be_bytes());
            c.send_to(&buf, target).unwrap();
            sent.push(Instant::now());
        }
        sent
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(len) = reader.recv(&mut buf) {
        assert_eq!(len, SIZE);
        got.push((
            u32::from_be_bytes(buf[..4].try_into().unwrap()),
            Instant::now(),
        ));
    }
    let sent = sender.join().unwrap();
    got.into_iter()
        .map(|(n, back)| Reply {
            n,
            sent: sent[n as usize],
            back,
        })
        .collect()
}

/// The replies' rate in bits per second of IPv4 packets: the least-squares slope of their
/// arrival times, so that one late wake-up of a process on a busy machine (the last
/// reply's, say) does not decide the figure as it would from the first to the last.
fn packet_rate(replies: &[Reply]) -> f64 {
    let t0 = replies[0].back;
    let n = replies.len() as f64;
    let xs = (0..replies.len()).map(|k| k as f64);
    let ys: Vec<f64> = replies
        .iter()
        .map(|r| (r.back - t0).as_secs_f64())
        .collect();
    let (mx, my) = ((n - 1.0) / 2.0, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in xs.zip(&ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let seconds_each = sxy / sxx;
    ((SIZE + 28) * 8) as f64 / seconds_each
}

/// What a backlog through an 8 Mbit/s bottleneck with a queue of 1,000 must show: the
/// rate within 3%, in order, the queue's delay real; returns how many came back.
fn check_bottleneck(replies: &[Reply], offered: u32) -> u64 {
    let rate = packet_rate(replies);
    assert!(
        (rate - 8e6).abs() <= 0.03 * 8e6,
        "{rate:.0} bit/s through --bandwidth 8M ({} of {offered})",
        replies.len()
    );
    assert!(
        replies.windows(2).all(|w| w[0].n < w[1].n),
        "a bottleneck keeps arrival order"
    );
    // The queue fills after a second of twice the rate; then a reply waits behind 1,000
    // datagrams of 1 ms each: about a second of queueing delay, not a loopback's µs.
    let last = &replies[replies.len() - 1];
    let rtt = last.back - last.sent;
    assert!(
        rtt > Duration::from_millis(900) && rtt < Duration::from_millis(1300),
        "the last reply's round trip {rtt:?} is the queue's delay"
    );
    replies.len() as u64
}

#[test]
fn a_backlog_through_echo_gets_the_bandwidth_and_the_queue_drops_at_its_tail() {
    let echo = Server::start(&["echo", "0", "--bandwidth", "8M", "--stats", "-f", "json"]);
    let offered = 3200;
    let replies = backlog(echo.addr, offered);
    let back = check_bottleneck(&replies, offered);
    echo.guard.signal(libc::SIGTERM);
    let v = json_last_line(&echo.finish().stderr);
    assert_eq!(v["received"], offered, "{v}");
    assert_eq!(v["queue_peak"], 1000, "{v}");
    assert_eq!(v["queue_dropped"], offered as u64 - back, "{v}");
    assert_eq!(v["echoed"], back, "{v}");
}

#[test]
fn a_backlog_through_relay_is_limited_one_way_only() {
    let echo = Server::start(&["echo", "0"]);
    let upstream = echo.addr.to_string();
    let relay = Server::start(&[
        "relay",
        "0",
        "--to",
        &upstream,
        "--bandwidth",
        "up=8M",
        "--queue",
        "up=500",
        "--stats",
        "-f",
        "json",
    ]);
    let offered = 2400;
    let replies = backlog(relay.addr, offered);
    let rate = packet_rate(&replies);
    relay.guard.signal(libc::SIGTERM);
    let v = json_last_line(&relay.finish().stderr);
    let back = replies.len() as u64;
    assert!(
        (rate - 8e6).abs() <= 0.03 * 8e6,
        "{rate:.0} bit/s up, {back} of {offered} back: {v}"
    );
    assert_eq!(v["up"]["queue_peak"], 500, "{v}");
    assert_eq!(v["up"]["queue_dropped"], offered as u64 - back, "{v}");
    assert_eq!(v["down"]["queue_dropped"], 0, "{v}");
    assert_eq!(v["down"]["queue_peak"], 0, "{v}");
    assert_eq!(v["down"]["forwarded"], back, "{v}");
}

#[test]
fn with_a_delay_reordered_replies_come_at_once_past_the_delayed_ones() {
    // netem's reorder: a reordered datagram skips the delay (SPEC §12).
    let echo = Server::start(&[
        "echo",
        "0",
        "--delay",
        "50ms",
        "--reorder",
        "25%",
        "--seed",
        "3",
        "--stats",
        "-f",
        "json",
    ]);
    let c = peer("127.0.0.1");
    let t0 = Instant::now();
    for n in 0..100u32 {
        c.send_to(&n.to_be_bytes(), echo.addr).unwrap();
    }
    let mut buf = [0u8; 64];
    let got: Vec<(u32, Duration)> = (0..100)
        .map(|_| {
            let len = c
                .recv(&mut buf)
                .expect("every reply, within the read timeout");
            assert_eq!(len, 4);
            (
                u32::from_be_bytes(buf[..4].try_into().unwrap()),
                t0.elapsed(),
            )
        })
        .collect();
    let fast = got
        .iter()
        .take_while(|(_, t)| *t < Duration::from_millis(25))
        .count();
    assert!(
        got[fast..]
            .iter()
            .all(|(_, t)| *t >= Duration::from_millis(50)),
        "the rest waited their 50 ms: {got:?}"
    );
    assert!((10..45).contains(&fast), "{fast} of 100 reordered");
    echo.guard.signal(libc::SIGTERM);
    let v = json_last_line(&echo.finish().stderr);
    assert_eq!(v["reordered"], fast as u64, "{v}");
    assert_eq!(v["delayed"], 100 - fast as u64, "{v}");
}

#[test]
fn a_delay_distribution_reaches_the_replies() {
    // Pareto around 20 ms with 10 ms of jitter: netem's table puts the median at
    // 20 + 10 × (0.5^(-1/3) − 1.5) × 4/3 = 16.8 ms and the 90th percentile at 28.7 ms;
    // uniform would give 20 and 28.
    let echo = Server::start(&[
        "echo",
        "0",
        "--delay",
        "20ms",
        "--jitter",
        "10ms",
        "--delay-distribution",
        "pareto",
        "--seed",
        "1",
    ]);
    let target = echo.addr.to_string();
    let r = run(&[
        "send", &target, "x", "--seq", "-n", "400", "--rate", "2000", "-r", "-w", "1s", "--stats",
        "-f", "json",
    ]);
    let v = json_last_line(&r.stderr);
    assert_eq!(v["received"], 400, "{v}");
    let ms = |k: &str| v["rtt_us"][k].as_u64().unwrap() as f64 / 1000.0;
    assert!(
        (16.3..18.0).contains(&ms("p50")),
        "median {} ms: {v}",
        ms("p50")
    );
    assert!(
        (26.5..31.0).contains(&ms("p90")),
        "p90 {} ms: {v}",
        ms("p90")
    );
    assert!(
        ms("min") >= 13.3 - 0.1,
        "pareto's least is base − 2/3 jitter: {v}"
    );
}

#[test]
fn emulation_flags_that_would_do_nothing_are_refused() {
    for (args, why) in [
        (
            &[
                "echo",
                "0",
                "--delay",
                "5ms",
                "--delay-distribution",
                "normal",
            ][..],
            "--jitter",
        ),
        (&["echo", "0", "--queue", "10"], "--bandwidth"),
        (&["echo", "0", "--bandwidth", "8X"], "invalid rate '8X'"),
        (
            &[
                "echo",
                "0",
                "--jitter",
                "1ms",
                "--delay-distribution",
                "gauss",
            ],
            "uniform, normal, pareto or paretonormal",
        ),
        (
            &[
                "relay",
                "0",
                "--to",
                "127.0.0.1:9",
                "--bandwidth",
                "up=1M",
                "--queue",
                "down=5",
            ],
            "give a --bandwidth for the down direction too",
        ),
        (
            &[
                "relay",
                "0",
                "--to",
                "127.0.0.1:9",
                "--jitter",
                "up=1ms",
                "--delay-distribution",
                "normal",
            ],
            "give a --jitter for the down direction too",
        ),
    ] {
        run(args).expect_code(2).expect_stderr(why);
    }
}
