#!/usr/bin/env bash
# The audit load benchmark: a generated cluster of Pods and Deployments (a
# tenth violating) served by the fake API server, audited by the release
# `regent audit --cluster` on this machine. Prints a table (see
# tests/audit_scale.rs for the columns).
#   benches/audit.sh [SIZES]     # default 10000,100000
set -euo pipefail
cd "$(dirname "$0")/.."
export AUDIT_SIZES="${1:-10000,100000}"
exec cargo test --release --locked --test audit_scale -- --nocapture
