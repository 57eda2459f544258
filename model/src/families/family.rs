//! What a family is to the shared runner ([`Family`]), and the step constructors every family
//! builds its layers with.

use std::fmt;

use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::{Activation, Conv3x3, DwConv, Isa, Kernels, PackedPointwise};

use crate::error::{Error, KernelContext};
use crate::graph::{Graph, Op, Vector};
use crate::load::checkpoint::StateDict;
use crate::load::params::{Folded, KeyRecorder, Params, RandomParams, conv_bn};
use crate::preprocess::EvalTransform;

/// BatchNorm epsilon of every timm MobileNet, EfficientNet and MobileNetV4 BatchNorm (PyTorch's
/// default).
pub const BN_EPS: f64 = 1e-5;

/// What a network family provides to the shared runner.
pub trait Family {
    /// The architecture's name (timm's where it has one).
    fn name(&self) -> &str;
    /// Input channels.
    fn in_chans(&self) -> usize;
    /// Classifier outputs.
    fn num_classes(&self) -> usize;
    /// Width of the pooled feature vector the classifier reads: what a headless model
    /// (`num_classes == 0`) outputs per image.
    fn features(&self) -> usize;
    /// timm's eval transform of the family's pretrained configurations.
    fn eval_transform(&self) -> EvalTransform;
    /// Reads every parameter from `p` under timm's names, folds BatchNorm, and appends the steps
    /// (weights packed for the ISA of `k`) to `g`.
    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error>;
}

/// Packs a pointwise layer at the precision of `k` (weights rounded once, here, at load). Only
/// the pointwise layers take `k.precision()`: the stem, depthwise, squeeze-excite, pooling and the
/// head stay f32, and so do biases, activations between layers and accumulators.
pub(crate) fn pack(k: &Kernels, name: &str, f: &Folded) -> Result<PackedPointwise, Error> {
    PackedPointwise::pack_precision(
        k.isa(),
        k.precision(),
        f.cin,
        f.cout,
        &f.weight,
        Some(&f.bias),
    )
    .layer(|| name.to_string())
}

/// A folded depthwise `[c, 1, k, k]` convolution (`k` from the weight length), padding `k / 2`.
pub(crate) fn depthwise(
    k: &Kernels,
    name: &str,
    f: &Folded,
    stride: usize,
    act: Activation,
) -> Result<DwConv, Error> {
    let taps = f.weight.len() / f.cout.max(1);
    let size = (1..=taps).find(|s| s * s == taps).unwrap_or(0);
    DwConv::create(k, f.cout, size, &f.weight, &f.bias, stride, act).layer(|| name.to_string())
}

/// The folded BatchNorm'd convolution `conv_key` (`shape` `[cout, cin, k, k]`) with the BatchNorm
/// `bn` as a pointwise step (`k == 1`) reading buffer `src`, adding buffer `residual` when given;
/// returns the output buffer. The step is named `name` (timm's module name).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise_bn(
    p: &mut dyn Params,
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    (conv_key, bn): (&str, &str),
    shape: [usize; 4],
    act: Activation,
    src: usize,
    residual: Option<usize>,
) -> Result<usize, Error> {
    let f = conv_bn(p, conv_key, bn, shape, BN_EPS)?;
    let dst = g.buf();
    let pw = pack(k, name, &f)?;
    g.push(
        name,
        Op::Pw {
            pw,
            act,
            src,
            dst,
            residual,
        },
    );
    Ok(dst)
}

/// A depthwise `[c, 1, kk, kk]` convolution `conv_key` with the BatchNorm `bn`, folded, as a step
/// named `name` reading `src` at `stride` (`sums`: also the per-channel sums a following
/// squeeze-excite reads); returns the output buffer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_bn(
    p: &mut dyn Params,
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    (conv_key, bn): (&str, &str),
    (c, kk, stride): (usize, usize, usize),
    act: Activation,
    src: usize,
    sums: bool,
) -> Result<usize, Error> {
    let f = conv_bn(p, conv_key, bn, [c, 1, kk, kk], BN_EPS)?;
    let dst = g.buf();
    let conv = depthwise(k, name, &f, stride, act)?;
    g.push(
        name,
        Op::Dw {
            conv,
            src,
            dst,
            sums,
        },
    );
    Ok(dst)
}

