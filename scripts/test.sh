#!/usr/bin/env bash
# The README's test command: sets up a fresh Debian machine and runs every
# test (formatting, lints, unit, property, snapshot and end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage says how long it took, so a slow run shows where.
started=$SECONDS
stage() {
  local name=$1 at=$SECONDS
  shift
  "$@"
  echo "test.sh: $name took $((SECONDS - at)) s ($((SECONDS - started)) s in all)"
}

. scripts/ensure-rust.sh
stage setup scripts/setup.sh
stage fmt cargo fmt --all --check
stage clippy cargo clippy --workspace --all-targets -- -D warnings
stage build cargo build --workspace --bins
stage tests cargo test --workspace -- --test-threads=2
