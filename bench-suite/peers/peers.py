#!/usr/bin/env python3
"""Peer comparison: RepViT and MobileNet latency on repvit-rs, ONNX Runtime, OpenVINO and PyTorch eager, in one run.

Normally started by run.sh, which prepares the venv. For each variant: build timm's model with random
weights (eval mode), save its state dict as safetensors (so repvit-rs runs the very same weights), export
ONNX (static 1x3xSxS, S the model's native size: 224, MobileNetV4-M 256, -L 384), check every engine's logits against PyTorch on one input, then for each thread
count time every engine in interleaved rounds. Writes one JSON object per line to --out (a leading
{"engine": "machine", ...} line, then one line per engine, variant and thread count) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ALL_VARIANTS = ["m0_9", "m1_0", "m1_1", "m1_5", "m2_3", "m1", "m2", "m3"]
# timm's MobileNets, EfficientNets and MobileNetV4s that repvit-rs runs (`--variant mobilenets`
# selects all).
MOBILENETS = ["mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv2_100", "efficientnet_b0",
              "efficientnet_lite0", "mobilenetv4_conv_small", "mobilenetv4_conv_medium",
              "mobilenetv4_conv_large"]
ENGINES = ["repvit-rs", "litert-xnnpack", "onnxruntime", "openvino", "pytorch"]
SIZE, OPSET = 224, 17
# Native input side of the models whose timm pretrained config is not 224 (`pretrained_cfg`
# input_size): every engine runs them at this size.
NATIVE_SIZE = {"mobilenetv4_conv_medium": 256, "mobilenetv4_conv_large": 384}


def input_size(v: str) -> int:
    """The input side a variant runs at (its timm pretrained config's)."""
    return NATIVE_SIZE.get(v, SIZE)
LITERT = Path(__file__).resolve().parent / "litert_peer.py"
# Where the two threads ran in a round, from what `repvit bench` measured just before and after its
# timed passes of that round (`repvit::cores::core_sharing` and `core_round_trip`): "shared" when
# the threads slowed each other like two hardware threads of one core (sharing above SHARED), "far"
# when a cache line took NEAR_NS or more there and back, else "near" (two cores of one L3). On the
# 2-core AMD EPYC Zen 4 VMs of 2026-12-06 the placement changed every few minutes between all three
# (round trips 25-51, 60-76 and 293-341 ns), and every engine's two-thread time moved with it, so the
# rounds are also summarised per placement.
NEAR_NS = 150.0
SHARED = 1.4
PLACEMENTS = ("near", "far", "shared")


def placement(rtt: list[float] | None, sharing: list[float] | None) -> str | None:
    """The placement of a round (see NEAR_NS), or None when it was not measured."""
    if not rtt:
        return None
    if sharing and max(sharing) > SHARED:
        return "shared"
    return "far" if max(rtt) >= NEAR_NS else "near"


def short_name(name: str) -> str:
    """RepViT's short variant name (m1_0), or a MobileNet's timm name as it is."""
    v = name.strip().lower()
    if v in MOBILENETS:
        return v
    v = v.removeprefix("repvit_").replace(".", "_")
    if v not in ALL_VARIANTS:
        raise SystemExit(f"peers.py: unknown variant {name!r}; expected one of "
                         f"{', '.join(ALL_VARIANTS + MOBILENETS)}, all (RepViT) or mobilenets")
    return v


def timm_name(v: str) -> str:
    """timm's model name of a variant as short_name gives it."""
    return v if v in MOBILENETS else f"repvit_{v}"


def parse_args() -> argparse.Namespace:
    nproc = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", action="append", default=None,
                   help="variant (m1_0 or repvit_m1_0, or a MobileNet: mobilenetv3_large_100, "
                        "mobilenetv3_small_100, mobilenetv2_100, efficientnet_b0, efficientnet_lite0, "
                        "mobilenetv4_conv_small, mobilenetv4_conv_medium (256x256), "
                        "mobilenetv4_conv_large (384x384)), comma list, all (every RepViT) or "
                        "mobilenets (the MobileNets, EfficientNets and MobileNetV4s); repeatable "
                        "(default: m1_0)")
    p.add_argument("--threads", default=None,
                   help=f"comma list of thread counts (default: 1,{nproc} = 1 and nproc)")
    p.add_argument("--iters", type=int, default=None,
                   help="timed iterations per engine, variant and thread count (default 200; 12 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds the iterations are split into (default 5; 2 with --quick)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds of untimed runs before each engine's round (default 0.3; 0.05 with --quick)")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help=f"comma list out of {','.join(ENGINES)} (default: all)")
    p.add_argument("--batch", type=int, default=1,
                   help="images per call for every engine (default 1); the table adds images/s")
    p.add_argument("--litert-python", default=os.environ.get("PEERS_LITERT_PYTHON"),
                   help="python of the LiteRT venv (run.sh sets it; without it litert-xnnpack is skipped)")
    p.add_argument("--ov-bf16", action="store_true",
                   help="also time OpenVINO at its bf16 inference precision (engine openvino-bf16)")
    p.add_argument("--quick", action="store_true", help="smoke run: few iterations, short warm-ups")
    p.add_argument("--out", default=str(ROOT / "target/peers/peers.jsonl"), help="JSON lines output file")
    p.add_argument("--work-dir", default=str(ROOT / "target/peers/models"),
                   help="where the ONNX and safetensors files go")
    p.add_argument("--repvit-bin", default=None,
                   help="use this repvit binary instead of building it with cargo")
    a = p.parse_args()
    names = a.variant or ["m1_0"]
    variants: list[str] = []
    for item in names:
        for n in item.split(","):
            key = n.strip().lower()
            group = {"all": ALL_VARIANTS, "mobilenets": MOBILENETS}.get(key)
            for v in group if group else [short_name(n)]:
                if v not in variants:
                    variants.append(v)
    a.variants = variants
    threads = [int(t) for t in (a.threads or f"1,{nproc}").split(",") if t.strip()]
    if not threads or min(threads) < 1:
        raise SystemExit("peers.py: --threads needs positive integers")
    a.thread_list = list(dict.fromkeys(threads))
    a.iters = a.iters if a.iters is not None else (12 if a.quick else 200)
    a.rounds = a.rounds if a.rounds is not None else (2 if a.quick else 5)
    a.warmup = a.warmup if a.warmup is not None else (0.05 if a.quick else 0.3)
    if a.iters < 1 or a.rounds < 1:
        raise SystemExit("peers.py: --iters and --rounds must be at least 1")
    a.rounds = min(a.rounds, a.iters)
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise SystemExit(f"peers.py: unknown engine(s) {bad}; expected some of {ENGINES}")
    if a.batch < 1:
        raise SystemExit("peers.py: --batch must be at least 1")
    if "litert-xnnpack" in engines and not a.litert_python:
        if a.engines != ",".join(ENGINES):
            raise SystemExit("peers.py: litert-xnnpack needs --litert-python (or PEERS_LITERT_PYTHON)")
        log("no --litert-python: skipping litert-xnnpack")
        engines.remove("litert-xnnpack")
    a.engine_list = [e for e in ENGINES if e in engines]
    return a


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cmd_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_repvit() -> tuple[str, str]:
    """Builds the repvit binary once (release); returns its path and crate version from cargo's messages."""
    log("building repvit (cargo build --release -p repvit --bin repvit)")
    proc = subprocess.run(
        ["cargo", "build", "--release", "-p", "repvit", "--bin", "repvit",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit("peers.py: cargo build of repvit failed (see the messages above)")
    exe, version = None, "unknown"
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "repvit" \
                and msg.get("executable"):
            exe = msg["executable"]
            m = re.search(r"[#@]v?([0-9][^#@\s]*)$", msg.get("package_id", ""))
            version = m.group(1) if m else version
    if not exe:
        raise SystemExit("peers.py: cargo built no repvit executable")
    return exe, version


def test_input(batch: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(20240601)
    return rng.standard_normal((batch, 3, size, size), dtype=np.float32)


def write_npy(path: Path, a: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


class Summary:
    """Samples of one engine at one (variant, threads), gathered over the rounds."""

    def __init__(self) -> None:
        self.round_medians: list[float] = []
        self.mins: list[float] = []
        self.iters = 0

    def add(self, median: float, minimum: float, iters: int) -> None:
        self.round_medians.append(median)
        self.mins.append(minimum)
        self.iters += iters

    @property
    def median(self) -> float:
        return statistics.median(self.round_medians)

    @property
    def min(self) -> float:
        return min(self.mins)


def time_fn(fn, iters: int, warmup_s: float) -> tuple[float, float]:
    """Runs fn untimed for warmup_s (at least once), then `iters` timed calls; returns (median, min) in ms."""
    t_end = time.perf_counter() + warmup_s
    fn()
    while time.perf_counter() < t_end:
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main() -> int:
    a = parse_args()
    warnings.filterwarnings("ignore")
    import torch
    import timm
    import onnx
    import onnxruntime as ort
    import openvino as ov
    from safetensors.torch import save_file

    versions = {
        "torch": torch.__version__, "timm": timm.__version__, "onnx": onnx.__version__,
        "onnxruntime": ort.__version__, "openvino": ov.get_version(), "numpy": np.__version__,
    }
    repvit_bin, crate_version = (a.repvit_bin, "unknown") if a.repvit_bin else build_repvit()
    rev = cmd_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    versions["repvit-rs"] = f"{crate_version}+{rev}"
    rustc = cmd_version(["rustc", "--version"])
    if "litert-xnnpack" in a.engine_list:
        v = json.loads(subprocess.run([a.litert_python, str(LITERT), "versions"], check=True,
                                      capture_output=True, text=True).stdout)
        versions["litert-xnnpack"] = f"ai-edge-litert {v['ai-edge-litert']}, litert-torch {v['litert-torch']}"

    work = Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nproc = os.cpu_count() or 1
    machine = {
        "engine": "machine",
        "cpu": cpu_model(),
        "nproc": nproc,
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "rustc": rustc,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "variants": a.variants,
        "threads": a.thread_list,
        "batch": a.batch,
        "iters": a.iters,
        "rounds": a.rounds,
        "warmup_s": a.warmup,
        "quick": a.quick,
        "torch_parallel": torch.__config__.parallel_info().splitlines()[0:4],
    }
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None
    if loadavg:
        machine["loadavg_start"] = [round(x, 2) for x in loadavg]
    lines: list[dict] = [machine]
    # Rewrite the file from scratch: one run, one file.
    out.write_text(json.dumps(machine) + "\n")

    def emit(rec: dict) -> None:
        lines.append(rec)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    t_start = time.perf_counter()
    for v in a.variants:
        name = timm_name(v)
        size = input_size(v)
        x_np = test_input(a.batch, size)
        log(f"{name}: building the timm model, safetensors and ONNX")
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        randomize_batchnorm(torch, model)
        st_path = work / f"{name}.safetensors"
        onnx_path = work / f"{name}_b{a.batch}.onnx"
        tflite_path = work / f"{name}_b{a.batch}.tflite"
        save_file({k: t.contiguous() for k, t in model.state_dict().items()}, str(st_path))
        x_t = torch.from_numpy(x_np)
        with torch.inference_mode():
            ref = model(x_t).numpy()
        export_onnx(torch, model, x_t, onnx_path)
        onnx.checker.check_model(str(onnx_path))

        # Reference check: every engine's logits on the same input against PyTorch's.
        diffs: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            xin, yout = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            write_npy(xin, x_np)
            if "repvit-rs" in a.engine_list:
                subprocess.run([repvit_bin, "infer", "--weights", str(st_path), "--variant", v,
                                "--input", str(xin), "--output", str(yout), "--threads", "1"],
                               check=True, capture_output=True)
                diffs["repvit-rs"] = float(np.abs(np.load(yout) - ref).max())
            if "litert-xnnpack" in a.engine_list:
                log(f"{name}: converting to LiteRT with litert-torch (its own venv)")
                subprocess.run([a.litert_python, str(LITERT), "convert", "--variant", v, "--weights", str(st_path),
                                "--batch", str(a.batch), "--size", str(size), "--out", str(tflite_path)],
                               check=True, capture_output=True)
                for threads in a.thread_list:
                    subprocess.run([a.litert_python, str(LITERT), "infer", "--model", str(tflite_path),
                                    "--threads", str(threads), "--input", str(xin), "--output", str(yout)],
                                   check=True, capture_output=True)
                    d = float(np.abs(np.load(yout) - ref).max())
                    diffs["litert-xnnpack"] = max(diffs.get("litert-xnnpack", 0.0), d)

        sessions = {}
        for threads in a.thread_list:
            engines: dict[str, object] = {}
            for e in a.engine_list:
                if e == "onnxruntime":
                    engines[e] = make_ort(ort, onnx_path, threads, x_np)
                elif e == "openvino":
                    engines[e] = make_ov(ov, onnx_path, threads, x_np, "f32")
                    if a.ov_bf16:
                        engines["openvino-bf16"] = make_ov(ov, onnx_path, threads, x_np, "bf16")
                elif e == "pytorch":
                    engines[e] = make_torch(torch, model, x_t)
            sessions[threads] = engines
            # Output check at this thread count (threading must not change the answer much either).
            torch.set_num_threads(threads)
            for e, fn in engines.items():
                if e == "pytorch":
                    continue
                d = float(np.abs(fn(check=True) - ref).max())
                diffs[e] = max(diffs.get(e, 0.0), d)
        torch.set_num_threads(nproc)
        for e, d in diffs.items():
            log(f"{name}: max |{e} - pytorch| = {d:.3g} (max |logit| {float(np.abs(ref).max()):.3g})")

        per_round = max(1, a.iters // a.rounds)
        for threads in a.thread_list:
            engines = sessions[threads]
            order = [e for e in a.engine_list if e in ("repvit-rs", "litert-xnnpack")] + list(engines)
            stats = {e: Summary() for e in order}
            isa = None
            round_place: list[str | None] = []
            round_probes: list[dict | None] = []
            log(f"{name}: {threads} thread(s), {a.rounds} rounds x {per_round} iters of {', '.join(order)}")
            for r in range(a.rounds):
                # Rotate the order every round so no engine always runs right after another.
                k = r % len(order)
                round_place.append(None)
                round_probes.append(None)
                for e in order[k:] + order[:k]:
                    if e == "repvit-rs":
                        med, mn, isa, round_place[-1], round_probes[-1] = time_repvit(
                            repvit_bin, v, st_path, threads, per_round, a.batch, size)
                    elif e == "litert-xnnpack":
                        med, mn = time_litert(a.litert_python, tflite_path, threads, per_round, a.warmup)
                    else:
                        fn = engines[e]
                        if e == "pytorch":
                            torch.set_num_threads(threads)
                        med, mn = time_fn(fn, per_round, a.warmup)
                    stats[e].add(med, mn, per_round)
            torch.set_num_threads(nproc)
            for e in order:
                s = stats[e]
                rec = {
                    "engine": e,
                    "engine_version": engine_version(e, versions),
                    "variant": v,
                    "threads": threads,
                    "batch": a.batch,
                    "size": size,
                    "median_ms": round(s.median, 4),
                    "images_per_s": round(a.batch * 1e3 / s.median, 2),
                    "min_ms": round(s.min, 4),
                    "iters": s.iters,
                    "rounds": len(s.round_medians),
                    "round_medians_ms": [round(m, 4) for m in s.round_medians],
                    "precision": "bf16" if e == "openvino-bf16" else "f32",
                    "max_abs_diff_vs_pytorch": None if e == "pytorch" else diffs.get(e),
                    "max_abs_logit": float(np.abs(ref).max()),
                }
                if e == "repvit-rs":
                    rec["isa"] = isa
                if any(round_place):
                    # Every engine's round r ran beside repvit's round r: taken as the same placement.
                    rec["round_placements"] = round_place
                    rec["round_probes"] = round_probes
                    for place in PLACEMENTS:
                        ms = [m for m, p in zip(s.round_medians, round_place) if p == place]
                        rec[f"rounds_{place}"] = len(ms)
                        rec[f"median_ms_{place}"] = round(statistics.median(ms), 4) if ms else None
                if e in ("onnxruntime", "openvino", "openvino-bf16"):
                    rec["opset"] = OPSET
                emit(rec)
        del sessions, model

    # The end-of-run facts go into the machine line too: rewrite the file once, all lines complete.
    if loadavg:
        machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    print_table(lines)
    log(f"wrote {out}")
    return 0


def randomize_batchnorm(torch, model) -> None:
    """Gives every BatchNorm non-trivial statistics and affine parameters (seeded). timm initialises
    the last BatchNorm of each residual branch with weight 0 (RepViT's `bn_weight_init=0`), so a fresh
    model's channel-mixer branches output exactly zero, and a converter that folds constants (litert-
    torch does) removes them: the converted graph then skips about half of the network's work.
    Non-zero parameters keep every engine computing the whole network."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=g) * 0.05)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.05)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)


def export_onnx(torch, model, x_t, path: Path) -> None:
    """Static-shape ONNX export. The TorchScript exporter (dynamo=False) needs no extra packages;
    if a torch release has dropped it, fall back to the dynamo exporter (needs onnxscript)."""
    kw = dict(input_names=["input"], output_names=["logits"], opset_version=OPSET)
    try:
        torch.onnx.export(model, (x_t,), str(path), dynamo=False, do_constant_folding=True, **kw)
    except Exception as err:  # noqa: BLE001 - any failure of the old exporter: try the new one
        log(f"TorchScript ONNX export failed ({err}); trying dynamo=True")
        torch.onnx.export(model, (x_t,), str(path), dynamo=True, external_data=False, **kw)


def make_ort(ort, path: Path, threads: int, x: np.ndarray):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}

    def run(check: bool = False):
        y = sess.run(None, feed)
        return y[0] if check else None

    return run


def make_ov(ov, path: Path, threads: int, x: np.ndarray, precision: str):
    core = ov.Core()
    cfg = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": precision,
    }
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    req = compiled.create_infer_request()
    req.set_input_tensor(ov.Tensor(np.ascontiguousarray(x)))

    def run(check: bool = False):
        req.infer()
        return np.array(req.get_output_tensor(0).data, copy=True) if check else None

    return run


def make_torch(torch, model, x_t):
    """PyTorch eager; the caller sets torch.set_num_threads first (kept out of the timed call)."""

    def run(check: bool = False):
        with torch.inference_mode():
            y = model(x_t)
        return y.numpy() if check else None

    return run


def time_litert(py: str, model: Path, threads: int, iters: int, warmup: float) -> tuple[float, float]:
    """One round of LiteRT (XNNPACK delegate) in a child process of the LiteRT venv; the interpreter is
    built and warmed up before the timed calls."""
    proc = subprocess.run([py, str(LITERT), "bench", "--model", str(model), "--threads", str(threads),
                           "--iters", str(iters), "--warmup", str(warmup)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"peers.py: litert bench failed:\n{proc.stderr}")
    r = json.loads([l for l in proc.stdout.splitlines() if l.startswith("{")][-1])
    return float(r["median_ms"]), float(r["min_ms"])


def time_repvit(exe: str, v: str, weights: Path, threads: int, iters: int,
                batch: int, size: int) -> tuple[float, float, str, str | None, dict]:
    """One round of repvit-rs: its own `bench` (0.3 s warm-up inside), on the same weights as the peers.
    Also returns the round's placement (see NEAR_NS; None at one thread) and the two probes' readings."""
    proc = subprocess.run([exe, "bench", "--variant", v, "--weights", str(weights), "--threads", str(threads),
                           "--iters", str(iters), "--batch", str(batch), "--size", str(size),
                           "--json", "--no-layers"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"peers.py: repvit bench failed:\n{proc.stderr}")
    recs = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    if len(recs) != 1 or recs[0].get("threads") != threads:
        raise SystemExit(f"peers.py: unexpected repvit bench output:\n{proc.stdout}")
    r = recs[0]
    rtt, sharing = r.get("core_round_trip_ns"), r.get("core_sharing")
    probes = {"core_round_trip_ns": rtt, "core_sharing": sharing}
    return float(r["median_ms"]), float(r["min_ms"]), str(r["isa"]), placement(rtt, sharing), probes


def engine_version(e: str, versions: dict[str, str]) -> str:
    if e.startswith("openvino"):
        return versions["openvino"]
    if e == "litert-xnnpack":
        return versions["litert-xnnpack"]
    return versions["torch" if e == "pytorch" else e]


def print_table(lines: list[dict]) -> None:
    recs = [r for r in lines if r.get("engine") != "machine"]
    machine = lines[0]
    print()
    batch = machine.get("batch", 1)
    print(f"{machine['cpu']} ({machine['nproc']} cpus), {machine['date']}; batch {batch}, f32 unless the engine says bf16")
    if batch > 1:
        print("median ms per batch of the given size; images/s = batch / median")
    print("median ms (min ms) and median relative to repvit-rs (x2.00 = takes twice as long as repvit-rs)")
    for v in dict.fromkeys(r["variant"] for r in recs):
        rv = [r for r in recs if r["variant"] == v]
        threads = list(dict.fromkeys(r["threads"] for r in rv))
        base = {r["threads"]: r["median_ms"] for r in rv if r["engine"] == "repvit-rs"}
        side = rv[0].get("size", SIZE)
        head = f"{timm_name(v) + f' ({side})':<30}" + "".join(f"{f'{t} thread' + ('s' if t > 1 else ''):>30}" for t in threads)
        print()
        print(head)
        for e in dict.fromkeys(r["engine"] for r in rv):
            row = f"{e:<16}"
            for t in threads:
                r = next((r for r in rv if r["engine"] == e and r["threads"] == t), None)
                if r is None:
                    row += f"{'-':>30}"
                    continue
                cell = f"{r['median_ms']:.2f} ({r['min_ms']:.2f})"
                if batch > 1:
                    cell += f" {r['images_per_s']:.0f}/s"
                if t in base:
                    cell += f"  x{r['median_ms'] / base[t]:.2f}"
                row += f"{cell:>30}"
            print(row)
        # Multi-thread rounds per core placement (see NEAR_NS), when the run saw more than one.
        for t in threads:
            rt = [r for r in rv if r["threads"] == t and "rounds_near" in r]
            if not rt:
                continue
            seen = [p for p in PLACEMENTS if rt[0][f"rounds_{p}"] > 0]
            if seen == ["near"]:
                continue
            for p in seen:
                cells = ", ".join(f"{r['engine']} {r[f'median_ms_{p}']:.2f}" for r in rt)
                print(f"  {t} threads, {p} ({rt[0][f'rounds_{p}']} of {len(rt[0]['round_placements'])}"
                      f" rounds): {cells}")
        diffs = {r["engine"]: r["max_abs_diff_vs_pytorch"] for r in rv
                 if r.get("max_abs_diff_vs_pytorch") is not None}
        if diffs:
            print("  max |logits - pytorch|: " + ", ".join(f"{e} {d:.2g}" for e, d in diffs.items()))
    print()


if __name__ == "__main__":
    sys.exit(main())
