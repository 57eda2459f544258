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
    if c == 0 || weight.len() % c != 0 {
        return Err(FuseError {
            what: "convolution weight",
            expected: c.max(1) * (weight.len() / c.max(1)).max(1),
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
