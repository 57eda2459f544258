//! MobileNetV4's convolutional networks ("MobileNetV4: Universal Models for the Mobile
//! Ecosystem", Qin et al., ECCV 2024) as timm 1.0 builds them (`_gen_mobilenet_v4` in
//! `timm/models/mobilenetv3.py`, timm's `MobileNetV3` class): `mobilenetv4_conv_small`,
//! `_medium`, `_large` and the width variants `mobilenetv4_conv_small_035` / `_050`.
//!
//! Blocks (timm's `_efficientnet_blocks`), every activation ReLU, every BatchNorm folded at load:
//! - `ConvBnAct` (`cn`): `conv` (dense 3x3 at stride 2, or 1x1) + `bn1` + ReLU;
//! - `EdgeResidual` (`er`, the paper's Fused IB): `conv_exp` (dense 3x3, stride 2) + `bn1` + ReLU,
//!   `conv_pwl` (1x1) + `bn2`;
//! - `UniversalInvertedResidual` (`uir`, UIB): `dw_start` (depthwise, `bn`, no activation), `pw_exp`
//!   (1x1, `bn` + ReLU), `dw_mid` (depthwise, `bn` + ReLU), `pw_proj` (1x1, `bn`), plus the input
//!   when stride 1 and as many outputs as inputs; either depthwise may be absent (the paper's
//!   ExtraDW, IB, ConvNext-like and FFN forms). The stride sits on `dw_mid`, or on `dw_start` when
//!   there is no `dw_mid`.
//!
//! The head pools FIRST, then `conv_head` (1x1 to 1280, no bias) + `norm_head` (BatchNorm + ReLU)
//! on the pooled vector, then the classifier (`MobileNetV3.forward_head` with `head_norm=True`).
//!
//! Widths, kernel sizes and block forms come from the tensors; strides, which tensors cannot
//! show, come from the variant's table below (timm's architecture strings). timm's
//! `mobilenetv4_conv_aa_*` / `_blur_*` variants (anti-aliased downsampling) hold the same tensors
//! as the plain ones but compute otherwise; they are refused by name and cannot be told apart from
//! their tensors. The hybrid variants (attention blocks) are refused.

use std::fmt;

use mobile_cnn_kernels::{Activation, Kernels};

use crate::error::Error;
use crate::families::family::{
    self, BN_EPS, Family, Resolver, block_depths, classifier_outputs, conv3x3_bn, depthwise_bn,
    dims, expected_keys_of, pack, pointwise_bn, push_classifier, push_stages, random_state_dict_of,
};
use crate::families::widths::make_divisible;
use crate::graph::{Graph, Op, Vector};
use crate::load::checkpoint::StateDict;
use crate::load::params::{Params, conv_bn, with_bias};
use crate::preprocess::EvalTransform;

/// The three sizes timm registers (`mobilenetv4_conv_{small,medium,large}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MobileNetV4Kind {
    /// `mobilenetv4_conv_small*`: `ConvBnAct` stages 0 and 1, UIB stages 2 and 3.
    Small,
    /// `mobilenetv4_conv_medium`: an `EdgeResidual` stage 0, UIB stages 1-3.
    Medium,
    /// `mobilenetv4_conv_large`: as Medium, deeper and wider, stem 24.
    Large,
}

/// A block of timm's architecture strings at multiplier 1.0.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `cn_r1_k{k}_s{s}_c{c}`.
    Cn { k: usize, s: usize, c: usize },
    /// `er_r1_k{k}_s{s}_e{e}_c{c}`.
    Er {
        k: usize,
        s: usize,
        e: usize,
        c: usize,
    },
    /// `uir_r1_a{a}_k{k}_s{s}_e{e}_c{c}`: `dw_start` kernel `a`, `dw_mid` kernel `k` (0: none).
    Uir {
        a: usize,
        k: usize,
        s: usize,
        e: usize,
        c: usize,
    },
}

impl Spec {
    fn stride(self) -> usize {
        match self {
            Spec::Cn { s, .. } | Spec::Er { s, .. } | Spec::Uir { s, .. } => s,
        }
    }
}

const fn cn(k: usize, s: usize, c: usize) -> Spec {
    Spec::Cn { k, s, c }
}

const fn er(k: usize, s: usize, e: usize, c: usize) -> Spec {
    Spec::Er { k, s, e, c }
}

const fn uir(a: usize, k: usize, s: usize, e: usize, c: usize) -> Spec {
    Spec::Uir { a, k, s, e, c }
}

