//! MobileNetV3-Large/-Small and MobileNetV2 logits against timm's, on the reduced-width checkpoints
//! written by `model/tools/make_mobilenet_fixtures.py` (timm's own generators, random weights,
//! randomised BatchNorm statistics, float16 storage, odd input sizes).

use std::path::PathBuf;

use mobile_cnn_kernels::{Isa, Kernels};
use repvit::mobilenet::{BlockKind, MobileNetKind};
use repvit::{Arch, Error, LayerKind, MobileNetConfig, Network, StateDict, npy};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Max |ours - timm| over the logits, asserting 1e-4 absolute (relative where |logit| > 1).
fn compare(name: &str, kernels: &Kernels) -> f32 {
    let model = Network::load(fixture(&format!("{name}.safetensors")), None, kernels).unwrap();
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
    // The fixture is sensitive: its two images get clearly different logits (a network whose
    // signal died would match timm on the biases alone).
    let classes = model.num_classes();
    let spread = (0..classes)
        .map(|i| (want.data[i] - want.data[classes + i]).abs())
        .fold(0.0f32, f32::max);
    assert!(spread > 0.1, "{name}: image logits differ by {spread} only");
    // The same model again (workspace reused) gives the same answer bit for bit.
    assert_eq!(model.forward(&x.data, shape).unwrap(), got);
    worst
}

fn every_isa_and_two_threads(name: &str) {
    for isa in Isa::available() {
        let k = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
        let d = compare(name, &k);
        println!("{name} ({isa}): max |diff| {d:e}");
    }
    let d = compare(name, &Kernels::new().unwrap().with_threads(2).unwrap());
    println!("{name} (2 threads): max |diff| {d:e}");
}

#[test]
fn mobilenetv3_large_matches_timm_on_every_isa() {
    every_isa_and_two_threads("mnv3_large");
}

#[test]
fn mobilenetv3_small_matches_timm_on_every_isa() {
    every_isa_and_two_threads("mnv3_small");
}

#[test]
fn mobilenetv2_matches_timm_on_every_isa() {
    every_isa_and_two_threads("mnv2");
}

fn detected(name: &str) -> MobileNetConfig {
    let k = Kernels::new().unwrap();
    let m = Network::load(fixture(&format!("{name}.safetensors")), None, &k).unwrap();
    match m.arch() {
        Arch::MobileNet(c) => c.clone(),
        a => panic!("{name} detected as {a}"),
    }
}

#[test]
fn fixture_structures_are_detected() {
    let c = detected("mnv3_large");
    assert_eq!(c.kind, MobileNetKind::V3Large);
    assert_eq!(
        c.blocks.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 2, 3, 4, 2, 3, 1]
    );
    // Stage 2: 5x5, stride 2 first, squeeze-excite on the expanded width.
    let b = &c.blocks[2][0];
    assert_eq!((b.k, b.stride, b.kind), (5, 2, BlockKind::InvertedResidual));
    assert!(b.se.is_some() && b.mid > b.cin);
    assert_eq!((c.head, c.num_classes), (64, 10));
    assert_eq!(c.blocks[6][0].kind, BlockKind::ConvBnAct);

    let c = detected("mnv3_small");
    assert_eq!(c.kind, MobileNetKind::V3Small);
    let b = &c.blocks[0][0];
    assert_eq!(
        (b.kind, b.stride, b.se.is_some(), b.has_skip()),
        (BlockKind::DepthwiseSeparable, 2, true, false)
    );

    let c = detected("mnv2");
    assert_eq!(c.kind, MobileNetKind::V2);
    assert!(
        c.blocks
            .iter()
            .flatten()
            .all(|b| b.se.is_none() && b.k == 3)
    );
    assert_eq!(c.blocks[6][0].kind, BlockKind::InvertedResidual);
}