/// A dense 3x3 convolution `conv_key` (`[cout, cin, 3, 3]`, padding 1) with the BatchNorm `bn`,
/// folded, as a step named `name` reading `src` at `stride`; returns the output buffer. The stems
/// of the MobileNets, and MobileNetV4's dense 3x3 blocks (`ConvBnAct`, `EdgeResidual`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_bn(
    p: &mut dyn Params,
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    (conv_key, bn): (&str, &str),
    (cin, cout, stride): (usize, usize, usize),
    act: Activation,
    src: usize,
) -> Result<usize, Error> {
    let f = conv_bn(p, conv_key, bn, [cout, cin, 3, 3], BN_EPS)?;
    let dst = g.buf();
    push_conv3x3(k, g, name, &f, (stride, act), (src, dst))?;
    Ok(dst)
}

/// The folded dense 3x3 convolution `f` (`[cout, cin, 3, 3]` and its bias, padding 1) at
/// `stride` with `act`, as a step named `name` from buffer `src` into buffer `dst`.
pub(crate) fn push_conv3x3(
    k: &Kernels,
    g: &mut Graph,
    name: &str,
    f: &Folded,
    (stride, act): (usize, Activation),
    (src, dst): (usize, usize),
) -> Result<(), Error> {
    let conv = Conv3x3::new(
        k.isa(),
        f.cin,
        f.cout,
        &f.weight,
        Some(&f.bias),
        stride,
        act,
    )
    .layer(|| name.to_string())?;
    g.push(
        name,
        Op::Conv {
            conv,
            act,
            src,
            dst,
        },
    );
    Ok(())
}

/// The classifier `Linear` (`f`: `[classes, features]` and its bias) reading the feature vector
/// `src`, as the step `classifier`.
pub(crate) fn push_classifier(
    k: &Kernels,
    g: &mut Graph,
    f: &Folded,
    src: Vector,
) -> Result<(), Error> {
    let linear = Linear::new(k.isa(), f.cin, f.cout, &f.weight, Some(&f.bias))
        .layer(|| "classifier".into())?;
    g.push("classifier", Op::Head { linear, src });
    Ok(())
}

/// Appends the blocks `blocks[i][j]` (named `blocks.{i}.{j}`, timm's keys) after the stem output
/// `x` (output stride 2) with `push(p, g, name, block, input) -> output`, and marks the feature
/// stages as timm's `EfficientNetBuilder` records them (`feature_info`): the stem when the first
/// block has stride 2, then every stage followed by a stride-2 stage, and the last stage. Returns
/// the last block's output buffer.
pub(crate) fn push_stages<B>(
    p: &mut dyn Params,
    g: &mut Graph,
    x: usize,
    blocks: &[Vec<B>],
    stride: impl Fn(&B) -> usize,
    mut push: impl FnMut(&mut dyn Params, &mut Graph, &str, &B, usize) -> Result<usize, Error>,
) -> Result<usize, Error> {
    let first_stride = |i: usize| blocks.get(i).and_then(|s| s.first()).map(&stride);
    let mut x = x;
    let mut reduction = 2;
    if first_stride(0).is_some_and(|s| s > 1) {
        g.end_stage(x, reduction);
    }
    for (i, stage) in blocks.iter().enumerate() {
        for (j, b) in stage.iter().enumerate() {
            x = push(p, g, &format!("blocks.{i}.{j}"), b, x)?;
            reduction *= stride(b);
        }
        if i + 1 == blocks.len() || first_stride(i + 1).is_some_and(|s| s > 1) {
            g.end_stage(x, reduction);
        }
    }
    Ok(x)
}

/// Detection refuses checkpoints with a stage or block index (`blocks.<stage>.<block>`) at or
/// beyond this.
const MAX_INDEX: usize = 64;

/// Blocks per stage of a timm `blocks.<stage>.<block>.*` checkpoint (keys outside `blocks.`
/// ignored); `not(reason)` makes the error for a key of another form or an index of
/// [`MAX_INDEX`] or more.
pub(crate) fn block_depths(
    sd: &StateDict,
    not: impl Fn(String) -> Error,
) -> Result<Vec<usize>, Error> {
    let mut depth: Vec<usize> = Vec::new();
    for key in sd.keys() {
        let Some(rest) = key.strip_prefix("blocks.") else {
            continue;
        };
        let mut it = rest.splitn(3, '.');
        let (Some(Ok(i)), Some(Ok(j))) = (
            it.next().map(str::parse::<usize>),
            it.next().map(str::parse::<usize>),
        ) else {
            return Err(not(format!(
                "tensor `{key}` is not `blocks.<stage>.<block>.*`"
            )));
        };
        if i >= MAX_INDEX || j >= MAX_INDEX {
            return Err(not(format!("tensor `{key}`: index beyond {MAX_INDEX}")));
        }
        if depth.len() <= i {
            depth.resize(i + 1, 0);
        }
        depth[i] = depth[i].max(j + 1);
    }
    Ok(depth)
}

