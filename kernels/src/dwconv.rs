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

use crate::Kernels;
use crate::activation::Activation;
use crate::dwconv_bands;
pub use crate::dwconv_bands::{DW_BAND_MACS, DW_PARALLEL_MACS, DwBands};
use crate::error::{Error, Result};
use crate::registry::{self, DwConvKernel, Op};
use crate::tensor::{AlignedBuf, Shape, Tensor, aligned_from_slice};
use crate::ukernel::check_k;
pub use crate::ukernel::{DW_KERNEL_SIZES, DwConvFn, DwConvGeom, DwConvIo};

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

/// A depthwise k x k layer ready to run: weights in the kernels' layout, 64-byte aligned, and the
/// registry's kernel for one tier, bound when the layer is made ([`DwConv::create`]), as XNNPACK
/// fills an operator's config once. Running it with a [`Kernels`] of another tier is an error.
///
/// ```
/// use mobile_cnn_kernels::{Activation, DwConv, Kernels, Shape, Tensor};
/// let c = 3;
/// let k = Kernels::new().unwrap();
/// // PyTorch layout [c, 1, 5, 5]: every tap 1.0, so each output sums its 5x5 neighbourhood.
/// let w = vec![1.0; 25 * c];
/// let layer = DwConv::create(&k, c, 5, &w, &[0.0; 3], 1, Activation::Identity).unwrap();
/// let input = Tensor::from_slice(Shape::new(1, 3, 3, c), &[1.0; 27]).unwrap();
/// let mut out = Tensor::zeros(layer.output_shape(input.shape()).unwrap()).unwrap();
/// let mut sums = [0.0f32; 3];
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
    /// The registry's kernel of size `k` for one tier, bound when the layer was made.
    kernel: DwConvKernel,
}

impl DwConv {
    /// Builds the layer from PyTorch-layout weights `[c, 1, k, k]` and a bias of `c`, bound to
    /// the depthwise kernel of `kernels`' tier. Errors on wrong lengths, `c == 0`, `k` not 3, 5 or
    /// 7, or a stride other than 1 or 2.
    pub fn create(
        kernels: &Kernels,
        c: usize,
        k: usize,
        weights_oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        check_k(k)?;
        let w = dw_weights_from_oihw(c, k, weights_oihw)?;
        Self::create_tap_major(kernels, c, k, &w, bias, stride, act)
    }

    /// [`DwConv::create`] from weights already in the tap-major `[k][k][c]` layout.
    pub fn create_tap_major(
        kernels: &Kernels,
        c: usize,
        k: usize,
        weights: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        let g1 = DwConvGeom {
            n: 1,
            h: 1,
            w: 1,
            c,
            k,
            stride,
            act,
        };
        g1.check(c, weights.len(), bias.len(), c, None)?;
        let isa = kernels.isa().check("the API")?;
        let kernel = registry::find(Op::DwConv { k }, isa)?.dwconv()?;
        Ok(DwConv {
            c,
            k,
            stride,
            act,
            weights: aligned_from_slice(weights),
            bias: aligned_from_slice(bias),
            kernel,
        })
    }

    /// The bound kernel, checked to be of the tier of `kernels` (running a layer with the
    /// [`Kernels`] of another tier is an error, not a silent switch).
    fn kernel_for(&self, kernels: &Kernels) -> Result<DwConvKernel> {
        if self.kernel.info.isa == kernels.isa() {
            Ok(self.kernel)
        } else {
            Err(Error::param(
                "dwconv layer",
                format!(
                    "bound to {}, but the kernels in use are {}",
                    self.kernel.info.isa,
                    kernels.isa()
                ),
            ))
        }
    }

