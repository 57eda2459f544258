//! Depthwise k x k convolution (k = 3, 5 or 7), NHWC, stride 1 or 2, zero padding `k / 2`, with
//! bias, a fused activation and, on request, the per-channel sums of its output (the squeeze half
//! of squeeze-excite).
//!
//! Kernels run one *band* of output rows at a time
//! ([`crate::registry::DwConvKernel::run_rows`], [`DwConv::run_rows`]):
//! the rows are counted over the whole batch (flat row `r` is row `r % oh` of image `r / oh`), so
//! a band is a contiguous piece of the output and threads can split the output with
//! `split_at_mut`. The whole-tensor `run` is the band `0..n * oh`.

use std::ops::Range;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::registry::{self, Op};
use crate::tensor::{AlignedBuf, Shape, Tensor, aligned_from_slice};
use crate::{Isa, Kernels};

/// Kernel sizes the crate implements.
pub const DW_KERNEL_SIZES: [usize; 3] = [3, 5, 7];

/// An error unless `k` is one of [`DW_KERNEL_SIZES`].
fn check_k(k: usize) -> Result<()> {
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
/// - weights: tap-major `[k][k][c]` (`weights[(ky * k + kx) * c + ch]`), see [`DwConv::new`] for
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
}

/// Signature shared by every depthwise kernel: computes the flat output rows `rows` (layouts and
/// band contract in [`DwConvGeom`]).
///
/// # Safety
/// The caller must ensure that the kernel's instruction set is available on this CPU, that
/// `geom.k` is the kernel's size, and that [`DwConvGeom::check_rows`] accepts the geometry, the
/// band and the slice lengths.
pub type DwConvFn = unsafe fn(
    geom: &DwConvGeom,
    rows: Range<usize>,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
);

/// Converts PyTorch's depthwise weight layout `[c, 1, k, k]` to the kernels' tap-major `[k][k][c]`.
pub fn dw_weights_from_oihw(c: usize, k: usize, oihw: &[f32]) -> Result<Vec<f32>> {
    let taps = k * k;
    if oihw.len() != taps * c {
        return Err(Error::shape(
            "depthwise weights [c, 1, k, k]",
            format!("{} elements (c = {c}, k = {k})", taps * c),
            oihw.len(),
        ));
    }
    let mut out = vec![0.0; taps * c];
    for ch in 0..c {
        for tap in 0..taps {
            out[tap * c + ch] = oihw[ch * taps + tap];
        }
    }
    Ok(out)
}

/// A depthwise k x k layer ready to run: weights in the kernels' layout, 64-byte aligned.
///
/// ```
/// use mobile_cnn_kernels::{Activation, DwConv, Kernels, Shape, Tensor};
/// let c = 3;
/// // PyTorch layout [c, 1, 5, 5]: every tap 1.0, so each output sums its 5x5 neighbourhood.
/// let layer = DwConv::new(c, 5, &vec![1.0; 25 * c], &[0.0; 3], 1, Activation::Identity).unwrap();
/// let input = Tensor::from_slice(Shape::new(1, 3, 3, c), &[1.0; 27]).unwrap();
/// let mut out = Tensor::zeros(layer.output_shape(input.shape()).unwrap()).unwrap();
/// let mut sums = [0.0f32; 3];
/// let k = Kernels::new().unwrap();
/// layer.run(&k, &input, &mut out, Some(&mut sums)).unwrap();
/// // Padding 2: every output of a 3x3 image sees all 9 pixels.
/// assert!(out.as_slice().iter().all(|&y| y == 9.0));
/// assert_eq!(sums, [81.0; 3]);
/// // One band: output row 1 only (3 columns of 3 channels).
/// let mut band = [0.0f32; 9];
/// layer.run_rows(&k, &input, 1..2, &mut band, None).unwrap();
/// assert_eq!(band, out.as_slice()[9..18]);
/// // Wrong shapes are errors, not panics:
/// let bad = Tensor::zeros(Shape::new(1, 2, 2, 4)).unwrap();
/// assert!(layer.run(&k, &bad, &mut out, None).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct DwConv {
    c: usize,
    k: usize,
    stride: usize,
    act: Activation,
    weights: AlignedBuf,
    bias: AlignedBuf,
}

impl DwConv {
    /// Builds the layer from PyTorch-layout weights `[c, 1, k, k]` and a bias of `c`.
    /// Errors on wrong lengths, `c == 0`, `k` not 3, 5 or 7, or a stride other than 1 or 2.
    pub fn new(
        c: usize,
        k: usize,
        weights_oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        check_k(k)?;
        let w = dw_weights_from_oihw(c, k, weights_oihw)?;
        Self::from_tap_major(c, k, &w, bias, stride, act)
    }

