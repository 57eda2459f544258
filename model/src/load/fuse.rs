//! Re-parameterisation: folding train-time branches and BatchNorms into single convolutions, as
//! timm's `fuse()` does, in f64 and rounded once.

use std::fmt;

/// Inference statistics and affine parameters of a BatchNorm over `len()` channels.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// gamma.
    pub weight: Vec<f32>,
    /// beta.
    pub bias: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    /// Added to the variance (PyTorch's default and RepViT's: 1e-5).
    pub eps: f64,
}

/// A shape mismatch found while fusing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseError {
    /// Which tensor.
    pub what: &'static str,
    /// Expected element count.
    pub expected: usize,
    /// Found element count.
    pub found: usize,
}

impl fmt::Display for FuseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {} elements, found {}",
            self.what, self.expected, self.found
        )
    }
}

impl std::error::Error for FuseError {}

fn expect_len(what: &'static str, v: &[f32], expected: usize) -> Result<(), FuseError> {
    if v.len() == expected {
        Ok(())
    } else {
        Err(FuseError {
            what,
            expected,
            found: v.len(),
        })
    }
}

impl BatchNorm {
    /// Channels.
    pub fn len(&self) -> usize {
        self.weight.len()
    }

    /// Whether it has no channel.
    pub fn is_empty(&self) -> bool {
        self.weight.is_empty()
    }

    fn check(&self, c: usize) -> Result<(), FuseError> {
        expect_len("batchnorm weight", &self.weight, c)?;
        expect_len("batchnorm bias", &self.bias, c)?;
        expect_len("batchnorm running_mean", &self.mean, c)?;
        expect_len("batchnorm running_var", &self.var, c)
    }

    /// Per-channel scale `gamma / sqrt(var + eps)` and shift `beta - mean * scale`, in f64.
    fn scale_shift(&self, ch: usize) -> (f64, f64) {
        let s = self.weight[ch] as f64 / (self.var[ch] as f64 + self.eps).sqrt();
        (s, self.bias[ch] as f64 - self.mean[ch] as f64 * s)
    }
}

/// Folds a BatchNorm into the convolution before it: `W' = W * s` per output channel,
/// `b' = beta + (b - mean) * s`. `weight` is `[cout, ...]` with `per_out` elements per output channel;
/// `bias` is the convolution's bias (`None` for a bias-free convolution).
pub fn fold_bn(
    weight: &[f32],
    bias: Option<&[f32]>,
    bn: &BatchNorm,
) -> Result<(Vec<f32>, Vec<f32>), FuseError> {
    let c = bn.len();
    bn.check(c)?;
    if c == 0 || !weight.len().is_multiple_of(c) {
        // The weight must hold the same number of elements for each of the BatchNorm's channels.
        let expected = c.max(1) * (weight.len() / c.max(1)).max(1);
        return Err(FuseError {
            what: "convolution weight (per BatchNorm channel)",
            expected,
            found: weight.len(),
        });
    }
    if let Some(b) = bias {
        expect_len("convolution bias", b, c)?;
    }
    let per_out = weight.len() / c;
    let mut w = vec![0.0; weight.len()];
    let mut b = vec![0.0; c];
    for ch in 0..c {
        let (s, shift) = bn.scale_shift(ch);
        for i in 0..per_out {
            w[ch * per_out + i] = (weight[ch * per_out + i] as f64 * s) as f32;
        }
        b[ch] = (bias.map_or(0.0, |b| b[ch] as f64) * s + shift) as f32;
    }
    Ok((w, b))
}

/// The train-time branches of RepViT's RepVGGDW token mixer, in PyTorch layouts.
///
/// Non-legacy (timm's current `RepVggDw`): `bn(bn3(conv3x3(x)) + conv1x1(x) + bias1 + x)`.
/// Legacy (`m1`, `m2`, `m3`): `bn3(conv3x3(x)) + bn1(conv1x1(x)) + x`, with `bn1` and no outer `bn`.
#[derive(Debug, Clone)]
pub struct RepVggDwBranches {
    /// Depthwise 3x3 weight `[c, 1, 3, 3]` (no bias).
    pub conv3_weight: Vec<f32>,
    /// BatchNorm after the 3x3.
    pub conv3_bn: BatchNorm,
    /// Depthwise 1x1 weight `[c, 1, 1, 1]`.
    pub conv1_weight: Vec<f32>,
    /// Non-legacy: the 1x1's own bias `[c]`. Legacy: `None`.
    pub conv1_bias: Option<Vec<f32>>,
    /// Legacy: the 1x1's BatchNorm. Non-legacy: `None`.
    pub conv1_bn: Option<BatchNorm>,
    /// Non-legacy: the BatchNorm after the sum. Legacy: `None`.
    pub bn: Option<BatchNorm>,
}

