//! Where each node goes on the page: in the layers of `lab graph`
//! ([`crate::graph::rank`]: spines, then leaves and routers, then hosts;
//! segments below, drawn by the page), and, since the page places nodes
//! itself where Graphviz would, in an order within each layer: spines,
//! leaves and routers by name with numbers compared as numbers (`leaf2`
//! before `leaf10`); hosts under the leaves they hang off (by the mean
//! place of those leaves), then by name. Empty layers are left out, so a
//! lab of two routers is one row.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use lab_spec::Lab;

/// The lab's nodes in tiers, top to bottom, each in drawing order (left to
/// right).
pub fn tiers(lab: &Lab) -> Vec<Vec<String>> {
    let mut tiers: Vec<Vec<String>> = vec![Vec::new(); 3];
    for node in lab.nodes.values() {
        let rank = usize::from(crate::graph::rank(node.role)).min(2);
        tiers[rank].push(node.name.clone());
    }
    for t in &mut tiers[..2] {
        t.sort_by(|a, b| natural(a, b));
    }
    let place: BTreeMap<String, usize> =
        tiers[1].iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
    // Where a host goes: the mean place of the leaves it is linked to.
    let under = |host: &str| -> f64 {
        let places: Vec<usize> = lab
            .links
            .iter()
            .filter_map(|l| match (l.a.node == host, l.b.node == host) {
                (true, _) => place.get(&l.b.node).copied(),
                (_, true) => place.get(&l.a.node).copied(),
                _ => None,
            })
            .collect();
        if places.is_empty() {
            f64::INFINITY
        } else {
            places.iter().sum::<usize>() as f64 / places.len() as f64
        }
    };
    tiers[2].sort_by(|a, b| under(a).total_cmp(&under(b)).then_with(|| natural(a, b)));
    tiers.retain(|t| !t.is_empty());
    tiers
}

/// Names compared with their runs of digits as numbers.
pub fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(ca), Some(cb)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let da = a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let db = b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let (na, nb) = (a[..da].trim_start_matches('0'), b[..db].trim_start_matches('0'));
            let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if order != Ordering::Equal {
                return order;
            }
            (a, b) = (&a[da..], &b[db..]);
        } else {
            if ca != cb {
                return ca.cmp(&cb);
            }
            (a, b) = (&a[ca.len_utf8()..], &b[cb.len_utf8()..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab_file::LabFile;

    fn example(name: &str) -> LabFile {
        let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        LabFile::load(std::path::Path::new(&path)).expect("example loads")
    }

    #[test]
    fn fabric_spines_above_leaves_above_hosts() {
        let lab = example("fabric.toml");
        assert_eq!(
            tiers(&lab.lab),
            [vec!["spine1", "spine2"], vec!["leaf1", "leaf2", "leaf3", "leaf4"], vec!["h1", "h2"],]
        );
    }

    #[test]
    fn two_routers_are_one_row() {
        assert_eq!(tiers(&example("two-router.toml").lab), [vec!["r1", "r2"]]);
    }

    #[test]
    fn routers_sit_with_the_leaves_as_in_lab_graph() {
        let text = "name = \"t\"\n[nodes.s1]\nrole = \"spine\"\nasn = 1\n\
                    [nodes.l1]\nrole = \"leaf\"\nasn = 2\n[nodes.r1]\nrole = \"router\"\nasn = 3\n";
        let lab = lab_spec::parse(text, "t.toml").expect("valid lab");
        assert_eq!(tiers(&lab), [vec!["s1"], vec!["l1", "r1"]]);
    }

    #[test]
    fn names_sort_with_numbers_as_numbers() {
        let mut names = vec!["leaf10", "leaf2", "leaf1", "h02", "h1", "leaf", "a9b", "a10a"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(names, ["a9b", "a10a", "h1", "h02", "leaf", "leaf1", "leaf2", "leaf10"]);
    }

    #[test]
    fn hosts_sit_under_their_leaves() {
        let text = r#"
name = "t"
[nodes.s1]
role = "spine"
asn = 1
[nodes.l1]
role = "leaf"
asn = 2
[nodes.l2]
role = "leaf"
asn = 3
[nodes.a]
role = "host"
[nodes.z]
role = "host"
[[links]]
a = "s1:eth1"
b = "l1:eth1"
[[links]]
a = "s1:eth2"
b = "l2:eth1"
[[links]]
a = "z:eth1"
b = "l1:eth3"
[[links]]
a = "a:eth1"
b = "l2:eth3"
[[segments]]
name = "s"
vni = 10
leaves = ["l1", "l2"]
access = ["l1:eth3", "l2:eth3"]
"#;
        let lab = lab_spec::parse(text, "t.toml").expect("valid lab");
        assert_eq!(tiers(&lab), [vec!["s1"], vec!["l1", "l2"], vec!["z", "a"]]);
    }
}
