//! Depthwise 3x3, AVX2+FMA: channel blocks of one `__m256` (8 channels, the 9 taps in registers),
//! steps of 4 output columns, channel tails with `vmaskmovps`. The loop nest is [`crate::x86_64::dwconv`].

use core::arch::x86_64::__m256;

use std::ops::Range;

use crate::dwconv_kxk::{self as kxk, BandArgs, KxkTier, kxk_entry};
use crate::ukernel::DwConvGeom;
use crate::x86_64::dwconv::{self, RowArgs, Tier};
use crate::x86_64::with_act;

/// Registers per channel block: 9 taps + 4 accumulators + input + row sum fit the 16 `ymm`.
const NV: usize = 1;
/// Output columns per step.
const T: usize = 4;
/// Taps reloaded per step (see [`dwconv::block`]).
const RELOAD: bool = true;

/// Depthwise 3x3 convolution with AVX2+FMA ([`crate::ukernel::DwConvFn`]).
///
/// # Safety
/// AVX2+FMA must be available, and [`DwConvGeom::check_rows`] must accept `g` (with `k = 3`), the band
/// and the lengths of the slices.
pub(crate) unsafe fn dwconv3x3_c8_avx2(
    g: &DwConvGeom,
    rows: Range<usize>,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
) {
    // SAFETY: AVX2+FMA availability and the checked geometry are this function's contract,
    // which is exactly the driver's with this tier.
    unsafe {
        with_act!(g.act, |A| dwconv::dwconv3x3::<Avx2, A>(
            g, rows, input, weights, bias, output, sums
        ))
    }
}

kxk_entry!(dwconv5x5_c8_avx2, Avx2, 5, "AVX2+FMA");
kxk_entry!(dwconv7x7_c8_avx2, Avx2, 7, "AVX2+FMA");

/// This tier's blocking and compiled channel-block passes.
struct Avx2;

/// k x k: one `__m256` per block (8 channels); at stride 1 steps of 8 outputs for k = 5 and 6 for
/// k = 7, so the k taps of a kernel row, the accumulators and the input column fit the 16 `ymm`
/// (14 used); at stride 2 steps of 4.
impl KxkTier for Avx2 {
    const CH: usize = 8;

    /// # Safety
    /// As [`kxk::block`]; AVX2+FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
        a: &BandArgs,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: this function is compiled with AVX2+FMA (the features of `__m256`'s vector
        // trait), which the caller guarantees the CPU has, with the rest of `block`'s contract.
        unsafe {
            if S == 2 {
                // Stride 2 in steps of 4: with steps of 8 (k = 5) or 6 (k = 7) the step's loop
                // over input columns ((T - 1) * S + K = 19 or 17 iterations) is left rolled by
                // the compiler, so choosing each column's taps runs as compares and branches in
                // the hot loop (perf profile) and the step is two to three times slower than its
                // FMA count says; steps of 4 (11 and 13 iterations) are unrolled like stride 1.
                // Measured on Zen 3 (one thread, interleaved, ReLU and sums): 5x5 56x56x72
                // 185 -> 65 us, 7x7 56x56x96 301 -> 158 us; the maps of 14 or 7 columns
                // already ran in steps of 4 and are unchanged.
                kxk::block::<__m256, K, S, ACT, 1, 4, MASKED>(a, cb, part)
            } else if K == 5 {
                kxk::block::<__m256, K, S, ACT, 1, 8, MASKED>(a, cb, part)
            } else {
                kxk::block::<__m256, K, S, ACT, 1, 6, MASKED>(a, cb, part)
            }
        }
    }
}

impl Tier for Avx2 {
    const CH: usize = NV * 8;

    /// # Safety
    /// As [`dwconv::block`]; AVX2+FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const ACT: u8, const S: usize, const NR: usize, const MASKED: bool>(
        r: &RowArgs<NR>,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: this function is compiled with AVX2+FMA (the features of `__m256`'s
        // `SimdF32`), which the caller guarantees the CPU has, with the rest of `block`'s
        // contract.
        unsafe { dwconv::block::<__m256, ACT, NV, T, RELOAD, S, NR, MASKED>(r, cb, part) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference() {
        crate::x86_64::test_tier(crate::Isa::Avx2, || {
            dwconv::tests::check_against_reference(dwconv3x3_c8_avx2)
        });
    }
}
