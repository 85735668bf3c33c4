#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need,
# builds once, then runs the default bundle's Rego tests and every Rust test
# (unit, TLS integration, reload, CLI, Helm chart with real helm and strict
# schemas). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A CI run builds once and throws the tree away: no incremental cache (it
# doubles the debug tree's size on disk and nothing would reuse it).
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_INCREMENTAL=0
fi

# shellcheck source=tests/tools.sh
source tests/tools.sh
ensure_python_tools
ensure_chart_tools

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== vendored regorus: the pristine crate plus the numbered patch series"
vendor/rebuild-regorus.sh --check

echo "== build"
cargo test --workspace --all-targets --locked --no-run

echo "== regent test policies (the default bundle's Rego tests)"
rego_log=$(mktemp)
./target/debug/regent test policies | tee "$rego_log"
./target/debug/regent check policies >/dev/null

echo "== cargo test"
cargo_log=$(mktemp)
cargo test --workspace --all-targets --locked 2>&1 | tee "$cargo_log"

# One closing line for the whole suite: Rust tests plus Rego tests.
rust_passed=$(grep -E '^test result:' "$cargo_log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s += $1} END {print s + 0}')
rust_failed=$(grep -E '^test result:' "$cargo_log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s += $1} END {print s + 0}')
rego_passed=$(sed -nE 's/^PASS: ([0-9]+)\/[0-9]+$/\1/p' "$rego_log")
rm -f "$rego_log" "$cargo_log"
echo "target/ on disk: $(du -sh target 2>/dev/null | cut -f1)"
echo "tests: $((rust_passed + rego_passed)) passed, ${rust_failed} failed"
