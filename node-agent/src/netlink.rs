//! A small blocking rtnetlink client: send one request, collect the replies.
//!
//! The agent needs only request/response on NETLINK_ROUTE, so a socket and a
//! sequence number do; no async runtime.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// The kernel refused the request; `errno` is positive (EEXIST = 17).
    #[error("kernel: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("cannot decode the kernel's reply: {0}")]
    Decode(String),
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno } => Some(*errno),
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
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(code) => Err(NetlinkError::Kernel { errno: -code.get() }),
                            None => Ok(out),
                        };
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
