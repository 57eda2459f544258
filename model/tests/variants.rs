//! Every published variant as data: key lists, detection from shapes, random models that run.

use mobile_cnn_kernels::{Isa, Kernels};
use repvit::DW_PARALLEL_MACS;
use repvit::VARIANTS;
use repvit::families::repvit::{expected_keys, random_state_dict};
use repvit::{Arch, BatchSplit, LayerKind, Network, RepVit, RepVitConfig, StateDict};

#[test]
fn every_variant_is_detected_from_its_shapes() {
    for v in &VARIANTS {
        let cfg = RepVitConfig::from_variant(v);
        let sd = random_state_dict(&cfg, 1).unwrap();
        let found = repvit::families::repvit::detect_config(&sd).unwrap();
        assert_eq!(found, cfg, "{}", v.name);
        assert_eq!(
            repvit::families::repvit::resolve_config(&sd, Some(&format!("repvit_{}", v.name)))
                .unwrap(),
            cfg
        );
    }
}

#[test]
fn key_counts_match_timm() {
    // Counted from timm 1.0.31 state_dicts without num_batches_tracked.
    let c = RepVitConfig::variant("m1_0").unwrap();
    let keys = expected_keys(&c).unwrap();
    let params: usize = keys.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert!(keys.iter().any(
        |(k, s)| k == "stages.3.downsample.channel_downsample.c.weight"
            && s == &vec![448, 224, 1, 1]
    ));
    assert!(
        keys.iter()
            .any(|(k, s)| k == "stages.0.blocks.0.se.fc1.weight" && s == &vec![16, 56, 1, 1])
    );
    assert!(
        !keys
            .iter()
            .any(|(k, _)| k.starts_with("stages.0.blocks.1.se."))
    );
    assert!(!keys.iter().any(|(k, _)| k.contains("pre_block.se.")));
    // timm 1.0.31: repvit_m1_0().state_dict(): 605 keys besides num_batches_tracked, 7_359_412 floats.
    assert_eq!(
        (keys.len(), params),
        (605, 7_359_412),
        "m1_0 keys and float parameters"
    );
}

#[test]
fn random_models_of_every_variant_run() {
    let k = Kernels::new().unwrap().with_threads(2).unwrap();
    for v in &VARIANTS {
        let cfg = RepVitConfig::from_variant(v);
        let model = RepVit::random(&cfg, 5, &k).unwrap();
        let x: Vec<f32> = (0..2 * 3 * 48 * 40)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect();
        let y = model.forward(&x, [2, 3, 48, 40]).unwrap();
        assert_eq!(y.len(), 2000);
        assert!(y.iter().all(|v| v.is_finite()), "{}", v.name);
    }
}

