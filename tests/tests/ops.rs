//! Element-wise ops, pooling, squeeze-excite and the linear layer on every ISA this CPU has (or the
//! one `KERNELS_ISA` names), against plain f64 loops.

use conformance::{Guarded, rand_vec};
use mobile_cnn_kernels::elementwise::{
    activation_in_place, add_in_place, channel_sums, global_avg_pool, scale_channels_in_place,
};
use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, Isa, Kernels, Shape, Tensor, reference};

fn tiers() -> Vec<Kernels> {
    let isas = match std::env::var("KERNELS_ISA") {
        Ok(v) if !v.trim().is_empty() => vec![Isa::from_env_value(&v).unwrap()],
        _ => Isa::available(),
    };
    isas.into_iter()
        .map(|i| Kernels::with_isa(i).unwrap())
        .collect()
}

/// Lengths around every vector width, so both full vectors and tails run.
const LENS: [usize; 10] = [1, 3, 4, 5, 8, 15, 16, 17, 33, 100];

#[test]
fn activation_in_place_matches_exact_functions() {
    for k in tiers() {
        for act in Activation::ALL {
            for len in LENS {
                let x = rand_vec(len as u64, len, 8.0);
                let mut g = Guarded::new(len);
                g.body().copy_from_slice(&x);
                activation_in_place(&k, act, g.body());
                g.assert_guards("activation_in_place");
                for (got, &xi) in g.get().iter().zip(&x) {
                    let want = reference::activation(act, xi as f64);
                    let within = (*got as f64 - want).abs() <= 1e-6 + 2e-7 * want.abs();
                    assert!(within, "{:?} {act:?}({xi}) = {got}, exact {want}", k.isa());
                }
            }
        }
    }
}

