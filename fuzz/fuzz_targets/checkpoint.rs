//! A safetensors checkpoint through everything a file reaches: parsing, wrapper and official
//! renaming, family detection (RepViT, MobileNetV3, MobileNetV2), layout and variant detection,
//! folding, packing, and a forward pass (logits and every stage's feature map) on a small input.
//! Any input must give `Ok` or an `Err`, never a panic, an abort or a hang.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mobile_cnn_kernels::Kernels;
use repvit::{Network, StateDict};

fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(|| Kernels::new().and_then(|k| k.with_threads(1)).expect("kernels"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = StateDict::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    let Ok(model) = Network::from_state_dict(sd, None, kernels()) else {
        return;
    };
    let c = model.in_chans();
    let shape = [1, c, 9, 7];
    let x: Vec<f32> = (0..c * 63).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
    let out = model.forward(&x, shape).expect("a loaded model runs on a valid input");
    assert_eq!(out.len(), model.num_outputs());
    let stages: Vec<usize> = (0..model.num_stages()).collect();
    let maps = model
        .forward_features(&x, shape, &stages)
        .expect("feature maps of every stage");
    assert_eq!(maps.len(), stages.len());
});
