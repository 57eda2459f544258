//! Memory planning for one input shape: shape inference over the step list, buffer slots
//! (buffers whose lifetimes do not overlap share one tensor), and the [`Workspace`] that holds
//! them. Every allocation here is fallible: a workspace that would not fit is an
//! [`Error::OutOfMemory`] naming the bytes and the input shape, never an abort.

use mobile_cnn_kernels::{Shape, Tensor};

use crate::error::{Error, KernelContext};
use crate::graph::{Graph, Op, Step, Vector};
use mobile_cnn_kernels::dwconv::DwBands;

/// Shapes of every buffer and feature vector for one input shape, found by walking the steps.
#[derive(Debug, Clone)]
pub(crate) struct Shapes {
    pub(crate) bufs: Vec<Shape>,
    /// Channels of the pooled vector, of the head vector, and the widest squeeze-excite.
    pub(crate) pooled: usize,
    pub(crate) head: usize,
    pub(crate) se: usize,
    /// Floats of the per-band partial sums of the widest banded depthwise step with sums
    /// (`n * bands per image * c`, see [`DwBands`]).
    pub(crate) dw_partials: usize,
}

/// Every activation buffer of one forward pass for one input shape. Buffers whose lifetimes do
/// not overlap and whose shapes are equal share one tensor (`slot`).
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) input_shape: [usize; 4],
    /// Buffer index to tensor index.
    pub(crate) slot: Vec<usize>,
    pub(crate) bufs: Vec<Tensor>,
    pub(crate) pooled: Vec<f32>,
    pub(crate) head: Vec<f32>,
    pub(crate) sums: Vec<f32>,
    /// Per-band partial channel sums of a banded depthwise step, `[n][band][c]`, reduced in band
    /// order into `sums`.
    pub(crate) dw_partials: Vec<f32>,
    pub(crate) scale: Vec<f32>,
    pub(crate) se_scratch: Vec<f32>,
    pub(crate) conv_scratch: Vec<f32>,
}

/// Tensor slots for buffers: a buffer lives from the first step that touches it to the last, and
/// takes the first slot of its shape that is free by then.
pub(crate) fn assign_slots(steps: &[Step], shapes: &[Shape]) -> Vec<usize> {
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
    /// Buffers for NCHW input `[n, c, h, w]` of the steps of `g` (whose classifier has `classes`
    /// outputs). Every size is checked arithmetic, and the whole workspace is reserved at once
    /// before any buffer is made: one that would not fit is [`Error::OutOfMemory`].
    pub(crate) fn new(
        g: &Graph,
        classes: usize,
        input_shape: [usize; 4],
    ) -> Result<Workspace, Error> {
        let n = input_shape[0];
        let shapes = infer_shapes(g, classes, input_shape)?;
        let slot = assign_slots(&g.steps, &shapes.bufs);
        let mut slot_shapes = vec![Shape::new(0, 0, 0, 0); slot.iter().max().map_or(0, |m| m + 1)];
        for (b, &s) in slot.iter().enumerate() {
            slot_shapes[s] = shapes.bufs[b];
        }
        let per_image = |what: &str, c: usize| {
            n.checked_mul(c).ok_or_else(|| Error::OutOfMemory {
                what: what.to_string(),
                bytes: None,
                input: input_shape,
            })
        };
        let (pooled, head) = (
            per_image("pooled features", shapes.pooled)?,
            per_image("head features", shapes.head)?,
        );
        let se = per_image("squeeze-excite sums", shapes.se)?;
        // Floats of the whole workspace, in checked arithmetic; reserved (and released) at once, so
        // a workspace that cannot fit is refused before any of it is made.
        let floats = slot_shapes
            .iter()
            .map(Shape::checked_len)
            .chain([pooled, head, se, se, shapes.dw_partials].map(Some))
            .try_fold(0usize, |sum, len| sum.checked_add(len?));
        let floats = floats.ok_or(Error::OutOfMemory {
            what: "activation workspace".into(),
            bytes: None,
            input: input_shape,
        })?;
        fits("activation workspace", floats, input_shape)?;
        let bufs = slot_shapes
            .into_iter()
            .map(|s| {
                // `Tensor::zeros` cannot report a failed allocation: reserve its size first.
                let len = s.checked_len().unwrap_or(usize::MAX);
                fits(&format!("activation buffer {s}"), len, input_shape)?;
                Tensor::zeros(s).layer(|| format!("activation buffer {s}"))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Workspace {
            input_shape,
            slot,
            bufs,
            pooled: try_zeroed("pooled features", pooled, input_shape)?,
            head: try_zeroed("head features", head, input_shape)?,
            sums: try_zeroed("squeeze-excite sums", se, input_shape)?,
            dw_partials: try_zeroed("depthwise band sums", shapes.dw_partials, input_shape)?,
            scale: try_zeroed("squeeze-excite scales", se, input_shape)?,
            se_scratch: Vec::new(),
            conv_scratch: Vec::new(),
        })
    }
}

/// An empty vector with room for `len` floats, or [`Error::OutOfMemory`] naming `what`, the bytes
/// and the NCHW input shape `input` when the allocator refuses them (or they exceed `usize`).
fn try_with_capacity(what: &str, len: usize, input: [usize; 4]) -> Result<Vec<f32>, Error> {
    let oom = |bytes| Error::OutOfMemory {
        what: what.to_string(),
        bytes,
        input,
    };
    let bytes = len.checked_mul(size_of::<f32>()).ok_or_else(|| oom(None))?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| oom(Some(bytes)))?;
    Ok(v)
}

