//! The kernel function types and geometries every tier implements, in one module that the tier
//! code and the registry import (as XNNPACK's `microfnptr.h` and `microparams.h`). The chain runs
//! one way: this module (and the leaf modules it needs: activation, error, tensor, isa), then the
//! tier kernels (`x86_64/`, `aarch64/`, `portable/`, `scalar/`, `dwconv_kxk.rs`, `gemv.rs`), then
//! [`crate::registry`], then the ops (`dwconv.rs`, `pointwise.rs`, `se.rs`, `elementwise.rs`, ...),
//! which bind a kernel from the registry once, when the op object is made.
//! `scripts/check-import-cycles.py` keeps the file-level imports free of cycles.
//!
//! The safety contract of each function type is in its `# Safety` section; the op modules'
//! safe wrappers check every length before they call one.
//!
//! Each function type takes its operands as one value of a type defined here ([`DwConvIo`],
//! [`PointwiseBlock`], [`Gemv`]) besides the geometry and the output window, so a kernel's
//! signature is one short line and the operand list, its layouts and its checks
//! ([`DwConvGeom::check_io`], `PointwiseBlock::check_f32` and `check_half`,
//! [`Gemv::lengths_ok`]) are written once, here, instead of in every kernel of every tier, each
//! tier's loop nest and the registry. Kernels read the struct's fields into locals at their entry,
//! before any loop, so the hot loops see the same scalars and pointers as with separate parameters
//! (a pointwise block, a depthwise band or a product window is one call: passing its operands
//! through memory costs nothing measurable). The compiler still checks every kernel against its
//! type where the registry stores it.

use std::ops::Range;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::isa::Precision;
use crate::tensor::Shape;

// Depthwise k x k ([`crate::dwconv`]).

/// Kernel sizes the crate implements.
pub const DW_KERNEL_SIZES: [usize; 3] = [3, 5, 7];

/// An error unless `k` is one of [`DW_KERNEL_SIZES`].
pub(crate) fn check_k(k: usize) -> Result<()> {
    if DW_KERNEL_SIZES.contains(&k) {
        Ok(())
    } else {
        Err(Error::param(
            "dwconv kernel size k",
            format!("expected 3, 5 or 7, found {k}"),
        ))
    }
}

/// Everything a depthwise kernel needs to know besides its buffers.
///
/// Buffers, all contiguous f32:
/// - input: NHWC `[n, h, w, c]` (always the whole tensor, also when a band is computed)
/// - weights: tap-major `[k][k][c]` (`weights[(ky * k + kx) * c + ch]`), see [`crate::DwConv::create`] for
///   conversion from PyTorch's `[c, 1, k, k]`
/// - bias: `[c]`
/// - output: the band's flat output rows `rows` of NHWC `[n, oh, ow, c]`, that is
///   `rows.len() * ow * c` floats starting at flat row `rows.start`, with
///   `oh = (h + 2 * pad - k) / stride + 1`, `ow = (w + 2 * pad - k) / stride + 1`, `pad = k / 2`
///   (PyTorch's `Conv2d(c, c, k, stride, k // 2, groups=c)`)
/// - sums (optional): `[n, c]`, overwritten with the band's partial sums:
///   `sums[b * c + ch] = sum over the band's rows of image b, over x, of output[b, y, x, ch]`
///   (zero for an image the band does not touch).
///
/// Band contract: the outputs of a band are bitwise the same as those rows of a whole run (every
/// output element is computed alone, whatever the band). A band's partial sums depend only on the
/// band, never on what else runs; adding the partial sums of a fixed list of bands in band order
/// therefore gives the same bits for any thread count. They equal the whole run's sums up to f32
/// rounding of the additions (not bitwise: the additions associate differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DwConvGeom {
    /// Batch.
    pub n: usize,
    /// Input height (>= 1).
    pub h: usize,
    /// Input width (>= 1).
    pub w: usize,
    /// Channels (>= 1).
    pub c: usize,
    /// Kernel size: 3, 5 or 7 (padding `k / 2`).
    pub k: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Applied before the store (and before the sums are taken).
    pub act: Activation,
}

