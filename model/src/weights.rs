//! From timm's parameter names to re-parameterised weights: every key and shape of a RepViT is
//! listed here once (in [`FusedWeights::build`]), and each ConvNorm, RepVGGDW and NormLinear is
//! folded as it is read. The result is still in PyTorch layouts, independent of any ISA; packing is
//! [`crate::RepVit::from_fused`]'s job.

use std::collections::BTreeMap;

use crate::checkpoint::StateDict;
use crate::config::{Config, se_reduced};
use crate::error::{Error, KeyDifference};
use crate::fuse::{self, BatchNorm, RepVggDwBranches};

/// BatchNorm epsilon everywhere in RepViT.
pub const BN_EPS: f64 = 1e-5;

/// Widths read off a checkpoint (channels, input channels, hidden widths) are refused above this:
/// 16x the widest published RepViT layer (`m2_3`'s 1280-wide channel mixers), and small enough that
/// every product of a few of them with an image size fits in `usize`.
pub const MAX_WIDTH: usize = 1 << 16;
/// Class counts read off a checkpoint are refused above this (ImageNet-22k has 21,841).
pub const MAX_CLASSES: usize = 1 << 20;
/// Channel-mixer expansion ratios read off a checkpoint are refused above this (RepViT uses 2).
pub const MAX_MLP_RATIO: usize = 64;

/// How a checkpoint stores the network.
///
/// - `Training`: timm's `state_dict()` of a model as built: `ConvNorm` (`*.c.weight`, `*.bn.*`),
///   RepVGGDW branches, NormLinear heads (`head.head.*`, `head.head_dist.*`). Folded on reading.
/// - `Deployed`: after timm's `model.fuse()` (or the official repository's `replace_batchnorm`,
///   renamed by [`crate::official`]): every `ConvNorm` and RepVGGDW is one convolution with a bias
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
        // MobileNets' bn3 after conv_pwl).
        let last_bn = key.contains("conv2.bn.")
            || key.contains("channel_downsample.bn.")
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
    pub config: Config,
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

pub(crate) fn fuse_err(p: &str) -> impl FnOnce(fuse::FuseError) -> Error + '_ {
    move |e| Error::Config {
        reason: format!("folding `{p}`: {e}"),
    }
}

pub(crate) fn read_bn(p: &mut dyn Params, prefix: &str, c: usize) -> Result<BatchNorm, Error> {
    Ok(BatchNorm {
        weight: p.tensor(&format!("{prefix}.weight"), &[c])?,
        bias: p.tensor(&format!("{prefix}.bias"), &[c])?,
        mean: p.tensor(&format!("{prefix}.running_mean"), &[c])?,
        var: p.tensor(&format!("{prefix}.running_var"), &[c])?,
        eps: BN_EPS,
    })
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
    let bn = read_bn(p, &format!("{prefix}.bn"), shape[0])?;
    let (weight, bias) = fuse::fold_bn(&w, None, &bn).map_err(fuse_err(prefix))?;
    Ok(Folded {
        cout: shape[0],
        cin: shape[1],
        weight,
        bias,
    })
}

