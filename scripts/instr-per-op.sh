#!/usr/bin/env bash
# Instructions per alloc+free pair of the same_thread_small_churn loop, per allocator and
# size, counted by callgrind (this machine's VM has no hardware counters for `perf stat`).
# Each (allocator, size) runs at two pair counts; the difference ÷ the extra pairs cancels
# start-up, allocator construction and warm-up.
# Usage: scripts/instr-per-op.sh [SIZES...]   (default: 32 64 65 4096 70000)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instr-per-op: valgrind not installed" >&2; exit 1; }
cargo build -q --release -p tensor-arena-bench --bin churn-instr
bin=target/release/churn-instr
sizes=("$@"); [ "${#sizes[@]}" -gt 0 ] || sizes=(32 64 65 4096 70000)
small=100000 large=300000
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 | awk '/Collected :/ { print $NF }'; }
printf '| size | %s |\n|---:|%s\n' "tensor-arena | orthotope | mimalloc | jemalloc | System" "---:|---:|---:|---:|---:|"
for size in "${sizes[@]}"; do
  row="| $size |"
  for a in tensor-arena orthotope mimalloc jemalloc System; do
    lo=$(ir "$a" "$size" $small) hi=$(ir "$a" "$size" $large)
    row="$row $(python3 -c "print(f'{($hi - $lo) / ($large - $small):.1f}')") |"
  done
  echo "$row"
done
