//! Checkpoints and inputs as users have them (issue 10), each kind against timm's numbers from
//! fixtures written by `model/tools/make_fixtures.py --loaders`: deployed (fused) checkpoints in
//! timm's and the official repository's names, wrapper key prefixes, headless models, stage feature
//! maps, `.npy` inputs of other dtypes and orders, truncated JPEGs, 16-bit PNGs, and sizes in a
//! crafted file that would overflow.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mobile_cnn_kernels::{Isa, Kernels};
use repvit::preprocess::{EvalTransform, Rgb8};
use repvit::{Error, Layout, RepVit, StateDict, npy};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("repvit-checkpoint-kinds");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_mentions(e: &Error, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
    assert!(!msg.contains('\n'), "{msg:?} is not one line");
}

/// Every ISA this CPU has, one thread each, and the default handle with two threads.
fn all_kernels() -> Vec<Kernels> {
    let mut ks: Vec<Kernels> = Isa::available()
        .into_iter()
        .map(|isa| Kernels::with_isa(isa).unwrap().with_threads(1).unwrap())
        .collect();
    ks.push(Kernels::new().unwrap().with_threads(2).unwrap());
    ks
}

/// `got` against timm's `want` within 1e-4 (relative where |value| > 1); returns the max |diff|.
fn assert_close(what: &str, got: &[f32], want: &npy::Array) -> f32 {
    assert_eq!(got.len(), want.data.len(), "{what}: element count");
    let mut worst = 0.0f32;
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= 1e-4 * w.abs().max(1.0),
            "{what}: element {i}: ours {g}, timm {w}"
        );
        worst = worst.max(d);
    }
    worst
}

fn input(name: &str) -> (npy::Array, [usize; 4]) {
    let x = npy::read(fixture(name)).unwrap();
    let shape = x.shape.clone().try_into().unwrap();
    (x, shape)
}

/// Loads `weights` and compares `forward` on `input` with timm's `reference`, on every ISA.
fn check_against_timm(weights: &Path, input_name: &str, reference: &str) -> RepVit {
    let (x, shape) = input(input_name);
    let want = npy::read(fixture(reference)).unwrap();
    let mut last = None;
    for k in all_kernels() {
        let model = RepVit::load(weights, None, &k).unwrap();
        assert_eq!(want.shape, vec![shape[0], model.num_outputs()]);
        let got = model.forward(&x.data, shape).unwrap();
        let d = assert_close(
            &format!("{} on {}", weights.display(), k.isa()),
            &got,
            &want,
        );
        println!("{} ({}): max |diff| {d:e}", weights.display(), k.isa());
        last = Some(model);
    }
    last.unwrap()
}

#[test]
fn deployed_timm_checkpoints_match_timms_fused_model() {
    for (file, logits) in [
        ("fused_timm.safetensors", "fused_logits.npy"),
        ("fused_legacy_timm.safetensors", "fused_legacy_logits.npy"),
    ] {
        let sd = StateDict::read(fixture(file)).unwrap();
        assert_eq!(Layout::of(&sd), Layout::Deployed);
        let m = check_against_timm(&fixture(file), "loaders_input.npy", logits);
        let c = m.config().unwrap();
        assert_eq!(
            (c.embed_dim.clone(), c.depth.clone(), c.num_classes),
            (vec![16, 24, 32], vec![2, 1, 1], 10)
        );
    }
}

#[test]
fn deployed_official_checkpoint_matches_timms_fused_model() {
    let sd = StateDict::read(fixture("fused_official.safetensors")).unwrap();
    assert!(
        sd.keys().any(|k| k == "head.weight"),
        "classifier.weight renamed"
    );
    assert_eq!(Layout::of(&sd), Layout::Deployed);
    check_against_timm(
        &fixture("fused_official.safetensors"),
        "loaders_input.npy",
        "fused_logits.npy",
    );
}

