//! The agent's one netlink stack: a blocking socket of one protocol that
//! sends typed requests and collects typed replies, with a receive timeout
//! on every read, DUMP_INTR retries and the kernel's extended ACK text.
//!
//! The reconciler and the sFlow link counters speak rtnetlink
//! (`netlink-packet-route`); packet sampling reads an NFLOG group through
//! the same socket type with a small message type of its own
//! (`sflow::nflog`). No async runtime: request/response and
//! one reader thread are all the agent needs.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// How long the kernel may take to answer one read.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// The kernel refused the request; `errno` is positive (EEXIST = 17),
    /// `message` is the kernel's extended ACK text when it gave one.
    #[error("kernel: {}{}", io::Error::from_raw_os_error(*errno), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel { errno: i32, message: Option<String> },
    #[error("cannot decode the kernel's reply: {0}")]
    Decode(String),
    /// The kernel's tables changed during a dump; ask again.
    #[error("dump interrupted by a concurrent change")]
    Interrupted,
    #[error("the kernel did not answer within {0:?}")]
    Timeout(Duration),
    /// The socket's buffer overflowed: messages were lost (ENOBUFS).
    #[error("messages lost: the netlink socket's buffer overflowed")]
    Overrun,
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The message types a socket can carry.
pub trait Message: NetlinkSerializable + NetlinkDeserializable + Clone + Debug {}
impl<T: NetlinkSerializable + NetlinkDeserializable + Clone + Debug> Message for T {}

/// One netlink socket in the network namespace of the thread that opened
/// it; rtnetlink unless said otherwise.
#[derive(Debug)]
pub struct Netlink<T = RouteNetlinkMessage> {
    socket: Socket,
    seq: u32,
    timeout: Duration,
    messages: PhantomData<T>,
}

impl Netlink<RouteNetlinkMessage> {
    /// rtnetlink, for links, addresses, neighbours and routes.
    pub fn open() -> Result<Self, NetlinkError> {
        Netlink::open_protocol(NETLINK_ROUTE)
    }
}

