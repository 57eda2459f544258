//! The activation operations on `__m512` ([`ActVec`]; the activations themselves are written once
//! in [`crate::x86_64::act`]) and the AVX-512 GELU, which evaluates the 32-segment table of
//! [`crate::activation::gelu32`] (the table sized to two registers). AVX-512F only (no DQ: float
//! logic goes through the integer domain).
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "avx512f,avx2,fma")]` function.

use core::arch::x86_64::*;

use crate::activation::{GELU32_CLAMP, GELU32_POLY, GELU32_SCALE, ROUND_MAGIC};
use crate::dwconv_kxk::register_ops;
use crate::x86_64::act::ActVec;

/// Row `k` of the 32-segment GELU table, lane `j` taking segment `idx[j] mod 32`.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn gelu32_row(idx: __m512i, k: usize) -> __m512 {
    let row = GELU32_POLY[k].as_ptr();
    // SAFETY: AVX-512F is available (this function's contract); `GELU32_POLY[k]` holds 32 floats,
    // which the two unaligned 16-float loads read exactly; VPERMT2PS reads the low 5 bits of each
    // index lane.
    unsafe { _mm512_permutex2var_ps(_mm512_loadu_ps(row), idx, _mm512_loadu_ps(row.add(16))) }
}

// SAFETY: every method executes AVX-512F instructions on registers only (the GELU table rows are
// read within their bounds), and their contracts require that feature.
unsafe impl ActVec for __m512 {
    register_ops! {
        fn max(a, b) = _mm512_max_ps;
        fn min(a, b) = _mm512_min_ps;
        fn mul(a, b) = _mm512_mul_ps;
        fn div(a, b) = _mm512_div_ps;
        fn abs(x) = _mm512_abs_ps;
    }
    #[inline(always)]
    unsafe fn neg(x: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract). Integer XOR: AVX-512F has no float XOR.
        unsafe {
            _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(x),
                _mm512_set1_epi32(i32::MIN),
            ))
        }
    }
    #[inline(always)]
    unsafe fn round(x: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x) }
    }
    #[inline(always)]
    unsafe fn exp2i(n: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe {
            let bits = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(bits))
        }
    }
    #[inline(always)]
    unsafe fn zero_where_gt(v: __m512, u: __m512, limit: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_maskz_mov_ps(!_mm512_cmp_ps_mask::<_CMP_GT_OQ>(u, limit), v) }
    }
    #[inline(always)]
    unsafe fn select_negative(x: __m512, neg: __m512, other: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe {
            let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
            _mm512_mask_blend_ps(m, other, neg)
        }
    }
    /// By the 32-segment scheme of [`crate::activation::gelu32`] (same operations, same order, so
    /// the same bits), not the 8-segment table of the other tiers.
    ///
    /// Per vector: 7 multiply-adds (2 place `x` in its segment, 3 of Horner's rule, `x/2`, the
    /// final one), a subtraction and 4 two-register permutes. The 8-segment degree-6 form the other
    /// tiers use took 10 multiply-adds, 7 permutes and a conversion here; the multiply-adds are
    /// what the GEMM this epilogue follows is short of. RepViT-M1.0 at one thread on Zen 4, four
    /// interleaved rounds of 100 passes: median 22.1-22.4 -> 21.6-21.7 ms, minimum 21.8-21.9 ->
    /// 21.4-21.5 ms; a build with GELU replaced by the identity (the floor) ran 20.8-21.0, so GELU
    /// went from about 1.0 to 0.6 ms.
    #[inline(always)]
    unsafe fn gelu(x: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (this function's contract, which `gelu32_row` shares).
        unsafe {
            let u = _mm512_abs_ps(x);
            // VMINPS returns the second operand when one is NaN: a NaN `u` takes the clamp, the
            // last segment, like the scalar `f32::min`.
            let uc = _mm512_min_ps(u, _mm512_set1_ps(GELU32_CLAMP));
            let scale = _mm512_set1_ps(GELU32_SCALE);
            let magic = _mm512_set1_ps(ROUND_MAGIC);
            // Rounded to an integer in [0, 31] held in the low mantissa bits: the permute index.
            let t = _mm512_fmadd_ps(uc, scale, magic);
            let i = _mm512_sub_ps(t, magic);
            let r = _mm512_fmsub_ps(uc, scale, i);
            let idx = _mm512_castps_si512(t);
            let mut p = gelu32_row(idx, 3);
            for k in (0..3).rev() {
                p = _mm512_fmadd_ps(p, r, gelu32_row(idx, k));
            }
            _mm512_fmadd_ps(u, p, _mm512_mul_ps(_mm512_set1_ps(0.5), x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    #[target_feature(enable = "avx512f")]
    fn apply_dyn(act: Activation, xs: &[f32]) -> Vec<f32> {
        // SAFETY: AVX-512F is enabled on this function.
        unsafe { crate::x86_64::act::apply_lanes::<__m512>(act, xs) }
    }

    #[test]
    fn activations_match_scalar_bit_for_bit_and_gelu_is_exact() {
        crate::x86_64::test_tier(crate::Isa::Avx512, || {
            // SAFETY: `test_tier` runs this only where the AVX-512 tier is available, which
            // includes AVX-512F.
            crate::activation::tier_test::check_tier(
                16,
                crate::activation::gelu32,
                |act, xs| unsafe { apply_dyn(act, xs) },
            )
        });
    }
}
