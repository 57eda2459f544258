//! The networks timm builds from its `efficientnet_blocks` (timm 1.0): MobileNetV3 ("Searching for
//! MobileNetV3", Howard et al. 2019), MobileNetV2 ("MobileNetV2: Inverted Residuals and Linear
//! Bottlenecks", Sandler et al. 2018), EfficientNet-B0 ("EfficientNet: Rethinking Model Scaling for
//! Convolutional Neural Networks", Tan and Le 2019) and EfficientNet-Lite0 (its ReLU6 variant
//! without squeeze-excite). timm builds MobileNetV2 and the EfficientNets with one class
//! (`EfficientNet`) and MobileNetV3 with its sibling: same blocks, same keys. Here: a configuration
//! table per model, detection from checkpoint shapes, and a builder that reads timm's keys, folds
//! each BatchNorm and appends steps to the shared [`Graph`].
//!
//! Widths, kernel sizes, expansion and squeeze-excite widths come from the tensors (so width
//! multipliers such as `mobilenetv3_large_075` load too); what tensors cannot say (strides and
//! activations per stage, block types) comes from the family's table below, which follows timm's
//! architecture strings (`_gen_mobilenet_v3`, `_gen_mobilenet_v2`).

use std::fmt;

use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, Kernels};

use crate::error::{Error, KernelContext};
pub use crate::families::family::BN_EPS;
use crate::families::family::{
    self, Family, Resolver, block_depths, classifier_outputs, conv3x3_bn, depthwise_bn, dims,
    expected_keys_of, pack, pointwise_bn, push_classifier, push_stages, random_state_dict_of,
};
use crate::families::widths::make_divisible;
use crate::graph::{Graph, Op, Vector};
use crate::load::checkpoint::StateDict;
use crate::load::params::{Params, with_bias};
use crate::preprocess::EvalTransform;

/// The models timm registers under these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MobileNetKind {
    /// `mobilenetv3_large_*`.
    V3Large,
    /// `mobilenetv3_small_*`.
    V3Small,
    /// `mobilenetv2_*`.
    V2,
    /// `efficientnet_b0`: SiLU, squeeze-excite (SiLU inside, sigmoid gate) in every block.
    EfficientNetB0,
    /// `efficientnet_lite0`: ReLU6, no squeeze-excite, stem and head widths fixed.
    EfficientNetLite0,
}

/// Per stage: first block's stride, the stage's activation, blocks at multiplier 1.0 as
/// `(kernel, expanded width, output width, squeeze-excite)`.
struct StageSpec {
    stride: usize,
    act: Activation,
    blocks: &'static [(usize, usize, usize, bool)],
}

const R: Activation = Activation::Relu;
const HS: Activation = Activation::HardSwish;
const R6: Activation = Activation::Relu6;
const SI: Activation = Activation::Silu;

const fn st(
    stride: usize,
    act: Activation,
    blocks: &'static [(usize, usize, usize, bool)],
) -> StageSpec {
    StageSpec {
        stride,
        act,
        blocks,
    }
}

/// timm's `mobilenetv3_large_100` (stage 0: depthwise-separable; last stage: 1x1 ConvBnAct).
#[rustfmt::skip]
const V3_LARGE: [StageSpec; 7] = [
    st(1, R, &[(3, 16, 16, false)]),
    st(2, R, &[(3, 64, 24, false), (3, 72, 24, false)]),
    st(2, R, &[(5, 72, 40, true), (5, 120, 40, true), (5, 120, 40, true)]),
    st(2, HS, &[(3, 240, 80, false), (3, 200, 80, false), (3, 184, 80, false), (3, 184, 80, false)]),
    st(1, HS, &[(3, 480, 112, true), (3, 672, 112, true)]),
    st(2, HS, &[(5, 672, 160, true), (5, 960, 160, true), (5, 960, 160, true)]),
    st(1, HS, &[(1, 960, 960, false)]),
];

/// timm's `mobilenetv3_small_100`.
#[rustfmt::skip]
const V3_SMALL: [StageSpec; 6] = [
    st(2, R, &[(3, 16, 16, true)]),
    st(2, R, &[(3, 72, 24, false), (3, 88, 24, false)]),
    st(2, HS, &[(5, 96, 40, true), (5, 240, 40, true), (5, 240, 40, true)]),
    st(1, HS, &[(5, 120, 48, true), (5, 144, 48, true)]),
    st(2, HS, &[(5, 288, 96, true), (5, 576, 96, true), (5, 576, 96, true)]),
    st(1, HS, &[(1, 576, 576, false)]),
];

