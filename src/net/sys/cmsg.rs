//! Control messages (cmsg(3)) read from the bytes the kernel filled: an iterator that
//! checks every length with integers before it forms a slice, so a short or malformed
//! buffer ends the walk instead of reading past it. Pure code on byte slices: its tests
//! run under Miri.

use std::mem;
use std::net::IpAddr;

/// `CMSG_ALIGN`: cmsg headers and data are aligned to `size_t` on Linux.
const fn align(len: usize) -> usize {
    let a = mem::size_of::<usize>();
    (len + a - 1) & !(a - 1)
}

/// The header's size, and where the data starts (`CMSG_DATA`).
const HEADER: usize = mem::size_of::<libc::cmsghdr>();
const DATA: usize = align(HEADER);

/// One control message: its level and type, and its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmsg<'a> {
    pub level: i32,
    pub kind: i32,
    pub data: &'a [u8],
}

/// The control messages of `buf` (the first `msg_controllen` bytes of a control
/// buffer), in order; the walk stops at the first header that does not fit.
pub fn cmsgs(buf: &[u8]) -> impl Iterator<Item = Cmsg<'_>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(off..)?;
        if rest.len() < HEADER {
            return None;
        }
        // SAFETY: HEADER bytes lie inside `rest` (checked above); cmsghdr is plain old
        // data, read unaligned.
        let hdr = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast::<libc::cmsghdr>()) };
        let len = hdr.cmsg_len as usize;
        if len < DATA || len > rest.len() {
            return None;
        }
        off = off.checked_add(align(len))?;
        Some(Cmsg {
            level: hdr.cmsg_level,
            kind: hdr.cmsg_type,
            data: &rest[DATA..len],
        })
    })
}

/// Types whose every bit pattern is a valid value, so they may be read from bytes.
///
/// # Safety
/// Only for C structs and integers with no padding-dependent invariants.
pub unsafe trait Plain: Copy {}
// SAFETY: integers and C structs of integers.
unsafe impl Plain for libc::c_int {}
unsafe impl Plain for libc::in_pktinfo {}
unsafe impl Plain for libc::in6_pktinfo {}
unsafe impl Plain for libc::sock_extended_err {}
unsafe impl Plain for libc::timespec {}