/// Folds RepVGGDW's branches into one depthwise 3x3 kernel `[c, 1, 3, 3]` and bias `[c]`:
/// `W = W3' + pad(W1') + identity` (1 at the centre tap), `b = b3' + b1'`, then the outer BatchNorm.
pub fn fold_repvgg_dw(br: &RepVggDwBranches) -> Result<(Vec<f32>, Vec<f32>), FuseError> {
    let c = br.conv3_bn.len();
    expect_len(
        "repvgg dw conv 3x3 weight [c, 1, 3, 3]",
        &br.conv3_weight,
        9 * c,
    )?;
    expect_len(
        "repvgg dw conv 1x1 weight [c, 1, 1, 1]",
        &br.conv1_weight,
        c,
    )?;
    let (w3, b3) = fold_bn(&br.conv3_weight, None, &br.conv3_bn)?;
    let (w1, b1) = match &br.conv1_bn {
        Some(bn1) => fold_bn(&br.conv1_weight, br.conv1_bias.as_deref(), bn1)?,
        None => {
            let b = br.conv1_bias.clone().unwrap_or_else(|| vec![0.0; c]);
            expect_len("repvgg dw conv 1x1 bias", &b, c)?;
            (br.conv1_weight.clone(), b)
        }
    };
    let mut w = w3;
    let mut b = vec![0.0; c];
    for ch in 0..c {
        // The 1x1 branch and the identity both act on the centre tap (index 4 of 3x3).
        w[ch * 9 + 4] = (w[ch * 9 + 4] as f64 + w1[ch] as f64 + 1.0) as f32;
        b[ch] = (b3[ch] as f64 + b1[ch] as f64) as f32;
    }
    match &br.bn {
        Some(bn) => fold_bn(&w, Some(&b), bn),
        None => Ok((w, b)),
    }
}

/// Folds a BatchNorm1d into the Linear after it (timm's `NormLinear.fuse`): with
/// `s = gamma / sqrt(var + eps)`, `W' = W * s` per input column and `b' = W @ (beta - mean * s) + bias`.
/// `weight` is `[out, in]` with `in == bn.len()`; `bias` is `[out]` or `None`.
pub fn fold_norm_linear(
    weight: &[f32],
    bias: Option<&[f32]>,
    bn: &BatchNorm,
) -> Result<(Vec<f32>, Vec<f32>), FuseError> {
    let k = bn.len();
    bn.check(k)?;
    if k == 0 || !weight.len().is_multiple_of(k) {
        let expected = k.max(1) * (weight.len() / k.max(1)).max(1);
        return Err(FuseError {
            what: "linear weight (per BatchNorm input)",
            expected,
            found: weight.len(),
        });
    }
    let out = weight.len() / k;
    if let Some(b) = bias {
        expect_len("linear bias", b, out)?;
    }
    let ss: Vec<(f64, f64)> = (0..k).map(|i| bn.scale_shift(i)).collect();
    let mut w = vec![0.0; weight.len()];
    let mut b = vec![0.0; out];
    for o in 0..out {
        let mut acc = bias.map_or(0.0, |b| b[o] as f64);
        for (i, &(s, shift)) in ss.iter().enumerate() {
            let wi = weight[o * k + i] as f64;
            w[o * k + i] = (wi * s) as f32;
            acc += wi * shift;
        }
        b[o] = acc as f32;
    }
    Ok((w, b))
}

