//! Depthwise 3x3 convolution, NHWC, stride 1 or 2, padding 1, with bias, a fused activation and,
//! on request, the per-channel sums of its output (the squeeze half of squeeze-excite).

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::registry::{self, Op};
use crate::tensor::{AlignedBuf, Shape, Tensor, aligned_from_slice};
use crate::{Isa, Kernels};

/// Everything a depthwise 3x3 kernel needs to know besides its buffers.
///
/// Buffers, all contiguous f32:
/// - input: NHWC `[n, h, w, c]`
/// - weights: tap-major `[3][3][c]` (`weights[(ky * 3 + kx) * c + ch]`), see [`DwConv3x3::new`] for
///   conversion from PyTorch's `[c, 1, 3, 3]`
/// - bias: `[c]`
/// - output: NHWC `[n, oh, ow, c]` with `oh = (h - 1) / stride + 1`, `ow = (w - 1) / stride + 1`
/// - sums (optional): `[n, c]`, overwritten with `sums[b * c + ch] = sum over (y, x) of output[b, y, x, ch]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DwConv3x3Geom {
    /// Batch.
    pub n: usize,
    /// Input height (>= 1).
    pub h: usize,
    /// Input width (>= 1).
    pub w: usize,
    /// Channels (>= 1).
    pub c: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Applied before the store (and before the sums are taken).
    pub act: Activation,
}

impl DwConv3x3Geom {
    /// Output height.
    pub fn oh(&self) -> usize {
        (self.h - 1) / self.stride + 1
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w - 1) / self.stride + 1
    }

    /// The output shape.
    pub fn output_shape(&self) -> Shape {
        Shape::new(self.n, self.oh(), self.ow(), self.c)
    }

    /// Multiply-adds performed (9 per output element).
    pub fn macs(&self) -> u64 {
        9 * (self.n * self.oh() * self.ow() * self.c) as u64
    }

    /// Checks the geometry itself and every buffer length against it.
    pub fn check(
        &self,
        input: usize,
        weights: usize,
        bias: usize,
        output: usize,
        sums: Option<usize>,
    ) -> Result<()> {
        if self.stride != 1 && self.stride != 2 {
            return Err(Error::param(
                "dwconv3x3 stride",
                format!("expected 1 or 2, found {}", self.stride),
            ));
        }
        if self.n == 0 || self.h == 0 || self.w == 0 || self.c == 0 {
            return Err(Error::shape(
                "dwconv3x3 input",
                "n, h, w, c >= 1",
                Shape::new(self.n, self.h, self.w, self.c),
            ));
        }
        let in_len = Shape::new(self.n, self.h, self.w, self.c)
            .checked_len()
            .ok_or_else(|| {
                Error::shape("dwconv3x3 input", "a size that fits in memory", "overflow")
            })?;
        let checks = [
            ("dwconv3x3 input", in_len, input),
            ("dwconv3x3 weights", 9 * self.c, weights),
            ("dwconv3x3 bias", self.c, bias),
            ("dwconv3x3 output", self.output_shape().len(), output),
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
                "dwconv3x3 sums",
                format!("{} elements (n * c)", self.n * self.c),
                s,
            ));
        }
        Ok(())
    }
}

/// Signature shared by every depthwise 3x3 kernel.
///
/// # Safety
/// The caller must ensure that the kernel's instruction set is available on this CPU and that
/// [`DwConv3x3Geom::check`] accepts the geometry and the slice lengths.
pub type DwConv3x3Fn = unsafe fn(
    geom: &DwConv3x3Geom,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
);

/// Converts PyTorch's depthwise weight layout `[c, 1, 3, 3]` to the kernels' tap-major `[3][3][c]`.
pub fn dw_weights_from_oihw(c: usize, oihw: &[f32]) -> Result<Vec<f32>> {
    if oihw.len() != 9 * c {
        return Err(Error::shape(
            "depthwise weights [c, 1, 3, 3]",
            format!("{} elements", 9 * c),
            oihw.len(),
        ));
    }
    let mut out = vec![0.0; 9 * c];
    for ch in 0..c {
        for tap in 0..9 {
            out[tap * c + ch] = oihw[ch * 9 + tap];
        }
    }
    Ok(out)
}

