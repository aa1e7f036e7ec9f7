//! dgram: netcat for datagrams, done right — the library behind the `dgram` binary.
//!
//! The binary (`src/main.rs`) parses the command line and calls [`cmd::run`]; the fuzz
//! targets and the tests use these modules directly. All `unsafe` code lives in [`sys`].
#![deny(unsafe_code)]

pub mod addr;
pub mod app;
pub mod capture;
pub mod cli;
pub mod cmd;
pub mod codec;
pub mod dns;
pub mod doctor;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod filter;
pub mod icmp;
pub mod iface;
pub mod impair;
pub mod limiter;
pub mod output;
pub mod pacing;
pub mod payload;
pub mod pcap;
pub mod policy;
pub mod progress;
pub mod recv;
pub mod relay;
pub mod reply;
pub mod seq;
pub mod serve;
pub mod signal;
pub mod socket;
pub mod source;
pub mod stats;
#[allow(unsafe_code)]
pub mod sys;
pub mod units;
