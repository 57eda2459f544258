//! Depthwise 3x3, AVX-512F: channel blocks of two `__m512` (32 channels, the 18 taps in
//! registers), steps of 4 output columns, channel tails with `k`-masked loads and stores. The loop nest is [`crate::x86_64::dwconv`].

use core::arch::x86_64::__m512;

use std::ops::Range;

use crate::dwconv_kxk::{self as kxk, BandArgs, KxkTier, kxk_entry};
use crate::ukernel::DwConvGeom;
use crate::x86_64::dwconv::{self, RowArgs, Tier};
use crate::x86_64::with_act;

/// Registers per channel block: 18 taps + 8 accumulators + inputs + row sums fit the 32 `zmm`.
const NV: usize = 2;
/// Output columns per step.
const T: usize = 4;
/// Taps reloaded per step (see [`dwconv::block`]).
const RELOAD: bool = false;

/// Depthwise 3x3 convolution with AVX-512F+AVX2+FMA ([`crate::ukernel::DwConvFn`]).
///
/// # Safety
/// AVX-512F+AVX2+FMA must be available, and [`DwConvGeom::check_rows`] must accept `g` (with `k = 3`), the band
/// and the lengths of the slices.
pub(crate) unsafe fn dwconv3x3_c32_avx512(
    g: &DwConvGeom,
    rows: Range<usize>,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
) {
    // SAFETY: AVX-512F+AVX2+FMA availability and the checked geometry are this function's contract,
    // which is exactly the driver's with this tier.
    unsafe {
        with_act!(g.act, |A| dwconv::dwconv3x3::<Avx512, A>(
            g, rows, input, weights, bias, output, sums
        ))
    }
}

kxk_entry!(dwconv5x5_c16_avx512, Avx512, 5, "AVX-512F+AVX2+FMA");
kxk_entry!(dwconv7x7_c16_avx512, Avx512, 7, "AVX-512F+AVX2+FMA");

/// This tier's blocking and compiled channel-block passes.
struct Avx512;

/// k x k: one `__m512` per block (16 channels, so channel counts such as 40 and 72 waste at most
/// half a register), steps of 8 outputs at stride 1 and of 4 at stride 2: the k taps of a kernel
/// row, 8 accumulators and the input column use at most 16 of the 32 `zmm`.
impl KxkTier for Avx512 {
    const CH: usize = 16;

    /// # Safety
    /// As [`kxk::block`]; AVX-512F+AVX2+FMA must be available.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
        a: &BandArgs,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: this function is compiled with AVX-512F+AVX2+FMA (the features of `__m512`'s
        // vector trait), which the caller guarantees the CPU has, with the rest of `block`'s
        // contract.
        unsafe {
            if S == 2 {
                // Stride 2 in steps of 4, as on AVX2, where steps of 8 leave the step's loop over
                // (8 - 1) * 2 + K input columns rolled, picking each column's taps with compares
                // and branches (see there; not profiled again here). Measured on Zen 4 (one
                // thread, criterion, two alternating runs each): 5x5 stride 2 at 56x56x72 92-144
                // -> 43-57 us; maps of 14 or 7 output columns already ran in steps of 4 and are
                // unchanged.
                kxk::block::<__m512, K, S, ACT, 1, 4, MASKED>(a, cb, part)
            } else {
                kxk::block::<__m512, K, S, ACT, 1, 8, MASKED>(a, cb, part)
            }
        }
    }
}

impl Tier for Avx512 {
    const CH: usize = NV * 16;

    /// # Safety
    /// As [`dwconv::block`]; AVX-512F+AVX2+FMA must be available.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn block<const ACT: u8, const S: usize, const NR: usize, const MASKED: bool>(
        r: &RowArgs<NR>,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: this function is compiled with AVX-512F+AVX2+FMA (the features of `__m512`'s
        // `SimdF32`), which the caller guarantees the CPU has, with the rest of `block`'s
        // contract.
        unsafe { dwconv::block::<__m512, ACT, NV, T, RELOAD, S, NR, MASKED>(r, cb, part) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference() {
        crate::x86_64::test_tier(crate::Isa::Avx512, || {
            dwconv::tests::check_against_reference(dwconv3x3_c32_avx512)
        });
    }
}
