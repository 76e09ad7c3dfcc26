//! The image as one stream of bytes, decompressed on the fly.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open image {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "image {path} ends at byte {at} of the decompressed stream, before {expected}: \
         the file is truncated (or the bmap belongs to a bigger image)"
    )]
    Truncated { path: PathBuf, at: u64, expected: u64 },
    #[error(
        "image {path} is longer than the bmap's ImageSize {expected}: the bmap belongs to another image"
    )]
    Longer { path: PathBuf, expected: u64 },
    #[error(
        "cannot read image {path} at decompressed byte {at}: {source} (corrupted or truncated {kind})"
    )]
    Read { path: PathBuf, at: u64, kind: &'static str, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Xz,
    Gzip,
}

impl Compression {
    /// From the file name, as users name them (`.img.zst`, `.img.xz`, `.img.gz`).
    pub fn from_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("zst" | "zstd") => Compression::Zstd,
            Some("xz") => Compression::Xz,
            Some("gz") => Compression::Gzip,
            _ => Compression::None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "image",
            Compression::Zstd => "zstd stream",
            Compression::Xz => "xz stream",
            Compression::Gzip => "gzip stream",
        }
    }
}

/// A `.bmap` beside the image: `X.img.zst` looks for `X.img.zst.bmap`,
/// `X.img.bmap` and `X.bmap`.
pub fn find_bmap(image: &Path) -> Option<PathBuf> {
    let name = image.file_name()?.to_str()?;
    let mut stems = vec![name.to_string()];
    let mut stem = name;
    while let Some((s, _)) = stem.rsplit_once('.') {
        stems.push(s.to_string());
        stem = s;
    }
    stems.into_iter().map(|s| image.with_file_name(format!("{s}.bmap"))).find(|p| p.is_file())
}

/// Sequential reader over the decompressed image. A raw image is seekable,
/// so unmapped ranges are skipped without reading them.
pub struct Source {
    path: PathBuf,
    compression: Compression,
    reader: Box<dyn Read + Send>,
    raw: Option<File>,
    pos: u64,
    /// Size of a raw image; `None` for a compressed one.
    pub raw_size: Option<u64>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("path", &self.path).field("pos", &self.pos).finish()
    }
}

impl Source {
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        let open_err = |source| SourceError::Open { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(open_err)?;
        let compression = Compression::from_path(path);
        let buffered = |f: File| io::BufReader::with_capacity(1 << 20, f);
        let (reader, raw, raw_size): (Box<dyn Read + Send>, _, _) = match compression {
            Compression::None => {
                let size = file.metadata().map_err(open_err)?.len();
                let clone = file.try_clone().map_err(open_err)?;
                (Box::new(file), Some(clone), Some(size))
            }
            Compression::Zstd => {
                let mut decoder = zstd::Decoder::with_buffer(buffered(file)).map_err(open_err)?;
                // Pi images are made with --long; allow its window.
                decoder.window_log_max(31).map_err(open_err)?;
                (Box::new(decoder), None, None)
            }
            Compression::Xz => {
                (Box::new(liblzma::read::XzDecoder::new_multi_decoder(buffered(file))), None, None)
            }
            Compression::Gzip => {
                (Box::new(flate2::read::MultiGzDecoder::new(buffered(file))), None, None)
            }
        };
        Ok(Source { path: path.to_path_buf(), compression, reader, raw, pos: 0, raw_size })
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    fn read_err(&self, source: io::Error) -> SourceError {
        SourceError::Read {
            path: self.path.clone(),
            at: self.pos,
            kind: self.compression.name(),
            source,
        }
    }

    /// Move forward to `offset`, reading and dropping what lies between
    /// when the stream cannot seek.
    pub fn skip_to(&mut self, offset: u64) -> Result<(), SourceError> {
        if offset <= self.pos {
            return Ok(());
        }
        if let Some(file) = &mut self.raw {
            if self.raw_size.is_some_and(|size| offset > size) {
                return Err(self.truncated(offset));
            }
            file.seek(SeekFrom::Start(offset)).map_err(|e| SourceError::Read {
                path: self.path.clone(),
                at: offset,
                kind: "image",
                source: e,
            })?;
            self.pos = offset;
            return Ok(());
        }
        let mut scratch = vec![0u8; 1 << 20];
        while self.pos < offset {
            let want = (offset - self.pos).min(scratch.len() as u64) as usize;
            let got = self.fill(&mut scratch[..want])?;
            if got < want {
                return Err(self.truncated(offset));
            }
        }
        Ok(())
    }

    fn truncated(&self, expected: u64) -> SourceError {
        SourceError::Truncated { path: self.path.clone(), at: self.pos, expected }
    }

    /// Read until `buf` is full or the stream ends; returns bytes read.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let mut done = 0;
        while done < buf.len() {
            match self.reader.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        }
        Ok(done)
    }

