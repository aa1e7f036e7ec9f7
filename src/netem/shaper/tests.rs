//! The shaper's tests: each impairment's effect on what leaves, and when.
use super::*;

/// A shaper that only delays, by 10 ms.
fn delayed_10ms() -> Shaper<u32> {
    let imp = Impairment {
        delay: Duration::from_millis(10),
        ..Impairment::default()
    };
    Shaper::new(imp, 1)
}

/// A bottleneck of `rate` bits/s over IPv4 where `queue` may wait.
fn ipv4_link(rate: f64, queue: usize) -> crate::netem::link::LinkSpec {
    crate::netem::link::LinkSpec {
        rate,
        headers: 28,
        queue,
    }
}

fn run(shaper: &mut Shaper<u32>, inputs: &[(u32, u64)], t0: Instant) -> Vec<(u32, u64)> {
    let mut got = Vec::new();
    for &(tag, ms) in inputs {
        let now = t0 + Duration::from_millis(ms);
        shaper.tick(now, &mut |t, p| got.push((t, p[0] as u64)));
        shaper.push(tag, &[tag as u8], now, &mut |t, p| {
            got.push((t, p[0] as u64))
        });
    }
    shaper.tick(t0 + Duration::from_secs(10), &mut |t, p| {
        got.push((t, p[0] as u64))
    });
    got
}

#[test]
fn runs_of_drops_are_counted_once_each_and_the_mtu_drops_what_is_too_big() {
    let t0 = Instant::now();
    let all = Impairment {
        drop: 1.0,
        ..Default::default()
    };
    let mut s: Shaper<u32> = Shaper::new(all, 1);
    for i in 0..5 {
        s.push(i, b"x", t0, &mut |_, _| panic!("all dropped"));
    }
    assert_eq!((s.counts.dropped, s.counts.drop_bursts), (5, 1));
    let small = Impairment {
        max_payload: Some(3),
        ..Default::default()
    };
    let mut s: Shaper<u32> = Shaper::new(small, 1);
    let mut out = Vec::new();
    for p in [&b"abc"[..], b"abcd", b""] {
        s.push(0, p, t0, &mut |_, p| out.push(p.to_vec()));
    }
    assert_eq!(out, [b"abc".to_vec(), vec![]]);
    assert_eq!((s.counts.mtu_dropped, s.counts.dropped), (1, 0));
}

#[test]
fn a_bottleneck_sends_in_order_at_its_rate_and_drops_at_the_tail() {
    let link = |rate| Impairment {
        link: Some(ipv4_link(rate, 100)),
        ..Default::default()
    };
    // 8 Mbit/s and 972 + 28 bytes: one datagram a millisecond.
    let mut s = Shaper::new(link(8e6), 1);
    let t0 = Instant::now();
    let mut got = Vec::new();
    for tag in 0..1000u32 {
        s.push(tag, &[0; 972], t0, &mut |t, _| got.push(t));
    }
    assert!(got.is_empty(), "the first crosses in 1 ms");
    assert_eq!((s.counts.queue_dropped, s.counts.queue_peak), (900, 100));
    assert_eq!(s.counts.delayed, 100);
    for ms in 1..=100u64 {
        let before = got.len();
        s.tick(t0 + Duration::from_millis(ms), &mut |t, _| got.push(t));
        assert_eq!(got.len() - before, 1, "one a millisecond, at {ms} ms");
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>(), "in arrival order");
    assert_eq!(s.next_due(), None);
    // A datagram due within the slack goes at once: 1 Gbit/s crosses in 0.8 µs.
    let mut s = Shaper::new(link(1e9), 1);
    let mut now = Vec::new();
    s.push(7, &[0; 72], t0, &mut |t, p| now.push((t, p.len())));
    assert_eq!(now, [(7, 72)]);
    assert_eq!(s.counts.delayed, 0);
}

