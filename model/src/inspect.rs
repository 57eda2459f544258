//! Looking inside a network: its steps as a per-layer table ([`Network::layers`], [`LayerInfo`],
//! [`distinct_layers`]) and timing them one at a time ([`Network::profile_into`],
//! [`LayerBench`]), through the same runner as [`Network::forward`]. These are added to
//! [`Network`] from here; the runner does not know about them.

use std::time::Duration;

use mobile_cnn_kernels::{Activation, Shape};

use crate::error::{Error, KernelContext};
use crate::graph::Op;
use crate::network::Network;
use crate::plan::{Workspace, infer_shapes, try_zeroed};

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

fn act_name(a: Activation) -> String {
    format!("{a:?}").to_lowercase()
}

/// A deterministic NCHW input of `shape` (values in `[-1, 1)`), as [`Network::layer_bench`] and
/// `repvit bench` run: [`Error::OutOfMemory`] (naming the bytes and the shape) when it would not
/// fit, never an abort.
pub fn bench_input(shape: [usize; 4]) -> Result<Vec<f32>, Error> {
    let len = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or(Error::OutOfMemory {
            what: "input batch".into(),
            bytes: None,
            input: shape,
        })?;
    let mut x = try_zeroed("input batch", len, shape)?;
    for (i, v) in x.iter_mut().enumerate() {
        *v = ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
    }
    Ok(x)
}

impl Network {
    /// Number of steps (kernel calls) of a forward pass.
    pub fn num_layers(&self) -> usize {
        self.graph.steps.len()
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
        let shapes = infer_shapes(&self.graph, self.num_classes(), shape)?;
        let bs = |i: usize| shapes.bufs[i];
        let mut out = Vec::with_capacity(self.graph.steps.len());
        for step in &self.graph.steps {
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
        let input = bench_input(shape)?;
        let outputs = shape[0].saturating_mul(self.num_outputs());
        let mut b = LayerBench {
            model: self,
            ws: Workspace::new(&self.graph, self.num_classes(), shape)?,
            out: try_zeroed("logits", outputs, shape)?,
            input,
            layers,
        };
        b.forward()?;
        Ok(b)
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

    pub(crate) fn check_times(&self, len: usize) -> Result<(), Error> {
        if len != self.graph.steps.len() {
            return Err(Error::Input {
                what: "per-layer times buffer".into(),
                expected: format!("{} entries (one per layer step)", self.graph.steps.len()),
                found: format!("{len} entries"),
            });
        }
        Ok(())
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
        let step = self.model.graph.steps.get(i).ok_or_else(|| Error::Input {
            what: "layer index".into(),
            expected: format!("an index below {}", self.model.graph.steps.len()),
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
