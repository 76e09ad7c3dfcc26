//! pcapng (draft-ietf-opsawg-pcapng), as much as `pi-lab capture` needs:
//! a Section Header Block, one Interface Description Block per captured
//! port (named in `if_name`, with its timestamp resolution in
//! `if_tsresol`) and an Enhanced Packet Block per packet. Written little
//! endian; read in either byte order, skipping blocks it does not know,
//! so a file is checked by reading it back.

use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// One captured port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// What Wireshark shows for it: `leaf1:eth1`.
    pub name: String,
    /// LINKTYPE_*: 1 for Ethernet.
    pub linktype: u16,
    pub snaplen: u32,
    /// `if_tsresol`: timestamps count 10^-n seconds (6: microseconds,
    /// 9: nanoseconds); with the top bit set, 2^-n.
    pub tsresol: u8,
}

/// One packet of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Index of its interface, in the order they were added.
    pub interface: u32,
    /// In units of its interface's resolution since 1970.
    pub timestamp: u64,
    /// Length on the wire; `data` may be cut to the snap length.
    pub original_len: u32,
    pub data: Vec<u8>,
}

/// Writes a section: the header at once, then interfaces and packets.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    interfaces: u32,
}

impl<W: Write> Writer<W> {
    /// A new section; `application` goes into `shb_userappl`.
    pub fn new(mut out: W, application: &str) -> io::Result<Writer<W>> {
        let mut body = Vec::new();
        put32(&mut body, BYTE_ORDER_MAGIC);
        put16(&mut body, 1); // major version
        put16(&mut body, 0); // minor version
        body.extend(u64::MAX.to_le_bytes()); // section length: not given
        put_option(&mut body, SHB_USERAPPL, application.as_bytes());
        put_option(&mut body, OPT_END, &[]);
        write_block(&mut out, SHB, &body)?;
        Ok(Writer { out, interfaces: 0 })
    }

    /// Add an interface; its index for [`Packet::interface`].
    pub fn add_interface(&mut self, interface: &Interface) -> io::Result<u32> {
        let mut body = Vec::new();
        put16(&mut body, interface.linktype);
        put16(&mut body, 0); // reserved
        put32(&mut body, interface.snaplen);
        put_option(&mut body, IF_NAME, interface.name.as_bytes());
        put_option(&mut body, IF_TSRESOL, &[interface.tsresol]);
        put_option(&mut body, OPT_END, &[]);
        write_block(&mut self.out, IDB, &body)?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    pub fn write_packet(&mut self, packet: &Packet) -> io::Result<()> {
        if packet.interface >= self.interfaces {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no interface {} in this section", packet.interface),
            ));
        }
        let captured = u32::try_from(packet.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
        let mut body = Vec::with_capacity(20 + packet.data.len() + 3);
        put32(&mut body, packet.interface);
        put32(&mut body, (packet.timestamp >> 32) as u32);
        put32(&mut body, packet.timestamp as u32);
        put32(&mut body, captured);
        put32(&mut body, packet.original_len.max(captured));
        body.extend(&packet.data);
        pad(&mut body);
        write_block(&mut self.out, EPB, &body)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn put16(buf: &mut Vec<u8>, v: u16) {
    buf.extend(v.to_le_bytes());
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend(v.to_le_bytes());
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn put_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(buf, code);
    put16(buf, value.len() as u16);
    buf.extend(value);
    pad(buf);
}

/// Type, total length, body, total length again.
fn write_block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(body.len() + 12)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block too large"))?;
    let mut block = Vec::with_capacity(body.len() + 12);
    put32(&mut block, kind);
    put32(&mut block, total);
    block.extend(body);
    put32(&mut block, total);
    out.write_all(&block)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not a pcapng file: it does not start with a section header")]
    NotPcapng,
    #[error("block at byte {offset}: {why}")]
    Bad { offset: usize, why: String },
}

/// Everything read from a file, interfaces of all its sections in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub interfaces: Vec<Interface>,
    pub packets: Vec<Packet>,
}

/// Read a whole pcapng file. Packet interface indexes count from the
/// first interface of the file (sections after the first add theirs).
pub fn read(bytes: &[u8]) -> Result<Capture, ReadError> {
    if bytes.len() < 12 || bytes[..4] != SHB.to_le_bytes() {
        return Err(ReadError::NotPcapng);
    }
    let mut capture = Capture::default();
    let mut little = true;
    let mut section_base = 0u32;
    let mut at = 0;
    while at < bytes.len() {
        let bad = |why: String| ReadError::Bad { offset: at, why };
        let header = bytes.get(at..at + 12).ok_or_else(|| bad("cut short".into()))?;
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if kind == SHB {
            little = match &header[8..12] {
                m if *m == BYTE_ORDER_MAGIC.to_le_bytes() => true,
                m if *m == BYTE_ORDER_MAGIC.to_be_bytes() => false,
                _ => return Err(bad("section header without its byte-order magic".into())),
            };
            section_base = capture.interfaces.len() as u32;
        }
        let field = Fields { little };
        let total = field.u32(&header[4..8]) as usize;
        if total < 12 || !total.is_multiple_of(4) || at + total > bytes.len() {
            return Err(bad(format!("length {total} does not fit the file")));
        }
        let block = &bytes[at..at + total];
        if field.u32(&block[total - 4..]) as usize != total {
            return Err(bad("the trailing length differs from the leading one".into()));
        }
        let body = &block[8..total - 4];
        match field.u32(&block[..4]) {
            IDB => capture.interfaces.push(read_idb(field, body).map_err(bad)?),
            EPB => {
                let packet = read_epb(field, body, section_base).map_err(bad)?;
                if packet.interface as usize >= capture.interfaces.len() {
                    return Err(bad(format!("packet of unknown interface {}", packet.interface)));
                }
                capture.packets.push(packet);
            }
            _ => {} // SHB done above; other blocks are not ours to read
        }
        at += total;
    }
    Ok(capture)
}

