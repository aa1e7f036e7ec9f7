//! A generated corpus of malformed command lines (issue 6/6): every one is refused with
//! exit 2 and exactly one `dgram: ...` line on stderr, nothing on stdout, no panic (101)
//! and no signal. The whole corpus runs in-process against the parser and the pure
//! checks (`cmd::check`); a sample of it runs as real processes, which must print the
//! very line the in-process check gave.

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
        vec!["relay", "0", "--to", "127.0.0.1:9"],
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
            "relay".into(),
            "0".into(),
            "--to".into(),
            target.into(),
        ]);
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

/// The line (and exit code) dgram refuses `args` with, decided in-process by the same
/// parser and checks `main` runs; `Err` when the line is accepted.
fn refusal(args: &[OsString]) -> Result<(String, u8), String> {
    let mut argv = vec![OsString::from("dgram")];
    argv.extend(args.iter().cloned());
    match dgram_cli::cli::Cli::parse_from_args(argv.clone()) {
        Err(e) => dgram_cli::app::usage_line(&e, &argv)
            .map(|line| (line, dgram_cli::app::exit::USAGE))
            .ok_or_else(|| "help or version printed".to_string()),
        Ok(cli) => match dgram_cli::cmd::check(cli.command) {
            Err(e) => Ok((
                dgram_cli::app::error_line(&e).unwrap_or_default(),
                dgram_cli::app::exit::code_for(&e),
            )),
            Ok(()) => Err("accepted".to_string()),
        },
    }
}

fn shown(args: &[OsString]) -> String {
    let s = format!("{args:?}");
    if s.len() > 200 {
        format!("{}...", &s[..200])
    } else {
        s
    }
}

#[test]
fn a_thousand_malformed_command_lines_are_each_refused_with_one_line() {
    let all = corpus();
    assert!(all.len() >= 1000, "only {} command lines", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter_map(|args| match refusal(args) {
            Ok((line, 2))
                if line.starts_with("dgram: ")
                    && line.ends_with('\n')
                    && line.lines().count() == 1
                    && line.len() < 2000 =>
            {
                None
            }
            other => Some(format!("{}: {other:?}", shown(args))),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn a_sample_of_the_corpus_as_processes_prints_the_same_line_and_exits_2() {
    let all = corpus();
    // Every 25th line, and the longest ones (a 120 KiB argument quoted back).
    let mut sample: Vec<&Vec<OsString>> = all.iter().step_by(25).collect();
    sample.extend(all.iter().filter(|a| a.iter().any(|w| w.len() > 100_000)));
    assert!(sample.len() >= 40, "a sample of {}", sample.len());
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = sample
            .chunks(sample.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || chunk.iter().filter_map(|a| check(a)).collect::<Vec<_>>())
            })
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
        sample.len(),
        failures.join("\n")
    );
}

/// `None` when the process refused the command line as the in-process check says it
/// would, else what went wrong.
fn check(args: &[OsString]) -> Option<String> {
    let expected = match refusal(args) {
        Ok((line, _)) => line,
        Err(why) => return Some(format!("{}: in-process: {why}", shown(args))),
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
    // Generous: it catches a parse that hangs, not a slow machine.
    let out = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) of our own child by its PID; the waiting thread reaps it.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Some(format!("{}: still running after 10 s", shown(args)));
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(2) if out.stdout.is_empty() && stderr == expected => None,
        code => Some(format!(
            "{}: exit {code:?}, {} stdout bytes, {:?}, stderr {:?}, in-process {:?}",
            shown(args),
            out.stdout.len(),
            start.elapsed(),
            &stderr[..stderr.len().min(300)],
            &expected[..expected.len().min(300)]
        )),
    }
}

#[test]
fn well_formed_command_lines_pass_the_same_checks() {
    // A check that refused everything would pass the corpus: these must be accepted.
    for line in [
        &["send", "127.0.0.1:9", "x"][..],
        &[
            "send",
            "127.0.0.1:9",
            "-x",
            "abcd",
            "-n",
            "3",
            "--rate",
            "10",
        ],
        &["send", "[::1]:53", "--dns", "example.com AAAA"],
        &["listen", "0", "-n", "1", "-w", "1s"],
        &["listen", "127.0.0.1:0", "--respond", "ok"],
        &["echo", "0", "--drop", "0.1", "--seed", "7"],
        &["relay", "0", "--to", "127.0.0.1:53", "--drop", "up=10%"],
        &["multicast", "join", "239.1.2.3:5000", "--iface", "lo"],
        &["multicast", "send", "239.1.2.3:5000", "x", "--iface", "lo"],
        &["doctor"],
    ] {
        let args: Vec<OsString> = line.iter().map(OsString::from).collect();
        assert_eq!(refusal(&args), Err("accepted".to_string()), "{line:?}");
    }
}
