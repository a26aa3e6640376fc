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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"
need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=""
for p in wrk nginx valgrind; do command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || missing="$missing $p"; done
if [ -n "$missing" ]; then
  need_root apt-get update -qq
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --locked -p wharf
work="$(mktemp -d)"
cleanup() {
  for pid in "$work"/*.pid; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend_port=$(free_port)
mkdir -p "$work/backend"
cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1;
pid $work/backend.pid;
error_log $work/backend/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/backend; proxy_temp_path $work/backend;
  fastcgi_temp_path $work/backend; uwsgi_temp_path $work/backend; scgi_temp_path $work/backend;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$backend_port;
    location / { default_type text/plain; return 200 "hello from the backend\n"; }
  }
}
CONF
"$NGINX" -c "$work/backend/nginx.conf" -e "$work/backend/error.log"
cat > "$work/lb.conf" <<CONF
services { bench { hosts *; domains { bench.domain { members 127.0.0.1:$backend_port; } } } }
CONF

measure() { # binary name
  local port; port=$(free_port)
  cat > "$work/$2.toml" <<TOML
[lb]
data_dir = "$work/$2-data"
services_file = "$work/lb.conf"
[lb.http]
bind = "127.0.0.1"
port = $port
[lb.https]
bind = "127.0.0.1"
port = 0
[lb.status]
port = 0
[lb.access_log]
format = "off"
[clustering]
enabled = false
TOML
  WHARF_LOG=warn TOKIO_WORKER_THREADS=2 valgrind --tool=callgrind \
    --callgrind-out-file="$work/$2.out" "$1" lb --config "$work/$2.toml" >"$work/$2.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$work/$2.pid"
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$port/" | grep -q "hello from the backend" || { echo "$2: not serving"; cat "$work/$2.log"; exit 1; }
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
