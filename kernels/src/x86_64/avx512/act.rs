//! Activations on `__m512`, by exactly the scheme (formulas, constants, operation order) of the
//! scalar functions in [`crate::activation`]: results equal the scalar ones bit for bit (NaN aside,
//! which stays NaN), as the tests below check. AVX-512F only (no DQ: float logic goes through the
//! integer domain).
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "avx512f,avx2,fma")]` function.

use core::arch::x86_64::*;

use crate::activation::{GELU_POLY, GELU_SCALE, GELU_SEGMENTS};
use crate::x86_64::{ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6};

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

/// Row `k` of the GELU table, lane `j` taking segment `idx[j]` (which must be in `0..8`).
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
unsafe fn gelu_row(idx: __m512i, k: usize) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract); `GELU_POLY[k]` holds 8 floats, which
    // the 256-bit unaligned load reads exactly; lanes 8..16 of the widened row are never selected.
    unsafe {
        _mm512_permutexvar_ps(
            idx,
            _mm512_castps256_ps512(_mm256_loadu_ps(GELU_POLY[k].as_ptr())),
        )
    }
}

/// Exact-form GELU by the shared table scheme of [`crate::activation::gelu`]; NaN stays NaN.
///
/// # Safety
/// AVX-512F must be available.
#[inline(always)]
pub(crate) unsafe fn gelu(x: __m512) -> __m512 {
    // SAFETY: AVX-512F is available (this function's contract, which `gelu_row` shares); every
    // index passed to `gelu_row` is in 0..8.
    unsafe {
        let u = _mm512_abs_ps(x);
        // A NaN product gives the second operand, the last segment, like the scalar `f32::min`.
        let f = _mm512_min_ps(
            _mm512_mul_ps(u, _mm512_set1_ps(GELU_SCALE)),
            _mm512_set1_ps((GELU_SEGMENTS - 1) as f32),
        );
        let i = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
        let r = _mm512_sub_ps(f, i);
        // Integral in [0, 7]: the conversion is exact; the permute reads the low 4 bits.
        let idx = _mm512_cvtps_epi32(i);
        let mut p = gelu_row(idx, 6);
        for k in (0..6).rev() {
            p = _mm512_fmadd_ps(p, r, gelu_row(idx, k));
        }
        let half = _mm512_set1_ps(0.5);
        _mm512_fmadd_ps(_mm512_mul_ps(half, u), p, _mm512_mul_ps(half, x))
    }
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
        if !(std::arch::is_x86_feature_detected!("avx512f")) {
            return;
        }
        // SAFETY: AVX-512F was detected just above.
        crate::x86_64::act_test::check_tier(16, |act, xs| unsafe { apply_dyn(act, xs) });
    }
}
