//! Element-wise ops, pooling, squeeze-excite and the linear layer on every ISA this CPU has (the
//! scalar tier included), or the one `KERNELS_ISA` names, against the f64 reference: named edge
//! cases, then proptest over random shapes and values.
//!
//! Tolerances (U = 2^-24, the f32 unit roundoff), each a first-order bound of the f32 computation
//! doubled for slack:
//! - add and channel scale: one rounding of an exact f64 result, so the f32 result must be *equal*
//!   to the reference rounded to f32;
//! - activation in place: `1e-6 + 2e-7 |y|` (GELU's approximation bound; the others round a few
//!   times);
//! - sums over P pixels: `(P - 1) U sum |x|` (P - 1 additions, in any order); means add two roundings
//!   (the reciprocal and the product);
//! - linear with K inputs: `(K + 1) U S` with `S = |bias| + sum |w x|` (one rounding per FMA);
//! - squeeze-excite: the mean's error carried through fc1 (`sum |w1| e_mean + c U S1`), the inner
//!   activation (its slope, plus GELU's approximation), fc2 (`sum |w2| e_hidden + r U S2`) and the
//!   gate (slope 1/4 for the sigmoid, 1/6 for the hard sigmoid, plus its exp's 4e-7 relative
//!   error), then the product with x.

use conformance::{
    Guarded, U, act_eval_error, lipschitz, rand_vec, shifted, tiers_under_test, within,
};
use mobile_cnn_kernels::elementwise::Elementwise;
use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::reference::{self, SeWeights};
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, Isa, Kernels, Shape, Tensor};
use proptest::prelude::*;

/// The element-wise ops bound to the tier of `k`.
fn ew(k: &Kernels) -> Elementwise {
    Elementwise::new(k).expect("an available tier binds its element-wise ops")
}

/// Lengths around every vector width, so both full vectors and tails run.
const LENS: [usize; 10] = [1, 3, 4, 5, 8, 15, 16, 17, 33, 100];

fn check_activation(k: &Kernels, act: Activation, len: usize, seed: u64) -> Result<(), String> {
    let x = rand_vec(seed, len, 8.0);
    let mut g = Guarded::new(len);
    g.body().copy_from_slice(&x);
    ew(k).activation_in_place(act, g.body());
    g.assert_guards("activation_in_place");
    for (i, (got, &xi)) in g.get().iter().zip(&x).enumerate() {
        let want = reference::activation(act, xi as f64);
        let within = (*got as f64 - want).abs() <= 1e-6 + 2e-7 * want.abs();
        if !within {
            return Err(format!(
                "{:?} {act:?} len {len}: [{i}] {act:?}({xi}) = {got}, exact {want}",
                k.isa()
            ));
        }
    }
    Ok(())
}

fn check_add(k: &Kernels, len: usize, seed: u64, shift: usize) -> Result<(), String> {
    let a = rand_vec(seed, len, 4.0);
    let b = rand_vec(seed ^ 1, len, 4.0);
    let (bbuf, range) = shifted(&b, shift);
    let mut g = Guarded::new(len);
    g.body().copy_from_slice(&a);
    ew(k)
        .add_in_place(g.body(), &bbuf[range])
        .map_err(|e| e.to_string())?;
    g.assert_guards("add_in_place");
    for i in 0..len {
        let want = (a[i] as f64 + b[i] as f64) as f32;
        if g.get()[i].to_bits() != want.to_bits() {
            return Err(format!(
                "{:?} add len {len}: [{i}] = {}, reference {want}",
                k.isa(),
                g.get()[i]
            ));
        }
    }
    if ew(k).add_in_place(g.body(), &b[..len - 1]).is_ok() {
        return Err("add of different lengths accepted".into());
    }
    Ok(())
}

