//! The step list: what a network computes, as kernel calls (steps) over numbered buffers, each
//! buffer with its precision. A family appends steps to a [`Graph`]; shape inference and buffer
//! planning (`plan.rs`) and the runner (`network.rs`) read them. Activations are NHWC.

use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::se::SqueezeExcite;
use mobile_cnn_kernels::{Activation, Conv3x3, DwConv, PackedPointwise};

/// The element type of a tensor of the step list (a buffer, or a feature vector after pooling).
/// Every buffer carries one, every step says which it reads and writes, and shape inference
/// refuses a step whose buffers hold another: where two precisions meet, a conversion will be a
/// step of its own (and so show in the per-layer table). Only f32 exists for now; the kernels'
/// [`Precision`](mobile_cnn_kernels::Precision) is another axis (the arithmetic inside a
/// pointwise kernel, whose inputs and outputs stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorPrecision {
    /// 32-bit IEEE floats, 4 bytes per element.
    F32,
}

impl TensorPrecision {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            TensorPrecision::F32 => 4,
        }
    }

    /// Short name: `f32`.
    pub fn name(self) -> &'static str {
        match self {
            TensorPrecision::F32 => "f32",
        }
    }
}

impl std::fmt::Display for TensorPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// The precision of each buffer (its index is the buffer's number).
    pub(crate) bufs: Vec<TensorPrecision>,
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
            bufs: vec![TensorPrecision::F32],
            stage_out: Vec::new(),
            stage_reduction: Vec::new(),
        }
    }

    /// The input buffer.
    pub(crate) const INPUT: usize = 0;

    /// A new f32 buffer.
    pub(crate) fn buf(&mut self) -> usize {
        self.buf_of(TensorPrecision::F32)
    }

    /// A new buffer of `precision`.
    pub(crate) fn buf_of(&mut self, precision: TensorPrecision) -> usize {
        self.bufs.push(precision);
        self.bufs.len() - 1
    }

    /// Number of buffers.
    pub(crate) fn num_bufs(&self) -> usize {
        self.bufs.len()
    }

    /// The precision of buffer `b` (`None`: no such buffer).
    pub(crate) fn precision(&self, b: usize) -> Option<TensorPrecision> {
        self.bufs.get(b).copied()
    }

    /// Marks the last step pushed as the end of a stage whose output is `buf`, at output stride
    /// `reduction` (the feature maps of `Network::forward_features`).
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

impl Op {
    /// Buffers the step reads or writes.
    pub(crate) fn buffers(&self) -> impl Iterator<Item = usize> {
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

    /// The precision of every buffer and feature vector the step reads or writes. Every kernel
    /// step is f32 today; a step of another precision, or a conversion between two, names its
    /// own here.
    pub(crate) fn precision(&self) -> TensorPrecision {
        TensorPrecision::F32
    }
}