/// Numbers in the section's byte order.
#[derive(Debug, Clone, Copy)]
struct Fields {
    little: bool,
}

impl Fields {
    fn u16(self, b: &[u8]) -> u16 {
        let b = [b[0], b[1]];
        if self.little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }
    }
}

fn read_idb(field: Fields, body: &[u8]) -> Result<Interface, String> {
    if body.len() < 8 {
        return Err("interface description cut short".into());
    }
    let mut interface = Interface {
        name: String::new(),
        linktype: field.u16(&body[0..2]),
        snaplen: field.u32(&body[4..8]),
        tsresol: 6, // the default when the option is absent
    };
    for (code, value) in options(field, &body[8..])? {
        match code {
            IF_NAME => interface.name = String::from_utf8_lossy(value).into_owned(),
            IF_TSRESOL if value.len() == 1 => interface.tsresol = value[0],
            _ => {}
        }
    }
    Ok(interface)
}

fn read_epb(field: Fields, body: &[u8], base: u32) -> Result<Packet, String> {
    if body.len() < 20 {
        return Err("packet block cut short".into());
    }
    let captured = field.u32(&body[12..16]) as usize;
    let data = body.get(20..20 + captured).ok_or("packet data longer than its block")?;
    Ok(Packet {
        interface: base + field.u32(&body[0..4]),
        timestamp: (u64::from(field.u32(&body[4..8])) << 32) | u64::from(field.u32(&body[8..12])),
        original_len: field.u32(&body[16..20]),
        data: data.to_vec(),
    })
}

/// The options in `bytes` up to `opt_endofopt` (or the end).
fn options(field: Fields, mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let code = field.u16(&bytes[0..2]);
        let len = field.u16(&bytes[2..4]) as usize;
        if code == OPT_END {
            break;
        }
        let padded = 4 + len.next_multiple_of(4);
        let value = bytes.get(4..4 + len).ok_or("option longer than its block")?;
        out.push((code, value));
        bytes = bytes.get(padded..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ethernet(name: &str, tsresol: u8) -> Interface {
        Interface { name: name.into(), linktype: 1, snaplen: 262_144, tsresol }
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut w = Writer::new(Vec::new(), "pi-lab test").unwrap();
        assert_eq!(w.add_interface(&ethernet("leaf1:eth1", 6)).unwrap(), 0);
        assert_eq!(w.add_interface(&ethernet("leaf2:eth1", 9)).unwrap(), 1);
        let packets = [
            Packet {
                interface: 0,
                timestamp: 1_700_000_000_123_456,
                original_len: 5,
                data: vec![1, 2, 3, 4, 5],
            },
            Packet {
                interface: 1,
                timestamp: 1_700_000_000_123_456_789,
                original_len: 1514,
                data: vec![9; 64],
            },
            Packet { interface: 0, timestamp: 1, original_len: 0, data: Vec::new() },
        ];
        for p in &packets {
            w.write_packet(p).unwrap();
        }
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0, "every block is 32-bit aligned");
        let capture = read(&bytes).unwrap();
        assert_eq!(capture.interfaces, [ethernet("leaf1:eth1", 6), ethernet("leaf2:eth1", 9)]);
        assert_eq!(capture.packets, packets);
    }

    #[test]
    fn a_packet_needs_its_interface() {
        let mut w = Writer::new(Vec::new(), "t").unwrap();
        let p = Packet { interface: 0, timestamp: 0, original_len: 1, data: vec![0] };
        assert!(w.write_packet(&p).is_err());
    }

    #[test]
    fn big_endian_files_and_unknown_blocks_are_read() {
        // A big-endian section with one IDB (no options), a custom block
        // (type 0x00000BAD) and one EPB of 2 bytes.
        let mut b = Vec::new();
        let block = |b: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let total = (body.len() + 12) as u32;
            b.extend(kind.to_be_bytes());
            b.extend(total.to_be_bytes());
            b.extend(body);
            b.extend(total.to_be_bytes());
        };
        let mut shb = BYTE_ORDER_MAGIC.to_be_bytes().to_vec();
        shb.extend([0, 1, 0, 0]);
        shb.extend(u64::MAX.to_be_bytes());
        block(&mut b, SHB, &shb);
        block(&mut b, IDB, &[0, 1, 0, 0, 0, 0, 0xff, 0xff]);
        block(&mut b, 0xBAD, &[1, 2, 3, 4]);
        let mut epb = Vec::new();
        for v in [0u32, 0, 7, 2, 2] {
            epb.extend(v.to_be_bytes());
        }
        epb.extend([0xab, 0xcd, 0, 0]);
        block(&mut b, EPB, &epb);
        let capture = read(&b).unwrap();
        assert_eq!(capture.interfaces[0].linktype, 1);
        assert_eq!(capture.interfaces[0].tsresol, 6);
        assert_eq!(capture.packets[0].data, [0xab, 0xcd]);
        assert_eq!(capture.packets[0].timestamp, 7);
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert_eq!(read(b"not a capture"), Err(ReadError::NotPcapng));
        let mut w = Writer::new(Vec::new(), "t").unwrap();
        w.add_interface(&ethernet("x", 6)).unwrap();
        let bytes = w.into_inner();
        for cut in 1..bytes.len() {
            let _ = read(&bytes[..cut]);
        }
        let mut wrong = bytes.clone();
        let last = wrong.len() - 1;
        wrong[last] ^= 0x40;
        assert!(read(&wrong).is_err());
    }
}