/// Whether `len` floats can be allocated now (reserved and released at once, untouched), as
/// [`try_with_capacity`]: for memory allocated where a failure cannot be reported.
fn fits(what: &str, len: usize, input: [usize; 4]) -> Result<(), Error> {
    try_with_capacity(what, len, input).map(drop)
}

/// `len` zeroed floats for NCHW input `input` (`what` names them in the error), or
/// [`Error::OutOfMemory`] with the bytes asked for when the allocator refuses them (or they exceed
/// `usize`): never an abort.
pub fn try_zeroed(what: &str, len: usize, input: [usize; 4]) -> Result<Vec<f32>, Error> {
    let mut v = try_with_capacity(what, len, input)?;
    v.resize(len, 0.0);
    Ok(v)
}

/// Every buffer's shape for NCHW input `shape`, by walking the steps: a buffer takes the shape
/// of the first step that writes it, and every later use must agree.
pub(crate) fn infer_shapes(g: &Graph, classes: usize, shape: [usize; 4]) -> Result<Shapes, Error> {
    let [n, c, h, w] = shape;
    let mut bufs: Vec<Option<Shape>> = vec![None; g.num_bufs()];
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
    for step in &g.steps {
        // Where steps meet: every buffer a step touches holds the precision the step reads and
        // writes (a conversion would be a step of its own).
        for b in step.op.buffers() {
            match g.precision(b) {
                Some(p) if p == step.op.precision() => {}
                Some(p) => {
                    return Err(bad(
                        step,
                        format!(
                            "buffer {b} holds {p}, the step works in {}",
                            step.op.precision()
                        ),
                    ));
                }
                None => return Err(bad(step, format!("no buffer {b}"))),
            }
        }
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
                    let geom = conv.geom(get(&bufs, *src)?).layer(|| step.name.clone())?;
                    let b = DwBands::of(&geom);
                    if b.per_image > 1 {
                        let partials = geom
                            .n
                            .checked_mul(b.per_image)
                            .and_then(|v| v.checked_mul(geom.c))
                            .ok_or_else(|| bad(step, "too many per-band sums".into()))?;
                        out.dw_partials = out.dw_partials.max(partials);
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
                if linear.inputs() != have || linear.outputs() != classes {
                    return Err(bad(
                        step,
                        format!(
                            "classifier {} -> {} on {have} features for {} classes",
                            linear.inputs(),
                            linear.outputs(),
                            classes
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
