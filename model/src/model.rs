//! The runnable network: re-parameterised weights packed once for one ISA, and the order of kernel
//! calls. Activations are NHWC inside; buffers live in a [`Workspace`] per input shape, kept in a
//! small pool so repeated calls with the same batch allocate nothing.

use std::path::Path;
use std::sync::Mutex;

use mobile_cnn_kernels::elementwise::{global_avg_pool, scale_channels_in_place};
use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, Conv3x3, DwConv3x3, Kernels, PackedPointwise, Shape, Tensor};

use crate::checkpoint::StateDict;
use crate::config::Config;
use crate::error::{Error, KernelContext};
use crate::weights::{BlockWeights, Folded, FusedWeights, RandomParams};

/// Workspaces kept for reuse (distinct input shapes or concurrent callers).
const POOL_LIMIT: usize = 4;

#[derive(Debug)]
struct Block {
    name: String,
    dw: DwConv3x3,
    se: Option<SqueezeExcite>,
    pw1: PackedPointwise,
    pw2: PackedPointwise,
}

#[derive(Debug)]
struct Downsample {
    name: String,
    pre_block: Block,
    spatial: DwConv3x3,
    channel: PackedPointwise,
    ffn1: PackedPointwise,
    ffn2: PackedPointwise,
}

#[derive(Debug)]
struct Stage {
    downsample: Option<Downsample>,
    blocks: Vec<Block>,
}

/// A RepViT ready to run: folded weights packed for the ISA of its [`Kernels`] handle.
///
/// `Send + Sync`: one model can serve several threads; each call takes a workspace from the pool
/// (or allocates one when all are busy).
#[derive(Debug)]
pub struct RepVit {
    config: Config,
    kernels: Kernels,
    stem1: Conv3x3,
    stem2: Conv3x3,
    stages: Vec<Stage>,
    head: Linear,
    pool: Mutex<Vec<Workspace>>,
}

/// Buffers of one stage, at the stage's width and resolution.
#[derive(Debug)]
struct StageBufs {
    /// The running activation `x` (block input and output).
    x: Tensor,
    /// `t`: the token mixer's output, residual of the channel mixer.
    t: Tensor,
    /// The channel mixer's hidden activation.
    hidden: Tensor,
    /// Stages >= 1: the spatial downsample's output (previous width, this resolution).
    down: Option<Tensor>,
}

/// Every activation buffer of one forward pass for one input shape.
#[derive(Debug)]
struct Workspace {
    input_shape: [usize; 4],
    input: Tensor,
    stem: Tensor,
    stages: Vec<StageBufs>,
    pooled: Vec<f32>,
    sums: Vec<f32>,
    scale: Vec<f32>,
    se_scratch: Vec<f32>,
    conv_scratch: Vec<f32>,
}

fn half(x: usize) -> usize {
    (x - 1) / 2 + 1
}

fn zeros(s: Shape) -> Result<Tensor, Error> {
    Tensor::zeros(s).layer(|| format!("activation buffer {s}"))
}

impl Workspace {
    /// Buffers for NCHW input `[n, c, h, w]` through `cfg`.
    fn new(cfg: &Config, input_shape: [usize; 4]) -> Result<Workspace, Error> {
        let [n, c, h, w] = input_shape;
        let (h1, w1) = (half(h), half(w));
        let (mut hh, mut ww) = (half(h1), half(w1));
        let mut stages = Vec::with_capacity(cfg.embed_dim.len());
        let mut prev = cfg.embed_dim[0];
        for (i, &ci) in cfg.embed_dim.iter().enumerate() {
            let down = if i == 0 {
                None
            } else {
                (hh, ww) = (half(hh), half(ww));
                Some(zeros(Shape::new(n, hh, ww, prev))?)
            };
            stages.push(StageBufs {
                x: zeros(Shape::new(n, hh, ww, ci))?,
                t: zeros(Shape::new(n, hh, ww, ci))?,
                hidden: zeros(Shape::new(n, hh, ww, ci * cfg.mlp_ratio))?,
                down,
            });
            prev = ci;
        }
        let cmax = cfg.embed_dim.iter().copied().max().unwrap_or(1);
        Ok(Workspace {
            input_shape,
            input: zeros(Shape::new(n, h, w, c))?,
            stem: zeros(Shape::new(n, h1, w1, cfg.stem_width()))?,
            stages,
            pooled: vec![0.0; n * cfg.features()],
            sums: vec![0.0; n * cmax],
            scale: vec![0.0; n * cmax],
            se_scratch: Vec::new(),
            conv_scratch: Vec::new(),
        })
    }
}

/// Scratch shared by the blocks of one forward pass.
struct BlockScratch<'a> {
    sums: &'a mut [f32],
    scale: &'a mut [f32],
    se: &'a mut Vec<f32>,
}

fn pack(k: &Kernels, name: &str, f: &Folded) -> Result<PackedPointwise, Error> {
    PackedPointwise::pack(k.isa(), f.cin, f.cout, &f.weight, Some(&f.bias))
        .layer(|| name.to_string())
}