/// Channel sums, global average pool and the in-place channel scale of one tensor.
fn check_reductions_and_scale(k: &Kernels, s: Shape, seed: u64) -> Result<(), String> {
    let (n, h, w, c) = (s.n, s.h, s.w, s.c);
    let data = rand_vec(seed, s.len(), 2.0);
    let t = Tensor::from_slice(s, &data).unwrap();
    let abs = Tensor::from_slice(s, &data.iter().map(|v| v.abs()).collect::<Vec<_>>()).unwrap();
    let want_sums = reference::channel_sums(&t);
    let want_means = reference::global_avg_pool(&t);
    let mag = reference::channel_sums(&abs);
    let px = (h * w) as f64;

    let mut sums = Guarded::new(n * c);
    ew(k)
        .channel_sums(&t, sums.body())
        .map_err(|e| e.to_string())?;
    sums.assert_guards("channel_sums");
    let mut means = Guarded::new(n * c);
    ew(k)
        .global_avg_pool(&t, means.body())
        .map_err(|e| e.to_string())?;
    means.assert_guards("global_avg_pool");
    for i in 0..n * c {
        let tol_sum = (px - 1.0) * U * mag[i] + U * want_sums[i].abs();
        let tol_mean = tol_sum / px + 3.0 * U * want_means[i].abs();
        let (gs, gm) = (sums.get()[i] as f64, means.get()[i] as f64);
        // Written so that NaN fails.
        if !within(gs, want_sums[i], 2.0 * tol_sum) {
            return Err(format!(
                "{:?} {s}: sums[{i}] = {gs}, reference {}, tolerance {tol_sum}",
                k.isa(),
                want_sums[i]
            ));
        }
        if !within(gm, want_means[i], 2.0 * tol_mean) {
            return Err(format!(
                "{:?} {s}: mean[{i}] = {gm}, reference {}, tolerance {tol_mean}",
                k.isa(),
                want_means[i]
            ));
        }
    }

    let scale = rand_vec(seed ^ 7, n * c, 2.0);
    let mut got = t.clone();
    ew(k)
        .scale_channels_in_place(k, &mut got, &scale)
        .map_err(|e| e.to_string())?;
    let mut want = t.clone();
    reference::scale_channels(
        &mut want,
        &scale.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    );
    for (i, (g, e)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        if g.to_bits() != e.to_bits() {
            return Err(format!(
                "{:?} {s}: scaled[{i}] = {g}, reference {e}",
                k.isa()
            ));
        }
    }
    let mut t2 = t.clone();
    if ew(k)
        .scale_channels_in_place(k, &mut t2, &scale[1..])
        .is_ok()
        || ew(k).channel_sums(&t, &mut vec![0.0; n * c + 1]).is_ok()
        || ew(k).global_avg_pool(&t, &mut vec![0.0; n * c - 1]).is_ok()
    {
        return Err("wrong lengths accepted".into());
    }
    Ok(())
}

/// Random squeeze-excite weights of one shape.
struct SeCase {
    c: usize,
    r: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    inner: Activation,
    gate: Gate,
}

impl SeCase {
    fn new(c: usize, r: usize, inner: Activation, gate: Gate, seed: u64) -> SeCase {
        // Weights of the size timm's init gives (about 1/sqrt(fan-in)), so the pre-gate values
        // spread over the gates' sensitive range.
        let a1 = 2.0 / (c as f32).sqrt();
        let a2 = 4.0 / (r as f32).sqrt();
        SeCase {
            c,
            r,
            w1: rand_vec(seed ^ 11, r * c, a1),
            b1: rand_vec(seed ^ 12, r, 0.5),
            w2: rand_vec(seed ^ 13, c * r, a2),
            b2: rand_vec(seed ^ 14, c, 1.0),
            inner,
            gate,
        }
    }

