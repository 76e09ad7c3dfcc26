//! One decompression stream feeding every target: the feeder reads each
//! mapped range once, checks its checksum once, and hands the same buffers
//! to one writer thread per target through bounded channels.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::source::{Source, SourceError};
use super::target::{AlignedBuf, Target, TargetError};
use crate::bmap::{ByteRange, ChecksumKind};

/// Bytes per message: large enough for full-speed direct I/O.
pub const CHUNK: usize = 4 << 20;
/// The partition table lives here; it is written last.
pub const HEAD: u64 = 1 << 20;
/// Without a bmap, the image is checked in pieces of this size, so a
/// mismatch still names a small range.
const SEGMENT: u64 = 64 << 20;
/// Messages in flight per target (memory is shared between targets).
pub const QUEUE: usize = 8;

/// SHA-256 of one range of the image, as streamed; verify checks the card
/// against these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeHash {
    pub start: u64,
    pub end: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug)]
pub enum Msg {
    Data {
        offset: u64,
        buf: Arc<AlignedBuf>,
    },
    /// The stream was complete and every checksum matched.
    Finish(Arc<Vec<RangeHash>>),
    /// The stream is bad: stop, do not write the partition table.
    Abort(Arc<String>),
}

/// What to read from the image.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The bmap's mapped ranges of an image of `image_size` bytes.
    Mapped { ranges: Vec<ByteRange>, image_size: u64, checksum: Option<ChecksumKind> },
    /// Every byte; the size is unknown for a compressed image without bmap.
    Whole { size: Option<u64> },
}

impl Plan {
    /// Bytes that will be written to each target, if known.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            Plan::Mapped { ranges, .. } => Some(ranges.iter().map(ByteRange::len).sum()),
            Plan::Whole { size } => *size,
        }
    }

    pub fn image_size(&self) -> Option<u64> {
        match self {
            Plan::Mapped { image_size, .. } => Some(*image_size),
            Plan::Whole { size } => *size,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "blocks {first_block}-{last_block} (bytes {start}..{end}) of the image do not match the bmap: \
         their {kind} is {actual}, the bmap says {expected}. The image is corrupted, or the bmap belongs \
         to another image: nothing after these blocks and no partition table was written. Get a good \
         copy of the image (build or download it again, check it with SHA256SUMS) and flash again",
        kind = kind.name()
    )]
    Checksum {
        first_block: u64,
        last_block: u64,
        start: u64,
        end: u64,
        kind: ChecksumKind,
        expected: String,
        actual: String,
    },
    #[error("every target failed; stopped reading the image")]
    NoTargets,
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
}

/// The bmap's own hash of a range, when it is not SHA-256.
enum RangeCheck {
    None,
    Sha256,
    Sha1(Sha1),
}

/// Stream the image once, sending every piece to every live target.
/// Returns the hashes sent with `Finish`, or the error sent with `Abort`.
pub fn feed(
    source: &mut Source,
    plan: &Plan,
    outs: &mut [Option<SyncSender<Msg>>],
) -> Result<Arc<Vec<RangeHash>>, FeedError> {
    let result = match plan {
        Plan::Mapped { ranges, image_size, checksum } => {
            feed_ranges(source, ranges, *checksum, outs)
                .and_then(|h| Ok((h, source.finish(*image_size)?)))
        }
        Plan::Whole { size } => feed_whole(source, *size, outs).map(|h| (h, ())),
    };
    match result {
        Ok((hashes, ())) => {
            let hashes = Arc::new(hashes);
            broadcast(outs, || Msg::Finish(hashes.clone()));
            Ok(hashes)
        }
        Err(err) => {
            let reason = Arc::new(err.to_string());
            broadcast(outs, || Msg::Abort(reason.clone()));
            Err(err)
        }
    }
}

/// Send data to every live target; stop if none is left or on Ctrl-C.
fn send_data(
    outs: &mut [Option<SyncSender<Msg>>],
    offset: u64,
    buf: AlignedBuf,
) -> Result<(), FeedError> {
    if super::interrupted() {
        return Err(FeedError::Interrupted);
    }
    let buf = Arc::new(buf);
    if !broadcast(outs, || Msg::Data { offset, buf: buf.clone() }) {
        return Err(FeedError::NoTargets);
    }
    Ok(())
}

