//! RepViT configurations as data: one table of published variants, plus custom configurations (small
//! test models, other class counts). The whole network is derived from a [`RepVitConfig`].

use std::fmt;

use crate::error::Error;
use crate::load::bounds::{MAX_CLASSES, MAX_MLP_RATIO, MAX_WIDTH};

/// A RepViT network's shape: everything needed to list its weights and run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepVitConfig {
    /// Variant name without the `repvit_` prefix (`m1_0`, ...), or `custom`.
    pub name: String,
    /// Channels of each stage (`C0` is the stem's output width).
    pub embed_dim: Vec<usize>,
    /// Blocks of each stage, not counting the downsample's `pre_block`.
    pub depth: Vec<usize>,
    /// For each stage, which of its blocks have squeeze-excite (`se[i].len() == depth[i]`).
    /// timm alternates: block 0 has SE, block 1 not, ... (the downsample's `pre_block` never has).
    pub se: Vec<Vec<bool>>,
    /// Legacy RepVGGDW (`m1`, `m2`, `m3`): BatchNorm on the 1x1 branch, none after the sum.
    pub legacy: bool,
    /// Hidden width of the channel mixers: `mlp_ratio * C`.
    pub mlp_ratio: usize,
    /// Classifier outputs; 0 for a headless model (timm's `num_classes=0`), whose output is the
    /// pooled features `[N, C_last]`.
    pub num_classes: usize,
    /// Two heads (`head` and `head_dist`) averaged at inference; all published weights have both.
    pub distillation: bool,
    /// Input channels.
    pub in_chans: usize,
}

/// A published variant: name, widths, depths, legacy flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Name without the `repvit_` prefix.
    pub name: &'static str,
    /// Channels per stage.
    pub embed_dim: [usize; 4],
    /// Blocks per stage.
    pub depth: [usize; 4],
    /// Legacy RepVGGDW.
    pub legacy: bool,
}

/// Every variant timm registers (timm 1.0 `repvit.py`).
pub const VARIANTS: [Variant; 8] = [
    variant("m0_9", [48, 96, 192, 384], [2, 2, 14, 2], false),
    variant("m1_0", [56, 112, 224, 448], [2, 2, 14, 2], false),
    variant("m1_1", [64, 128, 256, 512], [2, 2, 12, 2], false),
    variant("m1_5", [64, 128, 256, 512], [4, 4, 24, 4], false),
    variant("m2_3", [80, 160, 320, 640], [6, 6, 34, 2], false),
    variant("m1", [48, 96, 192, 384], [2, 2, 14, 2], true),
    variant("m2", [64, 128, 256, 512], [2, 2, 12, 2], true),
    variant("m3", [64, 128, 256, 512], [4, 4, 18, 2], true),
];

/// One row of [`VARIANTS`].
const fn variant(
    name: &'static str,
    embed_dim: [usize; 4],
    depth: [usize; 4],
    legacy: bool,
) -> Variant {
    Variant {
        name,
        embed_dim,
        depth,
        legacy,
    }
}

/// The names [`RepVitConfig::variant`] accepts, described for an error message.
pub fn known_names() -> String {
    let names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    format!(
        "a RepViT variant, one of {} (with or without the `repvit_` prefix)",
        names.join(", ")
    )
}

/// Configurations with more stages than this are refused.
pub const MAX_STAGES: usize = 64;
/// Configurations with more blocks in one stage than this are refused.
pub const MAX_BLOCKS_PER_STAGE: usize = 4096;

/// timm's SE placement: alternating, starting with SE, in every stage.
pub fn alternating_se(depth: &[usize]) -> Vec<Vec<bool>> {
    depth
        .iter()
        .map(|&d| (0..d).map(|j| j % 2 == 0).collect())
        .collect()
}

/// timm's `make_divisible(v, divisor, round_limit=0.)` as `SqueezeExcite` calls it: the nearest
/// multiple of `divisor` (at least `divisor`), never bumped up.
pub fn se_reduced(c: usize) -> usize {
    crate::families::widths::reduced_channels(c, 0.25)
}

