//! The dense 3x3 convolution (im2col + the pointwise GEMM of each ISA) against the reference, on
//! every tier this CPU has (or the one `KERNELS_ISA` names): named edge cases, then proptest.
//!
//! Tolerance as for the GEMM: `1.2e-7 * K * S + 2e-6`, K = 9 * cin, S = |bias| + sum |x * w| the
//! magnitude of the summed terms. The f32 sum of K + 1 terms with one rounding per FMA is off by at
//! most `K * 2^-24 * S` (6e-8 K S); the activations' slopes are at most 1.5 (hard-swish), giving
//! 9e-8 K S; 1.2e-7 leaves a third of slack. The 2e-6 covers GELU's approximation (1e-6) and the
//! output's rounding.

use conformance::{kernels_under_test, rand_vec};
use mobile_cnn_kernels::registry::Op;
use mobile_cnn_kernels::{Activation, Conv3x3, Kernels, Shape, Tensor, reference};
use proptest::prelude::*;

#[allow(clippy::too_many_arguments)]
fn check(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    stride: usize,
    act: Activation,
    bias: bool,
) {
    let seed = (h * 1000 + w * 10 + cin + cout) as u64;
    if let Err(e) = try_check(n, h, w, cin, cout, stride, act, bias, seed) {
        panic!("{e}");
    }
}

