#!/usr/bin/env bash
# Same-run before/after comparison of whole models: `repvit bench` of an older commit against the
# working tree, interleaved round by round (before, after, after, before, ...) so that both see the
# same machine state. For changes that should not move speed (a restructuring), this is the check
# that they did not.
#
#   bash scripts/bench-model-before-after.sh BEFORE [ROUNDS] [ITERS]
#   bash scripts/bench-model-before-after.sh a7d786e 6 60
#
# Environment: VARIANTS (default "m1_0 mobilenetv3_large_100"), THREADS (default "1 2"),
# PRECISIONS (default "f32", plus "bf16" when this CPU's widest tier has a bf16 GEMM: AVX512_BF16
# or NEON BF16). The older tree is checked out as a detached worktree under target/model-before/
# with its own target dir; both `repvit` binaries are built with the release profile before any
# timing. Each run is `repvit bench --json --no-layers --iters ITERS` (random weights, batch 1, each
# model at its own input size: 224 x 224, MobileNetV4-M 256, -L 384). The table gives per (variant,
# threads, precision) the median over rounds of each run's median ms, both sides, and after /
# before (< 1: faster now). It measures, it does not assert; the raw JSON lines go to
# target/model-before-after.jsonl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
before="${1:?usage: bench-model-before-after.sh BEFORE [ROUNDS] [ITERS]}"
rounds="${2:-6}"
iters="${3:-60}"
variants=(${VARIANTS:-m1_0 mobilenetv3_large_100})
threads=(${THREADS:-1 2})
wt="$root/target/model-before"
raw="$root/target/model-before-after.jsonl"

if [[ ! -d "$wt" ]]; then
    git -C "$root" worktree add --detach "$wt" "$before"
else
    git -C "$wt" checkout --detach -q "$before"
fi
(cd "$wt" && cargo build --release --locked -q -p repvit --bin repvit)
(cd "$root" && cargo build --release --locked -q -p repvit --bin repvit)
old="$wt/target/release/repvit"
new="$root/target/release/repvit"

if [[ -n ${PRECISIONS:-} ]]; then
    precisions=($PRECISIONS)
elif "$new" bench --precision bf16 --iters 1 --no-layers >/dev/null 2>&1; then
    precisions=(f32 bf16)
else
    precisions=(f32)
fi
echo "before: $(git -C "$wt" rev-parse --short HEAD); after: $(git -C "$root" rev-parse --short HEAD)+worktree" >&2
echo "precisions: ${precisions[*]}" >&2

: >"$raw"
run() { # side, exe, variant, threads, precision
    "$2" bench --variant "$3" --threads "$4" --precision "$5" --iters "$iters" --json --no-layers |
        sed "s/^{/{\"side\":\"$1\",/" >>"$raw"
}
for ((r = 0; r < rounds; r++)); do
    for v in "${variants[@]}"; do
        for t in "${threads[@]}"; do
            for p in "${precisions[@]}"; do
                if ((r % 2 == 0)); then
                    run before "$old" "$v" "$t" "$p"
                    run after "$new" "$v" "$t" "$p"
                else
                    run after "$new" "$v" "$t" "$p"
                    run before "$old" "$v" "$t" "$p"
                fi
            done
        done
    done
done

python3 - "$raw" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["variant"], r["threads"], r["precision"], r["isa"])
    rows.setdefault(key, {}).setdefault(r["side"], []).append(r["median_ms"])
print("| model | threads | precision | ISA | before ms | after ms | after / before | rounds |")
print("|---|---|---|---|---|---|---|---|")
for (v, t, p, isa), sides in sorted(rows.items()):
    b = statistics.median(sides["before"])
    a = statistics.median(sides["after"])
    print(f"| {v} | {t} | {p} | {isa} | {b:.3f} | {a:.3f} | {a / b:.3f} | {len(sides['after'])} |")
EOF