#[test]
fn deployed_checkpoint_with_named_variant_and_errors() {
    // A deployed full-size layout is checked against the variant by its deployed keys.
    let cfg = repvit::RepVitConfig::variant("m1").unwrap();
    let mut rng = repvit::load::params::RandomParams::new(3);
    let mut sd = StateDict::new("m1-deployed.safetensors");
    use repvit::load::params::Params;
    for (key, shape) in
        repvit::families::repvit::expected_keys_layout(&cfg, Layout::Deployed).unwrap()
    {
        let data = rng.tensor(&key, &shape).unwrap();
        sd.insert(key, shape, data).unwrap();
    }
    assert!(sd.keys().any(|k| k == "head.weight"));
    let k = Kernels::new().unwrap();
    // Fused legacy and non-legacy models look alike: both names load the same file.
    for v in ["m1", "m0_9", "repvit_m1"] {
        let m = RepVit::from_state_dict(sd.clone(), Some(v), &k).unwrap();
        assert_eq!(m.config().unwrap().embed_dim, vec![48, 96, 192, 384]);
    }
    let e = RepVit::from_state_dict(sd.clone(), Some("m1_0"), &k).unwrap_err();
    assert_mentions(
        &e,
        &["m1-deployed.safetensors", "m1_0", "stem.conv1.weight"],
    );
    // A deployed file missing a bias names it.
    let mut broken = sd.clone();
    broken.remove("stages.2.blocks.3.channel_mixer.conv2.bias");
    let e = RepVit::from_state_dict(broken, None, &k).unwrap_err();
    assert_mentions(
        &e,
        &[
            "m1-deployed.safetensors",
            "stages.2.blocks.3.channel_mixer.conv2.bias",
            "[192]",
        ],
    );
}

/// The tensors of a fixture as (key, dtype, shape, bytes) rows.
type Rows = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn rows(name: &str) -> Rows {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect()
}

