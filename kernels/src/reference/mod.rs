//! The oracle: plain loops that are obviously right and slow on purpose. Production kernels are
//! tested against these. Computed in f64 and rounded once, so they are as exact as f32 output allows.

#[cfg(test)]
pub(crate) mod blocks;

use crate::activation::Activation;
use crate::error::Result;
use crate::ukernel::DwConvGeom;

/// The activation in f64, with the exact `erf`.
pub fn activation(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }
}

/// Depthwise k x k convolution over the whole tensor (layouts in [`DwConvGeom`], `output` is
/// `[n, oh, ow, c]`); zero padding of `k / 2` on every side.
pub fn dwconv(
    g: &DwConvGeom,
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
    let (oh, ow, c, k, p) = (g.oh(), g.ow(), g.c, g.k, g.pad() as isize);
    let mut total = vec![0.0f64; g.n * c];
    for b in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut acc = bias[ch] as f64;
                    for ky in 0..k {
                        for kx in 0..k {
                            // Input row and column of this tap; outside the image is zero padding.
                            let iy = (oy * g.stride + ky) as isize - p;
                            let ix = (ox * g.stride + kx) as isize - p;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let x = input[((b * g.h + iy as usize) * g.w + ix as usize) * c + ch]
                                as f64;
                            acc += x * weights[(ky * k + kx) * c + ch] as f64;
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
    g: &crate::ukernel::PointwiseGeom,
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

/// `x` rounded to bf16 as `vcvtne2ps2bf16` does (Intel SDM: round to nearest even, a denormal
/// input becomes a zero of its sign), widened back to f32. Written with the `half` crate's
/// rounding, independently of the kernels' own conversion ([`crate::convert`]).
pub fn round_bf16(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        half::bf16::from_f32(x).to_f32()
    }
}

/// Pointwise convolution in bf16 as the bf16 kernels compute it, rounding step by step in f32:
/// input and weights rounded with [`round_bf16`]; per output, the accumulator starts at the f32
/// bias; for each K-pair `(2i, 2i + 1)` (a missing last channel of odd K is zero) it adds the odd
/// channel's product, then the even one's, each as one f32 fused multiply-add with denormal
/// inputs and results flushed to zero (Intel SDM, "VDPBF16PS": FP32 FMA with DAZ, FTZ and RNE);
/// then the f32 activation ([`Activation::apply`]) and the residual added in f32. Layouts as in
/// [`pointwise`].
pub fn pointwise_bf16(
    g: &crate::ukernel::PointwiseGeom,
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
    let ftz = |v: f32| {
        if v.is_subnormal() {
            0.0f32.copysign(v)
        } else {
            v
        }
    };
    let step = |acc: f32, x: f32, w: f32| ftz(x.mul_add(w, ftz(acc)));
    for p in 0..g.p {
        for j in 0..g.n {
            let x = |kk: usize| {
                if kk < g.k {
                    round_bf16(input[p * g.k + kk])
                } else {
                    0.0
                }
            };
            let w = |kk: usize| {
                if kk < g.k {
                    round_bf16(weights_nk[j * g.k + kk])
                } else {
                    0.0
                }
            };
            let mut acc = bias.map_or(0.0, |b| b[j]);
            for i in 0..g.k.div_ceil(2) {
                acc = step(acc, x(2 * i + 1), w(2 * i + 1));
                acc = step(acc, x(2 * i), w(2 * i));
            }
            let mut y = g.act.apply(acc);
            if let Some(r) = residual {
                y += r[p * g.n + j];
            }
            output[p * g.n + j] = y;
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

/// The squeeze-excite gate in f64: `1 / (1 + exp(-x))` or `relu6(x + 3) / 6`.
pub fn gate(g: crate::se::Gate, x: f64) -> f64 {
    match g {
        crate::se::Gate::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        crate::se::Gate::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// Squeeze-excite weights in PyTorch layout: `fc1` `[r, c]` with bias `[r]`, `fc2` `[c, r]` with
/// bias `[c]`, the inner activation and the gate.
#[derive(Debug, Clone, Copy)]
pub struct SeWeights<'a> {
    /// Channels.
    pub c: usize,
    /// Reduced width.
    pub r: usize,
    /// `[r, c]`.
    pub fc1_w: &'a [f32],
    /// `[r]`.
    pub fc1_b: &'a [f32],
    /// `[c, r]`.
    pub fc2_w: &'a [f32],
    /// `[c]`.
    pub fc2_b: &'a [f32],
    /// After fc1.
    pub inner: Activation,
    /// After fc2.
    pub gate: crate::se::Gate,
}

/// The per-image channel scales `[n, c]` of squeeze-excite from per-channel means `[n, c]` (f64 in,
/// f64 out: `gate(fc2_b + fc2_w . inner(fc1_b + fc1_w . mean))`).
pub fn se_scale_from_means(se: &SeWeights<'_>, means: &[f64]) -> Vec<f64> {
    let (c, r) = (se.c, se.r);
    let mut out = Vec::with_capacity(means.len());
    for m in means.chunks_exact(c) {
        let hidden: Vec<f64> = (0..r)
            .map(|j| {
                let z = se.fc1_b[j] as f64
                    + (0..c)
                        .map(|i| se.fc1_w[j * c + i] as f64 * m[i])
                        .sum::<f64>();
                activation(se.inner, z)
            })
            .collect();
        for ch in 0..c {
            let z = se.fc2_b[ch] as f64
                + (0..r)
                    .map(|j| se.fc2_w[ch * r + j] as f64 * hidden[j])
                    .sum::<f64>();
            out.push(gate(se.gate, z));
        }
    }
    out
}

/// Per-image, per-channel sums of an NHWC tensor, `[n, c]`, in f64.
pub fn channel_sums(t: &crate::Tensor) -> Vec<f64> {
    let s = t.shape();
    let mut out = vec![0.0f64; s.n * s.c];
    for (i, &v) in t.as_slice().iter().enumerate() {
        let b = i / (s.h * s.w * s.c);
        out[b * s.c + i % s.c] += v as f64;
    }
    out
}

/// Global average pooling: NHWC `[n, h, w, c]` to `[n, c]` means, in f64.
pub fn global_avg_pool(t: &crate::Tensor) -> Vec<f64> {
    let s = t.shape();
    let px = (s.h * s.w) as f64;
    channel_sums(t).into_iter().map(|v| v / px).collect()
}

/// Squeeze-excite on a tensor: `x * scale[b, c]` with the scale from the channel means, rounded to
/// f32 once.
pub fn squeeze_excite(se: &SeWeights<'_>, t: &crate::Tensor) -> crate::Tensor {
    let scale = se_scale_from_means(se, &global_avg_pool(t));
    let mut out = t.clone();
    scale_channels(&mut out, &scale);
    out
}

/// Multiplies channel `c` of image `b` by `scale[b * C + c]`, in f64, rounded once.
pub fn scale_channels(t: &mut crate::Tensor, scale: &[f64]) {
    let s = t.shape();
    for (i, v) in t.as_mut_slice().iter_mut().enumerate() {
        let b = i / (s.h * s.w * s.c);
        *v = (*v as f64 * scale[b * s.c + i % s.c]) as f32;
    }
}

/// Fully connected layer: `y[b][j] = bias[j] + sum_i x[b][i] * w[j][i]`, PyTorch weights
/// `[outputs, inputs]`, in f64.
pub fn linear(
    x: &[f32],
    inputs: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    outputs: usize,
) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len() / inputs * outputs);
    for row in x.chunks_exact(inputs) {
        for j in 0..outputs {
            y.push(
                bias.map_or(0.0, |b| b[j] as f64)
                    + row
                        .iter()
                        .zip(&w[j * inputs..(j + 1) * inputs])
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>(),
            );
        }
    }
    y
}

/// Deterministic pseudo-random floats in `[-amp, amp)` (SplitMix64 from `seed`, `len` of them):
/// the test data of the kernel crate's tests, of the conformance tests and of the examples, the same
/// on every platform.
pub fn rand_vec(seed: u64, len: usize, amp: f32) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}
