//! A small blocking rtnetlink client: send one request, collect the replies.
//!
//! The agent needs only request/response on NETLINK_ROUTE, so a socket and a
//! sequence number do; no async runtime.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

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
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// One rtnetlink socket in the current network namespace.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors without the echoed request, with the kernel's explanation.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // Big dumps (many FDB entries) arrive in several datagrams; a
        // generous receive buffer avoids ENOBUFS.
        // Best effort: qemu-user, for one, does not emulate it.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Netlink { socket, seq: 0 })
    }

    /// A dump request (`RTM_GET*` with NLM_F_DUMP): every object of a kind.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
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
    pub fn change(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NetlinkError> {
        self.request(msg, flags | NLM_F_ACK).map(|_| ())
    }

    /// A single-object get (e.g. RTM_GETLINK by name).
    pub fn get(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.request(msg, 0)
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        self.collect(seq, flags & NLM_F_DUMP == NLM_F_DUMP)
    }

    /// Read replies to `seq` until Done (dumps), an ACK/NACK, or a single
    /// answer to a get.
    fn collect(&self, seq: u32, dump: bool) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&data[offset..])
                        .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Decode("zero-length message".into()));
                }
                offset += len;
                if msg.header.sequence_number != seq {
                    continue; // a late reply to an earlier request
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
