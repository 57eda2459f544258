//! Every registered pointwise GEMM kernel on every ISA this CPU has, against the reference.
//!
//! Tolerance: `|got - ref| <= 1.2e-7 * K * S + 2e-6` where `S = |bias| + sum_k |x_k w_k|` (the
//! worst-case bound of an f32 sum of K products, `K * 2^-23 * S`) plus the activation's error; the
//! residual is added after the activation in f32. Half-precision kernels (bf16, f16) get the bound
//! of their rounding instead ([`conformance::pointwise_tolerance`]); each is also held bit for bit
//! to a model of its arithmetic in its own tests.

use conformance::{
    Guarded, PointwiseCase, kernels_under_test, pointwise_threads_give_identical_bits,
    pointwise_tolerance, rand_vec, shifted,
};
use mobile_cnn_kernels::registry::{KernelInfo, Op};
use mobile_cnn_kernels::{Activation, Kernels, PackedPointwise, PointwiseGeom, reference};
use proptest::prelude::*;

type Case = PointwiseCase;

fn case(p: usize, k: usize, n: usize) -> Case {
    PointwiseCase::new(p, k, n)
}

fn check(kernel: &'static KernelInfo, c: &Case) -> Result<(), String> {
    let g = PointwiseGeom {
        p: c.p,
        k: c.k,
        n: c.n,
        act: c.act,
    };
    let input = c.input();
    let w = c.weights();
    let bias = c.bias_vec();
    let res = c.residual_vec();

    let mut want = vec![0.0; c.p * c.n];
    reference::pointwise(&g, &input, &w, bias.as_deref(), res.as_deref(), &mut want)
        .map_err(|e| e.to_string())?;
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut mag = vec![0.0; c.p * c.n];
    let gm = PointwiseGeom {
        act: Activation::Identity,
        ..g
    };
    reference::pointwise(
        &gm,
        &abs(&input),
        &abs(&w),
        bias.as_deref().map(abs).as_deref(),
        None,
        &mut mag,
    )
    .unwrap();

    let packed = PackedPointwise::pack_for(kernel, c.k, c.n, &w, bias.as_deref())
        .map_err(|e| e.to_string())?;
    let ks = Kernels::with_isa(kernel.isa)
        .and_then(|k| k.with_threads(c.threads))
        .map_err(|e| e.to_string())?;
    let (inbuf, range) = shifted(&input, c.shift);
    let mut out = Guarded::new(c.p * c.n);
    packed
        .run_slices(&ks, c.p, &inbuf[range], out.body(), c.act, res.as_deref())
        .map_err(|e| e.to_string())?;
    out.assert_guards(kernel.name);
    for (i, ((&got, &exp), &m)) in out.get().iter().zip(&want).zip(&mag).enumerate() {
        let tol = pointwise_tolerance(kernel.dtype(), c.k, m);
        // Written so that a NaN result fails: NaN compares false.
        let within = (got - exp).abs() <= tol;
        if !within {
            return Err(format!(
                "{} {c:?}: out[row {}, col {}] = {got}, reference {exp}, tolerance {tol}",
                kernel.name,
                i / c.n,
                i % c.n
            ));
        }
    }
    Ok(())
}

fn run_all(cases: impl IntoIterator<Item = Case>) {
    let cases: Vec<Case> = cases.into_iter().collect();
    for k in kernels_under_test(Op::Pointwise) {
        for c in &cases {
            if let Err(e) = check(k, c) {
                panic!("{e}");
            }
        }
    }
}

/// Output channels below, equal to, above and multiples of every panel width in use (8, 16, 32, 64).
const EDGE_N: [usize; 14] = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64, 65];
/// Rows around every row tile in use (4 to 14).
const EDGE_P: [usize; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 29];

#[test]
fn output_channels_around_the_panel_width() {
    run_all(EDGE_N.map(|n| case(11, 13, n)));
}

#[test]
fn rows_around_the_row_tile() {
    run_all(EDGE_P.map(|p| case(p, 9, 40)));
}

#[test]
fn k_of_one_and_odd_and_large() {
    // K of 1; odd K; K past every cache block in use (the kernels may block K).
    run_all([1, 2, 3, 7, 57, 113, 449, 1281].map(|k| case(9, k, 24)));
}

#[test]
fn every_epilogue_combination() {
    run_all(Case::every_epilogue());
}

#[test]
fn unaligned_input() {
    run_all(Case::unaligned());
}

#[test]
fn one_two_and_three_threads_agree() {
    run_all([1, 2, 3].map(|threads| Case {
        threads,
        residual: true,
        act: Activation::Gelu,
        ..case(196, 112, 224)
    }));
}

