//! The activation operations on `__m256` ([`ActVec`]; the activations themselves are written once
//! in [`crate::x86_64::act`]) and the AVX2 GELU, which evaluates the 8-segment table of
//! [`crate::activation::gelu`] with one in-register permute per table row.
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "avx2,fma")]` function.

use core::arch::x86_64::*;

use crate::activation::{GELU_POLY, GELU_SCALE, GELU_SEGMENTS};
use crate::dwconv_kxk::register_ops;
use crate::x86_64::act::ActVec;

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

// SAFETY: every method executes AVX/AVX2/FMA instructions on registers only (the GELU table rows
// are read within their bounds), and their contracts require those features.
unsafe impl ActVec for __m256 {
    register_ops! {
        fn max(a, b) = _mm256_max_ps;
        fn min(a, b) = _mm256_min_ps;
        fn mul(a, b) = _mm256_mul_ps;
        fn div(a, b) = _mm256_div_ps;
    }
    #[inline(always)]
    unsafe fn abs(x: __m256) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), x) }
    }
    #[inline(always)]
    unsafe fn neg(x: __m256) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_xor_ps(x, _mm256_set1_ps(-0.0)) }
    }
    #[inline(always)]
    unsafe fn round(x: __m256) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x) }
    }
    #[inline(always)]
    unsafe fn exp2i(n: __m256) -> __m256 {
        // SAFETY: AVX2 is available (contract).
        unsafe {
            let bits = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits))
        }
    }
    #[inline(always)]
    unsafe fn zero_where_gt(v: __m256, u: __m256, limit: __m256) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(u, limit), v) }
    }
    #[inline(always)]
    unsafe fn select_negative(x: __m256, neg: __m256, other: __m256) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe {
            let m = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
            _mm256_blendv_ps(other, neg, m)
        }
    }
    /// By the shared table scheme of [`crate::activation::gelu`] (same operations, same order).
    #[inline(always)]
    unsafe fn gelu(x: __m256) -> __m256 {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    #[target_feature(enable = "avx2,fma")]
    fn apply_dyn(act: Activation, xs: &[f32]) -> Vec<f32> {
        // SAFETY: AVX2+FMA is enabled on this function.
        unsafe { crate::x86_64::act::apply_lanes::<__m256>(act, xs) }
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
