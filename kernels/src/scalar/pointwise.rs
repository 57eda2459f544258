//! Portable pointwise GEMM block: 4 rows x 8 columns of accumulators, plain Rust.

use crate::ukernel::{HalfPacked, PointwiseBlock, PointwiseGeom};

const MR: usize = 4;
const NR: usize = 8;

/// Portable pointwise block kernel (panel width 8).
///
/// # Safety
/// The contract of [`crate::ukernel::PointwiseFn`] (this kernel needs no CPU feature).
pub(crate) unsafe fn pointwise_4x8_scalar(b: PointwiseBlock<'_, &[f32]>) {
    b.check_f32(NR);
    let k = b.geom.k;
    // SAFETY: the caller's contract.
    let (input, residual) = unsafe { operands(&b) };
    let row_sums = |panel: usize, r: usize| {
        let pw = &b.packed[panel * NR * (k + 1)..(panel + 1) * NR * (k + 1)];
        let (bias, w) = pw.split_at(NR);
        let mut row: [f32; NR] = bias.try_into().expect("panel of NR biases");
        for (&x, wr) in input[r * k..(r + 1) * k].iter().zip(w.chunks_exact(NR)) {
            for (acc, &wv) in row.iter_mut().zip(wr) {
                *acc = x.mul_add(wv, *acc);
            }
        }
        row
    };
    // SAFETY: the caller's contract.
    unsafe { tiles(&b, residual, row_sums) }
}

/// Panel width of [`pointwise_bf16_4x8_scalar`].
pub(crate) const BF16_NR: usize = 8;

/// A zero of `x`'s sign when `x` is subnormal, else `x`: the DAZ / FTZ of `vdpbf16ps`.
#[inline]
fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// One step of `vdpbf16ps` on one lane: `acc + a * b` with one rounding, denormal inputs read as
/// zero and a denormal result flushed to zero (Intel SDM, "VDPBF16PS": "FP32 FMA with DAZ, FTZ,
/// RNE"). `a` and `b` are bf16 values, whose product (8 x 8 significant bits) is exact in f32
/// unless it falls below the normal range (|a b| < 2^-126, where this rounds it first): so a plain
/// multiply and add is the fused operation, without the software `fmaf` that `mul_add` becomes
/// on a target without FMA.
#[inline]
pub(crate) fn dpbf16_step(acc: f32, a: f32, b: f32) -> f32 {
    flush(flush(a) * flush(b) + flush(acc))
}

