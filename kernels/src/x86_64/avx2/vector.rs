//! [`SimdF32`] for `__m256` (AVX2+FMA).

use core::arch::x86_64::*;

use crate::dwconv_kxk::register_ops;
use crate::x86_64::SimdF32;

// One implementation per register type (AVX-512, NEON and portable have their own): the masks
// differ in type (`__m256i`, `__mmask16`, a lane count) and the masked forms in operand order. The
// methods that are one intrinsic on registers are the `register_ops!` table.
// SAFETY: every method executes AVX/AVX2/FMA instructions only, and their contracts require those
// features; memory is touched only within the ranges each method's contract names.
unsafe impl SimdF32 for __m256 {
    const LANES: usize = 8;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn mask_first(n: usize) -> __m256i {
        debug_assert!(n <= 8);
        // SAFETY: AVX2 is available (contract); lane i is all-ones iff i < n.
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: AVX is available (contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is available and `p..p + 8` is readable (contract); unaligned load.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: AVX is available and the lanes selected by `m` are readable (contract);
        // `vmaskmovps` does not access (or fault on) unselected lanes.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: AVX is available and `p..p + 8` is writable (contract); unaligned store.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: AVX is available and the lanes selected by `m` are writable (contract);
        // `vmaskmovps` does not access unselected lanes.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    register_ops! {
        fn zero() = _mm256_setzero_ps;
        fn fma(a, b, c) = _mm256_fmadd_ps;
        fn add(a, b) = _mm256_add_ps;
    }
    #[inline(always)]
    unsafe fn act<const ACT: u8>(v: __m256) -> __m256 {
        // SAFETY: AVX2 and FMA are available (contract).
        unsafe { crate::x86_64::act::apply::<Self, ACT>(v) }
    }
}
