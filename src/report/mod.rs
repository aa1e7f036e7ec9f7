//! What a person sees: the output formats and their buffered writer, the stats
//! summaries, and the progress line. Uses `wire` (to decode what it shows), `net` and
//! `base`.

pub mod output;
pub mod progress;
pub mod scan;
pub mod stats;
pub mod terminals;
