#!/usr/bin/env bash
# Runs Wharf's whole test suite on a fresh Debian machine that has only the
# Rust toolchain: installs what the tests need, then runs every test.
#   ./scripts/test.sh            # all tests
#   ./scripts/test.sh -p wharf   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# A persistent target directory makes reruns fast; override as you like.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Debian packages the tests use: the svn client and svnserve (the svn
# repository backend), iproute2 (`ip netns` for the multi-host test), git
# (`git http-backend` serves the git-over-HTTP test), Chromium and its
# WebDriver (the console's browser test).
packages=(subversion iproute2 git chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# The test components are built from WAT against the WIT that ships inside
# the wasmtime-wasi-http crate: make sure every crate's source is on disk.
cargo fetch --locked

cargo test --workspace --locked "$@"
