#!/usr/bin/env python3
"""Static throughput estimate of every NEON micro-kernel's inner loop with llvm-mca.

    python3 bench-suite/tools/neon_mca.py [--out results/neon-estimate] [--asm FILE] [--no-latency]

1. Builds the kernels crate for aarch64 with Debian's rustc (the toolchain of
   scripts/test-aarch64.sh) as assembly (`--emit asm`, v0 symbol mangling so that generic instances
   are named), in target/aarch64-mca (apart from the test and bench builds). `--asm FILE` skips this.
2. Finds the aarch64 kernel modules from kernels/src/registry.rs (`crate::aarch64::...::<fn>`
   entries: NEON f32, f16 and bf16) and, in every function of those modules, the innermost loops (a backward branch to a
   label of the same function; innermost = containing no other such loop).
3. Keeps the loops doing floating-point vector arithmetic (at least 8 FLOP an iteration) and runs each
   through llvm-mca for every modelled core: cycles per iteration (steady state, 200 iterations),
   FLOP per iteration (multiply-adds counted from the instructions: FMLA/FMLS 2 per lane, FMLAL and
   BFMLAL 2 per f32 lane, BFDOT 4 per f32 lane, BFMMLA 32; other arithmetic is overhead, as in the
   model's FLOP counts), FLOP per cycle, the same core model's peak
   (a loop of 16 independent FMLA of the loop's type, or BFDOT for bf16: the shape of the peak
   probe in bench-suite/src/peak.rs) and the
   resource that bounds the loop.
4. Writes <out>/kernels.md and kernels.csv (every loop on every core, the loop with the most FLOP per
   iteration of each kernel marked `main`) and cores.csv (the cores, their LLVM scheduling model and
   published clock), then, unless --no-latency, runs `cargo run -p bench-suite --bin neon-estimate`
   to write the predicted end-to-end latencies (latency.md, latency.csv).

Everything here is a static estimate from LLVM's scheduling models: no ARM hardware was run.
Needs: /usr/bin/rustc with the aarch64 std (scripts/test-aarch64.sh installs it), llvm-mca-19 and
llvm-cxxfilt-19 (Debian's llvm-19).
"""

import argparse
import collections
import csv
import glob
import io
import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = "aarch64-unknown-linux-gnu"
MCA = os.environ.get("LLVM_MCA", "llvm-mca-19")
CXXFILT = os.environ.get("LLVM_CXXFILT", "llvm-cxxfilt-19")
# Let llvm-mca parse every instruction a kernel may use, whatever the core; a loop that uses a
# feature the core lacks is reported as "n/a" rather than estimated (see CORES).
MATTR = "+neon,+fullfp16,+fp16fml,+bf16,+i8mm,+dotprod"
ITERATIONS = 200

# The modelled cores: llvm-mca -mcpu name, label, published clock (GHz) and its source, optional
# features it has, and a note on the LLVM 19 scheduling model that -mcpu selects.
CORES = [
    {
        "mcpu": "cortex-a55",
        "label": "Cortex-A55",
        "clock_ghz": 1.8,
        "clock_source": "little cores of Rockchip RK3588 and Snapdragon 865 (1.8 GHz)",
        "features": {"fp16"},
        "model": "CortexA55Model (in-order, its own model)",
    },
    {
        "mcpu": "cortex-a76",
        "label": "Cortex-A76",
        "clock_ghz": 2.4,
        "clock_source": "Raspberry Pi 5 (BCM2712) and RK3588 big cores (2.4 GHz)",
        "features": {"fp16"},
        "model": "CortexA57Model: LLVM 19 has no A76 model and reuses the A57's (one 128-bit FMA "
        "pipe, where the A76 has two)",
    },
    {
        "mcpu": "neoverse-n1",
        "label": "Neoverse N1",
        "clock_ghz": 2.5,
        "clock_source": "AWS Graviton2 (2.5 GHz)",
        "features": {"fp16"},
        "model": "NeoverseN1Model (the server core derived from the Cortex-A76: two 128-bit FP "
        "pipes V0/V1; the closest model of an A76 in LLVM 19)",
    },
    {
        "mcpu": "neoverse-v1",
        "label": "Neoverse V1",
        "clock_ghz": 2.6,
        "clock_source": "AWS Graviton3 (2.6 GHz)",
        "features": {"fp16", "bf16"},
        "model": "NeoverseV1Model (four 128-bit FP pipes V0-V3)",
    },
    {
        "mcpu": "apple-a14",
        "label": "Apple A14 (Firestorm)",
        "clock_ghz": 3.0,
        "clock_source": "iPhone 12's A14 performance core (2.99 GHz)",
        "features": {"fp16"},
        "model": "CycloneModel: LLVM 19 models every Apple core with the 2013 Cyclone model "
        "(A7; two FMA-capable of three vector pipes, where Firestorm has four)",
    },
]

