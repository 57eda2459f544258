//! `repvit classify`: the preprocessing against timm's eval transform (fixtures written by
//! `model/tools/make_image_fixtures.py`), bad images, and the command end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use repvit::preprocess::{EvalTransform, IMAGENET_MEAN, IMAGENET_STD, Rgb8, imagenet_class};
use repvit::{Error, npy};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("repvit-classify");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const IMAGES: [&str; 3] = ["64x48", "300x260", "40x30_grey"];

/// Largest difference from timm allowed, in normalised units (one 8-bit level is 1 / 255 / std,
/// 0.0171 to 0.0175). Our resampler follows PIL's fixed-point arithmetic, so on these PNGs the
/// measured difference is 0; one level is allowed for other builds of the same arithmetic.
/// The smallest plausible mistake measured by the fixture script moves the output by 0.47
/// (bilinear instead of bicubic: 0.47; no antialiasing: 0.48; crop off by one pixel: 4.2;
/// mean/std 0.5: 1.6), 27 times this tolerance.
const TOL: f32 = 0.018;

fn normalise(v: u8, c: usize) -> f32 {
    (f32::from(v) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
}

#[test]
fn preprocessing_matches_timm() {
    let t = EvalTransform::default();
    for name in IMAGES {
        let img = Rgb8::open(fixture(&format!("image_{name}.png"))).unwrap();
        let want = Rgb8::open(fixture(&format!("image_{name}_timm224.png"))).unwrap();
        let got = t.apply(&img).unwrap();
        assert_eq!(got.len(), 3 * 224 * 224);
        let (mut worst, mut levels_off) = (0.0f32, 0usize);
        for (p, px) in want.data.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                let d = (got[c * 224 * 224 + p] - normalise(v, c)).abs();
                worst = worst.max(d);
                levels_off += usize::from(d > 1e-6);
            }
        }
        println!(
            "image_{name}.png ({}x{}): max |ours - timm| {worst:e} (normalised), {levels_off} of {} values differ",
            img.width,
            img.height,
            3 * 224 * 224
        );
        assert!(worst <= TOL, "image_{name}.png: max |diff| {worst}");
        // Rounding slips of one level would pass TOL; they must stay rare (measured: none).
        assert!(
            levels_off <= 150,
            "image_{name}.png: {levels_off} values differ"
        );
        // The 8-bit crop before normalisation, too.
        let crop = t.resize_crop(&img).unwrap();
        let off = crop
            .data
            .iter()
            .zip(&want.data)
            .filter(|(a, b)| a.abs_diff(**b) > 1)
            .count();
        assert_eq!(
            off, 0,
            "image_{name}.png: {off} bytes more than one level off"
        );
    }
}

#[test]
fn normalisation_matches_timms_floats() {
    // timm's float tensor itself, rows 0, 111 and 223 of each channel.
    let rows = npy::read(fixture("image_64x48_timm_rows.npy")).unwrap();
    assert_eq!(rows.shape, vec![3, 3, 224]);
    let img = Rgb8::open(fixture("image_64x48.png")).unwrap();
    let got = EvalTransform::default().apply(&img).unwrap();
    let mut worst = 0.0f32;
    for c in 0..3 {
        for (r, y) in [0, 111, 223].into_iter().enumerate() {
            for x in 0..224 {
                let w = rows.data[(c * 3 + r) * 224 + x];
                worst = worst.max((got[(c * 224 + y) * 224 + x] - w).abs());
            }
        }
    }
    println!("image_64x48 rows: max |ours - timm| {worst:e}");
    assert!(worst <= TOL, "{worst}");
}

