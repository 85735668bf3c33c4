#!/usr/bin/env bash
# Writes vendor/regorus.patch: the difference between the vendored regorus and
# the crates.io release it was copied from (fetched into cargo's registry
# cache), so every change Regent carries is visible and ready to send upstream.
#   vendor/regorus-diff.sh        # rewrite vendor/regorus.patch
#   vendor/regorus-diff.sh --check  # exit 1 if it is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' vendor/regorus/Cargo.toml | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
url="https://static.crates.io/crates/regorus/regorus-$version.crate"
curl -sSfL "$url" -o "$tmp/regorus.crate"
tar -xzf "$tmp/regorus.crate" -C "$tmp"
(cd "$tmp" && diff -ruN "regorus-$version/src" "$OLDPWD/vendor/regorus/src" \
  | sed -e "s|$tmp/||; s|$OLDPWD/||" -e "/^\(---\|+++\) /s/\t.*//") > "$tmp/regorus.patch" || true
if [ "${1:-}" = "--check" ]; then
  diff -q "$tmp/regorus.patch" vendor/regorus.patch
else
  cp "$tmp/regorus.patch" vendor/regorus.patch
  echo "vendor/regorus.patch: $(grep -c '^+++ ' vendor/regorus.patch) file(s) changed"
fi
