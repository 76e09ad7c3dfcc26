//! The device tree an emulated board boots with: the card's own, less
//! what qemu's raspi3b emulates badly or not at all.
//!
//! A real Pi 3B boots its card's device tree unchanged; the card is not
//! touched here either. Only the copy handed to qemu (`-dtb`) is edited,
//! and only by overwriting nodes and properties with `FDT_NOP` tokens
//! (what libfdt's `fdt_nop_node` does), so nothing moves and the blob's
//! offsets stay valid.

use std::ops::Range;

/// What is taken out, and why.
const EDITS: [Edit; 3] = [
    // The SD host (sdhost) that drives the card on a real Pi 3B. Under a
    // busy host its emulation stalls long enough for the driver's timeouts
    // to race its DMA completion: a NULL dereference in
    // bcm2835_finish_data left a CI board stuck, and a card once read back
    // shifted by 12 bytes. Without it the card stays where qemu attaches it
    // at reset, on the Arasan SDHCI, which Linux drives with plain PIO.
    Edit::Node("/soc/mmc@7e202000"),
    // The Wi-Fi power sequence behind the SDHCI needs the firmware's GPIO
    // expander, which qemu lacks; while it fails the SDHCI never probes.
    Edit::Property("/soc/mmc@7e300000", "mmc-pwrseq"),
    // VideoCore's message queue (vchiq): qemu has no VideoCore firmware, so
    // it fails to start, and its slot thread then oopses on some boots.
    Edit::Node("/soc/mailbox@7e00b840"),
];

#[derive(Debug, Clone, Copy)]
enum Edit {
    Node(&'static str),
    Property(&'static str, &'static str),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtbError {
    #[error("not a flattened device tree (bad magic or header)")]
    Header,
    #[error("the device tree is cut short at byte {0}")]
    Truncated(usize),
    #[error("unknown device tree token {token:#x} at byte {at}")]
    Token { token: u32, at: usize },
    #[error(
        "the device tree has no {0}: it is not the Pi 3B's tree pi-lab knows \
         (bcm2837-rpi-3-b.dtb from Debian's kernel)"
    )]
    Missing(String),
}

/// The card's device tree `dtb`, edited for qemu's raspi3b.
pub fn for_emulator(dtb: &[u8]) -> Result<Vec<u8>, DtbError> {
    let tree = Tree::parse(dtb)?;
    let mut out = dtb.to_vec();
    for edit in EDITS {
        let span = match edit {
            Edit::Node(path) => tree.node(path),
            Edit::Property(path, name) => tree.property(path, name),
        }
        .ok_or_else(|| {
            DtbError::Missing(match edit {
                Edit::Node(path) => format!("node {path}"),
                Edit::Property(path, name) => format!("property {name} in {path}"),
            })
        })?;
        nop(&mut out, span);
    }
    Ok(out)
}

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// Where each node and property of a tree sits in its blob.
#[derive(Debug, Default)]
struct Tree {
    /// Full path, and the bytes from its BEGIN_NODE through its END_NODE.
    nodes: Vec<(String, Range<usize>)>,
    /// Node path, property name, and the bytes of the whole property.
    properties: Vec<(String, String, Range<usize>)>,
}

