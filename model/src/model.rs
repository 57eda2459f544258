//! The runnable network, for every family: folded weights packed once for one ISA, and the order
//! of kernel calls (steps over numbered buffers). Each family ([`crate::family::Family`]) only
//! appends steps to a [`Graph`]; buffer shapes come from shape inference over the steps for each
//! input shape. Activations are NHWC inside; buffers live in a workspace (`Workspace`) per input
//! shape, kept in a small pool so repeated calls with the same batch allocate nothing.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mobile_cnn_kernels::elementwise::{global_avg_pool, scale_channels_in_place};
use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::registry::{self, Op as KernelOp};
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{
    Activation, Conv3x3, DwConv, DwConvGeom, Kernels, PackedPointwise, SendPtr, Shape, Tensor,
};

use crate::checkpoint::StateDict;
use crate::config::Config;
use crate::error::{Error, KernelContext};
use crate::family::Arch;
use crate::weights::{BlockWeights, Folded, FusedWeights, Params, RandomParams};

/// Workspaces kept for reuse (distinct input shapes or concurrent callers).
const POOL_LIMIT: usize = 4;

/// What kind of kernel a layer step calls (for per-layer breakdowns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerKind {
    /// NCHW to NHWC copy of the input batch (no arithmetic).
    Input,
    /// Dense 3x3 stride-2 convolution of the stem.
    StemConv,
    /// Depthwise k x k convolution (RepViT: 3x3 token mixer, stride 1, or spatial downsample,
    /// stride 2; MobileNets: 3x3 or 5x5, stride 1 or 2).
    DwConv,
    /// Squeeze-excite gate from the depthwise sums, and the channel scaling.
    Se,
    /// 1x1 convolution (channel mixer, channel downsample, downsample FFN).
    Pointwise,
    /// Global average pool.
    Pool,
    /// The classifier.
    Linear,
}

impl LayerKind {
    /// Every kind, in network order.
    pub const ALL: [LayerKind; 7] = [
        LayerKind::Input,
        LayerKind::StemConv,
        LayerKind::DwConv,
        LayerKind::Se,
        LayerKind::Pointwise,
        LayerKind::Pool,
        LayerKind::Linear,
    ];

    /// Short name: `input`, `stem_conv`, `dwconv`, `se`, `pointwise`, `pool`, `linear`.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Input => "input",
            LayerKind::StemConv => "stem_conv",
            LayerKind::DwConv => "dwconv",
            LayerKind::Se => "se",
            LayerKind::Pointwise => "pointwise",
            LayerKind::Pool => "pool",
            LayerKind::Linear => "linear",
        }
    }
}

impl std::fmt::Display for LayerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of the forward pass for a given input shape: one kernel call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// timm-style module name, e.g. `stages.2.blocks.5.channel_mixer.conv1`.
    pub name: String,
    /// Kernel kind.
    pub kind: LayerKind,
    /// Input activation shape (NHWC; the classifier's is `[n, 1, 1, features]`).
    pub input: Shape,
    /// Output activation shape.
    pub output: Shape,
    /// Floating-point operations (a multiply-add counts 2; pooling counts one add per element; the
    /// squeeze-excite counts its two small matrix products).
    pub flops: u64,
    /// The step's distinct configuration (kind, shapes, stride, activation, fused extras): steps
    /// with equal keys do the same work, e.g. `pointwise_14x14_224to448_gelu`.
    pub key: String,
}

/// A layer configuration that occurs `count` times, first at step `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistinctLayer {
    /// Index of the first step with this configuration.
    pub index: usize,
    /// How many steps share it.
    pub count: usize,
}

/// The distinct configurations of `layers` (by [`LayerInfo::key`]), in order of first occurrence.
pub fn distinct_layers(layers: &[LayerInfo]) -> Vec<DistinctLayer> {
    let mut out: Vec<DistinctLayer> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        match out.iter_mut().find(|d| layers[d.index].key == l.key) {
            Some(d) => d.count += 1,
            None => out.push(DistinctLayer { index: i, count: 1 }),
        }
    }
    out
}

/// A feature vector `[n, c]` of the workspace (after global pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vector {
    /// The global pool's output.
    Pooled,
    /// The output of [`Op::PooledPw`] (MobileNetV3's `conv_head`).
    Head,
}

/// The kernel call of a step; `src`, `dst`, `t`, `residual` index the graph's buffers.
#[derive(Debug)]
pub(crate) enum Op {
    /// The input batch (NCHW) into buffer 0 (NHWC).
    ToNhwc,
    Conv {
        conv: Conv3x3,
        act: Activation,
        src: usize,
        dst: usize,
    },
    /// `sums`: also write per-channel sums of the output (for the following squeeze-excite).
    Dw {
        conv: DwConv,
        src: usize,
        dst: usize,
        sums: bool,
    },
    /// Gate from the sums of the previous depthwise step, then scale buffer `t` in place.
    Se { se: SqueezeExcite, t: usize },
    Pw {
        pw: PackedPointwise,
        act: Activation,
        src: usize,
        dst: usize,
        residual: Option<usize>,
    },
    /// Global average pool into the workspace (`to_out`: into the output, for a headless model).
    Pool { src: usize, to_out: bool },
    /// A 1x1 convolution of the pooled features (MobileNetV3's `conv_head` with bias and
    /// activation): [`Vector::Pooled`] to [`Vector::Head`] (`to_out`: into the output, for a
    /// headless model).
    PooledPw {
        pw: PackedPointwise,
        act: Activation,
        to_out: bool,
    },
    /// The classifier, from the feature vector `src`, into the logits.
    Head { linear: Linear, src: Vector },
}

/// One step: a kernel call and its timm-style module name.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) op: Op,
}

/// The steps of a network under construction, over numbered buffers. Buffer 0 holds the input
/// (NHWC) after the first step (`Op::ToNhwc`); a buffer's shape is whatever the first step that
/// writes it produces (checked against every later use by shape inference).
#[derive(Debug)]
pub struct Graph {
    pub(crate) steps: Vec<Step>,
    pub(crate) bufs: usize,
    /// Per stage, as marked by [`Graph::end_stage`]: its last step and its output buffer.
    pub(crate) stage_out: Vec<(usize, usize)>,
    /// Per stage: its output stride (input pixels per feature-map pixel, timm's `reduction`).
    pub(crate) stage_reduction: Vec<usize>,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

impl Graph {
    /// A graph holding the input step and buffer 0.
    pub fn new() -> Graph {
        Graph {
            steps: vec![Step {
                name: "input".into(),
                op: Op::ToNhwc,
            }],
            bufs: 1,
            stage_out: Vec::new(),
            stage_reduction: Vec::new(),
        }
    }

    /// The input buffer.
    pub(crate) const INPUT: usize = 0;

    /// A new buffer.
    pub(crate) fn buf(&mut self) -> usize {
        self.bufs += 1;
        self.bufs - 1
    }

    /// Marks the last step pushed as the end of a stage whose output is `buf`, at output stride
    /// `reduction` (the feature maps of [`Network::forward_features`]).
    pub(crate) fn end_stage(&mut self, buf: usize, reduction: usize) {
        self.stage_out.push((self.steps.len() - 1, buf));
        self.stage_reduction.push(reduction);
    }

