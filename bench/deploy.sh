#!/usr/bin/env bash
# Benchmark: time from the deploy call (through the load balancer's
# management host) until every worker serves the new revision, with a
# load balancer, a manager and 3 workers as separate release processes on
# loopback; median and max of 10 deploys, beside the 15 s check period of
# the seed's Carbon deployment synchronizer.
#   bench/deploy.sh [DEPLOYS] [WORKERS]      (defaults: 10, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"
cargo build --release --locked -q -p wharf --bin wharf --example deploy_bench
"$CARGO_TARGET_DIR/release/examples/deploy_bench" "$CARGO_TARGET_DIR/release/wharf" "${1:-10}" "${2:-3}"