impl Tree {
    fn parse(blob: &[u8]) -> Result<Tree, DtbError> {
        let word = |at: usize| -> Result<u32, DtbError> {
            let b = blob.get(at..at + 4).ok_or(DtbError::Truncated(at))?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        if word(0).map_err(|_| DtbError::Header)? != MAGIC {
            return Err(DtbError::Header);
        }
        let (structs, strings) = (word(8)? as usize, word(12)? as usize);
        let mut tree = Tree::default();
        // Open nodes: path and where each began.
        let mut open: Vec<(String, usize)> = Vec::new();
        let mut at = structs;
        loop {
            let start = at;
            match word(at)? {
                BEGIN_NODE => {
                    let name = c_str(blob, at + 4)?;
                    at = align(at + 4 + name.len() + 1);
                    let path = match open.last() {
                        None => "/".to_string(),
                        Some((parent, _)) if parent == "/" => format!("/{name}"),
                        Some((parent, _)) => format!("{parent}/{name}"),
                    };
                    open.push((path, start));
                }
                END_NODE => {
                    at += 4;
                    let (path, begin) =
                        open.pop().ok_or(DtbError::Token { token: END_NODE, at })?;
                    tree.nodes.push((path, begin..at));
                }
                PROP => {
                    let (len, name_at) = (word(at + 4)? as usize, word(at + 8)? as usize);
                    at = align(at + 12 + len);
                    if at > blob.len() {
                        return Err(DtbError::Truncated(at));
                    }
                    let name = c_str(blob, strings + name_at)?;
                    let node = open.last().map(|(p, _)| p.clone()).unwrap_or_default();
                    tree.properties.push((node, name, start..at));
                }
                NOP => at += 4,
                END => return Ok(tree),
                token => return Err(DtbError::Token { token, at }),
            }
        }
    }

    fn node(&self, path: &str) -> Option<Range<usize>> {
        self.nodes.iter().find(|(p, _)| p == path).map(|(_, r)| r.clone())
    }

    fn property(&self, path: &str, name: &str) -> Option<Range<usize>> {
        self.properties.iter().find(|(p, n, _)| p == path && n == name).map(|(_, _, r)| r.clone())
    }
}

fn align(at: usize) -> usize {
    (at + 3) & !3
}

fn c_str(blob: &[u8], at: usize) -> Result<String, DtbError> {
    let rest = blob.get(at..).ok_or(DtbError::Truncated(at))?;
    let end = rest.iter().position(|b| *b == 0).ok_or(DtbError::Truncated(blob.len()))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Overwrite `span` (whole tokens, so a multiple of 4 bytes) with NOPs.
fn nop(blob: &mut [u8], span: Range<usize>) {
    for word in blob[span].chunks_exact_mut(4) {
        word.copy_from_slice(&NOP.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny tree in the shape of the Pi 3B's: the nodes and properties
    /// the edits touch, and neighbours that must survive.
    fn blob(with_vchiq: bool) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut name = |n: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(n.as_bytes());
            strings.push(0);
            at
        };
        let (status, pwrseq, width) = (name("status"), name("mmc-pwrseq"), name("bus-width"));
        let mut s: Vec<u8> = Vec::new();
        let w = |s: &mut Vec<u8>, v: u32| s.extend_from_slice(&v.to_be_bytes());
        let begin = |s: &mut Vec<u8>, n: &str| {
            w(s, BEGIN_NODE);
            s.extend_from_slice(n.as_bytes());
            s.push(0);
            s.resize(align(s.len()), 0);
        };
        let prop = |s: &mut Vec<u8>, name: u32, value: &[u8]| {
            w(s, PROP);
            w(s, value.len() as u32);
            w(s, name);
            s.extend_from_slice(value);
            s.resize(align(s.len()), 0);
        };
        begin(&mut s, "");
        begin(&mut s, "soc");
        begin(&mut s, "mmc@7e202000");
        prop(&mut s, status, b"okay\0");
        w(&mut s, END_NODE);
        begin(&mut s, "mmc@7e300000");
        prop(&mut s, status, b"okay\0");
        prop(&mut s, pwrseq, &[0, 0, 0, 0x14]);
        prop(&mut s, width, &[0, 0, 0, 4]);
        w(&mut s, END_NODE);
        if with_vchiq {
            begin(&mut s, "mailbox@7e00b840");
            w(&mut s, END_NODE);
        }
        w(&mut s, END_NODE);
        w(&mut s, END_NODE);
        w(&mut s, END);
        let structs = 40 + 16; // header, then an empty reservation map
        let strings_at = structs + s.len();
        let total = strings_at + strings.len();
        let mut out = Vec::new();
        for v in [MAGIC, total as u32, structs as u32, strings_at as u32, 40, 17, 16, 0]
            .into_iter()
            .chain([strings.len() as u32, s.len() as u32])
        {
            w(&mut out, v);
        }
        out.resize(structs, 0);
        out.extend_from_slice(&s);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn the_sd_host_vchiq_and_wifi_power_sequence_are_taken_out_and_nothing_else() {
        let before = blob(true);
        let after = for_emulator(&before).unwrap();
        assert_eq!(after.len(), before.len(), "an edit moved the blob");
        let tree = Tree::parse(&after).unwrap();
        let nodes: Vec<&str> = tree.nodes.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(nodes, ["/soc/mmc@7e300000", "/soc", "/"]);
        let props: Vec<(&str, &str)> =
            tree.properties.iter().map(|(p, n, _)| (p.as_str(), n.as_str())).collect();
        assert_eq!(props, [("/soc/mmc@7e300000", "status"), ("/soc/mmc@7e300000", "bus-width")]);
        // A second pass finds nothing left to take out, and says what.
        assert_eq!(for_emulator(&after), Err(DtbError::Missing("node /soc/mmc@7e202000".into())));
    }

    #[test]
    fn a_tree_that_is_not_the_pi_3bs_or_not_a_tree_is_refused_by_name() {
        let err = for_emulator(&blob(false)).unwrap_err();
        assert_eq!(err, DtbError::Missing("node /soc/mailbox@7e00b840".into()));
        assert!(err.to_string().contains("bcm2837-rpi-3-b.dtb"), "{err}");
        assert_eq!(for_emulator(b"not a tree at all"), Err(DtbError::Header));
        let cut = blob(true)[..70].to_vec();
        assert!(matches!(for_emulator(&cut), Err(DtbError::Truncated(_))), "{cut:?}");
    }
}
