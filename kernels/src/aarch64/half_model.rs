//! Bit-exact models of the NEON half-precision kernels' arithmetic, in portable Rust: the
//! references the kernels are held to (bit for bit) in the tests, beside the f64 oracle.
//!
//! - f16 ([`super::pointwise_f16`]): inputs and weights rounded to IEEE binary16 (round to nearest
//!   even, subnormals kept: FPCR.FZ16 = 0, as Linux leaves it), then one f16 fused multiply-add per
//!   input channel in ascending order (`FMLA Vd.8H`: `round16(c + a * b)`, one rounding), widened to
//!   f32 exactly.
//! - bf16 ([`super::pointwise_bf16`]): inputs and weights rounded to bfloat16 (round to nearest
//!   even), then per pair of input channels the Arm ARM's `BFDotAdd` (DDI 0487, shared pseudocode,
//!   standard BFloat16 behaviour without FEAT_EBF16 or with FPCR.EBF = 0): both products exact, their
//!   sum rounded to f32, then added to the f32 accumulator and rounded again; both roundings are
//!   round-to-odd, denormal inputs and results are flushed to zero, FPCR is ignored, and an
//!   overflow gives infinity. (QEMU's `bfdotadd` implements the same: `float_round_to_odd_inf`,
//!   flush inputs and outputs to zero.)
//!
//! Exact rounding of a sum from f64: a sum of two values is first formed in f64 with its exact error
//! term (Knuth's TwoSum, `s + e` equals the exact sum), and [`f16_round`] / [`f32_round_odd`] round
//! `s + e` correctly, which a plain `s as f32` (double rounding) would not.

use crate::activation::Activation;
use crate::isa::Precision;
use crate::ukernel::PointwiseGeom;

/// The default f16 NaN (any NaN the model produces; the tests compare NaN-ness only).
const F16_NAN: u16 = 0x7e00;

/// `(s, e)` with `s = fl(a + b)` and `s + e == a + b` exactly (Knuth's TwoSum; no overflow).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// `floor(log2(|a|))` of a normal, finite, nonzero f64.
fn exponent(a: f64) -> i32 {
    ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// IEEE binary16 bits of the exact value `v + e`, rounded to nearest even, where `e` is at most
/// half an f64 ulp of `v` (the error term of [`two_sum`]; 0 when `v` is exact). Overflow gives
/// infinity, subnormals are kept.
pub(crate) fn f16_round(v: f64, e: f64) -> u16 {
    if v.is_nan() {
        return F16_NAN;
    }
    let sign = if v.is_sign_negative() { 0x8000 } else { 0 };
    let a = v.abs();
    if a >= 65536.0 {
        return sign | 0x7c00;
    }
    // Spacing of f16 values around `a`: 2^-24 in the subnormal range, else 2^(E - 10).
    let sub = a < f64::powi(2.0, -14);
    let q = if sub {
        f64::powi(2.0, -24)
    } else {
        f64::powi(2.0, exponent(a) - 10)
    };
    // `a / q` is exact (a power-of-two scale); its fraction is a multiple of 2^-42, so `e / q`
    // (at most 2^-43) can only decide an exact tie.
    let m = a / q;
    let fl = m.floor();
    let frac = m - fl;
    let up = if frac != 0.5 {
        frac > 0.5
    } else {
        // `e` pointing away from zero makes |v + e| larger.
        let away = if v > 0.0 { e } else { -e };
        if away != 0.0 {
            away > 0.0
        } else {
            fl % 2.0 == 1.0
        }
    };
    let n = fl as u16 + u16::from(up);
    let bits = if sub {
        // 1024 (a carry into the smallest normal) encodes as exponent 1, mantissa 0: the same bits.
        n
    } else {
        // n in 1024..=2048; 2048 carries into the exponent (up to infinity, 0x7c00).
        (((exponent(a) + 15) as u16) << 10) + n - 1024
    };
    sign | bits
}

/// f32 to IEEE binary16, round to nearest even (`FCVTN`, and the packing of f16 weights).
pub(crate) fn round_f16(x: f32) -> u16 {
    f16_round(f64::from(x), 0.0)
}

/// The value of binary16 bits (exact in f64).
pub(crate) fn f16_value(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f64::from(h & 0x3ff);
    sign * match exp {
        0 => man * f64::powi(2.0, -24),
        31 if man == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + man) * f64::powi(2.0, exp - 25),
    }
}

