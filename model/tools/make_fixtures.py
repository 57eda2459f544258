#!/usr/bin/env python3
"""Reference fixtures for the `repvit` crate, computed with timm.

Default: writes small fixtures (reduced-width RepViTs with random weights and randomised BatchNorm
statistics, an input batch of 2 and timm's eval logits) into model/tests/fixtures/:

    small.safetensors, small_input.npy, small_logits.npy
        non-legacy, embed_dim (16, 32, 48, 64), depth (1, 2, 2, 1), 1000 classes, two heads, f32,
        input 2x3x100x76 (odd sizes on purpose: exercises the stride-2 edges)
    legacy.safetensors, legacy_input.npy, legacy_logits.npy
        legacy, embed_dim (16, 24, 32), depth (2, 1, 1), 10 classes, one head, tensors stored
        alternately as f16 and bf16 (the reference runs on the rounded weights), input 2x3x64x64

`--full m1_0 [m2_3 ...]` (timm variant names, or `all` for every variant; `--official` stores the
checkpoints under the official repository's key names) instead builds each
full-size variant with random weights and randomised BatchNorm statistics, writes checkpoint, input
(2x3x224x224) and logits to /tmp/repvit_full_<name>/, runs
`cargo run --release -p repvit --bin repvit -- infer ...` (unless --no-run), compares, and prints a
Markdown table (the issue's acceptance: max |diff| <= 1e-4 for every variant; exit status 1 if not).

`--loaders` writes only the fixtures of the checkpoint and input kinds users have (issue 10), also
written by the default run:

    loaders_input.npy                 input 2x3x48x40 shared by the checkpoints below
    fused_timm.safetensors            timm `m.fuse()` state_dict: embed_dim (16, 24, 32), depth
                                      (2, 1, 1), 10 classes, two heads averaged into `head.weight`
    fused_legacy_timm.safetensors     the same for a legacy RepVGGDW model (fused keys are alike)
    fused_official.safetensors        fused_timm under the official repository's deployed key names
                                      (`features.*.weight`, `classifier.weight`, as its
                                      `replace_batchnorm` leaves them)
    fused_logits.npy, fused_legacy_logits.npy   timm's logits of the fused models
    headless.safetensors              `num_classes=0` (no head tensors), unfused
    headless_fused.safetensors        the same model after `fuse()`
    headless_features.npy             its pooled features [2, 32]
    small_features_input.npy          1x3x57x83 input for small.safetensors
    small_features_stage<i>.npy       timm `forward_intermediates` of small.safetensors, stages 0..3
    npy_f64.npy, npy_f16.npy, npy_be.npy, npy_fortran.npy
                                      one 1x3x32x32 input (values exact in f16) stored as float64,
                                      float16, big-endian float32 and Fortran-order float32
    npy_logits.npy                    legacy.safetensors' timm logits of that input
    image_64x48.jpg, image_64x48_truncated.jpg
                                      image_64x48.png as a JPEG, and that JPEG cut after 60 % of its
                                      bytes (PIL refuses it: "image file is truncated")

Run with: /work/venvs/peers/bin/python model/tools/make_fixtures.py [--full NAME... | --full all] [--no-run] [--loaders]
"""
import argparse
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch
import timm
from timm.models.repvit import RepVit
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "model" / "tests" / "fixtures"


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Random BatchNorm statistics and affine parameters, random classifier biases: so that
    folding is non-trivial and the test sees every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    model.eval()


