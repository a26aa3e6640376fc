#!/usr/bin/env bash
# Instructions per request of `wharf lb`'s user space, counted by callgrind:
# repeatable for the same binary whatever else the machine is doing (unlike
# req/s), so it shows what a change to the request path costs or saves.
#
#   bench/lb-instructions.sh                    # the current build
#   bench/lb-instructions.sh /tmp/wharf-old     # also other builds, for A/B
#
# One backend (nginx, 1 worker), `wharf lb` under valgrind with a static
# member, wrk -t1 -c8 -d10s through it after start-up; the counter is zeroed
# before wrk starts and dumped after it ends. Installs valgrind, wrk and
# nginx (Debian) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. "$(dirname "$0")/lb-common.sh"
install_missing wrk nginx valgrind
cargo build --release --locked -p wharf
start_backend

measure() { # binary name
  local port; port=$(free_port)
  lb_config "$2" "$port"
  WHARF_LOG=warn TOKIO_WORKER_THREADS=2 valgrind --tool=callgrind \
    --callgrind-out-file="$work/$2.out" "$1" lb --config "$work/$2.toml" >"$work/$2.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$work/$2.pid"
  wait_serving "$port" "$2"
  callgrind_control -z "$pid" >/dev/null 2>&1
  local requests
  requests=$(wrk -t1 -c8 -d10s "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local total
  total=$(callgrind_annotate "$work/$2.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  printf '%-14s %10s requests %16s instructions %8d per request\n' "$2" "$requests" "$total" $((total / requests))
}

measure "$CARGO_TARGET_DIR/release/wharf" wharf
n=0
for alt in "$@"; do n=$((n + 1)); measure "$alt" "alt-$n"; done
