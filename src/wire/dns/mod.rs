//! DNS on the wire (SPEC §3 `--dns`, §5 `dns`): a query built from dig-like words, any
//! datagram decoded into a message or a reason, and a message shown as dig shows one or
//! as the `dns` object of JSON lines. The wire format is hickory-proto's: no parser here.

use std::fmt::{Display, Write as _};
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

pub mod zone;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use serde::Serialize;
use serde_json::Value;

/// The EDNS(0) buffer size a query advertises unless `+bufsize=N` (the DNS flag day 2020
/// value, which fits a 1280-byte IPv6 path).
pub const DEFAULT_BUFSIZE: u16 = 1232;

/// A query as the dig-like words describe it: `NAME [TYPE] [CLASS] [+FLAG]...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySpec {
    pub name: Name,
    pub record_type: RecordType,
    pub class: DNSClass,
    /// RD, unless `+norecurse`.
    pub recursion_desired: bool,
    /// The EDNS(0) buffer size; `None` with `+noedns`.
    pub edns: Option<u16>,
    /// DO, with `+dnssec`.
    pub dnssec: bool,
    /// CD, with `+cdflag`.
    pub checking_disabled: bool,
    /// `+short`: show only each answer's data, one per line, as `dig +short`.
    pub short: bool,
    /// `+tcp` (`+vc`): ask over TCP from the start.
    pub tcp: bool,
    /// `+ignore`: keep a truncated UDP answer instead of retrying over TCP.
    pub ignore: bool,
}

/// Parse `NAME [TYPE] [CLASS] [+FLAG]...` (`example.com AAAA`, `_sip._udp.example.com SRV`,
/// `example.com TYPE65 +norecurse +dnssec +bufsize=4096 +noedns`). TYPE defaults to A and
/// CLASS to IN; types and classes are case-insensitive; `TYPEn` and `CLASSn` take numbers.
/// `-x ADDR` is dig's reverse lookup: the PTR query for ADDR's `in-addr.arpa` or
/// `ip6.arpa` name.
pub fn parse_query(text: &str) -> Result<QuerySpec, String> {
    let mut words = text.split_whitespace();
    let first = words
        .next()
        .ok_or("empty query: expected NAME [TYPE] [CLASS] [+FLAG]... or -x ADDR")?;
    let (name, record_type) = if first == "-x" {
        let addr = words.next().ok_or("-x needs an address: -x 192.0.2.1")?;
        let ip: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("-x {addr}: not an IPv4 or IPv6 address"))?;
        (Name::from(ip), RecordType::PTR)
    } else {
        (parse_name(first)?, RecordType::A)
    };
    let mut spec = QuerySpec {
        name,
        record_type,
        class: DNSClass::IN,
        recursion_desired: true,
        edns: Some(DEFAULT_BUFSIZE),
        dnssec: false,
        checking_disabled: false,
        short: false,
        tcp: false,
        ignore: false,
    };
    let (mut have_type, mut have_class) = (false, false);
    let mut edns = EdnsWords::default();
    for word in words {
        if let Some(flag) = word.strip_prefix('+') {
            apply_flag(&mut spec, &mut edns, flag)?;
        } else if let (false, Ok(t)) = (have_type, parse_type(word)) {
            spec.record_type = t;
            have_type = true;
        } else if let (false, Ok(c)) = (have_class, parse_class(word)) {
            spec.class = c;
            have_class = true;
        } else {
            return Err(format!(
                "'{word}' is not a DNS type, class or +flag (e.g. A, AAAA, MX, TXT, TYPE65, IN, CH, +norecurse)"
            ));
        }
    }
    // As dig does: +dnssec (the DO bit) and +bufsize=N bring the OPT record back whatever
    // +noedns says, in any order (measured with dig 9.18: ARCOUNT 1, DO set).
    spec.edns = if spec.dnssec || edns.bufsize.is_some() || !edns.off {
        Some(edns.bufsize.unwrap_or(DEFAULT_BUFSIZE))
    } else {
        None
    };
    Ok(spec)
}

/// What the query's words said about EDNS, settled once all are read.
#[derive(Default)]
struct EdnsWords {
    /// `+noedns` (and not `+edns` after it).
    off: bool,
    /// `+bufsize=N`.
    bufsize: Option<u16>,
}

