//! Element-wise activations that kernels fuse into their stores.
//!
//! Every ISA evaluates the same formulas with the same constants, so tiers differ only by rounding.
//! GELU is the exact (erf) form, `x * Phi(x)`, evaluated as `Phi(x) = 1 - erfc(|x|/sqrt 2)/2` for
//! `x >= 0` (and `erfc(|x|/sqrt 2)/2` for `x < 0`) with `erfc(z) = exp(-z^2) * t * P(t)`,
//! `t = 1/(1 + 0.4 z)`; the polynomial was fitted by `kernels/tools/fit_erfc.py`. Measured in f32
//! against f64 `erf` the absolute error is below 4e-7 for `|x| < 16` and within the result's own
//! rounding beyond (the tests hold every tier to [`GELU_ABS_TOLERANCE`]).

/// Largest absolute difference from the exact GELU that any tier may show (checked by the tests).
pub const GELU_ABS_TOLERANCE: f32 = 1e-6;

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
}

impl Activation {
    /// Every activation, for tests and benchmarks.
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Relu6,
        Activation::HardSwish,
        Activation::Gelu,
    ];

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::HardSwish => "hardswish",
            Activation::Gelu => "gelu",
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
        }
    }
}

// Constants shared by every tier's implementation.
pub(crate) const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `t = 1 / (1 + ERFC_P * z)`.
pub(crate) const ERFC_P: f32 = 0.4;
/// Above this `z = |x|/sqrt 2`, `erfc(z)/2 < 1e-10` and is taken as 0.
pub(crate) const ERFC_ZMAX: f32 = 4.6;
/// `erfc(z) * exp(z^2) ~= sum_k ERFC_COEFFS[k] * t^(k+1)`, fitted by `tools/fit_erfc.py`.
pub(crate) const ERFC_COEFFS: [f32; 8] = [
    2.248_273_3e-1,
    2.377_569e-1,
    1.338_519_6e-1,
    4.225_139e-1,
    -3.928_593_7e-1,
    6.995_831e-1,
    -4.011_783e-1,
    7.550_438_5e-2,
];
// exp(x) = 2^n * e^r with n = round(x * log2 e) and r = x - n ln 2 (ln 2 split in two), e^r by Taylor
// to degree 7 (|r| <= ln2/2, truncation below 5e-9 relative).
pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
pub(crate) const EXP_MIN: f32 = -87.3;
pub(crate) const EXP_MAX: f32 = 88.3;
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

/// GELU by the shared scheme (scalar form of the SIMD code).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let z = x.abs() * FRAC_1_SQRT_2;
    let zc = z.min(ERFC_ZMAX);
    let t = 1.0 / ERFC_P.mul_add(zc, 1.0);
    let mut p = ERFC_COEFFS[7];
    for &c in ERFC_COEFFS[..7].iter().rev() {
        p = p.mul_add(t, c);
    }
    p *= t;
    let c = if z > ERFC_ZMAX {
        0.0
    } else {
        0.5 * p * exp(-(zc * zc))
    };
    let phi = if x >= 0.0 { 1.0 - c } else { c };
    x * phi
}

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
