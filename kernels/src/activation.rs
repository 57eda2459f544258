//! Element-wise activations that kernels fuse into their stores.
//!
//! Every ISA evaluates the same formulas with the same constants, so tiers differ only by rounding.
//! GELU is the exact (erf) form, `x * Phi(x)`, evaluated as `x/2 + |x|/2 * erf(|x|/sqrt 2)` with
//! `erf` from a table of 8 degree-6 polynomials over segments of `|x|` (the last segment is the
//! constant 1, from `|x| ~ 5.6` on), fitted by `kernels/tools/fit_gelu.py`. No division and no
//! `exp`: SIMD tiers fetch a segment's coefficients with one register permute per power, which
//! makes the GEMM's fused GELU epilogue several times cheaper than an erfc-and-exp form. Measured in
//! f32 against f64 `erf` the absolute error is below 3.4e-7 everywhere (the tests hold every tier to
//! [`GELU_ABS_TOLERANCE`]).

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
    if x < 0.0 { e / d } else { 1.0 / d }
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
        match $act {
            $crate::activation::Activation::Identity => {
                const $a: u8 = $crate::activation::ACT_IDENTITY;
                $body
            }
            $crate::activation::Activation::Relu => {
                const $a: u8 = $crate::activation::ACT_RELU;
                $body
            }
            $crate::activation::Activation::Relu6 => {
                const $a: u8 = $crate::activation::ACT_RELU6;
                $body
            }
            $crate::activation::Activation::HardSwish => {
                const $a: u8 = $crate::activation::ACT_HARDSWISH;
                $body
            }
            $crate::activation::Activation::Gelu => {
                const $a: u8 = $crate::activation::ACT_GELU;
                $body
            }
            $crate::activation::Activation::Silu => {
                const $a: u8 = $crate::activation::ACT_SILU;
                $body
            }
            $crate::activation::Activation::Sigmoid => {
                const $a: u8 = $crate::activation::ACT_SIGMOID;
                $body
            }
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

    #[test]
    fn gelu_within_tolerance_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -20.0f32;
        while x <= 20.0 {
            let e = (gelu(x) as f64 - gelu_exact(x as f64)).abs();
            worst = worst.max(e);
            x += 1.0 / 1024.0;
        }
        assert!(worst < GELU_ABS_TOLERANCE as f64 * 0.5, "worst {worst}");
        for x in [1e4f32, -1e4, 1e30, -1e30, f32::MAX, f32::MIN, 0.0, -0.0] {
            let e = gelu_exact(x as f64);
            assert!(
                (gelu(x) as f64 - e).abs() <= (e.abs() * 1e-7).max(1e-30),
                "{x}"
            );
        }
        assert!(gelu(f32::NAN).is_nan());
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
    use crate::activation::{Activation, GELU_ABS_TOLERANCE, GELU_SCALE};

    /// Every activation equals the scalar form bit for bit (NaN stays NaN) on `xs`, except GELU
    /// when `!fused` (a tier whose multiply-adds round twice): there within [`GELU_ABS_TOLERANCE`]
    /// plus two ulps of the scalar value. Returns the worst GELU error against the f64 reference.
    fn check_all(
        lanes: usize,
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
                    let s = act.apply(x);
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
    /// forms; GELU within [`GELU_ABS_TOLERANCE`] of exact; an all-NaN vector gives NaN.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // NEON has a sweep of its own
    pub(crate) fn check_tier(lanes: usize, apply: impl Fn(Activation, &[f32]) -> Vec<f32>) {
        check_tier_with(lanes, apply, true)
    }

    /// [`check_tier`] for a tier whose multiply-adds may not fuse (`fused == false`): GELU is then
    /// held to the scalar value within rounding (see `check_all`) instead of bit for bit, and its
    /// error against the exact value is not checked (one more rounding of a value up to 20).
    pub(crate) fn check_tier_with(
        lanes: usize,
        apply: impl Fn(Activation, &[f32]) -> Vec<f32>,
        fused: bool,
    ) {
        let xs: Vec<f32> = (-20 * 4096..=20 * 4096)
            .map(|i| i as f32 / 4096.0)
            .collect();
        let worst = check_all(lanes, &apply, &xs, fused);
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
        ];
        check_all(lanes, &apply, &special, fused);
        let y = apply(Activation::Gelu, &vec![f32::NAN; lanes]);
        assert!(y.iter().all(|v| v.is_nan()));
    }
}