impl DwConvGeom {
    /// Zero padding on every side, `k / 2`.
    pub fn pad(&self) -> usize {
        self.k / 2
    }

    /// Output height, `(h + 2 * pad - k) / stride + 1` (= `(h - 1) / stride + 1` for odd `k`).
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad() - self.k) / self.stride + 1
    }

    /// Output width, `(w + 2 * pad - k) / stride + 1`.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad() - self.k) / self.stride + 1
    }

    /// Flat output rows of the batch, `n * oh` (the whole-tensor band is `0..rows()`).
    pub fn rows(&self) -> usize {
        self.n * self.oh()
    }

    /// The output shape.
    pub fn output_shape(&self) -> Shape {
        Shape::new(self.n, self.oh(), self.ow(), self.c)
    }

    /// Multiply-adds performed by a whole run (`k * k` per output element, padding included).
    pub fn macs(&self) -> u64 {
        (self.k * self.k) as u64 * (self.n * self.oh() * self.ow() * self.c) as u64
    }

    /// Checks the geometry, the band and every buffer length against it (`output` is the band's
    /// length, `sums` always `n * c`).
    pub fn check_rows(
        &self,
        rows: &Range<usize>,
        input: usize,
        weights: usize,
        bias: usize,
        output: usize,
        sums: Option<usize>,
    ) -> Result<()> {
        check_k(self.k)?;
        if self.stride != 1 && self.stride != 2 {
            return Err(Error::param(
                "dwconv stride",
                format!("expected 1 or 2, found {}", self.stride),
            ));
        }
        if self.n == 0 || self.h == 0 || self.w == 0 || self.c == 0 {
            return Err(Error::shape(
                "dwconv input",
                "n, h, w, c >= 1",
                Shape::new(self.n, self.h, self.w, self.c),
            ));
        }
        let in_len = Shape::new(self.n, self.h, self.w, self.c)
            .checked_len()
            .ok_or_else(|| {
                Error::shape("dwconv input", "a size that fits in memory", "overflow")
            })?;
        if rows.start > rows.end || rows.end > self.rows() {
            return Err(Error::shape(
                "dwconv row band",
                format!("a range within 0..{} (n * oh)", self.rows()),
                format!("{rows:?}"),
            ));
        }
        let checks = [
            ("dwconv input", in_len, input),
            (
                "dwconv weights [k][k][c]",
                self.k * self.k * self.c,
                weights,
            ),
            ("dwconv bias", self.c, bias),
            (
                "dwconv output (the band's rows)",
                rows.len() * self.ow() * self.c,
                output,
            ),
        ];
        for (what, expected, found) in checks {
            if expected != found {
                return Err(Error::shape(
                    what,
                    format!("{expected} elements"),
                    format!("{found} elements"),
                ));
            }
        }
        if let Some(s) = sums
            && s != self.n * self.c
        {
            return Err(Error::shape(
                "dwconv sums",
                format!("{} elements (n * c)", self.n * self.c),
                s,
            ));
        }
        Ok(())
    }

    /// [`check_rows`](Self::check_rows) for the whole tensor (`output` is `n * oh * ow * c`).
    pub fn check(
        &self,
        input: usize,
        weights: usize,
        bias: usize,
        output: usize,
        sums: Option<usize>,
    ) -> Result<()> {
        // `rows()` needs a valid stride; check_rows reports a bad one first.
        let all = if self.stride == 1 || self.stride == 2 {
            0..self.rows()
        } else {
            0..0
        };
        self.check_rows(&all, input, weights, bias, output, sums)
    }

    /// [`check_rows`](Self::check_rows) on the lengths of the buffers of `io`.
    pub fn check_io(&self, rows: &Range<usize>, io: &DwConvIo<'_>) -> Result<()> {
        self.check_rows(
            rows,
            io.input.len(),
            io.weights.len(),
            io.bias.len(),
            io.output.len(),
            io.sums.as_ref().map(|s| s.len()),
        )
    }
}

