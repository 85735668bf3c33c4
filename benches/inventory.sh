#!/usr/bin/env bash
# The inventory benchmark: `regent serve --inventory v1/Pod` (release build)
# against the fake API server holding N small Pods, one Pod changed every
# 50 ms. Prints a table (see tests/inventory_scale.rs for the columns).
#   benches/inventory.sh [SIZES]                          # default 20000,100000
#   REGENT_BENCH_BIN=/path/to/old/regent benches/inventory.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
export INVENTORY_SIZES="${1:-20000,100000}" INVENTORY_SECONDS="${INVENTORY_SECONDS:-20}"
exec cargo test --release --locked --test inventory_scale -- --nocapture