#[test]
fn full_size_random_models_run_at_224_on_every_family() {
    let k = Kernels::new().unwrap().with_threads(1).unwrap();
    for kind in MobileNetKind::ALL {
        let arch = Arch::named(kind.timm_name()).unwrap();
        let m = Network::random_arch(arch, 5, &k).unwrap();
        let layers = m.layers([1, 3, 224, 224]).unwrap();
        // MobileNetV3-Large: 219 MMACs in the paper (Table 3); V3-Small 56-66, V2 300 (ours count
        // the classifier and every conv; SE and pooling are small).
        let macs: u64 = layers.iter().map(|l| l.flops).sum::<u64>() / 2;
        let want = match kind {
            MobileNetKind::V3Large => 200e6..240e6,
            MobileNetKind::V3Small => 50e6..70e6,
            MobileNetKind::V2 => 290e6..320e6,
        };
        assert!(
            want.contains(&(macs as f64)),
            "{}: {macs} MACs",
            kind.timm_name()
        );
        let last = layers.iter().rfind(|l| l.kind == LayerKind::Pool).unwrap();
        assert_eq!((last.input.h, last.input.w), (7, 7), "{}", kind.timm_name());
        let x = vec![0.25; 3 * 224 * 224];
        let y = m.forward(&x, [1, 3, 224, 224]).unwrap();
        assert!(y.len() == 1000 && y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn a_named_model_that_differs_from_the_checkpoint_is_refused() {
    let k = Kernels::new().unwrap();
    let e = Network::load(
        fixture("mnv3_small.safetensors"),
        Some("mobilenetv3_large_100"),
        &k,
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongVariant { .. }), "{e}");
    let e = Network::load(
        fixture("mnv3_small.safetensors"),
        Some("mobilenetv3_small_100"),
        &k,
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("mobilenetv3_small_100"), "{msg}");
}

#[test]
fn truncated_mobilenet_checkpoints_name_the_missing_tensor() {
    let k = Kernels::new().unwrap();
    let mut sd = StateDict::read(fixture("mnv2.safetensors")).unwrap();
    // Drop one BatchNorm statistic: the loader must name it.
    let key = "blocks.3.1.bn2.running_var";
    let shape = sd.shape(key).unwrap().to_vec();
    sd.take(key, &shape).unwrap();
    let e = Network::from_state_dict(sd, None, &k).unwrap_err();
    assert!(e.to_string().contains("blocks.3.1.bn2.running_var"), "{e}");
}

#[test]
fn odd_and_tiny_inputs_run_and_wrong_channels_are_errors() {
    let k = Kernels::new().unwrap();
    let m = Network::load(fixture("mnv3_small.safetensors"), None, &k).unwrap();
    for (h, w) in [(1, 1), (3, 2), (33, 17)] {
        let y = m.forward(&vec![0.1; 3 * h * w], [1, 3, h, w]).unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{h}x{w}");
    }
    assert!(m.forward(&[0.0; 4 * 8 * 8], [1, 4, 8, 8]).is_err());
}

#[test]
fn each_family_classifies_with_its_own_eval_transform() {
    for kind in MobileNetKind::ALL {
        let t = Arch::named(kind.timm_name()).unwrap().eval_transform();
        // timm's pretrained configs: 224, crop_pct 0.875 (resize the shorter side to 256).
        assert_eq!((t.size, t.crop_pct, t.scale_size()), (224, 0.875, 256));
    }
    let t = Arch::named("repvit_m1_0").unwrap().eval_transform();
    assert_eq!((t.crop_pct, t.scale_size()), (0.95, 235));
}

#[test]
fn unknown_mobilenet_names_are_errors() {
    for name in ["mobilenetv3_huge_100", "mobilenetv2_999"] {
        let e = Arch::named(name).unwrap_err();
        assert!(matches!(e, Error::UnknownVariant { .. }), "{e}");
    }
}

#[test]
fn a_checkpoint_with_a_stage_missing_is_not_a_mobilenet() {
    let k = Kernels::new().unwrap();
    let mut sd = StateDict::read(fixture("mnv2.safetensors")).unwrap();
    let last: Vec<String> = sd
        .keys()
        .filter(|k| k.starts_with("blocks.6."))
        .map(str::to_string)
        .collect();
    for key in last {
        let shape = sd.shape(&key).unwrap().to_vec();
        sd.take(&key, &shape).unwrap();
    }
    let e = Network::from_state_dict(sd, None, &k).unwrap_err();
    assert!(matches!(e, Error::NotMobileNet { .. }), "{e}");
    assert!(e.to_string().contains("6 stages"), "{e}");
}
