//! Parsers for the units on the command line: durations (`500ms`, `1.5s`, `2`) and byte
//! sizes (`212992`, `4M`).
//!
//! Written here rather than taken from humantime because SPEC §3 wants fractions
//! (`1.5s`) and bare numbers as seconds, which humantime's parser refuses.

use std::time::Duration;

/// A delay or jitter (`--delay`, `--jitter`): a duration, but a bare number of 10 or
/// more is refused, since nobody means `--delay 50` as fifty seconds (SPEC §3).
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let bare = text.trim();
    if let Ok(n) = bare.parse::<f64>() {
        if n >= 10.0 {
            return Err(format!(
                "'{bare}' would be {bare} seconds: write the unit, {bare}ms or {bare}s"
            ));
        }
    }
    parse_duration(text)
}

/// Parse a duration: a decimal number and an optional unit `ns us ms s m h` (bare = seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(format!(
            "invalid duration '{text}': expected a number and a unit, like 500ms, 2s, 1.5s, 1m"
        ));
    }
    let scale_ns: f64 = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "invalid duration '{text}': unknown unit '{other}' (use ns, us, ms, s, m or h)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}'"))?;
    let nanos = value * scale_ns;
    // A year is plenty for any wait; beyond it Duration math in deadlines could overflow.
    if !nanos.is_finite() || nanos > 365.0 * 86400e9 {
        return Err(format!("invalid duration '{text}': too long"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Parse a byte count: a whole number and an optional binary suffix `K M G` (`KiB`,
/// `KB` too; case does not matter). The one parser behind every size-valued flag; the
/// flags add their own bounds ([`parse_bytes`], `--size`, `--max-size`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "invalid size '{text}': expected bytes, like 1400, 64K, 4M or 1G"
            ))
        }
    };
    if number.is_empty() {
        return Err(format!(
            "invalid size '{text}': expected bytes, like 1400, 64K, 4M or 1G"
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid size '{text}': too large"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size '{text}': too large"))
}

/// Parse a rate in bits per second, decimal as iperf3 and tc count them: a number and an
/// optional `k`, `M` or `G` (`500k`, `10M`, `1.5G`; case does not matter; `bit`, `bps`
/// or `bit/s` may follow). From 1 bit/s to 1 Tbit/s.
pub fn parse_bitrate(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid rate '{text}': expected bits per second, like 64k, 10M or 1G");
    let s = text.trim().to_ascii_lowercase();
    let s = ["bit/s", "bps", "bit"]
        .iter()
        .find_map(|u| s.strip_suffix(u))
        .unwrap_or(&s);
    let (number, factor) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1e3),
        Some('m') => (&s[..s.len() - 1], 1e6),
        Some('g') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    let rate = n * factor;
    if !rate.is_finite() || !(1.0..=1e12).contains(&rate) {
        return Err(format!(
            "invalid rate '{text}': from 1 bit/s to 1T (1000G) bits per second"
        ));
    }
    Ok(rate)
}

/// A rate in bits per second for people, decimal as iperf3 prints it: `950 bit/s`,
/// `64.0 kbit/s`, `8.00 Mbit/s`, `1.00 Gbit/s`.
pub fn human_bitrate(bps: f64) -> String {
    match bps {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.2} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

/// A socket buffer size ([`parse_size`]): at most 2 GiB − 1, as the kernel takes an int.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let n = parse_size(text)?;
    usize::try_from(n)
        .ok()
        .filter(|&v| v <= i32::MAX as usize)
        .ok_or_else(|| format!("invalid size '{text}': at most 2147483647 bytes"))
}

/// Format a duration for people: `850µs`, `12.3ms`, `1.50s`.
pub fn human_duration(d: Duration) -> String {
    HumanDuration(d).to_string()
}

