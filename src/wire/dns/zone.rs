//! A mock DNS server's records (SPEC §4 listen as a responder): `--dns-answer 'NAME [TTL]
//! TYPE RDATA'` lines and `--dns-zone FILE` of the same lines, and the answer to a query
//! from them: the records asked for (AA, ID, question and RD copied), NOERROR with no
//! answer for a listed name of another type, NXDOMAIN for an unlisted name, FORMERR for
//! a query whose header decodes but the rest does not, and TC when the answer does not
//! fit the requester's size.

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record};

use super::{parse_name, parse_type};

/// A record's TTL when its line gives none.
pub const DEFAULT_TTL: u32 = 60;
/// The size a requester without EDNS can take (RFC 1035 §4.2.1).
const CLASSIC_UDP: usize = 512;

/// The records a mock server answers from.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: Vec<Record>,
}

impl Zone {
    /// Add one `NAME [TTL] TYPE RDATA` line (`test.example 300 A 127.0.0.1`,
    /// `txt.example TXT "hello world"`, `mx.example MX 10 mail.example.`).
    pub fn add_line(&mut self, line: &str) -> Result<(), String> {
        let mut words = line.split_whitespace();
        let name = words
            .next()
            .ok_or("empty record: expected NAME [TTL] TYPE RDATA")?;
        let name = parse_name(name)?;
        let mut word = words
            .next()
            .ok_or("expected [TTL] TYPE RDATA after the name")?;
        let ttl = match word.parse::<u32>() {
            Ok(ttl) => {
                word = words.next().ok_or("expected TYPE RDATA after the TTL")?;
                ttl
            }
            Err(_) => DEFAULT_TTL,
        };
        // An optional class, as zone files write it.
        if word.eq_ignore_ascii_case("IN") {
            word = words.next().ok_or("expected TYPE RDATA after the class")?;
        }
        let record_type = parse_type(word)?;
        let rdata_text = words.collect::<Vec<_>>().join(" ");
        if rdata_text.is_empty() {
            return Err(format!("{word} record for {name} has no data"));
        }
        let rdata = RData::try_from_str(record_type, &rdata_text)
            .map_err(|e| format!("invalid {word} data '{rdata_text}': {e}"))?;
        self.records.push(Record::from_rdata(name, ttl, rdata));
        Ok(())
    }

