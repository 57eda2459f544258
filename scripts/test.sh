#!/usr/bin/env bash
# The project's test command: the whole workspace once with the default tier (the conformance tests
# run every registered kernel on every tier this CPU has), then once per other available tier forced
# with KERNELS_ISA, so that the dispatch path and the doctests run on each tier too. The tier the
# default run selected is not run a second time; forcing it by name is still checked (the `isa`
# example goes through the same KERNELS_ISA parsing as the library).
#
# The forced runs skip the two `*thread_count_and_batch_split_give_identical_bits` tests
# (model/tests/variants.rs): they pick their tiers themselves (every available one, through
# `Kernels::with_isa`, whatever KERNELS_ISA says), so under a forced tier they would repeat the
# default run's work exactly, and they are the slowest tests of the workspace (a minute of CPU).
#
# The `isa` example runs without `-p`: in this virtual workspace that resolves features as the
# `--workspace` test build does and reuses its binary; `-p mobile-cnn-kernels` would build the
# kernel crate once more under the crate's own features (three minutes on two Zen 3 cores).
#
# BUILD_PROFILE (default: test) picks the cargo profile; CI passes `ci` (Cargo.toml) so that these
# tests and the benchmark smoke runs share one build.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--profile "${BUILD_PROFILE:-test}")

cargo test "${profile[@]}" --workspace --quiet
selected() { cargo run "${profile[@]}" --quiet --example isa | sed -n 's/^selected: //p'; }
default=$(selected)
echo "== default tier: $default"
for isa in scalar portable avx2 avx512 neon; do
  # Ask the kernel crate whether this CPU has the tier (the same detection the library uses).
  if ! cargo run "${profile[@]}" --quiet --example isa -- "$isa" >/dev/null 2>&1; then
    echo "== KERNELS_ISA=$isa: not available on this CPU, skipped"
  elif [[ $isa == "$default" ]]; then
    forced=$(KERNELS_ISA=$isa selected)
    [[ $forced == "$isa" ]] || { echo "error: KERNELS_ISA=$isa selected $forced" >&2; exit 1; }
    echo "== KERNELS_ISA=$isa: the default tier, tested above (forcing it selects $forced)"
  else
    echo "== KERNELS_ISA=$isa"
    KERNELS_ISA=$isa cargo test "${profile[@]}" --workspace --quiet -- \
      --skip thread_count_and_batch_split_give_identical_bits
  fi
done
