//! One pass over the finished image makes the block map's per-range
//! sha256, the image's own sha256 and the `.img.zst`, each hashed as it is
//! written. Only the mapped ranges are compressed: in chunks, on all cores,
//! each chunk its own zstd frame; a hole becomes a few tiny frames of zeros.
//! A 2 GiB image holding 550 MiB of data costs the compression of 550 MiB.
//! The bytes do not depend on the number of cores: chunk boundaries come
//! from the image alone. Any zstd decoder reads the concatenated frames as
//! one stream (`zstd -d`, bmaptool, `pi-lab flash`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::ImageError;
use super::assemble::data_ranges;
use super::progress::Cancel;
use crate::bmap::{BLOCK_SIZE as BLOCK, BlockRange, Bmap, ChecksumKind};

/// zstd level of the `.img.zst`.
pub const LEVEL: i32 = 6;
/// Data is compressed in frames of this size (and a hole is written as
/// frames of this many zeros).
const CHUNK: u64 = 8 << 20;
/// Holes shorter than this are compressed with the data around them:
/// fewer, larger frames.
const GAP: u64 = 1 << 20;

/// What the pass made.
#[derive(Debug)]
pub struct Packed {
    pub image_sha256: String,
    pub zst_sha256: String,
    pub zst_size: u64,
    /// The `.bmap` file's text.
    pub bmap: String,
    pub mapped_bytes: u64,
}

/// A piece of the image in the order it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Data { offset: u64, len: u64 },
    Zeros { len: u64 },
}

/// Splits the image into data chunks and holes, from its mapped ranges
/// (byte offsets, end exclusive, sorted).
fn pieces(ranges: &[(u64, u64)], size: u64) -> Vec<Piece> {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in ranges {
        match spans.last_mut() {
            Some(last) if s.saturating_sub(last.1) < GAP => last.1 = last.1.max(e),
            _ => spans.push((s, e)),
        }
    }
    let mut out = Vec::new();
    let mut pos = 0;
    for (s, e) in spans {
        if s > pos {
            out.push(Piece::Zeros { len: s - pos });
        }
        let mut off = s;
        while off < e {
            let len = CHUNK.min(e - off);
            out.push(Piece::Data { offset: off, len });
            off += len;
        }
        pos = e;
    }
    if pos < size {
        out.push(Piece::Zeros { len: size - pos });
    }
    out
}

fn compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(LEVEL)?;
    c.include_checksum(true)?;
    Ok(c)
}

/// Frames that decompress to `len` zero bytes.
fn zero_frames(
    len: u64,
    full: &[u8],
    c: &mut zstd::bulk::Compressor<'_>,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..len / CHUNK {
        out.extend_from_slice(full);
    }
    let rest = (len % CHUNK) as usize;
    if rest > 0 {
        out.extend(c.compress(&vec![0u8; rest])?);
    }
    Ok(out)
}

