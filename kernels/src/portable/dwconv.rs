//! Depthwise k x k (k = 3, 5, 7) on the portable tier: the loop nest shared by the SIMD tiers
//! ([`crate::dwconv_kxk`]) over `wide`'s `f32x4`, one register (4 channels) per block, steps of 8
//! output columns for k = 3 and 5 (7 where the width is a multiple of 7) and 6 for k = 7: with 16
//! 128-bit registers (SSE2, simd128), the accumulators, the `k` taps of a kernel row and an input
//! column fit (8 + 5 + 1 for k = 5).

use wide::f32x4;

use crate::dwconv_kxk::{self as kxk, BandArgs, KxkTier, SimdF32, kxk_entry};

kxk_entry!(
    dwconv3x3_c4_portable,
    Portable,
    3,
    "portable SIMD (`wide`, no CPU feature)"
);
kxk_entry!(
    dwconv5x5_c4_portable,
    Portable,
    5,
    "portable SIMD (`wide`, no CPU feature)"
);
kxk_entry!(
    dwconv7x7_c4_portable,
    Portable,
    7,
    "portable SIMD (`wide`, no CPU feature)"
);

/// The blocking of the portable tier (see the module documentation).
struct Portable;

impl KxkTier for Portable {
    const CH: usize = 4;

    /// # Safety
    /// As [`kxk::block`] (the portable tier needs no CPU feature).
    unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
        a: &BandArgs,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: `block`'s contract is this function's.
        unsafe {
            if K == 7 {
                kxk::block::<f32x4, K, S, ACT, 1, 6, MASKED>(a, cb, part)
            } else {
                kxk::block::<f32x4, K, S, ACT, 1, 8, MASKED>(a, cb, part)
            }
        }
    }
}

// SAFETY: `f32x4` needs no CPU feature (wide picks its instructions from the target's baseline);
// every method touches memory only within the ranges its contract names (the masked forms go
// through a stack copy of the selected lanes).
unsafe impl SimdF32 for f32x4 {
    const LANES: usize = 4;
    /// The number of leading lanes selected.
    type Mask = usize;

    #[inline(always)]
    unsafe fn mask_first(n: usize) -> usize {
        debug_assert!(n <= 4);
        n
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        f32x4::ZERO
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        f32x4::splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p..p + 4` is readable (contract); no alignment is assumed.
        f32x4::from(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: usize) -> Self {
        let mut t = [0.0f32; 4];
        // SAFETY: the first `m` floats at `p` are readable (contract), `m <= 4`.
        unsafe { core::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), m) };
        f32x4::from(t)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: `p..p + 4` is writable (contract); no alignment is assumed.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(v.to_array()) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: usize, v: Self) {
        let t = v.to_array();
        // SAFETY: the first `m` floats at `p` are writable (contract), `m <= 4`.
        unsafe { core::ptr::copy_nonoverlapping(t.as_ptr(), p, m) };
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // a * b + c: fused where the target has FMA, a multiply then an add elsewhere.
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        a + b
    }
    #[inline(always)]
    unsafe fn act<const ACT: u8>(v: Self) -> Self {
        super::act::<ACT>(v)
    }
}
