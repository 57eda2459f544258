#!/usr/bin/env bash
# Runs one cargo-fuzz target for a given time: scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]
#
# TARGET: checkpoint (safetensors -> model -> forward), npy (the .npy reader), image (decode +
# preprocessing). Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The working corpus is fuzz/corpus/TARGET (not committed), seeded from fuzz/seeds/TARGET
# (committed; regenerate with fuzz/make_seeds.py). Crashes land in fuzz/artifacts/TARGET/.
# Runs at low priority (nice 10) with one job: the machine is shared.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]}
shift 2
cd "$(dirname "$0")/../fuzz"
mkdir -p "corpus/$target"
# 16 codegen units: cargo-fuzz's default of 1 makes LLVM instrument the kernel crate's large SIMD
# functions (ASan + coverage + compare tracing) in one unit: over 40 min and 10 GB on 2 cores.
exec nice -n 10 cargo +nightly fuzz run --codegen-units 16 "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 "$@"
