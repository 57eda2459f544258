#!/usr/bin/env python3
"""Reference fixtures for `repvit::preprocess`, computed with timm's own eval transform.

Writes into model/tests/fixtures/:

    image_64x48.png, image_300x260.png, image_40x30_grey.png
        deterministic patterns (gradients, a sine grating, a checkerboard, hashed noise): RGB
        64 wide x 48 high (upscaled by the transform), RGB 300 x 260 (downscaled: antialiasing
        matters), and an 8-bit greyscale 40 x 30 (PIL's convert("RGB") replicates it)
    image_<name>_timm224.png
        timm's transform output for each, as the 224 x 224 8-bit image it normalised: the script
        checks that `(u8 / 255 - mean) / std` in float32 reproduces timm's float tensor bit for bit,
        so the PNG stores that tensor exactly in a twentieth of the bytes of a float .npy
    image_64x48_timm_rows.npy
        timm's float tensor itself, rows 0, 111 and 223 of every channel: [3, 3, 224] float32

The transform is `timm.data.create_transform(**timm.data.resolve_data_config({}, model=m))` for
`m = timm.create_model("repvit_m1_0")` on `PIL.Image.open(path).convert("RGB")`, as timm's eval
scripts load images. It also prints, for the 300 x 260 image, how far plausible mistakes move the
output (in normalised units), which is what the Rust test's tolerance must stay below.

Run with: /work/venv/bin/python model/tools/make_image_fixtures.py
"""
import pathlib

import numpy as np
import PIL
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torchvision.transforms import functional as TF

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "model" / "tests" / "fixtures"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def pattern(w, h, seed):
    """A deterministic RGB pattern with smooth and sharp content."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 127.5 + 127.5 * np.sin(2 * np.pi * (x * 0.11 + y * 0.07))
    b = np.where(((x // 5) + (y // 7)) % 2 == 0, 230.0, 20.0)
    # Hashed noise (integer arithmetic, no RNG state): high frequencies for the antialiasing.
    n = (x.astype(np.uint64) * 73856093 ^ y.astype(np.uint64) * 19349663 ^ np.uint64(seed * 83492791))
    noise = 16.0 * (n % np.uint64(4)).astype(np.float64) - 24  # four levels: compresses well
    img = np.stack([r + noise, g - noise, b + 0.5 * noise], axis=-1)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def transform():
    m = timm.create_model("repvit_m1_0", pretrained=False)
    cfg = resolve_data_config({}, model=m)
    assert cfg["crop_pct"] == 0.95 and cfg["interpolation"] == "bicubic", cfg
    return create_transform(**cfg), cfg


def to_u8(t):
    """Recovers the 8-bit image timm normalised and checks that it reproduces `t` exactly."""
    x = t.numpy()
    u = np.rint((x * STD[:, None, None] + MEAN[:, None, None]) * 255).astype(np.int64)
    assert u.min() >= 0 and u.max() <= 255
    u = u.astype(np.uint8)
    again = (torch.from_numpy(u).float().div(255) - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]
    assert torch.equal(again, t), float((again - t).abs().max())
    return u.transpose(1, 2, 0)


def mistakes(img, ref):
    """Max |diff| from timm's output of plausible mistakes, normalised units."""
    def norm(pil):
        return TF.normalize(TF.to_tensor(pil), MEAN.tolist(), STD.tolist())

    def resize_crop(interp, off=(0, 0), antialias=True):
        if antialias:
            r = TF.resize(img, 235, interpolation=interp)
            t = norm(r)
        else:
            t = TF.resize(TF.to_tensor(img)[None], 235, interpolation=interp, antialias=False)[0]
            t = TF.normalize(t.clamp(0, 1), MEAN.tolist(), STD.tolist())
        h, w = t.shape[1:]
        top, left = int(round((h - 224) / 2)) + off[0], int(round((w - 224) / 2)) + off[1]
        return t[:, top:top + 224, left:left + 224]

    B = TF.InterpolationMode
    out = {
        "bilinear instead of bicubic": resize_crop(B.BILINEAR),
        "bicubic without antialias": resize_crop(B.BICUBIC, antialias=False),
        "crop one pixel right": resize_crop(B.BICUBIC, off=(0, 1)),
        "crop one pixel down": resize_crop(B.BICUBIC, off=(1, 0)),
        "mean/std 0.5": TF.normalize(TF.to_tensor(img), [0.5] * 3, [0.5] * 3),
    }
    for k, v in out.items():
        if k.startswith("mean/std"):
            v = TF.center_crop(TF.resize(v, 235, interpolation=B.BICUBIC), 224)
        d = (v - ref).abs()
        print(f"    {k:32s} max |diff| {float(d.max()):.3f}, mean |diff| {float(d.mean()):.4f}")
    same = resize_crop(B.BICUBIC)
    print(f"    {'(timm itself, recomputed)':32s} max |diff| {float((same - ref).abs().max()):.3g}")


def main():
    print(f"timm {timm.__version__}, torch {torch.__version__}, Pillow {PIL.__version__}")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    tf, cfg = transform()
    print(f"  {cfg}\n  {tf}")
    images = {
        "64x48": Image.fromarray(pattern(64, 48, 1), "RGB"),
        "300x260": Image.fromarray(pattern(300, 260, 2), "RGB"),
        "40x30_grey": Image.fromarray(pattern(40, 30, 3)[..., 1], "L"),
    }
    for name, im in images.items():
        path = FIXTURES / f"image_{name}.png"
        im.save(path, optimize=True)
        loaded = Image.open(path).convert("RGB")
        t = tf(loaded)
        assert tuple(t.shape) == (3, 224, 224), t.shape
        Image.fromarray(to_u8(t), "RGB").save(FIXTURES / f"image_{name}_timm224.png", optimize=True)
        if name == "64x48":
            np.save(FIXTURES / "image_64x48_timm_rows.npy", t.numpy()[:, [0, 111, 223], :].astype(np.float32))
        if name == "300x260":
            print("  plausible mistakes on image_300x260.png:")
            mistakes(loaded, t)
    files = sorted(FIXTURES.glob("image_*"))
    for f in files:
        print(f"  {f.relative_to(ROOT)}: {f.stat().st_size} bytes")
    print(f"  total {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