    /// Appends a step.
    pub(crate) fn push(&mut self, name: impl Into<String>, op: Op) {
        self.steps.push(Step {
            name: name.into(),
            op,
        });
    }
}

/// Shapes of every buffer and feature vector for one input shape, found by walking the steps.
#[derive(Debug, Clone)]
struct Shapes {
    bufs: Vec<Shape>,
    /// Channels of the pooled vector, of the head vector, and the widest squeeze-excite.
    pooled: usize,
    head: usize,
    se: usize,
    /// Floats of the per-band partial sums of the widest banded depthwise step with sums
    /// (`n * bands per image * c`, see [`DwBands`]).
    dw_partials: usize,
}

/// A network ready to run (RepViT, MobileNetV3, MobileNetV2: see [`Arch`]): folded weights
/// packed for the ISA of its [`Kernels`] handle, as a list of steps (one kernel call each) over the
/// buffers of a workspace. [`Network::forward`], [`Network::profile_into`] and [`LayerBench`] all
/// execute the same steps.
///
/// `Send + Sync`: one model can serve several threads; each call takes a workspace from the pool
/// (or allocates one when all are busy).
#[derive(Debug)]
pub struct Network {
    arch: Arch,
    kernels: Kernels,
    /// The same ISA on one thread: what each group of images runs with under [`BatchSplit::Images`].
    single: Kernels,
    batch_split: BatchSplit,
    steps: Vec<Step>,
    num_bufs: usize,
    /// Per feature stage: the index of its last step and the buffer holding its output.
    stage_out: Vec<(usize, usize)>,
    /// Per feature stage: its output stride.
    stage_reduction: Vec<usize>,
    pool: Mutex<Vec<Workspace>>,
    group_pool: Mutex<Vec<ImageGroups>>,
}

/// How a batch of more than one image is spread over the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSplit {
    /// Every layer is split across all threads, one layer after another, as for one image.
    Layers,
    /// The images are cut into one group per thread (at most one per image); each group runs the
    /// whole network on one thread with its own buffers. No thread waits for another between layers.
    Images,
}

/// The buffers of [`BatchSplit::Images`] for one input shape: one group per thread.
#[derive(Debug)]
struct ImageGroups {
    input_shape: [usize; 4],
    groups: Vec<ImageGroup>,
}

/// Images `first..first + ws.input_shape[0]` of the batch, their workspace, logits and outcome.
#[derive(Debug)]
struct ImageGroup {
    first: usize,
    ws: Workspace,
    logits: Vec<f32>,
    result: Result<(), Error>,
}

/// The name the crate started with: every family runs on the same [`Network`].
pub type RepVit = Network;

/// One stage's output feature map, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Stage index (0-based, as timm's `out_indices`).
    pub stage: usize,
    /// The stage's output stride `r` (timm's `feature_info` `reduction`): RepViT `2^(stage + 2)`
    /// (4, 8, 16, 32); MobileNetV3/V2 `2^(stage + 1)` (2, 4, 8, 16, 32).
    pub reduction: usize,
    /// `[N, C_stage, H_stage, W_stage]`: `H_stage = ceil(H / r)` (each stride-2 convolution
    /// with padding `k / 2` maps `h` to `(h - 1) / 2 + 1`), likewise for `W`.
    pub shape: [usize; 4],
    /// Elements, row-major over `shape`.
    pub data: Vec<f32>,
}

/// Every activation buffer of one forward pass for one input shape. Buffers whose lifetimes do
/// not overlap and whose shapes are equal share one tensor (`slot`).
#[derive(Debug)]
struct Workspace {
    input_shape: [usize; 4],
    /// Buffer index to tensor index.
    slot: Vec<usize>,
    bufs: Vec<Tensor>,
    pooled: Vec<f32>,
    head: Vec<f32>,
    sums: Vec<f32>,
    /// Per-band partial channel sums of a banded depthwise step, `[n][band][c]`, reduced in band
    /// order into `sums`.
    dw_partials: Vec<f32>,
    scale: Vec<f32>,
    se_scratch: Vec<f32>,
    conv_scratch: Vec<f32>,
}

impl Op {
    /// Buffers the step reads or writes.
    fn buffers(&self) -> impl Iterator<Item = usize> {
        let (a, b, c) = match *self {
            Op::ToNhwc => (Some(Graph::INPUT), None, None),
            Op::Conv { src, dst, .. } | Op::Dw { src, dst, .. } => (Some(src), Some(dst), None),
            Op::Se { t, .. } => (Some(t), None, None),
            Op::Pw {
                src, dst, residual, ..
            } => (Some(src), Some(dst), residual),
            Op::Pool { src, .. } => (Some(src), None, None),
            Op::PooledPw { .. } | Op::Head { .. } => (None, None, None),
        };
        [a, b, c].into_iter().flatten()
    }
}

/// Tensor slots for buffers: a buffer lives from the first step that touches it to the last, and
/// takes the first slot of its shape that is free by then.
fn assign_slots(steps: &[Step], shapes: &[Shape]) -> Vec<usize> {
    let mut first = vec![usize::MAX; shapes.len()];
    let mut last = vec![0; shapes.len()];
    for (i, step) in steps.iter().enumerate() {
        for b in step.op.buffers() {
            first[b] = first[b].min(i);
            last[b] = last[b].max(i);
        }
    }
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    order.sort_by_key(|&b| first[b]);
    // Per slot: its shape and the last step of its current occupant.
    let mut slots: Vec<(Shape, usize)> = Vec::new();
    let mut slot = vec![0; shapes.len()];
    for b in order {
        let free = slots
            .iter()
            .position(|&(s, end)| s == shapes[b] && end < first[b]);
        slot[b] = match free {
            Some(i) => {
                slots[i].1 = last[b];
                i
            }
            None => {
                slots.push((shapes[b], last[b]));
                slots.len() - 1
            }
        };
    }
    slot
}

impl Workspace {
    /// Buffers for NCHW input `[n, c, h, w]` (checked against the model beforehand).
    fn new(model: &Network, input_shape: [usize; 4]) -> Result<Workspace, Error> {
        let n = input_shape[0];
        let shapes = model.infer_shapes(input_shape)?;
        let slot = assign_slots(&model.steps, &shapes.bufs);
        let mut slot_shapes = vec![Shape::new(0, 0, 0, 0); slot.iter().max().map_or(0, |m| m + 1)];
        for (b, &s) in slot.iter().enumerate() {
            slot_shapes[s] = shapes.bufs[b];
        }
        let bufs = slot_shapes
            .into_iter()
            .map(|s| Tensor::zeros(s).layer(|| format!("activation buffer {s}")))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Workspace {
            input_shape,
            slot,
            bufs,
            pooled: vec![0.0; n * shapes.pooled],
            head: vec![0.0; n * shapes.head],
            sums: vec![0.0; n * shapes.se],
            dw_partials: vec![0.0; shapes.dw_partials],
            scale: vec![0.0; n * shapes.se],
            se_scratch: Vec::new(),
            conv_scratch: Vec::new(),
        })
    }
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
    name: &str,
    f: &Folded,
    stride: usize,
    act: Activation,
) -> Result<DwConv, Error> {
    let taps = f.weight.len() / f.cout.max(1);
    let k = (1..=taps).find(|k| k * k == taps).unwrap_or(0);
    DwConv::new(f.cout, k, &f.weight, &f.bias, stride, act).layer(|| name.to_string())
}

fn dw(name: &str, f: &Folded, stride: usize) -> Result<DwConv, Error> {
    depthwise(name, f, stride, Activation::Identity)
}

/// The buffers one stage's blocks run over.
#[derive(Debug, Clone, Copy)]
struct StageBufs {
    /// The running activation (block input and output).
    x: usize,
    /// The token mixer's output, residual of the channel mixer.
    t: usize,
    /// The channel mixer's hidden activation.
    hidden: usize,
}

/// Appends a block's steps: `x <- t + pw2(gelu(pw1(t)))` with `t = se(dw(x))`.
fn push_block(
    k: &Kernels,
    steps: &mut Graph,
    name: &str,
    b: &BlockWeights,
    sb: StageBufs,
) -> Result<(), Error> {
    steps.push(
        format!("{name}.token_mixer"),
        Op::Dw {
            conv: dw(&format!("{name}.token_mixer"), &b.dw, 1)?,
            src: sb.x,
            dst: sb.t,
            sums: b.se.is_some(),
        },
    );
    if let Some(s) = &b.se {
        let se = SqueezeExcite::new(
            k.isa(),
            s.c,
            s.r,
            &s.fc1.weight,
            &s.fc1.bias,
            &s.fc2.weight,
            &s.fc2.bias,
            Activation::Relu,
            Gate::Sigmoid,
        )
        .layer(|| format!("{name}.se"))?;
        steps.push(format!("{name}.se"), Op::Se { se, t: sb.t });
    }
    let n1 = format!("{name}.channel_mixer.conv1");
    let pw = pack(k, &n1, &b.pw1)?;
    steps.push(
        n1,
        Op::Pw {
            pw,
            act: Activation::Gelu,
            src: sb.t,
            dst: sb.hidden,
            residual: None,
        },
    );
    let n2 = format!("{name}.channel_mixer.conv2");
    let pw = pack(k, &n2, &b.pw2)?;
    steps.push(
        n2,
        Op::Pw {
            pw,
            act: Activation::Identity,
            src: sb.hidden,
            dst: sb.x,
            residual: Some(sb.t),
        },
    );
    Ok(())
}

