//! Pointwise GEMM block on the portable tier: 4 rows x 8 columns of accumulators (two `f32x4` per
//! row, 8 of the 16 128-bit registers of SSE2 or simd128, with the panel's two weight registers and
//! a broadcast input beside them), over the panels packed with `nr = 8` as the scalar kernel's.
//!
//! Every output is the bias, then one multiply-add per input channel in ascending order
//! ([`super`] says when it is fused), then the activation, then the residual added in f32, whatever
//! the tile or block: results do not depend on how a call is split.

use wide::f32x4;

use crate::activation::with_act;
use crate::ukernel::PointwiseBlock;

/// Rows per full tile.
const MR: usize = 4;
/// Panel width (output channels per packed panel).
pub(crate) const NR: usize = 8;

/// `M` rows of one panel from row `r`: `acc[i]` = bias + sum over kk of `in[r + i][kk] * w[kk]`.
///
/// # Safety
/// `a` is valid for reads of rows `0..M` of `k` floats, `k` floats apart; `panel` holds `NR`
/// biases then `k * NR` weights.
#[inline(always)]
unsafe fn tile<const M: usize>(a: *const f32, k: usize, panel: &[f32]) -> [[f32x4; 2]; M] {
    let (bias, w) = panel.split_at(NR);
    let b0 = f32x4::from(<[f32; 4]>::try_from(&bias[..4]).expect("4 biases"));
    let b1 = f32x4::from(<[f32; 4]>::try_from(&bias[4..NR]).expect("4 biases"));
    let mut acc = [[b0, b1]; M];
    for (kk, wr) in w.chunks_exact(NR).take(k).enumerate() {
        let w0 = f32x4::from(<[f32; 4]>::try_from(&wr[..4]).expect("4 weights"));
        let w1 = f32x4::from(<[f32; 4]>::try_from(&wr[4..]).expect("4 weights"));
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row i < M and channel kk < k are inside the rows the caller guarantees.
            let x = f32x4::splat(unsafe { *a.add(i * k + kk) });
            acc[0] = x.mul_add(w0, acc[0]);
            acc[1] = x.mul_add(w1, acc[1]);
        }
    }
    acc
}

/// Activation, residual and store of `M` tile rows at (row `r`, column `j0`), `cols <= NR` columns.
///
/// # Safety
/// `output` (and `residual` when not null) valid for the tile's `M` rows of `n` floats from
/// `r * n + j0`, `cols` of them each; nothing else writes them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn store<const M: usize, const ACT: u8>(
    acc: [[f32x4; 2]; M],
    output: *mut f32,
    residual: *const f32,
    r: usize,
    n: usize,
    j0: usize,
    cols: usize,
) {
    for (i, acc) in acc.iter().enumerate() {
        let mut y = [0.0f32; NR];
        y[..4].copy_from_slice(&super::act::<ACT>(acc[0]).to_array());
        y[4..].copy_from_slice(&super::act::<ACT>(acc[1]).to_array());
        let o = (r + i) * n + j0;
        for (jj, &v) in y.iter().enumerate().take(cols) {
            let v = if residual.is_null() {
                v
            } else {
                // SAFETY: inside the tile's residual row (contract).
                v + unsafe { *residual.add(o + jj) }
            };
            // SAFETY: inside the tile's output row (contract).
            unsafe { *output.add(o + jj) = v };
        }
    }
}

/// The block for one activation code.
///
/// # Safety
/// As [`pointwise_4x8_portable`].
#[inline(always)]
unsafe fn block<const ACT: u8>(b: PointwiseBlock<'_, &[f32]>) {
    let (input, output, residual, rows) = (b.input, b.output, b.residual, &b.rows);
    let (k, n) = (b.geom.k, b.geom.n);
    for panel in b.panels.clone() {
        let pw = &b.packed[panel * NR * (k + 1)..(panel + 1) * NR * (k + 1)];
        let j0 = panel * NR;
        let cols = NR.min(n - j0);
        let mut r = rows.start;
        // SAFETY: (whole loop) rows r..r + M lie in `rows`, inside the p rows of the input, output
        // and residual the caller guarantees, in this call's block.
        unsafe {
            while r + MR <= rows.end {
                let acc = tile::<MR>(input.add(r * k), k, pw);
                store::<MR, ACT>(acc, output, residual, r, n, j0, cols);
                r += MR;
            }
            let rest = input.add(r * k);
            match rows.end - r {
                3 => store::<3, ACT>(tile(rest, k, pw), output, residual, r, n, j0, cols),
                2 => store::<2, ACT>(tile(rest, k, pw), output, residual, r, n, j0, cols),
                1 => store::<1, ACT>(tile(rest, k, pw), output, residual, r, n, j0, cols),
                _ => {}
            }
        }
    }
}

/// Portable pointwise block kernel (panel width 8; [`crate::ukernel::PointwiseFn`]).
///
/// # Safety
/// The contract of [`crate::ukernel::PointwiseFn`] (this kernel needs no CPU feature).
pub(crate) unsafe fn pointwise_4x8_portable(b: PointwiseBlock<'_, &[f32]>) {
    // SAFETY: the caller upholds the `PointwiseFn` contract, which is `block`'s.
    unsafe { with_act!(b.geom.act, |A| block::<A>(b)) }
}
