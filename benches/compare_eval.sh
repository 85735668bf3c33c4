#!/usr/bin/env bash
# Behaviour check for refactors and speed work: runs
# `regent eval --mutate -o json` on every fixture under tests/fixtures with
# two binaries (the default bundle, the Gatekeeper fixture bundle, and each
# fixture's own directory as the bundle) and compares stdout, stderr and the
# exit code byte for byte.
#
#   benches/compare_eval.sh OLD_REGENT NEW_REGENT
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_REGENT NEW_REGENT" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {
  local bin=$1 dir=$2 n=0
  mkdir -p "$dir"
  while IFS= read -r f; do
    n=$((n + 1))
    local key=${f//\//_}
    for bundle in default tests/fixtures/gatekeeper-bundle own; do
      local args=()
      case $bundle in
        default) ;;
        own) args=(--policies "$(dirname "$f")") ;;
        *) args=(--policies "$bundle") ;;
      esac
      local tag=${bundle//\//_}
      set +e
      "$bin" eval --mutate -o json "${args[@]}" -f "$f" >"$dir/$key.$tag.out" 2>"$dir/$key.$tag.err"
      echo "exit=$?" >>"$dir/$key.$tag.out"
      set -e
    done
  done < <(find tests/fixtures -type f \( -name '*.yaml' -o -name '*.json' \) | sort)
  echo "$n"
}
n=$(run "$1" "$out/old")
run "$2" "$out/new" >/dev/null
if diff -r "$out/old" "$out/new"; then
  echo "identical: $n fixtures x 3 bundles (stdout, stderr, exit code)"
else
  echo "DIFFERENT (see above)" >&2
  exit 1
fi
