//! Pointwise (1x1 convolution) GEMM block in f16 arithmetic on NEON with FEAT_FP16 (Armv8.2-A):
//! micro-tiles of 8 rows (pixels) x 16 output channels (one packed panel, two q registers of eight
//! f16 lanes), `FMLA Vd.8H, Vn.8H, Vm.H[i]` with f16 accumulation, as XNNPACK's
//! `f16-gemm ... neonfp16arith` micro-kernels and ncnn's fp16 arithmetic do.
//!
//! Per output element `(r, j)`, in this order (the model in [`super::half_model`] repeats it):
//! 1. `acc = +0` (f16); for `kk` in `0..k` ascending: `acc = round16(acc + x16[r][kk] * w16[kk][j])`,
//!    one rounding per step (the fused multiply-add), where `x16 = round16(x)` is rounded from the
//!    f32 input by `FCVTN` inside the tile and `w16` was rounded when the weights were packed
//!    (round to nearest even both);
//! 2. widen `acc` to f32 (exact), add the f32 bias, apply the activation in f32 (the f32 NEON
//!    activations, GELU included), add the f32 residual, store f32.
//!
//! Biases stay f32 and are added after widening (not folded into the f16 accumulator as XNNPACK
//! does): a folded-BatchNorm bias can be large next to the sum, and adding it in f32 costs four
//! `FADD` per row in the epilogue. What f16 accumulation costs in accuracy is bounded in the tests:
//! about `(k + 3) * 2^-11` relative to `sum |x w|`, and values beyond 65504 overflow to infinity.
//!
//! Register budget (32 q registers): 16 accumulators (8 rows x 2), 8 registers of A (four input
//! channels of each row in f16, in v0-v15 as the by-element `FMLA` needs) and 2 of B: 26, no
//! spills. Per four input channels a full tile issues 8 A loads, 8 `FCVTN`, 8 B loads and 64
//! `FMLA`s for 512 multiply-adds (the f32 8x8 tile: 8 + 8 + 64 for 256).
//!
//! Loop nest, tails and stores as the f32 kernel ([`super::neon::pointwise`]): panels outer, tiles of
//! 8 rows inner, one tile of 1 to 7 rows for the rest; input channels past the last multiple of 4
//! one at a time; a last panel narrower than 16 channels (zero weights and biases there) computed in
//! full with only its valid columns stored and read from the residual.

use core::arch::aarch64::*;

use super::half::{
    HalfTile, Panel, f16x8_to_f32x4, f32x4_to_f16x4, fmla_f16_lane, run_panels, store_row,
};
use super::neon::act::with_act;
use crate::ukernel::{HalfPacked, PointwiseBlock};

/// Output channels per packed panel (two q registers of eight f16 lanes).
pub(crate) const NR: usize = 16;