fn write_rows(name: &str, rows: &Rows) -> PathBuf {
    let views: Vec<(String, TensorView<'_>)> = rows
        .iter()
        .map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let path = tmp(name);
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

#[test]
fn wrapper_prefixes_are_removed_like_timms_loader() {
    let k = Kernels::new().unwrap();
    let (x, shape) = input("legacy_input.npy");
    let want = npy::read(fixture("legacy_logits.npy")).unwrap();
    for (file, base) in [
        ("legacy.safetensors", rows("legacy.safetensors")),
        (
            "fused_official.safetensors",
            rows("fused_official.safetensors"),
        ),
    ] {
        for prefix in [
            "module.",
            "model.",
            "state_dict.",
            "state_dict.module.",
            "model_ema.",
        ] {
            let mut r = base.clone();
            for row in &mut r {
                row.0 = format!("{prefix}{}", row.0);
            }
            let p = write_rows(&format!("wrapped-{prefix}{file}"), &r);
            let sd = StateDict::read(&p).unwrap();
            assert_eq!(sd.wrapper(), prefix);
            let m = RepVit::load(&p, None, &k).unwrap();
            if file == "legacy.safetensors" {
                assert_close(prefix, &m.forward(&x.data, shape).unwrap(), &want);
            } else {
                assert_eq!(m.num_classes(), 10);
            }
        }
    }
    // Unwrapped files are untouched.
    assert_eq!(
        StateDict::read(fixture("legacy.safetensors"))
            .unwrap()
            .wrapper(),
        ""
    );
}

#[test]
fn wrapper_prefix_errors_stay_clear() {
    let k = Kernels::new().unwrap();
    // Only some keys wrapped (the stem's; safetensors' iteration order is not fixed, so pick them
    // by name): nothing is removed, and the error says what was found.
    let mut r = rows("legacy.safetensors");
    for row in r.iter_mut().filter(|row| row.0.starts_with("stem.")) {
        row.0 = format!("module.{}", row.0);
    }
    let p = write_rows("half-wrapped.safetensors", &r);
    let e = RepVit::load(&p, None, &k).unwrap_err();
    assert_mentions(&e, &["half-wrapped.safetensors", "no tensor", "`module`"]);
    // A wrapper around something else: the removed prefix and the roots found are named.
    let mut r = rows("legacy.safetensors");
    for (i, row) in r.iter_mut().enumerate() {
        row.0 = format!("model.encoder.layer{i}.weight");
    }
    let p = write_rows("other-model.safetensors", &r);
    let e = RepVit::load(&p, None, &k).unwrap_err();
    assert!(matches!(e, Error::NotRepVit { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "other-model.safetensors",
            "stem.conv1.weight",
            "model.encoder.",
        ],
    );
}

#[test]
fn headless_checkpoints_give_timms_pooled_features() {
    for file in ["headless.safetensors", "headless_fused.safetensors"] {
        let m = check_against_timm(&fixture(file), "loaders_input.npy", "headless_features.npy");
        assert_eq!((m.num_classes(), m.num_outputs()), (0, 32));
        assert!(m.config().unwrap().to_string().contains("headless"));
    }
    // A head half there is not headless.
    let mut r = rows("headless.safetensors");
    r.push(("head.head.l.bias".into(), Dtype::F32, vec![3], vec![0; 12]));
    let p = write_rows("half-head.safetensors", &r);
    let e = RepVit::load(&p, None, &Kernels::new().unwrap()).unwrap_err();
    assert_mentions(
        &e,
        &[
            "half-head.safetensors",
            "head.head.l.bias",
            "head.head.l.weight",
        ],
    );
}

#[test]
fn stage_feature_maps_match_timms_forward_intermediates() {
    let (x, shape) = input("small_features_input.npy");
    let want: Vec<npy::Array> = (0..4)
        .map(|i| npy::read(fixture(&format!("small_features_stage{i}.npy"))).unwrap())
        .collect();
    for k in all_kernels() {
        let m = RepVit::load(fixture("small.safetensors"), None, &k).unwrap();
        let maps = m.forward_features(&x.data, shape, &[0, 1, 2, 3]).unwrap();
        for (i, f) in maps.iter().enumerate() {
            assert_eq!(f.stage, i);
            assert_eq!(f.shape.to_vec(), want[i].shape, "stage {i}");
            let d = assert_close(&format!("stage {i} on {}", k.isa()), &f.data, &want[i]);
            println!("stage {i} ({}): max |diff| {d:e}", k.isa());
        }
        // Any order and repeats; a subset runs only what it needs and gives the same numbers.
        let some = m.forward_features(&x.data, shape, &[2, 0, 2]).unwrap();
        assert_eq!(
            some.iter().map(|f| f.stage).collect::<Vec<_>>(),
            vec![2, 0, 2]
        );
        assert_eq!(some[0], maps[2]);
        assert_eq!(some[1], maps[0]);
    }
}

#[test]
fn stage_feature_map_shapes_and_errors() {
    let k = Kernels::new().unwrap();
    let m = RepVit::load(fixture("small.safetensors"), None, &k).unwrap();
    // Strides 4, 8, 16, 32 with ceil rounding at every halving, for odd and tiny sizes.
    for (h, w) in [(1, 1), (5, 3), (32, 32), (33, 65)] {
        let x = vec![0.25; 2 * 3 * h * w];
        let maps = m.forward_features(&x, [2, 3, h, w], &[0, 1, 2, 3]).unwrap();
        let (mut eh, mut ew) = (h, w);
        for (i, f) in maps.iter().enumerate() {
            let halvings = if i == 0 { 2 } else { 1 };
            for _ in 0..halvings {
                (eh, ew) = (eh.div_ceil(2), ew.div_ceil(2));
            }
            assert_eq!(
                f.shape,
                [2, m.config().unwrap().embed_dim[i], eh, ew],
                "{h}x{w} stage {i}"
            );
            assert_eq!(f.data.len(), f.shape.iter().product::<usize>());
        }
    }
    let x = vec![0.0; 3 * 8 * 8];
    let e = m.forward_features(&x, [1, 3, 8, 8], &[4]).unwrap_err();
    assert_mentions(&e, &["feature stages", "below 4", "[4]"]);
    let e = m.forward_features(&x, [1, 3, 8, 8], &[]).unwrap_err();
    assert_mentions(&e, &["feature stages", "none"]);
    let e = m.forward_features(&x, [1, 3, 8, 9], &[0]).unwrap_err();
    assert_mentions(&e, &["input batch"]);
}

#[test]
fn npy_inputs_of_other_dtypes_and_orders_are_converted() {
    let k = Kernels::new().unwrap();
    let m = RepVit::load(fixture("legacy.safetensors"), None, &k).unwrap();
    let want = npy::read(fixture("npy_logits.npy")).unwrap();
    let mut first: Option<Vec<f32>> = None;
    for (file, note) in [
        ("npy_f64.npy", "converted float64 to float32, C order"),
        ("npy_f16.npy", "converted float16 to float32, C order"),
        (
            "npy_be.npy",
            "converted float32 (big-endian) to float32, C order",
        ),
        (
            "npy_fortran.npy",
            "converted float32 (Fortran order) to float32, C order",
        ),
    ] {
        let (x, got_note) = npy::read_converting(fixture(file)).unwrap();
        assert_eq!(got_note.as_deref(), Some(note), "{file}");
        assert_eq!(x.shape, vec![1, 3, 32, 32]);
        // All four hold the same values (exact in float16), so they convert to the same tensor.
        match &first {
            None => first = Some(x.data.clone()),
            Some(f) => assert_eq!(f, &x.data, "{file}"),
        }
        let got = m.forward(&x.data, [1, 3, 32, 32]).unwrap();
        assert_close(file, &got, &want);
    }
    // Little-endian float32 in C order needs no conversion.
    let (_, note) = npy::read_converting(fixture("loaders_input.npy")).unwrap();
    assert_eq!(note, None);
}

/// A `.npy` with `header` (padded) and `body`.
fn npy_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn npy_bad_files_are_clear_errors() {
    let p = Path::new("bad.npy");
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "overflowing shape",
            npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }",
                &[],
            ),
            vec!["bad.npy", "fits in memory"],
        ),
        (
            "header longer than the file",
            {
                let mut b = npy_bytes(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 4],
                );
                b[8] = 0xFF;
                b[9] = 0xFF;
                b
            },
            vec!["bad.npy", "65535-byte header"],
        ),
        (
            "version 2 header length 2^32 - 1",
            {
                let mut b = b"\x93NUMPY\x02\x00\xFF\xFF\xFF\xFF".to_vec();
                b.extend_from_slice(&[b' '; 64]);
                b
            },
            vec!["bad.npy", "4294967295-byte header"],
        ),
        (
            "integer dtype",
            npy_bytes(
                "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
            vec!["bad.npy", "float32, float64 or float16", "'<i8'"],
        ),
        (
            "short data",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                &[0; 12],
            ),
            vec!["bad.npy", "16 data bytes", "12 bytes"],
        ),
        (
            "float64 beyond float32",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                &1e300f64.to_le_bytes(),
            ),
            vec!["bad.npy", "float32's range", "1e300"],
        ),
        (
            "negative shape",
            npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                &[],
            ),
            vec!["bad.npy", "non-negative"],
        ),
        (
            "not a dict",
            npy_bytes("[1, 2]", &[]),
            vec!["bad.npy", "dict"],
        ),
        (
            // Found by the npy fuzz target: py_literal backtracks exponentially on deep nesting
            // (this took 30 s to refuse before the depth check).
            "brackets nested 16 deep",
            npy_bytes(
                "[[[[[[[[[[[[[[[[{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                &[0; 12],
            ),
            vec!["bad.npy", "at most 4 deep", "18 levels"],
        ),
        (
            "version 9",
            b"\x93NUMPY\x09\x00\x00\x00".to_vec(),
            vec!["bad.npy", "version 9.0"],
        ),
    ];
    for (what, bytes, parts) in cases {
        let e = npy::parse(p, &bytes).unwrap_err();
        println!("{what}: {e}");
        assert_mentions(&e, &parts);
    }
}

