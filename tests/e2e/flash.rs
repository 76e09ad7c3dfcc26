//! `pi-lab flash` end to end: real images (sfdisk, mkfs.vfat, bmaptool),
//! regular files and loop devices as cards, mtools to read identities back.
// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{bin, prerequisites, workspace};

const MIB: u64 = 1 << 20;
/// The test image: 128 MiB, FAT32 p1 at 4 MiB (40 MiB), p2 after it.
const IMAGE_SIZE: u64 = 128 * MIB;
const FAT_OFFSET: &str = "4M";

const IMAGE_TOOLS: &[&str] =
    &["sfdisk", "mkfs.vfat", "fsck.vfat", "mcopy", "mtype", "bmaptool", "zstd", "xz", "gzip"];

/// A private scratch folder (unguessable name), removed afterwards.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix(&format!("pi-lab-e2e-flash-{name}-"))
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn new(backing: &Path, extra: &[&str]) -> Loop {
        let out = Command::new("losetup")
            .args(extra)
            .args(["-f", "--show"])
            .arg(backing)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    fn over_new_file(scratch: &Scratch, name: &str, size: u64, extra: &[&str]) -> Loop {
        let path = scratch.path(name);
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        Loop::new(&path, extra)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A mount made by the test itself, undone when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Bytes that do not compress away and differ per offset.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The test image and its bmap (made by bmaptool, an independent tool).
fn make_image(scratch: &Scratch, data_mib: u64) -> PathBuf {
    let img = scratch.path("pi.img");
    std::fs::File::create(&img).unwrap().set_len(IMAGE_SIZE).unwrap();
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.args(["-q", img.to_str().unwrap()]).stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=8192, size=81920, type=c\nstart=90112, type=83\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "RASPIFIRM", "--offset", "8192"])
        .arg(&img)
        .arg("40960")
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs.vfat: {}", String::from_utf8_lossy(&out.stderr));
    let config = scratch.path("config.txt");
    std::fs::write(&config, "arm_64bit=1\n").unwrap();
    run(Command::new("mcopy")
        .arg("-i")
        .arg(format!("{}@@{FAT_OFFSET}", img.display()))
        .arg(&config)
        .arg("::config.txt"));
    // "Root file system" data in p2, with holes between.
    let file = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    file.write_all_at(&noise(1, (data_mib * MIB) as usize), 60 * MIB).unwrap();
    file.write_all_at(&noise(2, MIB as usize), 100 * MIB).unwrap();
    drop(file);
    run(Command::new("bmaptool").arg("create").arg(&img).arg("-o").arg(bmap_of(&img)));
    img
}

fn bmap_of(img: &Path) -> PathBuf {
    PathBuf::from(format!("{}.bmap", img.display()))
}

fn compress(img: &Path, tool: &str, ext: &str) -> PathBuf {
    run(Command::new(tool).args(["-k", "-f", "-q"]).arg(img));
    PathBuf::from(format!("{}.{ext}", img.display()))
}

/// Mapped byte ranges from a bmap file (4096-byte blocks, as bmaptool writes).
fn mapped_ranges(bmap: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(bmap).unwrap();
    text.lines()
        .filter(|l| l.contains("<Range"))
        .map(|l| {
            let inner = l.split('>').nth(1).unwrap().split('<').next().unwrap().trim();
            let (a, b) = inner.split_once('-').unwrap_or((inner, inner));
            (
                a.parse::<u64>().unwrap() * 4096,
                ((b.parse::<u64>().unwrap() + 1) * 4096).min(IMAGE_SIZE),
            )
        })
        .collect()
}

/// Every mapped range of `target` equals the image's, except the FAT
/// partition when an identity went in.
fn assert_mapped_equal(image: &Path, target: &Path, skip_fat: bool) {
    let img = std::fs::File::open(image).unwrap();
    let out = std::fs::File::open(target).unwrap();
    for (start, end) in mapped_ranges(&bmap_of(image)) {
        if skip_fat && (4 * MIB..44 * MIB).contains(&start) {
            continue;
        }
        let len = (end - start) as usize;
        let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
        img.read_exact_at(&mut a, start).unwrap();
        out.read_exact_at(&mut b, start).unwrap();
        assert!(a == b, "{}: bytes {start}..{end} differ from the image", target.display());
    }
}

