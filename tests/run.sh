#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need,
# builds once, then runs the default bundle's Rego tests and every Rust test
# (unit, TLS integration, reload, CLI, Helm chart with real helm and strict
# schemas). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/tools.sh
source tests/tools.sh
ensure_python_tools
ensure_chart_tools

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== build"
cargo test --all-targets --locked --no-run

echo "== regent test policies (the default bundle's Rego tests)"
./target/debug/regent test policies
./target/debug/regent check policies >/dev/null

echo "== cargo test"
cargo test --all-targets --locked