/// A depthwise 3x3 layer ready to run: weights in the kernels' layout, 64-byte aligned.
///
/// ```
/// use mobile_cnn_kernels::{Activation, DwConv3x3, Kernels, Shape, Tensor};
/// let c = 3;
/// // PyTorch layout [c, 1, 3, 3]: every tap 1.0, so each output sums its 3x3 neighbourhood.
/// let layer = DwConv3x3::new(c, &vec![1.0; 9 * c], &[0.0; 3], 1, Activation::Identity).unwrap();
/// let input = Tensor::from_slice(Shape::new(1, 2, 2, c), &[1.0; 12]).unwrap();
/// let mut out = Tensor::zeros(layer.output_shape(input.shape()).unwrap()).unwrap();
/// let mut sums = [0.0f32; 3];
/// layer.run(&Kernels::new().unwrap(), &input, &mut out, Some(&mut sums)).unwrap();
/// assert_eq!(out.as_slice()[0], 4.0); // a corner sees 4 of the 9 taps
/// assert_eq!(sums, [16.0; 3]);
/// // Wrong shapes are errors, not panics:
/// let bad = Tensor::zeros(Shape::new(1, 2, 2, 4)).unwrap();
/// assert!(layer.run(&Kernels::new().unwrap(), &bad, &mut out, None).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct DwConv3x3 {
    c: usize,
    stride: usize,
    act: Activation,
    weights: AlignedBuf,
    bias: AlignedBuf,
}

impl DwConv3x3 {
    /// Builds the layer from PyTorch-layout weights `[c, 1, 3, 3]` and a bias of `c`.
    /// Errors on wrong lengths, `c == 0` or a stride other than 1 or 2.
    pub fn new(
        c: usize,
        weights_oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        let w = dw_weights_from_oihw(c, weights_oihw)?;
        Self::from_tap_major(c, &w, bias, stride, act)
    }

    /// Builds the layer from weights already in the tap-major `[3][3][c]` layout.
    pub fn from_tap_major(
        c: usize,
        weights: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        DwConv3x3Geom {
            n: 1,
            h: 1,
            w: 1,
            c,
            stride,
            act,
        }
        .check(c, weights.len(), bias.len(), c, None)?;
        Ok(DwConv3x3 {
            c,
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

    /// Stride (1 or 2).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Fused activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// Weights in tap-major `[3][3][c]` layout.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Bias `[c]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The geometry for an input of this shape; errors when the channels differ.
    pub fn geom(&self, input: Shape) -> Result<DwConv3x3Geom> {
        if input.c != self.c {
            return Err(Error::shape("dwconv3x3 input channels", self.c, input.c));
        }
        Ok(DwConv3x3Geom {
            n: input.n,
            h: input.h,
            w: input.w,
            c: self.c,
            stride: self.stride,
            act: self.act,
        })
    }

    /// Output shape for an input of shape `input`.
    pub fn output_shape(&self, input: Shape) -> Result<Shape> {
        let g = self.geom(input)?;
        g.check(
            input.len(),
            9 * self.c,
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
                "dwconv3x3 output",
                g.output_shape(),
                output.shape(),
            ));
        }
        dwconv3x3(
            kernels.isa(),
            &g,
            input.as_slice(),
            &self.weights,
            &self.bias,
            output.as_mut_slice(),
            sums,
        )
    }
}

/// Runs the registered depthwise 3x3 kernel of `isa` on raw slices (layouts in [`DwConv3x3Geom`]).
/// Errors when `isa` is not available or a length does not match the geometry.
pub fn dwconv3x3(
    isa: Isa,
    geom: &DwConv3x3Geom,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
) -> Result<()> {
    registry::find(Op::DwConv3x3, isa)?
        .dwconv3x3()?
        .run(geom, input, weights, bias, output, sums)
}
