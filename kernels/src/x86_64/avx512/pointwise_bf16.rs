//! Pointwise (1x1 convolution) GEMM in bf16, AVX-512 BF16: micro-tiles of 8 rows x 32 output
//! channels (two `zmm` of 16 f32 accumulators per row: 16 accumulators, 2 weight registers of 16
//! bf16 pairs, each row's input pair broadcast from memory into `vdpbf16ps`). The loop nest, the
//! input conversion and the tile body are [`crate::x86_64::pointwise_bf16`].
//!
//! Each `vdpbf16ps zmm` does 32 multiply-adds where `vfmadd231ps zmm` does 16, so the tile has the
//! f32 8x32 tile's register shape with twice the work per instruction.

use crate::ukernel::{HalfPacked, PointwiseBlock};
use crate::x86_64::pointwise::dispatch_tile;
use crate::x86_64::pointwise_bf16::{self, Bf16Dot, GemmBf16, TileBf16, row_stride};
use crate::x86_64::with_act;
use core::arch::x86_64::*;

/// Panel width: two `zmm` of 16 lanes.
pub(crate) const NR: usize = 32;

/// `vdpbf16ps` on `zmm`.
#[derive(Debug, Clone, Copy)]
struct Zmm;

// SAFETY: every method executes AVX-512F/BF16 instructions only, and their contracts require those
// features; memory is touched only within the ranges each method's contract names.
unsafe impl Bf16Dot for Zmm {
    type Acc = __m512;
    type W = __m512bh;
    type A = __m512bh;

    #[inline(always)]
    unsafe fn load_w(p: *const u16) -> __m512bh {
        // SAFETY: AVX-512F is available and 32 u16 at `p` are readable (contract); `__m512i` and
        // `__m512bh` are both 64 plain bytes.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat_pair(p: *const u32) -> __m512bh {
        // SAFETY: AVX-512F is available and `p` is readable (contract); same-size plain types.
        unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(p.read_unaligned() as i32))
        }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512, a: __m512bh, w: __m512bh) -> __m512 {
        // SAFETY: AVX512_BF16 is available (contract).
        unsafe { _mm512_dpbf16_ps(acc, a, w) }
    }
}

/// Tile of `M` rows x `NB` `zmm`.
///
/// # Safety
/// As [`pointwise_bf16::tile`] with `D = Zmm` and `NR` = 32; AVX-512F, AVX512_BF16, AVX2 and FMA
/// must be available.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl,avx2,fma")]
unsafe fn zmm<const ACT: u8, const M: usize, const NB: usize>(t: &TileBf16) {
    // SAFETY: compiled with the features `Zmm` and `__m512` need, which the caller guarantees,
    // with the rest of `tile`'s contract.
    unsafe { pointwise_bf16::tile::<Zmm, ACT, M, NB, NR>(t) }
}

/// Rounds rows of f32 to bf16 pairs with `vcvtne2ps2bf16`, 32 floats at a time (masked loads on
/// the row tail, so the padding past `k` is zero).
///
/// # Safety
/// As [`GemmBf16::convert_rows`]; AVX-512F, AVX512_BF16 and AVX-512BW must be available.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw,avx512vl")]
unsafe fn convert_rows(src: *const f32, k: usize, rows: usize, dst: *mut u32) {
    let stride = row_stride(k);
    for r in 0..rows {
        let mut c = 0;
        // SAFETY: reads stay in row r's k floats (masked lanes are not accessed); writes of 16 u32
        // at r * stride + c / 2 stay in the row's stride, a multiple of 16 that is >= kp.
        unsafe {
            let s = src.add(r * k);
            let d = dst.add(r * stride);
            while c < 2 * stride {
                let left = k.saturating_sub(c);
                let lo = _mm512_maskz_loadu_ps(mask16(left), s.add(c.min(k)));
                let hi =
                    _mm512_maskz_loadu_ps(mask16(left.saturating_sub(16)), s.add((c + 16).min(k)));
                let v = _mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512(
                    d.add(c / 2).cast(),
                    std::mem::transmute::<__m512bh, __m512i>(v),
                );
                c += 32;
            }
        }
    }
}

/// The first `min(n, 16)` lanes.
#[inline(always)]
fn mask16(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// The tiles of this tier: 8 rows, tails of 1 to 3 rows merged with the last full tile.
#[derive(Debug)]
struct Tiles;

impl GemmBf16 for Tiles {
    const NR: usize = NR;
    const MR: usize = 8;
    const MIN_ROWS: usize = 4;

    #[inline(always)]
    unsafe fn tile<const ACT: u8>(t: &TileBf16, m: usize) {
        // SAFETY: `GemmBf16::tile`'s contract with 1 <= m <= 8 and 1 <= cols <= 32: one `zmm`
        // when the columns fit in 16, else two, the last holding 1 to 16 of them.
        unsafe { dispatch_tile!(zmm, ACT, t, m, t.cols().div_ceil(16), [1 2 3 4 5 6 7 8], [1 2]) }
    }

    #[inline(always)]
    unsafe fn convert_rows(src: *const f32, k: usize, rows: usize, dst: *mut u32) {
        // SAFETY: the same contract; the features are the caller's.
        unsafe { convert_rows(src, k, rows, dst) }
    }
}

/// bf16 pointwise block kernel, AVX-512 BF16, 8 rows x 32 output channels per tile (panel width
/// 32, K-pairs) ([`crate::pointwise::PointwiseHalfFn`]).
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`]: AVX-512F, AVX512_BF16, AVX-512BW/VL,
/// AVX2 and FMA are available; `bias` and `weights` were packed for `HalfTile { nr: 32, kpack: 2,
/// dtype: Bf16 }` with `g.k` and `g.n`; `input` is valid for reads of `g.p * g.k` floats, `output`
/// for writes of `g.p * g.n` floats, `residual` (when not null) for reads of `g.p * g.n` floats;
/// neither aliases `output`; no other thread writes the block at the same time. (The ranges and
/// the lengths of `bias` and `weights` are checked.)
pub(crate) unsafe fn pointwise_bf16_8x32_avx512bf16(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    // SAFETY: this function's contract is the loop nest's with `Tiles` (panel width 32).
    unsafe {
        with_act!(b.geom.act, |A| pointwise_bf16::pointwise_bf16::<Tiles, A>(
            b
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Precision;
    use crate::isa::Isa;

    #[test]
    #[cfg_attr(
        not(target_feature = "avx512bf16"),
        ignore = "needs AVX512_BF16; run with RUSTFLAGS=-Ctarget-feature=+avx512bf16 on such a CPU, or rely on tests/tests/pointwise_bf16.rs, which runs every available entry"
    )]
    fn matches_the_scalar_model_bit_for_bit() {
        assert!(
            Precision::Bf16.is_available_on(Isa::Avx512),
            "no AVX512_BF16"
        );
        crate::x86_64::pointwise_bf16::tests::check_bitwise_against_scalar(
            pointwise_bf16_8x32_avx512bf16,
            NR,
            crate::activation::gelu32,
        );
    }
}