fn act_name(a: Activation) -> String {
    format!("{a:?}").to_lowercase()
}

/// Appends RepViT's steps for re-parameterised weights `fw` (packed for the ISA of `k`) to `g`.
pub(crate) fn push_repvit(fw: &FusedWeights, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
    let cfg = &fw.config;
    let stem_out = g.buf();
    let mut stage_bufs = Vec::with_capacity(fw.stages.len());
    let mut down_bufs = Vec::with_capacity(fw.stages.len());
    for i in 0..cfg.embed_dim.len() {
        down_bufs.push((i > 0).then(|| g.buf()));
        stage_bufs.push(StageBufs {
            x: g.buf(),
            t: g.buf(),
            hidden: g.buf(),
        });
    }
    if stage_bufs.len() != fw.stages.len() || stage_bufs.is_empty() {
        return Err(Error::Config {
            reason: format!(
                "{} stage widths for {} stages of weights",
                stage_bufs.len(),
                fw.stages.len()
            ),
        });
    }

    let stem = |g: &mut Graph, name: &str, f: &Folded, act, src, dst| {
        let conv = Conv3x3::new(k.isa(), f.cin, f.cout, &f.weight, Some(&f.bias), 2, act)
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
        Ok::<_, Error>(())
    };
    stem(
        g,
        "stem.conv1",
        &fw.stem1,
        Activation::Gelu,
        Graph::INPUT,
        stem_out,
    )?;
    stem(
        g,
        "stem.conv2",
        &fw.stem2,
        Activation::Identity,
        stem_out,
        stage_bufs[0].x,
    )?;
    for (i, sw) in fw.stages.iter().enumerate() {
        let cur = stage_bufs[i];
        if let Some(d) = &sw.downsample {
            let name = format!("stages.{i}.downsample");
            let (Some(p), Some(down)) = (i.checked_sub(1).map(|j| stage_bufs[j]), down_bufs[i])
            else {
                return Err(Error::Config {
                    reason: format!("stage {i}: a downsample needs a previous stage"),
                });
            };
            push_block(k, g, &format!("{name}.pre_block"), &d.pre_block, p)?;
            let sname = format!("{name}.spatial_downsample");
            let conv = dw(&sname, &d.spatial, 2)?;
            g.push(
                sname,
                Op::Dw {
                    conv,
                    src: p.x,
                    dst: down,
                    sums: false,
                },
            );
            let pws = [
                (
                    "channel_downsample",
                    &d.channel,
                    Activation::Identity,
                    down,
                    cur.t,
                    None,
                ),
                (
                    "ffn.conv1",
                    &d.ffn1,
                    Activation::Gelu,
                    cur.t,
                    cur.hidden,
                    None,
                ),
                (
                    "ffn.conv2",
                    &d.ffn2,
                    Activation::Identity,
                    cur.hidden,
                    cur.x,
                    Some(cur.t),
                ),
            ];
            for (suffix, f, act, src, dst, residual) in pws {
                let n = format!("{name}.{suffix}");
                let pw = pack(k, &n, f)?;
                g.push(
                    n,
                    Op::Pw {
                        pw,
                        act,
                        src,
                        dst,
                        residual,
                    },
                );
            }
        }
        for (j, b) in sw.blocks.iter().enumerate() {
            push_block(k, g, &format!("stages.{i}.blocks.{j}"), b, cur)?;
        }
        g.end_stage(cur.x, 4 << i);
    }
    let last = stage_bufs[stage_bufs.len() - 1].x;
    // Headless (timm's `num_classes=0`): the pooled features are the output.
    let headless = fw.head.cout == 0;
    g.push(
        "global_pool",
        Op::Pool {
            src: last,
            to_out: headless,
        },
    );
    if headless {
        return Ok(());
    }
    let head = Linear::new(
        k.isa(),
        fw.head.cin,
        fw.head.cout,
        &fw.head.weight,
        Some(&fw.head.bias),
    )
    .layer(|| "head".into())?;
    g.push(
        "head",
        Op::Head {
            linear: head,
            src: Vector::Pooled,
        },
    );
    Ok(())
}

impl Network {
    /// Packs re-parameterised RepViT weights for the ISA of `kernels` (whose thread count the model
    /// uses).
    pub fn from_fused(fw: &FusedWeights, kernels: &Kernels) -> Result<Network, Error> {
        let mut g = Graph::new();
        push_repvit(fw, kernels, &mut g)?;
        Network::from_graph(Arch::RepVit(fw.config.clone()), g, kernels)
    }

    /// Reads every parameter of `arch` from `params` (folding BatchNorm as it goes) and packs the
    /// network for the ISA of `kernels`: the one builder every family goes through.
    pub fn build(arch: Arch, params: &mut dyn Params, kernels: &Kernels) -> Result<Network, Error> {
        let mut g = Graph::new();
        arch.build(params, kernels, &mut g)?;
        Network::from_graph(arch, g, kernels)
    }

    /// A network from its steps; checks that shape inference succeeds at the family's default
    /// input size.
    fn from_graph(arch: Arch, g: Graph, kernels: &Kernels) -> Result<Network, Error> {
        let net = Network {
            arch,
            kernels: kernels.clone(),
            single: kernels.single_threaded(),
            batch_split: BatchSplit::Images,
            steps: g.steps,
            num_bufs: g.bufs,
            stage_out: g.stage_out,
            stage_reduction: g.stage_reduction,
            pool: Mutex::new(Vec::new()),
            group_pool: Mutex::new(Vec::new()),
        };
        let s = net.arch.input_size();
        net.infer_shapes([1, net.in_chans(), s, s])?;
        Ok(net)
    }