/// The buffers of one depthwise call: all contiguous f32, layouts in [`DwConvGeom`] (`output`
/// holds the band's rows only; `sums`, when given, `[n, c]` and is overwritten).
#[derive(Debug)]
pub struct DwConvIo<'a> {
    /// NHWC `[n, h, w, c]`, the whole tensor.
    pub input: &'a [f32],
    /// Tap-major `[k][k][c]`.
    pub weights: &'a [f32],
    /// `[c]`.
    pub bias: &'a [f32],
    /// The band's flat output rows, `rows.len() * ow * c` floats.
    pub output: &'a mut [f32],
    /// `[n, c]`: the band's partial sums of the activated output.
    pub sums: Option<&'a mut [f32]>,
}

/// Signature shared by every depthwise kernel: computes the flat output rows `rows` (layouts and
/// band contract in [`DwConvGeom`]).
///
/// # Safety
/// The caller must ensure that the kernel's instruction set is available on this CPU, that
/// `geom.k` is the kernel's size, and that [`DwConvGeom::check_io`] accepts the geometry, the
/// band and the slice lengths.
pub type DwConvFn = unsafe fn(geom: &DwConvGeom, rows: Range<usize>, io: DwConvIo<'_>);

// Pointwise ([`crate::pointwise`]).

/// Problem size and epilogue of one pointwise call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointwiseGeom {
    /// Rows of the input and output (pixels, `n * h * w`).
    pub p: usize,
    /// Input channels.
    pub k: usize,
    /// Output channels.
    pub n: usize,
    /// Applied to `acc + bias` before the residual is added.
    pub act: Activation,
}

impl PointwiseGeom {
    /// Multiply-adds performed.
    pub fn macs(&self) -> u64 {
        (self.p as u64) * (self.k as u64) * (self.n as u64)
    }

    /// Checks the geometry and the buffer lengths (`residual` is `None` when there is none).
    pub fn check(&self, input: usize, output: usize, residual: Option<usize>) -> Result<()> {
        if self.p == 0 || self.k == 0 || self.n == 0 {
            return Err(Error::shape(
                "pointwise geometry",
                "p, k, n >= 1",
                format!("p={} k={} n={}", self.p, self.k, self.n),
            ));
        }
        let pk = self.p.checked_mul(self.k);
        let pn = self.p.checked_mul(self.n);
        if pk != Some(input) {
            return Err(Error::shape(
                "pointwise input [p, k]",
                format!("{} x {} elements", self.p, self.k),
                input,
            ));
        }
        if pn != Some(output) {
            return Err(Error::shape(
                "pointwise output [p, n]",
                format!("{} x {} elements", self.p, self.n),
                output,
            ));
        }
        if let Some(r) = residual
            && Some(r) != pn
        {
            return Err(Error::shape(
                "pointwise residual [p, n]",
                format!("{} x {} elements", self.p, self.n),
                r,
            ));
        }
        Ok(())
    }
}

/// One block of a pointwise call and the operands of the whole call: all of K for the rows `rows`
/// (of `0..p`) and the column panels `panels` (of `0..n.div_ceil(nr)`, `nr` the kernel's panel
/// width). `W` is the packed weights: `&[f32]` for a [`PointwiseFn`] (per panel `[nr biases][k x
/// nr weights]`, as [`crate::PackedPointwise::pack_for`] packs them), [`HalfPacked`] for a
/// [`PointwiseHalfFn`].
///
/// Input, residual and output are raw pointers: the blocks of one call run on several threads at
/// once and write disjoint blocks of the one output. Layouts: input `[p, k]`, residual and output
/// `[p, n]`, all f32 and row-major; `residual` is null when there is none.
#[derive(Debug, Clone)]
pub struct PointwiseBlock<'a, W> {
    /// The problem size and the activation.
    pub geom: &'a PointwiseGeom,
    /// `[p, k]`.
    pub input: *const f32,
    /// The packed weights and biases.
    pub packed: W,
    /// `[p, n]`, added after the activation, or null.
    pub residual: *const f32,
    /// `[p, n]`; the block's elements are written, nothing else.
    pub output: *mut f32,
    /// Rows (pixels) of the block.
    pub rows: Range<usize>,
    /// Column panels of the block.
    pub panels: Range<usize>,
}

