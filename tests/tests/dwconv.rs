//! Every registered depthwise kernel (k = 3, 5, 7) on every ISA this CPU has, against the
//! reference, and the row-band entry against the whole run.
//!
//! Tolerance: the crate docs of `conformance` (tests/src/lib.rs) give `2e-6 * S + 2e-6` for the ten
//! terms of a 3x3 output, `S = |bias| + sum |x * w|`. With `k * k + 1` terms the f32 accumulation
//! loses at most about `(k * k + 1) * 2^-24 * S`, times the activation's slope: the bound used is
//! `max(2e-6, 1.5 * (k * k + 1) * 2^-24) * S + 2e-6 + act_eval_error`.

use conformance::{Guarded, U, act_eval_error, kernels_under_test, rand_vec, shifted, within};
use mobile_cnn_kernels::registry::{self, DwConvKernel, KernelInfo, Op};
use mobile_cnn_kernels::{Activation, DwConvGeom, reference};
use proptest::prelude::*;

/// One test case: the geometry and the seeds of its data.
#[derive(Debug, Clone, Copy)]
struct Case {
    g: DwConvGeom,
    seed: u64,
    with_sums: bool,
    /// Floats by which the input is shifted off 64-byte alignment.
    shift: usize,
}

/// The data of a case and what the reference makes of it.
struct Data {
    input: Vec<f32>,
    weights: Vec<f32>,
    bias: Vec<f32>,
    want: Vec<f32>,
    want_sums: Vec<f32>,
    /// Per output: the tolerance.
    tol: Vec<f32>,
}

fn data(case: &Case) -> Data {
    let g = case.g;
    let (n, h, w, c, k) = (g.n, g.h, g.w, g.c, g.k);
    let input = rand_vec(case.seed, n * h * w * c, 4.0);
    let weights = rand_vec(case.seed ^ 1, k * k * c, 1.0);
    let bias = rand_vec(case.seed ^ 2, c, 1.0);
    let out_len = g.output_shape().len();
    let mut want = vec![0.0; out_len];
    let mut want_sums = vec![0.0; n * c];
    reference::dwconv(&g, &input, &weights, &bias, &mut want, Some(&mut want_sums)).unwrap();
    // Magnitude of the summed terms, for the tolerance.
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut mag = vec![0.0; out_len];
    let gm = DwConvGeom {
        act: Activation::Identity,
        ..g
    };
    reference::dwconv(
        &gm,
        &abs(&input),
        &abs(&weights),
        &abs(&bias),
        &mut mag,
        None,
    )
    .unwrap();
    let rel = (2e-6f64).max(1.5 * (k * k + 1) as f64 * U);
    let tol = mag
        .iter()
        .zip(&want)
        .map(|(&m, &e)| (rel * m as f64 + 2e-6 + act_eval_error(g.act, e as f64)) as f32)
        .collect();
    Data {
        input,
        weights,
        bias,
        want,
        want_sums,
        tol,
    }
}

fn compare_outputs(name: &str, g: &DwConvGeom, d: &Data, got: &[f32]) -> Result<(), String> {
    let (oh, ow, c) = (g.oh(), g.ow(), g.c);
    for (i, ((&got, &exp), &tol)) in got.iter().zip(&d.want).zip(&d.tol).enumerate() {
        // Written so that a NaN result fails: NaN compares false.
        let within = (got - exp).abs() <= tol;
        if !within {
            let px = i / c;
            return Err(format!(
                "{name} {g:?}: output[b={}, y={}, x={}, c={}] = {got}, reference {exp}, tolerance {tol}",
                px / (oh * ow),
                (px / ow) % oh,
                px % ow,
                i % c
            ));
        }
    }
    Ok(())
}

fn compare_sums(name: &str, g: &DwConvGeom, d: &Data, got: &[f32]) -> Result<(), String> {
    let (plane, c) = (g.oh() * g.ow() * g.c, g.c);
    for (i, (&got, &exp)) in got.iter().zip(&d.want_sums).enumerate() {
        let (b, ch) = (i / c, i % c);
        // Each output's own tolerance, plus one rounding of the running sum per term.
        let tol: f64 = (0..g.oh() * g.ow())
            .map(|p| {
                let j = b * plane + p * c + ch;
                d.tol[j] as f64 + 2.0 * (g.oh() * g.ow()) as f64 * U * d.want[j].abs() as f64
            })
            .sum::<f64>()
            + 1e-5;
        if !within(got as f64, exp as f64, tol) {
            return Err(format!(
                "{name} {g:?}: sums[{b}, {ch}] = {got}, reference {exp}, tolerance {tol}"
            ));
        }
    }
    Ok(())
}

