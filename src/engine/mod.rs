//! The loops every subcommand runs on: the send loop ([`send`]) with its schedule and
//! transmit path. The receive loop and the server around it are still `recv` and
//! `serve` at the top of the crate.

pub mod schedule;
pub mod send;
pub mod transmit;
