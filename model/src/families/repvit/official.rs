//! Key names of the official RepViT repository (THU-MIG/RepViT `model/repvit.py`), renamed to timm's.
//!
//! The official model is a flat `features` list: `features.0` is the stem (`features.0.0` and
//! `features.0.2`, each a conv + BatchNorm), then one entry per row of the variant's table. A row
//! with stride 2 holds a depthwise conv + BatchNorm (`token_mixer.0`) and a 1x1 conv + BatchNorm
//! (`token_mixer.2`); timm splits every stage after the first into a downsample
//! (`pre_block`: the row just before the stride-2 row; `spatial_downsample` and `channel_downsample`:
//! the stride-2 row's `token_mixer.0` and `.2`; `ffn`: its `channel_mixer.m`) and `blocks`. Other rows
//! are blocks: `token_mixer.0` (RepVGGDW) is timm's `token_mixer`, `token_mixer.1` (squeeze-excite)
//! is `se`, `channel_mixer.m.0` / `.m.2` are `channel_mixer.conv1` / `.conv2`. The heads
//! `classifier.classifier` / `classifier.classifier_dist` are `head.head` / `head.head_dist`.
//!
//! Deployed files (after the official `utils.replace_batchnorm`, which calls each module's
//! `fuse()`): every `Conv2d_BN` and `RepVGGDW` is a plain convolution (`features.0.0.weight`,
//! `features.<j>.token_mixer.0.weight`, `.bias`, ...), renamed by the same table to timm's deployed
//! names (`stem.conv1.weight`, `...token_mixer.weight`), and the classifier is one averaged linear
//! layer `classifier.weight` / `classifier.bias`, timm's `head.weight` / `head.bias`.
//!
//! Stride-2 rows are recognised by their `token_mixer.2` tensors, so no variant table is needed.
//! Keys this mapping does not know keep their names; the loader then reports them as unexpected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::Error;

/// Whether the keys look like the official repository's: any `features.*` (every official
/// checkpoint, headless or not, has its stem and blocks there). `classifier.*` alone does not count:
/// timm's MobileNets name their classifier `classifier.weight` too.
pub fn is_official<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| k.starts_with("features."))
}

/// `features.<j>.<rest>` split into `(j, rest)`.
fn feature(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("features.")?;
    let (j, rest) = rest.split_once('.')?;
    Some((j.parse().ok()?, rest))
}

/// Sub-key of an ordinary block (or a pre-block): official -> timm.
fn block_part(rest: &str) -> Option<String> {
    let map = [
        ("token_mixer.0.", "token_mixer."),
        ("token_mixer.1.", "se."),
        ("channel_mixer.m.0.", "channel_mixer.conv1."),
        ("channel_mixer.m.2.", "channel_mixer.conv2."),
    ];
    map.iter()
        .find_map(|(from, to)| rest.strip_prefix(from).map(|r| format!("{to}{r}")))
}

/// Sub-key of a stride-2 row: official -> timm (relative to `stages.<s>.downsample.`).
fn downsample_part(rest: &str) -> Option<String> {
    let map = [
        ("token_mixer.0.", "spatial_downsample."),
        ("token_mixer.2.", "channel_downsample."),
        ("channel_mixer.m.0.", "ffn.conv1."),
        ("channel_mixer.m.2.", "ffn.conv2."),
    ];
    map.iter()
        .find_map(|(from, to)| rest.strip_prefix(from).map(|r| format!("{to}{r}")))
}

/// Renames official keys to timm's; keys already in timm's form (or unknown) are kept.
/// `E` is whatever the loader keeps per tensor (untouched here).
pub fn to_timm<E>(path: &Path, tensors: BTreeMap<String, E>) -> Result<BTreeMap<String, E>, Error> {
    let rows: BTreeSet<usize> = tensors
        .keys()
        .filter_map(|k| feature(k).map(|f| f.0))
        .filter(|&j| j > 0)
        .collect();
    let downsample: BTreeSet<usize> = tensors
        .keys()
        .filter_map(|k| feature(k))
        .filter(|(_, rest)| rest.starts_with("token_mixer.2."))
        .map(|f| f.0)
        .collect();
    // Each row's timm prefix and kind.
    #[derive(Clone, Copy)]
    enum Kind {
        Block,
        Downsample,
    }
    let rows: Vec<usize> = rows.into_iter().collect();
    let mut place: BTreeMap<usize, (String, Kind)> = BTreeMap::new();
    let (mut stage, mut block) = (0usize, 0usize);
    for (i, &j) in rows.iter().enumerate() {
        let next_is_downsample = rows.get(i + 1).is_some_and(|n| downsample.contains(n));
        if downsample.contains(&j) {
            stage += 1;
            block = 0;
            place.insert(j, (format!("stages.{stage}.downsample."), Kind::Downsample));
        } else if next_is_downsample {
            place.insert(
                j,
                (
                    format!("stages.{}.downsample.pre_block.", stage + 1),
                    Kind::Block,
                ),
            );
        } else {
            place.insert(j, (format!("stages.{stage}.blocks.{block}."), Kind::Block));
            block += 1;
        }
    }
    let mut out = BTreeMap::new();
    for (key, entry) in tensors {
        let renamed = if let Some((j, rest)) = feature(&key) {
            if j == 0 {
                rest.strip_prefix("0.")
                    .map(|r| format!("stem.conv1.{r}"))
                    .or_else(|| rest.strip_prefix("2.").map(|r| format!("stem.conv2.{r}")))
            } else {
                place.get(&j).and_then(|(prefix, kind)| {
                    match kind {
                        Kind::Block => block_part(rest),
                        Kind::Downsample => downsample_part(rest),
                    }
                    .map(|r| format!("{prefix}{r}"))
                })
            }
        } else if let Some(r) = key.strip_prefix("classifier.classifier_dist.") {
            Some(format!("head.head_dist.{r}"))
        } else if let Some(r) = key.strip_prefix("classifier.classifier.") {
            Some(format!("head.head.{r}"))
        } else {
            // Deployed: `Classfier.fuse()` leaves one linear layer.
            match key.as_str() {
                "classifier.weight" => Some("head.weight".to_string()),
                "classifier.bias" => Some("head.bias".to_string()),
                _ => None,
            }
        };
        let name = renamed.unwrap_or_else(|| key.clone());
        if out.contains_key(&name) {
            return Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "official RepViT key `{key}` maps to timm's `{name}`, which is already present"
                ),
            });
        }
        out.insert(name, entry);
    }
    Ok(out)
}
