//! An inverted-residual block (MobileNetV2/V3, EfficientNet) built from the public kernel API
//! alone, run at two threads: what a kernel author reusing this crate for another network writes.
//!
//! ```text
//! x [n, h, w, c] ── pointwise expand (c -> e) + hard-swish
//!                ── depthwise 3x3 (e) + ReLU, with the per-channel sums of its output
//!                ── squeeze-excite gate from those sums (no extra pass), scale the channels
//!                ── pointwise project (e -> c) + x (residual)
//! ```
//!
//! Every op binds its kernel once, when it is made from the `Kernels` handle; the depthwise runs in
//! row bands shared by the threads, its squeeze sums reduced in band order, so the output is the
//! same bits at any thread count. Run: `cargo run -p mobile-cnn-kernels --example inverted_residual`.
//! `kernels/tests/inverted_residual.rs` checks the block against the f64 reference ops.

use std::time::Instant;

use mobile_cnn_kernels::elementwise::Elementwise;
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, DwConv, Kernels, PackedPointwise, Result, Shape, Tensor};

/// The block's weights in PyTorch layouts (BatchNorm already folded into weights and biases).
#[derive(Debug)]
pub struct BlockWeights {
    /// Block input and output channels.
    pub c: usize,
    /// Expanded channels.
    pub e: usize,
    /// Squeeze-excite reduced width.
    pub r: usize,
    /// Expand: `[e, c]`, bias `[e]`.
    pub expand_w: Vec<f32>,
    pub expand_b: Vec<f32>,
    /// Depthwise 3x3: `[e, 1, 3, 3]`, bias `[e]`.
    pub dw_w: Vec<f32>,
    pub dw_b: Vec<f32>,
    /// Squeeze-excite: `fc1` `[r, e]` + `[r]`, `fc2` `[e, r]` + `[e]`.
    pub fc1_w: Vec<f32>,
    pub fc1_b: Vec<f32>,
    pub fc2_w: Vec<f32>,
    pub fc2_b: Vec<f32>,
    /// Project: `[c, e]`, bias `[c]`.
    pub project_w: Vec<f32>,
    pub project_b: Vec<f32>,
}

/// Deterministic values in `[-scale, scale)`, so runs and tests agree.
pub use mobile_cnn_kernels::reference::rand_vec;

impl BlockWeights {
    /// Random weights of a block with `c` channels, expansion 4, SE reduction 4, scaled so the
    /// activations stay of order one.
    pub fn random(c: usize, seed: u64) -> BlockWeights {
        let (e, r) = (4 * c, c);
        let fan = |n: usize| 1.0 / (n as f32).sqrt();
        BlockWeights {
            c,
            e,
            r,
            expand_w: rand_vec(seed, e * c, fan(c)),
            expand_b: rand_vec(seed + 1, e, 0.1),
            dw_w: rand_vec(seed + 2, e * 9, fan(9)),
            dw_b: rand_vec(seed + 3, e, 0.1),
            fc1_w: rand_vec(seed + 4, r * e, fan(e)),
            fc1_b: rand_vec(seed + 5, r, 0.1),
            fc2_w: rand_vec(seed + 6, e * r, fan(r)),
            fc2_b: rand_vec(seed + 7, e, 0.1),
            project_w: rand_vec(seed + 8, c * e, fan(e)),
            project_b: rand_vec(seed + 9, c, 0.1),
        }
    }
}

/// The block, every op bound to the kernels of one `Kernels` handle.
#[derive(Debug)]
pub struct Block {
    expand: PackedPointwise,
    dw: DwConv,
    se: SqueezeExcite,
    ew: Elementwise,
    project: PackedPointwise,
}

/// Buffers of one run, made once per input shape and reused: running allocates nothing.
#[derive(Debug)]
pub struct Scratch {
    hidden: Tensor,
    dw_out: Tensor,
    sums: Vec<f32>,
    partials: Vec<f32>,
    scale: Vec<f32>,
    se: Vec<f32>,
}

