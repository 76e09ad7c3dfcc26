#!/usr/bin/env bash
# The README's first command: set up a fresh Debian machine and run pi-lab's
# main job on the example fabric: check and plan the lab file, then run it as
# a virtual fleet (network namespaces, veth links, real FRR and node-agent per
# node), wait until it has converged, and show that it carries traffic.
#
# The fabric stays up afterwards so you can look around; the last lines say
# how, and how to remove it (`pi-lab lab down examples/fabric.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
scripts/setup.sh
cargo build --release --bin pi-lab --bin node-agent
pi_lab=target/release/pi-lab
export PI_LAB_AGENT=$PWD/target/release/node-agent
lab=examples/fabric.toml
name=fabric

echo
echo "== pi-lab lab check $lab"
"$pi_lab" lab check "$lab"
echo
echo "== pi-lab lab plan $lab"
"$pi_lab" lab plan "$lab"

echo
echo "== pi-lab lab up $lab"
# A fabric left over from an earlier demo goes first.
"$pi_lab" lab down "$lab"
"$pi_lab" lab up "$lab"

echo
echo "== BGP on spine1 (vtysh -N $name-spine1)"
vtysh -N "$name-spine1" -c 'show bgp summary'

# h1 pings h2 through each segment: h2's address in it, from h1's port in it.
echo "== h1 -> h2 through both VXLAN segments"
python3 - <("$pi_lab" lab render "$lab" h1 --json) <("$pi_lab" lab render "$lab" h2 --json) <<'PY' |
import ipaddress, json, sys
h1, h2 = (json.load(open(p))["config"] for p in sys.argv[1:3])
for b in h2["interfaces"]:
    if not b.get("address"):
        continue
    net = ipaddress.ip_interface(b["address"]).network
    for a in h1["interfaces"]:
        if a.get("address") and ipaddress.ip_interface(a["address"]).network == net:
            print(a["name"], b["address"].split("/")[0])
PY
while read -r port address; do
    echo "-- ip netns exec $name-h1 ping -c 3 -I $port $address"
    ip netns exec "$name-h1" ping -c 3 -W 2 -I "$port" "$address"
done

echo
echo "The fabric is up. Look inside:"
echo "  sudo ip netns exec $name-leaf1 ip -d link show type vxlan"
echo "  sudo vtysh -N $name-leaf1 -c 'show evpn vni'"
echo "Remove it:  sudo $pi_lab lab down $lab"
