#!/usr/bin/env python3
"""Write a leaf-spine lab of NODES nodes for scale benchmarks and tests.

4 spines, NODES - 8 leaves (each to every spine), 4 hosts on leaf1..leaf4,
one EVPN segment across those four leaves. eBGP underlay, default timers.

Usage: scale-lab.py NODES NAME SUBNET_PREFIX > lab.toml
  SUBNET_PREFIX: the first two octets of a /16 for management, e.g. 172.29
"""
import sys


def main() -> None:
    nodes, name, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if nodes < 13:
        sys.exit("at least 13 nodes (4 spines, 5 leaves, 4 hosts)")
    leaves = nodes - 8
    out = [
        f'name = "{name}"',
        "",
        "[management]",
        f'subnet = "{prefix}.0.0/16"',
        f'controller = "{prefix}.0.1"',
        "",
        "[pools]",
        'loopback = "10.250.0.0/20"',
        'p2p = "10.251.0.0/16"',
        'segments = "172.17.0.0/16"',
        "",
        "[bgp]",
        "keepalive = 3",
        "hold = 9",
        "",
    ]
    for s in range(1, 5):
        out += [f"[nodes.spine{s}]", 'role = "spine"', "asn = 65000", ""]
    for l in range(1, leaves + 1):
        out += [f"[nodes.leaf{l}]", 'role = "leaf"', f"asn = {65000 + l}", ""]
    for h in range(1, 5):
        out += [f"[nodes.h{h}]", 'role = "host"', ""]
    for s in range(1, 5):
        for l in range(1, leaves + 1):
            out += ["[[links]]", f'a = "spine{s}:eth{l}"', f'b = "leaf{l}:eth{s}"', ""]
    for h in range(1, 5):
        out += ["[[links]]", f'a = "h{h}:eth1"', f'b = "leaf{h}:eth5"', ""]
    out += [
        "[[segments]]",
        'name = "blue"',
        "vni = 10010",
        'flooding = "evpn"',
        'leaves = ["leaf1", "leaf2", "leaf3", "leaf4"]',
        'access = ["leaf1:eth5", "leaf2:eth5", "leaf3:eth5", "leaf4:eth5"]',
        "",
    ]
    print("\n".join(out))


main()
