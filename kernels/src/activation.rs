//! Element-wise activations that kernels fuse into their stores.
//!
//! Every ISA evaluates the same formulas with the same constants, so tiers differ only by rounding.
//! GELU is the exact (erf) form, `x * Phi(x)`, evaluated as `x/2 + |x|/2 * erf(|x|/sqrt 2)` with
//! `erf` from a table of polynomials over segments of `|x|` (the last segment is the constant 1,
//! from `|x| ~ 5.6` on), fitted by `kernels/tools/fit_gelu.py`. No division and no `exp`: SIMD tiers
//! fetch a segment's coefficients with one register permute per power, which makes the GEMM's fused
//! GELU epilogue several times cheaper than an erfc-and-exp form. The table is sized to the
//! register: 8 segments of degree 6 ([`gelu`]: one 8-float register per power; AVX2, NEON, scalar
//! and portable tiers) and 32 segments of degree 3 ([`gelu32`]: a two-register permute of 32 floats
//! per power; AVX-512), which takes 7 multiply-adds and 4 permutes per vector instead of 10 and 7.
//! Measured on Zen 4 (RepViT-M1.0, one thread), GELU went from about 1.0 to 0.6 ms of the 22 ms.
//! Each tier equals its table's scalar form bit for bit; the two forms differ in the last bits only.
//! Measured in f32 against f64 `erf`, the absolute error is below 3.4e-7 (8 segments) and 3.7e-7 (32)
//! everywhere (the tests hold every tier to [`GELU_ABS_TOLERANCE`]).

/// Largest absolute difference from the exact GELU that any tier may show (checked by the tests).
pub const GELU_ABS_TOLERANCE: f32 = 1e-6;

/// Largest relative difference from the exact sigmoid and SiLU that any tier may show (beside an
/// absolute `1e-35` beyond the cut-off): `exp` within 4e-7 relative, plus three roundings
/// (`1 + e`, the division, SiLU's product) of at most 6e-8 each.
pub const SIGMOID_REL_TOLERANCE: f32 = 1e-6;

/// The activation applied to each output element before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `x`.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6` (MobileNetV3).
    HardSwish,
    /// `x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))`, the exact form PyTorch's `nn.GELU()` computes.
    Gelu,
    /// `x * sigmoid(x)` (SiLU or swish; EfficientNet, PyTorch's `nn.SiLU()`).
    Silu,
    /// `1 / (1 + exp(-x))` (PyTorch's `nn.Sigmoid()`, the squeeze-excite gate of EfficientNet).
    Sigmoid,
}

impl Activation {
    /// Every activation, for tests and benchmarks.
    pub const ALL: [Activation; 7] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Relu6,
        Activation::HardSwish,
        Activation::Gelu,
        Activation::Silu,
        Activation::Sigmoid,
    ];

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::HardSwish => "hardswish",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Sigmoid => "sigmoid",
        }
    }

    /// Applies the activation to one value, as the portable scalar kernels do.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => relu(x),
            Activation::Relu6 => relu6(x),
            Activation::HardSwish => hardswish(x),
            Activation::Gelu => gelu(x),
            Activation::Silu => silu(x),
            Activation::Sigmoid => sigmoid(x),
        }
    }
}

