//! `send`'s end-of-run report (`crate::send::report`) for the command lines that lead to
//! it: the exit-1 reasons and the `--stats` summary. Here, beside the config the tests
//! build from arguments, so the send layer's tests use nothing above it.

use std::time::Duration;

use crate::cmd::send::config::tests::ok;
use crate::send::report::{judge, stats, Shown};
use crate::send::run::Counts;

/// The exit-1 reason of `dgram send ARGS` that counted `counts`, if any.
fn reason(args: &[&str], counts: Counts) -> Option<String> {
    let e = judge(&ok(args).plan, &counts).err()?;
    assert_eq!(
        crate::app::exit::code_for(&e),
        crate::app::exit::UNMET,
        "{e:#}"
    );
    Some(format!("{e:#}"))
}

const T: &str = "127.0.0.1:9";

#[test]
fn a_reply_that_never_came_says_how_long_and_how_often_it_was_awaited() {
    let silent = || Counts {
        sent: 1,
        unanswered: 1,
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "hi", "-r", "-w", "300ms"], silent()).as_deref(),
        Some("no reply from 127.0.0.1:9 within 300ms")
    );
    assert_eq!(
        reason(&[T, "hi", "-r", "-w", "1s", "--retries", "2"], silent()).as_deref(),
        Some("no reply from 127.0.0.1:9 after 3 tries of 1.00s")
    );
    let some = Counts {
        sent: 5,
        replies: 3,
        unanswered: 2,
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "hi", "-r", "-n", "5", "-w", "2s"], some).as_deref(),
        Some("no reply to 2 datagrams from 127.0.0.1:9 within 2.00s")
    );
    // One unanswered after other replies: which one is not said, how many is.
    let one_of_two = Counts {
        replies: 1,
        unanswered: 1,
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "hi", "-r", "-n", "2", "-w", "2s"], one_of_two).as_deref(),
        Some("no reply to 1 datagram from 127.0.0.1:9 within 2.00s")
    );
}

#[test]
fn by_sequence_number_a_missing_reply_is_not_retried() {
    let lost = Counts {
        sent: 4,
        replies: 2,
        unanswered: 2,
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "hi", "-r", "--seq", "-n", "4", "-w", "250ms"], lost).as_deref(),
        Some("no reply to 2 datagrams from 127.0.0.1:9 within 250ms")
    );
}

#[test]
fn datagrams_that_were_not_the_answer_are_mentioned() {
    let stray = |n| Counts {
        unanswered: 1,
        stray: n,
        ..Counts::default()
    };
    let args = [T, "hi", "-r", "-w", "1ms"];
    assert_eq!(
        reason(&args, stray(1)).as_deref(),
        Some("no reply from 127.0.0.1:9 within 1ms (1 datagram from it was not the answer and was ignored)")
    );
    assert_eq!(
        reason(&args, stray(4)).as_deref(),
        Some("no reply from 127.0.0.1:9 within 1ms (4 datagrams from it were not the answer and were ignored)")
    );
}

#[test]
fn replies_without_the_pattern_fail_after_every_reply_came() {
    let mismatched = Counts {
        replies: 3,
        mismatched: 2,
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "hi", "--expect", "ok", "-n", "3"], mismatched).as_deref(),
        Some("expected 'ok' in the replies from 127.0.0.1:9; 2 of 3 replies lacked it")
    );
    let peer = "127.0.0.1:9000".parse().unwrap();
    let one = || Counts {
        replies: 1,
        mismatched: 1,
        first_mismatch: Some(crate::send::run::Mismatch::new(b"pang", 4, peer, false)),
        ..Counts::default()
    };
    assert_eq!(
        reason(&[T, "ping", "--expect", "pong"], one()).as_deref(),
        Some("expected 'pong', got 'pang' (4 bytes from 127.0.0.1:9000)")
    );
    // Shown as text shows it: controls escaped, long replies shortened.
    let long = Counts {
        first_mismatch: Some(crate::send::run::Mismatch::new(
            &[b'a'; 100],
            100,
            peer,
            false,
        )),
        ..one()
    };
    let why = reason(&[T, "x", "--expect", "b\\n", "-e"], long).unwrap();
    assert_eq!(
        why,
        format!(
            "expected 'b\\n', got '{}...' (100 bytes from 127.0.0.1:9000)",
            "a".repeat(60)
        )
    );
    // Unanswered is said first: it is the bigger failure.
    let both = Counts {
        replies: 1,
        unanswered: 1,
        mismatched: 1,
        ..Counts::default()
    };
    let why = reason(&[T, "hi", "--expect", "ok", "-n", "2"], both).unwrap();
    assert!(why.starts_with("no reply to 1 datagram from"), "{why}");
}

