//! dgram: netcat for datagrams, done right — the library behind the `dgram` binary.
//!
//! The modules are layers, each using only the ones listed after it (a test,
//! `tests/integration/house.rs`, keeps it so):
//!
//! - [`app`]: around the subcommands: error report, exit codes, logging, signals.
//! - [`cmd`]: one recipe per subcommand: arguments → plain config → run.
//! - [`cli`]: the clap types, and the unit parsers they use.
//! - [`send`], [`serve`], [`relay`], [`doctor`]: what each kind of run does (siblings,
//!   which never use each other).
//! - [`report`]: what a person sees: output formats, stats, progress.
//! - [`wire`], [`netem`]: bytes on the wire (codecs, DNS, captures) and what may be done
//!   to traffic on its way; neither knows a socket.
//! - [`net`]: addresses, interfaces, sockets, receiving, ICMP reports, waiting;
//!   [`net::sys`] below it holds the only `unsafe` code.
//! - [`base`]: the error vocabulary and units, used by every layer.
#![deny(unsafe_code)]

pub mod app;
pub mod base;
pub mod cli;
pub mod cmd;
pub mod doctor;
pub mod net;
pub mod netem;
pub mod relay;
pub mod report;
pub mod scan;
pub mod send;
pub mod serve;
pub mod wire;
