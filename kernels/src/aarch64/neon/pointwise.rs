//! Pointwise (1x1 convolution) GEMM block on NEON: micro-tiles of 8 rows (pixels) x 8 output
//! channels (one packed panel, two q registers), with the fused epilogue applied in registers.
//!
//! Register budget (32 q registers): 16 accumulators (8 rows x 2), 8 registers of A (4 input
//! channels of each row, one `vld1q_f32` per row) and 2 of B per input channel, broadcast lane by
//! lane with `vfmaq_laneq_f32`: 26 live registers, no spills. Per 4 input channels the tile does 64
//! FMAs for 8 A loads and 8 B loads, and its 16 independent accumulator chains cover the FMA latency
//! (4 cycles, 2 pipes: 8 needed) on in-order and out-of-order cores alike. Wider tiles (6x16, 8x12)
//! need 24 accumulators plus 6-8 A and 3-4 B registers, more than 32.
//!
//! Loop nest: panels outer (a panel's `[8 biases][k x 8 weights]`, 32 bytes per input channel, stays
//! in L1 while every row tile of the block streams past it), row tiles inner. K is not blocked: a
//! panel of a mobile CNN's pointwise layer (k up to about 1000) fits in L1, and the 8 input rows of
//! a tile are read once per panel.
//!
//! Tails: rows past the last multiple of 8 take one tile of 1 to 7 rows (a const-generic
//! instantiation each); input channels past the last multiple of 4 are done one at a time
//! (`vfmaq_n_f32`); a last panel narrower than 8 channels (its packed weights and biases are zero
//! there) is computed in full and only its valid columns are stored, through a stack buffer, and only
//! those of the residual read.
//!
//! Every output element is computed by the operations and order of the portable scalar kernel
//! (bias, one fused multiply-add per input channel in ascending order, the activation of
//! [`super::act`], which equals the scalar one bit for bit, then the residual added in f32), whatever
//! the tile: results equal the scalar kernel's bit for bit and do not depend on how the rows are
//! split into blocks (the tests check both).

use core::arch::aarch64::*;

use super::act::{self, with_act};
use crate::ukernel::PointwiseBlock;

/// Rows per micro-tile.
const MR: usize = 8;
/// Output channels per packed panel (two q registers).
const NR: usize = 8;

/// Pointwise block kernel, NEON, 8 rows x 8 output channels per tile (panel width 8): rows `rows`
/// and panels `panels` of `out = act(in . W + bias) (+ residual)`.
///
/// # Safety
/// The contract of [`crate::ukernel::PointwiseFn`]: NEON is available; `packed` was packed with
/// panel width 8 for `g.k` and `g.n`; `input` is valid for reads of `g.p * g.k` floats, `output`
/// for writes of `g.p * g.n` floats, `residual` (when not null) for reads of `g.p * g.n` floats and
/// does not alias `output`; no other thread writes the block at the same time. (The ranges and the
/// length of `packed` are checked here.)
pub(crate) unsafe fn pointwise_8x8_neon(b: PointwiseBlock<'_, &[f32]>) {
    // SAFETY: NEON and the pointer validity are this function's contract, which is `run`'s whole
    // contract (`run` checks the ranges and the packed length itself).
    unsafe { with_act!(b.geom.act, |A| run::<A>(b)) }
}

/// What a micro-tile needs to know of its panel.
struct Panel<'a> {
    /// Input `[p][k]`, row-major.
    input: *const f32,
    /// The panel's packed data: `[NR biases][k x NR weights]`.
    w: &'a [f32],
    /// Residual `[p][n]`, when there is one.
    residual: Option<*const f32>,
    /// Output `[p][n]`.
    output: *mut f32,
    k: usize,
    n: usize,
    /// First output channel of the panel.
    j0: usize,
    /// Valid output channels of the panel: `min(NR, n - j0)`, at least 1.
    cols: usize,
}

