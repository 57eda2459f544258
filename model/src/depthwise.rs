//! The depthwise layer of a step, for any odd kernel size: 3x3 runs on the kernel crate's registered
//! `dwconv3x3` kernels; other sizes go through [`DwConvKxk`] (the one place to switch when the
//! kernel crate's k x k depthwise lands).

use mobile_cnn_kernels::{Activation, DwConv3x3, Kernels, Shape, Tensor};

use crate::error::{Error, KernelContext};

/// A depthwise convolution with `k x k` taps, padding `k / 2`, stride 1 or 2, bias and a fused
/// activation; optionally the per-channel sums of its output (for squeeze-excite).
#[derive(Debug, Clone)]
pub(crate) enum Depthwise {
    /// 3x3: the registered SIMD kernels.
    K3(DwConv3x3),
    /// Any other odd size.
    Kxk(DwConvKxk),
}

impl Depthwise {
    /// From PyTorch-layout weights `[c, 1, k, k]` and a bias `[c]`.
    pub(crate) fn new(
        name: &str,
        c: usize,
        k: usize,
        weights_oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<Depthwise, Error> {
        if k == 3 {
            return Ok(Depthwise::K3(
                DwConv3x3::new(c, weights_oihw, bias, stride, act).layer(|| name.to_string())?,
            ));
        }
        DwConvKxk::new(c, k, weights_oihw, bias, stride, act)
            .map(Depthwise::Kxk)
            .map_err(|reason| Error::Config {
                reason: format!("{name}: {reason}"),
            })
    }

    /// Kernel size.
    pub(crate) fn k(&self) -> usize {
        match self {
            Depthwise::K3(_) => 3,
            Depthwise::Kxk(d) => d.k,
        }
    }

    /// Stride.
    pub(crate) fn stride(&self) -> usize {
        match self {
            Depthwise::K3(d) => d.stride(),
            Depthwise::Kxk(d) => d.stride,
        }
    }

    /// Fused activation.
    pub(crate) fn activation(&self) -> Activation {
        match self {
            Depthwise::K3(d) => d.activation(),
            Depthwise::Kxk(d) => d.act,
        }
    }

    /// Channels.
    pub(crate) fn channels(&self) -> usize {
        match self {
            Depthwise::K3(d) => d.channels(),
            Depthwise::Kxk(d) => d.c,
        }
    }

    /// Output shape for an input of shape `input`; errors when the channels differ.
    pub(crate) fn output_shape(&self, input: Shape) -> Result<Shape, Error> {
        if input.c != self.channels() || input.n == 0 || input.h == 0 || input.w == 0 {
            return Err(Error::Input {
                what: "depthwise input".into(),
                expected: format!("[n >= 1, h >= 1, w >= 1, c = {}]", self.channels()),
                found: input.to_string(),
            });
        }
        let s = self.stride();
        Ok(Shape::new(
            input.n,
            (input.h - 1) / s + 1,
            (input.w - 1) / s + 1,
            input.c,
        ))
    }

    /// Multiply-adds for an input of shape `input` (`k * k` per output element).
    pub(crate) fn macs(&self, input: Shape) -> Result<u64, Error> {
        let o = self.output_shape(input)?;
        Ok((self.k() * self.k() * o.len()) as u64)
    }

    /// Runs the layer; `sums` (`n * c` floats) receives the per-image channel sums of the output.
    pub(crate) fn run(
        &self,
        kernels: &Kernels,
        input: &Tensor,
        output: &mut Tensor,
        sums: Option<&mut [f32]>,
        name: &str,
    ) -> Result<(), Error> {
        match self {
            Depthwise::K3(d) => d
                .run(kernels, input, output, sums)
                .layer(|| name.to_string()),
            Depthwise::Kxk(d) => {
                let want = self.output_shape(input.shape())?;
                if output.shape() != want {
                    return Err(Error::Input {
                        what: format!("{name} output"),
                        expected: want.to_string(),
                        found: output.shape().to_string(),
                    });
                }
                if let Some(s) = &sums
                    && s.len() != want.n * want.c
                {
                    return Err(Error::Input {
                        what: format!("{name} sums"),
                        expected: format!("{} floats", want.n * want.c),
                        found: format!("{} floats", s.len()),
                    });
                }
                d.run(input, output, sums);
                Ok(())
            }
        }
    }
}

/// Depthwise `k x k` (odd `k`), NHWC, computed with plain loops.
///
/// TEMPORARY: stands in until the kernel crate registers k x k depthwise kernels; only
/// [`Depthwise::new`] chooses it, so switching is a change there.
#[derive(Debug, Clone)]
pub(crate) struct DwConvKxk {
    c: usize,
    k: usize,
    stride: usize,
    act: Activation,
    /// Tap-major `[k][k][c]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl DwConvKxk {
    fn new(
        c: usize,
        k: usize,
        oihw: &[f32],
        bias: &[f32],
        stride: usize,
        act: Activation,
    ) -> Result<DwConvKxk, String> {
        if k == 0 || k.is_multiple_of(2) {
            return Err(format!(
                "depthwise kernel size: expected an odd k, found {k}"
            ));
        }
        if stride != 1 && stride != 2 {
            return Err(format!("depthwise stride: expected 1 or 2, found {stride}"));
        }
        if c == 0 || oihw.len() != c * k * k || bias.len() != c {
            return Err(format!(
                "depthwise weights [{c}, 1, {k}, {k}] and bias [{c}]: found {} and {} elements",
                oihw.len(),
                bias.len()
            ));
        }
        let mut weights = vec![0.0; c * k * k];
        for ch in 0..c {
            for tap in 0..k * k {
                weights[tap * c + ch] = oihw[ch * k * k + tap];
            }
        }
        Ok(DwConvKxk {
            c,
            k,
            stride,
            act,
            weights,
            bias: bias.to_vec(),
        })
    }

    fn run(&self, input: &Tensor, output: &mut Tensor, mut sums: Option<&mut [f32]>) {
        let Shape { n, h, w, c } = input.shape();
        let o = output.shape();
        let (k, s, pad) = (self.k, self.stride, self.k / 2);
        let x = input.as_slice();
        let y = output.as_mut_slice();
        if let Some(s) = sums.as_deref_mut() {
            s.fill(0.0);
        }
        let mut acc = vec![0.0f32; c];
        for b in 0..n {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    acc.copy_from_slice(&self.bias);
                    for ky in 0..k {
                        let Some(iy) = (oy * s + ky).checked_sub(pad).filter(|&v| v < h) else {
                            continue;
                        };
                        for kx in 0..k {
                            let Some(ix) = (ox * s + kx).checked_sub(pad).filter(|&v| v < w) else {
                                continue;
                            };
                            let px = &x[((b * h + iy) * w + ix) * c..][..c];
                            let wt = &self.weights[(ky * k + kx) * c..][..c];
                            // Unfused: `mul_add` without a target FMA is a libm call per tap.
                            for ((a, &xv), &wv) in acc.iter_mut().zip(px).zip(wt) {
                                *a += xv * wv;
                            }
                        }
                    }
                    let out = &mut y[((b * o.h + oy) * o.w + ox) * c..][..c];
                    for (dst, &a) in out.iter_mut().zip(&acc) {
                        *dst = self.act.apply(a);
                    }
                    if let Some(sm) = sums.as_deref_mut() {
                        for (sv, &v) in sm[b * c..][..c].iter_mut().zip(out.iter()) {
                            *sv += v;
                        }
                    }
                }
            }
        }
    }
}
