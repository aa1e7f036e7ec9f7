//! The arguments of the servers that bind one address: `listen` and `echo`.

use std::time::Duration;

use clap::Args;

use super::common::{parse_probability, parse_rate, ServerOpts};
use crate::units::parse_duration;

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub server: ServerOpts,
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerOpts,

    /// Replies per second per source (default: off on loopback, 1000 elsewhere); bursts of twice that
    #[arg(long, value_name = "PPS", value_parser = parse_rate, help_heading = "Safety")]
    pub rate_limit: Option<f64>,
    /// No per-source rate limit, even on a non-loopback address
    #[arg(long, conflicts_with = "rate_limit", help_heading = "Safety")]
    pub no_rate_limit: bool,
    /// At most N sources tracked by the rate limit (memory stays bounded)
    #[arg(long, value_name = "N", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(2..=10_000_000), help_heading = "Safety")]
    pub max_sources: u64,

    /// Drop each reply with probability P (0.05 or 5%)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub drop: f64,
    /// Delay every reply by DUR (a timer queue: other replies are not held up)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Impairment")]
    pub delay: Option<Duration>,
    /// Vary each reply's delay uniformly within ± DUR
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Impairment")]
    pub jitter: Option<Duration>,
    /// Send a reply twice with probability P
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub duplicate: f64,
    /// Hold a reply back until the next one has gone, with probability P (at most 100 ms)
    #[arg(long, value_name = "P", value_parser = parse_probability, default_value = "0", help_heading = "Impairment")]
    pub reorder: f64,
    /// Seed of the impairment decisions: the same seed and input give the same decisions
    #[arg(long, value_name = "N", help_heading = "Impairment")]
    pub seed: Option<u64>,
}