#[test]
fn a_dns_answer_with_another_rcode_names_both() {
    let counts = Counts {
        replies: 1,
        wrong_rcode: Some(3),
        ..Counts::default()
    };
    assert_eq!(
        reason(
            &[T, "--dns", "example.com", "--expect-rcode", "NOERROR"],
            counts
        )
        .as_deref(),
        Some("the reply from 127.0.0.1:9 has RCODE NXDOMAIN, not NOERROR (--expect-rcode)")
    );
}

#[test]
fn collect_fails_only_when_nobody_answered() {
    let args = [T, "hi", "--collect", "-w", "500ms"];
    assert_eq!(
        reason(&args, Counts::default()).as_deref(),
        Some("no reply to --collect within 500ms")
    );
    let answered = Counts {
        replies: 1,
        ..Counts::default()
    };
    assert_eq!(reason(&args, answered), None);
}

#[test]
fn what_was_not_asked_for_is_never_a_failure() {
    let bad = || Counts {
        sent: 2,
        unanswered: 2,
        mismatched: 2,
        ..Counts::default()
    };
    // No --reply: nothing was awaited, so nothing can be missing.
    assert_eq!(reason(&[T, "hi", "-n", "2"], bad()), None);
    // Every reply came and matched.
    let good = Counts {
        sent: 2,
        replies: 2,
        ..Counts::default()
    };
    assert_eq!(reason(&[T, "hi", "--expect", "x", "-n", "2"], good), None);
    // The RCODE is only judged when --expect-rcode asked for one.
    let rcode = Counts {
        replies: 1,
        wrong_rcode: Some(3),
        ..Counts::default()
    };
    assert_eq!(reason(&[T, "hi", "-r"], rcode), None);
    // The RCODE asked for came.
    let answered = Counts {
        replies: 1,
        ..Counts::default()
    };
    let dns = [T, "--dns", "example.com", "--expect-rcode", "NXDOMAIN"];
    assert_eq!(reason(&dns, answered), None);
}

/// `--stats` of `dgram send ARGS` that counted `counts` in 2 s.
fn shown(
    args: &[&str],
    counts: &Counts,
    replay: Option<(crate::wire::capture::Skipped, u64)>,
    icmp: Option<crate::net::sys::ErrorReport>,
) -> String {
    let c = ok(args);
    let shown = Shown {
        json: c.format == crate::report::output::Format::Json,
        histogram: c.histogram,
    };
    stats(&c.plan, shown, counts, Duration::from_secs(2), replay, icmp)
}

fn json(text: &str) -> serde_json::Value {
    assert_eq!(text.lines().count(), 1, "one object: {text}");
    serde_json::from_str(text).unwrap()
}

#[test]
fn a_send_without_replies_reports_what_left() {
    let counts = Counts {
        sent: 4,
        bytes: 40,
        ..Counts::default()
    };
    let text = shown(&[T, "x", "-n", "4"], &counts, None, None);
    assert_eq!(
        text,
        "sent 4 datagrams, 40 bytes in 2.000s (2.0 datagrams/s, 160 bit/s)\n"
    );
    let v = json(&shown(
        &[T, "x", "-n", "4", "--stats", "-f", "json"],
        &counts,
        None,
        None,
    ));
    assert_eq!(
        (v["sent"].as_u64(), v["bytes"].as_u64()),
        (Some(4), Some(40))
    );
    assert_eq!(v["rate_pps"], 2.0);
    for absent in ["received", "lost", "rtt_us", "reordered", "icmp"] {
        assert!(v.get(absent).is_none(), "{absent}: {v}");
    }
}

