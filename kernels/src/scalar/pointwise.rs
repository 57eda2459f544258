//! Portable pointwise GEMM block: 4 rows x 8 columns of accumulators, plain Rust.

use std::ops::Range;

use crate::pointwise::PointwiseGeom;

const MR: usize = 4;
const NR: usize = 8;

/// Portable pointwise block kernel (panel width 8).
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseFn`] (this kernel needs no CPU feature).
pub(crate) unsafe fn pointwise_4x8_scalar(
    g: &PointwiseGeom,
    input: *const f32,
    packed: &[f32],
    residual: *const f32,
    output: *mut f32,
    rows: Range<usize>,
    panels: Range<usize>,
) {
    let (k, n) = (g.k, g.n);
    // SAFETY: the caller guarantees `input` is valid for `p * k` reads.
    let input = unsafe { std::slice::from_raw_parts(input, g.p * k) };
    let residual = if residual.is_null() {
        None
    } else {
        // SAFETY: when not null, the caller guarantees `p * n` readable floats that do not alias `output`.
        Some(unsafe { std::slice::from_raw_parts(residual, g.p * n) })
    };
    for panel in panels {
        let b = &packed[panel * NR * (k + 1)..(panel + 1) * NR * (k + 1)];
        let (bias, w) = b.split_at(NR);
        let j0 = panel * NR;
        let cols = NR.min(n - j0);
        let mut r = rows.start;
        while r < rows.end {
            let mr = MR.min(rows.end - r);
            let mut acc = [[0.0f32; NR]; MR];
            for (i, row) in acc.iter_mut().enumerate().take(mr) {
                *row = bias.try_into().expect("panel of NR biases");
                let a = &input[(r + i) * k..(r + i + 1) * k];
                for (&x, wr) in a.iter().zip(w.chunks_exact(NR)) {
                    for (acc, &wv) in row.iter_mut().zip(wr) {
                        *acc = x.mul_add(wv, *acc);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate().take(mr) {
                let o = (r + i) * n + j0;
                for (jj, &v) in row.iter().enumerate().take(cols) {
                    let mut y = g.act.apply(v);
                    if let Some(res) = residual {
                        y += res[o + jj];
                    }
                    // SAFETY: row r + i < p and column j0 + jj < n lie inside the `p * n` output,
                    // in this call's block, which no other thread writes.
                    unsafe { *output.add(o + jj) = y };
                }
            }
            r += mr;
        }
    }
}
