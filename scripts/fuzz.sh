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
# FUZZ_SANITIZER: cargo-fuzz's --sanitizer, default `address` (ASan). FUZZ_PROFILE: `dev` (default)
# or `release`. The ASan build at cargo-fuzz's release default (opt-level 3) did not finish in an
# hour on 2 cores (LLVM instrumenting the kernel crate's large SIMD functions); with `--dev` (the
# fuzz workspace's dev profile: opt-level 0, debug assertions and overflow checks on) it builds in
# about 1.5 minutes on a quiet machine (28.6 minutes on 2026-12-07 with three other workspace
# builds on the same 2 cores). `FUZZ_SANITIZER=none` (libFuzzer coverage only) builds into its own
# target dir, so the two builds do not replace each other.
sanitizer=${FUZZ_SANITIZER:-address}
profile=${FUZZ_PROFILE:-dev}
case $profile in
    dev) profile_flag=--dev ;;
    release) profile_flag=--release ;;
    *) echo "error: FUZZ_PROFILE must be dev or release, found \`$profile\`" >&2; exit 2 ;;
esac
target_dir=target-$profile
[[ $sanitizer == address ]] || target_dir=target-$profile-noasan
# 16 codegen units: cargo-fuzz's default of 1 (release) makes LLVM instrument the kernel crate in
# one unit.
exec nice -n 10 cargo +nightly fuzz run "$profile_flag" --codegen-units 16 --sanitizer "$sanitizer" \
    --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 "$@"
