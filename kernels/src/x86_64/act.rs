//! The activations of the x86-64 tiers, written once over [`ActVec`] (the lane operations they need
//! beyond [`SimdF32`]) by exactly the scheme (formulas, constants, operation order) of the scalar
//! functions in [`crate::activation`]: results equal the scalar ones bit for bit (NaN aside, which
//! stays NaN), as each tier's tests check. The one activation whose scheme differs per tier is
//! GELU ([`ActVec::gelu`]): AVX2 evaluates the 8-segment table of [`crate::activation::gelu`],
//! AVX-512 the 32-segment one of [`crate::activation::gelu32`] (two `zmm` per table row).
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a `#[target_feature]`
//! function of the implementing tier.

use crate::activation::{EXP_MAX, EXP_MIN, EXP_TAYLOR, LN2_HI, LN2_LO, LOG2_E, SIGMOID_CUTOFF};
use crate::x86_64::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU, SimdF32,
};

/// The lane operations the activations need besides [`SimdF32`]'s, and each tier's GELU.
///
/// # Safety
/// As [`SimdF32`]: implementors must only be used inside functions compiled with (and CPUs
/// supporting) their target features; every method requires them (its `# Safety` section).
pub(crate) unsafe trait ActVec: SimdF32 {
    /// `a <= b ? b : a` per lane as `MAXPS`: when either is NaN, `b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn max(a: Self, b: Self) -> Self;
    /// `a < b ? a : b` per lane as `MINPS`: when either is NaN, `b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn min(a: Self, b: Self) -> Self;
    /// `a * b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// `a / b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn div(a: Self, b: Self) -> Self;
    /// `|x|` (the sign bit cleared).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn abs(x: Self) -> Self;
    /// `-x` (the sign bit flipped).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn neg(x: Self) -> Self;
    /// `x` rounded to the nearest integer, ties to even, without raising exceptions.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn round(x: Self) -> Self;
    /// `2^n` for `n` integral in `[-126, 127]`, exactly (built in the exponent field).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn exp2i(n: Self) -> Self;
    /// `v` in the lanes where `u > limit` is false (ordered, quiet), 0 where it is true.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn zero_where_gt(v: Self, u: Self, limit: Self) -> Self;
    /// `neg` in the lanes where `x < 0` (ordered, quiet), `other` elsewhere.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn select_negative(x: Self, neg: Self, other: Self) -> Self;
    /// Exact-form GELU by the tier's table scheme (see the module documentation); NaN stays NaN.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn gelu(x: Self) -> Self;
}

/// `max(x, 0)`; NaN gives 0, as the scalar `relu`.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn relu<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract).
    unsafe { V::max(x, V::zero()) }
}

/// `min(max(x, 0), 6)`.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn relu6<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract, which `relu` shares).
    unsafe { V::min(relu(x), V::splat(6.0)) }
}

/// `x * relu6(x + 3) * (1/6)`, evaluated left to right as the scalar `hardswish`.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn hardswish<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract, which `relu6` shares).
    unsafe {
        let r = relu6(V::add(x, V::splat(3.0)));
        V::mul(V::mul(x, r), V::splat(1.0 / 6.0))
    }
}

/// `exp(x)` by the shared scheme of [`crate::activation::exp`] (same operations, same order); NaN
/// stays NaN.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn exp<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract); register-only operations.
    unsafe {
        // The constant first: MINPS/MAXPS return the second operand when one is NaN.
        let x = V::min(V::splat(EXP_MAX), V::max(V::splat(EXP_MIN), x));
        let n = V::round(V::mul(x, V::splat(LOG2_E)));
        let r = V::fma(n, V::splat(-LN2_HI), x);
        let r = V::fma(n, V::splat(-LN2_LO), r);
        let mut p = V::splat(EXP_TAYLOR[0]);
        for &c in &EXP_TAYLOR[1..] {
            p = V::fma(p, r, V::splat(c));
        }
        // n is integral in [-126, 127] (NaN aside, where p is NaN already): 2^n exactly.
        V::mul(p, V::exp2i(n))
    }
}

/// Sigmoid by the shared scheme of [`crate::activation::sigmoid`]; NaN stays NaN.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn sigmoid<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract, which `exp` shares).
    unsafe {
        let u = V::abs(x);
        let e = V::zero_where_gt(exp(V::neg(u)), u, V::splat(SIGMOID_CUTOFF));
        let one = V::splat(1.0);
        let d = V::add(one, e);
        // One division of the selected numerator: the same bits as dividing both and selecting
        // (each lane is one correctly rounded quotient either way), at half the divider time,
        // which bounds SiLU-epilogue GEMMs (EfficientNet's 1x1 layers) on Zen 3.
        V::div(V::select_negative(x, e, one), d)
    }
}

/// SiLU, `x * sigmoid(x)`, as [`crate::activation::silu`].
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn silu<V: ActVec>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract, which `sigmoid` shares).
    unsafe { V::mul(x, sigmoid(x)) }
}

/// The activation of code `ACT` (an `ACT_*` constant of [`crate::activation`]); resolved at compile
/// time.
///
/// # Safety
/// `V`'s features must be available.
#[inline(always)]
pub(crate) unsafe fn apply<V: ActVec, const ACT: u8>(x: V) -> V {
    // SAFETY: `V`'s features are available (this function's contract covers every callee's).
    unsafe {
        match ACT {
            ACT_IDENTITY => x,
            ACT_RELU => relu(x),
            ACT_RELU6 => relu6(x),
            ACT_HARDSWISH => hardswish(x),
            ACT_GELU => V::gelu(x),
            ACT_SILU => silu(x),
            ACT_SIGMOID => sigmoid(x),
            _ => unreachable!("unknown activation code {ACT}"),
        }
    }
}

/// `act` applied to the `V::LANES` floats of `xs` (a tier's activation tests).
///
/// # Safety
/// `V`'s features must be available.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn apply_lanes<V: ActVec>(
    act: crate::activation::Activation,
    xs: &[f32],
) -> Vec<f32> {
    assert_eq!(xs.len(), V::LANES);
    let mut out = vec![0.0f32; V::LANES];
    // SAFETY: `xs` and `out` hold LANES floats each (asserted above); `V`'s features are available
    // (this function's contract).
    unsafe {
        let v = V::load(xs.as_ptr());
        let y = crate::x86_64::with_act!(act, |A| apply::<V, A>(v));
        V::store(out.as_mut_ptr(), y);
    }
    out
}
