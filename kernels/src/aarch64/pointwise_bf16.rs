//! Pointwise (1x1 convolution) GEMM block with bf16 multiplies and f32 accumulation on NEON with
//! FEAT_BF16 (Armv8.6-A, optional from Armv8.2-A): micro-tiles of 8 rows (pixels) x 8 output
//! channels (one packed panel), `BFDOT Vd.4S, Vn.8H, Vm.2H[i]`, which adds to each f32 lane the dot
//! product of a pair of bf16 weights (two consecutive input channels of one output channel) with a
//! pair of bf16 activations.
//!
//! Per output element `(r, j)`, in this order (the model in [`super::half_model`] repeats it):
//! 1. `acc = +0` (f32); for each pair `q` of input channels `(2q, 2q + 1)` ascending (the
//!    second zero past an odd K): `acc = BFDotAdd(acc, x[r][2q..2q + 2], w[2q..2q + 2][j])`, with
//!    `x` rounded to bf16 by `BFCVTN` inside the tile and `w` rounded when the weights were packed
//!    (round to nearest even both); `BFDotAdd` is the Arm pseudocode's: the two products exact,
//!    their sum and the accumulation each rounded to f32 by round-to-odd, denormals flushed to zero,
//!    whatever FPCR says (without FEAT_EBF16, or with FPCR.EBF = 0 as Linux leaves it);
//! 2. `acc + bias[j]` in f32 (round to nearest even, as every f32 kernel's arithmetic), the
//!    activation in f32, then the f32 residual; stored f32.
//!
//! Register budget (32 q registers): 16 f32 accumulators (8 rows x 2), 8 registers of A (eight input
//! channels of each row as four bf16 pairs, from two loads and `BFCVTN` + `BFCVTN2`), 2 of B per
//! pair step: 26, no spills. Per eight input channels a full tile issues 16 A loads, 16 conversions,
//! 8 B loads and 64 `BFDOT`s for 512 multiply-adds (the f32 8x8 tile: 160 instructions for 512).
//!
//! Loop nest, tails and stores as the f32 kernel ([`super::neon::pointwise`]): panels outer, tiles of
//! 8 rows inner, one tile of 1 to 7 rows for the rest; input channels past the last multiple of 8
//! one pair at a time (through a zero-padded stack copy of the pair, so nothing past the row is
//! read); a last panel narrower than 8 channels computed in full, only its valid columns stored.

use core::arch::aarch64::*;

use super::half::{
    HalfTile, Panel, bfdot_lane, f32x4_to_bf16_hi, f32x4_to_bf16_lo, run_panels, store_row,
};
use super::neon::act::with_act;
use crate::ukernel::{HalfPacked, PointwiseBlock};

/// Output channels per packed panel (two q registers of four f32 lanes).
pub(crate) const NR: usize = 8;
/// Input channels stored together per output channel (a `BFDOT` pair).
pub(crate) const KPACK: usize = 2;

