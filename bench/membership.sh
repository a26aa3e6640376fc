#!/usr/bin/env bash
# Benchmark: cluster membership convergence (10, 50, 100 members) and the
# time every member takes to drop a member killed without a word, over
# sealed UDP on loopback, beside the 3 s member drop time of the Tribes
# membership that the seed's Carbon used.
#   bench/membership.sh [RUNS] [GOSSIP_MS]      (defaults: 5 runs, 200 ms)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"
cargo run --release --locked -q -p wharf-cluster --example membership_bench -- "${1:-5}" "${2:-200}"
