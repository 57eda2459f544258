#!/usr/bin/env python3
"""Reference fixtures for the MobileNets of the `repvit` crate, computed with timm.

Default: writes small fixtures into model/tests/fixtures/, one per family, each the family's exact
block structure (timm's own generator, `_gen_mobilenet_v3` / `_gen_mobilenet_v2`) at a reduced
width (`channel_multiplier`), with a reduced head (conv_head to 64 channels; V2's conv_head keeps
its BatchNorm) and 10 classes, random weights, randomised BatchNorm statistics, tensors stored as
float16 (the reference logits are computed on the rounded weights, in float32):

    mnv3_large.safetensors, mnv3_large_input.npy, mnv3_large_logits.npy   (multiplier 0.25)
    mnv3_small.safetensors, ...                                            (multiplier 0.35)
    mnv2.safetensors, ...                                                  (multiplier 0.25)
    effb0.safetensors, ...       (EfficientNet-B0, `_gen_efficientnet`,    multiplier 0.25)
    efflite0.safetensors, ...    (EfficientNet-Lite0, `_gen_efficientnet_lite`, multiplier 0.25)
    mnv4_small.safetensors, ...  (MobileNetV4-Conv-S, `_gen_mobilenet_v4`,  multiplier 0.25)
    mnv4_medium.safetensors, ... (MobileNetV4-Conv-M,                       multiplier 0.25)
    mnv4_large.safetensors, ...  (MobileNetV4-Conv-L,                       multiplier 0.125)

MobileNetV4's conv_head keeps its BatchNorm + ReLU (`norm_head`) and has no bias, as in timm.

Inputs are 2x3xHxW with odd sizes (stride-2 edges of the 3x3 and 5x5 depthwise layers).

Each small fixture also gets timm's `features_only=True` feature maps of the same weights
(`<name>_features{0..4}.npy`, NCHW, strides 2, 4, 8, 16, 32) and the output of the same model
with `num_classes=0` (`<name>_headless.npy`, the pooled conv_head features).

`--full` instead builds the three full-size models (timm.create_model(name), 1000 classes) with
random weights and randomised BatchNorm statistics, writes checkpoint, input (2x3xHxW, `--size`,
default 224x224; seeds from `--seed`, default 50) and logits to
/tmp/mobilenet_full_<name>_<H>x<W>_s<seed>/, runs
`cargo run --release -p repvit --bin repvit -- infer --variant <name> ...` (unless --no-run) for
the logits and with `--features 0,1,2,3,4` for the feature maps (against timm's
`features_only=True` model loaded with the same weights), compares and prints a Markdown table
(max |diff| <= 1e-4 * max(1, |value|); exit status 1 if the logits are not; the feature maps are
reported beside the distance of ours and of timm's float32 to timm in float64).

Run with: /work/venvs/peers/bin/python model/tools/make_mobilenet_fixtures.py \
    [--only NAME...] [--full [--size HxW] [--seed N]] [--no-run]
"""
import argparse
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch
import timm
from timm.models.efficientnet import _gen_efficientnet, _gen_efficientnet_lite, _gen_mobilenet_v2
from timm.models.mobilenetv3 import _gen_mobilenet_v3, _gen_mobilenet_v4
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "model" / "tests" / "fixtures"
FULL = ["mobilenetv3_large_100", "mobilenetv3_small_100", "mobilenetv2_100", "efficientnet_b0",
        "efficientnet_lite0", "mobilenetv4_conv_small", "mobilenetv4_conv_medium",
        "mobilenetv4_conv_large"]
# Native input size of the full-size check when --size is not given (timm's pretrained_cfg).
NATIVE = {"mobilenetv4_conv_medium": (256, 256), "mobilenetv4_conv_large": (384, 384)}

# timm's EfficientNet-class generators of the reduced fixtures: (generator, registered name, head
# activation).
EFFICIENTNET_CLASS = {
    "v2": (_gen_mobilenet_v2, "mobilenetv2_100", torch.nn.ReLU6),
    "b0": (_gen_efficientnet, "efficientnet_b0", torch.nn.SiLU),
    "lite0": (_gen_efficientnet_lite, "efficientnet_lite0", torch.nn.ReLU6),
}


