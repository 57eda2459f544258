//! The per-layer machinery: forward, profile and single steps run the same code and agree.

use std::time::Duration;

use mobile_cnn_kernels::Kernels;
use repvit::{LayerKind, RepVit, RepVitConfig, distinct_layers};

fn small() -> RepVit {
    let cfg = RepVitConfig::custom(&[16, 32, 48], &[2, 1, 2], false, 10, true).unwrap();
    RepVit::random(&cfg, 3, &Kernels::new().unwrap().with_threads(1).unwrap()).unwrap()
}

#[test]
fn m1_0_steps_have_timm_names_shapes_and_the_papers_macs() {
    let k = Kernels::new().unwrap().with_threads(1).unwrap();
    let m = RepVit::random(&RepVitConfig::variant("m1_0").unwrap(), 1, &k).unwrap();
    let layers = m.layers([1, 3, 224, 224]).unwrap();
    assert_eq!(layers.len(), m.num_layers());
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names[..3], ["input", "stem.conv1", "stem.conv2"]);
    assert_eq!(names[names.len() - 2..], ["global_pool", "head"]);
    let conv1 = layers
        .iter()
        .find(|l| l.name == "stages.2.blocks.5.channel_mixer.conv1")
        .unwrap();
    assert_eq!(conv1.kind, LayerKind::Pointwise);
    assert_eq!(
        (conv1.input.h, conv1.input.c, conv1.output.c),
        (14, 224, 448)
    );
    assert_eq!(conv1.flops, 2 * 14 * 14 * 224 * 448);
    assert_eq!(conv1.key, "pointwise_14x14_224to448_gelu");
    // Blocks 0, 2, 4 ... have squeeze-excite, the pre-block of a downsample has none.
    assert!(names.contains(&"stages.2.blocks.4.se"));
    assert!(!names.contains(&"stages.2.blocks.5.se"));
    assert!(!names.iter().any(|n| n.contains("pre_block.se")));
    let sd = layers
        .iter()
        .find(|l| l.name == "stages.1.downsample.spatial_downsample")
        .unwrap();
    assert_eq!(
        (sd.input.h, sd.output.h, sd.kind),
        (56, 28, LayerKind::DwConv)
    );
    // Paper: 1.106 GMACs for M1.0 (fused). Our count adds pooling and SE, a fraction of a percent.
    let gmacs = layers.iter().map(|l| l.flops).sum::<u64>() as f64 / 2e9;
    assert!((gmacs - 1.106).abs() < 0.01, "{gmacs} GMACs");
    // Distinct configurations: far fewer than steps, counts add up, keys unique.
    let d = distinct_layers(&layers);
    assert!(
        d.len() < layers.len() / 2,
        "{} of {}",
        d.len(),
        layers.len()
    );
    assert_eq!(d.iter().map(|x| x.count).sum::<usize>(), layers.len());
    let mut keys: Vec<&str> = d.iter().map(|x| layers[x.index].key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), d.len());
}

#[test]
fn profile_layer_bench_and_forward_agree() {
    let m = small();
    let shape = [2, 3, 40, 36];
    let mut b = m.layer_bench(shape).unwrap();
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let want = m.forward(&x, shape).unwrap();
    assert_eq!(b.logits(), &want[..]);
    // Steps run one by one, in order, give the same logits as a forward pass.
    for i in 0..b.layers().len() {
        b.run_layer(i).unwrap();
    }
    assert_eq!(b.logits(), &want[..]);
    let mut times = vec![Duration::ZERO; m.num_layers()];
    b.profile(&mut times).unwrap();
    assert_eq!(b.logits(), &want[..]);
    assert!(times.iter().any(|t| !t.is_zero()));
    let mut out = vec![0.0; 2 * 10];
    let mut times2 = vec![Duration::ZERO; m.num_layers()];
    m.profile_into(&x, shape, &mut out, &mut times2).unwrap();
    assert_eq!(out, want);
    // A step index out of range and a times buffer of the wrong length are errors.
    let e = b.run_layer(b.layers().len()).unwrap_err().to_string();
    assert!(e.contains("layer index"), "{e}");
    let e = b.profile(&mut times[1..]).unwrap_err().to_string();
    assert!(e.contains("one per layer step"), "{e}");
    let e = m
        .profile_into(&x, shape, &mut out, &mut times[1..])
        .unwrap_err()
        .to_string();
    assert!(e.contains("one per layer step"), "{e}");
    assert!(m.layers([1, 4, 32, 32]).is_err());
}
