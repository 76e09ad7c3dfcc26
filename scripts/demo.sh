#!/usr/bin/env bash
# The README's first command: set up a fresh Debian machine and run pi-lab's
# main job on the example fabric.
#
# Today that is checking the lab file and printing its address plan. The
# virtual fleet (`pi-lab lab up`: the fabric in network namespaces with real
# FRR and node-agent) is being built and will replace the last step.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
scripts/setup.sh
cargo build --release --bin pi-lab
pi_lab=target/release/pi-lab
lab=examples/fabric.toml

echo
echo "== pi-lab lab check $lab"
"$pi_lab" lab check "$lab"
echo
echo "== pi-lab lab plan $lab"
"$pi_lab" lab plan "$lab"
echo
echo "Not built yet: the virtual fleet ('pi-lab lab up $lab'), images, flashing"
echo "and provisioning. Try 'pi-lab lab render $lab leaf1' to see the config"
echo "leaf1's agent will get."