def randomise(model, seed, shape):
    """Random BatchNorm affine parameters and conv_head/classifier biases, then BatchNorm running
    statistics measured on random inputs of `shape` (so activations stay normalised through the
    whole depth and the logits depend on the input), then perturbed so that folding is
    non-trivial. The last BatchNorm of each residual branch (bn3) gets small scales, as in a
    trained network."""
    g = torch.Generator().manual_seed(seed)
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for name, m in bns:
            c = m.num_features
            # bn3 (EfficientNet-class InvertedResidual) and pw_proj.bn (MobileNetV4's UIB) end a
            # residual branch.
            last = name.endswith("bn3") or name.endswith("pw_proj.bn")
            lo, span = (0.1, 0.3) if last else (0.5, 1.0)
            m.weight.copy_(torch.rand(c, generator=g) * span + lo)
            m.bias.copy_(torch.randn(c, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, torch.nn.Linear):
                # timm initialises the classifier at 0.01 scale: widen it so logits are O(1).
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (3.0 / m.in_features) ** 0.5)
        # Running statistics of the actual activations (cumulative average over 4 batches).
        for _, m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for _ in range(4):
            model(torch.randn(*shape, generator=g))
        for _, m in bns:
            c = m.num_features
            m.momentum = 0.1
            m.running_var.mul_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.running_mean.add_(torch.randn(c, generator=g) * 0.1 * m.running_var.sqrt())
    model.eval()


def logits(model, x):
    with torch.no_grad():
        return model(x).float().numpy()


# MobileNetV4 kinds of the reduced fixtures: timm's variant name for `_gen_mobilenet_v4`.
V4 = {"v4s": "mobilenetv4_conv_small", "v4m": "mobilenetv4_conv_medium",
      "v4l": "mobilenetv4_conv_large"}


def reduced(kind, mult):
    """The family's exact block structure at `mult` width, head 64 wide, 10 classes."""
    if kind in EFFICIENTNET_CLASS:
        gen, variant, act = EFFICIENTNET_CLASS[kind]
        m = gen(variant, mult, pretrained=False, num_classes=10)
        cin = m.conv_head.in_channels
        m.conv_head = torch.nn.Conv2d(cin, 64, 1, bias=False)
        m.bn2 = type(m.bn2)(64, act_layer=act)
    elif kind.startswith("v4"):
        m = _gen_mobilenet_v4(V4[kind], mult, pretrained=False, num_classes=10)
        cin = m.conv_head.in_channels
        m.conv_head = torch.nn.Conv2d(cin, 64, 1, bias=False)
        m.norm_head = type(m.norm_head)(64, act_layer=torch.nn.ReLU)
    else:
        m = _gen_mobilenet_v3(f"mobilenetv3_{kind}_100", mult, pretrained=False, num_classes=10)
        cin = m.conv_head.in_channels
        m.conv_head = torch.nn.Conv2d(cin, 64, 1, bias=True)
    m.classifier = torch.nn.Linear(64, 10)
    return m


def write_fixture(name, model, x):
    FIXTURES.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    # Store float16 and compute the reference on exactly the stored values.
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    with torch.no_grad():
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    model.eval()
    ref = logits(model, x)
    save_file(sd, str(FIXTURES / f"{name}.safetensors"))
    np.save(FIXTURES / f"{name}_input.npy", x.numpy().astype(np.float32))
    np.save(FIXTURES / f"{name}_logits.npy", ref.astype(np.float32))
    n = sum(v.numel() for v in sd.values())
    print(f"  {name}: {n} values, logits {ref.shape}, |max| {np.abs(ref).max():.3f}, "
          f"max |image 0 - image 1| {np.abs(ref[0] - ref[1]).max():.3f}")


def features_only(kind, mult):
    """timm's `features_only=True` model of the family at `mult` width (MobileNetV3Features,
    EfficientNetFeatures): the stem and blocks of `reduced(kind, mult)`, no head."""
    if kind in EFFICIENTNET_CLASS:
        gen, variant, _ = EFFICIENTNET_CLASS[kind]
        return gen(variant, mult, pretrained=False, features_only=True)
    if kind in V4:
        return _gen_mobilenet_v4(V4[kind], mult, pretrained=False, features_only=True)
    return _gen_mobilenet_v3(f"mobilenetv3_{kind}_100", mult, pretrained=False, features_only=True)