/// `round16(c + a * b)` with one rounding (the f16 `FMLA`), on binary16 bits.
pub(crate) fn fma_f16(a: u16, b: u16, c: u16) -> u16 {
    // The product of two binary16 values has at most 22 significant bits: exact in f64.
    let p = f16_value(a) * f16_value(b);
    let c = f16_value(c);
    let s = p + c;
    if !s.is_finite() {
        return if s.is_nan() {
            F16_NAN
        } else {
            f16_round(s, 0.0)
        };
    }
    let (s, e) = two_sum(p, c);
    f16_round(s, e)
}

/// f32 to bfloat16, round to nearest even, NaN kept quiet (`BFCVTN`, and the packing of bf16
/// weights).
pub(crate) fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let lsb = (b >> 16) & 1;
    (b.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// The f32 value of bfloat16 bits.
pub(crate) fn bf16_value(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Flush a denormal to a zero of the same sign.
fn ftz(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// The exact value `v + e` (as from [`two_sum`]) rounded to f32 by round-to-odd (truncate, then
/// set the last bit if anything was lost), overflow to infinity, a tiny result (before rounding)
/// flushed to zero: QEMU's `float_round_to_odd_inf` with flush-to-zero.
pub(crate) fn f32_round_odd(v: f64, e: f64) -> f32 {
    if v.is_nan() {
        return f32::NAN;
    }
    if v.abs() > f64::from(f32::MAX) {
        return f32::INFINITY.copysign(v as f32);
    }
    if v.abs() < f64::from(f32::MIN_POSITIVE) {
        return 0.0f32.copysign(v as f32);
    }
    // Truncate `v` towards zero.
    let mut t = v as f32;
    if f64::from(t).abs() > v.abs() {
        t = f32::from_bits(t.to_bits() - 1);
    }
    let mut inexact = f64::from(t) != v;
    if !inexact && e != 0.0 {
        inexact = true;
        // `v` is on the f32 grid; the exact value lies just inside it when `e` points to zero.
        if (e > 0.0) != (v > 0.0) {
            t = f32::from_bits(t.to_bits() - 1);
        }
    }
    if inexact {
        t = f32::from_bits(t.to_bits() | 1);
    }
    t
}

/// `x + y` rounded by [`f32_round_odd`], inputs flushed to zero.
fn add_odd(x: f32, y: f32) -> f32 {
    let (x, y) = (f64::from(ftz(x)), f64::from(ftz(y)));
    let s = x + y;
    if !s.is_finite() {
        return s as f32;
    }
    let (s, e) = two_sum(x, y);
    f32_round_odd(s, e)
}

/// The Arm ARM's `BFDotAdd(sum, a0, a1, b0, b1)`: `sum + (a0 * b0 + a1 * b1)` with the roundings
/// described in the module header.
pub(crate) fn bfdot_add(sum: f32, a: [u16; 2], b: [u16; 2]) -> f32 {
    let mul = |x: u16, y: u16| {
        // bf16 products are exact in f32 unless they over- or underflow: round the f64 product.
        let p = f64::from(ftz(bf16_value(x))) * f64::from(ftz(bf16_value(y)));
        if p.is_finite() {
            f32_round_odd(p, 0.0)
        } else {
            p as f32
        }
    };
    add_odd(sum, add_odd(mul(a[0], b[0]), mul(a[1], b[1])))
}

/// The f32 epilogue of both kernels: `act(acc + bias) (+ residual)`, all f32.
fn epilogue(acc: f32, bias: f32, act: Activation, residual: Option<f32>) -> f32 {
    let y = act.apply(acc + bias);
    residual.map_or(y, |r| y + r)
}

/// What the NEON kernel of precision `dtype` (`pointwise_f16_8x16_neonfp16` for
/// [`Precision::F16`], `pointwise_bf16_8x8_neonbf16` for [`Precision::Bf16`]) computes for
/// PyTorch-layout weights `[n, k]`, bit for bit.
pub(crate) fn pointwise(
    dtype: Precision,
    g: &PointwiseGeom,
    x: &[f32],
    w_nk: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    out: &mut [f32],
) {
    let (k, n) = (g.k, g.n);
    // The sum of row `r` of `x` times row `j` of the weights, before the epilogue.
    let dot: Box<dyn Fn(usize, usize) -> f32> = match dtype {
        Precision::F16 => {
            let xh: Vec<u16> = x.iter().map(|&v| round_f16(v)).collect();
            let wh: Vec<u16> = w_nk.iter().map(|&v| round_f16(v)).collect();
            Box::new(move |r, j| {
                let mut acc = 0u16;
                for kk in 0..k {
                    acc = fma_f16(xh[r * k + kk], wh[j * k + kk], acc);
                }
                f16_value(acc) as f32
            })
        }
        Precision::Bf16 => {
            // Pair q of a row: elements 2q and 2q + 1, the second zero past an odd K.
            let pair = move |v: &[f32], base: usize, q: usize| {
                let second = if 2 * q + 1 < k {
                    round_bf16(v[base + 2 * q + 1])
                } else {
                    0
                };
                [round_bf16(v[base + 2 * q]), second]
            };
            Box::new(move |r, j| {
                let mut acc = 0.0f32;
                for q in 0..k.div_ceil(2) {
                    acc = bfdot_add(acc, pair(x, r * k, q), pair(w_nk, j * k, q));
                }
                acc
            })
        }
        Precision::F32 => panic!("no half-precision model of f32"),
    };
    for r in 0..g.p {
        for j in 0..n {
            out[r * n + j] = epilogue(
                dot(r, j),
                bias.map_or(0.0, |b| b[j]),
                g.act,
                residual.map(|res| res[r * n + j]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_of_f32_matches_known_values_and_ties_to_even() {
        assert_eq!(round_f16(1.0), 0x3c00);
        assert_eq!(round_f16(-2.0), 0xc000);
        assert_eq!(round_f16(65504.0), 0x7bff);
        assert_eq!(round_f16(65519.0), 0x7bff);
        assert_eq!(
            round_f16(65520.0),
            0x7c00,
            "the tie above the largest f16 goes to infinity"
        );
        assert_eq!(round_f16(f32::powi(2.0, -24)), 0x0001);
        assert_eq!(round_f16(f32::powi(2.0, -25)), 0x0000, "tie to even (zero)");
        assert_eq!(
            round_f16(1.5 * f32::powi(2.0, -24)),
            0x0002,
            "tie to even (2)"
        );
        // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: even is 1; a hair above goes up.
        assert_eq!(round_f16(1.0 + f32::powi(2.0, -11)), 0x3c00);
        assert_eq!(round_f16(1.0 + f32::powi(2.0, -11) + f32::EPSILON), 0x3c01);
        assert_eq!(round_f16(1.0 + 3.0 * f32::powi(2.0, -11)), 0x3c02);
        assert!(f16_value(round_f16(f32::NAN)).is_nan());
        // Every binary16 value round-trips.
        for h in 0..=0xffffu16 {
            let v = f16_value(h);
            if !v.is_nan() {
                assert_eq!(round_f16(v as f32), h, "{h:#06x}");
            }
        }
    }

    #[test]
    fn f16_fma_rounds_once_and_uses_the_error_term_at_ties() {
        let one = round_f16(1.0);
        let tiny = round_f16(f32::powi(2.0, -11));
        // 1 + 2^-11 * 1: an exact tie -> even (1).
        assert_eq!(fma_f16(tiny, one, one), one);
        // 1 + 2^-11 * (1 + 2^-10): just above the tie -> 1 + 2^-10 (a double rounding would not
        // see the excess if it went through f32 first only when it is below f32 precision; here
        // the product is exact, so this checks the single rounding).
        let a = round_f16(1.0 + f32::powi(2.0, -10));
        assert_eq!(fma_f16(tiny, a, one), 0x3c01);
        // c = 2048 (ulp 2) + 1 - 2^-24: below the tie, stays 2048; + 1 + 2^-24 goes to 2050.
        let c = round_f16(2048.0);
        let small = round_f16(f32::powi(2.0, -12));
        let m = round_f16(-1.0);
        // 2048 + (-1 * 2^-12) = 2047.999..: rounds to 2048 (spacing below 2048 is 1).
        assert_eq!(fma_f16(m, small, c), c);
        // The TwoSum path: a value exactly on a tie in f64 with a nonzero error term.
        // v = 1 + 2^-11 (tie), e = +tiny -> rounds up; e = -tiny -> rounds down.
        assert_eq!(
            f16_round(1.0 + f64::powi(2.0, -11), f64::powi(2.0, -70)),
            0x3c01
        );
        assert_eq!(
            f16_round(1.0 + f64::powi(2.0, -11), -f64::powi(2.0, -70)),
            0x3c00
        );
        assert_eq!(
            f16_round(-(1.0 + f64::powi(2.0, -11)), -f64::powi(2.0, -70)),
            0xbc01
        );
        assert!(f16_value(fma_f16(round_f16(f32::INFINITY), 0, one)).is_nan());
    }

    #[test]
    fn bf16_rounding_ties_to_even_and_keeps_nan() {
        assert_eq!(round_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is the tie between 1 and 1 + 2^-7.
        assert_eq!(round_bf16(1.0 + f32::powi(2.0, -8)), 0x3f80);
        assert_eq!(round_bf16(1.0 + 3.0 * f32::powi(2.0, -8)), 0x3f82);
        assert_eq!(round_bf16(1.0 + f32::powi(2.0, -8) + f32::EPSILON), 0x3f81);
        assert!(bf16_value(round_bf16(f32::NAN)).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(round_bf16(f32::MAX), 0x7f80, "rounds up to infinity");
    }

    #[test]
    fn round_to_odd_truncates_and_sets_the_last_bit_when_inexact() {
        assert_eq!(f32_round_odd(1.0, 0.0), 1.0);
        // 1 + 2^-24 (not an f32) truncates to 1, inexact: 1 + 2^-23 (odd).
        assert_eq!(
            f32_round_odd(1.0 + f64::powi(2.0, -24), 0.0),
            1.0 + f32::EPSILON
        );
        // Exactly 1 with a negative error: just below 1 -> truncates to 1 - 2^-24, odd already.
        assert_eq!(
            f32_round_odd(1.0, -f64::powi(2.0, -80)),
            1.0 - f32::EPSILON / 2.0
        );
        assert_eq!(f32_round_odd(1.0, f64::powi(2.0, -80)), 1.0 + f32::EPSILON);
        assert_eq!(
            f32_round_odd(-1.0, -f64::powi(2.0, -80)),
            -1.0 - f32::EPSILON
        );
        assert_eq!(f32_round_odd(1e-40, 0.0), 0.0, "denormal flushed");
        assert_eq!(f32_round_odd(1e39, 0.0), f32::INFINITY);
        // bfdot: 1 * 2^-30 + 1 * 2^-30 added to 1: not representable, so 1 + 2^-23.
        let one = round_bf16(1.0);
        let t = round_bf16(f32::powi(2.0, -30));
        assert_eq!(bfdot_add(1.0, [one, one], [t, t]), 1.0 + f32::EPSILON);
        assert_eq!(bfdot_add(1.0, [one, one], [one, one]), 3.0);
    }
}
