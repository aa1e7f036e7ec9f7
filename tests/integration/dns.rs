//! DNS on the wire: `send --dns` against dnsmasq, `listen --dns` against dig (programs
//! nobody here wrote), and the `dns` format and JSON object.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{peer, released_port, run, spawn_cmd, tool, Guard, Server};

/// Thirty strings of 43 bytes: a TXT answer of about 1,300 bytes.
fn big_txt() -> String {
    (0..30)
        .map(|i| format!("record-number-{i:02}-with-some-padding-to-grow"))
        .collect::<Vec<_>>()
        .join(",")
}

/// An SOA's data on the wire: ns1.example. hostmaster.example. 1 7200 3600 1209600 300.
const SOA_RDATA: &str = "036e7331076578616d706c65000a686f73746d6173746572076578616d706c65000000000100001c2000000e10001275000000012c";

/// dnsmasq on 127.0.0.1 with a few records of each type, answering NXDOMAIN for other
/// names under `example`; killed by PID when the guard drops.
pub fn dnsmasq() -> Option<(Guard, SocketAddr)> {
    if !tool("dns::dnsmasq", "dnsmasq") {
        return None;
    }
    // dnsmasq cannot announce a port: take a free one, and retry if it loses the race.
    let mut last_words = String::new();
    for _ in 0..5 {
        let port = released_port();
        let guard = spawn_cmd(
            "dnsmasq",
            &[
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={port}"),
                "--local=/example/",
                "--address=/test.example/127.0.0.1",
                "--host-record=host.example,10.1.2.3,fd00::3",
                "--txt-record=txt.example,hello world",
                "--mx-host=mx.example,mail.example,10",
                "--srv-host=_sip._udp.example,sip.example,5060,1,2",
                // For the presentation-form comparison with dig: TXT with a quote, a
                // backslash, a tab and two strings; CNAME, PTR, CAA; SOA and a type dgram
                // has no name for, as raw data.
                "--txt-record=quote.example,say \"hi\" \\back\tnow,second",
                "--cname=alias.example,host.example",
                "--ptr-record=3.2.1.10.in-addr.arpa,host.example",
                "--caa-record=caa.example,0,issue,letsencrypt.org",
                &format!("--dns-rr=soa.example,6,{SOA_RDATA}"),
                "--dns-rr=odd.example,65280,01abcdef",
                // An answer too big for 512 bytes: truncated over UDP without EDNS.
                &format!("--txt-record=big.example,{}", big_txt()),
                "--log-facility=/dev/null",
            ],
            None,
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Ready once it answers (each try bounded by dgram's own timeout).
        let deadline = Instant::now() + crate::harness::LIMIT;
        while Instant::now() < deadline {
            let r = run(&[
                "send",
                &addr.to_string(),
                "--dns",
                "test.example",
                "-w",
                "200ms",
            ]);
            if r.code() == 0 {
                return Some((guard, addr));
            }
            if !guard.stderr().is_empty()
                && guard.stderr().contains("failed to create listening socket")
            {
                break;
            }
        }
        last_words = guard.stderr();
    }
    panic!("dnsmasq did not start: {last_words}");
}

#[test]
fn send_dns_gets_every_record_type_from_dnsmasq() {
    let Some((_dnsmasq, addr)) = dnsmasq() else {
        return;
    };
    let t = addr.to_string();
    for (query, answer) in [
        ("test.example", "test.example.\t0\tIN\tA\t127.0.0.1"),
        ("host.example AAAA", "host.example.\t0\tIN\tAAAA\tfd00::3"),
        (
            "txt.example TXT",
            "txt.example.\t0\tIN\tTXT\t\"hello world\"",
        ),
        ("mx.example MX", "mx.example.\t0\tIN\tMX\t10 mail.example."),
        (
            "_sip._udp.example SRV",
            "_sip._udp.example.\t0\tIN\tSRV\t1 2 5060 sip.example.",
        ),
    ] {
        let r = run(&["send", &t, "--dns", query]);
        r.expect_code(0);
        let out = r.stdout_str();
        assert!(out.starts_with(&format!(";; {t}, ")), "{out}");
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(
            out.contains(&format!(";; ANSWER SECTION:\n{answer}\n")),
            "{query}: {out}"
        );
    }
    let r = run(&["send", &t, "--dns", "missing.example"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("status: NXDOMAIN"),
        "{}",
        r.stdout_str()
    );
}

#[test]
fn rcode_and_answer_expectations_make_honest_smoke_tests() {
    let Some((_dnsmasq, addr)) = dnsmasq() else {
        return;
    };
    let t = addr.to_string();
    run(&[
        "send",
        &t,
        "--dns",
        "missing.example",
        "--expect-rcode",
        "NXDOMAIN",
    ])
    .expect_code(0);
    run(&[
        "send",
        &t,
        "--dns",
        "missing.example",
        "--expect-rcode",
        "NOERROR",
    ])
    .expect_code(1)
    .expect_stderr("has RCODE NXDOMAIN, not NOERROR");
    run(&[
        "send",
        &t,
        "--dns",
        "test.example",
        "--expect",
        "A 127.0.0.1",
    ])
    .expect_code(0);
    run(&[
        "send",
        &t,
        "--dns",
        "test.example",
        "--expect",
        "A 127.0.0.2",
    ])
    .expect_code(1)
    .expect_stderr(
        "expected 'A 127.0.0.2', got 'test.example. 0 IN A 127.0.0.1' (the answer section of",
    );
    // JSON replies carry the dns object and the RTT.
    let r = run(&[
        "send",
        &t,
        "--dns",
        "host.example AAAA",
        "-f",
        "json",
        "--stats",
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout_str().trim()).unwrap();
    assert_eq!(v["dns"]["rcode"], "NOERROR");
    assert_eq!(v["dns"]["answer"][0]["data"], "fd00::3");
    assert_eq!(v["dns"]["question"][0]["type"], "AAAA");
    assert!(v["rtt_us"].is_u64());
}

#[test]
fn only_the_answer_to_the_query_counts() {
    // guards: an answer with another ID (a late answer to an earlier try, a spoof) or
    // garbage from the target is ignored and counted, never taken as the reply
    let server = peer("127.0.0.1");
    let t = server.local_addr().unwrap().to_string();
    let answers = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let query = buf[..n].to_vec();
        let mut wrong_id = query.clone();
        wrong_id[0] ^= 0xff;
        wrong_id[2] |= 0x80; // QR: a response
        let mut right = query.clone();
        right[2] |= 0x80;
        server.send_to(b"garbage", from).unwrap();
        server.send_to(&wrong_id, from).unwrap();
        server.send_to(&right, from).unwrap();
    });
    let r = run(&["send", &t, "--dns", "example.com", "-vv"]);
    answers.join().unwrap();
    r.expect_code(0)
        .expect_stderr("not a DNS message")
        .expect_stderr("is not the answer");
    assert_eq!(
        r.stdout_str().matches(";; ->>HEADER<<-").count(),
        1,
        "{}",
        r.stdout_str()
    );
    // Nothing but a wrong answer: exit 1, saying what was ignored.
    let server = peer("127.0.0.1");
    let t = server.local_addr().unwrap().to_string();
    let wrong = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        let mut echoed = buf[..n].to_vec();
        echoed[0] ^= 1;
        server.send_to(&echoed, from).unwrap();
    });
    run(&["send", &t, "--dns", "example.com", "-w", "300ms"])
        .expect_code(1)
        .expect_stderr("was not the answer and was ignored");
    wrong.join().unwrap();
}