/// The loop nest for activation code `ACT`: panels, then tiles of 8 rows and one tile of the rest.
///
/// # Safety
/// As [`pointwise_8x8_neon`].
#[target_feature(enable = "neon")]
unsafe fn run<const ACT: u8>(b: PointwiseBlock<'_, &[f32]>) {
    // Makes every index below provably in range given only the validity of the pointers.
    b.check_f32(NR);
    let (input, output, packed, rows) = (b.input, b.output, b.packed, &b.rows);
    let (k, n) = (b.geom.k, b.geom.n);
    let stride = NR * (k + 1);
    let residual = (!b.residual.is_null()).then_some(b.residual);
    for panel in b.panels.clone() {
        let j0 = panel * NR;
        let t = Panel {
            input,
            w: &packed[panel * stride..(panel + 1) * stride],
            residual,
            output,
            k,
            n,
            j0,
            cols: NR.min(n - j0),
        };
        let mut r = rows.start;
        while r + MR <= rows.end {
            // SAFETY: NEON and the pointer validity are this function's contract; `t.w` holds
            // exactly NR * (k + 1) floats; j0 < n (panel < ceil(n / NR)) and cols =
            // min(NR, n - j0); rows r..r + MR lie in rows.start..rows.end, within 0..p (both
            // checked above).
            unsafe { tile::<ACT, MR>(&t, r) };
            r += MR;
        }
        // SAFETY: as for the loop above; each arm's M equals rows.end - r (0 to 7), so its rows
        // r..rows.end lie within 0..p.
        unsafe {
            match rows.end - r {
                0 => {}
                1 => tile::<ACT, 1>(&t, r),
                2 => tile::<ACT, 2>(&t, r),
                3 => tile::<ACT, 3>(&t, r),
                4 => tile::<ACT, 4>(&t, r),
                5 => tile::<ACT, 5>(&t, r),
                6 => tile::<ACT, 6>(&t, r),
                _ => tile::<ACT, 7>(&t, r),
            }
        }
    }
}

/// The 8 weights of one input channel, as 2 registers.
///
/// # Safety
/// NEON must be available; `w` is valid for reads of 8 floats.
#[inline(always)]
unsafe fn weights(w: *const f32) -> [float32x4_t; 2] {
    // SAFETY: NEON is available and `w` is valid for 8 reads (this function's contract).
    unsafe { [vld1q_f32(w), vld1q_f32(w.add(4))] }
}

/// One input channel (`L`, a lane of `a`) of a tile: `acc[i] += b * a[i][L]` for the 2 weight
/// registers `b`.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
unsafe fn lane<const L: i32, const M: usize>(
    acc: &mut [[float32x4_t; 2]; M],
    a: &[float32x4_t; M],
    b: [float32x4_t; 2],
) {
    for (c, &x) in acc.iter_mut().zip(a) {
        // SAFETY: NEON is available (this function's contract).
        unsafe {
            c[0] = vfmaq_laneq_f32::<L>(c[0], b[0], x);
            c[1] = vfmaq_laneq_f32::<L>(c[1], b[1], x);
        }
    }
}