/// Inclusive block ranges `(first, last)` that hold data. The image is
/// assembled sparse, so its holes (SEEK_DATA/SEEK_HOLE) are exactly what
/// no file system wrote.
fn mapped_blocks(img: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in data_ranges(img, len)? {
        let (first, last) = (start / BLOCK, end.div_ceil(BLOCK) - 1);
        match out.last_mut() {
            Some(prev) if prev.1 + 1 >= first => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    Ok(out)
}

/// Reads `img` once; writes `zst`; returns the hashes and the block map.
pub fn pack(img: &Path, zst: &Path, cancel: &Cancel) -> Result<Packed, ImageError> {
    let io = |ctx: &str, p: &Path| {
        let ctx = format!("{ctx} {}", p.display());
        move |e| ImageError::io(ctx, e)
    };
    let file = File::open(img).map_err(io("opening", img))?;
    let size = file.metadata().map_err(io("stat", img))?.len();
    let blocks = mapped_blocks(&file, size).map_err(io("finding data in", img))?;
    let ranges: Vec<(u64, u64)> =
        blocks.iter().map(|&(a, b)| (a * BLOCK, ((b + 1) * BLOCK).min(size))).collect();
    let out = File::create(zst).map_err(io("creating", zst))?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);

    let (job_tx, job_rx) = sync_channel::<(usize, Vec<u8>)>(2 * workers);
    let (frame_tx, frame_rx) = sync_channel::<(usize, Vec<u8>)>(2 * workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rx, tx) = (job_rx.clone(), frame_tx.clone());
            scope.spawn(move || compress_jobs(&rx, &tx));
        }
        let writer = scope.spawn(move || write_frames(frame_rx, out));
        let read = read_pieces(&file, size, &ranges, &job_tx, &frame_tx, cancel, img);
        drop((job_tx, frame_tx));
        let written = writer.join().map_err(|_| ImageError::Step {
            step: "compress",
            message: "the writer thread panicked".into(),
        })?;
        let (image_sha256, hashed) = read?;
        let (zst_sha256, zst_size) = written.map_err(io("writing", zst))?;
        let bmap = Bmap {
            image_size: size,
            block_size: BLOCK,
            checksum: Some(ChecksumKind::Sha256),
            ranges: hashed,
        };
        Ok(Packed {
            image_sha256,
            zst_sha256,
            zst_size,
            bmap: bmap.render(),
            mapped_bytes: bmap.mapped_bytes(),
        })
    })
}

type Hashed = Vec<BlockRange>;

/// The reading side: hashes the whole image and each mapped range, sends
/// data chunks to the compressors and zero frames straight to the writer.
fn read_pieces(
    file: &File,
    size: u64,
    ranges: &[(u64, u64)],
    jobs: &SyncSender<(usize, Vec<u8>)>,
    frames: &SyncSender<(usize, Vec<u8>)>,
    cancel: &Cancel,
    img: &Path,
) -> Result<(String, Hashed), ImageError> {
    let gone = || ImageError::Step { step: "compress", message: "the compressor stopped".into() };
    let mut zc = compressor().map_err(|e| ImageError::io("starting zstd", e))?;
    let full = zc.compress(&vec![0u8; CHUNK as usize]).map_err(|e| ImageError::io("zstd", e))?;
    let zeros = vec![0u8; 1 << 20];
    let mut image = Sha256::new();
    let mut hashed: Hashed = Vec::with_capacity(ranges.len());
    let mut next = 0; // first range not yet finished
    let mut range_hash = Sha256::new();
    for (i, piece) in pieces(ranges, size).into_iter().enumerate() {
        cancel.check()?;
        match piece {
            Piece::Zeros { len } => {
                let mut left = len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    image.update(&zeros[..n]);
                    left -= n as u64;
                }
                let f = zero_frames(len, &full, &mut zc).map_err(|e| ImageError::io("zstd", e))?;
                frames.send((i, f)).map_err(|_| gone())?;
            }
            Piece::Data { offset, len } => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| ImageError::io(format!("reading {}", img.display()), e))?;
                image.update(&buf);
                let end = offset + len;
                while next < ranges.len() && ranges[next].0 < end {
                    let (s, e) = ranges[next];
                    let (a, b) = (s.max(offset), e.min(end));
                    range_hash.update(&buf[(a - offset) as usize..(b - offset) as usize]);
                    if e > end {
                        break;
                    }
                    let done = std::mem::take(&mut range_hash);
                    hashed.push(BlockRange {
                        first: s / BLOCK,
                        last: e.div_ceil(BLOCK) - 1,
                        checksum: Some(hex::encode(done.finalize())),
                    });
                    next += 1;
                }
                jobs.send((i, buf)).map_err(|_| gone())?;
            }
        }
    }
    Ok((hex::encode(image.finalize()), hashed))
}