impl RepVitConfig {
    /// A published variant by name: `m1_0` or `repvit_m1_0` (1000 classes, both heads).
    pub fn variant(name: &str) -> Result<RepVitConfig, Error> {
        let short = name.strip_prefix("repvit_").unwrap_or(name);
        let v = VARIANTS
            .iter()
            .find(|v| v.name == short)
            .ok_or_else(|| Error::UnknownVariant {
                name: name.to_string(),
                expected: known_names(),
            })?;
        Ok(RepVitConfig::from_variant(v))
    }

    /// The configuration of a table entry.
    pub fn from_variant(v: &Variant) -> RepVitConfig {
        RepVitConfig {
            name: v.name.to_string(),
            embed_dim: v.embed_dim.to_vec(),
            depth: v.depth.to_vec(),
            se: alternating_se(&v.depth),
            legacy: v.legacy,
            mlp_ratio: 2,
            num_classes: 1000,
            distillation: true,
            in_chans: 3,
        }
    }

    /// A custom configuration with timm's defaults for everything not given (SE alternating,
    /// `mlp_ratio` 2, 3 input channels), checked with [`RepVitConfig::validate`].
    pub fn custom(
        embed_dim: &[usize],
        depth: &[usize],
        legacy: bool,
        num_classes: usize,
        distillation: bool,
    ) -> Result<RepVitConfig, Error> {
        let c = RepVitConfig {
            name: "custom".to_string(),
            embed_dim: embed_dim.to_vec(),
            depth: depth.to_vec(),
            se: alternating_se(depth),
            legacy,
            mlp_ratio: 2,
            num_classes,
            distillation,
            in_chans: 3,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Config { reason });
        if self.embed_dim.is_empty() {
            return bad("embed_dim is empty: at least one stage is needed".into());
        }
        if self.embed_dim.len() != self.depth.len() || self.se.len() != self.depth.len() {
            return bad(format!(
                "embed_dim has {} stages, depth {}, se {}: they must agree",
                self.embed_dim.len(),
                self.depth.len(),
                self.se.len()
            ));
        }
        if let Some(i) = (0..self.depth.len()).find(|&i| self.se[i].len() != self.depth[i]) {
            return bad(format!(
                "stage {i}: depth {} but {} SE flags",
                self.depth[i],
                self.se[i].len()
            ));
        }
        if self.embed_dim.contains(&0) || self.embed_dim[0] < 2 {
            return bad(format!(
                "embed_dim {:?}: widths must be >= 1 (and the stem's >= 2)",
                self.embed_dim
            ));
        }
        if self.depth[0] == 0 && self.embed_dim.len() == 1 {
            return bad("a single stage with depth 0 has no block".into());
        }
        if self.mlp_ratio == 0 || self.in_chans == 0 {
            return bad(format!(
                "mlp_ratio {}, in_chans {}: both must be >= 1",
                self.mlp_ratio, self.in_chans
            ));
        }
        let widest = self.embed_dim.iter().copied().max().unwrap_or(0);
        let deepest = self.depth.iter().copied().max().unwrap_or(0);
        let bounds = [
            ("stage width", widest, MAX_WIDTH),
            ("in_chans", self.in_chans, MAX_WIDTH),
            ("mlp_ratio", self.mlp_ratio, MAX_MLP_RATIO),
            ("num_classes", self.num_classes, MAX_CLASSES),
            ("stage count", self.depth.len(), MAX_STAGES),
            ("blocks per stage", deepest, MAX_BLOCKS_PER_STAGE),
        ];
        if let Some((what, v, max)) = bounds.into_iter().find(|&(_, v, max)| v > max) {
            return bad(format!("{what} {v} exceeds the bound {max}"));
        }
        Ok(())
    }

