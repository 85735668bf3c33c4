#!/usr/bin/env bash
# Profile-guided builds of `regent` and `regent-echo`: an instrumented
# release build of both, a training run of both under wrk on 127.0.0.1, then
# a release build of both that uses the merged profile. Both binaries are
# built the same way, so a benchmark of the two stays a fair comparison.
#
#   benches/pgo.sh            # binaries in target/pgo/release/
#   benches/load.sh --pgo     # builds them with this script, then measures them
#
# Training traffic (never the gatekeeper-library, which the benchmarks
# measure): the default bundle validating the 8 KB Pod review and the
# Deployment reviews of benches/fixtures at 1 and 8 connections and mutating
# the unmutated Deployment; the test fixtures' Gatekeeper bundle
# (tests/fixtures/gatekeeper-bundle) validating the Pod; the echo in both of
# its modes. Needs rustup's llvm-tools (installed if missing), wrk (installed
# if missing, as root), curl and python3. About 18 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools >/dev/null
fi
. benches/need.sh
need wrk
root=$PWD
data=$root/target/pgo-data
rm -rf "$data"
mkdir -p "$data"
RUSTFLAGS="-Cprofile-generate=$data" cargo build --release --locked \
  --target-dir target/pgo-gen --bin regent --bin regent-echo
bin=$root/target/pgo-gen/release

work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$bin/regent" cert --out "$work/certs" --dns localhost,127.0.0.1 >/dev/null 2>&1
# The build scripts and `regent cert` ran instrumented too: only the
# servers' profiles are kept.
rm -f "$data"/*.profraw
tls=(--tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key")
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("REGENT_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
EOF
port=
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # port [admin port]
  for _ in $(seq 600); do
    python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null && break
    sleep 0.1
  done
  if [ -n "${2:-}" ]; then
    for _ in $(seq 600); do
      curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return
      sleep 0.2
    done
    echo "regent never became ready" >&2
    exit 1
  fi
}
drive() { # path body connections seconds
  local threads=$(($3 < 2 ? $3 : 2))
  REGENT_BODY=$2 wrk -t "$threads" -c "$3" -d "${4}s" -s "$work/post.lua" "https://127.0.0.1:$port$1" \
    | grep -q "Requests/sec" || { echo "wrk failed on $1" >&2; exit 1; }
}
stop() { # the profile is written when the process exits normally
  kill -"$1" "$pid"
  wait "$pid" || true
  pid=
}
regent() {
  port=$(free_port)
  local admin
  admin=$(free_port)
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$bin/regent" serve --log warn --shutdown-grace 0s \
    --addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin" "${tls[@]}" "$@" >/dev/null 2>&1 &
  pid=$!
  wait_ready "$port" "$admin"
}
echo_server() {
  port=$(free_port)
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$bin/regent-echo" --addr "127.0.0.1:$port" "${tls[@]}" "$@" >/dev/null 2>&1 &
  pid=$!
  wait_ready "$port"
}
regent
drive /validate benches/fixtures/pod-review.json 8 6
drive /validate benches/fixtures/pod-review.json 1 2
drive /validate benches/fixtures/deployment-review.json 8 2
drive /mutate benches/fixtures/deployment-unmutated-review.json 8 3
stop TERM
regent --policies tests/fixtures/gatekeeper-bundle
drive /validate benches/fixtures/pod-review.json 8 4
stop TERM
echo_server
drive /validate benches/fixtures/pod-review.json 8 4
drive /validate benches/fixtures/pod-review.json 1 1
stop INT
echo_server --engine-parse
drive /validate benches/fixtures/pod-review.json 8 2
stop INT
n=$(find "$data" -name '*.profraw' | wc -l)
[ "$n" -ge 2 ] || { echo "training wrote $n profiles, expected one per binary" >&2; exit 1; }
"$profdata" merge -o "$data/merged.profdata" "$data"/*.profraw
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" cargo build --release --locked \
  --target-dir target/pgo --bin regent --bin regent-echo
echo "profile-guided binaries: target/pgo/release/regent, target/pgo/release/regent-echo"
