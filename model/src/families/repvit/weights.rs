//! From timm's parameter names to re-parameterised RepViT weights: every key and shape of a RepViT
//! is listed here once (in [`FusedWeights::build`]), and each ConvNorm, RepVGGDW and NormLinear is
//! folded as it is read. The result is still in PyTorch layouts, independent of any ISA; packing is
//! the builder's job (`builder.rs`, through [`crate::Network::from_fused`]).

use super::config::{RepVitConfig, se_reduced};
use crate::error::Error;
use crate::load::bounds::MAX_WIDTH;
use crate::load::checkpoint::StateDict;
use crate::load::fuse::{self, RepVggDwBranches};
use crate::load::params::{Folded, KeyRecorder, Params, RandomParams, fuse_err, read_bn};

/// BatchNorm epsilon of every RepViT BatchNorm (timm's `repvit.py` and the official repository
/// build them with PyTorch's default, 1e-5). RepViT's alone: each family names its own.
pub const BN_EPS: f64 = 1e-5;

/// How a checkpoint stores the network.
///
/// - `Training`: timm's `state_dict()` of a model as built: `ConvNorm` (`*.c.weight`, `*.bn.*`),
///   RepVGGDW branches, NormLinear heads (`head.head.*`, `head.head_dist.*`). Folded on reading.
/// - `Deployed`: after timm's `model.fuse()` (or the official repository's `replace_batchnorm`,
///   renamed by [`super::official`]): every `ConvNorm` and RepVGGDW is one convolution with a bias
///   (`stem.conv1.weight`, `*.token_mixer.weight`, `*.channel_mixer.conv1.weight`, ... and their
///   `.bias`), and the two heads are one averaged linear layer (`head.weight`, `head.bias`). Used as
///   stored. The legacy RepVGGDW leaves no trace once fused, so deployed checkpoints always detect
///   as non-legacy; both compute the same network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Unfused (BatchNorm statistics present).
    Training,
    /// Re-parameterised (`model.fuse()`).
    Deployed,
}

impl Layout {
    /// The layout of a state dict: `Deployed` when it holds `stem.conv1.weight` and no
    /// `stem.conv1.c.weight`.
    pub fn of(sd: &StateDict) -> Layout {
        if sd.shape("stem.conv1.c.weight").is_none() && sd.shape("stem.conv1.weight").is_some() {
            Layout::Deployed
        } else {
            Layout::Training
        }
    }
}

/// Squeeze-excite parameters (nothing to fold).
#[derive(Debug, Clone, PartialEq)]
pub struct SeWeights {
    /// Channels.
    pub c: usize,
    /// Reduced width.
    pub r: usize,
    /// `fc1` `[r, c]` and bias `[r]`.
    pub fc1: Folded,
    /// `fc2` `[c, r]` and bias `[c]`.
    pub fc2: Folded,
}

/// A RepViT block after re-parameterisation: `t = se(dw(x))`, `out = t + pw2(gelu(pw1(t)))`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockWeights {
    /// Channels.
    pub c: usize,
    /// The fused RepVGGDW token mixer: depthwise 3x3 `[c, 1, 3, 3]`.
    pub dw: Folded,
    /// Squeeze-excite, if the block has one.
    pub se: Option<SeWeights>,
    /// Channel mixer expansion `[hidden, c]`.
    pub pw1: Folded,
    /// Channel mixer projection `[c, hidden]`.
    pub pw2: Folded,
}

/// A downsample after re-parameterisation: `pre_block`, depthwise 3x3 stride 2, 1x1 to the new
/// width, then `y + ffn(y)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DownsampleWeights {
    /// The block at the input width (no SE).
    pub pre_block: BlockWeights,
    /// Depthwise 3x3 stride 2 `[cin, 1, 3, 3]`.
    pub spatial: Folded,
    /// 1x1 `[cout, cin]`.
    pub channel: Folded,
    /// FFN expansion `[hidden, cout]`.
    pub ffn1: Folded,
    /// FFN projection `[cout, hidden]`.
    pub ffn2: Folded,
}

/// One stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageWeights {
    /// Absent in stage 0.
    pub downsample: Option<DownsampleWeights>,
    /// The blocks.
    pub blocks: Vec<BlockWeights>,
}

/// A whole RepViT after re-parameterisation, in PyTorch layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedWeights {
    /// The configuration the weights were read for.
    pub config: RepVitConfig,
    /// Stem 3x3 stride 2, `in_chans -> C0/2` (GELU follows).
    pub stem1: Folded,
    /// Stem 3x3 stride 2, `C0/2 -> C0`.
    pub stem2: Folded,
    /// The stages.
    pub stages: Vec<StageWeights>,
    /// The classifier: both NormLinear heads folded and averaged, `[classes, C_last]`; for a
    /// headless model (`num_classes == 0`) `cout == 0` and the weight and bias are empty.
    pub head: Folded,
}

