//! Pointwise (1x1 convolution) GEMM, AVX-512F: micro-tiles of 8 rows x 32 output channels (two
//! `zmm` per row: 16 accumulators, 2 weight registers, the input broadcast from memory). The loop
//! nest and the tile body are [`crate::x86_64::pointwise`].
//!
//! Tile choice, measured on Zen 4 (512-bit FMA double-pumped: the same 115-118 GFLOP/s peak as
//! 256-bit) with the identity epilogue, one thread: 8x32, 7x32, 12x32, 14x32 and 14x16 all run the
//! RepViT-M1.0 shapes at 97-100 % of peak once the row tail is merged; 8x32 makes the driver's
//! fewest rows per block (`ROW_QUANTUM` in pointwise.rs, 8) one full tile. A last panel whose last
//! register would hold at most 8 columns computes those columns as a `ymm` tile (half the cost of a
//! `zmm` on this core): N = 56 went from 86 % to 95 % of peak.

use core::arch::x86_64::{__m256, __m512};

use crate::x86_64::pointwise::{self, Gemm, Tile, dispatch_tile};

/// Panel width: two `zmm`.
const NR: usize = 32;

/// Tile of `M` rows x `NB` `zmm` of [`pointwise::tile`].
///
/// # Safety
/// As [`pointwise::tile`] with `V = __m512` and `NR` = 32; AVX-512F+AVX2+FMA must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn zmm<const ACT: u8, const M: usize, const NB: usize>(t: &Tile) {
    // SAFETY: compiled with the features `__m512`'s `SimdF32` needs, which the caller guarantees,
    // with the rest of `tile`'s contract.
    unsafe { pointwise::tile::<__m512, ACT, M, NB, NR>(t) }
}

/// Tile of `M` rows x `NB` `ymm` of [`pointwise::tile`] (a last panel's last 1 to 8 columns).
///
/// # Safety
/// As [`pointwise::tile`] with `V = __m256` and `NR` = 32; AVX-512F+AVX2+FMA must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn ymm<const ACT: u8, const M: usize, const NB: usize>(t: &Tile) {
    // SAFETY: compiled with (more than) the features `__m256`'s `SimdF32` needs, which the caller
    // guarantees, with the rest of `tile`'s contract.
    unsafe { pointwise::tile::<__m256, ACT, M, NB, NR>(t) }
}

/// The tiles of this tier: 8 rows, tails of 1 to 3 rows merged with the last full tile.
#[derive(Debug)]
struct Tiles;

impl Gemm for Tiles {
    const NR: usize = NR;
    const MR: usize = 8;
    const MIN_ROWS: usize = 4;

    #[inline(always)]
    unsafe fn tile<const ACT: u8>(t: &Tile, m: usize) {
        let cols = t.cols();
        let (full, rest) = (cols / 16, cols % 16);
        // SAFETY: `Gemm::tile`'s contract with 1 <= m <= 8 and 1 <= cols <= 32. Each call covers
        // its columns with registers of 16 (or 8) lanes, its last register holding 1 to LANES of
        // them, within the 32 columns of the panel; the split covers 0..16 * full (full <= 1 as
        // rest > 0) and 16 * full..cols.
        unsafe {
            if rest == 0 || rest > 8 {
                dispatch_tile!(zmm, ACT, t, m, cols.div_ceil(16), [1 2 3 4 5 6 7 8], [1 2])
            } else {
                if full > 0 {
                    zmm_rows::<ACT>(&t.columns_to(16), m);
                }
                let t = t.columns_from(16 * full);
                dispatch_tile!(ymm, ACT, &t, m, 1, [1 2 3 4 5 6 7 8], [1])
            }
        }
    }
}

/// One `zmm` per row, `m` rows.
///
/// # Safety
/// As [`zmm`] with `NB = 1` and `M = m`, `1 <= m <= 8`.
#[inline(always)]
unsafe fn zmm_rows<const ACT: u8>(t: &Tile, m: usize) {
    // SAFETY: this function's contract.
    unsafe { dispatch_tile!(zmm, ACT, t, m, 1, [1 2 3 4 5 6 7 8], [1]) }
}

crate::x86_64::pointwise::pointwise_entry!(
    pointwise_8x32_avx512,
    Tiles,
    32,
    "AVX-512F+AVX2+FMA",
    "8 rows x 32",
    Avx512
);