/// `mobilenetv4_conv_small` (timm 1.0 `_gen_mobilenet_v4`, `arch_def` of the small variant).
#[rustfmt::skip]
const SMALL: [&[Spec]; 5] = [
    &[cn(3, 2, 32), cn(1, 1, 32)],
    &[cn(3, 2, 96), cn(1, 1, 64)],
    &[uir(5, 5, 2, 3, 96), uir(0, 3, 1, 2, 96), uir(0, 3, 1, 2, 96), uir(0, 3, 1, 2, 96), uir(0, 3, 1, 2, 96), uir(3, 0, 1, 4, 96)],
    &[uir(3, 3, 2, 6, 128), uir(5, 5, 1, 4, 128), uir(0, 5, 1, 4, 128), uir(0, 5, 1, 3, 128), uir(0, 3, 1, 4, 128), uir(0, 3, 1, 4, 128)],
    &[cn(1, 1, 960)],
];

/// `mobilenetv4_conv_medium`.
#[rustfmt::skip]
const MEDIUM: [&[Spec]; 5] = [
    &[er(3, 2, 4, 48)],
    &[uir(3, 5, 2, 4, 80), uir(3, 3, 1, 2, 80)],
    &[uir(3, 5, 2, 6, 160), uir(3, 3, 1, 4, 160), uir(3, 3, 1, 4, 160), uir(3, 5, 1, 4, 160), uir(3, 3, 1, 4, 160), uir(3, 0, 1, 4, 160), uir(0, 0, 1, 2, 160), uir(3, 0, 1, 4, 160)],
    &[uir(5, 5, 2, 6, 256), uir(5, 5, 1, 4, 256), uir(3, 5, 1, 4, 256), uir(3, 5, 1, 4, 256), uir(0, 0, 1, 4, 256), uir(3, 0, 1, 4, 256), uir(3, 5, 1, 2, 256), uir(5, 5, 1, 4, 256), uir(0, 0, 1, 4, 256), uir(0, 0, 1, 4, 256), uir(5, 0, 1, 2, 256)],
    &[cn(1, 1, 960)],
];

/// `mobilenetv4_conv_large`.
#[rustfmt::skip]
const LARGE: [&[Spec]; 5] = [
    &[er(3, 2, 4, 48)],
    &[uir(3, 5, 2, 4, 96), uir(3, 3, 1, 4, 96)],
    &[uir(3, 5, 2, 4, 192), uir(3, 3, 1, 4, 192), uir(3, 3, 1, 4, 192), uir(3, 3, 1, 4, 192), uir(3, 5, 1, 4, 192), uir(5, 3, 1, 4, 192), uir(5, 3, 1, 4, 192), uir(5, 3, 1, 4, 192), uir(5, 3, 1, 4, 192), uir(5, 3, 1, 4, 192), uir(3, 0, 1, 4, 192)],
    &[uir(5, 5, 2, 4, 512), uir(5, 5, 1, 4, 512), uir(5, 5, 1, 4, 512), uir(5, 5, 1, 4, 512), uir(5, 0, 1, 4, 512), uir(5, 3, 1, 4, 512), uir(5, 0, 1, 4, 512), uir(5, 0, 1, 4, 512), uir(5, 3, 1, 4, 512), uir(5, 5, 1, 4, 512), uir(5, 0, 1, 4, 512), uir(5, 0, 1, 4, 512), uir(5, 0, 1, 4, 512)],
    &[cn(1, 1, 960)],
];

/// `conv_head` width of every variant (timm's `num_features = 1280`, not scaled by the width
/// multiplier).
const HEAD: usize = 1280;

/// Every registered name: (timm name, size, channel multiplier).
#[rustfmt::skip]
const VARIANTS: [(&str, MobileNetV4Kind, f64); 5] = [
    ("mobilenetv4_conv_small_035", MobileNetV4Kind::Small, 0.35),
    ("mobilenetv4_conv_small_050", MobileNetV4Kind::Small, 0.5),
    ("mobilenetv4_conv_small", MobileNetV4Kind::Small, 1.0),
    ("mobilenetv4_conv_medium", MobileNetV4Kind::Medium, 1.0),
    ("mobilenetv4_conv_large", MobileNetV4Kind::Large, 1.0),
];

