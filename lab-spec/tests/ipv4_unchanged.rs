//! IPv4-only labs compile as they did before IPv6 and unnumbered links
//! came: every example's NodeConfigs and rendered `frr.conf`s are pinned
//! here by their content hashes (the config's own `version`, a hash of its
//! JSON, and the first 8 bytes of the SHA-256 of the FRR text), taken
//! before the change. A difference means a lab without IPv6 pools would
//! get a new config, and its agents would reload.

use std::path::PathBuf;

use sha2::Digest;

/// (example file, node, NodeConfig version, FRR text hash).
const PINNED: &[(&str, &str, &str, &str)] = &[
    ("boards.toml", "h1", "fc405fd4106a2b3c", "992cbcd586b186be"),
    ("boards.toml", "h2", "fc7dd64901c33a48", "137616fb0610cd08"),
    ("boards.toml", "leaf1", "0843968a8bfebb52", "af3b193c4bf41ade"),
    ("boards.toml", "leaf2", "e60e1976bc4581f5", "730f269a1a7b6dad"),
    ("fabric-isis.toml", "h1", "270f3d12a0622324", "1fdfeb6d1eafbf8b"),
    ("fabric-isis.toml", "h2", "962bf6ad3141404d", "29b22c14ac7ad379"),
    ("fabric-isis.toml", "leaf1", "8779fd6d64fd7293", "cc47c172bdf5f682"),
    ("fabric-isis.toml", "leaf2", "b5a30b329779be63", "d734771dc66deb01"),
    ("fabric-isis.toml", "leaf3", "410b3bcf281e97c9", "c9b7b20d4b5a5f5b"),
    ("fabric-isis.toml", "leaf4", "ddf61d554cb3570a", "8217afa30b5ac1d4"),
    ("fabric-isis.toml", "spine1", "72c5fdad783ec442", "307d7740ae33d697"),
    ("fabric-isis.toml", "spine2", "d386b07e8ad2b37f", "44d332e98a3dc2e2"),
    ("fabric-ospf.toml", "h1", "e1d8b9ba63eb70da", "e668611142169c52"),
    ("fabric-ospf.toml", "h2", "3654525118910067", "ee8773c40993f97c"),
    ("fabric-ospf.toml", "leaf1", "5f6f5b2a3a8b4b03", "8c75a521b9171445"),
    ("fabric-ospf.toml", "leaf2", "6bad124fa3b37d37", "de11129c39184f65"),
    ("fabric-ospf.toml", "leaf3", "cd8f47c6447db4ee", "30e125c69dc40481"),
    ("fabric-ospf.toml", "leaf4", "cab54f36323d9972", "749f399301ea0e6f"),
    ("fabric-ospf.toml", "spine1", "193642fe9e8e5b73", "add3f766ddda3ee8"),
    ("fabric-ospf.toml", "spine2", "37be215dfc327d86", "98c2cab12b2ccf86"),
    ("fabric.toml", "h1", "774daaea1da44f83", "d3fad703ca6c545f"),
    ("fabric.toml", "h2", "d7a2b1ed47a02b34", "135cc7c6bfb92a6a"),
    ("fabric.toml", "leaf1", "f4b84d1ad159ebd2", "e3c20432b6cb55ae"),
    ("fabric.toml", "leaf2", "02bd47cfb9b0525d", "07ea6e54fe90e903"),
    ("fabric.toml", "leaf3", "1336dda09a542b65", "5aa191c87b0f9297"),
    ("fabric.toml", "leaf4", "12ffbfe2727037d0", "9debed3a4c12eab7"),
    ("fabric.toml", "spine1", "74135a983707cd30", "7bf1a6e0e7001e6f"),
    ("fabric.toml", "spine2", "c5aad95800975903", "cf2b46c7e764164c"),
    ("ebgp-fabric.yml", "ha", "8da96c5b51de322c", "a028786acbd4b60f"),
    ("ebgp-fabric.yml", "hb", "039e5f1334c4f243", "1d88d08ea38fb66e"),
    ("ebgp-fabric.yml", "leaf-a", "c514ffb85233b5b1", "5a4bdb458f07cf9a"),
    ("ebgp-fabric.yml", "leaf-b", "c5feeb5284f617cf", "4ebbe9d1df729cdc"),
    ("ebgp-fabric.yml", "spine", "8c79f087f454e976", "5f29c2735c137c04"),
    ("evpn-isis.yml", "h1", "81dc42e5fea31603", "5df4a3b121a65779"),
    ("evpn-isis.yml", "h2", "d64942351deded9a", "0ada5f45e017dd58"),
    ("evpn-isis.yml", "leaf1", "8725d52811752f4c", "11e33da7755c08ee"),
    ("evpn-isis.yml", "leaf2", "c1b710a4944f8dd7", "3a1f6c42bbdeabe7"),
    ("evpn-isis.yml", "spine1", "0df121cddb529fcb", "dd2f9b875e33b404"),
    ("evpn-isis.yml", "spine2", "245e044c940a0b9d", "fde3564c46eb2eba"),
    ("two-router-ebgp.yml", "r1", "a18feb9ef05e0815", "2d1f942f1747129d"),
    ("two-router-ebgp.yml", "r2", "fe6e118417751d49", "4e1876d88e21d951"),
    ("vxlan-ospf.yml", "h1", "af817ae1031cd267", "3c4a7ca146c229f2"),
    ("vxlan-ospf.yml", "h2", "b8247de91352ba4b", "2c8da568483ba669"),
    ("vxlan-ospf.yml", "h3", "d7513d090e852f30", "219719e2c7755e29"),
    ("vxlan-ospf.yml", "h4", "19208b003d561e48", "f21ac8793236ce53"),
    ("vxlan-ospf.yml", "s1", "9245e3d5090a7ec6", "ac9d603e60dedec9"),
    ("vxlan-ospf.yml", "s2", "b37c85e5dcb3e771", "dd50fe779349c9e2"),
    ("two-leaf-boards.toml", "leaf1", "e9280d5837420a00", "291933203ee14f76"),
    ("two-leaf-boards.toml", "leaf2", "046cae20fe288c00", "fed8e99dc081fe93"),
    ("two-router-boards.toml", "r1", "deb1ede3346d1451", "c77a93acda47c426"),
    ("two-router-boards.toml", "r2", "8e8f6aa966491174", "c14ed106798cfb41"),
    ("two-router.toml", "r1", "e67743dbbde9ad44", "96418111a28727e7"),
    ("two-router.toml", "r2", "f3928080deacf065", "5ddd819b3504a754"),
];

fn example(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    if name.ends_with(".yml") { dir.join("netlab").join(name) } else { dir.join(name) }
}

#[test]
fn ipv4_only_configs_and_frr_texts_are_unchanged() {
    let mut checked = 0;
    for (file, node, version, frr) in PINNED {
        if file.ends_with(".yml") && !cfg!(feature = "netlab") {
            continue;
        }
        let (_, _, configs) = lab_spec::compile_file(&example(file), "secret")
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let config = &configs[*node];
        assert_eq!(config.version, *version, "{file} {node}: NodeConfig changed");
        let text = lab_spec::frr::render(config);
        let hash = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8]);
        assert_eq!(hash, *frr, "{file} {node}: frr.conf changed:\n{text}");
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}
