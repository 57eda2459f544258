//! The oracle: plain loops that are obviously right and slow on purpose. Production kernels are
//! tested against these. Computed in f64 and rounded once, so they are as exact as f32 output allows.

use crate::activation::Activation;
use crate::dwconv::DwConv3x3Geom;
use crate::error::Result;

/// The activation in f64, with the exact `erf`.
pub fn activation(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
    }
}

/// Depthwise 3x3 convolution (layouts in [`DwConv3x3Geom`]); zero padding of 1 on every side.
pub fn dwconv3x3(
    g: &DwConv3x3Geom,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    sums: Option<&mut [f32]>,
) -> Result<()> {
    g.check(
        input.len(),
        weights.len(),
        bias.len(),
        output.len(),
        sums.as_ref().map(|s| s.len()),
    )?;
    let (oh, ow, c) = (g.oh(), g.ow(), g.c);
    let mut total = vec![0.0f64; g.n * c];
    for b in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut acc = bias[ch] as f64;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            // Input row and column of this tap; outside the image is zero padding.
                            let iy = (oy * g.stride + ky) as isize - 1;
                            let ix = (ox * g.stride + kx) as isize - 1;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let x = input[((b * g.h + iy as usize) * g.w + ix as usize) * c + ch]
                                as f64;
                            acc += x * weights[(ky * 3 + kx) * c + ch] as f64;
                        }
                    }
                    let y = activation(g.act, acc) as f32;
                    output[((b * oh + oy) * ow + ox) * c + ch] = y;
                    total[b * c + ch] += y as f64;
                }
            }
        }
    }
    if let Some(s) = sums {
        for (s, t) in s.iter_mut().zip(total) {
            *s = t as f32;
        }
    }
    Ok(())
}

/// Pointwise convolution: `out[p][j] = act(bias[j] + sum_k input[p][k] * weights[j][k]) + residual[p][j]`,
/// with PyTorch-layout weights `[n, k]` and optional bias `[n]` and residual `[p, n]`.
pub fn pointwise(
    g: &crate::pointwise::PointwiseGeom,
    input: &[f32],
    weights_nk: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    output: &mut [f32],
) -> Result<()> {
    g.check(input.len(), output.len(), residual.map(<[f32]>::len))?;
    if weights_nk.len() != g.n * g.k || bias.is_some_and(|b| b.len() != g.n) {
        return Err(crate::Error::shape(
            "reference pointwise weights/bias",
            format!("[{}, {}] and [{}]", g.n, g.k, g.n),
            weights_nk.len(),
        ));
    }
    for p in 0..g.p {
        for j in 0..g.n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for k in 0..g.k {
                acc += input[p * g.k + k] as f64 * weights_nk[j * g.k + k] as f64;
            }
            let mut y = activation(g.act, acc);
            if let Some(r) = residual {
                y += r[p * g.n + j] as f64;
            }
            output[p * g.n + j] = y as f32;
        }
    }
    Ok(())
}

/// Dense 3x3 convolution, padding 1: NHWC input `[n, h, w, cin]`, PyTorch weights
/// `[cout, cin, 3, 3]`, optional bias `[cout]`, NHWC output `[n, oh, ow, cout]`.
pub fn conv3x3(
    input: &crate::Tensor,
    weights_oihw: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    stride: usize,
    act: Activation,
) -> crate::Tensor {
    let s = input.shape();
    let (oh, ow) = ((s.h - 1) / stride + 1, (s.w - 1) / stride + 1);
    let mut out =
        crate::Tensor::zeros(crate::Shape::new(s.n, oh, ow, cout)).expect("small test shapes");
    let x = input.as_slice();
    let o = out.as_mut_slice();
    for b in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..cout {
                    let mut acc = bias.map_or(0.0, |b| b[co] as f64);
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (oy * stride + ky) as isize - 1;
                            let ix = (ox * stride + kx) as isize - 1;
                            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                continue;
                            }
                            for ci in 0..s.c {
                                let xv = x[((b * s.h + iy as usize) * s.w + ix as usize) * s.c + ci]
                                    as f64;
                                acc +=
                                    xv * weights_oihw[((co * s.c + ci) * 3 + ky) * 3 + kx] as f64;
                            }
                        }
                    }
                    o[((b * oh + oy) * ow + ox) * cout + co] = activation(act, acc) as f32;
                }
            }
        }
    }
    out
}
