//! The address a redirected connection was really sent to.
//!
//! When `ferry-proxy init`'s nat rules `REDIRECT` a connection to the
//! proxy, the socket's local address becomes the proxy's listener and the
//! kernel's connection tracking keeps the original one. Linux hands it back
//! through `getsockopt(SOL_IP, SO_ORIGINAL_DST)` (IPv4) and
//! `getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)` (IPv6), as a `sockaddr_in` /
//! `sockaddr_in6`. A connection that was not redirected has no original
//! destination of its own: without connection tracking the call fails with
//! `ENOENT`; with it (every Kubernetes node, where kube-proxy loads it) the
//! kernel answers with the connection's own local address. [`original_dst`]
//! reports both as [`std::io::ErrorKind::NotFound`], so no caller ever takes
//! its own listener for a destination and dials itself.
//!
//! This is the only module of the crate with `unsafe`: the standard library
//! and tokio have no safe wrapper for this option. The unsafe part is two
//! `getsockopt` calls on a borrowed, open file descriptor into a zeroed
//! buffer of the exact size the kernel is told about; decoding the buffer is
//! safe code ([`decode_v4`], [`decode_v6`]), tested on its own.
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

/// The original destination of `socket`, a connection accepted from a
/// listener that iptables redirected to. `local` is the socket's local
/// address and picks the address family to ask about. A connection that was
/// not redirected is [`io::ErrorKind::NotFound`].
pub fn original_dst(socket: &impl AsFd, local: SocketAddr) -> io::Result<SocketAddr> {
    let orig = match local {
        SocketAddr::V4(_) => {
            let raw: libc::sockaddr_in = getsockopt(socket, libc::SOL_IP, libc::SO_ORIGINAL_DST)?;
            decode_v4(&raw)
        }
        SocketAddr::V6(_) => {
            let raw: libc::sockaddr_in6 =
                getsockopt(socket, libc::SOL_IPV6, libc::IP6T_SO_ORIGINAL_DST)?;
            decode_v6(&raw)
        }
    }?;
    if orig == local {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "connection was not redirected (its original destination is its own address)",
        ));
    }
    Ok(orig)
}

/// A `sockaddr_in` (network byte order fields) as a socket address.
pub fn decode_v4(raw: &libc::sockaddr_in) -> io::Result<SocketAddr> {
    if i32::from(raw.sin_family) != libc::AF_INET {
        return Err(unexpected_family(raw.sin_family));
    }
    let ip = Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr));
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(raw.sin_port),
    )))
}

/// A `sockaddr_in6` (network byte order fields) as a socket address.
pub fn decode_v6(raw: &libc::sockaddr_in6) -> io::Result<SocketAddr> {
    if i32::from(raw.sin6_family) != libc::AF_INET6 {
        return Err(unexpected_family(raw.sin6_family));
    }
    Ok(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(raw.sin6_addr.s6_addr),
        u16::from_be(raw.sin6_port),
        u32::from_be(raw.sin6_flowinfo),
        raw.sin6_scope_id,
    )))
}

fn unexpected_family(family: libc::sa_family_t) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("original destination has address family {family}"),
    )
}

/// `getsockopt(fd, level, name)` into a `T` the kernel fills completely.
fn getsockopt<T: Copy>(socket: &impl AsFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the duration of the borrow; the
    // kernel writes at most `len` bytes into `value`, which is `len` bytes
    // long, and updates `len` to what it wrote.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size_of::<T>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("original destination has {len} bytes"),
        ));
    }
    // SAFETY: zero-initialised, then fully written by the kernel; `T` is a
    // plain C struct for which every bit pattern is valid.
    Ok(unsafe { value.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_network_byte_order() {
        // SAFETY: plain C struct, all zeroes is valid.
        let mut v4: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        v4.sin_family = libc::AF_INET as libc::sa_family_t;
        v4.sin_port = 9080u16.to_be();
        v4.sin_addr.s_addr = u32::from(Ipv4Addr::new(10, 96, 0, 12)).to_be();
        assert_eq!(decode_v4(&v4).unwrap(), "10.96.0.12:9080".parse().unwrap());
        v4.sin_family = libc::AF_INET6 as libc::sa_family_t;
        assert!(decode_v4(&v4).is_err());

        // SAFETY: as above.
        let mut v6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        v6.sin6_port = 443u16.to_be();
        v6.sin6_addr.s6_addr = "fd00::12".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(decode_v6(&v6).unwrap(), "[fd00::12]:443".parse().unwrap());
    }

    #[test]
    fn a_connection_that_was_not_redirected_has_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let error = original_dst(&server, server.local_addr().unwrap()).unwrap_err();
        // With connection tracking loaded (as on this machine once any nat
        // rule exists) the kernel answers with the socket's own address,
        // which is not a redirect; without it, ENOENT, or ENOPROTOOPT while
        // no conntrack module is loaded at all.
        assert!(
            error.kind() == io::ErrorKind::NotFound
                || error.raw_os_error() == Some(libc::ENOPROTOOPT),
            "{error}"
        );
    }
}