/// Portable bf16 pointwise block kernel (panel width 8, K-pairs): a bit-exact model of the
/// AVX-512 BF16 kernel. Inputs are rounded to bf16 ([`crate::convert::bf16_from_f32`]); each
/// K-pair is accumulated as `vdpbf16ps` does, the odd channel's product first, then the even one's
/// ([`dpbf16_step`]); the accumulator starts at the bias; the epilogue is the f32 one.
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`] with `HalfTile { nr: 8, kpack: 2,
/// dtype: Bf16 }` (this kernel needs no CPU feature).
pub(crate) unsafe fn pointwise_bf16_4x8_scalar(b: PointwiseBlock<'_, HalfPacked<'_>>) {
    use crate::convert::{bf16_from_f32, bf16_to_f32};
    const NR: usize = BF16_NR;
    let (k, rows, HalfPacked { bias, weights }) = (b.geom.k, &b.rows, b.packed);
    let kp = k.div_ceil(2);
    let panel_len = kp * NR * 2;
    b.check_half(NR, panel_len);
    // SAFETY: the caller's contract.
    let (input, residual) = unsafe { operands(&b) };
    // The block's input rows rounded to bf16 once, K padded to even with a zero (as the kernels
    // do).
    let mut a = vec![0.0f32; rows.len() * 2 * kp];
    for (i, dst) in a.chunks_exact_mut(2 * kp).enumerate() {
        let r = rows.start + i;
        for (d, &x) in dst.iter_mut().zip(&input[r * k..(r + 1) * k]) {
            *d = bf16_to_f32(bf16_from_f32(x));
        }
    }
    let row_sums = |panel: usize, r: usize| {
        let w = &weights[panel * panel_len..(panel + 1) * panel_len];
        let mut row: [f32; NR] = bias[panel * NR..(panel + 1) * NR]
            .try_into()
            .expect("panel of NR biases");
        let x = &a[(r - rows.start) * 2 * kp..(r - rows.start + 1) * 2 * kp];
        for (pair, wp) in x.chunks_exact(2).zip(w.chunks_exact(2 * NR)) {
            for (jj, acc) in row.iter_mut().enumerate() {
                let (w0, w1) = (bf16_to_f32(wp[2 * jj]), bf16_to_f32(wp[2 * jj + 1]));
                *acc = dpbf16_step(*acc, pair[1], w1);
                *acc = dpbf16_step(*acc, pair[0], w0);
            }
        }
        row
    };
    // SAFETY: the caller's contract.
    unsafe { tiles(&b, residual, row_sums) }
}

/// The loop nest of both kernels: per panel of the block, tiles of up to [`MR`] rows, output row
/// `r` of panel `panel` holding `row_sums(panel, r)` (the panel's `NR` sums, bias included), then
/// the epilogue ([`store`]) of the tile.
///
/// # Safety
/// The kernels' contract for `b`'s output, rows and panels; `residual` holds `b`'s `p * n`
/// residual when there is one.
unsafe fn tiles<W>(
    b: &PointwiseBlock<'_, W>,
    residual: Option<&[f32]>,
    row_sums: impl Fn(usize, usize) -> [f32; NR],
) {
    let (rows, n) = (&b.rows, b.geom.n);
    for panel in b.panels.clone() {
        let j0 = panel * NR;
        let cols = NR.min(n - j0);
        let mut r = rows.start;
        while r < rows.end {
            let mr = MR.min(rows.end - r);
            let mut acc = [[0.0f32; NR]; MR];
            for (i, row) in acc.iter_mut().enumerate().take(mr) {
                *row = row_sums(panel, r + i);
            }
            // SAFETY: rows r..r + mr < p and columns j0..j0 + cols <= n of the output are this
            // call's block (the caller's contract).
            unsafe { store(b.geom, &acc[..mr], residual, b.output, r * n + j0, cols) };
            r += mr;
        }
    }
}

/// The input (`p * k` floats) and the residual (`p * n` floats, `None` when null) of a block's
/// call, as slices.
///
/// # Safety
/// As the kernels' contract: `input` is valid for `p * k` reads, and `residual`, when not null,
/// for `p * n` reads; neither aliases the output.
unsafe fn operands<'a, W>(b: &PointwiseBlock<'a, W>) -> (&'a [f32], Option<&'a [f32]>) {
    let g = b.geom;
    // SAFETY: this function's contract.
    unsafe {
        (
            std::slice::from_raw_parts(b.input, g.p * g.k),
            (!b.residual.is_null()).then(|| std::slice::from_raw_parts(b.residual, g.p * g.n)),
        )
    }
}

/// The epilogue of a tile: row `i` of `acc` is output row `i` from offset `o` on (rows `g.n`
/// apart): activation, then the residual, stored for its first `cols` columns.
///
/// # Safety
/// Those rows and columns lie inside the `p * n` output, in the caller's block, which no other
/// thread writes; `residual` (when some) holds the `p * n` residual.
unsafe fn store(
    g: &PointwiseGeom,
    acc: &[[f32; NR]],
    residual: Option<&[f32]>,
    output: *mut f32,
    o: usize,
    cols: usize,
) {
    for (i, row) in acc.iter().enumerate() {
        let o = o + i * g.n;
        for (jj, &v) in row.iter().enumerate().take(cols) {
            let mut y = g.act.apply(v);
            if let Some(res) = residual {
                y += res[o + jj];
            }
            // SAFETY: row i, column jj of the tile lies in the caller's block (contract).
            unsafe { *output.add(o + jj) = y };
        }
    }
}
