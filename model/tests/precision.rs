//! bf16 inference against timm's f32 logits on the committed fixtures, on every tier that runs
//! bf16 here (the portable scalar model always; AVX-512 where the CPU has AVX512_BF16).
//!
//! Bound: 1e-2 absolute, the target (OpenVINO's and ncnn's bf16 are at about 1e-2 on
//! logits of magnitude 2). Measured values are printed (`--nocapture`).

use std::path::PathBuf;

use mobile_cnn_kernels::{Isa, Kernels, Precision};
use repvit::{RepVit, npy};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// (max |bf16 - timm|, max |f32 - timm|, max |logit|) for one fixture on one tier.
fn errors(name: &str, isa: Isa, threads: usize) -> (f32, f32, f32) {
    let x = npy::read(fixture(&format!("{name}_input.npy"))).unwrap();
    let want = npy::read(fixture(&format!("{name}_logits.npy"))).unwrap();
    let shape: [usize; 4] = x.shape.clone().try_into().unwrap();
    let k32 = Kernels::with_isa(isa)
        .unwrap()
        .with_threads(threads)
        .unwrap();
    let k16 = k32.clone().with_precision(Precision::Bf16).unwrap();
    let path = fixture(&format!("{name}.safetensors"));
    let f32_logits = RepVit::load(&path, None, &k32)
        .unwrap()
        .forward(&x.data, shape)
        .unwrap();
    let bf16_logits = RepVit::load(&path, None, &k16)
        .unwrap()
        .forward(&x.data, shape)
        .unwrap();
    let max_diff = |a: &[f32]| {
        a.iter()
            .zip(&want.data)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max)
    };
    let mag = want.data.iter().map(|w| w.abs()).fold(0.0f32, f32::max);
    (max_diff(&bf16_logits), max_diff(&f32_logits), mag)
}

#[test]
fn bf16_logits_within_1e_2_of_timm_on_every_bf16_tier() {
    let tiers: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|&i| Precision::Bf16.is_available_on(i))
        .collect();
    assert!(tiers.contains(&Isa::Scalar));
    for isa in tiers {
        for name in ["small", "legacy"] {
            let (d16, d32, mag) = errors(name, isa, 1);
            println!("{name} ({isa}): bf16 max |diff| {d16:e}, f32 {d32:e}, max |logit| {mag}");
            assert!(d16 <= 1e-2, "{name} on {isa}: bf16 logits off by {d16}");
            // The bf16 path is really taken: rounding to 8 significant bits shows in the logits.
            assert!(d16 > 10.0 * d32, "{name} on {isa}: bf16 {d16} vs f32 {d32}");
        }
    }
}

#[test]
fn bf16_packs_the_pointwise_layers_only_where_the_tier_has_it() {
    for isa in Isa::available() {
        let k = Kernels::with_isa(isa).unwrap();
        match k.clone().with_precision(Precision::Bf16) {
            Ok(k) => {
                assert!(Precision::Bf16.is_available_on(isa));
                assert!(RepVit::load(fixture("small.safetensors"), None, &k).is_ok());
            }
            Err(e) => {
                assert!(!Precision::Bf16.is_available_on(isa));
                let msg = e.to_string();
                assert!(msg.contains("bf16") && msg.contains(isa.name()), "{msg}");
            }
        }
    }
}
