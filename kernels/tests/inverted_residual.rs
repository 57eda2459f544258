//! The example's inverted-residual block (`examples/inverted_residual.rs`, included here) against
//! the f64 reference ops of `mobile_cnn_kernels::reference`, on every tier this CPU has, at one and
//! two threads.
//!
//! Tolerance: every output within `2e-4 + 2e-4 * |want|` of the reference. The reference rounds
//! each layer's output to f32 and computes inside a layer in f64; the kernels compute in f32 (fused
//! multiply-adds on the vector tiers, sums in another order). Four layers of at most 96 terms each,
//! with activations of order one, stay about two orders of magnitude below that bound.

#[path = "../examples/inverted_residual.rs"]
#[allow(dead_code)]
mod example;

use example::{Block, BlockWeights, rand_vec};
use mobile_cnn_kernels::dwconv::dw_weights_from_oihw;
use mobile_cnn_kernels::reference::{self, SeWeights};
use mobile_cnn_kernels::se::Gate;
use mobile_cnn_kernels::{Activation, DwConvGeom, Isa, Kernels, PointwiseGeom, Shape, Tensor};

/// The block by the reference ops: pointwise, depthwise with sums, SE scale from the means,
/// channel scale, pointwise with residual.
fn reference_block(w: &BlockWeights, x: &Tensor) -> Vec<f32> {
    let s = x.shape();
    let (c, e) = (w.c, w.e);
    let p = s.n * s.h * s.w;
    // Reference pointwise `[p, k] -> [p, n]` with bias and an optional residual.
    let pointwise = |x: &[f32], n: usize, w: &[f32], b: &[f32], act, residual| {
        let g = PointwiseGeom {
            p,
            k: x.len() / p,
            n,
            act,
        };
        let mut y = vec![0.0; p * n];
        reference::pointwise(&g, x, w, Some(b), residual, &mut y).unwrap();
        y
    };
    let hidden = pointwise(
        x.as_slice(),
        e,
        &w.expand_w,
        &w.expand_b,
        Activation::HardSwish,
        None,
    );
    let g = DwConvGeom {
        n: s.n,
        h: s.h,
        w: s.w,
        c: e,
        k: 3,
        stride: 1,
        act: Activation::Relu,
    };
    let mut dw = vec![0.0; g.output_shape().len()];
    let mut sums = vec![0.0; s.n * e];
    let taps = dw_weights_from_oihw(e, 3, &w.dw_w).unwrap();
    reference::dwconv(&g, &hidden, &taps, &w.dw_b, &mut dw, Some(&mut sums)).unwrap();
    let pixels = (g.oh() * g.ow()) as f64;
    let means: Vec<f64> = sums.iter().map(|&v| v as f64 / pixels).collect();
    let se = SeWeights {
        c: e,
        r: w.r,
        fc1_w: &w.fc1_w,
        fc1_b: &w.fc1_b,
        fc2_w: &w.fc2_w,
        fc2_b: &w.fc2_b,
        inner: Activation::Relu,
        gate: Gate::HardSigmoid,
    };
    let scale = reference::se_scale_from_means(&se, &means);
    let mut dw_t = Tensor::from_slice(g.output_shape(), &dw).unwrap();
    reference::scale_channels(&mut dw_t, &scale);
    pointwise(
        dw_t.as_slice(),
        c,
        &w.project_w,
        &w.project_b,
        Activation::Identity,
        Some(x.as_slice()),
    )
}

#[test]
fn inverted_residual_block_matches_the_reference_at_one_and_two_threads() {
    let weights = BlockWeights::random(24, 1);
    // 28 x 28: the depthwise has several bands per image and is shared at two threads; a batch
    // of two images checks that the squeeze sums stay per image.
    let shape = Shape::new(2, 28, 28, weights.c);
    let x = Tensor::from_slice(shape, &rand_vec(100, shape.len(), 1.0)).unwrap();
    let want = reference_block(&weights, &x);
    for isa in Isa::available() {
        let mut outs = Vec::new();
        for threads in [1, 2] {
            let k = Kernels::with_isa(isa)
                .unwrap()
                .with_threads(threads)
                .unwrap();
            let block = Block::new(&k, &weights).unwrap();
            let mut scratch = block.scratch(shape).unwrap();
            let mut out = Tensor::zeros(shape).unwrap();
            block.run(&k, &x, &mut out, &mut scratch).unwrap();
            for (i, (&got, &e)) in out.as_slice().iter().zip(&want).enumerate() {
                assert!(
                    (got - e).abs() <= 2e-4 + 2e-4 * e.abs(),
                    "{isa}, {threads} threads, output {i}: {got} vs reference {e}"
                );
            }
            outs.push(
                out.as_slice()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(outs[0], outs[1], "{isa}: 1 and 2 threads differ");
    }
}