#[test]
fn truncated_jpeg_is_an_error_naming_the_file_unless_allowed() {
    let cut = fixture("image_64x48_truncated.jpg");
    let e = Rgb8::open(&cut).unwrap_err();
    assert_mentions(
        &e,
        &[
            "image_64x48_truncated.jpg",
            "truncated at byte 1591",
            "--allow-truncated",
        ],
    );
    let img = Rgb8::open_with(&cut, true).unwrap();
    assert_eq!((img.width, img.height), (64, 48));
    // The complete JPEG decodes; the part before the cut decodes to the same pixels.
    let full = Rgb8::open(fixture("image_64x48.jpg")).unwrap();
    assert_eq!((full.width, full.height), (64, 48));
    // (The first 8 rows: the bottom rows of a 16-row MCU band also see the next band's chroma.)
    let rows = 8 * 64 * 3;
    assert_eq!(img.data[..rows], full.data[..rows]);
    // Every cut of the JPEG inside its data is refused; trailing bytes after EOI are fine.
    let bytes = std::fs::read(fixture("image_64x48.jpg")).unwrap();
    for cut_at in [bytes.len() - 1, bytes.len() - 2, bytes.len() * 3 / 4, 700] {
        let r = Rgb8::decode(Path::new("cut.jpg"), &bytes[..cut_at]);
        assert!(r.is_err(), "cut at {cut_at} of {} accepted", bytes.len());
    }
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"trailing data\xFF\xD8");
    assert!(Rgb8::decode(Path::new("trailing.jpg"), &trailing).is_ok());
    // In a batch, the flag applies to every file.
    let e = EvalTransform::default()
        .batch(&[fixture("image_64x48.png"), cut.clone()])
        .unwrap_err();
    assert_mentions(&e, &["image_64x48_truncated.jpg"]);
    assert!(EvalTransform::default().batch_with(&[cut], true).is_ok());
}

