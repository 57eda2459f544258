//! Every registered bf16 pointwise kernel this CPU runs (the portable scalar model everywhere, the
//! AVX-512 BF16 kernel where the CPU has AVX512_BF16), against two references:
//!
//! 1. `reference::pointwise_bf16`, which rounds as the kernels do (inputs and weights to bf16 with
//!    round-to-nearest-even, f32 accumulation from the bias, per K-pair the odd product then the
//!    even one). The scalar kernel must equal it bit for bit. A SIMD kernel may differ only in the
//!    rounding of the accumulation: `|got - model| <= 2 * kp * U * S~` with `kp = ceil(K / 2)`,
//!    `U = 2^-24` and `S~ = |bias| + sum |x~ w~|` over the rounded operands (each of its 2 * kp
//!    accumulation steps may round differently by at most `U` times the running magnitude).
//!    Rounding the inputs differently (truncation instead of RNE) moves products by up to
//!    `2^-8 |x w|`, far outside this bound.
//! 2. The f64 oracle `reference::pointwise` on the unrounded operands, with the derived bound
//!    `|got - exact| <= L * ((2^-7 + 2^-16) * S + 1.01 * (K + 1) * U * S') + e_act + 4U|y|`:
//!    bf16 keeps 8 significant bits, so one RNE rounding moves a value by at most `2^-8` of it and
//!    `|x~ w~ - x w| <= (2 * 2^-8 + 2^-16) |x w|`; the f32 sum of K + 1 terms adds at most
//!    `(K + 1) U S'` (`S' = S (1 + 2^-7)`, the rounded magnitudes); the activation multiplies by
//!    its Lipschitz constant `L` and adds its own evaluation error, the residual one rounding.
//!
//! Every output is written into a NaN-filled buffer with NaN guards on both sides.

use conformance::{
    Guarded, PointwiseCase, U, act_eval_error, kernels_under_test_at, lipschitz,
    pointwise_threads_give_identical_bits, rand_vec, shifted, within,
};
use mobile_cnn_kernels::registry::{KernelInfo, Op};
use mobile_cnn_kernels::{
    Activation, Isa, Kernels, PackedPointwise, PointwiseGeom, Precision, reference,
};
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

    let mut model = vec![0.0; c.p * c.n];
    reference::pointwise_bf16(&g, &input, &w, bias.as_deref(), res.as_deref(), &mut model)
        .map_err(|e| e.to_string())?;
    let mut exact = vec![0.0; c.p * c.n];
    reference::pointwise(&g, &input, &w, bias.as_deref(), res.as_deref(), &mut exact)
        .map_err(|e| e.to_string())?;
    // S~ (rounded operands) and S (exact operands), without activation or residual.
    let abs = |v: &[f32], round: bool| {
        v.iter()
            .map(|&x| if round { reference::round_bf16(x) } else { x }.abs())
            .collect::<Vec<_>>()
    };
    let gm = PointwiseGeom {
        act: Activation::Identity,
        ..g
    };
    let mut mag_r = vec![0.0; c.p * c.n];
    let mut mag = vec![0.0; c.p * c.n];
    for (round, out) in [(true, &mut mag_r), (false, &mut mag)] {
        reference::pointwise(
            &gm,
            &abs(&input, round),
            &abs(&w, round),
            bias.as_deref().map(|b| abs(b, false)).as_deref(),
            None,
            out,
        )
        .map_err(|e| e.to_string())?;
    }

    let packed = PackedPointwise::pack_for(kernel, c.k, c.n, &w, bias.as_deref())
        .map_err(|e| e.to_string())?;
    if packed.precision() != Precision::Bf16 {
        return Err(format!("{} packed as {}", kernel.name, packed.precision()));
    }
    let ks = Kernels::with_isa(kernel.isa)
        .and_then(|k| k.with_threads(c.threads))
        .map_err(|e| e.to_string())?;
    let (inbuf, range) = shifted(&input, c.shift);
    let mut out = Guarded::new(c.p * c.n);
    packed
        .run_slices(&ks, c.p, &inbuf[range], out.body(), c.act, res.as_deref())
        .map_err(|e| e.to_string())?;
    out.assert_guards(kernel.name);

    let kp = c.k.div_ceil(2) as f64;
    let l = lipschitz(c.act);
    for (i, &got) in out.get().iter().enumerate() {
        let (m, e) = (model[i], exact[i] as f64);
        let where_ = || {
            format!(
                "{} {c:?}: out[row {}, col {}]",
                kernel.name,
                i / c.n,
                i % c.n
            )
        };
        let same = got.to_bits() == m.to_bits();
        if kernel.isa == Isa::Scalar {
            if !same {
                return Err(format!(
                    "{}: {got}, bf16 model {m} (must be bit-equal)",
                    where_()
                ));
            }
        } else {
            let tol = l * 2.0 * kp * U * mag_r[i] as f64 + act_eval_error(c.act, m as f64);
            // NaN compares false, so a NaN result fails.
            if !(same || ((got - m).abs() as f64) <= tol) {
                return Err(format!(
                    "{}: {got}, bf16 model {m}, tolerance {tol}",
                    where_()
                ));
            }
        }
        let s = mag[i] as f64;
        let bound = l
            * ((1.0 / 128.0 + 1.0 / 65_536.0) * s
                + 1.01 * (c.k as f64 + 1.0) * U * s * (1.0 + 1.0 / 128.0))
            + act_eval_error(c.act, e)
            + 4.0 * U * e.abs();
        if !within(got as f64, e, bound) {
            return Err(format!(
                "{}: {got}, f64 oracle {e}, derived bound {bound}",
                where_()
            ));
        }
    }
    Ok(())
}

