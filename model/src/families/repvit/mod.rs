//! RepViT ("RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024) as timm builds it:
//! the configuration table ([`config`](self::config)), detection from a checkpoint's shapes
//! ([`detect`]), the parameters read and folded ([`weights`]), the step builder (`builder.rs`) and
//! the official repository's key names ([`official`]).

mod builder;
pub mod config;
pub mod detect;
pub mod official;
pub mod weights;

pub(crate) use builder::push_repvit;
pub use config::{
    MAX_BLOCKS_PER_STAGE, MAX_STAGES, RepVitConfig, VARIANTS, Variant, alternating_se, known_names,
    se_reduced,
};
pub use detect::{detect_config, resolve_config};
pub use weights::{
    BN_EPS, BlockWeights, DownsampleWeights, FusedWeights, Layout, SeWeights, StageWeights,
    expected_keys, expected_keys_layout, random_state_dict,
};

use mobile_cnn_kernels::Kernels;

use crate::error::Error;
use crate::families::family::Family;
use crate::graph::Graph;
use crate::load::params::Params;
use crate::preprocess::EvalTransform;

impl Family for RepVitConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_chans(&self) -> usize {
        self.in_chans
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn features(&self) -> usize {
        RepVitConfig::features(self)
    }

    /// 224, crop_pct 0.95, bicubic, ImageNet mean/std (every timm `repvit_*` pretrained config).
    fn eval_transform(&self) -> EvalTransform {
        EvalTransform::default()
    }

    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        push_repvit(&FusedWeights::build(self, p)?, k, g)
    }
}