// Constants shared by every tier's implementation.
/// Segments of the GELU table; the last one is the constant 1.
pub(crate) const GELU_SEGMENTS: usize = 8;
/// `f = min(|x| * GELU_SCALE, GELU_SEGMENTS - 1)`; segment `round(f)`, local variable `f - round(f)`.
pub(crate) const GELU_SCALE: f32 = 1.160_714_3;
/// `GELU_POLY[k][i]`: coefficient of `r^k` in segment `i` of `erf(|x| / sqrt 2)`, fitted by
/// `tools/fit_gelu.py`. Stored by power so that SIMD tiers load one row and permute it by segment.
pub(crate) const GELU_POLY: [[f32; GELU_SEGMENTS]; 7] = [
    [
        -8.242_188_6e-10,
        6.110_585e-1,
        9.151_254e-1,
        9.902_512_4e-1,
        9.994_314e-1,
        9.999_835e-1,
        9.999_998e-1,
        1.0,
    ],
    [
        6.874_084e-1,
        4.742_836e-1,
        1.557_781_7e-1,
        2.435_649e-2,
        1.812_938_8e-3,
        6.425_522_6e-5,
        1.085_035_1e-6,
        0.0,
    ],
    [
        -4.419_219_7e-6,
        -1.760_171e-1,
        -1.156_265_7e-1,
        -2.711_803_7e-2,
        -2.691_230_3e-3,
        -1.192_137_9e-4,
        -2.414_825_8e-6,
        0.0,
    ],
    [
        -8.498_496e-2,
        -1.514_412_5e-2,
        3.793_570_4e-2,
        1.712_438_6e-2,
        2.438_647e-3,
        1.389_250_1e-4,
        3.399_253_3e-6,
        0.0,
    ],
    [
        -3.056_054e-4,
        2.456_760_4e-2,
        2.327_516_9e-4,
        -6.175_339e-3,
        -1.478_361_8e-3,
        -1.144_532_9e-4,
        -3.505_010_7e-6,
        0.0,
    ],
    [
        1.038_079_9e-2,
        -1.793_657_8e-3,
        -4.220_364e-3,
        7.705e-4,
        6.103_504_6e-4,
        7.429_124_5e-5,
        3.151_423e-6,
        0.0,
    ],
    [
        -1.371_985_2e-3,
        -2.114_259_2e-3,
        9.780_256e-4,
        3.103_854_5e-4,
        -1.490_287_8e-4,
        -3.304_497_7e-5,
        -1.897_224_4e-6,
        0.0,
    ],
];
/// Segments of the AVX-512 GELU table ([`gelu32`]): two 16-float registers per power.
pub(crate) const GELU32_SEGMENTS: usize = 32;
/// `f = u * GELU32_SCALE` puts segment `i` at `f` in `[i - 1/2, i + 1/2)`; `(32 - 1.5) / 5.6`.
pub(crate) const GELU32_SCALE: f32 = 5.446_429;
/// `u` is clamped to this first (about `31 / GELU32_SCALE`), so that `fma(u, GELU32_SCALE,
/// ROUND_MAGIC)` rounds to at most 31, the last segment (from `u = 5.6` on, where `erf(u / sqrt 2)`
/// is 1 within 1e-8).
pub(crate) const GELU32_CLAMP: f32 = 5.691_803_5;
/// `1.5 * 2^23`: `t = f + ROUND_MAGIC` (`0 <= f < 2^22`) is rounded to an integer, ties to even, which
/// its low mantissa bits hold; `t - ROUND_MAGIC` is exact.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
/// `GELU32_POLY[k][i]`: half the coefficient of `r^k` in segment `i` of `erf(|x| / sqrt 2)` (the
/// halving is exact and saves the kernels a multiply), fitted by `tools/fit_gelu.py`; the last
/// segment is the constant 1/2.
pub(crate) const GELU32_POLY: [[f32; GELU32_SEGMENTS]; 4] = [
    [
        -1.353_010_7e-9,
        7.283_886_5e-2,
        1.432_698_2e-1,
        2.091_211_7e-1,
        2.686_553e-1,
        3.206_989_5e-1,
        3.646_906e-1,
        4.006_467_2e-1,
        4.290_635_3e-1,
        4.507_794_7e-1,
        4.668_260_5e-1,
        4.782_913_3e-1,
        4.862_125e-1,
        4.915_041_6e-1,
        4.949_223_4e-1,
        4.970_573_5e-1,
        4.983_467_8e-1,
        4.990_998e-1,
        4.995_249_8e-1,
        4.997_571_7e-1,
        4.998_797_5e-1,
        4.999_423e-1,
        4.999_732e-1,
        4.999_879_6e-1,
        4.999_947_5e-1,
        4.999_978e-1,
        4.999_991e-1,
        4.999_996_4e-1,
        4.999_998_5e-1,
        4.999_999_4e-1,
        4.999_999_7e-1,
        5.0e-1,
    ],
    [
        7.324_849e-2,
        7.202_405_5e-2,
        6.847_257e-2,
        6.293_832e-2,
        5.593_362_5e-2,
        4.806_070_8e-2,
        3.992_700_2e-2,
        3.207_026_8e-2,
        2.490_564_4e-2,
        1.870_045_8e-2,
        1.357_581_65e-2,
        9.528_815e-3,
        6.466_525_6e-3,
        4.242_894_7e-3,
        2.691_612_8e-3,
        1.650_904_5e-3,
        9.790_172e-4,
        5.613_292_5e-4,
        3.111_744e-4,
        1.667_818_9e-4,
        8.642_764_4e-5,
        4.330_271_6e-5,
        2.097_665_5e-5,
        9.824_622e-6,
        4.448_913e-6,
        1.947_826_8e-6,
        8.245_273e-7,
        3.374_566e-7,
        1.335_331e-7,
        5.108_788_8e-8,
        1.889_752_2e-8,
        0.0,
    ],
    [
        -6.375_596e-7,
        -1.211_491_3e-3,
        -2.303_667e-3,
        -3.176_586e-3,
        -3.764_687_6e-3,
        -4.044_347_4e-3,
        -4.032_915_5e-3,
        -3.780_377_8e-3,
        -3.356_420_2e-3,
        -2.836_338_5e-3,
        -2.288_885e-3,
        -1.768_094_7e-3,
        -1.309_672_6e-3,
        -9.314_794_4e-4,
        -6.367_753_4e-4,
        -4.187_526_4e-4,
        -2.650_783e-4,
        -1.616_109_7e-4,
        -9.493_84e-5,
        -5.375_888_6e-5,
        -2.935_172_8e-5,
        -1.545_645e-5,
        -7.851_988e-6,
        -3.848_849_7e-6,
        -1.820_707_9e-6,
        -8.313_322e-7,
        -3.664_318_3e-7,
        -1.559_367_5e-7,
        -6.407_48e-8,
        -2.542_443_6e-8,
        -9.742_676e-9,
        0.0,
    ],
    [
        -4.100_524_2e-4,
        -3.903_152e-4,
        -3.323_036_7e-4,
        -2.460_488_8e-4,
        -1.447_457_6e-4,
        -4.268_253e-5,
        4.752_187e-5,
        1.169_815_4e-4,
        1.615_097_9e-4,
        1.814_428_7e-4,
        1.805_797_1e-4,
        1.646_843_4e-4,
        1.399_825e-4,
        1.119_959_2e-4,
        8.486_81e-5,
        6.116_927_4e-5,
        4.206_027_7e-5,
        2.765_185_9e-5,
        1.741_101_2e-5,
        1.051_343_95e-5,
        6.094_589_5e-6,
        3.394_646_2e-6,
        1.818_031_3e-6,
        9.367_434e-7,
        4.645_884_5e-7,
        2.218_855e-7,
        1.020_847_05e-7,
        4.525_861e-8,
        1.934_062_7e-8,
        7.968_46e-9,
        3.165_964e-9,
        0.0,
    ],
];
// exp(x) = 2^n * e^r with n = round(x * log2 e) and r = x - n ln 2 (ln 2 split in two), e^r by Taylor
// to degree 7 (|r| <= ln2/2, truncation below 5e-9 relative).
pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
pub(crate) const EXP_MIN: f32 = -87.3;
pub(crate) const EXP_MAX: f32 = 88.3;
/// Beyond this `|x|`, `exp(-|x|)` is taken as 0 by sigmoid and SiLU (`-EXP_MIN`).
pub(crate) const SIGMOID_CUTOFF: f32 = 87.3;
/// Taylor coefficients of e^r from r^7 down to r^0.
pub(crate) const EXP_TAYLOR: [f32; 8] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

