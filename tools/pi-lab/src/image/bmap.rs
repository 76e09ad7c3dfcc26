//! The block map: bmaptool's format 2.0, so `bmaptool copy` (and
//! `pi-lab flash`) write only the blocks the file systems use.
//!
//! Mapped blocks are the image's data ranges (SEEK_DATA/SEEK_HOLE): the
//! image is assembled sparse, so holes are exactly what no file system wrote.
//! The ranges' hashes are computed in the same pass that compresses the
//! image (`pack.rs`).

use std::fs::File;

use sha2::{Digest, Sha256};

use super::assemble::data_ranges;

pub const BLOCK: u64 = 4096;

/// Inclusive block ranges `(first, last)` that hold data.
pub fn mapped_blocks(img: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
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

/// The XML, with `BmapFileChecksum` computed as bmaptool does: sha256 of
/// the file with that field's value all `0`.
pub fn render(size: u64, ranges: &[(u64, u64, String)]) -> String {
    let blocks = size.div_ceil(BLOCK);
    let mapped: u64 = ranges.iter().map(|(a, b, _)| b - a + 1).sum();
    let percent = if blocks == 0 { 0.0 } else { mapped as f64 * 100.0 / blocks as f64 };
    let zero = "0".repeat(64);
    let mut body = String::new();
    for (a, b, chk) in ranges {
        if a == b {
            body.push_str(&format!("        <Range chk=\"{chk}\"> {a} </Range>\n"));
        } else {
            body.push_str(&format!("        <Range chk=\"{chk}\"> {a}-{b} </Range>\n"));
        }
    }
    let text = format!(
        r#"<?xml version="1.0" ?>
<!-- Block map of a pi-lab image (bmaptool format 2.0): the blocks that hold
     data. Only these have to be written to a card; `bmaptool copy` and
     `pi-lab flash` use it. Made by pi-lab image build. -->
<bmap version="2.0">
    <!-- Image size in bytes: {human} -->
    <ImageSize> {size} </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> {BLOCK} </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> {blocks} </BlocksCount>

    <!-- Count of mapped blocks: {mapped_human} or {percent:.1}% -->
    <MappedBlocksCount> {mapped} </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> sha256 </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols). -->
    <BmapFileChecksum> {zero} </BmapFileChecksum>

    <!-- The block map: ranges of mapped blocks, each with the sha256 of
         its data. -->
    <BlockMap>
{body}    </BlockMap>
</bmap>
"#,
        human = human(size),
        mapped_human = human(mapped * BLOCK),
    );
    let sum = hex::encode(Sha256::digest(text.as_bytes()));
    text.replacen(&zero, &sum, 1)
}

fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_over_the_zeroed_file() {
        let text = render(8192 * 4, &[(0, 1, "ab".repeat(32)), (5, 5, "cd".repeat(32))]);
        let start = text.find("<BmapFileChecksum> ").unwrap() + 19;
        let sum = &text[start..start + 64];
        let zeroed = text.replacen(sum, &"0".repeat(64), 1);
        assert_eq!(hex::encode(Sha256::digest(zeroed.as_bytes())), sum);
        assert!(text.contains("<MappedBlocksCount> 3 </MappedBlocksCount>"));
        assert!(text.contains("> 5 </Range>") && text.contains("> 0-1 </Range>"));
    }
}
