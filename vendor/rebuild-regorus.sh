#!/usr/bin/env bash
# Rebuilds vendor/regorus from the pristine crates.io release of regorus
# (its .crate's sha256 pinned below) and the numbered patch series in
# vendor/regorus-patches/, applied in order. Every change Regent carries is
# one of those files, documented in vendor/REGENT-PATCHES.md.
#
#   vendor/rebuild-regorus.sh           # rewrite vendor/regorus
#   vendor/rebuild-regorus.sh --check   # exit 1 unless vendor/regorus is exactly that
#
# The crate comes from cargo's registry cache when it is there, else from
# static.crates.io. Only the manifest (trimmed by patch 0000), src/,
# README.md and LICENSE are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.14.1
SHA256=ec9c3ac0d614c8f87448b86c8ddef36c8affce3d2c5deea81b7c28c812e4bfb8

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crate="$tmp/regorus-$VERSION.crate"
cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"regorus-$VERSION.crate" 2>/dev/null | head -1 || true)
if [ -n "$cached" ]; then
  cp "$cached" "$crate"
else
  curl -sSfL "https://static.crates.io/crates/regorus/regorus-$VERSION.crate" -o "$crate"
fi
echo "$SHA256  $crate" | sha256sum --check --quiet - || {
  echo "regorus-$VERSION.crate does not have the pinned sha256 $SHA256" >&2
  exit 1
}
tar -xzf "$crate" -C "$tmp"
out="$tmp/regorus"
mkdir -p "$out"
cp -r "$tmp/regorus-$VERSION/src" "$tmp/regorus-$VERSION/Cargo.toml" \
  "$tmp/regorus-$VERSION/README.md" "$tmp/regorus-$VERSION/LICENSE" "$out/"
n=0
root=$PWD
for p in vendor/regorus-patches/[0-9][0-9][0-9][0-9]-*.patch; do
  (cd "$out" && git apply -p1 --whitespace=nowarn "$root/$p") || {
    echo "$p does not apply to regorus $VERSION with the patches before it" >&2
    exit 1
  }
  n=$((n + 1))
done
if [ "${1:-}" = "--check" ]; then
  # Every patch file is documented, and every marker names its patch.
  documented=$(grep -cE '^## [0-9]+\. ' vendor/REGENT-PATCHES.md)
  if [ "$documented" != "$n" ]; then
    echo "vendor/REGENT-PATCHES.md documents $documented patches; vendor/regorus-patches has $n" >&2
    exit 1
  fi
  for p in vendor/regorus-patches/*.patch; do
    k=$((10#$(basename "$p" | cut -c1-4)))
    grep -qE "^## $k\. " vendor/REGENT-PATCHES.md || { echo "$p has no section in vendor/REGENT-PATCHES.md" >&2; exit 1; }
  done
  if grep -rn '\[regent patch\]' vendor/regorus/src >"$tmp/unnumbered.txt"; then
    echo "[regent patch] markers without a number:" >&2
    cat "$tmp/unnumbered.txt" >&2
    exit 1
  fi
  if ! diff -r "$out" vendor/regorus >"$tmp/diff.txt"; then
    echo "vendor/regorus is not the pristine regorus $VERSION plus the $n patches of vendor/regorus-patches:" >&2
    head -40 "$tmp/diff.txt" >&2
    echo "(run vendor/rebuild-regorus.sh, or add the change as a numbered patch)" >&2
    exit 1
  fi
  echo "vendor/regorus = regorus $VERSION (sha256 pinned) + $n patches"
else
  rm -rf vendor/regorus
  cp -r "$out" vendor/regorus
  echo "vendor/regorus rebuilt: regorus $VERSION + $n patches"
fi