    /// Add the lines of a zone file: one record per line, `;` starts a comment, blank
    /// lines skipped. An error names its line number.
    pub fn add_file_text(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split(';').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            self.add_line(line)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The reply to `request` over UDP, cut to fit the requester's size with TC set, or
    /// `None` when not even its header decodes (or it is a response itself: a server
    /// never answers an answer).
    pub fn answer(&self, request: &[u8]) -> Option<Vec<u8>> {
        self.reply(request, false)
    }

    /// As [`answer`](Self::answer), over TCP: the whole answer (up to 65,535 bytes), never
    /// TC.
    pub fn answer_over_tcp(&self, request: &[u8]) -> Option<Vec<u8>> {
        self.reply(request, true)
    }

    fn reply(&self, request: &[u8], tcp: bool) -> Option<Vec<u8>> {
        if request.len() < 12 {
            return None;
        }
        let id = u16::from_be_bytes([request[0], request[1]]);
        let is_response = request[2] & 0x80 != 0;
        if is_response {
            return None;
        }
        let query = match Message::from_vec(request) {
            Ok(q) => q,
            Err(_) => {
                let mut formerr = Message::response(id, hickory_proto::op::OpCode::Query);
                formerr.metadata.response_code = ResponseCode::FormErr;
                formerr.metadata.recursion_desired = request[2] & 1 != 0;
                return formerr.to_vec().ok();
            }
        };
        let mut reply = Message::new(id, MessageType::Response, query.metadata.op_code);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.response_code = ResponseCode::NoError;
        let mut known = false;
        for q in &query.queries {
            reply.add_query(q.clone());
            for r in self.records.iter().filter(|r| r.name == *q.name()) {
                known = true;
                if r.record_type() == q.query_type() || q.query_type().is_any() {
                    let mut answer = r.clone();
                    answer.name = q.name().clone();
                    reply.add_answer(answer);
                }
            }
        }
        if !known && !query.queries.is_empty() {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        let limit = match &query.edns {
            Some(edns) => {
                let mut ours = Edns::new();
                ours.set_max_payload(super::DEFAULT_BUFSIZE);
                reply.set_edns(ours);
                usize::from(edns.max_payload()).max(CLASSIC_UDP)
            }
            None => CLASSIC_UDP,
        };
        fit(reply, if tcp { usize::from(u16::MAX) } else { limit })
    }
}

/// Encode `reply`, dropping answers from the end and setting TC until it fits `limit`.
fn fit(mut reply: Message, limit: usize) -> Option<Vec<u8>> {
    loop {
        let bytes = reply.to_vec().ok()?;
        if bytes.len() <= limit || reply.answers.is_empty() {
            return Some(bytes);
        }
        reply.metadata.truncation = true;
        // Cut by about the excess first, then one at a time.
        let per = bytes.len() / reply.answers.len().max(1);
        let excess = (bytes.len() - limit).div_ceil(per.max(1)).max(1);
        let keep = reply.answers.len().saturating_sub(excess);
        reply.answers.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dns::{decode, parse_query, rcode_name};

    fn zone(lines: &[&str]) -> Zone {
        let mut z = Zone::default();
        for l in lines {
            z.add_line(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        z
    }

    fn ask(z: &Zone, query: &str) -> Message {
        let bytes = parse_query(query).unwrap().encode(0xbeef).unwrap();
        decode(&z.answer(&bytes).expect("an answer")).unwrap()
    }

    #[test]
    fn listed_records_are_answered_with_the_question_copied() {
        let z = zone(&[
            "test.example 300 A 127.0.0.1",
            "test.example AAAA ::1",
            "Mixed.Example TXT hello",
        ]);
        let r = ask(&z, "test.example A +norecurse");
        assert_eq!(r.metadata.id, 0xbeef);
        assert!(r.metadata.authoritative && !r.metadata.recursion_desired);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.queries[0].name().to_string(), "test.example.");
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 300);
        assert_eq!(r.answers[0].data.to_string(), "127.0.0.1");
        assert!(ask(&z, "test.example").metadata.recursion_desired);
        let aaaa = ask(&z, "test.example AAAA");
        assert_eq!(aaaa.answers[0].ttl, DEFAULT_TTL);
        // Names match case-insensitively, and the answer carries the name as asked.
        let txt = ask(&z, "mixed.EXAMPLE TXT");
        assert_eq!(txt.answers.len(), 1);
        assert_eq!(txt.answers[0].name.to_string(), "mixed.EXAMPLE.");
    }

    #[test]
    fn other_types_are_nodata_and_other_names_nxdomain() {
        let z = zone(&["test.example A 127.0.0.1"]);
        let nodata = ask(&z, "test.example MX");
        assert_eq!(
            rcode_name(u16::from(nodata.metadata.response_code)),
            "NOERROR"
        );
        assert!(nodata.answers.is_empty());
        let nx = ask(&z, "other.example");
        assert_eq!(rcode_name(u16::from(nx.metadata.response_code)), "NXDOMAIN");
    }

    #[test]
    fn a_header_without_a_message_gets_formerr_and_less_gets_nothing() {
        let z = zone(&["test.example A 127.0.0.1"]);
        let mut broken = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        broken.extend_from_slice(&[0xc0, 200, 0, 1]);
        let r = decode(&z.answer(&broken).unwrap()).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(rcode_name(u16::from(r.metadata.response_code)), "FORMERR");
        assert!(r.metadata.recursion_desired);
        // RD is copied as it was: clear stays clear.
        broken[2] = 0x00;
        let r = decode(&z.answer(&broken).unwrap()).unwrap();
        assert!(!r.metadata.recursion_desired);
        assert_eq!(z.answer(b"short"), None);
        // A bare header (no question) is a message: answered, with no answer.
        let bare = [0x56, 0x78, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        let r = decode(&z.answer(&bare).unwrap()).unwrap();
        assert_eq!(r.metadata.id, 0x5678);
        assert_eq!(rcode_name(u16::from(r.metadata.response_code)), "NOERROR");
        assert!(r.answers.is_empty());
        // A response is never answered.
        let mut response = parse_query("x").unwrap().encode(1).unwrap();
        response[2] |= 0x80;
        assert_eq!(z.answer(&response), None);
    }

    #[test]
    fn an_answer_too_big_for_the_requester_is_cut_with_tc() {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("big.example TXT record-number-{i:02}-padding-padding"))
            .collect();
        let z = zone(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let bytes = parse_query("big.example TXT +noedns")
            .unwrap()
            .encode(5)
            .unwrap();
        let reply = z.answer(&bytes).unwrap();
        assert!(reply.len() <= 512, "{} bytes", reply.len());
        let r = decode(&reply).unwrap();
        assert!(r.metadata.truncation);
        assert!(!r.answers.is_empty() && r.answers.len() < 40);
        // As many as fit, not fewer: one more answer would not.
        let mut more = r.clone();
        more.add_answer(r.answers[0].clone());
        assert!(
            more.to_vec().unwrap().len() > 512,
            "{} answers",
            r.answers.len()
        );
        // With EDNS 4096 all 40 fit, no TC.
        let bytes = parse_query("big.example TXT +bufsize=4096")
            .unwrap()
            .encode(5)
            .unwrap();
        let r = decode(&z.answer(&bytes).unwrap()).unwrap();
        assert_eq!(r.answers.len(), 40);
        assert!(!r.metadata.truncation);
        assert!(r.edns.is_some());
    }

    #[test]
    fn lines_and_files_parse_or_say_where_they_do_not() {
        let mut z = Zone::default();
        assert!(z.is_empty());
        z.add_file_text("; a mock zone\n\ntest.example 30 IN A 10.0.0.1 ; comment\nmx.example MX 10 mail.example.\n")
            .unwrap();
        assert_eq!(z.len(), 2);
        assert!(!z.is_empty());
        let e = z
            .add_file_text("ok.example A 1.2.3.4\nbad.example A not-an-ip\n")
            .unwrap_err();
        assert!(e.starts_with("line 2: invalid A data 'not-an-ip'"), "{e}");
        for (bad, says) in [
            ("", "empty record"),
            ("name.example", "expected [TTL] TYPE"),
            ("name.example 60", "expected TYPE"),
            ("name.example BOGUS x", "'BOGUS'"),
            ("name.example A", "has no data"),
            ("a..b A 1.2.3.4", "empty label"),
        ] {
            let e = Zone::default().add_line(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
