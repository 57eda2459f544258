//! Every kind of bad input is an error whose message names the file, the key (or input), what was
//! expected and what was found; nothing panics.

use std::path::{Path, PathBuf};

use mobile_cnn_kernels::Kernels;
use repvit::{Error, RepVit, StateDict};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.safetensors")
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("repvit-bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn load(path: &Path, variant: Option<&str>) -> Error {
    match RepVit::load(path, variant, &Kernels::new().unwrap()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn assert_mentions(e: &Error, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

/// Writes the fixture's tensors with `edit` applied: (key, dtype, shape, bytes) rows.
fn write_edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let bytes = std::fs::read(fixture()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut rows: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    edit(&mut rows);
    let views: Vec<(String, TensorView<'_>)> = rows
        .iter()
        .map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    let path = tmp(name);
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn missing_file() {
    let p = tmp("does-not-exist.safetensors");
    let e = load(&p, None);
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_mentions(&e, &["does-not-exist.safetensors", "cannot read"]);
}

#[test]
fn truncated_file() {
    let bytes = std::fs::read(fixture()).unwrap();
    for (name, len) in [
        ("trunc-half.safetensors", bytes.len() / 2),
        ("trunc-header.safetensors", 100),
        ("trunc-4.safetensors", 4),
    ] {
        let p = tmp(name);
        std::fs::write(&p, &bytes[..len]).unwrap();
        let e = load(&p, None);
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        assert_mentions(&e, &[name, "not a valid safetensors file"]);
    }
    let p = tmp("trunc-header.safetensors");
    assert_mentions(&load(&p, None), &["truncated"]);
    assert_mentions(&load(&tmp("trunc-half.safetensors"), None), &["truncated"]);
}

#[test]
fn corrupt_file() {
    let mut bytes = std::fs::read(fixture()).unwrap();
    for b in &mut bytes[8..40] {
        *b = 0xFF;
    }
    let p = tmp("corrupt.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let e = load(&p, None);
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "corrupt.safetensors",
            "not a valid safetensors file",
            "header",
        ],
    );
    let p = tmp("not-safetensors.safetensors");
    std::fs::write(&p, b"this is a text file, not a checkpoint\n").unwrap();
    assert_mentions(
        &load(&p, None),
        &[
            "not-safetensors.safetensors",
            "not a valid safetensors file",
        ],
    );
}

#[test]
fn checkpoint_of_another_variant() {
    let e = load(&fixture(), Some("repvit_m1_0"));
    assert!(matches!(e, Error::WrongVariant { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "small.safetensors",
            "m1_0",
            "[56, 112, 224, 448]",
            "[16, 32, 48, 64]",
            "stem.conv1.c.weight",
            "[28, 3, 3, 3]",
            "[8, 3, 3, 3]",
        ],
    );
    // Legacy and non-legacy of the same widths are different variants too.
    let k = Kernels::new().unwrap();
    let sd = repvit::families::repvit::random_state_dict(
        &repvit::RepVitConfig::variant("m1").unwrap(),
        3,
    )
    .unwrap();
    let e = RepVit::from_state_dict(sd, Some("m0_9"), &k).unwrap_err();
    assert_mentions(
        &e,
        &[
            "m0_9",
            "non-legacy",
            "found m1",
            "legacy",
            "token_mixer.conv1.weight",
            "found no such key",
        ],
    );
}

#[test]
fn unknown_variant_name() {
    let e = load(&fixture(), Some("m7"));
    assert!(matches!(e, Error::UnknownVariant { .. }), "{e:?}");
    assert_mentions(&e, &["m7", "m0_9", "m1_0", "m2_3", "m3"]);
}

#[test]
fn missing_key() {
    let key = "stages.1.blocks.0.channel_mixer.conv2.bn.running_var";
    let p = write_edited("missing-key.safetensors", |rows| {
        rows.retain(|r| r.0 != key)
    });
    let e = load(&p, None);
    assert!(matches!(e, Error::MissingKey { .. }), "{e:?}");
    assert_mentions(&e, &["missing-key.safetensors", key, "[32]", "no such key"]);
}

#[test]
fn wrong_shape() {
    let key = "stages.2.blocks.1.channel_mixer.conv1.c.weight";
    let p = write_edited("wrong-shape.safetensors", |rows| {
        let r = rows.iter_mut().find(|r| r.0 == key).unwrap();
        r.2 = vec![96, 47, 1, 1];
        r.3.truncate(96 * 47 * 4);
    });
    let e = load(&p, None);
    assert!(matches!(e, Error::WrongShape { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "wrong-shape.safetensors",
            key,
            "expected shape [96, 48, 1, 1]",
            "found [96, 47, 1, 1]",
        ],
    );
}

#[test]
fn wrong_dtype() {
    let key = "stages.0.blocks.0.se.fc1.bias";
    let p = write_edited("wrong-dtype.safetensors", |rows| {
        let r = rows.iter_mut().find(|r| r.0 == key).unwrap();
        let vals: Vec<u8> =
            r.3.chunks_exact(4)
                .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as f64).to_le_bytes())
                .collect();
        r.1 = Dtype::F64;
        r.3 = vals;
    });
    let e = load(&p, None);
    assert!(matches!(e, Error::WrongDtype { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "wrong-dtype.safetensors",
            key,
            "F32, F16 or BF16",
            "found F64",
        ],
    );
}

#[test]
fn unexpected_key_and_ignored_counters() {
    let p = write_edited("extra-key.safetensors", |rows| {
        rows.push((
            "stages.0.blocks.0.extra.weight".into(),
            Dtype::F32,
            vec![2],
            vec![0; 8],
        ));
    });
    let e = load(&p, None);
    assert!(matches!(e, Error::UnexpectedKey { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "extra-key.safetensors",
            "stages.0.blocks.0.extra.weight",
            "[2]",
        ],
    );
    // num_batches_tracked of any dtype is ignored.
    let p = write_edited("counters.safetensors", |rows| {
        for r in rows
            .iter_mut()
            .filter(|r| r.0.ends_with("num_batches_tracked"))
            .take(3)
        {
            r.1 = Dtype::F32;
            r.3 = 7.0f32.to_le_bytes().to_vec();
            r.2 = vec![];
        }
        let last = rows
            .iter_mut()
            .rfind(|r| r.0.ends_with("num_batches_tracked"))
            .unwrap();
        (last.1, last.3) = (Dtype::I32, vec![0; 4]);
    });
    assert!(RepVit::load(&p, None, &Kernels::new().unwrap()).is_ok());
    let mut sd = StateDict::read(fixture()).unwrap();
    sd.insert("head.extra", vec![1], vec![0.0]).unwrap();
    let e = RepVit::from_state_dict(sd, None, &Kernels::new().unwrap()).unwrap_err();
    assert!(matches!(e, Error::UnexpectedKey { .. }), "{e:?}");
    assert_mentions(&e, &["small.safetensors", "unexpected tensor `head.extra`"]);
}

#[test]
fn not_a_repvit() {
    let p = write_edited("not-repvit.safetensors", |rows| {
        rows.retain(|r| !r.0.starts_with("stem."))
    });
    let e = load(&p, None);
    assert!(matches!(e, Error::NotRepVit { .. }), "{e:?}");
    assert_mentions(&e, &["not-repvit.safetensors", "stem.conv1.c.weight"]);
    // With a variant named, the first missing key is reported instead.
    let e = load(&p, Some("m1_0"));
    assert!(matches!(e, Error::MissingKey { .. }), "{e:?}");
    assert_mentions(&e, &["stem.conv1.c.weight", "[28, 3, 3, 3]"]);
}

#[test]
fn wrong_input_shape() {
    let model = RepVit::load(fixture(), None, &Kernels::new().unwrap()).unwrap();
    let e = model
        .forward(&vec![0.0; 2 * 32 * 32], [2, 1, 32, 32])
        .unwrap_err();
    assert!(matches!(e, Error::Input { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "input batch",
            "[N >= 1, 3, H >= 1, W >= 1]",
            "[2, 1, 32, 32]",
        ],
    );
    let e = model.forward(&vec![0.0; 100], [2, 3, 32, 32]).unwrap_err();
    assert_mentions(&e, &["input batch", "6144 elements", "found 100 elements"]);
    let e = model.forward(&[], [0, 3, 32, 32]).unwrap_err();
    assert_mentions(&e, &["input batch", "[0, 3, 32, 32]"]);
    let e = model
        .forward_into(&vec![0.0; 3 * 8 * 8], [1, 3, 8, 8], &mut [0.0; 10])
        .unwrap_err();
    assert_mentions(&e, &["logits buffer", "1000 elements", "found 10 elements"]);
    let e = model.forward(&[0.0; 6], [1, 3, usize::MAX, 2]).unwrap_err();
    assert_mentions(&e, &["input batch", "too many"]);
    // Tiny images still run (every stage is at least 1x1).
    assert_eq!(model.forward(&[0.5; 3], [1, 3, 1, 1]).unwrap().len(), 1000);
}

#[test]
fn npy_errors_name_the_file() {
    let p = tmp("bad.npy");
    std::fs::write(&p, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8',").unwrap();
    let e = repvit::npy::read(&p).unwrap_err();
    assert_mentions(&e, &["bad.npy"]);
    let e = repvit::npy::read(tmp("absent.npy")).unwrap_err();
    assert_mentions(&e, &["absent.npy", "cannot read"]);
}

#[test]
fn hostile_shapes_and_indices_are_errors() {
    let p = write_edited("huge-index.safetensors", |rows| {
        rows.push((
            "stages.0.blocks.18446744073709551615.x".into(),
            Dtype::F32,
            vec![1],
            vec![0; 4],
        ));
    });
    assert_mentions(
        &load(&p, None),
        &["huge-index.safetensors", "18446744073709551615", "beyond"],
    );
    let p = write_edited("scalar-shape.safetensors", |rows| {
        for r in rows.iter_mut().filter(|r| {
            r.0.ends_with("channel_mixer.conv1.c.weight") || r.0 == "stem.conv2.c.weight"
        }) {
            (r.2, r.3) = (vec![], vec![0; 4]);
        }
    });
    assert_mentions(
        &load(&p, None),
        &["scalar-shape.safetensors", "stem.conv2.c.weight"],
    );
    let p = write_edited("no-blocks.safetensors", |rows| {
        rows.retain(|r| {
            !r.0.starts_with("stages.") || r.0.starts_with("stages.0.blocks.0.token_mixer.conv.c")
        });
        for r in rows.iter_mut().filter(|r| r.0.starts_with("stages.")) {
            r.0 = "stages.0.other".into();
        }
    });
    assert_mentions(&load(&p, None), &["no-blocks.safetensors"]);
}

/// Runs the `repvit` binary (through `$REPVIT_TEST_RUNNER` when set, as in classify.rs).
fn repvit_cli(args: &[&str]) -> std::process::Output {
    let exe = env!("CARGO_BIN_EXE_repvit");
    let mut cmd = match std::env::var("REPVIT_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut parts = r.split_whitespace();
            let mut c = std::process::Command::new(parts.next().unwrap());
            c.args(parts).arg(exe);
            c
        }
        _ => std::process::Command::new(exe),
    };
    cmd.args(args).output().unwrap()
}

fn small_model() -> RepVit {
    let cfg = repvit::RepVitConfig::custom(&[16, 32], &[1, 1], false, 10, true).unwrap();
    RepVit::random(&cfg, 7, &Kernels::new().unwrap()).unwrap()
}

/// A size that would not fit is an error naming the bytes and the input shape, returned without
/// allocating it (it was an abort: "memory allocation of ... bytes failed").
#[test]
fn a_batch_that_cannot_fit_is_an_error_with_its_size() {
    let model = small_model();
    // 3 x 10^7 x 10^7 floats: 1.2 PB of input alone, beyond any address space (so the test
    // cannot allocate it even where memory is overcommitted).
    let e = model
        .layer_bench([1, 3, 10_000_000, 10_000_000])
        .unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e:?}");
    assert_mentions(
        &e,
        &["1200000000000000 bytes", "[1, 3, 10000000, 10000000]"],
    );
    // More than usize can count.
    let e = repvit::bench_input([usize::MAX / 2, 3, 4, 4]).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { bytes: None, .. }), "{e:?}");
    assert_mentions(&e, &["more bytes than fit in usize"]);
    // The per-layer table needs no memory for the activations: it still works at that size.
    assert!(model.layers([1, 3, 10_000_000, 10_000_000]).is_ok());
}

/// An empty batch is refused (never run as one image).
#[test]
fn an_empty_batch_is_refused() {
    let model = small_model();
    let e = model.forward(&[], [0, 3, 32, 32]).unwrap_err();
    assert_mentions(&e, &["N >= 1", "[0, 3, 32, 32]"]);
    assert!(model.layer_bench([0, 3, 32, 32]).is_err());
    let mut out = [];
    assert!(model.forward_into(&[], [0, 3, 32, 32], &mut out).is_err());
}

/// `repvit bench`: a size or batch that would not fit ends with one error line naming the bytes
/// (not an abort), and `--batch 0` / `--iters 0` are refused instead of run as 1.
#[test]
fn bench_refuses_sizes_that_cannot_fit_and_zero_counts() {
    for (args, want) in [
        // Beyond any address space (see above).
        (&["--size", "10000000"][..], "1200000000000000 bytes"),
        (&["--batch", "1000000000"][..], "602112000000000 bytes"),
        (
            &["--batch", "0"][..],
            "--batch: expected an integer >= 1, found 0",
        ),
        (
            &["--iters", "0"][..],
            "--iters: expected an integer >= 1, found 0",
        ),
    ] {
        let mut all = vec![
            "bench",
            "--variant",
            "m0_9",
            "--threads",
            "1",
            "--no-layers",
        ];
        all.extend_from_slice(args);
        let out = repvit_cli(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}