    fn weights(&self) -> SeWeights<'_> {
        SeWeights {
            c: self.c,
            r: self.r,
            fc1_w: &self.w1,
            fc1_b: &self.b1,
            fc2_w: &self.w2,
            fc2_b: &self.b2,
            inner: self.inner,
            gate: self.gate,
        }
    }

    fn build(&self, k: &Kernels) -> SqueezeExcite {
        SqueezeExcite::new(
            k.isa(),
            self.c,
            self.r,
            &self.w1,
            &self.b1,
            &self.w2,
            &self.b2,
            self.inner,
            self.gate,
        )
        .unwrap()
    }

    /// Error bound of each scale, given the means (f64) and the error of the means the kernel used.
    fn scale_tolerance(&self, means: &[f64], e_mean: &[f64]) -> Vec<f64> {
        let (c, r) = (self.c, self.r);
        let mut tol = Vec::with_capacity(means.len());
        for (m, em) in means.chunks_exact(c).zip(e_mean.chunks_exact(c)) {
            let mut h = vec![0.0; r];
            let mut eh = vec![0.0; r];
            for j in 0..r {
                let row = &self.w1[j * c..(j + 1) * c];
                let z: f64 =
                    self.b1[j] as f64 + row.iter().zip(m).map(|(&w, &x)| w as f64 * x).sum::<f64>();
                let s1: f64 = (self.b1[j] as f64).abs()
                    + row
                        .iter()
                        .zip(m)
                        .map(|(&w, &x)| (w as f64 * x).abs())
                        .sum::<f64>();
                let ez: f64 = row
                    .iter()
                    .zip(em)
                    .map(|(&w, &e)| (w as f64).abs() * e)
                    .sum::<f64>()
                    + c as f64 * U * s1;
                h[j] = reference::activation(self.inner, z);
                eh[j] = lipschitz(self.inner) * ez + act_eval_error(self.inner, h[j]);
            }
            for ch in 0..c {
                let row = &self.w2[ch * r..(ch + 1) * r];
                let s2: f64 = (self.b2[ch] as f64).abs()
                    + row
                        .iter()
                        .zip(&h)
                        .map(|(&w, &x)| (w as f64 * x).abs())
                        .sum::<f64>();
                let ez: f64 = row
                    .iter()
                    .zip(&eh)
                    .map(|(&w, &e)| (w as f64).abs() * e)
                    .sum::<f64>()
                    + r as f64 * U * s2;
                let (slope, own) = match self.gate {
                    Gate::Sigmoid => (0.25, 0.25 * 4e-7 + 4.0 * U),
                    Gate::HardSigmoid => (1.0 / 6.0, 4.0 * U),
                };
                tol.push(2.0 * (slope * ez + own));
            }
        }
        tol
    }
}

/// `scale_from_sums` on random sums (as the depthwise kernel would deliver them).
fn check_se_gate(
    k: &Kernels,
    case: &SeCase,
    n: usize,
    pixels: usize,
    seed: u64,
    shift: usize,
) -> Result<(), String> {
    let c = case.c;
    let sums = rand_vec(seed, n * c, 2.0 * pixels as f32);
    let means: Vec<f64> = sums.iter().map(|&s| s as f64 / pixels as f64).collect();
    let want = reference::se_scale_from_means(&case.weights(), &means);
    // The kernel's mean is sums * (1 / pixels) in f32: two roundings.
    let e_mean: Vec<f64> = means.iter().map(|m| 2.0 * U * m.abs()).collect();
    let tol = case.scale_tolerance(&means, &e_mean);
    let se = case.build(k);
    let (sbuf, range) = shifted(&sums, shift);
    let mut scale = Guarded::new(n * c);
    // Scratch of the wrong size and stale contents: it must be grown and overwritten as needed.
    let mut scratch = vec![f32::NAN; shift];
    for _ in 0..2 {
        se.scale_from_sums(k, &sbuf[range.clone()], pixels, scale.body(), &mut scratch)
            .map_err(|e| e.to_string())?;
    }
    scale.assert_guards("se scale");
    for (i, ((&g, &e), &t)) in scale.get().iter().zip(&want).zip(&tol).enumerate() {
        if !within(g as f64, e, t) {
            return Err(format!(
                "{:?} se gate c={c} r={} n={n} {:?} {:?}: scale[{i}] = {g}, reference {e}, tolerance {t}",
                k.isa(),
                case.r,
                case.inner,
                case.gate
            ));
        }
    }
    Ok(())
}

/// The standalone op, `apply`, on a random tensor.
fn check_se_apply(k: &Kernels, case: &SeCase, s: Shape, seed: u64) -> Result<(), String> {
    let c = case.c;
    let x = rand_vec(seed, s.len(), 2.0);
    let t = Tensor::from_slice(s, &x).unwrap();
    let abs = Tensor::from_slice(s, &x.iter().map(|v| v.abs()).collect::<Vec<_>>()).unwrap();
    let px = (s.h * s.w) as f64;
    let means = reference::global_avg_pool(&t);
    let e_mean: Vec<f64> = reference::channel_sums(&abs)
        .iter()
        .zip(&means)
        .map(|(&m, &mean)| (px - 1.0) * U * m / px + 3.0 * U * mean.abs())
        .collect();
    let scale = reference::se_scale_from_means(&case.weights(), &means);
    let scale_tol = case.scale_tolerance(&means, &e_mean);
    let want = reference::squeeze_excite(&case.weights(), &t);
    let se = case.build(k);
    let mut got = t.clone();
    let mut scratch = Vec::new();
    se.apply(k, &mut got, &mut scratch)
        .map_err(|e| e.to_string())?;
    // Again with the grown scratch (stale contents): same result.
    let mut again = t.clone();
    se.apply(k, &mut again, &mut scratch)
        .map_err(|e| e.to_string())?;
    if got.as_slice() != again.as_slice() {
        return Err(format!(
            "{:?} se apply: a reused scratch changed the result",
            k.isa()
        ));
    }
    for (i, ((&g, &e), &xi)) in got
        .as_slice()
        .iter()
        .zip(want.as_slice())
        .zip(&x)
        .enumerate()
    {
        let bc = (i / (s.h * s.w * c)) * c + i % c;
        let tol = (xi as f64).abs() * scale_tol[bc] + 2.0 * U * (xi as f64 * scale[bc]).abs();
        if !within(g as f64, e as f64, tol + 2.0 * U * (e as f64).abs()) {
            return Err(format!(
                "{:?} se apply {s} r={} {:?} {:?}: out[{i}] = {g}, reference {e}, tolerance {tol}",
                k.isa(),
                case.r,
                case.inner,
                case.gate
            ));
        }
    }
    Ok(())
}