/// timm's `mobilenetv2_100` (every block ReLU6, no squeeze-excite; no ConvBnAct stage).
#[rustfmt::skip]
const V2: [StageSpec; 7] = [
    st(1, R6, &[(3, 32, 16, false)]),
    st(2, R6, &[(3, 96, 24, false), (3, 144, 24, false)]),
    st(2, R6, &[(3, 144, 32, false), (3, 192, 32, false), (3, 192, 32, false)]),
    st(2, R6, &[(3, 192, 64, false), (3, 384, 64, false), (3, 384, 64, false), (3, 384, 64, false)]),
    st(1, R6, &[(3, 384, 96, false), (3, 576, 96, false), (3, 576, 96, false)]),
    st(2, R6, &[(3, 576, 160, false), (3, 960, 160, false), (3, 960, 160, false)]),
    st(1, R6, &[(3, 960, 320, false)]),
];

/// timm's `efficientnet_b0` and, with ReLU6 and no squeeze-excite, `efficientnet_lite0`
/// (`_gen_efficientnet`: `ds_r1_k3_s1_e1_c16_se0.25`,
/// `ir_r2_k3_s2_e6_c24_se0.25`, `ir_r2_k5_s2_e6_c40_se0.25`, `ir_r3_k3_s2_e6_c80_se0.25`,
/// `ir_r3_k5_s1_e6_c112_se0.25`, `ir_r4_k5_s2_e6_c192_se0.25`, `ir_r1_k3_s1_e6_c320_se0.25`).
#[rustfmt::skip]
const EFFICIENTNET_B0: [StageSpec; 7] = [
    st(1, SI, &[(3, 32, 16, true)]),
    st(2, SI, &[(3, 96, 24, true), (3, 144, 24, true)]),
    st(2, SI, &[(5, 144, 40, true), (5, 240, 40, true)]),
    st(2, SI, &[(3, 240, 80, true), (3, 480, 80, true), (3, 480, 80, true)]),
    st(1, SI, &[(5, 480, 112, true), (5, 672, 112, true), (5, 672, 112, true)]),
    st(2, SI, &[(5, 672, 192, true), (5, 1152, 192, true), (5, 1152, 192, true), (5, 1152, 192, true)]),
    st(1, SI, &[(3, 1152, 320, true)]),
];

impl MobileNetKind {
    /// Every kind.
    pub const ALL: [MobileNetKind; 5] = [
        MobileNetKind::V3Large,
        MobileNetKind::V3Small,
        MobileNetKind::V2,
        MobileNetKind::EfficientNetB0,
        MobileNetKind::EfficientNetLite0,
    ];

