//! PORTS for `dgram scan`: a list of ports and ranges, `53,123,1000-2000`, `1-65535`.

/// The ports `text` names, sorted, each once; an error says which part is wrong.
pub fn parse(text: &str) -> Result<Vec<u16>, String> {
    let mut seen = vec![false; 65_536];
    let mut any = false;
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty part in port list '{text}'"));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (port(a.trim(), text)?, port(b.trim(), text)?),
            None => {
                let p = port(part, text)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!("range {part} runs backwards (write {hi}-{lo})"));
        }
        for p in lo..=hi {
            seen[usize::from(p)] = true;
            any = true;
        }
    }
    if !any {
        return Err("no ports to scan".into());
    }
    Ok((1..=65_535u16).filter(|&p| seen[usize::from(p)]).collect())
}

fn port(s: &str, whole: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p @ 1..=65_535) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is out of 1-65535 (in '{whole}')")),
        Err(_) => Err(format!("'{s}' is not a port number (in '{whole}')")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges_come_out_sorted_and_once() {
        assert_eq!(parse("53").unwrap(), [53]);
        assert_eq!(
            parse("123,53, 53,1000-1002").unwrap(),
            [53, 123, 1000, 1001, 1002]
        );
        assert_eq!(parse("5-5").unwrap(), [5]);
        assert_eq!(parse("65534-65535").unwrap(), [65_534, 65_535]);
        let all = parse("1-65535").unwrap();
        assert_eq!((all.len(), all[0], all[65_534]), (65_535, 1, 65_535));
    }

    #[test]
    fn what_is_not_a_port_list_says_which_part() {
        for (bad, says) in [
            ("", "empty part"),
            ("53,", "empty part"),
            ("0", "out of 1-65535"),
            ("65536", "out of 1-65535"),
            ("1-70000", "out of 1-65535"),
            ("20-10", "runs backwards (write 10-20)"),
            ("http", "'http' is not a port number"),
            ("1-2-3", "is not a port number"),
            ("-5", "is not a port number"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
