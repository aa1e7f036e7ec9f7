//! Descriptor-wide settings: non-blocking mode (shared stdio put back as found) and the
//! open-files limit a relay raises.

use std::io;
use std::os::fd::RawFd;

/// Put `fd` in non-blocking mode (`true`) or back; returns whether it was non-blocking
/// before, so a descriptor dgram shares (its stdin and stdout) can be put back as found.
pub fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<bool> {
    // SAFETY: fcntl on a descriptor number; no memory is involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let was = flags & libc::O_NONBLOCK != 0;
    let want = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if want != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(was)
}

/// Raise the soft limit on open descriptors (RLIMIT_NOFILE) to the hard limit, as
/// servers do: a relay holds one or two per session. Returns the soft limit before and
/// after.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, narrower on some systems
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur as u64;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok((before, before));
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: lim is a valid rlimit, read by the kernel.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, lim.rlim_cur as u64))
}
