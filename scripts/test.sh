#!/usr/bin/env bash
# The README's test command: sets up a fresh Debian machine and runs every
# test (formatting, lints, unit, property, snapshot and end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-rust.sh
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