    /// timm's name of the width-1.0 model.
    pub fn timm_name(self) -> &'static str {
        match self {
            MobileNetKind::V3Large => "mobilenetv3_large_100",
            MobileNetKind::V3Small => "mobilenetv3_small_100",
            MobileNetKind::V2 => "mobilenetv2_100",
            MobileNetKind::EfficientNetB0 => "efficientnet_b0",
            MobileNetKind::EfficientNetLite0 => "efficientnet_lite0",
        }
    }

    fn stages(self) -> &'static [StageSpec] {
        match self {
            MobileNetKind::V3Large => &V3_LARGE,
            MobileNetKind::V3Small => &V3_SMALL,
            MobileNetKind::V2 => &V2,
            // Lite0: B0's blocks, with its own activation and no squeeze-excite
            // (`stage_act`, `has_se`).
            MobileNetKind::EfficientNetB0 | MobileNetKind::EfficientNetLite0 => &EFFICIENTNET_B0,
        }
    }

    /// The activation of stage `s` of [`MobileNetKind::stages`]: the table's, but ReLU6 for
    /// EfficientNet-Lite0 (timm's `_gen_efficientnet_lite`: B0's blocks, `act_layer=nn.ReLU6`).
    fn stage_act(self, s: &StageSpec) -> Activation {
        if self == MobileNetKind::EfficientNetLite0 {
            R6
        } else {
            s.act
        }
    }

    /// Whether a block the table marks with squeeze-excite has one: not in EfficientNet-Lite0
    /// (`_gen_efficientnet_lite` drops the `se0.25` of B0's architecture strings).
    fn has_se(self, marked: bool) -> bool {
        marked && self != MobileNetKind::EfficientNetLite0
    }

    /// timm's `MobileNetV3` class (pool, then `conv_head` with bias and no BatchNorm; a last
    /// `ConvBnAct` stage), not its `EfficientNet` class (`conv_head` + `bn2` + act, then pool).
    fn is_v3(self) -> bool {
        matches!(self, MobileNetKind::V3Large | MobileNetKind::V3Small)
    }

    /// The `conv_head` activation.
    fn head_act(self) -> Activation {
        match self {
            MobileNetKind::V3Large | MobileNetKind::V3Small => HS,
            MobileNetKind::V2 | MobileNetKind::EfficientNetLite0 => R6,
            MobileNetKind::EfficientNetB0 => SI,
        }
    }

    /// Squeeze-excite: the activation inside (after `conv_reduce`), the gate, and the reduced
    /// width of a block with input `cin` and depthwise width `mid` at any multiplier. MobileNetV3:
    /// ReLU, hard-sigmoid, `make_divisible(mid / 4, 8)` (`se_layer = partial(SqueezeExcite,
    /// gate_layer='hard_sigmoid', force_act_layer=nn.ReLU, rd_round_fn=round_chs_fn)`);
    /// EfficientNet: the block's activation, sigmoid, `round(cin / 4)` of the block's INPUT
    /// width (`se_from_exp=False`: 96 -> 4 in `blocks.1.0`, whose input is 16).
    fn se(self, act: Activation, cin: usize, mid: usize) -> (Activation, Gate, usize) {
        if self.is_v3() {
            let r = make_divisible(mid as f64 * 0.25, 8);
            (Activation::Relu, Gate::HardSigmoid, r)
        } else {
            (
                act,
                Gate::Sigmoid,
                (cin as f64 * 0.25).round_ties_even() as usize,
            )
        }
    }

    /// Stem width, stem activation and `conv_head` width at multiplier 1.0.
    fn stem_head(self) -> (usize, Activation, usize) {
        match self {
            MobileNetKind::V3Large => (16, HS, 1280),
            MobileNetKind::V3Small => (16, HS, 1024),
            MobileNetKind::V2 => (32, R6, 1280),
            MobileNetKind::EfficientNetB0 => (32, SI, 1280),
            MobileNetKind::EfficientNetLite0 => (32, R6, 1280),
        }
    }

    fn depths(self) -> Vec<usize> {
        self.stages().iter().map(|s| s.blocks.len()).collect()
    }

    fn block_kind(self, stage: usize) -> BlockKind {
        let last = self.stages().len() - 1;
        match stage {
            0 => BlockKind::DepthwiseSeparable,
            s if s == last && self.is_v3() => BlockKind::ConvBnAct,
            _ => BlockKind::InvertedResidual,
        }
    }
}

/// timm's block classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `DepthwiseSeparableConv`: `conv_dw` + `bn1` + act, `se`, `conv_pw` + `bn2`.
    DepthwiseSeparable,
    /// `InvertedResidual`: `conv_pw` + `bn1` + act, `conv_dw` + `bn2` + act, `se`, `conv_pwl` +
    /// `bn3`.
    InvertedResidual,
    /// `ConvBnAct`: 1x1 `conv` + `bn1` + act.
    ConvBnAct,
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNetBlock {
    /// timm class.
    pub kind: BlockKind,
    /// Input channels.
    pub cin: usize,
    /// Depthwise channels (`cin` for a depthwise-separable block; `cout` for ConvBnAct).
    pub mid: usize,
    /// Output channels.
    pub cout: usize,
    /// Depthwise kernel size (1 for ConvBnAct).
    pub k: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Activation after the expansion and the depthwise convolution.
    pub act: Activation,
    /// Squeeze-excite reduced width, on the `mid` channels (inside activation and gate by family:
    /// MobileNetV3 ReLU and hard-sigmoid, EfficientNet the block's activation and sigmoid).
    pub se: Option<usize>,
}

