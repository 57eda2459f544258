//! [`SimdF32`] for `__m512` (AVX-512F).

use core::arch::x86_64::*;

use crate::dwconv_kxk::register_ops;
use crate::x86_64::SimdF32;

// SAFETY: every method executes AVX-512F instructions only, and their contracts require that
// feature; memory is touched only within the ranges each method's contract names.
unsafe impl SimdF32 for __m512 {
    const LANES: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn mask_first(n: usize) -> __mmask16 {
        debug_assert!(n <= 16);
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is available and `p..p + 16` is readable (contract); unaligned load.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: AVX-512F is available and the lanes selected by `m` are readable (contract);
        // masked-off lanes are neither accessed nor able to fault.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F is available and `p..p + 16` is writable (contract); unaligned store.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: AVX-512F is available and the lanes selected by `m` are writable (contract);
        // masked-off lanes are not accessed.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    register_ops! {
        fn zero() = _mm512_setzero_ps;
        fn fma(a, b, c) = _mm512_fmadd_ps;
        fn add(a, b) = _mm512_add_ps;
    }
    #[inline(always)]
    unsafe fn act<const ACT: u8>(v: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (contract).
        unsafe { crate::x86_64::act::apply::<Self, ACT>(v) }
    }
}
