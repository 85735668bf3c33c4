#!/usr/bin/env bash
# Instructions per admission request, counted by valgrind's callgrind: a
# measure that does not move with the machine's noise (wall-clock figures on
# this 2-core machine drift by ±20 % between runs), for A/B comparisons of a
# change to the request path.
#
# Each server runs under callgrind on 127.0.0.1; one keep-alive TLS connection
# sends 20 warm-up reviews, the counters are zeroed, N reviews are sent and
# the counters dumped: every thread's instructions (TLS, HTTP, parse,
# evaluation, response, runtime) divided by N. The TLS handshake is not
# counted.
#
#   benches/instructions.sh [--requests N] [--body FILE] [--policies DIR]
#       [--regent BIN] [--echo BIN] [--keep DIR]
#   (--keep DIR saves each server's callgrind profile there, for
#   `callgrind_annotate --inclusive=yes DIR/regent.callgrind`)
#   (--policies adds a bundle directory next to the default bundle, e.g. a
#   gatekeeper-library bundle made by benches/load.py's library_bundle)
#
# callgrind cannot follow the re-execution that sets mimalloc's option
# (src/allocator.rs), so the servers are started with it already set.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=200
body=benches/fixtures/pod-review.json
policies=
regent=target/release/regent
keep=
echo_bin=target/release/regent-echo
while [ $# -gt 0 ]; do
  case $1 in
    --requests) requests=$2; shift 2 ;;
    --body) body=$2; shift 2 ;;
    --policies) policies=$2; shift 2 ;;
    --regent) regent=$2; shift 2 ;;
    --echo) echo_bin=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
. benches/need.sh
need valgrind
[ -x "$regent" ] && [ -x "$echo_bin" ] || cargo build --release --locked --bin regent --bin regent-echo
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$regent" cert --out "$work/certs" --dns localhost,127.0.0.1 >/dev/null 2>&1

# Sends `count` reviews over one keep-alive connection; fails on a non-200.
send() {
  python3 - "$1" "$2" "$body" <<'EOF'
import http.client, ssl, sys
port, count, body = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=300)
for _ in range(count):
    conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"HTTP {response.status}")
EOF
}

# Prints the instructions per request of one server command line.
measure() {
  local port=$((40000 + RANDOM % 10000))
  local out="$work/callgrind.out"
  rm -f "$out"*
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE MIMALLOC_ARENA_EAGER_COMMIT=0 \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" \
    --addr "127.0.0.1:$port" --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
    >/dev/null 2>"$work/valgrind.log" &
  pid=$!
  for _ in $(seq 600); do
    python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null && break
    sleep 0.5
  done
  # regent: wait until /readyz answers 200, i.e. every bundle is compiled
  # (a bundle compiled while counting would be counted as requests).
  if [ -n "${admin_port:-}" ] && [ "$1" = "$regent" ]; then
    for _ in $(seq 1200); do
      python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % sys.argv[1], timeout=5)" "$admin_port" 2>/dev/null && break
      sleep 0.5
    done
  fi
  send "$port" 20
  callgrind_control -z "$pid" >/dev/null 2>&1
  send "$port" "$requests"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  local total
  if [ -n "$keep" ]; then
    mkdir -p "$keep"
    cp "$out.1" "$keep/$(basename "$1").callgrind"
  fi
  total=$(callgrind_annotate --threshold=100 "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo $((total / requests))
}

admin_port=$((50000 + RANDOM % 10000))
regent_args=("$regent" serve --log warn --admin-addr "127.0.0.1:$admin_port")
label="regent serve (default bundle)"
if [ -n "$policies" ]; then
  regent_args+=(--policies "$policies" --with-default-bundle)
  label="regent serve (default bundle + $policies)"
fi
echo_n=$(measure "$echo_bin")
regent_n=$(measure "${regent_args[@]}")
echo "instructions per request ($(basename "$body"), $requests requests, callgrind):"
printf '  %-60s %12s\n' "regent-echo (body into serde_json::Value)" "$echo_n"
printf '  %-60s %12s  %.2f× the echo'"'"'s\n' "$label" "$regent_n" "$(awk -v a="$regent_n" -v b="$echo_n" 'BEGIN {print a / b}')"
