//! Pointwise (1x1) convolution as a packed GEMM with a fused epilogue:
//! `out[P x N] = act(in[P x K] . W[K x N] + bias) (+ residual[P x N])` over NHWC activations
//! (P pixels, K input channels, N output channels).
//!
//! Weights are packed once, when a model is loaded, into panels of `nr` output channels, each laid
//! out as `[nr biases][K x nr weights]` (zero-padded past N), the form every micro-kernel streams.
//! The packed form remembers the kernel that packed it (ISA, precision, tile), not just the ISA.
//! Half-precision kernels ([`PointwiseHalfFn`]) keep activations between layers and biases in f32
//! and store weights as `u16` bit patterns in their own layout. The bf16 kernels (`vdpbf16ps`,
//! `bfdot`) accumulate in f32; the NEON f16 kernel (`fmla .8h`) accumulates in f16, as ncnn's and
//! XNNPACK's f16 GEMMs do, and widens to f32 for the epilogue (rounding model:
//! `kernels/src/aarch64/half_model.rs`; error bound against the f64 oracle: the header of
//! `kernels/src/aarch64/half_tests.rs`). A per-input-channel scale
//! (the excite half of squeeze-excite) is applied by [`PackedPointwise::scale_rows_into`], which
//! writes a per-call copy with row k scaled by `scale[k]`: `K x N` work instead of `P x K`.
//!
//! Work is split over output tiles (rows of pixels and panels of output channels, never K), and every
//! output element is computed by one kernel call in a fixed order, so the result is bitwise the same
//! for any thread count.

use std::ops::Range;

use aligned_vec::{AVec, ConstAlign};

use crate::activation::Activation;
use crate::convert;
use crate::error::{Error, Result};
use crate::registry::{self, KernelInfo, KernelKey, Op, PointwiseEntry};
use crate::tensor::SendPtr;
use crate::tensor::{ALIGN, AlignedBuf, Shape, Tensor, aligned_zeros};
use crate::ukernel::HalfTile;
pub use crate::ukernel::{HalfPacked, PointwiseBlock, PointwiseFn, PointwiseGeom, PointwiseHalfFn};
use crate::{Isa, Kernels, Precision};

/// The packed weights of one pointwise layer, in the layout of the kernel that packed them.
#[derive(Debug, Clone)]
enum Packing {
    /// f32: per panel `[nr biases][k x nr weights]`.
    F32 { f: PointwiseFn, data: AlignedBuf },
    /// Half precision ([`PointwiseHalfFn`] layout); `master` keeps the f32 weights in the same
    /// order, so a row scale (squeeze-excite) rounds `w * s` once instead of rounding twice.
    Half {
        f: PointwiseHalfFn,
        tile: HalfTile,
        bias: AlignedBuf,
        weights: AVec<u16, ConstAlign<ALIGN>>,
        master: AlignedBuf,
    },
}

/// Pointwise weights packed for one kernel (ISA, precision and tile).
///
/// ```
/// use mobile_cnn_kernels::{Activation, Kernels, PackedPointwise, Shape, Tensor};
/// let k = Kernels::new().unwrap();
/// // 2 input channels -> 3 output channels, PyTorch layout [n, k]: out = in0 + 2 * in1 + bias.
/// let w = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
/// let packed = PackedPointwise::pack(k.isa(), 2, 3, &w, Some(&[0.5, 0.0, -0.5])).unwrap();
/// let input = Tensor::from_slice(Shape::new(1, 1, 2, 2), &[1.0, 1.0, 2.0, 0.0]).unwrap();
/// let mut out = Tensor::zeros(Shape::new(1, 1, 2, 3)).unwrap();
/// packed.run(&k, &input, &mut out, Activation::Identity, None).unwrap();
/// assert_eq!(out.as_slice(), &[3.5, 3.0, 2.5, 2.5, 2.0, 1.5]);
/// ```
#[derive(Debug, Clone)]
pub struct PackedPointwise {
    kernel: &'static KernelInfo,
    nr: usize,
    k: usize,
    n: usize,
    packing: Packing,
}

impl PackedPointwise {
    /// Packs PyTorch-layout weights `[n, k]` (a `[n, k, 1, 1]` convolution weight) and an optional
    /// bias `[n]` for the f32 pointwise kernel of `isa`.
    pub fn pack(
        isa: Isa,
        k: usize,
        n: usize,
        weights_nk: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        Self::pack_for(registry::find(Op::Pointwise, isa)?, k, n, weights_nk, bias)
    }