def state_dict_f32(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def logits(model, x):
    with torch.no_grad():
        return model(x).float().numpy()


def check_fused(model, x, ref):
    """timm's own fuse() must agree with the unfused eval graph (sanity of the reference)."""
    import copy

    fused = copy.deepcopy(model).fuse().eval()
    d = np.abs(logits(fused, x) - ref).max()
    print(f"  timm fused vs unfused: max |diff| = {d:.2e}")


def write_fixture(name, model, x, dtypes=None):
    FIXTURES.mkdir(parents=True, exist_ok=True)
    sd = state_dict_f32(model)
    if dtypes is not None:
        # Round the model's own float tensors to the storage dtypes first, so the reference logits
        # are those of exactly the stored weights.
        i = 0
        for k, v in sd.items():
            if v.is_floating_point():
                dt = dtypes[i % len(dtypes)]
                i += 1
                sd[k] = v.to(dt)
        with torch.no_grad():
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        model.eval()
    ref = logits(model, x)
    check_fused(model, x, ref)
    save_file(sd, str(FIXTURES / f"{name}.safetensors"))
    np.save(FIXTURES / f"{name}_input.npy", x.numpy().astype(np.float32))
    np.save(FIXTURES / f"{name}_logits.npy", ref.astype(np.float32))
    print(f"  {name}: logits {ref.shape}, |max| {np.abs(ref).max():.3f}")


def small_fixtures():
    torch.manual_seed(0)
    m = RepVit(embed_dim=(16, 32, 48, 64), depth=(1, 2, 2, 1), num_classes=1000)
    randomise(m, 1)
    x = torch.randn(2, 3, 100, 76, generator=torch.Generator().manual_seed(2))
    write_fixture("small", m, x)

    torch.manual_seed(3)
    m = RepVit(embed_dim=(16, 24, 32), depth=(2, 1, 1), num_classes=10, legacy=True, distillation=False)
    randomise(m, 4)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    write_fixture("legacy", m, x, dtypes=[torch.float16, torch.bfloat16])

    total = sum(f.stat().st_size for f in FIXTURES.iterdir() if f.is_file())
    for f in sorted(FIXTURES.iterdir()):
        print(f"  {f.relative_to(ROOT)}: {f.stat().st_size} bytes")
    print(f"  total {total} bytes")


def save(name, arr):
    np.save(FIXTURES / name, arr)
    print(f"  {name}: {arr.dtype.str} {arr.shape}")


def loader_fixtures():
    """Checkpoints and inputs as users have them: fused, headless, feature maps, npy kinds, JPEG."""
    from safetensors.torch import load_file

    x = torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(20))
    save("loaders_input.npy", x.numpy())
    for legacy, name in [(False, "fused"), (True, "fused_legacy")]:
        torch.manual_seed(21)
        m = RepVit(embed_dim=(16, 24, 32), depth=(2, 1, 1), num_classes=10, legacy=legacy)
        randomise(m, 22)
        ref = logits(m, x)
        m.fuse()
        fused = logits(m, x)
        print(f"  {name}: fused vs unfused max |diff| {np.abs(fused - ref).max():.2e}")
        sd = state_dict_f32(m)
        assert "head.weight" in sd and "stem.conv1.weight" in sd, list(sd)[:4]
        save_file(sd, str(FIXTURES / f"{name}_timm.safetensors"))
        save(f"{name}_logits.npy", fused)
        if not legacy:
            save_file(official_names(sd, [2, 1, 1]), str(FIXTURES / "fused_official.safetensors"))

    torch.manual_seed(23)
    m = RepVit(embed_dim=(16, 24, 32), depth=(2, 1, 1), num_classes=0)
    randomise(m, 24)
    feats = logits(m, x)
    assert feats.shape == (2, 32), feats.shape
    save_file(state_dict_f32(m), str(FIXTURES / "headless.safetensors"))
    m.fuse()
    assert np.abs(logits(m, x) - feats).max() < 1e-5
    save_file(state_dict_f32(m), str(FIXTURES / "headless_fused.safetensors"))
    save("headless_features.npy", feats)

    m = RepVit(embed_dim=(16, 32, 48, 64), depth=(1, 2, 2, 1), num_classes=1000)
    m.load_state_dict(load_file(str(FIXTURES / "small.safetensors")))
    m.eval()
    xf = torch.randn(1, 3, 57, 83, generator=torch.Generator().manual_seed(25))
    save("small_features_input.npy", xf.numpy())
    with torch.no_grad():
        maps = m.forward_intermediates(xf, indices=[0, 1, 2, 3], intermediates_only=True)
    for i, f in enumerate(maps):
        save(f"small_features_stage{i}.npy", f.numpy())

    m = RepVit(embed_dim=(16, 24, 32), depth=(2, 1, 1), num_classes=10, legacy=True, distillation=False)
    m.load_state_dict({k: v.float() for k, v in load_file(str(FIXTURES / "legacy.safetensors")).items()})
    m.eval()
    xn = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(26)).half().float()
    a = xn.numpy()
    save("npy_f64.npy", a.astype(np.float64))
    save("npy_f16.npy", a.astype(np.float16))
    save("npy_be.npy", a.astype(">f4"))
    fa = np.asfortranarray(a)
    assert fa.flags.f_contiguous and not fa.flags.c_contiguous
    save("npy_fortran.npy", fa)
    save("npy_logits.npy", logits(m, xn))

    from PIL import Image

    img = Image.open(FIXTURES / "image_64x48.png").convert("RGB")
    jpg = FIXTURES / "image_64x48.jpg"
    img.save(jpg, quality=90)
    data = jpg.read_bytes()
    cut = FIXTURES / "image_64x48_truncated.jpg"
    cut.write_bytes(data[: len(data) * 6 // 10])
    try:
        Image.open(cut).convert("RGB")
        raise SystemExit("PIL accepted the truncated JPEG")
    except OSError as e:
        print(f"  PIL on {cut.name}: {e}")


FULL_VARIANTS = ["m0_9", "m1_0", "m1_1", "m1_5", "m2_3", "m1", "m2", "m3"]


def official_names(sd, depth):
    """timm's state_dict renamed to the official RepViT repository's keys: `features.0.0/.2` (stem),
    then one `features.<row>` per table row (per stage after the first: its pre-block row, its
    stride-2 row, then its blocks), `classifier.classifier(_dist)`."""
    blk = [("token_mixer.", "token_mixer.0."), ("se.", "token_mixer.1."),
           ("channel_mixer.conv1.", "channel_mixer.m.0."), ("channel_mixer.conv2.", "channel_mixer.m.2.")]
    ds = [("spatial_downsample.", "token_mixer.0."), ("channel_downsample.", "token_mixer.2."),
          ("ffn.conv1.", "channel_mixer.m.0."), ("ffn.conv2.", "channel_mixer.m.2.")]

    def sub(rest, table):
        for a, b in table:
            if rest.startswith(a):
                return b + rest[len(a):]
        raise KeyError(rest)

    out = {}
    for k, v in sd.items():
        p = k.split(".")
        if k.startswith("stem.conv1."):
            n = "features.0.0." + k[len("stem.conv1."):]
        elif k.startswith("stem.conv2."):
            n = "features.0.2." + k[len("stem.conv2."):]
        elif k.startswith("head.head_dist."):
            n = "classifier.classifier_dist." + k[len("head.head_dist."):]
        elif k.startswith("head.head."):
            n = "classifier.classifier." + k[len("head.head."):]
        elif k.startswith("head."):
            # A fused model's single averaged linear head (the official `Classfier.fuse()`).
            n = "classifier." + k[len("head."):]
        else:
            s = int(p[1])
            first = 1 + sum(depth[t] + (2 if t > 0 else 0) for t in range(s))
            rest = ".".join(p[3:])
            if p[2] == "downsample" and p[3] == "pre_block":
                n = f"features.{first}." + sub(".".join(p[4:]), blk)
            elif p[2] == "downsample":
                n = f"features.{first + 1}." + sub(rest, ds)
            else:
                n = f"features.{first + (2 if s > 0 else 0) + int(p[3])}." + sub(".".join(p[4:]), blk)
        assert n not in out, n
        out[n] = v
    return out


def full(name, run, binary=None, official=False):
    """Checks one full-size variant; returns a result row (None with --no-run)."""
    variant = name if name.startswith("repvit_") else f"repvit_{name}"
    out = pathlib.Path(f"/tmp/repvit_full_{variant[len('repvit_'):]}{'_official' if official else ''}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(10)
    m = timm.create_model(variant, pretrained=False)
    randomise(m, 11)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(12))
    ref = logits(m, x)
    check_fused(m, x, ref)
    sd = state_dict_f32(m)
    if official:
        depth = [len(st.blocks) for st in m.stages]
        sd = official_names(sd, depth)
    save_file(sd, str(out / "model.safetensors"))
    np.save(out / "input.npy", x.numpy())
    np.save(out / "logits.npy", ref)
    prefix = [binary] if binary else ["cargo", "run", "--release", "-q", "-p", "repvit", "--bin", "repvit", "--"]
    cmd = [
        *prefix, "infer",
        "--weights", str(out / "model.safetensors"), "--variant", variant,
        "--input", str(out / "input.npy"), "--output", str(out / "ours.npy"),
    ]
    print(f"  wrote {out}/model.safetensors, input.npy, logits.npy (|max logit| {np.abs(ref).max():.3f})")
    if not run:
        print("  compare with:\n    (cd %s && %s)" % (ROOT, " ".join(cmd)))
        return None
    subprocess.run(cmd, cwd=ROOT, check=True, env=os.environ)
    ours = np.load(out / "ours.npy")
    d = np.abs(ours - ref)
    rel = d / np.maximum(np.abs(ref), 1e-12)
    tol = 1e-4 * np.maximum(1.0, np.abs(ref))
    row = {
        "variant": variant + (" (official names)" if official else ""),
        "max_abs": float(d.max()),
        "max_rel_big": float((d / np.maximum(1.0, np.abs(ref))).max()),
        "max_rel": float(rel.max()),
        "max_logit": float(np.abs(ref).max()),
        "top1": float(np.mean(ours.argmax(1) == ref.argmax(1))),
        "abs_ok": bool(d.max() <= 1e-4),
        "ok": bool(np.all(d <= tol)),
    }
    print(f"  {variant}: max |diff| {d.max():.2e}, max diff / tolerance {np.max(d / tol):.3f}, "
          f"top-1 agree {row['top1'] * 100:.0f} %")
    return row


def table(rows):
    lines = [
        "| variant | max abs diff | max rel diff (all logits) | max diff / max(1, abs logit) | max abs logit | top-1 agree | abs <= 1e-4 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['max_abs']:.2e} | {r['max_rel']:.2e} | {r['max_rel_big']:.2e} | "
            f"{r['max_logit']:.2f} | {r['top1'] * 100:.0f} % | {'yes' if r['abs_ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", metavar="NAME", nargs="+",
                    help="check full-size variants (m1_0, repvit_m2_3, ..., or `all`)")
    ap.add_argument("--no-run", action="store_true", help="with --full: only write files, print the command")
    ap.add_argument("--official", action="store_true",
                    help="with --full: store the checkpoint under the official repository's key names")
    ap.add_argument("--loaders", action="store_true",
                    help="only the fixtures of checkpoint and input kinds (fused, headless, features, npy, JPEG)")
    ap.add_argument("--repvit", metavar="PATH", help="with --full: this repvit binary instead of `cargo run --release`")
    a = ap.parse_args()
    print(f"timm {timm.__version__}, torch {torch.__version__}")
    if a.full:
        names = FULL_VARIANTS if a.full == ["all"] else a.full
        rows = [r for r in (full(n, not a.no_run, a.repvit, a.official) for n in names) if r is not None]
        if rows:
            print()
            print(table(rows))
        return 0 if all(r["abs_ok"] for r in rows) else 1
    if not a.loaders:
        small_fixtures()
    loader_fixtures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