/// A bias-free convolution `conv_key` of `shape` (`[cout, cin, kh, kw]`) followed by the
/// BatchNorm `bn_prefix` (timm's `conv_*` + `bn*` pairs in MobileNets), folded.
pub fn conv_bn(
    p: &mut dyn Params,
    conv_key: &str,
    bn_prefix: &str,
    shape: [usize; 4],
) -> Result<Folded, Error> {
    let w = p.tensor(conv_key, &shape)?;
    let bn = read_bn(p, bn_prefix, shape[0])?;
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
    let conv3_bn = read_bn(p, &format!("{prefix}.conv.bn"), c)?;
    let br = if legacy {
        RepVggDwBranches {
            conv3_weight,
            conv3_bn,
            conv1_weight: p.tensor(&format!("{prefix}.conv1.c.weight"), &[c, 1, 1, 1])?,
            conv1_bias: None,
            conv1_bn: Some(read_bn(p, &format!("{prefix}.conv1.bn"), c)?),
            bn: None,
        }
    } else {
        RepVggDwBranches {
            conv3_weight,
            conv3_bn,
            conv1_weight: p.tensor(&format!("{prefix}.conv1.weight"), &[c, 1, 1, 1])?,
            conv1_bias: Some(p.tensor(&format!("{prefix}.conv1.bias"), &[c])?),
            conv1_bn: None,
            bn: Some(read_bn(p, &format!("{prefix}.bn"), c)?),
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
fn hidden_width(c: usize, cfg: &Config) -> Result<usize, Error> {
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
    cfg: &Config,
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
    cfg: &Config,
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
    let bn = read_bn(p, &format!("{prefix}.bn"), c)?;
    let w = p.tensor(&format!("{prefix}.l.weight"), &[classes, c])?;
    let b = p.tensor(&format!("{prefix}.l.bias"), &[classes])?;
    fuse::fold_norm_linear(&w, Some(&b), &bn).map_err(fuse_err(prefix))
}

impl FusedWeights {
    /// Reads every parameter of `cfg` from `p` under timm's names (training layout), folding as
    /// it goes.
    pub fn build(cfg: &Config, p: &mut dyn Params) -> Result<FusedWeights, Error> {
        FusedWeights::build_layout(cfg, Layout::Training, p)
    }

    /// As [`FusedWeights::build`], for either [`Layout`]. `cfg.num_classes == 0` reads no head
    /// (timm's `num_classes=0`).
    pub fn build_layout(
        cfg: &Config,
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

    /// Reads a checkpoint: detects (or checks) the variant, reads and folds every tensor, and
    /// rejects tensors the model does not use.
    pub fn from_state_dict(
        mut sd: StateDict,
        variant: Option<&str>,
    ) -> Result<FusedWeights, Error> {
        let layout = Layout::of(&sd);
        let cfg = resolve_config(&sd, variant)?;
        let fused = FusedWeights::build_layout(&cfg, layout, &mut sd)?;
        if let Some(key) = sd.keys().next() {
            return Err(Error::UnexpectedKey {
                path: sd.path().to_path_buf(),
                key: key.to_string(),
                shape: sd.shape(key).unwrap_or_default().to_vec(),
            });
        }
        Ok(fused)
    }
}

/// Every key (and its shape) a checkpoint of `cfg` holds, in reading order, without
/// `num_batches_tracked`.
pub fn expected_keys(cfg: &Config) -> Result<Vec<(String, Vec<usize>)>, Error> {
    expected_keys_layout(cfg, Layout::Training)
}

/// As [`expected_keys`], for either [`Layout`].
pub fn expected_keys_layout(
    cfg: &Config,
    layout: Layout,
) -> Result<Vec<(String, Vec<usize>)>, Error> {
    let mut rec = KeyRecorder::default();
    FusedWeights::build_layout(cfg, layout, &mut rec)?;
    Ok(rec.keys)
}

/// A state dict of random parameters for `cfg` (see [`RandomParams`]), under timm's names.
pub fn random_state_dict(cfg: &Config, seed: u64) -> Result<StateDict, Error> {
    let mut rng = RandomParams::new(seed);
    let mut sd = StateDict::new(format!("<random {} seed {seed}>", cfg.name));
    for (key, shape) in expected_keys(cfg)? {
        let data = rng.tensor(&key, &shape)?;
        sd.insert(key, shape, data)?;
    }
    Ok(sd)
}

use crate::config::{MAX_BLOCKS, MAX_STAGES};

/// Parses `stages.{i}.blocks.{j}.` at the start of a key.
fn stage_block(key: &str) -> Option<(usize, Option<usize>)> {
    let rest = key.strip_prefix("stages.")?;
    let (i, rest) = rest.split_once('.')?;
    let i = i.parse().ok()?;
    let j = rest
        .strip_prefix("blocks.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(j, _)| j.parse().ok());
    Some((i, j))
}

/// Reads the configuration off a checkpoint's shapes: widths from the stem and the downsamples,
/// depths and SE placement from the block keys, legacy from the RepVGGDW keys, classes from the head
/// (none: headless, `num_classes == 0`). Works on both [`Layout`]s. Every size read is bounded
/// ([`MAX_WIDTH`], [`MAX_CLASSES`], [`MAX_MLP_RATIO`], 64 stages of 4096 blocks) and must be
/// non-zero; an error names the tensor and the bound.
pub fn detect_config(sd: &StateDict) -> Result<Config, Error> {
    let not = |reason: String| Error::NotRepVit {
        path: sd.path().to_path_buf(),
        reason,
    };
    let layout = Layout::of(sd);
    let conv = |prefix: &str| match layout {
        Layout::Training => format!("{prefix}.c.weight"),
        Layout::Deployed => format!("{prefix}.weight"),
    };
    // A dimension of `key`'s shape, within `1..=max`.
    let dim = |key: &str, rank: usize, axis: usize, max: usize, what: &str| {
        let s = match sd.shape(key) {
            Some(s) if s.len() == rank => s,
            Some(s) => {
                return Err(not(format!(
                    "tensor `{key}` has shape {s:?}, expected {rank} dimensions"
                )));
            }
            None => {
                return Err(not(format!("no tensor `{key}`; {}", sd.describe_keys())));
            }
        };
        match s[axis] {
            0 => Err(not(format!(
                "tensor `{key}` has shape {s:?}: {what} (dimension {axis}) is 0"
            ))),
            d if d > max => Err(not(format!(
                "tensor `{key}` has shape {s:?}: {what} {d} (dimension {axis}) exceeds the bound {max}"
            ))),
            d => Ok(d),
        }
    };
    let stem1 = conv("stem.conv1");
    if sd.shape(&stem1).is_none() {
        return Err(not(format!(
            "no tensor `stem.conv1.c.weight` (training layout) or `stem.conv1.weight` (deployed, after fuse()); {}",
            sd.describe_keys()
        )));
    }
    let in_chans = dim(&stem1, 4, 1, MAX_WIDTH, "input channels")?;
    let c0 = dim(&conv("stem.conv2"), 4, 0, MAX_WIDTH, "stem width")?;
    let mut depth: Vec<usize> = Vec::new();
    let mut se_at: BTreeMap<(usize, usize), bool> = BTreeMap::new();
    let mut legacy = None;
    for key in sd.keys() {
        if let Some((i, j)) = stage_block(key) {
            // Far beyond any RepViT: refuse before allocating for it.
            if i >= MAX_STAGES || j.is_some_and(|j| j >= MAX_BLOCKS) {
                return Err(not(format!(
                    "tensor `{key}`: stage or block index beyond {MAX_STAGES} stages of {MAX_BLOCKS} blocks"
                )));
            }
            if depth.len() <= i {
                depth.resize(i + 1, 0);
            }
            if let Some(j) = j {
                depth[i] = depth[i].max(j + 1);
                let se = key.contains(".se.");
                *se_at.entry((i, j)).or_insert(false) |= se;
            }
        }
        if key.contains("token_mixer.conv1.bn.") {
            legacy = Some(true);
        } else if key.contains("token_mixer.bn.") || key.contains("token_mixer.conv1.bias") {
            legacy = legacy.or(Some(false));
        }
    }
    if depth.is_empty() {
        return Err(not("no `stages.*` tensor".into()));
    }
    let mut embed_dim = vec![c0];
    for i in 1..depth.len() {
        let key = conv(&format!("stages.{i}.downsample.channel_downsample"));
        embed_dim.push(dim(&key, 4, 0, MAX_WIDTH, "stage width")?);
    }
    let se: Vec<Vec<bool>> = depth
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            (0..d)
                .map(|j| se_at.get(&(i, j)).copied().unwrap_or(false))
                .collect()
        })
        .collect();
    // The classifier: absent in a headless model (timm's `num_classes=0`).
    let (head, head_dist) = match layout {
        Layout::Training => ("head.head.l.weight", Some("head.head_dist.l.weight")),
        Layout::Deployed => ("head.weight", None),
    };
    let num_classes = if sd.shape(head).is_some() {
        dim(head, 2, 0, MAX_CLASSES, "class count")?
    } else if let Some(k) = sd.keys().find(|k| k.starts_with("head.")) {
        return Err(not(format!(
            "tensor `{k}` but no `{head}`: expected both or no head tensor (headless)"
        )));
    } else {
        0
    };
    // The channel mixer's expansion, from the first block or FFN present (timm's default if none).
    let mlp_key = (0..depth.len()).find_map(|i| {
        [
            conv(&format!("stages.{i}.blocks.0.channel_mixer.conv1")),
            conv(&format!("stages.{i}.downsample.ffn.conv1")),
        ]
        .into_iter()
        .find(|k| sd.shape(k).is_some())
        .map(|k| (i, k))
    });
    let mlp_ratio = match mlp_key {
        Some((i, key)) => {
            let hidden = dim(&key, 4, 0, MAX_WIDTH, "channel mixer width")?;
            let ratio = hidden / embed_dim[i];
            if ratio == 0 || ratio > MAX_MLP_RATIO || ratio * embed_dim[i] != hidden {
                return Err(not(format!(
                    "tensor `{key}`: hidden width {hidden} is not a multiple 1..={MAX_MLP_RATIO} of the stage width {}",
                    embed_dim[i]
                )));
            }
            ratio
        }
        None => 2,
    };
    let mut cfg = Config {
        name: "custom".into(),
        embed_dim,
        depth,
        se,
        legacy: legacy.unwrap_or(false),
        mlp_ratio,
        num_classes,
        distillation: head_dist.is_some_and(|k| sd.shape(k).is_some()),
        in_chans,
    };
    cfg.validate().map_err(|e| not(e.to_string()))?;
    if let Some(v) = cfg.matching_variant() {
        cfg.name = v.name.to_string();
    }
    Ok(cfg)
}

/// The configuration to read `sd` with: the detected one, or the named variant (with the
/// checkpoint's class count and heads) after checking that the checkpoint holds that variant.
pub fn resolve_config(sd: &StateDict, variant: Option<&str>) -> Result<Config, Error> {
    let Some(name) = variant else {
        return detect_config(sd);
    };
    let layout = Layout::of(sd);
    let mut want = Config::variant(name)?;
    let found = match detect_config(sd) {
        Ok(found) => found,
        // Not even the stem is there: read with the requested variant and report the first
        // missing key.
        Err(_) => return Ok(want),
    };
    want.num_classes = found.num_classes;
    want.distillation = found.distillation;
    if layout == Layout::Deployed {
        // Fusing erases the legacy RepVGGDW's difference: `m1` and `m0_9` deploy alike.
        want.legacy = found.legacy;
    }
    if want.same_structure(&found) {
        return Ok(want);
    }
    let first_difference =
        expected_keys_layout(&want, layout)?
            .into_iter()
            .find_map(|(key, shape)| match sd.shape(&key) {
                Some(s) if s == shape.as_slice() => None,
                s => Some(Box::new(KeyDifference {
                    key,
                    expected: shape,
                    found: s.map(<[usize]>::to_vec),
                })),
            });
    Err(Error::WrongVariant {
        path: sd.path().to_path_buf(),
        expected: want.to_string(),
        found: found.to_string(),
        first_difference,
    })
}
