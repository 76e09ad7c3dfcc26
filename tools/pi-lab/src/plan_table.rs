//! What `lab plan` prints: a summary line, then the nodes, links and VXLAN
//! segments of the address plan as tables. lab-spec keeps the plan as
//! data; how it reads on a terminal is pi-lab's business.

use std::fmt::Display;

use lab_spec::Plan;
use lab_spec::plan::EndPlan;

use crate::table::Table;

/// The plan as people read it.
pub fn render(plan: &Plan) -> String {
    let m = &plan.management;
    let count = lab_spec::diagnostics::count;
    let mut out = format!(
        "lab {}: {}, {}, {}\nmanagement {}, controller {}, gateway {}\n\n",
        plan.lab,
        count(plan.nodes.len(), "node"),
        count(plan.links.len(), "link"),
        count(plan.segments.len(), "segment"),
        m.subnet,
        m.controller,
        or_dash(m.gateway)
    );
    out.push_str(&nodes(plan).to_string());
    for table in [links(plan), segments(plan)] {
        if !table.is_empty() {
            out.push('\n');
            out.push_str(&table.to_string());
        }
    }
    out
}

fn nodes(plan: &Plan) -> Table {
    Table::new(["NODE", "ROLE", "ASN", "LOOPBACK", "MANAGEMENT"]).with_rows(plan.nodes.iter().map(
        |(name, n)| {
            [
                name.clone(),
                n.role.to_string(),
                or_dash(n.asn),
                or_dash(n.loopback),
                n.management.to_string(),
            ]
        },
    ))
}

fn links(plan: &Plan) -> Table {
    let end = |e: &EndPlan| format!("{}:{}", e.node, e.interface);
    Table::new(["A", "ADDRESS", "B", "ADDRESS", "KIND"]).with_rows(plan.links.iter().map(|l| {
        let kind = match &l.segment {
            Some(s) => format!("access {s}"),
            None => "underlay".to_string(),
        };
        [end(&l.a), or_dash(l.a.address), end(&l.b), or_dash(l.b.address), kind]
    }))
}

fn segments(plan: &Plan) -> Table {
    Table::new(["VNI", "SEGMENT", "FLOODING", "SUBNET", "VTEPS"]).with_rows(
        plan.segments.iter().map(|s| {
            let vteps: Vec<String> = s
                .vteps
                .iter()
                .map(|(l, a)| match s.irb_address(l) {
                    Some(irb) => format!("{l} {a} (irb {irb})"),
                    None => format!("{l} {a}"),
                })
                .collect();
            [
                s.vni.to_string(),
                s.name.clone(),
                s.flooding.to_string(),
                s.subnet.to_string(),
                vteps.join(", "),
            ]
        }),
    )
}

fn or_dash<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(example: &str) -> Plan {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        crate::lab_file::LabFile::load(&path).unwrap_or_else(|e| panic!("{example}: {e}")).plan
    }

    #[test]
    fn two_router_plan_tables() {
        insta::assert_snapshot!("two_router_plan_table", render(&plan_of("two-router.toml")));
    }

    #[test]
    fn fabric_plan_tables() {
        insta::assert_snapshot!("fabric_plan_table", render(&plan_of("fabric.toml")));
    }

    #[test]
    fn irb_addresses_stand_beside_their_vteps() {
        let text = render(&plan_of("two-leaf-boards.toml"));
        insta::assert_snapshot!("two_leaf_boards_plan_table", text);
    }
}
