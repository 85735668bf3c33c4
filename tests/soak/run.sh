#!/usr/bin/env bash
# The long soak run (the test suite runs the same for 40 s): the release server for MINUTES minutes (default
# 10) under mixed load while its bundle, certificate and watch churn; see
# tests/soak.rs for what it does and what it asserts.
#   tests/soak/run.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
export SOAK_MINUTES="${1:-10}"
exec cargo test --release --locked --test soak -- --nocapture