fn flash(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(bin("pi-lab")).arg("flash").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A leaf's NodeConfig file, as `pi-lab lab render` writes one.
fn node_config(scratch: &Scratch, name: &str) -> PathBuf {
    let path = scratch.path(&format!("{name}.toml"));
    std::fs::write(&path, lab_spec::fixtures::sflow_leaf(name).to_toml().unwrap()).unwrap();
    path
}

fn mtype(target: &str, offset: &str, file: &str) -> String {
    let out = run(Command::new("mtype")
        .arg("-i")
        .arg(format!("{target}@@{offset}"))
        .arg(format!("::{file}")));
    String::from_utf8(out.stdout).unwrap()
}

fn target_report(json: &serde_json::Value, i: usize) -> &serde_json::Value {
    &json["targets"][i]
}

#[test]
fn flash_every_format_to_files_writes_the_mapped_ranges() {
    if !prerequisites("flash_every_format_to_files_writes_the_mapped_ranges", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("formats");
    let img = make_image(&scratch, 4);
    let sources = [
        img.clone(),
        compress(&img, "zstd", "zst"),
        compress(&img, "xz", "xz"),
        compress(&img, "gzip", "gz"),
    ];
    for (i, source) in sources.iter().enumerate() {
        let out = scratch.path(&format!("card{i}.img"));
        // An old card full of other data: unmapped ranges are not written,
        // but a regular-file target is cut, so they read as zeros.
        std::fs::write(&out, vec![0xa5u8; MIB as usize]).unwrap();
        let (code, json, stderr) = flash(&[s(source), "--to", s(&out), "--json"]);
        assert_eq!(code, 0, "{}: {stderr}", source.display());
        assert_eq!(target_report(&json, 0)["verified"], true);
        assert_eq!(
            json["mapped_bytes"].as_u64(),
            Some(mapped_ranges(&bmap_of(&img)).iter().map(|(a, b)| b - a).sum())
        );
        assert_mapped_equal(&img, &out, false);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&img).unwrap(),
            "holes read as zeros"
        );
    }
}

