#!/usr/bin/env python3
"""XNNPACK through LiteRT, for the peer comparison: runs in a venv of its own (litert-torch pins its own
torch release, which the main peers venv does not share), started by peers.py as a child process.

  litert_peer.py convert --variant m1_0 --weights W.safetensors --batch 1 --out M.tflite
  litert_peer.py infer --model M.tflite --threads N --input x.npy --output y.npy
  litert_peer.py bench --model M.tflite --threads N --iters K --warmup S

`convert` builds timm's model, loads the very weights the other engines run (safetensors written by
peers.py) and converts it with litert-torch (f32, static input shape batch x 3 x 224 x 224). `infer`
and `bench` run the .tflite file with ai-edge-litert's interpreter, whose default CPU delegate is
XNNPACK, on `num_threads` threads. `bench` prints one JSON object: median_ms, min_ms, iters, versions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ai-edge-litert", "litert-torch", "torch", "timm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def interpreter(path: str, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    return it


def convert(a: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    import litert_torch
    import timm
    import torch
    from safetensors.torch import load_file

    # RepViT's short names (m1_0) or a MobileNet's timm name (mobilenetv3_large_100).
    name = a.variant if a.variant.startswith(("mobilenet", "efficientnet")) else f"repvit_{a.variant}"
    model = timm.create_model(name, pretrained=False).eval()
    model.load_state_dict(load_file(a.weights))
    sample = torch.zeros(a.batch, 3, a.size, a.size)
    litert_torch.convert(model, (sample,)).export(a.out)


def infer(a: argparse.Namespace) -> None:
    it = interpreter(a.model, a.threads)
    x = np.load(a.input).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    np.save(a.output, it.get_tensor(it.get_output_details()[0]["index"]))


def bench(a: argparse.Namespace) -> None:
    it = interpreter(a.model, a.threads)
    d = it.get_input_details()[0]
    rng = np.random.default_rng(1)
    it.set_tensor(d["index"], rng.standard_normal(tuple(d["shape"]), dtype=np.float32))
    t_end = time.perf_counter() + a.warmup
    it.invoke()
    while time.perf_counter() < t_end:
        it.invoke()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"median_ms": statistics.median(times), "min_ms": min(times), "iters": a.iters,
                      "versions": versions()}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--variant", required=True)
    c.add_argument("--weights", required=True)
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--size", type=int, default=224)
    c.add_argument("--out", required=True)
    i = sub.add_parser("infer")
    i.add_argument("--model", required=True)
    i.add_argument("--threads", type=int, default=1)
    i.add_argument("--input", required=True)
    i.add_argument("--output", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--iters", type=int, default=50)
    b.add_argument("--warmup", type=float, default=0.3)
    sub.add_parser("versions")
    a = p.parse_args()
    if a.cmd == "convert":
        convert(a)
    elif a.cmd == "infer":
        infer(a)
    elif a.cmd == "bench":
        bench(a)
    else:
        print(json.dumps(versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
