//! What a start of dgram loads, seen from outside: the shared libraries its process
//! maps. On linux-gnu the unwinder is linked into the binary (`build.rs`), so a running
//! dgram maps libc and the loader and nothing else: loading `libgcc_s.so.1` was about
//! a tenth of a one-datagram `send` (its speed is the benchmark's, `bench/`).

use std::collections::BTreeSet;
use std::process::Command;

use crate::harness::{skip, Server};

/// Whether the C compiler that links dgram has `libgcc_eh.a` (what `build.rs` links
/// in place of `libgcc_s.so.1`).
fn compiler_has_libgcc_eh() -> bool {
    Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().starts_with('/'))
        .unwrap_or(false)
}

#[test]
fn a_running_dgram_maps_only_libc_and_the_loader() {
    let test = "a_running_dgram_maps_only_libc_and_the_loader";
    if !compiler_has_libgcc_eh() {
        return skip(test, "cc has no libgcc_eh.a, so dgram links libgcc_s.so.1");
    }
    let server = Server::start(&["listen", "127.0.0.1:0"]);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.guard.child.id()))
        .expect("read the maps of the running dgram");
    let libraries: BTreeSet<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.contains(".so"))
        .map(|path| path.rsplit('/').next().unwrap_or(path))
        .collect();
    assert!(
        libraries.iter().any(|lib| lib.starts_with("libc.so")),
        "dgram is still linked dynamically against libc: {libraries:?}"
    );
    let others: Vec<_> = libraries
        .iter()
        .filter(|lib| !lib.starts_with("libc.so") && !lib.starts_with("ld-linux"))
        .collect();
    assert!(others.is_empty(), "libraries besides libc: {others:?}");
}