/// The packed operands of a half-precision kernel (layout in [`PointwiseHalfFn`]).
#[derive(Debug, Clone, Copy)]
pub struct HalfPacked<'a> {
    /// `[panels * nr]` f32, zero past N.
    pub bias: &'a [f32],
    /// Per panel `[kp][nr][kpack]` bit patterns of the kernel's precision.
    pub weights: &'a [u16],
}

impl<'a, W> PointwiseBlock<'a, W> {
    /// The same block and operands with the packed weights `packed` (a block is built once and
    /// handed to a kernel of either kind).
    pub fn with_packed<V>(self, packed: V) -> PointwiseBlock<'a, V> {
        PointwiseBlock {
            geom: self.geom,
            input: self.input,
            packed,
            residual: self.residual,
            output: self.output,
            rows: self.rows,
            panels: self.panels,
        }
    }

    /// Panics unless `rows` is a range within `0..p` and `panels` a range within the
    /// `n.div_ceil(nr)` panels of the problem and the first `packed_panels` panels of the packing.
    /// Cheap once per block, it makes every offset a kernel derives from the ranges provably in
    /// bounds given only the validity of the pointers.
    #[inline(always)]
    fn check_ranges(&self, nr: usize, packed_panels: usize) {
        let (rows, panels, p) = (&self.rows, &self.panels, self.geom.p);
        assert!(
            rows.start <= rows.end && rows.end <= p,
            "pointwise rows {rows:?} outside 0..{p}"
        );
        assert!(
            panels.start <= panels.end
                && panels.end <= self.geom.n.div_ceil(nr)
                && panels.end <= packed_panels,
            "pointwise panels {panels:?} outside the packed weights"
        );
    }
}

impl PointwiseBlock<'_, &[f32]> {
    /// The bounds check of an f32 kernel of panel width `nr` (panels of `nr * (k + 1)` floats):
    /// panics unless the ranges lie within the problem and the packed weights.
    #[inline(always)]
    pub(crate) fn check_f32(&self, nr: usize) {
        self.check_ranges(nr, self.packed.len() / (nr * (self.geom.k + 1)));
    }
}

impl PointwiseBlock<'_, HalfPacked<'_>> {
    /// The bounds check of a half-precision kernel of panel width `nr` and `panel_len` weights per
    /// panel: panics unless the ranges lie within the problem, the weights and the biases.
    #[inline(always)]
    pub(crate) fn check_half(&self, nr: usize, panel_len: usize) {
        let packed = &self.packed;
        self.check_ranges(
            nr,
            (packed.weights.len() / panel_len).min(packed.bias.len() / nr),
        );
    }
}