/// Averages two classifiers of the same shape (timm's distilled head at inference):
/// `W = (Wa + Wb) / 2`, `b = (ba + bb) / 2`.
pub fn average_heads(
    a: (&[f32], &[f32]),
    b: (&[f32], &[f32]),
) -> Result<(Vec<f32>, Vec<f32>), FuseError> {
    expect_len("head_dist weight", b.0, a.0.len())?;
    expect_len("head_dist bias", b.1, a.1.len())?;
    let avg = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(&p, &q)| ((p as f64 + q as f64) * 0.5) as f32)
            .collect()
    };
    Ok((avg(a.0, b.0), avg(a.1, b.1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_cnn_kernels::dwconv::dw_weights_from_oihw;
    use mobile_cnn_kernels::{Activation, DwConvGeom, reference};
    use proptest::prelude::*;

    fn bn(vals: &[f32], c: usize) -> BatchNorm {
        // Non-trivial statistics: gamma around 1, beta and mean around 0, var in [0.1, 2].
        BatchNorm {
            weight: vals[..c].iter().map(|v| 1.0 + 0.5 * v).collect(),
            bias: vals[c..2 * c].iter().map(|v| 0.3 * v).collect(),
            mean: vals[2 * c..3 * c].iter().map(|v| 0.5 * v).collect(),
            var: vals[3 * c..4 * c].iter().map(|v| 1.05 + 0.95 * v).collect(),
            eps: 1e-5,
        }
    }

    fn apply_bn(bn: &BatchNorm, ch: usize, x: f64) -> f64 {
        (x - bn.mean[ch] as f64) / (bn.var[ch] as f64 + bn.eps).sqrt() * bn.weight[ch] as f64
            + bn.bias[ch] as f64
    }

    /// Runs the branches one by one (the train-time graph in eval mode), NHWC.
    fn unfused(br: &RepVggDwBranches, x: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
        let g = DwConvGeom {
            n: 1,
            h,
            w,
            c,
            k: 3,
            stride: 1,
            act: Activation::Identity,
        };
        let mut y3 = vec![0.0; x.len()];
        let w3 = dw_weights_from_oihw(c, 3, &br.conv3_weight).unwrap();
        reference::dwconv(&g, x, &w3, &vec![0.0; c], &mut y3, None).unwrap();
        let mut out = vec![0.0; x.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let ch = i % c;
            let a = apply_bn(&br.conv3_bn, ch, y3[i] as f64);
            let mut b = x[i] as f64 * br.conv1_weight[ch] as f64;
            if let Some(bias) = &br.conv1_bias {
                b += bias[ch] as f64;
            }
            if let Some(bn1) = &br.conv1_bn {
                b = apply_bn(bn1, ch, b);
            }
            let mut s = a + b + x[i] as f64;
            if let Some(bn) = &br.bn {
                s = apply_bn(bn, ch, s);
            }
            *o = s as f32;
        }
        out
    }

    proptest! {
        #[test]
        fn repvgg_dw_fold_matches_unfused_branches(
            c in 1usize..24, h in 1usize..7, w in 1usize..7, legacy in any::<bool>(),
            vals in prop::collection::vec(-1.0f32..1.0, 700..701),
        ) {
            let mut it = vals.iter().copied().cycle();
            let mut take = |n: usize| (0..n).map(|_| it.next().unwrap()).collect::<Vec<f32>>();
            let br = RepVggDwBranches {
                conv3_weight: take(9 * c),
                conv3_bn: bn(&take(4 * c), c),
                conv1_weight: take(c),
                conv1_bias: if legacy { None } else { Some(take(c)) },
                conv1_bn: if legacy { Some(bn(&take(4 * c), c)) } else { None },
                bn: if legacy { None } else { Some(bn(&take(4 * c), c)) },
            };
            let x: Vec<f32> = take(h * w * c).iter().map(|v| 3.0 * v).collect();
            let want = unfused(&br, &x, h, w, c);
            let (fw, fb) = fold_repvgg_dw(&br).unwrap();
            let g = DwConvGeom { n: 1, h, w, c, k: 3, stride: 1, act: Activation::Identity };
            let mut got = vec![0.0; x.len()];
            reference::dwconv(&g, &x, &dw_weights_from_oihw(c, 3, &fw).unwrap(), &fb, &mut got, None).unwrap();
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                prop_assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "element {}: fused {} unfused {}", i, a, b);
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let c = 4;
        let b = bn(&[0.5; 16], c);
        assert!(fold_bn(&[0.0; 10], None, &b).is_err());
        assert!(fold_bn(&[0.0; 8], Some(&[0.0; 3]), &b).is_err());
        let br = RepVggDwBranches {
            conv3_weight: vec![0.0; 35],
            conv3_bn: b.clone(),
            conv1_weight: vec![0.0; 4],
            conv1_bias: Some(vec![0.0; 4]),
            conv1_bn: None,
            bn: Some(b),
        };
        let e = fold_repvgg_dw(&br).unwrap_err();
        assert_eq!((e.expected, e.found), (36, 35));
    }

    #[test]
    fn norm_linear_fold_matches_bn_then_linear() {
        let (k, out) = (5, 3);
        let vals: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 23) as f32 / 11.5) - 1.0)
            .collect();
        let b = bn(&vals[..4 * k], k);
        let wt: Vec<f32> = (0..out * k)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.25)
            .collect();
        let bias = [0.1, -0.2, 0.3];
        let x: Vec<f32> = (0..k).map(|i| i as f32 * 0.7 - 1.0).collect();
        let (fw, fb) = fold_norm_linear(&wt, Some(&bias), &b).unwrap();
        for o in 0..out {
            let want: f64 = bias[o] as f64
                + (0..k)
                    .map(|i| wt[o * k + i] as f64 * apply_bn(&b, i, x[i] as f64))
                    .sum::<f64>();
            let got: f64 = fb[o] as f64
                + (0..k)
                    .map(|i| fw[o * k + i] as f64 * x[i] as f64)
                    .sum::<f64>();
            assert!((want - got).abs() < 1e-5, "{o}: {want} vs {got}");
        }
        assert!(fold_norm_linear(&wt[..14], None, &b).is_err());
        let (aw, ab) = average_heads((&[1.0, 3.0], &[2.0]), (&[3.0, 5.0], &[0.0])).unwrap();
        assert_eq!((aw, ab), (vec![2.0, 4.0], vec![1.0]));
        assert!(average_heads((&[1.0], &[2.0]), (&[1.0, 2.0], &[0.0])).is_err());
    }
}