#[test]
fn png_16_bit_is_rounded_to_8_bits_not_clipped() {
    // Documented choice (README, `classify --help`): v16 -> round(v16 / 257).
    let (w, h) = (4u32, 2u32);
    let values: Vec<u16> = (0..w * h * 3).map(|i| (i * 2731 + 77) as u16).collect();
    let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(w, h, values.clone()).unwrap();
    let p = tmp("rgb16.png");
    img.save(&p).unwrap();
    let rgb = Rgb8::open(&p).unwrap();
    let want: Vec<u8> = values
        .iter()
        .map(|&v| ((f64::from(v) / 257.0).round()) as u8)
        .collect();
    assert_eq!(rgb.data, want);
    // PIL keeps the high byte of 16-bit RGB: at most one level from ours (its greyscale clip to
    // 255 is the case that differs a lot).
    for (&ours, &v) in rgb.data.iter().zip(&values) {
        assert!(ours.abs_diff((v >> 8) as u8) <= 1, "{v}: {ours}");
    }
    assert!(
        rgb.data
            .iter()
            .zip(&values)
            .any(|(&o, &v)| o != (v >> 8) as u8)
    );
}

/// Builds a checkpoint from the small fixture with `edit` applied to its rows.
fn crafted(name: &str, source: &str, edit: impl FnOnce(&mut Rows)) -> Error {
    let mut r = rows(source);
    edit(&mut r);
    let p = write_rows(name, &r);
    match RepVit::load(&p, None, &Kernels::new().unwrap()) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => e,
    }
}

fn set_shape(r: &mut Rows, key: &str, shape: Vec<usize>) {
    let row = r
        .iter_mut()
        .find(|row| row.0 == key)
        .unwrap_or_else(|| panic!("{key}"));
    row.2 = shape;
    row.3 = Vec::new();
}