#[test]
fn greyscale_is_replicated() {
    let img = Rgb8::open(fixture("image_40x30_grey.png")).unwrap();
    assert_eq!((img.width, img.height), (40, 30));
    assert!(
        img.data
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    assert!(img.data.chunks_exact(3).any(|p| p[0] != img.data[0]));
}

fn assert_mentions(e: &Error, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
    assert!(!msg.contains('\n'), "{msg:?} is not one line");
}

#[test]
fn bad_images_are_errors_naming_the_file() {
    let e = Rgb8::open(tmp("no-such-image.jpg")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_mentions(&e, &["no-such-image.jpg", "cannot read"]);

    let good = std::fs::read(fixture("image_64x48.png")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.png", Vec::new()),
        ("text.png", b"not an image at all\n".to_vec()),
        ("truncated.png", good[..good.len() / 2].to_vec()),
        ("header-only.png", good[..40].to_vec()),
        ("corrupt.png", {
            let mut b = good.clone();
            for v in &mut b[60..200] {
                *v ^= 0x5A;
            }
            b
        }),
        ("truncated.jpg", {
            let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
            b.extend_from_slice(b"JFIF\0");
            b
        }),
        ("gif.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
    ];
    for (name, bytes) in cases {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        let e = Rgb8::open(&p).unwrap_err();
        assert!(matches!(e, Error::Input { .. }), "{name}: {e:?}");
        assert_mentions(&e, &[name, "expected a decodable JPEG or PNG image"]);
        println!("{e}");
    }
    // A batch names the bad file among good ones.
    let e = EvalTransform::default()
        .batch(&[fixture("image_64x48.png"), tmp("text.png")])
        .unwrap_err();
    assert_mentions(&e, &["text.png"]);
    let e = EvalTransform::default().batch::<&Path>(&[]).unwrap_err();
    assert_mentions(&e, &["at least one image"]);
    // An inconsistent hand-made image is an error, not a panic.
    let bogus = Rgb8 {
        width: 5,
        height: 5,
        data: vec![0; 10],
    };
    assert!(EvalTransform::default().apply(&bogus).is_err());
    assert!(Rgb8::new(0, 5, vec![]).is_err());
}

/// Runs the `repvit` binary; through `$REPVIT_TEST_RUNNER` when set (scripts/test-aarch64.sh sets
/// it to qemu-aarch64, since the cross-built binary cannot be started directly).
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

#[test]
fn command_reports_bad_images_in_one_line() {
    let weights = fixture("small.safetensors");
    let garbage = tmp("cmd-garbage.jpg");
    std::fs::write(&garbage, b"\xFF\xD8\xFF garbage").unwrap();
    let good = fixture("image_64x48.png");
    for (bad, what) in [
        (tmp("cmd-missing.png"), "cannot read"),
        (garbage, "expected a decodable JPEG or PNG image"),
    ] {
        let out = repvit(&[
            "classify",
            "--weights",
            weights.to_str().unwrap(),
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// One printed class: index, probability, name.
type Ranked = (usize, f64, String);

/// The image path and its ranked classes, per image, from `repvit classify`'s output.
fn parse(stdout: &str) -> Vec<(String, Vec<Ranked>)> {
    let mut out: Vec<(String, Vec<Ranked>)> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("  ") {
            let (_, rest) = rest.trim_start().split_once(". ").unwrap();
            let (pct, rest) = rest.trim_start().split_once(" %").unwrap();
            let rest = rest.trim_start();
            let (idx, name) = rest.split_once("  ").unwrap();
            out.last_mut().unwrap().1.push((
                idx.trim().parse().unwrap(),
                pct.trim().parse::<f64>().unwrap() / 100.0,
                name.to_string(),
            ));
        } else {
            out.push((line.to_string(), Vec::new()));
        }
    }
    out
}

#[test]
fn classify_agrees_with_infer_on_the_same_tensor() {
    let weights = fixture("small.safetensors");
    let images: Vec<PathBuf> = IMAGES
        .iter()
        .map(|n| fixture(&format!("image_{n}.png")))
        .collect();
    // The preprocessed batch, through `repvit infer`.
    let (x, shape) = EvalTransform::default().batch(&images).unwrap();
    assert_eq!(shape, [3, 3, 224, 224]);
    let input = tmp("batch.npy");
    let logits_path = tmp("batch_logits.npy");
    npy::write(&input, &shape, &x).unwrap();
    let out = repvit(&[
        "infer",
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        logits_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logits = npy::read(&logits_path).unwrap();
    assert_eq!(logits.shape, vec![3, 1000]);

    let mut args = vec!["classify", "--weights", weights.to_str().unwrap()];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--top", "5"]);
    let out = repvit(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let rows = parse(&stdout);
    assert_eq!(rows.len(), 3);
    for ((path, top), (img, l)) in rows
        .iter()
        .zip(images.iter().zip(logits.data.chunks_exact(1000)))
    {
        assert_eq!(path, img.to_str().unwrap());
        assert_eq!(top.len(), 5);
        // The same ranking and probabilities as a softmax of infer's logits.
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = l.iter().map(|&v| f64::from(v - max).exp()).sum();
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
        for (rank, (i, p, name)) in top.iter().enumerate() {
            assert_eq!(*i, order[rank], "{path}: rank {rank}");
            let want = f64::from(l[*i] - max).exp() / z;
            assert!((p - want).abs() <= 1e-6, "{path}: {p} vs {want}");
            assert_eq!(Some(name.as_str()), imagenet_class(*i));
        }
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    // Different images give different answers (the batch is not one image repeated).
    assert_ne!(logits.data[..1000], logits.data[1000..2000]);
}
