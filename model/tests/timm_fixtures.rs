//! Logits against timm's, on the small checkpoints written by `model/tools/make_fixtures.py`.

use std::path::PathBuf;

use mobile_cnn_kernels::{Isa, Kernels};
use repvit::{RepVit, npy};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Max |ours - timm| over the logits, asserting 1e-4 absolute (relative where |logit| > 1).
fn compare(name: &str, variant: Option<&str>, kernels: &Kernels) -> f32 {
    let model = RepVit::load(fixture(&format!("{name}.safetensors")), variant, kernels).unwrap();
    let x = npy::read(fixture(&format!("{name}_input.npy"))).unwrap();
    let want = npy::read(fixture(&format!("{name}_logits.npy"))).unwrap();
    let shape: [usize; 4] = x.shape.clone().try_into().unwrap();
    let got = model.forward(&x.data, shape).unwrap();
    assert_eq!(vec![shape[0], model.num_classes()], want.shape);
    let mut worst = 0.0f32;
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= 1e-4 * w.abs().max(1.0),
            "{name} on {}: logit {i}: ours {g}, timm {w}",
            kernels.isa()
        );
        worst = worst.max(d);
    }
    // The same model again (workspace reused) gives the same answer bit for bit.
    assert_eq!(model.forward(&x.data, shape).unwrap(), got);
    worst
}

#[test]
fn small_non_legacy_matches_timm_on_every_isa() {
    for isa in Isa::available() {
        let k = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
        let d = compare("small", None, &k);
        println!("small ({isa}): max |diff| {d:e}");
    }
    let d = compare(
        "small",
        None,
        &Kernels::new().unwrap().with_threads(2).unwrap(),
    );
    println!("small (2 threads): max |diff| {d:e}");
}

#[test]
fn legacy_half_precision_matches_timm_on_every_isa() {
    for isa in Isa::available() {
        let k = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
        let d = compare("legacy", None, &k);
        println!("legacy f16/bf16 ({isa}): max |diff| {d:e}");
    }
}

#[test]
fn fixture_configs_are_detected() {
    let k = Kernels::new().unwrap();
    let m = RepVit::load(fixture("small.safetensors"), None, &k).unwrap();
    let c = m.config().unwrap();
    assert_eq!(
        (c.embed_dim.clone(), c.depth.clone(), c.legacy),
        (vec![16, 32, 48, 64], vec![1, 2, 2, 1], false)
    );
    assert_eq!((c.num_classes, c.distillation), (1000, true));
    let m = RepVit::load(fixture("legacy.safetensors"), None, &k).unwrap();
    let c = m.config().unwrap();
    assert_eq!(
        (c.embed_dim.clone(), c.depth.clone(), c.legacy),
        (vec![16, 24, 32], vec![2, 1, 1], true)
    );
    assert_eq!((c.num_classes, c.distillation), (10, false));
    assert_eq!(c.se, vec![vec![true, false], vec![true], vec![true]]);
}