#[test]
fn bad_queries_are_refused_and_nothing_is_sent() {
    let rx = peer("127.0.0.1");
    let t = rx.local_addr().unwrap().to_string();
    let long_label = format!("{}.com", "x".repeat(64));
    // 63 + 63 + 63 + 62 bytes of labels: 256 bytes on the wire.
    let long_name = format!("{0}.{0}.{0}.{1}", "x".repeat(63), "x".repeat(62));
    for (query, says) in [
        ("a..b", "empty label"),
        (long_label.as_str(), "exceed 63"),
        (long_name.as_str(), "256 bytes on the wire, over 255"),
        ("example.com BOGUS", "'BOGUS'"),
        ("example.com +frobnicate", "+frobnicate"),
    ] {
        run(&["send", &t, "--dns", query])
            .expect_code(2)
            .expect_stderr(says);
    }
    assert!(!crate::harness::arrives_within(
        &rx,
        Duration::from_millis(100)
    ));
}

#[test]
fn listen_dns_shows_what_dig_asks() {
    if !tool("dns::listen_dns_shows_what_dig_asks", "dig") {
        return;
    }
    let s = Server::start(&["listen", "0", "--dns", "-n", "1"]);
    let dig = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &s.addr.port().to_string(),
            "+qr",
            "+tries=1",
            "+time=1",
            "example.com",
            "AAAA",
        ])
        .output()
        .unwrap();
    let dig_out = String::from_utf8_lossy(&dig.stdout);
    // dig prints the query it sent (+qr): its ID is the one dgram must show.
    let id = dig_out
        .split("id: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no id in dig's output: {dig_out}"))
        .to_string();
    let r = s.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(out.contains(&format!("id: {id}\n")), "{out}");
    assert!(out.contains(";example.com.\t\tIN\tAAAA\n"), "{out}");
    assert!(out.contains("udp: 1232"), "{out}");
    assert!(out.contains("flags: rd ad;"), "{out}");
    // JSON with --dns: the question as the dns object says it.
    let s = Server::start(&["listen", "0", "--dns", "-f", "json", "-n", "1"]);
    let _ = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &s.addr.port().to_string(),
            "+tries=1",
            "+time=1",
            "_sip._udp.example.com",
            "SRV",
        ])
        .output()
        .unwrap();
    let r = s.finish();
    let v: serde_json::Value = serde_json::from_str(r.stdout_str().trim()).unwrap();
    assert_eq!(v["dns"]["question"][0]["name"], "_sip._udp.example.com.");
    assert_eq!(v["dns"]["question"][0]["type"], "SRV");
    assert_eq!(v["dns"]["opcode"], "QUERY");
}