    fn geom_1x1(c: usize, k: usize, stride: usize, act: Activation) -> DwConvGeom {
        DwConvGeom {
            n: 1,
            h: 1,
            w: 1,
            c,
            k,
            stride,
            act,
        }
    }

    /// Builds the layer from weights already in the tap-major `[k][k][c]` layout.
    pub fn from_tap_major(
        c: usize,
        k: usize,
        weights: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        Self::geom_1x1(c, k, stride, act).check(c, weights.len(), bias.len(), c, None)?;
        Ok(DwConv {
            c,
            k,
            stride,
            act,
            weights: aligned_from_slice(weights),
            bias: aligned_from_slice(bias),
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.c
    }

    /// Kernel size (3, 5 or 7).
    pub fn kernel_size(&self) -> usize {
        self.k
    }

    /// Stride (1 or 2).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Fused activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// Weights in tap-major `[k][k][c]` layout.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Bias `[c]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The geometry for an input of this shape; errors when the channels differ.
    pub fn geom(&self, input: Shape) -> Result<DwConvGeom> {
        if input.c != self.c {
            return Err(Error::shape("dwconv input channels", self.c, input.c));
        }
        Ok(DwConvGeom {
            n: input.n,
            h: input.h,
            w: input.w,
            c: self.c,
            k: self.k,
            stride: self.stride,
            act: self.act,
        })
    }

    /// Output shape for an input of shape `input`.
    pub fn output_shape(&self, input: Shape) -> Result<Shape> {
        let g = self.geom(input)?;
        g.check(
            input.len(),
            self.weights.len(),
            self.c,
            g.output_shape().len(),
            None,
        )?;
        Ok(g.output_shape())
    }

    /// Runs the layer with the kernel of `kernels`' instruction set. `sums`, when given, must hold
    /// `n * c` floats and receives the per-image, per-channel sums of the output.
    pub fn run(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        sums: Option<&mut [f32]>,
    ) -> Result<()> {
        let g = self.geom(input.shape())?;
        if output.shape() != g.output_shape() {
            return Err(Error::shape(
                "dwconv output",
                g.output_shape(),
                output.shape(),
            ));
        }
        dwconv(
            kernels.isa(),
            &g,
            0..g.rows(),
            input.as_slice(),
            &self.weights,
            &self.bias,
            output.as_mut_slice(),
            sums,
        )
    }

    /// Runs one band of flat output rows `rows` (over `n * oh`, see [`DwConvGeom`]) into `output`,
    /// which holds exactly those rows (`rows.len() * ow * c` floats). `sums`, when given, holds
    /// `n * c` floats and receives the band's partial sums.
    pub fn run_rows(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        rows: Range<usize>,
        output: &mut [f32],
        sums: Option<&mut [f32]>,
    ) -> Result<()> {
        let g = self.geom(input.shape())?;
        dwconv(
            kernels.isa(),
            &g,
            rows,
            input.as_slice(),
            &self.weights,
            &self.bias,
            output,
            sums,
        )
    }
}

/// A depthwise 3x3 layer: [`DwConv`] with `k = 3`, kept for callers written before k x k.
#[derive(Debug, Clone)]
pub struct DwConv3x3(DwConv);

impl DwConv3x3 {
    /// Builds the layer from PyTorch-layout weights `[c, 1, 3, 3]` and a bias of `c`
    /// ([`DwConv::new`] with `k = 3`).
    pub fn new(
        c: usize,
        weights_oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        DwConv::new(c, 3, weights_oihw, bias, stride, act).map(DwConv3x3)
    }
}

impl std::ops::Deref for DwConv3x3 {
    type Target = DwConv;
    fn deref(&self) -> &DwConv {
        &self.0
    }
}

/// Runs the registered depthwise kernel of size `geom.k` for `isa` on raw slices: the band of flat
/// output rows `rows` (layouts and band contract in [`DwConvGeom`]). Errors when `isa` has no such
/// kernel or is not available, or a length does not match the geometry.
#[allow(clippy::too_many_arguments)]
pub fn dwconv(
    isa: Isa,
    geom: &DwConvGeom,
    rows: Range<usize>,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
) -> Result<()> {
    check_k(geom.k)?;
    registry::find(Op::DwConv { k: geom.k }, isa)?
        .dwconv()?
        .run_rows(geom, rows, input, weights, bias, output, sums)
}