/// Send to every live target; a target whose writer has stopped is dropped.
fn broadcast(outs: &mut [Option<SyncSender<Msg>>], msg: impl Fn() -> Msg) -> bool {
    for out in outs.iter_mut() {
        if let Some(tx) = out
            && tx.send(msg()).is_err()
        {
            *out = None;
        }
    }
    outs.iter().any(Option::is_some)
}

fn feed_ranges(
    source: &mut Source,
    ranges: &[ByteRange],
    kind: Option<ChecksumKind>,
    outs: &mut [Option<SyncSender<Msg>>],
) -> Result<Vec<RangeHash>, FeedError> {
    let mut hashes = Vec::with_capacity(ranges.len());
    for range in ranges {
        source.skip_to(range.start)?;
        let mut sha256 = Sha256::new();
        let mut check = match (kind, &range.checksum) {
            (Some(ChecksumKind::Sha256), Some(_)) => RangeCheck::Sha256,
            (Some(ChecksumKind::Sha1), Some(_)) => RangeCheck::Sha1(Sha1::new()),
            _ => RangeCheck::None,
        };
        let mut pos = range.start;
        while pos < range.end {
            let len = (range.end - pos).min(CHUNK as u64) as usize;
            let mut buf = AlignedBuf::new(len);
            source.read_exact(buf.as_mut_slice(), range.end)?;
            sha256.update(buf.as_slice());
            if let RangeCheck::Sha1(h) = &mut check {
                h.update(buf.as_slice());
            }
            send_data(outs, pos, buf)?;
            pos += len as u64;
        }
        let digest: [u8; 32] = sha256.finalize().into();
        let actual = match check {
            RangeCheck::None => None,
            RangeCheck::Sha256 => Some((ChecksumKind::Sha256, hex::encode(digest))),
            RangeCheck::Sha1(h) => Some((ChecksumKind::Sha1, hex::encode(h.finalize()))),
        };
        if let (Some((kind, actual)), Some(expected)) = (actual, &range.checksum)
            && &actual != expected
        {
            return Err(FeedError::Checksum {
                first_block: range.first_block,
                last_block: range.last_block,
                start: range.start,
                end: range.end,
                kind,
                expected: expected.clone(),
                actual,
            });
        }
        hashes.push(RangeHash { start: range.start, end: range.end, sha256: digest });
    }
    Ok(hashes)
}

fn feed_whole(
    source: &mut Source,
    size: Option<u64>,
    outs: &mut [Option<SyncSender<Msg>>],
) -> Result<Vec<RangeHash>, FeedError> {
    let mut hashes = Vec::new();
    let mut pos = 0u64;
    loop {
        let start = pos;
        let mut sha256 = Sha256::new();
        let seg_end = start + SEGMENT;
        let mut ended = false;
        while pos < seg_end {
            let want = (seg_end - pos).min(CHUNK as u64) as usize;
            let want = size.map_or(want, |s| want.min(s.saturating_sub(pos) as usize));
            if want == 0 {
                ended = true;
                break;
            }
            let mut buf = AlignedBuf::new(want);
            let got = source.fill(buf.as_mut_slice())?;
            if got < want {
                if let Some(s) = size {
                    source.read_exact(&mut [0u8; 1], s)?;
                }
                ended = true;
                if got == 0 {
                    break;
                }
                let mut short = AlignedBuf::new(got);
                short.as_mut_slice().copy_from_slice(&buf.as_slice()[..got]);
                buf = short;
            }
            sha256.update(buf.as_slice());
            send_data(outs, pos, buf)?;
            pos += got as u64;
            if ended {
                break;
            }
        }
        if pos > start {
            hashes.push(RangeHash { start, end: pos, sha256: sha256.finalize().into() });
        }
        if ended {
            return Ok(hashes);
        }
    }
}

