//! Dense 3x3 convolution, padding 1, stride 1 or 2, NHWC, with bias and a fused activation: the stem
//! of most mobile CNNs (RepViT: 3 -> C/2 at 224x224, then C/2 -> C at 112x112, both stride 2).
//!
//! Computed as im2col into a band of output rows followed by the packed pointwise GEMM, so every ISA's
//! GEMM micro-kernel (and its epilogue) serves it. Bands keep the im2col buffer small enough to stay
//! in L2 while the GEMM reads it.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::pointwise::PackedPointwise;
use crate::tensor::{SendPtr, Shape, Tensor};
use crate::{Isa, Kernels};

/// Target size of one band's im2col buffer, in floats (256 KiB).
const BAND_FLOATS: usize = 64 * 1024;

/// A dense 3x3 convolution ready to run (weights packed for one ISA).
///
/// ```
/// use mobile_cnn_kernels::{Activation, Conv3x3, Kernels, Shape, Tensor};
/// let k = Kernels::new().unwrap();
/// // 1 -> 1 channel, every tap 1: each output sums its 3x3 neighbourhood.
/// let conv = Conv3x3::new(k.isa(), 1, 1, &[1.0; 9], None, 1, Activation::Identity).unwrap();
/// let input = Tensor::from_slice(Shape::new(1, 3, 3, 1), &[1.0; 9]).unwrap();
/// let mut out = Tensor::zeros(conv.output_shape(input.shape()).unwrap()).unwrap();
/// conv.run(&k, &input, &mut out, &mut Vec::new()).unwrap();
/// assert_eq!(out.as_slice(), &[4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    cin: usize,
    cout: usize,
    stride: usize,
    act: Activation,
    packed: PackedPointwise,
}

impl Conv3x3 {
    /// Builds the layer from PyTorch-layout weights `[cout, cin, 3, 3]` and an optional bias `[cout]`,
    /// packed for `isa`.
    pub fn new(
        isa: Isa,
        cin: usize,
        cout: usize,
        weights_oihw: &[f32],
        bias: Option<&[f32]>,
        stride: usize,
        act: Activation,
    ) -> Result<Self> {
        if stride != 1 && stride != 2 {
            return Err(Error::param(
                "conv3x3 stride",
                format!("expected 1 or 2, found {stride}"),
            ));
        }
        if cin == 0 || cout == 0 {
            return Err(Error::shape(
                "conv3x3 channels",
                "cin, cout >= 1",
                format!("cin={cin} cout={cout}"),
            ));
        }
        if cout.checked_mul(cin * 9) != Some(weights_oihw.len()) {
            return Err(Error::shape(
                "conv3x3 weights [cout, cin, 3, 3]",
                format!("{cout} x {cin} x 3 x 3 elements"),
                weights_oihw.len(),
            ));
        }
        // im2col's K order is (ky, kx, ci): reorder [cout][ci][ky][kx] to [cout][(ky*3+kx)*cin + ci].
        let k = 9 * cin;
        let mut w = vec![0.0; cout * k];
        for co in 0..cout {
            for ci in 0..cin {
                for tap in 0..9 {
                    w[co * k + tap * cin + ci] = weights_oihw[(co * cin + ci) * 9 + tap];
                }
            }
        }
        let packed = PackedPointwise::pack(isa, k, cout, &w, bias)?;
        Ok(Conv3x3 {
            cin,
            cout,
            stride,
            act,
            packed,
        })
    }

    /// Input channels.
    pub fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Multiply-adds for an input of this shape (taps over the padding included, as im2col does).
    pub fn macs(&self, input: Shape) -> Result<u64> {
        let o = self.output_shape(input)?;
        Ok((o.n * o.h * o.w) as u64 * (9 * self.cin * self.cout) as u64)
    }

    /// Output shape for an input of shape `input`.
    pub fn output_shape(&self, input: Shape) -> Result<Shape> {
        if input.c != self.cin {
            return Err(Error::shape("conv3x3 input channels", self.cin, input.c));
        }
        if input.n == 0 || input.h == 0 || input.w == 0 {
            return Err(Error::shape("conv3x3 input", "n, h, w >= 1", input));
        }
        Ok(Shape::new(
            input.n,
            (input.h - 1) / self.stride + 1,
            (input.w - 1) / self.stride + 1,
            self.cout,
        ))
    }