#[test]
fn a_datagram_that_is_not_dns_is_shown_and_the_run_goes_on() {
    let s = Server::start(&["listen", "0", "--dns", "-n", "2"]);
    let c = peer("127.0.0.1");
    c.send_to(b"not dns at all", s.addr).unwrap();
    let query = dgram_query();
    c.send_to(&query, s.addr).unwrap();
    let r = s.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    // guards: a datagram that did not decode lacked the `;; PEER, LEN bytes` line.
    let head = format!(
        ";; {}, 14 bytes\n;; not a DNS message: ",
        c.local_addr().unwrap()
    );
    assert!(out.starts_with(&head), "{out}");
    assert!(out.contains("|not dns at all|"), "{out}");
    assert!(out.contains(";; ->>HEADER<<- opcode: QUERY"), "{out}");
}

/// A query's bytes, as `send --dns` makes them, caught by a plain socket.
fn dgram_query() -> Vec<u8> {
    let rx = peer("127.0.0.1");
    run(&[
        "send",
        &rx.local_addr().unwrap().to_string(),
        "--dns",
        "example.com MX",
        "-w",
        "1ms",
    ]);
    crate::harness::recv(&rx).0
}

#[test]
fn mdns_decodes_with_its_cache_flush_and_unicast_response_bits() {
    // On lo (--iface 127.0.0.1): the join and the datagrams stay on this host.
    let g = crate::harness::spawn(
        &[
            "multicast",
            "join",
            "224.0.0.251:0",
            "--iface",
            "127.0.0.1",
            "--dns",
            "-n",
            "2",
        ],
        None,
    );
    let port = g.announced().port();
    g.wait_stderr("joined ");
    let group = format!("224.0.0.251:{port}");
    // A question for x.local A with the unicast-response bit, then an answer for it with
    // the cache-flush bit (class 0x8001 both times), as mDNS responders send them.
    let question = "0000 0000 0001 0000 0000 0000 0178 056c6f63616c00 0001 8001";
    let answer =
        "0000 8400 0000 0001 0000 0000 0178 056c6f63616c00 0001 8001 00000078 0004 7f000001";
    for hex in [question, answer] {
        run(&[
            "multicast",
            "send",
            &group,
            "--iface",
            "127.0.0.1",
            "-x",
            hex,
        ])
        .expect_code(0);
    }
    let r = g.finish();
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(
        out.contains(";x.local.\t\tIN\tA\t; unicast-response\n"),
        "{out}"
    );
    assert!(
        out.contains("x.local.\t120\tIN\tA\t127.0.0.1\t; cache-flush\n"),
        "{out}"
    );
}