    /// Loads a timm `model.safetensors` of any family. `variant` (a timm name such as
    /// `repvit_m1_0`, `mobilenetv3_large_100`, `mobilenetv2_100`, or RepViT's short `m1_0`) is
    /// checked against the checkpoint; `None` detects family and configuration from the tensors.
    pub fn load(
        path: impl AsRef<Path>,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<Network, Error> {
        Network::from_state_dict(StateDict::read(path)?, variant, kernels)
    }

    /// Builds from an in-memory state dict (timm's names), as [`Network::load`]. Rejects tensors
    /// the network does not use.
    pub fn from_state_dict(
        mut sd: StateDict,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<Network, Error> {
        let arch = Arch::resolve(&sd, variant)?;
        if let Arch::RepVit(_) = arch {
            // RepViT checkpoints come in more layouts than the family builder reads (deployed
            // after `fuse()`, headless): FusedWeights detects the layout and checks every key.
            return Network::from_fused(&FusedWeights::from_state_dict(sd, variant)?, kernels);
        }
        let net = Network::build(arch, &mut sd, kernels)?;
        if let Some(key) = sd.keys().next() {
            return Err(Error::UnexpectedKey {
                path: sd.path().to_path_buf(),
                key: key.to_string(),
                shape: sd.shape(key).unwrap_or_default().to_vec(),
            });
        }
        Ok(net)
    }

    /// A RepViT of `cfg` with deterministic random weights (for benchmarks and tests): the same
    /// model as loading [`crate::weights::random_state_dict`]`(cfg, seed)`.
    pub fn random(cfg: &Config, seed: u64, kernels: &Kernels) -> Result<Network, Error> {
        Network::random_arch(Arch::RepVit(cfg.clone()), seed, kernels)
    }

    /// A network of any family with deterministic random weights ([`RandomParams`]).
    pub fn random_arch(arch: Arch, seed: u64, kernels: &Kernels) -> Result<Network, Error> {
        Network::build(arch, &mut RandomParams::new(seed), kernels)
    }

    /// The same weights run with another thread count (the ISA must stay the same).
    pub fn with_threads(mut self, threads: usize) -> Result<Network, Error> {
        self.kernels = self
            .kernels
            .clone()
            .with_threads(threads)
            .layer(|| "threads".into())?;
        self.group_pool = Mutex::new(Vec::new());
        Ok(self)
    }

    /// The same weights with batches of more than one image spread over the threads as `split`
    /// says. The default is [`BatchSplit::Images`]; the results are bitwise the same either way.
    pub fn with_batch_split(mut self, split: BatchSplit) -> Network {
        self.batch_split = split;
        self
    }

    /// How batches of more than one image are spread over the threads.
    pub fn batch_split(&self) -> BatchSplit {
        self.batch_split
    }

    /// The RepViT configuration (`None` for the other families; see [`Network::arch`]).
    pub fn config(&self) -> Option<&Config> {
        match &self.arch {
            Arch::RepVit(c) => Some(c),
            _ => None,
        }
    }

    /// The architecture (family and configuration).
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The architecture's name (timm's, e.g. `mobilenetv3_large_100`; RepViT's short `m1_0`).
    pub fn name(&self) -> &str {
        self.arch.name()
    }

    /// Input channels.
    pub fn in_chans(&self) -> usize {
        self.arch.in_chans()
    }

    /// The kernels handle (ISA and threads) the model runs with.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Classifier outputs per image (0 for a headless model).
    pub fn num_classes(&self) -> usize {
        self.arch.num_classes()
    }

    /// Outputs per image of [`RepVit::forward`]: the class count, or for a headless model
    /// (`num_classes == 0`) the width of the pooled features `C_last`.
    pub fn num_outputs(&self) -> usize {
        match (&self.arch, self.arch.num_classes()) {
            (Arch::RepVit(c), 0) => c.features(),
            (Arch::MobileNet(c), 0) => c.features(),
            (_, n) => n,
        }
    }

    /// Checks an NCHW input shape against the model.
    fn check_input(&self, len: usize, shape: [usize; 4]) -> Result<(), Error> {
        let [n, c, h, w] = shape;
        let bad = |expected: String, found: String| {
            Err(Error::Input {
                what: "input batch".into(),
                expected,
                found,
            })
        };
        if c != self.arch.in_chans() || n == 0 || h == 0 || w == 0 {
            return bad(
                format!(
                    "NCHW shape [N >= 1, {}, H >= 1, W >= 1]",
                    self.arch.in_chans()
                ),
                format!("shape {shape:?}"),
            );
        }
        let want = n
            .checked_mul(c)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w));
        if want != Some(len) {
            return bad(
                format!(
                    "{} elements for NCHW shape {shape:?}",
                    want.map_or("too many".into(), |v| v.to_string())
                ),
                format!("{len} elements"),
            );
        }
        Ok(())
    }

    /// Logits `[n, classes]` (row-major) of an NCHW f32 batch of shape `[n, c, h, w]`; for a
    /// headless model the pooled features `[n, C_last]` (see [`RepVit::num_outputs`]).
    pub fn forward(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<f32>, Error> {
        self.check_input(input.len(), shape)?;
        let mut out = vec![0.0; shape[0] * self.num_outputs()];
        self.forward_into(input, shape, &mut out)?;
        Ok(out)
    }

    /// As [`Network::forward`], into `out` (`n * classes` floats). Allocates nothing once a workspace
    /// for this input shape exists.
    pub fn forward_into(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(input.len(), shape)?;
        self.check_output(out.len(), shape)?;
        if self.batch_split == BatchSplit::Images && shape[0] > 1 && self.kernels.threads() > 1 {
            return self.forward_image_groups(input, shape, out);
        }
        let mut ws = self.take_workspace(shape)?;
        let r = self.run(&self.kernels, &mut ws, input, out, None);
        self.give_back(ws);
        r
    }

    /// [`BatchSplit::Images`]: one group of images per thread, each run start to end on one thread.
    fn forward_image_groups(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let [n, c, h, w] = shape;
        let mut groups = {
            let mut pool = self.group_pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter()
                .position(|g| g.input_shape == shape)
                .map(|i| pool.swap_remove(i))
        };
        if groups.is_none() {
            let count = self.kernels.threads().min(n);
            let mut gs = Vec::with_capacity(count);
            for g in 0..count {
                let (first, end) = (n * g / count, n * (g + 1) / count);
                gs.push(ImageGroup {
                    first,
                    ws: Workspace::new(self, [end - first, c, h, w])?,
                    logits: vec![0.0; (end - first) * self.num_outputs()],
                    result: Ok(()),
                });
            }
            groups = Some(ImageGroups {
                input_shape: shape,
                groups: gs,
            });
        }
        let mut groups = groups.expect("made above");
        let img = c * h * w;
        self.kernels
            .for_each_mut(&mut groups.groups, |_, _, g: &mut ImageGroup| {
                let count = g.ws.input_shape[0];
                let x = &input[g.first * img..(g.first + count) * img];
                g.result = self.run(&self.single, &mut g.ws, x, &mut g.logits, None);
            });
        let classes = self.num_outputs();
        let mut r = Ok(());
        for g in &mut groups.groups {
            let res = std::mem::replace(&mut g.result, Ok(()));
            if r.is_ok() {
                r = res;
            }
            out[g.first * classes..g.first * classes + g.logits.len()].copy_from_slice(&g.logits);
        }
        let mut pool = self.group_pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_LIMIT {
            pool.remove(0);
        }
        pool.push(groups);
        r
    }

    fn take_workspace(&self, shape: [usize; 4]) -> Result<Workspace, Error> {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = pool.iter().position(|w| w.input_shape == shape) {
                return Ok(pool.swap_remove(i));
            }
        }
        Workspace::new(self, shape)
    }

