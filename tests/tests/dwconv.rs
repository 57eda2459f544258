//! Every registered depthwise 3x3 kernel on every ISA this CPU has, against the reference.
//! Tolerance: see the crate docs of `conformance` (tests/src/lib.rs).

use conformance::{Guarded, kernels_under_test, rand_vec, shifted};
use mobile_cnn_kernels::registry::{KernelInfo, Op};
use mobile_cnn_kernels::{Activation, DwConv3x3Geom, reference};
use proptest::prelude::*;

/// One test case: the geometry and the seeds of its data.
#[derive(Debug, Clone, Copy)]
struct Case {
    g: DwConv3x3Geom,
    seed: u64,
    with_sums: bool,
    /// Floats by which the input is shifted off 64-byte alignment.
    shift: usize,
}

fn check(k: &KernelInfo, case: Case) -> Result<(), String> {
    let g = case.g;
    let (n, h, w, c) = (g.n, g.h, g.w, g.c);
    let input = rand_vec(case.seed, n * h * w * c, 4.0);
    let weights = rand_vec(case.seed ^ 1, 9 * c, 1.0);
    let bias = rand_vec(case.seed ^ 2, c, 1.0);
    let out_len = g.output_shape().len();

    let mut want = vec![0.0; out_len];
    let mut want_sums = vec![0.0; n * c];
    reference::dwconv3x3(&g, &input, &weights, &bias, &mut want, Some(&mut want_sums)).unwrap();
    // Magnitude of the summed terms, for the tolerance.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut mag = vec![0.0; out_len];
    let gm = DwConv3x3Geom {
        act: Activation::Identity,
        ..g
    };
    reference::dwconv3x3(
        &gm,
        &abs(&input),
        &abs(&weights),
        &abs(&bias),
        &mut mag,
        None,
    )
    .unwrap();

    let (inbuf, range) = shifted(&input, case.shift);
    let mut out = Guarded::new(out_len);
    let mut sums = Guarded::new(n * c);
    let kernel = k.dwconv3x3().map_err(|e| e.to_string())?;
    kernel
        .run(
            &g,
            &inbuf[range],
            &weights,
            &bias,
            out.body(),
            case.with_sums.then(|| sums.body()),
        )
        .map_err(|e| e.to_string())?;
    out.assert_guards(k.name);
    sums.assert_guards(k.name);

    let (oh, ow) = (g.oh(), g.ow());
    let mut sum_tol = vec![0.0f64; n * c];
    for (i, ((&got, &exp), &m)) in out.get().iter().zip(&want).zip(&mag).enumerate() {
        let tol = 2e-6 * m + 2e-6;
        sum_tol[(i / (oh * ow * c)) * c + i % c] += tol as f64 + 1e-6 * exp.abs() as f64;
        // Written so that a NaN result fails: NaN compares false.
        let within = (got - exp).abs() <= tol;
        if !within {
            let px = i / c;
            return Err(format!(
                "{} {g:?}: output[b={}, y={}, x={}, c={}] = {got}, reference {exp}, tolerance {tol}",
                k.name,
                px / (oh * ow),
                (px / ow) % oh,
                px % ow,
                i % c
            ));
        }
    }
    if case.with_sums {
        for (i, ((&got, &exp), &tol)) in sums.get().iter().zip(&want_sums).zip(&sum_tol).enumerate()
        {
            let within = ((got - exp).abs() as f64) <= tol + 1e-5;
            if !within {
                return Err(format!(
                    "{} {g:?}: sums[{i}] = {got}, reference {exp}, tolerance {tol}",
                    k.name
                ));
            }
        }
    } else if sums
        .get()
        .iter()
        .any(|v| v.to_bits() != conformance::GUARD_BITS)
    {
        return Err(format!(
            "{}: wrote sums although none were asked for",
            k.name
        ));
    }
    Ok(())
}

fn run_all(cases: impl IntoIterator<Item = Case>) {
    let cases: Vec<Case> = cases.into_iter().collect();
    for k in kernels_under_test(Op::DwConv3x3) {
        for &case in &cases {
            if let Err(e) = check(k, case) {
                panic!("{e}");
            }
        }
    }
}

fn geom(n: usize, h: usize, w: usize, c: usize, stride: usize, act: Activation) -> DwConv3x3Geom {
    DwConv3x3Geom {
        n,
        h,
        w,
        c,
        stride,
        act,
    }
}

/// Channel counts around every vector width (1, 4, 8, 16 lanes) and twice those (kernels that
/// process two registers per step): below, equal, above and multiples.
const EDGE_CHANNELS: [usize; 16] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48];

