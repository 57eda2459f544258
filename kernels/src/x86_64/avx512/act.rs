//! Activations on `__m512`, by exactly the scheme (formulas, constants, operation order) of the
//! scalar functions in [`crate::activation`] (GELU: [`crate::activation::gelu32`], the table sized
//! to two registers): results equal the scalar ones bit for bit (NaN aside, which stays NaN), as
//! the tests below check. AVX-512F only (no DQ: float logic goes through the
//! integer domain).
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "avx512f,avx2,fma")]` function.

use core::arch::x86_64::*;

use crate::activation::{
    EXP_MAX, EXP_MIN, EXP_TAYLOR, GELU32_CLAMP, GELU32_POLY, GELU32_SCALE, LN2_HI, LN2_LO, LOG2_E,
    ROUND_MAGIC, SIGMOID_CUTOFF,
};
use crate::x86_64::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU,
};

/// `x`.
///
/// # Safety
/// None (kept `unsafe` for uniformity with the other activations).
#[inline(always)]
pub(crate) unsafe fn identity(x: __m512) -> __m512 {
    x
}

/// `max(x, 0)`; NaN gives 0, as the scalar `relu`.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn relu(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract).
    unsafe { _mm512_max_ps(x, _mm512_setzero_ps()) }
}

/// `min(max(x, 0), 6)`.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn relu6(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `relu` shares).
    unsafe { _mm512_min_ps(relu(x), _mm512_set1_ps(6.0)) }
}

/// `x * relu6(x + 3) * (1/6)`, evaluated left to right as the scalar `hardswish`.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn hardswish(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `relu6` shares).
    unsafe {
        let r = relu6(_mm512_add_ps(x, _mm512_set1_ps(3.0)));
        _mm512_mul_ps(_mm512_mul_ps(x, r), _mm512_set1_ps(1.0 / 6.0))
    }
}

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

/// Exact-form GELU by the 32-segment scheme of [`crate::activation::gelu32`] (same operations,
/// same order, so the same bits); NaN stays NaN.
///
/// Per vector: 7 multiply-adds (2 place `x` in its segment, 3 of Horner's rule, `x/2`, the final
/// one), a subtraction and 4 two-register permutes. The 8-segment degree-6 form the other tiers
/// use took 10 multiply-adds, 7 permutes and a conversion here; the multiply-adds are what the
/// GEMM this epilogue follows is short of. RepViT-M1.0 at one thread on Zen 4, four interleaved
/// rounds of 100 passes: median 22.1-22.4 -> 21.6-21.7 ms, minimum 21.8-21.9 -> 21.4-21.5 ms; a
/// build with GELU replaced by the identity (the floor) ran 20.8-21.0, so GELU went from about 1.0
/// to 0.6 ms.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn gelu(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `gelu32_row` shares).
    unsafe {
        let u = _mm512_abs_ps(x);
        // VMINPS returns the second operand when one is NaN: a NaN `u` takes the clamp, the last
        // segment, like the scalar `f32::min`.
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

/// `exp(x)` by the shared scheme of [`crate::activation::exp`] (same operations, same order); NaN
/// stays NaN.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn exp(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract); register-only intrinsics.
    unsafe {
        // The constant first: VMINPS/VMAXPS return the second operand when one is NaN.
        let x = _mm512_min_ps(
            _mm512_set1_ps(EXP_MAX),
            _mm512_max_ps(_mm512_set1_ps(EXP_MIN), x),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(LOG2_E)),
        );
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
        let mut p = _mm512_set1_ps(EXP_TAYLOR[0]);
        for &c in &EXP_TAYLOR[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        // n is integral in [-126, 127] (NaN aside, where p is NaN already): 2^n exactly.
        let bits = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
        _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(bits)))
    }
}

/// Sigmoid by the shared scheme of [`crate::activation::sigmoid`]; NaN stays NaN.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn sigmoid(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `exp` shares).
    unsafe {
        let u = _mm512_abs_ps(x);
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(u, _mm512_set1_ps(SIGMOID_CUTOFF));
        // -u by flipping the sign bit (integer XOR: AVX-512F has no float XOR).
        let neg_u = _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(u),
            _mm512_set1_epi32(i32::MIN),
        ));
        let e = _mm512_maskz_mov_ps(!big, exp(neg_u));
        let one = _mm512_set1_ps(1.0);
        let d = _mm512_add_ps(one, e);
        let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        _mm512_mask_blend_ps(neg, _mm512_div_ps(one, d), _mm512_div_ps(e, d))
    }
}

/// SiLU, `x * sigmoid(x)`, as [`crate::activation::silu`].
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn silu(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `sigmoid` shares).
    unsafe { _mm512_mul_ps(x, sigmoid(x)) }
}

/// The activation of code `ACT` (an `ACT_*` constant of [`crate::x86_64`]); resolved at compile time.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn apply<const ACT: u8>(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract covers every callee's).
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

    /// `xs` holds exactly 16 floats.
    #[target_feature(enable = "avx512f")]
    fn apply_dyn(act: Activation, xs: &[f32]) -> Vec<f32> {
        assert_eq!(xs.len(), 16);
        let mut out = vec![0.0f32; 16];
        // SAFETY: `xs` and `out` hold 16 floats each (asserted above); AVX-512F is enabled on this
        // function.
        unsafe {
            let v = _mm512_loadu_ps(xs.as_ptr());
            let y = crate::x86_64::with_act!(act, |A| apply::<A>(v));
            _mm512_storeu_ps(out.as_mut_ptr(), y);
        }
        out
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