fn apply_flag(spec: &mut QuerySpec, edns: &mut EdnsWords, flag: &str) -> Result<(), String> {
    match flag.to_ascii_lowercase().as_str() {
        "norecurse" | "norec" => spec.recursion_desired = false,
        "recurse" | "rec" => spec.recursion_desired = true,
        "dnssec" => spec.dnssec = true,
        "nodnssec" => spec.dnssec = false,
        "noedns" => edns.off = true,
        "edns" => edns.off = false,
        "cdflag" | "cd" => spec.checking_disabled = true,
        "nocdflag" | "nocd" => spec.checking_disabled = false,
        "short" => spec.short = true,
        "noshort" => spec.short = false,
        "tcp" | "vc" => spec.tcp = true,
        // dig's +notcp only means "start with UDP".
        "notcp" | "novc" => spec.tcp = false,
        "ignore" => spec.ignore = true,
        "noignore" => spec.ignore = false,
        other => match other.strip_prefix("bufsize=") {
            Some(n) => {
                let size: u16 = n
                    .parse()
                    .map_err(|_| format!("+bufsize={n}: expected 0 to 65535"))?;
                edns.bufsize = Some(size);
            }
            None => {
                return Err(format!(
                "unknown flag '+{flag}' (known: +norecurse, +dnssec, +bufsize=N, +noedns, +cdflag, +short, +tcp, +ignore)"
            ))
            }
        },
    }
    Ok(())
}

/// A domain name from the command line or a zone line, checked: no empty label, labels of
/// at most 63 bytes, at most 255 bytes in all on the wire. Relative names are taken as
/// absolute.
pub fn parse_name(text: &str) -> Result<Name, String> {
    if text != "." && (text.starts_with('.') || text.contains("..")) {
        return Err(format!("invalid name '{text}': empty label"));
    }
    // On the wire: a length byte before each label and the root's zero byte at the end.
    let wire = text.trim_end_matches('.').len() + 2;
    if text != "." && wire > 255 {
        return Err(format!(
            "invalid name '{text}': {wire} bytes on the wire, over 255"
        ));
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("invalid name '{text}': {e}"))?;
    name.set_fqdn(true);
    if name.iter().any(|label| label.len() > 63) {
        return Err(format!("invalid name '{text}': a label is over 63 bytes"));
    }
    Ok(name)
}

/// A record type by name (`aaaa`, `MX`) or number (`TYPE65`).
pub fn parse_type(text: &str) -> Result<RecordType, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE") {
        return n
            .parse::<u16>()
            .map(RecordType::from)
            .map_err(|_| format!("invalid type '{text}'"));
    }
    upper
        .parse::<RecordType>()
        .map_err(|_| format!("unknown type '{text}'"))
}

fn parse_class(text: &str) -> Result<DNSClass, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("CLASS") {
        return n
            .parse::<u16>()
            .map(DNSClass::from)
            .map_err(|_| format!("invalid class '{text}'"));
    }
    upper
        .parse::<DNSClass>()
        .map_err(|_| format!("unknown class '{text}'"))
}

impl QuerySpec {
    /// The query message with this ID.
    pub fn message(&self, id: u16) -> Message {
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = self.recursion_desired;
        msg.metadata.checking_disabled = self.checking_disabled;
        let mut query = Query::query(self.name.clone(), self.record_type);
        query.set_query_class(self.class);
        msg.add_query(query);
        if let Some(size) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(size.max(512));
            edns.set_dnssec_ok(self.dnssec);
            msg.set_edns(edns);
        }
        msg
    }

    /// The query's bytes with this ID.
    pub fn encode(&self, id: u16) -> Result<Vec<u8>, String> {
        self.message(id)
            .to_vec()
            .map_err(|e| format!("cannot encode the query: {e}"))
    }
}

/// A random 16-bit message ID (from the standard library's per-process random keys).
pub fn random_id() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::wire::seq::now_ns());
    h.finish() as u16
}

/// Decode one datagram as a DNS message, or say why it is not one.
pub fn decode(bytes: &[u8]) -> Result<Message, String> {
    if bytes.len() < 12 {
        return Err(format!(
            "{} bytes, shorter than a DNS header (12)",
            bytes.len()
        ));
    }
    Message::from_vec(bytes).map_err(|e| e.to_string())
}

/// True when `reply` answers the query `id` asked with `question`: a response with the same
/// ID and the same question (names compared case-insensitively, as RFC 1035 says).
pub fn is_reply_to(reply: &Message, id: u16, question: &Query) -> bool {
    reply.metadata.message_type == MessageType::Response
        && reply.metadata.id == id
        && reply
            .queries
            .first()
            .is_some_and(|q| q.name().eq_case(question.name()) || q.name() == question.name())
        && reply.queries.first().is_some_and(|q| {
            q.query_type() == question.query_type() && q.query_class() == question.query_class()
        })
}