#[test]
fn replies_add_what_came_back_and_how_fast() {
    let mut counts = Counts {
        sent: 4,
        bytes: 40,
        replies: 3,
        reply_bytes: 33,
        unanswered: 1,
        reordered: 1,
        duplicates: 2,
        ..Counts::default()
    };
    for rtt in [100, 200, 300] {
        counts.rtt_us.record(rtt);
    }
    let v = json(&shown(
        &[T, "x", "-n", "4", "-r", "-f", "json"],
        &counts,
        None,
        None,
    ));
    assert_eq!(
        (
            v["sent"].as_u64(),
            v["received"].as_u64(),
            v["lost"].as_u64()
        ),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(v["bytes"], 33, "the bytes of the replies: {v}");
    assert_eq!(
        (v["rtt_us"]["min"].as_u64(), v["rtt_us"]["max"].as_u64()),
        (Some(100), Some(300))
    );
    assert!(v.get("reordered").is_none(), "only with --seq: {v}");
    let v = json(&shown(
        &[T, "-n", "4", "-r", "--seq", "-f", "json"],
        &counts,
        None,
        None,
    ));
    assert_eq!(
        (v["reordered"].as_u64(), v["duplicates"].as_u64()),
        (Some(1), Some(2))
    );
    // A replay's streamed replies are counted the same way.
    let v = json(&shown(
        &[T, "--replay", "c.pcap", "-r", "-f", "json"],
        &counts,
        Some((crate::wire::capture::Skipped::default(), 0)),
        None,
    ));
    assert_eq!(
        (v["received"].as_u64(), v["lost"].as_u64()),
        (Some(3), Some(1))
    );
    // --collect: received, but nothing is lost (no reply was owed).
    let v = json(&shown(
        &[T, "x", "--collect", "-f", "json"],
        &counts,
        None,
        None,
    ));
    assert_eq!(v["received"], 3);
    assert!(v.get("lost").is_none(), "{v}");
    // The chart: with --histogram in text, never in JSON.
    let text = shown(
        &[T, "x", "-n", "4", "-r", "--histogram"],
        &counts,
        None,
        None,
    );
    assert!(text.starts_with("sent 4 datagrams in 2.000s"), "{text}");
    assert!(
        text.len() > shown(&[T, "x", "-n", "4", "-r"], &counts, None, None).len(),
        "{text}"
    );
    let v = json(&shown(
        &[T, "x", "-r", "--histogram", "-f", "json"],
        &counts,
        None,
        None,
    ));
    assert_eq!(v["received"], 3);
}

#[test]
fn a_replay_adds_its_frames_skips_and_lateness() {
    let mut counts = Counts {
        sent: 5,
        bytes: 50,
        ..Counts::default()
    };
    let skipped = crate::wire::capture::Skipped {
        frames: 9,
        truncated: 1,
        not_udp: 2,
        unmatched: 1,
        ..Default::default()
    };
    let args = [T, "--replay", "c.pcap"];
    let text = shown(&args, &counts, Some((skipped.clone(), 0)), None);
    assert_eq!(
        text.lines().nth(1),
        Some("replay: frames 9, sent 5; skipped: truncated 1, not UDP 2, unknown link 0, malformed 0, unmatched 1, too large 0")
    );
    let json_args = [T, "--replay", "c.pcap", "--stats", "-f", "json"];
    let v = json(&shown(
        &json_args,
        &counts,
        Some((skipped.clone(), 3)),
        None,
    ));
    assert_eq!(v["frames"], 9);
    assert_eq!(v["skipped"]["too_large"], 3);
    assert_eq!(v["skipped"]["not_udp"], 2);
    assert!(v["skipped"].get("frames").is_none(), "{v}");
    assert!(
        v.get("lateness_us").is_none(),
        "none sent on a schedule: {v}"
    );
    for us in [100, 200, 900] {
        counts.lateness.record(Duration::from_micros(us));
    }
    let v = json(&shown(
        &json_args,
        &counts,
        Some((skipped.clone(), 0)),
        None,
    ));
    assert_eq!(
        v["lateness_us"],
        serde_json::json!({"p50": 200, "p99": 900, "max": 900})
    );
    let text = shown(&args, &counts, Some((skipped, 0)), None);
    assert!(
        text.ends_with("; lateness p50/p99/max = 200/900/900 µs\n"),
        "{text}"
    );
}

#[test]
fn the_icmp_error_that_ended_the_run_is_in_the_json_summary() {
    let counts = Counts {
        sent: 1,
        bytes: 2,
        ..Counts::default()
    };
    let report = crate::net::sys::ErrorReport::from_errno(libc::ECONNREFUSED);
    let v = json(&shown(
        &[T, "hi", "--stats", "-f", "json"],
        &counts,
        None,
        Some(report),
    ));
    assert_eq!(v["icmp"]["kind"], "port_unreachable", "{v}");
    assert_eq!(v["sent"], 1);
    // In text the error is the run's own error line, not part of the summary.
    let text = shown(&[T, "hi"], &counts, None, Some(report));
    assert_eq!(
        text,
        "sent 1 datagram, 2 bytes in 2.000s (0.5 datagrams/s, 8 bit/s)\n"
    );
}