#[inline(always)]
pub(crate) fn relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.0 }
}

#[inline(always)]
pub(crate) fn relu6(x: f32) -> f32 {
    relu(x).min(6.0)
}

#[inline(always)]
pub(crate) fn hardswish(x: f32) -> f32 {
    x * relu6(x + 3.0) * (1.0 / 6.0)
}

/// `exp(x)` by the shared scheme (scalar form of the SIMD code).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let n = (x * LOG2_E).round_ties_even();
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP_TAYLOR[0];
    for &c in &EXP_TAYLOR[1..] {
        p = p.mul_add(r, c);
    }
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Sigmoid by the shared scheme (scalar form of the SIMD code): `e = exp(-|x|)` (0 beyond
/// [`SIGMOID_CUTOFF`]), then `1 / (1 + e)` or, for `x < 0`, `e / (1 + e)`. NaN gives NaN.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    let u = x.abs();
    let e = if u > SIGMOID_CUTOFF { 0.0 } else { exp(-u) };
    let d = 1.0 + e;
    // The SIMD tiers select the numerator, then divide once: the same quotient.
    (if x < 0.0 { e } else { 1.0 }) / d
}

/// SiLU by the shared scheme: `x * sigmoid(x)`.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// GELU by the shared scheme (scalar form of the SIMD code): `x/2 + |x|/2 * E(|x|)`, `E` from the
/// piecewise table. A NaN `x` gives NaN (`f32::min` maps the NaN index to the last segment).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let u = x.abs();
    let f = (u * GELU_SCALE).min((GELU_SEGMENTS - 1) as f32);
    let i = f.round_ties_even();
    let r = f - i;
    // `i` is integral in [0, GELU_SEGMENTS - 1]; the cast cannot go out of range.
    let i = i as usize;
    let mut p = GELU_POLY[6][i];
    for row in GELU_POLY[..6].iter().rev() {
        p = p.mul_add(r, row[i]);
    }
    (0.5 * u).mul_add(p, 0.5 * x)
}