fn dw(name: &str, f: &Folded, stride: usize) -> Result<DwConv3x3, Error> {
    DwConv3x3::new(f.cout, &f.weight, &f.bias, stride, Activation::Identity)
        .layer(|| name.to_string())
}

fn block(k: &Kernels, name: String, b: &BlockWeights) -> Result<Block, Error> {
    let se = match &b.se {
        Some(s) => Some(
            SqueezeExcite::new(
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
            .layer(|| format!("{name}.se"))?,
        ),
        None => None,
    };
    Ok(Block {
        dw: dw(&format!("{name}.token_mixer"), &b.dw, 1)?,
        se,
        pw1: pack(k, &format!("{name}.channel_mixer.conv1"), &b.pw1)?,
        pw2: pack(k, &format!("{name}.channel_mixer.conv2"), &b.pw2)?,
        name,
    })
}

impl Block {
    /// `x <- t + pw2(gelu(pw1(t)))` with `t = se(dw(x))`; `t` and `hidden` are scratch of the right
    /// shapes.
    fn run(
        &self,
        k: &Kernels,
        x: &mut Tensor,
        t: &mut Tensor,
        hidden: &mut Tensor,
        s: &mut BlockScratch<'_>,
    ) -> Result<(), Error> {
        let nc = x.shape().n * x.shape().c;
        match &self.se {
            Some(se) => {
                let sums = &mut s.sums[..nc];
                self.dw
                    .run(k, x, t, Some(sums))
                    .layer(|| format!("{}.token_mixer", self.name))?;
                let pixels = t.shape().h * t.shape().w;
                let scale = &mut s.scale[..nc];
                se.scale_from_sums(k, sums, pixels, scale, s.se)
                    .layer(|| format!("{}.se", self.name))?;
                scale_channels_in_place(k, t, scale).layer(|| format!("{}.se", self.name))?;
            }
            None => self
                .dw
                .run(k, x, t, None)
                .layer(|| format!("{}.token_mixer", self.name))?,
        }
        self.pw1
            .run(k, t, hidden, Activation::Gelu, None)
            .layer(|| format!("{}.channel_mixer.conv1", self.name))?;
        self.pw2
            .run(k, hidden, x, Activation::Identity, Some(t))
            .layer(|| format!("{}.channel_mixer.conv2", self.name))
    }
}

impl RepVit {
    /// Packs re-parameterised weights for the ISA of `kernels` (whose thread count the model uses).
    pub fn from_fused(fw: &FusedWeights, kernels: &Kernels) -> Result<RepVit, Error> {
        let k = kernels;
        let cfg = fw.config.clone();
        let stem = |name: &str, f: &Folded, act| {
            Conv3x3::new(k.isa(), f.cin, f.cout, &f.weight, Some(&f.bias), 2, act)
                .layer(|| name.to_string())
        };
        let stem1 = stem("stem.conv1", &fw.stem1, Activation::Gelu)?;
        let stem2 = stem("stem.conv2", &fw.stem2, Activation::Identity)?;
        let mut stages = Vec::with_capacity(fw.stages.len());
        for (i, sw) in fw.stages.iter().enumerate() {
            let downsample = match &sw.downsample {
                Some(d) => {
                    let name = format!("stages.{i}.downsample");
                    Some(Downsample {
                        pre_block: block(k, format!("{name}.pre_block"), &d.pre_block)?,
                        spatial: dw(&format!("{name}.spatial_downsample"), &d.spatial, 2)?,
                        channel: pack(k, &format!("{name}.channel_downsample"), &d.channel)?,
                        ffn1: pack(k, &format!("{name}.ffn.conv1"), &d.ffn1)?,
                        ffn2: pack(k, &format!("{name}.ffn.conv2"), &d.ffn2)?,
                        name,
                    })
                }
                None => None,
            };
            let blocks = sw
                .blocks
                .iter()
                .enumerate()
                .map(|(j, b)| block(k, format!("stages.{i}.blocks.{j}"), b))
                .collect::<Result<Vec<_>, Error>>()?;
            stages.push(Stage { downsample, blocks });
        }
        let head = Linear::new(
            k.isa(),
            fw.head.cin,
            fw.head.cout,
            &fw.head.weight,
            Some(&fw.head.bias),
        )
        .layer(|| "head".into())?;
        Ok(RepVit {
            config: cfg,
            kernels: kernels.clone(),
            stem1,
            stem2,
            stages,
            head,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Loads timm's `model.safetensors`. `variant` (`m1_0` or `repvit_m1_0`) is checked against the
    /// checkpoint; `None` detects it from the shapes (custom configurations included).
    pub fn load(
        path: impl AsRef<Path>,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<RepVit, Error> {
        RepVit::from_state_dict(StateDict::read(path)?, variant, kernels)
    }

    /// Builds from an in-memory state dict (timm's names), as [`RepVit::load`].
    pub fn from_state_dict(
        sd: StateDict,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<RepVit, Error> {
        RepVit::from_fused(&FusedWeights::from_state_dict(sd, variant)?, kernels)
    }

    /// A model of `cfg` with deterministic random weights (for benchmarks and tests): the same model
    /// as loading [`crate::weights::random_state_dict`]`(cfg, seed)`.
    pub fn random(cfg: &Config, seed: u64, kernels: &Kernels) -> Result<RepVit, Error> {
        RepVit::from_fused(
            &FusedWeights::build(cfg, &mut RandomParams::new(seed))?,
            kernels,
        )
    }

    /// The same weights run with another thread count (the ISA must stay the same).
    pub fn with_threads(mut self, threads: usize) -> Result<RepVit, Error> {
        self.kernels = self
            .kernels
            .clone()
            .with_threads(threads)
            .layer(|| "threads".into())?;
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The kernels handle (ISA and threads) the model runs with.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Classifier outputs per image.
    pub fn num_classes(&self) -> usize {
        self.config.num_classes
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
        if c != self.config.in_chans || n == 0 || h == 0 || w == 0 {
            return bad(
                format!(
                    "NCHW shape [N >= 1, {}, H >= 1, W >= 1]",
                    self.config.in_chans
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

    /// Logits `[n, classes]` (row-major) of an NCHW f32 batch of shape `[n, c, h, w]`.
    pub fn forward(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<f32>, Error> {
        self.check_input(input.len(), shape)?;
        let mut out = vec![0.0; shape[0] * self.config.num_classes];
        self.forward_into(input, shape, &mut out)?;
        Ok(out)
    }

    /// As [`RepVit::forward`], into `out` (`n * classes` floats). Allocates nothing once a workspace
    /// for this input shape exists.
    pub fn forward_into(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(input.len(), shape)?;
        if out.len() != shape[0] * self.config.num_classes {
            return Err(Error::Input {
                what: "logits buffer".into(),
                expected: format!(
                    "{} elements ({} images x {} classes)",
                    shape[0] * self.config.num_classes,
                    shape[0],
                    self.config.num_classes
                ),
                found: format!("{} elements", out.len()),
            });
        }
        let mut ws = self.take_workspace(shape)?;
        let r = self.run(&mut ws, input, out);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_LIMIT {
            pool.remove(0);
        }
        pool.push(ws);
        r
    }

    fn take_workspace(&self, shape: [usize; 4]) -> Result<Workspace, Error> {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = pool.iter().position(|w| w.input_shape == shape) {
                return Ok(pool.swap_remove(i));
            }
        }
        Workspace::new(&self.config, shape)
    }

    /// The order of kernel calls.
    fn run(&self, ws: &mut Workspace, input: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let k = &self.kernels;
        let [n, c, h, w] = ws.input_shape;
        // NCHW -> NHWC (a copy; no arithmetic).
        let dst = ws.input.as_mut_slice();
        for b in 0..n {
            for ch in 0..c {
                let plane = &input[(b * c + ch) * h * w..(b * c + ch + 1) * h * w];
                for (p, &v) in plane.iter().enumerate() {
                    dst[(b * h * w + p) * c + ch] = v;
                }
            }
        }
        self.stem1
            .run(k, &ws.input, &mut ws.stem, &mut ws.conv_scratch)
            .layer(|| "stem.conv1".into())?;
        self.stem2
            .run(k, &ws.stem, &mut ws.stages[0].x, &mut ws.conv_scratch)
            .layer(|| "stem.conv2".into())?;
        let mut s = BlockScratch {
            sums: &mut ws.sums,
            scale: &mut ws.scale,
            se: &mut ws.se_scratch,
        };
        for (i, stage) in self.stages.iter().enumerate() {
            if let Some(d) = &stage.downsample {
                let (before, after) = ws.stages.split_at_mut(i);
                let p = &mut before[i - 1];
                let cur = &mut after[0];
                d.pre_block
                    .run(k, &mut p.x, &mut p.t, &mut p.hidden, &mut s)?;
                let down = cur.down.as_mut().ok_or_else(|| Error::Config {
                    reason: format!("stage {i}: no downsample buffer"),
                })?;
                d.spatial
                    .run(k, &p.x, down, None)
                    .layer(|| format!("{}.spatial_downsample", d.name))?;
                d.channel
                    .run(k, down, &mut cur.t, Activation::Identity, None)
                    .layer(|| format!("{}.channel_downsample", d.name))?;
                d.ffn1
                    .run(k, &cur.t, &mut cur.hidden, Activation::Gelu, None)
                    .layer(|| format!("{}.ffn.conv1", d.name))?;
                d.ffn2
                    .run(
                        k,
                        &cur.hidden,
                        &mut cur.x,
                        Activation::Identity,
                        Some(&cur.t),
                    )
                    .layer(|| format!("{}.ffn.conv2", d.name))?;
            }
            let b = &mut ws.stages[i];
            for blk in &stage.blocks {
                blk.run(k, &mut b.x, &mut b.t, &mut b.hidden, &mut s)?;
            }
        }
        let last = &ws.stages[ws.stages.len() - 1].x;
        global_avg_pool(k, last, &mut ws.pooled).layer(|| "global average pool".into())?;
        self.head.run(k, &ws.pooled, out).layer(|| "head".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RepVit>();
    }
}