#[test]
fn thread_count_gives_identical_bits() {
    pointwise_threads_give_identical_bits(&kernels_under_test(Op::Pointwise));
}

#[test]
fn row_scale_equals_scaling_the_input_channels() {
    let (p, k, n) = (13, 24, 40);
    for kernel in kernels_under_test(Op::Pointwise) {
        let ks = Kernels::with_isa(kernel.isa)
            .unwrap()
            .with_threads(1)
            .unwrap();
        let input = rand_vec(1, p * k, 1.0);
        let w = rand_vec(2, n * k, 1.0);
        let b = rand_vec(3, n, 1.0);
        let scale: Vec<f32> = rand_vec(4, k, 0.5).iter().map(|s| s + 0.5).collect();
        let packed = PackedPointwise::pack_for(kernel, k, n, &w, Some(&b)).unwrap();
        let mut scaled = packed.clone();
        packed.scale_rows_into(&scale, &mut scaled).unwrap();
        let mut got = vec![0.0; p * n];
        scaled
            .run_slices(&ks, p, &input, &mut got, Activation::Relu, None)
            .unwrap();
        let scaled_input: Vec<f32> = input
            .iter()
            .enumerate()
            .map(|(i, x)| x * scale[i % k])
            .collect();
        let mut want = vec![0.0; p * n];
        let g = PointwiseGeom {
            p,
            k,
            n,
            act: Activation::Relu,
        };
        reference::pointwise(&g, &scaled_input, &w, Some(&b), None, &mut want).unwrap();
        // Half precision: |x|, |w|, scale <= 1 and |b| <= 1, at most k + 1 summed in magnitude.
        let half = match kernel.dtype() {
            mobile_cnn_kernels::Precision::F32 => 0.0,
            d => pointwise_tolerance(d, k, (k + 1) as f32),
        };
        for (a, e) in got.iter().zip(&want) {
            assert!(
                (a - e).abs() <= (1e-5 * (1.0 + e.abs())).max(half),
                "{}: {a} vs {e}",
                kernel.name
            );
        }
        assert!(packed.scale_rows_into(&scale[1..], &mut scaled).is_err());
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for kernel in kernels_under_test(Op::Pointwise) {
        let ks = Kernels::with_isa(kernel.isa).unwrap();
        assert!(PackedPointwise::pack_for(kernel, 4, 3, &[0.0; 11], None).is_err());
        assert!(PackedPointwise::pack_for(kernel, 4, 3, &[0.0; 12], Some(&[0.0; 2])).is_err());
        assert!(PackedPointwise::pack_for(kernel, 0, 3, &[], None).is_err());
        let packed = PackedPointwise::pack_for(kernel, 4, 3, &[0.0; 12], None).unwrap();
        let mut out = vec![0.0; 6];
        assert!(
            packed
                .run_slices(&ks, 2, &[0.0; 7], &mut out, Activation::Identity, None)
                .is_err()
        );
        assert!(
            packed
                .run_slices(&ks, 2, &[0.0; 8], &mut out[1..], Activation::Identity, None)
                .is_err()
        );
        assert!(
            packed
                .run_slices(
                    &ks,
                    2,
                    &[0.0; 8],
                    &mut out,
                    Activation::Identity,
                    Some(&[0.0; 5])
                )
                .is_err()
        );
        assert!(
            packed
                .run_slices(&ks, 0, &[], &mut [], Activation::Identity, None)
                .is_err()
        );
        assert!(
            packed
                .run_slices(&ks, 2, &[0.0; 8], &mut out, Activation::Identity, None)
                .is_ok()
        );
        if kernel.isa != mobile_cnn_kernels::Isa::Scalar {
            let scalar = Kernels::with_isa(mobile_cnn_kernels::Isa::Scalar).unwrap();
            let e = packed
                .run_slices(&scalar, 2, &[0.0; 8], &mut out, Activation::Identity, None)
                .unwrap_err();
            assert!(e.to_string().contains("packed for"), "{e}");
        }
    }
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        1usize..=40,
        prop_oneof![1usize..=80, prop::sample::select(vec![112, 224, 300, 448])],
        prop_oneof![1usize..=80, prop::sample::select(vec![96, 112, 160, 224])],
        prop::sample::select(Activation::ALL.to_vec()),
        any::<(bool, bool)>(),
        any::<u64>(),
        0usize..16,
        1usize..=3,
    )
        .prop_map(
            |(p, k, n, act, (bias, residual), seed, shift, threads)| Case {
                act,
                bias,
                residual,
                seed,
                shift,
                threads,
                ..case(p, k, n)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_problems_match_the_reference(c in arb_case()) {
        for k in kernels_under_test(Op::Pointwise) {
            if let Err(e) = check(k, &c) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
