//! Checkpoints with the official RepViT repository's key names (`features.*`, `classifier.*`) load
//! like timm's. The official names are produced here from the official layout (a flat list: stem,
//! then one entry per table row, a stage after the first starting with its pre-block and its
//! stride-2 row), independently of `repvit::official`.

use std::path::PathBuf;

use mobile_cnn_kernels::Kernels;
use repvit::{RepVit, RepVitConfig, StateDict, npy};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("repvit-official");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The official name of a timm key, for a model of these stage depths.
fn official(key: &str, depth: &[usize]) -> String {
    if let Some(r) = key.strip_prefix("stem.conv1.") {
        return format!("features.0.0.{r}");
    }
    if let Some(r) = key.strip_prefix("stem.conv2.") {
        return format!("features.0.2.{r}");
    }
    if let Some(r) = key.strip_prefix("head.head_dist.") {
        return format!("classifier.classifier_dist.{r}");
    }
    if let Some(r) = key.strip_prefix("head.head.") {
        return format!("classifier.classifier.{r}");
    }
    let rest = key.strip_prefix("stages.").unwrap();
    let (s, rest) = rest.split_once('.').unwrap();
    let s: usize = s.parse().unwrap();
    // Rows before stage s: its blocks, plus pre-block and stride-2 row for every stage after the first.
    let first_row = 1
        + (0..s)
            .map(|t| depth[t] + if t > 0 { 2 } else { 0 })
            .sum::<usize>();
    let block = |row: usize, part: &str| {
        let part = [
            ("token_mixer.", "token_mixer.0."),
            ("se.", "token_mixer.1."),
            ("channel_mixer.conv1.", "channel_mixer.m.0."),
            ("channel_mixer.conv2.", "channel_mixer.m.2."),
        ]
        .iter()
        .find_map(|(t, o)| part.strip_prefix(t).map(|r| format!("{o}{r}")))
        .unwrap();
        format!("features.{row}.{part}")
    };
    if let Some(r) = rest.strip_prefix("downsample.pre_block.") {
        return block(first_row, r);
    }
    if let Some(r) = rest.strip_prefix("downsample.") {
        let part = [
            ("spatial_downsample.", "token_mixer.0."),
            ("channel_downsample.", "token_mixer.2."),
            ("ffn.conv1.", "channel_mixer.m.0."),
            ("ffn.conv2.", "channel_mixer.m.2."),
        ]
        .iter()
        .find_map(|(t, o)| r.strip_prefix(t).map(|x| format!("{o}{x}")))
        .unwrap();
        return format!("features.{}.{part}", first_row + 1);
    }
    let r = rest.strip_prefix("blocks.").unwrap();
    let (b, r) = r.split_once('.').unwrap();
    let b: usize = b.parse().unwrap();
    block(first_row + if s > 0 { 2 } else { 0 } + b, r)
}

/// Writes `sd` under official names; returns the file and the largest `features` index.
fn write_official(sd: &StateDict, depth: &[usize], name: &str) -> (PathBuf, usize) {
    let mut out = StateDict::new(name);
    let mut last = 0;
    for key in sd.keys() {
        let e = sd.get(key).unwrap();
        let o = official(key, depth);
        if let Some(j) = o
            .strip_prefix("features.")
            .and_then(|r| r.split('.').next())
        {
            last = last.max(j.parse().unwrap());
        }
        assert!(out.get(&o).is_none(), "{o} twice");
        out.insert(o, e.shape.clone(), e.data.clone().unwrap())
            .unwrap();
    }
    assert!(
        out.keys()
            .all(|k| k.starts_with("features.") || k.starts_with("classifier."))
    );
    let path = tmp(name);
    out.write(&path).unwrap();
    (path, last)
}

#[test]
fn official_names_of_the_fixtures_match_timm() {
    let k = Kernels::new().unwrap();
    for name in ["small", "legacy"] {
        let timm_file = fixture(&format!("{name}.safetensors"));
        let timm = RepVit::load(&timm_file, None, &k).unwrap();
        let sd = StateDict::read(&timm_file).unwrap();
        let (path, _) = write_official(
            &sd,
            &timm.config().unwrap().depth,
            &format!("{name}-official.safetensors"),
        );
        let ours = RepVit::load(&path, None, &k).unwrap();
        assert_eq!(ours.config(), timm.config());
        let x = npy::read(fixture(&format!("{name}_input.npy"))).unwrap();
        let want = npy::read(fixture(&format!("{name}_logits.npy"))).unwrap();
        let shape: [usize; 4] = x.shape.clone().try_into().unwrap();
        let got = ours.forward(&x.data, shape).unwrap();
        // The same weights: the same bits as the timm-named file, and timm's logits.
        assert_eq!(got, timm.forward(&x.data, shape).unwrap());
        for (g, w) in got.iter().zip(&want.data) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn official_names_of_every_variant_load() {
    let k = Kernels::new().unwrap().with_threads(1).unwrap();
    // Rows of the official tables (the `features` list holds the stem and then these), where
    // checked against the official model definitions.
    let rows = [
        ("m0_9", Some(26)),
        ("m1_0", Some(26)),
        ("m1_1", Some(24)),
        ("m2_3", None),
        ("m1", None),
    ];
    for (variant, rows) in rows {
        let cfg = RepVitConfig::variant(variant).unwrap();
        let sd = repvit::families::repvit::random_state_dict(&cfg, 5).unwrap();
        let (path, last) =
            write_official(&sd, &cfg.depth, &format!("{variant}-official.safetensors"));
        if let Some(rows) = rows {
            assert_eq!(last, rows, "{variant}");
        }
        let timm = RepVit::from_state_dict(sd, Some(variant), &k).unwrap();
        let ours = RepVit::load(&path, None, &k).unwrap();
        assert_eq!(ours.config().unwrap().name, cfg.name);
        let x: Vec<f32> = (0..3 * 64 * 64)
            .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
            .collect();
        assert_eq!(
            ours.forward(&x, [1, 3, 64, 64]).unwrap(),
            timm.forward(&x, [1, 3, 64, 64]).unwrap(),
            "{variant}"
        );
    }
}

#[test]
fn unknown_official_keys_are_reported() {
    let sd = StateDict::read(fixture("small.safetensors")).unwrap();
    let cfg_depth = [1, 2, 2, 1];
    let mut out = StateDict::new("x");
    for key in sd.keys() {
        let e = sd.get(key).unwrap();
        out.insert(
            official(key, &cfg_depth),
            e.shape.clone(),
            e.data.clone().unwrap(),
        )
        .unwrap();
    }
    out.insert("features.3.token_mixer.7.weight", vec![2], vec![0.0; 2])
        .unwrap();
    let path = tmp("official-extra.safetensors");
    out.write(&path).unwrap();
    let e = RepVit::load(&path, None, &Kernels::new().unwrap()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("official-extra.safetensors")
            && msg.contains("features.3.token_mixer.7.weight"),
        "{msg}"
    );
}
