#!/usr/bin/env bash
# Benchmark: `wharf lb` against nginx and HAProxy, each proxying the same
# backend with upstream keep-alive and 2 worker processes/threads, measured
# with wrk, runs interleaved.
#
#   bench/lb.sh                     # 3 rounds of wrk -t2 -c64 -d10s each
#   ROUNDS=5 DURATION=20s bench/lb.sh
#   WHARF_ALT=/tmp/wharf-old bench/lb.sh   # also run another wharf build
#                                          # ("wharf-alt") for an A/B
#
# The backend is an nginx (1 worker) answering a fixed 23-byte body, so
# that the proxies, not the backend, are what is compared. Everything shares
# the machine with wrk. Installs what it needs: wrk, nginx, haproxy (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
. "$(dirname "$0")/lb-common.sh"
install_missing wrk nginx haproxy
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

cargo build --release --locked -p wharf
bin="$CARGO_TARGET_DIR/release"
wharf_port=$(free_port); nginx_port=$(free_port); haproxy_port=$(free_port); alt_port=$(free_port)
mkdir -p "$work/nginx"
start_backend

# In a session of its own, as nginx and HAProxy put themselves when they
# daemonize: with the kernel's autogroup scheduling (sched_autogroup_enabled)
# CPU is shared between sessions first, so a proxy left in this script's
# session would share wrk's share of the CPU, and its tail latency shows it.
lb_config wharf "$wharf_port"
WHARF_LOG=warn TOKIO_WORKER_THREADS=2 setsid "$bin/wharf" lb --config "$work/wharf.toml" >"$work/wharf.log" 2>&1 &
echo $! >"$work/wharf.pid"
if [ -n "${WHARF_ALT:-}" ]; then
  lb_config wharf-alt "$alt_port"
  WHARF_LOG=warn TOKIO_WORKER_THREADS=2 setsid "$WHARF_ALT" lb --config "$work/wharf-alt.toml" >"$work/wharf-alt.log" 2>&1 &
  echo $! >"$work/wharf-alt.pid"
fi

# nginx as a reverse proxy.
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
CONF
"$NGINX" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log"

# HAProxy.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 4096
  pidfile $work/haproxy.pid
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend be
backend be
  server b1 127.0.0.1:$backend_port
CONF
"$HAPROXY" -D -f "$work/haproxy.cfg"

url() { echo "http://127.0.0.1:$1/"; }
for port in $backend_port $wharf_port $nginx_port $haproxy_port ${WHARF_ALT:+$alt_port}; do
  wait_serving "$port" "port $port"
done

to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }
# CPU time (clock ticks, user + system, every thread) of a proxy's
# processes: the pid in its pid file and that process's children (nginx's
# workers).
ticks() {
  local main; main=$(cat "$work/$1.pid")
  for p in $main $(cat /proc/"$main"/task/*/children 2>/dev/null); do
    awk '{ sub(/^.*\) /, ""); print $12, $13 }' /proc/"$p"/stat 2>/dev/null
  done | awk '{ u += $1; s += $2 } END { print u + 0, s + 0 }'
}
hz=$(getconf CLK_TCK)
run() {
  local user0 sys0 user1 sys1
  read -r user0 sys0 < <(ticks "$2")
  local out; out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  read -r user1 sys1 < <(ticks "$2")
  local rps p50 p99 errs requests cpu user
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  per_request() { awk -v t="$1" -v n="$requests" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
  cpu=$(per_request $((user1 + sys1 - user0 - sys0)))
  user=$(per_request $((user1 - user0)))
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  echo "$rps $p50 $p99 $cpu $user ${errs:-}"
}

names="wharf ${WHARF_ALT:+wharf-alt }nginx haproxy"
port_of() { case $1 in wharf) echo "$wharf_port";; wharf-alt) echo "$alt_port";; nginx) echo "$nginx_port";; haproxy) echo "$haproxy_port";; esac; }
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved rounds, $(nproc) cores shared by wrk, the proxies and the backend"
echo "cpu_us/req: the proxy's own CPU time (user + system, all its threads or processes) per request; user_us/req: the user part"
printf '%-6s %-10s %12s %10s %10s %11s %12s\n' round proxy req/s p50_ms p99_ms cpu_us/req user_us/req
: >"$work/results"
for r in $(seq 1 "$ROUNDS"); do
  # Each round starts with the next proxy, so none always runs first.
  order=$(echo $names | awk -v r="$r" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + r - 1) % NF + 1) }')
  for name in $order; do
    read -r rps p50 p99 cpu user errs < <(run "$(url "$(port_of "$name")")" "$name")
    printf '%-6s %-10s %12s %10s %10s %11s %12s %s\n' "$r" "$name" "$rps" "$p50" "$p99" "$cpu" "$user" "$errs"
    echo "$name $rps $p50 $p99 $cpu $user" >>"$work/results"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$work/results" | median; }
echo
printf '%-10s %12s %10s %10s %11s %12s\n' median req/s p50_ms p99_ms cpu_us/req user_us/req
for name in $names; do printf '%-10s %12s %10s %10s %11s %12s\n' "$name" "$(m "$name" 2)" "$(m "$name" 3)" "$(m "$name" 4)" "$(m "$name" 5)" "$(m "$name" 6)"; done
for peer in nginx haproxy; do
  awk -v a="$(m wharf 2)" -v b="$(m "$peer" 2)" -v p="$(m wharf 4)" -v q="$(m "$peer" 4)" -v n="$peer" \
    -v c="$(m wharf 5)" -v d="$(m "$peer" 5)" \
    'BEGIN { printf "ratio wharf/%s: req/s %.2fx, p99 %.2fx, cpu/req %.2fx\n", n, a/b, p/q, c/d }'
done
best=$(for peer in nginx haproxy; do echo "$(m "$peer" 2) $peer"; done | sort -n | tail -1 | awk '{print $2}')
awk -v a="$(m wharf 2)" -v b="$(m "$best" 2)" -v p="$(m wharf 4)" -v q="$(m "$best" 4)" -v n="$best" \
  'BEGIN { printf "against the better peer (%s): req/s %.2fx (target >= 1.00x), p99 %.2fx (target <= 1.00x)\n", n, a/b, p/q }'
