//! Network families on the shared runner. A family is a configuration type implementing
//! [`Family`] (`family.rs`): it names itself, knows its eval transform, and appends its steps to a
//! [`Graph`](crate::graph::Graph) while reading (and folding) its parameters. [`Arch`] is the
//! closed list this crate ships, in detection order; adding a family is one file (or folder)
//! here, its `pub mod` line and its [`Arch`] variant.
//!
//! Error messages name the families' variants as data: each family describes its own names
//! (`known_names`), and [`Arch`] joins them.

pub mod family;
pub mod mobilenet;
pub mod mobilenetv4;
pub mod repvit;
pub mod widths;

use std::fmt;

pub use family::Family;
use mobile_cnn_kernels::Kernels;
use mobilenet::{MobileNetConfig, MobileNetKind};
use mobilenetv4::{MobileNetV4Config, MobileNetV4Kind};
use repvit::{RepVitConfig, VARIANTS};

use crate::error::Error;
use crate::graph::Graph;
use crate::load::checkpoint::StateDict;
use crate::load::params::Params;
use crate::preprocess::EvalTransform;

/// Every architecture this crate runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    /// RepViT (any variant or custom configuration).
    RepVit(RepVitConfig),
    /// MobileNetV3-Large/-Small, MobileNetV2, EfficientNet-B0 or -Lite0.
    MobileNet(MobileNetConfig),
    /// MobileNetV4 (conv variants).
    MobileNetV4(MobileNetV4Config),
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::RepVit(c) => c.fmt(f),
            Arch::MobileNet(c) => c.fmt(f),
            Arch::MobileNetV4(c) => c.fmt(f),
        }
    }
}

/// An unknown name as one family reports it, listing every family's names instead.
fn every_family_name(e: Error) -> Error {
    match e {
        Error::UnknownVariant { name, .. } => Error::UnknownVariant {
            name,
            expected: format!(
                "{}, {}, or {}",
                repvit::known_names(),
                mobilenet::known_names(),
                mobilenetv4::known_names()
            ),
        },
        e => e,
    }
}

/// Names accepted by [`Arch::named`] for the benchmarks' `all`: every RepViT variant, the
/// MobileNets and EfficientNets, and the three MobileNetV4 sizes (width 1.0).
pub fn all_names() -> Vec<String> {
    VARIANTS
        .iter()
        .map(|v| v.name.to_string())
        .chain(MobileNetKind::ALL.iter().map(|k| k.timm_name().to_string()))
        .chain(
            MobileNetV4Kind::ALL
                .iter()
                .map(|k| k.timm_name().to_string()),
        )
        .collect()
}

impl Arch {
    /// The family behind the architecture.
    pub fn family(&self) -> &dyn Family {
        match self {
            Arch::RepVit(c) => c,
            Arch::MobileNet(c) => c,
            Arch::MobileNetV4(c) => c,
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
    /// `mobilenetv3_large_100`, `mobilenetv3_small_100`, `mobilenetv2_100`, `efficientnet_b0`,
    /// `efficientnet_lite0`, `mobilenetv4_conv_small` (and `_035`, `_050`), `_medium`, `_large`
    /// (1000 classes).
    pub fn named(name: &str) -> Result<Arch, Error> {
        if MobileNetV4Config::is_family_name(name) {
            MobileNetV4Config::variant(name).map(Arch::MobileNetV4)
        } else if MobileNetConfig::is_family_name(name) {
            MobileNetConfig::variant(name).map(Arch::MobileNet)
        } else {
            RepVitConfig::variant(name).map(Arch::RepVit)
        }
        .map_err(every_family_name)
    }

    /// The architecture of a checkpoint: detected from its tensors (`name` absent), or the named
    /// one after checking that the checkpoint holds it.
    pub fn resolve(sd: &StateDict, name: Option<&str>) -> Result<Arch, Error> {
        let v4 = match name {
            Some(n) => MobileNetV4Config::is_family_name(n),
            None => mobilenetv4::looks_like_mobilenetv4(sd),
        };
        let mobilenet = match name {
            Some(n) => MobileNetConfig::is_family_name(n),
            None => mobilenet::looks_like_mobilenet(sd),
        };
        if v4 {
            mobilenetv4::resolve(sd, name).map(Arch::MobileNetV4)
        } else if mobilenet {
            mobilenet::resolve(sd, name).map(Arch::MobileNet)
        } else {
            repvit::resolve_config(sd, name).map(Arch::RepVit)
        }
        .map_err(every_family_name)
    }
}
