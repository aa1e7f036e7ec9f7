//! One integration-test binary: every test runs the real `dgram` and checks what a user
//! sees (stdout, stderr, exit code, datagrams on the wire), on 127.0.0.1 / ::1 or inside
//! network namespaces the tests create. The modules that need /proc, namespaces or
//! Linux's socket options are Linux-only.

mod corpus;
mod dns;
#[cfg(target_os = "linux")]
mod doctor;
mod echo;
mod emulation;
mod errors;
mod flags;
#[cfg(target_os = "linux")]
mod hardening;
mod harness;
mod house;
#[cfg(target_os = "linux")]
mod icmp;
mod interop;
mod jitter;
mod listen;
mod multicast;
mod netns;
mod relay;
#[cfg(target_os = "linux")]
mod replay;
mod respond;
mod scan;
mod send;
mod ssh;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod startup;
mod stats;
mod streams;