    fn give_back(&self, ws: Workspace) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_LIMIT {
            pool.remove(0);
        }
        pool.push(ws);
    }

    /// The feature maps of `stages` (indices into the stages, 0-based, as timm's `out_indices`;
    /// any order, repeats allowed) for an NCHW f32 batch of shape `[n, c, h, w]`, any `h, w >= 1`:
    /// one NCHW [`FeatureMap`] per requested stage, in the order asked, as timm's
    /// `features_only=True` model returns them. The stages are timm's `feature_info` entries
    /// ([`Network::stage_reductions`] gives their strides):
    /// - RepViT: 4 stages, stride 4, 8, 16, 32, `embed_dim[i]` channels (also timm's
    ///   `forward_intermediates(x, indices=stages, intermediates_only=True, stop_early=True)`).
    /// - MobileNetV3-Large and MobileNetV2: 5 stages, stride 2, 4, 8, 16, 32: the outputs of
    ///   `blocks.0`, `blocks.1`, `blocks.2`, `blocks.4`, `blocks.6` (V3-Large's `blocks.6` is the
    ///   1x1 ConvBnAct to 960 channels; V2's is the last inverted residual, 320 channels; neither
    ///   includes `conv_head`).
    /// - MobileNetV3-Small: 5 stages, stride 2, 4, 8, 16, 32: the stem (`bn1` after its
    ///   activation, since `blocks.0` has stride 2), `blocks.0`, `blocks.1`, `blocks.3`,
    ///   `blocks.5` (the ConvBnAct to 576 channels).
    ///
    /// The steps after the last stage asked are not run.
    ///
    /// Errors: a model without feature stages, a stage index `>=` the number of stages, no stage
    /// asked, or a bad input shape.
    pub fn forward_features(
        &self,
        input: &[f32],
        shape: [usize; 4],
        stages: &[usize],
    ) -> Result<Vec<FeatureMap>, Error> {
        self.check_input(input.len(), shape)?;
        let nstages = self.stage_out.len();
        if nstages == 0 {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: "a model with feature stages".into(),
                found: format!("{} marks no stage ends", self.name()),
            });
        }
        let Some(&last) = stages.iter().max() else {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: format!("at least one stage index below {nstages}"),
                found: "none".into(),
            });
        };
        if last >= nstages {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: format!("stage indices below {nstages} (the model's stage count)"),
                found: format!("{stages:?}"),
            });
        }
        let mut ws = self.take_workspace(shape)?;
        let mut maps: Vec<Option<FeatureMap>> = vec![None; nstages];
        let mut r = Ok(());
        for (i, step) in self.steps[..=self.stage_out[last].0].iter().enumerate() {
            r = self.exec(&self.kernels, step, &mut ws, input, &mut []);
            if r.is_err() {
                break;
            }
            if let Some(s) = self.stage_out.iter().position(|&(end, _)| end == i)
                && stages.contains(&s)
            {
                let t = &ws.bufs[ws.slot[self.stage_out[s].1]];
                maps[s] = Some(to_nchw(s, self.stage_reduction[s], t));
            }
        }
        self.give_back(ws);
        r?;
        Ok(stages.iter().filter_map(|&s| maps[s].clone()).collect())
    }

    /// How many stages [`Network::forward_features`] can return (4 for the published RepViT
    /// variants, 5 for the MobileNets: timm's `feature_info` entries).
    pub fn num_stages(&self) -> usize {
        self.stage_out.len()
    }

    /// The output stride of each stage of [`Network::forward_features`] (timm's
    /// `feature_info.reduction()`): `[4, 8, 16, 32]` for RepViT, `[2, 4, 8, 16, 32]` for the
    /// MobileNets.
    pub fn stage_reductions(&self) -> &[usize] {
        &self.stage_reduction
    }

    /// Checks `out` against the batch of `shape`.
    fn check_output(&self, len: usize, shape: [usize; 4]) -> Result<(), Error> {
        let want = shape[0] * self.num_outputs();
        if len != want {
            return Err(Error::Input {
                what: "logits buffer".into(),
                expected: format!(
                    "{want} elements ({} images x {} outputs)",
                    shape[0],
                    self.num_outputs()
                ),
                found: format!("{len} elements"),
            });
        }
        Ok(())
    }

    /// As [`Network::forward_into`], and writes each step's wall time to `times` (one entry per
    /// step of [`Network::layers`], in the same order).
    pub fn profile_into(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
        times: &mut [Duration],
    ) -> Result<(), Error> {
        self.check_input(input.len(), shape)?;
        self.check_output(out.len(), shape)?;
        self.check_times(times.len())?;
        let mut ws = self.take_workspace(shape)?;
        let r = self.run(&self.kernels, &mut ws, input, out, Some(times));
        self.give_back(ws);
        r
    }

    fn check_times(&self, len: usize) -> Result<(), Error> {
        if len != self.steps.len() {
            return Err(Error::Input {
                what: "per-layer times buffer".into(),
                expected: format!("{} entries (one per layer step)", self.steps.len()),
                found: format!("{len} entries"),
            });
        }
        Ok(())
    }

    /// Every buffer's shape for NCHW input `shape`, by walking the steps: a buffer takes the shape
    /// of the first step that writes it, and every later use must agree.
    fn infer_shapes(&self, shape: [usize; 4]) -> Result<Shapes, Error> {
        let [n, c, h, w] = shape;
        let mut bufs: Vec<Option<Shape>> = vec![None; self.num_bufs];
        let mut out = Shapes {
            bufs: Vec::new(),
            pooled: 0,
            head: 0,
            se: 0,
            dw_partials: 0,
        };
        let bad = |step: &Step, what: String| Error::Config {
            reason: format!("{}: {what} (input {shape:?})", step.name),
        };
        for step in &self.steps {
            let get = |bufs: &[Option<Shape>], b: usize| {
                bufs.get(b)
                    .copied()
                    .flatten()
                    .ok_or_else(|| bad(step, format!("reads buffer {b} before any step wrote it")))
            };
            let (dst, s) = match &step.op {
                Op::ToNhwc => (Graph::INPUT, Shape::new(n, h, w, c)),
                Op::Conv { conv, src, dst, .. } => {
                    let i = get(&bufs, *src)?;
                    let o = conv.output_shape(i).layer(|| step.name.clone())?;
                    (*dst, o)
                }
                Op::Dw {
                    conv,
                    src,
                    dst,
                    sums,
                } => {
                    let o = conv
                        .output_shape(get(&bufs, *src)?)
                        .layer(|| step.name.clone())?;
                    if *sums {
                        out.se = out.se.max(o.c);
                        let g = conv.geom(get(&bufs, *src)?).layer(|| step.name.clone())?;
                        let b = DwBands::of(&g);
                        if b.per_image > 1 {
                            out.dw_partials = out.dw_partials.max(g.n * b.per_image * g.c);
                        }
                    }
                    (*dst, o)
                }
                Op::Se { se, t } => {
                    let s = get(&bufs, *t)?;
                    if s.c != se.channels() || se.channels() > out.se {
                        return Err(bad(
                            step,
                            format!(
                                "squeeze-excite of {} channels on {s} without the sums of a depthwise step",
                                se.channels()
                            ),
                        ));
                    }
                    continue;
                }
                Op::Pw {
                    pw,
                    src,
                    dst,
                    residual,
                    ..
                } => {
                    let i = get(&bufs, *src)?;
                    if i.c != pw.k() {
                        return Err(bad(step, format!("1x1 of {} inputs on {i}", pw.k())));
                    }
                    let o = Shape::new(i.n, i.h, i.w, pw.n());
                    if let Some(r) = residual
                        && get(&bufs, *r)? != o
                    {
                        return Err(bad(step, format!("residual {r} is not {o}")));
                    }
                    (*dst, o)
                }
                Op::Pool { src, .. } => {
                    out.pooled = get(&bufs, *src)?.c;
                    continue;
                }
                Op::PooledPw { pw, .. } => {
                    if pw.k() != out.pooled {
                        return Err(bad(
                            step,
                            format!("1x1 of {} inputs on {} pooled features", pw.k(), out.pooled),
                        ));
                    }
                    out.head = pw.n();
                    continue;
                }
                Op::Head { linear, src } => {
                    let have = match src {
                        Vector::Pooled => out.pooled,
                        Vector::Head => out.head,
                    };
                    if linear.inputs() != have || linear.outputs() != self.arch.num_classes() {
                        return Err(bad(
                            step,
                            format!(
                                "classifier {} -> {} on {have} features for {} classes",
                                linear.inputs(),
                                linear.outputs(),
                                self.arch.num_classes()
                            ),
                        ));
                    }
                    continue;
                }
            };
            match bufs.get_mut(dst) {
                Some(slot @ None) => *slot = Some(s),
                Some(Some(prev)) if *prev == s => {}
                Some(Some(prev)) => {
                    return Err(bad(step, format!("writes {s} into buffer {dst} of {prev}")));
                }
                None => return Err(bad(step, format!("no buffer {dst}"))),
            }
        }
        out.bufs = bufs
            .into_iter()
            .map(|b| b.unwrap_or(Shape::new(n, 1, 1, 1)))
            .collect();
        Ok(out)
    }

    /// Number of steps (kernel calls) of a forward pass.
    pub fn num_layers(&self) -> usize {
        self.steps.len()
    }

    /// The steps of a forward pass on an NCHW input of `shape`, in execution order, with their
    /// shapes, FLOPs and configuration keys.
    pub fn layers(&self, shape: [usize; 4]) -> Result<Vec<LayerInfo>, Error> {
        let [n, c, h, w] = shape;
        let len = n
            .checked_mul(c)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w))
            .unwrap_or(0);
        self.check_input(len, shape)?;
        let shapes = self.infer_shapes(shape)?;
        let bs = |i: usize| shapes.bufs[i];
        let mut out = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let ctx = || step.name.clone();
            let (kind, input, output, flops, key) = match &step.op {
                Op::ToNhwc => {
                    let s = bs(0);
                    (
                        LayerKind::Input,
                        s,
                        s,
                        0,
                        format!("input_{}x{}x{}", s.h, s.w, s.c),
                    )
                }
                Op::Conv {
                    conv,
                    act,
                    src,
                    dst,
                } => {
                    let (i, o) = (bs(*src), bs(*dst));
                    (
                        LayerKind::StemConv,
                        i,
                        o,
                        2 * conv.macs(i).layer(ctx)?,
                        format!(
                            "stem_conv_{}x{}_{}to{}_s2_{}",
                            i.h,
                            i.w,
                            i.c,
                            o.c,
                            act_name(*act)
                        ),
                    )
                }
                Op::Dw {
                    conv,
                    src,
                    dst,
                    sums,
                } => {
                    let (i, o) = (bs(*src), bs(*dst));
                    let k = conv.kernel_size();
                    (
                        LayerKind::DwConv,
                        i,
                        o,
                        2 * conv.geom(i).layer(ctx)?.macs(),
                        format!(
                            "{}_{}x{}x{}_s{}{}{}",
                            if k == 3 {
                                "dwconv".into()
                            } else {
                                format!("dwconv{k}x{k}")
                            },
                            i.h,
                            i.w,
                            i.c,
                            conv.stride(),
                            match conv.activation() {
                                Activation::Identity => String::new(),
                                a => format!("_{}", act_name(a)),
                            },
                            if *sums { "_sums" } else { "" }
                        ),
                    )
                }
                Op::Se { se, t } => {
                    let s = bs(*t);
                    (
                        LayerKind::Se,
                        s,
                        s,
                        (4 * s.n * se.channels() * se.reduced()) as u64,
                        format!("se_{}x{}x{}_r{}", s.h, s.w, s.c, se.reduced()),
                    )
                }
                Op::Pw {
                    pw,
                    act,
                    src,
                    dst,
                    residual,
                } => {
                    let (i, o) = (bs(*src), bs(*dst));
                    (
                        LayerKind::Pointwise,
                        i,
                        o,
                        (2 * i.n * i.h * i.w * pw.k() * pw.n()) as u64,
                        format!(
                            "pointwise_{}x{}_{}to{}_{}{}",
                            i.h,
                            i.w,
                            i.c,
                            o.c,
                            act_name(*act),
                            if residual.is_some() { "_res" } else { "" }
                        ),
                    )
                }
                Op::Pool { src, .. } => {
                    let i = bs(*src);
                    (
                        LayerKind::Pool,
                        i,
                        Shape::new(i.n, 1, 1, i.c),
                        i.len() as u64,
                        format!("pool_{}x{}x{}", i.h, i.w, i.c),
                    )
                }
                Op::PooledPw { pw, act, .. } => (
                    LayerKind::Pointwise,
                    Shape::new(n, 1, 1, pw.k()),
                    Shape::new(n, 1, 1, pw.n()),
                    (2 * n * pw.k() * pw.n()) as u64,
                    format!("pointwise_1x1_{}to{}_{}", pw.k(), pw.n(), act_name(*act)),
                ),
                Op::Head { linear: l, .. } => (
                    LayerKind::Linear,
                    Shape::new(n, 1, 1, l.inputs()),
                    Shape::new(n, 1, 1, l.outputs()),
                    (2 * n * l.inputs() * l.outputs()) as u64,
                    format!("linear_{}to{}", l.inputs(), l.outputs()),
                ),
            };
            out.push(LayerInfo {
                name: step.name.clone(),
                kind,
                input,
                output,
                flops,
                key,
            });
        }
        Ok(out)
    }

    /// A workspace for NCHW input `shape` with a deterministic input, run through once, for timing
    /// single steps (see [`LayerBench`]).
    pub fn layer_bench(&self, shape: [usize; 4]) -> Result<LayerBench<'_>, Error> {
        let layers = self.layers(shape)?;
        let len = shape.iter().product::<usize>();
        let input: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let mut b = LayerBench {
            model: self,
            ws: Workspace::new(self, shape)?,
            out: vec![0.0; shape[0] * self.num_outputs()],
            input,
            layers,
        };
        b.forward()?;
        Ok(b)
    }

    /// Runs one step on `ws` with the threads of `k`.
    ///
    /// Which steps split across threads (the per-layer rule): a step is split when its one-thread
    /// time is well above the cost of one parallel call. The kernels' pool threads spin between
    /// calls (`pool.rs`), so a call costs about a microsecond (`pool_overhead` in the kernels
    /// bench), and each thread takes the same contiguous share of every step, so splitting also
    /// keeps each core on the rows it wrote in the step before. Measured on M1.0 at 224x224 (Zen 3,
    /// AVX2, `repvit bench --layers-at 1,2`; results/amd-epyc-zen3-2026-11-30): every pointwise
    /// layer (30 us or more on one thread) gains 1.9-2.0x from a second thread, the stem
    /// convolutions 1.7-2.0x, the input transpose (0.1 ms) 1.6x, the channel scale of squeeze-excite
    /// 1.2-1.6x (split above 2^14 elements in `scale_channels_in_place`); these split. So do the
    /// squeeze-excite gate's matrix-vector products above 64 KiB of weights (`se.rs`; MobileNetV3-L
    /// at two threads 4.0 -> 3.8 ms). The global pool (3 us) runs on the calling thread.
    ///
    /// Depthwise steps always run in row bands chosen from the shape ([`DwBands`], about
    /// [`DW_BAND_MACS`] each), so the squeeze-excite sums come out the same whatever runs them;
    /// the bands are shared among the threads when the step has at least [`DW_PARALLEL_MACS`]
    /// multiply-adds. The depthwise steps run at about 40 multiply-adds per ns on one thread
    /// (stride 2 at about 10), so 100k multiply-adds are 2.5 us or more. With rayon's pool (a wake-up
    /// per call, blocks to whichever thread came first) the threshold was 300k and the unsplit steps
    /// ran slower at two threads than at one, reading half of their input from the other core's
    /// cache; with the spinning pool and contiguous shares, 28x28x112 stride 2 and 7x7x448 (about
    /// 200k) gain 1.2-1.6x split.
    ///
    /// Under [`BatchSplit::Images`] every step of a group runs on that group's thread alone.
    #[inline]
    fn exec(
        &self,
        k: &Kernels,
        step: &Step,
        ws: &mut Workspace,
        input: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let ctx = || step.name.clone();
        let disjoint = |e| Error::Config {
            reason: format!("{}: overlapping buffers ({e})", step.name),
        };
        match &step.op {
            Op::ToNhwc => {
                let [n, c, h, w] = ws.input_shape;
                // NCHW -> NHWC (a copy; no arithmetic), in one contiguous run of output pixels per
                // thread (the rows the same thread's share of the stem then reads). About 0.1 ms on
                // one core at 224x224, so it splits whenever there are threads.
                let dst = ws.bufs[ws.slot[Graph::INPUT]].as_mut_slice();
                let (hw, c1) = (h * w, c.max(1));
                if input.len() < n * c * hw || dst.len() < n * c * hw {
                    return Err(Error::Config {
                        reason: format!(
                            "{}: input of {} values for {n}x{c}x{h}x{w}",
                            step.name,
                            input.len()
                        ),
                    });
                }
                // Per run of pixels inside one image, channel by channel: each input plane is
                // read sequentially (pixel by pixel, the 1-thread time was 1.5x longer).
                k.for_each_pixel_run(&mut dst[..n * c * hw], c1, hw, k.threads(), |b, p0, run| {
                    let px = run.len() / c1;
                    if c == 3 {
                        // RGB, the usual input: the three planes interleaved pixel by pixel in one
                        // loop of fixed stride, which the compiler turns into vector shuffles.
                        let plane = |ch: usize| &input[(b * 3 + ch) * hw + p0..][..px];
                        let (r, g, bl) = (plane(0), plane(1), plane(2));
                        for (d, ((&r, &g), &bl)) in
                            run.chunks_exact_mut(3).zip(r.iter().zip(g).zip(bl))
                        {
                            d.copy_from_slice(&[r, g, bl]);
                        }
                        return;
                    }
                    for ch in 0..c {
                        let plane = &input[(b * c + ch) * hw + p0..][..px];
                        for (d, &v) in run[ch..].iter_mut().step_by(c1).zip(plane) {
                            *d = v;
                        }
                    }
                });
                Ok(())
            }
            Op::Conv { conv, src, dst, .. } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                conv.run(k, x, y, &mut ws.conv_scratch).layer(ctx)
            }
            Op::Dw {
                conv,
                src,
                dst,
                sums,
            } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                let g = conv.geom(x.shape()).layer(ctx)?;
                let bands = DwBands::of(&g);
                let parallel =
                    k.threads() > 1 && g.n * bands.per_image > 1 && g.macs() >= DW_PARALLEL_MACS;
                if !*sums && !parallel {
                    // Without sums the bits do not depend on the bands: one call.
                    return conv.run(k, x, y, None).layer(ctx);
                }
                if y.shape() != g.output_shape() {
                    return Err(Error::Config {
                        reason: format!(
                            "{}: depthwise output buffer {} for output {}",
                            step.name,
                            y.shape(),
                            g.output_shape()
                        ),
                    });
                }
                let sums = if *sums {
                    let nc = g.n * g.c;
                    // With one band per image the band writes `sums` itself (no partials).
                    let partials = if bands.per_image > 1 {
                        g.n * bands.per_image * g.c
                    } else {
                        0
                    };
                    let short = || Error::Config {
                        reason: format!("{}: workspace too small for the channel sums", step.name),
                    };
                    Some((
                        ws.sums.get_mut(..nc).ok_or_else(short)?,
                        ws.dw_partials.get_mut(..partials).ok_or_else(short)?,
                    ))
                } else {
                    None
                };
                let (x, y) = (x.as_slice(), y.as_mut_slice());
                run_dw_bands(k, parallel, conv, &g, bands, x, y, sums).layer(ctx)
            }
            Op::Se { se, t } => {
                let t = &mut ws.bufs[ws.slot[*t]];
                let s = t.shape();
                let nc = s.n * s.c;
                let scale = &mut ws.scale[..nc];
                se.scale_from_sums(k, &ws.sums[..nc], s.h * s.w, scale, &mut ws.se_scratch)
                    .layer(ctx)?;
                scale_channels_in_place(k, t, scale).layer(ctx)
            }
            Op::Pw {
                pw,
                act,
                src,
                dst,
                residual: Some(r),
            } => {
                let [x, y, r] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst], ws.slot[*r]])
                    .map_err(disjoint)?;
                pw.run(k, x, y, *act, Some(r)).layer(ctx)
            }
            Op::Pw {
                pw,
                act,
                src,
                dst,
                residual: None,
            } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                pw.run(k, x, y, *act, None).layer(ctx)
            }
            Op::Pool { src, to_out } => {
                let dst = if *to_out { out } else { &mut ws.pooled };
                global_avg_pool(k, &ws.bufs[ws.slot[*src]], dst).layer(ctx)
            }
            Op::PooledPw { pw, act, to_out } => {
                let n = ws.input_shape[0];
                let dst = if *to_out { out } else { &mut ws.head };
                pw.run_slices(k, n, &ws.pooled, dst, *act, None).layer(ctx)
            }
            Op::Head { linear, src } => {
                let x = match src {
                    Vector::Pooled => &ws.pooled,
                    Vector::Head => &ws.head,
                };
                linear.run(k, x, out).layer(ctx)
            }
        }
    }

    /// Every step in order; with `times`, each step's wall time.
    fn run(
        &self,
        k: &Kernels,
        ws: &mut Workspace,
        input: &[f32],
        out: &mut [f32],
        times: Option<&mut [Duration]>,
    ) -> Result<(), Error> {
        match times {
            None => {
                for step in &self.steps {
                    self.exec(k, step, ws, input, out)?;
                }
            }
            Some(times) => {
                for (step, t) in self.steps.iter().zip(times.iter_mut()) {
                    let t0 = Instant::now();
                    self.exec(k, step, ws, input, out)?;
                    *t = t0.elapsed();
                }
            }
        }
        Ok(())
    }
}