fn check_linear(
    k: &Kernels,
    batch: usize,
    inputs: usize,
    outputs: usize,
    bias: bool,
    seed: u64,
    shift: usize,
) -> Result<(), String> {
    let x = rand_vec(seed, batch * inputs, 2.0);
    let w = rand_vec(seed ^ 1, outputs * inputs, 1.0 / (inputs as f32).sqrt());
    let b = bias.then(|| rand_vec(seed ^ 2, outputs, 0.5));
    let want = reference::linear(&x, inputs, &w, b.as_deref(), outputs);
    let absv = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let mag = reference::linear(
        &absv(&x),
        inputs,
        &absv(&w),
        b.as_deref().map(absv).as_deref(),
        outputs,
    );
    let fc = Linear::new(k.isa(), inputs, outputs, &w, b.as_deref()).map_err(|e| e.to_string())?;
    let (xbuf, range) = shifted(&x, shift);
    let mut y = Guarded::new(batch * outputs);
    fc.run(k, &xbuf[range], y.body())
        .map_err(|e| e.to_string())?;
    y.assert_guards("linear");
    for (i, ((&g, &e), &m)) in y.get().iter().zip(&want).zip(&mag).enumerate() {
        let tol = 2.0 * (inputs as f64 + 1.0) * U * m;
        if !within(g as f64, e, tol) {
            return Err(format!(
                "{:?} linear batch {batch} {inputs}->{outputs}: y[{}][{}] = {g}, reference {e}, tolerance {tol}",
                k.isa(),
                i / outputs,
                i % outputs
            ));
        }
    }
    if fc.run(k, &x[..x.len() - 1], y.body()).is_ok() && inputs > 1 {
        return Err("linear accepted a ragged input".into());
    }
    if fc.run(k, &x, &mut vec![0.0; batch * outputs + 1]).is_ok() {
        return Err("linear accepted a wrong output length".into());
    }
    Ok(())
}

fn ok(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn activation_in_place_edge_lengths() {
    for k in tiers_under_test() {
        for act in Activation::ALL {
            for len in LENS {
                ok(check_activation(&k, act, len, len as u64));
            }
        }
    }
}

#[test]
fn add_scale_and_reductions_edge_shapes() {
    for k in tiers_under_test() {
        for len in LENS {
            ok(check_add(&k, len, len as u64, len % 5));
        }
        for (n, h, w, c) in [
            (1, 1, 1, 1),
            (2, 3, 5, 7),
            (1, 7, 7, 17),
            (2, 4, 4, 48),
            (3, 1, 2, 33),
        ] {
            ok(check_reductions_and_scale(
                &k,
                Shape::new(n, h, w, c),
                (h * w + c) as u64,
            ));
        }
        // Large enough for the channel scale to split across threads (2^14 elements and up), with
        // per-thread runs of pixels that start and end inside an image (99 pixels per image).
        for threads in [1, 2, 3, 5] {
            let kt = k.clone().with_threads(threads).unwrap();
            for (n, c) in [(1, 200), (3, 64), (2, 169)] {
                ok(check_reductions_and_scale(
                    &kt,
                    Shape::new(n, 9, 11, c),
                    (threads * c) as u64,
                ));
            }
        }
    }
}

/// The memory-bound ops are written once over pulp's vectors and add in the scalar order, so every
/// tier gives the scalar tier's bits, whatever the channel count's remainder against the lanes
/// (8 on AVX2, 16 on AVX-512, 4 on NEON).
#[test]
fn reductions_give_the_scalar_bits_on_every_tier() {
    let scalar = Kernels::with_isa(Isa::Scalar).unwrap();
    for k in tiers_under_test() {
        for c in [1, 3, 4, 5, 8, 9, 15, 16, 17, 24, 40, 56, 72] {
            let s = Shape::new(2, 3, 5, c);
            let t = Tensor::from_slice(s, &rand_vec(c as u64, s.len(), 3.0)).unwrap();
            let run = |k: &Kernels| {
                let mut sums = vec![0.0; 2 * c];
                let mut means = vec![0.0; 2 * c];
                ew(k).channel_sums(&t, &mut sums).unwrap();
                ew(k).global_avg_pool(&t, &mut means).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&sums), bits(&means))
            };
            assert_eq!(run(&k), run(&scalar), "{:?}, {c} channels", k.isa());
        }
    }
}