/// A `T` read from the start of `data`, if `data` holds one.
pub fn read<T: Plain>(data: &[u8]) -> Option<T> {
    if data.len() < mem::size_of::<T>() {
        return None;
    }
    // SAFETY: size_of::<T>() bytes lie inside `data` (checked above), and every bit
    // pattern is a T (`Plain`); the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// An `IP_RECVERR` / `IPV6_RECVERR` message's data: the extended error, and the address
/// that follows it (`SO_EE_OFFENDER`) when it is there and not unspecified.
pub fn extended_error(data: &[u8]) -> Option<(libc::sock_extended_err, Option<IpAddr>)> {
    let ee = read::<libc::sock_extended_err>(data)?;
    let rest = &data[mem::size_of::<libc::sock_extended_err>()..];
    let offender = (rest.len() >= mem::size_of::<libc::sockaddr_in>())
        .then(|| {
            let mut storage = super::empty_storage();
            let n = rest.len().min(mem::size_of::<libc::sockaddr_storage>());
            // SAFETY: n bytes lie inside `rest` and inside `storage` (n is at most its
            // size); sockaddr_storage is plain old data.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    rest.as_ptr(),
                    (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                    n,
                )
            };
            super::sockaddr_to_std(&storage).map(|a| a.ip())
        })
        .flatten()
        .filter(|ip| !ip.is_unspecified());
    Some((ee, offender))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control buffer (8-byte aligned, as the kernel's) holding the given messages.
    fn buffer(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(level, kind, data) in msgs {
            let mut hdr: libc::cmsghdr = unsafe { mem::zeroed() };
            hdr.cmsg_len = (DATA + data.len()) as _;
            hdr.cmsg_level = level;
            hdr.cmsg_type = kind;
            // SAFETY: cmsghdr is plain old data; its bytes are read as they are.
            let bytes = unsafe {
                std::slice::from_raw_parts((&hdr as *const libc::cmsghdr).cast::<u8>(), HEADER)
            };
            out.extend_from_slice(bytes);
            out.resize(out.len() + DATA - HEADER, 0);
            out.extend_from_slice(data);
            out.resize(align(out.len()), 0);
        }
        out
    }

    fn extended(errno: u32, origin: u8, kind: u8, code: u8, offender: Option<[u8; 4]>) -> Vec<u8> {
        let mut ee: libc::sock_extended_err = unsafe { mem::zeroed() };
        ee.ee_errno = errno;
        ee.ee_origin = origin;
        ee.ee_type = kind;
        ee.ee_code = code;
        // SAFETY: plain old data.
        let mut data = unsafe {
            std::slice::from_raw_parts(
                (&ee as *const libc::sock_extended_err).cast::<u8>(),
                mem::size_of::<libc::sock_extended_err>(),
            )
        }
        .to_vec();
        if let Some(ip) = offender {
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as _;
            sin.sin_addr.s_addr = u32::from_ne_bytes(ip);
            // SAFETY: plain old data.
            data.extend_from_slice(unsafe {
                std::slice::from_raw_parts(
                    (&sin as *const libc::sockaddr_in).cast::<u8>(),
                    mem::size_of::<libc::sockaddr_in>(),
                )
            });
        }
        data
    }

    #[test]
    fn every_message_is_read_in_order_with_its_data() {
        let seg = 1400i32.to_ne_bytes();
        let buf = buffer(&[(libc::SOL_UDP, libc::UDP_GRO, &seg), (1, 2, b"abcde")]);
        let all: Vec<Cmsg<'_>> = cmsgs(&buf).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].level, all[0].kind), (libc::SOL_UDP, libc::UDP_GRO));
        assert_eq!(read::<libc::c_int>(all[0].data), Some(1400));
        assert_eq!(all[1].data, b"abcde");
        assert_eq!(read::<libc::c_int>(b"abc"), None, "too short for an int");
    }

    #[test]
    fn a_buffer_cut_anywhere_yields_only_whole_messages() {
        let buf = buffer(&[(1, 1, b"12345678"), (2, 2, b"abcdefgh")]);
        let whole = cmsgs(&buf).count();
        assert_eq!(whole, 2);
        for cut in 0..buf.len() {
            let got: Vec<Cmsg<'_>> = cmsgs(&buf[..cut]).collect();
            assert!(got.len() < 2, "cut at {cut}");
            for c in got {
                assert_eq!(c.data, b"12345678");
            }
        }
    }

    #[test]
    fn lengths_that_lie_end_the_walk() {
        // cmsg_len larger than the buffer, smaller than a header, and zero.
        for lie in [10_000usize, HEADER - 1, 0] {
            let mut buf = buffer(&[(1, 1, b"12345678")]);
            buf[..mem::size_of::<usize>()].copy_from_slice(&lie.to_ne_bytes());
            assert_eq!(cmsgs(&buf).count(), 0, "cmsg_len {lie}");
        }
    }

    #[test]
    fn an_extended_error_with_and_without_its_offender() {
        let data = extended(113, 2, 3, 1, Some([192, 0, 2, 1]));
        let (ee, offender) = extended_error(&data).unwrap();
        assert_eq!(
            (ee.ee_errno, ee.ee_origin, ee.ee_type, ee.ee_code),
            (113, 2, 3, 1)
        );
        assert_eq!(offender, Some("192.0.2.1".parse().unwrap()));
        // Cut inside the offender: the error, no address.
        let cut = &data[..data.len() - 1];
        assert_eq!(extended_error(cut).unwrap().1, None);
        let (_, none) = extended_error(&extended(111, 2, 3, 3, None)).unwrap();
        assert_eq!(none, None);
        // An unspecified offender is no offender.
        let zero = extended(111, 2, 3, 3, Some([0, 0, 0, 0]));
        assert_eq!(extended_error(&zero).unwrap().1, None);
        assert!(
            extended_error(&data[..4]).is_none(),
            "shorter than the error"
        );
    }
}
