//! Read the written ranges back from the card (direct I/O) and compare
//! each range's SHA-256 with what was streamed.

use sha2::{Digest, Sha256};

use super::target::{AlignedBuf, Target, TargetError};
use super::write::{CHUNK, RangeHash};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(
        "read-back of bytes {start}..{end} does not match the image: sha256 {actual}, expected {expected} \
         (bad card or reader?)"
    )]
    Mismatch { start: u64, end: u64, expected: String, actual: String },
    #[error("interrupted (Ctrl-C) while reading back")]
    Interrupted,
}

/// Check every range; `on_read` gets the bytes of each read (for progress).
pub fn verify(
    target: &mut Target,
    hashes: &[RangeHash],
    mut on_read: impl FnMut(u64),
) -> Result<(), VerifyError> {
    let mut buf = AlignedBuf::new(CHUNK);
    for range in hashes {
        let mut sha256 = Sha256::new();
        let mut pos = range.start;
        while pos < range.end {
            let len = (range.end - pos).min(CHUNK as u64) as usize;
            if super::interrupted() {
                return Err(VerifyError::Interrupted);
            }
            let slice = &mut buf.as_mut_slice()[..len];
            target.read_at(pos, slice)?;
            sha256.update(&*slice);
            on_read(len as u64);
            pos += len as u64;
        }
        let actual: [u8; 32] = sha256.finalize().into();
        if actual != range.sha256 {
            return Err(VerifyError::Mismatch {
                start: range.start,
                end: range.end,
                expected: hex::encode(range.sha256),
                actual: hex::encode(actual),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_names_its_range() {
        let tmp = super::super::TestDir::new("verify");
        let dir = tmp.path();
        let path = dir.join("card.img");
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 13) as u8).collect();
        let hash = |s: usize, e: usize| RangeHash {
            start: s as u64,
            end: e as u64,
            sha256: Sha256::digest(&data[s..e]).into(),
        };
        let hashes = vec![hash(0, 4096), hash(1 << 20, (3 << 20) - 100)];
        let mut t = Target::open(&path, Some(data.len() as u64)).unwrap();
        t.write_at(0, &data).unwrap();
        t.sync().unwrap();
        let mut read = 0;
        verify(&mut t, &hashes, |n| read += n).unwrap();
        assert_eq!(read, 4096 + (2 << 20) - 100);

        t.write_at(2 << 20, &[0xff]).unwrap();
        t.sync().unwrap();
        let err = verify(&mut t, &hashes, |_| {}).unwrap_err().to_string();
        assert!(err.contains("bytes 1048576..3145628 does not match"), "{err}");
    }
}