#[test]
fn squeeze_excite_edge_shapes_gates_and_inner_activations() {
    for k in tiers_under_test() {
        for (n, h, w, c, r) in [
            (1, 7, 7, 48, 16),
            (2, 3, 5, 20, 8),
            (1, 14, 14, 112, 32),
            (1, 1, 1, 3, 1),
            (1, 7, 7, 448, 112),
            (2, 2, 2, 200, 129),
        ] {
            for inner in Activation::ALL {
                for gate in [Gate::Sigmoid, Gate::HardSigmoid] {
                    let case = SeCase::new(c, r, inner, gate, (c * r) as u64);
                    ok(check_se_apply(&k, &case, Shape::new(n, h, w, c), c as u64));
                    ok(check_se_gate(&k, &case, n, h * w, r as u64, 3));
                }
            }
        }
    }
}

/// The gate's matrix-vector products share their columns among the threads above 64 KiB of
/// weights (MobileNetV3-L's 960x240 pair, RepViT's 448x112): every thread count gives the same bits
/// (and the reference is checked at each, with two images).
#[test]
fn squeeze_excite_gate_is_the_same_bits_at_any_thread_count() {
    for k in tiers_under_test() {
        for (c, r) in [(960, 240), (448, 112), (200, 129), (56, 16)] {
            let case = SeCase::new(c, r, Activation::Relu, Gate::HardSigmoid, (c + r) as u64);
            let sums = rand_vec(c as u64, 2 * c, 98.0);
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3, 5] {
                let kt = k.clone().with_threads(threads).unwrap();
                ok(check_se_gate(&kt, &case, 2, 49, r as u64, 0));
                let se = case.build(&kt);
                let mut scale = vec![0.0; 2 * c];
                se.scale_from_sums(&kt, &sums, 49, &mut scale, &mut Vec::new())
                    .unwrap();
                let bits: Vec<u32> = scale.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert!(
                        *f == bits,
                        "{:?} c={c} r={r}: {threads} threads differ from 1",
                        k.isa()
                    ),
                }
            }
        }
    }
}

#[test]
fn squeeze_excite_bad_input_is_an_error() {
    for k in tiers_under_test() {
        let w = |n: usize| vec![0.0f32; n];
        let build = |c, r, w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32]| {
            SqueezeExcite::new(
                k.isa(),
                c,
                r,
                w1,
                b1,
                w2,
                b2,
                Activation::Relu,
                Gate::Sigmoid,
            )
        };
        for (bad, what) in [
            (build(8, 2, &w(15), &w(2), &w(16), &w(8)), "se fc1 weights"),
            (build(8, 2, &w(16), &w(3), &w(16), &w(8)), "se fc1 bias"),
            (build(8, 2, &w(16), &w(2), &w(17), &w(8)), "se fc2 weights"),
            (build(8, 2, &w(16), &w(2), &w(16), &w(7)), "se fc2 bias"),
            (build(0, 2, &[], &w(2), &[], &[]), "se widths"),
        ] {
            let e = bad.unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        let se = build(8, 2, &w(16), &w(2), &w(16), &w(8)).unwrap();
        let mut wrong = Tensor::zeros(Shape::new(1, 2, 2, 9)).unwrap();
        assert!(se.apply(&k, &mut wrong, &mut Vec::new()).is_err());
        let mut scale = vec![0.0; 8];
        let mut scratch = Vec::new();
        assert!(
            se.scale_from_sums(&k, &[0.0; 8], 0, &mut scale, &mut scratch)
                .is_err()
        );
        assert!(
            se.scale_from_sums(&k, &[0.0; 7], 4, &mut scale, &mut scratch)
                .is_err()
        );
        assert!(
            se.scale_from_sums(&k, &[], 4, &mut [], &mut scratch)
                .is_err()
        );
        assert!(
            se.scale_from_sums(&k, &[0.0; 16], 4, &mut scale, &mut scratch)
                .is_err()
        );
        // Weights built for one tier, run with another: an error, not a silent mismatch.
        for other in tiers_under_test() {
            let r = se.scale_from_sums(&other, &[0.0; 8], 4, &mut scale, &mut scratch);
            assert_eq!(r.is_ok(), other.isa() == k.isa());
        }
        assert!(
            se.scale_from_sums(&k, &[0.0; 8], 4, &mut scale, &mut scratch)
                .is_ok()
        );
        // Two zero layers and zero biases: every gate is sigmoid(0).
        assert!(scale.iter().all(|&s| s == 0.5), "{scale:?}");
    }
}