#[test]
fn without_a_bmap_every_byte_is_written() {
    if !prerequisites("without_a_bmap_every_byte_is_written", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("nobmap");
    let img = make_image(&scratch, 2);
    let zst = compress(&img, "zstd", "zst");
    std::fs::remove_file(bmap_of(&img)).unwrap();
    let out = scratch.path("card.img");
    let (code, json, stderr) = flash(&[s(&zst), "--to", s(&out), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["bmap"], serde_json::Value::Null);
    assert_eq!(target_report(&json, 0)["bytes_written"].as_u64(), Some(IMAGE_SIZE));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
}

#[test]
fn identities_are_written_per_card_and_read_back_by_mtools() {
    if !prerequisites("identities_are_written_per_card_and_read_back_by_mtools", false, IMAGE_TOOLS)
    {
        return;
    }
    let scratch = Scratch::new("identity");
    let img = make_image(&scratch, 2);
    let zst = compress(&img, "zstd", "zst");
    let keys = scratch.path("keys.pub");
    std::fs::write(&keys, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlash me@laptop\n").unwrap();
    let (a, b) = (scratch.path("a.img"), scratch.path("b.img"));
    let (leaf1, leaf2) = (node_config(&scratch, "leaf1"), node_config(&scratch, "leaf2"));
    let (code, json, stderr) = flash(&[
        s(&zst),
        "--to",
        s(&a),
        s(&b),
        "--node-config",
        s(&leaf1),
        "--node-config",
        s(&leaf2),
        "--authorized-keys",
        s(&keys),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for (i, (card, name)) in [(&a, "leaf1"), (&b, "leaf2")].into_iter().enumerate() {
        assert_eq!(target_report(&json, i)["node"], name);
        assert_eq!(target_report(&json, i)["stage"], "identified");
        let toml = mtype(s(card), FAT_OFFSET, "pi-lab/node.toml");
        let config = lab_spec::NodeConfig::from_toml(&toml).unwrap();
        assert_eq!(config.hostname, name);
        let token = lab_spec::fixtures::TOKEN;
        assert_eq!(config.auth, lab_spec::node_config::Auth::from_token(token));
        assert!(!toml.contains(token), "the token itself must not be on the card");
        assert!(!config.version.is_empty());
        assert_eq!(mtype(s(card), FAT_OFFSET, "pi-lab/hostname"), format!("{name}\n"));
        assert!(mtype(s(card), FAT_OFFSET, "pi-lab/authorized_keys").contains("me@laptop"));
        assert!(mtype(s(card), FAT_OFFSET, "sysconf.txt").contains(&format!("hostname={name}")));
        // The image's own files are still there.
        assert_eq!(mtype(s(card), FAT_OFFSET, "config.txt"), "arm_64bit=1\n");
        assert_mapped_equal(&img, card, true);
    }
    // The FAT stays consistent for an independent checker.
    let mut fat = vec![0u8; 40 * MIB as usize];
    std::fs::File::open(&a).unwrap().read_exact_at(&mut fat, 4 * MIB).unwrap();
    let part = scratch.path("p1.fat");
    std::fs::write(&part, fat).unwrap();
    run(Command::new("fsck.vfat").arg("-n").arg(&part));

    let (code, _, stderr) = flash(&[s(&zst), "--to", s(&a), s(&b), "--node-config", s(&leaf1)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("1 identities for 2 targets"), "{stderr}");
}

/// The README's promise: what `lab render` prints is what the card gets,
/// so `render > r1.toml` then `flash --node-config r1.toml` works and the
/// card holds those very bytes.
#[test]
fn a_rendered_node_config_is_what_the_card_gets() {
    if !prerequisites("a_rendered_node_config_is_what_the_card_gets", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("render");
    let img = make_image(&scratch, 2);
    let rendered = run(Command::new(bin("pi-lab"))
        .args(["lab", "render"])
        .arg(workspace().join("examples/two-router.toml"))
        .arg("r1")
        .env("PI_LAB_TOKEN", "render-test-token"));
    let r1 = scratch.path("r1.toml");
    std::fs::write(&r1, &rendered.stdout).unwrap();
    let card = scratch.path("card.img");
    let (code, json, stderr) =
        flash(&[s(&img), "--to", s(&card), "--node-config", s(&r1), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(target_report(&json, 0)["node"], "r1");
    let on_card = mtype(s(&card), FAT_OFFSET, "pi-lab/node.toml");
    assert_eq!(on_card.as_bytes(), rendered.stdout.as_slice());
    let config = lab_spec::NodeConfig::from_toml(&on_card).unwrap();
    assert_eq!(config.hostname, "r1");
    assert_eq!(config.auth, lab_spec::node_config::Auth::from_token("render-test-token"));
    assert_eq!(mtype(s(&card), FAT_OFFSET, "pi-lab/hostname"), "r1\n");
}

#[test]
fn a_corrupted_or_truncated_image_stops_before_the_partition_table() {
    if !prerequisites(
        "a_corrupted_or_truncated_image_stops_before_the_partition_table",
        false,
        IMAGE_TOOLS,
    ) {
        return;
    }
    let scratch = Scratch::new("corrupt");
    let img = make_image(&scratch, 4);
    let zst = compress(&img, "zstd", "zst");
    let bytes = std::fs::read(&zst).unwrap();
    let truncated = scratch.path("short.img.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let corrupted = scratch.path("bad.img.zst");
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&corrupted, bad).unwrap();
    let xz = compress(&img, "xz", "xz");
    let xz_bytes = std::fs::read(&xz).unwrap();
    let xz_short = scratch.path("short.img.xz");
    std::fs::write(&xz_short, &xz_bytes[..xz_bytes.len() - 100]).unwrap();

    for (source, what) in
        [(&truncated, "truncated"), (&corrupted, "corrupted"), (&xz_short, "truncated")]
    {
        // A file target keeps its old content: the new image goes to a
        // partial copy that is removed on failure.
        let card = scratch.path("card.img");
        std::fs::write(&card, b"old card").unwrap();
        let (code, json, stderr) =
            flash(&[s(source), "--bmap", s(&bmap_of(&img)), "--to", s(&card), "--json"]);
        assert_eq!(code, 1, "{}: {stderr}", source.display());
        let err = json["image_error"].as_str().unwrap_or_default();
        assert!(
            err.contains(what) || err.contains("do not match the bmap"),
            "{}: {err}",
            source.display()
        );
        let t = target_report(&json, 0);
        assert_eq!(t["ok"], false);
        assert!(t["state"].as_str().unwrap().contains("partial copy was removed"), "{t}");
        assert_eq!(std::fs::read(&card).unwrap(), b"old card");
        assert_eq!(
            std::fs::read_dir(scratch.0.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref().unwrap().file_name().to_string_lossy().ends_with("pi-lab-partial")
                })
                .count(),
            0,
            "no partial file is left behind"
        );
    }
}

#[test]
fn a_bad_image_leaves_a_card_that_cannot_boot_rather_than_a_mix() {
    let name = "a_bad_image_leaves_a_card_that_cannot_boot_rather_than_a_mix";
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.push("losetup");
    if !prerequisites(name, true, &tools) {
        return;
    }
    let scratch = Scratch::new("badcard");
    let img = make_image(&scratch, 8);
    let zst = compress(&img, "zstd", "zst");
    let bytes = std::fs::read(&zst).unwrap();
    let truncated = scratch.path("short.img.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 4]).unwrap();
    // The card holds an older, bootable image.
    let backing = scratch.path("card.bin");
    std::fs::copy(&img, &backing).unwrap();
    let dev = Loop::new(&backing, &[]);
    let (code, json, stderr) = flash(&[
        s(&truncated),
        "--bmap",
        s(&bmap_of(&img)),
        "--to",
        &dev.0,
        "--allow-non-removable",
        "--yes",
        "--json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let t = target_report(&json, 0);
    assert_eq!(t["stage"], "partial", "{t}");
    assert!(
        t["state"].as_str().unwrap().contains("partition table not yet written")
            && t["state"].as_str().unwrap().contains("will not boot"),
        "{t}"
    );
    let mut mbr = [0u8; 512];
    std::fs::File::open(&dev.0).unwrap().read_exact_at(&mut mbr, 0).unwrap();
    assert!(
        mbr.iter().all(|b| *b == 0),
        "the old partition table is wiped, the new one not written"
    );
}

#[test]
fn a_bmap_that_does_not_fit_the_image_is_refused() {
    if !prerequisites("a_bmap_that_does_not_fit_the_image_is_refused", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("wrongbmap");
    let img = make_image(&scratch, 4);
    let bmap = bmap_of(&img);
    let card = scratch.path("card.img");

    // Data changed after the bmap was made: range checksums differ.
    let changed = scratch.path("changed.img");
    std::fs::copy(&img, &changed).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&changed)
        .unwrap()
        .write_all_at(b"tampered", 62 * MIB)
        .unwrap();
    let (code, json, stderr) =
        flash(&[s(&changed), "--bmap", s(&bmap), "--to", s(&card), "--json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(json["image_error"].as_str().unwrap().contains("do not match the bmap"), "{json}");
    assert!(
        target_report(&json, 0)["state"].as_str().unwrap().contains("partial copy was removed")
    );
    assert!(!card.exists());

    // A bmap of another (bigger) image.
    let other = scratch.path("other.img");
    std::fs::copy(&img, &other).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&other)
        .unwrap()
        .set_len(IMAGE_SIZE + MIB)
        .unwrap();
    let other_bmap = scratch.path("other.bmap");
    run(Command::new("bmaptool").arg("create").arg(&other).arg("-o").arg(&other_bmap));
    let (code, _, stderr) = flash(&[s(&img), "--bmap", s(&other_bmap), "--to", s(&card)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("belongs to another image"), "{stderr}");
    // ... which, for a compressed image, shows when the stream ends early.
    let zst = compress(&img, "zstd", "zst");
    let (code, json, stderr) =
        flash(&[s(&zst), "--bmap", s(&other_bmap), "--to", s(&card), "--json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(json["image_error"].as_str().unwrap().contains("truncated"), "{json}");

    // An edited bmap fails its own checksum.
    let edited = scratch.path("edited.bmap");
    let text = std::fs::read_to_string(&bmap).unwrap();
    std::fs::write(&edited, text.replacen("<Range chksum", "<Range  chksum", 1)).unwrap();
    let (code, _, stderr) = flash(&[s(&img), "--bmap", s(&edited), "--to", s(&card)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the bmap's own checksum does not match"), "{stderr}");
}

/// Replaces the test image's bmap with pi-lab's own: made by the pass
/// `image build` runs over every image it builds (range checksums, zstd).
fn pi_lab_bmap(scratch: &Scratch, img: &Path) -> PathBuf {
    let zst = scratch.path("pi-lab.img.zst");
    let cancel = pi_lab::image::progress::Cancel::never();
    let packed = pi_lab::image::pack::pack(img, &zst, &cancel).unwrap();
    std::fs::write(bmap_of(img), packed.bmap).unwrap();
    bmap_of(img)
}

fn bmaptool_copy(bmap: &Path, img: &Path, to: &Path) -> Output {
    Command::new("bmaptool").args(["copy", "--bmap", s(bmap), s(img), s(to)]).output().unwrap()
}

#[test]
fn a_flipped_byte_in_a_pi_lab_image_is_refused_by_pi_lab_and_bmaptool() {
    if !prerequisites(
        "a_flipped_byte_in_a_pi_lab_image_is_refused_by_pi_lab_and_bmaptool",
        false,
        IMAGE_TOOLS,
    ) {
        return;
    }
    let scratch = Scratch::new("flipped");
    let img = make_image(&scratch, 4);
    let bmap = pi_lab_bmap(&scratch, &img);
    let map = pi_lab::bmap::Bmap::load(&bmap).unwrap();
    assert!(map.ranges.iter().all(|r| r.checksum.is_some()), "every range has its checksum");

    // As built, both tools write it and check every range.
    let card = scratch.path("card.img");
    let (code, json, stderr) = flash(&[s(&img), "--bmap", s(&bmap), "--to", s(&card), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(target_report(&json, 0)["verified"], true);
    assert_eq!(std::fs::read(&card).unwrap(), std::fs::read(&img).unwrap());
    let by_bmaptool = scratch.path("bmaptool.img");
    let out = bmaptool_copy(&bmap, &img, &by_bmaptool);
    assert!(out.status.success(), "bmaptool: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&by_bmaptool).unwrap(), std::fs::read(&img).unwrap());

    // One byte flipped inside the data at 60 MiB.
    let flipped = scratch.path("flipped.img");
    std::fs::copy(&img, &flipped).unwrap();
    let at = 60 * MIB + 12345;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&flipped).unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
    drop(file);
    let block = at / 4096;
    let range = map.ranges.iter().find(|r| (r.first..=r.last).contains(&block)).unwrap();
    let blocks = format!("blocks {}-{}", range.first, range.last);

    let old = b"an old card".to_vec();
    std::fs::write(&card, &old).unwrap();
    let (code, json, stderr) =
        flash(&[s(&flipped), "--bmap", s(&bmap), "--to", s(&card), "--json"]);
    assert_eq!(code, 1, "{stderr}");
    let err = json["image_error"].as_str().unwrap();
    assert!(err.contains(&format!("{blocks} (bytes ")), "names the range: {err}");
    assert!(err.contains("do not match the bmap") && err.contains("flash again"), "{err}");
    let t = target_report(&json, 0);
    assert_eq!(t["ok"], false);
    assert!(t["state"].as_str().unwrap().contains("the file is as it was before"), "{t}");
    assert_eq!(std::fs::read(&card).unwrap(), old, "the card file is untouched");
    // The same in the table a person reads.
    let out = Command::new(bin("pi-lab"))
        .args(["flash", s(&flipped), "--bmap", s(&bmap), "--to", s(&card)])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(table.contains("FAILED") && table.contains(&format!("image: {blocks} ")), "{table}");

    let out = bmaptool_copy(&bmap, &flipped, &scratch.path("bmaptool-flipped.img"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bmaptool must refuse the flipped image: {said}");
    assert!(
        said.contains(&format!(
            "checksum mismatch for blocks range {}-{}",
            range.first, range.last
        )),
        "{said}"
    );
}

#[test]
fn a_bmap_without_range_checksums_is_used_and_the_card_read_back() {
    if !prerequisites(
        "a_bmap_without_range_checksums_is_used_and_the_card_read_back",
        false,
        IMAGE_TOOLS,
    ) {
        return;
    }
    let scratch = Scratch::new("nochecksum");
    let img = make_image(&scratch, 2);
    let bmap = bmap_of(&img);
    run(Command::new("bmaptool").args(["create", "--no-checksum", "-o", s(&bmap), s(&img)]));
    assert!(!std::fs::read_to_string(&bmap).unwrap().contains("chksum="));
    let card = scratch.path("card.img");
    let (code, json, stderr) = flash(&[s(&img), "--to", s(&card), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["bmap"].as_str(), Some(s(&bmap)));
    assert!(stderr.contains("has no range checksums"), "{stderr}");
    assert_eq!(target_report(&json, 0)["verified"], true, "read back instead");
    assert_mapped_equal(&img, &card, false);
}

#[test]
fn unreadable_or_missing_targets_are_named() {
    if !prerequisites("unreadable_or_missing_targets_are_named", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("missing");
    let img = make_image(&scratch, 1);
    let good = scratch.path("good.img");
    let gone = scratch.path("vanished/card.img");
    let (code, json, stderr) = flash(&[s(&img), "--to", s(&gone), "/dev/null", s(&good), "--json"]);
    assert_eq!(code, 1, "{stderr}");
    let missing = target_report(&json, 0);
    assert!(
        missing["error"].as_str().unwrap().contains("does not exist (or vanished)"),
        "{missing}"
    );
    assert_eq!(missing["state"], "untouched: nothing was written");
    let odd = target_report(&json, 1);
    assert!(
        odd["error"].as_str().unwrap().contains("neither a block device nor a regular file"),
        "{odd}"
    );
    assert_eq!(target_report(&json, 2)["ok"], true, "the good target completes");
    assert_mapped_equal(&img, &good, false);

    let (code, _, stderr) = flash(&[s(&img), "--to", s(&good), s(&img)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("it is the image itself"), "{stderr}");
}

#[test]
fn loop_device_is_refused_as_non_removable_then_written_with_the_override() {
    let name = "loop_device_is_refused_as_non_removable_then_written_with_the_override";
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.push("losetup");
    if !prerequisites(name, true, &tools) {
        return;
    }
    let scratch = Scratch::new("loop");
    let img = make_image(&scratch, 4);
    let zst = compress(&img, "zstd", "zst");
    let dev = Loop::over_new_file(&scratch, "card.bin", 256 * MIB, &[]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dev.0)
        .unwrap()
        .write_all_at(&vec![0x5au8; MIB as usize], 0)
        .unwrap();

    let (code, _, stderr) = flash(&[s(&zst), "--to", &dev.0, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not a removable disk") && stderr.contains("--allow-non-removable"),
        "{stderr}"
    );
    // Without --yes and without a terminal, it asks nobody and refuses.
    let (code, _, stderr) = flash(&[s(&zst), "--to", &dev.0, "--allow-non-removable"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no terminal to confirm on; pass --yes"), "{stderr}");

    // --list shows it, with the facts the refusals are based on.
    let (code, list, stderr) = flash(&["--list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev.0.as_str())
        .unwrap_or_else(|| panic!("{} not in --list: {list}", dev.0));
    assert_eq!(entry["size"].as_u64(), Some(256 * MIB));
    assert_eq!(
        (entry["removable"].clone(), entry["transport"].clone()),
        (false.into(), "loop".into())
    );
    assert_eq!(entry["candidate"], false);
    assert!(entry["mounts"].as_array().unwrap().is_empty());

    let leaf = node_config(&scratch, "leaf7");
    let (code, json, stderr) = flash(&[
        s(&zst),
        "--to",
        &dev.0,
        "--allow-non-removable",
        "--yes",
        "--node-config",
        s(&leaf),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(target_report(&json, 0)["kind"], "block-device");
    assert_eq!(target_report(&json, 0)["verified"], true);
    assert_mapped_equal(&img, Path::new(&dev.0), true);
    assert!(mtype(&dev.0, FAT_OFFSET, "pi-lab/node.toml").contains("hostname = \"leaf7\""));
}

#[test]
fn mounted_read_only_partition_and_oversized_disks_are_refused() {
    let name = "mounted_read_only_partition_and_oversized_disks_are_refused";
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.extend(["losetup", "mount", "partx", "mkfs.ext4"]);
    if !prerequisites(name, true, &tools) {
        return;
    }
    let scratch = Scratch::new("refusals");
    let img = make_image(&scratch, 2);
    let ov = "--allow-non-removable";

    // A card with a mounted partition (the test mounts it; this kernel
    // has ext4 but no vfat, so it is the root partition).
    let card = scratch.path("mounted.bin");
    std::fs::copy(&img, &card).unwrap();
    let dev = Loop::new(&card, &["-P"]);
    let part = format!("{}p2", dev.0);
    // Partition nodes can lag behind losetup -P; partx asks again.
    let _ = Command::new("partx").args(["-a", &dev.0]).output();
    for _ in 0..50 {
        if Path::new(&part).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mnt = scratch.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&part));
    run(Command::new("mount").arg(&part).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    let (code, _, stderr) = flash(&[s(&img), "--to", &dev.0, ov, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("mounted partitions") && stderr.contains("--allow-mounted"),
        "{stderr}"
    );
    assert!(stderr.contains(&mnt.display().to_string()), "names the mount point: {stderr}");
    // A partition instead of the disk.
    let (code, _, stderr) = flash(&[s(&img), "--to", &part, ov, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("give the whole disk: --to {}", dev.0)), "{stderr}");
    drop(mounted);

    // Read-only: no flag helps.
    let ro = Loop::over_new_file(&scratch, "ro.bin", 256 * MIB, &["-r"]);
    let (code, _, stderr) = flash(&[s(&img), "--to", &ro.0, ov, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");

    // Bigger than any card: a sparse 300 GB file.
    let big = Loop::over_new_file(&scratch, "big.bin", 300_000_000_000, &[]);
    let (code, _, stderr) = flash(&[s(&img), "--to", &big.0, ov, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("more than any SD card") && stderr.contains("--allow-large-disk"),
        "{stderr}"
    );

    // Smaller than the image, but the data fits: its own flag.
    let short = Loop::over_new_file(&scratch, "short.bin", 110 * MIB, &[]);
    let (code, _, stderr) = flash(&[s(&img), "--to", &short.0, ov, "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--allow-short-target"), "{stderr}");
    // Smaller than the data: refused whatever the flags.
    let tiny = Loop::over_new_file(&scratch, "tiny.bin", 32 * MIB, &[]);
    let (code, _, stderr) = flash(&[s(&img), "--to", &tiny.0, ov, "--allow-short-target", "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("use a bigger card"), "{stderr}");
    // Refusals are decided before anything is written.
    let mut head = [0u8; 512];
    std::fs::File::open(&short.0).unwrap().read_exact_at(&mut head, 0).unwrap();
    assert!(head.iter().all(|b| *b == 0));
}

#[test]
fn three_cards_at_once_one_fails_the_others_complete() {
    let name = "three_cards_at_once_one_fails_the_others_complete";
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.extend(["losetup", "mount"]);
    if !prerequisites(name, true, &tools) {
        return;
    }
    let scratch = Scratch::new("three");
    let img = make_image(&scratch, 24);
    let zst = compress(&img, "zstd", "zst");
    let dev = Loop::over_new_file(&scratch, "card0.bin", 256 * MIB, &[]);
    let file_card = scratch.path("card1.img");
    // The third card fills up half-way: a 16 MiB tmpfs for 30 MiB of data.
    let small = scratch.path("small");
    std::fs::create_dir_all(&small).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "pi-lab-flash-test"])
        .arg(&small));
    let _small = Mounted(small.clone());
    let full_card = small.join("card2.img");
    let nodes: Vec<PathBuf> =
        ["leaf1", "leaf2", "leaf3"].iter().map(|n| node_config(&scratch, n)).collect();
    let (code, json, stderr) = flash(&[
        s(&zst),
        "--to",
        &dev.0,
        s(&file_card),
        s(&full_card),
        "--allow-non-removable",
        "--yes",
        "--node-config",
        s(&nodes[0]),
        "--node-config",
        s(&nodes[1]),
        "--node-config",
        s(&nodes[2]),
        "--json",
    ]);
    assert_eq!(code, 1, "one card failed: {stderr}");
    assert_eq!(json["image_error"], serde_json::Value::Null);
    for (i, card) in [PathBuf::from(&dev.0), file_card.clone()].iter().enumerate() {
        let t = target_report(&json, i);
        assert_eq!(t["ok"], true, "{t}");
        assert_eq!(t["verified"], true);
        assert_mapped_equal(&img, card, true);
        assert!(
            mtype(s(card), FAT_OFFSET, "pi-lab/hostname").starts_with(&format!("leaf{}", i + 1))
        );
    }
    let failed = target_report(&json, 2);
    assert_eq!(failed["ok"], false);
    assert!(failed["error"].as_str().unwrap().contains("No space left"), "{failed}");
    assert!(failed["state"].as_str().unwrap().contains("partial copy was removed"), "{failed}");
    assert_eq!(
        std::fs::read_dir(&small).unwrap().count(),
        0,
        "nothing left on the full file system"
    );
}

#[test]
fn lab_nodes_give_each_card_its_identity() {
    if !prerequisites("lab_nodes_give_each_card_its_identity", false, IMAGE_TOOLS) {
        return;
    }
    let scratch = Scratch::new("lab");
    let img = make_image(&scratch, 1);
    let lab = crate::common::workspace().join("examples/fabric.toml");
    let (a, b) = (scratch.path("a.img"), scratch.path("b.img"));
    let token = "lab-token-for-flash-e2e";
    let run_flash = |nodes: &str| {
        let out = Command::new(bin("pi-lab"))
            .args(["flash", s(&img), "--to", s(&a), s(&b), "--lab", s(&lab), "--nodes", nodes])
            .arg("--authorized-keys")
            .arg("/dev/null")
            .env("PI_LAB_TOKEN", token)
            .env("PI_LAB_STATE_DIR", scratch.path("state"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run_flash("leaf1,spine2");
    assert_eq!(code, Some(0), "{stderr}");
    for (card, name) in [(&a, "leaf1"), (&b, "spine2")] {
        let toml = mtype(s(card), FAT_OFFSET, "pi-lab/node.toml");
        let config = lab_spec::NodeConfig::from_toml(&toml).unwrap();
        assert_eq!((config.hostname.as_str(), config.lab.as_str()), (name, "fabric"));
        assert_eq!(config.auth, lab_spec::node_config::Auth::from_token(token));
        assert!(!toml.contains(token));
        // Zero-touch re-provisioning by the same lab: token hash and controller.
        let bootstrap = mtype(s(card), FAT_OFFSET, "pi-lab/bootstrap.sha256");
        assert_eq!(bootstrap.trim(), config.auth.token_sha256);
        assert_eq!(mtype(s(card), FAT_OFFSET, "pi-lab/controller").trim(), "192.168.200.1");
    }
    let (code, stderr) = run_flash("leaf1,nosuch");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no node named \"nosuch\"") && stderr.contains("leaf2"), "{stderr}");
    let (code, stderr) = run_flash("leaf1,leaf1");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("given twice"), "{stderr}");
}

#[test]
fn ctrl_c_stops_cleanly_and_leaves_no_partial_file() {
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.extend(["mkfifo", "kill"]);
    if !prerequisites("ctrl_c_stops_cleanly_and_leaves_no_partial_file", false, &tools) {
        return;
    }
    let scratch = Scratch::new("ctrlc");
    let img = make_image(&scratch, 8);
    let zst = std::fs::read(compress(&img, "zstd", "zst")).unwrap();
    // The image comes through a pipe, so the test decides when it ends.
    let fifo = scratch.path("slow.img.zst");
    run(Command::new("mkfifo").arg(&fifo));
    let card = scratch.path("card.img");
    let child = Command::new(bin("pi-lab"))
        .args(["flash", s(&fifo), "--bmap", s(&bmap_of(&img)), "--to", s(&card), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    use std::io::Write;
    pipe.write_all(&zst[..zst.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    run(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let _ = pipe.write_all(&zst[zst.len() / 2..]);
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["image_error"].as_str().unwrap().contains("interrupted"), "{json}");
    let t = target_report(&json, 0);
    assert!(t["state"].as_str().unwrap().contains("partial copy was removed"), "{t}");
    assert!(!card.exists());
    let leftovers: Vec<_> = std::fs::read_dir(scratch.0.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("pi-lab-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The disk this machine runs from: the whole disk behind `/`.
fn root_disk() -> Option<String> {
    let out = Command::new("findmnt").args(["-no", "SOURCE", "/"]).output().ok()?;
    let source = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if !source.starts_with("/dev/") {
        return None;
    }
    let out = Command::new("lsblk").args(["-no", "PKNAME", &source]).output().ok()?;
    let parent = String::from_utf8(out.stdout).ok()?.trim().to_string();
    Some(if parent.is_empty() { source } else { format!("/dev/{parent}") })
}

#[test]
fn the_system_disk_is_refused() {
    if !prerequisites("the_system_disk_is_refused", false, &["findmnt", "lsblk"]) {
        return;
    }
    let Some(disk) = root_disk() else {
        eprintln!("the_system_disk_is_refused: / is not on a block device here; nothing to refuse");
        return;
    };
    let scratch = Scratch::new("system");
    let img = scratch.path("tiny.img");
    std::fs::write(&img, vec![0u8; 2 * MIB as usize]).unwrap();
    // No --yes and no terminal either: two independent guards.
    let out = Command::new(bin("pi-lab"))
        .args(["flash", s(&img), "--to", &disk])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(
        stderr.contains("it holds this system") && stderr.contains("--allow-system-disk"),
        "{stderr}"
    );
}