impl MobileNetBlock {
    /// timm's `has_skip`: stride 1 and as many outputs as inputs.
    pub fn has_skip(&self) -> bool {
        self.kind != BlockKind::ConvBnAct && self.stride == 1 && self.cin == self.cout
    }
}

/// A MobileNetV3 or V2 configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNetConfig {
    /// timm name when the widths are those of a registered model, else `<family> (custom)`.
    pub name: String,
    /// Family.
    pub kind: MobileNetKind,
    /// Input channels.
    pub in_chans: usize,
    /// Stem width (`conv_stem`, 3x3 stride 2).
    pub stem: usize,
    /// Stem activation.
    pub stem_act: Activation,
    /// Blocks per stage (`blocks.{i}.{j}`).
    pub blocks: Vec<Vec<MobileNetBlock>>,
    /// `conv_head` width.
    pub head: usize,
    /// `conv_head` activation (V3: after pooling, with bias; V2: before pooling, with `bn2`).
    pub head_act: Activation,
    /// Classifier outputs (0: headless, timm's `num_classes=0`, the output is the pooled
    /// `conv_head` features).
    pub num_classes: usize,
}

impl fmt::Display for MobileNetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.blocks.iter().filter_map(|s| s.last().map(|b| b.cout));
        let head = (self.head, self.num_classes);
        family::describe(f, &self.name, self.stem, widths, head)
    }
}

impl MobileNetConfig {
    /// The width-1.0 model of `kind` (1000 classes, 3 input channels).
    pub fn of(kind: MobileNetKind) -> MobileNetConfig {
        let (stem, stem_act, head) = kind.stem_head();
        let mut cin = stem;
        let blocks = kind
            .stages()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.blocks
                    .iter()
                    .enumerate()
                    .map(|(j, &(k, mid, cout, se))| {
                        let bk = kind.block_kind(i);
                        let mid = match bk {
                            BlockKind::InvertedResidual => mid,
                            BlockKind::DepthwiseSeparable => cin,
                            BlockKind::ConvBnAct => cout,
                        };
                        let b = MobileNetBlock {
                            kind: bk,
                            cin,
                            mid,
                            cout,
                            k,
                            stride: if j == 0 { s.stride } else { 1 },
                            act: kind.stage_act(s),
                            se: kind
                                .has_se(se)
                                .then(|| kind.se(kind.stage_act(s), cin, mid).2),
                        };
                        cin = cout;
                        b
                    })
                    .collect()
            })
            .collect();
        MobileNetConfig {
            name: kind.timm_name().to_string(),
            kind,
            in_chans: 3,
            stem,
            stem_act,
            blocks,
            head,
            head_act: kind.head_act(),
            num_classes: 1000,
        }
    }

    /// A registered name: `mobilenetv3_large_100`, `mobilenetv3_small_100`, `mobilenetv2_100`,
    /// `efficientnet_b0`, `efficientnet_lite0`.
    pub fn variant(name: &str) -> Result<MobileNetConfig, Error> {
        MobileNetKind::ALL
            .into_iter()
            .find(|k| k.timm_name() == name)
            .map(MobileNetConfig::of)
            .ok_or_else(|| Error::UnknownVariant {
                name: name.to_string(),
                expected: known_names(),
            })
    }

    /// Whether a name belongs to this module (`mobilenetv2_*`, `mobilenetv3_*`, `efficientnet_*`).
    pub fn is_family_name(name: &str) -> bool {
        name.starts_with("mobilenetv2")
            || name.starts_with("mobilenetv3")
            || name.starts_with("efficientnet")
    }

    /// Channels into the classifier: the output width of a headless model (`num_classes == 0`).
    pub fn features(&self) -> usize {
        self.head
    }

    /// Last block's output width (into `conv_head`).
    fn last_width(&self) -> usize {
        self.blocks
            .iter()
            .flatten()
            .last()
            .map_or(self.stem, |b| b.cout)
    }

    /// Reads every parameter from `p` under timm's names, folds each BatchNorm and appends the
    /// steps (weights packed for the ISA of `k`) to `g`.
    pub(crate) fn build(
        &self,
        p: &mut dyn Params,
        k: &Kernels,
        g: &mut Graph,
    ) -> Result<(), Error> {
        let x = conv3x3_bn(
            p,
            k,
            g,
            "conv_stem",
            ("conv_stem.weight", "bn1"),
            (self.in_chans, self.stem, 2),
            self.stem_act,
            Graph::INPUT,
        )?;
        let x = push_stages(
            p,
            g,
            x,
            &self.blocks,
            |b| b.stride,
            |p, g, name, b, x| push_block(p, k, g, name, self.kind, b, x),
        )?;
        let last = self.last_width();
        // Headless (timm's `num_classes=0`, classifier = Identity): the output is the pooled
        // features after `conv_head` and its activation, [N, head].
        let headless = self.num_classes == 0;
        let classifier = if headless {
            None
        } else {
            Some(with_bias(p, "classifier", &[self.num_classes, self.head])?)
        };
        if self.kind.is_v3() {
            g.push(
                "global_pool",
                Op::Pool {
                    src: x,
                    to_out: false,
                },
            );
            let head = with_bias(p, "conv_head", &[self.head, last, 1, 1])?;
            let pw = pack(k, "conv_head", &head)?;
            g.push(
                "conv_head",
                Op::PooledPw {
                    pw,
                    act: self.head_act,
                    to_out: headless,
                },
            );
            match classifier {
                Some(c) => push_classifier(k, g, &c, Vector::Head),
                None => Ok(()),
            }
        } else {
            let y = pointwise_bn(
                p,
                k,
                g,
                "conv_head",
                ("conv_head.weight", "bn2"),
                [self.head, last, 1, 1],
                self.head_act,
                x,
                None,
            )?;
            g.push(
                "global_pool",
                Op::Pool {
                    src: y,
                    to_out: headless,
                },
            );
            match classifier {
                Some(c) => push_classifier(k, g, &c, Vector::Pooled),
                None => Ok(()),
            }
        }
    }

    /// Every key (and shape) a checkpoint of this configuration holds, in reading order.
    pub fn expected_keys(&self) -> Result<Vec<(String, Vec<usize>)>, Error> {
        expected_keys_of(self)
    }

    /// Whether two configurations describe the same network (names aside).
    pub fn same_structure(&self, other: &MobileNetConfig) -> bool {
        let mut o = other.clone();
        o.name.clone_from(&self.name);
        *self == o
    }
}

