//! Network families on the shared runner. A family is a configuration type implementing
//! [`Family`]: it names itself, knows its eval transform, and appends its steps to a
//! [`Graph`] while reading (and folding) its parameters. Loading, folding helpers, shape inference
//! and step running are shared ([`crate::Network`]); [`Arch`] is the closed set this crate ships,
//! detected from a checkpoint's tensors or named.

use std::fmt;

use mobile_cnn_kernels::Kernels;

use crate::checkpoint::StateDict;
use crate::config::{Config, VARIANTS};
use crate::error::Error;
use crate::mobilenet::{self, MobileNetConfig, MobileNetKind};
use crate::model::{Graph, push_repvit};
use crate::preprocess::EvalTransform;
use crate::weights::{FusedWeights, Params, resolve_config};

/// What a network family provides to the shared runner.
pub trait Family {
    /// The architecture's name (timm's where it has one).
    fn name(&self) -> &str;
    /// Input channels.
    fn in_chans(&self) -> usize;
    /// Classifier outputs.
    fn num_classes(&self) -> usize;
    /// timm's eval transform of the family's pretrained configurations.
    fn eval_transform(&self) -> EvalTransform;
    /// Reads every parameter from `p` under timm's names, folds BatchNorm, and appends the steps
    /// (weights packed for the ISA of `k`) to `g`.
    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error>;
}

impl Family for Config {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_chans(&self) -> usize {
        self.in_chans
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// 224, crop_pct 0.95, bicubic, ImageNet mean/std (every timm `repvit_*` pretrained config).
    fn eval_transform(&self) -> EvalTransform {
        EvalTransform::default()
    }

    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        push_repvit(&FusedWeights::build(self, p)?, k, g)
    }
}

impl Family for MobileNetConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_chans(&self) -> usize {
        self.in_chans
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// 224, crop_pct 0.875, bicubic, ImageNet mean/std (timm's default pretrained configs of
    /// `mobilenetv3_large_100`, `mobilenetv3_small_100`, `mobilenetv2_100`).
    fn eval_transform(&self) -> EvalTransform {
        EvalTransform {
            crop_pct: 0.875,
            ..EvalTransform::default()
        }
    }

    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        MobileNetConfig::build(self, p, k, g)
    }
}

/// Every architecture this crate runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    /// RepViT (any variant or custom configuration).
    RepVit(Config),
    /// MobileNetV3-Large/-Small or MobileNetV2.
    MobileNet(MobileNetConfig),
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::RepVit(c) => c.fmt(f),
            Arch::MobileNet(c) => c.fmt(f),
        }
    }
}

/// Names accepted by [`Arch::named`] for the benchmarks' `all`: every RepViT variant and the three
/// MobileNets.
pub fn all_names() -> Vec<String> {
    VARIANTS
        .iter()
        .map(|v| v.name.to_string())
        .chain(MobileNetKind::ALL.iter().map(|k| k.timm_name().to_string()))
        .collect()
}

impl Arch {
    /// The family behind the architecture.
    pub fn family(&self) -> &dyn Family {
        match self {
            Arch::RepVit(c) => c,
            Arch::MobileNet(c) => c,
        }
    }

    /// See [`Family::name`].
    pub fn name(&self) -> &str {
        self.family().name()
    }

    /// See [`Family::in_chans`].
    pub fn in_chans(&self) -> usize {
        self.family().in_chans()
    }

    /// See [`Family::num_classes`].
    pub fn num_classes(&self) -> usize {
        self.family().num_classes()
    }

    /// See [`Family::eval_transform`].
    pub fn eval_transform(&self) -> EvalTransform {
        self.family().eval_transform()
    }

    /// The input side of the family's eval transform (224).
    pub fn input_size(&self) -> usize {
        self.eval_transform().size
    }

    /// See [`Family::build`].
    pub fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
        self.family().build(p, k, g)
    }

    /// A published architecture by name: RepViT's `m1_0` / `repvit_m1_0`, or
    /// `mobilenetv3_large_100`, `mobilenetv3_small_100`, `mobilenetv2_100` (1000 classes).
    pub fn named(name: &str) -> Result<Arch, Error> {
        if MobileNetConfig::is_family_name(name) {
            MobileNetConfig::variant(name).map(Arch::MobileNet)
        } else {
            Config::variant(name).map(Arch::RepVit)
        }
    }

    /// The architecture of a checkpoint: detected from its tensors (`name` absent), or the named
    /// one after checking that the checkpoint holds it.
    pub fn resolve(sd: &StateDict, name: Option<&str>) -> Result<Arch, Error> {
        let mobilenet = match name {
            Some(n) => MobileNetConfig::is_family_name(n),
            None => mobilenet::looks_like_mobilenet(sd),
        };
        if mobilenet {
            mobilenet::resolve(sd, name).map(Arch::MobileNet)
        } else {
            resolve_config(sd, name).map(Arch::RepVit)
        }
    }
}
