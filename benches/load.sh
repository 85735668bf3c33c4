#!/usr/bin/env bash
# The load benchmark, in one command: builds the release binaries, installs
# wrk if needed, starts `regent serve` (default bundle), `regent-echo` (the
# lightest correct webhook: same TLS stack and accept loop, the body parsed
# into serde_json::Value, the uid echoed) and `regent-echo --engine-parse`
# (the same, parsing as regent does) on 127.0.0.1, drives each in turn at 1, 8
# and 64 keep-alive connections and 8 without keep-alive, `--rounds` times
# (3 by default) with the servers alternated (each round in a balanced
# order: every server runs right after every other equally often), and prints one table of medians
# with the ratios to the echo. Every run is bounded in time.
#
#   benches/load.sh [--duration SECONDS] [--rounds N] [--body FILE]   # N alternated rounds, medians
#   benches/load.sh --candidate [--rounds N]   # with vs without a candidate bundle
#   benches/load.sh --decision-log [--rounds N]  # the decision log off (twice), to a file, to a dead
#       HTTP sink: ratios with 95 % intervals and a verdict (--rounds 32 --duration 3: ~17 minutes)
#   benches/load.sh --exceptions [--rounds N]  # a privileged Pod with 0 and 1,000 policy
#       exceptions (for other objects; and plus the one that excepts it)
#   benches/load.sh --mutators [--rounds N]    # /mutate: native mutating policies, the same as
#       Gatekeeper mutators (tests/fixtures/mutators), and both
#   benches/load.sh --gatekeeper-library DIR [--rounds N]   # default bundle alone vs with
#       every template of a gatekeeper-library checkout (kept outside this repository)
#   benches/load.sh --pgo [any of the above]   # the same, on profile-guided builds of both
#       regent and the echo (benches/pgo.sh: about 18 minutes more)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/need.sh
need wrk
args=()
pgo=
for a in "$@"; do
  if [ "$a" = --pgo ]; then pgo=1; else args+=("$a"); fi
done
if [ -n "$pgo" ]; then
  benches/pgo.sh
  # regent's own `cert` subcommand, used by load.py, comes from the plain build.
  cargo build --release --locked --bin regent --bin regent-echo
  exec python3 benches/load.py --regent target/pgo/release/regent --echo target/pgo/release/regent-echo "${args[@]}"
fi
cargo build --release --locked --bin regent --bin regent-echo
exec python3 benches/load.py "${args[@]}"