/// GELU by the AVX-512 tier's scheme (the 32-segment table, [`GELU32_POLY`]): `u = |x|` clamped
/// to [`GELU32_CLAMP`], `t = fma(u, GELU32_SCALE, ROUND_MAGIC)` rounds to the segment `i`,
/// `r = fma(u, GELU32_SCALE, -i)`, the segment's cubic in `r` by Horner's rule (half of
/// `erf(|x| / sqrt 2)`), then `fma(|x|, P, x/2)`. Same formula as [`gelu`] with a finer table and
/// so different last bits (both within 3.7e-7 of the exact value). NaN gives NaN (`f32::min` maps
/// the NaN to the clamp, the last segment).
// The scalar model of the AVX-512 form: only the tests run it.
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(crate) fn gelu32(x: f32) -> f32 {
    let u = x.abs();
    let (i, r) = gelu32_segment(u);
    // `i` is integral in [0, 31] (`uc * GELU32_SCALE` is at most 31 after rounding): exact cast.
    let i = i as usize;
    let mut p = GELU32_POLY[3][i];
    for row in GELU32_POLY[..3].iter().rev() {
        p = p.mul_add(r, row[i]);
    }
    u.mul_add(p, 0.5 * x)
}

/// The segment of `u = |x|` in the 32-segment table and the local variable: `u` clamped to
/// [`GELU32_CLAMP`], `t = fma(u, GELU32_SCALE, ROUND_MAGIC)`, `i = t - ROUND_MAGIC` (an integer in
/// `0..32`, as a float) and `r = fma(u, GELU32_SCALE, -i)` in about `[-1/2, 1/2]`.
#[inline(always)]
fn gelu32_segment(u: f32) -> (f32, f32) {
    let uc = u.min(GELU32_CLAMP);
    let t = uc.mul_add(GELU32_SCALE, ROUND_MAGIC);
    let i = t - ROUND_MAGIC;
    (i, uc.mul_add(GELU32_SCALE, -i))
}

// Compile-time activation codes, shared by every SIMD tier: kernels are generic over `const ACT: u8`
// so that each activation compiles its own loop nest.

