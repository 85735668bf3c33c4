#!/usr/bin/env bash
# Development certificates for running regent outside a cluster, or for a
# webhook configuration pointing at a developer's machine.
#
#   certs/dev-certs.sh [OUT_DIR] [DNS_NAME...]
#
# Writes OUT_DIR/ca.crt, tls.crt, tls.key (default OUT_DIR: certs/dev, default
# names: the in-cluster service names) and prints the caBundle (base64 of
# ca.crt) for a Validating/MutatingWebhookConfiguration.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-certs/dev}"
shift || true
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(regent.regent-system.svc regent.regent-system.svc.cluster.local localhost 127.0.0.1)
fi
dns=$(IFS=,; echo "${names[*]}")
cargo run --quiet -- cert --out "$out" --dns "$dns"