/// A convolution with a bias, as `fuse()` leaves a `ConvNorm` or RepVGGDW: `prefix.weight` of
/// `shape`, `prefix.bias` `[shape[0]]`.
fn conv_plain(p: &mut dyn Params, prefix: &str, shape: [usize; 4]) -> Result<Folded, Error> {
    Ok(Folded {
        cout: shape[0],
        cin: shape[1],
        weight: p.tensor(&format!("{prefix}.weight"), &shape)?,
        bias: p.tensor(&format!("{prefix}.bias"), &shape[..1])?,
    })
}

/// A timm `ConvNorm` (`prefix.c.weight` of `shape`, `prefix.bn.*`), folded; deployed: as stored.
fn conv_norm(
    p: &mut dyn Params,
    prefix: &str,
    shape: [usize; 4],
    layout: Layout,
) -> Result<Folded, Error> {
    if layout == Layout::Deployed {
        return conv_plain(p, prefix, shape);
    }
    let w = p.tensor(&format!("{prefix}.c.weight"), &shape)?;
    let bn = read_bn(p, &format!("{prefix}.bn"), shape[0], BN_EPS)?;
    let (weight, bias) = fuse::fold_bn(&w, None, &bn).map_err(fuse_err(prefix))?;
    Ok(Folded {
        cout: shape[0],
        cin: shape[1],
        weight,
        bias,
    })
}

fn repvgg_dw(
    p: &mut dyn Params,
    prefix: &str,
    c: usize,
    legacy: bool,
    layout: Layout,
) -> Result<Folded, Error> {
    if layout == Layout::Deployed {
        return conv_plain(p, prefix, [c, 1, 3, 3]);
    }
    let conv3_weight = p.tensor(&format!("{prefix}.conv.c.weight"), &[c, 1, 3, 3])?;
    let conv3_bn = read_bn(p, &format!("{prefix}.conv.bn"), c, BN_EPS)?;
    let br = if legacy {
        RepVggDwBranches {
            conv3_weight,
            conv3_bn,
            conv1_weight: p.tensor(&format!("{prefix}.conv1.c.weight"), &[c, 1, 1, 1])?,
            conv1_bias: None,
            conv1_bn: Some(read_bn(p, &format!("{prefix}.conv1.bn"), c, BN_EPS)?),
            bn: None,
        }
    } else {
        RepVggDwBranches {
            conv3_weight,
            conv3_bn,
            conv1_weight: p.tensor(&format!("{prefix}.conv1.weight"), &[c, 1, 1, 1])?,
            conv1_bias: Some(p.tensor(&format!("{prefix}.conv1.bias"), &[c])?),
            conv1_bn: None,
            bn: Some(read_bn(p, &format!("{prefix}.bn"), c, BN_EPS)?),
        }
    };
    let (weight, bias) = fuse::fold_repvgg_dw(&br).map_err(fuse_err(prefix))?;
    Ok(Folded {
        cout: c,
        cin: 1,
        weight,
        bias,
    })
}

fn conv_bias(p: &mut dyn Params, prefix: &str, cout: usize, cin: usize) -> Result<Folded, Error> {
    Ok(Folded {
        cout,
        cin,
        weight: p.tensor(&format!("{prefix}.weight"), &[cout, cin, 1, 1])?,
        bias: p.tensor(&format!("{prefix}.bias"), &[cout])?,
    })
}

/// `c * mlp_ratio`, refused above [`MAX_WIDTH`] (the ratio comes from a file's shapes).
fn hidden_width(c: usize, cfg: &RepVitConfig) -> Result<usize, Error> {
    c.checked_mul(cfg.mlp_ratio)
        .filter(|&h| h <= MAX_WIDTH)
        .ok_or_else(|| Error::Config {
            reason: format!(
                "channel mixer width {c} x mlp_ratio {} exceeds the bound {MAX_WIDTH}",
                cfg.mlp_ratio
            ),
        })
}

fn mlp(
    p: &mut dyn Params,
    prefix: &str,
    c: usize,
    cfg: &RepVitConfig,
    layout: Layout,
) -> Result<(Folded, Folded), Error> {
    let hidden = hidden_width(c, cfg)?;
    Ok((
        conv_norm(p, &format!("{prefix}.conv1"), [hidden, c, 1, 1], layout)?,
        conv_norm(p, &format!("{prefix}.conv2"), [c, hidden, 1, 1], layout)?,
    ))
}

fn block(
    p: &mut dyn Params,
    prefix: &str,
    c: usize,
    se: bool,
    cfg: &RepVitConfig,
    layout: Layout,
) -> Result<BlockWeights, Error> {
    let dw = repvgg_dw(p, &format!("{prefix}.token_mixer"), c, cfg.legacy, layout)?;
    let se = if se {
        let r = se_reduced(c);
        Some(SeWeights {
            c,
            r,
            fc1: conv_bias(p, &format!("{prefix}.se.fc1"), r, c)?,
            fc2: conv_bias(p, &format!("{prefix}.se.fc2"), c, r)?,
        })
    } else {
        None
    };
    let (pw1, pw2) = mlp(p, &format!("{prefix}.channel_mixer"), c, cfg, layout)?;
    Ok(BlockWeights {
        c,
        dw,
        se,
        pw1,
        pw2,
    })
}

