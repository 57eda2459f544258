//! Named parameters, whatever their source (a checkpoint, random values, a recorder of the keys a
//! family reads), and the helpers every family reads its layers with, folding BatchNorm as it
//! goes ([`Folded`]: PyTorch layouts, independent of any ISA).

use crate::error::Error;
use crate::load::checkpoint::StateDict;
use crate::load::fuse::{self, BatchNorm};

/// A source of named parameters: a checkpoint, random values, or a recorder of the expected keys.
pub trait Params {
    /// The tensor `key`, which must have `shape`.
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, Error>;
}

impl Params for StateDict {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        self.take(key, shape)
    }
}

/// Records every key and shape asked for, answering with plausible constants.
#[derive(Debug, Default)]
pub struct KeyRecorder {
    /// Keys and shapes, in the order asked.
    pub keys: Vec<(String, Vec<usize>)>,
}

impl Params for KeyRecorder {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        self.keys.push((key.to_string(), shape.to_vec()));
        Ok(vec![1.0; shape.iter().product()])
    }
}

/// Deterministic pseudo-random parameters (splitmix64), scaled like a trained network: convolution
/// and linear weights uniform in `±sqrt(3 / fan_in)`, BatchNorm statistics non-trivial, the last
/// BatchNorm of each residual branch small so that deep variants stay finite.
#[derive(Debug, Clone)]
pub struct RandomParams {
    state: u64,
}

impl RandomParams {
    /// A generator from a seed.
    pub fn new(seed: u64) -> RandomParams {
        RandomParams {
            state: seed ^ 0x5EED_0F2E_9717,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

impl Params for RandomParams {
    fn tensor(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        let n: usize = shape.iter().product();
        // The last BatchNorm of a residual branch (RepViT's conv2 / channel_downsample, the
        // MobileNets' bn3 after conv_pwl, MobileNetV4's pw_proj.bn).
        let last_bn = key.contains("conv2.bn.")
            || key.contains("channel_downsample.bn.")
            || key.contains("pw_proj.bn.")
            || key.ends_with("bn3.weight");
        let (lo, hi) = if key.ends_with("running_var") {
            (0.5, 1.5)
        } else if key.ends_with("weight") && shape.len() == 1 {
            // BatchNorm scales (RepViT's `*.bn.weight`, the MobileNets' `bn1`..`bn3`).
            if last_bn { (0.05, 0.2) } else { (0.5, 1.5) }
        } else if key.ends_with("running_mean") || key.ends_with("bias") {
            (-0.1, 0.1)
        } else {
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let a = (3.0 / fan_in as f32).sqrt();
            (-a, a)
        };
        Ok((0..n).map(|_| self.uniform(lo, hi)).collect())
    }
}

/// A convolution or linear layer after folding: PyTorch-layout weight and a bias. A headless
/// model's `head` has `cout == 0` and no elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// Output channels.
    pub cout: usize,
    /// Input channels per group (1 for depthwise).
    pub cin: usize,
    /// Weight `[cout, cin, kh, kw]` (or `[out, in]`).
    pub weight: Vec<f32>,
    /// Bias `[cout]`.
    pub bias: Vec<f32>,
}

/// A folding error of the layer `p`.
pub(crate) fn fuse_err(p: &str) -> impl FnOnce(fuse::FuseError) -> Error + '_ {
    move |e| Error::Config {
        reason: format!("folding `{p}`: {e}"),
    }
}

/// The BatchNorm `prefix` (`weight`, `bias`, `running_mean`, `running_var`, each `[c]`) with
/// epsilon `eps` (the family's: PyTorch's default 1e-5 for every family this crate ships).
pub(crate) fn read_bn(
    p: &mut dyn Params,
    prefix: &str,
    c: usize,
    eps: f64,
) -> Result<BatchNorm, Error> {
    Ok(BatchNorm {
        weight: p.tensor(&format!("{prefix}.weight"), &[c])?,
        bias: p.tensor(&format!("{prefix}.bias"), &[c])?,
        mean: p.tensor(&format!("{prefix}.running_mean"), &[c])?,
        var: p.tensor(&format!("{prefix}.running_var"), &[c])?,
        eps,
    })
}

/// A bias-free convolution `conv_key` of `shape` (`[cout, cin, kh, kw]`) followed by the
/// BatchNorm `bn_prefix` of epsilon `eps` (timm's `conv_*` + `bn*` pairs in MobileNets), folded.
pub fn conv_bn(
    p: &mut dyn Params,
    conv_key: &str,
    bn_prefix: &str,
    shape: [usize; 4],
    eps: f64,
) -> Result<Folded, Error> {
    let w = p.tensor(conv_key, &shape)?;
    let bn = read_bn(p, bn_prefix, shape[0], eps)?;
    let (weight, bias) = fuse::fold_bn(&w, None, &bn).map_err(fuse_err(conv_key))?;
    Ok(Folded {
        cout: shape[0],
        cin: shape[1],
        weight,
        bias,
    })
}

/// A convolution or linear layer with bias (`prefix.weight` of `shape`, `prefix.bias`).
pub fn with_bias(p: &mut dyn Params, prefix: &str, shape: &[usize]) -> Result<Folded, Error> {
    let (cout, cin) = (shape[0], shape.get(1).copied().unwrap_or(1));
    Ok(Folded {
        cout,
        cin,
        weight: p.tensor(&format!("{prefix}.weight"), shape)?,
        bias: p.tensor(&format!("{prefix}.bias"), &[cout])?,
    })
}