#[test]
fn every_flag_together_decides_the_same_from_the_same_seed() {
    use crate::netem::dist::Distribution;
    let imp = Impairment {
        drop: 0.1,
        drop_burst: Some(3.0),
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(4),
        distribution: Distribution::ParetoNormal,
        duplicate: 0.1,
        reorder: 0.1,
        corrupt: 0.2,
        max_payload: Some(200),
        link: Some(ipv4_link(2e6, 20)),
    };
    let t0 = Instant::now();
    let run = |seed| {
        let mut s = Shaper::new(imp, seed);
        let mut got = Vec::new();
        for i in 0..2000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 300);
            let payload = vec![i as u8; 100 + (i as usize % 150)];
            s.tick(now, &mut |t, p| got.push((t, p.to_vec())));
            s.push(i, &payload, now, &mut |t, p| got.push((t, p.to_vec())));
        }
        s.tick(t0 + Duration::from_secs(60), &mut |t, p| {
            got.push((t, p.to_vec()))
        });
        (got, s.counts)
    };
    let (a, ca) = run(5);
    assert_eq!((a.clone(), ca), run(5));
    assert_ne!(a, run(6).0);
    // Each kind happened, and what came out adds up.
    for (n, what) in ca.labelled() {
        assert!(n > 0, "{what}: {ca:?}");
    }
    let out = a.len() as u64;
    assert_eq!(
        out,
        2000 - ca.mtu_dropped - ca.dropped + ca.duplicated - ca.queue_dropped,
        "{ca:?}"
    );
    assert!(ca.queue_peak <= 20);
}

#[test]
fn datagrams_that_wait_allocate_nothing_once_the_queue_has_grown() {
    use crate::net::sys::counting_alloc::allocations_in;
    // Delayed, duplicated, corrupted and through a link: every datagram waits.
    let imp = Impairment {
        delay: Duration::from_millis(2),
        duplicate: 0.5,
        corrupt: 0.5,
        link: Some(ipv4_link(1e9, 1000)),
        ..Default::default()
    };
    let mut s = Shaper::new(imp, 3);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut round = |s: &mut Shaper<u32>, from: u32| {
        for i in from..from + 5000 {
            let now = t0 + Duration::from_micros(u64::from(i) * 20);
            s.tick(now, &mut |_, _| sent += 1);
            s.push(i, &[7; 1200], now, &mut |_, _| sent += 1);
        }
    };
    round(&mut s, 0);
    let n = allocations_in(|| round(&mut s, 5000));
    assert_eq!(
        n, 0,
        "allocations for 5,000 datagrams after the first 5,000"
    );
    let c = s.counts;
    assert_eq!(
        (c.delayed, c.queue_dropped),
        (10_000 + c.duplicated, 0),
        "{c:?}"
    );
}

#[test]
fn datagrams_due_at_the_same_time_leave_in_arrival_order() {
    let mut s = delayed_10ms();
    let t0 = Instant::now();
    let mut got = Vec::new();
    for tag in 0..200u32 {
        s.push(tag, b"x", t0, &mut |t, _| got.push(t));
    }
    s.tick(t0 + Duration::from_millis(10), &mut |t, _| got.push(t));
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[test]
fn each_count_has_its_words() {
    let c = ShaperCounts {
        dropped: 1,
        drop_bursts: 2,
        delayed: 3,
        reordered: 4,
        duplicated: 5,
        corrupted: 6,
        mtu_dropped: 7,
        queue_dropped: 8,
        queue_peak: 9,
    };
    let words: Vec<String> = c
        .labelled()
        .iter()
        .map(|(n, w)| format!("{w} {n}"))
        .collect();
    assert_eq!(
        words.join(", "),
        "dropped by impairment 1, in drop bursts 2, delayed 3, reordered 4, duplicated 5, \
         corrupted 6, over --mtu 7, dropped by a full --queue 8, queue peak 9"
    );
}

#[test]
fn a_datagram_due_never_waits_behind_one_that_came_later() {
    let mut s = delayed_10ms();
    let t0 = Instant::now();
    let mut got = Vec::new();
    s.push(1, b"a", t0, &mut |t, _| got.push(t));
    // The next arrives after the first is due, before any tick: the first goes first.
    s.push(2, b"b", t0 + Duration::from_millis(11), &mut |t, _| {
        got.push(t)
    });
    assert_eq!(got, [1]);
    s.tick(t0 + Duration::from_millis(21), &mut |t, _| got.push(t));
    assert_eq!(got, [1, 2]);
}

#[test]
fn an_inactive_shaper_passes_everything_at_once_in_order() {
    let mut s = Shaper::new(Impairment::default(), 1);
    let t0 = Instant::now();
    let mut got = Vec::new();
    for tag in 0..5u32 {
        s.push(tag, &[tag as u8], t0, &mut |t, _| got.push(t));
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(s.next_due(), None);
    assert_eq!(s.counts, ShaperCounts::default());
}

#[test]
fn delayed_datagrams_leave_in_due_order_and_the_queue_is_bounded() {
    let imp = Impairment {
        delay: Duration::from_millis(20),
        ..Impairment::default()
    };
    let mut s = Shaper::with_capacity(imp, 1, 2);
    let t0 = Instant::now();
    let mut got = Vec::new();
    for tag in 0..3u32 {
        s.push(
            tag,
            &[tag as u8],
            t0 + Duration::from_millis(tag as u64),
            &mut |t, _| got.push(t),
        );
    }
    assert!(got.is_empty());
    assert_eq!(s.counts.delayed, 2);
    assert_eq!(s.counts.dropped, 1, "the third found the queue full");
    assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(20)));
    s.tick(t0 + Duration::from_millis(20), &mut |t, _| got.push(t));
    assert_eq!(got, vec![0]);
    s.tick(t0 + Duration::from_millis(30), &mut |t, _| got.push(t));
    assert_eq!(got, vec![0, 1]);
    assert_eq!(s.next_due(), None);
}

