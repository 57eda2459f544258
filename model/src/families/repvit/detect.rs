//! RepViT's configuration read off a checkpoint's shapes ([`detect_config`]), or a named variant
//! checked against them ([`resolve_config`]).

use std::collections::BTreeMap;

use super::config::{MAX_BLOCKS_PER_STAGE, MAX_STAGES, RepVitConfig};
use super::weights::{FusedWeights, Layout, expected_keys_layout};
use crate::error::Error;
use crate::load::bounds::{MAX_CLASSES, MAX_MLP_RATIO, MAX_WIDTH};
use crate::load::checkpoint::StateDict;

/// Parses `stages.{i}.blocks.{j}.` at the start of a key.
fn stage_block(key: &str) -> Option<(usize, Option<usize>)> {
    let rest = key.strip_prefix("stages.")?;
    let (i, rest) = rest.split_once('.')?;
    let i = i.parse().ok()?;
    let j = rest
        .strip_prefix("blocks.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(j, _)| j.parse().ok());
    Some((i, j))
}

/// Reads the configuration off a checkpoint's shapes: widths from the stem and the downsamples,
/// depths and SE placement from the block keys, legacy from the RepVGGDW keys, classes from the head
/// (none: headless, `num_classes == 0`). Works on both [`Layout`]s. Every size read is bounded
/// ([`MAX_WIDTH`], [`MAX_CLASSES`], [`MAX_MLP_RATIO`], 64 stages of 4096 blocks) and must be
/// non-zero; an error names the tensor and the bound.
pub fn detect_config(sd: &StateDict) -> Result<RepVitConfig, Error> {
    let not = |reason: String| Error::NotRepVit {
        path: sd.path().to_path_buf(),
        reason,
    };
    let layout = Layout::of(sd);
    let conv = |prefix: &str| match layout {
        Layout::Training => format!("{prefix}.c.weight"),
        Layout::Deployed => format!("{prefix}.weight"),
    };
    // A dimension of `key`'s shape, within `1..=max`.
    let dim = |key: &str, rank: usize, axis: usize, max: usize, what: &str| {
        let s = match sd.shape(key) {
            Some(s) if s.len() == rank => s,
            Some(s) => {
                return Err(not(format!(
                    "tensor `{key}` has shape {s:?}, expected {rank} dimensions"
                )));
            }
            None => {
                return Err(not(format!("no tensor `{key}`; {}", sd.describe_keys())));
            }
        };
        match s[axis] {
            0 => Err(not(format!(
                "tensor `{key}` has shape {s:?}: {what} (dimension {axis}) is 0"
            ))),
            d if d > max => Err(not(format!(
                "tensor `{key}` has shape {s:?}: {what} {d} (dimension {axis}) exceeds the bound {max}"
            ))),
            d => Ok(d),
        }
    };
    let stem1 = conv("stem.conv1");
    if sd.shape(&stem1).is_none() {
        return Err(not(format!(
            "no tensor `stem.conv1.c.weight` (training layout) or `stem.conv1.weight` (deployed, after fuse()); {}",
            sd.describe_keys()
        )));
    }
    let in_chans = dim(&stem1, 4, 1, MAX_WIDTH, "input channels")?;
    let c0 = dim(&conv("stem.conv2"), 4, 0, MAX_WIDTH, "stem width")?;
    let mut depth: Vec<usize> = Vec::new();
    let mut se_at: BTreeMap<(usize, usize), bool> = BTreeMap::new();
    let mut legacy = None;
    for key in sd.keys() {
        if let Some((i, j)) = stage_block(key) {
            // Far beyond any RepViT: refuse before allocating for it.
            if i >= MAX_STAGES || j.is_some_and(|j| j >= MAX_BLOCKS_PER_STAGE) {
                return Err(not(format!(
                    "tensor `{key}`: stage or block index beyond {MAX_STAGES} stages of {MAX_BLOCKS_PER_STAGE} blocks"
                )));
            }
            if depth.len() <= i {
                depth.resize(i + 1, 0);
            }
            if let Some(j) = j {
                depth[i] = depth[i].max(j + 1);
                let se = key.contains(".se.");
                *se_at.entry((i, j)).or_insert(false) |= se;
            }
        }
        if key.contains("token_mixer.conv1.bn.") {
            legacy = Some(true);
        } else if key.contains("token_mixer.bn.") || key.contains("token_mixer.conv1.bias") {
            legacy = legacy.or(Some(false));
        }
    }
    if depth.is_empty() {
        return Err(not("no `stages.*` tensor".into()));
    }
    let mut embed_dim = vec![c0];
    for i in 1..depth.len() {
        let key = conv(&format!("stages.{i}.downsample.channel_downsample"));
        embed_dim.push(dim(&key, 4, 0, MAX_WIDTH, "stage width")?);
    }
    let se: Vec<Vec<bool>> = depth
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            (0..d)
                .map(|j| se_at.get(&(i, j)).copied().unwrap_or(false))
                .collect()
        })
        .collect();
    // The classifier: absent in a headless model (timm's `num_classes=0`).
    let (head, head_dist) = match layout {
        Layout::Training => ("head.head.l.weight", Some("head.head_dist.l.weight")),
        Layout::Deployed => ("head.weight", None),
    };
    let num_classes = if sd.shape(head).is_some() {
        dim(head, 2, 0, MAX_CLASSES, "class count")?
    } else if let Some(k) = sd.keys().find(|k| k.starts_with("head.")) {
        return Err(not(format!(
            "tensor `{k}` but no `{head}`: expected both or no head tensor (headless)"
        )));
    } else {
        0
    };
    // The channel mixer's expansion, from the first block or FFN present (timm's default if none).
    let mlp_key = (0..depth.len()).find_map(|i| {
        [
            conv(&format!("stages.{i}.blocks.0.channel_mixer.conv1")),
            conv(&format!("stages.{i}.downsample.ffn.conv1")),
        ]
        .into_iter()
        .find(|k| sd.shape(k).is_some())
        .map(|k| (i, k))
    });
    let mlp_ratio = match mlp_key {
        Some((i, key)) => {
            let hidden = dim(&key, 4, 0, MAX_WIDTH, "channel mixer width")?;
            let ratio = hidden / embed_dim[i];
            if ratio == 0 || ratio > MAX_MLP_RATIO || ratio * embed_dim[i] != hidden {
                return Err(not(format!(
                    "tensor `{key}`: hidden width {hidden} is not a multiple 1..={MAX_MLP_RATIO} of the stage width {}",
                    embed_dim[i]
                )));
            }
            ratio
        }
        None => 2,
    };
    let mut cfg = RepVitConfig {
        name: "custom".into(),
        embed_dim,
        depth,
        se,
        legacy: legacy.unwrap_or(false),
        mlp_ratio,
        num_classes,
        distillation: head_dist.is_some_and(|k| sd.shape(k).is_some()),
        in_chans,
    };
    cfg.validate().map_err(|e| not(e.to_string()))?;
    if let Some(v) = cfg.matching_variant() {
        cfg.name = v.name.to_string();
    }
    Ok(cfg)
}