#[allow(clippy::too_many_arguments)]
fn se_module(
    p: &mut dyn Params,
    k: &Kernels,
    name: &str,
    c: usize,
    r: usize,
    inner: Activation,
    gate: Gate,
) -> Result<SqueezeExcite, Error> {
    let fc1 = with_bias(p, &format!("{name}.conv_reduce"), &[r, c, 1, 1])?;
    let fc2 = with_bias(p, &format!("{name}.conv_expand"), &[c, r, 1, 1])?;
    SqueezeExcite::new(
        k.isa(),
        c,
        r,
        &fc1.weight,
        &fc1.bias,
        &fc2.weight,
        &fc2.bias,
        inner,
        gate,
    )
    .layer(|| name.to_string())
}

/// Appends one block reading buffer `x`; returns the buffer holding its output.
fn push_block(
    p: &mut dyn Params,
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    kind: MobileNetKind,
    b: &MobileNetBlock,
    x: usize,
) -> Result<usize, Error> {
    let residual = b.has_skip().then_some(x);
    let dw_step = |p: &mut dyn Params, g: &mut Graph, bn: &str, src: usize| {
        let dst = depthwise_bn(
            p,
            k,
            g,
            &format!("{name}.conv_dw"),
            (&format!("{name}.conv_dw.weight"), &format!("{name}.{bn}")),
            (b.mid, b.k, b.stride),
            b.act,
            src,
            b.se.is_some(),
        )?;
        if let Some(r) = b.se {
            let sname = format!("{name}.se");
            let (inner, gate, _) = kind.se(b.act, b.cin, b.mid);
            let se = se_module(p, k, &sname, b.mid, r, inner, gate)?;
            g.push(sname, Op::Se { se, t: dst });
        }
        Ok::<_, Error>(dst)
    };
    let pw_step = |p: &mut dyn Params,
                   g: &mut Graph,
                   (conv, bn): (&str, &str),
                   shape: [usize; 4],
                   act: Activation,
                   src: usize,
                   residual: Option<usize>| {
        pointwise_bn(
            p,
            k,
            g,
            &format!("{name}.{conv}"),
            (&format!("{name}.{conv}.weight"), &format!("{name}.{bn}")),
            shape,
            act,
            src,
            residual,
        )
    };
    let project = [b.cout, b.mid, 1, 1];
    match b.kind {
        BlockKind::DepthwiseSeparable => {
            let d = dw_step(p, g, "bn1", x)?;
            let id = Activation::Identity;
            pw_step(p, g, ("conv_pw", "bn2"), project, id, d, residual)
        }
        BlockKind::InvertedResidual => {
            let expand = [b.mid, b.cin, 1, 1];
            let e = pw_step(p, g, ("conv_pw", "bn1"), expand, b.act, x, None)?;
            let d = dw_step(p, g, "bn2", e)?;
            let id = Activation::Identity;
            pw_step(p, g, ("conv_pwl", "bn3"), project, id, d, residual)
        }
        BlockKind::ConvBnAct => {
            let shape = [b.cout, b.cin, 1, 1];
            pw_step(p, g, ("conv", "bn1"), shape, b.act, x, None)
        }
    }
}