#[test]
fn a_reordered_datagram_goes_right_after_the_next_or_when_its_hold_ends() {
    let imp = Impairment {
        reorder: 1.0,
        ..Impairment::default()
    };
    let mut s = Shaper::new(imp, 1);
    let t0 = Instant::now();
    // Every datagram wants holding; only one can be held: 0 is held, 1 goes and
    // releases 0, 2 is held, and its hold ends after MAX_HOLD.
    let got = run(&mut s, &[(0, 0), (1, 1)], t0);
    assert_eq!(got, vec![(1, 1), (0, 0)]);
    let mut s = Shaper::new(imp, 1);
    let mut late = Vec::new();
    s.push(7, &[7], t0, &mut |t, _| late.push(t));
    assert!(late.is_empty());
    assert_eq!(s.next_due(), Some(t0 + MAX_HOLD));
    s.tick(t0 + MAX_HOLD - Duration::from_millis(1), &mut |t, _| {
        late.push(t)
    });
    assert!(late.is_empty());
    s.tick(t0 + MAX_HOLD, &mut |t, _| late.push(t));
    assert_eq!(late, vec![7]);
    assert_eq!(s.counts.reordered, 1);
}

#[test]
fn with_a_delay_a_reordered_datagram_goes_at_once_past_the_delayed_ones() {
    let imp = Impairment {
        delay: Duration::from_millis(20),
        reorder: 0.3,
        ..Impairment::default()
    };
    let mut s = Shaper::new(imp, 4);
    let t0 = Instant::now();
    let inputs: Vec<(u32, u64)> = (0..100).map(|i| (i, 0)).collect();
    let mut at_once = Vec::new();
    for &(tag, _) in &inputs {
        s.push(tag, &[tag as u8], t0, &mut |t, _| at_once.push(t));
    }
    // The reordered ones left at once, in their order; the rest wait their 20 ms.
    assert_eq!(at_once.len() as u64, s.counts.reordered);
    assert!((15..45).contains(&at_once.len()), "{}", at_once.len());
    assert!(at_once.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s.counts.delayed, 100 - s.counts.reordered);
    let mut later = Vec::new();
    s.tick(t0 + Duration::from_millis(19), &mut |t, _| later.push(t));
    assert!(later.is_empty());
    s.tick(t0 + Duration::from_millis(20), &mut |t, _| later.push(t));
    assert_eq!(later.len() + at_once.len(), 100);
    assert!(later.iter().all(|t| !at_once.contains(t)));
    // Nothing held: with a delay there is no hold.
    assert_eq!(s.next_due(), None);
}

#[test]
fn drops_and_duplicates_are_counted_and_the_seed_decides() {
    let imp = Impairment {
        drop: 0.3,
        duplicate: 0.3,
        jitter: Duration::from_millis(5),
        delay: Duration::from_millis(5),
        ..Impairment::default()
    };
    let inputs: Vec<(u32, u64)> = (0..1000).map(|i| (i, i as u64)).collect();
    let t0 = Instant::now();
    let (mut a, mut b) = (Shaper::new(imp, 9), Shaper::new(imp, 9));
    let (ga, gb) = (run(&mut a, &inputs, t0), run(&mut b, &inputs, t0));
    assert_eq!(ga, gb);
    assert_eq!(a.counts, b.counts);
    let c = a.counts;
    assert_eq!(ga.len() as u64, 1000 - c.dropped + c.duplicated);
    assert!((250..350).contains(&c.dropped), "{c:?}");
    assert!(c.duplicated > 100, "{c:?}");
    assert_ne!(run(&mut Shaper::new(imp, 10), &inputs, t0), ga);
}
