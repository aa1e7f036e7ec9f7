//! The send loop ([`run`]) and its parts: payload sources, the schedule and pacing, the
//! transmit path and the replies. Uses `report`, `wire`, `netem`, `net` and `base`.

pub mod replies;
pub mod report;
pub mod run;
pub mod schedule;
pub mod source;
pub mod tcp;
pub mod transmit;
