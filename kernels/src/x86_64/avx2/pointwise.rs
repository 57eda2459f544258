//! Pointwise (1x1 convolution) GEMM, AVX2+FMA: micro-tiles of 6 rows x 16 output channels (two
//! `ymm` per row: 12 accumulators, 2 weight registers and a broadcast fill the 16 `ymm`). The loop
//! nest and the tile body are [`crate::x86_64::pointwise`].
//!
//! Tile choice, measured on Zen 4 with the identity epilogue, one thread: 6x16 runs the RepViT-M1.0
//! shapes at 90-98 % of peak, 5x16 at 85-93 %, 8x8 at 71-81 %, 4x24 (a panel row of 96 bytes,
//! across cache lines) at 40-47 %.

use core::arch::x86_64::__m256;

use crate::x86_64::pointwise::{self, Gemm, Tile, dispatch_tile};

/// Panel width: two `ymm`.
const NR: usize = 16;

/// Tile of `M` rows x `NB` `ymm` of [`pointwise::tile`].
///
/// # Safety
/// As [`pointwise::tile`] with `V = __m256` and `NR` = 16; AVX2+FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn ymm<const ACT: u8, const M: usize, const NB: usize>(t: &Tile) {
    // SAFETY: compiled with the features `__m256`'s `SimdF32` needs, which the caller guarantees,
    // with the rest of `tile`'s contract.
    unsafe { pointwise::tile::<__m256, ACT, M, NB, NR>(t) }
}

/// The tiles of this tier: 6 rows, tails of 1 or 2 rows merged with the last full tile.
#[derive(Debug)]
struct Tiles;

impl Gemm for Tiles {
    const NR: usize = NR;
    const MR: usize = 6;
    const MIN_ROWS: usize = 3;

    #[inline(always)]
    unsafe fn tile<const ACT: u8>(t: &Tile, m: usize) {
        // SAFETY: `Gemm::tile`'s contract with 1 <= m <= 6 and 1 <= cols <= 16: NB = ceil(cols / 8)
        // registers cover the columns, the last holding 1 to 8 of them.
        unsafe { dispatch_tile!(ymm, ACT, t, m, t.cols().div_ceil(8), [1 2 3 4 5 6], [1 2]) }
    }
}

crate::x86_64::pointwise::pointwise_entry!(
    pointwise_6x16_avx2,
    Tiles,
    16,
    "AVX2+FMA",
    "6 rows x 16",
    Avx2
);