    /// Read exactly `buf.len()` bytes or say the image is truncated.
    pub fn read_exact(&mut self, buf: &mut [u8], expected_end: u64) -> Result<(), SourceError> {
        if self.fill(buf)? < buf.len() {
            return Err(self.truncated(expected_end));
        }
        Ok(())
    }

    /// Check that the stream ends exactly at `size`, reading the rest of a
    /// compressed stream so its own checksum (gzip, xz, zstd) is checked.
    pub fn finish(&mut self, size: u64) -> Result<(), SourceError> {
        if let Some(raw) = self.raw_size {
            return match raw.cmp(&size) {
                std::cmp::Ordering::Less => {
                    self.pos = raw;
                    Err(self.truncated(size))
                }
                std::cmp::Ordering::Greater => {
                    Err(SourceError::Longer { path: self.path.clone(), expected: size })
                }
                std::cmp::Ordering::Equal => Ok(()),
            };
        }
        self.skip_to(size)?;
        let mut probe = [0u8; 1];
        if self.fill(&mut probe)? != 0 {
            return Err(SourceError::Longer { path: self.path.clone(), expected: size });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn every_format_yields_the_same_bytes_and_skips() {
        let tmp = super::super::TestDir::new("source-formats");
        let temp = |name: &str| tmp.path().join(name);
        let raw = temp("a.img");
        std::fs::write(&raw, data()).unwrap();
        let zst = temp("a.img.zst");
        std::fs::write(&zst, zstd::encode_all(&data()[..], 3).unwrap()).unwrap();
        let gz = temp("a.img.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let xz = temp("a.img.xz");
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(&data()).unwrap();
        std::fs::write(&xz, enc.finish().unwrap()).unwrap();
        for path in [raw, zst, gz, xz] {
            let mut src = Source::open(&path).unwrap();
            src.skip_to(100_000).unwrap();
            let mut buf = vec![0u8; 1000];
            src.read_exact(&mut buf, 101_000).unwrap();
            assert_eq!(buf, data()[100_000..101_000], "{}", path.display());
            src.finish(300_000).unwrap();
        }
    }

    #[test]
    fn truncated_and_too_long_streams_are_named() {
        let tmp = super::super::TestDir::new("source-truncated");
        let temp = |name: &str| tmp.path().join(name);
        let zst = temp("t.img.zst");
        let full = zstd::encode_all(&data()[..], 3).unwrap();
        std::fs::write(&zst, &full[..full.len() / 2]).unwrap();
        let mut src = Source::open(&zst).unwrap();
        let err = src.finish(300_000).unwrap_err().to_string();
        assert!(err.contains("zstd stream"), "{err}");

        let raw = temp("t.img");
        std::fs::write(&raw, data()).unwrap();
        let err = Source::open(&raw).unwrap().finish(200_000).unwrap_err();
        assert!(matches!(err, SourceError::Longer { .. }), "{err}");
        let err = Source::open(&raw).unwrap().finish(400_000).unwrap_err();
        assert!(matches!(err, SourceError::Truncated { .. }), "{err}");
    }

    #[test]
    fn finds_the_bmap_beside_the_image() {
        let tmp = super::super::TestDir::new("source-bmap");
        let temp = |name: &str| tmp.path().join(name);
        let image = temp("b.img.zst");
        std::fs::write(&image, b"").unwrap();
        assert_eq!(find_bmap(&image), None);
        std::fs::write(temp("b.img.bmap"), b"").unwrap();
        assert_eq!(find_bmap(&image), Some(temp("b.img.bmap")));
    }
}