#[test]
fn absurd_sizes_in_a_file_are_one_clear_error() {
    let big = 1usize << 63;
    // The issue's case: a zero-byte mixer whose shape implies mlp_ratio 2^63.
    let e = crafted("mlp-ratio.safetensors", "small.safetensors", |r| {
        set_shape(
            r,
            "stages.0.blocks.0.channel_mixer.conv1.c.weight",
            vec![big, 0, 1, 1],
        );
    });
    assert_mentions(
        &e,
        &[
            "mlp-ratio.safetensors",
            "stages.0.blocks.0.channel_mixer.conv1.c.weight",
            "exceeds the bound 65536",
        ],
    );
    let cases: Vec<(&str, &str, &str, Vec<usize>, &str)> = vec![
        (
            "in-chans",
            "small.safetensors",
            "stem.conv1.c.weight",
            vec![0, big, 3, 3],
            "input channels",
        ),
        (
            "stem-width",
            "small.safetensors",
            "stem.conv2.c.weight",
            vec![big, 0, 3, 3],
            "stem width",
        ),
        (
            "stage-width",
            "small.safetensors",
            "stages.1.downsample.channel_downsample.c.weight",
            vec![big, 0, 1, 1],
            "stage width",
        ),
        (
            "classes",
            "small.safetensors",
            "head.head.l.weight",
            vec![big, 0],
            "class count",
        ),
        (
            "deployed-classes",
            "fused_timm.safetensors",
            "head.weight",
            vec![big, 0],
            "class count",
        ),
        (
            "deployed-mixer",
            "fused_timm.safetensors",
            "stages.0.blocks.0.channel_mixer.conv1.weight",
            vec![1 << 40, 0, 1, 1],
            "exceeds the bound",
        ),
        (
            "zero-width",
            "small.safetensors",
            "stages.1.downsample.channel_downsample.c.weight",
            vec![0, 16, 1, 1],
            "is 0",
        ),
        (
            "ratio-not-integer",
            "small.safetensors",
            "stages.0.blocks.0.channel_mixer.conv1.c.weight",
            vec![17, 0, 1, 1],
            "not a multiple",
        ),
    ];
    for (name, source, key, shape, what) in cases {
        let file = format!("{name}.safetensors");
        let e = crafted(&file, source, |r| set_shape(r, key, shape));
        println!("{e}");
        assert_mentions(&e, &[&file, key, what]);
    }
}

#[test]
fn shapes_whose_product_overflows_are_refused_by_the_reader() {
    // safetensors multiplies shapes with checked arithmetic: [8, 2^63, 0, 3] has no elements but
    // overflows on the way; the file is refused with one error naming it, not a panic.
    let header = r#"{"stem.conv1.c.weight":{"dtype":"F32","shape":[8,9223372036854775808,0,3],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let e = StateDict::from_bytes("overflow.safetensors", &bytes).unwrap_err();
    assert_mentions(
        &e,
        &["overflow.safetensors", "not a valid safetensors file"],
    );
}