impl MobileNetV4Kind {
    /// The three sizes.
    pub const ALL: [MobileNetV4Kind; 3] = [
        MobileNetV4Kind::Small,
        MobileNetV4Kind::Medium,
        MobileNetV4Kind::Large,
    ];

    /// timm's name of the width-1.0 model.
    pub fn timm_name(self) -> &'static str {
        match self {
            MobileNetV4Kind::Small => "mobilenetv4_conv_small",
            MobileNetV4Kind::Medium => "mobilenetv4_conv_medium",
            MobileNetV4Kind::Large => "mobilenetv4_conv_large",
        }
    }

    fn stages(self) -> &'static [&'static [Spec]; 5] {
        match self {
            MobileNetV4Kind::Small => &SMALL,
            MobileNetV4Kind::Medium => &MEDIUM,
            MobileNetV4Kind::Large => &LARGE,
        }
    }

    /// Stem width at multiplier 1.0 (timm's `stem_size`; kept below 1.0, `fix_stem`).
    fn stem(self) -> usize {
        match self {
            MobileNetV4Kind::Large => 24,
            MobileNetV4Kind::Small | MobileNetV4Kind::Medium => 32,
        }
    }

    fn depths(self) -> Vec<usize> {
        self.stages().iter().map(|s| s.len()).collect()
    }

    /// timm's pretrained eval transform of the size's default weights (`pretrained_cfg`, bicubic):
    /// Small 224 with crop 0.875 (`e2400_r224_in1k`), Medium 256 with crop 0.95
    /// (`e500_r256_in1k`), Large 384 with crop 0.95 (`e600_r384_in1k`); ImageNet mean and std.
    fn eval_transform(self) -> EvalTransform {
        let (size, crop_pct) = match self {
            MobileNetV4Kind::Small => (224, 0.875),
            MobileNetV4Kind::Medium => (256, 0.95),
            MobileNetV4Kind::Large => (384, 0.95),
        };
        EvalTransform {
            size,
            crop_pct,
            ..EvalTransform::default()
        }
    }
}

/// timm's block classes of the conv variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MobileNetV4BlockKind {
    /// `ConvBnAct`: `conv` (`k` x `k`, 3 or 1) + `bn1` + ReLU.
    ConvBnAct,
    /// `EdgeResidual` (Fused IB): `conv_exp` (dense `k` x `k`) + `bn1` + ReLU, `conv_pwl` + `bn2`.
    EdgeResidual,
    /// `UniversalInvertedResidual` (UIB): `dw_start`, `pw_exp`, `dw_mid`, `pw_proj`.
    UniversalInvertedResidual,
}

/// A block's form and widths: `(kind, mid, cout, k, dw_start, dw_mid)` of [`MobileNetV4Block`].
type BlockParts = (MobileNetV4BlockKind, usize, usize, usize, usize, usize);

/// One block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNetV4Block {
    /// timm class.
    pub kind: MobileNetV4BlockKind,
    /// Input channels.
    pub cin: usize,
    /// Expanded channels (`conv_exp` / `pw_exp` outputs; `cout` for `ConvBnAct`).
    pub mid: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size of the dense convolution (`ConvBnAct`, `EdgeResidual`; 0 for UIB).
    pub k: usize,
    /// UIB `dw_start` kernel size (0: none).
    pub dw_start: usize,
    /// UIB `dw_mid` kernel size (0: none).
    pub dw_mid: usize,
    /// Stride of the block.
    pub stride: usize,
}

impl MobileNetV4Block {
    /// timm's `has_skip`: an `EdgeResidual` or UIB at stride 1 with as many outputs as inputs.
    pub fn has_skip(&self) -> bool {
        self.kind != MobileNetV4BlockKind::ConvBnAct && self.stride == 1 && self.cin == self.cout
    }

    /// The block of `spec` after `cin` channels at width multiplier `m` (timm's `round_chs_fn`,
    /// `make_divisible(c * m, 8)`; expansions `make_divisible(cin * e, 8)`).
    fn of(spec: Spec, cin: usize, m: f64) -> MobileNetV4Block {
        let round = |c: usize| make_divisible(c as f64 * m, 8);
        let expand = |e: usize| make_divisible((cin * e) as f64, 8);
        let parts = match spec {
            Spec::Cn { k, c, .. } => (MobileNetV4BlockKind::ConvBnAct, round(c), round(c), k, 0, 0),
            Spec::Er { k, e, c, .. } => (
                MobileNetV4BlockKind::EdgeResidual,
                expand(e),
                round(c),
                k,
                0,
                0,
            ),
            Spec::Uir { a, k, e, c, .. } => {
                let kind = MobileNetV4BlockKind::UniversalInvertedResidual;
                (kind, expand(e), round(c), 0, a, k)
            }
        };
        MobileNetV4Block::from_parts(cin, parts, spec.stride())
    }

