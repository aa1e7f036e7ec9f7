//! The bottom layer: the error vocabulary and the units of the command line (durations,
//! sizes, rates). Uses nothing of the crate; every layer may use it.

pub mod error;
pub mod histogram;
pub mod units;
