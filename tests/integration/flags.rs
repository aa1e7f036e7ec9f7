//! No flag is silently ignored (SPEC §1): a flag that means something only with another
//! implies it where the intent is plain, and is otherwise refused naming what it needs.
//! Each test here failed before its fix: the flag was accepted and did nothing.

use std::time::Duration;

use crate::harness::{arrives_within, peer, recv, run, Server};

#[test]
fn a_timeout_or_retries_alone_wait_for_the_reply() {
    // guards: `send HOST ping -w 1s --retries 2` sent once and exited 0 against a port
    // that never answers: a CI check that checked nothing.
    let silent = peer("127.0.0.1");
    let t = silent.local_addr().unwrap().to_string();
    run(&["send", &t, "ping", "-w", "100ms", "--retries", "2"])
        .expect_code(1)
        .expect_stderr("no reply from")
        .expect_stderr("after 3 tries of 100ms");
    for _ in 0..3 {
        assert_eq!(recv(&silent).0, b"ping");
    }
    run(&["send", &t, "ping", "-w", "100ms"])
        .expect_code(1)
        .expect_stderr("within 100ms");
    assert_eq!(recv(&silent).0, b"ping");
    run(&["send", &t, "ping", "--retries", "1", "-w", "50ms"])
        .expect_code(1)
        .expect_stderr("after 2 tries of 50ms");
    for _ in 0..2 {
        assert_eq!(recv(&silent).0, b"ping");
    }
    assert!(!arrives_within(&silent, Duration::from_millis(100)));
}

#[test]
fn flags_that_need_another_name_it() {
    let t = "127.0.0.1:9";
    for (args, says) in [
        (
            &["--expect-rcode", "NXDOMAIN"][..],
            "--expect-rcode judges a DNS answer: add --dns QUERY",
        ),
        (
            &["--speed", "2"],
            "--speed paces a capture: add --replay FILE",
        ),
        (
            &["--match", ":53"],
            "--match picks datagrams of a capture: add --replay FILE",
        ),
        (
            &["-f", "json"],
            "--format says how replies print: add --reply, --expect or --collect",
        ),
        (
            &["--collect", "--retries", "1"],
            "--retries resends for --reply; --collect waits once for every responder",
        ),
    ] {
        let mut line = vec!["send", t, "x"];
        line.extend_from_slice(args);
        run(&line).expect_code(2).expect_stderr(says);
    }
    run(&["send", t, "-x", "--size", "10"])
        .expect_code(2)
        .expect_stderr("--size generates its payload");
    run(&["listen", "0", "--respond", "x", "--exec-timeout", "1s"])
        .expect_code(2)
        .expect_stderr("--exec-timeout, --exec-jobs and --exec-queue apply to --exec");
    for sub in [&["echo", "0"][..], &["relay", "0", "--to", t]] {
        let mut line = sub.to_vec();
        line.extend(["--seed", "7"]);
        run(&line)
            .expect_code(2)
            .expect_stderr("--seed makes the impairments repeatable: add --drop");
    }
}

#[test]
fn histogram_implies_stats() {
    let server = peer("127.0.0.1");
    let t = server.local_addr().unwrap().to_string();
    let echo = crate::harness::responder(server, 3, |req| Some(req.to_vec()));
    let r = run(&["send", &t, "x", "-n", "3", "--reply", "--histogram"]);
    r.expect_code(0)
        .expect_stderr("sent 3 datagrams")
        .expect_stderr("rtt distribution (µs):");
    echo.join().unwrap();
}

#[test]
fn a_bare_delay_of_ten_or_more_is_refused_with_its_unit() {
    // guards: `--delay 50` was fifty seconds, silently.
    for line in [
        &["echo", "0", "--delay", "50"][..],
        &["echo", "0", "--jitter", "20"],
        &["relay", "0", "--to", "127.0.0.1:9", "--delay", "up=50"],
    ] {
        run(line)
            .expect_code(2)
            .expect_stderr("would be ")
            .expect_stderr("seconds: write the unit");
    }
    // Small bare numbers and units are fine.
    let s = Server::start(&["echo", "0", "--delay", "5ms", "--jitter", "0.001"]);
    let c = peer("127.0.0.1");
    c.send_to(b"x", s.addr).unwrap();
    assert_eq!(recv(&c).0, b"x");
}

#[test]
fn netcat_habits_and_typos_get_an_answer_in_the_one_line() {
    // guards: folding clap's message onto one line dropped its "did you mean", and nc's
    // habits got a bare "unexpected argument".
    for (line, says) in [
        (
            &["send", "127.0.0.1", "9000", "hi"][..],
            "invalid address '127.0.0.1': missing ':PORT' (expected HOST:PORT or [IPV6]:PORT) (did you mean 127.0.0.1:9000?)",
        ),
        (&["send", "::1", "9000", "hi"], "(did you mean [::1]:9000?)"),
        (
            &["send", "-u", "127.0.0.1:9", "x"],
            "unexpected argument '-u' found: dgram is always UDP: drop -u (see 'dgram send --help')",
        ),
        (
            &["send", "-l", "9000"],
            "unexpected argument '-l' found: to listen, use dgram listen [ADDR]",
        ),
        (
            &["listen", "-l", "9000"],
            "unexpected argument '-l' found: dgram listen needs no -l: drop it",
        ),
        (
            &["listen", "-k", "9000"],
            "unexpected argument '-k' found: dgram's servers keep running until a limit or a signal: drop -k",
        ),
        (
            &["send", "-p", "5000", "127.0.0.1:9", "x"],
            "unexpected argument '-p' found: to send from a port, use --bind PORT",
        ),
        (
            &["listen", "-p", "5000"],
            "unexpected argument '-p' found: the port is the address: dgram listen PORT",
        ),
        (
            &["send", "127.0.0.1:9", "x", "--coutn", "3"],
            "unexpected argument '--coutn' found: did you mean '--count'? (see 'dgram send --help')",
        ),
        (&["sned"], "unrecognized subcommand 'sned': did you mean 'send'?"),
    ] {
        let r = run(line);
        r.expect_code(2).expect_stderr(says);
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
}

#[test]
fn a_message_that_starts_with_a_dash_goes_after_double_dash() {
    // guards: `dgram send HOST -hello` printed the help and exited 0 (clap read `-h`).
    let rx = peer("127.0.0.1");
    let t = rx.local_addr().unwrap().to_string();
    let r = run(&["send", &t, "-hello"]);
    r.expect_code(2).expect_stderr(&format!(
        "'-hello' is not an option (-h alone asks for help): a MESSAGE that starts with '-' goes after --: dgram send {t} -- -hello"
    ));
    assert!(r.stdout.is_empty(), "no help on stdout");
    run(&["send", &t, "-xyz"])
        .expect_code(2)
        .expect_stderr(&format!("goes after --: dgram send {t} -- -xyz"));
    run(&["send", &t, "hi", "-wow"])
        .expect_code(2)
        .expect_stderr(&format!("goes after --: dgram send {t} hi -- -wow"));
    assert!(
        !arrives_within(&rx, Duration::from_millis(50)),
        "nothing sent"
    );
    // What the hint says works, and -h alone is still help.
    run(&["send", &t, "--", "-hello"]).expect_code(0);
    assert_eq!(recv(&rx).0, b"-hello");
    let r = run(&["send", "-h"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().starts_with("Send datagrams"),
        "{}",
        r.stdout_str()
    );
}