impl Block {
    /// Packs the weights for the tier and precision of `k`.
    pub fn new(k: &Kernels, w: &BlockWeights) -> Result<Block> {
        let (c, e) = (w.c, w.e);
        Ok(Block {
            expand: PackedPointwise::pack_precision(
                k.isa(),
                k.precision(),
                c,
                e,
                &w.expand_w,
                Some(&w.expand_b),
            )?,
            dw: DwConv::create(k, e, 3, &w.dw_w, &w.dw_b, 1, Activation::Relu)?,
            se: SqueezeExcite::new(
                k.isa(),
                e,
                w.r,
                &w.fc1_w,
                &w.fc1_b,
                &w.fc2_w,
                &w.fc2_b,
                Activation::Relu,
                Gate::HardSigmoid,
            )?,
            ew: Elementwise::new(k)?,
            project: PackedPointwise::pack_precision(
                k.isa(),
                k.precision(),
                e,
                c,
                &w.project_w,
                Some(&w.project_b),
            )?,
        })
    }

    /// The buffers for an input of shape `x`.
    pub fn scratch(&self, x: Shape) -> Result<Scratch> {
        let hidden = Shape::new(x.n, x.h, x.w, self.expand.n());
        let nc = x.n * hidden.c;
        Ok(Scratch {
            hidden: Tensor::zeros(hidden)?,
            dw_out: Tensor::zeros(self.dw.output_shape(hidden)?)?,
            sums: vec![0.0; nc],
            partials: vec![0.0; self.dw.band_partials_len(hidden)?],
            scale: vec![0.0; nc],
            se: vec![0.0; self.se.gate_scratch_len()],
        })
    }

    /// Runs the block on `x` into `out` (same shape as `x`) with the threads of `k`.
    pub fn run(&self, k: &Kernels, x: &Tensor, out: &mut Tensor, s: &mut Scratch) -> Result<()> {
        self.expand
            .run(k, x, &mut s.hidden, Activation::HardSwish, None)?;
        self.dw.run_bands(
            k,
            &s.hidden,
            &mut s.dw_out,
            Some((&mut s.sums, &mut s.partials)),
        )?;
        let Shape { h, w, .. } = s.dw_out.shape();
        self.se
            .scale_from_sums(k, &s.sums, h * w, &mut s.scale, &mut s.se)?;
        self.ew
            .scale_channels_in_place(k, &mut s.dw_out, &s.scale)?;
        self.project
            .run(k, &s.dw_out, out, Activation::Identity, Some(x))
    }
}

#[allow(dead_code)] // the test includes this file for `Block` and does not call `main`
fn main() -> Result<()> {
    let k = Kernels::new()?.with_threads(2)?;
    let weights = BlockWeights::random(24, 1);
    let block = Block::new(&k, &weights)?;
    let shape = Shape::new(1, 56, 56, weights.c);
    let x = Tensor::from_slice(shape, &rand_vec(100, shape.len(), 1.0))?;
    let mut out = Tensor::zeros(shape)?;
    let mut scratch = block.scratch(shape)?;
    block.run(&k, &x, &mut out, &mut scratch)?;
    // Same bits on one thread.
    let one = Kernels::new()?.with_threads(1)?;
    let mut out1 = Tensor::zeros(shape)?;
    Block::new(&one, &weights)?.run(&one, &x, &mut out1, &mut scratch)?;
    let same = out.as_slice() == out1.as_slice();
    let iters = 50;
    let t0 = Instant::now();
    for _ in 0..iters {
        block.run(&k, &x, &mut out, &mut scratch)?;
    }
    let per_run = t0.elapsed() / iters;
    let mean = out.as_slice().iter().map(|&v| v as f64).sum::<f64>() / shape.len() as f64;
    println!(
        "inverted residual {} -> {} (expand x4, depthwise 3x3 + SE, project + residual)",
        shape,
        out.shape()
    );
    println!(
        "tier {}, precision {}, {} threads: {per_run:?} per run (mean of {iters})",
        k.isa(),
        k.precision(),
        k.threads()
    );
    println!("output mean {mean:.6}; same bits at 1 thread: {same}");
    Ok(())
}
