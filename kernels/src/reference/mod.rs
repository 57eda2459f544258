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
