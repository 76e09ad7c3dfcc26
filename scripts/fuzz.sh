#!/usr/bin/env bash
# Fuzz the lab-file parser (default 300 s). Needs cargo-fuzz:
#   cargo install cargo-fuzz
# RUSTC_BOOTSTRAP lets the stable toolchain accept the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
mkdir -p fuzz/corpus/lab_parse
cp examples/*.toml fuzz/corpus/lab_parse/
RUSTC_BOOTSTRAP=1 cargo fuzz run lab_parse fuzz/corpus/lab_parse -- \
  -dict=fuzz/lab.dict -max_total_time="$seconds"
