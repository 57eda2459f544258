//! Depthwise 3x3, AVX-512F: channel blocks of two `__m512` (32 channels, the 18 taps in
//! registers), steps of 4 output columns, channel tails with `k`-masked loads and stores. The loop nest is [`crate::x86_64::dwconv`].

use core::arch::x86_64::__m512;

use crate::dwconv::DwConv3x3Geom;
use crate::x86_64::dwconv::{self, RowArgs, Tier};
use crate::x86_64::with_act;

/// Registers per channel block: 18 taps + 8 accumulators + inputs + row sums fit the 32 `zmm`.
const NV: usize = 2;
/// Output columns per step.
const T: usize = 4;
/// Taps reloaded per step (see [`dwconv::block`]).
const RELOAD: bool = false;

/// Depthwise 3x3 convolution with AVX-512F+AVX2+FMA ([`crate::dwconv::DwConv3x3Fn`]).
///
/// # Safety
/// AVX-512F+AVX2+FMA must be available, and [`DwConv3x3Geom::check`] must accept `g` and the lengths of the
/// slices.
pub(crate) unsafe fn dwconv3x3_c32_avx512(
    g: &DwConv3x3Geom,
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
            g, input, weights, bias, output, sums
        ))
    }
}

/// This tier's blocking and compiled channel-block passes.
struct Avx512;

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

    fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }

    #[test]
    fn matches_reference() {
        if available() {
            dwconv::tests::check_against_reference(dwconv3x3_c32_avx512);
        }
    }
}
