//! Link the unwinder statically on linux-gnu, as `gcc -static-libgcc` does: std asks the
//! linker for `-lgcc_s`, and here that finds `libgcc_eh.a` (the same unwinder, as an
//! archive) instead of `libgcc_s.so.1`.
//!
//! Why: loading `libgcc_s.so.1` cost about 100 µs of every start, measured on the 2-core
//! VM this project is benchmarked on (a C sender took 0.60 ms, the same sender linked
//! against libgcc_s 0.70 ms): mapping one more library, and its constructor
//! `__cpu_indicator_init`, whose `cpuid` instructions trap to the hypervisor. For a
//! program whose common life is "send one datagram and exit" (under 1 ms), that was a
//! tenth of it. dgram needs the unwinder only for a panic's backtrace (release builds
//! abort on panic; the tests unwind), and both work the same from the archive.
//!
//! How: the linker looks in each search directory in turn for `libgcc_s.so`, then
//! `libgcc_s.a`. A directory of ours, searched before the compiler's own, holds only
//! `libgcc_s.a`, a copy of the C compiler's `libgcc_eh.a`.
//!
//! Fallback: where that archive is not found (another compiler or libc, another OS) or
//! the build is `crt-static` (rustc then links `libgcc_eh.a` itself), nothing changes and
//! the binary loads `libgcc_s.so.1` as before. `DGRAM_DYNAMIC_LIBGCC=1` asks for that
//! explicitly.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DGRAM_DYNAMIC_LIBGCC");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if wants_static_libgcc() {
        if let Some(dir) = static_libgcc_dir() {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
    }
}

/// A linux-gnu build that links libgcc dynamically unless told otherwise.
fn wants_static_libgcc() -> bool {
    let cfg = |key: &str| env::var(key).unwrap_or_default();
    let crt_static = cfg("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    cfg("CARGO_CFG_TARGET_OS") == "linux"
        && cfg("CARGO_CFG_TARGET_ENV") == "gnu"
        && !crt_static
        && env::var_os("DGRAM_DYNAMIC_LIBGCC").is_none()
}

/// `OUT_DIR/static-libgcc`, holding `libgcc_s.a`: a copy of the linker driver's
/// `libgcc_eh.a` (a copy, not a symlink, so a build host without Unix links works too);
/// `None` when there is no such archive.
fn static_libgcc_dir() -> Option<PathBuf> {
    let archive = libgcc_eh()?;
    let dir = PathBuf::from(env::var_os("OUT_DIR")?).join("static-libgcc");
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::copy(&archive, dir.join("libgcc_s.a")).ok()?;
    Some(dir)
}

/// Where the C compiler that links the binary (rustc's default `cc`, or the linker Cargo
/// was configured with) keeps `libgcc_eh.a`.
fn libgcc_eh() -> Option<PathBuf> {
    let driver = env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(driver)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    // A compiler that does not know the file prints the bare name back.
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