/// The RCODE as dig names it (`NOERROR`, `NXDOMAIN`, ...; `RCODE12` for others), with the
/// EDNS extended bits.
pub fn rcode_name(code: u16) -> String {
    let name = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        n => return format!("RCODE{n}"),
    };
    name.to_string()
}

/// `--expect-rcode`: a name (`NXDOMAIN`, case-insensitive) or a number.
pub fn parse_rcode(text: &str) -> Result<u16, String> {
    if let Ok(n) = text.parse::<u16>() {
        return if n < 4096 {
            Ok(n)
        } else {
            Err(format!("RCODE {n} is out of range (0 to 4095)"))
        };
    }
    let upper = text.to_ascii_uppercase();
    (0..4096)
        .find(|&n| rcode_name(n) == upper)
        .ok_or_else(|| {
            format!("unknown RCODE '{text}' (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, ... or a number)")
        })
}

/// The message's full RCODE (the header's four bits and EDNS's eight more).
pub fn rcode(msg: &Message) -> u16 {
    u16::from(msg.metadata.response_code)
}

/// A record type as dig writes it: its mnemonic, or `TYPEn`.
fn type_name(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}

fn class_name(c: DNSClass) -> String {
    match c {
        DNSClass::Unknown(n) => format!("CLASS{n}"),
        DNSClass::OPT(_) => "OPT".to_string(),
        c => c.to_string(),
    }
}