    /// Packs for the pointwise kernel of `precision` on `isa` (weights rounded to the precision
    /// once, here). An error if no such kernel is registered or this CPU cannot run it.
    pub fn pack_precision(
        isa: Isa,
        precision: Precision,
        k: usize,
        n: usize,
        weights_nk: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        precision.check_on(isa, "the API")?;
        let kernel = registry::find_key(KernelKey {
            op: Op::Pointwise,
            dtype: precision,
            isa,
        })?;
        Self::pack_for(kernel, k, n, weights_nk, bias)
    }

    /// Packs for one particular registered pointwise kernel (tests and benchmarks use this to reach
    /// every kernel; [`PackedPointwise::pack`] takes the one dispatch uses).
    pub fn pack_for(
        kernel: &'static KernelInfo,
        k: usize,
        n: usize,
        weights_nk: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        let entry = kernel.pointwise_fn()?;
        if k == 0 || n == 0 {
            return Err(Error::shape(
                "pointwise weights",
                "k, n >= 1",
                format!("k={k} n={n}"),
            ));
        }
        if k.checked_mul(n) != Some(weights_nk.len()) {
            return Err(Error::shape(
                "pointwise weights [n, k]",
                format!("{n} x {k} elements"),
                weights_nk.len(),
            ));
        }
        if let Some(b) = bias
            && b.len() != n
        {
            return Err(Error::shape("pointwise bias [n]", n, b.len()));
        }
        let (nr, packing) = match entry {
            PointwiseEntry::F32(f, nr) => {
                let panels = n.div_ceil(nr);
                let stride = nr * (k + 1);
                let mut data = aligned_zeros(panels * stride);
                for j in 0..n {
                    let (panel, lane) = (j / nr, j % nr);
                    let base = panel * stride;
                    data[base + lane] = bias.map_or(0.0, |b| b[j]);
                    for kk in 0..k {
                        data[base + nr + kk * nr + lane] = weights_nk[j * k + kk];
                    }
                }
                (nr, Packing::F32 { f, data })
            }
            PointwiseEntry::Half(f, tile) => {
                let HalfTile { nr, dtype, .. } = tile;
                let panels = n.div_ceil(nr);
                let mut b = aligned_zeros(panels * nr);
                if let Some(bias) = bias {
                    b[..n].copy_from_slice(bias);
                }
                let mut master = aligned_zeros(panels * half_panel_len(tile, k));
                for j in 0..n {
                    for kk in 0..k {
                        master[half_index(tile, k, j, kk)] = weights_nk[j * k + kk];
                    }
                }
                let weights =
                    AVec::from_iter(ALIGN, master.iter().map(|&w| convert::to_bits(dtype, w)));
                (
                    nr,
                    Packing::Half {
                        f,
                        tile,
                        bias: b,
                        weights,
                        master,
                    },
                )
            }
        };
        Ok(PackedPointwise {
            kernel,
            nr,
            k,
            n,
            packing,
        })
    }

    /// The ISA the weights are packed for.
    pub fn isa(&self) -> Isa {
        self.kernel.isa
    }

    /// The precision of the packed weights.
    pub fn precision(&self) -> Precision {
        self.kernel.dtype()
    }