/// Pointwise block kernel, f16 arithmetic, 8 rows x 16 output channels per tile: rows `rows` and
/// panels `panels` of `out = act(in . W + bias) (+ residual)` (the contract and layout of
/// [`crate::pointwise::PointwiseHalfFn`] with `nr = 16`, `kpack = 1`, f16 weights).
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`]: NEON and FEAT_FP16 are available;
/// `bias` (`[panels * 16]` f32) and `weights` (per panel `[k][16]` f16 bits) were packed for
/// `g.k` and `g.n`; `input` is valid for reads of `g.p * g.k` floats, `output` for writes of
/// `g.p * g.n` floats, `residual` (when not null) for reads of `g.p * g.n` floats; neither input
/// nor residual aliases `output`; no other thread writes the block at the same time. (The ranges
/// and the packed lengths are checked here.)
pub(crate) unsafe fn pointwise_f16_8x16_neonfp16(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    // SAFETY: FEAT_FP16 and the pointer validity are this function's contract, which is `run`'s
    // whole contract (`run` checks the ranges and the packed lengths itself).
    unsafe { with_act!(b.geom.act, |A| run::<A>(b)) }
}

/// The loop nest for activation code `ACT` ([`run_panels`] with this kernel's tiles).
///
/// # Safety
/// As [`pointwise_f16_8x16_neonfp16`].
#[target_feature(enable = "neon,fp16")]
unsafe fn run<const ACT: u8>(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    // SAFETY: this function's contract is `run_panels`'s with `Tiles` (panels of 16 channels),
    // and `Tiles::tile` needs the features this function is compiled with.
    unsafe { run_panels::<Tiles, 4, ACT>(b) }
}

/// This kernel's tiles (weights per panel `[k][NR]` f16 bits).
struct Tiles;

impl HalfTile<4> for Tiles {
    fn panel_len(k: usize) -> usize {
        NR * k
    }

    #[target_feature(enable = "neon,fp16")]
    unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_, 4>, r: usize) {
        // SAFETY: `HalfTile::tile`'s contract is `tile`'s.
        unsafe { tile::<ACT, M>(t, r) }
    }
}

/// One input channel (`L`, a lane of `a`) of a tile: `acc[i] += b * a[i][L]` in f16 for the two
/// weight registers `b` loaded from `w[0..16]`.
///
/// # Safety
/// FEAT_FP16 is available; `w` is valid for reads of 16 halves.
#[inline]
#[target_feature(enable = "neon,fp16")]
unsafe fn lane<const L: u32, const M: usize>(
    acc: &mut [[uint16x8_t; 2]; M],
    a: &[uint16x4_t; M],
    w: *const u16,
) {
    // SAFETY: FEAT_FP16 is available and `w` is valid for 16 reads (this function's contract).
    unsafe {
        let b0 = vld1q_u16(w);
        let b1 = vld1q_u16(w.add(8));
        for (c, &x) in acc.iter_mut().zip(a) {
            c[0] = fmla_f16_lane::<L>(c[0], b0, x);
            c[1] = fmla_f16_lane::<L>(c[1], b1, x);
        }
    }
}

/// Rows `r..r + M` of one panel: all of K in f16, then the f32 epilogue and the stores.
///
/// # Safety
/// FEAT_FP16 is available; `t.input` is valid for reads of rows `r..r + M` (`k` floats each),
/// `t.output` for writes and `t.residual` (if any) for reads of those rows (`n` floats each);
/// `t.w.len() == NR * t.k`; `t.j0 + t.cols <= t.n` and `1 <= t.cols <= NR`.
#[inline(always)]
unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_, 4>, r: usize) {
    let (k, n) = (t.k, t.n);
    debug_assert!(t.w.len() == NR * k && t.j0 + t.cols <= n && (1..=NR).contains(&t.cols));
    let w = t.w.as_ptr();
    // SAFETY: FEAT_FP16 is available (contract). Weight reads: input channel kk's 16 halves at
    // NR * kk..NR * (kk + 1), kk < k, inside `t.w`. Input reads are at (r + i) * k + kk..+4 with
    // kk + 4 <= k, or the one float at (r + i) * k + kk with kk < k: inside row r + i.
    let acc = unsafe {
        let mut acc = [[vdupq_n_u16(0); 2]; M];
        let a = t.input.add(r * k);
        let mut wk = w;
        let mut kk = 0;
        while kk + 4 <= k {
            let mut av = [vdup_n_u16(0); M];
            for (i, x) in av.iter_mut().enumerate() {
                *x = f32x4_to_f16x4(vld1q_f32(a.add(i * k + kk)));
            }
            lane::<0, M>(&mut acc, &av, wk);
            lane::<1, M>(&mut acc, &av, wk.add(NR));
            lane::<2, M>(&mut acc, &av, wk.add(2 * NR));
            lane::<3, M>(&mut acc, &av, wk.add(3 * NR));
            wk = wk.add(4 * NR);
            kk += 4;
        }
        while kk < k {
            let mut av = [vdup_n_u16(0); M];
            for (i, x) in av.iter_mut().enumerate() {
                *x = f32x4_to_f16x4(vld1q_dup_f32(a.add(i * k + kk)));
            }
            lane::<0, M>(&mut acc, &av, wk);
            wk = wk.add(NR);
            kk += 1;
        }
        acc
    };
    for (i, c) in acc.iter().enumerate() {
        // Offset of (row r + i, column j0): its columns j0..j0 + cols are inside the row.
        let o = (r + i) * n + t.j0;
        // SAFETY: NEON is available; row r + i of the output (and of the residual) is valid
        // (contract) and columns j0..j0 + cols <= n lie inside it.
        unsafe {
            let v = [
                f16x8_to_f32x4::<false>(c[0]),
                f16x8_to_f32x4::<true>(c[0]),
                f16x8_to_f32x4::<false>(c[1]),
                f16x8_to_f32x4::<true>(c[1]),
            ];
            store_row::<ACT, 4>(
                v,
                &t.bias,
                t.output.add(o),
                t.residual.map(|p| p.add(o)),
                t.cols,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aarch64::half_tests::{self as t, Half, Spec};

    const SPEC: Spec = Spec {
        name: "pointwise_f16_8x16_neonfp16",
        f: pointwise_f16_8x16_neonfp16,
        nr: NR,
        kpack: 1,
        half: Half::F16,
    };

    t::kernel_tests!(SPEC);
}