    /// The bound kernel.
    pub fn kernel(&self) -> &DwConvKernel {
        &self.kernel
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

    /// The geometry of a run from `input` into `output`; errors when `output` is not the shape the
    /// layer makes from `input`.
    fn geom_io(&self, input: &Tensor, output: &Tensor) -> Result<DwConvGeom> {
        let g = self.geom(input.shape())?;
        if output.shape() != g.output_shape() {
            return Err(Error::shape(
                "dwconv output",
                g.output_shape(),
                output.shape(),
            ));
        }
        Ok(g)
    }

    /// Runs the layer with its kernel in one call on the calling thread (for threads and sums that
    /// do not depend on them, [`DwConv::run_bands`]). `sums`, when given, must hold `n * c` floats
    /// and receives the per-image, per-channel sums of the output.
    pub fn run(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        sums: Option<&mut [f32]>,
    ) -> Result<()> {
        let g = self.geom_io(input, output)?;
        self.kernel_for(kernels)?.run_rows(
            &g,
            0..g.rows(),
            input.as_slice(),
            &self.weights,
            &self.bias,
            output.as_mut_slice(),
            sums,
        )
    }

    /// Runs the layer over row bands chosen from the shape ([`DwBands`], about [`DW_BAND_MACS`]
    /// multiply-adds each), shared among `kernels`' threads when the layer has at least
    /// [`DW_PARALLEL_MACS`] multiply-adds: the threaded depthwise, whose results are the same bits
    /// for any thread count.
    ///
    /// `sums = Some((sums, partials))` asks for the per-image, per-channel sums of the output (the
    /// squeeze of squeeze-excite): `sums` holds `n * c` floats and receives, per image, the bands'
    /// partial sums added in band order; `partials` is scratch of at least
    /// [`DwConv::band_partials_len`] floats (the caller owns it, so a call allocates nothing).
    /// The sums equal [`DwConv::run`]'s up to f32 rounding of the additions (not bitwise: the
    /// additions associate differently); the outputs equal [`DwConv::run`]'s bit for bit. Without
    /// sums, a layer too small to share runs as one call.
    ///
    /// ```
    /// use mobile_cnn_kernels::{Activation, DwConv, Kernels, Shape, Tensor};
    /// let c = 16;
    /// let k = Kernels::new().unwrap().with_threads(2).unwrap();
    /// let dw = DwConv::create(&k, c, 3, &vec![0.5; 9 * c], &vec![0.0; c], 1, Activation::Relu)
    ///     .unwrap();
    /// let x = Tensor::from_slice(Shape::new(1, 56, 56, c), &vec![1.0; 56 * 56 * c]).unwrap();
    /// let mut y = Tensor::zeros(dw.output_shape(x.shape()).unwrap()).unwrap();
    /// let mut sums = vec![0.0; c];
    /// let mut partials = vec![0.0; dw.band_partials_len(x.shape()).unwrap()];
    /// dw.run_bands(&k, &x, &mut y, Some((&mut sums, &mut partials))).unwrap();
    /// // Row 1, column 0: 6 of the 9 taps fall inside the image.
    /// assert_eq!(y.as_slice()[56 * c..57 * c], [3.0; 16]);
    /// assert_eq!(sums[0], y.as_slice().iter().step_by(c).sum::<f32>());
    /// ```
    pub fn run_bands(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        sums: Option<(&mut [f32], &mut [f32])>,
    ) -> Result<()> {
        let g = self.geom_io(input, output)?;
        let kernel = self.kernel_for(kernels)?;
        let bands = DwBands::of(&g);
        let parallel = bands.parallel(kernels, &g);
        let (x, y) = (input.as_slice(), output.as_mut_slice());
        if sums.is_none() && !parallel {
            // Without sums the bits do not depend on the bands: one call.
            return kernel.run_rows(&g, 0..g.rows(), x, &self.weights, &self.bias, y, None);
        }
        dwconv_bands::run_bands(
            kernels,
            parallel,
            &kernel,
            &g,
            bands,
            &self.weights,
            &self.bias,
            x,
            y,
            sums,
        )
    }

    /// Floats of the `partials` scratch [`DwConv::run_bands`] needs for an input of shape `input`
    /// (0 when every image is one band).
    pub fn band_partials_len(&self, input: Shape) -> Result<usize> {
        let g = self.geom(input)?;
        Ok(DwBands::of(&g).partials_len(&g))
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
        self.kernel_for(kernels)?.run_rows(
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
