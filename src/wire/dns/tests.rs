//! The DNS codec's tests: queries from words, the wire, matching, rendering, garbage.
use super::*;
use hickory_proto::rr::RData;

#[test]
fn queries_parse_from_dig_words() {
    let q = parse_query("example.com").unwrap();
    assert_eq!(q.name.to_string(), "example.com.");
    assert_eq!((q.record_type, q.class), (RecordType::A, DNSClass::IN));
    assert!(q.recursion_desired);
    assert_eq!(q.edns, Some(1232));
    let q = parse_query("_sip._udp.example.com srv").unwrap();
    assert_eq!(q.record_type, RecordType::SRV);
    let q = parse_query("example.com TYPE65 CH +norecurse +dnssec +bufsize=4096").unwrap();
    assert_eq!(q.record_type, RecordType::HTTPS);
    assert_eq!(q.class, DNSClass::CH);
    assert!(!q.recursion_desired && q.dnssec);
    assert_eq!(q.edns, Some(4096));
    let q = parse_query("example.com type999").unwrap();
    assert_eq!(q.record_type, RecordType::Unknown(999));
    assert_eq!(type_name(q.record_type), "TYPE999");
    assert_eq!(parse_query("x. AAAA +noedns").unwrap().edns, None);
    assert_eq!(parse_query(".  NS").unwrap().name.to_string(), ".");
}

