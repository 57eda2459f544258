#!/usr/bin/env python3
"""bf16 (or f16) logits of `repvit` against timm f32, on full-size random-weight RepViTs.

For each variant: timm's model with random weights and randomised BatchNorm statistics (the
`make_fixtures.py --full` recipe, seeds 10/11), a batch of varied inputs (Gaussian noise at three
scales, uniform noise, smooth gradients, a checkerboard, a constant image, ImageNet-normalised
random "photos" of blurred noise), timm's f32 logits; then `repvit infer` at f32 and at the given
precision. Reports max abs and max relative error of each against timm, and how often the top-1
class and the top-5 set of the reduced precision agree with f32 (timm's).

Writes a Markdown table (stdout, and --out FILE). Run with the peers venv:
    /work/venvs/peers/bin/python model/tools/precision_accuracy.py --variants all \\
        --precision bf16 --isa scalar --repvit target/release/repvit --out /tmp/acc.md
"""
import argparse
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch
import timm
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_fixtures import FULL_VARIANTS, randomise, logits, state_dict_f32  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def inputs(n, size, seed):
    """A batch of `n` varied NCHW inputs of the scale a normalised image has."""
    g = torch.Generator().manual_seed(seed)
    xs = []
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for i in range(n):
        kind = i % 8
        if kind < 3:
            x = torch.randn(3, size, size, generator=g) * (0.5, 1.0, 2.0)[kind]
        elif kind == 3:
            x = torch.rand(3, size, size, generator=g) * 4 - 2
        elif kind == 4:
            a = torch.randn(3, 2, generator=g)
            x = torch.stack([a[c, 0] * xx + a[c, 1] * yy for c in range(3)]) * 1.5
        elif kind == 5:
            cb = ((torch.arange(size)[:, None] // 16 + torch.arange(size)[None, :] // 16) % 2).float()
            x = torch.stack([cb * 2 - 1] * 3) * (torch.rand(3, 1, 1, generator=g) + 0.5)
        elif kind == 6:
            x = torch.ones(3, size, size) * torch.randn(3, 1, 1, generator=g)
        else:
            img = torch.rand(1, 3, size // 8, size // 8, generator=g)
            img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear")[0]
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            x = (img - mean) / std
        xs.append(x)
    return torch.stack(xs).float().contiguous()


def run(binary, weights, variant, x_path, out_path, precision, isa):
    cmd = [binary, "infer", "--weights", str(weights), "--variant", variant, "--input", str(x_path),
           "--output", str(out_path), "--precision", precision]
    if isa:
        cmd += ["--isa", isa]
    subprocess.run(cmd, cwd=ROOT, check=True, env=os.environ)
    return np.load(out_path)


def topk_agree(a, b, k):
    ta = np.argsort(-a, axis=1)[:, :k]
    tb = np.argsort(-b, axis=1)[:, :k]
    if k == 1:
        return float(np.mean(ta[:, 0] == tb[:, 0]))
    return float(np.mean([set(p) == set(q) for p, q in zip(ta, tb)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["m1_0"], help="names or `all`")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--isa", default=None, help="--isa for the reduced-precision run (f32 runs on the default)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repvit", required=True, help="the repvit binary")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    names = FULL_VARIANTS if a.variants == ["all"] else a.variants
    rows = []
    for name in names:
        variant = name if name.startswith("repvit_") else f"repvit_{name}"
        d = pathlib.Path(f"/tmp/repvit_precision_{variant[7:]}")
        d.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(10)
        m = timm.create_model(variant, pretrained=False)
        randomise(m, 11)
        x = inputs(a.batch, 224, 12)
        ref = logits(m, x)
        save_file(state_dict_f32(m), str(d / "model.safetensors"))
        np.save(d / "input.npy", x.numpy())
        f32 = run(a.repvit, d / "model.safetensors", variant, d / "input.npy", d / "f32.npy", "f32", None)
        low = run(a.repvit, d / "model.safetensors", variant, d / "input.npy", d / "low.npy", a.precision, a.isa)
        row = {"variant": variant, "max_logit": float(np.abs(ref).max())}
        for tag, y in (("f32", f32), ("low", low)):
            diff = np.abs(y - ref)
            row[tag + "_abs"] = float(diff.max())
            row[tag + "_rel"] = float((diff / np.maximum(np.abs(ref), 1.0)).max())
        row["top1"] = topk_agree(low, ref, 1)
        row["top5"] = topk_agree(low, ref, 5)
        rows.append(row)
        print(f"{variant}: {a.precision} max abs {row['low_abs']:.2e}, f32 {row['f32_abs']:.2e}, "
              f"top-1 {row['top1'] * 100:.0f} %, top-5 {row['top5'] * 100:.0f} %", flush=True)
    p = a.precision
    lines = [
        f"| variant | max abs logit (timm) | {p} max abs err | {p} max err / max(1, abs logit) | "
        f"f32 max abs err | top-1 agree ({p} vs f32) | top-5 set agree |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['max_logit']:.2f} | {r['low_abs']:.2e} | {r['low_rel']:.2e} | "
            f"{r['f32_abs']:.2e} | {r['top1'] * 100:.0f} % | {r['top5'] * 100:.0f} % |"
        )
    table = "\n".join(lines)
    print()
    print(f"batch {a.batch} varied inputs, 224x224; timm {timm.__version__}, torch {torch.__version__}")
    print(table)
    if a.out:
        pathlib.Path(a.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