fn run_all(cases: impl IntoIterator<Item = Case>) {
    let cases: Vec<Case> = cases.into_iter().collect();
    let kernels = kernels_under_test_at(Op::Pointwise, Precision::Bf16);
    // The portable model runs everywhere, so there is always at least one kernel to hold.
    assert!(
        kernels.iter().any(|k| k.isa == Isa::Scalar) || std::env::var("KERNELS_ISA").is_ok(),
        "the scalar bf16 kernel must be registered"
    );
    for k in kernels {
        for c in &cases {
            if let Err(e) = check(k, c) {
                panic!("{e}");
            }
        }
    }
}

/// Output channels below, equal to, above and multiples of the panel widths in use (8, 32).
const EDGE_N: [usize; 12] = [1, 3, 7, 8, 9, 16, 17, 31, 32, 33, 48, 65];
/// Rows around the row tiles in use (4 and 8, tails of 1 to 3 merged).
const EDGE_P: [usize; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 29];

#[test]
fn output_channels_around_the_panel_width() {
    run_all(EDGE_N.map(|n| case(11, 13, n)));
}

#[test]
fn rows_around_the_row_tile() {
    run_all(EDGE_P.map(|p| case(p, 10, 40)));
}

#[test]
fn k_odd_even_one_and_past_the_conversion_width() {
    // K of 1 and 2; odd K (the last pair padded with zero); K around the 32 floats converted at
    // once and the 16-pair row stride; large K.
    run_all([1, 2, 3, 15, 31, 32, 33, 63, 64, 65, 113, 449, 1281].map(|k| case(9, k, 24)));
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
fn repvit_shapes_with_k_of_112_and_more() {
    run_all(
        [(49, 448, 896), (196, 224, 112), (16, 112, 224)].map(|(p, k, n)| Case {
            act: Activation::Gelu,
            residual: true,
            ..case(p, k, n)
        }),
    );
}

#[test]
fn ties_round_to_even_not_down() {
    // Inputs and weights exactly halfway between two bf16 values (1 + 2^-8 + m * 2^-7), positive
    // and negative: round-to-nearest-even moves half of them up, truncation none; with every
    // term of one sign the difference adds up over K.
    let (p, k, n) = (5, 64, 33);
    let tie = |i: usize| {
        let v = 1.0 + 1.0 / 256.0 + (i % 8) as f32 / 128.0;
        if i.is_multiple_of(3) { -v } else { v }
    };
    run_all([Case {
        input: Some((0..p * k).map(tie).collect()),
        weights: Some((0..n * k).map(|i| tie(i + 1).abs()).collect()),
        ..case(p, k, n)
    }]);
}

#[test]
fn denormal_inputs_and_weights_read_as_zero() {
    // bf16 kernels flush denormal operands (the DAZ of vcvtne2ps2bf16 and vdpbf16ps).
    let (p, k, n) = (6, 20, 17);
    let tiny = f32::from_bits(0x0040_0000); // a denormal
    run_all([Case {
        input: Some(
            (0..p * k)
                .map(|i| if i % 2 == 0 { tiny } else { 0.5 })
                .collect(),
        ),
        weights: Some(
            (0..n * k)
                .map(|i| if i % 5 == 0 { -tiny } else { 0.25 })
                .collect(),
        ),
        ..case(p, k, n)
    }]);
}

#[test]
fn one_two_and_three_threads_give_identical_bits() {
    pointwise_threads_give_identical_bits(&kernels_under_test_at(Op::Pointwise, Precision::Bf16));
}

#[test]
fn row_scale_rounds_the_scaled_f32_weights_once() {
    // Squeeze-excite folded into the weights: bf16(w * s), not bf16(bf16(w) * s).
    let (p, k, n) = (13, 24, 40);
    for kernel in kernels_under_test_at(Op::Pointwise, Precision::Bf16) {
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
        let ws: Vec<f32> = (0..n * k).map(|i| w[i] * scale[i % k]).collect();
        let direct = PackedPointwise::pack_for(kernel, k, n, &ws, Some(&b)).unwrap();
        let mut want = vec![0.0; p * n];
        direct
            .run_slices(&ks, p, &input, &mut want, Activation::Relu, None)
            .unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{}",
            kernel.name
        );
        assert!(packed.scale_rows_into(&scale[1..], &mut scaled).is_err());
    }
}

#[test]
fn asking_for_bf16_where_the_tier_lacks_it_is_an_error() {
    // AVX2 has no bf16 arithmetic: an error naming what the CPU offers, never an f32 fallback.
    if Isa::Avx2.is_available() {
        let e = Kernels::with_isa(Isa::Avx2)
            .unwrap()
            .with_precision(Precision::Bf16)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bf16") && e.contains("avx2") && e.contains("scalar: f32, bf16"),
            "{e}"
        );
        let e = PackedPointwise::pack_precision(Isa::Avx2, Precision::Bf16, 2, 2, &[0.0; 4], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bf16"), "{e}");
    }
    let e = PackedPointwise::pack_precision(Isa::Avx512, Precision::Bf16, 2, 2, &[0.0; 4], None);
    assert_eq!(e.is_ok(), Precision::Bf16.is_available_on(Isa::Avx512));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_match_the_bf16_model(
        p in 1usize..40,
        k in 1usize..300,
        n in 1usize..80,
        act in 0usize..Activation::ALL.len(),
        bias in any::<bool>(),
        residual in any::<bool>(),
        seed in any::<u64>(),
        shift in 0usize..4,
        threads in 1usize..3,
    ) {
        let c = Case {
            act: Activation::ALL[act],
            bias,
            residual,
            seed,
            shift,
            threads,
            ..case(p, k, n)
        };
        for kernel in kernels_under_test_at(Op::Pointwise, Precision::Bf16) {
            if let Err(e) = check(kernel, &c) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