def write_features(name, kind, mult, model, x):
    """`{name}_features{i}.npy`: timm's `features_only=True` outputs (NCHW, one per
    `feature_info` entry, reductions 2, 4, 8, 16, 32) on the weights `model` holds (already the
    stored float16 values)."""
    fm = features_only(kind, mult)
    missing, unexpected = fm.load_state_dict(model.state_dict(), strict=False)
    assert not missing, missing
    assert all(k.split(".")[0] in ("conv_head", "bn2", "norm_head", "classifier")
               for k in unexpected), unexpected
    fm.eval()
    with torch.no_grad():
        feats = fm(x)
    for i, f in enumerate(feats):
        np.save(FIXTURES / f"{name}_features{i}.npy", f.float().numpy())
    print(f"  {name}: features {[tuple(f.shape) for f in feats]}, "
          f"reductions {fm.feature_info.reduction()}")


def write_headless(name, model, x):
    """`{name}_headless.npy`: the output of the same model with timm's `num_classes=0`
    (`reset_classifier(0)`: the classifier becomes Identity, so the output is the pooled
    features after `conv_head`, [N, head width])."""
    model.reset_classifier(0)
    model.eval()
    with torch.no_grad():
        y = model(x).float().numpy()
    np.save(FIXTURES / f"{name}_headless.npy", y)
    print(f"  {name}: headless output {y.shape}")


def small_fixtures(only=None):
    for i, (name, kind, mult, hw) in enumerate([
        ("mnv3_large", "large", 0.25, (67, 53)),
        ("mnv3_small", "small", 0.35, (61, 75)),
        ("mnv2", "v2", 0.25, (57, 63)),
        ("effb0", "b0", 0.25, (59, 65)),
        ("efflite0", "lite0", 0.25, (63, 55)),
        ("mnv4_small", "v4s", 0.25, (65, 57)),
        ("mnv4_medium", "v4m", 0.25, (59, 69)),
        ("mnv4_large", "v4l", 0.125, (61, 67)),
    ]):
        if only and name not in only:
            continue
        torch.manual_seed(20 + i)
        m = reduced(kind, mult)
        # The EfficientNets' SiLU does not clamp like ReLU6/hard-swish: BatchNorm statistics from
        # 4 images (24 samples per channel at stride 32 on these small inputs) left values of 400
        # before the last projections and timm's own float32 features 3e-4 from float64; 32 images
        # keep them near those of the other fixtures.
        # MobileNetV4's residual stacks (up to 13 blocks a stage) likewise want statistics from
        # more images than MobileNetV3's.
        batch = 32 if kind in ("b0", "lite0") or kind in V4 else 4
        randomise(m, 30 + i, (batch, 3, *hw))
        x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(40 + i))
        write_fixture(name, m, x)
        write_features(name, kind, mult, m, x)
        write_headless(name, m, x)
    for f in sorted([*FIXTURES.glob("mnv*"), *FIXTURES.glob("eff*")]):
        if only and not any(f.name.startswith(o) for o in only):
            continue
        print(f"  {f.relative_to(ROOT)}: {f.stat().st_size} bytes")