/// Runs the `repvit` binary (through `$REPVIT_TEST_RUNNER` when set, as in classify.rs).
fn repvit(args: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_repvit");
    let mut cmd = match std::env::var("REPVIT_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut parts = r.split_whitespace();
            let mut c = Command::new(parts.next().unwrap());
            c.args(parts).arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    cmd.args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn infer_writes_one_npy_per_feature_stage() {
    let out = tmp("feats.npy");
    let o = repvit(&[
        "infer",
        "--weights",
        s(&fixture("small.safetensors")),
        "--input",
        s(&fixture("small_features_input.npy")),
        "--output",
        s(&out),
        "--features",
        "3,1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for i in [1, 3] {
        let got = npy::read(tmp(&format!("feats_stage{i}.npy"))).unwrap();
        let want = npy::read(fixture(&format!("small_features_stage{i}.npy"))).unwrap();
        assert_eq!(got.shape, want.shape);
        assert_close(&format!("stage {i}"), &got.data, &want);
        assert!(err.contains(&format!("feats_stage{i}.npy")), "{err}");
    }
    assert!(!tmp("feats_stage0.npy").exists());
    let o = repvit(&[
        "infer",
        "--weights",
        s(&fixture("small.safetensors")),
        "--input",
        s(&fixture("small_features_input.npy")),
        "--output",
        s(&out),
        "--features",
        "0,7",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("below 4"), "{err}");
}

#[test]
fn infer_converts_npy_inputs_with_a_note_and_writes_headless_features() {
    let out = tmp("f64-logits.npy");
    let o = repvit(&[
        "infer",
        "--weights",
        s(&fixture("legacy.safetensors")),
        "--input",
        s(&fixture("npy_f64.npy")),
        "--output",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("npy_f64.npy: converted float64 to float32"),
        "{err}"
    );
    assert_close(
        "f64 via infer",
        &npy::read(&out).unwrap().data,
        &npy::read(fixture("npy_logits.npy")).unwrap(),
    );
    let out = tmp("headless-features.npy");
    let o = repvit(&[
        "infer",
        "--weights",
        s(&fixture("headless_fused.safetensors")),
        "--input",
        s(&fixture("loaders_input.npy")),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = npy::read(&out).unwrap();
    assert_eq!(got.shape, vec![2, 32]);
    assert_close(
        "headless via infer",
        &got.data,
        &npy::read(fixture("headless_features.npy")).unwrap(),
    );
}

#[test]
fn classify_refuses_truncated_jpegs_unless_allowed_and_headless_models() {
    let weights = fixture("small.safetensors");
    let cut = fixture("image_64x48_truncated.jpg");
    let o = repvit(&["classify", "--weights", s(&weights), s(&cut)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("image_64x48_truncated.jpg") && err.contains("truncated"),
        "{err}"
    );
    let o = repvit(&[
        "classify",
        "--weights",
        s(&weights),
        "--allow-truncated",
        s(&cut),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("image_64x48_truncated.jpg"));
    let o = repvit(&[
        "classify",
        "--weights",
        s(&fixture("headless.safetensors")),
        s(&fixture("image_64x48.jpg")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("headless") && !err.contains("panicked"),
        "{err}"
    );
    let help = repvit(&["classify", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("16-bit PNG") && help.contains("257"),
        "{help}"
    );
}

#[test]
fn fuzz_seed_checkpoints_of_many_shapes_load_and_agree_across_kinds() {
    // fuzz/seeds/checkpoint (fuzz/make_seeds.py, timm): 7 structures (1 to 4 stages, depths 0 to
    // 3, legacy, one or two heads, headless, mlp_ratio 3, 1 input channel), each saved trained and
    // deployed, some also with official names, a `module.` wrapper or f16/bf16 tensors; and
    // MobileNetV3-Large/-Small and V2 (`mnv_<kind>*`). Every file loads; the kinds of one
    // structure give the same outputs (half precision and headless files aside).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/checkpoint");
    let k = Kernels::new().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 14, "{} seeds", files.len());
    let mut reference: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        // `c4_fused_official.safetensors` is structure `c4`; `mnv_v2_half...` is `mnv_v2`.
        let tokens = if name.starts_with("mnv_") { 2 } else { 1 };
        let structure = name.split('_').take(tokens).collect::<Vec<_>>().join("_");
        let m = RepVit::load(f, None, &k).unwrap_or_else(|e| panic!("{e}"));
        let c = m.in_chans();
        let x: Vec<f32> = (0..2 * c * 11 * 13)
            .map(|i| (i % 17) as f32 / 8.0 - 1.0)
            .collect();
        let out = m.forward(&x, [2, c, 11, 13]).unwrap();
        assert_eq!(out.len(), 2 * m.num_outputs());
        assert!(out.iter().all(|v| v.is_finite()), "{name}");
        let stages: Vec<usize> = (0..m.num_stages()).collect();
        if !stages.is_empty() {
            let maps = m.forward_features(&x, [2, c, 11, 13], &stages).unwrap();
            assert_eq!(maps.len(), stages.len());
        }
        if name.contains("half") || name.contains("headless") {
            continue;
        }
        match reference.get(&structure) {
            None => {
                reference.insert(structure, out);
            }
            Some(r) => {
                for (i, (a, b)) in out.iter().zip(r).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{name}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
    assert_eq!(reference.len(), 10, "{:?}", reference.keys());
}