    /// The block after `cin` channels from `(kind, mid, cout, k, dw_start, dw_mid)`.
    fn from_parts(
        cin: usize,
        (kind, mid, cout, k, dw_start, dw_mid): BlockParts,
        stride: usize,
    ) -> MobileNetV4Block {
        MobileNetV4Block {
            kind,
            cin,
            mid,
            cout,
            k,
            dw_start,
            dw_mid,
            stride,
        }
    }
}

/// A MobileNetV4 conv configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MobileNetV4Config {
    /// timm name when the widths are those of a registered model, else `<size> (custom)`.
    pub name: String,
    /// Size (which table the strides come from).
    pub kind: MobileNetV4Kind,
    /// Input channels.
    pub in_chans: usize,
    /// Stem width (`conv_stem`, 3x3 stride 2).
    pub stem: usize,
    /// Blocks per stage (`blocks.{i}.{j}`).
    pub blocks: Vec<Vec<MobileNetV4Block>>,
    /// `conv_head` width (after pooling).
    pub head: usize,
    /// Classifier outputs (0: headless, timm's `num_classes=0`: the output is the pooled
    /// features after `conv_head` and `norm_head`, `[N, head]`).
    pub num_classes: usize,
    /// timm's eval transform of the model's pretrained weights.
    pub eval: EvalTransform,
}

impl fmt::Display for MobileNetV4Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.blocks.iter().filter_map(|s| s.last().map(|b| b.cout));
        let head = (self.head, self.num_classes);
        family::describe(f, &self.name, self.stem, widths, head)
    }
}

impl MobileNetV4Config {
    /// The model of `kind` at width multiplier `m` (1000 classes, 3 input channels), named `name`.
    fn of(name: &str, kind: MobileNetV4Kind, m: f64) -> MobileNetV4Config {
        let stem = if m < 1.0 {
            kind.stem()
        } else {
            make_divisible(kind.stem() as f64 * m, 8)
        };
        let mut cin = stem;
        let blocks = kind
            .stages()
            .iter()
            .map(|s| {
                s.iter()
                    .map(|&spec| {
                        let b = MobileNetV4Block::of(spec, cin, m);
                        cin = b.cout;
                        b
                    })
                    .collect()
            })
            .collect();
        let mut eval = kind.eval_transform();
        if m < 1.0 {
            // `mobilenetv4_conv_small_035` / `_050`: timm's configs normalise with mean and
            // std 0.5 (`mean=IMAGENET_INCEPTION_MEAN`).
            eval.mean = [0.5; 3];
            eval.std = [0.5; 3];
        }
        MobileNetV4Config {
            name: name.to_string(),
            kind,
            in_chans: 3,
            stem,
            blocks,
            head: HEAD,
            num_classes: 1000,
            eval,
        }
    }

    /// A registered name: `mobilenetv4_conv_small`, `_medium`, `_large`,
    /// `mobilenetv4_conv_small_035`, `mobilenetv4_conv_small_050` (1000 classes).
    pub fn variant(name: &str) -> Result<MobileNetV4Config, Error> {
        VARIANTS
            .iter()
            .find(|v| v.0 == name)
            .map(|&(n, kind, m)| MobileNetV4Config::of(n, kind, m))
            .ok_or_else(|| Error::UnknownVariant {
                name: name.to_string(),
                expected: known_names(),
            })
    }

    /// Whether a name belongs to this family (`mobilenetv4_*`).
    pub fn is_family_name(name: &str) -> bool {
        name.starts_with("mobilenetv4")
    }

    /// Every key (and shape) a checkpoint of this configuration holds, in reading order.
    pub fn expected_keys(&self) -> Result<Vec<(String, Vec<usize>)>, Error> {
        expected_keys_of(self)
    }

    /// Whether two configurations describe the same network (names and transforms aside).
    pub fn same_structure(&self, other: &MobileNetV4Config) -> bool {
        let mut o = other.clone();
        o.name.clone_from(&self.name);
        o.eval = self.eval;
        *self == o
    }
}