#[test]
fn random_equals_loading_its_state_dict_and_isas_agree() {
    let cfg = RepVitConfig::custom(&[16, 24, 40], &[2, 0, 3], false, 7, true).unwrap();
    let x: Vec<f32> = (0..3 * 3 * 29 * 35)
        .map(|i| ((i * 31 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let shape = [3, 3, 29, 35];
    let mut outs = Vec::new();
    for isa in Isa::available() {
        let k = Kernels::with_isa(isa).unwrap();
        let a = RepVit::random(&cfg, 9, &k)
            .unwrap()
            .forward(&x, shape)
            .unwrap();
        let bytes = random_state_dict(&cfg, 9)
            .unwrap()
            .to_safetensors()
            .unwrap();
        let sd = StateDict::from_bytes("random.safetensors", &bytes).unwrap();
        let b = RepVit::from_state_dict(sd, None, &k)
            .unwrap()
            .forward(&x, shape)
            .unwrap();
        assert_eq!(a, b, "{isa}");
        outs.push((isa, a));
    }
    let (_, first) = &outs[0];
    for (isa, o) in &outs[1..] {
        for (p, q) in first.iter().zip(o) {
            assert!(
                (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                "{isa}: {p} vs {q}"
            );
        }
    }
}

#[test]
fn batch_items_are_independent_and_threads_agree() {
    let cfg = RepVitConfig::custom(&[16, 32], &[1, 2], true, 5, false).unwrap();
    let k1 = Kernels::new().unwrap().with_threads(1).unwrap();
    let m = RepVit::random(&cfg, 2, &k1).unwrap();
    let img = 3 * 20 * 24;
    let x: Vec<f32> = (0..2 * img)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) / 9.0)
        .collect();
    let both = m.forward(&x, [2, 3, 20, 24]).unwrap();
    let first = m.forward(&x[..img], [1, 3, 20, 24]).unwrap();
    let second = m.forward(&x[img..], [1, 3, 20, 24]).unwrap();
    for (p, q) in both.iter().zip(first.iter().chain(&second)) {
        assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
    }
    let m2 = m.with_threads(2).unwrap();
    assert_eq!(m2.forward(&x, [2, 3, 20, 24]).unwrap(), both);
}

/// Asserts that `got` and `want` hold the same floats bit for bit; on failure names the first
/// differing element and how many differ (not the whole vectors).
#[track_caller]
fn assert_same_bits(got: &[f32], want: &[f32], ctx: std::fmt::Arguments) {
    assert_eq!(got.len(), want.len(), "{ctx}: lengths");
    let differ = got
        .iter()
        .zip(want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{ctx}: {differ} of {} outputs differ, first at {i}: {} vs {}",
            got.len(),
            got[i],
            want[i]
        );
    }
}

/// Asserts that `make(kernels)` gives the same bits on batch `x` of NCHW `shape` whatever the
/// thread count (1, 2, 3, 5: more threads than bands of some layers, and counts that divide no
/// band count), the batch split, the batch size (each image alone, the first two images) and
/// whether the workspace is fresh or reused, on every ISA this CPU has. Also checks that the model
/// has depthwise steps large enough to run their row bands in parallel, with and without the
/// channel sums of a squeeze-excite, so the banded paths are the ones under test.
fn assert_threads_and_splits_agree(
    make: impl Fn(&Kernels) -> Network,
    x: &[f32],
    shape: [usize; 4],
) {
    let [n, c, h, w] = shape;
    let img = c * h * w;
    for isa in Isa::available() {
        let k1 = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
        let m1 = make(&k1);
        let outs = m1.num_outputs();
        let layers = m1.layers(shape).unwrap();
        let parallel_dw = |sums: bool| {
            layers.iter().any(|l| {
                l.kind == LayerKind::DwConv
                    && l.key.ends_with("_sums") == sums
                    && l.flops >= 2 * DW_PARALLEL_MACS
            })
        };
        assert!(
            parallel_dw(true) && parallel_dw(false),
            "{}: the shape must give parallel depthwise steps with and without sums",
            m1.name()
        );
        let want = m1.forward(x, shape).unwrap();
        assert!(want.iter().all(|v| v.is_finite()));
        for i in 0..n {
            let one = m1
                .forward(&x[i * img..(i + 1) * img], [1, c, h, w])
                .unwrap();
            assert_same_bits(
                &one,
                &want[i * outs..(i + 1) * outs],
                format_args!("{isa}: image {i} alone differs from it in the batch"),
            );
        }
        let mut m = m1;
        for threads in [2, 3, 5] {
            m = m.with_threads(threads).unwrap();
            for split in [BatchSplit::Layers, BatchSplit::Images] {
                m = m.with_batch_split(split);
                // Twice: the second call reuses the pooled buffers.
                for call in 0..2 {
                    let got = m.forward(x, shape).unwrap();
                    assert_same_bits(
                        &got,
                        &want,
                        format_args!(
                            "{} {isa}: {threads} threads, {split:?}, call {call}",
                            m.name()
                        ),
                    );
                }
                let two = m.forward(&x[..2 * img], [2, c, h, w]).unwrap();
                assert_same_bits(
                    &two,
                    &want[..2 * outs],
                    format_args!("{} {isa}: {threads} threads, {split:?}, batch 2", m.name()),
                );
                let one = m.forward(&x[img..2 * img], [1, c, h, w]).unwrap();
                assert_same_bits(
                    &one,
                    &want[outs..2 * outs],
                    format_args!("{} {isa}: {threads} threads, image 1 alone", m.name()),
                );
            }
        }
    }
}

/// Every parallel path of RepViT gives the same bits: the stem's row bands, the depthwise row
/// bands (with the squeeze-excite's channel sums added band by band in a fixed order), the
/// pointwise blocks, a batch run as one group of images per thread or with each layer split, and
/// each image alone. The configuration has SE blocks, a downsample and odd sizes (bands of unequal
/// height); 188 x 180 makes the first stage's token mixers (47 x 45 x 16) large enough to split.
#[test]
fn thread_count_and_batch_split_give_identical_bits() {
    let cfg = RepVitConfig::custom(&[16, 24, 40], &[2, 1, 2], true, 11, true).unwrap();
    let (n, h, w) = (3, 188, 180);
    let x: Vec<f32> = (0..n * 3 * h * w)
        .map(|i| ((i * 37 % 41) as f32 - 20.0) / 13.0)
        .collect();
    assert_threads_and_splits_agree(|k| RepVit::random(&cfg, 4, k).unwrap(), &x, [n, 3, h, w]);
}

/// The same for MobileNetV3-Large (3x3 and 5x5 depthwise, stride 1 and 2, squeeze-excite after
/// the 5x5 ones) at 100 x 96: its 5x5 SE layers at 13 x 12 x 120 split into row bands.
#[test]
fn mobilenet_thread_count_and_batch_split_give_identical_bits() {
    let arch = Arch::named("mobilenetv3_large_100").unwrap();
    let (n, h, w) = (3, 100, 96);
    let x: Vec<f32> = (0..n * 3 * h * w)
        .map(|i| ((i * 29 % 43) as f32 - 21.0) / 11.0)
        .collect();
    assert_threads_and_splits_agree(
        |k| Network::random_arch(arch.clone(), 6, k).unwrap(),
        &x,
        [n, 3, h, w],
    );
}
