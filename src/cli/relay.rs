//! `dgram relay`'s arguments.

use std::time::Duration;

use clap::Args;

use super::common::{parse_probability, ServerOpts};
use crate::base::units::{parse_bitrate, parse_bytes, parse_delay, parse_duration};
use crate::netem::dist::Distribution;
use crate::netem::Dir;

/// A value for both directions, or one: `5%`, `up=10%`, `down=50ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Directed<T> {
    /// `None`: both ways; else the one direction named (`up=`, `down=`).
    pub dir: Option<Dir>,
    pub value: T,
}

impl<T: Copy> Directed<T> {
    /// The value for one direction from repeated flags: the last that names it, or the
    /// last for both ways.
    pub fn pick(flags: &[Directed<T>], dir: Dir) -> Option<T> {
        flags
            .iter()
            .rev()
            .find(|d| d.dir.is_none_or(|d| d == dir))
            .map(|d| d.value)
    }
}

fn directed<T>(s: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Directed<T>, String> {
    let (dir, text) = match s.split_once('=') {
        Some(("up", v)) => (Some(Dir::Up), v),
        Some(("down", v)) => (Some(Dir::Down), v),
        Some((other, _)) => return Err(format!("unknown direction '{other}': use up= or down=")),
        None => (None, s),
    };
    Ok(Directed {
        dir,
        value: parse(text)?,
    })
}

fn directed_probability(s: &str) -> Result<Directed<f64>, String> {
    directed(s, parse_probability)
}

fn directed_burst(s: &str) -> Result<Directed<f64>, String> {
    directed(s, super::common::parse_burst)
}

fn directed_mtu(s: &str) -> Result<Directed<usize>, String> {
    directed(s, super::common::parse_mtu)
}

fn directed_distribution(s: &str) -> Result<Directed<Distribution>, String> {
    directed(s, super::common::parse_distribution)
}

fn directed_bitrate(s: &str) -> Result<Directed<f64>, String> {
    directed(s, parse_bitrate)
}

fn directed_queue(s: &str) -> Result<Directed<usize>, String> {
    directed(s, super::common::parse_queue)
}

fn directed_duration(s: &str) -> Result<Directed<Duration>, String> {
    directed(s, parse_delay)
}

#[derive(Debug, Args)]
#[command(mut_arg("addr", |a| a.help("Where clients come from: PORT (means 127.0.0.1:PORT), HOST:PORT, [IPV6]:PORT; tcp://ADDR (each connection a session, datagrams framed); - (one session over stdin and stdout)")))]
pub struct RelayArgs {
    #[command(flatten)]
    pub server: ServerOpts,
    /// Where every client's datagrams go: HOST:PORT, [IPV6]:PORT, or tcp://HOST:PORT (each
    /// session its own TCP connection, datagrams framed by a 2-byte length)
    #[arg(long, value_name = "UPSTREAM", required_unless_present = "to_exec")]
    pub to: Option<String>,
    /// Give each session its own child `/bin/sh -c CMD`, whose stdin and stdout carry its
    /// datagrams framed (e.g. 'ssh host dgram relay - --to 127.0.0.1:53')
    #[arg(long, value_name = "CMD", conflicts_with = "to")]
    pub to_exec: Option<String>,
    /// A session with no traffic either way for DUR ends (its upstream socket closes)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// At most N sessions at once; a new client evicts the longest idle
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_sessions: u64,

    /// A TCP connection up not set up within DUR fails its session [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Streams")]
    pub connect_timeout: Option<Duration>,
    /// Datagrams a session holds while its connection is set up; beyond, dropped and
    /// counted [default: 256]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Streams")]
    pub stream_queue: Option<u64>,
    /// Bytes a stream holds for a peer reading slower than datagrams come; beyond,
    /// dropped and counted [default: 1M]
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Streams")]
    pub stream_buffer: Option<usize>,

    /// Drop with probability P, both ways or one (5%, up=10%, down=0.5; repeatable)
    #[arg(long, value_name = "[DIR=]P", value_parser = directed_probability, help_heading = "Impairment")]
    pub drop: Vec<Directed<f64>>,
    /// Drops come in runs of mean length N (a Gilbert–Elliott chain whose long-run rate is
    /// --drop; 4, up=2.5)
    #[arg(long, value_name = "[DIR=]N", value_parser = directed_burst, help_heading = "Impairment")]
    pub drop_burst: Vec<Directed<f64>>,
    /// Delay by DUR (up=50ms, down=1s; delayed datagrams never hold up others)
    #[arg(long, value_name = "[DIR=]DUR", value_parser = directed_duration, help_heading = "Impairment")]
    pub delay: Vec<Directed<Duration>>,
    /// Vary each delay by up to DUR (evenly within ± DUR unless --delay-distribution says
    /// otherwise)
    #[arg(long, value_name = "[DIR=]DUR", value_parser = directed_duration, help_heading = "Impairment")]
    pub jitter: Vec<Directed<Duration>>,
    /// How delays vary within --jitter: uniform, normal, pareto or paretonormal (netem's
    /// tables; down=pareto)
    #[arg(long, value_name = "[DIR=]NAME", value_parser = directed_distribution, help_heading = "Impairment")]
    pub delay_distribution: Vec<Directed<Distribution>>,
    /// A bottleneck of RATE bits/s (64k, up=10M, 1G; counting 28 bytes of IPv4 or 48 of
    /// IPv6 headers): datagrams leave at that rate in order, waiting in a queue
    #[arg(long, value_name = "[DIR=]RATE", value_parser = directed_bitrate, help_heading = "Impairment")]
    pub bandwidth: Vec<Directed<f64>>,
    /// Datagrams waiting for --bandwidth at most; the next is dropped [default: 1000]
    #[arg(long, value_name = "[DIR=]N", value_parser = directed_queue, help_heading = "Impairment")]
    pub queue: Vec<Directed<usize>>,
    /// Send twice with probability P
    #[arg(long, value_name = "[DIR=]P", value_parser = directed_probability, help_heading = "Impairment")]
    pub duplicate: Vec<Directed<f64>>,
    /// Reorder with probability P: with a delay it goes at once, past the delayed ones
    /// (netem's reorder); with none, it is held until the next one that way has gone
    #[arg(long, value_name = "[DIR=]P", value_parser = directed_probability, help_heading = "Impairment")]
    pub reorder: Vec<Directed<f64>>,
    /// Flip one random bit with probability P (a broken middlebox; 1%, up=10%)
    #[arg(long, value_name = "[DIR=]P", value_parser = directed_probability, help_heading = "Impairment")]
    pub corrupt: Vec<Directed<f64>>,
    /// Drop a datagram whose IP packet would exceed N bytes (payload + 28 on IPv4, 48 on
    /// IPv6; 576, down=1280)
    #[arg(long, value_name = "[DIR=]N", value_parser = directed_mtu, help_heading = "Impairment")]
    pub mtu: Vec<Directed<usize>>,
    /// Seed of the impairment decisions: the same seed and input order, the same decisions
    #[arg(long, value_name = "N", help_heading = "Impairment")]
    pub seed: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_parse_and_the_last_flag_wins() {
        let d = |s| directed_probability(s).unwrap();
        assert_eq!(
            d("5%"),
            Directed {
                dir: None,
                value: 0.05
            }
        );
        assert_eq!(
            d("up=10%"),
            Directed {
                dir: Some(Dir::Up),
                value: 0.1
            }
        );
        assert_eq!(
            d("down=1"),
            Directed {
                dir: Some(Dir::Down),
                value: 1.0
            }
        );
        assert!(directed_probability("sideways=5%")
            .unwrap_err()
            .contains("sideways"));
        assert!(directed_probability("up=2").is_err());
        let flags = [d("5%"), d("down=50%")];
        assert_eq!(Directed::pick(&flags, Dir::Up), Some(0.05));
        assert_eq!(Directed::pick(&flags, Dir::Down), Some(0.5));
        assert_eq!(Directed::pick(&[d("up=1")], Dir::Down), None);
        let ms = directed_duration("down=50ms").unwrap();
        assert_eq!(
            ms,
            Directed {
                dir: Some(Dir::Down),
                value: Duration::from_millis(50)
            }
        );
    }
}
