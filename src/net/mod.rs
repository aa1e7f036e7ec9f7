//! The network layer: addresses and interfaces, the socket builder, the receive path,
//! ICMP reports and what a failed send means, and waiting on descriptors and signals.
//! Uses `base` and its own platform layer, [`sys`]; knows nothing of formats or
//! subcommands.

pub mod addr;
pub mod endpoint;
pub mod errors;
pub mod filter;
pub mod icmp;
pub mod iface;
pub mod recv;
pub mod signal;
pub mod socket;
#[allow(unsafe_code)]
pub mod sys;
