#!/usr/bin/env bash
# Same-run before/after comparison of the depthwise kernels: the `dwconv*` criterion groups of
# bench-suite's `kernels` bench at an older commit (default 8bf3656^, the last tree before the
# row-band entry and the k x k body, whose 3x3 kernels are gone from the tree since) against the
# working tree, interleaved round by round (old, new, new, old, ...) so that both see the same
# machine state. Both trees name the 3x3 benchmarks alike (`dwconv3x3_s1/avx2/56x56x48`, ...).
#
#   bash scripts/bench-dwconv-before-after.sh [BEFORE] [ROUNDS] [FILTER]
#   bash scripts/bench-dwconv-before-after.sh 8bf3656^ 4 dwconv3x3_s1
#
# BEFORE: a commit (default 8bf3656^); ROUNDS: rounds per side (default 3); FILTER: criterion filter
# (default dwconv3x3). The older tree is checked out as a detached worktree under
# target/bench-before/ (its own target dir; the first build takes ~10 min). Criterion's results go
# to target/criterion-before-after/ (CRITERION_HOME), one baseline per side and round; the table at
# the end gives per benchmark the median over rounds of criterion's median estimate, both sides,
# and after / before (< 1: faster now). Run it on a quiet machine: it measures, it does not assert.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
before="${1:-8bf3656^}"
rounds="${2:-3}"
filter="${3:-dwconv3x3}"
wt="$root/target/bench-before"
home="$root/target/criterion-before-after"

if [[ ! -d "$wt" ]]; then
    git -C "$root" worktree add --detach "$wt" "$before"
else
    git -C "$wt" checkout --detach -q "$before"
fi

# The bench executable of a tree, built before any timing.
bench_bin() {
    (cd "$1" && cargo bench -p bench-suite --bench kernels --no-run 2>&1) |
        sed -n 's/.*Executable benches\/kernels\.rs (\(.*\))/\1/p' | tail -1
}
old="$wt/$(bench_bin "$wt")"
new="$root/$(bench_bin "$root")"
echo "before: $(git -C "$wt" rev-parse --short HEAD) ($old)" >&2
echo "after:  $(git -C "$root" rev-parse --short HEAD)+worktree ($new)" >&2

mkdir -p "$home"
run() { # side, round, exe, tree
    (cd "$4" && CRITERION_HOME="$home" "$3" --bench "$filter" --save-baseline "$1_r$2" >/dev/null)
}
for ((r = 0; r < rounds; r++)); do
    if ((r % 2 == 0)); then
        run before "$r" "$old" "$wt"
        run after "$r" "$new" "$root"
    else
        run after "$r" "$new" "$root"
        run before "$r" "$old" "$wt"
    fi
done

python3 - "$home" "$rounds" <<'EOF'
import json, pathlib, statistics, sys
home, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = {}
for est in home.glob("**/estimates.json"):
    side_round = est.parent.name
    if "_r" not in side_round:
        continue
    side, r = side_round.rsplit("_r", 1)
    if side not in ("before", "after") or int(r) >= rounds:
        continue
    bench = str(est.parent.parent.relative_to(home))
    median_ns = json.loads(est.read_text())["median"]["point_estimate"]
    rows.setdefault(bench, {}).setdefault(side, []).append(median_ns)
print(f"{'benchmark':<44} {'before us':>10} {'after us':>10} {'after/before':>13}")
for bench in sorted(rows):
    b, a = rows[bench].get("before"), rows[bench].get("after")
    if not b or not a:
        continue
    mb, ma = statistics.median(b) / 1e3, statistics.median(a) / 1e3
    print(f"{bench:<44} {mb:>10.2f} {ma:>10.2f} {ma / mb:>13.3f}")
EOF
