#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 60):
#   bash scripts/fuzz.sh [seconds-per-target]
# With the nightly toolchain (rustup) the targets are built with AddressSanitizer
# (`cargo +nightly fuzz run`), otherwise without a sanitizer on stable (`-s none`). Both
# with debug assertions. Installs cargo-fuzz if it is missing. Each target starts from its
# committed seed corpus (fuzz/corpus/<target>) plus what earlier runs in this checkout
# found (fuzz/target/corpus-run/<target>, not committed). Prints runs and execs/s per
# target; on a crash (or timeout / out-of-memory) it prints the reproducer's path
# (fuzz/artifacts/<target>/...) and exits non-zero after running the other targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: bash scripts/fuzz.sh [seconds-per-target]" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# FUZZ_SANITIZER=none forces the stable build (what a machine without nightly runs).
if [ "${FUZZ_SANITIZER:-}" != none ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  sanitizer=address
else
  toolchain=()
  sanitizer=none
fi
flags=(--debug-assertions --sanitizer "$sanitizer")
echo "fuzz: $(cargo fuzz --version), toolchain ${toolchain[*]:-stable}, sanitizer $sanitizer, ${seconds}s per target"

start=$(date +%s)
cargo "${toolchain[@]}" fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start))s"

mapfile -t targets < <(cargo fuzz list)
failed=()
for target in "${targets[@]}"; do
  work="fuzz/target/corpus-run/$target"
  log="fuzz/target/fuzz-$target.log"
  mkdir -p "$work" "fuzz/artifacts/$target"
  # Artifacts of earlier runs must not be mistaken for this run's.
  marker="fuzz/target/fuzz-$target.started"
  touch "$marker"
  status=0
  cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ runs' || true)
  execs=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  corpus=$(find "$work" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $target: ok, ${runs:-? runs} in ${seconds}s (${execs:-?} execs/s), corpus $corpus inputs"
  else
    failed+=("$target")
    echo "fuzz: $target: FAILED (exit $status) after ${runs:-? runs}; log: $log" >&2
    grep -E -m5 -A2 "panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY" "$log" >&2 || tail -n 30 "$log" >&2
    find "fuzz/artifacts/$target" -type f -newer "$marker" | while read -r artifact; do
      echo "fuzz: reproducer: $artifact" >&2
      echo "fuzz:   cargo ${toolchain[*]} fuzz run ${flags[*]} $target $artifact" >&2
    done
  fi
done

echo "fuzz: ${#targets[@]} targets in $(($(date +%s) - start))s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