/// Target multiply-adds of one band of a depthwise step (about 1.5 us on one Zen 3/4 core with
/// AVX2 or AVX-512): small enough that a 14x14 or 7x7 layer still has several bands to share, large
/// enough that the per-band cost (one kernel call, an atomic counter) stays well below the band's
/// work.
const DW_BAND_MACS: usize = 1 << 16;

/// Depthwise steps of fewer multiply-adds run on the calling thread even when more threads are
/// allowed (see the rule at `Network::exec`); steps of at least this many (a [`LayerInfo`]'s
/// `flops` is twice the multiply-adds) share their row bands among the threads.
pub const DW_PARALLEL_MACS: u64 = 100_000;

/// How the output rows of a depthwise step are cut into bands: every image's `oh` rows into
/// `per_image` bands of `rows` rows (the last may be shorter). Chosen from the shape alone (never
/// from the thread count or the batch), so the per-band partial sums, and their sum in band order,
/// are the same bits for any thread count and any batch split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DwBands {
    /// Output rows per band.
    rows: usize,
    /// Bands per image, `ceil(oh / rows)`.
    per_image: usize,
}

impl DwBands {
    /// About [`DW_BAND_MACS`] per band, whole rows, at least one row.
    fn of(g: &DwConvGeom) -> DwBands {
        let oh = g.oh();
        let row_macs = (g.ow() * g.c * g.k * g.k).max(1);
        let rows = (DW_BAND_MACS / row_macs).clamp(1, oh.max(1));
        DwBands {
            rows,
            per_image: oh.div_ceil(rows),
        }
    }
}