/// Pointwise block kernel, bf16 multiplies with f32 accumulation, 8 rows x 8 output channels per
/// tile: rows `rows` and panels `panels` of `out = act(in . W + bias) (+ residual)` (the contract
/// and layout of [`crate::pointwise::PointwiseHalfFn`] with `nr = 8`, `kpack = 2`, bf16 weights).
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`]: NEON and FEAT_BF16 are available;
/// `bias` (`[panels * 8]` f32) and `weights` (per panel `[ceil(k / 2)][8][2]` bf16 bits, zero past
/// K) were packed for `g.k` and `g.n`; `input` is valid for reads of `g.p * g.k` floats, `output`
/// for writes of `g.p * g.n` floats, `residual` (when not null) for reads of `g.p * g.n` floats;
/// neither input nor residual aliases `output`; no other thread writes the block at the same time.
/// (The ranges and the packed lengths are checked here.)
pub(crate) unsafe fn pointwise_bf16_8x8_neonbf16(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    // SAFETY: FEAT_BF16 and the pointer validity are this function's contract, which is `run`'s
    // whole contract (`run` checks the ranges and the packed lengths itself).
    unsafe { with_act!(b.geom.act, |A| run::<A>(b)) }
}

/// The loop nest for activation code `ACT` ([`run_panels`] with this kernel's tiles).
///
/// # Safety
/// As [`pointwise_bf16_8x8_neonbf16`].
#[target_feature(enable = "neon,bf16")]
unsafe fn run<const ACT: u8>(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    // SAFETY: this function's contract is `run_panels`'s with `Tiles` (panels of 8 channels),
    // and `Tiles::tile` needs the features this function is compiled with.
    unsafe { run_panels::<Tiles, 2, ACT>(b) }
}

/// This kernel's tiles (weights per panel `[ceil(k / 2)][NR][2]` bf16 bits).
struct Tiles;

impl HalfTile<2> for Tiles {
    fn panel_len(k: usize) -> usize {
        NR * KPACK * k.div_ceil(KPACK)
    }

    #[target_feature(enable = "neon,bf16")]
    unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_, 2>, r: usize) {
        // SAFETY: `HalfTile::tile`'s contract is `tile`'s.
        unsafe { tile::<ACT, M>(t, r) }
    }
}

/// One pair of input channels (`L`, a pair of `a`) of a tile: `acc[i] += b . a[i][pair L]` for the
/// two weight registers `b` loaded from `w[0..16]` (channels 0..4 and 4..8, two halves each).
///
/// # Safety
/// FEAT_BF16 is available; `w` is valid for reads of 16 halves.
#[inline]
#[target_feature(enable = "neon,bf16")]
unsafe fn pair<const L: u32, const M: usize>(
    acc: &mut [[float32x4_t; 2]; M],
    a: &[uint16x8_t; M],
    w: *const u16,
) {
    // SAFETY: FEAT_BF16 is available and `w` is valid for 16 reads (this function's contract).
    unsafe {
        let b0 = vld1q_u16(w);
        let b1 = vld1q_u16(w.add(8));
        for (c, &x) in acc.iter_mut().zip(a) {
            c[0] = bfdot_lane::<L>(c[0], b0, x);
            c[1] = bfdot_lane::<L>(c[1], b1, x);
        }
    }
}

/// Rows `r..r + M` of one panel: all of K, then bias, activation, residual, store of the valid
/// columns.
///
/// # Safety
/// FEAT_BF16 is available; `t.input` is valid for reads of rows `r..r + M` (`k` floats each),
/// `t.output` for writes and `t.residual` (if any) for reads of those rows (`n` floats each);
/// `t.w.len() == NR * 2 * ceil(t.k / 2)`; `t.j0 + t.cols <= t.n` and `1 <= t.cols <= NR`.
#[inline(always)]
unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_, 2>, r: usize) {
    let (k, n) = (t.k, t.n);
    let step = NR * KPACK;
    debug_assert!(
        t.w.len() == step * k.div_ceil(KPACK) && t.j0 + t.cols <= n && (1..=NR).contains(&t.cols)
    );
    let w = t.w.as_ptr();
    // SAFETY: FEAT_BF16 is available (contract). Weight reads: pair q's 16 halves at
    // step * q..step * (q + 1), q < ceil(k / 2), inside `t.w`. Input reads are at
    // (r + i) * k + kk..+8 with kk + 8 <= k, or the one or two floats at (r + i) * k + kk.. below
    // (r + i) * k + k: inside row r + i.
    let acc = unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; M];
        let a = t.input.add(r * k);
        let mut wk = w;
        let mut kk = 0;
        while kk + 8 <= k {
            let mut av = [vdupq_n_u16(0); M];
            for (i, x) in av.iter_mut().enumerate() {
                let p = a.add(i * k + kk);
                *x = f32x4_to_bf16_hi(f32x4_to_bf16_lo(vld1q_f32(p)), vld1q_f32(p.add(4)));
            }
            pair::<0, M>(&mut acc, &av, wk);
            pair::<1, M>(&mut acc, &av, wk.add(step));
            pair::<2, M>(&mut acc, &av, wk.add(2 * step));
            pair::<3, M>(&mut acc, &av, wk.add(3 * step));
            wk = wk.add(4 * step);
            kk += 8;
        }
        while kk < k {
            let two = k - kk >= 2;
            let mut av = [vdupq_n_u16(0); M];
            for (i, x) in av.iter_mut().enumerate() {
                let p = a.add(i * k + kk);
                let pairf = [*p, if two { *p.add(1) } else { 0.0 }, 0.0, 0.0];
                *x = f32x4_to_bf16_lo(vld1q_f32(pairf.as_ptr()));
            }
            pair::<0, M>(&mut acc, &av, wk);
            wk = wk.add(step);
            kk += 2;
        }
        acc
    };
    for (i, c) in acc.iter().enumerate() {
        // Offset of (row r + i, column j0): its columns j0..j0 + cols are inside the row.
        let o = (r + i) * n + t.j0;
        // SAFETY: NEON is available; row r + i of the output (and of the residual) is valid
        // (contract) and columns j0..j0 + cols <= n lie inside it.
        unsafe {
            store_row::<ACT, 2>(
                *c,
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
        name: "pointwise_bf16_8x8_neonbf16",
        f: pointwise_bf16_8x8_neonbf16,
        nr: NR,
        kpack: KPACK,
        half: Half::Bf16,
    };

    t::kernel_tests!(SPEC);
}