/// Whether a checkpoint looks like a timm MobileNet (it has `conv_stem.weight`).
pub fn looks_like_mobilenet(sd: &StateDict) -> bool {
    sd.shape("conv_stem.weight").is_some()
}

/// Reads the configuration off a checkpoint's shapes: V3 (a `conv_head.bias`) or V2 (a `bn2`
/// after `conv_head`), Large or Small from the number of stages; widths, kernel sizes and
/// squeeze-excite widths from the tensors; strides and activations from the family's table.
pub fn detect(sd: &StateDict) -> Result<MobileNetConfig, Error> {
    let not = |reason: String| Error::NotMobileNet {
        path: sd.path().to_path_buf(),
        family: "MobileNetV3/MobileNetV2/EfficientNet",
        reason,
    };
    let dims = |key: &str, rank: usize| dims(sd, key, rank, not);
    let stem = dims("conv_stem.weight", 4)?;
    let depth = block_depths(sd, not)?;
    let v3 = sd.shape("conv_head.bias").is_some();
    let kind = match (v3, depth.len()) {
        (true, 7) => MobileNetKind::V3Large,
        (true, 6) => MobileNetKind::V3Small,
        // timm's EfficientNet class: MobileNetV2 or an EfficientNet by the blocks per stage, B0
        // or Lite0 by the squeeze-excite tensors.
        (false, 7) if sd.shape("bn2.weight").is_some() => {
            if depth != MobileNetKind::EfficientNetB0.depths() {
                MobileNetKind::V2
            } else if sd.keys().any(|k| k.contains(".se.conv_reduce.")) {
                MobileNetKind::EfficientNetB0
            } else {
                MobileNetKind::EfficientNetLite0
            }
        }
        (v3, n) => {
            return Err(not(format!(
                "{n} stages with{} a `conv_head.bias` (V3-Large: 7 stages and a bias, V3-Small: 6, V2 and EfficientNet-B0/Lite0: 7 and `bn2`)",
                if v3 { "" } else { "out" }
            )));
        }
    };
    if depth != kind.depths() {
        return Err(not(format!(
            "{}: blocks per stage {depth:?}, expected {:?}",
            kind.timm_name(),
            kind.depths()
        )));
    }
    let (stem_c, in_chans) = (stem[0], stem[1]);
    let mut cin = stem_c;
    let mut blocks = Vec::new();
    for (i, s) in kind.stages().iter().enumerate() {
        let mut stage = Vec::new();
        for j in 0..s.blocks.len() {
            let pre = format!("blocks.{i}.{j}");
            let bk = kind.block_kind(i);
            let (mid, cout, k) = match bk {
                BlockKind::DepthwiseSeparable => {
                    let dw = dims(&format!("{pre}.conv_dw.weight"), 4)?;
                    let pw = dims(&format!("{pre}.conv_pw.weight"), 4)?;
                    (dw[0], pw[0], dw[2])
                }
                BlockKind::InvertedResidual => {
                    let dw = dims(&format!("{pre}.conv_dw.weight"), 4)?;
                    let pwl = dims(&format!("{pre}.conv_pwl.weight"), 4)?;
                    (dw[0], pwl[0], dw[2])
                }
                BlockKind::ConvBnAct => {
                    let c = dims(&format!("{pre}.conv.weight"), 4)?;
                    (c[0], c[0], 1)
                }
            };
            let se = match sd.shape(&format!("{pre}.se.conv_reduce.weight")) {
                Some(s) if !s.is_empty() => Some(s[0]),
                _ => None,
            };
            stage.push(MobileNetBlock {
                kind: bk,
                cin,
                mid,
                cout,
                k,
                stride: if j == 0 { s.stride } else { 1 },
                act: kind.stage_act(s),
                se,
            });
            cin = cout;
        }
        blocks.push(stage);
    }
    let head = dims("conv_head.weight", 4)?[0];
    let classes = classifier_outputs(sd, not)?;
    let mut cfg = MobileNetConfig {
        name: format!("{} (custom)", kind.timm_name()),
        kind,
        in_chans,
        stem: stem_c,
        stem_act: kind.stem_head().1,
        blocks,
        head,
        head_act: kind.head_act(),
        num_classes: classes,
    };
    let mut reference = MobileNetConfig::of(kind);
    reference.num_classes = classes;
    if reference.same_structure(&cfg) {
        cfg.name = reference.name;
    }
    Ok(cfg)
}

