#!/usr/bin/env bash
# Installs everything pi-lab's build, virtual fleet and tests need on a fresh
# Debian machine. Safe to run again: it only installs what is missing.
set -euo pipefail

# Debian packages: routing stack and netlink tools for the virtual fleet,
# independent decoders and checkers for the tests, image build tools.
PACKAGES=(
  build-essential pkg-config ca-certificates curl
  iproute2 nftables iputils-ping frr
  tshark wireshark-common tcpdump
  mtools dosfstools e2fsprogs fdisk bmap-tools zstd xz-utils gzip
  mmdebstrap debian-archive-keyring qemu-user-static binfmt-support qemu-system-arm
  kmod dpkg-dev
  hyperfine
  frr-pythontools
  python3 python3-yaml
  graphviz
  arch-test jq
  # The durability test watches the atomic writers' system calls.
  strace
)

# promtool (from Debian's prometheus) checks the agent's and pi-lab's /metrics.
PACKAGES+=(prometheus)

# Emulated boards: SSH to the boards with the lab's key, and DHCP on the
# emulated management network for zero-touch cards.
PACKAGES+=(openssh-client dnsmasq-base)

# The dashboard's browser tests: Debian's headless Chromium and its WebDriver.
PACKAGES+=(chromium chromium-driver)

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# FRR must not run in the root namespace: the virtual fleet starts its own
# instances per namespace.
if command -v systemctl >/dev/null && systemctl is-active --quiet frr 2>/dev/null; then
  $SUDO systemctl stop frr || true
fi

# Only promtool is wanted from the prometheus package, not a server.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus || true
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup first" >&2
  exit 1
fi
rustup target list --installed | grep -q aarch64-unknown-linux-musl \
  || rustup target add aarch64-unknown-linux-musl
# rustup's minimal profile has neither; test.sh runs both.
for c in clippy rustfmt; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done
