"""Fits the two tables behind the crate's GELU (see `src/activation.rs`).

GELU(x) = x/2 + |x|/2 * E(|x|) with E(u) = erf(u / sqrt 2). E is approximated piecewise: with
f = u * SCALE, segment i = round(f) and r = f - i in [-1/2, 1/2], E ~= P_i(r), a polynomial per
segment; the last segment is the constant 1 (E(u) within 1e-8 of 1 there). SIMD tiers look the
coefficients up by `i` (a register permute per power) and evaluate Horner's rule with fused
multiply-adds. Two tables, one per register width:

- 8 segments of degree 6 (`GELU_POLY`): one 8-float register per power (AVX2, NEON, the scalar and
  portable tiers). f = min(u * SCALE, 7), i = round(f), r = f - i; result fma(u/2, P, x/2).
- 32 segments of degree 3 (`GELU32_POLY`, stored halved): one two-register permute per power on
  AVX-512 (32 floats = two zmm). u is clamped to CLAMP first; t = fma(u, SCALE, 1.5 * 2^23) rounds
  to the segment index (its low bits are i), i = t - 1.5 * 2^23, r = fma(u, SCALE, -i); result
  fma(u, P/2, x/2). Fewer multiply-adds per vector than the 8-segment form.

Least squares on Chebyshev-like nodes, reweighted towards minimax, then an f32 simulation of each
exact evaluation order, checked against math.erf. Prints the Rust tables pasted into
`src/activation.rs` (the committed 8-segment table came from an earlier numpy: a refit with numpy
2.4 differs in the last bit of 3 of its 56 coefficients). Needs numpy. Run: python3 kernels/tools/fit_gelu.py
"""
import math

import numpy as np

# E(u) is taken as exactly 1 from this u on (u * (1 - E(u)) / 2 < 6e-9 there).
CONST_FROM = 5.6
MAGIC = 1.5 * 2.0**23
f32 = np.float32


def scale_of(segments):
    return (segments - 1.5) / CONST_FROM


def fit_segment(j, scale, deg):
    r = 0.5 * np.cos(np.linspace(0.0, math.pi, 600))
    u = (j + r) / scale
    keep = u >= 0.0
    r, u = r[keep], u[keep]
    target = np.array([math.erf(v / math.sqrt(2.0)) for v in u])
    a = np.stack([r**k for k in range(deg + 1)], 1)
    w = np.ones_like(target)
    for _ in range(40):
        c, *_ = np.linalg.lstsq(a * w[:, None], target * w, rcond=None)
        e = np.abs(a @ c - target)
        w = w * np.sqrt(e / e.max() + 1e-3)
    return [f32(v) for v in c]


def fit_table(segments, deg):
    scale = scale_of(segments)
    rows = [fit_segment(j, scale, deg) for j in range(segments - 1)] + [[1.0] + [0.0] * deg]
    return np.array(rows, dtype=np.float32)


def fma32(a, b, c):
    # An f32 fused multiply-add: the f64 product of two f32 values is exact.
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(np.float32)


def horner(table, i, r):
    deg = table.shape[1] - 1
    p = table[i, deg]
    for k in range(deg - 1, -1, -1):
        p = fma32(p, r, table[i, k])
    return p


def gelu8(x, table):
    segments = table.shape[0]
    u = np.abs(x)
    fl = np.minimum((u * f32(scale_of(segments))).astype(np.float32), f32(segments - 1))
    i = np.round(fl)  # ties to even, as every tier rounds
    r = (fl - i).astype(np.float32)
    p = horner(table, i.astype(int), r)
    return fma32((f32(0.5) * u).astype(np.float32), p, (f32(0.5) * x).astype(np.float32))


def clamp32(segments):
    # The largest f32 u whose fma(u, SCALE, MAGIC) still rounds to the last segment's index.
    c = f32((segments - 1) / scale_of(segments))
    while fma32(c, f32(scale_of(segments)), f32(MAGIC)) - f32(MAGIC) > segments - 1:
        c = np.nextafter(c, f32(0))
    return c


def gelu32(x, half_table):
    segments = half_table.shape[0]
    s, m = f32(scale_of(segments)), f32(MAGIC)
    u = np.abs(x)
    uc = np.minimum(u, clamp32(segments))
    t = fma32(uc, s, m)
    i = (t - m).astype(np.float32)  # exact: an integer in [0, segments - 1]
    r = fma32(uc, s, -i)
    p = horner(half_table, i.astype(int), r)
    return fma32(u, p, (f32(0.5) * x).astype(np.float32))


def report(name, values, xs, ref):
    err = np.abs(values.astype(np.float64) - ref)
    print("// %s: max abs error of GELU %.3g at x = %g" % (name, err.max(), xs[np.argmax(err)]))


def print_table(name, table):
    print("pub(crate) const %s: [[f32; %d]; %d] = [" % (name, table.shape[0], table.shape[1]))
    for k in range(table.shape[1]):
        print("    [%s]," % ", ".join("%.9e" % table[j, k] for j in range(table.shape[0])))
    print("];")


xs = np.concatenate([np.linspace(-20, 20, 800001), np.linspace(-1e4, 1e4, 20001)]).astype(np.float32)
ref = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in xs])

t8 = fit_table(8, 6)
report("8 segments, degree 6", gelu8(xs, t8), xs, ref)
print("pub(crate) const GELU_SCALE: f32 = %.9e;" % f32(scale_of(8)))
print_table("GELU_POLY", t8)

t32 = fit_table(32, 3) * f32(0.5)  # halving is exact: P/2 costs no rounding
report("32 segments, degree 3", gelu32(xs, t32), xs, ref)
print("pub(crate) const GELU32_SCALE: f32 = %.9e;" % f32(scale_of(32)))
print("pub(crate) const GELU32_CLAMP: f32 = %.9e;" % clamp32(32))
print_table("GELU32_POLY", t32)
