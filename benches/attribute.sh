#!/usr/bin/env bash
# Per-stage CPU attribution of `regent serve` (release build, default bundle)
# under 8 keep-alive connections of the 8 KB Pod review: `perf record
# --call-graph dwarf` of the server while wrk drives it, then
# benches/attribute.py charges each sample to a stage (TLS, HTTP, JSON to
# engine value, evaluation, response, metrics, logging, runtime, kernel).
#   benches/attribute.sh [SECONDS] [REGENT_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
regent=${2:-target/release/regent}
. benches/need.sh
need perf linux-perf
need wrk
[ -x "$regent" ] || cargo build --release --locked --bin regent
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$regent" cert --out "$work/certs" --dns localhost,127.0.0.1 >/dev/null 2>&1
cat > "$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$PWD/benches/fixtures/pod-review.json", "rb"); wrk.body = f:read("*a"); f:close()
EOF
port=$((20000 + RANDOM % 20000))
env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$regent" serve --addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$((port + 1))" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" --log warn >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((port + 1))/readyz" >/dev/null && break; sleep 0.1; done
# Warm up, then measure the CPU per request and record at once.
wrk -t2 -c8 -d2s -s "$work/post.lua" "https://127.0.0.1:$port/validate" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
rec=$!
out=$(wrk -t2 -c8 -d"${seconds}s" -s "$work/post.lua" "https://127.0.0.1:$port/validate")
wait "$rec" || true
t1=$(ticks)
requests=$(echo "$out" | awk '/requests in/ {print $1}')
cpu_us=$(awk -v a="$t0" -v b="$t1" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (b - a) / hz * 1e6 / n}')
echo "$(echo "$out" | grep Requests/sec); server CPU ${cpu_us} µs per request (perf running at 499 Hz)"
perf script -F comm,tid,ip,sym,dso -i "$work/perf.data" 2>/dev/null | python3 benches/attribute.py --cpu-us "$cpu_us"