/// How far a target got: what a failure leaves on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Nothing was written.
    Untouched,
    /// Old partition table wiped; data partly written.
    Partial,
    /// All data and the partition table are on the card.
    Written,
    /// Read back and matched.
    Verified,
    /// Identity written and read back.
    Identified,
}

impl Stage {
    /// What a user must know about a card that failed at this stage.
    pub fn consequence(self) -> &'static str {
        match self {
            Stage::Untouched => "untouched: nothing was written",
            Stage::Partial => {
                "partially written: partition table not yet written (the old one is wiped), card will not boot; flash it again"
            }
            Stage::Written => {
                "image fully written, but not verified (failed or skipped) and no identity written: flash it again"
            }
            Stage::Verified => {
                "image written and verified, but its identity is missing or wrong: the node will not know who it is"
            }
            Stage::Identified => "complete",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("stopped: {0}")]
    Aborted(String),
    #[error("the image stream stopped before its end")]
    Disconnected,
}

/// Receive the stream and write it, the first MiB last; fsync at the end.
/// `on_write` is called with the bytes of each write (for progress).
pub fn write_target(
    target: &mut Target,
    rx: Receiver<Msg>,
    stage: &mut Stage,
    mut on_write: impl FnMut(u64),
) -> Result<Arc<Vec<RangeHash>>, WriteError> {
    let mut head = AlignedBuf::new(HEAD as usize);
    let mut head_end = 0u64;
    // Wipe the old partition table first: a card that fails half-way must
    // not boot into a mix of old and new data.
    if target.kind == super::target::TargetKind::BlockDevice {
        let len = HEAD.min(target.size) as usize;
        target.write_at(0, &head.as_slice()[..len])?;
    }
    for msg in rx {
        match msg {
            Msg::Data { offset, buf } => {
                let data = buf.as_slice();
                let split = HEAD.saturating_sub(offset).min(data.len() as u64) as usize;
                if split > 0 {
                    head.as_mut_slice()[offset as usize..offset as usize + split]
                        .copy_from_slice(&data[..split]);
                    head_end = head_end.max(offset + split as u64);
                }
                if split < data.len() {
                    *stage = Stage::Partial;
                    target.write_at(offset + split as u64, &data[split..])?;
                }
                on_write(data.len() as u64);
            }
            Msg::Abort(reason) => return Err(WriteError::Aborted(reason.to_string())),
            Msg::Finish(hashes) => {
                // Whole sectors of the head, zeros where the image has none.
                let len = match target.kind {
                    super::target::TargetKind::BlockDevice => HEAD.min(target.size),
                    super::target::TargetKind::RegularFile => head_end.max(HEAD.min(target.size)),
                };
                *stage = Stage::Partial;
                target.write_at(0, &head.as_slice()[..len as usize])?;
                target.sync()?;
                *stage = Stage::Written;
                return Ok(hashes);
            }
        }
    }
    Err(WriteError::Disconnected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn image(dir: &std::path::Path, data: &[u8]) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("img.img");
        std::fs::write(&path, data).unwrap();
        path
    }

    fn ranges_of(data: &[u8], spans: &[(u64, u64)]) -> Vec<ByteRange> {
        spans
            .iter()
            .map(|&(s, e)| ByteRange {
                first_block: s / 4096,
                last_block: (e - 1) / 4096,
                start: s,
                end: e,
                checksum: Some(hex::encode(Sha256::digest(&data[s as usize..e as usize]))),
            })
            .collect()
    }

    #[test]
    fn mapped_ranges_reach_every_target_and_the_head_comes_last() {
        let tmp = super::super::TestDir::new("write");
        let dir = tmp.path();
        let data: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 253) as u8 + 1).collect();
        let path = image(dir, &data);
        let ranges =
            ranges_of(&data, &[(0, 8192), (1 << 20, 5 << 20), ((6 << 20) - 4096, 6 << 20)]);
        let plan = Plan::Mapped {
            ranges: ranges.clone(),
            image_size: data.len() as u64,
            checksum: Some(ChecksumKind::Sha256),
        };
        let mut targets: Vec<Target> = (0..2)
            .map(|i| Target::open(&dir.join(format!("t{i}.img")), plan.image_size()).unwrap())
            .collect();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| sync_channel(QUEUE)).unzip();
        let mut outs: Vec<_> = txs.into_iter().map(Some).collect();
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter_mut()
                .zip(rxs)
                .map(|(t, rx)| {
                    s.spawn(move || {
                        let mut stage = Stage::Untouched;
                        let mut order = Vec::new();
                        let r = write_target(t, rx, &mut stage, |n| order.push(n));
                        (r.map(|h| h.len()), stage)
                    })
                })
                .collect();
            let fed = feed(&mut Source::open(&path).unwrap(), &plan, &mut outs);
            drop(outs);
            assert_eq!(fed.unwrap().len(), 3);
            handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
        });
        for (i, (r, stage)) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap(), 3);
            assert_eq!(stage, Stage::Written);
            targets[i].commit().unwrap();
            let out = std::fs::read(dir.join(format!("t{i}.img"))).unwrap();
            assert_eq!(out.len(), data.len());
            for r in &ranges {
                assert_eq!(
                    out[r.start as usize..r.end as usize],
                    data[r.start as usize..r.end as usize]
                );
            }
            assert!(out[8192..1 << 20].iter().all(|b| *b == 0), "unmapped stays empty");
        }
    }

    #[test]
    fn a_bad_checksum_stops_before_the_partition_table() {
        let tmp = super::super::TestDir::new("write-bad");
        let dir = tmp.path();
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8 + 1).collect();
        let path = image(dir, &data);
        let mut ranges = ranges_of(&data, &[(0, 4096), (2 << 20, 3 << 20)]);
        ranges[1].checksum = Some("0".repeat(64));
        let plan = Plan::Mapped {
            ranges,
            image_size: data.len() as u64,
            checksum: Some(ChecksumKind::Sha256),
        };
        let mut target = Target::open(&dir.join("t.img"), plan.image_size()).unwrap();
        let (tx, rx) = sync_channel(QUEUE);
        let mut outs = vec![Some(tx)];
        let (fed, written, stage) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut stage = Stage::Untouched;
                let r = write_target(&mut target, rx, &mut stage, |_| {});
                (r, stage)
            });
            let fed = feed(&mut Source::open(&path).unwrap(), &plan, &mut outs);
            drop(outs);
            let (r, stage) = h.join().unwrap();
            (fed, r, stage)
        });
        let err = fed.unwrap_err().to_string();
        assert!(
            err.contains(
                "blocks 512-767 (bytes 2097152..3145728) of the image do not match the bmap"
            ),
            "{err}"
        );
        assert!(matches!(written, Err(WriteError::Aborted(_))));
        assert_eq!(stage, Stage::Partial);
        let out = std::fs::read(dir.join(".t.img.pi-lab-partial")).unwrap();
        assert!(out[..4096].iter().all(|b| *b == 0), "the head must not be written");
    }

    #[test]
    fn without_a_bmap_every_byte_is_streamed_in_segments() {
        let tmp = super::super::TestDir::new("write-whole");
        let dir = tmp.path();
        let data: Vec<u8> = (0..(SEGMENT as u32 + 12345)).map(|i| (i % 7) as u8).collect();
        let path = dir.join("w.img.zst");
        std::fs::write(&path, zstd::encode_all(&data[..], 1).unwrap()).unwrap();
        let (tx, rx) = sync_channel(1 << 10);
        let mut outs = vec![Some(tx)];
        let hashes =
            feed(&mut Source::open(&path).unwrap(), &Plan::Whole { size: None }, &mut outs)
                .unwrap();
        assert_eq!(
            hashes.iter().map(|h| (h.start, h.end)).collect::<Vec<_>>(),
            vec![(0, SEGMENT), (SEGMENT, data.len() as u64)]
        );
        assert_eq!(hashes[1].sha256, <[u8; 32]>::from(Sha256::digest(&data[SEGMENT as usize..])));
        drop(outs);
        let total: usize =
            rx.iter().map(|m| if let Msg::Data { buf, .. } = m { buf.len() } else { 0 }).sum();
        assert_eq!(total, data.len());
    }
}