/// A pointwise kernel: one block of a call (operands, layouts and block in [`PointwiseBlock`]),
/// computing `out = act(in . W + bias) (+ residual)` for the block's rows and panels.
///
/// # Safety
/// Callers of a [`PointwiseFn`] must guarantee: the kernel's ISA is available; `packed` was packed
/// for this kernel's ISA and panel width with `geom.k` and `geom.n`; `input` is valid for reads of
/// `p * k` floats, `output` for writes of `p * n` floats, and `residual`, when not null, for reads of
/// `p * n` floats; neither `input` nor `residual` may overlap `output` (a tile reads all of its rows'
/// input after other tiles of the block have stored theirs; the safe [`crate::PackedPointwise::run_slices`]
/// takes them as a shared and an exclusive borrow, so they cannot); `rows` and `panels` lie within
/// the problem, and no other thread writes the same block of `output` at the same time.
pub type PointwiseFn = unsafe fn(block: PointwiseBlock<'_, &[f32]>);

/// One block of a half-precision pointwise call (weights in bf16 or f16, activations in f32):
/// all of K for the rows `rows` and the column panels `panels`, computing
/// `out = act(round(in) . W + bias) (+ residual)` where `round` rounds the input to the kernel's
/// precision (as its instruction does) and `W` holds the already rounded weights.
///
/// Layout (packed by [`crate::PackedPointwise::pack_for`] from the entry's [`HalfTile`] `{ nr, kpack,
/// dtype }`): `bias` is `[panels * nr]` f32 (zero past N); `weights` is, per panel of `nr` output
/// channels, `[kp][nr][kpack]` `u16` bit patterns of `dtype` with `kp = k.div_ceil(kpack)`, zero
/// past N and past K. Input, residual and output are f32 (`[p, k]`, `[p, n]`, `[p, n]`).
///
/// # Safety
/// Callers must guarantee: the kernel's ISA and precision are available
/// ([`crate::registry::KernelInfo::is_available`]); `bias` and `weights` were packed for this
/// kernel's [`HalfTile`] with `geom.k` and `geom.n`; `input` is valid for reads of `p * k` floats,
/// `output` for writes of `p * n` floats, and `residual`, when not null, for reads of `p * n`
/// floats; neither `input` nor `residual` aliases `output`; `rows` and `panels` lie within the
/// problem, and no other thread writes the same block of `output` at the same time.
pub type PointwiseHalfFn = unsafe fn(block: PointwiseBlock<'_, HalfPacked<'_>>);

/// Packed layout of a half-precision pointwise kernel: weights of `kpack` consecutive input
/// channels of one output channel sit side by side (`[k / kpack][nr][kpack]` per panel, K padded
/// with zeros to a multiple of `kpack`), e.g. `kpack = 2` for `vdpbf16ps` and `bfdot`, which
/// multiply pairs along K, and `kpack = 1` for `fmla v.8h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfTile {
    /// Output channels per panel.
    pub nr: usize,
    /// Consecutive input channels stored together.
    pub kpack: usize,
    /// The precision the weights are rounded to (round to nearest even).
    pub dtype: Precision,
}

// Squeeze-excite matrix-vector product ([`crate::se`]).

/// The operands of a matrix-vector product `bias + x . wt` with `n = bias.len()` outputs: `wt` is
/// `[x.len()][n]` row-major.
#[derive(Debug, Clone, Copy)]
pub struct Gemv<'a> {
    /// The vector, `[rows]`.
    pub x: &'a [f32],
    /// The matrix, `[rows][n]` row-major.
    pub wt: &'a [f32],
    /// `[n]`.
    pub bias: &'a [f32],
}

impl Gemv<'_> {
    /// Outputs of the product (`bias.len()`).
    pub fn n(&self) -> usize {
        self.bias.len()
    }

    /// Whether the lengths fit: `wt` is `[x.len()][n]` and columns `base..base + y_len` lie within
    /// the `n` outputs.
    pub fn lengths_ok(&self, y_len: usize, base: usize) -> bool {
        self.wt.len() == self.x.len() * self.n() && base + y_len <= self.n()
    }
}

/// A matrix-vector product kernel ([`crate::registry::Op::Gemv`]; run through [`crate::se::SqueezeExcite`]): columns `base..base + y.len()`
/// of the product `m` into `y`. Each output is its bias, then one multiply-add per row of `wt` in
/// row order (fused on the vector tiers), whatever the window: a split into windows gives the same
/// bits.
///
/// # Safety
/// The kernel's tier must be available, and [`Gemv::lengths_ok`] must accept `y.len()` and `base`.
pub type GemvFn = unsafe fn(m: &Gemv<'_>, y: &mut [f32], base: usize);

// In-place activation ([`crate::elementwise`]).

/// An in-place activation kernel ([`crate::registry::Op::Activation`]): `data[i] = act(data[i])`
/// with the vector activations of the kernel's tier, which equal the scalar forms bit for bit
/// (the portable tier's GELU within rounding where its `mul_add` does not fuse, see
/// `crate::portable`).
///
/// # Safety
/// The kernel's tier must be available.
pub type ActivationFn = unsafe fn(act: Activation, data: &mut [f32]);
