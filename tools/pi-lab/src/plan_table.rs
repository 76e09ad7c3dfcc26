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

/// A dual-stack plan shows IPv6 in columns of its own; an IPv4-only one
/// reads as it always did.
fn dual_stack(plan: &Plan) -> bool {
    plan.nodes.values().any(|n| n.loopback6.is_some())
}

fn nodes(plan: &Plan) -> Table {
    let v6 = dual_stack(plan);
    let mut header = vec!["NODE", "ROLE", "ASN", "LOOPBACK"];
    header.extend(v6.then_some("LOOPBACK6"));
    header.push("MANAGEMENT");
    Table::new(header).with_rows(plan.nodes.iter().map(|(name, n)| {
        let mut row = vec![name.clone(), n.role.to_string(), or_dash(n.asn), or_dash(n.loopback)];
        row.extend(v6.then(|| or_dash(n.loopback6)));
        row.push(n.management.to_string());
        row
    }))
}

fn links(plan: &Plan) -> Table {
    let v6 = dual_stack(plan);
    let end = |e: &EndPlan, unnumbered: bool| {
        let mut cells = vec![format!("{}:{}", e.node, e.interface)];
        cells.push(or_dash(e.address));
        let none6 = if unnumbered { "link-local" } else { "-" };
        cells.extend(v6.then(|| e.address6.map_or(none6.to_string(), |a| a.to_string())));
        cells
    };
    let address = if v6 { vec!["ADDRESS", "ADDRESS6"] } else { vec!["ADDRESS"] };
    let header = [vec!["A"], address.clone(), vec!["B"], address, vec!["KIND"]].concat();
    Table::new(header).with_rows(plan.links.iter().map(|l| {
        let kind = match &l.segment {
            Some(s) => format!("access {s}"),
            None if l.unnumbered => "underlay unnumbered".to_string(),
            None => "underlay".to_string(),
        };
        [end(&l.a, l.unnumbered), end(&l.b, l.unnumbered), vec![kind]].concat()
    }))
}

fn segments(plan: &Plan) -> Table {
    let v6 = dual_stack(plan);
    let mut header = vec!["VNI", "SEGMENT", "FLOODING", "SUBNET"];
    header.extend(v6.then_some("SUBNET6"));
    header.push("VTEPS");
    Table::new(header).with_rows(plan.segments.iter().map(|s| {
        let vteps: Vec<String> = s
            .vteps
            .iter()
            .map(|(l, a)| match (s.irb_address(l), s.irb_address6(l)) {
                (Some(irb), Some(irb6)) => format!("{l} {a} (irb {irb}, {irb6})"),
                (Some(irb), None) => format!("{l} {a} (irb {irb})"),
                _ => format!("{l} {a}"),
            })
            .collect();
        let mut row = vec![s.vni.to_string(), s.name.clone(), s.flooding.to_string()];
        row.push(s.subnet.to_string());
        row.extend(v6.then(|| or_dash(s.subnet6)));
        row.push(vteps.join(", "));
        row
    }))
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
    fn dual_stack_unnumbered_plan_tables() {
        let text = render(&plan_of("fabric-unnumbered.toml"));
        insta::assert_snapshot!("fabric_unnumbered_plan_table", text);
    }

    #[test]
    fn irb_addresses_stand_beside_their_vteps() {
        let text = render(&plan_of("two-leaf-boards.toml"));
        insta::assert_snapshot!("two_leaf_boards_plan_table", text);
    }
}