    /// The kernel that packed them and will run them.
    pub fn kernel(&self) -> &'static KernelInfo {
        self.kernel
    }

    /// Input channels.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Panel width (output channels per panel).
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// The packed f32 data: for an f32 kernel, per panel `[nr biases][k x nr weights]`; for a
    /// half-precision kernel, the biases `[panels * nr]` (the weights are [`Self::half_weights`]).
    pub fn data(&self) -> &[f32] {
        match &self.packing {
            Packing::F32 { data, .. } => data,
            Packing::Half { bias, .. } => bias,
        }
    }

    /// The half-precision weights (`u16` bit patterns in the [`PointwiseHalfFn`] layout), or
    /// `None` for an f32 kernel.
    pub fn half_weights(&self) -> Option<&[u16]> {
        match &self.packing {
            Packing::F32 { .. } => None,
            Packing::Half { weights, .. } => Some(weights),
        }
    }

    /// Writes into `dst` (same kernel and sizes, e.g. a clone kept as scratch) these weights with
    /// input channel `k` scaled by `scale[k]`; biases are copied unchanged. This is
    /// squeeze-excite's excite folded into the next pointwise convolution: `W' = diag(scale) W`.
    /// Half-precision weights are computed from the f32 weights and rounded once.
    pub fn scale_rows_into(&self, scale: &[f32], dst: &mut PackedPointwise) -> Result<()> {
        if scale.len() != self.k {
            return Err(Error::shape("pointwise row scale [k]", self.k, scale.len()));
        }
        if (dst.k, dst.n, dst.nr, dst.kernel.name) != (self.k, self.n, self.nr, self.kernel.name) {
            return Err(Error::shape(
                "pointwise scaled-weights destination",
                format!("k={} n={} packed for {}", self.k, self.n, self.kernel.name),
                format!("k={} n={} packed for {}", dst.k, dst.n, dst.kernel.name),
            ));
        }
        let nr = self.nr;
        match (&self.packing, &mut dst.packing) {
            (Packing::F32 { data: src, .. }, Packing::F32 { data: dst, .. }) => {
                for (src, out) in src
                    .chunks_exact(nr * (self.k + 1))
                    .zip(dst.chunks_exact_mut(nr * (self.k + 1)))
                {
                    out[..nr].copy_from_slice(&src[..nr]);
                    for ((s_row, d_row), &sc) in src[nr..]
                        .chunks_exact(nr)
                        .zip(out[nr..].chunks_exact_mut(nr))
                        .zip(scale)
                    {
                        for (d, &s) in d_row.iter_mut().zip(s_row) {
                            *d = s * sc;
                        }
                    }
                }
            }
            (
                Packing::Half {
                    tile,
                    bias: sb,
                    master,
                    ..
                },
                Packing::Half {
                    bias: db,
                    weights: dw,
                    ..
                },
            ) => {
                db.copy_from_slice(sb);
                let (kpack, dtype) = (tile.kpack, tile.dtype);
                // Per panel `[kp][nr][kpack]`: element i has input channel
                // (i / (nr * kpack)) * kpack + i % kpack within its panel.
                let panel = half_panel_len(*tile, self.k);
                for (src, out) in master.chunks_exact(panel).zip(dw.chunks_exact_mut(panel)) {
                    for (g, (s_grp, d_grp)) in src
                        .chunks_exact(nr * kpack)
                        .zip(out.chunks_exact_mut(nr * kpack))
                        .enumerate()
                    {
                        for (i, (&s, d)) in s_grp.iter().zip(d_grp).enumerate() {
                            let kk = g * kpack + i % kpack;
                            let sc = scale.get(kk).copied().unwrap_or(0.0);
                            *d = convert::to_bits(dtype, s * sc);
                        }
                    }
                }
            }
            _ => unreachable!("same kernel name, so the same packing"),
        }
        Ok(())
    }

    /// Runs on raw NHWC slices: `input` is `[p, k]`, `output` `[p, n]`, `residual` `[p, n]`.
    /// Uses `kernels`' thread count; the ISA must match the one the weights were packed for.
    pub fn run_slices(
        &self,
        kernels: &Kernels,
        p: usize,
        input: &[f32],
        output: &mut [f32],
        act: Activation,
        residual: Option<&[f32]>,
    ) -> Result<()> {
        if kernels.isa() != self.isa() {
            return Err(Error::param(
                "pointwise weights",
                format!(
                    "packed for {}, but the kernels in use are {}",
                    self.isa(),
                    kernels.isa()
                ),
            ));
        }
        let g = PointwiseGeom {
            p,
            k: self.k,
            n: self.n,
            act,
        };
        g.check(input.len(), output.len(), residual.map(<[f32]>::len))?;
        self.kernel.isa.check("the API")?;
        self.precision().check_on(self.isa(), "the API")?;
        let panels = self.n.div_ceil(self.nr);
        let out = SendPtr(output.as_mut_ptr());
        let res = SendPtr(residual.map_or(std::ptr::null(), <[f32]>::as_ptr) as *mut f32);
        let inp = SendPtr(input.as_ptr() as *mut f32);
        let grid = BlockGrid::new(p, panels, self.nr, kernels.threads());
        let run_block = |_slot: usize, i: usize| {
            let (rows, panels) = grid.block(i);
            let block = PointwiseBlock {
                geom: &g,
                input: inp.get(),
                packed: (),
                residual: res.get(),
                output: out.get(),
                rows,
                panels,
            };
            // SAFETY: the ISA and precision were checked available and the weights were packed by
            // `pack_for` for this kernel (`f` comes from the same registry entry); `check` validated
            // every length against the geometry; `BlockGrid` gives disjoint blocks inside the
            // problem, so no two calls write the same output element; `input` and `residual` are
            // shared borrows distinct from the exclusive `output` borrow, so they cannot alias it.
            unsafe {
                match &self.packing {
                    Packing::F32 { f, data } => f(block.with_packed(data)),
                    Packing::Half {
                        f, bias, weights, ..
                    } => f(block.with_packed(HalfPacked { bias, weights })),
                }
            }
        };
        kernels.for_each_index(grid.len(), run_block);
        Ok(())
    }

    /// Runs on tensors: `input` `[n, h, w, k]` to `output` `[n, h, w, n]`, with an optional residual
    /// of the output's shape added after the activation.
    pub fn run(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        act: Activation,
        residual: Option<&Tensor>,
    ) -> Result<()> {
        let s = input.shape();
        if s.c != self.k {
            return Err(Error::shape("pointwise input channels", self.k, s.c));
        }
        let want = Shape::new(s.n, s.h, s.w, self.n);
        if output.shape() != want {
            return Err(Error::shape("pointwise output", want, output.shape()));
        }
        if let Some(r) = residual
            && r.shape() != want
        {
            return Err(Error::shape("pointwise residual", want, r.shape()));
        }
        self.run_slices(
            kernels,
            s.n * s.h * s.w,
            input.as_slice(),
            output.as_mut_slice(),
            act,
            residual.map(Tensor::as_slice),
        )
    }
}