fn norm_linear(
    p: &mut dyn Params,
    prefix: &str,
    classes: usize,
    c: usize,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let bn = read_bn(p, &format!("{prefix}.bn"), c, BN_EPS)?;
    let w = p.tensor(&format!("{prefix}.l.weight"), &[classes, c])?;
    let b = p.tensor(&format!("{prefix}.l.bias"), &[classes])?;
    fuse::fold_norm_linear(&w, Some(&b), &bn).map_err(fuse_err(prefix))
}

impl FusedWeights {
    /// Reads every parameter of `cfg` from `p` under timm's names (training layout), folding as
    /// it goes.
    pub fn build(cfg: &RepVitConfig, p: &mut dyn Params) -> Result<FusedWeights, Error> {
        FusedWeights::build_layout(cfg, Layout::Training, p)
    }

    /// As [`FusedWeights::build`], for either [`Layout`]. `cfg.num_classes == 0` reads no head
    /// (timm's `num_classes=0`).
    pub fn build_layout(
        cfg: &RepVitConfig,
        layout: Layout,
        p: &mut dyn Params,
    ) -> Result<FusedWeights, Error> {
        cfg.validate()?;
        let c0 = cfg.embed_dim[0];
        let stem1 = conv_norm(p, "stem.conv1", [c0 / 2, cfg.in_chans, 3, 3], layout)?;
        let stem2 = conv_norm(p, "stem.conv2", [c0, c0 / 2, 3, 3], layout)?;
        let mut stages = Vec::with_capacity(cfg.embed_dim.len());
        let mut cin = c0;
        for (i, (&c, se_flags)) in cfg.embed_dim.iter().zip(&cfg.se).enumerate() {
            let downsample = if i == 0 {
                if c != c0 {
                    return Err(Error::Config {
                        reason: format!("stage 0 width {c} differs from C0 {c0}"),
                    });
                }
                None
            } else {
                let pre = format!("stages.{i}.downsample");
                let pre_block = block(p, &format!("{pre}.pre_block"), cin, false, cfg, layout)?;
                let spatial = conv_norm(
                    p,
                    &format!("{pre}.spatial_downsample"),
                    [cin, 1, 3, 3],
                    layout,
                )?;
                let channel = conv_norm(
                    p,
                    &format!("{pre}.channel_downsample"),
                    [c, cin, 1, 1],
                    layout,
                )?;
                let (ffn1, ffn2) = mlp(p, &format!("{pre}.ffn"), c, cfg, layout)?;
                Some(DownsampleWeights {
                    pre_block,
                    spatial,
                    channel,
                    ffn1,
                    ffn2,
                })
            };
            let blocks = se_flags
                .iter()
                .enumerate()
                .map(|(j, &se)| block(p, &format!("stages.{i}.blocks.{j}"), c, se, cfg, layout))
                .collect::<Result<Vec<_>, Error>>()?;
            stages.push(StageWeights { downsample, blocks });
            cin = c;
        }
        let (classes, cl) = (cfg.num_classes, cfg.features());
        let (w, b) = match layout {
            // Headless (`num_classes=0`): timm's head is an Identity with no tensors.
            _ if classes == 0 => (Vec::new(), Vec::new()),
            Layout::Deployed => (
                p.tensor("head.weight", &[classes, cl])?,
                p.tensor("head.bias", &[classes])?,
            ),
            Layout::Training => {
                let (mut w, mut b) = norm_linear(p, "head.head", classes, cl)?;
                if cfg.distillation {
                    let (wd, bd) = norm_linear(p, "head.head_dist", classes, cl)?;
                    (w, b) = fuse::average_heads((&w, &b), (&wd, &bd))
                        .map_err(fuse_err("head.head_dist"))?;
                }
                (w, b)
            }
        };
        Ok(FusedWeights {
            config: cfg.clone(),
            stem1,
            stem2,
            stages,
            head: Folded {
                cout: classes,
                cin: cl,
                weight: w,
                bias: b,
            },
        })
    }
}

/// Every key (and its shape) a checkpoint of `cfg` holds, in reading order, without
/// `num_batches_tracked`.
pub fn expected_keys(cfg: &RepVitConfig) -> Result<Vec<(String, Vec<usize>)>, Error> {
    expected_keys_layout(cfg, Layout::Training)
}

/// As [`expected_keys`], for either [`Layout`].
pub fn expected_keys_layout(
    cfg: &RepVitConfig,
    layout: Layout,
) -> Result<Vec<(String, Vec<usize>)>, Error> {
    let mut rec = KeyRecorder::default();
    FusedWeights::build_layout(cfg, layout, &mut rec)?;
    Ok(rec.keys)
}

/// A state dict of random parameters for `cfg` (see [`RandomParams`]), under timm's names.
pub fn random_state_dict(cfg: &RepVitConfig, seed: u64) -> Result<StateDict, Error> {
    let mut rng = RandomParams::new(seed);
    let mut sd = StateDict::new(format!("<random {} seed {seed}>", cfg.name));
    for (key, shape) in expected_keys(cfg)? {
        let data = rng.tensor(&key, &shape)?;
        sd.insert(key, shape, data)?;
    }
    Ok(sd)
}