    /// Runs the convolution. `scratch` holds one im2col band per thread; it grows on first use and
    /// is reused afterwards, so steady-state calls allocate nothing.
    ///
    /// The output rows of every image are cut into bands of a size set by the shape alone (an
    /// im2col band of about 64 Ki floats, `BAND_FLOATS`); the threads of `kernels` take whole bands (im2col,
    /// then the GEMM on the same thread), so the bits do not depend on the thread count.
    pub fn run(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let os = self.output_shape(input.shape())?;
        if output.shape() != os {
            return Err(Error::shape("conv3x3 output", os, output.shape()));
        }
        if kernels.isa() != self.packed.isa() {
            return Err(Error::param(
                "conv3x3 weights",
                format!(
                    "packed for {}, but the kernels in use are {}",
                    self.packed.isa(),
                    kernels.isa()
                ),
            ));
        }
        let is = input.shape();
        let k = 9 * self.cin;
        // As few bands as keep each within BAND_FLOATS, then rows spread evenly over them: 3 -> 28 at
        // 224x224 (at most 21 rows) runs 6 bands of 19 or 17 rows, not 5 of 21 and one of 7, which
        // left two threads 63 and 49 rows (Zen 4, AVX-512: 1.72x from the second thread; even bands
        // 1.92-1.98x, results/amd-epyc-zen4-2026-12-06).
        let max_rows = (BAND_FLOATS / (os.w * k)).clamp(1, os.h);
        let bands_per_image = os.h.div_ceil(max_rows);
        let band_rows = os.h.div_ceil(bands_per_image);
        let bands = is.n * bands_per_image;
        let slots = kernels.threads().min(bands).max(1);
        let band_len = band_rows * os.w * k;
        if scratch.len() < slots * band_len {
            scratch.resize(slots * band_len, 0.0);
        }
        let x = input.as_slice();
        let img_len = is.h * is.w * is.c;
        let out_row = os.w * self.cout;
        let y = SendPtr(output.as_mut_slice().as_mut_ptr());
        let cols_base = SendPtr(scratch.as_mut_ptr());
        let single = kernels.single_threaded();
        let run_band = |slot: usize, band: usize| -> Result<()> {
            let (b, oy0) = (band / bands_per_image, band % bands_per_image * band_rows);
            let rows = band_rows.min(os.h - oy0);
            let img = &x[b * img_len..(b + 1) * img_len];
            assert!(slot < slots, "slot {slot} of {slots}");
            // SAFETY: `scratch` holds `slots * band_len` floats and `slot < slots` (asserted; at
            // most `min(threads, bands)` threads run, each with its own slot), so this band's
            // im2col slice is in bounds and no other thread touches it during the call.
            let cols = unsafe {
                std::slice::from_raw_parts_mut(
                    cols_base.get().add(slot * band_len),
                    rows * os.w * k,
                )
            };
            im2col_3x3(
                img,
                is.h,
                is.w,
                self.cin,
                self.stride,
                oy0..oy0 + rows,
                os.w,
                cols,
            );
            let o0 = (b * os.h + oy0) * out_row;
            // SAFETY: `output` has shape `os` (checked above), so rows `oy0..oy0 + rows` of image
            // `b` are in bounds; each band index is handed to exactly one call, so the output
            // rows of concurrent calls are disjoint.
            let out = unsafe { std::slice::from_raw_parts_mut(y.get().add(o0), rows * out_row) };
            self.packed
                .run_slices(&single, rows * os.w, cols, out, self.act, None)
        };
        if kernels.threads() <= 1 || bands <= 1 {
            for band in 0..bands {
                run_band(0, band)?;
            }
            return Ok(());
        }
        // The ISA and every length were checked above, so a band cannot fail; should one, its error
        // is kept and returned after the call.
        let first_error = std::sync::Mutex::new(None);
        kernels.for_each_index(bands, |slot, band| {
            if let Err(e) = run_band(slot, band) {
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
        });
        match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Writes the 3x3 patches (padding 1) of output rows `oy` of one NHWC image into `cols`, one row of
/// `9 * c` floats per output pixel in (ky, kx, channel) order; taps over the padding are zero.
///
/// The three taps of one kernel row are adjacent pixels, so away from the left and right edges they
/// are one run of `3 * c` contiguous floats, copied at once. For RepViT's 3-channel stem the runs are
/// 9 floats of a compile-time length (no call to `memcpy` per tap): measured on conv1 (224 -> 112,
/// 3 -> 28, AVX-512), the tap-by-tap copy took about 45 % of the convolution, as much as the GEMM.
#[allow(clippy::too_many_arguments)]
fn im2col_3x3(
    img: &[f32],
    h: usize,
    w: usize,
    c: usize,
    stride: usize,
    oy: std::ops::Range<usize>,
    ow: usize,
    cols: &mut [f32],
) {
    match c {
        1 => im2col_fixed::<1, 3>(img, h, w, stride, oy, ow, cols),
        3 => im2col_fixed::<3, 9>(img, h, w, stride, oy, ow, cols),
        4 => im2col_fixed::<4, 12>(img, h, w, stride, oy, ow, cols),
        _ => im2col_any(img, h, w, c, stride, oy, ow, cols),
    }
}

/// [`im2col_3x3`] for `C` channels (`RUN = 3 * C`, the floats of one kernel row).
fn im2col_fixed<const C: usize, const RUN: usize>(
    img: &[f32],
    h: usize,
    w: usize,
    stride: usize,
    oy: std::ops::Range<usize>,
    ow: usize,
    cols: &mut [f32],
) {
    debug_assert_eq!(RUN, 3 * C);
    let k = 9 * C;
    for (r, y) in oy.enumerate() {
        let out_row = &mut cols[r * ow * k..(r + 1) * ow * k];
        for (x, patch) in out_row.chunks_exact_mut(k).enumerate() {
            // First input column of the patch; the run is whole when it and the two after it are
            // inside the image.
            let ix0 = (x * stride) as isize - 1;
            let whole = ix0 >= 0 && ix0 as usize + 2 < w;
            for (ky, dst) in patch.chunks_exact_mut(RUN).enumerate() {
                let iy = (y * stride + ky) as isize - 1;
                if iy < 0 || iy >= h as isize {
                    dst.fill(0.0);
                } else if whole {
                    let src = (iy as usize * w + ix0 as usize) * C;
                    let src: &[f32; RUN] = img[src..src + RUN].try_into().expect("run of RUN");
                    dst.copy_from_slice(src);
                } else {
                    for (kx, d) in dst.chunks_exact_mut(C).enumerate() {
                        let ix = ix0 + kx as isize;
                        if ix < 0 || ix >= w as isize {
                            d.fill(0.0);
                        } else {
                            let src = (iy as usize * w + ix as usize) * C;
                            d.copy_from_slice(&img[src..src + C]);
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col_3x3`] for any channel count.
#[allow(clippy::too_many_arguments)]
fn im2col_any(
    img: &[f32],
    h: usize,
    w: usize,
    c: usize,
    stride: usize,
    oy: std::ops::Range<usize>,
    ow: usize,
    cols: &mut [f32],
) {
    let k = 9 * c;
    for (r, y) in oy.enumerate() {
        for x in 0..ow {
            let row = &mut cols[(r * ow + x) * k..(r * ow + x + 1) * k];
            let ix0 = (x * stride) as isize - 1;
            let whole = ix0 >= 0 && ix0 as usize + 2 < w;
            for ky in 0..3 {
                let iy = (y * stride + ky) as isize - 1;
                let dst = &mut row[ky * 3 * c..(ky + 1) * 3 * c];
                if iy < 0 || iy >= h as isize {
                    dst.fill(0.0);
                } else if whole {
                    let src = (iy as usize * w + ix0 as usize) * c;
                    dst.copy_from_slice(&img[src..src + 3 * c]);
                } else {
                    for kx in 0..3 {
                        let ix = ix0 + kx as isize;
                        let d = &mut dst[kx * c..(kx + 1) * c];
                        if ix < 0 || ix >= w as isize {
                            d.fill(0.0);
                        } else {
                            let src = (iy as usize * w + ix as usize) * c;
                            d.copy_from_slice(&img[src..src + c]);
                        }
                    }
                }
            }
        }
    }
}