/// `u16`s per panel of a half-precision packing: `[k.div_ceil(kpack)][nr][kpack]`.
pub(crate) fn half_panel_len(t: HalfTile, k: usize) -> usize {
    k.div_ceil(t.kpack) * t.nr * t.kpack
}

/// Index of weight (output channel `j`, input channel `kk`) in a half-precision packing.
fn half_index(t: HalfTile, k: usize, j: usize, kk: usize) -> usize {
    let (panel, lane) = (j / t.nr, j % t.nr);
    panel * half_panel_len(t, k) + (kk / t.kpack) * t.nr * t.kpack + lane * t.kpack + kk % t.kpack
}

/// Fewest rows of a block when rows are split: the AVX-512 and NEON row tile (8 rows), so a block
/// never streams its panels' weights for less than one full tile of rows.
const ROW_QUANTUM: usize = 8;

/// How [`PackedPointwise::run_slices`] splits `p` rows x `panels` panels (of `nr` columns) into disjoint blocks, about four per thread
/// so uneven blocks balance; never splits K. One block when `threads == 1`.
///
/// The grid (row groups x panel groups) is the one that moves the fewest bytes: a block reads its
/// rows' input once (it stays in L2 while the block's panels pass over it) and its panels' weights
/// once per row chunk, so a grid of `rg x pg` blocks reads about `K * (p * pg + n * rg)` floats. Tall
/// problems (56x56: p = 3136, n <= 160) split by rows only, as before; at 7x7 (p = 49, n up to 1280)
/// a row split made every block stream all the weights for 8 rows (6 blocks: six times the weights
/// of one thread), so the 7x7 layers of RepViT-M1.0 gained only 1.23-1.32x from a second core;
/// they now split by panels, each thread streaming its half of the weights once.
///
/// Blocks are listed row group by row group, panel groups inside: the threads' contiguous shares of
/// the list (`pool.rs`) are then row halves (or thirds...) when rows are split, the same rows a
/// depthwise step before or after gives the same thread.
///
/// Row groups are as even as the rows allow (group `g` of `G` starts at row `p * g / G`), each of
/// at least [`ROW_QUANTUM`] rows: a block of a sliver of rows would stream its panels' weights for
/// almost no work. Group edges need not fall on row tiles (the kernels merge short row tails into
/// their last tiles). Measured on 2 Zen 4 cores (AVX-512, one interleaved run of 1- and 2-thread
/// calls): with edges rounded down to multiples of 8 rows, the 14x14 layers (p = 196) split 96 +
/// 100 rows and gained 1.95x from the second thread; split 98 + 98 they gain 1.99x (196x224x448
/// and 196x448x224, about 3.5 us per call); 784 and 3136 rows split evenly either way. Blocks are
/// computed from their index, so a call allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockGrid {
    p: usize,
    panels: usize,
    row_groups: usize,
    panel_groups: usize,
}

