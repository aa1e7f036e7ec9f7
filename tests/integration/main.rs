//! One integration-test binary: every test runs the real `dgram` and checks what a user
//! sees (stdout, stderr, exit code, datagrams on the wire), on 127.0.0.1 / ::1 only.

mod corpus;
mod dns;
mod doctor;
mod echo;
mod errors;
mod hardening;
mod harness;
mod icmp;
mod interop;
mod listen;
mod multicast;
mod relay;
mod replay;
mod respond;
mod send;
mod stats;