/// Runs depthwise geometry `g` (output `y`, the whole `[n, oh, ow, c]`) band by band as `bands`
/// says, on the calling thread, or with `parallel` the bands shared by the threads of `k`. With `sums = Some((sums, partials))`, each band
/// writes its partial channel sums into its own `c` floats of `partials` (`[n][band][c]`), and
/// `sums` (`[n, c]`) receives, per image, the partials added in band order; with one band per
/// image the band writes `sums` directly. Either way the bits do not depend on `k`'s threads.
#[allow(clippy::too_many_arguments)]
fn run_dw_bands(
    k: &Kernels,
    parallel: bool,
    conv: &DwConv,
    g: &DwConvGeom,
    bands: DwBands,
    x: &[f32],
    y: &mut [f32],
    sums: Option<(&mut [f32], &mut [f32])>,
) -> Result<(), mobile_cnn_kernels::Error> {
    let kernel = registry::find(KernelOp::DwConv { k: g.k }, k.isa())?.dwconv()?;
    let (oh, c) = (g.oh(), g.c);
    let count = g.n * bands.per_image;
    let in_img = g.h * g.w * c;
    let out_row = g.ow() * c;
    let one = DwConvGeom { n: 1, ..*g };
    // The sums of band `i` go to the `c` floats at `i * c` of `band_sums`; `reduce` is where the
    // per-image totals go when there is more than one band per image.
    let (mut band_sums, mut reduce) = match sums {
        None => (None, None),
        Some((s, _)) if bands.per_image == 1 => (Some(s), None),
        Some((s, p)) => (Some(p), Some(s)),
    };
    assert!(y.len() == g.n * oh * out_row && x.len() == g.n * in_img);
    assert!(band_sums.as_ref().is_none_or(|s| s.len() >= count * c));
    assert!(reduce.as_ref().is_none_or(|s| s.len() == g.n * c));
    let out = SendPtr(y.as_mut_ptr());
    let bs = band_sums.as_mut().map(|s| SendPtr(s.as_mut_ptr()));
    let run_band = |band: usize| -> Result<(), mobile_cnn_kernels::Error> {
        assert!(band < count);
        let (img, oy0) = (band / bands.per_image, band % bands.per_image * bands.rows);
        let rows = bands.rows.min(oh - oy0);
        let xi = &x[img * in_img..(img + 1) * in_img];
        // SAFETY: `band < count` (asserted), so rows `oy0..oy0 + rows` of image `img` lie inside
        // `y` (`n * oh * out_row` floats, asserted), which is exclusively borrowed for the whole
        // function; `for_each_index` hands each band to one call and bands cover disjoint rows, so
        // no two threads reach the same output element.
        let o = unsafe {
            std::slice::from_raw_parts_mut(
                out.get().add((img * oh + oy0) * out_row),
                rows * out_row,
            )
        };
        // SAFETY: the band-sums buffer holds at least `count * c` floats (asserted) and is
        // exclusively borrowed for the whole function (not read until every band is done); band
        // `band` alone writes `band * c..(band + 1) * c`.
        let s = bs.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(band * c), c) });
        kernel.run_rows(&one, oy0..oy0 + rows, xi, conv.weights(), conv.bias(), o, s)
    };
    if !parallel || k.threads() <= 1 || count <= 1 {
        (0..count).try_for_each(run_band)?;
    } else {
        // Every length was checked, so a band cannot fail; should one, its error is kept and
        // returned after the call.
        let first_error = Mutex::new(None);
        k.for_each_index(count, |_, band| {
            if let Err(e) = run_band(band) {
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
    }
    // Fixed order: per image, band 0, then + band 1, + band 2, ... whatever thread ran which.
    if let (Some(total), Some(partials)) = (reduce.as_mut(), band_sums.as_ref()) {
        for (t, p) in total
            .chunks_exact_mut(c)
            .zip(partials.chunks_exact(bands.per_image * c))
        {
            t.copy_from_slice(&p[..c]);
            for band in p[c..].chunks_exact(c) {
                for (t, &v) in t.iter_mut().zip(band) {
                    *t += v;
                }
            }
        }
    }
    Ok(())
}

/// An NHWC activation as stage `stage`'s NCHW [`FeatureMap`] (output stride `reduction`).
fn to_nchw(stage: usize, reduction: usize, t: &Tensor) -> FeatureMap {
    let Shape { n, h, w, c } = t.shape();
    let src = t.as_slice();
    let mut data = vec![0.0; n * c * h * w];
    for b in 0..n {
        for p in 0..h * w {
            let px = &src[(b * h * w + p) * c..(b * h * w + p + 1) * c];
            for (ch, &v) in px.iter().enumerate() {
                data[(b * c + ch) * h * w + p] = v;
            }
        }
    }
    FeatureMap {
        stage,
        reduction,
        shape: [n, c, h, w],
        data,
    }
}

/// A prepared workspace for timing a model's steps one at a time, through the same code as
/// [`Network::forward`]. Buffers hold the activations of a real forward pass (deterministic input),
/// so every step sees realistic data; running a step again allocates nothing.
#[derive(Debug)]
pub struct LayerBench<'a> {
    model: &'a Network,
    ws: Workspace,
    input: Vec<f32>,
    out: Vec<f32>,
    layers: Vec<LayerInfo>,
}

impl LayerBench<'_> {
    /// The steps, in execution order.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Runs step `i` alone on the workspace.
    pub fn run_layer(&mut self, i: usize) -> Result<(), Error> {
        let step = self.model.steps.get(i).ok_or_else(|| Error::Input {
            what: "layer index".into(),
            expected: format!("an index below {}", self.model.steps.len()),
            found: i.to_string(),
        })?;
        self.model.exec(
            &self.model.kernels,
            step,
            &mut self.ws,
            &self.input,
            &mut self.out,
        )
    }

    /// A whole forward pass on the workspace.
    pub fn forward(&mut self) -> Result<(), Error> {
        self.model.run(
            &self.model.kernels,
            &mut self.ws,
            &self.input,
            &mut self.out,
            None,
        )
    }

    /// A whole forward pass, writing each step's wall time to `times` (one entry per step).
    pub fn profile(&mut self, times: &mut [Duration]) -> Result<(), Error> {
        self.model.check_times(times.len())?;
        self.model.run(
            &self.model.kernels,
            &mut self.ws,
            &self.input,
            &mut self.out,
            Some(times),
        )
    }

    /// The logits of the last forward pass.
    pub fn logits(&self) -> &[f32] {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The banded depthwise path against the whole-tensor kernel, on every ISA this CPU has: the
    /// outputs bitwise equal to one whole run; the channel sums bitwise the same on the calling
    /// thread and shared among 2, 3 or 5 threads, for every image the same bits as that image run
    /// alone (so a batch split cannot change them), and equal to the whole run's sums up to f32
    /// rounding. Shapes give one band per image, many bands, a short last band, stride 2 and
    /// k = 3, 5, 7; NaN guards after the output and the partial sums catch writes past a band.
    #[test]
    fn banded_depthwise_sums_are_the_same_bits_for_any_thread_count() {
        for isa in mobile_cnn_kernels::Isa::available() {
            let one = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
            for (n, h, w, c, kk, stride) in [
                (1, 7, 7, 448, 3, 1),
                (2, 23, 19, 24, 3, 1),
                (3, 30, 29, 40, 5, 2),
                (2, 17, 33, 8, 7, 1),
                (1, 61, 9, 72, 5, 1),
                (2, 5, 6, 16, 3, 2),
            ] {
                let weights: Vec<f32> = (0..c * kk * kk)
                    .map(|i| ((i * 13 % 17) as f32 - 8.0) / 16.0)
                    .collect();
                let bias: Vec<f32> = (0..c).map(|i| (i % 5) as f32 / 10.0 - 0.2).collect();
                let conv = DwConv::new(c, kk, &weights, &bias, stride, Activation::Relu).unwrap();
                let x = Tensor::from_slice(
                    Shape::new(n, h, w, c),
                    &(0..n * h * w * c)
                        .map(|i| ((i * 31 % 37) as f32 - 18.0) / 9.0)
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                let g = conv.geom(x.shape()).unwrap();
                let bands = DwBands::of(&g);
                let ctx = format!("{isa} n{n} {h}x{w}x{c} k{kk} s{stride} {bands:?}");
                let mut whole = Tensor::zeros(g.output_shape()).unwrap();
                let mut whole_sums = vec![0.0; n * c];
                conv.run(&one, &x, &mut whole, Some(&mut whole_sums))
                    .unwrap();
                let run = |k: &Kernels, parallel: bool, x: &Tensor| {
                    let g = conv.geom(x.shape()).unwrap();
                    let len = g.output_shape().len();
                    let parts = g.n * bands.per_image * c;
                    // One guard float after the output and after the partial sums.
                    let mut y = vec![f32::NAN; len + 1];
                    let mut sums = vec![f32::NAN; g.n * c];
                    let mut partials = vec![f32::NAN; parts + 1];
                    run_dw_bands(
                        k,
                        parallel,
                        &conv,
                        &g,
                        bands,
                        x.as_slice(),
                        &mut y[..len],
                        Some((&mut sums, &mut partials[..parts])),
                    )
                    .unwrap();
                    assert!(y[len].is_nan() && partials[parts].is_nan(), "{ctx}: guard");
                    y.truncate(len);
                    (y, sums)
                };
                let (y1, s1) = run(&one, false, &x);
                assert_eq!(y1, whole.as_slice(), "{ctx}: banded output");
                for (a, b) in s1.iter().zip(&whole_sums) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (g.oh() * g.ow()) as f32 * b.abs().max(1.0),
                        "{ctx}: banded sum {a} vs whole {b}"
                    );
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for threads in [2, 3, 5] {
                    let k = one.clone().with_threads(threads).unwrap();
                    let (y, s) = run(&k, true, &x);
                    assert_eq!(bits(&y), bits(&y1), "{ctx}: {threads} threads, output");
                    assert_eq!(bits(&s), bits(&s1), "{ctx}: {threads} threads, sums");
                }
                let img = h * w * c;
                for b in 0..n {
                    let xb = Tensor::from_slice(
                        Shape::new(1, h, w, c),
                        &x.as_slice()[b * img..(b + 1) * img],
                    )
                    .unwrap();
                    let (_, s) = run(&one, false, &xb);
                    assert_eq!(bits(&s), bits(&s1[b * c..(b + 1) * c]), "{ctx}: image {b}");
                }
            }
        }
    }

    #[test]
    fn model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Network>();
    }

    #[test]
    fn a_model_without_feature_stages_says_so() {
        let k = Kernels::with_isa(mobile_cnn_kernels::Isa::Scalar).unwrap();
        let arch = Arch::named("mobilenetv3_small_100").unwrap();
        let mut m = Network::random_arch(arch, 1, &k).unwrap();
        assert_eq!(m.num_stages(), 5);
        m.stage_out.clear();
        m.stage_reduction.clear();
        let e = m
            .forward_features(&[0.0; 3 * 8 * 8], [1, 3, 8, 8], &[0])
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("marks no stage ends"), "{msg}");
        assert!(!msg.contains("below 0"), "{msg}");
    }
}