/// Appends one block reading buffer `x`; returns the buffer holding its output.
fn push_block(
    p: &mut dyn Params,
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    b: &MobileNetV4Block,
    x: usize,
) -> Result<usize, Error> {
    const RELU: Activation = Activation::Relu;
    const ID: Activation = Activation::Identity;
    let residual = b.has_skip().then_some(x);
    let key = |module: &str, tensor: &str| format!("{name}.{module}{tensor}");
    // A dense k x k convolution: 3x3 (any stride) or 1x1 (stride 1).
    let dense = |p: &mut dyn Params, g: &mut Graph, (conv, bn), (cout, act), src| match b.k {
        3 => conv3x3_bn(
            p,
            k,
            g,
            &key(conv, ""),
            (&key(conv, ".weight"), &key(bn, "")),
            (b.cin, cout, b.stride),
            act,
            src,
        ),
        1 if b.stride == 1 => pointwise_bn(
            p,
            k,
            g,
            &key(conv, ""),
            (&key(conv, ".weight"), &key(bn, "")),
            [cout, b.cin, 1, 1],
            act,
            src,
            None,
        ),
        kk => Err(Error::Config {
            reason: format!(
                "`{}`: a {kk}x{kk} dense convolution at stride {} (this crate runs 3x3 at any stride and 1x1 at stride 1)",
                key(conv, ""),
                b.stride
            ),
        }),
    };
    // A UIB member `module` (`<module>.conv.weight`, `<module>.bn.*`).
    let pw = |p: &mut dyn Params, g: &mut Graph, module: &str, shape, act, src, residual| {
        let conv = (&key(module, ".conv.weight")[..], &key(module, ".bn")[..]);
        pointwise_bn(p, k, g, &key(module, ""), conv, shape, act, src, residual)
    };
    let dw = |p: &mut dyn Params, g: &mut Graph, module: &str, (c, kk, stride), act, src| {
        let conv = (&key(module, ".conv.weight")[..], &key(module, ".bn")[..]);
        depthwise_bn(
            p,
            k,
            g,
            &key(module, ""),
            conv,
            (c, kk, stride),
            act,
            src,
            false,
        )
    };
    match b.kind {
        MobileNetV4BlockKind::ConvBnAct => dense(p, g, ("conv", "bn1"), (b.cout, RELU), x),
        MobileNetV4BlockKind::EdgeResidual => {
            let e = dense(p, g, ("conv_exp", "bn1"), (b.mid, RELU), x)?;
            let conv = (&key("conv_pwl", ".weight")[..], &key("bn2", "")[..]);
            let shape = [b.cout, b.mid, 1, 1];
            pointwise_bn(p, k, g, &key("conv_pwl", ""), conv, shape, ID, e, residual)
        }
        MobileNetV4BlockKind::UniversalInvertedResidual => {
            if b.stride > 1 && b.dw_start == 0 && b.dw_mid == 0 {
                return Err(Error::Config {
                    reason: format!(
                        "`{name}`: stride {} without a depthwise convolution",
                        b.stride
                    ),
                });
            }
            let mut t = x;
            if b.dw_start > 0 {
                let stride = if b.dw_mid > 0 { 1 } else { b.stride };
                t = dw(p, g, "dw_start", (b.cin, b.dw_start, stride), ID, t)?;
            }
            t = pw(p, g, "pw_exp", [b.mid, b.cin, 1, 1], RELU, t, None)?;
            if b.dw_mid > 0 {
                t = dw(p, g, "dw_mid", (b.mid, b.dw_mid, b.stride), RELU, t)?;
            }
            pw(p, g, "pw_proj", [b.cout, b.mid, 1, 1], ID, t, residual)
        }
    }
}