/// The records of a dig-layout answer section, each as its whitespace-separated fields.
fn answer_records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn dgram_and_dig_read_the_same_answers_alike() {
    // dig (a decoder nobody here wrote) and dgram ask dnsmasq the same questions; both
    // must show the same header status and the same records, field for field.
    let Some((_dnsmasq, addr)) = dnsmasq() else {
        return;
    };
    if !tool("dns::dgram_and_dig_read_the_same_answers_alike", "dig") {
        return;
    }
    for (name, rtype) in [
        ("test.example", "A"),
        ("host.example", "AAAA"),
        ("host.example", "A"),
        ("txt.example", "TXT"),
        ("mx.example", "MX"),
        ("_sip._udp.example", "SRV"),
        ("missing.example", "A"),
    ] {
        let dig = std::process::Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "+tries=1",
                "+time=2",
                "+nocookie",
                name,
                rtype,
            ])
            .output()
            .unwrap();
        let dig = String::from_utf8_lossy(&dig.stdout).to_string();
        let ours = run(&[
            "send",
            &addr.to_string(),
            "--dns",
            &format!("{name} {rtype}"),
        ]);
        ours.expect_code(0);
        let ours = ours.stdout_str();
        let status = |text: &str| {
            text.lines()
                .find(|l| l.contains("->>HEADER<<-"))
                .and_then(|l| l.split("status: ").nth(1))
                .and_then(|s| s.split(',').next())
                .map(str::to_string)
        };
        assert_eq!(
            status(&ours),
            status(&dig),
            "{name} {rtype}:\n{ours}\n{dig}"
        );
        let flags = |text: &str| {
            text.lines()
                .find(|l| l.starts_with(";; flags:"))
                .map(|l| l.split(';').nth(2).unwrap_or_default().trim().to_string())
        };
        assert_eq!(flags(&ours), flags(&dig), "{name} {rtype}: the counts");
        let bits = |text: &str| {
            text.lines()
                .find(|l| l.starts_with(";; flags:"))
                .and_then(|l| l.split(';').nth(1).map(|s| s.trim().to_string()))
        };
        assert_eq!(bits(&ours), bits(&dig), "{name} {rtype}: the header bits");
        if name != "missing.example" {
            assert!(
                !answer_records(&ours).is_empty(),
                "{name} {rtype}: no answer\n{ours}"
            );
        }
        // dig writes TXT data quoted; presentation form either way.
        let norm = |records: Vec<Vec<String>>| -> Vec<String> {
            records
                .into_iter()
                .map(|r| r.join(" ").replace('"', ""))
                .collect()
        };
        assert_eq!(
            norm(answer_records(&ours)),
            norm(answer_records(&dig)),
            "{name} {rtype}"
        );
    }
}

/// The header bits of a `flags` list of the JSON `dns` object, as the 16-bit flags word
/// (opcode and rcode added) that tshark's `dns.flags` shows.
fn flags_word(dns: &serde_json::Value) -> u16 {
    let mut word = 0u16;
    for f in dns["flags"].as_array().unwrap() {
        word |= match f.as_str().unwrap() {
            "qr" => 0x8000,
            "aa" => 0x0400,
            "tc" => 0x0200,
            "rd" => 0x0100,
            "ra" => 0x0080,
            "ad" => 0x0020,
            "cd" => 0x0010,
            other => panic!("flag {other}"),
        };
    }
    let opcode = match dns["opcode"].as_str().unwrap() {
        "QUERY" => 0,
        other => panic!("opcode {other}"),
    };
    let rcode = match dns["rcode"].as_str().unwrap() {
        "NOERROR" => 0,
        "NXDOMAIN" => 3,
        other => panic!("rcode {other}"),
    };
    word | opcode << 11 | rcode
}