/// The configuration to read `sd` with: the detected one, or the named model (with the
/// checkpoint's class count) after checking that the checkpoint holds it.
pub fn resolve(sd: &StateDict, name: Option<&str>) -> Result<MobileNetConfig, Error> {
    let r = Resolver {
        variant: MobileNetConfig::variant,
        detect,
        same: MobileNetConfig::same_structure,
        set_classes: |c, n| c.num_classes = n,
    };
    family::resolve(sd, name, r)
}

/// The names [`MobileNetConfig::variant`] accepts, described for an error message.
pub fn known_names() -> String {
    let names: Vec<&str> = MobileNetKind::ALL.iter().map(|k| k.timm_name()).collect();
    format!("one of {}", names.join(", "))
}

/// A state dict of random parameters for `cfg` ([`RandomParams`](crate::load::params::RandomParams)) under timm's
/// names.
pub fn random_state_dict(cfg: &MobileNetConfig, seed: u64) -> Result<StateDict, Error> {
    random_state_dict_of(cfg.expected_keys()?, &cfg.name, seed)
}

impl Family for MobileNetConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_chans(&self) -> usize {
        self.in_chans
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn features(&self) -> usize {
        MobileNetConfig::features(self)
    }

    /// 224, crop_pct 0.875, bicubic, ImageNet mean/std (timm's default pretrained configs of
    /// `mobilenetv3_large_100`, `mobilenetv3_small_100`, `mobilenetv2_100`).
    fn eval_transform(&self) -> EvalTransform {
        EvalTransform {
            crop_pct: 0.875,
            ..EvalTransform::default()
        }
    }

    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        MobileNetConfig::build(self, p, k, g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_timm_parameter_counts() {
        // timm 1.0: sum of p.numel() over model.parameters() (BatchNorm running stats excluded).
        for (kind, params) in [
            (MobileNetKind::V3Large, 5_483_032),
            (MobileNetKind::V3Small, 2_542_856),
            (MobileNetKind::V2, 3_504_872),
        ] {
            let keys = MobileNetConfig::of(kind).expected_keys().unwrap();
            let n: usize = keys
                .iter()
                .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            assert_eq!(n, params, "{}", kind.timm_name());
        }
    }

    #[test]
    fn random_checkpoints_are_detected_as_their_model() {
        for kind in MobileNetKind::ALL {
            let cfg = MobileNetConfig::of(kind);
            let sd = random_state_dict(&cfg, 3).unwrap();
            assert_eq!(detect(&sd).unwrap(), cfg);
            assert_eq!(resolve(&sd, Some(kind.timm_name())).unwrap(), cfg);
        }
    }

    #[test]
    fn the_wrong_name_is_refused_with_the_first_difference() {
        let sd = random_state_dict(&MobileNetConfig::of(MobileNetKind::V3Small), 3).unwrap();
        let e = resolve(&sd, Some("mobilenetv3_large_100")).unwrap_err();
        assert!(matches!(e, Error::WrongVariant { .. }), "{e}");
    }
}
