"""Fits the table behind the crate's GELU (see `src/activation.rs`).

GELU(x) = x/2 + |x|/2 * E(|x|) with E(u) = erf(u / sqrt 2). E is approximated piecewise: with
f = min(u * GELU_SCALE, SEGMENTS - 1), i = round(f) and r = f - i in [-1/2, 1/2], E ~= P_i(r), a
polynomial of degree DEG per segment; the last segment is the constant 1 (E(u) within 1e-8 of 1 there).
Every tier looks the coefficients up by `i` (a register permute on SIMD) and evaluates Horner's rule
with fused multiply-adds, so all tiers give the same bits.

Least squares on Chebyshev-like nodes, reweighted towards minimax, then an f32 simulation of the exact
evaluation order the kernels use, checked against math.erf. Prints the Rust table pasted into
`src/activation.rs`. Needs numpy. Run: python3 kernels/tools/fit_gelu.py
"""
import math

import numpy as np

SEGMENTS = 8
DEG = 6
# E(u) is taken as exactly 1 from this u on (u * (1 - E(u)) / 2 < 6e-9 there).
CONST_FROM = 5.6
SCALE = (SEGMENTS - 1.5) / CONST_FROM
f32 = np.float32


def fit_segment(j):
    r = 0.5 * np.cos(np.linspace(0.0, math.pi, 600))
    u = (j + r) / SCALE
    keep = u >= 0.0
    r, u = r[keep], u[keep]
    target = np.array([math.erf(v / math.sqrt(2.0)) for v in u])
    a = np.stack([r**k for k in range(DEG + 1)], 1)
    w = np.ones_like(target)
    for _ in range(40):
        c, *_ = np.linalg.lstsq(a * w[:, None], target * w, rcond=None)
        e = np.abs(a @ c - target)
        w = w * np.sqrt(e / e.max() + 1e-3)
    return [f32(v) for v in c]


table = np.array([fit_segment(j) for j in range(SEGMENTS - 1)] + [[1.0] + [0.0] * DEG], dtype=np.float32)


def fma32(a, b, c):
    # An f32 fused multiply-add: the f64 product of two f32 values is exact.
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def gelu32(x):
    x = x.astype(np.float32)
    u = np.abs(x)
    fl = np.minimum((u * f32(SCALE)).astype(np.float32), f32(SEGMENTS - 1))
    i = np.round(fl)  # ties to even, as every tier rounds
    r = (fl - i).astype(np.float32)
    i = i.astype(int)
    p = table[i, DEG]
    for k in range(DEG - 1, -1, -1):
        p = fma32(p, r, table[i, k])
    return fma32((f32(0.5) * u).astype(np.float32), p, (f32(0.5) * x).astype(np.float32))


xs = np.concatenate([np.linspace(-20, 20, 800001), np.linspace(-1e4, 1e4, 20001)]).astype(np.float32)
ref = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in xs])
err = np.abs(gelu32(xs).astype(np.float64) - ref)
print("max abs error of GELU:", err.max(), "at", xs[np.argmax(err)])
print("pub(crate) const GELU_SCALE: f32 = %.9e;" % f32(SCALE))
print("pub(crate) const GELU_POLY: [[f32; %d]; %d] = [" % (SEGMENTS, DEG + 1))
for k in range(DEG + 1):
    print("    [%s]," % ", ".join("%.9e" % table[j, k] for j in range(SEGMENTS)))
print("];")