/// Compile-time code of [`Activation::Identity`].
pub(crate) const ACT_IDENTITY: u8 = 0;
/// Compile-time code of [`Activation::Relu`].
pub(crate) const ACT_RELU: u8 = 1;
/// Compile-time code of [`Activation::Relu6`].
pub(crate) const ACT_RELU6: u8 = 2;
/// Compile-time code of [`Activation::HardSwish`].
pub(crate) const ACT_HARDSWISH: u8 = 3;
/// Compile-time code of [`Activation::Gelu`].
pub(crate) const ACT_GELU: u8 = 4;
/// Compile-time code of [`Activation::Silu`].
pub(crate) const ACT_SILU: u8 = 5;
/// Compile-time code of [`Activation::Sigmoid`].
pub(crate) const ACT_SIGMOID: u8 = 6;

/// The `ACT_*` code of an activation.
#[allow(dead_code)] // the tiers' activation tests check the codes with it
pub(crate) const fn act_code(act: Activation) -> u8 {
    match act {
        Activation::Identity => ACT_IDENTITY,
        Activation::Relu => ACT_RELU,
        Activation::Relu6 => ACT_RELU6,
        Activation::HardSwish => ACT_HARDSWISH,
        Activation::Gelu => ACT_GELU,
        Activation::Silu => ACT_SILU,
        Activation::Sigmoid => ACT_SIGMOID,
    }
}

/// The activation of an `ACT_*` code (the inverse of [`act_code`]).
#[allow(dead_code)] // used by the tiers built for some targets only
pub(crate) const fn act_of_code(code: u8) -> Activation {
    match code {
        ACT_IDENTITY => Activation::Identity,
        ACT_RELU => Activation::Relu,
        ACT_RELU6 => Activation::Relu6,
        ACT_HARDSWISH => Activation::HardSwish,
        ACT_GELU => Activation::Gelu,
        ACT_SILU => Activation::Silu,
        ACT_SIGMOID => Activation::Sigmoid,
        _ => panic!("unknown activation code"),
    }
}

