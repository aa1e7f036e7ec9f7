//! Bad input: every malformed command line is exit 2 with exactly one `dgram: ...` line on
//! stderr, nothing on stdout, no panic, no hang, nothing sent.

use std::time::Duration;

use crate::harness::{arrives_within, peer, run};

fn expect_usage_error(args: &[&str], mention: &str) {
    let r = run(args);
    r.expect_code(2);
    if !r.stdout.is_empty() {
        r.fail("stdout must be empty");
    }
    let lines: Vec<&str> = r.stderr.lines().collect();
    if lines.len() != 1 || !lines[0].starts_with("dgram: ") {
        r.fail("expected exactly one 'dgram: ...' line on stderr");
    }
    if !lines[0].contains(mention) {
        r.fail(&format!("the error should name {mention:?}"));
    }
}

#[test]
fn malformed_addresses_are_named() {
    for (target, mention) in [
        ("127.0.0.1:-1", "'-1'"),
        ("127.0.0.1:65536", "'65536'"),
        ("127.0.0.1:abc", "'abc'"),
        ("127.0.0.1:", "invalid port"),
        ("256.1.1.1:80", "256.1.1.1"),
        ("[::1:80", "[::1:80"),
        ("::1:80", "brackets"),
        ("[fe80::1%nosuchif0]:80", "nosuchif0"),
        ("127.0.0.1:0", "port 0"),
        ("localhost", "missing ':PORT'"),
    ] {
        expect_usage_error(&["send", target, "x"], mention);
    }
    expect_usage_error(&["listen", "70000"], "70000");
    expect_usage_error(&["listen", "-4", "[::1]:0"], "family mismatch");
}

#[test]
fn bad_flags_and_values_are_one_line_with_a_help_pointer() {
    let r = run(&["send", "127.0.0.1:9", "x", "--count", "abc"]);
    r.expect_code(2)
        .expect_stderr("dgram: invalid value 'abc' for '--count <N>'")
        .expect_stderr("(see 'dgram send --help')");
    for (args, mention) in [
        (&["send", "127.0.0.1:9", "x", "-n", "0"][..], "--count"),
        (&["send", "127.0.0.1:9", "x", "-w", "5x"], "5x"),
        (&["send", "127.0.0.1:9", "x", "--rate", "0"], "--rate"),
        (
            &[
                "send",
                "127.0.0.1:9",
                "x",
                "--interval",
                "1s",
                "--rate",
                "3",
            ],
            "--interval",
        ),
        (
            &["send", "127.0.0.1:9", "x", "--frobnicate"],
            "--frobnicate",
        ),
        (&["send"], "TARGET"),
        (&["listen", "--allow", "10.0.0.0/33"], "10.0.0.0/33"),
        (&["listen", "--max-size", "70000"], "--max-size"),
        (&["listen", "-w"], "--timeout"),
        (&["nosuchcommand"], "nosuchcommand"),
        (&[], "subcommand"),
        (
            &["send", "127.0.0.1:9", "x", "--file", "/nonexistent/dgram"],
            "--file",
        ),
        (&["send", "127.0.0.1:9", "x", "--size", "5"], "MESSAGE"),
        (
            &["send", "127.0.0.1:9", "x", "--bind", "[::1]:0"],
            "different address families",
        ),
    ] {
        expect_usage_error(args, mention);
    }
}

#[test]
fn nothing_is_sent_on_bad_input() {
    let rx = peer("127.0.0.1");
    let t = rx.local_addr().unwrap().to_string();
    for args in [
        &["send", &t, "-x", "123"][..],
        &["send", &t, "--size", "70000"],
        &["send", &t, "x", "--ttl", "999"],
        &["send", &t, "x", "--expect", "zz", "-x"],
    ] {
        run(args).expect_code(2);
    }
    assert!(!arrives_within(&rx, Duration::from_millis(100)));
}

#[test]
fn non_utf8_arguments_do_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe:80");
    let out = std::process::Command::new(crate::harness::bin())
        .arg("send")
        .arg(bad)
        .arg("x")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    // A non-UTF-8 MESSAGE is just bytes.
    let rx = peer("127.0.0.1");
    let status = std::process::Command::new(crate::harness::bin())
        .args(["send", &rx.local_addr().unwrap().to_string()])
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe!"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(crate::harness::recv(&rx).0, b"\xff\xfe!");
}

