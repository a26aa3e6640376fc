#!/usr/bin/env bash
# Benchmark: the Wharf node against `wasmtime serve` 48.0.8, both serving
# the same hello component, measured with wrk, runs interleaved.
#
#   bench/runtime.sh            # 3 rounds of wrk -t2 -c64 -d10s each
#   ROUNDS=5 DURATION=20s bench/runtime.sh
#
# Installs what it needs: wrk (Debian) and wasmtime-cli 48.0.8 (cargo
# install, about 10 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wharf-target}"

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
command -v wrk >/dev/null || { need_root apt-get update -qq; need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
WASMTIME="${WASMTIME:-$(command -v wasmtime || true)}"
if [ -z "$WASMTIME" ] || ! "$WASMTIME" --version | grep -q '^wasmtime 48\.0\.8'; then
  cargo install --locked wasmtime-cli --version 48.0.8
  WASMTIME="$HOME/.cargo/bin/wasmtime"
fi

cargo build --release --locked -p wharf -p wharf-componentize --bins
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/wat2component" crates/testkit/src/wat/hello.wat "$work/hello.wasm" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Wharf: default runtime settings (pooling allocator on), the app in webapps.
mkdir -p "$work/data/deployment/server/webapps"
cp "$work/hello.wasm" "$work/data/deployment/server/webapps/hello.wasm"
cat > "$work/wharf.toml" <<TOML
[server]
data_dir = "data"
[server.http]
bind = "127.0.0.1"
port = $(free_port)
[server.https]
bind = "127.0.0.1"
port = 0
[server.status]
port = 0
TOML
WHARF_LOG=warn "$bin/wharf" server --config "$work/wharf.toml" >"$work/wharf.log" 2>&1 &
wharf_url="http://127.0.0.1:$(grep -A2 '^\[server.http\]' "$work/wharf.toml" | sed -n 's/^port = //p')/hello"

# wasmtime serve: its defaults (pooling allocator on by default in 48).
wt_port=$(free_port)
"$WASMTIME" serve --addr "127.0.0.1:$wt_port" "$work/hello.wasm" >"$work/wasmtime.log" 2>&1 &
wt_url="http://127.0.0.1:$wt_port/"

for url in "$wharf_url" "$wt_url"; do
  for _ in $(seq 1 200); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
  curl -sf "$url" | grep -q "hello from wasm" || { echo "not serving: $url"; cat "$work"/*.log; exit 1; }
done

# wrk's latency distribution is printed in units (us, ms, s): normalise to ms.
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }
run() {
  local out; out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  local rps p50 p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
  echo "$rps $p50 $p99 ${errs:-}"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved rounds, $(nproc) cores shared with wrk"
printf '%-6s %-16s %12s %10s %10s\n' round server req/s p50_ms p99_ms
: >"$work/results"
for r in $(seq 1 "$ROUNDS"); do
  for name in wharf wasmtime; do
    url=$wharf_url; [ "$name" = wasmtime ] && url=$wt_url
    read -r rps p50 p99 errs < <(run "$url")
    printf '%-6s %-16s %12s %10s %10s %s\n' "$r" "$name" "$rps" "$p50" "$p99" "$errs"
    echo "$name $rps $p50 $p99" >>"$work/results"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for col in 2 3 4; do
  for name in wharf wasmtime; do
    awk -v n="$name" -v c="$col" '$1==n {print $c}' "$work/results" | median >"$work/m_${name}_$col"
  done
done
echo
printf '%-16s %12s %10s %10s\n' "median" req/s p50_ms p99_ms
for name in wharf wasmtime; do
  printf '%-16s %12s %10s %10s\n' "$name" "$(cat "$work/m_${name}_2")" "$(cat "$work/m_${name}_3")" "$(cat "$work/m_${name}_4")"
done
awk -v a="$(cat "$work/m_wharf_2")" -v b="$(cat "$work/m_wasmtime_2")" -v p="$(cat "$work/m_wharf_4")" -v q="$(cat "$work/m_wasmtime_4")" \
  'BEGIN { printf "ratio wharf/wasmtime: req/s %.2fx (target >= 1.20x), p99 %.2fx (target <= 1.00x)\n", a/b, p/q }'
