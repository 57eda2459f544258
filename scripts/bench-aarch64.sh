#!/usr/bin/env bash
# Proves that `cargo bench` and the report work on an aarch64 board, from an x86-64 host: builds the
# benchmarks and the report command for aarch64 with Debian's rustc (the toolchain of
# scripts/test-aarch64.sh, which installs it), then under qemu-user:
#
#   1. runs the benchmarks once (`cargo bench -- --test`: each routine runs once, nothing measured):
#      every NEON kernel benchmark (f32, f16, bf16; the two-thread pointwise ones in f32 only, the
#      same code as at one thread; not the scalar ones, whose code the x86 run and the aarch64 tests
#      already cover, and which cost the most under emulation), and the model benchmarks of RepViT-M0.9 (end to end at 1 and all
#      threads, every layer); the other variants run the same code on other shapes and cost minutes
#      each under emulation (BENCH_AARCH64_TEST_FILTER overrides, e.g. '.' for everything);
#   2. measures a small subset for real, so that criterion writes its estimates as on a board:
#      criterion's quick mode (`--quick`: no warm-up, 1 then 2 iterations, doubling until the
#      measurement time) with a 10 ms measurement time and 1000 bootstrap resamples. The subset
#      (BENCH_AARCH64_FILTER, a criterion regex) covers every group the report reads: the peak
#      probe, one depthwise, pointwise, stem and squeeze-excite shape, and RepViT-M0.9 end to end at
#      one thread with its per-layer benchmarks;
#   3. runs the aarch64 `report` on that criterion output (into a temporary directory unless
#      BENCH_AARCH64_OUT is set) and checks that it wrote kernels.md and report.md with NEON figures.
#
# Figures measured under qemu are the emulator's, not a core's: the point is that the programs run.
#
#   scripts/bench-aarch64.sh
#
# BUILD_PROFILE (default: bench, whose artefacts go to target/release) picks the cargo profile; CI
# passes `ci` (Cargo.toml), the profile scripts/test-aarch64.sh has just built with, so only the
# bench binaries and the report are compiled here. The report is the binary that building the
# benches builds (cargo builds a package's binaries for its benchmarks): a `cargo build -p
# bench-suite --bin report` of its own resolved other features for the dependencies without
# dev-dependencies, and so rebuilt image, regex, criterion, repvit and bench-suite (80 s in CI).
#
# Artefacts: $AARCH64_TARGET_DIR (default target/aarch64-debian, shared with scripts/test-aarch64.sh);
# criterion output in $AARCH64_TARGET_DIR/criterion (removed first, so the report sees this run only).
set -euo pipefail

readonly TARGET=aarch64-unknown-linux-gnu
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

log() { printf '\n==> %s\n' "$*" >&2; }

for tool in /usr/bin/rustc qemu-aarch64 aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool missing: run scripts/test-aarch64.sh once (it installs the toolchain)" >&2
        exit 1
    }
done

CARGO=${CARGO:-$(command -v cargo || echo /usr/bin/cargo)}
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=${AARCH64_TARGET_DIR:-$repo/target/aarch64-debian}
unset QEMU_LD_PREFIX KERNELS_ISA BENCH_QUICK CRITERION_HOME
# Every NEON feature qemu emulates (as a recent core would offer); the kernels dispatch to NEON.
export QEMU_CPU=${QEMU_CPU:-max}
criterion_dir=$CARGO_TARGET_DIR/criterion
test_filter=${BENCH_AARCH64_TEST_FILTER:-'^(peak_fma|(dwconv[357]x[357]_s[12]|pointwise_t1|stem_conv3x3_t[12]|se_gate_t1)/neon|pointwise_t2/neon/|layers_m0_9_t1/|model_e2e_t[0-9]+/[a-z0-9]+/m0_9$)'}
filter=${BENCH_AARCH64_FILTER:-'^(peak_fma/|dwconv3x3_s1/neon/56x56x48$|pointwise_t1/neon/3136x48x96$|stem_conv3x3_t1/neon/112x112x24to48$|se_gate_t1/neon/56x56x56$|model_e2e_t1/neon/m0_9$|layers_m0_9_t1/)'}
start=$SECONDS
if [[ -n ${BUILD_PROFILE:-} ]]; then
    bench_profile=(--profile "$BUILD_PROFILE") report_dir=$BUILD_PROFILE
else
    bench_profile=() report_dir=release
fi
report=$CARGO_TARGET_DIR/$TARGET/$report_dir/report

log "$("$RUSTC" --version) for $TARGET: building the benches and the report (${bench_profile[*]:-bench profile})"
# `--bench '*'`: the criterion targets only (the library's and binaries' libtest harnesses would
# reject criterion's options). `--workspace`, as in scripts/test-aarch64.sh, so that cargo resolves
# the same features and reuses that build (with `-p bench-suite` it rebuilt image, regex and more).
# This also builds bench-suite's binaries, the report among them, with the same features.
rm -f "$report"
"$CARGO" bench "${bench_profile[@]}" --locked --target "$TARGET" --workspace --bench '*' --no-run
[[ -x $report ]] || {
    echo "error: building the benches did not build $report" >&2
    exit 1
}

log "benchmarks once under qemu (QEMU_CPU=$QEMU_CPU): cargo bench -- --test $test_filter"
"$CARGO" bench "${bench_profile[@]}" --locked --target "$TARGET" --workspace --bench '*' -- --test "$test_filter"

log "measuring a subset under qemu (criterion --quick, 10 ms): $filter"
rm -rf "$criterion_dir"
"$CARGO" bench "${bench_profile[@]}" --locked --target "$TARGET" --workspace --bench '*' -- \
    --quick --measurement-time 0.01 --nresamples 1000 "$filter"

out=${BENCH_AARCH64_OUT:-$(mktemp -d)}
log "report (aarch64 build, under qemu) on $criterion_dir -> $out"
qemu-aarch64 "$report" --criterion-dir "$criterion_dir" --out "$out"
record=$(find "$out" -mindepth 1 -maxdepth 1 -type d | head -n 1)
for f in kernels.md kernels.csv report.md layers.csv; do
    [[ -s $record/$f ]] || {
        echo "error: the report wrote no $f in $record" >&2
        exit 1
    }
done
grep -q '| neon |' "$record/kernels.md" || {
    echo "error: $record/kernels.md has no NEON peak row" >&2
    exit 1
}
grep -q '^| m0_9 | 1 |' "$record/report.md" || {
    echo "error: $record/report.md has no M0.9 end-to-end row" >&2
    exit 1
}
grep -m1 '^- ARM cores' "$record/report.md" >&2 || true
log "aarch64 benches built, run once, measured and reported under qemu ($((SECONDS - start)) s)"
if [[ -z ${BENCH_AARCH64_OUT:-} ]]; then
    rm -rf "$out"
fi