    /// Whether two configurations describe the same network (names aside).
    pub fn same_structure(&self, other: &RepVitConfig) -> bool {
        (
            &self.embed_dim,
            &self.depth,
            &self.se,
            self.legacy,
            self.mlp_ratio,
            self.num_classes,
            self.distillation,
            self.in_chans,
        ) == (
            &other.embed_dim,
            &other.depth,
            &other.se,
            other.legacy,
            other.mlp_ratio,
            other.num_classes,
            other.distillation,
            other.in_chans,
        )
    }

    /// The published variant with this structure (class count and heads aside), if any.
    pub fn matching_variant(&self) -> Option<&'static Variant> {
        VARIANTS.iter().find(|v| {
            self.embed_dim == v.embed_dim
                && self.depth == v.depth
                && self.legacy == v.legacy
                && self.se == alternating_se(&v.depth)
                && self.mlp_ratio == 2
                && self.in_chans == 3
        })
    }

    /// Stem width (`C0 / 2`).
    pub fn stem_width(&self) -> usize {
        self.embed_dim[0] / 2
    }

    /// Width of the final features (the classifier's input).
    pub fn features(&self) -> usize {
        *self.embed_dim.last().unwrap_or(&0)
    }
}

impl fmt::Display for RepVitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (embed_dim {:?}, depth {:?}, {}, {})",
            self.name,
            self.embed_dim,
            self.depth,
            if self.legacy { "legacy" } else { "non-legacy" },
            match (self.num_classes, self.distillation) {
                (0, _) => "headless: pooled features".to_string(),
                (n, true) => format!("{n} classes, two heads"),
                (n, false) => format!("{n} classes, one head"),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_prefix() {
        assert_eq!(
            RepVitConfig::variant("m1_0").unwrap(),
            RepVitConfig::variant("repvit_m1_0").unwrap()
        );
        assert_eq!(
            RepVitConfig::variant("m3").unwrap().depth,
            vec![4, 4, 18, 2]
        );
        assert!(RepVitConfig::variant("m3").unwrap().legacy);
        let e = RepVitConfig::variant("m9").unwrap_err().to_string();
        assert!(
            e.contains("m9") && e.contains("m1_0") && e.contains("m2_3"),
            "{e}"
        );
    }

    #[test]
    fn se_widths_match_timm() {
        let want = [
            (48, 16),
            (56, 16),
            (64, 16),
            (80, 24),
            (96, 24),
            (112, 32),
            (128, 32),
            (160, 40),
        ];
        for (c, r) in want {
            assert_eq!(se_reduced(c), r, "c = {c}");
        }
        for (c, r) in [
            (192, 48),
            (224, 56),
            (256, 64),
            (320, 80),
            (384, 96),
            (448, 112),
            (512, 128),
            (640, 160),
        ] {
            assert_eq!(se_reduced(c), r, "c = {c}");
        }
        // round_limit = 0: 44 * 0.25 = 11 rounds to 8 and is not bumped to 16.
        assert_eq!(se_reduced(44), 8);
        assert_eq!(se_reduced(16), 8);
    }

    #[test]
    fn se_alternates_per_stage() {
        let c = RepVitConfig::variant("m0_9").unwrap();
        assert_eq!(c.se[0], vec![true, false]);
        assert_eq!(c.se[2].iter().filter(|&&s| s).count(), 7);
        assert!(c.matching_variant().is_some());
    }

    #[test]
    fn custom_configs_are_validated() {
        assert!(RepVitConfig::custom(&[16, 32], &[1, 2], false, 10, true).is_ok());
        assert!(RepVitConfig::custom(&[16, 32], &[1], false, 10, true).is_err());
        assert!(RepVitConfig::custom(&[], &[], false, 10, true).is_err());
        // num_classes 0 is headless (timm's `num_classes=0`).
        assert!(RepVitConfig::custom(&[16], &[1], false, 0, true).is_ok());
        assert!(RepVitConfig::custom(&[1 << 17], &[1], false, 10, true).is_err());
        let mut c = RepVitConfig::custom(&[16], &[1], false, 10, true).unwrap();
        c.mlp_ratio = 1 << 62;
        assert!(c.validate().unwrap_err().to_string().contains("bound"));
    }
}