impl<T: Message> Netlink<T> {
    /// A socket of `protocol` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`).
    pub fn open_protocol(protocol: isize) -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors without the echoed request, with the kernel's explanation.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // Big dumps (many FDB entries) and bursts of sampled packets arrive
        // in several datagrams; a generous receive buffer avoids ENOBUFS.
        // Best effort: qemu-user, for one, does not emulate it.
        let _ = socket.set_rx_buf_sz(1 << 20);
        let mut nl = Netlink { socket, seq: 0, timeout: REPLY_TIMEOUT, messages: PhantomData };
        nl.set_timeout(REPLY_TIMEOUT)?;
        Ok(nl)
    }

    /// Longest wait of any one read from now on.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), NetlinkError> {
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        set_socket_timeout(&self.socket, Timeout::Recv, Some(timeout))
            .map_err(|e| NetlinkError::Socket(e.into()))?;
        self.timeout = timeout;
        Ok(())
    }

    /// A dump request (`RTM_GET*` with NLM_F_DUMP): every object of a kind.
    pub fn dump(&mut self, msg: T) -> Result<Vec<T>, NetlinkError> {
        // A dump racing with a change (FRR installing routes) is marked
        // inconsistent; a few retries get a clean one.
        for _ in 0..3 {
            match self.request(msg.clone(), NLM_F_DUMP) {
                Err(NetlinkError::Interrupted) => continue,
                other => return other,
            }
        }
        self.request(msg, NLM_F_DUMP)
    }

    /// A change request: succeeds when the kernel acknowledges it.
    /// `flags` are the NLM_F_CREATE/EXCL/APPEND/REPLACE bits.
    pub fn change(&mut self, msg: T, flags: u16) -> Result<(), NetlinkError> {
        self.request(msg, flags | NLM_F_ACK).map(|_| ())
    }

    /// A single-object get (e.g. RTM_GETLINK by name).
    pub fn get(&mut self, msg: T) -> Result<Vec<T>, NetlinkError> {
        self.request(msg, 0)
    }

    /// Messages the kernel sends unasked (sampled packets of an NFLOG
    /// group): what one datagram carries, or nothing when none arrived
    /// within the timeout.
    pub fn receive(&mut self) -> Result<Vec<T>, NetlinkError> {
        let data = match self.recv() {
            Err(NetlinkError::Timeout(_)) => return Ok(Vec::new()),
            other => other?,
        };
        let mut out = Vec::new();
        for msg in parse(&data) {
            if let NetlinkPayload::InnerMessage(inner) = msg?.payload {
                out.push(inner);
            }
        }
        Ok(out)
    }

    fn request(&mut self, msg: T, flags: u16) -> Result<Vec<T>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        self.collect(seq, flags & NLM_F_DUMP == NLM_F_DUMP)
    }

    /// One datagram, within the timeout.
    fn recv(&self) -> Result<Vec<u8>, NetlinkError> {
        match self.socket.recv_from_full() {
            Ok((data, _)) => Ok(data),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(NetlinkError::Timeout(self.timeout))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Err(NetlinkError::Overrun),
            Err(e) => Err(NetlinkError::Socket(e)),
        }
    }

    /// Read replies to `seq` until Done (dumps), an ACK/NACK, or a single
    /// answer to a get.
    fn collect(&self, seq: u32, dump: bool) -> Result<Vec<T>, NetlinkError> {
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let data = self.recv()?;
            for msg in parse(&data) {
                let msg = msg?;
                if msg.header.sequence_number != seq {
                    continue; // a late reply to an earlier request, or a packet
                }
                interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(NetlinkError::Kernel {
                                errno: -code.get(),
                                message: ext_ack_message(&e.header),
                            }),
                            None => Ok(out),
                        };
                    }
                    NetlinkPayload::Done(_) if interrupted => {
                        return Err(NetlinkError::Interrupted);
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The messages of one datagram; stops at the first that does not decode.
fn parse<T: Message>(
    data: &[u8],
) -> impl Iterator<Item = Result<NetlinkMessage<T>, NetlinkError>> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= data.len() {
            return None;
        }
        let msg = match NetlinkMessage::<T>::deserialize(&data[offset..]) {
            Ok(msg) => msg,
            Err(e) => {
                offset = data.len();
                return Some(Err(NetlinkError::Decode(e.to_string())));
            }
        };
        let len = msg.header.length as usize;
        if len == 0 {
            offset = data.len();
            return Some(Err(NetlinkError::Decode("zero-length message".into())));
        }
        // Messages are 4-byte aligned within a datagram.
        offset += (len + 3) & !3;
        Some(Ok(msg))
    })
}

/// NLMSGERR_ATTR_MSG from an error's payload: the echoed request header
/// (16 bytes with NETLINK_CAP_ACK), then attributes.
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut attrs = payload.get(16..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &attrs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_nobody_answers_ends_at_the_timeout() {
        let mut nl = Netlink::open().expect("rtnetlink socket");
        nl.set_timeout(Duration::from_millis(100)).expect("SO_RCVTIMEO");
        let started = std::time::Instant::now();
        // Subscribed to nothing, asked nothing: nothing ever arrives.
        assert!(nl.receive().expect("a timeout is not an error").is_empty());
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[test]
    fn links_dump_through_the_typed_stack() {
        let mut nl = Netlink::open().expect("rtnetlink socket");
        let links =
            nl.dump(RouteNetlinkMessage::GetLink(Default::default())).expect("RTM_GETLINK dump");
        assert!(!links.is_empty(), "no links, not even lo");
    }

    #[test]
    fn extended_ack_text_is_found_after_the_echoed_header() {
        let mut payload = vec![0u8; 16];
        let msg = b"VNI 10 already exists\0";
        payload.extend_from_slice(&((4 + msg.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(msg);
        assert_eq!(ext_ack_message(&payload).as_deref(), Some("VNI 10 already exists"));
        assert_eq!(ext_ack_message(&payload[..16]), None);
    }
}
