//! Just enough netlink for the exporter: a raw socket, message building and
//! parsing of `nlmsghdr` / `rtattr`-style attributes (shared by rtnetlink
//! link dumps and nfnetlink_log).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;

/// A netlink socket of one protocol (`NETLINK_ROUTE`, `NETLINK_NETFILTER`),
/// bound with a kernel-chosen port id, in the network namespace of the
/// thread that opens it.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

impl NetlinkSocket {
    pub fn open(protocol: i32) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NetlinkSocket { fd })
    }

    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zeroed (pid 0) addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and addr are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One read; `WouldBlock`/`TimedOut` when the receive timeout passes.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    pub fn set_recv_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv =
            libc::timeval { tv_sec: timeout.as_secs() as _, tv_usec: timeout.subsec_micros() as _ };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    pub fn set_recv_buffer(&self, bytes: i32) -> io::Result<()> {
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes)
    }

    fn setsockopt<T>(&self, level: i32, name: i32, value: &T) -> io::Result<()> {
        // SAFETY: value points to a live T of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

/// Builds one netlink message: header, fixed family header, attributes.
#[derive(Debug)]
pub struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    pub fn new(msg_type: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in by finish
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        MessageBuilder { buf }
    }

    /// Raw bytes (a family header such as `ifinfomsg` or `nfgenmsg`).
    pub fn bytes(mut self, data: &[u8]) -> Self {
        self.buf.extend_from_slice(data);
        align(&mut self.buf);
        self
    }

    pub fn attr(mut self, attr_type: u16, payload: &[u8]) -> Self {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        align(&mut self.buf);
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn align(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn align_len(len: usize) -> usize {
    (len + 3) & !3
}

/// One message read from a netlink socket.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte `nlmsghdr`.
    pub payload: &'a [u8],
}

impl Message<'_> {
    /// For `NLMSG_ERROR`: the (negative) errno, 0 for an acknowledgement.
    pub fn error_code(&self) -> Option<i32> {
        (self.msg_type == NLMSG_ERROR).then(|| read_i32_ne(self.payload, 0).unwrap_or(-libc::EIO))
    }
}

/// The messages in one buffer read from a socket; stops at the first
/// malformed header rather than trusting its length.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = read_u32_ne(rest, 0)? as usize;
        if len < 16 || len > rest.len() {
            return None;
        }
        let msg = Message {
            msg_type: read_u16_ne(rest, 4)?,
            flags: read_u16_ne(rest, 6)?,
            seq: read_u32_ne(rest, 8)?,
            payload: &rest[16..len],
        };
        rest = &rest[align_len(len).min(rest.len())..];
        Some(msg)
    })
}

/// `(type, payload)` of each attribute; the nested/byte-order flag bits of
/// the type are masked off.
pub fn attributes(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = read_u16_ne(rest, 0)? as usize;
        if len < 4 || len > rest.len() {
            return None;
        }
        let kind = read_u16_ne(rest, 2)? & 0x3fff;
        let payload = &rest[4..len];
        rest = &rest[align_len(len).min(rest.len())..];
        Some((kind, payload))
    })
}

pub fn read_u16_ne(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

pub fn read_u32_ne(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_i32_ne(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_u64_ne(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

pub fn read_u16_be(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

pub fn read_u32_be(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_messages_parse_back() {
        let msg =
            MessageBuilder::new(18, NLM_F_REQUEST, 7).bytes(&[1, 2]).attr(3, b"eth1\0").finish();
        assert_eq!(msg.len(), 16 + 4 + 12);
        let parsed: Vec<_> = messages(&msg).collect();
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].msg_type, parsed[0].seq), (18, 7));
        let attrs: Vec<_> = attributes(&parsed[0].payload[4..]).collect();
        assert_eq!(attrs, vec![(3, &b"eth1\0"[..])]);
    }

    #[test]
    fn truncated_input_yields_nothing() {
        let msg = MessageBuilder::new(18, 0, 1).attr(3, b"abcd").finish();
        assert_eq!(messages(&msg[..msg.len() - 1]).count(), 0);
        assert_eq!(attributes(&[8, 0, 1, 0, 1]).count(), 0);
    }
}