#[test]
fn linear_edge_shapes() {
    for k in tiers_under_test() {
        for (batch, i, o) in [
            (1, 448, 1000),
            (3, 17, 5),
            (2, 1, 1),
            (1, 1280, 1000),
            (5, 33, 65),
        ] {
            ok(check_linear(&k, batch, i, o, true, (i + o) as u64, batch));
        }
        ok(check_linear(&k, 2, 40, 31, false, 5, 0));
    }
}

fn arb_channels() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=40,
        prop::sample::select(vec![
            47, 48, 56, 63, 64, 65, 80, 112, 127, 128, 129, 160, 200
        ])
    ]
}

fn arb_gate() -> impl Strategy<Value = Gate> {
    prop::sample::select(vec![Gate::Sigmoid, Gate::HardSigmoid])
}

fn arb_act() -> impl Strategy<Value = Activation> {
    prop::sample::select(Activation::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn activation_and_add_random(len in 1usize..300, act in arb_act(), seed: u64, shift in 0usize..16) {
        for k in tiers_under_test() {
            let r = check_activation(&k, act, len, seed).and_then(|_| check_add(&k, len, seed, shift));
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }

    #[test]
    fn pool_sums_and_scale_random(
        n in 1usize..=3, h in 1usize..=12, w in 1usize..=12, c in arb_channels(), seed: u64,
    ) {
        for k in tiers_under_test() {
            let r = check_reductions_and_scale(&k, Shape::new(n, h, w, c), seed);
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }

    #[test]
    fn squeeze_excite_gate_random(
        n in 1usize..=3, c in arb_channels(), r in prop_oneof![1usize..=24, prop::sample::select(vec![32, 40, 56, 64, 65, 112, 129])],
        pixels in 1usize..=3136, inner in arb_act(), gate in arb_gate(), seed: u64, shift in 0usize..16,
    ) {
        let case = SeCase::new(c, r, inner, gate, seed);
        for k in tiers_under_test() {
            let res = check_se_gate(&k, &case, n, pixels, seed ^ 99, shift);
            prop_assert!(res.is_ok(), "{}", res.unwrap_err());
        }
    }

    #[test]
    fn squeeze_excite_apply_random(
        n in 1usize..=2, h in 1usize..=9, w in 1usize..=9, c in arb_channels(), r in 1usize..=40,
        inner in arb_act(), gate in arb_gate(), seed: u64,
    ) {
        let case = SeCase::new(c, r, inner, gate, seed);
        for k in tiers_under_test() {
            let res = check_se_apply(&k, &case, Shape::new(n, h, w, c), seed ^ 5);
            prop_assert!(res.is_ok(), "{}", res.unwrap_err());
        }
    }

    #[test]
    fn linear_random(
        batch in 1usize..=5,
        inputs in prop_oneof![1usize..=70, prop::sample::select(vec![127, 128, 129, 448, 640])],
        outputs in prop_oneof![1usize..=70, prop::sample::select(vec![127, 128, 129, 1000])],
        bias: bool, seed: u64, shift in 0usize..16,
    ) {
        for k in tiers_under_test() {
            let res = check_linear(&k, batch, inputs, outputs, bias, seed, shift);
            prop_assert!(res.is_ok(), "{}", res.unwrap_err());
        }
    }
}