#[test]
fn bad_queries_name_the_word() {
    for (bad, says) in [
        ("", "empty query"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        (&format!("{}.com", "x".repeat(64)), "63"),
        (&format!("{}com", "abcdefghi.".repeat(26)), "255"),
        ("example.com BOGUS", "'BOGUS'"),
        ("example.com +frob", "+frob"),
        ("example.com A AAAA", "'AAAA'"),
        ("example.com +bufsize=70000", "bufsize"),
    ] {
        let err = parse_query(bad).unwrap_err();
        assert!(err.contains(says), "{bad:?}: {err}");
    }
}

#[test]
fn dnssec_and_bufsize_bring_the_opt_record_back_whatever_noedns_says() {
    // guards: the SPEC's own example was refused ("+dnssec needs EDNS").
    let edns = |q: &str| {
        let s = parse_query(q).unwrap();
        (s.edns, s.dnssec)
    };
    assert_eq!(
        edns("example.com TYPE65 +norecurse +dnssec +bufsize=4096 +noedns"),
        (Some(4096), true)
    );
    assert_eq!(edns("example.com +noedns +dnssec"), (Some(1232), true));
    assert_eq!(edns("example.com +bufsize=512 +noedns"), (Some(512), false));
    assert_eq!(edns("example.com +noedns"), (None, false));
    assert_eq!(edns("example.com +noedns +edns"), (Some(1232), false));
    assert_eq!(edns("example.com"), (Some(1232), false));
}

#[test]
fn a_query_round_trips_through_the_wire() {
    let spec = parse_query("Example.COM aaaa +norecurse").unwrap();
    let bytes = spec.encode(0x1234).unwrap();
    assert_eq!(&bytes[..2], &[0x12, 0x34]);
    // RD off: the third byte's low bit.
    assert_eq!(bytes[2] & 1, 0);
    let msg = decode(&bytes).unwrap();
    assert_eq!(msg.metadata.id, 0x1234);
    assert_eq!(msg.queries[0].query_type(), RecordType::AAAA);
    assert_eq!(msg.edns.as_ref().unwrap().max_payload(), 1232);
    let json = to_json(&msg);
    assert_eq!(json["question"][0]["type"], "AAAA");
    assert_eq!(json["edns"]["udp"], 1232);
    assert_eq!(json["flags"], serde_json::json!([]));
    assert!(parse_query("x").unwrap().encode(1).unwrap()[2] & 1 == 1);
}

#[test]
fn replies_match_by_id_and_question() {
    let spec = parse_query("example.com A").unwrap();
    let query = spec.message(7);
    let mut reply = query.clone();
    reply.metadata.message_type = MessageType::Response;
    let question = &query.queries[0];
    assert!(is_reply_to(&reply, 7, question));
    assert!(!is_reply_to(&reply, 8, question));
    assert!(!is_reply_to(&query, 7, question), "a query is no reply");
    let mut other = reply.clone();
    other.queries[0].set_query_type(RecordType::MX);
    assert!(!is_reply_to(&other, 7, question));
    let mut upper = reply.clone();
    upper.queries[0].set_name(Name::from_ascii("EXAMPLE.com.").unwrap());
    assert!(is_reply_to(&upper, 7, question));
}

#[test]
fn answers_show_as_dig_shows_them() {
    let spec = parse_query("example.com A").unwrap();
    let mut msg = spec.message(4660);
    msg.metadata.message_type = MessageType::Response;
    msg.metadata.recursion_available = true;
    msg.add_answer(Record::from_rdata(
        Name::from_ascii("example.com.").unwrap(),
        60,
        RData::A("127.0.0.1".parse().unwrap()),
    ));
    let bytes = msg.to_vec().unwrap();
    let msg = decode(&bytes).unwrap();
    let mut out = String::new();
    let peer: std::net::SocketAddr = "127.0.0.1:53".parse().unwrap();
    write_dig(
        &msg,
        peer,
        bytes.len(),
        Some(Duration::from_micros(1500)),
        &mut out,
    );
    assert!(
        out.starts_with(&format!(
            ";; 127.0.0.1:53, {} bytes, rtt 1.5ms\n",
            bytes.len()
        )),
        "{out}"
    );
    assert!(
        out.contains(";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4660\n"),
        "{out}"
    );
    assert!(
        out.contains(";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n"),
        "{out}"
    );
    assert!(
        out.contains("; EDNS: version: 0, flags:; udp: 1232\n"),
        "{out}"
    );
    assert!(out.contains(";example.com.\t\tIN\tA\n"), "{out}");
    assert!(
        out.contains("example.com.\t60\tIN\tA\t127.0.0.1\n"),
        "{out}"
    );
    assert_eq!(answer_text(&msg), "example.com. 60 IN A 127.0.0.1");
    let json = to_json(&msg);
    assert_eq!(json["answer"][0]["data"], "127.0.0.1");
    assert_eq!(json["answer"][0]["ttl"], 60);
    assert_eq!(json["rcode"], "NOERROR");
    assert_eq!(json["id"], 4660);
}

#[test]
fn rcodes_by_name_and_number() {
    assert_eq!(parse_rcode("NXDOMAIN"), Ok(3));
    assert_eq!(parse_rcode("servfail"), Ok(2));
    assert_eq!(parse_rcode("0"), Ok(0));
    assert_eq!(parse_rcode("RCODE12"), Ok(12));
    assert!(parse_rcode("NOPE").unwrap_err().contains("NOPE"));
    assert!(parse_rcode("5000").is_err());
    // Twelve bits in all (four in the header, eight in EDNS).
    assert_eq!(parse_rcode("4095"), Ok(4095));
    assert!(parse_rcode("4096").unwrap_err().contains("out of range"));
    assert_eq!(rcode_name(5), "REFUSED");
    assert_eq!(rcode_name(99), "RCODE99");
}

#[test]
fn the_fuzz_corpus_replays_without_panics() {
    // guards: every input cargo-fuzz kept for fuzz/fuzz_targets/dns.rs
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/dns");
    let mut decoded = 0;
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("the committed corpus") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(msg) = decode(&bytes) {
            let mut text = String::new();
            write_dig(
                &msg,
                "127.0.0.1:53".parse::<std::net::SocketAddr>().unwrap(),
                bytes.len(),
                None,
                &mut text,
            );
            assert!(text.contains(";; ->>HEADER<<-"));
            let _ = to_json(&msg).to_string();
            decoded += 1;
        }
        n += 1;
    }
    assert!(n >= 10 && decoded >= 5, "{n} files, {decoded} decoded");
}