/// `with_act!(act, f::<..., ACT>(args))`-style dispatch: `with_act!(act, |A| expr)` evaluates `expr`
/// with `A` bound to the `ACT_*` code of the runtime activation `act` as a `const`, so `expr` can name
/// `f::<A>` and each activation compiles its own loop nest.
macro_rules! with_act {
    ($act:expr, |$a:ident| $body:expr) => {
        $crate::activation::with_act!(
            @arms $act, $a, $body,
            Identity ACT_IDENTITY, Relu ACT_RELU, Relu6 ACT_RELU6, HardSwish ACT_HARDSWISH,
            Gelu ACT_GELU, Silu ACT_SILU, Sigmoid ACT_SIGMOID
        )
    };
    // One arm per (variant, code): `expr` with the code bound as the const `$a`.
    (@arms $act:expr, $a:ident, $body:expr, $($variant:ident $code:ident),*) => {
        match $act {
            $($crate::activation::Activation::$variant => {
                const $a: u8 = $crate::activation::$code;
                $body
            })*
        }
    };
}
pub(crate) use with_act;

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_exact(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    /// Both tables' forms: within half the tolerance on [-20, 20] (steps of 1/4096, every segment
    /// boundary of both tables crossed many times), exact enough far out, NaN stays NaN.
    #[test]
    fn gelu_within_tolerance_everywhere() {
        for (name, f) in [("gelu", gelu as fn(f32) -> f32), ("gelu32", gelu32)] {
            let mut worst = 0.0f64;
            for i in -20 * 4096..=20 * 4096 {
                let x = i as f32 / 4096.0;
                let e = (f(x) as f64 - gelu_exact(x as f64)).abs();
                worst = worst.max(e);
            }
            assert!(
                worst < GELU_ABS_TOLERANCE as f64 * 0.5,
                "{name}: worst {worst}"
            );
            for x in [1e4f32, -1e4, 1e30, -1e30, f32::MAX, f32::MIN, 0.0, -0.0] {
                let e = gelu_exact(x as f64);
                assert!(
                    (f(x) as f64 - e).abs() <= (e.abs() * 1e-7).max(1e-30),
                    "{name}({x})"
                );
            }
            assert!(f(f32::NAN).is_nan(), "{name}");
            assert_eq!(f(f32::INFINITY), f32::INFINITY, "{name}");
        }
        // The forms differ in the last bits (so each tier is checked against its own form), by
        // no more than their two errors.
        let (mut differ, mut widest) = (0, 0.0f32);
        for i in -6 * 4096..=6 * 4096 {
            let x = i as f32 / 4096.0;
            let d = (gelu(x) - gelu32(x)).abs();
            differ += usize::from(d > 0.0);
            widest = widest.max(d);
        }
        assert!(
            differ > 1000 && widest <= GELU_ABS_TOLERANCE,
            "{differ} {widest}"
        );
    }

    /// The 32-segment form's index: the clamp lands in the last segment (the constant), every
    /// segment is reached, and `r` stays within half a segment.
    #[test]
    fn gelu32_segments() {
        let index = |u: f32| gelu32_segment(u).0;
        assert_eq!(index(GELU32_CLAMP), (GELU32_SEGMENTS - 1) as f32);
        assert_eq!(index(f32::MAX), (GELU32_SEGMENTS - 1) as f32);
        assert!(
            GELU32_POLY[1..]
                .iter()
                .all(|row| row[GELU32_SEGMENTS - 1] == 0.0)
        );
        assert_eq!(GELU32_POLY[0][GELU32_SEGMENTS - 1], 0.5);
        let mut seen = [false; GELU32_SEGMENTS];
        for i in 0..=6 * 4096 {
            let u = i as f32 / 4096.0;
            let (j, r) = gelu32_segment(u);
            assert!(
                j.fract() == 0.0 && (0.0..GELU32_SEGMENTS as f32).contains(&j),
                "{u}"
            );
            assert!(r.abs() <= 0.5 + 1e-6, "{u}: r = {r}");
            seen[j as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn exp_is_accurate() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((exp(x) as f64) / (x as f64).exp() - 1.0).abs();
            assert!(rel < 4e-7, "exp({x}) rel err {rel}");
            x += 0.01;
        }
    }

    /// Sigmoid and SiLU within [`SIGMOID_REL_TOLERANCE`] of f64 over [-100, 100] (steps of 1/256),
    /// at the cut-off and beyond; NaN stays NaN, SiLU(-inf) is NaN as in PyTorch (`-inf * 0`).
    #[test]
    fn sigmoid_and_silu_within_tolerance() {
        let exact_sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut worst = 0.0f64;
        let mut check = |x: f32| {
            let (s, e) = (sigmoid(x) as f64, exact_sig(x as f64));
            let (y, f) = (silu(x) as f64, x as f64 * exact_sig(x as f64));
            for (got, want) in [(s, e), (y, f)] {
                let err = (got - want).abs();
                assert!(
                    err <= SIGMOID_REL_TOLERANCE as f64 * want.abs() + 1e-35,
                    "x = {x}: got {got}, exact {want}"
                );
                if want.abs() > 1e-30 {
                    worst = worst.max(err / want.abs());
                }
            }
        };
        let mut x = -100.0f32;
        while x <= 100.0 {
            check(x);
            x += 1.0 / 256.0;
        }
        for x in [
            87.29, 87.3, 87.31, -87.29, -87.3, -87.31, 1e4, -1e4, 1e30, -1e30, 0.0, -0.0,
        ] {
            check(x);
        }
        assert!(
            worst <= SIGMOID_REL_TOLERANCE as f64,
            "worst relative error {worst}"
        );
        assert!(sigmoid(f32::NAN).is_nan() && silu(f32::NAN).is_nan());
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(silu(f32::INFINITY), f32::INFINITY);
        assert!(silu(f32::NEG_INFINITY).is_nan());
    }

    #[test]
    fn piecewise_activations() {
        assert_eq!(Activation::Relu.apply(-1.0), 0.0);
        assert_eq!(Activation::Relu6.apply(7.5), 6.0);
        assert_eq!(Activation::HardSwish.apply(-3.5), 0.0);
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert_eq!(Activation::HardSwish.apply(1.0), 1.0 * 4.0 / 6.0);
        assert_eq!(Activation::Identity.apply(-2.5), -2.5);
    }
}

/// The activation test every SIMD tier runs: `apply(act, xs)` evaluates one tier's vector
/// activation on exactly `lanes` floats.
#[cfg(test)]
pub(crate) mod tier_test {
    use crate::activation::act_code;
    use crate::activation::{Activation, GELU_ABS_TOLERANCE, GELU_SCALE, GELU32_SCALE};

    /// The scalar form a tier's GELU must equal: [`super::gelu`] (8 segments) or
    /// [`super::gelu32`] (32 segments, AVX-512).
    pub(crate) type ScalarGelu = fn(f32) -> f32;

    /// Every activation equals the scalar form bit for bit (NaN stays NaN) on `xs` (GELU: `gelu`),
    /// except GELU when `!fused` (a tier whose multiply-adds round twice): there within
    /// [`GELU_ABS_TOLERANCE`] plus two ulps of the scalar value. Returns the worst GELU error
    /// against the f64 reference.
    fn check_all(
        lanes: usize,
        gelu: ScalarGelu,
        apply: &impl Fn(Activation, &[f32]) -> Vec<f32>,
        xs: &[f32],
        fused: bool,
    ) -> f64 {
        let mut worst_gelu = 0.0f64;
        for chunk in xs.chunks(lanes) {
            let mut a = vec![0.0f32; lanes];
            a[..chunk.len()].copy_from_slice(chunk);
            for act in Activation::ALL {
                assert_eq!(act_code(act) as usize, act as usize);
                let y = apply(act, &a);
                for (&x, &y) in a.iter().zip(&y) {
                    let s = if act == Activation::Gelu {
                        gelu(x)
                    } else {
                        act.apply(x)
                    };
                    let same = s.to_bits() == y.to_bits() || (s.is_nan() && y.is_nan());
                    let close = act == Activation::Gelu
                        && !fused
                        && (y - s).abs() <= GELU_ABS_TOLERANCE + 2.0 * f32::EPSILON * s.abs();
                    assert!(same || close, "{act:?}({x}) = {y}, scalar {s}");
                    if act == Activation::Gelu {
                        let e = crate::reference::activation(act, x as f64);
                        worst_gelu = worst_gelu.max((y as f64 - e).abs());
                    }
                }
            }
        }
        worst_gelu
    }

    /// A sweep of [-20, 20] in steps of 1/4096 and special values, bit for bit against the scalar
    /// forms (GELU: `gelu`, the form of the tier's table); GELU within [`GELU_ABS_TOLERANCE`] of
    /// exact; an all-NaN vector gives NaN.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // NEON has a sweep of its own
    pub(crate) fn check_tier(
        lanes: usize,
        gelu: ScalarGelu,
        apply: impl Fn(Activation, &[f32]) -> Vec<f32>,
    ) {
        check_tier_with(lanes, gelu, apply, true)
    }

    /// [`check_tier`] for a tier whose multiply-adds may not fuse (`fused == false`): GELU is then
    /// held to the scalar value within rounding (see `check_all`) instead of bit for bit, and its
    /// error against the exact value is not checked (one more rounding of a value up to 20).
    pub(crate) fn check_tier_with(
        lanes: usize,
        gelu: ScalarGelu,
        apply: impl Fn(Activation, &[f32]) -> Vec<f32>,
        fused: bool,
    ) {
        let xs: Vec<f32> = (-20 * 4096..=20 * 4096)
            .map(|i| i as f32 / 4096.0)
            .collect();
        let worst = check_all(lanes, gelu, &apply, &xs, fused);
        assert!(
            !fused || worst <= GELU_ABS_TOLERANCE as f64,
            "gelu worst abs err {worst}"
        );
        let special = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            1e-30,
            -1e-30,
            -100.0,
            100.0,
            6.5 / GELU_SCALE,
            -6.5 / GELU_SCALE,
            30.5 / GELU32_SCALE,
            -30.5 / GELU32_SCALE,
            31.5 / GELU32_SCALE,
            super::GELU32_CLAMP,
        ];
        check_all(lanes, gelu, &apply, &special, fused);
        let y = apply(Activation::Gelu, &vec![f32::NAN; lanes]);
        assert!(y.iter().all(|v| v.is_nan()));
    }
}