#[allow(clippy::too_many_arguments)]
fn try_check(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    stride: usize,
    act: Activation,
    bias: bool,
    seed: u64,
) -> Result<(), String> {
    let input = Tensor::from_slice(
        Shape::new(n, h, w, cin),
        &rand_vec(seed, n * h * w * cin, 1.0),
    )
    .unwrap();
    let wts = rand_vec(seed ^ 1, cout * cin * 9, 0.5);
    let b = bias.then(|| rand_vec(seed ^ 2, cout, 0.5));
    let want = reference::conv3x3(&input, &wts, b.as_deref(), cout, stride, act);
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let abs_in = Tensor::from_slice(input.shape(), &abs(input.as_slice())).unwrap();
    let mag = reference::conv3x3(
        &abs_in,
        &abs(&wts),
        b.as_deref().map(abs).as_deref(),
        cout,
        stride,
        Activation::Identity,
    );
    for kernel in kernels_under_test(Op::Pointwise) {
        let ks = Kernels::with_isa(kernel.isa).unwrap();
        let conv = Conv3x3::new(kernel.isa, cin, cout, &wts, b.as_deref(), stride, act)
            .map_err(|e| e.to_string())?;
        let mut out = Tensor::zeros(conv.output_shape(input.shape()).unwrap()).unwrap();
        // NaN-filled, so an output the kernel forgets to write fails the comparison.
        out.as_mut_slice().fill(f32::NAN);
        // Stale, too-short scratch: the band buffer must be grown and fully rewritten.
        let mut scratch = vec![f32::NAN; 5];
        conv.run(&ks, &input, &mut out, &mut scratch)
            .map_err(|e| e.to_string())?;
        if out.shape() != want.shape() {
            return Err(format!("shape {} != {}", out.shape(), want.shape()));
        }
        for (i, ((&g, &e), &m)) in out
            .as_slice()
            .iter()
            .zip(want.as_slice())
            .zip(mag.as_slice())
            .enumerate()
        {
            let tol = 1.2e-7 * (9 * cin) as f32 * m + 2e-6;
            // Written so that NaN fails.
            let within = (g - e).abs() <= tol;
            if !within {
                let px = i / cout;
                return Err(format!(
                    "{} n{n} {h}x{w} {cin}->{cout} s{stride} {act:?} bias {bias}: out[pixel {px}, c {}] = {g}, reference {e}, tolerance {tol}",
                    kernel.name,
                    i % cout
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn stem_like_shapes() {
    check(1, 32, 32, 3, 28, 2, Activation::Gelu, true);
    check(1, 16, 16, 28, 56, 2, Activation::Identity, true);
}

#[test]
fn odd_sizes_strides_and_batches() {
    for (h, w) in [(1, 1), (1, 5), (5, 1), (3, 3), (7, 9), (9, 7)] {
        for stride in [1, 2] {
            check(2, h, w, 5, 7, stride, Activation::Relu, stride == 1);
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let isa = mobile_cnn_kernels::Isa::Scalar;
    assert!(Conv3x3::new(isa, 3, 4, &[0.0; 107], None, 2, Activation::Identity).is_err());
    assert!(Conv3x3::new(isa, 3, 4, &[0.0; 108], None, 3, Activation::Identity).is_err());
    assert!(
        Conv3x3::new(
            isa,
            3,
            4,
            &[0.0; 108],
            Some(&[0.0; 3]),
            2,
            Activation::Identity
        )
        .is_err()
    );
    let conv = Conv3x3::new(isa, 3, 4, &[0.0; 108], None, 2, Activation::Identity).unwrap();
    let ks = Kernels::with_isa(isa).unwrap();
    let input = Tensor::zeros(Shape::new(1, 8, 8, 2)).unwrap();
    let mut out = Tensor::zeros(Shape::new(1, 4, 4, 4)).unwrap();
    let e = conv
        .run(&ks, &input, &mut out, &mut Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("channels"), "{e}");
    let input = Tensor::zeros(Shape::new(1, 8, 8, 3)).unwrap();
    let mut wrong = Tensor::zeros(Shape::new(1, 8, 8, 4)).unwrap();
    assert!(conv.run(&ks, &input, &mut wrong, &mut Vec::new()).is_err());
    assert!(conv.run(&ks, &input, &mut out, &mut Vec::new()).is_ok());
}

#[test]
fn every_activation_and_channel_edges() {
    for act in Activation::ALL {
        for (cin, cout) in [
            (1, 1),
            (3, 16),
            (3, 17),
            (4, 32),
            (8, 33),
            (16, 8),
            (17, 64),
            (33, 5),
        ] {
            check(1, 6, 7, cin, cout, 2, act, true);
        }
    }
}

fn arb_cin() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=9,
        prop::sample::select(vec![3, 3, 15, 16, 17, 24, 28, 31, 33, 40])
    ]
}

fn arb_cout() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=40,
        prop::sample::select(vec![47, 48, 56, 63, 64, 65, 80, 97])
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_match_the_reference(
        n in 1usize..=2,
        h in 1usize..=13,
        w in 1usize..=13,
        cin in arb_cin(),
        cout in arb_cout(),
        stride in 1usize..=2,
        act in prop::sample::select(Activation::ALL.to_vec()),
        bias: bool,
        seed: u64,
    ) {
        let r = try_check(n, h, w, cin, cout, stride, act, bias, seed);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Bands of output rows run on different threads: shapes with several bands per image (and a batch,
/// so bands of two images run side by side) give the same bits at 1, 2, 3 and 5 threads, and match
/// the reference. Bands are cut from the shape alone, so the GEMM sees the same rows at every count.
#[test]
fn thread_count_gives_identical_bits_across_bands() {
    // (n, h, w, cin, cout): stem.conv1 and stem.conv2 of RepViT at a reduced size (5 and 6 bands
    // per image), one band shorter than the rest, and one image of one band.
    for (n, h, w, cin, cout) in [
        (2, 96, 64, 3, 24),
        (1, 56, 56, 28, 56),
        (3, 37, 45, 16, 40),
        (1, 8, 8, 3, 8),
    ] {
        let seed = (h * w + cin) as u64;
        let input = Tensor::from_slice(
            Shape::new(n, h, w, cin),
            &rand_vec(seed, n * h * w * cin, 1.0),
        )
        .unwrap();
        let wts = rand_vec(seed ^ 1, cout * cin * 9, 0.5);
        let bias = rand_vec(seed ^ 2, cout, 0.5);
        for kernel in kernels_under_test(Op::Pointwise) {
            let conv = Conv3x3::new(
                kernel.isa,
                cin,
                cout,
                &wts,
                Some(&bias),
                2,
                Activation::Gelu,
            )
            .unwrap();
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3, 5] {
                let ks = Kernels::with_isa(kernel.isa)
                    .unwrap()
                    .with_threads(threads)
                    .unwrap();
                let mut out = Tensor::zeros(conv.output_shape(input.shape()).unwrap()).unwrap();
                out.as_mut_slice().fill(f32::NAN);
                let mut scratch = vec![f32::NAN; 3];
                conv.run(&ks, &input, &mut out, &mut scratch).unwrap();
                let bits: Vec<u32> = out.as_slice().iter().map(|v| v.to_bits()).collect();
                assert!(
                    out.as_slice().iter().all(|v| v.is_finite()),
                    "{} {threads} threads: an output was not written",
                    kernel.name
                );
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert!(
                        *f == bits,
                        "{} n{n} {h}x{w} {cin}->{cout}: {threads} threads differ from 1",
                        kernel.name
                    ),
                }
            }
        }
        check(n, h, w, cin, cout, 2, Activation::Gelu, true);
    }
}