#[test]
fn garbage_gives_a_reason_not_a_panic() {
    let reason = |bytes: &[u8]| decode(bytes).unwrap_err();
    let header = |qd: u8, an: u8| vec![0, 1, 0x81, 0, 0, qd, 0, an, 0, 0, 0, 0];
    assert_eq!(reason(b""), "0 bytes, shorter than a DNS header (12)");
    assert_eq!(reason(b"hello"), "5 bytes, shorter than a DNS header (12)");
    // A header that claims a question, then nothing; counts larger than the message.
    assert!(reason(&header(1, 0)).contains("end of input"));
    assert!(reason(&[0, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).contains("end of input"));
    // A compression pointer to itself, and one past the end.
    for (ptr, says) in [(12u8, "ptr: 12"), (200, "ptr: 200")] {
        let mut m = header(1, 0);
        m.extend_from_slice(&[0xc0, ptr, 0, 1, 0, 1]);
        let r = reason(&m);
        assert!(
            r.contains("points to data not prior") && r.contains(says),
            "{r}"
        );
    }
    // Records whose length disagrees with their type: an A record of 2 bytes (then
    // more), an AAAA record of 4 (the decoder reads on for 16, past the end); and an A
    // record cut after 2 of its 4 bytes.
    let mut m = header(0, 1);
    m.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1, 0, 0, 0, 120, 0, 2, 127, 0, 0, 1]);
    assert!(reason(&m).contains("rdata length"), "{}", reason(&m));
    let mut m = header(0, 1);
    m.extend_from_slice(&[1, b'x', 0, 0, 28, 0, 1, 0, 0, 0, 120, 0, 4, 127, 0, 0, 1]);
    assert!(reason(&m).contains("end of input"), "{}", reason(&m));
    let mut m = header(0, 1);
    m.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1, 0, 0, 0, 120, 0, 4, 127, 0]);
    assert!(reason(&m).contains("read: 2 expected: 4"), "{}", reason(&m));
    // A record cut inside its fixed fields.
    let mut m = header(0, 1);
    m.extend_from_slice(&[1, b'x', 0, 0, 1, 0]);
    assert!(reason(&m).contains("end of input"), "{}", reason(&m));
}

#[test]
fn a_message_s_rcode_is_read_from_it() {
    for code in [0u16, 3, 5] {
        let mut msg = Message::new(7, MessageType::Response, OpCode::Query);
        msg.metadata.response_code = code.into();
        let back = decode(&msg.to_vec().unwrap()).unwrap();
        assert_eq!(rcode(&back), code);
    }
}

#[test]
fn labels_of_63_bytes_and_names_of_255_are_the_longest() {
    let label = |n: usize| "a".repeat(n);
    assert!(parse_name(&format!("{}.com", label(63))).is_ok());
    let e = parse_name(&format!("{}.com", label(64))).unwrap_err();
    assert!(e.contains("over 63 bytes") || e.contains("label"), "{e}");
    // Four labels of 63, 63, 63 and 61 bytes: 255 bytes on the wire, the most there is.
    let longest = format!("{0}.{0}.{0}.{1}", label(63), label(61));
    assert!(parse_name(&longest).is_ok(), "{longest}");
    let over = format!("{0}.{0}.{0}.{1}", label(63), label(62));
    let e = parse_name(&over).unwrap_err();
    assert!(e.ends_with("': 256 bytes on the wire, over 255"), "{e}");
    assert!(
        parse_name(&format!("{longest}.")).is_ok(),
        "a trailing dot adds nothing"
    );
}

#[test]
fn message_ids_are_drawn_not_fixed() {
    let ids: std::collections::BTreeSet<u16> = (0..32).map(|_| random_id()).collect();
    // 32 draws of 16 bits: all the same only with probability 2^-496.
    assert!(ids.len() > 1, "{ids:?}");
}