impl Family for MobileNetV4Config {
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
        self.head
    }

    fn eval_transform(&self) -> EvalTransform {
        self.eval
    }

    /// Reads every parameter from `p` under timm's names (in timm's `state_dict` order), folds
    /// each BatchNorm and appends the steps (weights packed for the ISA of `k`) to `g`.
    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        let x = conv3x3_bn(
            p,
            k,
            g,
            "conv_stem",
            ("conv_stem.weight", "bn1"),
            (self.in_chans, self.stem, 2),
            Activation::Relu,
            Graph::INPUT,
        )?;
        let x = push_stages(
            p,
            g,
            x,
            &self.blocks,
            |b| b.stride,
            |p, g, name, b, x| push_block(p, k, g, name, b, x),
        )?;
        let last = self
            .blocks
            .iter()
            .flatten()
            .last()
            .map_or(self.stem, |b| b.cout);
        let headless = self.num_classes == 0;
        g.push(
            "global_pool",
            Op::Pool {
                src: x,
                to_out: false,
            },
        );
        // `conv_head` (no bias) and `norm_head` (BatchNorm + ReLU) on the pooled vector, one
        // folded 1x1 convolution with a bias.
        let head = conv_bn(
            p,
            "conv_head.weight",
            "norm_head",
            [self.head, last, 1, 1],
            BN_EPS,
        )?;
        g.push(
            "conv_head",
            Op::PooledPw {
                pw: pack(k, "conv_head", &head)?,
                act: Activation::Relu,
                to_out: headless,
            },
        );
        if headless {
            return Ok(());
        }
        let c = with_bias(p, "classifier", &[self.num_classes, self.head])?;
        push_classifier(k, g, &c, Vector::Head)
    }
}

/// Whether a checkpoint looks like a timm MobileNetV4 (a stem and the head's `norm_head`, which
/// MobileNetV3, MobileNetV2 and the EfficientNets do not have).
pub fn looks_like_mobilenetv4(sd: &StateDict) -> bool {
    sd.shape("conv_stem.weight").is_some() && sd.shape("norm_head.weight").is_some()
}

/// Reads the configuration off a checkpoint's shapes: the size from the blocks per stage, each
/// block's form from its keys (`conv`, `conv_exp`, `pw_exp`), widths and kernel sizes from the
/// tensors, strides from the size's table.
pub fn detect(sd: &StateDict) -> Result<MobileNetV4Config, Error> {
    let not = |reason: String| Error::NotMobileNet {
        path: sd.path().to_path_buf(),
        family: "MobileNetV4 (conv)",
        reason,
    };
    let shape = |key: &str| dims(sd, key, 4, not);
    let stem = shape("conv_stem.weight")?;
    let depth = block_depths(sd, not)?;
    let Some(kind) = MobileNetV4Kind::ALL
        .into_iter()
        .find(|k| k.depths() == depth)
    else {
        return Err(not(format!(
            "blocks per stage {depth:?}: expected {:?} (small), {:?} (medium) or {:?} (large)",
            MobileNetV4Kind::Small.depths(),
            MobileNetV4Kind::Medium.depths(),
            MobileNetV4Kind::Large.depths()
        )));
    };
    let (stem_c, in_chans) = (stem[0], stem[1]);
    let mut cin = stem_c;
    let mut blocks = Vec::new();
    for (i, specs) in kind.stages().iter().enumerate() {
        let mut stage = Vec::new();
        for (j, spec) in specs.iter().enumerate() {
            let pre = format!("blocks.{i}.{j}");
            let has = |m: &str| sd.shape(&format!("{pre}.{m}.weight")).is_some();
            let kernel = |m: &str| -> Result<usize, Error> {
                Ok(if has(m) {
                    shape(&format!("{pre}.{m}.weight"))?[2]
                } else {
                    0
                })
            };
            let b = if has("conv") {
                let c = shape(&format!("{pre}.conv.weight"))?;
                let (kind, k) = (MobileNetV4BlockKind::ConvBnAct, c[2]);
                let (dw_start, dw_mid) = (0, 0);
                (kind, c[0], c[0], k, dw_start, dw_mid)
            } else if has("conv_exp") {
                let e = shape(&format!("{pre}.conv_exp.weight"))?;
                let pwl = shape(&format!("{pre}.conv_pwl.weight"))?;
                (MobileNetV4BlockKind::EdgeResidual, e[0], pwl[0], e[2], 0, 0)
            } else if has("pw_exp.conv") {
                let e = shape(&format!("{pre}.pw_exp.conv.weight"))?;
                let proj = shape(&format!("{pre}.pw_proj.conv.weight"))?;
                let (a, m) = (kernel("dw_start.conv")?, kernel("dw_mid.conv")?);
                let kind = MobileNetV4BlockKind::UniversalInvertedResidual;
                (kind, e[0], proj[0], 0, a, m)
            } else {
                return Err(not(format!(
                    "block `{pre}` has none of `conv`, `conv_exp`, `pw_exp.conv` (ConvBnAct, EdgeResidual, UIB; the hybrid variants' attention blocks are not supported)"
                )));
            };
            let b = MobileNetV4Block::from_parts(cin, b, spec.stride());
            cin = b.cout;
            stage.push(b);
        }
        blocks.push(stage);
    }
    let head = shape("conv_head.weight")?[0];
    let num_classes = classifier_outputs(sd, not)?;
    let mut cfg = MobileNetV4Config {
        name: format!("{} (custom)", kind.timm_name()),
        kind,
        in_chans,
        stem: stem_c,
        blocks,
        head,
        num_classes,
        eval: kind.eval_transform(),
    };
    for &(name, k, m) in &VARIANTS {
        let mut reference = MobileNetV4Config::of(name, k, m);
        reference.num_classes = num_classes;
        if k == kind && reference.same_structure(&cfg) {
            cfg.name = reference.name;
            cfg.eval = reference.eval;
        }
    }
    Ok(cfg)
}