/// The header flags set, in dig's order.
fn flags(msg: &Message) -> Vec<&'static str> {
    let m = &msg.metadata;
    [
        (m.message_type == MessageType::Response, "qr"),
        (m.authoritative, "aa"),
        (m.truncation, "tc"),
        (m.recursion_desired, "rd"),
        (m.recursion_available, "ra"),
        (m.authentic_data, "ad"),
        (m.checking_disabled, "cd"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// A record's data in presentation form, as dig prints it (RFC 1035 §5.1, RFC 3597):
/// what `dig +short` prints of it. hickory's own text differs for TXT (strings unquoted,
/// run together) and unknown types (base64); those are written here, the rest is
/// hickory's.
pub fn data_text(r: &Record) -> String {
    use hickory_proto::rr::RData;
    match &r.data {
        RData::TXT(txt) => {
            let mut out = String::new();
            for (i, s) in txt.txt_data.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                character_string(s, &mut out);
            }
            out
        }
        RData::Unknown { rdata, .. } => generic_data(&rdata.anything),
        RData::NULL(rdata) => generic_data(&rdata.anything),
        other => other.to_string(),
    }
}

/// A `<character-string>` as dig writes one: in double quotes, `"` and `\` escaped, bytes
/// outside printable ASCII as `\DDD` (three decimal digits).
fn character_string(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

/// RFC 3597's generic form of data dgram has no type for: `\# LEN HEX` (upper-case hex,
/// as dig), `\# 0` when empty.
fn generic_data(bytes: &[u8]) -> String {
    let mut out = format!("\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        for b in bytes {
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

/// Each answer's data, one per line, as `dig +short` prints them.
pub fn write_short(msg: &Message, out: &mut String) {
    for r in &msg.answers {
        out.push_str(&data_text(r));
        out.push('\n');
    }
}

/// A record in presentation form, one line: `example.com. 60 IN A 127.0.0.1`.
pub fn record_line(r: &Record) -> String {
    let mut line = format!(
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        class_name(r.dns_class),
        type_name(r.record_type()),
        data_text(r)
    );
    if r.mdns_cache_flush {
        line.push_str("\t; cache-flush");
    }
    line
}

/// The answer section in presentation form, one record per line, with single spaces:
/// what `--expect TEXT` is matched against (`A 127.0.0.1` matches
/// `example.com. 60 IN A 127.0.0.1`).
pub fn answer_text(msg: &Message) -> String {
    msg.answers
        .iter()
        .map(|r| record_line(r).replace('\t', " "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The line every datagram shown as DNS starts with, decoded or not:
/// `;; 127.0.0.1:53, 57 bytes` (`, rtt 104µs` for replies).
pub fn write_peer_line(peer: impl Display, len: usize, rtt: Option<Duration>, out: &mut String) {
    let _ = write!(out, ";; {peer}, {len} bytes");
    if let Some(rtt) = rtt {
        let _ = write!(out, ", rtt {}", crate::base::units::HumanDuration(rtt));
    }
    out.push('\n');
}

/// Append `msg` as dig shows a message, after a `;; PEER, LEN bytes` line (with the RTT
/// for replies).
pub fn write_dig(
    msg: &Message,
    peer: impl Display,
    len: usize,
    rtt: Option<Duration>,
    out: &mut String,
) {
    write_peer_line(peer, len, rtt, out);
    let m = &msg.metadata;
    let _ = writeln!(
        out,
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        m.op_code,
        rcode_name(rcode(msg)),
        m.id
    );
    let _ = writeln!(
        out,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags(msg).join(" "),
        msg.queries.len(),
        msg.answers.len(),
        msg.authorities.len(),
        // The OPT record is decoded into `edns`; on the wire it is an additional.
        msg.additionals.len() + usize::from(msg.edns.is_some()),
    );
    if m.truncation {
        out.push_str(";; Truncated: the answer did not fit; retry over TCP.\n");
    }
    if let Some(edns) = &msg.edns {
        out.push_str("\n;; OPT PSEUDOSECTION:\n");
        let _ = writeln!(
            out,
            "; EDNS: version: {}, flags:{}; udp: {}",
            edns.version(),
            if edns.flags().dnssec_ok { " do" } else { "" },
            edns.max_payload()
        );
    }
    if !msg.queries.is_empty() {
        out.push_str("\n;; QUESTION SECTION:\n");
        for q in &msg.queries {
            let _ = write!(
                out,
                ";{}\t\t{}\t{}",
                q.name(),
                class_name(q.query_class()),
                type_name(q.query_type())
            );
            if q.mdns_unicast_response() {
                out.push_str("\t; unicast-response");
            }
            out.push('\n');
        }
    }
    for (title, records) in [
        ("ANSWER", &msg.answers),
        ("AUTHORITY", &msg.authorities),
        ("ADDITIONAL", &msg.additionals),
    ] {
        if records.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n;; {title} SECTION:");
        for r in records {
            out.push_str(&record_line(r));
            out.push('\n');
        }
    }
    out.push('\n');
}

/// A record as JSON: `name`, `ttl`, `class`, `type`, `data` (presentation form).
#[derive(Serialize)]
struct RecordJson {
    name: String,
    ttl: u32,
    class: String,
    #[serde(rename = "type")]
    record_type: String,
    data: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cache_flush: bool,
}

impl From<&Record> for RecordJson {
    fn from(r: &Record) -> Self {
        RecordJson {
            name: r.name.to_string(),
            ttl: r.ttl,
            class: class_name(r.dns_class),
            record_type: type_name(r.record_type()),
            data: data_text(r),
            cache_flush: r.mdns_cache_flush,
        }
    }
}

#[derive(Serialize)]
struct QuestionJson {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    class: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unicast_response: bool,
}

#[derive(Serialize)]
struct EdnsJson {
    version: u8,
    udp: u16,
    #[serde(rename = "do")]
    dnssec_ok: bool,
}

/// The `dns` object of JSON lines (SPEC §5), serialized straight from the message
/// (no intermediate `Value`: `listen --dns -f json` runs it per datagram).
#[derive(Serialize)]
pub struct DnsJson {
    id: u16,
    opcode: String,
    rcode: String,
    flags: Vec<&'static str>,
    question: Vec<QuestionJson>,
    answer: Vec<RecordJson>,
    authority: Vec<RecordJson>,
    additional: Vec<RecordJson>,
    edns: Option<EdnsJson>,
}

impl DnsJson {
    /// The object for `msg`.
    pub fn new(msg: &Message) -> Self {
        let m = &msg.metadata;
        let records = |rs: &[Record]| rs.iter().map(RecordJson::from).collect();
        DnsJson {
            id: m.id,
            opcode: m.op_code.to_string(),
            rcode: rcode_name(rcode(msg)),
            flags: flags(msg),
            question: msg
                .queries
                .iter()
                .map(|q| QuestionJson {
                    name: q.name().to_string(),
                    record_type: type_name(q.query_type()),
                    class: class_name(q.query_class()),
                    unicast_response: q.mdns_unicast_response(),
                })
                .collect(),
            answer: records(&msg.answers),
            authority: records(&msg.authorities),
            additional: records(&msg.additionals),
            edns: msg.edns.as_ref().map(|e| EdnsJson {
                version: e.version(),
                udp: e.max_payload(),
                dnssec_ok: e.flags().dnssec_ok,
            }),
        }
    }
}

/// The `dns` object of JSON lines (SPEC §5), as a `Value`.
pub fn to_json(msg: &Message) -> Value {
    serde_json::to_value(DnsJson::new(msg)).expect("a DNS object serializes")
}

#[cfg(test)]
mod tests;
