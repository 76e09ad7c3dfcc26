//! Block maps in bmaptool's XML format: which blocks of an image hold data,
//! and a checksum per range of blocks. `image build` writes them (format
//! 2.0, sha256, each range's checksum in its `chksum` attribute, as
//! bmaptool names it); `flash` reads 1.3, 1.4 and 2.0, as bmaptool does.
//! One module for both, so what pi-lab writes is what it (and bmaptool)
//! reads.

use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The block size pi-lab writes (bmaptool's default too).
pub const BLOCK_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    #[error("cannot read bmap {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: PathBuf, line: u32, column: u32, message: String },
    #[error(
        "{path}: the bmap's own checksum does not match (file says {expected}, content gives {actual}); \
         the bmap is corrupted or was edited: make it again with `bmaptool create`"
    )]
    FileChecksum { path: PathBuf, expected: String, actual: String },
}

/// Hash used for the ranges and the bmap file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    Sha1,
    Sha256,
}

impl ChecksumKind {
    /// The name in `<ChecksumType>`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha256 => "sha256",
        }
    }

    pub fn hex_len(self) -> usize {
        match self {
            ChecksumKind::Sha1 => 40,
            ChecksumKind::Sha256 => 64,
        }
    }

    /// Hex digest of `data` with this hash.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            ChecksumKind::Sha1 => hex::encode(Sha1::digest(data)),
            ChecksumKind::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// A run of mapped blocks, `first..=last`, as written in the bmap, with
/// the checksum of its bytes (lower-case hex) when the bmap has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRange {
    pub first: u64,
    pub last: u64,
    pub checksum: Option<String>,
}

/// The same run in bytes of the image, clipped to the image size; the
/// block numbers stay, to name the range as the bmap (and bmaptool) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteRange {
    pub first_block: u64,
    pub last_block: u64,
    pub start: u64,
    pub end: u64,
    pub checksum: Option<String>,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A block map. `checksum` is `None` only for bmaps older than format 1.3,
/// which had no checksum type; a range may lack its checksum in any format
/// (`bmaptool create --no-checksum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    pub image_size: u64,
    pub block_size: u64,
    pub checksum: Option<ChecksumKind>,
    pub ranges: Vec<BlockRange>,
}

impl Bmap {
    pub fn load(path: &Path) -> Result<Bmap, BmapError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BmapError::Read { path: path.to_path_buf(), source })?;
        Bmap::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Bmap, BmapError> {
        Parser { text, path }.parse()
    }

    pub fn blocks_count(&self) -> u64 {
        self.image_size.div_ceil(self.block_size)
    }

    pub fn mapped_blocks(&self) -> u64 {
        self.ranges.iter().map(|r| r.last - r.first + 1).sum()
    }

    /// Whether any range carries a checksum (else only the read-back of
    /// the card checks what was written).
    pub fn has_range_checksums(&self) -> bool {
        self.checksum.is_some() && self.ranges.iter().any(|r| r.checksum.is_some())
    }

    /// Mapped ranges in bytes, in image order.
    pub fn byte_ranges(&self) -> Vec<ByteRange> {
        self.ranges
            .iter()
            .map(|r| ByteRange {
                first_block: r.first,
                last_block: r.last,
                start: r.first * self.block_size,
                end: ((r.last + 1) * self.block_size).min(self.image_size),
                checksum: r.checksum.clone(),
            })
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// Bytes of data the image really holds.
    pub fn mapped_bytes(&self) -> u64 {
        self.byte_ranges().iter().map(ByteRange::len).sum()
    }

    /// One past the last mapped byte: the least a target must hold.
    pub fn mapped_end(&self) -> u64 {
        self.byte_ranges().last().map_or(0, |r| r.end)
    }

    /// The XML in format 2.0, laid out as `bmaptool create` lays it out,
    /// with `BmapFileChecksum` computed as bmaptool checks it: the hash of
    /// the file with that value written as ASCII zeros. A bmap without a
    /// checksum type (older than 1.3) is written with sha256.
    pub fn render(&self) -> String {
        let kind = self.checksum.unwrap_or(ChecksumKind::Sha256);
        let (blocks, mapped) = (self.blocks_count(), self.mapped_blocks());
        let percent = if blocks == 0 { 0.0 } else { mapped as f64 * 100.0 / blocks as f64 };
        let mut ranges = String::new();
        for r in &self.ranges {
            let chksum =
                r.checksum.as_ref().map(|c| format!(" chksum=\"{c}\"")).unwrap_or_default();
            let span = if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            };
            ranges.push_str(&format!("        <Range{chksum}> {span} </Range>\n"));
        }
        let head = format!(
            r#"<?xml version="1.0" ?>
<!-- Block map (bmaptool format 2.0): the blocks of the image that hold
     data. Only these have to be written to a card; `bmaptool copy` and
     `pi-lab flash` use it and check each range's checksum. -->
<bmap version="2.0">
    <!-- Image size in bytes: {size_human} -->
    <ImageSize> {size} </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> {block} </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> {blocks} </BlocksCount>

    <!-- Count of mapped blocks: {mapped_human} or {percent:.1}% -->
    <MappedBlocksCount> {mapped} </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> {kind} </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols). -->
    <BmapFileChecksum> "#,
            size = self.image_size,
            size_human = human(self.image_size),
            block = self.block_size,
            mapped_human = human(mapped * self.block_size),
            kind = kind.name(),
        );
        let tail = format!(
            r#" </BmapFileChecksum>

    <!-- The block map: ranges of mapped blocks, each with the checksum of
         its data in the attribute 'chksum'. -->
    <BlockMap>
{ranges}    </BlockMap>
</bmap>
"#
        );
        let zeros = "0".repeat(kind.hex_len());
        let sum = kind.hex(format!("{head}{zeros}{tail}").as_bytes());
        format!("{head}{sum}{tail}")
    }
}

fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

struct Parser<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Parser<'_> {
    fn error(&self, doc: Option<(&roxmltree::Document, usize)>, message: String) -> BmapError {
        let (line, column) = doc.map_or((1, 1), |(d, pos)| {
            let p = d.text_pos_at(pos);
            (p.row, p.col)
        });
        BmapError::Invalid { path: self.path.to_path_buf(), line, column, message }
    }

    fn parse(&self) -> Result<Bmap, BmapError> {
        let doc = roxmltree::Document::parse(self.text)
            .map_err(|e| self.error(None, format!("not well-formed XML: {e}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "bmap" {
            return Err(self.error(
                Some((&doc, root.range().start)),
                format!("root element is <{}>, expected <bmap>", root.tag_name().name()),
            ));
        }
        let version = root.attribute("version").unwrap_or("").to_string();
        let (major, minor) = parse_version(&version).ok_or_else(|| {
            self.error(
                Some((&doc, root.range().start)),
                format!("bmap version {version:?} is not MAJOR.MINOR"),
            )
        })?;
        if major > 2 {
            return Err(self.error(
                Some((&doc, root.range().start)),
                format!("bmap version {version} is newer than supported (up to 2.0)"),
            ));
        }
        let number = |tag: &str| -> Result<u64, BmapError> {
            let node = child(&root, tag).ok_or_else(|| {
                self.error(Some((&doc, root.range().start)), format!("missing <{tag}>"))
            })?;
            let text = node.text().unwrap_or("").trim();
            text.parse().map_err(|_| {
                self.error(
                    Some((&doc, node.range().start)),
                    format!("<{tag}> is {text:?}, expected a whole number"),
                )
            })
        };
        let image_size = number("ImageSize")?;
        let block_size = number("BlockSize")?;
        let blocks_count = number("BlocksCount")?;
        let mapped_blocks = number("MappedBlocksCount")?;
        if block_size == 0 || block_size % 512 != 0 {
            return Err(self.error(
                Some((&doc, root.range().start)),
                format!("<BlockSize> {block_size} is not a multiple of 512"),
            ));
        }
        if blocks_count != image_size.div_ceil(block_size) {
            return Err(self.error(
                Some((&doc, root.range().start)),
                format!(
                    "<BlocksCount> {blocks_count} does not match <ImageSize> {image_size} / \
                     <BlockSize> {block_size} (expected {})",
                    image_size.div_ceil(block_size)
                ),
            ));
        }

        // 1.3 had sha1 under other names; 1.4 is a misnumbered 2.0.
        let (checksum, range_attr, file_tag) = if major >= 2 || (major == 1 && minor >= 4) {
            let node = child(&root, "ChecksumType");
            let kind = match node.and_then(|n| n.text()).map(str::trim) {
                Some("sha256") => Some(ChecksumKind::Sha256),
                Some("sha1") => Some(ChecksumKind::Sha1),
                None => None,
                Some(other) => {
                    return Err(self.error(
                        Some((&doc, node.map_or(0, |n| n.range().start))),
                        format!("<ChecksumType> {other:?} is not supported (sha256 or sha1)"),
                    ));
                }
            };
            (kind, "chksum", "BmapFileChecksum")
        } else if major == 1 && minor == 3 {
            (Some(ChecksumKind::Sha1), "sha1", "BmapFileSHA1")
        } else {
            (None, "sha1", "BmapFileSHA1")
        };

        let ranges = self.ranges(&doc, &root, range_attr, checksum, blocks_count)?;
        let counted: u64 = ranges.iter().map(|r| r.last - r.first + 1).sum();
        if counted != mapped_blocks {
            return Err(self.error(
                Some((&doc, root.range().start)),
                format!(
                    "<MappedBlocksCount> is {mapped_blocks} but the ranges hold {counted} blocks"
                ),
            ));
        }
        if let Some(kind) = checksum
            && let Some(node) = child(&root, file_tag)
        {
            self.check_file_checksum(kind, node.text().unwrap_or("").trim())?;
        }
        Ok(Bmap { image_size, block_size, checksum, ranges })
    }

    fn ranges(
        &self,
        doc: &roxmltree::Document,
        root: &roxmltree::Node,
        attr: &str,
        checksum: Option<ChecksumKind>,
        blocks_count: u64,
    ) -> Result<Vec<BlockRange>, BmapError> {
        let Some(map) = child(root, "BlockMap") else {
            return Err(self.error(Some((doc, root.range().start)), "missing <BlockMap>".into()));
        };
        let mut ranges: Vec<BlockRange> = Vec::new();
        for node in map.children().filter(|n| n.has_tag_name("Range")) {
            let at = Some((doc, node.range().start));
            let text = node.text().unwrap_or("").trim();
            let (first, last) = parse_range(text).ok_or_else(|| {
                self.error(at, format!("<Range> {text:?} is not FIRST-LAST or BLOCK"))
            })?;
            if first > last || last >= blocks_count {
                return Err(self.error(
                    at,
                    format!("<Range> {text} is outside the image's {blocks_count} blocks"),
                ));
            }
            if let Some(prev) = ranges.last()
                && first <= prev.last
            {
                return Err(self.error(
                    at,
                    format!("<Range> {text} overlaps or precedes the range before it"),
                ));
            }
            let sum = node.attribute(attr).map(|s| s.trim().to_ascii_lowercase());
            if let (Some(kind), Some(s)) = (checksum, &sum)
                && (s.len() != kind.hex_len() || !s.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(self.error(
                    at,
                    format!("<Range> {text}: checksum {s:?} is not {} hex digits", kind.hex_len()),
                ));
            }
            ranges.push(BlockRange { first, last, checksum: sum });
        }
        Ok(ranges)
    }

    /// bmaptool hashes the file with its own checksum replaced by zeros.
    fn check_file_checksum(&self, kind: ChecksumKind, expected: &str) -> Result<(), BmapError> {
        let actual = match self.text.find(expected) {
            Some(pos) if !expected.is_empty() => {
                let mut bytes = self.text.as_bytes().to_vec();
                bytes[pos..pos + expected.len()].fill(b'0');
                kind.hex(&bytes)
            }
            _ => String::new(),
        };
        if actual != expected.to_ascii_lowercase() {
            return Err(BmapError::FileChecksum {
                path: self.path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(())
    }
}

fn child<'a, 'i>(node: &roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(tag))
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    match text.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let n = text.parse().ok()?;
            Some((n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A bmap as bmaptool 3.x writes it, with its file checksum filled in.
    pub(crate) fn sample(image_size: u64, ranges: &[(u64, u64, &str)]) -> String {
        let blocks = image_size.div_ceil(4096);
        let mapped: u64 = ranges.iter().map(|(a, b, _)| b - a + 1).sum();
        let mut xml = format!(
            "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n    <ImageSize> {image_size} </ImageSize>\n    \
             <BlockSize> 4096 </BlockSize>\n    <BlocksCount> {blocks} </BlocksCount>\n    \
             <MappedBlocksCount> {mapped} </MappedBlocksCount>\n    <ChecksumType> sha256 </ChecksumType>\n    \
             <BmapFileChecksum> {} </BmapFileChecksum>\n    <BlockMap>\n",
            "0".repeat(64)
        );
        for (a, b, sum) in ranges {
            let r = if a == b { format!("{a}") } else { format!("{a}-{b}") };
            xml.push_str(&format!("        <Range chksum=\"{sum}\"> {r} </Range>\n"));
        }
        xml.push_str("    </BlockMap>\n</bmap>\n");
        let sum = hex::encode(Sha256::digest(xml.as_bytes()));
        xml.replacen(&"0".repeat(64), &sum, 1)
    }

    const SUM: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_version_2_ranges_and_clips_the_last_block() {
        let xml = sample(3 * 4096 + 100, &[(0, 1, SUM), (3, 3, SUM)]);
        let bmap = Bmap::parse(&xml, Path::new("x.bmap")).unwrap();
        assert_eq!(bmap.checksum, Some(ChecksumKind::Sha256));
        assert_eq!(bmap.mapped_blocks(), 3);
        let ranges = bmap.byte_ranges();
        assert_eq!((ranges[0].start, ranges[0].end), (0, 8192));
        assert_eq!((ranges[1].start, ranges[1].end), (3 * 4096, 3 * 4096 + 100));
        assert_eq!(bmap.mapped_bytes(), 8192 + 100);
        assert_eq!(bmap.mapped_end(), 3 * 4096 + 100);
    }

    #[test]
    fn parses_version_1_3_with_sha1() {
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        let mut xml = format!(
            "<bmap version=\"1.3\"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize>\
             <BlocksCount>2</BlocksCount><MappedBlocksCount>1</MappedBlocksCount>\
             <BmapFileSHA1>{}</BmapFileSHA1><BlockMap><Range sha1=\"{sha1}\">1</Range></BlockMap></bmap>",
            "0".repeat(40)
        );
        let sum = hex::encode(Sha1::digest(xml.as_bytes()));
        xml = xml.replacen(&"0".repeat(40), &sum, 1);
        let bmap = Bmap::parse(&xml, Path::new("old.bmap")).unwrap();
        assert_eq!(bmap.checksum, Some(ChecksumKind::Sha1));
        assert_eq!(
            bmap.ranges,
            vec![BlockRange { first: 1, last: 1, checksum: Some(sha1.into()) }]
        );
    }

    #[test]
    fn an_edited_bmap_fails_its_file_checksum() {
        let xml = sample(8192, &[(0, 0, SUM)]).replace("> 0 </Range>", "> 1 </Range>");
        let err = Bmap::parse(&xml, Path::new("x.bmap")).unwrap_err();
        assert!(matches!(err, BmapError::FileChecksum { .. }), "{err}");
    }

    #[test]
    fn errors_name_line_and_what_is_wrong() {
        let xml = sample(8192, &[(0, 5, SUM)]);
        let err = Bmap::parse(&xml, Path::new("x.bmap")).unwrap_err().to_string();
        assert!(err.starts_with("x.bmap:10:"), "{err}");
        assert!(err.contains("outside the image's 2 blocks"), "{err}");

        let xml = sample(8192, &[(0, 0, SUM)]).replace("<BlocksCount> 2 ", "<BlocksCount> 7 ");
        let err = Bmap::parse(&xml, Path::new("x.bmap")).unwrap_err().to_string();
        assert!(err.contains("does not match <ImageSize>"), "{err}");

        let err =
            Bmap::parse("<bmap version=\"2.0\"><ImageSize>x</ImageSize></bmap>", Path::new("b"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("<ImageSize> is \"x\""), "{err}");

        let err = Bmap::parse("<bmap", Path::new("b")).unwrap_err().to_string();
        assert!(err.contains("not well-formed"), "{err}");
    }

    #[test]
    fn overlapping_ranges_and_wrong_counts_are_refused() {
        let xml = sample(5 * 4096, &[(2, 3, SUM), (1, 1, SUM)]);
        let err = Bmap::parse(&xml, Path::new("x")).unwrap_err().to_string();
        assert!(err.contains("overlaps or precedes"), "{err}");
        let xml = sample(5 * 4096, &[(0, 1, SUM)])
            .replace("<MappedBlocksCount> 2 ", "<MappedBlocksCount> 3 ");
        let err = Bmap::parse(&xml, Path::new("x")).unwrap_err().to_string();
        assert!(err.contains("<MappedBlocksCount> is 3"), "{err}");
    }

    #[test]
    fn bad_range_checksums_are_refused() {
        let xml = sample(4096, &[(0, 0, "abc")]);
        let err = Bmap::parse(&xml, Path::new("x")).unwrap_err().to_string();
        assert!(err.contains("is not 64 hex digits"), "{err}");
    }
    #[test]
    fn what_is_written_is_read_back_with_chksum_attributes() {
        let bmap = Bmap {
            image_size: 10 * 4096 + 7,
            block_size: BLOCK_SIZE,
            checksum: Some(ChecksumKind::Sha256),
            ranges: vec![
                BlockRange { first: 0, last: 1, checksum: Some("ab".repeat(32)) },
                BlockRange { first: 5, last: 5, checksum: None },
                BlockRange { first: 7, last: 10, checksum: Some("cd".repeat(32)) },
            ],
        };
        let text = bmap.render();
        assert!(text.contains(&format!("<Range chksum=\"{}\"> 0-1 </Range>", "ab".repeat(32))));
        assert!(text.contains("<Range> 5 </Range>"));
        assert!(text.contains("<MappedBlocksCount> 7 </MappedBlocksCount>"));
        assert_eq!(Bmap::parse(&text, Path::new("x.bmap")).unwrap(), bmap);
        // The file checksum is over the file with its own value zeroed.
        let start = text.find("<BmapFileChecksum> ").unwrap() + 19;
        let sum = &text[start..start + 64];
        let zeroed = text.replacen(sum, &"0".repeat(64), 1);
        assert_eq!(hex::encode(Sha256::digest(zeroed.as_bytes())), sum);
    }

    /// Any valid block map: sorted, disjoint ranges inside the image, each
    /// with or without a checksum of the bmap's kind.
    fn any_bmap() -> impl Strategy<Value = Bmap> {
        let kind = prop_oneof![Just(ChecksumKind::Sha256), Just(ChecksumKind::Sha1)];
        let steps =
            proptest::collection::vec((0u64..50, 0u64..50, any::<bool>(), any::<u64>()), 0..20);
        (kind, steps, 0u64..50, prop_oneof![Just(512u64), Just(4096), Just(65536)], 0u64..4096)
            .prop_map(|(kind, steps, tail, block_size, last_bytes)| {
                let mut ranges = Vec::new();
                let mut next = 0;
                for (gap, len, with_sum, seed) in steps {
                    let first = next + gap;
                    let last = first + len;
                    let checksum = with_sum.then(|| kind.hex(&seed.to_le_bytes()));
                    ranges.push(BlockRange { first, last, checksum });
                    next = last + 1;
                }
                // The last block may be partly outside the image.
                let blocks = next + tail;
                let image_size = match blocks {
                    0 => 0,
                    n => (n - 1) * block_size + 1 + last_bytes % block_size,
                };
                Bmap { image_size, block_size, checksum: Some(kind), ranges }
            })
    }

    proptest! {
        #[test]
        fn any_bmap_round_trips(bmap in any_bmap()) {
            let text = bmap.render();
            let back = Bmap::parse(&text, Path::new("p.bmap"));
            prop_assert!(back.is_ok(), "{:?}\n{text}", back.err());
            prop_assert_eq!(back.ok(), Some(bmap));
        }
    }
}
