//! XDR (RFC 4506) encoding, the wire format of sFlow v5: big-endian 32-bit
//! units, opaque data padded with zeros to a multiple of four bytes.

/// Appends XDR items to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Xdr {
    buf: Vec<u8>,
}

impl Xdr {
    pub fn new() -> Self {
        Xdr { buf: Vec::with_capacity(256) }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// XDR `unsigned hyper`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// XDR `float`: IEEE 754 single precision, big-endian.
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    /// XDR `opaque x[n]`: the bytes, then zeros up to a multiple of four.
    pub fn opaque_fixed(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad(bytes.len());
        self
    }

    /// XDR `opaque x<>`: a length, the bytes, then padding.
    pub fn opaque(&mut self, bytes: &[u8]) -> &mut Self {
        self.u32(len_u32(bytes.len()));
        self.opaque_fixed(bytes)
    }

    /// XDR `string x<max>`: cut to `max` bytes (on a character boundary).
    pub fn string(&mut self, s: &str, max: usize) -> &mut Self {
        self.opaque(truncate_utf8(s, max).as_bytes())
    }

    /// Starts a length-prefixed block (`opaque sample_data<>` and friends):
    /// writes a placeholder length and returns where it is.
    pub fn begin_block(&mut self) -> usize {
        let at = self.buf.len();
        self.u32(0);
        at
    }

    /// Ends the block begun at `at`: fills in the length of what follows it.
    pub fn end_block(&mut self, at: usize) {
        let len = len_u32(self.buf.len() - at - 4);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn pad(&mut self, len: usize) {
        let pad = (4 - len % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
    }
}

/// Lengths in sFlow are u32; everything we encode is far below 4 GiB.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// sFlow `data_format`: enterprise in the top 20 bits, format in the low 12.
pub const fn data_format(enterprise: u32, format: u32) -> u32 {
    (enterprise << 12) | (format & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_is_padded_to_four_bytes() {
        let mut x = Xdr::new();
        x.opaque(b"abcde");
        assert_eq!(x.as_bytes(), &[0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        let mut x = Xdr::new();
        x.opaque(b"abcd");
        assert_eq!(x.as_bytes(), &[0, 0, 0, 4, b'a', b'b', b'c', b'd']);
        let mut x = Xdr::new();
        x.opaque(b"");
        assert_eq!(x.as_bytes(), &[0, 0, 0, 0]);
    }

    #[test]
    fn strings_are_cut_on_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("hello", 64), "hello");
        let mut x = Xdr::new();
        x.string("abcdef", 4);
        assert_eq!(x.as_bytes(), &[0, 0, 0, 4, b'a', b'b', b'c', b'd']);
    }

    #[test]
    fn blocks_record_their_length() {
        let mut x = Xdr::new();
        x.u32(7);
        let at = x.begin_block();
        x.u64(1).u32(2);
        x.end_block(at);
        assert_eq!(&x.as_bytes()[4..8], &[0, 0, 0, 12]);
    }

    #[test]
    fn data_format_packs_enterprise_and_format() {
        assert_eq!(data_format(0, 2000), 2000);
        assert_eq!(data_format(4413, 5), (4413 << 12) | 5);
    }
}