fn compress_jobs(jobs: &Mutex<Receiver<(usize, Vec<u8>)>>, frames: &SyncSender<(usize, Vec<u8>)>) {
    let Ok(mut c) = compressor() else { return };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((i, data)) = job else { return };
        let Ok(frame) = c.compress(&data) else { return };
        if frames.send((i, frame)).is_err() {
            return;
        }
    }
}

/// Writes frames in order, hashing what it writes.
fn write_frames(frames: Receiver<(usize, Vec<u8>)>, out: File) -> std::io::Result<(String, u64)> {
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut waiting: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut want = 0;
    for (i, frame) in frames {
        waiting.insert(i, frame);
        while let Some(f) = waiting.remove(&want) {
            w.write_all(&f)?;
            h.update(&f);
            size += f.len() as u64;
            want += 1;
        }
    }
    if !waiting.is_empty() {
        return Err(std::io::Error::other("a chunk of the image was never compressed"));
    }
    w.flush()?;
    Ok((hex::encode(h.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn pieces_cover_the_image_and_merge_small_holes() {
        let size = 64 << 20;
        let p = pieces(&[(4096, 8192), (12288, 16384), (20 << 20, 30 << 20)], size);
        let total: u64 = p
            .iter()
            .map(|p| match p {
                Piece::Data { len, .. } | Piece::Zeros { len } => *len,
            })
            .sum();
        assert_eq!(total, size);
        assert_eq!(p[0], Piece::Zeros { len: 4096 });
        assert_eq!(p[1], Piece::Data { offset: 4096, len: 12288 }, "small hole merged");
        assert_eq!(p[3], Piece::Data { offset: 20 << 20, len: CHUNK });
        assert!(matches!(p.last(), Some(Piece::Zeros { .. })));
    }

    #[test]
    fn packed_image_decompresses_and_hashes_match_a_second_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let img = dir.join("a.img");
        let f = File::create(&img).unwrap();
        f.set_len(40 << 20).unwrap();
        let data: Vec<u8> = (0..(9 << 20)).map(|i: u32| (i % 251) as u8).collect();
        f.write_all_at(&data, 1 << 20).unwrap();
        f.write_all_at(b"tail", (40 << 20) - 4096).unwrap();
        drop(f);
        let zst = dir.join("a.img.zst");
        let p = pack(&img, &zst, &Cancel::never()).unwrap();
        let whole = std::fs::read(&img).unwrap();
        assert_eq!(p.image_sha256, hex::encode(Sha256::digest(&whole)));
        let mut unz = Vec::new();
        zstd::Decoder::new(File::open(&zst).unwrap()).unwrap().read_to_end(&mut unz).unwrap();
        assert!(unz == whole, "the .zst must decompress to the image");
        assert_eq!(p.zst_sha256, hex::encode(Sha256::digest(std::fs::read(&zst).unwrap())));
        assert_eq!(p.zst_size, std::fs::metadata(&zst).unwrap().len());
        assert!(p.zst_size < 1 << 20, "holes and the pattern compress: {}", p.zst_size);
        // Per-range hashes as bmaptool computes them, read back by the
        // same reader `pi-lab flash` uses.
        let bmap = Bmap::parse(&p.bmap, &img.with_extension("img.bmap")).unwrap();
        let f = File::open(&img).unwrap();
        let blocks = mapped_blocks(&f, 40 << 20).unwrap();
        assert_eq!(bmap.ranges.len(), blocks.len());
        for (r, (first, last)) in bmap.ranges.iter().zip(blocks) {
            assert_eq!((r.first, r.last), (first, last));
            let bytes = &whole[(first * BLOCK) as usize..((last + 1) * BLOCK) as usize];
            let sum = hex::encode(Sha256::digest(bytes));
            assert_eq!(r.checksum.as_deref(), Some(sum.as_str()), "range {first}-{last}");
        }
        assert!(p.bmap.contains(&format!(
            "<Range chksum=\"{}\">",
            bmap.ranges[0].checksum.as_deref().unwrap()
        )));
    }
}