#[test]
fn channels_below_equal_above_and_multiple_of_the_vector_width() {
    run_all(EDGE_CHANNELS.iter().enumerate().flat_map(|(i, &c)| {
        [1, 2].map(|s| Case {
            g: geom(1, 5, 6, c, s, Activation::Identity),
            seed: i as u64,
            with_sums: true,
            shift: 0,
        })
    }));
}

#[test]
fn width_one() {
    run_all([1, 2, 3, 8, 17].into_iter().flat_map(|h| {
        [1, 2].map(|s| Case {
            g: geom(1, h, 1, 19, s, Activation::Relu),
            seed: h as u64,
            with_sums: true,
            shift: 3,
        })
    }));
}

#[test]
fn height_one() {
    run_all([1, 2, 3, 8, 17].into_iter().flat_map(|w| {
        [1, 2].map(|s| Case {
            g: geom(1, 1, w, 16, s, Activation::Gelu),
            seed: w as u64,
            with_sums: true,
            shift: 0,
        })
    }));
}

#[test]
fn odd_sizes() {
    run_all(
        [(3, 5, 13), (7, 9, 21), (11, 3, 35), (13, 13, 1)]
            .into_iter()
            .map(|(h, w, c)| Case {
                g: geom(2, h, w, c, 1, Activation::HardSwish),
                seed: (h * w) as u64,
                with_sums: true,
                shift: 1,
            }),
    );
}

#[test]
fn stride_two_on_odd_and_even_inputs() {
    run_all(
        [
            (7, 7, 48),
            (9, 5, 17),
            (14, 14, 32),
            (15, 16, 9),
            (2, 3, 64),
        ]
        .into_iter()
        .map(|(h, w, c)| Case {
            g: geom(1, h, w, c, 2, Activation::Relu6),
            seed: (h + w + c) as u64,
            with_sums: true,
            shift: 5,
        }),
    );
}

#[test]
fn every_activation() {
    run_all(Activation::ALL.into_iter().flat_map(|act| {
        [1, 2].map(|s| Case {
            g: geom(1, 6, 7, 21, s, act),
            seed: s as u64,
            with_sums: true,
            shift: 0,
        })
    }));
}

#[test]
fn without_sums_nothing_is_written_there() {
    run_all([Case {
        g: geom(2, 4, 4, 20, 1, Activation::Gelu),
        seed: 9,
        with_sums: false,
        shift: 0,
    }]);
}

#[test]
fn repvit_stage_shapes() {
    // A row band of RepViT's real shapes (channels 48..640); full 56x56 runs in the benchmarks.
    run_all(
        [(56, 48), (56, 56), (28, 112), (14, 224), (7, 448), (7, 640)]
            .into_iter()
            .flat_map(|(hw, c)| {
                [1, 2].map(|s| Case {
                    g: geom(1, hw.min(9), hw, c, s, Activation::Identity),
                    seed: c as u64,
                    with_sums: true,
                    shift: 0,
                })
            }),
    );
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let g = geom(1, 4, 4, 8, 1, Activation::Identity);
    for k in kernels_under_test(Op::DwConv3x3) {
        let k = k.dwconv3x3().unwrap();
        let (i, w, b, mut o, mut s) = (
            vec![0.0; 128],
            vec![0.0; 72],
            vec![0.0; 8],
            vec![0.0; 128],
            vec![0.0; 8],
        );
        assert!(k.run(&g, &i[1..], &w, &b, &mut o, None).is_err());
        assert!(k.run(&g, &i, &w[1..], &b, &mut o, None).is_err());
        assert!(k.run(&g, &i, &w, &b[1..], &mut o, None).is_err());
        assert!(k.run(&g, &i, &w, &b, &mut o[1..], None).is_err());
        assert!(k.run(&g, &i, &w, &b, &mut o, Some(&mut s[1..])).is_err());
        assert!(
            k.run(&DwConv3x3Geom { stride: 3, ..g }, &i, &w, &b, &mut o, None)
                .is_err()
        );
        assert!(
            k.run(&DwConv3x3Geom { c: 0, ..g }, &[], &[], &[], &mut [], None)
                .is_err()
        );
        assert!(k.run(&g, &i, &w, &b, &mut o, Some(&mut s)).is_ok());
    }
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=12,
        1usize..=12,
        prop_oneof![
            1usize..=40,
            prop::sample::select(vec![47, 48, 49, 63, 64, 65, 80, 96, 112, 129])
        ],
        1usize..=2,
        prop::sample::select(Activation::ALL.to_vec()),
        any::<u64>(),
        any::<bool>(),
        0usize..16,
    )
        .prop_map(|(n, h, w, c, stride, act, seed, with_sums, shift)| Case {
            g: geom(n, h, w, c, stride, act),
            seed,
            with_sums,
            shift,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_match_the_reference(case in arb_case()) {
        for k in kernels_under_test(Op::DwConv3x3) {
            if let Err(e) = check(k, case) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