#[test]
fn help_and_version_go_to_stdout_with_exit_0() {
    let r = run(&["--version"]);
    r.expect_code(0);
    assert!(r.stdout_str().starts_with("dgram "), "{}", r.stdout_str());
    for sub in [
        &["send"][..],
        &["listen"],
        &["echo"],
        &["relay"],
        &["doctor"],
        &["multicast"],
        &["multicast", "join"],
        &["multicast", "send"],
        &["completions"],
        &["manpage"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let r = run(&args);
        r.expect_code(0);
        let help = r.stdout_str();
        // guards: every subcommand's help opened with a doc comment leaked from a
        // shared option struct ("Socket options every subcommand takes").
        let (parent, name) = sub.split_at(sub.len() - 1);
        let listing = run(&[parent, &["--help"]].concat()).stdout_str();
        let entry = listing
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{} ", name[0])))
            .unwrap_or_else(|| panic!("{name:?} not listed in {parent:?} --help"))
            .trim();
        assert_eq!(
            help.lines().next(),
            Some(entry),
            "{sub:?} --help opens otherwise"
        );
        let examples = help.rsplit("Examples:").next().unwrap_or_default();
        assert!(
            help.contains("Examples:"),
            "{sub:?} --help has no examples: {help}"
        );
        assert!(
            examples
                .lines()
                .filter(|l| l.trim_start().starts_with("dgram "))
                .count()
                >= 2,
            "{sub:?}: {examples}"
        );
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(&["completions", shell]);
        r.expect_code(0);
        let script = r.stdout_str();
        for word in ["listen", "echo", "multicast", "rate-limit"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    if crate::harness::tool("errors: the bash completion parses", "bash") {
        let r = run(&["completions", "bash"]);
        let dir = std::env::temp_dir().join(format!("dgram-completion-{}", std::process::id()));
        std::fs::write(&dir, &r.stdout).unwrap();
        let ok = std::process::Command::new("bash")
            .arg("-n")
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        std::fs::remove_file(&dir).unwrap();
        assert!(ok, "bash -n rejects the completion script");
    }
    let r = run(&["manpage"]);
    r.expect_code(0);
    let page = r.stdout_str();
    assert!(page.contains(".TH dgram 1"), "{page}");
    for sub in ["send", "listen", "echo", "multicast", "completions"] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    run(&["completions", "nosh"]).expect_code(2).expect_stderr(
        "invalid value 'nosh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh]",
    );
}

#[test]
fn every_page_a_man_page_names_is_one_dgram_manpage_prints() {
    // guards: dgram(1) pointed to dgram-send(1) and others that nothing printed.
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let mut args = vec!["manpage".to_string()];
        args.extend(path.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&argv);
        r.expect_code(0);
        let page = r.stdout_str();
        let name = std::iter::once("dgram".to_string())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        assert!(page.contains(&format!(".TH {name} 1")), "{argv:?}: {page}");
        seen += 1;
        // Each page it names, `dgram\-send(1)`, is one level down.
        for line in page.lines() {
            let Some(named) = line.strip_suffix("(1)") else {
                continue;
            };
            let named = named.replace("\\-", "-");
            let Some(rest) = named.strip_prefix(&format!("{name}-")) else {
                continue;
            };
            let mut next = path.clone();
            next.push(rest.to_string());
            todo.push(next);
        }
    }
    // dgram, its nine subcommands (scan the latest), and multicast's two.
    assert_eq!(seen, 12);
    run(&["manpage", "sned"])
        .expect_code(2)
        .expect_stderr("dgram manpage: no subcommand 'sned' (pages: send, listen");
}

#[test]
fn an_error_names_a_file_by_its_whole_path() {
    // guards: long words were shortened in error lines, a path included:
    // "cannot read --replay captures/a-very-long-directory-name-for-...(93 bytes)".
    let path = "captures/a-very-long-directory-name-for-testing/no-such-capture-file-with-a-long-name.pcapng";
    run(&["send", "127.0.0.1:9", "--replay", path])
        .expect_code(2)
        .expect_stderr(&format!(
            "cannot read --replay {path}: no such file or directory"
        ));
    let deep = format!("/tmp/{}/x.bin", "d".repeat(250));
    run(&["send", "127.0.0.1:9", "--file", &deep])
        .expect_code(2)
        .expect_stderr(&deep);
}
