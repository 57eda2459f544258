//! Activations on `__m256`, by exactly the scheme (formulas, constants, operation order) of the
//! scalar functions in [`crate::activation`]: results equal the scalar ones bit for bit (NaN aside,
//! which stays NaN), as the tests below check.
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "avx2,fma")]` function.

use core::arch::x86_64::*;

use crate::activation::{
    EXP_MAX, EXP_MIN, EXP_TAYLOR, GELU_POLY, GELU_SCALE, GELU_SEGMENTS, LN2_HI, LN2_LO, LOG2_E,
    SIGMOID_CUTOFF,
};
use crate::x86_64::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU,
};

/// `x`.
///
/// # Safety
/// None (kept `unsafe` for uniformity with the other activations).
#[inline(always)]
pub(crate) unsafe fn identity(x: __m256) -> __m256 {
    x
}

/// `max(x, 0)`; NaN gives 0, as the scalar `relu`.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
pub(crate) unsafe fn relu(x: __m256) -> __m256 {
    // SAFETY: AVX is available (this function's contract).
    unsafe { _mm256_max_ps(x, _mm256_setzero_ps()) }
}

/// `min(max(x, 0), 6)`.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
pub(crate) unsafe fn relu6(x: __m256) -> __m256 {
    // SAFETY: AVX is available (this function's contract, which `relu` shares).
    unsafe { _mm256_min_ps(relu(x), _mm256_set1_ps(6.0)) }
}

/// `x * relu6(x + 3) * (1/6)`, evaluated left to right as the scalar `hardswish`.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
pub(crate) unsafe fn hardswish(x: __m256) -> __m256 {
    // SAFETY: AVX is available (this function's contract, which `relu6` shares).
    unsafe {
        let r = relu6(_mm256_add_ps(x, _mm256_set1_ps(3.0)));
        _mm256_mul_ps(_mm256_mul_ps(x, r), _mm256_set1_ps(1.0 / 6.0))
    }
}

/// Row `k` of the GELU table, lane `j` taking segment `idx[j] % 8`.
///
/// # Safety
/// AVX2 must be available.
#[inline(always)]
unsafe fn gelu_row(idx: __m256i, k: usize) -> __m256 {
    // SAFETY: AVX2 is available (this function's contract); `GELU_POLY[k]` holds 8 floats, which
    // the unaligned load reads exactly.
    unsafe { _mm256_permutevar8x32_ps(_mm256_loadu_ps(GELU_POLY[k].as_ptr()), idx) }
}

/// Exact-form GELU by the shared table scheme of [`crate::activation::gelu`]; NaN stays NaN.
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline(always)]
pub(crate) unsafe fn gelu(x: __m256) -> __m256 {
    // SAFETY: AVX2 and FMA are available (this function's contract, which `gelu_row` shares).
    unsafe {
        let u = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        // A NaN product gives the second operand, the last segment, like the scalar `f32::min`.
        let f = _mm256_min_ps(
            _mm256_mul_ps(u, _mm256_set1_ps(GELU_SCALE)),
            _mm256_set1_ps((GELU_SEGMENTS - 1) as f32),
        );
        let i = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
        let r = _mm256_sub_ps(f, i);
        // Integral in [0, 7]: the conversion is exact.
        let idx = _mm256_cvtps_epi32(i);
        let mut p = gelu_row(idx, 6);
        for k in (0..6).rev() {
            p = _mm256_fmadd_ps(p, r, gelu_row(idx, k));
        }
        let half = _mm256_set1_ps(0.5);
        _mm256_fmadd_ps(_mm256_mul_ps(half, u), p, _mm256_mul_ps(half, x))
    }
}

/// `exp(x)` by the shared scheme of [`crate::activation::exp`] (same operations, same order); NaN
/// stays NaN.
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline(always)]
pub(crate) unsafe fn exp(x: __m256) -> __m256 {
    // SAFETY: AVX2 and FMA are available (this function's contract); register-only intrinsics.
    unsafe {
        // The constant first: MINPS/MAXPS return the second operand when one is NaN.
        let x = _mm256_min_ps(
            _mm256_set1_ps(EXP_MAX),
            _mm256_max_ps(_mm256_set1_ps(EXP_MIN), x),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2_E)),
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        let mut p = _mm256_set1_ps(EXP_TAYLOR[0]);
        for &c in &EXP_TAYLOR[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        // n is integral in [-126, 127] (NaN aside, where p is NaN already): 2^n exactly.
        let bits = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
    }
}

/// Sigmoid by the shared scheme of [`crate::activation::sigmoid`]; NaN stays NaN.
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline(always)]
pub(crate) unsafe fn sigmoid(x: __m256) -> __m256 {
    // SAFETY: AVX2 and FMA are available (this function's contract, which `exp` shares).
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let u = _mm256_andnot_ps(sign, x);
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(u, _mm256_set1_ps(SIGMOID_CUTOFF));
        let e = _mm256_andnot_ps(big, exp(_mm256_xor_ps(u, sign)));
        let one = _mm256_set1_ps(1.0);
        let d = _mm256_add_ps(one, e);
        let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
        _mm256_blendv_ps(_mm256_div_ps(one, d), _mm256_div_ps(e, d), neg)
    }
}

/// SiLU, `x * sigmoid(x)`, as [`crate::activation::silu`].
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline(always)]
pub(crate) unsafe fn silu(x: __m256) -> __m256 {
    // SAFETY: AVX2 and FMA are available (this function's contract, which `sigmoid` shares).
    unsafe { _mm256_mul_ps(x, sigmoid(x)) }
}

/// The activation of code `ACT` (an `ACT_*` constant of [`crate::x86_64`]); resolved at compile time.
///
/// # Safety
/// AVX2 and FMA must be available.
#[inline(always)]
pub(crate) unsafe fn apply<const ACT: u8>(x: __m256) -> __m256 {
    // SAFETY: AVX2 and FMA are available (this function's contract covers every callee's).
    unsafe {
        match ACT {
            ACT_IDENTITY => identity(x),
            ACT_RELU => relu(x),
            ACT_RELU6 => relu6(x),
            ACT_HARDSWISH => hardswish(x),
            ACT_GELU => gelu(x),
            ACT_SILU => silu(x),
            ACT_SIGMOID => sigmoid(x),
            _ => unreachable!("unknown activation code {ACT}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    /// `xs` holds exactly 8 floats.
    #[target_feature(enable = "avx2,fma")]
    fn apply_dyn(act: Activation, xs: &[f32]) -> Vec<f32> {
        assert_eq!(xs.len(), 8);
        let mut out = vec![0.0f32; 8];
        // SAFETY: `xs` and `out` hold 8 floats each (asserted above); AVX2+FMA is enabled on this
        // function.
        unsafe {
            let v = _mm256_loadu_ps(xs.as_ptr());
            let y = crate::x86_64::with_act!(act, |A| apply::<A>(v));
            _mm256_storeu_ps(out.as_mut_ptr(), y);
        }
        out
    }

    #[test]
    fn activations_match_scalar_bit_for_bit_and_gelu_is_exact() {
        crate::x86_64::test_tier(crate::Isa::Avx2, || {
            // SAFETY: `test_tier` runs this only where the AVX2 tier (AVX2 + FMA) is available.
            crate::activation::tier_test::check_tier(8, crate::activation::gelu, |act, xs| unsafe {
                apply_dyn(act, xs)
            })
        });
    }
}