/// The shape of `key` if it has `rank` dimensions; else `not(reason)`.
pub(crate) fn dims(
    sd: &StateDict,
    key: &str,
    rank: usize,
    not: impl Fn(String) -> Error,
) -> Result<Vec<usize>, Error> {
    match sd.shape(key) {
        Some(s) if s.len() == rank => Ok(s.to_vec()),
        Some(s) => Err(not(format!(
            "tensor `{key}` has shape {s:?}, expected {rank} dimensions"
        ))),
        None => Err(not(format!("no tensor `{key}`"))),
    }
}

/// Classifier outputs of a timm checkpoint: `classifier.weight`'s rows, or 0 when it has no
/// classifier tensors (timm's `num_classes=0` saves none: the classifier is Identity).
pub(crate) fn classifier_outputs(
    sd: &StateDict,
    not: impl Fn(String) -> Error,
) -> Result<usize, Error> {
    if sd.shape("classifier.weight").is_none() && sd.shape("classifier.bias").is_none() {
        return Ok(0);
    }
    Ok(dims(sd, "classifier.weight", 2, not)?[0])
}

/// A state dict of [`RandomParams`] under the names and shapes `keys` (a family's expected keys,
/// in reading order), named `<random {label} seed {seed}>`.
pub(crate) fn random_state_dict_of(
    keys: Vec<(String, Vec<usize>)>,
    label: &str,
    seed: u64,
) -> Result<StateDict, Error> {
    let mut rng = RandomParams::new(seed);
    let mut sd = StateDict::new(format!("<random {label} seed {seed}>"));
    for (key, shape) in keys {
        let data = rng.tensor(&key, &shape)?;
        sd.insert(key, shape, data)?;
    }
    Ok(sd)
}

/// Every key (and shape) `family` reads, in reading order (its build run against a
/// [`KeyRecorder`] with the scalar kernels).
pub(crate) fn expected_keys_of(family: &dyn Family) -> Result<Vec<(String, Vec<usize>)>, Error> {
    let mut rec = KeyRecorder::default();
    let k = Kernels::with_isa(Isa::Scalar).layer(|| "kernels".into())?;
    family.build(&mut rec, &k, &mut Graph::new())?;
    Ok(rec.keys)
}

/// How [`resolve`] reads a family's configurations: `variant(name)` (a registered model, 1000
/// classes), `detect(sd)` (the configuration a checkpoint's shapes describe), `same(a, b)`
/// (the same network, names aside) and `set_classes(c, n)`.
pub(crate) struct Resolver<C> {
    pub(crate) variant: fn(&str) -> Result<C, Error>,
    pub(crate) detect: fn(&StateDict) -> Result<C, Error>,
    pub(crate) same: fn(&C, &C) -> bool,
    pub(crate) set_classes: fn(&mut C, usize),
}

/// The configuration to read `sd` with: the detected one (`name` absent), or the named model
/// (with the checkpoint's class count) after checking that the checkpoint holds it; else
/// [`Error::WrongVariant`] naming the first tensor that differs.
pub(crate) fn resolve<C: Family + fmt::Display>(
    sd: &StateDict,
    name: Option<&str>,
    r: Resolver<C>,
) -> Result<C, Error> {
    let Some(name) = name else {
        return (r.detect)(sd);
    };
    let mut want = (r.variant)(name)?;
    let found = match (r.detect)(sd) {
        Ok(found) => found,
        // Not even the stem is there: read with the requested model and report the first
        // missing key.
        Err(_) => return Ok(want),
    };
    (r.set_classes)(&mut want, found.num_classes());
    if (r.same)(&want, &found) {
        return Ok(want);
    }
    Err(sd.wrong_variant(
        want.to_string(),
        found.to_string(),
        expected_keys_of(&want)?,
    ))
}

/// `<name> (stem <stem>, stage widths [..], head <head>, <classes> classes)`: how the MobileNet
/// families describe a configuration in messages; `widths` are each stage's output width.
pub(crate) fn describe(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    stem: usize,
    widths: impl Iterator<Item = usize>,
    (head, classes): (usize, usize),
) -> fmt::Result {
    let widths: Vec<usize> = widths.collect();
    write!(
        f,
        "{name} (stem {stem}, stage widths {widths:?}, head {head}, {classes} classes)"
    )
}