/// Rows `r..r + M` of one panel: bias, all of K, activation, residual, store of the valid columns.
///
/// # Safety
/// NEON must be available; `t.input` is valid for reads of rows `r..r + M` (`k` floats each),
/// `t.output` for writes and `t.residual` (if any) for reads of those rows (`n` floats each);
/// `t.w.len() == NR * (t.k + 1)`; `t.j0 + t.cols <= t.n` and `1 <= t.cols <= NR`.
#[target_feature(enable = "neon")]
unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_>, r: usize) {
    let (k, n) = (t.k, t.n);
    debug_assert!(t.w.len() == NR * (k + 1) && t.j0 + t.cols <= n && (1..=NR).contains(&t.cols));
    let w = t.w.as_ptr();
    // SAFETY: NEON is available (contract). Reads of `w` stay below w + NR * (k + 1) (biases at
    // 0..NR, input channel kk's weights at NR * (kk + 1)..NR * (kk + 2), kk < k). Input reads are
    // at (r + i) * k + kk..+4 with kk + 4 <= k, or at (r + i) * k + kk with kk < k: inside row
    // r + i, which the contract makes readable.
    let mut acc = unsafe {
        let bias = [vld1q_f32(w), vld1q_f32(w.add(4))];
        let mut acc = [bias; M];
        let a = t.input.add(r * k);
        let mut wk = w.add(NR);
        let mut kk = 0;
        while kk + 4 <= k {
            let mut av = [vdupq_n_f32(0.0); M];
            for (i, x) in av.iter_mut().enumerate() {
                *x = vld1q_f32(a.add(i * k + kk));
            }
            // Each input channel's weights are loaded one channel ahead of their multiply-adds, so
            // an in-order core (Cortex-A55) does 16 FMAs while the next load completes instead of
            // waiting for it at every channel (llvm-mca: results/neon-estimate/kernels.md).
            let b0 = weights(wk);
            let b1 = weights(wk.add(NR));
            lane::<0, M>(&mut acc, &av, b0);
            let b2 = weights(wk.add(2 * NR));
            lane::<1, M>(&mut acc, &av, b1);
            let b3 = weights(wk.add(3 * NR));
            lane::<2, M>(&mut acc, &av, b2);
            lane::<3, M>(&mut acc, &av, b3);
            wk = wk.add(4 * NR);
            kk += 4;
        }
        while kk < k {
            let b0 = vld1q_f32(wk);
            let b1 = vld1q_f32(wk.add(4));
            for (i, c) in acc.iter_mut().enumerate() {
                let x = *a.add(i * k + kk);
                c[0] = vfmaq_n_f32(c[0], b0, x);
                c[1] = vfmaq_n_f32(c[1], b1, x);
            }
            wk = wk.add(NR);
            kk += 1;
        }
        acc
    };
    for c in acc.iter_mut() {
        // SAFETY: NEON is available (contract).
        unsafe {
            c[0] = act::apply::<ACT>(c[0]);
            c[1] = act::apply::<ACT>(c[1]);
        }
    }
    for (i, c) in acc.iter().enumerate() {
        // Offset of (row r + i, column j0): its columns j0..j0 + cols are inside the row.
        let o = (r + i) * n + t.j0;
        // SAFETY: NEON is available; row r + i of the output (and of the residual) is valid
        // (contract) and columns j0..j0 + cols <= n lie inside it; with cols == NR the vector
        // accesses cover exactly o..o + 8, otherwise only the valid columns are touched.
        unsafe {
            let out = t.output.add(o);
            if t.cols == NR {
                let (mut y0, mut y1) = (c[0], c[1]);
                if let Some(res) = t.residual {
                    let q = res.add(o);
                    y0 = vaddq_f32(y0, vld1q_f32(q));
                    y1 = vaddq_f32(y1, vld1q_f32(q.add(4)));
                }
                vst1q_f32(out, y0);
                vst1q_f32(out.add(4), y1);
            } else {
                let mut buf = [0.0f32; NR];
                vst1q_f32(buf.as_mut_ptr(), c[0]);
                vst1q_f32(buf.as_mut_ptr().add(4), c[1]);
                for (jj, &y) in buf.iter().enumerate().take(t.cols) {
                    let y = match t.residual {
                        Some(res) => y + *res.add(o + jj),
                        None => y,
                    };
                    *out.add(jj) = y;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::pointwise::{PackedPointwise, PointwiseGeom};
    use crate::reference::blocks::{BlockRunner, Operands, same_bits};
    use crate::registry::{self, Op};
    use crate::scalar::pointwise::pointwise_4x8_scalar;
    use crate::{Isa, Kernels};

    use crate::reference::rand_vec;

    /// Weights packed for panel width 8 (the scalar and the NEON kernel share the layout).
    fn pack(k: usize, n: usize, w: &[f32], b: Option<&[f32]>) -> PackedPointwise {
        let kernel = registry::find(Op::Pointwise, Isa::Neon).unwrap();
        let packed = PackedPointwise::pack_for(kernel, k, n, w, b).unwrap();
        assert_eq!(packed.nr(), NR);
        packed
    }

    /// A runner of the problem `g` (panel width 8) on the input `x` and residual `res`.
    fn runner<'a>(g: &'a PointwiseGeom, x: &'a [f32], res: Option<&'a [f32]>) -> BlockRunner<'a> {
        BlockRunner { g, x, res, nr: NR }
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    fn check(p: usize, k: usize, n: usize, act: Activation, residual: bool) {
        let g = PointwiseGeom { p, k, n, act };
        let ops = Operands::random(&g, residual);
        let Operands { x, w, b, res } = &ops;
        let packed = pack(k, n, w, Some(b));
        let panels = n.div_ceil(NR);
        let what = format!("p{p} k{k} n{n} {} res={residual}", act.name());
        let run = runner(&g, x, res.as_deref());
        // SAFETY: NEON is part of the aarch64 baseline (asserted by the tests of `crate::aarch64`)
        // and the scalar kernel needs no feature; `packed` was packed for panel width 8, which both
        // kernels share, with g.k and g.n.
        let (got, scalar) = unsafe {
            (
                run.run(pointwise_8x8_neon, packed.data(), 0..p, 0..panels, &what),
                run.run(pointwise_4x8_scalar, packed.data(), 0..p, 0..panels, &what),
            )
        };
        assert!(
            same(&got, &scalar),
            "{what}: differs from the scalar kernel"
        );
        ops.assert_near_reference(&g, &got, &what);
        // SAFETY: as above.
        unsafe { run.check_sub_blocks(pointwise_8x8_neon, packed.data(), &got, same_bits, &what) };
    }

    #[test]
    fn equals_the_scalar_kernel_on_every_edge_class() {
        for p in [1, 2, 3, 7, 8, 9, 15, 16, 17, 23] {
            for k in [1, 2, 3, 4, 5, 8, 11] {
                for n in [1, 3, 4, 7, 8, 9, 13, 16, 17] {
                    check(p, k, n, Activation::Identity, p % 2 == 1);
                }
            }
        }
    }

    #[test]
    fn every_activation_and_residual() {
        for act in Activation::ALL {
            for residual in [false, true] {
                for (p, k, n) in [(13, 19, 37), (8, 64, 16), (5, 113, 12), (24, 7, 7)] {
                    check(p, k, n, act, residual);
                }
            }
        }
    }

    #[test]
    fn nan_and_inf_inputs_propagate_as_in_the_scalar_kernel() {
        let (p, k, n) = (9, 10, 11);
        let mut x = rand_vec(7, p * k, 2.0);
        x[3] = f32::NAN;
        x[25] = f32::INFINITY;
        x[60] = f32::NEG_INFINITY;
        let w = rand_vec(8, n * k, 1.0);
        let packed = pack(k, n, &w, None);
        for act in Activation::ALL {
            let g = PointwiseGeom { p, k, n, act };
            let panels = n.div_ceil(NR);
            let run = runner(&g, &x, None);
            // SAFETY: as in `check`.
            let (a, b) = unsafe {
                (
                    run.run(pointwise_8x8_neon, packed.data(), 0..p, 0..panels, "neon"),
                    run.run(
                        pointwise_4x8_scalar,
                        packed.data(),
                        0..p,
                        0..panels,
                        "scalar",
                    ),
                )
            };
            assert!(same(&a, &b), "{}", act.name());
        }
    }

    #[test]
    fn dispatch_takes_this_kernel_on_neon() {
        let k = Kernels::with_isa(Isa::Neon).unwrap();
        let packed = PackedPointwise::pack(k.isa(), 2, 1, &[1.0, -1.0], Some(&[0.5])).unwrap();
        assert_eq!(packed.kernel().name, "pointwise_8x8_neon");
        let mut out = [0.0f32; 2];
        packed
            .run_slices(
                &k,
                2,
                &[3.0, 1.0, 1.0, 3.0],
                &mut out,
                Activation::Relu,
                None,
            )
            .unwrap();
        assert_eq!(out, [2.5, 0.0]);
    }
}