/// The configuration to read `sd` with: the detected one, or the named variant (with the
/// checkpoint's class count and heads) after checking that the checkpoint holds that variant.
pub fn resolve_config(sd: &StateDict, variant: Option<&str>) -> Result<RepVitConfig, Error> {
    let Some(name) = variant else {
        return detect_config(sd);
    };
    let layout = Layout::of(sd);
    let mut want = RepVitConfig::variant(name)?;
    let found = match detect_config(sd) {
        Ok(found) => found,
        // Not even the stem is there: read with the requested variant and report the first
        // missing key.
        Err(_) => return Ok(want),
    };
    want.num_classes = found.num_classes;
    want.distillation = found.distillation;
    if layout == Layout::Deployed {
        // Fusing erases the legacy RepVGGDW's difference: `m1` and `m0_9` deploy alike.
        want.legacy = found.legacy;
    }
    if want.same_structure(&found) {
        return Ok(want);
    }
    Err(sd.wrong_variant(
        want.to_string(),
        found.to_string(),
        expected_keys_layout(&want, layout)?,
    ))
}

impl FusedWeights {
    /// Reads a checkpoint: detects (or checks) the variant, reads and folds every tensor, and
    /// rejects tensors the model does not use.
    pub fn from_state_dict(
        mut sd: StateDict,
        variant: Option<&str>,
    ) -> Result<FusedWeights, Error> {
        let layout = Layout::of(&sd);
        let cfg = resolve_config(&sd, variant)?;
        let fused = FusedWeights::build_layout(&cfg, layout, &mut sd)?;
        if let Some(key) = sd.keys().next() {
            return Err(Error::UnexpectedKey {
                path: sd.path().to_path_buf(),
                key: key.to_string(),
                shape: sd.shape(key).unwrap_or_default().to_vec(),
            });
        }
        Ok(fused)
    }
}
