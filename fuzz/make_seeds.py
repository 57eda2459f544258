#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/seeds/<target>/), small valid files of many shapes.

checkpoint: timm RepViTs of tiny widths and several structures (1 to 4 stages, depths 0 to 3,
    legacy or not, one or two heads, headless, other class counts and input channels, mlp_ratio 2
    or 3), each saved in several kinds: training layout, deployed (`fuse()`), official key names,
    a `module.` wrapper, f16/bf16 tensors (the rarer kinds for a few structures only, to keep the
    corpus small). MobileNetV3-Large/-Small and V2 in timm's exact block structure at the
    narrowest width (one f16, one headless).
npy: small arrays as float32/float64/float16, both byte orders, C and Fortran order, 0-d to 4-d,
    format versions 1.0 and 2.0.
image: PNGs (RGB, RGBA, grey, grey+alpha, palette, 16-bit RGB and grey) and JPEGs (baseline,
    progressive, greyscale, 4:2:0 and 4:4:4, with restart markers, with an EXIF thumbnail, and one
    truncated), a few pixels wide. The image target reads its first byte as a flag, so each file
    is stored behind one byte.

Run with: /work/venvs/peers/bin/python fuzz/make_seeds.py  (timm, torch, safetensors, numpy, PIL)
"""
import io
import pathlib
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.models.repvit import RepVit

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "model" / "tools"))  # make_fixtures, make_mobilenet_fixtures
from make_fixtures import official_names, randomise  # noqa: E402

SEEDS = HERE / "seeds"


def checkpoints():
    out = SEEDS / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    configs = [
        dict(embed_dim=(4,), depth=(1,), num_classes=3),
        dict(embed_dim=(4, 8), depth=(1, 1), num_classes=5),
        dict(embed_dim=(4, 8), depth=(2, 0), num_classes=2, legacy=True),
        dict(embed_dim=(4, 6, 8), depth=(1, 1, 1), num_classes=0),
        dict(embed_dim=(6, 8, 8, 10), depth=(1, 1, 2, 1), num_classes=4, distillation=False),
        dict(embed_dim=(4, 8), depth=(3, 1), num_classes=7, mlp_ratio=3),
        dict(embed_dim=(8, 8), depth=(1, 1), num_classes=3, in_chans=1, legacy=True, distillation=False),
    ]
    for i, cfg in enumerate(configs):
        torch.manual_seed(100 + i)
        m = RepVit(**cfg)
        randomise(m, 200 + i)
        sd = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}
        save_file(sd, str(out / f"c{i}_train.safetensors"))
        if i == 1:
            save_file({"module." + k: v for k, v in sd.items()}, str(out / f"c{i}_module.safetensors"))
        half = {k: (v.half() if j % 2 else v.bfloat16()) if v.is_floating_point() else v
                for j, (k, v) in enumerate(sd.items())}
        if i in (2, 4):
            save_file(half, str(out / f"c{i}_half.safetensors"))
        depth = list(cfg["depth"])
        if i in (1, 4):
            save_file(official_names(sd, depth), str(out / f"c{i}_official.safetensors"))
        m.fuse()
        fused = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()}
        save_file(fused, str(out / f"c{i}_fused.safetensors"))
        if i == 4:
            save_file(official_names(fused, depth), str(out / f"c{i}_fused_official.safetensors"))


def mobilenets():
    """MobileNetV3-Large/-Small and V2 in their exact block structure at the narrowest width
    timm rounds to (multiplier 0.1: 8-channel minimum), head 16 wide, 3 classes; one stored f16,
    one deployed without its classifier (num_classes=0)."""
    from make_mobilenet_fixtures import randomise as randomise_mnv, reduced

    out = SEEDS / "checkpoint"
    for i, kind in enumerate(["large", "small", "v2"]):
        torch.manual_seed(300 + i)
        m = reduced(kind, 0.1)
        cin = m.conv_head.in_channels
        m.conv_head = torch.nn.Conv2d(cin, 16, 1, bias=kind != "v2")
        if kind == "v2":
            m.bn2 = type(m.bn2)(16, act_layer=torch.nn.ReLU6)
        m.classifier = torch.nn.Linear(16, 3)
        randomise_mnv(m, 310 + i, (2, 3, 33, 29))
        sd = {k: v.detach().clone().contiguous() for k, v in m.state_dict().items()
              if not k.endswith("num_batches_tracked")}
        save_file(sd, str(out / f"mnv_{kind}.safetensors"))
        if i == 0:
            save_file({k: v.half() for k, v in sd.items()}, str(out / f"mnv_{kind}_half.safetensors"))
        if i == 1:
            headless = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
            save_file(headless, str(out / f"mnv_{kind}_headless.safetensors"))


def npys():
    out = SEEDS / "npy"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shapes = [(), (3,), (2, 3), (1, 3, 2, 2), (2, 1, 3, 1)]
    for si, shape in enumerate(shapes):
        a = rng.standard_normal(shape)
        for dt in ["<f4", ">f4", "<f8", ">f8", "<f2", ">f2"]:
            b = a.astype(dt)
            np.save(out / f"s{si}_{dt[0] == '>' and 'be' or 'le'}{dt[2]}.npy", b)
            if len(shape) > 1:
                np.save(out / f"s{si}_{dt[0] == '>' and 'be' or 'le'}{dt[2]}_fortran.npy", np.asfortranarray(b))
    buf = io.BytesIO()
    np.lib.format.write_array(buf, rng.standard_normal((2, 2)).astype("<f4"), version=(2, 0))
    (out / "v2.npy").write_bytes(buf.getvalue())
    np.save(out / "int.npy", np.arange(6, dtype="<i4").reshape(2, 3))


def images():
    out = SEEDS / "image"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    files = {}

    def enc(img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    im = Image.fromarray(rgb)
    files["rgb.png"] = enc(im, "PNG")
    files["rgba.png"] = enc(im.convert("RGBA"), "PNG")
    files["grey.png"] = enc(im.convert("L"), "PNG")
    files["greya.png"] = enc(im.convert("LA"), "PNG")
    files["palette.png"] = enc(im.convert("P"), "PNG")
    files["grey16.png"] = enc(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG")
    # 16-bit RGB: PIL cannot write it; a hand-made PNG.
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    h, w = 3, 4
    raw = b"".join(b"\0" + (rgb[y, :w].astype(">u2") * 257).tobytes() for y in range(h))
    files["rgb16.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                          + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    big = Image.fromarray(rng.integers(0, 256, (17, 19, 3), dtype=np.uint8))
    files["base.jpg"] = enc(big, "JPEG", quality=80)
    files["prog.jpg"] = enc(big, "JPEG", quality=80, progressive=True)
    files["grey.jpg"] = enc(big.convert("L"), "JPEG")
    files["444.jpg"] = enc(big, "JPEG", subsampling=0)
    thumb = enc(im, "JPEG")
    exif = Image.Exif()
    exif[0x010E] = "seed"
    files["exif.jpg"] = enc(big, "JPEG", exif=exif.tobytes())
    files["restart.jpg"] = enc(big, "JPEG", restart_marker_blocks=1)
    files["thumb.jpg"] = thumb
    j = files["base.jpg"]
    files["truncated.jpg"] = j[: len(j) * 2 // 3]
    for name, data in files.items():
        for flag in (0, 1) if name.endswith(".jpg") else (0,):
            (out / f"{flag}_{name}").write_bytes(bytes([flag]) + data)


if __name__ == "__main__":
    checkpoints()
    mobilenets()
    npys()
    images()
    for d in sorted(SEEDS.iterdir()):
        files = list(d.iterdir())
        print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