fn check(k: &KernelInfo, case: Case) -> Result<(), String> {
    let g = case.g;
    let d = data(&case);
    let out_len = g.output_shape().len();
    let (inbuf, range) = shifted(&d.input, case.shift);
    let mut out = Guarded::new(out_len);
    let mut sums = Guarded::new(g.n * g.c);
    let kernel = k.dwconv().map_err(|e| e.to_string())?;
    kernel
        .run(
            &g,
            &inbuf[range],
            &d.weights,
            &d.bias,
            out.body(),
            case.with_sums.then(|| sums.body()),
        )
        .map_err(|e| e.to_string())?;
    out.assert_guards(k.name);
    sums.assert_guards(k.name);
    compare_outputs(k.name, &g, &d, out.get())?;
    if case.with_sums {
        compare_sums(k.name, &g, &d, sums.get())?;
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

/// Every registered depthwise kernel this CPU can run, for every kernel size.
fn kernels() -> Vec<&'static KernelInfo> {
    [3, 5, 7]
        .into_iter()
        .flat_map(|k| kernels_under_test(Op::DwConv { k }))
        .collect()
}

fn run_all(cases: impl IntoIterator<Item = Case>) {
    let cases: Vec<Case> = cases.into_iter().collect();
    for k in kernels() {
        let ks = k.dwconv().unwrap().kernel_size();
        for &case in &cases {
            let case = Case {
                g: DwConvGeom { k: ks, ..case.g },
                ..case
            };
            if let Err(e) = check(k, case) {
                panic!("{e}");
            }
        }
    }
}

fn geom(n: usize, h: usize, w: usize, c: usize, stride: usize, act: Activation) -> DwConvGeom {
    DwConvGeom {
        n,
        h,
        w,
        c,
        k: 3,
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
            g: geom(1, 9, 10, c, s, Activation::Identity),
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

/// Kernels larger than the image in one or both directions: every output misses taps on both sides.
#[test]
fn kernel_larger_than_height_or_width() {
    run_all(
        [(2, 2), (2, 9), (9, 2), (3, 4), (4, 6), (6, 3), (5, 5)]
            .into_iter()
            .flat_map(|(h, w)| {
                [1, 2].map(|s| Case {
                    g: geom(2, h, w, 21, s, Activation::HardSwish),
                    seed: (h * 16 + w) as u64,
                    with_sums: true,
                    shift: 2,
                })
            }),
    );
}

/// Widths that are multiples of 7 (every map of a 224x224 network), where the 5x5 stride-1
/// kernels run steps of 7 columns: one step (7), two (14), three (21) and five (35), with full
/// and partial channel blocks, sums and a batch of two.
#[test]
fn widths_in_steps_of_seven() {
    run_all(
        [(7, 7), (5, 14), (3, 21), (9, 35), (2, 28)]
            .into_iter()
            .flat_map(|(h, w)| {
                [5, 8, 17, 40].map(|c| Case {
                    g: geom(2, h, w, c, 1, Activation::HardSwish),
                    seed: (h * 64 + w + c) as u64,
                    with_sums: true,
                    shift: 3,
                })
            }),
    );
}

#[test]
fn odd_sizes() {
    run_all(
        [
            (3, 5, 13),
            (7, 9, 21),
            (11, 3, 35),
            (13, 13, 1),
            (15, 17, 41),
        ]
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
            (28, 28, 40),
            // 16 output columns: whole steps of 4 and of 8, several of them inside the border.
            (32, 32, 24),
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
            g: geom(1, 9, 11, 21, s, act),
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
fn repvit_and_mobilenet_stage_shapes() {
    // A row band of real shapes (RepViT 48..640 channels, MobileNetV3 40..960, EfficientNet 7x7
    // widths); full sizes run in the benchmarks.
    run_all(
        [
            (56, 48),
            (56, 56),
            (28, 112),
            (14, 224),
            (7, 448),
            (7, 640),
            (28, 120),
            (14, 672),
            (7, 960),
        ]
        .into_iter()
        .flat_map(|(hw, c)| {
            [1, 2].map(|s| Case {
                g: geom(1, hw.min(11), hw, c, s, Activation::Identity),
                seed: c as u64,
                with_sums: true,
                shift: 0,
            })
        }),
    );
}

#[test]
fn bad_lengths_and_parameters_are_errors_not_panics() {
    for k in kernels() {
        let kernel = k.dwconv().unwrap();
        let ks = kernel.kernel_size();
        let g = DwConvGeom {
            k: ks,
            ..geom(1, 4, 4, 8, 1, Activation::Identity)
        };
        let (i, w, b, mut o, mut s) = (
            vec![0.0; 128],
            vec![0.0; ks * ks * 8],
            vec![0.0; 8],
            vec![0.0; 128],
            vec![0.0; 8],
        );
        assert!(kernel.run(&g, &i[1..], &w, &b, &mut o, None).is_err());
        assert!(kernel.run(&g, &i, &w[1..], &b, &mut o, None).is_err());
        assert!(kernel.run(&g, &i, &w, &b[1..], &mut o, None).is_err());
        assert!(kernel.run(&g, &i, &w, &b, &mut o[1..], None).is_err());
        assert!(
            kernel
                .run(&g, &i, &w, &b, &mut o, Some(&mut s[1..]))
                .is_err()
        );
        let s3 = DwConvGeom { stride: 3, ..g };
        assert!(kernel.run(&s3, &i, &w, &b, &mut o, None).is_err());
        let c0 = DwConvGeom { c: 0, ..g };
        assert!(kernel.run(&c0, &[], &[], &[], &mut [], None).is_err());
        // A geometry of another kernel size than the kernel's.
        let other = DwConvGeom {
            k: if ks == 3 { 5 } else { 3 },
            ..g
        };
        let wo = vec![0.0; other.k * other.k * 8];
        assert!(kernel.run(&other, &i, &wo, &b, &mut o, None).is_err());
        // Bands: past the end, reversed, output not the band's length.
        assert!(
            kernel
                .run_rows(&g, 3..5, &i, &w, &b, &mut o[..64], None)
                .is_err()
        );
        #[allow(clippy::reversed_empty_ranges)]
        let rev = 3..1;
        assert!(kernel.run_rows(&g, rev, &i, &w, &b, &mut [], None).is_err());
        assert!(
            kernel
                .run_rows(&g, 1..3, &i, &w, &b, &mut o[..32], None)
                .is_err()
        );
        assert!(kernel.run(&g, &i, &w, &b, &mut o, Some(&mut s)).is_ok());
        assert!(
            kernel
                .run_rows(&g, 1..3, &i, &w, &b, &mut o[..64], Some(&mut s))
                .is_ok()
        );
    }
    // Kernel sizes that do not exist.
    for ks in [0, 1, 2, 4, 9] {
        let r = registry::find(Op::DwConv { k: ks }, mobile_cnn_kernels::Isa::Scalar);
        assert!(r.is_err(), "k = {ks} found in the registry");
        let k = mobile_cnn_kernels::Kernels::with_isa(mobile_cnn_kernels::Isa::Scalar).unwrap();
        let layer = mobile_cnn_kernels::DwConv::create(
            &k,
            8,
            ks,
            &vec![0.0; ks * ks * 8],
            &[0.0; 8],
            1,
            Activation::Identity,
        );
        assert!(layer.is_err(), "k = {ks} accepted");
    }
}

/// Runs `kernel` band by band over `cuts` (ascending flat row indices, the band edges) into one
/// guarded output; returns the output and each band's partial sums.
fn run_bands(
    kernel: &DwConvKernel,
    g: &DwConvGeom,
    d: &Data,
    cuts: &[usize],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let row_len = g.ow() * g.c;
    let mut out = Guarded::new(g.output_shape().len());
    let mut partials = Vec::new();
    for band in cuts.windows(2) {
        let mut sums = Guarded::new(g.n * g.c);
        let body = &mut out.body()[band[0] * row_len..band[1] * row_len];
        kernel
            .run_rows(
                g,
                band[0]..band[1],
                &d.input,
                &d.weights,
                &d.bias,
                body,
                Some(sums.body()),
            )
            .unwrap();
        sums.assert_guards("band sums");
        partials.push(sums.get().to_vec());
    }
    out.assert_guards("banded output");
    (out.get().to_vec(), partials)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The band contract of `DwConvGeom`: bands of any size give the whole run's outputs bitwise; each
/// band's partial sums cover exactly its rows (zero for images it does not touch); the partials
/// added in band order match the reference sums; a band of whole images gives the whole run's sums
/// of those images bitwise.
fn check_bands(k: &KernelInfo, case: Case, cuts: &[usize]) {
    let g = case.g;
    let d = data(&case);
    let kernel = k.dwconv().unwrap();
    let mut whole = vec![0.0; g.output_shape().len()];
    let mut whole_sums = vec![0.0; g.n * g.c];
    kernel
        .run(
            &g,
            &d.input,
            &d.weights,
            &d.bias,
            &mut whole,
            Some(&mut whole_sums),
        )
        .unwrap();
    let (banded, partials) = run_bands(&kernel, &g, &d, cuts);
    assert_eq!(
        bits(&banded),
        bits(&whole),
        "{} {g:?} bands {cuts:?}: banded output differs from the whole run",
        k.name
    );
    let mut total = vec![0.0f32; g.n * g.c];
    for (band, part) in cuts.windows(2).zip(&partials) {
        for (t, &p) in total.iter_mut().zip(part) {
            *t += p;
        }
        let oh = g.oh();
        for b in 0..g.n {
            let touched = band[0] < (b + 1) * oh && b * oh < band[1];
            if !touched {
                assert!(
                    part[b * g.c..(b + 1) * g.c].iter().all(|&x| x == 0.0),
                    "{} band {band:?}: sums of untouched image {b} not zero",
                    k.name
                );
            } else if band[0] <= b * oh && (b + 1) * oh <= band[1] {
                assert_eq!(
                    bits(&part[b * g.c..(b + 1) * g.c]),
                    bits(&whole_sums[b * g.c..(b + 1) * g.c]),
                    "{} band {band:?}: sums of whole image {b} differ from the whole run",
                    k.name
                );
            }
        }
    }
    if let Err(e) = compare_sums(k.name, &g, &d, &total) {
        panic!("bands {cuts:?}: {e}");
    }
}

#[test]
fn row_bands_equal_the_whole_run() {
    for k in kernels() {
        let ks = k.dwconv().unwrap().kernel_size();
        for (n, h, w, c, s) in [(1, 13, 9, 19, 1), (2, 9, 12, 40, 2), (3, 5, 3, 33, 1)] {
            let g = DwConvGeom {
                k: ks,
                ..geom(n, h, w, c, s, Activation::HardSwish)
            };
            let case = Case {
                g,
                seed: (n + h + c) as u64,
                with_sums: true,
                shift: 0,
            };
            let rows = g.rows();
            let oh = g.oh();
            // One band; one row per band; bands of 2 and 3 rows crossing image borders; one band
            // per image; an empty band.
            let every: Vec<usize> = (0..=rows).collect();
            let by = |step: usize| -> Vec<usize> {
                let mut v: Vec<usize> = (0..rows).step_by(step).collect();
                v.push(rows);
                v
            };
            let images: Vec<usize> = (0..=g.n).map(|b| b * oh).collect();
            for cuts in [
                vec![0, rows],
                every,
                by(2),
                by(3),
                images,
                vec![0, 0, 1, rows],
            ] {
                check_bands(k, case, &cuts);
            }
        }
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
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_match_the_reference(case in arb_case()) {
        for k in kernels() {
            let g = DwConvGeom { k: k.dwconv().unwrap().kernel_size(), ..case.g };
            if let Err(e) = check(k, Case { g, ..case }) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn random_bands_equal_the_whole_run(
        case in arb_case(),
        cuts in prop::collection::vec(0usize..1000, 0..4),
    ) {
        for k in kernels() {
            let g = DwConvGeom { k: k.dwconv().unwrap().kernel_size(), ..case.g };
            let rows = g.rows();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (rows + 1)).collect();
            cuts.push(0);
            cuts.push(rows);
            cuts.sort_unstable();
            check_bands(k, Case { g, ..case }, &cuts);
        }
    }
}
