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
# FUZZ_SANITIZER: cargo-fuzz's --sanitizer, default `address` (ASan). On a 2-core machine the ASan
# build of the kernel crate did not finish in an hour (LLVM instrumenting its large SIMD functions,
# 5-10 GB), so `FUZZ_SANITIZER=none` (libFuzzer coverage, debug assertions and overflow checks, no
# ASan; about 14 minutes to build) is what results/fuzz.md records. Its own target dir (target-noasan), so the two
# builds do not replace each other.
sanitizer=${FUZZ_SANITIZER:-address}
target_dir=target
[[ $sanitizer == address ]] || target_dir=target-noasan
# 16 codegen units: cargo-fuzz's default of 1 makes LLVM instrument the kernel crate in one unit.
exec nice -n 10 cargo +nightly fuzz run --codegen-units 16 --sanitizer "$sanitizer" \
    --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 "$@"