MNEMONIC = re.compile(r"^\s+([a-z][a-z0-9.]*)\s*(.*)$")
LABEL = re.compile(r"^([.\w$]+):")
BRANCH = {"b", "cbz", "cbnz", "tbz", "tbnz"}
ARR = re.compile(r"\bv\d+\.(\d+)([bhsd])\b")


def run(cmd, **kw):
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def build_asm():
    env = dict(os.environ, RUSTC="/usr/bin/rustc", CARGO_TARGET_DIR=os.path.join(REPO, "target/aarch64-mca"))
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "rustc", "--release", "--locked", "--target", TARGET, "-p", "mobile-cnn-kernels",
           "--lib", "--", "--emit", "asm", "-C", "symbol-mangling-version=v0"]
    print("building:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=REPO, env=env)
    files = glob.glob(os.path.join(REPO, "target/aarch64-mca", TARGET, "release/deps/mobile_cnn_kernels-*.s"))
    if not files:
        sys.exit("error: the build wrote no mobile_cnn_kernels-*.s")
    return max(files, key=os.path.getmtime)


def registry_kernels():
    """{module path: [registry names]} of the aarch64 entries of kernels/src/registry.rs, the module
    path as in `aarch64::neon::pointwise` or `aarch64::pointwise_f16`."""
    text = open(os.path.join(REPO, "kernels/src/registry.rs")).read()
    out = collections.OrderedDict()
    for block in text.split("KernelInfo {")[1:]:
        name = re.search(r'name:\s*"(\w+)"', block)
        func = re.search(r"crate::(aarch64(?:::\w+)*)::(\w+)\s*,", block)
        if name and func:
            out.setdefault(func.group(1), []).append(name.group(1))
    if not out:
        sys.exit("error: no crate::aarch64 entries found in kernels/src/registry.rs")
    return out


def functions(asm_lines):
    """[(mangled symbol, [lines])] of every function whose symbol is a v0-mangled Rust name."""
    funcs, cur = [], None
    for line in asm_lines:
        m = LABEL.match(line)
        if m and m.group(1).startswith("_R"):
            cur = (m.group(1), [])
            funcs.append(cur)
        elif cur is not None:
            if line.strip().startswith(".Lfunc_end"):
                cur = None
            else:
                cur[1].append(line)
    return funcs


def demangle(symbols):
    out = run([CXXFILT], input="\n".join(symbols) + "\n")
    return dict(zip(symbols, out.splitlines()))


def instr(line):
    """(mnemonic, operands) of an instruction line, or None."""
    s = line.split("//")[0]
    if not s.strip() or s.lstrip().startswith(".") or LABEL.match(s.strip()):
        return None
    m = MNEMONIC.match(s)
    return (m.group(1), m.group(2).strip()) if m else None


def flops(mn, ops):
    """Useful floating-point operations of one instruction: multiply-adds only, counting 2 per lane
    as the model's FLOP counts do (bias adds, activations and the depthwise sums are overhead)."""
    arr = ARR.findall(ops)
    if not arr:
        return 0
    lanes, elem = int(arr[0][0]), arr[0][1]
    if mn in ("fmla", "fmls"):
        return 2 * lanes
    if mn in ("fmlal", "fmlal2", "fmlsl", "fmlsl2", "bfmlalb", "bfmlalt"):
        return 2 * lanes
    if mn == "bfdot":
        return 4 * lanes
    if mn == "bfmmla":
        return 32
    return 0


# Instructions of the transcendental activations (GELU's erf, sigmoid) and not of a plain
# multiply-add loop: a loop containing them has an activation inlined, whose FMAs are counted too.
ACT_SIGNATURE = {"fabs", "fdiv", "frecpe", "frecps", "bsl", "bif", "bit", "fcmgt", "fcmge", "fcmlt",
                 "fneg", "frintn", "frintm", "fcvtzs", "fcvtns", "scvtf", "fexpa"}


def needs(body):
    """Optional features the loop's instructions use."""
    f = set()
    for mn, ops in body:
        if mn.startswith("bf"):
            f.add("bf16")
        elif mn.startswith("f") and re.search(r"\bv\d+\.(8|4)h\b|\bh\d+\b", ops):
            f.add("fp16")
    return f


def innermost_loops(lines):
    """[(start, end)] line ranges of the innermost loops of one function's lines."""
    labels = {}
    for i, line in enumerate(lines):
        m = LABEL.match(line.strip())
        if m:
            labels[m.group(1)] = i
    loops = []
    for i, line in enumerate(lines):
        ins = instr(line)
        if not ins:
            continue
        mn, ops = ins
        if mn.split(".")[0] in BRANCH:
            target = ops.split(",")[-1].strip()
            if target in labels and labels[target] < i:
                loops.append((labels[target], i))
    return [(s, e) for (s, e) in loops if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e for (s2, e2) in loops)]


