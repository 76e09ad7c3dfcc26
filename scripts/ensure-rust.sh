# Sourced by demo.sh and test.sh: make `cargo` available.
#
# Under `sudo`, root's PATH does not include the invoking user's rustup
# toolchain; use that user's toolchain rather than failing. On a machine with
# no Rust at all, install it with rustup (minimal profile).
if ! command -v cargo >/dev/null 2>&1; then
  user_home=""
  if [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  fi
  if [ -n "$user_home" ] && [ -x "$user_home/.cargo/bin/cargo" ]; then
    export CARGO_HOME="$user_home/.cargo" RUSTUP_HOME="$user_home/.rustup"
    export PATH="$CARGO_HOME/bin:$PATH"
  elif [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    # A fresh Debian may not have curl yet (setup.sh, which installs it,
    # runs after this): fetch it first.
    if ! command -v curl >/dev/null 2>&1; then
      sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_=sudo
      echo "setup: installing curl to fetch rustup"
      DEBIAN_FRONTEND=noninteractive $sudo_ apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
    fi
    echo "setup: installing Rust with rustup (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
