//! A generated corpus of malformed command lines (issue 6/6): every one exits 2 with
//! exactly one `dgram: ...` line on stderr and nothing on stdout, never panics (101) or
//! dies of a signal, and answers in well under a second.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments that are wrong wherever they appear: bad values, conflicts, unknown flags.
fn bad_items() -> Vec<Vec<OsString>> {
    let s = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let mut items = Vec::new();
    for (flag, values) in [
        (
            "--count",
            &["0", "-1", "abc", "", "1.5", "99999999999999999999999"][..],
        ),
        ("--rate", &["0", "-1", "abc", "inf", "nan", ""]),
        ("--interval", &["5x", "-1s", "", "1.2.3s", "ms"]),
        ("--timeout", &["abc", "-2s", "1e9h"]),
        ("--duration", &["x", "-1", "5 fortnights"]),
        ("--ttl", &["256", "-1", "x", ""]),
        ("--tos", &["256", "0x100", "x"]),
        ("--max-size", &["70000", "-1", "x"]),
        ("--allow", &["10.0.0.0/33", "x", "", "::1/129"]),
        ("--deny", &["1.2.3.4/40", "nope"]),
        ("--rcvbuf", &["-1", "4T", "x"]),
        ("--sndbuf", &["-5", "1Q"]),
        ("--format", &["xml", "", "JSON5"]),
        ("--drop", &["1.5", "-0.1", "x", "101%"]),
        ("--duplicate", &["2"]),
        ("--reorder", &["-1"]),
        ("--seed", &["-1", "x"]),
        ("--max-sources", &["0", "1", "x"]),
        ("--retries", &["-1", "x"]),
        ("--stats-interval", &["x", "-1s"]),
        ("--delay", &["x"]),
        ("--jitter", &["-3ms"]),
        ("--rate-limit", &["0", "x"]),
        ("--size", &["-1", "x"]),
    ] {
        for v in values {
            items.push(s(&[flag, v]));
            items.push(vec![OsString::from(format!("{flag}={v}"))]);
        }
        items.push(s(&[flag])); // missing value
    }
    for conflict in [
        &["--rate", "5", "--interval", "1s"][..],
        &["-4", "-6"],
        &["--collect", "--reply"],
        &["-v", "-q"],
        &["--gro", "-n", "1"],
        &["-x", "--base64"],
        &["--rate-limit", "5", "--no-rate-limit"],
        &["--frobnicate"],
        &["-Z"],
    ] {
        items.push(s(conflict));
    }
    items.push(vec![OsString::from_vec(b"--format=\xff\xfe".to_vec())]);
    // Linux refuses one argument over 128 KiB (MAX_ARG_STRLEN) at exec: 120 KiB is the
    // largest a user can pass.
    items.push(vec![OsString::from(format!(
        "--count={}",
        "9".repeat(120 << 10)
    ))]);
    items
}

/// Subcommands with what makes the rest of the line well-formed.
fn prefixes() -> Vec<Vec<&'static str>> {
    vec![
        vec!["send", "127.0.0.1:9", "x"],
        vec!["listen", "0"],
        vec!["echo", "0"],
        vec!["multicast", "join", "239.1.2.3:0"],
        vec!["multicast", "send", "239.1.2.3:9", "x"],
    ]
}

