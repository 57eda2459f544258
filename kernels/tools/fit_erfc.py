"""Fits the polynomial behind the crate's GELU: erfc(z) ~= exp(-z^2) * t * P(t), t = 1 / (1 + 0.4 z).

Weighted least squares on the relative error of erfc over [0, ZMAX], then an f32 simulation of the exact
evaluation order the kernels use, checked against math.erf. Prints the coefficients pasted into
`src/activation.rs`. Needs numpy. Run: python3 kernels/tools/fit_erfc.py
"""
import math

import numpy as np

P = 0.4
DEG = 8
ZMAX = 4.6
f = np.float32

zs = np.linspace(0.0, ZMAX, 40001)
target = np.array([math.erfc(z) * math.exp(z * z) for z in zs])
t = 1.0 / (1.0 + P * zs)
A = np.stack([t ** (k + 1) for k in range(DEG)], 1)
w = 1.0 / target
coef, *_ = np.linalg.lstsq(A * w[:, None], target * w, rcond=None)
print("relative error of erfc in f64:", np.max(np.abs(A @ coef / target - 1.0)))
c32 = [f(c) for c in coef]


def exp32(x):
    # Same scheme as the kernels: 2^n * e^r, |r| <= ln2/2, Taylor to degree 7.
    x = np.clip(x, f(-87.3), f(88.7)).astype(np.float32)
    n = np.round(x * f(1.4426950408889634)).astype(np.float32)
    r = (x - n * f(0.693359375)).astype(np.float32)
    r = (r - n * f(-2.12194440e-4)).astype(np.float32)
    p = f(1.0 / 5040.0)
    for k in [720, 120, 24, 6, 2, 1, 1]:
        p = (p * r + f(1.0 / k)).astype(np.float32)
    return (p * np.exp2(n)).astype(np.float32)


def gelu32(x):
    x = x.astype(np.float32)
    z = (np.abs(x) * f(0.7071067811865476)).astype(np.float32)
    zc = np.minimum(z, f(ZMAX))
    tt = (f(1.0) / (f(1.0) + f(P) * zc)).astype(np.float32)
    p = c32[-1]
    for c in c32[-2::-1]:
        p = (p * tt + c).astype(np.float32)
    p = (p * tt).astype(np.float32)
    c = (f(0.5) * p * exp32(-(zc * zc))).astype(np.float32)
    c = np.where(z > f(ZMAX), f(0.0), c)
    phi = np.where(x >= 0, f(1.0) - c, c)
    return (x * phi).astype(np.float32)


xs = np.concatenate([np.linspace(-12, 12, 400001), np.linspace(-1e4, 1e4, 20001)]).astype(np.float32)
ref = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in xs])
err = np.abs(gelu32(xs).astype(np.float64) - ref)
small = np.abs(xs) < 16
print("max abs error of GELU for |x| < 16:", err[small].max(), "at", xs[small][np.argmax(err[small])])
print("max error in ulps of the result beyond:", (err[~small] / np.spacing(np.abs(ref[~small]).astype(np.float32))).max())
print("ERFC_COEFFS: [f32; %d] = [%s]" % (DEG, ", ".join("%.9e" % c for c in c32)))
