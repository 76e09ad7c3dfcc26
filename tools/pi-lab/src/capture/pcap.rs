//! The classic pcap format as `tcpdump -w -` streams it: a 24-byte file
//! header (its magic says the byte order and whether timestamps are in
//! micro- or nanoseconds), then a 16-byte header before every packet.

use std::io::{self, Read};

const MAGIC_MICROS: u32 = 0xA1B2_C3D4;
const MAGIC_NANOS: u32 = 0xA1B2_3C4D;

/// Larger than any snap length tcpdump uses: a bigger record means the
/// stream is not what it claims.
const MAX_RECORD: u32 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("the stream ended before the pcap file header")]
    NoHeader,
    #[error("not a pcap stream (magic {0:#010x})")]
    BadMagic(u32),
    #[error("a packet record of {0} bytes: the stream is corrupt")]
    Oversized(u32),
    #[error("the stream ended inside a packet")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    big_endian: bool,
    /// Timestamps' fractions are nanoseconds (else microseconds).
    pub nanos: bool,
    pub snaplen: u32,
    /// LINKTYPE_* (the low 16 bits of the header's field).
    pub linktype: u16,
}

impl Header {
    /// pcapng's `if_tsresol` for these timestamps.
    pub fn tsresol(&self) -> u8 {
        if self.nanos { 9 } else { 6 }
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let b = [b[0], b[1], b[2], b[3]];
        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }
}

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Seconds and fraction as one count in the header's resolution.
    pub timestamp: u64,
    pub original_len: u32,
    pub data: Vec<u8>,
}

pub fn read_header(r: &mut impl Read) -> Result<Header, PcapError> {
    let mut b = [0u8; 24];
    if !read_full(r, &mut b)? {
        return Err(PcapError::NoHeader);
    }
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let (big_endian, nanos) = match magic {
        MAGIC_MICROS => (false, false),
        MAGIC_NANOS => (false, true),
        m if m.swap_bytes() == MAGIC_MICROS => (true, false),
        m if m.swap_bytes() == MAGIC_NANOS => (true, true),
        m => return Err(PcapError::BadMagic(m)),
    };
    let mut header = Header { big_endian, nanos, snaplen: 0, linktype: 0 };
    header.snaplen = header.u32(&b[16..20]);
    header.linktype = (header.u32(&b[20..24]) & 0xffff) as u16;
    Ok(header)
}

/// The next packet; `None` where the stream ends cleanly between packets.
pub fn read_record(r: &mut impl Read, header: &Header) -> Result<Option<Record>, PcapError> {
    let mut b = [0u8; 16];
    if !read_full(r, &mut b)? {
        return Ok(None);
    }
    let (seconds, fraction) = (header.u32(&b[0..4]), header.u32(&b[4..8]));
    let captured = header.u32(&b[8..12]);
    if captured > MAX_RECORD {
        return Err(PcapError::Oversized(captured));
    }
    let mut data = vec![0u8; captured as usize];
    if !read_full(r, &mut data)? && captured > 0 {
        return Err(PcapError::Truncated);
    }
    let per_second: u64 = if header.nanos { 1_000_000_000 } else { 1_000_000 };
    Ok(Some(Record {
        timestamp: u64::from(seconds) * per_second + u64::from(fraction),
        original_len: header.u32(&b[12..16]),
        data,
    }))
}

/// Fill `buf`: true when filled, false at EOF before its first byte, an
/// error at EOF inside it.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, PcapError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(PcapError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream as tcpdump writes it on a little-endian machine.
    fn stream(magic: u32, packets: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(magic.to_le_bytes());
        b.extend([2, 0, 4, 0]);
        b.extend([0; 8]);
        b.extend(262_144u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        for (s, f, data) in packets {
            for v in [*s, *f, data.len() as u32, data.len() as u32 + 10] {
                b.extend(v.to_le_bytes());
            }
            b.extend(*data);
        }
        b
    }

    #[test]
    fn a_tcpdump_stream_reads_packet_by_packet() {
        let bytes = stream(MAGIC_MICROS, &[(10, 5, b"abc"), (11, 0, b"")]);
        let mut r = &bytes[..];
        let header = read_header(&mut r).unwrap();
        assert_eq!((header.linktype, header.snaplen, header.tsresol()), (1, 262_144, 6));
        let first = read_record(&mut r, &header).unwrap().unwrap();
        assert_eq!(
            first,
            Record { timestamp: 10_000_005, original_len: 13, data: b"abc".to_vec() }
        );
        assert_eq!(read_record(&mut r, &header).unwrap().unwrap().timestamp, 11_000_000);
        assert!(read_record(&mut r, &header).unwrap().is_none());
    }

    #[test]
    fn nanosecond_and_big_endian_streams_are_understood() {
        let bytes = stream(MAGIC_NANOS, &[(1, 2, b"x")]);
        let mut r = &bytes[..];
        let header = read_header(&mut r).unwrap();
        assert_eq!(header.tsresol(), 9);
        assert_eq!(read_record(&mut r, &header).unwrap().unwrap().timestamp, 1_000_000_002);
        let mut be = MAGIC_MICROS.to_be_bytes().to_vec();
        be.extend([0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 1]);
        let header = read_header(&mut &be[..]).unwrap();
        assert_eq!((header.linktype, header.snaplen), (1, 64));
    }

    #[test]
    fn a_broken_stream_is_an_error() {
        assert!(matches!(read_header(&mut &b""[..]), Err(PcapError::NoHeader)));
        assert!(matches!(read_header(&mut &[0u8; 24][..]), Err(PcapError::BadMagic(0))));
        let bytes = stream(MAGIC_MICROS, &[(1, 2, b"abcdef")]);
        let mut r = &bytes[..bytes.len() - 2];
        let header = read_header(&mut r).unwrap();
        assert!(matches!(read_record(&mut r, &header), Err(PcapError::Truncated)));
    }
}