/// The configuration to read `sd` with: the detected one, or the named model (with the
/// checkpoint's class count) after checking that the checkpoint holds it.
pub fn resolve(sd: &StateDict, name: Option<&str>) -> Result<MobileNetV4Config, Error> {
    let r = Resolver {
        variant: MobileNetV4Config::variant,
        detect,
        same: MobileNetV4Config::same_structure,
        set_classes: |c, n| c.num_classes = n,
    };
    family::resolve(sd, name, r)
}

/// The names [`MobileNetV4Config::variant`] accepts, described for an error message.
pub fn known_names() -> String {
    let names: Vec<&str> = VARIANTS.iter().map(|v| v.0).collect();
    format!("one of {}", names.join(", "))
}

/// A state dict of random parameters for `cfg` under timm's names
/// ([`RandomParams`](crate::load::params::RandomParams)).
pub fn random_state_dict(cfg: &MobileNetV4Config, seed: u64) -> Result<StateDict, Error> {
    random_state_dict_of(cfg.expected_keys()?, &cfg.name, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_timm_parameter_counts() {
        // timm 1.0.31: sum of p.numel() over model.parameters() (BatchNorm running stats
        // excluded), 1000 classes.
        for (name, params) in [
            ("mobilenetv4_conv_small_035", 1_905_384),
            ("mobilenetv4_conv_small_050", 2_238_952),
            ("mobilenetv4_conv_small", 3_774_024),
            ("mobilenetv4_conv_medium", 9_715_512),
            ("mobilenetv4_conv_large", 32_590_864),
        ] {
            let keys = MobileNetV4Config::variant(name)
                .unwrap()
                .expected_keys()
                .unwrap();
            let n: usize = keys
                .iter()
                .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            assert_eq!(n, params, "{name}");
        }
    }

    #[test]
    fn random_checkpoints_are_detected_as_their_model() {
        for (name, _, _) in VARIANTS {
            let cfg = MobileNetV4Config::variant(name).unwrap();
            let sd = random_state_dict(&cfg, 3).unwrap();
            assert!(looks_like_mobilenetv4(&sd));
            assert_eq!(detect(&sd).unwrap(), cfg, "{name}");
            assert_eq!(resolve(&sd, Some(name)).unwrap(), cfg);
        }
    }

    #[test]
    fn the_wrong_name_is_refused_with_the_first_difference() {
        let cfg = MobileNetV4Config::variant("mobilenetv4_conv_small").unwrap();
        let sd = random_state_dict(&cfg, 3).unwrap();
        let e = resolve(&sd, Some("mobilenetv4_conv_small_050")).unwrap_err();
        assert!(matches!(e, Error::WrongVariant { .. }), "{e}");
        let e = MobileNetV4Config::variant("mobilenetv4_hybrid_medium").unwrap_err();
        assert!(e.to_string().contains("mobilenetv4_conv_large"), "{e}");
    }

    #[test]
    fn uib_strides_sit_on_the_middle_depthwise() {
        let cfg = MobileNetV4Config::variant("mobilenetv4_conv_medium").unwrap();
        let b = &cfg.blocks[1][0];
        assert_eq!((b.dw_start, b.dw_mid, b.stride, b.mid), (3, 5, 2, 192));
        let keys = cfg.expected_keys().unwrap();
        assert!(
            keys.iter()
                .any(|(k, s)| k == "blocks.1.0.dw_mid.conv.weight" && *s == [192, 1, 5, 5])
        );
        // FFN form: neither depthwise.
        let b = &cfg.blocks[2][6];
        assert_eq!((b.dw_start, b.dw_mid, b.has_skip()), (0, 0, true));
    }
}