def source_line(lines, start, end, files):
    """file:line most common among the .loc directives of the loop's FP instructions."""
    loc, counts = None, collections.Counter()
    # The .loc in force at the loop start is the last one before it.
    for line in lines[:start]:
        if line.strip().startswith(".loc"):
            loc = line.split()[1:3]
    for line in lines[start:end + 1]:
        s = line.strip()
        if s.startswith(".loc"):
            loc = s.split()[1:3]
            continue
        ins = instr(line)
        # Intrinsics are inlined with their own (stdarch) locations: count the kernel's lines only.
        if ins and loc and files.get(loc[0], "").startswith("kernels/"):
            counts[(loc[0], loc[1])] += 1
    if not counts:
        return "?"
    (fid, ln), _ = counts.most_common(1)[0]
    return f"{files.get(fid, '?')}:{ln}"


def mca(body_text, mcpu):
    out = run([MCA, "-mtriple=aarch64", f"-mcpu={mcpu}", f"-mattr={MATTR}", f"-iterations={ITERATIONS}",
               "-resource-pressure", "-instruction-info=false", "-bottleneck-analysis"], input=body_text)
    total = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    uops = int(re.search(r"Total uOps:\s+(\d+)", out).group(1))
    width = int(re.search(r"Dispatch Width:\s+(\d+)", out).group(1))
    names = dict(re.findall(r"^\[([\d.]+)\]\s+-\s+(\S+)", out, re.M))
    block = out.split("Resource pressure per iteration:")[1].strip().splitlines()
    idx = [h.strip("[]") for h in block[0].split()]
    vals = [0.0 if v == "-" else float(v) for v in block[1].split()]
    cyc = total / ITERATIONS
    limits = {names.get(i, i): max(v, 0.0) for i, v in zip(idx, vals)}
    for i, v in zip(idx, vals):
        limits[names.get(i, i)] = max(limits.get(names.get(i, i), 0.0), v)
    limits[f"dispatch ({width}/cycle)"] = uops / ITERATIONS / width
    res, worst = max(limits.items(), key=lambda kv: kv[1])
    if worst >= 0.9 * cyc:
        bound = f"{res} ({worst:.2f} cyc/iter busy)"
    else:
        dep = re.search(r"Data Dependencies:\s+\[\s*([\d.]+)%", out)
        bound = f"dependency latency (busiest: {res} {worst:.2f} cyc/iter" + (
            f"; mca data-dependency stalls {dep.group(1)} %)" if dep else ")")
    return cyc, bound


def peak_bf16(mcpu):
    """FLOP per cycle of 16 independent BFDOT (.4s from .8h, 16 FLOP each) in the core model."""
    body = "".join(f"bfdot v{16 + i}.4s, v0.8h, v1.2h[1]\n" for i in range(16))
    cyc, _ = mca(body, mcpu)
    return 16 * 16 / cyc


