# Shared by bench/lb.sh and bench/lb-instructions.sh (sourced, not run):
# installing what is missing, a scratch directory cleaned up on exit, free
# ports, the backend every proxy forwards to, and `wharf lb` configurations.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# install_missing <command>...: installs the Debian packages of the same
# names for the commands not found.
install_missing() {
  local missing="" p
  for p in "$@"; do command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    need_root apt-get update -qq
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  fi
}

work="$(mktemp -d)"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for pid in "$work"/*.pid; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_backend: an nginx with one worker answering a fixed 23-byte body
# on $backend_port, so that the proxies, not the backend, are compared.
start_backend() {
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  backend_port=$(free_port)
  mkdir -p "$work/backend"
  cat > "$work/backend/nginx.conf" <<CONF
worker_processes 1;
pid $work/backend.pid;
error_log $work/backend/error.log;
events { worker_connections 4096; }
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
}

# lb_config <name> <port>: writes $work/<name>.toml, a `wharf lb` with the
# backend as a static member, no clustering and no access log (as the
# peers), plain HTTP on <port>.
lb_config() {
  cat > "$work/lb.conf" <<CONF
services {
  bench {
    hosts *;
    domains { bench.domain { members 127.0.0.1:$backend_port; } }
  }
}
CONF
  cat > "$work/$1.toml" <<TOML
[lb]
data_dir = "$work/$1-data"
services_file = "$work/lb.conf"
[lb.http]
bind = "127.0.0.1"
port = $2
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
}

# wait_serving <port> <name>: until the backend's body comes through.
wait_serving() {
  local _
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$1/" | grep -q "hello from the backend" || {
    echo "$2: not serving on $1"; cat "$work"/*.log "$work"/*/error.log 2>/dev/null; exit 1; }
}