impl BlockGrid {
    /// The grid for `p` rows and `panels` panels of `nr` columns at `threads` threads.
    pub(crate) fn new(p: usize, panels: usize, nr: usize, threads: usize) -> BlockGrid {
        // Each row group holds at least ROW_QUANTUM rows.
        let max_row_groups = (p / ROW_QUANTUM).max(1);
        let panels_1 = panels.max(1);
        let (row_groups, panel_groups) = if threads <= 1 {
            (1, 1)
        } else {
            let want = 4 * threads;
            let n = panels * nr;
            let grids =
                (1..=max_row_groups.min(want)).map(|rg| (rg, want.div_ceil(rg).clamp(1, panels_1)));
            let bytes = |&(rg, pg): &(usize, usize)| (p * pg + n * rg, std::cmp::Reverse(rg * pg));
            // A block per thread at least, where the rows allow: with one panel (n <= nr, the
            // 16- and 24-wide projections of MobileNetV2 and the EfficientNets) every grid reads
            // the input once, a row split only adds weight reads, so the fewest bytes alone chose
            // one block and the second thread idled (1.00x at 56x56 144->24 on Zen 5).
            grids
                .clone()
                .filter(|&(rg, pg)| rg * pg >= threads)
                .min_by_key(bytes)
                .or_else(|| grids.min_by_key(bytes))
                .unwrap_or((1, 1))
        };
        BlockGrid {
            p,
            panels,
            row_groups,
            panel_groups,
        }
    }

    /// Number of blocks.
    pub(crate) fn len(&self) -> usize {
        self.row_groups * self.panel_groups
    }

    /// Block `i < len()`: its rows and panels (disjoint from every other block's; empty only when
    /// the problem is).
    pub(crate) fn block(&self, i: usize) -> (Range<usize>, Range<usize>) {
        let (rg, pg) = (i / self.panel_groups, i % self.panel_groups);
        let (p, groups) = (self.p, self.row_groups);
        let (r0, r1) = (p * rg / groups, p * (rg + 1) / groups);
        let pgs = self.panel_groups;
        let (c0, c1) = (self.panels * pg / pgs, self.panels * (pg + 1) / pgs);
        (r0..r1, c0..c1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_panel_problem_gives_every_thread_rows() {
        // 56x56 rows, 24 columns (one 32-column panel): one row group per thread at least.
        for threads in 2..=4 {
            let grid = BlockGrid::new(3136, 1, 32, threads);
            assert!(
                grid.len() >= threads,
                "{threads} threads: {} blocks",
                grid.len()
            );
            let rows: Vec<usize> = (0..grid.len()).map(|i| grid.block(i).0.len()).collect();
            assert!(rows.iter().all(|&r| r >= 3136 / (4 * threads)), "{rows:?}");
        }
        // Too few rows to split (fewer than two row quanta): one block.
        assert_eq!(BlockGrid::new(12, 1, 16, 2).len(), 1);
    }

    #[test]
    fn blocks_cover_the_problem_exactly_once() {
        for (p, panels) in [
            (1, 1),
            (49, 14),
            (49, 56),
            (3136, 4),
            (196, 7),
            (196, 28),
            (7, 40),
            (1000, 1),
        ] {
            for threads in 1..=5 {
                let mut seen = vec![0u8; p * panels];
                let grid = BlockGrid::new(p, panels, 16, threads);
                for (rows, pans) in (0..grid.len()).map(|i| grid.block(i)) {
                    assert!(
                        rows.len() >= ROW_QUANTUM.min(p),
                        "p={p} threads={threads}: block rows {rows:?}"
                    );
                    for r in rows {
                        for c in pans.clone() {
                            seen[r * panels + c] += 1;
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&s| s == 1),
                    "p={p} panels={panels} threads={threads}"
                );
            }
        }
    }

    /// The grid moves the fewest bytes: 56x56 layers split by rows only, 7x7 layers by panels only
    /// (each thread streams its share of the weights once), 14x14 in between.
    #[test]
    fn grid_splits_tall_problems_by_rows_and_wide_ones_by_panels() {
        let grid = |p, n: usize| {
            let g = BlockGrid::new(p, n.div_ceil(16), 16, 2);
            (g.row_groups, g.panel_groups)
        };
        assert_eq!(grid(3136, 112), (8, 1));
        assert_eq!(grid(49, 896), (1, 8));
        assert_eq!(grid(49, 448), (1, 8));
        assert_eq!(grid(196, 448), (2, 4));
        // Two threads take blocks 0..4 and 4..8: 98 rows each, not 96 and 100.
        let g = BlockGrid::new(196, 28, 16, 2);
        assert_eq!(g.block(3), (0..98, 21..28));
        assert_eq!(g.block(4), (98..196, 0..7));
        assert_eq!(BlockGrid::new(1000, 5, 16, 1).len(), 1);
    }
}