/// An answer record's data as tshark's fields give it, in presentation form.
fn tshark_data(
    rtype: &str,
    fields: &std::collections::HashMap<&str, Vec<String>>,
    i: usize,
) -> String {
    let f = |name: &str| fields[name].get(i).cloned().unwrap_or_default();
    match rtype {
        "1" => f("dns.a"),
        "28" => f("dns.aaaa"),
        "16" => f("dns.txt"),
        "15" => format!("{} {}.", f("dns.mx.preference"), f("dns.mx.mail_exchange")),
        "33" => format!(
            "{} {} {} {}.",
            f("dns.srv.priority"),
            f("dns.srv.weight"),
            f("dns.srv.port"),
            f("dns.srv.target")
        ),
        other => panic!("type {other}"),
    }
}

#[test]
fn dgram_and_tshark_decode_the_same_bytes_alike() {
    // The same messages, decoded twice: by a relay with --dns -f json (dgram's decoder)
    // and by tshark from the relay's --pcap of them (a decoder nobody here wrote). Both
    // must agree on ID, flags, counts, names, types, TTLs and data, for every record
    // type dnsmasq returns.
    let Some((_dnsmasq, upstream)) = dnsmasq() else {
        return;
    };
    if !tool(
        "dns::dgram_and_tshark_decode_the_same_bytes_alike",
        "tshark",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dgram-dns-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("legs.pcap");
    let relay = Server::start(&[
        "relay",
        "0",
        "--to",
        &upstream.to_string(),
        "--dns",
        "-f",
        "json",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    let queries = [
        "test.example A",
        "host.example AAAA",
        "host.example A",
        "txt.example TXT",
        "mx.example MX",
        "_sip._udp.example SRV",
        "missing.example A",
    ];
    for q in queries {
        run(&["send", &relay.addr.to_string(), "--dns", q]).expect_code(0);
    }
    let relay_port = relay.addr.port();
    relay.guard.signal(libc::SIGTERM);
    let r = relay.finish();
    r.expect_code(143);
    // dgram's decode, by (id, response).
    let mut ours = std::collections::BTreeMap::new();
    for line in r.stdout_str().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let dns = v["dns"].clone();
        let id = dns["id"].as_u64().unwrap();
        ours.insert((id, v["dir"] == "down"), dns);
    }
    assert_eq!(ours.len(), 2 * queries.len(), "{}", r.stdout_str());
    let names = [
        "dns.id",
        "dns.flags",
        "dns.count.queries",
        "dns.count.answers",
        "dns.count.auth_rr",
        "dns.count.add_rr",
        "dns.qry.name",
        "dns.qry.type",
        "dns.resp.name",
        "dns.resp.type",
        "dns.resp.ttl",
        "dns.a",
        "dns.aaaa",
        "dns.txt",
        "dns.mx.preference",
        "dns.mx.mail_exchange",
        "dns.srv.service",
        "dns.srv.proto",
        "dns.srv.name",
        "dns.srv.priority",
        "dns.srv.weight",
        "dns.srv.port",
        "dns.srv.target",
        "dns.rr.udp_payload_size",
    ];
    // Both legs' ports decoded as DNS (a random port may be some other protocol's).
    let (up, client_leg) = (
        format!("udp.port=={},dns", upstream.port()),
        format!("udp.port=={},dns", relay_port),
    );
    let rows = crate::harness::tshark_fields(&pcap, &["-d", &up, "-d", &client_leg], &names);
    let mut seen = std::collections::BTreeSet::new();
    for cols in &rows {
        let row = cols.join("|");
        assert_eq!(cols.len(), names.len(), "{row}");
        let fields: std::collections::HashMap<&str, Vec<String>> = names
            .iter()
            .zip(cols.iter())
            .map(|(n, c)| {
                let values = if c.is_empty() {
                    Vec::new()
                } else {
                    c.split('~').map(str::to_string).collect()
                };
                (*n, values)
            })
            .collect();
        let one = |n: &str| fields[n].first().cloned().unwrap_or_default();
        let flags = u16::from_str_radix(one("dns.flags").trim_start_matches("0x"), 16).unwrap();
        let id = u64::from_str_radix(one("dns.id").trim_start_matches("0x"), 16).unwrap();
        let key = (id, flags & 0x8000 != 0);
        let dns = ours
            .get(&key)
            .unwrap_or_else(|| panic!("tshark saw {key:?}, dgram did not: {row}"));
        seen.insert(key);
        assert_eq!(flags, flags_word(dns), "flags of {key:?}: {dns}");
        let count = |n: &str| one(n).parse::<usize>().unwrap();
        assert_eq!(
            count("dns.count.queries"),
            dns["question"].as_array().unwrap().len()
        );
        let answers = dns["answer"].as_array().unwrap();
        assert_eq!(count("dns.count.answers"), answers.len(), "{row}");
        assert_eq!(
            count("dns.count.auth_rr"),
            dns["authority"].as_array().unwrap().len()
        );
        let opt = usize::from(!dns["edns"].is_null());
        assert_eq!(
            count("dns.count.add_rr"),
            dns["additional"].as_array().unwrap().len() + opt
        );
        assert_eq!(
            format!("{}.", one("dns.qry.name")),
            dns["question"][0]["name"].as_str().unwrap()
        );
        let type_number = |name: &str| match name {
            "A" => "1",
            "AAAA" => "28",
            "TXT" => "16",
            "MX" => "15",
            "SRV" => "33",
            other => panic!("type {other}"),
        };
        assert_eq!(
            one("dns.qry.type"),
            type_number(dns["question"][0]["type"].as_str().unwrap())
        );
        if opt == 1 {
            assert_eq!(
                one("dns.rr.udp_payload_size"),
                dns["edns"]["udp"].to_string(),
                "{row}"
            );
        }
        // tshark names an SRV record's owner by its parts, every other by dns.resp.name.
        let (mut named, mut srv) = (0, 0);
        for (i, a) in answers.iter().enumerate() {
            let owner = if a["type"] == "SRV" {
                srv += 1;
                let part = |n: &str| fields[n][srv - 1].clone();
                format!(
                    "{}.{}.{}",
                    part("dns.srv.service"),
                    part("dns.srv.proto"),
                    part("dns.srv.name")
                )
            } else {
                named += 1;
                fields["dns.resp.name"][named - 1].clone()
            };
            assert_eq!(format!("{owner}."), a["name"].as_str().unwrap(), "{row}");
            let rtype = &fields["dns.resp.type"][i];
            assert_eq!(rtype, type_number(a["type"].as_str().unwrap()));
            assert_eq!(fields["dns.resp.ttl"][i], a["ttl"].to_string());
            let data = a["data"].as_str().unwrap().replace('"', "");
            assert_eq!(tshark_data(rtype, &fields, i), data, "{row}");
        }
    }
    assert_eq!(
        seen.len(),
        ours.len(),
        "tshark decoded every message: {rows:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retries_resend_the_same_query_and_a_truncated_answer_is_shown_as_one() {
    // A silent server: three tries, one query, byte for byte (same ID, as dig does).
    let rx = peer("127.0.0.1");
    let t = rx.local_addr().unwrap().to_string();
    run(&[
        "send",
        &t,
        "--dns",
        "example.com",
        "-w",
        "100ms",
        "--retries",
        "2",
    ])
    .expect_code(1)
    .expect_stderr("no reply from")
    .expect_stderr("after 3 tries of 100ms");
    let tries: Vec<Vec<u8>> = (0..3).map(|_| crate::harness::recv(&rx).0).collect();
    assert!(tries.iter().all(|q| q == &tries[0]), "{tries:?}");
    assert!(!crate::harness::arrives_within(
        &rx,
        Duration::from_millis(50)
    ));
    // An answer with TC set, with +ignore: shown as truncated, and still the reply (exit
    // 0). Without +ignore it is asked again over TCP (tested with dnsmasq below).
    for format in ["dns", "json"] {
        let server = peer("127.0.0.1");
        let t = server.local_addr().unwrap().to_string();
        let answers = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80 | 0x02; // QR, TC
            server.send_to(&reply, from).unwrap();
        });
        let r = run(&["send", &t, "--dns", "example.com TXT +ignore", "-f", format]);
        answers.join().unwrap();
        r.expect_code(0);
        let out = r.stdout_str();
        if format == "dns" {
            assert!(out.contains(";; flags: qr tc rd;"), "{out}");
            assert!(out.contains(";; Truncated"), "{out}");
        } else {
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(
                v["dns"]["flags"],
                serde_json::json!(["qr", "tc", "rd"]),
                "{v}"
            );
        }
    }
}

#[test]
fn query_flags_go_on_the_wire_as_tshark_reads_them() {
    // The queries send --dns builds, recorded by listen --pcap and read by tshark.
    if !tool("dns::query_flags_go_on_the_wire", "tshark") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dgram-dns-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (query, want) in [
        (
            "example.com",
            // RD, type A, class IN, EDNS 1232 without DO
            "example.com|1|1|0x0001|1|1232|0",
        ),
        (
            "example.com TYPE65 CH +norecurse +dnssec +bufsize=4096",
            "example.com|0|65|0x0003|1|4096|1",
        ),
        ("example.com MX +noedns", "example.com|1|15|0x0001|0||"),
    ] {
        let pcap = dir.join("q.pcap");
        let s = Server::start(&["listen", "0", "-n", "1", "--pcap", pcap.to_str().unwrap()]);
        let port = s.addr.port();
        run(&["send", &s.addr.to_string(), "--dns", query, "-w", "1ms"]);
        s.finish().expect_code(0);
        let rows = crate::harness::tshark_fields(
            &pcap,
            &["-d", &format!("udp.port=={port},dns")],
            &[
                "dns.qry.name",
                "dns.flags.recdesired",
                "dns.qry.type",
                "dns.qry.class",
                "dns.count.add_rr",
                "dns.rr.udp_payload_size",
                "dns.resp.z.do",
            ],
        );
        let rows: Vec<String> = rows.iter().map(|r| r.join("|")).collect();
        assert_eq!(rows, [want], "{query}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn short_answers_and_reverse_lookups_as_dig_writes_them() {
    // guards: --dns lacked dig's two most typed options, +short and -x ADDR.
    let s = Server::start(&[
        "listen",
        "0",
        "--dns-answer",
        "db.test A 127.0.0.7",
        "--dns-answer",
        "db.test A 127.0.0.8",
        "--dns-answer",
        "1.0.0.127.in-addr.arpa PTR localhost.",
        "--dns-answer",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa PTR ip6-localhost.",
    ]);
    let t = s.addr.to_string();
    let r = run(&["send", &t, "--dns", "db.test +short"]);
    r.expect_code(0).expect_stdout(b"127.0.0.7\n127.0.0.8\n");
    let r = run(&["send", &t, "--dns", "-x 127.0.0.1"]);
    r.expect_code(0);
    let out = r.stdout_str();
    assert!(out.contains(";1.0.0.127.in-addr.arpa.\t\tIN\tPTR"), "{out}");
    assert!(out.contains("PTR\tlocalhost."), "{out}");
    run(&["send", &t, "--dns", "-x ::1 +short"])
        .expect_code(0)
        .expect_stdout(b"ip6-localhost.\n");
    run(&["send", &t, "--dns", "-x nope"])
        .expect_code(2)
        .expect_stderr("--dns: -x nope: not an IPv4 or IPv6 address");
}

#[test]
fn the_specs_own_query_example_goes_out_with_its_opt_record() {
    // guards: 'example.com TYPE65 +norecurse +dnssec +bufsize=4096 +noedns' was refused
    // ("+dnssec needs EDNS"); dig sends OPT whenever +dnssec or +bufsize is given.
    let rx = peer("127.0.0.1");
    let t = rx.local_addr().unwrap().to_string();
    let mut sender = crate::harness::spawn(
        &[
            "send",
            &t,
            "--dns",
            "example.com TYPE65 +norecurse +dnssec +bufsize=4096 +noedns",
            "-w",
            "100ms",
        ],
        None,
    );
    sender.close_stdin();
    let query = crate::harness::recv(&rx).0;
    assert_eq!(&query[10..12], &[0, 1], "ARCOUNT 1: the OPT record");
    assert_eq!(query[2] & 1, 0, "RD off (+norecurse)");
    // OPT: root name, type 41, class = UDP size 4096, TTL with the DO bit.
    let opt = [0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0];
    assert!(
        query.windows(opt.len()).any(|w| w == opt),
        "no OPT record with size 4096 and DO in {query:02x?}"
    );
    sender.finish().expect_code(1);
}

#[test]
fn every_record_type_reads_as_dig_prints_it() {
    // guards: TXT printed as `hello world` where dig prints `"hello world"` (so --expect
    // '"hello world"' failed), and a type dgram has no name for as base64, not `\# LEN HEX`.
    let Some((_dnsmasq, server)) = dnsmasq() else {
        return;
    };
    if !tool("dns::every_record_type_reads_as_dig_prints_it", "dig") {
        return;
    }
    let t = server.to_string();
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    for (name, kind) in [
        ("host.example", "A"),
        ("host.example", "AAAA"),
        ("txt.example", "TXT"),
        ("quote.example", "TXT"),
        ("mx.example", "MX"),
        ("_sip._udp.example", "SRV"),
        ("alias.example", "CNAME"),
        ("3.2.1.10.in-addr.arpa", "PTR"),
        ("soa.example", "SOA"),
        ("caa.example", "CAA"),
        ("odd.example", "TYPE65280"),
    ] {
        let dig = std::process::Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &server.port().to_string(),
                "+noall",
                "+answer",
                "+tries=1",
                "+time=2",
                name,
                kind,
            ])
            .output()
            .unwrap();
        let want: Vec<String> = String::from_utf8_lossy(&dig.stdout)
            .lines()
            .map(words)
            .collect();
        assert!(!want.is_empty(), "dig found no {name} {kind}");
        let r = run(&["send", &t, "--dns", &format!("{name} {kind}")]);
        r.expect_code(0);
        let out = r.stdout_str();
        let answer = out.split(";; ANSWER SECTION:\n").nth(1).unwrap_or_default();
        let got: Vec<String> = answer
            .lines()
            .take_while(|l| !l.is_empty())
            .map(words)
            .collect();
        assert_eq!(got, want, "{name} {kind}");
    }
    // What dig shows is what --expect matches.
    run(&[
        "send",
        &t,
        "--dns",
        "txt.example TXT",
        "--expect",
        "\"hello world\"",
    ])
    .expect_code(0);
    run(&["send", &t, "--dns", "txt.example TXT +short"])
        .expect_code(0)
        .expect_stdout(b"\"hello world\"\n");
}

#[test]
fn dns_over_tcp_from_the_start_after_a_truncated_answer_and_when_it_fails() {
    // guards: a TC answer ended there, and +tcp did not exist (SPEC §4 send, §10).
    let Some((_dnsmasq, server)) = dnsmasq() else {
        return;
    };
    let t = server.to_string();
    let r = run(&[
        "send",
        &t,
        "--dns",
        "test.example +tcp",
        "--expect",
        "A 127.0.0.1",
    ]);
    r.expect_code(0);
    assert!(
        r.stdout_str()
            .contains("test.example.\t0\tIN\tA\t127.0.0.1"),
        "{}",
        r.stdout_str()
    );
    // Truncated over UDP: said on stderr, asked again over TCP, the whole answer shown.
    let r = run(&[
        "send",
        &t,
        "--dns",
        "big.example TXT +noedns",
        "--expect",
        "record-number-29",
    ]);
    r.expect_code(0)
        .expect_stderr(";; Truncated, retrying in TCP mode.");
    let out = r.stdout_str();
    assert_eq!(
        out.matches(";; ->>HEADER<<-").count(),
        1,
        "only the TCP answer: {out}"
    );
    assert!(!out.contains(" tc "), "{out}");
    assert!(
        out.contains("\"record-number-29-with-some-padding-to-grow\""),
        "{out}"
    );
    // +ignore keeps the truncated UDP answer, as dig's.
    let r = run(&["send", &t, "--dns", "big.example TXT +noedns +ignore"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("flags: qr aa tc"),
        "{}",
        r.stdout_str()
    );
    assert!(!r.stderr.contains("retrying in TCP"), "{}", r.stderr);
    // Nothing on TCP: refused, exit 3 naming the address; a listener that never
    // answers: exit 1 after the timeout.
    let udp_only = Server::start(&["listen", "0"]);
    run(&[
        "send",
        &udp_only.addr.to_string(),
        "--dns",
        "x.example +tcp",
    ])
    .expect_code(3)
    .expect_stderr(&format!(
        "connection refused: nothing is listening on tcp://{}",
        udp_only.addr
    ));
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = silent.local_addr().unwrap().to_string();
    run(&["send", &at, "--dns", "x.example +tcp", "-w", "200ms"])
        .expect_code(1)
        .expect_stderr(&format!("no TCP answer from tcp://{at} within 200ms"));
}
