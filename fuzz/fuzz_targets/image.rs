//! Image bytes through decoding (JPEG/PNG, truncation check) and timm's eval preprocessing at a
//! small size. The first byte picks `allow_truncated`. Never a panic; outputs have the promised
//! length and are finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repvit::preprocess::{EvalTransform, Rgb8};

fuzz_target!(|data: &[u8]| {
    let Some((&flag, bytes)) = data.split_first() else {
        return;
    };
    let Ok(img) = Rgb8::decode_with(std::path::Path::new("fuzz.img"), bytes, flag & 1 == 1) else {
        return;
    };
    let t = EvalTransform {
        size: 24,
        ..EvalTransform::default()
    };
    let x = t.apply(&img).expect("a decoded image preprocesses");
    assert_eq!(x.len(), 3 * 24 * 24);
    assert!(x.iter().all(|v| v.is_finite()));
});
