//! `.npy` bytes through the reader: `Ok` (element count matching the shape, and float32 results
//! surviving a write/read round trip bit for bit) or an `Err`, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repvit::npy;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.npy");
    let Ok((a, _note)) = npy::parse_converting(path, data) else {
        return;
    };
    assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
    let back = npy::parse(path, &npy::encode(&a.shape, &a.data)).expect("own encoding reads back");
    assert_eq!(back.shape, a.shape);
    assert!(back.data.iter().zip(&a.data).all(|(x, y)| x.to_bits() == y.to_bits()));
});
