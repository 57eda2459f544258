#!/usr/bin/env python3
"""Writes model/src/imagenet_classes.txt: the 1000 ImageNet-1k class names in class-index order, one
a line, from timm's own tables (`timm.data.ImageNetInfo`, synset -> description), as timm's
`repvit_*.in1k` heads number them. `repvit classify` embeds the file with `include_str!`.

Run with: /work/venv/bin/python model/tools/imagenet_classes.py
"""
import pathlib

import timm
from timm.data import ImageNetInfo

OUT = pathlib.Path(__file__).resolve().parents[1] / "src" / "imagenet_classes.txt"


def main():
    info = ImageNetInfo()
    n = info.num_classes()
    assert n == 1000, n
    names = [info.index_to_description(i) for i in range(n)]
    for i, name in enumerate(names):
        assert name and "\n" not in name and name == name.strip(), (i, name)
    OUT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"timm {timm.__version__}: wrote {n} names to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