/// [`human_duration`] as a `Display`, written where it goes with no string of its own.
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = self.0.as_secs_f64() * 1e6;
        if us < 1000.0 {
            write!(f, "{us:.0}µs")
        } else if us < 1e6 {
            let ms = us / 1e3;
            if ms.fract() < 1e-9 {
                write!(f, "{ms:.0}ms")
            } else {
                write!(f, "{ms:.1}ms")
            }
        } else {
            write!(f, "{:.2}s", us / 1e6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_are_decimal_bits_per_second() {
        for (text, want) in [
            ("500k", 5e5),
            ("10M", 1e7),
            ("10m", 1e7),
            ("1G", 1e9),
            ("1.5G", 1.5e9),
            ("64000", 64e3),
            ("8Mbit", 8e6),
            ("100 Mbps", 1e8),
            ("2kbit/s", 2e3),
            ("1", 1.0),
        ] {
            assert_eq!(parse_bitrate(text), Ok(want), "{text}");
        }
        for bad in [
            "", "fast", "10X", "0", "-5M", "0.5", "2T", "nan", "infk", "M",
        ] {
            let e = parse_bitrate(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(parse_bitrate("1000G").is_ok());
        assert_eq!(human_bitrate(950.0), "950 bit/s");
        assert_eq!(human_bitrate(64e3), "64.0 kbit/s");
        assert_eq!(human_bitrate(8e6), "8.00 Mbit/s");
        assert_eq!(human_bitrate(999_999.0), "1000.0 kbit/s");
        assert_eq!(human_bitrate(1.25e9), "1.25 Gbit/s");
    }

    #[test]
    fn a_bare_delay_of_ten_or_more_asks_for_its_unit() {
        assert_eq!(parse_delay("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_delay("9.5"), Ok(Duration::from_millis(9500)));
        assert_eq!(parse_delay("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_delay("50"),
            Err("'50' would be 50 seconds: write the unit, 50ms or 50s".to_string())
        );
        assert!(parse_delay("10").is_err());
        assert!(parse_delay("x").is_err());
    }

    #[test]
    fn durations_of_the_spec_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("3"), Ok(ms(3000)));
        assert_eq!(parse_duration("0.25"), Ok(ms(250)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_name_the_input() {
        for bad in [
            "",
            "abc",
            "ms",
            "1.2.3s",
            "5x",
            "-1s",
            "1e9h",
            ".",
            "1 fortnight",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }

    #[test]
    fn byte_sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("212992"), Ok(212_992));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("4T").is_err());
        assert!(parse_bytes("99999999999G").is_err());
        assert!(parse_bytes("2G").unwrap_err().contains("at most"));
    }

    #[test]
    fn sizes_take_the_same_suffixes_without_the_buffer_bound() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("1400"), Ok(1400));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2 MB"), Ok(2 << 20));
        assert_eq!(parse_size("99999999999"), Ok(99_999_999_999));
        for bad in [
            "",
            "K",
            "1.5K",
            "4T",
            "-3",
            "99999999999999999999",
            "99999999999G",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        assert!(parse_size("x").unwrap_err().contains("64K"));
    }

    #[test]
    fn malformed_and_overlong_durations_say_which() {
        for bad in ["", ".", "1.2.3s", "ms"] {
            assert!(
                parse_duration(bad)
                    .unwrap_err()
                    .contains("expected a number and a unit"),
                "{bad}"
            );
        }
        // A year at most: 8,760 hours is one, 8,761 is too long.
        assert_eq!(
            parse_duration("8760h"),
            Ok(Duration::from_secs(8760 * 3600))
        );
        assert!(parse_duration("8761h").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("25h"), Ok(Duration::from_secs(25 * 3600)));
        let huge = "9".repeat(400);
        assert!(parse_duration(&huge).unwrap_err().contains("too long"));
    }

    #[test]
    fn human_durations_switch_units_at_their_boundaries() {
        assert_eq!(human_duration(Duration::from_micros(999)), "999µs");
        assert_eq!(human_duration(Duration::from_millis(1)), "1ms");
        assert_eq!(human_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(human_duration(Duration::from_secs(1)), "1.00s");
        assert_eq!(human_duration(Duration::from_micros(999_999)), "1000.0ms");
    }

    #[test]
    fn human_durations_pick_a_readable_unit() {
        assert_eq!(human_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(human_duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.50s");
        assert_eq!(human_duration(Duration::from_millis(200)), "200ms");
    }
}