#[test]
fn add_and_scale_and_sums() {
    for k in tiers() {
        for len in LENS {
            let a = rand_vec(1, len, 1.0);
            let b = rand_vec(2, len, 1.0);
            let mut g = Guarded::new(len);
            g.body().copy_from_slice(&a);
            add_in_place(&k, g.body(), &b).unwrap();
            g.assert_guards("add");
            for i in 0..len {
                assert_eq!(g.get()[i], a[i] + b[i]);
            }
            assert!(add_in_place(&k, g.body(), &b[1..]).is_err());
        }
        for (n, h, w, c) in [(1, 1, 1, 1), (2, 3, 5, 7), (1, 7, 7, 17), (2, 4, 4, 48)] {
            let data = rand_vec(3, n * h * w * c, 2.0);
            let t = Tensor::from_slice(Shape::new(n, h, w, c), &data).unwrap();
            let mut sums = vec![0.0; n * c];
            channel_sums(&k, &t, &mut sums).unwrap();
            let mut means = vec![0.0; n * c];
            global_avg_pool(&k, &t, &mut means).unwrap();
            for b in 0..n {
                for ch in 0..c {
                    let want: f64 = (0..h * w)
                        .map(|p| data[(b * h * w + p) * c + ch] as f64)
                        .sum();
                    assert!((sums[b * c + ch] as f64 - want).abs() < 1e-5 * (1 + h * w) as f64);
                    assert!((means[b * c + ch] as f64 - want / (h * w) as f64).abs() < 1e-5);
                }
            }
            let scale = rand_vec(4, n * c, 1.0);
            let mut s = t.clone();
            scale_channels_in_place(&k, &mut s, &scale).unwrap();
            for (i, (&got, &x)) in s.as_slice().iter().zip(&data).enumerate() {
                let (b, ch) = (i / (h * w * c), i % c);
                assert_eq!(got, x * scale[b * c + ch]);
            }
            assert!(scale_channels_in_place(&k, &mut s, &scale[1..]).is_err());
            assert!(channel_sums(&k, &t, &mut sums[1..]).is_err());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn se_reference(
    x: &[f32],
    n: usize,
    px: usize,
    c: usize,
    r: usize,
    w: [&[f32]; 4],
    inner: Activation,
    gate: Gate,
) -> Vec<f32> {
    let [w1, b1, w2, b2] = w;
    let mut out = x.to_vec();
    for b in 0..n {
        let mean: Vec<f64> = (0..c)
            .map(|ch| {
                (0..px)
                    .map(|p| x[(b * px + p) * c + ch] as f64)
                    .sum::<f64>()
                    / px as f64
            })
            .collect();
        let hidden: Vec<f64> = (0..r)
            .map(|j| {
                reference::activation(
                    inner,
                    b1[j] as f64 + (0..c).map(|i| w1[j * c + i] as f64 * mean[i]).sum::<f64>(),
                )
            })
            .collect();
        for ch in 0..c {
            let z = b2[ch] as f64
                + (0..r)
                    .map(|j| w2[ch * r + j] as f64 * hidden[j])
                    .sum::<f64>();
            let s = match gate {
                Gate::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                Gate::HardSigmoid => (z + 3.0).clamp(0.0, 6.0) / 6.0,
            };
            for p in 0..px {
                out[(b * px + p) * c + ch] = (x[(b * px + p) * c + ch] as f64 * s) as f32;
            }
        }
    }
    out
}

#[test]
fn squeeze_excite_matches_reference() {
    for k in tiers() {
        for (n, h, w, c, r) in [
            (1, 7, 7, 48, 16),
            (2, 3, 5, 20, 8),
            (1, 14, 14, 112, 32),
            (1, 1, 1, 3, 1),
        ] {
            for (inner, gate) in [
                (Activation::Relu, Gate::Sigmoid),
                (Activation::Relu, Gate::HardSigmoid),
                (Activation::HardSwish, Gate::Sigmoid),
            ] {
                let x = rand_vec(10, n * h * w * c, 2.0);
                let (w1, b1, w2, b2) = (
                    rand_vec(11, r * c, 0.5),
                    rand_vec(12, r, 0.5),
                    rand_vec(13, c * r, 0.5),
                    rand_vec(14, c, 0.5),
                );
                let se =
                    SqueezeExcite::new(k.isa(), c, r, &w1, &b1, &w2, &b2, inner, gate).unwrap();
                let mut t = Tensor::from_slice(Shape::new(n, h, w, c), &x).unwrap();
                se.apply(&k, &mut t, &mut Vec::new()).unwrap();
                let want = se_reference(&x, n, h * w, c, r, [&w1, &b1, &w2, &b2], inner, gate);
                for (g, e) in t.as_slice().iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "{:?}: {g} vs {e}",
                        k.isa()
                    );
                }
            }
        }
        let bad = SqueezeExcite::new(
            k.isa(),
            8,
            2,
            &[0.0; 15],
            &[0.0; 2],
            &[0.0; 16],
            &[0.0; 8],
            Activation::Relu,
            Gate::Sigmoid,
        );
        let e = bad.unwrap_err().to_string();
        assert!(e.contains("se fc1"), "{e}");
        let se = SqueezeExcite::new(
            k.isa(),
            8,
            2,
            &[0.0; 16],
            &[0.0; 2],
            &[0.0; 16],
            &[0.0; 8],
            Activation::Relu,
            Gate::Sigmoid,
        )
        .unwrap();
        let mut wrong = Tensor::zeros(Shape::new(1, 2, 2, 9)).unwrap();
        assert!(se.apply(&k, &mut wrong, &mut Vec::new()).is_err());
        let mut scale = vec![0.0; 8];
        assert!(
            se.scale_from_sums(&k, &[0.0; 8], 0, &mut scale, &mut Vec::new())
                .is_err()
        );
        assert!(
            se.scale_from_sums(&k, &[0.0; 7], 4, &mut scale, &mut Vec::new())
                .is_err()
        );
    }
}

#[test]
fn linear_batches_match_reference() {
    for k in tiers() {
        for (batch, i, o) in [(1, 448, 1000), (3, 17, 5), (2, 1, 1)] {
            let x = rand_vec(20, batch * i, 1.0);
            let w = rand_vec(21, o * i, 0.2);
            let b = rand_vec(22, o, 0.2);
            let fc = Linear::new(k.isa(), i, o, &w, Some(&b)).unwrap();
            let mut y = vec![0.0; batch * o];
            fc.run(&k, &x, &mut y).unwrap();
            for bi in 0..batch {
                for j in 0..o {
                    let want = b[j] as f64
                        + (0..i)
                            .map(|t| x[bi * i + t] as f64 * w[j * i + t] as f64)
                            .sum::<f64>();
                    assert!((y[bi * o + j] as f64 - want).abs() < 1e-4, "{:?}", k.isa());
                }
            }
            assert!(fc.run(&k, &x[1..], &mut y).is_err() || i == 1);
        }
    }
}