def peak(mcpu, arrangement):
    """FLOP per cycle of 16 independent FMLA of `arrangement` (`4s`, `8h`) in the core model: the
    better of the vector and the by-element form (some models issue them on different pipes)."""
    lanes = int(arrangement[:-1])
    best = 0.0
    # Accumulators v16-v31; the by-element operand of an .8h FMLA must be one of v0-v15.
    for b in (f"v1.{arrangement}", f"v1.{arrangement[-1]}[1]"):
        body = "".join(f"fmla v{16 + i}.{arrangement}, v0.{arrangement}, {b}\n" for i in range(16))
        cyc, _ = mca(body, mcpu)
        best = max(best, 16 * 2 * lanes / cyc)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "results/neon-estimate"))
    ap.add_argument("--asm", help="use this assembly file instead of building one")
    ap.add_argument("--no-latency", action="store_true", help="do not run the neon-estimate binary")
    args = ap.parse_args()

    asm_path = args.asm or build_asm()
    lines = open(asm_path).read().splitlines()
    files = {m.group(1): m.group(3) for m in
             (re.match(r'\s*\.file\s+(\d+)\s+"([^"]*)"\s+"([^"]*)"', ln) for ln in lines) if m}
    kernels = registry_kernels()
    funcs = functions(lines)
    names = demangle([f for f, _ in funcs])
    llvm = run([MCA, "--version"]).strip().splitlines()[0].strip()
    rustc = run(["/usr/bin/rustc", "-V"]).strip()
    commit = run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"]).strip()
    if run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"]).strip():
        commit += "-dirty"

    # Every innermost FP loop of every NEON kernel module, deduplicated by instruction text (the same
    # loop is inlined into several generic instances).
    loops = []
    for module, regnames in kernels.items():
        prefix = f"mobile_cnn_kernels::{module}::"
        seen = set()
        for sym, body in funcs:
            name = names.get(sym, sym)
            if not name.startswith(prefix):
                continue
            for s, e in innermost_loops(body):
                ins = [x for x in (instr(ln) for ln in body[s:e + 1]) if x]
                fl = sum(flops(*x) for x in ins)
                if fl < 8:
                    continue
                text = "".join(f"{mn} {ops}\n" for mn, ops in ins)
                src = source_line(body, s, e, files)
                # One loop per (work per iteration, source line): the generic instances (activation,
                # tile height) repeat a loop with other registers.
                key = (fl, src)
                if key in seen:
                    continue
                seen.add(key)
                loops.append({
                    "kernel": "/".join(regnames), "module": module, "function": name,
                    "source": src, "instructions": len(ins),
                    "flops": fl, "needs": needs(ins), "text": text,
                    "act": any(mn in ACT_SIGNATURE for mn, _ in ins),
                })
    if not loops:
        sys.exit("error: no floating-point inner loop found in the NEON kernels")
    # The main loop of a kernel: the most FLOP per iteration among its loops without an inlined
    # transcendental activation (whose polynomial FMAs would count as the kernel's work).
    for module in kernels:
        of = [lp for lp in loops if lp["module"] == module]
        plain = [lp for lp in of if not lp["act"]] or of
        if plain:
            max(plain, key=lambda lp: lp["flops"])["main"] = True

    peaks = {c["mcpu"]: {"f32": peak(c["mcpu"], "4s"), "f16": peak(c["mcpu"], "8h"),
                         "bf16": peak_bf16(c["mcpu"])} for c in CORES}
    rows = []
    for lp in loops:
        dtype = "f16" if "fp16" in lp["needs"] else ("bf16" if "bf16" in lp["needs"] else "f32")
        for c in CORES:
            row = {k: lp[k] for k in ("kernel", "source", "instructions", "flops")}
            row["activation_inlined"] = int(lp["act"])
            row.update(core=c["label"], mcpu=c["mcpu"], dtype=dtype, main=int(bool(lp.get("main"))))
            if not lp["needs"] <= c["features"]:
                row.update(cycles="", flop_per_cycle="", peak="", percent="",
                           bottleneck=f"n/a: the core lacks {', '.join(sorted(lp['needs'] - c['features']))}")
            else:
                cyc, bound = mca(lp["text"], c["mcpu"])
                pk = peaks[c["mcpu"]][dtype]
                fpc = lp["flops"] / cyc
                row.update(cycles=f"{cyc:.2f}", flop_per_cycle=f"{fpc:.2f}", peak=f"{pk:.1f}",
                           percent=f"{100 * fpc / pk:.1f}", bottleneck=bound)
            rows.append(row)

    os.makedirs(args.out, exist_ok=True)
    fields = ["kernel", "main", "activation_inlined", "source", "dtype", "core", "mcpu", "instructions", "flops", "cycles",
              "flop_per_cycle", "peak", "percent", "bottleneck"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    open(os.path.join(args.out, "kernels.csv"), "w").write(buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["core", "mcpu", "clock_ghz", "peak_f32_flop_per_cycle", "clock_source", "llvm_model"])
    for c in CORES:
        w.writerow([c["label"], c["mcpu"], c["clock_ghz"], f"{peaks[c['mcpu']]['f32']:.1f}", c["clock_source"], c["model"]])
    open(os.path.join(args.out, "cores.csv"), "w").write(buf.getvalue())

    md = io.StringIO()
    p = lambda *a: print(*a, file=md)
    p("# NEON micro-kernels: static throughput estimate (llvm-mca)\n")
    p("**A static estimate from LLVM's scheduling models, not a measurement**: no ARM hardware ran "
      "these figures. Regenerate with `python3 bench-suite/tools/neon_mca.py`.\n")
    p(f"- LLVM: {llvm} (`{MCA} -mattr={MATTR} -iterations={ITERATIONS}`)")
    p(f"- Kernels compiled by: {rustc}, target {TARGET}, release profile; commit {commit}")
    p("- Loops: every innermost loop (backward branch) of the functions of each NEON kernel module in "
      "`kernels/src/registry.rs` doing at least 8 FLOP an iteration; identical loops of different "
      "generic instances once. **main** marks the kernel's loop with the most FLOP per iteration "
      "among those without an inlined GELU (used for the latency estimate).")
    p("- FLOP/iter counts the multiply-adds (FMLA 2 per lane; bias adds, activations and sums are "
      "overhead, as in the model's FLOP counts). Cycles/iter: llvm-mca's "
      "steady state. Peak: the same model's FLOP/cycle on 16 independent FMLA of the loop's type (.4s f32, "
      ".8h f16) or BFDOT (bf16), the peak probe's loop. Bottleneck: the busiest resource when it is busy at least 90 % of the cycles, else "
      "dependency latency.\n")
    p("## Cores\n")
    p("| core | -mcpu | published clock | LLVM 19 scheduling model | model's peak f32 / f16 / bf16 (FLOP/cycle) |")
    p("|---|---|---|---|---:|")
    for c in CORES:
        pk = peaks[c["mcpu"]]
        bf = f"{pk['bf16']:.1f}" if "bf16" in c["features"] else "no bf16"
        p(f"| {c['label']} | `{c['mcpu']}` | {c['clock_ghz']} GHz ({c['clock_source']}) | {c['model']} | "
          f"{pk['f32']:.1f} / {pk['f16']:.1f} / {bf} |")
    p("\n## Main loops\n")
    p("| kernel | loop (source) | type | FLOP/iter | core | cycles/iter | FLOP/cycle | peak | % of peak | bottleneck |")
    p("|---|---|---|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        if r["main"]:
            p(f"| {r['kernel']} | `{r['source']}` | {r['dtype']} | {r['flops']} | {r['core']} | "
              f"{r['cycles'] or '-'} | {r['flop_per_cycle'] or '-'} | {r['peak'] or '-'} | "
              f"{r['percent'] or '-'} | {r['bottleneck']} |")
    p("\n## Every inner loop\n")
    p("Each cell: cycles per iteration (percent of the core model's peak). Loops of a kernel with the "
      "same source line and FLOP/iter are the tile's height or tail variants.\n")
    p("FLOP/iter marked * includes the FMAs of an inlined activation polynomial (GELU).\n")
    p("| kernel | loop (source) | main | FLOP/iter | " + " | ".join(c["label"] for c in CORES) + " |")
    p("|---|---|---|---:|" + "---:|" * len(CORES))
    for i in range(0, len(rows), len(CORES)):
        grp = rows[i:i + len(CORES)]
        r = grp[0]
        cells = [f"{g['cycles']} ({g['percent']} %)" if g["cycles"] else "n/a" for g in grp]
        star = "*" if r["activation_inlined"] else ""
        p(f"| {r['kernel']} | `{r['source']}` | {'main' if r['main'] else ''} | {r['flops']}{star} | " + " | ".join(cells) + " |")
    open(os.path.join(args.out, "kernels.md"), "w").write(md.getvalue())
    print(f"wrote {args.out}/kernels.md, kernels.csv, cores.csv ({len(loops)} loops x {len(CORES)} cores)",
          file=sys.stderr)

    if not args.no_latency:
        subprocess.run(["cargo", "run", "--release", "--locked", "-q", "-p", "bench-suite", "--bin",
                        "neon-estimate", "--", args.out], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
