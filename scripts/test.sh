#!/usr/bin/env bash
# The project's test command: the whole workspace once with the default tier (the conformance tests
# run every registered kernel on every tier this CPU has), then once per available tier forced with
# KERNELS_ISA, so that the dispatch path and the doctests run on each tier too.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --quiet
for isa in scalar avx2 avx512 neon; do
  # Ask the kernel crate whether this CPU has the tier (the same detection the library uses).
  if cargo run --quiet -p mobile-cnn-kernels --example isa -- "$isa" >/dev/null 2>&1; then
    echo "== KERNELS_ISA=$isa"
    KERNELS_ISA=$isa cargo test --workspace --quiet
  else
    echo "== KERNELS_ISA=$isa: not available on this CPU, skipped"
  fi
done
