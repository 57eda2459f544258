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
exec nice -n 10 cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 "$@"