def full(name, run, hw=None, seed=50):
    hw = hw or NATIVE.get(name, (224, 224))
    out = pathlib.Path(f"/tmp/mobilenet_full_{name}_{hw[0]}x{hw[1]}_s{seed}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    m = timm.create_model(name, pretrained=False)
    randomise(m, seed + 1, (4, 3, *hw))
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(seed + 2))
    ref = logits(m, x)
    sd = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    save_file(sd, str(out / "model.safetensors"))
    np.save(out / "input.npy", x.numpy())
    np.save(out / "logits.npy", ref)
    cmd = ["cargo", "run", "--release", "-q", "-p", "repvit", "--bin", "repvit", "--", "infer",
           "--weights", str(out / "model.safetensors"), "--variant", name,
           "--input", str(out / "input.npy"), "--output", str(out / "ours.npy")]
    print(f"  wrote {out}/model.safetensors, input.npy, logits.npy (|max logit| {np.abs(ref).max():.3f}, "
          f"max |image 0 - image 1| {np.abs(ref[0] - ref[1]).max():.3f})")
    if not run:
        print("  compare with:\n    (cd %s && %s)" % (ROOT, " ".join(cmd)))
        return None
    subprocess.run(cmd, cwd=ROOT, check=True, env=os.environ)
    ours = np.load(out / "ours.npy")
    d = np.abs(ours - ref)
    # Feature maps: timm's features_only=True model with the same weights, against `--features`.
    fm = timm.create_model(name, pretrained=False, features_only=True)
    missing, _ = fm.load_state_dict(m.state_dict(), strict=False)
    assert not missing, missing
    fm.eval()
    with torch.no_grad():
        feats = [f.numpy() for f in fm(x)]
        # timm's own float32 error, against the same model in float64: the noise floor of deep
        # feature maps (summation order), which the logits average away in the global pool.
        exact = [f.numpy() for f in fm.double()(x.double())]
    fcmd = cmd[:-1] + [str(out / "feats.npy"), "--features", "0,1,2,3,4"]
    subprocess.run(fcmd, cwd=ROOT, check=True, env=os.environ)
    fworst, f64_ours, f64_timm = 0.0, 0.0, 0.0
    fok = True
    for i, (f, e) in enumerate(zip(feats, exact)):
        o = np.load(out / f"feats_stage{i}.npy")
        assert o.shape == f.shape, (name, i, o.shape, f.shape)
        fd = np.abs(o - f)
        fworst = max(fworst, float((fd / np.maximum(1.0, np.abs(f))).max()))
        fok &= bool((fd <= 1e-4 * np.maximum(1.0, np.abs(f))).all())
        den = np.maximum(1.0, np.abs(e))
        f64_ours = max(f64_ours, float((np.abs(o - e) / den).max()))
        f64_timm = max(f64_timm, float((np.abs(f - e) / den).max()))
    return {
        "name": name,
        "features": f"{fworst:.2e} ({'yes' if fok else 'NO'}); vs float64: ours {f64_ours:.2e}, "
                    f"timm float32 {f64_timm:.2e}",
        "params": sum(p.numel() for p in m.parameters()),
        "max_abs": float(d.max()),
        "max_rel_big": float((d / np.maximum(1.0, np.abs(ref))).max()),
        "max_logit": float(np.abs(ref).max()),
        "spread": float(np.abs(ref[0] - ref[1]).max()),
        "ok": bool((d <= 1e-4 * np.maximum(1.0, np.abs(ref))).all()),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="check the full-size models instead")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="only these small fixtures (e.g. effb0 efflite0) or, with --full, "
                         "these models (e.g. efficientnet_b0)")
    ap.add_argument("--no-run", action="store_true", help="with --full: only write the files")
    ap.add_argument("--size", default=None,
                    help="with --full: input HxW (default: the model's native size, 224x224, "
                         "MobileNetV4-M 256x256, -L 384x384)")
    ap.add_argument("--seed", type=int, default=50, help="with --full: first seed (default 50)")
    a = ap.parse_args()
    hw = tuple(int(v) for v in a.size.lower().split("x")) if a.size else None
    print(f"timm {timm.__version__}, torch {torch.__version__}")
    if not a.full:
        small_fixtures(a.only)
        return 0
    names = [n for n in FULL if not a.only or n in a.only]
    rows = [r for r in (full(n, not a.no_run, hw, a.seed) for n in names) if r is not None]
    if rows:
        print(f"\ninput 2x3x{a.size or 'native'}, seed {a.seed}")
        print("\n| model | params | max abs diff | max diff / max(1, abs logit) | max abs logit | "
              "max abs (image 0 - image 1) | logits within 1e-4 | feature maps 0-4: max diff / max(1, abs value) "
              "(within 1e-4?) |")
        print("|---|---:|---:|---:|---:|---:|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['params']:,} | {r['max_abs']:.2e} | {r['max_rel_big']:.2e} | "
                  f"{r['max_logit']:.2f} | {r['spread']:.2f} | {'yes' if r['ok'] else 'NO'} | {r['features']} |")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