/// Malformed addresses and payloads, with no name a resolver would have to look up.
fn bad_positionals() -> Vec<Vec<OsString>> {
    let mut v: Vec<Vec<OsString>> = Vec::new();
    for target in [
        "127.0.0.1:-1",
        "127.0.0.1:65536",
        "127.0.0.1:abc",
        "127.0.0.1:",
        "256.1.1.1:80",
        "[::1",
        "::1:80",
        "[fe80::1%nosuchif0]:80",
        "[::1]",
        "[::1]80",
        "1.2.3:80",
        ":80",
        "[]:80",
        "[zz::1]:80",
        "127.0.0.1:0",
        "",
        "localhost",
    ] {
        v.push(vec!["send".into(), target.into(), "x".into()]);
        v.push(vec![
            "listen".into(),
            target.into(),
            "-n".into(),
            "1".into(),
            "-w".into(),
            "x".into(),
        ]);
    }
    v.push(vec![
        "send".into(),
        "a".repeat(120 << 10).into(),
        "x".into(),
    ]);
    v.push(vec![
        "send".into(),
        "127.0.0.1:9".into(),
        "y".repeat(120 << 10).into(),
    ]);
    v.push(vec![
        "send".into(),
        OsString::from_vec(b"\xff\xfe:80".to_vec()),
        "x".into(),
    ]);
    for (enc, payload) in [
        ("-x", "abc"),
        ("-x", "zz"),
        ("-e", r"\x4"),
        ("-e", r"\q"),
        ("-e", "end\\"),
        ("--base64", "@@"),
    ] {
        v.push(vec![
            "send".into(),
            "127.0.0.1:9".into(),
            enc.into(),
            payload.into(),
        ]);
    }
    for group in ["10.0.0.1:5000", "239.1.1.1:99999", "[ff02::1"] {
        v.push(vec!["multicast".into(), "join".into(), group.into()]);
        v.push(vec![
            "multicast".into(),
            "send".into(),
            group.into(),
            "x".into(),
        ]);
    }
    v.push(vec![]);
    v.push(vec!["nosuchcommand".into()]);
    v.push(vec!["multicast".into()]);
    v.push(vec!["completions".into(), "nosh".into()]);
    v
}

fn f_of(item: &[OsString]) -> &str {
    item[0].to_str().unwrap_or_default()
}

/// Flags that take no value: alone they are not "missing a value".
fn is_switch(flag: &str) -> bool {
    matches!(flag, "--frobnicate")
}

fn corpus() -> Vec<Vec<OsString>> {
    let mut all = bad_positionals();
    for prefix in prefixes() {
        for item in bad_items() {
            // The bad item after the subcommand's arguments, and between subcommand and them.
            let mut after: Vec<OsString> = prefix.iter().map(OsString::from).collect();
            after.extend(item.iter().cloned());
            all.push(after);
            // A lone flag there would take the positional as its value: a valid line.
            if item.len() == 1
                && item[0]
                    .to_str()
                    .is_some_and(|f| f.starts_with("--") && !f.contains('='))
                && !is_switch(f_of(&item))
            {
                continue;
            }
            let split = if prefix[0] == "multicast" { 2 } else { 1 };
            let mut between: Vec<OsString> = prefix[..split].iter().map(OsString::from).collect();
            between.extend(item.iter().cloned());
            between.extend(prefix[split..].iter().map(OsString::from));
            all.push(between);
        }
    }
    all
}

#[test]
fn a_thousand_malformed_command_lines_each_exit_2_with_one_line() {
    let all = corpus();
    assert!(all.len() >= 1000, "only {} command lines", all.len());
    let chunks: Vec<Vec<Vec<OsString>>> = all
        .chunks(all.len().div_ceil(4))
        .map(<[_]>::to_vec)
        .collect();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| scope.spawn(move || chunk.iter().filter_map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// `None` when the command line was refused as it should be, else what went wrong.
fn check(args: &Vec<OsString>) -> Option<String> {
    let shown = || {
        let s = format!("{args:?}");
        if s.len() > 200 {
            format!("{}...", &s[..200])
        } else {
            s
        }
    };
    let start = Instant::now();
    let child = Command::new(crate::harness::bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Output is drained while waiting, so a long error line cannot fill the pipe and stall.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of our own child by its PID; the waiting thread reaps it.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Some(format!("{}: still running after 10 s", shown()));
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let took = start.elapsed();
    match out.status.code() {
        Some(2)
            if out.stdout.is_empty()
                && lines.len() == 1
                && lines[0].starts_with("dgram: ")
                && lines[0].len() < 2000
                // Generous: it catches a parse that hangs, not a slow machine.
                && took < Duration::from_secs(5) =>
        {
            None
        }
        code => Some(format!(
            "{}: exit {code:?}, {} stdout bytes, {took:?}, stderr {:?}",
            shown(),
            out.stdout.len(),
            &stderr[..stderr.len().min(300)]
        )),
    }
}
